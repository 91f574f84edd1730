/**
 * arm-smmu-v3 domains (Linux's `struct arm_smmu_domain` after the nested-stage series, seed-spec
 * §1.3): the stage chosen at finalise, the stage-1 and stage-2 configurations each with a `set`
 * flag, the domain-level `abort` flag, the io-pgtable (src/hw/vmsa/pgtable.ts) of paging domains,
 * the host CD table of stage-1 domains, and the masters attached. Also the ASID/VMID allocator
 * and the conversion of IOMMU_* map protections to page-table permissions.
 */

import type { Granule } from '../../arch/vmsa.ts';
import type { PageTable, Prot } from '../../hw/vmsa/pgtable.ts';
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDevice,
  IommuDomain,
  type IommuDomainGeometry,
  type IommuOps,
} from '../iommu/types.ts';

/**
 * Linux's ARM_SMMU_DOMAIN_{S1,S2,NESTED,BYPASS}, plus 'abort' for IOMMU_DOMAIN_BLOCKED (which the
 * v5.12 driver did not have; vsva gives it an abort STE).
 */
export type DomainStage = 's1' | 's2' | 'nested' | 'bypass' | 'abort';

/** The stage-1 configuration: the CD table an STE points at (host PA, or guest IPA when nested). */
export interface S1Cfg {
  set: boolean;
  cdtab: number;
  cdMax: number;
  fmt: number;
  dss: number;
}

/** The stage-2 configuration: VMID and the stage-2 table. */
export interface S2Cfg {
  set: boolean;
  vmid: number;
}

/** A device bound to the driver (Linux's `struct arm_smmu_master`). */
export interface ArmSmmuV3Master {
  readonly dev: IommuDevice;
  readonly sids: readonly number[];
  /** min(device PASID width, IDR1.SSIDSIZE). */
  readonly ssidBits: number;
  domain: ArmSmmuV3Domain | undefined;
}

export class ArmSmmuV3Domain extends IommuDomain {
  /** The SMMU instance the domain is bound to at its first attach (`smmu_domain->smmu`). */
  smmu: IommuOps | undefined = undefined;
  /** Undefined until finalise, except that enableNesting sets 'nested' beforehand. */
  stage: DomainStage | undefined = undefined;
  readonly s1Cfg: S1Cfg = { set: false, cdtab: 0, cdMax: 0, fmt: 0, dss: 0 };
  readonly s2Cfg: S2Cfg = { set: false, vmid: 0 };
  /** Domain-level abort (attach_pasid_table ABORT, or a blocked domain). */
  abort = false;
  /** ASID of a stage-1 domain (its host CD). */
  asid = 0;
  pgtable: PageTable | undefined = undefined;
  /** Host CD table of a stage-1 domain: address and bytes allocated. */
  hostCdtab: { readonly addr: number; readonly bytes: number } | undefined = undefined;
  readonly masters = new Set<ArmSmmuV3Master>();
  freed = false;

  constructor(type: number, ops: IommuOps, pgsizeBitmap: number, geometry: IommuDomainGeometry) {
    super(type, ops, pgsizeBitmap, geometry);
    if (type === IOMMU_DOMAIN_BLOCKED) this.abort = true;
  }

  get isPaging(): boolean {
    return this.type !== IOMMU_DOMAIN_BLOCKED && this.type !== IOMMU_DOMAIN_IDENTITY;
  }

  /** The translation granule of the domain's tables (once finalised). */
  get granule(): Granule | undefined {
    return this.pgtable?.granule;
  }
}

/**
 * An allocator of IDs in [min, max] handing out the lowest free one, deterministically (Linux
 * uses an xarray for ASIDs and a bitmap for VMIDs; both give the lowest free ID).
 */
export class IdAllocator {
  readonly min: number;
  readonly max: number;
  private readonly used = new Set<number>();

  constructor(min: number, max: number) {
    this.min = min;
    this.max = max;
  }

  alloc(): number | undefined {
    for (let id = this.min; id <= this.max; id++) {
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
    return undefined;
  }

  free(id: number): void {
    this.used.delete(id);
  }

  get inUse(): number {
    return this.used.size;
  }
}

/**
 * IOMMU_* protections → page-table permissions, as io-pgtable-arm maps them: READ/WRITE as given,
 * executable unless NOEXEC, reachable from EL0 unless PRIV (Linux sets AP[1] for every stage-1
 * mapping that is not privileged-only), MMIO → Device memory. Undefined for a mapping that grants
 * neither read nor write: io-pgtable maps nothing and reports success.
 */
export function protFromIommu(prot: number): Prot | undefined {
  const read = (prot & IOMMU_READ) !== 0;
  const write = (prot & IOMMU_WRITE) !== 0;
  if (!read && !write) return undefined;
  return {
    read,
    write,
    exec: (prot & IOMMU_NOEXEC) === 0,
    user: (prot & IOMMU_PRIV) === 0,
    cache: (prot & IOMMU_MMIO) !== 0 ? 'device' : 'normal',
  };
}

/** The granule of a domain's tables: the CPU page size (4K) if supported, else 16K, else 64K. */
export function chooseGranule(granules: readonly Granule[]): Granule | undefined {
  for (const g of [12, 14, 16] as const) if (granules.includes(g)) return g;
  return undefined;
}

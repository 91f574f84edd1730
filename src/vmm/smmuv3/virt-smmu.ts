/**
 * The VMM's virtual SMMUv3 for assigned devices (QEMU's hw/arm/smmuv3 in its nested-stage
 * variant): the guest programs an SMMUv3 register frame at VIRT_SMMU (IHI 0070 §6, Page 0 +
 * Page 1) with its stream table, CD tables and queues in guest RAM; the vSMMU traps that
 * configuration and forwards it to the host through the `HostIOMMUContext` each assigned device's
 * VFIO container registers (`PCIIOMMUOps.set_iommu_context`, seed-spec §3.2), so that the physical
 * SMMU runs the guest's stage 1 nested over the host's stage 2 (seed-spec §1). Stage 1 is never
 * walked in software for DMA; only MSI doorbell addresses are translated here (`get_address_space`).
 *
 * - Registers: the layout of `src/arch/smmuv3/registers.ts`, with the hardware model's semantics
 *   (`src/hw/smmuv3/smmu.ts`): CR0ACK/IRQ_CTRLACK follow at once, guarded registers ignore writes
 *   while their enable is set, 32-bit accesses anywhere and 64-bit accesses to 64-bit registers.
 * - Command queue: consumed synchronously on a CMDQ_PROD write (or CMDQEN / GERRORN restarting
 *   it); legality is the hardware model's (`executeCommand`); CFGI_STE* → SET_PASID_TABLE,
 *   CFGI_CD* and TLBI_NH_* → CACHE_INVALIDATE, CMD_SYNC → the CMD_SYNC interrupt.
 * - Event queue: C_BAD_STE and friends found at configuration time, and the host's fault records
 *   (`inject_faults`) turned back into the guest's events (`forward.ts`).
 *
 * Advertised features (Decision): an SMMUv3.2 with stage 1 only (S1P = 1, S2P = 0, no Hyp),
 * AArch64 little-endian tables, 16-bit ASIDs, 2-level CD tables (CD2L), 2-level stream tables,
 * SIDSIZE 16, SSIDSIZE 20 (the PASID DMA device's width), OAS = the VM's IPA size (40 bits by
 * default), 4KB and 64KB granules, RIL, COHACC, no ATS/PRI, no stalls (STALL_MODEL = 0b01), no SEV,
 * and wired interrupts only (IDR0.MSI = 0): the virt board wires the SMMU's four SPIs, and MSIs
 * would have the vSMMU write the GICv2m frame, which buys the guest nothing.
 *
 * Interrupts are edge-triggered on the virt board: a signal is `setIrq(intid, true)` then
 * `setIrq(intid, false)` (the machine turns each into KVM_IRQ_LINE).
 */

import { getField } from '../../arch/fields.ts';
import type { MmioSize } from '../../arch/guest-cpu.ts';
import {
  CERROR_ABT,
  CERROR_ILL,
  CERROR_NONE,
  CMD_0_OP,
  CMD_SYNC_CS_IRQ,
  commandName,
} from '../../arch/smmuv3/commands.ts';
import { C_BAD_STE, C_BAD_STREAMID, EVENT_NAMES, F_STE_FETCH } from '../../arch/smmuv3/events.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_RECINVSID,
  GBPA_ABORT,
  GBPA_UPDATE,
  GERROR_CMDQ_ERR,
  GERROR_EVENTQ_ABT_ERR,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  Q_OVFLG,
  SMMU_AIDR,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR0ACK,
  SMMU_CR1,
  SMMU_CR2,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_CONS_ALIAS,
  SMMU_EVENTQ_IRQ_CFG0,
  SMMU_EVENTQ_PROD,
  SMMU_EVENTQ_PROD_ALIAS,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_GERROR_IRQ_CFG0,
  SMMU_GERRORN,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR2,
  SMMU_IDR3,
  SMMU_IDR4,
  SMMU_IDR5,
  SMMU_IIDR,
  SMMU_IRQ_CTRL,
  SMMU_IRQ_CTRLACK,
  SMMU_REG_FRAME_BYTES,
  SMMU_STATUSR,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import {
  VIRT_SMMU_IRQ_CMD_SYNC,
  VIRT_SMMU_IRQ_EVENTQ,
  VIRT_SMMU_IRQ_GERROR,
  VIRT_SMMU_IRQ_PRIQ,
} from '../../arch/virt.ts';
import type { Granule } from '../../arch/vmsa.ts';
import { type CommandTarget, executeCommand } from '../../hw/smmuv3/commands.ts';
import { decodeSte, type SteConfig } from '../../hw/smmuv3/config.ts';
import { type EventInit, encodeEvent } from '../../hw/smmuv3/event-record.ts';
import {
  type IdRegisters,
  idRegisters,
  resolveFeatures,
  type SmmuFeatures,
} from '../../hw/smmuv3/features.ts';
import type { InvalidationScope } from '../../hw/smmuv3/iotlb.ts';
import { qConsistent, qEmpty, qFull, qIndex, qMask, qNext } from '../../hw/smmuv3/queue.ts';
import { EEXIST } from '../../uapi/errno.ts';
import type {
  IommuCacheInvalidateInfoInput,
  IommuFaultRecord,
  IommuPasidTableConfigInput,
} from '../../uapi/iommu.ts';
import type { GuestRam, MmioOps } from '../memory.ts';
import type { AddressSpace, HostIOMMUContext, PCIBusIdentity, PCIIOMMUOps } from '../pci/iommu.ts';
import {
  cfgiCdAllInvalidation,
  cfgiCdInvalidation,
  faultToEvent,
  HOST_ABORT,
  HOST_BYPASS,
  type HostStreamConfig,
  pasidTableConfig,
  sameHostConfig,
  steHostConfig,
  tlbiInvalidations,
} from './forward.ts';
import { guestSte, locateCd, lookupSte, translateNoPasid } from './guest-tables.ts';

/** INTIDs of the SMMU's wired interrupts. */
export interface VirtSmmuIrqs {
  readonly eventq: number;
  readonly priq: number;
  readonly cmdSync: number;
  readonly gerror: number;
}

export const VIRT_SMMU_IRQS: VirtSmmuIrqs = {
  eventq: VIRT_SMMU_IRQ_EVENTQ,
  priq: VIRT_SMMU_IRQ_PRIQ,
  cmdSync: VIRT_SMMU_IRQ_CMD_SYNC,
  gerror: VIRT_SMMU_IRQ_GERROR,
};

export interface VirtSmmuOptions {
  /** Guest RAM as the VMM maps it: the guest's tables and queues live there. */
  readonly ram: GuestRam;
  /** Drives an interrupt line (the machine turns it into KVM_IRQ_LINE). */
  readonly setIrq: (intid: number, level: boolean) => void;
  /** Default VIRT_SMMU_IRQ_*. */
  readonly irqs?: VirtSmmuIrqs;
  /** IDR5.OAS: the VM's IPA size in bits (32, 36, 40, 42, 44, 48); default 40. */
  readonly oasBits?: number;
  /** IDR1.SSIDSIZE, default 20. */
  readonly ssidBits?: number;
  /** Most entries kept in `log` (oldest dropped first); default 1024. */
  readonly logLimit?: number;
}

export interface VirtSmmuStats {
  /** Commands consumed (legal or not). */
  commands: number;
  commandErrors: number;
  byCommand: Record<string, number>;
  /** CFGI_STE / CFGI_STE_RANGE / CFGI_ALL commands. */
  cfgiSte: number;
  /** CFGI_CD / CFGI_CD_ALL commands. */
  cfgiCd: number;
  /** TLBI_NH_* commands. */
  tlbi: number;
  syncs: number;
  /** SET_PASID_TABLE (SET and UNSET) calls made on host contexts. */
  setPasidTable: number;
  /** CACHE_INVALIDATE calls made on host contexts. */
  cacheInvalidate: number;
  /** Host calls that returned -errno. */
  hostErrors: number;
  /** Fault records received through inject_faults. */
  faultsReceived: number;
  /** Event records written into the guest's event queue. */
  eventsInjected: number;
  /** Events not written (queue disabled, overflow, queue not in RAM, or no guest event for a fault). */
  eventsDropped: number;
  byEvent: Record<string, number>;
  /** Global errors activated (GERROR bits toggled). */
  gerrors: number;
  /** MSI doorbell translations (get_address_space → translate). */
  translations: number;
  mmioReads: number;
  mmioWrites: number;
  /** Writes ignored: read-only, guarded by an enable, unknown offset or unsupported size. */
  mmioIgnored: number;
}

function newStats(): VirtSmmuStats {
  return {
    commands: 0,
    commandErrors: 0,
    byCommand: {},
    cfgiSte: 0,
    cfgiCd: 0,
    tlbi: 0,
    syncs: 0,
    setPasidTable: 0,
    cacheInvalidate: 0,
    hostErrors: 0,
    faultsReceived: 0,
    eventsInjected: 0,
    eventsDropped: 0,
    byEvent: {},
    gerrors: 0,
    translations: 0,
    mmioReads: 0,
    mmioWrites: 0,
    mmioIgnored: 0,
  };
}

/** One operation forwarded to a host context. */
export type VirtSmmuLogEntry =
  | {
      readonly op: 'SET_PASID_TABLE';
      /** What caused it: a guest command name, 'SMMU_CR0', 'SMMU_GBPA' or 'set_iommu_context'. */
      readonly cause: string;
      readonly sid: number;
      readonly ctx: string;
      readonly config: IommuPasidTableConfigInput;
      readonly result: number;
    }
  | {
      readonly op: 'UNSET_PASID_TABLE';
      readonly cause: string;
      readonly sid: number;
      readonly ctx: string;
      readonly result: number;
    }
  | {
      readonly op: 'CACHE_INVALIDATE';
      readonly cause: string;
      /** The StreamID the command named, or -1 (TLBIs name ASIDs). */
      readonly sid: number;
      readonly ctx: string;
      readonly info: IommuCacheInvalidateInfoInput;
      readonly result: number;
    };

/** What the host was last told about an assigned device's stream ('unset': nothing, or UNSET). */
type HostState = HostStreamConfig | { readonly kind: 'unset' } | { readonly kind: 'unknown' };

/** An assigned device whose host context is registered. */
interface Assigned {
  readonly bus: PCIBusIdentity;
  readonly devfn: number;
  readonly ctx: HostIOMMUContext;
  state: HostState;
}

/** The configuration a stream should have, and the event its STE calls for (if any). */
interface Desired {
  readonly config: HostStreamConfig;
  readonly event?: EventInit;
  readonly reason: string;
}

const TWO_POW_32 = 2 ** 32;
const lo32 = (v: number): number => (v % TWO_POW_32) >>> 0;
const hi32 = (v: number): number => Math.floor(v / TWO_POW_32) >>> 0;

/** The guest StreamID of a PCI function: its requester ID (the iommu-map is the identity). */
export function pciStreamId(bus: PCIBusIdentity, devfn: number): number {
  return ((bus.busNumber() & 0xff) << 8) | (devfn & 0xff);
}

export class VirtSmmu implements CommandTarget {
  readonly ram: GuestRam;
  readonly features: SmmuFeatures;
  readonly idr: IdRegisters;
  readonly irqs: VirtSmmuIrqs;
  readonly stats: VirtSmmuStats = newStats();
  /** Operations forwarded to host contexts, oldest first (the last `logLimit`). */
  readonly log: VirtSmmuLogEntry[] = [];
  /** The register frame (128 KiB): the machine maps it at VIRT_SMMU. */
  readonly mmio: MmioOps;
  /** The ops table for `pci_setup_iommu(bus, vsmmu.ops, vsmmu)`. */
  readonly ops: PCIIOMMUOps;
  /** The granules advertised (IDR5), smallest first. */
  readonly granules: readonly Granule[];

  private readonly setIrq: (intid: number, level: boolean) => void;
  private readonly logLimit: number;
  private readonly oasLimit: number;
  private readonly devices: Assigned[] = [];
  private readonly spaces = new Map<PCIBusIdentity, Map<number, AddressSpace>>();

  // ---- registers
  private cr0 = 0;
  private cr1 = 0;
  private cr2 = 0;
  private gbpa = 0;
  private irqCtrl = 0;
  private gerror = 0;
  private gerrorn = 0;
  private strtabBase = 0;
  private strtabRa = 0;
  private strtabCfg = 0;
  private cmdqBase = 0;
  private cmdqHiFlags = 0;
  private cmdqLog2Raw = 0;
  private cmdqProd = 0;
  private cmdqCons = 0;
  private cmdqErr = CERROR_NONE;
  private eventqBase = 0;
  private eventqHiFlags = 0;
  private eventqLog2Raw = 0;
  private eventqProd = 0;
  private eventqCons = 0;

  // ---- command execution
  private readonly cmdWords = new Uint32Array(4);
  private pendingSync = -1;
  /** A host refusal of the command being executed: it ends as CERROR_ILL (see `forwardInvalidation`). */
  private hostRefused = false;

  constructor(opts: VirtSmmuOptions) {
    const r = resolveFeatures({
      stage1: true,
      stage2: false,
      hyp: false,
      sidBits: 16,
      ssidBits: opts.ssidBits ?? 20,
      oasBits: opts.oasBits ?? 40,
      granules: [12, 16],
      asid16: true,
      vmid16: false,
      twoLevelStreamTable: true,
      twoLevelCdTable: true,
      rangeInvalidation: true,
      msi: false,
      sev: false,
      termModel: 0,
      reservedBits: 'illegal',
      gbpaAbortAtReset: false,
    });
    // Bad construction options are the machine's programming error, not guest input.
    if (!r.ok) throw new Error(`VirtSmmu: invalid features: ${r.errors.join('; ')}`);
    this.features = r.features;
    this.idr = idRegisters(r.features);
    this.granules = r.features.granules;
    this.ram = opts.ram;
    this.setIrq = opts.setIrq;
    this.irqs = opts.irqs ?? VIRT_SMMU_IRQS;
    this.logLimit = opts.logLimit ?? 1024;
    this.oasLimit = 2 ** r.features.oasBits;
    this.mmio = {
      read: (offset, size) => this.mmioRead(offset, size),
      write: (offset, size, value) => this.mmioWrite(offset, size, value),
    };
    this.ops = {
      get_address_space: (bus, _opaque, devfn) => this.addressSpace(bus, devfn),
      set_iommu_context: (bus, _opaque, devfn, ctx) => this.setIommuContext(bus, devfn, ctx),
      unset_iommu_context: (bus, _opaque, devfn) => this.unsetIommuContext(bus, devfn),
      inject_faults: (bus, _opaque, devfn, faults) => this.injectFaults(bus, devfn, faults),
    };
  }

  // =================================================================== MMIO

  private mmioRead(offset: number, size: MmioSize): number {
    this.stats.mmioReads++;
    if (!Number.isInteger(offset) || offset < 0 || offset >= SMMU_REG_FRAME_BYTES) return 0;
    if (size === 8) {
      const wide = this.read64(offset);
      return wide === undefined ? 0 : wide[1] * TWO_POW_32 + wide[0];
    }
    // Byte and halfword accesses are CONSTRAINED UNPREDICTABLE (§6.2): RAZ/WI, as misalignment.
    if (size !== 4 || (offset & 3) !== 0) return 0;
    const wide = this.read64(offset & ~7);
    if (wide !== undefined) return (offset & 4) !== 0 ? wide[1] : wide[0];
    return this.read32(offset) >>> 0;
  }

  private mmioWrite(offset: number, size: MmioSize, value: number): void {
    this.stats.mmioWrites++;
    if (!Number.isInteger(offset) || offset < 0 || offset >= SMMU_REG_FRAME_BYTES) return this.ignored();
    if (size === 8) {
      if (!this.is64(offset)) return this.ignored();
      return this.write64(offset, lo32(value), hi32(value));
    }
    if (size !== 4 || (offset & 3) !== 0) return this.ignored();
    const v = value >>> 0;
    const base = offset & ~7;
    if (this.is64(base)) {
      const [lo, hi] = this.read64(base)!;
      return this.write64(base, (offset & 4) !== 0 ? lo : v, (offset & 4) !== 0 ? v : hi);
    }
    this.write32(offset, v);
  }

  private ignored(): void {
    this.stats.mmioIgnored++;
  }

  /** The 64-bit registers (MSI configuration registers read as zero: IDR0.MSI = 0). */
  private is64(offset: number): boolean {
    return (
      offset === SMMU_STRTAB_BASE ||
      offset === SMMU_CMDQ_BASE ||
      offset === SMMU_EVENTQ_BASE ||
      offset === SMMU_GERROR_IRQ_CFG0 ||
      offset === SMMU_EVENTQ_IRQ_CFG0
    );
  }

  private read64(offset: number): [number, number] | undefined {
    switch (offset) {
      case SMMU_STRTAB_BASE:
        return [lo32(this.strtabBase), (hi32(this.strtabBase) | (this.strtabRa << 30)) >>> 0];
      case SMMU_CMDQ_BASE:
        return [
          (lo32(this.cmdqBase) | this.cmdqLog2Raw) >>> 0,
          (hi32(this.cmdqBase) | this.cmdqHiFlags) >>> 0,
        ];
      case SMMU_EVENTQ_BASE:
        return [
          (lo32(this.eventqBase) | this.eventqLog2Raw) >>> 0,
          (hi32(this.eventqBase) | this.eventqHiFlags) >>> 0,
        ];
      case SMMU_GERROR_IRQ_CFG0:
      case SMMU_EVENTQ_IRQ_CFG0:
        return [0, 0];
      default:
        return undefined;
    }
  }

  private read32(offset: number): number {
    switch (offset) {
      case SMMU_IDR0:
        return this.idr.idr0;
      case SMMU_IDR1:
        return this.idr.idr1;
      case SMMU_IDR2:
        return this.idr.idr2;
      case SMMU_IDR3:
        return this.idr.idr3;
      case SMMU_IDR4:
        return this.idr.idr4;
      case SMMU_IDR5:
        return this.idr.idr5;
      case SMMU_IIDR:
        return this.idr.iidr;
      case SMMU_AIDR:
        return this.idr.aidr;
      case SMMU_CR0:
      case SMMU_CR0ACK:
        return this.cr0;
      case SMMU_CR1:
        return this.cr1;
      case SMMU_CR2:
        return this.cr2;
      case SMMU_STATUSR:
        return 0;
      case SMMU_GBPA:
        return this.gbpa;
      case SMMU_IRQ_CTRL:
      case SMMU_IRQ_CTRLACK:
        return this.irqCtrl;
      case SMMU_GERROR:
        return this.gerror;
      case SMMU_GERRORN:
        return this.gerrorn;
      case SMMU_STRTAB_BASE_CFG:
        return this.strtabCfg;
      case SMMU_CMDQ_PROD:
        return this.cmdqProd;
      case SMMU_CMDQ_CONS:
        return ((this.cmdqCons & qMask(this.cmdqLog2())) | (this.cmdqErr << 24)) >>> 0;
      case SMMU_EVENTQ_PROD:
      case SMMU_EVENTQ_PROD_ALIAS:
        return ((this.eventqProd & qMask(this.eventqLog2())) | (this.eventqProd & Q_OVFLG)) >>> 0;
      case SMMU_EVENTQ_CONS:
      case SMMU_EVENTQ_CONS_ALIAS:
        return this.eventqCons;
      default:
        return 0;
    }
  }

  private write32(offset: number, v: number): void {
    switch (offset) {
      case SMMU_CR0:
        return this.writeCr0(v);
      case SMMU_CR1:
        return this.writeCr1(v);
      case SMMU_CR2:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.cr2 = v & CR2_RECINVSID;
        return;
      case SMMU_GBPA:
        return this.writeGbpa(v);
      case SMMU_IRQ_CTRL:
        // No PRI queue: PRIQ_IRQEN is RES0.
        this.irqCtrl = v & (IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN);
        return;
      case SMMU_GERRORN:
        return this.writeGerrorn(v);
      case SMMU_STRTAB_BASE_CFG:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.strtabCfg = v & 0x3_07ff;
        return;
      case SMMU_CMDQ_PROD:
        this.cmdqProd = v & 0xf_ffff;
        this.processCommands();
        return;
      case SMMU_CMDQ_CONS:
        // Guarded by CMDQEN; ERR is the SMMU's own (as the hardware model decides).
        if (this.cr0 & CR0_CMDQEN) return this.ignored();
        this.cmdqCons = v & qMask(this.cmdqLog2());
        return;
      case SMMU_EVENTQ_PROD:
      case SMMU_EVENTQ_PROD_ALIAS:
        if (this.cr0 & CR0_EVENTQEN) return this.ignored();
        this.eventqProd = (v & (0xf_ffff | Q_OVFLG)) >>> 0;
        return;
      case SMMU_EVENTQ_CONS:
      case SMMU_EVENTQ_CONS_ALIAS:
        this.eventqCons = (v & (0xf_ffff | Q_OVFLG)) >>> 0;
        return;
      default:
        return this.ignored();
    }
  }

  private write64(offset: number, lo: number, hi: number): void {
    const addr = (lowBits: number): number => {
      const a = (hi & 0xf_ffff) * TWO_POW_32 + ((lo & ~(2 ** lowBits - 1)) >>> 0);
      return a >= this.oasLimit ? a % this.oasLimit : a;
    };
    switch (offset) {
      case SMMU_STRTAB_BASE:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.strtabBase = addr(6);
        this.strtabRa = (hi >>> 30) & 1;
        return;
      case SMMU_CMDQ_BASE:
        if (this.cr0 & CR0_CMDQEN) return this.ignored();
        this.cmdqBase = addr(5);
        this.cmdqLog2Raw = lo & 0x1f;
        this.cmdqHiFlags = hi & 0x4000_0000;
        return;
      case SMMU_EVENTQ_BASE:
        if (this.cr0 & CR0_EVENTQEN) return this.ignored();
        this.eventqBase = addr(5);
        this.eventqLog2Raw = lo & 0x1f;
        this.eventqHiFlags = hi & 0x4000_0000;
        return;
      default:
        // *_IRQ_CFG0: RES0 without IDR0.MSI.
        return this.ignored();
    }
  }

  /** CR1: TABLE_* fields are guarded by SMMUEN, QUEUE_* fields by the queue enables (§6.3.11). */
  private writeCr1(v: number): void {
    let mask = 0;
    if ((this.cr0 & CR0_SMMUEN) === 0) mask |= 0xfc0;
    if ((this.cr0 & (CR0_CMDQEN | CR0_EVENTQEN)) === 0) mask |= 0x03f;
    if (((v ^ this.cr1) & ~mask & 0xfff) !== 0) this.ignored();
    this.cr1 = (this.cr1 & ~mask) | (v & mask);
  }

  /**
   * CR0: CR0ACK follows at once. SMMUEN changes what every assigned stream is: enabling it
   * applies each stream's STE, disabling it applies GBPA (Decision: the host is told at once,
   * as if the guest had issued CFGI_ALL — the physical SMMU must stop using the guest's tables
   * when the guest turns its SMMU off).
   */
  private writeCr0(v: number): void {
    const before = this.cr0;
    this.cr0 = v & (CR0_SMMUEN | CR0_EVENTQEN | CR0_CMDQEN);
    if (((before ^ this.cr0) & CR0_SMMUEN) !== 0) this.refreshAll('SMMU_CR0');
    if ((this.cr0 & CR0_CMDQEN) !== 0 && (before & CR0_CMDQEN) === 0) this.processCommands();
  }

  /** GBPA: an update (Update = 1) completes at once; with SMMUEN = 0 it changes every assigned stream. */
  private writeGbpa(v: number): void {
    if ((v & GBPA_UPDATE) === 0) return this.ignored();
    const before = this.gbpa;
    this.gbpa = v & 0x001f_3f1f;
    if ((this.cr0 & CR0_SMMUEN) === 0 && ((before ^ this.gbpa) & GBPA_ABORT) !== 0)
      this.refreshAll('SMMU_GBPA');
  }

  private writeGerrorn(v: number): void {
    const wasStopped = this.cmdqErrorActive();
    this.gerrorn = v & 0x1fd;
    if (wasStopped && !this.cmdqErrorActive()) this.processCommands();
  }

  private cmdqLog2(): number {
    return Math.min(this.cmdqLog2Raw, this.features.cmdqLog2Max);
  }

  private eventqLog2(): number {
    return Math.min(this.eventqLog2Raw, this.features.eventqLog2Max);
  }

  private cmdqErrorActive(): boolean {
    return ((this.gerror ^ this.gerrorn) & GERROR_CMDQ_ERR) !== 0;
  }

  // =================================================================== interrupts and GERROR

  private pulse(intid: number): void {
    this.setIrq(intid, true);
    this.setIrq(intid, false);
  }

  /** Activates a global error (if inactive) and signals the GERROR interrupt when enabled. */
  private raiseGerror(bit: number): void {
    if (((this.gerror ^ this.gerrorn) & bit) !== 0) return;
    this.gerror = (this.gerror ^ bit) >>> 0;
    this.stats.gerrors++;
    if ((this.irqCtrl & IRQ_CTRL_GERROR_IRQEN) !== 0) this.pulse(this.irqs.gerror);
  }

  // =================================================================== command queue

  get e2h(): boolean {
    return false;
  }

  private cmdqAddr(p: number): number {
    const log2 = this.cmdqLog2();
    const base = this.cmdqBase - (this.cmdqBase % Math.max(16 * 2 ** log2, 32));
    return base + qIndex(p, log2) * 16;
  }

  /** Consumes commands while the queue is enabled, non-empty and free of errors (§4.1.2). */
  private processCommands(): void {
    if ((this.cr0 & CR0_CMDQEN) === 0 || this.cmdqErrorActive()) return;
    const log2 = this.cmdqLog2();
    // An inconsistent PROD/CONS pair is CONSTRAINED UNPREDICTABLE; consumption stops (as the hardware model).
    if (!qConsistent(this.cmdqProd, this.cmdqCons, log2)) return;
    const w = this.cmdWords;
    for (let guard = 2 ** log2; guard > 0 && !qEmpty(this.cmdqProd, this.cmdqCons, log2); guard--) {
      const bytes = this.ram.read(this.cmdqAddr(this.cmdqCons), 16);
      if (bytes === undefined) return this.commandError(CERROR_ABT);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, 16);
      for (let i = 0; i < 4; i++) w[i] = dv.getUint32(i * 4, true);
      this.hostRefused = false;
      const outcome = executeCommand(this, w);
      this.stats.commands++;
      this.stats.byCommand[outcome.name] = (this.stats.byCommand[outcome.name] ?? 0) + 1;
      if (outcome.error !== CERROR_NONE) return this.commandError(outcome.error);
      if (this.hostRefused) return this.commandError(CERROR_ILL);
      this.cmdqCons = qNext(this.cmdqCons, log2);
      this.deliverSync();
    }
  }

  /** Stops the queue on an error: CONS stays on the command, ERR and GERROR.CMDQ_ERR are set (§7.1). */
  private commandError(code: number): void {
    this.stats.commandErrors++;
    this.cmdqErr = code;
    this.raiseGerror(GERROR_CMDQ_ERR);
  }

  /** Every forwarding is synchronous, so a CMD_SYNC completes as soon as CONS passes it (§4.7.3). */
  syncComplete(cs: number, _msiAddr: number, _msiData: number): void {
    this.stats.syncs++;
    this.pendingSync = cs;
  }

  private deliverSync(): void {
    const cs = this.pendingSync;
    this.pendingSync = -1;
    // SIG_IRQ pulses the wired CMD_SYNC line (no enable; IDR0.MSI = 0 so MSIAddr is ignored).
    if (cs === CMD_SYNC_CS_IRQ) this.pulse(this.irqs.cmdSync);
  }

  private commandNameNow(): string {
    return commandName(getField(this.cmdWords, CMD_0_OP));
  }

  // ---- CommandTarget: the legal commands' effects

  invalidateSte(sid: number, _leaf: boolean): void {
    this.stats.cfgiSte++;
    for (const d of this.devicesWhere((s) => s === sid)) this.refresh(d, this.commandNameNow());
  }

  invalidateSteRange(first: number, last: number): void {
    this.stats.cfgiSte++;
    for (const d of this.devicesWhere((s) => s >= first && s <= last)) this.refresh(d, this.commandNameNow());
  }

  invalidateAllConfig(): void {
    this.stats.cfgiSte++;
    for (const d of [...this.devices]) this.refresh(d, 'CMD_CFGI_ALL');
  }

  /**
   * CFGI_CD → the host's PASID cache for that PASID. Decision: forwarded only while the host runs
   * the guest's tables (TRANSLATE); otherwise the host holds none of the guest's CDs, and the next
   * SET_PASID_TABLE rewrites the STE (which invalidates them on the physical SMMU anyway).
   */
  invalidateCd(sid: number, ssid: number, _leaf: boolean): void {
    this.stats.cfgiCd++;
    for (const d of this.devicesWhere((s) => s === sid)) {
      if (d.state.kind === 'translate') this.forwardInvalidation(d.ctx, sid, cfgiCdInvalidation(ssid));
    }
  }

  invalidateCdAll(sid: number): void {
    this.stats.cfgiCd++;
    for (const d of this.devicesWhere((s) => s === sid)) {
      if (d.state.kind === 'translate') this.forwardInvalidation(d.ctx, sid, cfgiCdAllInvalidation());
    }
  }

  /**
   * TLBI_NH_*: they name ASIDs (and addresses), not streams, so each record goes to every
   * registered host context once (contexts shared by several devices are deduplicated), whatever
   * the streams' current configuration — an ASID's entries may outlive a TRANSLATE → ABORT.
   */
  invalidateTlb(_scope: InvalidationScope): void {
    this.stats.tlbi++;
    const infos = tlbiInvalidations(this.cmdWords, this.granules);
    const seen = new Set<HostIOMMUContext>();
    for (const d of this.devices) {
      if (seen.has(d.ctx)) continue;
      seen.add(d.ctx);
      for (const info of infos) this.forwardInvalidation(d.ctx, -1, info);
    }
  }

  // =================================================================== forwarding to the host

  private record(e: VirtSmmuLogEntry): void {
    this.log.push(e);
    if (this.log.length > this.logLimit) this.log.splice(0, this.log.length - this.logLimit);
  }

  /**
   * One CACHE_INVALIDATE. Decision: a refusal (-errno) is recorded and stops the guest's command
   * queue at that command with CERROR_ILL (GERROR.CMDQ_ERR, the GERROR interrupt): the guest learns
   * the invalidation did not happen, and a driver's usual recovery (report, skip the command,
   * resume) keeps it running. CERROR_ABT is not used: drivers retry it, and a deterministic host
   * refusal would then never end.
   */
  private forwardInvalidation(
    ctx: HostIOMMUContext,
    sid: number,
    info: IommuCacheInvalidateInfoInput,
    cause = this.commandNameNow(),
  ): void {
    this.stats.cacheInvalidate++;
    const result = ctx.cacheInvalidate(info);
    this.record({ op: 'CACHE_INVALIDATE', cause, sid, ctx: ctx.name, info, result });
    if (result < 0) {
      this.stats.hostErrors++;
      this.hostRefused = true;
    }
  }

  private setHost(d: Assigned, cfg: HostStreamConfig, cause: string, sid: number): number {
    this.stats.setPasidTable++;
    const config = pasidTableConfig(cfg);
    const result = d.ctx.setPasidTable(config);
    this.record({ op: 'SET_PASID_TABLE', cause, sid, ctx: d.ctx.name, config, result });
    if (result < 0) this.stats.hostErrors++;
    return result;
  }

  /** The registered devices whose current StreamID satisfies `pred` (a snapshot). */
  private devicesWhere(pred: (sid: number) => boolean): Assigned[] {
    return this.devices.filter((d) => pred(pciStreamId(d.bus, d.devfn)));
  }

  private refreshAll(cause: string): void {
    for (const d of [...this.devices]) this.refresh(d, cause);
  }

  /**
   * What a stream's configuration is, from the registers and its STE in guest RAM.
   * Decisions: the vSMMU never sees the device's transactions, so configuration errors are
   * reported when the guest invalidates the configuration (CFGI_*), enabling the SMMU, or a device
   * is assigned — and the host is set to ABORT so the device cannot DMA with a bad configuration:
   * - an ILLEGAL STE (V = 1, decode refuses) → C_BAD_STE;
   * - a StreamID beyond the stream table or its L1STD span → C_BAD_STREAMID (recorded even
   *   without CR2.RECINVSID: this is the guest's table, not a stray transaction);
   * - an L1STD or STE with no guest RAM behind it → F_STE_FETCH with FetchAddr;
   * - STE.V = 0 and an L1STD with Span = 0 are the normal "not configured" states: ABORT, no event.
   */
  private desired(sid: number): Desired {
    if ((this.cr0 & CR0_SMMUEN) === 0) {
      const abort = (this.gbpa & GBPA_ABORT) !== 0;
      return {
        config: abort ? HOST_ABORT : HOST_BYPASS,
        reason: `SMMUEN = 0, GBPA.ABORT = ${abort ? 1 : 0}`,
      };
    }
    const l = lookupSte(this.ram, this.streamTable(), this.features, sid);
    switch (l.kind) {
      case 'no-l2':
        return { config: HOST_ABORT, reason: l.reason };
      case 'bad-streamid':
        return { config: HOST_ABORT, reason: l.reason, event: { id: C_BAD_STREAMID, streamId: sid } };
      case 'fetch-abort':
        return {
          config: HOST_ABORT,
          reason: l.reason,
          event: { id: F_STE_FETCH, streamId: sid, fetchAddr: l.addr },
        };
      default:
        break;
    }
    if ((l.words[0]! & 1) === 0) return { config: HOST_ABORT, reason: 'STE.V is 0' };
    const d = decodeSte(l.words, this.features, false);
    if (!d.ok) return { config: HOST_ABORT, reason: d.reason, event: { id: C_BAD_STE, streamId: sid } };
    return { config: steHostConfig(d.value), reason: 'STE' };
  }

  private streamTable(): { base: number; cfg: number } {
    return { base: this.strtabBase, cfg: this.strtabCfg };
  }

  /**
   * Brings the host's configuration of one assigned stream in line with the guest's.
   *
   * Decisions:
   * - TRANSLATE → a different TRANSLATE: the host refuses a stage-1 → stage-1 change (§1.3), so
   *   the vSMMU sends ABORT first, then the new TRANSLATE — break-before-make, as the host driver
   *   itself rewrites a live STE. ABORT rather than UNSET: UNSET would leave stage 2 only, letting
   *   the device's DMA bypass the guest's stage 1 for that moment.
   * - An unchanged TRANSLATE is not sent again (the host would refuse it); the architecture makes
   *   CFGI_STE invalidate the stream's cached CDs too, so a PASID-cache invalidation of every CD
   *   (DOMAIN granularity) is forwarded instead. Other unchanged configurations send nothing.
   * - A refused SET_PASID_TABLE is recorded, reported to the guest as C_BAD_STE for that
   *   StreamID, and the host is asked for ABORT so the device cannot DMA with a half-applied
   *   configuration. If the host refuses that too, the state is 'unknown' and the next refresh
   *   sends the configuration again.
   */
  private refresh(d: Assigned, cause: string): void {
    const sid = pciStreamId(d.bus, d.devfn);
    const want = this.desired(sid);
    if (want.event !== undefined) this.writeEvents([want.event]);
    const cur = d.state;
    const known = cur.kind !== 'unset' && cur.kind !== 'unknown';
    if (known && sameHostConfig(cur, want.config)) {
      if (want.config.kind === 'translate' && cause.startsWith('CMD_')) {
        this.forwardInvalidation(d.ctx, sid, cfgiCdAllInvalidation(), cause);
      }
      return;
    }
    if (cur.kind === 'translate' && want.config.kind === 'translate') {
      if (this.setHost(d, HOST_ABORT, cause, sid) < 0) return this.hostRefusedSte(d, sid, cause);
      d.state = HOST_ABORT;
    }
    if (this.setHost(d, want.config, cause, sid) < 0) return this.hostRefusedSte(d, sid, cause);
    d.state = want.config;
  }

  private hostRefusedSte(d: Assigned, sid: number, cause: string): void {
    this.writeEvents([{ id: C_BAD_STE, streamId: sid }]);
    d.state = this.setHost(d, HOST_ABORT, cause, sid) < 0 ? { kind: 'unknown' } : HOST_ABORT;
  }

  // =================================================================== event queue

  private eventqAddr(p: number): number {
    const log2 = this.eventqLog2();
    const base = this.eventqBase - (this.eventqBase % Math.max(32 * 2 ** log2, 32));
    return base + qIndex(p, log2) * 32;
  }

  /** Writes one record (§7.2, §7.4): true when it reached the queue. */
  private writeEvent(init: EventInit): boolean {
    const name = EVENT_NAMES[init.id] ?? String(init.id);
    this.stats.byEvent[name] = (this.stats.byEvent[name] ?? 0) + 1;
    if ((this.cr0 & CR0_EVENTQEN) === 0) return false;
    if (((this.gerror ^ this.gerrorn) & GERROR_EVENTQ_ABT_ERR) !== 0) return false;
    const log2 = this.eventqLog2();
    if (qFull(this.eventqProd, this.eventqCons, log2)) {
      // Overflow: toggle OVFLG unless an overflow is already pending (§7.4).
      if ((this.eventqProd & Q_OVFLG) === (this.eventqCons & Q_OVFLG))
        this.eventqProd = (this.eventqProd ^ Q_OVFLG) >>> 0;
      return false;
    }
    const words = encodeEvent(init);
    if (
      !this.ram.write(this.eventqAddr(this.eventqProd), new Uint8Array(words.buffer, words.byteOffset, 32))
    ) {
      // The queue is not in guest RAM: an abort on the event queue write; PROD does not advance.
      this.raiseGerror(GERROR_EVENTQ_ABT_ERR);
      return false;
    }
    const ov = this.eventqProd & Q_OVFLG;
    this.eventqProd = (qNext(this.eventqProd, log2) | ov) >>> 0;
    return true;
  }

  /**
   * Writes a batch of events and signals the event queue interrupt once if any was written and
   * IRQ_CTRL.EVENTQ_IRQEN is set. Decision: one pulse per batch with new records (rather than only
   * on the empty → non-empty transition): an extra edge costs a guest one empty queue scan, a
   * missing one would leave records unread.
   */
  private writeEvents(inits: readonly EventInit[]): number {
    let written = 0;
    for (const init of inits) {
      if (this.writeEvent(init)) written++;
      else this.stats.eventsDropped++;
    }
    this.stats.eventsInjected += written;
    if (written > 0 && (this.irqCtrl & IRQ_CTRL_EVENTQ_IRQEN) !== 0) this.pulse(this.irqs.eventq);
    return written;
  }

  // =================================================================== PCIIOMMUOps

  private find(bus: PCIBusIdentity, devfn: number): Assigned | undefined {
    return this.devices.find((d) => d.bus === bus && d.devfn === devfn);
  }

  /**
   * An assigned device's host context: registered, then told the stream's current configuration
   * (GBPA while SMMUEN = 0, else its STE). Decision: registering a second context for the same
   * function is -EEXIST (the same context again is accepted and re-applies the configuration).
   * One SET_PASID_TABLE applies to every device of a container, so each assigned device should
   * have its own container, as QEMU's Arm nested series requires.
   */
  private setIommuContext(bus: PCIBusIdentity, devfn: number, ctx: HostIOMMUContext): number {
    let d = this.find(bus, devfn);
    if (d !== undefined && d.ctx !== ctx) return -EEXIST;
    if (d === undefined) {
      d = { bus, devfn, ctx, state: { kind: 'unset' } };
      this.devices.push(d);
    }
    this.refresh(d, 'set_iommu_context');
    return 0;
  }

  /** Forgets a device's context after UNSET (the host then has stage 2 only). */
  private unsetIommuContext(bus: PCIBusIdentity, devfn: number): void {
    const d = this.find(bus, devfn);
    if (d === undefined) return;
    this.devices.splice(this.devices.indexOf(d), 1);
    this.stats.setPasidTable++;
    const result = d.ctx.unsetPasidTable();
    if (result < 0) this.stats.hostErrors++;
    const sid = pciStreamId(bus, devfn);
    this.record({ op: 'UNSET_PASID_TABLE', cause: 'unset_iommu_context', sid, ctx: d.ctx.name, result });
  }

  /** Host fault records of one device → the guest's event queue (`faultToEvent`). Returns 0. */
  private injectFaults(bus: PCIBusIdentity, devfn: number, faults: readonly IommuFaultRecord[]): number {
    const sid = pciStreamId(bus, devfn);
    this.stats.faultsReceived += faults.length;
    const events: EventInit[] = [];
    let ste: SteConfig | undefined;
    let steRead = false;
    const locate = (ssid: number) => {
      if (!steRead) {
        steRead = true;
        const g = guestSte(this.ram, this.streamTable(), this.features, sid);
        ste = g.ok && g.ste.s1 ? g.ste : undefined;
      }
      return ste === undefined ? undefined : locateCd(this.ram, ste, this.features, ssid);
    };
    for (const f of faults) {
      const t = faultToEvent(f, sid, locate);
      if (t.ok) events.push(t.event);
      else this.stats.eventsDropped++;
    }
    if (events.length > 0) this.writeEvents(events);
    return 0;
  }

  /** The per-function address space: translates MSI doorbell addresses through the guest's CD 0. */
  private addressSpace(bus: PCIBusIdentity, devfn: number): AddressSpace {
    let byDevfn = this.spaces.get(bus);
    if (byDevfn === undefined) {
      byDevfn = new Map();
      this.spaces.set(bus, byDevfn);
    }
    let as = byDevfn.get(devfn);
    if (as === undefined) {
      const name = `smmuv3-${bus.name}-${devfn.toString(16).padStart(2, '0')}`;
      as = {
        name,
        translate: (iova, isWrite) => {
          this.stats.translations++;
          const st = {
            smmuen: (this.cr0 & CR0_SMMUEN) !== 0,
            gbpaAbort: (this.gbpa & GBPA_ABORT) !== 0,
            regs: this.streamTable(),
          };
          return translateNoPasid(this.ram, st, this.features, pciStreamId(bus, devfn), iova, isWrite);
        },
      };
      byDevfn.set(devfn, as);
    }
    return as;
  }

  // =================================================================== inspection

  /** Register values by name (for reports and tests). */
  registerSnapshot(): Record<string, number> {
    return {
      SMMU_CR0: this.cr0,
      SMMU_GBPA: this.gbpa,
      SMMU_IRQ_CTRL: this.irqCtrl,
      SMMU_GERROR: this.gerror,
      SMMU_GERRORN: this.gerrorn,
      SMMU_STRTAB_BASE: this.strtabBase,
      SMMU_STRTAB_BASE_CFG: this.strtabCfg,
      SMMU_CMDQ_BASE: this.cmdqBase,
      SMMU_CMDQ_PROD: this.cmdqProd,
      SMMU_CMDQ_CONS: this.read32(SMMU_CMDQ_CONS),
      SMMU_EVENTQ_BASE: this.eventqBase,
      SMMU_EVENTQ_PROD: this.read32(SMMU_EVENTQ_PROD),
      SMMU_EVENTQ_CONS: this.eventqCons,
    };
  }

  /** What the host was last told about an assigned function ('unset' when nothing yet). */
  hostState(bus: PCIBusIdentity, devfn: number): string | undefined {
    return this.find(bus, devfn)?.state.kind;
  }
}

/**
 * The VMM's VFIO container (QEMU's hw/vfio/common.c container handling, and the container as the
 * `HostIOMMUContext` of the vSVA series — seed-spec §2, §3.2): one /dev/vfio/vfio fd, the groups
 * attached to it, the IOMMU type, the DMA mappings of guest RAM, and the nesting operations a vIOMMU
 * forwards to the host.
 *
 * Bring-up, all through the uAPI: open /dev/vfio/vfio; VFIO_GET_API_VERSION must be
 * VFIO_API_VERSION and VFIO_CHECK_EXTENSION must announce the IOMMU type (by default
 * VFIO_TYPE1_NESTING_IOMMU). `addGroup(n)` opens /dev/vfio/<n>, requires VFIO_GROUP_FLAGS_VIABLE
 * from VFIO_GROUP_GET_STATUS, attaches it with VFIO_GROUP_SET_CONTAINER; with the first group the
 * container issues VFIO_SET_IOMMU and VFIO_IOMMU_MAP_DMA for every guest RAM block (IOVA = GPA,
 * vaddr = the VMM's host virtual address): device DMA at a guest-physical address reaches the RAM
 * the guest sees there (stage 2 when nested).
 *
 * As a HostIOMMUContext (flags HOST_IOMMU_NESTING for the nesting type): VFIO_IOMMU_SET_PASID_TABLE
 * (SET/UNSET), VFIO_IOMMU_CACHE_INVALIDATE and VFIO_IOMMU_SET_MSI_BINDING (BIND/UNBIND) on the
 * container fd, structs encoded from `src/uapi`. Each returns 0 or the -errno the host gave; every
 * ioctl is recorded in `log` (an `IoctlLog`), refusals included, and nothing throws.
 *
 * `close()` undoes everything it did, in reverse: MSI bindings, the PASID table, the DMA mappings
 * (the pinned pages go back), the groups (UNSET_CONTAINER, close) and the container fd. Device fds
 * belong to the vfio-pci frontends and must be closed first (the host refuses UNSET_CONTAINER with
 * EBUSY while a device is open; that refusal is logged and the fds are closed anyway).
 */

import type { Process } from '../../host/kernel/process.ts';
import { EINVAL, EPERM } from '../../uapi/errno.ts';
import type { IommuCacheInvalidateInfoInput, IommuPasidTableConfigInput } from '../../uapi/iommu.ts';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_BIND_MSI,
  VFIO_IOMMU_CACHE_INVALIDATE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SET_MSI_BINDING,
  VFIO_IOMMU_SET_PASID_TABLE,
  VFIO_IOMMU_UNBIND_MSI,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_PASID_TABLE_FLAG_SET,
  VFIO_PASID_TABLE_FLAG_UNSET,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  vfio_iommu_type1_cache_invalidate,
  vfio_iommu_type1_set_msi_binding,
  vfio_iommu_type1_set_pasid_table,
} from '../../uapi/vfio.ts';
import { VFIO_GROUP_FLAGS_VIABLE, vfio_group_status } from '../../uapi/vfio-device.ts';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../../uapi/vfio-type1.ts';
import type { RamBlock } from '../memory.ts';
import { HOST_IOMMU_NESTING, type HostIOMMUContext } from '../pci/iommu.ts';
import { IoctlLog } from './ioctl-log.ts';

export interface VfioContainerOptions {
  readonly proc: Process;
  /** Guest RAM to map for DMA (IOVA = GPA). */
  readonly ram: readonly RamBlock[];
  /** The IOMMU type for VFIO_SET_IOMMU (default VFIO_TYPE1_NESTING_IOMMU). */
  readonly type?: number;
  readonly name?: string;
  /** A log shared with other VFIO objects (default: a new one). */
  readonly log?: IoctlLog;
}

/** A little-endian s32 (the argument of VFIO_GROUP_SET_CONTAINER). */
function s32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

const readS32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getInt32(0, true);

export class VfioContainer implements HostIOMMUContext {
  readonly name: string;
  readonly proc: Process;
  readonly ram: readonly RamBlock[];
  readonly type: number;
  readonly log: IoctlLog;
  /** The container fd (-1 before `open` and after `close`). */
  fd = -1;
  /** Group number → group fd. */
  private readonly groups = new Map<number, number>();
  /** RAM blocks mapped for DMA. */
  private readonly mapped: RamBlock[] = [];
  private iommuSet = false;
  private pasidTableSet = false;
  /** gIOVAs bound with SET_MSI_BINDING. */
  private readonly msiBindings = new Set<number>();

  constructor(opts: VfioContainerOptions) {
    this.proc = opts.proc;
    this.ram = opts.ram;
    this.type = opts.type ?? VFIO_TYPE1_NESTING_IOMMU;
    this.name = opts.name ?? 'vfio-container';
    this.log = opts.log ?? new IoctlLog();
  }

  /** HOST_IOMMU_NESTING for a nesting container. */
  get flags(): number {
    return this.type === VFIO_TYPE1_NESTING_IOMMU ? HOST_IOMMU_NESTING : 0;
  }

  /** Ioctls issued through this container's log. */
  get ioctls(): number {
    return this.log.ioctls;
  }

  /** Bytes of guest RAM mapped for DMA. */
  get mappedBytes(): number {
    return this.mapped.reduce((n, b) => n + b.size, 0);
  }

  /** The fd of group `n`, or -1. */
  groupFd(n: number): number {
    return this.groups.get(n) ?? -1;
  }

  /** Whether a PASID table is installed (inspection). */
  get hasPasidTable(): boolean {
    return this.pasidTableSet;
  }

  /** gIOVAs currently bound (inspection). */
  get boundMsiIovas(): number[] {
    return [...this.msiBindings].sort((a, b) => a - b);
  }

  private ioctl(
    fd: number,
    name: string,
    req: number,
    arg: Uint8Array | number,
    decode?: (b: Uint8Array) => unknown,
  ): number {
    return this.log.issue(this.proc, fd, name, req, arg, decode);
  }

  // ------------------------------------------------------------ bring-up

  /**
   * Opens /dev/vfio/vfio and checks the API version and the IOMMU type's extension: 0, the open's
   * -errno, or -EINVAL for a wrong version or a missing extension (the fd is closed again).
   */
  open(): number {
    if (this.fd >= 0) return 0;
    const fd = this.proc.open('/dev/vfio/vfio');
    if (fd < 0) return fd;
    const version = this.ioctl(fd, 'VFIO_GET_API_VERSION', VFIO_GET_API_VERSION, 0);
    const ext =
      version === VFIO_API_VERSION
        ? this.ioctl(fd, 'VFIO_CHECK_EXTENSION', VFIO_CHECK_EXTENSION, this.type)
        : 0;
    if (version !== VFIO_API_VERSION || ext !== 1) {
      this.proc.close(fd);
      return -EINVAL;
    }
    this.fd = fd;
    return 0;
  }

  /**
   * Attaches group `n` (opening the container first if needed): the group fd, or -errno. A group
   * already attached returns its fd. Decision: a group that is not viable is -EPERM (QEMU fails with
   * "group is not viable"; the kernel would refuse SET_CONTAINER with -EPERM too).
   */
  addGroup(n: number): number {
    const known = this.groups.get(n);
    if (known !== undefined) return known;
    const o = this.open();
    if (o !== 0) return o;
    const g = this.proc.open(`/dev/vfio/${n}`);
    if (g < 0) return g;
    const status = vfio_group_status.encode({ argsz: vfio_group_status.size });
    const st = this.ioctl(g, 'VFIO_GROUP_GET_STATUS', VFIO_GROUP_GET_STATUS, status, (b) =>
      vfio_group_status.decode(b),
    );
    if (st < 0 || (vfio_group_status.decode(status).flags & VFIO_GROUP_FLAGS_VIABLE) === 0) {
      this.proc.close(g);
      return st < 0 ? st : -EPERM;
    }
    const set = this.ioctl(g, 'VFIO_GROUP_SET_CONTAINER', VFIO_GROUP_SET_CONTAINER, s32(this.fd), (b) => ({
      container_fd: readS32(b),
    }));
    if (set < 0) {
      this.proc.close(g);
      return set;
    }
    this.groups.set(n, g);
    if (!this.iommuSet) {
      const r = this.setIommuAndMap();
      if (r !== 0) {
        this.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER', VFIO_GROUP_UNSET_CONTAINER, 0);
        this.proc.close(g);
        this.groups.delete(n);
        return r;
      }
    }
    return g;
  }

  /** VFIO_SET_IOMMU, then MAP_DMA of every RAM block; on a failure the blocks mapped so far are unmapped. */
  private setIommuAndMap(): number {
    const r = this.ioctl(this.fd, 'VFIO_SET_IOMMU', VFIO_SET_IOMMU, this.type);
    if (r < 0) return r;
    this.iommuSet = true;
    for (const b of this.ram) {
      const m = this.mapDma(b);
      if (m < 0) {
        this.unmapAll();
        return m;
      }
    }
    return 0;
  }

  private mapDma(b: RamBlock): number {
    const arg = vfio_iommu_type1_dma_map.encode({
      argsz: vfio_iommu_type1_dma_map.size,
      flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
      vaddr: BigInt(b.hva),
      iova: BigInt(b.gpa),
      size: BigInt(b.size),
    });
    const r = this.ioctl(this.fd, 'VFIO_IOMMU_MAP_DMA', VFIO_IOMMU_MAP_DMA, arg, (x) =>
      vfio_iommu_type1_dma_map.decode(x),
    );
    if (r === 0) this.mapped.push(b);
    return r;
  }

  private unmapAll(): void {
    for (const b of this.mapped.splice(0).reverse()) {
      const arg = vfio_iommu_type1_dma_unmap.encode({
        argsz: vfio_iommu_type1_dma_unmap.size,
        iova: BigInt(b.gpa),
        size: BigInt(b.size),
      });
      this.ioctl(this.fd, 'VFIO_IOMMU_UNMAP_DMA', VFIO_IOMMU_UNMAP_DMA, arg, (x) =>
        vfio_iommu_type1_dma_unmap.decode(x),
      );
    }
  }

  // ------------------------------------------------------------ HostIOMMUContext

  setPasidTable(config: IommuPasidTableConfigInput): number {
    const arg = vfio_iommu_type1_set_pasid_table.encode({
      argsz: vfio_iommu_type1_set_pasid_table.size,
      flags: VFIO_PASID_TABLE_FLAG_SET,
      config,
    });
    const r = this.ioctl(this.fd, 'VFIO_IOMMU_SET_PASID_TABLE', VFIO_IOMMU_SET_PASID_TABLE, arg, (b) =>
      vfio_iommu_type1_set_pasid_table.decode(b),
    );
    if (r === 0) this.pasidTableSet = true;
    return r;
  }

  unsetPasidTable(): number {
    const arg = vfio_iommu_type1_set_pasid_table.encode({
      argsz: vfio_iommu_type1_set_pasid_table.size,
      flags: VFIO_PASID_TABLE_FLAG_UNSET,
    });
    const r = this.ioctl(this.fd, 'VFIO_IOMMU_SET_PASID_TABLE', VFIO_IOMMU_SET_PASID_TABLE, arg, (b) =>
      vfio_iommu_type1_set_pasid_table.decode(b),
    );
    if (r === 0) this.pasidTableSet = false;
    return r;
  }

  cacheInvalidate(info: IommuCacheInvalidateInfoInput): number {
    const arg = vfio_iommu_type1_cache_invalidate.encode({
      argsz: vfio_iommu_type1_cache_invalidate.size,
      flags: 0,
      info,
    });
    return this.ioctl(this.fd, 'VFIO_IOMMU_CACHE_INVALIDATE', VFIO_IOMMU_CACHE_INVALIDATE, arg, (b) =>
      vfio_iommu_type1_cache_invalidate.decode(b),
    );
  }

  setMsiBinding(giova: number, gpa: number, size: number): number {
    const arg = vfio_iommu_type1_set_msi_binding.encode({
      argsz: vfio_iommu_type1_set_msi_binding.size,
      flags: VFIO_IOMMU_BIND_MSI,
      iova: BigInt(giova),
      gpa: BigInt(gpa),
      size: BigInt(size),
    });
    const r = this.ioctl(this.fd, 'VFIO_IOMMU_SET_MSI_BINDING', VFIO_IOMMU_SET_MSI_BINDING, arg, (b) =>
      vfio_iommu_type1_set_msi_binding.decode(b),
    );
    if (r === 0) this.msiBindings.add(giova);
    return r;
  }

  unsetMsiBinding(giova: number): number {
    const arg = vfio_iommu_type1_set_msi_binding.encode({
      argsz: vfio_iommu_type1_set_msi_binding.size,
      flags: VFIO_IOMMU_UNBIND_MSI,
      iova: BigInt(giova),
    });
    const r = this.ioctl(this.fd, 'VFIO_IOMMU_SET_MSI_BINDING', VFIO_IOMMU_SET_MSI_BINDING, arg, (b) =>
      vfio_iommu_type1_set_msi_binding.decode(b),
    );
    if (r === 0) this.msiBindings.delete(giova);
    return r;
  }

  // ------------------------------------------------------------ teardown

  /**
   * Undoes everything: MSI bindings, the PASID table, DMA mappings, groups, the container fd.
   * Returns 0, or the first -errno a step gave (every step is attempted; EBUSY from UNSET_CONTAINER
   * means a device fd is still open).
   */
  close(): number {
    let first = 0;
    const note = (r: number): void => {
      if (r < 0 && first === 0) first = r;
    };
    for (const giova of [...this.msiBindings]) note(this.unsetMsiBinding(giova));
    this.msiBindings.clear();
    if (this.pasidTableSet) note(this.unsetPasidTable());
    this.pasidTableSet = false;
    this.unmapAll();
    for (const [, g] of this.groups) {
      const r = this.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER', VFIO_GROUP_UNSET_CONTAINER, 0);
      note(r);
      note(this.proc.close(g));
    }
    this.groups.clear();
    if (this.fd >= 0) note(this.proc.close(this.fd));
    this.fd = -1;
    this.iommuSet = false;
    return first;
  }
}

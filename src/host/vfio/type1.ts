/**
 * VFIO's type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c, Linux v5.10): the `struct
 * vfio_iommu` of one container. Groups attach to IOMMU domains (one domain per compatible set of
 * groups, so a container spanning two SMMUs holds two); user memory is pinned, charged to
 * RLIMIT_MEMLOCK and mapped into every domain by VFIO_IOMMU_MAP_DMA, and unmapped and unpinned by
 * VFIO_IOMMU_UNMAP_DMA; VFIO_IOMMU_GET_INFO reports the page sizes and, as capabilities, the valid
 * IOVA ranges (aperture minus reserved regions) and the DMA entries still available. The nesting
 * ioctls of seed-spec §2 are the container's (nesting.ts), built on `domains` here.
 *
 * The structure follows Linux: `vfio_dma` records kept in IOVA order (Linux's rb-tree), pinning
 * in physically contiguous runs (vfio_pin_pages_remote) so that hugetlb memory maps as 2 MiB
 * blocks, the IOMMU itself as the record of which pages are pinned (vfio_unmap_unpin reads them
 * back with iova_to_phys on the first domain), replay of existing mappings into a new domain,
 * the IOVA list narrowed by apertures and reserved regions, and every ioctl's copy/check order.
 * A refused request returns its errno and leaves mappings, pins, locked_vm, domains and group
 * attachments as they were.
 *
 * User-supplied 64-bit values (IOVA, vaddr, size, page-size bitmap, IOVA ranges) are bigints, as
 * the uAPI decodes them; addresses handed to the iommu core and the mm are numbers (the valid IOVA
 * ranges keep them below 2^53 whenever a domain exists).
 *
 * Decisions (where Linux leaves a choice or vsva differs):
 * - Decision: v5.10's uAPI: MAP_DMA accepts READ|WRITE only (the v5.12 VADDR flag is EINVAL),
 *   UNMAP_DMA accepts GET_DIRTY_BITMAP only (v5.12 ALL and VADDR are EINVAL), and
 *   VFIO_CHECK_EXTENSION reports 0 for VFIO_UNMAP_ALL / VFIO_UPDATE_VADDR.
 * - Decision: no dirty-page logging: VFIO_IOMMU_DIRTY_PAGES is -ENOTTY, GET_INFO carries no
 *   migration capability (its presence announces dirty logging), and UNMAP_DMA with
 *   GET_DIRTY_BITMAP makes all of Linux's checks and then fails with -EINVAL because logging is
 *   never on. A bitmap page size of 0 is -EINVAL (Linux takes __ffs(0), which is undefined).
 * - Decision: GET_INFO's chain is DMA_AVAIL then IOVA_RANGE (v5.10's order without MIGRATION),
 *   capabilities packed without alignment as v5.10 (see uapi/vfio-type1.ts).
 * - Decision: before the first domain the page-size bitmap is 0 (Linux: kzalloc'd), GET_INFO
 *   reports 0, and MAP/UNMAP_DMA align to PAGE_SIZE (Linux computes 1 << __ffs(0)).
 * - Decision: Linux finds "a" vfio_dma overlapping a range by an rb-tree descent, so which one
 *   UNMAP_DMA meets first depends on the tree's shape; vsva always takes the lowest. This only
 *   matters in v1 (TYPE1) semantics, where an overlapping mapping that begins below the range's
 *   start ends the unmap, and for mappings of another mm, which end it too (both return 0 with
 *   what was unmapped so far).
 * - Decision: attach takes the MSI cookie of the software MSI window before replaying existing
 *   mappings (Linux takes it after the replay and, when it fails, frees the domain without
 *   undoing the replay's pinning). The order is otherwise Linux's.
 * - Decision: the fine-grained-superpage probe (vfio_test_domain_fgsp) is not run; domains are
 *   not fgsp, which is what it finds on an SMMUv3 (io-pgtable-arm unmaps 4 KiB of 8 KiB).
 * - Decision: replay pins in the mm that created each mapping (Linux pins in the attaching
 *   task's mm, which is the same QEMU process in practice).
 * - Decision: the IOMMU's interrupt remapping is `irq_domain_check_msi_remap()` (option
 *   `irqDomainMsiRemap`, default true: a GICv3 ITS host) or the IOMMU's INTR_REMAP capability;
 *   without either, attach is -EPERM unless `allowUnsafeInterrupts`.
 * - Decision: pinning only knows anonymous memory (no VM_PFNMAP/reserved pfns, no mdev external
 *   pins and no unmap notifier); a page that cannot be pinned is -EFAULT, and the task never has
 *   CAP_IPC_LOCK (RLIMIT_MEMLOCK always applies).
 * - Decision: the domain and group lists are in Linux's list order: a new domain, and a group
 *   joining a domain, go to the front (list_add).
 */

import { EEXIST, EFAULT, EINVAL, EIO, ENODEV, ENOMEM, ENOSPC, ENOTTY, EPERM } from '../../uapi/errno.ts';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../uapi/vfio.ts';
import {
  DIRTY_BITMAP_SIZE_MAX,
  dirtyBitmapBytes,
  encodeIovaRangeCap,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_MAP_MINSZ,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_CAPSZ,
  VFIO_IOMMU_INFO_MINSZ,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VfioInfoCap,
  vfio_bitmap,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_dma_avail,
} from '../../uapi/vfio-type1.ts';
import type { IommuCore, IommuGroup } from '../iommu/core.ts';
import {
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  type IommuResvRegion,
} from '../iommu/types.ts';
import { type Mm, PAGE_SIZE, TASK_SIZE } from '../kernel/mm.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg } from '../uaccess.ts';
import type { VfioIommuBackend, VfioIommuDriver } from './iommu-driver.ts';

// ---------------------------------------------------------------- constants

/** The module parameter `dma_entry_limit`: user DMA mappings per container (U16_MAX). */
export const DMA_ENTRY_LIMIT_DEFAULT = 0xffff;

const U64_MAX = (1n << 64n) - 1n;
const PAGE = BigInt(PAGE_SIZE);
/** PAGE_MASK as a u64. */
const PAGE_MASK = U64_MAX ^ (PAGE - 1n);

export interface VfioIommuType1Options {
  /** `dma_entry_limit` (default 65535). */
  readonly dmaEntryLimit?: number;
  /** `allow_unsafe_interrupts` (default false). */
  readonly allowUnsafeInterrupts?: boolean;
  /** What irq_domain_check_msi_remap() says on this host (default true: a GICv3 ITS). */
  readonly irqDomainMsiRemap?: boolean;
}

// ---------------------------------------------------------------- records

/** `struct vfio_domain`: an IOMMU domain of the container and the groups attached to it. */
export interface VfioDomain {
  readonly domain: IommuDomain;
  /** Newest first (list_add). */
  readonly groups: readonly IommuGroup[];
  /** IOMMU_CACHE when the IOMMU enforces cache coherency, else 0. */
  readonly prot: number;
}

interface DomainEntry {
  readonly domain: IommuDomain;
  readonly groups: IommuGroup[];
  readonly prot: number;
}

/** `struct vfio_dma`: one MAP_DMA. */
interface VfioDma {
  readonly iova: bigint;
  readonly vaddr: bigint;
  /** Grows while the mapping is being pinned and mapped. */
  size: bigint;
  /** IOMMU_READ / IOMMU_WRITE. */
  readonly prot: number;
  /** Pinned and mapped into the domains. */
  iommuMapped: boolean;
  /** dma->task's mm: whose locked_vm the pages are charged to. */
  readonly mm: Mm;
}

/** A mapping as `mappings()` reports it. */
export interface VfioDmaMapping {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddr: bigint;
  readonly prot: number;
}

/** `struct vfio_iova`: a valid IOVA range, both ends inclusive. */
export interface VfioIovaRange {
  readonly start: bigint;
  readonly end: bigint;
}

interface IovaNode {
  start: bigint;
  end: bigint;
}

export interface VfioIommuType1Stats {
  /** Page pins this container holds. */
  readonly pinnedPages: number;
  /** Pages this container charged to locked_vm (all mms). */
  readonly lockedPages: number;
  readonly domains: number;
  readonly groups: number;
  readonly dmaEntries: number;
  readonly dmaAvail: number;
}

type Errno = number;

function ffs64(v: bigint): number {
  if (v === 0n) return -1;
  let i = 0;
  while (((v >> BigInt(i)) & 1n) === 0n) i++;
  return i;
}

/** A user address the mm can take, or undefined (beyond 2^53 no mapping can exist). */
function userAddress(v: bigint): number | undefined {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

// ---------------------------------------------------------------- the backend

/**
 * VFIO_CHECK_EXTENSION of the type1 driver (vfio_iommu_type1_check_extension); `iommu` is the
 * container's instance, or undefined before VFIO_SET_IOMMU.
 */
export function vfioIommuType1CheckExtension(iommu: VfioIommuType1 | undefined, arg: number): number {
  switch (arg) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
    case VFIO_TYPE1_NESTING_IOMMU:
      return 1;
    case VFIO_DMA_CC_IOMMU:
      return iommu === undefined ? 0 : iommu.domainsHaveIommuCache();
    default:
      return 0;
  }
}

/** The type1 backend as the VFIO core registers it (`vfio_iommu_driver_ops_type1`). */
export function vfioIommuType1Driver(core: IommuCore, opts: VfioIommuType1Options = {}): VfioIommuDriver {
  return {
    name: 'vfio-iommu-type1',
    checkExtension: (arg) => vfioIommuType1CheckExtension(undefined, arg),
    open: (arg) => VfioIommuType1.open(core, arg, opts),
  };
}

export class VfioIommuType1 implements VfioIommuBackend {
  readonly core: IommuCore;
  /** TYPE1v2 semantics (also for NESTING). */
  readonly v2: boolean;
  /** VFIO_TYPE1_NESTING_IOMMU: domains get nesting enabled before their first attach. */
  readonly nesting: boolean;
  readonly options: Required<VfioIommuType1Options>;
  private readonly domainList: DomainEntry[] = [];
  private iovaList: IovaNode[] = [];
  /** In IOVA order, disjoint. */
  private readonly dmaList: VfioDma[] = [];
  private dmaAvail: number;
  private pgsizeBitmapValue = 0n;
  private pinnedCount = 0;
  private lockedCount = 0;

  private constructor(core: IommuCore, v2: boolean, nesting: boolean, opts: VfioIommuType1Options) {
    this.core = core;
    this.v2 = v2;
    this.nesting = nesting;
    this.options = {
      dmaEntryLimit: opts.dmaEntryLimit ?? DMA_ENTRY_LIMIT_DEFAULT,
      allowUnsafeInterrupts: opts.allowUnsafeInterrupts ?? false,
      irqDomainMsiRemap: opts.irqDomainMsiRemap ?? true,
    };
    this.dmaAvail = this.options.dmaEntryLimit;
  }

  /**
   * vfio_iommu_type1_open: TYPE1 (v1 unmap semantics), TYPE1v2, or NESTING (v2 with nesting);
   * any other type is -EINVAL.
   */
  static open(core: IommuCore, arg: number, opts: VfioIommuType1Options = {}): VfioIommuType1 | number {
    switch (arg) {
      case VFIO_TYPE1_IOMMU:
        return new VfioIommuType1(core, false, false, opts);
      case VFIO_TYPE1_NESTING_IOMMU:
        return new VfioIommuType1(core, true, true, opts);
      case VFIO_TYPE1v2_IOMMU:
        return new VfioIommuType1(core, true, false, opts);
      default:
        return -EINVAL;
    }
  }

  // ------------------------------------------------------------ inspection

  /** The container's domains in list order (newest first), with their groups. */
  get domains(): readonly VfioDomain[] {
    return this.domainList;
  }

  /** The page sizes MAP_DMA can use: the intersection over the domains (vfio_pgsize_bitmap). */
  pgsizeBitmap(): bigint {
    return this.pgsizeBitmapValue;
  }

  /** The valid IOVA ranges (empty before the first group). */
  iovaRanges(): VfioIovaRange[] {
    return this.iovaList.map((n) => ({ start: n.start, end: n.end }));
  }

  /** The DMA mappings, in IOVA order. */
  mappings(): VfioDmaMapping[] {
    return this.dmaList.map((d) => ({ iova: d.iova, size: d.size, vaddr: d.vaddr, prot: d.prot }));
  }

  /** Whether `group` is attached to one of the container's domains. */
  hasGroup(group: IommuGroup): boolean {
    return this.findGroup(group) !== undefined;
  }

  stats(): VfioIommuType1Stats {
    return {
      pinnedPages: this.pinnedCount,
      lockedPages: this.lockedCount,
      domains: this.domainList.length,
      groups: this.domainList.reduce((n, d) => n + d.groups.length, 0),
      dmaEntries: this.dmaList.length,
      dmaAvail: this.dmaAvail,
    };
  }

  /** vfio_domains_have_iommu_cache: 1 when every domain enforces coherency (or there is none). */
  domainsHaveIommuCache(): number {
    return this.domainList.every((d) => (d.prot & IOMMU_CACHE) !== 0) ? 1 : 0;
  }

  checkExtension(arg: number): number {
    return vfioIommuType1CheckExtension(this, arg);
  }

  // ------------------------------------------------------------ ioctl dispatch

  /** vfio_iommu_type1_ioctl: the four ioctls vsva implements; -ENOTTY for anything else. */
  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case VFIO_CHECK_EXTENSION:
        return this.checkExtension(arg.value);
      case VFIO_IOMMU_GET_INFO:
        return this.getInfo(arg);
      case VFIO_IOMMU_MAP_DMA:
        return this.mapDma(proc, arg);
      case VFIO_IOMMU_UNMAP_DMA:
        return this.unmapDma(proc, arg);
      default:
        return -ENOTTY;
    }
  }

  // ------------------------------------------------------------ the vfio_dma list

  private dmaEnd(d: VfioDma): bigint {
    return d.iova + d.size;
  }

  /**
   * vfio_find_dma(start, size): a mapping with `start + size > dma.iova` and `start < dma end`
   * (size 0 finds one holding `start` past its first byte); the lowest such one.
   */
  private findDma(start: bigint, size: bigint): VfioDma | undefined {
    let lo = 0;
    let hi = this.dmaList.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.dmaEnd(this.dmaList[mid]!) <= start) lo = mid + 1;
      else hi = mid;
    }
    const d = this.dmaList[lo];
    return d !== undefined && start + size > d.iova && start < this.dmaEnd(d) ? d : undefined;
  }

  private linkDma(dma: VfioDma): void {
    let i = 0;
    while (i < this.dmaList.length && this.dmaList[i]!.iova < dma.iova) i++;
    this.dmaList.splice(i, 0, dma);
  }

  private unlinkDma(dma: VfioDma): void {
    const i = this.dmaList.indexOf(dma);
    if (i >= 0) this.dmaList.splice(i, 1);
  }

  /** The smallest page size MAP/UNMAP_DMA align to. */
  private minPgsize(): bigint {
    const i = ffs64(this.pgsizeBitmapValue);
    return i < 0 ? PAGE : 1n << BigInt(i);
  }

  /** vfio_update_pgsize_bitmap. */
  private updatePgsizeBitmap(): void {
    let b = U64_MAX;
    for (const d of this.domainList) b &= BigInt(d.domain.pgsizeBitmap);
    // Sizes below PAGE_SIZE are hidden and PAGE_SIZE offered instead (pinning works in pages).
    if ((b & (PAGE - 1n)) !== 0n) {
      b &= PAGE_MASK;
      b |= PAGE;
    }
    this.pgsizeBitmapValue = b;
  }

  // ------------------------------------------------------------ pinning and accounting

  private pinOne(mm: Mm, va: number, write: boolean): number | undefined {
    const pas = mm.pinPages(va, PAGE_SIZE, write);
    if (pas === undefined) return undefined;
    this.pinnedCount++;
    return pas[0];
  }

  private unpinRange(mm: Mm, pa: number, npage: number): void {
    const pas: number[] = [];
    for (let i = 0; i < npage; i++) pas.push(pa + i * PAGE_SIZE);
    mm.unpinPages(pas);
    this.pinnedCount -= npage;
  }

  /** vfio_lock_acct: charges (npage > 0) or releases locked pages of the mapping's mm. */
  private lockAcct(mm: Mm, npage: number): number {
    if (npage === 0) return 0;
    const r = mm.accountLocked(npage);
    if (r === 0) this.lockedCount += npage;
    return r;
  }

  /** RLIMIT_MEMLOCK in pages. */
  private static memlockPages(mm: Mm): number {
    return Math.floor(mm.memlockLimit / PAGE_SIZE);
  }

  /**
   * vfio_pin_pages_remote: pins the page at `vaddr` and the following ones while they are
   * physically contiguous (at most `npage`), charging them to locked_vm. The first physical
   * address and the count, or -EFAULT (first page not pinnable) / -ENOMEM (RLIMIT_MEMLOCK), with
   * nothing pinned or charged.
   */
  private pinPagesRemote(dma: VfioDma, vaddr: bigint, npage: number): { pa: number; npage: number } | Errno {
    const mm = dma.mm;
    const limit = VfioIommuType1.memlockPages(mm);
    const write = (dma.prot & IOMMU_WRITE) !== 0;
    const va0 = userAddress(vaddr);
    if (va0 === undefined) return -EFAULT;
    const pa0 = this.pinOne(mm, va0, write);
    if (pa0 === undefined) return -EFAULT;
    let pinned = 1;
    if (mm.lockedVm + 1 > limit) {
      this.unpinRange(mm, pa0, 1);
      return -ENOMEM;
    }
    let lockAcct = 1;
    let ret = 0;
    for (; pinned < npage; pinned++) {
      const pa = this.pinOne(mm, va0 + pinned * PAGE_SIZE, write);
      if (pa === undefined) break;
      if (pa !== pa0 + pinned * PAGE_SIZE) {
        this.unpinRange(mm, pa, 1);
        break;
      }
      if (mm.lockedVm + lockAcct + 1 > limit) {
        this.unpinRange(mm, pa, 1);
        ret = -ENOMEM;
        break;
      }
      lockAcct++;
    }
    if (ret === 0) ret = this.lockAcct(mm, lockAcct);
    if (ret !== 0) {
      this.unpinRange(mm, pa0, pinned);
      return ret;
    }
    return { pa: pa0, npage: pinned };
  }

  /** vfio_unpin_pages_remote: unpins `npage` pages from `pa`; returns how many. */
  private unpinPagesRemote(dma: VfioDma, pa: number, npage: number, doAccounting: boolean): number {
    this.unpinRange(dma.mm, pa, npage);
    if (doAccounting) this.lockAcct(dma.mm, -npage);
    return npage;
  }

  // ------------------------------------------------------------ mapping into the domains

  /** vfio_iommu_map: maps into every domain; on a failure, unmaps those done (in reverse). */
  private iommuMapAll(iova: number, pa: number, npage: number, prot: number): number {
    const len = npage * PAGE_SIZE;
    for (let i = 0; i < this.domainList.length; i++) {
      const d = this.domainList[i]!;
      const r = this.core.iommuMap(d.domain, iova, pa, len, prot | d.prot);
      if (r !== 0) {
        for (let j = i - 1; j >= 0; j--) this.core.iommuUnmap(this.domainList[j]!.domain, iova, len);
        return r;
      }
    }
    return 0;
  }

  /**
   * vfio_unmap_unpin: unmaps the mapping from every domain and unpins its pages, which it finds
   * through the first domain (the others are unmapped first, so no translation outlives a pin).
   * Returns the pages unpinned when not accounting, else 0 (after releasing them from locked_vm).
   */
  private unmapUnpin(dma: VfioDma, doAccounting: boolean): number {
    if (dma.size === 0n || this.domainList.length === 0) return 0;
    const first = this.domainList[0]!.domain;
    const iova0 = Number(dma.iova);
    const size = Number(dma.size);
    for (const d of this.domainList.slice(1)) this.core.iommuUnmap(d.domain, iova0, size);
    const end = iova0 + size;
    let unlocked = 0;
    let iova = iova0;
    while (iova < end) {
      const phys = this.core.iommuIovaToPhys(first, iova);
      if (phys === 0) {
        iova += PAGE_SIZE; // WARN_ON(!phys)
        continue;
      }
      // The largest physically contiguous chunk, to unmap with as few calls as possible.
      let len = PAGE_SIZE;
      while (iova + len < end && this.core.iommuIovaToPhys(first, iova + len) === phys + len)
        len += PAGE_SIZE;
      const unmapped = this.core.iommuUnmap(first, iova, len);
      if (unmapped === 0) break; // WARN_ON(!unmapped)
      unlocked += this.unpinPagesRemote(dma, phys, unmapped / PAGE_SIZE, false);
      iova += unmapped;
    }
    dma.iommuMapped = false;
    if (doAccounting) {
      this.lockAcct(dma.mm, -unlocked);
      return 0;
    }
    return unlocked;
  }

  /** vfio_remove_dma. */
  private removeDma(dma: VfioDma): void {
    this.unmapUnpin(dma, true);
    this.unlinkDma(dma);
    this.dmaAvail++;
  }

  /** vfio_iommu_unmap_unpin_all. */
  private unmapUnpinAll(): void {
    while (this.dmaList.length > 0) this.removeDma(this.dmaList[0]!);
  }

  /**
   * vfio_pin_map_dma: pins and maps the mapping run by run, growing `dma.size`; on a failure the
   * whole mapping goes (vfio_remove_dma).
   */
  private pinMapDma(dma: VfioDma, mapSize: bigint): number {
    let remaining = mapSize;
    let ret = 0;
    while (remaining > 0n) {
      const run = this.pinPagesRemote(dma, dma.vaddr + dma.size, Number(remaining / PAGE));
      if (typeof run === 'number') {
        ret = run;
        break;
      }
      ret = this.iommuMapAll(Number(dma.iova + dma.size), run.pa, run.npage, dma.prot);
      if (ret !== 0) {
        this.unpinPagesRemote(dma, run.pa, run.npage, true);
        break;
      }
      const bytes = BigInt(run.npage) * PAGE;
      remaining -= bytes;
      dma.size += bytes;
    }
    dma.iommuMapped = true;
    if (ret !== 0) this.removeDma(dma);
    return ret;
  }

  /** vfio_iommu_iova_dma_valid: inside one valid range (or no ranges at all). */
  private iovaDmaValid(start: bigint, end: bigint): boolean {
    if (this.iovaList.length === 0) return true;
    return this.iovaList.some((n) => start >= n.start && end <= n.end);
  }

  // ------------------------------------------------------------ VFIO_IOMMU_GET_INFO

  /**
   * vfio_iommu_type1_get_info: copy offsetofend(iova_pgsizes) = 16 bytes (-EFAULT); argsz < 16 is
   * -EINVAL; from argsz >= 20 on, cap_offset is returned too. flags = PGSIZES | CAPS; the chain
   * (DMA_AVAIL, then IOVA_RANGE when there are ranges) goes after the 24-byte struct when argsz
   * leaves room for it, else argsz is raised to what it needs and cap_offset stays 0.
   */
  getInfo(arg: IoctlArg): number {
    const raw = arg.ptr.copyFrom(VFIO_IOMMU_INFO_MINSZ);
    if (raw === undefined) return -EFAULT;
    const info = vfio_iommu_type1_info.decode(raw);
    if (info.argsz < VFIO_IOMMU_INFO_MINSZ) return -EINVAL;
    let minsz = VFIO_IOMMU_INFO_MINSZ;
    if (info.argsz >= VFIO_IOMMU_INFO_CAPSZ) {
      minsz = VFIO_IOMMU_INFO_CAPSZ;
      info.cap_offset = 0;
    }
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = this.pgsizeBitmapValue;

    const caps = new VfioInfoCap();
    caps.addCapability(
      vfio_iommu_type1_info_dma_avail.encode({
        header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1 },
        avail: this.dmaAvail,
      }),
    );
    if (this.iovaList.length > 0) caps.addCapability(encodeIovaRangeCap(this.iovaList));

    if (caps.size > 0) {
      info.flags |= VFIO_IOMMU_INFO_CAPS;
      const need = vfio_iommu_type1_info.size + caps.size;
      if (info.argsz < need) {
        info.argsz = need;
      } else {
        caps.shift(vfio_iommu_type1_info.size);
        if (!arg.ptr.add(vfio_iommu_type1_info.size).copyTo(caps.buf)) return -EFAULT;
        info.cap_offset = vfio_iommu_type1_info.size;
      }
    }
    return arg.ptr.copyTo(vfio_iommu_type1_info.encode(info).subarray(0, minsz)) ? 0 : -EFAULT;
  }

  // ------------------------------------------------------------ VFIO_IOMMU_MAP_DMA

  /**
   * vfio_iommu_type1_map_dma + vfio_dma_do_map. In order: copy 32 bytes (-EFAULT); argsz < 32 or
   * a flag other than READ/WRITE (-EINVAL); no READ/WRITE, size 0, or size/iova/vaddr not aligned
   * to the smallest page size (-EINVAL); iova or vaddr range wrapping 2^64 (-EINVAL); overlap
   * with any mapping (-EEXIST); no DMA entry left (-ENOSPC); outside the valid IOVA ranges
   * (-EINVAL); then pin (-EFAULT, -ENOMEM for RLIMIT_MEMLOCK) and map into every domain (the
   * IOMMU's error), undoing everything on a failure. Without a domain the mapping is only
   * recorded; the first attach pins and maps it.
   */
  mapDma(proc: Process, arg: IoctlArg): number {
    const raw = arg.ptr.copyFrom(VFIO_DMA_MAP_MINSZ);
    if (raw === undefined) return -EFAULT;
    const map = vfio_iommu_type1_dma_map.decode(raw);
    const mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    if (map.argsz < VFIO_DMA_MAP_MINSZ || (map.flags & ~mask) !== 0) return -EINVAL;
    return this.doMap(proc.mm, map.flags, map.iova, map.vaddr, map.size);
  }

  private doMap(mm: Mm, flags: number, iova: bigint, vaddr: bigint, size: bigint): number {
    let prot = 0;
    if ((flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0) prot |= IOMMU_WRITE;
    if ((flags & VFIO_DMA_MAP_FLAG_READ) !== 0) prot |= IOMMU_READ;
    const pgmask = this.minPgsize() - 1n;
    if (prot === 0 || size === 0n || ((size | iova | vaddr) & pgmask) !== 0n) return -EINVAL;
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) return -EINVAL;
    if (this.findDma(iova, size) !== undefined) return -EEXIST;
    if (this.dmaAvail === 0) return -ENOSPC;
    if (!this.iovaDmaValid(iova, iova + size - 1n)) return -EINVAL;

    const dma: VfioDma = { iova, vaddr, size: 0n, prot, iommuMapped: false, mm };
    this.dmaAvail--;
    this.linkDma(dma);
    if (this.domainList.length === 0) {
      dma.size = size;
      return 0;
    }
    return this.pinMapDma(dma, size);
  }

  // ------------------------------------------------------------ VFIO_IOMMU_UNMAP_DMA

  /**
   * vfio_iommu_type1_unmap_dma + vfio_dma_do_unmap. In order: copy 24 bytes (-EFAULT); argsz < 24
   * or a flag other than GET_DIRTY_BITMAP (-EINVAL); with GET_DIRTY_BITMAP, the vfio_bitmap
   * trailer's checks; iova or size not aligned, size 0, or the range wrapping (-EINVAL);
   * GET_DIRTY_BITMAP without dirty logging (-EINVAL, always here); in v2, a mapping that the
   * range would split at either end (-EINVAL). Then every mapping inside the range goes (v1: every
   * mapping overlapping it, as long as it does not begin below the range), and the bytes unmapped
   * are written back to `size` (-EFAULT if that copy fails, after the unmap).
   */
  unmapDma(proc: Process, arg: IoctlArg): number {
    const raw = arg.ptr.copyFrom(VFIO_DMA_UNMAP_MINSZ);
    if (raw === undefined) return -EFAULT;
    const unmap = vfio_iommu_type1_dma_unmap.decode(raw);
    if (unmap.argsz < VFIO_DMA_UNMAP_MINSZ || (unmap.flags & ~VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0)
      return -EINVAL;
    if ((unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0) {
      const r = this.checkDirtyBitmapTrailer(arg, unmap.argsz, unmap.size);
      if (r !== 0) return r;
    }
    const res = this.doUnmap(proc.mm, unmap.flags, unmap.iova, unmap.size);
    if (typeof res === 'number') return res;
    unmap.size = res.unmapped;
    return arg.ptr.copyTo(vfio_iommu_type1_dma_unmap.encode(unmap)) ? 0 : -EFAULT;
  }

  /** The struct vfio_bitmap checks of UNMAP_DMA with GET_DIRTY_BITMAP. */
  private checkDirtyBitmapTrailer(arg: IoctlArg, argsz: number, size: bigint): number {
    if (argsz < VFIO_DMA_UNMAP_MINSZ + vfio_bitmap.size) return -EINVAL;
    const raw = arg.ptr.add(VFIO_DMA_UNMAP_MINSZ).copyFrom(vfio_bitmap.size);
    if (raw === undefined) return -EFAULT;
    const bitmap = vfio_bitmap.decode(raw);
    // access_ok(data, size): inside the user address space.
    if (bitmap.data + bitmap.size > BigInt(TASK_SIZE)) return -EINVAL;
    const pgshift = ffs64(bitmap.pgsize);
    if (pgshift < 0) return -EINVAL;
    const npages = size >> BigInt(pgshift);
    if (
      npages === 0n ||
      bitmap.size === 0n ||
      bitmap.size > DIRTY_BITMAP_SIZE_MAX ||
      bitmap.size < dirtyBitmapBytes(npages)
    )
      return -EINVAL;
    return 0;
  }

  private doUnmap(mm: Mm, flags: number, iova: bigint, size: bigint): { unmapped: bigint } | Errno {
    const pgmask = this.minPgsize() - 1n;
    if ((iova & pgmask) !== 0n) return -EINVAL;
    if (size === 0n || (size & pgmask) !== 0n) return -EINVAL;
    if (iova + size - 1n > U64_MAX) return -EINVAL;
    // Dirty logging is never enabled in vsva (see the decisions above).
    if ((flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0) return -EINVAL;
    if (this.v2) {
      const head = this.findDma(iova, 1n);
      if (head !== undefined && head.iova !== iova) return -EINVAL;
      const tail = this.findDma(iova + size - 1n, 0n);
      if (tail !== undefined && this.dmaEnd(tail) !== iova + size) return -EINVAL;
    }
    let unmapped = 0n;
    for (let dma = this.findDma(iova, size); dma !== undefined; dma = this.findDma(iova, size)) {
      if (!this.v2 && iova > dma.iova) break;
      // Only the address space that mapped a range may unmap it.
      if (dma.mm !== mm) break;
      unmapped += dma.size;
      this.removeDma(dma);
    }
    return { unmapped };
  }

  // ------------------------------------------------------------ groups

  private findGroup(group: IommuGroup): DomainEntry | undefined {
    return this.domainList.find((d) => d.groups.includes(group));
  }

  /**
   * vfio_iommu_type1_attach_group. In order: already attached (-EINVAL); members on different
   * buses (-EINVAL); a new domain on the group's IOMMU (-EIO when none can be had); nesting
   * enabled on it for a NESTING container (its error); the group attached (the core's error,
   * e.g. -EBUSY when the group is not in its default domain); the new aperture conflicting with
   * the current ranges' mappings, or a reserved region of the group holding a mapping (-EINVAL);
   * the IOVA ranges narrowed to the aperture minus the reserved regions (-EINVAL when nothing is
   * left); no MSI isolation (-EPERM). Then a compatible existing domain (same IOMMU, same
   * coherency) takes the group and the new domain is dropped; otherwise the domain gets the MSI
   * cookie of the software MSI window (when the group has one), the existing mappings are
   * replayed into it, and it joins the list at the front. Any failure undoes everything.
   */
  attachGroup(group: IommuGroup): number {
    if (this.findGroup(group) !== undefined) return -EINVAL;
    let bus: string | undefined;
    for (const dev of group.devices) {
      if (bus !== undefined && bus !== dev.bus) return -EINVAL;
      bus = dev.bus;
    }
    const first = group.devices[0];
    if (first === undefined) return -EIO; // iommu_domain_alloc(NULL bus)
    const domain = this.core.iommuDomainAlloc(first);
    if (domain === undefined) return -EIO;
    const freeDomain = (ret: number): number => {
      this.core.iommuDomainFree(domain);
      return ret;
    };
    if (this.nesting) {
      const r = this.core.iommuEnableNesting(domain);
      if (r !== 0) return freeDomain(r);
    }
    const ra = this.core.iommuAttachGroup(domain, group);
    if (ra !== 0) return freeDomain(ra);
    const detachAndFree = (ret: number): number => {
      this.core.iommuDetachGroup(domain, group);
      return freeDomain(ret);
    };

    const apStart = BigInt(domain.geometry.apertureStart);
    const apEnd = BigInt(domain.geometry.apertureEnd);
    if (this.aperConflict(apStart, apEnd)) return detachAndFree(-EINVAL);
    const resv = this.core.iommuGetGroupResvRegions(group);
    if (this.resvConflict(resv)) return detachAndFree(-EINVAL);
    const iovaCopy = this.iovaList.map((n) => ({ ...n }));
    aperResize(iovaCopy, apStart, apEnd);
    if (resvExclude(iovaCopy, resv) !== 0) return detachAndFree(-EINVAL);
    const swMsi = hasSwMsi(resv);

    const msiRemap = this.options.irqDomainMsiRemap || this.core.iommuCapable(first, 'intr-remap');
    if (!this.options.allowUnsafeInterrupts && !msiRemap) return detachAndFree(-EPERM);
    const prot = this.core.iommuCapable(first, 'cache-coherency') ? IOMMU_CACHE : 0;

    // A compatible domain: the group moves there and the new domain is dropped.
    for (const d of this.domainList) {
      if (d.domain.ops !== domain.ops || d.prot !== prot) continue;
      this.core.iommuDetachGroup(domain, group);
      if (this.core.iommuAttachGroup(d.domain, group) === 0) {
        d.groups.unshift(group);
        this.core.iommuDomainFree(domain);
        this.iovaList = iovaCopy;
        return 0;
      }
      const rb = this.core.iommuAttachGroup(domain, group);
      if (rb !== 0) return freeDomain(rb);
    }

    if (swMsi !== undefined) {
      // -ENODEV (no IOMMU DMA support) is tolerated.
      const rc = this.core.iommuGetMsiCookie(domain, swMsi);
      if (rc !== 0 && rc !== -ENODEV) return detachAndFree(rc);
    }
    const rr = this.replay(domain, prot);
    if (rr !== 0) return detachAndFree(rr);

    this.domainList.unshift({ domain, groups: [group], prot });
    this.updatePgsizeBitmap();
    this.iovaList = iovaCopy;
    return 0;
  }

  /** vfio_iommu_aper_conflict: the new aperture leaves out every range, or a mapping. */
  private aperConflict(start: bigint, end: bigint): boolean {
    const list = this.iovaList;
    if (list.length === 0) return false;
    const first = list[0]!;
    const last = list[list.length - 1]!;
    if (start > last.end || end < first.start) return true;
    if (start > first.start && this.findDma(first.start, start - first.start) !== undefined) return true;
    if (end < last.end && this.findDma(end + 1n, last.end - end) !== undefined) return true;
    return false;
  }

  /** vfio_iommu_resv_conflict: a reserved region holds a mapping. */
  private resvConflict(resv: readonly IommuResvRegion[]): boolean {
    return resv.some((r) => this.findDma(BigInt(r.start), BigInt(r.length)) !== undefined);
  }

  /**
   * vfio_iommu_replay: maps every existing mapping into `domain` — those already mapped by
   * copying the first domain's translations chunk by physically contiguous chunk, those not yet
   * mapped (no domain until now) by pinning them. On a failure everything replayed so far is
   * unmapped from `domain` and what was pinned for it unpinned.
   */
  private replay(domain: IommuDomain, dprot: number): number {
    const d = this.domainList[0]?.domain;
    let n = 0;
    let ret = 0;
    replayLoop: for (; n < this.dmaList.length; n++) {
      const dma = this.dmaList[n]!;
      const end = Number(dma.iova + dma.size);
      let iova = Number(dma.iova);
      while (iova < end) {
        let phys: number;
        let size: number;
        if (dma.iommuMapped) {
          if (d === undefined) {
            ret = -EINVAL; // mapped without a domain
            break replayLoop;
          }
          phys = this.core.iommuIovaToPhys(d, iova);
          if (phys === 0) {
            iova += PAGE_SIZE; // WARN_ON(!phys)
            continue;
          }
          size = PAGE_SIZE;
          while (iova + size < end && this.core.iommuIovaToPhys(d, iova + size) === phys + size)
            size += PAGE_SIZE;
        } else {
          const vaddr = dma.vaddr + BigInt(iova) - dma.iova;
          const run = this.pinPagesRemote(dma, vaddr, (end - iova) / PAGE_SIZE);
          if (typeof run === 'number') {
            ret = run;
            break replayLoop;
          }
          phys = run.pa;
          size = run.npage * PAGE_SIZE;
        }
        ret = this.core.iommuMap(domain, iova, phys, size, dma.prot | dprot);
        if (ret !== 0) {
          if (!dma.iommuMapped) this.unpinPagesRemote(dma, phys, size / PAGE_SIZE, true);
          break replayLoop;
        }
        iova += size;
      }
    }
    if (ret === 0) {
      for (const dma of this.dmaList) dma.iommuMapped = true;
      return 0;
    }
    this.unwindReplay(domain, Math.min(n, this.dmaList.length - 1));
    return ret;
  }

  /** The unwind of vfio_iommu_replay: from the mapping that failed back to the first. */
  private unwindReplay(domain: IommuDomain, from: number): void {
    for (let n = from; n >= 0; n--) {
      const dma = this.dmaList[n]!;
      if (dma.iommuMapped) {
        this.core.iommuUnmap(domain, Number(dma.iova), Number(dma.size));
        continue;
      }
      const end = Number(dma.iova + dma.size);
      let iova = Number(dma.iova);
      while (iova < end) {
        const phys = this.core.iommuIovaToPhys(domain, iova);
        if (phys === 0) {
          iova += PAGE_SIZE;
          continue;
        }
        let size = PAGE_SIZE;
        while (iova + size < end && this.core.iommuIovaToPhys(domain, iova + size) === phys + size)
          size += PAGE_SIZE;
        this.core.iommuUnmap(domain, iova, size);
        this.unpinPagesRemote(dma, phys, size / PAGE_SIZE, true);
        iova += size;
      }
    }
  }

  /**
   * vfio_iommu_type1_detach_group: the group leaves its domain; a domain left without groups is
   * freed — and when it was the last domain, every mapping is unmapped, unpinned and forgotten
   * first (vfio_iommu_unmap_unpin_all). The aperture widens to what the remaining domains allow
   * and the IOVA ranges are recomputed from the remaining groups' reserved regions. A group that
   * is not attached changes nothing.
   */
  detachGroup(group: IommuGroup): void {
    const iovaCopy = this.iovaList.map((n) => ({ ...n }));
    const i = this.domainList.findIndex((d) => d.groups.includes(group));
    if (i >= 0) {
      const d = this.domainList[i]!;
      this.core.iommuDetachGroup(d.domain, group);
      d.groups.splice(d.groups.indexOf(group), 1);
      if (d.groups.length === 0) {
        if (this.domainList.length === 1) this.unmapUnpinAll();
        this.core.iommuDomainFree(d.domain);
        this.domainList.splice(i, 1);
        this.aperExpand(iovaCopy);
        this.updatePgsizeBitmap();
      }
    }
    if (this.resvRefresh(iovaCopy) === 0) this.iovaList = iovaCopy;
  }

  /** vfio_iommu_aper_expand: the list's ends become the narrowest aperture of the domains left. */
  private aperExpand(list: IovaNode[]): void {
    if (list.length === 0) return;
    let start = 0n;
    let end = U64_MAX;
    for (const d of this.domainList) {
      const s = BigInt(d.domain.geometry.apertureStart);
      const e = BigInt(d.domain.geometry.apertureEnd);
      if (s > start) start = s;
      if (e < end) end = e;
    }
    list[0]!.start = start;
    list[list.length - 1]!.end = end;
  }

  /** vfio_iommu_resv_refresh: the ranges rebuilt from their ends and the groups' reserved regions. */
  private resvRefresh(list: IovaNode[]): number {
    if (list.length === 0) return -EINVAL;
    const resv: IommuResvRegion[] = [];
    for (const d of this.domainList)
      for (const g of d.groups) resv.push(...this.core.iommuGetGroupResvRegions(g));
    const start = list[0]!.start;
    const end = list[list.length - 1]!.end;
    list.length = 0;
    aperResize(list, start, end);
    return resvExclude(list, resv);
  }

  /**
   * vfio_iommu_type1_release: every mapping unmapped, unpinned and uncharged; every group
   * detached; every domain freed; the IOVA ranges dropped.
   */
  release(): void {
    this.unmapUnpinAll();
    for (const d of this.domainList) {
      for (const g of d.groups) this.core.iommuDetachGroup(d.domain, g);
      d.groups.length = 0;
      this.core.iommuDomainFree(d.domain);
    }
    this.domainList.length = 0;
    this.iovaList = [];
  }
}

// ---------------------------------------------------------------- IOVA list helpers

/**
 * vfio_iommu_aper_resize: an empty list becomes [start, end]; otherwise nodes below `start` are
 * dropped and the one holding it starts there, and nodes above `end` are dropped and the one
 * holding it ends there. (As in Linux, a node whose end equals `start`, or whose start equals
 * `end`, is dropped.)
 */
function aperResize(list: IovaNode[], start: bigint, end: bigint): void {
  if (list.length === 0) {
    list.push({ start, end });
    return;
  }
  while (list.length > 0) {
    const node = list[0]!;
    if (start < node.start) break;
    if (start >= node.start && start < node.end) {
      node.start = start;
      break;
    }
    list.shift();
  }
  for (let i = 0; i < list.length; ) {
    const node = list[i]!;
    if (end > node.end) {
      i++;
      continue;
    }
    if (end > node.start && end <= node.end) {
      node.end = end;
      i++;
      continue;
    }
    list.splice(i, 1);
  }
}

/**
 * vfio_iommu_resv_exclude: cuts every reserved region out of the ranges. -EINVAL (the list is
 * then meaningless) when nothing is left.
 */
function resvExclude(list: IovaNode[], resv: readonly IommuResvRegion[]): number {
  for (const r of resv) {
    const start = BigInt(r.start);
    const end = BigInt(r.start) + BigInt(r.length) - 1n;
    for (let i = 0; i < list.length; ) {
      const n = list[i]!;
      if (start > n.end || end < n.start) {
        i++;
        continue;
      }
      const pieces: IovaNode[] = [];
      if (start > n.start) pieces.push({ start: n.start, end: start - 1n });
      if (end < n.end) pieces.push({ start: end + 1n, end: n.end });
      list.splice(i, 1, ...pieces);
      i += pieces.length;
    }
  }
  return list.length === 0 ? -EINVAL : 0;
}

/**
 * vfio_iommu_has_sw_msi: the base of the group's software-managed MSI window, unless a hardware
 * MSI region (which takes precedence) comes first in the list.
 */
function hasSwMsi(resv: readonly IommuResvRegion[]): number | undefined {
  let base: number | undefined;
  for (const r of resv) {
    if (r.type === 'msi') return undefined;
    if (r.type === 'sw-msi') base = r.start;
  }
  return base;
}

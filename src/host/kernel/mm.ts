/**
 * A process address space (`struct mm_struct`): anonymous mappings (VMAs) whose pages are host
 * physical pages, allocated on first touch from the host's page allocator, as Linux backs
 * anonymous memory. The kernel reaches user memory through it (copy_from_user/copy_to_user), and
 * VFIO and KVM (later issues) translate and pin its pages for DMA and guest memory. Each mm has
 * an identity: PASID quotas are kept per mm.
 *
 * Decisions: user mappings are placed bottom-up from MMAP_BASE, first fit, page-aligned. A read
 * of a page never written returns zeros without allocating (Linux maps the shared zero page).
 * MAP_HUGETLB mappings are backed at once by physically contiguous, naturally aligned 2 MiB
 * blocks, as a hugetlbfs-backed guest RAM is (so that DMA and stage 2 can use block mappings).
 * A pinned page outlives munmap until its last pin is dropped (a page reference).
 */

import { PhysMem } from '../../hw/memory.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import { EINVAL, ENOMEM } from '../../uapi/errno.ts';
import {
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from '../../uapi/fcntl.ts';
import type { UserMemory } from '../uaccess.ts';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const HPAGE_SHIFT = 21;
export const HPAGE_SIZE = 1 << HPAGE_SHIFT;
/** Where the first mapping goes (Decision: a fixed base; no randomisation). */
export const MMAP_BASE = 0x7f00_0000_0000;
/** End of the user address space (48-bit VA). */
export const TASK_SIZE = 2 ** 48;

export interface Vma {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
  readonly flags: number;
  /** log2 of the backing page size: 12, or 21 for MAP_HUGETLB. */
  readonly pageShift: number;
  /** Backing pages by index from `start` (in units of the backing page size). */
  readonly pages: Map<number, number>;
  /**
   * A file's pages mapped in (mmap of a device file, e.g. a vCPU's kvm_run): they belong to the
   * file, are never faulted in or freed by the mm, and every page is present from the start.
   */
  readonly device?: boolean;
}

/** The host memory the mm takes pages from. */
export interface HostMemory {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
}

/** Host RAM [base, base + size) with a buddy allocator over it (defaults: 256 MiB at 1 GiB). */
export function createHostMemory(base = 0x4000_0000, size = 0x1000_0000): HostMemory {
  const mem = new PhysMem({ name: 'host', lookupCacheEntries: 1 << 16 });
  return { mem, alloc: new PageAllocator(mem, base, size) };
}

export interface MmStats {
  /** Bytes of host memory backing this mm's pages now. */
  residentBytes: number;
  pageFaults: number;
  pinnedPages: number;
}

let nextMmId = 1;

export class Mm implements UserMemory {
  readonly id: number;
  readonly host: HostMemory;
  private readonly vmas: Vma[] = [];
  /** Pins by physical page address (4 KiB granule). */
  private readonly pins = new Map<number, number>();
  /** Backing blocks unmapped while pinned: freed at the last unpin. */
  private readonly orphans = new Map<number, { bytes: number; pagesLeft: number }>();
  readonly stats: MmStats = { residentBytes: 0, pageFaults: 0, pinnedPages: 0 };
  /**
   * Bumped whenever a mapping goes away (munmap, MAP_FIXED over it, exit): a cache of
   * translations (KVM's view of guest memory) is stale when it changed (an mmu notifier, reduced).
   */
  generation = 0;

  /** mm->locked_vm: pages charged against RLIMIT_MEMLOCK (by VFIO's pinning, for instance). */
  lockedVm = 0;
  /** RLIMIT_MEMLOCK in bytes (Decision: unlimited by default, as a VMM is usually run). */
  memlockLimit = Number.POSITIVE_INFINITY;

  constructor(host: HostMemory) {
    this.id = nextMmId++;
    this.host = host;
  }

  /**
   * Charges (npages > 0) or releases (npages < 0) locked pages, as account_locked_vm does:
   * -ENOMEM, with nothing charged, when the charge would pass RLIMIT_MEMLOCK.
   */
  accountLocked(npages: number): number {
    if (npages > 0 && (this.lockedVm + npages) * PAGE_SIZE > this.memlockLimit) return -ENOMEM;
    this.lockedVm = Math.max(0, this.lockedVm + npages);
    return 0;
  }

  /** The mappings, in address order. */
  get mappings(): readonly Vma[] {
    return this.vmas;
  }

  // ------------------------------------------------------------ mmap / munmap

  /** mmap(addr, len, prot, flags) of anonymous memory: the start address, or -errno. */
  mmap(len: number, prot: number = PROT_READ | PROT_WRITE, flags: number = MAP_PRIVATE, addr = 0): number {
    const huge = (flags & MAP_HUGETLB) !== 0;
    const unit = huge ? HPAGE_SIZE : PAGE_SIZE;
    if (!Number.isInteger(len) || len <= 0) return -EINVAL;
    const shared = flags & (MAP_SHARED | MAP_PRIVATE);
    if (shared === 0 || shared === (MAP_SHARED | MAP_PRIVATE)) return -EINVAL;
    if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) return -EINVAL;
    const size = Math.ceil(len / unit) * unit;
    let start: number;
    if ((flags & MAP_FIXED) !== 0) {
      if (!Number.isInteger(addr) || addr % unit !== 0 || addr < PAGE_SIZE) return -EINVAL;
      if (addr + size > TASK_SIZE) return -ENOMEM;
      // A fixed mapping may not cut a huge page of an existing hugetlb mapping (hugetlbfs refuses).
      if (this.splitsHugePage(addr, addr + size)) return -EINVAL;
      start = addr;
      this.unmapRange(start, start + size);
    } else {
      const found = this.findGap(size, unit);
      if (found === undefined) return -ENOMEM;
      start = found;
    }
    const vma: Vma = {
      start,
      end: start + size,
      prot,
      flags,
      pageShift: huge ? HPAGE_SHIFT : PAGE_SHIFT,
      pages: new Map(),
    };
    const n = size / unit;
    if (huge) {
      // hugetlbfs reserves its pages at mmap time: no pages, no mapping.
      for (let i = 0; i < n; i++) {
        if (this.backPage(vma, i) === undefined) {
          this.releaseVmaPages(vma, 0, n);
          return -ENOMEM;
        }
      }
    } else if ((flags & MAP_POPULATE) !== 0) {
      // MAP_POPULATE is best effort: pages that cannot be had now fault in later (or fail then).
      for (let i = 0; i < n && this.backPage(vma, i) !== undefined; i++);
    }
    this.insertVma(vma);
    return start;
  }

  /**
   * Maps a file's pages (`pas`, one host physical page each) — the mm side of mmap(fd): a shared
   * mapping whose pages the file owns. The start address, or -errno as mmap gives it.
   */
  mmapDevice(pas: readonly number[], prot: number, flags: number, addr = 0): number {
    if (pas.length === 0) return -EINVAL;
    if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) return -EINVAL;
    const size = pas.length * PAGE_SIZE;
    let start: number;
    if ((flags & MAP_FIXED) !== 0) {
      if (!Number.isInteger(addr) || addr % PAGE_SIZE !== 0 || addr < PAGE_SIZE) return -EINVAL;
      if (addr + size > TASK_SIZE) return -ENOMEM;
      if (this.splitsHugePage(addr, addr + size)) return -EINVAL;
      start = addr;
      this.unmapRange(start, start + size);
    } else {
      const found = this.findGap(size, PAGE_SIZE);
      if (found === undefined) return -ENOMEM;
      start = found;
    }
    const pages = new Map<number, number>(pas.map((pa, i) => [i, pa]));
    this.insertVma({ start, end: start + size, prot, flags, pageShift: PAGE_SHIFT, pages, device: true });
    return start;
  }

  /** munmap(addr, len): 0 or -EINVAL. Unmapping a hole is not an error. */
  munmap(addr: number, len: number): number {
    if (!Number.isInteger(addr) || addr % PAGE_SIZE !== 0 || !Number.isInteger(len) || len <= 0)
      return -EINVAL;
    const end = addr + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
    if (this.splitsHugePage(addr, end)) return -EINVAL;
    this.unmapRange(addr, end);
    return 0;
  }

  /** Whether [start, end) cuts a huge mapping inside one of its 2 MiB pages (hugetlbfs refuses). */
  private splitsHugePage(start: number, end: number): boolean {
    return this.vmas.some(
      (v) =>
        v.pageShift === HPAGE_SHIFT &&
        v.start < end &&
        start < v.end &&
        ((Math.max(start, v.start) - v.start) % HPAGE_SIZE !== 0 ||
          (Math.min(end, v.end) - v.start) % HPAGE_SIZE !== 0),
    );
  }

  /** Unmaps everything (process exit). */
  destroy(): void {
    this.unmapRange(0, TASK_SIZE);
  }

  private findGap(size: number, align: number): number | undefined {
    let cursor = Math.ceil(MMAP_BASE / align) * align;
    for (const v of this.vmas) {
      if (v.end <= cursor) continue;
      if (v.start >= cursor + size) break;
      cursor = Math.ceil(v.end / align) * align;
    }
    return cursor + size <= TASK_SIZE ? cursor : undefined;
  }

  private insertVma(vma: Vma): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i]!.start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  private unmapRange(start: number, end: number): void {
    this.generation++;
    const keep: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) {
        keep.push(v);
        continue;
      }
      const unit = 2 ** v.pageShift;
      const from = Math.max(start, v.start);
      const to = Math.min(end, v.end);
      this.releaseVmaPages(v, (from - v.start) / unit, (to - v.start) / unit);
      if (v.start < from) keep.push(this.slice(v, v.start, from));
      if (to < v.end) keep.push(this.slice(v, to, v.end));
    }
    this.vmas.length = 0;
    this.vmas.push(...keep.sort((a, b) => a.start - b.start));
  }

  private slice(v: Vma, start: number, end: number): Vma {
    const unit = 2 ** v.pageShift;
    const pages = new Map<number, number>();
    const first = (start - v.start) / unit;
    const last = (end - v.start) / unit;
    for (const [i, pa] of v.pages) if (i >= first && i < last) pages.set(i - first, pa);
    return {
      start,
      end,
      prot: v.prot,
      flags: v.flags,
      pageShift: v.pageShift,
      pages,
      ...(v.device === true ? { device: true } : {}),
    };
  }

  private releaseVmaPages(v: Vma, first: number, last: number): void {
    const unit = 2 ** v.pageShift;
    if (v.device === true) {
      // The file's pages: unmapped, not freed.
      for (const i of [...v.pages.keys()]) if (i >= first && i < last) v.pages.delete(i);
      return;
    }
    for (const [i, pa] of [...v.pages]) {
      if (i < first || i >= last) continue;
      v.pages.delete(i);
      this.stats.residentBytes -= unit;
      this.freeBacking(pa, unit);
    }
  }

  private freeBacking(pa: number, bytes: number): void {
    let pinned = 0;
    for (let off = 0; off < bytes; off += PAGE_SIZE) if (this.pins.has(pa + off)) pinned++;
    if (pinned === 0) {
      this.host.mem.discard(pa, bytes);
      this.host.alloc.free(pa, bytes);
    } else {
      this.orphans.set(pa, { bytes, pagesLeft: pinned });
    }
  }

  // ------------------------------------------------------------ translation

  private vmaAt(va: number): Vma | undefined {
    for (const v of this.vmas) if (va >= v.start && va < v.end) return v;
    return undefined;
  }

  private backPage(v: Vma, index: number): number | undefined {
    const existing = v.pages.get(index);
    if (existing !== undefined) return existing;
    const unit = 2 ** v.pageShift;
    const pa = this.host.alloc.alloc(unit, v.pageShift);
    if (pa === undefined) return undefined;
    // Fresh pages read as zero: drop whatever an earlier owner of this memory left there.
    this.host.mem.discard(pa, unit);
    v.pages.set(index, pa);
    this.stats.residentBytes += unit;
    this.stats.pageFaults++;
    return pa;
  }

  /**
   * The host physical address behind `va`, faulting the page in when `populate` is set (a write,
   * or get_user_pages). Undefined: not mapped, not allowed by the protection, or out of memory.
   */
  translate(va: number, access: 'read' | 'write', populate = access === 'write'): number | undefined {
    const v = this.vmaAt(va);
    if (v === undefined) return undefined;
    if ((v.prot & (access === 'write' ? PROT_WRITE : PROT_READ)) === 0) return undefined;
    const unit = 2 ** v.pageShift;
    const index = Math.floor((va - v.start) / unit);
    const pa = populate ? this.backPage(v, index) : v.pages.get(index);
    return pa === undefined ? undefined : pa + ((va - v.start) % unit);
  }

  /** Whether [va, va+len) is mapped with `access` allowed. */
  accessible(va: number, len: number, access: 'read' | 'write'): boolean {
    if (!Number.isInteger(va) || !Number.isInteger(len) || va < 0 || len < 0) return false;
    let a = va;
    const end = va + len;
    while (a < end) {
      const v = this.vmaAt(a);
      if (v === undefined || (v.prot & (access === 'write' ? PROT_WRITE : PROT_READ)) === 0) return false;
      a = v.end;
    }
    return true;
  }

  // ------------------------------------------------------------ UserMemory

  readUser(addr: number, len: number): Uint8Array | undefined {
    if (!this.accessible(addr, len, 'read')) return undefined;
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const va = addr + done;
      const chunk = Math.min(len - done, PAGE_SIZE - (va % PAGE_SIZE));
      const pa = this.translate(va, 'read', false);
      if (pa !== undefined) {
        const bytes = this.host.mem.read(pa, chunk);
        if (bytes === undefined) return undefined;
        out.set(bytes, done);
      }
      done += chunk;
    }
    return out;
  }

  writeUser(addr: number, bytes: Uint8Array): boolean {
    if (!this.accessible(addr, bytes.length, 'write')) return false;
    // Fault every page in first, so that a failure (out of memory) writes nothing.
    const pas: number[] = [];
    let done = 0;
    while (done < bytes.length) {
      const va = addr + done;
      const chunk = Math.min(bytes.length - done, PAGE_SIZE - (va % PAGE_SIZE));
      const pa = this.translate(va, 'write', true);
      if (pa === undefined) return false;
      pas.push(pa, chunk);
      done += chunk;
    }
    done = 0;
    for (let i = 0; i < pas.length; i += 2) {
      if (!this.host.mem.write(pas[i]!, bytes.subarray(done, done + pas[i + 1]!))) return false;
      done += pas[i + 1]!;
    }
    return true;
  }

  // ------------------------------------------------------------ pinning (get_user_pages / unpin)

  /**
   * Pins the 4 KiB pages of [va, va+len) (page-aligned), faulting them in; returns their physical
   * addresses in order, or undefined (nothing pinned) if any page is not accessible.
   */
  pinPages(va: number, len: number, write: boolean): number[] | undefined {
    if (va % PAGE_SIZE !== 0 || len % PAGE_SIZE !== 0 || len <= 0) return undefined;
    if (!this.accessible(va, len, write ? 'write' : 'read')) return undefined;
    const pas: number[] = [];
    for (let off = 0; off < len; off += PAGE_SIZE) {
      const pa = this.translate(va + off, write ? 'write' : 'read', true);
      if (pa === undefined) return undefined;
      pas.push(pa);
    }
    for (const pa of pas) {
      this.pins.set(pa, (this.pins.get(pa) ?? 0) + 1);
      this.stats.pinnedPages++;
    }
    return pas;
  }

  /** Drops one pin of each page (physical addresses as pinPages returned them). */
  unpinPages(pas: readonly number[]): void {
    for (const pa of pas) {
      const n = this.pins.get(pa);
      if (n === undefined) continue;
      this.stats.pinnedPages--;
      if (n > 1) {
        this.pins.set(pa, n - 1);
        continue;
      }
      this.pins.delete(pa);
      this.releaseOrphanPage(pa);
    }
  }

  private releaseOrphanPage(pa: number): void {
    for (const [base, o] of this.orphans) {
      if (pa < base || pa >= base + o.bytes) continue;
      o.pagesLeft--;
      if (o.pagesLeft === 0) {
        this.orphans.delete(base);
        this.host.mem.discard(base, o.bytes);
        this.host.alloc.free(base, o.bytes);
      }
      return;
    }
  }

  /** Pin count of the page holding physical address `pa`. */
  pinCount(pa: number): number {
    return this.pins.get(pa - (pa % PAGE_SIZE)) ?? 0;
  }
}

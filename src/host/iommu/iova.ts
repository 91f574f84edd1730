/**
 * The IOVA allocator of a DMA domain (drivers/iommu/iova.c, v5.10): a set of disjoint page-frame
 * ranges in units of the domain's granule, allocated top-down below a limit, plus reserved ranges
 * that are never handed out (reserved regions of the devices, §1.4 MSI windows aside).
 *
 * Decisions (Linux differs in ways no seed depends on):
 * - Decision: allocation returns the *highest* naturally aligned free range at or below the limit
 *   (Linux's rbtree walk with its retry above the cached node finds the same range); there are no
 *   per-CPU "rcaches", so a freed range is immediately available to every size.
 * - Decision: `reserve` fills only the free gaps inside [lo, hi]: ranges already allocated there
 *   stay allocated (and keep their identity for `free`), instead of Linux's merge-and-extend.
 * - Page frame 0 is never allocated (the owner passes startPfn >= 1), so IOVA 0 is never a valid
 *   DMA address, as in Linux.
 */

import { alignDownTo, roundupPowOfTwo } from './pgsize.ts';

export interface IovaRange {
  /** First page frame (inclusive). */
  readonly lo: number;
  /** Last page frame (inclusive). */
  readonly hi: number;
  /** Reserved ranges are never allocated or freed. */
  readonly reserved: boolean;
}

export class IovaDomain {
  /** Bytes per page frame (a power of two). */
  readonly granule: number;
  /** Lowest allocatable page frame (>= 1). */
  readonly startPfn: number;
  /** Highest allocatable page frame (the aperture's end). */
  readonly endPfn: number;
  private readonly list: IovaRange[] = [];

  constructor(granule: number, startPfn: number, endPfn: number) {
    if (!Number.isSafeInteger(granule) || granule <= 0 || roundupPowOfTwo(granule) !== granule)
      throw new Error(`IovaDomain: granule ${granule} is not a power of two`);
    if (!Number.isSafeInteger(startPfn) || startPfn < 1 || !Number.isSafeInteger(endPfn))
      throw new Error(`IovaDomain: bad range [${startPfn}, ${endPfn}]`);
    this.granule = granule;
    this.startPfn = startPfn;
    this.endPfn = endPfn;
  }

  /** Every range, reserved or allocated, in ascending order. */
  get ranges(): readonly IovaRange[] {
    return this.list;
  }

  /** The allocated (not reserved) ranges. */
  allocated(): IovaRange[] {
    return this.list.filter((r) => !r.reserved);
  }

  /**
   * alloc_iova(size, limit_pfn, size_aligned): `size` frames at the highest free position whose
   * last frame is <= limitPfn; with `sizeAligned` the first frame is a multiple of
   * roundup_pow_of_two(size). Returns the first frame, or undefined when nothing fits.
   */
  alloc(size: number, limitPfn: number, sizeAligned = true): number | undefined {
    if (!Number.isSafeInteger(size) || size < 1) return undefined;
    const align = sizeAligned ? roundupPowOfTwo(size) : 1;
    let gapHi = Math.min(limitPfn, this.endPfn);
    for (let i = this.list.length - 1; i >= -1 && gapHi >= this.startPfn; i--) {
      const below = i >= 0 ? this.list[i]! : undefined;
      if (below !== undefined && below.lo > gapHi) continue;
      const gapLo = Math.max(below === undefined ? this.startPfn : below.hi + 1, this.startPfn);
      if (gapHi >= gapLo && gapHi - gapLo + 1 >= size) {
        const lo = alignDownTo(gapHi - size + 1, align);
        if (lo >= gapLo) {
          this.insert({ lo, hi: lo + size - 1, reserved: false });
          return lo;
        }
      }
      if (below !== undefined) gapHi = below.lo - 1;
    }
    return undefined;
  }

  /** find_iova: the range (allocated or reserved) containing `pfn`. */
  find(pfn: number): IovaRange | undefined {
    const i = this.indexContaining(pfn);
    return i < 0 ? undefined : this.list[i];
  }

  /** free_iova: frees the allocated range containing `pfn`; false when there is none. */
  free(pfn: number): boolean {
    const i = this.indexContaining(pfn);
    if (i < 0 || this.list[i]!.reserved) return false;
    this.list.splice(i, 1);
    return true;
  }

  /** reserve_iova(lo, hi): the free frames of [lo, hi] become reserved. */
  reserve(lo: number, hi: number): void {
    if (!(hi >= lo)) return;
    let cursor = lo;
    const pieces: IovaRange[] = [];
    for (const r of this.list) {
      if (r.hi < cursor) continue;
      if (r.lo > hi) break;
      if (r.lo > cursor) pieces.push({ lo: cursor, hi: r.lo - 1, reserved: true });
      cursor = r.hi + 1;
      if (cursor > hi) break;
    }
    if (cursor <= hi) pieces.push({ lo: cursor, hi, reserved: true });
    for (const p of pieces) this.insert(p);
  }

  private insert(r: IovaRange): void {
    let a = 0;
    let b = this.list.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (this.list[m]!.lo < r.lo) a = m + 1;
      else b = m;
    }
    this.list.splice(a, 0, r);
  }

  private indexContaining(pfn: number): number {
    let a = 0;
    let b = this.list.length - 1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const r = this.list[m]!;
      if (pfn < r.lo) b = m - 1;
      else if (pfn > r.hi) a = m + 1;
      else return m;
    }
    return -1;
  }
}

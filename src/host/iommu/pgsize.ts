/**
 * Page-size arithmetic of the iommu core (drivers/iommu/iommu.c, v5.10): `__ffs`/`__fls` on
 * addresses and page-size bitmaps that may exceed 32 bits (a 64KB-granule SMMU maps 4TB blocks,
 * bit 42), and `iommu_pgsize`, which picks the largest page size a chunk of an `iommu_map` or
 * `iommu_unmap` may use: no larger than the remaining size, no larger than the alignment of the
 * addresses, and one the domain supports.
 *
 * All values are non-negative integers below 2^53 held in numbers (see src/arch/bits.ts); the
 * helpers split them into 32-bit halves instead of using BigInt.
 */

import { TWO_POW_32 } from '../../arch/bits.ts';

/** Index of the lowest set bit of `n` (Linux `__ffs`), or -1 when n is 0. */
export function ffs53(n: number): number {
  if (n <= 0) return -1;
  const lo = n % TWO_POW_32;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Math.floor(n / TWO_POW_32);
  return 63 - Math.clz32(hi & -hi);
}

/** Index of the highest set bit of `n` (Linux `__fls`), or -1 when n is 0. */
export function fls53(n: number): number {
  if (n <= 0) return -1;
  const hi = Math.floor(n / TWO_POW_32);
  if (hi !== 0) return 63 - Math.clz32(hi);
  return 31 - Math.clz32(n >>> 0);
}

/** Is bit `i` of `n` set? */
export function bitSet53(n: number, i: number): boolean {
  return Math.floor(n / 2 ** i) % 2 === 1;
}

/** The smallest page size of a bitmap (`1 << __ffs(pgsize_bitmap)`), or 0 for an empty bitmap. */
export function minPageSize(pgsizeBitmap: number): number {
  const i = ffs53(pgsizeBitmap);
  return i < 0 ? 0 : 2 ** i;
}

/** Is `n` a multiple of the power of two `align`? */
export function isAlignedTo(n: number, align: number): boolean {
  return n % align === 0;
}

/** `n` rounded down to a multiple of `align` (any positive integer). */
export function alignDownTo(n: number, align: number): number {
  return n - (n % align);
}

/** `n` rounded up to a multiple of `align`. */
export function alignUpTo(n: number, align: number): number {
  const r = n % align;
  return r === 0 ? n : n + (align - r);
}

/** The smallest power of two >= n (n >= 1). */
export function roundupPowOfTwo(n: number): number {
  if (n <= 1) return 1;
  const p = 2 ** fls53(n);
  return p === n ? n : p * 2;
}

/** A non-negative integer that JavaScript represents exactly. */
export function isAddress(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * `iommu_pgsize(domain, addr_merge, size)`: the largest page size in `pgsizeBitmap` that is no
 * larger than `size` and to which both `iova` and `paddr` are aligned (an address of 0 imposes no
 * alignment, as `addr_merge == 0` does in Linux). Returns 0 when no page size qualifies (Linux
 * BUG()s there; callers have already checked the minimum alignment, so it cannot happen).
 */
export function iommuPgsize(pgsizeBitmap: number, iova: number, paddr: number, size: number): number {
  let idx = fls53(size);
  for (const a of [iova, paddr]) {
    const f = ffs53(a);
    if (f >= 0) idx = Math.min(idx, f);
  }
  for (let i = idx; i >= 0; i--) if (bitSet53(pgsizeBitmap, i)) return 2 ** i;
  return 0;
}

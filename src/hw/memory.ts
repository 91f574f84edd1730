/**
 * Physical memory: sparse, page-granular (4 KiB), little-endian, addresses up to 52 bits.
 *
 * Pages are allocated on first write; reading a page never written returns zeros and allocates
 * nothing, so `bytesBacked` counts only what a scenario really touched. An access outside the
 * configured RAM ranges, at or above 2^addrBits, or inside a region marked absent is an *external
 * abort*: the accessor reports failure (false, or -1 for value reads) and changes nothing. The SMMU
 * turns such an abort on a table read into F_WALK_EABT / F_STE_FETCH / F_CD_FETCH. Nothing here
 * throws on bad input.
 *
 * The translation hot path uses `readDesc(hi, lo)`: an aligned 64-bit read addressed by two u32
 * halves, answered through a direct-mapped page lookup cache with no allocation; the two words land
 * in `d0` (bits [31:0]) and `d1` (bits [63:32]). Everything else takes `number` addresses (< 2^53).
 *
 * Several independent memories can exist: host RAM now, and guest RAM lives in host RAM later.
 */

import { TWO_POW_32 } from '../arch/bits.ts';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const WORDS_PER_PAGE = PAGE_SIZE / 4;
const PAGE_OFFSET_MASK = PAGE_SIZE - 1;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  // Word views of page buffers are host-endian; the model is only correct on little-endian hosts.
  throw new Error('vsva requires a little-endian host');
}

export interface MemRange {
  readonly base: number;
  readonly size: number;
}

export interface PhysMemOptions {
  /** A label for traces and reports. */
  readonly name?: string;
  /** Physical address width; accesses at or above 2^addrBits abort. 32..52, default 52. */
  readonly addrBits?: number;
  /** RAM ranges, widened to whole pages. Default: the whole address space is RAM (sparse, zero-filled). */
  readonly ram?: readonly MemRange[];
  /**
   * Entries of the direct-mapped page lookup cache (power of two), default 4096. Size it to the
   * number of pages walks touch: a memory holding thousands of table pages wants 2^16.
   */
  readonly lookupCacheEntries?: number;
}

/** What a model component needs to read and write memory; PhysMem and later guest views implement it. */
export interface MemoryPort {
  read8(addr: number): number;
  read16(addr: number): number;
  read32(addr: number): number;
  read64(addr: number, out: Uint32Array): boolean;
  read64n(addr: number): number;
  write8(addr: number, v: number): boolean;
  write16(addr: number, v: number): boolean;
  write32(addr: number, v: number): boolean;
  write64(addr: number, lo: number, hi: number): boolean;
  write64n(addr: number, v: number): boolean;
  read(addr: number, len: number): Uint8Array | undefined;
  write(addr: number, bytes: Uint8Array): boolean;
  fill(addr: number, len: number, byte: number): boolean;
  isAccessible(addr: number, len: number): boolean;
}

export class PhysMem implements MemoryPort {
  readonly name: string;
  readonly addrBits: number;
  /** 2^addrBits. */
  readonly limit: number;

  /** Low word (bits [31:0]) of the last successful `readDesc`. */
  d0 = 0;
  /** High word (bits [63:32]) of the last successful `readDesc`. */
  d1 = 0;

  /**
   * Backed pages: page frame number → page index. Page i lives at words [(i % 256) * 1024, +1024)
   * of slab i >> 8 (a 1 MiB Uint32Array), so the hot path touches a few large arrays rather than
   * thousands of small ones; `views[i]` is the page as its own Uint32Array for the other accessors.
   */
  private readonly pages = new Map<number, number>();
  private readonly slabs: Uint32Array[] = [];
  private readonly views: Uint32Array[] = [];
  private readonly freeIndexes: number[] = [];
  private readonly ram: MemRange[] | null;
  private absent: MemRange[] = [];
  private readonly cacheMask: number;
  private readonly cachePfn: Float64Array;
  private readonly cacheSlab: (Uint32Array | null)[];
  private readonly cacheOff: Int32Array;
  private peakPages = 0;

  constructor(opts: PhysMemOptions = {}) {
    this.name = opts.name ?? 'mem';
    const bits = opts.addrBits ?? 52;
    this.addrBits = Math.max(32, Math.min(52, Math.floor(bits)));
    this.limit = 2 ** this.addrBits;
    this.ram = opts.ram ? normaliseRanges(opts.ram.map((r) => pageRound(r.base, r.size))) : null;
    let n = opts.lookupCacheEntries ?? 4096;
    if (!(n > 0 && (n & (n - 1)) === 0)) n = 4096;
    this.cacheMask = n - 1;
    this.cachePfn = new Float64Array(n).fill(-1);
    this.cacheSlab = new Array<Uint32Array | null>(n).fill(null);
    this.cacheOff = new Int32Array(n);
  }

  // ------------------------------------------------------------------ hot path

  /**
   * Reads the aligned 64-bit value at hi:lo into d0/d1. Returns false (external abort) when the
   * address is not accessible. Bits [2:0] of lo are ignored (descriptors are 8-byte aligned).
   */
  readDesc(hi: number, lo: number): boolean {
    const pfnLo = lo >>> PAGE_SHIFT;
    const pfn = hi * 0x10_0000 + pfnLo;
    const slot = pfnLo & this.cacheMask;
    if (this.cachePfn[slot] !== pfn && !this.fillLookup(pfn, slot)) return this.readUnbacked(pfn);
    const slab = this.cacheSlab[slot]!;
    const w = this.cacheOff[slot]! + ((lo & 0xff8) >>> 2);
    this.d0 = slab[w]!;
    this.d1 = slab[w + 1]!;
    return true;
  }

  /** Caches the slab and offset of a backed, accessible page; false when it is neither. */
  private fillLookup(pfn: number, slot: number): boolean {
    const index = this.pages.get(pfn);
    if (index === undefined || !this.pageAccessible(pfn)) return false;
    this.cachePfn[slot] = pfn;
    this.cacheSlab[slot] = this.slabs[index >>> 8]!;
    this.cacheOff[slot] = (index & 0xff) * WORDS_PER_PAGE;
    return true;
  }

  /** A page never written reads as zeros, unless it is not accessible (external abort). */
  private readUnbacked(pfn: number): boolean {
    if (!this.pageAccessible(pfn)) return false;
    this.d0 = 0;
    this.d1 = 0;
    return true;
  }

  // ------------------------------------------------------------------ accessibility

  /**
   * Marks the pages covering [base, base+size) absent: every access there is an external abort.
   * Contents are kept and come back with markPresent.
   */
  markAbsent(base: number, size: number): void {
    if (size <= 0) return;
    this.absent = normaliseRanges([...this.absent, pageRound(base, size)]);
    this.flushLookupCache();
  }

  /** Undoes markAbsent over [base, base+size). */
  markPresent(base: number, size: number): void {
    if (size <= 0) return;
    const r = pageRound(base, size);
    this.absent = subtractRange(this.absent, r.base, r.base + r.size);
    this.flushLookupCache();
  }

  /** True when every byte of [addr, addr+len) can be accessed. */
  isAccessible(addr: number, len: number): boolean {
    if (!Number.isInteger(addr) || !Number.isInteger(len) || addr < 0 || len < 0) return false;
    if (addr + len > this.limit) return false;
    if (len === 0) return true;
    const end = addr + len;
    if (this.ram !== null && !coveredBy(this.ram, addr, end)) return false;
    return !overlapsAny(this.absent, addr, end);
  }

  private pageAccessible(pfn: number): boolean {
    // Common case first: plain RAM with no holes.
    if (this.ram === null && this.absent.length === 0) return pfn >= 0 && (pfn + 1) * PAGE_SIZE <= this.limit;
    return this.isAccessible(pfn * PAGE_SIZE, PAGE_SIZE);
  }

  private flushLookupCache(): void {
    this.cachePfn.fill(-1);
    this.cacheSlab.fill(null);
  }

  // ------------------------------------------------------------------ page plumbing

  private pageFor(addr: number): Uint32Array | undefined {
    const index = this.pages.get(Math.floor(addr / PAGE_SIZE));
    return index === undefined ? undefined : this.views[index];
  }

  private pageForWrite(addr: number): Uint32Array {
    const pfn = Math.floor(addr / PAGE_SIZE);
    const existing = this.pages.get(pfn);
    if (existing !== undefined) return this.views[existing]!;
    const index = this.allocatePage();
    this.pages.set(pfn, index);
    if (this.pages.size > this.peakPages) this.peakPages = this.pages.size;
    return this.views[index]!;
  }

  /** A zeroed page: a freed one, or the next one of the last slab (a new 1 MiB slab when full). */
  private allocatePage(): number {
    const reused = this.freeIndexes.pop();
    if (reused !== undefined) {
      this.views[reused]!.fill(0);
      return reused;
    }
    const index = this.views.length;
    if ((index & 0xff) === 0) this.slabs.push(new Uint32Array(256 * WORDS_PER_PAGE));
    const slab = this.slabs[index >>> 8]!;
    const off = (index & 0xff) * WORDS_PER_PAGE;
    this.views.push(slab.subarray(off, off + WORDS_PER_PAGE));
    return index;
  }

  // ------------------------------------------------------------------ scalar accessors

  /** Unsigned byte, or -1 on abort. */
  read8(addr: number): number {
    if (!this.isAccessible(addr, 1)) return -1;
    const page = this.pageFor(addr);
    if (page === undefined) return 0;
    const off = addr % PAGE_SIZE;
    return (page[off >>> 2]! >>> ((off & 3) * 8)) & 0xff;
  }

  /** Unsigned little-endian halfword, or -1 on abort. */
  read16(addr: number): number {
    if (!this.isAccessible(addr, 2)) return -1;
    return this.rawRead8(addr) | (this.rawRead8(addr + 1) << 8);
  }

  /** Unsigned little-endian word, or -1 on abort. */
  read32(addr: number): number {
    if (!this.isAccessible(addr, 4)) return -1;
    if ((addr & 3) === 0) {
      const page = this.pageFor(addr);
      return page === undefined ? 0 : page[(addr % PAGE_SIZE) >>> 2]!;
    }
    return (
      (this.rawRead8(addr) |
        (this.rawRead8(addr + 1) << 8) |
        (this.rawRead8(addr + 2) << 16) |
        (this.rawRead8(addr + 3) << 24)) >>>
      0
    );
  }

  /** Reads a 64-bit value as [lo, hi] words into out[0], out[1]. False on abort (out untouched). */
  read64(addr: number, out: Uint32Array): boolean {
    if (!this.isAccessible(addr, 8)) return false;
    out[0] = this.rawRead32(addr);
    out[1] = this.rawRead32(addr + 4);
    return true;
  }

  /** A 64-bit value as a number: -1 on abort, NaN when the value is 2^53 or more. */
  read64n(addr: number): number {
    if (!this.isAccessible(addr, 8)) return -1;
    const hi = this.rawRead32(addr + 4);
    if (hi >= 0x20_0000) return Number.NaN;
    return hi * TWO_POW_32 + this.rawRead32(addr);
  }

  write8(addr: number, v: number): boolean {
    if (!this.isAccessible(addr, 1)) return false;
    this.rawWrite8(addr, v);
    return true;
  }

  write16(addr: number, v: number): boolean {
    if (!this.isAccessible(addr, 2)) return false;
    this.rawWrite8(addr, v);
    this.rawWrite8(addr + 1, v >>> 8);
    return true;
  }

  write32(addr: number, v: number): boolean {
    if (!this.isAccessible(addr, 4)) return false;
    this.rawWrite32(addr, v);
    return true;
  }

  write64(addr: number, lo: number, hi: number): boolean {
    if (!this.isAccessible(addr, 8)) return false;
    this.rawWrite32(addr, lo);
    this.rawWrite32(addr + 4, hi);
    return true;
  }

  /** Writes a number (a non-negative integer below 2^53) as a 64-bit value. */
  write64n(addr: number, v: number): boolean {
    if (!Number.isSafeInteger(v) || v < 0) return false;
    return this.write64(addr, v >>> 0, Math.floor(v / TWO_POW_32));
  }

  private rawRead8(addr: number): number {
    const page = this.pageFor(addr);
    if (page === undefined) return 0;
    const off = addr % PAGE_SIZE;
    return (page[off >>> 2]! >>> ((off & 3) * 8)) & 0xff;
  }

  private rawRead32(addr: number): number {
    if ((addr & 3) === 0) {
      const page = this.pageFor(addr);
      return page === undefined ? 0 : page[(addr % PAGE_SIZE) >>> 2]!;
    }
    return (
      (this.rawRead8(addr) |
        (this.rawRead8(addr + 1) << 8) |
        (this.rawRead8(addr + 2) << 16) |
        (this.rawRead8(addr + 3) << 24)) >>>
      0
    );
  }

  private rawWrite8(addr: number, v: number): void {
    const page = this.pageForWrite(addr);
    const off = addr % PAGE_SIZE;
    const shift = (off & 3) * 8;
    const w = off >>> 2;
    page[w] = ((page[w]! & ~(0xff << shift)) | ((v & 0xff) << shift)) >>> 0;
  }

  private rawWrite32(addr: number, v: number): void {
    if ((addr & 3) === 0) {
      this.pageForWrite(addr)[(addr % PAGE_SIZE) >>> 2] = v >>> 0;
      return;
    }
    for (let i = 0; i < 4; i++) this.rawWrite8(addr + i, v >>> (8 * i));
  }

  // ------------------------------------------------------------------ bulk accessors

  /** A copy of [addr, addr+len), or undefined on abort. */
  read(addr: number, len: number): Uint8Array | undefined {
    if (!this.isAccessible(addr, len)) return undefined;
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const page = this.pageFor(a);
      if (page !== undefined) out.set(bytesOf(page).subarray(off, off + n), done);
      done += n;
    }
    return out;
  }

  /** Writes all of `bytes` at addr, or nothing (false) on abort. */
  write(addr: number, bytes: Uint8Array): boolean {
    if (!this.isAccessible(addr, bytes.length)) return false;
    let done = 0;
    while (done < bytes.length) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, bytes.length - done);
      bytesOf(this.pageForWrite(a)).set(bytes.subarray(done, done + n), off);
      done += n;
    }
    return true;
  }

  /** Fills [addr, addr+len) with `byte`. Filling never-written pages with zero allocates nothing. */
  fill(addr: number, len: number, byte: number): boolean {
    if (!this.isAccessible(addr, len)) return false;
    const b = byte & 0xff;
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const existing = this.pageFor(a);
      if (existing !== undefined || b !== 0) bytesOf(existing ?? this.pageForWrite(a)).fill(b, off, off + n);
      done += n;
    }
    return true;
  }

  /** memmove within this memory: all or nothing. */
  copy(dst: number, src: number, len: number): boolean {
    if (!this.isAccessible(src, len) || !this.isAccessible(dst, len)) return false;
    const data = this.read(src, len);
    return data !== undefined && this.write(dst, data);
  }

  /** Drops the backing of every whole page in [base, base+size): they read as zero again. */
  discard(base: number, size: number): void {
    const first = Math.ceil(base / PAGE_SIZE);
    const last = Math.floor((base + size) / PAGE_SIZE);
    let dropped = 0;
    const drop = (pfn: number): void => {
      const index = this.pages.get(pfn);
      if (index === undefined) return;
      this.pages.delete(pfn);
      this.freeIndexes.push(index);
      dropped++;
    };
    // Walk whichever is smaller: the range, or the backed pages.
    if (last - first <= this.pages.size) {
      for (let pfn = first; pfn < last; pfn++) drop(pfn);
    } else {
      for (const pfn of [...this.pages.keys()]) if (pfn >= first && pfn < last) drop(pfn);
    }
    if (dropped > 0) this.flushLookupCache();
  }

  // ------------------------------------------------------------------ accounting and inspection

  /** Bytes of host storage backing this memory (whole pages). */
  get bytesBacked(): number {
    return this.pages.size * PAGE_SIZE;
  }

  /** Highest bytesBacked seen. */
  get peakBytesBacked(): number {
    return this.peakPages * PAGE_SIZE;
  }

  /** Base addresses of backed pages, ascending. */
  backedPages(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b).map((pfn) => pfn * PAGE_SIZE);
  }

  /** The absent regions currently configured. */
  absentRegions(): readonly MemRange[] {
    return this.absent;
  }
}

/** The whole pages covering [base, base+size): accessibility is page-granular. */
function pageRound(base: number, size: number): MemRange {
  const start = Math.floor(base / PAGE_SIZE) * PAGE_SIZE;
  const end = Math.ceil((base + size) / PAGE_SIZE) * PAGE_SIZE;
  return { base: start, size: end - start };
}

function bytesOf(page: Uint32Array): Uint8Array {
  return new Uint8Array(page.buffer, page.byteOffset, PAGE_SIZE);
}

/** Sorted, merged, non-empty ranges. */
function normaliseRanges(ranges: readonly MemRange[]): MemRange[] {
  const sorted = ranges.filter((r) => r.size > 0).sort((a, b) => a.base - b.base);
  const out: MemRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.base <= last.base + last.size) {
      const end = Math.max(last.base + last.size, r.base + r.size);
      out[out.length - 1] = { base: last.base, size: end - last.base };
    } else out.push({ base: r.base, size: r.size });
  }
  return out;
}

function subtractRange(ranges: readonly MemRange[], start: number, end: number): MemRange[] {
  const out: MemRange[] = [];
  for (const r of ranges) {
    const rEnd = r.base + r.size;
    if (rEnd <= start || r.base >= end) {
      out.push(r);
      continue;
    }
    if (r.base < start) out.push({ base: r.base, size: start - r.base });
    if (rEnd > end) out.push({ base: end, size: rEnd - end });
  }
  return out;
}

function overlapsAny(ranges: readonly MemRange[], start: number, end: number): boolean {
  for (const r of ranges) if (r.base < end && start < r.base + r.size) return true;
  return false;
}

/** [start, end) lies inside the union of sorted, merged ranges. */
function coveredBy(ranges: readonly MemRange[], start: number, end: number): boolean {
  for (const r of ranges) if (start >= r.base && end <= r.base + r.size) return true;
  return false;
}

/** PAGE_OFFSET_MASK is exported for components that split accesses at page boundaries. */
export { PAGE_OFFSET_MASK };

/**
 * A deterministic allocator of physically contiguous, naturally aligned blocks inside one region
 * of memory: the memory a driver carves page-table pages, queues and stream tables from. It is a
 * binary buddy allocator with 8-byte minimum blocks (one VMSAv8-64 descriptor), so a stage-1 root
 * of a few descriptors, a 4 KiB/16 KiB/64 KiB table page and a stage-2 start table of up to 16
 * concatenated pages aligned to its total size (Arm ARM D8.2.2) all come from the same pool.
 *
 * Behaviour:
 * - A request is rounded up to a power of two of at least 8 bytes; the block returned is aligned
 *   to its own size, or to 2^alignLog2 when that is larger.
 * - The choice is deterministic: the smallest free block that fits, lowest address first, split
 *   keeping the low half. The same sequence of calls always gives the same addresses.
 * - Blocks are zeroed (through the memory's `fill`) before they are handed out.
 * - Nothing throws: exhaustion, a bad size or a region that cannot be written gives `undefined`,
 *   and a `free` of something not allocated gives `false` and changes nothing.
 *
 * Addresses are `number`s below 2^53; buddies are found with arithmetic, not 32-bit bit operations.
 */

import { isAligned } from '../arch/bits.ts';
import type { MemoryPort } from './memory.ts';

/** log2 of the smallest block: one 64-bit descriptor. */
export const MIN_BLOCK_LOG2 = 3;
/** log2 of the largest block (and the highest address bit the allocator handles). */
const MAX_BLOCK_LOG2 = 52;

export interface PageAllocatorStats {
  /** Bytes of the region the allocator can hand out (the aligned part of [base, base+size)). */
  readonly capacity: number;
  readonly bytesInUse: number;
  /** Highest bytesInUse seen. */
  readonly peakBytesInUse: number;
  /** Blocks currently allocated. */
  readonly blocksInUse: number;
  /** Successful alloc calls, free calls, and alloc calls that returned undefined. */
  readonly allocs: number;
  readonly frees: number;
  readonly failures: number;
}

/** Size order (log2 of the block size) for a request, or -1 when the request is not a positive size. */
export function blockOrder(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return -1;
  let order = MIN_BLOCK_LOG2;
  while (2 ** order < bytes) order++;
  return order <= MAX_BLOCK_LOG2 ? order : -1;
}

/** Index of the first element >= value in an ascending array. */
function lowerBound(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The buddy of the block at `addr` of size 2^order. */
function buddyOf(addr: number, order: number): number {
  const size = 2 ** order;
  return (addr / size) % 2 === 0 ? addr + size : addr - size;
}

export class PageAllocator {
  readonly mem: MemoryPort;
  /** The region as configured. */
  readonly base: number;
  readonly size: number;
  readonly capacity: number;

  /** Free blocks by order, each list ascending. */
  private readonly freeLists = new Map<number, number[]>();
  /** Allocated blocks: address → order. */
  private readonly allocated = new Map<number, number>();
  private inUse = 0;
  private peak = 0;
  private allocCount = 0;
  private freeCount = 0;
  private failureCount = 0;

  /**
   * An allocator over [base, base+size) of `mem`. The region is trimmed to 8-byte boundaries; an
   * invalid region (negative, non-integer, beyond 2^52) gives an allocator with nothing to hand out.
   */
  constructor(mem: MemoryPort, base: number, size: number) {
    this.mem = mem;
    this.base = base;
    this.size = size;
    this.capacity = this.seedFreeLists(base, size);
  }

  /** Splits the region into maximal naturally aligned blocks; returns their total size. */
  private seedFreeLists(base: number, size: number): number {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) return 0;
    const unit = 2 ** MIN_BLOCK_LOG2;
    let addr = Math.ceil(base / unit) * unit;
    const end = Math.min(Math.floor((base + size) / unit) * unit, 2 ** MAX_BLOCK_LOG2);
    let total = 0;
    while (addr < end) {
      let order = MIN_BLOCK_LOG2;
      while (order < MAX_BLOCK_LOG2 && isAligned(addr, order + 1) && addr + 2 ** (order + 1) <= end) order++;
      this.insertFree(addr, order);
      total += 2 ** order;
      addr += 2 ** order;
    }
    return total;
  }

  // ------------------------------------------------------------------ public API

  /**
   * A zeroed block of at least `bytes` bytes (rounded up to a power of two, minimum 8), aligned to
   * its size or to 2^alignLog2 if larger. Undefined when no such block is free, `bytes` is not a
   * positive integer, or the block could not be zeroed.
   */
  alloc(bytes: number, alignLog2 = 0): number | undefined {
    const order = blockOrder(bytes);
    if (order < 0 || !Number.isInteger(alignLog2) || alignLog2 > MAX_BLOCK_LOG2) return this.fail();
    const align = Math.max(order, alignLog2);
    const found = this.takeFree(order, align);
    if (found === undefined) return this.fail();
    const addr = this.splitDown(found.addr, found.order, order);
    if (!this.mem.fill(addr, 2 ** order, 0)) {
      this.release(addr, order);
      return this.fail();
    }
    this.allocated.set(addr, order);
    this.inUse += 2 ** order;
    if (this.inUse > this.peak) this.peak = this.inUse;
    this.allocCount++;
    return addr;
  }

  /**
   * Returns the block at `addr` that an earlier `alloc(bytes)` handed out. False (and nothing
   * changes) when no block of that size is allocated at `addr`.
   */
  free(addr: number, bytes: number): boolean {
    const order = blockOrder(bytes);
    if (order < 0 || this.allocated.get(addr) !== order) return false;
    this.allocated.delete(addr);
    this.inUse -= 2 ** order;
    this.freeCount++;
    this.release(addr, order);
    return true;
  }

  /** Is a block currently allocated at exactly `addr`? Its size in bytes, or 0. */
  allocatedSize(addr: number): number {
    const order = this.allocated.get(addr);
    return order === undefined ? 0 : 2 ** order;
  }

  /** Does [addr, addr+len) lie inside the managed region? */
  contains(addr: number, len = 1): boolean {
    return addr >= this.base && addr + len <= this.base + this.size;
  }

  get bytesInUse(): number {
    return this.inUse;
  }

  get peakBytesInUse(): number {
    return this.peak;
  }

  get bytesFree(): number {
    return this.capacity - this.inUse;
  }

  /** Size of the largest free block (what the biggest single alloc could get). */
  get largestFreeBlock(): number {
    let best = 0;
    for (const [order, list] of this.freeLists) if (list.length > 0 && 2 ** order > best) best = 2 ** order;
    return best;
  }

  stats(): PageAllocatorStats {
    return {
      capacity: this.capacity,
      bytesInUse: this.inUse,
      peakBytesInUse: this.peak,
      blocksInUse: this.allocated.size,
      allocs: this.allocCount,
      frees: this.freeCount,
      failures: this.failureCount,
    };
  }

  // ------------------------------------------------------------------ buddy machinery

  private fail(): undefined {
    this.failureCount++;
    return undefined;
  }

  /**
   * Removes and returns the first fit: the smallest order >= `order` holding a block aligned to
   * 2^align, lowest address within that order.
   */
  private takeFree(order: number, align: number): { addr: number; order: number } | undefined {
    for (let k = order; k <= MAX_BLOCK_LOG2; k++) {
      const list = this.freeLists.get(k);
      if (list === undefined || list.length === 0) continue;
      const i = k >= align ? 0 : list.findIndex((a) => isAligned(a, align));
      if (i < 0) continue;
      const addr = list[i]!;
      list.splice(i, 1);
      return { addr, order: k };
    }
    return undefined;
  }

  /** Splits a free block of `from` order down to `to`, freeing the upper halves; returns the low block. */
  private splitDown(addr: number, from: number, to: number): number {
    for (let k = from - 1; k >= to; k--) this.insertFree(addr + 2 ** k, k);
    return addr;
  }

  /** Puts a block back, merging it with its buddy for as long as the buddy is free. */
  private release(addr: number, order: number): void {
    let a = addr;
    let k = order;
    while (k < MAX_BLOCK_LOG2 && this.removeFree(buddyOf(a, k), k)) {
      a = Math.min(a, buddyOf(a, k));
      k++;
    }
    this.insertFree(a, k);
  }

  private insertFree(addr: number, order: number): void {
    let list = this.freeLists.get(order);
    if (list === undefined) {
      list = [];
      this.freeLists.set(order, list);
    }
    list.splice(lowerBound(list, addr), 0, addr);
  }

  private removeFree(addr: number, order: number): boolean {
    const list = this.freeLists.get(order);
    if (list === undefined) return false;
    const i = lowerBound(list, addr);
    if (list[i] !== addr) return false;
    list.splice(i, 1);
    return true;
  }
}

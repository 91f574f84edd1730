/**
 * Tests of the buddy PageAllocator: natural alignment, zeroing, determinism, exhaustion without
 * exceptions, buddy coalescing, accounting, and a property test over random alloc/free sequences.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysMem } from './memory.ts';
import { blockOrder, PageAllocator } from './page-alloc.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BASE = 0x8000_0000;

function fresh(size = 1 * MiB, base = BASE): { mem: PhysMem; alloc: PageAllocator } {
  const mem = new PhysMem();
  return { mem, alloc: new PageAllocator(mem, base, size) };
}

describe('blockOrder', () => {
  it('rounds up to a power of two of at least 8 bytes and rejects non-sizes', () => {
    expect(blockOrder(1)).toBe(3);
    expect(blockOrder(8)).toBe(3);
    expect(blockOrder(9)).toBe(4);
    expect(blockOrder(4096)).toBe(12);
    expect(blockOrder(4097)).toBe(13);
    expect(blockOrder(0)).toBe(-1);
    expect(blockOrder(-8)).toBe(-1);
    expect(blockOrder(1.5)).toBe(-1);
    expect(blockOrder(Number.NaN)).toBe(-1);
  });
});

describe('PageAllocator', () => {
  it('hands out naturally aligned blocks inside the region, lowest address first', () => {
    const { alloc } = fresh();
    expect(alloc.capacity).toBe(1 * MiB);
    const a = alloc.alloc(4096);
    const b = alloc.alloc(4096);
    const c = alloc.alloc(64 * KiB);
    const d = alloc.alloc(32);
    expect(a).toBe(BASE);
    expect(b).toBe(BASE + 4096);
    expect(c).toBe(BASE + 64 * KiB);
    expect(d).toBe(BASE + 8192);
    for (const [addr, size] of [
      [a, 4096],
      [b, 4096],
      [c, 64 * KiB],
      [d, 32],
    ] as const) {
      expect(addr).toBeDefined();
      expect(addr! % size).toBe(0);
      expect(alloc.contains(addr!, size)).toBe(true);
    }
  });

  it('is deterministic: the same calls give the same addresses', () => {
    const run = (): (number | undefined)[] => {
      const { alloc } = fresh(256 * KiB);
      const out: (number | undefined)[] = [];
      for (const n of [4096, 64, 16384, 8, 4096, 65536]) out.push(alloc.alloc(n));
      alloc.free(out[1]!, 64);
      out.push(alloc.alloc(8), alloc.alloc(128 * KiB));
      return out;
    };
    expect(run()).toEqual(run());
  });

  it('rounds requests up and honours a larger alignment', () => {
    const { alloc } = fresh();
    const small = alloc.alloc(24)!;
    expect(alloc.allocatedSize(small)).toBe(32);
    const aligned = alloc.alloc(4096, 16)!;
    expect(aligned % (64 * KiB)).toBe(0);
    expect(alloc.allocatedSize(aligned)).toBe(4096);
    // A stage-2 start table of 16 concatenated 4 KiB pages, aligned to its total size.
    const concat = alloc.alloc(16 * 4096)!;
    expect(concat % (64 * KiB)).toBe(0);
  });

  it('zeroes blocks on allocation', () => {
    const { mem, alloc } = fresh();
    const a = alloc.alloc(4096)!;
    mem.fill(a, 4096, 0xa5);
    expect(mem.read8(a + 100)).toBe(0xa5);
    expect(alloc.free(a, 4096)).toBe(true);
    const b = alloc.alloc(4096)!;
    expect(b).toBe(a);
    expect([...mem.read(b, 4096)!].every((x) => x === 0)).toBe(true);
  });

  it('returns undefined when exhausted or asked for nonsense, and counts failures', () => {
    const { alloc } = fresh(16 * KiB);
    expect(alloc.alloc(32 * KiB)).toBeUndefined();
    const blocks = [alloc.alloc(4096), alloc.alloc(4096), alloc.alloc(4096), alloc.alloc(4096)];
    expect(blocks.every((x) => x !== undefined)).toBe(true);
    expect(alloc.alloc(8)).toBeUndefined();
    expect(alloc.alloc(0)).toBeUndefined();
    expect(alloc.alloc(-4096)).toBeUndefined();
    expect(alloc.alloc(Number.NaN)).toBeUndefined();
    expect(alloc.alloc(4096, 1.5)).toBeUndefined();
    expect(alloc.stats().failures).toBe(6);
    expect(alloc.bytesFree).toBe(0);
  });

  it('refuses frees of blocks it did not hand out, changing nothing', () => {
    const { alloc } = fresh();
    const a = alloc.alloc(4096)!;
    expect(alloc.free(a + 8, 4096)).toBe(false);
    expect(alloc.free(a, 8192)).toBe(false);
    expect(alloc.free(a, 0)).toBe(false);
    expect(alloc.bytesInUse).toBe(4096);
    expect(alloc.free(a, 4096)).toBe(true);
    expect(alloc.free(a, 4096)).toBe(false);
    expect(alloc.bytesInUse).toBe(0);
  });

  it('coalesces buddies back into large blocks', () => {
    const { alloc } = fresh(64 * KiB);
    const pages: number[] = [];
    for (let i = 0; i < 16; i++) pages.push(alloc.alloc(4096)!);
    expect(alloc.alloc(4096)).toBeUndefined();
    // Free in a scrambled order; the whole region must merge back.
    for (const i of [3, 14, 0, 9, 1, 15, 2, 8, 4, 12, 5, 13, 6, 11, 7, 10])
      expect(alloc.free(pages[i]!, 4096)).toBe(true);
    expect(alloc.largestFreeBlock).toBe(64 * KiB);
    expect(alloc.alloc(64 * KiB)).toBe(BASE);
  });

  it('keeps bytesInUse and peak', () => {
    const { alloc } = fresh();
    const a = alloc.alloc(4096)!;
    const b = alloc.alloc(8192)!;
    expect(alloc.bytesInUse).toBe(12288);
    alloc.free(a, 4096);
    alloc.free(b, 8192);
    expect(alloc.bytesInUse).toBe(0);
    expect(alloc.peakBytesInUse).toBe(12288);
    expect(alloc.stats()).toMatchObject({ allocs: 2, frees: 2, blocksInUse: 0, peakBytesInUse: 12288 });
  });

  it('uses only the aligned part of an unaligned region', () => {
    const { alloc } = fresh(20 * KiB + 5, BASE + 4 * KiB + 3);
    // [BASE+4K+8, BASE+24K+8) trimmed to 8-byte boundaries.
    expect(alloc.capacity).toBe(20 * KiB);
    const got: number[] = [];
    for (;;) {
      const a = alloc.alloc(4096);
      if (a === undefined) break;
      got.push(a);
    }
    // Exactly the 4 KiB-aligned pages fully inside the region: BASE+8K .. BASE+20K.
    expect(got).toEqual([BASE + 8 * KiB, BASE + 12 * KiB, BASE + 16 * KiB, BASE + 20 * KiB]);
    for (const a of got) expect(alloc.contains(a, 4096)).toBe(true);
  });

  it('an invalid region hands out nothing', () => {
    const mem = new PhysMem();
    for (const [base, size] of [
      [-4096, 8192],
      [0, 0],
      [0.5, 4096],
      [0, Number.POSITIVE_INFINITY],
    ] as const) {
      const alloc = new PageAllocator(mem, base, size);
      expect(alloc.capacity).toBe(0);
      expect(alloc.alloc(8)).toBeUndefined();
    }
  });

  it('fails cleanly when the region cannot be written, and keeps the block free', () => {
    const mem = new PhysMem();
    const alloc = new PageAllocator(mem, BASE, 64 * KiB);
    mem.markAbsent(BASE, 4096);
    expect(alloc.alloc(4096)).toBeUndefined();
    expect(alloc.bytesInUse).toBe(0);
    mem.markPresent(BASE, 4096);
    expect(alloc.alloc(4096)).toBe(BASE);
  });

  it('property: random alloc/free sequences keep blocks disjoint, aligned, inside and accounted', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('alloc' as const),
        log2: fc.integer({ min: 3, max: 15 }),
        extra: fc.nat(3),
      }),
      fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { alloc } = fresh(128 * KiB);
        const live = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === 'alloc') {
            const size = 2 ** o.log2;
            const align = o.log2 + o.extra;
            const a = alloc.alloc(size, align);
            if (a === undefined) continue;
            expect(a % 2 ** align).toBe(0);
            expect(alloc.contains(a, size)).toBe(true);
            for (const [b, bs] of live) expect(a + size <= b || b + bs <= a).toBe(true);
            live.set(a, size);
          } else if (live.size > 0) {
            const keys = [...live.keys()];
            const a = keys[o.pick % keys.length]!;
            expect(alloc.free(a, live.get(a)!)).toBe(true);
            live.delete(a);
          }
          expect(alloc.bytesInUse).toBe([...live.values()].reduce((x, y) => x + y, 0));
        }
        for (const [a, s] of live) alloc.free(a, s);
        expect(alloc.bytesInUse).toBe(0);
        expect(alloc.largestFreeBlock).toBe(128 * KiB);
      }),
      { numRuns: 200 },
    );
  });
});

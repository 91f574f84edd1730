/**
 * Tests of the IOVA allocator: top-down natural alignment, limits, reservations, free and reuse,
 * and a fast-check property over random alloc/free/reserve sequences comparing every allocation
 * with a brute-force search for the highest free aligned range.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IovaDomain } from './iova.ts';
import { roundupPowOfTwo } from './pgsize.ts';

describe('IovaDomain', () => {
  it('allocates top-down, naturally aligned, below the limit, never frame 0', () => {
    const d = new IovaDomain(4096, 1, 255);
    expect(d.alloc(1, 255)).toBe(255);
    expect(d.alloc(3, 255)).toBe(252); // 3 frames, start aligned to 4: 252..254
    expect(d.alloc(3, 255)).toBe(248);
    expect(d.alloc(16, 100)).toBe(80); // last frame <= 100, start aligned to 16
    expect(d.alloc(3, 255, false)).toBe(245); // unaligned: right below 248
    expect(d.alloc(2, 255)).toBe(242); // frame 251 is free but alone; 242..243 is the highest pair

    expect(d.alloc(0, 255)).toBeUndefined();
    const tiny = new IovaDomain(4096, 1, 3);
    expect(tiny.alloc(4, 3)).toBeUndefined();
    expect(tiny.alloc(2, 3)).toBe(2);
    expect(tiny.alloc(1, 3)).toBe(1);
    expect(tiny.alloc(1, 3)).toBeUndefined();
  });

  it('reserve fills only free frames; reserved ranges cannot be freed', () => {
    const d = new IovaDomain(4096, 1, 63);
    expect(d.alloc(4, 63)).toBe(60);
    d.reserve(50, 62);
    expect(d.ranges).toEqual([
      { lo: 50, hi: 59, reserved: true },
      { lo: 60, hi: 63, reserved: false },
    ]);
    expect(d.free(55)).toBe(false);
    expect(d.free(61)).toBe(true);
    expect(d.alloc(8, 63)).toBe(40);
    d.reserve(10, 5);
    expect(d.find(45)).toEqual({ lo: 40, hi: 47, reserved: false });
    expect(d.find(9)).toBeUndefined();
  });

  it('freed ranges are reused', () => {
    const d = new IovaDomain(4096, 1, 31);
    const a = d.alloc(8, 31)!;
    const b = d.alloc(8, 31)!;
    expect([a, b]).toEqual([24, 16]);
    expect(d.free(a + 3)).toBe(true);
    expect(d.alloc(8, 31)).toBe(24);
    expect(d.free(1000)).toBe(false);
  });

  it('rejects a bad construction', () => {
    expect(() => new IovaDomain(3000, 1, 10)).toThrow();
    expect(() => new IovaDomain(4096, 0, 10)).toThrow();
  });
});

type Op =
  | { k: 'alloc'; size: number; limit: number }
  | { k: 'free'; pick: number }
  | { k: 'reserve'; lo: number; len: number };

describe('IovaDomain properties', () => {
  const END = 255;
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      k: fc.constant('alloc' as const),
      size: fc.integer({ min: 1, max: 40 }),
      limit: fc.integer({ min: 0, max: 300 }),
    }),
    fc.record({ k: fc.constant('free' as const), pick: fc.nat() }),
    fc.record({
      k: fc.constant('reserve' as const),
      lo: fc.integer({ min: 0, max: 260 }),
      len: fc.integer({ min: 1, max: 20 }),
    }),
  );

  it('no overlaps, alignment, inside the domain, highest fit, reserved never allocated', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const d = new IovaDomain(4096, 1, END);
        const used = new Uint8Array(END + 2); // 0 free, 1 allocated, 2 reserved
        for (const o of ops) {
          if (o.k === 'alloc') {
            const align = roundupPowOfTwo(o.size);
            // Brute force: the highest aligned start whose frames are all free.
            let expected: number | undefined;
            for (let s = Math.min(o.limit, END) - o.size + 1; s >= 1; s--) {
              if (s % align !== 0) continue;
              let free = true;
              for (let f = s; f < s + o.size; f++) if (used[f] !== 0) free = false;
              if (free) {
                expected = s;
                break;
              }
            }
            const got = d.alloc(o.size, o.limit);
            expect(got).toBe(expected);
            if (got !== undefined) used.fill(1, got, got + o.size);
          } else if (o.k === 'free') {
            const live = d.allocated();
            if (live.length === 0) continue;
            const r = live[o.pick % live.length]!;
            expect(d.free(r.lo + ((o.pick >> 3) % (r.hi - r.lo + 1)))).toBe(true);
            used.fill(0, r.lo, r.hi + 1);
          } else {
            const hi = o.lo + o.len - 1;
            d.reserve(o.lo, hi);
            for (let f = o.lo; f <= hi && f < used.length; f++) if (used[f] === 0) used[f] = 2;
          }
          // The allocator's ranges are disjoint, ascending, and agree with the shadow map.
          let prev = -1;
          for (const r of d.ranges) {
            expect(r.lo).toBeGreaterThan(prev);
            prev = r.hi;
            for (let f = r.lo; f <= r.hi && f < used.length; f++) expect(used[f]).toBe(r.reserved ? 2 : 1);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

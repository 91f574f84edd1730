import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  alignDown,
  bit64,
  deposit32,
  deposit64,
  extract32,
  extract64,
  fromBigInt,
  hex64,
  hi32,
  isAligned,
  join64,
  lo32,
  log2Exact,
  mask32,
  split64,
  toBigInt,
} from './bits.ts';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

describe('bits: 32-bit fields', () => {
  it('extract32 and deposit32 round-trip against a BigInt reference', () => {
    fc.assert(
      fc.property(
        u32,
        u32,
        fc.integer({ min: 0, max: 31 }),
        fc.integer({ min: 1, max: 32 }),
        (w, v, start, len) => {
          fc.pre(start + len <= 32);
          const ref = Number((BigInt(w) >> BigInt(start)) & ((1n << BigInt(len)) - 1n));
          expect(extract32(w, start, len)).toBe(ref);
          const d = deposit32(w, start, len, v);
          expect(extract32(d, start, len)).toBe(Number(BigInt(v) & ((1n << BigInt(len)) - 1n)));
          const outside = ~Number(((1n << BigInt(len)) - 1n) << BigInt(start)) >>> 0;
          expect((d & outside) >>> 0).toBe((w & outside) >>> 0);
        },
      ),
    );
  });

  it('mask32 covers exactly [hi:lo]', () => {
    expect(mask32(31, 0)).toBe(0xffff_ffff);
    expect(mask32(3, 1)).toBe(0b1110);
    expect(mask32(31, 31)).toBe(0x8000_0000);
  });
});

describe('bits: 64-bit values as words', () => {
  it('split64 / join64 / hi32 / lo32 round-trip every safe integer', () => {
    fc.assert(
      fc.property(safe, (n) => {
        const out = new Uint32Array(2);
        split64(n, out);
        expect(join64(out[1]!, out[0]!)).toBe(n);
        expect(hi32(n)).toBe(out[1]);
        expect(lo32(n)).toBe(out[0]);
      }),
    );
  });

  it('extract64 matches BigInt for fields up to 53 bits', () => {
    fc.assert(
      fc.property(
        u64,
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 1, max: 53 }),
        (v, start, width) => {
          fc.pre(start + width <= 64);
          const [lo, hi] = fromBigInt(v);
          expect(extract64(hi, lo, start, width)).toBe(
            Number((v >> BigInt(start)) & ((1n << BigInt(width)) - 1n)),
          );
        },
      ),
    );
  });

  it('deposit64 writes only its field', () => {
    fc.assert(
      fc.property(
        u64,
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 1, max: 52 }),
        safe,
        (v, start, width, x) => {
          fc.pre(start + width <= 64);
          const [lo, hi] = fromBigInt(v);
          const w = new Uint32Array([lo, hi]);
          deposit64(w, 0, start, width, x % 2 ** width);
          const mask = ((1n << BigInt(width)) - 1n) << BigInt(start);
          const expected = (v & ~mask) | ((BigInt(x % 2 ** width) << BigInt(start)) & mask);
          expect(toBigInt(w[1]!, w[0]!)).toBe(expected);
        },
      ),
    );
  });

  it('bit64, alignment and log2 helpers', () => {
    expect(bit64(0x8000_0000, 0, 63)).toBe(true);
    expect(bit64(0, 1, 0)).toBe(true);
    expect(isAligned(0x20_0000, 21)).toBe(true);
    expect(isAligned(0x20_1000, 21)).toBe(false);
    expect(isAligned(2 ** 40, 40)).toBe(true);
    expect(alignDown(0x1_2345_6789, 12)).toBe(0x1_2345_6000);
    expect(alignDown(2 ** 45 + 5, 40)).toBe(2 ** 45);
    expect(log2Exact(4096)).toBe(12);
    expect(log2Exact(4097)).toBe(-1);
    expect(hex64(0x1, 0x2000)).toBe('0x0000000100002000');
  });
});

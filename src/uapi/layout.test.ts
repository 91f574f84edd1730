/**
 * Tests of the struct layout framework: definition-time validation, encode/decode round trips
 * over every field kind (fast-check), C truncation on encode, zero defaults for missing fields
 * and short buffers, union rules, and offsetof/offsetofend.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { array, bytes, defineStruct, s32, s64, struct, u8, u16, u32, u64, union } from './layout.ts';

/** 8 bytes: a u32, a u16 and two u8. */
const inner = defineStruct('inner', 8, { a: u32(0), b: u16(4), c: u8(6), d: u8(7) });

/** One field of every kind, with holes at 1 and 12..15 and 43..47. */
const every = defineStruct('every', 80, {
  b8: u8(0),
  h16: u16(2),
  w32: u32(4),
  i32: s32(8),
  q64: u64(16),
  i64: s64(24),
  raw: bytes(32, 5),
  arr: array(38, 'u16', 2),
  nested: struct(48, inner),
  un: union(56, { x: u64(0), y: struct(0, inner) }),
  arr64: array(64, 'u64', 2),
});

describe('defineStruct validation', () => {
  it('accepts a consistent table and derives the alignment from its fields', () => {
    expect(every.size).toBe(80);
    expect(every.align).toBe(8);
    expect(inner.align).toBe(4);
    expect(defineStruct('bytes_only', 3, { x: bytes(0, 3) }).align).toBe(1);
  });

  it('throws for a misaligned field', () => {
    expect(() => defineStruct('m', 8, { a: u32(2) })).toThrow(/aligned/);
    expect(() => defineStruct('m', 16, { a: u64(4) })).toThrow(/aligned/);
    expect(() => defineStruct('m', 8, { a: u16(1) })).toThrow(/aligned/);
    expect(() => defineStruct('m', 16, { n: struct(4, defineStruct('q', 8, { q: u64(0) })) })).toThrow(
      /aligned/,
    );
  });

  it('throws for overlapping fields', () => {
    expect(() => defineStruct('o', 8, { a: u64(0), b: u32(4) })).toThrow(/overlaps/);
    expect(() => defineStruct('o', 4, { a: u16(0), b: u8(1) })).toThrow(/overlaps/);
    expect(() => defineStruct('o', 8, { a: bytes(0, 5), b: u32(4) })).toThrow(/overlaps/);
  });

  it('throws for a field beyond the struct', () => {
    expect(() => defineStruct('b', 8, { a: u64(8) })).toThrow(/beyond/);
    expect(() => defineStruct('b', 4, { a: bytes(2, 3) })).toThrow(/beyond/);
    expect(() => defineStruct('b', 8, { a: array(4, 'u32', 2) })).toThrow(/beyond/);
  });

  it('throws when the size is not a multiple of the alignment, or not a size at all', () => {
    expect(() => defineStruct('s', 12, { a: u64(0) })).toThrow(/multiple/);
    expect(() => defineStruct('s', 6, { a: u32(0) })).toThrow(/multiple/);
    expect(() => defineStruct('s', 0, {})).toThrow(/size/);
    expect(() => defineStruct('s', 2.5, { a: u8(0) })).toThrow(/size/);
  });

  it('honours an explicit alignment', () => {
    const over = defineStruct('over', 16, { a: u32(0) }, { align: 16 });
    expect(over.align).toBe(16);
    expect(() => defineStruct('over', 8, { a: u32(0) }, { align: 16 })).toThrow(/multiple/);
  });

  it('checks union members and sizes', () => {
    expect(() => union(0, { a: u32(4) })).toThrow(/offset 0/);
    expect(() => union(0, { a: u64(0) }, 4)).toThrow(/smaller/);
    const u = union(8, { a: u32(0), b: u64(0), c: bytes(0, 3) }, 20);
    expect(u.size).toBe(24); // 20 rounded up to the union's 8-byte alignment
    expect(u.align).toBe(8);
    expect(union(0, { a: u16(0), b: bytes(0, 3) }).size).toBe(4);
  });
});

describe('encode', () => {
  it('writes little-endian values at their offsets', () => {
    const buf = every.encode({
      b8: 0x11,
      h16: 0x2233,
      w32: 0x44556677,
      i32: -2,
      q64: 0x0102030405060708n,
      i64: -1n,
      raw: [0xa1, 0xa2, 0xa3],
      arr: [0xbeef, 0x1234],
      nested: { a: 0xcafef00d, b: 0x5566, c: 0x77, d: 0x88 },
      un: { x: 0xf0e0d0c0b0a09080n },
      arr64: [1n, 0x8000000000000000n],
    });
    const expected = new Uint8Array(80);
    expected.set([0x11], 0);
    expected.set([0x33, 0x22], 2);
    expected.set([0x77, 0x66, 0x55, 0x44], 4);
    expected.set([0xfe, 0xff, 0xff, 0xff], 8);
    expected.set([8, 7, 6, 5, 4, 3, 2, 1], 16);
    expected.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 24);
    expected.set([0xa1, 0xa2, 0xa3], 32);
    expected.set([0xef, 0xbe, 0x34, 0x12], 38);
    expected.set([0x0d, 0xf0, 0xfe, 0xca, 0x66, 0x55, 0x77, 0x88], 48);
    expected.set([0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0], 56);
    expected.set([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80], 64);
    expect(buf).toEqual(expected);
  });

  it('truncates values to the field width, as C assignment does', () => {
    const d = every.decode(
      every.encode({
        b8: 0x1ff,
        h16: 0x12345,
        w32: -1,
        i32: 0xffffffff,
        q64: -1n,
        i64: 2n ** 63n,
        arr: [0x10001, -1],
        arr64: [2n ** 64n + 5n, -2n],
      }),
    );
    expect(d.b8).toBe(0xff);
    expect(d.h16).toBe(0x2345);
    expect(d.w32).toBe(0xffffffff);
    expect(d.i32).toBe(-1);
    expect(d.q64).toBe(0xffff_ffff_ffff_ffffn);
    expect(d.i64).toBe(-(2n ** 63n));
    expect(d.arr).toEqual([1, 0xffff]);
    expect(d.arr64).toEqual([5n, 0xffff_ffff_ffff_fffen]);
  });

  it('accepts numbers for 64-bit fields and truncates fractions towards zero', () => {
    const d = every.decode(every.encode({ q64: 2 ** 53, i64: -3, w32: 7.9, b8: 2.5 }));
    expect(d.q64).toBe(2n ** 53n);
    expect(d.i64).toBe(-3n);
    expect(d.w32).toBe(7);
    expect(d.b8).toBe(2);
    expect(every.decode(every.encode({ q64: Number.NaN, w32: Number.POSITIVE_INFINITY })).q64).toBe(0n);
  });

  it('leaves missing fields zero', () => {
    expect(every.encode()).toEqual(new Uint8Array(80));
    expect(every.encode({})).toEqual(new Uint8Array(80));
    const buf = every.encode({ w32: 1, nested: { c: 3 } });
    const expected = new Uint8Array(80);
    expected[4] = 1;
    expected[54] = 3;
    expect(buf).toEqual(expected);
    // A short bytes/array input fills only its prefix.
    const short = every.decode(every.encode({ raw: [9], arr64: [7n] }));
    expect(short.raw).toEqual(Uint8Array.of(9, 0, 0, 0, 0));
    expect(short.arr64).toEqual([7n, 0n]);
  });

  it('throws on programmer errors: two union members, unknown fields, oversize bytes/arrays', () => {
    expect(() => every.encode({ un: { x: 1n, y: { a: 1 } } })).toThrow(/one member/);
    expect(() => every.encode({ nope: 1 } as never)).toThrow(/no field named nope/);
    expect(() => every.encode({ raw: [1, 2, 3, 4, 5, 6] })).toThrow(/do not fit/);
    expect(() => every.encode({ arr: [1, 2, 3] })).toThrow(/do not fit/);
    // An undefined member is not "given".
    expect(() => every.encode({ un: { x: 1n, y: undefined } } as never)).not.toThrow();
  });

  it('encodeInto writes the whole struct at an offset', () => {
    const dst = new Uint8Array(20).fill(0xee);
    inner.encodeInto(dst, 4, { a: 0x01020304 });
    expect([...dst]).toEqual([
      0xee, 0xee, 0xee, 0xee, 4, 3, 2, 1, 0, 0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
    ]);
  });
});

describe('decode', () => {
  it('reads a short buffer with zeros for the missing tail', () => {
    const d = every.decode(Uint8Array.of(0x7f, 0x99, 0x01, 0x02, 0xaa));
    expect(d.b8).toBe(0x7f);
    expect(d.h16).toBe(0x0201);
    expect(d.w32).toBe(0xaa);
    expect(d.q64).toBe(0n);
    expect(d.nested).toEqual({ a: 0, b: 0, c: 0, d: 0 });
    expect(every.decode(new Uint8Array(0))).toEqual(every.decode(new Uint8Array(80)));
  });

  it('reads at an offset, and past the end of the buffer as zeros', () => {
    const src = new Uint8Array(12);
    src.set([1, 2, 3, 4, 5, 6, 7, 8], 4);
    expect(inner.decode(src, 4)).toEqual({ a: 0x04030201, b: 0x0605, c: 7, d: 8 });
    expect(inner.decode(src, 8)).toEqual({ a: 0x08070605, b: 0, c: 0, d: 0 });
    expect(inner.decode(src, 100)).toEqual({ a: 0, b: 0, c: 0, d: 0 });
  });

  it('gives every member view of a union', () => {
    const d = every.decode(every.encode({ un: { y: { a: 0x11223344, b: 0x5566, c: 0x77, d: 0x88 } } }));
    expect(d.un.y).toEqual({ a: 0x11223344, b: 0x5566, c: 0x77, d: 0x88 });
    expect(d.un.x).toBe(0x8877556611223344n);
  });

  it('returns a bytes field as a copy', () => {
    const buf = every.encode({ raw: [1, 2, 3] });
    const d = every.decode(buf);
    d.raw[0] = 99;
    expect(buf[32]).toBe(1);
  });
});

describe('round trip (property)', () => {
  const u64v = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
  const s64v = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  const innerV = fc.record({
    a: fc.integer({ min: 0, max: 0xffffffff }),
    b: fc.integer({ min: 0, max: 0xffff }),
    c: fc.integer({ min: 0, max: 0xff }),
    d: fc.integer({ min: 0, max: 0xff }),
  });
  const value = fc.record({
    b8: fc.integer({ min: 0, max: 0xff }),
    h16: fc.integer({ min: 0, max: 0xffff }),
    w32: fc.integer({ min: 0, max: 0xffffffff }),
    i32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    q64: u64v,
    i64: s64v,
    raw: fc.uint8Array({ minLength: 5, maxLength: 5 }),
    arr: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 2, maxLength: 2 }),
    nested: innerV,
    un: fc.oneof(
      u64v.map((x) => ({ x })),
      innerV.map((y) => ({ y })),
    ),
    arr64: fc.array(u64v, { minLength: 2, maxLength: 2 }),
  });

  it('decode(encode(v)) gives v back for every field kind', () => {
    fc.assert(
      fc.property(value, (v) => {
        const buf = every.encode(v);
        expect(buf.length).toBe(80);
        const d = every.decode(buf);
        const { un, ...rest } = v;
        const { un: dun, ...drest } = d;
        expect(drest).toEqual(rest);
        if ('x' in un) expect(dun.x).toBe(un.x);
        else expect(dun.y).toEqual(un.y);
        // Re-encoding the decoded union through the member that was written gives the same bytes.
        expect(every.encode({ ...drest, un: 'x' in un ? { x: dun.x } : { y: dun.y } })).toEqual(buf);
        // Holes stay zero.
        expect([buf[1], ...buf.subarray(12, 16), ...buf.subarray(37, 38), ...buf.subarray(42, 48)]).toEqual(
          new Array(12).fill(0),
        );
      }),
    );
  });

  it('encode(decode(bytes)) keeps every byte that belongs to a field', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 80, maxLength: 80 }), (src) => {
        const d = every.decode(src);
        const { un, ...rest } = d;
        const out = every.encode({ ...rest, un: { x: un.x } });
        const holes = new Set([1, 12, 13, 14, 15, 37, 42, 43, 44, 45, 46, 47]);
        for (let i = 0; i < 80; i++) expect(out[i]).toBe(holes.has(i) ? 0 : src[i]);
      }),
    );
  });
});

describe('offsetof / offsetofend / describe', () => {
  it('give the first byte and the byte after a field', () => {
    expect(every.offsetof('b8')).toBe(0);
    expect(every.offsetofend('b8')).toBe(1);
    expect(every.offsetof('raw')).toBe(32);
    expect(every.offsetofend('raw')).toBe(37);
    expect(every.offsetof('arr')).toBe(38);
    expect(every.offsetofend('arr')).toBe(42);
    expect(every.offsetof('nested')).toBe(48);
    expect(every.offsetofend('nested')).toBe(56);
    expect(every.offsetofend('un')).toBe(64);
    expect(every.offsetofend('arr64')).toBe(80);
  });

  it('describe lists every field in declaration order', () => {
    expect(inner.describe()).toEqual([
      { name: 'a', offset: 0, size: 4 },
      { name: 'b', offset: 4, size: 2 },
      { name: 'c', offset: 6, size: 1 },
      { name: 'd', offset: 7, size: 1 },
    ]);
    expect(every.describe().map((f) => f.name)).toEqual([
      'b8',
      'h16',
      'w32',
      'i32',
      'q64',
      'i64',
      'raw',
      'arr',
      'nested',
      'un',
      'arr64',
    ]);
  });
});

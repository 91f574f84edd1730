/** Expectation matching: partial, representation-independent for integers, exact for bigints. */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StepBuilder } from '../report.ts';
import { asBigInt, expectMatch, mismatches, show } from './expect.ts';

describe('mismatches', () => {
  it('matches integers across number, bigint and hex or decimal strings', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const hex = `0x${v.toString(16)}`;
        expect(mismatches(v, hex)).toEqual([]);
        expect(mismatches(hex, v)).toEqual([]);
        if (v <= BigInt(Number.MAX_SAFE_INTEGER)) expect(mismatches(Number(v), hex)).toEqual([]);
        expect(mismatches(v + 1n, hex)).toHaveLength(1);
      }),
    );
    expect(mismatches(4096, '4_096')).toEqual([]);
  });

  it('checks only the keys the expectation names, and reports paths', () => {
    expect(mismatches({ a: 1, b: { c: 2, d: 3 } }, { b: { c: 2 } })).toEqual([]);
    expect(mismatches({ a: 1, b: { c: 2 } }, { b: { c: 5 }, e: 1 })).toEqual([
      'b.c: got 2, expected 5',
      'e: missing',
    ]);
  });

  it('compares lists element by element, or only their length', () => {
    expect(mismatches([1, 2], [1, 2])).toEqual([]);
    expect(mismatches([1, 2], [1])).toEqual(['(value): got 2 items, expected 1']);
    expect(mismatches([{ id: 'F_TRANSLATION', sid: 1 }], [{ id: 'F_PERMISSION' }])).toEqual([
      '[0].id: got "F_TRANSLATION", expected "F_PERMISSION"',
    ]);
    expect(mismatches([1, 2, 3], { length: 3 })).toEqual([]);
    expect(mismatches(new Uint8Array([1, 2]), [1, 2])).toEqual([]);
  });

  it('does not confuse strings that are not numbers, booleans or null', () => {
    expect(mismatches('EINVAL', 'EINVAL')).toEqual([]);
    expect(mismatches('EINVAL', 'ENOENT')).toHaveLength(1);
    expect(mismatches(false, true)).toHaveLength(1);
    expect(mismatches(undefined, null)).toHaveLength(1);
    expect(asBigInt('x1')).toBeUndefined();
  });
});

describe('show / expectMatch', () => {
  it('renders addresses in hex and small numbers in decimal', () => {
    expect(show(4095)).toBe('4095');
    expect(show(4096)).toBe('0x1000');
    expect(show(0xffff_ffff_ffff_ffffn)).toBe('0xffffffffffffffff');
    expect(show(new Uint8Array([0xde, 0xad]))).toBe('[de ad]');
    expect(show({ a: 2n })).toBe('{"a":"2"}');
  });

  it('records a met or failed expectation with what differed', () => {
    const b = new StepBuilder('t');
    expect(expectMatch(b, 'pa', 0x8000_1000, '0x8000_1000')).toBe(true);
    expect(expectMatch(b, 'pa', 0x8000_2000, '0x8000_1000')).toBe(false);
    expect(b.expectations).toEqual([
      { what: 'pa', ok: true, got: '0x80001000' },
      { what: 'pa', ok: false, got: '(value): got 0x80002000, expected "0x8000_1000"' },
    ]);
  });
});

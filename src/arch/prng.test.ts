import { describe, expect, it } from 'vitest';
import { prng } from './prng.ts';

describe('prng', () => {
  it('is deterministic per seed, uint32-valued, and differs between seeds', () => {
    const a = prng(42);
    const b = prng(42);
    const c = prng(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff)).toBe(true);
    expect(new Set(xs).size).toBe(1000);
    expect(c()).not.toBe(xs[0]);
    expect(prng(0)()).toBe(prng(0x9e37_79b9)());
  });
});

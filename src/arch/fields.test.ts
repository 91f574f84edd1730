import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addrField, checkTable, decodeFields, field, getField, setField } from './fields.ts';

describe('field tables', () => {
  it('value fields spanning the two words of a dword round-trip', () => {
    const f = field('X', 1, 40, 20); // dword 1, 21 bits across words 2 and 3
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 21 - 1 }), (v) => {
        const w = new Uint32Array(4).fill(0xffff_ffff);
        setField(w, f, v);
        expect(getField(w, f)).toBe(v);
        expect(w[0]).toBe(0xffff_ffff);
        expect(w[1]).toBe(0xffff_ffff);
      }),
    );
  });

  it('address fields stay in place and keep bits outside the field', () => {
    const f = addrField('Ptr', 0, 51, 6);
    const w = new Uint32Array(2);
    w[0] = 0x3f; // bits below the field
    setField(w, f, 0x000f_1234_5678_9ac0);
    expect(getField(w, f)).toBe(0x000f_1234_5678_9ac0);
    expect(w[0]! & 0x3f).toBe(0x3f);
  });

  it('decodeFields names every field and checkTable finds overlaps', () => {
    const a = field('A', 0, 3, 0);
    const b = field('B', 0, 7, 4);
    const w = new Uint32Array([0x5a, 0]);
    expect(decodeFields(w, [a, b])).toEqual({ A: 0xa, B: 0x5 });
    expect(checkTable([a, b], 1)).toEqual([]);
    expect(checkTable([a, field('C', 0, 4, 3)], 1)).toHaveLength(1);
    expect(checkTable([field('D', 2, 3, 0)], 1)).toHaveLength(1);
  });
});

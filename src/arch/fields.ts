/**
 * Declarative bit-field tables for in-memory hardware structures (STE, CD, commands, event
 * records, descriptors) that are arrays of little-endian 64-bit dwords held as 32-bit words.
 *
 * A field is named twice: the constant follows Linux's `STRUCT_DWORD_FIELD` convention
 * (`STE_0_CFG`: STE, dword 0, Config) and the `name` is the spec's own (`Config`). The same table
 * drives decode, encode, pretty-printing and the size-and-position tests, so a position is written
 * exactly once. `kind: 'addr'` marks an address field whose bits stay in place (STE.S1ContextPtr
 * bits [55:6] yield an address with bits [5:0] zero).
 */

import { deposit64, extract64, hi32, lo32, mask32, TWO_POW_32 } from './bits.ts';

export interface Field {
  /** The spec's field name, e.g. `S1ContextPtr`. */
  readonly name: string;
  /** Index of the 64-bit dword holding the field. */
  readonly dword: number;
  /** Highest bit within the dword (0..63). */
  readonly hi: number;
  /** Lowest bit within the dword (0..63). */
  readonly lo: number;
  readonly kind: 'value' | 'addr';
}

export function field(name: string, dword: number, hi: number, lo: number): Field {
  return { name, dword, hi, lo, kind: 'value' };
}

export function addrField(name: string, dword: number, hi: number, lo: number): Field {
  return { name, dword, hi, lo, kind: 'addr' };
}

export function bitField(name: string, dword: number, bit: number): Field {
  return { name, dword, hi: bit, lo: bit, kind: 'value' };
}

/** Width of a field in bits. */
export function fieldWidth(f: Field): number {
  return f.hi - f.lo + 1;
}

/** Absolute bit position of the field's lowest bit within the structure. */
export function fieldBitOffset(f: Field): number {
  return f.dword * 64 + f.lo;
}

/**
 * Reads a field from `words` (u32 words, two per dword) starting at word index `base`.
 * Value fields come back shifted down; address fields come back in place.
 */
export function getField(words: ArrayLike<number>, f: Field, base = 0): number {
  const lo = words[base + f.dword * 2] ?? 0;
  const hi = words[base + f.dword * 2 + 1] ?? 0;
  if (f.kind === 'addr') {
    // In place. Exact below 2^53; an address with bits above 52 set is out of every OAS, so the
    // small rounding such a value may suffer never changes a range check.
    return ((hi & fieldWordMask(f, 1)) >>> 0) * TWO_POW_32 + ((lo & fieldWordMask(f, 0)) >>> 0);
  }
  return extract64(hi, lo, f.lo, fieldWidth(f));
}

/** Writes a field. Value fields take the unshifted value; address fields take the address in place. */
export function setField(words: Uint32Array | number[], f: Field, value: number, base = 0): void {
  const at = base + f.dword * 2;
  if (f.kind === 'addr') {
    const width = fieldWidth(f);
    const shifted = Math.floor(value / 2 ** f.lo);
    deposit64(words, at, f.lo, width, shifted % 2 ** width);
    return;
  }
  deposit64(words, at, f.lo, fieldWidth(f), value);
}

/** All fields of a table decoded into an object keyed by spec name. */
export function decodeFields(
  words: ArrayLike<number>,
  table: readonly Field[],
  base = 0,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of table) out[f.name] = getField(words, f, base);
  return out;
}

/** Checks that no two fields of a table overlap and all fit in `dwords` dwords; returns problems. */
export function checkTable(table: readonly Field[], dwords: number): string[] {
  const problems: string[] = [];
  const owner = new Map<number, string>();
  for (const f of table) {
    if (f.dword < 0 || f.dword >= dwords || f.lo < 0 || f.hi > 63 || f.hi < f.lo) {
      problems.push(`${f.name}: dword ${f.dword} bits [${f.hi}:${f.lo}] out of range`);
      continue;
    }
    for (let b = f.lo; b <= f.hi; b++) {
      const abs = f.dword * 64 + b;
      const prev = owner.get(abs);
      if (prev !== undefined) problems.push(`${f.name} overlaps ${prev} at bit ${abs}`);
      owner.set(abs, f.name);
    }
  }
  return problems;
}

/** Mask of the field's bits within one 32-bit word of its dword (0 = low word, 1 = high word). */
export function fieldWordMask(f: Field, half: 0 | 1): number {
  const lo = half === 0 ? f.lo : Math.max(f.lo, 32);
  const hi = half === 0 ? Math.min(f.hi, 31) : f.hi;
  if (half === 0 && f.lo > 31) return 0;
  if (half === 1 && f.hi < 32) return 0;
  return half === 0 ? mask32(hi, lo) : mask32(hi - 32, lo - 32);
}

/** hi/lo of a number as a pair, for callers that build dwords. */
export function words64(n: number): [lo: number, hi: number] {
  return [lo32(n), hi32(n)];
}

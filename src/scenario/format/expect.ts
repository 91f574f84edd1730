/**
 * Comparing what a step observed with what its `expect` says (issue 7 §1). An expectation is a
 * partial picture: every key it names must match, keys it leaves out are not checked. Numbers
 * match across representations — 4096, "0x1000", 4096n and "4_096" are equal — so a scenario can
 * write addresses in hex while the model reports numbers or bigints. Lists match element by
 * element and must have the same length; `{ length: n }` on a list checks only its length.
 */

import { hex } from '../../arch/bits.ts';
import type { StepBuilder } from '../report.ts';
import { isNumericString, parseNumeric } from './values.ts';

/** The exact integer behind `v`, when it is one (number, bigint or numeric string). */
export function asBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && isNumericString(v)) return parseNumeric(v);
  return undefined;
}

/** Where `got` differs from `want`: a list of "path: got X, expected Y" (empty when it matches). */
export function mismatches(got: unknown, want: unknown, path = ''): string[] {
  const here = path === '' ? '(value)' : path;
  if (want === undefined) return [];
  const wb = asBigInt(want);
  if (wb !== undefined && typeof want !== 'string') {
    const gb = asBigInt(got);
    return gb === wb ? [] : [`${here}: got ${show(got)}, expected ${show(want)}`];
  }
  if (typeof want === 'string') {
    if (got === want) return [];
    const gb = asBigInt(got);
    if (wb !== undefined && gb !== undefined && gb === wb) return [];
    return [`${here}: got ${show(got)}, expected ${show(want)}`];
  }
  if (typeof want === 'boolean' || want === null) {
    return got === want ? [] : [`${here}: got ${show(got)}, expected ${show(want)}`];
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) && !(got instanceof Uint8Array))
      return [`${here}: got ${show(got)}, expected a list`];
    const g = Array.from(got as ArrayLike<unknown>);
    if (g.length !== want.length) return [`${here}: got ${g.length} items, expected ${want.length}`];
    return want.flatMap((w, i) => mismatches(g[i], w, `${path}[${i}]`));
  }
  if (typeof want === 'object') {
    const w = want as Record<string, unknown>;
    if (Array.isArray(got) && Object.keys(w).length === 1 && 'length' in w)
      return mismatches(got.length, w.length, `${path}.length`);
    if (got === null || typeof got !== 'object') return [`${here}: got ${show(got)}, expected an object`];
    const g = got as Record<string, unknown>;
    return Object.keys(w).flatMap((k) =>
      k in g || w[k] === undefined
        ? mismatches(g[k], w[k], path === '' ? k : `${path}.${k}`)
        : [`${path === '' ? k : `${path}.${k}`}: missing`],
    );
  }
  return got === want ? [] : [`${here}: got ${show(got)}, expected ${show(want)}`];
}

/** A short rendering of a value for reports: integers ≥ 4096 in hex, bigints exact. */
export function show(v: unknown): string {
  if (typeof v === 'bigint') return v >= 4096n ? hex(v) : v.toString();
  if (typeof v === 'number') return Number.isInteger(v) && v >= 4096 ? hex(v) : String(v);
  if (v instanceof Uint8Array) return `[${Array.from(v, (b) => b.toString(16).padStart(2, '0')).join(' ')}]`;
  if (v === undefined) return 'nothing';
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? show(x) : x));
}

/** Records on `b` whether `got` matches `want`, with the differences (or the value) as "got". */
export function expectMatch(b: StepBuilder, what: string, got: unknown, want: unknown): boolean {
  const diff = mismatches(got, want);
  b.expect(what, diff.length === 0, diff.length === 0 ? show(got) : diff.join('; '));
  return diff.length === 0;
}

/**
 * Numbers in scenario files (issue 7 §1). Addresses and register values are written as hex strings
 * ("0x8000_0000", underscores allowed) or YAML integers, and are kept exact: the loader reads every
 * YAML integer as a bigint and hands zod either a safe `number` or, above 2^53, the exact hex string
 * (see `normalizeYamlInts`). The schemas below turn either form into the type the model takes —
 * `number` for addresses and fields up to 2^53, `bigint` for u64 uAPI fields — and refuse values
 * that do not fit, saying what was expected.
 */

import { z } from 'zod';

/** "0x1f", "0X1F", "0x8000_0000", "4096", "4_096". */
const NUMERIC = /^(0[xX][0-9a-fA-F](_?[0-9a-fA-F])*|[0-9](_?[0-9])*)$/;
/** Negative decimal or hex, for signed fields ("-1", "-0x10"). */
const SIGNED = /^-?(0[xX][0-9a-fA-F](_?[0-9a-fA-F])*|[0-9](_?[0-9])*)$/;

/** The exact value of a numeric string accepted by `SIGNED` (underscores dropped). */
export function parseNumeric(s: string): bigint {
  const t = s.replace(/_/g, '');
  return t.startsWith('-') ? -BigInt(t.slice(1)) : BigInt(t);
}

/** True when `s` is a number written as a string (hex or decimal, optionally negative). */
export function isNumericString(s: string): boolean {
  return SIGNED.test(s);
}

const unsignedInput = z.union([
  z.int().nonnegative(),
  z.string().regex(NUMERIC, { message: 'expected a number: hex ("0x1000") or decimal' }),
]);
const signedInput = z.union([
  z.int(),
  z.string().regex(SIGNED, { message: 'expected a number: hex ("0x1000") or decimal' }),
]);

function toBig(v: number | string): bigint {
  return typeof v === 'number' ? BigInt(v) : parseNumeric(v);
}

/** An unsigned integer of at most `bits` bits (≤ 53), as a number. */
export function uint(bits: number) {
  const max = 2n ** BigInt(bits) - 1n;
  return unsignedInput.transform((v, ctx) => {
    const b = toBig(v);
    if (b > max) {
      ctx.addIssue({ code: 'custom', message: `expected at most ${bits} bits (≤ 0x${max.toString(16)})` });
      return z.NEVER;
    }
    return Number(b);
  });
}

/** An address or size (below 2^53, the model's address range), as a number. */
export const addr = uint(53);
export const u8 = uint(8);
export const u16 = uint(16);
export const u32 = uint(32);

/** A u64 (uAPI fields, raw descriptor words), exact, as a bigint. */
export const u64 = unsignedInput.transform((v, ctx) => {
  const b = toBig(v);
  if (b >= 2n ** 64n) {
    ctx.addIssue({ code: 'custom', message: 'expected a 64-bit value (≤ 0xffff_ffff_ffff_ffff)' });
    return z.NEVER;
  }
  return b;
});

/** A signed integer that fits a number (fds, ioctl return values, errno numbers). */
export const int = signedInput.transform((v, ctx) => {
  const b = toBig(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < -BigInt(Number.MAX_SAFE_INTEGER)) {
    ctx.addIssue({ code: 'custom', message: 'expected an integer within ±2^53' });
    return z.NEVER;
  }
  return Number(b);
});

/** Any integer value, exact (for expectations compared against model values): a bigint. */
export const anyInt = signedInput.transform((v) => toBig(v));

/**
 * Bytes: a hex string ("de ad be ef", "deadbeef", spaces and underscores ignored) or a list of
 * byte values.
 */
export const bytes = z
  .union([
    z.string().regex(/^([0-9a-fA-F]{2}[\s_]*)*$/, { message: 'expected hex bytes, e.g. "de ad be ef"' }),
    z.array(z.int().min(0).max(255)),
  ])
  .transform((v) => {
    if (Array.isArray(v)) return Uint8Array.from(v);
    const t = v.replace(/[\s_]/g, '');
    const out = new Uint8Array(t.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(t.slice(2 * i, 2 * i + 2), 16);
    return out;
  });

/**
 * YAML integers arrive as bigints (the loader parses with intAsBigInt so nothing is rounded);
 * this returns a copy where each is a number when it is safe and the exact hex string otherwise.
 */
export function normalizeYamlInts(v: unknown): unknown {
  if (typeof v === 'bigint') {
    const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER);
    if (safe) return Number(v);
    return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
  }
  if (Array.isArray(v)) return v.map(normalizeYamlInts);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalizeYamlInts(x);
    return o;
  }
  return v;
}

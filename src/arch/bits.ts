/**
 * Bit manipulation for 64-bit hardware values held as JavaScript numbers and 32-bit words.
 *
 * vsva never uses BigInt on a hot path (see ../shared/reference/ts-ecosystem.md §2): a 64-bit
 * descriptor is two u32 words (lo = bits [31:0], hi = bits [63:32]) and an address is a `number`,
 * exact below 2^53, which covers 52-bit physical addresses and 48/52-bit IOVAs. This module is the
 * one place that does the splitting, joining and field extraction; everything else calls it.
 * BigInt appears only in the edge helpers at the bottom (parsing, printing, tests).
 */

export const TWO_POW_32 = 0x1_0000_0000;

/** Bits [start+len-1:start] of a 32-bit word, as an unsigned number. `len` in 1..32. */
export function extract32(word: number, start: number, len: number): number {
  return len === 32 ? word >>> 0 : (word >>> start) & (((1 << len) - 1) >>> 0);
}

/** `word` with bits [start+len-1:start] replaced by `value` (truncated to `len` bits). */
export function deposit32(word: number, start: number, len: number, value: number): number {
  if (len === 32) return value >>> 0;
  const mask = (((1 << len) - 1) << start) >>> 0;
  return ((word & ~mask) | ((value << start) & mask)) >>> 0;
}

/** Mask with bits [hi:lo] of a 32-bit word set (0 <= lo <= hi <= 31). */
export function mask32(hi: number, lo: number): number {
  const width = hi - lo + 1;
  return width === 32 ? 0xffff_ffff : (((1 << width) - 1) << lo) >>> 0;
}

/** Upper 32 bits of a non-negative integer below 2^64 held in a number (exact below 2^53). */
export function hi32(n: number): number {
  return Math.floor(n / TWO_POW_32) >>> 0;
}

/** Lower 32 bits of a non-negative integer held in a number. */
export function lo32(n: number): number {
  return n >>> 0;
}

/** hi:lo as a number. Exact when hi < 2^21 (value < 2^53). */
export function join64(hi: number, lo: number): number {
  return (hi >>> 0) * TWO_POW_32 + (lo >>> 0);
}

/** True when hi:lo fits a number exactly. */
export function fitsNumber(hi: number): boolean {
  return hi >>> 0 < 0x20_0000;
}

/** Writes [lo, hi] of `n` into out[at], out[at+1]. */
export function split64(n: number, out: Uint32Array | number[], at = 0): void {
  out[at] = n >>> 0;
  out[at + 1] = Math.floor(n / TWO_POW_32) >>> 0;
}

/** Is `n` an integer in [0, 2^bits)? `bits` up to 53. */
export function isUint(n: number, bits: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 2 ** bits;
}

/** Is `n` a multiple of 2^log2 (n a non-negative integer < 2^53)? */
export function isAligned(n: number, log2: number): boolean {
  if (log2 <= 0) return true;
  if (log2 < 32) return ((n >>> 0) & ((2 ** log2 - 1) >>> 0)) === 0;
  return n % 2 ** log2 === 0;
}

/** n rounded down to a multiple of 2^log2. */
export function alignDown(n: number, log2: number): number {
  if (log2 <= 0) return n;
  if (log2 < 32) return n - ((n >>> 0) & ((2 ** log2 - 1) >>> 0));
  return n - (n % 2 ** log2);
}

/** Bits [hi:lo] of a number < 2^53, kept in place (not shifted down). */
export function bitsInPlace(n: number, hi: number, lo: number): number {
  const h = hi32(n);
  const l = lo32(n);
  const hm = hi >= 32 ? mask32(Math.min(hi, 63) - 32, Math.max(lo, 32) - 32) : 0;
  const lm = lo < 32 ? mask32(Math.min(hi, 31), lo) : 0;
  return join64(h & hm, l & lm);
}

/**
 * Bits [lo+width-1:lo] of the 64-bit value hi:lo, shifted down. `width` up to 53 (result is a
 * number); fields wider than 32 bits come back exact.
 */
export function extract64(hi: number, lo: number, start: number, width: number): number {
  if (start >= 32) return extract32(hi, start - 32, Math.min(width, 64 - start));
  const lowBits = Math.min(width, 32 - start);
  const low = extract32(lo, start, lowBits);
  if (lowBits === width) return low;
  const high = extract32(hi, 0, width - lowBits);
  return high * 2 ** lowBits + low;
}

/** Writes `value` (a number < 2^53) into bits [start+width-1:start] of the dword at words[at..at+1]. */
export function deposit64(
  words: Uint32Array | number[],
  at: number,
  start: number,
  width: number,
  value: number,
): void {
  const lo = words[at] ?? 0;
  const hi = words[at + 1] ?? 0;
  if (start >= 32) {
    words[at + 1] = deposit32(hi, start - 32, width, value);
    return;
  }
  const lowBits = Math.min(width, 32 - start);
  words[at] = deposit32(lo, start, lowBits, value >>> 0);
  if (lowBits < width) {
    const upper = Math.floor(value / 2 ** lowBits);
    words[at + 1] = deposit32(hi, 0, width - lowBits, upper >>> 0);
  }
}

/** Is bit `n` (0..63) of hi:lo set? */
export function bit64(hi: number, lo: number, n: number): boolean {
  return n >= 32 ? ((hi >>> (n - 32)) & 1) === 1 : ((lo >>> n) & 1) === 1;
}

/** Integer log2 of a power of two below 2^53, or -1 if `n` is not a power of two. */
export function log2Exact(n: number): number {
  if (!Number.isInteger(n) || n <= 0) return -1;
  const l = Math.round(Math.log2(n));
  return 2 ** l === n ? l : -1;
}

// ---- Edges only: BigInt helpers for parsing, printing and tests. Never on a hot path. ----

/** The 64-bit value hi:lo as a BigInt. */
export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** [lo, hi] words of a BigInt (taken modulo 2^64). */
export function fromBigInt(v: bigint): [lo: number, hi: number] {
  const m = BigInt.asUintN(64, v);
  return [Number(m & 0xffff_ffffn), Number(m >> 32n)];
}

/** `0x` + lower-case hex of hi:lo, zero-padded to `digits`. */
export function hex64(hi: number, lo: number, digits = 16): string {
  return `0x${toBigInt(hi, lo).toString(16).padStart(digits, '0')}`;
}

/** `0x` + hex of a non-negative integer (a number, or a bigint for full 64-bit values). */
export function hex(n: number | bigint, digits = 0): string {
  return `0x${n.toString(16).padStart(digits, '0')}`;
}

/** The little-endian unsigned value of `len` bytes of `b` (at most 8; callers keep it below 2^53). */
export function leValue(b: Uint8Array, len = b.length): number {
  let v = 0;
  for (let i = len - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
}

/** `value` (below 2^53) as `len` little-endian bytes. */
export function leBytes(value: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = value;
  for (let i = 0; i < len; i++) {
    b[i] = x % 256;
    x = Math.floor(x / 256);
  }
  return b;
}

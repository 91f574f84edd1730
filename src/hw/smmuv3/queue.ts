/**
 * Circular-queue index arithmetic shared by the command and event queues (IHI 0070 §3.5.1):
 * a PROD/CONS value holds the index in bits [QS-1:0] and a wrap flag in bit QS, where QS is the
 * queue's log2 size. Empty: indexes and wraps equal. Full: indexes equal, wraps differ.
 */

/** Mask of the index and wrap bits for a queue of 2^log2 entries. */
export function qMask(log2: number): number {
  return (2 ** (log2 + 1) - 1) >>> 0;
}

export function qIndex(p: number, log2: number): number {
  return p & (2 ** log2 - 1);
}

export function qWrap(p: number, log2: number): number {
  return (p >>> log2) & 1;
}

export function qEmpty(prod: number, cons: number, log2: number): boolean {
  const m = qMask(log2);
  return (prod & m) === (cons & m);
}

export function qFull(prod: number, cons: number, log2: number): boolean {
  return qIndex(prod, log2) === qIndex(cons, log2) && qWrap(prod, log2) !== qWrap(cons, log2);
}

/** The pointer after `p`, wrapping the index and toggling the wrap flag. */
export function qNext(p: number, log2: number): number {
  return ((p & qMask(log2)) + 1) & qMask(log2);
}

/** Number of entries between cons and prod. */
export function qCount(prod: number, cons: number, log2: number): number {
  const size = 2 ** log2;
  const d = (prod & qMask(log2)) - (cons & qMask(log2));
  return d < 0 ? d + 2 * size : d;
}

/**
 * Consistent states (§3.5.1): empty, full, or prod ahead of cons by fewer than `size` entries.
 * An index pair with prod "behind" cons is inconsistent; the SMMU stops consuming.
 */
export function qConsistent(prod: number, cons: number, log2: number): boolean {
  return qCount(prod, cons, log2) <= 2 ** log2;
}

/**
 * The model's one source of randomness: a small seeded PRNG (xorshift32), so the same seed always
 * gives the same sequence and the same trace. Nothing in vsva uses Math.random. It sits in the
 * bottom layer so every layer above (workload generators, scenario runners, tests) can share it.
 */

/** A generator of uint32 values from `seed` (0 is replaced by a fixed non-zero seed). */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e37_79b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * Spreads a small seed over all 32 bits (the murmur3 finaliser). xorshift32's first outputs from
 * seeds like 1, 2, 3 are small and correlated; workloads that draw a few values per item seed
 * with `prng(mixSeed(seed))`.
 */
export function mixSeed(seed: number): number {
  let h = seed >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

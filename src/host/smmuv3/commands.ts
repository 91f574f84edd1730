/**
 * The commands the host driver puts on the SMMUv3 command queue (IHI 0070 chapter 4, seed-spec
 * §8.5) — the encoders of src/hw/smmuv3/structures.ts, in the driver's terms — and the planner that
 * turns an address range into TLBI-by-address commands (arm_smmu_tlb_inv_range): range commands
 * (NUM/SCALE/TG/TTL) when IDR3.RIL is set, else one command per granule.
 */

import { alignDown } from '../../arch/bits.ts';
import type { Granule } from '../../arch/vmsa.ts';
import {
  cmdTlbiNhVa as hwTlbiNhVa,
  cmdTlbiS2Ipa as hwTlbiS2Ipa,
  type TlbiRange,
} from '../../hw/smmuv3/structures.ts';

// The command encodings are the ones every driver in vsva writes (the rig's too): one encoder,
// in src/hw/smmuv3/structures.ts, built on the arch field tables.
export {
  cmdCfgiAll,
  cmdCfgiCd,
  cmdCfgiCdAll,
  cmdCfgiSte,
  cmdCfgiSteRange,
  cmdSync,
  cmdTlbiEl2All,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNsnhAll,
  cmdTlbiS12Vmall,
} from '../../hw/smmuv3/structures.ts';

// ---------------------------------------------------------------- by-address invalidation

/** One by-address TLBI: the address and, for range commands, NUM/SCALE/TTL/TG (TG 0: no range). */
export interface TlbiOp {
  readonly addr: number;
  readonly num: number;
  readonly scale: number;
  readonly ttl: number;
  /** The translation granule (log2) of a range command, 0 for a plain one. */
  readonly tg: Granule | 0;
}

function rangeOf(leaf: boolean, o: TlbiOp): TlbiRange {
  return o.tg === 0 ? { leaf } : { leaf, granule: o.tg, num: o.num, scale: o.scale, ttl: o.ttl };
}

export function cmdTlbiNhVa(vmid: number, asid: number, leaf: boolean, o: TlbiOp): Uint32Array {
  return hwTlbiNhVa(vmid, asid, o.addr, rangeOf(leaf, o));
}

export function cmdTlbiS2Ipa(vmid: number, leaf: boolean, o: TlbiOp): Uint32Array {
  return hwTlbiS2Ipa(vmid, o.addr, rangeOf(leaf, o));
}

/** The largest NUM + 1 of a range command (NUM is 5 bits) and the largest SCALE (5 bits, no LPA2). */
const RANGE_NUM_MAX = 32;
const RANGE_SCALE_MAX = 31;

/**
 * Decision: plain (non-range) invalidations beyond this many commands are replaced by one
 * invalidation of the whole ASID or VMID (over-invalidation is always permitted), like later
 * Linux's CMDQ_MAX_TLBI_OPS (1 << (PAGE_SHIFT - 3) = 512).
 */
export const MAX_TLBI_OPS = 512;

/**
 * The TTL hint (the level of the leaf entries to invalidate) for a leaf of 2^leafLog2 bytes in a
 * table of granule `tg`, or 0 when the size is no leaf size of that granule.
 */
export function ttlFor(tg: Granule, leafLog2: number): number {
  const stride = tg - 3;
  const d = leafLog2 - tg;
  if (d < 0 || d % stride !== 0) return 0;
  const level = 3 - d / stride;
  // Level 0 holds no leaves; 16K level 1 is reserved without LPA2 (treated as "any level").
  if (level < 1 || (tg === 14 && level === 1)) return 0;
  return level;
}

export interface TlbiRangeRequest {
  readonly start: number;
  /** Bytes; 0 plans nothing. */
  readonly size: number;
  /** log2 of the step of plain commands (the invalidation granule). */
  readonly stepLog2: number;
  /** Translation granule of range commands, and the TTL hint (0 = none). */
  readonly tg: Granule;
  readonly ttl: number;
  /** IDR3.RIL. */
  readonly ril: boolean;
}

/**
 * Plans the by-address commands for [start, start + size): 'all' when the caller should
 * invalidate the whole context instead (too many plain commands, or addresses beyond 2^53).
 *
 * Range form: the range in TG pages is covered from its low end, each command taking the lowest
 * set bit of the remaining page count as SCALE and the next five bits as NUM. A single-page
 * command with no TTL hint (NUM = SCALE = TTL = 0 with TG set) is reserved, so such a range is
 * grown by one page first (as later Linux does; over-invalidation is harmless).
 */
export function planTlbiRange(r: TlbiRangeRequest): TlbiOp[] | 'all' {
  if (r.size <= 0) return [];
  const end = r.start + r.size;
  if (!Number.isSafeInteger(end) || end > 2 ** 53) return 'all';
  const ops: TlbiOp[] = [];
  if (!r.ril) {
    const step = 2 ** r.stepLog2;
    const first = alignDown(r.start, r.stepLog2);
    if (Math.ceil((end - first) / step) > MAX_TLBI_OPS) return 'all';
    for (let a = first; a < end; a += step) ops.push({ addr: a, num: 0, scale: 0, ttl: 0, tg: 0 });
    return ops;
  }
  const page = 2 ** r.tg;
  const first = alignDown(r.start, r.tg);
  let pages = Math.ceil((end - first) / page);
  if (r.ttl === 0 && pages % RANGE_NUM_MAX === 1) pages++;
  let addr = first;
  while (pages > 0) {
    const scale = Math.min(lowestSetBit(pages), RANGE_SCALE_MAX);
    const q = Math.floor(pages / 2 ** scale);
    const num = q % RANGE_NUM_MAX === 0 ? RANGE_NUM_MAX : q % RANGE_NUM_MAX;
    ops.push({ addr, num: num - 1, scale, ttl: r.ttl, tg: r.tg });
    const covered = num * 2 ** scale;
    addr += covered * page;
    pages -= covered;
  }
  return ops;
}

/** Index of the lowest set bit of a positive integer below 2^53. */
function lowestSetBit(n: number): number {
  let i = 0;
  while (Math.floor(n / 2 ** i) % 2 === 0) i++;
  return i;
}

/**
 * The commands the host driver puts on the SMMUv3 command queue (IHI 0070 chapter 4, seed-spec
 * §8.5), built from the field tables of src/arch/smmuv3/commands.ts the way Linux's
 * arm_smmu_cmdq_build_cmd fills a command from a `struct arm_smmu_cmdq_ent`, and the planner that
 * turns an address range into TLBI-by-address commands (arm_smmu_tlb_inv_range): range commands
 * (NUM/SCALE/TG/TTL) when IDR3.RIL is set, else one command per granule.
 */

import { alignDown, hi32, lo32 } from '../../arch/bits.ts';
import { setField } from '../../arch/fields.ts';
import {
  CMD_0_ASID,
  CMD_0_CS,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_0_SID,
  CMD_0_SSID,
  CMD_0_VMID,
  CMD_1_LEAF,
  CMD_1_RANGE,
  CMD_1_TG,
  CMD_1_TTL,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_SYNC,
  CMD_SYNC_CS_NONE,
  CMD_TLBI_EL2_ALL,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NSNH_ALL,
  CMD_TLBI_S2_IPA,
  CMD_TLBI_S12_VMALL,
} from '../../arch/smmuv3/commands.ts';
import type { Granule } from '../../arch/vmsa.ts';

function cmd(op: number): Uint32Array {
  const w = new Uint32Array(4);
  setField(w, CMD_0_OP, op);
  return w;
}

export function cmdCfgiSte(sid: number, leaf = true): Uint32Array {
  const w = cmd(CMD_CFGI_STE);
  setField(w, CMD_0_SID, sid);
  setField(w, CMD_1_LEAF, leaf ? 1 : 0);
  return w;
}

/** CFGI_STE_RANGE over the 2^(range+1) StreamIDs around `sid`. */
export function cmdCfgiSteRange(sid: number, range: number): Uint32Array {
  const w = cmd(CMD_CFGI_STE_RANGE);
  setField(w, CMD_0_SID, sid);
  setField(w, CMD_1_RANGE, range);
  return w;
}

/** CFGI_ALL: CFGI_STE_RANGE with Range = 31. */
export function cmdCfgiAll(): Uint32Array {
  return cmdCfgiSteRange(0, 31);
}

export function cmdCfgiCd(sid: number, ssid: number, leaf: boolean): Uint32Array {
  const w = cmd(CMD_CFGI_CD);
  setField(w, CMD_0_SID, sid);
  setField(w, CMD_0_SSID, ssid);
  setField(w, CMD_1_LEAF, leaf ? 1 : 0);
  return w;
}

export function cmdCfgiCdAll(sid: number): Uint32Array {
  const w = cmd(CMD_CFGI_CD_ALL);
  setField(w, CMD_0_SID, sid);
  return w;
}

export function cmdTlbiNhAll(vmid: number): Uint32Array {
  const w = cmd(CMD_TLBI_NH_ALL);
  setField(w, CMD_0_VMID, vmid);
  return w;
}

export function cmdTlbiNhAsid(vmid: number, asid: number): Uint32Array {
  const w = cmd(CMD_TLBI_NH_ASID);
  setField(w, CMD_0_VMID, vmid);
  setField(w, CMD_0_ASID, asid);
  return w;
}

export function cmdTlbiS12Vmall(vmid: number): Uint32Array {
  const w = cmd(CMD_TLBI_S12_VMALL);
  setField(w, CMD_0_VMID, vmid);
  return w;
}

export function cmdTlbiNsnhAll(): Uint32Array {
  return cmd(CMD_TLBI_NSNH_ALL);
}

export function cmdTlbiEl2All(): Uint32Array {
  return cmd(CMD_TLBI_EL2_ALL);
}

/** CMD_SYNC with CS = SIG_NONE: the driver polls CONS for completion. */
export function cmdSync(): Uint32Array {
  const w = cmd(CMD_SYNC);
  setField(w, CMD_0_CS, CMD_SYNC_CS_NONE);
  return w;
}

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

function addressCommand(op: number, leaf: boolean, o: TlbiOp, addrMaskHi: number): Uint32Array {
  const w = cmd(op);
  // Address bits [63:12] (VA) or [51:12] (IPA), written as words first (exact for page-aligned
  // values); Leaf, TTL and TG share word 2 and are set after it.
  w[2] = (lo32(o.addr) & 0xffff_f000) >>> 0;
  w[3] = (hi32(o.addr) & addrMaskHi) >>> 0;
  setField(w, CMD_1_LEAF, leaf ? 1 : 0);
  if (o.tg !== 0) {
    setField(w, CMD_1_TG, o.tg === 12 ? 1 : o.tg === 14 ? 2 : 3);
    setField(w, CMD_0_NUM, o.num);
    setField(w, CMD_0_SCALE, o.scale);
    setField(w, CMD_1_TTL, o.ttl);
  }
  return w;
}

export function cmdTlbiNhVa(vmid: number, asid: number, leaf: boolean, o: TlbiOp): Uint32Array {
  const w = addressCommand(CMD_TLBI_NH_VA, leaf, o, 0xffff_ffff);
  setField(w, CMD_0_VMID, vmid);
  setField(w, CMD_0_ASID, asid);
  return w;
}

export function cmdTlbiS2Ipa(vmid: number, leaf: boolean, o: TlbiOp): Uint32Array {
  const w = addressCommand(CMD_TLBI_S2_IPA, leaf, o, 0x000f_ffff);
  setField(w, CMD_0_VMID, vmid);
  return w;
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

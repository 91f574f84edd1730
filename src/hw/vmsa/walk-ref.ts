/**
 * The reference VMSAv8-64 walker: a plain, obviously-correct transcription of the walk rules with
 * BigInt addresses and descriptors, no caches, no split words and no shared scratch state. It is
 * slow on purpose and exists so that property tests can hold the fast walker (walker.ts) to it.
 * It reads the same StageRegime parameters (granule, sizes, base, flags) but recomputes every mask,
 * index and range from them itself.
 *
 * Rules (IHI 0070 §3.4, §7.3.22; Arm ARM D8): input range → per level {abort, invalid, address
 * size} → access flag → permission; nested stage-1 table addresses go through stage 2 as reads.
 */

import {
  CLASS_IN,
  CLASS_TT,
  PERM,
  PERM_S1_ALL,
  PERM_S2_ALL,
  WALK_ACCESS,
  WALK_ADDR_SIZE,
  WALK_EABT,
  WALK_OK,
  WALK_PERMISSION,
  WALK_TRANSLATION,
  type WalkFault,
} from '../../arch/vmsa.ts';
import type { MemoryPort } from '../memory.ts';
import type { StageRegime } from './regime.ts';
import type { S1Context } from './walker.ts';

export interface RefOk {
  readonly fault: typeof WALK_OK;
  readonly pa: bigint;
  readonly ipa: bigint;
  /** log2 of the mapping size. */
  readonly shift: number;
  readonly perms: number;
  readonly nG: boolean;
}

export interface RefFault {
  readonly fault: Exclude<WalkFault, 0>;
  readonly s2: boolean;
  readonly cls: number;
  /** IPA being translated when a stage-2 fault happened. */
  readonly ipa: bigint;
  /** PA of the descriptor whose fetch aborted (WALK_EABT). */
  readonly fetch: bigint;
}

export type RefResult = RefOk | RefFault;

export interface RefOptions {
  readonly qemuOrder?: boolean;
}

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const bits = (v: bigint, hi: number, lo: number): bigint =>
  (v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);

interface StageOut {
  readonly out: bigint;
  readonly shift: number;
  readonly perms: number;
  readonly nG: boolean;
}

type StageResult = { ok: true; v: StageOut } | { ok: false; f: RefFault };

function fail(fault: Exclude<WalkFault, 0>, s2: boolean, cls: number, ipa = 0n, fetch = 0n): StageResult {
  return { ok: false, f: { fault, s2, cls, ipa, fetch } };
}

/** Reads a 64-bit descriptor, or undefined on an external abort. */
function readDescriptor(mem: MemoryPort, pa: bigint): bigint | undefined {
  if (pa >= 1n << 53n) return undefined;
  const words = new Uint32Array(2);
  if (!mem.read64(Number(pa), words)) return undefined;
  return (BigInt(words[1]!) << 32n) | BigInt(words[0]!);
}

function blockIsLegal(granule: number, level: number, oaBits: number): boolean {
  if (granule === 12) return level === 1 || level === 2;
  if (granule === 14) return level === 2;
  return level === 2 || (level === 1 && oaBits > 48);
}

/** Stage-1 permissions from AP[2:1], XN bits and the regime (Arm ARM D8.4). */
function stage1Perms(ap: number, pxn: boolean, uxn: boolean, r: StageRegime): number {
  const readOnly = (ap & 2) !== 0;
  const el0 = (ap & 1) !== 0;
  let p = 0;
  if (!r.twoPrivilege) {
    p = PERM.S1_PR | PERM.S1_UR;
    if (!readOnly) p |= PERM.S1_PW | PERM.S1_UW;
    if (!uxn) p |= PERM.S1_PX | PERM.S1_UX;
  } else {
    p = PERM.S1_PR;
    if (!readOnly) p |= PERM.S1_PW;
    if (el0) p |= PERM.S1_UR;
    if (el0 && !readOnly) p |= PERM.S1_UW;
    if (!pxn && !(el0 && !readOnly)) p |= PERM.S1_PX;
    if (!uxn) p |= PERM.S1_UX;
  }
  if (r.wxn) {
    if (p & PERM.S1_PW) p &= ~PERM.S1_PX;
    if (p & PERM.S1_UW) p &= ~PERM.S1_UX;
  }
  if (r.pan && el0) p &= ~(PERM.S1_PR | PERM.S1_PW);
  return p;
}

function walkOneStage(
  mem: MemoryPort,
  r: StageRegime,
  input: bigint,
  need: number,
  nest: StageRegime | null,
  opts: RefOptions,
): StageResult {
  const s2 = r.stage === 2;
  const g = r.granule;
  const stride = g - 3;
  const oaLimit = 1n << BigInt(r.oaBits);
  if (s2 && input >> BigInt(r.inputBits) !== 0n) return fail(WALK_TRANSLATION, true, CLASS_IN);
  let table = (BigInt(r.ttbHi) << 32n) | BigInt(r.ttbLo);
  let level = r.startLevel;
  let indexBits = r.startBits;
  let apTable = 0;
  let xnTable = false;
  let pxnTable = false;
  for (;;) {
    const levelShift = g + stride * (3 - level);
    const index = bits(input, levelShift + indexBits - 1, levelShift);
    const tableBase = table & ~((1n << BigInt(indexBits + 3)) - 1n);
    const descIpa = tableBase + index * 8n;
    let descPa = descIpa;
    if (nest !== null) {
      const t = walkOneStage(mem, nest, descIpa, PERM.S2_R, null, opts);
      if (!t.ok) return { ok: false, f: { ...t.f, s2: true, cls: CLASS_TT, ipa: descIpa } };
      descPa = t.v.out;
    }
    const desc = readDescriptor(mem, descPa);
    if (desc === undefined) return fail(WALK_EABT, s2, CLASS_TT, 0n, descPa);
    if (!bit(desc, 0)) return fail(WALK_TRANSLATION, s2, CLASS_IN);
    const oaHigh = r.oa52 ? bits(desc, 15, 12) << 48n : 0n;
    if (level < 3 && bit(desc, 1)) {
      const next = (desc & 0x0000_ffff_ffff_f000n & ~((1n << BigInt(g)) - 1n)) | oaHigh;
      if (next >= oaLimit) return fail(WALK_ADDR_SIZE, s2, CLASS_IN);
      if (!s2 && !r.had) {
        apTable |= Number(bits(desc, 62, 61));
        if (bit(desc, 60)) xnTable = true;
        if (bit(desc, 59)) pxnTable = true;
      }
      table = next;
      level += 1;
      indexBits = stride;
      continue;
    }
    const isLeaf = level === 3 ? bit(desc, 1) : blockIsLegal(g, level, r.oaBits);
    if (!isLeaf) return fail(WALK_TRANSLATION, s2, CLASS_IN);
    const blockMask = (1n << BigInt(levelShift)) - 1n;
    const oa = ((desc & 0x0000_ffff_ffff_f000n) | oaHigh) & ~blockMask;
    const out = oa | (input & blockMask);
    let perms: number;
    if (!s2) {
      let ap = Number(bits(desc, 7, 6));
      if (apTable & 1) ap &= ~1;
      if (apTable & 2) ap |= 2;
      perms = stage1Perms(ap, bit(desc, 53) || pxnTable, bit(desc, 54) || xnTable, r);
    } else {
      const s2ap = Number(bits(desc, 7, 6));
      // XN[1:0] = bits [54:53]; without XNX only XN[1] is used.
      const xn = r.xnx ? Number(bits(desc, 54, 53)) : bit(desc, 54) ? 2 : 0;
      const exec = [PERM.S2_PX | PERM.S2_UX, PERM.S2_UX, 0, PERM.S2_PX][xn]!;
      perms = (s2ap & 1 ? PERM.S2_R : 0) | (s2ap & 2 ? PERM.S2_W : 0) | exec;
    }
    const sizeFault = out >= oaLimit;
    if (!opts.qemuOrder && sizeFault) return fail(WALK_ADDR_SIZE, s2, CLASS_IN);
    if (!bit(desc, 10) && !r.affd) return fail(WALK_ACCESS, s2, CLASS_IN);
    if ((perms & need) !== need) return fail(WALK_PERMISSION, s2, CLASS_IN);
    if (opts.qemuOrder && sizeFault) return fail(WALK_ADDR_SIZE, s2, CLASS_IN);
    return { ok: true, v: { out, shift: levelShift, perms, nG: bit(desc, 11) } };
  }
}

/** Picks the TTBx half for a VA and checks its range; null = translation fault. */
function refSelect(s1: S1Context, va: bigint): StageRegime | null {
  const upper = s1.twoRanges && bit(va, 55);
  const r = upper ? s1.tt1 : s1.tt0;
  if (r === null) return null;
  const top = (upper ? s1.tbi1 : s1.tbi0) ? 55 : 63;
  const field = bits(va, top, r.inputBits);
  const width = BigInt(top - r.inputBits + 1);
  const expected = upper ? (1n << width) - 1n : 0n;
  return field === expected ? r : null;
}

/** Full reference translation: stage 1 (or bypass), then stage 2 (or bypass). */
export function refTranslate(
  mem: MemoryPort,
  s1: S1Context | null,
  s2: StageRegime | null,
  input: bigint,
  s1Need: number,
  s2Need: number,
  opts: RefOptions = {},
): RefResult {
  let ipa = input;
  let shift = 64;
  let perms = PERM_S1_ALL;
  let nG = false;
  if (s1 !== null) {
    const r = refSelect(s1, input);
    if (r === null) return { fault: WALK_TRANSLATION, s2: false, cls: CLASS_IN, ipa: 0n, fetch: 0n };
    const res = walkOneStage(mem, r, input, s1Need, s2, opts);
    if (!res.ok) return res.f;
    ipa = res.v.out;
    shift = res.v.shift;
    perms = res.v.perms;
    nG = res.v.nG;
  }
  if (s2 === null) return { fault: WALK_OK, pa: ipa, ipa, shift, perms: perms | PERM_S2_ALL, nG };
  const res = walkOneStage(mem, s2, ipa, s2Need, null, opts);
  if (!res.ok) return { ...res.f, s2: true, cls: CLASS_IN, ipa };
  return {
    fault: WALK_OK,
    pa: res.v.out,
    ipa,
    shift: Math.min(shift, res.v.shift),
    perms: perms | res.v.perms,
    nG,
  };
}

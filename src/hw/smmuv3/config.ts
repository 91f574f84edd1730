/**
 * Decoding and validation of the SMMUv3 configuration structures: the STE (IHI 0070 §5.2, the
 * SteIllegal() conditions of §5.2.2) and the CD (§5.4, CdIllegal() of §5.4.2). A structure that
 * fails a check is ILLEGAL, which the SMMU reports as C_BAD_STE / C_BAD_CD; the decoders return
 * the reason as text so traces and reports can say *why*, although the event record cannot.
 *
 * Decisions where the architecture allows a choice are recorded inline. The decoded objects are
 * what the configuration cache holds; translation reads only them, never the raw words.
 */

import { deposit32 } from '../../arch/bits.ts';
import { getField } from '../../arch/fields.ts';
import {
  CD_0_A,
  CD_0_AA64,
  CD_0_AFFD,
  CD_0_ASID,
  CD_0_ENDI,
  CD_0_EPD0,
  CD_0_EPD1,
  CD_0_HA,
  CD_0_HD,
  CD_0_IPS,
  CD_0_PAN,
  CD_0_R,
  CD_0_S,
  CD_0_T0SZ,
  CD_0_T1SZ,
  CD_0_TBI0,
  CD_0_TBI1,
  CD_0_TG0,
  CD_0_TG1,
  CD_0_V,
  CD_0_WXN,
  CD_1_HAD0,
  CD_1_TTB0,
  CD_2_HAD1,
  CD_2_TTB1,
  CD_RES0_MASKS,
  tg0Granule,
  tg1Granule,
} from '../../arch/smmuv3/cd.ts';
import {
  S1DSS_BYPASS,
  S1DSS_SSID0,
  STE_0_CFG,
  STE_0_S1CDMAX,
  STE_0_S1CTXPTR,
  STE_0_S1FMT,
  STE_0_V,
  STE_1_INSTCFG,
  STE_1_PRIVCFG,
  STE_1_S1DSS,
  STE_1_S1STALLD,
  STE_1_STRW,
  STE_2_S2AA64,
  STE_2_S2AFFD,
  STE_2_S2ENDI,
  STE_2_S2HA,
  STE_2_S2HD,
  STE_2_S2PS,
  STE_2_S2R,
  STE_2_S2S,
  STE_2_S2SL0,
  STE_2_S2T0SZ,
  STE_2_S2TG,
  STE_2_S2VMID,
  STE_3_S2TTB,
  STE_RES0_MASKS,
} from '../../arch/smmuv3/ste.ts';
import { type Granule, psBits } from '../../arch/vmsa.ts';
import { type StageRegime, s1Regime, s2Regime, s2T0szRange } from '../vmsa/regime.ts';
import type { S1Context } from '../vmsa/walker.ts';
import { iasBits, type SmmuFeatures } from './features.ts';

/** StreamWorlds vsva models (Non-secure only, §3.3.3). */
export const WORLD_NSEL1 = 0;
export const WORLD_EL2 = 1;
export const WORLD_EL2_E2H = 2;
export const WORLD_NAMES: readonly string[] = ['NS-EL1', 'NS-EL2', 'NS-EL2-E2H'];

export interface SteConfig {
  /** The 16 words as fetched. */
  readonly words: Uint32Array;
  /** STE.Config. */
  readonly config: number;
  /** Config 0b0xx: every transaction aborts, no event. */
  readonly abort: boolean;
  /** Stage 1 / stage 2 translate. Both false with abort false = full bypass (0b100). */
  readonly s1: boolean;
  readonly s2: boolean;
  readonly s1ContextPtr: number;
  readonly s1Fmt: number;
  readonly s1CdMax: number;
  readonly s1Dss: number;
  readonly world: number;
  /** TLB VMID tag: S2VMID when stage 2 is implemented (also for stage-1-only NS-EL1 streams), else 0. */
  readonly vmid: number;
  readonly s2Regime: StageRegime | null;
  /** STE.S2R: stage-2 faults are recorded. */
  readonly s2Record: boolean;
  readonly privCfg: number;
  readonly instCfg: number;
}

export interface CdConfig {
  readonly words: Uint32Array;
  readonly asid: number;
  readonly s1: S1Context;
  /** CD.R: stage-1 faults are recorded. */
  readonly record: boolean;
  /** CD.A: a stage-1 fault aborts (true) or completes as RAZ/WI (false). */
  readonly abortOnFault: boolean;
  /** Effective stage-1 output size (min(CD.IPS, OAS)). */
  readonly ipsBits: number;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

const bad = <T>(reason: string): Decoded<T> => ({ ok: false, reason });

/** First word index (0-based, within `masks`) that has RES0 bits set, or -1. */
function reservedWord(words: ArrayLike<number>, masks: readonly number[]): number {
  for (let i = 0; i < masks.length; i++) if (((words[i] ?? 0) & masks[i]!) >>> 0 !== 0) return i;
  return -1;
}

/** Output size of a PS/IPS encoding, capped by OAS; reserved 0b111 behaves as 52 bits (v3.1-v3.3). */
function cappedPs(enc: number, oasBits: number): number {
  const bits = enc === 7 ? 52 : psBits(enc);
  return Math.min(bits, oasBits);
}

/** S2TG → granule, or -1 when reserved or unsupported. */
function s2Granule(tg: number, f: SmmuFeatures): number {
  const g = tg === 0 ? 12 : tg === 1 ? 16 : tg === 2 ? 14 : -1;
  return g > 0 && f.granules.includes(g as Granule) ? g : -1;
}

/**
 * Decodes an STE. `e2h` is SMMU_CR2.E2H (selects NS-EL2-E2H for STRW = 0b10).
 * Returns the reason for C_BAD_STE when the STE is invalid or ILLEGAL.
 */
export function decodeSte(words: Uint32Array, f: SmmuFeatures, e2h: boolean): Decoded<SteConfig> {
  const w = Uint32Array.from(words.subarray(0, 16));
  if (getField(w, STE_0_V) === 0) return bad('STE.V is 0');
  const config = getField(w, STE_0_CFG);
  const base = {
    words: w,
    config,
    s1ContextPtr: 0,
    s1Fmt: 0,
    s1CdMax: 0,
    s1Dss: 0,
    world: WORLD_NSEL1,
    vmid: 0,
    s2Regime: null,
    s2Record: true,
    privCfg: getField(w, STE_1_PRIVCFG),
    instCfg: getField(w, STE_1_INSTCFG),
  };
  // Config 0b0xx aborts silently and is never ILLEGAL: no other field is checked (§5.2.2).
  if ((config & 0b100) === 0) return { ok: true, value: { ...base, abort: true, s1: false, s2: false } };
  if (f.reservedBits === 'illegal') {
    const i = reservedWord(w, STE_RES0_MASKS);
    if (i >= 0) return bad(`STE dword ${i >> 1} has RES0 bits set (word ${i}: 0x${w[i]!.toString(16)})`);
  }
  const s1 = (config & 1) !== 0;
  const s2 = (config & 2) !== 0;
  if (s1 && !f.stage1) return bad('STE.Config enables stage 1, which is not implemented (IDR0.S1P = 0)');
  if (s2 && !f.stage2) return bad('STE.Config enables stage 2, which is not implemented (IDR0.S2P = 0)');
  const world = steWorld(w, f, config, e2h);
  if (typeof world === 'string') return bad(world);
  const vmid = f.stage2 ? getField(w, STE_2_S2VMID) : 0;
  if (!f.vmid16 && f.stage2 && world === WORLD_NSEL1 && vmid > 0xff) {
    return bad(`STE.S2VMID = 0x${vmid.toString(16)} needs VMID16`);
  }
  const stage1 = s1 ? steStage1(w, f, s2) : ({ ok: true, value: {} } as const);
  if (!stage1.ok) return stage1;
  let s2Regime: StageRegime | null = null;
  if (s2) {
    const r = steStage2(w, f);
    if (!r.ok) return r;
    s2Regime = r.value;
  }
  return {
    ok: true,
    value: {
      ...base,
      ...stage1.value,
      abort: false,
      s1,
      s2,
      world,
      vmid: world === WORLD_NSEL1 ? vmid : 0,
      s2Regime,
      s2Record: getField(w, STE_2_S2R) === 1,
    },
  };
}

/** StreamWorld from STRW, used for stage-1-only streams when Hyp is implemented (§5.2 STRW). */
function steWorld(w: Uint32Array, f: SmmuFeatures, config: number, e2h: boolean): number | string {
  const strw = getField(w, STE_1_STRW);
  const used = f.stage1 && f.hyp && config === 0b101;
  if (!used) {
    if (!f.hyp && strw !== 0 && f.reservedBits === 'illegal') return 'STE.STRW is RES0 without IDR0.Hyp';
    return WORLD_NSEL1;
  }
  if ((strw & 1) !== 0) return `STE.STRW = 0b${strw.toString(2).padStart(2, '0')} is reserved`;
  if (strw === 0b10) return e2h ? WORLD_EL2_E2H : WORLD_EL2;
  return WORLD_NSEL1;
}

function steStage1(
  w: Uint32Array,
  f: SmmuFeatures,
  s2: boolean,
): Decoded<{ s1ContextPtr: number; s1Fmt: number; s1CdMax: number; s1Dss: number }> {
  if (getField(w, STE_1_S1STALLD) === 1) return bad('STE.S1STALLD = 1 with STALL_MODEL = 0b01 (no stalls)');
  const s1CdMax = f.ssidBits === 0 ? 0 : getField(w, STE_0_S1CDMAX);
  if (s1CdMax > f.ssidBits) return bad(`STE.S1CDMax = ${s1CdMax} exceeds SSIDSIZE = ${f.ssidBits}`);
  const fmt = getField(w, STE_0_S1FMT);
  if (s1CdMax !== 0 && (fmt === 1 || fmt === 2) && !f.twoLevelCdTable) {
    return bad(`STE.S1Fmt = ${fmt} selects a 2-level CD table without IDR0.CD2L`);
  }
  const ptr = getField(w, STE_0_S1CTXPTR);
  // Stage-1-only: a PA beyond OAS makes the STE ILLEGAL (v3.1+, §3.4.3). Nested: the pointer is an
  // IPA; an out-of-range IPA is left to stage 2, which reports a translation fault with CLASS = CD
  // (one of the two permitted behaviours).
  if (!s2 && ptr >= 2 ** f.oasBits) return bad(`STE.S1ContextPtr 0x${ptr.toString(16)} is beyond the OAS`);
  return {
    ok: true,
    value: {
      s1ContextPtr: ptr,
      // S1Fmt 0b11 is reserved and behaves as 0b00 (linear).
      s1Fmt: fmt === 3 ? 0 : fmt,
      s1CdMax,
      // S1DSS 0b11 is reserved and behaves as 0b00 (terminate).
      s1Dss: (() => {
        const d = getField(w, STE_1_S1DSS);
        return d === S1DSS_BYPASS || d === S1DSS_SSID0 ? d : 0;
      })(),
    },
  };
}

function steStage2(w: Uint32Array, f: SmmuFeatures): Decoded<StageRegime> {
  if (getField(w, STE_2_S2S) === 1) return bad('STE.S2S = 1 with STALL_MODEL = 0b01 (no stalls)');
  if (getField(w, STE_2_S2AA64) === 0) return bad('STE.S2AA64 = 0 selects VMSAv8-32, not implemented (TTF)');
  if (getField(w, STE_2_S2ENDI) === 1) return bad('STE.S2ENDI = 1 selects big-endian tables (TTENDIAN = LE)');
  if (getField(w, STE_2_S2HA) === 1 || getField(w, STE_2_S2HD) === 1) {
    return bad('STE.S2HA/S2HD set without HTTU');
  }
  const tg = getField(w, STE_2_S2TG);
  const g = s2Granule(tg, f);
  if (g < 0) return bad(`STE.S2TG = ${tg} is reserved or its granule is not supported`);
  const granule = g as Granule;
  const t0sz = getField(w, STE_2_S2T0SZ);
  const [min, max] = s2T0szRange(granule, iasBits(f), f.smallTables);
  if (t0sz < min || t0sz > max) return bad(`STE.S2T0SZ = ${t0sz} is outside ${min}..${max}`);
  const r = s2Regime({
    granule,
    t0sz,
    sl0: getField(w, STE_2_S2SL0),
    ttb: getField(w, STE_3_S2TTB),
    oaBits: cappedPs(getField(w, STE_2_S2PS), f.oasBits),
    affd: getField(w, STE_2_S2AFFD) === 1,
    paMaxBits: f.oasBits,
    stt: f.smallTables,
    xnx: true,
  });
  return r.ok ? { ok: true, value: r.regime } : bad(`STE stage 2: ${r.reason}`);
}

/** The legal TxSZ range for a CD half (§5.4 T0SZ; VAX = 0, no LPA2). */
function txszRange(g: Granule, f: SmmuFeatures): [min: number, max: number] {
  return [16, f.smallTables ? (g === 16 ? 47 : 48) : 39];
}

/**
 * Decodes a CD reached through `ste`. Returns the reason for C_BAD_CD when the CD is invalid or
 * ILLEGAL.
 */
export function decodeCd(words: Uint32Array, ste: SteConfig, f: SmmuFeatures): Decoded<CdConfig> {
  const w = Uint32Array.from(words.subarray(0, 16));
  if (getField(w, CD_0_V) === 0) return bad('CD.V is 0');
  if (f.reservedBits === 'illegal') {
    const i = reservedWord(w, CD_RES0_MASKS);
    if (i >= 0) return bad(`CD dword ${i >> 1} has RES0 bits set (word ${i}: 0x${w[i]!.toString(16)})`);
  }
  if (getField(w, CD_0_S) === 1) return bad('CD.S = 1 with STALL_MODEL = 0b01 (no stalls)');
  if (getField(w, CD_0_A) === 0 && f.termModel === 1) return bad('CD.A = 0 with TERM_MODEL = 1');
  if (getField(w, CD_0_AA64) === 0) return bad('CD.AA64 = 0 selects VMSAv8-32, not implemented (TTF)');
  if (getField(w, CD_0_HA) === 1 || getField(w, CD_0_HD) === 1) return bad('CD.HA/HD set without HTTU');
  const el2 = ste.world === WORLD_EL2;
  // In an EL2 StreamWorld EPDx are IGNORED (treated as 0) and TTB1 is unreachable.
  const epd0 = !el2 && getField(w, CD_0_EPD0) === 1;
  const epd1 = el2 || getField(w, CD_0_EPD1) === 1;
  if (getField(w, CD_0_ENDI) === 1 && !(epd0 && epd1))
    return bad('CD.ENDI = 1 selects big-endian tables (TTENDIAN = LE)');
  const asid = getField(w, CD_0_ASID);
  if (!f.asid16 && !el2 && asid > 0xff) return bad(`CD.ASID = 0x${asid.toString(16)} needs ASID16`);
  const ipsBits = cappedPs(getField(w, CD_0_IPS), f.oasBits);
  const common = {
    oaBits: ipsBits,
    affd: getField(w, CD_0_AFFD) === 1,
    twoPrivilege: !el2,
    pan: !el2 && getField(w, CD_0_PAN) === 1,
    wxn: getField(w, CD_0_WXN) === 1,
  };
  const half = (n: 0 | 1): Decoded<StageRegime | null> => {
    const disabled = n === 0 ? epd0 : epd1;
    if (disabled) return { ok: true, value: null };
    const tg = getField(w, n === 0 ? CD_0_TG0 : CD_0_TG1);
    const g = n === 0 ? tg0Granule(tg) : tg1Granule(tg);
    if (g < 0 || !f.granules.includes(g as Granule))
      return bad(`CD.TG${n} = ${tg} is reserved or not supported`);
    const granule = g as Granule;
    const txsz = getField(w, n === 0 ? CD_0_T0SZ : CD_0_T1SZ);
    const [min, max] = txszRange(granule, f);
    if (txsz < min || txsz > max) return bad(`CD.T${n}SZ = ${txsz} is outside ${min}..${max}`);
    const r = s1Regime({
      ...common,
      granule,
      txsz,
      ttb: getField(w, n === 0 ? CD_1_TTB0 : CD_2_TTB1),
      had: getField(w, n === 0 ? CD_1_HAD0 : CD_2_HAD1) === 1,
    });
    return r.ok ? { ok: true, value: r.regime } : bad(`CD TTB${n}: ${r.reason}`);
  };
  const tt0 = half(0);
  if (!tt0.ok) return tt0;
  const tt1 = half(1);
  if (!tt1.ok) return tt1;
  return {
    ok: true,
    value: {
      words: w,
      asid: el2 ? 0 : asid,
      s1: {
        tt0: tt0.value,
        tt1: tt1.value,
        tbi0: getField(w, CD_0_TBI0) === 1,
        tbi1: getField(w, CD_0_TBI1) === 1,
        twoRanges: !el2,
      },
      record: getField(w, CD_0_R) === 1,
      abortOnFault: getField(w, CD_0_A) === 1,
      ipsBits,
    },
  };
}

/** A copy of `words` with one bit flipped: used by tests and fuzzers to derive bad structures. */
export function flipBit(words: Uint32Array, bit: number): Uint32Array {
  const out = Uint32Array.from(words);
  const i = bit >>> 5;
  out[i] = deposit32(out[i]!, bit & 31, 1, ((out[i]! >>> (bit & 31)) & 1) ^ 1);
  return out;
}

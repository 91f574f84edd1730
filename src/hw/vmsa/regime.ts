/**
 * Translation regimes: the per-stage parameters a VMSAv8-64 walk needs, validated and precomputed
 * once (when an STE or CD is decoded), so the walk itself only does shifts, masks and reads.
 *
 * A stage-1 regime comes from one half of a CD (TxSZ, TGx, TTBx, IPS); a stage-2 regime from an
 * STE (S2T0SZ, S2SL0, S2TG, S2TTB, S2PS). The legality rules are the SMMU's (IHI 0070 §5.2 S2T0SZ /
 * S2SL0 / S2TTB, §5.4 TxSZ / TGx / TTBx): an invalid combination makes the STE or CD ILLEGAL, so
 * the builders return a reason string instead of a regime. Stage-2 start level and concatenation
 * follow Arm ARM D8.2.2 (up to 16 concatenated tables at the start level).
 */

import { fitsNumber, hi32, lo32, TWO_POW_32 } from '../../arch/bits.ts';
import { effectiveOaBits, type Granule, levelShift, startLevelFor, strideOf } from '../../arch/vmsa.ts';

/** Everything a walk of one stage needs. Immutable once built. */
export interface StageRegime {
  readonly stage: 1 | 2;
  readonly granule: Granule;
  /** Input address size in bits (64 - TxSZ). */
  readonly inputBits: number;
  readonly startLevel: number;
  /** Index bits resolved at the start level (more than the stride when stage-2 tables are concatenated). */
  readonly startBits: number;
  /** Table base, with the bits below the start table's alignment cleared. */
  readonly ttbHi: number;
  readonly ttbLo: number;
  /** Effective output address size in bits. */
  readonly oaBits: number;
  /** 2^(oaBits-32): an output address whose high word reaches this is an address-size fault. */
  readonly oaLimitHi: number;
  /** 64KB granule with 52-bit output: descriptor bits [15:12] hold OA[51:48]. */
  readonly oa52: boolean;
  /** Access flag faults disabled (CD.AFFD / STE.S2AFFD). */
  readonly affd: boolean;
  /** Stage 1: hierarchical attributes in table descriptors ignored (CD.HADx). */
  readonly had: boolean;
  /** Stage 1: two privilege levels (EL1&0, EL2&0) rather than one (EL2). */
  readonly twoPrivilege: boolean;
  /** Stage 1: PAN (privileged data access to an EL0-accessible page faults). */
  readonly pan: boolean;
  /** Stage 1: WXN (writable implies execute-never). */
  readonly wxn: boolean;
  /** Stage 2: XN[1:0] with FEAT_XNX semantics (privileged / unprivileged execute-never). */
  readonly xnx: boolean;
  /** Masks of input bits [63:inputBits] (the walk range check), as hi/lo words. */
  readonly rangeMaskHi: number;
  readonly rangeMaskLo: number;
}

export interface S1RegimeParams {
  readonly granule: Granule;
  readonly txsz: number;
  /** Table base as a number (< 2^53; an out-of-range base is rejected by the caller's range check). */
  readonly ttb: number;
  readonly oaBits: number;
  readonly affd: boolean;
  readonly had: boolean;
  readonly twoPrivilege: boolean;
  readonly pan: boolean;
  readonly wxn: boolean;
}

export interface S2RegimeParams {
  readonly granule: Granule;
  readonly t0sz: number;
  /** The raw 2-bit S2SL0 encoding. */
  readonly sl0: number;
  readonly ttb: number;
  readonly oaBits: number;
  readonly affd: boolean;
  /** Maximum PA size of the implementation (PAMax, from IDR5.OAS): limits the deepest start levels. */
  readonly paMaxBits: number;
  /** IDR3.STT: small translation tables (level-3 starts and TxSZ up to 48). */
  readonly stt: boolean;
  /** FEAT_XNX (IDR3.XNX); default false. */
  readonly xnx?: boolean;
}

export type RegimeResult = { ok: true; regime: StageRegime } | { ok: false; reason: string };

/** Masks of bits [63:n] split over hi/lo words. */
function topMasks(n: number): [hi: number, lo: number] {
  if (n >= 64) return [0, 0];
  if (n >= 32) return [~((2 ** (n - 32) - 1) >>> 0) >>> 0, 0];
  return [0xffff_ffff, ~((2 ** n - 1) >>> 0) >>> 0];
}

function build(
  stage: 1 | 2,
  granule: Granule,
  inputBits: number,
  startLevel: number,
  startBits: number,
  ttb: number,
  oaBits: number,
  opts: { affd: boolean; had: boolean; twoPrivilege: boolean; pan: boolean; wxn: boolean; xnx?: boolean },
): StageRegime {
  const oa52 = granule === 16 && oaBits > 48;
  const alignLog2 = Math.max(startBits + 3, oa52 ? 6 : 3);
  const base = ttb - (ttb % 2 ** alignLog2);
  const [rangeMaskHi, rangeMaskLo] = topMasks(inputBits);
  return {
    stage,
    granule,
    inputBits,
    startLevel,
    startBits,
    ttbHi: hi32(base),
    ttbLo: lo32(base),
    oaBits,
    oaLimitHi: 2 ** (oaBits - 32),
    oa52,
    affd: opts.affd,
    had: opts.had,
    twoPrivilege: opts.twoPrivilege,
    pan: opts.pan,
    wxn: opts.wxn,
    xnx: opts.xnx === true,
    rangeMaskHi,
    rangeMaskLo,
  };
}

/**
 * A stage-1 regime for one TTBx half. TxSZ must already be range-checked by the caller (the legal
 * range depends on SMMU features); this derives the start level and checks the base against the
 * effective output size, which makes the CD ILLEGAL when exceeded (IHI 0070 §3.4, §5.4).
 */
export function s1Regime(p: S1RegimeParams): RegimeResult {
  const inputBits = 64 - p.txsz;
  const oaBits = effectiveOaBits(p.granule, p.oaBits);
  if (p.ttb >= 2 ** oaBits) return { ok: false, reason: `TTB beyond the ${oaBits}-bit output size` };
  const startLevel = startLevelFor(p.granule, inputBits);
  const startBits = inputBits - levelShift(p.granule, startLevel);
  return { ok: true, regime: build(1, p.granule, inputBits, startLevel, startBits, p.ttb, oaBits, p) };
}

/** Start level encoded by S2SL0 for a granule, or -1 when the encoding is invalid (AArch64.S2InvalidSL). */
export function s2StartLevel(g: Granule, sl0: number, paMaxBits: number, stt: boolean): number {
  if (g === 12) {
    if (sl0 === 0) return 2;
    if (sl0 === 1) return 1;
    if (sl0 === 2) return paMaxBits < 44 ? -1 : 0;
    return stt ? 3 : -1;
  }
  if (g === 14) {
    if (sl0 === 0) return 3;
    if (sl0 === 1) return 2;
    if (sl0 === 2) return paMaxBits < 42 ? -1 : 1;
    return -1; // 0b11 = level 0 needs DS (FEAT_LPA2), not modelled
  }
  if (sl0 === 0) return 3;
  if (sl0 === 1) return 2;
  if (sl0 === 2) return paMaxBits < 44 ? -1 : 1;
  return -1;
}

/** The legal S2T0SZ range for a granule (IHI 0070 §5.2 S2T0SZ; LPA2 not modelled). */
export function s2T0szRange(g: Granule, iasBits: number, stt: boolean): [min: number, max: number] {
  const maxIa = g === 16 ? Math.min(iasBits, 52) : Math.min(iasBits, 48);
  const min = 64 - maxIa;
  const max = stt ? (g === 16 ? 47 : 48) : 39;
  return [min, max];
}

/**
 * A stage-2 regime from STE fields. `t0sz` must be range-checked by the caller. Checks the SL0
 * encoding, its consistency with T0SZ (at least one and at most 16 concatenated start tables), and
 * the base against the effective output size (S2TTB out of range makes the STE ILLEGAL).
 */
export function s2Regime(p: S2RegimeParams): RegimeResult {
  const inputBits = 64 - p.t0sz;
  const oaBits = effectiveOaBits(p.granule, p.oaBits);
  const startLevel = s2StartLevel(p.granule, p.sl0, p.paMaxBits, p.stt);
  if (startLevel < 0)
    return { ok: false, reason: `S2SL0=${p.sl0} is not a valid start level for this granule` };
  const startBits = inputBits - levelShift(p.granule, startLevel);
  if (startBits < 1 || startBits > strideOf(p.granule) + 4) {
    return {
      ok: false,
      reason: `S2T0SZ=${p.t0sz} is inconsistent with start level ${startLevel} (needs 1..16 start tables)`,
    };
  }
  if (p.ttb >= 2 ** oaBits) return { ok: false, reason: `S2TTB beyond the ${oaBits}-bit output size` };
  const opts = { affd: p.affd, had: true, twoPrivilege: false, pan: false, wxn: false, xnx: p.xnx === true };
  return { ok: true, regime: build(2, p.granule, inputBits, startLevel, startBits, p.ttb, oaBits, opts) };
}

/** Number of concatenated tables at the start level of a stage-2 regime. */
export function concatenatedTables(r: StageRegime): number {
  return 2 ** Math.max(0, r.startBits - strideOf(r.granule));
}

/** The table base as a number. */
export function regimeTtb(r: StageRegime): number {
  return r.ttbHi * TWO_POW_32 + r.ttbLo;
}

/** True when the address hi:lo has no bits set at or above the regime's input size. */
export function inInputRange(r: StageRegime, hi: number, lo: number): boolean {
  return (hi & r.rangeMaskHi) === 0 && (lo & r.rangeMaskLo) === 0 && fitsNumber(hi);
}

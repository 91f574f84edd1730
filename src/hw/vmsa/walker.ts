/**
 * The fast VMSAv8-64 table walker: stage 1, stage 2 and nested ("2D") walks over PhysMem with
 * addresses as two u32 words, no BigInt and no allocation. Results land in fields of the walker
 * object (valid until the next call), which is how a hardware model returns several values without
 * creating an object per translation.
 *
 * Fault order within one stage (IHI 0070 §7.3.22, Arm ARM AArch64 walk pseudocode):
 *   input range → per level {external abort, invalid descriptor, address size of the descriptor's
 *   output} → access flag → permission.
 * In a nested walk every stage-1 table address is an IPA translated by stage 2 first (a read,
 * CLASS TT); stage-1 access-flag and permission checks precede the stage-2 walk of the output IPA
 * (CLASS IN). `qemuOrder` swaps the leaf checks to QEMU's access flag → permission → address size,
 * for byte-for-byte comparisons with QEMU's model.
 *
 * The plain reference walker (walk-ref.ts) implements the same rules with BigInt and no tricks; a
 * property test holds the two together.
 */

import {
  applyApTable,
  CLASS_IN,
  CLASS_TT,
  D0_AF,
  D0_NG,
  D1_PXN,
  D1_PXNTABLE,
  D1_UXNTABLE,
  D1_XN,
  PERM,
  PERM_S1_ALL,
  PERM_S2_ALL,
  s1Permissions,
  s2Permissions,
  WALK_ACCESS,
  WALK_ADDR_SIZE,
  WALK_EABT,
  WALK_OK,
  WALK_PERMISSION,
  WALK_TRANSLATION,
  type WalkFault,
} from '../../arch/vmsa.ts';
import type { PhysMem } from '../memory.ts';
import type { StageRegime } from './regime.ts';

/** A stage-1 context: the two TTBx halves of a CD (null = walks disabled by EPDx) and range rules. */
export interface S1Context {
  readonly tt0: StageRegime | null;
  readonly tt1: StageRegime | null;
  /** Top-byte-ignore for each half. */
  readonly tbi0: boolean;
  readonly tbi1: boolean;
  /** TTB1 reachable (two VA ranges: EL1&0, EL2&0); false for EL2 (TTB0 only). */
  readonly twoRanges: boolean;
}

export class Walker {
  readonly mem: PhysMem;
  /** Leaf checks in QEMU's order (access flag, permission, then address size). */
  qemuOrder = false;

  // ---- results of the last walk() / translate()
  /** Output address (PA for a full translation, the stage's output for walk()). */
  outHi = 0;
  outLo = 0;
  /** log2 of the mapping size the result is valid for (the smaller of the two stages when nested). */
  shift = 0;
  /** PERM bits granted (stage-1 bits | stage-2 bits; a bypassed stage grants all of its bits). */
  perms = 0;
  /** The stage-1 leaf was non-global (nG = 1). */
  nG = false;
  /** Leaf level and granule (log2) of stage 1, or of stage 2 when stage 1 is bypassed. */
  level = 0;
  granule = 0;
  /** Intermediate (stage-1 output) address of the last translate(). */
  ipaHi = 0;
  ipaLo = 0;

  // ---- fault details of the last failed walk
  fault: WalkFault = WALK_OK;
  /** Stage that faulted: true = stage 2. */
  faultS2 = false;
  /** CLASS for a stage-2 fault (or F_WALK_EABT): CD / TT / IN. */
  faultClass = CLASS_IN;
  /** IPA being translated by stage 2 when it faulted. */
  faultIpaHi = 0;
  faultIpaLo = 0;
  /** Physical address of the descriptor whose fetch aborted. */
  fetchHi = 0;
  fetchLo = 0;
  /** For F_PERMISSION with CLASS TT: the walk access was a read (always, without HTTU). */
  faultTtRead = true;

  // ---- counters (cumulative; the SMMU reads deltas)
  /** Descriptor reads, both stages. */
  descReads = 0;
  walksS1 = 0;
  walksS2 = 0;

  // scratch for the stage walk
  private lvlOutHi = 0;
  private lvlOutLo = 0;
  private lvlShift = 0;
  private lvlPerms = 0;
  private lvlNg = false;
  private lvlLevel = 0;

  constructor(mem: PhysMem) {
    this.mem = mem;
  }

  /**
   * Full translation of one input address: stage 1 (unless `s1` is null: bypass), then stage 2
   * (unless `s2` is null). `s1Need` / `s2Need` are the PERM bits the access requires.
   * Returns WALK_OK with outHi/outLo/shift/perms/nG set, or a fault with the fault fields set.
   */
  translate(
    s1: S1Context | null,
    s2: StageRegime | null,
    inHi: number,
    inLo: number,
    s1Need: number,
    s2Need: number,
  ): WalkFault {
    // Internally addresses travel as int32 halves: V8 passes those unboxed, while a uint32 above
    // 2^31 would be a heap number allocated at every non-inlined call. Outputs are unsigned.
    inHi |= 0;
    inLo |= 0;
    let ipaHi = inHi;
    let ipaLo = inLo;
    let shift = 64;
    let perms = PERM_S1_ALL;
    let nG = false;
    let level = 0;
    let granule = 0;
    if (s1 !== null) {
      const r = this.selectS1(s1, inHi, inLo);
      if (r === null) return this.stage1Fault(WALK_TRANSLATION);
      const f = this.walkS1(r, inHi, inLo, s1Need, s2);
      if (f !== WALK_OK) return f;
      ipaHi = this.lvlOutHi;
      ipaLo = this.lvlOutLo;
      shift = this.lvlShift;
      perms = this.lvlPerms;
      nG = this.lvlNg;
      level = this.lvlLevel;
      granule = r.granule;
    }
    this.ipaHi = ipaHi >>> 0;
    this.ipaLo = ipaLo >>> 0;
    if (s2 !== null) {
      const f = this.walkS2(s2, ipaHi, ipaLo, s2Need);
      if (f !== WALK_OK) return this.asStage2Fault(f, CLASS_IN, ipaHi, ipaLo);
      this.outHi = this.lvlOutHi >>> 0;
      this.outLo = this.lvlOutLo >>> 0;
      this.shift = Math.min(this.lvlShift, shift);
      this.perms = perms | this.lvlPerms;
      if (s1 === null) {
        level = this.lvlLevel;
        granule = s2.granule;
      }
    } else {
      this.outHi = ipaHi >>> 0;
      this.outLo = ipaLo >>> 0;
      this.shift = shift;
      this.perms = perms | PERM_S2_ALL;
    }
    this.nG = nG;
    this.level = level;
    this.granule = granule;
    this.fault = WALK_OK;
    return WALK_OK;
  }

  /**
   * Stage-2 translation of a structure address (a CD or L1CD fetch, CLASS CD): a data read.
   * Returns WALK_OK with outHi/outLo set, or a stage-2 fault with the given class.
   */
  translateS2(s2: StageRegime, ipaHi: number, ipaLo: number, cls: number): WalkFault {
    const f = this.walkS2(s2, ipaHi | 0, ipaLo | 0, PERM.S2_R);
    if (f !== WALK_OK) return this.asStage2Fault(f, cls, ipaHi, ipaLo);
    this.outHi = this.lvlOutHi >>> 0;
    this.outLo = this.lvlOutLo >>> 0;
    this.shift = this.lvlShift;
    this.perms = this.lvlPerms;
    this.fault = WALK_OK;
    return WALK_OK;
  }

  /**
   * Stage-1 half selection and input range check (IHI 0070 §3.4.1): VA[55] selects TTB1 when two
   * ranges exist; bits [top:inputBits] must all equal VA[55] (top = 55 with TBI, else 63).
   * Returns null for a translation fault (out of range, or the half's walks disabled).
   */
  selectS1(s1: S1Context, hi: number, lo: number): StageRegime | null {
    const upper = s1.twoRanges && (hi & 0x80_0000) !== 0;
    const r = upper ? s1.tt1 : s1.tt0;
    if (r === null) return null;
    const tbi = upper ? s1.tbi1 : s1.tbi0;
    const mHi = tbi ? r.rangeMaskHi & 0x00ff_ffff : r.rangeMaskHi;
    if (upper) {
      if ((hi & mHi) >>> 0 !== mHi >>> 0 || (lo & r.rangeMaskLo) >>> 0 !== r.rangeMaskLo >>> 0) return null;
    } else if ((hi & mHi) !== 0 || (lo & r.rangeMaskLo) !== 0) return null;
    return r;
  }

  private stage1Fault(f: WalkFault): WalkFault {
    this.fault = f;
    this.faultS2 = false;
    this.faultClass = CLASS_IN;
    return f;
  }

  private asStage2Fault(f: WalkFault, cls: number, ipaHi: number, ipaLo: number): WalkFault {
    this.fault = f;
    this.faultS2 = true;
    this.faultClass = cls;
    this.faultIpaHi = ipaHi >>> 0;
    this.faultIpaLo = ipaLo >>> 0;
    this.faultTtRead = true;
    return f;
  }

  /**
   * A stage-1 walk of `inHi:inLo` (int32 halves). With `nest` (a nested configuration) each table
   * descriptor address is an IPA translated by `walkS2` first: a read, CLASS TT on a fault.
   * Results in lvl* fields.
   */
  private walkS1(
    r: StageRegime,
    inHi: number,
    inLo: number,
    need: number,
    nest: StageRegime | null,
  ): WalkFault {
    this.walksS1++;
    const mem = this.mem;
    const g = r.granule;
    const stride = g - 3;
    const granMaskLo = ~((1 << g) - 1);
    let level = r.startLevel;
    let bits = r.startBits;
    let tHi = r.ttbHi;
    let tLo = r.ttbLo | 0;
    let apTable = 0;
    let xnTable = false;
    let pxnTable = false;
    for (;;) {
      const shift = g + stride * (3 - level);
      const dHiT = tHi;
      const dLoT = (tLo & ~((1 << (bits + 3)) - 1)) | (levelIndex(inHi, inLo, shift, bits) << 3);
      let dHi = dHiT;
      let dLo = dLoT;
      if (nest !== null) {
        const f = this.walkS2(nest, dHiT, dLoT, PERM.S2_R);
        if (f !== WALK_OK) return this.asStage2Fault(f, CLASS_TT, dHiT, dLoT);
        dHi = this.lvlOutHi;
        dLo = this.lvlOutLo;
      }
      this.descReads++;
      if (!mem.readDesc(dHi, dLo)) return this.fetchAbort(dHi, dLo, false);
      const d0 = mem.d0;
      const d1 = mem.d1;
      if ((d0 & 1) === 0) return this.stageFault(WALK_TRANSLATION, true);
      if (level < 3 && (d0 & 2) !== 0) {
        // Table descriptor: next-level table address, then hierarchical attributes.
        tHi = tableHi(d0, d1, r.oa52);
        if (tHi >= r.oaLimitHi) return this.stageFault(WALK_ADDR_SIZE, true);
        tLo = d0 & granMaskLo;
        if (!r.had) {
          apTable |= (d1 >>> 29) & 3;
          if ((d1 & D1_UXNTABLE) !== 0) xnTable = true;
          if ((d1 & D1_PXNTABLE) !== 0) pxnTable = true;
        }
        level++;
        bits = stride;
        continue;
      }
      if (level === 3 ? (d0 & 2) === 0 : !blockLegal(g, level, r.oa52))
        return this.stageFault(WALK_TRANSLATION, true);
      this.leafOutput(d0, d1, shift, inHi, inLo, r.oa52);
      const ap = applyApTable((d0 >>> 6) & 3, apTable);
      let perms = s1Permissions(
        ap,
        (d1 & D1_PXN) !== 0 || pxnTable,
        (d1 & D1_XN) !== 0 || xnTable,
        r.twoPrivilege,
      );
      if (r.wxn) perms = applyWxn(perms);
      if (r.pan && (ap & 1) !== 0) perms &= ~(PERM.S1_PR | PERM.S1_PW);
      return this.finishLeaf(r, d0, perms, need, shift, level, true);
    }
  }

  /**
   * A stage-2 walk of the IPA `inHi:inLo` (int32 halves): the same walk without nesting or
   * hierarchical attributes, kept separate because V8 never inlines a recursive call and a nested
   * stage-1 walk makes up to five of these. Results in lvl* fields.
   */
  private walkS2(r: StageRegime, inHi: number, inLo: number, need: number): WalkFault {
    this.walksS2++;
    if ((inHi & r.rangeMaskHi) !== 0 || (inLo & r.rangeMaskLo) !== 0)
      return this.stageFault(WALK_TRANSLATION, false);
    const mem = this.mem;
    const g = r.granule;
    const stride = g - 3;
    const granMaskLo = ~((1 << g) - 1);
    let level = r.startLevel;
    let bits = r.startBits;
    let tHi = r.ttbHi;
    let tLo = r.ttbLo | 0;
    for (;;) {
      const shift = g + stride * (3 - level);
      const dHi = tHi;
      const dLo = (tLo & ~((1 << (bits + 3)) - 1)) | (levelIndex(inHi, inLo, shift, bits) << 3);
      this.descReads++;
      if (!mem.readDesc(dHi, dLo)) return this.fetchAbort(dHi, dLo, true);
      const d0 = mem.d0;
      const d1 = mem.d1;
      if ((d0 & 1) === 0) return this.stageFault(WALK_TRANSLATION, false);
      if (level < 3 && (d0 & 2) !== 0) {
        tHi = tableHi(d0, d1, r.oa52);
        if (tHi >= r.oaLimitHi) return this.stageFault(WALK_ADDR_SIZE, false);
        tLo = d0 & granMaskLo;
        level++;
        bits = stride;
        continue;
      }
      if (level === 3 ? (d0 & 2) === 0 : !blockLegal(g, level, r.oa52))
        return this.stageFault(WALK_TRANSLATION, false);
      this.leafOutput(d0, d1, shift, inHi, inLo, r.oa52);
      return this.finishLeaf(
        r,
        d0,
        s2Permissions((d0 >>> 6) & 3, (d1 >>> 21) & 3, r.xnx),
        need,
        shift,
        level,
        false,
      );
    }
  }

  /** Output address of a leaf: its OA above the level's shift, the input below (into lvlOut*). */
  private leafOutput(d0: number, d1: number, shift: number, inHi: number, inLo: number, oa52: boolean): void {
    const oaHi = tableHi(d0, d1, oa52);
    if (shift < 32) {
      const low = (1 << shift) - 1;
      this.lvlOutHi = oaHi;
      this.lvlOutLo = (d0 & ~low) | (inLo & low);
    } else {
      const lowHi = (1 << (shift - 32)) - 1;
      this.lvlOutHi = (oaHi & ~lowHi) | (inHi & lowHi);
      this.lvlOutLo = inLo;
    }
  }

  /** The leaf checks in fault order (address size, access flag, permission), then the results. */
  private finishLeaf(
    r: StageRegime,
    d0: number,
    perms: number,
    need: number,
    shift: number,
    level: number,
    stage1: boolean,
  ): WalkFault {
    const sizeFault = this.lvlOutHi >= r.oaLimitHi;
    if (!this.qemuOrder && sizeFault) return this.stageFault(WALK_ADDR_SIZE, stage1);
    if ((d0 & D0_AF) === 0 && !r.affd) return this.stageFault(WALK_ACCESS, stage1);
    if ((perms & need) !== need) return this.stageFault(WALK_PERMISSION, stage1);
    if (this.qemuOrder && sizeFault) return this.stageFault(WALK_ADDR_SIZE, stage1);
    this.lvlShift = shift;
    this.lvlPerms = perms;
    this.lvlNg = (d0 & D0_NG) !== 0;
    this.lvlLevel = level;
    return WALK_OK;
  }

  /** An external abort on a descriptor fetch (F_WALK_EABT, CLASS TT for stage 1). */
  private fetchAbort(dHi: number, dLo: number, stage2: boolean): WalkFault {
    this.fetchHi = dHi >>> 0;
    this.fetchLo = dLo >>> 0;
    this.fault = WALK_EABT;
    this.faultS2 = stage2;
    this.faultClass = CLASS_TT;
    return WALK_EABT;
  }

  private stageFault(f: WalkFault, stage1: boolean): WalkFault {
    this.fault = f;
    this.faultS2 = !stage1;
    this.faultClass = CLASS_IN;
    return f;
  }
}

/** Bits [idx-bits+shift-1 : shift] of the input address hi:lo: the table index at one level. */
function levelIndex(inHi: number, inLo: number, shift: number, bits: number): number {
  const mask = (1 << bits) - 1;
  if (shift >= 32) return (inHi >>> (shift - 32)) & mask;
  if (shift + bits <= 32) return (inLo >>> shift) & mask;
  return ((inLo >>> shift) | (inHi << (32 - shift))) & mask;
}

/** Output address bits [51:32] of a descriptor: [47:32] from d1, and OA[51:48] from d0 with LPA. */
function tableHi(d0: number, d1: number, oa52: boolean): number {
  return (d1 & 0xffff) | (oa52 ? ((d0 >>> 12) & 0xf) << 16 : 0);
}

/** Block legality (vmsa.ts blockAllowed, specialised): 64KB level-1 blocks need 52-bit output. */
function blockLegal(g: number, level: number, oa52: boolean): boolean {
  if (g === 12) return level === 1 || level === 2;
  if (g === 14) return level === 2;
  return level === 2 || (level === 1 && oa52);
}

/** WXN: a writable mapping is execute-never at the privilege that can write it. */
function applyWxn(p: number): number {
  let out = p;
  if (out & PERM.S1_PW) out &= ~PERM.S1_PX;
  if (out & PERM.S1_UW) out &= ~PERM.S1_UX;
  return out;
}

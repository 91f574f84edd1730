/**
 * VMSAv8-64 translation-table formats as data (Arm ARM DDI 0487, chapter D8 "The AArch64
 * Virtual Memory System Architecture"): granule geometry, legal start levels, the output-size
 * encodings shared by TCR.IPS / VTCR.PS / SMMU CD.IPS / STE.S2PS / IDR5.OAS, and the bit positions
 * of stage-1 and stage-2 table, block and page descriptors. No behaviour beyond arithmetic on
 * these facts; the walkers and the page-table builder live in src/hw/vmsa.
 *
 * Scope decisions (recorded here, next to the constants):
 * - 52-bit output addresses are supported with the 64KB granule only (FEAT_LPA: OA[51:48] in
 *   descriptor bits [15:12]). FEAT_LPA2 (52-bit with 4KB/16KB, TCR.DS) is not modelled, so with a
 *   4KB or 16KB granule the effective output size is capped at 48 bits.
 * - Blocks: 4KB granule at levels 1 and 2; 16KB at level 2; 64KB at level 2, and at level 1 only
 *   when 52-bit output addresses are in use. A block descriptor elsewhere is a translation fault.
 */

import { addrField, bitField, type Field, field } from './fields.ts';

/** log2 of the translation granule. */
export type Granule = 12 | 14 | 16;
export const GRANULES: readonly Granule[] = [12, 14, 16];

export function granuleName(g: Granule): string {
  return g === 12 ? '4KB' : g === 14 ? '16KB' : '64KB';
}

/** Index bits resolved per level for a granule: 9, 11 or 13. */
export function strideOf(g: Granule): number {
  return g - 3;
}

/** Lowest input-address bit resolved at `level` (0..3). 4KB: 39/30/21/12; 16KB: 47/36/25/14; 64KB: -/42/29/16. */
export function levelShift(g: Granule, level: number): number {
  return g + (g - 3) * (3 - level);
}

/** Start level of a walk that resolves `inputBits` of input address (no concatenation). */
export function startLevelFor(g: Granule, inputBits: number): number {
  return 4 - Math.floor((inputBits - 4) / (g - 3));
}

/** Is a block descriptor legal at `level` for this granule and output size? */
export function blockAllowed(g: Granule, level: number, oaBits: number): boolean {
  if (g === 12) return level === 1 || level === 2;
  if (g === 14) return level === 2;
  return level === 2 || (level === 1 && oaBits > 48);
}

/** The page and block sizes (log2) a format can map, smallest first. */
export function mappingSizes(g: Granule, oaBits: number): number[] {
  const out: number[] = [g];
  for (let level = 2; level >= 1; level--) if (blockAllowed(g, level, oaBits)) out.push(levelShift(g, level));
  return out;
}

// ---------------------------------------------------------------- output / physical address sizes

/**
 * The 3-bit PS/IPS/OAS encoding (SMMU IDR5.OAS, CD.IPS, STE.S2PS; TCR_EL1.IPS): bits of address.
 * Encoding 7 is reserved.
 */
export const PS_BITS: readonly number[] = [32, 36, 40, 42, 44, 48, 52];

/** Bits for a PS encoding, or -1 if reserved. */
export function psBits(enc: number): number {
  return PS_BITS[enc] ?? -1;
}

/** The PS encoding for a number of bits, or -1. */
export function psEncoding(bits: number): number {
  return PS_BITS.indexOf(bits);
}

/** Effective output size for a granule: 52-bit only with 64KB (see the scope note above). */
export function effectiveOaBits(g: Granule, bits: number): number {
  return g === 16 ? bits : Math.min(bits, 48);
}

// ---------------------------------------------------------------- descriptor fields (one dword)

/** Descriptor type bits [1:0]: 0bx0 invalid, 0b01 block (levels 0-2) / reserved (level 3), 0b11 table / page. */
export const DESC_VALID = bitField('Valid', 0, 0);
export const DESC_TYPE = bitField('Type', 0, 1);

/** Stage 1 lower attributes. */
export const S1_ATTRINDX = field('AttrIndx', 0, 4, 2);
export const S1_NS = bitField('NS', 0, 5);
/** AP[2:1]: bit 6 = AP[1] (EL0 access), bit 7 = AP[2] (read-only). */
export const S1_AP = field('AP', 0, 7, 6);
export const DESC_SH = field('SH', 0, 9, 8);
export const DESC_AF = bitField('AF', 0, 10);
export const S1_NG = bitField('nG', 0, 11);
/** Output address bits [47:12] (the granule's low bits are RES0 / OA[51:48] for 64KB with LPA). */
export const DESC_OA = addrField('OutputAddress', 0, 47, 12);
export const DESC_OA_52_HI = field('OA[51:48]', 0, 15, 12);
export const DESC_CONTIG = bitField('Contiguous', 0, 52);
export const S1_PXN = bitField('PXN', 0, 53);
export const S1_UXN = bitField('UXN', 0, 54);
export const DESC_SW = field('Software', 0, 58, 55);
/** Stage 1 table descriptor hierarchical attributes. */
export const S1_PXNTABLE = bitField('PXNTable', 0, 59);
export const S1_UXNTABLE = bitField('UXNTable', 0, 60);
export const S1_APTABLE = field('APTable', 0, 62, 61);
export const S1_NSTABLE = bitField('NSTable', 0, 63);

/** Stage 2 lower attributes. */
export const S2_MEMATTR = field('MemAttr', 0, 5, 2);
/** S2AP: bit 6 = read permitted, bit 7 = write permitted. */
export const S2_S2AP = field('S2AP', 0, 7, 6);
/**
 * Stage 2 XN[1:0] (FEAT_XNX, SMMU IDR3.XNX): 0b00 executable at both privileges, 0b01 not at the
 * privileged level, 0b10 at neither, 0b11 not at the unprivileged level. Without XNX only XN[1]
 * counts (set = execute-never).
 */
export const S2_XN = field('XN', 0, 54, 53);

export const S1_LEAF_FIELDS: readonly Field[] = [
  DESC_VALID,
  DESC_TYPE,
  S1_ATTRINDX,
  S1_NS,
  S1_AP,
  DESC_SH,
  DESC_AF,
  S1_NG,
  DESC_OA,
  DESC_CONTIG,
  S1_PXN,
  S1_UXN,
  DESC_SW,
];

export const S1_TABLE_FIELDS: readonly Field[] = [
  DESC_VALID,
  DESC_TYPE,
  DESC_OA,
  S1_PXNTABLE,
  S1_UXNTABLE,
  S1_APTABLE,
  S1_NSTABLE,
];

export const S2_LEAF_FIELDS: readonly Field[] = [
  DESC_VALID,
  DESC_TYPE,
  S2_MEMATTR,
  S2_S2AP,
  DESC_SH,
  DESC_AF,
  DESC_OA,
  DESC_CONTIG,
  S2_XN,
  DESC_SW,
];

// Word-level masks used by the split-u32 walkers (bit n of the low word d0 / high word d1).
export const D0_VALID = 1 << 0;
export const D0_TABLE_OR_PAGE = 1 << 1;
export const D0_AF = 1 << 10;
export const D0_NG = 1 << 11;
export const D0_AP_SHIFT = 6;
/** d1 bit 20 = descriptor bit 52 (Contiguous). */
export const D1_CONTIG = 1 << 20;
/** d1 bit 21 = descriptor bit 53 (PXN; stage 2 XN[0]). */
export const D1_PXN = 1 << 21;
/** d1 bit 22 = descriptor bit 54 (UXN / XN; stage 2 XN[1]). */
export const D1_XN = 1 << 22;
/** d1 bit 27 = descriptor bit 59 (PXNTable). */
export const D1_PXNTABLE = 1 << 27;
/** d1 bit 28 = descriptor bit 60 (UXNTable / XNTable). */
export const D1_UXNTABLE = 1 << 28;
/** d1 bits [30:29] = descriptor bits [62:61] (APTable). */
export const D1_APTABLE_SHIFT = 29;
/** d1 bits [15:0] = output address bits [47:32]. */
export const D1_OA_MASK = 0xffff;

// ---------------------------------------------------------------- stage 1 regimes and permissions

/**
 * Access permission AP[2:1] meanings for a two-privilege regime (EL1&0, EL2&0):
 * 0b00 priv RW / unpriv none; 0b01 priv RW / unpriv RW; 0b10 priv RO / unpriv none; 0b11 both RO.
 * In a one-privilege regime (EL2 without E2H) AP[1] is ignored: 0b0x RW, 0b1x RO.
 */
export const AP_PRIV_RW = 0b00;
export const AP_RW = 0b01;
export const AP_PRIV_RO = 0b10;
export const AP_RO = 0b11;

/** Bits of a permission set (used in walk results and IOTLB entries). */
export const PERM = {
  /** Stage 1, privileged read / write / execute. */
  S1_PR: 1 << 0,
  S1_PW: 1 << 1,
  S1_PX: 1 << 2,
  /** Stage 1, unprivileged read / write / execute. */
  S1_UR: 1 << 3,
  S1_UW: 1 << 4,
  S1_UX: 1 << 5,
  /** Stage 2 read / write, and execute for privileged / unprivileged accesses (XNX). */
  S2_R: 1 << 8,
  S2_W: 1 << 9,
  S2_PX: 1 << 10,
  S2_UX: 1 << 11,
} as const;

/** All stage-1 permissions (stage 1 bypassed). */
export const PERM_S1_ALL = 0x3f;
/** All stage-2 permissions (stage 2 bypassed). */
export const PERM_S2_ALL = 0xf00;

/** Access kinds of a transaction. */
export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;
export type Access = 0 | 1 | 2;

/** The PERM bit a stage-1 access needs. */
export function s1PermBit(access: Access, privileged: boolean): number {
  return 1 << (access + (privileged ? 0 : 3));
}

/** The PERM bit a stage-2 access needs: execute is judged at the access's privilege (XNX). */
export function s2PermBit(access: Access, privileged: boolean): number {
  if (access === ACCESS_EXEC) return privileged ? PERM.S2_PX : PERM.S2_UX;
  return 1 << (8 + access);
}

/**
 * Stage-1 permissions of a leaf after hierarchical table attributes are folded in.
 * `twoPrivilege`: EL1&0 or EL2&0 regime; otherwise EL2 (one privilege level, AP[1] ignored,
 * XN = bit 54, PXN RES0 and ignored). An EL0-writable page is never privileged-executable.
 */
export function s1Permissions(ap: number, pxn: boolean, uxn: boolean, twoPrivilege: boolean): number {
  const ro = (ap & 2) !== 0;
  if (!twoPrivilege) {
    // One privilege level: both privileged and unprivileged requests are judged the same way.
    let p = PERM.S1_PR | PERM.S1_UR;
    if (!ro) p |= PERM.S1_PW | PERM.S1_UW;
    if (!uxn) p |= PERM.S1_PX | PERM.S1_UX;
    return p;
  }
  const el0 = (ap & 1) !== 0;
  let p = PERM.S1_PR;
  if (!ro) p |= PERM.S1_PW;
  if (el0) p |= PERM.S1_UR;
  if (el0 && !ro) p |= PERM.S1_UW;
  const userWritable = el0 && !ro;
  if (!pxn && !userWritable) p |= PERM.S1_PX;
  if (!uxn) p |= PERM.S1_UX;
  return p;
}

/** Stage-2 permissions from S2AP and XN[1:0] (descriptor bits [54:53]); `xnx`: FEAT_XNX semantics. */
export function s2Permissions(s2ap: number, xn: number, xnx: boolean): number {
  let p = 0;
  if (s2ap & 1) p |= PERM.S2_R;
  if (s2ap & 2) p |= PERM.S2_W;
  const x = xnx ? xn & 3 : xn & 2;
  if (x === 0) p |= PERM.S2_PX | PERM.S2_UX;
  else if (x === 0b01) p |= PERM.S2_UX;
  else if (x === 0b11) p |= PERM.S2_PX;
  return p;
}

/** Folds a table descriptor's APTable into a leaf's AP[2:1]: APTable[0] removes EL0 access, APTable[1] write. */
export function applyApTable(ap: number, apTable: number): number {
  let out = ap;
  if (apTable & 1) out &= ~1;
  if (apTable & 2) out |= 2;
  return out;
}

// ---------------------------------------------------------------- walk fault kinds

/** Faults a VMSA walk can end in; the SMMU maps them to event IDs (F_TRANSLATION, ...). */
export const WALK_OK = 0;
export const WALK_TRANSLATION = 1;
export const WALK_ADDR_SIZE = 2;
export const WALK_ACCESS = 3;
export const WALK_PERMISSION = 4;
/** External abort on a descriptor fetch. */
export const WALK_EABT = 5;
export type WalkFault = 0 | 1 | 2 | 3 | 4 | 5;

export const WALK_FAULT_NAMES: readonly string[] = [
  'ok',
  'translation',
  'address size',
  'access flag',
  'permission',
  'external abort',
];

/** Where a stage-2 fault happened relative to stage 1 (SMMU event CLASS): CD fetch, S1 table walk, input. */
export const CLASS_CD = 0;
export const CLASS_TT = 1;
export const CLASS_IN = 2;

/**
 * What the host driver writes into its stream table and CD tables (IHI 0070 §5.1, §5.2, §5.4;
 * seed-spec §1.3 "Resulting STE", §8.1, §8.2), built from the arch field tables: the STE of a
 * stream from the driver's description of it (abort / bypass / stage 1 / stage 2 / nested), the
 * host CD of a stage-1 domain from its page table, and the L1 stream table descriptor.
 *
 * Attributes as Linux's driver sets them: CD fetches and table walks inner/outer write-back
 * read-allocate, inner shareable; S2PTW and S2R/CD.R (record faults) set, CD.A (abort on fault)
 * set; bypass STEs use the incoming shareability (SHCFG = 0b01) when the SMMU lets it be
 * overridden. STRW is always NS-EL1: CR2.E2H stays clear (see driver.ts), and for nested STEs the
 * guest's stage 1 runs at EL1 (the SMMU ignores STRW there anyway, IHI 0070 §5.2 STRW).
 */

import { getField, setField } from '../../arch/fields.ts';
import {
  CD_0_A,
  CD_0_AA64,
  CD_0_ASET,
  CD_0_ASID,
  CD_0_EPD1,
  CD_0_IPS,
  CD_0_IR0,
  CD_0_OR0,
  CD_0_R,
  CD_0_SH0,
  CD_0_T0SZ,
  CD_0_TG0,
  CD_0_V,
  CD_1_TTB0,
  CD_3_MAIR,
  CD_DWORDS,
  TG0_4K,
  TG0_16K,
  TG0_64K,
} from '../../arch/smmuv3/cd.ts';
import {
  L1STD_L2PTR,
  L1STD_SPAN,
  S2TG_4K,
  S2TG_16K,
  S2TG_64K,
  STE_0_CFG,
  STE_0_S1CDMAX,
  STE_0_S1CTXPTR,
  STE_0_S1FMT,
  STE_0_V,
  STE_1_S1CIR,
  STE_1_S1COR,
  STE_1_S1CSH,
  STE_1_S1DSS,
  STE_1_SHCFG,
  STE_1_STRW,
  STE_2_S2AA64,
  STE_2_S2IR0,
  STE_2_S2OR0,
  STE_2_S2PS,
  STE_2_S2PTW,
  STE_2_S2R,
  STE_2_S2SH0,
  STE_2_S2SL0,
  STE_2_S2T0SZ,
  STE_2_S2TG,
  STE_2_S2VMID,
  STE_3_S2TTB,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_DWORDS,
  STRW_NSEL1,
} from '../../arch/smmuv3/ste.ts';
import { type Granule, psEncoding } from '../../arch/vmsa.ts';

/** Cacheability and shareability encodings of STE/CD walk attributes. */
export const ATTR_WBRA = 0b01;
export const SH_ISH = 0b11;
/** STE.SHCFG: use the incoming shareability. */
export const SHCFG_INCOMING = 0b01;

/** Stage-1 part of an STE (seed-spec §1.3): where the CD table is and how it is laid out. */
export interface SteS1 {
  /** S1ContextPtr: a PA (stage 1 only) or an IPA (nested). Bits [51:6] are used. */
  readonly ctxPtr: number;
  readonly cdMax: number;
  readonly fmt: number;
  readonly dss: number;
}

/** Stage-2 part of an STE: the VMID and the stage-2 table (VTCR fields from its geometry). */
export interface SteS2 {
  readonly vmid: number;
  readonly granule: Granule;
  readonly iasBits: number;
  readonly oasBits: number;
  readonly sl0: number;
  readonly ttb: number;
}

/** The driver's decision for one stream. */
export type SteDesc =
  | { readonly kind: 'abort' }
  | { readonly kind: 'bypass'; readonly shcfgIncoming: boolean }
  | { readonly kind: 'translate'; readonly s1?: SteS1; readonly s2?: SteS2 };

/** STE address bits [51:6] of a pointer the kernel does not otherwise validate. */
export function ctxPtrBits(p: number): number {
  return p - (p % 64) - Math.floor(p / 2 ** 52) * 2 ** 52;
}

function s2tg(g: Granule): number {
  return g === 12 ? S2TG_4K : g === 16 ? S2TG_64K : S2TG_16K;
}

/** The 16 words of an STE. A 'translate' description with neither stage is a bypass STE. */
export function buildSte(d: SteDesc): Uint32Array {
  const w = new Uint32Array(STE_DWORDS * 2);
  setField(w, STE_0_V, 1);
  if (d.kind === 'abort') {
    setField(w, STE_0_CFG, STE_CFG_ABORT);
    return w;
  }
  if (d.kind === 'bypass' || (d.s1 === undefined && d.s2 === undefined)) {
    setField(w, STE_0_CFG, STE_CFG_BYPASS);
    if (d.kind === 'bypass' && d.shcfgIncoming) setField(w, STE_1_SHCFG, SHCFG_INCOMING);
    return w;
  }
  // Config = 0b1 S2 S1: 0b101 stage 1, 0b110 stage 2, 0b111 nested.
  setField(w, STE_0_CFG, STE_CFG_BYPASS | (d.s2 ? 0b010 : 0) | (d.s1 ? 0b001 : 0));
  if (d.s1) {
    setField(w, STE_0_S1CTXPTR, ctxPtrBits(d.s1.ctxPtr));
    setField(w, STE_0_S1CDMAX, d.s1.cdMax);
    setField(w, STE_0_S1FMT, d.s1.fmt);
    setField(w, STE_1_S1DSS, d.s1.dss);
    setField(w, STE_1_S1CIR, ATTR_WBRA);
    setField(w, STE_1_S1COR, ATTR_WBRA);
    setField(w, STE_1_S1CSH, SH_ISH);
    setField(w, STE_1_STRW, STRW_NSEL1);
  }
  if (d.s2) {
    setField(w, STE_2_S2VMID, d.s2.vmid);
    setField(w, STE_2_S2T0SZ, 64 - d.s2.iasBits);
    setField(w, STE_2_S2SL0, d.s2.sl0);
    setField(w, STE_2_S2IR0, ATTR_WBRA);
    setField(w, STE_2_S2OR0, ATTR_WBRA);
    setField(w, STE_2_S2SH0, SH_ISH);
    setField(w, STE_2_S2TG, s2tg(d.s2.granule));
    setField(w, STE_2_S2PS, psEncoding(d.s2.oasBits));
    setField(w, STE_2_S2AA64, 1);
    setField(w, STE_2_S2PTW, 1);
    setField(w, STE_2_S2R, 1);
    setField(w, STE_3_S2TTB, d.s2.ttb);
  }
  return w;
}

/** STE.V and Config of 16 words. */
export function steValid(w: ArrayLike<number>): boolean {
  return getField(w, STE_0_V) === 1;
}

export function steConfig(w: ArrayLike<number>): number {
  return getField(w, STE_0_CFG);
}

/** A live STE lets traffic through (V = 1, Config = 0b1xx); an invalid or abort STE does not. */
export function steLive(w: ArrayLike<number>): boolean {
  return steValid(w) && (steConfig(w) & 0b100) !== 0;
}

/** The host CD of a stage-1 domain: its table's geometry, TTB0 and ASID. */
export interface HostCd {
  readonly asid: number;
  readonly granule: Granule;
  readonly iasBits: number;
  readonly oasBits: number;
  readonly ttb0: number;
  /** MAIR_EL1-format attributes the table's AttrIndx values assume (pgtable.ts S1_MAIR). */
  readonly mair: number;
}

function tg0(g: Granule): number {
  return g === 12 ? TG0_4K : g === 16 ? TG0_64K : TG0_16K;
}

/**
 * The 16 words of a host CD (Linux's arm_smmu_write_ctx_desc for a DMA domain): TTB0 only (EPD1),
 * AArch64, record and abort on faults, ASET = 1 (the ASID is not shared with a CPU address space).
 */
export function buildCd(c: HostCd): Uint32Array {
  const w = new Uint32Array(CD_DWORDS * 2);
  setField(w, CD_0_T0SZ, 64 - c.iasBits);
  setField(w, CD_0_TG0, tg0(c.granule));
  setField(w, CD_0_IR0, ATTR_WBRA);
  setField(w, CD_0_OR0, ATTR_WBRA);
  setField(w, CD_0_SH0, SH_ISH);
  setField(w, CD_0_EPD1, 1);
  setField(w, CD_0_V, 1);
  setField(w, CD_0_IPS, psEncoding(c.oasBits));
  setField(w, CD_0_AA64, 1);
  setField(w, CD_0_R, 1);
  setField(w, CD_0_A, 1);
  setField(w, CD_0_ASET, 1);
  setField(w, CD_0_ASID, c.asid);
  setField(w, CD_1_TTB0, c.ttb0);
  setField(w, CD_3_MAIR, c.mair);
  return w;
}

/** An L1 stream table descriptor: Span = SPLIT + 1 (2^SPLIT STEs) and the L2 table address. */
export function buildL1std(split: number, l2Ptr: number): Uint32Array {
  const w = new Uint32Array(2);
  setField(w, L1STD_SPAN, split + 1);
  setField(w, L1STD_L2PTR, l2Ptr);
  return w;
}

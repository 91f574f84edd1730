/**
 * Writers for the in-memory SMMUv3 structures a driver builds (IHI 0070 chapter 5 and chapter 4):
 * STEs, CDs, L1 stream-table and CD descriptors, and command-queue entries. Parameters carry the
 * spec's field names; the encodings come from the same field tables the device decodes with, so a
 * structure written here and decoded by the SMMU round-trips field by field. Used by tests,
 * benchmarks, and by the host and guest drivers of later layers.
 */

import { getField, setField } from '../../arch/fields.ts';
import {
  CD_0_A,
  CD_0_AA64,
  CD_0_AFFD,
  CD_0_ASET,
  CD_0_ASID,
  CD_0_EPD0,
  CD_0_EPD1,
  CD_0_IPS,
  CD_0_IR0,
  CD_0_OR0,
  CD_0_PAN,
  CD_0_R,
  CD_0_SH0,
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
  L1CD_L2PTR,
  L1CD_V,
  TG0_4K,
  TG0_16K,
  TG0_64K,
  TG1_4K,
  TG1_16K,
  TG1_64K,
} from '../../arch/smmuv3/cd.ts';
import {
  CMD_0_ASID,
  CMD_0_CS,
  CMD_0_MSH,
  CMD_0_MSIATTR,
  CMD_0_MSIDATA,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_0_SID,
  CMD_0_SSID,
  CMD_0_SSV,
  CMD_0_VMID,
  CMD_1_IPA,
  CMD_1_LEAF,
  CMD_1_MSIADDR,
  CMD_1_RANGE,
  CMD_1_TG,
  CMD_1_TTL,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_PREFETCH_CONFIG,
  CMD_SYNC,
  CMD_TLBI_EL2_ALL,
  CMD_TLBI_EL2_ASID,
  CMD_TLBI_EL2_VA,
  CMD_TLBI_EL2_VAA,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_NSNH_ALL,
  CMD_TLBI_S2_IPA,
  CMD_TLBI_S12_VMALL,
} from '../../arch/smmuv3/commands.ts';
import {
  L1STD_L2PTR,
  L1STD_SPAN,
  STE_0_CFG,
  STE_0_S1CDMAX,
  STE_0_S1CTXPTR,
  STE_0_S1FMT,
  STE_0_V,
  STE_1_INSTCFG,
  STE_1_PRIVCFG,
  STE_1_S1CIR,
  STE_1_S1COR,
  STE_1_S1CSH,
  STE_1_S1DSS,
  STE_1_SHCFG,
  STE_1_STRW,
  STE_2_S2AA64,
  STE_2_S2AFFD,
  STE_2_S2IR0,
  STE_2_S2OR0,
  STE_2_S2PS,
  STE_2_S2R,
  STE_2_S2SH0,
  STE_2_S2SL0,
  STE_2_S2T0SZ,
  STE_2_S2TG,
  STE_2_S2VMID,
  STE_3_S2TTB,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_CFG_NESTED,
  STE_CFG_S1_TRANS,
  STE_CFG_S2_TRANS,
} from '../../arch/smmuv3/ste.ts';
import { type Granule, psEncoding } from '../../arch/vmsa.ts';

export type SteConfigName = 'abort' | 'bypass' | 's1' | 's2' | 'nested';

const CONFIG_CODES: Record<SteConfigName, number> = {
  abort: STE_CFG_ABORT,
  bypass: STE_CFG_BYPASS,
  s1: STE_CFG_S1_TRANS,
  s2: STE_CFG_S2_TRANS,
  nested: STE_CFG_NESTED,
};

export interface SteParams {
  /** STE.Config by name, or the raw 3-bit value (reserved values included). */
  readonly config: SteConfigName | number;
  readonly valid?: boolean;
  readonly s1ContextPtr?: number;
  readonly s1Fmt?: number;
  readonly s1CdMax?: number;
  readonly s1Dss?: number;
  readonly strw?: number;
  readonly privCfg?: number;
  readonly instCfg?: number;
  readonly s2Vmid?: number;
  readonly s2T0sz?: number;
  readonly s2Sl0?: number;
  /** Stage-2 granule as log2 (12, 14, 16), encoded into S2TG. */
  readonly s2Granule?: Granule;
  /** Stage-2 output size in bits, encoded into S2PS. */
  readonly s2PsBits?: number;
  readonly s2Ttb?: number;
  readonly s2Affd?: boolean;
  /** Record stage-2 faults (S2R); default true. */
  readonly s2Record?: boolean;
}

function s2tg(g: Granule): number {
  return g === 12 ? 0 : g === 16 ? 1 : 2;
}

/** An STE as 16 words, with the attributes Linux's driver sets (WBRA walks, inner shareable). */
export function encodeSte(p: SteParams): Uint32Array {
  const w = new Uint32Array(16);
  const cfg = typeof p.config === 'number' ? p.config : CONFIG_CODES[p.config];
  setField(w, STE_0_V, p.valid === false ? 0 : 1);
  setField(w, STE_0_CFG, cfg);
  if ((cfg & 1) !== 0 || p.s1ContextPtr !== undefined) {
    setField(w, STE_0_S1CTXPTR, p.s1ContextPtr ?? 0);
    setField(w, STE_0_S1FMT, p.s1Fmt ?? 0);
    setField(w, STE_0_S1CDMAX, p.s1CdMax ?? 0);
    setField(w, STE_1_S1DSS, p.s1Dss ?? 0);
    setField(w, STE_1_S1CIR, 1);
    setField(w, STE_1_S1COR, 1);
    setField(w, STE_1_S1CSH, 3);
  }
  setField(w, STE_1_STRW, p.strw ?? 0);
  setField(w, STE_1_SHCFG, 1);
  setField(w, STE_1_PRIVCFG, p.privCfg ?? 0);
  setField(w, STE_1_INSTCFG, p.instCfg ?? 0);
  setField(w, STE_2_S2VMID, p.s2Vmid ?? 0);
  if ((cfg & 2) !== 0 || p.s2Ttb !== undefined) {
    setField(w, STE_2_S2T0SZ, p.s2T0sz ?? 24);
    setField(w, STE_2_S2SL0, p.s2Sl0 ?? 1);
    setField(w, STE_2_S2IR0, 1);
    setField(w, STE_2_S2OR0, 1);
    setField(w, STE_2_S2SH0, 3);
    setField(w, STE_2_S2TG, s2tg(p.s2Granule ?? 12));
    setField(w, STE_2_S2PS, psEncoding(p.s2PsBits ?? 48));
    setField(w, STE_2_S2AA64, 1);
    setField(w, STE_2_S2AFFD, p.s2Affd ? 1 : 0);
    setField(w, STE_2_S2R, p.s2Record === false ? 0 : 1);
    setField(w, STE_3_S2TTB, p.s2Ttb ?? 0);
  }
  return w;
}

export interface CdParams {
  readonly valid?: boolean;
  readonly t0sz: number;
  readonly granule0: Granule;
  readonly ttb0: number;
  readonly epd0?: boolean;
  /** TTB1 half; disabled (EPD1 = 1) unless given. */
  readonly t1sz?: number;
  readonly granule1?: Granule;
  readonly ttb1?: number;
  /** Stage-1 output size in bits, encoded into IPS. */
  readonly ipsBits: number;
  readonly asid: number;
  readonly affd?: boolean;
  readonly tbi0?: boolean;
  readonly tbi1?: boolean;
  readonly pan?: boolean;
  readonly wxn?: boolean;
  readonly had0?: boolean;
  readonly had1?: boolean;
  /** Record faults (R); default true. Abort on fault (A); default true. */
  readonly record?: boolean;
  readonly abort?: boolean;
  readonly aset?: boolean;
  readonly mairLo?: number;
  readonly mairHi?: number;
}

function tg0(g: Granule): number {
  return g === 12 ? TG0_4K : g === 16 ? TG0_64K : TG0_16K;
}

function tg1(g: Granule): number {
  return g === 12 ? TG1_4K : g === 16 ? TG1_64K : TG1_16K;
}

/** A CD as 16 words (AArch64 tables, WBRA inner-shareable walks). */
export function encodeCd(p: CdParams): Uint32Array {
  const w = new Uint32Array(16);
  setField(w, CD_0_T0SZ, p.t0sz);
  setField(w, CD_0_TG0, tg0(p.granule0));
  setField(w, CD_0_IR0, 1);
  setField(w, CD_0_OR0, 1);
  setField(w, CD_0_SH0, 3);
  setField(w, CD_0_EPD0, p.epd0 ? 1 : 0);
  const has1 = p.ttb1 !== undefined;
  setField(w, CD_0_EPD1, has1 ? 0 : 1);
  if (has1) {
    setField(w, CD_0_T1SZ, p.t1sz ?? p.t0sz);
    setField(w, CD_0_TG1, tg1(p.granule1 ?? p.granule0));
    setField(w, CD_2_TTB1, p.ttb1 ?? 0);
  }
  setField(w, CD_0_V, p.valid === false ? 0 : 1);
  setField(w, CD_0_IPS, psEncoding(p.ipsBits));
  setField(w, CD_0_AFFD, p.affd ? 1 : 0);
  setField(w, CD_0_WXN, p.wxn ? 1 : 0);
  setField(w, CD_0_TBI0, p.tbi0 ? 1 : 0);
  setField(w, CD_0_TBI1, p.tbi1 ? 1 : 0);
  setField(w, CD_0_PAN, p.pan ? 1 : 0);
  setField(w, CD_0_AA64, 1);
  setField(w, CD_0_R, p.record === false ? 0 : 1);
  setField(w, CD_0_A, p.abort === false ? 0 : 1);
  setField(w, CD_0_ASET, p.aset ? 1 : 0);
  setField(w, CD_0_ASID, p.asid);
  setField(w, CD_1_HAD0, p.had0 ? 1 : 0);
  setField(w, CD_1_TTB0, p.ttb0);
  setField(w, CD_2_HAD1, p.had1 ? 1 : 0);
  // CD dword 3 is MAIR (words 6-7). Attr0 = Normal WB RA/WA (0xff), Attr1 = Device-nGnRE (0x04).
  w[6] = (p.mairLo ?? 0x0000_04ff) >>> 0;
  w[7] = (p.mairHi ?? 0) >>> 0;
  return w;
}

/** An L1 stream table descriptor: Span and the L2 table pointer. */
export function encodeL1std(span: number, l2Ptr: number): Uint32Array {
  const w = new Uint32Array(2);
  setField(w, L1STD_SPAN, span);
  setField(w, L1STD_L2PTR, l2Ptr);
  return w;
}

/** An L1 CD descriptor. */
export function encodeL1cd(l2Ptr: number, valid = true): Uint32Array {
  const w = new Uint32Array(2);
  setField(w, L1CD_V, valid ? 1 : 0);
  setField(w, L1CD_L2PTR, l2Ptr);
  return w;
}

// ---------------------------------------------------------------- commands

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

/** CFGI_STE_RANGE over 2^(range+1) StreamIDs; range 31 is CFGI_ALL. */
export function cmdCfgiSteRange(sid: number, range: number): Uint32Array {
  const w = cmd(CMD_CFGI_STE_RANGE);
  setField(w, CMD_0_SID, sid);
  setField(w, CMD_1_RANGE, range);
  return w;
}

export function cmdCfgiAll(): Uint32Array {
  return cmdCfgiSteRange(0, 31);
}

export function cmdCfgiCd(sid: number, ssid: number, leaf = true): Uint32Array {
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

export function cmdPrefetchConfig(sid: number, ssid = -1): Uint32Array {
  const w = cmd(CMD_PREFETCH_CONFIG);
  setField(w, CMD_0_SID, sid);
  if (ssid >= 0) {
    setField(w, CMD_0_SSV, 1);
    setField(w, CMD_0_SSID, ssid);
  }
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

/** Range/TTL fields of a by-address TLBI (§4.4.1.1). */
export interface TlbiRange {
  readonly leaf?: boolean;
  readonly num?: number;
  readonly scale?: number;
  readonly ttl?: number;
  /** TG as the granule log2 (12, 14, 16); absent = no range/TTL (TG = 0). */
  readonly granule?: Granule;
}

function addressCommand(op: number, addr: number, r: TlbiRange): Uint32Array {
  const w = cmd(op);
  // Address bits [63:12] as words (exact for page-aligned values); then the fields that share
  // word 2's low bits (Leaf, TTL, TG), which the address write would otherwise clear.
  w[2] = ((addr % 0x1_0000_0000) & 0xffff_f000) >>> 0;
  w[3] = Math.floor(addr / 0x1_0000_0000) >>> 0;
  setField(w, CMD_1_LEAF, r.leaf ? 1 : 0);
  if (r.granule !== undefined) {
    setField(w, CMD_1_TG, r.granule === 12 ? 1 : r.granule === 14 ? 2 : 3);
    setField(w, CMD_0_NUM, r.num ?? 0);
    setField(w, CMD_0_SCALE, r.scale ?? 0);
    setField(w, CMD_1_TTL, r.ttl ?? 0);
  }
  return w;
}

export function cmdTlbiNhVa(vmid: number, asid: number, va: number, r: TlbiRange = {}): Uint32Array {
  const w = addressCommand(CMD_TLBI_NH_VA, va, r);
  setField(w, CMD_0_VMID, vmid);
  setField(w, CMD_0_ASID, asid);
  return w;
}

export function cmdTlbiNhVaa(vmid: number, va: number, r: TlbiRange = {}): Uint32Array {
  const w = addressCommand(CMD_TLBI_NH_VAA, va, r);
  setField(w, CMD_0_VMID, vmid);
  return w;
}

export function cmdTlbiS2Ipa(vmid: number, ipa: number, r: TlbiRange = {}): Uint32Array {
  const w = addressCommand(CMD_TLBI_S2_IPA, ipa, r);
  setField(w, CMD_0_VMID, vmid);
  // IPA field is [51:12]: clear bits above it.
  setField(w, CMD_1_IPA, getField(w, CMD_1_IPA));
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

export function cmdTlbiEl2Asid(asid: number): Uint32Array {
  const w = cmd(CMD_TLBI_EL2_ASID);
  setField(w, CMD_0_ASID, asid);
  return w;
}

export function cmdTlbiEl2Va(asid: number, va: number, r: TlbiRange = {}): Uint32Array {
  const w = addressCommand(CMD_TLBI_EL2_VA, va, r);
  setField(w, CMD_0_ASID, asid);
  return w;
}

export function cmdTlbiEl2Vaa(va: number, r: TlbiRange = {}): Uint32Array {
  return addressCommand(CMD_TLBI_EL2_VAA, va, r);
}

export interface SyncParams {
  /** 0 none, 1 IRQ/MSI, 2 SEV. */
  readonly cs?: number;
  readonly msiAddr?: number;
  readonly msiData?: number;
  readonly msh?: number;
  readonly msiAttr?: number;
}

export function cmdSync(p: SyncParams = {}): Uint32Array {
  const w = cmd(CMD_SYNC);
  setField(w, CMD_0_CS, p.cs ?? 0);
  setField(w, CMD_0_MSH, p.msh ?? 0);
  setField(w, CMD_0_MSIATTR, p.msiAttr ?? 0);
  setField(w, CMD_0_MSIDATA, p.msiData ?? 0);
  setField(w, CMD_1_MSIADDR, p.msiAddr ?? 0);
  return w;
}

/** A raw command with an arbitrary opcode (for illegal-command tests and fuzzing). */
export function cmdRaw(
  op: number,
  fields: readonly [field: Parameters<typeof setField>[1], value: number][] = [],
): Uint32Array {
  const w = cmd(op);
  for (const [f, v] of fields) setField(w, f, v);
  return w;
}

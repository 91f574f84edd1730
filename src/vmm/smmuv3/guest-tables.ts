/**
 * The virtual SMMU's reads of the guest's own SMMUv3 structures in guest RAM: the stream table
 * (linear or 2-level, IHI 0070 §3.3, §5.1, STRTAB_BASE_CFG §6.3.25), the CD table (linear or
 * 2-level, §5.3, §5.4), and — for MSI doorbells only — a software stage-1 walk of the guest's
 * CD 0 with the reference walker (`src/hw/vmsa/walk-ref.ts`), as QEMU's vfio_prepare_msi
 * translates the doorbell through the vIOMMU. Device DMA itself is never walked here: the
 * physical SMMU walks the guest's stage 1 nested over the host's stage 2.
 *
 * Reads go through `GuestRam` (the VMM's own mapping of guest RAM); an address with no RAM behind
 * it is an external abort, reported as a structured result, never thrown.
 */

import { getField } from '../../arch/fields.ts';
import { L1CD_L2PTR, L1CD_RES0_MASKS, L1CD_V } from '../../arch/smmuv3/cd.ts';
import { STRTAB_FMT_2LVL } from '../../arch/smmuv3/registers.ts';
import {
  L1STD_L2PTR,
  L1STD_SPAN,
  PRIVCFG_PRIV,
  S1DSS_BYPASS,
  S1DSS_SSID0,
  S1FMT_4K_L2,
  S1FMT_LINEAR,
} from '../../arch/smmuv3/ste.ts';
import { ACCESS_READ, ACCESS_WRITE, s1PermBit, WALK_OK } from '../../arch/vmsa.ts';
import { decodeCd, decodeSte, type SteConfig } from '../../hw/smmuv3/config.ts';
import type { SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { refTranslate } from '../../hw/vmsa/walk-ref.ts';
import type { GuestRam } from '../memory.ts';
import type { AddressSpaceTranslation } from '../pci/iommu.ts';
import type { CdLocation } from './forward.ts';

/** The stream-table registers as the guest programmed them. */
export interface StreamTableRegs {
  /** STRTAB_BASE.ADDR (an IPA). */
  readonly base: number;
  /** STRTAB_BASE_CFG. */
  readonly cfg: number;
}

/** The outcome of looking up a StreamID's STE in the guest's stream table. */
export type SteLookup =
  | { readonly kind: 'ste'; readonly addr: number; readonly words: Uint32Array }
  /** The StreamID is beyond the table (LOG2SIZE, SIDSIZE) or its L1STD span: C_BAD_STREAMID. */
  | { readonly kind: 'bad-streamid'; readonly reason: string }
  /** The L1STD has Span = 0: no level-2 table yet (the normal state of an unused StreamID). */
  | { readonly kind: 'no-l2'; readonly reason: string }
  /** An L1STD or STE address with no guest RAM behind it: F_STE_FETCH. */
  | { readonly kind: 'fetch-abort'; readonly addr: number; readonly reason: string };

function readWords(ram: GuestRam, addr: number, count: number): Uint32Array | undefined {
  const b = ram.read(addr, count * 4);
  if (b === undefined) return undefined;
  const out = new Uint32Array(count);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < count; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}

/** SPLIT: 6, 8 or 10; other values are reserved and behave as 6 (as the hardware model decides). */
function strtabSplit(cfg: number): number {
  const split = (cfg >>> 6) & 0x1f;
  return split === 8 || split === 10 ? split : 6;
}

/** Finds a StreamID's STE the way the SMMU does (§3.3.2 linear, §3.3.3 2-level). */
export function lookupSte(ram: GuestRam, regs: StreamTableRegs, f: SmmuFeatures, sid: number): SteLookup {
  const log2Raw = regs.cfg & 0x3f;
  const log2 = Math.min(log2Raw, f.sidBits);
  if (!Number.isInteger(sid) || sid < 0 || sid >= 2 ** log2) {
    return { kind: 'bad-streamid', reason: `StreamID ${sid} >= 2^${log2} (STRTAB_BASE_CFG.LOG2SIZE)` };
  }
  let steAddr: number;
  if (f.twoLevelStreamTable && ((regs.cfg >>> 16) & 3) === STRTAB_FMT_2LVL) {
    const split = strtabSplit(regs.cfg);
    const l1Index = Math.floor(sid / 2 ** split);
    const l1Align = Math.max(6, log2Raw - split + 3);
    const l1Addr = regs.base - (regs.base % 2 ** l1Align) + 8 * l1Index;
    const d = readWords(ram, l1Addr, 2);
    if (d === undefined) return { kind: 'fetch-abort', addr: l1Addr, reason: 'L1STD is not in guest RAM' };
    const span = getField(d, L1STD_SPAN);
    if (span === 0) return { kind: 'no-l2', reason: 'L1STD.Span is 0' };
    if (span > 11 || span > split + 1)
      return { kind: 'bad-streamid', reason: `L1STD.Span = ${span} is invalid` };
    const idx = sid % 2 ** split;
    if (idx >= 2 ** (span - 1))
      return { kind: 'bad-streamid', reason: `StreamID outside the L1STD span (${span})` };
    const l2 = getField(d, L1STD_L2PTR);
    steAddr = l2 - (l2 % 2 ** (span - 1 + 6)) + 64 * idx;
  } else {
    steAddr = regs.base - (regs.base % 2 ** (log2Raw + 6)) + 64 * sid;
  }
  const words = readWords(ram, steAddr, 16);
  if (words === undefined) return { kind: 'fetch-abort', addr: steAddr, reason: 'STE is not in guest RAM' };
  return { kind: 'ste', addr: steAddr, words };
}

/** log2 of CDs per leaf table of a 2-level CD table: 6 (4KB leaves) or 10 (64KB leaves). */
function cdLeafSplit(ste: SteConfig): number {
  return ste.s1Fmt === S1FMT_4K_L2 ? 6 : 10;
}

export type CdAddress =
  | { readonly ok: true; readonly l1Addr: number; readonly cdAddr: number }
  | {
      readonly ok: false;
      readonly l1Addr: number;
      readonly event: 'C_BAD_SUBSTREAMID' | 'F_CD_FETCH';
      readonly reason: string;
    };

/** The address of CD `index` of a stage-1 STE, reading the L1CD of a 2-level table (§5.3). */
export function cdAddress(ram: GuestRam, ste: SteConfig, f: SmmuFeatures, index: number): CdAddress {
  const ptr = ste.s1ContextPtr;
  if (ste.s1CdMax === 0) return { ok: true, l1Addr: -1, cdAddr: ptr };
  if (ste.s1Fmt === S1FMT_LINEAR)
    return { ok: true, l1Addr: -1, cdAddr: ptr - (ptr % 2 ** (ste.s1CdMax + 6)) + 64 * index };
  const split = cdLeafSplit(ste);
  const l1Index = ste.s1CdMax <= split ? 0 : Math.floor(index / 2 ** split);
  const l1Entries = ste.s1CdMax <= split ? 1 : 2 ** (ste.s1CdMax - split);
  const l1Addr = ptr - (ptr % Math.max(8 * l1Entries, 64)) + 8 * l1Index;
  const d = readWords(ram, l1Addr, 2);
  if (d === undefined) return { ok: false, l1Addr, event: 'F_CD_FETCH', reason: 'L1CD is not in guest RAM' };
  if (getField(d, L1CD_V) === 0)
    return { ok: false, l1Addr, event: 'C_BAD_SUBSTREAMID', reason: 'L1CD.V is 0' };
  if (f.reservedBits === 'illegal' && ((d[0]! & L1CD_RES0_MASKS[0]!) | (d[1]! & L1CD_RES0_MASKS[1]!)) !== 0) {
    return { ok: false, l1Addr, event: 'C_BAD_SUBSTREAMID', reason: 'L1CD has RES0 bits set' };
  }
  const l2 = getField(d, L1CD_L2PTR);
  return { ok: true, l1Addr, cdAddr: l2 - (l2 % 2 ** (split + 6)) + 64 * (index % 2 ** split) };
}

/** Where the guest's CD structures of a SubstreamID are (-1 = the CD that non-PASID traffic uses). */
export function locateCd(ram: GuestRam, ste: SteConfig, f: SmmuFeatures, ssid: number): CdLocation {
  const a = cdAddress(ram, ste, f, ssid < 0 ? 0 : ssid);
  return a.ok ? { l1Addr: a.l1Addr, cdAddr: a.cdAddr } : { l1Addr: a.l1Addr, cdAddr: -1 };
}

/** The decoded STE of a StreamID, or why there is none. */
export type GuestSte =
  | { readonly ok: true; readonly ste: SteConfig }
  | { readonly ok: false; readonly reason: string };

export function guestSte(ram: GuestRam, regs: StreamTableRegs, f: SmmuFeatures, sid: number): GuestSte {
  const l = lookupSte(ram, regs, f, sid);
  if (l.kind !== 'ste') return { ok: false, reason: l.reason };
  const d = decodeSte(l.words, f, false);
  return d.ok ? { ok: true, ste: d.value } : { ok: false, reason: d.reason };
}

/** What the SMMU does with a stream's non-PASID traffic when it is disabled or has no STE. */
export interface TranslateState {
  readonly smmuen: boolean;
  readonly gbpaAbort: boolean;
  readonly regs: StreamTableRegs;
}

const fail = (reason: string): AddressSpaceTranslation => ({ ok: false, reason });

/**
 * Translates a device address without a PASID through the guest's configuration, in software:
 * SMMUEN = 0 → GBPA (bypass or abort); STE abort → fail; bypass → identity; stage 1 → CD 0 when
 * S1CDMax = 0 or S1DSS = SSID0 (S1DSS = bypass → identity, terminate → fail), then the reference
 * walk of the CD's tables over guest RAM. Decision: the walk needs stage-1 write (or read)
 * permission at the privilege STE.PRIVCFG gives (unprivileged unless forced), as a device's MSI
 * write would; `pageSize` is the leaf's size (4 KiB for identity).
 */
export function translateNoPasid(
  ram: GuestRam,
  st: TranslateState,
  f: SmmuFeatures,
  sid: number,
  iova: number,
  isWrite: boolean,
): AddressSpaceTranslation {
  if (!Number.isSafeInteger(iova) || iova < 0) return fail(`address ${iova} is not a valid input address`);
  const identity: AddressSpaceTranslation = { ok: true, addr: iova, pageSize: 0x1000 };
  if (!st.smmuen) return st.gbpaAbort ? fail('SMMUEN = 0 and GBPA.ABORT = 1') : identity;
  const g = guestSte(ram, st.regs, f, sid);
  if (!g.ok) return fail(`StreamID ${sid}: ${g.reason}`);
  const ste = g.ste;
  if (ste.abort) return fail(`StreamID ${sid}: STE.Config aborts`);
  if (!ste.s1) return identity;
  if (ste.s1CdMax !== 0 && ste.s1Dss === S1DSS_BYPASS) return identity;
  if (ste.s1CdMax !== 0 && ste.s1Dss !== S1DSS_SSID0)
    return fail(`StreamID ${sid}: S1DSS terminates non-PASID traffic`);
  const at = cdAddress(ram, ste, f, 0);
  if (!at.ok) return fail(`StreamID ${sid}: ${at.reason}`);
  const words = readWords(ram, at.cdAddr, 16);
  if (words === undefined)
    return fail(`StreamID ${sid}: CD 0 at 0x${at.cdAddr.toString(16)} is not in guest RAM`);
  const cd = decodeCd(words, ste, f);
  if (!cd.ok) return fail(`StreamID ${sid}: ${cd.reason}`);
  const need = s1PermBit(isWrite ? ACCESS_WRITE : ACCESS_READ, ste.privCfg === PRIVCFG_PRIV);
  const r = refTranslate(ram.port(), cd.value.s1, null, BigInt(iova), need, 0);
  if (r.fault !== WALK_OK)
    return fail(`StreamID ${sid}: stage-1 fault ${r.fault} translating 0x${iova.toString(16)}`);
  if (r.pa >= 2n ** 53n) return fail(`StreamID ${sid}: output address beyond 2^53`);
  return { ok: true, addr: Number(r.pa), pageSize: 2 ** r.shift };
}

/**
 * The reference SMMUv3 translation: the transaction flow of IHI 0070 §3.3 / §7.3.22 written out
 * plainly, with BigInt addresses, no caches of any kind, every structure fetched afresh from
 * memory, and the BigInt reference walker (walk-ref.ts). It shares only the structure decoders
 * (decodeSte / decodeCd, which are the spec's validity rules) and the record encoder with the
 * device model. Property tests compare it with `Smmu.transact` on random tables and requests:
 * both must give the same physical address, or the same event record and the same disposition.
 */

import { join64 } from '../../arch/bits.ts';
import { getField } from '../../arch/fields.ts';
import { L1CD_L2PTR, L1CD_RES0_MASKS, L1CD_V } from '../../arch/smmuv3/cd.ts';
import {
  C_BAD_CD,
  C_BAD_STE,
  C_BAD_STREAMID,
  C_BAD_SUBSTREAMID,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_STE_FETCH,
  F_STREAM_DISABLED,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import { L1STD_L2PTR, L1STD_SPAN } from '../../arch/smmuv3/ste.ts';
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  CLASS_CD,
  CLASS_IN,
  PERM,
  s2PermBit,
  WALK_EABT,
  WALK_OK,
} from '../../arch/vmsa.ts';
import type { PhysMem } from '../memory.ts';
import { refTranslate } from '../vmsa/walk-ref.ts';
import { type CdConfig, decodeCd, decodeSte, type SteConfig } from './config.ts';
import { type EventInit, encodeEvent } from './event-record.ts';
import type { SmmuFeatures } from './features.ts';
import { TXN_ABORT, TXN_OK, TXN_RAZ_WI } from './smmu.ts';

/** The register state translation depends on. */
export interface TranslationRegisters {
  readonly smmuen: boolean;
  readonly gbpaAbort: boolean;
  readonly strtabBase: number;
  readonly strtabCfg: number;
  readonly e2h: boolean;
  readonly recinvsid: boolean;
}

export interface RefTxn {
  readonly status: number;
  /** Physical address of the first byte when status is TXN_OK. */
  readonly pa: bigint;
  /** The event record (8 words), or null for none (success, or a silent abort). */
  readonly record: Uint32Array | null;
  /** False when the event exists but CD.R / STE.S2R / CR2.RECINVSID suppress it. */
  readonly recorded: boolean;
}

const okTxn = (pa: bigint): RefTxn => ({ status: TXN_OK, pa, record: null, recorded: false });
const silent = (): RefTxn => ({ status: TXN_ABORT, pa: 0n, record: null, recorded: false });
const evt = (init: EventInit, recorded = true, status = TXN_ABORT): RefTxn => ({
  status,
  pa: 0n,
  record: encodeEvent(init),
  recorded,
});

function readWords(mem: PhysMem, addr: bigint, count: number, oasBits: number): Uint32Array | undefined {
  if (addr + BigInt(count * 4) > 1n << BigInt(oasBits)) return undefined;
  const bytes = mem.read(Number(addr), count * 4);
  return bytes === undefined ? undefined : new Uint32Array(bytes.buffer, bytes.byteOffset, count);
}

const alignDownBig = (a: bigint, log2: number): bigint => a & ~((1n << BigInt(log2)) - 1n);

/** One translation of the first byte of a transaction. */
export function referenceTranslate(
  mem: PhysMem,
  f: SmmuFeatures,
  regs: TranslationRegisters,
  sid: number,
  ssid: number,
  iova: number,
  access: Access,
  privileged: boolean,
  qemuOrder = false,
): RefTxn {
  const input = BigInt(iova);
  const oas = 1n << BigInt(f.oasBits);
  if (!regs.smmuen) return regs.gbpaAbort || input >= oas ? silent() : okTxn(input);
  const ids = { streamId: sid, substreamId: ssid };

  // ---- STE
  const log2Raw = regs.strtabCfg & 0x3f;
  const log2 = Math.min(log2Raw, f.sidBits);
  if (sid >= 2 ** log2) return evt({ id: C_BAD_STREAMID, ...ids }, regs.recinvsid);
  const base = BigInt(regs.strtabBase);
  let steAddr: bigint;
  const twoLevel = f.twoLevelStreamTable && ((regs.strtabCfg >>> 16) & 3) === 1;
  if (twoLevel) {
    const rawSplit = (regs.strtabCfg >>> 6) & 0x1f;
    const split = rawSplit === 8 || rawSplit === 10 ? rawSplit : 6;
    const l1Addr =
      alignDownBig(base, Math.max(6, log2Raw - split + 3)) + 8n * BigInt(Math.floor(sid / 2 ** split));
    const l1 = readWords(mem, l1Addr, 2, f.oasBits);
    if (l1 === undefined) return evt({ id: F_STE_FETCH, ...ids, fetchAddr: Number(l1Addr) });
    const span = getField(l1, L1STD_SPAN);
    if (span === 0 || span > 11 || span > split + 1)
      return evt({ id: C_BAD_STREAMID, ...ids }, regs.recinvsid);
    const idx = sid % 2 ** split;
    if (idx >= 2 ** (span - 1)) return evt({ id: C_BAD_STREAMID, ...ids }, regs.recinvsid);
    steAddr = alignDownBig(BigInt(getField(l1, L1STD_L2PTR)), span - 1 + 6) + 64n * BigInt(idx);
  } else {
    steAddr = alignDownBig(base, log2Raw + 6) + 64n * BigInt(sid);
  }
  const steWords = readWords(mem, steAddr, 16, f.oasBits);
  if (steWords === undefined) return evt({ id: F_STE_FETCH, ...ids, fetchAddr: Number(steAddr) });
  const steDec = decodeSte(steWords, f, regs.e2h);
  if (!steDec.ok) return evt({ id: C_BAD_STE, ...ids });
  const ste = steDec.value;
  if (ste.abort) return silent();

  // ---- SubstreamID
  if (ssid >= 0 && (!ste.s1 || ste.s1CdMax === 0 || ssid >= 2 ** ste.s1CdMax)) {
    return evt({ id: C_BAD_SUBSTREAMID, ...ids });
  }
  const priv = ste.privCfg === 3 ? true : ste.privCfg === 2 ? false : privileged;
  let acc = access;
  if (access !== ACCESS_WRITE && ste.instCfg === 3) acc = ACCESS_EXEC;
  else if (access === ACCESS_EXEC && ste.instCfg === 2) acc = ACCESS_READ;
  const fault = {
    ...ids,
    rnw: acc !== ACCESS_WRITE,
    ind: acc === ACCESS_EXEC,
    pnu: priv,
    inputHi: 0,
    inputLo: 0,
  };
  fault.inputHi = Math.floor(iova / 2 ** 32);
  fault.inputLo = iova % 2 ** 32;
  if (!ste.s1 && !ste.s2) {
    return input >= oas ? evt({ id: F_ADDR_SIZE, ...fault, s2: false, cls: CLASS_IN }) : okTxn(input);
  }

  // ---- CD (or stage-1 bypass)
  let s1Bypassed = !ste.s1;
  let cdIndex = ssid;
  if (ste.s1) {
    if (ste.s1CdMax === 0) cdIndex = 0;
    else if (ssid < 0) {
      if (ste.s1Dss === 1) s1Bypassed = true;
      else if (ste.s1Dss === 2) cdIndex = 0;
      else return evt({ id: F_STREAM_DISABLED, streamId: sid });
    } else if (ssid === 0 && ste.s1Dss === 2) return evt({ id: F_STREAM_DISABLED, streamId: sid });
  }
  const s2 = ste.s2 ? ste.s2Regime : null;
  let cd = null;
  if (!s1Bypassed) {
    const r = fetchCd(mem, f, ste, cdIndex, fault);
    if (isRefTxn(r)) return r;
    cd = r;
  } else if (input >= 1n << BigInt(f.oasBits)) {
    return evt({ id: F_ADDR_SIZE, ...fault, s2: false, cls: CLASS_IN });
  }

  // ---- walk
  const s1Need = 1 << (acc + (priv ? 0 : 3));
  const s2Need = s2PermBit(acc, priv);
  const res = refTranslate(mem, cd === null ? null : cd.s1, s2, input, s1Need, s2Need, { qemuOrder });
  if (res.fault === WALK_OK) return okTxn(res.pa);
  const id = [0, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT][res.fault]!;
  const init: EventInit = {
    id,
    ...fault,
    s2: res.s2,
    cls: res.cls,
    ttrnw: true,
    ipa: res.s2 ? Number(res.ipa) : 0,
    fetchAddr: res.fault === WALK_EABT ? Number(res.fetch) : 0,
  };
  if (res.fault === WALK_EABT) return evt(init);
  if (res.s2) return evt(init, ste.s2Record);
  return evt(init, cd === null || cd.record, cd === null || cd.abortOnFault ? TXN_ABORT : TXN_RAZ_WI);
}

function isRefTxn(v: CdConfig | RefTxn): v is RefTxn {
  return 'status' in v;
}

/** Fetches and decodes CD `index` of `ste`, or returns the event the attempt raised. */
function fetchCd(
  mem: PhysMem,
  f: SmmuFeatures,
  ste: SteConfig,
  index: number,
  fault: Omit<EventInit, 'id'>,
): CdConfig | RefTxn {
  const ids = { streamId: fault.streamId, substreamId: fault.substreamId ?? -1 };
  /** Reads a structure at an address that is an IPA when the stream is nested. */
  const fetch = (addr: bigint, words: number): Uint32Array | RefTxn => {
    let pa = addr;
    if (ste.s2 && ste.s2Regime !== null) {
      const t = refTranslate(mem, null, ste.s2Regime, addr, 0, PERM.S2_R);
      if (t.fault !== WALK_OK) {
        const id = [0, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT][t.fault]!;
        const init: EventInit = {
          id,
          ...fault,
          s2: true,
          cls: CLASS_CD,
          ttrnw: true,
          ipa: Number(addr),
          fetchAddr: t.fault === WALK_EABT ? Number(t.fetch) : 0,
        };
        return evt(init, t.fault === WALK_EABT || ste.s2Record);
      }
      pa = t.pa;
    }
    const w = readWords(mem, pa, words, f.oasBits);
    return w ?? evt({ id: F_CD_FETCH, ...ids, fetchAddr: Number(pa) });
  };
  const ptr = BigInt(ste.s1ContextPtr);
  let cdAddr: bigint;
  if (ste.s1CdMax === 0) cdAddr = ptr;
  else if (ste.s1Fmt === 0) cdAddr = alignDownBig(ptr, ste.s1CdMax + 6) + 64n * BigInt(index);
  else {
    const split = ste.s1Fmt === 1 ? 6 : 10;
    const l1Index = ste.s1CdMax <= split ? 0 : Math.floor(index / 2 ** split);
    const l1Bytes = ste.s1CdMax <= split ? 8 : 8 * 2 ** (ste.s1CdMax - split);
    const l1 = fetch(alignDownBig(ptr, Math.max(Math.log2(l1Bytes), 6)) + 8n * BigInt(l1Index), 2);
    if (!(l1 instanceof Uint32Array)) return l1;
    const badSsid = evt({ id: C_BAD_SUBSTREAMID, streamId: ids.streamId, substreamId: index });
    if (getField(l1, L1CD_V) === 0) return badSsid;
    if (
      f.reservedBits === 'illegal' &&
      ((l1[0]! & L1CD_RES0_MASKS[0]!) | (l1[1]! & L1CD_RES0_MASKS[1]!)) !== 0
    ) {
      return badSsid;
    }
    const l2 = alignDownBig(BigInt(getField(l1, L1CD_L2PTR)), split + 6);
    if (!ste.s2 && l2 >= 1n << BigInt(f.oasBits)) return badSsid;
    cdAddr = l2 + 64n * BigInt(index % 2 ** split);
  }
  const words = fetch(cdAddr, 16);
  if (!(words instanceof Uint32Array)) return words;
  const d = decodeCd(words, ste, f);
  return d.ok ? d.value : evt({ id: C_BAD_CD, ...ids });
}

/** Compares numbers from events exactly (helper for tests printing differences). */
export function describeRef(r: RefTxn): string {
  if (r.status === TXN_OK) return `ok pa=0x${r.pa.toString(16)}`;
  if (r.record === null) return 'silent abort';
  return `event 0x${(r.record[0]! & 0xff).toString(16)} words=${[...r.record].map((w) => w.toString(16)).join(',')} recorded=${r.recorded} input=${join64(r.record[5]!, r.record[4]!)}`;
}

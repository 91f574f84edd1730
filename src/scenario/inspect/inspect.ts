/**
 * The offline decoder behind `vsva inspect`: given memory images and SMMU register values, it
 * decodes what an SMMUv3 would fetch for a transaction {StreamID, SubstreamID, IOVA} — the stream
 * table and the L1STD (IHI 0070 §5.1, §6.3.24-25), the STE (§5.2), the CD table and L1CD (§5.3),
 * the CD (§5.4), and the translation walk (§3.4, Arm ARM D8) with every descriptor read — and
 * says what the SMMU would do: the PA, or the event it would record (§7.3).
 *
 * Nothing here re-implements the architecture's rules. The STE and CD validity checks are
 * src/hw/smmuv3/config.ts (decodeSte / decodeCd), field positions are the tables of
 * src/arch/smmuv3/*, walks are the reference walker (src/hw/vmsa/walk-ref.ts) reading through a
 * recording memory, and the final verdict is the uncached reference SMMU
 * (src/hw/smmuv3/reference.ts), which property tests hold to the device model. What this file adds
 * is the *narrative*: where each structure lives, the reads made to reach it, and which event a
 * step would raise. If that narrative and the reference verdict ever disagree, the report says so
 * in `problems`.
 *
 * Bad input never throws: missing registers, a bad query or absent memory are reported.
 */

import { hex } from '../../arch/bits.ts';
import { type Field, getField } from '../../arch/fields.ts';
import {
  CD_FIELDS,
  L1CD_FIELDS,
  L1CD_L2PTR,
  L1CD_RES0_MASKS,
  L1CD_V,
  tg0Granule,
  tg1Granule,
} from '../../arch/smmuv3/cd.ts';
import {
  C_BAD_CD,
  C_BAD_STE,
  C_BAD_STREAMID,
  C_BAD_SUBSTREAMID,
  EVT_CLASS_NAMES,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_STE_FETCH,
  F_STREAM_DISABLED,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import { L1STD_FIELDS, L1STD_L2PTR, L1STD_SPAN, STE_FIELDS } from '../../arch/smmuv3/ste.ts';
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  CLASS_CD,
  CLASS_IN,
  type Granule,
  granuleName,
  PERM,
  psBits,
  s1PermBit,
  s2PermBit,
  WALK_EABT,
  WALK_FAULT_NAMES,
  WALK_OK,
} from '../../arch/vmsa.ts';
import { type CdConfig, decodeCd, decodeSte, type SteConfig, WORLD_NAMES } from '../../hw/smmuv3/config.ts';
import { decodeEvent, type EventInit, encodeEvent, eventFields } from '../../hw/smmuv3/event-record.ts';
import type { SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { referenceTranslate, type TranslationRegisters } from '../../hw/smmuv3/reference.ts';
import { TXN_STATUS_NAMES } from '../../hw/smmuv3/smmu.ts';
import { type StageRegime, s2StartLevel } from '../../hw/vmsa/regime.ts';
import { type RefResult, refTranslate } from '../../hw/vmsa/walk-ref.ts';
import { ImageMemory, type MemoryImage } from './images.ts';
import {
  describeRegisters,
  featuresFromIdrs,
  normaliseRegisters,
  type RegisterReport,
  type RegisterValues,
  translationRegisters,
} from './registers.ts';
import { labelStage2, labelTranslation, type WalkStep } from './walk.ts';

// =================================================================== input

export type AccessName = 'read' | 'write' | 'exec';

export interface InspectQuery {
  readonly sid: number;
  /** SubstreamID (PASID); absent = the transaction has none. */
  readonly ssid?: number;
  /** Address to translate; absent = decode the configuration only. */
  readonly iova?: number;
  readonly access?: AccessName;
  /** Privileged transaction (PnU = 1); default false (a user-space DMA). */
  readonly privileged?: boolean;
}

export interface InspectInput {
  readonly images: readonly MemoryImage[];
  readonly registers: RegisterValues;
  readonly query?: InspectQuery;
}

// =================================================================== report

/** An event record as the SMMU would write it: only the fields its layout has (§7.3). */
export interface EventReport {
  readonly id: number;
  readonly name: string;
  readonly fields: Readonly<Record<string, number | string | boolean>>;
}

export interface FieldReport {
  /** The spec's field name. */
  readonly name: string;
  readonly dword: number;
  /** Bit range within the dword, "[63:59]". */
  readonly bits: string;
  /** Numbers for values, hex strings for addresses and values wider than 32 bits. */
  readonly value: number | string;
  readonly meaning?: string;
}

export interface StructureReport {
  readonly kind: 'STE' | 'CD';
  /** Physical address read. */
  readonly addr: string;
  /** Nested CD: the IPA (the STE's S1ContextPtr side), translated by stage 2 to `addr`. */
  readonly ipa?: string;
  /** The read aborted (absent memory). */
  readonly absent: boolean;
  /** The 8 dwords as read. */
  readonly raw: readonly string[];
  readonly fields: readonly FieldReport[];
  readonly valid: boolean;
  /** Why the structure is invalid or ILLEGAL (the model's words; the record cannot say). */
  readonly reason?: string;
  /** One-line meaning ("nested, S2VMID 5, ..."). */
  readonly summary?: string;
  /** The event fetching or using this structure raises (F_STE_FETCH, C_BAD_STE, F_CD_FETCH, C_BAD_CD). */
  readonly event?: EventReport;
}

/** A 64-bit table entry read (L1STD, L1CD). */
export interface DescriptorReport {
  readonly index: number;
  readonly addr: string;
  readonly ipa?: string;
  /** null: the read aborted. */
  readonly value: string | null;
  readonly fields: Readonly<Record<string, number | string>>;
}

/** A structure fetched at an IPA (nested stream): its stage-2 walk and resulting PA. */
export interface Stage2FetchReport {
  readonly what: string;
  readonly ipa: string;
  readonly reads: readonly WalkStep[];
  /** null when stage 2 faulted. */
  readonly pa: string | null;
  readonly fault?: string;
}

export interface StreamTableReport {
  readonly base: string;
  readonly format: 'linear' | '2-level';
  /** STRTAB_BASE_CFG.LOG2SIZE as written, and as used (capped by IDR1.SIDSIZE). */
  readonly log2Size: number;
  readonly effectiveLog2Size: number;
  /** 2-level: SPLIT as written and as used (reserved values behave as 6). */
  readonly split?: number;
  readonly effectiveSplit?: number;
  readonly sid?: number;
  readonly l1?: DescriptorReport;
  /** Where STE `sid` lives, or null when the stream table does not reach it. */
  readonly steAddr?: string | null;
  readonly reason?: string;
  readonly event?: EventReport;
}

export interface CdTableReport {
  readonly format: string;
  readonly s1ContextPtr: string;
  readonly s1CdMax: number;
  /** The table holds IPAs (nested stream): every address below is walked through stage 2. */
  readonly nested: boolean;
  /** Which CD the transaction uses, and why. */
  readonly cdIndex: number | null;
  readonly why: string;
  readonly l1?: DescriptorReport;
  /** Address of the CD (IPA when nested), or null when not reached. */
  readonly cdAddr?: string | null;
  readonly stage2Fetches: readonly Stage2FetchReport[];
  readonly reason?: string;
  readonly event?: EventReport;
}

export interface RegimeReport {
  readonly stage: 1 | 2;
  readonly granule: string;
  readonly inputBits: number;
  readonly startLevel: number;
  /** Stage 2: tables concatenated at the start level. */
  readonly concatenated: number;
  readonly ttb: string;
  readonly oaBits: number;
}

export type TranslationResult =
  | {
      readonly ok: true;
      readonly pa: string;
      readonly ipa: string;
      /** log2 of the mapping size. */
      readonly pageShift: number;
      /** Permissions granted (PERM bit names: S1_PR .. S2_UX). */
      readonly perms: readonly string[];
    }
  | {
      readonly ok: false;
      /** translation / address size / access flag / permission / external abort. */
      readonly fault: string;
      readonly stage: 1 | 2;
      readonly class: string;
      readonly ipa?: string;
      readonly fetchAddr?: string;
      readonly event: EventReport;
    };

export interface TranslationReport {
  readonly iova: string;
  readonly access: AccessName;
  readonly privileged: boolean;
  /** After STE.INSTCFG / PRIVCFG overrides. */
  readonly effectiveAccess: AccessName;
  readonly effectivePrivileged: boolean;
  readonly stage1: RegimeReport | null;
  readonly stage2: RegimeReport | null;
  readonly reads: readonly WalkStep[];
  /** Descriptor reads of the walk (what the SMMU's stats.descReads counts for a cold walk). */
  readonly descReads: number;
  readonly result: TranslationResult;
}

export interface VerdictReport {
  readonly status: 'ok' | 'abort' | 'raz/wi';
  readonly pa?: string;
  /** The event raised (absent for a success or a silent abort). */
  readonly event?: EventReport;
  /** False when the event exists but CD.R / STE.S2R / CR2.RECINVSID keep it off the queue. */
  readonly recorded?: boolean;
  readonly source: string;
}

export interface InspectReport {
  /** No problems: the input was complete and the decode consistent. */
  readonly ok: boolean;
  readonly problems: readonly string[];
  /** Assumptions made (defaults for missing registers) and observations. */
  readonly notes: readonly string[];
  readonly images: readonly { base: string; size: number; source?: string }[];
  readonly registers: readonly RegisterReport[];
  readonly features: Readonly<Record<string, number | boolean | string>>;
  readonly query: {
    sid: number;
    ssid: number | null;
    iova: string | null;
    access: AccessName;
    privileged: boolean;
  } | null;
  readonly streamTable: StreamTableReport | null;
  readonly ste: StructureReport | null;
  readonly cdTable: CdTableReport | null;
  readonly cd: StructureReport | null;
  readonly translation: TranslationReport | null;
  readonly verdict: VerdictReport | null;
}

// =================================================================== helpers

const ACCESS_NAMES: readonly AccessName[] = ['read', 'write', 'exec'];
const ACCESS_BY_NAME: Readonly<Record<AccessName, Access>> = {
  read: ACCESS_READ,
  write: ACCESS_WRITE,
  exec: ACCESS_EXEC,
};
const WALK_EVENTS = [0, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT] as const;

function alignDownBig(a: number, log2: number): number {
  return a - (a % 2 ** log2);
}

/** Addresses in a report are hex strings. */
const ADDRESS_FIELDS = new Set(['InputAddr', 'IPA', 'FetchAddr']);

/** An event as its 32-byte record would carry it: encoded and decoded, so it is exactly that. */
export function eventReport(init: EventInit | Uint32Array): EventReport {
  const e = decodeEvent(init instanceof Uint32Array ? init : encodeEvent(init));
  const fields: Record<string, number | string | boolean> = {};
  for (const [name, v] of Object.entries(eventFields(e)))
    fields[name] = ADDRESS_FIELDS.has(name) ? hex(v as number | bigint) : (v as number | string | boolean);
  return { id: e.id, name: e.name, fields };
}

function fieldValue(words: ArrayLike<number>, f: Field): number | string {
  if (f.kind === 'addr') return hex(getField(words, f));
  if (f.hi - f.lo + 1 > 32) {
    const lo = BigInt(words[f.dword * 2] ?? 0);
    const hi = BigInt(words[f.dword * 2 + 1] ?? 0);
    const v = ((hi << 32n) | lo) >> BigInt(f.lo);
    return hex(v & ((1n << BigInt(f.hi - f.lo + 1)) - 1n));
  }
  return getField(words, f);
}

type Meanings = Readonly<Record<string, (v: number, w: Uint32Array) => string | undefined>>;

const PS_MEANING = (v: number): string => (psBits(v) < 0 ? 'reserved (52 bits)' : `${psBits(v)}-bit`);

const STE_MEANINGS: Meanings = {
  V: (v) => (v ? 'valid' : 'invalid'),
  Config: (v) =>
    ({ 0: 'abort', 4: 'bypass', 5: 'stage 1', 6: 'stage 2', 7: 'nested (stage 1 + stage 2)' })[v] ??
    'reserved (abort)',
  S1Fmt: (v) =>
    [
      'linear',
      '2-level, 4KB leaf tables (64 CDs)',
      '2-level, 64KB leaf tables (1024 CDs)',
      'reserved (linear)',
    ][v],
  S1CDMax: (v) => (v === 0 ? 'one CD, substreams disabled' : `${2 ** v} CDs`),
  S1DSS: (v) => ['terminate', 'bypass stage 1', 'use substream 0', 'reserved (terminate)'][v],
  STRW: (v) => ['NS-EL1', 'reserved', 'NS-EL2', 'reserved'][v],
  PRIVCFG: (v) => ['incoming', 'reserved (incoming)', 'unprivileged', 'privileged'][v],
  INSTCFG: (v) => ['incoming', 'reserved (incoming)', 'data', 'instruction'][v],
  S2T0SZ: (v) => `${64 - v}-bit IPA`,
  S2TG: (v) => ['4KB', '64KB', '16KB', 'reserved'][v],
  S2PS: PS_MEANING,
  S2SL0: (v, w) => {
    const tg = getField(w, STE_FIELDS.find((f) => f.name === 'S2TG')!);
    const g = ([12, 16, 14] as const)[tg];
    if (g === undefined) return undefined;
    const lvl = s2StartLevel(g, v, 52, true);
    return lvl < 0 ? 'reserved' : `start at level ${lvl}`;
  },
  S2AA64: (v) => (v ? 'AArch64 tables' : 'AArch32 tables'),
  S2R: (v) => (v ? 'record stage-2 faults' : 'do not record stage-2 faults'),
};

const CD_MEANINGS: Meanings = {
  V: (v) => (v ? 'valid' : 'invalid'),
  T0SZ: (v) => `${64 - v}-bit VA`,
  T1SZ: (v) => `${64 - v}-bit VA`,
  TG0: (v) => (tg0Granule(v) < 0 ? 'reserved' : granuleName(tg0Granule(v) as Granule)),
  TG1: (v) => (tg1Granule(v) < 0 ? 'reserved' : granuleName(tg1Granule(v) as Granule)),
  EPD0: (v) => (v ? 'TTB0 walks disabled' : 'TTB0 walks enabled'),
  EPD1: (v) => (v ? 'TTB1 walks disabled' : 'TTB1 walks enabled'),
  IPS: PS_MEANING,
  AA64: (v) => (v ? 'AArch64 tables' : 'AArch32 tables'),
  R: (v) => (v ? 'record faults' : 'do not record faults'),
  A: (v) => (v ? 'abort on fault' : 'RAZ/WI on fault'),
};

function decodeStructure(
  kind: 'STE' | 'CD',
  words: Uint32Array,
  table: readonly Field[],
  meanings: Meanings,
): FieldReport[] {
  return table
    .map((f) => {
      const value = fieldValue(words, f);
      const m = typeof value === 'number' ? meanings[f.name]?.(value, words) : undefined;
      return {
        name: f.name,
        dword: f.dword,
        bits: f.hi === f.lo ? `[${f.hi}]` : `[${f.hi}:${f.lo}]`,
        value,
        ...(m !== undefined ? { meaning: m } : {}),
      };
    })
    .filter((r) => kind === 'CD' || r.name !== 'IMPLEMENTATION_DEFINED' || r.value !== 0);
}

function rawDwords(words: Uint32Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    out.push(
      `0x${(words[2 * i + 1] ?? 0).toString(16).padStart(8, '0')}${(words[2 * i] ?? 0).toString(16).padStart(8, '0')}`,
    );
  }
  return out;
}

function regimeReport(r: StageRegime): RegimeReport {
  return {
    stage: r.stage,
    granule: granuleName(r.granule),
    inputBits: r.inputBits,
    startLevel: r.startLevel,
    concatenated: 2 ** Math.max(0, r.startBits - (r.granule - 3)),
    ttb: hex((BigInt(r.ttbHi) << 32n) | BigInt(r.ttbLo)),
    oaBits: r.oaBits,
  };
}

function permNames(p: number): string[] {
  return Object.entries(PERM)
    .filter(([, bit]) => (p & bit) !== 0)
    .map(([n]) => n);
}

function featureSummary(f: SmmuFeatures): Record<string, number | boolean | string> {
  return {
    stage1: f.stage1,
    stage2: f.stage2,
    sidBits: f.sidBits,
    ssidBits: f.ssidBits,
    oasBits: f.oasBits,
    granules: f.granules.map((g) => granuleName(g)).join(', '),
    twoLevelStreamTable: f.twoLevelStreamTable,
    twoLevelCdTable: f.twoLevelCdTable,
    hyp: f.hyp,
    asid16: f.asid16,
    vmid16: f.vmid16,
    smallTables: f.smallTables,
    termModel: f.termModel,
    reservedBits: f.reservedBits,
    faultOrder: f.faultOrder,
  };
}

// =================================================================== the decode

/** What a decode step ended in: a PA, an event, a silent abort, or "not decided here". */
type Outcome =
  | { kind: 'pa'; pa: bigint }
  | { kind: 'event'; id: number }
  | { kind: 'silent' }
  | { kind: 'none' };

interface Query {
  readonly sid: number;
  readonly ssid: number;
  readonly iova: number | null;
  readonly access: AccessName;
  readonly privileged: boolean;
}

function checkQuery(q: InspectQuery | undefined, problems: string[]): Query | null {
  if (q === undefined) return null;
  const before = problems.length;
  if (!Number.isInteger(q.sid) || q.sid < 0 || q.sid >= 2 ** 32) {
    problems.push(`query: sid ${q.sid} is not a 32-bit StreamID`);
  }
  if (q.ssid !== undefined && (!Number.isInteger(q.ssid) || q.ssid < -1 || q.ssid >= 2 ** 20)) {
    problems.push(`query: ssid ${q.ssid} is not a 20-bit SubstreamID`);
  }
  if (q.iova !== undefined && (!Number.isSafeInteger(q.iova) || q.iova < 0)) {
    problems.push(`query: iova ${q.iova} is not an address below 2^53`);
  }
  if (q.access !== undefined && !ACCESS_NAMES.includes(q.access)) {
    problems.push(`query: access "${String(q.access)}" is not one of read, write, exec`);
  }
  if (problems.length > before) return null;
  return {
    sid: q.sid,
    ssid: q.ssid ?? -1,
    iova: q.iova ?? null,
    access: q.access ?? 'read',
    privileged: q.privileged === true,
  };
}

class Decoder {
  readonly mem: ImageMemory;
  readonly f: SmmuFeatures;
  readonly regs: TranslationRegisters;
  readonly q: Query;
  /** Access and privilege after the STE's overrides (set once the STE is decoded). */
  acc: Access;
  priv: boolean;

  constructor(mem: ImageMemory, f: SmmuFeatures, regs: TranslationRegisters, q: Query) {
    this.mem = mem;
    this.f = f;
    this.regs = regs;
    this.q = q;
    this.acc = ACCESS_BY_NAME[q.access];
    this.priv = q.privileged;
  }

  /** Reads `count` words at a PA as the SMMU fetches structures: beyond OAS or absent → undefined. */
  fetchWords(addr: number, count: number): Uint32Array | undefined {
    if (addr + count * 4 > 2 ** this.f.oasBits) return undefined;
    const bytes = this.mem.read(addr, count * 4);
    return bytes === undefined ? undefined : new Uint32Array(bytes.slice().buffer);
  }

  /** The fault fields of events about this transaction (after STE overrides). */
  faultFields(): Omit<EventInit, 'id'> {
    const iova = this.q.iova ?? 0;
    return {
      streamId: this.q.sid,
      substreamId: this.q.ssid,
      rnw: this.acc !== ACCESS_WRITE,
      ind: this.acc === ACCESS_EXEC,
      pnu: this.priv,
      inputHi: Math.floor(iova / 2 ** 32),
      inputLo: iova % 2 ** 32,
    };
  }

  ids(): { streamId: number; substreamId: number } {
    return { streamId: this.q.sid, substreamId: this.q.ssid };
  }

  // ---------------------------------------------------------------- stream table (§5.1, §6.3.25)

  streamTable(): { report: StreamTableReport; steAddr: number | null; outcome: Outcome } {
    const cfg = this.regs.strtabCfg;
    const log2Raw = cfg & 0x3f;
    const log2 = Math.min(log2Raw, this.f.sidBits);
    const fmtRaw = (cfg >>> 16) & 3;
    const twoLevel = this.f.twoLevelStreamTable && fmtRaw === 1;
    const base = this.regs.strtabBase;
    const sid = this.q.sid;
    const common = {
      base: hex(base),
      format: twoLevel ? ('2-level' as const) : ('linear' as const),
      log2Size: log2Raw,
      effectiveLog2Size: log2,
      sid,
    };
    const recinvsid = this.regs.recinvsid ? '' : ' (not recorded: CR2.RECINVSID = 0)';
    const badSid = (reason: string, extra: Partial<StreamTableReport> = {}) => ({
      report: {
        ...common,
        ...extra,
        steAddr: null,
        reason: reason + recinvsid,
        event: eventReport({ id: C_BAD_STREAMID, ...this.ids() }),
      },
      steAddr: null,
      outcome: { kind: 'event', id: C_BAD_STREAMID } as Outcome,
    });
    if (sid >= 2 ** log2) {
      return badSid(`StreamID ${sid} >= 2^${log2} (LOG2SIZE ${log2Raw}, SIDSIZE ${this.f.sidBits})`);
    }
    if (!twoLevel) {
      const steAddr = alignDownBig(base, log2Raw + 6) + 64 * sid;
      return { report: { ...common, steAddr: hex(steAddr) }, steAddr, outcome: { kind: 'none' } };
    }
    const rawSplit = (cfg >>> 6) & 0x1f;
    const split = rawSplit === 8 || rawSplit === 10 ? rawSplit : 6;
    const splitInfo = { split: rawSplit, effectiveSplit: split };
    const l1Index = Math.floor(sid / 2 ** split);
    const l1Addr = alignDownBig(base, Math.max(6, log2Raw - split + 3)) + 8 * l1Index;
    const l1 = this.fetchWords(l1Addr, 2);
    if (l1 === undefined) {
      return {
        report: {
          ...common,
          ...splitInfo,
          l1: { index: l1Index, addr: hex(l1Addr), value: null, fields: {} },
          steAddr: null,
          reason: `the L1STD at ${hex(l1Addr)} is absent (external abort)`,
          event: eventReport({ id: F_STE_FETCH, ...this.ids(), fetchAddr: l1Addr }),
        },
        steAddr: null,
        outcome: { kind: 'event', id: F_STE_FETCH },
      };
    }
    const l1Report: DescriptorReport = {
      index: l1Index,
      addr: hex(l1Addr),
      value: rawDwords(l1)[0]!,
      fields: Object.fromEntries(L1STD_FIELDS.map((f) => [f.name, fieldValue(l1, f)])),
    };
    const span = getField(l1, L1STD_SPAN);
    if (span === 0 || span > 11 || span > split + 1) {
      return badSid(`L1STD.Span = ${span} is invalid (0 = no L2 table; at most SPLIT + 1 = ${split + 1})`, {
        ...splitInfo,
        l1: l1Report,
      });
    }
    const idx = sid % 2 ** split;
    if (idx >= 2 ** (span - 1)) {
      return badSid(
        `StreamID index ${idx} is outside the L2 table's ${2 ** (span - 1)} STEs (Span ${span})`,
        {
          ...splitInfo,
          l1: l1Report,
        },
      );
    }
    const steAddr = alignDownBig(getField(l1, L1STD_L2PTR), span - 1 + 6) + 64 * idx;
    return {
      report: { ...common, ...splitInfo, l1: l1Report, steAddr: hex(steAddr) },
      steAddr,
      outcome: { kind: 'none' },
    };
  }

  // ---------------------------------------------------------------- STE (§5.2)

  ste(addr: number): { report: StructureReport; ste: SteConfig | null; outcome: Outcome; reason?: string } {
    const words = this.fetchWords(addr, 16);
    if (words === undefined) {
      return {
        report: {
          kind: 'STE',
          addr: hex(addr),
          absent: true,
          raw: [],
          fields: [],
          valid: false,
          reason: `the STE at ${hex(addr)} is absent (external abort)`,
        },
        ste: null,
        outcome: { kind: 'event', id: F_STE_FETCH },
        reason: `the STE at ${hex(addr)} is absent (external abort)`,
      };
    }
    const fields = decodeStructure('STE', words, STE_FIELDS, STE_MEANINGS);
    const d = decodeSte(words, this.f, this.regs.e2h);
    const base = { kind: 'STE' as const, addr: hex(addr), absent: false, raw: rawDwords(words), fields };
    if (!d.ok) {
      return {
        report: { ...base, valid: false, reason: d.reason },
        ste: null,
        outcome: { kind: 'event', id: C_BAD_STE },
      };
    }
    const s = d.value;
    this.priv = s.privCfg === 3 ? true : s.privCfg === 2 ? false : this.q.privileged;
    const acc = ACCESS_BY_NAME[this.q.access];
    this.acc =
      acc !== ACCESS_WRITE && s.instCfg === 3
        ? ACCESS_EXEC
        : acc === ACCESS_EXEC && s.instCfg === 2
          ? ACCESS_READ
          : acc;
    return {
      report: { ...base, valid: true, summary: steSummary(s) },
      ste: s,
      outcome: s.abort ? { kind: 'silent' } : { kind: 'none' },
    };
  }

  // ---------------------------------------------------------------- stage-2 fetch of a structure IPA

  /** Translates a structure IPA through stage 2 (as a read), with the walk's reads labelled. */
  stage2Fetch(
    ste: SteConfig,
    what: string,
    ipa: number,
  ): { report: Stage2FetchReport; pa: number | null; event?: EventReport } {
    const s2 = ste.s2Regime!;
    const { result, reads } = this.mem.record(() =>
      refTranslate(this.mem, null, s2, BigInt(ipa), 0, PERM.S2_R),
    );
    const steps = labelStage2(reads, s2, BigInt(ipa), `S2 of ${what}`).steps;
    if (result.fault === WALK_OK) {
      return { report: { what, ipa: hex(ipa), reads: steps, pa: hex(result.pa) }, pa: Number(result.pa) };
    }
    const event = eventReport({
      id: WALK_EVENTS[result.fault],
      ...this.faultFields(),
      s2: true,
      cls: CLASS_CD,
      ttrnw: true,
      ipa,
      fetchAddr: result.fault === WALK_EABT ? Number(result.fetch) : 0,
    });
    return {
      report: {
        what,
        ipa: hex(ipa),
        reads: steps,
        pa: null,
        fault: `stage-2 ${WALK_FAULT_NAMES[result.fault]} fault`,
      },
      pa: null,
      event,
    };
  }

  /** Fetches a CD-side structure (PA, or IPA through stage 2 when nested). */
  fetchCdSide(
    ste: SteConfig,
    what: string,
    addr: number,
    words: number,
    fetches: Stage2FetchReport[],
  ): { words: Uint32Array; pa: number } | { event: EventReport; reason: string } {
    let pa = addr;
    if (ste.s2 && ste.s2Regime !== null) {
      const t = this.stage2Fetch(ste, what, addr);
      fetches.push(t.report);
      if (t.pa === null) return { event: t.event!, reason: `stage 2 faults on the ${what} IPA ${hex(addr)}` };
      pa = t.pa;
    }
    const w = this.fetchWords(pa, words);
    if (w === undefined) {
      return {
        event: eventReport({ id: F_CD_FETCH, ...this.ids(), fetchAddr: pa }),
        reason: `the ${what} at PA ${hex(pa)} is absent (external abort)`,
      };
    }
    return { words: w, pa };
  }

  // ---------------------------------------------------------------- CD table and CD (§5.3, §5.4)

  cdIndex(ste: SteConfig): { index: number | null; why: string; outcome: Outcome } {
    const ssid = this.q.ssid;
    if (ssid >= 0 && (!ste.s1 || ste.s1CdMax === 0 || ssid >= 2 ** ste.s1CdMax)) {
      const why = !ste.s1
        ? 'a SubstreamID on a stream without stage 1'
        : ste.s1CdMax === 0
          ? 'a SubstreamID on a stream with substreams disabled (S1CDMax = 0)'
          : `SubstreamID ${ssid} >= 2^S1CDMax (${2 ** ste.s1CdMax})`;
      return { index: null, why, outcome: { kind: 'event', id: C_BAD_SUBSTREAMID } };
    }
    if (!ste.s1) return { index: null, why: 'stage 1 is not enabled: no CD', outcome: { kind: 'none' } };
    if (ste.s1CdMax === 0) return { index: 0, why: 'S1CDMax = 0: the single CD', outcome: { kind: 'none' } };
    if (ssid < 0) {
      if (ste.s1Dss === 1)
        return {
          index: null,
          why: 'no SubstreamID, S1DSS = bypass: stage 1 bypassed',
          outcome: { kind: 'none' },
        };
      if (ste.s1Dss === 2)
        return { index: 0, why: 'no SubstreamID, S1DSS = substream 0: CD 0', outcome: { kind: 'none' } };
      return {
        index: null,
        why: 'no SubstreamID, S1DSS = terminate',
        outcome: { kind: 'event', id: F_STREAM_DISABLED },
      };
    }
    if (ssid === 0 && ste.s1Dss === 2) {
      return {
        index: null,
        why: 'SubstreamID 0 is reserved when S1DSS = substream 0',
        outcome: { kind: 'event', id: F_STREAM_DISABLED },
      };
    }
    return { index: ssid, why: `SubstreamID ${ssid}`, outcome: { kind: 'none' } };
  }

  cdTable(
    ste: SteConfig,
    index: number,
  ): { report: CdTableReport; cd: StructureReport | null; cdConfig: CdConfig | null; outcome: Outcome } {
    const ptr = ste.s1ContextPtr;
    const nested = ste.s2;
    const fetches: Stage2FetchReport[] = [];
    const fmt =
      ste.s1CdMax === 0
        ? 'single CD'
        : ste.s1Fmt === 0
          ? 'linear'
          : ste.s1Fmt === 1
            ? '2-level, 4KB leaf tables (64 CDs each)'
            : '2-level, 64KB leaf tables (1024 CDs each)';
    const base = {
      format: fmt,
      s1ContextPtr: hex(ptr),
      s1CdMax: ste.s1CdMax,
      nested,
      cdIndex: index,
      why: '',
      stage2Fetches: fetches,
    };
    const stop = (extra: Partial<CdTableReport>, event: EventReport, reason: string) => ({
      report: { ...base, ...extra, cdAddr: null, reason, event },
      cd: null,
      cdConfig: null,
      outcome: { kind: 'event', id: event.id } as Outcome,
    });
    let cdAddr: number;
    let l1: DescriptorReport | undefined;
    if (ste.s1CdMax === 0) cdAddr = ptr;
    else if (ste.s1Fmt === 0) cdAddr = alignDownBig(ptr, ste.s1CdMax + 6) + 64 * index;
    else {
      const split = ste.s1Fmt === 1 ? 6 : 10;
      const l1Index = ste.s1CdMax <= split ? 0 : Math.floor(index / 2 ** split);
      const l1Bytes = ste.s1CdMax <= split ? 8 : 8 * 2 ** (ste.s1CdMax - split);
      const l1Addr = alignDownBig(ptr, Math.max(Math.log2(l1Bytes), 6)) + 8 * l1Index;
      const got = this.fetchCdSide(ste, 'L1CD', l1Addr, 2, fetches);
      const l1Base = { index: l1Index, ...(nested ? { ipa: hex(l1Addr) } : {}) };
      if ('event' in got) {
        return stop({ l1: { ...l1Base, addr: hex(l1Addr), value: null, fields: {} } }, got.event, got.reason);
      }
      const w = got.words;
      const l1Read: DescriptorReport = {
        ...l1Base,
        addr: hex(got.pa),
        value: rawDwords(w)[0]!,
        fields: Object.fromEntries(L1CD_FIELDS.map((f) => [f.name, fieldValue(w, f)])),
      };
      l1 = l1Read;
      const bad = (reason: string) =>
        stop(
          { l1: l1Read },
          eventReport({ id: C_BAD_SUBSTREAMID, streamId: this.q.sid, substreamId: index }),
          reason,
        );
      if (getField(w, L1CD_V) === 0) return bad('L1CD.V is 0');
      if (
        this.f.reservedBits === 'illegal' &&
        ((w[0]! & L1CD_RES0_MASKS[0]!) | (w[1]! & L1CD_RES0_MASKS[1]!)) !== 0
      ) {
        return bad('L1CD has RES0 bits set');
      }
      const l2 = alignDownBig(getField(w, L1CD_L2PTR), split + 6);
      if (!nested && l2 >= 2 ** this.f.oasBits) return bad('L1CD.L2Ptr is beyond the OAS');
      cdAddr = l2 + 64 * (index % 2 ** split);
    }
    const withAddr = { ...(l1 ? { l1 } : {}), cdAddr: hex(cdAddr) };
    const got = this.fetchCdSide(ste, 'CD', cdAddr, 16, fetches);
    if ('event' in got) {
      const absent = got.event.id === F_CD_FETCH;
      const cd: StructureReport | null = absent
        ? {
            kind: 'CD',
            addr: String(got.event.fields.FetchAddr),
            ...(nested ? { ipa: hex(cdAddr) } : {}),
            absent: true,
            raw: [],
            fields: [],
            valid: false,
            reason: got.reason,
            event: got.event,
          }
        : null;
      return {
        ...stop(withAddr, got.event, got.reason),
        cd,
        report: { ...base, ...withAddr, reason: got.reason, event: got.event },
      };
    }
    const fields = decodeStructure('CD', got.words, CD_FIELDS, CD_MEANINGS);
    const d = decodeCd(got.words, ste, this.f);
    const cdBase = {
      kind: 'CD' as const,
      addr: hex(got.pa),
      ...(nested ? { ipa: hex(cdAddr) } : {}),
      absent: false,
      raw: rawDwords(got.words),
      fields,
    };
    if (!d.ok) {
      const event = eventReport({ id: C_BAD_CD, ...this.ids() });
      return {
        report: { ...base, ...withAddr },
        cd: { ...cdBase, valid: false, reason: d.reason, event },
        cdConfig: null,
        outcome: { kind: 'event', id: event.id },
      };
    }
    return {
      report: { ...base, ...withAddr },
      cd: { ...cdBase, valid: true, summary: cdSummary(d.value) },
      cdConfig: d.value,
      outcome: { kind: 'none' },
    };
  }

  // ---------------------------------------------------------------- translation (§3.4)

  translate(ste: SteConfig, cd: CdConfig | null, s1Bypassed: boolean, iova: number): TranslationReport {
    const input = BigInt(iova);
    const s2 = ste.s2 ? ste.s2Regime : null;
    const s1 = s1Bypassed || cd === null ? null : cd.s1;
    const common = {
      iova: hex(iova),
      access: this.q.access,
      privileged: this.q.privileged,
      effectiveAccess: ACCESS_NAMES[this.acc]!,
      effectivePrivileged: this.priv,
    };
    const s1Regime = s1 === null ? null : s1.twoRanges && ((input >> 55n) & 1n) === 1n ? s1.tt1 : s1.tt0;
    const regimes = {
      stage1: s1Regime === null ? null : regimeReport(s1Regime),
      stage2: s2 === null ? null : regimeReport(s2),
    };
    const oasFault = (): TranslationReport => ({
      ...common,
      ...regimes,
      reads: [],
      descReads: 0,
      result: {
        ok: false,
        fault: 'address size',
        stage: 1,
        class: 'IN',
        event: eventReport({ id: F_ADDR_SIZE, ...this.faultFields(), s2: false, cls: CLASS_IN }),
      },
    });
    if (s1 === null && s2 === null) {
      if (input >= 1n << BigInt(this.f.oasBits)) return oasFault();
      return {
        ...common,
        ...regimes,
        reads: [],
        descReads: 0,
        result: { ok: true, pa: hex(iova), ipa: hex(iova), pageShift: 64, perms: permNames(0xfff) },
      };
    }
    if (s1 === null && input >= 1n << BigInt(this.f.oasBits)) return oasFault();
    const s1Need = s1PermBit(this.acc, this.priv);
    const s2Need = s2PermBit(this.acc, this.priv);
    const qemuOrder = this.f.faultOrder === 'qemu';
    const { result, reads } = this.mem.record(() =>
      refTranslate(this.mem, s1, s2, input, s1Need, s2Need, { qemuOrder }),
    );
    const labelled = labelTranslation(reads, s1, s2, input);
    return {
      ...common,
      ...regimes,
      reads: labelled.steps,
      descReads: reads.length,
      result: this.walkResult(result),
    };
  }

  walkResult(r: RefResult): TranslationResult {
    if (r.fault === WALK_OK) {
      return { ok: true, pa: hex(r.pa), ipa: hex(r.ipa), pageShift: r.shift, perms: permNames(r.perms) };
    }
    const event = eventReport({
      id: WALK_EVENTS[r.fault],
      ...this.faultFields(),
      s2: r.s2,
      cls: r.cls,
      ttrnw: true,
      ipa: r.s2 ? Number(r.ipa) : 0,
      fetchAddr: r.fault === WALK_EABT ? Number(r.fetch) : 0,
    });
    return {
      ok: false,
      fault: WALK_FAULT_NAMES[r.fault]!,
      stage: r.s2 ? 2 : 1,
      class: EVT_CLASS_NAMES[r.cls] ?? String(r.cls),
      ...(r.s2 ? { ipa: hex(r.ipa) } : {}),
      ...(r.fault === WALK_EABT ? { fetchAddr: hex(r.fetch) } : {}),
      event,
    };
  }

  verdict(): VerdictReport {
    const q = this.q;
    const r = referenceTranslate(
      this.mem,
      this.f,
      this.regs,
      q.sid,
      q.ssid,
      q.iova ?? 0,
      ACCESS_BY_NAME[q.access],
      q.privileged,
      this.f.faultOrder === 'qemu',
    );
    const status = TXN_STATUS_NAMES[r.status] as VerdictReport['status'];
    return {
      status,
      ...(r.status === 0 ? { pa: hex(r.pa) } : {}),
      ...(r.record !== null ? { event: eventReport(r.record), recorded: r.recorded } : {}),
      source: 'reference SMMU model (src/hw/smmuv3/reference.ts)',
    };
  }
}

function steSummary(s: SteConfig): string {
  if (s.abort) return 'Config = abort: every transaction terminates without an event';
  if (!s.s1 && !s.s2) return 'Config = bypass: addresses pass through untranslated';
  const parts: string[] = [s.s1 && s.s2 ? 'nested' : s.s1 ? 'stage 1 only' : 'stage 2 only'];
  parts.push(WORLD_NAMES[s.world] ?? `world ${s.world}`);
  if (s.s1) parts.push(`CD table at ${hex(s.s1ContextPtr)}${s.s2 ? ' (IPA)' : ''}, ${2 ** s.s1CdMax} CD(s)`);
  if (s.s2 && s.s2Regime) {
    const r = s.s2Regime;
    parts.push(
      `S2VMID ${s.vmid}, stage 2 ${granuleName(r.granule)} ${r.inputBits}-bit IPA from level ${r.startLevel}`,
    );
  }
  return parts.join(', ');
}

function cdSummary(c: CdConfig): string {
  const half = (n: number, r: StageRegime | null): string =>
    r === null
      ? `TTB${n} disabled`
      : `TTB${n} ${hex(regimeTtb(r))} ${granuleName(r.granule)} ${r.inputBits}-bit VA from level ${r.startLevel}`;
  return `ASID ${c.asid}, ${half(0, c.s1.tt0)}, ${half(1, c.s1.tt1)}, ${c.record ? 'records' : 'does not record'} faults, ${c.abortOnFault ? 'aborts' : 'RAZ/WI'} on fault`;
}

function regimeTtb(r: StageRegime): bigint {
  return (BigInt(r.ttbHi) << 32n) | BigInt(r.ttbLo);
}

function sameOutcome(own: Outcome, v: VerdictReport): boolean {
  switch (own.kind) {
    case 'pa':
      return v.status === 'ok' && v.pa === hex(own.pa);
    case 'event':
      return v.event?.id === own.id;
    case 'silent':
      return v.status === 'abort' && v.event === undefined;
    default:
      return true;
  }
}

function describeOutcome(o: Outcome): string {
  if (o.kind === 'pa') return `PA ${hex(o.pa)}`;
  if (o.kind === 'event') return `event ${hex(o.id, 2)}`;
  return o.kind;
}

/** Decodes the images and registers for the query. Never throws. */
export function inspect(input: InspectInput): InspectReport {
  const problems: string[] = [];
  const notes: string[] = [];
  const regMap = normaliseRegisters(input.registers ?? {}, problems);
  const f = featuresFromIdrs(regMap, notes, problems);
  const tregs = translationRegisters(regMap, f, notes);
  const images = (input.images ?? []).filter((img, i) => {
    const okBase = Number.isSafeInteger(img.base) && img.base >= 0 && img.base + img.bytes.length <= 2 ** 52;
    if (!okBase)
      problems.push(`image ${img.source ?? i}: base ${String(img.base)} is not a physical address`);
    return okBase;
  });
  const mem = new ImageMemory(images);
  const q = checkQuery(input.query, problems);
  let report: InspectReport = {
    ok: false,
    problems,
    notes,
    images: images.map((i) => ({
      base: hex(i.base),
      size: i.bytes.length,
      ...(i.source ? { source: i.source } : {}),
    })),
    registers: describeRegisters(regMap),
    features: featureSummary(f),
    query:
      q === null
        ? null
        : {
            sid: q.sid,
            ssid: q.ssid < 0 ? null : q.ssid,
            iova: q.iova === null ? null : hex(q.iova),
            access: q.access,
            privileged: q.privileged,
          },
    streamTable: null,
    ste: null,
    cdTable: null,
    cd: null,
    translation: null,
    verdict: null,
  };
  for (const r of ['SMMU_STRTAB_BASE', 'SMMU_STRTAB_BASE_CFG']) {
    if (!regMap.has(r)) problems.push(`${r.slice(5)} is required (give it as ${r.slice(5)}=0x...)`);
  }
  if (images.length === 0) notes.push('no memory images: every read is absent');
  if (problems.length > 0 || q === null) {
    if (q === null && problems.length === 0) notes.push('no query: give a StreamID to decode its STE');
    return { ...report, ok: problems.length === 0 };
  }
  if (!tregs.smmuen) {
    notes.push(
      `SMMUEN = 0: the SMMU does not use these tables; transactions ${tregs.gbpaAbort ? 'abort (GBPA.ABORT = 1)' : 'bypass (GBPA.ABORT = 0)'}`,
    );
  }

  const d = new Decoder(mem, f, tregs, q);
  const own = decodeAll(d, q, (patch) => {
    report = { ...report, ...patch };
  });
  if (q.iova !== null) {
    const verdict = d.verdict();
    report = { ...report, verdict };
    if (tregs.smmuen && !sameOutcome(own, verdict)) {
      problems.push(
        `internal: the step-by-step decode ends in ${describeOutcome(own)} but the reference model says ${verdict.status}${verdict.event ? ` ${verdict.event.name}` : verdict.pa ? ` ${verdict.pa}` : ''}`,
      );
    }
  }
  return { ...report, ok: problems.length === 0 };
}

/** Runs the decode steps in the SMMU's order, filling the report; returns where it ended. */
function decodeAll(d: Decoder, q: Query, set: (patch: Partial<InspectReport>) => void): Outcome {
  const st = d.streamTable();
  set({ streamTable: st.report });
  if (st.steAddr === null) return st.outcome;
  const s = d.ste(st.steAddr);
  if (s.ste === null) {
    const event =
      s.outcome.kind === 'event' && s.outcome.id === F_STE_FETCH
        ? eventReport({ id: F_STE_FETCH, ...d.ids(), fetchAddr: st.steAddr })
        : eventReport({ id: C_BAD_STE, ...d.ids() });
    set({ ste: { ...s.report, event } });
    return s.outcome;
  }
  set({ ste: s.report });
  const ste = s.ste;
  if (ste.abort) return s.outcome;
  const which = d.cdIndex(ste);
  if (which.outcome.kind === 'event') {
    const event =
      which.outcome.id === F_STREAM_DISABLED
        ? eventReport({ id: F_STREAM_DISABLED, streamId: q.sid })
        : eventReport({ id: C_BAD_SUBSTREAMID, ...d.ids() });
    set({
      cdTable: {
        format: '',
        s1ContextPtr: hex(ste.s1ContextPtr),
        s1CdMax: ste.s1CdMax,
        nested: ste.s2,
        cdIndex: null,
        why: which.why,
        stage2Fetches: [],
        reason: which.why,
        event,
      },
    });
    return which.outcome;
  }
  let cd: CdConfig | null = null;
  if (which.index !== null) {
    const t = d.cdTable(ste, which.index);
    set({ cdTable: { ...t.report, why: which.why }, cd: t.cd });
    if (t.cdConfig === null) return t.outcome;
    cd = t.cdConfig;
  } else if (ste.s1) {
    set({
      cdTable: {
        format: '',
        s1ContextPtr: hex(ste.s1ContextPtr),
        s1CdMax: ste.s1CdMax,
        nested: ste.s2,
        cdIndex: null,
        why: which.why,
        stage2Fetches: [],
      },
    });
  }
  if (q.iova === null) return { kind: 'none' };
  const t = d.translate(ste, cd, which.index === null, q.iova);
  set({ translation: t });
  return t.result.ok ? { kind: 'pa', pa: BigInt(t.result.pa) } : { kind: 'event', id: t.result.event.id };
}

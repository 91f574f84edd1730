/**
 * Every event the SMMUv3 model raises (IHI 0070 chapter 7), one describe block per event type. For
 * each triggering condition a test checks the complete decoded event record, what the device
 * reported (DmaResult status, event and disposition), that the record read back from the event
 * queue is the same record, and that the refused transaction changed no state: no new IOTLB entry,
 * and memory unchanged apart from the event queue. A last block checks the order of checks of
 * §7.3.22 in combined cases.
 *
 * Expected values come from the team's extracts of the spec (/work/notes: events-regs.md, ste.md,
 * cd.md), not from the model's own tables: event numbers and CLASS encodings are spelled out below.
 * The record's IPA field holds IPA[55:12], so expected IPAs are page-aligned.
 */

import { describe, expect, it } from 'vitest';
import { hi32, lo32 } from '../../arch/bits.ts';
import { CR0_CMDQEN, CR0_EVENTQEN, CR0_SMMUEN, SMMU_CR0, SMMU_CR2 } from '../../arch/smmuv3/registers.ts';
import {
  INSTCFG_DATA,
  INSTCFG_INSTR,
  PRIVCFG_PRIV,
  PRIVCFG_UNPRIV,
  S1DSS_BYPASS,
  S1DSS_SSID0,
  S1DSS_TERMINATE,
  S1FMT_4K_L2,
  S1FMT_LINEAR,
} from '../../arch/smmuv3/ste.ts';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type Access } from '../../arch/vmsa.ts';
import { type MemoryPort, PAGE_SIZE } from '../memory.ts';
import { PageAllocator } from '../page-alloc.ts';
import type { PageTable, Prot } from '../vmsa/pgtable.ts';
import { flipBit } from './config.ts';
import type { SmmuEvent } from './event-record.ts';
import type { SmmuFeatures } from './features.ts';
import { CdTable, type GuestRam, type RigOptions, SmmuRig, writeWords } from './rig.ts';
import { type DmaResult, type Smmu, TXN_ABORT, TXN_OK, TXN_RAZ_WI } from './smmu.ts';
import {
  type CdParams,
  cmdCfgiSte,
  cmdSync,
  encodeCd,
  encodeL1cd,
  encodeSte,
  type SteParams,
} from './structures.ts';

// ================================================================== spec values (IHI 0070 §7.3)

/** Event numbers (§7.3.3-§7.3.16). */
const SPEC_IDS = {
  C_BAD_STREAMID: 0x02,
  F_STE_FETCH: 0x03,
  C_BAD_STE: 0x04,
  F_STREAM_DISABLED: 0x06,
  C_BAD_SUBSTREAMID: 0x08,
  F_CD_FETCH: 0x09,
  C_BAD_CD: 0x0a,
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
} as const;
type EventName = keyof typeof SPEC_IDS;

/** Records that describe the transaction (RnW, InD, PnU, S2, CLASS, InputAddr). */
const TXN_EVENTS: ReadonlySet<EventName> = new Set<EventName>([
  'F_WALK_EABT',
  'F_TRANSLATION',
  'F_ADDR_SIZE',
  'F_ACCESS',
  'F_PERMISSION',
]);

/** CLASS encodings (§7.3): CD fetch, stage-1 table walk, input address. */
const CD = 0b00;
const TT = 0b01;
const IN = 0b10;

// ================================================================== addresses

const KiB = 1024;
const MiB = 1024 * KiB;
const SID = 7;
/** A stage-2-only stream next to the nested one. */
const S2_SID = 9;
/** A page-aligned IOVA with a non-zero high word, and the address the tests access in it. */
const IOVA = 0x12_3456_7000;
const OFF = 0x9a8;
const VA = IOVA + OFF;
/** A VA that no stage-1 table maps. */
const HOLE_VA = 0x22_0000_0000 + OFF;
/** Just beyond a 48-bit OAS / IAS (both 48 with the default features). */
const BEYOND_48 = 2 ** 48 + OFF;

/** Guest-physical windows of the nested setup, each in its own 1 GiB so stage 2 gives each its own table. */
const PT_IPA = 0x8000_0000;
const DATA_IPA = 0xc000_0000;
const CFG_IPA = 0x1_0000_0000;
/** In DATA_IPA's 1 GiB, mapped by nothing at stage 2. */
const HOLE_IPA = 0xd000_0000;
/** In PT_IPA's 1 GiB, mapped by nothing at stage 2. */
const HOLE_TABLE_IPA = 0xa000_0000;

const RW: Prot = { read: true, write: true, user: true };
const RO: Prot = { read: true, write: false, user: true };
const RWX: Prot = { read: true, write: true, exec: true };

const page = (addr: number): number => addr - (addr % PAGE_SIZE);

// ================================================================== transactions and checks

interface Txn {
  readonly sid?: number;
  readonly ssid?: number;
  readonly iova?: number;
  readonly access?: Access;
  readonly priv?: boolean;
}

/** The expected record: fields the transaction does not determine, plus any override. */
interface Want {
  readonly event: EventName;
  readonly substreamId?: number;
  readonly rnw?: boolean;
  readonly ind?: boolean;
  readonly pnu?: boolean;
  readonly s2?: boolean;
  readonly cls?: number;
  readonly ttrnw?: boolean;
  readonly ipa?: number;
  readonly fetchAddr?: number;
}

interface Outcome {
  readonly status?: number;
  readonly disposition?: 'written' | 'suppressed';
}

/**
 * The complete record the spec gives for `want` raised by `t`. RnW/InD/PnU describe the
 * transaction and InputAddr is the address it presented (§7.3); tests override PnU/InD where an
 * STE override applies. Fields an event does not have are RES0 (read as 0 / false / -1).
 */
function expectedRecord(t: Txn, w: Want): SmmuEvent {
  const access = t.access ?? ACCESS_READ;
  const txn = TXN_EVENTS.has(w.event);
  const input = t.iova ?? VA;
  // F_STREAM_DISABLED has no SSV / SubstreamID (§7.3.7).
  const ssid = w.event === 'F_STREAM_DISABLED' ? -1 : (t.ssid ?? -1);
  return {
    id: SPEC_IDS[w.event],
    name: w.event,
    streamId: t.sid ?? SID,
    substreamId: w.substreamId ?? ssid,
    rnw: w.rnw ?? (txn && access !== ACCESS_WRITE),
    ind: w.ind ?? (txn && access === ACCESS_EXEC),
    pnu: w.pnu ?? (txn && (t.priv ?? false)),
    s2: w.s2 ?? false,
    cls: w.cls ?? 0,
    ttrnw: w.ttrnw ?? false,
    inputHi: txn ? hi32(input) : 0,
    inputLo: txn ? lo32(input) : 0,
    ipa: w.ipa ?? 0,
    fetchAddr: w.fetchAddr ?? 0,
  };
}

type Snapshot = Map<number, Uint8Array>;

/** Every accessible backed page of host memory. */
function snapshot(rig: SmmuRig): Snapshot {
  const out: Snapshot = new Map();
  for (const base of rig.mem.backedPages()) {
    const bytes = rig.mem.read(base, PAGE_SIZE);
    if (bytes !== undefined) out.set(base, bytes);
  }
  return out;
}

/** Addresses (first per page) that differ from `before`, ignoring the event queue. */
function changedOutsideEventq(rig: SmmuRig, before: Snapshot): string[] {
  const after = snapshot(rig);
  const qStart = rig.eventqBase;
  const qEnd = qStart + 32 * 2 ** rig.eventqLog2;
  const out: string[] = [];
  for (const base of new Set([...before.keys(), ...after.keys()])) {
    const a = before.get(base);
    const b = after.get(base);
    for (let i = 0; i < PAGE_SIZE; i++) {
      const addr = base + i;
      if (addr >= qStart && addr < qEnd) continue;
      if ((a?.[i] ?? 0) !== (b?.[i] ?? 0)) {
        out.push(`0x${addr.toString(16)}`);
        break;
      }
    }
  }
  return out;
}

/** Runs one single-byte transaction and checks that it changed no state (IOTLB, memory). */
function runUnchanged(rig: SmmuRig, t: Txn): DmaResult {
  const tlbBefore = rig.smmu.iotlb.countValid();
  const memBefore = snapshot(rig);
  const r = rig.smmu.translate(
    t.sid ?? SID,
    t.ssid ?? -1,
    t.iova ?? VA,
    t.access ?? ACCESS_READ,
    t.priv ?? false,
  );
  expect(rig.smmu.iotlb.countValid(), 'IOTLB entries after a refused transaction').toBe(tlbBefore);
  expect(changedOutsideEventq(rig, memBefore), 'memory changed outside the event queue').toEqual([]);
  return r;
}

/**
 * A refused transaction: the device's result, the complete record, the record read back from the
 * event queue, and unchanged state.
 */
function refuse(rig: SmmuRig, t: Txn, want: Want, outcome: Outcome = {}): DmaResult {
  const r = runUnchanged(rig, t);
  const disposition = outcome.disposition ?? 'written';
  expect({
    status: r.status,
    count: r.count,
    faultAddr: r.faultAddr,
    disposition: r.eventDisposition,
  }).toEqual({ status: outcome.status ?? TXN_ABORT, count: 0, faultAddr: t.iova ?? VA, disposition });
  expect(r.event).toEqual(expectedRecord(t, want));
  expect(rig.drainEvents()).toEqual(disposition === 'written' ? [r.event] : []);
  return r;
}

/** A transaction terminated with an abort and no event at all. */
function silentAbort(rig: SmmuRig, t: Txn): void {
  const r = runUnchanged(rig, t);
  expect({ status: r.status, event: r.event, disposition: r.eventDisposition }).toEqual({
    status: TXN_ABORT,
    event: null,
    disposition: 'none',
  });
  expect(rig.drainEvents()).toEqual([]);
}

/** A successful translation of `t` to `pa`. */
function ok(rig: SmmuRig, t: Txn, pa: number): DmaResult {
  const r = rig.smmu.translate(
    t.sid ?? SID,
    t.ssid ?? -1,
    t.iova ?? VA,
    t.access ?? ACCESS_READ,
    t.priv ?? false,
  );
  expect({ status: r.status, pa: r.firstPa, event: r.event, reason: r.reason }).toEqual({
    status: TXN_OK,
    pa,
    event: null,
    reason: '',
  });
  return r;
}

// ================================================================== table helpers

function mustMap(pt: PageTable, iova: number, pa: number, size: number, prot: Prot): void {
  const r = pt.map(iova, pa, size, prot);
  if (!r.ok) throw new Error(`map 0x${iova.toString(16)}: ${r.detail}`);
}

/** Descriptor addresses (in the table's own address space) a walk of `addr` reads, start level first. */
function descChain(pt: PageTable, addr: number): number[] {
  const { granule, startLevel, startBits } = pt.geometry;
  const w = new Uint32Array(2);
  const out: number[] = [];
  let table = pt.root;
  for (let level = startLevel; level <= 3; level++) {
    const shift = granule + (granule - 3) * (3 - level);
    const bits = level === startLevel ? startBits : granule - 3;
    const slot = table + (Math.floor(addr / 2 ** shift) % 2 ** bits) * 8;
    out.push(slot);
    if (!pt.mem.read64(slot, w)) throw new Error('descriptor read aborted');
    const lo = w[0]!;
    const hi = w[1]!;
    if (level === 3 || (lo & 3) !== 3) break;
    table = (hi & 0xffff) * 2 ** 32 + ((lo & ~(2 ** granule - 1)) >>> 0);
  }
  return out;
}

/** The leaf descriptor a walk of `addr` ends at. */
function leafOf(pt: PageTable, addr: number): number {
  return descChain(pt, addr).at(-1)!;
}

/** Clears AF (descriptor bit 10). */
function clearAf(mem: MemoryPort, desc: number): void {
  const w = new Uint32Array(2);
  if (!mem.read64(desc, w)) throw new Error('descriptor read aborted');
  if (!mem.write64(desc, (w[0]! & ~(1 << 10)) >>> 0, w[1]!)) throw new Error('descriptor write aborted');
}

/** Points a table descriptor at another next-level table address (below 2^32). */
function retarget(mem: MemoryPort, desc: number, table: number): void {
  const w = new Uint32Array(2);
  if (!mem.read64(desc, w)) throw new Error('descriptor read aborted');
  const hi = (w[1]! & 0xffff_0000) | hi32(table);
  if (!mem.write64(desc, ((w[0]! & 0xfff) | lo32(table)) >>> 0, hi >>> 0)) throw new Error('write aborted');
}

/** An allocator over `pages` fresh pages of host memory, so a structure built there shares no page. */
function ownPages(rig: SmmuRig, pages: number): PageAllocator {
  const base = rig.alloc.alloc(pages * PAGE_SIZE);
  if (base === undefined) throw new Error('out of memory');
  return new PageAllocator(rig.mem, base, pages * PAGE_SIZE);
}

function rigWith(features: Partial<SmmuFeatures> | undefined, opts: RigOptions = {}): SmmuRig {
  return new SmmuRig(features === undefined ? opts : { ...opts, features });
}

/** An SMMU brought up with CR2.RECINVSID = 0 (the rig sets it to 1). */
function rigWithoutRecinvsid(opts: RigOptions = {}): SmmuRig {
  const rig = new SmmuRig({ ...opts, noEnable: true });
  rig.smmu.write32(SMMU_CR2, 0);
  rig.smmu.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
  expect(rig.smmu.read32(SMMU_CR2)).toBe(0);
  return rig;
}

// ================================================================== standard streams

interface S1Options {
  readonly features?: Partial<SmmuFeatures>;
  /** Protection of the page at IOVA. */
  readonly prot?: Prot;
  readonly cd?: Partial<CdParams>;
  readonly ste?: Partial<SteParams>;
  readonly cdFmt?: number;
  readonly cdMax?: number;
  /** CD indices to write (default [0]). */
  readonly cds?: readonly number[];
}

interface S1Env {
  readonly rig: SmmuRig;
  readonly smmu: Smmu;
  /** Stage-1 table in host memory: IOVA → dataPa. */
  readonly pt: PageTable;
  readonly cdt: CdTable;
  readonly cdParams: CdParams;
  readonly steParams: SteParams;
  readonly dataPa: number;
}

/** A stage-1-only stream SID: STE → CD table (in pages of its own) → a 4-level 4KB table mapping IOVA. */
function s1Stream(o: S1Options = {}): S1Env {
  const rig = rigWith(o.features);
  const pt = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48 });
  const dataPa = rig.alloc.alloc(PAGE_SIZE)!;
  mustMap(pt, IOVA, dataPa, PAGE_SIZE, o.prot ?? RW);
  const cdt = new CdTable(rig.mem, ownPages(rig, 4), o.cdFmt ?? S1FMT_LINEAR, o.cdMax ?? 0);
  const cdParams: CdParams = { t0sz: 16, granule0: 12, ttb0: pt.root, ipsBits: 48, asid: 1, ...o.cd };
  for (const i of o.cds ?? [0]) cdt.write(i, cdParams);
  const steParams: SteParams = {
    config: 's1',
    s1ContextPtr: cdt.ptr,
    s1Fmt: cdt.fmt,
    s1CdMax: cdt.cdMax,
    ...o.ste,
  };
  rig.writeSte(SID, steParams);
  return { rig, smmu: rig.smmu, pt, cdt, cdParams, steParams, dataPa };
}

interface NestedOptions {
  readonly features?: Partial<SmmuFeatures>;
  /** Stage-1 protection of IOVA → DATA_IPA. */
  readonly s1Prot?: Prot;
  /** Stage-2 protection of each window. */
  readonly s2CfgProt?: Prot;
  readonly s2PtProt?: Prot;
  readonly s2DataProt?: Prot;
  readonly cd?: Partial<CdParams>;
  readonly ste?: Partial<SteParams>;
  readonly s2OnlySte?: Partial<SteParams>;
  readonly cdFmt?: number;
  readonly cdMax?: number;
  /** CD indices to write (default [0]). */
  readonly cds?: readonly number[];
}

interface NestedEnv {
  readonly rig: SmmuRig;
  readonly smmu: Smmu;
  /** Stage-2 table (host memory, 40-bit IPA, starts at level 1 with 2 concatenated tables). */
  readonly s2: PageTable;
  /** Guest windows: the CD table, the stage-1 tables, and the data page. */
  readonly cfg: GuestRam;
  readonly ptRam: GuestRam;
  readonly data: GuestRam;
  /** Stage-1 table in guest memory (IPA space): IOVA → DATA_IPA. */
  readonly s1: PageTable;
  readonly cdt: CdTable;
}

/**
 * A nested stream SID and a stage-2-only stream S2_SID sharing one stage-2 table. Guest RAM is three
 * 2 MiB windows (CD table, stage-1 tables, data), each mapped by a stage-2 block in its own level-2
 * table, so each can be broken on its own.
 */
function nestedStream(o: NestedOptions = {}): NestedEnv {
  const rig = rigWith(o.features);
  const s2 = rig.pageTable({ stage: 2, granule: 12, iasBits: 40, oasBits: 48 });
  const cfg = rig.guestRam(CFG_IPA, 2 * MiB);
  const ptRam = rig.guestRam(PT_IPA, 2 * MiB);
  const data = rig.guestRam(DATA_IPA, 2 * MiB);
  mustMap(s2, CFG_IPA, cfg.paBase, cfg.size, o.s2CfgProt ?? RWX);
  mustMap(s2, PT_IPA, ptRam.paBase, ptRam.size, o.s2PtProt ?? RWX);
  mustMap(s2, DATA_IPA, data.paBase, data.size, o.s2DataProt ?? RWX);
  const s1 = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48 }, ptRam.alloc);
  mustMap(s1, IOVA, DATA_IPA, PAGE_SIZE, o.s1Prot ?? RW);
  const cdt = new CdTable(cfg.view, cfg.alloc, o.cdFmt ?? S1FMT_LINEAR, o.cdMax ?? 0);
  for (const i of o.cds ?? [0])
    cdt.write(i, { t0sz: 16, granule0: 12, ttb0: s1.root, ipsBits: 48, asid: 1, ...o.cd });
  const s2Fields = {
    s2Vmid: 1,
    s2T0sz: 24,
    s2Sl0: s2.sl0,
    s2Granule: 12,
    s2PsBits: 48,
    s2Ttb: s2.root,
  } as const;
  rig.writeSte(SID, {
    config: 'nested',
    s1ContextPtr: cdt.ptr,
    s1Fmt: cdt.fmt,
    s1CdMax: cdt.cdMax,
    ...s2Fields,
    ...o.ste,
  });
  rig.writeSte(S2_SID, { config: 's2', ...s2Fields, ...o.s2OnlySte });
  return { rig, smmu: rig.smmu, s2, cfg, ptRam, data, s1, cdt };
}

/** The host PA behind an IPA of a guest window. */
function paOf(g: GuestRam, ipa: number): number {
  const pa = g.view.toPhys(ipa);
  if (pa < 0) throw new Error('IPA outside the window');
  return pa;
}

// ================================================================== tests

describe('C_BAD_STREAMID (§7.3.3)', () => {
  it('StreamID >= 2^LOG2SIZE (linear table)', () => {
    const rig = new SmmuRig({ sidLog2: 8 });
    refuse(rig, { sid: 256 }, { event: 'C_BAD_STREAMID' });
  });

  it('records the SubstreamID of a transaction that has one (SSV = 1)', () => {
    const rig = new SmmuRig({ sidLog2: 8 });
    refuse(rig, { sid: 0x1234, ssid: 0x5a5 }, { event: 'C_BAD_STREAMID' });
  });

  it('the effective LOG2SIZE is capped by IDR1.SIDSIZE', () => {
    const rig = new SmmuRig({ sidLog2: 8, features: { sidBits: 6, twoLevelStreamTable: false } });
    rig.writeSte(63, { config: 'bypass' });
    rig.writeSte(64, { config: 'bypass' });
    ok(rig, { sid: 63 }, VA);
    refuse(rig, { sid: 64 }, { event: 'C_BAD_STREAMID' });
  });

  it('2-level: an L1STD with Span 0', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    rig.writeSte(0x105, { config: 'bypass' });
    ok(rig, { sid: 0x105 }, VA);
    const l2 = rig.steAddr(0x100);
    rig.writeL1std(0x100 >> 6, 0, l2);
    expect(rig.submit(cmdCfgiSte(0x105, false), cmdSync())).toBe(0);
    refuse(rig, { sid: 0x105 }, { event: 'C_BAD_STREAMID' });
    // An L1STD never written reads as zero: Span 0 too.
    refuse(rig, { sid: 0x2345 }, { event: 'C_BAD_STREAMID' });
  });

  it('2-level: Span > SPLIT + 1', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    rig.writeSte(0x141, { config: 'bypass' });
    rig.writeL1std(0x141 >> 6, 8, rig.steAddr(0x140));
    refuse(rig, { sid: 0x141 }, { event: 'C_BAD_STREAMID' });
  });

  it('2-level: a reserved Span (12) behaves as 0', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    rig.writeSte(0x141, { config: 'bypass' });
    rig.writeL1std(0x141 >> 6, 12, rig.steAddr(0x140));
    refuse(rig, { sid: 0x141 }, { event: 'C_BAD_STREAMID' });
  });

  it('2-level: StreamID[SPLIT-1:0] beyond the L1STD span', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    // Span 3: an L2 array of 4 STEs for StreamIDs 0x100..0x103.
    const l2 = rig.alloc.alloc(4 * 64)!;
    rig.writeL1std(4, 3, l2);
    writeWords(rig.mem, l2 + 3 * 64, encodeSte({ config: 'bypass' }));
    ok(rig, { sid: 0x103 }, VA);
    refuse(rig, { sid: 0x104 }, { event: 'C_BAD_STREAMID' });
    refuse(rig, { sid: 0x13f, ssid: 2 }, { event: 'C_BAD_STREAMID' });
  });

  it('CR2.RECINVSID = 0: the record is suppressed, the transaction still aborts', () => {
    const rig = rigWithoutRecinvsid({ sidLog2: 8 });
    refuse(rig, { sid: 256 }, { event: 'C_BAD_STREAMID' }, { disposition: 'suppressed' });
  });

  it('CR2.RECINVSID = 0 also suppresses the 2-level Span cases', () => {
    const rig = rigWithoutRecinvsid({ sidLog2: 16, split: 6 });
    refuse(rig, { sid: 0x2345, ssid: 1 }, { event: 'C_BAD_STREAMID' }, { disposition: 'suppressed' });
  });
});

describe('F_STE_FETCH (§7.3.4)', () => {
  it('STE page absent: FetchAddr is the STE PA', () => {
    const rig = new SmmuRig();
    const addr = rig.writeSte(SID, { config: 'bypass' });
    rig.mem.markAbsent(addr, 64);
    refuse(rig, {}, { event: 'F_STE_FETCH', fetchAddr: addr });
  });

  it('records the SubstreamID of the transaction (SSV = 1)', () => {
    const rig = new SmmuRig();
    const addr = rig.writeSte(SID, { config: 'bypass' });
    rig.mem.markAbsent(addr, 64);
    refuse(rig, { ssid: 3 }, { event: 'F_STE_FETCH', fetchAddr: addr });
  });

  it('L1STD page absent (2-level table): FetchAddr is the L1STD PA', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    const sid = 0x2c5;
    rig.writeSte(sid, { config: 'bypass' });
    const l1std = rig.strtabBase + 8 * (sid >> 6);
    rig.mem.markAbsent(l1std, 8);
    refuse(rig, { sid }, { event: 'F_STE_FETCH', fetchAddr: l1std });
    // A failed L1STD fetch is not cached either.
    rig.mem.markPresent(l1std, 8);
    ok(rig, { sid }, VA);
  });

  it('L2 STE page absent (2-level table): FetchAddr is the STE PA', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    const sid = 0x2c5;
    const addr = rig.writeSte(sid, { config: 'bypass' });
    rig.mem.markAbsent(addr, 64);
    refuse(rig, { sid }, { event: 'F_STE_FETCH', fetchAddr: addr });
  });

  it('a failed fetch is not cached: the STE is used once its page is back', () => {
    const rig = new SmmuRig();
    const addr = rig.writeSte(SID, { config: 'bypass' });
    rig.mem.markAbsent(addr, 64);
    refuse(rig, {}, { event: 'F_STE_FETCH', fetchAddr: addr });
    rig.mem.markPresent(addr, 64);
    ok(rig, {}, VA);
  });
});

describe('C_BAD_STE (§7.3.5, §5.2.2)', () => {
  /** A legal stage-2-only STE; each test breaks one field. */
  const s2Base: SteParams = {
    config: 's2',
    s2T0sz: 24,
    s2Sl0: 1,
    s2Granule: 12,
    s2PsBits: 48,
    s2Ttb: 0x4800_0000,
  };

  it('control: the base stage-2 STE is legal (its empty table gives a stage-2 F_TRANSLATION)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, s2Base);
    refuse(rig, {}, { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: page(VA) });
  });

  it('V = 0', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'bypass', valid: false });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('an STE never written (all zero) is V = 0', () => {
    const rig = new SmmuRig();
    refuse(rig, { sid: 200 }, { event: 'C_BAD_STE' });
  });

  it('records the SubstreamID of the transaction (SSV = 1)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 's1', valid: false });
    refuse(rig, { ssid: 0x1f }, { event: 'C_BAD_STE' });
  });

  it.each([
    ['001', 0b001],
    ['010', 0b010],
    ['011', 0b011],
  ])(
    'reserved Config 0b%s is not C_BAD_STE: a silent abort, with or without a SubstreamID',
    (_bits, config) => {
      const rig = new SmmuRig();
      rig.writeSte(SID, { config });
      silentAbort(rig, {});
      silentAbort(rig, { ssid: 3 });
      expect(rig.smmu.stats.silentAborts).toBe(2);
    },
  );

  it('Config = abort (0b000): a silent abort', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'abort' });
    silentAbort(rig, {});
  });

  it('stage 1 with S1CDMax > IDR1.SSIDSIZE', () => {
    const rig = new SmmuRig({ features: { ssidBits: 4 } });
    const cdt = rig.cdTable(S1FMT_LINEAR, 4);
    rig.writeSte(SID, { config: 's1', s1ContextPtr: cdt.ptr, s1CdMax: 5, s1Dss: S1DSS_BYPASS });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2T0SZ below the minimum (64 - IAS = 16)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { ...s2Base, s2T0sz: 15 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2T0SZ above the maximum (39 without IDR3.STT)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { ...s2Base, s2T0sz: 40, s2Sl0: 0 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2SL0 inconsistent with S2T0SZ (40-bit IPA starting at level 2 needs 2^19 entries)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { ...s2Base, s2Sl0: 0 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2TG selects a granule IDR5 does not list (granules: [12], S2TG = 64KB)', () => {
    const rig = new SmmuRig({ features: { granules: [12] } });
    rig.writeSte(SID, { ...s2Base, s2Granule: 16 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2TTB beyond the effective S2PS', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { ...s2Base, s2PsBits: 40, s2Ttb: 2 ** 40 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2AA64 = 0 (VMSAv8-32 not implemented)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, flipBit(encodeSte(s2Base), 179));
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2S = 1 (STALL_MODEL = terminate only)', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, flipBit(encodeSte(s2Base), 185));
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('a RES0 bit set (bit 56, reservedBits: illegal)', () => {
    const env = s1Stream();
    env.rig.writeSte(SID, flipBit(encodeSte(env.steParams), 56));
    refuse(env.rig, {}, { event: 'C_BAD_STE' });
  });

  it.each([
    ['S2ENDI = 1 (little-endian tables only)', 180],
    ['S2HA = 1 without HTTU', 184],
    ['S2HD = 1 without HTTU', 183],
  ])('%s', (_name, bit) => {
    const rig = new SmmuRig();
    rig.writeSte(SID, flipBit(encodeSte(s2Base), bit));
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2VMID > 255 without VMID16', () => {
    const rig = new SmmuRig({ features: { vmid16: false } });
    rig.writeSte(SID, { ...s2Base, s2Vmid: 0x100 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });

  it('S2VMID > 255 without VMID16 on a stage-1-only NS-EL1 STE (S2VMID is not IGNORED there)', () => {
    const env = s1Stream({ features: { vmid16: false }, ste: { s2Vmid: 0x100 } });
    refuse(env.rig, {}, { event: 'C_BAD_STE' });
  });

  it('STRW = 0b01 (reserved) on a stage-1-only STE', () => {
    const env = s1Stream({ ste: { strw: 0b01 } });
    refuse(env.rig, {}, { event: 'C_BAD_STE' });
  });

  it('S1STALLD = 1 (STALL_MODEL = terminate only)', () => {
    const env = s1Stream();
    env.rig.writeSte(SID, flipBit(encodeSte(env.steParams), 64 + 27));
    refuse(env.rig, {}, { event: 'C_BAD_STE' });
  });

  it('S1ContextPtr beyond the OAS for a stage-1-only STE', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 's1', s1ContextPtr: 2 ** 48 });
    refuse(rig, {}, { event: 'C_BAD_STE' });
  });
});

describe('F_STREAM_DISABLED (§7.3.7)', () => {
  it('no SubstreamID, S1CDMax > 0, S1DSS = terminate', () => {
    const env = s1Stream({ cdMax: 4, ste: { s1Dss: S1DSS_TERMINATE } });
    refuse(env.rig, {}, { event: 'F_STREAM_DISABLED' });
    ok(env.rig, { ssid: 0 }, env.dataPa + OFF);
  });

  it('reserved S1DSS 0b11 behaves as terminate', () => {
    const env = s1Stream({ cdMax: 4, ste: { s1Dss: 0b11 } });
    refuse(env.rig, {}, { event: 'F_STREAM_DISABLED' });
  });

  it('SubstreamID 0 with S1DSS = SSID0 (CD 0 is reserved for traffic without one): no SSV in the record', () => {
    const env = s1Stream({ cdMax: 4, ste: { s1Dss: S1DSS_SSID0 } });
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { ssid: 0 }, { event: 'F_STREAM_DISABLED', substreamId: -1 });
  });
});

describe('C_BAD_SUBSTREAMID (§7.3.9)', () => {
  it('a SubstreamID with S1CDMax = 0', () => {
    const env = s1Stream();
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { ssid: 1 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('SubstreamID >= 2^S1CDMax', () => {
    const env = s1Stream({ cdMax: 4, cds: [0, 15] });
    ok(env.rig, { ssid: 15 }, env.dataPa + OFF);
    refuse(env.rig, { ssid: 16 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('IDR1.SSIDSIZE = 0: any SubstreamID', () => {
    const env = s1Stream({ features: { ssidBits: 0 } });
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { ssid: 0 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('a SubstreamID on a bypass STE', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'bypass' });
    ok(rig, {}, VA);
    refuse(rig, { ssid: 3 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('a SubstreamID on a stage-2-only STE', () => {
    const env = nestedStream();
    ok(env.rig, { sid: S2_SID, iova: DATA_IPA + OFF }, env.data.paBase + OFF);
    refuse(env.rig, { sid: S2_SID, ssid: 3, iova: DATA_IPA + OFF }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('2-level CD table, L1CD.V = 0: the record SubstreamID is the CD index', () => {
    const env = s1Stream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [1] });
    ok(env.rig, { ssid: 1 }, env.dataPa + OFF);
    refuse(env.rig, { ssid: 70 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('2-level CD table reached through S1DSS = SSID0 without a SubstreamID: SubstreamID 0', () => {
    const env = s1Stream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [], ste: { s1Dss: S1DSS_SSID0 } });
    refuse(env.rig, {}, { event: 'C_BAD_SUBSTREAMID', substreamId: 0 });
  });

  it('2-level CD table, L1CD.L2Ptr beyond the OAS (stage-1-only)', () => {
    const env = s1Stream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [1, 65] });
    writeWords(env.rig.mem, env.cdt.l1Addr(1), encodeL1cd(2 ** 48));
    ok(env.rig, { ssid: 1 }, env.dataPa + OFF);
    refuse(env.rig, { ssid: 65 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('not raised for Config = abort: a transaction with a SubstreamID aborts silently', () => {
    // §5.2 Config / §7.3.7 note: Config 0b000 aborts with no event; C_BAD_SUBSTREAMID is for 0b1x0.
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'abort' });
    silentAbort(rig, { ssid: 3 });
  });
});

describe('F_CD_FETCH (§7.3.10)', () => {
  it('CD page absent: FetchAddr is the CD PA', () => {
    const env = s1Stream({ cdMax: 4, cds: [3] });
    const cdAddr = env.cdt.cdAddr(3);
    env.rig.mem.markAbsent(cdAddr, 64);
    refuse(env.rig, { ssid: 3 }, { event: 'F_CD_FETCH', fetchAddr: cdAddr });
    // A failed CD fetch is not cached.
    env.rig.mem.markPresent(cdAddr, 64);
    ok(env.rig, { ssid: 3 }, env.dataPa + OFF);
  });

  it('CD page absent, no SubstreamID (S1CDMax = 0)', () => {
    const env = s1Stream();
    env.rig.mem.markAbsent(env.cdt.ptr, 64);
    refuse(env.rig, {}, { event: 'F_CD_FETCH', fetchAddr: env.cdt.ptr });
  });

  it('L1CD page absent: FetchAddr is the L1CD PA', () => {
    const env = s1Stream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [65] });
    const l1cd = env.cdt.l1Addr(1);
    env.rig.mem.markAbsent(l1cd, 8);
    refuse(env.rig, { ssid: 65 }, { event: 'F_CD_FETCH', fetchAddr: l1cd });
  });

  it('nested 2-level CD table: L1CD page absent, FetchAddr is the L1CD PA', () => {
    const env = nestedStream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [65] });
    const l1Pa = paOf(env.cfg, env.cdt.l1Addr(1));
    env.rig.mem.markAbsent(l1Pa, 8);
    refuse(env.rig, { ssid: 65 }, { event: 'F_CD_FETCH', fetchAddr: l1Pa });
  });

  it('nested: FetchAddr is the PA the CD IPA translates to', () => {
    const env = nestedStream();
    const cdPa = paOf(env.cfg, env.cdt.ptr);
    env.rig.mem.markAbsent(cdPa, 64);
    refuse(env.rig, {}, { event: 'F_CD_FETCH', fetchAddr: cdPa });
  });
});

describe('C_BAD_CD (§7.3.11, §5.4.2)', () => {
  it('V = 0', () => {
    const env = s1Stream({ cd: { valid: false } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('records the SubstreamID (SSV = 1)', () => {
    const env = s1Stream({ cdMax: 4, cds: [0], ste: { s1Dss: S1DSS_SSID0 } });
    // CD 5 was never written: V = 0.
    refuse(env.rig, { ssid: 5 }, { event: 'C_BAD_CD' });
  });

  it('T0SZ above the maximum (39)', () => {
    const env = s1Stream({ cd: { t0sz: 40 } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('T0SZ below the minimum (16)', () => {
    const env = s1Stream({ cd: { t0sz: 15 } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('TG0 selects a granule IDR5 does not list (granules: [12], TG0 = 64KB)', () => {
    const env = s1Stream({ features: { granules: [12] }, cd: { granule0: 16 } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('TTB0 beyond the effective IPS', () => {
    const env = s1Stream({ cd: { ipsBits: 32, ttb0: 0x1_0000_0000 } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('HA = 1 without HTTU', () => {
    const env = s1Stream();
    env.cdt.write(0, flipBit(encodeCd(env.cdParams), 43));
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('ASID > 255 without ASID16 (features asid16: false)', () => {
    const env = s1Stream({ features: { asid16: false }, cd: { asid: 256 } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('CD.S = 1 (STALL_MODEL = terminate only)', () => {
    const env = s1Stream();
    env.cdt.write(0, flipBit(encodeCd(env.cdParams), 44));
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it.each([
    ['ENDI = 1 (little-endian tables only)', 15],
    ['AA64 = 0 (VMSAv8-32 not implemented)', 41],
    ['HD = 1 without HTTU', 42],
  ])('%s', (_name, bit) => {
    const env = s1Stream();
    env.cdt.write(0, flipBit(encodeCd(env.cdParams), bit));
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });

  it('not ILLEGAL: an out-of-range T0SZ in a half disabled by EPD0 (F_TRANSLATION instead)', () => {
    const env = s1Stream({ cd: { epd0: true, t0sz: 60 } });
    refuse(env.rig, {}, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });

  it('is not suppressed by CD.R = 0', () => {
    const env = s1Stream({ cd: { t0sz: 40, record: false } });
    refuse(env.rig, {}, { event: 'C_BAD_CD' });
  });
});

describe('F_WALK_EABT (§7.3.12)', () => {
  it('stage-1 table page absent: S2 = 0, CLASS = TT, FetchAddr = the descriptor PA', () => {
    const env = s1Stream();
    const desc = descChain(env.pt, VA)[2]!;
    env.rig.mem.markAbsent(desc, 8);
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_WALK_EABT', s2: false, cls: TT, fetchAddr: desc });
  });

  it('is recorded with CD.R = 0 and aborts with CD.A = 0', () => {
    const env = s1Stream({ cd: { record: false, abort: false } });
    const desc = descChain(env.pt, VA)[3]!;
    env.rig.mem.markAbsent(desc, 8);
    refuse(env.rig, { ssid: -1 }, { event: 'F_WALK_EABT', s2: false, cls: TT, fetchAddr: desc });
  });

  it('nested: the stage-1 descriptor PA aborts after stage 2 translated it: S2 = 0, CLASS = TT', () => {
    const env = nestedStream();
    const descPa = paOf(env.ptRam, descChain(env.s1, VA)[3]!);
    env.rig.mem.markAbsent(descPa, 8);
    refuse(env.rig, {}, { event: 'F_WALK_EABT', s2: false, cls: TT, fetchAddr: descPa });
  });

  it('nested: stage-2 table absent while translating a stage-1 descriptor IPA: S2 = 1, CLASS = TT', () => {
    const env = nestedStream();
    const s1Root = descChain(env.s1, VA)[0]!;
    const s2Desc = descChain(env.s2, s1Root)[1]!;
    env.rig.mem.markAbsent(s2Desc, 8);
    refuse(env.rig, {}, { event: 'F_WALK_EABT', s2: true, cls: TT, fetchAddr: s2Desc });
  });

  it('nested: stage-2 table absent while translating the final IPA: S2 = 1, CLASS = IN', () => {
    const env = nestedStream();
    const s2Desc = descChain(env.s2, DATA_IPA)[1]!;
    env.rig.mem.markAbsent(s2Desc, 8);
    refuse(env.rig, { priv: true }, { event: 'F_WALK_EABT', s2: true, cls: IN, fetchAddr: s2Desc });
  });

  it('nested: stage-2 table absent while translating the CD address: S2 = 1, CLASS = CD', () => {
    const env = nestedStream();
    const s2Desc = descChain(env.s2, env.cdt.ptr)[1]!;
    env.rig.mem.markAbsent(s2Desc, 8);
    refuse(env.rig, {}, { event: 'F_WALK_EABT', s2: true, cls: CD, fetchAddr: s2Desc });
  });

  it('stage-2-only: stage-2 table absent: S2 = 1, CLASS = IN', () => {
    const env = nestedStream();
    const s2Desc = descChain(env.s2, DATA_IPA)[1]!;
    env.rig.mem.markAbsent(s2Desc, 8);
    const iova = DATA_IPA + OFF;
    refuse(env.rig, { sid: S2_SID, iova }, { event: 'F_WALK_EABT', s2: true, cls: IN, fetchAddr: s2Desc });
  });

  it('is recorded with STE.S2R = 0', () => {
    const env = nestedStream({ ste: { s2Record: false } });
    const s2Desc = descChain(env.s2, DATA_IPA)[1]!;
    env.rig.mem.markAbsent(s2Desc, 8);
    refuse(env.rig, {}, { event: 'F_WALK_EABT', s2: true, cls: IN, fetchAddr: s2Desc });
  });
});

describe('F_TRANSLATION (§7.3.13)', () => {
  it('stage 1, invalid descriptor: S2 = 0, CLASS = IN, IPA 0', () => {
    const env = s1Stream();
    refuse(env.rig, { iova: HOLE_VA }, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });

  it('stage 1, VA beyond the range of T0SZ', () => {
    const env = s1Stream();
    refuse(env.rig, { iova: BEYOND_48 }, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });

  it('stage 1, a VA in the TTB0 half with EPD0 = 1', () => {
    const env = s1Stream({ cd: { epd0: true } });
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });

  it('records the SubstreamID (SSV = 1)', () => {
    const env = s1Stream({ cdMax: 2, cds: [0, 3] });
    refuse(env.rig, { ssid: 3, iova: HOLE_VA }, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });

  it('CD.R = 0: suppressed, the transaction aborts', () => {
    const env = s1Stream({ cd: { record: false } });
    refuse(
      env.rig,
      { iova: HOLE_VA },
      { event: 'F_TRANSLATION', s2: false, cls: IN },
      { disposition: 'suppressed' },
    );
  });

  it('CD.A = 0: terminated as RAZ/WI, recorded', () => {
    const env = s1Stream({ cd: { abort: false } });
    refuse(
      env.rig,
      { iova: HOLE_VA },
      { event: 'F_TRANSLATION', s2: false, cls: IN },
      { status: TXN_RAZ_WI },
    );
  });

  it('CD.A = 0, CD.R = 0: RAZ/WI, silent', () => {
    const env = s1Stream({ cd: { abort: false, record: false } });
    refuse(
      env.rig,
      { iova: HOLE_VA, access: ACCESS_WRITE },
      { event: 'F_TRANSLATION', s2: false, cls: IN },
      { status: TXN_RAZ_WI, disposition: 'suppressed' },
    );
  });

  it('nested, stage 2 on the final IPA: S2 = 1, CLASS = IN, IPA = the IPA', () => {
    const env = nestedStream();
    ok(env.rig, {}, env.data.paBase + OFF);
    mustMap(env.s1, IOVA + PAGE_SIZE, HOLE_IPA, PAGE_SIZE, RW);
    const iova = VA + PAGE_SIZE;
    refuse(env.rig, { iova }, { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: HOLE_IPA });
  });

  it('nested, stage 2 fault translating the stage-1 table base: S2 = 1, CLASS = TT, IPA = descriptor IPA', () => {
    const env = nestedStream();
    const s1Root = descChain(env.s1, VA)[0]!;
    expect(env.s2.unmap(PT_IPA, 2 * MiB)).toBe(2 * MiB);
    refuse(env.rig, {}, { event: 'F_TRANSLATION', s2: true, cls: TT, ipa: page(s1Root) });
  });

  it('nested, stage 2 fault translating a level-2 table address: IPA is that descriptor IPA', () => {
    const env = nestedStream();
    const chain = descChain(env.s1, VA);
    // Point the level-1 table descriptor at a level-2 table in an IPA stage 2 does not map.
    retarget(env.s1.mem, chain[1]!, HOLE_TABLE_IPA);
    const l2Index = Math.floor(VA / 2 ** 21) % 512;
    refuse(
      env.rig,
      {},
      { event: 'F_TRANSLATION', s2: true, cls: TT, ipa: page(HOLE_TABLE_IPA + 8 * l2Index) },
    );
  });

  it('nested, stage 2 fault on the CD address: S2 = 1, CLASS = CD, IPA = the CD address', () => {
    const env = nestedStream({ cdMax: 0 });
    expect(env.s2.unmap(CFG_IPA, 2 * MiB)).toBe(2 * MiB);
    refuse(env.rig, {}, { event: 'F_TRANSLATION', s2: true, cls: CD, ipa: page(env.cdt.ptr) });
  });

  it('nested, S1ContextPtr at an IPA stage 2 does not map: CLASS = CD, IPA = the CD address', () => {
    const ctx = HOLE_TABLE_IPA + 0x40;
    const env = nestedStream({ ste: { s1ContextPtr: ctx } });
    refuse(env.rig, { ssid: -1 }, { event: 'F_TRANSLATION', s2: true, cls: CD, ipa: page(ctx) });
  });

  it('nested 2-level CD table, stage 2 fault on the L1CD address: CLASS = CD, IPA = the L1CD address', () => {
    const env = nestedStream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [65] });
    const l1cd = env.cdt.l1Addr(1);
    expect(env.s2.unmap(page(l1cd), PAGE_SIZE)).toBe(PAGE_SIZE);
    expect(page(env.cdt.cdAddr(65))).not.toBe(page(l1cd));
    refuse(env.rig, { ssid: 65 }, { event: 'F_TRANSLATION', s2: true, cls: CD, ipa: page(l1cd) });
  });

  it('nested 2-level CD table, stage 2 fault on the CD address in its leaf table: IPA = the CD address', () => {
    const env = nestedStream({ cdFmt: S1FMT_4K_L2, cdMax: 8, cds: [65] });
    const cdIpa = env.cdt.cdAddr(65);
    expect(env.s2.unmap(page(cdIpa), PAGE_SIZE)).toBe(PAGE_SIZE);
    refuse(env.rig, { ssid: 65 }, { event: 'F_TRANSLATION', s2: true, cls: CD, ipa: page(cdIpa) });
    // A failed CD fetch is not cached: the CD is used once stage 2 maps it again.
    mustMap(env.s2, page(cdIpa), paOf(env.cfg, page(cdIpa)), PAGE_SIZE, RWX);
    ok(env.rig, { ssid: 65 }, env.data.paBase + OFF);
  });

  it('a stage-2 fault on the CD address reports PnU/InD after the STE overrides', () => {
    const env = nestedStream({ ste: { privCfg: PRIVCFG_PRIV, instCfg: INSTCFG_INSTR } });
    expect(env.s2.unmap(CFG_IPA, 2 * MiB)).toBe(2 * MiB);
    refuse(
      env.rig,
      { priv: false, access: ACCESS_READ },
      { event: 'F_TRANSLATION', s2: true, cls: CD, ipa: page(env.cdt.ptr), pnu: true, ind: true },
    );
  });

  it('stage-2-only: IPA beyond S2T0SZ (40 bits): S2 = 1, CLASS = IN', () => {
    const env = nestedStream();
    const iova = 2 ** 40 + OFF;
    refuse(env.rig, { sid: S2_SID, iova }, { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: page(iova) });
  });

  it('STE.S2R = 0: a stage-2 fault is suppressed', () => {
    const env = nestedStream({ ste: { s2Record: false } });
    mustMap(env.s1, IOVA + PAGE_SIZE, HOLE_IPA, PAGE_SIZE, RW);
    refuse(
      env.rig,
      { iova: VA + PAGE_SIZE },
      { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: HOLE_IPA },
      { disposition: 'suppressed' },
    );
  });

  it('CD.R = 0 and CD.A = 0 do not apply to stage 2: recorded and aborted', () => {
    const env = nestedStream({ cd: { record: false, abort: false } });
    mustMap(env.s1, IOVA + PAGE_SIZE, HOLE_IPA, PAGE_SIZE, RW);
    refuse(env.rig, { iova: VA + PAGE_SIZE }, { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: HOLE_IPA });
  });

  it('STE.S2R = 0 does not apply to stage 1', () => {
    const env = nestedStream({ ste: { s2Record: false } });
    refuse(env.rig, { iova: HOLE_VA }, { event: 'F_TRANSLATION', s2: false, cls: IN });
  });
});

describe('F_ADDR_SIZE (§7.3.14)', () => {
  it('stage-1 output address beyond CD.IPS', () => {
    const env = s1Stream({ cd: { ipsBits: 32 } });
    mustMap(env.pt, IOVA + PAGE_SIZE, 0x1_0000_0000, PAGE_SIZE, RW);
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { iova: VA + PAGE_SIZE }, { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it('CD.IPS above the OAS is capped at the OAS (not ILLEGAL)', () => {
    const env = s1Stream({ features: { oasBits: 40 }, cd: { ipsBits: 48 } });
    mustMap(env.pt, IOVA + PAGE_SIZE, 2 ** 40, PAGE_SIZE, RW);
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { iova: VA + PAGE_SIZE }, { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it('stage-1 next-level table address beyond CD.IPS', () => {
    const env = s1Stream({ cd: { ipsBits: 32 } });
    retarget(env.rig.mem, descChain(env.pt, VA)[0]!, 0x1_0000_0000);
    refuse(env.rig, {}, { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it('stage-2 output address beyond S2PS (stage-2-only)', () => {
    const env = nestedStream({ s2OnlySte: { s2PsBits: 40 } });
    const ipa = 0xe000_0000;
    mustMap(env.s2, ipa, 2 ** 40, PAGE_SIZE, RWX);
    ok(env.rig, { sid: S2_SID, iova: DATA_IPA + OFF }, env.data.paBase + OFF);
    refuse(
      env.rig,
      { sid: S2_SID, iova: ipa + OFF, access: ACCESS_WRITE },
      { event: 'F_ADDR_SIZE', s2: true, cls: IN, ipa },
    );
  });

  it('stage-2 output address beyond S2PS (nested): S2 = 1, CLASS = IN, IPA', () => {
    const env = nestedStream({ ste: { s2PsBits: 40 } });
    const ipa = 0xe000_0000;
    mustMap(env.s2, ipa, 2 ** 40, PAGE_SIZE, RWX);
    mustMap(env.s1, IOVA + PAGE_SIZE, ipa, PAGE_SIZE, RW);
    refuse(env.rig, { iova: VA + PAGE_SIZE }, { event: 'F_ADDR_SIZE', s2: true, cls: IN, ipa });
  });

  it('S2PS above the OAS is capped at the OAS (not ILLEGAL)', () => {
    const env = nestedStream({ features: { oasBits: 40 }, s2OnlySte: { s2PsBits: 48 } });
    const ipa = 0xe000_0000;
    mustMap(env.s2, ipa, 2 ** 40, PAGE_SIZE, RWX);
    ok(env.rig, { sid: S2_SID, iova: DATA_IPA + OFF }, env.data.paBase + OFF);
    refuse(env.rig, { sid: S2_SID, iova: ipa + OFF }, { event: 'F_ADDR_SIZE', s2: true, cls: IN, ipa });
  });

  it('bypass STE, input >= 2^OAS: stage-1 fault, S2 = 0, CLASS = IN', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'bypass' });
    ok(rig, { iova: 2 ** 48 - 1 }, 2 ** 48 - 1);
    refuse(rig, { iova: BEYOND_48 }, { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it('bypass STE with PRIVCFG = privileged: the record has PnU after the override', () => {
    const rig = new SmmuRig();
    rig.writeSte(SID, { config: 'bypass', privCfg: PRIVCFG_PRIV });
    refuse(rig, { iova: BEYOND_48, priv: false }, { event: 'F_ADDR_SIZE', s2: false, cls: IN, pnu: true });
  });

  it('stage-2-only STE, input >= 2^IAS: stage-1 fault, recorded even with S2R = 0', () => {
    const env = nestedStream({ s2OnlySte: { s2Record: false } });
    refuse(
      env.rig,
      { sid: S2_SID, iova: BEYOND_48, access: ACCESS_WRITE },
      { event: 'F_ADDR_SIZE', s2: false, cls: IN },
    );
  });

  it('stage-2-only STE with INSTCFG = instruction: the record has InD after the override', () => {
    const env = nestedStream({ s2OnlySte: { instCfg: INSTCFG_INSTR } });
    refuse(
      env.rig,
      { sid: S2_SID, iova: BEYOND_48 },
      { event: 'F_ADDR_SIZE', s2: false, cls: IN, ind: true },
    );
  });

  it('S1DSS = bypass without a SubstreamID, input >= 2^IAS', () => {
    const env = s1Stream({ cdMax: 4, ste: { s1Dss: S1DSS_BYPASS } });
    ok(env.rig, {}, VA);
    refuse(env.rig, { iova: BEYOND_48 }, { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it('CD.R = 0 suppresses a stage-1 F_ADDR_SIZE from the walk', () => {
    const env = s1Stream({ cd: { ipsBits: 32, record: false } });
    mustMap(env.pt, IOVA + PAGE_SIZE, 0x1_0000_0000, PAGE_SIZE, RW);
    refuse(
      env.rig,
      { iova: VA + PAGE_SIZE },
      { event: 'F_ADDR_SIZE', s2: false, cls: IN },
      { disposition: 'suppressed' },
    );
  });
});

describe('F_ACCESS (§7.3.15)', () => {
  it('AF = 0 at stage 1', () => {
    const env = s1Stream();
    clearAf(env.rig.mem, leafOf(env.pt, VA));
    refuse(env.rig, {}, { event: 'F_ACCESS', s2: false, cls: IN });
  });

  it('CD.AFFD = 1: AF = 0 at stage 1 is not a fault', () => {
    const env = s1Stream({ cd: { affd: true } });
    clearAf(env.rig.mem, leafOf(env.pt, VA));
    ok(env.rig, {}, env.dataPa + OFF);
  });

  it('AF = 0 at stage 2 on the final IPA: S2 = 1, CLASS = IN, IPA', () => {
    const env = nestedStream();
    clearAf(env.rig.mem, leafOf(env.s2, DATA_IPA));
    refuse(env.rig, {}, { event: 'F_ACCESS', s2: true, cls: IN, ipa: DATA_IPA });
  });

  it('AF = 0 at stage 2 on the CD address: S2 = 1, CLASS = CD', () => {
    const env = nestedStream();
    clearAf(env.rig.mem, leafOf(env.s2, CFG_IPA));
    refuse(env.rig, {}, { event: 'F_ACCESS', s2: true, cls: CD, ipa: page(env.cdt.ptr) });
  });

  it('STE.S2AFFD = 1: AF = 0 at stage 2 is not a fault', () => {
    const env = nestedStream({ ste: { s2Affd: true } });
    clearAf(env.rig.mem, leafOf(env.s2, DATA_IPA));
    clearAf(env.rig.mem, leafOf(env.s2, CFG_IPA));
    ok(env.rig, {}, env.data.paBase + OFF);
  });

  it('stage-2-only: AF = 0', () => {
    const env = nestedStream();
    clearAf(env.rig.mem, leafOf(env.s2, DATA_IPA));
    const iova = DATA_IPA + OFF;
    refuse(env.rig, { sid: S2_SID, iova }, { event: 'F_ACCESS', s2: true, cls: IN, ipa: DATA_IPA });
  });
});

describe('F_PERMISSION (§7.3.16)', () => {
  it('write to a read-only page at stage 1', () => {
    const env = s1Stream({ prot: RO });
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_PERMISSION', s2: false, cls: IN });
  });

  it('unprivileged access to a page without EL0 access', () => {
    const env = s1Stream({ prot: { read: true, write: true } });
    ok(env.rig, { priv: true, access: ACCESS_WRITE }, env.dataPa + OFF);
    refuse(env.rig, { priv: false }, { event: 'F_PERMISSION', s2: false, cls: IN });
  });

  it('execute from a UXN page', () => {
    const env = s1Stream({ prot: RO });
    refuse(env.rig, { access: ACCESS_EXEC }, { event: 'F_PERMISSION', s2: false, cls: IN });
  });

  it('STE.PRIVCFG = privileged: an unprivileged request is recorded with PnU = 1', () => {
    const env = s1Stream({ prot: { read: true, write: false }, ste: { privCfg: PRIVCFG_PRIV } });
    ok(env.rig, { priv: false }, env.dataPa + OFF);
    refuse(
      env.rig,
      { priv: false, access: ACCESS_WRITE },
      { event: 'F_PERMISSION', s2: false, cls: IN, pnu: true },
    );
  });

  it('STE.PRIVCFG = unprivileged: a privileged request is recorded with PnU = 0', () => {
    const env = s1Stream({ prot: { read: true, write: true }, ste: { privCfg: PRIVCFG_UNPRIV } });
    refuse(env.rig, { priv: true }, { event: 'F_PERMISSION', s2: false, cls: IN, pnu: false });
  });

  it('STE.INSTCFG = instruction: a read is recorded with InD = 1', () => {
    const env = s1Stream({ prot: RW, ste: { instCfg: INSTCFG_INSTR } });
    ok(env.rig, { access: ACCESS_WRITE }, env.dataPa + OFF);
    refuse(env.rig, { access: ACCESS_READ }, { event: 'F_PERMISSION', s2: false, cls: IN, ind: true });
  });

  it('STE.INSTCFG = data: an instruction fetch from a UXN page is a data read (no fault)', () => {
    const env = s1Stream({ prot: RO, ste: { instCfg: INSTCFG_DATA } });
    ok(env.rig, { access: ACCESS_EXEC }, env.dataPa + OFF);
  });

  it('stage 2: instruction fetch from a page with stage-2 XN: S2 = 1, CLASS = IN', () => {
    const env = nestedStream({
      s1Prot: { read: true, write: false, user: true, exec: true },
      s2DataProt: RW,
    });
    ok(env.rig, {}, env.data.paBase + OFF);
    refuse(env.rig, { access: ACCESS_EXEC }, { event: 'F_PERMISSION', s2: true, cls: IN, ipa: DATA_IPA });
  });

  it('stage 2: the CD address is not readable: S2 = 1, CLASS = CD', () => {
    const env = nestedStream({ s2CfgProt: { read: false, write: true } });
    refuse(env.rig, {}, { event: 'F_PERMISSION', s2: true, cls: CD, ipa: page(env.cdt.ptr) });
  });

  it('CD.A = 0: RAZ/WI, recorded', () => {
    const env = s1Stream({ prot: RO, cd: { abort: false } });
    refuse(
      env.rig,
      { access: ACCESS_WRITE },
      { event: 'F_PERMISSION', s2: false, cls: IN },
      { status: TXN_RAZ_WI },
    );
  });

  it('stage 2: write to a page S2AP makes read-only: S2 = 1, CLASS = IN, IPA', () => {
    const env = nestedStream({ s2DataProt: { read: true, write: false } });
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_PERMISSION', s2: true, cls: IN, ipa: DATA_IPA });
  });

  it('stage 2: a stage-1 descriptor read from a write-only IPA: CLASS = TT, TTRnW = 1', () => {
    const env = nestedStream({ s2PtProt: { read: false, write: true } });
    const s1Root = descChain(env.s1, VA)[0]!;
    refuse(
      env.rig,
      { access: ACCESS_WRITE },
      {
        event: 'F_PERMISSION',
        s2: true,
        cls: TT,
        ttrnw: true,
        ipa: page(s1Root),
      },
    );
  });

  it('a fault served from an IOTLB hit gives the same record as a cold walk (stage 1)', () => {
    const want: Want = { event: 'F_PERMISSION', s2: false, cls: IN };
    const warm = s1Stream({ prot: RO });
    ok(warm.rig, {}, warm.dataPa + OFF);
    expect(warm.smmu.iotlb.countValid()).toBe(1);
    const hit = refuse(warm.rig, { access: ACCESS_WRITE }, want);
    expect(warm.smmu.stats.walks).toBe(1);
    const cold = s1Stream({ prot: RO });
    const walked = refuse(cold.rig, { access: ACCESS_WRITE }, want);
    expect(cold.smmu.stats.walks).toBe(1);
    expect(hit.event).toEqual(walked.event);
  });

  it('a fault served from an IOTLB hit gives the same record as a cold walk (stage 2)', () => {
    const want: Want = { event: 'F_PERMISSION', s2: true, cls: IN, ipa: DATA_IPA };
    const warm = nestedStream({ s2DataProt: { read: true, write: false } });
    ok(warm.rig, {}, warm.data.paBase + OFF);
    expect(warm.smmu.iotlb.countValid()).toBe(1);
    const hit = refuse(warm.rig, { access: ACCESS_WRITE, priv: true }, want);
    expect(warm.smmu.stats.walks).toBe(1);
    const cold = nestedStream({ s2DataProt: { read: true, write: false } });
    const walked = refuse(cold.rig, { access: ACCESS_WRITE, priv: true }, want);
    expect(hit.event).toEqual(walked.event);
  });

  it('a fault served from an IOTLB hit follows CD.A = 0 and CD.R = 0 (RAZ/WI, silent)', () => {
    const env = s1Stream({ prot: RO, cd: { abort: false, record: false } });
    ok(env.rig, {}, env.dataPa + OFF);
    refuse(
      env.rig,
      { access: ACCESS_WRITE },
      { event: 'F_PERMISSION', s2: false, cls: IN },
      { status: TXN_RAZ_WI, disposition: 'suppressed' },
    );
    expect(env.smmu.stats.walks).toBe(1);
  });

  it('a fault served from an IOTLB hit keeps the STE overrides (PRIVCFG = privileged)', () => {
    const want: Want = { event: 'F_PERMISSION', s2: false, cls: IN, pnu: true };
    const warm = s1Stream({ prot: { read: true, write: false }, ste: { privCfg: PRIVCFG_PRIV } });
    ok(warm.rig, {}, warm.dataPa + OFF);
    const hit = refuse(warm.rig, { access: ACCESS_WRITE }, want);
    const cold = s1Stream({ prot: { read: true, write: false }, ste: { privCfg: PRIVCFG_PRIV } });
    expect(refuse(cold.rig, { access: ACCESS_WRITE }, want).event).toEqual(hit.event);
  });
});

describe('refused transactions leave state unchanged', () => {
  it('control: a successful translation adds an IOTLB entry, a refused one does not', () => {
    const env = s1Stream({ prot: RO });
    expect(env.smmu.iotlb.countValid()).toBe(0);
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_PERMISSION', s2: false, cls: IN });
    refuse(env.rig, { iova: HOLE_VA }, { event: 'F_TRANSLATION', s2: false, cls: IN });
    expect(env.smmu.iotlb.countValid()).toBe(0);
    ok(env.rig, {}, env.dataPa + OFF);
    expect(env.smmu.iotlb.countValid()).toBe(1);
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_PERMISSION', s2: false, cls: IN });
    expect(env.smmu.iotlb.countValid()).toBe(1);
  });

  it('control: the memory check sees a change outside the event queue', () => {
    const env = s1Stream();
    const before = snapshot(env.rig);
    env.rig.mem.write32(env.dataPa, 1);
    expect(changedOutsideEventq(env.rig, before)).toEqual([`0x${env.dataPa.toString(16)}`]);
  });
});

describe('order of checks (§7.3.22)', () => {
  it('C_BAD_STREAMID before F_STE_FETCH (L1STD page absent)', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    rig.mem.markAbsent(rig.strtabBase, 8);
    refuse(rig, { sid: 0x1_0000 }, { event: 'C_BAD_STREAMID' });
  });

  it('C_BAD_STREAMID (Span 0) before F_STE_FETCH of the L2 table', () => {
    const rig = new SmmuRig({ sidLog2: 16, split: 6 });
    const l2 = rig.alloc.alloc(PAGE_SIZE)!;
    rig.mem.markAbsent(l2, PAGE_SIZE);
    rig.writeL1std(3, 0, l2);
    refuse(rig, { sid: 0xc1 }, { event: 'C_BAD_STREAMID' });
  });

  it('C_BAD_STE beats every later check', () => {
    // Nested STE with S2SL0 inconsistent with S2T0SZ, S1CDMax = 4, S1DSS = terminate, and the CD page absent.
    const env = nestedStream({ ste: { s2Sl0: 0, s1CdMax: 4, s1Dss: S1DSS_TERMINATE } });
    env.rig.mem.markAbsent(paOf(env.cfg, env.cdt.ptr), 64);
    refuse(env.rig, { ssid: 99 }, { event: 'C_BAD_STE' }); // else C_BAD_SUBSTREAMID
    refuse(env.rig, {}, { event: 'C_BAD_STE' }); // else F_STREAM_DISABLED
    refuse(env.rig, { ssid: 1 }, { event: 'C_BAD_STE' }); // else F_CD_FETCH
  });

  it('C_BAD_SUBSTREAMID beats F_STREAM_DISABLED (SSID 0, S1CDMax = 0, S1DSS = SSID0)', () => {
    const env = s1Stream({ ste: { s1Dss: S1DSS_SSID0 } });
    refuse(env.rig, { ssid: 0 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('C_BAD_SUBSTREAMID before the CD fetch (CD table page absent)', () => {
    const env = s1Stream({ cdMax: 4 });
    env.rig.mem.markAbsent(env.cdt.ptr, 64);
    refuse(env.rig, { ssid: 16 }, { event: 'C_BAD_SUBSTREAMID' });
  });

  it('F_STREAM_DISABLED before the CD fetch (CD table page absent)', () => {
    const env = s1Stream({ cdMax: 4, ste: { s1Dss: S1DSS_TERMINATE } });
    env.rig.mem.markAbsent(env.cdt.ptr, 64);
    refuse(env.rig, {}, { event: 'F_STREAM_DISABLED' });
  });

  it('stage-1 permission is reported before a stage-2 fault on the output IPA', () => {
    const env = nestedStream();
    mustMap(env.s1, IOVA + PAGE_SIZE, HOLE_IPA, PAGE_SIZE, RO);
    const iova = VA + PAGE_SIZE;
    refuse(env.rig, { iova, access: ACCESS_WRITE }, { event: 'F_PERMISSION', s2: false, cls: IN });
    refuse(env.rig, { iova }, { event: 'F_TRANSLATION', s2: true, cls: IN, ipa: HOLE_IPA });
  });

  it('a stage-2 fault on a stage-1 table IPA is reported before the stage-1 fault on the leaf', () => {
    const env = nestedStream();
    expect(env.s2.unmap(PT_IPA, 2 * MiB)).toBe(2 * MiB);
    const s1Root = descChain(env.s1, HOLE_VA)[0]!;
    refuse(env.rig, { iova: HOLE_VA }, { event: 'F_TRANSLATION', s2: true, cls: TT, ipa: page(s1Root) });
  });

  it('stage 2: access flag before permission', () => {
    const env = nestedStream({ s2DataProt: { read: true, write: false } });
    clearAf(env.rig.mem, leafOf(env.s2, DATA_IPA));
    refuse(env.rig, { access: ACCESS_WRITE }, { event: 'F_ACCESS', s2: true, cls: IN, ipa: DATA_IPA });
  });

  /**
   * Four leaves of one stage-1 table (CD.IPS = 32 bits): A and C output above 2^32, B below; A and B
   * have AF = 0; A, B, C are read-only, D is writable and outputs above 2^32.
   */
  function leafOrderEnv(faultOrder: 'architecture' | 'qemu'): S1Env {
    const env = s1Stream({ features: { faultOrder }, cd: { ipsBits: 32 }, prot: RO });
    const high = 0x1_0000_0000;
    mustMap(env.pt, IOVA + 1 * PAGE_SIZE, high, PAGE_SIZE, RO);
    mustMap(env.pt, IOVA + 2 * PAGE_SIZE, env.dataPa, PAGE_SIZE, RO);
    mustMap(env.pt, IOVA + 3 * PAGE_SIZE, high + PAGE_SIZE, PAGE_SIZE, RO);
    mustMap(env.pt, IOVA + 4 * PAGE_SIZE, high + 2 * PAGE_SIZE, PAGE_SIZE, RW);
    clearAf(env.rig.mem, leafOf(env.pt, IOVA + 1 * PAGE_SIZE));
    clearAf(env.rig.mem, leafOf(env.pt, IOVA + 2 * PAGE_SIZE));
    return env;
  }
  const write = (leaf: number): Txn => ({ iova: VA + leaf * PAGE_SIZE, access: ACCESS_WRITE });

  it('within a stage: address size, then access flag, then permission', () => {
    const env = leafOrderEnv('architecture');
    refuse(env.rig, write(1), { event: 'F_ADDR_SIZE', s2: false, cls: IN });
    refuse(env.rig, write(2), { event: 'F_ACCESS', s2: false, cls: IN });
    refuse(env.rig, write(0), { event: 'F_PERMISSION', s2: false, cls: IN });
    refuse(env.rig, write(3), { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });

  it("faultOrder 'qemu': access flag, then permission, then address size", () => {
    const env = leafOrderEnv('qemu');
    refuse(env.rig, write(1), { event: 'F_ACCESS', s2: false, cls: IN });
    refuse(env.rig, write(3), { event: 'F_PERMISSION', s2: false, cls: IN });
    refuse(env.rig, write(4), { event: 'F_ADDR_SIZE', s2: false, cls: IN });
  });
});

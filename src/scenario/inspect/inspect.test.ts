/**
 * `vsva inspect` against the live SMMU: a real configuration is built with the hardware rig
 * (2-level stream table, a nested STE with a 2-level CD table in guest memory, stage-1 and stage-2
 * tables from the io-pgtable-like builder, a stage-1-only stream, a broken STE), its memory is
 * dumped to image files, and the decoder — given only those files and register values — must
 * agree with what `Smmu.transact` does: same PA, same event, same number of descriptor reads.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex } from '../../arch/bits.ts';
import {
  SMMU_CR0,
  SMMU_CR2,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type Access } from '../../arch/vmsa.ts';
import { PAGE_SIZE } from '../../hw/memory.ts';
import { CdTable, type GuestRam, SmmuRig } from '../../hw/smmuv3/rig.ts';
import { DmaResult, TXN_OK } from '../../hw/smmuv3/smmu.ts';
import { cmdCfgiAll, cmdSync, cmdTlbiNsnhAll } from '../../hw/smmuv3/structures.ts';
import type { PageTable } from '../../hw/vmsa/pgtable.ts';
import {
  type AccessName,
  dumpImages,
  eventReport,
  type InspectReport,
  inspect,
  type MemoryImage,
  parseImageSpec,
  parseRegisterSpec,
  type RegisterValues,
  readImages,
  registersFromSpecs,
  renderInspect,
} from './index.ts';

const NESTED_SID = 0x1234;
const S1_SID = 0x2001;
const BAD_SID = 0x2002;
const SSID = 37;
const VA = 0x2345_6000_0000;
const VA_RO = VA + 0x1000;
const VA_OUTSIDE = VA + 0x2000; // stage 1 maps it to an IPA stage 2 does not map
const HOST_VA = 0x1000_0000;

interface World {
  rig: SmmuRig;
  guest: GuestRam;
  s2: PageTable;
  s1: PageTable;
  cds: CdTable;
  regs: RegisterValues;
  dir: string;
  specs: string[];
  images: MemoryImage[];
}

function buildWorld(): World {
  const rig = new SmmuRig({ sidLog2: 16, split: 8 });
  const guest = rig.guestRam(0x8000_0000, 0x40_0000);
  const s2 = rig.stage2For(guest, 12, 48, 48, true); // 4 levels from level 0, page by page
  const s1 = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 40, nonGlobal: true }, guest.alloc);
  const rw = { read: true, write: true, user: true };
  expect(s1.map(VA, guest.ipaBase + 0x20_0000, 0x1000, rw).ok).toBe(true);
  expect(s1.map(VA_RO, guest.ipaBase + 0x20_1000, 0x1000, { read: true, write: false, user: true }).ok).toBe(
    true,
  );
  expect(s1.map(VA_OUTSIDE, 0xf0_0000_0000, 0x1000, rw).ok).toBe(true);
  expect(s1.map(VA + 0x20_0000, guest.ipaBase + 0x30_0000, 0x10_0000, { ...rw, exec: true }).ok).toBe(true);
  const cds = new CdTable(guest.view, guest.alloc, 1, 8); // 2-level, 4KB leaves, 256 CDs, in guest memory
  cds.write(SSID, { t0sz: 16, granule0: 12, ttb0: s1.root, ipsBits: 40, asid: 7 });
  rig.writeSte(NESTED_SID, {
    config: 'nested',
    s1ContextPtr: cds.ptr,
    s1Fmt: cds.fmt,
    s1CdMax: cds.cdMax,
    s2Vmid: 5,
    s2T0sz: 16,
    s2Sl0: s2.sl0,
    s2Granule: 12,
    s2PsBits: 48,
    s2Ttb: s2.root,
  });
  // A stage-1-only stream: linear CD table in host memory, a 2 MiB block.
  const hs1 = rig.pageTable({ stage: 1, granule: 12, iasBits: 39, oasBits: 48 });
  expect(hs1.map(HOST_VA, 0x7_0000_0000, 0x20_0000, { read: true, write: true, user: true }).ok).toBe(true);
  const hcds = rig.cdTable(0, 2);
  hcds.write(1, { t0sz: 25, granule0: 12, ttb0: hs1.root, ipsBits: 48, asid: 3 });
  rig.writeSte(S1_SID, { config: 's1', s1ContextPtr: hcds.ptr, s1CdMax: 2 });
  // S2T0SZ = 5 is outside the legal range: C_BAD_STE.
  rig.writeSte(BAD_SID, { config: 's2', s2T0sz: 5, s2Ttb: s2.root });
  rig.submit(cmdCfgiAll(), cmdSync());
  const smmu = rig.smmu;
  const tr = smmu.translationRegisters();
  const specs = [
    `STRTAB_BASE=${hex(tr.strtabBase)}`,
    `STRTAB_BASE_CFG=${hex(smmu.read32(SMMU_STRTAB_BASE_CFG))}`,
    `CR0=${hex(smmu.read32(SMMU_CR0))}`,
    `CR2=${hex(smmu.read32(SMMU_CR2))}`,
    `IDR0=${hex(smmu.read32(SMMU_IDR0))}`,
    `IDR1=${hex(smmu.read32(SMMU_IDR1))}`,
    `IDR3=${hex(smmu.read32(SMMU_IDR3))}`,
    `IDR5=${hex(smmu.read32(SMMU_IDR5))}`,
  ];
  const regs: Record<string, bigint> = {};
  for (const s of specs) {
    const p = parseRegisterSpec(s);
    if (!p.ok) throw new Error(p.error);
    regs[p.value.name] = p.value.value;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vsva-inspect-'));
  const imageSpecs = dumpImages(rig.mem, dir);
  const images = readImages(imageSpecs);
  if (!images.ok) throw new Error(images.error);
  return { rig, guest, s2, s1, cds, regs, dir, specs: imageSpecs, images: images.value };
}

const ACCESS: Readonly<Record<AccessName, Access>> = {
  read: ACCESS_READ,
  write: ACCESS_WRITE,
  exec: ACCESS_EXEC,
};

function live(
  w: World,
  sid: number,
  ssid: number,
  iova: number,
  access: AccessName = 'read',
  privileged = false,
) {
  const out = new DmaResult();
  w.rig.smmu.transact(
    { streamId: sid, substreamId: ssid, iova, size: 4, access: ACCESS[access], privileged },
    out,
  );
  w.rig.drainEvents();
  return out;
}

function field(r: { fields: readonly { name: string; value: number | string }[] } | null, name: string) {
  return r?.fields.find((f) => f.name === name)?.value;
}

let w: World;
beforeAll(() => {
  w = buildWorld();
});
afterAll(() => {
  if (w !== undefined) rmSync(w.dir, { recursive: true, force: true });
});

describe('image and register specs', () => {
  it('parses FILE@BASE and reports bad specs as values', () => {
    expect(parseImageSpec('ram.bin@0x8000_0000')).toEqual({
      ok: true,
      value: { file: 'ram.bin', base: 0x8000_0000 },
    });
    expect(parseImageSpec('a@b@4096')).toEqual({ ok: true, value: { file: 'a@b', base: 4096 } });
    const bad = parseImageSpec('ram.bin');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/FILE@BASE/);
    const badBase = parseImageSpec('ram.bin@zz');
    expect(!badBase.ok && badBase.error).toMatch(/not a number/);
    expect(parseImageSpec('ram.bin@0x10000000000000').ok).toBe(false);
  });

  it('parses NAME=VALUE with or without the SMMU_ prefix and checks width', () => {
    expect(parseRegisterSpec('strtab_base=0x4000_0000')).toEqual({
      ok: true,
      value: { name: 'SMMU_STRTAB_BASE', value: 0x4000_0000n },
    });
    expect(parseRegisterSpec('SMMU_CR0=5')).toEqual({ ok: true, value: { name: 'SMMU_CR0', value: 5n } });
    const wide = parseRegisterSpec('CR0=0x100000000');
    expect(!wide.ok && wide.error).toMatch(/32 bits/);
    const many = registersFromSpecs(['CR0=1', 'FOO=1', 'IDR0=x']);
    expect(!many.ok && many.error.split('\n')).toHaveLength(2);
    expect(registersFromSpecs(['CR0=1', 'cr2=2'])).toEqual({
      ok: true,
      value: { SMMU_CR0: 1n, SMMU_CR2: 2n },
    });
    const unknown = parseRegisterSpec('FOO=1');
    expect(!unknown.ok && unknown.error).toMatch(/not an SMMU register/);
    expect(parseRegisterSpec('CR0').ok).toBe(false);
    expect(parseRegisterSpec('STRTAB_BASE=0x4000000000000000').ok).toBe(true);
  });

  it('a missing image file is an error value', () => {
    const r = readImages([`${join(w.dir, 'nope.bin')}@0x1000`]);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/no such file/);
  });

  it('dumps exactly the backed memory, one file per contiguous run', () => {
    const total = w.images.reduce((n, i) => n + i.bytes.length, 0);
    expect(total).toBe(w.rig.mem.bytesBacked);
    for (const img of w.images) {
      const back = w.rig.mem.read(img.base, img.bytes.length);
      expect(back).toEqual(img.bytes);
    }
  });
});

describe('inspect a nested stream from memory images', () => {
  let r: InspectReport;
  let liveReads = 0;
  let livePa = -1;
  beforeAll(() => {
    r = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA + 0x123, access: 'read' },
    });
    const before = w.rig.smmu.stats.descReads;
    const out = live(w, NESTED_SID, SSID, VA + 0x123);
    liveReads = w.rig.smmu.stats.descReads - before;
    livePa = out.status === TXN_OK ? out.firstPa : -1;
  });

  it('is consistent and JSON-able', () => {
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(() => JSON.stringify(r)).not.toThrow();
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('finds the STE through the 2-level stream table', () => {
    const st = r.streamTable!;
    expect(st.format).toBe('2-level');
    expect(st.split).toBe(8);
    expect(st.log2Size).toBe(16);
    expect(st.base).toBe(hex(w.rig.strtabBase));
    expect(st.l1!.index).toBe(NESTED_SID >> 8);
    expect(st.l1!.addr).toBe(hex(w.rig.strtabBase + 8 * (NESTED_SID >> 8)));
    expect(st.l1!.fields.Span).toBe(9);
    expect(st.steAddr).toBe(hex(w.rig.steAddr(NESTED_SID)));
  });

  it('decodes the STE field by field', () => {
    const ste = r.ste!;
    expect(ste.valid).toBe(true);
    expect(ste.raw).toHaveLength(8);
    expect(field(ste, 'V')).toBe(1);
    expect(field(ste, 'Config')).toBe(7);
    expect(ste.fields.find((f) => f.name === 'Config')!.meaning).toMatch(/nested/);
    expect(field(ste, 'S1ContextPtr')).toBe(hex(w.cds.ptr));
    expect(field(ste, 'S1CDMax')).toBe(8);
    expect(field(ste, 'S1Fmt')).toBe(1);
    expect(field(ste, 'S1DSS')).toBe(0);
    expect(field(ste, 'S2VMID')).toBe(5);
    expect(field(ste, 'S2T0SZ')).toBe(16);
    expect(field(ste, 'S2SL0')).toBe(w.s2.sl0);
    expect(field(ste, 'S2TG')).toBe(0);
    expect(field(ste, 'S2AA64')).toBe(1);
    expect(field(ste, 'S2TTB')).toBe(hex(w.s2.root));
    expect(ste.summary).toMatch(/nested.*S2VMID 5/);
  });

  it('walks the CD table through stage 2 (L1CD and CD are IPAs)', () => {
    const ct = r.cdTable!;
    expect(ct.nested).toBe(true);
    expect(ct.cdIndex).toBe(SSID);
    expect(ct.l1!.ipa).toBe(hex(w.cds.l1Addr(0)));
    expect(ct.l1!.fields.V).toBe(1);
    expect(ct.cdAddr).toBe(hex(w.cds.cdAddr(SSID)));
    expect(ct.stage2Fetches.map((f) => f.what)).toEqual(['L1CD', 'CD']);
    for (const f of ct.stage2Fetches) {
      expect(f.reads).toHaveLength(4); // 4-level stage 2, page mappings
      expect(f.reads.map((s) => s.level)).toEqual([0, 1, 2, 3]);
      expect(f.reads.every((s) => s.stage === 2)).toBe(true);
      expect(f.reads[3]!.kind).toBe('page');
      expect(f.pa).toBe(hex(w.guest.paBase + (Number(f.ipa) - w.guest.ipaBase)));
    }
    const cd = r.cd!;
    expect(cd.valid).toBe(true);
    expect(cd.ipa).toBe(hex(w.cds.cdAddr(SSID)));
    expect(cd.addr).toBe(hex(w.guest.paBase + w.cds.cdAddr(SSID) - w.guest.ipaBase));
    expect(field(cd, 'ASID')).toBe(7);
    expect(field(cd, 'T0SZ')).toBe(16);
    expect(field(cd, 'TTB0')).toBe(hex(w.s1.root));
    expect(field(cd, 'EPD1')).toBe(1);
    expect(field(cd, 'MAIR')).toBe('0x4ff');
  });

  it('shows every read of the cold 4x4 nested walk, as many as the live SMMU makes', () => {
    const t = r.translation!;
    expect(liveReads).toBe(24);
    expect(t.descReads).toBe(liveReads);
    expect(t.reads).toHaveLength(24);
    expect(t.reads.filter((s) => s.stage === 1)).toHaveLength(4);
    // Each stage-1 read is preceded by the stage-2 walk of its table IPA.
    expect(t.reads.slice(0, 5).map((s) => [s.walk, s.stage, s.level])).toEqual([
      ['S2 of S1 L0 table', 2, 0],
      ['S2 of S1 L0 table', 2, 1],
      ['S2 of S1 L0 table', 2, 2],
      ['S2 of S1 L0 table', 2, 3],
      ['S1', 1, 0],
    ]);
    const s1Reads = t.reads.filter((s) => s.stage === 1);
    expect(s1Reads[0]!.tableBase).toBe(hex(w.s1.root));
    expect(s1Reads[0]!.descIpa).toBe(hex(w.s1.root + 8 * Number((BigInt(VA) >> 39n) & 511n)));
    expect(s1Reads.map((s) => s.kind)).toEqual(['table', 'table', 'table', 'page']);
    expect(s1Reads[3]!.output).toBe(hex(w.guest.ipaBase + 0x20_0123));
    expect(t.reads.slice(20).every((s) => s.walk === 'S2 of output')).toBe(true);
    expect(t.reads.map((s) => s.n)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(t.stage1).toMatchObject({ stage: 1, granule: '4KB', inputBits: 48, startLevel: 0 });
    expect(t.stage2).toMatchObject({ stage: 2, granule: '4KB', inputBits: 48, startLevel: 0 });
  });

  it('ends at the PA the live SMMU returns', () => {
    expect(livePa).toBe(w.guest.paBase + 0x20_0123);
    const t = r.translation!;
    expect(t.result.ok && t.result.pa).toBe(hex(livePa));
    expect(t.result.ok && t.result.perms).toContain('S1_UR');
    expect(r.verdict).toMatchObject({ status: 'ok', pa: hex(livePa) });
  });

  it('renders every section', () => {
    const text = renderInspect(r);
    if (process.env.SHOW_INSPECT) console.log(text);
    expect(text).toMatch(/Stream table: 2-level/);
    expect(text).toMatch(/L1STD\[18\]/);
    expect(text).toMatch(/Config +7 .*nested/);
    expect(text).toMatch(/stage-2 walk of the CD IPA/);
    expect(text).toMatch(/24 descriptor reads/);
    expect(text).toMatch(/24\. S2 of output/);
    expect(text).toMatch(new RegExp(`Verdict: ok PA ${hex(livePa)}`));
  });
});

describe('faults are the live SMMU faults', () => {
  const cases: [string, number, AccessName, string][] = [
    ['unmapped at stage 1', VA + 0x5000, 'read', 'F_TRANSLATION'],
    ['write to a read-only page', VA_RO, 'write', 'F_PERMISSION'],
    ['stage 1 output IPA not mapped at stage 2', VA_OUTSIDE, 'read', 'F_TRANSLATION'],
    ['execute a non-executable page', VA, 'exec', 'F_PERMISSION'],
  ];
  for (const [what, iova, access, name] of cases) {
    it(what, () => {
      const r = inspect({
        images: w.images,
        registers: w.regs,
        query: { sid: NESTED_SID, ssid: SSID, iova, access },
      });
      const out = live(w, NESTED_SID, SSID, iova, access);
      expect(out.event?.name).toBe(name);
      expect(r.problems).toEqual([]);
      expect(r.verdict!.event).toEqual(eventReport(out.event!));
      const t = r.translation!;
      expect(!t.result.ok && t.result.event).toEqual(eventReport(out.event!));
    });
  }

  it('a SubstreamID beyond S1CDMax is C_BAD_SUBSTREAMID, decided before any CD read', () => {
    const r = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: 300, iova: VA },
    });
    const out = live(w, NESTED_SID, 300, VA);
    expect(out.event?.name).toBe('C_BAD_SUBSTREAMID');
    expect(r.cdTable!.event).toEqual(eventReport(out.event!));
    expect(r.cd).toBeNull();
    expect(r.translation).toBeNull();
  });

  it('an L1CD that is not valid is C_BAD_SUBSTREAMID (second leaf table never written)', () => {
    const r = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: 200, iova: VA },
    });
    const out = live(w, NESTED_SID, 200, VA);
    expect(out.event?.name).toBe('C_BAD_SUBSTREAMID');
    expect(r.cdTable!.l1!.fields.V).toBe(0);
    expect(r.cdTable!.event).toEqual(eventReport(out.event!));
  });

  it('an invalid CD is C_BAD_CD with the reason', () => {
    const r = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: 38, iova: VA },
    });
    const out = live(w, NESTED_SID, 38, VA);
    expect(out.event?.name).toBe('C_BAD_CD');
    expect(r.cd!.valid).toBe(false);
    expect(r.cd!.reason).toBe('CD.V is 0');
    expect(r.cd!.event).toEqual(eventReport(out.event!));
    expect(r.verdict!.event).toEqual(eventReport(out.event!));
  });

  it('an ILLEGAL STE is C_BAD_STE with the reason, and its fields are still decoded', () => {
    const r = inspect({ images: w.images, registers: w.regs, query: { sid: BAD_SID, iova: 0x1000 } });
    const out = live(w, BAD_SID, -1, 0x1000);
    expect(out.event?.name).toBe('C_BAD_STE');
    expect(r.ste!.valid).toBe(false);
    expect(r.ste!.reason).toMatch(/S2T0SZ = 5/);
    expect(field(r.ste, 'S2T0SZ')).toBe(5);
    expect(r.ste!.event).toEqual(eventReport(out.event!));
    expect(r.verdict!.event).toEqual(eventReport(out.event!));
  });

  it('a StreamID whose L2 table was never made is C_BAD_STREAMID (L1STD.Span = 0)', () => {
    const r = inspect({ images: w.images, registers: w.regs, query: { sid: 0x7777, iova: 0 } });
    const out = live(w, 0x7777, -1, 0);
    expect(out.event?.name).toBe('C_BAD_STREAMID');
    expect(r.streamTable!.l1!.fields.Span).toBe(0);
    expect(r.streamTable!.event).toEqual(eventReport(out.event!));
  });
});

describe('a stage-1-only stream with a linear CD table', () => {
  it('translates through a 2 MiB block: three reads, same PA as the live SMMU', () => {
    const before = w.rig.smmu.stats.descReads;
    const out = live(w, S1_SID, 1, HOST_VA + 0x1_2345, 'write');
    const reads = w.rig.smmu.stats.descReads - before;
    expect(out.status).toBe(TXN_OK);
    const r = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: S1_SID, ssid: 1, iova: HOST_VA + 0x1_2345, access: 'write' },
    });
    expect(r.problems).toEqual([]);
    expect(r.cdTable!.format).toBe('linear');
    expect(r.cdTable!.stage2Fetches).toEqual([]);
    expect(field(r.cd, 'ASID')).toBe(3);
    const t = r.translation!;
    expect(t.descReads).toBe(reads);
    expect(t.reads.map((s) => s.kind)).toEqual(['table', 'block']);
    expect(t.stage2).toBeNull();
    expect(t.result.ok && t.result.pa).toBe(hex(out.firstPa));
    expect(t.result.ok && t.result.pageShift).toBe(21);
  });
});

describe('absent memory is reported, not thrown', () => {
  /** The images with one page cut out (a hole). */
  function withHole(images: MemoryImage[], page: number): MemoryImage[] {
    const out: MemoryImage[] = [];
    for (const img of images) {
      const end = img.base + img.bytes.length;
      if (page < img.base || page >= end) {
        out.push(img);
        continue;
      }
      if (page > img.base) out.push({ base: img.base, bytes: img.bytes.subarray(0, page - img.base) });
      if (page + PAGE_SIZE < end) {
        out.push({ base: page + PAGE_SIZE, bytes: img.bytes.subarray(page + PAGE_SIZE - img.base) });
      }
    }
    return out;
  }

  function withLivePageAbsent<T>(page: number, fn: () => T): T {
    w.rig.mem.markAbsent(page, PAGE_SIZE);
    w.rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync());
    try {
      return fn();
    } finally {
      w.rig.mem.markPresent(page, PAGE_SIZE);
      w.rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync());
    }
  }

  it('a missing stage-1 table page: F_WALK_EABT with the fetch address, as the SMMU reports it', () => {
    const good = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA },
    });
    // The page holding the stage-1 level-3 table (in guest RAM, reached through stage 2).
    const victim = good.translation!.reads[19]!;
    expect(victim).toMatchObject({ stage: 1, level: 3, kind: 'page' });
    const page = Number(victim.descAddr) - (Number(victim.descAddr) % PAGE_SIZE);
    const r = inspect({
      images: withHole(w.images, page),
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA },
    });
    const out = withLivePageAbsent(page, () => live(w, NESTED_SID, SSID, VA));
    expect(out.event?.name).toBe('F_WALK_EABT');
    expect(out.event?.fetchAddr).toBe(Number(victim.descAddr));
    expect(r.problems).toEqual([]);
    expect(r.verdict!.event).toEqual(eventReport(out.event!));
    const t = r.translation!;
    expect(t.reads).toHaveLength(20);
    expect(t.reads.at(-1)).toMatchObject({ stage: 1, level: 3, kind: 'absent', desc: null });
    expect(!t.result.ok && t.result.fetchAddr).toBe(victim.descAddr);
    expect(renderInspect(r)).toMatch(/ABSENT/);
  });

  it('a missing stage-2 table page: the same event as the SMMU, wherever it is first needed', () => {
    const good = inspect({
      images: w.images,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA },
    });
    for (const i of [0, 1, 2, 3, 23]) {
      const victim = good.translation!.reads[i]!;
      expect(victim.stage).toBe(2);
      const page = Number(victim.descAddr) - (Number(victim.descAddr) % PAGE_SIZE);
      const r = inspect({
        images: withHole(w.images, page),
        registers: w.regs,
        query: { sid: NESTED_SID, ssid: SSID, iova: VA },
      });
      const out = withLivePageAbsent(page, () => live(w, NESTED_SID, SSID, VA));
      expect(out.event?.name).toBe('F_WALK_EABT');
      expect(r.problems).toEqual([]);
      expect(r.verdict!.event).toEqual(eventReport(out.event!));
    }
  });

  it('a truncated image file ending before the STE: F_STE_FETCH', () => {
    const steAddr = w.rig.steAddr(NESTED_SID);
    const page = steAddr - (steAddr % PAGE_SIZE);
    const img = w.images.find((i) => steAddr >= i.base && steAddr < i.base + i.bytes.length)!;
    const file = join(w.dir, 'truncated.bin');
    writeFileSync(file, img.bytes.subarray(0, page - img.base));
    const others = w.specs.filter((s) => !s.endsWith(`@${hex(img.base)}`));
    const images = readImages([...others, `${file}@${hex(img.base)}`]);
    expect(images.ok).toBe(true);
    if (!images.ok) return;
    expect(readFileSync(file).length).toBe(page - img.base);
    const r = inspect({
      images: images.value,
      registers: w.regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA },
    });
    const end = img.base + img.bytes.length;
    w.rig.mem.markAbsent(page, end - page);
    w.rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync());
    const out = live(w, NESTED_SID, SSID, VA);
    w.rig.mem.markPresent(page, end - page);
    w.rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync());
    expect(out.event?.name).toBe('F_STE_FETCH');
    expect(r.ste!.absent).toBe(true);
    expect(r.ste!.event).toEqual(eventReport(out.event!));
    expect(renderInspect(r)).toMatch(/STE at 0x[0-9a-f]+ is absent/);
    expect(r.verdict!.event).toEqual(eventReport(out.event!));
  });

  it('no images at all: the L1STD fetch aborts', () => {
    const r = inspect({ images: [], registers: w.regs, query: { sid: NESTED_SID, iova: VA } });
    expect(r.streamTable!.event?.name).toBe('F_STE_FETCH');
    expect(r.streamTable!.l1!.value).toBeNull();
    expect(r.verdict!.event?.name).toBe('F_STE_FETCH');
  });
});

describe('input problems', () => {
  it('without STRTAB_BASE / STRTAB_BASE_CFG nothing is decoded and the report says why', () => {
    const r = inspect({ images: w.images, registers: { CR0: 1 }, query: { sid: 1, iova: 0 } });
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/STRTAB_BASE is required/);
    expect(r.problems.join('\n')).toMatch(/STRTAB_BASE_CFG is required/);
    expect(r.streamTable).toBeNull();
    expect(renderInspect(r)).toMatch(/problem: STRTAB_BASE is required/);
  });

  it('a bad query and an unknown register are problems, not exceptions', () => {
    const r = inspect({ images: [], registers: { ...w.regs, BOGUS: 1 }, query: { sid: -1, iova: 0.5 } });
    expect(r.ok).toBe(false);
    expect(r.problems.some((p) => p.includes('BOGUS'))).toBe(true);
    expect(r.problems.some((p) => p.includes('sid -1'))).toBe(true);
    expect(r.problems.some((p) => p.includes('iova 0.5'))).toBe(true);
  });

  it('without ID registers it assumes the default features and says so', () => {
    const regs = { STRTAB_BASE: w.regs.SMMU_STRTAB_BASE!, STRTAB_BASE_CFG: w.regs.SMMU_STRTAB_BASE_CFG! };
    const r = inspect({
      images: w.images,
      registers: regs,
      query: { sid: NESTED_SID, ssid: SSID, iova: VA },
    });
    expect(r.notes.join('\n')).toMatch(
      /IDR0, IDR1, IDR3, IDR5 not given: assuming the model's default features/,
    );
    expect(r.notes.join('\n')).toMatch(/SMMUEN = 1/);
    expect(r.verdict!.status).toBe('ok');
  });

  it('with no query only the registers and images are described', () => {
    const r = inspect({ images: w.images, registers: w.regs });
    expect(r.ok).toBe(true);
    expect(r.registers.find((x) => x.name === 'SMMU_STRTAB_BASE_CFG')!.fields).toMatchObject({
      LOG2SIZE: 16,
      SPLIT: 8,
      FMT: 1,
    });
    expect(r.ste).toBeNull();
  });
});

describe('property: inspect agrees with the live SMMU', () => {
  it('for random IOVAs, SubstreamIDs and accesses: same PA or same event', () => {
    const iovas = [VA, VA_RO, VA_OUTSIDE, VA + 0x5000, VA + 0x20_0000, VA + 0x40_0000, 0, 2 ** 48 - 0x1000];
    fc.assert(
      fc.property(
        fc.constantFrom(...iovas),
        fc.integer({ min: 0, max: 0xfff }),
        fc.constantFrom<AccessName>('read', 'write', 'exec'),
        fc.boolean(),
        fc.constantFrom(SSID, SSID, 38, 200, 300, -1),
        fc.constantFrom(NESTED_SID, NESTED_SID, S1_SID),
        (base, off, access, privileged, ssid, sid) => {
          const iova = base + off;
          const r = inspect({
            images: w.images,
            registers: w.regs,
            query: { sid, ...(ssid >= 0 ? { ssid } : {}), iova, access, privileged },
          });
          const out = live(w, sid, ssid, iova, access, privileged);
          expect(r.problems).toEqual([]);
          if (out.status === TXN_OK) expect(r.verdict).toMatchObject({ status: 'ok', pa: hex(out.firstPa) });
          else expect(r.verdict!.event).toEqual(out.event ? eventReport(out.event) : undefined);
        },
      ),
      { numRuns: 150, seed: 7 },
    );
  });
});

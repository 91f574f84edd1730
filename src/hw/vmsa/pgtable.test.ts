/**
 * Tests of the io-pgtable-like builder: the io-pgtable-arm selftest matrix (stage 1 and 2, every
 * granule, IAS <= OAS pairs, plus 52-bit with 64 KiB), descriptor bits, block splitting, table
 * freeing, all-or-nothing map, and a model-based property over random map/unmap sequences. Every
 * mapping is also walked by the fast Walker and the BigInt reference walker through `regime()`.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alignDown, hi32, isAligned, join64, lo32 } from '../../arch/bits.ts';
import { getField } from '../../arch/fields.ts';
import {
  DESC_AF,
  DESC_SH,
  DESC_TYPE,
  DESC_VALID,
  GRANULES,
  type Granule,
  granuleName,
  PERM,
  PERM_S1_ALL,
  PERM_S2_ALL,
  S1_AP,
  S1_ATTRINDX,
  S1_NG,
  S1_NS,
  S1_PXN,
  S1_UXN,
  S2_MEMATTR,
  S2_S2AP,
  S2_XN,
  WALK_OK,
  WALK_PERMISSION,
  WALK_TRANSLATION,
} from '../../arch/vmsa.ts';
import { PhysMem } from '../memory.ts';
import { PageAllocator } from '../page-alloc.ts';
import { PageTable, type PgtableConfig, type Prot, pgtableGeometry } from './pgtable.ts';
import type { StageRegime } from './regime.ts';
import { refTranslate } from './walk-ref.ts';
import { type S1Context, Walker } from './walker.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TABLES = 0x8000_0000;

interface Rig {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly pt: PageTable;
  readonly regime: StageRegime;
  readonly walker: Walker;
}

function rig(cfg: PgtableConfig, region = 16 * MiB, base = TABLES): Rig {
  const mem = new PhysMem();
  const alloc = new PageAllocator(mem, base, region);
  const made = PageTable.create(alloc, cfg);
  if (!made.ok) throw new Error(`create failed: ${made.detail}`);
  const reg = made.table.regime();
  if (!reg.ok) throw new Error(`regime failed: ${reg.reason}`);
  return { mem, alloc, pt: made.table, regime: reg.regime, walker: new Walker(mem) };
}

function s1Context(r: StageRegime): S1Context {
  return { tt0: r, tt1: null, tbi0: false, tbi1: false, twoRanges: false };
}

interface Translation {
  readonly pa: number;
  readonly shift: number;
  readonly perms: number;
  readonly nG: boolean;
}

/** Translates with the fast walker only; undefined on a translation fault. */
function fastWalk(r: Rig, iova: number): Translation | undefined {
  const w = r.walker;
  const s1 = r.regime.stage === 1 ? s1Context(r.regime) : null;
  const s2 = r.regime.stage === 2 ? r.regime : null;
  const f = w.translate(s1, s2, hi32(iova), lo32(iova), 0, 0);
  if (f !== WALK_OK) {
    expect(f).toBe(WALK_TRANSLATION);
    return undefined;
  }
  return { pa: join64(w.outHi, w.outLo), shift: w.shift, perms: w.perms, nG: w.nG };
}

/** Translates with both walkers, asserting they agree on the fault or on PA, size, permissions, nG. */
function walkBoth(r: Rig, iova: number): Translation | undefined {
  const s1 = r.regime.stage === 1 ? s1Context(r.regime) : null;
  const s2 = r.regime.stage === 2 ? r.regime : null;
  const fast = fastWalk(r, iova);
  const ref = refTranslate(r.mem, s1, s2, BigInt(iova), 0, 0);
  if (fast === undefined) {
    expect(ref.fault).toBe(WALK_TRANSLATION);
    return undefined;
  }
  expect(ref.fault).toBe(WALK_OK);
  if (ref.fault !== WALK_OK) return undefined;
  expect(ref.pa).toBe(BigInt(fast.pa));
  expect(ref.shift).toBe(fast.shift);
  expect(ref.perms).toBe(fast.perms);
  expect(ref.nG).toBe(fast.nG);
  return fast;
}

/** The backed pages of memory and a hash of their contents: any write shows up here. */
function snapshot(mem: PhysMem): string {
  const parts: string[] = [];
  for (const page of mem.backedPages()) {
    let h = 0x811c9dc5;
    for (const b of mem.read(page, 4096)!) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    parts.push(`${page.toString(16)}:${h.toString(16)}`);
  }
  return parts.join(',');
}

/** The leaf descriptor for `iova` as [lo, hi] words, found by following table descriptors. */
function leafWords(r: Rig, iova: number): [lo: number, hi: number] {
  const g = r.pt.granule;
  const words = new Uint32Array(2);
  let table = r.pt.root;
  let level = r.pt.startLevel;
  for (;;) {
    const shift = g + (g - 3) * (3 - level);
    const bits = level === r.pt.startLevel ? r.pt.geometry.startBits : g - 3;
    const slot = table + (Math.floor(iova / 2 ** shift) % 2 ** bits) * 8;
    expect(r.mem.read64(slot, words)).toBe(true);
    const [lo, hi] = [words[0]!, words[1]!];
    if (level < 3 && (lo & 3) === 3) {
      const high = (hi & 0xffff) + (r.pt.geometry.oa52 ? ((lo >>> 12) & 0xf) * 0x1_0000 : 0);
      table = alignDown(join64(high, lo), g);
      level++;
      continue;
    }
    return [lo, hi];
  }
}

const RW: Prot = { read: true, write: true };
const RO_X_USER: Prot = { read: true, write: false, exec: true, user: true };
const RW_USER_DEVICE: Prot = { read: true, write: true, user: true, cache: 'device' };
const PROTS = [RW, RO_X_USER, RW_USER_DEVICE] as const;

/** What the walkers must report for each of PROTS (the bypassed stage grants everything). */
function expectedPerms(stage: 1 | 2, i: number): number {
  if (stage === 1) {
    const s1 = [
      PERM.S1_PR | PERM.S1_PW,
      PERM.S1_PR | PERM.S1_UR | PERM.S1_PX | PERM.S1_UX,
      PERM.S1_PR | PERM.S1_PW | PERM.S1_UR | PERM.S1_UW,
    ][i]!;
    return s1 | PERM_S2_ALL;
  }
  const s2 = [PERM.S2_R | PERM.S2_W, PERM.S2_R | (PERM.S2_PX | PERM.S2_UX), PERM.S2_R | PERM.S2_W][i]!;
  return s2 | PERM_S1_ALL;
}

function alignUp(n: number, log2: number): number {
  return Math.ceil(n / 2 ** log2) * 2 ** log2;
}

// ---------------------------------------------------------------- geometry and configuration

describe('geometry', () => {
  it('derives start levels, concatenation and SL0 like io-pgtable-arm', () => {
    const geo = (cfg: PgtableConfig) => {
      const g = pgtableGeometry(cfg);
      if (!g.ok) throw new Error(g.detail);
      return g.geometry;
    };
    expect(geo({ stage: 1, granule: 12, iasBits: 48, oasBits: 48 })).toMatchObject({
      startLevel: 0,
      startBits: 9,
      concatenated: 1,
      sl0: -1,
      rootBytes: 4096,
      pgsizes: [12, 21, 30],
    });
    // 4K, 40-bit IPA: level 0 would hold 2 entries, so start at level 1 with 2 concatenated tables.
    expect(geo({ stage: 2, granule: 12, iasBits: 40, oasBits: 40 })).toMatchObject({
      startLevel: 1,
      startBits: 10,
      concatenated: 2,
      sl0: 1,
      rootBytes: 8192,
    });
    expect(geo({ stage: 2, granule: 12, iasBits: 48, oasBits: 48 })).toMatchObject({ startLevel: 0, sl0: 2 });
    expect(geo({ stage: 2, granule: 12, iasBits: 32, oasBits: 40 })).toMatchObject({ startLevel: 1, sl0: 1 });
    // 16K, 48-bit IPA: level 0 (2 entries) folds into 2 concatenated level-1 tables.
    expect(geo({ stage: 2, granule: 14, iasBits: 48, oasBits: 48 })).toMatchObject({
      startLevel: 1,
      concatenated: 2,
      sl0: 2,
      pgsizes: [14, 25],
    });
    // 16K, 40-bit IPA: level 1 needs PAMax >= 42, so with a 40-bit PA it folds to 16 level-2 tables.
    expect(geo({ stage: 2, granule: 14, iasBits: 40, oasBits: 40 })).toMatchObject({
      startLevel: 2,
      concatenated: 16,
      sl0: 1,
      rootBytes: 16 * 16 * KiB,
    });
    expect(geo({ stage: 2, granule: 14, iasBits: 40, oasBits: 44 })).toMatchObject({
      startLevel: 1,
      concatenated: 1,
      sl0: 2,
      rootBytes: 128,
    });
    expect(geo({ stage: 1, granule: 16, iasBits: 52, oasBits: 52 })).toMatchObject({
      startLevel: 1,
      oa52: true,
      pgsizes: [16, 29, 42],
    });
    // 4 TiB blocks live at level 1, which a 42-bit input never reaches.
    expect(geo({ stage: 1, granule: 16, iasBits: 42, oasBits: 52 })).toMatchObject({
      startLevel: 2,
      pgsizes: [16, 29],
      rootBytes: 65536,
    });
    expect(geo({ stage: 2, granule: 16, iasBits: 32, oasBits: 48 })).toMatchObject({ startLevel: 2, sl0: 1 });
    expect(geo({ stage: 1, granule: 14, iasBits: 48, oasBits: 48 })).toMatchObject({
      startLevel: 0,
      rootBytes: 16,
    });
  });

  it('refuses bad configurations with EINVAL and allocates nothing', () => {
    const bad: PgtableConfig[] = [
      { stage: 1, granule: 12, iasBits: 24, oasBits: 48 },
      { stage: 1, granule: 12, iasBits: 49, oasBits: 48 },
      { stage: 1, granule: 16, iasBits: 53, oasBits: 52 },
      { stage: 1, granule: 12, iasBits: 40.5, oasBits: 48 },
      { stage: 1, granule: 12, iasBits: 40, oasBits: 50 },
      { stage: 1, granule: 12, iasBits: 40, oasBits: 52 },
      { stage: 2, granule: 14, iasBits: 40, oasBits: 52 },
      { stage: 1, granule: 13 as Granule, iasBits: 40, oasBits: 48 },
      { stage: 3 as 1, granule: 12, iasBits: 40, oasBits: 48 },
      { stage: 2, granule: 12, iasBits: 40, oasBits: 48, nonGlobal: true },
      // 4K level-0 start needs a 44-bit PA size for SL0 = 2.
      { stage: 2, granule: 12, iasBits: 48, oasBits: 40 },
    ];
    const mem = new PhysMem();
    const alloc = new PageAllocator(mem, TABLES, MiB);
    for (const cfg of bad) {
      const r = PageTable.create(alloc, cfg);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.errno).toBe('EINVAL');
        expect(r.detail.length).toBeGreaterThan(0);
      }
    }
    expect(alloc.stats().allocs).toBe(0);
  });

  it('reports ENOMEM when there is no memory for the root, or only memory beyond the OAS', () => {
    const mem = new PhysMem();
    const tiny = new PageAllocator(mem, TABLES, 4096);
    const r = PageTable.create(tiny, { stage: 2, granule: 12, iasBits: 40, oasBits: 40 });
    expect(r.ok ? 'ok' : r.errno).toBe('ENOMEM');
    const high = new PageAllocator(mem, 2 ** 40, MiB);
    const r2 = PageTable.create(high, { stage: 1, granule: 12, iasBits: 32, oasBits: 40 });
    expect(r2.ok ? 'ok' : r2.errno).toBe('ENOMEM');
    expect(high.bytesInUse).toBe(0);
  });
});

// ---------------------------------------------------------------- the io-pgtable-arm selftest matrix

const SIZES = [32, 36, 40, 42, 44, 48];
const MATRIX: PgtableConfig[] = [];
for (const stage of [1, 2] as const) {
  for (const granule of GRANULES) {
    for (const ias of SIZES)
      for (const oas of SIZES) if (ias <= oas) MATRIX.push({ stage, granule, iasBits: ias, oasBits: oas });
    if (granule === 16) MATRIX.push({ stage, granule, iasBits: 52, oasBits: 52 });
  }
}

function configName(c: PgtableConfig): string {
  return `S${c.stage} ${granuleName(c.granule)} IAS ${c.iasBits} OAS ${c.oasBits}`;
}

/** Checks iovaToPhys and both walkers at the start, middle and end of a mapped block. */
function checkBlock(r: Rig, iova: number, pa: number, log2: number, perms: number): void {
  const size = 2 ** log2;
  for (const off of [0, 42, size / 2 + 42, size - 1]) {
    expect(r.pt.iovaToPhys(iova + off)).toBe(pa + off);
    const t = walkBoth(r, iova + off);
    expect(t).toEqual({ pa: pa + off, shift: log2, perms, nG: false });
  }
}

function checkUnmapped(r: Rig, iova: number, log2: number): void {
  for (const off of [0, 2 ** log2 - 1]) {
    expect(r.pt.iovaToPhys(iova + off)).toBeUndefined();
    expect(walkBoth(r, iova + off)).toBeUndefined();
  }
}

describe('io-pgtable-arm selftest matrix', () => {
  it.each(MATRIX.map((c) => [configName(c), c] as const))('%s', (_name, cfg) => {
    const r = rig(cfg);
    const ias = 2 ** cfg.iasBits;
    const sizes = r.pt.pgsizes;
    expect(sizes.length).toBeGreaterThan(0);
    const min = sizes[0]!;

    // An empty table translates nothing.
    for (const iova of [42, GiB + 42, 2 * GiB + 42]) {
      expect(r.pt.iovaToPhys(iova)).toBeUndefined();
      expect(walkBoth(r, iova)).toBeUndefined();
    }

    // One block of every size, at 1 GiB strides, each to a PA near the top of the output space.
    const placed = sizes.map((log2, i) => {
      const iova = alignUp(i * GiB, log2);
      const pa = alignDown(2 ** cfg.oasBits - (i + 1) * Math.max(2 ** log2, GiB), log2);
      return { log2, iova, pa, prot: PROTS[i % 3]!, perms: expectedPerms(cfg.stage, i % 3) };
    });
    for (const b of placed) {
      expect(b.iova + 2 ** b.log2).toBeLessThanOrEqual(ias);
      expect(r.pt.map(b.iova, b.pa, 2 ** b.log2, b.prot)).toEqual({ ok: true, mapped: 2 ** b.log2 });
      checkBlock(r, b.iova, b.pa, b.log2, b.perms);

      // Overlapping maps are refused and write nothing.
      const before = snapshot(r.mem);
      const overlaps: [number, number][] = [
        [b.iova, 2 ** b.log2],
        [b.iova + 2 ** b.log2 - 2 ** min, 2 ** min],
      ];
      if (b.iova + 2 ** b.log2 + 2 ** min <= ias)
        overlaps.push([b.iova + 2 ** b.log2 - 2 ** min, 2 * 2 ** min]);
      for (const [iova, size] of overlaps) {
        const res = r.pt.map(iova, alignDown(b.pa / 2, 30), size, RW);
        expect(res.ok ? 'ok' : res.errno).toBe('EEXIST');
      }
      expect(snapshot(r.mem)).toBe(before);
      checkBlock(r, b.iova, b.pa, b.log2, b.perms);
    }
    expect(r.pt.stats.mappedBytes).toBe(placed.reduce((s, b) => s + 2 ** b.log2, 0));

    // Unmap each: gone; then remap works and unmaps again.
    for (const b of placed) {
      expect(r.pt.unmap(b.iova, 2 ** b.log2)).toBe(2 ** b.log2);
      checkUnmapped(r, b.iova, b.log2);
      expect(r.pt.map(b.iova, b.pa, 2 ** b.log2, b.prot).ok).toBe(true);
      checkBlock(r, b.iova, b.pa, b.log2, b.perms);
      expect(r.pt.unmap(b.iova, 2 ** b.log2)).toBe(2 ** b.log2);
      checkUnmapped(r, b.iova, b.log2);
    }

    // The last largest block below the input limit (the concatenated-start-table corner).
    const top = sizes[sizes.length - 1]!;
    const last = ias - 2 ** top;
    expect(r.pt.map(last, 0, 2 ** top, RW).ok).toBe(true);
    checkBlock(r, last, 0, top, expectedPerms(cfg.stage, 0));
    expect(r.pt.unmap(last, 2 ** top)).toBe(2 ** top);
    checkUnmapped(r, last, top);
    expect(r.pt.stats.mappedBytes).toBe(0);
  });
});

// ---------------------------------------------------------------- map arguments and atomicity

describe('map', () => {
  const S1_4K: PgtableConfig = { stage: 1, granule: 12, iasBits: 39, oasBits: 40 };

  it('refuses bad arguments with EINVAL/ERANGE and writes nothing', () => {
    const r = rig(S1_4K);
    expect(r.pt.map(0x1000, 0x2000, 0x1000, RW).ok).toBe(true);
    const before = snapshot(r.mem);
    const cases: [number, number, number, Prot, string][] = [
      [0x10_0000, 0x2000, 0, RW, 'EINVAL'],
      [0x10_0800, 0x2000, 0x1000, RW, 'EINVAL'],
      [0x10_0000, 0x2800, 0x1000, RW, 'EINVAL'],
      [0x10_0000, 0x2000, 0x1800, RW, 'EINVAL'],
      [-0x1000, 0x2000, 0x1000, RW, 'EINVAL'],
      [Number.NaN, 0x2000, 0x1000, RW, 'EINVAL'],
      [0x10_0000, 0x2000, 4096.5, RW, 'EINVAL'],
      [0x10_0000, 0x2000, 0x1000, { read: false, write: false }, 'EINVAL'],
      [0x10_0000, 0x2000, 0x1000, { read: true, write: true, cache: 'weird' as 'normal' }, 'EINVAL'],
      [2 ** 39 - 0x1000, 0x2000, 0x2000, RW, 'ERANGE'],
      [2 ** 39, 0x2000, 0x1000, RW, 'ERANGE'],
      [0x10_0000, 2 ** 40 - 0x1000, 0x2000, RW, 'ERANGE'],
    ];
    for (const [iova, pa, size, prot, errno] of cases) {
      const res = r.pt.map(iova, pa, size, prot);
      expect(res.ok ? 'ok' : res.errno).toBe(errno);
    }
    expect(snapshot(r.mem)).toBe(before);
    expect(r.pt.iovaToPhys(0x1000)).toBe(0x2000);
    expect(r.pt.stats.mappedBytes).toBe(0x1000);
  });

  it('uses the largest sizes both addresses allow', () => {
    const r = rig(S1_4K);
    // IOVA and PA agree modulo 2 MiB from 2M-8K: pages, then 2 MiB blocks, then pages.
    const iova = 2 * MiB - 0x2000;
    const pa = 6 * MiB - 0x2000;
    expect(r.pt.map(iova, pa, 4 * MiB + 0x3000, RW)).toEqual({ ok: true, mapped: 4 * MiB + 0x3000 });
    expect([...r.pt.stats.leaves]).toEqual([
      [12, 3],
      [21, 2],
    ]);
    expect(walkBoth(r, 3 * MiB)?.shift).toBe(21);
    expect(walkBoth(r, iova)?.shift).toBe(12);
    // The same range with a PA only page-aligned relative to 2 MiB maps pages only.
    const r2 = rig(S1_4K);
    expect(r2.pt.map(iova, pa + 0x1000, 4 * MiB + 0x3000, RW).ok).toBe(true);
    expect([...r2.pt.stats.leaves]).toEqual([[12, 1024 + 3]]);
    expect(r2.pt.iovaToPhys(iova + 3 * MiB + 5)).toBe(pa + 0x1000 + 3 * MiB + 5);
  });

  it('is all or nothing: ENOMEM part way undoes what the call did', () => {
    // Root + 3 tables: exactly what one 4 KiB page at IOVA 0x1000 needs with a level-0 start.
    const cfg: PgtableConfig = { stage: 1, granule: 12, iasBits: 48, oasBits: 48 };
    const r = rig(cfg, 4 * 4096);
    expect(r.pt.map(0x1000, 0x5000, 0x1000, RW).ok).toBe(true);
    const before = snapshot(r.mem);
    const stats = r.pt.stats;
    const inUse = r.alloc.bytesInUse;
    // The first page lands in the existing level-3 table, the second needs a new one.
    const res = r.pt.map(2 * MiB - 0x1000, 0x9000, 0x2000, RW);
    expect(res.ok ? 'ok' : res.errno).toBe('ENOMEM');
    expect(r.pt.iovaToPhys(2 * MiB - 0x1000)).toBeUndefined();
    expect(walkBoth(r, 2 * MiB - 0x1000)).toBeUndefined();
    expect(r.pt.iovaToPhys(0x1000)).toBe(0x5000);
    expect(snapshot(r.mem)).toBe(before);
    expect(r.pt.stats).toEqual(stats);
    expect(r.alloc.bytesInUse).toBe(inUse);
  });

  it('ENOMEM after allocating new tables frees them again', () => {
    const cfg: PgtableConfig = { stage: 1, granule: 12, iasBits: 48, oasBits: 48 };
    const r = rig(cfg, 6 * 4096);
    expect(r.pt.map(0x1000, 0x5000, 0x1000, RW).ok).toBe(true);
    const inUse = r.alloc.bytesInUse;
    const leaves = [...r.pt.stats.leaves];
    const live = r.pt.stats.tablesLive;
    // Needs a level-2 and two level-3 tables; only two pages are left.
    const res = r.pt.map(GiB + 2 * MiB - 0x1000, 0x9000, 0x2000, RW);
    expect(res.ok ? 'ok' : res.errno).toBe('ENOMEM');
    expect(r.alloc.bytesInUse).toBe(inUse);
    expect([...r.pt.stats.leaves]).toEqual(leaves);
    expect(r.pt.stats.tablesLive).toBe(live);
    expect(r.pt.stats.tablesFreed).toBe(2);
    expect(r.pt.iovaToPhys(GiB + 2 * MiB - 0x1000)).toBeUndefined();
    expect(walkBoth(r, GiB + 2 * MiB - 0x1000)).toBeUndefined();
    // With the memory back, the same map succeeds.
    expect(r.pt.map(GiB + 2 * MiB - 0x1000, 0x9000, 0x1000, RW).ok).toBe(true);
  });

  it('replaces an empty table with a block, but not a table that still maps something', () => {
    const r = rig(S1_4K);
    expect(r.pt.map(0x1000, 0x1000, 0x1000, RW).ok).toBe(true);
    const before = snapshot(r.mem);
    const clash = r.pt.map(0, 0, 2 * MiB, RW);
    expect(clash.ok ? 'ok' : clash.errno).toBe('EEXIST');
    expect(snapshot(r.mem)).toBe(before);
    expect(r.pt.unmap(0x1000, 0x1000)).toBe(0x1000);
    const freed = r.pt.stats.tablesFreed;
    expect(r.pt.map(0, 0x4000_0000, 2 * MiB, RW).ok).toBe(true);
    expect(r.pt.stats.tablesFreed).toBe(freed + 1);
    expect(walkBoth(r, 0x1234)).toMatchObject({ pa: 0x4000_1234, shift: 21 });
  });
});

// ---------------------------------------------------------------- descriptor contents

describe('descriptors', () => {
  it('stage 1 leaves carry AF, SH, AttrIndx, AP, nG, XN as configured', () => {
    const r = rig({ stage: 1, granule: 12, iasBits: 39, oasBits: 48, nonGlobal: true });
    expect(
      r.pt.map(0x1000, 0xabc_d000, 0x1000, { read: true, write: false, user: true, cache: 'device' }).ok,
    ).toBe(true);
    expect(r.pt.map(0x2000, 0x1000, 0x1000, { read: true, write: true, exec: true }).ok).toBe(true);
    const a = leafWords(r, 0x1000);
    expect(getField(a, DESC_VALID)).toBe(1);
    expect(getField(a, DESC_TYPE)).toBe(1);
    expect(getField(a, DESC_AF)).toBe(1);
    expect(getField(a, DESC_SH)).toBe(0b11);
    expect(getField(a, S1_ATTRINDX)).toBe(1);
    expect(getField(a, S1_AP)).toBe(0b11);
    expect(getField(a, S1_NG)).toBe(1);
    expect(getField(a, S1_NS)).toBe(0);
    expect(getField(a, S1_UXN)).toBe(1);
    expect(getField(a, S1_PXN)).toBe(1);
    expect(join64(a[1] & 0xffff, a[0] & 0xffff_f000)).toBe(0xabc_d000);
    const b = leafWords(r, 0x2000);
    expect(getField(b, S1_ATTRINDX)).toBe(0);
    expect(getField(b, S1_AP)).toBe(0b00);
    expect(getField(b, S1_UXN)).toBe(0);
    expect(getField(b, S1_PXN)).toBe(0);
    expect(walkBoth(r, 0x1000)?.nG).toBe(true);
    // A block at level 2 has type 0b01.
    expect(r.pt.map(4 * MiB, 8 * MiB, 2 * MiB, RW).ok).toBe(true);
    const block = leafWords(r, 4 * MiB);
    expect(getField(block, DESC_VALID)).toBe(1);
    expect(getField(block, DESC_TYPE)).toBe(0);
  });

  it('stage 2 leaves carry MemAttr, S2AP and XN', () => {
    const r = rig({ stage: 2, granule: 12, iasBits: 40, oasBits: 40 });
    expect(r.pt.map(0x1000, 0x2000, 0x1000, { read: false, write: true, cache: 'device' }).ok).toBe(true);
    expect(r.pt.map(0x2000, 0x3000, 0x1000, { read: true, write: false, exec: true }).ok).toBe(true);
    const a = leafWords(r, 0x1000);
    expect(getField(a, S2_MEMATTR)).toBe(0x1);
    expect(getField(a, S2_S2AP)).toBe(0b10);
    expect(getField(a, S2_XN)).toBe(0b10);
    expect(getField(a, DESC_AF)).toBe(1);
    expect(getField(a, DESC_SH)).toBe(0b11);
    const b = leafWords(r, 0x2000);
    expect(getField(b, S2_MEMATTR)).toBe(0xf);
    expect(getField(b, S2_S2AP)).toBe(0b01);
    expect(getField(b, S2_XN)).toBe(0);
    expect(walkBoth(r, 0x1000)?.perms).toBe(PERM_S1_ALL | PERM.S2_W);
    expect(walkBoth(r, 0x2000)?.perms).toBe(PERM_S1_ALL | PERM.S2_R | (PERM.S2_PX | PERM.S2_UX));
  });

  it('walkers enforce the permissions the builder encoded', () => {
    const r = rig({ stage: 1, granule: 12, iasBits: 39, oasBits: 40 });
    expect(r.pt.map(0x1000, 0x2000, 0x1000, { read: true, write: false }).ok).toBe(true);
    const ctx = s1Context(r.regime);
    expect(r.walker.translate(ctx, null, 0, 0x1000, PERM.S1_PR, 0)).toBe(WALK_OK);
    expect(r.walker.translate(ctx, null, 0, 0x1000, PERM.S1_PW, 0)).toBe(WALK_PERMISSION);
    expect(r.walker.translate(ctx, null, 0, 0x1000, PERM.S1_UR, 0)).toBe(WALK_PERMISSION);
    expect(r.walker.translate(ctx, null, 0, 0x1000, PERM.S1_PX, 0)).toBe(WALK_PERMISSION);
    expect(refTranslate(r.mem, ctx, null, 0x1000n, PERM.S1_PW, 0).fault).toBe(WALK_PERMISSION);
  });

  it('52-bit output: leaves and tables above 2^48 put OA[51:48] in bits [15:12]', () => {
    const high = 2 ** 51 + 2 ** 49;
    const r = rig({ stage: 1, granule: 16, iasBits: 52, oasBits: 52 }, 16 * MiB, high);
    expect(r.pt.root).toBeGreaterThanOrEqual(high);
    const pa = 0xf_1234_5670_0000;
    expect(r.pt.map(2 ** 50, pa, 64 * KiB, RW).ok).toBe(true);
    const [lo, hi] = leafWords(r, 2 ** 50);
    expect((lo >>> 12) & 0xf).toBe(0xf);
    expect(hi & 0xffff).toBe(0x1234);
    expect(r.pt.iovaToPhys(2 ** 50 + 7)).toBe(pa + 7);
    expect(walkBoth(r, 2 ** 50 + 7)).toMatchObject({ pa: pa + 7, shift: 16 });
    expect(r.pt.unmap(2 ** 50, 64 * KiB)).toBe(64 * KiB);
    expect(walkBoth(r, 2 ** 50)).toBeUndefined();
    // With a 48-bit output size the same table memory is out of reach.
    const mem = new PhysMem();
    const made = PageTable.create(new PageAllocator(mem, high, MiB), {
      stage: 1,
      granule: 16,
      iasBits: 48,
      oasBits: 48,
    });
    expect(made.ok ? 'ok' : made.errno).toBe('ENOMEM');
  });
});

// ---------------------------------------------------------------- unmap, splitting, table freeing

describe('unmap', () => {
  for (const stage of [1, 2] as const) {
    it(`stage ${stage}: partial unmap of a 2 MiB block splits it and keeps the rest`, () => {
      const r = rig({ stage, granule: 12, iasBits: 40, oasBits: 40 });
      const iova = 0x4020_0000;
      const pa = 0x1_2340_0000;
      expect(r.pt.map(iova, pa, 2 * MiB, RW).ok).toBe(true);
      const tables = r.pt.stats.tablesLive;
      expect(r.pt.unmap(iova + 5 * 4096, 4096)).toBe(4096);
      expect([...r.pt.stats.leaves]).toEqual([[12, 511]]);
      expect(r.pt.stats.tablesLive).toBe(tables + 1);
      for (let i = 0; i < 512; i++) {
        const at = iova + i * 4096 + 17;
        if (i === 5) {
          expect(r.pt.iovaToPhys(at)).toBeUndefined();
          expect(walkBoth(r, at)).toBeUndefined();
        } else {
          expect(r.pt.iovaToPhys(at)).toBe(pa + i * 4096 + 17);
          expect(walkBoth(r, at)).toEqual({
            pa: pa + i * 4096 + 17,
            shift: 12,
            perms: expectedPerms(stage, 0),
            nG: false,
          });
        }
      }
    });
  }

  it('splits a 1 GiB block through two levels, keeping attributes', () => {
    const r = rig({ stage: 1, granule: 12, iasBits: 40, oasBits: 40 });
    expect(r.pt.map(GiB, 3 * GiB, GiB, RO_X_USER).ok).toBe(true);
    expect(r.pt.unmap(GiB + 6 * MiB + 0x3000, 0x1000)).toBe(0x1000);
    expect([...r.pt.stats.leaves]).toEqual([
      [12, 511],
      [21, 511],
    ]);
    const perms = expectedPerms(1, 1);
    expect(walkBoth(r, GiB)).toEqual({ pa: 3 * GiB, shift: 21, perms, nG: false });
    expect(walkBoth(r, GiB + 6 * MiB)).toEqual({ pa: 3 * GiB + 6 * MiB, shift: 12, perms, nG: false });
    expect(walkBoth(r, GiB + 6 * MiB + 0x3000)).toBeUndefined();
    expect(walkBoth(r, GiB + 6 * MiB + 0x4000)).toEqual({
      pa: 3 * GiB + 6 * MiB + 0x4000,
      shift: 12,
      perms,
      nG: false,
    });
    expect(walkBoth(r, 2 * GiB - 1)).toEqual({ pa: 4 * GiB - 1, shift: 21, perms, nG: false });
    // A range across a 2 MiB boundary inside the split region splits the second block too.
    expect(r.pt.unmap(GiB + 8 * MiB - 0x2000, 0x4000)).toBe(0x4000);
    expect([...r.pt.stats.leaves]).toEqual([
      [12, 509 + 510],
      [21, 510],
    ]);
    expect(r.pt.stats.mappedBytes).toBe(GiB - 5 * 0x1000);
  });

  it('unmapping a table-sized region frees the table and everything below it', () => {
    const r = rig({ stage: 2, granule: 12, iasBits: 40, oasBits: 40 });
    // PA one page off 2 MiB alignment: 512 pages in one level-3 table.
    expect(r.pt.map(4 * MiB, 0x10_1000, 2 * MiB, RW).ok).toBe(true);
    expect([...r.pt.stats.leaves]).toEqual([[12, 512]]);
    const live = r.pt.stats.tablesLive;
    const inUse = r.alloc.bytesInUse;
    expect(r.pt.unmap(4 * MiB, 2 * MiB)).toBe(2 * MiB);
    expect(r.pt.stats.tablesLive).toBe(live - 1);
    expect(r.alloc.bytesInUse).toBe(inUse - 4096);
    expect(r.pt.stats.mappedBytes).toBe(0);
    expect(walkBoth(r, 5 * MiB)).toBeUndefined();
    // A sparsely used table is freed whole too, as io-pgtable does: the chunk counts in full.
    expect(r.pt.map(GiB + 0x3000, 0x3000, 0x1000, RW).ok).toBe(true);
    expect(r.pt.map(GiB + 0x7000, 0x7000, 0x1000, RW).ok).toBe(true);
    expect(r.pt.unmap(GiB, 2 * MiB)).toBe(2 * MiB);
    expect(r.pt.iovaToPhys(GiB + 0x7000)).toBeUndefined();
    // A level-2 table (1 GiB span) with a level-3 table below it goes in one call.
    expect(r.pt.map(GiB + 0x3000, 0x3000, 0x1000, RW).ok).toBe(true);
    const before = r.pt.stats.tablesLive;
    expect(r.pt.unmap(GiB, GiB)).toBe(GiB);
    expect(r.pt.stats.tablesLive).toBe(before - 2);
  });

  it('stops at the first hole and returns 0 for nothing, bad arguments or out of range', () => {
    const r = rig({ stage: 1, granule: 12, iasBits: 32, oasBits: 40 });
    expect(r.pt.map(0x1000, 0x1000, 0x1000, RW).ok).toBe(true);
    expect(r.pt.map(0x3000, 0x3000, 0x1000, RW).ok).toBe(true);
    expect(r.pt.unmap(0x1000, 0x3000)).toBe(0x1000);
    expect(r.pt.iovaToPhys(0x3000)).toBe(0x3000);
    expect(r.pt.unmap(0x1000, 0x1000)).toBe(0);
    expect(r.pt.unmap(0x10_0000_0000, 0x1000)).toBe(0);
    expect(r.pt.unmap(2 ** 32 - 0x1000, 0x2000)).toBe(0);
    expect(r.pt.unmap(0x3800, 0x1000)).toBe(0);
    expect(r.pt.unmap(0x3000, 0x800)).toBe(0);
    expect(r.pt.unmap(0x3000, 0)).toBe(0);
    expect(r.pt.unmap(Number.NaN, 0x1000)).toBe(0);
    expect(r.pt.iovaToPhys(0x3000)).toBe(0x3000);
    expect(r.pt.iovaToPhys(-1)).toBeUndefined();
    expect(r.pt.iovaToPhys(2 ** 32)).toBeUndefined();
    expect(r.pt.unmap(0x3000, 0x1000)).toBe(0x1000);
  });

  it('page-by-page unmap across block and table boundaries', () => {
    const r = rig({ stage: 2, granule: 12, iasBits: 40, oasBits: 40 });
    // [512G - 2M, 512G + 2M): crosses the boundary between the two concatenated start tables.
    const base = 512 * GiB - 2 * MiB;
    const pa = 0x20_0000_0000;
    expect(r.pt.map(base, pa, 4 * MiB, RW).ok).toBe(true);
    expect([...r.pt.stats.leaves]).toEqual([[21, 2]]);
    const gone = new Set<number>();
    for (let iova = 512 * GiB - 0x3000; iova < 512 * GiB + 0x3000; iova += 0x1000) {
      expect(r.pt.unmap(iova, 0x1000)).toBe(0x1000);
      gone.add(iova);
      for (const probe of [iova - 0x1000, iova, iova + 0x1000]) {
        const want = gone.has(probe) ? undefined : pa + (probe - base);
        expect(r.pt.iovaToPhys(probe)).toBe(want);
        expect(walkBoth(r, probe)?.pa).toBe(want);
      }
    }
    expect(r.pt.stats.mappedBytes).toBe(4 * MiB - 6 * 0x1000);
    for (let iova = base; iova < base + 4 * MiB; iova += 0x1000) {
      expect(r.pt.unmap(iova, 0x1000)).toBe(gone.has(iova) ? 0 : 0x1000);
    }
    expect(r.pt.stats.mappedBytes).toBe(0);
  });

  it('destroy frees every table', () => {
    const r = rig({ stage: 1, granule: 16, iasBits: 48, oasBits: 48 });
    expect(r.pt.map(GiB, GiB, GiB, RW).ok).toBe(true);
    expect(r.pt.map(0x1_0000, 0x1_0000, 0x1_0000, RW).ok).toBe(true);
    r.pt.destroy();
    expect(r.alloc.bytesInUse).toBe(0);
    expect(r.pt.stats.tablesLive).toBe(0);
    expect(r.pt.stats.mappedBytes).toBe(0);
    expect(r.pt.iovaToPhys(GiB)).toBeUndefined();
    const res = r.pt.map(0, 0, 0x1_0000, RW);
    expect(res.ok ? 'ok' : res.errno).toBe('EINVAL');
    expect(r.pt.unmap(GiB, GiB)).toBe(0);
    expect(r.pt.regime().ok).toBe(false);
    r.pt.destroy();
    expect(r.alloc.bytesInUse).toBe(0);
  });
});

// ---------------------------------------------------------------- model-based property

interface PropCase {
  readonly name: string;
  readonly cfg: PgtableConfig;
  /** IOVA window: two largest-used blocks on either side of an interesting boundary. */
  readonly window: number;
  readonly block: number;
  readonly runs: number;
}

const PROP_CASES: PropCase[] = [
  {
    name: 'S1 4K IAS 32 (window across 1 GiB)',
    cfg: { stage: 1, granule: 12, iasBits: 32, oasBits: 40 },
    window: GiB - 4 * MiB,
    block: 21,
    runs: 100,
  },
  {
    name: 'S2 4K IAS 40 (window across the concatenated start tables)',
    cfg: { stage: 2, granule: 12, iasBits: 40, oasBits: 40 },
    window: 512 * GiB - 4 * MiB,
    block: 21,
    runs: 100,
  },
  {
    name: 'S2 16K IAS 40 OAS 40 (16 concatenated level-2 tables)',
    cfg: { stage: 2, granule: 14, iasBits: 40, oasBits: 40 },
    window: 64 * GiB - 64 * MiB,
    block: 25,
    runs: 30,
  },
];

type Op =
  | {
      readonly kind: 'map';
      readonly page: number;
      readonly count: number;
      readonly congruent: boolean;
      readonly paBlock: number;
      readonly paPage: number;
    }
  | { readonly kind: 'unmap'; readonly page: number; readonly count: number };

/** The chunk sizes io-pgtable's iommu_unmap visits for [iova, iova+size). */
function unmapChunks(pgsizes: readonly number[], iova: number, size: number): number[] {
  const out: number[] = [];
  let done = 0;
  while (done < size) {
    let s = pgsizes[0]!;
    for (const p of pgsizes) if (2 ** p <= size - done && isAligned(iova + done, p)) s = p;
    out.push(2 ** s);
    done += 2 ** s;
  }
  return out;
}

/**
 * Pages of [start, start + count*page) where iovaToPhys or the fast walker disagree with the model
 * (collected rather than asserted one by one: thousands of expect() calls dominate the run time).
 */
function disagreements(
  r: Rig,
  model: Map<number, number>,
  start: number,
  count: number,
  page: number,
): string[] {
  const bad: string[] = [];
  const s1 = r.regime.stage === 1 ? s1Context(r.regime) : null;
  const s2 = r.regime.stage === 2 ? r.regime : null;
  for (let i = 0; i < count; i++) {
    const at = start + i * page + 8;
    const mapped = model.get(at - 8);
    const want = mapped === undefined ? undefined : mapped + 8;
    const viaTable = r.pt.iovaToPhys(at);
    const f = r.walker.translate(s1, s2, hi32(at), lo32(at), 0, 0);
    const viaWalker = f === WALK_OK ? join64(r.walker.outHi, r.walker.outLo) : undefined;
    if (viaTable !== want || viaWalker !== want || (f !== WALK_OK && f !== WALK_TRANSLATION)) {
      bad.push(
        `0x${at.toString(16)}: model ${want}, iovaToPhys ${viaTable}, walker ${viaWalker} (fault ${f})`,
      );
    }
  }
  return bad;
}

describe('property: random map/unmap sequences agree with a page model', () => {
  for (const pc of PROP_CASES) {
    it(pc.name, () => {
      const g = pc.cfg.granule;
      const page = 2 ** g;
      const pages = (4 * 2 ** pc.block) / page;
      const blockPages = 2 ** (pc.block - g);
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({
          kind: fc.constant('map' as const),
          page: fc.nat(pages - 1),
          count: fc.integer({ min: 1, max: blockPages + 8 }),
          congruent: fc.boolean(),
          paBlock: fc.nat(255),
          paPage: fc.nat(blockPages - 1),
        }),
        fc.record({
          kind: fc.constant('unmap' as const),
          page: fc.nat(pages - 1),
          count: fc.integer({ min: 1, max: blockPages + 8 }),
        }),
      );
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
          const r = rig(pc.cfg, 64 * MiB);
          const model = new Map<number, number>();
          for (const o of ops) {
            const count = Math.min(o.count, pages - o.page);
            const iova = pc.window + o.page * page;
            const size = count * page;
            if (o.kind === 'map') {
              // Congruent PAs share the IOVA's offset within a block, so whole blocks can be used.
              const offset = o.congruent ? iova % 2 ** pc.block : o.paPage * page;
              const pa = 2 ** 32 + o.paBlock * 2 ** pc.block + offset;
              const clash = [...Array(count).keys()].some((i) => model.has(iova + i * page));
              const res = r.pt.map(iova, pa, size, RW);
              if (clash) expect(res.ok ? 'ok' : res.errno).toBe('EEXIST');
              else {
                expect(res).toEqual({ ok: true, mapped: size });
                for (let i = 0; i < count; i++) model.set(iova + i * page, pa + i * page);
              }
            } else {
              const got = r.pt.unmap(iova, size);
              const chunks = unmapChunks(r.pt.pgsizes, iova, size);
              let done = 0;
              let k = 0;
              while (done < got) done += chunks[k++]!;
              expect(done).toBe(got);
              if (k < chunks.length) {
                for (let a = iova + got; a < iova + got + chunks[k]!; a += page)
                  expect(model.has(a)).toBe(false);
              }
              for (let a = iova; a < iova + got; a += page) model.delete(a);
            }
            expect(disagreements(r, model, pc.window - page, pages + 2, page)).toEqual([]);
            expect(r.pt.stats.mappedBytes).toBe(model.size * page);
            expect(r.pt.stats.tableBytesLive).toBe(r.alloc.bytesInUse);
          }
        }),
        { numRuns: pc.runs },
      );
    });
  }
});

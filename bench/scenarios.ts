/**
 * Benchmark scenarios: deterministic (seeded) memory images and query lists for the vsva benchmarks.
 *
 * - `buildFlat(stage)`: a stage-1 or stage-2 table (4 KiB granule, 48-bit input, 4 levels from level
 *   0) in its own PhysMem, mapping pages scattered over the whole input space.
 * - `buildNested()`: an SmmuRig with a guest window (IPA space, OffsetMemory + allocator) holding a
 *   4-level stage-1 table and a CD table, and a 4-level stage-2 table in host memory that maps the
 *   guest window and the guest's data pages page by page (4 KiB leaves, so every stage-2 walk reads
 *   4 descriptors and a cold nested walk reads 4 × 5 + 4 = 24). StreamID 1 is nested, StreamID 2 is
 *   bypass. The same builder makes the rig with a tiny IOTLB for the miss benchmark.
 *
 * Everything here is setup: no timing. Expected results come from PageTable.iovaToPhys, which is
 * independent of the Walker under test.
 */

import { ACCESS_READ, PERM } from '../src/arch/vmsa.ts';
import { PhysMem } from '../src/hw/memory.ts';
import { PageAllocator } from '../src/hw/page-alloc.ts';
import type { SmmuFeatures } from '../src/hw/smmuv3/features.ts';
import { CdTable, type GuestRam, SmmuRig } from '../src/hw/smmuv3/rig.ts';
import type { DmaRequest } from '../src/hw/smmuv3/smmu.ts';
import { cmdCfgiSte, cmdSync } from '../src/hw/smmuv3/structures.ts';
import { PageTable, type Prot } from '../src/hw/vmsa/pgtable.ts';
import type { StageRegime } from '../src/hw/vmsa/regime.ts';
import type { S1Context } from '../src/hw/vmsa/walker.ts';

export const PAGE = 4096;
const TWO_POW_32 = 0x1_0000_0000;
const REGION_LOG2 = 21; // 2 MiB: one level-3 table's span

/** Sizes of the generated images; the same in quick and full mode so figures stay comparable. */
export const IMAGE = {
  /** Mapped pages of each flat table and of the nested stage 1. */
  pages: 8192,
  /** Pages per 2 MiB region: pages / pagesPerRegion regions are scattered over the input space. */
  pagesPerRegion: 16,
  /** Queries per pass of the walk benchmarks. */
  queries: 65536,
  /** Guest window (IPA) holding the stage-1 tables and the CD table. */
  guestIpaBase: 0x8000_0000,
  guestBytes: 32 << 20,
  /** Guest data pages (stage-1 outputs) live in this many bits of IPA space. */
  dataIpaBits: 40,
} as const;

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: a small, fast, seeded 32-bit PRNG (never Math.random). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A uniform integer in [0, n) for n <= 2^32. */
export function below(rng: () => number, n: number): number {
  return Math.floor((rng() / TWO_POW_32) * n);
}

/**
 * `count` distinct page addresses: `count / perRegion` distinct 2 MiB regions at random in
 * [0, 2^spaceBits), `perRegion` distinct random pages in each; regions for which `reject(base)` is
 * true are skipped. Returned in a shuffled order.
 */
export function scatteredPages(
  rng: () => number,
  count: number,
  perRegion: number,
  spaceBits: number,
  reject: (base: number) => boolean = () => false,
): number[] {
  const regions = Math.ceil(count / perRegion);
  const slots = 2 ** (spaceBits - REGION_LOG2);
  const used = new Set<number>();
  const out: number[] = [];
  while (used.size < regions) {
    const slot = below(rng, slots);
    const base = slot * 2 ** REGION_LOG2;
    if (used.has(slot) || reject(base)) continue;
    used.add(slot);
    const idx = Array.from({ length: 512 }, (_, i) => i);
    for (let i = 0; i < perRegion && out.length < count; i++) {
      const j = i + below(rng, 512 - i);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
      out.push(base + idx[i]! * PAGE);
    }
  }
  shuffle(rng, out);
  return out;
}

export function shuffle<T>(rng: () => number, a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = below(rng, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}

/** Query addresses as hi/lo words, plus the same as numbers. */
export interface Queries {
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly addr: Float64Array;
}

/** `n` queries: a random page of `pages` plus a random byte offset (aligned to `align`). */
export function makeQueries(rng: () => number, pages: readonly number[], n: number, align = 1): Queries {
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  const addr = new Float64Array(n);
  const offMask = (PAGE - 1) & ~(align - 1);
  for (let i = 0; i < n; i++) {
    const a = pages[below(rng, pages.length)]! + (rng() & offMask);
    addr[i] = a;
    hi[i] = Math.floor(a / TWO_POW_32);
    lo[i] = a >>> 0;
  }
  return { hi, lo, addr };
}

/** A random output page in [2^39, 2^39 + 2^40): never backed, walks do not read data. */
function dataPa(rng: () => number): number {
  return 2 ** 39 + (rng() >>> 4) * PAGE;
}

function must<T extends { ok: boolean }>(r: T, what: string): Extract<T, { ok: true }> {
  if (!r.ok) throw new Error(`bench setup: ${what}: ${JSON.stringify(r)}`);
  return r as Extract<T, { ok: true }>;
}

// ---------------------------------------------------------------- flat (single-stage) images

export interface FlatImage {
  readonly stage: 1 | 2;
  readonly mem: PhysMem;
  readonly table: PageTable;
  readonly regime: StageRegime;
  /** Stage-1 context (tt0 = regime) for stage 1; null for stage 2. */
  readonly s1ctx: S1Context | null;
  readonly queries: Queries;
  /** Expected output address of each query. */
  readonly expected: Float64Array;
  /** PERM bits a query needs at this stage. */
  readonly need: number;
}

/** A 4-level table (4 KiB granule, 48-bit input) mapping IMAGE.pages scattered pages. */
export function buildFlat(stage: 1 | 2, seed: number): FlatImage {
  const rng = prng(seed);
  const mem = new PhysMem({ name: `flat-s${stage}` });
  const alloc = new PageAllocator(mem, 0x4000_0000, 0x1000_0000);
  const table = must(
    PageTable.create(alloc, { stage, granule: 12, iasBits: 48, oasBits: 48 }),
    'table',
  ).table;
  if (table.startLevel !== 0)
    throw new Error(`bench setup: stage ${stage} starts at level ${table.startLevel}`);
  const pages = scatteredPages(rng, IMAGE.pages, IMAGE.pagesPerRegion, 48);
  const prot: Prot = stage === 1 ? { read: true, write: true, user: true } : { read: true, write: true };
  for (const va of pages) must(table.map(va, dataPa(rng), PAGE, prot), `map 0x${va.toString(16)}`);
  const regime = must(table.regime(), 'regime').regime;
  const queries = makeQueries(rng, pages, IMAGE.queries);
  const expected = new Float64Array(IMAGE.queries);
  for (let i = 0; i < expected.length; i++) {
    const pa = table.iovaToPhys(queries.addr[i]!);
    if (pa === undefined) throw new Error('bench setup: a query is unmapped');
    expected[i] = pa;
  }
  const s1ctx: S1Context | null =
    stage === 1 ? { tt0: regime, tt1: null, tbi0: false, tbi1: false, twoRanges: true } : null;
  return {
    stage,
    mem,
    table,
    regime,
    s1ctx,
    queries,
    expected,
    need: stage === 1 ? PERM.S1_UR : PERM.S2_R,
  };
}

// ---------------------------------------------------------------- nested image on an SMMU rig

export const NESTED_SID = 1;
export const BYPASS_SID = 2;

export interface NestedImage {
  readonly rig: SmmuRig;
  readonly guest: GuestRam;
  /** Stage 1 in guest memory (root and tables are IPAs); stage 2 in host memory. */
  readonly s1: PageTable;
  readonly s2: PageTable;
  readonly cd: CdTable;
  readonly s1ctx: S1Context;
  readonly s1Regime: StageRegime;
  readonly s2Regime: StageRegime;
  /** Stage-1 input pages (VAs) and their final PAs. */
  readonly vaPages: readonly number[];
  readonly paOf: ReadonlyMap<number, number>;
  /** Walk queries over all of vaPages, with expected PAs. */
  readonly queries: Queries;
  readonly expected: Float64Array;
}

/**
 * The nested image. `features` goes to the SMMU (the IOTLB-miss benchmark passes a tiny IOTLB);
 * the memory image is identical for any features.
 */
export function buildNested(seed: number, features: Partial<SmmuFeatures> = {}): NestedImage {
  const rng = prng(seed);
  const rig = new SmmuRig({ features, ramBase: 0x4000_0000, ramSize: 0x1000_0000 });
  const guest = rig.guestRam(IMAGE.guestIpaBase, IMAGE.guestBytes);
  const s2 = rig.pageTable({ stage: 2, granule: 12, iasBits: 48, oasBits: 48 });
  if (s2.startLevel !== 0) throw new Error(`bench setup: stage 2 starts at level ${s2.startLevel}`);
  // The guest window, page by page: 4 KiB leaves so every stage-2 walk is 4 levels deep.
  const rw: Prot = { read: true, write: true };
  for (let off = 0; off < guest.size; off += PAGE) {
    must(s2.map(guest.ipaBase + off, guest.paBase + off, PAGE, rw), 'stage-2 guest window');
  }
  const s1r = PageTable.create(guest.alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 48 });
  const s1 = must(s1r, 'stage-1 table').table;
  const vaPages = scatteredPages(rng, IMAGE.pages, IMAGE.pagesPerRegion, 48);
  const winLo = guest.ipaBase;
  const winHi = guest.ipaBase + guest.size;
  const ipaPages = scatteredPages(
    rng,
    IMAGE.pages,
    IMAGE.pagesPerRegion,
    IMAGE.dataIpaBits,
    (base) => base < winHi && base + 2 ** REGION_LOG2 > winLo,
  );
  const user: Prot = { read: true, write: true, user: true };
  const paOf = new Map<number, number>();
  for (let i = 0; i < vaPages.length; i++) {
    const va = vaPages[i]!;
    const ipa = ipaPages[i]!;
    const pa = dataPa(rng);
    must(s1.map(va, ipa, PAGE, user), 'stage-1 map');
    must(s2.map(ipa, pa, PAGE, rw), 'stage-2 map');
    paOf.set(va, pa);
  }
  // CD table in guest memory (its address is an IPA, translated by stage 2 with CLASS = CD).
  const cd = new CdTable(guest.view, guest.alloc, 0, 0);
  cd.write(0, { t0sz: 16, granule0: 12, ttb0: s1.root, ipsBits: 48, asid: 1 });
  rig.writeSte(NESTED_SID, {
    config: 'nested',
    s1ContextPtr: cd.ptr,
    s1CdMax: 0,
    s2Vmid: 1,
    s2T0sz: 16,
    s2Sl0: s2.sl0,
    s2Granule: 12,
    s2PsBits: 48,
    s2Ttb: s2.root,
  });
  rig.writeSte(BYPASS_SID, { config: 'bypass' });
  const err = rig.submit(cmdCfgiSte(NESTED_SID), cmdCfgiSte(BYPASS_SID), cmdSync());
  if (err !== 0) throw new Error(`bench setup: command error ${err}`);
  const s1Regime = must(s1.regime(), 'stage-1 regime').regime;
  const s2Regime = must(s2.regime(), 'stage-2 regime').regime;
  const s1ctx: S1Context = { tt0: s1Regime, tt1: null, tbi0: false, tbi1: false, twoRanges: true };
  const queries = makeQueries(rng, vaPages, IMAGE.queries);
  const expected = new Float64Array(IMAGE.queries);
  for (let i = 0; i < expected.length; i++) expected[i] = expectedPa(s1, s2, queries.addr[i]!);
  return { rig, guest, s1, s2, cd, s1ctx, s1Regime, s2Regime, vaPages, paOf, queries, expected };
}

/** VA → IPA → PA through the builders' own lookups (not the Walker). */
export function expectedPa(s1: PageTable, s2: PageTable, va: number): number {
  const ipa = s1.iovaToPhys(va);
  const pa = ipa === undefined ? undefined : s2.iovaToPhys(ipa);
  if (pa === undefined) throw new Error(`bench setup: 0x${va.toString(16)} does not translate`);
  return pa;
}

/** A reusable 4-byte unprivileged read request for `transact`. */
export function readRequest(streamId: number): DmaRequest {
  return { streamId, substreamId: -1, iova: 0, size: 4, access: ACCESS_READ, privileged: false };
}

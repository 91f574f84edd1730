/**
 * vsva's benchmark driver (`npm run bench`, or `npm run bench -- --quick`): builds the seeded
 * images of bench/scenarios.ts, verifies every benchmark's results before timing it, times the
 * IOTLB-hit transaction path, cache-less stage-1 / stage-2 / nested walks and a few extras, runs the
 * native C baseline of the nested walk (bench/native/walk.c) when a C compiler exists, prints a
 * table with the targets, and writes bench/results.json (an array of { name, unit, value, ... }).
 *
 * Options: --quick (fewer runs and iterations, under a minute), --no-native (skip the C baseline).
 * A missed target is reported as BELOW, never as a failure; a wrong result is a failure (exit 1).
 */

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { PERM } from '../src/arch/vmsa.ts';
import { type DmaRequest, DmaResult, type Smmu, TXN_OK } from '../src/hw/smmuv3/smmu.ts';
import type { StageRegime } from '../src/hw/vmsa/regime.ts';
import { type S1Context, Walker } from '../src/hw/vmsa/walker.ts';
import { consume, measure, sink, type Timing } from './measure.ts';
import { compileWalker, exportImage, findCompiler, runWalker } from './native.ts';
import {
  BYPASS_SID,
  below,
  buildFlat,
  buildNested,
  expectedPa,
  IMAGE,
  makeQueries,
  NESTED_SID,
  type NestedImage,
  PAGE,
  prng,
  type Queries,
  readRequest,
  shuffle,
} from './scenarios.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results.json');

// ---------------------------------------------------------------- configuration

interface Mode {
  readonly name: 'quick' | 'full';
  readonly runs: number;
  readonly warmup: number;
  /** Passes over the query list per timed run. */
  readonly passesFlat: number;
  readonly passesNested: number;
  /** Transactions per timed run. */
  readonly hitOps: number;
  readonly bypassOps: number;
  readonly missOps: number;
  readonly nativeRuns: number;
  readonly nativePasses: number;
}

const QUICK: Mode = {
  name: 'quick',
  runs: 5,
  warmup: 2,
  passesFlat: 4,
  passesNested: 2,
  hitOps: 2_000_000,
  bypassOps: 2_000_000,
  missOps: 65_536,
  nativeRuns: 5,
  nativePasses: 16,
};

const FULL: Mode = {
  name: 'full',
  runs: 9,
  warmup: 3,
  passesFlat: 16,
  passesNested: 8,
  hitOps: 10_000_000,
  bypassOps: 10_000_000,
  missOps: 262_144,
  nativeRuns: 9,
  nativePasses: 64,
};

const SEEDS = {
  s1: 0x5151,
  s2: 0x5252,
  nested: 0x2d2d,
  hit: 0x4174,
  bypass: 0xb1a5,
  miss: 0x3155,
  hot: 0x4854,
};
/** Working set of walk.nested.hot: 256 pages in 16 regions of the nested image. */
const HOT_PAGES = 256;
/** IOTLB-hit working set: pages of the nested stream (the default IOTLB holds 2048 entries). */
const HIT_PAGES = 256;
const HIT_QUERIES = 4096;
/** The IOTLB of the miss benchmark: one set of 16 ways. */
const TINY_IOTLB = { iotlbEntries: 16, iotlbWays: 16 };

interface Target {
  readonly op: '>=' | '<=';
  readonly value: number;
}

const TARGETS: Record<string, Target> = {
  'translate.iotlb_hit': { op: '>=', value: 20e6 },
  'walk.nested': { op: '>=', value: 2e6 },
  'ratio.walk.nested_vs_native': { op: '<=', value: 3 },
};

interface Entry {
  name: string;
  unit: string;
  value: number;
  median?: number;
  runs?: number;
  opsPerRun?: number;
  nsPerOp?: number;
  target?: string;
  status?: 'PASS' | 'BELOW';
  note?: string;
}

class BenchError extends Error {}

function check(cond: boolean, what: string): void {
  if (!cond) throw new BenchError(what);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function entry(name: string, unit: string, t: Timing, note?: string): Entry {
  const e: Entry = {
    name,
    unit,
    value: Math.round(t.best),
    median: Math.round(t.median),
    runs: t.runs,
    opsPerRun: t.opsPerRun,
    nsPerOp: Number((1e9 / t.best).toFixed(2)),
  };
  if (note !== undefined) e.note = note;
  return e;
}

function log(msg: string): void {
  process.stdout.write(`${msg}\n`);
}

// ---------------------------------------------------------------- walks (caches off)

/** The measured loop of the walk benchmarks: `passes` passes over the queries. */
function walkLoop(
  w: Walker,
  s1: S1Context | null,
  s2: StageRegime | null,
  hi: Uint32Array,
  lo: Uint32Array,
  s1Need: number,
  s2Need: number,
  passes: number,
): number {
  const n = hi.length;
  let chk = 0;
  for (let p = 0; p < passes; p++) {
    for (let i = 0; i < n; i++) {
      const f = w.translate(s1, s2, hi[i]!, lo[i]!, s1Need, s2Need);
      chk = (Math.imul(chk, 31) + ((w.outLo ^ w.outHi) + f)) | 0;
    }
  }
  return chk;
}

/**
 * Verifies a walk benchmark before timing it: every query translates, to the expected address, with
 * exactly `reads` descriptor reads. Returns the checksum of the PAs (the C baseline's formula).
 */
function verifyWalks(
  name: string,
  w: Walker,
  s1: S1Context | null,
  s2: StageRegime | null,
  q: Queries,
  expected: Float64Array,
  s1Need: number,
  s2Need: number,
  reads: number,
): number {
  let chk = 0;
  for (let i = 0; i < q.hi.length; i++) {
    const before = w.descReads;
    const f = w.translate(s1, s2, q.hi[i]!, q.lo[i]!, s1Need, s2Need);
    check(f === 0, `${name}: query ${i} (${hex(q.addr[i]!)}) faulted (${f})`);
    const got = w.outHi * 0x1_0000_0000 + w.outLo;
    check(got === expected[i], `${name}: query ${i} gave ${hex(got)}, expected ${hex(expected[i]!)}`);
    const n = w.descReads - before;
    check(n === reads, `${name}: query ${i} read ${n} descriptors, expected ${reads}`);
    chk = (Math.imul(chk, 31) + (w.outLo ^ w.outHi)) | 0;
  }
  return chk >>> 0;
}

function benchWalk(
  name: string,
  mode: Mode,
  w: Walker,
  s1: S1Context | null,
  s2: StageRegime | null,
  q: Queries,
  expected: Float64Array,
  s1Need: number,
  s2Need: number,
  reads: number,
  passes: number,
  pages: number = IMAGE.pages,
): { entry: Entry; checksum: number } {
  const checksum = verifyWalks(name, w, s1, s2, q, expected, s1Need, s2Need, reads);
  const readsBefore = w.descReads;
  const t = measure({ ops: q.hi.length * passes, runs: mode.runs, warmup: mode.warmup }, () =>
    walkLoop(w, s1, s2, q.hi, q.lo, s1Need, s2Need, passes),
  );
  const walks = q.hi.length * passes * (mode.runs + mode.warmup);
  const delta = w.descReads - readsBefore;
  check(
    delta === walks * reads,
    `${name}: ${delta} descriptor reads over ${walks} walks, expected ${reads} each`,
  );
  const note = `${q.hi.length} queries over ${pages} pages; ${reads} descriptor reads per walk; PA checksum ${hex(checksum)}`;
  return { entry: entry(name, 'walks/s', t, note), checksum };
}

// ---------------------------------------------------------------- transactions

/** The measured loop of the transaction benchmarks: 4-byte reads cycling over `iovas`. */
function transactLoop(smmu: Smmu, req: DmaRequest, out: DmaResult, iovas: Float64Array, ops: number): number {
  const mask = iovas.length - 1;
  let chk = 0;
  for (let i = 0; i < ops; i++) {
    req.iova = iovas[i & mask]!;
    smmu.transact(req, out);
    chk = (chk + (out.pa[0]! >>> 0) + out.status) | 0;
  }
  return chk;
}

/** Every query translates (one 4-byte segment, status OK) to the expected PA. */
function verifyTransactions(
  name: string,
  smmu: Smmu,
  req: DmaRequest,
  out: DmaResult,
  iovas: Float64Array,
  expected: Float64Array,
): void {
  for (let i = 0; i < iovas.length; i++) {
    req.iova = iovas[i]!;
    smmu.transact(req, out);
    check(
      out.status === TXN_OK,
      `${name}: ${hex(iovas[i]!)} ended with status ${out.status} (${out.event?.name ?? out.reason})`,
    );
    check(out.count === 1 && out.len[0] === 4, `${name}: ${hex(iovas[i]!)} was split into ${out.count}`);
    check(
      out.pa[0] === expected[i],
      `${name}: ${hex(iovas[i]!)} → ${hex(out.pa[0]!)}, expected ${hex(expected[i]!)}`,
    );
  }
}

function expectedFor(img: NestedImage, iovas: Float64Array): Float64Array {
  return iovas.map((a) => img.paOf.get(a - (a % PAGE))! + (a % PAGE));
}

function benchIotlbHit(img: NestedImage, mode: Mode): Entry {
  const name = 'translate.iotlb_hit';
  const smmu = img.rig.smmu;
  const rng = prng(SEEDS.hit);
  const pages = [...img.vaPages];
  shuffle(rng, pages);
  const iovas = makeQueries(rng, pages.slice(0, HIT_PAGES), HIT_QUERIES, 4).addr;
  const expected = expectedFor(img, iovas);
  const req = readRequest(NESTED_SID);
  const out = new DmaResult();
  verifyTransactions(name, smmu, req, out, iovas, expected);
  const tlb = smmu.iotlb.stats;
  const missesBefore = tlb.misses;
  verifyTransactions(name, smmu, req, out, iovas, expected);
  check(tlb.misses === missesBefore, `${name}: the working set does not fit the IOTLB`);
  const t = measure({ ops: mode.hitOps, runs: mode.runs, warmup: mode.warmup }, () =>
    transactLoop(smmu, req, out, iovas, mode.hitOps),
  );
  check(tlb.misses === missesBefore, `${name}: IOTLB misses while timing`);
  check(out.status === TXN_OK, `${name}: the last transaction failed`);
  return entry(
    name,
    'translations/s',
    t,
    `transact() 4-byte reads, nested STE, ${HIT_PAGES} pages cycled through ${HIT_QUERIES} addresses; 0 IOTLB misses while timed`,
  );
}

function benchBypass(img: NestedImage, mode: Mode): Entry {
  const name = 'translate.bypass';
  const smmu = img.rig.smmu;
  const rng = prng(SEEDS.bypass);
  const iovas = new Float64Array(HIT_QUERIES);
  for (let i = 0; i < iovas.length; i++)
    iovas[i] = below(rng, 0x1_0000) * 0x1_0000_0000 + ((rng() & ~3) >>> 0);
  const req = readRequest(BYPASS_SID);
  const out = new DmaResult();
  verifyTransactions(name, smmu, req, out, iovas, iovas);
  const t = measure({ ops: mode.bypassOps, runs: mode.runs, warmup: mode.warmup }, () =>
    transactLoop(smmu, req, out, iovas, mode.bypassOps),
  );
  return entry(name, 'translations/s', t, 'transact() 4-byte reads on a bypass STE (Config 0b100)');
}

function benchIotlbMiss(mode: Mode): Entry {
  const name = 'translate.iotlb_miss.nested';
  const img = buildNested(SEEDS.nested, TINY_IOTLB);
  const smmu = img.rig.smmu;
  const rng = prng(SEEDS.miss);
  const iovas = makeQueries(rng, img.vaPages, IMAGE.queries, 4).addr;
  const expected = expectedFor(img, iovas);
  const req = readRequest(NESTED_SID);
  const out = new DmaResult();
  verifyTransactions(name, smmu, req, out, iovas, expected);
  const tlb = smmu.iotlb.stats;
  const lookups0 = tlb.lookups;
  const hits0 = tlb.hits;
  const reads0 = smmu.stats.descReads;
  const walks0 = smmu.stats.walks;
  const t = measure({ ops: mode.missOps, runs: mode.runs, warmup: mode.warmup }, () =>
    transactLoop(smmu, req, out, iovas, mode.missOps),
  );
  const lookups = tlb.lookups - lookups0;
  const hitRate = (tlb.hits - hits0) / lookups;
  const readsPerWalk = (smmu.stats.descReads - reads0) / (smmu.stats.walks - walks0);
  check(readsPerWalk === 24, `${name}: ${readsPerWalk} descriptor reads per walk, expected 24`);
  return entry(
    name,
    'translations/s',
    t,
    `transact() over ${IMAGE.pages} pages with a ${TINY_IOTLB.iotlbEntries}-entry IOTLB: ` +
      `${(hitRate * 100).toFixed(2)}% hits, 24 descriptor reads per walk`,
  );
}

// ---------------------------------------------------------------- native baseline

function benchNative(
  img: NestedImage,
  mode: Mode,
  tsChecksum: number,
): { entry: Entry; walksPerS: number } | undefined {
  const cc = findCompiler();
  if (cc === undefined) {
    log(
      '· native: no C compiler found (tried $CC, cc, gcc, clang): native.walk.nested and the ratio are skipped',
    );
    return undefined;
  }
  const exe = compileWalker(cc);
  const image = exportImage({
    mem: img.rig.mem,
    s1: img.s1Regime,
    s2: img.s2Regime,
    s1Need: PERM.S1_UR,
    s2Need: PERM.S2_R,
    queries: img.queries.addr,
  });
  log(`· native: ${cc} -O2, image ${image.pages} pages (${(image.bytes / 2 ** 20).toFixed(1)} MiB)`);
  const r = runWalker(exe, image.file, mode.nativeRuns, mode.nativePasses);
  check(r.faults === 0, `native.walk.nested: ${r.faults} walks faulted`);
  check(r.descReadsPerWalk === 24, `native.walk.nested: ${r.descReadsPerWalk} descriptor reads per walk`);
  check(
    r.checksum === tsChecksum,
    `native.walk.nested: checksum ${hex(r.checksum)} differs from vsva's ${hex(tsChecksum)}`,
  );
  consume(Number(r.raw.sink ?? 0));
  const walks = IMAGE.queries * mode.nativePasses;
  return {
    entry: {
      name: 'native.walk.nested',
      unit: 'walks/s',
      value: Math.round(r.walksPerS),
      runs: mode.nativeRuns,
      opsPerRun: walks,
      nsPerOp: Number(r.nsPerWalk.toFixed(2)),
      note: `bench/native/walk.c (${cc} -O2), same image and queries; PA checksum ${hex(r.checksum)} matches`,
    },
    walksPerS: r.walksPerS,
  };
}

// ---------------------------------------------------------------- report

function fmtValue(v: number, unit: string): string {
  if (unit === 'ratio') return v.toFixed(2);
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(0);
}

function applyTarget(e: Entry): void {
  const t = TARGETS[e.name];
  if (t === undefined) return;
  e.target = `${t.op} ${fmtValue(t.value, e.unit)}`;
  e.status = (t.op === '>=' ? e.value >= t.value : e.value <= t.value) ? 'PASS' : 'BELOW';
}

function printTable(entries: readonly Entry[]): void {
  const table = new Table({
    head: ['benchmark', 'best', 'median', 'unit', 'ns/op', 'target', 'status'],
    colAligns: ['left', 'right', 'right', 'left', 'right', 'left', 'left'],
    style: { head: [], border: [] },
  });
  for (const e of entries) {
    table.push([
      e.name,
      fmtValue(e.value, e.unit),
      e.median === undefined ? '' : fmtValue(e.median, e.unit),
      e.unit,
      e.nsPerOp === undefined ? '' : e.nsPerOp.toFixed(1),
      e.target ?? '',
      e.status ?? '',
    ]);
  }
  log(table.toString());
  for (const e of entries) if (e.note !== undefined) log(`  ${e.name}: ${e.note}`);
}

// ---------------------------------------------------------------- main

function main(): void {
  const args = new Set(process.argv.slice(2));
  if (args.has('--help') || args.has('-h')) {
    log('usage: npm run bench [-- --quick] [-- --no-native]');
    return;
  }
  const mode = args.has('--quick') ? QUICK : FULL;
  const start = performance.now();
  log(
    `vsva bench (${mode.name}): node ${process.version}, V8 ${process.versions.v8}, ${process.platform}/${process.arch}`,
  );
  const entries: Entry[] = [];

  log('· building images');
  const flat1 = buildFlat(1, SEEDS.s1);
  const flat2 = buildFlat(2, SEEDS.s2);
  const nested = buildNested(SEEDS.nested);
  log(`· images built in ${((performance.now() - start) / 1000).toFixed(1)} s`);

  // IOTLB hit first: the headline figure, measured before anything else warms other paths.
  log('· translate.iotlb_hit');
  const hit = benchIotlbHit(nested, mode);

  log('· walk.s1');
  const w1 = new Walker(flat1.mem);
  const s1 = benchWalk(
    'walk.s1',
    mode,
    w1,
    flat1.s1ctx,
    null,
    flat1.queries,
    flat1.expected,
    flat1.need,
    PERM.S2_R,
    4,
    mode.passesFlat,
  );
  log('· walk.s2');
  const w2 = new Walker(flat2.mem);
  const s2 = benchWalk(
    'walk.s2',
    mode,
    w2,
    null,
    flat2.regime,
    flat2.queries,
    flat2.expected,
    PERM.S1_UR,
    flat2.need,
    4,
    mode.passesFlat,
  );
  log('· walk.nested');
  const wn = new Walker(nested.rig.mem);
  const nw = benchWalk(
    'walk.nested',
    mode,
    wn,
    nested.s1ctx,
    nested.s2Regime,
    nested.queries,
    nested.expected,
    PERM.S1_UR,
    PERM.S2_R,
    24,
    mode.passesNested,
  );
  // The same nested walk over a small working set (the first HOT_PAGES pages: HOT_PAGES / 16 regions),
  // separating the walk's own cost from the large image's memory behaviour. Informative, no target.
  log('· walk.nested.hot');
  const hotPages = nested.vaPages.slice(0, HOT_PAGES);
  const hotQueries = makeQueries(prng(SEEDS.hot), hotPages, IMAGE.queries);
  const hotExpected = hotQueries.addr.map((a) => expectedPa(nested.s1, nested.s2, a));
  const hot = benchWalk(
    'walk.nested.hot',
    mode,
    wn,
    nested.s1ctx,
    nested.s2Regime,
    hotQueries,
    hotExpected,
    PERM.S1_UR,
    PERM.S2_R,
    24,
    mode.passesNested,
    HOT_PAGES,
  );
  entries.push(hit, s1.entry, s2.entry, nw.entry, hot.entry);

  if (args.has('--no-native')) log('· native: skipped (--no-native)');
  else {
    const native = benchNative(nested, mode, nw.checksum);
    if (native !== undefined) {
      entries.push(native.entry);
      const ratio = native.walksPerS / nw.entry.value;
      entries.push({
        name: 'ratio.walk.nested_vs_native',
        unit: 'ratio',
        value: Number(ratio.toFixed(3)),
        note: `native ${fmtValue(native.walksPerS, 'walks/s')} ÷ vsva ${fmtValue(nw.entry.value, 'walks/s')} walks/s (lower is better)`,
      });
    }
  }

  log('· translate.iotlb_miss.nested');
  entries.push(benchIotlbMiss(mode));
  log('· translate.bypass');
  entries.push(benchBypass(nested, mode));

  for (const e of entries) applyTarget(e);
  printTable(entries);
  writeFileSync(RESULTS, `${JSON.stringify(entries, null, 2)}\n`);
  const secs = (performance.now() - start) / 1000;
  log(`wrote ${RESULTS}; sink ${hex(sink())}; ${mode.name} run took ${secs.toFixed(1)} s`);
}

try {
  main();
} catch (e) {
  if (e instanceof BenchError) {
    process.stderr.write(`bench: FAILED: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}

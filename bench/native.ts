/**
 * The native baseline's plumbing: exports a nested memory image to bench/native/build/ in the
 * format bench/native/walk.c documents, finds the system C compiler ($CC, cc, gcc or clang),
 * compiles walk.c with -O2, runs it and parses its `key value` output. Nothing here is timed;
 * the C program times itself.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PhysMem } from '../src/hw/memory.ts';
import type { StageRegime } from '../src/hw/vmsa/regime.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const NATIVE_DIR = join(HERE, 'native');
export const BUILD_DIR = join(NATIVE_DIR, 'build');
const PAGE = 4096;
const HEADER = 88;

export interface NativeImage {
  readonly mem: PhysMem;
  readonly s1: StageRegime;
  readonly s2: StageRegime;
  readonly s1Need: number;
  readonly s2Need: number;
  /** Query input addresses (below 2^53). */
  readonly queries: Float64Array;
}

function putRegime(dv: DataView, at: number, r: StageRegime): void {
  const flags = (r.affd ? 1 : 0) | (r.had ? 2 : 0) | (r.twoPrivilege ? 4 : 0);
  const words = [r.granule, r.startLevel, r.startBits, r.inputBits, r.oaBits, flags, r.ttbLo, r.ttbHi];
  for (let i = 0; i < words.length; i++) dv.setUint32(at + 4 * i, words[i]! >>> 0, true);
}

function putU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v >>> 0, true);
  dv.setUint32(at + 4, Math.floor(v / 0x1_0000_0000) >>> 0, true);
}

/** Writes the image file; returns its path and size. */
export function exportImage(
  img: NativeImage,
  file = join(BUILD_DIR, 'nested.img'),
): { file: string; pages: number; bytes: number } {
  const pages = img.mem.backedPages();
  const bytes = HEADER + pages.length * (8 + PAGE) + img.queries.length * 8;
  const buf = new Uint8Array(bytes);
  const dv = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode('VSVAWLK1'), 0);
  dv.setUint32(8, pages.length, true);
  dv.setUint32(12, img.queries.length, true);
  dv.setUint32(16, img.s1Need, true);
  dv.setUint32(20, img.s2Need, true);
  putRegime(dv, 24, img.s1);
  putRegime(dv, 56, img.s2);
  let at = HEADER;
  for (const pa of pages) {
    const data = img.mem.read(pa, PAGE);
    if (data === undefined) throw new Error(`native: page 0x${pa.toString(16)} is not readable`);
    putU64(dv, at, pa);
    buf.set(data, at + 8);
    at += 8 + PAGE;
  }
  for (const q of img.queries) {
    putU64(dv, at, q);
    at += 8;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, buf);
  return { file, pages: pages.length, bytes };
}

/** The first working C compiler among $CC, cc, gcc, clang; undefined when there is none. */
export function findCompiler(): string | undefined {
  const candidates = [process.env.CC, 'cc', 'gcc', 'clang'].filter(
    (c): c is string => c !== undefined && c !== '',
  );
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  return undefined;
}

/** Compiles walk.c with -O2 into the build directory; returns the executable's path. */
export function compileWalker(cc: string): string {
  mkdirSync(BUILD_DIR, { recursive: true });
  const exe = join(BUILD_DIR, 'walk');
  const args = ['-O2', '-std=c11', '-Wall', '-Wextra', '-o', exe, join(NATIVE_DIR, 'walk.c')];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native: ${cc} ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
  return exe;
}

export interface NativeResult {
  readonly walksPerS: number;
  readonly checksum: number;
  readonly faults: number;
  readonly descReadsPerWalk: number;
  readonly nsPerWalk: number;
  readonly raw: Record<string, string>;
}

/** Runs the walker over an image: best of `runs` runs of `passes` passes over the queries. */
export function runWalker(exe: string, image: string, runs: number, passes: number): NativeResult {
  const r = spawnSync(exe, [image, String(runs), String(passes)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native: ${exe} exited with ${r.status}:\n${r.stderr}${r.stdout}`);
  const raw: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\w+) (\S+)$/.exec(line.trim());
    if (m !== null) raw[m[1]!] = m[2]!;
  }
  const num = (k: string): number => {
    const v = Number(raw[k]);
    if (!Number.isFinite(v)) throw new Error(`native: no '${k}' in the output:\n${r.stdout}`);
    return v;
  };
  return {
    walksPerS: num('walks_per_s'),
    checksum: num('checksum'),
    faults: num('faults'),
    descReadsPerWalk: num('desc_reads_per_walk'),
    nsPerWalk: num('best_ns_per_walk'),
    raw,
  };
}

/**
 * Memory images for `vsva inspect`: raw byte files placed at a physical base address
 * ("dump.bin@0x80000000"), read from disk, written from a model's PhysMem, and served back as a
 * PhysMem whose only accessible bytes are those of the images. Every other byte is *absent*: a read
 * there is an external abort, exactly as an SMMU reading a hole in the physical map sees it
 * (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT), so the decoder reports it and never throws.
 *
 * `ImageMemory` can also record every read made through it (address, size, bytes or "absent"), in
 * order, which is how the decoder shows each table read of a walk without a walker of its own: the
 * reference walker (src/hw/vmsa/walk-ref.ts) reads through it.
 *
 * Decision: where images overlap, the later one wins (it is written last).
 * Decision: an image is byte-exact: bytes past the end of a file are absent even inside its last
 * 4 KiB page (a truncated dump is reported as truncated, not as zeros).
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { hex } from '../../arch/bits.ts';
import { PAGE_SIZE, PhysMem } from '../../hw/memory.ts';

/** Raw bytes at a physical base address. */
export interface MemoryImage {
  readonly base: number;
  readonly bytes: Uint8Array;
  /** Where the bytes came from (a file name), for reports. */
  readonly source?: string;
}

/** A file to be placed at a base address. */
export interface ImageSpec {
  readonly file: string;
  readonly base: number;
}

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

const MAX_ADDR = 2 ** 52;

/** Parses an unsigned integer written in hex (0x), binary (0b) or decimal, with optional `_` separators. */
export function parseUint(text: string): bigint | undefined {
  const t = text.trim().replaceAll('_', '');
  if (!/^(0x[0-9a-f]+|0b[01]+|[0-9]+)$/i.test(t)) return undefined;
  return BigInt(t.toLowerCase());
}

/** "file.bin@0x80000000" → {file, base}. The base must be below 2^52 (the largest physical address). */
export function parseImageSpec(spec: string): Parsed<ImageSpec> {
  const at = spec.lastIndexOf('@');
  if (at <= 0 || at === spec.length - 1) {
    return { ok: false, error: `image "${spec}": expected FILE@BASE, e.g. ram.bin@0x80000000` };
  }
  const file = spec.slice(0, at);
  const baseText = spec.slice(at + 1);
  const base = parseUint(baseText);
  if (base === undefined) {
    return {
      ok: false,
      error: `image "${spec}": base "${baseText}" is not a number (use hex like 0x80000000)`,
    };
  }
  if (base >= BigInt(MAX_ADDR)) {
    return {
      ok: false,
      error: `image "${spec}": base ${baseText} is beyond the 52-bit physical address space`,
    };
  }
  return { ok: true, value: { file, base: Number(base) } };
}

/** Reads every image file; the first missing or unreadable file (or image past 2^52) is an error value. */
export function readImages(specs: readonly (ImageSpec | string)[]): Parsed<MemoryImage[]> {
  const out: MemoryImage[] = [];
  for (const s of specs) {
    let spec: ImageSpec;
    if (typeof s === 'string') {
      const p = parseImageSpec(s);
      if (!p.ok) return p;
      spec = p.value;
    } else spec = s;
    let bytes: Uint8Array;
    try {
      const buf = readFileSync(spec.file);
      bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      const code = (e as { code?: string }).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String(e);
      return { ok: false, error: `image ${spec.file}: ${why}` };
    }
    if (spec.base + bytes.length > MAX_ADDR) {
      return {
        ok: false,
        error: `image ${spec.file}@${hex(spec.base)}: ends beyond the 52-bit address space`,
      };
    }
    out.push({ base: spec.base, bytes, source: spec.file });
  }
  return { ok: true, value: out };
}

/** Contiguous runs of backed pages of a memory: [base, size). */
export function backedRuns(mem: PhysMem): { base: number; size: number }[] {
  const runs: { base: number; size: number }[] = [];
  for (const page of mem.backedPages()) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last.base + last.size === page) last.size += PAGE_SIZE;
    else runs.push({ base: page, size: PAGE_SIZE });
  }
  return runs;
}

/**
 * Writes every backed (ever written) region of `mem` to `dir` as one file per contiguous run, named
 * `<prefix>-<base>.bin`, and returns their specs ("path@0xbase"). Pages marked absent in `mem`
 * are left out (they are absent in the dump too).
 */
export function dumpImages(mem: PhysMem, dir: string, prefix = mem.name): string[] {
  mkdirSync(dir, { recursive: true });
  const specs: string[] = [];
  const flush = (base: number, parts: Uint8Array[]): void => {
    if (parts.length === 0) return;
    const bytes = new Uint8Array(parts.length * PAGE_SIZE);
    parts.forEach((p, i) => {
      bytes.set(p, i * PAGE_SIZE);
    });
    const file = join(dir, `${basename(prefix)}-${hex(base)}.bin`);
    writeFileSync(file, bytes);
    specs.push(`${file}@${hex(base)}`);
  };
  for (const run of backedRuns(mem)) {
    let start = run.base;
    let parts: Uint8Array[] = [];
    for (let a = run.base; a < run.base + run.size; a += PAGE_SIZE) {
      const page = mem.read(a, PAGE_SIZE);
      if (page === undefined) {
        flush(start, parts);
        parts = [];
        start = a + PAGE_SIZE;
      } else parts.push(page);
    }
    flush(start, parts);
  }
  return specs;
}

/** One read made through an ImageMemory. `bytes` is null when the read was an external abort. */
export interface RecordedRead {
  readonly addr: number;
  readonly size: number;
  readonly bytes: Uint8Array | null;
}

interface Span {
  readonly base: number;
  readonly end: number;
}

/**
 * A PhysMem holding only the images' bytes: everything else is absent (external abort). Reads can
 * be recorded with `record()`.
 */
export class ImageMemory extends PhysMem {
  private readonly spans: Span[];
  private log: RecordedRead[] | null = null;

  constructor(images: readonly MemoryImage[]) {
    super({ name: 'image' });
    this.spans = mergeSpans(images.map((i) => ({ base: i.base, end: i.base + i.bytes.length })));
    const written = new Set<number>();
    for (const img of images) writeSparse(this, img, written);
  }

  /** The merged ranges the images cover. */
  covered(): readonly { base: number; size: number }[] {
    return this.spans.map((s) => ({ base: s.base, size: s.end - s.base }));
  }

  override isAccessible(addr: number, len: number): boolean {
    if (!super.isAccessible(addr, len)) return false;
    if (len === 0) return true;
    const end = addr + len;
    return this.spans.some((s) => addr >= s.base && end <= s.end);
  }

  /** Runs `fn` with every read recorded, and returns its result and the reads in order. */
  record<T>(fn: () => T): { result: T; reads: RecordedRead[] } {
    const outer = this.log;
    const reads: RecordedRead[] = [];
    this.log = reads;
    try {
      return { result: fn(), reads };
    } finally {
      this.log = outer;
    }
  }

  override read(addr: number, len: number): Uint8Array | undefined {
    const r = super.read(addr, len);
    this.log?.push({ addr, size: len, bytes: r === undefined ? null : r.slice() });
    return r;
  }

  override read64(addr: number, out: Uint32Array): boolean {
    const ok = super.read64(addr, out);
    if (this.log !== null) {
      const bytes = ok ? new Uint8Array(new Uint32Array([out[0]!, out[1]!]).buffer) : null;
      this.log.push({ addr, size: 8, bytes });
    }
    return ok;
  }
}

function mergeSpans(spans: readonly Span[]): Span[] {
  const sorted = spans.filter((s) => s.end > s.base).sort((a, b) => a.base - b.base);
  const out: Span[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s.base <= last.end)
      out[out.length - 1] = { base: last.base, end: Math.max(last.end, s.end) };
    else out.push(s);
  }
  return out;
}

/**
 * Writes an image chunk by chunk (page-bounded), skipping all-zero chunks (unbacked pages read as
 * zero) unless an earlier image already wrote that page (the later image wins).
 */
function writeSparse(mem: PhysMem, img: MemoryImage, written: Set<number>): void {
  let off = 0;
  while (off < img.bytes.length) {
    const addr = img.base + off;
    const n = Math.min(PAGE_SIZE - (addr % PAGE_SIZE), img.bytes.length - off);
    const chunk = img.bytes.subarray(off, off + n);
    const page = Math.floor(addr / PAGE_SIZE);
    if (written.has(page) || chunk.some((b) => b !== 0)) {
      mem.write(addr, chunk);
      written.add(page);
    }
    off += n;
  }
}

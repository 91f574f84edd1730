/**
 * A builder of real VMSAv8-64 translation tables (Arm ARM DDI 0487 D8.2-D8.4: table, block and page
 * descriptors, stage-1 and stage-2 attributes), with the map / unmap / iova_to_phys semantics of
 * Linux's io-pgtable-arm ("ARM_64_LPAE_S1" / "ARM_64_LPAE_S2") under the iommu core's iommu_map
 * and iommu_unmap. The tables are written into the memory of a PageAllocator as 64-bit descriptors
 * (two u32 words each), so the SMMU model's walkers can walk them.
 *
 * Geometry. Stage 1 starts at the level that resolves the input size exactly. Stage 2 may start one
 * level lower with up to 16 concatenated tables (Arm ARM D8.2.2): as in Linux, a level-0 start whose
 * table would hold at most 16 entries is folded into level 1; vsva also folds when the unfolded
 * start level has no SL0 encoding for the output size (16 KiB granule, 40-bit IPA, 40-bit PA). The
 * block sizes offered (`pgsizes`) are those of `mappingSizes` at or below the start level.
 *
 * Semantics, following io-pgtable-arm and the iommu core:
 * - `map` splits the range into the largest page/block sizes that both the IOVA and the PA are
 *   aligned to. It is all or nothing: EEXIST is detected before anything is written, and a later
 *   failure (ENOMEM) undoes every descriptor written and every table allocated by the call. Mapping
 *   a block over a table that holds no mappings replaces the table (Linux frees it too); a table
 *   that still maps something is EEXIST (Linux would tear it down).
 * - `unmap` walks the range in the largest chunks the IOVA alignment allows and stops at the first
 *   chunk with nothing there, returning the bytes unmapped so far. A chunk smaller than the block
 *   covering it splits the block into a next-level table that keeps the rest mapped with the same
 *   attributes; a chunk that is exactly a table's span frees that table and everything below it.
 * - No access (neither read nor write) is refused with EINVAL; Linux silently maps nothing.
 * - EIO (not in Linux's set) reports a table read or write that aborted, e.g. memory marked absent.
 *
 * Stage-1 memory attributes assume MAIR Attr0 = 0xFF (Normal, inner/outer write-back, read- and
 * write-allocate) and Attr1 = 0x04 (Device-nGnRE): see S1_MAIR. Nothing here throws.
 */

import { alignDown, hi32, isAligned, join64, lo32 } from '../../arch/bits.ts';
import {
  D0_AF,
  D0_NG,
  D1_PXN,
  D1_XN,
  GRANULES,
  type Granule,
  levelShift,
  mappingSizes,
  PS_BITS,
  startLevelFor,
  strideOf,
} from '../../arch/vmsa.ts';
import type { MemoryPort } from '../memory.ts';
import type { PageAllocator } from '../page-alloc.ts';
import { type RegimeResult, s1Regime, s2Regime, s2StartLevel } from './regime.ts';

// ---------------------------------------------------------------- configuration and geometry

export interface PgtableConfig {
  readonly stage: 1 | 2;
  readonly granule: Granule;
  /** Input (IOVA / IPA) size: 25..48, or up to 52 with the 64 KiB granule. */
  readonly iasBits: number;
  /** Output size: one of 32, 36, 40, 42, 44, 48, or 52 with the 64 KiB granule. */
  readonly oasBits: number;
  /** Stage 1: mark every leaf non-global (nG), as for a process address space with an ASID. */
  readonly nonGlobal?: boolean;
}

export interface PgtableGeometry {
  readonly stage: 1 | 2;
  readonly granule: Granule;
  readonly iasBits: number;
  readonly oasBits: number;
  readonly startLevel: number;
  /** Index bits resolved at the start level (more than the stride when tables are concatenated). */
  readonly startBits: number;
  /** Tables concatenated at the start level (1 unless stage 2 folded a level). */
  readonly concatenated: number;
  /** Stage 2: the VTCR/STE S2SL0 encoding of the start level; -1 for stage 1. */
  readonly sl0: number;
  /** Size and alignment of the root table in bytes. */
  readonly rootBytes: number;
  /** log2 of the page and block sizes this table can map, smallest first. */
  readonly pgsizes: readonly number[];
  /** 64 KiB granule with a 52-bit output: OA[51:48] live in descriptor bits [15:12]. */
  readonly oa52: boolean;
}

export type PgtableErrno = 'EINVAL' | 'ERANGE' | 'EEXIST' | 'ENOMEM' | 'EIO';

export interface PgtableError {
  readonly ok: false;
  readonly errno: PgtableErrno;
  readonly detail: string;
}

export type GeometryResult = { readonly ok: true; readonly geometry: PgtableGeometry } | PgtableError;
export type CreateResult = { readonly ok: true; readonly table: PageTable } | PgtableError;
export type MapResult = { readonly ok: true; readonly mapped: number } | PgtableError;

/** Access rights and memory type of a mapping (the iommu core's IOMMU_READ/WRITE/NOEXEC/PRIV/MMIO). */
export interface Prot {
  readonly read: boolean;
  readonly write: boolean;
  /** Executable; default false (stage 1 sets UXN and PXN, stage 2 sets XN). */
  readonly exec?: boolean;
  /** Stage 1: accessible from EL0 (AP[1] = 1); default false. Ignored at stage 2. */
  readonly user?: boolean;
  /** Memory type; default 'normal'. */
  readonly cache?: 'normal' | 'device';
}

/** Options for the walkable regime; defaults: everything off except twoPrivilege (stage 1). */
export interface PgtableRegimeOptions {
  readonly affd?: boolean;
  readonly had?: boolean;
  readonly twoPrivilege?: boolean;
  readonly pan?: boolean;
  readonly wxn?: boolean;
}

export interface PgtableStats {
  /** Tables allocated and freed over the table's life (the root counts as one). */
  readonly tablesAllocated: number;
  readonly tablesFreed: number;
  readonly tablesLive: number;
  readonly tableBytesLive: number;
  /** Leaf descriptors present, by log2 of the size they map (only sizes with a non-zero count). */
  readonly leaves: ReadonlyMap<number, number>;
  /** Bytes of input address space currently mapped. */
  readonly mappedBytes: number;
}

/** AttrIndx values used at stage 1, and the MAIR value they assume (Attr0 normal WB, Attr1 device). */
export const S1_ATTRIDX_NORMAL = 0;
export const S1_ATTRIDX_DEVICE = 1;
export const S1_MAIR = 0x04ff;
/** Stage-2 MemAttr[3:0] values: Normal outer/inner write-back, and Device-nGnRE. */
export const S2_MEMATTR_NORMAL = 0xf;
export const S2_MEMATTR_DEVICE = 0x1;

const DESC_VALID = 1;
const TYPE_TABLE_OR_PAGE = 0b11;
const TYPE_BLOCK = 0b01;
const SH_INNER = 0b11 << 8;
const S1_AP_EL0 = 1 << 6;
const S1_AP_RO = 1 << 7;
const S2AP_READ = 1 << 6;
const S2AP_WRITE = 1 << 7;
/** Low-word attribute bits [11:2] and high-word attribute bits [63:48], copied when a block is split. */
const LO_ATTR_MASK = 0xffc;
const HI_ATTR_MASK = 0xffff_0000;

function einval(detail: string): PgtableError {
  return { ok: false, errno: 'EINVAL', detail };
}

function configProblem(cfg: PgtableConfig): string | undefined {
  if (typeof cfg !== 'object' || cfg === null) return 'config is not an object';
  if (cfg.stage !== 1 && cfg.stage !== 2) return `stage ${String(cfg.stage)} is neither 1 nor 2`;
  if (!GRANULES.includes(cfg.granule)) return `granule 2^${String(cfg.granule)} is not 4K, 16K or 64K`;
  const maxIas = cfg.granule === 16 ? 52 : 48;
  if (!Number.isInteger(cfg.iasBits) || cfg.iasBits < 25 || cfg.iasBits > maxIas) {
    return `IAS ${cfg.iasBits} outside 25..${maxIas} for this granule`;
  }
  if (!PS_BITS.includes(cfg.oasBits)) return `OAS ${cfg.oasBits} is not one of ${PS_BITS.join(', ')}`;
  if (cfg.oasBits > 48 && cfg.granule !== 16) return '52-bit OAS needs the 64K granule';
  if (cfg.stage === 2 && cfg.nonGlobal === true) return 'nonGlobal applies to stage 1 only';
  return undefined;
}

/** The S2SL0 encoding of a start level, or -1 if none (no small translation tables, PAMax = oas). */
function sl0For(g: Granule, level: number, paMaxBits: number): number {
  for (let sl0 = 0; sl0 < 4; sl0++) if (s2StartLevel(g, sl0, paMaxBits, false) === level) return sl0;
  return -1;
}

/** Stage-2 start: fold a level into up to 16 concatenated tables where Linux does, or where it must. */
function stage2Start(g: Granule, ias: number, oas: number): { level: number; bits: number } {
  const level = startLevelFor(g, ias);
  const bits = ias - levelShift(g, level);
  const foldable = bits <= 4 && level < 3 && sl0For(g, level + 1, oas) >= 0;
  const wanted = level === 0 || sl0For(g, level, oas) < 0;
  return foldable && wanted ? { level: level + 1, bits: bits + strideOf(g) } : { level, bits };
}

/** The level whose entries map 2^shift bytes. */
function levelOfShift(g: Granule, shift: number): number {
  return 3 - (shift - g) / strideOf(g);
}

/** Validates a configuration and derives its geometry. */
export function pgtableGeometry(cfg: PgtableConfig): GeometryResult {
  const problem = configProblem(cfg);
  if (problem !== undefined) return einval(problem);
  const g = cfg.granule;
  const stride = strideOf(g);
  let level = startLevelFor(g, cfg.iasBits);
  let bits = cfg.iasBits - levelShift(g, level);
  let sl0 = -1;
  if (cfg.stage === 2) {
    ({ level, bits } = stage2Start(g, cfg.iasBits, cfg.oasBits));
    sl0 = sl0For(g, level, cfg.oasBits);
    if (sl0 < 0)
      return einval(`stage-2 start level ${level} has no SL0 encoding with a ${cfg.oasBits}-bit PA size`);
  }
  const oa52 = g === 16 && cfg.oasBits > 48;
  const geometry: PgtableGeometry = {
    stage: cfg.stage,
    granule: g,
    iasBits: cfg.iasBits,
    oasBits: cfg.oasBits,
    startLevel: level,
    startBits: bits,
    concatenated: 2 ** Math.max(0, bits - stride),
    sl0,
    rootBytes: Math.max(2 ** (bits + 3), oa52 ? 64 : 8),
    pgsizes: mappingSizes(g, cfg.oasBits).filter((s) => levelOfShift(g, s) >= level),
    oa52,
  };
  return { ok: true, geometry };
}

// ---------------------------------------------------------------- leaf attributes

function protProblem(prot: Prot): string | undefined {
  if (typeof prot !== 'object' || prot === null) return 'prot is not an object';
  if (typeof prot.read !== 'boolean' || typeof prot.write !== 'boolean')
    return 'prot.read/write must be booleans';
  if (!prot.read && !prot.write) return 'prot grants neither read nor write';
  const c = prot.cache;
  if (c !== undefined && c !== 'normal' && c !== 'device')
    return `prot.cache '${String(c)}' is not normal/device`;
  return undefined;
}

/** Stage-1 leaf attribute words [lo, hi] (no type bits, no output address). */
export function s1LeafAttributes(prot: Prot, nonGlobal: boolean): [lo: number, hi: number] {
  const attrIndx = prot.cache === 'device' ? S1_ATTRIDX_DEVICE : S1_ATTRIDX_NORMAL;
  let lo = D0_AF | SH_INNER | (attrIndx << 2);
  if (!prot.write) lo |= S1_AP_RO;
  if (prot.user === true) lo |= S1_AP_EL0;
  if (nonGlobal) lo |= D0_NG;
  const hi = prot.exec === true ? 0 : D1_PXN | D1_XN;
  return [lo >>> 0, hi >>> 0];
}

/** Stage-2 leaf attribute words [lo, hi] (no type bits, no output address). */
export function s2LeafAttributes(prot: Prot): [lo: number, hi: number] {
  const memAttr = prot.cache === 'device' ? S2_MEMATTR_DEVICE : S2_MEMATTR_NORMAL;
  let lo = D0_AF | SH_INNER | (memAttr << 2);
  if (prot.read) lo |= S2AP_READ;
  if (prot.write) lo |= S2AP_WRITE;
  const hi = prot.exec === true ? 0 : D1_XN;
  return [lo >>> 0, hi >>> 0];
}

// ---------------------------------------------------------------- the page table

/** An undo record of one `map` call: a descriptor's previous value, or a table it allocated. */
type JournalEntry =
  | {
      readonly kind: 'entry';
      readonly addr: number;
      readonly level: number;
      readonly lo: number;
      readonly hi: number;
    }
  | { readonly kind: 'alloc'; readonly addr: number };

/** A table to free once a `map` call has succeeded (an empty table a block replaced). */
interface DeferredFree {
  readonly addr: number;
  readonly level: number;
}

export class PageTable {
  readonly mem: MemoryPort;
  readonly allocator: PageAllocator;
  readonly config: PgtableConfig;
  readonly geometry: PgtableGeometry;
  /** Physical address of the root (start-level) table: TTB0 / S2TTB. */
  readonly root: number;

  private readonly scratch = new Uint32Array(2);
  private readonly granMaskLo: number;
  private readonly leafCounts = new Map<number, number>();
  private journal: JournalEntry[] | null = null;
  private deferred: DeferredFree[] = [];
  private destroyed = false;
  private allocatedTables = 1;
  private freedTables = 0;
  private liveTableBytes: number;

  /** Validates `config`, then allocates the root table from `allocator` (in `allocator.mem`). */
  static create(allocator: PageAllocator, config: PgtableConfig): CreateResult {
    const geo = pgtableGeometry(config);
    if (!geo.ok) return geo;
    const { rootBytes } = geo.geometry;
    const root = allocator.alloc(rootBytes);
    if (root === undefined) return { ok: false, errno: 'ENOMEM', detail: `no ${rootBytes}-byte root table` };
    if (root + rootBytes > 2 ** config.oasBits) {
      allocator.free(root, rootBytes);
      return {
        ok: false,
        errno: 'ENOMEM',
        detail: `root table beyond the ${config.oasBits}-bit output size`,
      };
    }
    return { ok: true, table: new PageTable(allocator, config, geo.geometry, root) };
  }

  private constructor(
    allocator: PageAllocator,
    config: PgtableConfig,
    geometry: PgtableGeometry,
    root: number,
  ) {
    this.mem = allocator.mem;
    this.allocator = allocator;
    this.config = config;
    this.geometry = geometry;
    this.root = root;
    this.granMaskLo = ~(2 ** geometry.granule - 1) >>> 0;
    this.liveTableBytes = geometry.rootBytes;
  }

  get stage(): 1 | 2 {
    return this.geometry.stage;
  }

  get granule(): Granule {
    return this.geometry.granule;
  }

  get startLevel(): number {
    return this.geometry.startLevel;
  }

  /** Stage-2 S2SL0 encoding (-1 for stage 1). */
  get sl0(): number {
    return this.geometry.sl0;
  }

  get pgsizes(): readonly number[] {
    return this.geometry.pgsizes;
  }

  /** The regime an SMMU walk of this table uses (TxSZ = 64 - IAS; stage 2: computed SL0, PAMax = OAS). */
  regime(opts: PgtableRegimeOptions = {}): RegimeResult {
    if (this.destroyed) return { ok: false, reason: 'page table destroyed' };
    const { granule, iasBits, oasBits, sl0 } = this.geometry;
    const affd = opts.affd ?? false;
    if (this.stage === 2) {
      const t0sz = 64 - iasBits;
      return s2Regime({
        granule,
        t0sz,
        sl0,
        ttb: this.root,
        oaBits: oasBits,
        affd,
        paMaxBits: oasBits,
        stt: false,
      });
    }
    return s1Regime({
      granule,
      txsz: 64 - iasBits,
      ttb: this.root,
      oaBits: oasBits,
      affd,
      had: opts.had ?? false,
      twoPrivilege: opts.twoPrivilege ?? true,
      pan: opts.pan ?? false,
      wxn: opts.wxn ?? false,
    });
  }

  get stats(): PgtableStats {
    const leaves = new Map<number, number>();
    let mappedBytes = 0;
    for (const [shift, n] of [...this.leafCounts].sort((a, b) => a[0] - b[0])) {
      if (n === 0) continue;
      leaves.set(shift, n);
      mappedBytes += n * 2 ** shift;
    }
    return {
      tablesAllocated: this.allocatedTables,
      tablesFreed: this.freedTables,
      tablesLive: this.allocatedTables - this.freedTables,
      tableBytesLive: this.liveTableBytes,
      leaves,
      mappedBytes,
    };
  }

  // ---------------------------------------------------------------- map

  /** Maps [iova, iova+size) to [pa, pa+size) with `prot`; all or nothing. */
  map(iova: number, pa: number, size: number, prot: Prot): MapResult {
    const bad = this.mapArgsProblem(iova, pa, size, prot);
    if (bad !== undefined) return bad;
    const [attrLo, attrHi] =
      this.stage === 1 ? s1LeafAttributes(prot, this.config.nonGlobal === true) : s2LeafAttributes(prot);
    const overlap = this.findLeaf(this.root, this.startLevel, iova, iova + size);
    if (overlap === 'EIO') return this.error('EIO', 'table read aborted');
    if (overlap !== undefined) return this.error('EEXIST', `0x${overlap.toString(16)} is already mapped`);
    this.journal = [];
    this.deferred = [];
    let done = 0;
    while (done < size) {
      const chunk = this.chunkLog2(iova + done, pa + done, size - done);
      const errno = this.mapChunk(iova + done, pa + done, chunk, attrLo, attrHi);
      if (errno !== undefined) {
        this.rollback();
        return this.error(errno, `mapping 2^${chunk} bytes at 0x${(iova + done).toString(16)} failed`);
      }
      done += 2 ** chunk;
    }
    this.journal = null;
    for (const d of this.deferred) this.freeTree(d.addr, d.level);
    this.deferred = [];
    return { ok: true, mapped: size };
  }

  private mapArgsProblem(iova: number, pa: number, size: number, prot: Prot): PgtableError | undefined {
    if (this.destroyed) return einval('page table destroyed');
    const min = this.pgsizes[0]!;
    for (const [name, v] of [
      ['iova', iova],
      ['pa', pa],
      ['size', size],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0) return einval(`${name} is not a non-negative integer`);
      if (!isAligned(v, min)) return einval(`${name} 0x${v.toString(16)} is not aligned to 2^${min}`);
    }
    if (size === 0) return einval('size is 0');
    if (iova + size > 2 ** this.geometry.iasBits)
      return this.error('ERANGE', `iova range beyond 2^${this.geometry.iasBits}`);
    if (pa + size > 2 ** this.geometry.oasBits)
      return this.error('ERANGE', `pa range beyond 2^${this.geometry.oasBits}`);
    const p = protProblem(prot);
    return p === undefined ? undefined : einval(p);
  }

  /** log2 of the largest supported size that fits `remaining` and both addresses' alignment. */
  private chunkLog2(iova: number, pa: number, remaining: number): number {
    const sizes = this.pgsizes;
    for (let i = sizes.length - 1; i > 0; i--) {
      const s = sizes[i]!;
      if (2 ** s <= remaining && isAligned(iova, s) && isAligned(pa, s)) return s;
    }
    return sizes[0]!;
  }

  /** Installs one leaf of 2^sizeLog2 bytes, creating tables on the way down. */
  private mapChunk(
    iova: number,
    pa: number,
    sizeLog2: number,
    attrLo: number,
    attrHi: number,
  ): PgtableErrno | undefined {
    let table = this.root;
    let level = this.startLevel;
    for (;;) {
      const slot = this.slotAddr(table, level, iova);
      if (!this.readEntry(slot)) return 'EIO';
      const lo = this.scratch[0]!;
      const hi = this.scratch[1]!;
      if (this.shiftOf(level) === sizeLog2) return this.installLeaf(slot, level, pa, attrLo, attrHi, lo, hi);
      if ((lo & DESC_VALID) === 0) {
        const next = this.newTable(slot, level);
        if (typeof next === 'string') return next;
        table = next;
      } else if (this.isTable(lo, level)) table = this.tableAddr(lo, hi);
      else return 'EEXIST';
      level++;
    }
  }

  private installLeaf(
    slot: number,
    level: number,
    pa: number,
    attrLo: number,
    attrHi: number,
    oldLo: number,
    oldHi: number,
  ): PgtableErrno | undefined {
    if (this.isLeaf(oldLo, level)) return 'EEXIST';
    // The overlap check found no mappings below, so an existing table here is empty: replace it.
    if (this.isTable(oldLo, level))
      this.deferred.push({ addr: this.tableAddr(oldLo, oldHi), level: level + 1 });
    const [lo, hi] = this.encodeLeaf(pa, level, attrLo, attrHi);
    return this.setEntry(slot, level, lo, hi) ? undefined : 'EIO';
  }

  /** Allocates a table for the level below `level` and links it at `slot`. */
  private newTable(slot: number, level: number): number | PgtableErrno {
    const table = this.allocTable();
    if (table === undefined) return 'ENOMEM';
    this.journal?.push({ kind: 'alloc', addr: table });
    const [lo, hi] = this.encodeAddr(table);
    return this.setEntry(slot, level, (lo | TYPE_TABLE_OR_PAGE) >>> 0, hi) ? table : 'EIO';
  }

  /** Undoes the current map call: descriptors back to their old values, new tables freed. */
  private rollback(): void {
    const journal = this.journal ?? [];
    this.journal = null;
    this.deferred = [];
    for (let i = journal.length - 1; i >= 0; i--) {
      const j = journal[i]!;
      if (j.kind === 'entry') this.setEntry(j.addr, j.level, j.lo, j.hi);
      else this.releaseTable(j.addr, 2 ** this.granule);
    }
  }

  /**
   * The first IOVA in [start, end) mapped by a leaf under `table` (at `level`), undefined if none,
   * or 'EIO' if a table read aborted. Skips empty entries a whole span at a time.
   */
  private findLeaf(table: number, level: number, start: number, end: number): number | 'EIO' | undefined {
    const shift = this.shiftOf(level);
    for (let base = alignDown(start, shift); base < end; base += 2 ** shift) {
      const from = Math.max(base, start);
      if (!this.readEntry(this.slotAddr(table, level, from))) return 'EIO';
      const lo = this.scratch[0]!;
      const hi = this.scratch[1]!;
      if ((lo & DESC_VALID) === 0) continue;
      if (this.isLeaf(lo, level)) return from;
      if (!this.isTable(lo, level)) continue;
      const found = this.findLeaf(this.tableAddr(lo, hi), level + 1, from, Math.min(end, base + 2 ** shift));
      if (found !== undefined) return found;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- unmap

  /**
   * Unmaps [iova, iova+size), returning the bytes unmapped: less than `size` when it met a chunk
   * with nothing mapped, 0 for bad arguments or a range beyond the input size.
   */
  unmap(iova: number, size: number): number {
    if (this.destroyed) return 0;
    const min = this.pgsizes[0]!;
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(size) || iova < 0 || size <= 0) return 0;
    if (!isAligned(iova, min) || !isAligned(size, min)) return 0;
    if (iova + size > 2 ** this.geometry.iasBits) return 0;
    let done = 0;
    while (done < size) {
      const chunk = this.chunkLog2(iova + done, iova + done, size - done);
      const n = this.unmapChunk(iova + done, chunk);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Removes one chunk of 2^sizeLog2 bytes (a leaf, a whole table, or part of a split block). */
  private unmapChunk(iova: number, sizeLog2: number): number {
    let table = this.root;
    let level = this.startLevel;
    for (;;) {
      const slot = this.slotAddr(table, level, iova);
      if (!this.readEntry(slot)) return 0;
      const lo = this.scratch[0]!;
      const hi = this.scratch[1]!;
      if ((lo & DESC_VALID) === 0) return 0;
      if (this.shiftOf(level) === sizeLog2) return this.clearEntry(slot, level, lo, hi) ? 2 ** sizeLog2 : 0;
      if (this.isTable(lo, level)) table = this.tableAddr(lo, hi);
      else if (this.isLeaf(lo, level)) {
        const next = this.splitBlock(slot, level, lo, hi);
        if (next === undefined) return 0;
        table = next;
      } else return 0;
      level++;
    }
  }

  /** Invalidates a descriptor; a table descriptor takes its whole subtree with it. */
  private clearEntry(slot: number, level: number, lo: number, hi: number): boolean {
    if (!this.setEntry(slot, level, 0, 0)) return false;
    if (this.isTable(lo, level)) this.freeTree(this.tableAddr(lo, hi), level + 1);
    return true;
  }

  /**
   * Replaces the block at `slot` with a next-level table mapping the same range with the same
   * attributes (every entry filled), so the caller can then remove part of it. Returns the new
   * table, or undefined (nothing changed) when no table memory is left or a write aborted.
   */
  private splitBlock(slot: number, level: number, lo: number, hi: number): number | undefined {
    const table = this.allocTable();
    if (table === undefined) return undefined;
    const childLevel = level + 1;
    const childShift = this.shiftOf(childLevel);
    const entries = 2 ** strideOf(this.granule);
    const oa = this.leafAddr(lo, hi, this.shiftOf(level));
    const attrLo = lo & LO_ATTR_MASK;
    const attrHi = hi & HI_ATTR_MASK;
    for (let i = 0; i < entries; i++) {
      const [clo, chi] = this.encodeLeaf(oa + i * 2 ** childShift, childLevel, attrLo, attrHi);
      if (!this.mem.write64(table + i * 8, clo, chi)) return this.abandonTable(table);
    }
    const [tlo, thi] = this.encodeAddr(table);
    if (!this.setEntry(slot, level, (tlo | TYPE_TABLE_OR_PAGE) >>> 0, thi)) return this.abandonTable(table);
    this.countLeaves(childShift, entries);
    return table;
  }

  private abandonTable(table: number): undefined {
    this.releaseTable(table, 2 ** this.granule);
    return undefined;
  }

  // ---------------------------------------------------------------- lookup and teardown

  /** The physical address `iova` translates to, or undefined when nothing maps it. */
  iovaToPhys(iova: number): number | undefined {
    if (this.destroyed || !Number.isSafeInteger(iova) || iova < 0 || iova >= 2 ** this.geometry.iasBits) {
      return undefined;
    }
    let table = this.root;
    let level = this.startLevel;
    for (;;) {
      if (!this.readEntry(this.slotAddr(table, level, iova))) return undefined;
      const lo = this.scratch[0]!;
      const hi = this.scratch[1]!;
      if ((lo & DESC_VALID) === 0) return undefined;
      if (this.isTable(lo, level)) {
        table = this.tableAddr(lo, hi);
        level++;
        continue;
      }
      if (!this.isLeaf(lo, level)) return undefined;
      const shift = this.shiftOf(level);
      return this.leafAddr(lo, hi, shift) + (iova - alignDown(iova, shift));
    }
  }

  /** Frees every table including the root. Afterwards map fails with EINVAL and lookups find nothing. */
  destroy(): void {
    if (this.destroyed) return;
    this.freeTree(this.root, this.startLevel);
    this.destroyed = true;
  }

  /** Frees a table and its subtables, dropping the leaves they held from the counts. */
  private freeTree(table: number, level: number): void {
    const entries = 2 ** this.entryBits(level);
    for (let i = 0; i < entries; i++) {
      if (!this.readEntry(table + i * 8)) continue;
      const lo = this.scratch[0]!;
      const hi = this.scratch[1]!;
      if (this.isTable(lo, level)) this.freeTree(this.tableAddr(lo, hi), level + 1);
      else if (this.isLeaf(lo, level)) this.countLeaves(this.shiftOf(level), -1);
    }
    this.releaseTable(table, level === this.startLevel ? this.geometry.rootBytes : 2 ** this.granule);
  }

  // ---------------------------------------------------------------- tables and descriptors

  /** A zeroed granule-sized table below 2^oas, or undefined. */
  private allocTable(): number | undefined {
    const bytes = 2 ** this.granule;
    const addr = this.allocator.alloc(bytes);
    if (addr === undefined) return undefined;
    if (addr + bytes > 2 ** this.geometry.oasBits) {
      this.allocator.free(addr, bytes);
      return undefined;
    }
    this.allocatedTables++;
    this.liveTableBytes += bytes;
    return addr;
  }

  private releaseTable(addr: number, bytes: number): void {
    if (!this.allocator.free(addr, bytes)) return;
    this.freedTables++;
    this.liveTableBytes -= bytes;
  }

  /** Reads the descriptor at `addr` into scratch; false on an external abort. */
  private readEntry(addr: number): boolean {
    return this.mem.read64(addr, this.scratch);
  }

  /** Writes a descriptor, keeping the leaf counts and the undo journal up to date. */
  private setEntry(addr: number, level: number, lo: number, hi: number): boolean {
    if (!this.readEntry(addr)) return false;
    const oldLo = this.scratch[0]!;
    const oldHi = this.scratch[1]!;
    if (!this.mem.write64(addr, lo, hi)) return false;
    if (this.isLeaf(oldLo, level)) this.countLeaves(this.shiftOf(level), -1);
    if (this.isLeaf(lo, level)) this.countLeaves(this.shiftOf(level), 1);
    this.journal?.push({ kind: 'entry', addr, level, lo: oldLo, hi: oldHi });
    return true;
  }

  private countLeaves(shift: number, delta: number): void {
    this.leafCounts.set(shift, (this.leafCounts.get(shift) ?? 0) + delta);
  }

  private shiftOf(level: number): number {
    return levelShift(this.granule, level);
  }

  private entryBits(level: number): number {
    return level === this.startLevel ? this.geometry.startBits : strideOf(this.granule);
  }

  /** Address of the descriptor for `iova` in `table` at `level`. */
  private slotAddr(table: number, level: number, iova: number): number {
    const index = Math.floor(iova / 2 ** this.shiftOf(level)) % 2 ** this.entryBits(level);
    return table + index * 8;
  }

  private isTable(lo: number, level: number): boolean {
    return (lo & DESC_VALID) !== 0 && level < 3 && (lo & 2) !== 0;
  }

  /** A page at level 3 (0b11) or a block above it (0b01). */
  private isLeaf(lo: number, level: number): boolean {
    if ((lo & DESC_VALID) === 0) return false;
    return level === 3 ? (lo & 2) !== 0 : (lo & 2) === 0;
  }

  /** Descriptor words [lo, hi] carrying output address `addr` (OA[51:48] in [15:12] for 52-bit). */
  private encodeAddr(addr: number): [lo: number, hi: number] {
    const high = hi32(addr);
    let lo = lo32(addr);
    if (this.geometry.oa52) lo |= ((high >>> 16) & 0xf) << 12;
    return [lo >>> 0, high & 0xffff];
  }

  private encodeLeaf(oa: number, level: number, attrLo: number, attrHi: number): [lo: number, hi: number] {
    const [lo, hi] = this.encodeAddr(oa);
    const type = level === 3 ? TYPE_TABLE_OR_PAGE : TYPE_BLOCK;
    return [(lo | attrLo | type) >>> 0, (hi | attrHi) >>> 0];
  }

  /** The output address held in descriptor words, aligned down to 2^alignLog2. */
  private leafAddr(lo: number, hi: number, alignLog2: number): number {
    const high = (hi & 0xffff) + (this.geometry.oa52 ? ((lo >>> 12) & 0xf) * 0x1_0000 : 0);
    return alignDown(join64(high, (lo & this.granMaskLo) >>> 0), alignLog2);
  }

  private tableAddr(lo: number, hi: number): number {
    return this.leafAddr(lo, hi, this.granule);
  }

  private error(errno: PgtableErrno, detail: string): PgtableError {
    return { ok: false, errno, detail };
  }
}

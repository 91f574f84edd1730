/**
 * The host driver's stream table (IHI 0070 §3.3, §5.1, §6.3.24-25; Linux's arm_smmu_init_strtab
 * and arm_smmu_init_l2_strtab, seed-spec §8.1): linear when SIDSIZE fits one L2 table or 2-level
 * tables are not supported, else 2-level with SPLIT = 8. L2 tables are allocated when a device
 * with a StreamID in their span is probed, every STE initialised to the unattached policy (abort
 * or bypass) before the L1 descriptor points at it.
 *
 * Decision (Linux's cap): the L1 table is at most 1 MiB (2^17 descriptors), so a 2-level table
 * covers min(SIDSIZE, 17 + 8) StreamID bits; StreamIDs beyond are refused at probe (-ERANGE).
 */

import type { PhysMem } from '../../hw/memory.ts';
import type { PageAllocator } from '../../hw/page-alloc.ts';
import { STRTAB_SPLIT } from './features.ts';
import { buildL1std } from './ste.ts';

export const STE_BYTES = 64;
/** Linux's STRTAB_L1_SZ_SHIFT: the L1 table holds at most 2^20 bytes = 2^17 descriptors. */
export const L1_MAX_LOG2 = 17;
export const STRTAB_FMT_LINEAR = 0;
export const STRTAB_FMT_2LVL = 1;

export class StreamTable {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly twoLevel: boolean;
  /** StreamID bits the table covers: STRTAB_BASE_CFG.LOG2SIZE. */
  readonly log2Size: number;
  /** Address of the linear table or of the L1 table. */
  readonly base: number;
  private readonly baseBytes: number;
  /** L1 index → L2 table address. */
  private readonly l2 = new Map<number, number>();
  private readonly unattached: Uint32Array;

  private constructor(
    mem: PhysMem,
    alloc: PageAllocator,
    twoLevel: boolean,
    log2Size: number,
    base: number,
    baseBytes: number,
    unattached: Uint32Array,
  ) {
    this.mem = mem;
    this.alloc = alloc;
    this.twoLevel = twoLevel;
    this.log2Size = log2Size;
    this.base = base;
    this.baseBytes = baseBytes;
    this.unattached = unattached;
  }

  /**
   * Allocates the table for `sidBits` of StreamID; a linear table is filled with `unattached`
   * STEs at once. Undefined when memory runs out.
   */
  static create(
    mem: PhysMem,
    alloc: PageAllocator,
    sidBits: number,
    twoLevel: boolean,
    unattached: Uint32Array,
  ): StreamTable | undefined {
    const log2Size = twoLevel ? Math.min(sidBits, L1_MAX_LOG2 + STRTAB_SPLIT) : sidBits;
    const bytes = twoLevel ? 8 * 2 ** (log2Size - STRTAB_SPLIT) : STE_BYTES * 2 ** log2Size;
    // Aligned to its size (at least 64 bytes), as STRTAB_BASE requires.
    const base = alloc.alloc(Math.max(bytes, 64));
    if (base === undefined) return undefined;
    const t = new StreamTable(mem, alloc, twoLevel, log2Size, base, Math.max(bytes, 64), unattached);
    if (!twoLevel && !t.fill(base, 2 ** log2Size)) {
      alloc.free(base, t.baseBytes);
      return undefined;
    }
    return t;
  }

  /** STRTAB_BASE (RA hint set, as Linux does) as [lo, hi]. */
  baseRegister(): [lo: number, hi: number] {
    return [this.base % 2 ** 32, Math.floor(this.base / 2 ** 32) | (1 << 30)];
  }

  /** STRTAB_BASE_CFG: FMT [17:16], SPLIT [10:6], LOG2SIZE [5:0]. */
  cfgRegister(): number {
    return this.twoLevel
      ? (STRTAB_FMT_2LVL << 16) | (STRTAB_SPLIT << 6) | this.log2Size
      : (STRTAB_FMT_LINEAR << 16) | this.log2Size;
  }

  /** Whether the table can hold `sid`. */
  covers(sid: number): boolean {
    return Number.isInteger(sid) && sid >= 0 && sid < 2 ** this.log2Size;
  }

  /** Whether `sid` has an STE in memory (linear, or its L2 table exists). */
  present(sid: number): boolean {
    return this.covers(sid) && (!this.twoLevel || this.l2.has(Math.floor(sid / 2 ** STRTAB_SPLIT)));
  }

  /**
   * Makes sure the L2 table of `sid` exists: allocates it, fills it with unattached STEs, then
   * writes the L1 descriptor. Returns 'new' when it wrote a descriptor (the caller invalidates
   * the L1 span), 'present', or 'nomem'.
   */
  ensure(sid: number): 'new' | 'present' | 'nomem' {
    if (!this.twoLevel || this.l2.has(l1Index(sid))) return 'present';
    const bytes = STE_BYTES * 2 ** STRTAB_SPLIT;
    const l2 = this.alloc.alloc(bytes);
    if (l2 === undefined) return 'nomem';
    if (!this.fill(l2, 2 ** STRTAB_SPLIT)) {
      this.alloc.free(l2, bytes);
      return 'nomem';
    }
    const d = buildL1std(STRTAB_SPLIT, l2);
    this.mem.write64(this.base + 8 * l1Index(sid), d[0]!, d[1]!);
    this.l2.set(l1Index(sid), l2);
    return 'new';
  }

  /** The address of the STE of `sid` (which must be present). */
  steAddr(sid: number): number {
    if (!this.twoLevel) return this.base + STE_BYTES * sid;
    const l2 = this.l2.get(l1Index(sid));
    if (l2 === undefined) throw new Error(`strtab: no L2 table for StreamID ${sid}`);
    return l2 + STE_BYTES * (sid % 2 ** STRTAB_SPLIT);
  }

  /** The 16 words of the STE of `sid` as they are in memory. */
  read(sid: number): Uint32Array {
    const at = this.steAddr(sid);
    return Uint32Array.from({ length: 16 }, (_, i) => this.mem.read32(at + 4 * i) >>> 0);
  }

  /** Writes dword `dw` (0..7) of the STE of `sid`. */
  writeDword(sid: number, dw: number, words: ArrayLike<number>): void {
    this.mem.write64(this.steAddr(sid) + 8 * dw, words[2 * dw] ?? 0, words[2 * dw + 1] ?? 0);
  }

  /** Frees the table and every L2 table (the SMMU must no longer use them). */
  destroy(): void {
    for (const l2 of this.l2.values()) this.alloc.free(l2, STE_BYTES * 2 ** STRTAB_SPLIT);
    this.l2.clear();
    this.alloc.free(this.base, this.baseBytes);
  }

  /** Number of L2 tables allocated. */
  get l2Count(): number {
    return this.l2.size;
  }

  private fill(at: number, count: number): boolean {
    for (let i = 0; i < count; i++) {
      for (let dw = 0; dw < 8; dw++) {
        const lo = this.unattached[2 * dw] ?? 0;
        const hi = this.unattached[2 * dw + 1] ?? 0;
        if ((lo | hi) !== 0 && !this.mem.write64(at + STE_BYTES * i + 8 * dw, lo, hi)) return false;
      }
    }
    return true;
  }
}

function l1Index(sid: number): number {
  return Math.floor(sid / 2 ** STRTAB_SPLIT);
}

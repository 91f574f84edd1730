/**
 * A bare-metal rig around one SMMUv3: host memory, a page allocator, the SMMU, and the minimum a
 * driver does to bring it up through MMIO — stream table (linear or 2-level), command and event
 * queues, interrupts, enables — plus helpers to write STEs and CD tables, submit commands and drain
 * events. It is what hardware-level tests, benchmarks and the `vsva` demo use, in the way QEMU's
 * qtests drive a device with no guest. It programs the SMMU only through its registers and memory.
 */

import { CD_BYTES } from '../../arch/smmuv3/cd.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_RECINVSID,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR2,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_PROD,
  SMMU_GERROR,
  SMMU_GERRORN,
  SMMU_IRQ_CTRL,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import { STE_BYTES } from '../../arch/smmuv3/ste.ts';
import type { Granule } from '../../arch/vmsa.ts';
import { type MemoryPort, PhysMem } from '../memory.ts';
import { OffsetMemory } from '../memory-view.ts';
import { PageAllocator } from '../page-alloc.ts';
import { PageTable, type PgtableConfig } from '../vmsa/pgtable.ts';
import { decodeEvent, type SmmuEvent } from './event-record.ts';
import type { SmmuFeatures } from './features.ts';
import { qIndex, qMask, qNext } from './queue.ts';
import { Smmu, type SmmuHooks, type SmmuIrq } from './smmu.ts';
import { type CdParams, encodeCd, encodeL1cd, encodeL1std, encodeSte, type SteParams } from './structures.ts';

export interface RigOptions {
  readonly features?: Partial<SmmuFeatures>;
  /** Host RAM the rig allocates structures from: [base, base + size). */
  readonly ramBase?: number;
  readonly ramSize?: number;
  /** Stream table: log2 of StreamIDs, and 2-level with a SPLIT (6, 8 or 10) when given. */
  readonly sidLog2?: number;
  readonly split?: number;
  readonly cmdqLog2?: number;
  readonly eventqLog2?: number;
  /** Leave the SMMU disabled after setup (SMMUEN = 0). */
  readonly noEnable?: boolean;
}

/** Writes words little-endian at addr through a MemoryPort. */
export function writeWords(mem: MemoryPort, addr: number, words: Uint32Array): boolean {
  return mem.write(addr, new Uint8Array(words.buffer, words.byteOffset, words.length * 4));
}

/** A CD table in some address space (PA, or IPA for a nested guest): where it is and how to fill it. */
export class CdTable {
  readonly mem: MemoryPort;
  readonly alloc: PageAllocator;
  /** STE.S1ContextPtr, S1Fmt and S1CDMax for this table. */
  readonly ptr: number;
  readonly fmt: number;
  readonly cdMax: number;
  private readonly leaves = new Map<number, number>();

  constructor(mem: MemoryPort, alloc: PageAllocator, fmt: number, cdMax: number) {
    this.mem = mem;
    this.alloc = alloc;
    this.fmt = fmt;
    this.cdMax = cdMax;
    const split = this.split();
    const bytes = fmt === 0 || cdMax === 0 ? CD_BYTES * 2 ** cdMax : 8 * 2 ** Math.max(0, cdMax - split);
    const ptr = alloc.alloc(Math.max(bytes, 64));
    if (ptr === undefined) throw new Error('rig: out of memory for a CD table');
    this.ptr = ptr;
  }

  private split(): number {
    return this.fmt === 1 ? 6 : 10;
  }

  /** Address of CD `index`, allocating its leaf table (and L1CD) on first use for 2-level tables. */
  cdAddr(index: number): number {
    if (this.fmt === 0 || this.cdMax === 0) return this.ptr + CD_BYTES * index;
    const split = this.split();
    const l1 = this.cdMax <= split ? 0 : Math.floor(index / 2 ** split);
    let leaf = this.leaves.get(l1);
    if (leaf === undefined) {
      leaf = this.alloc.alloc(CD_BYTES * 2 ** split);
      if (leaf === undefined) throw new Error('rig: out of memory for a CD leaf table');
      this.leaves.set(l1, leaf);
      writeWords(this.mem, this.ptr + 8 * l1, encodeL1cd(leaf));
    }
    return leaf + CD_BYTES * (index % 2 ** split);
  }

  /** Writes CD `index`. */
  write(index: number, p: CdParams | Uint32Array): number {
    const addr = this.cdAddr(index);
    writeWords(this.mem, addr, p instanceof Uint32Array ? p : encodeCd(p));
    return addr;
  }

  /** The L1CD address of a 2-level table entry (to corrupt it in tests). */
  l1Addr(l1Index: number): number {
    return this.ptr + 8 * l1Index;
  }
}

/** A guest-physical window: IPA [ipaBase, ipaBase + size) backed by host RAM, with its own allocator. */
export interface GuestRam {
  readonly ipaBase: number;
  readonly paBase: number;
  readonly size: number;
  readonly view: OffsetMemory;
  readonly alloc: PageAllocator;
}

export class SmmuRig {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly smmu: Smmu;
  readonly irqs: SmmuIrq[] = [];
  readonly msis: { addr: number; data: number }[] = [];
  readonly strtabBase: number;
  readonly sidLog2: number;
  readonly split: number | undefined;
  readonly cmdqBase: number;
  readonly cmdqLog2: number;
  readonly eventqBase: number;
  readonly eventqLog2: number;
  private readonly l2Tables = new Map<number, number>();

  constructor(opts: RigOptions = {}, hooks: SmmuHooks = {}) {
    const ramBase = opts.ramBase ?? 0x4000_0000;
    const ramSize = opts.ramSize ?? 0x1000_0000;
    // Host RAM holds every table the SMMU walks: a large page-lookup cache keeps walks off the Map.
    this.mem = new PhysMem({ name: 'host', lookupCacheEntries: 1 << 16 });
    this.alloc = new PageAllocator(this.mem, ramBase, ramSize);
    this.smmu = new Smmu(this.mem, {
      ...(opts.features ? { features: opts.features } : {}),
      hooks: {
        ...hooks,
        irq: (line) => {
          this.irqs.push(line);
          hooks.irq?.(line);
        },
        msi: (addr, data) => {
          this.msis.push({ addr, data });
          hooks.msi?.(addr, data);
        },
      },
    });
    this.sidLog2 = opts.sidLog2 ?? 8;
    this.split = opts.split;
    if (this.split !== undefined && this.split !== 6 && this.split !== 8 && this.split !== 10) {
      throw new Error(`rig: SPLIT must be 6, 8 or 10 (got ${this.split}); other values are reserved`);
    }
    this.cmdqLog2 = opts.cmdqLog2 ?? 6;
    this.eventqLog2 = opts.eventqLog2 ?? 6;
    const strtabBytes =
      this.split === undefined
        ? STE_BYTES * 2 ** this.sidLog2
        : 8 * 2 ** Math.max(0, this.sidLog2 - this.split);
    this.strtabBase = this.mustAlloc(Math.max(strtabBytes, 64));
    this.cmdqBase = this.mustAlloc(16 * 2 ** this.cmdqLog2);
    this.eventqBase = this.mustAlloc(32 * 2 ** this.eventqLog2);
    this.program(opts.noEnable === true);
  }

  private mustAlloc(bytes: number): number {
    const a = this.alloc.alloc(bytes);
    if (a === undefined) throw new Error(`rig: cannot allocate ${bytes} bytes`);
    return a;
  }

  /** Brings the SMMU up the way Linux's driver does: tables, queues, IRQs, then the enables. */
  private program(noEnable: boolean): void {
    const s = this.smmu;
    s.write64n(SMMU_STRTAB_BASE, this.strtabBase);
    const cfg = this.split === undefined ? this.sidLog2 : this.sidLog2 | (this.split << 6) | (1 << 16);
    s.write32(SMMU_STRTAB_BASE_CFG, cfg);
    s.write64n(SMMU_CMDQ_BASE, this.cmdqBase + this.cmdqLog2);
    s.write32(SMMU_CMDQ_PROD, 0);
    s.write32(SMMU_CMDQ_CONS, 0);
    s.write64n(SMMU_EVENTQ_BASE, this.eventqBase + this.eventqLog2);
    s.write32(SMMU_EVENTQ_PROD, 0);
    s.write32(SMMU_EVENTQ_CONS, 0);
    s.write32(SMMU_IRQ_CTRL, IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN);
    s.write32(SMMU_CR2, CR2_RECINVSID);
    s.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN);
    if (!noEnable) s.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
  }

  /** Address of the STE of `sid`; for 2-level tables, allocates a full L2 table on first use. */
  steAddr(sid: number): number {
    if (this.split === undefined) return this.strtabBase + STE_BYTES * sid;
    const l1 = Math.floor(sid / 2 ** this.split);
    let l2 = this.l2Tables.get(l1);
    if (l2 === undefined) {
      l2 = this.mustAlloc(STE_BYTES * 2 ** this.split);
      this.l2Tables.set(l1, l2);
      this.writeL1std(l1, this.split + 1, l2);
    }
    return l2 + STE_BYTES * (sid % 2 ** this.split);
  }

  /** Writes an L1 stream table descriptor (2-level tables). */
  writeL1std(l1Index: number, span: number, l2Ptr: number): void {
    writeWords(this.mem, this.strtabBase + 8 * l1Index, encodeL1std(span, l2Ptr));
  }

  /** Writes the STE of `sid` (no invalidation: call `invalidateSte` or submit CFGI yourself). */
  writeSte(sid: number, p: SteParams | Uint32Array): number {
    const addr = this.steAddr(sid);
    writeWords(this.mem, addr, p instanceof Uint32Array ? p : encodeSte(p));
    return addr;
  }

  /** A CD table in host memory (stage-1-only streams). */
  cdTable(fmt = 0, cdMax = 0): CdTable {
    return new CdTable(this.mem, this.alloc, fmt, cdMax);
  }

  /** A page table in host memory (stage 2, or stage 1 of a stage-1-only stream). */
  pageTable(cfg: PgtableConfig, alloc: PageAllocator = this.alloc): PageTable {
    const r = PageTable.create(alloc, cfg);
    if (!r.ok) throw new Error(`rig: page table: ${r.detail}`);
    return r.table;
  }

  /** A guest-physical window [ipaBase, +size) carved out of host RAM, with an allocator in IPA space. */
  guestRam(ipaBase: number, size: number): GuestRam {
    const paBase = this.alloc.alloc(size);
    if (paBase === undefined) throw new Error('rig: no room for guest RAM');
    const view = new OffsetMemory(this.mem, ipaBase, paBase, size);
    return { ipaBase, paBase, size, view, alloc: new PageAllocator(view, ipaBase, size) };
  }

  /**
   * A stage-2 table mapping the whole guest window IPA→PA with read/write/exec, the way a VMM
   * maps guest RAM for DMA.
   */
  stage2For(g: GuestRam, granule: Granule = 12, iasBits = 40, oasBits = 48, pageGranular = false): PageTable {
    const t = this.pageTable({ stage: 2, granule, iasBits, oasBits });
    const prot = { read: true, write: true, exec: true };
    const step = pageGranular ? 2 ** granule : g.size;
    for (let off = 0; off < g.size; off += step) {
      const r = t.map(g.ipaBase + off, g.paBase + off, step, prot);
      if (!r.ok) throw new Error(`rig: stage-2 map: ${r.detail}`);
    }
    return t;
  }

  /** Puts commands on the command queue and rings PROD; returns CONS.ERR (0 when all were consumed). */
  submit(...cmds: Uint32Array[]): number {
    const s = this.smmu;
    let prod = s.read32(SMMU_CMDQ_PROD);
    for (const c of cmds) {
      writeWords(this.mem, this.cmdqBase + 16 * qIndex(prod, this.cmdqLog2), c);
      prod = qNext(prod, this.cmdqLog2);
      s.write32(SMMU_CMDQ_PROD, prod);
    }
    return (s.read32(SMMU_CMDQ_CONS) >>> 24) & 0x7f;
  }

  /** Command-queue CONS and PROD as read through MMIO. */
  cmdqState(): { prod: number; cons: number; err: number } {
    const cons = this.smmu.read32(SMMU_CMDQ_CONS);
    return {
      prod: this.smmu.read32(SMMU_CMDQ_PROD),
      cons: cons & qMask(this.cmdqLog2),
      err: (cons >>> 24) & 0x7f,
    };
  }

  /** Acknowledges every active global error (GERRORN := GERROR). */
  ackGerror(): void {
    this.smmu.write32(SMMU_GERRORN, this.smmu.read32(SMMU_GERROR));
  }

  /** Reads and consumes every event record, as a driver's event-queue handler does. */
  drainEvents(): SmmuEvent[] {
    const s = this.smmu;
    const out: SmmuEvent[] = [];
    const prod = s.read32(SMMU_EVENTQ_PROD);
    let cons = s.read32(SMMU_EVENTQ_CONS);
    const m = qMask(this.eventqLog2);
    for (let n = 0; n < 2 ** this.eventqLog2 && (cons & m) !== (prod & m); n++) {
      const bytes = this.mem.read(this.eventqBase + 32 * qIndex(cons, this.eventqLog2), 32);
      if (bytes === undefined) break;
      out.push(decodeEvent(new Uint32Array(bytes.buffer)));
      cons = qNext(cons, this.eventqLog2);
    }
    // Acknowledge any overflow together with the new read index.
    s.write32(SMMU_EVENTQ_CONS, ((cons & m) | (prod & 0x8000_0000)) >>> 0);
    return out;
  }
}

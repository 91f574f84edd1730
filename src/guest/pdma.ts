/**
 * The guest driver of the PASID DMA engine (`src/hw/pci/pasid-dma-regs.ts` describes its BAR0,
 * descriptors and completion records): probe through BAR0 MMIO, a descriptor ring and a kernel
 * completion area in the device's DMA domain (CD 0: no PASID), MSI-X vectors aimed at the GICv2m
 * frame (MSI_SETSPI_NS, mapped in the DMA domain) with INTIDs from the DT's v2m SPI range, and
 * `submit`: descriptors naming the submitting process's PASID (completion records in that
 * process's address space, like Intel DSA's user-mode submission) or none (kernel completion
 * area), the RING_TAIL doorbell, and a WFI wait for the completion (or error) interrupt.
 *
 * Decisions: a 64-entry ring; at most 32 descriptors per doorbell (larger batches go in several);
 * only the last descriptor of a doorbell asks for the completion interrupt (vector 0); vector 1 is
 * the error interrupt (ERR_IRQ); a process's completion records live in one page the driver maps
 * into it on first use; one submission per device at a time (a second concurrent one is -EBUSY).
 * Device interrupts are taken on CPU 0, so submissions wait there.
 */

import { V2M_MSI_SETSPI_NS } from '../arch/virt.ts';
import {
  COMPL_BYTES,
  type CompletionRecord,
  DESC_BYTES,
  type DescriptorInit,
  decodeCompletion,
  encodeDescriptor,
  OP_COMPARE,
  OP_COPY,
  OP_FILL,
  OP_NOP,
  PDMA_CAP,
  PDMA_CTRL,
  PDMA_CTRL_ENABLE,
  PDMA_DEVICE_ID,
  PDMA_ERR_ADDR_HI,
  PDMA_ERR_ADDR_LO,
  PDMA_ERR_INFO,
  PDMA_ERR_IRQ,
  PDMA_ERR_IRQ_ENABLE,
  PDMA_ERR_PASID,
  PDMA_ERROR,
  PDMA_ID,
  PDMA_RING_BASE_HI,
  PDMA_RING_BASE_LO,
  PDMA_RING_HEAD,
  PDMA_RING_SIZE,
  PDMA_RING_TAIL,
  PDMA_STATUS,
  PDMA_STATUS_ENABLED,
  PDMA_STATUS_HALTED,
  PDMA_VENDOR_ID,
} from '../hw/pci/pasid-dma-regs.ts';
import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
} from '../hw/pci/regs.ts';
import type { DmaDomain } from './dma.ts';
import { guestFail, hex, type Kernel } from './kernel.ts';
import type { Ecam, PciFunction } from './pci.ts';
import type { GuestProcess } from './process.ts';
import { type Guest, MmioRegion, wfi } from './trap.ts';

export const PDMA_RING_ENTRIES = 64;
const BATCH = 32;
const WAKE_LIMIT = 64;
const OPS = { nop: OP_NOP, copy: OP_COPY, fill: OP_FILL, compare: OP_COMPARE } as const;

/** One operation to submit. With `proc`, addresses are its VAs and the descriptor carries its PASID. */
export interface PdmaRequest {
  readonly op: keyof typeof OPS;
  readonly proc?: GuestProcess;
  readonly src?: number;
  readonly dst?: number;
  readonly len?: number;
  readonly pattern?: readonly [lo: number, hi: number];
  readonly privileged?: boolean;
}

/** An error interrupt as the driver read it. */
export interface PdmaError {
  readonly error: number;
  readonly info: number;
  readonly addr: number;
  readonly pasidWord: number;
}

export function isPdma(fn: PciFunction): boolean {
  return fn.vendorId === PDMA_VENDOR_ID && fn.deviceId === PDMA_DEVICE_ID;
}

export class PdmaDriver {
  readonly k: Kernel;
  readonly fn: PciFunction;
  readonly ecam: Ecam;
  readonly domain: DmaDomain;
  readonly regs: MmioRegion;
  ringMax = 0;
  ringGpa = 0;
  ringIova = 0;
  complGpa = 0;
  complIova = 0;
  doorbellIova = 0;
  /** INTIDs of vector 0 (completion) and vector 1 (error). */
  readonly intids: number[] = [];
  completionIrqs = 0;
  errorIrqs = 0;
  readonly errors: PdmaError[] = [];
  private tail = 0;
  /** RING_HEAD as last read by the completion interrupt. */
  head = 0;
  private busy = false;
  private readonly complPages = new Map<GuestProcess, number>();

  constructor(k: Kernel, fn: PciFunction, ecam: Ecam, domain: DmaDomain) {
    this.k = k;
    this.fn = fn;
    this.ecam = ecam;
    this.domain = domain;
    const bar0 = fn.bars.find((b) => b.index === 0);
    this.regs = new MmioRegion(bar0?.addr ?? -1);
  }

  private mapPage(what: string): { gpa: number; iova: number } {
    const gpa = this.k.alloc?.alloc(0x1000);
    if (gpa === undefined) guestFail(`pdma: no memory for ${what}`);
    const iova = this.domain.map(gpa, 0x1000);
    if (iova < 0) guestFail(`pdma: cannot map ${what} (${iova})`);
    return { gpa, iova };
  }

  /** Probe: identify, ring and completion area, MSI-X, enable. */
  *probe(): Guest<void> {
    if (this.regs.base < 0) guestFail(`pdma: ${this.fn.name} has no BAR0`);
    const id = yield* this.regs.read32(PDMA_ID);
    if (id >>> 16 !== PDMA_DEVICE_ID) guestFail(`pdma: unexpected ID register ${hex(id)}`);
    const cap = yield* this.regs.read32(PDMA_CAP);
    this.ringMax = cap & 0xffff;
    if (this.ringMax < PDMA_RING_ENTRIES) guestFail(`pdma: ring too small (${this.ringMax})`);
    const ring = this.mapPage('the ring');
    this.ringGpa = ring.gpa;
    this.ringIova = ring.iova;
    const compl = this.mapPage('the completion area');
    this.complGpa = compl.gpa;
    this.complIova = compl.iova;
    yield* this.setupMsix();
    yield* this.regs.write32(PDMA_RING_BASE_LO, this.ringIova % 0x1_0000_0000);
    yield* this.regs.write32(PDMA_RING_BASE_HI, Math.floor(this.ringIova / 0x1_0000_0000));
    yield* this.regs.write32(PDMA_RING_SIZE, PDMA_RING_ENTRIES);
    yield* this.regs.write32(PDMA_CTRL, PDMA_CTRL_ENABLE);
    const st = yield* this.regs.read32(PDMA_STATUS);
    if ((st & PDMA_STATUS_ENABLED) === 0) guestFail(`pdma: ring did not enable (STATUS ${hex(st)})`);
    this.tail = 0;
    this.k.printk(
      `pdma: ${this.fn.name} ready, ring at iova ${hex(this.ringIova)}, irqs ${this.intids.join('/')}`,
    );
  }

  private *setupMsix(): Guest<void> {
    const msix = this.fn.msix;
    const msi = this.k.msi;
    if (msix === undefined || msi === undefined) guestFail('pdma: no MSI-X or no MSI controller');
    const tableBar = this.fn.bars.find((b) => b.index === msix.tableBar);
    if (tableBar === undefined || tableBar.addr < 0) guestFail('pdma: MSI-X table BAR unassigned');
    const db = this.domain.translated
      ? this.domain.map(msi.doorbellGpa, 0x1000, { read: true, write: true, user: true, cache: 'device' })
      : msi.doorbellGpa;
    if (db < 0) guestFail(`pdma: cannot map the MSI doorbell (${db})`);
    this.doorbellIova = db;
    const addr = db + V2M_MSI_SETSPI_NS;
    const flags = yield* this.ecam.read(this.fn, msix.cap + PCI_MSIX_FLAGS, 2);
    yield* this.ecam.write(
      this.fn,
      msix.cap + PCI_MSIX_FLAGS,
      2,
      flags | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL,
    );
    const nvec = Math.min(2, msix.vectors);
    const table = new MmioRegion(tableBar.addr + msix.tableOffset);
    for (let v = 0; v < nvec; v++) {
      const intid = msi.spis.alloc();
      if (intid === undefined) guestFail('pdma: no free MSI SPI');
      this.intids.push(intid);
      const e = v * PCI_MSIX_ENTRY_SIZE;
      yield* table.write32(e + PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT);
      yield* table.write32(e + PCI_MSIX_ENTRY_LOWER_ADDR, addr % 0x1_0000_0000);
      yield* table.write32(e + PCI_MSIX_ENTRY_UPPER_ADDR, Math.floor(addr / 0x1_0000_0000));
      yield* table.write32(e + PCI_MSIX_ENTRY_DATA, intid);
      yield* table.write32(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    }
    const [cIrq, eIrq] = [this.intids[0]!, this.intids[nvec - 1]!];
    if (cIrq === eIrq) {
      this.k.registerIrq(cIrq, `pdma-${this.fn.name}`, () => this.sharedIrq());
    } else {
      this.k.registerIrq(cIrq, `pdma-${this.fn.name}-compl`, () => this.completionIrq());
      this.k.registerIrq(eIrq, `pdma-${this.fn.name}-err`, () => this.errorIrq());
    }
    yield* this.ecam.write(
      this.fn,
      msix.cap + PCI_MSIX_FLAGS,
      2,
      (flags | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL,
    );
    yield* this.regs.write32(PDMA_ERR_IRQ, (PDMA_ERR_IRQ_ENABLE | (nvec - 1)) >>> 0);
  }

  /** Completion interrupt: note how far the device got (RING_HEAD) and wake the submitter. */
  *completionIrq(): Guest<void> {
    this.head = yield* this.regs.read32(PDMA_RING_HEAD);
    this.completionIrqs++;
  }

  *errorIrq(): Guest<void> {
    const error = yield* this.regs.read32(PDMA_ERROR);
    if (error === 0) return;
    const info = yield* this.regs.read32(PDMA_ERR_INFO);
    const lo = yield* this.regs.read32(PDMA_ERR_ADDR_LO);
    const hi = yield* this.regs.read32(PDMA_ERR_ADDR_HI);
    const pasidWord = yield* this.regs.read32(PDMA_ERR_PASID);
    yield* this.regs.write32(PDMA_ERROR, error);
    const e = { error, info, addr: hi * 0x1_0000_0000 + lo, pasidWord };
    this.errors.push(e);
    this.errorIrqs++;
    const st = yield* this.regs.read32(PDMA_STATUS);
    this.k.printk(
      `pdma: error ${hex(error)} at ${hex(e.addr)}${(st & PDMA_STATUS_HALTED) !== 0 ? ' (ring halted)' : ''}`,
    );
  }

  private *sharedIrq(): Guest<void> {
    yield* this.errorIrq();
    yield* this.completionIrq();
  }

  /** The completion page of `proc` (mapped into it on first use): its VA, or -errno. */
  completionPage(proc: GuestProcess): number {
    let va = this.complPages.get(proc);
    if (va === undefined) {
      va = proc.mmap(0x1000);
      if (va < 0) return va;
      this.complPages.set(proc, va);
    }
    return va;
  }

  private descriptor(
    r: PdmaRequest,
    slot: number,
    last: boolean,
  ): { d: DescriptorInit; read: () => Uint8Array | undefined } {
    const base = {
      opcode: OPS[r.op],
      src: r.src ?? 0,
      dst: r.dst ?? 0,
      len: r.len ?? 0,
      ...(r.pattern ? { pattern: r.pattern } : {}),
      ...(r.privileged ? { privileged: true } : {}),
      ...(last ? { interruptVector: 0 } : {}),
    };
    const off = COMPL_BYTES * slot;
    if (r.proc === undefined) {
      this.k.mem.fill(this.complGpa + off, COMPL_BYTES, 0);
      return {
        d: { ...base, completionAddr: this.complIova + off },
        read: () => this.k.mem.read(this.complGpa + off, COMPL_BYTES),
      };
    }
    const proc = r.proc;
    if (proc.pasid === undefined) guestFail(`pdma: ${proc.name} is not bound to a PASID`);
    const page = this.completionPage(proc);
    if (page < 0) guestFail(`pdma: no completion page for ${proc.name} (${page})`);
    proc.write(page + off, new Uint8Array(COMPL_BYTES));
    return {
      d: { ...base, pasid: proc.pasid, completionAddr: page + off },
      read: () => proc.read(page + off, COMPL_BYTES),
    };
  }

  /** Submits `reqs` and waits for their completion; the decoded completion records, in order. */
  *submit(reqs: readonly PdmaRequest[]): Guest<CompletionRecord[]> {
    if (this.busy) guestFail('pdma: device busy (-EBUSY)');
    this.busy = true;
    try {
      const out: CompletionRecord[] = [];
      for (let i = 0; i < reqs.length; i += BATCH)
        out.push(...(yield* this.submitBatch(reqs.slice(i, i + BATCH))));
      return out;
    } finally {
      this.busy = false;
    }
  }

  private *submitBatch(reqs: readonly PdmaRequest[]): Guest<CompletionRecord[]> {
    const head = yield* this.regs.read32(PDMA_RING_HEAD);
    const used = (this.tail - head + PDMA_RING_ENTRIES) % PDMA_RING_ENTRIES;
    if (used + reqs.length > PDMA_RING_ENTRIES - 1)
      guestFail(`pdma: ring full (head ${head}, tail ${this.tail})`);
    const readers: (() => Uint8Array | undefined)[] = [];
    reqs.forEach((r, i) => {
      const { d, read } = this.descriptor(r, i, i === reqs.length - 1);
      readers.push(read);
      this.k.mem.write(this.ringGpa + DESC_BYTES * this.tail, encodeDescriptor(d));
      this.tail = (this.tail + 1) % PDMA_RING_ENTRIES;
    });
    const [c0, e0] = [this.completionIrqs, this.errorIrqs];
    yield* this.regs.write32(PDMA_RING_TAIL, this.tail);
    for (let n = 0; this.completionIrqs === c0 && this.errorIrqs === e0; n++) {
      if (n >= WAKE_LIMIT) guestFail('pdma: no completion interrupt (-ETIMEDOUT)');
      yield* wfi();
    }
    return readers.map((read) => decodeCompletion(read() ?? new Uint8Array(COMPL_BYTES)));
  }
}

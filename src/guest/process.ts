/**
 * A guest user process as far as SVA needs one: its own stage-1 address space (a VMSAv8-64 page
 * table with 4 KiB granule and 48-bit VAs, non-global entries, tagged with the process's ASID —
 * the table its CPU threads use and that a PASID-bound device walks), anonymous mappings of fresh
 * guest pages (4 KiB pages, or 2 MiB blocks for huge mappings), CPU reads and writes through
 * those tables, and the faults the SMMU reported against its PASID.
 *
 * Decisions: mappings are placed upward from `MMAP_BASE` (2 MiB-aligned for huge ones) and never
 * reuse VA; pages are allocated one by one (not contiguous), so DMA crossing a page boundary
 * really switches frames; a failed mmap undoes everything it did. CPU TLBs are not modelled.
 */

import { PAGE_SIZE } from '../hw/memory.ts';
import { PageTable, type Prot } from '../hw/vmsa/pgtable.ts';
import { EFAULT, EINVAL, ENOMEM } from '../uapi/errno.ts';
import type { Kernel } from './kernel.ts';

export const MMAP_BASE = 0x40_0000_0000;
export const HUGE_SIZE = 0x20_0000;
export const USER_RW: Prot = { read: true, write: true, user: true };

/** A fault the SMMU reported for a DMA in this process's PASID. */
export interface ProcFault {
  readonly pasid: number;
  readonly addr: number;
  /** Event name, e.g. F_TRANSLATION. */
  readonly event: string;
  readonly write: boolean;
  readonly device: string;
}

/** One mapped unit: a 4 KiB page or a 2 MiB block. */
export interface MapUnit {
  readonly va: number;
  gpa: number;
  readonly size: number;
}

export interface MmapOptions {
  readonly huge?: boolean;
}

export class GuestProcess {
  readonly k: Kernel;
  readonly pid: number;
  readonly name: string;
  /** ASID of the address space (shared by its CPU threads and every device it is bound to). */
  readonly asid: number;
  readonly pt: PageTable | undefined;
  /** PASID while bound to at least one device. */
  pasid: number | undefined;
  readonly faults: ProcFault[] = [];
  /** Mapped units by VA. */
  readonly units = new Map<number, MapUnit>();
  private nextVa = MMAP_BASE;

  constructor(k: Kernel, pid: number, name: string, asid: number) {
    this.k = k;
    this.pid = pid;
    this.name = name;
    this.asid = asid;
    const r =
      k.alloc === undefined
        ? undefined
        : PageTable.create(k.alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
    this.pt = r?.ok ? r.table : undefined;
  }

  /** Maps `len` bytes of fresh zeroed memory; the VA, or -errno. */
  mmap(len: number, opts: MmapOptions = {}): number {
    const alloc = this.k.alloc;
    if (this.pt === undefined || alloc === undefined) return -ENOMEM;
    if (!Number.isSafeInteger(len) || len <= 0) return -EINVAL;
    const unit = opts.huge === true ? HUGE_SIZE : PAGE_SIZE;
    const size = Math.ceil(len / unit) * unit;
    const va = Math.ceil(this.nextVa / unit) * unit;
    const done: MapUnit[] = [];
    for (let off = 0; off < size; off += unit) {
      const gpa = alloc.alloc(unit);
      const ok = gpa !== undefined && this.pt.map(va + off, gpa, unit, USER_RW).ok;
      if (!ok) {
        if (gpa !== undefined) alloc.free(gpa, unit);
        for (const u of done) {
          this.pt.unmap(u.va, u.size);
          alloc.free(u.gpa, u.size);
          this.units.delete(u.va);
        }
        return -ENOMEM;
      }
      const u = { va: va + off, gpa, size: unit };
      done.push(u);
      this.units.set(u.va, u);
    }
    this.nextVa = va + size;
    return va;
  }

  /** The guest-physical address behind `va`, or undefined when unmapped. */
  gpaOf(va: number): number | undefined {
    return this.pt?.iovaToPhys(va);
  }

  /** Splits [va, va+len) into guest-physical pieces; undefined when any byte is unmapped. */
  private pieces(va: number, len: number): { gpa: number; len: number }[] | undefined {
    const out: { gpa: number; len: number }[] = [];
    for (let a = va; a < va + len; ) {
      const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), va + len - a);
      const gpa = this.gpaOf(a);
      if (gpa === undefined) return undefined;
      out.push({ gpa, len: n });
      a += n;
    }
    return out;
  }

  /** A CPU store through the process's tables: 0, or -EFAULT (nothing written) when unmapped. */
  write(va: number, bytes: Uint8Array): number {
    const p = this.pieces(va, bytes.length);
    if (p === undefined) return -EFAULT;
    let off = 0;
    for (const x of p) {
      if (!this.k.mem.write(x.gpa, bytes.subarray(off, off + x.len))) return -EFAULT;
      off += x.len;
    }
    return 0;
  }

  /** A CPU load through the process's tables; undefined when any byte is unmapped. */
  read(va: number, len: number): Uint8Array | undefined {
    const p = this.pieces(va, len);
    if (p === undefined) return undefined;
    const out = new Uint8Array(len);
    let off = 0;
    for (const x of p) {
      const b = this.k.mem.read(x.gpa, x.len);
      if (b === undefined) return undefined;
      out.set(b, off);
      off += x.len;
    }
    return out;
  }
}

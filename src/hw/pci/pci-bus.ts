/**
 * A PCI segment's functions by bus/device/function number — what the host's PCI core enumerates
 * through ECAM — and the routing of memory accesses to the BAR that decodes them.
 *
 * Configuration accesses to a BDF with no function read all-ones (the Vendor ID 0xffff that
 * means "nothing here") and writes are dropped. `enumerate()` scans the way Linux's
 * pci_scan_slot does: function 0 of each device, and functions 1-7 only when function 0's Header
 * Type has the multi-function bit. A memory access goes to the function whose memory BAR covers
 * it while that function's Command.Memory Space is set; anything else reads all-ones and drops
 * writes (a master abort).
 */

import type { MmioHandler } from '../platform/system-bus.ts';
import { allOnes } from './config-space.ts';
import {
  type AccessSize,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MFD,
  PCI_STD_NUM_BARS,
  PCI_VENDOR_ID,
  type PciConfigPort,
} from './regs.ts';

/** A function on the bus: its configuration space and its memory BARs. */
export interface PciFunction extends PciConfigPort {
  /** Size of BAR `bar`, 0 when not implemented. */
  barSize(bar: number): number;
  /** Address BAR `bar` is programmed with, -1 when not implemented. */
  barAddress(bar: number): number;
  barRead(bar: number, offset: number, size: AccessSize): number;
  barWrite(bar: number, offset: number, size: AccessSize, value: number): void;
}

/** bus << 8 | dev << 3 | fn: the requester ID. */
export function pciBdf(bus: number, dev: number, fn: number): number {
  return ((bus & 0xff) << 8) | ((dev & 0x1f) << 3) | (fn & 0x7);
}

export function pciBus(bdf: number): number {
  return (bdf >>> 8) & 0xff;
}

export function pciSlot(bdf: number): number {
  return (bdf >>> 3) & 0x1f;
}

export function pciFunc(bdf: number): number {
  return bdf & 0x7;
}

/** "dddd:bb:dd.f", as Linux names a PCI device. */
export function pciName(bdf: number, domain = 0): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(domain, 4)}:${h(pciBus(bdf), 2)}:${h(pciSlot(bdf), 2)}.${pciFunc(bdf)}`;
}

export class PciBus {
  readonly domain: number;
  private readonly fns = new Map<number, PciFunction>();

  constructor(domain = 0) {
    this.domain = domain;
  }

  /** Places `fn` at `bdf`; false (nothing changes) when the BDF is taken or out of range. */
  add(bdf: number, fn: PciFunction): boolean {
    if (!Number.isInteger(bdf) || bdf < 0 || bdf > 0xffff || this.fns.has(bdf)) return false;
    this.fns.set(bdf, fn);
    return true;
  }

  /** Removes the function at `bdf` (hot unplug); false when there is none. */
  remove(bdf: number): boolean {
    return this.fns.delete(bdf);
  }

  get(bdf: number): PciFunction | undefined {
    return this.fns.get(bdf);
  }

  /** Every BDF with a function, ascending (unlike `enumerate`, ignores the scan rules). */
  bdfs(): number[] {
    return [...this.fns.keys()].sort((a, b) => a - b);
  }

  configRead(bdf: number, offset: number, size: AccessSize): number {
    const fn = this.fns.get(bdf);
    return fn === undefined ? allOnes(size) : fn.configRead(offset, size);
  }

  configWrite(bdf: number, offset: number, size: AccessSize, value: number): void {
    this.fns.get(bdf)?.configWrite(offset, size, value);
  }

  /** The BDFs a scan of every bus and slot finds (Vendor ID not 0xffff; multi-function rule). */
  enumerate(): number[] {
    const found: number[] = [];
    const slots = new Set(this.bdfs().map((b) => b >>> 3));
    for (const slot of [...slots].sort((a, b) => a - b)) {
      const f0 = slot << 3;
      if (!this.present(f0)) continue;
      found.push(f0);
      if ((this.configRead(f0, PCI_HEADER_TYPE, 1) & PCI_HEADER_TYPE_MFD) === 0) continue;
      for (let f = 1; f < 8; f++) if (this.present(f0 | f)) found.push(f0 | f);
    }
    return found;
  }

  private present(bdf: number): boolean {
    return this.configRead(bdf, PCI_VENDOR_ID, 2) !== 0xffff;
  }

  /** The function and BAR decoding physical address `pa` (Memory Space enabled), if any. */
  decode(
    pa: number,
    size: number,
  ): { bdf: number; fn: PciFunction; bar: number; offset: number } | undefined {
    for (const [bdf, fn] of this.fns) {
      if ((fn.configRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) === 0) continue;
      for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++) {
        const len = fn.barSize(bar);
        const base = fn.barAddress(bar);
        if (len > 0 && base > 0 && pa >= base && pa + size <= base + len)
          return { bdf, fn, bar, offset: pa - base };
      }
    }
    return undefined;
  }

  /** A memory read of the PCI window at `pa`. */
  mmioRead(pa: number, size: AccessSize): number {
    const t = this.decode(pa, size);
    return t === undefined ? allOnes(size) : t.fn.barRead(t.bar, t.offset, size);
  }

  /** A memory write of the PCI window at `pa`; false when no BAR decodes it. */
  mmioWrite(pa: number, size: AccessSize, value: number): boolean {
    const t = this.decode(pa, size);
    if (t === undefined) return false;
    t.fn.barWrite(t.bar, t.offset, size, value);
    return true;
  }

  /**
   * The PCI memory window as a SystemBus MMIO handler (peer-to-peer DMA, or CPU accesses routed
   * through the bus): 1-, 2- and 4-byte accesses only; anything else, or an address no BAR
   * decodes, aborts.
   */
  mmioHandler(): MmioHandler {
    const sizeOf = (n: number): AccessSize | 0 => (n === 1 || n === 2 || n === 4 ? n : 0);
    return {
      read: (pa, out) => {
        const size = sizeOf(out.length);
        if (size === 0 || this.decode(pa, size) === undefined) return false;
        const v = this.mmioRead(pa, size);
        for (let i = 0; i < size; i++) out[i] = (v >>> (8 * i)) & 0xff;
        return true;
      },
      write: (pa, data) => {
        const size = sizeOf(data.length);
        if (size === 0) return false;
        let v = 0;
        for (let i = size - 1; i >= 0; i--) v = (v << 8) | data[i]!;
        return this.mmioWrite(pa, size, v >>> 0);
      },
    };
  }
}

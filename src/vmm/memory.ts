/**
 * The VMM's view of the guest: guest RAM is the VMM process's own memory (an anonymous mapping it
 * registered with KVM as a memory slot and with VFIO for DMA), so the VMM reads and writes it as
 * any process reads its memory — through its address space, at the host virtual address that
 * backs a guest-physical one. Device models (the virtual SMMU's queues and tables, the
 * device-tree blob) use this. `MmioOps` is what an emulated device offers the machine for the
 * guest-physical range it occupies (QEMU's MemoryRegionOps, reduced).
 */

import { leBytes, leValue } from '../arch/bits.ts';
import type { MmioSize } from '../arch/guest-cpu.ts';
import type { Process } from '../host/kernel/process.ts';
import type { MemoryPort } from '../hw/memory.ts';

/** An emulated device's registers: offsets are relative to the region's base. */
export interface MmioOps {
  read(offset: number, size: MmioSize): number;
  write(offset: number, size: MmioSize, value: number): void;
}

/** One RAM block: guest-physical [gpa, gpa+size) is the VMM's [hva, hva+size). */
export interface RamBlock {
  readonly gpa: number;
  readonly hva: number;
  readonly size: number;
}

export class GuestRam {
  readonly proc: Process;
  readonly blocks: readonly RamBlock[];

  constructor(proc: Process, blocks: readonly RamBlock[]) {
    this.proc = proc;
    this.blocks = blocks;
  }

  /** The host virtual address behind [gpa, gpa+len), or -1 when the range is not wholly in one block. */
  gpaToHva(gpa: number, len = 1): number {
    for (const b of this.blocks)
      if (gpa >= b.gpa && gpa + len <= b.gpa + b.size) return b.hva + (gpa - b.gpa);
    return -1;
  }

  /** Whether [gpa, gpa+len) is guest RAM. */
  contains(gpa: number, len: number): boolean {
    return Number.isInteger(gpa) && Number.isInteger(len) && len > 0 && this.gpaToHva(gpa, len) >= 0;
  }

  read(gpa: number, len: number): Uint8Array | undefined {
    const hva = this.gpaToHva(gpa, len);
    return hva < 0 ? undefined : this.proc.mm.readUser(hva, len);
  }

  write(gpa: number, bytes: Uint8Array): boolean {
    const hva = this.gpaToHva(gpa, bytes.length);
    return hva >= 0 && this.proc.mm.writeUser(hva, bytes);
  }

  /** The little-endian u32 at `gpa`, or -1 when it is not RAM. */
  read32(gpa: number): number {
    const b = this.read(gpa, 4);
    return b === undefined ? -1 : new DataView(b.buffer, b.byteOffset).getUint32(0, true);
  }

  /** The little-endian u64 at `gpa` as a number (callers keep values below 2^53), or -1. */
  read64n(gpa: number): number {
    const b = this.read(gpa, 8);
    if (b === undefined) return -1;
    const v = new DataView(b.buffer, b.byteOffset);
    return v.getUint32(4, true) * 2 ** 32 + v.getUint32(0, true);
  }

  write32(gpa: number, v: number): boolean {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return this.write(gpa, b);
  }

  /** A MemoryPort onto guest-physical memory (for table walkers and structure decoders). */
  port(): MemoryPort {
    return new GuestRamPort(this);
  }
}

/** MemoryPort over GuestRam: every access is a copy through the VMM's address space. */
class GuestRamPort implements MemoryPort {
  private readonly ram: GuestRam;

  constructor(ram: GuestRam) {
    this.ram = ram;
  }

  private le(addr: number, n: number): number {
    const b = this.ram.read(addr, n);
    return b === undefined ? -1 : leValue(b);
  }

  private put(addr: number, n: number, v: number): boolean {
    return this.ram.write(addr, leBytes(v, n));
  }

  read8(addr: number): number {
    return this.le(addr, 1);
  }
  read16(addr: number): number {
    return this.le(addr, 2);
  }
  read32(addr: number): number {
    return this.le(addr, 4);
  }
  read64(addr: number, out: Uint32Array): boolean {
    const b = this.ram.read(addr, 8);
    if (b === undefined) return false;
    const v = new DataView(b.buffer, b.byteOffset);
    out[0] = v.getUint32(0, true);
    out[1] = v.getUint32(4, true);
    return true;
  }
  read64n(addr: number): number {
    return this.le(addr, 8);
  }
  write8(addr: number, v: number): boolean {
    return this.put(addr, 1, v);
  }
  write16(addr: number, v: number): boolean {
    return this.put(addr, 2, v);
  }
  write32(addr: number, v: number): boolean {
    return this.put(addr, 4, v >>> 0);
  }
  write64(addr: number, lo: number, hi: number): boolean {
    // Both words byte-exactly: a descriptor's high word may hold bits above 2^53.
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, lo >>> 0, true);
    v.setUint32(4, hi >>> 0, true);
    return this.ram.write(addr, b);
  }
  write64n(addr: number, v: number): boolean {
    return this.put(addr, 8, v);
  }
  read(addr: number, len: number): Uint8Array | undefined {
    return this.ram.read(addr, len);
  }
  write(addr: number, bytes: Uint8Array): boolean {
    return this.ram.write(addr, bytes);
  }
  fill(addr: number, len: number, byte: number): boolean {
    return this.ram.write(addr, new Uint8Array(len).fill(byte));
  }
  isAccessible(addr: number, len: number): boolean {
    return this.ram.contains(addr, len);
  }
}

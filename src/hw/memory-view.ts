/**
 * A window onto a PhysMem at another address: addresses [base, base+size) of the view are
 * [target, target+size) of the memory. It is how a contiguous guest-physical (IPA) range backed by
 * contiguous host-physical memory is accessed, so that builders (page tables, CD tables) can write
 * structures at the addresses the guest uses. Accesses outside the window abort; nothing throws.
 */

import type { MemoryPort, PhysMem } from './memory.ts';

export class OffsetMemory implements MemoryPort {
  readonly phys: PhysMem;
  readonly base: number;
  readonly target: number;
  readonly size: number;

  constructor(phys: PhysMem, base: number, target: number, size: number) {
    this.phys = phys;
    this.base = base;
    this.target = target;
    this.size = size;
  }

  /** The physical address behind a view address, or -1 outside the window. */
  toPhys(addr: number, len = 1): number {
    if (!Number.isInteger(addr) || addr < this.base || addr + len > this.base + this.size) return -1;
    return addr - this.base + this.target;
  }

  isAccessible(addr: number, len: number): boolean {
    const p = this.toPhys(addr, len);
    return p >= 0 && this.phys.isAccessible(p, len);
  }

  read8(addr: number): number {
    const p = this.toPhys(addr, 1);
    return p < 0 ? -1 : this.phys.read8(p);
  }

  read16(addr: number): number {
    const p = this.toPhys(addr, 2);
    return p < 0 ? -1 : this.phys.read16(p);
  }

  read32(addr: number): number {
    const p = this.toPhys(addr, 4);
    return p < 0 ? -1 : this.phys.read32(p);
  }

  read64(addr: number, out: Uint32Array): boolean {
    const p = this.toPhys(addr, 8);
    return p >= 0 && this.phys.read64(p, out);
  }

  read64n(addr: number): number {
    const p = this.toPhys(addr, 8);
    return p < 0 ? -1 : this.phys.read64n(p);
  }

  write8(addr: number, v: number): boolean {
    const p = this.toPhys(addr, 1);
    return p >= 0 && this.phys.write8(p, v);
  }

  write16(addr: number, v: number): boolean {
    const p = this.toPhys(addr, 2);
    return p >= 0 && this.phys.write16(p, v);
  }

  write32(addr: number, v: number): boolean {
    const p = this.toPhys(addr, 4);
    return p >= 0 && this.phys.write32(p, v);
  }

  write64(addr: number, lo: number, hi: number): boolean {
    const p = this.toPhys(addr, 8);
    return p >= 0 && this.phys.write64(p, lo, hi);
  }

  write64n(addr: number, v: number): boolean {
    const p = this.toPhys(addr, 8);
    return p >= 0 && this.phys.write64n(p, v);
  }

  read(addr: number, len: number): Uint8Array | undefined {
    const p = this.toPhys(addr, len);
    return p < 0 ? undefined : this.phys.read(p, len);
  }

  write(addr: number, bytes: Uint8Array): boolean {
    const p = this.toPhys(addr, bytes.length);
    return p >= 0 && this.phys.write(p, bytes);
  }

  fill(addr: number, len: number, byte: number): boolean {
    const p = this.toPhys(addr, len);
    return p >= 0 && this.phys.fill(p, len, byte);
  }
}

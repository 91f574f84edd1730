/**
 * Guest-physical memory as the guest's CPUs see it: an address goes through the VM's memory slots
 * (KVM's stage 2) to the VMM's virtual address, and through the VMM's page tables to a host page —
 * the path a guest load or store takes in hardware, faulting pages in as KVM's stage-2 fault
 * handler does (get_user_pages). It is what a guest program (`src/arch/guest-cpu.ts`) uses for
 * RAM; an address with no slot is not memory (an access there aborts: false / -1), which for a
 * CPU means an MMIO trap instead.
 *
 * Decision: a read of a never-touched page faults it in (zero-filled), as a stage-2 fault on a
 * read does; a write to a read-only slot aborts (KVM would exit to user space with KVM_EXIT_MMIO;
 * vsva's guests do not write to ROM).
 */

import { leBytes, leValue } from '../../arch/bits.ts';
import type { MemoryPort } from '../../hw/memory.ts';
import { KVM_MEM_READONLY } from '../../uapi/kvm.ts';
import { PAGE_SIZE } from '../kernel/mm.ts';
import type { KvmVm } from './vm.ts';

export class KvmGuestMemory implements MemoryPort {
  private readonly vm: KvmVm;
  /** One-entry translation cache: guest page → host page (and whether writes are allowed). */
  private lastGfn = -1;
  private lastPa = 0;
  private lastWritable = false;
  private lastGen = -1;
  private lastMmGen = -1;
  /** Bumped by `flush()` (a memory-slot change). */
  private gen = 0;

  constructor(vm: KvmVm) {
    this.vm = vm;
  }

  /** Drops cached translations (after a memory-slot or mapping change). */
  flush(): void {
    this.gen++;
  }

  /** The host physical address of `gpa`, or -1 (no slot, no backing, or a write to a read-only slot). */
  private pa(gpa: number, write: boolean): number {
    if (!Number.isInteger(gpa) || gpa < 0) return -1;
    const gfn = Math.floor(gpa / PAGE_SIZE);
    const mmGen = this.vm.mm.generation;
    if (
      gfn === this.lastGfn &&
      this.lastGen === this.gen &&
      this.lastMmGen === mmGen &&
      (!write || this.lastWritable)
    )
      return this.lastPa + (gpa % PAGE_SIZE);
    const slot = this.vm.memslots.find(gpa);
    if (slot === undefined) return -1;
    const readOnly = (slot.flags & KVM_MEM_READONLY) !== 0;
    if (write && readOnly) return -1;
    const hva = slot.hva + (gfn * PAGE_SIZE - slot.gpa);
    const pa = this.vm.mm.translate(hva, readOnly ? 'read' : 'write', true);
    if (pa === undefined) return -1;
    this.lastGfn = gfn;
    this.lastPa = pa;
    this.lastWritable = !readOnly;
    this.lastGen = this.gen;
    this.lastMmGen = mmGen;
    return pa + (gpa % PAGE_SIZE);
  }

  /** Whether [addr, addr+len) lies in one page (single-page fast path). */
  private static onePage(addr: number, len: number): boolean {
    return (addr % PAGE_SIZE) + len <= PAGE_SIZE;
  }

  private get mem() {
    return this.vm.kvm.kernel.host.mem;
  }

  read8(addr: number): number {
    const p = this.pa(addr, false);
    return p < 0 ? -1 : this.mem.read8(p);
  }
  read16(addr: number): number {
    if (!KvmGuestMemory.onePage(addr, 2)) return this.slowRead(addr, 2);
    const p = this.pa(addr, false);
    return p < 0 ? -1 : this.mem.read16(p);
  }
  read32(addr: number): number {
    if (!KvmGuestMemory.onePage(addr, 4)) return this.slowRead(addr, 4);
    const p = this.pa(addr, false);
    return p < 0 ? -1 : this.mem.read32(p);
  }
  read64(addr: number, out: Uint32Array): boolean {
    if (!KvmGuestMemory.onePage(addr, 8)) {
      const b = this.read(addr, 8);
      if (b === undefined) return false;
      const v = new DataView(b.buffer);
      out[0] = v.getUint32(0, true);
      out[1] = v.getUint32(4, true);
      return true;
    }
    const p = this.pa(addr, false);
    return p >= 0 && this.mem.read64(p, out);
  }
  read64n(addr: number): number {
    if (!KvmGuestMemory.onePage(addr, 8)) return this.slowRead(addr, 8);
    const p = this.pa(addr, false);
    return p < 0 ? -1 : this.mem.read64n(p);
  }
  write8(addr: number, v: number): boolean {
    const p = this.pa(addr, true);
    return p >= 0 && this.mem.write8(p, v);
  }
  write16(addr: number, v: number): boolean {
    if (!KvmGuestMemory.onePage(addr, 2)) return this.slowWrite(addr, 2, v);
    const p = this.pa(addr, true);
    return p >= 0 && this.mem.write16(p, v);
  }
  write32(addr: number, v: number): boolean {
    if (!KvmGuestMemory.onePage(addr, 4)) return this.slowWrite(addr, 4, v >>> 0);
    const p = this.pa(addr, true);
    return p >= 0 && this.mem.write32(p, v);
  }
  write64(addr: number, lo: number, hi: number): boolean {
    if (!KvmGuestMemory.onePage(addr, 8)) return this.slowWrite(addr, 8, (hi >>> 0) * 2 ** 32 + (lo >>> 0));
    const p = this.pa(addr, true);
    return p >= 0 && this.mem.write64(p, lo, hi);
  }
  write64n(addr: number, v: number): boolean {
    if (!KvmGuestMemory.onePage(addr, 8)) return this.slowWrite(addr, 8, v);
    const p = this.pa(addr, true);
    return p >= 0 && this.mem.write64n(p, v);
  }

  read(addr: number, len: number): Uint8Array | undefined {
    if (!Number.isInteger(len) || len < 0) return undefined;
    const out = new Uint8Array(len);
    for (let done = 0; done < len; ) {
      const a = addr + done;
      const n = Math.min(len - done, PAGE_SIZE - (a % PAGE_SIZE));
      const p = this.pa(a, false);
      if (p < 0) return undefined;
      const b = this.mem.read(p, n);
      if (b === undefined) return undefined;
      out.set(b, done);
      done += n;
    }
    return out;
  }

  write(addr: number, bytes: Uint8Array): boolean {
    if (!this.isWritable(addr, bytes.length)) return false;
    for (let done = 0; done < bytes.length; ) {
      const a = addr + done;
      const n = Math.min(bytes.length - done, PAGE_SIZE - (a % PAGE_SIZE));
      if (!this.mem.write(this.pa(a, true), bytes.subarray(done, done + n))) return false;
      done += n;
    }
    return true;
  }

  fill(addr: number, len: number, byte: number): boolean {
    return this.write(addr, new Uint8Array(len).fill(byte));
  }

  isAccessible(addr: number, len: number): boolean {
    if (!Number.isInteger(addr) || !Number.isInteger(len) || len < 0) return false;
    for (let a = addr - (addr % PAGE_SIZE); a < addr + len; a += PAGE_SIZE)
      if (this.pa(a, false) < 0) return false;
    return true;
  }

  /** Every page of [addr, addr+len) can be written (so a write is all or nothing). */
  private isWritable(addr: number, len: number): boolean {
    if (!Number.isInteger(addr) || !Number.isInteger(len) || len < 0) return false;
    for (let a = addr - (addr % PAGE_SIZE); a < addr + len; a += PAGE_SIZE)
      if (this.pa(a, true) < 0) return false;
    return true;
  }

  private slowRead(addr: number, n: number): number {
    const b = this.read(addr, n);
    return b === undefined ? -1 : leValue(b);
  }

  private slowWrite(addr: number, n: number, v: number): boolean {
    return this.write(addr, leBytes(v, n));
  }
}

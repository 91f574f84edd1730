/**
 * KVM memory slots (virt/kvm/kvm_main.c, __kvm_set_memory_region, Linux 5.6–5.10): the table
 * that maps guest physical ranges onto the VMM's own memory. KVM_SET_USER_MEMORY_REGION creates,
 * moves, re-flags or (size 0) deletes one slot; the guest's memory *is* the VMM's pages, reached
 * through the VMM's address space — KVM never copies it.
 *
 * The checks run in the kernel's order, and a refused request changes nothing:
 *   slot id ≥ KVM_USER_MEM_SLOTS → EINVAL (the ioctl wrapper's check);
 *   unknown flags (KVM_MEM_READONLY only where the architecture has read-only memory) → EINVAL;
 *   size or guest address not page-aligned → EINVAL;
 *   user address not page-aligned, or [addr, addr+size) not below TASK_SIZE (access_ok) → EINVAL;
 *   address-space id ≠ 0 (KVM_ADDRESS_SPACE_NUM is 1 on arm64 and s390) → EINVAL;
 *   guest range wraps → EINVAL;
 *   size 0: deleting a slot that does not exist → EINVAL, else the slot goes;
 *   more than 2^31−1 pages → EINVAL;
 *   an existing slot may only move or change KVM_MEM_LOG_DIRTY_PAGES: another user address, size
 *   or KVM_MEM_READONLY → EINVAL; the same request again → 0, nothing done;
 *   a created or moved slot overlapping another → EEXIST;
 *   then the architecture's kvm_arch_prepare_memory_region (arm64: ends at or beyond the IPA
 *   limit → EFAULT; s390: not 1 MiB-aligned → EINVAL).
 *
 * Not modelled: dirty logging (the flag is accepted and kept; KVM_GET_DIRTY_LOG does not exist),
 * and the private slots (none on arm64 or s390).
 */

import { EEXIST, EINVAL } from '../../uapi/errno.ts';
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, type KvmUserspaceMemoryRegion } from '../../uapi/kvm.ts';
import { PAGE_SIZE, TASK_SIZE } from '../kernel/mm.ts';
import type { KvmArch, KvmMemoryChange, KvmMemoryRegion, KvmVmArch } from './arch.ts';

/** KVM_MEM_MAX_NR_PAGES: (1 << 31) − 1. */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** KVM_ADDRESS_SPACE_NUM on arm64 and s390. */
export const KVM_ADDRESS_SPACE_NUM = 1;
/** KVM_USER_MEM_SLOTS when the architecture does not say (arm64). */
export const KVM_USER_MEM_SLOTS_DEFAULT = 512;
/** Addresses vsva keeps as numbers: every accepted slot lies below 2^53. */
const MODEL_ADDRESS_LIMIT = 2 ** 53;

/** One memory slot. */
export interface KvmMemslot extends KvmMemoryRegion {
  /** The slot id (the low 16 bits of `slot`). */
  readonly id: number;
}

/** What a successful KVM_SET_USER_MEMORY_REGION did. */
export type KvmMemslotChange = KvmMemoryChange | 'delete' | 'none';

export class KvmMemslots {
  private readonly arch: KvmVmArch;
  /** KVM_USER_MEM_SLOTS */
  readonly userSlots: number;
  private readonly readonlyMem: boolean;
  /** Slots by id. */
  private readonly byId = new Map<number, KvmMemslot>();
  /** The same slots sorted by guest address, for lookups. */
  private sorted: KvmMemslot[] = [];
  /** Bumped on every change (kvm_memslots' generation), for caches of translations. */
  generation = 0;

  constructor(kvmArch: KvmArch, arch: KvmVmArch) {
    this.arch = arch;
    this.userSlots = kvmArch.memSlots ?? KVM_USER_MEM_SLOTS_DEFAULT;
    this.readonlyMem = kvmArch.readonlyMem ?? false;
  }

  /** The slots, by guest address. */
  get slots(): readonly KvmMemslot[] {
    return this.sorted;
  }

  /** The slot holding guest physical address `gpa`, if any. */
  find(gpa: number): KvmMemslot | undefined {
    const s = this.sorted;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = s[mid]!;
      if (gpa < m.gpa) hi = mid - 1;
      else if (gpa >= m.gpa + m.size) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /**
   * __kvm_set_memory_region: applies `mem` (as user space passed it) or refuses it with -errno,
   * changing nothing. Returns the change made.
   */
  set(mem: KvmUserspaceMemoryRegion): KvmMemslotChange | number {
    const id = mem.slot & 0xffff;
    const asId = mem.slot >>> 16;
    const { flags } = mem;
    const gpa = mem.guest_phys_addr;
    const size = mem.memory_size;
    const hva = mem.userspace_addr;
    const page = BigInt(PAGE_SIZE);
    if (id >= this.userSlots) return -EINVAL;
    const validFlags = KVM_MEM_LOG_DIRTY_PAGES | (this.readonlyMem ? KVM_MEM_READONLY : 0);
    if ((flags & ~validFlags) !== 0) return -EINVAL;
    if (size % page !== 0n || gpa % page !== 0n) return -EINVAL;
    if (hva % page !== 0n || hva + size > BigInt(TASK_SIZE)) return -EINVAL;
    if (asId >= KVM_ADDRESS_SPACE_NUM) return -EINVAL;
    if (BigInt.asUintN(64, gpa + size) < gpa) return -EINVAL;

    const old = this.byId.get(id);
    if (size === 0n) {
      if (old === undefined) return -EINVAL;
      this.remove(old);
      return 'delete';
    }
    if (size / page > BigInt(KVM_MEM_MAX_NR_PAGES)) return -EINVAL;

    let change: KvmMemoryChange;
    if (old === undefined) change = 'create';
    else {
      if (
        BigInt(old.hva) !== hva ||
        BigInt(old.size) !== size ||
        ((old.flags ^ flags) & KVM_MEM_READONLY) !== 0
      )
        return -EINVAL;
      if (BigInt(old.gpa) !== gpa) change = 'move';
      else if (old.flags !== flags) change = 'flags-only';
      else return 'none';
    }
    if (change !== 'flags-only' && this.overlaps(id, gpa, size)) return -EEXIST;
    // The guest range as numbers; the architecture's limits keep it far below 2^53 (a VM type
    // whose limit were wider would stop here rather than lose precision).
    if (gpa + size > BigInt(MODEL_ADDRESS_LIMIT)) return -EINVAL;
    const slot: KvmMemslot = {
      id,
      slot: mem.slot,
      flags,
      gpa: Number(gpa),
      size: Number(size),
      hva: Number(hva),
    };
    const r = this.arch.prepareMemoryRegion?.(slot, change) ?? 0;
    if (r !== 0) return r;
    if (old !== undefined) this.remove(old);
    this.insert(slot);
    return change;
  }

  private overlaps(id: number, gpa: bigint, size: bigint): boolean {
    for (const s of this.sorted) {
      if (s.id === id) continue;
      if (gpa < BigInt(s.gpa + s.size) && BigInt(s.gpa) < gpa + size) return true;
    }
    return false;
  }

  private insert(s: KvmMemslot): void {
    this.byId.set(s.id, s);
    this.sorted = [...this.sorted, s].sort((a, b) => a.gpa - b.gpa);
    this.generation++;
  }

  private remove(s: KvmMemslot): void {
    this.byId.delete(s.id);
    this.sorted = this.sorted.filter((x) => x !== s);
    this.generation++;
  }
}

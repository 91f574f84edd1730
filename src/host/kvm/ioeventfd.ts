/**
 * ioeventfd (virt/kvm/eventfd.c, KVM_IOEVENTFD): a guest write to a given address — optionally
 * of a given length and value — signals an eventfd inside KVM instead of exiting to the VMM. It
 * is how a virtio or VFIO doorbell write becomes an event without a trip through user space.
 *
 * Assign, in the kernel's order: len not 0/1/2/4/8 → EINVAL; addr + len wraps → EINVAL; flags
 * outside KVM_IOEVENTFD_VALID_FLAG_MASK → EINVAL; len 0 with DATAMATCH → EINVAL; fd not open →
 * EBADF; not an eventfd → EINVAL; an ioeventfd on the same bus and address that could match the
 * same write (either has len 0; or the same len and either is a wildcard or the values are equal)
 * → EEXIST. Deassign checks nothing but the fd (EBADF/EINVAL) and removes the one ioeventfd with
 * the same bus, eventfd, address, len and match (value too, with DATAMATCH), or fails with ENOENT.
 *
 * The buses are the ones the flags name: MMIO (default), PIO (KVM_IOEVENTFD_FLAG_PIO; arm64 and
 * s390 guests never write there) and the s390 virtio-ccw notify bus. A write matches an ioeventfd
 * when the address is the same and, unless the ioeventfd's len is 0, the length is the same and
 * (for DATAMATCH) so is the little-endian value. Collision rules make at most one match.
 *
 * Not modelled: KVM's separate "fast MMIO" bus for len-0 MMIO ioeventfds (the same writes match
 * either way), and the io-bus device limit (ioeventfds do not count against it).
 */

import { EEXIST, EINVAL, ENOENT } from '../../uapi/errno.ts';
import {
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY,
  KVM_IOEVENTFD_VALID_FLAG_MASK,
  type kvm_ioeventfd,
} from '../../uapi/kvm.ts';
import type { StructValue } from '../../uapi/layout.ts';
import { type EventfdCtx, eventfdCtxFdget } from '../eventfd.ts';
import type { Process } from '../kernel/process.ts';

/** struct kvm_ioeventfd as user space passed it. */
type IoeventfdArgs = StructValue<typeof kvm_ioeventfd.fields>;

/** enum kvm_bus, for the buses an ioeventfd can sit on. */
export type KvmBus = 'mmio' | 'pio' | 'virtio-ccw-notify';

/** struct _ioeventfd */
export interface Ioeventfd {
  readonly bus: KvmBus;
  /** The address, as user space gave it (u64). */
  readonly addr: bigint;
  /** 0 (any length) or 1, 2, 4, 8. */
  readonly length: number;
  readonly wildcard: boolean;
  readonly datamatch: bigint;
  readonly eventfd: EventfdCtx;
  /** Writes that signalled it. */
  signals: number;
}

function busOf(flags: number): KvmBus {
  if ((flags & KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY) !== 0) return 'virtio-ccw-notify';
  if ((flags & KVM_IOEVENTFD_FLAG_PIO) !== 0) return 'pio';
  return 'mmio';
}

const U64_MAX = (1n << 64n) - 1n;

export class IoeventfdSet {
  private items: Ioeventfd[] = [];

  get list(): readonly Ioeventfd[] {
    return this.items;
  }

  /** KVM_IOEVENTFD with its argument already copied in. */
  ioctl(proc: Process, a: IoeventfdArgs): number {
    if ((a.flags & KVM_IOEVENTFD_FLAG_DEASSIGN) !== 0) return this.deassign(proc, a);
    return this.assign(proc, a);
  }

  private assign(proc: Process, a: IoeventfdArgs): number {
    if (![0, 1, 2, 4, 8].includes(a.len)) return -EINVAL;
    if (a.addr + BigInt(a.len) > U64_MAX) return -EINVAL;
    if ((a.flags & ~KVM_IOEVENTFD_VALID_FLAG_MASK) !== 0) return -EINVAL;
    if (a.len === 0 && (a.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) !== 0) return -EINVAL;
    const ctx = eventfdCtxFdget(proc, a.fd);
    if (typeof ctx === 'number') return ctx;
    const wildcard = (a.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    const p: Ioeventfd = {
      bus: busOf(a.flags),
      addr: a.addr,
      length: a.len,
      wildcard,
      datamatch: wildcard ? 0n : a.datamatch,
      eventfd: ctx,
      signals: 0,
    };
    if (this.items.some((q) => collides(q, p))) return -EEXIST;
    ctx.get();
    this.items.push(p);
    return 0;
  }

  private deassign(proc: Process, a: IoeventfdArgs): number {
    const ctx = eventfdCtxFdget(proc, a.fd);
    if (typeof ctx === 'number') return ctx;
    const bus = busOf(a.flags);
    const wildcard = (a.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    const p = this.items.find(
      (q) =>
        q.bus === bus &&
        q.eventfd === ctx &&
        q.addr === a.addr &&
        q.length === a.len &&
        q.wildcard === wildcard &&
        (wildcard || q.datamatch === a.datamatch),
    );
    if (p === undefined) return -ENOENT;
    this.remove(p);
    return 0;
  }

  private remove(p: Ioeventfd): void {
    this.items = this.items.filter((q) => q !== p);
    p.eventfd.put();
  }

  /**
   * kvm_io_bus_write as far as ioeventfds go: a guest write of `data` (1, 2, 4 or 8 bytes,
   * little-endian) at `addr` on `bus`. True when an ioeventfd took it (its eventfd was
   * signalled); false when none matched and the write goes on (to an exit to the VMM).
   */
  write(bus: KvmBus, addr: number, data: Uint8Array): boolean {
    const a = BigInt(addr);
    for (const p of this.items) {
      if (p.bus !== bus || p.addr !== a || !inRange(p, data)) continue;
      p.signals++;
      p.eventfd.signal(1n);
      return true;
    }
    return false;
  }

  /** kvm_io_bus_destroy: every ioeventfd goes (the VM is destroyed). */
  releaseAll(): void {
    for (const p of [...this.items]) this.remove(p);
  }
}

/** ioeventfd_check_collision for two ioeventfds. */
function collides(q: Ioeventfd, p: Ioeventfd): boolean {
  return (
    q.bus === p.bus &&
    q.addr === p.addr &&
    (q.length === 0 ||
      p.length === 0 ||
      (q.length === p.length && (q.wildcard || p.wildcard || q.datamatch === p.datamatch)))
  );
}

/** ioeventfd_in_range (the address already matched). */
function inRange(p: Ioeventfd, data: Uint8Array): boolean {
  if (p.length === 0) return true;
  if (data.length !== p.length) return false;
  if (p.wildcard) return true;
  let v = 0n;
  for (let i = data.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
  return v === p.datamatch;
}

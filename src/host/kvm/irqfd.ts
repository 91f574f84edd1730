/**
 * irqfd (virt/kvm/eventfd.c, KVM_IRQFD): an eventfd bound to a guest interrupt line (GSI). KVM
 * hooks the eventfd's wait queue; every signal — eventfd_signal from VFIO's interrupt handler, or
 * a write(2) — wakes the hook, which takes the count and pulses the line (raise, then lower): one
 * guest interrupt per signal, without the VMM running.
 *
 * KVM_IRQFD, in the kernel's order:
 *   flags other than DEASSIGN and RESAMPLE → EINVAL;
 *   DEASSIGN: fd not open → EBADF; not an eventfd → EINVAL; every irqfd on that (eventfd, gsi)
 *     goes; none is not an error (0);
 *   assign: interrupt controller not initialised (kvm_arch_intc_initialized) → EAGAIN; fd not
 *     open → EBADF; not an eventfd → EINVAL; RESAMPLE → see below; the eventfd already bound in
 *     this VM (to any gsi) → EBUSY. Then the hook goes on the queue and the eventfd is polled once
 *     with every event asked for (vfs_poll with irqfd's table): a count already there injects
 *     one interrupt, as if the signal had come after the assignment.
 *
 * An irqfd ends when it is deassigned, when its eventfd is released (the last close wakes the
 * queue with EPOLLHUP and KVM drops the irqfd), or when the VM file is released
 * (kvm_irqfd_release, at VM-fd close even while vCPU files remain).
 *
 * Decisions:
 * - Injection runs inside the wake-up (the in-atomic path of later kernels). Linux 5.10 defers an
 *   SPI to a work item, and signals that arrive before it runs merge into one interrupt; vsva has
 *   no kernel workers, so signals never merge here.
 * - The wake-up takes the count (eventfd_ctx_do_read, Linux ≥ 5.11); before that the count of an
 *   irqfd-only eventfd grew for ever. The initial poll does not take it (as in Linux); with
 *   EFD_AUTORESET that poll resets it — the RFC's poll side effect, visible here.
 * - KVM_IRQFD_FLAG_RESAMPLE (level-triggered INTx with an EOI notification) is refused with
 *   EINVAL: vsva's devices use MSI/MSI-X, and the guest interrupt controllers have no EOI hook.
 * - A GSI with no route (beyond the controller's lines) is accepted and its signals are dropped,
 *   as Linux's irqfd_inject does with no routing entry; `stats.dropped` counts them.
 */

import { EAGAIN, EBUSY, EINVAL } from '../../uapi/errno.ts';
import { KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, type kvm_irqfd } from '../../uapi/kvm.ts';
import type { StructValue } from '../../uapi/layout.ts';
import { EPOLLHUP, EPOLLIN } from '../../uapi/poll.ts';
import { type EventfdCtx, eventfdCtxFdget } from '../eventfd.ts';
import type { Process } from '../kernel/process.ts';
import { WaitEntry } from '../kernel/waitqueue.ts';
import type { KvmVmArch } from './arch.ts';

export interface IrqfdStats {
  /** Interrupts injected (line pulses that reached a route). */
  injected: number;
  /** Signals whose GSI had no route. */
  dropped: number;
}

/** struct kvm_kernel_irqfd */
export class Irqfd {
  readonly gsi: number;
  readonly eventfd: EventfdCtx;
  readonly stats: IrqfdStats = { injected: 0, dropped: 0 };
  private readonly arch: KvmVmArch;
  private readonly wait: WaitEntry;
  private readonly onShutdown: (i: Irqfd) => void;
  active = true;

  constructor(arch: KvmVmArch, gsi: number, eventfd: EventfdCtx, onShutdown: (i: Irqfd) => void) {
    this.arch = arch;
    this.gsi = gsi;
    this.eventfd = eventfd;
    this.onShutdown = onShutdown;
    this.wait = new WaitEntry((key) => this.wakeup(key), `irqfd gsi ${gsi}`);
  }

  /** Hooks the eventfd and injects for a count already pending (the end of kvm_irqfd_assign). */
  start(): void {
    // vfs_poll(file, &irqfd->pt): the table asks for every event, and its queueing hook puts
    // the irqfd's wake function on the eventfd's queue.
    const events = this.eventfd.poll({ key: 0xffff_ffff, wait: (wq) => wq.add(this.wait) });
    if ((events & EPOLLIN) !== 0) this.inject();
  }

  /** irqfd_wakeup */
  private wakeup(key: number): void {
    if ((key & EPOLLIN) !== 0) {
      this.eventfd.doRead();
      this.inject();
    }
    if ((key & EPOLLHUP) !== 0) this.deactivate();
  }

  /** irqfd_inject: kvm_set_irq(gsi, 1) then (gsi, 0). */
  private inject(): void {
    if (this.arch.setIrq(this.gsi, 1) < 0) {
      this.stats.dropped++;
      return;
    }
    this.arch.setIrq(this.gsi, 0);
    this.stats.injected++;
  }

  /** irqfd_deactivate + irqfd_shutdown: unhook (taking what count is left) and drop the eventfd. */
  deactivate(): void {
    if (!this.active) return;
    this.active = false;
    this.eventfd.removeWaitQueue(this.wait);
    this.eventfd.put();
    this.onShutdown(this);
  }
}

/** The VM's irqfds (kvm->irqfds). */
export class IrqfdSet {
  private readonly arch: KvmVmArch;
  private items: Irqfd[] = [];

  constructor(arch: KvmVmArch) {
    this.arch = arch;
  }

  get list(): readonly Irqfd[] {
    return this.items;
  }

  /** KVM_IRQFD with its argument already copied in. */
  ioctl(proc: Process, args: StructValue<typeof kvm_irqfd.fields>): number {
    if ((args.flags & ~(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE)) !== 0) return -EINVAL;
    if ((args.flags & KVM_IRQFD_FLAG_DEASSIGN) !== 0) return this.deassign(proc, args.fd | 0, args.gsi);
    return this.assign(proc, args.fd | 0, args.gsi, args.flags);
  }

  private assign(proc: Process, fd: number, gsi: number, flags: number): number {
    if (!(this.arch.intcInitialized?.() ?? true)) return -EAGAIN;
    const ctx = eventfdCtxFdget(proc, fd);
    if (typeof ctx === 'number') return ctx;
    if ((flags & KVM_IRQFD_FLAG_RESAMPLE) !== 0) return -EINVAL;
    if (this.items.some((i) => i.eventfd === ctx)) return -EBUSY;
    const irqfd = new Irqfd(this.arch, gsi, ctx.get(), (i) => this.forget(i));
    this.items.push(irqfd);
    irqfd.start();
    return 0;
  }

  private deassign(proc: Process, fd: number, gsi: number): number {
    const ctx = eventfdCtxFdget(proc, fd);
    if (typeof ctx === 'number') return ctx;
    for (const i of [...this.items]) if (i.eventfd === ctx && i.gsi === gsi) i.deactivate();
    return 0;
  }

  private forget(i: Irqfd): void {
    this.items = this.items.filter((x) => x !== i);
  }

  /** kvm_irqfd_release: every irqfd goes (the VM file was released). */
  releaseAll(): void {
    for (const i of [...this.items]) i.deactivate();
  }
}

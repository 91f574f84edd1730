/**
 * KVM_IRQFD on an arm64 VM with a GICv3: every signal of the eventfd — from the kernel (what
 * VFIO's interrupt handler does) or from a write(2) — becomes exactly one rising edge of the SPI
 * behind the GSI, on a plain eventfd and on one with the EFD_AUTORESET RFC; a count pending at
 * assignment injects once; deassign, eventfd close and VM-fd close end the irqfd; every refusal
 * leaves the VM's irqfds and the eventfd's wait queue as they were.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EAGAIN, EBADF, EBUSY, EFAULT, EINVAL } from '../../uapi/errno.ts';
import { EFD_AUTORESET, EFD_SEMAPHORE } from '../../uapi/eventfd.ts';
import { KVM_IRQFD, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, kvm_irqfd } from '../../uapi/kvm.ts';
import { EPOLLIN } from '../../uapi/poll.ts';
import { type EventfdCtx, eventfdCtxOfFile } from '../eventfd.ts';
import type { Process } from '../kernel/process.ts';
import type { Arm64Vm } from './arm64/arch.ts';
import type { VgicV3 } from './arm64/vgic.ts';
import { armVmWithGic, createVm, kvmRig } from './kvm-testing.ts';

const SPI_BASE = 32;

function irqfd(proc: Process, vm: number, fd: number, gsi: number, flags = 0, resamplefd = 0): number {
  return proc.ioctl(vm, KVM_IRQFD, kvm_irqfd.encode({ fd, gsi, flags, resamplefd }));
}

function setup(efdFlags = 0, initval = 0) {
  const r = kvmRig();
  const { vm } = armVmWithGic(r, 2);
  const kvmVm = r.kvm.vms[0]!;
  const vgic = (kvmVm.arch as Arm64Vm).vgic as VgicV3;
  const efd = r.proc.eventfd2(initval, efdFlags);
  const ctx = eventfdCtxOfFile(r.proc.fileOf(efd)!) as EventfdCtx;
  const raised = (gsi: number): number => vgic.counts(0, SPI_BASE + gsi).raised;
  const write = (v: bigint): number => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return r.proc.write(efd, b) as number;
  };
  return { r, vm, kvmVm, vgic, efd, ctx, raised, write };
}

describe.each([
  ['a plain eventfd', 0],
  ['an EFD_AUTORESET eventfd', EFD_AUTORESET],
])('irqfd on %s', (_name, flags) => {
  it('delivers exactly one interrupt per kernel signal and per write(2)', () => {
    const s = setup(flags);
    expect(irqfd(s.r.proc, s.vm, s.efd, 5)).toBe(0);
    expect(s.raised(5)).toBe(0);
    for (let i = 1; i <= 5; i++) {
      s.ctx.signal(1n);
      expect(s.raised(5)).toBe(i);
      expect(s.ctx.count).toBe(0n); // the irqfd took the count
      expect(s.vgic.acknowledge(0, SPI_BASE + 5)).toBe(true);
    }
    expect(s.write(7n)).toBe(8);
    expect(s.raised(5)).toBe(6);
    // Nothing else moved.
    expect(s.raised(4)).toBe(0);
    expect(s.raised(6)).toBe(0);
    expect(s.kvmVm.irqfds.list[0]!.stats).toEqual({ injected: 6, dropped: 0 });
  });

  it('a signal while the SPI is still pending is one more raised edge, merged by the GIC', () => {
    const s = setup(flags);
    irqfd(s.r.proc, s.vm, s.efd, 0);
    s.ctx.signal(1n);
    s.ctx.signal(1n);
    expect(s.vgic.counts(0, SPI_BASE)).toEqual({ raised: 2, merged: 1 });
    expect(s.vgic.acknowledge(0, SPI_BASE)).toBe(true);
    expect(s.vgic.isPending(0, SPI_BASE)).toBe(false);
  });

  it('property: any mix of signals and writes gives one interrupt each', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('signal' as const), fc.bigInt({ min: 1n, max: 1000n })), {
          maxLength: 40,
        }),
        (ops) => {
          const s = setup(flags);
          irqfd(s.r.proc, s.vm, s.efd, 9);
          for (const op of ops) {
            if (op === 'signal') s.ctx.signal(1n);
            else s.write(op);
          }
          expect(s.raised(9)).toBe(ops.length);
          expect(s.ctx.count).toBe(0n);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a QEMU poll of the same eventfd does not add or lose interrupts', () => {
    const s = setup(flags);
    irqfd(s.r.proc, s.vm, s.efd, 3);
    const pfd = [{ fd: s.efd, events: EPOLLIN, revents: 0 }];
    s.ctx.signal(1n);
    expect(s.r.proc.poll(pfd, 0)).toBe(0); // the count is already gone
    s.ctx.signal(1n);
    expect(s.raised(3)).toBe(2);
  });
});

describe('a count already in the eventfd at assignment', () => {
  it('plain: one interrupt; the count stays until the next signal takes it', () => {
    const s = setup(0, 3);
    expect(irqfd(s.r.proc, s.vm, s.efd, 1)).toBe(0);
    expect(s.raised(1)).toBe(1);
    expect(s.ctx.count).toBe(3n);
    s.ctx.signal(1n);
    expect(s.raised(1)).toBe(2);
    expect(s.ctx.count).toBe(0n);
  });

  it('EFD_AUTORESET: one interrupt, and the assignment’s poll resets the count (the RFC’s side effect)', () => {
    const s = setup(EFD_AUTORESET, 3);
    expect(irqfd(s.r.proc, s.vm, s.efd, 1)).toBe(0);
    expect(s.raised(1)).toBe(1);
    expect(s.ctx.count).toBe(0n);
    expect(s.ctx.stats.autoresets).toBe(1);
  });

  it('EFD_SEMAPHORE: each signal is one interrupt and takes one', () => {
    const s = setup(EFD_SEMAPHORE, 0);
    irqfd(s.r.proc, s.vm, s.efd, 2);
    s.ctx.signal(1n);
    expect(s.raised(2)).toBe(1);
    expect(s.ctx.count).toBe(0n);
  });
});

describe('KVM_IRQFD refusals change nothing', () => {
  function unchanged(s: ReturnType<typeof setup>): string {
    return JSON.stringify({
      n: s.kvmVm.irqfds.list.map((i) => [i.gsi, i.active]),
      q: s.ctx.wqh.labels(),
      refs: s.ctx.refcount,
    });
  }

  it('in the kernel order: flags, EAGAIN, EBADF, not an eventfd, RESAMPLE, EBUSY, EFAULT', () => {
    const s = setup();
    expect(irqfd(s.r.proc, s.vm, s.efd, 0)).toBe(0);
    const other = s.r.proc.eventfd(0);
    const before = unchanged(s);
    const cases: [string, () => number, number][] = [
      ['unknown flag', () => irqfd(s.r.proc, s.vm, other, 1, 1 << 2), -EINVAL],
      [
        'unknown flag with DEASSIGN',
        () => irqfd(s.r.proc, s.vm, other, 1, KVM_IRQFD_FLAG_DEASSIGN | 4),
        -EINVAL,
      ],
      ['closed fd', () => irqfd(s.r.proc, s.vm, 99, 1), -EBADF],
      ['not an eventfd (the VM fd)', () => irqfd(s.r.proc, s.vm, s.vm, 1), -EINVAL],
      [
        'RESAMPLE (not modelled)',
        () => irqfd(s.r.proc, s.vm, other, 1, KVM_IRQFD_FLAG_RESAMPLE, s.efd),
        -EINVAL,
      ],
      ['eventfd already bound, other gsi', () => irqfd(s.r.proc, s.vm, s.efd, 7), -EBUSY],
      ['eventfd already bound, same gsi', () => irqfd(s.r.proc, s.vm, s.efd, 0), -EBUSY],
      ['short argument', () => s.r.proc.ioctl(s.vm, KVM_IRQFD, new Uint8Array(16)), -EFAULT],
      ['deassign: closed fd', () => irqfd(s.r.proc, s.vm, 99, 0, KVM_IRQFD_FLAG_DEASSIGN), -EBADF],
      ['deassign: not an eventfd', () => irqfd(s.r.proc, s.vm, s.vm, 0, KVM_IRQFD_FLAG_DEASSIGN), -EINVAL],
      [
        'deassign: wrong gsi is not an error',
        () => irqfd(s.r.proc, s.vm, s.efd, 1, KVM_IRQFD_FLAG_DEASSIGN),
        0,
      ],
    ];
    for (const [what, call, errno] of cases) {
      expect(call(), what).toBe(errno);
      expect(unchanged(s), what).toBe(before);
    }
    expect(s.kvmVm.irqfds.list).toHaveLength(1);
  });

  it('EAGAIN while the VM has no initialised interrupt controller', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const efd = r.proc.eventfd(0);
    expect(irqfd(r.proc, vm, efd, 0)).toBe(-EAGAIN);
    expect(r.kvm.vms[0]!.irqfds.list).toHaveLength(0);
    expect(eventfdCtxOfFile(r.proc.fileOf(efd)!)!.wqh.length).toBe(0);
  });
});

describe('the end of an irqfd', () => {
  it('DEASSIGN unhooks it: later signals raise nothing and stay in the counter', () => {
    const s = setup();
    irqfd(s.r.proc, s.vm, s.efd, 4);
    expect(irqfd(s.r.proc, s.vm, s.efd, 4, KVM_IRQFD_FLAG_DEASSIGN)).toBe(0);
    expect(s.kvmVm.irqfds.list).toHaveLength(0);
    expect(s.ctx.wqh.length).toBe(0);
    expect(s.ctx.refcount).toBe(1);
    s.ctx.signal(1n);
    expect(s.raised(4)).toBe(0);
    expect(s.ctx.count).toBe(1n);
    // And the eventfd can be bound again.
    expect(irqfd(s.r.proc, s.vm, s.efd, 4)).toBe(0);
  });

  it('closing the eventfd ends it (EPOLLHUP)', () => {
    const s = setup();
    irqfd(s.r.proc, s.vm, s.efd, 4);
    s.r.proc.close(s.efd);
    expect(s.kvmVm.irqfds.list).toHaveLength(0);
    expect(s.ctx.refcount).toBe(0);
  });

  it('closing the VM fd ends every irqfd, even while vCPU fds keep the VM', () => {
    const s = setup();
    irqfd(s.r.proc, s.vm, s.efd, 4);
    s.r.proc.close(s.vm);
    expect(s.r.kvm.vms).toHaveLength(1);
    expect(s.kvmVm.irqfds.list).toHaveLength(0);
    expect(s.ctx.wqh.length).toBe(0);
    s.ctx.signal(1n);
    expect(s.raised(4)).toBe(0);
  });

  it('a GSI with no SPI behind it is accepted and its signals are dropped', () => {
    const s = setup();
    expect(irqfd(s.r.proc, s.vm, s.efd, 224)).toBe(0);
    s.ctx.signal(1n);
    expect(s.kvmVm.irqfds.list[0]!.stats).toEqual({ injected: 0, dropped: 1 });
  });
});

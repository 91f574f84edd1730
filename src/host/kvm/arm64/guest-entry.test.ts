/**
 * KVM_RUN running a guest program (guest-entry.ts) through the real vCPU fd and its mmap'd
 * kvm_run page: MMIO exits and their completion, in-kernel accesses (vGIC frames, ioeventfds),
 * interrupt injection with ICC_IAR1_EL1, WFI, and the trap budget.
 */

import { describe, expect, it } from 'vitest';
import { GIC_INTID_SPURIOUS, type GuestCpuProgram, type GuestTrap } from '../../../arch/guest-cpu.ts';
import { EINTR } from '../../../uapi/errno.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../uapi/fcntl.ts';
import {
  KVM_ARM_IRQ_TYPE_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI,
  KVM_EXIT_INTR,
  KVM_EXIT_MMIO,
  KVM_IOEVENTFD,
  KVM_IRQ_LINE,
  KVM_RUN,
  KVM_RUN_EXIT_OFFSET,
  kvm_ioeventfd,
  kvm_irq_level,
  kvm_run,
  kvm_run_mmio,
} from '../../../uapi/kvm.ts';
import { armVmWithGic, GIC_DIST_BASE, kvmRig } from '../kvm-testing.ts';
import { TRAP_BUDGET } from './guest-entry.ts';
import type { Arm64Vcpu } from './vcpu.ts';

/** A program from a generator: traps are yielded, answers come back. */
function programOf(
  body: () => Generator<GuestTrap, void, number>,
  onIrq?: () => Generator<GuestTrap, void, number>,
) {
  const stack: Generator<GuestTrap, void, number>[] = [body()];
  let masked = false;
  const seen: number[] = [];
  let pendingAnswer: number | undefined;
  const p: GuestCpuProgram & { seen: number[] } = {
    seen,
    get irqUnmasked() {
      return !masked && onIrq !== undefined;
    },
    takeIrq() {
      masked = true;
      stack.push(onIrq!());
      pendingAnswer = undefined;
    },
    resume(answer: number): GuestTrap {
      let a = answer;
      if (stack.length > 1 && pendingAnswer === undefined) {
        // First resume of the handler: the answer belongs to the interrupted code.
        pendingAnswer = a;
        a = 0;
      }
      for (;;) {
        const g = stack[stack.length - 1];
        if (g === undefined) return { kind: 'wfi' };
        const r = g.next(a);
        if (!r.done) return r.value;
        stack.pop();
        if (stack.length === 1) {
          masked = false;
          a = pendingAnswer ?? 0;
          pendingAnswer = undefined;
        } else a = 0;
      }
    },
  };
  return p;
}

function setup() {
  const r = kvmRig();
  const { vm, vcpus } = armVmWithGic(r, 2);
  const kvmVm = r.kvm.vms[0]!;
  const vcpu = (i: number) => kvmVm.vcpuList[i]!.arch as Arm64Vcpu;
  const runVa = r.proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0, vcpus[0]!, 0);
  const run = {
    exitReason: () =>
      new DataView(r.proc.mm.readUser(runVa + kvm_run.offsetof('exit_reason'), 4)!.buffer).getUint32(0, true),
    mmio: () => kvm_run_mmio.decode(r.proc.mm.readUser(runVa + KVM_RUN_EXIT_OFFSET, kvm_run_mmio.size)!),
    setData: (bytes: number[]) => {
      const b = new Uint8Array(8);
      b.set(bytes);
      r.proc.mm.writeUser(runVa + KVM_RUN_EXIT_OFFSET + kvm_run_mmio.offsetof('data'), b);
    },
  };
  const kvmRun = () => r.proc.ioctl(vcpus[0]!, KVM_RUN, 0);
  return { r, vm, vcpus, vcpu, run, kvmRun };
}

describe('KVM_RUN runs the loaded guest program (guest-entry.ts)', () => {
  it('an MMIO write exits with KVM_EXIT_MMIO and the stored bytes; a read is completed from mmio.data at the next entry', () => {
    const s = setup();
    const got: number[] = [];
    s.vcpu(0).guest.load(
      programOf(function* () {
        yield { kind: 'mmio-write', gpa: 0x0905_0020, size: 4, value: 0x1234_5678 };
        got.push(yield { kind: 'mmio-read', gpa: 0x0905_0024, size: 8 });
        for (;;) yield { kind: 'wfi' };
      }),
    );
    expect(s.kvmRun()).toBe(0);
    expect(s.run.exitReason()).toBe(KVM_EXIT_MMIO);
    const w = s.run.mmio();
    expect([w.phys_addr, w.len, w.is_write, [...w.data]]).toEqual([
      0x0905_0020n,
      4,
      1,
      [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0],
    ]);
    expect(s.kvmRun()).toBe(0);
    const rd = s.run.mmio();
    expect([rd.phys_addr, rd.len, rd.is_write]).toEqual([0x0905_0024n, 8, 0]);
    s.run.setData([1, 2, 3, 4, 5, 6, 0, 0]);
    // The next entry completes the load, then the guest waits: -EINTR with KVM_EXIT_INTR.
    expect(s.kvmRun()).toBe(-EINTR);
    expect(s.run.exitReason()).toBe(KVM_EXIT_INTR);
    expect(got).toEqual([0x0605_0403_0201]);
    expect(s.vcpu(0).guest.idle).toBe(true);
    expect(s.vcpu(0).guest.stats).toMatchObject({ mmioExits: 2, idleExits: 1 });
  });

  it('vGIC frames are handled in the kernel (read as zero); an ioeventfd write never leaves the kernel', () => {
    const s = setup();
    const efd = s.r.proc.eventfd(0);
    expect(
      s.r.proc.ioctl(
        s.vm,
        KVM_IOEVENTFD,
        kvm_ioeventfd.encode({ fd: efd, addr: 0x1000_0044n, len: 4, flags: 0, datamatch: 0n }),
      ),
    ).toBe(0);
    const got: number[] = [];
    s.vcpu(0).guest.load(
      programOf(function* () {
        got.push(yield { kind: 'mmio-read', gpa: GIC_DIST_BASE + 4, size: 4 });
        yield { kind: 'mmio-write', gpa: GIC_DIST_BASE + 0x100, size: 4, value: 0xffff_ffff };
        yield { kind: 'mmio-write', gpa: 0x1000_0044, size: 4, value: 7 };
        for (;;) yield { kind: 'wfi' };
      }),
    );
    expect(s.kvmRun()).toBe(-EINTR);
    expect(got).toEqual([0]);
    const buf = new Uint8Array(8);
    expect(s.r.proc.read(efd, buf)).toBe(8);
    expect(buf[0]).toBe(1);
    expect(s.vcpu(0).guest.stats).toMatchObject({ mmioExits: 0, mmioInKernel: 3 });
  });

  it('a pending SPI is taken when unmasked: ICC_IAR1_EL1 names it, acknowledges it, then reads 1023', () => {
    const s = setup();
    const seen: number[] = [];
    s.vcpu(0).guest.load(
      programOf(
        function* () {
          for (;;) yield { kind: 'wfi' };
        },
        function* () {
          const intid = yield { kind: 'sysreg-read', reg: 'ICC_IAR1_EL1' };
          seen.push(intid);
          yield { kind: 'sysreg-write', reg: 'ICC_EOIR1_EL1', value: intid };
          seen.push(yield { kind: 'sysreg-read', reg: 'ICC_IAR1_EL1' });
        },
      ),
    );
    expect(s.kvmRun()).toBe(-EINTR);
    expect(seen).toEqual([]);
    const irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | 80;
    expect(s.r.proc.ioctl(s.vm, KVM_IRQ_LINE, kvm_irq_level.encode({ irq, level: 1 }))).toBe(0);
    expect(s.r.proc.ioctl(s.vm, KVM_IRQ_LINE, kvm_irq_level.encode({ irq, level: 0 }))).toBe(0);
    expect(s.kvmRun()).toBe(-EINTR);
    expect(seen).toEqual([80, GIC_INTID_SPURIOUS]);
    expect(s.vcpu(0).guest.stats.irqsTaken).toBe(1);
  });

  it('the answer of an interrupted MMIO read reaches the interrupted code after the handler', () => {
    const s = setup();
    const order: string[] = [];
    s.vcpu(0).guest.load(
      programOf(
        function* () {
          const v = yield { kind: 'mmio-read', gpa: 0x0905_0000, size: 4 };
          order.push(`main got ${v}`);
          for (;;) yield { kind: 'wfi' };
        },
        function* () {
          const intid = yield { kind: 'sysreg-read', reg: 'ICC_IAR1_EL1' };
          order.push(`irq ${intid}`);
        },
      ),
    );
    expect(s.kvmRun()).toBe(0);
    s.run.setData([42]);
    const irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | 35;
    s.r.proc.ioctl(s.vm, KVM_IRQ_LINE, kvm_irq_level.encode({ irq, level: 1 }));
    expect(s.kvmRun()).toBe(-EINTR);
    expect(order).toEqual(['irq 35', 'main got 42']);
  });

  it('a guest spinning on traps is preempted after the budget; a vCPU without a program returns -EINTR at once', () => {
    const s = setup();
    s.vcpu(0).guest.load(
      programOf(function* () {
        for (;;) yield { kind: 'sysreg-write', reg: 'ICC_PMR_EL1', value: 0xff };
      }),
    );
    expect(s.kvmRun()).toBe(-EINTR);
    expect(s.vcpu(0).guest.stats).toMatchObject({ preemptions: 1, traps: TRAP_BUDGET });
    expect(s.r.proc.ioctl(s.vcpus[1]!, KVM_RUN, 0)).toBe(-EINTR);
    expect(s.vcpu(1).guest.stats.entries).toBe(0);
  });
});

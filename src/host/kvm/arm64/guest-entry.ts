/**
 * Running guest code on an arm64 vCPU: the part of KVM_RUN between guest entry and the return to
 * user space (arch/arm64/kvm/arm.c kvm_arch_vcpu_ioctl_run, handle_exit.c, mmio.c), for the guest
 * programs of `src/arch/guest-cpu.ts`.
 *
 * On entry, a pending MMIO read is completed from `kvm_run.mmio.data` (kvm_handle_mmio_return).
 * Then, trap by trap:
 * - before resuming the program, a pending interrupt for this vCPU is injected when the program
 *   has IRQs unmasked (the vGIC's list registers, reduced);
 * - an MMIO access inside the vGIC's distributor or redistributor frames is handled in the kernel
 *   (Decision: those registers are not modelled — they read as zero and ignore writes; every SPI
 *   is enabled, group 1, equal priority, and targets vCPU 0, as GICD_IROUTER's reset value does);
 * - an MMIO write an ioeventfd matches signals it and the guest continues;
 * - any other MMIO access fills `kvm_run.mmio` and returns to user space with KVM_EXIT_MMIO;
 * - ICC_IAR1_EL1 acknowledges the highest-priority pending interrupt (Decision: the lowest INTID,
 *   private ones first) or returns 1023; ICC_EOIR1_EL1 ends it (the model has no active state);
 *   ICC_PMR_EL1 and ICC_IGRPEN1_EL1 are accepted and ignored;
 * - WFI with an interrupt pending continues at once; otherwise KVM_RUN returns -EINTR with
 *   KVM_EXIT_INTR. Decision: Linux would sleep in kvm_vcpu_block until an interrupt or a signal;
 *   vsva's VMM has no threads, so the vCPU thread comes back to its loop as a signal (QEMU's
 *   SIG_IPI kick) would bring it, and enters again when there is work.
 * - after `TRAP_BUDGET` traps in one KVM_RUN the vCPU also returns -EINTR (a time slice), so a
 *   guest spinning on a register can never hang the model.
 */

import { leBytes, leValue } from '../../../arch/bits.ts';
import { GIC_INTID_SPURIOUS, type GuestCpuProgram, type GuestTrap } from '../../../arch/guest-cpu.ts';
import { EINTR } from '../../../uapi/errno.ts';
import {
  KVM_EXIT_INTR,
  KVM_EXIT_MMIO,
  KVM_RUN_EXIT_OFFSET,
  kvm_run,
  kvm_run_mmio,
} from '../../../uapi/kvm.ts';
import type { KvmRunArea, KvmVcpuIo } from '../arch.ts';

/** Traps one KVM_RUN may run before it returns to user space. */
export const TRAP_BUDGET = 100_000;

/** What guest entry needs from the VM's interrupt controller and in-kernel devices. */
export interface Arm64GuestIrq {
  /** The highest-priority pending interrupt for vCPU `vcpu` (its index), or 1023. */
  highestPending(vcpu: number): number;
  /** Acknowledges `intid` for vCPU `vcpu` (its pending state clears). */
  acknowledge(vcpu: number, intid: number): void;
  /** Whether [gpa, gpa+size) is an in-kernel device (the vGIC's frames). */
  inKernelMmio(gpa: number, size: number): boolean;
}

export interface GuestEntryStats {
  /** KVM_RUN calls that entered the guest. */
  entries: number;
  /** Traps the program yielded. */
  traps: number;
  mmioExits: number;
  /** MMIO accesses handled in the kernel (vGIC frames, ioeventfds). */
  mmioInKernel: number;
  sysregs: number;
  irqsTaken: number;
  /** KVM_RUN returns because the guest waited for an interrupt with none pending. */
  idleExits: number;
  /** KVM_RUN returns because the trap budget ran out. */
  preemptions: number;
}

/** The MMIO read whose value user space will put in kvm_run.mmio.data. */
interface PendingRead {
  readonly len: number;
}

export class Arm64GuestEntry {
  program: GuestCpuProgram | undefined;
  /** The program is waiting in WFI (it returned to user space from there). */
  idle = false;
  readonly stats: GuestEntryStats = {
    entries: 0,
    traps: 0,
    mmioExits: 0,
    mmioInKernel: 0,
    sysregs: 0,
    irqsTaken: 0,
    idleExits: 0,
    preemptions: 0,
  };
  private pendingRead: PendingRead | undefined;
  /** The answer the program's previous trap is waiting for. */
  private answer = 0;

  /** Loads the program this vCPU runs (the guest kernel image, in vsva's terms). */
  load(program: GuestCpuProgram | undefined): void {
    this.program = program;
    this.pendingRead = undefined;
    this.answer = 0;
    this.idle = false;
  }

  /** Runs the program until an exit to user space. 0 (KVM_EXIT_MMIO) or -EINTR (KVM_EXIT_INTR). */
  enter(vcpu: number, run: KvmRunArea, io: KvmVcpuIo, irq: Arm64GuestIrq): number {
    const program = this.program!;
    this.stats.entries++;
    if (this.pendingRead !== undefined) {
      this.answer = leValue(
        run.read(KVM_RUN_EXIT_OFFSET + kvm_run_mmio.offsetof('data'), this.pendingRead.len),
      );
      this.pendingRead = undefined;
    }
    for (let n = 0; n < TRAP_BUDGET; n++) {
      if (program.irqUnmasked && irq.highestPending(vcpu) !== GIC_INTID_SPURIOUS) {
        this.stats.irqsTaken++;
        program.takeIrq();
      }
      const answer = this.answer;
      this.answer = 0;
      const t = program.resume(answer);
      this.stats.traps++;
      const r = this.trap(t, vcpu, run, io, irq);
      if (r !== undefined) return r;
    }
    this.stats.preemptions++;
    run.setU32(kvm_run.offsetof('exit_reason'), KVM_EXIT_INTR);
    return -EINTR;
  }

  /** Handles one trap: undefined to go on running the guest, or KVM_RUN's return value. */
  private trap(
    t: GuestTrap,
    vcpu: number,
    run: KvmRunArea,
    io: KvmVcpuIo,
    irq: Arm64GuestIrq,
  ): number | undefined {
    this.idle = false;
    switch (t.kind) {
      case 'mmio-read':
        if (irq.inKernelMmio(t.gpa, t.size)) {
          this.stats.mmioInKernel++;
          this.answer = 0;
          return undefined;
        }
        this.pendingRead = { len: t.size };
        return this.mmioExit(run, t.gpa, t.size, false, 0);
      case 'mmio-write': {
        if (irq.inKernelMmio(t.gpa, t.size)) {
          this.stats.mmioInKernel++;
          return undefined;
        }
        if (io.ioWrite('mmio', t.gpa, leBytes(t.value, t.size))) {
          this.stats.mmioInKernel++;
          return undefined;
        }
        return this.mmioExit(run, t.gpa, t.size, true, t.value);
      }
      case 'sysreg-read':
        this.stats.sysregs++;
        if (t.reg === 'ICC_IAR1_EL1') {
          const intid = irq.highestPending(vcpu);
          if (intid !== GIC_INTID_SPURIOUS) irq.acknowledge(vcpu, intid);
          this.answer = intid;
        }
        return undefined;
      case 'sysreg-write':
        this.stats.sysregs++;
        return undefined;
      case 'wfi':
        if (irq.highestPending(vcpu) !== GIC_INTID_SPURIOUS) return undefined;
        this.idle = true;
        this.stats.idleExits++;
        run.setU32(kvm_run.offsetof('exit_reason'), KVM_EXIT_INTR);
        return -EINTR;
    }
  }

  private mmioExit(run: KvmRunArea, gpa: number, len: number, isWrite: boolean, value: number): number {
    this.stats.mmioExits++;
    run.write(
      KVM_RUN_EXIT_OFFSET,
      kvm_run_mmio.encode({
        phys_addr: BigInt(gpa),
        data: isWrite ? leBytes(value, 8) : new Uint8Array(8),
        len,
        is_write: isWrite ? 1 : 0,
      }),
    );
    run.setU32(kvm_run.offsetof('exit_reason'), KVM_EXIT_MMIO);
    return 0;
  }
}

/** The little-endian value of `b` (up to 8 bytes; callers keep values below 2^53). */

/**
 * An arm64 vCPU (arch/arm64/kvm/{arm.c,guest.c,reset.c}, Linux 5.10) as state: its target and
 * features (KVM_ARM_VCPU_INIT), its core registers (struct kvm_regs, reached by
 * KVM_GET/SET_ONE_REG with KVM_REG_ARM_CORE ids and listed by KVM_GET_REG_LIST), its power state
 * (KVM_GET/SET_MP_STATE) and whether it has run. No instruction runs: KVM_RUN validates what
 * Linux validates on entry and returns as a signal would end it (see `run`).
 *
 * KVM_ARM_VCPU_INIT: target other than KVM_ARM_TARGET_GENERIC_V8 → EINVAL; a second INIT with
 * another target or other features → EINVAL; a feature bit ≥ KVM_VCPU_MAX_FEATURES → ENOENT; a
 * feature this host lacks (EL1_32BIT, PMU_V3, SVE, PTRAUTH_*) → EINVAL. It resets the vCPU: core
 * registers zero except PSTATE = EL1h with D, A, I, F masked (VCPU_RESET_PSTATE_EL1), and powered
 * off if KVM_ARM_VCPU_POWER_OFF was asked.
 *
 * ONE_REG, in Linux's order: vCPU not initialised → ENOEXEC; argument → EFAULT; id not an arm64
 * one → EINVAL; not a core register → ENOENT (system, firmware, timer and SVE registers are not
 * modelled); a core offset past struct kvm_regs → ENOENT; an offset that is not a register's start,
 * or a size that is not its size → EINVAL; the value → EFAULT; for PSTATE a mode other than EL0t,
 * EL1t, EL1h (this vCPU has no AArch32) → EINVAL.
 *
 * KVM_RUN runs the guest program loaded into the vCPU (`guest-entry.ts`: MMIO exits, in-kernel
 * GIC system registers, interrupts, WFI) when there is one and the vCPU is powered on.
 *
 * Decisions: KVM_RUN on an initialised vCPU with no guest program returns -EINTR with exit_reason
 * KVM_EXIT_INTR — what a run interrupted at once by a signal gives; its first
 * success marks the vCPU as having run (from then on no interrupt controller can be created and
 * the vGIC's resources are checked). A refused KVM_RUN changes nothing; Linux marks the vCPU as
 * having run before the vGIC check can fail.
 */

import { E2BIG, EFAULT, EINTR, EINVAL, ENOENT, ENOEXEC } from '../../../uapi/errno.ts';
import {
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_ARM_VCPU_INIT,
  KVM_ARM_VCPU_POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2,
  KVM_EXIT_INTR,
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_GET_REG_LIST,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_STOPPED,
  KVM_REG_ARCH_MASK,
  KVM_REG_ARM_COPROC_MASK,
  KVM_REG_ARM_CORE,
  KVM_REG_ARM64,
  KVM_REG_SIZE_MASK,
  KVM_REG_SIZE_U32,
  KVM_REG_SIZE_U64,
  KVM_REG_SIZE_U128,
  KVM_RUN,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  KVM_VCPU_MAX_FEATURES,
  kvm_mp_state,
  kvm_one_reg,
  kvm_reg_list,
  kvm_regs_arm64,
  kvm_run,
  kvm_vcpu_init,
  kvmRegSize,
  PSR_AA32_MODE_MASK,
  PSR_MODE_EL0t,
  PSR_MODE_EL1h,
  PSR_MODE_EL1t,
  VCPU_RESET_PSTATE_EL1,
} from '../../../uapi/kvm.ts';
import type { Process } from '../../kernel/process.ts';
import { type IoctlArg, UserPtr } from '../../uaccess.ts';
import type { KvmRunArea, KvmVcpuArch, KvmVcpuIo } from '../arch.ts';
import { Arm64GuestEntry, type Arm64GuestIrq } from './guest-entry.ts';

/** Feature bits this host's vCPUs accept. */
const SUPPORTED_FEATURES = (1 << KVM_ARM_VCPU_POWER_OFF) | (1 << KVM_ARM_VCPU_PSCI_0_2);
/** sizeof(struct kvm_regs) / sizeof(u32) */
const NR_CORE_WORDS = kvm_regs_arm64.size / 4;

/** What the vCPU needs from its VM. */
export interface Arm64VcpuHost {
  /** kvm_vgic_map_resources at a first run: 0 or -errno (0 when there is no in-kernel vGIC). */
  firstRunCheck(): number;
  /** The vCPU is destroyed (or undone before going online). */
  released(v: Arm64Vcpu): void;
  /** The interrupt controller and in-kernel devices as guest code reaches them. */
  readonly irq: Arm64GuestIrq;
  /** The vCPU's index in creation order (how the vGIC names it). */
  indexOf(v: Arm64Vcpu): number;
}

/** The byte size of the core register starting at word offset `off`, or undefined. */
export function coreRegSize(off: number): number | undefined {
  const byte = off * 4;
  const f = kvm_regs_arm64.fields;
  const inArray = (start: number, count: number, step: number): boolean =>
    byte >= start && byte < start + count * step && (byte - start) % step === 0;
  if (inArray(f.regs.offset, 31, 8)) return 8;
  if (byte === f.sp.offset || byte === f.pc.offset || byte === f.pstate.offset) return 8;
  if (byte === f.sp_el1.offset || byte === f.elr_el1.offset || inArray(f.spsr.offset, 5, 8)) return 8;
  if (inArray(f.vregs.offset, 32, 16)) return 16;
  if (byte === f.fpsr.offset || byte === f.fpcr.offset) return 4;
  return undefined;
}

const SIZE_BITS: Readonly<Record<number, bigint>> = {
  4: KVM_REG_SIZE_U32,
  8: KVM_REG_SIZE_U64,
  16: KVM_REG_SIZE_U128,
};

/** The KVM_REG_ARM_CORE id of the register at word offset `off` (which must be one). */
export function coreRegId(off: number): bigint {
  return KVM_REG_ARM64 | SIZE_BITS[coreRegSize(off)!]! | KVM_REG_ARM_CORE | BigInt(off);
}

/** Every core register id, in offset order (what KVM_GET_REG_LIST lists). */
export const CORE_REG_IDS: readonly bigint[] = Array.from({ length: NR_CORE_WORDS }, (_, off) => off)
  .filter((off) => coreRegSize(off) !== undefined)
  .map(coreRegId);

export class Arm64Vcpu implements KvmVcpuArch {
  readonly id: number;
  readonly run: KvmRunArea;
  private readonly host: Arm64VcpuHost;
  /** -1 until KVM_ARM_VCPU_INIT. */
  target = -1;
  features = 0;
  /** struct kvm_regs, as the ONE_REG interface sees it. */
  readonly regs = new Uint8Array(kvm_regs_arm64.size);
  powerOff = false;
  hasRunOnce = false;
  /** The IRQ and FIQ inputs KVM_IRQ_LINE (type CPU) drives when there is no in-kernel vGIC. */
  readonly cpuLines: [irq: boolean, fiq: boolean] = [false, false];

  /** The guest code this vCPU runs, if any (see guest-entry.ts). */
  readonly guest = new Arm64GuestEntry();
  private readonly io: KvmVcpuIo;

  constructor(id: number, run: KvmRunArea, host: Arm64VcpuHost, io: KvmVcpuIo) {
    this.id = id;
    this.run = run;
    this.host = host;
    this.io = io;
  }

  get initialized(): boolean {
    return this.target >= 0;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case KVM_RUN:
        return this.runOnce();
      case KVM_ARM_VCPU_INIT: {
        const init = arg.ptr.copyStruct(kvm_vcpu_init);
        if (init === undefined) return -EFAULT;
        return this.init(init.target, init.features);
      }
      case KVM_GET_ONE_REG:
      case KVM_SET_ONE_REG: {
        if (!this.initialized) return -ENOEXEC;
        const r = arg.ptr.copyStruct(kvm_one_reg);
        if (r === undefined) return -EFAULT;
        const uaddr = UserPtr.fromU64(proc.mm, r.addr);
        return request === KVM_GET_ONE_REG ? this.getReg(r.id, uaddr) : this.setReg(r.id, uaddr);
      }
      case KVM_GET_REG_LIST:
        return this.regList(arg.ptr);
      case KVM_GET_MP_STATE:
        return arg.ptr.copyTo(
          kvm_mp_state.encode({ mp_state: this.powerOff ? KVM_MP_STATE_STOPPED : KVM_MP_STATE_RUNNABLE }),
        )
          ? 0
          : -EFAULT;
      case KVM_SET_MP_STATE: {
        const v = arg.ptr.getU32();
        if (v === undefined) return -EFAULT;
        if (v !== KVM_MP_STATE_RUNNABLE && v !== KVM_MP_STATE_STOPPED) return -EINVAL;
        this.powerOff = v === KVM_MP_STATE_STOPPED;
        return 0;
      }
      default:
        // kvm_arch_vcpu_ioctl's default, and KVM_GET/SET_REGS, SREGS and FPU on arm64.
        return -EINVAL;
    }
  }

  /** kvm_arch_vcpu_ioctl_run up to guest entry. */
  private runOnce(): number {
    if (!this.initialized) return -ENOEXEC;
    if (!this.hasRunOnce) {
      const r = this.host.firstRunCheck();
      if (r !== 0) return r;
      this.hasRunOnce = true;
    }
    if (this.run.u8(kvm_run.offsetof('immediate_exit')) !== 0) return -EINTR;
    if (this.guest.program !== undefined && !this.powerOff)
      return this.guest.enter(this.host.indexOf(this), this.run, this.io, this.host.irq);
    this.run.setU32(kvm_run.offsetof('exit_reason'), KVM_EXIT_INTR);
    return -EINTR;
  }

  /** kvm_vcpu_set_target + kvm_reset_vcpu + the power-off handling of KVM_ARM_VCPU_INIT. */
  private init(target: number, features: readonly number[]): number {
    if (target !== KVM_ARM_TARGET_GENERIC_V8) return -EINVAL;
    if (this.target !== -1 && this.target !== target) return -EINVAL;
    let want = 0;
    for (let i = 0; i < features.length * 32; i++) {
      const set = ((features[i >> 5]! >>> (i & 31)) & 1) === 1;
      if (set && i >= KVM_VCPU_MAX_FEATURES) return -ENOENT;
      if (set) want |= 1 << i;
    }
    if (this.target !== -1 && want !== this.features) return -EINVAL;
    if ((want & ~SUPPORTED_FEATURES) !== 0) return -EINVAL;
    this.target = target;
    this.features = want;
    this.regs.fill(0);
    new DataView(this.regs.buffer).setUint32(kvm_regs_arm64.offsetof('pstate'), VCPU_RESET_PSTATE_EL1, true);
    this.powerOff = (want & (1 << KVM_ARM_VCPU_POWER_OFF)) !== 0;
    return 0;
  }

  /** The word offset of a core-register id, or -errno as get/set_core_reg decide it. */
  private coreOffset(id: bigint): number {
    if ((id & ~KVM_REG_SIZE_MASK) >> 32n !== KVM_REG_ARM64 >> 32n) return -EINVAL;
    if ((id & KVM_REG_ARM_COPROC_MASK) !== KVM_REG_ARM_CORE) return -ENOENT;
    const off = Number(id & ~(KVM_REG_ARCH_MASK | KVM_REG_SIZE_MASK | KVM_REG_ARM_CORE));
    const words = kvmRegSize(id) / 4;
    if (off >= NR_CORE_WORDS || off + words >= NR_CORE_WORDS) return -ENOENT;
    const size = coreRegSize(off);
    if (size === undefined || size !== kvmRegSize(id)) return -EINVAL;
    return off;
  }

  private getReg(id: bigint, uaddr: UserPtr): number {
    const off = this.coreOffset(id);
    if (off < 0) return off;
    const size = kvmRegSize(id);
    return uaddr.copyTo(this.regs.slice(off * 4, off * 4 + size)) ? 0 : -EFAULT;
  }

  private setReg(id: bigint, uaddr: UserPtr): number {
    const off = this.coreOffset(id);
    if (off < 0) return off;
    const size = kvmRegSize(id);
    const v = uaddr.copyFrom(size);
    if (v === undefined) return -EFAULT;
    if (off * 4 === kvm_regs_arm64.offsetof('pstate')) {
      const mode = v[0]! & PSR_AA32_MODE_MASK;
      if (mode !== PSR_MODE_EL0t && mode !== PSR_MODE_EL1t && mode !== PSR_MODE_EL1h) return -EINVAL;
    }
    this.regs.set(v, off * 4);
    return 0;
  }

  /** KVM_GET_REG_LIST: the count back in `n`; E2BIG when the caller's room is short. */
  private regList(ptr: UserPtr): number {
    if (!this.initialized) return -ENOEXEC;
    const list = ptr.copyStruct(kvm_reg_list);
    if (list === undefined) return -EFAULT;
    const room = list.n;
    const n = BigInt(CORE_REG_IDS.length);
    if (!ptr.copyTo(kvm_reg_list.encode({ n }))) return -EFAULT;
    if (room < n) return -E2BIG;
    const ids = new Uint8Array(CORE_REG_IDS.length * 8);
    const dv = new DataView(ids.buffer);
    for (const [i, id] of CORE_REG_IDS.entries()) dv.setBigUint64(i * 8, id, true);
    return ptr.add(kvm_reg_list.size).copyTo(ids) ? 0 : -EFAULT;
  }

  /** A 64-bit core register (for tests and the VMM's view): x0–x30 by index. */
  xreg(n: number): bigint {
    return new DataView(this.regs.buffer).getBigUint64(n * 8, true);
  }

  release(): void {
    this.host.released(this);
  }
}

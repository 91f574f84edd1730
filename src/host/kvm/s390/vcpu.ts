/**
 * An s390 vCPU of vsva's KVM (arch/s390/kvm/kvm-s390.c and interrupt.c, and the generic
 * virt/kvm/kvm_main.c steps around them): its architected state — split the way Linux keeps it
 * between kvm_run (`S390RunView`) and the SIE block (`S390ArchState`) —, its local interrupts
 * and its run state, reached through the vCPU ioctls:
 *
 * - KVM_GET/SET_REGS, _SREGS, _FPU and KVM_GET/SET_ONE_REG (the single registers);
 * - KVM_RUN: sync_regs (the PSW always, the other classes when `kvm_dirty_regs` says so), start
 *   the CPU unless user space controls the run state, run no instruction, store_regs;
 * - KVM_GET/SET_MP_STATE (STOPPED / OPERATING; SET switches the VM to user-controlled CPU state);
 * - KVM_S390_IRQ, KVM_S390_INTERRUPT, KVM_S390_GET/SET_IRQ_STATE (irq.ts);
 * - KVM_S390_NORMAL_RESET, KVM_S390_INITIAL_RESET, KVM_S390_CLEAR_RESET (resets.ts, seed-spec §4);
 * - KVM_S390_SET_INITIAL_PSW, KVM_ENABLE_CAP (CSS support), KVM_TRANSLATE (refused, as on s390).
 *
 * Every refusal returns its errno before any state changes. Not modelled (-ENOTTY):
 * KVM_S390_STORE_STATUS and KVM_S390_MEM_OP (guest memory), KVM_SET_GUEST_DEBUG,
 * KVM_S390_VCPU_FAULT, protected-virtualisation and ucontrol ioctls.
 */

import { EBUSY, EFAULT, EINTR, EINVAL, ENOBUFS, ENOTTY, ENXIO } from '../../../uapi/errno.ts';
import {
  KVM_ENABLE_CAP,
  KVM_EXIT_INTR,
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_MP_STATE_OPERATING,
  KVM_MP_STATE_STOPPED,
  KVM_RUN,
  KVM_S390_CLEAR_RESET,
  KVM_S390_INITIAL_RESET,
  KVM_S390_NORMAL_RESET,
  KVM_S390_PFAULT_TOKEN_INVALID,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  kvm_enable_cap,
  kvm_mp_state,
  kvm_one_reg,
} from '../../../uapi/kvm.ts';
import {
  KVM_CAP_S390_CSS_SUPPORT,
  KVM_GET_FPU,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_REG_S390_CLOCK_COMP,
  KVM_REG_S390_CPU_TIMER,
  KVM_REG_S390_EPOCHDIFF,
  KVM_REG_S390_GBEA,
  KVM_REG_S390_PFCOMPARE,
  KVM_REG_S390_PFSELECT,
  KVM_REG_S390_PFTOKEN,
  KVM_REG_S390_PP,
  KVM_REG_S390_TODPR,
  KVM_S390_GET_IRQ_STATE,
  KVM_S390_INT_CLOCK_COMP,
  KVM_S390_INT_CPU_TIMER,
  KVM_S390_INT_EMERGENCY,
  KVM_S390_INT_EXTERNAL_CALL,
  KVM_S390_INT_PFAULT_INIT,
  KVM_S390_INTERRUPT,
  KVM_S390_IRQ,
  KVM_S390_MCHK,
  KVM_S390_PROGRAM_INT,
  KVM_S390_RESTART,
  KVM_S390_SET_INITIAL_PSW,
  KVM_S390_SET_IRQ_STATE,
  KVM_S390_SIGP_SET_PREFIX,
  KVM_S390_SIGP_STOP,
  KVM_SET_FPU,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SYNC_ACRS,
  KVM_SYNC_ARCH0,
  KVM_SYNC_BPBC,
  KVM_SYNC_CRS,
  KVM_SYNC_DIAG318,
  KVM_SYNC_ETOKEN,
  KVM_SYNC_GPRS,
  KVM_SYNC_GSCB,
  KVM_SYNC_PFAULT,
  KVM_SYNC_PREFIX,
  KVM_SYNC_REGS_BPBC_BIT,
  KVM_SYNC_RICCB,
  KVM_SYNC_S390_VALID_FIELDS,
  KVM_SYNC_VRS,
  KVM_TRANSLATE,
  type KvmS390Irq,
  kvm_fpu,
  kvm_regs,
  kvm_s390_interrupt,
  kvm_s390_irq,
  kvm_s390_irq_state,
  kvm_s390_psw,
  kvm_sregs,
  kvm_translation,
  VCPU_IRQS_MAX_BUF,
} from '../../../uapi/kvm-s390.ts';
import type { StructValue } from '../../../uapi/layout.ts';
import type { Process } from '../../kernel/process.ts';
import { type IoctlArg, UserPtr } from '../../uaccess.ts';
import type { KvmRunArea, KvmVcpuArch } from '../arch.ts';
import { type IrqPayload, LocalInterrupts } from './irq.ts';
import { clearReset, initialReset, normalReset, type S390ResetTarget } from './resets.ts';
import { RUN, RUN_SIZE, S390RunView } from './run-area.ts';
import { clearAsyncPfQueue, cloneArchState, newArchState, type S390ArchState, setPrefix } from './state.ts';

/** What a vCPU needs from its VM. */
export interface S390VmContext {
  /** kvm->arch.user_cpu_state_ctrl: user space, not KVM, starts and stops the CPUs. */
  userCpuStateCtrl: boolean;
  /** kvm->arch.css_support (KVM_ENABLE_CAP(KVM_CAP_S390_CSS_SUPPORT) on a vCPU). */
  cssSupport: boolean;
  /** kvm_get_vcpu_by_id(kvm, id) !== NULL */
  hasVcpu(id: number): boolean;
  /** The vCPU is destroyed. */
  forgetVcpu(id: number): void;
}

/**
 * kvm_valid_regs as kvm_arch_vcpu_create sets it. Decision: vsva's guest CPU model has the
 * vector facility (so the FPRs are synchronised as VRs: KVM_SYNC_VRS, not KVM_SYNC_FPRS),
 * runtime instrumentation (64), branch-prediction blocking (82), guarded storage (133) and
 * etokens (156), so every optional class is valid.
 */
export const S390_VALID_REGS_AT_CREATE =
  KVM_SYNC_PREFIX |
  KVM_SYNC_GPRS |
  KVM_SYNC_ACRS |
  KVM_SYNC_CRS |
  KVM_SYNC_ARCH0 |
  KVM_SYNC_PFAULT |
  KVM_SYNC_DIAG318 |
  KVM_SYNC_RICCB |
  KVM_SYNC_BPBC |
  KVM_SYNC_GSCB |
  KVM_SYNC_ETOKEN |
  KVM_SYNC_VRS;

/** Everything a vCPU holds, for "nothing changed" checks and reports. */
export interface S390VcpuSnapshot {
  readonly arch: S390ArchState;
  readonly irqPending: number;
  readonly emergPending: number[];
  readonly irqPayload: IrqPayload;
  /** The s390 kvm_run bytes (2368). */
  readonly run: Uint8Array;
  readonly userCpuStateCtrl: boolean;
  readonly cssSupport: boolean;
}

// ---------------------------------------------------------------- ONE_REG table

interface OneReg {
  /** Bytes transferred (put_user/get_user of a u32 or a u64). */
  readonly size: 4 | 8;
  get(v: S390Vcpu): bigint;
  set(v: S390Vcpu, x: bigint): void;
}

/** The s390 single registers of kvm_arch_vcpu_ioctl_get/set_one_reg. */
const ONE_REGS: ReadonlyMap<bigint, OneReg> = new Map<bigint, OneReg>([
  [
    KVM_REG_S390_TODPR,
    {
      size: 4,
      get: (v) => BigInt(v.arch.todpr),
      set: (v, x) => {
        v.arch.todpr = Number(x);
      },
    },
  ],
  [KVM_REG_S390_EPOCHDIFF, u64Reg('epoch')],
  [KVM_REG_S390_CPU_TIMER, u64Reg('cputm')],
  [KVM_REG_S390_CLOCK_COMP, u64Reg('ckc')],
  [
    KVM_REG_S390_PFTOKEN,
    {
      size: 8,
      get: (v) => v.arch.pfaultToken,
      set: (v, x) => {
        v.arch.pfaultToken = x;
        if (x === KVM_S390_PFAULT_TOKEN_INVALID) clearAsyncPfQueue(v.arch);
      },
    },
  ],
  [KVM_REG_S390_PFCOMPARE, u64Reg('pfaultCompare')],
  [KVM_REG_S390_PFSELECT, u64Reg('pfaultSelect')],
  [KVM_REG_S390_PP, u64Reg('pp')],
  [KVM_REG_S390_GBEA, u64Reg('gbea')],
]);

type U64Field = 'epoch' | 'cputm' | 'ckc' | 'pfaultCompare' | 'pfaultSelect' | 'pp' | 'gbea';

function u64Reg(field: U64Field): OneReg {
  return {
    size: 8,
    get: (v) => v.arch[field],
    set: (v, x) => {
      v.arch[field] = x;
    },
  };
}

// ---------------------------------------------------------------- KVM_S390_INTERRUPT conversion

/**
 * s390int_to_s390irq: the older 16-byte interrupt struct as a kvm_s390_irq, or -EINVAL (a code
 * parameter wider than 16 bits, or a type the vCPU cannot take).
 */
export function s390intToS390irq(s: StructValue<typeof kvm_s390_interrupt.fields>): KvmS390Irq | number {
  const { type, parm, parm64 } = s;
  const irq = (u: Parameters<typeof kvm_s390_irq.encode>[0]): KvmS390Irq =>
    kvm_s390_irq.decode(kvm_s390_irq.encode({ ...u, type }));
  switch (type) {
    case KVM_S390_PROGRAM_INT:
      if ((parm & 0xffff_0000) !== 0) return -EINVAL;
      return irq({ u: { pgm: { code: parm } } });
    case KVM_S390_SIGP_SET_PREFIX:
      return irq({ u: { prefix: { address: parm } } });
    case KVM_S390_SIGP_STOP:
      return irq({ u: { stop: { flags: parm } } });
    case KVM_S390_INT_EXTERNAL_CALL:
      if ((parm & 0xffff_0000) !== 0) return -EINVAL;
      return irq({ u: { extcall: { code: parm } } });
    case KVM_S390_INT_EMERGENCY:
      if ((parm & 0xffff_0000) !== 0) return -EINVAL;
      return irq({ u: { emerg: { code: parm } } });
    case KVM_S390_MCHK:
      return irq({ u: { mchk: { mcic: parm64 } } });
    case KVM_S390_INT_PFAULT_INIT:
      return irq({ u: { ext: { ext_params: parm, ext_params2: parm64 } } });
    case KVM_S390_RESTART:
    case KVM_S390_INT_CLOCK_COMP:
    case KVM_S390_INT_CPU_TIMER:
      return irq({});
    default:
      return -EINVAL;
  }
}

// ---------------------------------------------------------------- the vCPU

export class S390Vcpu implements KvmVcpuArch, S390ResetTarget {
  readonly id: number;
  readonly vm: S390VmContext;
  readonly run: S390RunView;
  arch: S390ArchState = newArchState();
  readonly irqs = new LocalInterrupts();
  private released = false;

  /** kvm_arch_vcpu_create: a zeroed kvm_run with its valid classes; prefix 0; stopped. */
  constructor(vm: S390VmContext, id: number, area: KvmRunArea) {
    this.vm = vm;
    this.id = id;
    this.run = new S390RunView(area);
    this.run.zero(0, area.size);
    this.run.setU64(RUN.validRegs, BigInt(S390_VALID_REGS_AT_CREATE));
    setPrefix(this.arch, 0);
  }

  get userCpuStateCtrl(): boolean {
    return this.vm.userCpuStateCtrl;
  }

  get stopped(): boolean {
    return this.arch.stopped;
  }

  /** kvm_s390_vcpu_stop: enter STOPPED, dropping a pending SIGP STOP (now carried out). */
  stop(): void {
    if (this.arch.stopped) return;
    this.arch.stopped = true;
    this.irqs.clearStop();
  }

  /** kvm_s390_vcpu_start */
  start(): void {
    this.arch.stopped = false;
  }

  snapshot(): S390VcpuSnapshot {
    return {
      arch: cloneArchState(this.arch),
      irqPending: this.irqs.pending,
      emergPending: [...this.irqs.emergPending].sort((a, b) => a - b),
      irqPayload: structuredClone(this.irqs.irq),
      run: this.run.all(),
      userCpuStateCtrl: this.vm.userCpuStateCtrl,
      cssSupport: this.vm.cssSupport,
    };
  }

  /** kvm_arch_vcpu_destroy: the local interrupts go with the vCPU, and the VM forgets its id. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.irqs.clear();
    this.vm.forgetVcpu(this.id);
  }

  // ------------------------------------------------------------ dispatch

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case KVM_RUN:
        return this.kvmRun(arg);
      case KVM_GET_REGS:
        return this.getRegs(arg);
      case KVM_SET_REGS:
        return this.setRegs(arg);
      case KVM_GET_SREGS:
        return this.getSregs(arg);
      case KVM_SET_SREGS:
        return this.setSregs(arg);
      case KVM_GET_FPU:
        return this.getFpu(arg);
      case KVM_SET_FPU:
        return this.setFpu(arg);
      case KVM_TRANSLATE:
        // kvm_arch_vcpu_ioctl_translate: "not implemented yet" on s390.
        return arg.ptr.copyFrom(kvm_translation.size) === undefined ? -EFAULT : -EINVAL;
      case KVM_GET_MP_STATE:
        return this.getMpState();
      case KVM_SET_MP_STATE:
        return this.setMpState(arg);
      case KVM_GET_ONE_REG:
        return this.oneReg(proc, arg, false);
      case KVM_SET_ONE_REG:
        return this.oneReg(proc, arg, true);
      case KVM_S390_IRQ:
        return this.s390Irq(arg);
      case KVM_S390_INTERRUPT:
        return this.s390Interrupt(arg);
      case KVM_S390_SET_IRQ_STATE:
        return this.setIrqState(proc, arg);
      case KVM_S390_GET_IRQ_STATE:
        return this.getIrqState(proc, arg);
      case KVM_S390_NORMAL_RESET:
        normalReset(this);
        return 0;
      case KVM_S390_INITIAL_RESET:
        initialReset(this);
        return 0;
      case KVM_S390_CLEAR_RESET:
        clearReset(this);
        return 0;
      case KVM_S390_SET_INITIAL_PSW:
        return this.setInitialPsw(arg);
      case KVM_ENABLE_CAP:
        return this.enableCap(arg);
      default:
        return -ENOTTY;
    }
  }

  // ------------------------------------------------------------ KVM_RUN

  /**
   * kvm_arch_vcpu_ioctl_run. Checks, in Linux's order: a non-zero argument (kvm_vcpu_ioctl:
   * -EINVAL), `immediate_exit` (-EINTR, nothing synchronised), valid or dirty bits s390 does not
   * know (-EINVAL), a stopped CPU under user-controlled CPU state (-EINVAL). Then the CPU starts
   * (unless user space controls the state), the registers are loaded (sync_regs), and — no
   * instruction running in vsva — the vCPU leaves at once.
   *
   * Decision: the exit is the one a pending signal causes: exit_reason KVM_EXIT_INTR and
   * -EINTR, with the registers stored back into kvm_run (store_regs) as on every exit. Pending
   * interrupts stay pending (delivering one would write the guest's lowcore).
   */
  private kvmRun(arg: IoctlArg): number {
    if (arg.value !== 0) return -EINVAL;
    const r = this.run;
    if (r.u8(RUN.immediateExit) !== 0) return -EINTR;
    const unknown = ~BigInt(KVM_SYNC_S390_VALID_FIELDS) & 0xffff_ffff_ffff_ffffn;
    if ((r.u64(RUN.validRegs) & unknown) !== 0n || (r.u64(RUN.dirtyRegs) & unknown) !== 0n) return -EINVAL;
    if (!this.vm.userCpuStateCtrl) this.start();
    else if (this.arch.stopped) return -EINVAL;
    this.syncRegs();
    r.setU32(RUN.exitReason, KVM_EXIT_INTR);
    this.storeRegs();
    return -EINTR;
  }

  /** sync_regs + sync_regs_fmt2: kvm_run → SIE block. */
  private syncRegs(): void {
    const r = this.run;
    const a = this.arch;
    const dirty = Number(r.u64(RUN.dirtyRegs) & 0xffff_ffffn);
    if (dirty & KVM_SYNC_PREFIX) setPrefix(a, r.u64(RUN.prefix));
    if (dirty & KVM_SYNC_CRS) a.gcr = r.u64s(RUN.crs, 16);
    if (dirty & KVM_SYNC_ARCH0) {
      a.cputm = r.u64(RUN.cputm);
      a.ckc = r.u64(RUN.ckc);
    }
    // GPRs, ACRs, VRs, FPC, riccb, gscb and etoken live in kvm_run: nothing to copy. Decision:
    // the FPC is taken as written (Linux zeroes one the hardware's SFPC refuses; vsva's machine
    // accepts every value).
    a.pswMask = r.u64(RUN.pswMask);
    a.pswAddr = r.u64(RUN.pswAddr);
    if (dirty & KVM_SYNC_ARCH0) {
      a.todpr = Number(r.u64(RUN.todpr) & 0xffff_ffffn);
      a.pp = r.u64(RUN.pp);
      a.gbea = r.u64(RUN.gbea);
    }
    if (dirty & KVM_SYNC_PFAULT) {
      a.pfaultToken = r.u64(RUN.pft);
      a.pfaultSelect = r.u64(RUN.pfs);
      a.pfaultCompare = r.u64(RUN.pfc);
      if (a.pfaultToken === KVM_S390_PFAULT_TOKEN_INVALID) clearAsyncPfQueue(a);
    }
    if (dirty & KVM_SYNC_DIAG318) a.diag318 = r.u64(RUN.diag318);
    if (dirty & KVM_SYNC_BPBC) a.bpbc = (r.u8(RUN.bpbc) & KVM_SYNC_REGS_BPBC_BIT) !== 0;
    r.setU64(RUN.dirtyRegs, 0n);
  }

  /** store_regs + store_regs_fmt2: SIE block → kvm_run. */
  private storeRegs(): void {
    const r = this.run;
    const a = this.arch;
    r.setU64(RUN.pswMask, a.pswMask);
    r.setU64(RUN.pswAddr, a.pswAddr);
    r.setU64(RUN.prefix, BigInt(a.prefix));
    r.setU64s(RUN.crs, a.gcr);
    r.setU64(RUN.cputm, a.cputm);
    r.setU64(RUN.ckc, a.ckc);
    r.setU64(RUN.pft, a.pfaultToken);
    r.setU64(RUN.pfs, a.pfaultSelect);
    r.setU64(RUN.pfc, a.pfaultCompare);
    r.setU64(RUN.todpr, BigInt(a.todpr));
    r.setU64(RUN.pp, a.pp);
    r.setU64(RUN.gbea, a.gbea);
    const b = r.u8(RUN.bpbc);
    r.setU8(RUN.bpbc, a.bpbc ? b | KVM_SYNC_REGS_BPBC_BIT : b & ~KVM_SYNC_REGS_BPBC_BIT);
    r.setU64(RUN.diag318, a.diag318);
  }

  // ------------------------------------------------------------ register ioctls

  private getRegs(arg: IoctlArg): number {
    const out = kvm_regs.encode({ gprs: this.run.u64s(RUN.gprs, 16) });
    return arg.ptr.copyTo(out) ? 0 : -EFAULT;
  }

  private setRegs(arg: IoctlArg): number {
    const regs = arg.ptr.copyStruct(kvm_regs);
    if (regs === undefined) return -EFAULT;
    this.run.setU64s(RUN.gprs, regs.gprs);
    return 0;
  }

  /** The access registers from kvm_run, the control registers from the SIE block. */
  private getSregs(arg: IoctlArg): number {
    const acrs = this.acrs();
    const out = kvm_sregs.encode({ acrs, crs: this.arch.gcr });
    return arg.ptr.copyTo(out) ? 0 : -EFAULT;
  }

  private setSregs(arg: IoctlArg): number {
    const sregs = arg.ptr.copyStruct(kvm_sregs);
    if (sregs === undefined) return -EFAULT;
    this.run.setBytes(RUN.acrs, kvm_sregs.encode({ acrs: sregs.acrs }).subarray(0, RUN_SIZE.acrs));
    this.arch.gcr = [...sregs.crs];
    return 0;
  }

  private acrs(): number[] {
    const dv = new DataView(this.run.bytes(RUN.acrs, RUN_SIZE.acrs).buffer);
    return Array.from({ length: 16 }, (_, i) => dv.getUint32(i * 4, true));
  }

  /** FPR n is the first doubleword of VR n (convert_vx_to_fp). */
  private getFpu(arg: IoctlArg): number {
    const fprs = Array.from({ length: 16 }, (_, n) => this.run.u64(RUN.vrs + 16 * n));
    const out = kvm_fpu.encode({ fpc: this.run.u32(RUN.fpc), fprs });
    return arg.ptr.copyTo(out) ? 0 : -EFAULT;
  }

  /** convert_fp_to_vx: the FPRs replace the VRs' first doublewords; their second ones stay. */
  private setFpu(arg: IoctlArg): number {
    const fpu = arg.ptr.copyStruct(kvm_fpu);
    if (fpu === undefined) return -EFAULT;
    this.run.setU32(RUN.fpc, fpu.fpc);
    fpu.fprs.forEach((f, n) => {
      this.run.setU64(RUN.vrs + 16 * n, f);
    });
    return 0;
  }

  // ------------------------------------------------------------ ONE_REG

  /**
   * KVM_GET/SET_ONE_REG: -EFAULT for the struct or the value, -EINVAL for an id s390 does not
   * have. Decision: SET reads the value before storing it, so a faulting address leaves the
   * register as it was (Linux get_user()s straight into the register).
   */
  private oneReg(proc: Process, arg: IoctlArg, set: boolean): number {
    const reg = arg.ptr.copyStruct(kvm_one_reg);
    if (reg === undefined) return -EFAULT;
    const spec = ONE_REGS.get(reg.id);
    if (spec === undefined) return -EINVAL;
    const ptr = UserPtr.fromU64(proc.mm, reg.addr);
    if (set) {
      const x = spec.size === 4 ? ptr.getU32() : ptr.getU64();
      if (x === undefined) return -EFAULT;
      spec.set(this, BigInt(x));
      return 0;
    }
    const x = spec.get(this);
    const ok = spec.size === 4 ? ptr.putU32(Number(x)) : ptr.putU64(x);
    return ok ? 0 : -EFAULT;
  }

  // ------------------------------------------------------------ run state

  /**
   * KVM_GET_MP_STATE on s390 returns the state as the ioctl's *result* (5 STOPPED or 7
   * OPERATING) and writes nothing: kvm_arch_vcpu_ioctl_get_mpstate returns it instead of filling
   * the struct, and kvm_vcpu_ioctl passes any non-zero result straight back. Modelled as Linux
   * does it (5.6 to 6.x).
   */
  private getMpState(): number {
    return this.arch.stopped ? KVM_MP_STATE_STOPPED : KVM_MP_STATE_OPERATING;
  }

  /**
   * KVM_SET_MP_STATE. Linux switches the VM to user-controlled CPU state *before* looking at the
   * state, so an unsupported state (-ENXIO: LOAD without protected virtualisation, CHECK_STOP,
   * anything else) still leaves the switch made — the one refusal here that changes something,
   * kept because it is the ioctl's documented side effect.
   */
  private setMpState(arg: IoctlArg): number {
    const mp = arg.ptr.copyStruct(kvm_mp_state);
    if (mp === undefined) return -EFAULT;
    this.vm.userCpuStateCtrl = true;
    switch (mp.mp_state) {
      case KVM_MP_STATE_STOPPED:
        this.stop();
        return 0;
      case KVM_MP_STATE_OPERATING:
        this.start();
        return 0;
      default:
        return -ENXIO;
    }
  }

  /** KVM_S390_SET_INITIAL_PSW: only a stopped CPU (else -EBUSY); it goes to kvm_run's PSW. */
  private setInitialPsw(arg: IoctlArg): number {
    const psw = arg.ptr.copyStruct(kvm_s390_psw);
    if (psw === undefined) return -EFAULT;
    if (!this.arch.stopped) return -EBUSY;
    this.run.setU64(RUN.pswMask, psw.mask);
    this.run.setU64(RUN.pswAddr, psw.addr);
    return 0;
  }

  /** KVM_ENABLE_CAP on a vCPU: flags must be 0; only KVM_CAP_S390_CSS_SUPPORT exists. */
  private enableCap(arg: IoctlArg): number {
    const cap = arg.ptr.copyStruct(kvm_enable_cap);
    if (cap === undefined) return -EFAULT;
    if (cap.flags !== 0) return -EINVAL;
    if (cap.cap !== KVM_CAP_S390_CSS_SUPPORT) return -EINVAL;
    this.vm.cssSupport = true;
    return 0;
  }

  // ------------------------------------------------------------ interrupts

  private injectContext() {
    return { stopped: this.arch.stopped, vcpuExists: (id: number) => this.vm.hasVcpu(id) };
  }

  /** KVM_S390_IRQ */
  private s390Irq(arg: IoctlArg): number {
    const irq = arg.ptr.copyStruct(kvm_s390_irq);
    if (irq === undefined) return -EFAULT;
    return this.irqs.inject(irq, this.injectContext());
  }

  /** KVM_S390_INTERRUPT on a vCPU: the older struct, converted, then injected. */
  private s390Interrupt(arg: IoctlArg): number {
    const s = arg.ptr.copyStruct(kvm_s390_interrupt);
    if (s === undefined) return -EFAULT;
    const irq = s390intToS390irq(s);
    if (typeof irq === 'number') return irq;
    return this.irqs.inject(irq, this.injectContext());
  }

  /**
   * KVM_S390_SET_IRQ_STATE: `len` must be a non-zero multiple of 72 up to VCPU_IRQS_MAX_BUF
   * (-EINVAL); the buffer must be readable (-EFAULT); no interrupt may be pending (-EBUSY); then
   * each record is injected as KVM_S390_IRQ would.
   *
   * Decision: the records are injected all or none. Linux injects them in order and stops at the
   * first refusal, leaving the earlier ones pending; vsva checks the whole batch on a copy and
   * commits it only if every record is accepted, so a refused call changes nothing.
   */
  private setIrqState(proc: Process, arg: IoctlArg): number {
    const st = arg.ptr.copyStruct(kvm_s390_irq_state);
    if (st === undefined) return -EFAULT;
    const len = st.len;
    if (len > VCPU_IRQS_MAX_BUF || len === 0 || len % kvm_s390_irq.size !== 0) return -EINVAL;
    const buf = UserPtr.fromU64(proc.mm, st.buf).copyFrom(len);
    if (buf === undefined) return -EFAULT;
    if (this.irqs.pending !== 0) return -EBUSY;
    const scratch = this.irqs.clone();
    const ctx = this.injectContext();
    for (let off = 0; off < len; off += kvm_s390_irq.size) {
      const rc = scratch.inject(kvm_s390_irq.decode(buf, off), ctx);
      if (rc !== 0) return rc;
    }
    this.irqs.assign(scratch);
    return 0;
  }

  /**
   * KVM_S390_GET_IRQ_STATE: `len` 0 is -EINVAL; the records go out one by one, each checked
   * against `len` (-ENOBUFS) and copied (-EFAULT), so a refusal may leave the records before it
   * in the user's buffer. Returns the number of bytes stored.
   */
  private getIrqState(proc: Process, arg: IoctlArg): number {
    const st = arg.ptr.copyStruct(kvm_s390_irq_state);
    if (st === undefined) return -EFAULT;
    if (st.len === 0) return -EINVAL;
    const base = UserPtr.fromU64(proc.mm, st.buf);
    let n = 0;
    for (const rec of this.irqs.records()) {
      if (n + rec.length > st.len) return -ENOBUFS;
      if (!base.add(n).copyTo(rec)) return -EFAULT;
      n += rec.length;
    }
    return n;
  }
}

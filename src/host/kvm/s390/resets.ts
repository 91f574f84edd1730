/**
 * The s390 vCPU reset matrix (seed-spec §4.2; "KVM: s390: Add new reset vcpu API", Linux 5.6
 * commit 7de3f1423ff9, with the fix b5de9eede579 that also writes the initial-reset values into
 * kvm_run). Three levels, each a strict superset of the one before, each returning 0:
 *
 * | state                         | where       | normal     | initial              | clear |
 * |-------------------------------|-------------|------------|----------------------|-------|
 * | PSW runtime-instrumentation bit| SIE block  | cleared    | PSW := 0             | =     |
 * | pfault token                  | vcpu->arch  | INVALID    | =                    | =     |
 * | riccb (64 bytes)              | kvm_run     | zeroed     | =                    | =     |
 * | async-pagefault queue         | vcpu->arch  | emptied    | =                    | =     |
 * | run state                     | SIE block   | stopped unless user space controls it | = | = |
 * | local interrupts              | vcpu->arch  | all dropped| =                    | =     |
 * | PSW mask and address          | SIE + kvm_run| kept      | 0 (both copies)      | =     |
 * | prefix                        | SIE block   | kept       | 0                    | =     |
 * | CPU timer, clock comparator   | SIE + kvm_run| kept      | 0 (both copies)      | =     |
 * | CR0..CR15                     | SIE + kvm_run| kept      | 0, CR0 0xE0, CR14 0xC2000000 | = |
 * | TOD programmable reg., PP     | SIE + kvm_run| kept      | 0 (both copies)      | =     |
 * | breaking-event address (GBEA) | SIE + kvm_run| kept      | 1 (both copies)      | =     |
 * | FPC                           | kvm_run     | kept       | 0                    | =     |
 * | BPBC bit                      | SIE block   | kept       | cleared (kvm_run bit not rewritten) | = |
 * | GPRs, ACRs, VRs/FPRs          | kvm_run     | kept       | kept                 | 0     |
 * | guarded-storage block, etoken, etoken extension | kvm_run | kept | kept       | 0     |
 *
 * Kept by every level: the epoch difference, pfault select/compare, diagnose 0x318, and the
 * kvm_run copies the fix does not name (s.regs.prefix, pft, pfs, pfc, the bpbc bit): they show
 * the new values only after the next KVM_RUN stores the registers back.
 */

import { CR0_INITIAL_MASK, CR14_INITIAL_MASK, KVM_S390_PFAULT_TOKEN_INVALID } from '../../../uapi/kvm.ts';
import { PSW_MASK_RI } from '../../../uapi/kvm-s390.ts';
import type { LocalInterrupts } from './irq.ts';
import { RUN, RUN_SIZE, type S390RunView } from './run-area.ts';
import { clearAsyncPfQueue, type S390ArchState, setPrefix } from './state.ts';

/** What a reset acts on. */
export interface S390ResetTarget {
  readonly arch: S390ArchState;
  readonly irqs: LocalInterrupts;
  readonly run: S390RunView;
  /** The VM's user-controlled CPU state flag (set by KVM_SET_MP_STATE). */
  readonly userCpuStateCtrl: boolean;
  /** kvm_s390_vcpu_stop */
  stop(): void;
}

/** The CRs after an initial reset: all 0 but CR0 and CR14. */
export function initialControlRegisters(): bigint[] {
  const crs = Array.from({ length: 16 }, () => 0n);
  crs[0] = BigInt(CR0_INITIAL_MASK);
  crs[14] = BigInt(CR14_INITIAL_MASK);
  return crs;
}

/** KVM_S390_NORMAL_RESET (kvm_arch_vcpu_ioctl_normal_reset). */
export function normalReset(v: S390ResetTarget): void {
  v.arch.pswMask &= ~PSW_MASK_RI;
  v.arch.pfaultToken = KVM_S390_PFAULT_TOKEN_INVALID;
  v.run.zero(RUN.riccb, RUN_SIZE.riccb);
  clearAsyncPfQueue(v.arch);
  if (!v.userCpuStateCtrl) v.stop();
  v.irqs.clear();
}

/**
 * KVM_S390_INITIAL_RESET (kvm_arch_vcpu_ioctl_initial_reset): the architecture's initial CPU
 * reset, except that the CPU stays in z/Architecture mode.
 */
export function initialReset(v: S390ResetTarget): void {
  normalReset(v);
  const a = v.arch;
  a.pswMask = 0n;
  a.pswAddr = 0n;
  setPrefix(a, 0);
  a.cputm = 0n;
  a.ckc = 0n;
  a.gcr = initialControlRegisters();

  // b5de9eede579: the same values in kvm_run, so that user space sees them without a KVM_RUN.
  const r = v.run;
  r.setU64s(RUN.crs, initialControlRegisters());
  r.setU64(RUN.ckc, 0n);
  r.setU64(RUN.pswAddr, 0n);
  r.setU64(RUN.pswMask, 0n);
  r.setU64(RUN.todpr, 0n);
  r.setU64(RUN.cputm, 0n);
  r.setU64(RUN.pp, 0n);
  r.setU64(RUN.gbea, 1n);
  r.setU32(RUN.fpc, 0);

  a.gbea = 1n;
  a.pp = 0n;
  a.bpbc = false;
  a.todpr = 0;
}

/** KVM_S390_CLEAR_RESET (kvm_arch_vcpu_ioctl_clear_reset). */
export function clearReset(v: S390ResetTarget): void {
  initialReset(v);
  const r = v.run;
  r.zero(RUN.gprs, RUN_SIZE.gprs);
  r.zero(RUN.vrs, RUN_SIZE.vrs);
  r.zero(RUN.acrs, RUN_SIZE.acrs);
  r.zero(RUN.gscb, RUN_SIZE.gscb);
  r.setU64(RUN.etoken, 0n);
  r.setU64(RUN.etokenExtension, 0n);
}

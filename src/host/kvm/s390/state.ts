/**
 * The part of an s390 vCPU's architected state that KVM keeps outside kvm_run: what lives in the
 * SIE control block (guest PSW, control registers, prefix, CPU timer, clock comparator, TOD
 * programmable register, program parameter, breaking-event address, epoch difference, the BPBC
 * bit of `fpf`, the STOPPED CPU flag) and in `vcpu->arch` (the pfault token/select/compare, the
 * diagnose 0x318 value, the async-pagefault completion queue). Seed-spec §4.2 names each field.
 */

import { KVM_S390_PFAULT_TOKEN_INVALID } from '../../../uapi/kvm.ts';
import { GUEST_PREFIX_SHIFT } from '../../../uapi/kvm-s390.ts';

export interface S390ArchState {
  /** sie_block->gpsw */
  pswMask: bigint;
  pswAddr: bigint;
  /** The prefix (kvm_s390_get_prefix): a u32 multiple of 8 KiB. */
  prefix: number;
  /** sie_block->gcr[0..15] */
  gcr: bigint[];
  /** sie_block->todpr: 32 bits. */
  todpr: number;
  /** sie_block->cputm (the CPU timer does not run: no guest time passes in vsva). */
  cputm: bigint;
  /** sie_block->ckc */
  ckc: bigint;
  /** sie_block->pp */
  pp: bigint;
  /** sie_block->gbea */
  gbea: bigint;
  /** sie_block->epoch (KVM_REG_S390_EPOCHDIFF) */
  epoch: bigint;
  /** vcpu->arch.pfault_token / pfault_select / pfault_compare */
  pfaultToken: bigint;
  pfaultSelect: bigint;
  pfaultCompare: bigint;
  /** FPF_BPBC in sie_block->fpf: branch-prediction blocking. */
  bpbc: boolean;
  /** vcpu->arch.diag318_info.val */
  diag318: bigint;
  /** CPUSTAT_STOPPED */
  stopped: boolean;
  /**
   * Entries of the async-pagefault completion queue. Nothing faults in vsva, so it stays empty;
   * it is kept so that the resets' "clear the queue" step has its object.
   */
  asyncPfQueue: number;
}

/** The state kvm_arch_vcpu_create leaves: a zeroed SIE block, pfault token invalid, stopped. */
export function newArchState(): S390ArchState {
  return {
    pswMask: 0n,
    pswAddr: 0n,
    prefix: 0,
    gcr: Array.from({ length: 16 }, () => 0n),
    todpr: 0,
    cputm: 0n,
    ckc: 0n,
    pp: 0n,
    gbea: 0n,
    epoch: 0n,
    pfaultToken: KVM_S390_PFAULT_TOKEN_INVALID,
    pfaultSelect: 0n,
    pfaultCompare: 0n,
    bpbc: false,
    diag318: 0n,
    stopped: true,
    asyncPfQueue: 0,
  };
}

export function cloneArchState(s: S390ArchState): S390ArchState {
  return { ...s, gcr: [...s.gcr] };
}

/**
 * kvm_s390_set_prefix: the SIE block keeps prefix >> GUEST_PREFIX_SHIFT of a u32, so the low 13
 * bits (and anything above bit 31 of a 64-bit value) are dropped.
 */
export function setPrefix(s: S390ArchState, prefix: bigint | number): void {
  const p = Number(BigInt.asUintN(32, BigInt(prefix)));
  s.prefix = ((p >>> GUEST_PREFIX_SHIFT) << GUEST_PREFIX_SHIFT) >>> 0;
}

/** kvm_clear_async_pf_completion_queue */
export function clearAsyncPfQueue(s: S390ArchState): void {
  s.asyncPfQueue = 0;
}

/**
 * The s390 architecture of vsva's KVM (arch/s390/kvm/kvm-s390.c): the capabilities it reports,
 * the VM types KVM_CREATE_VM accepts, and a VM's s390 part — its vCPUs (vcpu.ts), the
 * user-controlled-CPU-state switch they share, and the VM-level KVM_ENABLE_CAP. `s390Arch()` is
 * what the generic KVM layer registers.
 *
 * Decisions:
 * - Only type 0 is accepted. KVM_VM_S390_UCONTROL (1) is refused with -EINVAL, which is what
 *   Linux returns both without CONFIG_KVM_S390_UCONTROL and, with it, for a caller lacking
 *   CAP_SYS_ADMIN (kvm_arch_init_vm's `rc = -EINVAL` covers both); any other type is -EINVAL.
 * - vCPU limits: without SIGP interpretation (irq.ts) KVM uses no SCA entries, so both
 *   KVM_CAP_MAX_VCPUS and KVM_CAP_MAX_VCPU_ID are KVM_MAX_VCPUS = 255 (with the extended SCA
 *   they would be 248). KVM_CAP_NR_VCPUS (the recommended count, min(online host CPUs, 255)) is
 *   255 too: vsva does not model the host's CPUs.
 * - Guest interrupt lines (setIrq, irqfd) do not exist: s390 routes irqfds to I/O adapters
 *   (KVM_IRQ_ROUTING_S390_ADAPTER, the FLIC device), which vsva does not model, so every GSI is
 *   -EINVAL.
 * - Memory slots (kvm_arch_prepare_memory_region): a created or moved slot must start at a 1 MiB
 *   aligned user address, be a multiple of 1 MiB long and end below the VM's memory limit
 *   (-EINVAL otherwise). Linux's limit is min(TASK_SIZE_MAX, sclp.hamax + 1), the host's
 *   memory size; vsva has no SCLP, so the limit is 2^53, the largest address it models
 *   (KVM_S390_VM_MEM_LIMIT_SIZE, which would lower it, is not modelled). s390 has 32 user slots
 *   and no read-only memory.
 * - Capabilities: the ones whose behaviour vsva models report what Linux reports on a machine
 *   with the vector, RI, GS, BPB and etoken facilities (every other capability is 0, like
 *   KVM_CAP_S390_UCONTROL). KVM_CAP_S390_USER_SIGP and _USER_STSI are reported and accepted:
 *   they only send intercepted SIGP/STSI instructions to user space, and no instruction runs.
 */

import { EBUSY, EEXIST, EINVAL, ENOTTY } from '../../../uapi/errno.ts';
import {
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_MAX_VCPU_ID,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_MP_STATE,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_ONE_REG,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CAP_SYNC_REGS,
} from '../../../uapi/kvm.ts';
import {
  KVM_CAP_ENABLE_CAP,
  KVM_CAP_S390_BPB,
  KVM_CAP_S390_CSS_SUPPORT,
  KVM_CAP_S390_DIAG318,
  KVM_CAP_S390_GS,
  KVM_CAP_S390_INJECT_IRQ,
  KVM_CAP_S390_IRQ_STATE,
  KVM_CAP_S390_PSW,
  KVM_CAP_S390_RI,
  KVM_CAP_S390_USER_SIGP,
  KVM_CAP_S390_USER_STSI,
  KVM_CAP_S390_VECTOR_REGISTERS,
  KVM_S390_MAX_VCPUS,
} from '../../../uapi/kvm-s390.ts';
import type { Process } from '../../kernel/process.ts';
import type { IoctlArg } from '../../uaccess.ts';
import type { KvmArch, KvmMemoryChange, KvmMemoryRegion, KvmRunArea, KvmVmArch } from '../arch.ts';
import { S390Vcpu, type S390VmContext } from './vcpu.ts';

/** The s390 vCPU mmap area: one page (no coalesced-MMIO or dirty-ring pages on s390). */
export const S390_VCPU_MMAP_SIZE = 4096;

/** KVM_CHECK_EXTENSION answers of s390 for what vsva models (kvm_vm_ioctl_check_extension). */
export const S390_CAPABILITIES: ReadonlyMap<number, number> = new Map([
  [KVM_CAP_S390_PSW, 1],
  [KVM_CAP_SYNC_REGS, 1],
  [KVM_CAP_ONE_REG, 1],
  [KVM_CAP_ENABLE_CAP, 1],
  [KVM_CAP_S390_CSS_SUPPORT, 1],
  [KVM_CAP_MP_STATE, 1],
  [KVM_CAP_IMMEDIATE_EXIT, 1],
  [KVM_CAP_S390_INJECT_IRQ, 1],
  [KVM_CAP_S390_USER_SIGP, 1],
  [KVM_CAP_S390_USER_STSI, 1],
  [KVM_CAP_S390_IRQ_STATE, 1],
  [KVM_CAP_S390_VCPU_RESETS, 1],
  [KVM_CAP_S390_DIAG318, 1],
  [KVM_CAP_NR_VCPUS, KVM_S390_MAX_VCPUS],
  [KVM_CAP_MAX_VCPUS, KVM_S390_MAX_VCPUS],
  [KVM_CAP_MAX_VCPU_ID, KVM_S390_MAX_VCPUS],
  [KVM_CAP_S390_VECTOR_REGISTERS, 1],
  [KVM_CAP_S390_RI, 1],
  [KVM_CAP_S390_GS, 1],
  [KVM_CAP_S390_BPB, 1],
]);

export function s390CheckExtension(cap: number): number {
  return S390_CAPABILITIES.get(cap) ?? 0;
}

/** VM capabilities KVM_ENABLE_CAP accepts only before the first vCPU exists. */
const ENABLE_BEFORE_VCPUS = new Set([KVM_CAP_S390_VECTOR_REGISTERS, KVM_CAP_S390_RI, KVM_CAP_S390_GS]);
/** VM capabilities KVM_ENABLE_CAP accepts at any time. */
const ENABLE_ANY_TIME = new Set([KVM_CAP_S390_USER_SIGP, KVM_CAP_S390_USER_STSI]);

/** KVM_USER_MEM_SLOTS on s390. */
export const S390_USER_MEM_SLOTS = 32;
/** Memory slots start and end on segment (1 MiB) boundaries. */
export const S390_SEGMENT_SIZE = 0x10_0000;
/** kvm->arch.mem_limit (Decision: 2^53, see above). */
export const S390_MEM_LIMIT = 2 ** 53;

/** An s390 VM: its vCPUs and the state they share. */
export class S390Vm implements KvmVmArch, S390VmContext {
  readonly name = 's390x' as const;
  readonly maxVcpus = KVM_S390_MAX_VCPUS;
  readonly maxVcpuId = KVM_S390_MAX_VCPUS;
  readonly runPages = S390_VCPU_MMAP_SIZE / 4096;
  userCpuStateCtrl = false;
  cssSupport = false;
  /** Capabilities enabled with KVM_ENABLE_CAP on the VM. */
  readonly enabledCaps = new Set<number>();
  private readonly vcpus = new Map<number, S390Vcpu>();

  checkExtension(cap: number): number {
    return s390CheckExtension(cap);
  }

  /** kvm_arch_vcpu_precreate: without SCA entries, an id must be below KVM_MAX_VCPUS. */
  precreateVcpu(id: number): number {
    return Number.isInteger(id) && id >= 0 && id < KVM_S390_MAX_VCPUS ? 0 : -EINVAL;
  }

  /**
   * kvm_arch_vcpu_create. The generic layer checks the id and its uniqueness first; these checks
   * repeat them so that the VM never holds two vCPUs of one id.
   */
  createVcpu(id: number, run: KvmRunArea): S390Vcpu | number {
    const rc = this.precreateVcpu(id);
    if (rc !== 0) return rc;
    if (this.vcpus.has(id)) return -EEXIST;
    const v = new S390Vcpu(this, id, run);
    this.vcpus.set(id, v);
    return v;
  }

  hasVcpu(id: number): boolean {
    return this.vcpus.has(id);
  }

  forgetVcpu(id: number): void {
    this.vcpus.delete(id);
  }

  vcpu(id: number): S390Vcpu | undefined {
    return this.vcpus.get(id);
  }

  get vcpuIds(): number[] {
    return [...this.vcpus.keys()].sort((a, b) => a - b);
  }

  setIrq(_gsi: number, _level: number): number {
    return -EINVAL;
  }

  /**
   * kvm_arch_vm_ioctl: the s390 VM ioctls (floating interrupts, device attributes, storage keys,
   * CMMA, memory operations, protected virtualisation) are not modelled; unknown is -ENOTTY.
   */
  vmIoctl(_proc: Process, _request: number, _arg: IoctlArg): number {
    return -ENOTTY;
  }

  /** kvm_arch_prepare_memory_region (see the decision above). */
  prepareMemoryRegion(region: KvmMemoryRegion, change: KvmMemoryChange): number {
    if (change === 'flags-only') return 0;
    if (region.hva % S390_SEGMENT_SIZE !== 0) return -EINVAL;
    if (region.size % S390_SEGMENT_SIZE !== 0) return -EINVAL;
    if (region.gpa + region.size > S390_MEM_LIMIT) return -EINVAL;
    return 0;
  }

  /**
   * kvm_vm_ioctl_enable_cap: flags must be 0 (-EINVAL); vector registers, RI and GS only while
   * no vCPU exists (-EBUSY; vsva's CPU model has the facilities already, so enabling them
   * records the request); user SIGP/STSI at any time; every other capability -EINVAL.
   */
  enableCap(cap: number, flags: number, _args: readonly bigint[]): number {
    if (flags !== 0) return -EINVAL;
    if (ENABLE_BEFORE_VCPUS.has(cap)) {
      if (this.vcpus.size > 0) return -EBUSY;
    } else if (!ENABLE_ANY_TIME.has(cap)) {
      return -EINVAL;
    }
    this.enabledCaps.add(cap);
    return 0;
  }

  /** The VM is destroyed (its vCPUs were released first). */
  release(): void {
    for (const v of [...this.vcpus.values()]) v.release();
  }
}

/** The s390 architecture for the generic KVM layer. */
export function s390Arch(): KvmArch {
  return {
    name: 's390x',
    checkExtension: s390CheckExtension,
    vcpuMmapSize: S390_VCPU_MMAP_SIZE,
    memSlots: S390_USER_MEM_SLOTS,
    readonlyMem: false,
    createVm(type: number): KvmVmArch | number {
      return type === 0 ? new S390Vm() : -EINVAL;
    },
  };
}

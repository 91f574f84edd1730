/**
 * include/uapi/linux/kvm.h (and the s390 bits of arch/s390) as vsva uses it: the ioctl numbers
 * of /dev/kvm, the VM and the vCPU file descriptors that the VMM needs (numbers only — the struct
 * layouts come with issue 5), and the s390 vCPU reset API of seed-spec §4 (Linux 5.6) with its
 * capability and register constants.
 *
 * The `_IOW`/`_IOR` numbers embed the argument struct's size on x86-64 and arm64 (the two hosts
 * share these layouts); the size is written next to each one. Verified against Linux's
 * include/uapi/linux/kvm.h and arch/s390/include/{asm/kvm_host.h,uapi/asm/kvm.h}.
 */

import { _IO, _IOW } from './ioctl.ts';

export const KVMIO = 0xae;

/** What KVM_GET_API_VERSION returns (stable since Linux 2.6.22). */
export const KVM_API_VERSION = 12;

// ---------------------------------------------------------------- /dev/kvm (system) ioctls

/** _IO(KVMIO, 0x00) */
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
/** _IO(KVMIO, 0x01); argument: the machine type (0). Returns a VM fd. */
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
/** _IO(KVMIO, 0x03); argument: a KVM_CAP_* number. Also a VM ioctl. */
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
/** _IO(KVMIO, 0x04): the size of the vCPU's mmap-able `struct kvm_run` area. */
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);

// ---------------------------------------------------------------- VM ioctls

/** _IO(KVMIO, 0x41); argument: the vCPU id. Returns a vCPU fd. */
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
/** _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region), 32 bytes. */
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, 32);
/** _IOW(KVMIO, 0x76, struct kvm_irqfd), 32 bytes. */
export const KVM_IRQFD = _IOW(KVMIO, 0x76, 32);
/** _IOW(KVMIO, 0x79, struct kvm_ioeventfd), 64 bytes. */
export const KVM_IOEVENTFD = _IOW(KVMIO, 0x79, 64);
/** _IOW(KVMIO, 0xa3, struct kvm_enable_cap), 104 bytes. A vCPU ioctl, and a VM ioctl with KVM_CAP_ENABLE_CAP_VM. */
export const KVM_ENABLE_CAP = _IOW(KVMIO, 0xa3, 104);

// ---------------------------------------------------------------- vCPU ioctls

/** _IO(KVMIO, 0x80) */
export const KVM_RUN = _IO(KVMIO, 0x80);
/** _IOW(KVMIO, 0xab, struct kvm_one_reg), 16 bytes (the kernel writes through `addr`, so it is _IOW). */
export const KVM_GET_ONE_REG = _IOW(KVMIO, 0xab, 16);
/** _IOW(KVMIO, 0xac, struct kvm_one_reg), 16 bytes. */
export const KVM_SET_ONE_REG = _IOW(KVMIO, 0xac, 16);

// ---------------------------------------------------------------- §4: s390 vCPU resets (Linux 5.6)

/** _IO(KVMIO, 0x97): pre-existing, no capability needed. */
export const KVM_S390_INITIAL_RESET = _IO(KVMIO, 0x97);
/** _IO(KVMIO, 0xc3) */
export const KVM_S390_NORMAL_RESET = _IO(KVMIO, 0xc3);
/** _IO(KVMIO, 0xc4) */
export const KVM_S390_CLEAR_RESET = _IO(KVMIO, 0xc4);

/** KVM_CHECK_EXTENSION returns 1 for it on s390 when NORMAL/CLEAR_RESET exist. */
export const KVM_CAP_S390_VCPU_RESETS = 179;

/**
 * CR0 after an initial reset: CR0_UNUSED_56 (0x80) | CR0_INTERRUPT_KEY_SUBMASK (0x40) |
 * CR0_MEASUREMENT_ALERT_SUBMASK (0x20) (arch/s390/include/asm/kvm_host.h).
 */
export const CR0_INITIAL_MASK = 0xe0;
/**
 * CR14 after an initial reset: CR14_UNUSED_32 (0x80000000) | CR14_UNUSED_33 (0x40000000) |
 * CR14_EXTERNAL_DAMAGE_SUBMASK (0x02000000).
 */
export const CR14_INITIAL_MASK = 0xc200_0000;

/**
 * The "no pfault token" value of the vCPU's pfault_token (KVM_REG_S390_PFTOKEN, KVM_SYNC_PFAULT).
 * seed-spec §4.1 marks the literal UNCONFIRMED; Linux's arch/s390/include/uapi/asm/kvm.h defines
 * it as 0xffffffffffffffffULL (older kernels: (-1UL) in asm/kvm_host.h, the same value on 64-bit
 * s390) — confirmed.
 */
export const KVM_S390_PFAULT_TOKEN_INVALID = 0xffff_ffff_ffff_ffffn;

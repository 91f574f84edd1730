/**
 * include/uapi/linux/kvm.h (and the s390 bits of arch/s390) as vsva uses it: the ioctl numbers
 * of /dev/kvm, the VM and the vCPU file descriptors, the generic structs (memory regions, irqfd,
 * ioeventfd, ONE_REG, MP state) and the arm64 ones vsva's arm64 VMs use, and the s390 vCPU reset API of seed-spec §4 (Linux 5.6) with its
 * capability and register constants.
 *
 * The `_IOW`/`_IOR` numbers embed the argument struct's size on x86-64 and arm64 (the two hosts
 * share these layouts); the size is written next to each one. Verified against Linux's
 * include/uapi/linux/kvm.h and arch/s390/include/{asm/kvm_host.h,uapi/asm/kvm.h}.
 */

import { _IO, _IOR, _IOW, _IOWR } from './ioctl.ts';
import { array, bytes, defineStruct, type StructValue, s32, u8, u16, u32, u64 } from './layout.ts';

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
/** _IO(KVMIO, 0x60): create the in-kernel interrupt controller (on arm64 a GICv2 model). */
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
/** _IOWR(KVMIO, 0xe0, struct kvm_create_device), 12 bytes: creates an in-kernel device, returns its fd in `fd`. */
export const KVM_CREATE_DEVICE = _IOWR(KVMIO, 0xe0, 12);
/** Device-fd ioctls: _IOW(KVMIO, 0xe1..0xe3, struct kvm_device_attr), 24 bytes. */
export const KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xe1, 24);
export const KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xe2, 24);
export const KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xe3, 24);
/** _IOW(KVMIO, 0xa3, struct kvm_enable_cap), 104 bytes. A vCPU ioctl, and a VM ioctl with KVM_CAP_ENABLE_CAP_VM. */
export const KVM_ENABLE_CAP = _IOW(KVMIO, 0xa3, 104);

// ---------------------------------------------------------------- vCPU ioctls

/** _IO(KVMIO, 0x80) */
export const KVM_RUN = _IO(KVMIO, 0x80);
/** _IOW(KVMIO, 0xab, struct kvm_one_reg), 16 bytes (the kernel writes through `addr`, so it is _IOW). */
export const KVM_GET_ONE_REG = _IOW(KVMIO, 0xab, 16);
/** _IOW(KVMIO, 0xac, struct kvm_one_reg), 16 bytes. */
export const KVM_SET_ONE_REG = _IOW(KVMIO, 0xac, 16);
/** _IOWR(KVMIO, 0xb0, struct kvm_reg_list), 8 bytes (the count; the ids follow it). */
export const KVM_GET_REG_LIST = _IOWR(KVMIO, 0xb0, 8);
/** struct kvm_reg_list: `n`, then `__u64 reg[]` from offset 8. */
export const kvm_reg_list = defineStruct('kvm_reg_list', 8, { n: u64(0) });

// ---------------------------------------------------------------- struct kvm_run (generic part)

/**
 * struct kvm_run as every architecture but s390 lays it out: the shared head, the 256-byte exit
 * union at 32, the valid/dirty sync-register masks and the 2048-byte sync-register area (`s`) at
 * 304; 2352 bytes, at the start of the vCPU's mmap area. s390 inserts psw_mask and psw_addr at 32
 * and shifts the rest by 16 (kvm-s390.ts has that layout).
 */
export const kvm_run = defineStruct('kvm_run', 2352, {
  request_interrupt_window: u8(0),
  /** Set by user space: KVM_RUN returns -EINTR at once (KVM_CAP_IMMEDIATE_EXIT). */
  immediate_exit: u8(1),
  padding1: bytes(2, 6),
  exit_reason: u32(8),
  ready_for_interrupt_injection: u8(12),
  if_flag: u8(13),
  flags: u16(14),
  cr8: u64(16),
  apic_base: u64(24),
  /** The exit-reason union (mmio, s390_sieic, internal, ...). */
  exit: bytes(32, 256),
  kvm_valid_regs: u64(288),
  kvm_dirty_regs: u64(296),
  /** union { struct kvm_sync_regs regs; char padding[SYNC_REGS_SIZE_BYTES]; } */
  s: bytes(304, 2048),
});
export const SYNC_REGS_SIZE_BYTES = 2048;

/**
 * The `mmio` member of kvm_run's exit union (KVM_EXIT_MMIO), at kvm_run offset 32: the guest
 * accessed `phys_addr` with no memory slot and no in-kernel device there. For a write `data` holds
 * the `len` bytes stored; for a read user space puts the value in `data` before the next KVM_RUN,
 * which completes the load (kvm_handle_mmio_return).
 */
export const kvm_run_mmio = defineStruct('kvm_run.mmio', 24, {
  phys_addr: u64(0),
  data: bytes(8, 8),
  len: u32(16),
  is_write: u8(20),
});
/** Offset of the exit union in struct kvm_run (non-s390). */
export const KVM_RUN_EXIT_OFFSET = 32;

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

// ---------------------------------------------------------------- generic structs (issue 5)

/** struct kvm_userspace_memory_region: 32 bytes. `slot` holds the address space id in bits 31:16. */
export const kvm_userspace_memory_region = defineStruct('kvm_userspace_memory_region', 32, {
  slot: u32(0),
  flags: u32(4),
  guest_phys_addr: u64(8),
  /** Bytes; 0 deletes the slot. */
  memory_size: u64(16),
  /** Start of the userspace allocated memory. */
  userspace_addr: u64(24),
});
export type KvmUserspaceMemoryRegion = StructValue<typeof kvm_userspace_memory_region.fields>;
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/** struct kvm_irqfd: 32 bytes. */
export const kvm_irqfd = defineStruct('kvm_irqfd', 32, {
  fd: u32(0),
  gsi: u32(4),
  flags: u32(8),
  resamplefd: u32(12),
  pad: bytes(16, 16),
});
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;

/** struct kvm_ioeventfd: 64 bytes. */
export const kvm_ioeventfd = defineStruct('kvm_ioeventfd', 64, {
  datamatch: u64(0),
  /** Legal PIO or MMIO address. */
  addr: u64(8),
  /** 1, 2, 4, 8 bytes, or 0 to ignore the length. */
  len: u32(16),
  fd: s32(20),
  flags: u32(24),
  pad: bytes(28, 36),
});
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
export const KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY = 1 << 3;
/** (1 << kvm_ioeventfd_flag_nr_max) - 1 */
export const KVM_IOEVENTFD_VALID_FLAG_MASK = 0xf;

/** struct kvm_irq_level: 8 bytes (`irq` is a union with `status`). */
export const kvm_irq_level = defineStruct('kvm_irq_level', 8, {
  irq: u32(0),
  level: u32(4),
});
/** _IOW(KVMIO, 0x61, struct kvm_irq_level), 8 bytes. */
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, 8);

/** struct kvm_one_reg: 16 bytes. */
export const kvm_one_reg = defineStruct('kvm_one_reg', 16, {
  id: u64(0),
  /** User address of the value. */
  addr: u64(8),
});

/** struct kvm_mp_state: 4 bytes. */
export const kvm_mp_state = defineStruct('kvm_mp_state', 4, { mp_state: u32(0) });
/** _IOR(KVMIO, 0x98, struct kvm_mp_state) */
export const KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, 4);
/** _IOW(KVMIO, 0x99, struct kvm_mp_state) */
export const KVM_SET_MP_STATE = _IOW(KVMIO, 0x99, 4);
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;
export const KVM_MP_STATE_STOPPED = 5;
export const KVM_MP_STATE_CHECK_STOP = 6;
export const KVM_MP_STATE_OPERATING = 7;
export const KVM_MP_STATE_LOAD = 8;

/** struct kvm_create_device: 12 bytes. */
export const kvm_create_device = defineStruct('kvm_create_device', 12, {
  /** enum kvm_device_type */
  type: u32(0),
  /** Out: the device fd. */
  fd: u32(4),
  flags: u32(8),
});
/** kvm_create_device.flags: only ask whether the type could be created. */
export const KVM_CREATE_DEVICE_TEST = 1;
/** enum kvm_device_type (the ones vsva names). */
export const KVM_DEV_TYPE_VFIO = 4;
export const KVM_DEV_TYPE_ARM_VGIC_V2 = 5;
export const KVM_DEV_TYPE_FLIC = 6;
export const KVM_DEV_TYPE_ARM_VGIC_V3 = 7;
export const KVM_DEV_TYPE_ARM_VGIC_ITS = 8;

/** struct kvm_device_attr: 24 bytes. */
export const kvm_device_attr = defineStruct('kvm_device_attr', 24, {
  /** No flags are defined. */
  flags: u32(0),
  group: u32(4),
  attr: u64(8),
  /** User address of the attribute's value. */
  addr: u64(16),
});

/** struct kvm_enable_cap: 104 bytes. */
export const kvm_enable_cap = defineStruct('kvm_enable_cap', 104, {
  cap: u32(0),
  flags: u32(4),
  args: array(8, 'u64', 4),
  pad: bytes(40, 64),
});

// ---- ONE_REG id encoding
export const KVM_REG_ARCH_MASK = 0xff00_0000_0000_0000n;
export const KVM_REG_GENERIC = 0x0000_0000_0000_0000n;
export const KVM_REG_S390 = 0x5000_0000_0000_0000n;
export const KVM_REG_ARM64 = 0x6000_0000_0000_0000n;
export const KVM_REG_SIZE_SHIFT = 52n;
export const KVM_REG_SIZE_MASK = 0x00f0_0000_0000_0000n;
export const KVM_REG_SIZE_U8 = 0x0000_0000_0000_0000n;
export const KVM_REG_SIZE_U16 = 0x0010_0000_0000_0000n;
export const KVM_REG_SIZE_U32 = 0x0020_0000_0000_0000n;
export const KVM_REG_SIZE_U64 = 0x0030_0000_0000_0000n;
export const KVM_REG_SIZE_U128 = 0x0040_0000_0000_0000n;
/** The byte size of a ONE_REG id: 1 << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT). */
export function kvmRegSize(id: bigint): number {
  return 1 << Number((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

// ---- generic capabilities (include/uapi/linux/kvm.h)
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_MP_STATE = 14;
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_DESTROY_MEMORY_REGION_WORKS = 21;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS = 30;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_INTERNAL_ERROR_DATA = 40;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_ONE_REG = 70;
export const KVM_CAP_SYNC_REGS = 74;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_IRQFD_RESAMPLE = 82;
export const KVM_CAP_ARM_PSCI = 87;
export const KVM_CAP_DEVICE_CTRL = 89;
export const KVM_CAP_ENABLE_CAP_VM = 98;
export const KVM_CAP_IOEVENTFD_NO_LENGTH = 100;
export const KVM_CAP_ARM_PSCI_0_2 = 102;
export const KVM_CAP_CHECK_EXTENSION_VM = 105;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_ARM_VM_IPA_SIZE = 165;
export const KVM_CAP_ARM_IRQ_LINE_LAYOUT_2 = 174;

// ---- KVM_RUN exit reasons (the ones vsva produces)
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_INTR = 10;

// ---- arm64 (arch/arm64/include/uapi/asm/kvm.h)
/** KVM_CREATE_VM type: the IPA size in bits [7:0] (0 = 40 bits). */
export const KVM_VM_TYPE_ARM_IPA_SIZE_MASK = 0xff;
/** _IOW(KVMIO, 0xae, struct kvm_vcpu_init), 32 bytes. */
export const KVM_ARM_VCPU_INIT = _IOW(KVMIO, 0xae, 32);
/** _IOR(KVMIO, 0xaf, struct kvm_vcpu_init), 32 bytes. */
export const KVM_ARM_PREFERRED_TARGET = _IOR(KVMIO, 0xaf, 32);
/** struct kvm_vcpu_init: 32 bytes. */
export const kvm_vcpu_init = defineStruct('kvm_vcpu_init', 32, {
  target: u32(0),
  features: array(4, 'u32', 7),
});
export const KVM_ARM_TARGET_GENERIC_V8 = 5;
/** The KVM_ARM_VCPU_* feature bits vsva accepts: POWER_OFF (0), EL1_32BIT is refused (no AArch32). */
export const KVM_ARM_VCPU_POWER_OFF = 0;
export const KVM_ARM_VCPU_EL1_32BIT = 1;
export const KVM_ARM_VCPU_PSCI_0_2 = 2;
export const KVM_ARM_VCPU_PMU_V3 = 3;
export const KVM_ARM_VCPU_SVE = 4;
export const KVM_ARM_VCPU_PTRAUTH_ADDRESS = 5;
export const KVM_ARM_VCPU_PTRAUTH_GENERIC = 6;
/** KVM_VCPU_MAX_FEATURES (Linux 5.10): feature bits at or above it are ENOENT. */
export const KVM_VCPU_MAX_FEATURES = 7;

/**
 * struct kvm_regs (arm64): user_pt_regs (x0–x30, sp, pc, pstate), sp_el1, elr_el1, spsr[5], then
 * the 16-byte-aligned FP/SIMD state (v0–v31, fpsr, fpcr). 864 bytes. A KVM_REG_ARM_CORE id is
 * `offsetof(struct kvm_regs, reg) / 4`.
 */
export const kvm_regs_arm64 = defineStruct(
  'kvm_regs',
  864,
  {
    regs: array(0, 'u64', 31),
    sp: u64(248),
    pc: u64(256),
    pstate: u64(264),
    sp_el1: u64(272),
    elr_el1: u64(280),
    spsr: array(288, 'u64', 5),
    vregs: bytes(336, 512),
    fpsr: u32(848),
    fpcr: u32(852),
    reserved: bytes(856, 8),
  },
  { align: 16 },
);
/** PSTATE.M values an AArch64-only vCPU accepts, and the PSTATE of a reset vCPU. */
export const PSR_MODE_EL0t = 0x0;
export const PSR_MODE_EL1t = 0x4;
export const PSR_MODE_EL1h = 0x5;
export const PSR_AA32_MODE_MASK = 0x1f;
/** PSR_MODE_EL1h | D | A | I | F (VCPU_RESET_PSTATE_EL1). */
export const VCPU_RESET_PSTATE_EL1 = 0x3c5;

// ---- vGIC device attributes (arch/arm64/include/uapi/asm/kvm.h)
export const KVM_DEV_ARM_VGIC_GRP_ADDR = 0;
export const KVM_DEV_ARM_VGIC_GRP_DIST_REGS = 1;
export const KVM_DEV_ARM_VGIC_GRP_CPU_REGS = 2;
export const KVM_DEV_ARM_VGIC_GRP_NR_IRQS = 3;
export const KVM_DEV_ARM_VGIC_GRP_CTRL = 4;
export const KVM_DEV_ARM_VGIC_GRP_REDIST_REGS = 5;
export const KVM_VGIC_V3_ADDR_TYPE_DIST = 2;
export const KVM_VGIC_V3_ADDR_TYPE_REDIST = 3;
export const KVM_DEV_ARM_VGIC_CTRL_INIT = 0;
/** The GICv3 distributor and each redistributor region are 64 KiB-aligned. */
export const KVM_VGIC_V3_ADDR_ALIGN = 0x1_0000;
export const KVM_REG_ARM_COPROC_MASK = 0x0fff_0000n;
export const KVM_REG_ARM_COPROC_SHIFT = 16n;
export const KVM_REG_ARM_CORE = 0x0010n << KVM_REG_ARM_COPROC_SHIFT;
/** KVM_ARM_IRQ_LINE's `irq`: type [27:24] (CPU 0, SPI 1, PPI 2), vCPU index [23:16], number [15:0]. */
export const KVM_ARM_IRQ_TYPE_SHIFT = 24;
export const KVM_ARM_IRQ_TYPE_MASK = 0xf;
export const KVM_ARM_IRQ_VCPU_SHIFT = 16;
export const KVM_ARM_IRQ_VCPU_MASK = 0xff;
export const KVM_ARM_IRQ_NUM_MASK = 0xffff;
/** More vCPU-index bits (KVM_CAP_ARM_IRQ_LINE_LAYOUT_2): [31:28] count in units of 256. */
export const KVM_ARM_IRQ_VCPU2_SHIFT = 28;
export const KVM_ARM_IRQ_VCPU2_MASK = 0xf;
/** KVM_ARM_IRQ_TYPE_CPU line numbers. */
export const KVM_ARM_IRQ_CPU_IRQ = 0;
export const KVM_ARM_IRQ_CPU_FIQ = 1;
export const KVM_ARM_IRQ_TYPE_CPU = 0;
export const KVM_ARM_IRQ_TYPE_SPI = 1;
export const KVM_ARM_IRQ_TYPE_PPI = 2;

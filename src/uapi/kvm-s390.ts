/**
 * The s390 part of the KVM uAPI (arch/s390/include/uapi/asm/kvm.h and the s390 pieces of
 * include/uapi/linux/kvm.h) that vsva's s390 vCPU model implements: the register structs of
 * KVM_GET/SET_REGS, _SREGS and _FPU, the ONE_REG ids of the single registers, `struct
 * kvm_sync_regs` and the s390 `struct kvm_run` that carries it, the vCPU interrupt structs
 * (`kvm_s390_irq`, `kvm_s390_irq_state`, the older `kvm_s390_interrupt`) with their type codes, and the ioctl numbers with the s390 struct sizes. seed-spec §4. The reset
 * ioctls and their constants, and the generic pieces s390 shares (kvm_one_reg, kvm_mp_state and
 * its states, KVM_GET/SET_MP_STATE, the ONE_REG id encoding, generic capabilities and exit
 * reasons), are in kvm.ts.
 *
 * Verified against Linux's include/uapi/linux/kvm.h and arch/s390/include/uapi/asm/kvm.h (5.6,
 * and the 5.10+ form whose `kvm_sync_regs` gained `diag318`), arch/s390/include/asm/kvm_host.h
 * and arch/s390/kvm/{kvm-s390.c,interrupt.c}.
 *
 * Decision (byte order): s390 is big-endian, but vsva's uAPI structs are little-endian on every
 * host it models (seed-spec "Conventions", layout.ts). The s390 structs here keep Linux's field
 * offsets and sizes and are encoded little-endian like every other uAPI struct; a field is the
 * same value either way, so nothing in the model depends on the byte order. The one place the
 * order shows is the `bpbc` bitfield, placed where s390's big-endian bitfield allocation puts it
 * (the most significant bit of its byte, `KVM_SYNC_REGS_BPBC_BIT`).
 *
 * Facts checked while writing this (seed-spec §4 left them UNCONFIRMED or silent):
 * - `PSW_MASK_RI` = 0x0000008000000000 (PSW bit 24): confirmed (Linux asm/ptrace.h, QEMU's
 *   target/s390x/cpu.h and kvm-unit-tests agree).
 * - There is no `KVM_CAP_S390_USER_CPU_STATE`: Linux switches a VM to user-controlled CPU state
 *   the first time user space calls KVM_SET_MP_STATE on any of its vCPUs
 *   (kvm_s390_set_user_cpu_state_ctrl; KVM_S390_PV_COMMAND does it too), and the capability
 *   that announces the ioctl is the generic KVM_CAP_MP_STATE (14). Capability 119 is
 *   KVM_CAP_GUEST_DEBUG_HW_BPS.
 * - On s390 the generic `struct kvm_run` header has `psw_mask`/`psw_addr` at 32/40 (under
 *   `#ifdef __KVM_S390`), so the exit union is at 48, `kvm_valid_regs` at 304, `kvm_dirty_regs`
 *   at 312 and the sync-regs union at 320 — 16 bytes later than on other architectures.
 * - KVM_S390_GET_IRQ_STATE returns the number of *bytes* it stored (a multiple of 72), not the
 *   number of interrupts.
 * - KVM_GET_MP_STATE on s390 returns the state (5 or 7) as the ioctl's result and writes nothing
 *   to the struct (kvm_arch_vcpu_ioctl_get_mpstate returns it; kvm_vcpu_ioctl passes a non-zero
 *   result straight back).
 */

import { _IOR, _IOW, _IOWR } from './ioctl.ts';
import { KVM_REG_S390, KVM_REG_SIZE_U32, KVM_REG_SIZE_U64, KVMIO, SYNC_REGS_SIZE_BYTES } from './kvm.ts';
import { array, bytes, defineStruct, type StructValue, struct, u8, u16, u32, u64, union } from './layout.ts';

// ---------------------------------------------------------------- VM types, capabilities

/** KVM_CREATE_VM type bit for a user-controlled (ucontrol) VM. */
export const KVM_VM_S390_UCONTROL = 1;

/**
 * The s390 capabilities (include/uapi/linux/kvm.h numbers); the generic ones s390 also answers
 * for (MP_STATE, ONE_REG, SYNC_REGS, NR/MAX_VCPUS, MAX_VCPU_ID, IMMEDIATE_EXIT) are in kvm.ts.
 */
export const KVM_CAP_S390_PSW = 42;
export const KVM_CAP_ENABLE_CAP = 54;
export const KVM_CAP_S390_UCONTROL = 73;
export const KVM_CAP_S390_CSS_SUPPORT = 85;
export const KVM_CAP_S390_IRQCHIP = 99;
export const KVM_CAP_S390_USER_SIGP = 106;
export const KVM_CAP_S390_VECTOR_REGISTERS = 107;
export const KVM_CAP_S390_USER_STSI = 109;
export const KVM_CAP_S390_INJECT_IRQ = 113;
export const KVM_CAP_S390_IRQ_STATE = 114;
export const KVM_CAP_S390_RI = 124;
export const KVM_CAP_S390_GS = 140;
export const KVM_CAP_S390_BPB = 152;
export const KVM_CAP_S390_DIAG318 = 186;

// ---------------------------------------------------------------- register structs

/** struct kvm_regs (s390): the 16 general registers. 128 bytes. */
export const kvm_regs = defineStruct('kvm_regs', 128, {
  gprs: array(0, 'u64', 16),
});
export type KvmRegs = StructValue<typeof kvm_regs.fields>;

/** struct kvm_sregs (s390): access registers and control registers. 192 bytes. */
export const kvm_sregs = defineStruct('kvm_sregs', 192, {
  acrs: array(0, 'u32', 16),
  crs: array(64, 'u64', 16),
});
export type KvmSregs = StructValue<typeof kvm_sregs.fields>;

/** struct kvm_fpu (s390): FPC, then (after 4 bytes of padding) the 16 FPRs. 136 bytes. */
export const kvm_fpu = defineStruct('kvm_fpu', 136, {
  fpc: u32(0),
  fprs: array(8, 'u64', 16),
});
export type KvmFpu = StructValue<typeof kvm_fpu.fields>;

/** struct kvm_s390_psw (KVM_S390_SET_INITIAL_PSW): 16 bytes. */
export const kvm_s390_psw = defineStruct('kvm_s390_psw', 16, {
  mask: u64(0),
  addr: u64(8),
});

// ---------------------------------------------------------------- ONE_REG ids

/** KVM_REG_S390 | KVM_REG_SIZE_U32/U64 | n (arch/s390/include/uapi/asm/kvm.h). */
/** TOD programmable register: a u32. */
export const KVM_REG_S390_TODPR = KVM_REG_S390 | KVM_REG_SIZE_U32 | 0x1n;
/** The vCPU's TOD epoch difference (SIE block `epoch`). */
export const KVM_REG_S390_EPOCHDIFF = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x2n;
export const KVM_REG_S390_CPU_TIMER = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x3n;
export const KVM_REG_S390_CLOCK_COMP = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x4n;
export const KVM_REG_S390_PFTOKEN = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x5n;
export const KVM_REG_S390_PFCOMPARE = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x6n;
export const KVM_REG_S390_PFSELECT = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x7n;
export const KVM_REG_S390_PP = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x8n;
export const KVM_REG_S390_GBEA = KVM_REG_S390 | KVM_REG_SIZE_U64 | 0x9n;

// ---------------------------------------------------------------- sync regs

/** kvm_valid_regs / kvm_dirty_regs bits (s390). */
export const KVM_SYNC_PREFIX = 1 << 0;
export const KVM_SYNC_GPRS = 1 << 1;
export const KVM_SYNC_ACRS = 1 << 2;
export const KVM_SYNC_CRS = 1 << 3;
/** todpr, cputm, ckc, pp, gbea. */
export const KVM_SYNC_ARCH0 = 1 << 4;
/** pft, pfs, pfc. */
export const KVM_SYNC_PFAULT = 1 << 5;
export const KVM_SYNC_VRS = 1 << 6;
export const KVM_SYNC_RICCB = 1 << 7;
export const KVM_SYNC_FPRS = 1 << 8;
export const KVM_SYNC_GSCB = 1 << 9;
export const KVM_SYNC_BPBC = 1 << 10;
export const KVM_SYNC_ETOKEN = 1 << 11;
export const KVM_SYNC_DIAG318 = 1 << 12;
/** Every bit s390 knows: KVM_RUN refuses (-EINVAL) valid or dirty masks with any other bit. */
export const KVM_SYNC_S390_VALID_FIELDS =
  KVM_SYNC_PREFIX |
  KVM_SYNC_GPRS |
  KVM_SYNC_ACRS |
  KVM_SYNC_CRS |
  KVM_SYNC_ARCH0 |
  KVM_SYNC_PFAULT |
  KVM_SYNC_VRS |
  KVM_SYNC_RICCB |
  KVM_SYNC_FPRS |
  KVM_SYNC_GSCB |
  KVM_SYNC_BPBC |
  KVM_SYNC_ETOKEN |
  KVM_SYNC_DIAG318;

/**
 * `__u8 bpbc : 1` of kvm_sync_regs: the first member of a bitfield byte, which s390's
 * big-endian bitfield allocation puts in the most significant bit.
 */
export const KVM_SYNC_REGS_BPBC_BIT = 0x80;

/** The anonymous struct inside kvm_sync_regs' state-description-annex union. 64 bytes. */
export const kvm_sync_regs_sdnx_fields = defineStruct('kvm_sync_regs.sdnx', 64, {
  reserved1: array(0, 'u64', 2),
  /** Guarded-storage control block [GSCB]. */
  gscb: array(16, 'u64', 4),
  /** [ETOKEN] */
  etoken: u64(48),
  etoken_extension: u64(56),
});

/**
 * struct kvm_sync_regs (s390), 1984 bytes: the registers shared between KVM and user space in
 * kvm_run. The two anonymous unions of the C struct are named here: `vector` (the 32 vector
 * registers, or the 16 FPRs on a machine without vectors) and `sdnx` (the 256-byte state
 * description annex, or the guarded-storage block and etoken inside it).
 *
 * Linux 5.6 had `padding2[192]` after `riccb`; 5.10 put `diag318` in its first 8 bytes
 * (`padding2[184]`), so no other offset moved.
 */
export const kvm_sync_regs = defineStruct('kvm_sync_regs', 1984, {
  /** Prefix register [PREFIX]. */
  prefix: u64(0),
  /** General registers [GPRS]. */
  gprs: array(8, 'u64', 16),
  /** Access registers [ACRS]. */
  acrs: array(136, 'u32', 16),
  /** Control registers [CRS]. */
  crs: array(200, 'u64', 16),
  /** TOD programmable register [ARCH0]. */
  todpr: u64(328),
  /** CPU timer [ARCH0]. */
  cputm: u64(336),
  /** Clock comparator [ARCH0]. */
  ckc: u64(344),
  /** Program parameter [ARCH0]. */
  pp: u64(352),
  /** Guest breaking-event address [ARCH0]. */
  gbea: u64(360),
  /** Pfault token [PFAULT]. */
  pft: u64(368),
  /** Pfault select [PFAULT]. */
  pfs: u64(376),
  /** Pfault compare [PFAULT]. */
  pfc: u64(384),
  /** vrs[32][2] (VR n = vrs[2n], vrs[2n+1]; FPR n is VR n's first doubleword) or fprs[16]. */
  vector: union(392, { vrs: array(0, 'u64', 64), fprs: array(0, 'u64', 16) }),
  reserved: bytes(904, 512),
  /** Floating-point control [VRS or FPRS]. */
  fpc: u32(1416),
  /** `bpbc : 1` (KVM_SYNC_REGS_BPBC_BIT) and `reserved2 : 7` [BPBC]. */
  bpbc: u8(1420),
  padding1: bytes(1421, 51),
  /** Runtime-instrumentation control block, 64-byte aligned [RICCB]. */
  riccb: bytes(1472, 64),
  /** Diagnose 0x318 information [DIAG318] (5.10+). */
  diag318: u64(1536),
  padding2: bytes(1544, 184),
  /** State description annex (256-byte aligned in kvm_run), holding gscb and etoken. */
  sdnx: union(1728, { sdnx: bytes(0, 256), fields: struct(0, kvm_sync_regs_sdnx_fields) }),
});
export type KvmSyncRegs = StructValue<typeof kvm_sync_regs.fields>;

// ---------------------------------------------------------------- struct kvm_run (s390)

/** kvm_run.exit_reason values of s390 (the generic ones, KVM_EXIT_INTR among them, are in kvm.ts). */
export const KVM_EXIT_S390_SIEIC = 13;
export const KVM_EXIT_S390_RESET = 14;
export const KVM_EXIT_S390_UCONTROL = 20;
export const KVM_EXIT_S390_TSCH = 22;
export const KVM_EXIT_S390_STSI = 25;

/** The s390 members of kvm_run's exit union (256 bytes at offset 48). */
const kvm_run_s390_sieic = defineStruct('kvm_run.s390_sieic', 8, {
  icptcode: u8(0),
  ipa: u16(2),
  ipb: u32(4),
});
const kvm_run_s390_ucontrol = defineStruct('kvm_run.s390_ucontrol', 16, {
  trans_exc_code: u64(0),
  pgm_code: u32(8),
});

/**
 * struct kvm_run as s390 lays it out: 2368 bytes (48 of header, 256 of exit union, the two
 * sync masks, 2048 of sync-regs union), inside the vCPU's 4096-byte mmap area.
 */
export const kvm_run_s390 = defineStruct('kvm_run (s390)', 2368, {
  request_interrupt_window: u8(0),
  /** Non-zero: KVM_RUN returns -EINTR at once. */
  immediate_exit: u8(1),
  padding1: bytes(2, 6),
  exit_reason: u32(8),
  ready_for_interrupt_injection: u8(12),
  if_flag: u8(13),
  flags: u16(14),
  cr8: u64(16),
  apic_base: u64(24),
  /** The guest PSW, upper half (s390 only). */
  psw_mask: u64(32),
  /** The guest PSW, lower half (s390 only). */
  psw_addr: u64(40),
  exit: union(
    48,
    {
      s390_sieic: struct(0, kvm_run_s390_sieic),
      s390_reset_flags: u64(0),
      s390_ucontrol: struct(0, kvm_run_s390_ucontrol),
      padding: bytes(0, 256),
    },
    256,
  ),
  /** Register classes the kernel keeps in `s` (KVM_SYNC_*). */
  kvm_valid_regs: u64(304),
  /** Register classes user space changed in `s` since the last KVM_RUN. */
  kvm_dirty_regs: u64(312),
  s: union(320, { regs: struct(0, kvm_sync_regs), padding: bytes(0, SYNC_REGS_SIZE_BYTES) }),
});
export type KvmRunS390 = StructValue<typeof kvm_run_s390.fields>;

/** Offset of `s.regs.<field>` from the start of kvm_run. */
export function syncRegOffset(field: keyof typeof kvm_sync_regs.fields & string): number {
  return kvm_run_s390.offsetof('s') + kvm_sync_regs.offsetof(field);
}

/** Offsets in kvm_run of the registers that live inside the sync regs' unions. */
export const KVM_RUN_S390_VRS_OFFSET = syncRegOffset('vector');
export const KVM_RUN_S390_GSCB_OFFSET = syncRegOffset('sdnx') + kvm_sync_regs_sdnx_fields.offsetof('gscb');
export const KVM_RUN_S390_ETOKEN_OFFSET =
  syncRegOffset('sdnx') + kvm_sync_regs_sdnx_fields.offsetof('etoken');
export const KVM_RUN_S390_ETOKEN_EXTENSION_OFFSET =
  syncRegOffset('sdnx') + kvm_sync_regs_sdnx_fields.offsetof('etoken_extension');

// ---------------------------------------------------------------- PSW, control registers

/** PSW bit 24, runtime instrumentation: cleared by every reset level. */
export const PSW_MASK_RI = 0x0000_0080_0000_0000n;
export const PSW_MASK_EXT = 0x0100_0000_0000_0000n;
export const PSW_MASK_IO = 0x0200_0000_0000_0000n;
export const PSW_MASK_MCHECK = 0x0004_0000_0000_0000n;
export const PSW_MASK_WAIT = 0x0002_0000_0000_0000n;
export const PSW_MASK_EA = 0x0000_0001_0000_0000n;
export const PSW_MASK_BA = 0x0000_0000_8000_0000n;

/** The prefix area is 8 KiB: KVM keeps prefix >> 13 (GUEST_PREFIX_SHIFT) in the SIE block. */
export const GUEST_PREFIX_SHIFT = 13;

// ---------------------------------------------------------------- interrupts

/** kvm_s390_irq.type / kvm_s390_interrupt.type codes. */
export const KVM_S390_SIGP_STOP = 0xfffe_0000;
export const KVM_S390_PROGRAM_INT = 0xfffe_0001;
export const KVM_S390_SIGP_SET_PREFIX = 0xfffe_0002;
export const KVM_S390_RESTART = 0xfffe_0003;
export const KVM_S390_INT_PFAULT_INIT = 0xfffe_0004;
export const KVM_S390_INT_PFAULT_DONE = 0xfffe_0005;
export const KVM_S390_MCHK = 0xfffe_1000;
export const KVM_S390_INT_CLOCK_COMP = 0xffff_1004;
export const KVM_S390_INT_CPU_TIMER = 0xffff_1005;
export const KVM_S390_INT_VIRTIO = 0xffff_2603;
export const KVM_S390_INT_SERVICE = 0xffff_2401;
export const KVM_S390_INT_EMERGENCY = 0xffff_1201;
export const KVM_S390_INT_EXTERNAL_CALL = 0xffff_1202;
/** Every type from 0 to KVM_S390_INT_IO_MAX is an I/O interrupt (a floating one). */
export const KVM_S390_INT_IO_MIN = 0x0000_0000;
export const KVM_S390_INT_IO_MAX = 0xfffd_ffff;
export const KVM_S390_INT_IO_AI_MASK = 0x0400_0000;

/** KVM_S390_SIGP_STOP flag: store status when the CPU stops. The only stop flag. */
export const KVM_S390_STOP_FLAG_STORE_STATUS = 0x01;

/** kvm_s390_pgm_info.flags */
export const KVM_S390_PGM_FLAGS_ILC_VALID = 0x01;
export const KVM_S390_PGM_FLAGS_ILC_0 = 0x02;
export const KVM_S390_PGM_FLAGS_ILC_1 = 0x04;
export const KVM_S390_PGM_FLAGS_ILC_MASK = 0x06;
export const KVM_S390_PGM_FLAGS_NO_REWIND = 0x08;
/** Program-interruption code of a PER event (it combines with another code). */
export const PGM_PER = 0x80;

/** Machine-check interruption code bits (asm/kvm_host.h): exigent and repressible classes. */
export const MCHK_EX_MASK = (1n << 63n) | (1n << 62n);
export const MCHK_REP_MASK = (1n << 56n) | (1n << 58n) | (1n << 55n);

/** struct kvm_s390_io_info: 12 bytes. */
export const kvm_s390_io_info = defineStruct('kvm_s390_io_info', 12, {
  subchannel_id: u16(0),
  subchannel_nr: u16(2),
  io_int_parm: u32(4),
  io_int_word: u32(8),
});
/** struct kvm_s390_ext_info: 16 bytes. */
export const kvm_s390_ext_info = defineStruct('kvm_s390_ext_info', 16, {
  ext_params: u32(0),
  pad: u32(4),
  ext_params2: u64(8),
});
/** struct kvm_s390_pgm_info: 40 bytes. */
export const kvm_s390_pgm_info = defineStruct('kvm_s390_pgm_info', 40, {
  trans_exc_code: u64(0),
  mon_code: u64(8),
  per_address: u64(16),
  data_exc_code: u32(24),
  code: u16(28),
  mon_class_nr: u16(30),
  per_code: u8(32),
  per_atmid: u8(33),
  exc_access_id: u8(34),
  per_access_id: u8(35),
  op_access_id: u8(36),
  flags: u8(37),
  pad: bytes(38, 2),
});
/** struct kvm_s390_prefix_info: 4 bytes. */
export const kvm_s390_prefix_info = defineStruct('kvm_s390_prefix_info', 4, { address: u32(0) });
/** struct kvm_s390_extcall_info: 2 bytes; `code` is the sending CPU's address. */
export const kvm_s390_extcall_info = defineStruct('kvm_s390_extcall_info', 2, { code: u16(0) });
/** struct kvm_s390_emerg_info: 2 bytes; `code` is the sending CPU's address. */
export const kvm_s390_emerg_info = defineStruct('kvm_s390_emerg_info', 2, { code: u16(0) });
/** struct kvm_s390_stop_info: 4 bytes. */
export const kvm_s390_stop_info = defineStruct('kvm_s390_stop_info', 4, { flags: u32(0) });
/** struct kvm_s390_mchk_info: 48 bytes. */
export const kvm_s390_mchk_info = defineStruct('kvm_s390_mchk_info', 48, {
  cr14: u64(0),
  mcic: u64(8),
  failing_storage_address: u64(16),
  ext_damage_code: u32(24),
  pad: u32(28),
  fixed_logout: bytes(32, 16),
});

/** struct kvm_s390_irq: a type and a 64-byte union of its parameters. 72 bytes. */
export const kvm_s390_irq = defineStruct('kvm_s390_irq', 72, {
  type: u64(0),
  u: union(
    8,
    {
      io: struct(0, kvm_s390_io_info),
      ext: struct(0, kvm_s390_ext_info),
      pgm: struct(0, kvm_s390_pgm_info),
      emerg: struct(0, kvm_s390_emerg_info),
      extcall: struct(0, kvm_s390_extcall_info),
      prefix: struct(0, kvm_s390_prefix_info),
      stop: struct(0, kvm_s390_stop_info),
      mchk: struct(0, kvm_s390_mchk_info),
      reserved: bytes(0, 64),
    },
    64,
  ),
});
export type KvmS390Irq = StructValue<typeof kvm_s390_irq.fields>;

/** struct kvm_s390_irq_state: a user buffer of kvm_s390_irq records. 32 bytes. */
export const kvm_s390_irq_state = defineStruct('kvm_s390_irq_state', 32, {
  /** User address of the kvm_s390_irq array. */
  buf: u64(0),
  /** Unused ("will stay unused for compatibility reasons"). */
  flags: u32(8),
  /** Buffer length in bytes. */
  len: u32(12),
  reserved: array(16, 'u32', 4),
});

/** struct kvm_s390_interrupt (KVM_S390_INTERRUPT, the older injection ioctl): 16 bytes. */
export const kvm_s390_interrupt = defineStruct('kvm_s390_interrupt', 16, {
  type: u32(0),
  parm: u32(4),
  parm64: u64(8),
});

/** struct kvm_translation (KVM_TRANSLATE, which s390 refuses): 24 bytes. */
export const kvm_translation = defineStruct('kvm_translation', 24, {
  linear_address: u64(0),
  physical_address: u64(8),
  valid: u8(16),
  writeable: u8(17),
  usermode: u8(18),
  pad: bytes(19, 5),
});

/** The local interrupts a vCPU can hold (LOCAL_IRQS in kvm-s390.c). */
export const LOCAL_IRQS = 32;
/** KVM_MAX_VCPUS on s390. */
export const KVM_S390_MAX_VCPUS = 255;
/** KVM_S390_SET_IRQ_STATE refuses a longer buffer: sizeof(kvm_s390_irq) * (KVM_MAX_VCPUS + LOCAL_IRQS). */
export const VCPU_IRQS_MAX_BUF = kvm_s390_irq.size * (KVM_S390_MAX_VCPUS + LOCAL_IRQS);

// ---------------------------------------------------------------- ioctl numbers (s390 sizes)

/** _IOR(KVMIO, 0x81, struct kvm_regs), 128 bytes. */
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, kvm_regs.size);
/** _IOW(KVMIO, 0x82, struct kvm_regs), 128 bytes. */
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, kvm_regs.size);
/** _IOR(KVMIO, 0x83, struct kvm_sregs), 192 bytes. */
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, kvm_sregs.size);
/** _IOW(KVMIO, 0x84, struct kvm_sregs), 192 bytes. */
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, kvm_sregs.size);
/** _IOWR(KVMIO, 0x85, struct kvm_translation), 24 bytes. */
export const KVM_TRANSLATE = _IOWR(KVMIO, 0x85, kvm_translation.size);
/** _IOR(KVMIO, 0x8c, struct kvm_fpu), 136 bytes. */
export const KVM_GET_FPU = _IOR(KVMIO, 0x8c, kvm_fpu.size);
/** _IOW(KVMIO, 0x8d, struct kvm_fpu), 136 bytes. */
export const KVM_SET_FPU = _IOW(KVMIO, 0x8d, kvm_fpu.size);
/** _IOW(KVMIO, 0x94, struct kvm_s390_interrupt), 16 bytes. A vCPU and a VM ioctl. */
export const KVM_S390_INTERRUPT = _IOW(KVMIO, 0x94, kvm_s390_interrupt.size);
/** _IOW(KVMIO, 0x95, unsigned long), 8 bytes; the argument is a guest address, not a pointer. */
export const KVM_S390_STORE_STATUS = _IOW(KVMIO, 0x95, 8);
/** _IOW(KVMIO, 0x96, struct kvm_s390_psw), 16 bytes. */
export const KVM_S390_SET_INITIAL_PSW = _IOW(KVMIO, 0x96, kvm_s390_psw.size);
/** _IOW(KVMIO, 0xb4, struct kvm_s390_irq), 72 bytes. */
export const KVM_S390_IRQ = _IOW(KVMIO, 0xb4, kvm_s390_irq.size);
/** _IOW(KVMIO, 0xb5, struct kvm_s390_irq_state), 32 bytes. */
export const KVM_S390_SET_IRQ_STATE = _IOW(KVMIO, 0xb5, kvm_s390_irq_state.size);
/** _IOW(KVMIO, 0xb6, struct kvm_s390_irq_state), 32 bytes (the kernel writes through `buf`). */
export const KVM_S390_GET_IRQ_STATE = _IOW(KVMIO, 0xb6, kvm_s390_irq_state.size);

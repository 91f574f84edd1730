/**
 * The s390 KVM uAPI as literals written out from arch/s390/include/uapi/asm/kvm.h and
 * include/uapi/linux/kvm.h: every struct's size, alignment and field offsets, the ioctl numbers
 * with their s390 struct sizes, the ONE_REG ids, the sync-regs bits, the interrupt type codes.
 */

import { describe, expect, it } from 'vitest';
import { _IOC_DIR, _IOC_SIZE, IOC_READ, IOC_WRITE } from './ioctl.ts';
import { KVM_GET_MP_STATE, KVM_SET_MP_STATE, kvm_mp_state, kvm_one_reg } from './kvm.ts';
import {
  KVM_CAP_S390_BPB,
  KVM_CAP_S390_CSS_SUPPORT,
  KVM_CAP_S390_DIAG318,
  KVM_CAP_S390_GS,
  KVM_CAP_S390_INJECT_IRQ,
  KVM_CAP_S390_IRQ_STATE,
  KVM_CAP_S390_PSW,
  KVM_CAP_S390_RI,
  KVM_CAP_S390_UCONTROL,
  KVM_CAP_S390_USER_SIGP,
  KVM_CAP_S390_USER_STSI,
  KVM_CAP_S390_VECTOR_REGISTERS,
  KVM_EXIT_S390_SIEIC,
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
  KVM_RUN_S390_ETOKEN_EXTENSION_OFFSET,
  KVM_RUN_S390_ETOKEN_OFFSET,
  KVM_RUN_S390_GSCB_OFFSET,
  KVM_RUN_S390_VRS_OFFSET,
  KVM_S390_GET_IRQ_STATE,
  KVM_S390_INT_CLOCK_COMP,
  KVM_S390_INT_CPU_TIMER,
  KVM_S390_INT_EMERGENCY,
  KVM_S390_INT_EXTERNAL_CALL,
  KVM_S390_INT_IO_MAX,
  KVM_S390_INT_PFAULT_DONE,
  KVM_S390_INT_PFAULT_INIT,
  KVM_S390_INT_SERVICE,
  KVM_S390_INT_VIRTIO,
  KVM_S390_INTERRUPT,
  KVM_S390_IRQ,
  KVM_S390_MAX_VCPUS,
  KVM_S390_MCHK,
  KVM_S390_PROGRAM_INT,
  KVM_S390_RESTART,
  KVM_S390_SET_INITIAL_PSW,
  KVM_S390_SET_IRQ_STATE,
  KVM_S390_SIGP_SET_PREFIX,
  KVM_S390_SIGP_STOP,
  KVM_S390_STORE_STATUS,
  KVM_SET_FPU,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SYNC_ACRS,
  KVM_SYNC_ARCH0,
  KVM_SYNC_BPBC,
  KVM_SYNC_CRS,
  KVM_SYNC_DIAG318,
  KVM_SYNC_ETOKEN,
  KVM_SYNC_FPRS,
  KVM_SYNC_GPRS,
  KVM_SYNC_GSCB,
  KVM_SYNC_PFAULT,
  KVM_SYNC_PREFIX,
  KVM_SYNC_RICCB,
  KVM_SYNC_S390_VALID_FIELDS,
  KVM_SYNC_VRS,
  KVM_TRANSLATE,
  KVM_VM_S390_UCONTROL,
  kvm_fpu,
  kvm_regs,
  kvm_run_s390,
  kvm_s390_emerg_info,
  kvm_s390_ext_info,
  kvm_s390_extcall_info,
  kvm_s390_interrupt,
  kvm_s390_io_info,
  kvm_s390_irq,
  kvm_s390_irq_state,
  kvm_s390_mchk_info,
  kvm_s390_pgm_info,
  kvm_s390_prefix_info,
  kvm_s390_psw,
  kvm_s390_stop_info,
  kvm_sregs,
  kvm_sync_regs,
  kvm_sync_regs_sdnx_fields,
  kvm_translation,
  LOCAL_IRQS,
  MCHK_EX_MASK,
  MCHK_REP_MASK,
  PSW_MASK_RI,
  syncRegOffset,
  VCPU_IRQS_MAX_BUF,
} from './kvm-s390.ts';
import { expectLayout } from './layout-testing.ts';

describe('register structs (arch/s390/include/uapi/asm/kvm.h)', () => {
  it('struct kvm_regs: gprs[16], 128 bytes', () => {
    expectLayout(kvm_regs, 128, 8, [['gprs', 0, 128]]);
  });

  it('struct kvm_sregs: acrs[16] u32 then crs[16] u64, 192 bytes', () => {
    expectLayout(kvm_sregs, 192, 8, [
      ['acrs', 0, 64],
      ['crs', 64, 128],
    ]);
  });

  it('struct kvm_fpu: fpc, 4 bytes of padding, fprs[16]; 136 bytes', () => {
    expectLayout(kvm_fpu, 136, 8, [
      ['fpc', 0, 4],
      ['fprs', 8, 128],
    ]);
  });

  it('struct kvm_s390_psw: 16 bytes', () => {
    expectLayout(kvm_s390_psw, 16, 8, [
      ['mask', 0, 8],
      ['addr', 8, 8],
    ]);
  });

  it('the generic kvm_one_reg and kvm_mp_state s390 uses: 16 and 4 bytes', () => {
    expectLayout(kvm_one_reg, 16, 8, [
      ['id', 0, 8],
      ['addr', 8, 8],
    ]);
    expectLayout(kvm_mp_state, 4, 4, [['mp_state', 0, 4]]);
  });
});

describe('struct kvm_sync_regs (s390), 1984 bytes', () => {
  it('every field at its offset', () => {
    expectLayout(kvm_sync_regs, 1984, 8, [
      ['prefix', 0, 8],
      ['gprs', 8, 128],
      ['acrs', 136, 64],
      ['crs', 200, 128],
      ['todpr', 328, 8],
      ['cputm', 336, 8],
      ['ckc', 344, 8],
      ['pp', 352, 8],
      ['gbea', 360, 8],
      ['pft', 368, 8],
      ['pfs', 376, 8],
      ['pfc', 384, 8],
      ['vector', 392, 512],
      ['reserved', 904, 512],
      ['fpc', 1416, 4],
      ['bpbc', 1420, 1],
      ['padding1', 1421, 51],
      ['riccb', 1472, 64],
      ['diag318', 1536, 8],
      ['padding2', 1544, 184],
      ['sdnx', 1728, 256],
    ]);
  });

  it('the state-description annex holds gscb[4], etoken and etoken_extension', () => {
    expectLayout(kvm_sync_regs_sdnx_fields, 64, 8, [
      ['reserved1', 0, 16],
      ['gscb', 16, 32],
      ['etoken', 48, 8],
      ['etoken_extension', 56, 8],
    ]);
  });

  it('riccb is 64-byte and the annex 256-byte aligned within kvm_run', () => {
    expect(syncRegOffset('riccb') % 64).toBe(0);
    expect(syncRegOffset('sdnx') % 256).toBe(0);
  });

  it("the union: fprs[i] is the i-th doubleword of vrs, so VR n's first doubleword is fprs[2n]", () => {
    const b = new Uint8Array(kvm_sync_regs.size);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(392, 0x3ff0_0000_0000_0000n, true); // vrs[0][0]
    dv.setBigUint64(392 + 16, 7n, true); // vrs[1][0]
    const v = kvm_sync_regs.decode(b);
    expect(v.vector.fprs[0]).toBe(0x3ff0_0000_0000_0000n);
    expect(v.vector.vrs[0]).toBe(0x3ff0_0000_0000_0000n);
    expect(v.vector.vrs[2]).toBe(7n);
    expect(v.vector.fprs[2]).toBe(7n);
  });
});

describe('struct kvm_run as s390 lays it out', () => {
  it('psw_mask/psw_addr at 32/40 move the exit union to 48 and the sync regs to 320', () => {
    expectLayout(kvm_run_s390, 2368, 8, [
      ['request_interrupt_window', 0, 1],
      ['immediate_exit', 1, 1],
      ['padding1', 2, 6],
      ['exit_reason', 8, 4],
      ['ready_for_interrupt_injection', 12, 1],
      ['if_flag', 13, 1],
      ['flags', 14, 2],
      ['cr8', 16, 8],
      ['apic_base', 24, 8],
      ['psw_mask', 32, 8],
      ['psw_addr', 40, 8],
      ['exit', 48, 256],
      ['kvm_valid_regs', 304, 8],
      ['kvm_dirty_regs', 312, 8],
      ['s', 320, 2048],
    ]);
  });

  it('offsets of the registers inside the unions', () => {
    expect(KVM_RUN_S390_VRS_OFFSET).toBe(320 + 392);
    expect(KVM_RUN_S390_GSCB_OFFSET).toBe(320 + 1744);
    expect(KVM_RUN_S390_ETOKEN_OFFSET).toBe(320 + 1776);
    expect(KVM_RUN_S390_ETOKEN_EXTENSION_OFFSET).toBe(320 + 1784);
    expect(syncRegOffset('gprs')).toBe(328);
    expect(syncRegOffset('riccb')).toBe(1792);
    expect(syncRegOffset('sdnx')).toBe(2048);
  });

  it('fits in the one-page vCPU mmap area', () => {
    expect(kvm_run_s390.size).toBeLessThanOrEqual(4096);
  });
});

describe('interrupt structs', () => {
  it('the payload structs', () => {
    expectLayout(kvm_s390_io_info, 12, 4, [
      ['subchannel_id', 0, 2],
      ['subchannel_nr', 2, 2],
      ['io_int_parm', 4, 4],
      ['io_int_word', 8, 4],
    ]);
    expectLayout(kvm_s390_ext_info, 16, 8, [
      ['ext_params', 0, 4],
      ['pad', 4, 4],
      ['ext_params2', 8, 8],
    ]);
    expectLayout(kvm_s390_pgm_info, 40, 8, [
      ['trans_exc_code', 0, 8],
      ['mon_code', 8, 8],
      ['per_address', 16, 8],
      ['data_exc_code', 24, 4],
      ['code', 28, 2],
      ['mon_class_nr', 30, 2],
      ['per_code', 32, 1],
      ['per_atmid', 33, 1],
      ['exc_access_id', 34, 1],
      ['per_access_id', 35, 1],
      ['op_access_id', 36, 1],
      ['flags', 37, 1],
      ['pad', 38, 2],
    ]);
    expectLayout(kvm_s390_prefix_info, 4, 4, [['address', 0, 4]]);
    expectLayout(kvm_s390_extcall_info, 2, 2, [['code', 0, 2]]);
    expectLayout(kvm_s390_emerg_info, 2, 2, [['code', 0, 2]]);
    expectLayout(kvm_s390_stop_info, 4, 4, [['flags', 0, 4]]);
    expectLayout(kvm_s390_mchk_info, 48, 8, [
      ['cr14', 0, 8],
      ['mcic', 8, 8],
      ['failing_storage_address', 16, 8],
      ['ext_damage_code', 24, 4],
      ['pad', 28, 4],
      ['fixed_logout', 32, 16],
    ]);
  });

  it('struct kvm_s390_irq: type u64 and a 64-byte union, 72 bytes', () => {
    expectLayout(kvm_s390_irq, 72, 8, [
      ['type', 0, 8],
      ['u', 8, 64],
    ]);
  });

  it('struct kvm_s390_irq_state: 32 bytes', () => {
    expectLayout(kvm_s390_irq_state, 32, 8, [
      ['buf', 0, 8],
      ['flags', 8, 4],
      ['len', 12, 4],
      ['reserved', 16, 16],
    ]);
  });

  it('struct kvm_s390_interrupt: 16 bytes; struct kvm_translation: 24 bytes', () => {
    expectLayout(kvm_s390_interrupt, 16, 8, [
      ['type', 0, 4],
      ['parm', 4, 4],
      ['parm64', 8, 8],
    ]);
    expectLayout(kvm_translation, 24, 8, [
      ['linear_address', 0, 8],
      ['physical_address', 8, 8],
      ['valid', 16, 1],
      ['writeable', 17, 1],
      ['usermode', 18, 1],
      ['pad', 19, 5],
    ]);
  });

  it('type codes', () => {
    expect(KVM_S390_SIGP_STOP).toBe(0xfffe0000);
    expect(KVM_S390_PROGRAM_INT).toBe(0xfffe0001);
    expect(KVM_S390_SIGP_SET_PREFIX).toBe(0xfffe0002);
    expect(KVM_S390_RESTART).toBe(0xfffe0003);
    expect(KVM_S390_INT_PFAULT_INIT).toBe(0xfffe0004);
    expect(KVM_S390_INT_PFAULT_DONE).toBe(0xfffe0005);
    expect(KVM_S390_MCHK).toBe(0xfffe1000);
    expect(KVM_S390_INT_CLOCK_COMP).toBe(0xffff1004);
    expect(KVM_S390_INT_CPU_TIMER).toBe(0xffff1005);
    expect(KVM_S390_INT_VIRTIO).toBe(0xffff2603);
    expect(KVM_S390_INT_SERVICE).toBe(0xffff2401);
    expect(KVM_S390_INT_EMERGENCY).toBe(0xffff1201);
    expect(KVM_S390_INT_EXTERNAL_CALL).toBe(0xffff1202);
    expect(KVM_S390_INT_IO_MAX).toBe(0xfffdffff);
  });

  it('machine-check classes and buffer limits', () => {
    expect(MCHK_EX_MASK).toBe(0xc000_0000_0000_0000n);
    expect(MCHK_REP_MASK).toBe(0x0580_0000_0000_0000n);
    expect(LOCAL_IRQS).toBe(32);
    expect(KVM_S390_MAX_VCPUS).toBe(255);
    expect(VCPU_IRQS_MAX_BUF).toBe(72 * 287);
  });
});

describe('ioctl numbers (s390 struct sizes)', () => {
  it('register ioctls', () => {
    expect(KVM_GET_REGS).toBe(0x8080ae81);
    expect(KVM_SET_REGS).toBe(0x4080ae82);
    expect(KVM_GET_SREGS).toBe(0x80c0ae83);
    expect(KVM_SET_SREGS).toBe(0x40c0ae84);
    expect(KVM_TRANSLATE).toBe(0xc018ae85);
    expect(KVM_GET_FPU).toBe(0x8088ae8c);
    expect(KVM_SET_FPU).toBe(0x4088ae8d);
    expect(KVM_GET_MP_STATE).toBe(0x8004ae98);
    expect(KVM_SET_MP_STATE).toBe(0x4004ae99);
  });

  it('s390 vCPU ioctls', () => {
    expect(KVM_S390_INTERRUPT).toBe(0x4010ae94);
    expect(KVM_S390_STORE_STATUS).toBe(0x4008ae95);
    expect(KVM_S390_SET_INITIAL_PSW).toBe(0x4010ae96);
    expect(KVM_S390_IRQ).toBe(0x4048aeb4);
    expect(KVM_S390_SET_IRQ_STATE).toBe(0x4020aeb5);
    expect(KVM_S390_GET_IRQ_STATE).toBe(0x4020aeb6);
  });

  it('GET_IRQ_STATE is _IOW although the kernel writes through buf; GET_REGS is _IOR', () => {
    expect(_IOC_DIR(KVM_S390_GET_IRQ_STATE)).toBe(IOC_WRITE);
    expect(_IOC_DIR(KVM_GET_REGS)).toBe(IOC_READ);
    expect(_IOC_SIZE(KVM_S390_IRQ)).toBe(kvm_s390_irq.size);
  });
});

describe('ONE_REG ids, sync bits, PSW, capabilities', () => {
  it('KVM_REG_S390 | size | n', () => {
    expect(KVM_REG_S390_TODPR).toBe(0x5020_0000_0000_0001n);
    expect(KVM_REG_S390_EPOCHDIFF).toBe(0x5030_0000_0000_0002n);
    expect(KVM_REG_S390_CPU_TIMER).toBe(0x5030_0000_0000_0003n);
    expect(KVM_REG_S390_CLOCK_COMP).toBe(0x5030_0000_0000_0004n);
    expect(KVM_REG_S390_PFTOKEN).toBe(0x5030_0000_0000_0005n);
    expect(KVM_REG_S390_PFCOMPARE).toBe(0x5030_0000_0000_0006n);
    expect(KVM_REG_S390_PFSELECT).toBe(0x5030_0000_0000_0007n);
    expect(KVM_REG_S390_PP).toBe(0x5030_0000_0000_0008n);
    expect(KVM_REG_S390_GBEA).toBe(0x5030_0000_0000_0009n);
  });

  it('KVM_SYNC_* bits', () => {
    expect([
      KVM_SYNC_PREFIX,
      KVM_SYNC_GPRS,
      KVM_SYNC_ACRS,
      KVM_SYNC_CRS,
      KVM_SYNC_ARCH0,
      KVM_SYNC_PFAULT,
      KVM_SYNC_VRS,
      KVM_SYNC_RICCB,
      KVM_SYNC_FPRS,
      KVM_SYNC_GSCB,
      KVM_SYNC_BPBC,
      KVM_SYNC_ETOKEN,
      KVM_SYNC_DIAG318,
    ]).toEqual([1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800, 0x1000]);
    expect(KVM_SYNC_S390_VALID_FIELDS).toBe(0x1fff);
  });

  it('PSW_MASK_RI is PSW bit 24', () => {
    expect(PSW_MASK_RI).toBe(0x0000_0080_0000_0000n);
    expect(PSW_MASK_RI).toBe(1n << (63n - 24n));
  });

  it('capability numbers and the ucontrol VM type', () => {
    expect(KVM_CAP_S390_PSW).toBe(42);
    expect(KVM_CAP_S390_UCONTROL).toBe(73);
    expect(KVM_CAP_S390_CSS_SUPPORT).toBe(85);
    expect(KVM_CAP_S390_USER_SIGP).toBe(106);
    expect(KVM_CAP_S390_VECTOR_REGISTERS).toBe(107);
    expect(KVM_CAP_S390_USER_STSI).toBe(109);
    expect(KVM_CAP_S390_INJECT_IRQ).toBe(113);
    expect(KVM_CAP_S390_IRQ_STATE).toBe(114);
    expect(KVM_CAP_S390_RI).toBe(124);
    expect(KVM_CAP_S390_GS).toBe(140);
    expect(KVM_CAP_S390_BPB).toBe(152);
    expect(KVM_CAP_S390_DIAG318).toBe(186);
    expect(KVM_VM_S390_UCONTROL).toBe(1);
    expect(KVM_EXIT_S390_SIEIC).toBe(13);
  });
});

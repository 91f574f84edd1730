/**
 * Facts of the KVM uAPI as vsva models it: every ioctl number as a literal (checked against
 * Linux's include/uapi/linux/kvm.h), and the s390 vCPU reset constants of seed-spec §4.1.
 */

import { describe, expect, it } from 'vitest';
import { _IOC_DIR, _IOC_SIZE, IOC_WRITE } from './ioctl.ts';
import {
  CR0_INITIAL_MASK,
  CR14_INITIAL_MASK,
  KVM_API_VERSION,
  KVM_ARM_PREFERRED_TARGET,
  KVM_ARM_VCPU_INIT,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_DEVICE,
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_ENABLE_CAP,
  KVM_GET_API_VERSION,
  KVM_GET_DEVICE_ATTR,
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_GET_REG_LIST,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_HAS_DEVICE_ATTR,
  KVM_IOEVENTFD,
  KVM_IRQ_LINE,
  KVM_IRQFD,
  KVM_REG_ARM_CORE,
  KVM_REG_ARM64,
  KVM_REG_SIZE_U32,
  KVM_REG_SIZE_U64,
  KVM_REG_SIZE_U128,
  KVM_RUN,
  KVM_RUN_EXIT_OFFSET,
  KVM_S390_CLEAR_RESET,
  KVM_S390_INITIAL_RESET,
  KVM_S390_NORMAL_RESET,
  KVM_S390_PFAULT_TOKEN_INVALID,
  KVM_SET_DEVICE_ATTR,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  KVM_SET_USER_MEMORY_REGION,
  KVMIO,
  kvm_create_device,
  kvm_device_attr,
  kvm_enable_cap,
  kvm_ioeventfd,
  kvm_irq_level,
  kvm_irqfd,
  kvm_mp_state,
  kvm_one_reg,
  kvm_reg_list,
  kvm_regs_arm64,
  kvm_run,
  kvm_run_mmio,
  kvm_userspace_memory_region,
  kvm_vcpu_init,
  kvmRegSize,
} from './kvm.ts';
import { expectLayout } from './layout-testing.ts';

describe('KVMIO and the API version', () => {
  it('are 0xAE and 12', () => {
    expect(KVMIO).toBe(0xae);
    expect(KVM_API_VERSION).toBe(12);
  });
});

describe('generic ioctl numbers', () => {
  it('system and VM ioctls', () => {
    expect(KVM_GET_API_VERSION).toBe(0xae00);
    expect(KVM_CREATE_VM).toBe(0xae01);
    expect(KVM_CHECK_EXTENSION).toBe(0xae03);
    expect(KVM_GET_VCPU_MMAP_SIZE).toBe(0xae04);
    expect(KVM_CREATE_VCPU).toBe(0xae41);
    expect(KVM_SET_USER_MEMORY_REGION).toBe(0x4020ae46);
    expect(KVM_IRQFD).toBe(0x4020ae76);
    expect(KVM_IOEVENTFD).toBe(0x4040ae79);
    expect(KVM_ENABLE_CAP).toBe(0x4068aea3);
  });

  it('vCPU ioctls', () => {
    expect(KVM_RUN).toBe(0xae80);
    expect(KVM_GET_ONE_REG).toBe(0x4010aeab);
    expect(KVM_SET_ONE_REG).toBe(0x4010aeac);
  });

  it('embed the struct sizes of issue 5 (user → kernel)', () => {
    const sizes = [
      [KVM_SET_USER_MEMORY_REGION, 32],
      [KVM_IRQFD, 32],
      [KVM_IOEVENTFD, 64],
      [KVM_ENABLE_CAP, 104],
      [KVM_GET_ONE_REG, 16],
      [KVM_SET_ONE_REG, 16],
    ] as const;
    for (const [req, size] of sizes) {
      expect(_IOC_SIZE(req)).toBe(size);
      expect(_IOC_DIR(req)).toBe(IOC_WRITE);
    }
  });
});

describe('s390 vCPU resets (§4.1)', () => {
  it('ioctl numbers and capability', () => {
    expect(KVM_S390_INITIAL_RESET).toBe(0xae97);
    expect(KVM_S390_NORMAL_RESET).toBe(0xaec3);
    expect(KVM_S390_CLEAR_RESET).toBe(0xaec4);
    expect(KVM_CAP_S390_VCPU_RESETS).toBe(179);
  });

  it('initial control-register values', () => {
    expect(CR0_INITIAL_MASK).toBe(0xe0);
    expect(CR0_INITIAL_MASK).toBe(0x80 | 0x40 | 0x20);
    expect(CR14_INITIAL_MASK).toBe(0xc2000000);
    expect(CR14_INITIAL_MASK).toBe(0x80000000 + 0x40000000 + 0x02000000);
  });

  it('the invalid pfault token is all ones (confirmed: 0xffffffffffffffffULL in uapi/asm/kvm.h)', () => {
    expect(KVM_S390_PFAULT_TOKEN_INVALID).toBe(0xffff_ffff_ffff_ffffn);
    expect(KVM_S390_PFAULT_TOKEN_INVALID).toBe(2n ** 64n - 1n);
  });
});

describe('generic struct layouts (include/uapi/linux/kvm.h)', () => {
  it('kvm_userspace_memory_region, kvm_irqfd, kvm_ioeventfd', () => {
    expectLayout(kvm_userspace_memory_region, 32, 8, [
      ['slot', 0, 4],
      ['flags', 4, 4],
      ['guest_phys_addr', 8, 8],
      ['memory_size', 16, 8],
      ['userspace_addr', 24, 8],
    ]);
    expectLayout(kvm_irqfd, 32, 4, [
      ['fd', 0, 4],
      ['gsi', 4, 4],
      ['flags', 8, 4],
      ['resamplefd', 12, 4],
      ['pad', 16, 16],
    ]);
    expectLayout(kvm_ioeventfd, 64, 8, [
      ['datamatch', 0, 8],
      ['addr', 8, 8],
      ['len', 16, 4],
      ['fd', 20, 4],
      ['flags', 24, 4],
      ['pad', 28, 36],
    ]);
  });

  it('kvm_irq_level, kvm_one_reg, kvm_mp_state, kvm_enable_cap, kvm_reg_list', () => {
    expectLayout(kvm_irq_level, 8, 4, [
      ['irq', 0, 4],
      ['level', 4, 4],
    ]);
    expectLayout(kvm_one_reg, 16, 8, [
      ['id', 0, 8],
      ['addr', 8, 8],
    ]);
    expectLayout(kvm_mp_state, 4, 4, [['mp_state', 0, 4]]);
    expectLayout(kvm_enable_cap, 104, 8, [
      ['cap', 0, 4],
      ['flags', 4, 4],
      ['args', 8, 32],
      ['pad', 40, 64],
    ]);
    expectLayout(kvm_reg_list, 8, 8, [['n', 0, 8]]);
  });

  it('kvm_create_device and kvm_device_attr', () => {
    expectLayout(kvm_create_device, 12, 4, [
      ['type', 0, 4],
      ['fd', 4, 4],
      ['flags', 8, 4],
    ]);
    expectLayout(kvm_device_attr, 24, 8, [
      ['flags', 0, 4],
      ['group', 4, 4],
      ['attr', 8, 8],
      ['addr', 16, 8],
    ]);
  });

  it('kvm_run.mmio: phys_addr, data[8], len, is_write — 24 bytes at exit offset 32', () => {
    expectLayout(kvm_run_mmio, 24, 8, [
      ['phys_addr', 0, 8],
      ['data', 8, 8],
      ['len', 16, 4],
      ['is_write', 20, 1],
    ]);
    expect(KVM_RUN_EXIT_OFFSET).toBe(kvm_run.offsetof('exit'));
  });

  it('kvm_run (non-s390): sync registers at 304, 2352 bytes', () => {
    expectLayout(kvm_run, 2352, 8, [
      ['request_interrupt_window', 0, 1],
      ['immediate_exit', 1, 1],
      ['padding1', 2, 6],
      ['exit_reason', 8, 4],
      ['ready_for_interrupt_injection', 12, 1],
      ['if_flag', 13, 1],
      ['flags', 14, 2],
      ['cr8', 16, 8],
      ['apic_base', 24, 8],
      ['exit', 32, 256],
      ['kvm_valid_regs', 288, 8],
      ['kvm_dirty_regs', 296, 8],
      ['s', 304, 2048],
    ]);
  });

  it('ioctl numbers of the interrupt, MP-state, device and register-list ioctls', () => {
    expect(KVM_CREATE_IRQCHIP).toBe(0xae60);
    expect(KVM_IRQ_LINE).toBe(0x4008ae61);
    expect(KVM_GET_MP_STATE).toBe(0x8004ae98);
    expect(KVM_SET_MP_STATE).toBe(0x4004ae99);
    expect(KVM_CREATE_DEVICE).toBe(0xc00caee0);
    expect(KVM_SET_DEVICE_ATTR).toBe(0x4018aee1);
    expect(KVM_GET_DEVICE_ATTR).toBe(0x4018aee2);
    expect(KVM_HAS_DEVICE_ATTR).toBe(0x4018aee3);
    expect(KVM_GET_REG_LIST).toBe(0xc008aeb0);
  });
});

describe('arm64 (arch/arm64/include/uapi/asm/kvm.h)', () => {
  it('kvm_vcpu_init and its ioctls', () => {
    expectLayout(kvm_vcpu_init, 32, 4, [
      ['target', 0, 4],
      ['features', 4, 28],
    ]);
    expect(KVM_ARM_VCPU_INIT).toBe(0x4020aeae);
    expect(KVM_ARM_PREFERRED_TARGET).toBe(0x8020aeaf);
  });

  it('struct kvm_regs: user_pt_regs, EL1 state, then 16-byte-aligned FP/SIMD; 864 bytes', () => {
    expectLayout(kvm_regs_arm64, 864, 16, [
      ['regs', 0, 248],
      ['sp', 248, 8],
      ['pc', 256, 8],
      ['pstate', 264, 8],
      ['sp_el1', 272, 8],
      ['elr_el1', 280, 8],
      ['spsr', 288, 40],
      ['vregs', 336, 512],
      ['fpsr', 848, 4],
      ['fpcr', 852, 4],
      ['reserved', 856, 8],
    ]);
  });

  it('ONE_REG ids: arch, size and coprocessor fields; the PC id as Linux spells it', () => {
    expect(KVM_REG_ARM64).toBe(0x6000_0000_0000_0000n);
    expect(KVM_REG_ARM_CORE).toBe(0x0010_0000n);
    // KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offsetof(kvm_regs, regs.pc) / 4)
    expect(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | 64n).toBe(0x6030_0000_0010_0040n);
    expect(kvmRegSize(KVM_REG_SIZE_U32)).toBe(4);
    expect(kvmRegSize(KVM_REG_SIZE_U64)).toBe(8);
    expect(kvmRegSize(KVM_REG_SIZE_U128)).toBe(16);
  });
});

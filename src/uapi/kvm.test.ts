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
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_ENABLE_CAP,
  KVM_GET_API_VERSION,
  KVM_GET_ONE_REG,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_IOEVENTFD,
  KVM_IRQFD,
  KVM_RUN,
  KVM_S390_CLEAR_RESET,
  KVM_S390_INITIAL_RESET,
  KVM_S390_NORMAL_RESET,
  KVM_S390_PFAULT_TOKEN_INVALID,
  KVM_SET_ONE_REG,
  KVM_SET_USER_MEMORY_REGION,
  KVMIO,
} from './kvm.ts';

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

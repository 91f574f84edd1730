/**
 * The s390 architecture as the generic KVM layer sees it: VM types, capabilities, vCPU limits,
 * memory-slot checks, VM-level KVM_ENABLE_CAP, interrupt lines and VM ioctls.
 */

import { describe, expect, it } from 'vitest';
import { EBUSY, EEXIST, EINVAL, ENOTTY } from '../../../uapi/errno.ts';
import {
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQFD,
  KVM_CAP_MAX_VCPU_ID,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_MP_STATE,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_ONE_REG,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CAP_SYNC_REGS,
  KVM_IRQ_LINE,
} from '../../../uapi/kvm.ts';
import {
  KVM_CAP_S390_BPB,
  KVM_CAP_S390_DIAG318,
  KVM_CAP_S390_GS,
  KVM_CAP_S390_INJECT_IRQ,
  KVM_CAP_S390_IRQ_STATE,
  KVM_CAP_S390_IRQCHIP,
  KVM_CAP_S390_PSW,
  KVM_CAP_S390_RI,
  KVM_CAP_S390_UCONTROL,
  KVM_CAP_S390_USER_SIGP,
  KVM_CAP_S390_USER_STSI,
  KVM_CAP_S390_VECTOR_REGISTERS,
  KVM_S390_INTERRUPT,
  KVM_VM_S390_UCONTROL,
  kvm_run_s390,
} from '../../../uapi/kvm-s390.ts';
import { IoctlArg } from '../../uaccess.ts';
import { KvmRunArea } from '../arch.ts';
import { S390Harness } from './test-harness.ts';
import { S390_MEM_LIMIT, S390Vm, s390Arch } from './vm.ts';

describe('s390Arch()', () => {
  it('is s390x, one page of run area, 32 memory slots, no read-only memory', () => {
    const a = s390Arch();
    expect(a.name).toBe('s390x');
    expect(a.vcpuMmapSize).toBe(4096);
    expect(a.memSlots).toBe(32);
    expect(a.readonlyMem).toBe(false);
    expect(kvm_run_s390.size).toBeLessThanOrEqual(a.vcpuMmapSize);
  });

  it('KVM_CREATE_VM: type 0 makes a VM; ucontrol (1) and any other type are -EINVAL', () => {
    const a = s390Arch();
    const vm = a.createVm(0);
    expect(vm).toBeInstanceOf(S390Vm);
    expect(a.createVm(KVM_VM_S390_UCONTROL)).toBe(-EINVAL);
    expect(a.createVm(2)).toBe(-EINVAL);
    expect(a.createVm(0x8000_0000)).toBe(-EINVAL);
  });

  it('reports what vsva models, the same on /dev/kvm and on a VM', () => {
    const a = s390Arch();
    const vm = new S390Vm();
    const expected: [number, number][] = [
      [KVM_CAP_S390_VCPU_RESETS, 1],
      [KVM_CAP_S390_PSW, 1],
      [KVM_CAP_SYNC_REGS, 1],
      [KVM_CAP_ONE_REG, 1],
      [KVM_CAP_MP_STATE, 1],
      [KVM_CAP_IMMEDIATE_EXIT, 1],
      [KVM_CAP_S390_INJECT_IRQ, 1],
      [KVM_CAP_S390_IRQ_STATE, 1],
      [KVM_CAP_S390_USER_SIGP, 1],
      [KVM_CAP_S390_USER_STSI, 1],
      [KVM_CAP_S390_VECTOR_REGISTERS, 1],
      [KVM_CAP_S390_RI, 1],
      [KVM_CAP_S390_GS, 1],
      [KVM_CAP_S390_BPB, 1],
      [KVM_CAP_S390_DIAG318, 1],
      [KVM_CAP_NR_VCPUS, 255],
      [KVM_CAP_MAX_VCPUS, 255],
      [KVM_CAP_MAX_VCPU_ID, 255],
      [KVM_CAP_S390_UCONTROL, 0],
      [KVM_CAP_S390_IRQCHIP, 0],
      [KVM_CAP_IRQFD, 0],
      [119, 0],
      [100_000, 0],
    ];
    for (const [cap, r] of expected) {
      expect(a.checkExtension(cap)).toBe(r);
      expect(vm.checkExtension(cap)).toBe(r);
    }
  });
});

describe('an s390 VM', () => {
  it('limits: 255 vCPUs, ids below 255, one run page', () => {
    const vm = new S390Vm();
    expect(vm.maxVcpus).toBe(255);
    expect(vm.maxVcpuId).toBe(255);
    expect(vm.runPages).toBe(1);
    expect(vm.precreateVcpu(0)).toBe(0);
    expect(vm.precreateVcpu(254)).toBe(0);
    expect(vm.precreateVcpu(255)).toBe(-EINVAL);
    expect(vm.precreateVcpu(-1)).toBe(-EINVAL);
  });

  it('createVcpu refuses an id out of range or already used, and keeps the first', () => {
    const h = new S390Harness();
    const v = h.vcpu(254);
    const area = new KvmRunArea(h.mem, [0x90_0000]);
    expect(h.vm.createVcpu(254, area)).toBe(-EEXIST);
    expect(h.vm.createVcpu(255, area)).toBe(-EINVAL);
    expect(h.vm.vcpu(254)).toBe(v);
    expect(h.vm.vcpuIds).toEqual([254]);
  });

  it('a run area too small for the s390 kvm_run is a construction error', () => {
    const vm = new S390Vm();
    expect(() => vm.createVcpu(0, new KvmRunArea(new S390Harness().mem, []))).toThrow();
  });

  it('no guest interrupt lines (irqfd routing needs the FLIC adapters vsva does not model)', () => {
    const vm = new S390Vm();
    expect(vm.setIrq(0, 1)).toBe(-EINVAL);
    expect(vm.setIrq(5, 0)).toBe(-EINVAL);
  });

  it('VM ioctls are -ENOTTY', () => {
    const h = new S390Harness();
    const arg = IoctlArg.ofBuffer(new Uint8Array(16));
    expect(h.vm.vmIoctl(h.proc, KVM_S390_INTERRUPT, arg)).toBe(-ENOTTY);
    expect(h.vm.vmIoctl(h.proc, KVM_IRQ_LINE, arg)).toBe(-ENOTTY);
  });

  it('KVM_ENABLE_CAP: flags 0; VX/RI/GS only before vCPUs exist; user SIGP/STSI any time; others -EINVAL', () => {
    const h = new S390Harness();
    const vm = h.vm;
    expect(vm.enableCap(KVM_CAP_S390_VECTOR_REGISTERS, 1, [])).toBe(-EINVAL);
    expect(vm.enableCap(KVM_CAP_S390_VECTOR_REGISTERS, 0, [])).toBe(0);
    expect(vm.enableCap(KVM_CAP_S390_RI, 0, [])).toBe(0);
    expect(vm.enableCap(KVM_CAP_S390_IRQCHIP, 0, [])).toBe(-EINVAL);
    expect(vm.enableCap(KVM_CAP_S390_VCPU_RESETS, 0, [])).toBe(-EINVAL);
    h.vcpu(0);
    expect(vm.enableCap(KVM_CAP_S390_GS, 0, [])).toBe(-EBUSY);
    expect(vm.enableCap(KVM_CAP_S390_USER_SIGP, 0, [])).toBe(0);
    expect(vm.enableCap(KVM_CAP_S390_USER_STSI, 0, [])).toBe(0);
    expect([...vm.enabledCaps].sort((a, b) => a - b)).toEqual([
      KVM_CAP_S390_USER_SIGP,
      KVM_CAP_S390_VECTOR_REGISTERS,
      KVM_CAP_S390_USER_STSI,
      KVM_CAP_S390_RI,
    ]);
  });

  it('memory slots: 1 MiB aligned address and size, below the memory limit', () => {
    const vm = new S390Vm();
    const slot = { slot: 0, flags: 0, gpa: 0, size: 0x10_0000, hva: 0x7f00_0000_0000 };
    expect(vm.prepareMemoryRegion(slot, 'create')).toBe(0);
    expect(vm.prepareMemoryRegion({ ...slot, hva: slot.hva + 0x1000 }, 'create')).toBe(-EINVAL);
    expect(vm.prepareMemoryRegion({ ...slot, size: 0x8_0000 }, 'move')).toBe(-EINVAL);
    expect(vm.prepareMemoryRegion({ ...slot, gpa: S390_MEM_LIMIT - 0x10_0000 }, 'create')).toBe(0);
    expect(vm.prepareMemoryRegion({ ...slot, gpa: S390_MEM_LIMIT }, 'create')).toBe(-EINVAL);
    // a flags-only change is not checked
    expect(vm.prepareMemoryRegion({ ...slot, size: 0x1000 }, 'flags-only')).toBe(0);
  });

  it('release destroys every vCPU', () => {
    const h = new S390Harness();
    h.vcpu(0);
    h.vcpu(1);
    h.vm.release();
    expect(h.vm.vcpuIds).toEqual([]);
  });
});

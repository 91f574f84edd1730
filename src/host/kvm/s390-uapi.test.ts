/**
 * The s390 architecture behind the real /dev/kvm (seed-spec §4), the way QEMU reaches it: the
 * reset capability on the system and VM fds (and not on arm64), s390's memory-slot rules, and the
 * reset matrix observed through KVM_GET_REGS/SREGS, KVM_GET_ONE_REG and the sync-register area
 * of the mmap'd kvm_run page — the whole path, fd layer included. The full matrix at the
 * architecture level is in s390/resets.test.ts.
 */

import { describe, expect, it } from 'vitest';
import { EINVAL, EIO } from '../../uapi/errno.ts';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  CR0_INITIAL_MASK,
  CR14_INITIAL_MASK,
  KVM_CAP_ARM_VM_IPA_SIZE,
  KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VM,
  KVM_GET_ONE_REG,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_MEM_READONLY,
  KVM_S390_CLEAR_RESET,
  KVM_S390_INITIAL_RESET,
  KVM_S390_NORMAL_RESET,
  KVM_S390_PFAULT_TOKEN_INVALID,
  KVM_SET_ONE_REG,
  kvm_one_reg,
} from '../../uapi/kvm.ts';
import {
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_REG_S390_PFTOKEN,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  kvm_regs,
  kvm_run_s390,
  kvm_sregs,
  syncRegOffset,
} from '../../uapi/kvm-s390.ts';
import { Host } from '../host.ts';
import type { Process } from '../kernel/process.ts';
import { arm64Arch } from './arm64/arch.ts';
import { createVcpu, createVm, kvmRig, setRegion } from './kvm-testing.ts';
import { s390Arch } from './s390/vm.ts';

const MiB = 1 << 20;

describe('KVM_CAP_S390_VCPU_RESETS (§4.1)', () => {
  it('is 1 on an s390 host, on /dev/kvm and on a VM fd', () => {
    const r = kvmRig(s390Arch());
    expect(r.proc.ioctl(r.sys, KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS)).toBe(1);
    const vm = createVm(r);
    expect(r.proc.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS)).toBe(1);
    expect(r.proc.ioctl(r.sys, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE)).toBe(0);
    expect(r.proc.ioctl(r.sys, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS)).toBe(32);
  });

  it('is 0 on an arm64 host, and the reset ioctls are EINVAL on an arm64 vCPU', () => {
    const r = kvmRig(arm64Arch());
    expect(r.proc.ioctl(r.sys, KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS)).toBe(0);
    const vm = createVm(r);
    expect(r.proc.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS)).toBe(0);
    const vcpu = createVcpu(r.proc, vm, 0);
    for (const req of [KVM_S390_INITIAL_RESET, KVM_S390_NORMAL_RESET, KVM_S390_CLEAR_RESET])
      expect(r.proc.ioctl(vcpu, req, 0)).toBe(-EINVAL);
  });

  it('a Host picks its KVM architecture', () => {
    const arm = new Host();
    const s390 = new Host({ kvmArch: 's390x' });
    const cap = (h: Host): number => {
      const p = h.kernel.spawn('qemu');
      return p.ioctl(p.open('/dev/kvm'), KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS);
    };
    expect([cap(arm), cap(s390)]).toEqual([0, 1]);
  });
});

describe('s390 VMs and memory slots', () => {
  it('accepts machine type 0 only (ucontrol is EINVAL)', () => {
    const r = kvmRig(s390Arch());
    expect(r.proc.ioctl(r.sys, KVM_CREATE_VM, 1)).toBe(-EINVAL);
    expect(r.proc.ioctl(r.sys, KVM_CREATE_VM, 2)).toBe(-EINVAL);
    expect(r.kvm.vms).toHaveLength(0);
  });

  it('slots are 1 MiB-aligned, never read-only, at most 32', () => {
    const r = kvmRig(s390Arch());
    const vm = createVm(r);
    const hva = r.proc.mmap(8 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    const aligned = Math.ceil(hva / MiB) * MiB;
    const region = {
      slot: 0,
      guest_phys_addr: 0n,
      memory_size: BigInt(MiB),
      userspace_addr: BigInt(aligned),
    };
    expect(setRegion(r.proc, vm, { ...region, memory_size: BigInt(MiB / 2) })).toBe(-EINVAL);
    expect(setRegion(r.proc, vm, { ...region, userspace_addr: BigInt(aligned + 4096) })).toBe(-EINVAL);
    expect(setRegion(r.proc, vm, { ...region, flags: KVM_MEM_READONLY })).toBe(-EINVAL);
    expect(setRegion(r.proc, vm, { ...region, slot: 32 })).toBe(-EINVAL);
    expect(r.kvm.vms[0]!.memslots.slots).toHaveLength(0);
    expect(setRegion(r.proc, vm, region)).toBe(0);
  });
});

describe('the reset matrix through the fds (§4.2)', () => {
  function u64s(b: Uint8Array, off: number, n: number): bigint[] {
    const dv = new DataView(b.buffer, b.byteOffset);
    return Array.from({ length: n }, (_, i) => dv.getBigUint64(off + i * 8, true));
  }

  function setup() {
    const r = kvmRig(s390Arch());
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    const size = r.proc.ioctl(r.sys, KVM_GET_VCPU_MMAP_SIZE, 0);
    const run = r.proc.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, 0, vcpu, 0);
    expect(run).toBeGreaterThan(0);
    const gprs = Array.from({ length: 16 }, (_, i) => BigInt(0x1000 + i));
    const crs = Array.from({ length: 16 }, (_, i) => BigInt(0xc0de_0000 + i));
    expect(r.proc.ioctl(vcpu, KVM_SET_REGS, kvm_regs.encode({ gprs }))).toBe(0);
    expect(r.proc.ioctl(vcpu, KVM_SET_SREGS, kvm_sregs.encode({ crs }))).toBe(0);
    const val = r.proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    const oneReg = (req: number, v?: bigint): bigint => {
      if (v !== undefined) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, v, true);
        r.proc.mm.writeUser(val, b);
      }
      expect(
        r.proc.ioctl(vcpu, req, kvm_one_reg.encode({ id: KVM_REG_S390_PFTOKEN, addr: BigInt(val) })),
      ).toBe(0);
      return new DataView(r.proc.mm.readUser(val, 8)!.buffer).getBigUint64(0, true);
    };
    oneReg(KVM_SET_ONE_REG, 0x77n);
    const state = () => {
      const regs = new Uint8Array(kvm_regs.size);
      const sregs = new Uint8Array(kvm_sregs.size);
      expect(r.proc.ioctl(vcpu, KVM_GET_REGS, regs)).toBe(0);
      expect(r.proc.ioctl(vcpu, KVM_GET_SREGS, sregs)).toBe(0);
      const page = r.proc.mm.readUser(run, kvm_run_s390.size)!;
      return {
        gprs: kvm_regs.decode(regs).gprs,
        crs: kvm_sregs.decode(sregs).crs,
        runGprs: u64s(page, syncRegOffset('gprs'), 16),
        runCrs: u64s(page, syncRegOffset('crs'), 16),
        pft: oneReg(KVM_GET_ONE_REG),
      };
    };
    return { r, vcpu, gprs, crs, state };
  }

  const initialCrs = Array.from({ length: 16 }, (_, i) =>
    i === 0 ? BigInt(CR0_INITIAL_MASK) : i === 14 ? BigInt(CR14_INITIAL_MASK) : 0n,
  );

  it('KVM_SET_SREGS puts the CRs in the SIE block: kvm_run’s copy is stale until a KVM_RUN', () => {
    const s = setup();
    const st = s.state();
    expect(st.crs).toEqual(s.crs);
    expect(st.runCrs).toEqual(Array(16).fill(0n));
    expect(st.runGprs).toEqual(s.gprs); // KVM_SET_REGS writes kvm_run's GPRs directly
    expect(st.pft).toBe(0x77n);
  });

  it('normal reset: registers and control registers kept (both views as they were); pfault token invalidated', () => {
    const s = setup();
    const before = s.state();
    expect(s.r.proc.ioctl(s.vcpu, KVM_S390_NORMAL_RESET, 0)).toBe(0);
    const st = s.state();
    expect(st.gprs).toEqual(s.gprs);
    expect(st.runGprs).toEqual(before.runGprs);
    expect(st.crs).toEqual(s.crs);
    expect(st.runCrs).toEqual(before.runCrs);
    expect(st.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
  });

  it('initial reset: CRs to their initial values in KVM_GET_SREGS and in kvm_run (b5de9eede579); GPRs kept', () => {
    const s = setup();
    expect(s.r.proc.ioctl(s.vcpu, KVM_S390_INITIAL_RESET, 0)).toBe(0);
    const st = s.state();
    expect(st.crs).toEqual(initialCrs);
    expect(st.runCrs).toEqual(initialCrs);
    expect(st.gprs).toEqual(s.gprs);
    expect(st.runGprs).toEqual(s.gprs);
    expect(st.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
  });

  it('clear reset: the initial reset plus GPRs zeroed, in both views', () => {
    const s = setup();
    expect(s.r.proc.ioctl(s.vcpu, KVM_S390_CLEAR_RESET, 0)).toBe(0);
    const st = s.state();
    expect(st.crs).toEqual(initialCrs);
    expect(st.runCrs).toEqual(initialCrs);
    expect(st.gprs).toEqual(Array(16).fill(0n));
    expect(st.runGprs).toEqual(Array(16).fill(0n));
  });

  it('a reset from another process is EIO and changes nothing', () => {
    const s = setup();
    const other: Process = s.r.kernel.spawn('intruder');
    const fd = other.installFd(s.r.proc.fget(s.vcpu)!, false);
    expect(other.ioctl(fd, KVM_S390_CLEAR_RESET, 0)).toBe(-EIO);
    expect(s.state().gprs).toEqual(s.gprs);
  });
});

/**
 * Test rig for KVM: a kernel with /dev/kvm of one architecture and a VMM process, and the uAPI
 * sequences every test repeats — a VM, guest RAM in a memory slot, vCPUs, and on arm64 a GICv3
 * placed and initialised the way QEMU's virt machine does it. Everything goes through syscalls
 * on the process, as the VMM of later issues will.
 */

import { errnoName } from '../../uapi/errno.ts';
import { MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_ARM_VCPU_INIT,
  KVM_CREATE_DEVICE,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_SET_DEVICE_ATTR,
  KVM_SET_USER_MEMORY_REGION,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
  kvm_create_device,
  kvm_device_attr,
  kvm_userspace_memory_region,
  kvm_vcpu_init,
} from '../../uapi/kvm.ts';
import type { StructInput } from '../../uapi/layout.ts';
import { Kernel, type KernelOptions } from '../kernel/kernel.ts';
import { createHostMemory } from '../kernel/mm.ts';
import type { Process } from '../kernel/process.ts';
import type { KvmArch } from './arch.ts';
import { arm64Arch } from './arm64/arch.ts';
import { Kvm } from './kvm.ts';

/** `r` when it is a success; a set-up step that fails is a broken test, not a case. */
function ok(r: number, what: string): number {
  if (r < 0) throw new Error(`kvm-testing: ${what} failed with ${errnoName(r)}`);
  return r;
}

export interface KvmRig {
  readonly kernel: Kernel;
  readonly kvm: Kvm;
  /** The VMM. */
  readonly proc: Process;
  /** Its /dev/kvm fd. */
  readonly sys: number;
}

export function kvmRig(arch: KvmArch = arm64Arch(), kernel: KernelOptions = {}): KvmRig {
  const k = new Kernel(createHostMemory(), kernel);
  const kvm = new Kvm(k, arch);
  const proc = k.spawn('qemu');
  const sys = ok(proc.open('/dev/kvm', O_RDWR), 'open /dev/kvm');
  return { kernel: k, kvm, proc, sys };
}

/** KVM_CREATE_VM; the VM fd. */
export function createVm(r: KvmRig, type = 0): number {
  return ok(r.proc.ioctl(r.sys, KVM_CREATE_VM, type), 'KVM_CREATE_VM');
}

/** KVM_SET_USER_MEMORY_REGION with the struct's fields; the ioctl's result. */
export function setRegion(
  proc: Process,
  vm: number,
  region: StructInput<typeof kvm_userspace_memory_region.fields>,
): number {
  return proc.ioctl(vm, KVM_SET_USER_MEMORY_REGION, kvm_userspace_memory_region.encode(region));
}

/** Guest RAM: `size` bytes of the VMM's anonymous memory in slot `slot` at `gpa`. Returns the VMM address. */
export function addRam(proc: Process, vm: number, slot: number, gpa: number, size: number): number {
  const hva = ok(proc.mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE), 'mmap');
  const region = {
    slot,
    guest_phys_addr: BigInt(gpa),
    memory_size: BigInt(size),
    userspace_addr: BigInt(hva),
  };
  ok(setRegion(proc, vm, region), 'KVM_SET_USER_MEMORY_REGION');
  return hva;
}

/** KVM_CREATE_VCPU; the vCPU fd. */
export function createVcpu(proc: Process, vm: number, id: number): number {
  return ok(proc.ioctl(vm, KVM_CREATE_VCPU, id), 'KVM_CREATE_VCPU');
}

/** KVM_ARM_VCPU_INIT with the generic target and `features` (bit mask of word 0). */
export function armVcpuInit(proc: Process, vcpu: number, features = 0): number {
  return proc.ioctl(
    vcpu,
    KVM_ARM_VCPU_INIT,
    kvm_vcpu_init.encode({ target: KVM_ARM_TARGET_GENERIC_V8, features: [features, 0, 0, 0, 0, 0, 0] }),
  );
}

/** A device attribute access whose value lives at a fresh 8-byte VMM buffer holding `value`. */
export function deviceAttr(
  proc: Process,
  dev: number,
  request: number,
  group: number,
  attr: number,
  value: bigint = 0n,
): { r: number; value: bigint } {
  const buf = proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  const v = new Uint8Array(8);
  new DataView(v.buffer).setBigUint64(0, value, true);
  proc.mm.writeUser(buf, v);
  const r = proc.ioctl(
    dev,
    request,
    kvm_device_attr.encode({ group, attr: BigInt(attr), addr: BigInt(buf) }),
  );
  const out = proc.mm.readUser(buf, 8)!;
  proc.munmap(buf, 4096);
  return { r, value: new DataView(out.buffer).getBigUint64(0, true) };
}

/** KVM_CREATE_DEVICE; the ioctl result and the fd written back. */
export function createDevice(proc: Process, vm: number, type: number, flags = 0): { r: number; fd: number } {
  const buf = kvm_create_device.encode({ type, flags });
  const r = proc.ioctl(vm, KVM_CREATE_DEVICE, buf);
  return { r, fd: kvm_create_device.decode(buf).fd };
}

export const GIC_DIST_BASE = 0x0800_0000;
export const GIC_REDIST_BASE = 0x080a_0000;

/**
 * An arm64 VM as QEMU's virt machine sets it up: `nvcpus` vCPUs (initialised), a GICv3 with
 * distributor and redistributors placed, then initialised. Returns the fds.
 */
export function armVmWithGic(r: KvmRig, nvcpus: number): { vm: number; vcpus: number[]; gic: number } {
  const vm = createVm(r);
  const vcpus: number[] = [];
  for (let i = 0; i < nvcpus; i++) {
    const fd = createVcpu(r.proc, vm, i);
    ok(armVcpuInit(r.proc, fd), 'KVM_ARM_VCPU_INIT');
    vcpus.push(fd);
  }
  const dev = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3);
  ok(dev.r, 'KVM_CREATE_DEVICE');
  const set = (group: number, attr: number, what: string, value = 0n): number =>
    ok(deviceAttr(r.proc, dev.fd, KVM_SET_DEVICE_ATTR, group, attr, value).r, what);
  set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, 'GICD address', BigInt(GIC_DIST_BASE));
  set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 'GICR address', BigInt(GIC_REDIST_BASE));
  set(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, 'vGIC init');
  return { vm, vcpus, gic: dev.fd };
}

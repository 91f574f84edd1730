/**
 * The contract between KVM's generic part (kvm.ts, vm.ts: /dev/kvm, VMs, memory slots, irqfd,
 * ioeventfd, vCPU files) and an architecture (arm64.ts, s390/): the capabilities it reports, the
 * VM types it accepts, how a guest interrupt line is raised, and its vCPUs — their ioctls and the
 * `struct kvm_run` area user space maps.
 *
 * vsva models guests at the level of OS drivers, not instructions: a vCPU is its architected
 * state, its pending interrupts and its run state. KVM_RUN enters and leaves at once (no
 * instruction runs); what it does to the run area is the architecture's.
 */

import type { PhysMem } from '../../hw/memory.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg, UserPtr } from '../uaccess.ts';
import type { KvmBus } from './ioeventfd.ts';

export type KvmArchName = 'arm64' | 's390x';

/**
 * The vCPU's `struct kvm_run` (and following pages): host memory the vCPU reads and writes and
 * user space maps with mmap(vcpu_fd). Offsets are from the start of the area.
 */
export class KvmRunArea {
  readonly mem: PhysMem;
  /** Host physical address of each page of the area, in order. */
  readonly pages: readonly number[];
  readonly size: number;

  constructor(mem: PhysMem, pages: readonly number[]) {
    this.mem = mem;
    this.pages = pages;
    this.size = pages.length * 4096;
  }

  private pa(off: number): number {
    return this.pages[Math.floor(off / 4096)]! + (off % 4096);
  }

  /** Reads `len` bytes at `off` (within the area). */
  read(off: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.mem.read8(this.pa(off + i));
    return out;
  }

  /** Writes `bytes` at `off` (within the area). */
  write(off: number, bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.mem.write8(this.pa(off + i), bytes[i]!);
  }

  /** The byte at `off`. */
  u8(off: number): number {
    return this.mem.read8(this.pa(off));
  }

  /** The little-endian u32 at `off`. */
  u32(off: number): number {
    return new DataView(this.read(off, 4).buffer).getUint32(0, true);
  }

  /** Stores a little-endian u32 at `off`. */
  setU32(off: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.write(off, b);
  }
}

/** The generic VM's in-kernel I/O bus, as a vCPU's guest accesses reach it (ioeventfds). */
export interface KvmVcpuIo {
  /** A guest write that left the guest as an I/O access: true when an ioeventfd took it. */
  ioWrite(bus: KvmBus, addr: number, data: Uint8Array): boolean;
}

/** One vCPU of an architecture. */
export interface KvmVcpuArch {
  readonly id: number;
  /**
   * The vCPU ioctls (kvm_vcpu_ioctl and kvm_arch_vcpu_ioctl): 0 / a value, or -errno; -ENOTTY for
   * one the architecture does not have. The generic layer has already checked the caller's mm.
   */
  ioctl(proc: Process, request: number, arg: IoctlArg): number;
  /** The vCPU is destroyed: with its VM, or at once when its fd could not be installed. */
  release(): void;
}

/** What an architecture's VM offers the generic layer. */
export interface KvmVmArch {
  readonly name: KvmArchName;
  /** KVM_CHECK_EXTENSION on a VM fd (and, with no VM, on /dev/kvm). */
  checkExtension(cap: number): number;
  /** KVM_CAP_MAX_VCPUS / KVM_CAP_MAX_VCPU_ID: vCPU ids must be below maxVcpuId. */
  readonly maxVcpus: number;
  readonly maxVcpuId: number;
  /** Pages of the vCPU's run area (KVM_GET_VCPU_MMAP_SIZE / 4096). */
  readonly runPages: number;
  createVcpu(id: number, run: KvmRunArea, io: KvmVcpuIo): KvmVcpuArch | number;
  /**
   * Raise (level 1) or lower (0) guest interrupt line `gsi` (kvm_set_irq). 0 when delivered,
   * -EINVAL when there is no such line (or routing).
   */
  setIrq(gsi: number, level: number): number;
  /**
   * Architecture VM ioctls (kvm_arch_vm_ioctl: KVM_IRQ_LINE, KVM_CREATE_IRQCHIP, floating
   * interrupts, ...). What an unknown one returns is the architecture's (arm64 -EINVAL, s390
   * -ENOTTY); without this method every one is -EINVAL.
   */
  vmIoctl?(proc: Process, request: number, arg: IoctlArg): number;
  /**
   * kvm_arch_prepare_memory_region for a slot being created, moved or having its flags changed:
   * 0, or -errno to refuse (arm64: beyond the IPA space; s390: not 1 MiB aligned). Default: 0.
   */
  prepareMemoryRegion?(region: KvmMemoryRegion, change: KvmMemoryChange): number;
  /** kvm_arch_vcpu_precreate: 0 or -errno, before the generic duplicate-id check. */
  precreateVcpu?(id: number): number;
  /**
   * kvm_arch_intc_initialized: irqfds can be assigned (false → KVM_IRQFD is -EAGAIN). Default:
   * true (s390, whose floating interrupts need no set-up).
   */
  intcInitialized?(): boolean;
  /** KVM_ENABLE_CAP on the VM fd (kvm_vm_ioctl_enable_cap): 0 or -errno; default -EINVAL. */
  enableCap?(cap: number, flags: number, args: readonly bigint[]): number;
  /**
   * KVM_CREATE_DEVICE (kvm_ioctl_create_device) for `type`: the device, or -errno (-ENODEV for a
   * type the architecture does not have). With `test` nothing is made: 0 when the type exists.
   * Without this method every type is -ENODEV.
   */
  createDevice?(type: number, test: boolean): KvmDeviceArch | number;
  /** The VM is being destroyed (after its vCPUs were released). */
  release?(): void;
}

/** One attribute access on a device fd (struct kvm_device_attr, with its value pointer). */
export interface KvmDeviceAttr {
  readonly flags: number;
  readonly group: number;
  readonly attr: bigint;
  /** Where the value is read from (SET) or written to (GET). */
  readonly addr: UserPtr;
}

/** An in-kernel device (struct kvm_device_ops): attributes set, read and probed through its fd. */
export interface KvmDeviceArch {
  /** The anonymous inode's name ("kvm-arm-vgic-v3"). */
  readonly name: string;
  setAttr(attr: KvmDeviceAttr): number;
  getAttr(attr: KvmDeviceAttr): number;
  hasAttr(attr: KvmDeviceAttr): number;
  /** The VM is destroyed (kvm_destroy_devices). */
  destroy?(): void;
}

/** A memory slot as the architecture is asked about it (byte addresses, all < 2^53). */
export interface KvmMemoryRegion {
  readonly slot: number;
  readonly flags: number;
  readonly gpa: number;
  readonly size: number;
  readonly hva: number;
}

/** enum kvm_mr_change, for the changes the architecture is asked to prepare. */
export type KvmMemoryChange = 'create' | 'move' | 'flags-only';

/** An architecture: its VM types and how to make a VM. */
export interface KvmArch {
  readonly name: KvmArchName;
  /** KVM_CHECK_EXTENSION on /dev/kvm (no VM). */
  checkExtension(cap: number): number;
  /** KVM_GET_VCPU_MMAP_SIZE in bytes. */
  readonly vcpuMmapSize: number;
  /** KVM_USER_MEM_SLOTS (KVM_CAP_NR_MEMSLOTS); default 512 (arm64). s390 has 32. */
  readonly memSlots?: number;
  /** __KVM_HAVE_READONLY_MEM: KVM_MEM_READONLY is accepted (arm64 yes, s390 no); default false. */
  readonly readonlyMem?: boolean;
  /** A VM for KVM_CREATE_VM's `type`, or -EINVAL for an unsupported type. */
  createVm(type: number): KvmVmArch | number;
}

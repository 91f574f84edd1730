/**
 * KVM on an arm64 host (arch/arm64/kvm/arm.c, mmu.c, vgic/, Linux 5.10): the VM types, the
 * capabilities, the VM ioctls that are arm64's (KVM_IRQ_LINE, KVM_ARM_PREFERRED_TARGET,
 * KVM_CREATE_IRQCHIP), the GICv3 device (vgic.ts) that irqfds drive, and the vCPUs (vcpu.ts).
 *
 * KVM_CREATE_VM's type holds the guest's IPA size in bits [7:0]: 0 means 40 bits; otherwise 32 up
 * to the host's limit (48 here, KVM_CAP_ARM_VM_IPA_SIZE); other bits set → EINVAL. A memory slot
 * that reaches the top of that space is refused with EFAULT (the check is "last page ≥ limit",
 * which Linux 5.10 also applies to a slot ending exactly at the limit).
 *
 * KVM_IRQ_LINE's `irq`: type in [27:24], vCPU index in [23:16] plus 256 × [31:28], number in
 * [15:0]. SPI (number ≥ 32) and PPI (16..31, per vCPU) need the in-kernel vGIC (else ENXIO);
 * CPU (the vCPU's IRQ/FIQ inputs) needs its absence (else ENXIO); a vCPU index not online →
 * EINVAL; a line the vGIC does not have → EINVAL; a vGIC not yet initialised → EBUSY.
 *
 * Host facts vsva decides (a host is one machine): 8 online CPUs (KVM_CAP_NR_VCPUS), a 48-bit IPA
 * limit, KVM_ARM_TARGET_GENERIC_V8 as the preferred target, GICv3 without GICv2 emulation.
 * Capabilities are reported only for what is modelled; PSCI, PMU, SVE, pointer authentication,
 * KVM_ARM_SET_DEVICE_ADDR and the ITS read 0.
 */

import { GIC_INTID_SPURIOUS } from '../../../arch/guest-cpu.ts';
import { E2BIG, EBUSY, EEXIST, EFAULT, EINVAL, ENODEV, ENXIO } from '../../../uapi/errno.ts';
import {
  KVM_ARM_IRQ_CPU_FIQ,
  KVM_ARM_IRQ_NUM_MASK,
  KVM_ARM_IRQ_TYPE_CPU,
  KVM_ARM_IRQ_TYPE_MASK,
  KVM_ARM_IRQ_TYPE_PPI,
  KVM_ARM_IRQ_TYPE_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI,
  KVM_ARM_IRQ_VCPU_MASK,
  KVM_ARM_IRQ_VCPU_SHIFT,
  KVM_ARM_IRQ_VCPU2_MASK,
  KVM_ARM_IRQ_VCPU2_SHIFT,
  KVM_ARM_PREFERRED_TARGET,
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_CAP_ARM_IRQ_LINE_LAYOUT_2,
  KVM_CAP_ARM_VM_IPA_SIZE,
  KVM_CAP_DEVICE_CTRL,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IOEVENTFD,
  KVM_CAP_IRQCHIP,
  KVM_CAP_MAX_VCPU_ID,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_MP_STATE,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_ONE_REG,
  KVM_CAP_READONLY_MEM,
  KVM_CAP_SYNC_MMU,
  KVM_CREATE_IRQCHIP,
  KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_IRQ_LINE,
  KVM_VM_TYPE_ARM_IPA_SIZE_MASK,
  kvm_irq_level,
  kvm_vcpu_init,
} from '../../../uapi/kvm.ts';
import { PAGE_SIZE } from '../../kernel/mm.ts';
import type { Process } from '../../kernel/process.ts';
import type { IoctlArg } from '../../uaccess.ts';
import type {
  KvmArch,
  KvmDeviceArch,
  KvmMemoryRegion,
  KvmRunArea,
  KvmVcpuArch,
  KvmVcpuIo,
  KvmVmArch,
} from '../arch.ts';
import type { Arm64GuestIrq } from './guest-entry.ts';
import { Arm64Vcpu } from './vcpu.ts';
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS, VGIC_V3_MAX_CPUS, VgicV3 } from './vgic.ts';

/** KVM_PHYS_SHIFT: the IPA size of a VM whose type asks for none. */
export const KVM_PHYS_SHIFT_DEFAULT = 40;
/** The smallest IPA size a VM type may ask for. */
export const KVM_IPA_MIN = 32;

export interface Arm64KvmOptions {
  /** kvm_ipa_limit: the host's largest guest IPA size (default 48). */
  readonly ipaLimit?: number;
  /** num_online_cpus() (default 8). */
  readonly hostCpus?: number;
}

/**
 * KVM_CHECK_EXTENSION on arm64: the same answer with or without a VM (a VM's vCPU limit is the
 * GICv3's, VGIC_V3_MAX_CPUS, from its creation).
 */
function arm64Extension(cap: number, ipaLimit: number, hostCpus: number): number {
  switch (cap) {
    case KVM_CAP_IRQCHIP:
    case KVM_CAP_IOEVENTFD:
    case KVM_CAP_DEVICE_CTRL:
    case KVM_CAP_SYNC_MMU:
    case KVM_CAP_ONE_REG:
    case KVM_CAP_READONLY_MEM:
    case KVM_CAP_MP_STATE:
    case KVM_CAP_IMMEDIATE_EXIT:
    case KVM_CAP_ARM_IRQ_LINE_LAYOUT_2:
      return 1;
    case KVM_CAP_NR_VCPUS:
      return hostCpus;
    case KVM_CAP_ARM_VM_IPA_SIZE:
      return ipaLimit;
    case KVM_CAP_MAX_VCPUS:
    case KVM_CAP_MAX_VCPU_ID:
      return VGIC_V3_MAX_CPUS;
    default:
      return 0;
  }
}

export class Arm64Vm implements KvmVmArch {
  readonly name = 'arm64' as const;
  readonly ipaBits: number;
  private readonly ipaLimit: number;
  private readonly hostCpus: number;
  /** kvm->arch.max_vcpus (VGIC_V3_MAX_CPUS). */
  readonly maxVcpus = VGIC_V3_MAX_CPUS;
  /** KVM_MAX_VCPU_ID */
  readonly maxVcpuId = VGIC_V3_MAX_CPUS;
  readonly runPages = 1;
  /** vCPUs in creation order (online). */
  readonly vcpus: Arm64Vcpu[] = [];
  /** The in-kernel interrupt controller, once created. */
  vgic: VgicV3 | undefined;

  constructor(ipaBits: number, ipaLimit: number, hostCpus: number) {
    this.ipaBits = ipaBits;
    this.ipaLimit = ipaLimit;
    this.hostCpus = hostCpus;
  }

  checkExtension(cap: number): number {
    return arm64Extension(cap, this.ipaLimit, this.hostCpus);
  }

  // ------------------------------------------------------------ vCPUs

  precreateVcpu(id: number): number {
    if (this.vgic?.initialized === true) return -EBUSY;
    if (id >= this.maxVcpus) return -EINVAL;
    return 0;
  }

  createVcpu(id: number, run: KvmRunArea, io: KvmVcpuIo): KvmVcpuArch {
    const v = new Arm64Vcpu(
      id,
      run,
      {
        firstRunCheck: () => this.vgic?.mapResources() ?? 0,
        released: (x) => this.releaseVcpu(x),
        irq: this.guestIrq,
        indexOf: (x) => this.vcpus.indexOf(x),
      },
      io,
    );
    this.vcpus.push(v);
    this.vgic?.addVcpu();
    return v;
  }

  private releaseVcpu(v: Arm64Vcpu): void {
    const i = this.vcpus.indexOf(v);
    if (i < 0) return;
    this.vcpus.splice(i, 1);
    // Only the last vCPU is ever undone alone (a failed KVM_CREATE_VCPU); at VM destruction all go.
    this.vgic?.removeLastVcpu();
  }

  /** The vGIC as guest code on a vCPU reaches it (guest-entry.ts). */
  private readonly guestIrq: Arm64GuestIrq = {
    highestPending: (vcpu) => this.vgic?.highestPending(vcpu) ?? GIC_INTID_SPURIOUS,
    acknowledge: (vcpu, intid) => {
      this.vgic?.acknowledge(vcpu, intid);
    },
    inKernelMmio: (gpa, size) => this.vgic?.containsMmio(gpa, size, this.vcpus.length) === true,
  };

  // ------------------------------------------------------------ memory

  /** kvm_arch_prepare_memory_region: the slot must end below the IPA limit (last page < limit). */
  prepareMemoryRegion(region: KvmMemoryRegion): number {
    const endPage = (region.gpa + region.size) / PAGE_SIZE;
    return endPage >= 2 ** this.ipaBits / PAGE_SIZE ? -EFAULT : 0;
  }

  // ------------------------------------------------------------ interrupts

  intcInitialized(): boolean {
    return this.vgic?.initialized === true;
  }

  /** kvm_set_irq through the default routing: GSI n → SPI 32 + n. */
  setIrq(gsi: number, level: number): number {
    const g = this.vgic;
    if (g === undefined || !g.initialized || gsi < 0 || gsi >= g.nrSpis) return -EINVAL;
    return g.inject(0, gsi + VGIC_NR_PRIVATE_IRQS, level !== 0);
  }

  createDevice(type: number, test: boolean): KvmDeviceArch | number {
    if (type !== KVM_DEV_TYPE_ARM_VGIC_V3) return -ENODEV;
    if (test) return 0;
    // kvm_vgic_create
    if (this.vgic !== undefined) return -EEXIST;
    if (this.vcpus.some((v) => v.hasRunOnce)) return -EBUSY;
    if (this.vcpus.length > VGIC_V3_MAX_CPUS) return -E2BIG;
    const vcpus = this.vcpus;
    const g = new VgicV3({
      ipaBits: this.ipaBits,
      get onlineVcpus() {
        return vcpus.length;
      },
    });
    for (let i = 0; i < this.vcpus.length; i++) g.addVcpu();
    this.vgic = g;
    return g;
  }

  vmIoctl(_proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case KVM_IRQ_LINE: {
        const l = arg.ptr.copyStruct(kvm_irq_level);
        if (l === undefined) return -EFAULT;
        return this.irqLine(l.irq, l.level !== 0);
      }
      case KVM_ARM_PREFERRED_TARGET:
        return arg.ptr.copyTo(kvm_vcpu_init.encode({ target: KVM_ARM_TARGET_GENERIC_V8 })) ? 0 : -EFAULT;
      case KVM_CREATE_IRQCHIP:
        // kvm_vgic_create(KVM_DEV_TYPE_ARM_VGIC_V2) on a host that cannot emulate a GICv2.
        return this.vgic !== undefined ? -EEXIST : -ENODEV;
      default:
        return -EINVAL;
    }
  }

  /** kvm_vm_ioctl_irq_line */
  private irqLine(irq: number, level: boolean): number {
    const type = (irq >>> KVM_ARM_IRQ_TYPE_SHIFT) & KVM_ARM_IRQ_TYPE_MASK;
    const vcpuIdx =
      ((irq >>> KVM_ARM_IRQ_VCPU_SHIFT) & KVM_ARM_IRQ_VCPU_MASK) +
      ((irq >>> KVM_ARM_IRQ_VCPU2_SHIFT) & KVM_ARM_IRQ_VCPU2_MASK) * (KVM_ARM_IRQ_VCPU_MASK + 1);
    const num = irq & KVM_ARM_IRQ_NUM_MASK;
    const g = this.vgic;
    switch (type) {
      case KVM_ARM_IRQ_TYPE_CPU: {
        if (g !== undefined) return -ENXIO;
        const v = this.vcpus[vcpuIdx];
        if (v === undefined) return -EINVAL;
        if (num > KVM_ARM_IRQ_CPU_FIQ) return -EINVAL;
        v.cpuLines[num] = level;
        return 0;
      }
      case KVM_ARM_IRQ_TYPE_PPI:
        if (g === undefined) return -ENXIO;
        if (vcpuIdx >= this.vcpus.length) return -EINVAL;
        if (num < VGIC_NR_SGIS || num >= VGIC_NR_PRIVATE_IRQS) return -EINVAL;
        return g.inject(vcpuIdx, num, level);
      case KVM_ARM_IRQ_TYPE_SPI:
        if (g === undefined) return -ENXIO;
        if (num < VGIC_NR_PRIVATE_IRQS) return -EINVAL;
        return g.inject(0, num, level);
      default:
        return -EINVAL;
    }
  }
}

/** The arm64 KVM architecture (kvm_arch_init_vm / kvm_arm_setup_stage2 for VM types). */
export function arm64Arch(opts: Arm64KvmOptions = {}): KvmArch {
  const ipaLimit = opts.ipaLimit ?? 48;
  const hostCpus = opts.hostCpus ?? 8;
  return {
    name: 'arm64',
    vcpuMmapSize: PAGE_SIZE,
    memSlots: 512,
    readonlyMem: true,
    checkExtension: (cap: number): number => arm64Extension(cap, ipaLimit, hostCpus),
    createVm(type: number): KvmVmArch | number {
      if (!Number.isInteger(type) || type < 0 || type > KVM_VM_TYPE_ARM_IPA_SIZE_MASK) return -EINVAL;
      let bits = type & KVM_VM_TYPE_ARM_IPA_SIZE_MASK;
      if (bits === 0) bits = KVM_PHYS_SHIFT_DEFAULT;
      else if (bits > ipaLimit || bits < KVM_IPA_MIN) return -EINVAL;
      return new Arm64Vm(bits, ipaLimit, hostCpus);
    },
  };
}

/**
 * The host machine as a whole: host RAM with its page allocator, one or more SMMUv3 devices (the
 * hardware models) each driven by an arm-smmu-v3 driver instance, the iommu core they register
 * with, the kernel (processes, syscalls, eventfd), and the system-wide IOASID (PASID) space. It
 * is what later issues put VFIO and KVM on, and what host-level scenarios and tests start from.
 *
 * Bring-up follows Linux's order: each SMMU is probed (registers, stream table, queues, enables),
 * then registered with the iommu core; devices are added afterwards (`addDevice`, the bus
 * notifier's iommu_probe_device), which groups them and attaches their default domain. The
 * SMMU's interrupt lines reach its driver as kernel entries from interrupt context, so that any
 * syscall a fault wakes runs after the handler, not inside it.
 *
 * Construction with a configuration the hardware or driver refuses throws: a host that cannot
 * boot is a mistake in the scenario, reported once, not a state to model.
 */

import { PhysMem } from '../hw/memory.ts';
import { PageAllocator } from '../hw/page-alloc.ts';
import type { SmmuFeatures } from '../hw/smmuv3/features.ts';
import { Smmu } from '../hw/smmuv3/smmu.ts';
import { ENODEV, errnoName } from '../uapi/errno.ts';
import { IoasidAllocator } from './ioasid.ts';
import { IommuCore, type IommuCoreOptions } from './iommu/core.ts';
import type { IommuCoreServices, IommuDevice } from './iommu/types.ts';
import { Kernel, type KernelOptions } from './kernel/kernel.ts';
import type { HostMemory } from './kernel/mm.ts';
import { ArmSmmuV3, type ArmSmmuV3Options } from './smmuv3/driver.ts';

export interface HostSmmuSpec {
  readonly name: string;
  readonly features?: Partial<SmmuFeatures>;
  readonly driver?: ArmSmmuV3Options;
}

export interface HostOptions {
  /** Host RAM [ramBase, ramBase + ramSize); default 1 GiB at 1 GiB. */
  readonly ramBase?: number;
  readonly ramSize?: number;
  /** The SMMUs; default one named "smmu0" with the model's default features. */
  readonly smmus?: readonly HostSmmuSpec[];
  readonly kernel?: KernelOptions;
  readonly iommu?: IommuCoreOptions;
  /** Width of the IOASID space; default 20 (PCIe PASIDs). */
  readonly pasidBits?: number;
}

/** One SMMU: the device model and its driver. */
export interface HostSmmu {
  readonly name: string;
  readonly hw: Smmu;
  readonly driver: ArmSmmuV3;
}

export class Host {
  readonly memory: HostMemory;
  readonly kernel: Kernel;
  readonly iommu: IommuCore;
  readonly ioasid: IoasidAllocator;
  readonly smmus: readonly HostSmmu[];

  constructor(opts: HostOptions = {}) {
    const mem = new PhysMem({ name: 'host', lookupCacheEntries: 1 << 16 });
    this.memory = {
      mem,
      alloc: new PageAllocator(mem, opts.ramBase ?? 0x4000_0000, opts.ramSize ?? 0x4000_0000),
    };
    this.kernel = new Kernel(this.memory, opts.kernel ?? {});
    this.iommu = new IommuCore(opts.iommu ?? {});
    this.ioasid = new IoasidAllocator({ maxBits: opts.pasidBits ?? 20 });
    const specs = opts.smmus ?? [{ name: 'smmu0' }];
    this.smmus = specs.map((s) => this.bringUp(s));
  }

  private bringUp(spec: HostSmmuSpec): HostSmmu {
    const hw = new Smmu(this.memory.mem, spec.features !== undefined ? { features: spec.features } : {});
    // The driver is created before it registers (Linux probes, then iommu_device_register); its
    // calls into the core go through this forwarder until the core hands out the real services.
    let services: IommuCoreServices | undefined;
    const forward: IommuCoreServices = {
      reportDeviceFault: (dev, fault) => services?.reportDeviceFault(dev, fault) ?? -ENODEV,
      dmaBindGuestMsi: (d, giova, gpa, size) => services?.dmaBindGuestMsi(d, giova, gpa, size) ?? -ENODEV,
      dmaUnbindGuestMsi: (d, giova) => services?.dmaUnbindGuestMsi(d, giova),
    };
    const driver = new ArmSmmuV3(
      spec.name,
      hw,
      this.memory.mem,
      this.memory.alloc,
      forward,
      spec.driver ?? {},
    );
    const r = driver.probe();
    if (r !== 0)
      throw new Error(`host: ${spec.name}: probe failed with ${errnoName(r)}: ${driver.log.join('; ')}`);
    const reg = this.iommu.registerIommu(spec.name, driver);
    if (typeof reg === 'number') throw new Error(`host: ${spec.name}: cannot register (${errnoName(reg)})`);
    services = reg;
    // Interrupts enter the kernel: wake-ups made by the handler run when it returns.
    const handler = hw.hooks.irq;
    hw.hooks.irq = (line) => this.kernel.fromInterrupt(() => handler?.(line));
    return { name: spec.name, hw, driver };
  }

  /** The SMMU named `name`. */
  smmu(name = 'smmu0'): HostSmmu {
    const s = this.smmus.find((x) => x.name === name);
    if (s === undefined) throw new Error(`host: no SMMU named ${name}`);
    return s;
  }

  /** A device appears on the bus: iommu_probe_device (group, default domain). 0 or -errno. */
  addDevice(dev: IommuDevice): number {
    return this.iommu.probeDevice(dev);
  }

  /** The device goes away. */
  removeDevice(dev: IommuDevice): void {
    this.iommu.releaseDevice(dev);
  }
}

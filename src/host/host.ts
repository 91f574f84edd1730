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
 * PCI: each SMMU fronts a system bus (the root complex behind it) on which PCI functions do their
 * DMA; an ITS-like MSI controller's doorbell is reachable from every bus. `addPciDevice` plugs a
 * function in (BARs assigned, probed by the iommu core) and binds it to a driver — by default
 * vfio-pci, which registers it with VFIO (/dev/vfio/<group>).
 *
 * KVM: /dev/kvm offers one architecture — arm64 by default (with a GICv3 model for irqfds), or
 * s390x (vCPUs with the architected reset state) — chosen by `kvmArch`.
 *
 * Construction with a configuration the hardware or driver refuses throws: a host that cannot
 * boot is a mistake in the scenario, reported once, not a state to model.
 */

import { PhysMem } from '../hw/memory.ts';
import { PageAllocator } from '../hw/page-alloc.ts';
import { MsiController } from '../hw/platform/msi-controller.ts';
import { SystemBus } from '../hw/platform/system-bus.ts';
import type { SmmuFeatures } from '../hw/smmuv3/features.ts';
import { Smmu } from '../hw/smmuv3/smmu.ts';
import { ENODEV, errnoName } from '../uapi/errno.ts';
import { IoasidAllocator } from './ioasid.ts';
import { IommuCore, type IommuCoreOptions } from './iommu/core.ts';
import type { IommuCoreServices, IommuDevice } from './iommu/types.ts';
import { Kernel, type KernelOptions } from './kernel/kernel.ts';
import type { HostMemory } from './kernel/mm.ts';
import type { KvmArch, KvmArchName } from './kvm/arch.ts';
import { type Arm64KvmOptions, arm64Arch } from './kvm/arm64/arch.ts';
import { Kvm } from './kvm/kvm.ts';
import { s390Arch } from './kvm/s390/vm.ts';
import { HostPci, type HostPciDevice, type HostPciFunction, pciName } from './pci.ts';
import { ArmSmmuV3, type ArmSmmuV3Options } from './smmuv3/driver.ts';
import type { VfioIommuDriver } from './vfio/iommu-driver.ts';
import { VfioPciDevice, type VfioPciOptions } from './vfio/pci-device.ts';
import { type VfioIommuType1Options, vfioIommuType1Driver } from './vfio/type1.ts';
import { Vfio, type VfioOptions } from './vfio/vfio.ts';

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
  readonly vfio?: VfioOptions;
  readonly type1?: VfioIommuType1Options;
  /**
   * VFIO's IOMMU backends, in the order VFIO_SET_IOMMU tries them; default: type1. (Tests
   * replace it to isolate the VFIO core.)
   */
  readonly vfioIommuDrivers?: (host: Host) => readonly VfioIommuDriver[];
  /** vfio-pci defaults (the PASID patch applied unless exposePasid is false). */
  readonly vfioPci?: VfioPciOptions;
  /** The KVM architecture /dev/kvm offers: 'arm64' (default) or 's390x'. */
  readonly kvmArch?: KvmArchName;
  /** arm64 KVM's host facts (IPA limit, online CPUs). */
  readonly arm64?: Arm64KvmOptions;
}

/** How a PCI function is plugged in. */
export interface PciPlug {
  /** The SMMU in front of it (default smmu0). */
  readonly iommu?: string;
  /** The driver it binds to: 'vfio-pci' (default), 'pci-stub', another name, or null. */
  readonly driver?: string | null;
  /** Devices sharing a key share an IOMMU group (no isolation between them). */
  readonly isolationKey?: string;
  readonly vfioPci?: VfioPciOptions;
}

/** One SMMU: the device model, its driver, and the system bus its devices do DMA on. */
export interface HostSmmu {
  readonly name: string;
  readonly hw: Smmu;
  readonly driver: ArmSmmuV3;
  readonly bus: SystemBus;
}

export class Host {
  readonly memory: HostMemory;
  readonly kernel: Kernel;
  readonly iommu: IommuCore;
  readonly ioasid: IoasidAllocator;
  readonly smmus: readonly HostSmmu[];
  readonly msi = new MsiController();
  readonly pci = new HostPci();
  readonly vfio: Vfio;
  /** /dev/kvm */
  readonly kvm: Kvm;
  private readonly vfioPciDefaults: VfioPciOptions;
  private readonly vfioPciDevices = new Map<HostPciDevice, VfioPciDevice>();

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
    this.vfio = new Vfio(
      this.kernel,
      this.iommu,
      this.ioasid,
      (dev) => this.pci.driverOf(dev),
      opts.vfio ?? {},
    );
    const drivers = opts.vfioIommuDrivers?.(this) ?? [vfioIommuType1Driver(this.iommu, opts.type1 ?? {})];
    for (const d of drivers) this.vfio.registerIommuDriver(d);
    this.vfioPciDefaults = opts.vfioPci ?? {};
    this.kvm = new Kvm(this.kernel, kvmArchFor(opts));
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
    const bus = new SystemBus({ mem: this.memory.mem, iommu: hw });
    this.msi.attach(bus);
    return { name: spec.name, hw, driver, bus };
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

  /**
   * Plugs a PCI function in behind an SMMU: DMA through that SMMU's bus, BARs assigned, probed by
   * the iommu core (StreamID = Requester ID), then bound to its driver (vfio-pci by default).
   * Returns the host's record of it, or -errno when the iommu core refuses it.
   */
  addPciDevice(
    fn: HostPciFunction & { connect(dma: SystemBus | null): void },
    plug: PciPlug = {},
  ): HostPciDevice | number {
    const smmu = this.smmu(plug.iommu ?? 'smmu0');
    fn.connect(smmu.bus);
    const iommuDev: IommuDevice = {
      name: pciName(fn),
      bus: 'pci',
      iommuName: smmu.name,
      ids: [fn.streamId],
      pasidBits: fn.maxPasidWidth,
      ...(plug.isolationKey !== undefined ? { isolationKey: plug.isolationKey } : {}),
    };
    const r = this.iommu.probeDevice(iommuDev);
    if (r !== 0) {
      fn.connect(null);
      return r;
    }
    const driver = plug.driver === undefined ? 'vfio-pci' : plug.driver;
    const d = this.pci.add(fn, iommuDev, driver);
    // arm_smmu_probe_device → arm_smmu_enable_pasid: the host IOMMU driver, not the guest, turns
    // PASID on in the function (its StreamID's PASID width is what the SMMU supports).
    if (fn.maxPasidWidth > 0 && smmu.hw.features.ssidBits > 0) this.pci.enablePasid(fn);
    if (driver === 'vfio-pci') {
      const vdev = new VfioPciDevice(fn, iommuDev, this.vfioPciPlatform(), {
        ...this.vfioPciDefaults,
        ...plug.vfioPci,
      });
      const v = this.vfio.addGroupDevice(iommuDev, vdev);
      if (v !== 0) throw new Error(`host: vfio-pci cannot claim ${d.name} (${errnoName(v)})`);
      this.vfioPciDevices.set(d, vdev);
    }
    return d;
  }

  /** The vfio-pci instance bound to a PCI device, if any (inspection). */
  vfioPciOf(d: HostPciDevice): VfioPciDevice | undefined {
    return this.vfioPciDevices.get(d);
  }

  private vfioPciPlatform() {
    return {
      kernel: this.kernel,
      core: this.iommu,
      pci: this.pci,
      msi: this.msi,
      doorbellPa: this.msi.doorbell,
    };
  }
}

/** The KVM architecture a host's options ask for. */
function kvmArchFor(opts: HostOptions): KvmArch {
  switch (opts.kvmArch ?? 'arm64') {
    case 'arm64':
      return arm64Arch(opts.arm64 ?? {});
    case 's390x':
      return s390Arch();
  }
}

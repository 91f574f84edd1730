/**
 * The host's PCI core, as far as VFIO needs it: the PCI functions present on the host (behind
 * which SMMU, with which Requester ID = StreamID), BAR assignment from a host MMIO window,
 * enabling memory decoding, function-level reset with the config save/restore the PCI core wraps
 * around it (pci_try_reset_function), and which driver each function is bound to (vfio-pci, a
 * host driver, pci-stub or none — what decides a VFIO group's viability).
 *
 * Decision: BARs are assigned in probe order from HOST_MMIO_BASE upward, each naturally aligned
 * to its size, above host RAM and away from the MSI frame.
 */

import { pciFindExtCapability } from '../hw/pci/config-space.ts';
import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_PASID,
  PCI_PASID_CAP,
  PCI_PASID_CAP_EXEC,
  PCI_PASID_CAP_PRIV,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
  PCI_STD_NUM_BARS,
  type PciConfigPort,
} from '../hw/pci/regs.ts';
import type { IommuDevice } from './iommu/types.ts';

/** What the host reaches of a PCI function (a `PasidDmaDevice` is one). */
export interface HostPciFunction extends PciConfigPort {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  /** Requester ID; the SMMU StreamID is the same on this platform (identity iommu-map). */
  readonly rid: number;
  readonly streamId: number;
  readonly maxPasidWidth: number;
  barSize(bar: number): number;
  barRead(bar: number, offset: number, size: AccessSize): number;
  barWrite(bar: number, offset: number, size: AccessSize, value: number): void;
  /** Function-level reset (the device's own: config space back to power-on values). */
  flr(): void;
}

/** Start of the host's 64-bit PCI MMIO window. */
export const HOST_MMIO_BASE = 0x10_0000_0000;

/** "0000:BB:DD.F" */
export function pciName(f: { bus: number; dev: number; fn: number }): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `0000:${h(f.bus, 2)}:${h(f.dev, 2)}.${f.fn}`;
}

export interface HostPciDevice {
  readonly fn: HostPciFunction;
  readonly iommuDev: IommuDevice;
  readonly name: string;
  /** The bound driver: 'vfio-pci', 'pci-stub', a host driver's name, or null. */
  driver: string | null;
}

export class HostPci {
  private nextMmio = HOST_MMIO_BASE;
  private readonly byIommuDev = new Map<IommuDevice, HostPciDevice>();
  private readonly byName = new Map<string, HostPciDevice>();

  /** Records a probed function, assigns its BARs and enables memory decoding. */
  add(fn: HostPciFunction, iommuDev: IommuDevice, driver: string | null): HostPciDevice {
    const d: HostPciDevice = { fn, iommuDev, name: pciName(fn), driver };
    this.assignBars(fn);
    this.byIommuDev.set(iommuDev, d);
    this.byName.set(d.name, d);
    return d;
  }

  remove(d: HostPciDevice): void {
    this.byIommuDev.delete(d.iommuDev);
    this.byName.delete(d.name);
  }

  get devices(): HostPciDevice[] {
    return [...this.byName.values()];
  }

  byDevice(dev: IommuDevice): HostPciDevice | undefined {
    return this.byIommuDev.get(dev);
  }

  lookup(name: string): HostPciDevice | undefined {
    return this.byName.get(name);
  }

  /** Driver bindings of devices that are not PCI functions of this model (platform devices, tests). */
  private readonly otherBindings = new Map<IommuDevice, string | null>();

  /** The driver `dev` is bound to (null: none). */
  driverOf(dev: IommuDevice): string | null {
    const d = this.byIommuDev.get(dev);
    return d !== undefined ? d.driver : (this.otherBindings.get(dev) ?? null);
  }

  /** Binds `dev` to `driver` (null unbinds): what decides whether its VFIO group is viable. */
  setDriver(dev: IommuDevice, driver: string | null): void {
    const d = this.byIommuDev.get(dev);
    if (d !== undefined) d.driver = driver;
    else this.otherBindings.set(dev, driver);
  }

  private assignBars(fn: HostPciFunction): void {
    for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++) {
      const size = fn.barSize(bar);
      if (size === 0) continue;
      const base = Math.ceil(this.nextMmio / size) * size;
      this.nextMmio = base + size;
      const reg = PCI_BASE_ADDRESS_0 + 4 * bar;
      const is64 = (fn.configRead(reg, 4) & PCI_BASE_ADDRESS_MEM_TYPE_64) !== 0;
      fn.configWrite(reg, 4, base % 2 ** 32);
      if (is64) {
        fn.configWrite(reg + 4, 4, Math.floor(base / 2 ** 32));
        bar++;
      }
    }
  }

  /** pci_enable_device: memory decoding on (bus mastering is left to the driver / user). */
  enable(fn: HostPciFunction): void {
    const cmd = fn.configRead(PCI_COMMAND, 2);
    fn.configWrite(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
  }

  /** pci_clear_master */
  clearMaster(fn: HostPciFunction): void {
    const cmd = fn.configRead(PCI_COMMAND, 2);
    fn.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
  }

  /**
   * pci_try_reset_function: save, reset the function, restore — as pci_dev_save_and_disable and
   * pci_restore_state do around the reset: the BARs, the Command register, and the PASID
   * Control register (pci_restore_pasid_state). MSI-X comes back disabled (its owner re-enables
   * it: vfio-pci re-programs its vectors).
   */
  resetFunction(fn: HostPciFunction): number {
    const saved: number[] = [];
    for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++)
      saved.push(fn.configRead(PCI_BASE_ADDRESS_0 + 4 * bar, 4));
    const cmd = fn.configRead(PCI_COMMAND, 2);
    const pasid = pciFindExtCapability(fn, PCI_EXT_CAP_ID_PASID);
    const pasidCtrl = pasid !== 0 ? fn.configRead(pasid + PCI_PASID_CTRL, 2) : 0;
    fn.flr();
    for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++)
      fn.configWrite(PCI_BASE_ADDRESS_0 + 4 * bar, 4, saved[bar]!);
    fn.configWrite(PCI_COMMAND, 2, cmd);
    if (pasid !== 0) fn.configWrite(pasid + PCI_PASID_CTRL, 2, pasidCtrl);
    return 0;
  }

  /**
   * pci_enable_pasid, as the arm-smmu-v3 driver calls it when it probes a PCI master with PASID
   * support (arm_smmu_enable_pasid): Enable, plus Execute and Privileged if the function has them.
   * Returns the features enabled, or 0 when the function has no PASID capability.
   */
  enablePasid(fn: HostPciFunction): number {
    const pasid = pciFindExtCapability(fn, PCI_EXT_CAP_ID_PASID);
    if (pasid === 0) return 0;
    const cap = fn.configRead(pasid + PCI_PASID_CAP, 2);
    const features = PCI_PASID_CTRL_ENABLE | (cap & (PCI_PASID_CAP_EXEC | PCI_PASID_CAP_PRIV));
    fn.configWrite(pasid + PCI_PASID_CTRL, 2, features);
    return features;
  }
}

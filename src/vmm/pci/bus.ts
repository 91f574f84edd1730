/**
 * The VMM's PCI bus and how a device on it finds its IOMMU: seed-spec §3.1 (QEMU's
 * `pci_setup_iommu(bus, ops, opaque)` storing a `PCIIOMMUOps` table, and
 * `pci_device_iommu_address_space(dev)`), with the later `set_iommu_context` /
 * `unset_iommu_context` ops of §3.2 and vsva's `inject_faults` (see `iommu.ts`).
 *
 * The lookup starts at the device's bus and climbs towards the root while the bus has no ops and
 * has a parent bridge. On the way the requester identity the IOMMU will see is aliased as
 * conventional PCI makes it: a device on a conventional bus behind a PCIe-to-PCI bridge is seen as
 * (the bridge's secondary bus, devfn 0) — the bridge takes ownership of the transaction with that
 * requester ID — and behind a conventional PCI-PCI bridge as the bridge itself (its bus, its
 * devfn). Behind a PCIe root port (an express secondary bus) the device keeps its own identity.
 *
 * Decision: all four ops are called with the same aliased (bus, devfn) as `get_address_space`,
 * so a vIOMMU keys its per-device state by the one requester ID the hardware would present.
 */

import { EBUSY, EINVAL, ENOENT } from '../../uapi/errno.ts';
import type { IommuFaultRecord } from '../../uapi/iommu.ts';
import type { PCIDevice } from './device.ts';
import {
  type AddressSpace,
  addressSpaceMemory,
  type HostIOMMUContext,
  type PCIBusIdentity,
  type PCIIOMMUOps,
} from './iommu.ts';

/** What a bus needs from the bridge above it. */
export interface PCIBusParent {
  readonly device: PCIDevice;
  /** The secondary bus number the guest programmed into the bridge. */
  secondaryBusNumber(): number;
  /** 'pcie-pci': a PCIe-to-PCI bridge (aliases to its secondary bus, devfn 0). */
  readonly kind: 'root-port' | 'pci-pci' | 'pcie-pci';
}

export class PCIBus implements PCIBusIdentity {
  readonly name: string;
  /** PCI Express bus (the root bus and a root port's secondary) or conventional PCI. */
  readonly express: boolean;
  readonly parent: PCIBusParent | undefined;
  private readonly slots: (PCIDevice | undefined)[] = new Array<PCIDevice | undefined>(256);
  iommuOps: PCIIOMMUOps | undefined = undefined;
  iommuOpaque: unknown = undefined;

  constructor(name: string, opts: { express?: boolean; parent?: PCIBusParent } = {}) {
    this.name = name;
    this.express = opts.express ?? true;
    this.parent = opts.parent;
  }

  /** pci_bus_num(): the parent bridge's secondary bus number, 0 for the root bus. */
  busNumber(): number {
    return this.parent === undefined ? 0 : this.parent.secondaryBusNumber();
  }

  /** The function at `devfn`, if any. */
  device(devfn: number): PCIDevice | undefined {
    return this.slots[devfn];
  }

  /** Functions on this bus in devfn order. */
  devices(): PCIDevice[] {
    return this.slots.filter((d): d is PCIDevice => d !== undefined);
  }

  /** Used by `PCIDevice.realizeOn`: 0, -EINVAL for a bad devfn, -EBUSY when the slot is taken. */
  attach(dev: PCIDevice, devfn: number): number {
    if (!Number.isInteger(devfn) || devfn < 0 || devfn > 255) return -EINVAL;
    if (this.slots[devfn] !== undefined) return -EBUSY;
    this.slots[devfn] = dev;
    return 0;
  }

  detach(dev: PCIDevice): void {
    const i = this.slots.indexOf(dev);
    if (i >= 0) this.slots[i] = undefined;
  }
}

/** pci_setup_iommu: stores the ops table and its opaque on the bus (§3.1). */
export function pci_setup_iommu(bus: PCIBus, ops: PCIIOMMUOps, opaque: unknown): void {
  bus.iommuOps = ops;
  bus.iommuOpaque = opaque;
}

/** Where a device's DMA is translated: the bus with the ops and the requester (bus, devfn) it sees. */
export interface PCIIommuLookup {
  /** The bus whose ops apply (undefined: none up the chain). */
  readonly iommuBus: PCIBus | undefined;
  /** The requester's bus after aliasing. */
  readonly bus: PCIBus;
  /** The requester's devfn after aliasing. */
  readonly devfn: number;
}

/**
 * pci_device_get_iommu_bus_devfn: climbs from the device's bus while the bus has no ops and a
 * parent bridge, aliasing the requester at conventional-PCI bridges. Undefined when the device is
 * not plugged.
 */
export function pci_device_iommu_lookup(dev: PCIDevice): PCIIommuLookup | undefined {
  const start = dev.bus;
  if (start === undefined) return undefined;
  let bus = start;
  let devfn = dev.devfn;
  let at: PCIBus = start;
  // Bounded: a bus hierarchy has at most 256 levels.
  for (let depth = 0; depth < 256 && at.iommuOps === undefined && at.parent !== undefined; depth++) {
    const bridge = at.parent.device;
    const upstream = bridge.bus;
    if (upstream === undefined) break;
    if (!at.express) {
      if (at.parent.kind === 'pcie-pci') {
        bus = at;
        devfn = 0;
      } else {
        bus = upstream;
        devfn = bridge.devfn;
      }
    }
    at = upstream;
  }
  return { iommuBus: at.iommuOps !== undefined ? at : undefined, bus, devfn };
}

/** pci_device_iommu_address_space (§3.1). */
export function pci_device_iommu_address_space(dev: PCIDevice): AddressSpace {
  const l = pci_device_iommu_lookup(dev);
  const ops = l?.iommuBus?.iommuOps;
  if (l === undefined || ops === undefined || typeof ops.get_address_space !== 'function')
    return addressSpaceMemory;
  return ops.get_address_space(l.bus, l.iommuBus!.iommuOpaque, l.devfn);
}

/** pci_device_set_iommu_context: the op's result, or -ENOENT when no bus up the chain has the op. */
export function pci_device_set_iommu_context(dev: PCIDevice, ctx: HostIOMMUContext): number {
  const l = pci_device_iommu_lookup(dev);
  const ops = l?.iommuBus?.iommuOps;
  if (l === undefined || ops?.set_iommu_context === undefined) return -ENOENT;
  return ops.set_iommu_context(l.bus, l.iommuBus!.iommuOpaque, l.devfn, ctx);
}

/** pci_device_unset_iommu_context: a no-op when no bus up the chain has the op. */
export function pci_device_unset_iommu_context(dev: PCIDevice): void {
  const l = pci_device_iommu_lookup(dev);
  const ops = l?.iommuBus?.iommuOps;
  if (l === undefined || ops?.unset_iommu_context === undefined) return;
  ops.unset_iommu_context(l.bus, l.iommuBus!.iommuOpaque, l.devfn);
}

/** vsva's addition: host-reported faults to the vIOMMU; -ENOENT when no bus up the chain has the op. */
export function pci_device_iommu_inject_faults(dev: PCIDevice, faults: readonly IommuFaultRecord[]): number {
  const l = pci_device_iommu_lookup(dev);
  const ops = l?.iommuBus?.iommuOps;
  if (l === undefined || ops?.inject_faults === undefined) return -ENOENT;
  return ops.inject_faults(l.bus, l.iommuBus!.iommuOpaque, l.devfn, faults);
}

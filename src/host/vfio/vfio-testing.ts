/**
 * Test support for the VFIO core: a host with SMMUs, devices claimed by a stub VFIO bus driver,
 * and a minimal IOMMU backend that gives each IOMMU instance one nesting-capable domain (enough to
 * exercise containers, groups and the nesting/PASID ioctls without the type1 backend's DMA
 * mapping). Used only by tests.
 */

import { ENOTTY } from '../../uapi/errno.ts';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../uapi/vfio.ts';
import { Host, type HostOptions } from '../host.ts';
import type { IommuCore, IommuGroup } from '../iommu/core.ts';
import { IOMMU_DOMAIN_UNMANAGED, type IommuDevice, type IommuDomain } from '../iommu/types.ts';
import type { VfioDeviceOps } from './device.ts';
import type { VfioIommuBackend, VfioIommuDriver } from './iommu-driver.ts';
import type { Vfio, VfioOptions } from './vfio.ts';

/** One nesting domain per IOMMU instance; groups of the same instance share it. */
export class StubBackend implements VfioIommuBackend {
  readonly core: IommuCore;
  readonly nesting: boolean;
  readonly domains: { domain: IommuDomain; groups: IommuGroup[] }[] = [];
  released = false;

  constructor(core: IommuCore, nesting: boolean) {
    this.core = core;
    this.nesting = nesting;
  }

  attachGroup(group: IommuGroup): number {
    if (this.domains.some((d) => d.groups.includes(group))) return -22;
    const same = this.domains.find((d) => d.groups[0]?.iommuName === group.iommuName);
    if (same !== undefined) {
      const r = this.core.iommuAttachGroup(same.domain, group);
      if (r !== 0) return r;
      same.groups.push(group);
      return 0;
    }
    const domain = this.core.iommuDomainAlloc(group.iommuName, IOMMU_DOMAIN_UNMANAGED);
    if (domain === undefined) return -5;
    if (this.nesting) {
      const r = this.core.iommuEnableNesting(domain);
      if (r !== 0) {
        this.core.iommuDomainFree(domain);
        return r;
      }
    }
    const r = this.core.iommuAttachGroup(domain, group);
    if (r !== 0) {
      this.core.iommuDomainFree(domain);
      return r;
    }
    // As type1 does: an MSI cookie for the software-managed MSI window.
    const swMsi = this.core.iommuGetGroupResvRegions(group).find((reg) => reg.type === 'sw-msi');
    if (swMsi !== undefined) this.core.iommuGetMsiCookie(domain, swMsi.start);
    this.domains.push({ domain, groups: [group] });
    return 0;
  }

  detachGroup(group: IommuGroup): void {
    const i = this.domains.findIndex((d) => d.groups.includes(group));
    if (i < 0) return;
    const d = this.domains[i]!;
    this.core.iommuDetachGroup(d.domain, group);
    d.groups.splice(d.groups.indexOf(group), 1);
    if (d.groups.length === 0) {
      this.core.iommuDomainFree(d.domain);
      this.domains.splice(i, 1);
    }
  }

  ioctl(_proc: unknown, request: number, arg: { value: number }): number {
    if (request === VFIO_CHECK_EXTENSION) return stubDriver(this.core).checkExtension(arg.value);
    return -ENOTTY;
  }

  release(): void {
    for (const d of [...this.domains]) for (const g of [...d.groups]) this.detachGroup(g);
    this.released = true;
  }
}

export function stubDriver(core: IommuCore, onOpen?: (b: StubBackend) => void): VfioIommuDriver {
  return {
    name: 'stub-type1',
    checkExtension: (arg) =>
      arg === VFIO_TYPE1_IOMMU || arg === VFIO_TYPE1v2_IOMMU || arg === VFIO_TYPE1_NESTING_IOMMU ? 1 : 0,
    open: (arg) => {
      if (arg !== VFIO_TYPE1_IOMMU && arg !== VFIO_TYPE1v2_IOMMU && arg !== VFIO_TYPE1_NESTING_IOMMU)
        return -22;
      const b = new StubBackend(core, arg === VFIO_TYPE1_NESTING_IOMMU);
      onOpen?.(b);
      return b;
    },
  };
}

export interface VfioBench {
  readonly host: Host;
  readonly vfio: Vfio;
  /** Driver bindings (for the group viability rule). */
  readonly drivers: { set(dev: IommuDevice, driver: string | null): void };
  readonly backends: StubBackend[];
  /** Adds a PCI device on `iommu` with StreamID `sid`, claimed by the stub VFIO driver. */
  addDevice(name: string, sid: number, iommu?: string, isolationKey?: string): IommuDevice;
}

/** A host (two SMMUs unless told otherwise) whose VFIO has only the stub backend. */
export function vfioBench(hostOpts: HostOptions = {}, vfioOpts: VfioOptions = {}): VfioBench {
  const backends: StubBackend[] = [];
  const host = new Host({
    ramSize: 0x1000_0000,
    smmus: [{ name: 'smmu0' }, { name: 'smmu1' }],
    ...hostOpts,
    vfio: vfioOpts,
    vfioIommuDrivers: (h) => [stubDriver(h.iommu, (b) => backends.push(b))],
  });
  const vfio = host.vfio;
  const drivers = { set: (dev: IommuDevice, driver: string | null) => host.pci.setDriver(dev, driver) };
  return {
    host,
    vfio,
    drivers,
    backends,
    addDevice(name, sid, iommu = 'smmu0', isolationKey) {
      const dev: IommuDevice = {
        name,
        bus: 'pci',
        iommuName: iommu,
        ids: [sid],
        pasidBits: 20,
        ...(isolationKey !== undefined ? { isolationKey } : {}),
      };
      if (host.addDevice(dev) !== 0) throw new Error(`cannot add ${name}`);
      drivers.set(dev, 'vfio-pci');
      const ops: VfioDeviceOps = { name, open: () => 0, release: () => {} };
      if (vfio.addGroupDevice(dev, ops) !== 0) throw new Error(`vfio cannot claim ${name}`);
      return dev;
    },
  };
}

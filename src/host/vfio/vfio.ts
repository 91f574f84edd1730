/**
 * The VFIO core (drivers/vfio/vfio.c, Linux ~5.10): the container device node /dev/vfio/vfio, a
 * group node /dev/vfio/<iommu group id> for every IOMMU group that holds a device bound to a VFIO
 * bus driver (vfio-pci), the registry of IOMMU backends (type1), and the per-mm PASID accounting
 * objects of the PASID_REQUEST RFC (seed-spec §6.2) shared by all containers of one process.
 *
 * The container, group and device files live in container.ts, group.ts and device.ts; this file
 * ties them to the kernel and to the iommu core.
 */

import { EBUSY, EEXIST, EINVAL } from '../../uapi/errno.ts';
import { VFIO_DEFAULT_PASID_QUOTA } from '../../uapi/vfio.ts';
import type { IoasidAllocator } from '../ioasid.ts';
import type { IommuCore, IommuGroup } from '../iommu/core.ts';
import type { IommuDevice } from '../iommu/types.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { Mm } from '../kernel/mm.ts';
import { openContainer } from './container.ts';
import type { VfioDeviceOps } from './device.ts';
import { VfioGroup } from './group.ts';
import type { VfioIommuDriver } from './iommu-driver.ts';
import { VfioMm } from './pasid.ts';

export interface VfioOptions {
  /** The type1 module parameter `pasid_quota`: the quota a new vfio_mm starts with (default 1000). */
  readonly pasidQuota?: number;
  /**
   * PASID_REQUEST as RFC v3 posted it: a failed allocation is swallowed (the ioctl returns 0 and
   * `result` is not written). Default false: the intended behaviour, a real errno.
   */
  readonly pasidRequestAsPosted?: boolean;
  /** Drivers whose devices do not make a group non-viable (vfio_dev_driver_allowed). */
  readonly allowedDrivers?: readonly string[];
}

/** A device registered by a VFIO bus driver (vfio_add_group_dev). */
export interface VfioDevice {
  readonly dev: IommuDevice;
  readonly ops: VfioDeviceOps;
  readonly group: VfioGroup;
  /** Open device fds (the device's own open count). */
  opens: number;
}

export class Vfio {
  readonly kernel: Kernel;
  readonly core: IommuCore;
  readonly ioasid: IoasidAllocator;
  readonly options: Required<VfioOptions>;
  /** The registered IOMMU backends, in registration order (vfio.iommu_drivers_list). */
  readonly iommuDrivers: VfioIommuDriver[] = [];
  private readonly groups = new Map<IommuGroup, VfioGroup>();
  private readonly vfioMms = new Map<Mm, VfioMm>();
  /** The driver each device is bound to, as the host's bus reports it (null: none). */
  private readonly driverOf: (dev: IommuDevice) => string | null;

  constructor(
    kernel: Kernel,
    core: IommuCore,
    ioasid: IoasidAllocator,
    driverOf: (dev: IommuDevice) => string | null,
    opts: VfioOptions = {},
  ) {
    this.kernel = kernel;
    this.core = core;
    this.ioasid = ioasid;
    this.driverOf = driverOf;
    this.options = {
      pasidQuota: opts.pasidQuota ?? VFIO_DEFAULT_PASID_QUOTA,
      pasidRequestAsPosted: opts.pasidRequestAsPosted ?? false,
      allowedDrivers: opts.allowedDrivers ?? ['pci-stub'],
    };
    const r = kernel.registerDevice('/dev/vfio/vfio', { open: () => openContainer(this) });
    if (r !== 0) throw new Error('vfio: /dev/vfio/vfio already exists');
  }

  /** vfio_register_iommu_driver: -EBUSY when a backend of that name is registered. */
  registerIommuDriver(driver: VfioIommuDriver): number {
    if (this.iommuDrivers.some((d) => d.name === driver.name)) return -EBUSY;
    this.iommuDrivers.push(driver);
    return 0;
  }

  // ------------------------------------------------------------ groups and devices

  /**
   * vfio_add_group_dev: a VFIO bus driver (vfio-pci) claims `dev`. Creates the VFIO group of its
   * IOMMU group (and the /dev/vfio/<id> node) on first use. -EINVAL without an IOMMU group,
   * -EBUSY when the device is already registered.
   */
  addGroupDevice(dev: IommuDevice, ops: VfioDeviceOps): number {
    const iommuGroup = this.core.iommuGroupGet(dev);
    if (iommuGroup === undefined) return -EINVAL;
    let group = this.groups.get(iommuGroup);
    if (group === undefined) {
      group = new VfioGroup(this, iommuGroup);
      const r = this.kernel.registerDevice(group.path, { open: () => group!.open() });
      if (r !== 0) return -EEXIST;
      this.groups.set(iommuGroup, group);
    }
    if (group.deviceOf(dev) !== undefined) return -EBUSY;
    group.addDevice({ dev, ops, group, opens: 0 });
    return 0;
  }

  /**
   * vfio_del_group_dev: the bus driver lets go of `dev`. Decision: refused with -EBUSY while the
   * device is open (Linux blocks until user space releases it); the group and its node go away with
   * their last device unless the group is open.
   */
  delGroupDevice(dev: IommuDevice): number {
    const iommuGroup = this.core.iommuGroupGet(dev);
    const group = iommuGroup === undefined ? undefined : this.groups.get(iommuGroup);
    const device = group?.deviceOf(dev);
    if (group === undefined || device === undefined) return -EINVAL;
    if (device.opens > 0) return -EBUSY;
    group.removeDevice(device);
    if (group.devices.length === 0 && !group.isOpen && group.container === undefined) {
      this.kernel.unregisterDevice(group.path);
      this.groups.delete(group.iommuGroup);
    }
    return 0;
  }

  /** The VFIO group of an IOMMU group, if a VFIO driver claimed one of its devices. */
  groupOf(iommuGroup: IommuGroup): VfioGroup | undefined {
    return this.groups.get(iommuGroup);
  }

  /**
   * vfio_dev_viable: a member device keeps the group viable when it is bound to a VFIO driver,
   * to no driver, or to an allowed driver (pci-stub).
   */
  deviceViable(group: VfioGroup, dev: IommuDevice): boolean {
    const drv = this.driverOf(dev);
    if (drv === null || this.options.allowedDrivers.includes(drv)) return true;
    return group.deviceOf(dev) !== undefined;
  }

  // ------------------------------------------------------------ per-mm PASID accounting (§6.2)

  /** vfio_mm_get_from_task: the mm's accounting object, created with the module quota on first use. */
  vfioMmGet(mm: Mm): VfioMm {
    let v = this.vfioMms.get(mm);
    if (v === undefined) {
      v = new VfioMm(this, mm, this.options.pasidQuota);
      this.vfioMms.set(mm, v);
    } else {
      v.get();
    }
    return v;
  }

  /** @internal the last reference went: reclaim its PASIDs (RFC v3 3/8) and forget it. */
  vfioMmRelease(v: VfioMm): void {
    this.vfioMms.delete(v.mm);
  }

  /** The accounting object of an mm, if one exists (inspection). */
  vfioMmOf(mm: Mm): VfioMm | undefined {
    return this.vfioMms.get(mm);
  }
}

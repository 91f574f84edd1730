/**
 * VFIO containers, /dev/vfio/vfio (vfio.c, Linux ~5.10): a set of groups sharing one IOMMU
 * context. VFIO_SET_IOMMU picks the first registered backend that supports the requested type and
 * attaches every group (needing at least one group, and no backend yet); from then on the
 * container's other ioctls go to the backend — including the seed patches' nesting and PASID
 * ioctls, which vsva implements on top of the type1 backend here. Without a backend an unknown
 * ioctl is EINVAL, as vfio.c answers.
 *
 * The container lives while its file or any of its groups holds it; the backend (and the per-mm
 * PASID accounting reference taken with it) goes when the last group leaves.
 *
 * Decision: the vfio_mm of the §6 RFC is taken when VFIO_SET_IOMMU opens the backend, from the
 * calling process's mm (seed-spec §6.2: "the task that opens the type1 backend").
 */

import { EINVAL, ENODEV } from '../../uapi/errno.ts';
import { O_RDWR } from '../../uapi/fcntl.ts';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_CACHE_INVALIDATE,
  VFIO_IOMMU_PASID_REQUEST,
  VFIO_IOMMU_SET_MSI_BINDING,
  VFIO_IOMMU_SET_PASID_QUOTA,
  VFIO_IOMMU_SET_PASID_TABLE,
  VFIO_SET_IOMMU,
} from '../../uapi/vfio.ts';
import { File, type FileOperations, FMODE_READ, FMODE_WRITE } from '../kernel/file.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg } from '../uaccess.ts';
import type { VfioGroup } from './group.ts';
import type { VfioIommuBackend, VfioIommuDriver } from './iommu-driver.ts';
import { vfioCacheInvalidate, vfioSetMsiBinding, vfioSetPasidTable } from './nesting.ts';
import { type VfioMm, vfioPasidRequest, vfioSetPasidQuota } from './pasid.ts';
import type { Vfio } from './vfio.ts';

export class VfioContainer {
  readonly vfio: Vfio;
  readonly groups: VfioGroup[] = [];
  driver: VfioIommuDriver | undefined = undefined;
  backend: VfioIommuBackend | undefined = undefined;
  vmm: VfioMm | undefined = undefined;
  /** The container file plus one per member group (kref). */
  private refs = 1;

  constructor(vfio: Vfio) {
    this.vfio = vfio;
  }

  get refcount(): number {
    return this.refs;
  }

  put(): void {
    this.refs--;
  }

  hasDomain(): boolean {
    return (this.backend?.domains.length ?? 0) > 0;
  }

  /** The group side of vfio_group_set_container: attach through the backend if there is one. */
  addGroup(group: VfioGroup): number {
    if (this.backend !== undefined) {
      const r = this.backend.attachGroup(group.iommuGroup);
      if (r !== 0) return r;
    }
    this.groups.push(group);
    this.refs++;
    return 0;
  }

  /** __vfio_group_unset_container: the last group out releases the backend. */
  removeGroup(group: VfioGroup): void {
    this.backend?.detachGroup(group.iommuGroup);
    const i = this.groups.indexOf(group);
    if (i >= 0) this.groups.splice(i, 1);
    if (this.backend !== undefined && this.groups.length === 0) {
      this.backend.release();
      this.backend = undefined;
      this.driver = undefined;
      this.vmm?.put();
      this.vmm = undefined;
    }
    this.put();
  }

  /** vfio_ioctl_check_extension */
  checkExtension(proc: Process, arg: IoctlArg): number {
    if (this.backend !== undefined) return this.backend.ioctl(proc, VFIO_CHECK_EXTENSION, arg);
    let ret = 0;
    for (const d of this.vfio.iommuDrivers) {
      ret = d.checkExtension(arg.value);
      if (ret > 0) break;
    }
    return ret;
  }

  /** vfio_ioctl_set_iommu */
  setIommu(proc: Process, type: number): number {
    if (this.groups.length === 0 || this.backend !== undefined) return -EINVAL;
    let ret = -ENODEV;
    for (const driver of this.vfio.iommuDrivers) {
      if (driver.checkExtension(type) <= 0) continue;
      const data = driver.open(type);
      if (typeof data === 'number') {
        ret = data;
        continue;
      }
      ret = this.attachGroups(data);
      if (ret !== 0) {
        data.release();
        continue;
      }
      this.driver = driver;
      this.backend = data;
      this.vmm = this.vfio.vfioMmGet(proc.mm);
      break;
    }
    return ret;
  }

  /** __vfio_container_attach_groups: every group, unwinding in reverse on a failure. */
  private attachGroups(backend: VfioIommuBackend): number {
    let ret = -ENODEV;
    for (let i = 0; i < this.groups.length; i++) {
      ret = backend.attachGroup(this.groups[i]!.iommuGroup);
      if (ret !== 0) {
        for (let j = i - 1; j >= 0; j--) backend.detachGroup(this.groups[j]!.iommuGroup);
        return ret;
      }
    }
    return ret;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return this.checkExtension(proc, arg);
      case VFIO_SET_IOMMU:
        return this.setIommu(proc, arg.value);
    }
    const backend = this.backend;
    if (backend === undefined) return -EINVAL;
    const core = this.vfio.core;
    switch (request) {
      case VFIO_IOMMU_SET_PASID_TABLE:
        return vfioSetPasidTable(core, backend.domains, arg);
      case VFIO_IOMMU_CACHE_INVALIDATE:
        return vfioCacheInvalidate(core, backend.domains, arg);
      case VFIO_IOMMU_SET_MSI_BINDING:
        return vfioSetMsiBinding(core, backend.domains, arg);
      case VFIO_IOMMU_PASID_REQUEST:
        return vfioPasidRequest(this, arg, this.vfio.options.pasidRequestAsPosted);
      case VFIO_IOMMU_SET_PASID_QUOTA:
        return vfioSetPasidQuota(this, arg);
      default:
        return backend.ioctl(proc, request, arg);
    }
  }
}

const containerFops: FileOperations = {
  name: 'vfio-container',
  ioctl: (f, req, arg, ctx) => (f.priv as VfioContainer).ioctl(ctx.proc, req, arg),
  release: (f) => (f.priv as VfioContainer).put(),
};

/** vfio_fops_open: a new, empty container. */
export function openContainer(vfio: Vfio): File {
  return new File(containerFops, O_RDWR, FMODE_READ | FMODE_WRITE, new VfioContainer(vfio));
}

/** The container behind a file, if it is /dev/vfio/vfio's. */
export function containerOfFile(f: File): VfioContainer | undefined {
  return f.ops === containerFops ? (f.priv as VfioContainer) : undefined;
}

/**
 * What the VFIO core needs from an IOMMU backend (`struct vfio_iommu_driver_ops`): a name, the
 * extension check it answers before any container uses it, `open` for one container, and per
 * container the group attach/detach, the ioctls it handles and release. The type1 backend
 * (type1.ts) is the one vsva has.
 */

import type { IommuGroup } from '../iommu/core.ts';
import type { IommuDomain } from '../iommu/types.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg } from '../uaccess.ts';

/** One container's backend instance (the `iommu_data` of a container). */
export interface VfioIommuBackend {
  attachGroup(group: IommuGroup): number;
  detachGroup(group: IommuGroup): void;
  /** Every IOMMU domain of the container, in list order, with the groups attached to it. */
  readonly domains: readonly { readonly domain: IommuDomain; readonly groups: readonly IommuGroup[] }[];
  /** The backend's ioctls; -ENOTTY for those it does not know. */
  ioctl(proc: Process, request: number, arg: IoctlArg): number;
  /** The container lost its last group: unmap, unpin, free everything. */
  release(): void;
}

export interface VfioIommuDriver {
  readonly name: string;
  /** VFIO_CHECK_EXTENSION with no container data (a positive value: supported). */
  checkExtension(arg: number): number;
  /** A backend instance for a container of type `arg`, or -errno. */
  open(arg: number): VfioIommuBackend | number;
}

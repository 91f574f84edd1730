/**
 * The type1 nesting ioctls of Eric Auger's series (seed-spec §2, v13 01/13 and companions):
 * VFIO_IOMMU_SET_PASID_TABLE, VFIO_IOMMU_CACHE_INVALIDATE and VFIO_IOMMU_SET_MSI_BINDING. Each
 * copies a small head (argsz, flags), checks it, then walks the container's IOMMU domains in list
 * order and hands the rest of the user struct — by pointer, so the IOMMU layer re-reads it from
 * user memory for every domain — to the iommu core.
 *
 * Exactly as posted: SET and UNSET are matched exactly (0, both bits or unknown bits: EINVAL);
 * an empty container succeeds and does nothing; a failed SET or BIND unwinds the domains already
 * done in reverse order, not the failing one; UNSET and UNBIND cannot fail; CACHE_INVALIDATE's
 * error only ends the group loop of the current domain, and the next domain may overwrite it.
 */

import { EFAULT, EINVAL } from '../../uapi/errno.ts';
import {
  VFIO_CACHE_INVALIDATE_MINSZ,
  VFIO_IOMMU_BIND_MSI,
  VFIO_IOMMU_UNBIND_MSI,
  VFIO_PASID_TABLE_FLAG_SET,
  VFIO_PASID_TABLE_FLAG_UNSET,
  VFIO_SET_MSI_BINDING_MINSZ,
  VFIO_SET_PASID_TABLE_MINSZ,
  vfio_iommu_type1_cache_invalidate,
  vfio_iommu_type1_set_msi_binding,
  vfio_iommu_type1_set_pasid_table,
} from '../../uapi/vfio.ts';
import type { IommuCore, IommuGroup } from '../iommu/core.ts';
import type { IommuDomain } from '../iommu/types.ts';
import type { IoctlArg } from '../uaccess.ts';

/** The container's domains as the nesting ioctls walk them. */
export type DomainList = readonly { readonly domain: IommuDomain; readonly groups: readonly IommuGroup[] }[];

/** VFIO_IOMMU_SET_PASID_TABLE (§2). */
export function vfioSetPasidTable(core: IommuCore, domains: DomainList, arg: IoctlArg): number {
  const head = arg.ptr.copyFrom(VFIO_SET_PASID_TABLE_MINSZ);
  if (head === undefined) return -EFAULT;
  const { argsz, flags } = vfio_iommu_type1_set_pasid_table.decode(head);
  if (argsz < VFIO_SET_PASID_TABLE_MINSZ) return -EINVAL;
  if (flags === VFIO_PASID_TABLE_FLAG_SET) return attachPasidTable(core, domains, arg);
  if (flags === VFIO_PASID_TABLE_FLAG_UNSET) {
    for (const d of domains) core.iommuDetachPasidTable(d.domain);
    return 0;
  }
  return -EINVAL;
}

/** vfio_attach_pasid_table: each domain re-reads the config at arg + 8; reverse unwind on failure. */
function attachPasidTable(core: IommuCore, domains: DomainList, arg: IoctlArg): number {
  const config = arg.ptr.add(VFIO_SET_PASID_TABLE_MINSZ);
  for (let i = 0; i < domains.length; i++) {
    const ret = core.iommuUapiAttachPasidTable(domains[i]!.domain, config);
    if (ret !== 0) {
      for (let j = i - 1; j >= 0; j--) core.iommuDetachPasidTable(domains[j]!.domain);
      return ret;
    }
  }
  return 0;
}

/** VFIO_IOMMU_CACHE_INVALIDATE (§2 companion, §1.4). */
export function vfioCacheInvalidate(core: IommuCore, domains: DomainList, arg: IoctlArg): number {
  const head = arg.ptr.copyFrom(VFIO_CACHE_INVALIDATE_MINSZ);
  if (head === undefined) return -EFAULT;
  const { argsz, flags } = vfio_iommu_type1_cache_invalidate.decode(head);
  if (argsz < VFIO_CACHE_INVALIDATE_MINSZ || flags !== 0) return -EINVAL;
  const info = arg.ptr.add(VFIO_CACHE_INVALIDATE_MINSZ);
  let ret = 0;
  for (const d of domains) {
    for (const g of d.groups) {
      ret = core.iommuGroupForEachDev(g, (dev) => core.iommuUapiCacheInvalidate(d.domain, dev, info));
      // As posted: a failure ends this domain's group loop only.
      if (ret !== 0) break;
    }
  }
  return ret;
}

/** Addresses in vsva are below 2^53; a larger u64 from user space cannot name anything here. */
function addr(v: bigint): number | undefined {
  return v < 2n ** 53n ? Number(v) : undefined;
}

/** VFIO_IOMMU_SET_MSI_BINDING (§2 companion, §1.4). */
export function vfioSetMsiBinding(core: IommuCore, domains: DomainList, arg: IoctlArg): number {
  const bytes = arg.ptr.copyFrom(VFIO_SET_MSI_BINDING_MINSZ);
  if (bytes === undefined) return -EFAULT;
  const b = vfio_iommu_type1_set_msi_binding.decode(bytes);
  if (b.argsz < VFIO_SET_MSI_BINDING_MINSZ) return -EINVAL;
  if (b.flags === VFIO_IOMMU_UNBIND_MSI) {
    const iova = addr(b.iova);
    if (iova !== undefined) for (const d of domains) core.iommuUnbindGuestMsi(d.domain, iova);
    return 0;
  }
  if (b.flags !== VFIO_IOMMU_BIND_MSI) return -EINVAL;
  const iova = addr(b.iova);
  const gpa = addr(b.gpa);
  const size = addr(b.size);
  // Decision: addresses that do not fit below 2^53 are refused (EINVAL) before any domain is touched.
  if (iova === undefined || gpa === undefined || size === undefined) return -EINVAL;
  for (let i = 0; i < domains.length; i++) {
    const ret = core.iommuBindGuestMsi(domains[i]!.domain, iova, gpa, size);
    if (ret !== 0) {
      for (let j = i - 1; j >= 0; j--) core.iommuUnbindGuestMsi(domains[j]!.domain, iova);
      return ret;
    }
  }
  return 0;
}

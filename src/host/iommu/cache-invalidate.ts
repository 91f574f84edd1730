/**
 * Cache invalidation passed down from a guest (seed-spec.md §1.4): `iommu_uapi_cache_invalidate`,
 * which copies a `struct iommu_cache_invalidate_info` (argsz/version form of ~v5.9–v5.16) from user
 * space, validates it (`iommu_check_cache_invl_data`) and calls the driver's `cache_invalidate`;
 * and `iommu_cache_invalidate`, the kernel-pointer variant.
 *
 * Order of checks, verified against Linux v5.10 drivers/iommu/iommu.c:
 *   1. no `cache_invalidate` callback                          → -ENODEV
 *   2. copy minsz = offsetof(granu) = 16 bytes                  → -EFAULT
 *   3. argsz < 16                                               → -EINVAL
 *   4. granularity PASID and argsz < offsetofend(pasid_info)=32 → -EINVAL
 *   5. granularity ADDR and argsz < offsetofend(addr_info)=56   → -EINVAL
 *      (DOMAIN and unknown granularities need nothing beyond 16)
 *   6. copy min(argsz, 56) − 16 more bytes (struct zeroed first) → -EFAULT
 *   then iommu_check_cache_invl_data:
 *   7. version != 1                                             → -EINVAL
 *   8. cache has bits outside (1 << 3) − 1                      → -EINVAL
 *   9. granularity >= 3                                         → -EINVAL
 *  10. ADDR: cache has the PASID bit                            → -EINVAL
 *  11. ADDR: addr_info.flags outside PASID|ARCHID|LEAF          → -EINVAL
 *  12. PASID: pasid_info.flags outside PASID|ARCHID             → -EINVAL
 *  13. DOMAIN: cache has the DEV_IOTLB bit                      → -EINVAL
 *  14. any of the 6 padding bytes non-zero                      → -EINVAL
 *  15. the driver's callback, whose result is returned.
 * This matches the brief's order; the one nuance Linux adds is that the granularity-dependent
 * size checks (4, 5) come before the version check, so an old-version struct that is too short
 * for its granularity is refused by size, and an unknown granularity passes the size checks and
 * is refused only at 9.
 */

import { EFAULT, EINVAL, ENODEV } from '../../uapi/errno.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_NR,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_CACHE_INVALIDATE_INFO_MINSZ,
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_NR,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  type IommuCacheInvalidateInfo,
  iommu_cache_invalidate_info,
  iommu_inv_addr_info,
  iommu_inv_pasid_info,
} from '../../uapi/iommu.ts';
import type { UserPtr } from '../uaccess.ts';
import type { CheckedResult } from './pasid-table.ts';
import type { IommuDevice, IommuDomain } from './types.ts';

/** The checks of iommu_uapi_cache_invalidate, in order. */
export const CACHE_INVALIDATE_CHECKS = [
  'no-callback',
  'copy-head',
  'argsz-min',
  'argsz-pasid',
  'argsz-addr',
  'copy-rest',
  'version',
  'cache-type',
  'granularity',
  'addr-cache-pasid',
  'addr-flags',
  'pasid-flags',
  'domain-dev-iotlb',
  'padding',
  'driver',
] as const;
export type CacheInvalidateCheck = (typeof CACHE_INVALIDATE_CHECKS)[number];

/** offsetofend(struct iommu_cache_invalidate_info, granu.pasid_info) = 32. */
export const IOMMU_CACHE_INVALIDATE_INFO_PASID_SZ =
  IOMMU_CACHE_INVALIDATE_INFO_MINSZ + iommu_inv_pasid_info.size;
/** offsetofend(struct iommu_cache_invalidate_info, granu.addr_info) = 56. */
export const IOMMU_CACHE_INVALIDATE_INFO_ADDR_SZ =
  IOMMU_CACHE_INVALIDATE_INFO_MINSZ + iommu_inv_addr_info.size;

const ADDR_FLAGS_MASK = IOMMU_INV_ADDR_FLAGS_PASID | IOMMU_INV_ADDR_FLAGS_ARCHID | IOMMU_INV_ADDR_FLAGS_LEAF;
const PASID_FLAGS_MASK = IOMMU_INV_PASID_FLAGS_PASID | IOMMU_INV_PASID_FLAGS_ARCHID;

type ContentCheck = Exclude<CacheInvalidateCheck, 'no-callback' | 'copy-head' | 'copy-rest' | 'driver'>;

/**
 * iommu_check_cache_invl_data: the content checks (7–14), returning the first that fails, or
 * undefined when the descriptor is acceptable.
 */
export function iommuCheckCacheInvlData(info: IommuCacheInvalidateInfo): ContentCheck | undefined {
  if (info.version !== IOMMU_CACHE_INVALIDATE_INFO_VERSION_1) return 'version';
  if ((info.cache & ~((1 << IOMMU_CACHE_INV_TYPE_NR) - 1)) !== 0) return 'cache-type';
  if (info.granularity >= IOMMU_INV_GRANU_NR) return 'granularity';
  switch (info.granularity) {
    case IOMMU_INV_GRANU_ADDR:
      if ((info.cache & IOMMU_CACHE_INV_TYPE_PASID) !== 0) return 'addr-cache-pasid';
      if ((info.granu.addr_info.flags & ~ADDR_FLAGS_MASK) !== 0) return 'addr-flags';
      break;
    case IOMMU_INV_GRANU_PASID:
      if ((info.granu.pasid_info.flags & ~PASID_FLAGS_MASK) !== 0) return 'pasid-flags';
      break;
    case IOMMU_INV_GRANU_DOMAIN:
      if ((info.cache & IOMMU_CACHE_INV_TYPE_DEV_IOTLB) !== 0) return 'domain-dev-iotlb';
      break;
  }
  if (info.padding.some((b) => b !== 0)) return 'padding';
  return undefined;
}

/** iommu_uapi_cache_invalidate with the name of the deciding check. */
export function iommuUapiCacheInvalidateChecked(
  domain: IommuDomain,
  dev: IommuDevice,
  uinfo: UserPtr,
): CheckedResult<CacheInvalidateCheck> {
  const op = domain.ops.cacheInvalidate;
  if (op === undefined) return { ret: -ENODEV, check: 'no-callback' };

  const minsz = IOMMU_CACHE_INVALIDATE_INFO_MINSZ;
  const head = uinfo.copyFrom(minsz);
  if (head === undefined) return { ret: -EFAULT, check: 'copy-head' };
  const buf = new Uint8Array(iommu_cache_invalidate_info.size);
  buf.set(head, 0);
  const first = iommu_cache_invalidate_info.decode(buf);

  if (first.argsz < minsz) return { ret: -EINVAL, check: 'argsz-min' };
  if (first.granularity === IOMMU_INV_GRANU_PASID && first.argsz < IOMMU_CACHE_INVALIDATE_INFO_PASID_SZ)
    return { ret: -EINVAL, check: 'argsz-pasid' };
  if (first.granularity === IOMMU_INV_GRANU_ADDR && first.argsz < IOMMU_CACHE_INVALIDATE_INFO_ADDR_SZ)
    return { ret: -EINVAL, check: 'argsz-addr' };

  const rest = uinfo.add(minsz).copyFrom(Math.min(first.argsz, iommu_cache_invalidate_info.size) - minsz);
  if (rest === undefined) return { ret: -EFAULT, check: 'copy-rest' };
  buf.set(rest, minsz);
  const info = iommu_cache_invalidate_info.decode(buf);

  const bad = iommuCheckCacheInvlData(info);
  if (bad !== undefined) return { ret: -EINVAL, check: bad };

  return { ret: op.call(domain.ops, domain, dev, info), check: 'driver' };
}

/** iommu_uapi_cache_invalidate(domain, dev, uinfo): 0 or -errno. */
export function iommuUapiCacheInvalidate(domain: IommuDomain, dev: IommuDevice, uinfo: UserPtr): number {
  return iommuUapiCacheInvalidateChecked(domain, dev, uinfo).ret;
}

/**
 * iommu_cache_invalidate(domain, dev, info): the kernel-pointer variant. -ENODEV without the
 * callback, else the driver's result.
 * Decision: a kernel caller is trusted, as in Linux before the uAPI split (v5.8): neither argsz
 * nor the content is checked here.
 */
export function iommuCacheInvalidate(
  domain: IommuDomain,
  dev: IommuDevice,
  info: IommuCacheInvalidateInfo,
): number {
  const op = domain.ops.cacheInvalidate;
  if (op === undefined) return -ENODEV;
  return op.call(domain.ops, domain, dev, info);
}

/**
 * The PASID-table API of the nested-stage series (seed-spec.md §1.2, `[PATCH v15 01/12] iommu:
 * Introduce attach/detach_pasid_table API`): the kernel-pointer variants
 * `iommu_attach_pasid_table` / `iommu_detach_pasid_table`, and `iommu_uapi_attach_pasid_table`,
 * which copies a `struct iommu_pasid_table_config` from user space with the exact order of
 * checks of §1.2:
 *
 *   1. no `attach_pasid_table` callback            → -ENODEV
 *   2. copy the first 24 bytes (argsz..padding)    → -EFAULT
 *   3. argsz < 24                                  → -EINVAL
 *   4. version != 1                                → -EINVAL
 *   5. format == SMMUV3 && argsz < 32              → -EINVAL
 *   6. copy the remaining min(argsz, 32) − 24 bytes → -EFAULT (struct zeroed first; bytes
 *      beyond 32 of a larger argsz are ignored)
 *   7. config ∉ {TRANSLATE, BYPASS, ABORT}          → -EINVAL
 *   8. the driver's callback, whose result is returned.
 *
 * `iommuUapiAttachPasidTableChecked` also names the check that decided the result, for tests and
 * reports.
 */

import { EFAULT, EINVAL, ENODEV } from '../../uapi/errno.ts';
import {
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  IOMMU_PASID_TABLE_CONFIG_MINSZ,
  IOMMU_PASID_TABLE_CONFIG_SMMUV3_SZ,
  type IommuPasidTableConfig,
  iommu_pasid_table_config,
  PASID_TABLE_CFG_VERSION_1,
} from '../../uapi/iommu.ts';
import type { UserPtr } from '../uaccess.ts';
import type { IommuDomain } from './types.ts';

/** The checks of iommu_uapi_attach_pasid_table, in order (§1.2). */
export const PASID_TABLE_CHECKS = [
  'no-callback',
  'copy-head',
  'argsz',
  'version',
  'smmuv3-argsz',
  'copy-rest',
  'config',
  'driver',
] as const;
export type PasidTableCheck = (typeof PASID_TABLE_CHECKS)[number];

export interface CheckedResult<C extends string> {
  /** 0 or -errno. */
  readonly ret: number;
  /** The check that refused, or 'driver' when the driver was called (whatever it returned). */
  readonly check: C;
}

/** iommu_attach_pasid_table: -ENODEV without the callback, else the driver's result. */
export function iommuAttachPasidTable(domain: IommuDomain, cfg: IommuPasidTableConfig): number {
  const op = domain.ops.attachPasidTable;
  if (op === undefined) return -ENODEV;
  return op.call(domain.ops, domain, cfg);
}

/** iommu_detach_pasid_table: calls the driver's callback if it has one. */
export function iommuDetachPasidTable(domain: IommuDomain): void {
  domain.ops.detachPasidTable?.call(domain.ops, domain);
}

/** iommu_uapi_attach_pasid_table with the name of the deciding check. */
export function iommuUapiAttachPasidTableChecked(
  domain: IommuDomain,
  uinfo: UserPtr,
): CheckedResult<PasidTableCheck> {
  const op = domain.ops.attachPasidTable;
  if (op === undefined) return { ret: -ENODEV, check: 'no-callback' };

  const minsz = IOMMU_PASID_TABLE_CONFIG_MINSZ;
  const head = uinfo.copyFrom(minsz);
  if (head === undefined) return { ret: -EFAULT, check: 'copy-head' };
  // The kernel's struct starts zeroed; the copied head fills its first 24 bytes.
  const buf = new Uint8Array(iommu_pasid_table_config.size);
  buf.set(head, 0);
  const first = iommu_pasid_table_config.decode(buf);

  if (first.argsz < minsz) return { ret: -EINVAL, check: 'argsz' };
  if (first.version !== PASID_TABLE_CFG_VERSION_1) return { ret: -EINVAL, check: 'version' };
  if (first.format === IOMMU_PASID_FORMAT_SMMUV3 && first.argsz < IOMMU_PASID_TABLE_CONFIG_SMMUV3_SZ)
    return { ret: -EINVAL, check: 'smmuv3-argsz' };

  const restLen = Math.min(first.argsz, iommu_pasid_table_config.size) - minsz;
  const rest = uinfo.add(minsz).copyFrom(restLen);
  if (rest === undefined) return { ret: -EFAULT, check: 'copy-rest' };
  buf.set(rest, minsz);
  const cfg = iommu_pasid_table_config.decode(buf);

  if (cfg.config < IOMMU_PASID_CONFIG_TRANSLATE || cfg.config > IOMMU_PASID_CONFIG_ABORT)
    return { ret: -EINVAL, check: 'config' };

  return { ret: op.call(domain.ops, domain, cfg), check: 'driver' };
}

/** iommu_uapi_attach_pasid_table(domain, uinfo): 0 or -errno (§1.2). */
export function iommuUapiAttachPasidTable(domain: IommuDomain, uinfo: UserPtr): number {
  return iommuUapiAttachPasidTableChecked(domain, uinfo).ret;
}

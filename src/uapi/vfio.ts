/**
 * include/uapi/linux/vfio.h as vsva uses it: the ioctl numbers of the container, group and device
 * file descriptors (numbers only — their structs come with issue 4), the extension IDs, and the
 * struct layouts of the seeds' type1 nesting ioctls: SET_PASID_TABLE, CACHE_INVALIDATE and
 * SET_MSI_BINDING (Eric Auger's v13 series, seed-spec §2) and PASID_REQUEST / SET_PASID_QUOTA
 * (Liu Yi L's RFC v3, §6). None of the seed ioctls was merged upstream.
 *
 * Every VFIO ioctl is `_IO(VFIO_TYPE, VFIO_BASE + n)` even when it carries a struct: the struct's
 * own `argsz` tells the kernel how many bytes the caller provided (and `minsz`, the end of the
 * fields a handler needs, is what it insists on). Numbers are dispatched per file and per IOMMU
 * backend, so two backends may reuse one number (+18 below).
 *
 * Verified against Linux's include/uapi/linux/vfio.h (v5.10–v5.12 era) and the posted patches.
 */

import { _IO } from './ioctl.ts';
import { iommu_cache_invalidate_info, iommu_pasid_table_config } from './iommu.ts';
import { defineStruct, type StructInput, type StructValue, struct, u32, u64, union } from './layout.ts';

/** `';'` */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/** What VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;

// ---------------------------------------------------------------- extensions (VFIO_CHECK_EXTENSION)

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
/** The IOMMU enforces DMA cache coherence. */
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
/** Two-stage IOMMU; implies v2. The container type the nesting seeds require. */
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
/** v5.12. */
export const VFIO_UNMAP_ALL = 9;
/** v5.12. */
export const VFIO_UPDATE_VADDR = 10;

// ---------------------------------------------------------------- container, group, device ioctls (numbers)

/** _IO(VFIO_TYPE, VFIO_BASE + 0) */
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
/** _IO(VFIO_TYPE, VFIO_BASE + 1); argument: the extension ID. */
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
/** _IO(VFIO_TYPE, VFIO_BASE + 2); argument: the IOMMU type (an extension ID). */
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
/** _IO(VFIO_TYPE, VFIO_BASE + 3); struct vfio_group_status. */
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
/** _IO(VFIO_TYPE, VFIO_BASE + 4); argument: pointer to the container fd (s32). */
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
/** _IO(VFIO_TYPE, VFIO_BASE + 5) */
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
/** _IO(VFIO_TYPE, VFIO_BASE + 6); argument: the device name string. */
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
/** _IO(VFIO_TYPE, VFIO_BASE + 7); struct vfio_device_info. */
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
/** _IO(VFIO_TYPE, VFIO_BASE + 8); struct vfio_region_info. */
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
/** _IO(VFIO_TYPE, VFIO_BASE + 9); struct vfio_irq_info. */
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
/** _IO(VFIO_TYPE, VFIO_BASE + 10); struct vfio_irq_set. */
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
/** _IO(VFIO_TYPE, VFIO_BASE + 11) */
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);
/** _IO(VFIO_TYPE, VFIO_BASE + 12); struct vfio_iommu_type1_info. */
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
/** _IO(VFIO_TYPE, VFIO_BASE + 13); struct vfio_iommu_type1_dma_map. */
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
/** _IO(VFIO_TYPE, VFIO_BASE + 14); struct vfio_iommu_type1_dma_unmap. */
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);

/**
 * _IO(VFIO_TYPE, VFIO_BASE + 18) of the sPAPR TCE backend. VFIO_IOMMU_SET_PASID_TABLE (type1)
 * has the same number; the container passes an ioctl to its backend, so each backend sees only
 * its own meaning. (The seed series likewise reuses +19 and +20, which sPAPR has as TCE_CREATE /
 * TCE_REMOVE.)
 */
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = _IO(VFIO_TYPE, VFIO_BASE + 18);

// ---------------------------------------------------------------- §2: VFIO_IOMMU_SET_PASID_TABLE

/**
 * _IO(VFIO_TYPE, VFIO_BASE + 18). Decision recorded in seed-spec §2: the v12 changelog says
 * "+ 19", but the v13 code and its doc comment use + 18 (and CACHE_INVALIDATE is + 19).
 */
export const VFIO_IOMMU_SET_PASID_TABLE = _IO(VFIO_TYPE, VFIO_BASE + 18);

export const VFIO_PASID_TABLE_FLAG_SET = 1 << 0;
export const VFIO_PASID_TABLE_FLAG_UNSET = 1 << 1;

/** struct vfio_iommu_type1_set_pasid_table: 40 bytes, align 8. */
export const vfio_iommu_type1_set_pasid_table = defineStruct('vfio_iommu_type1_set_pasid_table', 40, {
  argsz: u32(0),
  flags: u32(4),
  /** Used on SET only; the IOMMU layer re-reads it from user memory (its own argsz rules). */
  config: struct(8, iommu_pasid_table_config),
});
export type VfioSetPasidTable = StructValue<typeof vfio_iommu_type1_set_pasid_table.fields>;
export type VfioSetPasidTableInput = StructInput<typeof vfio_iommu_type1_set_pasid_table.fields>;

/** minsz = offsetofend(flags) = 8: the outer argsz is not checked against 40 (§2). */
export const VFIO_SET_PASID_TABLE_MINSZ = vfio_iommu_type1_set_pasid_table.offsetofend('flags');

// ---------------------------------------------------------------- §2: VFIO_IOMMU_CACHE_INVALIDATE

/** _IO(VFIO_TYPE, VFIO_BASE + 19) */
export const VFIO_IOMMU_CACHE_INVALIDATE = _IO(VFIO_TYPE, VFIO_BASE + 19);

/**
 * struct vfio_iommu_type1_cache_invalidate: 64 bytes, align 8. `info` is 8-aligned (it holds
 * u64s), so it starts right after flags at 8.
 */
export const vfio_iommu_type1_cache_invalidate = defineStruct('vfio_iommu_type1_cache_invalidate', 64, {
  argsz: u32(0),
  /** Must be 0. */
  flags: u32(4),
  info: struct(8, iommu_cache_invalidate_info),
});
export type VfioCacheInvalidate = StructValue<typeof vfio_iommu_type1_cache_invalidate.fields>;

/** minsz = offsetofend(flags) = 8. */
export const VFIO_CACHE_INVALIDATE_MINSZ = vfio_iommu_type1_cache_invalidate.offsetofend('flags');

// ---------------------------------------------------------------- §2: VFIO_IOMMU_SET_MSI_BINDING

/** _IO(VFIO_TYPE, VFIO_BASE + 20) */
export const VFIO_IOMMU_SET_MSI_BINDING = _IO(VFIO_TYPE, VFIO_BASE + 20);

/** Flag names of the v13 series (v9 merged the former VFIO_IOMMU_BIND_MSI/UNBIND_MSI ioctls). */
export const VFIO_IOMMU_BIND_MSI = 1 << 0;
export const VFIO_IOMMU_UNBIND_MSI = 1 << 1;

/** struct vfio_iommu_type1_set_msi_binding: 32 bytes, align 8. */
export const vfio_iommu_type1_set_msi_binding = defineStruct('vfio_iommu_type1_set_msi_binding', 32, {
  argsz: u32(0),
  flags: u32(4),
  /** Guest IOVA of the MSI doorbell (stage 1). */
  iova: u64(8),
  /** BIND only: guest-physical address of the doorbell. */
  gpa: u64(16),
  /** BIND only: size of the stage-1 mapping in bytes. */
  size: u64(24),
});
export type VfioSetMsiBinding = StructValue<typeof vfio_iommu_type1_set_msi_binding.fields>;

/** minsz = offsetofend(size) = 32. */
export const VFIO_SET_MSI_BINDING_MINSZ = vfio_iommu_type1_set_msi_binding.offsetofend('size');

// ---------------------------------------------------------------- §6: VFIO_IOMMU_PASID_REQUEST (RFC v3)

/** _IO(VFIO_TYPE, VFIO_BASE + 22) */
export const VFIO_IOMMU_PASID_REQUEST = _IO(VFIO_TYPE, VFIO_BASE + 22);

export const VFIO_IOMMU_PASID_ALLOC = 1 << 0;
export const VFIO_IOMMU_PASID_FREE = 1 << 1;
export const VFIO_PASID_REQUEST_MASK = VFIO_IOMMU_PASID_ALLOC | VFIO_IOMMU_PASID_FREE;

/** The anonymous `alloc_pasid` struct of the request's union: 12 bytes. */
export const vfio_pasid_request_alloc = defineStruct('vfio_iommu_type1_pasid_request.alloc_pasid', 12, {
  min: u32(0),
  max: u32(4),
  /** Output: the allocated PASID. */
  result: u32(8),
});

/** struct vfio_iommu_type1_pasid_request: 20 bytes, align 4. */
export const vfio_iommu_type1_pasid_request = defineStruct('vfio_iommu_type1_pasid_request', 20, {
  argsz: u32(0),
  flags: u32(4),
  /** The C union is anonymous; vsva names it `u`. */
  u: union(8, { alloc_pasid: struct(0, vfio_pasid_request_alloc), free_pasid: u32(0) }),
});
export type VfioPasidRequest = StructValue<typeof vfio_iommu_type1_pasid_request.fields>;

/** What the handler copies first: offsetofend(flags) = 8 (§6.3: no check that argsz covers the union). */
export const VFIO_PASID_REQUEST_MINSZ = vfio_iommu_type1_pasid_request.offsetofend('flags');

/** The per-VM quota a new vfio_mm starts with (include/linux/vfio.h of the RFC). */
export const VFIO_DEFAULT_PASID_QUOTA = 1000;

// ---------------------------------------------------------------- §6: VFIO_IOMMU_SET_PASID_QUOTA (RFC v3 2/8)

/** _IO(VFIO_TYPE, VFIO_BASE + 23) */
export const VFIO_IOMMU_SET_PASID_QUOTA = _IO(VFIO_TYPE, VFIO_BASE + 23);

/** struct vfio_iommu_type1_pasid_quota: 12 bytes, align 4. */
export const vfio_iommu_type1_pasid_quota = defineStruct('vfio_iommu_type1_pasid_quota', 12, {
  argsz: u32(0),
  /** Not checked by the RFC. */
  flags: u32(4),
  quota: u32(8),
});
export type VfioPasidQuota = StructValue<typeof vfio_iommu_type1_pasid_quota.fields>;

/** minsz = offsetofend(quota) = 12. */
export const VFIO_PASID_QUOTA_MINSZ = vfio_iommu_type1_pasid_quota.offsetofend('quota');

/**
 * _IO(VFIO_TYPE, VFIO_BASE + 24), RFC v3 4/8: a container ioctl returning the iommu uAPI version
 * (no argument). Listed for completeness of the §6 series.
 */
export const VFIO_NESTING_GET_IOMMU_UAPI_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 24);

/**
 * include/uapi/linux/iommu.h as the seeds use it (seed-spec.md §1.1 and §1.4): the PASID-table
 * configuration that `iommu_uapi_attach_pasid_table` copies from user space, the cache
 * invalidation descriptor of the same era (argsz/version form, ~v5.9–v5.16), and the fault
 * records the iommu core hands to fault handlers (and VFIO to user space).
 *
 * Every layout below is checked against the spec's offsets by `iommu.test.ts`.
 */

import {
  array,
  bytes,
  defineStruct,
  type StructInput,
  type StructValue,
  struct,
  u8,
  u32,
  u64,
  union,
} from './layout.ts';

// ---------------------------------------------------------------- §1.1 PASID table configuration

export const PASID_TABLE_SMMUV3_CFG_VERSION_1 = 1;
export const PASID_TABLE_CFG_VERSION_1 = 1;
export const IOMMU_PASID_FORMAT_SMMUV3 = 1;

export const IOMMU_PASID_CONFIG_TRANSLATE = 1;
export const IOMMU_PASID_CONFIG_BYPASS = 2;
export const IOMMU_PASID_CONFIG_ABORT = 3;

/** struct iommu_pasid_smmuv3: 8 bytes, align 4. */
export const iommu_pasid_smmuv3 = defineStruct('iommu_pasid_smmuv3', 8, {
  version: u32(0),
  /** Guest STE.S1Fmt. */
  s1fmt: u8(4),
  /** Guest STE.S1DSS. */
  s1dss: u8(5),
  /** Reserved; the kernel does not check it (§1.1). */
  padding: bytes(6, 2),
});

/** struct iommu_pasid_table_config: 32 bytes, align 8 (v14+ field order). */
export const iommu_pasid_table_config = defineStruct('iommu_pasid_table_config', 32, {
  argsz: u32(0),
  version: u32(4),
  /** IPA of the guest's PASID (CD) table. */
  base_ptr: u64(8),
  format: u32(16),
  pasid_bits: u8(20),
  config: u8(21),
  padding: bytes(22, 2),
  vendor_data: union(24, { smmuv3: struct(0, iommu_pasid_smmuv3) }),
});
export type IommuPasidTableConfig = StructValue<typeof iommu_pasid_table_config.fields>;
export type IommuPasidTableConfigInput = StructInput<typeof iommu_pasid_table_config.fields>;

/** The `minsz` of iommu_uapi_attach_pasid_table: offsetof(vendor_data) = 24. */
export const IOMMU_PASID_TABLE_CONFIG_MINSZ = iommu_pasid_table_config.offsetof('vendor_data');
/** offsetofend(vendor_data.smmuv3) = 32: what a SMMUV3-format config must cover. */
export const IOMMU_PASID_TABLE_CONFIG_SMMUV3_SZ = 32;

// ---------------------------------------------------------------- §1.4 cache invalidation

export const IOMMU_CACHE_INVALIDATE_INFO_VERSION_1 = 1;

/** `cache` bits. */
export const IOMMU_CACHE_INV_TYPE_IOTLB = 1 << 0;
export const IOMMU_CACHE_INV_TYPE_DEV_IOTLB = 1 << 1;
export const IOMMU_CACHE_INV_TYPE_PASID = 1 << 2;
export const IOMMU_CACHE_INV_TYPE_NR = 3;

/**
 * `granularity` values. UNCONFIRMED in seed-spec §1.4 ("strongly believed"); confirmed against
 * Linux's `enum iommu_inv_granularity` (v5.8 and the argsz-era v5.9–v5.16 header): DOMAIN 0,
 * PASID 1, ADDR 2, and IOMMU_INV_GRANU_NR = 3.
 */
export const IOMMU_INV_GRANU_DOMAIN = 0;
export const IOMMU_INV_GRANU_PASID = 1;
export const IOMMU_INV_GRANU_ADDR = 2;
export const IOMMU_INV_GRANU_NR = 3;

export const IOMMU_INV_PASID_FLAGS_PASID = 1 << 0;
export const IOMMU_INV_PASID_FLAGS_ARCHID = 1 << 1;

export const IOMMU_INV_ADDR_FLAGS_PASID = 1 << 0;
export const IOMMU_INV_ADDR_FLAGS_ARCHID = 1 << 1;
export const IOMMU_INV_ADDR_FLAGS_LEAF = 1 << 2;

/** struct iommu_inv_pasid_info: 16 bytes. */
export const iommu_inv_pasid_info = defineStruct('iommu_inv_pasid_info', 16, {
  flags: u32(0),
  archid: u32(4),
  pasid: u64(8),
});

/** struct iommu_inv_addr_info: 40 bytes. */
export const iommu_inv_addr_info = defineStruct('iommu_inv_addr_info', 40, {
  flags: u32(0),
  archid: u32(4),
  pasid: u64(8),
  addr: u64(16),
  granule_size: u64(24),
  nb_granules: u64(32),
});

/** struct iommu_cache_invalidate_info: 56 bytes, align 8. */
export const iommu_cache_invalidate_info = defineStruct('iommu_cache_invalidate_info', 56, {
  argsz: u32(0),
  version: u32(4),
  cache: u8(8),
  granularity: u8(9),
  padding: bytes(10, 6),
  granu: union(16, {
    pasid_info: struct(0, iommu_inv_pasid_info),
    addr_info: struct(0, iommu_inv_addr_info),
  }),
});
export type IommuCacheInvalidateInfo = StructValue<typeof iommu_cache_invalidate_info.fields>;
export type IommuCacheInvalidateInfoInput = StructInput<typeof iommu_cache_invalidate_info.fields>;

/** The part iommu_uapi_cache_invalidate copies first: offsetof(granu) = 16. */
export const IOMMU_CACHE_INVALIDATE_INFO_MINSZ = iommu_cache_invalidate_info.offsetof('granu');

// ---------------------------------------------------------------- faults

export const IOMMU_FAULT_PERM_READ = 1 << 0;
export const IOMMU_FAULT_PERM_WRITE = 1 << 1;
export const IOMMU_FAULT_PERM_EXEC = 1 << 2;
export const IOMMU_FAULT_PERM_PRIV = 1 << 3;

/** enum iommu_fault_type */
export const IOMMU_FAULT_DMA_UNRECOV = 1;
export const IOMMU_FAULT_PAGE_REQ = 2;

/**
 * enum iommu_fault_reason. seed-spec §1.4 marks the numbers UNCONFIRMED; confirmed against the
 * v5.x uapi header, whose declaration order (UNKNOWN = 0, then one by one) gives the values the
 * spec lists.
 */
export const IOMMU_FAULT_REASON_UNKNOWN = 0;
export const IOMMU_FAULT_REASON_PASID_FETCH = 1;
export const IOMMU_FAULT_REASON_BAD_PASID_ENTRY = 2;
export const IOMMU_FAULT_REASON_PASID_INVALID = 3;
export const IOMMU_FAULT_REASON_WALK_EABT = 4;
export const IOMMU_FAULT_REASON_PTE_FETCH = 5;
export const IOMMU_FAULT_REASON_PERMISSION = 6;
export const IOMMU_FAULT_REASON_ACCESS = 7;
export const IOMMU_FAULT_REASON_OOR_ADDRESS = 8;

export const IOMMU_FAULT_REASON_NAMES: readonly string[] = [
  'UNKNOWN',
  'PASID_FETCH',
  'BAD_PASID_ENTRY',
  'PASID_INVALID',
  'WALK_EABT',
  'PTE_FETCH',
  'PERMISSION',
  'ACCESS',
  'OOR_ADDRESS',
];

export const IOMMU_FAULT_UNRECOV_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_UNRECOV_ADDR_VALID = 1 << 1;
export const IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID = 1 << 2;

export const IOMMU_FAULT_PAGE_REQUEST_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE = 1 << 1;
export const IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA = 1 << 2;

/** struct iommu_fault_unrecoverable: 32 bytes. */
export const iommu_fault_unrecoverable = defineStruct('iommu_fault_unrecoverable', 32, {
  reason: u32(0),
  flags: u32(4),
  pasid: u32(8),
  perm: u32(12),
  addr: u64(16),
  fetch_addr: u64(24),
});

/** struct iommu_fault_page_request: 40 bytes. */
export const iommu_fault_page_request = defineStruct('iommu_fault_page_request', 40, {
  flags: u32(0),
  pasid: u32(4),
  grpid: u32(8),
  perm: u32(12),
  addr: u64(16),
  private_data: array(24, 'u64', 2),
});

/** struct iommu_fault: 64 bytes; the union is padded to 56 bytes for future records. */
export const iommu_fault = defineStruct('iommu_fault', 64, {
  type: u32(0),
  padding: u32(4),
  u: union(8, { event: struct(0, iommu_fault_unrecoverable), prm: struct(0, iommu_fault_page_request) }, 56),
});
export type IommuFaultRecord = StructValue<typeof iommu_fault.fields>;

/**
 * include/uapi/linux/vfio.h, the group and device side: VFIO_GROUP_GET_STATUS, the device info,
 * region info (with its capability chain), IRQ info and SET_IRQS, the vfio-pci region and IRQ
 * indexes and offsets, and the nested-stage series' additions (Eric Auger's "vfio/pci" patches of
 * the v11–v13 series): the DMA fault region (VFIO_REGION_TYPE_NESTED / SUBTYPE_NESTED_DMA_FAULT,
 * a header plus a ring of `struct iommu_fault`) and the extended IRQ that signals it
 * (VFIO_IRQ_TYPE_NESTED / SUBTYPE_DMA_FAULT, found through a VFIO_IRQ_INFO_CAP_TYPE capability
 * and a `cap_offset` appended to `struct vfio_irq_info`).
 *
 * Layouts are checked by vfio-device.test.ts against literal offsets.
 */

import { defineStruct, type StructValue, struct, u32, u64 } from './layout.ts';
import { vfio_info_cap_header } from './vfio-type1.ts';

// ---------------------------------------------------------------- capability chains

/** struct vfio_info_cap_header (defined with the type1 structs, where the chains began). */
export { vfio_info_cap_header } from './vfio-type1.ts';

// ---------------------------------------------------------------- group

export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

/** struct vfio_group_status: 8 bytes. */
export const vfio_group_status = defineStruct('vfio_group_status', 8, {
  argsz: u32(0),
  flags: u32(4),
});

// ---------------------------------------------------------------- device info

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
/** v5.10: the info struct has a capability chain. */
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

/** struct vfio_device_info (v5.10+, with cap_offset): 20 bytes. */
export const vfio_device_info = defineStruct('vfio_device_info', 20, {
  argsz: u32(0),
  flags: u32(4),
  num_regions: u32(8),
  num_irqs: u32(12),
  cap_offset: u32(16),
});

// ---------------------------------------------------------------- regions

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

/** struct vfio_region_info: 32 bytes. */
export const vfio_region_info = defineStruct('vfio_region_info', 32, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  cap_offset: u32(12),
  size: u64(16),
  offset: u64(24),
});
export type VfioRegionInfo = StructValue<typeof vfio_region_info.fields>;

export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
/** The nested series: the DMA fault region's ABI version. */
export const VFIO_REGION_INFO_CAP_DMA_FAULT = 6;

/** struct vfio_region_info_cap_type: 16 bytes. */
export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', 16, {
  header: struct(0, vfio_info_cap_header),
  type: u32(8),
  subtype: u32(12),
});

/** struct vfio_region_info_cap_fault: 12 bytes. */
export const vfio_region_info_cap_fault = defineStruct('vfio_region_info_cap_fault', 12, {
  header: struct(0, vfio_info_cap_header),
  version: u32(8),
});

export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 1 << 31;
export const VFIO_REGION_TYPE_GFX = 1;
export const VFIO_REGION_TYPE_NESTED = 2;
export const VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT = 1;

/**
 * struct vfio_region_dma_fault, the header of the DMA fault region: 20 bytes. `tail` is written by
 * the consumer (user space); the rest is read-only. Records (`struct iommu_fault`, 64 bytes) start
 * at `offset` (= 20 as posted) and `head` is where the kernel writes the next one.
 */
export const vfio_region_dma_fault = defineStruct('vfio_region_dma_fault', 20, {
  tail: u32(0),
  entry_size: u32(4),
  nb_entries: u32(8),
  offset: u32(12),
  head: u32(16),
});

// ---------------------------------------------------------------- IRQs

export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** The nested series: the info struct has a capability chain (cap_offset). */
export const VFIO_IRQ_INFO_FLAG_CAPS = 1 << 4;

/**
 * struct vfio_irq_info as the nested series extended it (cap_offset appended at the end, where
 * the reviewers asked for it): 20 bytes. Upstream's struct ends at `count` (16 bytes); a caller
 * with argsz 16 gets the old layout.
 */
export const vfio_irq_info = defineStruct('vfio_irq_info', 20, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  count: u32(12),
  cap_offset: u32(16),
});

export const VFIO_IRQ_INFO_CAP_TYPE = 3;

/** struct vfio_irq_info_cap_type: 16 bytes. */
export const vfio_irq_info_cap_type = defineStruct('vfio_irq_info_cap_type', 16, {
  header: struct(0, vfio_info_cap_header),
  type: u32(8),
  subtype: u32(12),
});

export const VFIO_IRQ_TYPE_NESTED = 1;
export const VFIO_IRQ_SUBTYPE_DMA_FAULT = 1;

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK =
  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK =
  VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

/** struct vfio_irq_set without its trailing `data[]`: 20 bytes. */
export const vfio_irq_set = defineStruct('vfio_irq_set', 20, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  start: u32(12),
  count: u32(16),
});

// ---------------------------------------------------------------- vfio-pci indexes

export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
/** Device-specific regions (the DMA fault region) are numbered from here. */
export const VFIO_PCI_NUM_REGIONS = 9;

export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
/** Extended (device-specific) IRQ indexes are numbered from here. */
export const VFIO_PCI_NUM_IRQS = 5;

/** vfio-pci's region offsets within the device fd: index << 40. */
export const VFIO_PCI_OFFSET_SHIFT = 40;
export const vfioPciIndexToOffset = (index: number): number => index * 2 ** VFIO_PCI_OFFSET_SHIFT;
export const vfioPciOffsetToIndex = (off: number): number => Math.floor(off / 2 ** VFIO_PCI_OFFSET_SHIFT);
export const vfioPciOffsetMask = (off: number): number => off % 2 ** VFIO_PCI_OFFSET_SHIFT;

/**
 * Size and offset of every group/device-side VFIO struct (vfio-device.ts), written out as literals
 * from include/uapi/linux/vfio.h (v5.10–v5.12) and the nested series' additions, plus the
 * constants the VFIO core and vfio-pci rely on.
 */

import { describe, expect, it } from 'vitest';
import { expectLayout } from './layout-testing.ts';
import {
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IRQ_INFO_CAP_TYPE,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_FLAG_CAPS,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SUBTYPE_DMA_FAULT,
  VFIO_IRQ_TYPE_NESTED,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_CAP_DMA_FAULT,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT,
  VFIO_REGION_TYPE_NESTED,
  vfio_device_info,
  vfio_group_status,
  vfio_info_cap_header,
  vfio_irq_info,
  vfio_irq_info_cap_type,
  vfio_irq_set,
  vfio_region_dma_fault,
  vfio_region_info,
  vfio_region_info_cap_fault,
  vfio_region_info_cap_type,
  vfioPciIndexToOffset,
  vfioPciOffsetMask,
  vfioPciOffsetToIndex,
} from './vfio-device.ts';

describe('layouts', () => {
  it('vfio_info_cap_header: 8 bytes', () => {
    expectLayout(vfio_info_cap_header, 8, 4, [
      ['id', 0, 2],
      ['version', 2, 2],
      ['next', 4, 4],
    ]);
  });
  it('vfio_group_status: 8 bytes', () => {
    expectLayout(vfio_group_status, 8, 4, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
    ]);
  });
  it('vfio_device_info (v5.10+, cap_offset): 20 bytes', () => {
    expectLayout(vfio_device_info, 20, 4, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['num_regions', 8, 4],
      ['num_irqs', 12, 4],
      ['cap_offset', 16, 4],
    ]);
  });
  it('vfio_region_info: 32 bytes, align 8', () => {
    expectLayout(vfio_region_info, 32, 8, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['index', 8, 4],
      ['cap_offset', 12, 4],
      ['size', 16, 8],
      ['offset', 24, 8],
    ]);
  });
  it('vfio_region_info_cap_type: 16 bytes', () => {
    expectLayout(vfio_region_info_cap_type, 16, 4, [
      ['header', 0, 8],
      ['type', 8, 4],
      ['subtype', 12, 4],
    ]);
  });
  it('vfio_region_info_cap_fault: 12 bytes', () => {
    expectLayout(vfio_region_info_cap_fault, 12, 4, [
      ['header', 0, 8],
      ['version', 8, 4],
    ]);
  });
  it('vfio_region_dma_fault: 20 bytes, tail first', () => {
    expectLayout(vfio_region_dma_fault, 20, 4, [
      ['tail', 0, 4],
      ['entry_size', 4, 4],
      ['nb_entries', 8, 4],
      ['offset', 12, 4],
      ['head', 16, 4],
    ]);
  });
  it("vfio_irq_info with the series' cap_offset appended: 20 bytes", () => {
    expectLayout(vfio_irq_info, 20, 4, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['index', 8, 4],
      ['count', 12, 4],
      ['cap_offset', 16, 4],
    ]);
  });
  it('vfio_irq_info_cap_type: 16 bytes', () => {
    expectLayout(vfio_irq_info_cap_type, 16, 4, [
      ['header', 0, 8],
      ['type', 8, 4],
      ['subtype', 12, 4],
    ]);
  });
  it('vfio_irq_set without data[]: 20 bytes', () => {
    expectLayout(vfio_irq_set, 20, 4, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['index', 8, 4],
      ['start', 12, 4],
      ['count', 16, 4],
    ]);
  });
  it('encodes little-endian at the spec offsets', () => {
    const b = vfio_region_info.encode({
      argsz: 32,
      flags: 3,
      index: 7,
      size: 0x1000n,
      offset: 0x700_0000_0000n,
    });
    expect([...b]).toEqual([
      32, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0,
    ]);
  });
});

describe('constants', () => {
  it('flags and capability ids', () => {
    expect([VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET]).toEqual([1, 2]);
    expect([VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_CAPS]).toEqual([1, 2, 0x80]);
    expect([VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_CAPS]).toEqual([4, 8]);
    expect([VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_CAP_DMA_FAULT]).toEqual([2, 6]);
    expect([VFIO_REGION_TYPE_NESTED, VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT]).toEqual([2, 1]);
    expect([VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_INFO_FLAG_CAPS]).toEqual([1, 8, 0x10]);
    expect([VFIO_IRQ_INFO_CAP_TYPE, VFIO_IRQ_TYPE_NESTED, VFIO_IRQ_SUBTYPE_DMA_FAULT]).toEqual([3, 1, 1]);
    expect([VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER]).toEqual([
      1, 4, 0x20,
    ]);
  });
  it('vfio-pci indexes and region offsets (index << 40)', () => {
    expect([
      VFIO_PCI_CONFIG_REGION_INDEX,
      VFIO_PCI_NUM_REGIONS,
      VFIO_PCI_MSIX_IRQ_INDEX,
      VFIO_PCI_NUM_IRQS,
    ]).toEqual([7, 9, 2, 5]);
    expect(vfioPciIndexToOffset(7)).toBe(0x700_0000_0000);
    expect(vfioPciOffsetToIndex(0x700_0000_0123)).toBe(7);
    expect(vfioPciOffsetMask(0x700_0000_0123)).toBe(0x123);
  });
});

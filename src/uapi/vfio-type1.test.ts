/**
 * The type1 uAPI of include/uapi/linux/vfio.h (v5.10; v5.12 flag numbers): literal sizes, offsets
 * and constants, written out from the header, and the capability-chain builder against the
 * behaviour of vfio_info_cap_add / vfio_info_cap_shift.
 */

import { describe, expect, it } from 'vitest';
import { expectLayout } from './layout-testing.ts';
import {
  DIRTY_BITMAP_SIZE_MAX,
  decodeIovaRangeCap,
  dirtyBitmapBytes,
  encodeIovaRangeCap,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_MAP_MINSZ,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_CAPSZ,
  VFIO_IOMMU_INFO_MINSZ,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOVA_RANGE_CAP_RANGES,
  VfioInfoCap,
  vfio_bitmap,
  vfio_dma_unmap_with_bitmap,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  walkInfoCaps,
} from './vfio-type1.ts';

describe('layouts (vfio.h, v5.10)', () => {
  it('struct vfio_info_cap_header: 8 bytes', () => {
    expectLayout(vfio_info_cap_header, 8, 4, [
      ['id', 0, 2],
      ['version', 2, 2],
      ['next', 4, 4],
    ]);
  });

  it('struct vfio_iommu_type1_info: 24 bytes (4 of tail padding); minsz 16, capsz 20', () => {
    expectLayout(vfio_iommu_type1_info, 24, 8, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['iova_pgsizes', 8, 8],
      ['cap_offset', 16, 4],
      ['pad', 20, 4],
    ]);
    expect(VFIO_IOMMU_INFO_MINSZ).toBe(16);
    expect(VFIO_IOMMU_INFO_CAPSZ).toBe(20);
  });

  it('struct vfio_iova_range and the IOVA-range capability (ranges from offset 16)', () => {
    expectLayout(vfio_iova_range, 16, 8, [
      ['start', 0, 8],
      ['end', 8, 8],
    ]);
    expectLayout(vfio_iommu_type1_info_cap_iova_range, 16, 8, [
      ['header', 0, 8],
      ['nr_iovas', 8, 4],
      ['reserved', 12, 4],
    ]);
    expect(VFIO_IOVA_RANGE_CAP_RANGES).toBe(16);
  });

  it('the migration capability (32 bytes) and the DMA-available capability (12 bytes)', () => {
    expectLayout(vfio_iommu_type1_info_cap_migration, 32, 8, [
      ['header', 0, 8],
      ['flags', 8, 4],
      ['pgsize_bitmap', 16, 8],
      ['max_dirty_bitmap_size', 24, 8],
    ]);
    expectLayout(vfio_iommu_type1_info_dma_avail, 12, 4, [
      ['header', 0, 8],
      ['avail', 8, 4],
    ]);
  });

  it('struct vfio_iommu_type1_dma_map: 32 bytes, minsz 32', () => {
    expectLayout(vfio_iommu_type1_dma_map, 32, 8, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['vaddr', 8, 8],
      ['iova', 16, 8],
      ['size', 24, 8],
    ]);
    expect(VFIO_DMA_MAP_MINSZ).toBe(32);
  });

  it('struct vfio_iommu_type1_dma_unmap: 24 bytes, minsz 24; struct vfio_bitmap: 24 bytes', () => {
    expectLayout(vfio_iommu_type1_dma_unmap, 24, 8, [
      ['argsz', 0, 4],
      ['flags', 4, 4],
      ['iova', 8, 8],
      ['size', 16, 8],
    ]);
    expect(VFIO_DMA_UNMAP_MINSZ).toBe(24);
    expectLayout(vfio_bitmap, 24, 8, [
      ['pgsize', 0, 8],
      ['size', 8, 8],
      ['data', 16, 8],
    ]);
    expectLayout(vfio_dma_unmap_with_bitmap, 48, 8, [
      ['unmap', 0, 24],
      ['bitmap', 24, 24],
    ]);
  });

  it('MAP_DMA encodes little-endian at the offsets above', () => {
    const b = vfio_iommu_type1_dma_map.encode({
      argsz: 32,
      flags: 3,
      vaddr: 0x7f00_0000_0000n,
      iova: 0x10_0000n,
      size: 0x2000n,
    });
    expect([...b.subarray(0, 8)]).toEqual([32, 0, 0, 0, 3, 0, 0, 0]);
    expect([...b.subarray(8, 16)]).toEqual([0, 0, 0, 0, 0, 0x7f, 0, 0]);
    expect([...b.subarray(16, 24)]).toEqual([0, 0, 0x10, 0, 0, 0, 0, 0]);
    expect([...b.subarray(24, 32)]).toEqual([0, 0x20, 0, 0, 0, 0, 0, 0]);
  });
});

describe('constants', () => {
  it('GET_INFO flags and capability IDs', () => {
    expect(VFIO_IOMMU_INFO_PGSIZES).toBe(1);
    expect(VFIO_IOMMU_INFO_CAPS).toBe(2);
    expect(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE).toBe(1);
    expect(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION).toBe(2);
    expect(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL).toBe(3);
  });

  it('MAP/UNMAP flags (v5.10, and the v5.12 ones vsva refuses)', () => {
    expect(VFIO_DMA_MAP_FLAG_READ).toBe(1);
    expect(VFIO_DMA_MAP_FLAG_WRITE).toBe(2);
    expect(VFIO_DMA_MAP_FLAG_VADDR).toBe(4);
    expect(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP).toBe(1);
    expect(VFIO_DMA_UNMAP_FLAG_ALL).toBe(2);
    expect(VFIO_DMA_UNMAP_FLAG_VADDR).toBe(4);
  });

  it('DIRTY_BITMAP_BYTES rounds up to u64s; the maximum is 256 MiB (INT_MAX bits)', () => {
    expect(dirtyBitmapBytes(1n)).toBe(8n);
    expect(dirtyBitmapBytes(64n)).toBe(8n);
    expect(dirtyBitmapBytes(65n)).toBe(16n);
    expect(DIRTY_BITMAP_SIZE_MAX).toBe(0x1000_0000n);
  });
});

describe('capability chains (vfio_info_cap_add / _shift)', () => {
  it('the first capability links to itself as 0; later ones are appended at the end', () => {
    const caps = new VfioInfoCap();
    expect(caps.add(12, 3, 1)).toBe(0);
    expect(vfio_info_cap_header.decode(caps.buf)).toEqual({ id: 3, version: 1, next: 0 });
    expect(caps.add(16, 1, 1)).toBe(12);
    expect(caps.add(8, 7, 2)).toBe(28);
    expect(caps.size).toBe(36);
    const b = caps.buf;
    expect(vfio_info_cap_header.decode(b, 0).next).toBe(12);
    expect(vfio_info_cap_header.decode(b, 12)).toEqual({ id: 1, version: 1, next: 28 });
    expect(vfio_info_cap_header.decode(b, 28)).toEqual({ id: 7, version: 2, next: 0 });
  });

  it('shift adds the offset to every non-zero next; the user walks from cap_offset', () => {
    const caps = new VfioInfoCap();
    caps.add(12, 3, 1);
    caps.add(16, 1, 1);
    caps.shift(24);
    const user = new Uint8Array(24 + caps.size);
    user.set(caps.buf, 24);
    expect(walkInfoCaps(user, 24)).toEqual([
      { id: 3, version: 1, offset: 24 },
      { id: 1, version: 1, offset: 36 },
    ]);
    expect(walkInfoCaps(user, 0)).toEqual([]);
  });

  it('addCapability copies the body and keeps id/version of the struct; the chain is unaligned (v5.10)', () => {
    const caps = new VfioInfoCap();
    caps.addCapability(
      vfio_iommu_type1_info_dma_avail.encode({ header: { id: 3, version: 1 }, avail: 65535 }),
    );
    caps.addCapability(
      encodeIovaRangeCap([
        { start: 0n, end: 0xfffn },
        { start: 0x2000n, end: (1n << 48n) - 1n },
      ]),
    );
    expect(caps.size).toBe(12 + 16 + 32);
    const b = caps.buf;
    expect(vfio_iommu_type1_info_dma_avail.decode(b).avail).toBe(65535);
    expect(vfio_info_cap_header.decode(b, 12)).toEqual({ id: 1, version: 1, next: 0 });
    expect(vfio_iommu_type1_info_cap_iova_range.decode(b, 12).nr_iovas).toBe(2);
    expect(decodeIovaRangeCap(b, 12)).toEqual([
      { start: 0n, end: 0xfffn },
      { start: 0x2000n, end: (1n << 48n) - 1n },
    ]);
  });

  it('walkInfoCaps stops at next = 0, at a loop, and at a header past the end', () => {
    const chain = new Uint8Array(16);
    chain.set(vfio_info_cap_header.encode({ id: 1, version: 1, next: 8 }), 0);
    chain.set(vfio_info_cap_header.encode({ id: 2, version: 1, next: 0 }), 8);
    expect(walkInfoCaps(chain, 8).map((c) => c.id)).toEqual([2]);
    const toSelf = new Uint8Array(16);
    toSelf.set(vfio_info_cap_header.encode({ id: 5, version: 1, next: 8 }), 8);
    expect(walkInfoCaps(toSelf, 8)).toEqual([{ id: 5, version: 1, offset: 8 }]);
    expect(walkInfoCaps(new Uint8Array(10), 4)).toEqual([]);
  });

  it('a capability smaller than its header is a programmer error', () => {
    expect(() => new VfioInfoCap().add(4, 1, 1)).toThrow(/header/);
  });
});

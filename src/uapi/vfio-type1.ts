/**
 * The type1 IOMMU part of include/uapi/linux/vfio.h (Linux v5.10, plus the v5.12 flag numbers it
 * refuses): VFIO_IOMMU_GET_INFO with its capability chain (IOVA ranges, DMA entries available,
 * and the migration capability's layout), VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA (with the
 * dirty-bitmap trailer), and the generic `vfio_info_cap_header` chain that VFIO's GET_INFO
 * ioctls return after their fixed struct.
 *
 * A capability chain (drivers/vfio/vfio.c: vfio_info_cap_add / vfio_info_cap_shift) is a byte
 * buffer of capabilities, each starting with a header whose `next` is the offset of the following
 * one (0 ends the chain). The kernel builds it with offsets relative to the buffer, then shifts
 * every `next` by the size of the fixed struct before copying it after that struct; the user
 * finds the first capability at the struct's `cap_offset`. `VfioInfoCap` is that builder;
 * `walkInfoCaps` is the user side.
 *
 * Decision: capabilities are appended at their own size, without padding, as v5.10 does (Linux
 * v6.6 started aligning each one to 8 bytes). A chain holding the 12-byte DMA_AVAIL capability
 * therefore puts the next capability at an offset that is not a multiple of 8; users follow
 * `next` and copy, so nothing depends on it.
 *
 * Verified against include/uapi/linux/vfio.h of v5.10 (structs, VFIO_IOMMU_INFO_*, capability
 * IDs 1–3, VFIO_DMA_MAP_FLAG_READ/WRITE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) and v5.12
 * (VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_UNMAP_FLAG_ALL/VADDR), and drivers/vfio/vfio.c of v5.10.
 */

import { defineStruct, type StructValue, struct, u16, u32, u64 } from './layout.ts';

// ---------------------------------------------------------------- capability chain header

/** struct vfio_info_cap_header: 8 bytes, align 4. */
export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', 8, {
  /** Identifies the capability (per ioctl). */
  id: u16(0),
  /** Version of that capability's layout. */
  version: u16(2),
  /** Offset of the next capability from the start of the user's buffer; 0 ends the chain. */
  next: u32(4),
});
export type VfioInfoCapHeader = StructValue<typeof vfio_info_cap_header.fields>;

// ---------------------------------------------------------------- VFIO_IOMMU_GET_INFO

/** Page sizes reported in `iova_pgsizes`. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** A capability chain follows (`cap_offset`). */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

/** struct vfio_iommu_type1_info: 24 bytes, align 8 (4 bytes of tail padding). */
export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', 24, {
  argsz: u32(0),
  flags: u32(4),
  /** Bitmap of the page sizes MAP_DMA can use (bit n: 2^n bytes). */
  iova_pgsizes: u64(8),
  /** Offset of the first capability within the user's buffer. */
  cap_offset: u32(16),
  /** Tail padding of the C struct (named `pad` in later kernels). */
  pad: u32(20),
});
export type VfioIommuType1Info = StructValue<typeof vfio_iommu_type1_info.fields>;

/** What GET_INFO copies in first: offsetofend(iova_pgsizes) = 16. */
export const VFIO_IOMMU_INFO_MINSZ = vfio_iommu_type1_info.offsetofend('iova_pgsizes');
/** offsetofend(cap_offset) = 20: an argsz of at least this much gets cap_offset back. */
export const VFIO_IOMMU_INFO_CAPSZ = vfio_iommu_type1_info.offsetofend('cap_offset');

/** Capability IDs of VFIO_IOMMU_GET_INFO. */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** struct vfio_iova_range: one valid IOVA range, both ends inclusive. 16 bytes. */
export const vfio_iova_range = defineStruct('vfio_iova_range', 16, {
  start: u64(0),
  end: u64(8),
});
export type VfioIovaRange = StructValue<typeof vfio_iova_range.fields>;

/**
 * struct vfio_iommu_type1_info_cap_iova_range (version 1): 16 bytes, align 8 (its flexible array
 * holds u64s), followed by `nr_iovas` vfio_iova_range entries.
 */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct(
  'vfio_iommu_type1_info_cap_iova_range',
  16,
  {
    header: struct(0, vfio_info_cap_header),
    nr_iovas: u32(8),
    reserved: u32(12),
  },
  { align: 8 },
);
/** Offset of `iova_ranges[]`. */
export const VFIO_IOVA_RANGE_CAP_RANGES = 16;

/**
 * struct vfio_iommu_type1_info_cap_migration (version 1): 32 bytes, align 8. vsva does not
 * report it (no dirty-page logging; see type1.ts); the layout is here for completeness.
 */
export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', 32, {
  header: struct(0, vfio_info_cap_header),
  flags: u32(8),
  pgsize_bitmap: u64(16),
  max_dirty_bitmap_size: u64(24),
});

/** struct vfio_iommu_type1_info_dma_avail (version 1): 12 bytes, align 4. */
export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', 12, {
  header: struct(0, vfio_info_cap_header),
  /** How many more MAP_DMA entries the container accepts. */
  avail: u32(8),
});

// ---------------------------------------------------------------- VFIO_IOMMU_MAP_DMA

/** Readable by the device. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** Writable by the device. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** v5.12: update the vaddr of an existing mapping (vsva refuses it: EINVAL, as v5.10). */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

/** struct vfio_iommu_type1_dma_map: 32 bytes, align 8. */
export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', 32, {
  argsz: u32(0),
  flags: u32(4),
  /** Process virtual address of the memory. */
  vaddr: u64(8),
  /** IO virtual address the device will use. */
  iova: u64(16),
  /** Bytes. */
  size: u64(24),
});
export type VfioDmaMap = StructValue<typeof vfio_iommu_type1_dma_map.fields>;

/** minsz = offsetofend(size) = 32. */
export const VFIO_DMA_MAP_MINSZ = vfio_iommu_type1_dma_map.offsetofend('size');

// ---------------------------------------------------------------- VFIO_IOMMU_UNMAP_DMA

/** Return the dirty bitmap of the range before unmapping it (v5.8). */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** v5.12: unmap everything (vsva refuses it: EINVAL, as v5.10). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** v5.12: invalidate the vaddr of mappings (vsva refuses it: EINVAL, as v5.10). */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** struct vfio_iommu_type1_dma_unmap: 24 bytes, align 8, then `__u8 data[]`. */
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', 24, {
  argsz: u32(0),
  flags: u32(4),
  iova: u64(8),
  /** In: bytes to unmap. Out: bytes unmapped. */
  size: u64(16),
});
export type VfioDmaUnmap = StructValue<typeof vfio_iommu_type1_dma_unmap.fields>;

/** minsz = offsetofend(size) = 24; the data[] trailer starts here. */
export const VFIO_DMA_UNMAP_MINSZ = vfio_iommu_type1_dma_unmap.offsetofend('size');

/** struct vfio_bitmap: the dirty-bitmap trailer of UNMAP_DMA (and of DIRTY_PAGES). 24 bytes. */
export const vfio_bitmap = defineStruct('vfio_bitmap', 24, {
  /** Page size one bit stands for, in bytes. */
  pgsize: u64(0),
  /** Size of the user's bitmap in bytes. */
  size: u64(8),
  /** `__u64 __user *data`: where the bitmap goes. */
  data: u64(16),
});
export type VfioBitmap = StructValue<typeof vfio_bitmap.fields>;

/** DIRTY_BITMAP_BYTES(n): bytes of a bitmap of n bits, rounded up to whole u64s. */
export function dirtyBitmapBytes(npages: bigint): bigint {
  return ((npages + 63n) / 64n) * 8n;
}

/** DIRTY_BITMAP_PAGES_MAX = INT_MAX bits, so DIRTY_BITMAP_SIZE_MAX = 256 MiB. */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fff_ffffn;
export const DIRTY_BITMAP_SIZE_MAX = dirtyBitmapBytes(DIRTY_BITMAP_PAGES_MAX);

// ---------------------------------------------------------------- capability chain builder

/** Writes one u32 little-endian. */
function putU32(buf: Uint8Array, at: number, v: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(at, v >>> 0, true);
}

function getU32(buf: Uint8Array, at: number): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(at, true);
}

/** Offset of `next` in a capability header. */
const CAP_NEXT = 4;

/**
 * `struct vfio_info_cap`: the kernel's buffer of capabilities while a GET_INFO handler builds it.
 * `add` is vfio_info_cap_add, `addCapability` vfio_info_add_capability, `shift`
 * vfio_info_cap_shift.
 */
export class VfioInfoCap {
  private data = new Uint8Array(0);

  /** Bytes used. */
  get size(): number {
    return this.data.length;
  }

  /** The chain's bytes (a copy). */
  get buf(): Uint8Array {
    return this.data.slice();
  }

  /**
   * vfio_info_cap_add: appends `size` zeroed bytes holding a header (`id`, `version`), links it
   * as the last capability of the chain, and returns its offset in the buffer.
   */
  add(size: number, id: number, version: number): number {
    if (!Number.isInteger(size) || size < vfio_info_cap_header.size)
      throw new Error(`vfio_info_cap_add: a capability needs at least a header (got ${size} bytes)`);
    const at = this.data.length;
    const grown = new Uint8Array(at + size);
    grown.set(this.data);
    grown.set(vfio_info_cap_header.encode({ id, version, next: 0 }), at);
    this.data = grown;
    // The chain starts at offset 0; walk to its last header (for the first capability that is
    // the new header itself, whose `next` is then set to 0 again).
    let tmp = 0;
    for (let guard = 0; getU32(this.data, tmp + CAP_NEXT) !== 0 && guard < this.data.length; guard++)
      tmp = getU32(this.data, tmp + CAP_NEXT);
    putU32(this.data, tmp + CAP_NEXT, at);
    return at;
  }

  /**
   * vfio_info_add_capability: appends a whole capability struct (`cap`, its header included):
   * the header's id and version come from `cap`, its `next` from the chain.
   */
  addCapability(cap: Uint8Array): number {
    const h = vfio_info_cap_header.decode(cap);
    const at = this.add(cap.length, h.id, h.version);
    this.data.set(cap.subarray(vfio_info_cap_header.size), at + vfio_info_cap_header.size);
    return at;
  }

  /** Writes bytes inside an already added capability (its body). */
  write(at: number, bytes: Uint8Array): void {
    if (at < 0 || at + bytes.length > this.data.length) throw new Error('VfioInfoCap.write: out of range');
    this.data.set(bytes, at);
  }

  /**
   * vfio_info_cap_shift: adds `offset` to every non-zero `next`, so that the offsets count from
   * the start of the user's buffer once the chain is copied `offset` bytes into it.
   */
  shift(offset: number): void {
    if (this.data.length === 0) return;
    let tmp = 0;
    for (let guard = 0; guard <= this.data.length; guard++) {
      const next = getU32(this.data, tmp + CAP_NEXT);
      if (next === 0) return;
      putU32(this.data, tmp + CAP_NEXT, next + offset);
      tmp = next;
    }
  }
}

/** One capability found by `walkInfoCaps`. */
export interface InfoCapEntry {
  readonly id: number;
  readonly version: number;
  /** Offset of its header in the buffer walked. */
  readonly offset: number;
}

/**
 * The user's side: the capabilities of a GET_INFO reply `buf`, starting at `capOffset` (the
 * struct's cap_offset; 0 means none). Stops at a `next` of 0, at a header that does not fit in
 * the buffer, or at a loop.
 */
export function walkInfoCaps(buf: Uint8Array, capOffset: number): InfoCapEntry[] {
  const out: InfoCapEntry[] = [];
  const seen = new Set<number>();
  let at = capOffset;
  while (at !== 0 && at + vfio_info_cap_header.size <= buf.length && !seen.has(at)) {
    seen.add(at);
    const h = vfio_info_cap_header.decode(buf, at);
    out.push({ id: h.id, version: h.version, offset: at });
    at = h.next;
  }
  return out;
}

/** The ranges of an IOVA-range capability whose header is at `offset` in `buf`. */
export function decodeIovaRangeCap(buf: Uint8Array, offset: number): VfioIovaRange[] {
  const cap = vfio_iommu_type1_info_cap_iova_range.decode(buf, offset);
  const out: VfioIovaRange[] = [];
  for (let i = 0; i < cap.nr_iovas; i++) {
    const at = offset + VFIO_IOVA_RANGE_CAP_RANGES + i * vfio_iova_range.size;
    if (at + vfio_iova_range.size > buf.length) break;
    out.push(vfio_iova_range.decode(buf, at));
  }
  return out;
}

/** An IOVA-range capability (header, nr_iovas, then the ranges) as bytes, `next` = 0. */
export function encodeIovaRangeCap(ranges: readonly { start: bigint; end: bigint }[]): Uint8Array {
  const out = new Uint8Array(VFIO_IOVA_RANGE_CAP_RANGES + ranges.length * vfio_iova_range.size);
  out.set(
    vfio_iommu_type1_info_cap_iova_range.encode({
      header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1 },
      nr_iovas: ranges.length,
    }),
  );
  ranges.forEach((r, i) => {
    out.set(vfio_iova_range.encode(r), VFIO_IOVA_RANGE_CAP_RANGES + i * vfio_iova_range.size);
  });
  return out;
}

/** An UNMAP_DMA argument with its dirty-bitmap trailer (GET_DIRTY_BITMAP): 48 bytes. */
export const vfio_dma_unmap_with_bitmap = defineStruct('vfio_iommu_type1_dma_unmap+vfio_bitmap', 48, {
  unmap: struct(0, vfio_iommu_type1_dma_unmap),
  bitmap: struct(24, vfio_bitmap),
});

/**
 * The programming interface of vsva's PASID DMA engine (`pasid-dma-device.ts`): its BAR0 register
 * map, the 64-byte descriptor, the 32-byte completion record, and encoders/decoders for both, so
 * that drivers (host, guest) and tests share one definition. The device is vsva's own design,
 * shaped after Intel DSA (descriptors naming a PASID, completion records written into the
 * submitter's address space) but much smaller. Everything is little-endian.
 *
 * BAR0 (default 16 KiB; registers are 32 bits wide):
 *
 * | off    | name          | access | meaning |
 * |--------|---------------|--------|---------|
 * | 0x000  | ID            | RO     | device ID << 16 \| interface version (1) |
 * | 0x004  | CAP           | RO     | [15:0] RING_MAX (most descriptors in a ring), [23:16] log2 of the largest transfer, [31:24] log2 of the DMA chunk |
 * | 0x008  | CTRL          | RW     | bit 0 ENABLE. 0→1 resets HEAD and TAIL to 0 and clears HALTED (refused, ERROR.BAD_RING_CONFIG, when RING_SIZE is 0 or above RING_MAX); 1→0 stops the ring |
 * | 0x00c  | STATUS        | RO     | bit 0 ENABLED, bit 1 HALTED (a descriptor fetch failed; cleared by re-enabling) |
 * | 0x010  | ERROR         | RW1C   | bit 0 RING_FAULT, bit 1 COMPL_FAULT, bit 2 NO_BUS_MASTER, bit 3 BAD_TAIL, bit 4 BAD_RING_CONFIG |
 * | 0x014  | ERR_INFO      | RO     | ring index of the descriptor of the last RING_FAULT / COMPL_FAULT in [15:0]; [23:16] the completion status that could not be written |
 * | 0x018  | ERR_ADDR_LO   | RO     | address of the last failed ring or completion-record access |
 * | 0x01c  | ERR_ADDR_HI   | RO     |  |
 * | 0x020  | ERR_PASID     | RO     | bit 31 PASID valid, [19:0] PASID of that access |
 * | 0x024  | ERR_IRQ       | RW     | bit 31 enable, [10:0] MSI-X vector raised whenever an ERROR bit becomes set |
 * | 0x030  | RING_BASE_LO  | RW     | ring IOVA, 64-byte aligned ([5:0] read as 0); ignored while ENABLE is set |
 * | 0x034  | RING_BASE_HI  | RW     |  |
 * | 0x038  | RING_SIZE     | RW     | descriptors in the ring (1..RING_MAX); ignored while ENABLE is set |
 * | 0x040  | RING_HEAD     | RO     | index of the next descriptor the device will process |
 * | 0x044  | RING_TAIL     | RW     | doorbell: the index one past the last descriptor submitted |
 * | 0x1000 | MSI-X table   | RW     | `msixVectors` entries of 16 bytes (BIR 0) |
 * | 0x2000 | MSI-X PBA     | RO     | one bit per vector (BIR 0) |
 *
 * Other offsets in 0x000-0xfff read as zero and ignore writes.
 *
 * Descriptor (64 bytes, in the ring, which lives in the driver's IOVA space — no PASID):
 *
 * | off  | size | field |
 * |------|------|-------|
 * | 0x00 | 1 | opcode: 0 NOP, 1 COPY (src → dst), 2 FILL (pattern → dst), 3 COMPARE (src with dst) |
 * | 0x01 | 1 | flags: bit 0 PASID valid, bit 1 privileged, bit 2 interrupt on completion, bit 3 completion record requested; others ignored |
 * | 0x02 | 2 | MSI-X vector for the completion interrupt |
 * | 0x04 | 4 | PASID in [19:0] ([31:20] ignored) |
 * | 0x08 | 8 | source address |
 * | 0x10 | 8 | destination address |
 * | 0x18 | 4 | length in bytes |
 * | 0x1c | 4 | reserved |
 * | 0x20 | 8 | fill pattern: byte i of the destination is byte (i mod 8) of this field |
 * | 0x28 | 8 | completion record address |
 * | 0x30 | 16 | reserved |
 *
 * Completion record (32 bytes):
 *
 * | off  | size | field |
 * |------|------|-------|
 * | 0x00 | 1 | status (CS_*) |
 * | 0x01 | 1 | fault info: bit 0 the failing access was a write, bit 1 it was an abort (not a translation fault) |
 * | 0x02 | 2 | ring index of the descriptor |
 * | 0x04 | 4 | bytes completed (COMPARE_MISMATCH: offset of the first differing byte) |
 * | 0x08 | 8 | fault address (READ_FAULT / WRITE_FAULT): the device address that failed |
 * | 0x10 | 4 | PASID the descriptor named (bit 31 set when PASID valid) |
 * | 0x14 | 12 | reserved (0) |
 */

import { join64 } from '../../arch/bits.ts';

// ---------------------------------------------------------------------- identity

/**
 * Decision: vendor 0x1234 (the ID QEMU's own emulated test devices use, not a real vendor's) and
 * device 0x5a5a; class 0x088000 (base class "system peripheral", subclass "other", as Intel DSA).
 */
export const PDMA_VENDOR_ID = 0x1234;
export const PDMA_DEVICE_ID = 0x5a5a;
export const PDMA_CLASS_CODE = 0x08_80_00;
export const PDMA_REVISION = 0x01;
export const PDMA_INTERFACE_VERSION = 1;

// ---------------------------------------------------------------------- BAR0 registers

export const PDMA_ID = 0x000;
export const PDMA_CAP = 0x004;
export const PDMA_CTRL = 0x008;
export const PDMA_CTRL_ENABLE = 0x1;
export const PDMA_STATUS = 0x00c;
export const PDMA_STATUS_ENABLED = 0x1;
export const PDMA_STATUS_HALTED = 0x2;
export const PDMA_ERROR = 0x010;
export const PDMA_ERROR_RING_FAULT = 0x01;
export const PDMA_ERROR_COMPL_FAULT = 0x02;
export const PDMA_ERROR_NO_BUS_MASTER = 0x04;
export const PDMA_ERROR_BAD_TAIL = 0x08;
export const PDMA_ERROR_BAD_RING_CONFIG = 0x10;
export const PDMA_ERROR_ALL = 0x1f;
export const PDMA_ERR_INFO = 0x014;
export const PDMA_ERR_ADDR_LO = 0x018;
export const PDMA_ERR_ADDR_HI = 0x01c;
export const PDMA_ERR_PASID = 0x020;
export const PDMA_ERR_PASID_VALID = 0x8000_0000;
export const PDMA_ERR_IRQ = 0x024;
export const PDMA_ERR_IRQ_ENABLE = 0x8000_0000;
export const PDMA_ERR_IRQ_VECTOR = 0x7ff;
export const PDMA_RING_BASE_LO = 0x030;
export const PDMA_RING_BASE_HI = 0x034;
export const PDMA_RING_SIZE = 0x038;
export const PDMA_RING_HEAD = 0x040;
export const PDMA_RING_TAIL = 0x044;
/** The register block ends here; the MSI-X table and PBA follow on pages of their own. */
export const PDMA_REGS_SIZE = 0x1000;
export const PDMA_MSIX_TABLE_OFFSET = 0x1000;
export const PDMA_MSIX_PBA_OFFSET = 0x2000;
/** Decision: at most 256 vectors, so the table fits its 4 KiB page. */
export const PDMA_MSIX_MAX_VECTORS = 256;
/** Smallest BAR0: registers, table and PBA pages, plus one spare page. */
export const PDMA_BAR0_MIN_SIZE = 0x4000;

/** Decision: rings hold at most 4096 descriptors (256 KiB). */
export const PDMA_RING_MAX = 4096;
/** Decision: one descriptor moves at most 2 MiB (larger lengths complete with CS_BAD_LENGTH). */
export const PDMA_MAX_TRANSFER_LOG2 = 21;
export const PDMA_MAX_TRANSFER = 1 << PDMA_MAX_TRANSFER_LOG2;

// ---------------------------------------------------------------------- descriptors

export const DESC_BYTES = 64;
export const DESC_OPCODE = 0x00;
export const DESC_FLAGS = 0x01;
export const DESC_VECTOR = 0x02;
export const DESC_PASID = 0x04;
export const DESC_SRC = 0x08;
export const DESC_DST = 0x10;
export const DESC_LEN = 0x18;
export const DESC_PATTERN = 0x20;
export const DESC_COMPL = 0x28;

export const OP_NOP = 0;
export const OP_COPY = 1;
export const OP_FILL = 2;
export const OP_COMPARE = 3;
export const OPCODE_NAMES: readonly string[] = ['nop', 'copy', 'fill', 'compare'];

export const DESC_F_PASID = 0x01;
export const DESC_F_PRIV = 0x02;
export const DESC_F_INTR = 0x04;
export const DESC_F_COMPL = 0x08;

export const PASID_MASK = 0xf_ffff;

/** A descriptor as a driver fills it. Addresses are numbers below 2^53; `pattern` is 8 bytes as [lo, hi] words. */
export interface DescriptorInit {
  readonly opcode: number;
  /** Sets DESC_F_PASID and the PASID field. */
  readonly pasid?: number;
  readonly privileged?: boolean;
  /** Sets DESC_F_INTR and the vector field. */
  readonly interruptVector?: number;
  /** Sets DESC_F_COMPL and the completion address. */
  readonly completionAddr?: number;
  readonly src?: number;
  readonly dst?: number;
  readonly len?: number;
  readonly pattern?: readonly [lo: number, hi: number];
  /** Raw flag bits OR-ed in (to test reserved bits). */
  readonly extraFlags?: number;
}

function put64(v: DataView, off: number, n: number): void {
  v.setUint32(off, n >>> 0, true);
  v.setUint32(off + 4, Math.floor(n / 2 ** 32) >>> 0, true);
}

/** The 64 bytes of a descriptor. */
export function encodeDescriptor(d: DescriptorInit): Uint8Array {
  const b = new Uint8Array(DESC_BYTES);
  const v = new DataView(b.buffer);
  let flags = d.extraFlags ?? 0;
  if (d.pasid !== undefined) flags |= DESC_F_PASID;
  if (d.privileged === true) flags |= DESC_F_PRIV;
  if (d.interruptVector !== undefined) flags |= DESC_F_INTR;
  if (d.completionAddr !== undefined) flags |= DESC_F_COMPL;
  v.setUint8(DESC_OPCODE, d.opcode & 0xff);
  v.setUint8(DESC_FLAGS, flags & 0xff);
  v.setUint16(DESC_VECTOR, (d.interruptVector ?? 0) & 0xffff, true);
  v.setUint32(DESC_PASID, (d.pasid ?? 0) >>> 0, true);
  put64(v, DESC_SRC, d.src ?? 0);
  put64(v, DESC_DST, d.dst ?? 0);
  v.setUint32(DESC_LEN, (d.len ?? 0) >>> 0, true);
  v.setUint32(DESC_PATTERN, (d.pattern?.[0] ?? 0) >>> 0, true);
  v.setUint32(DESC_PATTERN + 4, (d.pattern?.[1] ?? 0) >>> 0, true);
  put64(v, DESC_COMPL, d.completionAddr ?? 0);
  return b;
}

// ---------------------------------------------------------------------- completion records

export const COMPL_BYTES = 32;
export const COMPL_STATUS = 0x00;
export const COMPL_FAULT_INFO = 0x01;
export const COMPL_INDEX = 0x02;
export const COMPL_BYTES_DONE = 0x04;
export const COMPL_FAULT_ADDR = 0x08;
export const COMPL_PASID = 0x10;
export const COMPL_PASID_VALID = 0x8000_0000;

export const COMPL_FAULT_WRITE = 0x01;
export const COMPL_FAULT_ABORT = 0x02;

/** Completion status: never written (what a driver zeroes the record to). */
export const CS_NONE = 0x00;
export const CS_SUCCESS = 0x01;
/** COMPARE found a difference; bytes completed = offset of the first differing byte. */
export const CS_COMPARE_MISMATCH = 0x02;
/** A read failed (translation fault or abort) at the fault address; bytes completed before it. */
export const CS_READ_FAULT = 0x03;
/** A write failed at the fault address; bytes completed before it. */
export const CS_WRITE_FAULT = 0x04;
/** DESC_F_PASID while the PASID capability's Enable is clear: no data DMA. */
export const CS_PASID_DISABLED = 0x05;
/** PASID at or above 2^(Max PASID Width): no data DMA. */
export const CS_BAD_PASID = 0x06;
/** DESC_F_PRIV without a PASID or while Privileged Mode Enable is clear: no data DMA. */
export const CS_PRIV_DISABLED = 0x07;
export const CS_BAD_OPCODE = 0x08;
/** Length above the largest transfer. */
export const CS_BAD_LENGTH = 0x09;
/** An address range reaching 2^53 or beyond (outside what the model's device addresses carry). */
export const CS_BAD_ADDRESS = 0x0a;

export const COMPLETION_STATUS_NAMES: Readonly<Record<number, string>> = {
  [CS_NONE]: 'none',
  [CS_SUCCESS]: 'success',
  [CS_COMPARE_MISMATCH]: 'compare-mismatch',
  [CS_READ_FAULT]: 'read-fault',
  [CS_WRITE_FAULT]: 'write-fault',
  [CS_PASID_DISABLED]: 'pasid-disabled',
  [CS_BAD_PASID]: 'bad-pasid',
  [CS_PRIV_DISABLED]: 'priv-disabled',
  [CS_BAD_OPCODE]: 'bad-opcode',
  [CS_BAD_LENGTH]: 'bad-length',
  [CS_BAD_ADDRESS]: 'bad-address',
};

/** A decoded completion record. */
export interface CompletionRecord {
  readonly status: number;
  readonly statusName: string;
  readonly faultWrite: boolean;
  readonly faultAbort: boolean;
  readonly index: number;
  readonly bytesCompleted: number;
  readonly faultAddr: number;
  /** -1 when the descriptor named no PASID. */
  readonly pasid: number;
}

export function decodeCompletion(bytes: Uint8Array): CompletionRecord {
  const v = new DataView(bytes.buffer, bytes.byteOffset, COMPL_BYTES);
  const status = v.getUint8(COMPL_STATUS);
  const info = v.getUint8(COMPL_FAULT_INFO);
  const pasidWord = v.getUint32(COMPL_PASID, true);
  return {
    status,
    statusName: COMPLETION_STATUS_NAMES[status] ?? `0x${status.toString(16)}`,
    faultWrite: (info & COMPL_FAULT_WRITE) !== 0,
    faultAbort: (info & COMPL_FAULT_ABORT) !== 0,
    index: v.getUint16(COMPL_INDEX, true),
    bytesCompleted: v.getUint32(COMPL_BYTES_DONE, true),
    faultAddr: join64(v.getUint32(COMPL_FAULT_ADDR + 4, true), v.getUint32(COMPL_FAULT_ADDR, true)),
    pasid: (pasidWord & COMPL_PASID_VALID) !== 0 ? pasidWord & PASID_MASK : -1,
  };
}

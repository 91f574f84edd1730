/**
 * A PCI function's configuration space as hardware implements it (PCI Local Bus 3.0 ch. 6, PCIe
 * Base ch. 7): 256 bytes, or 4096 with PCIe extended configuration space, where every byte has a
 * read-write mask and a write-1-to-clear mask (bits in neither are read-only). A write of
 * `value` to a byte stores `(old & ~rw) | (value & rw)` and then clears the W1C bits written as
 * one — the way QEMU's `wmask`/`w1cmask` do it. Registers with side effects (Command, MSI-X
 * Message Control, PCIe Device Control's Initiate FLR, PM Control) register write hooks that run
 * after the bytes are updated.
 *
 * Builders append capabilities to the standard list (from 0x40, linked through
 * PCI_CAP_LIST_NEXT, Status.CAP_LIST set on the first) and to the extended list (from 0x100, one
 * dword header each, built with `pciExtCapHeader`), and define memory BARs with the standard
 * sizing behaviour: the address bits below the size are read-only zero and the low flag bits
 * (memory space, type, prefetchable) are read-only, so writing all-ones reads back the size mask.
 * `seal()` records the power-on image that `reset()` restores (a conventional or function-level
 * reset).
 *
 * Decision: accesses other than 1, 2 or 4 bytes naturally aligned inside the space (misaligned,
 * crossing the end, wrong size, non-integer offset) read as all-ones of the access size (all-ones
 * of 4 bytes when the size itself is invalid) and writes are ignored; both are counted in
 * `stats.badAccesses`. (A root complex turns such requests into an Unsupported Request, which reads
 * as all-ones.)
 *
 * The free functions at the bottom walk the two capability lists through any `PciConfigPort`,
 * with the loop bounds Linux uses, so that the host's PCI core and vfio-pci can share them.
 */

import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_EXT_CAP_ID,
  PCI_EXT_CAP_NEXT,
  PCI_EXT_CAP_START,
  PCI_EXT_CAP_VER,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_STD_NUM_BARS,
  type PciConfigPort,
  pciExtCapHeader,
} from './regs.ts';

/**
 * Called after a configuration write that touched [start, start+len) of the hook's range:
 * `offset`, `size` and `value` are the write as issued, `old` the value the written bytes held
 * before it.
 */
export type ConfigWriteHook = (offset: number, size: AccessSize, value: number, old: number) => void;

interface HookRange {
  readonly start: number;
  readonly end: number;
  readonly fn: ConfigWriteHook;
}

/** A memory BAR as defined by `addMemoryBar`. */
export interface MemoryBar {
  readonly index: number;
  /** Size in bytes (a power of two, at least 16). */
  readonly size: number;
  readonly is64: boolean;
  readonly prefetchable: boolean;
}

export interface ConfigSpaceStats {
  reads: number;
  writes: number;
  /** Misaligned, out-of-range or wrong-size accesses (all-ones / ignored). */
  badAccesses: number;
}

/** All-ones for an access size. */
export function allOnes(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
}

/**
 * The byte a configuration write of (offset, size, value) carried for configuration offset `at`,
 * or -1 when the write did not cover it. Hooks use it to tell which bits of their register a
 * write really set.
 */
export function writtenByte(offset: number, size: number, value: number, at: number): number {
  if (at < offset || at >= offset + size) return -1;
  return (value >>> (8 * (at - offset))) & 0xff;
}

/** A valid access: 1, 2 or 4 bytes, naturally aligned, inside a space of `limit` bytes. */
export function isValidConfigAccess(offset: number, size: number, limit: number): boolean {
  return (
    (size === 1 || size === 2 || size === 4) &&
    Number.isInteger(offset) &&
    offset >= 0 &&
    offset % size === 0 &&
    offset + size <= limit
  );
}

export class ConfigSpace implements PciConfigPort {
  readonly configSize: number;
  readonly stats: ConfigSpaceStats = { reads: 0, writes: 0, badAccesses: 0 };
  private readonly data: Uint8Array;
  private readonly rw: Uint8Array;
  private readonly w1c: Uint8Array;
  private image: Uint8Array | null = null;
  private readonly hooks: HookRange[] = [];
  private readonly bars: (MemoryBar | undefined)[] = new Array<MemoryBar | undefined>(PCI_STD_NUM_BARS);
  /** Offset of the last standard capability (-1: none yet) and where the next one goes. */
  private lastCap = -1;
  private nextCap = PCI_STD_HEADER_SIZEOF;
  private lastExtCap = -1;
  private nextExtCap = PCI_EXT_CAP_START;

  /** `size`: 256 (conventional) or 4096 (PCIe extended configuration space). */
  constructor(size: number) {
    if (size !== PCI_CFG_SPACE_SIZE && size !== PCI_CFG_SPACE_EXP_SIZE) {
      throw new Error(`config space: size must be 256 or 4096, got ${size}`);
    }
    this.configSize = size;
    this.data = new Uint8Array(size);
    this.rw = new Uint8Array(size);
    this.w1c = new Uint8Array(size);
  }

  // ------------------------------------------------------------------ device-side access

  /** The current value of a register (no side effects, no masks). */
  get(offset: number, size: AccessSize): number {
    this.checkRange(offset, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.data[offset + i]!;
    return v >>> 0;
  }

  /** Sets a register's value as the device itself does (ignores the masks, runs no hook). */
  set(offset: number, size: AccessSize, value: number): void {
    this.checkRange(offset, size);
    for (let i = 0; i < size; i++) this.data[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  /** Sets bits of a register (device side). */
  setBits(offset: number, size: AccessSize, bits: number): void {
    this.set(offset, size, this.get(offset, size) | bits);
  }

  /** Clears bits of a register (device side). */
  clearBits(offset: number, size: AccessSize, bits: number): void {
    this.set(offset, size, this.get(offset, size) & ~bits);
  }

  /** Defines a register's software-writable (rw) and write-1-to-clear (w1c) bits; others are read-only. */
  setMasks(offset: number, size: AccessSize, masks: { readonly rw?: number; readonly w1c?: number }): void {
    this.checkRange(offset, size);
    const rw = masks.rw ?? 0;
    const w1c = masks.w1c ?? 0;
    if ((rw & w1c) !== 0) throw new Error(`config space: bits both RW and W1C at 0x${offset.toString(16)}`);
    for (let i = 0; i < size; i++) {
      this.rw[offset + i] = (rw >>> (8 * i)) & 0xff;
      this.w1c[offset + i] = (w1c >>> (8 * i)) & 0xff;
    }
  }

  /** A register's initial value and masks in one call. */
  init(offset: number, size: AccessSize, value: number, masks: { rw?: number; w1c?: number } = {}): void {
    this.set(offset, size, value);
    this.setMasks(offset, size, masks);
  }

  /** The read-write mask of a register. */
  rwMask(offset: number, size: AccessSize): number {
    return this.maskOf(this.rw, offset, size);
  }

  /** The write-1-to-clear mask of a register. */
  w1cMask(offset: number, size: AccessSize): number {
    return this.maskOf(this.w1c, offset, size);
  }

  /** Runs `fn` after every configuration write that touches [offset, offset+len). */
  onWrite(offset: number, len: number, fn: ConfigWriteHook): void {
    this.checkRange(offset, len);
    this.hooks.push({ start: offset, end: offset + len, fn });
  }

  private maskOf(mask: Uint8Array, offset: number, size: AccessSize): number {
    this.checkRange(offset, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | mask[offset + i]!;
    return v >>> 0;
  }

  private checkRange(offset: number, len: number): void {
    if (!Number.isInteger(offset) || offset < 0 || len < 1 || offset + len > this.configSize) {
      throw new Error(`config space: [0x${offset.toString(16)}, +${len}) outside ${this.configSize} bytes`);
    }
  }

  // ------------------------------------------------------------------ PciConfigPort

  configRead(offset: number, size: AccessSize): number {
    if (!isValidConfigAccess(offset, size, this.configSize)) {
      this.stats.badAccesses++;
      return allOnes(size);
    }
    this.stats.reads++;
    return this.get(offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    if (!isValidConfigAccess(offset, size, this.configSize)) {
      this.stats.badAccesses++;
      return;
    }
    this.stats.writes++;
    const old = this.get(offset, size);
    for (let i = 0; i < size; i++) {
      const a = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const rw = this.rw[a]!;
      this.data[a] = ((this.data[a]! & ~rw) | (b & rw)) & ~(b & this.w1c[a]!);
    }
    const end = offset + size;
    for (const h of this.hooks) if (h.start < end && offset < h.end) h.fn(offset, size, value >>> 0, old);
  }

  // ------------------------------------------------------------------ capabilities

  /**
   * Appends a standard capability of `size` bytes (dword aligned after the previous one) and links
   * it into the list; its ID and next-pointer bytes are read-only. Returns its offset.
   */
  addCapability(id: number, size: number): number {
    const off = this.nextCap;
    if (size < 2 || off + size > PCI_CFG_SPACE_SIZE) {
      throw new Error(`config space: capability 0x${id.toString(16)} of ${size} bytes does not fit`);
    }
    this.init(off + PCI_CAP_LIST_ID, 1, id);
    this.init(off + PCI_CAP_LIST_NEXT, 1, 0);
    if (this.lastCap < 0) {
      this.init(PCI_CAPABILITY_LIST, 1, off);
      this.setBits(PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
    } else {
      this.set(this.lastCap + PCI_CAP_LIST_NEXT, 1, off);
    }
    this.lastCap = off;
    this.nextCap = off + ((size + 3) & ~3);
    return off;
  }

  /**
   * Appends an extended capability of `size` bytes (header included) at the next dword after the
   * previous one, starting at 0x100, and links it; the header is read-only. Returns its offset.
   */
  addExtCapability(id: number, version: number, size: number): number {
    const off = this.nextExtCap;
    if (this.configSize < PCI_CFG_SPACE_EXP_SIZE || size < 4 || off + size > this.configSize) {
      throw new Error(`config space: extended capability 0x${id.toString(16)} of ${size} bytes does not fit`);
    }
    this.init(off, 4, pciExtCapHeader(id, version, 0));
    if (this.lastExtCap >= 0) {
      const prev = this.get(this.lastExtCap, 4);
      this.set(this.lastExtCap, 4, pciExtCapHeader(PCI_EXT_CAP_ID(prev), PCI_EXT_CAP_VER(prev), off));
    }
    this.lastExtCap = off;
    this.nextExtCap = off + ((size + 3) & ~3);
    return off;
  }

  // ------------------------------------------------------------------ BARs

  /**
   * Defines memory BAR `index` (and `index + 1` for a 64-bit BAR) of `size` bytes: the flag bits
   * read-only, the address bits above the size read-write, those below it read-only zero.
   */
  addMemoryBar(
    index: number,
    size: number,
    opts: { is64?: boolean; prefetchable?: boolean } = {},
  ): MemoryBar {
    const is64 = opts.is64 ?? false;
    const prefetchable = opts.prefetchable ?? false;
    const maxSize = is64 ? 2 ** 52 : 2 ** 31;
    if (!Number.isInteger(index) || index < 0 || index + (is64 ? 1 : 0) >= PCI_STD_NUM_BARS) {
      throw new Error(`config space: no BAR ${index}${is64 ? ' (64-bit)' : ''}`);
    }
    if (
      !Number.isSafeInteger(size) ||
      size < 16 ||
      size > maxSize ||
      2 ** Math.round(Math.log2(size)) !== size
    ) {
      throw new Error(`config space: BAR size must be a power of two in 16..${maxSize}, got ${size}`);
    }
    if (this.bars[index] !== undefined || (index > 0 && this.bars[index - 1]?.is64 === true)) {
      throw new Error(`config space: BAR ${index} already defined`);
    }
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const flags =
      (is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    const loMask = size >= 2 ** 32 ? 0 : ~(size - 1) & 0xffff_fff0;
    this.init(off, 4, flags, { rw: loMask >>> 0 });
    if (is64) {
      const hiMask = size > 2 ** 32 ? ~(size / 2 ** 32 - 1) : 0xffff_ffff;
      this.init(off + 4, 4, 0, { rw: hiMask >>> 0 });
    }
    const bar: MemoryBar = { index, size, is64, prefetchable };
    this.bars[index] = bar;
    return bar;
  }

  /** The BAR defined at `index`, if any (the upper half of a 64-bit BAR is not one). */
  bar(index: number): MemoryBar | undefined {
    return this.bars[index];
  }

  /** The address BAR `index` is programmed with (flag bits removed), or -1 when it is not defined. */
  barAddress(index: number): number {
    const bar = this.bars[index];
    if (bar === undefined) return -1;
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const lo = (this.get(off, 4) & 0xffff_fff0) >>> 0;
    return bar.is64 ? this.get(off + 4, 4) * 2 ** 32 + lo : lo;
  }

  // ------------------------------------------------------------------ reset

  /** Records the current contents as the power-on state that `reset()` restores. */
  seal(): void {
    this.image = this.data.slice();
  }

  /** Restores the power-on state recorded by `seal()` (no hooks run). */
  reset(): void {
    if (this.image === null) throw new Error('config space: reset before seal');
    this.data.set(this.image);
  }
}

// ---------------------------------------------------------------------- capability walks

/** Linux's PCI_FIND_CAP_TTL: at most 48 standard capabilities are followed. */
export const PCI_FIND_CAP_TTL = 48;

export interface CapabilityEntry {
  readonly id: number;
  readonly offset: number;
}

export interface ExtCapabilityEntry extends CapabilityEntry {
  readonly version: number;
}

/** The standard capability list of a function (empty when Status.CAP_LIST is clear). Bounded. */
export function pciCapabilities(port: PciConfigPort): CapabilityEntry[] {
  const out: CapabilityEntry[] = [];
  if ((port.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) === 0) return out;
  let pos = port.configRead(PCI_CAPABILITY_LIST, 1) & 0xfc;
  for (let ttl = PCI_FIND_CAP_TTL; ttl > 0 && pos >= PCI_STD_HEADER_SIZEOF; ttl--) {
    const id = port.configRead(pos + PCI_CAP_LIST_ID, 1);
    if (id === 0xff) break;
    out.push({ id, offset: pos });
    pos = port.configRead(pos + PCI_CAP_LIST_NEXT, 1) & 0xfc;
  }
  return out;
}

/** The extended capability list (empty without extended configuration space). Bounded. */
export function pciExtCapabilities(port: PciConfigPort): ExtCapabilityEntry[] {
  const out: ExtCapabilityEntry[] = [];
  if (port.configSize <= PCI_CFG_SPACE_SIZE) return out;
  let pos = PCI_EXT_CAP_START;
  // Each capability takes at least 8 bytes: Linux's bound.
  for (let ttl = (port.configSize - PCI_CFG_SPACE_SIZE) / 8; ttl > 0 && pos >= PCI_EXT_CAP_START; ttl--) {
    const header = port.configRead(pos, 4);
    if (header === 0 || header === 0xffff_ffff) break;
    out.push({ id: PCI_EXT_CAP_ID(header), version: PCI_EXT_CAP_VER(header), offset: pos });
    pos = PCI_EXT_CAP_NEXT(header);
  }
  return out;
}

/** Offset of the first standard capability with `id`, or 0. */
export function pciFindCapability(port: PciConfigPort, id: number): number {
  return pciCapabilities(port).find((c) => c.id === id)?.offset ?? 0;
}

/** Offset of the first extended capability with `id`, or 0. */
export function pciFindExtCapability(port: PciConfigPort, id: number): number {
  return pciExtCapabilities(port).find((c) => c.id === id)?.offset ?? 0;
}

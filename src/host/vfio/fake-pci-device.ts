/**
 * A test double for vfio-pci's configuration-space code (seed-spec.md §7.3): a PCIe endpoint's
 * configuration space — type 0 header with BARs; PM, MSI-X and PCIe capabilities, optionally MSI,
 * vendor-specific and Advanced Features; extended AER, DSN, PASID, ATS, PRI and others — in an
 * order the test chooses, with register semantics close to hardware: read-only, read/write and
 * write-1-to-clear bits, BAR sizing through the BARs' writable address bits, and a Function Level
 * Reset (PCIe DEVCTL or AF) that returns the function to its power-on state (BARs 0, Command 0,
 * every control register at its default). Every write reaching the device is logged.
 *
 * It implements `PciConfigPort` (src/hw/pci/regs.ts) only; the real device model lives in
 * src/hw/pci. Layout and values are invented for tests (vendor 0xFEED).
 */

import {
  type AccessSize,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_LTR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SECPCI,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_START,
  type PciConfigPort,
  pciExtCapHeader,
} from '../../hw/pci/regs.ts';

/** One register of the fake: initial value, read/write bits, write-1-to-clear bits. */
export interface FakeReg {
  readonly off: number;
  readonly size: 1 | 2 | 4;
  readonly init: number;
  readonly rw?: number;
  readonly w1c?: number;
}

/** A capability of the fake: its registers relative to the capability start (header included). */
export interface FakeCapSpec {
  readonly name: string;
  readonly id: number;
  /** Extended capabilities only. */
  readonly version?: number;
  readonly size: number;
  readonly regs: readonly FakeReg[];
}

export type FakeStdCapName = 'pm' | 'msix' | 'exp' | 'msi' | 'vndr' | 'af';
export type FakeExtCapName =
  | 'aer'
  | 'dsn'
  | 'pasid'
  | 'ats'
  | 'pri'
  | 'ltr'
  | 'secpci'
  | 'dpc'
  | 'vsec'
  | 'unknown';

export interface FakePciDeviceOptions {
  /** Standard capabilities in chain order (default pm, msix, exp). */
  readonly std?: readonly (FakeStdCapName | FakeCapSpec)[];
  /** Extended capabilities in chain order (default aer, dsn, pasid, ats, pri). */
  readonly ext?: readonly (FakeExtCapName | FakeCapSpec)[];
  /** Extended configuration space (4096 bytes); default true. */
  readonly extended?: boolean;
  /** RW1C Status bits already set (e.g. 0x0800 Signaled Target Abort). */
  readonly statusErrors?: number;
  /** A 256-byte I/O BAR at BAR4. */
  readonly ioBar?: boolean;
  /** A 64 KiB expansion ROM. */
  readonly rom?: boolean;
}

export interface FakeWrite {
  readonly offset: number;
  readonly size: AccessSize;
  readonly value: number;
}

export const FAKE_VENDOR_ID = 0xfeed;
export const FAKE_DEVICE_ID = 0x5a5a;
/** Host-assigned addresses the fake's BARs hold after enumeration. */
export const FAKE_BAR0_ADDR = 0x80_0000_0000n; // 64-bit prefetchable, 16 MiB
export const FAKE_BAR0_SIZE = 0x100_0000;
export const FAKE_BAR2_ADDR = 0x1010_0000; // 32-bit, 64 KiB
export const FAKE_BAR2_SIZE = 0x1_0000;
export const FAKE_BAR4_ADDR = 0x2000; // I/O, 256 bytes
export const FAKE_ROM_ADDR = 0x1020_0000; // 64 KiB
/** Max PASID Width 20, Execute and Privileged supported. */
export const FAKE_PASID_CAP = 0x1406;

const STATUS_W1C = 0xf900;

// ---------------------------------------------------------------- capability builders

const hdr = (init: number): FakeReg => ({ off: 0, size: 2, init }); // std ID + next (next patched in)

export const FAKE_STD_CAPS: Readonly<Record<FakeStdCapName, FakeCapSpec>> = {
  pm: {
    name: 'pm',
    id: PCI_CAP_ID_PM,
    size: 8,
    regs: [
      hdr(PCI_CAP_ID_PM),
      { off: 2, size: 2, init: 0x0003 }, // PMC: version 3
      { off: 4, size: 2, init: 0x0008, rw: 0x0103, w1c: 0x8000 }, // PMCSR: No_Soft_Reset; state, PME_En; PME_Status
    ],
  },
  msix: {
    name: 'msix',
    id: PCI_CAP_ID_MSIX,
    size: 12,
    regs: [
      hdr(PCI_CAP_ID_MSIX),
      { off: 2, size: 2, init: 0x000f, rw: 0xc000 }, // 16 vectors; Enable, Function Mask
      { off: 4, size: 4, init: 0x0000_0002 }, // table: BAR2 + 0
      { off: 8, size: 4, init: 0x0000_0802 }, // PBA: BAR2 + 0x800
    ],
  },
  exp: {
    name: 'exp',
    id: PCI_CAP_ID_EXP,
    size: 0x3c,
    regs: [
      hdr(PCI_CAP_ID_EXP),
      { off: 0x02, size: 2, init: 0x0002 }, // v2, endpoint
      { off: 0x04, size: 4, init: 0x1000_8001 }, // DEVCAP: FLR, RBER, MPS 256
      { off: 0x08, size: 2, init: 0x2810, rw: 0x7fff }, // DEVCTL: MRRS 512, no-snoop, relaxed ordering
      { off: 0x0a, size: 2, init: 0x0000, w1c: 0x000f }, // DEVSTA
      { off: 0x0c, size: 4, init: 0x0000_0c41 }, // LNKCAP
      { off: 0x10, size: 2, init: 0x0000, rw: 0x0fcb }, // LNKCTL
      { off: 0x12, size: 2, init: 0x1041 }, // LNKSTA
      { off: 0x24, size: 4, init: 0x0000_0010 }, // DEVCAP2
      { off: 0x28, size: 2, init: 0x0000, rw: 0x043f }, // DEVCTL2
      { off: 0x2c, size: 4, init: 0x0000_000e }, // LNKCAP2
      { off: 0x30, size: 2, init: 0x0003, rw: 0x03ff }, // LNKCTL2
    ],
  },
  msi: {
    name: 'msi',
    id: PCI_CAP_ID_MSI,
    size: 24,
    regs: [
      hdr(PCI_CAP_ID_MSI),
      { off: 2, size: 2, init: 0x0184, rw: 0x0071 }, // 64-bit, per-vector mask, 4 vectors capable
      { off: 4, size: 4, init: 0, rw: 0xffff_fffc },
      { off: 8, size: 4, init: 0, rw: 0xffff_ffff },
      { off: 12, size: 2, init: 0, rw: 0xffff },
      { off: 16, size: 4, init: 0, rw: 0x0000_000f },
      { off: 20, size: 4, init: 0 },
    ],
  },
  vndr: {
    name: 'vndr',
    id: PCI_CAP_ID_VNDR,
    size: 16,
    regs: [
      hdr(PCI_CAP_ID_VNDR),
      { off: 2, size: 1, init: 16 }, // length
      { off: 4, size: 4, init: 0x1234_5678, rw: 0xffff_ffff },
      { off: 8, size: 4, init: 0 },
    ],
  },
  af: {
    name: 'af',
    id: PCI_CAP_ID_AF,
    size: 6,
    regs: [
      hdr(PCI_CAP_ID_AF),
      { off: 2, size: 1, init: 6 }, // length
      { off: 3, size: 1, init: 0x03 }, // TP, FLR supported
      { off: 4, size: 1, init: 0 }, // control: writing FLR resets the function
      { off: 5, size: 1, init: 0 },
    ],
  },
};

const ext = (
  name: string,
  id: number,
  version: number,
  size: number,
  regs: readonly FakeReg[],
): FakeCapSpec => ({
  name,
  id,
  version,
  size,
  regs,
});

export const FAKE_EXT_CAPS: Readonly<Record<FakeExtCapName, FakeCapSpec>> = {
  aer: ext('aer', PCI_EXT_CAP_ID_ERR, 2, 0x48, [
    { off: 0x04, size: 4, init: 0, w1c: 0x03ff_f031 }, // uncorrectable status
    { off: 0x08, size: 4, init: 0, rw: 0x03ff_f031 }, // uncorrectable mask
    { off: 0x0c, size: 4, init: 0x0046_2030, rw: 0x03ff_f031 }, // severity
    { off: 0x10, size: 4, init: 0, w1c: 0x0000_f1c1 }, // correctable status
    { off: 0x14, size: 4, init: 0x0000_2000, rw: 0x0000_f1c1 }, // correctable mask
    { off: 0x18, size: 4, init: 0x0000_00a0, rw: 0x0000_0140 }, // ECRC capable; enables
    { off: 0x1c, size: 4, init: 0x4a00_0001 }, // header log
  ]),
  dsn: ext('dsn', PCI_EXT_CAP_ID_DSN, 1, 12, [
    { off: 4, size: 4, init: 0x89ab_cdef },
    { off: 8, size: 4, init: 0x0123_4567 },
  ]),
  pasid: ext('pasid', PCI_EXT_CAP_ID_PASID, 1, 8, [
    { off: 4, size: 2, init: FAKE_PASID_CAP },
    { off: 6, size: 2, init: 0, rw: 0x0007 }, // Enable, Execute, Privileged
  ]),
  ats: ext('ats', PCI_EXT_CAP_ID_ATS, 1, 8, [
    { off: 4, size: 2, init: 0x0020 }, // page aligned
    { off: 6, size: 2, init: 0, rw: 0x801f }, // Enable, STU
  ]),
  pri: ext('pri', PCI_EXT_CAP_ID_PRI, 1, 16, [
    { off: 4, size: 2, init: 0, rw: 0x0001 }, // Enable
    { off: 6, size: 2, init: 0x0100, w1c: 0x0003 }, // Stopped; RF, UPRGI
    { off: 8, size: 4, init: 0x0000_0100 }, // outstanding requests capacity
    { off: 12, size: 4, init: 0, rw: 0xffff_ffff }, // allocation
  ]),
  ltr: ext('ltr', PCI_EXT_CAP_ID_LTR, 1, 8, [
    { off: 4, size: 2, init: 0, rw: 0x1fff },
    { off: 6, size: 2, init: 0, rw: 0x1fff },
  ]),
  secpci: ext('secpci', PCI_EXT_CAP_ID_SECPCI, 1, 16, [{ off: 4, size: 4, init: 0, rw: 0x3 }]),
  // DPC (0x1D): no entry in vfio's table, hidden.
  dpc: ext('dpc', 0x1d, 1, 16, [{ off: 6, size: 2, init: 0, rw: 0x000b }]),
  vsec: ext('vsec', PCI_EXT_CAP_ID_VNDR, 1, 0x18, [
    { off: 4, size: 4, init: (0x18 << 20) | 0x0001 }, // VSEC ID 1, rev 0, length 0x18
    { off: 8, size: 4, init: 0xcafe_f00d, rw: 0xffff_ffff },
  ]),
  // An ID beyond vfio's table (0x30): hidden.
  unknown: ext('unknown', 0x30, 1, 8, [{ off: 4, size: 4, init: 0x5555_aaaa, rw: 0xffff_ffff }]),
};

// ---------------------------------------------------------------- the device

/** A fake PCIe function's configuration space (see the file comment). */
export class FakePciDevice implements PciConfigPort {
  readonly configSize: number;
  /** Every write that reached the device, in order. */
  readonly writes: FakeWrite[] = [];
  /** Where each capability landed, by name (standard and extended). */
  readonly capOffsets = new Map<string, number>();
  /** Reads that reached the device, recorded while `recordReads` is set. */
  readonly reads: { readonly offset: number; readonly size: AccessSize }[] = [];
  recordReads = false;
  /** Function resets performed (FLR). */
  resets = 0;
  readonly #bytes: Uint8Array;
  readonly #rw: Uint8Array;
  readonly #w1c: Uint8Array;
  readonly #powerOn: Uint8Array;
  #expDevctl = -1;
  #afCtrl = -1;

  constructor(options: FakePciDeviceOptions = {}) {
    this.configSize = (options.extended ?? true) ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
    this.#bytes = new Uint8Array(this.configSize);
    this.#rw = new Uint8Array(this.configSize);
    this.#w1c = new Uint8Array(this.configSize);
    this.#buildHeader(options);
    this.#placeStd(options.std ?? ['pm', 'msix', 'exp']);
    if (this.configSize > PCI_CFG_SPACE_SIZE)
      this.#placeExt(options.ext ?? ['aer', 'dsn', 'pasid', 'ats', 'pri']);
    this.#powerOn = this.#bytes.slice();
    this.#enumerate(options);
  }

  configRead(offset: number, size: AccessSize): number {
    this.#check(offset, size);
    if (this.recordReads) this.reads.push({ offset, size });
    return this.peek(offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    this.#check(offset, size);
    this.writes.push({ offset, size, value: value >>> 0 });
    let flr = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const v = (value >>> (8 * i)) & 0xff;
      if (o === this.#expDevctl + 1 && v & (PCI_EXP_DEVCTL_BCR_FLR >>> 8)) flr = true;
      if (o === this.#afCtrl && v & 0x01) flr = true;
      const old = this.#bytes[o]!;
      const rw = this.#rw[o]!;
      this.#bytes[o] = ((old & ~rw) | (v & rw)) & ~(v & this.#w1c[o]!) & 0xff;
    }
    if (flr) this.flr();
  }

  /** The device's current value, without logging. */
  peek(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= (this.#bytes[offset + i] ?? 0) << (8 * i);
    return v >>> 0;
  }

  /** A copy of the whole configuration space. */
  snapshot(): Uint8Array {
    return this.#bytes.slice();
  }

  /** Sets bytes as the device itself would (status changes, state), bypassing write masks. */
  poke(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.#bytes[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  /** Read/write bits of the byte at `offset`. */
  rwMask(offset: number): number {
    return this.#rw[offset] ?? 0;
  }

  /** Write-1-to-clear bits of the byte at `offset`. */
  w1cMask(offset: number): number {
    return this.#w1c[offset] ?? 0;
  }

  /** Function Level Reset: back to the power-on state (BARs 0, Command 0, control defaults). */
  flr(): void {
    this.#bytes.set(this.#powerOn);
    this.resets++;
  }

  /** Where a capability is (throws if the fake has none of that name: a test error). */
  offsetOf(name: string): number {
    const o = this.capOffsets.get(name);
    if (o === undefined) throw new Error(`fake device has no capability ${name}`);
    return o;
  }

  #check(offset: number, size: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.configSize || offset % size !== 0) {
      throw new Error(`fake device: bad config access ${size}@${offset}`);
    }
  }

  #reg(base: number, r: FakeReg): void {
    for (let i = 0; i < r.size; i++) {
      const o = base + r.off + i;
      this.#bytes[o] = (r.init >>> (8 * i)) & 0xff;
      this.#rw[o] = ((r.rw ?? 0) >>> (8 * i)) & 0xff;
      this.#w1c[o] = ((r.w1c ?? 0) >>> (8 * i)) & 0xff;
    }
  }

  #buildHeader(o: FakePciDeviceOptions): void {
    const regs: FakeReg[] = [
      { off: 0x00, size: 2, init: FAKE_VENDOR_ID },
      { off: 0x02, size: 2, init: FAKE_DEVICE_ID },
      { off: 0x04, size: 2, init: 0, rw: 0x0546 | (o.ioBar ? 0x0001 : 0) },
      { off: 0x06, size: 2, init: 0x0010, w1c: STATUS_W1C },
      { off: 0x08, size: 4, init: 0x1200_0001 }, // class 12 (accelerator), revision 1
      { off: 0x0c, size: 1, init: 0, rw: 0xff }, // cache line size
      { off: 0x10, size: 4, init: 0x0000_000c, rw: (~(FAKE_BAR0_SIZE - 1) & 0xffff_fff0) >>> 0 },
      { off: 0x14, size: 4, init: 0, rw: 0xffff_ffff },
      { off: 0x18, size: 4, init: 0, rw: (~(FAKE_BAR2_SIZE - 1) & 0xffff_fff0) >>> 0 },
      { off: 0x2c, size: 2, init: FAKE_VENDOR_ID },
      { off: 0x2e, size: 2, init: 0x0001 },
      { off: 0x3c, size: 1, init: 0, rw: 0xff },
      { off: 0x3d, size: 1, init: 1 }, // INTA
    ];
    if (o.ioBar) regs.push({ off: 0x20, size: 4, init: 0x0000_0001, rw: 0xffff_ff00 });
    if (o.rom) regs.push({ off: 0x30, size: 4, init: 0, rw: 0xffff_0001 });
    for (const r of regs) this.#reg(0, r);
  }

  #placeStd(caps: readonly (FakeStdCapName | FakeCapSpec)[]): void {
    let pos = 0x40;
    let prevNext = 0x34;
    for (const c of caps) {
      const spec = typeof c === 'string' ? FAKE_STD_CAPS[c] : c;
      if (pos + spec.size > PCI_CFG_SPACE_SIZE)
        throw new Error('fake device: standard capabilities do not fit');
      for (const r of spec.regs) this.#reg(pos, r);
      this.#bytes[pos] = spec.id;
      this.#bytes[prevNext] = pos;
      prevNext = pos + 1;
      this.capOffsets.set(spec.name, pos);
      if (spec.id === PCI_CAP_ID_EXP) this.#expDevctl = pos + PCI_EXP_DEVCTL;
      if (spec.id === PCI_CAP_ID_AF) this.#afCtrl = pos + 4;
      pos += (spec.size + 15) & ~15;
    }
    this.#bytes[prevNext] = 0;
    if (caps.length === 0) this.#bytes[0x06] = (this.#bytes[0x06] ?? 0) & ~0x10;
  }

  #placeExt(caps: readonly (FakeExtCapName | FakeCapSpec)[]): void {
    let pos = PCI_EXT_CAP_START;
    const specs = caps.map((c) => (typeof c === 'string' ? FAKE_EXT_CAPS[c] : c));
    specs.forEach((spec, i) => {
      const size = (spec.size + 7) & ~7;
      const next = i + 1 < specs.length ? pos + size : 0;
      if (pos + spec.size > this.configSize) throw new Error('fake device: extended capabilities do not fit');
      for (const r of spec.regs) this.#reg(pos, r);
      this.poke(pos, 4, pciExtCapHeader(spec.id, spec.version ?? 1, next));
      this.capOffsets.set(spec.name, pos);
      pos = next;
    });
  }

  /** What the host PCI core left: BARs assigned, memory decode and bus mastering on, status bits. */
  #enumerate(o: FakePciDeviceOptions): void {
    this.poke(0x10, 4, Number(FAKE_BAR0_ADDR & 0xffff_fff0n) | 0x0c);
    this.poke(0x14, 4, Number(FAKE_BAR0_ADDR >> 32n));
    this.poke(0x18, 4, FAKE_BAR2_ADDR);
    if (o.ioBar) this.poke(0x20, 4, FAKE_BAR4_ADDR | 1);
    if (o.rom) this.poke(0x30, 4, FAKE_ROM_ADDR);
    this.poke(0x04, 2, 0x0006 | (o.ioBar ? 1 : 0));
    this.poke(0x06, 2, this.peek(0x06, 2) | ((o.statusErrors ?? 0) & STATUS_W1C));
  }
}

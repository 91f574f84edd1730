/**
 * PCI enumeration over ECAM (PCI Firmware spec §4.1, PCIe Base §7.2.2: configuration address =
 * ECAM base + bus << 20 | device << 15 | function << 12 | register), as Linux's pci_scan_root_bus
 * does for a generic ECAM host bridge: probe every device number of the root bus (functions 1-7
 * only of multi-function devices), read IDs and class, size and assign the memory BARs from the
 * bridge's MMIO window, enable Memory Space and Bus Master, and walk the capability list (PCI
 * Local Bus §6.7; MSI-X §6.8.2) and the extended capability list from 0x100 (PCIe Base §7.6;
 * PASID §7.8.8). Every access is an MMIO trap; the VMM presents the assigned device's config
 * space behind these addresses.
 *
 * Decisions: only the root bus (`busRange[0]`) is scanned — the virt machine has no bridges, and a
 * type 1 header is recorded but not followed; BARs are assigned first-fit upward from the window
 * base, naturally aligned; I/O BARs are recorded and left unassigned (the window is memory only);
 * a function whose BARs do not fit keeps Memory Space disabled. Walks are bounded (48 standard and
 * 960 extended capabilities), so a looping list ends the walk rather than the guest.
 */

import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAP_ID_MSIX,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_NEXT,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MFD,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PASID_CAP,
  PCI_PASID_CAP_EXEC,
  PCI_PASID_CAP_PRIV,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
  PCI_PASID_CTRL_EXEC,
  PCI_PASID_CTRL_PRIV,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_NUM_BARS,
} from '../hw/pci/regs.ts';
import type { Range } from './dt.ts';
import { type Guest, mmioRead, mmioWrite } from './trap.ts';

export interface PciBar {
  readonly index: number;
  readonly is64: boolean;
  readonly io: boolean;
  readonly prefetch: boolean;
  readonly size: number;
  /** Assigned guest-physical address, or -1 (I/O BAR, or no room in the window). */
  readonly addr: number;
}

export interface MsixInfo {
  readonly cap: number;
  readonly vectors: number;
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
}

export interface PasidInfo {
  readonly cap: number;
  /** Max PASID Width (0..20). */
  readonly width: number;
  readonly exec: boolean;
  readonly priv: boolean;
}

/** One enumerated function. */
export interface PciFunction {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  /** Requester ID; the StreamID too (the DT's iommu-map is the identity). */
  readonly rid: number;
  readonly name: string;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly revision: number;
  readonly headerType: number;
  readonly bars: readonly PciBar[];
  readonly caps: readonly { readonly id: number; readonly offset: number }[];
  readonly extCaps: readonly { readonly id: number; readonly offset: number }[];
  readonly msix: MsixInfo | undefined;
  readonly pasid: PasidInfo | undefined;
  /** Command register as left by enumeration. */
  readonly command: number;
}

/** Configuration-space access to functions behind one ECAM window. */
export class Ecam {
  readonly base: number;
  constructor(base: number) {
    this.base = base;
  }
  addr(bus: number, dev: number, fn: number, reg: number): number {
    return this.base + ((bus << 20) | (dev << 15) | (fn << 12) | (reg & 0xfff));
  }
  read(f: { bus: number; dev: number; fn: number }, reg: number, size: 1 | 2 | 4): Guest<number> {
    return mmioRead(this.addr(f.bus, f.dev, f.fn, reg), size);
  }
  write(f: { bus: number; dev: number; fn: number }, reg: number, size: 1 | 2 | 4, v: number): Guest<void> {
    return mmioWrite(this.addr(f.bus, f.dev, f.fn, reg), v >>> 0, size);
  }
}

/** First-fit, naturally aligned assignment inside the host bridge's MMIO window. */
export class MmioWindow {
  private next: number;
  readonly end: number;
  constructor(w: Range) {
    this.next = w.base;
    this.end = w.base + w.size;
  }
  take(size: number): number {
    const at = Math.ceil(this.next / size) * size;
    if (at + size > this.end) return -1;
    this.next = at + size;
    return at;
  }
}

const MAX_CAPS = 48;
const MAX_EXT_CAPS = 960;

function* sizeBars(
  ecam: Ecam,
  f: { bus: number; dev: number; fn: number },
  win: MmioWindow,
): Guest<PciBar[]> {
  const bars: PciBar[] = [];
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const reg = PCI_BASE_ADDRESS_0 + 4 * i;
    const orig = yield* ecam.read(f, reg, 4);
    yield* ecam.write(f, reg, 4, 0xffff_ffff);
    const lo = yield* ecam.read(f, reg, 4);
    yield* ecam.write(f, reg, 4, orig);
    if (lo === 0 || lo === 0xffff_ffff) continue;
    if ((lo & PCI_BASE_ADDRESS_SPACE_IO) !== 0) {
      const size = (~(lo & ~0x3) >>> 0) + 1;
      bars.push({ index: i, is64: false, io: true, prefetch: false, size: size & 0xffff, addr: -1 });
      continue;
    }
    const is64 = (lo & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < PCI_STD_NUM_BARS;
    let hiMask = 0xffff_ffff;
    if (is64) {
      const origHi = yield* ecam.read(f, reg + 4, 4);
      yield* ecam.write(f, reg + 4, 4, 0xffff_ffff);
      hiMask = yield* ecam.read(f, reg + 4, 4);
      yield* ecam.write(f, reg + 4, 4, origHi);
    }
    const loMask = (lo & 0xffff_fff0) >>> 0;
    // Size = two's complement of the mask over the implemented bits (64 bits for a 64-bit BAR).
    const size =
      is64 && hiMask !== 0xffff_ffff ? (0x1_0000_0000 - hiMask) * 0x1_0000_0000 : 0x1_0000_0000 - loMask;
    const addr = size <= win.end ? win.take(size) : -1;
    if (addr >= 0) {
      yield* ecam.write(f, reg, 4, addr % 0x1_0000_0000);
      if (is64) yield* ecam.write(f, reg + 4, 4, Math.floor(addr / 0x1_0000_0000));
    }
    bars.push({ index: i, is64, io: false, prefetch: (lo & 0x8) !== 0, size, addr });
    if (is64) i++;
  }
  return bars;
}

function* walkCaps(
  ecam: Ecam,
  f: { bus: number; dev: number; fn: number },
): Guest<{ id: number; offset: number }[]> {
  const out: { id: number; offset: number }[] = [];
  const status = yield* ecam.read(f, PCI_STATUS, 2);
  if ((status & PCI_STATUS_CAP_LIST) === 0) return out;
  let off = (yield* ecam.read(f, PCI_CAPABILITY_LIST, 1)) & 0xfc;
  for (let n = 0; off >= 0x40 && n < MAX_CAPS; n++) {
    const hdr = yield* ecam.read(f, off, 2);
    out.push({ id: hdr & 0xff, offset: off });
    off = (hdr >>> 8) & 0xfc;
  }
  return out;
}

function* walkExtCaps(
  ecam: Ecam,
  f: { bus: number; dev: number; fn: number },
): Guest<{ id: number; offset: number }[]> {
  const out: { id: number; offset: number }[] = [];
  let off = 0x100;
  for (let n = 0; off >= 0x100 && n < MAX_EXT_CAPS; n++) {
    const hdr = yield* ecam.read(f, off, 4);
    if (hdr === 0 || hdr === 0xffff_ffff) break;
    out.push({ id: PCI_EXT_CAP_ID(hdr), offset: off });
    off = PCI_EXT_CAP_NEXT(hdr);
  }
  return out;
}

function* readMsix(ecam: Ecam, f: { bus: number; dev: number; fn: number }, cap: number): Guest<MsixInfo> {
  const flags = yield* ecam.read(f, cap + PCI_MSIX_FLAGS, 2);
  const table = yield* ecam.read(f, cap + PCI_MSIX_TABLE, 4);
  const pba = yield* ecam.read(f, cap + PCI_MSIX_PBA, 4);
  return {
    cap,
    vectors: (flags & PCI_MSIX_FLAGS_QSIZE) + 1,
    tableBar: table & 7,
    tableOffset: (table & ~7) >>> 0,
    pbaBar: pba & 7,
    pbaOffset: (pba & ~7) >>> 0,
  };
}

function* readPasid(ecam: Ecam, f: { bus: number; dev: number; fn: number }, cap: number): Guest<PasidInfo> {
  const c = yield* ecam.read(f, cap + PCI_PASID_CAP, 2);
  return {
    cap,
    width: (c >>> 8) & 0x1f,
    exec: (c & PCI_PASID_CAP_EXEC) !== 0,
    priv: (c & PCI_PASID_CAP_PRIV) !== 0,
  };
}

function bdfName(bus: number, dev: number, fn: number): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `0000:${h(bus, 2)}:${h(dev, 2)}.${fn}`;
}

function* probeFunction(
  ecam: Ecam,
  bus: number,
  dev: number,
  fn: number,
  win: MmioWindow,
): Guest<PciFunction | undefined> {
  const f = { bus, dev, fn };
  const ids = yield* ecam.read(f, 0, 4);
  if ((ids & 0xffff) === 0xffff || ids === 0) return undefined;
  const classRev = yield* ecam.read(f, PCI_REVISION_ID, 4);
  const headerType = yield* ecam.read(f, PCI_HEADER_TYPE, 1);
  // Decode off while the BARs move (as Linux does around sizing).
  const cmd0 = yield* ecam.read(f, PCI_COMMAND, 2);
  yield* ecam.write(f, PCI_COMMAND, 2, cmd0 & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
  const bars = (headerType & 0x7f) === 0 ? yield* sizeBars(ecam, f, win) : [];
  const memBars = bars.filter((b) => !b.io);
  const placed = memBars.length > 0 && memBars.every((b) => b.addr >= 0);
  const command = placed ? (cmd0 | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER) & 0xffff : cmd0 & 0xffff;
  yield* ecam.write(f, PCI_COMMAND, 2, command);
  const caps = yield* walkCaps(ecam, f);
  const extCaps = yield* walkExtCaps(ecam, f);
  const msixCap = caps.find((c) => c.id === PCI_CAP_ID_MSIX);
  const pasidCap = extCaps.find((c) => c.id === PCI_EXT_CAP_ID_PASID);
  return {
    bus,
    dev,
    fn,
    rid: (bus << 8) | (dev << 3) | fn,
    name: bdfName(bus, dev, fn),
    vendorId: ids & 0xffff,
    deviceId: ids >>> 16,
    classCode: classRev >>> 8,
    revision: classRev & 0xff,
    headerType,
    bars,
    caps,
    extCaps,
    msix: msixCap ? yield* readMsix(ecam, f, msixCap.offset) : undefined,
    pasid: pasidCap ? yield* readPasid(ecam, f, pasidCap.offset) : undefined,
    command,
  };
}

/** Scans the root bus; returns the functions found, in BDF order. */
export function* enumeratePci(ecam: Ecam, rootBus: number, window: Range): Guest<PciFunction[]> {
  const win = new MmioWindow(window);
  const out: PciFunction[] = [];
  for (let dev = 0; dev < 32; dev++) {
    const f0 = yield* probeFunction(ecam, rootBus, dev, 0, win);
    if (f0 === undefined) continue;
    out.push(f0);
    if ((f0.headerType & PCI_HEADER_TYPE_MFD) === 0) continue;
    for (let fn = 1; fn < 8; fn++) {
      const f = yield* probeFunction(ecam, rootBus, dev, fn, win);
      if (f !== undefined) out.push(f);
    }
  }
  return out;
}

/** Enables PASID with the Execute/Privileged features the function supports (pci_enable_pasid). */
export function* enablePasid(ecam: Ecam, f: PciFunction): Guest<boolean> {
  if (f.pasid === undefined) return false;
  let ctrl = PCI_PASID_CTRL_ENABLE;
  if (f.pasid.exec) ctrl |= PCI_PASID_CTRL_EXEC;
  if (f.pasid.priv) ctrl |= PCI_PASID_CTRL_PRIV;
  yield* ecam.write(f, f.pasid.cap + PCI_PASID_CTRL, 2, ctrl);
  const back = yield* ecam.read(f, f.pasid.cap + PCI_PASID_CTRL, 2);
  return (back & PCI_PASID_CTRL_ENABLE) !== 0;
}

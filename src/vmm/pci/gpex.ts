/**
 * The generic PCIe host bridge of the virt machine (QEMU's gpex; the device tree's
 * "pci-host-ecam-generic"): a root bus (PCIe, bus 0), the ECAM window through which the guest
 * reaches every function's configuration space, and the MMIO window in which the guest places
 * BARs. Addresses come from `src/arch/virt.ts`.
 *
 * ECAM (PCIe Base 7.2.2): offset = bus << 20 | devfn << 12 | register. Bus 0 is the root bus; a
 * higher bus number is reached through the bridge whose [secondary, subordinate] range holds it
 * (as a type-1 configuration request travels). A function that is absent reads all-ones and its
 * writes are dropped; accesses of 1, 2 or 4 naturally aligned bytes go to the function's own
 * semantics. Decision: an 8-byte access is split into two 4-byte accesses, as QEMU's memory core
 * does for a region with a 4-byte maximum (an 8-byte all-ones reads as 2^53 - 1: vsva values stay
 * below 2^53).
 *
 * MMIO window: an access at window offset `o` is guest-physical VIRT_PCIE_MMIO + o; it goes to the
 * BAR that decodes that address on the root bus (memory decoding on), or through a bridge whose
 * memory window holds it (memory decoding on in the bridge) to the BAR below. Unclaimed reads
 * return all-ones and unclaimed writes are dropped (a master abort), and both are counted.
 */

import type { MmioSize } from '../../arch/guest-cpu.ts';
import { VIRT_PCIE_ECAM_SIZE, VIRT_PCIE_MMIO, VIRT_PCIE_MMIO_SIZE } from '../../arch/virt.ts';
import type { AccessSize } from '../../hw/pci/regs.ts';
import type { MmioOps } from '../memory.ts';
import { PCIBridge } from './bridge.ts';
import { PCIBus } from './bus.ts';
import { mmioAllOnes, type PCIBar, type PCIDevice } from './device.ts';

export interface GpexStats {
  ecamReads: number;
  ecamWrites: number;
  /** ECAM accesses to an absent function (all-ones / dropped). */
  ecamAbsent: number;
  /** Misaligned or wrong-size ECAM accesses (all-ones / dropped). */
  ecamBad: number;
  mmioReads: number;
  mmioWrites: number;
  /** MMIO accesses no BAR claimed. */
  mmioUnclaimed: number;
}

/** A decoded ECAM offset. */
export interface EcamAddress {
  readonly bus: number;
  readonly devfn: number;
  readonly reg: number;
}

export function ecamDecode(offset: number): EcamAddress {
  return { bus: Math.floor(offset / 2 ** 20) & 0xff, devfn: (offset >>> 12) & 0xff, reg: offset & 0xfff };
}

export function ecamOffset(bus: number, devfn: number, reg: number): number {
  return (bus & 0xff) * 2 ** 20 + ((devfn & 0xff) << 12) + (reg & 0xfff);
}

export class GpexHost {
  readonly root: PCIBus;
  readonly mmioBase: number;
  readonly mmioSize: number;
  readonly stats: GpexStats = {
    ecamReads: 0,
    ecamWrites: 0,
    ecamAbsent: 0,
    ecamBad: 0,
    mmioReads: 0,
    mmioWrites: 0,
    mmioUnclaimed: 0,
  };
  /** The ECAM window's registers (offsets relative to VIRT_PCIE_ECAM). */
  readonly ecam: MmioOps;
  /** The MMIO window's registers (offsets relative to `mmioBase`). */
  readonly mmio: MmioOps;

  constructor(opts: { name?: string; mmioBase?: number; mmioSize?: number } = {}) {
    this.root = new PCIBus(opts.name ?? 'pcie.0', { express: true });
    this.mmioBase = opts.mmioBase ?? VIRT_PCIE_MMIO;
    this.mmioSize = opts.mmioSize ?? VIRT_PCIE_MMIO_SIZE;
    this.ecam = { read: (o, s) => this.ecamRead(o, s), write: (o, s, v) => this.ecamWrite(o, s, v) };
    this.mmio = { read: (o, s) => this.mmioRead(o, s), write: (o, s, v) => this.mmioWrite(o, s, v) };
  }

  // ------------------------------------------------------------ configuration routing

  /** The bus the guest numbered `n` (0: the root bus), following bridges' bus ranges. */
  findBus(n: number): PCIBus | undefined {
    let bus: PCIBus = this.root;
    // Bounded by the 256 bus numbers.
    for (let depth = 0; depth < 256; depth++) {
      if (bus.busNumber() === n) return bus;
      const next = bus.devices().find((d): d is PCIBridge => d instanceof PCIBridge && d.routesBus(n));
      if (next === undefined) return undefined;
      bus = next.secondary;
    }
    return undefined;
  }

  /** The function at ECAM (bus, devfn), if present. */
  findDevice(bus: number, devfn: number): PCIDevice | undefined {
    return this.findBus(bus)?.device(devfn);
  }

  ecamRead(offset: number, size: MmioSize): number {
    if (size === 8) {
      const lo = this.ecamRead(offset, 4);
      const hi = this.ecamRead(offset + 4, 4);
      return Math.min(hi * 2 ** 32 + lo, Number.MAX_SAFE_INTEGER);
    }
    this.stats.ecamReads++;
    if (!this.validEcam(offset, size)) return mmioAllOnes(size);
    const a = ecamDecode(offset);
    const dev = this.findDevice(a.bus, a.devfn);
    if (dev === undefined || a.reg + size > dev.configSize) {
      this.stats.ecamAbsent++;
      return mmioAllOnes(size);
    }
    return dev.configRead(a.reg, size as AccessSize);
  }

  ecamWrite(offset: number, size: MmioSize, value: number): void {
    if (size === 8) {
      this.ecamWrite(offset, 4, value % 2 ** 32);
      this.ecamWrite(offset + 4, 4, Math.floor(value / 2 ** 32));
      return;
    }
    this.stats.ecamWrites++;
    if (!this.validEcam(offset, size)) return;
    const a = ecamDecode(offset);
    const dev = this.findDevice(a.bus, a.devfn);
    if (dev === undefined || a.reg + size > dev.configSize) {
      this.stats.ecamAbsent++;
      return;
    }
    dev.configWrite(a.reg, size as AccessSize, value >>> 0);
  }

  private validEcam(offset: number, size: number): boolean {
    const ok =
      Number.isInteger(offset) &&
      offset >= 0 &&
      offset + size <= VIRT_PCIE_ECAM_SIZE &&
      (size === 1 || size === 2 || size === 4) &&
      offset % size === 0;
    if (!ok) this.stats.ecamBad++;
    return ok;
  }

  // ------------------------------------------------------------ MMIO routing

  /** The BAR that decodes guest-physical `gpa`, searching `bus` and the buses bridges forward to. */
  resolve(gpa: number, bus: PCIBus = this.root): { dev: PCIDevice; bar: PCIBar; offset: number } | undefined {
    for (const dev of bus.devices()) {
      if (dev instanceof PCIBridge) {
        if (dev.forwardsMemory(gpa)) {
          const r = this.resolve(gpa, dev.secondary);
          if (r !== undefined) return r;
        }
        continue;
      }
      const hit = dev.barAt(gpa);
      if (hit !== undefined) return { dev, bar: hit.bar, offset: hit.offset };
    }
    return undefined;
  }

  mmioRead(offset: number, size: MmioSize): number {
    this.stats.mmioReads++;
    const hit = this.inWindow(offset, size) ? this.resolve(this.mmioBase + offset) : undefined;
    if (hit === undefined || hit.offset + size > hit.bar.size) {
      this.stats.mmioUnclaimed++;
      return mmioAllOnes(size);
    }
    return hit.bar.ops.read(hit.offset, size);
  }

  mmioWrite(offset: number, size: MmioSize, value: number): void {
    this.stats.mmioWrites++;
    const hit = this.inWindow(offset, size) ? this.resolve(this.mmioBase + offset) : undefined;
    if (hit === undefined || hit.offset + size > hit.bar.size) {
      this.stats.mmioUnclaimed++;
      return;
    }
    hit.bar.ops.write(hit.offset, size, value);
  }

  private inWindow(offset: number, size: number): boolean {
    return Number.isInteger(offset) && offset >= 0 && offset + size <= this.mmioSize;
  }
}

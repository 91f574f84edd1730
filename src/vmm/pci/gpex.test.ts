/**
 * The generic PCIe host bridge: ECAM decoding (bus << 20 | devfn << 12 | reg), bus routing through
 * bridges' bus-number registers, all-ones for absent functions, BAR sizing and placement through
 * ECAM, and the MMIO window routing to BARs (memory decoding, bridge windows).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MmioSize } from '../../arch/guest-cpu.ts';
import { VIRT_PCIE_MMIO } from '../../arch/virt.ts';
import { PCI_BASE_ADDRESS_0, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_VENDOR_ID } from '../../hw/pci/regs.ts';
import type { MmioOps } from '../memory.ts';
import {
  PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT,
  PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32,
  PCI_PREF_MEMORY_BASE,
  PCI_PREF_MEMORY_LIMIT,
  PCI_PRIMARY_BUS,
  PCI_SECONDARY_BUS,
  PCI_SUBORDINATE_BUS,
  PCIBridge,
} from './bridge.ts';
import { PCI_DEVFN, PCIDevice } from './device.ts';
import { ecamDecode, ecamOffset, GpexHost } from './gpex.ts';

/** A device whose BAR0 (4 KiB) records accesses and reads back offset + 1. */
function recorder(name: string, deviceId: number): { dev: PCIDevice; log: string[] } {
  const log: string[] = [];
  const ops: MmioOps = {
    read: (o, s) => {
      log.push(`r ${o} ${s}`);
      return o + 1;
    },
    write: (o, s, v) => {
      log.push(`w ${o} ${s} ${v}`);
    },
  };
  const dev = new PCIDevice(name, { vendorId: 0x1234, deviceId });
  dev.registerBar(0, 0x1000, ops);
  dev.registerBar(2, 0x4000, ops, { is64: true, prefetchable: true });
  dev.config.seal();
  return { dev, log };
}

const cfgW = (g: GpexHost, bus: number, devfn: number, reg: number, size: MmioSize, v: number): void =>
  g.ecam.write(ecamOffset(bus, devfn, reg), size, v);
const cfgR = (g: GpexHost, bus: number, devfn: number, reg: number, size: MmioSize): number =>
  g.ecam.read(ecamOffset(bus, devfn, reg), size);

describe('ECAM', () => {
  it('decodes bus/devfn/register and reaches the function; absent functions read all-ones', () => {
    const g = new GpexHost();
    const { dev } = recorder('a', 0x11);
    expect(dev.realizeOn(g.root, PCI_DEVFN(2, 0))).toBe(0);
    expect(cfgR(g, 0, PCI_DEVFN(2, 0), PCI_VENDOR_ID, 4)).toBe(0x0011_1234);
    expect(cfgR(g, 0, PCI_DEVFN(2, 0), PCI_VENDOR_ID + 2, 2)).toBe(0x11);
    expect(cfgR(g, 0, PCI_DEVFN(2, 0), PCI_VENDOR_ID + 1, 1)).toBe(0x12);
    expect(cfgR(g, 0, PCI_DEVFN(3, 0), PCI_VENDOR_ID, 4)).toBe(0xffff_ffff);
    expect(cfgR(g, 0, PCI_DEVFN(3, 0), PCI_VENDOR_ID, 2)).toBe(0xffff);
    expect(cfgR(g, 7, PCI_DEVFN(2, 0), PCI_VENDOR_ID, 4)).toBe(0xffff_ffff);
    expect(g.stats.ecamAbsent).toBe(3);
    // Misaligned: all-ones, counted.
    expect(g.ecam.read(ecamOffset(0, PCI_DEVFN(2, 0), 1), 2)).toBe(0xffff);
    expect(g.stats.ecamBad).toBe(1);
    // 8 bytes: two 4-byte accesses.
    expect(g.ecam.read(ecamOffset(0, PCI_DEVFN(2, 0), 0), 8)).toBe(
      dev.configRead(4, 4) * 2 ** 32 + 0x0011_1234,
    );
  });

  it('property: ecamOffset and ecamDecode are inverse', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xfff }),
        (b, d, r) => {
          expect(ecamDecode(ecamOffset(b, d, r))).toEqual({ bus: b, devfn: d, reg: r });
        },
      ),
    );
  });

  it('BAR sizing and placement through ECAM; the guest reads the size mask back', () => {
    const g = new GpexHost();
    const { dev } = recorder('a', 0x11);
    dev.realizeOn(g.root, 8);
    cfgW(g, 0, 8, PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    expect(cfgR(g, 0, 8, PCI_BASE_ADDRESS_0, 4)).toBe(0xffff_f000);
    cfgW(g, 0, 8, PCI_BASE_ADDRESS_0 + 8, 4, 0xffff_ffff);
    expect(cfgR(g, 0, 8, PCI_BASE_ADDRESS_0 + 8, 4)).toBe(0xffff_c00c); // 64-bit prefetchable
    cfgW(g, 0, 8, PCI_BASE_ADDRESS_0, 4, VIRT_PCIE_MMIO + 0x2000);
    expect(dev.barAddress(0)).toBe(VIRT_PCIE_MMIO + 0x2000);
  });

  it('buses behind bridges are reached through their secondary/subordinate numbers', () => {
    const g = new GpexHost();
    const rp = new PCIBridge('rp', 'root-port');
    rp.realizeOn(g.root, PCI_DEVFN(1, 0));
    const p2p = new PCIBridge('p2p', 'pcie-pci');
    p2p.realizeOn(rp.secondary, 0);
    const { dev } = recorder('a', 0x22);
    dev.realizeOn(p2p.secondary, PCI_DEVFN(5, 0));
    // Unnumbered: nothing behind the root port is reachable.
    expect(cfgR(g, 1, 0, PCI_VENDOR_ID, 2)).toBe(0xffff);
    // The guest's enumeration numbers the bridges through ECAM.
    cfgW(g, 0, PCI_DEVFN(1, 0), PCI_PRIMARY_BUS, 1, 0);
    cfgW(g, 0, PCI_DEVFN(1, 0), PCI_SECONDARY_BUS, 1, 1);
    cfgW(g, 0, PCI_DEVFN(1, 0), PCI_SUBORDINATE_BUS, 1, 2);
    expect(cfgR(g, 1, 0, PCI_VENDOR_ID, 4)).toBe(p2p.configRead(0, 4));
    cfgW(g, 1, 0, PCI_SECONDARY_BUS, 1, 2);
    cfgW(g, 1, 0, PCI_SUBORDINATE_BUS, 1, 2);
    expect(cfgR(g, 2, PCI_DEVFN(5, 0), PCI_VENDOR_ID, 4)).toBe(0x0022_1234);
    expect(g.findBus(2)).toBe(p2p.secondary);
    expect(cfgR(g, 3, PCI_DEVFN(5, 0), PCI_VENDOR_ID, 4)).toBe(0xffff_ffff);
  });
});

describe('the MMIO window', () => {
  it('routes to the BAR the guest placed while memory decoding is on; unclaimed reads all-ones', () => {
    const g = new GpexHost();
    const { dev, log } = recorder('a', 0x11);
    dev.realizeOn(g.root, 8);
    cfgW(g, 0, 8, PCI_BASE_ADDRESS_0, 4, VIRT_PCIE_MMIO + 0x1000);
    expect(g.mmio.read(0x1010, 4)).toBe(0xffff_ffff); // decoding off
    cfgW(g, 0, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(g.mmio.read(0x1010, 4)).toBe(0x11);
    g.mmio.write(0x1ffc, 4, 7);
    expect(g.mmio.read(0x2000, 4)).toBe(0xffff_ffff);
    g.mmio.write(0x2000, 4, 1);
    // The 64-bit BAR placed high in the window.
    cfgW(g, 0, 8, PCI_BASE_ADDRESS_0 + 8, 4, VIRT_PCIE_MMIO + 0x10_0000);
    expect(g.mmio.read(0x10_0008, 8)).toBe(9);
    expect(log).toEqual(['r 16 4', 'w 4092 4 7', 'r 8 8']);
    expect(g.stats.mmioUnclaimed).toBe(3);
  });

  it('behind a bridge: only inside its memory window (or prefetchable window) with decoding on', () => {
    const g = new GpexHost();
    const rp = new PCIBridge('rp', 'root-port');
    rp.realizeOn(g.root, PCI_DEVFN(1, 0));
    rp.configWrite(PCI_SECONDARY_BUS, 1, 1);
    rp.configWrite(PCI_SUBORDINATE_BUS, 1, 1);
    const { dev, log } = recorder('a', 0x11);
    dev.realizeOn(rp.secondary, 0);
    const bar = VIRT_PCIE_MMIO + 0x20_0000;
    cfgW(g, 1, 0, PCI_BASE_ADDRESS_0, 4, bar);
    cfgW(g, 1, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    // Window closed (base above limit).
    cfgW(g, 0, 8, PCI_MEMORY_BASE, 2, 0xfff0);
    cfgW(g, 0, 8, PCI_MEMORY_LIMIT, 2, 0);
    cfgW(g, 0, 8, PCI_PREF_MEMORY_BASE, 2, 0xfff0);
    cfgW(g, 0, 8, PCI_PREF_MEMORY_LIMIT, 2, 0);
    cfgW(g, 0, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(g.mmio.read(0x20_0000, 4)).toBe(0xffff_ffff);
    // Window [bar, bar + 1 MiB) open, bridge decoding on.
    cfgW(g, 0, 8, PCI_MEMORY_BASE, 2, (bar / 2 ** 16) & 0xfff0);
    cfgW(g, 0, 8, PCI_MEMORY_LIMIT, 2, (bar / 2 ** 16) & 0xfff0);
    expect(rp.memoryWindow()).toEqual({ base: bar, limit: bar + 0xf_ffff });
    expect(g.mmio.read(0x20_0004, 4)).toBe(5);
    cfgW(g, 0, 8, PCI_COMMAND, 2, 0);
    expect(g.mmio.read(0x20_0004, 4)).toBe(0xffff_ffff);
    // The prefetchable window reaches the 64-bit BAR (64-bit window registers).
    cfgW(g, 0, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cfgW(g, 0, 8, PCI_MEMORY_BASE, 2, 0xfff0);
    const pref = VIRT_PCIE_MMIO + 0x40_0000;
    cfgW(g, 1, 0, PCI_BASE_ADDRESS_0 + 8, 4, pref);
    cfgW(g, 0, 8, PCI_PREF_MEMORY_BASE, 2, (pref / 2 ** 16) & 0xfff0);
    cfgW(g, 0, 8, PCI_PREF_MEMORY_LIMIT, 2, (pref / 2 ** 16) & 0xfff0);
    cfgW(g, 0, 8, PCI_PREF_BASE_UPPER32, 4, 0);
    cfgW(g, 0, 8, PCI_PREF_LIMIT_UPPER32, 4, 0);
    expect(g.mmio.read(0x40_0010, 2)).toBe(0x11);
    expect(g.mmio.read(0x20_0004, 4)).toBe(0xffff_ffff);
    expect(log).toEqual(['r 4 4', 'r 16 2']);
  });

  it('property: reads outside every BAR are all-ones of the access size and reach no device', () => {
    const g = new GpexHost();
    const { dev, log } = recorder('a', 0x11);
    dev.realizeOn(g.root, 0);
    cfgW(g, 0, 0, PCI_BASE_ADDRESS_0, 4, VIRT_PCIE_MMIO);
    cfgW(g, 0, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    fc.assert(
      fc.property(
        fc.integer({ min: 0x1000, max: 0x2eff_0000 - 8 }),
        fc.constantFrom<MmioSize>(1, 2, 4),
        (o, s) => {
          expect(g.mmio.read(o, s)).toBe(2 ** (8 * s) - 1);
        },
      ),
    );
    expect(log).toEqual([]);
  });
});

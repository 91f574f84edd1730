/**
 * The PCI bus: configuration accesses by BDF (all-ones where nothing answers), the enumeration
 * scan's multi-function rule, and memory routing to BARs gated by Memory Space Enable.
 */
import { describe, expect, it } from 'vitest';
import { PasidDmaDevice } from './pasid-dma-device.ts';
import { PDMA_ID, PDMA_RING_SIZE } from './pasid-dma-regs.ts';
import { PciBus, pciBdf, pciName } from './pci-bus.ts';
import { PCI_BASE_ADDRESS_0, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_DEVICE_ID, PCI_VENDOR_ID } from './regs.ts';

describe('PciBus', () => {
  it('answers configuration reads by BDF; an empty BDF reads all-ones', () => {
    const bus = new PciBus();
    const dev = new PasidDmaDevice({ bus: 0, dev: 3, fn: 0 });
    expect(bus.add(dev.rid, dev)).toBe(true);
    expect(bus.add(dev.rid, dev)).toBe(false);
    expect(bus.add(0x1_0000, dev)).toBe(false);
    expect(bus.configRead(pciBdf(0, 3, 0), PCI_DEVICE_ID, 2)).toBe(0x5a5a);
    expect(bus.configRead(pciBdf(0, 4, 0), PCI_VENDOR_ID, 2)).toBe(0xffff);
    bus.configWrite(pciBdf(0, 4, 0), PCI_COMMAND, 2, 0xffff); // dropped
    expect(pciName(dev.rid)).toBe('0000:00:03.0');
    expect(pciName(pciBdf(0x12, 0x1f, 7), 1)).toBe('0001:12:1f.7');
    expect(bus.remove(dev.rid)).toBe(true);
    expect(bus.configRead(dev.rid, PCI_VENDOR_ID, 2)).toBe(0xffff);
  });

  it('enumerates functions 1-7 only behind a multi-function function 0', () => {
    const bus = new PciBus();
    const add = (dev: number, fn: number, mfd: boolean): void => {
      const d = new PasidDmaDevice({ bus: 1, dev, fn, multiFunction: mfd });
      bus.add(d.rid, d);
    };
    add(1, 0, false);
    add(1, 1, false); // hidden: function 0 is single-function
    add(2, 0, true);
    add(2, 5, true);
    add(3, 2, true); // no function 0: the slot is empty to a scan
    expect(bus.enumerate()).toEqual([pciBdf(1, 1, 0), pciBdf(1, 2, 0), pciBdf(1, 2, 5)]);
    expect(bus.bdfs()).toHaveLength(5);
  });

  it('routes memory accesses to the BAR that decodes them, only with Memory Space enabled', () => {
    const bus = new PciBus();
    const dev = new PasidDmaDevice();
    bus.add(dev.rid, dev);
    dev.configWrite(PCI_BASE_ADDRESS_0, 4, 0x1000_0000);
    expect(bus.mmioRead(0x1000_0000 + PDMA_ID, 4)).toBe(0xffff_ffff);
    expect(bus.mmioWrite(0x1000_0000 + PDMA_RING_SIZE, 4, 8)).toBe(false);
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(bus.mmioRead(0x1000_0000 + PDMA_ID, 4)).toBe(0x5a5a_0001);
    expect(bus.mmioWrite(0x1000_0000 + PDMA_RING_SIZE, 4, 8)).toBe(true);
    expect(dev.ringState().size).toBe(8);
    expect(bus.mmioRead(0x1000_4000, 4)).toBe(0xffff_ffff); // beyond the 16 KiB BAR
    const h = bus.mmioHandler();
    const out = new Uint8Array(4);
    expect(h.read(0x1000_0000, out, 0)).toBe(true);
    expect(Array.from(out)).toEqual([1, 0, 0x5a, 0x5a]);
    expect(h.read(0x1000_0000, new Uint8Array(8), 0)).toBe(false);
    expect(h.write(0x1000_0000 + PDMA_RING_SIZE, new Uint8Array([4, 0, 0, 0]), 0)).toBe(true);
    expect(dev.ringState().size).toBe(4);
    expect(h.write(0x2000_0000, new Uint8Array(4), 0)).toBe(false);
  });
});

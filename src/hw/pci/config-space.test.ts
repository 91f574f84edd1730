/**
 * The reusable configuration space: the per-byte RW/W1C write rule, invalid accesses, write
 * hooks, the two capability builders and their walks, BAR sizing, and the power-on image.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConfigSpace,
  isValidConfigAccess,
  pciCapabilities,
  pciExtCapabilities,
  pciFindCapability,
  pciFindExtCapability,
  writtenByte,
} from './config-space.ts';
import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAPABILITY_LIST,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  pciExtCapHeader,
} from './regs.ts';

describe('the write rule', () => {
  it('property: each byte becomes (old & ~rw | value & rw) & ~(value & w1c)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.constantFrom<AccessSize>(1, 2, 4),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (init, rwRaw, w1cRaw, size, slot, value) => {
          const cs = new ConfigSpace(256);
          const base = 0x40;
          for (let i = 0; i < 8; i++) {
            const rw = rwRaw[i]!;
            cs.init(base + i, 1, init[i]!, { rw, w1c: w1cRaw[i]! & ~rw });
          }
          const offset = base + Math.floor((slot * size) % 8);
          const aligned = offset - (offset % size);
          cs.configWrite(aligned, size, value);
          for (let i = 0; i < 8; i++) {
            const b = writtenByte(aligned, size, value, base + i);
            const rw = rwRaw[i]!;
            const w1c = w1cRaw[i]! & ~rw;
            const want = b < 0 ? init[i]! : ((init[i]! & ~rw) | (b & rw)) & ~(b & w1c) & 0xff;
            expect(cs.get(base + i, 1)).toBe(want);
          }
        },
      ),
    );
  });

  it('misaligned, out-of-range and wrong-size accesses read all-ones and write nothing', () => {
    const cs = new ConfigSpace(256);
    cs.init(0x40, 4, 0x1234_5678, { rw: 0xffff_ffff });
    expect(cs.configRead(0x41, 2)).toBe(0xffff);
    expect(cs.configRead(0x42, 4)).toBe(0xffff_ffff);
    expect(cs.configRead(0x100, 1)).toBe(0xff);
    expect(cs.configRead(0x40, 3 as AccessSize)).toBe(0xffff_ffff);
    expect(cs.configRead(-4, 4)).toBe(0xffff_ffff);
    cs.configWrite(0x41, 2, 0);
    cs.configWrite(0x42, 4, 0);
    cs.configWrite(0xfe, 4, 0);
    cs.configWrite(64.5, 1, 0);
    expect(cs.configRead(0x40, 4)).toBe(0x1234_5678);
    expect(cs.stats.badAccesses).toBe(9);
    expect(isValidConfigAccess(0xfc, 4, 256)).toBe(true);
    expect(isValidConfigAccess(0xfd, 1, 256)).toBe(true);
  });

  it('hooks run after the update, with the old value, only for writes that touch their range', () => {
    const cs = new ConfigSpace(256);
    cs.init(0x44, 2, 0x00aa, { rw: 0xffff });
    const calls: [number, number, number, number, number][] = [];
    cs.onWrite(0x44, 2, (o, s, v, old) => calls.push([o, s, v, old, cs.get(0x44, 2)]));
    cs.configWrite(0x40, 4, 0xffff_ffff); // does not touch 0x44
    cs.configWrite(0x45, 1, 0x12);
    cs.configWrite(0x44, 4, 0x0000_3456);
    expect(calls).toEqual([
      [0x45, 1, 0x12, 0x00, 0x12aa],
      [0x44, 4, 0x3456, 0x12aa, 0x3456],
    ]);
  });

  it('seal/reset restore the power-on image; programmer errors throw', () => {
    const cs = new ConfigSpace(256);
    expect(() => cs.reset()).toThrow();
    cs.init(0x40, 4, 0x11, { rw: 0xff });
    cs.seal();
    cs.configWrite(0x40, 1, 0x99);
    cs.reset();
    expect(cs.get(0x40, 4)).toBe(0x11);
    expect(() => new ConfigSpace(512)).toThrow();
    expect(() => cs.setMasks(0x40, 1, { rw: 1, w1c: 1 })).toThrow();
    expect(() => cs.set(0xff, 2, 0)).toThrow();
  });
});

describe('capability lists', () => {
  it('standard capabilities start at 0x40, chain through next pointers, and set Status.CAP_LIST', () => {
    const cs = new ConfigSpace(256);
    expect(pciCapabilities(cs)).toEqual([]);
    const pm = cs.addCapability(PCI_CAP_ID_PM, 8);
    const exp = cs.addCapability(PCI_CAP_ID_EXP, 0x3c);
    const msix = cs.addCapability(PCI_CAP_ID_MSIX, 12);
    expect([pm, exp, msix]).toEqual([0x40, 0x48, 0x84]);
    expect(cs.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST).toBe(PCI_STATUS_CAP_LIST);
    expect(cs.configRead(PCI_CAPABILITY_LIST, 1)).toBe(0x40);
    expect(pciCapabilities(cs)).toEqual([
      { id: PCI_CAP_ID_PM, offset: 0x40 },
      { id: PCI_CAP_ID_EXP, offset: 0x48 },
      { id: PCI_CAP_ID_MSIX, offset: 0x84 },
    ]);
    expect(pciFindCapability(cs, PCI_CAP_ID_MSIX)).toBe(0x84);
    expect(pciFindCapability(cs, 0x05)).toBe(0);
    // IDs and next pointers are read-only.
    cs.configWrite(0x40, 2, 0);
    expect(pciCapabilities(cs)).toHaveLength(3);
    expect(() => cs.addCapability(0x09, 0x80)).toThrow();
  });

  it('extended capabilities start at 0x100 with one-dword headers chained by next', () => {
    const cs = new ConfigSpace(4096);
    expect(pciExtCapabilities(cs)).toEqual([]);
    const aer = cs.addExtCapability(PCI_EXT_CAP_ID_ERR, 2, 0x2c);
    const pasid = cs.addExtCapability(PCI_EXT_CAP_ID_PASID, 1, 8);
    const dsn = cs.addExtCapability(PCI_EXT_CAP_ID_DSN, 1, 12);
    expect([aer, pasid, dsn]).toEqual([0x100, 0x12c, 0x134]);
    expect(cs.configRead(0x100, 4)).toBe(pciExtCapHeader(PCI_EXT_CAP_ID_ERR, 2, 0x12c));
    expect(cs.configRead(0x12c, 4)).toBe(pciExtCapHeader(PCI_EXT_CAP_ID_PASID, 1, 0x134));
    expect(pciExtCapabilities(cs)).toEqual([
      { id: PCI_EXT_CAP_ID_ERR, version: 2, offset: 0x100 },
      { id: PCI_EXT_CAP_ID_PASID, version: 1, offset: 0x12c },
      { id: PCI_EXT_CAP_ID_DSN, version: 1, offset: 0x134 },
    ]);
    expect(pciFindExtCapability(cs, PCI_EXT_CAP_ID_PASID)).toBe(0x12c);
    cs.configWrite(0x12c, 4, 0);
    expect(pciFindExtCapability(cs, PCI_EXT_CAP_ID_DSN)).toBe(0x134);
    expect(() => new ConfigSpace(256).addExtCapability(1, 1, 8)).toThrow();
  });

  it('the walks are bounded on a looping list', () => {
    const cs = new ConfigSpace(4096);
    cs.addCapability(PCI_CAP_ID_PM, 8);
    cs.set(0x41, 1, 0x40); // next → itself
    expect(pciCapabilities(cs)).toHaveLength(48);
    cs.set(0x100, 4, pciExtCapHeader(PCI_EXT_CAP_ID_ERR, 1, 0x100));
    expect(pciExtCapabilities(cs)).toHaveLength((4096 - 256) / 8);
  });
});

describe('BARs', () => {
  it('a 32-bit BAR reads back its size mask after all-ones; flags are read-only', () => {
    const cs = new ConfigSpace(256);
    cs.addMemoryBar(2, 0x1000, { prefetchable: true });
    const off = PCI_BASE_ADDRESS_0 + 8;
    expect(cs.configRead(off, 4)).toBe(0x8);
    cs.configWrite(off, 4, 0xffff_ffff);
    expect(cs.configRead(off, 4)).toBe(0xffff_f008);
    cs.configWrite(off, 4, 0xabcd_e123);
    expect(cs.configRead(off, 4)).toBe(0xabcd_e008);
    expect(cs.barAddress(2)).toBe(0xabcd_e000);
    expect(cs.barAddress(0)).toBe(-1);
  });

  it('a 64-bit BAR larger than 4 GiB sizes across both dwords', () => {
    const cs = new ConfigSpace(256);
    cs.addMemoryBar(0, 2 ** 34, { is64: true });
    cs.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    cs.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0xffff_ffff);
    expect(cs.configRead(PCI_BASE_ADDRESS_0, 4)).toBe(0x4);
    expect(cs.configRead(PCI_BASE_ADDRESS_0 + 4, 4)).toBe(0xffff_fffc);
    cs.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0x10);
    cs.configWrite(PCI_BASE_ADDRESS_0, 4, 0);
    expect(cs.barAddress(0)).toBe(0x10 * 2 ** 32);
  });

  it('rejects bad definitions', () => {
    const cs = new ConfigSpace(256);
    expect(() => cs.addMemoryBar(5, 0x1000, { is64: true })).toThrow();
    expect(() => cs.addMemoryBar(0, 0x1800)).toThrow();
    expect(() => cs.addMemoryBar(0, 8)).toThrow();
    cs.addMemoryBar(0, 0x1000, { is64: true });
    expect(() => cs.addMemoryBar(1, 0x1000)).toThrow();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, PhysMem } from './memory.ts';

describe('PhysMem: sparse, page-granular physical memory', () => {
  it('reads zero without allocating, allocates whole pages on write', () => {
    const m = new PhysMem();
    expect(m.read32(0x1234_5000)).toBe(0);
    expect(m.bytesBacked).toBe(0);
    expect(m.write32(0x1234_5004, 0xdead_beef)).toBe(true);
    expect(m.bytesBacked).toBe(PAGE_SIZE);
    expect(m.read32(0x1234_5004)).toBe(0xdead_beef);
    expect(m.backedPages()).toEqual([0x1234_5000]);
  });

  it('accessors are little-endian at every width, aligned or not', () => {
    const m = new PhysMem();
    m.write64(0x1000, 0x4433_2211, 0x8877_6655);
    expect(m.read8(0x1000)).toBe(0x11);
    expect(m.read16(0x1001)).toBe(0x3322);
    expect(m.read32(0x1002)).toBe(0x6655_4433);
    const out = new Uint32Array(2);
    expect(m.read64(0x1000, out)).toBe(true);
    expect([...out]).toEqual([0x4433_2211, 0x8877_6655]);
    expect(m.read64n(0x1000)).toBe(Number.NaN); // 0x8877... is above 2^53
    m.write64n(0x2000, 2 ** 52 + 3);
    expect(m.read64n(0x2000)).toBe(2 ** 52 + 3);
  });

  it('accesses straddling a page boundary work', () => {
    const m = new PhysMem();
    expect(m.write32(0x1ffe, 0xaabb_ccdd)).toBe(true);
    expect(m.read32(0x1ffe)).toBe(0xaabb_ccdd);
    expect(m.bytesBacked).toBe(2 * PAGE_SIZE);
  });

  it('addresses up to 52 bits; beyond addrBits is an external abort that changes nothing', () => {
    const m = new PhysMem({ addrBits: 40 });
    expect(m.write32(2 ** 40 - 4, 7)).toBe(true);
    expect(m.read32(2 ** 40 - 4)).toBe(7);
    expect(m.write32(2 ** 40, 7)).toBe(false);
    expect(m.read32(2 ** 40)).toBe(-1);
    expect(m.write(2 ** 40 - 2, new Uint8Array(4))).toBe(false);
    expect(m.read32(2 ** 40 - 4)).toBe(7);
    const big = new PhysMem();
    expect(big.write64(2 ** 52 - 8, 1, 2)).toBe(true);
    expect(big.read64n(2 ** 52 - 8)).toBe(2 * 2 ** 32 + 1);
  });

  it('absent regions abort every access and keep their contents for later', () => {
    const m = new PhysMem();
    m.write32(0x5000, 42);
    m.markAbsent(0x5000, 0x100);
    expect(m.read32(0x5000)).toBe(-1);
    expect(m.readDesc(0, 0x5000)).toBe(false);
    expect(m.write32(0x5ffc, 1)).toBe(false); // the whole page is absent
    expect(m.read32(0x6000)).toBe(0);
    m.markPresent(0x5000, 0x1000);
    expect(m.read32(0x5000)).toBe(42);
    expect(m.readDesc(0, 0x5000)).toBe(true);
    expect(m.d0).toBe(42);
  });

  it('RAM ranges: outside them is absent', () => {
    const m = new PhysMem({ ram: [{ base: 0x4000_0000, size: 0x10_0000 }] });
    expect(m.write32(0x4000_0000, 1)).toBe(true);
    expect(m.write32(0x3fff_fffc, 1)).toBe(false);
    expect(m.read(0x400f_fff0, 0x20)).toBeUndefined();
    expect(m.isAccessible(0x4000_0000, 0x10_0000)).toBe(true);
  });

  it('bulk read / write / fill / copy are all-or-nothing and match byte accessors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x3000 }),
        fc.uint8Array({ minLength: 0, maxLength: 9000 }),
        fc.integer({ min: 0, max: 0x3000 }),
        (addr, bytes, dst) => {
          const m = new PhysMem();
          expect(m.write(addr, bytes)).toBe(true);
          expect([...(m.read(addr, bytes.length) ?? [])]).toEqual([...bytes]);
          if (bytes.length > 0) expect(m.read8(addr + bytes.length - 1)).toBe(bytes[bytes.length - 1]);
          expect(m.copy(dst, addr, bytes.length)).toBe(true);
          expect([...(m.read(dst, bytes.length) ?? [])]).toEqual([...bytes]);
        },
      ),
      { numRuns: 60 },
    );
    const m = new PhysMem();
    m.markAbsent(0x3000, 0x1000);
    expect(m.fill(0x2000, 0x2000, 0xff)).toBe(false);
    expect(m.read8(0x2000)).toBe(0);
    expect(m.fill(0x10_0000, 0x10_0000, 0)).toBe(true);
    expect(m.bytesBacked).toBe(0); // zero-filling untouched pages allocates nothing
  });

  it('readDesc serves d0/d1 through the lookup cache and sees later writes', () => {
    const m = new PhysMem({ lookupCacheEntries: 2 });
    m.write64(0x1_0000_0008, 0x1111, 0x2222);
    expect(m.readDesc(1, 8)).toBe(true);
    expect([m.d0, m.d1]).toEqual([0x1111, 0x2222]);
    m.write64(0x1_0000_0008, 0x3333, 0x4444);
    expect(m.readDesc(1, 8)).toBe(true);
    expect([m.d0, m.d1]).toEqual([0x3333, 0x4444]);
    expect(m.readDesc(0x10_0000, 0)).toBe(false); // 2^52
  });

  it('separate memories are independent; discard releases pages', () => {
    const a = new PhysMem({ name: 'host' });
    const b = new PhysMem({ name: 'other' });
    a.write32(0, 1);
    expect(b.read32(0)).toBe(0);
    a.discard(0, PAGE_SIZE);
    expect(a.read32(0)).toBe(0);
    expect(a.bytesBacked).toBe(0);
    expect(a.peakBytesBacked).toBe(PAGE_SIZE);
  });

  it('never throws on garbage addresses', () => {
    const m = new PhysMem();
    for (const bad of [-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 60]) {
      expect(m.read32(bad)).toBe(-1);
      expect(m.write8(bad, 1)).toBe(false);
      expect(m.read(bad, 4)).toBeUndefined();
    }
    expect(m.read(0, -1)).toBeUndefined();
  });
});

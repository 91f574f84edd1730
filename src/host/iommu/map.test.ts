/**
 * Tests of iommu_map / iommu_unmap / iommu_iova_to_phys in the core, with the fake driver: the
 * refusal order (-ENODEV, -EINVAL), the greedy page-size split (a fast-check property against an
 * independent BigInt reference), roll-back on a driver failure mid-way, the unmap stop rule, the
 * iotlbSync after unmap, and the per-domain mapped-bytes counter.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EINVAL, ENODEV, ENOMEM } from '../../uapi/errno.ts';
import { fakeCore, fakeDevice, fullSnapshot, PGSIZE_4K_2M_1G, SZ_1G, SZ_2M, SZ_4K } from './fake-driver.ts';
import { ffs53, fls53, iommuPgsize, roundupPowOfTwo } from './pgsize.ts';
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
} from './types.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

/**
 * The greedy split, written independently with BigInt: [iova, paddr, size] per chunk; it stops
 * after `cap` chunks (tests skip such cases).
 */
function referenceSplit(
  bitmap: number,
  iova: number,
  paddr: number,
  size: number,
  cap = Number.POSITIVE_INFINITY,
): [number, number, number][] {
  const sizes = [...Array(53).keys()]
    .filter((i) => Math.floor(bitmap / 2 ** i) % 2 === 1)
    .map((i) => BigInt(2 ** i));
  const out: [number, number, number][] = [];
  let v = BigInt(iova);
  let p = BigInt(paddr);
  let left = BigInt(size);
  while (left > 0n && out.length <= cap) {
    let best = 0n;
    for (const s of sizes) if (s <= left && v % s === 0n && p % s === 0n && s > best) best = s;
    out.push([Number(v), Number(p), Number(best)]);
    v += best;
    p += best;
    left -= best;
  }
  return out;
}

describe('pgsize helpers', () => {
  it('ffs/fls work above 32 bits', () => {
    expect(ffs53(0)).toBe(-1);
    expect(ffs53(1)).toBe(0);
    expect(ffs53(2 ** 31)).toBe(31);
    expect(ffs53(2 ** 42 + 2 ** 40)).toBe(40);
    expect(fls53(2 ** 42 + 1)).toBe(42);
    expect(fls53(0xffff_ffff)).toBe(31);
    expect(roundupPowOfTwo(5)).toBe(8);
    expect(roundupPowOfTwo(8)).toBe(8);
  });

  it('iommuPgsize honours size, both alignments and the bitmap (incl. bits above 32)', () => {
    expect(iommuPgsize(PGSIZE_4K_2M_1G, 0, 0, 3 * SZ_1G)).toBe(SZ_1G);
    expect(iommuPgsize(PGSIZE_4K_2M_1G, SZ_2M, 0, SZ_1G)).toBe(SZ_2M);
    expect(iommuPgsize(PGSIZE_4K_2M_1G, SZ_1G, SZ_4K, SZ_1G)).toBe(SZ_4K);
    expect(iommuPgsize(PGSIZE_4K_2M_1G, 0, 0, SZ_2M - SZ_4K)).toBe(SZ_4K);
    const big = 0x1_0000 + 0x2000_0000 + 2 ** 42; // 64K | 512M | 4T
    expect(iommuPgsize(big, 2 ** 43, 2 ** 42, 2 ** 43)).toBe(2 ** 42);
  });
});

describe('iommuMap refusals', () => {
  function setup(bitmap = PGSIZE_4K_2M_1G) {
    const { core, drv } = fakeCore({ pgsizeBitmap: bitmap });
    return { core, drv, dom: core.iommuDomainAlloc(drv.name)! };
  }

  it('-ENODEV without page sizes, checked before the domain type', () => {
    const { core, drv } = fakeCore();
    const id = core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_IDENTITY)!;
    id.pgsizeBitmap = 0;
    expect(core.iommuMap(id, 0, 0, SZ_4K, RW)).toBe(-ENODEV);
  });

  it('-EINVAL for non-paging domains (identity, blocked)', () => {
    const { core, drv } = fakeCore();
    for (const t of [IOMMU_DOMAIN_IDENTITY, IOMMU_DOMAIN_BLOCKED]) {
      const d = core.iommuDomainAlloc(drv.name, t)!;
      expect(core.iommuMap(d, 0, 0, SZ_4K, RW)).toBe(-EINVAL);
    }
    expect(drv.callsOf('map')).toEqual([]);
  });

  it('-EINVAL when iova, paddr or size is not aligned to the smallest page, or not an address', () => {
    const { core, drv, dom } = setup();
    const before = fullSnapshot(core, drv);
    for (const [iova, pa, size] of [
      [0x800, 0, SZ_4K],
      [0, 0x800, SZ_4K],
      [0, 0, 0x1800],
      [-SZ_4K, 0, SZ_4K],
      [0.5, 0, SZ_4K],
      [2 ** 53, 0, SZ_4K],
      [2 ** 53 - SZ_4K, 0, 2 * SZ_4K],
    ] as const)
      expect(core.iommuMap(dom, iova, pa, size, RW)).toBe(-EINVAL);
    expect(fullSnapshot(core, drv)).toEqual(before);
    expect(drv.callsOf('map')).toEqual([]);
  });

  it('a size of 0 maps nothing and succeeds', () => {
    const { core, drv, dom } = setup();
    expect(core.iommuMap(dom, SZ_4K, SZ_4K, 0, RW)).toBe(0);
    expect(drv.callsOf('map')).toEqual([]);
  });
});

describe('iommuMap splitting (property)', () => {
  const addr = (maxPages: number) =>
    fc
      .tuple(fc.integer({ min: 0, max: maxPages }), fc.constantFrom(12, 21, 30))
      .map(([k, shift]) => k * 2 ** shift);
  const sizeArb = fc
    .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 600 }))
    .map(([g, m, k]) => g * SZ_1G + m * SZ_2M + k * SZ_4K)
    .filter((s) => s > 0);

  it('the driver receives exactly the greedy largest-fit split, aligned, covering the range', () => {
    fc.assert(
      fc.property(addr(2 ** 16), addr(2 ** 16), sizeArb, (iova, paddr, size) => {
        const expected = referenceSplit(PGSIZE_4K_2M_1G, iova, paddr, size, 2000);
        fc.pre(expected.length <= 2000);
        const { core, drv } = fakeCore();
        const dom = core.iommuDomainAlloc(drv.name)!;
        expect(core.iommuMap(dom, iova, paddr, size, RW)).toBe(0);
        const chunks = drv
          .callsOf('map')
          .map((c) => [c.args[1], c.args[2], c.args[3]] as [number, number, number]);
        expect(chunks).toEqual(expected);
        let at = iova;
        const bad = chunks.filter(([v, p, s]) => {
          const ok = v === at && p - paddr === v - iova && v % s === 0 && p % s === 0;
          at += s;
          return !ok;
        });
        expect(bad).toEqual([]);
        expect(at).toBe(iova + size);
        expect(core.iommuDomainMappedBytes(dom)).toBe(size);
        expect(core.iommuIovaToPhys(dom, iova + size - 1)).toBe(paddr + size - 1);
      }),
      { numRuns: 150 },
    );
  });

  it('a failure mid-way leaves nothing mapped and returns the error', () => {
    fc.assert(
      fc.property(addr(2 ** 12), addr(2 ** 12), sizeArb, fc.nat(), (iova, paddr, size, pick) => {
        const expected = referenceSplit(PGSIZE_4K_2M_1G, iova, paddr, size, 2000);
        fc.pre(expected.length <= 2000);
        const { core, drv } = fakeCore();
        const dom = core.iommuDomainAlloc(drv.name)!;
        const failAt = pick % expected.length;
        drv.failNext('map', -ENOMEM, { skip: failAt });
        expect(core.iommuMap(dom, iova, paddr, size, RW)).toBe(-ENOMEM);
        expect(drv.callsOf('map')).toHaveLength(failAt + 1);
        expect(drv.snapshot()).toMatchObject({ domains: [{ mappings: [] }] });
        expect(core.iommuDomainMappedBytes(dom)).toBe(0);
        expect(drv.callsOf('iotlbSync')).toHaveLength(1);
      }),
      { numRuns: 150 },
    );
  });
});

describe('iommuUnmap', () => {
  it('returns 0 for misaligned or non-paging requests (and still syncs, as Linux)', () => {
    const { core, drv } = fakeCore();
    const dom = core.iommuDomainAlloc(drv.name)!;
    core.iommuMap(dom, 0, 0, SZ_2M, RW);
    expect(core.iommuUnmap(dom, 0x800, SZ_4K)).toBe(0);
    expect(core.iommuUnmap(dom, 0, 0x800)).toBe(0);
    expect(core.iommuUnmap(core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_IDENTITY)!, 0, SZ_4K)).toBe(0);
    expect(drv.callsOf('unmap')).toEqual([]);
    expect(core.iommuDomainMappedBytes(dom)).toBe(SZ_2M);
  });

  it('unmaps chunk by chunk and stops at the first chunk that unmaps nothing', () => {
    const { core, drv } = fakeCore();
    const dom = core.iommuDomainAlloc(drv.name)!;
    // Two 4K pages, a hole, then one more page.
    core.iommuMap(dom, 0x1000, 0x10_0000, 2 * SZ_4K, RW);
    core.iommuMap(dom, 0x4000, 0x20_0000, SZ_4K, RW);
    drv.clearCalls();
    expect(core.iommuUnmap(dom, 0x1000, 4 * SZ_4K)).toBe(2 * SZ_4K);
    expect(drv.callsOf('unmap').map((c) => c.args[1])).toEqual([0x1000, 0x2000, 0x3000]);
    expect(drv.callsOf('iotlbSync')).toHaveLength(1);
    expect(core.iommuIovaToPhys(dom, 0x4000)).toBe(0x20_0000);
    expect(core.iommuDomainMappedBytes(dom)).toBe(SZ_4K);
  });

  it('splits by the IOVA alignment only and may unmap a larger block at once', () => {
    const { core, drv } = fakeCore();
    const dom = core.iommuDomainAlloc(drv.name)!;
    core.iommuMap(dom, SZ_1G, 0, SZ_1G + SZ_2M, RW);
    drv.clearCalls();
    expect(core.iommuUnmap(dom, SZ_1G, SZ_1G + SZ_2M)).toBe(SZ_1G + SZ_2M);
    expect(drv.callsOf('unmap').map((c) => c.args[2])).toEqual([SZ_1G, SZ_2M]);
    expect(core.iommuDomainMappedBytes(dom)).toBe(0);
  });

  it('a driver unmap failure stops the loop', () => {
    const { core, drv } = fakeCore();
    const dom = core.iommuDomainAlloc(drv.name)!;
    core.iommuMap(dom, 0, 0, 4 * SZ_4K, RW);
    drv.failNext('unmap', -ENOMEM, { skip: 1 });
    expect(core.iommuUnmap(dom, 0, 4 * SZ_4K)).toBe(SZ_4K);
  });
});

describe('iommuIovaToPhys', () => {
  it('identity returns the IOVA, blocked 0, paging asks the driver (0 when unmapped)', () => {
    const { core, drv } = fakeCore();
    expect(core.iommuIovaToPhys(core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_IDENTITY)!, 0x1234)).toBe(
      0x1234,
    );
    expect(core.iommuIovaToPhys(core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_BLOCKED)!, 0x1234)).toBe(0);
    const d = core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_UNMANAGED)!;
    expect(core.iommuIovaToPhys(d, 0x1234)).toBe(0);
    core.iommuMap(d, 0x1000, 0x8000_0000, SZ_4K, RW);
    expect(core.iommuIovaToPhys(d, 0x1234)).toBe(0x8000_0234);
  });

  it('mapping through a device-attached domain works after the device probe', () => {
    const { core } = fakeCore();
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    const d = core.iommuDomainAlloc(dev)!;
    expect(core.iommuAttachDevice(d, dev)).toBe(0);
    expect(core.iommuMap(d, SZ_2M, SZ_2M, SZ_2M, RW)).toBe(0);
    expect(core.iommuIovaToPhys(d, SZ_2M + 5)).toBe(SZ_2M + 5);
  });
});

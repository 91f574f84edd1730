/**
 * Tests of dma-iommu with the fake driver: the DMA API over a DMA default domain (top-down
 * natural IOVAs, the PCI below-4GB attempt, reserved regions avoided, unmap and reuse, failures
 * that change nothing), dma-direct for IDENTITY, and MSI doorbells through each cookie type,
 * including the nested cookie's guest bindings of seed-spec.md §1.4.
 */

import { describe, expect, it } from 'vitest';
import { EEXIST, EINVAL, ENOMEM, ENOSPC } from '../../uapi/errno.ts';
import { IOMMU_DMA_MSI_PROT } from './dma-iommu.ts';
import { type FakeDomain, fakeCore, fakeDevice, fullSnapshot, SZ_4K } from './fake-driver.ts';
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuResvRegion,
} from './types.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const TOP_4G = 0x1_0000_0000;

function dmaSetup(
  opts: { resv?: IommuResvRegion[]; aperture?: [number, number]; bus?: 'pci' | 'platform' } = {},
) {
  const { core, drv } = fakeCore({
    ...(opts.resv === undefined ? {} : { resvRegions: opts.resv }),
    ...(opts.aperture === undefined ? {} : { aperture: opts.aperture }),
  });
  const dev = fakeDevice('a', { bus: opts.bus ?? 'pci' });
  expect(core.probeDevice(dev)).toBe(0);
  const dd = core.iommuGroupGet(dev)!.defaultDomain! as FakeDomain;
  expect(dd.type).toBe(IOMMU_DOMAIN_DMA);
  return { core, drv, dev, dd };
}

describe('DMA API over a DMA default domain', () => {
  it('maps top-down below 4GB for PCI, keeping the page offset', () => {
    const { core, dd } = dmaSetup();
    const a = core.iommuDmaMap(dd.devices.values().next().value!, 0x8000_1234, 0x100, RW);
    expect(a).toBe(TOP_4G - SZ_4K + 0x234);
    expect(core.iommuIovaToPhys(dd, a)).toBe(0x8000_1234);
    expect(dd.mappings.get(TOP_4G - SZ_4K)).toEqual({
      iova: TOP_4G - SZ_4K,
      paddr: 0x8000_1000,
      size: SZ_4K,
      prot: RW,
    });
  });

  it('rounds small lengths to a power of two with natural alignment; larger ones only aligned', () => {
    const { core, dev, dd } = dmaSetup();
    // 0xff0 + 0x20 spans two pages: a 2-page range aligned to 8K.
    const a = core.iommuDmaMap(dev, 0x8000_0ff0, 0x20, RW);
    expect(a).toBe(TOP_4G - 2 * SZ_4K + 0xff0);
    // 3 pages → 4 allocated, 16K aligned, 3 mapped.
    const b = core.iommuDmaMap(dev, 0x9000_0000, 3 * SZ_4K, RW);
    expect(b).toBe(TOP_4G - 6 * SZ_4K - 2 * SZ_4K); // below a's 8K: 0xffff8000 - 16K = 0xffff4000
    expect(core.iommuDomainMappedBytes(dd)).toBe(2 * SZ_4K + 3 * SZ_4K);
    // 33 pages: not rounded up, but aligned to 64 pages.
    const c = core.iommuDmaMap(dev, 0xa000_0000, 33 * SZ_4K, RW);
    expect(c % (64 * SZ_4K)).toBe(0);
    const r = core.dma.cookieOf(dd)!.iovad!.find(c / SZ_4K)!;
    expect(r.hi - r.lo + 1).toBe(33);
  });

  it('a platform device starts at the top of the aperture', () => {
    const { core, dev } = dmaSetup({ bus: 'platform' });
    expect(core.iommuDmaMap(dev, 0x8000_0000, SZ_4K, RW)).toBe(2 ** 48 - SZ_4K);
  });

  it('avoids reserved regions (but not SW_MSI windows)', () => {
    const { core, dev, dd } = dmaSetup({
      resv: [
        { start: TOP_4G - 0x10_0000, length: 0x10_0000, prot: 0, type: 'reserved' },
        { start: TOP_4G - 0x20_0000, length: 0x10_0000, prot: 0, type: 'sw-msi' },
      ],
    });
    expect(core.iommuDmaMap(dev, 0x8000_0000, SZ_4K, RW)).toBe(TOP_4G - 0x10_0000 - SZ_4K);
    // The allocation sits right below the reserved range; the SW_MSI window is not reserved.
    expect(core.dma.cookieOf(dd)!.iovad!.ranges).toHaveLength(2);
    expect(core.dma.cookieOf(dd)!.iovad!.ranges[1]).toEqual({
      lo: (TOP_4G - 0x10_0000) / SZ_4K,
      hi: TOP_4G / SZ_4K - 1,
      reserved: true,
    });
  });

  it('reserves the regions of every device that joins the group', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    core.probeDevice(a);
    drv.resvRegions = [{ start: 0x4000_0000, length: SZ_4K, prot: 0, type: 'reserved' }];
    core.probeDevice(fakeDevice('b', { isolationKey: 'k' }));
    const dd = core.iommuGroupGet(a)!.defaultDomain!;
    expect(core.dma.cookieOf(dd)!.iovad!.find(0x4000_0000 / SZ_4K)?.reserved).toBe(true);
  });

  it('unmap removes the mapping and frees the IOVA for reuse', () => {
    const { core, dev, dd } = dmaSetup();
    const a = core.iommuDmaMap(dev, 0x8000_0010, 0x10, RW);
    expect(core.iommuDmaUnmap(dev, a, 0x10)).toBe(0);
    expect(dd.mappings.size).toBe(0);
    expect(core.iommuDomainMappedBytes(dd)).toBe(0);
    expect(core.iommuDmaMap(dev, 0x9000_0000, SZ_4K, RW)).toBe(a - 0x10);
  });

  it('refusals change nothing: bad arguments, unknown IOVA, driver failure, no space', () => {
    const { core, drv, dev } = dmaSetup();
    core.iommuDmaMap(dev, 0x8000_0000, SZ_4K, RW);
    const before = fullSnapshot(core, drv);
    expect(core.iommuDmaMap(dev, -1, SZ_4K, RW)).toBe(-EINVAL);
    expect(core.iommuDmaMap(dev, 0x1000, 0, RW)).toBe(-EINVAL);
    expect(core.iommuDmaUnmap(dev, 0x1234_0000, SZ_4K)).toBe(-EINVAL);
    expect(core.iommuDmaUnmap(dev, 0x1234_0000, 0)).toBe(-EINVAL);
    drv.failNext('map', -ENOSPC);
    expect(core.iommuDmaMap(dev, 0x9000_0000, SZ_4K, RW)).toBe(-ENOSPC);
    expect(fullSnapshot(core, drv)).toEqual(before);

    const small = dmaSetup({ aperture: [0, 0x3fff] });
    expect(small.core.iommuDmaMap(small.dev, 0x8000_0000, SZ_4K, RW)).toBe(0x3000);
    const b2 = fullSnapshot(small.core, small.drv);
    expect(small.core.iommuDmaMap(small.dev, 0x8000_0000, 2 * SZ_4K, RW)).toBe(-ENOMEM);
    expect(fullSnapshot(small.core, small.drv)).toEqual(b2);
  });

  it('IDENTITY default domains and devices without an IOMMU use dma-direct', () => {
    const { core, drv } = fakeCore({}, { passthrough: true });
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    expect(core.iommuGroupGet(dev)!.defaultDomain!.type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(core.iommuDmaMap(dev, 0x8000_1234, 0x10, RW)).toBe(0x8000_1234);
    expect(core.iommuDmaUnmap(dev, 0x8000_1234, 0x10)).toBe(0);
    expect(core.iommuDmaMap(fakeDevice('stranger'), 0x5000, 0x10, RW)).toBe(0x5000);
    expect(drv.callsOf('map')).toEqual([]);
  });
});

describe('MSI doorbells', () => {
  const DOORBELL = 0x0904_0040;

  it('DMA domain: one IOVA page per doorbell page, mapped write/noexec/mmio, reused', () => {
    const { core, drv, dev, dd } = dmaSetup();
    const r = core.iommuDmaPrepareMsi(dev, DOORBELL);
    expect(r).toEqual({ ok: true, msiAddr: TOP_4G - SZ_4K + 0x40 });
    expect(dd.mappings.get(TOP_4G - SZ_4K)).toEqual({
      iova: TOP_4G - SZ_4K,
      paddr: 0x0904_0000,
      size: SZ_4K,
      prot: IOMMU_DMA_MSI_PROT,
    });
    drv.clearCalls();
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL + 4)).toEqual({ ok: true, msiAddr: TOP_4G - SZ_4K + 0x44 });
    expect(drv.callsOf('map')).toEqual([]);
  });

  it('DMA domain: a doorbell inside a HW MSI region is used untranslated', () => {
    const { core, drv, dev } = dmaSetup({
      resv: [{ start: 0x0904_0000, length: 0x1_0000, prot: 0, type: 'msi' }],
    });
    drv.clearCalls();
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL)).toEqual({ ok: true, msiAddr: DOORBELL });
    expect(drv.callsOf('map')).toEqual([]);
  });

  it('no cookie (IDENTITY, or an UNMANAGED domain without an MSI cookie): the physical doorbell', () => {
    const { core, drv } = fakeCore({}, { passthrough: true });
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL)).toEqual({ ok: true, msiAddr: DOORBELL });
    const vfio = core.iommuDomainAlloc(drv.name)!;
    core.iommuAttachDevice(vfio, dev);
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL)).toEqual({ ok: true, msiAddr: DOORBELL });
    expect(core.iommuDmaPrepareMsi(dev, -5)).toBe(-EINVAL);
  });

  it('MSI cookie: UNMANAGED only, once; each doorbell page takes the next window page', () => {
    const { core, drv } = fakeCore();
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    const dma = core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_DMA)!;
    expect(core.iommuGetMsiCookie(dma, 0x800_0000)).toBe(-EINVAL);
    const vfio = core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_UNMANAGED)! as FakeDomain;
    core.dma.allocBudget = 0;
    expect(core.iommuGetMsiCookie(vfio, 0x800_0000)).toBe(-ENOMEM);
    core.dma.allocBudget = Number.POSITIVE_INFINITY;
    expect(core.iommuGetMsiCookie(vfio, 0x800_0000)).toBe(0);
    expect(core.iommuGetMsiCookie(vfio, 0x800_0000)).toBe(-EEXIST);
    expect(core.iommuGetNestedMsiCookie(vfio)).toBe(-EEXIST);
    core.iommuAttachDevice(vfio, dev);
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL)).toEqual({ ok: true, msiAddr: 0x800_0040 });
    expect(core.iommuDmaPrepareMsi(dev, 0x0905_0000)).toEqual({ ok: true, msiAddr: 0x800_1000 });
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL)).toEqual({ ok: true, msiAddr: 0x800_0040 });
    expect(vfio.mappings.get(0x800_1000)?.paddr).toBe(0x0905_0000);
    // A failed mapping gives the window page back.
    drv.failNext('map', -ENOSPC);
    expect(core.iommuDmaPrepareMsi(dev, 0x0906_0000)).toBe(-ENOMEM);
    expect(core.dma.cookieOf(vfio)!.msiIova).toBe(0x800_2000);
  });

  it('a plain MSI cookie is not a NESTED_MSI cookie: bind is -EINVAL; no cookie: -EINVAL', () => {
    const { core, drv } = fakeCore();
    const d = core.iommuDomainAlloc(drv.name)!;
    const before = fullSnapshot(core, drv);
    expect(core.dmaBindGuestMsi(d, 0x1000, 0x2000, SZ_4K)).toBe(-EINVAL);
    core.iommuGetMsiCookie(d, 0x800_0000);
    expect(core.dmaBindGuestMsi(d, 0x1000, 0x2000, SZ_4K)).toBe(-EINVAL);
    expect(core.dma.cookieOf(d)!.msiPages).toEqual([]);
    core.iommuPutDmaCookie(d);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });
});

describe('nested MSI cookie and guest bindings (§1.4)', () => {
  function nested() {
    const { core, drv } = fakeCore();
    const dev = fakeDevice('a');
    const dev2 = fakeDevice('b');
    core.probeDevice(dev);
    core.probeDevice(dev2);
    const d = core.iommuDomainAlloc(drv.name)! as FakeDomain;
    expect(core.iommuEnableNesting(d)).toBe(0);
    expect(core.iommuGetMsiCookie(d, 0x800_0000)).toBe(0);
    expect(core.dma.cookieOf(d)!.type).toBe('nested-msi');
    expect(core.iommuAttachDevice(d, dev)).toBe(0);
    expect(core.iommuAttachDevice(d, dev2)).toBe(0);
    return { core, drv, dev, dev2, d };
  }

  it('the explicit nested cookie: UNMANAGED only', () => {
    const { core, drv } = fakeCore();
    expect(core.iommuGetNestedMsiCookie(core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_IDENTITY)!)).toBe(
      -EINVAL,
    );
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuGetNestedMsiCookie(d)).toBe(0);
    expect(core.dma.cookieOf(d)!.type).toBe('nested-msi');
  });

  it('bind: size above the host granule -EINVAL; addresses aligned down to size; duplicates keep the first', () => {
    const { core, drv, d } = nested();
    const before = fullSnapshot(core, drv);
    expect(core.iommuBindGuestMsi(d, 0x1000, 0x2000, 2 * SZ_4K)).toBe(-EINVAL);
    expect(core.iommuBindGuestMsi(d, -1, 0x2000, SZ_4K)).toBe(-EINVAL);
    expect(fullSnapshot(core, drv)).toEqual(before);
    expect(core.iommuBindGuestMsi(d, 0x8000_0abc, 0x0a00_0def, SZ_4K)).toBe(0);
    expect(core.iommuBindGuestMsi(d, 0x8000_0000, 0x0b00_0000, SZ_4K)).toBe(0);
    expect(core.iommuBindGuestMsi(d, 0x8001_0000, 0x0c00_0000, 0x400)).toBe(0);
    expect(core.dma.cookieOf(d)!.msiPages).toEqual([
      { iova: 0x8001_0000, phys: undefined, gpa: 0x0c00_0000, s1Granule: 0x400 },
      { iova: 0x8000_0000, phys: undefined, gpa: 0x0a00_0000, s1Granule: SZ_4K },
    ]);
  });

  it('bind: -ENOMEM when the record cannot be allocated', () => {
    const { core, drv, d } = nested();
    core.dma.allocBudget = 0;
    const before = fullSnapshot(core, drv);
    expect(core.iommuBindGuestMsi(d, 0x8000_0000, 0x0a00_0000, SZ_4K)).toBe(-ENOMEM);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it('prepare: the newest unused binding maps gpa → doorbell at stage 2; the device uses gIOVA', () => {
    const { core, drv, dev, dev2, d } = nested();
    core.iommuBindGuestMsi(d, 0x8000_0000, 0x0a00_0000, SZ_4K);
    core.iommuBindGuestMsi(d, 0x8000_1000, 0x0a00_1000, SZ_4K);
    drv.clearCalls();
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL_A)).toEqual({ ok: true, msiAddr: 0x8000_1000 + 0x40 });
    expect(drv.callsOf('map').map((c) => c.args.slice(1))).toEqual([
      [0x0a00_1000, 0x0904_0000, SZ_4K, IOMMU_DMA_MSI_PROT],
    ]);
    // Same doorbell from another device: the same binding, no new mapping.
    expect(core.iommuDmaPrepareMsi(dev2, DOORBELL_A + 8)).toEqual({ ok: true, msiAddr: 0x8000_1048 });
    // Another doorbell takes the remaining binding; a third finds none.
    expect(core.iommuDmaPrepareMsi(dev, 0x0905_0000)).toEqual({ ok: true, msiAddr: 0x8000_0000 });
    const before = fullSnapshot(core, drv);
    expect(core.iommuDmaPrepareMsi(dev, 0x0906_0000)).toBe(-ENOMEM);
    expect(fullSnapshot(core, drv)).toEqual(before);
    expect(core.iommuIovaToPhys(d, 0x0a00_1040)).toBe(0x0904_0040);
  });

  it('prepare: a failed stage-2 mapping is -ENOMEM and leaves the binding unused', () => {
    const { core, drv, dev, d } = nested();
    core.iommuBindGuestMsi(d, 0x8000_0000, 0x0a00_0000, SZ_4K);
    drv.failNext('map', -ENOSPC);
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL_A)).toBe(-ENOMEM);
    expect(core.dma.cookieOf(d)!.msiPages[0]!.phys).toBeUndefined();
    expect(core.iommuDmaPrepareMsi(dev, DOORBELL_A)).toEqual({ ok: true, msiAddr: 0x8000_0040 });
  });

  it('unbind: matches giova aligned to the binding granule and unmaps the stage-2 page', () => {
    const { core, dev, d } = nested();
    core.iommuBindGuestMsi(d, 0x8000_0000, 0x0a00_0000, SZ_4K);
    core.iommuDmaPrepareMsi(dev, DOORBELL_A);
    expect(d.mappings.size).toBe(1);
    core.iommuUnbindGuestMsi(d, 0x9999_0000);
    expect(core.dma.cookieOf(d)!.msiPages).toHaveLength(1);
    core.iommuUnbindGuestMsi(d, 0x8000_0ffc);
    expect(core.dma.cookieOf(d)!.msiPages).toHaveLength(0);
    expect(d.mappings.size).toBe(0);
    expect(core.iommuDomainMappedBytes(d)).toBe(0);
    expect(core.warnings).toEqual([]);
  });

  it('freeing the domain drops the cookie and its stage-2 doorbell mappings', () => {
    const { core, drv, dev, dev2, d } = nested();
    core.iommuBindGuestMsi(d, 0x8000_0000, 0x0a00_0000, SZ_4K);
    core.iommuDmaPrepareMsi(dev, DOORBELL_A);
    core.iommuDetachDevice(d, dev);
    core.iommuDetachDevice(d, dev2);
    drv.clearCalls();
    expect(core.iommuDomainFree(d)).toBe(0);
    expect(drv.callsOf('unmap').map((c) => c.args[1])).toEqual([0x0a00_0000]);
    expect(d.iovaCookie).toBeUndefined();
  });
});

const DOORBELL_A = 0x0904_0040;

/**
 * Tests of the iommu core with the fake driver: instance registration, device probing and
 * release, grouping by isolationKey, default domain types and fallback, domain allocation and
 * freeing, attach/detach of devices and groups with rollback, nesting, guest MSI entry points,
 * fault handlers, and reserved regions. Every refusal is checked to leave core and driver as they
 * were.
 */

import { describe, expect, it } from 'vitest';
import { EBUSY, EEXIST, EINVAL, ENODEV, ENOMEM, ENOSYS, ENXIO, EPERM } from '../../uapi/errno.ts';
import { IOMMU_FAULT_DMA_UNRECOV } from '../../uapi/iommu.ts';
import { IommuCore } from './core.ts';
import { FakeDriver, fakeCore, fakeDevice, fullSnapshot, SZ_4K } from './fake-driver.ts';
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuFault,
} from './types.ts';

const FAULT: IommuFault = {
  type: IOMMU_FAULT_DMA_UNRECOV,
  event: { reason: 5, flags: 2, pasid: 0, perm: 1, addr: 0x1000, fetch_addr: 0 },
};

describe('registerIommu / unregisterIommu', () => {
  it('registers names once and hands back the services', () => {
    const core = new IommuCore();
    const drv = new FakeDriver({ name: 'smmu0' });
    const s = core.registerIommu('smmu0', drv);
    expect(typeof s).toBe('object');
    expect(core.registerIommu('smmu0', new FakeDriver({ name: 'smmu0' }))).toBe(-EEXIST);
    expect(core.registerIommu('', drv)).toBe(-EINVAL);
    expect(core.iommuInstances()).toEqual(['smmu0']);
  });

  it('refuses to unregister an unknown instance or one in use', () => {
    const { core, drv } = fakeCore();
    expect(core.unregisterIommu('nope')).toBe(-ENODEV);
    const dev = fakeDevice('d0');
    expect(core.probeDevice(dev)).toBe(0);
    expect(core.unregisterIommu(drv.name)).toBe(-EBUSY);
    core.releaseDevice(dev);
    const dom = core.iommuDomainAlloc(drv.name)!;
    expect(core.unregisterIommu(drv.name)).toBe(-EBUSY);
    expect(core.iommuDomainFree(dom)).toBe(0);
    expect(core.unregisterIommu(drv.name)).toBe(0);
    expect(core.iommuInstances()).toEqual([]);
  });
});

describe('probeDevice', () => {
  it('-ENODEV for a device whose IOMMU is not registered, nothing created', () => {
    const { core, drv } = fakeCore();
    const before = fullSnapshot(core, drv);
    expect(core.probeDevice(fakeDevice('x', { iommuName: 'other' }))).toBe(-ENODEV);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it("returns the driver's probe error and creates nothing", () => {
    const { core, drv } = fakeCore();
    drv.failNext('probeDevice', -ENXIO);
    const before = fullSnapshot(core, drv);
    expect(core.probeDevice(fakeDevice('d0'))).toBe(-ENXIO);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it('-EEXIST when probed twice', () => {
    const { core, drv } = fakeCore();
    const dev = fakeDevice('d0');
    expect(core.probeDevice(dev)).toBe(0);
    const before = fullSnapshot(core, drv);
    expect(core.probeDevice(dev)).toBe(-EEXIST);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it('groups devices by isolationKey, ids lowest free from 0', () => {
    const { core } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'bridge0' });
    const b = fakeDevice('b', { isolationKey: 'bridge0' });
    const c = fakeDevice('c');
    const d = fakeDevice('d', { isolationKey: 'bridge1' });
    for (const x of [a, b, c, d]) expect(core.probeDevice(x)).toBe(0);
    expect(core.iommuGroupGet(a)).toBe(core.iommuGroupGet(b));
    expect(core.iommuGroupGet(a)!.devices).toEqual([a, b]);
    expect([a, c, d].map((x) => core.iommuGroupGet(x)!.id)).toEqual([0, 1, 2]);
    // The group of c goes away; its id is reused.
    core.releaseDevice(c);
    expect(core.iommuGroupGet(c)).toBeUndefined();
    const e = fakeDevice('e');
    expect(core.probeDevice(e)).toBe(0);
    expect(core.iommuGroupGet(e)!.id).toBe(1);
    expect(core.iommuGroupGetById(1)!.devices).toEqual([e]);
    expect(core.iommuGroups().map((g) => g.id)).toEqual([0, 1, 2]);
  });

  it('the same isolationKey behind two IOMMU instances gives two groups', () => {
    const { core } = fakeCore();
    const other = new FakeDriver({ name: 'other' });
    core.registerIommu('other', other);
    const a = fakeDevice('a', { isolationKey: 'k' });
    const b = fakeDevice('b', { isolationKey: 'k', iommuName: 'other' });
    expect(core.probeDevice(a)).toBe(0);
    expect(core.probeDevice(b)).toBe(0);
    expect(core.iommuGroupGet(a)).not.toBe(core.iommuGroupGet(b));
  });

  it('allocates a DMA default domain and attaches the device', () => {
    const { core, drv } = fakeCore();
    const dev = fakeDevice('d0');
    expect(core.probeDevice(dev)).toBe(0);
    const g = core.iommuGroupGet(dev)!;
    expect(g.defaultDomain!.type).toBe(IOMMU_DOMAIN_DMA);
    expect(g.domain).toBe(g.defaultDomain);
    expect(drv.attached.get(dev)).toBe(g.defaultDomain);
    expect(core.iommuGetDomainForDev(dev)).toBe(g.defaultDomain);
    expect(core.iommuGetDmaDomain(dev)).toBe(g.defaultDomain);
    expect(core.dma.cookieOf(g.defaultDomain!)?.type).toBe('iova');
  });

  it('passthrough gives IDENTITY default domains', () => {
    const { core } = fakeCore({}, { passthrough: true });
    const dev = fakeDevice('d0');
    expect(core.probeDevice(dev)).toBe(0);
    expect(core.iommuGroupGet(dev)!.defaultDomain!.type).toBe(IOMMU_DOMAIN_IDENTITY);
  });

  it('falls back to the other type when the driver refuses one, and to none when both', () => {
    const a = fakeCore({ refuseTypes: [IOMMU_DOMAIN_DMA] });
    const da = fakeDevice('a');
    expect(a.core.probeDevice(da)).toBe(0);
    expect(a.core.iommuGroupGet(da)!.defaultDomain!.type).toBe(IOMMU_DOMAIN_IDENTITY);

    const b = fakeCore({ refuseTypes: [IOMMU_DOMAIN_IDENTITY] }, { passthrough: true });
    const db = fakeDevice('b');
    expect(b.core.probeDevice(db)).toBe(0);
    expect(b.core.iommuGroupGet(db)!.defaultDomain!.type).toBe(IOMMU_DOMAIN_DMA);

    const c = fakeCore({ refuseTypes: [IOMMU_DOMAIN_IDENTITY, IOMMU_DOMAIN_DMA] });
    const dc = fakeDevice('c');
    expect(c.core.probeDevice(dc)).toBe(0);
    const g = c.core.iommuGroupGet(dc)!;
    expect(g.defaultDomain).toBeUndefined();
    expect(g.domain).toBeUndefined();
    expect(c.drv.attached.has(dc)).toBe(false);
  });

  it('a DMA domain whose cookie cannot be allocated counts as refused', () => {
    const { core } = fakeCore();
    core.dma.allocBudget = 0;
    const dev = fakeDevice('d0');
    expect(core.probeDevice(dev)).toBe(0);
    expect(core.iommuGroupGet(dev)!.defaultDomain!.type).toBe(IOMMU_DOMAIN_IDENTITY);
  });

  it('undoes everything when attaching the first device fails', () => {
    const { core, drv } = fakeCore();
    const before = fullSnapshot(core, drv);
    drv.failNext('attachDev', -ENOMEM);
    expect(core.probeDevice(fakeDevice('d0'))).toBe(-ENOMEM);
    expect(fullSnapshot(core, drv)).toEqual(before);
    expect(drv.callsOf('domainFree')).toHaveLength(1);
    expect(drv.callsOf('releaseDevice')).toHaveLength(1);
    expect(core.iommuGroups()).toEqual([]);
  });

  it('undoes everything when a device joining a group cannot be attached', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    expect(core.probeDevice(a)).toBe(0);
    const before = fullSnapshot(core, drv);
    drv.failNext('attachDev', -EINVAL);
    expect(core.probeDevice(fakeDevice('b', { isolationKey: 'k' }))).toBe(-EINVAL);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it("a device joining a group owned by another domain goes to the group's current domain", () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    core.probeDevice(a);
    const g = core.iommuGroupGet(a)!;
    const vfio = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuAttachGroup(vfio, g)).toBe(0);
    const b = fakeDevice('b', { isolationKey: 'k' });
    expect(core.probeDevice(b)).toBe(0);
    expect(drv.attached.get(b)).toBe(vfio);
    expect(g.domain).toBe(vfio);
  });
});

describe('releaseDevice', () => {
  it('detaches, releases, and frees the group and its default domain with the last device', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    const b = fakeDevice('b', { isolationKey: 'k' });
    core.probeDevice(a);
    core.probeDevice(b);
    const g = core.iommuGroupGet(a)!;
    const dd = g.defaultDomain!;
    core.releaseDevice(a);
    expect(drv.attached.has(a)).toBe(false);
    expect(drv.probed.has(a)).toBe(false);
    expect(g.devices).toEqual([b]);
    expect(core.iommuDomains()).toContain(dd);
    core.releaseDevice(b);
    expect(core.iommuGroups()).toEqual([]);
    expect(core.iommuDomains()).toEqual([]);
    expect(drv.domains.size).toBe(0);
    expect(g.domain).toBeUndefined();
    // Releasing again is a no-op.
    const before = fullSnapshot(core, drv);
    core.releaseDevice(b);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it('a VFIO domain survives the release of its group and can then be freed', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a');
    core.probeDevice(a);
    const vfio = core.iommuDomainAlloc(a)!;
    expect(core.iommuAttachDevice(vfio, a)).toBe(0);
    expect(core.iommuDomainFree(vfio)).toBe(-EBUSY);
    core.releaseDevice(a);
    expect(core.iommuDomains()).toEqual([vfio]);
    expect(core.iommuDomainFree(vfio)).toBe(0);
    expect(drv.domains.size).toBe(0);
  });
});

describe('domains', () => {
  it('iommuDomainAlloc: by name or device; undefined for unknown instance, unknown type, or refusal', () => {
    const { core, drv } = fakeCore({ refuseTypes: [IOMMU_DOMAIN_BLOCKED] });
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(d.type).toBe(IOMMU_DOMAIN_UNMANAGED);
    expect(core.iommuDomainAlloc(fakeDevice('x'), IOMMU_DOMAIN_IDENTITY)!.type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(core.iommuDomainAlloc('nope')).toBeUndefined();
    expect(core.iommuDomainAlloc(drv.name, 7)).toBeUndefined();
    expect(core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_BLOCKED)).toBeUndefined();
    drv.failNext('domainAlloc', -ENOMEM);
    expect(core.iommuDomainAlloc(drv.name)).toBeUndefined();
    expect(core.iommuDomainId(d)).toBeGreaterThan(0);
  });

  it('iommuDomainFree: -EINVAL twice, -EBUSY for a default domain', () => {
    const { core, drv } = fakeCore();
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuDomainFree(d)).toBe(0);
    expect(core.iommuDomainFree(d)).toBe(-EINVAL);
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    const before = fullSnapshot(core, drv);
    expect(core.iommuDomainFree(core.iommuGroupGet(dev)!.defaultDomain!)).toBe(-EBUSY);
    expect(fullSnapshot(core, drv)).toEqual(before);
  });

  it('iommuEnableNesting: UNMANAGED only, op required, driver decides (-EPERM once attached)', () => {
    const { core, drv } = fakeCore();
    const dma = core.iommuDomainAlloc(drv.name, IOMMU_DOMAIN_DMA)!;
    expect(core.iommuEnableNesting(dma)).toBe(-EINVAL);
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuDomainIsNesting(d)).toBe(false);
    expect(core.iommuEnableNesting(d)).toBe(0);
    expect(core.iommuDomainIsNesting(d)).toBe(true);

    const dev = fakeDevice('a');
    core.probeDevice(dev);
    const d2 = core.iommuDomainAlloc(drv.name)!;
    core.iommuAttachDevice(d2, dev);
    expect(core.iommuEnableNesting(d2)).toBe(-EPERM);
    expect(core.iommuDomainIsNesting(d2)).toBe(false);

    const bare = fakeCore({ name: 'bare', omit: ['enableNesting'] });
    const d3 = bare.core.iommuDomainAlloc('bare')!;
    expect(bare.core.iommuEnableNesting(d3)).toBe(-EINVAL);
  });

  it('iommuCapable asks the instance', () => {
    const { core, drv } = fakeCore();
    expect(core.iommuCapable(drv.name, 'cache-coherency')).toBe(true);
    expect(core.iommuCapable(drv.name, 'intr-remap')).toBe(false);
    expect(core.iommuCapable('nope', 'cache-coherency')).toBe(false);
  });
});

describe('attach and detach', () => {
  it('iommuAttachDevice: -ENODEV unprobed, -EINVAL in a shared group, -EBUSY outside the default domain', () => {
    const { core, drv } = fakeCore();
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuAttachDevice(d, fakeDevice('nobody'))).toBe(-ENODEV);
    const a = fakeDevice('a', { isolationKey: 'k' });
    const b = fakeDevice('b', { isolationKey: 'k' });
    core.probeDevice(a);
    core.probeDevice(b);
    let before = fullSnapshot(core, drv);
    expect(core.iommuAttachDevice(d, a)).toBe(-EINVAL);
    expect(fullSnapshot(core, drv)).toEqual(before);

    const c = fakeDevice('c');
    core.probeDevice(c);
    expect(core.iommuAttachDevice(d, c)).toBe(0);
    const d2 = core.iommuDomainAlloc(drv.name)!;
    before = fullSnapshot(core, drv);
    expect(core.iommuAttachDevice(d2, c)).toBe(-EBUSY);
    expect(fullSnapshot(core, drv)).toEqual(before);
    core.iommuDetachDevice(d, c);
    expect(core.iommuGetDomainForDev(c)).toBe(core.iommuGroupGet(c)!.defaultDomain);
    expect(drv.attached.get(c)).toBe(core.iommuGroupGet(c)!.defaultDomain);
    expect(core.iommuAttachDevice(d2, c)).toBe(0);
  });

  it('iommuAttachGroup attaches every member; a failure rolls back to the default domain', () => {
    const { core, drv } = fakeCore();
    const devs = ['a', 'b', 'c'].map((n) => fakeDevice(n, { isolationKey: 'k' }));
    for (const d of devs) core.probeDevice(d);
    const g = core.iommuGroupGet(devs[0]!)!;
    const dd = g.defaultDomain!;
    const vfio = core.iommuDomainAlloc(drv.name)!;
    const before = fullSnapshot(core, drv);
    drv.failNext('attachDev', -ENOMEM, { skip: 2 });
    expect(core.iommuAttachGroup(vfio, g)).toBe(-ENOMEM);
    expect(fullSnapshot(core, drv)).toEqual(before);
    for (const d of devs) expect(drv.attached.get(d)).toBe(dd);

    expect(core.iommuAttachGroup(vfio, g)).toBe(0);
    expect(g.domain).toBe(vfio);
    for (const d of devs) expect(drv.attached.get(d)).toBe(vfio);
    expect(core.snapshot().domains.find((x) => x.id === core.iommuDomainId(vfio))!.groups).toEqual([g.id]);
  });

  it('rollback without a default domain detaches the devices already attached', () => {
    const { core, drv } = fakeCore({ refuseTypes: [IOMMU_DOMAIN_DMA, IOMMU_DOMAIN_IDENTITY] });
    const devs = ['a', 'b'].map((n) => fakeDevice(n, { isolationKey: 'k' }));
    for (const d of devs) core.probeDevice(d);
    const g = core.iommuGroupGet(devs[0]!)!;
    const vfio = core.iommuDomainAlloc(drv.name)!;
    drv.failNext('attachDev', -ENOMEM, { skip: 1 });
    expect(core.iommuAttachGroup(vfio, g)).toBe(-ENOMEM);
    expect(drv.attached.size).toBe(0);
    expect(g.domain).toBeUndefined();
    // Without a default domain a group may be attached and detached freely.
    expect(core.iommuAttachGroup(vfio, g)).toBe(0);
    core.iommuDetachGroup(vfio, g);
    expect(g.domain).toBeUndefined();
    expect(drv.attached.size).toBe(0);
  });

  it('iommuDetachGroup returns the group to its default domain; other domains are a no-op', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a');
    core.probeDevice(a);
    const g = core.iommuGroupGet(a)!;
    const vfio = core.iommuDomainAlloc(drv.name)!;
    const stranger = core.iommuDomainAlloc(drv.name)!;
    core.iommuAttachGroup(vfio, g);
    const before = fullSnapshot(core, drv);
    core.iommuDetachGroup(stranger, g);
    core.iommuDetachGroup(g.defaultDomain!, g);
    expect(fullSnapshot(core, drv)).toEqual(before);
    core.iommuDetachGroup(vfio, g);
    expect(g.domain).toBe(g.defaultDomain);
    expect(core.iommuDomainFree(vfio)).toBe(0);
  });

  it('a failed re-attach on detach is a WARN and the group stays put', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a');
    core.probeDevice(a);
    const g = core.iommuGroupGet(a)!;
    const vfio = core.iommuDomainAlloc(drv.name)!;
    core.iommuAttachGroup(vfio, g);
    drv.failNext('attachDev', -ENOMEM);
    core.iommuDetachGroup(vfio, g);
    expect(g.domain).toBe(vfio);
    expect(core.warnings).toHaveLength(1);
  });

  it('iommuDetachDevice on a shared group is a WARN and changes nothing', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    core.probeDevice(a);
    core.probeDevice(fakeDevice('b', { isolationKey: 'k' }));
    const before = fullSnapshot(core, drv);
    core.iommuDetachDevice(core.iommuGroupGet(a)!.defaultDomain!, a);
    expect(fullSnapshot(core, drv)).toEqual(before);
    expect(core.warnings).toHaveLength(1);
  });

  it('attaching to a released group is -ENODEV; a freed domain -EINVAL', () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a');
    core.probeDevice(a);
    const g = core.iommuGroupGet(a)!;
    const d = core.iommuDomainAlloc(drv.name)!;
    core.releaseDevice(a);
    expect(core.iommuAttachGroup(d, g)).toBe(-ENODEV);
    const b = fakeDevice('b');
    core.probeDevice(b);
    core.iommuDomainFree(d);
    expect(core.iommuAttachDevice(d, b)).toBe(-EINVAL);
  });

  it('iommuGroupForEachDev stops at the first non-zero result', () => {
    const { core } = fakeCore();
    const devs = ['a', 'b', 'c'].map((n) => fakeDevice(n, { isolationKey: 'k' }));
    for (const d of devs) core.probeDevice(d);
    const seen: string[] = [];
    const r = core.iommuGroupForEachDev(core.iommuGroupGet(devs[0]!)!, (d) => {
      seen.push(d.name);
      return d.name === 'b' ? -EBUSY : 0;
    });
    expect(r).toBe(-EBUSY);
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('guest MSI entry points (§1.4)', () => {
  it('bind: -ENODEV without the callback; unbind: no-op without it', () => {
    const { core } = fakeCore({ omit: ['bindGuestMsi', 'unbindGuestMsi'] });
    const d = core.iommuDomainAlloc('fake')!;
    expect(core.iommuBindGuestMsi(d, 0x8000000, 0x9000000, SZ_4K)).toBe(-ENODEV);
    core.iommuUnbindGuestMsi(d, 0x8000000);
  });

  it("bind goes through the driver to dma-iommu's nested cookie", () => {
    const { core, drv } = fakeCore();
    const d = core.iommuDomainAlloc(drv.name)!;
    expect(core.iommuBindGuestMsi(d, 0x8000000, 0x9000000, SZ_4K)).toBe(-EINVAL);
    core.iommuEnableNesting(d);
    expect(core.iommuGetMsiCookie(d, 0x8000000)).toBe(0);
    expect(core.dma.cookieOf(d)!.type).toBe('nested-msi');
    expect(core.iommuBindGuestMsi(d, 0x8000123, 0x9000456, SZ_4K)).toBe(0);
    expect(core.dma.cookieOf(d)!.msiPages).toEqual([
      { iova: 0x8000000, phys: undefined, gpa: 0x9000000, s1Granule: SZ_4K },
    ]);
    core.iommuUnbindGuestMsi(d, 0x8000fff);
    expect(core.dma.cookieOf(d)!.msiPages).toEqual([]);
    expect(drv.callsOf('unbindGuestMsi')).toHaveLength(1);
  });
});

describe('device fault handlers', () => {
  it('register: -EINVAL unprobed, -EBUSY twice; unregister: -EINVAL unprobed, else 0', () => {
    const { core } = fakeCore();
    const h = () => 0;
    const stranger = fakeDevice('s');
    expect(core.iommuRegisterDeviceFaultHandler(stranger, h, undefined)).toBe(-EINVAL);
    expect(core.iommuUnregisterDeviceFaultHandler(stranger)).toBe(-EINVAL);
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    expect(core.iommuUnregisterDeviceFaultHandler(dev)).toBe(0);
    expect(core.iommuRegisterDeviceFaultHandler(dev, h, 1)).toBe(0);
    const before = core.snapshot();
    expect(core.iommuRegisterDeviceFaultHandler(dev, () => 1, 2)).toBe(-EBUSY);
    expect(core.snapshot()).toEqual(before);
    expect(core.iommuUnregisterDeviceFaultHandler(dev)).toBe(0);
    expect(core.snapshot().devices[0]!.handler).toBe(false);
  });

  it('report: -EINVAL without a handler (dropped), else the handler result (delivered)', () => {
    const { core } = fakeCore();
    expect(core.iommuReportDeviceFault(fakeDevice('s'), FAULT)).toBe(-EINVAL);
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    expect(core.iommuReportDeviceFault(dev, FAULT)).toBe(-EINVAL);
    const got: [IommuFault, unknown][] = [];
    core.iommuRegisterDeviceFaultHandler(
      dev,
      (f, data) => {
        got.push([f, data]);
        return -ENOSYS;
      },
      'ctx',
    );
    expect(core.iommuReportDeviceFault(dev, FAULT)).toBe(-ENOSYS);
    expect(got).toEqual([[FAULT, 'ctx']]);
    expect(core.iommuDeviceFaultStats(dev)).toEqual({ delivered: 1, dropped: 1 });
    expect(core.iommuDeviceFaultStats(fakeDevice('s'))).toBeUndefined();
  });

  it('the services a driver receives route faults to the handler', () => {
    const core = new IommuCore();
    const drv = new FakeDriver();
    const s = core.registerIommu('fake', drv);
    if (typeof s === 'number') throw new Error('register');
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    let n = 0;
    core.iommuRegisterDeviceFaultHandler(
      dev,
      () => {
        n++;
        return 0;
      },
      undefined,
    );
    expect(s.reportDeviceFault(dev, FAULT)).toBe(0);
    expect(n).toBe(1);
  });

  it('releasing the device drops its handler', () => {
    const { core } = fakeCore();
    const dev = fakeDevice('a');
    core.probeDevice(dev);
    core.iommuRegisterDeviceFaultHandler(dev, () => 0, undefined);
    core.releaseDevice(dev);
    core.probeDevice(dev);
    expect(core.iommuRegisterDeviceFaultHandler(dev, () => 0, undefined)).toBe(0);
  });

  it('the legacy domain handler: -ENOSYS without one', () => {
    const { core, drv } = fakeCore();
    const d = core.iommuDomainAlloc(drv.name)!;
    const dev = fakeDevice('a');
    expect(core.reportIommuFault(d, dev, 0x1000, 0)).toBe(-ENOSYS);
    core.iommuSetFaultHandler(d, (_d, _dev, iova) => (iova === 0x1000 ? 0 : -EINVAL));
    expect(core.reportIommuFault(d, dev, 0x1000, 0)).toBe(0);
  });
});

describe('reserved regions', () => {
  it("device regions are the driver's; group regions merge same-type overlaps", () => {
    const { core, drv } = fakeCore();
    const a = fakeDevice('a', { isolationKey: 'k' });
    const b = fakeDevice('b', { isolationKey: 'k' });
    expect(core.iommuGetResvRegions(a)).toEqual([]);
    drv.resvRegions = [
      { start: 0x800_0000, length: 0x10_0000, prot: IOMMU_WRITE, type: 'sw-msi' },
      { start: 0x1000, length: 0x2000, prot: IOMMU_READ, type: 'reserved' },
    ];
    core.probeDevice(a);
    core.probeDevice(b);
    expect(core.iommuGetResvRegions(a)).toEqual(drv.resvRegions);
    // Both members report the same regions: the group lists each once, sorted by start.
    const g = core.iommuGroupGet(a)!;
    expect(core.iommuGetGroupResvRegions(g)).toEqual([
      { start: 0x1000, length: 0x2000, prot: IOMMU_READ, type: 'reserved' },
      { start: 0x800_0000, length: 0x10_0000, prot: IOMMU_WRITE, type: 'sw-msi' },
    ]);
    drv.resvRegions = [
      { start: 0x1000, length: 0x2000, prot: IOMMU_READ, type: 'reserved' },
      { start: 0x3000, length: 0x1000, prot: IOMMU_READ, type: 'reserved' },
      { start: 0x2000, length: 0x4000, prot: IOMMU_READ, type: 'direct' },
    ];
    expect(core.iommuGetGroupResvRegions(g)).toEqual([
      { start: 0x1000, length: 0x3000, prot: IOMMU_READ, type: 'reserved' },
      { start: 0x2000, length: 0x4000, prot: IOMMU_READ, type: 'direct' },
    ]);
  });

  it('a driver without getResvRegions reports none', () => {
    const { core } = fakeCore({ omit: ['getResvRegions'] });
    const a = fakeDevice('a');
    core.probeDevice(a);
    expect(core.iommuGetResvRegions(a)).toEqual([]);
  });

  it("'direct' regions are identity-mapped in a DMA default domain and reserved from its IOVAs", () => {
    const { core, drv } = fakeCore({
      resvRegions: [{ start: 0x10_0000, length: 0x2000, prot: IOMMU_READ | IOMMU_WRITE, type: 'direct' }],
    });
    const a = fakeDevice('a');
    core.probeDevice(a);
    const dd = core.iommuGroupGet(a)!.defaultDomain!;
    expect(core.iommuIovaToPhys(dd, 0x10_1000)).toBe(0x10_1000);
    expect(core.iommuDomainMappedBytes(dd)).toBe(0x2000);
    expect(drv.callsOf('flushIotlbAll')).toHaveLength(1);
    const ranges = core.dma.cookieOf(dd)!.iovad!.ranges;
    expect(ranges).toContainEqual({ lo: 0x100, hi: 0x101, reserved: true });
  });
});

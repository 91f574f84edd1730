/**
 * The type1 backend (vfio_iommu_type1.c, v5.10) on the host's SMMUv3s and on the fake IOMMU
 * driver (for failure injection): open and extensions, group attach/detach with domains, IOVA
 * ranges and MSI cookies, GET_INFO, MAP/UNMAP_DMA with their check order, v1 and v2 unmap
 * semantics, pinning and RLIMIT_MEMLOCK, replay into a second domain, hugetlb blocks, release —
 * every refusal checked to change nothing — and a property against an interval model.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACCESS_READ, ACCESS_WRITE, type Access } from '../../arch/vmsa.ts';
import { TXN_OK } from '../../hw/smmuv3/smmu.ts';
import {
  EBUSY,
  EEXIST,
  EFAULT,
  EINVAL,
  EIO,
  ENODEV,
  ENOMEM,
  ENOSPC,
  ENOTTY,
  EPERM,
} from '../../uapi/errno.ts';
import { MAP_HUGETLB, MAP_POPULATE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SET_PASID_TABLE,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
} from '../../uapi/vfio.ts';
import {
  decodeIovaRangeCap,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  vfio_dma_unmap_with_bitmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_dma_avail,
  walkInfoCaps,
} from '../../uapi/vfio-type1.ts';
import type { Host } from '../host.ts';
import type { FakeDomain, FakeDriver } from '../iommu/fake-driver.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../iommu/types.ts';
import { PAGE_SIZE } from '../kernel/mm.ts';
import type { Process } from '../kernel/process.ts';
import { IoctlArg } from '../uaccess.ts';
import { VfioIommuType1, vfioIommuType1CheckExtension, vfioIommuType1Driver } from './type1.ts';
import {
  doMap,
  doUnmap,
  fakeRig,
  infoBuf,
  mapBuf,
  openType1,
  RW,
  type Type1Rig,
  type1Rig,
  type1Snapshot,
  unmapBuf,
} from './type1-testing.ts';

const PG = PAGE_SIZE;
const SZ_2M = 0x20_0000;
/** An IOVA above the SMMU's software MSI window (0x800_0000..0x810_0000). */
const IOVA = 0x1000_0000;
const U64_MAX = (1n << 64n) - 1n;
const TOP48 = (1n << 48n) - 1n;

/** RW anonymous memory, populated (so that pinning allocates nothing). */
function populated(proc: Process, pages: number, prot = PROT_READ | PROT_WRITE): number {
  const va = proc.mm.mmap(pages * PG, prot, MAP_PRIVATE | MAP_POPULATE);
  if (va < 0) throw new Error(`mmap: ${va}`);
  return va;
}

interface Attached extends Type1Rig {
  readonly c: VfioIommuType1;
  readonly sid: number;
  snap(): unknown;
}

/** One device (SID 8) on smmu0, in a container of `type`, attached. */
function attached(type = VFIO_TYPE1v2_IOMMU, hostOpts = {}): Attached {
  const r = type1Rig(hostOpts);
  const { group } = r.addDevice('d0', 8);
  const c = openType1(r.host.iommu, type);
  expect(c.attachGroup(group)).toBe(0);
  return { ...r, c, sid: 8, snap: () => type1Snapshot(c, r.proc, r.host.iommu, r.host.memory) };
}

/** The PA a device's DMA at `iova` reaches through `smmu`, or undefined on a fault. */
function dmaPa(
  host: Host,
  sid: number,
  iova: number,
  access: Access = ACCESS_READ,
  smmu = 'smmu0',
): number | undefined {
  const res = host
    .smmu(smmu)
    .hw.transact({ streamId: sid, substreamId: -1, iova, size: 8, access, privileged: false });
  return res.status === TXN_OK ? res.pa[0] : undefined;
}

function pa(proc: Process, va: number): number {
  const p = proc.mm.translate(va, 'read', false);
  if (p === undefined) throw new Error('not backed');
  return p;
}

// ================================================================ open and extensions

describe('open and VFIO_CHECK_EXTENSION', () => {
  it('TYPE1 is v1, TYPE1v2 v2, NESTING v2 with nesting; anything else is EINVAL', () => {
    const r = type1Rig();
    const t1 = openType1(r.host.iommu, VFIO_TYPE1_IOMMU);
    const t2 = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU);
    const tn = openType1(r.host.iommu, VFIO_TYPE1_NESTING_IOMMU);
    expect([t1.v2, t1.nesting, t2.v2, t2.nesting, tn.v2, tn.nesting]).toEqual([
      false,
      false,
      true,
      false,
      true,
      true,
    ]);
    for (const bad of [0, VFIO_SPAPR_TCE_IOMMU, VFIO_DMA_CC_IOMMU, 7, 8, VFIO_UNMAP_ALL, -1])
      expect(VfioIommuType1.open(r.host.iommu, bad)).toBe(-EINVAL);
    expect(t2.stats()).toEqual({
      pinnedPages: 0,
      lockedPages: 0,
      domains: 0,
      groups: 0,
      dmaEntries: 0,
      dmaAvail: 65535,
    });
    expect(t2.pgsizeBitmap()).toBe(0n);
    expect(t2.iovaRanges()).toEqual([]);
  });

  it('reports TYPE1, TYPE1v2 and NESTING; DMA_CC only with a container; never UNMAP_ALL / UPDATE_VADDR', () => {
    for (const e of [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_NESTING_IOMMU])
      expect(vfioIommuType1CheckExtension(undefined, e)).toBe(1);
    for (const e of [0, VFIO_SPAPR_TCE_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, 99])
      expect(vfioIommuType1CheckExtension(undefined, e)).toBe(0);
    const drv = vfioIommuType1Driver(type1Rig().host.iommu);
    expect(drv.name).toBe('vfio-iommu-type1');
    expect(drv.checkExtension(VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(drv.open(5)).toBe(-EINVAL);
    expect(drv.open(VFIO_TYPE1v2_IOMMU)).toBeInstanceOf(VfioIommuType1);
  });

  it('DMA_CC_IOMMU: 1 with no domain, then whether every domain enforces coherency', () => {
    const f = fakeRig();
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
    expect(c.checkExtension(VFIO_DMA_CC_IOMMU)).toBe(1);
    expect(c.attachGroup(f.addDevice('a').group)).toBe(0);
    // The fake IOMMU is coherent: the domain maps with IOMMU_CACHE.
    expect(c.domains[0]!.prot).toBe(IOMMU_CACHE);
    expect(
      c.ioctl(
        f.proc,
        VFIO_CHECK_EXTENSION,
        new IoctlArg(VFIO_DMA_CC_IOMMU, IoctlArg.ofBuffer(new Uint8Array()).ptr),
      ),
    ).toBe(1);
    const a = attached();
    const coherent = a.host.iommu.iommuCapable('smmu0', 'cache-coherency');
    expect(a.c.checkExtension(VFIO_DMA_CC_IOMMU)).toBe(coherent ? 1 : 0);
    expect(a.c.domains[0]!.prot).toBe(coherent ? IOMMU_CACHE : 0);
  });

  it('the dispatcher knows CHECK_EXTENSION, GET_INFO, MAP_DMA, UNMAP_DMA; anything else is ENOTTY', () => {
    const a = attached();
    const va = populated(a.proc, 1);
    expect(
      a.c.ioctl(a.proc, VFIO_IOMMU_MAP_DMA, IoctlArg.ofBuffer(mapBuf({ vaddr: va, iova: IOVA, size: PG }))),
    ).toBe(0);
    const info = infoBuf(128);
    expect(a.c.ioctl(a.proc, VFIO_IOMMU_GET_INFO, IoctlArg.ofBuffer(info))).toBe(0);
    expect(
      a.c.ioctl(a.proc, VFIO_IOMMU_UNMAP_DMA, IoctlArg.ofBuffer(unmapBuf({ iova: IOVA, size: PG }))),
    ).toBe(0);
    for (const req of [VFIO_IOMMU_SET_PASID_TABLE, 0x3b73, 0x3b75, 0])
      expect(a.c.ioctl(a.proc, req, IoctlArg.ofBuffer(new Uint8Array(64)))).toBe(-ENOTTY);
  });
});

// ================================================================ attach / detach

describe('attachGroup on an SMMUv3', () => {
  it('allocates a domain, attaches the group, takes the SW-MSI cookie and narrows the IOVA ranges', () => {
    const a = attached();
    const { domain, groups } = a.c.domains[0]!;
    expect(groups.map((g) => g.id)).toEqual([0]);
    expect(groups[0]!.domain).toBe(domain);
    expect(a.c.pgsizeBitmap()).toBe(BigInt(domain.pgsizeBitmap));
    expect(a.c.pgsizeBitmap()).toBe(0x4020_1000n); // 4K | 2M | 1G
    expect(a.c.iovaRanges()).toEqual([
      { start: 0n, end: 0x7ff_ffffn },
      { start: 0x810_0000n, end: TOP48 },
    ]);
    const d = a.host.iommu.snapshot().domains.find((x) => x.id === a.host.iommu.iommuDomainId(domain));
    expect(d?.type).toBe('unmanaged');
    expect(d?.cookie?.type).toBe('msi');
    expect(d?.cookie?.msiIova).toBe(0x800_0000);
  });

  it('a second group on the same SMMU joins the compatible domain (front of its group list)', () => {
    const a = attached();
    const { group } = a.addDevice('d1', 9);
    const before = a.host.iommu.iommuDomains().length;
    expect(a.c.attachGroup(group)).toBe(0);
    expect(a.c.domains.length).toBe(1);
    expect(a.c.domains[0]!.groups.map((g) => g.id)).toEqual([1, 0]);
    expect(a.host.iommu.iommuDomains().length).toBe(before);
    expect(group.domain).toBe(a.c.domains[0]!.domain);
  });

  it('a group on another SMMU gets its own domain, at the front of the list', () => {
    const r = type1Rig({ smmus: [{ name: 'smmu0' }, { name: 'smmu1' }] });
    const g0 = r.addDevice('a', 8, 'smmu0').group;
    const g1 = r.addDevice('b', 8, 'smmu1').group;
    const c = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU);
    expect(c.attachGroup(g0)).toBe(0);
    expect(c.attachGroup(g1)).toBe(0);
    expect(c.domains.map((d) => d.groups[0]!.id)).toEqual([g1.id, g0.id]);
    expect(c.domains[0]!.domain).not.toBe(c.domains[1]!.domain);
    expect(c.stats().domains).toBe(2);
  });

  it('attaching a group twice is EINVAL; a group another container holds is EBUSY; nothing changes', () => {
    const a = attached();
    const g = a.c.domains[0]!.groups[0]!;
    const before = a.snap();
    expect(a.c.attachGroup(g)).toBe(-EINVAL);
    expect(a.snap()).toEqual(before);
    const other = openType1(a.host.iommu, VFIO_TYPE1v2_IOMMU);
    const otherBefore = type1Snapshot(other, a.proc, a.host.iommu, a.host.memory);
    expect(other.attachGroup(g)).toBe(-EBUSY);
    expect(type1Snapshot(other, a.proc, a.host.iommu, a.host.memory)).toEqual(otherBefore);
    expect(a.snap()).toEqual(before);
  });

  it('the SW-MSI cookie failing (ENOMEM) undoes the attach', () => {
    const r = type1Rig();
    const { group } = r.addDevice('d0', 8);
    const c = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU);
    const before = type1Snapshot(c, r.proc, r.host.iommu, r.host.memory);
    r.host.iommu.dma.allocBudget = 0;
    expect(c.attachGroup(group)).toBe(-ENOMEM);
    expect(type1Snapshot(c, r.proc, r.host.iommu, r.host.memory)).toEqual(before);
    expect(group.domain).toBe(group.defaultDomain);
    r.host.iommu.dma.allocBudget = Number.POSITIVE_INFINITY;
    expect(c.attachGroup(group)).toBe(0);
  });

  it('a NESTING container enables nesting on its domains; DMA goes through stage 2', () => {
    const a = attached(VFIO_TYPE1_NESTING_IOMMU);
    const { domain } = a.c.domains[0]!;
    expect(a.host.iommu.iommuDomainIsNesting(domain)).toBe(true);
    const snap = a.host.iommu.snapshot().domains.find((x) => x.id === a.host.iommu.iommuDomainId(domain));
    expect(snap?.cookie?.type).toBe('nested-msi');
    const va = populated(a.proc, 2);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 2 * PG })).toBe(0);
    expect(dmaPa(a.host, a.sid, IOVA + PG + 8)).toBe(pa(a.proc, va + PG + 8));
  });
});

describe('attachGroup failures (fake IOMMU), each leaving everything as it was', () => {
  function fakeAttached(opts: Parameters<typeof fakeRig>[0] = {}) {
    const f = fakeRig(opts);
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
    const g = f.addDevice('a').group;
    const snap = (...extra: FakeDriver[]) => type1Snapshot(c, f.proc, f.core, f.mem, [f.drv, ...extra]);
    return { ...f, c, g, snap };
  }

  it('no domain from the IOMMU: EIO', () => {
    const f = fakeAttached();
    const before = f.snap();
    f.drv.failNext('domainAlloc', -ENOMEM);
    expect(f.c.attachGroup(f.g)).toBe(-EIO);
    expect(f.snap()).toEqual(before);
  });

  it('the IOMMU refusing the group: its errno, the new domain freed', () => {
    const f = fakeAttached();
    const before = f.snap();
    f.drv.failNext('attachDev', -ENODEV);
    expect(f.c.attachGroup(f.g)).toBe(-ENODEV);
    expect(f.snap()).toEqual(before);
    expect(f.drv.domains.size).toBe(1); // only the group's default domain
  });

  it('NESTING: an IOMMU without enable_nesting is EINVAL; the driver refusing, its errno', () => {
    const f = fakeRig({ omit: ['enableNesting'] });
    const c = openType1(f.core, VFIO_TYPE1_NESTING_IOMMU);
    const g = f.addDevice('a').group;
    const before = type1Snapshot(c, f.proc, f.core, f.mem, [f.drv]);
    expect(c.attachGroup(g)).toBe(-EINVAL);
    expect(type1Snapshot(c, f.proc, f.core, f.mem, [f.drv])).toEqual(before);
    const f2 = fakeAttached();
    const n = openType1(f2.core, VFIO_TYPE1_NESTING_IOMMU);
    f2.drv.failNext('enableNesting', -EPERM);
    expect(n.attachGroup(f2.g)).toBe(-EPERM);
    expect(n.attachGroup(f2.g)).toBe(0);
    expect((n.domains[0]!.domain as FakeDomain).nesting).toBe(true);
  });

  it('members on different buses: EINVAL before any domain is allocated', () => {
    const f = fakeAttached();
    f.addDevice('p', { isolationKey: 'k', bus: 'pci' });
    const { group } = f.addDevice('q', { isolationKey: 'k', bus: 'platform' });
    expect(group.devices.length).toBe(2);
    const before = f.snap();
    f.drv.clearCalls();
    expect(f.c.attachGroup(group)).toBe(-EINVAL);
    expect(f.drv.callsOf('domainAlloc')).toEqual([]);
    expect(f.snap()).toEqual(before);
  });

  it('no MSI isolation (no ITS MSI remapping, no INTR_REMAP): EPERM unless allow_unsafe_interrupts', () => {
    const f = fakeRig();
    const g = f.addDevice('a').group;
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU, { irqDomainMsiRemap: false });
    const before = type1Snapshot(c, f.proc, f.core, f.mem, [f.drv]);
    expect(c.attachGroup(g)).toBe(-EPERM);
    expect(type1Snapshot(c, f.proc, f.core, f.mem, [f.drv])).toEqual(before);
    const u = openType1(f.core, VFIO_TYPE1v2_IOMMU, {
      irqDomainMsiRemap: false,
      allowUnsafeInterrupts: true,
    });
    expect(u.attachGroup(g)).toBe(0);
  });

  it('reserved regions: excluded from the ranges; one holding a mapping is EINVAL; none left is EINVAL', () => {
    const f = fakeAttached();
    expect(f.c.attachGroup(f.g)).toBe(0);
    const va = populated(f.proc, 4);
    expect(doMap(f.c, f.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    f.drv.resvRegions = [{ start: IOVA + PG, length: PG, prot: 0, type: 'reserved' }];
    const g2 = f.addDevice('b').group;
    const before = f.snap();
    expect(f.c.attachGroup(g2)).toBe(-EINVAL);
    expect(f.snap()).toEqual(before);
    // A region away from the mapping narrows the ranges.
    f.drv.resvRegions = [{ start: 0x2000_0000, length: 0x10_0000, prot: 0, type: 'direct' }];
    expect(f.c.attachGroup(g2)).toBe(0);
    expect(f.c.iovaRanges()).toEqual([
      { start: 0n, end: 0x1fff_ffffn },
      { start: 0x2010_0000n, end: TOP48 },
    ]);
    // Detaching recomputes the ranges from the reserved regions of the groups left.
    f.drv.resvRegions = [];
    f.c.detachGroup(g2);
    expect(f.c.iovaRanges()).toEqual([{ start: 0n, end: TOP48 }]);
    // A group whose reserved regions cover the whole aperture cannot be used at all.
    const e = fakeRig({ resvRegions: [{ start: 0, length: 2 ** 48, prot: 0, type: 'reserved' }] });
    const ce = openType1(e.core, VFIO_TYPE1v2_IOMMU);
    const ge = e.addDevice('x').group;
    const eb = type1Snapshot(ce, e.proc, e.core, e.mem, [e.drv]);
    expect(ce.attachGroup(ge)).toBe(-EINVAL);
    expect(type1Snapshot(ce, e.proc, e.core, e.mem, [e.drv])).toEqual(eb);
  });

  it('an aperture that leaves out a mapping (or every range) is EINVAL; a narrower one without conflict narrows the ranges', () => {
    const f = fakeAttached();
    expect(f.c.attachGroup(f.g)).toBe(0);
    const va = populated(f.proc, 1);
    expect(doMap(f.c, f.proc, { vaddr: va, iova: 2 ** 40, size: PG })).toBe(0);
    const d2 = f.addDriver({ aperture: [0, 2 ** 32 - 1] });
    const g2 = f.addDevice('b', { iommu: 'fake2' }).group;
    const before = f.snap(d2);
    expect(f.c.attachGroup(g2)).toBe(-EINVAL);
    expect(f.snap(d2)).toEqual(before);
    expect(doUnmap(f.c, f.proc, { iova: 2 ** 40, size: PG }).ret).toBe(0);
    expect(f.c.attachGroup(g2)).toBe(0);
    expect(f.c.iovaRanges()).toEqual([{ start: 0n, end: 0xffff_ffffn }]);
    // Detaching the narrow domain widens the ranges again (vfio_iommu_aper_expand).
    f.c.detachGroup(g2);
    expect(f.c.iovaRanges()).toEqual([{ start: 0n, end: TOP48 }]);
    // Disjoint from every range.
    const d3 = fakeRig({ name: 'fake' });
    const c3 = openType1(d3.core, VFIO_TYPE1v2_IOMMU);
    expect(c3.attachGroup(d3.addDevice('a').group)).toBe(0);
    const far = d3.addDriver({ aperture: [2 ** 49, 2 ** 50] });
    const gf = d3.addDevice('f', { iommu: 'fake2' }).group;
    const b3 = type1Snapshot(c3, d3.proc, d3.core, d3.mem, [d3.drv, far]);
    expect(c3.attachGroup(gf)).toBe(-EINVAL);
    expect(type1Snapshot(c3, d3.proc, d3.core, d3.mem, [d3.drv, far])).toEqual(b3);
  });

  it('a hardware MSI region takes precedence over the software one: no MSI cookie', () => {
    const sw = { start: 0x800_0000, length: 0x10_0000, prot: 0, type: 'sw-msi' as const };
    const hw = { start: 0xfee0_0000, length: 0x10_0000, prot: 0, type: 'msi' as const };
    const cookieType = (regions: (typeof sw | typeof hw)[]) => {
      const f = fakeRig({ resvRegions: regions });
      const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
      expect(c.attachGroup(f.addDevice('a').group)).toBe(0);
      const id = f.core.iommuDomainId(c.domains[0]!.domain);
      return f.core.snapshot().domains.find((d) => d.id === id)?.cookie ?? null;
    };
    expect(cookieType([sw])).toMatchObject({ type: 'msi', msiIova: 0x800_0000 });
    expect(cookieType([sw, hw])).toBeNull();
  });

  it('replay failing in a new domain undoes the replay (unmapped, nothing pinned for it)', () => {
    const f = fakeAttached();
    expect(f.c.attachGroup(f.g)).toBe(0);
    const va = populated(f.proc, 8);
    expect(doMap(f.c, f.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    expect(doMap(f.c, f.proc, { vaddr: va + 4 * PG, iova: IOVA + 0x10_0000, size: 4 * PG })).toBe(0);
    const d2 = f.addDriver();
    const g2 = f.addDevice('b', { iommu: 'fake2' }).group;
    const before = f.snap(d2);
    d2.failNext('map', -ENOMEM, { skip: 1 });
    expect(f.c.attachGroup(g2)).toBe(-ENOMEM);
    expect(f.snap(d2)).toEqual(before);
    expect(d2.domains.size).toBe(1); // g2's default domain only
    expect(f.c.attachGroup(g2)).toBe(0);
    const dom2 = f.c.domains[0]!.domain as FakeDomain;
    expect([...dom2.mappings.values()].reduce((n, m) => n + m.size, 0)).toBe(8 * PG);
  });

  it('mappings made before any domain are pinned by the first attach; a failure there pins nothing', () => {
    const f = fakeRig();
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
    const g = f.addDevice('a').group;
    const va = populated(f.proc, 4);
    expect(doMap(c, f.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    expect(c.stats().pinnedPages).toBe(0);
    expect(f.proc.mm.stats.pinnedPages).toBe(0);
    const before = type1Snapshot(c, f.proc, f.core, f.mem, [f.drv]);
    f.proc.mm.memlockLimit = 2 * PG;
    expect(c.attachGroup(g)).toBe(-ENOMEM);
    expect(type1Snapshot(c, f.proc, f.core, f.mem, [f.drv])).toEqual(before);
    f.proc.mm.memlockLimit = Number.POSITIVE_INFINITY;
    f.drv.failNext('map', -EIO);
    expect(c.attachGroup(g)).toBe(-EIO);
    expect(type1Snapshot(c, f.proc, f.core, f.mem, [f.drv])).toEqual(before);
    expect(c.attachGroup(g)).toBe(0);
    expect(c.stats().pinnedPages).toBe(4);
    expect(f.proc.mm.lockedVm).toBe(4);
    const dom = c.domains[0]!.domain;
    for (let i = 0; i < 4; i++)
      expect(f.core.iommuIovaToPhys(dom, IOVA + i * PG)).toBe(pa(f.proc, va + i * PG));
  });

  it('a compatible domain refusing the group: the group keeps its new domain, which gets the replay', () => {
    const f = fakeAttached();
    expect(f.c.attachGroup(f.g)).toBe(0);
    const va = populated(f.proc, 2);
    expect(doMap(f.c, f.proc, { vaddr: va, iova: IOVA, size: 2 * PG })).toBe(0);
    const g2 = f.addDevice('b').group;
    // attachDev: #1 the new domain, #2 the default domain again (detach), #3 the existing domain
    // (refused), #4 the new domain again.
    f.drv.failNext('attachDev', -EINVAL, { skip: 2 });
    expect(f.c.attachGroup(g2)).toBe(0);
    expect(f.c.domains.length).toBe(2);
    expect(f.c.domains[0]!.groups).toEqual([g2]);
    const dom = f.c.domains[0]!.domain as FakeDomain;
    expect([...dom.mappings.values()].map((m) => [m.iova, m.paddr])).toEqual([
      [IOVA, pa(f.proc, va)],
      [IOVA + PG, pa(f.proc, va + PG)],
    ]);
    expect(f.c.stats().pinnedPages).toBe(2); // replay of a mapped range pins nothing more
  });
});

describe('page sizes (vfio_update_pgsize_bitmap)', () => {
  it('sizes below PAGE_SIZE are hidden behind PAGE_SIZE; several domains intersect first', () => {
    const f = fakeRig({ pgsizeBitmap: 0x200 | SZ_2M | 0x4000_0000 });
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
    expect(c.attachGroup(f.addDevice('a').group)).toBe(0);
    expect(c.pgsizeBitmap()).toBe(BigInt(PG | SZ_2M | 0x4000_0000));
    f.addDriver({ pgsizeBitmap: 0x800 | SZ_2M });
    const g2 = f.addDevice('b', { iommu: 'fake2' }).group;
    expect(c.attachGroup(g2)).toBe(0);
    expect(c.pgsizeBitmap()).toBe(BigInt(SZ_2M));
    // MAP_DMA now aligns to 2 MiB.
    const va = f.proc.mm.mmap(SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
    expect(doMap(c, f.proc, { vaddr: va, iova: 0x4000_0000, size: PG })).toBe(-EINVAL);
    expect(doMap(c, f.proc, { vaddr: va, iova: 0x4000_0000, size: SZ_2M })).toBe(0);
    expect(doUnmap(c, f.proc, { iova: 0x4000_0000, size: PG }).ret).toBe(-EINVAL);
    c.detachGroup(g2);
    expect(c.pgsizeBitmap()).toBe(BigInt(PG | SZ_2M | 0x4000_0000));
  });
});

describe('detachGroup', () => {
  it('a group of a shared domain leaves; the domain and the mappings stay', () => {
    const a = attached();
    const g0 = a.c.domains[0]!.groups[0]!;
    const { group: g1 } = a.addDevice('d1', 9);
    expect(a.c.attachGroup(g1)).toBe(0);
    const va = populated(a.proc, 2);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 2 * PG })).toBe(0);
    a.c.detachGroup(g0);
    expect(g0.domain).toBe(g0.defaultDomain);
    expect(a.c.domains.length).toBe(1);
    expect(a.c.mappings().length).toBe(1);
    expect(dmaPa(a.host, 9, IOVA)).toBe(pa(a.proc, va));
  });

  it('the last group of one of two domains frees that domain; mappings stay in the other', () => {
    const r = type1Rig({ smmus: [{ name: 'smmu0' }, { name: 'smmu1' }] });
    const g0 = r.addDevice('a', 8, 'smmu0').group;
    const g1 = r.addDevice('b', 8, 'smmu1').group;
    const c = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU);
    expect(c.attachGroup(g0)).toBe(0);
    expect(c.attachGroup(g1)).toBe(0);
    const va = populated(r.proc, 2);
    expect(doMap(c, r.proc, { vaddr: va, iova: IOVA, size: 2 * PG })).toBe(0);
    const liveBefore = r.host.iommu.iommuDomains().length;
    c.detachGroup(g1);
    expect(c.domains.length).toBe(1);
    expect(r.host.iommu.iommuDomains().length).toBe(liveBefore - 1);
    expect(c.stats().pinnedPages).toBe(2);
    expect(dmaPa(r.host, 8, IOVA + PG, ACCESS_READ, 'smmu0')).toBe(pa(r.proc, va + PG));
    expect(dmaPa(r.host, 8, IOVA + PG, ACCESS_READ, 'smmu1')).toBeUndefined();
  });

  it('the last group of the container: every mapping unmapped, unpinned and forgotten; ranges [0, 2^64-1]', () => {
    const a = attached();
    const va = populated(a.proc, 4);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    const g = a.c.domains[0]!.groups[0]!;
    a.c.detachGroup(g);
    expect(a.c.domains).toEqual([]);
    expect(a.c.mappings()).toEqual([]);
    expect(a.proc.mm.stats.pinnedPages).toBe(0);
    expect(a.proc.mm.lockedVm).toBe(0);
    expect(a.c.stats()).toMatchObject({ pinnedPages: 0, lockedPages: 0, dmaAvail: 65535 });
    expect(a.c.pgsizeBitmap()).toBe(U64_MAX ^ 0xfffn); // PAGE_MASK
    expect(a.c.iovaRanges()).toEqual([{ start: 0n, end: U64_MAX }]);
    expect(dmaPa(a.host, a.sid, IOVA)).not.toBe(pa(a.proc, va));
    // A group that is not attached changes nothing.
    const before = a.snap();
    a.c.detachGroup(g);
    expect(a.snap()).toEqual(before);
  });
});

// ================================================================ GET_INFO

describe('VFIO_IOMMU_GET_INFO', () => {
  it('with room: PGSIZES|CAPS, the page sizes, cap_offset 24, DMA_AVAIL then IOVA_RANGE', () => {
    const a = attached();
    const va = populated(a.proc, 1);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: PG })).toBe(0);
    const buf = infoBuf(256);
    expect(a.c.getInfo(IoctlArg.ofBuffer(buf))).toBe(0);
    const info = vfio_iommu_type1_info.decode(buf);
    expect(info).toMatchObject({
      argsz: 256,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x4020_1000n,
      cap_offset: 24,
    });
    const caps = walkInfoCaps(buf, info.cap_offset);
    expect(caps).toEqual([
      { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, offset: 24 },
      { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, offset: 36 },
    ]);
    expect(vfio_iommu_type1_info_dma_avail.decode(buf, 24).avail).toBe(65534);
    expect(decodeIovaRangeCap(buf, 36)).toEqual([
      { start: 0n, end: 0x7ff_ffffn },
      { start: 0x810_0000n, end: TOP48 },
    ]);
    expect(buf.subarray(84).every((b) => b === 0)).toBe(true);
  });

  it('too small for the chain: argsz raised to 84, cap_offset 0, nothing written past the struct', () => {
    const a = attached();
    const buf = infoBuf(64, 24);
    buf.fill(0xaa, 24);
    expect(a.c.getInfo(IoctlArg.ofBuffer(buf))).toBe(0);
    expect(vfio_iommu_type1_info.decode(buf)).toMatchObject({
      argsz: 84,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      cap_offset: 0,
    });
    expect(buf.subarray(24).every((b) => b === 0xaa)).toBe(true);
  });

  it('argsz 16..19 (pre-capability callers): only 16 bytes are written back', () => {
    const a = attached();
    for (const argsz of [16, 19]) {
      const buf = infoBuf(24, argsz);
      buf.fill(0x55, 16);
      expect(a.c.getInfo(IoctlArg.ofBuffer(buf))).toBe(0);
      expect(vfio_iommu_type1_info.decode(buf)).toMatchObject({ argsz: 84, iova_pgsizes: 0x4020_1000n });
      expect(buf.subarray(16).every((b) => b === 0x55)).toBe(true);
    }
  });

  it('the argument may be an address in the process memory', () => {
    const a = attached();
    const addr = populated(a.proc, 1);
    expect(a.proc.mm.writeUser(addr, vfio_iommu_type1_info.encode({ argsz: 128 }))).toBe(true);
    expect(a.c.getInfo(IoctlArg.ofValue(addr, a.proc.mm))).toBe(0);
    const back = a.proc.mm.readUser(addr, 128)!;
    expect(vfio_iommu_type1_info.decode(back)).toMatchObject({ argsz: 128, cap_offset: 24 });
    expect(walkInfoCaps(back, 24).length).toBe(2);
  });

  it('before any group: page sizes 0 and only the DMA_AVAIL capability', () => {
    const r = type1Rig();
    const c = openType1(r.host.iommu, VFIO_TYPE1_IOMMU);
    const buf = infoBuf(64);
    expect(c.getInfo(IoctlArg.ofBuffer(buf))).toBe(0);
    const info = vfio_iommu_type1_info.decode(buf);
    expect(info.iova_pgsizes).toBe(0n);
    expect(walkInfoCaps(buf, info.cap_offset).map((x) => x.id)).toEqual([VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]);
  });

  it('errors: a buffer shorter than 16 bytes EFAULT, argsz < 16 EINVAL, a chain that does not fit EFAULT', () => {
    const a = attached();
    const short = infoBuf(15, 64);
    expect(a.c.getInfo(IoctlArg.ofBuffer(short))).toBe(-EFAULT);
    const small = infoBuf(24, 15);
    const copy = small.slice();
    expect(a.c.getInfo(IoctlArg.ofBuffer(small))).toBe(-EINVAL);
    expect(small).toEqual(copy);
    // argsz claims room for the chain, the buffer has none: the copy of the chain faults first.
    const lying = infoBuf(24, 256);
    const lcopy = lying.slice();
    expect(a.c.getInfo(IoctlArg.ofBuffer(lying))).toBe(-EFAULT);
    expect(lying).toEqual(lcopy);
  });
});

// ================================================================ MAP_DMA

describe('VFIO_IOMMU_MAP_DMA', () => {
  it('pins and charges the pages, maps them, and the device reaches the pinned pages', () => {
    const a = attached();
    const va = populated(a.proc, 4);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    expect(a.c.mappings()).toEqual([
      { iova: BigInt(IOVA), size: BigInt(4 * PG), vaddr: BigInt(va), prot: IOMMU_READ | IOMMU_WRITE },
    ]);
    expect(a.proc.mm.stats.pinnedPages).toBe(4);
    expect(a.proc.mm.lockedVm).toBe(4);
    expect(a.c.stats()).toMatchObject({ pinnedPages: 4, lockedPages: 4, dmaEntries: 1, dmaAvail: 65534 });
    for (let i = 0; i < 4; i++) {
      expect(a.proc.mm.pinCount(pa(a.proc, va + i * PG))).toBe(1);
      expect(dmaPa(a.host, a.sid, IOVA + i * PG + 0x18, ACCESS_WRITE)).toBe(pa(a.proc, va + i * PG + 0x18));
    }
    expect(dmaPa(a.host, a.sid, IOVA + 4 * PG)).toBeUndefined();
  });

  it('READ-only mappings: the device may read, not write; read-only memory may be mapped READ', () => {
    const a = attached();
    const ro = populated(a.proc, 1, PROT_READ);
    expect(doMap(a.c, a.proc, { vaddr: ro, iova: IOVA, size: PG, flags: VFIO_DMA_MAP_FLAG_WRITE })).toBe(
      -EFAULT,
    );
    expect(doMap(a.c, a.proc, { vaddr: ro, iova: IOVA, size: PG, flags: VFIO_DMA_MAP_FLAG_READ })).toBe(0);
    expect(a.c.mappings()[0]!.prot).toBe(IOMMU_READ);
    expect(dmaPa(a.host, a.sid, IOVA, ACCESS_READ)).toBe(pa(a.proc, ro));
    expect(dmaPa(a.host, a.sid, IOVA, ACCESS_WRITE)).toBeUndefined();
  });

  it('unpopulated memory is faulted in by pinning', () => {
    const a = attached();
    const va = a.proc.mm.mmap(2 * PG);
    expect(a.proc.mm.translate(va, 'read', false)).toBeUndefined();
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 2 * PG })).toBe(0);
    expect(dmaPa(a.host, a.sid, IOVA + PG)).toBe(pa(a.proc, va + PG));
  });

  describe('refusals, each changing nothing', () => {
    const cases: [string, (va: number) => Uint8Array | (() => Uint8Array), number][] = [
      [
        'a buffer shorter than 32 bytes',
        (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG }).slice(0, 31),
        -EFAULT,
      ],
      ['argsz < 32', (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG, argsz: 31 }), -EINVAL],
      [
        'the v5.12 VADDR flag',
        (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG, flags: RW | VFIO_DMA_MAP_FLAG_VADDR }),
        -EINVAL,
      ],
      ['an unknown flag', (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG, flags: RW | 0x80 }), -EINVAL],
      ['neither READ nor WRITE', (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG, flags: 0 }), -EINVAL],
      ['size 0', (va) => mapBuf({ vaddr: va, iova: IOVA, size: 0 }), -EINVAL],
      ['a misaligned size', (va) => mapBuf({ vaddr: va, iova: IOVA, size: PG + 8 }), -EINVAL],
      ['a misaligned iova', (va) => mapBuf({ vaddr: va, iova: IOVA + 0x800, size: PG }), -EINVAL],
      ['a misaligned vaddr', (va) => mapBuf({ vaddr: va + 0x10, iova: IOVA, size: PG }), -EINVAL],
      [
        'an IOVA range wrapping 2^64',
        (va) => mapBuf({ vaddr: va, iova: U64_MAX - 0xfffn, size: 2 * PG }),
        -EINVAL,
      ],
      [
        'a vaddr range wrapping 2^64',
        () => mapBuf({ vaddr: U64_MAX - 0xfffn, iova: IOVA, size: 2 * PG }),
        -EINVAL,
      ],
      ['an IOVA in the SW-MSI window', (va) => mapBuf({ vaddr: va, iova: 0x800_0000, size: PG }), -EINVAL],
      [
        'a range straddling the MSI window',
        (va) => mapBuf({ vaddr: va, iova: 0x7ff_f000, size: 2 * PG }),
        -EINVAL,
      ],
      ['an IOVA beyond the aperture', (va) => mapBuf({ vaddr: va, iova: 2 ** 48, size: PG }), -EINVAL],
      ['an IOVA beyond 2^53', (va) => mapBuf({ vaddr: va, iova: 1n << 60n, size: PG }), -EINVAL],
      ['an unmapped vaddr', () => mapBuf({ vaddr: 0x1000_0000, iova: IOVA, size: PG }), -EFAULT],
      [
        'a vaddr beyond the user address space',
        () => mapBuf({ vaddr: 1n << 56n, iova: IOVA, size: PG }),
        -EFAULT,
      ],
      ['a range running past the memory', (va) => mapBuf({ vaddr: va, iova: IOVA, size: 16 * PG }), -EFAULT],
    ];
    for (const [name, build, errno] of cases) {
      it(`${name}: ${errno}`, () => {
        const a = attached();
        const va = populated(a.proc, 8);
        a.proc.mm.munmap(va + 4 * PG, 4 * PG);
        expect(doMap(a.c, a.proc, { vaddr: va + 3 * PG, iova: IOVA + 0x10_0000, size: PG })).toBe(0);
        const before = a.snap();
        const built = build(va);
        const buf = typeof built === 'function' ? built() : built;
        expect(a.c.mapDma(a.proc, IoctlArg.ofBuffer(buf))).toBe(errno);
        expect(a.snap()).toEqual(before);
      });
    }
  });

  it('MAP over an existing mapping (exact, head, tail, inside, around) is EEXIST and changes nothing', () => {
    const a = attached();
    const va = populated(a.proc, 16);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA + 4 * PG, size: 4 * PG })).toBe(0);
    const before = a.snap();
    const overlaps: [number, number][] = [
      [4, 4],
      [2, 3],
      [7, 2],
      [5, 1],
      [0, 12],
      [7, 1],
      [3, 2],
    ];
    for (const [first, n] of overlaps)
      expect(doMap(a.c, a.proc, { vaddr: va + 8 * PG, iova: IOVA + first * PG, size: n * PG })).toBe(-EEXIST);
    expect(a.snap()).toEqual(before);
    // Adjacent on either side is fine.
    expect(doMap(a.c, a.proc, { vaddr: va + 8 * PG, iova: IOVA + 3 * PG, size: PG })).toBe(0);
    expect(doMap(a.c, a.proc, { vaddr: va + 9 * PG, iova: IOVA + 8 * PG, size: PG })).toBe(0);
  });

  it('dma_entry_limit: ENOSPC when no entry is left; an unmap gives one back', () => {
    const r = type1Rig();
    const { group } = r.addDevice('d0', 8);
    const c = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU, { dmaEntryLimit: 2 });
    expect(c.attachGroup(group)).toBe(0);
    const va = populated(r.proc, 4);
    expect(doMap(c, r.proc, { vaddr: va, iova: IOVA, size: PG })).toBe(0);
    expect(doMap(c, r.proc, { vaddr: va + PG, iova: IOVA + PG, size: PG })).toBe(0);
    const before = type1Snapshot(c, r.proc, r.host.iommu, r.host.memory);
    expect(doMap(c, r.proc, { vaddr: va + 2 * PG, iova: IOVA + 2 * PG, size: PG })).toBe(-ENOSPC);
    expect(type1Snapshot(c, r.proc, r.host.iommu, r.host.memory)).toEqual(before);
    // EEXIST is checked before ENOSPC.
    expect(doMap(c, r.proc, { vaddr: va, iova: IOVA, size: PG })).toBe(-EEXIST);
    expect(doUnmap(c, r.proc, { iova: IOVA, size: PG }).ret).toBe(0);
    expect(doMap(c, r.proc, { vaddr: va + 2 * PG, iova: IOVA + 2 * PG, size: PG })).toBe(0);
  });

  it('RLIMIT_MEMLOCK: ENOMEM with nothing pinned or charged; within the limit it works', () => {
    const a = attached();
    const va = populated(a.proc, 8);
    a.proc.mm.memlockLimit = 6 * PG;
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    const before = a.snap();
    expect(doMap(a.c, a.proc, { vaddr: va + 4 * PG, iova: IOVA + 4 * PG, size: 4 * PG })).toBe(-ENOMEM);
    expect(a.snap()).toEqual(before);
    expect(a.proc.mm.lockedVm).toBe(4);
    expect(doMap(a.c, a.proc, { vaddr: va + 4 * PG, iova: IOVA + 4 * PG, size: 2 * PG })).toBe(0);
    expect(a.proc.mm.lockedVm).toBe(6);
  });

  it('a mapping over memory in several physical runs, failing part-way, leaves nothing behind', () => {
    const a = attached();
    // Two mmaps next to each other, backed by physically separate pages: two pinned runs.
    const v1 = populated(a.proc, 3);
    expect(a.host.memory.alloc.alloc(PG)).toBeDefined();
    const v2 = populated(a.proc, 3);
    expect(v2).toBe(v1 + 3 * PG);
    expect(pa(a.proc, v2)).not.toBe(pa(a.proc, v1 + 2 * PG) + PG);
    // The first run (3 pages) is pinned, charged and mapped; the second passes the limit.
    a.proc.mm.memlockLimit = 4 * PG;
    const before = a.snap();
    const tables = a.host.memory.alloc.bytesInUse;
    expect(doMap(a.c, a.proc, { vaddr: v1, iova: IOVA, size: 6 * PG })).toBe(-ENOMEM);
    // The page-table pages the first run needed stay with the domain (io-pgtable keeps its
    // tables until the domain is freed); everything else is as it was.
    expect({ ...(a.snap() as object), bytesInUse: tables }).toEqual(before);
    expect(a.host.memory.alloc.bytesInUse).toBeGreaterThan(tables);
    a.proc.mm.memlockLimit = Number.POSITIVE_INFINITY;
    expect(doMap(a.c, a.proc, { vaddr: v1, iova: IOVA, size: 6 * PG })).toBe(0);
    for (let i = 0; i < 6; i++) expect(dmaPa(a.host, a.sid, IOVA + i * PG)).toBe(pa(a.proc, v1 + i * PG));
  });

  it('an IOMMU failing in the second domain unwinds the first; nothing pinned', () => {
    const f = fakeRig();
    const c = openType1(f.core, VFIO_TYPE1v2_IOMMU);
    expect(c.attachGroup(f.addDevice('a').group)).toBe(0);
    const d2 = f.addDriver();
    expect(c.attachGroup(f.addDevice('b', { iommu: 'fake2' }).group)).toBe(0);
    expect((c.domains[0]!.domain as FakeDomain).ops).toBe(d2);
    const va = populated(f.proc, 4);
    const before = type1Snapshot(c, f.proc, f.core, f.mem, [f.drv, d2]);
    f.drv.failNext('map', -ENOMEM);
    expect(doMap(c, f.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(-ENOMEM);
    expect(type1Snapshot(c, f.proc, f.core, f.mem, [f.drv, d2])).toEqual(before);
    expect(d2.callsOf('unmap').length).toBeGreaterThan(0);
  });

  it('hugetlb memory maps as 2 MiB blocks (one driver map call per block)', () => {
    const a = attached();
    const va = a.proc.mm.mmap(2 * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
    const drv = a.host.smmu().driver;
    const sizes: number[] = [];
    const orig = drv.map.bind(drv);
    drv.map = (d, iova, p, size, prot) => {
      sizes.push(size);
      return orig(d, iova, p, size, prot);
    };
    expect(doMap(a.c, a.proc, { vaddr: va, iova: 0x4000_0000, size: 2 * SZ_2M })).toBe(0);
    expect(sizes).toEqual([SZ_2M, SZ_2M]);
    expect(a.proc.mm.stats.pinnedPages).toBe((2 * SZ_2M) / PG);
    const dom = a.c.domains[0]!.domain;
    for (const off of [0, 0x1234, SZ_2M - 8, SZ_2M + 0x5000])
      expect(a.host.iommu.iommuIovaToPhys(dom, 0x4000_0000 + off)).toBe(pa(a.proc, va + off));
    // Unmapping gives every page back.
    sizes.length = 0;
    expect(doUnmap(a.c, a.proc, { iova: 0x4000_0000, size: 2 * SZ_2M })).toEqual({
      ret: 0,
      size: BigInt(2 * SZ_2M),
    });
    expect(a.proc.mm.stats.pinnedPages).toBe(0);
    expect(a.proc.mm.lockedVm).toBe(0);
  });

  it('4 KiB memory at a 2 MiB-aligned IOVA still maps in pages (the run is not a block)', () => {
    const a = attached();
    const va = populated(a.proc, 2);
    const drv = a.host.smmu().driver;
    const sizes: number[] = [];
    const orig = drv.map.bind(drv);
    drv.map = (d, iova, p, size, prot) => {
      sizes.push(size);
      return orig(d, iova, p, size, prot);
    };
    expect(doMap(a.c, a.proc, { vaddr: va, iova: 0x4000_0000, size: 2 * PG })).toBe(0);
    expect(sizes.every((s) => s === PG)).toBe(true);
  });
});

// ================================================================ UNMAP_DMA

describe('VFIO_IOMMU_UNMAP_DMA', () => {
  function withMappings(type = VFIO_TYPE1v2_IOMMU) {
    const a = attached(type);
    const va = populated(a.proc, 16);
    // [0,4) [4,6) [8,12) in pages from IOVA.
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    expect(doMap(a.c, a.proc, { vaddr: va + 4 * PG, iova: IOVA + 4 * PG, size: 2 * PG })).toBe(0);
    expect(doMap(a.c, a.proc, { vaddr: va + 8 * PG, iova: IOVA + 8 * PG, size: 4 * PG })).toBe(0);
    return { ...a, va };
  }

  it('an exact unmap: the size written back, pages unpinned and uncharged, the device faults', () => {
    const a = withMappings();
    expect(doUnmap(a.c, a.proc, { iova: IOVA + 4 * PG, size: 2 * PG })).toEqual({
      ret: 0,
      size: BigInt(2 * PG),
    });
    expect(a.c.mappings().map((m) => Number(m.iova - BigInt(IOVA)) / PG)).toEqual([0, 8]);
    expect(a.proc.mm.stats.pinnedPages).toBe(8);
    expect(a.proc.mm.lockedVm).toBe(8);
    expect(a.proc.mm.pinCount(pa(a.proc, a.va + 4 * PG))).toBe(0);
    expect(dmaPa(a.host, a.sid, IOVA + 4 * PG)).toBeUndefined();
    expect(dmaPa(a.host, a.sid, IOVA + 3 * PG)).toBe(pa(a.proc, a.va + 3 * PG));
  });

  it('one range may take several whole mappings and the holes between them', () => {
    const a = withMappings();
    expect(doUnmap(a.c, a.proc, { iova: IOVA, size: 16 * PG })).toEqual({ ret: 0, size: BigInt(10 * PG) });
    expect(a.c.mappings()).toEqual([]);
    expect(a.proc.mm.stats.pinnedPages).toBe(0);
    expect(a.c.stats().dmaAvail).toBe(65535);
  });

  it('unmapping a hole succeeds with 0 bytes', () => {
    const a = withMappings();
    const before = a.snap();
    expect(doUnmap(a.c, a.proc, { iova: IOVA + 6 * PG, size: 2 * PG })).toEqual({ ret: 0, size: 0n });
    expect(doUnmap(a.c, a.proc, { iova: 2 ** 47, size: PG })).toEqual({ ret: 0, size: 0n });
    expect(a.snap()).toEqual(before);
  });

  it('v2: a range that would split a mapping at its start or its end is EINVAL and changes nothing', () => {
    const a = withMappings();
    const before = a.snap();
    for (const [first, n] of [
      [1, 2],
      [0, 3],
      [2, 4],
      [3, 3],
      [4, 1],
      [5, 4],
      [0, 9],
      [10, 4],
    ] as const) {
      const buf = unmapBuf({ iova: IOVA + first * PG, size: n * PG });
      const copy = buf.slice();
      expect(a.c.unmapDma(a.proc, IoctlArg.ofBuffer(buf))).toBe(-EINVAL);
      expect(buf).toEqual(copy);
    }
    expect(a.snap()).toEqual(before);
  });

  it("v1 (TYPE1): a range covering a mapping's first page takes the whole mapping; one starting inside it takes nothing", () => {
    const a = withMappings(VFIO_TYPE1_IOMMU);
    expect(doUnmap(a.c, a.proc, { iova: IOVA + PG, size: PG })).toEqual({ ret: 0, size: 0n });
    expect(doUnmap(a.c, a.proc, { iova: IOVA + 2 * PG, size: 6 * PG })).toEqual({ ret: 0, size: 0n });
    expect(a.c.mappings().length).toBe(3);
    expect(doUnmap(a.c, a.proc, { iova: IOVA, size: PG })).toEqual({ ret: 0, size: BigInt(4 * PG) });
    expect(doUnmap(a.c, a.proc, { iova: IOVA + 4 * PG, size: 5 * PG })).toEqual({
      ret: 0,
      size: BigInt(6 * PG),
    });
    expect(a.c.mappings()).toEqual([]);
    expect(a.proc.mm.stats.pinnedPages).toBe(0);
    expect(a.proc.mm.lockedVm).toBe(0);
  });

  it('only the mm that mapped a range can unmap it', () => {
    const a = withMappings();
    const other = a.host.kernel.spawn('other');
    const before = a.snap();
    expect(doUnmap(a.c, other, { iova: IOVA, size: 4 * PG })).toEqual({ ret: 0, size: 0n });
    expect(a.snap()).toEqual(before);
  });

  describe('refusals, each changing nothing', () => {
    const cases: [string, () => Uint8Array, number][] = [
      ['a buffer shorter than 24 bytes', () => unmapBuf({ iova: IOVA, size: 4 * PG }).slice(0, 23), -EFAULT],
      ['argsz < 24', () => unmapBuf({ iova: IOVA, size: 4 * PG, argsz: 23 }), -EINVAL],
      ['the v5.12 ALL flag', () => unmapBuf({ iova: 0, size: 0, flags: VFIO_DMA_UNMAP_FLAG_ALL }), -EINVAL],
      [
        'the v5.12 VADDR flag',
        () => unmapBuf({ iova: IOVA, size: 4 * PG, flags: VFIO_DMA_UNMAP_FLAG_VADDR }),
        -EINVAL,
      ],
      ['an unknown flag', () => unmapBuf({ iova: IOVA, size: 4 * PG, flags: 0x100 }), -EINVAL],
      ['a misaligned iova', () => unmapBuf({ iova: IOVA + 8, size: 4 * PG }), -EINVAL],
      ['size 0', () => unmapBuf({ iova: IOVA, size: 0 }), -EINVAL],
      ['a misaligned size', () => unmapBuf({ iova: IOVA, size: 4 * PG - 1 }), -EINVAL],
      ['a range wrapping 2^64', () => unmapBuf({ iova: U64_MAX - 0xfffn, size: 2 * PG }), -EINVAL],
      [
        'GET_DIRTY_BITMAP with argsz < 48',
        () => unmapBuf({ iova: IOVA, size: 4 * PG, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, argsz: 47 }),
        -EINVAL,
      ],
      [
        'GET_DIRTY_BITMAP with the trailer missing',
        () => unmapBuf({ iova: IOVA, size: 4 * PG, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, argsz: 48 }),
        -EFAULT,
      ],
      ['GET_DIRTY_BITMAP with a bitmap beyond the user space', () => dirty({ data: 1n << 50n }), -EINVAL],
      ['GET_DIRTY_BITMAP with a bitmap page size of 0', () => dirty({ pgsize: 0n }), -EINVAL],
      ['GET_DIRTY_BITMAP with a bitmap too small', () => dirty({ size: 0n }), -EINVAL],
      ['GET_DIRTY_BITMAP with a bitmap too large', () => dirty({ size: 1n << 29n }), -EINVAL],
      ['GET_DIRTY_BITMAP with a valid trailer (dirty logging is off)', () => dirty({}), -EINVAL],
    ];
    for (const [name, build, errno] of cases) {
      it(`${name}: ${errno}`, () => {
        const a = withMappings();
        const before = a.snap();
        const buf = build();
        const copy = buf.slice();
        expect(a.c.unmapDma(a.proc, IoctlArg.ofBuffer(buf))).toBe(errno);
        expect(buf).toEqual(copy);
        expect(a.snap()).toEqual(before);
      });
    }
  });
});

function dirty(b: { pgsize?: bigint; size?: bigint; data?: bigint }): Uint8Array {
  return vfio_dma_unmap_with_bitmap.encode({
    unmap: {
      argsz: vfio_dma_unmap_with_bitmap.size,
      flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
      iova: IOVA,
      size: 4 * PG,
    },
    bitmap: { pgsize: b.pgsize ?? BigInt(PG), size: b.size ?? 8n, data: b.data ?? 0x7f00_0000_0000n },
  });
}

// ================================================================ several domains

describe('replay into a second domain (two SMMUs)', () => {
  it('existing mappings are replayed; DMA works through both SMMUs; nothing is pinned twice', () => {
    const r = type1Rig({ smmus: [{ name: 'smmu0' }, { name: 'smmu1' }] });
    const g0 = r.addDevice('a', 8, 'smmu0').group;
    const g1 = r.addDevice('b', 16, 'smmu1').group;
    const c = openType1(r.host.iommu, VFIO_TYPE1v2_IOMMU);
    expect(c.attachGroup(g0)).toBe(0);
    const va = populated(r.proc, 8);
    const huge = r.proc.mm.mmap(SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
    expect(doMap(c, r.proc, { vaddr: va, iova: IOVA, size: 8 * PG })).toBe(0);
    expect(doMap(c, r.proc, { vaddr: huge, iova: 0x4000_0000, size: SZ_2M })).toBe(0);
    const pinned = r.proc.mm.stats.pinnedPages;
    expect(c.attachGroup(g1)).toBe(0);
    expect(r.proc.mm.stats.pinnedPages).toBe(pinned);
    expect(r.proc.mm.lockedVm).toBe(pinned);
    for (const off of [0, 3 * PG + 0x40, 7 * PG]) {
      expect(dmaPa(r.host, 8, IOVA + off, ACCESS_WRITE, 'smmu0')).toBe(pa(r.proc, va + off));
      expect(dmaPa(r.host, 16, IOVA + off, ACCESS_WRITE, 'smmu1')).toBe(pa(r.proc, va + off));
    }
    expect(dmaPa(r.host, 16, 0x4000_0000 + 0x1f_f000, ACCESS_READ, 'smmu1')).toBe(
      pa(r.proc, huge + 0x1f_f000),
    );
    // New mappings go to both; unmaps leave both.
    expect(doMap(c, r.proc, { vaddr: va, iova: 0x2000_0000, size: PG })).toBe(0);
    expect(dmaPa(r.host, 16, 0x2000_0000, ACCESS_READ, 'smmu1')).toBe(pa(r.proc, va));
    expect(doUnmap(c, r.proc, { iova: IOVA, size: 8 * PG }).size).toBe(BigInt(8 * PG));
    expect(dmaPa(r.host, 8, IOVA, ACCESS_READ, 'smmu0')).toBeUndefined();
    expect(dmaPa(r.host, 16, IOVA, ACCESS_READ, 'smmu1')).toBeUndefined();
    expect(c.pgsizeBitmap()).toBe(0x4020_1000n);
  });
});

// ================================================================ release

describe('release', () => {
  it('leaves nothing pinned, charged, mapped or allocated; the groups back in their default domains', () => {
    const r = type1Rig({ smmus: [{ name: 'smmu0' }, { name: 'smmu1' }] });
    const g0 = r.addDevice('a', 8, 'smmu0').group;
    const g1 = r.addDevice('b', 9, 'smmu0').group;
    const g2 = r.addDevice('c', 8, 'smmu1').group;
    const va = populated(r.proc, 8);
    const huge = r.proc.mm.mmap(SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
    const coreBefore = r.host.iommu.snapshot();
    const bytesBefore = r.host.memory.alloc.bytesInUse;
    const c = openType1(r.host.iommu, VFIO_TYPE1_NESTING_IOMMU);
    for (const g of [g0, g1, g2]) expect(c.attachGroup(g)).toBe(0);
    expect(doMap(c, r.proc, { vaddr: va, iova: IOVA, size: 8 * PG })).toBe(0);
    expect(doMap(c, r.proc, { vaddr: huge, iova: 0x4000_0000, size: SZ_2M })).toBe(0);
    expect(r.host.memory.alloc.bytesInUse).toBeGreaterThan(bytesBefore);
    c.release();
    expect(c.domains).toEqual([]);
    expect(c.mappings()).toEqual([]);
    expect(c.iovaRanges()).toEqual([]);
    expect(c.stats()).toEqual({
      pinnedPages: 0,
      lockedPages: 0,
      domains: 0,
      groups: 0,
      dmaEntries: 0,
      dmaAvail: 65535,
    });
    expect(r.proc.mm.stats.pinnedPages).toBe(0);
    expect(r.proc.mm.lockedVm).toBe(0);
    expect(r.host.memory.alloc.bytesInUse).toBe(bytesBefore);
    expect(r.host.iommu.snapshot()).toEqual(coreBefore);
    for (const g of [g0, g1, g2]) expect(g.domain).toBe(g.defaultDomain);
  });

  it('pinned pages of memory unmapped by the process are freed at release', () => {
    const a = attached();
    const va = a.proc.mm.mmap(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    expect(doMap(a.c, a.proc, { vaddr: va, iova: IOVA, size: 4 * PG })).toBe(0);
    const used = a.host.memory.alloc.bytesInUse;
    expect(a.proc.mm.munmap(va, 4 * PG)).toBe(0);
    expect(a.host.memory.alloc.bytesInUse).toBe(used); // still pinned
    a.c.release();
    expect(a.host.memory.alloc.bytesInUse).toBeLessThan(used);
    expect(a.proc.mm.stats.pinnedPages).toBe(0);
  });
});

// ================================================================ the interval model

type Op =
  | { kind: 'map'; iovaPg: number; vaPg: number; npg: number; flags: number }
  | { kind: 'unmap'; iovaPg: number; npg: number };

interface ModelMapping {
  iovaPg: number;
  npg: number;
  vaPg: number;
  prot: number;
}

const REGION = 20;

/** What Linux's type1 does, on page numbers (lowest-first lookup, see the decisions). */
function modelStep(model: ModelMapping[], op: Op, v2: boolean): { ret: number; size?: number } {
  const overl = (s: number, n: number) =>
    model.filter((m) => m.iovaPg < s + n && s < m.iovaPg + m.npg).sort((x, y) => x.iovaPg - y.iovaPg);
  if (op.kind === 'map') {
    if (overl(op.iovaPg, op.npg).length > 0) return { ret: -EEXIST };
    if (op.vaPg + op.npg > REGION) return { ret: -EFAULT };
    const prot = ((op.flags & 2) !== 0 ? IOMMU_WRITE : 0) | ((op.flags & 1) !== 0 ? IOMMU_READ : 0);
    model.push({ iovaPg: op.iovaPg, npg: op.npg, vaPg: op.vaPg, prot });
    model.sort((x, y) => x.iovaPg - y.iovaPg);
    return { ret: 0 };
  }
  const end = op.iovaPg + op.npg;
  if (v2) {
    const head = model.find((m) => m.iovaPg < op.iovaPg && op.iovaPg < m.iovaPg + m.npg);
    if (head !== undefined) return { ret: -EINVAL };
    const tail = model.find((m) => m.iovaPg < end && end < m.iovaPg + m.npg);
    if (tail !== undefined) return { ret: -EINVAL };
  }
  let size = 0;
  for (;;) {
    const m = overl(op.iovaPg, op.npg)[0];
    if (m === undefined || (!v2 && m.iovaPg < op.iovaPg)) break;
    size += m.npg;
    model.splice(model.indexOf(m), 1);
  }
  return { ret: 0, size };
}

describe('property: MAP/UNMAP sequences agree with an interval model', () => {
  const r = type1Rig();
  const { group } = r.addDevice('d0', 8);
  const base = populated(r.proc, REGION);
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('map' as const),
      iovaPg: fc.integer({ min: 0, max: 15 }),
      vaPg: fc.integer({ min: 0, max: 19 }),
      npg: fc.integer({ min: 1, max: 4 }),
      flags: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({
      kind: fc.constant('unmap' as const),
      iovaPg: fc.integer({ min: 0, max: 15 }),
      npg: fc.integer({ min: 1, max: 8 }),
    }),
  );

  it('results, errnos, the mapping set, pins, locked_vm and the IOMMU translations', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(opArb, { minLength: 1, maxLength: 30 }), (v2, ops) => {
        const c = openType1(r.host.iommu, v2 ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU);
        expect(c.attachGroup(group)).toBe(0);
        const dom = c.domains[0]!.domain;
        const model: ModelMapping[] = [];
        for (const op of ops) {
          const want = modelStep(model, op, v2);
          if (op.kind === 'map') {
            const got = doMap(c, r.proc, {
              vaddr: base + op.vaPg * PG,
              iova: IOVA + op.iovaPg * PG,
              size: op.npg * PG,
              flags: op.flags,
            });
            expect(got).toBe(want.ret);
          } else {
            const got = doUnmap(c, r.proc, { iova: IOVA + op.iovaPg * PG, size: op.npg * PG });
            expect(got.ret).toBe(want.ret);
            if (want.ret === 0) expect(got.size).toBe(BigInt((want.size ?? 0) * PG));
          }
          expect(c.mappings()).toEqual(
            model.map((m) => ({
              iova: BigInt(IOVA + m.iovaPg * PG),
              size: BigInt(m.npg * PG),
              vaddr: BigInt(base + m.vaPg * PG),
              prot: m.prot,
            })),
          );
          const pages = model.reduce((n, m) => n + m.npg, 0);
          expect(r.proc.mm.stats.pinnedPages).toBe(pages);
          expect(r.proc.mm.lockedVm).toBe(pages);
          expect(c.stats().pinnedPages).toBe(pages);
        }
        for (let p = 0; p < 24; p++) {
          const m = model.find((x) => x.iovaPg <= p && p < x.iovaPg + x.npg);
          const want = m === undefined ? 0 : pa(r.proc, base + (m.vaPg + p - m.iovaPg) * PG);
          expect(r.host.iommu.iommuIovaToPhys(dom, IOVA + p * PG)).toBe(want);
        }
        c.release();
        expect(r.proc.mm.stats.pinnedPages).toBe(0);
        expect(r.proc.mm.lockedVm).toBe(0);
        expect(group.domain).toBe(group.defaultDomain);
      }),
      { numRuns: 60 },
    );
  });
});

/**
 * Tests of iommu_uapi_cache_invalidate (seed-spec.md §1.4, order verified against Linux v5.10):
 * for each granularity, a request that breaks every check is repaired one thing at a time, in
 * order, and each step must be refused by the next check; EFAULT for short buffers; a larger
 * argsz tolerated; the kernel-pointer variant.
 */

import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENODEV, ENOENT } from '../../uapi/errno.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  type IommuCacheInvalidateInfoInput,
  iommu_cache_invalidate_info,
} from '../../uapi/iommu.ts';
import { UserPtr } from '../uaccess.ts';
import { CACHE_INVALIDATE_CHECKS, type CacheInvalidateCheck } from './cache-invalidate.ts';
import { type FakeDomain, fakeCore, fakeDevice, fullSnapshot } from './fake-driver.ts';

function infoBytes(v: IommuCacheInvalidateInfoInput, len: number, tail = 0xcc): Uint8Array {
  const out = new Uint8Array(len).fill(tail);
  out.set(iommu_cache_invalidate_info.encode(v).subarray(0, Math.min(len, 56)), 0);
  return out;
}

function setup(omit = false) {
  const { core, drv } = fakeCore(omit ? { omit: ['cacheInvalidate'] } : {});
  const dom = core.iommuDomainAlloc(drv.name)! as FakeDomain;
  return { core, drv, dom, dev: fakeDevice('a') };
}

interface State {
  omit: boolean;
  len: number;
  v: IommuCacheInvalidateInfoInput;
}

type Step = [CacheInvalidateCheck, number, (s: State) => void];

function runSteps(start: State, steps: Step[]): void {
  const s = { ...start };
  const seen: CacheInvalidateCheck[] = [];
  for (const [check, errno, repair] of steps) {
    const { core, drv, dom, dev } = setup(s.omit);
    const before = fullSnapshot(core, drv);
    const r = core.iommuUapiCacheInvalidateChecked(dom, dev, UserPtr.ofBuffer(infoBytes(s.v, s.len)));
    expect(r, check).toEqual({ ret: errno, check });
    if (check === 'driver') expect(dom.invalidations).toHaveLength(1);
    else expect(fullSnapshot(core, drv), check).toEqual(before);
    seen.push(check);
    repair(s);
  }
  // The steps follow the declared order of checks.
  const order = seen.map((c) => CACHE_INVALIDATE_CHECKS.indexOf(c));
  expect([...order].sort((a, b) => a - b)).toEqual(order);
}

const PAD = [1, 0, 0, 0, 0, 0];

describe('iommu_uapi_cache_invalidate order of checks', () => {
  it('ADDR granularity', () => {
    runSteps(
      {
        omit: true,
        len: 12,
        v: {
          argsz: 8,
          version: 0,
          cache: 0x8 | IOMMU_CACHE_INV_TYPE_PASID | IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_ADDR,
          padding: PAD,
          granu: {
            addr_info: { flags: 0x8, archid: 3, addr: 0x1000n, granule_size: 4096n, nb_granules: 1n },
          },
        },
      },
      [
        ['no-callback', -ENODEV, (s) => (s.omit = false)],
        ['copy-head', -EFAULT, (s) => (s.len = 40)],
        ['argsz-min', -EINVAL, (s) => (s.v = { ...s.v, argsz: 16 })],
        ['argsz-addr', -EINVAL, (s) => (s.v = { ...s.v, argsz: 64 })],
        ['copy-rest', -EFAULT, (s) => (s.len = 72)],
        ['version', -EINVAL, (s) => (s.v = { ...s.v, version: 1 })],
        [
          'cache-type',
          -EINVAL,
          (s) => (s.v = { ...s.v, cache: IOMMU_CACHE_INV_TYPE_PASID | IOMMU_CACHE_INV_TYPE_IOTLB }),
        ],
        ['addr-cache-pasid', -EINVAL, (s) => (s.v = { ...s.v, cache: IOMMU_CACHE_INV_TYPE_IOTLB })],
        [
          'addr-flags',
          -EINVAL,
          (s) =>
            (s.v = {
              ...s.v,
              granu: {
                addr_info: {
                  flags: IOMMU_INV_ADDR_FLAGS_ARCHID | IOMMU_INV_ADDR_FLAGS_LEAF,
                  archid: 3,
                  addr: 0x1000n,
                  granule_size: 4096n,
                  nb_granules: 1n,
                },
              },
            }),
        ],
        ['padding', -EINVAL, (s) => (s.v = { ...s.v, padding: [0, 0, 0, 0, 0, 0] })],
        ['driver', 0, () => {}],
      ],
    );
  });

  it('PASID granularity', () => {
    runSteps(
      {
        omit: false,
        len: 24,
        v: {
          argsz: 16,
          version: 1,
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_PASID,
          padding: [0, 0, 0, 0, 0, 9],
          granu: { pasid_info: { flags: 0x4, archid: 7, pasid: 0n } },
        },
      },
      [
        ['argsz-pasid', -EINVAL, (s) => (s.v = { ...s.v, argsz: 32 })],
        ['copy-rest', -EFAULT, (s) => (s.len = 32)],
        [
          'pasid-flags',
          -EINVAL,
          (s) =>
            (s.v = {
              ...s.v,
              granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_ARCHID, archid: 7, pasid: 0n } },
            }),
        ],
        ['padding', -EINVAL, (s) => (s.v = { ...s.v, padding: [0, 0, 0, 0, 0, 0] })],
        ['driver', 0, () => {}],
      ],
    );
  });

  it('DOMAIN granularity needs nothing beyond 16 bytes', () => {
    runSteps(
      {
        omit: false,
        len: 16,
        v: {
          argsz: 16,
          version: 1,
          cache: IOMMU_CACHE_INV_TYPE_IOTLB | IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
          granularity: IOMMU_INV_GRANU_DOMAIN,
          padding: [0, 0, 0, 7, 0, 0],
        },
      },
      [
        ['domain-dev-iotlb', -EINVAL, (s) => (s.v = { ...s.v, cache: IOMMU_CACHE_INV_TYPE_IOTLB })],
        ['padding', -EINVAL, (s) => (s.v = { ...s.v, padding: [0, 0, 0, 0, 0, 0] })],
        ['driver', 0, () => {}],
      ],
    );
  });

  it('an unknown granularity passes the size checks and is refused after version and cache type', () => {
    runSteps(
      {
        omit: false,
        len: 16,
        v: { argsz: 16, version: 3, cache: 0x80, granularity: 3 },
      },
      [
        ['version', -EINVAL, (s) => (s.v = { ...s.v, version: 1 })],
        ['cache-type', -EINVAL, (s) => (s.v = { ...s.v, cache: IOMMU_CACHE_INV_TYPE_IOTLB })],
        ['granularity', -EINVAL, (s) => (s.v = { ...s.v, granularity: IOMMU_INV_GRANU_DOMAIN })],
        ['driver', 0, () => {}],
      ],
    );
  });
});

describe('iommu_uapi_cache_invalidate copies', () => {
  const ADDR: IommuCacheInvalidateInfoInput = {
    argsz: 56,
    version: 1,
    cache: IOMMU_CACHE_INV_TYPE_IOTLB,
    granularity: IOMMU_INV_GRANU_ADDR,
    granu: {
      addr_info: {
        flags: IOMMU_INV_ADDR_FLAGS_ARCHID,
        archid: 5,
        addr: 0x4000n,
        granule_size: 4096n,
        nb_granules: 2n,
      },
    },
  };

  it('EFAULT for every buffer shorter than what argsz says', () => {
    for (let len = 0; len < 56; len++) {
      const { core, dom, dev } = setup();
      const r = core.iommuUapiCacheInvalidateChecked(dom, dev, UserPtr.ofBuffer(infoBytes(ADDR, len)));
      expect(r).toEqual({ ret: -EFAULT, check: len < 16 ? 'copy-head' : 'copy-rest' });
    }
  });

  it('a larger argsz is tolerated; bytes beyond 56 are not read', () => {
    const { core, dom, dev } = setup();
    expect(
      core.iommuUapiCacheInvalidate(dom, dev, UserPtr.ofBuffer(infoBytes({ ...ADDR, argsz: 1000 }, 80))),
    ).toBe(0);
    const info = dom.invalidations[0]!;
    expect(info.granu.addr_info).toMatchObject({ archid: 5, addr: 0x4000n, nb_granules: 2n });
    expect(info.argsz).toBe(1000);
  });

  it("the driver's own error is returned", () => {
    const { core, drv, dom, dev } = setup();
    drv.failNext('cacheInvalidate', -ENOENT);
    expect(core.iommuUapiCacheInvalidate(dom, dev, UserPtr.ofBuffer(infoBytes(ADDR, 56)))).toBe(-ENOENT);
  });

  it('the kernel-pointer variant: -ENODEV without the callback, else straight to the driver', () => {
    const info = iommu_cache_invalidate_info.decode(infoBytes({ ...ADDR, version: 9 }, 56));
    const bare = setup(true);
    expect(bare.core.iommuCacheInvalidate(bare.dom, bare.dev, info)).toBe(-ENODEV);
    const { core, dom, dev } = setup();
    expect(core.iommuCacheInvalidate(dom, dev, info)).toBe(0);
    expect(dom.invalidations).toEqual([info]);
  });
});

/**
 * Tests of the PASID-table API (seed-spec.md §1.2): the kernel-pointer variants and the exact
 * order of checks of iommu_uapi_attach_pasid_table, shown by starting from a request that breaks
 * every check and repairing one thing at a time, in order; EFAULT for short buffers; a larger
 * argsz tolerated with the bytes beyond 32 ignored; nothing changes in the driver on a refusal.
 */

import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENODEV, ENOSPC } from '../../uapi/errno.ts';
import {
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  type IommuPasidTableConfigInput,
  iommu_pasid_table_config,
} from '../../uapi/iommu.ts';
import { UserPtr } from '../uaccess.ts';
import { type FakeDomain, fakeCore, fullSnapshot } from './fake-driver.ts';
import { PASID_TABLE_CHECKS } from './pasid-table.ts';

/** A config as bytes, `len` long (truncated or zero-padded), with extra bytes after 32. */
function cfgBytes(v: IommuPasidTableConfigInput, len: number, tail = 0xee): Uint8Array {
  const out = new Uint8Array(len).fill(tail);
  out.set(iommu_pasid_table_config.encode(v).subarray(0, Math.min(len, 32)), 0);
  return out;
}

const GOOD: IommuPasidTableConfigInput = {
  argsz: 32,
  version: 1,
  base_ptr: 0x4000_0000n,
  format: IOMMU_PASID_FORMAT_SMMUV3,
  pasid_bits: 0,
  config: IOMMU_PASID_CONFIG_TRANSLATE,
  vendor_data: { smmuv3: { version: 1, s1fmt: 2, s1dss: 1 } },
};

function setup(omit = false) {
  const { core, drv } = fakeCore(omit ? { omit: ['attachPasidTable', 'detachPasidTable'] } : {});
  const dom = core.iommuDomainAlloc(drv.name)! as FakeDomain;
  return { core, drv, dom };
}

describe('iommu_uapi_attach_pasid_table order of checks', () => {
  it('repairing one thing at a time, in order, each step reports the next check', () => {
    // Every check broken at once: no callback, a 20-byte buffer, argsz 16, version 2, SMMUV3 with
    // argsz < 32, a buffer too short for the rest, config 0.
    let omit = true;
    let len = 20;
    let v: IommuPasidTableConfigInput = { ...GOOD, argsz: 16, version: 2, config: 0 };
    const steps: [string, number, () => void][] = [
      ['no-callback', -ENODEV, () => (omit = false)],
      ['copy-head', -EFAULT, () => (len = 28)],
      ['argsz', -EINVAL, () => (v = { ...v, argsz: 24 })],
      ['version', -EINVAL, () => (v = { ...v, version: 1 })],
      ['smmuv3-argsz', -EINVAL, () => (v = { ...v, argsz: 48 })],
      ['copy-rest', -EFAULT, () => (len = 48)],
      ['config', -EINVAL, () => (v = { ...v, config: IOMMU_PASID_CONFIG_TRANSLATE })],
      ['driver', 0, () => {}],
    ];
    expect(steps.map((s) => s[0])).toEqual([...PASID_TABLE_CHECKS]);
    for (const [check, errno, repair] of steps) {
      const { core, drv, dom } = setup(omit);
      const before = fullSnapshot(core, drv);
      const r = core.iommuUapiAttachPasidTableChecked(dom, UserPtr.ofBuffer(cfgBytes(v, len)));
      expect(r, check).toEqual({ ret: errno, check });
      if (check !== 'driver') expect(fullSnapshot(core, drv), check).toEqual(before);
      else expect(dom.pasidTable).toBeDefined();
      repair();
    }
  });

  it('config outside {1, 2, 3} is refused; 1, 2, 3 reach the driver', () => {
    for (const config of [0, 4, 255]) {
      const { core, dom } = setup();
      expect(core.iommuUapiAttachPasidTable(dom, UserPtr.ofBuffer(cfgBytes({ ...GOOD, config }, 32)))).toBe(
        -EINVAL,
      );
      expect(dom.pasidTable).toBeUndefined();
    }
    for (const config of [
      IOMMU_PASID_CONFIG_TRANSLATE,
      IOMMU_PASID_CONFIG_BYPASS,
      IOMMU_PASID_CONFIG_ABORT,
    ]) {
      const { core, dom } = setup();
      expect(core.iommuUapiAttachPasidTable(dom, UserPtr.ofBuffer(cfgBytes({ ...GOOD, config }, 32)))).toBe(
        0,
      );
      expect(dom.pasidTable!.config).toBe(config);
    }
  });

  it('a larger argsz is tolerated and the bytes beyond 32 are ignored', () => {
    const { core, drv, dom } = setup();
    const buf = cfgBytes({ ...GOOD, argsz: 4096 }, 64, 0xab);
    expect(core.iommuUapiAttachPasidTable(dom, UserPtr.ofBuffer(buf))).toBe(0);
    const cfg = dom.pasidTable!;
    expect(cfg.argsz).toBe(4096);
    expect(cfg.base_ptr).toBe(0x4000_0000n);
    expect(cfg.vendor_data.smmuv3).toMatchObject({ version: 1, s1fmt: 2, s1dss: 1 });
    // The driver received exactly the first 32 bytes.
    expect(iommu_pasid_table_config.encode(cfg)).toEqual(buf.subarray(0, 32));
    expect(drv.callsOf('attachPasidTable')).toHaveLength(1);
  });

  it('a non-SMMUV3 format with argsz 24..31 copies only argsz bytes; the rest reads as zero', () => {
    const { core, dom } = setup();
    const buf = cfgBytes({ ...GOOD, format: 2, argsz: 28 }, 28);
    expect(core.iommuUapiAttachPasidTable(dom, UserPtr.ofBuffer(buf))).toBe(0);
    expect(dom.pasidTable!.vendor_data.smmuv3).toMatchObject({ version: 1, s1fmt: 0, s1dss: 0 });
  });

  it('EFAULT at each copy boundary, for every short length', () => {
    for (let len = 0; len < 32; len++) {
      const { core, drv, dom } = setup();
      const before = fullSnapshot(core, drv);
      const r = core.iommuUapiAttachPasidTableChecked(dom, UserPtr.ofBuffer(cfgBytes(GOOD, len)));
      expect(r).toEqual({ ret: -EFAULT, check: len < 24 ? 'copy-head' : 'copy-rest' });
      expect(fullSnapshot(core, drv)).toEqual(before);
    }
  });

  it("the driver's own error is returned", () => {
    const { core, drv, dom } = setup();
    drv.failNext('attachPasidTable', -ENOSPC);
    expect(core.iommuUapiAttachPasidTable(dom, UserPtr.ofBuffer(cfgBytes(GOOD, 32)))).toBe(-ENOSPC);
  });

  it('re-reads user memory per call: a pointer into a process address space works', () => {
    const { core, dom } = setup();
    const mem = new Uint8Array(0x100);
    mem.set(cfgBytes(GOOD, 32), 0x40);
    const ptr = new UserPtr(
      {
        readUser: (a, l) => (a + l <= mem.length && a >= 0 ? mem.slice(a, a + l) : undefined),
        writeUser: () => false,
      },
      0x40,
    );
    expect(core.iommuUapiAttachPasidTable(dom, ptr)).toBe(0);
    expect(core.iommuUapiAttachPasidTable(dom, ptr.add(0xd0))).toBe(-EFAULT);
  });
});

describe('kernel-pointer variants', () => {
  it('attach: -ENODEV without the callback, else the driver; detach: no-op without it', () => {
    const cfg = iommu_pasid_table_config.decode(cfgBytes(GOOD, 32));
    const bare = setup(true);
    expect(bare.core.iommuAttachPasidTable(bare.dom, cfg)).toBe(-ENODEV);
    bare.core.iommuDetachPasidTable(bare.dom);
    expect(bare.drv.calls.filter((c) => c.op.includes('Pasid'))).toEqual([]);

    const { core, drv, dom } = setup();
    expect(core.iommuAttachPasidTable(dom, cfg)).toBe(0);
    expect(dom.pasidTable).toBe(cfg);
    core.iommuDetachPasidTable(dom);
    expect(dom.pasidTable).toBeUndefined();
    expect(drv.callsOf('detachPasidTable')).toHaveLength(1);
  });
});

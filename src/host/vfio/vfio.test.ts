/**
 * The VFIO core through its uAPI: the container and group files (vfio.c's checks, in order), the
 * seed nesting ioctls SET_PASID_TABLE, CACHE_INVALIDATE and SET_MSI_BINDING (§2) over one- and
 * two-domain containers, and PASID_REQUEST / SET_PASID_QUOTA with the per-mm accounting and reclaim
 * of §6. A stub IOMMU backend (vfio-testing.ts) gives real nested SMMU domains without DMA mapping;
 * every refusal is checked to change nothing.
 */

import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import { STE_0_CFG } from '../../arch/smmuv3/ste.ts';
import { EACCES, EBADF, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOSPC, ENOTTY } from '../../uapi/errno.ts';
import { F_GETFD, FD_CLOEXEC } from '../../uapi/fcntl.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
} from '../../uapi/iommu.ts';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_BIND_MSI,
  VFIO_IOMMU_CACHE_INVALIDATE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_PASID_ALLOC,
  VFIO_IOMMU_PASID_FREE,
  VFIO_IOMMU_PASID_REQUEST,
  VFIO_IOMMU_SET_MSI_BINDING,
  VFIO_IOMMU_SET_PASID_QUOTA,
  VFIO_IOMMU_SET_PASID_TABLE,
  VFIO_IOMMU_UNBIND_MSI,
  VFIO_PASID_TABLE_FLAG_SET,
  VFIO_PASID_TABLE_FLAG_UNSET,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_cache_invalidate,
  vfio_iommu_type1_pasid_quota,
  vfio_iommu_type1_pasid_request,
  vfio_iommu_type1_set_msi_binding,
  vfio_iommu_type1_set_pasid_table,
} from '../../uapi/vfio.ts';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  vfio_group_status,
} from '../../uapi/vfio-device.ts';
import type { IommuDevice } from '../iommu/types.ts';
import type { Process } from '../kernel/process.ts';
import { type VfioBench, vfioBench } from './vfio-testing.ts';

const s32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};
const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);

interface Vm {
  readonly b: VfioBench;
  readonly p: Process;
  readonly container: number;
  readonly groups: number[];
  readonly devs: IommuDevice[];
}

/** A process with a container holding the groups of `devs`, the IOMMU type set. */
function vm(
  b: VfioBench,
  devs: IommuDevice[],
  p: Process = b.host.kernel.spawn('qemu'),
  type = VFIO_TYPE1_NESTING_IOMMU,
): Vm {
  const container = p.open('/dev/vfio/vfio');
  const groups: number[] = [];
  for (const dev of devs) {
    const g = b.host.iommu.iommuGroupGet(dev)!;
    const fd = p.open(`/dev/vfio/${g.id}`);
    expect(fd).toBeGreaterThan(0);
    expect(p.ioctl(fd, VFIO_GROUP_SET_CONTAINER, s32(container))).toBe(0);
    groups.push(fd);
  }
  expect(p.ioctl(container, VFIO_SET_IOMMU, type)).toBe(0);
  return { b, p, container, groups, devs };
}

function steCfg(b: VfioBench, iommu: string, sid: number): number {
  return getField(b.host.smmu(iommu).driver.steWords(sid)!, STE_0_CFG);
}

describe('/dev/vfio/vfio', () => {
  it('API version 0; the registered backend answers extensions before any group', () => {
    const b = vfioBench();
    const p = b.host.kernel.spawn('qemu');
    const c = p.open('/dev/vfio/vfio');
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(
      [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_NESTING_IOMMU, 99].map((e) =>
        p.ioctl(c, VFIO_CHECK_EXTENSION, e),
      ),
    ).toEqual([1, 1, 1, 0]);
  });

  it('without a backend, any other ioctl is EINVAL (not ENOTTY); with one, unknown ones go to it', () => {
    const b = vfioBench();
    const p = b.host.kernel.spawn('qemu');
    const c = p.open('/dev/vfio/vfio');
    expect(p.ioctl(c, VFIO_IOMMU_GET_INFO, new Uint8Array(24))).toBe(-EINVAL);
    expect(p.ioctl(c, VFIO_IOMMU_PASID_REQUEST, new Uint8Array(20))).toBe(-EINVAL);
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)], p);
    expect(p.ioctl(v.container, 0x3b99)).toBe(-ENOTTY);
  });

  it('SET_IOMMU: EINVAL without a group or when already set; ENODEV for a type no backend supports', () => {
    const b = vfioBench();
    const p = b.host.kernel.spawn('qemu');
    const c = p.open('/dev/vfio/vfio');
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-EINVAL);
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const g = p.open(`/dev/vfio/${b.host.iommu.iommuGroupGet(dev)!.id}`);
    p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c));
    expect(p.ioctl(c, VFIO_SET_IOMMU, 42)).toBe(-ENODEV);
    expect(b.backends).toHaveLength(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-EINVAL);
    expect(b.backends).toHaveLength(1);
  });
});

describe('group files', () => {
  it('a node per claimed IOMMU group; one open at a time', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const id = b.host.iommu.iommuGroupGet(dev)!.id;
    expect(b.host.kernel.devicePaths).toContain(`/dev/vfio/${id}`);
    const p = b.host.kernel.spawn('qemu');
    const g = p.open(`/dev/vfio/${id}`);
    expect(g).toBe(3);
    expect(p.open(`/dev/vfio/${id}`)).toBe(-EBUSY);
    expect(p.open('/dev/vfio/99')).toBe(-2);
    p.close(g);
    expect(p.open(`/dev/vfio/${id}`)).toBe(3);
  });

  it('GET_STATUS: EFAULT on a short buffer, EINVAL for argsz < 8, else VIABLE and CONTAINER_SET', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const p = b.host.kernel.spawn('qemu');
    const g = p.open(`/dev/vfio/${b.host.iommu.iommuGroupGet(dev)!.id}`);
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, new Uint8Array(4))).toBe(-EFAULT);
    const small = vfio_group_status.encode({ argsz: 4 });
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, small)).toBe(-EINVAL);
    expect(vfio_group_status.decode(small).flags).toBe(0);
    const st = vfio_group_status.encode({ argsz: 8 });
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(vfio_group_status.decode(st).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    const c = p.open('/dev/vfio/vfio');
    p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c));
    p.ioctl(g, VFIO_GROUP_GET_STATUS, st);
    expect(vfio_group_status.decode(st).flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  });

  it('a group with a member bound to a host driver is not viable: no device fd (EINVAL)', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08, 'smmu0', 'bridge');
    const other: IommuDevice = {
      name: '0000:00:01.1',
      bus: 'pci',
      iommuName: 'smmu0',
      ids: [0x09],
      pasidBits: 0,
      isolationKey: 'bridge',
    };
    b.host.addDevice(other);
    b.drivers.set(other, 'e1000e');
    const p = b.host.kernel.spawn('qemu');
    const v = vm(b, [dev], p);
    const st = vfio_group_status.encode({ argsz: 8 });
    p.ioctl(v.groups[0]!, VFIO_GROUP_GET_STATUS, st);
    expect(vfio_group_status.decode(st).flags & VFIO_GROUP_FLAGS_VIABLE).toBe(0);
    const fds = p.openFds;
    expect(p.ioctl(v.groups[0]!, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'))).toBe(-EINVAL);
    expect(p.openFds).toEqual(fds);
    // Unbinding the host driver (or binding pci-stub) makes it viable.
    b.drivers.set(other, 'pci-stub');
    expect(p.ioctl(v.groups[0]!, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'))).toBeGreaterThan(0);
  });

  it('SET_CONTAINER: EFAULT, EINVAL for a negative fd, EBADF, EINVAL for a fd that is not a container, EINVAL when set', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const p = b.host.kernel.spawn('qemu');
    const g = p.open(`/dev/vfio/${b.host.iommu.iommuGroupGet(dev)!.id}`);
    const efd = p.eventfd(0);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, new Uint8Array(2))).toBe(-EFAULT);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(-1))).toBe(-EINVAL);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(77))).toBe(-EBADF);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(efd))).toBe(-EINVAL);
    expect(b.vfio.groupOf(b.host.iommu.iommuGroupGet(dev)!)!.container).toBeUndefined();
    const c = p.open('/dev/vfio/vfio');
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c))).toBe(0);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c))).toBe(-EINVAL);
  });

  it('GET_DEVICE_FD: EINVAL before SET_IOMMU, ENODEV for an unknown name, EFAULT/EINVAL for a bad string; a close-on-exec fd', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const p = b.host.kernel.spawn('qemu');
    const c = p.open('/dev/vfio/vfio');
    const g = p.open(`/dev/vfio/${b.host.iommu.iommuGroupGet(dev)!.id}`);
    p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c));
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'))).toBe(-EINVAL);
    p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU);
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:02.0'))).toBe(-ENODEV);
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode('0000:00:01.0'))).toBe(-EFAULT);
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, new Uint8Array(8192).fill(0x41))).toBe(-EINVAL);
    const fd = p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'));
    expect(fd).toBe(5);
    expect(p.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
  });

  it('UNSET_CONTAINER: EINVAL when not set, EBUSY while a device is open; the last group releases the backend', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    const { p } = v;
    const fd = p.ioctl(v.groups[0]!, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'));
    expect(p.ioctl(v.groups[0]!, VFIO_GROUP_UNSET_CONTAINER)).toBe(-EBUSY);
    p.close(fd);
    expect(p.ioctl(v.groups[0]!, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(b.backends[0]!.released).toBe(true);
    expect(p.ioctl(v.groups[0]!, VFIO_GROUP_UNSET_CONTAINER)).toBe(-EINVAL);
    // The device's STE is back under its default domain.
    expect(b.host.iommu.iommuGroupGet(dev)!.domain).toBe(b.host.iommu.iommuGroupGet(dev)!.defaultDomain);
  });

  it('closing the group keeps the container while a device file is open; the device close dissolves it', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    const fd = v.p.ioctl(v.groups[0]!, VFIO_GROUP_GET_DEVICE_FD, cstr('0000:00:01.0'));
    v.p.close(v.groups[0]!);
    expect(b.backends[0]!.released).toBe(false);
    // A new open of the group is refused while the old container is still in use.
    expect(v.p.open(`/dev/vfio/${b.host.iommu.iommuGroupGet(dev)!.id}`)).toBe(-EBUSY);
    v.p.close(fd);
    expect(b.backends[0]!.released).toBe(true);
  });

  it('an ioctl on the wrong kind of fd: ENOTTY on a group, EINVAL on an eventfd-less container path', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    expect(v.p.ioctl(v.groups[0]!, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-ENOTTY);
    expect(v.p.ioctl(v.groups[0]!, VFIO_IOMMU_PASID_REQUEST, new Uint8Array(20))).toBe(-ENOTTY);
    const efd = v.p.eventfd(0);
    expect(v.p.ioctl(efd, VFIO_GROUP_GET_STATUS, new Uint8Array(8))).toBe(-ENOTTY);
  });
});

// ----------------------------------------------------------------- §2 SET_PASID_TABLE

function pasidTableArg(flags: number, pasidBits = 0, argsz = 40, basePtr = 0x8000_0000n): Uint8Array {
  return vfio_iommu_type1_set_pasid_table.encode({
    argsz,
    flags,
    config: {
      argsz: 32,
      version: 1,
      base_ptr: basePtr,
      format: IOMMU_PASID_FORMAT_SMMUV3,
      pasid_bits: pasidBits,
      config: IOMMU_PASID_CONFIG_TRANSLATE,
      vendor_data: { smmuv3: { version: 1 } },
    },
  });
}

describe('VFIO_IOMMU_SET_PASID_TABLE (§2)', () => {
  it('EFAULT for a short head, EINVAL for argsz < 8, and for flags 0, SET|UNSET or unknown bits; nothing changes', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    const before = steCfg(b, 'smmu0', 0x08);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, new Uint8Array(6))).toBe(-EFAULT);
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET, 0, 7)),
    ).toBe(-EINVAL);
    for (const flags of [0, 3, 4, VFIO_PASID_TABLE_FLAG_SET | 8]) {
      expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(flags))).toBe(-EINVAL);
    }
    expect(steCfg(b, 'smmu0', 0x08)).toBe(before);
  });

  it('the outer argsz is not checked against 40: 8 is enough, the IOMMU layer reads the config', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET, 0, 8)),
    ).toBe(0);
    expect(steCfg(b, 'smmu0', 0x08)).toBe(0b111);
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_UNSET)),
    ).toBe(0);
    expect(steCfg(b, 'smmu0', 0x08)).toBe(0b110);
  });

  it('a container whose second domain refuses: the first domain is detached again (reverse unwind)', () => {
    const b = vfioBench({
      smmus: [{ name: 'smmu0' }, { name: 'smmu1', driver: { asPostedSingleCd: true } }],
    });
    const d0 = b.addDevice('0000:00:01.0', 0x08, 'smmu0');
    const d1 = b.addDevice('0000:01:00.0', 0x100, 'smmu1');
    const v = vm(b, [d0, d1]);
    expect(b.backends[0]!.domains).toHaveLength(2);
    // pasid_bits = 8: the full-PASID driver on smmu0 accepts, the as-posted one on smmu1 refuses.
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET, 8)),
    ).toBe(-EINVAL);
    expect(steCfg(b, 'smmu0', 0x08)).toBe(0b110);
    expect(steCfg(b, 'smmu1', 0x100)).toBe(0b110);
    // With pasid_bits = 0 both accept.
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET, 0)),
    ).toBe(0);
    expect([steCfg(b, 'smmu0', 0x08), steCfg(b, 'smmu1', 0x100)]).toEqual([0b111, 0b111]);
    // TRANSLATE → TRANSLATE: the first domain refuses; nothing was done, nothing to unwind.
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET, 0)),
    ).toBe(-EINVAL);
    expect([steCfg(b, 'smmu0', 0x08), steCfg(b, 'smmu1', 0x100)]).toEqual([0b111, 0b111]);
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_UNSET)),
    ).toBe(0);
    expect([steCfg(b, 'smmu0', 0x08), steCfg(b, 'smmu1', 0x100)]).toEqual([0b110, 0b110]);
  });

  it('an empty container (backend without domains) succeeds and does nothing', () => {
    const b = vfioBench();
    const dev = b.addDevice('0000:00:01.0', 0x08);
    const v = vm(b, [dev]);
    const be = b.backends[0]!;
    const saved = [...be.domains];
    be.domains.length = 0;
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_TABLE, pasidTableArg(VFIO_PASID_TABLE_FLAG_SET))).toBe(
      0,
    );
    expect(steCfg(b, 'smmu0', 0x08)).toBe(0b110);
    be.domains.push(...saved);
  });
});

// ----------------------------------------------------------------- §2 CACHE_INVALIDATE

function cacheInvArg(cache: number, granularity: number, flags = 0, argsz = 64, pasidFlags = 0): Uint8Array {
  return vfio_iommu_type1_cache_invalidate.encode({
    argsz,
    flags,
    info: {
      argsz: 56,
      version: 1,
      cache,
      granularity,
      granu: { pasid_info: { flags: pasidFlags, archid: 1, pasid: 3n } },
    },
  });
}

describe('VFIO_IOMMU_CACHE_INVALIDATE (§2 companion)', () => {
  it('EFAULT, EINVAL for argsz < 8 or flags != 0', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_CACHE_INVALIDATE, new Uint8Array(4))).toBe(-EFAULT);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_CACHE_INVALIDATE,
        cacheInvArg(IOMMU_CACHE_INV_TYPE_IOTLB, IOMMU_INV_GRANU_DOMAIN, 0, 7),
      ),
    ).toBe(-EINVAL);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_CACHE_INVALIDATE,
        cacheInvArg(IOMMU_CACHE_INV_TYPE_IOTLB, IOMMU_INV_GRANU_DOMAIN, 1),
      ),
    ).toBe(-EINVAL);
    const cmds = b.host.smmu('smmu0').driver.cmdqStats?.byCommand.CMD_TLBI_NSNH_ALL ?? 0;
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_CACHE_INVALIDATE,
        cacheInvArg(IOMMU_CACHE_INV_TYPE_IOTLB, IOMMU_INV_GRANU_DOMAIN),
      ),
    ).toBe(0);
    expect(b.host.smmu('smmu0').driver.cmdqStats?.byCommand.CMD_TLBI_NSNH_ALL).toBe(cmds + 1);
  });

  it("the quirk: an error only ends its domain's group loop; the next domain's result overwrites it", () => {
    const b = vfioBench({
      smmus: [{ name: 'smmu0', driver: { asPostedSingleCd: true } }, { name: 'smmu1' }],
    });
    // Domain order follows attach order: the as-posted SMMU (PASID cache type → ENOENT) first.
    const d0 = b.addDevice('0000:00:01.0', 0x08, 'smmu0');
    const d1 = b.addDevice('0000:01:00.0', 0x100, 'smmu1');
    const v = vm(b, [d0, d1]);
    const arg = cacheInvArg(IOMMU_CACHE_INV_TYPE_PASID, IOMMU_INV_GRANU_PASID, 0, 64, 1);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_CACHE_INVALIDATE, arg)).toBe(0);
    // The other order reports the failure.
    const b2 = vfioBench({
      smmus: [{ name: 'smmu0' }, { name: 'smmu1', driver: { asPostedSingleCd: true } }],
    });
    const e0 = b2.addDevice('0000:00:01.0', 0x08, 'smmu0');
    const e1 = b2.addDevice('0000:01:00.0', 0x100, 'smmu1');
    const v2 = vm(b2, [e0, e1]);
    expect(v2.p.ioctl(v2.container, VFIO_IOMMU_CACHE_INVALIDATE, arg)).toBe(-ENOENT);
  });
});

// ----------------------------------------------------------------- §2 SET_MSI_BINDING

function msiArg(
  flags: number,
  iova = 0x800_0000n,
  gpa = 0x1000_0000n,
  size = 0x1000n,
  argsz = 32,
): Uint8Array {
  return vfio_iommu_type1_set_msi_binding.encode({ argsz, flags, iova, gpa, size });
}

describe('VFIO_IOMMU_SET_MSI_BINDING (§2 companion)', () => {
  it('EFAULT, EINVAL for argsz < 32 and for flags other than exactly BIND or UNBIND; UNBIND always 0', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, new Uint8Array(31))).toBe(-EFAULT);
    expect(
      v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(VFIO_IOMMU_BIND_MSI, 0n, 0n, 0n, 31)),
    ).toBe(-EINVAL);
    for (const f of [0, 3, 4])
      expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(f))).toBe(-EINVAL);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(VFIO_IOMMU_UNBIND_MSI))).toBe(0);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(VFIO_IOMMU_BIND_MSI))).toBe(0);
  });

  it('BIND fails on a domain that is not nested (SMMUv3: EINVAL); a failing second domain unbinds the first', () => {
    const b = vfioBench();
    const d0 = b.addDevice('0000:00:01.0', 0x08, 'smmu0');
    const plain = vm(b, [d0], b.host.kernel.spawn('qemu'), VFIO_TYPE1v2_IOMMU);
    expect(plain.p.ioctl(plain.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(VFIO_IOMMU_BIND_MSI))).toBe(
      -EINVAL,
    );
    // Nested on two SMMUs. A 2 MiB binding is larger than the host MSI granule: the first domain
    // already refuses, nothing to unwind.
    const b2 = vfioBench();
    const e0 = b2.addDevice('0000:00:01.0', 0x08, 'smmu0');
    const e1 = b2.addDevice('0000:01:00.0', 0x100, 'smmu1');
    const v = vm(b2, [e0, e1]);
    const bindings = (i: number) =>
      b2.host.iommu.dma.cookieOf(b2.backends[0]!.domains[i]!.domain)?.msiPages.length;
    const bind = (size: bigint) =>
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_SET_MSI_BINDING,
        msiArg(VFIO_IOMMU_BIND_MSI, 0x800_0000n, 0x1000_0000n, size),
      );
    expect(bind(0x20_0000n)).toBe(-EINVAL);
    expect([bindings(0), bindings(1)]).toEqual([0, 0]);
    expect(bind(0x1000n)).toBe(0);
    expect([bindings(0), bindings(1)]).toEqual([1, 1]);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_MSI_BINDING, msiArg(VFIO_IOMMU_UNBIND_MSI))).toBe(0);
    expect([bindings(0), bindings(1)]).toEqual([0, 0]);
    // The second domain refusing (its MSI cookie dropped): the first domain's new binding is undone.
    b2.host.iommu.iommuPutDmaCookie(b2.backends[0]!.domains[1]!.domain);
    expect(bind(0x1000n)).toBe(-EINVAL);
    expect(bindings(0)).toBe(0);
  });
});

// ----------------------------------------------------------------- §6 PASID_REQUEST / SET_PASID_QUOTA

function pasidReq(flags: number, minOrPasid: number, max = 0, argsz = 20): Uint8Array {
  return vfio_iommu_type1_pasid_request.encode({
    argsz,
    flags,
    u:
      flags === VFIO_IOMMU_PASID_FREE
        ? { free_pasid: minOrPasid }
        : { alloc_pasid: { min: minOrPasid, max } },
  });
}

function alloc(v: Vm, min = 1, max = 0xf_ffff): { ret: number; pasid: number } {
  const buf = pasidReq(VFIO_IOMMU_PASID_ALLOC, min, max);
  const ret = v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, buf);
  return { ret, pasid: vfio_iommu_type1_pasid_request.decode(buf).u.alloc_pasid.result };
}

function quota(v: Vm, q: number): number {
  return v.p.ioctl(
    v.container,
    VFIO_IOMMU_SET_PASID_QUOTA,
    vfio_iommu_type1_pasid_quota.encode({ argsz: 12, quota: q }),
  );
}

describe('VFIO_IOMMU_PASID_REQUEST and SET_PASID_QUOTA (§6)', () => {
  it('decode errors: EFAULT, EINVAL for argsz < 8 and for flags 0 or both; bits outside the mask ignored', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, new Uint8Array(7))).toBe(-EFAULT);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_ALLOC, 1, 10, 7))).toBe(
      -EINVAL,
    );
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(0, 1, 10))).toBe(-EINVAL);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(3, 1, 10))).toBe(-EINVAL);
    expect(b.host.ioasid.allocated).toBe(0);
    const buf = pasidReq(VFIO_IOMMU_PASID_ALLOC | 0x100, 5, 10);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, buf)).toBe(0);
    expect(vfio_iommu_type1_pasid_request.decode(buf).u.alloc_pasid.result).toBe(5);
    // min/max beyond a 12-byte buffer: EFAULT, nothing allocated.
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_PASID_REQUEST,
        pasidReq(VFIO_IOMMU_PASID_ALLOC, 1, 10).subarray(0, 12),
      ),
    ).toBe(-EFAULT);
    expect(b.host.ioasid.allocated).toBe(1);
  });

  it('a container without an IOMMU domain: EINVAL for ALLOC and FREE', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    const be = b.backends[0]!;
    const saved = [...be.domains];
    be.domains.length = 0;
    expect(alloc(v).ret).toBe(-EINVAL);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_FREE, 1))).toBe(
      -EINVAL,
    );
    be.domains.push(...saved);
  });

  it('1000 PASIDs granted (lowest free first), then ENOSPC; raising the quota grants more; reclaim at the last close', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    const got: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = alloc(v);
      expect(r.ret).toBe(0);
      got.push(r.pasid);
    }
    expect(got.slice(0, 3)).toEqual([1, 2, 3]);
    expect(got[999]).toBe(1000);
    const full = alloc(v);
    expect(full.ret).toBe(-ENOSPC);
    expect(b.host.ioasid.allocated).toBe(1000);
    expect(quota(v, 999)).toBe(-EINVAL);
    expect(quota(v, 1000)).toBe(1000);
    expect(quota(v, 1002)).toBe(1002);
    expect(alloc(v).pasid).toBe(1001);
    expect(b.vfio.vfioMmOf(v.p.mm)!.count).toBe(1001);
    // Closing the group and the container releases the backend and the vfio_mm: every PASID goes back.
    v.p.close(v.groups[0]!);
    expect(b.host.ioasid.allocated).toBe(0);
    expect(b.vfio.vfioMmOf(v.p.mm)).toBeUndefined();
  });

  it('a range with no free PASID is ENOSPC; FREE of an unknown PASID is ENOENT', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(alloc(v, 7, 7).pasid).toBe(7);
    expect(alloc(v, 7, 7).ret).toBe(-ENOSPC);
    expect(alloc(v, 9, 8).ret).toBe(-ENOSPC);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_FREE, 8))).toBe(
      -ENOENT,
    );
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_FREE, 7))).toBe(0);
    expect(b.host.ioasid.allocated).toBe(0);
  });

  it("two VMs: one cannot free the other's PASID (EACCES), and their quotas are separate", () => {
    const b = vfioBench();
    const a = vm(b, [b.addDevice('0000:00:01.0', 0x08, 'smmu0')], b.host.kernel.spawn('vm-a'));
    const c = vm(b, [b.addDevice('0000:01:00.0', 0x100, 'smmu1')], b.host.kernel.spawn('vm-b'));
    const pa = alloc(a).pasid;
    const pc = alloc(c).pasid;
    expect([pa, pc]).toEqual([1, 2]);
    expect(c.p.ioctl(c.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_FREE, pa))).toBe(
      -EACCES,
    );
    expect(b.host.ioasid.ioasidFind(null, pa).ok).toBe(true);
    expect(quota(a, 1)).toBe(1);
    expect(alloc(a).ret).toBe(-ENOSPC);
    expect(alloc(c).ret).toBe(0);
  });

  it('two containers of one process share the vfio_mm (and its quota); the PASIDs live until the last closes', () => {
    const b = vfioBench();
    const p = b.host.kernel.spawn('qemu');
    const a = vm(b, [b.addDevice('0000:00:01.0', 0x08, 'smmu0')], p);
    const c = vm(b, [b.addDevice('0000:01:00.0', 0x100, 'smmu1')], p);
    expect(b.vfio.vfioMmOf(p.mm)!.refcount).toBe(2);
    quota(a, 2);
    alloc(a);
    alloc(c);
    expect(alloc(c).ret).toBe(-ENOSPC);
    // FREE through the other container of the same mm works.
    expect(c.p.ioctl(c.container, VFIO_IOMMU_PASID_REQUEST, pasidReq(VFIO_IOMMU_PASID_FREE, 1))).toBe(0);
    p.close(a.groups[0]!);
    expect(b.host.ioasid.allocated).toBe(1);
    p.close(c.groups[0]!);
    expect(b.host.ioasid.allocated).toBe(0);
  });

  it('as posted (pasidRequestAsPosted): a failed allocation is swallowed — 0 returned, result unwritten', () => {
    const b = vfioBench({}, { pasidRequestAsPosted: true });
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    quota(v, 1);
    expect(alloc(v)).toEqual({ ret: 0, pasid: 1 });
    const buf = pasidReq(VFIO_IOMMU_PASID_ALLOC, 1, 100);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_PASID_REQUEST, buf)).toBe(0);
    expect(vfio_iommu_type1_pasid_request.decode(buf).u.alloc_pasid.result).toBe(0);
    expect(b.host.ioasid.allocated).toBe(1);
    // And a `result` it cannot write back: copy_to_user's "bytes not copied", the PASID kept.
    quota(v, 5);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_PASID_REQUEST,
        pasidReq(VFIO_IOMMU_PASID_ALLOC, 1, 100).subarray(0, 16),
      ),
    ).toBe(4);
    expect(b.host.ioasid.allocated).toBe(2);
  });

  it('intended mode: a result that cannot be written back is EFAULT and the PASID is given back', () => {
    const b = vfioBench();
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_PASID_REQUEST,
        pasidReq(VFIO_IOMMU_PASID_ALLOC, 1, 100).subarray(0, 16),
      ),
    ).toBe(-EFAULT);
    expect(b.host.ioasid.allocated).toBe(0);
  });

  it('SET_PASID_QUOTA: EFAULT, EINVAL for argsz < 12; flags are not checked; the quota is the result', () => {
    const b = vfioBench({}, { pasidQuota: 3 });
    const v = vm(b, [b.addDevice('0000:00:01.0', 0x08)]);
    expect(b.vfio.vfioMmOf(v.p.mm)!.quota).toBe(3);
    expect(v.p.ioctl(v.container, VFIO_IOMMU_SET_PASID_QUOTA, new Uint8Array(11))).toBe(-EFAULT);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_SET_PASID_QUOTA,
        vfio_iommu_type1_pasid_quota.encode({ argsz: 11, quota: 5 }),
      ),
    ).toBe(-EINVAL);
    expect(b.vfio.vfioMmOf(v.p.mm)!.quota).toBe(3);
    expect(
      v.p.ioctl(
        v.container,
        VFIO_IOMMU_SET_PASID_QUOTA,
        vfio_iommu_type1_pasid_quota.encode({ argsz: 12, flags: 0xff, quota: 7 }),
      ),
    ).toBe(7);
  });
});

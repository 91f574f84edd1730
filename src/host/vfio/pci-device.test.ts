/**
 * vfio-pci through the uAPI, the way QEMU uses it, with the real PASID DMA device behind a real
 * SMMUv3: device info, regions (config space with the PASID patch and without it, BAR0 with the
 * MSI-X table hidden, the DMA fault region), IRQs (MSI-X triggers as eventfds delivered through
 * the SMMU and the MSI doorbell; the DMA fault IRQ), reset, every errno path with nothing
 * changed — and the end-to-end check: a device DMA with a PASID that faults in the
 * guest's stage 1 ends as a record in the fault region and a signalled eventfd.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OffsetMemory } from '../../hw/memory-view.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import { PasidDmaDevice } from '../../hw/pci/pasid-dma-device.ts';
import {
  CS_SUCCESS,
  CS_WRITE_FAULT,
  decodeCompletion,
  encodeDescriptor,
  OP_COPY,
  OP_FILL,
  PDMA_CTRL,
  PDMA_CTRL_ENABLE,
  PDMA_ID,
  PDMA_MSIX_TABLE_OFFSET,
  PDMA_RING_BASE_HI,
  PDMA_RING_BASE_LO,
  PDMA_RING_SIZE,
  PDMA_RING_TAIL,
} from '../../hw/pci/pasid-dma-regs.ts';
import {
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXT_CAP_ID,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_NEXT,
  PCI_EXT_CAP_VER,
  PCI_PASID_CAP,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
} from '../../hw/pci/regs.ts';
import { CdTable } from '../../hw/smmuv3/rig.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import { EBADF, EFAULT, EINVAL, EIO, ENOTTY } from '../../uapi/errno.ts';
import { EFD_AUTORESET } from '../../uapi/eventfd.ts';
import { MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  iommu_fault,
} from '../../uapi/iommu.ts';
import { KVM_IRQFD, kvm_irqfd } from '../../uapi/kvm.ts';
import {
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_PASID_ALLOC,
  VFIO_IOMMU_PASID_REQUEST,
  VFIO_IOMMU_SET_PASID_TABLE,
  VFIO_PASID_TABLE_FLAG_SET,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_pasid_request,
  vfio_iommu_type1_set_pasid_table,
} from '../../uapi/vfio.ts';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_IRQ_INFO_CAP_TYPE,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_FLAG_CAPS,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SUBTYPE_DMA_FAULT,
  VFIO_IRQ_TYPE_NESTED,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_DMA_FAULT,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT,
  VFIO_REGION_TYPE_NESTED,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_info_cap_type,
  vfio_irq_set,
  vfio_region_dma_fault,
  vfio_region_info,
  vfio_region_info_cap_type,
  vfioPciIndexToOffset,
} from '../../uapi/vfio-device.ts';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  vfio_iommu_type1_dma_map,
  walkInfoCaps,
} from '../../uapi/vfio-type1.ts';
import { eventfdCtxOfFile } from '../eventfd.ts';
import { Host, type HostOptions } from '../host.ts';
import type { Process } from '../kernel/process.ts';
import type { Arm64Vm } from '../kvm/arm64/arch.ts';
import { armVmWithGic } from '../kvm/kvm-testing.ts';
import type { HostPciDevice } from '../pci.ts';
import { VFIO_PCI_DMA_FAULT_IRQ_INDEX, VFIO_PCI_DMA_FAULT_REGION_INDEX } from './pci-device.ts';

const GPA_BASE = 0x4000_0000;
const GUEST_SIZE = 0x20_0000;

const s32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};
const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);
const u32 = (b: Uint8Array, at = 0): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

interface Assigned {
  readonly host: Host;
  readonly dev: PasidDmaDevice;
  readonly rec: HostPciDevice;
  readonly p: Process;
  readonly container: number;
  readonly group: number;
  readonly fd: number;
  /** Guest RAM in the QEMU process, mapped for DMA at GPA_BASE (one 2 MiB huge page). */
  readonly ram: number;
}

function assign(
  opts: {
    host?: HostOptions;
    type?: number;
    exposePasid?: boolean;
    extOrder?: PasidDmaDevice['caps'] extends never ? never : ('aer' | 'pasid' | 'ats' | 'pri' | 'dsn')[];
  } = {},
): Assigned {
  const host = new Host({ ramSize: 0x1000_0000, ...opts.host });
  const dev = new PasidDmaDevice({
    bus: 0,
    dev: 4,
    fn: 0,
    maxPasidWidth: 20,
    ...(opts.extOrder ? { extOrder: opts.extOrder } : {}),
  });
  const rec = host.addPciDevice(
    dev,
    opts.exposePasid === undefined ? {} : { vfioPci: { exposePasid: opts.exposePasid } },
  );
  if (typeof rec === 'number') throw new Error(`addPciDevice: ${rec}`);
  const p = host.kernel.spawn('qemu');
  const container = p.open('/dev/vfio/vfio');
  const group = p.open(`/dev/vfio/${host.iommu.iommuGroupGet(rec.iommuDev)!.id}`);
  expect(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, s32(container))).toBe(0);
  expect(p.ioctl(container, VFIO_SET_IOMMU, opts.type ?? VFIO_TYPE1_NESTING_IOMMU)).toBe(0);
  const fd = p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, cstr(rec.name));
  expect(fd).toBeGreaterThan(0);
  const ram = p.mmap(GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
  const map = vfio_iommu_type1_dma_map.encode({
    argsz: 32,
    flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
    vaddr: BigInt(ram),
    iova: BigInt(GPA_BASE),
    size: BigInt(GUEST_SIZE),
  });
  expect(p.ioctl(container, VFIO_IOMMU_MAP_DMA, map)).toBe(0);
  return { host, dev, rec, p, container, group, fd, ram };
}

/** pread/pwrite of a region through the device fd. */
function regionRead(a: Assigned, index: number, off: number, len: number): Uint8Array | number {
  const buf = new Uint8Array(len);
  const r = a.p.pread(a.fd, buf, len, vfioPciIndexToOffset(index) + off);
  return typeof r === 'number' && r >= 0 ? buf.subarray(0, r) : (r as number);
}

function regionWrite(a: Assigned, index: number, off: number, bytes: Uint8Array): number {
  return a.p.pwrite(a.fd, bytes, bytes.length, vfioPciIndexToOffset(index) + off) as number;
}

const cfgRead32 = (a: Assigned, off: number): number =>
  u32(regionRead(a, VFIO_PCI_CONFIG_REGION_INDEX, off, 4) as Uint8Array);
const cfgWrite16 = (a: Assigned, off: number, v: number): number =>
  regionWrite(a, VFIO_PCI_CONFIG_REGION_INDEX, off, Uint8Array.of(v & 0xff, v >>> 8));
const bar0Write32 = (a: Assigned, off: number, v: number): number => regionWrite(a, 0, off, s32(v));
const bar0Read32 = (a: Assigned, off: number): number | Uint8Array => {
  const r = regionRead(a, 0, off, 4);
  return typeof r === 'number' ? r : u32(r);
};

/** The extended capabilities the user sees: [id, version, offset]. */
function extChain(a: Assigned): [number, number, number][] {
  const out: [number, number, number][] = [];
  let at = 0x100;
  for (let n = 0; n < 64 && at >= 0x100; n++) {
    const h = cfgRead32(a, at);
    if (h === 0) break;
    out.push([PCI_EXT_CAP_ID(h), PCI_EXT_CAP_VER(h), at]);
    at = PCI_EXT_CAP_NEXT(h);
  }
  return out;
}

describe('the PASID capability in the user-visible config space (§7)', () => {
  it('with the patch: in the chain, ID 0x1B version 1, body from the device, writes dropped', () => {
    const a = assign();
    const chain = extChain(a);
    const pasid = chain.find(([id]) => id === PCI_EXT_CAP_ID_PASID);
    expect(pasid).toBeDefined();
    expect(pasid![1]).toBe(1);
    expect(pasid![2]).toBe(a.dev.caps.pasid);
    // Max PASID Width 20 in the capability register, read from the device.
    expect((cfgRead32(a, a.dev.caps.pasid + PCI_PASID_CAP) >>> 8) & 0x1f).toBe(20);
    // The host's SMMU driver enabled PASID; the guest sees it but cannot turn it off.
    expect(a.dev.pasidEnabled).toBe(true);
    expect(cfgWrite16(a, a.dev.caps.pasid + PCI_PASID_CTRL, 0)).toBe(2);
    expect(a.dev.pasidEnabled).toBe(true);
    expect(cfgRead32(a, a.dev.caps.pasid + PCI_PASID_CAP) >>> 16).toBe(PCI_PASID_CTRL_ENABLE);
  });

  it('pre-patch (exposePasid: false): PASID is not in the chain', () => {
    const a = assign({ exposePasid: false });
    const ids = extChain(a).map(([id]) => id);
    expect(ids).not.toContain(PCI_EXT_CAP_ID_PASID);
    expect(ids).toContain(0x01); // AER is still there
    // Both modes side by side: the patch adds exactly the PASID capability.
    expect(
      extChain(assign())
        .map(([id]) => id)
        .filter((id) => !ids.includes(id)),
    ).toEqual([PCI_EXT_CAP_ID_PASID]);
  });

  it('property: random guest writes to config space never change the device IDs, BAR sizes or PASID state', () => {
    const a = assign();
    const id = cfgRead32(a, 0);
    const pasidCap = cfgRead32(a, a.dev.caps.pasid);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xfff }),
        fc.constantFrom(1, 2, 4),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (off, size, v) => {
          const at = off - (off % size);
          const bytes = new Uint8Array(size);
          for (let i = 0; i < size; i++) bytes[i] = (v >>> (8 * i)) & 0xff;
          regionWrite(a, VFIO_PCI_CONFIG_REGION_INDEX, at, bytes);
          expect(cfgRead32(a, 0)).toBe(id);
          expect(a.dev.configRead(0, 4)).toBe(id);
          expect(a.dev.configRead(a.dev.caps.pasid, 4)).toBe(pasidCap);
          expect(a.dev.pasidEnabled).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('VFIO_DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO', () => {
  it('device info: PCI with reset; the fault region and IRQ add one each in a nesting container', () => {
    const a = assign();
    const info = vfio_device_info.encode({ argsz: 20 });
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_GET_INFO, info)).toBe(0);
    const d = vfio_device_info.decode(info);
    expect(d.flags).toBe(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    expect([d.num_regions, d.num_irqs]).toEqual([VFIO_PCI_NUM_REGIONS + 1, VFIO_PCI_NUM_IRQS + 1]);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_GET_INFO, vfio_device_info.encode({ argsz: 15 }))).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_GET_INFO, new Uint8Array(8))).toBe(-EFAULT);
    // A plain TYPE1v2 container: no fault region.
    const plain = assign({ type: VFIO_TYPE1v2_IOMMU });
    plain.p.ioctl(plain.fd, VFIO_DEVICE_GET_INFO, info);
    expect(vfio_device_info.decode(info).num_regions).toBe(VFIO_PCI_NUM_REGIONS);
  });

  it('region info: config, BAR0, VGA refused, the fault region with its type and fault capabilities', () => {
    const a = assign();
    const ri = (index: number, argsz = 32) => {
      const b = new Uint8Array(128);
      b.set(vfio_region_info.encode({ argsz, index }));
      return { r: a.p.ioctl(a.fd, VFIO_DEVICE_GET_REGION_INFO, b), info: vfio_region_info.decode(b), b };
    };
    expect(ri(VFIO_PCI_CONFIG_REGION_INDEX).info.size).toBe(4096n);
    expect(ri(0).info.size).toBe(BigInt(a.dev.barSize(0)));
    expect(ri(0).info.offset).toBe(0n);
    expect(ri(1).info.flags).toBe(0);
    expect(ri(VFIO_PCI_VGA_REGION_INDEX).r).toBe(-EINVAL);
    expect(ri(VFIO_PCI_DMA_FAULT_REGION_INDEX + 1).r).toBe(-EINVAL);
    expect(ri(0, 31).r).toBe(-EINVAL);
    // Too small for the capabilities: argsz says how much is needed, CAPS flag set, no chain.
    const small = ri(VFIO_PCI_DMA_FAULT_REGION_INDEX);
    expect(small.r).toBe(0);
    expect(small.info.flags & VFIO_REGION_INFO_FLAG_CAPS).toBe(VFIO_REGION_INFO_FLAG_CAPS);
    expect(small.info.argsz).toBe(32 + 16 + 12);
    expect(small.info.cap_offset).toBe(0);
    const big = ri(VFIO_PCI_DMA_FAULT_REGION_INDEX, 128);
    expect(big.info.cap_offset).toBe(32);
    expect(big.info.offset).toBe(BigInt(vfioPciIndexToOffset(VFIO_PCI_DMA_FAULT_REGION_INDEX)));
    const caps = walkInfoCaps(big.b, 32);
    expect(caps.map((c) => c.id)).toEqual([VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_CAP_DMA_FAULT]);
    const t = vfio_region_info_cap_type.decode(big.b, 32);
    expect([t.type, t.subtype]).toEqual([VFIO_REGION_TYPE_NESTED, VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT]);
  });

  it("IRQ info: MSI-X has the device's vectors; the DMA fault IRQ is extended index 5 with its type capability", () => {
    const a = assign();
    const ii = (index: number, argsz = 20) => {
      const b = new Uint8Array(64);
      b.set(vfio_irq_info.encode({ argsz, index }));
      return { r: a.p.ioctl(a.fd, VFIO_DEVICE_GET_IRQ_INFO, b), info: vfio_irq_info.decode(b), b };
    };
    const msix = ii(VFIO_PCI_MSIX_IRQ_INDEX);
    expect([msix.info.count, msix.info.flags]).toEqual([4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE]);
    expect(ii(0).info.count).toBe(0); // no INTx pin
    const fault = ii(VFIO_PCI_DMA_FAULT_IRQ_INDEX, 64);
    expect(fault.info.flags).toBe(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_FLAG_CAPS);
    expect(fault.info.cap_offset).toBe(20);
    const cap = vfio_irq_info_cap_type.decode(fault.b, 20);
    expect([cap.header.id, cap.type, cap.subtype]).toEqual([
      VFIO_IRQ_INFO_CAP_TYPE,
      VFIO_IRQ_TYPE_NESTED,
      VFIO_IRQ_SUBTYPE_DMA_FAULT,
    ]);
    expect(ii(VFIO_PCI_DMA_FAULT_IRQ_INDEX + 1).r).toBe(-EINVAL);
    expect(ii(0, 15).r).toBe(-EINVAL);
  });

  it('an unknown device ioctl is ENOTTY; a container ioctl on the device fd too', () => {
    const a = assign();
    expect(a.p.ioctl(a.fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-ENOTTY);
  });
});

describe('BAR access', () => {
  it('EIO until the user enables memory decoding in its Command register; then the device registers', () => {
    const a = assign();
    // vfio-pci enabled the device (memory decoding on) before copying config space; the user's
    // Command register starts with it, and turning it off makes BAR access EIO.
    expect(bar0Read32(a, PDMA_ID)).toBe(0x5a5a_0001);
    expect(cfgWrite16(a, PCI_COMMAND, 0)).toBe(2);
    expect(bar0Read32(a, PDMA_ID)).toBe(-EIO);
    expect(cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY)).toBe(2);
    expect(bar0Read32(a, PDMA_ID)).toBe(0x5a5a_0001);
    // Beyond the BAR: EINVAL.
    expect(bar0Read32(a, a.dev.barSize(0))).toBe(-EINVAL);
  });

  it('the MSI-X table reads 0xFF and ignores writes; the rest of the BAR is the device', () => {
    const a = assign();
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(bar0Read32(a, PDMA_MSIX_TABLE_OFFSET)).toBe(0xffff_ffff);
    expect(bar0Write32(a, PDMA_MSIX_TABLE_OFFSET + 8, 0x1234)).toBe(4);
    expect(a.dev.msixEntry(0).data).toBe(0);
    // A read spanning the table edge: device bytes then 0xFF.
    const r = regionRead(a, 0, PDMA_MSIX_TABLE_OFFSET - 4, 8) as Uint8Array;
    expect([...r.subarray(4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });
});

/** struct vfio_irq_set with its data array. */
function irqSet(
  index: number,
  flags: number,
  start: number,
  count: number,
  data: Uint8Array = new Uint8Array(0),
  argsz = 20 + data.length,
): Uint8Array {
  const b = new Uint8Array(20 + data.length);
  b.set(vfio_irq_set.encode({ argsz, flags, index, start, count }));
  b.set(data, 20);
  return b;
}

describe('VFIO_DEVICE_SET_IRQS', () => {
  it('validation: argsz, index, flags, range, data size; bad eventfds EBADF/EINVAL — nothing enabled', () => {
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const efd = a.p.eventfd(0);
    const T = VFIO_IRQ_SET_ACTION_TRIGGER;
    const E = VFIO_IRQ_SET_DATA_EVENTFD;
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, new Uint8Array(10))).toBe(-EFAULT);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E, 0, 1, s32(efd), 19))).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(9, T | E, 0, 1, s32(efd)))).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E | 0x100, 0, 1, s32(efd)))).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E, 3, 2, new Uint8Array(8)))).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E, 0, 2, s32(efd)))).toBe(-EINVAL);
    expect(
      a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E | VFIO_IRQ_SET_DATA_BOOL, 0, 1, s32(efd))),
    ).toBe(-EINVAL);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E, 0, 1, s32(77)))).toBe(-EBADF);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, irqSet(2, T | E, 0, 1, s32(a.group)))).toBe(-EINVAL);
    expect(
      a.p.ioctl(
        a.fd,
        VFIO_DEVICE_SET_IRQS,
        irqSet(2, VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE, 0, 1),
      ),
    ).toBe(-ENOTTY);
    expect(a.dev.msixEnabled).toBe(false);
    expect(eventfdCtxOfFile(a.p.fileOf(efd)!)!.refcount).toBe(1);
  });

  it("MSI-X through the SMMU: a completion interrupt signals the vector's eventfd; DATA_BOOL loops back", () => {
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const efds = [a.p.eventfd(0), a.p.eventfd(0)];
    const data = new Uint8Array(8);
    data.set(s32(efds[0]!), 0);
    data.set(s32(efds[1]!), 4);
    expect(
      a.p.ioctl(
        a.fd,
        VFIO_DEVICE_SET_IRQS,
        irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, 0, 2, data),
      ),
    ).toBe(0);
    expect(a.dev.msixEnabled).toBe(true);
    const e1 = eventfdCtxOfFile(a.p.fileOf(efds[1]!)!)!;
    // An MSI is a DMA write: the user must let the device master the bus.
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    // The device raises vector 1: MSI write → SMMU (software MSI window) → doorbell → eventfd.
    a.dev.raiseVector(1);
    expect(e1.count).toBe(1n);
    expect(a.host.vfioPciOf(a.rec)!.stats.msixDelivered).toBe(1);
    // Loopback: DATA_BOOL / DATA_NONE signal without the device.
    expect(
      a.p.ioctl(
        a.fd,
        VFIO_DEVICE_SET_IRQS,
        irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_BOOL, 1, 1, Uint8Array.of(1)),
      ),
    ).toBe(0);
    expect(e1.count).toBe(2n);
    // Disable: count 0 with DATA_NONE.
    expect(
      a.p.ioctl(
        a.fd,
        VFIO_DEVICE_SET_IRQS,
        irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE, 0, 0),
      ),
    ).toBe(0);
    expect(a.dev.msixEnabled).toBe(false);
    expect(e1.refcount).toBe(1);
  });

  it('a descriptor with an interrupt request: the copy lands and the vector fires', () => {
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const efd = a.p.eventfd(0);
    a.p.ioctl(
      a.fd,
      VFIO_DEVICE_SET_IRQS,
      irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, s32(efd)),
    );
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    const ring = 0x1000;
    const src = 0x2000;
    const dst = 0x3000;
    a.p.mm.writeUser(a.ram + src, new TextEncoder().encode('vsva!'));
    a.p.mm.writeUser(
      a.ram + ring,
      encodeDescriptor({
        opcode: OP_COPY,
        src: GPA_BASE + src,
        dst: GPA_BASE + dst,
        len: 5,
        interruptVector: 0,
        completionAddr: GPA_BASE + 0x4000,
      }),
    );
    bar0Write32(a, PDMA_RING_BASE_LO, GPA_BASE + ring);
    bar0Write32(a, PDMA_RING_BASE_HI, 0);
    bar0Write32(a, PDMA_RING_SIZE, 16);
    bar0Write32(a, PDMA_CTRL, PDMA_CTRL_ENABLE);
    bar0Write32(a, PDMA_RING_TAIL, 1);
    expect(new TextDecoder().decode(a.p.mm.readUser(a.ram + dst, 5))).toBe('vsva!');
    expect(decodeCompletion(a.p.mm.readUser(a.ram + 0x4000, 32)!).status).toBe(CS_SUCCESS);
    expect(eventfdCtxOfFile(a.p.fileOf(efd)!)!.count).toBe(1n);
  });

  it('an FLR started through the config region is the same reset: PASID stays enabled, MSI-X keeps working', () => {
    // Found by the config-write property: DEVCTL's FLR bit reset the function without the PCI
    // core's save/restore, so PASID Enable was lost.
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const efd = a.p.eventfd(0);
    a.p.ioctl(
      a.fd,
      VFIO_DEVICE_SET_IRQS,
      irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, s32(efd)),
    );
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY);
    bar0Write32(a, PDMA_RING_SIZE, 16);
    const devctl = a.dev.caps.exp + PCI_EXP_DEVCTL;
    expect(cfgWrite16(a, devctl, PCI_EXP_DEVCTL_BCR_FLR)).toBe(2);
    expect(bar0Read32(a, PDMA_RING_SIZE)).toBe(0);
    expect(a.dev.pasidEnabled).toBe(true);
    expect(a.dev.msixEnabled).toBe(true);
    const back = regionRead(a, VFIO_PCI_CONFIG_REGION_INDEX, devctl, 2) as Uint8Array;
    expect((back[0]! | (back[1]! << 8)) & PCI_EXP_DEVCTL_BCR_FLR).toBe(0);
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    a.dev.raiseVector(0);
    expect(eventfdCtxOfFile(a.p.fileOf(efd)!)!.count).toBe(1n);
  });

  it('VFIO_DEVICE_RESET resets the function and keeps the MSI-X setup', () => {
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const efd = a.p.eventfd(0);
    a.p.ioctl(
      a.fd,
      VFIO_DEVICE_SET_IRQS,
      irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, s32(efd)),
    );
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY);
    bar0Write32(a, PDMA_RING_SIZE, 16);
    expect(a.p.ioctl(a.fd, VFIO_DEVICE_RESET)).toBe(0);
    expect(bar0Read32(a, PDMA_RING_SIZE)).toBe(0);
    expect(a.dev.msixEnabled).toBe(true);
    expect(a.dev.pasidEnabled).toBe(true);
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    a.dev.raiseVector(0);
    expect(eventfdCtxOfFile(a.p.fileOf(efd)!)!.count).toBe(1n);
  });
});

// ----------------------------------------------------------------- MSI-X into the guest (KVM irqfd)

describe('MSI-X → eventfd → KVM irqfd → the guest’s vGIC (issue 5)', () => {
  it.each([
    ['a plain eventfd', 0],
    ['an EFD_AUTORESET eventfd', EFD_AUTORESET],
  ])('with %s: each device interrupt is exactly one SPI edge, with no VMM involvement', (_n, flags) => {
    const a = assign({ type: VFIO_TYPE1v2_IOMMU });
    const rig = { kernel: a.host.kernel, kvm: a.host.kvm, proc: a.p, sys: a.p.open('/dev/kvm') };
    const { vm } = armVmWithGic(rig, 1);
    const efd = a.p.eventfd2(0, flags);
    expect(
      a.p.ioctl(
        a.fd,
        VFIO_DEVICE_SET_IRQS,
        irqSet(2, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, s32(efd)),
      ),
    ).toBe(0);
    expect(a.p.ioctl(vm, KVM_IRQFD, kvm_irqfd.encode({ fd: efd, gsi: 12 }))).toBe(0);
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    const vgic = (a.host.kvm.vms[0]!.arch as Arm64Vm).vgic!;
    const syscalls = a.p.stats.syscalls.read ?? 0;
    for (let i = 1; i <= 4; i++) {
      a.dev.raiseVector(0);
      expect(vgic.counts(0, 32 + 12).raised).toBe(i);
      expect(vgic.acknowledge(0, 32 + 12)).toBe(true);
    }
    expect(eventfdCtxOfFile(a.p.fileOf(efd)!)!.count).toBe(0n);
    expect(a.host.vfioPciOf(a.rec)!.stats.msixDelivered).toBe(4);
    expect(a.p.stats.syscalls.read ?? 0).toBe(syscalls);
  });
});

// ----------------------------------------------------------------- the DMA fault path (Done when)

describe('a PASID DMA that faults in the guest stage 1 → a fault record and a signalled eventfd', () => {
  it('end to end through SET_PASID_TABLE, the device ring, the SMMU, the iommu core and vfio-pci', () => {
    const a = assign();
    const { host, p } = a;
    // Guest memory seen by IPA: the huge page backing guest RAM.
    const pa = p.mm.translate(a.ram, 'write')!;
    const view = new OffsetMemory(host.memory.mem, GPA_BASE, pa, GUEST_SIZE);
    const galloc = new PageAllocator(view, GPA_BASE + 0x10_0000, 0x10_0000);
    // The guest's CD table (2-level, 256 PASIDs) and PASID 5's stage-1 table: VA 0x40_0000 mapped.
    const cds = new CdTable(view, galloc, 1, 8);
    const s1 = PageTable.create(galloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 40 });
    if (!s1.ok) throw new Error(s1.detail);
    const page = galloc.alloc(0x1000, 12)!;
    expect(s1.table.map(0x40_0000, page, 0x1000, { read: true, write: true, user: true }).ok).toBe(true);
    cds.write(5, { asid: 9, ttb0: s1.table.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    // VFIO_IOMMU_SET_PASID_TABLE: TRANSLATE, 8 PASID bits, 2-level, S1DSS bypass for non-PASID traffic.
    const cfg = vfio_iommu_type1_set_pasid_table.encode({
      argsz: 40,
      flags: VFIO_PASID_TABLE_FLAG_SET,
      config: {
        argsz: 32,
        version: 1,
        base_ptr: BigInt(cds.ptr),
        format: IOMMU_PASID_FORMAT_SMMUV3,
        pasid_bits: 8,
        config: IOMMU_PASID_CONFIG_TRANSLATE,
        vendor_data: { smmuv3: { version: 1, s1fmt: 1, s1dss: 1 } },
      },
    });
    expect(p.ioctl(a.container, VFIO_IOMMU_SET_PASID_TABLE, cfg)).toBe(0);
    // The DMA fault IRQ's eventfd.
    const efd = p.eventfd(0);
    const set = new Uint8Array(24);
    set.set(
      vfio_irq_set.encode({
        argsz: 24,
        flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD,
        index: VFIO_PCI_DMA_FAULT_IRQ_INDEX,
        start: 0,
        count: 1,
      }),
    );
    set.set(s32(efd), 20);
    expect(p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, set)).toBe(0);
    // The guest driver: ring in guest RAM (IPA, non-PASID traffic bypasses stage 1), one FILL with
    // PASID 5 to VA 0x80_0000, which the process's table does not map; completion at VA 0x40_0100.
    cfgWrite16(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    const ring = 0x1000;
    p.mm.writeUser(
      a.ram + ring,
      encodeDescriptor({
        opcode: OP_FILL,
        pasid: 5,
        dst: 0x80_0000,
        len: 64,
        pattern: [0xaa, 0],
        completionAddr: 0x40_0100,
      }),
    );
    bar0Write32(a, PDMA_RING_BASE_LO, GPA_BASE + ring);
    bar0Write32(a, PDMA_RING_BASE_HI, 0);
    bar0Write32(a, PDMA_RING_SIZE, 16);
    bar0Write32(a, PDMA_CTRL, PDMA_CTRL_ENABLE);
    bar0Write32(a, PDMA_RING_TAIL, 1);
    // The device saw a write fault, and wrote its completion record in PASID 5's space.
    const compl = decodeCompletion(view.read(page + 0x100, 32)!);
    expect([compl.status, compl.faultAddr, compl.pasid]).toEqual([CS_WRITE_FAULT, 0x80_0000, 5]);
    // The eventfd fired once; the fault region holds one record at head 0.
    const buf = new Uint8Array(8);
    expect(p.read(efd, buf)).toBe(8);
    expect(u32(buf)).toBe(1);
    const hdr = vfio_region_dma_fault.decode(
      regionRead(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, 20) as Uint8Array,
    );
    expect([hdr.tail, hdr.head, hdr.entry_size, hdr.nb_entries, hdr.offset]).toEqual([0, 1, 64, 512, 20]);
    const rec = iommu_fault.decode(
      regionRead(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, hdr.offset, 64) as Uint8Array,
    );
    expect(rec.type).toBe(IOMMU_FAULT_DMA_UNRECOV);
    expect(rec.u.event).toEqual({
      reason: IOMMU_FAULT_REASON_PTE_FETCH,
      flags: IOMMU_FAULT_UNRECOV_PASID_VALID | IOMMU_FAULT_UNRECOV_ADDR_VALID,
      pasid: 5,
      perm: IOMMU_FAULT_PERM_WRITE,
      addr: 0x80_0000n,
      fetch_addr: 0n,
    });
    // The consumer advances tail; only a 4-byte write at 0 below nb_entries is accepted.
    expect(regionWrite(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, s32(1))).toBe(4);
    expect(regionWrite(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, s32(512))).toBe(-EINVAL);
    expect(regionWrite(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 4, s32(1))).toBe(-EINVAL);
    expect(regionWrite(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, Uint8Array.of(1, 0))).toBe(-EINVAL);
    expect(
      vfio_region_dma_fault.decode(regionRead(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, 20) as Uint8Array).tail,
    ).toBe(1);
    // A good PASID access still works: a FILL to the mapped page.
    p.mm.writeUser(
      a.ram + ring + 64,
      encodeDescriptor({
        opcode: OP_FILL,
        pasid: 5,
        dst: 0x40_0000,
        len: 16,
        pattern: [0x5a5a5a5a, 0x5a5a5a5a],
        completionAddr: 0x40_0200,
      }),
    );
    bar0Write32(a, PDMA_RING_TAIL, 2);
    expect([...view.read(page, 4)!]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
    expect(decodeCompletion(view.read(page + 0x200, 32)!).status).toBe(CS_SUCCESS);
  });

  it('a full ring drops further faults (one slot stays empty) and counts them', () => {
    const a = assign();
    const vdev = a.host.vfioPciOf(a.rec)!;
    const domainFault = (n: number) => {
      for (let i = 0; i < n; i++)
        a.host.iommu.iommuReportDeviceFault(a.rec.iommuDev, {
          type: 1,
          event: { reason: 5, flags: 2, pasid: 0, perm: 2, addr: 0x1000 * i, fetch_addr: 0 },
        });
    };
    domainFault(511);
    expect(vdev.stats.faultsRecorded).toBe(511);
    domainFault(1);
    expect(vdev.stats.faultsDropped).toBe(1);
    expect(
      vfio_region_dma_fault.decode(regionRead(a, VFIO_PCI_DMA_FAULT_REGION_INDEX, 0, 20) as Uint8Array).head,
    ).toBe(511);
  });
});

describe('SET_PASID_TABLE over a real two-domain type1 container (§2)', () => {
  it('two devices behind two SMMUs: the second domain refuses, the first is detached again', () => {
    const host = new Host({
      ramSize: 0x1000_0000,
      // type1 puts a new domain at the head of its list: smmu1's domain is walked first, and the
      // as-posted driver on smmu0 (refusing pasid_bits != 0) second.
      smmus: [{ name: 'smmu0', driver: { asPostedSingleCd: true } }, { name: 'smmu1' }],
    });
    const d0 = new PasidDmaDevice({ bus: 0, dev: 4, fn: 0 });
    const d1 = new PasidDmaDevice({ bus: 1, dev: 0, fn: 0 });
    const r0 = host.addPciDevice(d0, { iommu: 'smmu0' }) as HostPciDevice;
    const r1 = host.addPciDevice(d1, { iommu: 'smmu1' }) as HostPciDevice;
    const p = host.kernel.spawn('qemu');
    const c = p.open('/dev/vfio/vfio');
    for (const r of [r0, r1]) {
      const g = p.open(`/dev/vfio/${host.iommu.iommuGroupGet(r.iommuDev)!.id}`);
      expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32(c))).toBe(0);
    }
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU)).toBe(0);
    const cfgOf = (sid: number, smmu: string) => host.smmu(smmu).driver.steWords(sid)![0]! & 0xe;
    const set = (pasidBits: number) =>
      p.ioctl(
        c,
        VFIO_IOMMU_SET_PASID_TABLE,
        vfio_iommu_type1_set_pasid_table.encode({
          argsz: 40,
          flags: VFIO_PASID_TABLE_FLAG_SET,
          config: {
            argsz: 32,
            version: 1,
            base_ptr: BigInt(GPA_BASE),
            format: IOMMU_PASID_FORMAT_SMMUV3,
            pasid_bits: pasidBits,
            config: IOMMU_PASID_CONFIG_TRANSLATE,
            vendor_data: { smmuv3: { version: 1 } },
          },
        }),
      );
    // Config (STE dword 0 bits [3:1]): 0b110 = stage 2 only, 0b111 = nested.
    expect([cfgOf(d0.streamId, 'smmu0'), cfgOf(d1.streamId, 'smmu1')]).toEqual([0b1100, 0b1100]);
    const writes = () => host.smmu('smmu1').driver.stats.steWrites;
    const before = writes();
    expect(set(8)).toBe(-EINVAL);
    // smmu1's domain took the table (one STE install) and was detached again (another).
    expect(writes() - before).toBe(2);
    expect([cfgOf(d0.streamId, 'smmu0'), cfgOf(d1.streamId, 'smmu1')]).toEqual([0b1100, 0b1100]);
    expect(set(0)).toBe(0);
    expect([cfgOf(d0.streamId, 'smmu0'), cfgOf(d1.streamId, 'smmu1')]).toEqual([0b1110, 0b1110]);
  });
});

describe('process exit releases everything (no PASID, pin, domain or fd leaks)', () => {
  it('QEMU dies with PASIDs allocated, DMA mapped, MSI-X on and the fault IRQ set', () => {
    const a = assign();
    const { host, p } = a;
    const before = { bytes: host.memory.alloc.bytesInUse };
    const req = vfio_iommu_type1_pasid_request.encode({
      argsz: 20,
      flags: VFIO_IOMMU_PASID_ALLOC,
      u: { alloc_pasid: { min: 1, max: 100 } },
    });
    expect(p.ioctl(a.container, VFIO_IOMMU_PASID_REQUEST, req)).toBe(0);
    expect(host.ioasid.allocated).toBe(1);
    const efd = p.eventfd(0);
    const set = new Uint8Array(24);
    set.set(
      vfio_irq_set.encode({
        argsz: 24,
        flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD,
        index: VFIO_PCI_DMA_FAULT_IRQ_INDEX,
        start: 0,
        count: 1,
      }),
    );
    set.set(s32(efd), 20);
    expect(p.ioctl(a.fd, VFIO_DEVICE_SET_IRQS, set)).toBe(0);
    const group = host.iommu.iommuGroupGet(a.rec.iommuDev)!;
    expect(group.domain).not.toBe(group.defaultDomain);
    expect(p.mm.stats.pinnedPages).toBeGreaterThan(0);
    p.exit();
    expect(host.ioasid.allocated).toBe(0);
    expect(group.domain).toBe(group.defaultDomain);
    expect(host.vfioPciOf(a.rec)!.openCount).toBe(0);
    expect(host.memory.alloc.bytesInUse).toBeLessThan(before.bytes);
    // Another process can take the group over.
    const q = host.kernel.spawn('qemu2');
    expect(q.open(`/dev/vfio/${group.id}`)).toBe(3);
  });
});

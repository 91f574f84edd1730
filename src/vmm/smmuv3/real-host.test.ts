/**
 * The virtual SMMUv3 in front of a real host: a `Host` with a PASID DMA device bound to vfio-pci,
 * the VMM's VFIO container (`src/vmm/vfio/container.ts`) as the HostIOMMUContext, guest RAM that
 * is the VMM process's memory mapped for DMA. The guest's STE and CD table in guest RAM, a
 * CFGI_STE through the vSMMU's command queue → VFIO_IOMMU_SET_PASID_TABLE → the physical SMMU's
 * STE is nested (Config 0b111) → a PASID DMA by the device walks the guest's stage 1; then a guest
 * unmap + TLBI_NH_VA is forwarded and the next DMA faults, and that fault, read from vfio-pci's
 * DMA fault region, comes back through `inject_faults` as the guest's F_TRANSLATION event.
 */

import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import { F_TRANSLATION } from '../../arch/smmuv3/events.ts';
import { S1DSS_BYPASS, STE_0_CFG, STE_0_S1CTXPTR, STE_CFG_NESTED } from '../../arch/smmuv3/ste.ts';
import { Host } from '../../host/host.ts';
import { VFIO_PCI_DMA_FAULT_REGION_INDEX } from '../../host/vfio/pci-device.ts';
import { PasidDmaDevice } from '../../hw/pci/pasid-dma-device.ts';
import {
  CS_SUCCESS,
  CS_WRITE_FAULT,
  decodeCompletion,
  encodeDescriptor,
  OP_FILL,
  PDMA_CTRL,
  PDMA_CTRL_ENABLE,
  PDMA_RING_BASE_HI,
  PDMA_RING_BASE_LO,
  PDMA_RING_SIZE,
  PDMA_RING_TAIL,
} from '../../hw/pci/pasid-dma-regs.ts';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../hw/pci/regs.ts';
import { CdTable } from '../../hw/smmuv3/rig.ts';
import {
  cmdCfgiSte,
  cmdSync,
  cmdTlbiNhAll,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
} from '../../hw/smmuv3/structures.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_PASID_CONFIG_TRANSLATE,
  iommu_fault,
} from '../../uapi/iommu.ts';
import { VFIO_GROUP_GET_DEVICE_FD } from '../../uapi/vfio.ts';
import {
  VFIO_PCI_CONFIG_REGION_INDEX,
  vfio_region_dma_fault,
  vfioPciIndexToOffset,
} from '../../uapi/vfio-device.ts';
import { VfioContainer } from '../vfio/container.ts';
import { FakeBus, GuestDriver, guestRam } from './testing.ts';
import { VirtSmmu } from './virt-smmu.ts';

const le32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};

describe('the vSMMU over a real host: SET_PASID_TABLE nests the guest stage 1', () => {
  it('guest STE/CD in guest RAM → CFGI_STE → host STE 0b111 → PASID DMA walks the guest tables; TLBI and faults round-trip', () => {
    const host = new Host({ ramSize: 0x1000_0000 });
    const dev = new PasidDmaDevice({ bus: 0, dev: 4, fn: 0, maxPasidWidth: 20 });
    const rec = host.addPciDevice(dev);
    if (typeof rec === 'number') throw new Error(`addPciDevice: ${rec}`);
    const proc = host.kernel.spawn('qemu');
    const rig = guestRam(host, 0x40_0000, proc);

    // The VMM: its container (mapping guest RAM for DMA), the device fd, the vSMMU.
    const container = new VfioContainer({ proc, ram: rig.ram.blocks, name: 'container0' });
    const groupNo = host.iommu.iommuGroupGet(rec.iommuDev)!.id;
    expect(container.addGroup(groupNo)).toBeGreaterThanOrEqual(0);
    const fd = proc.ioctl(
      container.groupFd(groupNo),
      VFIO_GROUP_GET_DEVICE_FD,
      new TextEncoder().encode(`${rec.name}\0`),
    );
    expect(fd).toBeGreaterThan(0);
    const irqs: [number, boolean][] = [];
    const smmu = new VirtSmmu({ ram: rig.ram, setIrq: (i, l) => irqs.push([i, l]) });
    const bus = new FakeBus('pcie.0');
    const devfn = (4 << 3) | 0;
    const drv = new GuestDriver(rig, smmu);
    drv.bringUp();
    expect(smmu.ops.set_iommu_context?.(bus, smmu, devfn, container)).toBe(0);

    // The guest: a 2-level CD table (256 PASIDs), PASID 5's stage 1 maps VA 0x40_0000 and 0x41_0000.
    const cds = new CdTable(rig.port, rig.alloc, 1, 8);
    const s1 = PageTable.create(rig.alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 40 });
    if (!s1.ok) throw new Error(s1.detail);
    const data = rig.alloc.alloc(0x1000, 12)!;
    const compl = rig.alloc.alloc(0x1000, 12)!;
    const prot = { read: true, write: true, user: true };
    expect(s1.table.map(0x40_0000, data, 0x1000, prot).ok).toBe(true);
    expect(s1.table.map(0x41_0000, compl, 0x1000, prot).ok).toBe(true);
    cds.write(5, { asid: 9, ttb0: s1.table.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    drv.writeSte(devfn, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 8, s1Fmt: 1, s1Dss: S1DSS_BYPASS });
    expect(drv.submit(cmdCfgiSte(devfn), cmdSync())).toBe(2);
    const sent = smmu.log.at(-1)!;
    expect(sent).toMatchObject({
      op: 'SET_PASID_TABLE',
      cause: 'CMD_CFGI_STE',
      result: 0,
      config: {
        base_ptr: BigInt(cds.ptr),
        pasid_bits: 8,
        config: IOMMU_PASID_CONFIG_TRANSLATE,
        vendor_data: { smmuv3: { version: 1, s1fmt: 1, s1dss: S1DSS_BYPASS } },
      },
    });
    // The physical SMMU's STE is nested, its S1ContextPtr the guest's CD table (an IPA).
    const hostSid = rec.iommuDev.ids[0]!;
    const ste = host.smmu().driver.steWords(hostSid)!;
    expect(getField(ste, STE_0_CFG)).toBe(STE_CFG_NESTED);
    expect(getField(ste, STE_0_S1CTXPTR)).toBe(cds.ptr);

    // The guest's device driver: ring in guest RAM (non-PASID traffic bypasses stage 1), a FILL
    // with PASID 5 to VA 0x40_0000, completion at VA 0x41_0000.
    const region = (index: number, off: number) => vfioPciIndexToOffset(index) + off;
    const cfg16 = Uint8Array.of(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0);
    expect(proc.pwrite(fd, cfg16, 2, region(VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND))).toBe(2);
    const bar0 = (off: number, v: number) => expect(proc.pwrite(fd, le32(v), 4, region(0, off))).toBe(4);
    const ring = rig.alloc.alloc(0x1000, 12)!;
    const desc = (i: number, dst: number, pattern: number, done: number) =>
      rig.ram.write(
        ring + 64 * i,
        encodeDescriptor({
          opcode: OP_FILL,
          pasid: 5,
          dst,
          len: 16,
          pattern: [pattern, pattern],
          completionAddr: done,
        }),
      );
    desc(0, 0x40_0000, 0x5a5a5a5a, 0x41_0000);
    bar0(PDMA_RING_BASE_LO, ring);
    bar0(PDMA_RING_BASE_HI, 0);
    bar0(PDMA_RING_SIZE, 16);
    bar0(PDMA_CTRL, PDMA_CTRL_ENABLE);
    bar0(PDMA_RING_TAIL, 1);
    expect([...rig.ram.read(data, 4)!]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
    expect(decodeCompletion(rig.ram.read(compl, 32)!).status).toBe(CS_SUCCESS);

    // The guest unmaps the data page and invalidates: TLBI_NH_VA(ASID 9) → CACHE_INVALIDATE.
    expect(s1.table.unmap(0x40_0000, 0x1000)).toBe(0x1000);
    expect(
      drv.submit(cmdTlbiNhVa(0, 9, 0x40_0000, { leaf: true, granule: 12, ttl: 3 }), cmdSync()) & 0xff,
    ).toBe(4);
    expect(smmu.log.at(-1)).toMatchObject({
      op: 'CACHE_INVALIDATE',
      result: 0,
      info: { cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_ADDR },
    });
    // The other forms the host must accept: the plain TLBI (one record per granule), an unchanged
    // STE's CFGI_STE (PASID cache, DOMAIN), TLBI_NH_ALL and TLBI_NSNH_ALL (IOTLB, DOMAIN).
    const before = smmu.log.length;
    expect(
      drv.submit(
        cmdTlbiNhVa(0, 9, 0x40_0000),
        cmdCfgiSte(devfn),
        cmdTlbiNhAll(0),
        cmdTlbiNsnhAll(),
        cmdSync(),
      ) & 0xff,
    ).toBe(9);
    expect(smmu.log.slice(before).map((e) => [e.op, e.cause, e.result])).toEqual([
      ['CACHE_INVALIDATE', 'CMD_TLBI_NH_VA', 0],
      ['CACHE_INVALIDATE', 'CMD_TLBI_NH_VA', 0],
      ['CACHE_INVALIDATE', 'CMD_CFGI_STE', 0],
      ['CACHE_INVALIDATE', 'CMD_TLBI_NH_ALL', 0],
      ['CACHE_INVALIDATE', 'CMD_TLBI_NSNH_ALL', 0],
    ]);
    desc(1, 0x40_0000, 0x11111111, 0x41_0100);
    bar0(PDMA_RING_TAIL, 2);
    const c = decodeCompletion(rig.ram.read(compl + 0x100, 32)!);
    expect([c.status, c.faultAddr, c.pasid]).toEqual([CS_WRITE_FAULT, 0x40_0000, 5]);
    expect([...rig.ram.read(data, 4)!]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);

    // The host's fault record (vfio-pci's DMA fault region) → inject_faults → the guest's event.
    const hdrBytes = new Uint8Array(20);
    proc.pread(fd, hdrBytes, 20, region(VFIO_PCI_DMA_FAULT_REGION_INDEX, 0));
    const hdr = vfio_region_dma_fault.decode(hdrBytes);
    expect(hdr.head).toBe(1);
    const recBytes = new Uint8Array(64);
    proc.pread(fd, recBytes, 64, region(VFIO_PCI_DMA_FAULT_REGION_INDEX, hdr.offset));
    drv.events();
    expect(smmu.ops.inject_faults?.(bus, smmu, devfn, [iommu_fault.decode(recBytes)])).toBe(0);
    const ev = drv.events();
    expect(ev.map((e) => [e.id, e.streamId, e.substreamId, e.rnw, e.inputLo])).toEqual([
      [F_TRANSLATION, devfn, 5, false, 0x40_0000],
    ]);
    expect(smmu.stats).toMatchObject({ hostErrors: 0, eventsInjected: 1 });
  });
});

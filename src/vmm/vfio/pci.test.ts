/**
 * The VMM's VFIO container and vfio-pci frontend against a real host (SMMUv3, vfio-pci, KVM with a
 * vGIC) and the PASID DMA device, everything through the uAPI: container bring-up and MAP_DMA of
 * guest RAM, the ioctl log's decoded structs, config space through ECAM (the PASID capability the
 * host exposes), BAR MMIO through the MMIO window, MSI-X unmask → SET_MSI_BINDING + SET_IRQS +
 * KVM_IRQFD and a device interrupt ending as the SPI in the vGIC, masking and re-programming, the
 * DMA fault path into a (fake) vIOMMU's inject_faults, refusals logged without throwing, and no fd,
 * pin or binding left after exit + close.
 */

import { describe, expect, it } from 'vitest';
import { V2M_MSI_SETSPI_NS, VIRT_GIC_V2M, VIRT_MEM, VIRT_PCIE_MMIO } from '../../arch/virt.ts';
import { Host } from '../../host/host.ts';
import type { Process } from '../../host/kernel/process.ts';
import type { Arm64Vm } from '../../host/kvm/arm64/arch.ts';
import { armVmWithGic } from '../../host/kvm/kvm-testing.ts';
import type { HostPciDevice } from '../../host/pci.ts';
import { OffsetMemory } from '../../hw/memory-view.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import { PasidDmaDevice } from '../../hw/pci/pasid-dma-device.ts';
import {
  encodeDescriptor,
  OP_NOP,
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
  PCI_BASE_ADDRESS_0,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_NEXT,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_PASID_CAP,
} from '../../hw/pci/regs.ts';
import { CdTable } from '../../hw/smmuv3/rig.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import { EINVAL, ENODEV } from '../../uapi/errno.ts';
import { MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  type IommuFaultRecord,
} from '../../uapi/iommu.ts';
import { KVM_IRQFD_FLAG_DEASSIGN } from '../../uapi/kvm.ts';
import {
  VFIO_IOMMU_BIND_MSI,
  VFIO_IOMMU_UNBIND_MSI,
  VFIO_PASID_TABLE_FLAG_SET,
  VFIO_TYPE1v2_IOMMU,
} from '../../uapi/vfio.ts';
import {
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSIX_IRQ_INDEX,
} from '../../uapi/vfio-device.ts';
import { VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE } from '../../uapi/vfio-type1.ts';
import { EventLoop } from '../event-loop.ts';
import type { RamBlock } from '../memory.ts';
import { pci_setup_iommu } from '../pci/bus.ts';
import { PCI_DEVFN } from '../pci/device.ts';
import { ecamOffset, GpexHost } from '../pci/gpex.ts';
import type { AddressSpace, HostIOMMUContext, PCIIOMMUOps } from '../pci/iommu.ts';
import { VfioContainer } from './container.ts';
import { VFIOPCIDevice } from './pci.ts';

const RAM_SIZE = 0x20_0000;
const DEVFN = PCI_DEVFN(1, 0);
/** Where the guest maps its GICv2m doorbell page in its stage 1 (a gIOVA). */
const GIOVA_DOORBELL = 0x800_0000;
/** The SPI INTID the guest puts in its MSI data (GICv2m range). */
const SPI_INTID = 85;

interface Vm {
  readonly host: Host;
  readonly dev: PasidDmaDevice;
  readonly rec: HostPciDevice;
  readonly proc: Process;
  readonly group: number;
  readonly ram: RamBlock;
  readonly vmFd: number;
  readonly loop: EventLoop;
  readonly container: VfioContainer;
  readonly gpex: GpexHost;
  readonly vdev: VFIOPCIDevice;
  readonly fdsBefore: number[];
}

interface ViommuCalls {
  contexts: HostIOMMUContext[];
  unsets: number;
  faults: IommuFaultRecord[][];
  asked: { bus: number; devfn: number }[];
}

/** A vIOMMU stand-in: its address space maps GIOVA_DOORBELL's page to the GICv2m frame. */
function fakeViommu(): { ops: PCIIOMMUOps; calls: ViommuCalls } {
  const calls: ViommuCalls = { contexts: [], unsets: 0, faults: [], asked: [] };
  const as: AddressSpace = {
    name: 'fake-smmu',
    translate: (iova) =>
      iova >= GIOVA_DOORBELL && iova < GIOVA_DOORBELL + 0x1000
        ? { ok: true, addr: VIRT_GIC_V2M + (iova - GIOVA_DOORBELL), pageSize: 0x1000 }
        : { ok: false, reason: 'translation fault' },
  };
  const ops: PCIIOMMUOps = {
    get_address_space: (bus, _o, devfn) => {
      calls.asked.push({ bus: bus.busNumber(), devfn });
      return as;
    },
    set_iommu_context: (_b, _o, _d, ctx) => {
      calls.contexts.push(ctx);
      return 0;
    },
    unset_iommu_context: () => {
      calls.unsets++;
    },
    inject_faults: (_b, _o, _d, faults) => {
      calls.faults.push([...faults]);
      return 0;
    },
  };
  return { ops, calls };
}

function makeVm(opts: { viommu?: PCIIOMMUOps; type?: number; realize?: boolean } = {}): Vm {
  const host = new Host({ ramSize: 0x1000_0000 });
  const dev = new PasidDmaDevice({ bus: 0, dev: 4, fn: 0, maxPasidWidth: 20 });
  const rec = host.addPciDevice(dev);
  if (typeof rec === 'number') throw new Error(`addPciDevice ${rec}`);
  const group = host.iommu.iommuGroupGet(rec.iommuDev)!.id;
  const proc = host.kernel.spawn('qemu');
  const hva = proc.mmap(RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_HUGETLB);
  const ram: RamBlock = { gpa: VIRT_MEM, hva, size: RAM_SIZE };
  const sys = proc.open('/dev/kvm');
  const { vm } = armVmWithGic({ kernel: host.kernel, kvm: host.kvm, proc, sys }, 1);
  const fdsBefore = proc.openFds;
  const loop = new EventLoop(proc);
  const container = new VfioContainer({
    proc,
    ram: [ram],
    ...(opts.type !== undefined ? { type: opts.type } : {}),
  });
  const gpex = new GpexHost();
  if (opts.viommu !== undefined) pci_setup_iommu(gpex.root, opts.viommu, 'vsmmu');
  const vdev = new VFIOPCIDevice({ proc, container, group, hostName: rec.name, loop, vmFd: vm });
  if (opts.realize !== false) expect(vdev.realize(gpex.root, DEVFN)).toBe(0);
  return { host, dev, rec, proc, group, ram, vmFd: vm, loop, container, gpex, vdev, fdsBefore };
}

const cfgR = (vm: Vm, reg: number, size: 1 | 2 | 4 = 4): number =>
  vm.gpex.ecam.read(ecamOffset(0, DEVFN, reg), size);
const cfgW = (vm: Vm, reg: number, size: 1 | 2 | 4, v: number): void =>
  vm.gpex.ecam.write(ecamOffset(0, DEVFN, reg), size, v);

/** The guest places BAR0 at the start of the MMIO window and turns decoding (and mastering) on. */
function placeBar0(vm: Vm): void {
  cfgW(vm, PCI_BASE_ADDRESS_0, 4, VIRT_PCIE_MMIO);
  cfgW(vm, PCI_BASE_ADDRESS_0 + 4, 4, 0);
  cfgW(vm, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/** The MSI-X capability's offset as the guest finds it through ECAM. */
function msixCap(vm: Vm): number {
  let at = cfgR(vm, 0x34, 1) & 0xfc;
  for (let n = 0; n < 48 && at !== 0; n++) {
    if (cfgR(vm, at, 1) === PCI_CAP_ID_MSIX) return at;
    at = cfgR(vm, at + 1, 1) & 0xfc;
  }
  return 0;
}

/** The guest programs MSI-X vector `v` (address, data) and unmasks it, with MSI-X enabled. */
function programVector(vm: Vm, v: number, addr: number, data: number, opts: { enable?: boolean } = {}): void {
  const cap = msixCap(vm);
  if (opts.enable !== false) cfgW(vm, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  const e = PDMA_MSIX_TABLE_OFFSET + 16 * v;
  vm.gpex.mmio.write(e + 12, 4, 1);
  vm.gpex.mmio.write(e, 4, addr % 2 ** 32);
  vm.gpex.mmio.write(e + 4, 4, Math.floor(addr / 2 ** 32));
  vm.gpex.mmio.write(e + 8, 4, data);
  vm.gpex.mmio.write(e + 12, 4, 0);
}

const vgicOf = (vm: Vm) => (vm.host.kvm.vms[0]!.arch as Arm64Vm).vgic!;

/** The device's physical MSI-X interrupt through the real SMMU: submits a NOP with an interrupt. */
function deviceInterrupt(vm: Vm, vector: number, slot: number): void {
  const ringGpa = VIRT_MEM + 0x1000;
  vm.proc.mm.writeUser(
    vm.ram.hva + 0x1000 + 64 * slot,
    encodeDescriptor({ opcode: OP_NOP, interruptVector: vector }),
  );
  if (slot === 0) {
    vm.gpex.mmio.write(PDMA_RING_BASE_LO, 4, ringGpa);
    vm.gpex.mmio.write(PDMA_RING_BASE_HI, 4, 0);
    vm.gpex.mmio.write(PDMA_RING_SIZE, 4, 16);
    vm.gpex.mmio.write(PDMA_CTRL, 4, PDMA_CTRL_ENABLE);
  }
  vm.gpex.mmio.write(PDMA_RING_TAIL, 4, slot + 1);
}

describe('VfioContainer', () => {
  it('bring-up: version, nesting extension, group viable + attached, SET_IOMMU, MAP_DMA of every RAM block (IOVA = GPA)', () => {
    const vm = makeVm();
    const names = vm.container.log.entries.map((e) => e.request);
    expect(names.slice(0, 6)).toEqual([
      'VFIO_GET_API_VERSION',
      'VFIO_CHECK_EXTENSION',
      'VFIO_GROUP_GET_STATUS',
      'VFIO_GROUP_SET_CONTAINER',
      'VFIO_SET_IOMMU',
      'VFIO_IOMMU_MAP_DMA',
    ]);
    const map = vm.container.log.last('VFIO_IOMMU_MAP_DMA')!;
    expect(map.ret).toBe(0);
    expect(map.decoded).toEqual({
      argsz: 32,
      flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
      vaddr: BigInt(vm.ram.hva),
      iova: BigInt(VIRT_MEM),
      size: BigInt(RAM_SIZE),
    });
    expect(vm.container.mappedBytes).toBe(RAM_SIZE);
    expect(vm.proc.mm.stats.pinnedPages).toBeGreaterThan(0);
    // The host's IOMMU maps GPA → the VMM's RAM.
    const domain = vm.host.iommu.iommuGetDomainForDev(vm.rec.iommuDev)!;
    expect(vm.host.iommu.iommuIovaToPhys(domain, VIRT_MEM + 0x1234)).toBe(
      vm.proc.mm.translate(vm.ram.hva + 0x1234, 'read'),
    );
    expect(vm.container.ioctls).toBe(vm.container.log.entries.length);
    expect(vm.container.flags).not.toBe(0);
  });

  it('HostIOMMUContext: SET_PASID_TABLE, CACHE_INVALIDATE, SET_MSI_BINDING logged with the structs asked; refusals logged, not thrown', () => {
    const vm = makeVm();
    const c = vm.container;
    const config = {
      argsz: 32,
      version: 1,
      base_ptr: BigInt(VIRT_MEM + 0x10_0000),
      format: IOMMU_PASID_FORMAT_SMMUV3,
      pasid_bits: 0,
      config: IOMMU_PASID_CONFIG_TRANSLATE,
      vendor_data: { smmuv3: { version: 1, s1fmt: 0, s1dss: 0 } },
    };
    expect(c.setPasidTable(config)).toBe(0);
    const e = c.log.last('VFIO_IOMMU_SET_PASID_TABLE')!;
    expect(e.decoded).toMatchObject({
      argsz: 40,
      flags: VFIO_PASID_TABLE_FLAG_SET,
      config: { ...config, padding: expect.anything() },
    });
    expect(c.hasPasidTable).toBe(true);
    // A config the host refuses: -EINVAL, logged with its errno.
    expect(c.setPasidTable({ ...config, version: 9 })).toBe(-EINVAL);
    expect(c.log.last('VFIO_IOMMU_SET_PASID_TABLE')).toMatchObject({ ret: -EINVAL, errno: 'EINVAL' });
    expect(c.cacheInvalidate({ argsz: 56, version: 1, cache: 1, granularity: 0 })).toBe(0);
    expect(c.log.last('VFIO_IOMMU_CACHE_INVALIDATE')!.decoded).toMatchObject({
      argsz: 64,
      flags: 0,
      info: { argsz: 56, version: 1, cache: 1, granularity: 0 },
    });
    expect(c.cacheInvalidate({ argsz: 56, version: 7, cache: 1 })).toBeLessThan(0);
    expect(c.setMsiBinding(GIOVA_DOORBELL, VIRT_GIC_V2M, 0x1000)).toBe(0);
    expect(c.log.last('VFIO_IOMMU_SET_MSI_BINDING')!.decoded).toEqual({
      argsz: 32,
      flags: VFIO_IOMMU_BIND_MSI,
      iova: BigInt(GIOVA_DOORBELL),
      gpa: BigInt(VIRT_GIC_V2M),
      size: 0x1000n,
    });
    expect(c.boundMsiIovas).toEqual([GIOVA_DOORBELL]);
    expect(c.log.failures).toBe(2);
    vm.vdev.exit();
    expect(c.close()).toBe(0);
    expect(c.log.of('VFIO_IOMMU_SET_MSI_BINDING').at(-1)!.decoded).toMatchObject({
      flags: VFIO_IOMMU_UNBIND_MSI,
    });
    expect(c.log.last('VFIO_IOMMU_SET_PASID_TABLE')!.ret).toBe(0);
    expect(c.hasPasidTable).toBe(false);
  });

  it('a group that does not exist, and a device name the group does not have: -errno, logged, nothing left open', () => {
    const vm = makeVm({ realize: false });
    const before = vm.proc.openFds;
    expect(vm.container.addGroup(77)).toBeLessThan(0);
    const bad = new VFIOPCIDevice({
      proc: vm.proc,
      container: vm.container,
      group: vm.group,
      hostName: '0000:09:00.0',
      loop: vm.loop,
      vmFd: vm.vmFd,
    });
    expect(bad.realize(vm.gpex.root, DEVFN)).toBeLessThan(0);
    expect(vm.container.log.last('VFIO_GROUP_GET_DEVICE_FD')!.errno).toBeDefined();
    expect(vm.container.log.last('VFIO_GROUP_GET_DEVICE_FD')!.decoded).toBe('0000:09:00.0');
    expect(vm.gpex.root.devices()).toEqual([]);
    vm.container.close();
    expect(vm.proc.openFds).toEqual(before);
  });
});

describe('config space through ECAM', () => {
  it("reads reach the host's virtualised space: IDs, and the PASID extended capability (§7)", () => {
    const vm = makeVm();
    expect(cfgR(vm, 0)).toBe(vm.dev.configRead(0, 4));
    const found: number[] = [];
    let at = 0x100;
    for (let n = 0; n < 64 && at >= 0x100; n++) {
      const h = cfgR(vm, at);
      if (h === 0) break;
      found.push(PCI_EXT_CAP_ID(h));
      if (PCI_EXT_CAP_ID(h) === PCI_EXT_CAP_ID_PASID) {
        expect(at).toBe(vm.dev.caps.pasid);
        expect((cfgR(vm, at + PCI_PASID_CAP) >>> 8) & 0x1f).toBe(20);
      }
      at = PCI_EXT_CAP_NEXT(h);
    }
    expect(found).toContain(PCI_EXT_CAP_ID_PASID);
    expect(vm.vdev.stats.configReads).toBeGreaterThan(found.length);
  });

  it('BAR registers are emulated: sizing reads the region size back; Command reaches the host', () => {
    const vm = makeVm();
    cfgW(vm, PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    const size = vm.dev.barSize(0);
    expect((cfgR(vm, PCI_BASE_ADDRESS_0) & 0xffff_fff0) >>> 0).toBe((~(size - 1) & 0xffff_fff0) >>> 0);
    placeBar0(vm);
    expect(cfgR(vm, PCI_BASE_ADDRESS_0) & 0xffff_fff0).toBe(VIRT_PCIE_MMIO);
    expect(vm.dev.barAddress(0)).not.toBe(VIRT_PCIE_MMIO); // the host's own placement is untouched
    expect(cfgR(vm, PCI_COMMAND, 2) & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)).toBe(
      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
    );
    expect(vm.dev.configRead(PCI_COMMAND, 2) & PCI_COMMAND_MASTER).toBe(PCI_COMMAND_MASTER);
  });
});

describe('BAR MMIO', () => {
  it('reaches the device through pread/pwrite of the BAR region; EIO from the host reads all-ones', () => {
    const vm = makeVm();
    placeBar0(vm);
    expect(vm.gpex.mmio.read(PDMA_ID, 4)).toBe(0x5a5a_0001);
    vm.gpex.mmio.write(PDMA_RING_SIZE, 4, 16);
    expect(vm.dev.barRead(0, PDMA_RING_SIZE, 4)).toBe(16);
    expect(vm.vdev.stats.mmioReads).toBe(1);
    expect(vm.vdev.stats.mmioWrites).toBe(1);
    // Decoding off in the guest: the MMIO window no longer routes there.
    cfgW(vm, PCI_COMMAND, 2, 0);
    expect(vm.gpex.mmio.read(PDMA_ID, 4)).toBe(0xffff_ffff);
    expect(vm.vdev.stats.mmioReads).toBe(1);
    // The frontend's own BAR ops with the host refusing (EIO: the host's Command has decoding off).
    expect(vm.vdev.barRead(0, PDMA_ID, 4)).toBe(0xffff_ffff);
    expect(vm.vdev.stats.mmioErrors).toBe(1);
  });

  it('the MSI-X table is emulated by the VMM (never reaches the device); entries start masked', () => {
    const vm = makeVm();
    placeBar0(vm);
    expect(vm.gpex.mmio.read(PDMA_MSIX_TABLE_OFFSET + 12, 4)).toBe(1);
    vm.gpex.mmio.write(PDMA_MSIX_TABLE_OFFSET + 8, 4, 0x1234);
    expect(vm.gpex.mmio.read(PDMA_MSIX_TABLE_OFFSET + 8, 4)).toBe(0x1234);
    expect(vm.dev.msixEntry(0).data).toBe(0);
    expect(vm.vdev.msixEntry(0)).toEqual({ addr: 0, data: 0x1234, masked: true });
  });
});

describe('MSI-X', () => {
  it('behind a vIOMMU: unmask → SET_MSI_BINDING(giova page, gpa page), SET_IRQS, KVM_IRQFD(GSI = data − 32)', () => {
    const { ops, calls } = fakeViommu();
    const vm = makeVm({ viommu: ops });
    expect(calls.contexts).toEqual([vm.container]);
    placeBar0(vm);
    const log = vm.container.log;
    const n0 = log.ioctls;
    programVector(vm, 0, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, SPI_INTID);
    const issued = log.entries.slice(n0);
    expect(issued.map((e) => e.request)).toEqual([
      'VFIO_IOMMU_SET_MSI_BINDING',
      'VFIO_DEVICE_SET_IRQS',
      'KVM_IRQFD',
    ]);
    expect(issued.every((e) => e.ret === 0)).toBe(true);
    expect(issued[0]!.decoded).toEqual({
      argsz: 32,
      flags: VFIO_IOMMU_BIND_MSI,
      iova: BigInt(GIOVA_DOORBELL),
      gpa: BigInt(VIRT_GIC_V2M),
      size: 0x1000n,
    });
    const route = vm.vdev.msixRoutes()[0]!;
    expect(issued[1]!.decoded).toMatchObject({
      flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD,
      index: VFIO_PCI_MSIX_IRQ_INDEX,
      start: 0,
      count: 4,
      data: [route.eventfd, -1, -1, -1],
    });
    expect(issued[2]!.decoded).toMatchObject({ fd: route.eventfd, gsi: SPI_INTID - 32, flags: 0 });
    expect(vm.dev.msixEnabled).toBe(true);
    // The host bound the doorbell: the physical table holds the guest IOVA of the doorbell page.
    expect(Math.floor(vm.dev.msixEntry(0).addr / 0x1000) * 0x1000).toBe(GIOVA_DOORBELL);
    // A second vector on the same doorbell page shares the binding.
    programVector(vm, 1, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, SPI_INTID + 1, { enable: false });
    expect(log.of('VFIO_IOMMU_SET_MSI_BINDING')).toHaveLength(1);
    expect(vm.vdev.msixRoutes().map((r) => r.gsi)).toEqual([53, 54]);
  });

  it('behind a vIOMMU, end to end: the guest stage 1 maps the doorbell gIOVA; a device interrupt makes the SPI pending', () => {
    const { ops } = fakeViommu();
    const vm = makeVm({ viommu: ops });
    // The guest's stage 1 (what a vSMMU would pass on): CD 0 maps RAM 1:1 and GIOVA_DOORBELL → GICv2m.
    const pa = vm.proc.mm.translate(vm.ram.hva, 'write')!;
    const view = new OffsetMemory(vm.host.memory.mem, VIRT_MEM, pa, RAM_SIZE);
    const galloc = new PageAllocator(view, VIRT_MEM + 0x10_0000, 0x10_0000);
    const cds = new CdTable(view, galloc, 0, 0);
    const s1 = PageTable.create(galloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 40 });
    if (!s1.ok) throw new Error(s1.detail);
    expect(s1.table.map(VIRT_MEM, VIRT_MEM, RAM_SIZE, { read: true, write: true, user: true }).ok).toBe(true);
    expect(
      s1.table.map(GIOVA_DOORBELL, VIRT_GIC_V2M, 0x1000, { read: true, write: true, user: true }).ok,
    ).toBe(true);
    cds.write(0, { asid: 1, ttb0: s1.table.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    expect(
      vm.container.setPasidTable({
        argsz: 32,
        version: 1,
        base_ptr: BigInt(cds.ptr),
        format: IOMMU_PASID_FORMAT_SMMUV3,
        pasid_bits: 0,
        config: IOMMU_PASID_CONFIG_TRANSLATE,
        vendor_data: { smmuv3: { version: 1, s1fmt: 0, s1dss: 0 } },
      }),
    ).toBe(0);
    placeBar0(vm);
    programVector(vm, 0, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, SPI_INTID);
    const vgic = vgicOf(vm);
    deviceInterrupt(vm, 0, 0);
    expect(vgic.counts(0, SPI_INTID).raised).toBe(1);
    expect(vgic.acknowledge(0, SPI_INTID)).toBe(true);
    deviceInterrupt(vm, 0, 1);
    expect(vgic.counts(0, SPI_INTID).raised).toBe(2);
  });

  it('without a vIOMMU (nesting container): the doorbell gpa is bound to itself; the SPI fires', () => {
    const vm = makeVm();
    placeBar0(vm);
    programVector(vm, 2, VIRT_GIC_V2M + V2M_MSI_SETSPI_NS, SPI_INTID);
    expect(vm.container.log.last('VFIO_IOMMU_SET_MSI_BINDING')!.decoded).toMatchObject({
      iova: BigInt(VIRT_GIC_V2M),
      gpa: BigInt(VIRT_GIC_V2M),
    });
    deviceInterrupt(vm, 2, 0);
    expect(vgicOf(vm).counts(0, SPI_INTID).raised).toBe(1);
  });

  it('a TYPE1v2 container without a vIOMMU: no binding at all; the SPI fires', () => {
    const vm = makeVm({ type: VFIO_TYPE1v2_IOMMU });
    placeBar0(vm);
    programVector(vm, 0, VIRT_GIC_V2M + V2M_MSI_SETSPI_NS, SPI_INTID);
    expect(vm.container.log.of('VFIO_IOMMU_SET_MSI_BINDING')).toEqual([]);
    deviceInterrupt(vm, 0, 0);
    expect(vgicOf(vm).counts(0, SPI_INTID).raised).toBe(1);
  });

  it('mask / re-program / function mask / disable undo and redo the route; no eventfd or irqfd leaks', () => {
    const vm = makeVm({ type: VFIO_TYPE1v2_IOMMU });
    placeBar0(vm);
    const fds0 = vm.proc.openFds.length;
    programVector(vm, 0, VIRT_GIC_V2M + V2M_MSI_SETSPI_NS, SPI_INTID);
    expect(vm.proc.openFds.length).toBe(fds0 + 1);
    const efd = vm.vdev.msixRoutes()[0]!.eventfd;
    // Mask: irqfd deassigned, the vector's trigger removed, the eventfd closed.
    const n0 = vm.container.log.ioctls;
    vm.gpex.mmio.write(PDMA_MSIX_TABLE_OFFSET + 12, 4, 1);
    const undo = vm.container.log.entries.slice(n0);
    expect(undo.map((e) => e.request)).toEqual(['KVM_IRQFD', 'VFIO_DEVICE_SET_IRQS']);
    expect(undo[0]!.decoded).toMatchObject({ fd: efd, gsi: SPI_INTID - 32, flags: KVM_IRQFD_FLAG_DEASSIGN });
    expect(undo[1]!.decoded).toMatchObject({ start: 0, count: 1, data: [-1] });
    expect(vm.proc.openFds.length).toBe(fds0);
    deviceInterrupt(vm, 0, 0);
    expect(vgicOf(vm).counts(0, SPI_INTID).raised).toBe(0);
    // Re-program with a new SPI and unmask: the new GSI.
    vm.gpex.mmio.write(PDMA_MSIX_TABLE_OFFSET + 8, 4, SPI_INTID + 3);
    vm.gpex.mmio.write(PDMA_MSIX_TABLE_OFFSET + 12, 4, 0);
    expect(vm.vdev.msixRoutes().map((r) => r.gsi)).toEqual([SPI_INTID + 3 - 32]);
    // The interrupt raised while masked was pending in the device; the unmask delivered it, to the new SPI.
    expect(vgicOf(vm).counts(0, SPI_INTID + 3).raised).toBe(1);
    deviceInterrupt(vm, 0, 1);
    expect(vgicOf(vm).counts(0, SPI_INTID + 3).raised).toBe(2);
    // Re-programming the data of an unmasked vector re-routes it (one eventfd still).
    vm.gpex.mmio.write(PDMA_MSIX_TABLE_OFFSET + 8, 4, SPI_INTID + 4);
    expect(vm.vdev.msixRoutes().map((r) => r.gsi)).toEqual([SPI_INTID + 4 - 32]);
    expect(vm.proc.openFds.length).toBe(fds0 + 1);
    // Function mask: unrouted; cleared: routed again.
    const cap = msixCap(vm);
    cfgW(vm, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    expect(vm.vdev.msixRoutes()).toEqual([]);
    cfgW(vm, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    expect(vm.vdev.msixRoutes()).toHaveLength(1);
    expect(cfgR(vm, cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE).toBe(PCI_MSIX_FLAGS_ENABLE);
    // Disable: everything undone, the host's MSI-X off.
    cfgW(vm, cap + PCI_MSIX_FLAGS, 2, 0);
    expect(vm.vdev.msixRoutes()).toEqual([]);
    expect(vm.dev.msixEnabled).toBe(false);
    expect(vm.proc.openFds.length).toBe(fds0);
    const irqfds = vm.container.log.of('KVM_IRQFD');
    const assigned = irqfds.filter((e) => (e.decoded as { flags: number }).flags === 0).length;
    expect(irqfds.length - assigned).toBe(assigned);
    expect(vm.vdev.stats.msixRouted).toBe(vm.vdev.stats.msixReleased);
  });

  it('an address the vIOMMU cannot translate, or data that is not an SPI INTID: not routed, counted', () => {
    const { ops } = fakeViommu();
    const vm = makeVm({ viommu: ops });
    placeBar0(vm);
    const n0 = vm.container.log.ioctls;
    programVector(vm, 0, 0x1234_0000, SPI_INTID);
    programVector(vm, 1, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, 7, { enable: false });
    expect(vm.vdev.stats.msixRouteFailures).toBe(2);
    expect(vm.vdev.msixRoutes()).toEqual([]);
    expect(vm.container.log.ioctls).toBe(n0);
  });
});

describe('the DMA fault path', () => {
  it('fault IRQ → the loop handler reads new records, writes tail back and injects them into the vIOMMU', () => {
    const { ops, calls } = fakeViommu();
    const vm = makeVm({ viommu: ops });
    expect(vm.vdev.faultRegion).toBeDefined();
    expect(vm.loop.watched).toEqual([`${vm.vdev.faultEventfd}:${vm.vdev.name}:dma-fault`]);
    const report = (addr: number) =>
      vm.host.iommu.iommuReportDeviceFault(vm.rec.iommuDev, {
        type: IOMMU_FAULT_DMA_UNRECOV,
        event: { reason: 5, flags: 3, pasid: 7, perm: 2, addr, fetch_addr: 0 },
      });
    expect(report(0x4000)).toBe(0);
    expect(report(0x5000)).toBe(0);
    expect(vm.loop.runUntilIdle()).toBe(1);
    expect(calls.faults).toHaveLength(1);
    expect(calls.faults[0]!.map((f) => [f.type, f.u.event.pasid, f.u.event.addr])).toEqual([
      [IOMMU_FAULT_DMA_UNRECOV, 7, 0x4000n],
      [IOMMU_FAULT_DMA_UNRECOV, 7, 0x5000n],
    ]);
    const fault = vm.host.vfioPciOf(vm.rec)!.fault!;
    const dv = new DataView(fault.buffer);
    expect([dv.getUint32(0, true), dv.getUint32(16, true)]).toEqual([2, 2]); // tail caught up with head
    expect(report(0x6000)).toBe(0);
    vm.loop.runUntilIdle();
    expect(calls.faults[1]!.map((f) => f.u.event.addr)).toEqual([0x6000n]);
    expect(vm.vdev.stats.faultsForwarded).toBe(3);
    expect(vm.loop.runUntilIdle()).toBe(0);
  });

  it('a TYPE1v2 container has no fault region: no fault IRQ, nothing watched', () => {
    const vm = makeVm({ type: VFIO_TYPE1v2_IOMMU });
    expect(vm.vdev.faultRegion).toBeUndefined();
    expect(vm.loop.watched).toEqual([]);
  });
});

describe('exit and close', () => {
  it('leave no fds, no pinned pages, no bindings; the vIOMMU context is unset', () => {
    const { ops, calls } = fakeViommu();
    const vm = makeVm({ viommu: ops });
    placeBar0(vm);
    programVector(vm, 0, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, SPI_INTID);
    programVector(vm, 3, GIOVA_DOORBELL + V2M_MSI_SETSPI_NS, SPI_INTID + 1, { enable: false });
    expect(vm.proc.mm.stats.pinnedPages).toBeGreaterThan(0);
    vm.vdev.exit();
    expect(calls.unsets).toBe(1);
    expect(vm.gpex.root.devices()).toEqual([]);
    expect(vm.loop.watched).toEqual([]);
    expect(vm.dev.msixEnabled).toBe(false);
    expect(vm.container.boundMsiIovas).toEqual([]);
    expect(vm.container.close()).toBe(0);
    expect(vm.proc.openFds).toEqual(vm.fdsBefore);
    expect(vm.proc.mm.stats.pinnedPages).toBe(0);
    expect(vm.host.vfioPciOf(vm.rec)!.openCount).toBe(0);
    // The group can be taken again by the same process.
    expect(vm.proc.open(`/dev/vfio/${vm.group}`)).toBeGreaterThan(0);
  });

  it('a vIOMMU whose set_iommu_context refuses fails realize with its errno and leaves nothing behind', () => {
    const { ops } = fakeViommu();
    const refusing: PCIIOMMUOps = { ...ops, set_iommu_context: () => -ENODEV };
    const vm = makeVm({ viommu: refusing, realize: false });
    expect(vm.vdev.realize(vm.gpex.root, DEVFN)).toBe(-ENODEV);
    expect(vm.vdev.deviceFd).toBe(-1);
    expect(vm.gpex.root.devices()).toEqual([]);
    vm.container.close();
    expect(vm.proc.openFds).toEqual(vm.fdsBefore);
  });

  it('a vIOMMU without set_iommu_context (-ENOENT) still gets the device; exit then unsets nothing', () => {
    const { ops, calls } = fakeViommu();
    const { set_iommu_context: _s, ...noCtx } = ops;
    const vm = makeVm({ viommu: noCtx });
    expect(vm.vdev.bus).toBe(vm.gpex.root);
    expect(calls.contexts).toEqual([]);
    vm.vdev.exit();
    expect(calls.unsets).toBe(0);
    expect(vm.container.close()).toBe(0);
    expect(vm.proc.openFds).toEqual(vm.fdsBefore);
  });
});

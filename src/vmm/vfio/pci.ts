/**
 * The vfio-pci frontend (QEMU's hw/vfio/pci.c in spirit): a `PCIDevice` on the VMM's PCI bus that
 * is an assigned host function, reached only through its VFIO device fd.
 *
 * - Realize: the group joins the container (`VfioContainer.addGroup`), VFIO_GROUP_GET_DEVICE_FD
 *   with the host function's name, VFIO_DEVICE_GET_INFO, GET_REGION_INFO for the BARs, the config
 *   region and (when the device has more regions than vfio-pci's nine) the DMA fault region,
 *   GET_IRQ_INFO for MSI-X and the DMA fault IRQ. Then the device is plugged into the bus and, when
 *   a vIOMMU is up the bus chain, the container is registered as its HostIOMMUContext
 *   (`pci_device_set_iommu_context`).
 * - Configuration space: the host's vfio-pci already virtualises it (including the PASID
 *   capability of seed-spec §7), so guest accesses are pread/pwrite of the config region, except the
 *   bits the VMM emulates: the BAR and ROM registers (sizes from REGION_INFO, flags from the host's
 *   BAR registers) and MSI-X Message Control's Enable and Function Mask.
 * - BARs: accesses are pread/pwrite of the BAR's region, except the MSI-X table and PBA, which the
 *   VMM emulates (the host hides the physical table).
 * - MSI-X: a vector is routed when MSI-X is enabled, the function not masked and the entry not
 *   masked. Its message address goes through `pci_device_iommu_address_space(dev)`; behind a vIOMMU
 *   the doorbell page is bound with `HostIOMMUContext.setMsiBinding(giova, gpa, 4 KiB)` so the host
 *   maps it at stage 2; then the vector gets an eventfd (VFIO_DEVICE_SET_IRQS, MSI-X,
 *   ACTION_TRIGGER | DATA_EVENTFD) and KVM_IRQFD on the VM fd with GSI = data − 32 (the data is the
 *   SPI's INTID the guest wrote for its GICv2m frame; see `src/arch/virt.ts`). Masking, disabling
 *   or re-programming a vector tears this down in reverse (irqfd deassign, SET_IRQS with fd -1,
 *   close, unbind) before routing it again.
 * - DMA faults: an eventfd from the event loop on the DMA fault IRQ; its handler reads the fault
 *   region's header and new records with pread, writes `tail` back with pwrite and hands the decoded
 *   `iommu_fault` records to `pci_device_iommu_inject_faults`.
 * - Exit: context unset, IRQs disabled, every fd closed, unplugged.
 *
 * Every ioctl goes through the container's `IoctlLog`; refusals are logged and counted, never
 * thrown. Decisions are marked "Decision:" below.
 */

import type { MmioSize } from '../../arch/guest-cpu.ts';
import { VIRT_GIC_NR_IRQS } from '../../arch/virt.ts';
import type { Process } from '../../host/kernel/process.ts';
import { pciFindCapability } from '../../hw/pci/config-space.ts';
import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  PCI_ROM_ADDRESS,
  PCI_STD_NUM_BARS,
  type PciConfigPort,
} from '../../hw/pci/regs.ts';
import { EINVAL, ENODEV, ENOENT } from '../../uapi/errno.ts';
import { type IommuFaultRecord, iommu_fault } from '../../uapi/iommu.ts';
import { KVM_IRQFD, KVM_IRQFD_FLAG_DEASSIGN, kvm_irqfd } from '../../uapi/kvm.ts';
import {
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
} from '../../uapi/vfio.ts';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_IRQ_INFO_CAP_TYPE,
  VFIO_IRQ_INFO_FLAG_CAPS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SUBTYPE_DMA_FAULT,
  VFIO_IRQ_TYPE_NESTED,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
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
} from '../../uapi/vfio-device.ts';
import { walkInfoCaps } from '../../uapi/vfio-type1.ts';
import type { EventLoop } from '../event-loop.ts';
import type { MmioOps } from '../memory.ts';
import {
  type PCIBus,
  pci_device_iommu_address_space,
  pci_device_iommu_inject_faults,
  pci_device_iommu_lookup,
  pci_device_set_iommu_context,
  pci_device_unset_iommu_context,
} from '../pci/bus.ts';
import { mmioAllOnes, PCIDevice } from '../pci/device.ts';
import { addressSpaceMemory } from '../pci/iommu.ts';
import type { VfioContainer } from './container.ts';

export interface VFIOPCIDeviceOptions {
  readonly proc: Process;
  readonly container: VfioContainer;
  /** The host IOMMU group number (/dev/vfio/<group>). */
  readonly group: number;
  /** The host function's name for VFIO_GROUP_GET_DEVICE_FD (e.g. "0000:00:04.0"). */
  readonly hostName: string;
  readonly loop: EventLoop;
  /** The KVM VM fd (KVM_IRQFD). */
  readonly vmFd: number;
  /** The device's name in the VMM (default "vfio-<hostName>"). */
  readonly name?: string;
}

/** A VFIO region as GET_REGION_INFO described it. */
export interface VfioRegion {
  readonly index: number;
  readonly flags: number;
  readonly size: number;
  /** Offset of the region in the device fd. */
  readonly offset: number;
}

export interface VFIOPCIStats {
  configReads: number;
  configWrites: number;
  /** Config accesses the host refused (reads gave all-ones). */
  configErrors: number;
  mmioReads: number;
  mmioWrites: number;
  /** BAR accesses the host refused (reads gave all-ones). */
  mmioErrors: number;
  msixTableReads: number;
  msixTableWrites: number;
  pbaReads: number;
  /** Vectors routed (binding + SET_IRQS + KVM_IRQFD), and torn down again. */
  msixRouted: number;
  msixReleased: number;
  /** Vectors whose routing failed (untranslatable address, bad INTID, a refused ioctl). */
  msixRouteFailures: number;
  /** SET_MSI_BINDING binds issued. */
  msiBindings: number;
  /** DMA fault IRQ handler runs, records forwarded, and inject_faults refusals. */
  faultIrqs: number;
  faultsForwarded: number;
  faultInjectErrors: number;
}

/** The MSI-X capability's layout in the device. */
export interface MsixInfo {
  readonly cap: number;
  readonly vectors: number;
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
}

/** A routed MSI-X vector. */
export interface MsixRoute {
  readonly vector: number;
  readonly addr: number;
  readonly data: number;
  readonly eventfd: number;
  readonly gsi: number;
  /** The bound doorbell page's gIOVA, when bound. */
  readonly giova: number | undefined;
}

/** Decision: MSI bindings cover the doorbell's 4 KiB page (the host's MSI granule bounds the size). */
const MSI_BINDING_SIZE = 0x1000;
const GIC_SPI_BASE = 32;
const TRIGGER_EVENTFD = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;

const le = (b: Uint8Array, n: number): number => {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
};
const toLe = (v: number, n: number): Uint8Array => {
  const b = new Uint8Array(n);
  let x = v;
  for (let i = 0; i < n; i++) {
    b[i] = x % 256;
    x = Math.floor(x / 256);
  }
  return b;
};
const s32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};

export class VFIOPCIDevice extends PCIDevice {
  readonly proc: Process;
  readonly container: VfioContainer;
  readonly group: number;
  readonly hostName: string;
  readonly loop: EventLoop;
  readonly vmFd: number;
  readonly stats: VFIOPCIStats = {
    configReads: 0,
    configWrites: 0,
    configErrors: 0,
    mmioReads: 0,
    mmioWrites: 0,
    mmioErrors: 0,
    msixTableReads: 0,
    msixTableWrites: 0,
    pbaReads: 0,
    msixRouted: 0,
    msixReleased: 0,
    msixRouteFailures: 0,
    msiBindings: 0,
    faultIrqs: 0,
    faultsForwarded: 0,
    faultInjectErrors: 0,
  };
  /** The device fd (-1 when not realized). */
  deviceFd = -1;
  readonly regions = new Map<number, VfioRegion>();
  msix: MsixInfo | undefined = undefined;
  /** The DMA fault region, when the host offers it. */
  faultRegion: VfioRegion | undefined = undefined;
  /** The DMA fault IRQ's eventfd (-1: none). */
  faultEventfd = -1;
  private msixHostVectors = 0;
  /** Bits of each config byte the VMM emulates (read from `config`, not the host). */
  private readonly emulated = new Uint8Array(4096);
  private msixTable = new Uint8Array(0);
  private readonly routes: (MsixRoute | undefined)[] = [];
  private hostMsixEnabled = false;
  /** gIOVA page → { gpa page, vectors using it }. */
  private readonly bindings = new Map<number, { gpa: number; refs: number }>();
  private contextSet = false;
  /** Command as last read back from the host (memory decoding gates BAR routing). */
  private command = 0;

  constructor(opts: VFIOPCIDeviceOptions) {
    super(opts.name ?? `vfio-${opts.hostName}`);
    this.proc = opts.proc;
    this.container = opts.container;
    this.group = opts.group;
    this.hostName = opts.hostName;
    this.loop = opts.loop;
    this.vmFd = opts.vmFd;
  }

  private ioctl(
    fd: number,
    name: string,
    req: number,
    arg: Uint8Array | number,
    decode?: (b: Uint8Array) => unknown,
  ): number {
    return this.container.log.issue(this.proc, fd, name, req, arg, decode);
  }

  /** The routed vectors (inspection). */
  msixRoutes(): MsixRoute[] {
    return this.routes.filter((r): r is MsixRoute => r !== undefined);
  }

  // ------------------------------------------------------------ realize / exit

  /**
   * Opens the device through its group, reads its regions and IRQs, plugs it into `bus` at
   * `devfn`, registers the container with the vIOMMU (if any) and sets up the DMA fault IRQ.
   * 0 or -errno (on failure everything done so far is undone).
   */
  realize(bus: PCIBus, devfn: number): number {
    if (this.deviceFd >= 0) return -EINVAL;
    const g = this.container.addGroup(this.group);
    if (g < 0) return g;
    const name = new TextEncoder().encode(`${this.hostName}\0`);
    const fd = this.ioctl(g, 'VFIO_GROUP_GET_DEVICE_FD', VFIO_GROUP_GET_DEVICE_FD, name, (b) =>
      new TextDecoder().decode(b.subarray(0, b.length - 1)),
    );
    if (fd < 0) return fd;
    this.deviceFd = fd;
    const r = this.probe();
    if (r !== 0) {
      this.exit();
      return r;
    }
    const p = this.realizeOn(bus, devfn);
    if (p !== 0) {
      this.exit();
      return p;
    }
    if (pci_device_iommu_lookup(this)?.iommuBus !== undefined) {
      const c = pci_device_set_iommu_context(this, this.container);
      // -ENOENT: the vIOMMU has no set_iommu_context op; the device works without it.
      if (c < 0 && c !== -ENOENT) {
        this.exit();
        return c;
      }
      this.contextSet = c === 0;
    }
    if (this.faultRegion !== undefined) this.setupFaultIrq();
    return 0;
  }

  /** GET_INFO, the regions, the IRQs, the emulated config bits. */
  private probe(): number {
    const info = vfio_device_info.encode({ argsz: vfio_device_info.size });
    const r = this.ioctl(this.deviceFd, 'VFIO_DEVICE_GET_INFO', VFIO_DEVICE_GET_INFO, info, (b) =>
      vfio_device_info.decode(b),
    );
    if (r < 0) return r;
    const d = vfio_device_info.decode(info);
    if ((d.flags & VFIO_DEVICE_FLAGS_PCI) === 0 || d.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX)
      return -ENODEV;
    // BARs, ROM and config space (the VGA region is not asked for: vsva offers no VGA).
    for (let i = 0; i <= VFIO_PCI_CONFIG_REGION_INDEX; i++) {
      const reg = this.regionInfo(i);
      if (reg !== undefined) this.regions.set(i, reg.region);
    }
    if (!this.regions.has(VFIO_PCI_CONFIG_REGION_INDEX)) return -ENODEV;
    for (let i = VFIO_PCI_NUM_REGIONS; i < d.num_regions; i++) {
      const reg = this.regionInfo(i);
      if (
        reg?.type?.type === VFIO_REGION_TYPE_NESTED &&
        reg.type.subtype === VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT
      ) {
        this.regions.set(i, reg.region);
        if (this.hasFaultIrq(d.num_irqs)) this.faultRegion = reg.region;
      }
    }
    this.setupBars();
    this.setupMsix();
    // The ROM register is emulated: no option ROM (reads 0).
    this.emulate(PCI_ROM_ADDRESS, 4, 0xffff_ffff);
    this.command = this.hostConfigRead(PCI_COMMAND, 2);
    return 0;
  }

  private regionInfo(
    index: number,
  ): { region: VfioRegion; type?: { type: number; subtype: number } } | undefined {
    const buf = new Uint8Array(128);
    buf.set(vfio_region_info.encode({ argsz: buf.length, index }));
    const r = this.ioctl(
      this.deviceFd,
      'VFIO_DEVICE_GET_REGION_INFO',
      VFIO_DEVICE_GET_REGION_INFO,
      buf,
      (b) => vfio_region_info.decode(b),
    );
    if (r < 0) return undefined;
    const ri = vfio_region_info.decode(buf);
    const region: VfioRegion = { index, flags: ri.flags, size: Number(ri.size), offset: Number(ri.offset) };
    if ((ri.flags & VFIO_REGION_INFO_FLAG_CAPS) === 0 || ri.cap_offset === 0) return { region };
    const cap = walkInfoCaps(buf, ri.cap_offset).find((c) => c.id === VFIO_REGION_INFO_CAP_TYPE);
    if (cap === undefined) return { region };
    const t = vfio_region_info_cap_type.decode(buf, cap.offset);
    return { region, type: { type: t.type, subtype: t.subtype } };
  }

  /** Whether the extended IRQ (index 5) is the DMA fault IRQ. */
  private hasFaultIrq(numIrqs: number): boolean {
    if (numIrqs <= VFIO_PCI_NUM_IRQS) return false;
    const buf = new Uint8Array(64);
    buf.set(vfio_irq_info.encode({ argsz: buf.length, index: VFIO_PCI_NUM_IRQS }));
    const r = this.ioctl(this.deviceFd, 'VFIO_DEVICE_GET_IRQ_INFO', VFIO_DEVICE_GET_IRQ_INFO, buf, (b) =>
      vfio_irq_info.decode(b),
    );
    if (r < 0) return false;
    const ii = vfio_irq_info.decode(buf);
    if ((ii.flags & VFIO_IRQ_INFO_FLAG_CAPS) === 0 || ii.count < 1) return false;
    const cap = walkInfoCaps(buf, ii.cap_offset).find((c) => c.id === VFIO_IRQ_INFO_CAP_TYPE);
    if (cap === undefined) return false;
    const t = vfio_irq_info_cap_type.decode(buf, cap.offset);
    return t.type === VFIO_IRQ_TYPE_NESTED && t.subtype === VFIO_IRQ_SUBTYPE_DMA_FAULT;
  }

  /** Memory BARs: sizes from REGION_INFO, flags from the host's BAR registers; registers emulated. */
  private setupBars(): void {
    this.emulate(PCI_BASE_ADDRESS_0, 4 * PCI_STD_NUM_BARS, 0xffff_ffff);
    for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
      const reg = this.regions.get(i);
      const size = reg?.size ?? 0;
      if (size === 0) continue;
      const flags = this.hostConfigRead(PCI_BASE_ADDRESS_0 + 4 * i, 4);
      const is64 = (flags & PCI_BASE_ADDRESS_MEM_TYPE_64) !== 0 && i + 1 < PCI_STD_NUM_BARS;
      // Decision: I/O BARs and sizes the BAR register cannot express are not offered to the guest.
      const pow2 = size >= 16 && Number.isSafeInteger(size) && 2 ** Math.round(Math.log2(size)) === size;
      if ((flags & PCI_BASE_ADDRESS_SPACE_IO) !== 0 || !pow2 || (!is64 && size > 2 ** 31)) continue;
      this.registerBar(i, size, this.barOps(i), {
        is64,
        prefetchable: (flags & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0,
      });
      if (is64) i++;
    }
  }

  /** The MSI-X capability (read through the host's config space); Enable and Function Mask emulated. */
  private setupMsix(): void {
    const port: PciConfigPort = {
      configSize: this.regions.get(VFIO_PCI_CONFIG_REGION_INDEX)!.size,
      configRead: (o, s) => this.hostConfigRead(o, s),
      configWrite: () => {},
    };
    const cap = pciFindCapability(port, PCI_CAP_ID_MSIX);
    if (cap === 0) return;
    const table = this.hostConfigRead(cap + PCI_MSIX_TABLE, 4);
    const pba = this.hostConfigRead(cap + PCI_MSIX_PBA, 4);
    const vectors = (this.hostConfigRead(cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
    this.msix = {
      cap,
      vectors,
      tableBar: table & PCI_MSIX_TABLE_BIR,
      tableOffset: (table & PCI_MSIX_TABLE_OFFSET) >>> 0,
      pbaBar: pba & PCI_MSIX_TABLE_BIR,
      pbaOffset: (pba & PCI_MSIX_TABLE_OFFSET) >>> 0,
    };
    const ii = vfio_irq_info.encode({ argsz: vfio_irq_info.size, index: VFIO_PCI_MSIX_IRQ_INDEX });
    const r = this.ioctl(this.deviceFd, 'VFIO_DEVICE_GET_IRQ_INFO', VFIO_DEVICE_GET_IRQ_INFO, ii, (b) =>
      vfio_irq_info.decode(b),
    );
    this.msixHostVectors = r < 0 ? 0 : Math.min(vectors, vfio_irq_info.decode(ii).count);
    // The guest's table: every entry masked at reset (PCI Local Bus 3.0 §6.8.2.9).
    this.msixTable = new Uint8Array(vectors * PCI_MSIX_ENTRY_SIZE);
    for (let v = 0; v < vectors; v++)
      this.msixTable[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = 1;
    this.config.init(cap + PCI_MSIX_FLAGS, 2, 0, { rw: PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL });
    this.emulate(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  }

  /** Marks bits of [offset, offset+len) as emulated: `mask` repeats every 4 bytes. */
  private emulate(offset: number, len: number, mask: number): void {
    for (let i = 0; i < len; i++)
      this.emulated[offset + i] = this.emulated[offset + i]! | ((mask >>> (8 * (i % 4))) & 0xff);
  }

  /** Undoes realize: context unset, MSI-X and the fault IRQ off, fds closed, unplugged. Idempotent. */
  exit(): void {
    if (this.contextSet) pci_device_unset_iommu_context(this);
    this.contextSet = false;
    for (let v = 0; v < this.routes.length; v++) this.release(v);
    if (this.hostMsixEnabled) this.hostMsixDisable();
    if (this.faultEventfd >= 0) {
      this.loop.remove(this.faultEventfd);
      this.setIrqs(VFIO_PCI_NUM_IRQS, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE, 0, 0, []);
      this.proc.close(this.faultEventfd);
      this.faultEventfd = -1;
    }
    if (this.deviceFd >= 0) this.proc.close(this.deviceFd);
    this.deviceFd = -1;
    this.unplug();
  }

  // ------------------------------------------------------------ configuration space

  private regionOffset(index: number): number {
    return this.regions.get(index)?.offset ?? -1;
  }

  /** A read of the host's (virtualised) config space; all-ones when refused. */
  private hostConfigRead(offset: number, size: AccessSize): number {
    const buf = new Uint8Array(size);
    const r = this.proc.pread(
      this.deviceFd,
      buf,
      size,
      this.regionOffset(VFIO_PCI_CONFIG_REGION_INDEX) + offset,
    );
    if (r !== size) {
      this.stats.configErrors++;
      return mmioAllOnes(size);
    }
    return le(buf, size);
  }

  override get configSize(): number {
    return this.regions.get(VFIO_PCI_CONFIG_REGION_INDEX)?.size ?? this.config.configSize;
  }

  private validConfig(offset: number, size: number): boolean {
    return (
      Number.isInteger(offset) &&
      offset >= 0 &&
      (size === 1 || size === 2 || size === 4) &&
      offset % size === 0 &&
      offset + size <= Math.min(this.configSize, this.config.configSize)
    );
  }

  override configRead(offset: number, size: AccessSize): number {
    this.stats.configReads++;
    if (!this.validConfig(offset, size)) return mmioAllOnes(size);
    const emu = le(this.emulated.subarray(offset, offset + size), size);
    const full = size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
    const local = this.config.configRead(offset, size);
    if (emu === full) return local;
    const host = this.hostConfigRead(offset, size);
    return (((host & ~emu) | (local & emu)) >>> 0) & full;
  }

  /**
   * Emulated bytes go to the VMM's copy; runs of the other bytes are written to the host.
   * Decision: a byte with any emulated bit is not written to the host (for MSI-X Message Control's
   * upper byte the remaining bits are read-only anyway).
   */
  override configWrite(offset: number, size: AccessSize, value: number): void {
    this.stats.configWrites++;
    if (!this.validConfig(offset, size)) return;
    const msix = this.msix;
    const ctlBefore = msix === undefined ? 0 : this.config.get(msix.cap + PCI_MSIX_FLAGS, 2);
    this.config.configWrite(offset, size, value);
    const bytes = toLe(value >>> 0, size);
    let i = 0;
    while (i < size) {
      if (this.emulated[offset + i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < size && this.emulated[offset + j] === 0) j++;
      const r = this.proc.pwrite(
        this.deviceFd,
        bytes.subarray(i, j),
        j - i,
        this.regionOffset(VFIO_PCI_CONFIG_REGION_INDEX) + offset + i,
      );
      if (r !== j - i) this.stats.configErrors++;
      i = j;
    }
    if (offset <= PCI_COMMAND + 1 && offset + size > PCI_COMMAND)
      this.command = this.hostConfigRead(PCI_COMMAND, 2);
    if (msix !== undefined && this.config.get(msix.cap + PCI_MSIX_FLAGS, 2) !== ctlBefore)
      this.msixUpdateAll();
  }

  /** Decision: Command is cached (read back from the host after each guest write to it). */
  override memoryEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }

  // ------------------------------------------------------------ BARs

  private barOps(bar: number): MmioOps {
    return {
      read: (off, size) => this.barRead(bar, off, size),
      write: (off, size, value) => this.barWrite(bar, off, size, value),
    };
  }

  private inTable(bar: number, off: number): boolean {
    const m = this.msix;
    return (
      m !== undefined &&
      bar === m.tableBar &&
      off >= m.tableOffset &&
      off < m.tableOffset + this.msixTable.length
    );
  }

  private inPba(bar: number, off: number): boolean {
    const m = this.msix;
    return (
      m !== undefined &&
      bar === m.pbaBar &&
      off >= m.pbaOffset &&
      off < m.pbaOffset + 8 * Math.ceil(m.vectors / 64)
    );
  }

  barRead(bar: number, off: number, size: MmioSize): number {
    if (this.inTable(bar, off)) {
      this.stats.msixTableReads++;
      const at = off - this.msix!.tableOffset;
      if (at + size > this.msixTable.length) return mmioAllOnes(size);
      return le(this.msixTable.subarray(at, at + size), size);
    }
    if (this.inPba(bar, off)) {
      // Decision: the PBA reads 0 — a masked vector has no route, so nothing is ever pending in the VMM.
      this.stats.pbaReads++;
      return 0;
    }
    this.stats.mmioReads++;
    const buf = new Uint8Array(size);
    const r = this.proc.pread(this.deviceFd, buf, size, this.regionOffset(bar) + off);
    if (r !== size) {
      this.stats.mmioErrors++;
      return mmioAllOnes(size);
    }
    return le(buf, size);
  }

  barWrite(bar: number, off: number, size: MmioSize, value: number): void {
    if (this.inTable(bar, off)) {
      this.stats.msixTableWrites++;
      const at = off - this.msix!.tableOffset;
      if (at + size > this.msixTable.length) return;
      this.msixTable.set(toLe(value, size), at);
      const first = Math.floor(at / PCI_MSIX_ENTRY_SIZE);
      const last = Math.floor((at + size - 1) / PCI_MSIX_ENTRY_SIZE);
      for (let v = first; v <= last; v++) this.msixUpdate(v);
      return;
    }
    if (this.inPba(bar, off)) return; // read-only
    this.stats.mmioWrites++;
    const r = this.proc.pwrite(this.deviceFd, toLe(value, size), size, this.regionOffset(bar) + off);
    if (r !== size) this.stats.mmioErrors++;
  }

  // ------------------------------------------------------------ MSI-X

  /** The guest's entry for vector `v`. */
  msixEntry(v: number): { addr: number; data: number; masked: boolean } {
    const at = v * PCI_MSIX_ENTRY_SIZE;
    const w = (o: number): number => le(this.msixTable.subarray(at + o, at + o + 4), 4);
    return {
      addr: w(PCI_MSIX_ENTRY_UPPER_ADDR) * 2 ** 32 + w(PCI_MSIX_ENTRY_LOWER_ADDR),
      data: w(PCI_MSIX_ENTRY_DATA),
      masked: (w(PCI_MSIX_ENTRY_VECTOR_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0,
    };
  }

  /** MSI-X Enable set and Function Mask clear in the guest's Message Control. */
  msixEnabled(): boolean {
    if (this.msix === undefined) return false;
    const ctl = this.config.get(this.msix.cap + PCI_MSIX_FLAGS, 2);
    return (ctl & PCI_MSIX_FLAGS_ENABLE) !== 0 && (ctl & PCI_MSIX_FLAGS_MASKALL) === 0;
  }

  private msixUpdateAll(): void {
    const m = this.msix;
    if (m === undefined) return;
    for (let v = 0; v < m.vectors; v++) this.msixUpdate(v);
    const enable = (this.config.get(m.cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE) !== 0;
    // Decision: the host's MSI-X stays enabled while the guest's Enable is set (Function Mask only
    // unroutes vectors), and is disabled with it.
    if (!enable && this.hostMsixEnabled) this.hostMsixDisable();
  }

  /** Brings vector `v`'s route in line with the guest's table and Message Control. */
  private msixUpdate(v: number): void {
    if (this.msix === undefined || v >= this.msix.vectors) return;
    const e = this.msixEntry(v);
    const want = this.msixEnabled() && !e.masked;
    const cur = this.routes[v];
    if (cur !== undefined && want && cur.addr === e.addr && cur.data === e.data) return;
    if (cur !== undefined) this.release(v);
    if (want) this.route(v, e.addr, e.data);
  }

  /** Binding, eventfd, SET_IRQS, KVM_IRQFD for vector `v`; on any failure what was done is undone. */
  private route(v: number, addr: number, data: number): void {
    const fail = (): void => {
      this.stats.msixRouteFailures++;
    };
    // Decision: only SPI INTIDs the vGIC has can be routed (GSI = INTID - 32); anything else stays unrouted.
    if (v >= this.msixHostVectors || data < GIC_SPI_BASE || data >= VIRT_GIC_NR_IRQS) return fail();
    const as = pci_device_iommu_address_space(this);
    const t = as.translate(addr, true);
    if (!t.ok) return fail();
    let giova: number | undefined;
    if (as !== addressSpaceMemory) giova = this.bind(addr, t.addr);
    // Decision: a nesting container without a vIOMMU has no guest stage 1, so the doorbell's gpa is
    // bound to itself; the host then maps it at stage 2 (without a binding its MSI cookie has no page).
    else if (this.container.flags !== 0) giova = this.bind(addr, addr);
    if (giova === -1) return fail();
    const efd = this.loop.eventfd();
    if (efd < 0) {
      this.unbind(giova);
      return fail();
    }
    const set = this.hostMsixEnabled ? this.setVectorFd(v, efd) : this.hostMsixEnable(v, efd);
    if (set < 0) {
      this.proc.close(efd);
      this.unbind(giova);
      return fail();
    }
    const gsi = data - GIC_SPI_BASE;
    if (this.irqfd(efd, gsi, 0) < 0) {
      this.setVectorFd(v, -1);
      this.proc.close(efd);
      this.unbind(giova);
      return fail();
    }
    this.routes[v] = { vector: v, addr, data, eventfd: efd, gsi, giova };
    this.stats.msixRouted++;
  }

  /** Tears vector `v`'s route down in reverse order (no-op when not routed). */
  private release(v: number): void {
    const r = this.routes[v];
    if (r === undefined) return;
    this.irqfd(r.eventfd, r.gsi, KVM_IRQFD_FLAG_DEASSIGN);
    if (this.hostMsixEnabled) this.setVectorFd(v, -1);
    this.proc.close(r.eventfd);
    this.unbind(r.giova);
    this.routes[v] = undefined;
    this.stats.msixReleased++;
  }

  /** Binds the doorbell page of `giova` (reference-counted): the page's gIOVA, or -1 on refusal. */
  private bind(giova: number, gpa: number): number {
    const page = giova - (giova % MSI_BINDING_SIZE);
    const gpage = gpa - (gpa % MSI_BINDING_SIZE);
    const b = this.bindings.get(page);
    if (b !== undefined) {
      b.refs++;
      return page;
    }
    this.stats.msiBindings++;
    if (this.container.setMsiBinding(page, gpage, MSI_BINDING_SIZE) < 0) return -1;
    this.bindings.set(page, { gpa: gpage, refs: 1 });
    return page;
  }

  private unbind(page: number | undefined): void {
    if (page === undefined) return;
    const b = this.bindings.get(page);
    if (b === undefined) return;
    if (--b.refs > 0) return;
    this.bindings.delete(page);
    this.container.unsetMsiBinding(page);
  }

  private setIrqs(
    index: number,
    flags: number,
    start: number,
    count: number,
    fds: readonly number[],
  ): number {
    const buf = new Uint8Array(vfio_irq_set.size + 4 * fds.length);
    buf.set(vfio_irq_set.encode({ argsz: buf.length, flags, index, start, count }));
    fds.forEach((fd, i) => {
      buf.set(s32(fd), vfio_irq_set.size + 4 * i);
    });
    return this.ioctl(this.deviceFd, 'VFIO_DEVICE_SET_IRQS', VFIO_DEVICE_SET_IRQS, buf, (b) => ({
      ...vfio_irq_set.decode(b),
      data: Array.from({ length: fds.length }, (_, i) =>
        new DataView(b.buffer, b.byteOffset).getInt32(vfio_irq_set.size + 4 * i, true),
      ),
    }));
  }

  /** Enables MSI-X on the host with every vector slot, `v` triggering `efd` and the others none. */
  private hostMsixEnable(v: number, efd: number): number {
    const fds = Array.from({ length: this.msixHostVectors }, (_, i) => (i === v ? efd : -1));
    const r = this.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, TRIGGER_EVENTFD, 0, fds.length, fds);
    if (r === 0) this.hostMsixEnabled = true;
    return r;
  }

  private hostMsixDisable(): void {
    this.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE, 0, 0, []);
    this.hostMsixEnabled = false;
  }

  private setVectorFd(v: number, fd: number): number {
    return this.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, TRIGGER_EVENTFD, v, 1, [fd]);
  }

  private irqfd(fd: number, gsi: number, flags: number): number {
    return this.ioctl(this.vmFd, 'KVM_IRQFD', KVM_IRQFD, kvm_irqfd.encode({ fd, gsi, flags }), (b) =>
      kvm_irqfd.decode(b),
    );
  }

  // ------------------------------------------------------------ DMA faults

  private setupFaultIrq(): void {
    const efd = this.loop.eventfd();
    if (efd < 0) return;
    if (this.setIrqs(VFIO_PCI_NUM_IRQS, TRIGGER_EVENTFD, 0, 1, [efd]) < 0) {
      this.proc.close(efd);
      return;
    }
    this.faultEventfd = efd;
    this.loop.add(efd, `${this.name}:dma-fault`, () => this.onFaultIrq());
  }

  /** The DMA fault IRQ's handler: new records from `tail` to `head`, `tail` written back, injected. */
  onFaultIrq(): void {
    this.stats.faultIrqs++;
    this.loop.clear(this.faultEventfd);
    const region = this.faultRegion;
    if (region === undefined) return;
    const hdrBuf = new Uint8Array(vfio_region_dma_fault.size);
    if (this.proc.pread(this.deviceFd, hdrBuf, hdrBuf.length, region.offset) !== hdrBuf.length) return;
    const hdr = vfio_region_dma_fault.decode(hdrBuf);
    const n = hdr.nb_entries;
    if (n === 0 || hdr.entry_size < iommu_fault.size || hdr.tail >= n || hdr.head >= n) return;
    const records: IommuFaultRecord[] = [];
    let tail = hdr.tail;
    for (let k = 0; k < n && tail !== hdr.head; k++) {
      const rec = new Uint8Array(iommu_fault.size);
      const at = region.offset + hdr.offset + tail * hdr.entry_size;
      if (this.proc.pread(this.deviceFd, rec, rec.length, at) !== rec.length) break;
      records.push(iommu_fault.decode(rec));
      tail = (tail + 1) % n;
    }
    if (tail !== hdr.tail) this.proc.pwrite(this.deviceFd, toLe(tail, 4), 4, region.offset);
    if (records.length === 0) return;
    this.stats.faultsForwarded += records.length;
    if (pci_device_iommu_inject_faults(this, records) < 0) this.stats.faultInjectErrors++;
  }
}

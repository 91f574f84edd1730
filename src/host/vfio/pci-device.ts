/**
 * vfio-pci (drivers/vfio/pci, Linux ~5.10) with the nested series' DMA fault reporting: the
 * device file a VMM gets from VFIO_GROUP_GET_DEVICE_FD for an assigned PCI function.
 *
 * - Regions, at offset index << 40 of the device file: BAR0–5 (MMIO through the host, the MSI-X
 *   table hidden: reads 0xFF, writes dropped; EIO while the user's virtual Command register has
 *   memory decoding off), ROM and VGA (absent), config space (virtualised by pci-config.ts, where
 *   the RFC's PASID patch lives), and — when the device sits in a nesting domain — the DMA fault
 *   region (VFIO_REGION_TYPE_NESTED / SUBTYPE_NESTED_DMA_FAULT): a header and a ring of 512
 *   `struct iommu_fault` records the IOMMU fault handler fills and user space consumes by
 *   writing `tail`.
 * - IRQs: MSI-X vectors whose triggers are eventfds (the host programs the physical MSI-X table
 *   with a doorbell address from iommu_dma_prepare_msi and an event ID per vector; the doorbell's
 *   interrupt signals the eventfd), ERR and REQ eventfds, no INTx (the device has no pin), no MSI,
 *   and the DMA fault IRQ (VFIO_IRQ_TYPE_NESTED / SUBTYPE_DMA_FAULT) as extended index 5.
 * - VFIO_DEVICE_RESET: a function-level reset through the host PCI core.
 *
 * Decisions: no region is mmap-able (the vsva kernel has no device mmap; regions are accessed
 * with pread/pwrite); the fault ring is 512 entries (DMA_FAULT_RING_LENGTH of the series); a
 * fault arriving while the ring is full is dropped with -ENOSPC to the IOMMU core and counted.
 */

import {
  type AccessSize,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
} from '../../hw/pci/regs.ts';
import type { MsiController } from '../../hw/platform/msi-controller.ts';
import { EFAULT, EINVAL, EIO, ENOENT, ENOSPC, ENOTTY } from '../../uapi/errno.ts';
import { IOMMU_FAULT_DMA_UNRECOV, iommu_fault } from '../../uapi/iommu.ts';
import {
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
} from '../../uapi/vfio.ts';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_CAP_TYPE,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_FLAG_CAPS,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_IRQ_SUBTYPE_DMA_FAULT,
  VFIO_IRQ_TYPE_NESTED,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_DMA_FAULT,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT,
  VFIO_REGION_TYPE_NESTED,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_info_cap_type,
  vfio_irq_set,
  vfio_region_dma_fault,
  vfio_region_info,
  vfio_region_info_cap_fault,
  vfio_region_info_cap_type,
  vfioPciIndexToOffset,
  vfioPciOffsetMask,
  vfioPciOffsetToIndex,
} from '../../uapi/vfio-device.ts';
import { VfioInfoCap } from '../../uapi/vfio-type1.ts';
import { type EventfdCtx, eventfdCtxFdget } from '../eventfd.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommuDevice, IommuFault } from '../iommu/types.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { Process } from '../kernel/process.ts';
import type { HostPci, HostPciFunction } from '../pci.ts';
import type { IoctlArg, UserPtr } from '../uaccess.ts';
import type { VfioDeviceOps } from './device.ts';
import { pciFindCapability, VfioPciConfig } from './pci-config.ts';

/** DMA_FAULT_RING_LENGTH of the series. */
export const DMA_FAULT_RING_LENGTH = 512;
const PAGE_SIZE = 4096;
const FAULT_ENTRY_SIZE = iommu_fault.size;
/** The extended region index of the DMA fault region (the first device-specific region). */
export const VFIO_PCI_DMA_FAULT_REGION_INDEX = VFIO_PCI_NUM_REGIONS;
/** The extended IRQ index of the DMA fault IRQ (the first device-specific IRQ). */
export const VFIO_PCI_DMA_FAULT_IRQ_INDEX = VFIO_PCI_NUM_IRQS;

/** What vfio-pci needs from the host platform. */
export interface VfioPciPlatform {
  readonly kernel: Kernel;
  readonly core: IommuCore;
  readonly pci: HostPci;
  readonly msi: MsiController;
  /** Physical address of the MSI doorbell the device's MSI-X writes must reach. */
  readonly doorbellPa: number;
}

export interface VfioPciOptions {
  /** The RFC's patch: the PASID capability visible to the user (default true). */
  readonly exposePasid?: boolean;
}

interface MsixVector {
  trigger: EventfdCtx;
  eventId: number;
}

export interface VfioPciStats {
  msixDelivered: number;
  faultsRecorded: number;
  /** Faults dropped: ring full, or not unrecoverable. */
  faultsDropped: number;
}

type IrqType = 'none' | 'msix';

export class VfioPciDevice implements VfioDeviceOps {
  readonly name: string;
  readonly fn: HostPciFunction;
  readonly dev: IommuDevice;
  readonly platform: VfioPciPlatform;
  readonly options: Required<VfioPciOptions>;
  readonly stats: VfioPciStats = { msixDelivered: 0, faultsRecorded: 0, faultsDropped: 0 };
  private refcnt = 0;
  config: VfioPciConfig | undefined = undefined;
  private msixCap = 0;
  private msixBar = -1;
  private msixOffset = 0;
  private msixVectors = 0;
  private irqType: IrqType = 'none';
  private msix: (MsixVector | undefined)[] = [];
  private errTrigger: EventfdCtx | undefined = undefined;
  private reqTrigger: EventfdCtx | undefined = undefined;
  /** The DMA fault region's bytes (header + ring), present when the device is nested. */
  fault: Uint8Array | undefined = undefined;
  private faultTrigger: EventfdCtx | undefined = undefined;

  constructor(fn: HostPciFunction, dev: IommuDevice, platform: VfioPciPlatform, opts: VfioPciOptions = {}) {
    this.fn = fn;
    this.dev = dev;
    this.platform = platform;
    this.name = dev.name;
    this.options = { exposePasid: opts.exposePasid ?? true };
  }

  get openCount(): number {
    return this.refcnt;
  }

  get numRegions(): number {
    return VFIO_PCI_NUM_REGIONS + (this.fault !== undefined ? 1 : 0);
  }

  get numIrqs(): number {
    return VFIO_PCI_NUM_IRQS + (this.fault !== undefined ? 1 : 0);
  }

  // ------------------------------------------------------------ open / release

  /** vfio_pci_open: the first open enables the device (vfio_pci_enable). */
  open(): number {
    if (this.refcnt === 0) {
      const r = this.enable();
      if (r !== 0) return r;
    }
    this.refcnt++;
    return 0;
  }

  release(): void {
    this.refcnt--;
    if (this.refcnt === 0) this.disable();
  }

  private enable(): number {
    const { pci, core } = this.platform;
    pci.clearMaster(this.fn);
    pci.enable(this.fn);
    pci.resetFunction(this.fn);
    // An FLR the user starts through config space (PCIe DEVCTL or AF) is pci_try_reset_function,
    // the same path as VFIO_DEVICE_RESET: the host PCI core saves and restores around it.
    this.config = new VfioPciConfig(this.fn, {
      exposePasid: this.options.exposePasid,
      core: { resetFunction: () => void this.reset() },
    });
    this.msixCap = pciFindCapability(this.fn, PCI_CAP_ID_MSIX);
    if (this.msixCap !== 0) {
      const table = this.fn.configRead(this.msixCap + PCI_MSIX_TABLE, 4);
      this.msixBar = table & PCI_MSIX_TABLE_BIR;
      this.msixOffset = (table & PCI_MSIX_TABLE_OFFSET) >>> 0;
      this.msixVectors = (this.fn.configRead(this.msixCap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
    }
    // vfio_pci_dma_fault_init: only for a device in a nesting domain.
    const domain = core.iommuGetDomainForDev(this.dev);
    if (domain !== undefined && core.iommuDomainIsNesting(domain)) {
      const r = core.iommuRegisterDeviceFaultHandler(this.dev, (f) => this.onFault(f), this);
      if (r !== 0) return r;
      const size = Math.ceil((FAULT_ENTRY_SIZE * DMA_FAULT_RING_LENGTH) / PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE;
      this.fault = new Uint8Array(size);
      this.fault.set(
        vfio_region_dma_fault.encode({
          entry_size: FAULT_ENTRY_SIZE,
          nb_entries: DMA_FAULT_RING_LENGTH,
          offset: vfio_region_dma_fault.size,
        }),
      );
    }
    return 0;
  }

  /** vfio_pci_disable: interrupts off, fault reporting off, the function reset. */
  private disable(): void {
    this.msixDisable();
    this.errTrigger = undefined;
    this.reqTrigger = undefined;
    if (this.fault !== undefined) {
      this.platform.core.iommuUnregisterDeviceFaultHandler(this.dev);
      this.fault = undefined;
      this.faultTrigger = undefined;
    }
    this.platform.pci.clearMaster(this.fn);
    this.platform.pci.resetFunction(this.fn);
    this.config = undefined;
  }

  // ------------------------------------------------------------ DMA faults (the series)

  /** vfio_pci_iommu_dev_fault_handler: a record at `head`, then the DMA fault eventfd. */
  private onFault(f: IommuFault): number {
    const buf = this.fault;
    if (buf === undefined) return -ENOENT;
    if (f.type !== IOMMU_FAULT_DMA_UNRECOV) {
      this.stats.faultsDropped++;
      return -ENOENT;
    }
    const hdr = vfio_region_dma_fault.decode(buf);
    const size = hdr.nb_entries;
    // CIRC_SPACE(head, tail, size) < 1: full (one slot always stays empty).
    if ((hdr.tail - (hdr.head + 1)) & (size - 1)) {
      // space available
    } else {
      this.stats.faultsDropped++;
      return -ENOSPC;
    }
    const rec = iommu_fault.encode({ type: f.type, u: { event: f.event } });
    buf.set(rec, hdr.offset + hdr.head * hdr.entry_size);
    new DataView(buf.buffer).setUint32(vfio_region_dma_fault.offsetof('head'), (hdr.head + 1) % size, true);
    this.stats.faultsRecorded++;
    this.faultTrigger?.signal(1);
    return 0;
  }

  // ------------------------------------------------------------ ioctls

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case VFIO_DEVICE_GET_INFO:
        return this.getInfo(arg);
      case VFIO_DEVICE_GET_REGION_INFO:
        return this.getRegionInfo(arg);
      case VFIO_DEVICE_GET_IRQ_INFO:
        return this.getIrqInfo(arg);
      case VFIO_DEVICE_SET_IRQS:
        return this.setIrqs(proc, arg);
      case VFIO_DEVICE_RESET:
        return this.reset();
      default:
        return -ENOTTY;
    }
  }

  private getInfo(arg: IoctlArg): number {
    const minsz = vfio_device_info.offsetofend('num_irqs');
    const head = arg.ptr.copyFrom(minsz);
    if (head === undefined) return -EFAULT;
    const info = vfio_device_info.decode(head);
    if (info.argsz < minsz) return -EINVAL;
    const out = vfio_device_info.encode({
      argsz: info.argsz,
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      num_regions: this.numRegions,
      num_irqs: this.numIrqs,
    });
    return arg.ptr.copyTo(out.subarray(0, minsz)) ? 0 : -EFAULT;
  }

  private getRegionInfo(arg: IoctlArg): number {
    const minsz = vfio_region_info.offsetofend('offset');
    const head = arg.ptr.copyFrom(minsz);
    if (head === undefined) return -EFAULT;
    const info = vfio_region_info.decode(head);
    if (info.argsz < minsz) return -EINVAL;
    const index = info.index;
    const caps = new VfioInfoCap();
    let size = 0;
    let flags = 0;
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
      size = this.fn.configSize;
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    } else if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
      size = this.fn.barSize(index);
      flags = size === 0 ? 0 : VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
      // No option ROM: size 0, no flags.
    } else if (index === VFIO_PCI_VGA_REGION_INDEX) {
      return -EINVAL;
    } else if (index === VFIO_PCI_DMA_FAULT_REGION_INDEX && this.fault !== undefined) {
      size = this.fault.length;
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      caps.addCapability(
        vfio_region_info_cap_type.encode({
          header: { id: VFIO_REGION_INFO_CAP_TYPE, version: 1 },
          type: VFIO_REGION_TYPE_NESTED,
          subtype: VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT,
        }),
      );
      caps.addCapability(
        vfio_region_info_cap_fault.encode({
          header: { id: VFIO_REGION_INFO_CAP_DMA_FAULT, version: 1 },
          version: 1,
        }),
      );
    } else {
      return -EINVAL;
    }
    let argsz = info.argsz;
    let capOffset = 0;
    if (caps.size > 0) {
      flags |= VFIO_REGION_INFO_FLAG_CAPS;
      if (argsz < vfio_region_info.size + caps.size) {
        argsz = vfio_region_info.size + caps.size;
      } else {
        caps.shift(vfio_region_info.size);
        if (!arg.ptr.add(vfio_region_info.size).copyTo(caps.buf)) return -EFAULT;
        capOffset = vfio_region_info.size;
      }
    }
    const out = vfio_region_info.encode({
      argsz,
      flags,
      index,
      cap_offset: capOffset,
      size: BigInt(size),
      offset: BigInt(vfioPciIndexToOffset(index)),
    });
    return arg.ptr.copyTo(out.subarray(0, minsz)) ? 0 : -EFAULT;
  }

  /** vfio_pci_get_irq_count */
  private irqCount(index: number): number {
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
      case VFIO_PCI_MSI_IRQ_INDEX:
        return 0; // no pin, no MSI capability
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return this.msixVectors;
      case VFIO_PCI_ERR_IRQ_INDEX:
      case VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
      case VFIO_PCI_DMA_FAULT_IRQ_INDEX:
        return this.fault !== undefined ? 1 : 0;
      default:
        return 0;
    }
  }

  private getIrqInfo(arg: IoctlArg): number {
    const minsz = vfio_irq_info.offsetofend('count');
    const head = arg.ptr.copyFrom(minsz);
    if (head === undefined) return -EFAULT;
    const info = vfio_irq_info.decode(head);
    if (info.argsz < minsz || info.index >= this.numIrqs) return -EINVAL;
    let flags = VFIO_IRQ_INFO_EVENTFD;
    if (info.index === VFIO_PCI_INTX_IRQ_INDEX) flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    else if (info.index < VFIO_PCI_NUM_IRQS) flags |= VFIO_IRQ_INFO_NORESIZE;
    let argsz = info.argsz;
    if (info.index >= VFIO_PCI_NUM_IRQS) {
      // The extended IRQ: a capability chain naming its type (the series' cap_offset at 16).
      const caps = new VfioInfoCap();
      caps.addCapability(
        vfio_irq_info_cap_type.encode({
          header: { id: VFIO_IRQ_INFO_CAP_TYPE, version: 1 },
          type: VFIO_IRQ_TYPE_NESTED,
          subtype: VFIO_IRQ_SUBTYPE_DMA_FAULT,
        }),
      );
      flags |= VFIO_IRQ_INFO_FLAG_CAPS;
      let capOffset = 0;
      if (argsz < vfio_irq_info.size + caps.size) {
        argsz = vfio_irq_info.size + caps.size;
      } else {
        caps.shift(vfio_irq_info.size);
        if (!arg.ptr.add(vfio_irq_info.size).copyTo(caps.buf)) return -EFAULT;
        capOffset = vfio_irq_info.size;
      }
      const out = vfio_irq_info.encode({ argsz, flags, index: info.index, count: 1, cap_offset: capOffset });
      // cap_offset is beyond minsz: written only when the caller's struct has room for it.
      return arg.ptr.copyTo(out.subarray(0, info.argsz >= vfio_irq_info.size ? vfio_irq_info.size : minsz))
        ? 0
        : -EFAULT;
    }
    const out = vfio_irq_info.encode({ argsz, flags, index: info.index, count: this.irqCount(info.index) });
    return arg.ptr.copyTo(out.subarray(0, minsz)) ? 0 : -EFAULT;
  }

  // ------------------------------------------------------------ SET_IRQS

  /** VFIO_DEVICE_SET_IRQS: vfio_set_irqs_validate_and_prepare, then the index's handler. */
  private setIrqs(proc: Process, arg: IoctlArg): number {
    const minsz = vfio_irq_set.size;
    const head = arg.ptr.copyFrom(minsz);
    if (head === undefined) return -EFAULT;
    const hdr = vfio_irq_set.decode(head);
    const max = this.irqCount(hdr.index);
    if (
      hdr.argsz < minsz ||
      hdr.index >= this.numIrqs ||
      hdr.count >= 0xffff_ffff - hdr.start ||
      (hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) !== 0
    )
      return -EINVAL;
    if (hdr.start >= max || hdr.start + hdr.count > max) return -EINVAL;
    let elem: number;
    switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
      case VFIO_IRQ_SET_DATA_NONE:
        elem = 0;
        break;
      case VFIO_IRQ_SET_DATA_BOOL:
        elem = 1;
        break;
      case VFIO_IRQ_SET_DATA_EVENTFD:
        elem = 4;
        break;
      default:
        return -EINVAL;
    }
    let data: Uint8Array | undefined;
    if (elem > 0) {
      if (hdr.argsz - minsz < hdr.count * elem) return -EINVAL;
      data = arg.ptr.add(minsz).copyFrom(hdr.count * elem);
      if (data === undefined) return -EFAULT;
    }
    const action = hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    const dataType = hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) return -ENOTTY; // no masking support (as for MSI-X)
    switch (hdr.index) {
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return this.setMsixTrigger(proc, hdr.start, hdr.count, dataType, data);
      case VFIO_PCI_ERR_IRQ_INDEX:
        return this.setSingleTrigger(proc, 'err', hdr.count, dataType, data);
      case VFIO_PCI_REQ_IRQ_INDEX:
        return this.setSingleTrigger(proc, 'req', hdr.count, dataType, data);
      case VFIO_PCI_DMA_FAULT_IRQ_INDEX:
        return this.setSingleTrigger(proc, 'fault', hdr.count, dataType, data);
      default:
        return -ENOTTY;
    }
  }

  /** eventfd_ctx_fdget, with the reference the trigger keeps. */
  private eventfdOf(proc: Process, fd: number): EventfdCtx | number {
    const ctx = eventfdCtxFdget(proc, fd);
    return typeof ctx === 'number' ? ctx : ctx.get();
  }

  /** vfio_pci_set_ctx_trigger_single (ERR, REQ, and the series' DMA fault IRQ). */
  private setSingleTrigger(
    proc: Process,
    which: 'err' | 'req' | 'fault',
    count: number,
    dataType: number,
    data: Uint8Array | undefined,
  ): number {
    const get = (): EventfdCtx | undefined =>
      which === 'err' ? this.errTrigger : which === 'req' ? this.reqTrigger : this.faultTrigger;
    const set = (c: EventfdCtx | undefined): void => {
      get()?.put();
      if (which === 'err') this.errTrigger = c;
      else if (which === 'req') this.reqTrigger = c;
      else this.faultTrigger = c;
    };
    if (dataType === VFIO_IRQ_SET_DATA_NONE) {
      const cur = get();
      if (cur !== undefined) {
        if (count > 0) cur.signal(1);
        else set(undefined);
      }
      return 0;
    }
    if (count === 0) return -EINVAL;
    if (dataType === VFIO_IRQ_SET_DATA_BOOL) {
      if (data![0] !== 0) get()?.signal(1);
      return 0;
    }
    const fd = new DataView(data!.buffer, data!.byteOffset).getInt32(0, true);
    if (fd === -1) {
      set(undefined);
      return 0;
    }
    if (fd < 0) return -EINVAL;
    const ctx = this.eventfdOf(proc, fd);
    if (typeof ctx === 'number') return ctx;
    set(ctx);
    return 0;
  }

  /** vfio_pci_set_msi_trigger for the MSI-X index. */
  private setMsixTrigger(
    proc: Process,
    start: number,
    count: number,
    dataType: number,
    data: Uint8Array | undefined,
  ): number {
    if (this.irqType === 'msix' && count === 0 && dataType === VFIO_IRQ_SET_DATA_NONE) {
      this.msixDisable();
      return 0;
    }
    if (this.irqType !== 'msix' && this.irqType !== 'none') return -EINVAL;
    if (dataType === VFIO_IRQ_SET_DATA_EVENTFD) {
      const fds = Array.from({ length: count }, (_, i) =>
        new DataView(data!.buffer, data!.byteOffset).getInt32(4 * i, true),
      );
      if (this.irqType === 'msix') return this.msixSetBlock(proc, start, fds);
      const r = this.msixEnable(start + count);
      if (r !== 0) return r;
      const b = this.msixSetBlock(proc, start, fds);
      if (b !== 0) this.msixDisable();
      return b;
    }
    if (this.irqType !== 'msix') return -EINVAL;
    for (let i = start; i < start + count; i++) {
      const v = this.msix[i];
      if (v === undefined) continue;
      if (dataType === VFIO_IRQ_SET_DATA_NONE || data![i - start] !== 0) v.trigger.signal(1);
    }
    return 0;
  }

  /** vfio_msi_enable: -EINVAL if another type is active; the vector slots. */
  private msixEnable(nvec: number): number {
    if (this.irqType !== 'none') return -EINVAL;
    if (nvec > this.msixVectors) return -ENOSPC;
    this.msix = new Array<MsixVector | undefined>(nvec).fill(undefined);
    this.irqType = 'msix';
    // MSI-X Enable on the device, every vector masked until a trigger is set.
    for (let v = 0; v < this.msixVectors; v++) this.writeMsixEntry(v, 0, 0, true);
    const ctl = this.fn.configRead(this.msixCap + PCI_MSIX_FLAGS, 2);
    this.fn.configWrite(this.msixCap + PCI_MSIX_FLAGS, 2, ctl | PCI_MSIX_FLAGS_ENABLE);
    return 0;
  }

  private msixDisable(): void {
    if (this.irqType !== 'msix') return;
    for (let v = 0; v < this.msix.length; v++) this.msixSetVector(v, undefined);
    const ctl = this.fn.configRead(this.msixCap + PCI_MSIX_FLAGS, 2);
    this.fn.configWrite(this.msixCap + PCI_MSIX_FLAGS, 2, ctl & ~PCI_MSIX_FLAGS_ENABLE);
    this.msix = [];
    this.irqType = 'none';
  }

  /** vfio_msi_set_block: on a failure the vectors set by this call are torn down again. */
  private msixSetBlock(proc: Process, start: number, fds: readonly number[]): number {
    for (let j = 0; j < fds.length; j++) {
      const r = this.msixSetVectorFd(proc, start + j, fds[j]!);
      if (r !== 0) {
        for (let k = start; k < start + j; k++) this.msixSetVector(k, undefined);
        return r;
      }
    }
    return 0;
  }

  /** vfio_msi_set_vector_signal */
  private msixSetVectorFd(proc: Process, vector: number, fd: number): number {
    if (vector >= this.msix.length) return -EINVAL;
    this.msixSetVector(vector, undefined);
    if (fd < 0) return 0;
    const ctx = this.eventfdOf(proc, fd);
    if (typeof ctx === 'number') return ctx;
    const r = this.msixSetVector(vector, ctx);
    if (r !== 0) ctx.put();
    return r;
  }

  /**
   * Connects (ctx) or disconnects (undefined) one vector: the host interrupt (event ID = vector)
   * at the doorbell, the doorbell's IOVA from the IOMMU (iommu_dma_prepare_msi), and the
   * physical MSI-X table entry.
   */
  private msixSetVector(vector: number, ctx: EventfdCtx | undefined): number {
    const { msi, core, kernel, doorbellPa } = this.platform;
    const sid = this.fn.streamId;
    const cur = this.msix[vector];
    if (cur !== undefined) {
      this.writeMsixEntry(vector, 0, 0, true);
      msi.unregister(sid, cur.eventId);
      cur.trigger.put();
      this.msix[vector] = undefined;
    }
    if (ctx === undefined) return 0;
    const prep = core.iommuDmaPrepareMsi(this.dev, doorbellPa);
    if (typeof prep === 'number') return prep;
    const eventId = vector;
    if (!msi.register(sid, eventId, () => kernel.fromInterrupt(() => this.deliver(vector)))) return -EINVAL;
    this.msix[vector] = { trigger: ctx, eventId };
    this.writeMsixEntry(vector, prep.msiAddr, eventId, false);
    return 0;
  }

  private deliver(vector: number): void {
    const v = this.msix[vector];
    if (v === undefined) return;
    this.stats.msixDelivered++;
    v.trigger.signal(1);
  }

  private writeMsixEntry(vector: number, addr: number, data: number, masked: boolean): void {
    const at = this.msixOffset + vector * PCI_MSIX_ENTRY_SIZE;
    this.fn.barWrite(this.msixBar, at + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
    this.fn.barWrite(this.msixBar, at + PCI_MSIX_ENTRY_LOWER_ADDR, 4, addr % 2 ** 32);
    this.fn.barWrite(this.msixBar, at + PCI_MSIX_ENTRY_UPPER_ADDR, 4, Math.floor(addr / 2 ** 32));
    this.fn.barWrite(this.msixBar, at + PCI_MSIX_ENTRY_DATA, 4, data);
    if (!masked) this.fn.barWrite(this.msixBar, at + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
  }

  /** VFIO_DEVICE_RESET: a function-level reset through the PCI core (config state saved around it). */
  private reset(): number {
    const wasMsix = this.irqType === 'msix';
    const r = this.platform.pci.resetFunction(this.fn);
    // The reset cleared the device's MSI-X state; vfio-pci keeps its vector setup, so restore it
    // as pci_restore_state would (Decision: the table and Enable are re-programmed).
    if (wasMsix) {
      const ctl = this.fn.configRead(this.msixCap + PCI_MSIX_FLAGS, 2);
      this.fn.configWrite(this.msixCap + PCI_MSIX_FLAGS, 2, ctl | PCI_MSIX_FLAGS_ENABLE);
      const prep = this.platform.core.iommuDmaPrepareMsi(this.dev, this.platform.doorbellPa);
      for (let v = 0; v < this.msix.length; v++) {
        const vec = this.msix[v];
        if (vec !== undefined && typeof prep !== 'number')
          this.writeMsixEntry(v, prep.msiAddr, vec.eventId, false);
      }
    }
    return r;
  }

  // ------------------------------------------------------------ regions

  read(buf: UserPtr, count: number, pos: number): number {
    return this.rw(buf, count, pos, false);
  }

  write(buf: UserPtr, count: number, pos: number): number {
    return this.rw(buf, count, pos, true);
  }

  /** vfio_pci_rw: dispatch on the region index in the offset's top bits. */
  private rw(buf: UserPtr, count: number, pos: number, isWrite: boolean): number {
    const index = vfioPciOffsetToIndex(pos);
    const off = vfioPciOffsetMask(pos);
    if (index >= this.numRegions) return -EINVAL;
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return this.configRw(buf, count, off, isWrite);
    if (index <= VFIO_PCI_BAR5_REGION_INDEX) return this.barRw(index, buf, count, off, isWrite);
    if (index === VFIO_PCI_DMA_FAULT_REGION_INDEX) return this.faultRw(buf, count, off, isWrite);
    return -EINVAL; // ROM (none) and VGA
  }

  private configRw(buf: UserPtr, count: number, off: number, isWrite: boolean): number {
    const cfg = this.config;
    if (cfg === undefined) return -EINVAL;
    if (isWrite) {
      const data = buf.copyFrom(count);
      if (data === undefined) return -EFAULT;
      return cfg.rw(data, count, off, true);
    }
    const data = new Uint8Array(Math.max(0, count));
    const r = cfg.rw(data, count, off, false);
    if (r <= 0) return r;
    return buf.copyTo(data.subarray(0, r)) ? r : -EFAULT;
  }

  /** Whether the user's (virtual) Command register has memory decoding on. */
  private memoryEnabled(): boolean {
    const v = this.config?.vconfigBytes;
    return v !== undefined && ((v[PCI_COMMAND]! | (v[PCI_COMMAND + 1]! << 8)) & PCI_COMMAND_MEMORY) !== 0;
  }

  /** vfio_pci_bar_rw with do_io_rw's access splitting; the MSI-X table reads 0xFF and ignores writes. */
  private barRw(bar: number, buf: UserPtr, count: number, pos: number, isWrite: boolean): number {
    const end = this.fn.barSize(bar);
    if (end === 0) return -EINVAL;
    if (pos >= end) return -EINVAL;
    const n = Math.min(count, end - pos);
    if (!this.memoryEnabled()) return -EIO;
    const xStart = bar === this.msixBar ? this.msixOffset : 0;
    const xEnd = bar === this.msixBar ? this.msixOffset + this.msixVectors * PCI_MSIX_ENTRY_SIZE : 0;
    const user = isWrite ? buf.copyFrom(n) : new Uint8Array(n);
    if (user === undefined) return -EFAULT;
    let done = 0;
    while (done < n) {
      const off = pos + done;
      if (off >= xStart && off < xEnd) {
        const filled = Math.min(n - done, xEnd - off);
        if (!isWrite) user.fill(0xff, done, done + filled);
        done += filled;
        continue;
      }
      const limit = off < xStart ? Math.min(n - done, xStart - off) : n - done;
      const size: AccessSize = limit >= 4 && off % 4 === 0 ? 4 : limit >= 2 && off % 2 === 0 ? 2 : 1;
      if (isWrite) this.fn.barWrite(bar, off, size, readLe(user, done, size));
      else writeLe(user, done, size, this.fn.barRead(bar, off, size));
      done += size;
    }
    if (!isWrite && !buf.copyTo(user)) return -EFAULT;
    return done;
  }

  /** vfio_pci_dma_fault_rw: reads of the header and ring; the only write is a 4-byte `tail`. */
  private faultRw(buf: UserPtr, count: number, pos: number, isWrite: boolean): number {
    const region = this.fault!;
    if (pos >= region.length) return -EINVAL;
    const n = Math.min(count, region.length - pos);
    if (isWrite) {
      if (pos !== 0 || n !== 4) return -EINVAL;
      const tail = buf.getU32();
      if (tail === undefined) return -EFAULT;
      if (tail >= vfio_region_dma_fault.decode(region).nb_entries) return -EINVAL;
      new DataView(region.buffer).setUint32(0, tail, true);
      return 4;
    }
    return buf.copyTo(region.subarray(pos, pos + n)) ? n : -EFAULT;
  }
}

function readLe(b: Uint8Array, at: number, size: AccessSize): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

function writeLe(b: Uint8Array, at: number, size: AccessSize, v: number): void {
  for (let i = 0; i < size; i++) b[at + i] = Math.floor(v / 256 ** i) & 0xff;
}

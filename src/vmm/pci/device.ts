/**
 * An emulated PCI function in the VMM (QEMU's PCIDevice, reduced): a configuration space the VMM
 * holds itself — `ConfigSpace` from `src/hw/pci`, which already has a write mask and a
 * write-1-to-clear mask per byte, capability builders and memory BARs with the standard sizing
 * behaviour — plus, per memory BAR, the `MmioOps` the MMIO window routes accesses to once the guest
 * has placed the BAR and turned on memory decoding (Command.Memory Space).
 *
 * A device is plugged into a `PCIBus` at a devfn (`realizeOn`), which makes it visible through the
 * host bridge's ECAM. Subclasses that do not keep their whole configuration space locally (the
 * vfio-pci frontend, whose space lives in the host) override `configRead`/`configWrite`.
 */

import type { MmioSize } from '../../arch/guest-cpu.ts';
import { ConfigSpace } from '../../hw/pci/config-space.ts';
import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_REVISION_ID,
  PCI_STD_NUM_BARS,
  PCI_VENDOR_ID,
} from '../../hw/pci/regs.ts';
import { EINVAL } from '../../uapi/errno.ts';
import type { MmioOps } from '../memory.ts';
import type { PCIBus } from './bus.ts';

/** devfn = device << 3 | function. */
export const PCI_DEVFN = (slot: number, fn: number): number => ((slot & 0x1f) << 3) | (fn & 7);
export const PCI_SLOT = (devfn: number): number => (devfn >>> 3) & 0x1f;
export const PCI_FUNC = (devfn: number): number => devfn & 7;

/** All-ones of an MMIO access size (8 bytes: the largest safe integer — vsva values stay below 2^53). */
export function mmioAllOnes(size: MmioSize): number {
  return size === 8 ? Number.MAX_SAFE_INTEGER : size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
}

export interface PCIDeviceOptions {
  readonly vendorId?: number;
  readonly deviceId?: number;
  /** Class code (base << 16 | sub << 8 | prog-if). */
  readonly classCode?: number;
  readonly revision?: number;
  /** 256 (conventional) or 4096 (PCIe); default 4096. */
  readonly configSize?: number;
  readonly headerType?: number;
}

/** A memory BAR the device decodes. */
export interface PCIBar {
  readonly index: number;
  readonly size: number;
  readonly is64: boolean;
  readonly prefetchable: boolean;
  readonly ops: MmioOps;
}

export class PCIDevice {
  readonly name: string;
  /** The VMM's configuration space of this function (all of it for emulated devices). */
  readonly config: ConfigSpace;
  protected readonly bars: (PCIBar | undefined)[] = new Array<PCIBar | undefined>(PCI_STD_NUM_BARS);
  private _bus: PCIBus | undefined = undefined;
  private _devfn = -1;

  constructor(name: string, opts: PCIDeviceOptions = {}) {
    this.name = name;
    this.config = new ConfigSpace(opts.configSize ?? PCI_CFG_SPACE_EXP_SIZE);
    const cs = this.config;
    cs.init(PCI_VENDOR_ID, 2, opts.vendorId ?? 0x1b36);
    cs.init(PCI_DEVICE_ID, 2, opts.deviceId ?? 0);
    cs.init(PCI_REVISION_ID, 1, opts.revision ?? 0);
    const cls = opts.classCode ?? 0xff_00_00;
    cs.init(PCI_CLASS_PROG, 1, cls & 0xff);
    cs.init(PCI_CLASS_PROG + 1, 2, (cls >>> 8) & 0xffff);
    cs.init(PCI_HEADER_TYPE, 1, opts.headerType ?? PCI_HEADER_TYPE_NORMAL);
    cs.init(PCI_COMMAND, 2, 0, { rw: PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER });
  }

  get bus(): PCIBus | undefined {
    return this._bus;
  }

  /** The devfn on its bus (-1 when not plugged). */
  get devfn(): number {
    return this._devfn;
  }

  /** Whether this function is a type-1 (bridge) function. */
  isBridge(): boolean {
    return false;
  }

  /** Defines memory BAR `index` of `size` bytes whose accesses go to `ops`. */
  registerBar(
    index: number,
    size: number,
    ops: MmioOps,
    opts: { is64?: boolean; prefetchable?: boolean } = {},
  ): PCIBar {
    const b = this.config.addMemoryBar(index, size, opts);
    const bar: PCIBar = { index, size, is64: b.is64, prefetchable: b.prefetchable, ops };
    this.bars[index] = bar;
    return bar;
  }

  /** The BARs this function has (inspection and routing). */
  barList(): PCIBar[] {
    return this.bars.filter((b): b is PCIBar => b !== undefined);
  }

  /** The guest-physical address BAR `index` is programmed with, or -1 when not defined. */
  barAddress(index: number): number {
    return this.bars[index] === undefined ? -1 : this.config.barAddress(index);
  }

  /** Command.Memory Space. */
  memoryEnabled(): boolean {
    return (this.configRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) !== 0;
  }

  /** The BAR that decodes guest-physical `gpa` (memory decoding on), with the offset in it. */
  barAt(gpa: number): { bar: PCIBar; offset: number } | undefined {
    if (!this.memoryEnabled()) return undefined;
    for (const bar of this.bars) {
      if (bar === undefined) continue;
      const base = this.barAddress(bar.index);
      // Decision: a BAR left at 0 (never placed by the guest) decodes nothing.
      if (base > 0 && gpa >= base && gpa < base + bar.size) return { bar, offset: gpa - base };
    }
    return undefined;
  }

  // ------------------------------------------------------------ configuration space

  get configSize(): number {
    return this.config.configSize;
  }

  configRead(offset: number, size: AccessSize): number {
    return this.config.configRead(offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    this.config.configWrite(offset, size, value);
  }

  // ------------------------------------------------------------ plugging

  /** Plugs the function into `bus` at `devfn`: 0, or -EINVAL (bad devfn) / -EBUSY (taken). */
  realizeOn(bus: PCIBus, devfn: number): number {
    if (this._bus !== undefined) return -EINVAL;
    const r = bus.attach(this, devfn);
    if (r !== 0) return r;
    this._bus = bus;
    this._devfn = devfn;
    return 0;
  }

  /** Unplugs the function (no-op when not plugged). */
  unplug(): void {
    this._bus?.detach(this);
    this._bus = undefined;
    this._devfn = -1;
  }
}
/** The BAR register offset of BAR `i`. */
export const barRegister = (i: number): number => PCI_BASE_ADDRESS_0 + 4 * i;

/**
 * PCI bridges of the VMM's PCI hierarchy (PCI-to-PCI Bridge Architecture 1.2 ch. 3, the type-1
 * configuration header; PCIe Base 7.5.1.3): a PCIe root port, a conventional PCI-PCI bridge, and a
 * PCIe-to-PCI bridge — the variant whose conventional secondary bus makes the IOMMU see every
 * device behind it as the bridge (seed-spec §3.1, see `bus.ts`).
 *
 * The guest programs the primary/secondary/subordinate bus numbers (which route ECAM accesses to
 * the buses below) and the memory windows (which route MMIO below when Command.Memory Space is
 * on): the non-prefetchable window [MEMORY_BASE[15:4] << 20, MEMORY_LIMIT[15:4] << 20 | 0xfffff]
 * and the 64-bit prefetchable window with its upper 32 bits. Base above limit: the window is
 * closed. Bridges have no BARs, no I/O window (RO zero: I/O is not modelled) and no ROM.
 */

import {
  PCI_CAP_ID_EXP,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXP_FLAGS,
} from '../../hw/pci/regs.ts';
import { PCIBus, type PCIBusParent } from './bus.ts';
import { PCIDevice } from './device.ts';

// Type-1 header registers (pci_regs.h names).
export const PCI_HEADER_TYPE_BRIDGE = 0x01;
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_SEC_LATENCY_TIMER = 0x1b;
export const PCI_IO_BASE = 0x1c;
export const PCI_SEC_STATUS = 0x1e;
export const PCI_MEMORY_BASE = 0x20;
export const PCI_MEMORY_LIMIT = 0x22;
export const PCI_MEMORY_RANGE_MASK = 0xfff0;
export const PCI_PREF_MEMORY_BASE = 0x24;
export const PCI_PREF_MEMORY_LIMIT = 0x26;
export const PCI_PREF_RANGE_TYPE_64 = 0x01;
export const PCI_PREF_BASE_UPPER32 = 0x28;
export const PCI_PREF_LIMIT_UPPER32 = 0x2c;
export const PCI_BRIDGE_CONTROL = 0x3e;
export const PCI_CLASS_BRIDGE_PCI = 0x06_04_00;
/** PCIe capability device/port types. */
export const PCI_EXP_TYPE_ROOT_PORT = 0x4;
export const PCI_EXP_TYPE_PCI_BRIDGE = 0x7;

export type PCIBridgeKind = PCIBusParent['kind'];

/** A memory window [base, limit] (inclusive limit). */
export interface BridgeWindow {
  readonly base: number;
  readonly limit: number;
}

const KIND_IDS: Record<PCIBridgeKind, { deviceId: number; expType: number | undefined }> = {
  // Decision: QEMU's own IDs (Red Hat 0x1b36: pcie-root-port 0x000c, pci-bridge 0x0001,
  // pcie-pci-bridge 0x000e) — they are the IDs of QEMU's emulated bridges, which vsva models.
  'root-port': { deviceId: 0x000c, expType: PCI_EXP_TYPE_ROOT_PORT },
  'pci-pci': { deviceId: 0x0001, expType: undefined },
  'pcie-pci': { deviceId: 0x000e, expType: PCI_EXP_TYPE_PCI_BRIDGE },
};

export class PCIBridge extends PCIDevice {
  readonly kind: PCIBridgeKind;
  /** The bus behind the bridge. */
  readonly secondary: PCIBus;

  constructor(name: string, kind: PCIBridgeKind) {
    const ids = KIND_IDS[kind];
    super(name, {
      vendorId: 0x1b36,
      deviceId: ids.deviceId,
      classCode: PCI_CLASS_BRIDGE_PCI,
      headerType: PCI_HEADER_TYPE_BRIDGE,
      configSize: ids.expType === undefined ? PCI_CFG_SPACE_SIZE : PCI_CFG_SPACE_EXP_SIZE,
    });
    this.kind = kind;
    const cs = this.config;
    cs.setMasks(PCI_COMMAND, 2, { rw: PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER });
    cs.init(PCI_PRIMARY_BUS, 1, 0, { rw: 0xff });
    cs.init(PCI_SECONDARY_BUS, 1, 0, { rw: 0xff });
    cs.init(PCI_SUBORDINATE_BUS, 1, 0, { rw: 0xff });
    cs.init(PCI_SEC_LATENCY_TIMER, 1, 0, { rw: 0xff });
    cs.init(PCI_MEMORY_BASE, 2, 0, { rw: PCI_MEMORY_RANGE_MASK });
    cs.init(PCI_MEMORY_LIMIT, 2, 0, { rw: PCI_MEMORY_RANGE_MASK });
    cs.init(PCI_PREF_MEMORY_BASE, 2, PCI_PREF_RANGE_TYPE_64, { rw: PCI_MEMORY_RANGE_MASK });
    cs.init(PCI_PREF_MEMORY_LIMIT, 2, PCI_PREF_RANGE_TYPE_64, { rw: PCI_MEMORY_RANGE_MASK });
    cs.init(PCI_PREF_BASE_UPPER32, 4, 0, { rw: 0xffff_ffff });
    cs.init(PCI_PREF_LIMIT_UPPER32, 4, 0, { rw: 0xffff_ffff });
    cs.init(PCI_BRIDGE_CONTROL, 2, 0, { rw: 0x0fff });
    if (ids.expType !== undefined) {
      const exp = cs.addCapability(PCI_CAP_ID_EXP, 0x3c);
      cs.init(exp + PCI_EXP_FLAGS, 2, 0x0002 | (ids.expType << 4));
    }
    cs.seal();
    const parent: PCIBusParent = { device: this, kind, secondaryBusNumber: () => this.secondaryBusNumber() };
    // A root port's secondary bus is a PCIe link; the two others have a conventional PCI bus behind.
    this.secondary = new PCIBus(`${name}.0`, { express: kind === 'root-port', parent });
  }

  override isBridge(): boolean {
    return true;
  }

  primaryBusNumber(): number {
    return this.configRead(PCI_PRIMARY_BUS, 1);
  }

  secondaryBusNumber(): number {
    return this.configRead(PCI_SECONDARY_BUS, 1);
  }

  subordinateBusNumber(): number {
    return this.configRead(PCI_SUBORDINATE_BUS, 1);
  }

  /** Whether a type-1 configuration access to bus `n` is forwarded through this bridge. */
  routesBus(n: number): boolean {
    const sec = this.secondaryBusNumber();
    // Decision: a bridge whose secondary bus is still 0 (not yet numbered) forwards nothing.
    return sec !== 0 && n >= sec && n <= this.subordinateBusNumber();
  }

  /** The non-prefetchable memory window, undefined when closed. */
  memoryWindow(): BridgeWindow | undefined {
    const base = (this.configRead(PCI_MEMORY_BASE, 2) & PCI_MEMORY_RANGE_MASK) * 2 ** 16;
    const limit = (this.configRead(PCI_MEMORY_LIMIT, 2) & PCI_MEMORY_RANGE_MASK) * 2 ** 16 + 0xf_ffff;
    return base <= limit ? { base, limit } : undefined;
  }

  /** The prefetchable memory window (64-bit), undefined when closed. */
  prefetchWindow(): BridgeWindow | undefined {
    const lo = (this.configRead(PCI_PREF_MEMORY_BASE, 2) & PCI_MEMORY_RANGE_MASK) * 2 ** 16;
    const hi = this.configRead(PCI_PREF_BASE_UPPER32, 4);
    const llo = (this.configRead(PCI_PREF_MEMORY_LIMIT, 2) & PCI_MEMORY_RANGE_MASK) * 2 ** 16 + 0xf_ffff;
    const lhi = this.configRead(PCI_PREF_LIMIT_UPPER32, 4);
    const base = hi * 2 ** 32 + lo;
    const limit = lhi * 2 ** 32 + llo;
    return base <= limit ? { base, limit } : undefined;
  }

  /** Whether a memory access to `gpa` is forwarded to the secondary bus. */
  forwardsMemory(gpa: number): boolean {
    if (!this.memoryEnabled()) return false;
    const inside = (w: BridgeWindow | undefined): boolean =>
      w !== undefined && gpa >= w.base && gpa <= w.limit;
    return inside(this.memoryWindow()) || inside(this.prefetchWindow());
  }
}

/**
 * Test rig for the virtual SMMUv3 (used by the `*.test.ts` files next to it): guest RAM that is a
 * real process's memory (`Host` → `spawn` → `mmap` → `GuestRam`), a minimal guest SMMUv3 driver
 * that programs the vSMMU through its MMIO frame exactly as a guest would (queues and stream
 * table in guest RAM, commands through CMDQ_PROD, events read back from the event queue), and a
 * recording `HostIOMMUContext` that behaves like the host's nesting checks (§1.3: no
 * TRANSLATE → TRANSLATE) and can be told to refuse.
 */

import type { MmioSize } from '../../arch/guest-cpu.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR0ACK,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_PROD,
  SMMU_IRQ_CTRL,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  STRTAB_FMT_2LVL,
} from '../../arch/smmuv3/registers.ts';
import { Host } from '../../host/host.ts';
import type { Process } from '../../host/kernel/process.ts';
import type { MemoryPort } from '../../hw/memory.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import { decodeEvent, type SmmuEvent } from '../../hw/smmuv3/event-record.ts';
import { writeWords } from '../../hw/smmuv3/rig.ts';
import { encodeL1std, encodeSte, type SteParams } from '../../hw/smmuv3/structures.ts';
import { EINVAL } from '../../uapi/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  IOMMU_PASID_CONFIG_TRANSLATE,
  type IommuCacheInvalidateInfoInput,
  type IommuPasidTableConfigInput,
} from '../../uapi/iommu.ts';
import { GuestRam } from '../memory.ts';
import { HOST_IOMMU_NESTING, type HostIOMMUContext, type PCIBusIdentity } from '../pci/iommu.ts';
import { VirtSmmu, type VirtSmmuOptions } from './virt-smmu.ts';

export const GUEST_RAM_GPA = 0x4000_0000;
export const GUEST_RAM_SIZE = 0x40_0000;

/** A PCI bus as the vSMMU sees it; the guest may renumber it. */
export class FakeBus implements PCIBusIdentity {
  readonly name: string;
  number: number;
  constructor(name: string, number = 0) {
    this.name = name;
    this.number = number;
  }
  busNumber(): number {
    return this.number;
  }
}

/** One call a fake host context received. */
export type HostCall =
  | { readonly op: 'set'; readonly config: IommuPasidTableConfigInput }
  | { readonly op: 'unset' }
  | { readonly op: 'inval'; readonly info: IommuCacheInvalidateInfoInput }
  | { readonly op: 'msi-bind' | 'msi-unbind'; readonly giova: number };

/**
 * A recording HostIOMMUContext. `refuse` makes the named operation return -EINVAL (once per entry
 * in the list, or always with 'always'); TRANSLATE while TRANSLATE is set is refused as the host
 * driver does.
 */
export class FakeHostContext implements HostIOMMUContext {
  readonly name: string;
  readonly flags = HOST_IOMMU_NESTING;
  readonly calls: HostCall[] = [];
  refuseSet: number | 'always' = 0;
  refuseInval: number | 'always' = 0;
  /** The host's `s1_cfg.set`. */
  translating = false;

  constructor(name = 'fake-ctx') {
    this.name = name;
  }

  private take(kind: 'refuseSet' | 'refuseInval'): boolean {
    const v = this[kind];
    if (v === 'always') return true;
    if (v > 0) {
      this[kind] = v - 1;
      return true;
    }
    return false;
  }

  setPasidTable(config: IommuPasidTableConfigInput): number {
    this.calls.push({ op: 'set', config });
    if (this.take('refuseSet')) return -EINVAL;
    const translate = config.config === IOMMU_PASID_CONFIG_TRANSLATE;
    if (translate && this.translating) return -EINVAL;
    this.translating = translate;
    return 0;
  }
  unsetPasidTable(): number {
    this.calls.push({ op: 'unset' });
    this.translating = false;
    return 0;
  }
  cacheInvalidate(info: IommuCacheInvalidateInfoInput): number {
    this.calls.push({ op: 'inval', info });
    return this.take('refuseInval') ? -EINVAL : 0;
  }
  setMsiBinding(giova: number): number {
    this.calls.push({ op: 'msi-bind', giova });
    return 0;
  }
  unsetMsiBinding(giova: number): number {
    this.calls.push({ op: 'msi-unbind', giova });
    return 0;
  }

  /** The calls since the last `take`, then forgets them. */
  drain(): HostCall[] {
    return this.calls.splice(0);
  }
}

export interface GuestRamRig {
  readonly host: Host;
  readonly proc: Process;
  readonly ram: GuestRam;
  readonly port: MemoryPort;
  readonly alloc: PageAllocator;
}

/** Guest RAM [GUEST_RAM_GPA, +size) as an anonymous mapping of a real process (the VMM). */
export function guestRam(
  host = new Host(),
  size = GUEST_RAM_SIZE,
  proc = host.kernel.spawn('vmm'),
): GuestRamRig {
  const hva = proc.mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (hva < 0) throw new Error(`mmap: ${hva}`);
  const ram = new GuestRam(proc, [{ gpa: GUEST_RAM_GPA, hva, size }]);
  const port = ram.port();
  // The first 64 KiB are left to tests that want fixed addresses.
  const alloc = new PageAllocator(port, GUEST_RAM_GPA + 0x1_0000, size - 0x1_0000);
  return { host, proc, ram, port, alloc };
}

export interface StreamTableLayout {
  readonly fmt: 'linear' | '2lvl';
  /** LOG2SIZE: StreamIDs covered. */
  readonly log2Size: number;
  /** SPLIT (2-level). */
  readonly split?: number;
}

/**
 * A minimal guest SMMUv3 driver: allocates its queues and stream table in guest RAM and programs
 * the vSMMU through MMIO only.
 */
export class GuestDriver {
  readonly rig: GuestRamRig;
  readonly smmu: VirtSmmu;
  readonly cmdqLog2: number;
  readonly eventqLog2: number;
  readonly cmdq: number;
  readonly eventq: number;
  readonly strtab: number;
  readonly layout: StreamTableLayout;
  private readonly l2 = new Map<number, number>();
  private prod = 0;
  private evCons = 0;

  constructor(
    rig: GuestRamRig,
    smmu: VirtSmmu,
    layout: StreamTableLayout = { fmt: 'linear', log2Size: 8 },
    qLog2 = 4,
  ) {
    this.rig = rig;
    this.smmu = smmu;
    this.layout = layout;
    this.cmdqLog2 = qLog2;
    this.eventqLog2 = qLog2;
    this.cmdq = this.allocZeroed(16 << qLog2, 16 << qLog2);
    this.eventq = this.allocZeroed(32 << qLog2, 32 << qLog2);
    const strtabBytes =
      layout.fmt === 'linear' ? 64 << layout.log2Size : 8 << (layout.log2Size - (layout.split ?? 8));
    this.strtab = this.allocZeroed(Math.max(strtabBytes, 64), Math.max(strtabBytes, 64));
  }

  allocZeroed(bytes: number, align = 64): number {
    const a = this.rig.alloc.alloc(bytes, Math.ceil(Math.log2(align)));
    if (a === undefined) throw new Error('guest RAM exhausted');
    this.rig.port.fill(a, bytes, 0);
    return a;
  }

  read(offset: number, size: MmioSize = 4): number {
    return this.smmu.mmio.read(offset, size);
  }

  write(offset: number, value: number, size: MmioSize = 4): void {
    this.smmu.mmio.write(offset, size, value);
  }

  /** Programs the tables and queues, enables the queues, then (optionally) the SMMU. */
  bringUp(enableSmmu = true): void {
    const l = this.layout;
    this.write(SMMU_STRTAB_BASE, this.strtab, 8);
    const fmt = l.fmt === '2lvl' ? STRTAB_FMT_2LVL << 16 : 0;
    this.write(SMMU_STRTAB_BASE_CFG, fmt | ((l.split ?? 0) << 6) | l.log2Size);
    this.write(SMMU_CMDQ_BASE, this.cmdq | this.cmdqLog2, 8);
    this.write(SMMU_EVENTQ_BASE, this.eventq | this.eventqLog2, 8);
    this.write(SMMU_CMDQ_PROD, 0);
    this.write(SMMU_CMDQ_CONS, 0);
    this.write(SMMU_EVENTQ_PROD, 0);
    this.write(SMMU_EVENTQ_CONS, 0);
    this.write(SMMU_IRQ_CTRL, IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN);
    this.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN);
    if (enableSmmu) this.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    if (this.read(SMMU_CR0ACK) !== this.read(SMMU_CR0)) throw new Error('CR0ACK did not follow CR0');
  }

  /** The address of a StreamID's STE, creating its level-2 table (Span = SPLIT + 1) when 2-level. */
  steAddr(sid: number): number {
    if (this.layout.fmt === 'linear') return this.strtab + 64 * sid;
    const split = this.layout.split ?? 8;
    const l1 = Math.floor(sid / 2 ** split);
    let l2 = this.l2.get(l1);
    if (l2 === undefined) {
      l2 = this.allocZeroed(64 << split, 64 << split);
      this.l2.set(l1, l2);
      writeWords(this.rig.port, this.strtab + 8 * l1, encodeL1std(split + 1, l2));
    }
    return l2 + 64 * (sid % 2 ** split);
  }

  writeSte(sid: number, p: SteParams | Uint32Array): void {
    writeWords(this.rig.port, this.steAddr(sid), p instanceof Uint32Array ? p : encodeSte(p));
  }

  /** Queues commands and rings the doorbell (CMDQ_PROD); returns CMDQ_CONS after. */
  submit(...cmds: Uint32Array[]): number {
    const size = 2 ** this.cmdqLog2;
    for (const c of cmds) {
      writeWords(this.rig.port, this.cmdq + 16 * (this.prod % size), c);
      this.prod = (this.prod + 1) % (2 * size);
    }
    this.write(SMMU_CMDQ_PROD, this.prod);
    return this.read(SMMU_CMDQ_CONS);
  }

  /** Reads and consumes the new event records (CONS written back). */
  events(): SmmuEvent[] {
    const size = 2 ** this.eventqLog2;
    const prod = this.read(SMMU_EVENTQ_PROD) & (2 * size - 1);
    const out: SmmuEvent[] = [];
    while (this.evCons !== prod) {
      const bytes = this.rig.port.read(this.eventq + 32 * (this.evCons % size), 32)!;
      out.push(decodeEvent(new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 32))));
      this.evCons = (this.evCons + 1) % (2 * size);
    }
    this.write(SMMU_EVENTQ_CONS, this.evCons);
    return out;
  }
}

/** A vSMMU over fresh guest RAM, with its interrupt line changes recorded. */
export function vsmmuRig(
  opts: Partial<Omit<VirtSmmuOptions, 'ram' | 'setIrq'>> = {},
  layout?: StreamTableLayout,
): { rig: GuestRamRig; smmu: VirtSmmu; irqs: [number, boolean][]; drv: GuestDriver } {
  const rig = guestRam();
  const irqs: [number, boolean][] = [];
  const smmu = new VirtSmmu({ ...opts, ram: rig.ram, setIrq: (intid, level) => irqs.push([intid, level]) });
  return { rig, smmu, irqs, drv: new GuestDriver(rig, smmu, layout) };
}

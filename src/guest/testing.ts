/**
 * A bare-metal rig that runs the guest OS directly on the hardware models, without the VMM or
 * KVM: guest RAM is a `PhysMem` at VIRT_MEM (guest-physical = physical), the hw `Smmu` sits at
 * VIRT_SMMU with its wired lines on the rig's GIC, the hw `PasidDmaDevice` is 00:00.0 behind a
 * tiny ECAM adapter at VIRT_PCIE_ECAM (its BAR0 decoded wherever the guest placed it), its DMA
 * goes through a `SystemBus` with the SMMU in front (StreamID = RID) to RAM or to a GICv2m-like
 * frame that turns MSI_SETSPI_NS writes into pending INTIDs. The rig writes the device-tree blob,
 * runs the vCPU programs, answers their traps directly, and takes IRQs (on vCPU 0) when one is
 * pending and the program has them unmasked — the part of KVM_RUN the guest depends on.
 */

import type { GuestTrap } from '../arch/guest-cpu.ts';
import { GIC_INTID_SPURIOUS } from '../arch/guest-cpu.ts';
import {
  encodeVirtDtBlob,
  V2M_MSI_SETSPI_NS,
  VIRT_DT_RESERVED,
  VIRT_GIC_DIST,
  VIRT_GIC_DIST_SIZE,
  VIRT_GIC_REDIST,
  VIRT_GIC_REDIST_SIZE_PER_CPU,
  VIRT_GIC_V2M,
  VIRT_GIC_V2M_SIZE,
  VIRT_GIC_V2M_SPI_BASE,
  VIRT_GIC_V2M_SPI_COUNT,
  VIRT_MEM,
  VIRT_PCIE_ECAM,
  VIRT_PCIE_ECAM_SIZE,
  VIRT_PCIE_MMIO,
  VIRT_PCIE_MMIO_SIZE,
  VIRT_SMMU,
  VIRT_SMMU_IRQ_CMD_SYNC,
  VIRT_SMMU_IRQ_EVENTQ,
  VIRT_SMMU_IRQ_GERROR,
  VIRT_SMMU_IRQ_PRIQ,
  VIRT_SMMU_SIZE,
  type VirtDt,
} from '../arch/virt.ts';
import { PhysMem } from '../hw/memory.ts';
import { PasidDmaDevice, type PasidDmaDeviceOptions } from '../hw/pci/pasid-dma-device.ts';
import type { AccessSize } from '../hw/pci/regs.ts';
import { SystemBus } from '../hw/platform/system-bus.ts';
import type { SmmuFeatures } from '../hw/smmuv3/features.ts';
import { Smmu, type SmmuIrq } from '../hw/smmuv3/smmu.ts';
import { type GuestJob, GuestOs } from './os.ts';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** A GIC reduced to what the guest sees through ICC_*: pending and active INTIDs, lowest first. */
export class RigGic {
  readonly pending = new Set<number>();
  readonly active: number[] = [];
  readonly raised: Record<number, number> = {};
  enabled = false;

  raise(intid: number): void {
    this.raised[intid] = (this.raised[intid] ?? 0) + 1;
    this.pending.add(intid);
  }

  get hasPending(): boolean {
    return this.enabled && this.pending.size > 0;
  }

  ack(): number {
    if (!this.hasPending) return GIC_INTID_SPURIOUS;
    const id = Math.min(...this.pending);
    this.pending.delete(id);
    this.active.push(id);
    return id;
  }

  eoi(intid: number): void {
    const i = this.active.lastIndexOf(intid);
    if (i >= 0) this.active.splice(i, 1);
  }
}

export interface GuestRigOptions {
  /** Guest RAM size (default 64 MiB). */
  readonly ramSize?: number;
  readonly cpus?: number;
  /** SMMU features, or false for a machine without an SMMU. */
  readonly smmu?: Partial<SmmuFeatures> | false;
  readonly device?: PasidDmaDeviceOptions;
  /** Edits the device tree before it is written. */
  readonly dt?: (dt: VirtDt) => VirtDt;
  /** Writes these bytes instead of a device-tree blob. */
  readonly blob?: Uint8Array;
}

const SMMU_LINES: Record<SmmuIrq, number> = {
  eventq: VIRT_SMMU_IRQ_EVENTQ,
  gerror: VIRT_SMMU_IRQ_GERROR,
  cmd_sync: VIRT_SMMU_IRQ_CMD_SYNC,
  sev: -1,
};

export function defaultDt(ramSize: number, cpus: number, smmu: boolean): VirtDt {
  const r = (base: number, size: number) => ({ base: hex(base), size: hex(size) });
  return {
    model: 'vsva,virt',
    cpus,
    memory: [r(VIRT_MEM, ramSize)],
    reserved: [r(VIRT_MEM, VIRT_DT_RESERVED)],
    gic: {
      dist: r(VIRT_GIC_DIST, VIRT_GIC_DIST_SIZE),
      redist: r(VIRT_GIC_REDIST, VIRT_GIC_REDIST_SIZE_PER_CPU * cpus),
    },
    msi: {
      compatible: 'arm,gic-v2m-frame',
      reg: r(VIRT_GIC_V2M, VIRT_GIC_V2M_SIZE),
      spiBase: VIRT_GIC_V2M_SPI_BASE,
      spiCount: VIRT_GIC_V2M_SPI_COUNT,
    },
    ...(smmu
      ? {
          smmu: {
            compatible: 'arm,smmu-v3',
            reg: r(VIRT_SMMU, VIRT_SMMU_SIZE),
            irqs: {
              eventq: VIRT_SMMU_IRQ_EVENTQ,
              priq: VIRT_SMMU_IRQ_PRIQ,
              cmdqSync: VIRT_SMMU_IRQ_CMD_SYNC,
              gerror: VIRT_SMMU_IRQ_GERROR,
            },
          },
        }
      : {}),
    pcie: {
      compatible: 'pci-host-ecam-generic',
      ecam: r(VIRT_PCIE_ECAM, VIRT_PCIE_ECAM_SIZE),
      busRange: [0, 255],
      mmio: r(VIRT_PCIE_MMIO, VIRT_PCIE_MMIO_SIZE),
      iommu: smmu ? 'smmu' : null,
    },
  };
}

export class GuestRig {
  readonly mem: PhysMem;
  readonly gic = new RigGic();
  readonly smmu: Smmu | undefined;
  readonly bus: SystemBus;
  readonly dev: PasidDmaDevice;
  readonly dt: VirtDt;
  readonly os: GuestOs;
  readonly cpus: number;
  /** Trap counts by kind, and MMIO accesses nothing decoded. */
  readonly traps: Record<string, number> = {};
  readonly unhandled: string[] = [];
  private readonly answers: number[];
  private readonly waiting: boolean[];

  constructor(opts: GuestRigOptions = {}) {
    const ramSize = opts.ramSize ?? 64 << 20;
    this.cpus = opts.cpus ?? 1;
    this.mem = new PhysMem({
      name: 'guest',
      ram: [{ base: VIRT_MEM, size: ramSize }],
      lookupCacheEntries: 1 << 16,
    });
    if (opts.smmu !== false) {
      this.smmu = new Smmu(this.mem, {
        features: opts.smmu ?? {},
        hooks: {
          irq: (line) => {
            const id = SMMU_LINES[line];
            if (id >= 0) this.gic.raise(id);
          },
        },
      });
    }
    this.bus = new SystemBus({ mem: this.mem, ...(this.smmu ? { iommu: this.smmu } : {}) });
    this.bus.addMmio({
      name: 'gicv2m',
      base: VIRT_GIC_V2M,
      size: VIRT_GIC_V2M_SIZE,
      handler: {
        read: (_pa, out) => {
          out.fill(0);
          return true;
        },
        write: (pa, data) => {
          if (pa - VIRT_GIC_V2M !== V2M_MSI_SETSPI_NS || data.length !== 4) return true;
          const id = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
          if (id >= VIRT_GIC_V2M_SPI_BASE && id < VIRT_GIC_V2M_SPI_BASE + VIRT_GIC_V2M_SPI_COUNT)
            this.gic.raise(id);
          return true;
        },
      },
    });
    this.dev = new PasidDmaDevice({ bus: 0, dev: 0, fn: 0, dma: this.bus, ...opts.device });
    const base = defaultDt(ramSize, this.cpus, this.smmu !== undefined);
    this.dt = opts.dt ? opts.dt(base) : base;
    this.mem.write(VIRT_MEM, opts.blob ?? encodeVirtDtBlob(this.dt));
    this.os = new GuestOs(this.mem);
    this.answers = new Array<number>(this.cpus).fill(0);
    this.waiting = new Array<boolean>(this.cpus).fill(false);
  }

  private count(kind: string): void {
    this.traps[kind] = (this.traps[kind] ?? 0) + 1;
  }

  /** One trap: the answer the program gets back. */
  handle(cpu: number, t: GuestTrap): number {
    this.count(t.kind);
    switch (t.kind) {
      case 'mmio-read':
        return this.mmioRead(t.gpa, t.size);
      case 'mmio-write':
        this.mmioWrite(t.gpa, t.size, t.value);
        return 0;
      case 'sysreg-read':
        return t.reg === 'ICC_IAR1_EL1' ? this.gic.ack() : 0;
      case 'sysreg-write':
        if (t.reg === 'ICC_EOIR1_EL1') this.gic.eoi(t.value);
        if (t.reg === 'ICC_IGRPEN1_EL1' && cpu === 0) this.gic.enabled = (t.value & 1) === 1;
        return 0;
      case 'wfi':
        this.waiting[cpu] = true;
        return 0;
    }
  }

  private inSmmu(gpa: number): boolean {
    return this.smmu !== undefined && gpa >= VIRT_SMMU && gpa < VIRT_SMMU + VIRT_SMMU_SIZE;
  }

  private barOffset(gpa: number, size: number): number {
    const a = this.dev.barAddress(0);
    const s = this.dev.barSize(0);
    return a > 0 && gpa >= a && gpa + size <= a + s ? gpa - a : -1;
  }

  private ecamTarget(gpa: number): number {
    if (gpa < VIRT_PCIE_ECAM || gpa >= VIRT_PCIE_ECAM + VIRT_PCIE_ECAM_SIZE) return -2;
    const off = gpa - VIRT_PCIE_ECAM;
    // Only 00:00.0 exists.
    return off >>> 12 === 0 ? off & 0xfff : -1;
  }

  mmioRead(gpa: number, size: number): number {
    if (this.inSmmu(gpa)) {
      const off = gpa - VIRT_SMMU;
      if (size === 8) {
        const [lo, hi] = this.smmu!.read64(off);
        return hi * 0x1_0000_0000 + lo;
      }
      return size === 4 ? this.smmu!.read32(off) : 0;
    }
    const reg = this.ecamTarget(gpa);
    if (reg >= 0) return size === 8 ? 0xffff_ffff : this.dev.configRead(reg, size as AccessSize);
    if (reg === -1) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    const bo = this.barOffset(gpa, size);
    if (bo >= 0 && size !== 8) return this.dev.barRead(0, bo, size as AccessSize);
    this.unhandled.push(`read ${hex(gpa)}/${size}`);
    return 0;
  }

  mmioWrite(gpa: number, size: number, value: number): void {
    if (this.inSmmu(gpa)) {
      const off = gpa - VIRT_SMMU;
      if (size === 8) this.smmu!.write64n(off, value);
      else if (size === 4) this.smmu!.write32(off, value);
      return;
    }
    const reg = this.ecamTarget(gpa);
    if (reg >= 0 && size !== 8) return this.dev.configWrite(reg, size as AccessSize, value);
    if (reg !== -2) return;
    const bo = this.barOffset(gpa, size);
    if (bo >= 0 && size !== 8) return this.dev.barWrite(0, bo, size as AccessSize, value);
    this.unhandled.push(`write ${hex(gpa)}/${size}`);
  }

  /**
   * Runs the vCPUs round-robin, one trap each per round, until every one waits in WFI with no
   * interrupt for it and no queued job, or `maxTraps` traps have been answered. Returns the traps run.
   */
  run(maxTraps = 1_000_000): number {
    let n = 0;
    while (n < maxTraps) {
      let ran = false;
      for (let c = 0; c < this.cpus && n < maxTraps; c++) {
        const irq = c === 0 && this.gic.hasPending;
        if (this.waiting[c] && !irq && this.os.pending(c) === 0) continue;
        this.waiting[c] = false;
        const p = this.os.program(c);
        if (irq && p.irqUnmasked) p.takeIrq();
        const t = p.resume(this.answers[c]!);
        this.answers[c] = this.handle(c, t);
        n++;
        ran = true;
      }
      if (!ran) break;
    }
    return n;
  }

  /** Runs until `job` is done (or nothing can run); returns the job. */
  runJob<T>(job: GuestJob<T>, maxTraps = 2_000_000): GuestJob<T> {
    for (let budget = maxTraps; !job.done && budget > 0; ) {
      const n = this.run(Math.min(budget, 10_000));
      if (n === 0) break;
      budget -= n;
    }
    return job;
  }

  /** Boots the guest and returns the boot job. */
  boot(): ReturnType<GuestOs['boot']> {
    return this.runJob(this.os.boot());
  }
}

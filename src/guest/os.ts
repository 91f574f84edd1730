/**
 * The guest OS: what runs on the vCPUs of vsva's `virt` machine (`src/arch/virt.ts`) and sees
 * only guest memory, MMIO and interrupts (`src/arch/guest-cpu.ts`). It reads the device tree the
 * VMM left at the start of RAM, runs a page allocator over RAM minus the reserved ranges, keeps a
 * job queue per vCPU, and its boot job enumerates PCI over ECAM, probes the SMMUv3 and attaches
 * every device behind it, and binds the PASID DMA engine's driver. SVA (`sva.ts`) and processes
 * (`process.ts`) sit on top.
 *
 * Execution. Each vCPU's program is a coroutine: a main loop that enables the GIC CPU interface
 * (ICC_PMR_EL1, ICC_IGRPEN1_EL1), then runs queued jobs one after the other and waits in WFI when
 * there are none. `takeIrq` makes the next `resume` enter the IRQ vector: acknowledge with
 * ICC_IAR1_EL1, run the handler registered for the INTID, ICC_EOIR1_EL1, then return to the
 * interrupted code, which receives the answer of the trap it was waiting on. A job that throws
 * (a `GuestError` from a driver, or a bug) is marked done with its error; nothing escapes `resume`.
 *
 * Decisions: IRQs stay masked until the CPU interface is enabled and inside handlers and
 * `irqsMasked` sections (the SMMU command-queue lock); a job runs to completion before the next
 * one starts on that vCPU (no preemption); an IRQ handler that throws is logged and still EOIed;
 * the log keeps the last 512 lines.
 */

import { GIC_INTID_SPURIOUS, type GuestCpuProgram, type GuestTrap } from '../arch/guest-cpu.ts';
import { VIRT_MEM } from '../arch/virt.ts';
import type { MemoryPort } from '../hw/memory.ts';
import { PageAllocator } from '../hw/page-alloc.ts';
import { DmaDomain } from './dma.ts';
import { type DtResult, freeRam, readDt } from './dt.ts';
import { Ida } from './ida.ts';
import { GuestError, type GuestStats, guestFail, type IrqHandler, type Kernel } from './kernel.ts';
import { Ecam, enablePasid, enumeratePci, type PciFunction } from './pci.ts';
import { isPdma, PdmaDriver } from './pdma.ts';
import { GuestProcess } from './process.ts';
import { SmmuDriver } from './smmuv3.ts';
import { Sva } from './sva.ts';
import { type Guest, sysregRead, sysregWrite } from './trap.ts';

export interface GuestJob<T> {
  readonly name: string;
  readonly cpu: number;
  done: boolean;
  result: T | undefined;
  error: string | undefined;
}

interface QueuedJob {
  readonly job: GuestJob<unknown>;
  readonly body: () => Guest<unknown>;
}

export interface BootReport {
  readonly devices: number;
  readonly smmu: boolean;
  readonly pdma: number;
}

const LOG_LINES = 512;
const STEP_GUARD = 10_000;

class Cpu implements GuestCpuProgram {
  readonly os: GuestOs;
  readonly index: number;
  readonly queue: QueuedJob[] = [];
  /** IRQ mask depth: > 0 while masked (boot, handlers, irqsMasked sections). */
  mask = 1;
  current: GuestJob<unknown> | undefined;
  private main: Guest<void>;
  private irq: Guest<void> | undefined;
  private entering = false;
  private saved = 0;

  constructor(os: GuestOs, index: number) {
    this.os = os;
    this.index = index;
    this.main = this.mainLoop();
  }

  get irqUnmasked(): boolean {
    return this.mask === 0 && this.irq === undefined && !this.entering;
  }

  takeIrq(): void {
    this.entering = true;
  }

  resume(answer: number): GuestTrap {
    this.os.currentCpu = this;
    let a = answer;
    if (this.entering) {
      this.entering = false;
      this.saved = a;
      this.mask++;
      this.irq = this.os.irqVector();
      a = 0;
    }
    for (let i = 0; i < STEP_GUARD; i++) {
      try {
        if (this.irq !== undefined) {
          const r = this.irq.next(a);
          if (!r.done) return r.value;
          this.irq = undefined;
          this.mask--;
          a = this.saved;
          continue;
        }
        const r = this.main.next(a);
        if (!r.done) return r.value;
        this.main = this.mainLoop();
        a = 0;
      } catch (e) {
        this.os.printk(`cpu${this.index}: ${e instanceof Error ? e.message : String(e)} escaped; restarting`);
        if (this.irq !== undefined) {
          this.irq = undefined;
          this.mask--;
          a = this.saved;
        } else {
          this.main = this.mainLoop();
          a = 0;
        }
      }
    }
    return { kind: 'wfi' };
  }

  private *mainLoop(): Guest<void> {
    this.mask = 1;
    yield* sysregWrite('ICC_PMR_EL1', 0xff);
    yield* sysregWrite('ICC_IGRPEN1_EL1', 1);
    this.mask = 0;
    for (;;) {
      const q = this.queue.shift();
      if (q === undefined) {
        yield { kind: 'wfi' };
        continue;
      }
      yield* this.runJob(q);
    }
  }

  private *runJob(q: QueuedJob): Guest<void> {
    const { job } = q;
    this.current = job;
    const depth = this.mask;
    try {
      job.result = yield* q.body();
      this.os.stats.jobs.done++;
    } catch (e) {
      job.error =
        e instanceof GuestError ? e.message : `internal error: ${e instanceof Error ? e.message : String(e)}`;
      this.os.stats.jobs.failed++;
      this.os.printk(`job ${job.name} failed: ${job.error}`);
    } finally {
      this.mask = depth;
      job.done = true;
      this.current = undefined;
    }
  }
}

export class GuestOs implements Kernel {
  readonly mem: MemoryPort;
  readonly dt: DtResult;
  readonly alloc: PageAllocator | undefined;
  readonly stats: GuestStats = {
    interrupts: {},
    spurious: 0,
    unhandledIrqs: 0,
    commands: 0,
    commandErrors: 0,
    events: 0,
    faults: 0,
    gerrors: 0,
    jobs: { submitted: 0, done: 0, failed: 0 },
  };
  /** The kernel log, most recent last. */
  readonly log: string[] = [];
  readonly asids = new Ida(1, 0xffff);
  readonly msi: Kernel['msi'];
  readonly sva: Sva;
  readonly processes: GuestProcess[] = [];
  devices: PciFunction[] = [];
  smmu: SmmuDriver | undefined;
  readonly pdma: PdmaDriver[] = [];
  ecam: Ecam | undefined;
  currentCpu: Cpu | undefined;
  private readonly cpus: Cpu[] = [];
  private readonly irqs = new Map<number, { name: string; handler: IrqHandler }>();
  private nextPid = 1;

  constructor(memory: MemoryPort) {
    this.mem = memory;
    this.dt = readDt(memory, VIRT_MEM);
    if (this.dt.ok) {
      const dt = this.dt.dt;
      const free = freeRam(dt).sort((a, b) => b.size - a.size)[0];
      // Decision: the allocator covers the largest free RAM range only.
      this.alloc = free ? new PageAllocator(memory, free.base, free.size) : undefined;
      const spis = new Ida(dt.msi.spiBase, dt.msi.spiBase + dt.msi.spiCount - 1);
      // Decision: virt's v2m SPI range (INTID 80-143) contains the SMMU's wired INTIDs (106-109);
      // those are never handed out as MSI vectors.
      for (const id of Object.values(dt.smmu?.irqs ?? {})) spis.alloc(id, id);
      this.msi = { doorbellGpa: dt.msi.reg.base, spis };
      this.printk(`dt: ${dt.cpus} cpus, ${dt.memory.length} memory ranges, smmu ${dt.smmu ? 'yes' : 'no'}`);
    } else {
      this.alloc = undefined;
      this.msi = undefined;
      this.printk(`dt: ${this.dt.reason}`);
    }
    this.sva = new Sva(this, () => this.smmu);
  }

  /** Appends to the kernel log (the last LOG_LINES lines are kept). */
  printk(msg: string): void {
    this.log.push(msg);
    if (this.log.length > LOG_LINES) this.log.splice(0, this.log.length - LOG_LINES);
  }

  /** The program vCPU `cpu` runs (created on first use). */
  program(cpu: number): GuestCpuProgram {
    return this.cpu(cpu);
  }

  private cpu(i: number): Cpu {
    while (this.cpus.length <= i) this.cpus.push(new Cpu(this, this.cpus.length));
    return this.cpus[i]!;
  }

  /** Queues a job on vCPU `cpu`. */
  submit<T>(cpu: number, name: string, job: () => Guest<T>): GuestJob<T> {
    const j: GuestJob<T> = { name, cpu, done: false, result: undefined, error: undefined };
    this.cpu(cpu).queue.push({ job: j as GuestJob<unknown>, body: job });
    this.stats.jobs.submitted++;
    return j;
  }

  /** Jobs queued or running on a vCPU. */
  pending(cpu: number): number {
    const c = this.cpus[cpu];
    return c === undefined ? 0 : c.queue.length + (c.current ? 1 : 0);
  }

  registerIrq(intid: number, name: string, handler: IrqHandler): void {
    this.irqs.set(intid, { name, handler });
  }

  *irqsMasked<T>(body: Guest<T>): Guest<T> {
    const cpu = this.currentCpu;
    if (cpu) cpu.mask++;
    try {
      return yield* body;
    } finally {
      if (cpu) cpu.mask--;
    }
  }

  /** The IRQ vector: IAR, handler, EOIR. */
  *irqVector(): Guest<void> {
    const intid = yield* sysregRead('ICC_IAR1_EL1');
    if (intid >= 1020 && intid <= GIC_INTID_SPURIOUS) {
      this.stats.spurious++;
      return;
    }
    this.stats.interrupts[intid] = (this.stats.interrupts[intid] ?? 0) + 1;
    const h = this.irqs.get(intid);
    if (h === undefined) this.stats.unhandledIrqs++;
    else {
      try {
        yield* h.handler();
      } catch (e) {
        this.printk(`irq ${intid} (${h.name}): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    yield* sysregWrite('ICC_EOIR1_EL1', intid);
  }

  /** Boot on vCPU 0: PCI enumeration, SMMU probe and attach, device drivers. */
  boot(): GuestJob<BootReport> {
    return this.submit(0, 'boot', () => this.bootJob());
  }

  private *bootJob(): Guest<BootReport> {
    if (!this.dt.ok) guestFail(`bad device tree: ${this.dt.reason}`);
    const dt = this.dt.dt;
    if (this.alloc === undefined) guestFail('no free RAM');
    this.ecam = new Ecam(dt.pcie.ecam.base);
    this.devices = yield* enumeratePci(this.ecam, dt.pcie.busRange[0], dt.pcie.mmio);
    for (const f of this.devices) {
      this.printk(
        `pci ${f.name}: [${f.vendorId.toString(16)}:${f.deviceId.toString(16)}] class ${f.classCode.toString(16)}${f.pasid ? ` PASID width ${f.pasid.width}` : ''}`,
      );
    }
    if (dt.smmu !== undefined) {
      this.smmu = new SmmuDriver(this, dt.smmu);
      this.smmu.faultSink = (m, ev) => this.sva.onEvent(m, ev);
      yield* this.smmu.probe();
    }
    const domains = new Map<number, DmaDomain>();
    if (this.smmu !== undefined && dt.pcie.iommu === 'smmu') {
      for (const f of this.devices) {
        const m = yield* this.smmu.attach(f);
        if (typeof m === 'number') {
          this.printk(`smmu: attaching ${f.name} failed (${m})`);
          continue;
        }
        domains.set(f.rid, m.domain);
        if (f.pasid !== undefined && m.ssidBits > 0 && !(yield* enablePasid(this.ecam, f))) {
          this.printk(`pci ${f.name}: PASID did not enable`);
        }
      }
    }
    for (const f of this.devices.filter(isPdma)) {
      const d =
        domains.get(f.rid) ?? (this.smmu && dt.pcie.iommu === 'smmu' ? undefined : DmaDomain.identity());
      if (d === undefined) continue;
      const drv = new PdmaDriver(this, f, this.ecam, d);
      yield* drv.probe();
      this.pdma.push(drv);
    }
    return { devices: this.devices.length, smmu: this.smmu !== undefined, pdma: this.pdma.length };
  }

  /** A new process with its own address space and ASID. */
  spawn(name: string): GuestProcess {
    const asid = this.asids.alloc() ?? 0;
    const p = new GuestProcess(this, this.nextPid++, name, asid);
    this.processes.push(p);
    return p;
  }
}

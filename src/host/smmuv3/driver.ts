/**
 * Linux's arm-smmu-v3 driver (drivers/iommu/arm/arm-smmu-v3, v5.12 with the nested-stage series
 * of seed-spec §1.3-§1.4), driving the SMMUv3 model only through its registers and in-memory
 * structures: the ID-register probe, the stream table (linear or 2-level), the command and event
 * queues, the reset sequence with CR0/CR0ACK handshakes, the IRQ handlers (event queue, GERROR),
 * per-domain stage choice, stage-1 CDs and stage-2 tables built with the io-pgtable-like builder,
 * break-before-make STE installation, TLB invalidation on unmap, and the nested-stage callbacks
 * (attach/detach_pasid_table, cache_invalidate, bind/unbind_guest_msi).
 *
 * Use (the platform's side of it):
 *
 *     const smmu = new ArmSmmuV3('smmu0', hw, mem, alloc, core, { disableBypass: true });
 *     const rc = smmu.probe();          // 0, or -ENXIO / -ENOMEM / -ETIMEDOUT / -EBUSY
 *     // register `smmu` (an IommuOps) with the iommu core; devices whose fwspec names 'smmu0'
 *     // go through smmu.probeDevice(dev), then domains are attached with smmu.attachDev(...).
 *
 * `hw` is used for MMIO and for the platform's wiring of its interrupt lines (`hw.hooks.irq`) to
 * the driver's handlers; `alloc` hands out the host memory (in `mem`) for the driver's tables and
 * queues. IRQ handlers run synchronously when the hardware raises the line (hard IRQ and threaded
 * handler at once); the event handler drains the whole queue, since the SMMU signals only on
 * empty → non-empty.
 *
 * Decisions (each is also noted where it is taken):
 * - CR2 = RECINVSID only: E2H stays clear (so every STE uses STRW = NS-EL1) and PTM is not set
 *   (no broadcast TLB maintenance is modelled; the model's CR2 keeps only E2H and RECINVSID).
 * - Wired interrupts: the *_IRQ_CFG0 MSI addresses are left 0.
 * - A domain belongs to the driver instance that allocated it; it is bound (`smmu`) at its first
 *   attach, and attaching it to a device of another instance fails with -EINVAL (Linux v5.12
 *   returned -ENXIO, later kernels -EINVAL).
 * - attachDev finalises the domain before it detaches the device from its old domain, so a
 *   failed attach leaves the device where it was (Linux detaches first).
 * - VMIDs come from [1, 2^VMIDbits): VMID 0 is what stage-1 and bypass STEs carry (as Linux).
 *   ASIDs come from [1, 2^ASIDbits). Both per instance, lowest free first.
 * - Break-before-make: an STE is "live" when V = 1 and Config lets traffic through (0b1xx); only
 *   a live STE that changes is first replaced by an abort STE (dword 0) and invalidated. An STE
 *   that would not change is not rewritten.
 * - Unmap invalidates at once (no gathering): iotlbSync has nothing left to do.
 * - Nested domains (stage 2 under a guest's stage 1): an unmap of the host's stage 2 issues
 *   TLBI_S2_IPA over the range (stage-2-only entries) and TLBI_NH_ALL(VMID) (combined entries are
 *   tagged by input address, not IPA), as later Linux does for nesting parents.
 */

import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_RECINVSID,
  GBPA_ABORT,
  GBPA_UPDATE,
  GERROR_CMDQ_ERR,
  GERROR_FIELDS,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  Q_OVFLG,
  SMMU_AIDR,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR0ACK,
  SMMU_CR1,
  SMMU_CR2,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_IRQ_CFG0,
  SMMU_EVENTQ_PROD,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_GERROR_IRQ_CFG0,
  SMMU_GERRORN,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_IIDR,
  SMMU_IRQ_CTRL,
  SMMU_IRQ_CTRLACK,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import { S1DSS_SSID0 } from '../../arch/smmuv3/ste.ts';
import { effectiveOaBits, type Granule } from '../../arch/vmsa.ts';
import type { PhysMem } from '../../hw/memory.ts';
import type { PageAllocator } from '../../hw/page-alloc.ts';
import { decodeEvent, type SmmuEvent } from '../../hw/smmuv3/event-record.ts';
import { qIndex, qMask, qNext } from '../../hw/smmuv3/queue.ts';
import type { Smmu, SmmuIrq } from '../../hw/smmuv3/smmu.ts';
import { PageTable, S1_MAIR } from '../../hw/vmsa/pgtable.ts';
import {
  EBUSY,
  EEXIST,
  EINVAL,
  EIO,
  ENODEV,
  ENOMEM,
  ENOSPC,
  ENXIO,
  EPERM,
  ERANGE,
  ETIMEDOUT,
} from '../../uapi/errno.ts';
import type { IommuCacheInvalidateInfo, IommuPasidTableConfig } from '../../uapi/iommu.ts';
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_WRITE,
  type IommuCap,
  type IommuCoreServices,
  type IommuDevice,
  type IommuDomain,
  type IommuOps,
  type IommuResvRegion,
} from '../iommu/types.ts';
import { type CmdqStats, CommandQueue } from './cmdq.ts';
import {
  cmdCfgiAll,
  cmdCfgiSte,
  cmdCfgiSteRange,
  cmdTlbiEl2All,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
  cmdTlbiS2Ipa,
  cmdTlbiS12Vmall,
  planTlbiRange,
  ttlFor,
} from './commands.ts';
import {
  ArmSmmuV3Domain,
  type ArmSmmuV3Master,
  chooseGranule,
  type DomainStage,
  IdAllocator,
  protFromIommu,
} from './domain.ts';
import { eventToFault } from './faults.ts';
import {
  type ArmSmmuV3Features,
  bitmapToSizes,
  decodeFeatures,
  STRTAB_SPLIT,
  sizesToBitmap,
} from './features.ts';
import { type NestedContext, planAttachPasidTable, planCacheInvalidate } from './nested.ts';
import { buildCd, buildSte, type SteDesc, steLive } from './ste.ts';
import { StreamTable } from './strtab.ts';

export interface ArmSmmuV3Options {
  /** Streams of no domain abort (Config = ABORT) when true (default), else bypass. */
  readonly disableBypass?: boolean;
  /**
   * The nested series as posted: attach_pasid_table refuses pasid_bits != 0 (one CD, S1DSS =
   * SSID0) and cache type PASID is -ENOENT. Default false: full PASID support (see nested.ts).
   */
  readonly asPostedSingleCd?: boolean;
  /** Upper bounds (log2 entries) on the queue sizes; the hardware's IDR1 sizes cap them too. */
  readonly cmdqLog2?: number;
  readonly eventqLog2?: number;
  /** cache_invalidate DOMAIN granularity: 'nsnh-all' (seed-spec §1.4, default) or 'nh-all'. */
  readonly domainInvalidation?: 'nsnh-all' | 'nh-all';
}

/**
 * Decision: queues default to at most 2^10 entries (Linux takes what IDR1 allows, up to its own
 * 2^18 / 2^17 caps); vsva's model is synchronous, so a queue never holds more than one batch.
 */
const DEFAULT_QUEUE_LOG2 = 10;
/** Reads of an ACK register (or GBPA.Update) before a handshake fails with -ETIMEDOUT. */
const ACK_POLLS = 8;
/** CR1: queues and tables inner/outer write-back, inner shareable (Linux's values). */
const CR1_VALUE = (1 << 0) | (1 << 2) | (3 << 4) | (1 << 6) | (1 << 8) | (3 << 10);
/** Linux's MSI_IOVA_BASE / MSI_IOVA_LENGTH: the software-managed MSI window. */
export const MSI_IOVA_BASE = 0x800_0000;
export const MSI_IOVA_LENGTH = 0x10_0000;
/** Lines kept in the driver's log (the oldest are dropped). */
const LOG_LINES = 500;
/** Rounds of "drain, re-read PROD" per event interrupt. */
const EVTQ_ROUNDS = 8;
/** Passes of the GERROR handler over errors raised while it runs. */
const GERROR_PASSES = 64;

export interface ArmSmmuV3Stats {
  /** STE writes that changed memory, and break-before-make abort steps among them. */
  steWrites: number;
  steBreaks: number;
  /** Event records consumed, by event name. */
  events: number;
  readonly eventsByName: Record<string, number>;
  /** Faults the core accepted, faults the core refused (no handler), events not reported. */
  faultsReported: number;
  faultsRejected: number;
  eventsUnreported: number;
  /** Events whose StreamID belongs to no probed device. */
  eventsUnknownSid: number;
  eventqOverflows: number;
  /** Global errors seen, by GERROR field name. */
  readonly gerrors: Record<string, number>;
  readonly irqs: Record<SmmuIrq, number>;
}

interface EventQueue {
  readonly base: number;
  readonly log2: number;
}

export class ArmSmmuV3 implements IommuOps {
  readonly name: string;
  readonly hw: Smmu;
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly core: IommuCoreServices;
  readonly disableBypass: boolean;
  readonly asPostedSingleCd: boolean;
  readonly domainInvalidation: 'nsnh-all' | 'nh-all';
  /** The probed features; undefined before a successful probe. */
  features: ArmSmmuV3Features | undefined = undefined;
  readonly stats: ArmSmmuV3Stats = {
    steWrites: 0,
    steBreaks: 0,
    events: 0,
    eventsByName: {},
    faultsReported: 0,
    faultsRejected: 0,
    eventsUnreported: 0,
    eventsUnknownSid: 0,
    eventqOverflows: 0,
    gerrors: {},
    irqs: { eventq: 0, gerror: 0, cmd_sync: 0, sev: 0 },
  };
  /** Messages the driver would print (dev_err/dev_info), oldest first. */
  readonly log: string[] = [];

  private readonly opts: ArmSmmuV3Options;
  private strtab: StreamTable | undefined = undefined;
  private cmdq: CommandQueue | undefined = undefined;
  private evtq: EventQueue | undefined = undefined;
  private asids: IdAllocator | undefined = undefined;
  private vmids: IdAllocator | undefined = undefined;
  private readonly masters = new Map<IommuDevice, ArmSmmuV3Master>();
  private readonly bySid = new Map<number, ArmSmmuV3Master>();
  private irqWired = false;
  private inGerror = false;
  private gerrorPending = false;

  constructor(
    name: string,
    hw: Smmu,
    mem: PhysMem,
    alloc: PageAllocator,
    core: IommuCoreServices,
    opts: ArmSmmuV3Options = {},
  ) {
    this.name = name;
    this.hw = hw;
    this.mem = mem;
    this.alloc = alloc;
    this.core = core;
    this.opts = opts;
    this.disableBypass = opts.disableBypass ?? true;
    this.asPostedSingleCd = opts.asPostedSingleCd ?? false;
    this.domainInvalidation = opts.domainInvalidation ?? 'nsnh-all';
  }

  /** Page sizes the SMMU can map (0 before probe). */
  get pgsizeBitmap(): number {
    return this.features?.pgsizeBitmap ?? 0;
  }

  private logMsg(msg: string): void {
    this.log.push(`${this.name}: ${msg}`);
    if (this.log.length > LOG_LINES) this.log.shift();
  }

  // =================================================================== probe and reset

  /**
   * arm_smmu_device_probe: reads the ID registers, allocates the stream table and queues, wires
   * the interrupts and resets the SMMU. 0, or -EBUSY (already probed), -ENXIO (refused by the
   * feature probe, see features.ts), -ENOMEM (no memory for the structures), -ETIMEDOUT (an
   * enable was not acknowledged, or the reset's commands were not consumed).
   */
  probe(): number {
    if (this.features !== undefined) return -EBUSY;
    const r = decodeFeatures({
      idr0: this.hw.read32(SMMU_IDR0),
      idr1: this.hw.read32(SMMU_IDR1),
      idr3: this.hw.read32(SMMU_IDR3),
      idr5: this.hw.read32(SMMU_IDR5),
      iidr: this.hw.read32(SMMU_IIDR),
      aidr: this.hw.read32(SMMU_AIDR),
    });
    if (!r.ok) {
      this.logMsg(`probe refused: ${r.reason}`);
      return r.errno;
    }
    const f = r.features;
    const rc = this.initStructures(f);
    if (rc !== 0) return rc;
    this.wireIrqs();
    const reset = this.reset(f);
    if (reset !== 0) {
      this.logMsg(`reset failed (${reset})`);
      this.releaseStructures();
      return reset;
    }
    this.features = f;
    this.asids = new IdAllocator(1, 2 ** f.asidBits - 1);
    this.vmids = new IdAllocator(1, Math.max(0, 2 ** f.vmidBits - 1));
    this.logMsg(
      `SMMUv${f.version}: ${f.transS1 ? 'S1 ' : ''}${f.transS2 ? 'S2 ' : ''}` +
        `SID ${f.sidBits} bits (${this.strtab!.twoLevel ? '2-level' : 'linear'} stream table), ` +
        `SSID ${f.ssidBits} bits, OAS ${f.oasBits}, ASID${f.asidBits}, VMID${f.vmidBits}` +
        `${f.rangeInv ? ', RIL' : ''}`,
    );
    return 0;
  }

  /** The unattached policy's STE (arm_smmu_init_bypass_stes). */
  private unattachedSte(f: ArmSmmuV3Features): Uint32Array {
    return buildSte(
      this.disableBypass ? { kind: 'abort' } : { kind: 'bypass', shcfgIncoming: f.attrTypesOvr },
    );
  }

  /** arm_smmu_init_structures: queues and stream table. */
  private initStructures(f: ArmSmmuV3Features): number {
    const cmdqLog2 = Math.min(f.cmdqShift, this.opts.cmdqLog2 ?? DEFAULT_QUEUE_LOG2);
    const evtqLog2 = Math.min(f.evtqShift, this.opts.eventqLog2 ?? DEFAULT_QUEUE_LOG2);
    if (cmdqLog2 < 1 || evtqLog2 < 1) {
      this.logMsg('queue size options must allow at least 2 entries');
      return -ENXIO;
    }
    const cmdqBase = this.alloc.alloc(16 * 2 ** cmdqLog2);
    const evtqBase = this.alloc.alloc(32 * 2 ** evtqLog2);
    const strtab = StreamTable.create(
      this.mem,
      this.alloc,
      f.sidBits,
      f.twoLevelStrtab,
      this.unattachedSte(f),
    );
    if (cmdqBase === undefined || evtqBase === undefined || strtab === undefined) {
      if (cmdqBase !== undefined) this.alloc.free(cmdqBase, 16 * 2 ** cmdqLog2);
      if (evtqBase !== undefined) this.alloc.free(evtqBase, 32 * 2 ** evtqLog2);
      strtab?.destroy();
      this.logMsg('no memory for the queues and stream table');
      return -ENOMEM;
    }
    if (strtab.log2Size < f.sidBits) {
      this.logMsg(`2-level stream table only covers ${strtab.log2Size}/${f.sidBits} bits of StreamID`);
    }
    this.strtab = strtab;
    this.cmdq = new CommandQueue(
      this.hw,
      this.mem,
      cmdqBase,
      cmdqLog2,
      () => this.handleGerror(),
      (m) => this.logMsg(m),
    );
    this.evtq = { base: evtqBase, log2: evtqLog2 };
    return 0;
  }

  private releaseStructures(): void {
    this.strtab?.destroy();
    if (this.cmdq !== undefined) this.alloc.free(this.cmdq.base, 16 * this.cmdq.size);
    if (this.evtq !== undefined) this.alloc.free(this.evtq.base, 32 * 2 ** this.evtq.log2);
    this.strtab = undefined;
    this.cmdq = undefined;
    this.evtq = undefined;
  }

  /** The platform's wiring of the SMMU's interrupt lines to the driver's handlers (once). */
  private wireIrqs(): void {
    if (this.irqWired) return;
    this.irqWired = true;
    const hooks = this.hw.hooks;
    const prev = hooks.irq;
    hooks.irq = (line) => {
      prev?.(line);
      this.handleIrq(line);
    };
  }

  /** Writes `value` to `reg` and waits for `ack` to read it back (arm_smmu_write_reg_sync). */
  private writeAck(reg: number, ack: number, value: number): number {
    this.hw.write32(reg, value);
    for (let i = 0; i < ACK_POLLS; i++) if (this.hw.read32(ack) >>> 0 === value >>> 0) return 0;
    this.logMsg(`register 0x${reg.toString(16)} not acknowledged (wanted 0x${value.toString(16)})`);
    return -ETIMEDOUT;
  }

  /** arm_smmu_update_gbpa: sets/clears GBPA bits with the Update handshake. */
  private updateGbpa(set: number, clr: number): number {
    const v = ((this.hw.read32(SMMU_GBPA) & ~clr) | set) >>> 0;
    this.hw.write32(SMMU_GBPA, (v | GBPA_UPDATE) >>> 0);
    for (let i = 0; i < ACK_POLLS; i++) if ((this.hw.read32(SMMU_GBPA) & GBPA_UPDATE) === 0) return 0;
    this.logMsg('GBPA update not completed');
    return -ETIMEDOUT;
  }

  /** arm_smmu_device_reset. */
  private reset(f: ArmSmmuV3Features): number {
    const hw = this.hw;
    const strtab = this.strtab!;
    const cmdq = this.cmdq!;
    const evtq = this.evtq!;
    if ((hw.read32(SMMU_CR0) & CR0_SMMUEN) !== 0) {
      this.logMsg('SMMU currently enabled! Resetting...');
      const rc = this.updateGbpa(GBPA_ABORT, 0);
      if (rc !== 0) return rc;
    }
    let rc = this.writeAck(SMMU_CR0, SMMU_CR0ACK, 0);
    if (rc !== 0) return rc;
    hw.write32(SMMU_CR1, CR1_VALUE);
    // Decision: E2H clear (STRW = NS-EL1 everywhere), no PTM (see the file comment).
    hw.write32(SMMU_CR2, CR2_RECINVSID);
    hw.write64(SMMU_STRTAB_BASE, ...strtab.baseRegister());
    hw.write32(SMMU_STRTAB_BASE_CFG, strtab.cfgRegister());
    hw.write64(SMMU_CMDQ_BASE, ...cmdq.baseRegister());
    hw.write32(SMMU_CMDQ_PROD, 0);
    hw.write32(SMMU_CMDQ_CONS, 0);
    cmdq.reset();
    let enables = CR0_CMDQEN;
    rc = this.writeAck(SMMU_CR0, SMMU_CR0ACK, enables);
    if (rc !== 0) return rc;
    // Invalidate any cached configuration and TLB entries left from before.
    rc = cmdq.submit([cmdCfgiAll()]);
    if (rc !== 0) return rc;
    rc = cmdq.submit(f.hyp ? [cmdTlbiEl2All(), cmdTlbiNsnhAll()] : [cmdTlbiNsnhAll()]);
    if (rc !== 0) return rc;
    hw.write64(
      SMMU_EVENTQ_BASE,
      (evtq.base % 2 ** 32) + evtq.log2,
      Math.floor(evtq.base / 2 ** 32) | (1 << 30),
    );
    hw.write32(SMMU_EVENTQ_PROD, 0);
    hw.write32(SMMU_EVENTQ_CONS, 0);
    enables |= CR0_EVENTQEN;
    rc = this.writeAck(SMMU_CR0, SMMU_CR0ACK, enables);
    if (rc !== 0) return rc;
    rc = this.writeAck(SMMU_IRQ_CTRL, SMMU_IRQ_CTRLACK, 0);
    if (rc !== 0) return rc;
    if (f.msi) {
      // Decision: wired interrupts; clear the MSI addresses, as Linux does before choosing.
      hw.write64(SMMU_GERROR_IRQ_CFG0, 0, 0);
      hw.write64(SMMU_EVENTQ_IRQ_CFG0, 0, 0);
    }
    rc = this.writeAck(SMMU_IRQ_CTRL, SMMU_IRQ_CTRLACK, IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN);
    if (rc !== 0) return rc;
    enables |= CR0_SMMUEN;
    return this.writeAck(SMMU_CR0, SMMU_CR0ACK, enables);
  }

  // =================================================================== interrupts

  /**
   * The interrupt handler of one line (probe wires the SMMU's lines to it). Public so that a
   * platform can also deliver a line itself, e.g. to recover from an edge it did not wire.
   */
  handleIrq(line: SmmuIrq): void {
    this.stats.irqs[line]++;
    if (line === 'eventq') this.drainEvents();
    else if (line === 'gerror') this.handleGerror();
  }

  /**
   * arm_smmu_gerror_handler: logs every active error, handles a command error (cmdq.ts), and
   * acknowledges by writing GERROR back to GERRORN. Errors raised while it runs (the ack restarts
   * the command queue, which may stop again) are handled in further passes, not recursively.
   */
  private handleGerror(): void {
    if (this.inGerror) {
      this.gerrorPending = true;
      return;
    }
    this.inGerror = true;
    for (let pass = 0; pass < GERROR_PASSES; pass++) {
      this.gerrorPending = false;
      const gerror = this.hw.read32(SMMU_GERROR);
      const gerrorn = this.hw.read32(SMMU_GERRORN);
      const active = (gerror ^ gerrorn) & 0x1fd;
      if (active === 0) break;
      for (const fd of GERROR_FIELDS) {
        if (((active >>> fd.lsb) & 1) === 0) continue;
        this.stats.gerrors[fd.name] = (this.stats.gerrors[fd.name] ?? 0) + 1;
        this.logMsg(`unexpected global error reported (${fd.name})`);
      }
      let ack = gerror;
      if ((active & GERROR_CMDQ_ERR) !== 0 && this.cmdq !== undefined && !this.cmdq.skipError()) {
        // Leave CMDQ_ERR active: the queue stays halted.
        ack = ((gerror & ~GERROR_CMDQ_ERR) | (gerrorn & GERROR_CMDQ_ERR)) >>> 0;
      }
      this.hw.write32(SMMU_GERRORN, ack);
      if (!this.gerrorPending) break;
    }
    this.inGerror = false;
  }

  /**
   * arm_smmu_evtq_thread: consumes every record from CONS to PROD (writing CONS after each), then
   * re-reads PROD in case more arrived; an overflow (PROD.OVFLG != CONS.OVACKFLG) is counted and
   * acknowledged with the new read index.
   */
  private drainEvents(): void {
    const q = this.evtq;
    if (q === undefined) return;
    const m = qMask(q.log2);
    for (let round = 0; round < EVTQ_ROUNDS; round++) {
      const prod = this.hw.read32(SMMU_EVENTQ_PROD);
      let cons = this.hw.read32(SMMU_EVENTQ_CONS);
      if (((prod ^ cons) & Q_OVFLG) !== 0) {
        this.stats.eventqOverflows++;
        this.logMsg('EVTQ overflow detected -- events lost');
      }
      const empty = (prod & m) === (cons & m);
      for (let n = 0; n < 2 ** q.log2 && (cons & m) !== (prod & m); n++) {
        const at = q.base + 32 * qIndex(cons, q.log2);
        const words = Uint32Array.from({ length: 8 }, (_, i) => this.mem.read32(at + 4 * i) >>> 0);
        cons = (qNext(cons & m, q.log2) | (cons & Q_OVFLG)) >>> 0;
        this.hw.write32(SMMU_EVENTQ_CONS, cons);
        this.handleEvent(decodeEvent(words));
      }
      this.hw.write32(SMMU_EVENTQ_CONS, ((cons & m) | (prod & Q_OVFLG)) >>> 0);
      if (empty) return;
    }
  }

  /** arm_smmu_handle_evt: the master by StreamID, the fault mapping, iommu_report_device_fault. */
  private handleEvent(e: SmmuEvent): void {
    this.stats.events++;
    this.stats.eventsByName[e.name] = (this.stats.eventsByName[e.name] ?? 0) + 1;
    const master = this.bySid.get(e.streamId);
    if (master === undefined) {
      this.stats.eventsUnknownSid++;
      this.logMsg(`event ${e.name} from unknown StreamID ${e.streamId}`);
      return;
    }
    const fault = eventToFault(e);
    if (fault === undefined) {
      this.stats.eventsUnreported++;
      this.logMsg(`event ${e.name} (StreamID ${e.streamId}) not reported`);
      return;
    }
    const rc = this.core.reportDeviceFault(master.dev, fault);
    if (rc === 0) this.stats.faultsReported++;
    else {
      this.stats.faultsRejected++;
      this.logMsg(`event ${e.name} (StreamID ${e.streamId}): fault not handled (${rc})`);
    }
  }

  // =================================================================== commands and STEs

  /**
   * Issues commands followed by a CMD_SYNC and waits for them (arm_smmu_cmdq_issue_cmdlist with
   * sync): 0, -EIO when a command was refused and skipped, -ETIMEDOUT when the queue is stuck,
   * -ENODEV before probe. Also the entry point tests use to put arbitrary commands on the queue.
   */
  submitCommands(cmds: readonly Uint32Array[], sync = true): number {
    if (this.cmdq === undefined) return -ENODEV;
    return this.cmdq.submit(cmds, sync);
  }

  /** Command statistics: commands written by name, batches, syncs, errors. */
  get cmdqStats(): CmdqStats | undefined {
    return this.cmdq?.stats;
  }

  /** The STE a master's streams should hold now (arm_smmu_write_strtab_ent's decision). */
  private steDescFor(master: ArmSmmuV3Master): SteDesc {
    const f = this.features!;
    const d = master.domain;
    if (d === undefined)
      return this.disableBypass ? { kind: 'abort' } : { kind: 'bypass', shcfgIncoming: f.attrTypesOvr };
    if (d.abort) return { kind: 'abort' };
    const s1 = d.s1Cfg.set
      ? { ctxPtr: d.s1Cfg.cdtab, cdMax: d.s1Cfg.cdMax, fmt: d.s1Cfg.fmt, dss: d.s1Cfg.dss }
      : undefined;
    const t = d.pgtable;
    const s2 =
      d.s2Cfg.set && t !== undefined
        ? {
            vmid: d.s2Cfg.vmid,
            granule: t.granule,
            iasBits: t.geometry.iasBits,
            oasBits: t.geometry.oasBits,
            sl0: t.sl0,
            ttb: t.root,
          }
        : undefined;
    if (s1 === undefined && s2 === undefined) return { kind: 'bypass', shcfgIncoming: f.attrTypesOvr };
    return { kind: 'translate', ...(s1 ? { s1 } : {}), ...(s2 ? { s2 } : {}) };
  }

  /** Writes the STE of every StreamID of `master` (arm_smmu_install_ste_for_dev). */
  private installMaster(master: ArmSmmuV3Master): void {
    const words = buildSte(this.steDescFor(master));
    for (const sid of master.sids) this.installSte(sid, words);
  }

  /**
   * Installs one STE, break-before-make (seed-spec §1.3): when the STE in memory is live and
   * differs, dword 0 first becomes V | Config ABORT and is invalidated (CFGI_STE + SYNC); then
   * dwords 1..7 are written, dword 0 last, and CFGI_STE + SYNC makes the SMMU fetch it.
   */
  private installSte(sid: number, next: Uint32Array): void {
    const strtab = this.strtab!;
    const cur = strtab.read(sid);
    if (cur.every((w, i) => w === next[i])) return;
    this.stats.steWrites++;
    if (steLive(cur)) {
      this.stats.steBreaks++;
      strtab.writeDword(sid, 0, buildSte({ kind: 'abort' }));
      this.submitCommands([cmdCfgiSte(sid)]);
    }
    for (let dw = 1; dw < 8; dw++) strtab.writeDword(sid, dw, next);
    strtab.writeDword(sid, 0, next);
    this.submitCommands([cmdCfgiSte(sid)]);
  }

  /** The 16 words of the STE of `sid` in memory (undefined when it has none). */
  steWords(sid: number): Uint32Array | undefined {
    const t = this.strtab;
    return t?.present(sid) ? t.read(sid) : undefined;
  }

  /** The stream table in use (for reports and tests). */
  get streamTable(): StreamTable | undefined {
    return this.strtab;
  }

  // =================================================================== devices

  /**
   * arm_smmu_probe_device: 0; -ENODEV when the device is not translated by this instance (or the
   * SMMU is not probed); -EBUSY when already probed; -ERANGE when a StreamID is beyond the stream
   * table; -EEXIST when a StreamID belongs to another device; -ENOMEM when an L2 stream table
   * cannot be allocated (L2 tables allocated before the failure stay: they hold only unattached
   * STEs). Duplicate StreamIDs of one device are folded, as Linux does for bridged PCI aliases.
   */
  probeDevice(dev: IommuDevice): number {
    if (dev.iommuName !== this.name) return -ENODEV;
    const f = this.features;
    const strtab = this.strtab;
    if (f === undefined || strtab === undefined) return -ENODEV;
    if (this.masters.has(dev)) return -EBUSY;
    const sids = [...new Set(dev.ids)];
    for (const sid of sids) if (!strtab.covers(sid)) return -ERANGE;
    for (const sid of sids) if (this.bySid.has(sid)) return -EEXIST;
    for (const sid of sids) {
      const r = strtab.ensure(sid);
      if (r === 'nomem') return -ENOMEM;
      // A new L1 descriptor: drop any L1STD the SMMU cached for the span (Range covers 2^SPLIT).
      if (r === 'new') this.submitCommands([cmdCfgiSteRange(sid, STRTAB_SPLIT - 1)]);
    }
    const master: ArmSmmuV3Master = {
      dev,
      sids,
      ssidBits: Math.min(Math.max(0, dev.pasidBits), f.ssidBits),
      domain: undefined,
    };
    this.masters.set(dev, master);
    for (const sid of sids) this.bySid.set(sid, master);
    dev.driverData = master;
    return 0;
  }

  /** arm_smmu_release_device: detaches (unattached STEs) and forgets the device. */
  releaseDevice(dev: IommuDevice): void {
    const master = this.masters.get(dev);
    if (master === undefined) return;
    if (master.domain !== undefined) {
      master.domain.masters.delete(master);
      master.domain = undefined;
      this.installMaster(master);
    }
    this.masters.delete(dev);
    for (const sid of master.sids) this.bySid.delete(sid);
    dev.driverData = undefined;
  }

  /** The driver's record of a probed device. */
  masterOf(dev: IommuDevice): ArmSmmuV3Master | undefined {
    return this.masters.get(dev);
  }

  /** The domain a device is attached to. */
  domainOf(dev: IommuDevice): ArmSmmuV3Domain | undefined {
    return this.masters.get(dev)?.domain;
  }

  getResvRegions(_dev: IommuDevice): IommuResvRegion[] {
    return [
      {
        start: MSI_IOVA_BASE,
        length: MSI_IOVA_LENGTH,
        prot: IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO,
        type: 'sw-msi',
      },
    ];
  }

  capable(cap: IommuCap): boolean {
    if (cap === 'cache-coherency') return this.features?.coherent ?? false;
    // NOEXEC: descriptors carry XN; INTR_REMAP: MSIs are memory writes the SMMU translates.
    return true;
  }

  // =================================================================== domains

  /** arm_smmu_domain_alloc: BLOCKED, IDENTITY, UNMANAGED and DMA; undefined for other types or before probe. */
  domainAlloc(type: number): IommuDomain | undefined {
    const f = this.features;
    if (f === undefined) return undefined;
    if (
      type !== IOMMU_DOMAIN_BLOCKED &&
      type !== IOMMU_DOMAIN_IDENTITY &&
      type !== IOMMU_DOMAIN_UNMANAGED &&
      type !== IOMMU_DOMAIN_DMA
    ) {
      return undefined;
    }
    // Until finalise, a paging domain offers the sizes of the granule it will use.
    const g = chooseGranule(f.granules);
    const sizes = g === undefined ? [] : bitmapToSizes(f.pgsizeBitmap).filter((s) => (s - g) % (g - 3) === 0);
    return new ArmSmmuV3Domain(type, this, sizesToBitmap(sizes), {
      apertureStart: 0,
      apertureEnd: 0,
      forceAperture: false,
    });
  }

  /**
   * arm_smmu_domain_free: detaches any device still attached (unattached STEs), invalidates the
   * domain's TLB entries, then frees its tables, CD table, ASID and VMID.
   */
  domainFree(domain: IommuDomain): void {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || domain.freed) return;
    for (const m of [...domain.masters]) {
      m.domain = undefined;
      domain.masters.delete(m);
      this.installMaster(m);
    }
    if (domain.smmu === this) this.flushIotlbAll(domain);
    domain.pgtable?.destroy();
    domain.pgtable = undefined;
    if (domain.hostCdtab !== undefined) this.alloc.free(domain.hostCdtab.addr, domain.hostCdtab.bytes);
    domain.hostCdtab = undefined;
    if (domain.stage === 's1' && domain.smmu === this) this.asids?.free(domain.asid);
    if ((domain.stage === 's2' || domain.stage === 'nested') && domain.s2Cfg.set)
      this.vmids?.free(domain.s2Cfg.vmid);
    domain.s1Cfg.set = false;
    domain.s2Cfg.set = false;
    domain.freed = true;
  }

  /**
   * arm_smmu_enable_nesting: 0 (the domain will be finalised as NESTED); -EPERM once the domain is
   * bound to an SMMU; -EINVAL for a domain of another driver instance or a non-paging domain
   * (Decision: BLOCKED and IDENTITY domains have no stage 2 to nest under).
   */
  enableNesting(domain: IommuDomain): number {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || domain.freed) return -EINVAL;
    if (domain.smmu !== undefined) return -EPERM;
    if (!domain.isPaging) return -EINVAL;
    domain.stage = 'nested';
    return 0;
  }

  /** The stage a paging domain gets at finalise (Linux's rules), or an errno. */
  private stageFor(domain: ArmSmmuV3Domain, f: ArmSmmuV3Features): DomainStage | number {
    if (domain.type === IOMMU_DOMAIN_IDENTITY) return 'bypass';
    if (domain.type === IOMMU_DOMAIN_BLOCKED) return 'abort';
    if (domain.stage === 'nested') return f.transS1 && f.transS2 ? 'nested' : -EINVAL;
    return f.transS1 ? 's1' : 's2';
  }

  /**
   * arm_smmu_domain_finalise: chooses the stage, builds the page table (stage 1: 48-bit input,
   * output = IAS; stage 2 / nested: input = IAS, output = OAS; both limited to 48 bits except with
   * the 64K granule), allocates the ASID and host CD (stage 1) or the VMID (stage 2 / nested), and
   * binds the domain. Nothing changes on failure: -EINVAL (NESTED without both stages), -ENOSPC (no
   * ASID/VMID), -ENOMEM.
   */
  private finalise(domain: ArmSmmuV3Domain): number {
    const f = this.features!;
    const stage = this.stageFor(domain, f);
    if (typeof stage === 'number') return stage;
    if (stage === 'bypass' || stage === 'abort') {
      domain.stage = stage;
      domain.smmu = this;
      return 0;
    }
    const g = chooseGranule(f.granules) as Granule;
    const s1 = stage === 's1';
    const iasBits = s1 ? 48 : effectiveOaBits(g, f.iasBits);
    const oasBits = effectiveOaBits(g, s1 ? f.iasBits : f.oasBits);
    const pt = PageTable.create(this.alloc, {
      stage: s1 ? 1 : 2,
      granule: g,
      iasBits,
      oasBits,
      nonGlobal: s1,
    });
    if (!pt.ok) {
      this.logMsg(`domain finalise: page table: ${pt.detail}`);
      return pt.errno === 'ENOMEM' ? -ENOMEM : -EINVAL;
    }
    const table = pt.table;
    if (s1) {
      const asid = this.asids!.alloc();
      if (asid === undefined) {
        table.destroy();
        return -ENOSPC;
      }
      const cdtab = this.alloc.alloc(64);
      if (cdtab === undefined) {
        this.asids!.free(asid);
        table.destroy();
        return -ENOMEM;
      }
      const cd = buildCd({ asid, granule: g, iasBits, oasBits, ttb0: table.root, mair: S1_MAIR });
      for (let i = 0; i < 16; i++) this.mem.write32(cdtab + 4 * i, cd[i]!);
      domain.asid = asid;
      domain.hostCdtab = { addr: cdtab, bytes: 64 };
      Object.assign(domain.s1Cfg, { set: true, cdtab, cdMax: 0, fmt: 0, dss: S1DSS_SSID0 });
    } else {
      const vmid = this.vmids!.alloc();
      if (vmid === undefined) {
        table.destroy();
        return -ENOSPC;
      }
      Object.assign(domain.s2Cfg, { set: true, vmid });
    }
    domain.stage = stage;
    domain.pgtable = table;
    domain.pgsizeBitmap = sizesToBitmap(
      table.pgsizes.filter((s) => bitmapToSizes(f.pgsizeBitmap).includes(s)),
    );
    domain.geometry = { apertureStart: 0, apertureEnd: 2 ** iasBits - 1, forceAperture: true };
    domain.smmu = this;
    return 0;
  }

  /**
   * arm_smmu_attach_dev: 0; -EINVAL for a domain that is not this instance's (or was freed, or is
   * bound to another SMMU) or whose finalise fails; -ENODEV for a device this instance has not
   * probed; -ENOSPC / -ENOMEM from finalise. The device leaves its previous domain.
   */
  attachDev(domain: IommuDomain, dev: IommuDevice): number {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.freed) return -EINVAL;
    if (this.features === undefined) return -ENODEV;
    if (domain.ops !== this || (domain.smmu !== undefined && domain.smmu !== this)) return -EINVAL;
    const master = this.masters.get(dev);
    if (master === undefined) return dev.iommuName === this.name ? -ENODEV : -EINVAL;
    if (domain.smmu === undefined) {
      const rc = this.finalise(domain);
      if (rc !== 0) return rc;
    }
    if (master.domain !== undefined && master.domain !== domain) master.domain.masters.delete(master);
    master.domain = domain;
    domain.masters.add(master);
    this.installMaster(master);
    return 0;
  }

  /** arm_smmu_detach_dev: the device's streams go back to the unattached policy. */
  detachDev(domain: IommuDomain, dev: IommuDevice): void {
    const master = this.masters.get(dev);
    if (master === undefined || master.domain !== domain) return;
    master.domain = undefined;
    (domain as ArmSmmuV3Domain).masters.delete(master);
    this.installMaster(master);
  }

  // =================================================================== map, unmap, TLB

  private pagingDomain(domain: IommuDomain): ArmSmmuV3Domain | undefined {
    return domain instanceof ArmSmmuV3Domain && domain.ops === this && domain.pgtable !== undefined
      ? domain
      : undefined;
  }

  /**
   * Maps one page or block: 0; -ENODEV before the domain's first attach (no page table yet) or
   * for a non-paging domain; -EINVAL for a size that is not one of the domain's page sizes or a
   * misaligned address; -EEXIST, -ERANGE, -ENOMEM, -EIO from the page table. A mapping that
   * grants neither read nor write maps nothing and returns 0 (io-pgtable-arm).
   */
  map(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number {
    const d = this.pagingDomain(domain);
    if (d === undefined) return -ENODEV;
    const log2 = Math.log2(size);
    if (!Number.isInteger(log2) || !bitmapToSizes(d.pgsizeBitmap).includes(log2)) return -EINVAL;
    const p = protFromIommu(prot);
    if (p === undefined) return 0;
    const r = d.pgtable!.map(iova, paddr, size, p);
    if (r.ok) return 0;
    const errnos = { EINVAL, ERANGE, EEXIST, ENOMEM, EIO } as const;
    return -errnos[r.errno];
  }

  /**
   * Unmaps one page-size chunk and invalidates the IOTLB for what was unmapped before returning.
   * The invalidation granule follows what the page table did (as io-pgtable's callbacks tell
   * Linux): a leaf removed → its size, leaf-only, with a TTL hint; a table removed → the page
   * size, not leaf-only; a block split → the page size, leaf-only, no TTL hint (the old block
   * entry sits at another level).
   */
  unmap(domain: IommuDomain, iova: number, size: number): number {
    const d = this.pagingDomain(domain);
    if (d === undefined) return 0;
    const t = d.pgtable!;
    const before = t.stats;
    const n = t.unmap(iova, size);
    if (n === 0) return 0;
    const after = t.stats;
    const page = t.granule;
    if (after.tablesFreed > before.tablesFreed) this.invalidateRange(d, iova, n, page, false, 0);
    else if (after.tablesAllocated > before.tablesAllocated) this.invalidateRange(d, iova, n, page, true, 0);
    else {
      // One leaf of a page size (the usual case), else several pages: step by page, no TTL.
      const log2 = Math.log2(n);
      const leafLog2 = Number.isInteger(log2) && t.pgsizes.includes(log2) ? log2 : page;
      this.invalidateRange(d, iova, n, leafLog2, true, leafLog2 === log2 ? ttlFor(page, leafLog2) : 0);
    }
    return n;
  }

  /** arm_smmu_tlb_inv_range_domain: by-address invalidation of the domain's stage. */
  private invalidateRange(
    d: ArmSmmuV3Domain,
    start: number,
    size: number,
    stepLog2: number,
    leaf: boolean,
    ttl: number,
  ): void {
    const f = this.features!;
    const ops = planTlbiRange({ start, size, stepLog2, tg: d.pgtable!.granule, ttl, ril: f.rangeInv });
    if (ops === 'all') {
      this.flushIotlbAll(d);
      return;
    }
    const cmds =
      d.stage === 's1'
        ? ops.map((o) => cmdTlbiNhVa(0, d.asid, leaf, o))
        : ops.map((o) => cmdTlbiS2Ipa(d.s2Cfg.vmid, leaf, o));
    if (d.stage === 'nested') cmds.push(cmdTlbiNhAll(d.s2Cfg.vmid));
    this.submitCommands(cmds);
  }

  /** Unmaps were invalidated as they happened. */
  iotlbSync(_domain: IommuDomain): void {}

  /** arm_smmu_tlb_inv_context: TLBI_NH_ASID (stage 1) or TLBI_S12_VMALL (stage 2, nested). */
  flushIotlbAll(domain: IommuDomain): void {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.smmu !== this) return;
    if (domain.stage === 's1') this.submitCommands([cmdTlbiNhAsid(0, domain.asid)]);
    else if (domain.stage === 's2' || domain.stage === 'nested') {
      this.submitCommands([cmdTlbiS12Vmall(domain.s2Cfg.vmid)]);
    }
  }

  /** The physical address `iova` maps to, 0 when unmapped; the IOVA itself for an identity domain. */
  iovaToPhys(domain: IommuDomain, iova: number): number {
    if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
    const d = this.pagingDomain(domain);
    return d?.pgtable?.iovaToPhys(iova) ?? 0;
  }

  // =================================================================== nested stage (§1.3, §1.4)

  private nestedContext(): NestedContext {
    const f = this.features!;
    return {
      asPostedSingleCd: this.asPostedSingleCd,
      ssidBits: f.ssidBits,
      cd2l: f.twoLevelCdtab,
      rangeInv: f.rangeInv,
      asidBits: f.asidBits,
      granules: f.granules,
      oasBits: f.oasBits,
      domainInvalidation: this.domainInvalidation,
    };
  }

  private reinstallDomain(d: ArmSmmuV3Domain): void {
    for (const m of d.masters) this.installMaster(m);
  }

  /**
   * arm_smmu_attach_pasid_table (seed-spec §1.3): the checks and the configuration switch are in
   * nested.ts; on success every attached master's STEs are rewritten (break-before-make).
   */
  attachPasidTable(domain: IommuDomain, cfg: IommuPasidTableConfig): number {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || this.features === undefined) {
      return -EINVAL;
    }
    const plan = planAttachPasidTable(domain, cfg, this.nestedContext());
    if (!plan.ok) return plan.errno;
    Object.assign(domain.s1Cfg, plan.s1);
    domain.abort = plan.abort;
    this.reinstallDomain(domain);
    return 0;
  }

  /** arm_smmu_detach_pasid_table: a NESTED domain goes back to stage 2 only (Config 0b110). */
  detachPasidTable(domain: IommuDomain): void {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || domain.stage !== 'nested') return;
    Object.assign(domain.s1Cfg, { set: false, cdtab: 0, cdMax: 0, fmt: 0, dss: 0 });
    domain.abort = false;
    this.reinstallDomain(domain);
  }

  /** arm_smmu_cache_invalidate (seed-spec §1.4): see nested.ts for the checks and commands. */
  cacheInvalidate(domain: IommuDomain, _dev: IommuDevice, info: IommuCacheInvalidateInfo): number {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || this.features === undefined) {
      return -EINVAL;
    }
    const sids = [...domain.masters].flatMap((m) => m.sids);
    const plan = planCacheInvalidate(domain, info, sids, this.nestedContext());
    if (!plan.ok) return plan.errno;
    if (plan.cmds.length === 0) return 0;
    return this.submitCommands(plan.cmds);
  }

  /** arm_smmu_bind_guest_msi: -EINVAL unless the domain is bound and NESTED; then dma-iommu's part. */
  bindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this) return -EINVAL;
    if (domain.smmu === undefined || domain.stage !== 'nested') return -EINVAL;
    return this.core.dmaBindGuestMsi(domain, giova, gpa, size);
  }

  unbindGuestMsi(domain: IommuDomain, giova: number): void {
    if (!(domain instanceof ArmSmmuV3Domain) || domain.ops !== this || domain.stage !== 'nested') return;
    this.core.dmaUnbindGuestMsi(domain, giova);
  }
}

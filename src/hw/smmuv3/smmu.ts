/**
 * The SMMUv3 device (IHI 0070): the Non-secure register file, the stream table and CD lookup with
 * their configuration caches, stage-1 / stage-2 / nested translation with an IOTLB, the command
 * queue (CFGI/TLBI/SYNC and command errors), the event queue with overflow, GERROR, and
 * interrupts (wired lines and MSIs). Everything the SMMU fetches or writes lives in one PhysMem.
 *
 * Devices reach it through `transact()`: `{streamId, substreamId (or -1), iova, size, access,
 * privileged}` → the physical segments of the access, or a fault plus the event record it queued.
 * The hit path (`transact` → last path → IOTLB) allocates nothing.
 *
 * The model is synchronous: a write to CMDQ_PROD consumes the queue before returning, CR0ACK and
 * IRQ_CTRLACK follow CR0 and IRQ_CTRL at once, a GBPA update completes at once. Each is one of the
 * behaviours the architecture permits ("finite time"). Order of checks and the event raised at each
 * step follow §7.3.22; decisions the architecture leaves open are noted where they are taken.
 */

import { hi32, lo32, TWO_POW_32 } from '../../arch/bits.ts';
import { getField } from '../../arch/fields.ts';
import { L1CD_L2PTR, L1CD_RES0_MASKS, L1CD_V } from '../../arch/smmuv3/cd.ts';
import { CERROR_ABT, CERROR_NONE, CMD_SYNC_CS_IRQ, CMD_SYNC_CS_SEV } from '../../arch/smmuv3/commands.ts';
import {
  C_BAD_CD,
  C_BAD_STE,
  C_BAD_STREAMID,
  C_BAD_SUBSTREAMID,
  EVENT_NAMES,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_STE_FETCH,
  F_STREAM_DISABLED,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_E2H,
  CR2_RECINVSID,
  GBPA_ABORT,
  GBPA_UPDATE,
  GERROR_CMDQ_ERR,
  GERROR_EVENTQ_ABT_ERR,
  GERROR_MSI_CMDQ_ABT_ERR,
  GERROR_MSI_EVENTQ_ABT_ERR,
  GERROR_MSI_GERROR_ABT_ERR,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  Q_OVFLG,
  SMMU_AGBPA,
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
  SMMU_EVENTQ_CONS_ALIAS,
  SMMU_EVENTQ_IRQ_CFG0,
  SMMU_EVENTQ_IRQ_CFG1,
  SMMU_EVENTQ_IRQ_CFG2,
  SMMU_EVENTQ_PROD,
  SMMU_EVENTQ_PROD_ALIAS,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_GERROR_IRQ_CFG0,
  SMMU_GERROR_IRQ_CFG1,
  SMMU_GERROR_IRQ_CFG2,
  SMMU_GERRORN,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR2,
  SMMU_IDR3,
  SMMU_IDR4,
  SMMU_IDR5,
  SMMU_IIDR,
  SMMU_IRQ_CTRL,
  SMMU_IRQ_CTRLACK,
  SMMU_STATUSR,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  STRTAB_FMT_2LVL,
} from '../../arch/smmuv3/registers.ts';
import {
  INSTCFG_DATA,
  INSTCFG_INSTR,
  L1STD_L2PTR,
  L1STD_SPAN,
  PRIVCFG_PRIV,
  PRIVCFG_UNPRIV,
  S1DSS_BYPASS,
  S1DSS_SSID0,
  S1FMT_4K_L2,
  S1FMT_LINEAR,
} from '../../arch/smmuv3/ste.ts';
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  CLASS_CD,
  CLASS_IN,
  CLASS_TT,
  s1PermBit,
  s2PermBit,
  WALK_EABT,
  WALK_PERMISSION,
} from '../../arch/vmsa.ts';
import type { PhysMem } from '../memory.ts';
import type { StageRegime } from '../vmsa/regime.ts';
import { type S1Context, Walker } from '../vmsa/walker.ts';
import { type CommandOutcome, type CommandTarget, executeCommand } from './commands.ts';
import { type CdConfig, decodeCd, decodeSte, type SteConfig, WORLD_NSEL1 } from './config.ts';
import {
  type CdEntry,
  ConfigCache,
  type L1Entry,
  PATH_ABORT,
  PATH_BYPASS,
  PATH_TRANSLATE,
  type SteEntry,
  streamKey,
  type XlatePath,
} from './config-cache.ts';
import { decodeEvent, type EventInit, encodeEvent, type SmmuEvent } from './event-record.ts';
import { type IdRegisters, iasBits, idRegisters, resolveFeatures, type SmmuFeatures } from './features.ts';
import { type InvalidationScope, Iotlb, KIND_NESTED, KIND_S1, KIND_S2 } from './iotlb.ts';
import { qConsistent, qEmpty, qFull, qIndex, qMask, qNext } from './queue.ts';

/** Outcome of a transaction. */
export const TXN_OK = 0;
/** Terminated with an abort reported to the device. */
export const TXN_ABORT = 1;
/** Terminated as RAZ/WI (CD.A = 0): reads return zero, writes are dropped, the device sees success. */
export const TXN_RAZ_WI = 2;
export const TXN_STATUS_NAMES: readonly string[] = ['ok', 'abort', 'raz/wi'];

/** Interrupt sources, delivered as a wired pulse when no MSI address is programmed. */
export type SmmuIrq = 'eventq' | 'gerror' | 'cmd_sync' | 'sev';

/** A device's access, as the SMMU receives it. */
export interface DmaRequest {
  streamId: number;
  /** SubstreamID (PASID); -1 when the transaction has none (SSV = 0). */
  substreamId: number;
  iova: number;
  size: number;
  access: Access;
  privileged: boolean;
}

/** The result of `transact`, reusable across calls (nothing is allocated on success). */
export class DmaResult {
  status = TXN_OK;
  /** Segments of the access: it is split wherever it crosses a translation (page or block). */
  count = 0;
  readonly iova: number[] = [];
  readonly pa: number[] = [];
  readonly len: number[] = [];
  /** Where the access stopped on a fault. */
  faultAddr = 0;
  /** The event the fault raised (also when it was suppressed or lost), else null. */
  event: SmmuEvent | null = null;
  /** Whether that event reached the event queue. */
  eventDisposition: EventDisposition | 'none' = 'none';
  /** The model's explanation of a configuration error (not part of the record). */
  reason = '';

  reset(): void {
    this.status = TXN_OK;
    this.count = 0;
    // Fault fields are only set on faults: clear them only then (this runs on every transaction).
    if (this.event !== null || this.reason !== '') {
      this.faultAddr = 0;
      this.event = null;
      this.eventDisposition = 'none';
      this.reason = '';
    }
  }

  push(iova: number, pa: number, len: number): void {
    const i = this.count++;
    this.iova[i] = iova;
    this.pa[i] = pa;
    this.len[i] = len;
  }

  /** The translated address of the first byte (when count > 0). */
  get firstPa(): number {
    return this.count > 0 ? this.pa[0]! : -1;
  }
}

/** What happened to an event record. */
export type EventDisposition =
  | 'written'
  | 'suppressed'
  | 'overflow'
  | 'queue-disabled'
  | 'queue-error'
  | 'write-abort';

export interface SmmuStats {
  transactions: number;
  bypassed: number;
  silentAborts: number;
  faults: number;
  steLookups: number;
  steHits: number;
  steFetches: number;
  l1stdFetches: number;
  cdLookups: number;
  cdHits: number;
  cdFetches: number;
  l1cdFetches: number;
  /** Translations that missed the IOTLB and walked. */
  walks: number;
  /** Stage-1 and stage-2 table walks (a nested translation does one stage-1 walk and up to five stage-2 walks). */
  walksS1: number;
  walksS2: number;
  /** Translation-table descriptor reads, both stages. */
  descReads: number;
  /** Most descriptor reads seen in one translation (24 for a cold 4x4 nested walk). */
  maxDescReadsPerWalk: number;
  eventsRaised: number;
  eventsWritten: number;
  eventsSuppressed: number;
  eventsLost: number;
  eventqOverflows: number;
  byEvent: Record<string, number>;
  commands: number;
  commandErrors: number;
  byCommand: Record<string, number>;
  syncs: number;
  msiWrites: number;
  mmioReads: number;
  mmioWrites: number;
  /** Writes ignored because the register was guarded by an enable, or read-only. */
  mmioIgnored: number;
}

function newStats(): SmmuStats {
  return {
    transactions: 0,
    bypassed: 0,
    silentAborts: 0,
    faults: 0,
    steLookups: 0,
    steHits: 0,
    steFetches: 0,
    l1stdFetches: 0,
    cdLookups: 0,
    cdHits: 0,
    cdFetches: 0,
    l1cdFetches: 0,
    walks: 0,
    walksS1: 0,
    walksS2: 0,
    descReads: 0,
    maxDescReadsPerWalk: 0,
    eventsRaised: 0,
    eventsWritten: 0,
    eventsSuppressed: 0,
    eventsLost: 0,
    eventqOverflows: 0,
    byEvent: {},
    commands: 0,
    commandErrors: 0,
    byCommand: {},
    syncs: 0,
    msiWrites: 0,
    mmioReads: 0,
    mmioWrites: 0,
    mmioIgnored: 0,
  };
}

/** Observers of the device: interrupts, MSIs, events and commands. All optional. */
export interface SmmuHooks {
  irq?(line: SmmuIrq): void;
  msi?(addr: number, data: number): void;
  event?(event: SmmuEvent, disposition: EventDisposition): void;
  command?(outcome: CommandOutcome, words: Uint32Array): void;
}

export interface SmmuOptions {
  readonly features?: Partial<SmmuFeatures>;
  readonly hooks?: SmmuHooks;
}

/** 2^n for n in 0..64: `2 ** n` with a variable n is a pow() call on the hot path. */
const POW2 = Float64Array.from({ length: 65 }, (_, n) => 2 ** n);
const INV_TWO_POW_32 = 2 ** -32;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const WALK_EVENT = [0, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT];
/** Event id 0: the transaction is terminated without an event (Config abort, GBPA abort). */
const SILENT: EventInit = { id: 0, streamId: 0 };

/** One interrupt source's MSI configuration: *_IRQ_CFG0 (address), CFG1 (data), CFG2 (attributes). */
interface MsiConfig {
  addr: number;
  data: number;
  attr: number;
}

/** Pending fault of the current translation. */
interface Fault {
  status: number;
  init: EventInit;
  /** false: suppressed by CD.R / STE.S2R. */
  record: boolean;
  reason: string;
}

export class Smmu implements CommandTarget {
  readonly mem: PhysMem;
  readonly features: SmmuFeatures;
  readonly idr: IdRegisters;
  readonly stats: SmmuStats = newStats();
  readonly iotlb: Iotlb;
  readonly cfg: ConfigCache;
  readonly walker: Walker;
  hooks: SmmuHooks;

  // ---- registers
  private cr0 = 0;
  private cr1 = 0;
  private cr2 = 0;
  private gbpa = 0;
  private irqCtrl = 0;
  private gerror = 0;
  private gerrorn = 0;
  /** MSI configuration of the GERROR interrupt (GERROR_IRQ_CFG0/1/2). */
  private readonly gerrorMsi: MsiConfig = { addr: 0, data: 0, attr: 0 };
  private strtabBase = 0;
  private strtabRa = 0;
  private strtabCfg = 0;
  private cmdqBase = 0;
  private cmdqBaseHiFlags = 0;
  private cmdqLog2Raw = 0;
  private cmdqProd = 0;
  private cmdqCons = 0;
  private cmdqErr = CERROR_NONE;
  private eventqBase = 0;
  private eventqBaseHiFlags = 0;
  private eventqLog2Raw = 0;
  private eventqProd = 0;
  private eventqCons = 0;
  /** MSI configuration of the event queue interrupt (EVENTQ_IRQ_CFG0/1/2). */
  private readonly eventqMsi: MsiConfig = { addr: 0, data: 0, attr: 0 };

  // ---- translation scratch (valid until the next translation)
  private readonly oasLimit: number;
  private readonly iasLimit: number;
  /**
   * Scratch slots of the hot path, in a typed array so doubles cross calls unboxed (a double
   * argument or field store would allocate a HeapNumber per call): [0] input address in,
   * [1] PA out, [2] bytes valid from the input out.
   */
  private readonly io = new Float64Array(3);
  private fault: Fault | null = null;
  private lastSid = -1;
  private lastSsid = -2;
  private lastGen = -1;
  private lastPath: XlatePath | null = null;
  private pendingSync: { cs: number; addr: number; data: number } | null = null;
  private readonly cmdWords = new Uint32Array(4);
  private readonly evtWords = new Uint32Array(8);

  constructor(mem: PhysMem, opts: SmmuOptions = {}) {
    const r = resolveFeatures(opts.features ?? {});
    // Bad construction options are a programming error of the caller, not guest input.
    if (!r.ok) throw new Error(`invalid SMMU features: ${r.errors.join('; ')}`);
    this.mem = mem;
    this.features = r.features;
    this.idr = idRegisters(r.features);
    this.hooks = opts.hooks ?? {};
    this.iotlb = new Iotlb(r.features.iotlbEntries, r.features.iotlbWays);
    this.cfg = new ConfigCache(r.features.steCacheEntries, r.features.cdCacheEntries);
    this.walker = new Walker(mem);
    this.walker.qemuOrder = r.features.faultOrder === 'qemu';
    this.oasLimit = 2 ** r.features.oasBits;
    this.iasLimit = 2 ** iasBits(r.features);
    if (r.features.gbpaAbortAtReset) this.gbpa = GBPA_ABORT;
  }

  // =================================================================== register interface

  /** A 32-bit MMIO read at `offset` in the register frame. Unknown offsets read as zero. */
  read32(offset: number): number {
    this.stats.mmioReads++;
    // Misaligned accesses are CONSTRAINED UNPREDICTABLE (§6.2); vsva makes them RAZ/WI.
    if ((offset & 3) !== 0 || !Number.isInteger(offset)) return 0;
    const lo = offset & ~7;
    const upper = (offset & 4) !== 0;
    const wide = this.read64Raw(lo);
    if (wide !== undefined) return upper ? wide[1] : wide[0];
    return this.read32Raw(offset) >>> 0;
  }

  /** A 64-bit MMIO read of a 64-bit register: [lo, hi]. Other offsets read as zero. */
  read64(offset: number): [lo: number, hi: number] {
    this.stats.mmioReads++;
    return this.read64Raw(offset) ?? [0, 0];
  }

  /** A 32-bit MMIO write. Writes to read-only, guarded or unknown registers are ignored. */
  write32(offset: number, value: number): void {
    this.stats.mmioWrites++;
    if ((offset & 3) !== 0 || !Number.isInteger(offset)) return this.ignored();
    const v = value >>> 0;
    const base = offset & ~7;
    if (this.is64(base)) {
      const [lo, hi] = this.read64Raw(base)!;
      this.write64Raw(base, (offset & 4) !== 0 ? lo : v, (offset & 4) !== 0 ? v : hi);
      return;
    }
    this.write32Raw(offset, v);
  }

  /** A 64-bit MMIO write of a 64-bit register. A 64-bit write elsewhere is ignored (RAZ/WI). */
  write64(offset: number, lo: number, hi: number): void {
    this.stats.mmioWrites++;
    if (!this.is64(offset)) {
      this.stats.mmioIgnored++;
      return;
    }
    this.write64Raw(offset, lo >>> 0, hi >>> 0);
  }

  /** Convenience for 64-bit registers holding values below 2^53. */
  write64n(offset: number, value: number): void {
    this.write64(offset, lo32(value), hi32(value));
  }

  private is64(offset: number): boolean {
    return (
      offset === SMMU_GERROR_IRQ_CFG0 ||
      offset === SMMU_STRTAB_BASE ||
      offset === SMMU_CMDQ_BASE ||
      offset === SMMU_EVENTQ_BASE ||
      offset === SMMU_EVENTQ_IRQ_CFG0
    );
  }

  private read64Raw(offset: number): [number, number] | undefined {
    switch (offset) {
      case SMMU_GERROR_IRQ_CFG0:
        return [lo32(this.gerrorMsi.addr), hi32(this.gerrorMsi.addr)];
      case SMMU_STRTAB_BASE:
        return [lo32(this.strtabBase), (hi32(this.strtabBase) | (this.strtabRa << 30)) >>> 0];
      case SMMU_CMDQ_BASE:
        return [
          (lo32(this.cmdqBase) | this.cmdqLog2Raw) >>> 0,
          (hi32(this.cmdqBase) | this.cmdqBaseHiFlags) >>> 0,
        ];
      case SMMU_EVENTQ_BASE:
        return [
          (lo32(this.eventqBase) | this.eventqLog2Raw) >>> 0,
          (hi32(this.eventqBase) | this.eventqBaseHiFlags) >>> 0,
        ];
      case SMMU_EVENTQ_IRQ_CFG0:
        return [lo32(this.eventqMsi.addr), hi32(this.eventqMsi.addr)];
      default:
        return undefined;
    }
  }

  private read32Raw(offset: number): number {
    const idr = this.idr;
    switch (offset) {
      case SMMU_IDR0:
        return idr.idr0;
      case SMMU_IDR1:
        return idr.idr1;
      case SMMU_IDR2:
        return idr.idr2;
      case SMMU_IDR3:
        return idr.idr3;
      case SMMU_IDR4:
        return idr.idr4;
      case SMMU_IDR5:
        return idr.idr5;
      case SMMU_IIDR:
        return idr.iidr;
      case SMMU_AIDR:
        return idr.aidr;
      case SMMU_CR0:
      case SMMU_CR0ACK:
        return this.cr0;
      case SMMU_CR1:
        return this.cr1;
      case SMMU_CR2:
        return this.cr2;
      case SMMU_STATUSR:
        return 0;
      case SMMU_GBPA:
        return this.gbpa;
      case SMMU_IRQ_CTRL:
      case SMMU_IRQ_CTRLACK:
        return this.irqCtrl;
      case SMMU_GERROR:
        return this.gerror;
      case SMMU_GERRORN:
        return this.gerrorn;
      case SMMU_GERROR_IRQ_CFG1:
        return this.gerrorMsi.data;
      case SMMU_GERROR_IRQ_CFG2:
        return this.gerrorMsi.attr;
      case SMMU_STRTAB_BASE_CFG:
        return this.strtabCfg;
      case SMMU_CMDQ_PROD:
        return this.cmdqProd;
      case SMMU_CMDQ_CONS:
        return ((this.cmdqCons & qMask(this.cmdqLog2())) | (this.cmdqErr << 24)) >>> 0;
      case SMMU_EVENTQ_IRQ_CFG1:
        return this.eventqMsi.data;
      case SMMU_EVENTQ_IRQ_CFG2:
        return this.eventqMsi.attr;
      case SMMU_EVENTQ_PROD:
      case SMMU_EVENTQ_PROD_ALIAS:
        return ((this.eventqProd & qMask(this.eventqLog2())) | (this.eventqProd & Q_OVFLG)) >>> 0;
      case SMMU_EVENTQ_CONS:
      case SMMU_EVENTQ_CONS_ALIAS:
        return this.eventqCons;
      default:
        return 0;
    }
  }

  private ignored(): void {
    this.stats.mmioIgnored++;
  }

  private write32Raw(offset: number, v: number): void {
    switch (offset) {
      case SMMU_CR0:
        return this.writeCr0(v);
      case SMMU_CR1:
        return this.writeCr1(v);
      case SMMU_CR2:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.cr2 = v & ((this.features.hyp ? CR2_E2H : 0) | CR2_RECINVSID);
        return;
      case SMMU_GBPA:
        // v3.2: a write without Update = 1 is ignored; the update completes at once (Update reads 0).
        if ((v & GBPA_UPDATE) === 0) return this.ignored();
        this.gbpa = v & 0x001f_3f1f;
        return;
      case SMMU_IRQ_CTRL:
        this.irqCtrl = v & (IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN);
        return;
      case SMMU_GERRORN:
        return this.writeGerrorn(v);
      case SMMU_GERROR_IRQ_CFG1:
        return this.writeMsi(this.gerrorMsi, IRQ_CTRL_GERROR_IRQEN, 'data', v);
      case SMMU_GERROR_IRQ_CFG2:
        return this.writeMsi(this.gerrorMsi, IRQ_CTRL_GERROR_IRQEN, 'attr', v & 0x3f);
      case SMMU_STRTAB_BASE_CFG:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.strtabCfg = v & ((this.features.twoLevelStreamTable ? 0x3_0000 : 0) | 0x7ff);
        return;
      case SMMU_CMDQ_PROD:
        this.cmdqProd = v & 0xf_ffff;
        this.processCommands();
        return;
      case SMMU_CMDQ_CONS:
        // Guarded by CMDQEN; ERR is the SMMU's and a written value is ignored (decision, §6.3.28).
        if (this.cr0 & CR0_CMDQEN) return this.ignored();
        this.cmdqCons = v & qMask(this.cmdqLog2());
        return;
      case SMMU_EVENTQ_IRQ_CFG1:
        return this.writeMsi(this.eventqMsi, IRQ_CTRL_EVENTQ_IRQEN, 'data', v);
      case SMMU_EVENTQ_IRQ_CFG2:
        return this.writeMsi(this.eventqMsi, IRQ_CTRL_EVENTQ_IRQEN, 'attr', v & 0x3f);
      case SMMU_EVENTQ_PROD:
      case SMMU_EVENTQ_PROD_ALIAS:
        if (this.cr0 & CR0_EVENTQEN) return this.ignored();
        this.eventqProd = (v & (0xf_ffff | Q_OVFLG)) >>> 0;
        return;
      case SMMU_EVENTQ_CONS:
      case SMMU_EVENTQ_CONS_ALIAS:
        this.eventqCons = (v & (0xf_ffff | Q_OVFLG)) >>> 0;
        return;
      case SMMU_AGBPA:
        return this.ignored();
      default:
        return this.ignored();
    }
  }

  private write64Raw(offset: number, lo: number, hi: number): void {
    const oasMask = (addrLo: number, addrHi: number, lowBits: number): number => {
      const a = (addrHi & 0xf_ffff) * TWO_POW_32 + ((addrLo & ~(2 ** lowBits - 1)) >>> 0);
      return a >= this.oasLimit ? a % this.oasLimit : a;
    };
    switch (offset) {
      case SMMU_GERROR_IRQ_CFG0:
        return this.writeMsi(this.gerrorMsi, IRQ_CTRL_GERROR_IRQEN, 'addr', oasMask(lo, hi, 2));
      case SMMU_EVENTQ_IRQ_CFG0:
        return this.writeMsi(this.eventqMsi, IRQ_CTRL_EVENTQ_IRQEN, 'addr', oasMask(lo, hi, 2));
      case SMMU_STRTAB_BASE:
        if (this.cr0 & CR0_SMMUEN) return this.ignored();
        this.strtabBase = oasMask(lo, hi, 6);
        this.strtabRa = (hi >>> 30) & 1;
        return;
      case SMMU_CMDQ_BASE:
        if (this.cr0 & CR0_CMDQEN) return this.ignored();
        this.cmdqBase = oasMask(lo, hi, 5);
        this.cmdqLog2Raw = lo & 0x1f;
        this.cmdqBaseHiFlags = hi & 0x4000_0000;
        return;
      case SMMU_EVENTQ_BASE:
        if (this.cr0 & CR0_EVENTQEN) return this.ignored();
        this.eventqBase = oasMask(lo, hi, 5);
        this.eventqLog2Raw = lo & 0x1f;
        this.eventqBaseHiFlags = hi & 0x4000_0000;
        return;
      default:
        this.ignored();
    }
  }

  /** CR1: TABLE_* fields are guarded by SMMUEN, QUEUE_* fields by the queue enables (§6.3.11). */
  private writeCr1(v: number): void {
    const tableMask = 0xfc0;
    const queueMask = 0x03f;
    let mask = 0;
    if ((this.cr0 & CR0_SMMUEN) === 0) mask |= tableMask;
    if ((this.cr0 & (CR0_CMDQEN | CR0_EVENTQEN)) === 0) mask |= queueMask;
    if (((v ^ this.cr1) & ~mask & 0xfff) !== 0) this.stats.mmioIgnored++;
    this.cr1 = (this.cr1 & ~mask) | (v & mask);
  }

  /** *_IRQ_CFGn: writable only with MSIs implemented and the source's IRQ_CTRL enable clear (v3.2). */
  private writeMsi(cfg: MsiConfig, enable: number, field: keyof MsiConfig, value: number): void {
    if ((this.irqCtrl & enable) !== 0 || !this.features.msi) return this.ignored();
    cfg[field] = value;
  }

  private writeCr0(v: number): void {
    const before = this.cr0;
    // Implemented fields only (no PRI, ATS or VMW): reserved bits read back as zero.
    this.cr0 = v & (CR0_SMMUEN | CR0_EVENTQEN | CR0_CMDQEN);
    if ((this.cr0 & CR0_CMDQEN) !== 0 && (before & CR0_CMDQEN) === 0) this.processCommands();
  }

  private writeGerrorn(v: number): void {
    const wasStopped = this.cmdqErrorActive();
    this.gerrorn = v & 0x1fd;
    if (wasStopped && !this.cmdqErrorActive()) this.processCommands();
  }

  /** Effective log2 sizes (capped by IDR1.CMDQS / EVENTQS; readback keeps the written value). */
  private cmdqLog2(): number {
    return Math.min(this.cmdqLog2Raw, this.features.cmdqLog2Max);
  }

  private eventqLog2(): number {
    return Math.min(this.eventqLog2Raw, this.features.eventqLog2Max);
  }

  private cmdqErrorActive(): boolean {
    return ((this.gerror ^ this.gerrorn) & GERROR_CMDQ_ERR) !== 0;
  }

  /** Whether CR2.E2H is set (CommandTarget). */
  get e2h(): boolean {
    return (this.cr2 & CR2_E2H) !== 0;
  }

  // =================================================================== interrupts and GERROR

  /** Activates a global error (toggle GERROR if inactive) and signals it. */
  private raiseGerror(bit: number): void {
    if (((this.gerror ^ this.gerrorn) & bit) !== 0) return;
    this.gerror = (this.gerror ^ bit) >>> 0;
    if (bit === GERROR_MSI_GERROR_ABT_ERR || (this.irqCtrl & IRQ_CTRL_GERROR_IRQEN) === 0) return;
    this.signal('gerror', this.gerrorMsi.addr, this.gerrorMsi.data, GERROR_MSI_GERROR_ABT_ERR);
  }

  /** An MSI when an address is programmed (IDR0.MSI), else a pulse on the wired line. */
  private signal(line: SmmuIrq, msiAddr: number, msiData: number, abortBit: number): void {
    if (this.features.msi && msiAddr !== 0) {
      this.stats.msiWrites++;
      if (!this.mem.write32(msiAddr, msiData)) {
        this.raiseGerror(abortBit);
        return;
      }
      this.hooks.msi?.(msiAddr, msiData);
      return;
    }
    this.hooks.irq?.(line);
  }

  // =================================================================== command queue

  private cmdqAddr(p: number): number {
    const log2 = this.cmdqLog2();
    const base = this.cmdqBase - (this.cmdqBase % Math.max(16 * 2 ** log2, 32));
    return base + qIndex(p, log2) * 16;
  }

  /** Consumes commands while the queue is enabled, non-empty and free of errors (§4.1.2). */
  private processCommands(): void {
    if ((this.cr0 & CR0_CMDQEN) === 0 || this.cmdqErrorActive()) return;
    const log2 = this.cmdqLog2();
    // An inconsistent PROD/CONS pair is CONSTRAINED UNPREDICTABLE; vsva stops consuming (decision).
    if (!qConsistent(this.cmdqProd, this.cmdqCons, log2)) return;
    const w = this.cmdWords;
    for (let guard = 2 ** log2; guard > 0 && !qEmpty(this.cmdqProd, this.cmdqCons, log2); guard--) {
      const addr = this.cmdqAddr(this.cmdqCons);
      const lo = this.mem.read(addr, 16);
      if (lo === undefined) {
        this.commandError(CERROR_ABT);
        return;
      }
      const dv = new DataView(lo.buffer);
      for (let i = 0; i < 4; i++) w[i] = dv.getUint32(i * 4, true);
      const outcome = executeCommand(this, w);
      this.stats.commands++;
      this.stats.byCommand[outcome.name] = (this.stats.byCommand[outcome.name] ?? 0) + 1;
      this.hooks.command?.(outcome, w);
      if (outcome.error !== CERROR_NONE) {
        this.commandError(outcome.error);
        return;
      }
      this.cmdqCons = qNext(this.cmdqCons, log2);
      this.deliverSync();
    }
  }

  /** Stops the queue on an error: CONS stays on the command, ERR and GERROR.CMDQ_ERR are set (§7.1). */
  private commandError(code: number): void {
    this.stats.commandErrors++;
    this.cmdqErr = code;
    this.raiseGerror(GERROR_CMDQ_ERR);
  }

  /** CMD_SYNC: its effects are done; after CONS has moved past it, signal completion (§4.7.3). */
  syncComplete(cs: number, msiAddr: number, msiData: number): void {
    this.stats.syncs++;
    this.pendingSync = { cs, addr: msiAddr, data: msiData };
  }

  private deliverSync(): void {
    const s = this.pendingSync;
    if (s === null) return;
    this.pendingSync = null;
    if (s.cs === CMD_SYNC_CS_IRQ) {
      // SIG_IRQ writes the MSI when MSIAddr != 0 and also pulses the wired CMD_SYNC line, which
      // has no enable and does not depend on MSIAddr (§4.7.3, §3.18.2).
      if (this.features.msi && s.addr !== 0) this.signal('cmd_sync', s.addr, s.data, GERROR_MSI_CMDQ_ABT_ERR);
      this.hooks.irq?.('cmd_sync');
    } else if (s.cs === CMD_SYNC_CS_SEV) this.hooks.irq?.('sev');
  }

  // ---- CommandTarget: invalidations

  invalidateSte(sid: number, leaf: boolean): void {
    this.cfg.invalidateSte(sid, leaf ? undefined : this.l1IndexOf(sid));
  }

  invalidateSteRange(first: number, last: number): void {
    this.cfg.invalidateSteRange(first, last, (sid) => this.l1IndexOf(sid));
  }

  invalidateCd(sid: number, ssid: number, leaf: boolean): void {
    let l1: number | 'all' | undefined;
    if (!leaf) {
      const ste = this.cfg.ste.peek(sid);
      const cfg = ste?.decoded.ok ? ste.decoded.value : undefined;
      l1 = cfg === undefined ? 'all' : cdL1Index(cfg, ssid);
    }
    this.cfg.invalidateCd(sid, ssid, l1);
  }

  invalidateCdAll(sid: number): void {
    this.cfg.invalidateCdAll(sid);
  }

  invalidateAllConfig(): void {
    this.cfg.clear();
  }

  invalidateTlb(scope: InvalidationScope): void {
    this.iotlb.invalidate(scope);
  }

  /** L1 stream table index of a StreamID under the current STRTAB_BASE_CFG, or undefined if linear. */
  private l1IndexOf(sid: number): number | undefined {
    if (!this.twoLevelStreamTable()) return undefined;
    return Math.floor(sid / 2 ** this.strtabSplit());
  }

  private twoLevelStreamTable(): boolean {
    return this.features.twoLevelStreamTable && ((this.strtabCfg >>> 16) & 3) === STRTAB_FMT_2LVL;
  }

  /** SPLIT: 6, 8 or 10; other values are reserved and behave as 6 (§6.3.25). */
  private strtabSplit(): number {
    const split = (this.strtabCfg >>> 6) & 0x1f;
    return split === 8 || split === 10 ? split : 6;
  }

  // =================================================================== event queue

  private eventqAddr(p: number): number {
    const log2 = this.eventqLog2();
    const base = this.eventqBase - (this.eventqBase % Math.max(32 * 2 ** log2, 32));
    return base + qIndex(p, log2) * 32;
  }

  /** Writes an event record (§7.2.1, §7.4): returns what happened to it. */
  private recordEvent(words: Uint32Array): EventDisposition {
    if ((this.cr0 & CR0_EVENTQEN) === 0) return 'queue-disabled';
    if (((this.gerror ^ this.gerrorn) & GERROR_EVENTQ_ABT_ERR) !== 0) return 'queue-error';
    const log2 = this.eventqLog2();
    if (qFull(this.eventqProd, this.eventqCons, log2)) {
      // Overflow: toggle OVFLG unless an overflow is already pending.
      if ((this.eventqProd & Q_OVFLG) === (this.eventqCons & Q_OVFLG))
        this.eventqProd = (this.eventqProd ^ Q_OVFLG) >>> 0;
      this.stats.eventqOverflows++;
      return 'overflow';
    }
    const addr = this.eventqAddr(this.eventqProd);
    const bytes = new Uint8Array(words.buffer, words.byteOffset, 32);
    if (!this.mem.write(addr, bytes)) {
      // Synchronous abort (IMPLEMENTATION DEFINED choice): PROD does not advance.
      this.raiseGerror(GERROR_EVENTQ_ABT_ERR);
      return 'write-abort';
    }
    const wasEmpty = qEmpty(this.eventqProd, this.eventqCons, log2);
    const ov = this.eventqProd & Q_OVFLG;
    this.eventqProd = (qNext(this.eventqProd, log2) | ov) >>> 0;
    if (wasEmpty && (this.irqCtrl & IRQ_CTRL_EVENTQ_IRQEN) !== 0) {
      this.signal('eventq', this.eventqMsi.addr, this.eventqMsi.data, GERROR_MSI_EVENTQ_ABT_ERR);
    }
    return 'written';
  }

  /** Raises an event: counts it, records it unless suppressed, reports it to hooks. */
  private raise(init: EventInit, record: boolean): { event: SmmuEvent; disposition: EventDisposition } {
    const words = encodeEvent(init, this.evtWords);
    const event = decodeEvent(words);
    this.stats.eventsRaised++;
    const name = EVENT_NAMES[init.id] ?? String(init.id);
    this.stats.byEvent[name] = (this.stats.byEvent[name] ?? 0) + 1;
    const disposition = record ? this.recordEvent(words) : 'suppressed';
    if (disposition === 'written') this.stats.eventsWritten++;
    else if (disposition === 'suppressed') this.stats.eventsSuppressed++;
    else this.stats.eventsLost++;
    this.hooks.event?.(event, disposition);
    return { event, disposition };
  }

  /** Reads the event records between CONS and PROD without consuming them (for tests and tools). */
  peekEvents(): SmmuEvent[] {
    const log2 = this.eventqLog2();
    const out: SmmuEvent[] = [];
    let p = this.eventqCons & qMask(log2);
    const words = new Uint32Array(8);
    for (let n = 0; n < 2 ** log2 && !qEmpty(this.eventqProd, p, log2); n++) {
      const bytes = this.mem.read(this.eventqAddr(p), 32);
      if (bytes === undefined) break;
      words.set(new Uint32Array(bytes.buffer));
      out.push(decodeEvent(words));
      p = qNext(p, log2);
    }
    return out;
  }

  // =================================================================== transactions

  /**
   * Translates a device access. The access is split wherever it crosses a translation boundary;
   * on a fault the result carries the segments translated so far, the status and the event.
   */
  transact(req: DmaRequest, out: DmaResult = new DmaResult()): DmaResult {
    out.reset();
    this.stats.transactions++;
    const size = req.size;
    const start = req.iova;
    // In range and integral (x - floor(x) is 0 only for integers; NaN fails every comparison).
    if (
      !(
        start >= 0 &&
        start <= MAX_SAFE &&
        size >= 0 &&
        size <= MAX_SAFE &&
        start - Math.floor(start) === 0 &&
        size - Math.floor(size) === 0
      )
    ) {
      // A malformed request from a device model (not guest-controlled): abort without an event.
      out.status = TXN_ABORT;
      out.reason = 'malformed request: iova and size must be non-negative integers below 2^53';
      return out;
    }
    let iova = start;
    let remaining = size;
    if (remaining === 0) return out;
    if (this.hitFastPath(req, out, iova, remaining)) return out;
    // General case: one translation at a time (faults, walks, bypass, page-crossing accesses).
    this.io[0] = iova;
    if (!this.translateOne(req.streamId, req.substreamId, req.access, req.privileged)) {
      this.finishFault(out, iova);
      return out;
    }
    if (this.io[2]! >= remaining) {
      out.count = 1;
      out.iova[0] = iova;
      out.pa[0] = this.io[1]!;
      out.len[0] = remaining;
      return out;
    }
    out.push(iova, this.io[1]!, this.io[2]!);
    iova += this.io[2]!;
    remaining -= this.io[2]!;
    while (remaining > 0) {
      this.io[0] = iova;
      if (!this.translateOne(req.streamId, req.substreamId, req.access, req.privileged)) {
        this.finishFault(out, iova);
        return out;
      }
      const n = Math.min(remaining, this.io[2]!);
      out.push(iova, this.io[1]!, n);
      iova += n;
      remaining -= n;
    }
    return out;
  }

  /**
   * The IOTLB-hit path in one small function V8 inlines into `transact`: same stream as the last
   * transaction, a translating path, an IOTLB hit with the permissions needed, and an access that
   * fits the entry. Anything else returns false and `translateOne` handles it (including the same
   * hit, so this is purely an optimisation).
   */
  private hitFastPath(req: DmaRequest, out: DmaResult, iova: number, size: number): boolean {
    const path = this.lastPath;
    if (
      path === null ||
      req.streamId !== this.lastSid ||
      req.substreamId !== this.lastSsid ||
      this.lastGen !== this.cfg.generation ||
      (this.cr0 & CR0_SMMUEN) === 0 ||
      path.kind !== PATH_TRANSLATE ||
      iova >= path.inputLimit
    ) {
      return false;
    }
    const need = path.needs[req.access * 2 + (req.privileged ? 1 : 0)]!;
    const hi = Math.floor(iova * INV_TWO_POW_32) | 0;
    const lo = iova | 0;
    const tlb = this.iotlb;
    const e = tlb.probe(path.tlbCtx, hi, lo);
    if (e < 0 || (tlb.perms[e]! & need) !== need) return false;
    const shift = tlb.shift[e]!;
    const offset =
      shift < 32 ? lo & ((1 << shift) - 1) : (hi & (POW2[shift - 32]! - 1)) * TWO_POW_32 + (lo >>> 0);
    if (POW2[shift]! - offset < size) return false;
    // Counted only once the fast path has served the access; on a fallback translateOne counts.
    tlb.stats.lookups++;
    out.count = 1;
    out.iova[0] = iova;
    out.pa[0] = tlb.pa[e]! + offset;
    out.len[0] = size;
    return true;
  }

  /** A single-address translation, allocating a fresh result: for tests, tools and scenarios. */
  translate(
    streamId: number,
    substreamId: number,
    iova: number,
    access: Access = ACCESS_READ,
    privileged = false,
  ): DmaResult {
    return this.transact({ streamId, substreamId, iova, size: 1, access, privileged });
  }

  private finishFault(out: DmaResult, iova: number): void {
    const f = this.fault!;
    this.fault = null;
    out.status = f.status;
    out.faultAddr = iova;
    out.reason = f.reason;
    this.stats.faults++;
    if (f.init.id === 0) {
      this.stats.silentAborts++;
      return;
    }
    const { event, disposition } = this.raise(f.init, f.record);
    out.event = event;
    out.eventDisposition = disposition;
  }

  private setFault(status: number, init: EventInit, record: boolean, reason = ''): false {
    this.fault = { status, init, record, reason };
    return false;
  }

  /** Translates one address; on success sets tPa and tAvail (bytes valid from that address). */
  /** Translates the address in io[0]; on success io[1] is the PA and io[2] the bytes valid from it. */
  private translateOne(sid: number, ssid: number, access: Access, privileged: boolean): boolean {
    const iova = this.io[0]!;
    if ((this.cr0 & CR0_SMMUEN) === 0) return this.gbpaPath(iova);
    let path = this.lastPath;
    if (
      sid !== this.lastSid ||
      ssid !== this.lastSsid ||
      this.lastGen !== this.cfg.generation ||
      path === null
    ) {
      path = this.resolvePath(sid, ssid, iova, access, privileged);
      if (path === null) return false;
      this.lastPath = path;
      this.lastSid = sid;
      this.lastSsid = ssid;
      this.lastGen = this.cfg.generation;
    }
    if (path.kind !== PATH_TRANSLATE || iova >= path.inputLimit)
      return this.untranslated(path, sid, ssid, iova, access, privileged);
    const need = path.needs[access * 2 + (privileged ? 1 : 0)]!;
    // Multiplying by 2^-32 is exact and cheaper than a division.
    const hi = Math.floor(iova * INV_TWO_POW_32) >>> 0;
    const lo = iova >>> 0;
    const tlb = this.iotlb;
    const e = tlb.lookup(path.tlbCtx, hi, lo);
    if (e < 0) return this.walk(path, sid, ssid, iova, hi, lo, access, privileged);
    const perms = tlb.perms[e]!;
    const shift = tlb.shift[e]!;
    const offset = shift < 32 ? lo & ((1 << shift) - 1) : (hi & (POW2[shift - 32]! - 1)) * TWO_POW_32 + lo;
    if ((perms & need) !== need)
      return this.tlbPermissionFault(path, sid, ssid, iova, access, privileged, perms, tlb.ipa[e]! + offset);
    this.io[1] = tlb.pa[e]! + offset;
    this.io[2] = POW2[shift]! - offset;
    return true;
  }

  /** Abort and bypass paths, and inputs beyond the IAS with stage 1 bypassed. */
  private untranslated(
    path: XlatePath,
    sid: number,
    ssid: number,
    iova: number,
    access: Access,
    privileged: boolean,
  ): boolean {
    if (path.kind === PATH_ABORT) return this.setFault(TXN_ABORT, SILENT, false, 'STE.Config aborts');
    const ste = path.ste;
    const priv = effectivePriv(ste, privileged);
    const acc = overrideAccess(access, ste.instCfg);
    // Full bypass (Config 0b100): an input above OAS is a stage-1 address size fault (§3.4); with
    // stage 1 bypassed (S2-only, or S1DSS = bypass), an input above IAS is.
    if (iova >= path.inputLimit) return this.addrSizeOnInput(sid, ssid, iova, acc, priv);
    this.stats.bypassed++;
    this.io[1] = iova;
    this.io[2] = this.oasLimit - iova;
    return true;
  }

  /** A permission fault served from an IOTLB hit: the same record a walk would give. */
  private tlbPermissionFault(
    path: XlatePath,
    sid: number,
    ssid: number,
    iova: number,
    access: Access,
    privileged: boolean,
    perms: number,
    ipa: number,
  ): false {
    const priv = effectivePriv(path.ste, privileged);
    const acc = overrideAccess(access, path.ste.instCfg);
    const s2 = (perms & s1PermBit(acc, priv)) !== 0;
    return this.walkFault(
      path.ste,
      path.cd,
      sid,
      ssid,
      iova,
      acc,
      priv,
      WALK_PERMISSION,
      s2,
      CLASS_IN,
      ipa,
      0,
    );
  }

  /** Builds a path, precomputing the permission needs and the input limit of the hot path. */
  private makePath(
    kind: number,
    s1: S1Context | null,
    s2: StageRegime | null,
    tlbCtx: number,
    tlbKind: number,
    ste: SteConfig,
    cd: CdConfig | null,
  ): XlatePath {
    const needs = new Int32Array(6);
    for (const access of [ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC] as const) {
      for (const privileged of [false, true]) {
        const priv = effectivePriv(ste, privileged);
        const acc = overrideAccess(access, ste.instCfg);
        needs[access * 2 + (privileged ? 1 : 0)] = s1PermBit(acc, priv) | s2PermBit(acc, priv);
      }
    }
    const inputLimit =
      kind === PATH_BYPASS
        ? this.oasLimit
        : kind === PATH_TRANSLATE && s1 === null
          ? this.iasLimit
          : Infinity;
    return { kind, s1, s2, tlbCtx, tlbKind, ste, cd, needs, inputLimit };
  }

  /** IOTLB miss: walk, then insert the translation. */
  private walk(
    path: XlatePath,
    sid: number,
    ssid: number,
    iova: number,
    hi: number,
    lo: number,
    access: Access,
    privileged: boolean,
  ): boolean {
    const priv = effectivePriv(path.ste, privileged);
    const acc = overrideAccess(access, path.ste.instCfg);
    const s1Need = s1PermBit(acc, priv);
    const s2Need = s2PermBit(acc, priv);
    const w = this.walker;
    const readsBefore = w.descReads;
    const s1Before = w.walksS1;
    const s2Before = w.walksS2;
    const f = w.translate(path.s1, path.s2, hi, lo, s1Need, s2Need);
    this.stats.walks++;
    this.stats.walksS1 += w.walksS1 - s1Before;
    this.stats.walksS2 += w.walksS2 - s2Before;
    const reads = w.descReads - readsBefore;
    this.stats.descReads += reads;
    if (reads > this.stats.maxDescReadsPerWalk) this.stats.maxDescReadsPerWalk = reads;
    if (f !== 0) {
      const ipa = w.faultS2 ? w.faultIpaHi * TWO_POW_32 + w.faultIpaLo : 0;
      const fetch = f === WALK_EABT ? w.fetchHi * TWO_POW_32 + w.fetchLo : 0;
      return this.walkFault(
        path.ste,
        path.cd,
        sid,
        ssid,
        iova,
        acc,
        priv,
        f,
        w.faultS2,
        w.faultClass,
        ipa,
        fetch,
      );
    }
    const shift = w.shift;
    const pa = w.outHi * TWO_POW_32 + w.outLo;
    const offset = shift < 32 ? lo & ((1 << shift) - 1) : (hi & (POW2[shift - 32]! - 1)) * TWO_POW_32 + lo;
    const ipaBase = w.ipaHi * TWO_POW_32 + w.ipaLo - offset;
    this.iotlb.insert(
      path.tlbCtx,
      hi,
      lo,
      shift,
      pa - offset,
      ipaBase,
      w.perms,
      path.tlbKind,
      !w.nG,
      w.level,
      w.granule,
    );
    this.io[1] = pa;
    this.io[2] = POW2[shift]! - offset;
    return true;
  }

  /** Turns a walk fault into the event the spec defines for it (§7.3.12-§7.3.16). */
  private walkFault(
    ste: SteConfig,
    cd: CdConfig | null,
    sid: number,
    ssid: number,
    iova: number,
    acc: Access,
    priv: boolean,
    f: number,
    s2: boolean,
    cls: number,
    ipa: number,
    fetch: number,
  ): false {
    const init: EventInit = {
      id: WALK_EVENT[f]!,
      streamId: sid,
      substreamId: ssid,
      rnw: acc !== ACCESS_WRITE,
      ind: acc === ACCESS_EXEC,
      pnu: priv,
      s2,
      cls: f === WALK_EABT && !s2 ? CLASS_TT : cls,
      ttrnw: true,
      inputHi: hi32(iova),
      inputLo: lo32(iova),
      ipa,
      fetchAddr: fetch,
    };
    if (f === WALK_EABT) return this.setFault(TXN_ABORT, init, true);
    if (s2) return this.setFault(TXN_ABORT, init, ste.s2Record);
    const status = cd === null || cd.abortOnFault ? TXN_ABORT : TXN_RAZ_WI;
    return this.setFault(status, init, cd === null || cd.record);
  }

  /** A stage-1 F_ADDR_SIZE on the input address of a bypassed stage 1: always recorded, always aborts. */
  private addrSizeOnInput(sid: number, ssid: number, iova: number, acc: Access, priv: boolean): false {
    return this.setFault(
      TXN_ABORT,
      {
        id: F_ADDR_SIZE,
        streamId: sid,
        substreamId: ssid,
        rnw: acc !== ACCESS_WRITE,
        ind: acc === ACCESS_EXEC,
        pnu: priv,
        s2: false,
        cls: CLASS_IN,
        inputHi: hi32(iova),
        inputLo: lo32(iova),
      },
      true,
      'input address beyond the input address size with stage 1 bypassed',
    );
  }

  /** SMMUEN = 0: GBPA aborts everything, or bypasses (an input above OAS aborts silently). */
  private gbpaPath(iova: number): boolean {
    if ((this.gbpa & GBPA_ABORT) !== 0 || iova >= this.oasLimit) {
      return this.setFault(TXN_ABORT, SILENT, false, 'SMMUEN = 0 and GBPA aborts');
    }
    this.stats.bypassed++;
    this.io[1] = iova;
    this.io[2] = this.oasLimit - iova;
    return true;
  }

  // =================================================================== configuration lookup

  /**
   * Resolves the path of (sid, ssid) through the STE and CD (cached or fetched), raising the
   * configuration events of §7.3.22 in their priority order. Returns null with a fault set.
   */
  private resolvePath(sid: number, ssid: number, iova: number, acc: Access, priv: boolean): XlatePath | null {
    const entry = this.lookupSte(sid, ssid);
    if (entry === null) return null;
    if (!entry.decoded.ok) {
      this.setFault(
        TXN_ABORT,
        { id: C_BAD_STE, streamId: sid, substreamId: ssid },
        true,
        entry.decoded.reason,
      );
      return null;
    }
    const ste = entry.decoded.value;
    // Config 0b0xx aborts silently whatever the SubstreamID (C_BAD_SUBSTREAMID is for Config 0b1x0).
    if (ste.abort || (entry.direct !== null && ssid < 0)) return entry.direct;
    if (ssid >= 0 && (!ste.s1 || ste.s1CdMax === 0 || ssid >= 2 ** ste.s1CdMax)) {
      const reason = !ste.s1
        ? 'a SubstreamID with stage 1 disabled'
        : ste.s1CdMax === 0
          ? 'a SubstreamID with substreams disabled (S1CDMax = 0)'
          : `SubstreamID ${ssid} >= 2^S1CDMax`;
      this.setFault(TXN_ABORT, { id: C_BAD_SUBSTREAMID, streamId: sid, substreamId: ssid }, true, reason);
      return null;
    }
    if (entry.direct !== null) return entry.direct;
    let index = ssid;
    if (ste.s1CdMax === 0) index = 0;
    else if (ssid < 0) {
      if (ste.s1Dss === S1DSS_BYPASS) return entry.s1Bypass;
      if (ste.s1Dss !== S1DSS_SSID0) {
        this.setFault(
          TXN_ABORT,
          { id: F_STREAM_DISABLED, streamId: sid },
          true,
          'no SubstreamID and S1DSS = terminate',
        );
        return null;
      }
      index = 0;
    } else if (ssid === 0 && ste.s1Dss === S1DSS_SSID0) {
      this.setFault(
        TXN_ABORT,
        { id: F_STREAM_DISABLED, streamId: sid },
        true,
        'SubstreamID 0 is reserved by S1DSS = SSID0',
      );
      return null;
    }
    // Records carry PnU/InD after the STE's PRIVCFG/INSTCFG overrides (§7.3), CD-fetch faults included.
    const effPriv = effectivePriv(ste, priv);
    const effAcc = overrideAccess(acc, ste.instCfg);
    const cd = this.lookupCd(sid, ssid, ste, index, iova, effAcc, effPriv);
    if (cd === null) return null;
    if (!cd.decoded.ok) {
      this.setFault(TXN_ABORT, { id: C_BAD_CD, streamId: sid, substreamId: ssid }, true, cd.decoded.reason);
      return null;
    }
    return cd.path;
  }

  private steFetchFault(sid: number, ssid: number, addr: number, reason: string): null {
    this.setFault(
      TXN_ABORT,
      { id: F_STE_FETCH, streamId: sid, substreamId: ssid, fetchAddr: addr },
      true,
      reason,
    );
    return null;
  }

  private badStreamId(sid: number, ssid: number, reason: string): null {
    this.setFault(
      TXN_ABORT,
      { id: C_BAD_STREAMID, streamId: sid, substreamId: ssid },
      (this.cr2 & CR2_RECINVSID) !== 0,
      reason,
    );
    return null;
  }

  /** Finds the STE of `sid` in the cache or in the stream table (§3.3, §5.1, §6.3.25). */
  private lookupSte(sid: number, ssid: number): SteEntry | null {
    this.stats.steLookups++;
    const cached = this.cfg.ste.get(sid);
    if (cached !== undefined) {
      this.stats.steHits++;
      return cached;
    }
    const cfg = this.strtabCfg;
    const log2Raw = cfg & 0x3f;
    const log2 = Math.min(log2Raw, this.features.sidBits);
    if (!Number.isInteger(sid) || sid < 0 || sid >= 2 ** log2) {
      return this.badStreamId(
        sid,
        ssid,
        `StreamID ${sid} >= 2^${log2} (STRTAB_BASE_CFG.LOG2SIZE, IDR1.SIDSIZE)`,
      );
    }
    let steAddr: number;
    if (this.twoLevelStreamTable()) {
      const split = this.strtabSplit();
      const l1Index = Math.floor(sid / 2 ** split);
      const l1Align = Math.max(6, log2Raw - split + 3);
      const l1Addr = this.strtabBase - (this.strtabBase % 2 ** l1Align) + 8 * l1Index;
      let l1 = this.cfg.l1std.get(l1Index);
      if (l1 === undefined) {
        const d = this.fetch64(l1Addr);
        if (d === undefined)
          return this.steFetchFault(sid, ssid, l1Addr, 'external abort fetching the L1STD');
        this.stats.l1stdFetches++;
        l1 = d;
        this.cfg.l1std.set(l1Index, l1);
      }
      const span = getField([l1.lo, l1.hi], L1STD_SPAN);
      if (span === 0 || span > 11 || span > split + 1)
        return this.badStreamId(sid, ssid, `L1STD.Span = ${span} is invalid`);
      const idx = sid % 2 ** split;
      if (idx >= 2 ** (span - 1))
        return this.badStreamId(sid, ssid, `StreamID outside the L1STD span (${span})`);
      const l2 = getField([l1.lo, l1.hi], L1STD_L2PTR);
      steAddr = l2 - (l2 % 2 ** (span - 1 + 6)) + 64 * idx;
    } else {
      steAddr = this.strtabBase - (this.strtabBase % 2 ** (log2Raw + 6)) + 64 * sid;
    }
    const words = this.fetchWords(steAddr, 16);
    if (words === undefined) return this.steFetchFault(sid, ssid, steAddr, 'external abort fetching the STE');
    this.stats.steFetches++;
    const decoded = decodeSte(words, this.features, this.e2h);
    const entry: SteEntry = decoded.ok
      ? {
          sid,
          addr: steAddr,
          decoded,
          direct: this.directPath(decoded.value),
          s1Bypass: this.s1BypassPath(decoded.value),
        }
      : { sid, addr: steAddr, decoded, direct: null, s1Bypass: null };
    this.cfg.ste.set(sid, entry);
    return entry;
  }

  /** The path of a stream that needs no CD: abort, bypass, or stage 2 only. */
  private directPath(ste: SteConfig): XlatePath | null {
    if (ste.abort) return this.makePath(PATH_ABORT, null, null, -1, 0, ste, null);
    if (!ste.s1 && !ste.s2) return this.makePath(PATH_BYPASS, null, null, -1, 0, ste, null);
    if (ste.s1) return null;
    return this.s2OnlyPath(ste);
  }

  private s1BypassPath(ste: SteConfig): XlatePath | null {
    if (!ste.s1 || ste.s1CdMax === 0 || ste.s1Dss !== S1DSS_BYPASS) return null;
    if (!ste.s2) return this.makePath(PATH_BYPASS, null, null, -1, 0, ste, null);
    return this.s2OnlyPath(ste);
  }

  private s2OnlyPath(ste: SteConfig): XlatePath {
    const tlbCtx = this.iotlb.context(WORLD_NSEL1, true, ste.vmid, 0);
    return this.makePath(PATH_TRANSLATE, null, ste.s2Regime, tlbCtx, KIND_S2, ste, null);
  }

  private cdPath(ste: SteConfig, cd: CdConfig): XlatePath {
    const tlbCtx = this.iotlb.context(ste.world, false, ste.vmid, cd.asid);
    const tlbKind = ste.s2 ? KIND_NESTED : KIND_S1;
    return this.makePath(PATH_TRANSLATE, cd.s1, ste.s2 ? ste.s2Regime : null, tlbCtx, tlbKind, ste, cd);
  }

  /** Finds CD number `index` of `ste` (cached through `sid`) or fetches it (§5.3, §5.4). */
  private lookupCd(
    sid: number,
    ssid: number,
    ste: SteConfig,
    index: number,
    iova: number,
    acc: Access,
    priv: boolean,
  ): CdEntry | null {
    this.stats.cdLookups++;
    const key = streamKey(sid, index);
    const cached = this.cfg.cd.get(key);
    if (cached !== undefined) {
      this.stats.cdHits++;
      return cached;
    }
    const ctx = { sid, ssid, iova, acc, priv, ste };
    const cdAddr = this.cdAddress(ctx, index);
    if (cdAddr === null) return null;
    const words = this.fetchStructure(ctx, cdAddr, 16);
    if (words === null) return null;
    this.stats.cdFetches++;
    const decoded = decodeCd(words, ste, this.features);
    const entry: CdEntry = {
      sid,
      index,
      addr: cdAddr,
      decoded,
      path: decoded.ok ? this.cdPath(ste, decoded.value) : null,
    };
    this.cfg.cd.set(key, entry);
    return entry;
  }

  /** The address (PA, or IPA when nested) of CD `index`, walking an L1CD for 2-level tables. */
  private cdAddress(ctx: StructFetchContext, index: number): number | null {
    const ste = ctx.ste;
    const ptr = ste.s1ContextPtr;
    if (ste.s1CdMax === 0) return ptr;
    if (ste.s1Fmt === S1FMT_LINEAR) return ptr - (ptr % 2 ** (ste.s1CdMax + 6)) + 64 * index;
    const split = cdLeafSplit(ste);
    const l1Index = cdL1Index(ste, index);
    const l1Entries = ste.s1CdMax <= split ? 1 : 2 ** (ste.s1CdMax - split);
    const l1Addr = ptr - (ptr % Math.max(8 * l1Entries, 64)) + 8 * l1Index;
    const key = streamKey(ctx.sid, l1Index);
    let l1: L1Entry | undefined = this.cfg.l1cd.get(key);
    if (l1 === undefined) {
      const w = this.fetchStructure(ctx, l1Addr, 2);
      if (w === null) return null;
      this.stats.l1cdFetches++;
      l1 = { lo: w[0]!, hi: w[1]! };
      this.cfg.l1cd.set(key, l1);
    }
    const d = [l1.lo, l1.hi];
    const bad = (reason: string): null => {
      this.setFault(
        TXN_ABORT,
        { id: C_BAD_SUBSTREAMID, streamId: ctx.sid, substreamId: index },
        true,
        reason,
      );
      return null;
    };
    if (getField(d, L1CD_V) === 0) return bad('L1CD.V is 0');
    if (
      this.features.reservedBits === 'illegal' &&
      ((l1.lo & L1CD_RES0_MASKS[0]!) | (l1.hi & L1CD_RES0_MASKS[1]!)) !== 0
    ) {
      return bad('L1CD has RES0 bits set');
    }
    const l2 = getField(d, L1CD_L2PTR);
    const l2Base = l2 - (l2 % 2 ** (split + 6));
    // Stage-1-only: an L2Ptr beyond OAS gives C_BAD_SUBSTREAMID (v3.1+, §3.4.3); nested: stage 2 decides.
    if (!ste.s2 && l2Base >= this.oasLimit) return bad('L1CD.L2Ptr is beyond the OAS');
    return l2Base + 64 * (index % 2 ** split);
  }

  /**
   * Fetches `count` words of a CD-side structure at `addr`: translated by stage 2 first when the
   * stream is nested (a stage-2 fault is reported with CLASS = CD), then read (an external abort is
   * F_CD_FETCH).
   */
  private fetchStructure(ctx: StructFetchContext, addr: number, count: number): Uint32Array | null {
    let pa = addr;
    const ste = ctx.ste;
    if (ste.s2 && ste.s2Regime !== null) {
      const w = this.walker;
      const f = w.translateS2(ste.s2Regime, hi32(addr), lo32(addr), CLASS_CD);
      if (f !== 0) {
        const fetch = f === WALK_EABT ? w.fetchHi * TWO_POW_32 + w.fetchLo : 0;
        this.walkFault(
          ste,
          null,
          ctx.sid,
          ctx.ssid,
          ctx.iova,
          ctx.acc,
          ctx.priv,
          f,
          true,
          CLASS_CD,
          addr,
          fetch,
        );
        return null;
      }
      pa = w.outHi * TWO_POW_32 + w.outLo;
    }
    const words = this.fetchWords(pa, count);
    if (words === undefined) {
      this.setFault(
        TXN_ABORT,
        { id: F_CD_FETCH, streamId: ctx.sid, substreamId: ctx.ssid, fetchAddr: pa },
        true,
        'external abort fetching a CD or L1CD',
      );
      return null;
    }
    return words;
  }

  /** Reads `count` little-endian words at a PA; undefined on an external abort or beyond OAS. */
  private fetchWords(addr: number, count: number): Uint32Array | undefined {
    if (addr + count * 4 > this.oasLimit) return undefined;
    const bytes = this.mem.read(addr, count * 4);
    if (bytes === undefined) return undefined;
    return new Uint32Array(bytes.buffer, bytes.byteOffset, count);
  }

  private fetch64(addr: number): L1Entry | undefined {
    const w = this.fetchWords(addr, 2);
    return w === undefined ? undefined : { lo: w[0]!, hi: w[1]! };
  }

  // =================================================================== inspection

  /** The register state translation depends on (for the reference model and inspection). */
  translationRegisters(): {
    smmuen: boolean;
    gbpaAbort: boolean;
    strtabBase: number;
    strtabCfg: number;
    e2h: boolean;
    recinvsid: boolean;
  } {
    return {
      smmuen: (this.cr0 & CR0_SMMUEN) !== 0,
      gbpaAbort: (this.gbpa & GBPA_ABORT) !== 0,
      strtabBase: this.strtabBase,
      strtabCfg: this.strtabCfg,
      e2h: this.e2h,
      recinvsid: (this.cr2 & CR2_RECINVSID) !== 0,
    };
  }

  /** Register values by name, for reports and `inspect`. */
  registerSnapshot(): Record<string, number> {
    const names: [string, number][] = [
      ['SMMU_CR0', SMMU_CR0],
      ['SMMU_CR1', SMMU_CR1],
      ['SMMU_CR2', SMMU_CR2],
      ['SMMU_GBPA', SMMU_GBPA],
      ['SMMU_IRQ_CTRL', SMMU_IRQ_CTRL],
      ['SMMU_GERROR', SMMU_GERROR],
      ['SMMU_GERRORN', SMMU_GERRORN],
      ['SMMU_STRTAB_BASE_CFG', SMMU_STRTAB_BASE_CFG],
      ['SMMU_CMDQ_PROD', SMMU_CMDQ_PROD],
      ['SMMU_CMDQ_CONS', SMMU_CMDQ_CONS],
      ['SMMU_EVENTQ_PROD', SMMU_EVENTQ_PROD],
      ['SMMU_EVENTQ_CONS', SMMU_EVENTQ_CONS],
    ];
    const out: Record<string, number> = {};
    for (const [n, off] of names) out[n] = this.read32Raw(off) >>> 0;
    out.SMMU_STRTAB_BASE = this.strtabBase;
    out.SMMU_CMDQ_BASE = this.cmdqBase;
    out.SMMU_EVENTQ_BASE = this.eventqBase;
    return out;
  }
}

interface StructFetchContext {
  readonly sid: number;
  readonly ssid: number;
  readonly iova: number;
  readonly acc: Access;
  readonly priv: boolean;
  readonly ste: SteConfig;
}

/** The transaction's privilege after STE.PRIVCFG. */
function effectivePriv(ste: SteConfig, privileged: boolean): boolean {
  return ste.privCfg === PRIVCFG_PRIV ? true : ste.privCfg === PRIVCFG_UNPRIV ? false : privileged;
}

/** STE.INSTCFG: reads may be forced to instruction or data accesses; writes are always data. */
function overrideAccess(access: Access, instCfg: number): Access {
  if (access !== ACCESS_WRITE && instCfg === INSTCFG_INSTR) return ACCESS_EXEC;
  if (access === ACCESS_EXEC && instCfg === INSTCFG_DATA) return ACCESS_READ;
  return access;
}

/** log2 of CDs per leaf table: 6 (4KB leaves) or 10 (64KB leaves). */
function cdLeafSplit(ste: SteConfig): number {
  return ste.s1Fmt === S1FMT_4K_L2 ? 6 : 10;
}

/** L1 index of CD `index` in a 2-level CD table (0 when S1CDMax fits one leaf). */
function cdL1Index(ste: SteConfig, index: number): number {
  if (ste.s1CdMax === 0 || ste.s1Fmt === S1FMT_LINEAR) return 0;
  const split = cdLeafSplit(ste);
  return ste.s1CdMax <= split ? 0 : Math.floor(index / 2 ** split);
}

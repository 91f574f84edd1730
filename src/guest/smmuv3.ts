/**
 * The guest's SMMUv3 driver (after Linux's arm-smmu-v3; IHI 0070): ID-register probe (§6.3.1-6),
 * reset and bring-up through MMIO (stream table, command and event queues in guest RAM, wired
 * interrupts, CR0/CR0ACK handshakes, §6.3.9-10), commands with CMD_SYNC completion (§4.7.3) and
 * command-queue error recovery through GERROR/CMDQ_CONS.ERR (§7.1), the event-queue interrupt
 * (§7.2-7.3) handing records to a fault sink, and per device an STE that translates at stage 1
 * with a CD table whose CD 0 is the kernel's DMA domain (STE.S1DSS = SSID0).
 *
 * Decisions:
 * - Stream table: linear when SIDSIZE <= 8 or 2-level tables are not supported; else 2-level
 *   with SPLIT 8, LOG2SIZE capped at 20, L2 tables allocated when a device in that range is
 *   attached (a new L1 descriptor is followed by CFGI_STE with Leaf = 0).
 * - CD tables: S1CDMax = min(device PASID width, SSIDSIZE). With CD2L and S1CDMax > 6, 2-level
 *   with 4 KiB leaves (S1Fmt = 1: 64 CDs per leaf, SPLIT 6) allocated on demand; otherwise linear,
 *   capped at 2^10 CDs.
 *   Linux uses 64 KiB leaves; 4 KiB keeps the guest's footprint small.
 * - Queues: CMDQ 2^min(CMDQS, 8), EVENTQ 2^min(EVENTQS, 7) entries; no RA/WA hints (bit 62 would
 *   break the contract's 2^53 MMIO value limit). Commands go in batches of at most 64 plus a
 *   CMD_SYNC, with IRQs masked while the batch is in flight (cmdq lock).
 * - Interrupts: wired lines (the DT's INTIDs), *_IRQ_CFG0 = 0; no CMD_SYNC interrupt (polling).
 * - Invalidation without range invalidation: one TLBI_NH_VA per 4 KiB page, one per block.
 */

import { CD_BYTES } from '../arch/smmuv3/cd.ts';
import { CERROR_ABT, CERROR_ATC_INV_SYNC, CERROR_ILL, CERROR_NAMES } from '../arch/smmuv3/commands.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_RECINVSID,
  GERROR_CMDQ_ERR,
  IDR0_FIELDS,
  IDR1_FIELDS,
  IDR3_FIELDS,
  IDR5_FIELDS,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  type RegField,
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
  SMMU_GERROR,
  SMMU_GERROR_IRQ_CFG0,
  SMMU_GERRORN,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_IRQ_CTRL,
  SMMU_IRQ_CTRLACK,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../arch/smmuv3/registers.ts';
import { S1DSS_SSID0, S1FMT_4K_L2, S1FMT_LINEAR, STE_BYTES } from '../arch/smmuv3/ste.ts';
import { psBits } from '../arch/vmsa.ts';
import { decodeEvent, eventInputAddr, type SmmuEvent } from '../hw/smmuv3/event-record.ts';
import { qIndex, qMask, qNext } from '../hw/smmuv3/queue.ts';
import {
  type CdParams,
  cmdCfgiAll,
  cmdCfgiCd,
  cmdCfgiSte,
  cmdSync,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
  encodeCd,
  encodeL1cd,
  encodeL1std,
  encodeSte,
} from '../hw/smmuv3/structures.ts';
import { EINVAL, EIO, ENOMEM, ERANGE, ETIMEDOUT } from '../uapi/errno.ts';
import { DmaDomain } from './dma.ts';
import type { GuestDt } from './dt.ts';
import { guestFail, hex, type Kernel } from './kernel.ts';
import type { PciFunction } from './pci.ts';
import { type Guest, MmioRegion } from './trap.ts';

/** What IDR0/1/3/5 say. */
export interface SmmuCaps {
  readonly s1: boolean;
  readonly s2: boolean;
  readonly aarch64: boolean;
  readonly asid16: boolean;
  readonly msi: boolean;
  readonly cd2l: boolean;
  readonly twoLevelSt: boolean;
  readonly termModel: number;
  readonly sidBits: number;
  readonly ssidBits: number;
  readonly cmdqLog2Max: number;
  readonly eventqLog2Max: number;
  readonly ril: boolean;
  readonly oasBits: number;
  readonly gran4k: boolean;
  readonly gran16k: boolean;
  readonly gran64k: boolean;
}

function field(v: number, table: readonly RegField[], name: string): number {
  const f = table.find((x) => x.name === name);
  if (f === undefined) return 0;
  return Math.floor(v / 2 ** f.lsb) % 2 ** f.width;
}

export function decodeCaps(idr0: number, idr1: number, idr3: number, idr5: number): SmmuCaps {
  const f0 = (n: string): number => field(idr0, IDR0_FIELDS, n);
  const f1 = (n: string): number => field(idr1, IDR1_FIELDS, n);
  const f5 = (n: string): number => field(idr5, IDR5_FIELDS, n);
  const oasEnc = f5('OAS');
  return {
    s1: f0('S1P') === 1,
    s2: f0('S2P') === 1,
    aarch64: (f0('TTF') & 2) !== 0,
    asid16: f0('ASID16') === 1,
    msi: f0('MSI') === 1,
    cd2l: f0('CD2L') === 1,
    twoLevelSt: f0('ST_LEVEL') === 1,
    termModel: f0('TERM_MODEL'),
    sidBits: f1('SIDSIZE'),
    ssidBits: f1('SSIDSIZE'),
    cmdqLog2Max: f1('CMDQS'),
    eventqLog2Max: f1('EVENTQS'),
    ril: field(idr3, IDR3_FIELDS, 'RIL') === 1,
    oasBits: oasEnc <= 6 ? psBits(oasEnc) : 48,
    gran4k: f5('GRAN4K') === 1,
    gran16k: f5('GRAN16K') === 1,
    gran64k: f5('GRAN64K') === 1,
  };
}

/** A device's CD table in guest RAM. */
export class GuestCdTable {
  readonly fmt: number;
  readonly cdMax: number;
  readonly ptr: number;
  /** L1 index → leaf table address (2-level only). */
  readonly leaves = new Map<number, number>();

  constructor(fmt: number, cdMax: number, ptr: number) {
    this.fmt = fmt;
    this.cdMax = cdMax;
    this.ptr = ptr;
  }

  static readonly SPLIT = 6;

  /** Address of CD `ssid` if its leaf exists (undefined for a 2-level table without that leaf). */
  cdAddr(ssid: number): number | undefined {
    if (this.fmt === S1FMT_LINEAR) return this.ptr + CD_BYTES * ssid;
    const leaf = this.leaves.get(Math.floor(ssid / 2 ** GuestCdTable.SPLIT));
    return leaf === undefined ? undefined : leaf + CD_BYTES * (ssid % 2 ** GuestCdTable.SPLIT);
  }
}

/** A device attached to the SMMU. */
export interface SmmuMaster {
  readonly fn: PciFunction;
  readonly sid: number;
  readonly steAddr: number;
  readonly cd: GuestCdTable;
  /** S1CDMax: PASIDs [1, 2^ssidBits) are usable (0 = no PASIDs). */
  readonly ssidBits: number;
  /** CD 0. */
  readonly domain: DmaDomain;
}

/** A fault event as the SMMU reported it, for the SVA layer. */
export type FaultSink = (master: SmmuMaster | undefined, ev: SmmuEvent) => void;

const CMD_BATCH = 64;
/** Decision: a linear CD table (no CD2L) holds at most 2^10 CDs (64 KiB). */
const LINEAR_CD_MAX_BITS = 10;
const POLL_LIMIT = 256;

export class SmmuDriver {
  readonly k: Kernel;
  readonly regs: MmioRegion;
  readonly irqs: NonNullable<GuestDt['smmu']>['irqs'];
  caps: SmmuCaps | undefined;
  readonly masters = new Map<number, SmmuMaster>();
  faultSink: FaultSink = () => {};
  /** Commands that ended with a command-queue error, with the error name (most recent last). */
  readonly cmdErrors: { error: string; opcode: number }[] = [];
  /** Test knob: the next batch gets this raw command prepended (to provoke CERROR_ILL). */
  injectCommand: Uint32Array | undefined;

  strtab = 0;
  strtabLog2 = 0;
  strtabSplit = 0;
  private readonly l2 = new Map<number, number>();
  cmdq = 0;
  cmdqLog2 = 0;
  private cmdqProd = 0;
  eventq = 0;
  eventqLog2 = 0;

  constructor(k: Kernel, dt: NonNullable<GuestDt['smmu']>) {
    this.k = k;
    this.regs = new MmioRegion(dt.reg.base);
    this.irqs = dt.irqs;
  }

  private alloc(bytes: number, what: string): number {
    const a = this.k.alloc?.alloc(bytes);
    if (a === undefined) guestFail(`smmu: no memory for ${what}`);
    return a;
  }

  private *pollAck(reg: number, want: number, what: string): Guest<void> {
    for (let i = 0; i < POLL_LIMIT; i++) if ((yield* this.regs.read32(reg)) === want) return;
    guestFail(`smmu: ${what} not acknowledged`);
  }

  private *writeCr0(v: number): Guest<void> {
    yield* this.regs.write32(SMMU_CR0, v);
    yield* this.pollAck(SMMU_CR0ACK, v, `CR0 0x${v.toString(16)}`);
  }

  /** arm_smmu_device_probe + arm_smmu_device_reset: probe, allocate, program, enable. */
  *probe(): Guest<SmmuCaps> {
    const idr0 = yield* this.regs.read32(SMMU_IDR0);
    const idr1 = yield* this.regs.read32(SMMU_IDR1);
    const idr3 = yield* this.regs.read32(SMMU_IDR3);
    const idr5 = yield* this.regs.read32(SMMU_IDR5);
    const c = decodeCaps(idr0, idr1, idr3, idr5);
    if (!c.s1) guestFail('smmu: no stage-1 translation (IDR0.S1P = 0)');
    if (!c.aarch64) guestFail('smmu: no AArch64 tables (IDR0.TTF)');
    if (!c.gran4k) guestFail('smmu: no 4 KiB granule (IDR5.GRAN4K = 0)');
    this.caps = c;
    this.k.printk(
      `smmu: sid ${c.sidBits} bits, ssid ${c.ssidBits} bits, oas ${c.oasBits}, ${c.twoLevelSt ? '2-level' : 'linear'} strtab${c.cd2l ? ', CD2L' : ''}${c.ril ? ', RIL' : ''}`,
    );
    // Disable before reprogramming (the firmware may have left it on).
    if ((yield* this.regs.read32(SMMU_CR0)) !== 0) yield* this.writeCr0(0);
    // CR1: tables and queues inner shareable, write-back cacheable.
    yield* this.regs.write32(SMMU_CR1, (3 << 10) | (1 << 8) | (1 << 6) | (3 << 4) | (1 << 2) | 1);
    yield* this.regs.write32(SMMU_CR2, CR2_RECINVSID);
    this.allocStrtab(c);
    yield* this.regs.write64(SMMU_STRTAB_BASE, this.strtab);
    const cfg =
      this.strtabSplit === 0 ? this.strtabLog2 : this.strtabLog2 | (this.strtabSplit << 6) | (1 << 16);
    yield* this.regs.write32(SMMU_STRTAB_BASE_CFG, cfg);
    this.cmdqLog2 = Math.min(c.cmdqLog2Max, 8);
    this.cmdq = this.alloc(Math.max(16 * 2 ** this.cmdqLog2, 32), 'the command queue');
    yield* this.regs.write64(SMMU_CMDQ_BASE, this.cmdq + this.cmdqLog2);
    yield* this.regs.write32(SMMU_CMDQ_PROD, 0);
    yield* this.regs.write32(SMMU_CMDQ_CONS, 0);
    this.cmdqProd = 0;
    yield* this.writeCr0(CR0_CMDQEN);
    const r1 = yield* this.submit([cmdCfgiAll(), cmdTlbiNsnhAll()]);
    if (r1 !== 0) guestFail(`smmu: initial invalidation failed (${r1})`);
    this.eventqLog2 = Math.min(c.eventqLog2Max, 7);
    this.eventq = this.alloc(Math.max(32 * 2 ** this.eventqLog2, 32), 'the event queue');
    yield* this.regs.write64(SMMU_EVENTQ_BASE, this.eventq + this.eventqLog2);
    yield* this.regs.write32(SMMU_EVENTQ_PROD, 0);
    yield* this.regs.write32(SMMU_EVENTQ_CONS, 0);
    yield* this.writeCr0(CR0_CMDQEN | CR0_EVENTQEN);
    yield* this.setupIrqs(c);
    yield* this.writeCr0(CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    return c;
  }

  private allocStrtab(c: SmmuCaps): void {
    if (!c.twoLevelSt || c.sidBits <= 8) {
      this.strtabLog2 = c.sidBits;
      this.strtabSplit = 0;
      this.strtab = this.alloc(Math.max(STE_BYTES * 2 ** c.sidBits, 64), 'the stream table');
      return;
    }
    this.strtabSplit = 8;
    this.strtabLog2 = Math.min(c.sidBits, 20);
    this.strtab = this.alloc(Math.max(8 * 2 ** (this.strtabLog2 - 8), 64), 'the L1 stream table');
  }

  private *setupIrqs(c: SmmuCaps): Guest<void> {
    yield* this.regs.write32(SMMU_IRQ_CTRL, 0);
    yield* this.pollAck(SMMU_IRQ_CTRLACK, 0, 'IRQ_CTRL 0');
    if (c.msi) {
      // Wired interrupts: no MSI addresses.
      yield* this.regs.write64(SMMU_GERROR_IRQ_CFG0, 0);
      yield* this.regs.write64(SMMU_EVENTQ_IRQ_CFG0, 0);
    }
    this.k.registerIrq(this.irqs.eventq, 'smmu-eventq', () => this.eventIrq());
    this.k.registerIrq(this.irqs.gerror, 'smmu-gerror', () => this.gerrorIrq());
    const want = IRQ_CTRL_EVENTQ_IRQEN | IRQ_CTRL_GERROR_IRQEN;
    yield* this.regs.write32(SMMU_IRQ_CTRL, want);
    yield* this.pollAck(SMMU_IRQ_CTRLACK, want, 'IRQ_CTRL');
  }

  // ------------------------------------------------------------------ command queue

  /** Issues commands followed by CMD_SYNC and waits for the SYNC; 0 or -errno. */
  *submit(cmds: readonly Uint32Array[]): Guest<number> {
    const all = this.injectCommand ? [this.injectCommand, ...cmds] : [...cmds];
    this.injectCommand = undefined;
    let rc = 0;
    const batch = Math.min(CMD_BATCH, 2 ** this.cmdqLog2 - 1);
    for (let i = 0; i === 0 || i < all.length; i += batch) {
      const r = yield* this.k.irqsMasked(this.submitBatch(all.slice(i, i + batch)));
      if (r !== 0 && rc === 0) rc = r;
    }
    return rc;
  }

  private *submitBatch(cmds: readonly Uint32Array[]): Guest<number> {
    const log2 = this.cmdqLog2;
    const list = [...cmds, cmdSync()];
    // Room: wait until the queue holds at most 2^log2 - list.length entries.
    for (let i = 0; ; i++) {
      const cons = (yield* this.regs.read32(SMMU_CMDQ_CONS)) & qMask(log2);
      const used = (this.cmdqProd - cons + 2 * 2 ** log2) % (2 * 2 ** log2);
      if (used + list.length <= 2 ** log2) break;
      if (i >= POLL_LIMIT) return -ETIMEDOUT;
      yield* this.fixCmdqError();
    }
    for (const c of list) {
      const bytes = new Uint8Array(c.buffer, c.byteOffset, 16);
      if (!this.k.mem.write(this.cmdq + 16 * qIndex(this.cmdqProd, log2), bytes)) return -EIO;
      this.cmdqProd = qNext(this.cmdqProd, log2);
    }
    this.k.stats.commands += list.length;
    yield* this.regs.write32(SMMU_CMDQ_PROD, this.cmdqProd);
    const target = this.cmdqProd;
    let rc = 0;
    for (let i = 0; i < POLL_LIMIT; i++) {
      const cons = yield* this.regs.read32(SMMU_CMDQ_CONS);
      if ((cons & qMask(log2)) === (target & qMask(log2))) return rc;
      // CONS.ERR keeps the last error code; only an active GERROR.CMDQ_ERR means a stopped queue.
      if (((cons >>> 24) & 0x7f) !== 0) {
        const e = yield* this.fixCmdqError();
        if (e !== 0) rc = e;
      }
    }
    return -ETIMEDOUT;
  }

  /**
   * arm_smmu_cmdq_skip_err: when GERROR.CMDQ_ERR is active, names the error, replaces the
   * offending command with a CMD_SYNC (CERROR_ILL, CERROR_ABT; retried for CERROR_ATC_INV_SYNC)
   * and acknowledges GERROR so that the queue restarts. Runs with IRQs masked (from the
   * submitter, or as the GERROR handler). Returns -EINVAL / -EIO for the error handled, else 0.
   */
  *fixCmdqError(): Guest<number> {
    const gerror = yield* this.regs.read32(SMMU_GERROR);
    const gerrorn = yield* this.regs.read32(SMMU_GERRORN);
    if (((gerror ^ gerrorn) & GERROR_CMDQ_ERR) === 0) return 0;
    const cons = yield* this.regs.read32(SMMU_CMDQ_CONS);
    const err = (cons >>> 24) & 0x7f;
    const at = this.cmdq + 16 * qIndex(cons, this.cmdqLog2);
    const opcode = this.k.mem.read8(at);
    const name = CERROR_NAMES[err] ?? `CERROR ${err}`;
    this.cmdErrors.push({ error: name, opcode });
    this.k.stats.commandErrors++;
    this.k.printk(`smmu: ${name} on command opcode ${hex(opcode)} at CONS ${cons & qMask(this.cmdqLog2)}`);
    if (err === CERROR_ILL || err === CERROR_ABT) {
      const sync = cmdSync();
      this.k.mem.write(at, new Uint8Array(sync.buffer, 0, 16));
    }
    yield* this.regs.write32(SMMU_GERRORN, (gerrorn ^ GERROR_CMDQ_ERR) >>> 0);
    return err === CERROR_ILL ? -EINVAL : err === CERROR_ATC_INV_SYNC ? 0 : -EIO;
  }

  // ------------------------------------------------------------------ interrupts

  /** Event queue: drain every record, advance CONS (with overflow acknowledged), hand records on. */
  *eventIrq(): Guest<void> {
    const log2 = this.eventqLog2;
    const m = qMask(log2);
    const prod = yield* this.regs.read32(SMMU_EVENTQ_PROD);
    let cons = (yield* this.regs.read32(SMMU_EVENTQ_CONS)) & m;
    for (let n = 0; n < 2 ** log2 && cons !== (prod & m); n++) {
      const bytes = this.k.mem.read(this.eventq + 32 * qIndex(cons, log2), 32);
      cons = qNext(cons, log2);
      if (bytes === undefined) continue;
      const ev = decodeEvent(new Uint32Array(bytes.buffer, bytes.byteOffset, 8));
      this.k.stats.events++;
      this.k.printk(
        `smmu: event ${ev.name} sid ${ev.streamId}${ev.substreamId >= 0 ? ` ssid ${ev.substreamId}` : ''} addr ${hex(eventInputAddr(ev))}`,
      );
      this.faultSink(this.masters.get(ev.streamId), ev);
    }
    if ((prod & 0x8000_0000) !== 0) this.k.printk('smmu: event queue overflowed');
    yield* this.regs.write32(SMMU_EVENTQ_CONS, ((cons & m) | (prod & 0x8000_0000)) >>> 0);
  }

  /** GERROR: command-queue errors are recovered; every other active error is logged and acknowledged. */
  *gerrorIrq(): Guest<void> {
    this.k.stats.gerrors++;
    yield* this.fixCmdqError();
    const gerror = yield* this.regs.read32(SMMU_GERROR);
    const gerrorn = yield* this.regs.read32(SMMU_GERRORN);
    const active = (gerror ^ gerrorn) & ~GERROR_CMDQ_ERR;
    if (active !== 0) {
      this.k.printk(`smmu: global errors ${hex(active)}`);
      yield* this.regs.write32(SMMU_GERRORN, (gerrorn ^ active) >>> 0);
    }
  }

  // ------------------------------------------------------------------ stream table and CDs

  private *steAddr(sid: number): Guest<number> {
    if (this.strtabSplit === 0) {
      if (sid >= 2 ** this.strtabLog2) return -ERANGE;
      return this.strtab + STE_BYTES * sid;
    }
    if (sid >= 2 ** this.strtabLog2) return -ERANGE;
    const l1 = Math.floor(sid / 2 ** this.strtabSplit);
    let l2 = this.l2.get(l1);
    if (l2 === undefined) {
      const a = this.k.alloc?.alloc(STE_BYTES * 2 ** this.strtabSplit);
      if (a === undefined) return -ENOMEM;
      l2 = a;
      this.l2.set(l1, l2);
      writeWords(this.k, this.strtab + 8 * l1, encodeL1std(this.strtabSplit + 1, l2));
      const rc = yield* this.submit([cmdCfgiSte(sid, false)]);
      if (rc !== 0) return rc;
    }
    return l2 + STE_BYTES * (sid % 2 ** this.strtabSplit);
  }

  /** Writes CD `ssid` (words 1..7 first, then word 0 with V), allocating a leaf when needed; CFGI + SYNC. */
  *writeCd(m: SmmuMaster, ssid: number, p: CdParams | null): Guest<number> {
    let newLeaf = false;
    let addr = m.cd.cdAddr(ssid);
    if (addr === undefined) {
      if (p === null) return 0;
      const leaf = this.k.alloc?.alloc(CD_BYTES * 2 ** GuestCdTable.SPLIT);
      if (leaf === undefined) return -ENOMEM;
      const l1 = Math.floor(ssid / 2 ** GuestCdTable.SPLIT);
      m.cd.leaves.set(l1, leaf);
      writeWords(this.k, m.cd.ptr + 8 * l1, encodeL1cd(leaf));
      newLeaf = true;
      addr = m.cd.cdAddr(ssid)!;
    }
    const w = p === null ? new Uint32Array(16) : encodeCd(p);
    if (p === null) {
      writeWords(this.k, addr, w.subarray(0, 2));
      writeWords(this.k, addr + 8, w.subarray(2));
    } else {
      writeWords(this.k, addr + 8, w.subarray(2));
      writeWords(this.k, addr, w.subarray(0, 2));
    }
    return yield* this.submit([cmdCfgiCd(m.sid, ssid, !newLeaf)]);
  }

  /** The CD parameters of a stage-1 table with 4 KiB granule and 48-bit input. */
  cdParams(asid: number, ttb0: number): CdParams {
    return { t0sz: 16, granule0: 12, ttb0, ipsBits: Math.min(this.caps?.oasBits ?? 48, 48), asid };
  }

  /**
   * Attaches a function: CD table, DMA domain as CD 0, STE (Config = S1 translate, S1DSS = SSID0),
   * CFGI_STE + SYNC. Returns the master, or -errno.
   */
  *attach(fn: PciFunction): Guest<SmmuMaster | number> {
    const c = this.caps;
    if (c === undefined || this.k.alloc === undefined) return -EINVAL;
    const sid = fn.rid;
    if (this.masters.has(sid)) return this.masters.get(sid)!;
    const wanted = Math.min(fn.pasid?.width ?? 0, c.ssidBits);
    const twoLevel = c.cd2l && wanted > GuestCdTable.SPLIT;
    const ssidBits = twoLevel ? wanted : Math.min(wanted, LINEAR_CD_MAX_BITS);
    const fmt = twoLevel ? S1FMT_4K_L2 : S1FMT_LINEAR;
    const bytes = twoLevel ? 8 * 2 ** (ssidBits - GuestCdTable.SPLIT) : CD_BYTES * 2 ** ssidBits;
    const ptr = this.k.alloc.alloc(Math.max(bytes, 64));
    if (ptr === undefined) return -ENOMEM;
    const asid = this.k.asids.alloc();
    if (asid === undefined) return -ENOMEM;
    const domain = DmaDomain.create(this.k.alloc, asid, Math.min(c.oasBits, 48));
    if (domain === undefined) return -ENOMEM;
    const steAddr = yield* this.steAddr(sid);
    if (steAddr < 0) return steAddr;
    const m: SmmuMaster = { fn, sid, steAddr, cd: new GuestCdTable(fmt, ssidBits, ptr), ssidBits, domain };
    this.masters.set(sid, m);
    const rc = yield* this.writeCd(m, 0, this.cdParams(asid, domain.pt!.root));
    if (rc !== 0) return rc;
    const ste = encodeSte({
      config: 's1',
      s1ContextPtr: ptr,
      s1Fmt: fmt,
      s1CdMax: ssidBits,
      s1Dss: S1DSS_SSID0,
    });
    writeWords(this.k, steAddr + 8, ste.subarray(2));
    writeWords(this.k, steAddr, ste.subarray(0, 2));
    const rc2 = yield* this.submit([cmdCfgiSte(sid)]);
    if (rc2 !== 0) return rc2;
    this.k.printk(`smmu: ${fn.name} attached: sid ${sid}, ${ssidBits}-bit SSIDs, CD0 asid ${asid}`);
    return m;
  }

  // ------------------------------------------------------------------ TLB invalidation

  /** TLBI_NH_ASID + SYNC. */
  *invalidateAsid(asid: number): Guest<number> {
    return yield* this.submit([cmdTlbiNhAsid(0, asid)]);
  }

  /** TLBI_NH_VA (Leaf) every `step` bytes of each range (one per 4 KiB page or 2 MiB block) + SYNC. */
  *invalidateVa(asid: number, ranges: readonly { va: number; size: number; step: number }[]): Guest<number> {
    const cmds: Uint32Array[] = [];
    for (const r of ranges) {
      for (let a = r.va; a < r.va + r.size; a += r.step) cmds.push(cmdTlbiNhVa(0, asid, a, { leaf: true }));
    }
    return yield* this.submit(cmds);
  }
}

/** Writes u32 words little-endian into guest RAM. */
export function writeWords(k: Kernel, addr: number, w: Uint32Array): boolean {
  return k.mem.write(addr, new Uint8Array(w.buffer, w.byteOffset, w.length * 4));
}

/**
 * The host driver's command queue (IHI 0070 §3.5, §4.1, §7.1; Linux's arm_smmu_cmdq_issue_cmdlist
 * and arm_smmu_cmdq_skip_err, seed-spec §8.5): commands are written at PROD in host memory, PROD
 * is rung once per batch, and completion is a CMD_SYNC with CS = SIG_NONE whose consumption the
 * driver sees by polling CONS. A command the SMMU refuses stops the queue with CONS.ERR set and
 * GERROR.CMDQ_ERR active; the GERROR handler (driver.ts) calls `skipError`, which, as Linux does,
 * overwrites an illegal command with a CMD_SYNC before GERRORN is acknowledged, so the queue
 * resumes. The submitter then reports -EIO for its batch.
 *
 * The device is synchronous (it consumes commands while PROD is written), so a poll either sees
 * CONS reach PROD, sees an error to handle, or sees no progress at all, which is reported as
 * -ETIMEDOUT (the queue is disabled or halted).
 */

import { getField } from '../../arch/fields.ts';
import {
  CERROR_ABT,
  CERROR_ATC_INV_SYNC,
  CERROR_ILL,
  CERROR_NAMES,
  CMD_0_OP,
  CMD_SYNC,
  commandName,
} from '../../arch/smmuv3/commands.ts';
import { SMMU_CMDQ_CONS, SMMU_CMDQ_PROD } from '../../arch/smmuv3/registers.ts';
import type { PhysMem } from '../../hw/memory.ts';
import { qCount, qIndex, qMask, qNext } from '../../hw/smmuv3/queue.ts';
import type { Smmu } from '../../hw/smmuv3/smmu.ts';
import { EIO, ETIMEDOUT } from '../../uapi/errno.ts';
import { cmdSync } from './commands.ts';

export interface CmdqStats {
  /** Commands written to the queue, by name (CMD_SYNCs the driver adds included). */
  readonly byCommand: Record<string, number>;
  /** PROD doorbells and CMD_SYNCs issued. */
  batches: number;
  syncs: number;
  /** Command errors handled (CONS.ERR != 0), and ILL commands replaced by a CMD_SYNC. */
  errors: number;
  skipped: number;
  /** Submissions that returned -ETIMEDOUT. */
  timeouts: number;
}

/** Polls of CONS before a submission gives up (each poll may handle one command error). */
const POLL_LIMIT = 64;
/** Decision: a fetch abort (CERROR_ABT) is retried this many times in a row, then the queue is left halted. */
const ABT_RETRIES = 2;

export class CommandQueue {
  readonly base: number;
  readonly log2: number;
  readonly stats: CmdqStats = { byCommand: {}, batches: 0, syncs: 0, errors: 0, skipped: 0, timeouts: 0 };
  private prod = 0;
  /** Bumped by every handled command error: a submission that sees it move returns -EIO. */
  private errorSeq = 0;
  private abtAt = -1;
  private abtCount = 0;
  /** A recurring fetch abort was left unacknowledged: the queue is halted until GERRORN is written. */
  private halted = false;
  private readonly hw: Smmu;
  private readonly mem: PhysMem;
  /** The GERROR handler: reads GERROR, calls skipError for CMDQ_ERR, acknowledges. */
  private readonly onError: () => void;
  private readonly log: (msg: string) => void;

  constructor(
    hw: Smmu,
    mem: PhysMem,
    base: number,
    log2: number,
    onError: () => void,
    log: (msg: string) => void,
  ) {
    this.hw = hw;
    this.mem = mem;
    this.base = base;
    this.log2 = log2;
    this.onError = onError;
    this.log = log;
  }

  get size(): number {
    return 2 ** this.log2;
  }

  /** The value of SMMU_CMDQ_BASE: RA/WA hint (bit 62), address, LOG2SIZE. */
  baseRegister(): [lo: number, hi: number] {
    return [(this.base % 2 ** 32) + this.log2, Math.floor(this.base / 2 ** 32) | (1 << 30)];
  }

  /** Resets the shadow PROD (the reset sequence writes PROD = CONS = 0). */
  reset(): void {
    this.prod = 0;
    this.abtAt = -1;
    this.abtCount = 0;
    this.halted = false;
  }

  /**
   * Issues `cmds`, followed by a CMD_SYNC when `sync` is true, and waits until the SMMU has
   * consumed them. 0, -EIO when a command error was handled meanwhile (the batch's faulty command
   * was skipped, the others ran), or -ETIMEDOUT when the queue made no progress.
   */
  submit(cmds: readonly Uint32Array[], sync = true): number {
    const all = sync ? [...cmds, cmdSync()] : [...cmds];
    const seq = this.errorSeq;
    let next = 0;
    while (next < all.length) {
      const cons = this.hw.read32(SMMU_CMDQ_CONS) & qMask(this.log2);
      const free = this.size - qCount(this.prod, cons, this.log2);
      if (free <= 0) {
        this.stats.timeouts++;
        this.log('cmdq: queue full and not draining');
        return -ETIMEDOUT;
      }
      const n = Math.min(free, all.length - next);
      for (let i = 0; i < n; i++) this.write(all[next + i]!);
      next += n;
      this.stats.batches++;
      this.hw.write32(SMMU_CMDQ_PROD, this.prod);
      if (!this.waitConsumed()) {
        this.stats.timeouts++;
        this.log(`cmdq: CONS stuck at 0x${this.hw.read32(SMMU_CMDQ_CONS).toString(16)}`);
        return -ETIMEDOUT;
      }
    }
    return this.errorSeq !== seq ? -EIO : 0;
  }

  /** Writes one command at PROD and advances the shadow PROD. */
  private write(c: Uint32Array): void {
    const at = this.base + 16 * qIndex(this.prod, this.log2);
    for (let i = 0; i < 4; i++) this.mem.write32(at + 4 * i, c[i] ?? 0);
    const op = getField(c, CMD_0_OP);
    const name = commandName(op);
    this.stats.byCommand[name] = (this.stats.byCommand[name] ?? 0) + 1;
    if (op === CMD_SYNC) this.stats.syncs++;
    this.prod = qNext(this.prod, this.log2);
  }

  /** Polls CONS until it reaches PROD, handing command errors to the GERROR handler. */
  private waitConsumed(): boolean {
    const m = qMask(this.log2);
    for (let i = 0; i < POLL_LIMIT; i++) {
      const cons = this.hw.read32(SMMU_CMDQ_CONS);
      if ((cons & m) === (this.prod & m)) return true;
      const before = this.errorSeq;
      this.onError();
      if (this.errorSeq === before) return false;
    }
    return false;
  }

  /**
   * Handles CONS.ERR while GERROR.CMDQ_ERR is active, before the handler acknowledges it: an
   * illegal command is replaced by a CMD_SYNC (so the queue resumes after it); a fetch abort or an
   * ATC invalidation timeout is retried as it is (Linux's choice). Returns false when the error
   * must stay unacknowledged (a fetch abort that keeps recurring: the queue stays halted).
   */
  skipError(): boolean {
    const consReg = this.hw.read32(SMMU_CMDQ_CONS);
    const err = (consReg >>> 24) & 0x7f;
    const idx = qIndex(consReg, this.log2);
    // Already given up on this command: nothing more to do (and nothing more to log).
    const retryable = err === CERROR_ABT || err === CERROR_ATC_INV_SYNC;
    if (this.halted && retryable && idx === this.abtAt) return false;
    this.halted = false;
    const at = this.base + 16 * idx;
    const words = Uint32Array.from({ length: 4 }, (_, i) => this.mem.read32(at + 4 * i) >>> 0);
    this.stats.errors++;
    this.errorSeq++;
    const name = CERROR_NAMES[err] ?? `CERROR ${err}`;
    this.log(
      `cmdq: ${name} at CONS index ${idx}: ${commandName(getField(words, CMD_0_OP))} ` +
        `[${[...words].map((x) => `0x${x.toString(16).padStart(8, '0')}`).join(' ')}]`,
    );
    if (retryable) {
      this.abtCount = this.abtAt === idx ? this.abtCount + 1 : 1;
      this.abtAt = idx;
      if (this.abtCount > ABT_RETRIES) {
        this.log('cmdq: command fetch keeps aborting; leaving the queue halted');
        this.halted = true;
        return false;
      }
      this.log('cmdq: retrying command fetch');
      return true;
    }
    this.abtAt = -1;
    if (err === CERROR_ILL) {
      const sync = cmdSync();
      for (let i = 0; i < 4; i++) this.mem.write32(at + 4 * i, sync[i]!);
      this.stats.skipped++;
    }
    return true;
  }
}

/**
 * eventfd (fs/eventfd.c as of Linux 5.5, seed-spec.md §5.1) with the EFD_AUTORESET RFC of §5.2.
 *
 * The object is a 64-bit counter with a wait queue. User space writes add to it and reads take it
 * (all of it, or 1 with EFD_SEMAPHORE); in-kernel producers (VFIO interrupts, KVM ioeventfd) call
 * `signal`, and in-kernel consumers (KVM irqfd) hook the wait queue and take the count with
 * `doRead`. The counter is a bigint: every value up to 2^64−1 is exact.
 *
 * Limits: a user write may leave at most 0xFFFF_FFFF_FFFF_FFFE in the counter (a write of
 * 0xFFFF_FFFF_FFFF_FFFF is EINVAL); only the kernel-side signal can reach 2^64−1, where it
 * saturates, and poll then reports EPOLLERR.
 *
 * EFD_AUTORESET (never merged): a poll that asks for EPOLLIN and finds the counter non-zero
 * reports it readable and sets it to zero, saving the read(2) a QEMU event loop makes after
 * every wake-up. The reviewers' objection (§5.3) is that poll is expected to be idempotent; the
 * tests show what breaks when it is not.
 *
 * Where kernels after 5.5 differ (followed here: 5.5):
 * - write(2) accepts any count ≥ 8 and uses the first 8 bytes; kernels since 6.4 (commit
 *   "eventfd: strictly check the count parameter of eventfd_write", version approximate) require
 *   exactly 8.
 * - read moved to read_iter (5.12-era) with the same observable result; the EFAULT after the
 *   counter was consumed remains.
 * - eventfd_signal(ctx, n) became eventfd_signal(ctx), always adding 1 (6.8).
 * - fdinfo gained "eventfd-id" (5.18-era) and "eventfd-semaphore" (6.7-era) lines; 5.5 prints only
 *   "eventfd-count".
 */

import { hex } from '../arch/bits.ts';
import { EAGAIN, EBADF, EFAULT, EINVAL, ENOMEM } from '../uapi/errno.ts';
import {
  EFD_AUTORESET,
  EFD_FLAGS_SET,
  EFD_FLAGS_SET_AUTORESET,
  EFD_SEMAPHORE,
  EFD_SHARED_FCNTL_FLAGS,
  EVENTFD_ULLONG_MAX,
} from '../uapi/eventfd.ts';
import { O_NONBLOCK, O_RDWR } from '../uapi/fcntl.ts';
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT } from '../uapi/poll.ts';
import {
  File,
  type FileOperations,
  FMODE_READ,
  FMODE_WRITE,
  type IoResult,
  type PollTable,
  WouldBlock,
} from './kernel/file.ts';
import type { Scheduler } from './kernel/sched.ts';
import { WaitQueue } from './kernel/waitqueue.ts';
import type { UserPtr } from './uaccess.ts';

const ULLONG_MAX = EVENTFD_ULLONG_MAX;
const ALL_EVENTS = 0xffff_ffff;

export interface EventfdStats {
  reads: number;
  writes: number;
  /** Kernel-side signals, and how many of them were clamped at 2^64−1. */
  signals: number;
  saturations: number;
  polls: number;
  /** Polls that reset the counter (EFD_AUTORESET). */
  autoresets: number;
  /** eventfd_signal called from inside an eventfd wake-up: refused, as Linux's per-CPU guard does. */
  nestedSignals: number;
}

let nextEventfdId = 0;

/** struct eventfd_ctx */
export class EventfdCtx {
  /** The 64-bit counter. */
  count: bigint;
  /** Creation flags (EFD_SEMAPHORE, EFD_AUTORESET, EFD_NONBLOCK, EFD_CLOEXEC). */
  readonly flags: number;
  readonly wqh = new WaitQueue();
  /** eventfd-id of newer kernels' fdinfo (an ida number). */
  readonly id: number;
  readonly stats: EventfdStats = {
    reads: 0,
    writes: 0,
    signals: 0,
    saturations: 0,
    polls: 0,
    autoresets: 0,
    nestedSignals: 0,
  };
  private readonly sched: Scheduler;
  private refs = 1;
  private waking = false;

  constructor(count: bigint, flags: number, sched: Scheduler) {
    this.count = count;
    this.flags = flags;
    this.sched = sched;
    this.id = nextEventfdId++;
  }

  get semaphore(): boolean {
    return (this.flags & EFD_SEMAPHORE) !== 0;
  }

  get autoreset(): boolean {
    return (this.flags & EFD_AUTORESET) !== 0;
  }

  /** eventfd_ctx_get / eventfd_ctx_put: in-kernel users (irqfd) hold the context past close. */
  get(): this {
    this.refs++;
    return this;
  }

  put(): void {
    this.refs--;
  }

  get refcount(): number {
    return this.refs;
  }

  /** Wakes the queue with `key`, marking the wake-up so that a nested signal can be refused. */
  private wake(key: number): void {
    if (!this.wqh.active) return;
    const was = this.waking;
    this.waking = true;
    try {
      this.wqh.wakeUp(key);
    } finally {
      this.waking = was;
    }
  }

  /**
   * eventfd_signal(ctx, n): adds n, clamped so that the counter saturates at 2^64−1; wakes
   * readers. Returns the amount added. Called from inside one of this eventfd's wake-ups it adds
   * nothing and returns 0 (Linux's per-CPU recursion guard, which also WARNs).
   */
  signal(n: bigint | number = 1n): bigint {
    return this.sched.enter(() => {
      if (this.waking) {
        this.stats.nestedSignals++;
        return 0n;
      }
      let add = BigInt.asUintN(64, BigInt(n));
      this.stats.signals++;
      if (ULLONG_MAX - this.count < add) {
        add = ULLONG_MAX - this.count;
        this.stats.saturations++;
      }
      this.count += add;
      // The eventfd id is left out: it comes from a process-wide counter, so it would make traces
      // of the same scenario differ between runs in one process.
      this.sched.tracepoint?.('eventfd_signal', { n: Number(add), count: hex(this.count) });
      this.wake(EPOLLIN);
      return add;
    });
  }

  /**
   * eventfd_ctx_do_read: takes the count (all of it, or 1 for a semaphore) without waking
   * anyone; the in-kernel reader (irqfd) uses it from its wake function.
   */
  doRead(): bigint {
    const n = this.semaphore ? 1n : this.count;
    this.count -= n;
    return n;
  }

  /**
   * eventfd_ctx_remove_wait_queue: unhooks an in-kernel waiter and takes whatever count is left
   * (waking writers if something was taken). Returns the amount taken.
   */
  removeWaitQueue(entry: import('./kernel/waitqueue.ts').WaitEntry): bigint {
    return this.sched.enter(() => {
      this.wqh.remove(entry);
      if (this.count === 0n) return 0n;
      const n = this.doRead();
      this.wake(EPOLLOUT);
      return n;
    });
  }

  /** The poll mask for a given counter value (no side effects). */
  static maskOf(count: bigint): number {
    let events = 0;
    if (count > 0n) events |= EPOLLIN;
    if (count === ULLONG_MAX) events |= EPOLLERR;
    if (ULLONG_MAX - 1n > count) events |= EPOLLOUT;
    return events;
  }

  /**
   * eventfd_poll. With EFD_AUTORESET and a caller that asks for EPOLLIN, a non-zero counter is
   * reset; the mask still comes from the value before the reset, plus EPOLLOUT. The patch does
   * not wake blocked writers after the reset (its own TODO): they keep sleeping.
   */
  poll(pt: PollTable | null): number {
    this.stats.polls++;
    if (pt !== null) pt.wait(this.wqh);
    const count = this.count;
    let events = EventfdCtx.maskOf(count);
    const requested = pt === null ? ALL_EVENTS : pt.key;
    if (this.autoreset && count !== 0n && (requested & EPOLLIN) !== 0) {
      this.count = 0n;
      this.stats.autoresets++;
      events |= EPOLLOUT;
    }
    return events;
  }

  read(f: File, buf: UserPtr, count: number): IoResult {
    if (count < 8) return -EINVAL;
    if (this.count === 0n) {
      if ((f.flags & O_NONBLOCK) !== 0) return -EAGAIN;
      // Once asleep only the counter matters (O_NONBLOCK set meanwhile does not end the sleep).
      const retry = (): IoResult => (this.count === 0n ? new WouldBlock([this.wqh], retry) : this.take(buf));
      return new WouldBlock([this.wqh], retry);
    }
    return this.take(buf);
  }

  private take(buf: UserPtr): IoResult {
    this.stats.reads++;
    const value = this.doRead();
    this.wake(EPOLLOUT);
    // put_user after the counter was consumed: a bad buffer loses the value (5.5 behaviour).
    return buf.putU64(value) ? 8 : -EFAULT;
  }

  write(f: File, buf: UserPtr, count: number): IoResult {
    if (count < 8) return -EINVAL;
    const v = buf.getU64();
    if (v === undefined) return -EFAULT;
    if (v === ULLONG_MAX) return -EINVAL;
    const room = (): boolean => ULLONG_MAX - this.count > v;
    const add = (): IoResult => {
      this.stats.writes++;
      this.count += v;
      this.wake(EPOLLIN);
      return 8;
    };
    if (room()) return add();
    if ((f.flags & O_NONBLOCK) !== 0) return -EAGAIN;
    // Asleep: only room for the value (copied before sleeping) ends the wait.
    const retry = (): IoResult => (room() ? add() : new WouldBlock([this.wqh], retry));
    return new WouldBlock([this.wqh], retry);
  }

  /** The /proc/<pid>/fdinfo line: "eventfd-count: %16llx". */
  fdinfo(): string {
    return `eventfd-count: ${this.count.toString(16).padStart(16, ' ')}\n`;
  }

  release(): void {
    this.wake(EPOLLHUP);
    this.put();
  }
}

const eventfdFops: FileOperations = {
  name: '[eventfd]',
  read: (f, buf, count) => ctxOf(f).read(f, buf, count),
  write: (f, buf, count) => ctxOf(f).write(f, buf, count),
  poll: (f, pt) => ctxOf(f).poll(pt),
  release: (f) => ctxOf(f).release(),
  fdinfo: (f) => ctxOf(f).fdinfo(),
};

function ctxOf(f: File): EventfdCtx {
  return f.priv as EventfdCtx;
}

/** eventfd_fget / eventfd_ctx_fileget: the context behind a file, if it is an eventfd. */
export function eventfdCtxOfFile(f: File): EventfdCtx | undefined {
  return f.ops === eventfdFops ? (f.priv as EventfdCtx) : undefined;
}

/**
 * eventfd_ctx_fdget: the eventfd context behind `fd` in a process's fd table; -EBADF when the fd
 * is not open, -EINVAL when its file is not an eventfd. No reference is taken: a caller that keeps
 * the context calls `get()` on it.
 */
export function eventfdCtxFdget(
  fds: { fileOf(fd: number): File | undefined },
  fd: number,
): EventfdCtx | number {
  const f = fds.fileOf(fd);
  if (f === undefined) return -EBADF;
  return eventfdCtxOfFile(f) ?? -EINVAL;
}

export interface EventfdCreateOptions {
  /** Accept EFD_AUTORESET (the RFC applied). */
  readonly autoreset: boolean;
  /** Allocation fails (ENOMEM), for tests of that path. */
  readonly failAlloc?: boolean;
}

/**
 * do_eventfd's checks and object: flags outside the accepted set → EINVAL; with the RFC,
 * EFD_SEMAPHORE together with EFD_AUTORESET → EINVAL; then the context and its anonymous file
 * (f_flags O_RDWR plus O_NONBLOCK if asked). The caller installs it in an fd table (EMFILE there
 * frees it again).
 */
export function eventfdCreate(
  initval: number,
  flags: number,
  sched: Scheduler,
  opts: EventfdCreateOptions,
): File | number {
  const allowed = opts.autoreset ? EFD_FLAGS_SET_AUTORESET : EFD_FLAGS_SET;
  if (!Number.isInteger(flags) || (flags & ~allowed) !== 0 || flags < 0) return -EINVAL;
  if (opts.autoreset && (flags & (EFD_SEMAPHORE | EFD_AUTORESET)) === (EFD_SEMAPHORE | EFD_AUTORESET))
    return -EINVAL;
  if (opts.failAlloc === true) return -ENOMEM;
  // The syscall's count is an unsigned int: C truncates wider values.
  const count = BigInt(Math.trunc(Number.isFinite(initval) ? initval : 0) >>> 0);
  const ctx = new EventfdCtx(count, flags, sched);
  return new File(
    eventfdFops,
    O_RDWR | (flags & EFD_SHARED_FCNTL_FLAGS & O_NONBLOCK),
    FMODE_READ | FMODE_WRITE,
    ctx,
  );
}

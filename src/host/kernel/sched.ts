/**
 * Sleeping syscalls, the run queue and the virtual clock. A syscall that must wait becomes a
 * `Pending` (a thread asleep in the kernel); wake-ups make it runnable; the scheduler runs
 * runnable syscalls in the order they became runnable, after the kernel entry that woke them has
 * finished (never in the middle of a waker), so that every wake function of a wake-up runs before
 * any woken task looks at the state. A woken syscall tries again and either completes or sleeps
 * on, keeping its place in the wait queues. Signals end a sleep with EINTR; timeouts come from
 * a virtual clock that only `advance` moves. Nothing here reads wall-clock time.
 */

import { EINTR } from '../../uapi/errno.ts';
import { type IoResult, WouldBlock } from './file.ts';
import { afterWakeups, WaitEntry, WaitQueue } from './waitqueue.ts';

export type PendingState = 'blocked' | 'done';

/** A syscall asleep in the kernel. Inspect `state` and `result`, or set `onDone`. */
export class Pending {
  readonly id: number;
  readonly pid: number;
  /** "read(fd 4)", "poll(2 fds)" */
  readonly label: string;
  state: PendingState = 'blocked';
  /** The syscall's return value once done (bytes, a count, or -errno). */
  result = 0;
  /** How many times it was woken and tried again. */
  retries = 0;
  /** Called once when it completes (inside the kernel entry that finished it). */
  onDone: ((result: number) => void) | undefined = undefined;
  /** @internal the kernel's own completion listeners (traces), kept apart from the caller's onDone */
  readonly listeners: ((result: number) => void)[] = [];

  /** @internal the next attempt of the operation */
  attempt: () => IoResult;
  /** @internal run when the syscall ends for any reason (undo per-call registrations) */
  readonly cleanup: (() => void) | undefined;
  /** @internal wait entries by queue, with the events they wake for (undefined: any) */
  readonly entries = new Map<WaitQueue, { entry: WaitEntry; events: number | undefined }>();
  /** @internal */
  deadline: number | undefined = undefined;
  /** @internal result when the deadline passes (poll: 0) */
  timeoutResult = 0;
  /** @internal */
  queued = false;

  constructor(id: number, pid: number, label: string, attempt: () => IoResult, cleanup?: () => void) {
    this.id = id;
    this.pid = pid;
    this.label = label;
    this.attempt = attempt;
    this.cleanup = cleanup;
  }

  get done(): boolean {
    return this.state === 'done';
  }
}

export type SyscallOutcome = number | Pending;

export class Scheduler {
  /** Virtual time in nanoseconds. */
  private now = 0;
  private nextId = 1;
  private depth = 0;
  private readonly runQueue: Pending[] = [];
  private readonly sleeping = new Set<Pending>();
  private timerSeq = 0;
  private readonly timers: { at: number; seq: number; p: Pending }[] = [];
  /**
   * Kernel tracepoints (like Linux's trace events): subsystems call it with a name and a few
   * values when it is set; traces and reports set it. Nothing is computed when it is unset.
   */
  tracepoint: ((name: string, args: Record<string, number | string>) => void) | undefined = undefined;

  get nowNs(): number {
    return this.now;
  }

  /** Syscalls currently asleep, oldest first. */
  get blocked(): Pending[] {
    return [...this.sleeping].sort((a, b) => a.id - b.id);
  }

  /**
   * Runs `fn` as one kernel entry: wake-ups inside it queue their tasks, which run when the
   * outermost entry returns.
   */
  enter<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      if (this.depth === 0) this.runPending();
    }
  }

  /**
   * Tries `attempt`; if it would block, parks it as a Pending that retries on every wake-up of
   * the queues it names, until it completes, is interrupted, or `timeoutNs` passes (undefined:
   * no timeout).
   */
  run(
    pid: number,
    label: string,
    attempt: () => IoResult,
    opts: { timeoutNs?: number; timeoutResult?: number; cleanup?: () => void } = {},
  ): SyscallOutcome {
    const first = attempt();
    if (!(first instanceof WouldBlock)) {
      opts.cleanup?.();
      return first;
    }
    const p = new Pending(this.nextId++, pid, label, attempt, opts.cleanup);
    this.sleeping.add(p);
    this.watch(p, first);
    if (first.retry !== undefined) p.attempt = first.retry;
    if (opts.timeoutNs !== undefined) {
      p.deadline = this.now + opts.timeoutNs;
      p.timeoutResult = opts.timeoutResult ?? 0;
      this.timers.push({ at: p.deadline, seq: this.timerSeq++, p });
    }
    return p;
  }

  /** Adds wait entries for queues the attempt named and the task is not yet on. */
  private watch(p: Pending, wb: WouldBlock): void {
    for (const w of wb.queues) {
      const q = w instanceof WaitQueue ? w : w.queue;
      // undefined: wake on any key; else wake when the key intersects (0 wakes everyone).
      const events = w instanceof WaitQueue ? undefined : w.events;
      const existing = p.entries.get(q);
      if (existing !== undefined) {
        // The same queue named twice (two pollfds on one file): wake for either's events.
        existing.events =
          existing.events === undefined || events === undefined ? undefined : existing.events | events;
        continue;
      }
      const holder: { entry: WaitEntry; events: number | undefined } = {
        entry: new WaitEntry((key) => {
          const ev = holder.events;
          if (ev === undefined || key === 0 || (key & ev) !== 0) this.makeRunnable(p);
        }, `pending ${p.id} (${p.label})`),
        events,
      };
      p.entries.set(q, holder);
      q.add(holder.entry);
    }
  }

  private makeRunnable(p: Pending): void {
    if (p.state === 'done' || p.queued) return;
    p.queued = true;
    this.runQueue.push(p);
    // Outside any kernel entry (a device model waking a queue directly) the woken tasks still
    // wait until every wake function of this wake-up has run.
    if (this.depth === 0 && !afterWakeups(() => this.runPending())) this.runPending();
  }

  /** Runs every runnable syscall, in the order they became runnable. */
  private runPending(): void {
    if (this.depth > 0) return;
    this.depth++;
    try {
      for (let p = this.runQueue.shift(); p !== undefined; p = this.runQueue.shift()) {
        p.queued = false;
        if (p.state === 'done') continue;
        p.retries++;
        const r = p.attempt();
        if (r instanceof WouldBlock) {
          this.watch(p, r);
          if (r.retry !== undefined) p.attempt = r.retry;
        } else this.complete(p, r);
      }
    } finally {
      this.depth--;
    }
  }

  private complete(p: Pending, result: number): void {
    if (p.state === 'done') return;
    for (const [q, w] of p.entries) q.remove(w.entry);
    p.entries.clear();
    this.sleeping.delete(p);
    p.state = 'done';
    p.result = result;
    p.cleanup?.();
    if (p.deadline !== undefined) {
      const i = this.timers.findIndex((t) => t.p === p);
      if (i >= 0) this.timers.splice(i, 1);
    }
    for (const l of p.listeners) l(result);
    p.onDone?.(result);
  }

  /** A signal to the sleeping thread: the syscall returns -EINTR. False if it was not asleep. */
  interrupt(p: Pending): boolean {
    if (p.state === 'done') return false;
    this.enter(() => this.complete(p, -EINTR));
    return true;
  }

  /** Ends every sleep of a process (it is exiting); returns how many. */
  interruptAll(pid: number): number {
    const mine = this.blocked.filter((p) => p.pid === pid);
    this.enter(() => {
      for (const p of mine) this.complete(p, -EINTR);
    });
    return mine.length;
  }

  /** Moves virtual time forward, firing timeouts in deadline order. */
  advance(ns: number): void {
    if (!(ns >= 0)) return;
    const end = this.now + ns;
    this.enter(() => {
      for (;;) {
        this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const t = this.timers[0];
        if (t === undefined || t.at > end) break;
        this.timers.shift();
        this.now = t.at;
        if (t.p.state !== 'done') this.complete(t.p, t.p.timeoutResult);
      }
      this.now = end;
    });
  }
}

/**
 * The VMM's main loop (QEMU's main-loop/aio: a poll over registered file descriptors, a handler
 * per ready fd). In vsva it is run to quiescence by whoever drives the machine; it never sleeps:
 * each `runOnce` is one poll(2) with a zero timeout, then the handlers of the ready fds.
 *
 * It counts its own syscalls so that a plain eventfd and an EFD_AUTORESET one (seed-spec §5) can
 * be compared on the same workload: with a plain eventfd a handler must read(2) the counter to
 * clear the readiness (QEMU's event_notifier_test_and_clear), with EFD_AUTORESET the poll that
 * reported it has already reset it, so `eventfd()` fds created through the loop with
 * `autoreset: true` are not read.
 */

import type { Process } from '../host/kernel/process.ts';
import { EFD_AUTORESET, EFD_CLOEXEC, EFD_NONBLOCK } from '../uapi/eventfd.ts';
import { POLLIN } from '../uapi/poll.ts';

export type FdHandler = (revents: number) => void;

interface Watch {
  readonly fd: number;
  readonly name: string;
  readonly events: number;
  readonly handler: FdHandler;
}

export interface EventLoopStats {
  /** poll(2) calls. */
  polls: number;
  /** read(2) calls made to clear eventfds. */
  reads: number;
  /** Handler invocations. */
  dispatches: number;
}

export class EventLoop {
  readonly proc: Process;
  /** Whether eventfds made by `eventfd()` use EFD_AUTORESET (and so are never read). */
  readonly autoreset: boolean;
  readonly stats: EventLoopStats = { polls: 0, reads: 0, dispatches: 0 };
  private readonly watches = new Map<number, Watch>();
  private readonly autoresetFds = new Set<number>();

  constructor(proc: Process, opts: { autoreset?: boolean } = {}) {
    this.proc = proc;
    this.autoreset = opts.autoreset ?? false;
  }

  /** Syscalls the loop made: polls plus reads. */
  get syscalls(): number {
    return this.stats.polls + this.stats.reads;
  }

  /**
   * A non-blocking, close-on-exec eventfd for a notifier (EFD_AUTORESET when the loop uses it):
   * the fd, or -errno.
   */
  eventfd(): number {
    const flags = EFD_NONBLOCK | EFD_CLOEXEC | (this.autoreset ? EFD_AUTORESET : 0);
    const fd = this.proc.eventfd2(0, flags);
    if (fd >= 0 && this.autoreset) this.autoresetFds.add(fd);
    return fd;
  }

  /** Watches `fd` for `events` (default POLLIN). */
  add(fd: number, name: string, handler: FdHandler, events = POLLIN): void {
    this.watches.set(fd, { fd, name, events, handler });
  }

  remove(fd: number): void {
    this.watches.delete(fd);
    this.autoresetFds.delete(fd);
  }

  /** Names of the watched fds, in fd order (inspection). */
  get watched(): string[] {
    return [...this.watches.values()].sort((a, b) => a.fd - b.fd).map((w) => `${w.fd}:${w.name}`);
  }

  /**
   * event_notifier_test_and_clear: consumes an eventfd's count. With EFD_AUTORESET the poll
   * already reset it, so nothing is read. Returns the count read (0 with AUTORESET or when
   * nothing was pending), or -errno.
   */
  clear(fd: number): number {
    if (this.autoresetFds.has(fd)) return 0;
    const buf = new Uint8Array(8);
    this.stats.reads++;
    const r = this.proc.read(fd, buf);
    if (typeof r !== 'number') return 0; // non-blocking fds never sleep; keep the type honest
    if (r < 0) return r;
    return new DataView(buf.buffer).getUint32(0, true);
  }

  /** One poll over every watched fd (timeout 0), then the handlers of the ready ones in fd order. Returns how many ran. */
  runOnce(): number {
    if (this.watches.size === 0) return 0;
    const ws = [...this.watches.values()].sort((a, b) => a.fd - b.fd);
    const fds = ws.map((w) => ({ fd: w.fd, events: w.events, revents: 0 }));
    this.stats.polls++;
    const r = this.proc.poll(fds, 0);
    if (typeof r !== 'number' || r <= 0) return 0;
    let ran = 0;
    for (let i = 0; i < ws.length; i++) {
      const revents = fds[i]!.revents;
      const w = ws[i]!;
      if (revents === 0 || this.watches.get(w.fd) !== w) continue;
      this.stats.dispatches++;
      ran++;
      w.handler(revents);
    }
    return ran;
  }

  /** Runs until a poll finds nothing ready (at most `limit` rounds). Returns the handlers run. */
  runUntilIdle(limit = 1000): number {
    let total = 0;
    for (let i = 0; i < limit; i++) {
      const n = this.runOnce();
      if (n === 0) break;
      total += n;
    }
    return total;
  }
}

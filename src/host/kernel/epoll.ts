/**
 * epoll (fs/eventpoll.c, v5.x behaviour): an interest set of (file, fd) items, a ready list fed
 * by wake-ups of the items' wait queues, and epoll_wait, which re-polls every ready item before
 * reporting it. Level-triggered items go back on the ready list after being reported (so the next
 * epoll_wait polls them again); EPOLLET items do not; EPOLLONESHOT items are disabled until
 * EPOLL_CTL_MOD re-arms them.
 *
 * What matters for the seeds: epoll calls the file's poll with the item's registered events as
 * the requested events — at EPOLL_CTL_ADD, at EPOLL_CTL_MOD, before reporting an item, and when
 * someone polls the epoll fd itself. With an EFD_AUTORESET eventfd every one of those polls that
 * finds the counter non-zero also resets it.
 *
 * Not modelled: EPOLLEXCLUSIVE (refused with EINVAL), EPOLLWAKEUP (accepted, no effect: there is
 * no suspend), busy polling.
 */

import { EEXIST, EINVAL, ELOOP, ENOENT, EPERM } from '../../uapi/errno.ts';
import {
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLET,
  EPOLLEXCLUSIVE,
  EPOLLHUP,
  EPOLLIN,
  EPOLLONESHOT,
  EPOLLRDNORM,
  EPOLLWAKEUP,
} from '../../uapi/poll.ts';
import { File, type FileOperations, FMODE_READ, type IoResult, type PollTable, WouldBlock } from './file.ts';
import { WaitEntry, WaitQueue } from './waitqueue.ts';

/** struct epoll_event as vsva passes it: the event mask and the user's 64-bit data. */
export interface EpollEvent {
  events: number;
  data: bigint | number;
}

/** Flags that survive EPOLLONESHOT disabling an item (EP_PRIVATE_BITS). */
const EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/** ep_max_events: INT_MAX / sizeof(struct epoll_event) (16 bytes on arm64). */
export const EP_MAX_EVENTS = Math.floor(0x7fff_ffff / 16);

interface EpItem {
  readonly fd: number;
  readonly file: File;
  events: number;
  data: bigint | number;
  /** On the ready list. */
  ready: boolean;
  /** Our entries on the target's wait queues. */
  readonly waits: WaitEntry[];
  /** Removes the item when its file is released. */
  readonly onRelease: () => void;
}

export interface EpollStats {
  /** Calls to a target file's poll made by this epoll. */
  itemPolls: number;
  callbacks: number;
  reported: number;
}

export class EventPoll {
  private readonly items = new Map<string, EpItem>();
  private rdllist: EpItem[] = [];
  /** Threads sleeping in epoll_wait. */
  readonly wq = new WaitQueue();
  /** Pollers of the epoll fd itself. */
  readonly pollWait = new WaitQueue();
  readonly stats: EpollStats = { itemPolls: 0, callbacks: 0, reported: 0 };
  file: File | undefined = undefined;

  get size(): number {
    return this.items.size;
  }

  /** Files this epoll watches (for loop detection). */
  watchedFiles(): File[] {
    return [...this.items.values()].map((i) => i.file);
  }

  private static key(file: File, fd: number): string {
    return `${file.ino}:${fd}`;
  }

  /** ep_item_poll: the target's poll with the item's events as the requested events. */
  private itemPoll(epi: EpItem, register: boolean): number {
    this.stats.itemPolls++;
    const pt: PollTable = {
      key: epi.events,
      wait: (wq) => {
        if (!register) return;
        const e = new WaitEntry((key) => this.callback(epi, key), `epoll item fd ${epi.fd}`);
        wq.add(e);
        epi.waits.push(e);
      },
    };
    const mask = epi.file.ops.poll?.(epi.file, pt) ?? 0;
    return mask & epi.events;
  }

  /** ep_poll_callback: a watched file woke its queue with `key`. */
  private callback(epi: EpItem, key: number): void {
    this.stats.callbacks++;
    // Disabled by EPOLLONESHOT until re-armed.
    if ((epi.events & ~EP_PRIVATE_BITS) === 0) return;
    if (key !== 0 && (key & epi.events) === 0) return;
    this.markReady(epi);
  }

  /**
   * Puts an item on the ready list and wakes epoll_wait sleepers and pollers of the epoll fd. The
   * wake-up callback wakes even when the item was already listed; insert and modify only when
   * they list it (as ep_poll_callback and ep_insert/ep_modify do).
   */
  private markReady(epi: EpItem, alwaysWake = true): void {
    const fresh = !epi.ready;
    if (fresh) {
      epi.ready = true;
      this.rdllist.push(epi);
    }
    if (!fresh && !alwaysWake) return;
    this.wq.wakeUp(EPOLLIN);
    this.pollWait.wakeUp(EPOLLIN);
  }

  // ------------------------------------------------------------ epoll_ctl

  /** The part of epoll_ctl after the fds were resolved (do_epoll_ctl's checks from "target supports poll" on). */
  ctl(op: number, fd: number, target: File, event: EpollEvent | undefined): number {
    if (target.ops.poll === undefined) return -EPERM;
    const hasEvent = op === EPOLL_CTL_ADD || op === EPOLL_CTL_MOD;
    if (hasEvent && event === undefined) return -EINVAL;
    // Decision: EPOLLEXCLUSIVE is not modelled; it is refused rather than silently ignored.
    if (hasEvent && (event!.events & EPOLLEXCLUSIVE) !== 0) return -EINVAL;
    if (target === this.file) return -EINVAL;
    if (op === EPOLL_CTL_ADD && this.wouldLoop(target)) return -ELOOP;
    const key = EventPoll.key(target, fd);
    const epi = this.items.get(key);
    switch (op) {
      case EPOLL_CTL_ADD:
        if (epi !== undefined) return -EEXIST;
        this.insert(key, fd, target, event!);
        return 0;
      case EPOLL_CTL_DEL:
        if (epi === undefined) return -ENOENT;
        this.remove(key, epi);
        return 0;
      case EPOLL_CTL_MOD:
        if (epi === undefined) return -ENOENT;
        this.modify(epi, event!);
        return 0;
      default:
        return -EINVAL;
    }
  }

  /** Adding `target` creates a cycle of epolls (or one deeper than Linux allows). */
  private wouldLoop(target: File): boolean {
    const seen = new Set<File>();
    const visit = (f: File, depth: number): boolean => {
      const ep = epollOfFile(f);
      if (ep === undefined) return false;
      if (ep === this || depth > 4) return true;
      // Reached before by another path: already checked (Linux skips visited epolls).
      if (seen.has(f)) return false;
      seen.add(f);
      return ep.watchedFiles().some((g) => visit(g, depth + 1));
    };
    return visit(target, 1);
  }

  private insert(key: string, fd: number, file: File, event: EpollEvent): void {
    const epi: EpItem = {
      fd,
      file,
      events: event.events | EPOLLERR | EPOLLHUP,
      data: event.data,
      ready: false,
      waits: [],
      onRelease: () => {
        const cur = this.items.get(key);
        if (cur !== undefined) this.remove(key, cur);
      },
    };
    this.items.set(key, epi);
    file.releaseHooks.add(epi.onRelease);
    const revents = this.itemPoll(epi, true);
    if (revents !== 0) this.markReady(epi, false);
  }

  private modify(epi: EpItem, event: EpollEvent): void {
    epi.events = event.events | EPOLLERR | EPOLLHUP;
    epi.data = event.data;
    const revents = this.itemPoll(epi, false);
    if (revents !== 0) this.markReady(epi, false);
  }

  private remove(key: string, epi: EpItem): void {
    for (const e of epi.waits) e.queue?.remove(e);
    epi.waits.length = 0;
    epi.file.releaseHooks.delete(epi.onRelease);
    this.items.delete(key);
    if (epi.ready) {
      epi.ready = false;
      this.rdllist = this.rdllist.filter((x) => x !== epi);
    }
  }

  // ------------------------------------------------------------ epoll_wait

  /**
   * One attempt of epoll_wait: reports up to `maxevents` ready items into `out` (cleared first),
   * or would block when none is ready and `block` is set.
   */
  wait(out: EpollEvent[], maxevents: number, block: boolean): IoResult {
    const attempt = (): IoResult => {
      out.length = 0;
      const n = this.sendEvents(out, maxevents);
      if (n > 0 || !block) return n;
      return new WouldBlock([this.wq], attempt);
    };
    return attempt();
  }

  /** ep_send_events: re-polls each ready item; reports those still ready. */
  private sendEvents(out: EpollEvent[], maxevents: number): number {
    const tx = this.rdllist;
    this.rdllist = [];
    for (const epi of tx) epi.ready = false;
    let i = 0;
    for (; i < tx.length && out.length < maxevents; i++) {
      const epi = tx[i]!;
      const revents = this.itemPoll(epi, false);
      if (revents === 0) continue;
      out.push({ events: revents, data: epi.data });
      this.stats.reported++;
      if ((epi.events & EPOLLONESHOT) !== 0) epi.events &= EP_PRIVATE_BITS;
      else if ((epi.events & EPOLLET) === 0) {
        // Level-triggered: back on the ready list, to be polled again next time.
        epi.ready = true;
        this.rdllist.push(epi);
      }
    }
    // Items not reached (maxevents) go back in front, in order.
    const rest = tx.slice(i).filter((e) => !e.ready);
    for (const e of rest) e.ready = true;
    this.rdllist = [...rest, ...this.rdllist];
    // Others sleeping in epoll_wait, and pollers of this epoll fd, get a chance at what is still ready.
    if (this.rdllist.length > 0 && out.length > 0) {
      this.wq.wakeUp(EPOLLIN);
      this.pollWait.wakeUp(EPOLLIN);
    }
    return out.length;
  }

  /** ep_eventpoll_poll: the epoll fd is readable when some ready item still polls ready. */
  pollSelf(pt: PollTable | null): number {
    if (pt !== null) pt.wait(this.pollWait);
    // Items that no longer poll ready leave the list (ep_read_events_proc).
    for (const epi of [...this.rdllist]) {
      if (this.itemPoll(epi, false) !== 0) return EPOLLIN | EPOLLRDNORM;
      epi.ready = false;
      this.rdllist = this.rdllist.filter((x) => x !== epi);
    }
    return 0;
  }

  release(): void {
    for (const [key, epi] of [...this.items]) this.remove(key, epi);
  }
}

const epollFops: FileOperations = {
  name: '[eventpoll]',
  poll: (f, pt) => (f.priv as EventPoll).pollSelf(pt),
  release: (f) => (f.priv as EventPoll).release(),
  fdinfo: (f) => `tfd count: ${(f.priv as EventPoll).size}\n`,
};

/** The EventPoll behind a file, if it is an epoll file. */
export function epollOfFile(f: File): EventPoll | undefined {
  return f.ops === epollFops ? (f.priv as EventPoll) : undefined;
}

/** A new epoll file (epoll_create1's object; the caller installs it). */
export function epollCreate(): File {
  const ep = new EventPoll();
  const f = new File(epollFops, 2 /* O_RDWR */, FMODE_READ, ep);
  ep.file = f;
  return f;
}

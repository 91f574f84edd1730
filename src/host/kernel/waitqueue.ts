/**
 * Wait queues (include/linux/wait.h): the list of parties interested in an object's state
 * changes. A waker passes a *key* — the poll events that changed (EPOLLIN when a counter became
 * readable, EPOLLOUT when room appeared, EPOLLHUP on release) — and every entry's wake function
 * runs with it, in queue order. A sleeping syscall's wake function only makes its task runnable;
 * others (epoll's callback, KVM's irqfd) act at once, inside the waker, as in Linux.
 *
 * Decision: entries are woken in the order they were added (FIFO). Linux adds non-exclusive
 * waiters at the head and leaves the order in which woken tasks run to the scheduler, so the
 * kernel defines no order; vsva picks arrival order so that every run is reproducible.
 */

export type WakeFunction = (key: number) => void;

/** Wake-ups in progress (they nest when a wake function wakes another queue). */
let wakeDepth = 0;
const afterWake: (() => void)[] = [];

/**
 * Runs `fn` once the outermost wake-up in progress has finished; false (and nothing queued) when
 * no wake-up is in progress.
 */
export function afterWakeups(fn: () => void): boolean {
  if (wakeDepth === 0) return false;
  afterWake.push(fn);
  return true;
}

export class WaitEntry {
  readonly func: WakeFunction;
  /** Owner label, for inspection ("read fd 4 of pid 2", "epoll 7", "irqfd gsi 32"). */
  readonly label: string;
  queue: WaitQueue | null = null;

  constructor(func: WakeFunction, label: string) {
    this.func = func;
    this.label = label;
  }
}

export class WaitQueue {
  private entries: WaitEntry[] = [];
  /** Wake-ups delivered (calls to wakeUp with at least one entry present). */
  wakeups = 0;

  add(e: WaitEntry): void {
    if (e.queue !== null) e.queue.remove(e);
    e.queue = this;
    this.entries.push(e);
  }

  remove(e: WaitEntry): void {
    if (e.queue !== this) return;
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    e.queue = null;
  }

  /** waitqueue_active() */
  get active(): boolean {
    return this.entries.length > 0;
  }

  get length(): number {
    return this.entries.length;
  }

  labels(): string[] {
    return this.entries.map((e) => e.label);
  }

  /**
   * wake_up_poll(wq, key): runs every entry's wake function with `key`, in queue order. Entries
   * added or removed by a wake function take effect for the next wake-up.
   */
  wakeUp(key: number): void {
    if (this.entries.length === 0) return;
    this.wakeups++;
    wakeDepth++;
    try {
      for (const e of [...this.entries]) {
        if (e.queue === this) e.func(key);
      }
    } finally {
      wakeDepth--;
      if (wakeDepth === 0) for (let fn = afterWake.shift(); fn !== undefined; fn = afterWake.shift()) fn();
    }
  }
}

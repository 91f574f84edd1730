/**
 * Open files (`struct file`) and what a subsystem implements to give one behaviour
 * (`struct file_operations`): read, write, ioctl, poll, release, and the lines it adds to
 * /proc/<pid>/fdinfo. Device nodes (`CharDevice`) create files on open; anonymous files (eventfd,
 * epoll, VFIO device fds) are created by their subsystem and installed in an fd table.
 *
 * Blocking. An operation that cannot proceed and may sleep returns `WouldBlock` naming the wait
 * queues whose wake-ups should make it try again; the kernel parks the caller (a `Pending`
 * syscall, see sched.ts) and calls the operation again, with the same arguments, each time one of
 * those queues is woken — the shape of Linux's "prepare to wait; check; schedule()" loop.
 * Operations honour O_NONBLOCK themselves (EAGAIN), as Linux drivers do.
 */

import type { IoctlArg, UserPtr } from '../uaccess.ts';
import type { Process } from './process.ts';
import type { WaitQueue } from './waitqueue.ts';

/** f_mode bits (include/linux/fs.h). */
export const FMODE_READ = 1 << 0;
export const FMODE_WRITE = 1 << 1;
export const FMODE_LSEEK = 1 << 2;
export const FMODE_PREAD = 1 << 3;
export const FMODE_PWRITE = 1 << 4;

/**
 * "Call me again when one of these queues is woken." `retry`, when given, is what to call then
 * (the rest of the operation, holding what was already copied from the user); otherwise the
 * operation is called again from the start.
 */
export class WouldBlock {
  readonly queues: readonly (WaitQueue | FilteredWait)[];
  readonly retry: (() => IoResult) | undefined;

  constructor(queues: readonly (WaitQueue | FilteredWait)[], retry?: () => IoResult) {
    this.queues = queues;
    this.retry = retry;
  }
}

/**
 * A wait that only wakes for some events (poll's and epoll's wake functions ignore wake-ups whose
 * key does not intersect what they asked for; a key of 0 wakes everyone).
 */
export interface FilteredWait {
  readonly queue: WaitQueue;
  readonly events: number;
}

/** The events a poller asks about, and the hook through which a file registers its wait queues. */
export interface PollTable {
  /** poll_requested_events(): the events the caller is interested in. */
  readonly key: number;
  /** poll_wait(): the poller wants to be woken through `wq`. */
  wait(wq: WaitQueue): void;
}

/** Who is calling: the process (its memory for pointers inside argument structs, its identity). */
export interface SyscallContext {
  readonly proc: Process;
}

export type IoResult = number | WouldBlock;

export interface FileOperations {
  /** Shown in fdinfo and traces: "[eventfd]", "[eventpoll]", "vfio-container". */
  readonly name: string;
  read?(f: File, buf: UserPtr, count: number, pos: number | null, ctx: SyscallContext): IoResult;
  write?(f: File, buf: UserPtr, count: number, pos: number | null, ctx: SyscallContext): IoResult;
  ioctl?(f: File, request: number, arg: IoctlArg, ctx: SyscallContext): number;
  /**
   * The file's current event mask. `pt` null means "no poll table": the caller asks about every
   * event and registers no wait (Linux's vfs_poll(file, NULL)).
   */
  poll?(f: File, pt: PollTable | null): number;
  /**
   * mmap of the file: the host physical pages backing `npages` pages from page offset `pgoff`
   * (the mapping shares them), or -errno.
   */
  mmap?(
    f: File,
    pgoff: number,
    npages: number,
    prot: number,
    ctx: SyscallContext,
  ): readonly number[] | number;
  /** The last reference went away. */
  release?(f: File): void;
  /** Extra /proc/<pid>/fdinfo/<fd> lines (each ending in "\n"). */
  fdinfo?(f: File): string;
}

let nextIno = 1;

export class File {
  readonly ops: FileOperations;
  /** f_flags: access mode, O_NONBLOCK, O_APPEND (O_CLOEXEC lives in the fd table). */
  flags: number;
  /** f_mode: FMODE_* bits. */
  mode: number;
  pos = 0;
  /** private_data */
  readonly priv: unknown;
  readonly ino: number;
  /** References: one per fd that points here, plus kernel references (fget). */
  private refs = 1;
  released = false;
  /** Run when the last reference goes, before the file's own release (eventpoll_release). */
  readonly releaseHooks = new Set<() => void>();

  constructor(ops: FileOperations, flags: number, mode: number, priv: unknown) {
    this.ops = ops;
    this.flags = flags;
    this.mode = mode;
    this.priv = priv;
    this.ino = nextIno++;
  }

  get refcount(): number {
    return this.refs;
  }

  /** get_file() */
  get(): this {
    this.refs++;
    return this;
  }

  /** fput(): drops a reference; the last one releases the file. */
  put(): void {
    if (this.released) return;
    this.refs--;
    if (this.refs === 0) {
      this.released = true;
      for (const h of [...this.releaseHooks]) h();
      this.releaseHooks.clear();
      this.ops.release?.(this);
    }
  }
}

/** A device node: what open(2) of its path does. */
export interface CharDevice {
  /** A new open file, or -errno. */
  open(flags: number, ctx: SyscallContext): File | number;
}

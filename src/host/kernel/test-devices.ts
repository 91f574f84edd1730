/**
 * Device nodes for the kernel seam tests (not part of the model). Each records what the kernel
 * asked of it, so that tests can check the seam rather than the device:
 * - a pipe: a bounded byte FIFO shared by every open of the node, one wait queue woken with
 *   EPOLLIN when bytes arrive, EPOLLOUT when room appears and EPOLLHUP on hang-up; readers and
 *   writers sleep with filtered waits, honour O_NONBLOCK (EAGAIN), copy through the `UserPtr`
 *   they are given and consume nothing when the copy faults;
 * - a flag file: its poll mask is whatever the test sets; raising bits wakes with those bits;
 * - a bare file: no operations at all (the generic EINVAL / ENOTTY / EPERM / DEFAULT_POLLMASK paths).
 * Wake-ups from the test itself go through `kernel.fromInterrupt`, as a device interrupt would.
 */

import { EAGAIN, EFAULT, ENOTTY } from '../../uapi/errno.ts';
import { O_NONBLOCK } from '../../uapi/fcntl.ts';
import { EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDNORM, EPOLLWRNORM } from '../../uapi/poll.ts';
import type { IoctlArg, UserPtr } from '../uaccess.ts';
import {
  type CharDevice,
  File,
  type FileOperations,
  FMODE_PREAD,
  FMODE_PWRITE,
  type IoResult,
  type PollTable,
  WouldBlock,
} from './file.ts';
import type { Kernel } from './kernel.ts';
import { WaitQueue } from './waitqueue.ts';

export const PIPE_READABLE = EPOLLIN | EPOLLRDNORM;
export const PIPE_WRITABLE = EPOLLOUT | EPOLLWRNORM;

/** An ioctl the pipe answers: reads a u32 at arg.ptr, writes it back plus one, returns 7. */
export const PIPE_IOC_INCR = 0xc004_7001;
/** An ioctl the pipe answers with arg.value (an `int` argument). */
export const PIPE_IOC_VALUE = 0x7002;

export interface IoctlCall {
  readonly request: number;
  readonly arg: IoctlArg;
}

export interface Pipe {
  readonly path: string;
  readonly wait: WaitQueue;
  data: number[];
  readonly capacity: number;
  hup: boolean;
  opens: number;
  releases: number;
  /** One entry per call of poll: the requested events (pt.key), or null without a poll table. */
  readonly pollKeys: (number | null)[];
  /** Every call of read/write, with the count and the position the kernel passed. */
  readonly reads: { count: number; pos: number | null }[];
  readonly writes: { count: number; pos: number | null }[];
  readonly ioctls: IoctlCall[];
  /** The files opened on it, in order. */
  readonly files: File[];
  /** Bytes arrive from outside (a device interrupt): wakes readers. */
  push(bytes: number[]): void;
  /** Hang-up: readers see end of file, pollers EPOLLHUP. */
  hangUp(): void;
  /** Bytes consumed from outside: wakes writers. */
  drain(): number[];
}

export interface PipeOptions {
  readonly path?: string;
  readonly capacity?: number;
  /** Files support pread/pwrite (FMODE_PREAD | FMODE_PWRITE). */
  readonly seekable?: boolean;
}

function pipeMask(p: Pipe): number {
  let m = 0;
  if (p.data.length > 0) m |= PIPE_READABLE;
  if (p.data.length < p.capacity) m |= PIPE_WRITABLE;
  if (p.hup) m |= EPOLLHUP;
  return m;
}

function pipeRead(p: Pipe, f: File, buf: UserPtr, count: number, pos: number | null): IoResult {
  p.reads.push({ count, pos });
  // Like Linux's pipe_read: a zero-length read returns at once.
  if (count === 0) return 0;
  if (p.data.length === 0) {
    if (p.hup) return 0;
    if ((f.flags & O_NONBLOCK) !== 0) return -EAGAIN;
    return new WouldBlock([{ queue: p.wait, events: PIPE_READABLE | EPOLLHUP }]);
  }
  const n = Math.min(count, p.data.length);
  if (!buf.copyTo(Uint8Array.from(p.data.slice(0, n)))) return -EFAULT;
  p.data.splice(0, n);
  p.wait.wakeUp(PIPE_WRITABLE);
  return n;
}

function pipeWrite(p: Pipe, f: File, buf: UserPtr, count: number, pos: number | null): IoResult {
  p.writes.push({ count, pos });
  const bytes = buf.copyFrom(count);
  if (bytes === undefined) return -EFAULT;
  const room = p.capacity - p.data.length;
  if (room === 0) {
    if ((f.flags & O_NONBLOCK) !== 0) return -EAGAIN;
    return new WouldBlock([{ queue: p.wait, events: PIPE_WRITABLE }]);
  }
  const n = Math.min(room, bytes.length);
  p.data.push(...bytes.subarray(0, n));
  p.wait.wakeUp(PIPE_READABLE);
  return n;
}

function pipeIoctl(p: Pipe, request: number, arg: IoctlArg): number {
  p.ioctls.push({ request, arg });
  if (request === PIPE_IOC_INCR) {
    const v = arg.ptr.getU32();
    if (v === undefined) return -EFAULT;
    return arg.ptr.putU32(v + 1) ? 7 : -EFAULT;
  }
  if (request === PIPE_IOC_VALUE) return arg.value;
  return -ENOTTY;
}

/** A pipe device node at `path` (default /dev/pipe), registered in `kernel`. */
export function createPipe(kernel: Kernel, opts: PipeOptions = {}): Pipe {
  const p: Pipe = {
    path: opts.path ?? '/dev/pipe',
    wait: new WaitQueue(),
    data: [],
    capacity: opts.capacity ?? 16,
    hup: false,
    opens: 0,
    releases: 0,
    pollKeys: [],
    reads: [],
    writes: [],
    ioctls: [],
    files: [],
    push(bytes) {
      kernel.fromInterrupt(() => {
        p.data.push(...bytes);
        p.wait.wakeUp(PIPE_READABLE);
      });
    },
    hangUp() {
      kernel.fromInterrupt(() => {
        p.hup = true;
        p.wait.wakeUp(EPOLLHUP);
      });
    },
    drain() {
      return kernel.fromInterrupt(() => {
        const out = p.data.splice(0);
        p.wait.wakeUp(PIPE_WRITABLE);
        return out;
      });
    },
  };
  const ops: FileOperations = {
    name: 'pipe',
    read: (f, buf, count, pos) => pipeRead(p, f, buf, count, pos),
    write: (f, buf, count, pos) => pipeWrite(p, f, buf, count, pos),
    ioctl: (_f, request, arg) => pipeIoctl(p, request, arg),
    poll: (_f, pt: PollTable | null) => {
      p.pollKeys.push(pt === null ? null : pt.key);
      pt?.wait(p.wait);
      return pipeMask(p);
    },
    release: () => {
      p.releases++;
    },
  };
  const dev: CharDevice = {
    open: (flags) => {
      p.opens++;
      const f = new File(ops, flags, opts.seekable === true ? FMODE_PREAD | FMODE_PWRITE : 0, p);
      p.files.push(f);
      return f;
    },
  };
  if (kernel.registerDevice(p.path, dev) !== 0) throw new Error(`${p.path} already registered`);
  return p;
}

export interface FlagFile {
  readonly path: string;
  readonly wait: WaitQueue;
  mask: number;
  readonly pollKeys: (number | null)[];
  releases: number;
  /** Raises `bits` and wakes the queue with them. */
  raise(bits: number): void;
  /** Clears `bits` without waking anyone (a level going away). */
  clear(bits: number): void;
}

/** A device whose files' poll mask is `mask` (one state shared by every open). */
export function createFlagDevice(kernel: Kernel, path = '/dev/flag'): FlagFile {
  const s: FlagFile = {
    path,
    wait: new WaitQueue(),
    mask: 0,
    pollKeys: [],
    releases: 0,
    raise(bits) {
      kernel.fromInterrupt(() => {
        s.mask |= bits;
        s.wait.wakeUp(bits);
      });
    },
    clear(bits) {
      s.mask &= ~bits;
    },
  };
  const ops: FileOperations = {
    name: 'flag',
    poll: (_f, pt) => {
      s.pollKeys.push(pt === null ? null : pt.key);
      pt?.wait(s.wait);
      return s.mask;
    },
    release: () => {
      s.releases++;
    },
  };
  kernel.registerDevice(path, { open: (flags) => new File(ops, flags, 0, s) });
  return s;
}

export interface BareDevice {
  opens: number;
  releases: number;
}

/** A device whose files have no read, write, ioctl or poll. */
export function createBareDevice(kernel: Kernel, path = '/dev/bare'): BareDevice {
  const s: BareDevice = { opens: 0, releases: 0 };
  const ops: FileOperations = {
    name: 'bare',
    release: () => {
      s.releases++;
    },
  };
  kernel.registerDevice(path, {
    open: (flags) => {
      s.opens++;
      return new File(ops, flags, 0, s);
    },
  });
  return s;
}

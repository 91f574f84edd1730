/**
 * A user process and its syscalls: the seam through which the VMM, tests and scenarios reach the
 * host kernel, as QEMU reaches Linux. Each process has an address space (`Mm`, the identity PASID
 * quotas are kept by) and an fd table; syscalls return a non-negative result or -errno, or a
 * `Pending` when they go to sleep (see sched.ts).
 *
 * Arguments that are user pointers accept either a byte buffer (standing for a buffer in the
 * caller's memory) or a number, which is a virtual address in the process's `Mm`. A buffer too
 * short for what the kernel must copy is EFAULT, as a bad pointer is.
 *
 * Generic rules implemented here, in Linux's order: a closed or unknown fd is EBADF; reading a
 * file not open for reading (or writing one not open for writing) is EBADF; a file without the
 * operation is EINVAL (read/write) or ENOTTY (ioctl); pread/pwrite on a file that cannot seek is
 * ESPIPE, and a negative offset EINVAL. The fd-level ioctls FIOCLEX, FIONCLEX and FIONBIO work on
 * every file.
 */

import {
  EACCES,
  EBADF,
  EFAULT,
  EINVAL,
  EMFILE,
  ENODEV,
  ENOENT,
  ENOTTY,
  EPERM,
  ESPIPE,
  ESRCH,
} from '../../uapi/errno.ts';
import {
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_ACCMODE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  SETFL_MASK,
} from '../../uapi/fcntl.ts';
import {
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLNVAL,
  EPOLLOUT,
  EPOLLRDNORM,
  EPOLLWRNORM,
} from '../../uapi/poll.ts';
import { eventfdCreate } from '../eventfd.ts';
import { IoctlArg, UserPtr } from '../uaccess.ts';
import { EP_MAX_EVENTS, type EpollEvent, epollCreate, epollOfFile } from './epoll.ts';
import {
  File,
  type FileOperations,
  type FilteredWait,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_READ,
  FMODE_WRITE,
  type IoResult,
  type PollTable,
  type SyscallContext,
  WouldBlock,
} from './file.ts';
import type { Kernel } from './kernel.ts';
import { Mm, PAGE_SIZE } from './mm.ts';
import type { SyscallOutcome } from './sched.ts';
import type { WaitQueue } from './waitqueue.ts';

/** Generic ioctls the VFS handles for every file (asm-generic/ioctls.h). */
export const FIONBIO = 0x5421;
export const FIONCLEX = 0x5450;
export const FIOCLEX = 0x5451;

/** The mask a file without a poll method reports (DEFAULT_POLLMASK). */
export const DEFAULT_POLLMASK = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;

/** A user buffer: bytes the caller owns, or a virtual address in its memory. */
export type UserBuf = Uint8Array | number;

/** struct pollfd */
export interface PollFd {
  fd: number;
  events: number;
  revents: number;
}

interface FdEntry {
  readonly file: File;
  cloexec: boolean;
}

export interface ProcessStats {
  /** Syscalls made, by name. */
  syscalls: Record<string, number>;
  /** Syscalls that went to sleep. */
  blocked: number;
}

/** The console every process starts with on fds 0–2: reads see end of file, writes vanish. */
const nullFops: FileOperations = {
  name: 'null',
  read: () => 0,
  write: (_f, _buf, count) => count,
};

export class Process implements SyscallContext {
  readonly kernel: Kernel;
  readonly pid: number;
  readonly name: string;
  readonly mm: Mm;
  readonly stats: ProcessStats = { syscalls: {}, blocked: 0 };
  private readonly fds = new Map<number, FdEntry>();
  private alive = true;

  constructor(kernel: Kernel, pid: number, name: string) {
    this.kernel = kernel;
    this.pid = pid;
    this.name = name;
    this.mm = new Mm(kernel.host);
    for (let fd = 0; fd < 3; fd++) {
      this.fds.set(fd, { file: new File(nullFops, O_RDWR, FMODE_READ | FMODE_WRITE, null), cloexec: false });
    }
  }

  get proc(): Process {
    return this;
  }

  get exited(): boolean {
    return !this.alive;
  }

  /** Open fds, ascending. */
  get openFds(): number[] {
    return [...this.fds.keys()].sort((a, b) => a - b);
  }

  // ------------------------------------------------------------ fd table

  /** fget: the file behind `fd` with a reference the caller must put(), or undefined. */
  fget(fd: number): File | undefined {
    return this.fds.get(fd)?.file.get();
  }

  /** The file behind `fd` without taking a reference (inspection). */
  fileOf(fd: number): File | undefined {
    return this.fds.get(fd)?.file;
  }

  /** Installs a file at the lowest free fd (its reference moves to the table), or -EMFILE. */
  installFd(file: File, cloexec: boolean): number {
    const fd = this.lowestFreeFd(0);
    if (fd < 0) {
      file.put();
      return fd;
    }
    this.fds.set(fd, { file, cloexec });
    return fd;
  }

  private lowestFreeFd(from: number): number {
    for (let fd = from; fd < this.kernel.options.nofile; fd++) if (!this.fds.has(fd)) return fd;
    return -EMFILE;
  }

  private userPtr(buf: UserBuf): UserPtr {
    return typeof buf === 'number' ? new UserPtr(this.mm, buf) : UserPtr.ofBuffer(buf);
  }

  // ------------------------------------------------------------ syscall plumbing

  private syscall(name: string, detail: () => string, body: () => SyscallOutcome): SyscallOutcome {
    const k = this.kernel;
    this.stats.syscalls[name] = (this.stats.syscalls[name] ?? 0) + 1;
    if (!this.alive) return -ESRCH;
    const tracing = k.onSyscall !== undefined;
    let outcome = 0 as SyscallOutcome;
    k.sched.enter(() => {
      outcome = body();
      // The syscall's own record goes out before the tasks it woke run (at the end of this entry).
      if (typeof outcome === 'number') {
        if (tracing) k.record({ t: k.nowNs, pid: this.pid, name, detail: detail(), result: outcome });
        return;
      }
      if (tracing) {
        k.record({ t: k.nowNs, pid: this.pid, name, detail: detail(), result: 'blocked' });
        outcome.listeners.push((res) =>
          k.record({ t: k.nowNs, pid: this.pid, name, detail: `${detail()} (woken)`, result: res }),
        );
      }
    });
    const r: SyscallOutcome = outcome;
    if (typeof r === 'number') return r;
    // Finished before the caller regained control: the call slept briefly and returned.
    if (r.done) return r.result;
    this.stats.blocked++;
    return r;
  }

  /** A syscall that never sleeps. */
  private call(name: string, detail: () => string, body: () => number): number {
    return this.syscall(name, detail, body) as number;
  }

  // ------------------------------------------------------------ open / close / dup / fcntl

  /** open(path, flags): a device node registered by a subsystem. */
  open(path: string, flags: number = O_RDWR): number {
    return this.call(
      'open',
      () => `${path}, 0x${flags.toString(16)}`,
      () => {
        if (!Number.isInteger(flags)) return -EINVAL;
        if (this.lowestFreeFd(0) < 0) return -EMFILE;
        const dev = this.kernel.lookupDevice(path);
        if (dev === undefined) return -ENOENT;
        const f = dev.open(flags & ~O_CLOEXEC, this);
        if (typeof f === 'number') return f;
        // Access mode 3 opens for ioctl only: neither read nor write (Linux's special case).
        const acc = flags & O_ACCMODE;
        f.mode |=
          acc === O_RDONLY
            ? FMODE_READ
            : acc === O_WRONLY
              ? FMODE_WRITE
              : acc === O_RDWR
                ? FMODE_READ | FMODE_WRITE
                : 0;
        return this.installFd(f, (flags & O_CLOEXEC) !== 0);
      },
    );
  }

  close(fd: number): number {
    return this.call(
      'close',
      () => `${fd}`,
      () => {
        const e = this.fds.get(fd);
        if (e === undefined) return -EBADF;
        this.fds.delete(fd);
        e.file.put();
        return 0;
      },
    );
  }

  dup(fd: number): number {
    return this.call(
      'dup',
      () => `${fd}`,
      () => this.dupFrom(fd, 0, false),
    );
  }

  private dupFrom(fd: number, from: number, cloexec: boolean): number {
    const e = this.fds.get(fd);
    if (e === undefined) return -EBADF;
    const nfd = this.lowestFreeFd(from);
    if (nfd < 0) return nfd;
    this.fds.set(nfd, { file: e.file.get(), cloexec });
    return nfd;
  }

  /** fcntl(fd, cmd, arg): F_GETFD/F_SETFD, F_GETFL/F_SETFL (O_NONBLOCK, O_APPEND), F_DUPFD(_CLOEXEC). */
  fcntl(fd: number, cmd: number, arg = 0): number {
    return this.call(
      'fcntl',
      () => `${fd}, ${cmd}, ${arg}`,
      () => {
        const e = this.fds.get(fd);
        if (e === undefined) return -EBADF;
        switch (cmd) {
          case F_GETFD:
            return e.cloexec ? FD_CLOEXEC : 0;
          case F_SETFD:
            e.cloexec = (arg & FD_CLOEXEC) !== 0;
            return 0;
          case F_GETFL:
            return e.file.flags;
          case F_SETFL:
            e.file.flags = (e.file.flags & ~SETFL_MASK) | (arg & SETFL_MASK);
            return 0;
          case F_DUPFD:
          case F_DUPFD_CLOEXEC:
            if (!Number.isInteger(arg) || arg < 0 || arg >= this.kernel.options.nofile) return -EINVAL;
            return this.dupFrom(fd, arg, cmd === F_DUPFD_CLOEXEC);
          default:
            return -EINVAL;
        }
      },
    );
  }

  // ------------------------------------------------------------ read / write

  /** read(fd, buf, count): count defaults to the buffer's length. */
  read(fd: number, buf: UserBuf, count?: number): SyscallOutcome {
    return this.syscall(
      'read',
      () => `${fd}, ${count ?? lengthOf(buf)}`,
      () => this.rw('read', fd, buf, count, null),
    );
  }

  write(fd: number, buf: UserBuf, count?: number): SyscallOutcome {
    return this.syscall(
      'write',
      () => `${fd}, ${count ?? lengthOf(buf)}`,
      () => this.rw('write', fd, buf, count, null),
    );
  }

  pread(fd: number, buf: UserBuf, count: number | undefined, offset: number): SyscallOutcome {
    return this.syscall(
      'pread64',
      () => `${fd}, ${count ?? lengthOf(buf)}, ${offset}`,
      () => this.rw('read', fd, buf, count, offset),
    );
  }

  pwrite(fd: number, buf: UserBuf, count: number | undefined, offset: number): SyscallOutcome {
    return this.syscall(
      'pwrite64',
      () => `${fd}, ${count ?? lengthOf(buf)}, ${offset}`,
      () => this.rw('write', fd, buf, count, offset),
    );
  }

  /**
   * read/write/pread/pwrite in Linux's order: pread's negative offset (EINVAL) before the fd
   * lookup (EBADF), then ESPIPE for a file that cannot pread, then vfs_read's mode (EBADF),
   * missing operation (EINVAL), count (EINVAL), and the file's own checks. There is no shortcut
   * for a count of 0: the file decides (eventfd: EINVAL).
   */
  private rw(
    dir: 'read' | 'write',
    fd: number,
    buf: UserBuf,
    count: number | undefined,
    pos: number | null,
  ): SyscallOutcome {
    if (pos !== null && (!Number.isInteger(pos) || pos < 0)) return -EINVAL;
    const e = this.fds.get(fd);
    if (e === undefined) return -EBADF;
    const f = e.file;
    if (pos !== null && (f.mode & (dir === 'read' ? FMODE_PREAD : FMODE_PWRITE)) === 0) return -ESPIPE;
    if ((f.mode & (dir === 'read' ? FMODE_READ : FMODE_WRITE)) === 0) return -EBADF;
    const op = dir === 'read' ? f.ops.read : f.ops.write;
    if (op === undefined) return -EINVAL;
    const n = count ?? lengthOf(buf);
    if (n === undefined) return -EFAULT;
    if (!Number.isInteger(n) || n < 0) return -EINVAL;
    const ptr = this.userPtr(buf);
    // The sleeping syscall holds the file (fdget) so that a close from another thread cannot free it.
    f.get();
    return this.kernel.sched.run(this.pid, `${dir}(fd ${fd})`, () => op(f, ptr, n, pos, this), {
      cleanup: () => f.put(),
    });
  }

  // ------------------------------------------------------------ ioctl

  /** ioctl(fd, request, arg): arg is a buffer (a pointer to it) or a number (a value, or an address in this process). */
  ioctl(fd: number, request: number, arg: UserBuf = 0): number {
    return this.call(
      'ioctl',
      () => `${fd}, 0x${(request >>> 0).toString(16)}`,
      () => {
        const e = this.fds.get(fd);
        if (e === undefined) return -EBADF;
        const a = typeof arg === 'number' ? IoctlArg.ofValue(arg, this.mm) : IoctlArg.ofBuffer(arg);
        switch (request >>> 0) {
          case FIOCLEX:
            e.cloexec = true;
            return 0;
          case FIONCLEX:
            e.cloexec = false;
            return 0;
          case FIONBIO: {
            const on = a.ptr.getS32();
            if (on === undefined) return -EFAULT;
            e.file.flags = on !== 0 ? e.file.flags | O_NONBLOCK : e.file.flags & ~O_NONBLOCK;
            return 0;
          }
        }
        const op = e.file.ops.ioctl;
        if (op === undefined) return -ENOTTY;
        const f = e.file.get();
        try {
          return op(f, request >>> 0, a, this);
        } finally {
          f.put();
        }
      },
    );
  }

  // ------------------------------------------------------------ poll / epoll

  /**
   * poll(fds, timeoutMs): revents are written into `fds`. timeout < 0 waits for ever, 0 does not
   * wait, > 0 waits that many milliseconds of virtual time (then returns 0).
   */
  poll(fds: PollFd[], timeoutMs: number): SyscallOutcome {
    return this.syscall(
      'poll',
      () => `${fds.length} fds, ${timeoutMs}`,
      () => {
        if (fds.length > this.kernel.options.nofile) return -EINVAL;
        // Files whose wait queues this poll sits on: held until poll returns (as poll_table entries do).
        const held = new Set<File>();
        const attempt = (): IoResult => {
          const queues: FilteredWait[] = [];
          let ready = 0;
          for (const p of fds) {
            p.revents = 0;
            if (p.fd < 0) continue;
            // Each pass looks the fd up again: one closed meanwhile reports POLLNVAL.
            const f = this.fds.get(p.fd)?.file;
            if (f === undefined) {
              p.revents = EPOLLNVAL;
              ready++;
              continue;
            }
            const filter = (p.events & 0xffff) | EPOLLERR | EPOLLHUP;
            const pt: PollTable = {
              key: filter,
              wait: (wq: WaitQueue) => {
                if (!held.has(f)) held.add(f.get());
                queues.push({ queue: wq, events: filter });
              },
            };
            const mask = (f.ops.poll === undefined ? DEFAULT_POLLMASK : f.ops.poll(f, pt)) & filter;
            p.revents = mask;
            if (mask !== 0) ready++;
          }
          if (ready > 0 || timeoutMs === 0) return ready;
          return new WouldBlock(queues);
        };
        return this.kernel.sched.run(this.pid, `poll(${fds.length} fds)`, attempt, {
          ...(timeoutMs > 0 ? { timeoutNs: timeoutMs * 1e6, timeoutResult: 0 } : {}),
          cleanup: () => {
            for (const f of held) f.put();
          },
        });
      },
    );
  }

  /** epoll_create1(flags) */
  epollCreate1(flags = 0): number {
    return this.call(
      'epoll_create1',
      () => `0x${flags.toString(16)}`,
      () => {
        if ((flags & ~EPOLL_CLOEXEC) !== 0) return -EINVAL;
        return this.installFd(epollCreate(), (flags & EPOLL_CLOEXEC) !== 0);
      },
    );
  }

  /** epoll_ctl(epfd, op, fd, event) */
  epollCtl(epfd: number, op: number, fd: number, event?: EpollEvent): number {
    return this.call(
      'epoll_ctl',
      () => `${epfd}, ${op}, ${fd}`,
      () => {
        // The event is copied from user memory first (a missing one is a bad pointer).
        if ((op === EPOLL_CTL_ADD || op === EPOLL_CTL_MOD) && event === undefined) return -EFAULT;
        const ef = this.fds.get(epfd)?.file;
        const tf = this.fds.get(fd)?.file;
        if (ef === undefined || tf === undefined) return -EBADF;
        if (tf.ops.poll === undefined) return -EPERM;
        const ep = epollOfFile(ef);
        if (ep === undefined) return -EINVAL;
        return ep.ctl(op, fd, tf, event);
      },
    );
  }

  /** epoll_wait(epfd, out, maxevents, timeoutMs): events are written into `out`. */
  epollWait(epfd: number, out: EpollEvent[], maxevents: number, timeoutMs: number): SyscallOutcome {
    return this.syscall(
      'epoll_wait',
      () => `${epfd}, ${maxevents}, ${timeoutMs}`,
      () => {
        if (!Number.isInteger(maxevents) || maxevents <= 0 || maxevents > EP_MAX_EVENTS) return -EINVAL;
        const ef = this.fds.get(epfd)?.file;
        if (ef === undefined) return -EBADF;
        const ep = epollOfFile(ef);
        if (ep === undefined) return -EINVAL;
        ef.get();
        return this.kernel.sched.run(
          this.pid,
          `epoll_wait(fd ${epfd})`,
          () => ep.wait(out, maxevents, timeoutMs !== 0),
          {
            ...(timeoutMs > 0 ? { timeoutNs: timeoutMs * 1e6, timeoutResult: 0 } : {}),
            cleanup: () => ef.put(),
          },
        );
      },
    );
  }

  // ------------------------------------------------------------ eventfd

  /** eventfd2(initval, flags) */
  eventfd2(initval: number, flags = 0): number {
    return this.call(
      'eventfd2',
      () => `${initval}, 0x${flags.toString(16)}`,
      () => {
        if (this.lowestFreeFd(0) < 0) return -EMFILE;
        const f = eventfdCreate(initval, flags, this.kernel.sched, {
          autoreset: this.kernel.options.eventfdAutoreset,
        });
        if (typeof f === 'number') return f;
        return this.installFd(f, (flags & O_CLOEXEC) !== 0);
      },
    );
  }

  /** eventfd(initval): eventfd2 with no flags. */
  eventfd(initval: number): number {
    return this.eventfd2(initval, 0);
  }

  // ------------------------------------------------------------ memory

  /**
   * mmap(addr, len, prot, flags, fd, offset): anonymous memory (fd -1, or MAP_ANONYMOUS), or a
   * file's pages (its mmap operation names them; a file without one is ENODEV). For a file:
   * EBADF for a bad fd, EINVAL for an offset not page-aligned, EACCES when the file is not open
   * for reading, or for a shared writable mapping of a file not open for writing.
   */
  mmap(
    len: number,
    prot: number = PROT_READ | PROT_WRITE,
    flags: number = MAP_PRIVATE,
    addr = 0,
    fd = -1,
    offset = 0,
  ): number {
    return this.call(
      'mmap',
      () => `0x${addr.toString(16)}, ${len}, ${prot}, 0x${flags.toString(16)}, ${fd}, ${offset}`,
      () => {
        if (fd < 0 || (flags & MAP_ANONYMOUS) !== 0) return this.mm.mmap(len, prot, flags, addr);
        const f = this.fds.get(fd)?.file;
        if (f === undefined) return -EBADF;
        if (!Number.isInteger(offset) || offset < 0 || offset % PAGE_SIZE !== 0) return -EINVAL;
        if (!Number.isInteger(len) || len <= 0) return -EINVAL;
        if ((f.mode & FMODE_READ) === 0) return -EACCES;
        if ((flags & MAP_SHARED) !== 0 && (prot & PROT_WRITE) !== 0 && (f.mode & FMODE_WRITE) === 0)
          return -EACCES;
        if (f.ops.mmap === undefined) return -ENODEV;
        const pas = f.ops.mmap(f, offset / PAGE_SIZE, Math.ceil(len / PAGE_SIZE), prot, this);
        if (typeof pas === 'number') return pas;
        return this.mm.mmapDevice(pas, prot, flags, addr);
      },
    );
  }

  munmap(addr: number, len: number): number {
    return this.call(
      'munmap',
      () => `0x${addr.toString(16)}, ${len}`,
      () => this.mm.munmap(addr, len),
    );
  }

  // ------------------------------------------------------------ /proc

  /** The text of /proc/<pid>/fdinfo/<fd>, or -EBADF/-ENOENT as reading it would fail. */
  fdinfo(fd: number): string | number {
    const e = this.fds.get(fd);
    if (e === undefined) return -ENOENT;
    const f = e.file;
    const flags = f.flags | (e.cloexec ? O_CLOEXEC : 0);
    // Decision: a fixed mount id (15) for every file; anonymous inodes share one mount.
    return `pos:\t${f.pos}\nflags:\t0${flags.toString(8)}\nmnt_id:\t15\n${f.ops.fdinfo?.(f) ?? ''}`;
  }

  // ------------------------------------------------------------ exit

  /** Process exit: sleeping syscalls end, every fd is closed, the address space goes. */
  exit(): void {
    if (!this.alive) return;
    this.kernel.sched.interruptAll(this.pid);
    this.kernel.sched.enter(() => {
      for (const [fd, e] of [...this.fds]) {
        this.fds.delete(fd);
        e.file.put();
      }
    });
    this.mm.destroy();
    this.alive = false;
    this.kernel.reap(this.pid);
  }
}

function lengthOf(buf: UserBuf): number | undefined {
  return typeof buf === 'number' ? undefined : buf.length;
}

/**
 * The host kernel's core: processes, device nodes, the scheduler and its virtual clock, and the
 * options that select between behaviours the seeds describe (the EFD_AUTORESET patch applied or
 * not). Subsystems (VFIO, KVM) register their device nodes here; user programs — the VMM, tests,
 * scenarios — get a `Process` from `spawn` and make syscalls on it.
 */

import { EEXIST, ENOENT } from '../../uapi/errno.ts';
import type { CharDevice } from './file.ts';
import type { HostMemory } from './mm.ts';
import { Process } from './process.ts';
import { type Pending, Scheduler } from './sched.ts';

export interface KernelOptions {
  /** Apply the EFD_AUTORESET RFC (seed-spec §5.2). Default true; false gives v5.5's eventfd. */
  readonly eventfdAutoreset?: boolean;
  /** RLIMIT_NOFILE: file descriptors per process. Default 1024. */
  readonly nofile?: number;
}

/** One syscall as the trace sees it. */
export interface SyscallRecord {
  readonly t: number;
  readonly pid: number;
  readonly name: string;
  readonly detail: string;
  /** The return value, or 'blocked' when the call went to sleep (its end is a later record). */
  readonly result: number | 'blocked';
}

export class Kernel {
  readonly host: HostMemory;
  readonly sched = new Scheduler();
  readonly options: Required<KernelOptions>;
  private readonly devices = new Map<string, CharDevice>();
  private readonly procs = new Map<number, Process>();
  private nextPid = 1;
  /** Set to receive every syscall (traces, reports). */
  onSyscall: ((rec: SyscallRecord) => void) | undefined = undefined;

  constructor(host: HostMemory, opts: KernelOptions = {}) {
    this.host = host;
    this.options = { eventfdAutoreset: opts.eventfdAutoreset ?? true, nofile: opts.nofile ?? 1024 };
  }

  // ------------------------------------------------------------ device nodes

  /** Creates a device node at `path` (e.g. /dev/vfio/vfio). 0, or -EEXIST. */
  registerDevice(path: string, dev: CharDevice): number {
    if (this.devices.has(path)) return -EEXIST;
    this.devices.set(path, dev);
    return 0;
  }

  /** Removes a device node; open files stay open. 0, or -ENOENT. */
  unregisterDevice(path: string): number {
    return this.devices.delete(path) ? 0 : -ENOENT;
  }

  /** @internal the node at `path`, for open(2) */
  lookupDevice(path: string): CharDevice | undefined {
    return this.devices.get(path);
  }

  get devicePaths(): string[] {
    return [...this.devices.keys()].sort();
  }

  // ------------------------------------------------------------ processes

  /** A new process with an empty address space and fds 0–2 open on a null device. */
  spawn(name: string): Process {
    const p = new Process(this, this.nextPid++, name);
    this.procs.set(p.pid, p);
    return p;
  }

  process(pid: number): Process | undefined {
    return this.procs.get(pid);
  }

  get processes(): Process[] {
    return [...this.procs.values()];
  }

  /** @internal called by Process.exit */
  reap(pid: number): void {
    this.procs.delete(pid);
  }

  // ------------------------------------------------------------ time and signals

  get nowNs(): number {
    return this.sched.nowNs;
  }

  /** Moves the virtual clock; sleeping syscalls whose timeout passes return. */
  advanceTime(ns: number): void {
    this.sched.advance(ns);
  }

  /** Delivers a signal to the thread sleeping in `p`: it returns -EINTR. */
  interrupt(p: Pending): boolean {
    return this.sched.interrupt(p);
  }

  /** Syscalls asleep right now, oldest first. */
  get blocked(): Pending[] {
    return this.sched.blocked;
  }

  /** Runs `fn` as a kernel entry from interrupt context (wake-ups inside run when it returns). */
  fromInterrupt<T>(fn: () => T): T {
    return this.sched.enter(fn);
  }

  /** @internal */
  record(rec: SyscallRecord): void {
    this.onSyscall?.(rec);
  }
}

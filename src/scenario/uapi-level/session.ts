/**
 * Running a uAPI scenario (issue 7 §1, like a kselftest): the host is built from the setup, the
 * devices are plugged in and bound to vfio-pci, the processes are spawned, and every step is a
 * syscall on one of those processes (`open`, `ioctl` with a byte struct encoded from its layout,
 * `read`/`write`/`poll`/`epoll_*` on eventfds, `pread`/`pwrite` on VFIO regions, `mmap` and the
 * process's own memory). The host objects are only *observed* — by the `host` step and for
 * counters and invariants — never called to make something happen.
 *
 * Sleeping calls: a `read`, `write`, `poll` or `epoll_wait` that sleeps reports `blocked: true`
 * and, when named with `as`, can be looked at later (`wait`: still asleep, or its result once a
 * later step woke it) or interrupted (`signal`: it returns EINTR). `advance` moves the virtual
 * clock for poll/epoll timeouts.
 *
 * Teardown: every process exits (closing what the scenario left open); the invariants are what
 * that leaves behind — PASIDs still allocated, pages still pinned, IOMMU domains beyond those of
 * the boot, calls still asleep — all expected to be 0.
 */

import { Host, type HostOptions } from '../../host/host.ts';
import type { EpollEvent } from '../../host/kernel/epoll.ts';
import type { PollFd, Process } from '../../host/kernel/process.ts';
import { Pending } from '../../host/kernel/sched.ts';
import type { HostPciDevice } from '../../host/pci.ts';
import { PasidDmaDevice } from '../../hw/pci/pasid-dma-device.ts';
import { decodeSte } from '../../hw/smmuv3/config.ts';
import { ERRNO_BY_NAME, errnoName } from '../../uapi/errno.ts';
import { MAP_PRIVATE, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD } from '../../uapi/poll.ts';
import { VFIO_PCI_CONFIG_REGION_INDEX, vfioPciIndexToOffset } from '../../uapi/vfio-device.ts';
import { expectMatch, mismatches, show } from '../format/expect.ts';
import type { RunContext, Session, SessionResult } from '../format/level.ts';
import { traceHost } from '../format/trace-hooks.ts';
import type { StepBuilder } from '../report.ts';
import {
  type ArgProblem,
  type Env,
  expandTemplate,
  fillArgsz,
  flagsNumber,
  resolveExpected,
  resolveFlags,
  resolveScalar,
  structValue,
} from './args.ts';
import { IOCTLS, SCALARS, STRUCTS } from './ioctls.ts';
import type { UapiSetup, UapiStep } from './schema.ts';

type StepOf<D extends UapiStep['do']> = Extract<UapiStep, { do: D }>;

interface FdRef {
  readonly proc: Process;
  readonly fd: number;
}

interface DeviceRef {
  readonly rec: HostPciDevice;
  readonly dev: PasidDmaDevice;
  readonly group: number;
}

interface MappingRef {
  readonly proc: Process;
  readonly addr: number;
  readonly size: number;
}

/** A call that went to sleep, with what it will write when it completes. */
type CallRef =
  | { readonly kind: 'read'; readonly p: Pending; readonly buf: Uint8Array }
  | { readonly kind: 'write'; readonly p: Pending }
  | { readonly kind: 'poll'; readonly p: Pending; readonly pfds: PollFd[]; readonly names: string[] }
  | {
      readonly kind: 'epoll_wait';
      readonly p: Pending;
      readonly events: EpollEvent[];
      readonly proc: Process;
    };

interface ResultExpect {
  readonly ret?: string | number | undefined;
  readonly errno?: string | undefined;
  readonly blocked?: boolean | undefined;
}

const POLL_NAMES: readonly [number, string][] = [
  [0x001, 'POLLIN'],
  [0x002, 'POLLPRI'],
  [0x004, 'POLLOUT'],
  [0x008, 'POLLERR'],
  [0x010, 'POLLHUP'],
  [0x020, 'POLLNVAL'],
  [0x040, 'POLLRDNORM'],
  [0x100, 'POLLWRNORM'],
];

/** A poll mask as names ("POLLIN|POLLOUT"), for reports. */
export function pollMaskNames(mask: number): string {
  if (mask === 0) return '0';
  const names = POLL_NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, n]) => n);
  const rest = POLL_NAMES.reduce((m, [bit]) => m & ~bit, mask);
  return [...names, ...(rest !== 0 ? [`0x${rest.toString(16)}`] : [])].join('|');
}

const CONFIG_NAMES = ['abort', 'abort', 'abort', 'abort', 'bypass', 's1', 's2', 'nested'] as const;

function le(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = Math.min(bytes.length, 8) - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

function leBytes(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);

const REGION_INDEX: Record<string, number> = {
  config: VFIO_PCI_CONFIG_REGION_INDEX,
  bar0: 0,
  bar1: 1,
  bar2: 2,
  bar3: 3,
  bar4: 4,
  bar5: 5,
};

/** `o` without its undefined members (zod's optional fields meet exactOptionalPropertyTypes). */
function compact<T>(o: object | undefined): T {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as T;
}

/** The Host options a setup asks for. */
export function hostOptions(s: UapiSetup): HostOptions {
  const h = s.host;
  return compact<HostOptions>({
    ramSize: h.ramSize,
    pasidBits: h.pasidBits,
    kvmArch: h.kvmArch,
    smmus: [{ name: 'smmu0', features: compact(h.smmu?.features), driver: compact(h.smmu?.driver) }],
    kernel: compact(h.kernel),
    vfio: compact(h.vfio),
    vfioPci: compact(h.vfioPci),
    type1: compact(h.type1),
  });
}

export class UapiSession implements Session<UapiStep> {
  readonly host: Host;
  readonly procs = new Map<string, Process>();
  readonly devices = new Map<string, DeviceRef>();
  private readonly allProcs: Process[] = [];
  private readonly fds = new Map<string, FdRef>();
  private readonly mappings = new Map<string, MappingRef>();
  private readonly calls = new Map<string, CallRef>();
  private readonly counters: Record<string, number> = {
    syscalls: 0,
    ioctls: 0,
    'blocked calls': 0,
    'eventfd signals': 0,
    'peak pinned pages': 0,
  };
  private readonly baselineDomains: number;

  private constructor(host: Host, setup: UapiSetup, devices: Map<string, DeviceRef>) {
    this.host = host;
    this.devices = devices;
    for (const name of setup.processes) {
      const p = host.kernel.spawn(name);
      this.procs.set(name, p);
      this.allProcs.push(p);
    }
    this.baselineDomains = host.iommu.iommuDomains().length;
  }

  /** Builds the host, plugs the devices in, spawns the processes; a string when the setup cannot boot. */
  static create(setup: UapiSetup, ctx: RunContext): UapiSession | string {
    let host: Host;
    try {
      host = new Host(hostOptions(setup));
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    if (ctx.tracer !== undefined) traceHost(ctx.tracer, host);
    const devices = new Map<string, DeviceRef>();
    let slot = 4;
    for (const d of setup.devices) {
      const dev = new PasidDmaDevice({
        bus: 0,
        dev: slot++,
        fn: 0,
        maxPasidWidth: d.pasidWidth,
        ...(d.pasidExec !== undefined ? { pasidExec: d.pasidExec } : {}),
        ...(d.pasidPriv !== undefined ? { pasidPriv: d.pasidPriv } : {}),
      });
      const rec = host.addPciDevice(dev, {
        ...(d.exposePasid !== undefined ? { vfioPci: { exposePasid: d.exposePasid } } : {}),
        ...(d.isolationKey !== undefined ? { isolationKey: d.isolationKey } : {}),
      });
      if (typeof rec === 'number') return `device ${d.name}: the iommu core refused it (${errnoName(rec)})`;
      const group = host.iommu.iommuGroupGet(rec.iommuDev);
      if (group === undefined) return `device ${d.name}: no IOMMU group`;
      devices.set(d.name, { rec, dev, group: group.id });
    }
    const s = new UapiSession(host, setup, devices);
    const prev = host.kernel.sched.tracepoint;
    host.kernel.sched.tracepoint = (name, args) => {
      prev?.(name, args);
      if (name === 'eventfd_signal') s.counters['eventfd signals']!++;
    };
    return s;
  }

  // ------------------------------------------------------------ names

  private env(): Env {
    return {
      fd: (n) => this.fds.get(n)?.fd,
      mapping: (n) => this.mappings.get(n)?.addr,
      device: (n) => {
        const d = this.devices.get(n);
        return d === undefined ? undefined : { group: d.group, pci: d.rec.name };
      },
    };
  }

  private proc(name: string | undefined): Process {
    const p = name === undefined ? this.allProcs[0] : this.procs.get(name);
    if (p === undefined) throw new Error(`no process ${name}`);
    return p;
  }

  private fdRef(name: string): FdRef {
    const f = this.fds.get(name);
    if (f === undefined) throw new Error(`no fd named ${name}`);
    return f;
  }

  /** Resolution problems at run time are model-independent scenario errors `check` should have caught. */
  private resolved(b: StepBuilder, problems: ArgProblem[]): boolean {
    if (problems.length === 0) return true;
    b.expect(
      'the arguments resolve',
      false,
      problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; '),
    );
    return false;
  }

  // ------------------------------------------------------------ results

  /** Notes a syscall's outcome and checks `ret` / `errno` / `blocked`. */
  private result(b: StepBuilder, what: string, r: number | Pending, e: ResultExpect | undefined): void {
    this.counters.syscalls!++;
    const asleep = r instanceof Pending && !r.done;
    const value = r instanceof Pending ? (r.done ? r.result : undefined) : r;
    if (asleep) this.counters['blocked calls']!++;
    b.note(`${what} → ${asleep ? 'blocked' : describeRet(value!)}`);
    this.checkResult(b, asleep, value, e);
  }

  private checkResult(
    b: StepBuilder,
    asleep: boolean,
    value: number | undefined,
    e: ResultExpect | undefined,
  ): void {
    const got = asleep ? 'blocked (asleep)' : describeRet(value!);
    // Decision: as at the other levels, a call without `expect` is expected not to fail (to sleep
    // or to return ≥ 0); a refusal must be asked for with `errno`, so nothing fails unnoticed.
    if (e === undefined) {
      b.expect('the call does not fail', asleep || (value !== undefined && value >= 0), got);
      return;
    }
    if (e.blocked !== undefined)
      b.expect(e.blocked ? 'the call sleeps' : 'the call returns', asleep === e.blocked, got);
    if (e.errno !== undefined) {
      const want = -(ERRNO_BY_NAME[e.errno] ?? 0);
      b.expect(`fails with ${e.errno}`, !asleep && value === want, got);
    }
    if (e.ret !== undefined) {
      const problems: ArgProblem[] = [];
      const want = resolveScalar(e.ret, ['expect', 'ret'], problems);
      b.expect(`returns ${show(e.ret)}`, !asleep && value !== undefined && BigInt(value) === want, got);
    }
  }

  // ------------------------------------------------------------ steps

  step(st: UapiStep, b: StepBuilder): void {
    this.dispatch(st, b);
    this.afterStep();
  }

  private dispatch(st: UapiStep, b: StepBuilder): void {
    switch (st.do) {
      case 'open':
        return this.open(st, b);
      case 'close':
        return this.close(st, b);
      case 'ioctl':
        return this.ioctl(st, b);
      case 'eventfd':
        return this.eventfd(st, b);
      case 'read':
        return this.read(st, b);
      case 'write':
        return this.write(st, b);
      case 'poll':
        return this.poll(st, b);
      case 'epoll_create':
        return this.epollCreate(st, b);
      case 'epoll_ctl':
        return this.epollCtl(st, b);
      case 'epoll_wait':
        return this.epollWait(st, b);
      case 'wait':
        return this.wait(st, b);
      case 'signal':
        return this.signal(st, b);
      case 'advance':
        this.host.kernel.advanceTime(st.ms * 1e6);
        b.note(`virtual time now ${this.host.kernel.nowNs / 1e6} ms`);
        return;
      case 'pread':
        return this.pread(st, b);
      case 'pwrite':
        return this.pwrite(st, b);
      case 'ext_caps':
        return this.extCaps(st, b);
      case 'mmap':
        return this.mmap(st, b);
      case 'peek':
        return this.peek(st, b);
      case 'poke':
        return this.poke(st, b);
      case 'exit':
        return this.exit(st, b);
      case 'host':
        return this.observe(st, b);
    }
  }

  private bindFd(as: string | undefined, proc: Process, r: number): void {
    // Decision: a failed open/ioctl still binds the name (to the negative result), so a later
    // use of it is EBADF — what a C program using the unchecked value would get.
    if (as !== undefined) this.fds.set(as, { proc, fd: r });
  }

  private open(st: StepOf<'open'>, b: StepBuilder): void {
    const problems: ArgProblem[] = [];
    const path = expandTemplate(st.path, ['path'], this.env(), problems);
    const flags = st.flags === undefined ? O_RDWR : flagsNumber(st.flags, ['flags'], problems);
    if (!this.resolved(b, problems)) return;
    const p = this.proc(st.process);
    const r = p.open(path, flags);
    this.result(b, `${p.name}: open("${path}", 0x${flags.toString(16)})`, r, st.expect);
    this.bindFd(st.as, p, r);
  }

  private close(st: StepOf<'close'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    this.result(b, `${f.proc.name}: close(${st.fd} = ${f.fd})`, f.proc.close(f.fd), st.expect);
  }

  private ioctl(st: StepOf<'ioctl'>, b: StepBuilder): void {
    const spec = IOCTLS.get(st.request);
    if (spec === undefined) throw new Error(`unknown ioctl ${st.request}`);
    const f = this.fdRef(st.fd);
    const problems: ArgProblem[] = [];
    const env = this.env();
    const scalarArg = (): number => {
      if (st.arg === undefined) return 0;
      if (typeof st.arg === 'string' && this.fds.has(st.arg)) return this.fds.get(st.arg)!.fd;
      return Number(BigInt.asIntN(53, resolveFlags(st.arg, ['arg'], problems)));
    };
    let arg: number | Uint8Array = 0;
    let buf: Uint8Array | undefined;
    const a = spec.arg;
    switch (a.kind) {
      case 'none':
      case 'value':
        arg = scalarArg();
        break;
      case 'int-pointer':
        arg = leBytes(BigInt.asUintN(32, BigInt(scalarArg())), 4);
        break;
      case 'string':
        arg = cstr(typeof st.arg === 'string' ? expandTemplate(st.arg, ['arg'], env, problems) : '');
        break;
      case 'struct': {
        const input = fillArgsz(
          a.layout,
          structValue(a.layout.fields, st.arg ?? {}, ['arg'], env, problems, a.layout.name),
        );
        if (st.argsz !== undefined) input.argsz = st.argsz;
        const full = a.layout.encode(input as never);
        buf = new Uint8Array(st.size ?? a.layout.size);
        buf.set(full.subarray(0, Math.min(buf.length, full.length)));
        arg = buf;
        break;
      }
    }
    if (!this.resolved(b, problems)) return;
    const r = f.proc.ioctl(f.fd, spec.request, arg);
    this.counters.ioctls!++;
    const key = r < 0 ? `ioctl ${errnoName(r)}` : 'ioctl ok';
    this.counters[key] = (this.counters[key] ?? 0) + 1;
    const shown = a.kind === 'struct' ? `${a.layout.name} (${(arg as Uint8Array).length} bytes)` : show(arg);
    this.result(b, `${f.proc.name}: ioctl(${st.fd} = ${f.fd}, ${spec.name}, ${shown})`, r, st.expect);
    if (spec.returnsFd) this.bindFd(st.as, f.proc, r);
    if (st.expect?.out !== undefined && a.kind === 'struct' && buf !== undefined) {
      const got = a.layout.decode(buf);
      const diff = mismatches(got, resolveExpected(st.expect.out));
      b.expect('output fields', diff.length === 0, diff.length === 0 ? show(st.expect.out) : diff.join('; '));
    }
  }

  private eventfd(st: StepOf<'eventfd'>, b: StepBuilder): void {
    const problems: ArgProblem[] = [];
    const flags = st.flags === undefined ? 0 : flagsNumber(st.flags, ['flags'], problems);
    if (!this.resolved(b, problems)) return;
    const p = this.proc(st.process);
    const r = p.eventfd2(st.initval, flags);
    this.result(b, `${p.name}: eventfd2(${st.initval}, 0x${flags.toString(16)})`, r, st.expect);
    this.bindFd(st.as, p, r);
  }

  private read(st: StepOf<'read'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    const buf = new Uint8Array(st.size);
    const r = f.proc.read(f.fd, buf, st.size);
    this.result(b, `${f.proc.name}: read(${st.fd} = ${f.fd}, ${st.size})`, r, st.expect);
    if (r instanceof Pending && !r.done) {
      if (st.as !== undefined) this.calls.set(st.as, { kind: 'read', p: r, buf });
      return;
    }
    this.readValue(b, typeof r === 'number' ? r : r.result, buf, st.expect);
  }

  private readValue(
    b: StepBuilder,
    r: number,
    buf: Uint8Array,
    e: { value?: unknown; bytes?: Uint8Array | undefined } | undefined,
  ): void {
    if (r > 0) b.note(`read ${show(le(buf.subarray(0, r)))}`);
    if (e?.value !== undefined)
      expectMatch(b, 'value read', r > 0 ? le(buf.subarray(0, r)) : 'nothing', resolveFlags(e.value, [], []));
    if (e?.bytes !== undefined)
      expectMatch(b, 'bytes read', Array.from(buf.subarray(0, Math.max(0, r))), Array.from(e.bytes));
  }

  private write(st: StepOf<'write'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    const data = st.bytes ?? (st.value !== undefined ? leBytes(st.value, 8) : new Uint8Array(0));
    const count = st.size ?? data.length;
    const buf = new Uint8Array(Math.max(count, data.length));
    buf.set(data);
    const r = f.proc.write(f.fd, buf, count);
    this.result(b, `${f.proc.name}: write(${st.fd} = ${f.fd}, ${show(le(data))}, ${count})`, r, st.expect);
    if (r instanceof Pending && !r.done && st.as !== undefined)
      this.calls.set(st.as, { kind: 'write', p: r });
  }

  private poll(st: StepOf<'poll'>, b: StepBuilder): void {
    const problems: ArgProblem[] = [];
    const p = this.proc(st.process);
    const pfds: PollFd[] = st.fds.map((x, i) => ({
      fd: this.fdRef(x.fd).fd,
      events: flagsNumber(x.events, ['fds', i, 'events'], problems),
      revents: 0,
    }));
    if (!this.resolved(b, problems)) return;
    const names = st.fds.map((x) => x.fd);
    const r = p.poll(pfds, st.timeout);
    this.result(b, `${p.name}: poll([${names.join(', ')}], ${st.timeout})`, r, st.expect);
    if (r instanceof Pending && !r.done) {
      if (st.as !== undefined) this.calls.set(st.as, { kind: 'poll', p: r, pfds, names });
      return;
    }
    this.reventsCheck(b, pfds, names, st.expect?.revents);
  }

  private reventsCheck(
    b: StepBuilder,
    pfds: PollFd[],
    names: string[],
    want: Record<string, unknown> | undefined,
  ): void {
    b.note(`revents: ${pfds.map((x, i) => `${names[i]}=${pollMaskNames(x.revents)}`).join(', ')}`);
    if (want === undefined) return;
    for (const [n, w] of Object.entries(want)) {
      const i = names.indexOf(n);
      const got = i < 0 ? 0 : pfds[i]!.revents;
      const mask = flagsNumber(w, [], []);
      b.expect(`revents of ${n} = ${pollMaskNames(mask)}`, got === mask, pollMaskNames(got));
    }
  }

  private epollCreate(st: StepOf<'epoll_create'>, b: StepBuilder): void {
    const problems: ArgProblem[] = [];
    const flags = st.flags === undefined ? 0 : flagsNumber(st.flags, ['flags'], problems);
    if (!this.resolved(b, problems)) return;
    const p = this.proc(st.process);
    const r = p.epollCreate1(flags);
    this.result(b, `${p.name}: epoll_create1(0x${flags.toString(16)})`, r, st.expect);
    this.bindFd(st.as, p, r);
  }

  private epollCtl(st: StepOf<'epoll_ctl'>, b: StepBuilder): void {
    const ep = this.fdRef(st.epfd);
    const t = this.fdRef(st.fd);
    const problems: ArgProblem[] = [];
    const events = st.events === undefined ? 0 : flagsNumber(st.events, ['events'], problems);
    if (!this.resolved(b, problems)) return;
    const op = st.op === 'ADD' ? EPOLL_CTL_ADD : st.op === 'MOD' ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    const r = ep.proc.epollCtl(ep.fd, op, t.fd, st.op === 'DEL' ? undefined : { events, data: t.fd });
    this.result(
      b,
      `${ep.proc.name}: epoll_ctl(${st.epfd}, EPOLL_CTL_${st.op}, ${st.fd}, ${pollMaskNames(events)})`,
      r,
      st.expect,
    );
  }

  private epollWait(st: StepOf<'epoll_wait'>, b: StepBuilder): void {
    const ep = this.fdRef(st.epfd);
    const events: EpollEvent[] = [];
    const r = ep.proc.epollWait(ep.fd, events, st.maxevents, st.timeout);
    this.result(b, `${ep.proc.name}: epoll_wait(${st.epfd}, ${st.maxevents}, ${st.timeout})`, r, st.expect);
    if (r instanceof Pending && !r.done) {
      if (st.as !== undefined) this.calls.set(st.as, { kind: 'epoll_wait', p: r, events, proc: ep.proc });
      return;
    }
    this.eventsCheck(b, events, ep.proc, st.expect?.events);
  }

  private eventsCheck(
    b: StepBuilder,
    events: EpollEvent[],
    proc: Process,
    want: Record<string, unknown> | undefined,
  ): void {
    const nameOf = (fd: number): string =>
      [...this.fds].find(([, f]) => f.proc === proc && f.fd === fd)?.[0] ?? `fd ${fd}`;
    b.note(
      `events: ${events.map((e) => `${nameOf(Number(e.data))}=${pollMaskNames(e.events)}`).join(', ') || 'none'}`,
    );
    if (want === undefined) return;
    for (const [n, w] of Object.entries(want)) {
      const fd = this.fds.get(n)?.fd;
      const got = events.find((e) => Number(e.data) === fd)?.events ?? 0;
      const mask = flagsNumber(w, [], []);
      b.expect(`events of ${n} = ${pollMaskNames(mask)}`, got === mask, pollMaskNames(got));
    }
  }

  private wait(st: StepOf<'wait'>, b: StepBuilder): void {
    const c = this.calls.get(st.call);
    if (c === undefined) {
      b.expect(`a sleeping call named ${st.call}`, false, 'the call did not sleep (it returned at once)');
      return;
    }
    const asleep = !c.p.done;
    b.note(`${c.p.label}: ${asleep ? 'still asleep' : `returned ${describeRet(c.p.result)}`}`);
    this.checkResult(b, asleep, asleep ? undefined : c.p.result, st.expect);
    if (asleep) return;
    if (c.kind === 'read') this.readValue(b, c.p.result, c.buf, st.expect);
    else if (c.kind === 'poll') this.reventsCheck(b, c.pfds, c.names, st.expect?.revents);
    else if (c.kind === 'epoll_wait') this.eventsCheck(b, c.events, c.proc, st.expect?.events);
  }

  private signal(st: StepOf<'signal'>, b: StepBuilder): void {
    const c = this.calls.get(st.call);
    const delivered = c !== undefined && this.host.kernel.interrupt(c.p);
    b.note(delivered ? `signal interrupts ${c!.p.label}` : 'no sleeping call to interrupt');
    if (st.expect?.delivered !== undefined)
      b.expect('the signal interrupts a sleeping call', delivered === st.expect.delivered, String(delivered));
  }

  private regionOffset(region: string | number, offset: number): number {
    const index = typeof region === 'number' ? region : REGION_INDEX[region]!;
    return vfioPciIndexToOffset(index) + offset;
  }

  private pread(st: StepOf<'pread'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    const buf = new Uint8Array(st.size);
    const r = f.proc.pread(f.fd, buf, st.size, this.regionOffset(st.region, st.offset));
    const n = typeof r === 'number' ? r : r.result;
    this.result(
      b,
      `${f.proc.name}: pread(${st.fd}, ${st.size}, ${st.region}+0x${st.offset.toString(16)})`,
      r,
      st.expect,
    );
    if (n > 0) b.note(`read 0x${le(buf.subarray(0, n)).toString(16)}`);
    if (st.expect?.value !== undefined)
      expectMatch(
        b,
        'value read',
        n > 0 ? le(buf.subarray(0, n)) : 'nothing',
        resolveFlags(st.expect.value, [], []),
      );
    if (st.expect?.bytes !== undefined)
      expectMatch(b, 'bytes read', Array.from(buf.subarray(0, Math.max(0, n))), Array.from(st.expect.bytes));
  }

  private pwrite(st: StepOf<'pwrite'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    const data = st.bytes ?? leBytes(st.value ?? 0n, st.size);
    const r = f.proc.pwrite(f.fd, data, data.length, this.regionOffset(st.region, st.offset));
    this.result(
      b,
      `${f.proc.name}: pwrite(${st.fd}, ${show(le(data))}, ${data.length}, ${st.region}+0x${st.offset.toString(16)})`,
      r,
      st.expect,
    );
  }

  /** Walks the extended capability chain from 0x100 with 4-byte preads, as a user program would. */
  private extCaps(st: StepOf<'ext_caps'>, b: StepBuilder): void {
    const f = this.fdRef(st.fd);
    const caps: { id: number; version: number; offset: number }[] = [];
    let at = 0x100;
    for (let n = 0; n < 64 && at >= 0x100; n++) {
      const buf = new Uint8Array(4);
      const r = f.proc.pread(f.fd, buf, 4, this.regionOffset('config', at));
      this.counters.syscalls!++;
      if (r !== 4) {
        b.note(`pread at 0x${at.toString(16)} → ${describeRet(typeof r === 'number' ? r : r.result)}`);
        break;
      }
      const h = Number(le(buf));
      if (h === 0) break;
      caps.push({ id: h & 0xffff, version: (h >>> 16) & 0xf, offset: at });
      at = (h >>> 20) & 0xffc;
    }
    b.note(
      `chain: ${caps.map((c) => `0x${c.id.toString(16)} v${c.version} @0x${c.offset.toString(16)}`).join(' → ') || 'empty'}`,
    );
    const e = st.expect;
    if (e === undefined) return;
    const ids = caps.map((c) => c.id);
    const num = (v: unknown): number => Number(resolveScalar(v, [], []));
    if (e.caps !== undefined) {
      const want = e.caps.map((c) => ({
        id: num(c.id),
        ...(c.version !== undefined ? { version: c.version } : {}),
        ...(c.offset !== undefined ? { offset: num(c.offset) } : {}),
      }));
      expectMatch(b, 'extended capability chain', caps, want);
    }
    for (const c of e.has ?? [])
      b.expect(
        `capability 0x${num(c).toString(16)} in the chain`,
        ids.includes(num(c)),
        show(ids.map((x) => `0x${x.toString(16)}`)),
      );
    for (const c of e.lacks ?? [])
      b.expect(
        `capability 0x${num(c).toString(16)} not in the chain`,
        !ids.includes(num(c)),
        show(ids.map((x) => `0x${x.toString(16)}`)),
      );
  }

  private mmap(st: StepOf<'mmap'>, b: StepBuilder): void {
    const problems: ArgProblem[] = [];
    const prot = st.prot === undefined ? PROT_READ | PROT_WRITE : flagsNumber(st.prot, ['prot'], problems);
    const flags =
      st.flags === undefined
        ? st.fd !== undefined
          ? MAP_SHARED
          : MAP_PRIVATE
        : flagsNumber(st.flags, ['flags'], problems);
    if (!this.resolved(b, problems)) return;
    const file = st.fd !== undefined ? this.fdRef(st.fd) : undefined;
    const p = file?.proc ?? this.proc(st.process);
    const r = p.mmap(st.size, prot, flags, 0, file?.fd ?? -1, st.offset);
    this.result(
      b,
      `${p.name}: mmap(${st.size}, ${prot}, 0x${flags.toString(16)}, ${st.fd ?? 'anonymous'})`,
      r,
      st.expect,
    );
    if (st.as !== undefined && r >= 0) this.mappings.set(st.as, { proc: p, addr: r, size: st.size });
  }

  private memoryLayout(st: StepOf<'peek'> | StepOf<'poke'>): { size: number; struct?: string } {
    if (st.struct !== undefined) return { size: STRUCTS.get(st.struct)!.size, struct: st.struct };
    return { size: SCALARS[st.type!] };
  }

  private peek(st: StepOf<'peek'>, b: StepBuilder): void {
    const m = this.mappings.get(st.mapping);
    if (m === undefined) {
      b.expect(`a mapping named ${st.mapping}`, false, 'the mmap failed');
      return;
    }
    const { size } = this.memoryLayout(st);
    const bytes = m.proc.mm.readUser(m.addr + st.offset, size);
    if (bytes === undefined) {
      b.expect(`${size} bytes at ${st.mapping}+0x${st.offset.toString(16)} are readable`, false, 'EFAULT');
      return;
    }
    if (st.struct !== undefined) {
      const got = STRUCTS.get(st.struct)!.decode(bytes);
      if (st.expect?.fields !== undefined) {
        const diff = mismatches(got, resolveExpected(st.expect.fields));
        b.expect(
          `${st.struct} fields`,
          diff.length === 0,
          diff.length === 0 ? show(st.expect.fields) : diff.join('; '),
        );
      }
      return;
    }
    const v = le(bytes);
    b.note(`${st.type} at ${st.mapping}+0x${st.offset.toString(16)} = ${show(v)}`);
    if (st.expect?.value !== undefined) {
      const want = resolveScalar(st.expect.value, [], []);
      b.expect(`${st.type} = ${show(want)}`, v === BigInt.asUintN(size * 8, want), show(v));
    }
  }

  private poke(st: StepOf<'poke'>, b: StepBuilder): void {
    const m = this.mappings.get(st.mapping);
    if (m === undefined) {
      b.expect(`a mapping named ${st.mapping}`, false, 'the mmap failed');
      return;
    }
    const problems: ArgProblem[] = [];
    let bytes: Uint8Array;
    if (st.struct !== undefined) {
      const layout = STRUCTS.get(st.struct)!;
      bytes = layout.encode(
        structValue(layout.fields, st.fields ?? {}, ['fields'], this.env(), problems, layout.name) as never,
      );
    } else {
      bytes = leBytes(resolveScalar(st.value ?? 0, ['value'], problems), SCALARS[st.type!]);
    }
    if (!this.resolved(b, problems)) return;
    const ok = m.proc.mm.writeUser(m.addr + st.offset, bytes);
    b.expect(
      `${bytes.length} bytes written at ${st.mapping}+0x${st.offset.toString(16)}`,
      ok,
      ok ? 'written' : 'EFAULT',
    );
  }

  private exit(st: StepOf<'exit'>, b: StepBuilder): void {
    const p = this.proc(st.process);
    const open = p.openFds.length;
    p.exit();
    b.note(`${p.name} (pid ${p.pid}) exits with ${open} fds open`);
  }

  /** Observation only: reads host state the scenario expects, changes nothing. */
  private observe(st: StepOf<'host'>, b: StepBuilder): void {
    b.note('observation of host state (read-only)');
    const e = st.expect;
    if (st.ste !== undefined) {
      const d = this.devices.get(st.ste)!;
      const picture = this.stePicture(d);
      b.note(`STE of ${st.ste} (SID 0x${d.rec.fn.streamId.toString(16)}): ${show(picture)}`);
      if (e?.ste !== undefined) expectMatch(b, `STE of ${st.ste}`, picture, e.ste);
    }
    if (e?.pasids !== undefined)
      expectMatch(b, 'PASIDs allocated on the host', this.host.ioasid.allocated, e.pasids);
    if (e?.pinnedPages !== undefined)
      expectMatch(b, 'pages pinned for DMA', this.pinnedPages(), e.pinnedPages);
    if (e?.pasidEnabled !== undefined) {
      const d = st.ste !== undefined ? this.devices.get(st.ste) : [...this.devices.values()][0];
      expectMatch(b, 'PASID Enable in the device', d?.dev.pasidEnabled, e.pasidEnabled);
    }
  }

  private stePicture(d: DeviceRef): Record<string, unknown> {
    const smmu = this.host.smmu(d.rec.iommuDev.iommuName);
    const words = smmu.driver.steWords(d.rec.fn.streamId);
    if (words === undefined) return { valid: false, reason: 'no STE' };
    const raw = Array.from(words.subarray(0, 8));
    const dec = decodeSte(words, smmu.hw.features, false);
    if (!dec.ok) return { valid: false, reason: dec.reason, words: raw };
    const v = dec.value;
    return {
      valid: true,
      config: CONFIG_NAMES[v.config & 7],
      s1ContextPtr: v.s1ContextPtr,
      s1CdMax: v.s1CdMax,
      s1Fmt: v.s1Fmt,
      s1Dss: v.s1Dss,
      vmid: v.vmid,
      words: raw,
    };
  }

  private pinnedPages(): number {
    return this.allProcs.reduce((n, p) => n + (p.exited ? 0 : p.mm.stats.pinnedPages), 0);
  }

  /** After each step: counters that are maxima. */
  private afterStep(): void {
    this.counters['peak pinned pages'] = Math.max(this.counters['peak pinned pages']!, this.pinnedPages());
  }

  finish(): SessionResult {
    const stillOpen = this.allProcs.reduce(
      (n, p) => n + (p.exited ? 0 : p.openFds.filter((fd) => fd > 2).length),
      0,
    );
    const blocked = this.host.kernel.blocked.length;
    for (const p of this.allProcs) p.exit();
    this.counters['fds open at the end'] = stillOpen;
    this.counters['calls asleep at the end'] = blocked;
    this.counters['syscalls (kernel count)'] = this.allProcs.reduce(
      (n, p) => n + Object.values(p.stats.syscalls).reduce((a, x) => a + x, 0),
      0,
    );
    return {
      counters: this.counters,
      invariants: {
        leakedPasids: this.host.ioasid.allocated,
        leakedPinnedPages: this.allProcs.reduce((n, p) => n + p.mm.stats.pinnedPages, 0),
        leakedDomains: Math.max(0, this.host.iommu.iommuDomains().length - this.baselineDomains),
        callsAsleepAfterExit: this.host.kernel.blocked.length,
      },
    };
  }
}

function describeRet(r: number): string {
  return r < 0 ? `-${errnoName(r)}` : String(r);
}

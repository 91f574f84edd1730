/**
 * Running a system-level scenario: a `VsvaSystem` (host, assigned PASID DMA devices, VMs with
 * guests in their vCPUs) built from the setup, and one executor per step that acts the way a user
 * of a whole system does — through the guest's job API (`GuestOs.submit` with SVA bind/unbind/
 * munmap/flush and the DMA driver's `submit`), the VMM's own uAPI calls (a vCPU reset is the
 * VMM's KVM_ARM_VCPU_INIT), and the fault-injection knobs the guest offers (`remapNoInvalidate`,
 * `injectCommand`, a driver writing a bad STE). Host, VMM and guest objects are otherwise only
 * observed: PCIIOMMUOps lookups, the vSMMU's forwarding log, the VMM's ioctl log, fault records,
 * counters and invariants.
 *
 * Decisions:
 * - A step without `expect` expects its action to succeed (boot ok, bind gives a PASID, a DMA
 *   completes with success, unbind/unmap/flush return 0); with `expect`, only what it names.
 * - Every DMA step settles the system afterwards, so the fault events a DMA caused have reached
 *   the guest (and its processes) before the next step looks.
 * - `unmap invalidate: false` is a guest driver bug: the page-table entries go, no TLBI is sent and
 *   the frames stay allocated until `flush` sends the TLBI and frees them.
 * - Emulated bridges and endpoints of the setup are plugged into the VM's root bus before boot
 *   (what `-device pcie-pci-bridge,… -device …,bus=…` does on a QEMU command line).
 * - `workload` DMAs for a process use two areas mapped on first use (64 KiB source with seeded
 *   random bytes, 256 KiB destination), never overlap within a batch, and are checked in host
 *   memory; a faulting DMA targets a VA below the process's mmap base, which is never mapped.
 */

import { mixSeed, prng } from '../../arch/prng.ts';
import { VIRT_MEM } from '../../arch/virt.ts';
import type { GuestJob } from '../../guest/os.ts';
import type { PdmaDriver, PdmaRequest } from '../../guest/pdma.ts';
import { type GuestProcess, type MapUnit, MMAP_BASE, USER_RW } from '../../guest/process.ts';
import type { Guest } from '../../guest/trap.ts';
import type { Arm64Vcpu } from '../../host/kvm/arm64/vcpu.ts';
import type { CompletionRecord } from '../../hw/pci/pasid-dma-regs.ts';
import { cmdCfgiSte, cmdRaw, cmdTlbiNhAsid } from '../../hw/smmuv3/structures.ts';
import { errnoName } from '../../uapi/errno.ts';
import {
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
} from '../../uapi/iommu.ts';
import {
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_ARM_VCPU_INIT,
  KVM_ARM_VCPU_POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2,
  kvm_vcpu_init,
} from '../../uapi/kvm.ts';
import { PCIBridge } from '../../vmm/pci/bridge.ts';
import { pci_device_iommu_address_space, pci_device_iommu_lookup } from '../../vmm/pci/bus.ts';
import { PCI_DEVFN, PCIDevice } from '../../vmm/pci/device.ts';
import { pciStreamId } from '../../vmm/smmuv3/virt-smmu.ts';
import { expectMatch, show } from '../format/expect.ts';
import type { RunContext, Session } from '../format/level.ts';
import type { Tracer, Track } from '../format/trace.ts';
import type { StepBuilder } from '../report.ts';
import type { SystemVm, VsvaSystem } from '../system.ts';
import { systemCounters } from './counters.ts';
import { type Loc, parseRef, type Setup, type Step, type VmSetup } from './schema.ts';

const PAGE = 0x1000;
const WL_SRC = 0x1_0000;
const WL_DST = 0x4_0000;
/** A VA no process ever maps (below the mmap base), for faulting DMAs. */
const HOLE_VA = MMAP_BASE - 0x100_0000;

/** A named mapping of a process. */
interface Buffer {
  readonly va: number;
  readonly size: number;
  mapped: boolean;
  /** Units unmapped without invalidation, waiting for `flush`. */
  stale: MapUnit[];
  /** Page VA → the frame it had before the last `remap`. */
  readonly oldFrames: Map<number, number>;
}

interface ProcState {
  readonly p: GuestProcess;
  readonly buffers: Map<string, Buffer>;
  /** Workload areas, mapped on first use. */
  wl?: { src: number; dst: number };
  /** Fault records already traced. */
  traced: number;
}

interface VmState {
  readonly sv: SystemVm;
  readonly spec: VmSetup;
  readonly procs: Map<string, ProcState>;
  readonly endpoints: Map<string, PCIDevice>;
  readonly track: Track | undefined;
}

type JobResult<T> = { ok: true; value: T } | { ok: false; error: string };

function retResult(r: JobResult<number>): Record<string, unknown> {
  if (!r.ok) return { ok: false, error: r.error };
  return r.value < 0 ? { ok: false, ret: r.value, errno: errnoName(r.value) } : { ok: true, ret: r.value };
}

function configName(c: number | undefined): string | undefined {
  if (c === IOMMU_PASID_CONFIG_TRANSLATE) return 'translate';
  if (c === IOMMU_PASID_CONFIG_BYPASS) return 'bypass';
  if (c === IOMMU_PASID_CONFIG_ABORT) return 'abort';
  return c === undefined ? undefined : String(c);
}

/** "fault" in an expectation matches either fault status. */
function statusWant(want: string | undefined, got: string | undefined): string | undefined {
  return want === 'fault' && (got === 'read-fault' || got === 'write-fault') ? got : want;
}

/** Repeats `pattern` over `len` bytes. */
function repeat(pattern: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  if (pattern.length > 0) for (let i = 0; i < len; i++) out[i] = pattern[i % pattern.length]!;
  return out;
}

/** JSON for notes, with addresses (≥ 64 KiB) and bigints in hex and long lists cut. */
function brief(v: unknown): string {
  const text = JSON.stringify(v, (_k, x) => {
    if (typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x) && x >= 0x1_0000))
      return `0x${x.toString(16)}`;
    if (x instanceof Uint8Array) return show(x);
    return x;
  });
  return text === undefined ? 'nothing' : text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function equalBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

export class SystemSession implements Session<Step> {
  readonly sys: VsvaSystem;
  private readonly setup: Setup;
  private readonly vms = new Map<string, VmState>();
  private readonly rand: () => number;
  private readonly tracer: Tracer | undefined;

  constructor(sys: VsvaSystem, setup: Setup, ctx: RunContext) {
    this.sys = sys;
    this.setup = setup;
    this.rand = prng(mixSeed(ctx.seed));
    this.tracer = ctx.tracer;
    for (const spec of setup.vms) {
      const sv = sys.vm(spec.name);
      this.vms.set(spec.name, {
        sv,
        spec,
        procs: new Map(),
        endpoints: new Map(),
        track: ctx.tracer?.track(spec.name, 'guest'),
      });
    }
  }

  /** Plugs the setup's emulated bridges and endpoints into each VM's root bus; an error string on refusal. */
  plugTopology(): string | undefined {
    for (const v of this.vms.values()) {
      const root = v.sv.vm.gpex.root;
      const bridges = new Map<string, PCIBridge>();
      for (const b of v.spec.bridges) {
        const br = new PCIBridge(b.name, b.kind);
        const r = br.realizeOn(root, PCI_DEVFN(b.slot, 0));
        if (r < 0) return `${v.spec.name}: bridge ${b.name}: ${errnoName(r)}`;
        bridges.set(b.name, br);
      }
      for (const e of v.spec.endpoints) {
        const dev = new PCIDevice(e.name, { vendorId: 0x1b36, deviceId: 0x0005, classCode: 0xff_00_00 });
        const bus = e.bus === undefined ? root : bridges.get(e.bus)!.secondary;
        const r = dev.realizeOn(bus, PCI_DEVFN(e.slot, e.fn));
        if (r < 0) return `${v.spec.name}: endpoint ${e.name}: ${errnoName(r)}`;
        v.endpoints.set(e.name, dev);
      }
    }
    return undefined;
  }

  // ------------------------------------------------------------------ helpers

  private vm(name: string | undefined): VmState {
    return this.vms.get(name ?? this.setup.vms[0]!.name)!;
  }

  private proc(v: VmState, name: string): ProcState {
    const p = v.procs.get(name);
    if (p === undefined) throw new Error(`process ${name} not spawned (the checks should have caught this)`);
    return p;
  }

  private job<T>(v: VmState, name: string, body: () => Guest<T>): JobResult<T> {
    const job: GuestJob<T> = v.sv.guest.submit(0, name, body);
    return this.sys.run(job);
  }

  /** The guest's driver of DMA engine `device`; records a failed expectation when there is none. */
  private pdma(v: VmState, device: number, b: StepBuilder): PdmaDriver | undefined {
    const drv = v.sv.guest.pdma[device];
    if (drv === undefined)
      b.expect(
        `device ${device} has a DMA driver in the guest`,
        false,
        `${v.sv.guest.pdma.length} DMA engines`,
      );
    return drv;
  }

  /** The VA a location names in process `ps` (undefined: unknown buffer). */
  private va(ps: ProcState, l: Loc): number | undefined {
    if (typeof l === 'number') return l;
    const r = parseRef(l);
    const buf = r === undefined ? undefined : ps.buffers.get(r.buffer);
    return buf === undefined ? undefined : buf.va + r!.offset;
  }

  /** Host bytes behind [va, va+len) of a process, page by page; `old` uses pre-remap frames. */
  private hostBytes(v: VmState, ps: ProcState, va: number, len: number, old = false): Uint8Array | undefined {
    const out = new Uint8Array(len);
    const olds = new Map<number, number>();
    if (old) for (const b of ps.buffers.values()) for (const [k, g] of b.oldFrames) olds.set(k, g);
    for (let a = va; a < va + len; ) {
      const n = Math.min(PAGE - (a % PAGE), va + len - a);
      const page = a - (a % PAGE);
      const base = olds.get(page) ?? ps.p.gpaOf(page);
      if (base === undefined) return undefined;
      const got = this.sys.hostRead(v.sv, base + (a - page), n);
      if (got === undefined) return undefined;
      out.set(got, a - va);
      a += n;
    }
    return out;
  }

  private instant(v: VmState, name: string, args: Record<string, unknown>): void {
    if (this.tracer !== undefined && v.track !== undefined) this.tracer.instant(v.track, 'guest', name, args);
  }

  /** Traces fault records delivered to guest processes since the last call. */
  private traceFaults(): void {
    if (this.tracer === undefined) return;
    for (const v of this.vms.values())
      for (const ps of v.procs.values()) {
        for (const f of ps.p.faults.slice(ps.traced))
          this.instant(v, 'fault delivered', {
            process: ps.p.name,
            pasid: f.pasid,
            addr: f.addr,
            event: f.event,
            write: f.write,
          });
        ps.traced = ps.p.faults.length;
      }
  }

  private noteErrors(b: StepBuilder, before: number): void {
    const all = this.errors();
    for (const e of all.slice(before)) b.note(`error: ${e}`);
  }

  private errors(): string[] {
    return [...this.sys.errors, ...this.sys.vms.flatMap((v) => v.vm.machine.errors)];
  }

  /** Matches `got` with `want` when given, else with `dflt` (the action's success). */
  private verdict(b: StepBuilder, what: string, got: unknown, want: unknown, dflt: unknown): void {
    b.note(`${what}: ${brief(got)}`);
    const w = want ?? dflt;
    if (w !== undefined) expectMatch(b, what, got, w);
  }

  // ------------------------------------------------------------------ steps

  step(st: Step, b: StepBuilder): void {
    const errs = this.errors().length;
    switch (st.do) {
      case 'boot':
        this.boot(st, b);
        break;
      case 'spawn':
        this.spawn(st, b);
        break;
      case 'bind':
      case 'unbind':
        this.bindUnbind(st, b);
        break;
      case 'map':
        this.map(st, b);
        break;
      case 'unmap':
        this.unmap(st, b);
        break;
      case 'remap':
        this.remap(st, b);
        break;
      case 'flush':
        this.flush(st, b);
        break;
      case 'dma':
        this.dma(st, b);
        break;
      case 'read':
        this.read(st, b);
        break;
      case 'workload':
        this.workload(st, b);
        break;
      case 'inject':
        this.inject(st, b);
        break;
      case 'vcpu_reset':
        this.vcpuReset(st, b);
        break;
      case 'pci':
        this.pci(st, b);
        break;
      case 'forwarded':
        this.forwarded(st, b);
        break;
      case 'faults':
        this.faults(st, b);
        break;
      case 'counters': {
        const c = systemCounters(this.sys);
        for (const [k, want] of Object.entries(st.expect ?? {})) {
          if (typeof want === 'bigint') expectMatch(b, k, c[k], want);
          else expectRelation(b, k, c, want);
        }
        break;
      }
      case 'settle':
        b.expect('the system settles', this.sys.settle(), 'quiescent');
        break;
      case 'teardown':
        this.teardown(st, b);
        break;
      case 'invariants':
        this.verdict(b, 'invariants', { ...this.sys.invariants() }, st.expect, undefined);
        break;
    }
    this.traceFaults();
    this.noteErrors(b, errs);
  }

  private boot(st: Extract<Step, { do: 'boot' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const r = this.sys.run(v.sv.guest.boot());
    const dev0 = v.sv.guest.pdma[0]?.fn;
    const got = r.ok
      ? {
          ok: true,
          devices: r.value.devices,
          smmu: r.value.smmu,
          pdma: r.value.pdma,
          pasidWidth: dev0?.pasid?.width ?? null,
        }
      : { ok: false, error: r.error };
    this.instant(v, 'boot', got);
    this.verdict(b, 'boot', got, st.expect, { ok: true });
  }

  private spawn(st: Extract<Step, { do: 'spawn' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const p = v.sv.guest.spawn(st.process);
    v.procs.set(st.process, { p, buffers: new Map(), traced: 0 });
    this.verdict(b, 'process', { pid: p.pid, asid: p.asid }, st.expect, undefined);
  }

  private bindUnbind(st: Extract<Step, { do: 'bind' | 'unbind' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const fn = this.pdma(v, st.device, b)?.fn;
    const sva = v.sv.guest.sva;
    if (fn === undefined) return;
    const pasidBefore = ps.p.pasid;
    const r =
      st.do === 'bind'
        ? this.job(v, `bind ${st.process}`, () => sva.bind(fn, ps.p))
        : this.job(v, `unbind ${st.process}`, () => sva.unbind(fn, ps.p));
    this.sys.settle();
    const got = retResult(r);
    if (st.do === 'bind' && got.ok === true) got.pasid = r.ok ? r.value : undefined;
    this.instant(v, st.do, {
      process: st.process,
      pasid: st.do === 'bind' ? ps.p.pasid : pasidBefore,
      ...got,
    });
    this.verdict(b, st.do, got, st.expect, { ok: true });
  }

  private map(st: Extract<Step, { do: 'map' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const va = ps.p.mmap(st.size, { huge: st.hugepage });
    if (va < 0) {
      this.verdict(b, 'map', { ok: false, errno: errnoName(va) }, st.expect, { ok: true });
      return;
    }
    const unit = st.hugepage ? 0x20_0000 : PAGE;
    const size = Math.ceil(st.size / unit) * unit;
    ps.buffers.set(st.buffer, { va, size, mapped: true, stale: [], oldFrames: new Map() });
    if (st.fill !== undefined) {
      const data =
        st.fill === 'random'
          ? Uint8Array.from({ length: st.size }, () => this.rand() & 0xff)
          : repeat(st.fill, st.size);
      ps.p.write(va, data);
    }
    b.note(
      `${st.process}.${st.buffer}: va 0x${va.toString(16)}, ${size} bytes, first page at gpa 0x${(ps.p.gpaOf(va) ?? -1).toString(16)}`,
    );
    this.verdict(b, 'map', { ok: true, va }, st.expect, { ok: true });
  }

  private unmap(st: Extract<Step, { do: 'unmap' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const buf = ps.buffers.get(st.buffer)!;
    if (st.invalidate) {
      const r = this.job(v, `munmap ${st.buffer}`, () => v.sv.guest.sva.munmap(ps.p, buf.va, buf.size));
      if (r.ok && r.value === 0) buf.mapped = false;
      this.verdict(b, 'munmap', retResult(r), st.expect, { ok: true });
      return;
    }
    // The driver bug: page-table entries gone, no TLBI, frames kept until flush.
    const units = [...ps.p.units.values()].filter((u) => u.va >= buf.va && u.va < buf.va + buf.size);
    for (const u of units) {
      ps.p.pt?.unmap(u.va, u.size);
      ps.p.units.delete(u.va);
    }
    buf.stale.push(...units.map((u) => ({ ...u })));
    buf.mapped = false;
    this.verdict(b, 'unmap without invalidation', { ok: true, ret: 0 }, st.expect, { ok: true });
  }

  private remap(st: Extract<Step, { do: 'remap' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const buf = ps.buffers.get(st.buffer)!;
    const page = buf.va + st.offset - (st.offset % PAGE);
    const r = v.sv.guest.sva.remapNoInvalidate(ps.p, page);
    if (typeof r === 'number') {
      this.verdict(b, 'remap', { ok: false, errno: errnoName(r) }, st.expect, { ok: true });
      return;
    }
    if (!buf.oldFrames.has(page)) buf.oldFrames.set(page, r.oldGpa);
    b.note(
      `va 0x${page.toString(16)}: old gpa 0x${r.oldGpa.toString(16)}, new gpa 0x${r.newGpa.toString(16)}`,
    );
    this.verdict(b, 'remap without invalidation', { ok: true }, st.expect, { ok: true });
  }

  private flush(st: Extract<Step, { do: 'flush' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const buf = ps.buffers.get(st.buffer)!;
    const g = v.sv.guest;
    let r: JobResult<number>;
    if (buf.stale.length > 0 && g.smmu !== undefined) {
      const smmu = g.smmu;
      const units = buf.stale;
      r = this.job(v, `flush ${st.buffer}`, () =>
        smmu.invalidateVa(
          ps.p.asid,
          units.map((u) => ({ va: u.va, size: u.size, step: u.size })),
        ),
      );
      for (const u of units) g.alloc?.free(u.gpa, u.size);
      buf.stale = [];
    } else {
      r = this.job(v, `flush ${st.buffer}`, () => g.sva.flush(ps.p, buf.va, buf.size));
      buf.oldFrames.clear();
    }
    this.verdict(b, 'TLBI', retResult(r), st.expect, { ok: true });
  }

  private completion(c: CompletionRecord): Record<string, unknown> {
    return { status: c.statusName, faultAddr: c.faultAddr, bytesCompleted: c.bytesCompleted, pasid: c.pasid };
  }

  private dma(st: Extract<Step, { do: 'dma' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const drv = this.pdma(v, st.device, b);
    if (drv === undefined) return;
    const word = (st.pattern * 0x0101_0101) >>> 0;
    const req: PdmaRequest = {
      op: st.op,
      proc: ps.p,
      len: st.size,
      ...(st.src !== undefined ? { src: this.va(ps, st.src)! } : {}),
      ...(st.dst !== undefined ? { dst: this.va(ps, st.dst)! } : {}),
      ...(st.op === 'fill' ? { pattern: [word, word] as const } : {}),
    };
    const r = this.job(v, `${st.op} ${st.process}`, () => drv.submit([req]));
    this.sys.settle();
    const got = r.ok ? this.completion(r.value[0]!) : { error: r.error };
    const want = st.expect === undefined ? { status: 'success' } : { ...st.expect };
    if (want.status !== undefined) want.status = statusWant(want.status, got.status as string | undefined);
    if (st.expect?.faultAddr !== undefined)
      (want as Record<string, unknown>).faultAddr = this.va(ps, st.expect.faultAddr);
    this.verdict(b, st.op, got, want, undefined);
  }

  private read(st: Extract<Step, { do: 'read' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const va = this.va(ps, st.at)!;
    const got = this.hostBytes(v, ps, va, st.size, st.frame === 'old');
    b.note(
      `host bytes behind va 0x${va.toString(16)}${st.frame === 'old' ? ' (old frame)' : ''}: ${got === undefined ? 'unmapped' : show(got.slice(0, 16))}`,
    );
    const e = st.expect;
    if (e === undefined) {
      b.expect('the buffer is mapped and readable', got !== undefined, got === undefined ? 'unmapped' : 'ok');
      return;
    }
    if (e.bytes !== undefined) expectMatch(b, 'bytes', got, Array.from(e.bytes));
    const other = (l: Loc) => this.hostBytes(v, ps, this.va(ps, l)!, st.size);
    if (e.sameAs !== undefined) {
      const o = other(e.sameAs);
      b.expect(
        `same bytes as ${e.sameAs}`,
        equalBytes(got, o),
        `${show(got?.slice(0, 8))} vs ${show(o?.slice(0, 8))}`,
      );
    }
    if (e.differsFrom !== undefined) {
      const o = other(e.differsFrom);
      b.expect(
        `bytes differ from ${e.differsFrom}`,
        got !== undefined && o !== undefined && !equalBytes(got, o),
        `${show(got?.slice(0, 8))} vs ${show(o?.slice(0, 8))}`,
      );
    }
  }

  private workload(st: Extract<Step, { do: 'workload' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const drv = this.pdma(v, st.device, b);
    if (drv === undefined) return;
    const rand = st.seed !== undefined ? prng(mixSeed(st.seed)) : this.rand;
    const pick = <T>(xs: readonly T[]): T => xs[rand() % xs.length]!;
    const procs = st.processes.map((n) => this.proc(v, n));
    for (const ps of procs) {
      if (ps.wl !== undefined) continue;
      const src = ps.p.mmap(WL_SRC);
      const dst = ps.p.mmap(WL_DST);
      if (src < 0 || dst < 0) {
        b.expect(`workload buffers of ${ps.p.name}`, false, errnoName(Math.min(src, dst)) ?? '');
        return;
      }
      ps.p.write(
        src,
        Uint8Array.from({ length: WL_SRC }, () => rand() & 0xff),
      );
      ps.wl = { src, dst };
    }
    const before = new Map(procs.map((ps) => [ps, ps.p.faults.length]));
    const planned = new Map(procs.map((ps) => [ps, 0]));
    const totals = {
      submitted: 0,
      success: 0,
      faulted: 0,
      faultsDelivered: 0,
      misdelivered: 0,
      dataErrors: 0,
    };
    const statuses: Record<string, number> = {};
    type Planned = { ps: ProcState; req: PdmaRequest; expectBytes?: Uint8Array; faulting: boolean };
    let batch: Planned[] = [];
    const cursor = new Map(procs.map((ps) => [ps, 0]));
    const runBatch = (): boolean => {
      if (batch.length === 0) return true;
      const reqs = batch.map((x) => x.req);
      const r = this.job(v, 'workload', () => drv.submit(reqs));
      this.sys.settle();
      if (!r.ok) {
        b.expect('the workload batch completes', false, r.error);
        return false;
      }
      r.value.forEach((c, i) => {
        const x = batch[i]!;
        statuses[c.statusName] = (statuses[c.statusName] ?? 0) + 1;
        if (c.statusName === 'success') {
          totals.success++;
          const got = this.hostBytes(v, x.ps, x.req.dst!, x.req.len!);
          if (!equalBytes(got, x.expectBytes)) totals.dataErrors++;
        } else if (c.statusName === 'read-fault' || c.statusName === 'write-fault') totals.faulted++;
      });
      batch = [];
      for (const ps of procs) cursor.set(ps, 0);
      return true;
    };
    for (let i = 0; i < st.count; i++) {
      const ps = pick(procs);
      const op = pick(st.ops);
      const len = pick(st.sizes);
      const faulting = st.faultRatio > 0 && (rand() % 1_000_000) / 1_000_000 < st.faultRatio;
      if (cursor.get(ps)! + len > WL_DST && !runBatch()) return;
      const dstOff = cursor.get(ps)!;
      cursor.set(ps, dstOff + Math.ceil(len / 8) * 8);
      const wl = ps.wl!;
      const srcOff = rand() % (WL_SRC - len + 1);
      const byte = rand() & 0xff;
      const word = (byte * 0x0101_0101) >>> 0;
      const dst = faulting && op === 'fill' ? HOLE_VA : wl.dst + dstOff;
      const src = faulting && op === 'copy' ? HOLE_VA : wl.src + srcOff;
      const req: PdmaRequest =
        op === 'copy'
          ? { op, proc: ps.p, src, dst, len }
          : { op, proc: ps.p, dst, len, pattern: [word, word] };
      const expectBytes = faulting
        ? undefined
        : op === 'copy'
          ? ps.p.read(src, len)
          : new Uint8Array(len).fill(byte);
      if (faulting) planned.set(ps, planned.get(ps)! + 1);
      batch.push({ ps, req, ...(expectBytes !== undefined ? { expectBytes } : {}), faulting });
      totals.submitted++;
    }
    if (!runBatch()) return;
    for (const ps of procs) {
      const fresh = ps.p.faults.slice(before.get(ps)!);
      const mine = fresh.filter(
        (f) => f.pasid === ps.p.pasid && f.addr >= HOLE_VA && f.addr < HOLE_VA + WL_DST,
      );
      const want = planned.get(ps)!;
      totals.faultsDelivered += Math.min(mine.length, want);
      totals.misdelivered += fresh.length - Math.min(mine.length, want);
    }
    const plannedFaults = [...planned.values()].reduce((a, n) => a + n, 0);
    b.note(
      `statuses: ${JSON.stringify(statuses)}; planned faults per process: ${procs.map((ps) => `${ps.p.name}=${planned.get(ps)}`).join(', ')}`,
    );
    this.verdict(b, 'workload', totals, st.expect, {
      submitted: st.count,
      success: st.count - plannedFaults,
      faulted: plannedFaults,
      faultsDelivered: plannedFaults,
      misdelivered: 0,
      dataErrors: 0,
    });
  }

  private inject(st: Extract<Step, { do: 'inject' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const g = v.sv.guest;
    const smmu = g.smmu;
    const vs = v.sv.vm.vsmmu;
    const eventsBefore = { ...(vs?.stats.byEvent ?? {}) };
    const newEvents = (): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const [k, n] of Object.entries(vs?.stats.byEvent ?? {}))
        if (n !== (eventsBefore[k] ?? 0)) out[k] = n - (eventsBefore[k] ?? 0);
      return out;
    };
    const lastConfig = () => {
      const e = [...(vs?.log ?? [])]
        .reverse()
        .find((x) => x.op === 'SET_PASID_TABLE' && x.sid === this.guestSid(v, st.device));
      return configName(e?.op === 'SET_PASID_TABLE' ? e.config.config : undefined);
    };
    let got: Record<string, unknown>;
    if (st.fault === 'illegal-command' || st.fault === 'malformed-ste') {
      if (smmu === undefined) {
        b.expect('the guest has an SMMU driver', false, 'no vSMMU');
        return;
      }
      const errBefore = smmu.cmdErrors.length;
      let r: JobResult<number>;
      if (st.fault === 'illegal-command') {
        smmu.injectCommand = cmdRaw(0x7f);
        r = this.job(v, 'illegal command', () => smmu.submit([cmdTlbiNhAsid(0, 1)]));
      } else {
        const fn = this.pdma(v, st.device, b)?.fn;
        const m = fn === undefined ? undefined : smmu.masters.get(fn.rid);
        if (m === undefined) {
          b.expect(`device ${st.device} is attached to the guest SMMU`, false, 'no master');
          return;
        }
        // STE word 1 holds S1CDMax [31:27]: 31 is beyond the vSMMU's SSIDSIZE, so the STE is ILLEGAL.
        const mem = v.sv.kvm.guestMemory;
        const w1 = mem.read32(m.steAddr + 4);
        mem.write32(m.steAddr + 4, ((w1 & ~(0x1f << 27)) | (31 << 27)) >>> 0);
        r = this.job(v, 'CFGI_STE', () => smmu.submit([cmdCfgiSte(m.sid)]));
      }
      this.sys.settle();
      got = {
        ...retResult(r),
        cmdErrors: smmu.cmdErrors.slice(errBefore).map((e) => e.error),
        events: newEvents(),
        hostConfig: lastConfig(),
      };
    } else {
      const ps = this.proc(v, st.process!);
      const drv = this.pdma(v, st.device, b);
      const va = ps.p.mmap(PAGE);
      if (drv === undefined || va < 0 || ps.p.pt === undefined) {
        b.expect('a DMA engine and a page to redirect', false, `va ${va}`);
        return;
      }
      // The guest kernel points the page at an IPA beyond its RAM: nothing is there at stage 2.
      const outside = VIRT_MEM + v.spec.ramSize + 0x10_0000;
      ps.p.pt.unmap(va, PAGE);
      ps.p.pt.map(va, outside, PAGE, USER_RW);
      const word = 0x5a5a_5a5a;
      const r = this.job(v, 'DMA outside RAM', () =>
        drv.submit([{ op: 'fill', proc: ps.p, dst: va, len: 64, pattern: [word, word] }]),
      );
      this.sys.settle();
      got = r.ok
        ? { ...this.completion(r.value[0]!), events: newEvents() }
        : { error: r.error, events: newEvents() };
    }
    const want = st.expect === undefined ? undefined : { ...st.expect };
    if (want?.status === 'fault' && typeof got.status === 'string')
      want.status = statusWant('fault', got.status) as typeof want.status;
    this.instant(v, `inject ${st.fault}`, { ...got });
    this.verdict(b, st.fault, got, want, undefined);
  }

  /** The guest StreamID of assigned device `i` (its requester ID on the VM's root bus). */
  private guestSid(v: VmState, i: number): number {
    const d = v.sv.vm.devices[i];
    const l = d === undefined ? undefined : pci_device_iommu_lookup(d);
    return l === undefined ? -1 : pciStreamId(l.bus, l.devfn);
  }

  private vcpuReset(st: Extract<Step, { do: 'vcpu_reset' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const fd = v.sv.vm.machine.vcpuFds[st.cpu]!;
    // Decision: the VMM's own choice at creation — PSCI 0.2, secondaries powered off — is what a
    // reset re-applies (QEMU's kvm_arm_reset_vcpu re-runs KVM_ARM_VCPU_INIT with the same features).
    const same = (1 << KVM_ARM_VCPU_PSCI_0_2) | (st.cpu > 0 ? 1 << KVM_ARM_VCPU_POWER_OFF : 0);
    const features = st.features === 'same' ? same : same ^ (1 << KVM_ARM_VCPU_PSCI_0_2);
    const ret = v.sv.proc.ioctl(
      fd,
      KVM_ARM_VCPU_INIT,
      kvm_vcpu_init.encode({ target: KVM_ARM_TARGET_GENERIC_V8, features: [features, 0, 0, 0, 0, 0, 0] }),
    );
    const vcpu = v.sv.kvm.vcpuList[st.cpu]?.arch as Arm64Vcpu | undefined;
    this.sys.settle();
    const got = { ...retResult({ ok: true, value: ret }), powerOff: vcpu?.powerOff };
    this.instant(v, 'vcpu reset', { cpu: st.cpu, ...got });
    this.verdict(b, `KVM_ARM_VCPU_INIT vCPU ${st.cpu}`, got, st.expect, { ok: true });
  }

  private pci(st: Extract<Step, { do: 'pci' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const dev = typeof st.device === 'number' ? v.sv.vm.devices[st.device] : v.endpoints.get(st.device);
    const l = dev === undefined ? undefined : pci_device_iommu_lookup(dev);
    if (dev === undefined || l === undefined) {
      b.expect(`device ${st.device} is plugged`, false, 'not on a bus');
      return;
    }
    const as = pci_device_iommu_address_space(dev);
    const sid = pciStreamId(l.bus, l.devfn);
    const ctx = v.sv.vm.vsmmu?.log.find((e) => e.cause === 'set_iommu_context' && e.sid === sid)?.ctx ?? null;
    const got = {
      addressSpace: as.name,
      iommuBus: l.iommuBus?.name ?? null,
      requester: { bus: l.bus.name, busNumber: l.bus.busNumber(), devfn: l.devfn },
      hostContext: ctx,
    };
    this.verdict(b, `PCIIOMMUOps lookup of ${dev.name}`, got, st.expect, undefined);
  }

  private forwarded(st: Extract<Step, { do: 'forwarded' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const log = (v.sv.vm.vsmmu?.log ?? []).filter((e) => e.op === st.op);
    const ioctl = st.op === 'CACHE_INVALIDATE' ? 'VFIO_IOMMU_CACHE_INVALIDATE' : 'VFIO_IOMMU_SET_PASID_TABLE';
    const ioctls = v.sv.vm.ioctlLog.entries.filter((e) => e.request === ioctl);
    const setFlag = st.op === 'SET_PASID_TABLE' ? 1 : st.op === 'UNSET_PASID_TABLE' ? 2 : undefined;
    const matching =
      setFlag === undefined
        ? ioctls.length
        : ioctls.filter((e) => (e.decoded as { flags?: number } | undefined)?.flags === setFlag).length;
    const got = { count: log.length, ioctls: matching, last: log[log.length - 1] };
    this.verdict(b, `${st.op} forwarded by the vSMMU`, got, st.expect, undefined);
  }

  private faults(st: Extract<Step, { do: 'faults' }>, b: StepBuilder): void {
    const v = this.vm(st.vm);
    const ps = this.proc(v, st.process);
    const records = ps.p.faults.map((f) => ({
      event: f.event,
      addr: f.addr,
      pasid: f.pasid,
      write: f.write,
      device: f.device,
    }));
    const resolve = (list: readonly { addr?: Loc | undefined }[] | undefined) =>
      list?.map((r) => (r.addr === undefined ? r : { ...r, addr: this.va(ps, r.addr) }));
    const e = st.expect;
    const want =
      e === undefined
        ? undefined
        : {
            ...e,
            ...(e.records !== undefined ? { records: resolve(e.records) } : {}),
            ...(e.last !== undefined ? { last: resolve(e.last) } : {}),
          };
    const last = records.slice(Math.max(0, records.length - (e?.last?.length ?? 0)));
    this.verdict(b, `faults of ${st.process}`, { count: records.length, records, last }, want, undefined);
  }

  private teardown(st: Extract<Step, { do: 'teardown' }>, b: StepBuilder): void {
    this.sys.teardown();
    const got = { invariants: { ...this.sys.invariants() }, errors: this.errors().length };
    this.verdict(b, 'teardown', got, st.expect, { errors: 0 });
  }

  finish() {
    this.sys.teardown();
    return { counters: systemCounters(this.sys), invariants: { ...this.sys.invariants() } };
  }
}

/** A counter relation (`same`, `atLeast`, `atMost`): holds for any seed, unlike an exact count. */
function expectRelation(
  b: StepBuilder,
  name: string,
  c: Record<string, number>,
  want: { same?: string | undefined; atLeast?: bigint | undefined; atMost?: bigint | undefined },
): void {
  const got = c[name];
  if (want.same !== undefined)
    b.expect(
      `${name} = ${want.same}`,
      got !== undefined && got === c[want.same],
      `${got} vs ${c[want.same]}`,
    );
  if (want.atLeast !== undefined)
    b.expect(`${name} ≥ ${want.atLeast}`, got !== undefined && BigInt(got) >= want.atLeast, String(got));
  if (want.atMost !== undefined)
    b.expect(`${name} ≤ ${want.atMost}`, got !== undefined && BigInt(got) <= want.atMost, String(got));
}

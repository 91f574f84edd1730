/**
 * A whole vsva system: one host (SMMUv3 with both stages, host RAM, the kernel with VFIO and KVM),
 * PASID DMA devices plugged into it and bound to vfio-pci, and virtual machines — each a VMM
 * process running `VirtVm` (the virt board, a virtual SMMUv3, vfio-pci frontends) with a guest OS
 * loaded into its vCPUs.
 *
 * This layer is the only one that sees both sides of each seam, and it uses that only to do what
 * the hardware and the firmware do: load the guest's code into KVM's vCPUs (the guest kernel image,
 * in vsva's terms), give the guest its view of RAM (through KVM's memory slots), and let time pass
 * (`settle`: run every VM's vCPUs until they wait for interrupts, then the VMM's main loop, until
 * nothing moves). It also observes, without influencing anything: every device write that lands in
 * host RAM is checked against the RAM of the VM the device is assigned to (`isolation`), and
 * `invariants()` after teardown counts what was left behind.
 */

import { type GuestJob, GuestOs } from '../guest/os.ts';
import { Host, type HostOptions } from '../host/host.ts';
import type { Process } from '../host/kernel/process.ts';
import type { Arm64Vcpu } from '../host/kvm/arm64/vcpu.ts';
import type { KvmVm } from '../host/kvm/vm.ts';
import type { HostPciDevice } from '../host/pci.ts';
import { PasidDmaDevice } from '../hw/pci/pasid-dma-device.ts';
import { MachineError } from '../vmm/machine.ts';
import { VirtVm, type VirtVmOptions } from '../vmm/vm.ts';
import type { Tracer } from './format/trace.ts';
import { traceHost } from './format/trace-hooks.ts';

export interface SystemVmSpec {
  readonly name: string;
  readonly cpus?: number;
  readonly ramSize?: number;
  /** PASID DMA devices created on the host and assigned to this VM. */
  readonly devices?: number;
  readonly eventfdAutoreset?: boolean;
  /** A virtual SMMUv3 on the VM's root bus (default: when devices are assigned); false: DMA to system memory. */
  readonly viommu?: boolean;
}

export interface SystemOptions {
  readonly host?: HostOptions;
  readonly vms: readonly SystemVmSpec[];
  /** PASID width of the devices (default 20). */
  readonly pasidWidth?: number;
  /** Traces the host from its creation on (every ioctl the VMMs issue, DMA, faults, eventfds). */
  readonly tracer?: Tracer;
}

/** One VM of the system, with everything a test or a report needs to look at. */
export interface SystemVm {
  readonly name: string;
  /** The VMM process. */
  readonly proc: Process;
  readonly vm: VirtVm;
  /** KVM's VM (to load the guest into vCPUs and give it its memory). */
  readonly kvm: KvmVm;
  readonly guest: GuestOs;
  /** The host devices assigned to it, and their StreamIDs on the host SMMU. */
  readonly hostDevices: readonly HostPciDevice[];
  readonly streamIds: readonly number[];
}

export interface IsolationStats {
  /** Device writes into host RAM. */
  writes: number;
  bytes: number;
  /** Bytes written outside the RAM of the VM the writing device belongs to. */
  violations: number;
  /** Descriptions of the first violations. */
  readonly samples: string[];
}

export interface Invariants {
  isolationViolations: number;
  leakedPasids: number;
  leakedPinnedPages: number;
  leakedDomains: number;
  leakedFds: number;
}

/** Host physical ranges that back a VM's RAM, sorted, for the isolation check. */
class HostRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  add(start: number, end: number): void {
    const n = this.starts.length;
    if (n > 0 && this.ends[n - 1] === start) this.ends[n - 1] = end;
    else {
      this.starts.push(start);
      this.ends.push(end);
    }
  }

  finish(): void {
    const order = this.starts.map((_, i) => i).sort((a, b) => this.starts[a]! - this.starts[b]!);
    const s = order.map((i) => this.starts[i]!);
    const e = order.map((i) => this.ends[i]!);
    this.starts.splice(0, this.starts.length, ...s);
    this.ends.splice(0, this.ends.length, ...e);
  }

  /** Bytes of [pa, pa+len) outside the ranges. */
  outside(pa: number, len: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! <= pa) lo = mid + 1;
      else if (this.starts[mid]! > pa) hi = mid - 1;
      else return Math.max(0, pa + len - this.ends[mid]!);
    }
    return len;
  }
}

export class VsvaSystem {
  readonly host: Host;
  readonly vms: SystemVm[] = [];
  readonly isolation: IsolationStats = { writes: 0, bytes: 0, violations: 0, samples: [] };
  /** Problems met while settling (a vCPU loop error, a round limit). */
  readonly errors: string[] = [];
  private readonly ramOf = new Map<number, HostRanges>();
  private readonly baselineDomains: number;
  private tornDown = false;

  private constructor(host: Host, baselineDomains: number) {
    this.host = host;
    this.baselineDomains = baselineDomains;
  }

  /** Builds the host, its devices and the VMs; a VMM refusal is returned as an error string. */
  static create(opts: SystemOptions): VsvaSystem | string {
    const host = new Host({ ramSize: 0x1_0000_0000, ...opts.host });
    if (opts.tracer !== undefined) traceHost(opts.tracer, host);
    const plugged: HostPciDevice[][] = [];
    let slot = 4;
    for (const spec of opts.vms) {
      const devs: HostPciDevice[] = [];
      for (let i = 0; i < (spec.devices ?? 0); i++) {
        const fn = new PasidDmaDevice({ bus: 0, dev: slot++, fn: 0, maxPasidWidth: opts.pasidWidth ?? 20 });
        const rec = host.addPciDevice(fn);
        if (typeof rec === 'number') return `host: cannot plug a PASID DMA device (${rec})`;
        devs.push(rec);
      }
      plugged.push(devs);
    }
    const sys = new VsvaSystem(host, host.iommu.iommuDomains().length);
    for (const smmu of host.smmus) smmu.bus.onRamWrite = (pa, len, sid) => sys.checkWrite(pa, len, sid);
    for (let i = 0; i < opts.vms.length; i++) {
      const r = sys.addVm(opts.vms[i]!, plugged[i]!);
      if (typeof r === 'string') {
        sys.teardown();
        return r;
      }
    }
    return sys;
  }

  private addVm(spec: SystemVmSpec, devs: HostPciDevice[]): SystemVm | string {
    const proc = this.host.kernel.spawn(`qemu-${spec.name}`);
    const opts: VirtVmOptions = {
      name: spec.name,
      cpus: spec.cpus ?? 2,
      ramSize: spec.ramSize ?? 0x4000_0000,
      eventfdAutoreset: spec.eventfdAutoreset ?? false,
      ...(spec.viommu !== undefined ? { viommu: spec.viommu } : {}),
      assigned: devs.map((d) => ({ group: this.host.iommu.iommuGroupGet(d.iommuDev)!.id, hostName: d.name })),
    };
    const vm = VirtVm.create(proc, opts);
    if (vm instanceof MachineError) return `${spec.name}: ${vm.message}`;
    const kvm = this.host.kvm.vms.find((v) => v.pid === proc.pid);
    if (kvm === undefined) return `${spec.name}: no KVM VM`;
    // The guest's CPUs see RAM through KVM's memory slots; its code is loaded into every vCPU.
    const guest = new GuestOs(kvm.guestMemory);
    kvm.vcpuList.forEach((v, i) => {
      (v.arch as Arm64Vcpu).guest.load(guest.program(i));
    });
    const sv: SystemVm = {
      name: spec.name,
      proc,
      vm,
      kvm,
      guest,
      hostDevices: devs,
      streamIds: devs.map((d) => d.iommuDev.ids[0]!),
    };
    const ranges = this.ramRanges(sv);
    for (const sid of sv.streamIds) this.ramOf.set(sid, ranges);
    this.vms.push(sv);
    return sv;
  }

  /** The host physical ranges behind a VM's RAM (its VMM's pages, pinned by VFIO). */
  private ramRanges(sv: SystemVm): HostRanges {
    const r = new HostRanges();
    const mm = sv.proc.mm;
    for (const b of sv.vm.machine.ram.blocks) {
      // One translation per backing page (2 MiB for hugetlb RAM, 4 KiB otherwise).
      for (let va = b.hva; va < b.hva + b.size; ) {
        const vma = mm.mappings.find((m) => va >= m.start && va < m.end);
        const unit = 2 ** (vma?.pageShift ?? 12);
        const n = Math.min(unit - ((va - (vma?.start ?? 0)) % unit), b.hva + b.size - va);
        const pa = mm.translate(va, 'read', false);
        if (pa !== undefined) r.add(pa, pa + n);
        va += n;
      }
    }
    r.finish();
    return r;
  }

  private checkWrite(pa: number, len: number, sid: number): void {
    this.isolation.writes++;
    this.isolation.bytes += len;
    const ranges = this.ramOf.get(sid);
    const bad = ranges === undefined ? len : ranges.outside(pa, len);
    if (bad > 0) {
      this.isolation.violations += bad;
      if (this.isolation.samples.length < 8)
        this.isolation.samples.push(`sid ${sid} wrote ${len} bytes at host 0x${pa.toString(16)}`);
    }
  }

  /** The VM named `name`. */
  vm(name: string): SystemVm {
    const v = this.vms.find((x) => x.name === name);
    if (v === undefined) throw new Error(`no VM named ${name}`);
    return v;
  }

  /** Work done by guest code so far (traps other than idle WFIs), summed over vCPUs. */
  private work(): number {
    let n = 0;
    for (const v of this.vms)
      for (const c of v.kvm.vcpuList) {
        const s = (c.arch as Arm64Vcpu).guest.stats;
        n += s.traps - s.idleExits;
      }
    return n;
  }

  /**
   * Lets time pass until nothing moves: each round runs every VM's vCPUs until they wait for
   * interrupts, then each VMM's main loop until no fd is ready. True when quiescent within
   * `maxRounds`.
   */
  settle(maxRounds = 10_000): boolean {
    if (this.quiesce(maxRounds)) return true;
    this.errors.push(`settle: still busy after ${maxRounds} rounds`);
    return false;
  }

  /** Rounds until nothing moves (true) or `maxRounds` ran (false). */
  private quiesce(maxRounds: number): boolean {
    for (let round = 0; round < maxRounds; round++) {
      const before = this.work();
      let handled = 0;
      for (const v of this.vms) {
        if (!v.vm.runVcpus()) this.errors.push(...v.vm.machine.errors.splice(0));
        handled += v.vm.loop.runUntilIdle();
      }
      if (handled === 0 && this.work() === before) return true;
    }
    return false;
  }

  /** Settles until `job` is done; its result, or an error string. */
  run<T>(job: GuestJob<T>, maxRounds = 10_000): { ok: true; value: T } | { ok: false; error: string } {
    for (let i = 0; i < maxRounds && !job.done; i++) if (this.quiesce(1)) break;
    if (!job.done)
      return {
        ok: false,
        error: `${job.name}: not finished (the guest is waiting for something that never came)`,
      };
    if (job.error !== undefined) return { ok: false, error: `${job.name}: ${job.error}` };
    return { ok: true, value: job.result as T };
  }

  /** The host bytes behind guest-physical `gpa` of VM `sv` (what really is in memory). */
  hostRead(sv: SystemVm, gpa: number, len: number): Uint8Array | undefined {
    // The VMM's own mapping of guest RAM, read through its page tables from the host pages behind it.
    return sv.vm.machine.ram.read(gpa, len);
  }

  /** Shuts every VM down and ends the VMM processes. */
  teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    for (const v of this.vms) {
      v.vm.shutdown();
    }
  }

  /**
   * Whole-system totals (the default scenario's counters, and the base of the system level's):
   * device transactions on the host buses, IOTLB, walks, events, isolation checks, guest faults,
   * and the VMMs' counters summed over VMs.
   */
  totals(): Record<string, number> {
    const c: Record<string, number> = {
      'dma.transactions': 0,
      'dma.bytes': 0,
      'smmu.iotlb.hits': 0,
      'smmu.iotlb.misses': 0,
      'smmu.walk.reads': 0,
      'smmu.events': 0,
    };
    for (const s of this.host.smmus) {
      c['dma.transactions']! += s.bus.stats.reads + s.bus.stats.writes;
      c['dma.bytes']! += s.bus.stats.bytesRead + s.bus.stats.bytesWritten;
      c['smmu.iotlb.hits']! += s.hw.iotlb.stats.hits;
      c['smmu.iotlb.misses']! += s.hw.iotlb.stats.misses;
      c['smmu.walk.reads']! += s.hw.stats.descReads;
      c['smmu.events']! += s.hw.stats.eventsWritten;
    }
    const sum = (k: string) => this.vms.reduce((n, v) => n + (v.vm.counters()[k] ?? 0), 0);
    c['vfio.ioctls'] = sum('vfio.ioctls');
    c['guest.faults'] = this.vms.reduce(
      (n, v) => n + v.guest.processes.reduce((m, p) => m + p.faults.length, 0),
      0,
    );
    c['eventloop.syscalls'] = sum('eventloop.syscalls');
    for (const k of [
      'kvm.runs',
      'kvm.mmioExits',
      'vsmmu.commands',
      'vsmmu.setPasidTable',
      'vsmmu.cacheInvalidate',
      'vsmmu.faultsReceived',
    ])
      c[k] = sum(k);
    c['isolation.deviceWrites'] = this.isolation.writes;
    c['isolation.violations'] = this.isolation.violations;
    return c;
  }

  /** What is left after `teardown` (all expected to be 0). */
  invariants(): Invariants {
    let fds = 0;
    let pinned = 0;
    for (const v of this.vms) {
      fds += v.proc.openFds.filter((fd) => fd > 2).length;
      pinned += v.proc.mm.stats.pinnedPages;
    }
    return {
      isolationViolations: this.isolation.violations,
      leakedPasids: this.host.ioasid.allocated + this.vms.reduce((n, v) => n + v.guest.sva.pasids.inUse, 0),
      leakedPinnedPages: pinned,
      leakedDomains: Math.max(0, this.host.iommu.iommuDomains().length - this.baselineDomains),
      leakedFds: fds,
    };
  }
}

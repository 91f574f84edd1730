/**
 * What a trace shows (issue 7 §2) and where it comes from. Tracing only observes: it wraps the
 * SMMU's `transact` on that one instance (the shared hot path is untouched when nothing traces),
 * chains the SMMU's event and command hooks, and listens to the kernel's syscall trace and its
 * tracepoints (eventfd signals). Every record lands on a named track of the `Tracer`:
 *
 * - ("hardware" | "host", smmu name): DMA transactions as 1-tick spans with sid, ssid, iova, pa,
 *   status, how many walks and descriptor reads they cost; events (faults) and commands as instants.
 * - ("host", "<comm> (pid N)"): every syscall, ioctls named from src/uapi (VFIO_*, KVM_*).
 * - ("host", "eventfd"): eventfd_signal with the new count.
 */

import { hex } from '../../arch/bits.ts';
import { eventName } from '../../arch/smmuv3/events.ts';
import type { Host } from '../../host/host.ts';
import type { SyscallRecord } from '../../host/kernel/kernel.ts';
import { type DmaRequest, type DmaResult, type Smmu, TXN_STATUS_NAMES } from '../../hw/smmuv3/smmu.ts';
import * as kvm from '../../uapi/kvm.ts';
import * as kvmS390 from '../../uapi/kvm-s390.ts';
import * as vfio from '../../uapi/vfio.ts';
import * as vfioDevice from '../../uapi/vfio-device.ts';
import * as vfioType1 from '../../uapi/vfio-type1.ts';
import type { Tracer, Track } from './trace.ts';

const IOC_TYPE_SHIFT = 8;
const ACCESS_NAMES = ['read', 'write', 'exec'];
const IOCTL_TYPES = new Set([0x3b, 0xae]);

/** ioctl request number → name, from the uapi modules (VFIO_* and KVM_* constants that are ioctls). */
export const IOCTL_NAMES: ReadonlyMap<number, string> = (() => {
  const m = new Map<number, string>();
  for (const mod of [vfio, vfioType1, vfioDevice, kvm, kvmS390] as Record<string, unknown>[]) {
    for (const [name, v] of Object.entries(mod)) {
      if (typeof v !== 'number' || !/^(VFIO|KVM)_[A-Z0-9_]+$/.test(name)) continue;
      if (v < 0x100 || !IOCTL_TYPES.has((v >>> IOC_TYPE_SHIFT) & 0xff)) continue;
      // Two requests share VFIO_BASE + 18 (SPAPR's UNREGISTER_MEMORY and SET_PASID_TABLE): name the vSVA one.
      if (m.has(v) && name.includes('SPAPR')) continue;
      m.set(v >>> 0, name);
    }
  }
  return m;
})();

/** The name of ioctl `request`, or its number in hex. */
export function ioctlName(request: number): string {
  return IOCTL_NAMES.get(request >>> 0) ?? hex(request >>> 0);
}

/** Traces `smmu` on track (proc, thread): transactions, events, commands. */
export function traceSmmu(tracer: Tracer, smmu: Smmu, proc: string, thread: string): void {
  const track = tracer.track(proc, thread);
  const st = smmu.stats;
  const inner = smmu.transact;
  smmu.transact = (req: DmaRequest, out?: DmaResult): DmaResult => {
    const walks = st.walks;
    const reads = st.descReads;
    const r = inner.call(smmu, req, out);
    tracer.complete(track, 'dma', `${ACCESS_NAMES[req.access]} sid ${req.streamId}`, {
      sid: req.streamId,
      ssid: req.substreamId,
      iova: req.iova,
      size: req.size,
      status: TXN_STATUS_NAMES[r.status] ?? r.status,
      pa: r.firstPa,
      walks: st.walks - walks,
      descReads: st.descReads - reads,
      ...(r.event !== null ? { event: r.event.name } : {}),
    });
    return r;
  };
  const prev = smmu.hooks;
  smmu.hooks = {
    ...prev,
    event: (e, disposition) => {
      prev.event?.(e, disposition);
      tracer.instant(track, 'fault', eventName(e.id), {
        sid: e.streamId,
        ssid: e.substreamId,
        input: e.inputHi * 2 ** 32 + e.inputLo,
        ...(e.s2 ? { s2: true, ipa: e.ipa, class: e.cls } : {}),
        disposition,
      });
    },
    command: (o, words) => {
      prev.command?.(o, words);
      tracer.instant(track, 'command', o.name, {
        error: o.error,
        w0: words[0] ?? 0,
        w1: words[1] ?? 0,
        ...(o.detail !== undefined ? { detail: o.detail } : {}),
      });
    },
  };
}

/** Traces a whole host: its SMMUs, every syscall, eventfd signals. */
export function traceHost(tracer: Tracer, host: Host): void {
  for (const s of host.smmus) traceSmmu(tracer, s.hw, 'host', s.name);
  const k = host.kernel;
  const tracks = new Map<number, Track>();
  const trackOf = (pid: number): Track => {
    let t = tracks.get(pid);
    if (t === undefined) {
      const comm = k.process(pid)?.name ?? 'process';
      t = tracer.track('host', `${comm} (pid ${pid})`);
      tracks.set(pid, t);
    }
    return t;
  };
  const prev = k.onSyscall;
  k.onSyscall = (rec: SyscallRecord) => {
    prev?.(rec);
    let name = rec.name;
    let detail = rec.detail;
    if (rec.name === 'ioctl') {
      const m = /^(-?\d+), 0x([0-9a-f]+)(.*)$/.exec(rec.detail);
      if (m !== null) {
        name = `ioctl ${ioctlName(Number.parseInt(m[2]!, 16))}`;
        detail = `fd ${m[1]}${m[3] ?? ''}`;
      }
    }
    tracer.instant(trackOf(rec.pid), 'syscall', name, { args: detail, result: rec.result, tNs: rec.t });
  };
  const ev = tracer.track('host', 'eventfd');
  const prevTp = k.sched.tracepoint;
  k.sched.tracepoint = (name, args) => {
    prevTp?.(name, args);
    tracer.instant(ev, 'eventfd', name, args);
  };
}

/**
 * The system level's flat counters (what `counters` steps expect on and what the report lists):
 *
 * - `dma.*`, `smmu.*`, `isolation.*`, `guest.faults`, `vfio.*`, `kvm.*`, …: the whole system
 *   (`VsvaSystem.totals`, as the default scenario reports them);
 * - `host.<smmu>.<stat>` and `host.<smmu>.events.<NAME>`: each host SMMUv3's own statistics;
 * - `<vm>.<family>.…`: the VMM's counters (KVM runs and exits, VFIO ioctls, main loop, vSMMU incl.
 *   `vsmmu.events.<NAME>` written into the guest's event queue), the guest's (`guest.faults`,
 *   `guest.kernelFaults`, `guest.events`, `guest.commandErrors`, `guest.jobsFailed`) and its DMA
 *   driver's (`pdma.errors`, `pdma.completionIrqs`);
 * - `<vm>.<process>.faults`: fault records delivered to that guest process.
 *
 * Only observation: nothing here changes the model.
 */

import type { SystemVm, VsvaSystem } from '../system.ts';

function numeric(prefix: string, o: object, out: Record<string, number>): void {
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out[`${prefix}.${k}`] = v;
}

function byName(prefix: string, o: Record<string, number>, out: Record<string, number>): void {
  for (const [k, v] of Object.entries(o)) out[`${prefix}.${k}`] = v;
}

function vmCounters(v: SystemVm, out: Record<string, number>): void {
  const n = v.name;
  for (const [k, x] of Object.entries(v.vm.counters())) out[`${n}.${k}`] = x;
  const vs = v.vm.vsmmu?.stats;
  if (vs !== undefined) {
    out[`${n}.vsmmu.commandErrors`] = vs.commandErrors;
    out[`${n}.vsmmu.eventsInjected`] = vs.eventsInjected;
    out[`${n}.vsmmu.eventsDropped`] = vs.eventsDropped;
    byName(`${n}.vsmmu.events`, vs.byEvent, out);
  }
  const g = v.guest;
  out[`${n}.guest.faults`] = g.processes.reduce((m, p) => m + p.faults.length, 0);
  out[`${n}.guest.kernelFaults`] = g.sva.kernelFaults.length;
  out[`${n}.guest.events`] = g.stats.events;
  out[`${n}.guest.commandErrors`] = g.stats.commandErrors;
  out[`${n}.guest.jobsFailed`] = g.stats.jobs.failed;
  out[`${n}.pdma.errors`] = g.pdma.reduce((m, d) => m + d.errors.length, 0);
  out[`${n}.pdma.completionIrqs`] = g.pdma.reduce((m, d) => m + d.completionIrqs, 0);
  for (const p of g.processes) out[`${n}.${p.name}.faults`] = p.faults.length;
}

/** Every counter of `sys`, flat. */
export function systemCounters(sys: VsvaSystem): Record<string, number> {
  const c = sys.totals();
  for (const s of sys.host.smmus) {
    numeric(`host.${s.name}`, s.hw.stats, c);
    byName(`host.${s.name}.events`, s.hw.stats.byEvent, c);
  }
  for (const v of sys.vms) vmCounters(v, c);
  return c;
}

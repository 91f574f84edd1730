/**
 * The system level of scenarios (issue 7 §1, DESIGN §5): whole VMs with guests and DMA
 * workloads. The setup builds a `VsvaSystem` — a host SMMUv3 with vfio-pci, PASID DMA devices
 * assigned to VMs, each VM a VMM process with its virtual SMMUv3 and a guest OS in its vCPUs — and
 * the steps boot guests, spawn and bind processes, map buffers, run DMA and workloads, inject
 * faults, reset vCPUs and tear down, with expectations on results, counters and invariants.
 * `schema.ts` is the format, `check.ts` the semantic checks, `session.ts` the executors.
 */

import { defineLevel, type RunContext } from '../format/level.ts';
import { traceHost } from '../format/trace-hooks.ts';
import { VsvaSystem } from '../system.ts';
import { checkSystem } from './check.ts';
import { type Setup, type Step, setup, step } from './schema.ts';
import { SystemSession } from './session.ts';

function titleOf(st: Step): string {
  const vm = 'vm' in st && st.vm !== undefined ? `${st.vm}: ` : '';
  switch (st.do) {
    case 'spawn':
    case 'bind':
    case 'unbind':
    case 'faults':
      return `${vm}${st.do} ${st.process}`;
    case 'map':
      return `${vm}map ${st.process}.${st.buffer} (${st.size} bytes${st.hugepage ? ', 2 MiB blocks' : ''})`;
    case 'unmap':
      return `${vm}unmap ${st.process}.${st.buffer}${st.invalidate ? '' : ' WITHOUT invalidation'}`;
    case 'remap':
      return `${vm}remap ${st.process}.${st.buffer}+${st.offset} without invalidation`;
    case 'flush':
      return `${vm}flush ${st.process}.${st.buffer}`;
    case 'dma':
      return `${vm}${st.op} ${st.size} bytes in ${st.process}${st.src !== undefined ? ` from ${st.src}` : ''}${st.dst !== undefined ? ` to ${st.dst}` : ''}`;
    case 'read':
      return `${vm}read ${st.size} bytes at ${st.process}.${st.at}${st.frame === 'old' ? ' (old frame)' : ''}`;
    case 'workload':
      return `${vm}workload: ${st.count} DMAs over ${st.processes.join(', ')}${st.faultRatio > 0 ? `, ${Math.round(st.faultRatio * 100)}% faulting` : ''}`;
    case 'inject':
      return `${vm}inject ${st.fault}`;
    case 'vcpu_reset':
      return `${vm}reset vCPU ${st.cpu}`;
    case 'pci':
      return `${vm}PCIIOMMUOps lookup of ${typeof st.device === 'number' ? `assigned device ${st.device}` : st.device}`;
    case 'forwarded':
      return `${vm}${st.op} forwarded to the host`;
    default:
      return `${vm}${st.do}`;
  }
}

/** `o` without its undefined members (the host's option types are exact). */
function definedOnly<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}

/** Builds the system and the session; a string when the host or a VM cannot be built. */
function start(s: Setup, ctx: RunContext): SystemSession | string {
  let sys: VsvaSystem | string;
  try {
    sys = VsvaSystem.create({
      host: {
        ...(s.host.smmu !== undefined
          ? { smmus: [{ name: 'smmu0', features: definedOnly(s.host.smmu) }] }
          : {}),
        vfioPci: { exposePasid: s.host.exposePasid },
      },
      pasidWidth: s.pasidWidth,
      vms: s.vms.map((v) => ({
        name: v.name,
        cpus: v.cpus,
        ramSize: v.ramSize,
        devices: v.devices,
        eventfdAutoreset: v.eventfdAutoreset,
        ...(v.viommu !== undefined ? { viommu: v.viommu } : {}),
      })),
    });
  } catch (e) {
    // Decision: a host the hardware or driver refuses (bad SMMU features) throws in `Host`; that is
    // the scenario's mistake, reported as the setup failing.
    return `the host does not come up: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (typeof sys === 'string') return sys;
  const session = new SystemSession(sys, s, ctx);
  const bad = session.plugTopology();
  if (bad !== undefined) {
    sys.teardown();
    return bad;
  }
  if (ctx.tracer !== undefined) traceHost(ctx.tracer, sys.host);
  return session;
}

export const systemLevel = defineLevel<Setup, Step>({
  name: 'system',
  description:
    'whole VMs: guests, processes bound to PASIDs, DMA workloads, injected faults, counters and invariants',
  setup,
  step,
  check: checkSystem,
  titleOf,
  start,
});

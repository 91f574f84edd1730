/**
 * Semantic checks of a system-level scenario (issue 7 "Bad input": a malformed scenario never
 * starts): what the schema cannot see — names defined before use (VMs, processes, buffers,
 * bridges, endpoints), a guest booted before it binds or runs DMA, operands each DMA operation
 * needs, device and vCPU indices in range, PCI slots free, counter names that can exist, and no
 * step that needs a VM after `teardown`. Each problem points at the field it is about.
 */

import type { Problem } from '../format/level.ts';
import { type Loc, parseRef, type Setup, type Step, type VmSetup } from './schema.ts';

/** Counter families with no VM prefix (see `counters.ts`). */
export const GLOBAL_COUNTER_PREFIXES = ['dma', 'smmu', 'host', 'isolation', 'guest'] as const;
/** Counter families under a VM's name. */
export const VM_COUNTER_FAMILIES = ['kvm', 'vfio', 'eventloop', 'vsmmu', 'guest', 'pdma'] as const;

/** Observations that still make sense once the VMs are shut down. */
const AFTER_TEARDOWN = new Set(['counters', 'invariants', 'forwarded', 'faults', 'teardown']);
const NEEDS_BOOT = new Set(['bind', 'unbind', 'dma', 'workload', 'inject', 'flush']);

interface ProcInfo {
  readonly buffers: Set<string>;
}

interface VmInfo {
  readonly spec: VmSetup;
  booted: boolean;
  readonly procs: Map<string, ProcInfo>;
}

function checkSetup(s: Setup, out: Problem[]): void {
  const seen = new Set<string>();
  s.vms.forEach((v, i) => {
    const at = ['setup', 'vms', i];
    if (seen.has(v.name)) out.push({ path: [...at, 'name'], message: `VM "${v.name}" is defined twice` });
    seen.add(v.name);
    if (v.ramSize % 0x20_0000 !== 0 || v.ramSize < 0x400_0000)
      out.push({ path: [...at, 'ramSize'], message: 'expected a multiple of 2 MiB, at least 64 MiB' });
    // Assigned devices sit at root-bus slots 1..devices (the VMM's choice); bridges and endpoints elsewhere.
    const slots = new Map<string, Set<number>>([
      ['', new Set(Array.from({ length: v.devices }, (_, k) => k + 1))],
    ]);
    const take = (bus: string, devfn: number, path: (string | number)[], what: string) => {
      const used = slots.get(bus) ?? new Set<number>();
      slots.set(bus, used);
      if (used.has(devfn))
        out.push({ path, message: `${what}: slot already taken on ${bus === '' ? 'the root bus' : bus}` });
      used.add(devfn);
    };
    const names = new Set<string>();
    v.bridges.forEach((b, j) => {
      if (names.has(b.name))
        out.push({ path: [...at, 'bridges', j, 'name'], message: `"${b.name}" is defined twice` });
      names.add(b.name);
      take('', b.slot * 8, [...at, 'bridges', j, 'slot'], b.name);
    });
    v.endpoints.forEach((e, j) => {
      const p = [...at, 'endpoints', j];
      if (names.has(e.name)) out.push({ path: [...p, 'name'], message: `"${e.name}" is defined twice` });
      names.add(e.name);
      if (e.bus !== undefined && !v.bridges.some((b) => b.name === e.bus))
        out.push({ path: [...p, 'bus'], message: `no bridge "${e.bus}" in VM ${v.name}` });
      take(e.bus ?? '', e.slot * 8 + e.fn, [...p, 'slot'], e.name);
    });
  });
}

/** Checks a scenario's steps against its setup. */
export function checkSystem(s: Setup, steps: readonly Step[]): Problem[] {
  const out: Problem[] = [];
  checkSetup(s, out);
  const vms = new Map<string, VmInfo>(
    s.vms.map((v) => [v.name, { spec: v, booted: false, procs: new Map() }]),
  );
  let tornDownAt: number | undefined;

  steps.forEach((st, i) => {
    const at = (...p: (string | number)[]) => ['steps', i, ...p];
    if (tornDownAt !== undefined && !AFTER_TEARDOWN.has(st.do)) {
      out.push({
        path: at('do'),
        message: `the system was torn down at step ${tornDownAt + 1}; only ${[...AFTER_TEARDOWN].join(', ')} may follow`,
      });
      return;
    }
    if (st.do === 'teardown') {
      tornDownAt ??= i;
      return;
    }
    if (st.do === 'counters') {
      for (const [k, want] of Object.entries(st.expect ?? {})) {
        const msg = counterNameProblem(k, vms);
        if (msg !== undefined) out.push({ path: at('expect', k), message: msg });
        const same = typeof want === 'object' ? want.same : undefined;
        const sameMsg = same !== undefined ? counterNameProblem(same, vms) : undefined;
        if (sameMsg !== undefined) out.push({ path: at('expect', k, 'same'), message: sameMsg });
      }
      return;
    }
    if (st.do === 'settle' || st.do === 'invariants') return;

    // Every other step names a VM (or the only one).
    let v: VmInfo | undefined;
    if (st.vm === undefined) {
      if (s.vms.length === 1) v = vms.get(s.vms[0]!.name);
      else out.push({ path: at(), message: `"vm" is required: the setup has ${s.vms.length} VMs` });
    } else {
      v = vms.get(st.vm);
      if (v === undefined)
        out.push({
          path: at('vm'),
          message: `no VM "${st.vm}" in setup.vms (${[...vms.keys()].join(', ')})`,
        });
    }
    if (v === undefined) return;
    const vmName = v.spec.name;

    if (NEEDS_BOOT.has(st.do) && !v.booted)
      out.push({ path: at('do'), message: `${st.do} needs a booted guest: boot VM ${vmName} first` });
    if ('device' in st && typeof st.device === 'number' && st.device >= v.spec.devices)
      out.push({ path: at('device'), message: `VM ${vmName} has ${v.spec.devices} assigned device(s)` });

    const proc = (name: string, path: (string | number)[]): ProcInfo | undefined => {
      const p = v.procs.get(name);
      if (p === undefined)
        out.push({ path, message: `no process "${name}" in VM ${vmName} yet: spawn it first` });
      return p;
    };
    const buffer = (p: ProcInfo | undefined, l: Loc | undefined, path: (string | number)[]) => {
      if (p === undefined || l === undefined) return;
      const r = parseRef(l);
      if (r !== undefined && !p.buffers.has(r.buffer))
        out.push({ path, message: `no buffer "${r.buffer}" mapped in this process yet: map it first` });
    };

    switch (st.do) {
      case 'boot':
        if (v.booted) out.push({ path: at('do'), message: `VM ${vmName} is already booted` });
        v.booted = true;
        break;
      case 'spawn':
        if (v.procs.has(st.process))
          out.push({
            path: at('process'),
            message: `process "${st.process}" already exists in VM ${vmName}`,
          });
        else v.procs.set(st.process, { buffers: new Set() });
        break;
      case 'bind':
      case 'unbind':
        proc(st.process, at('process'));
        break;
      case 'faults': {
        const p = proc(st.process, at('process'));
        for (const [j, r] of (st.expect?.records ?? []).entries())
          buffer(p, r.addr, at('expect', 'records', j, 'addr'));
        for (const [j, r] of (st.expect?.last ?? []).entries())
          buffer(p, r.addr, at('expect', 'last', j, 'addr'));
        break;
      }
      case 'map': {
        const p = proc(st.process, at('process'));
        if (p?.buffers.has(st.buffer))
          out.push({
            path: at('buffer'),
            message: `buffer "${st.buffer}" is already mapped in ${st.process}`,
          });
        p?.buffers.add(st.buffer);
        break;
      }
      case 'unmap':
      case 'remap':
      case 'flush':
        buffer(proc(st.process, at('process')), st.buffer, at('buffer'));
        break;
      case 'dma': {
        const p = proc(st.process, at('process'));
        const needSrc = st.op !== 'fill';
        if (needSrc && st.src === undefined) out.push({ path: at(), message: `${st.op} needs "src"` });
        if (!needSrc && st.src !== undefined) out.push({ path: at('src'), message: 'fill has no source' });
        if (st.dst === undefined) out.push({ path: at(), message: `${st.op} needs "dst"` });
        buffer(p, st.src, at('src'));
        buffer(p, st.dst, at('dst'));
        buffer(p, st.expect?.faultAddr, at('expect', 'faultAddr'));
        break;
      }
      case 'read': {
        const p = proc(st.process, at('process'));
        buffer(p, st.at, at('at'));
        buffer(p, st.expect?.sameAs, at('expect', 'sameAs'));
        buffer(p, st.expect?.differsFrom, at('expect', 'differsFrom'));
        break;
      }
      case 'workload':
        st.processes.forEach((n, j) => {
          proc(n, at('processes', j));
        });
        st.sizes.forEach((n, j) => {
          if (n === 0 || n > 0x1_0000) out.push({ path: at('sizes', j), message: 'expected 1 .. 64 KiB' });
        });
        break;
      case 'inject':
        if (st.fault === 'outside-ram-dma') {
          if (st.process === undefined)
            out.push({ path: at(), message: 'outside-ram-dma needs "process" (a bound one)' });
          else proc(st.process, at('process'));
        } else if (st.process !== undefined)
          out.push({ path: at('process'), message: `${st.fault} takes no process` });
        break;
      case 'vcpu_reset':
        if (st.cpu >= v.spec.cpus)
          out.push({ path: at('cpu'), message: `VM ${vmName} has ${v.spec.cpus} vCPU(s)` });
        break;
      case 'pci':
        if (typeof st.device === 'number') {
          if (st.device >= v.spec.devices)
            out.push({
              path: at('device'),
              message: `VM ${vmName} has ${v.spec.devices} assigned device(s)`,
            });
        } else if (!v.spec.endpoints.some((e) => e.name === st.device))
          out.push({ path: at('device'), message: `no endpoint "${st.device}" in VM ${vmName}` });
        break;
      case 'forwarded':
        break;
    }
  });
  return out;
}

/** Why `name` cannot be a counter, or undefined. */
function counterNameProblem(name: string, vms: ReadonlyMap<string, VmInfo>): string | undefined {
  const parts = name.split('.');
  const head = parts[0]!;
  if ((GLOBAL_COUNTER_PREFIXES as readonly string[]).includes(head) && parts.length >= 2) return undefined;
  const v = vms.get(head);
  if (v !== undefined && parts.length >= 3) {
    if ((VM_COUNTER_FAMILIES as readonly string[]).includes(parts[1]!)) return undefined;
    if (v.procs.has(parts[1]!) && parts.length === 3 && parts[2] === 'faults') return undefined;
  }
  return `unknown counter "${name}": expected ${GLOBAL_COUNTER_PREFIXES.join('|')}.…, <vm>.{${VM_COUNTER_FAMILIES.join(',')}}.… or <vm>.<process>.faults`;
}

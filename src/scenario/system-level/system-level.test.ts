/**
 * The system level end to end: every system scenario in `scenarios/` passes, and each fails when
 * the feature it shows is flipped (a setup option or a mutated step); malformed scenarios are
 * refused before they run, pointing at the right line and field; workloads are deterministic per
 * seed; a traced run carries guest-level instants next to the host's records.
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioText, type Scenario } from '../format/load.ts';
import { runScenario } from '../format/run.ts';
import { Tracer, validateTraceFile } from '../format/trace.ts';
import type { ScenarioReport } from '../report.ts';
import { systemLevel } from './level.ts';

const DIR = new URL('../../../scenarios/', import.meta.url);

function text(file: string): string {
  return readFileSync(new URL(file, DIR), 'utf8');
}

function load(src: string, file = 'test.yaml'): Scenario {
  const r = loadScenarioText(src, file, [systemLevel]);
  if (!r.ok)
    throw new Error(r.errors.map((e) => `${e.line}:${e.column} ${e.field}: ${e.message}`).join('\n'));
  return r.scenario;
}

function failed(r: ScenarioReport): string[] {
  return r.steps.flatMap((s) =>
    s.expectations.filter((e) => !e.ok).map((e) => `${s.title}: ${e.what}: ${e.got}`),
  );
}

/** Replaces exactly one occurrence of `from` in `src` (so a flip cannot silently miss). */
function flip(src: string, from: string, to: string): string {
  const i = src.indexOf(from);
  expect(i, `"${from}" in the scenario`).toBeGreaterThanOrEqual(0);
  expect(src.indexOf(from, i + 1), `"${from}" only once`).toBe(-1);
  return src.slice(0, i) + to + src.slice(i + from.length);
}

const SCENARIOS: { file: string; flips: [from: string, to: string, why: RegExp][] }[] = [
  {
    file: 'system-sva.yaml',
    // Pre-patch vfio-pci hides the PASID capability: the guest sees no PASID, bind is refused.
    flips: [['setup:\n', 'setup:\n  host: { exposePasid: false }\n', /bind|pasidWidth/]],
  },
  {
    file: 'system-fault-storm.yaml',
    // No faulting DMAs in the storm: the counters of delivered faults no longer add up.
    flips: [['faultRatio: 0.33', 'faultRatio: 0', /faults/]],
  },
  {
    file: 'seed-3-pciiommuops.yaml',
    // No vIOMMU on vm0: no ops on its root bus, every lookup ends in system memory.
    flips: [
      [
        'devices: 1\n      bridges:',
        'devices: 1\n      viommu: false\n      bridges:',
        /addressSpace|iommuBus/,
      ],
    ],
  },
  {
    file: 'system-two-vms.yaml',
    // The malformed STE in vm1 instead of vm0: vm1's counters are no longer clean.
    flips: [
      ['    vm: vm0\n    fault: malformed-ste', '    vm: vm1\n    fault: malformed-ste', /vm1\.|vm0\.vsmmu/],
    ],
  },
  {
    file: 'system-vcpu-reset.yaml',
    // A reset of vCPU 1 with other features is refused by KVM.
    flips: [['cpu: 1, expect', 'cpu: 1, features: changed, expect', /vCPU 1/]],
  },
];

describe('system scenarios in scenarios/', () => {
  for (const sc of SCENARIOS) {
    it(`${sc.file} passes, and fails when its feature is flipped`, () => {
      const src = text(sc.file);
      const ok = runScenario(load(src, sc.file));
      expect(failed(ok)).toEqual([]);
      expect(ok.ok).toBe(true);
      expect(Object.values(ok.invariants ?? {}).every((v) => v === 0)).toBe(true);
      for (const [from, to, why] of sc.flips) {
        const bad = runScenario(load(flip(src, from, to), sc.file));
        expect(bad.ok).toBe(false);
        expect(failed(bad).join('\n')).toMatch(why);
      }
    });
  }
});

const HEAD = `name: t
level: system
setup:
  vms:
    - { name: vm0, ramSize: 0x400_0000, devices: 1 }
steps:
`;

function errors(steps: string, head = HEAD) {
  const r = loadScenarioText(head + steps, 'bad.yaml', [systemLevel]);
  return r.ok ? [] : r.errors.map((e) => ({ line: e.line, field: e.field, message: e.message }));
}

describe('semantic checks point at the line and field', () => {
  it('a process used before it is spawned', () => {
    expect(errors('  - { do: boot }\n  - { do: bind, process: p }\n')).toEqual([
      { line: 8, field: 'steps[1].process', message: 'no process "p" in VM vm0 yet: spawn it first' },
    ]);
  });

  it('an unknown VM, and a missing vm with two VMs', () => {
    const two = HEAD.replace('steps:\n', '    - { name: vm1, ramSize: 0x400_0000 }\nsteps:\n');
    const e = errors('  - { do: boot, vm: vm2 }\n  - { do: boot }\n', two);
    expect(e.map((x) => [x.line, x.field])).toEqual([
      [8, 'steps[0].vm'],
      [9, 'steps[1]'],
    ]);
    expect(e[0]!.message).toMatch(/no VM "vm2"/);
    expect(e[1]!.message).toMatch(/"vm" is required/);
  });

  it('DMA before boot, an unknown buffer, a missing operand, a device out of range', () => {
    const e = errors(
      [
        '  - { do: spawn, process: p }',
        '  - { do: map, process: p, buffer: a, size: 0x1000 }',
        '  - { do: dma, process: p, op: copy, src: b, size: 16 }',
        '  - { do: boot }',
        '  - { do: bind, process: p, device: 1 }',
        '',
      ].join('\n'),
    );
    expect(e.map((x) => `${x.line} ${x.field}`)).toEqual([
      '9 steps[2].do',
      '9 steps[2]',
      '9 steps[2].src',
      '11 steps[4].device',
    ]);
    expect(e.map((x) => x.message).join('|')).toMatch(
      /boot VM vm0 first.*needs "dst".*no buffer "b".*1 assigned/,
    );
  });

  it('an unknown counter name, steps after teardown, and a bad setup', () => {
    const e = errors(
      '  - { do: counters, expect: { vm0.nope.x: 1, smmu.events: 0 } }\n  - { do: teardown }\n  - { do: boot }\n',
    );
    expect(e.map((x) => `${x.line} ${x.field}`)).toEqual(['7 steps[0].expect.vm0.nope.x', '9 steps[2].do']);
    const bad = errors('  - { do: settle }\n', HEAD.replace('ramSize: 0x400_0000', 'ramSize: 0x400_1000'));
    expect(bad).toEqual([
      { line: 5, field: 'setup.vms[0].ramSize', message: 'expected a multiple of 2 MiB, at least 64 MiB' },
    ]);
    const ep = errors(
      '  - { do: settle }\n',
      HEAD.replace('devices: 1 }', 'devices: 1, endpoints: [{ name: e, bus: nobr, slot: 1 }] }'),
    );
    expect(ep).toEqual([
      { line: 5, field: 'setup.vms[0].endpoints[0].bus', message: 'no bridge "nobr" in VM vm0' },
    ]);
  });

  it('the schema refuses unknown actions and fields', () => {
    expect(errors('  - { do: bootx }\n')[0]).toMatchObject({ line: 7, field: 'steps[0].do' });
    expect(errors('  - { do: boot, vmm: vm0 }\n')[0]).toMatchObject({
      line: 7,
      message: 'unknown field "vmm"',
    });
  });
});

const WORKLOAD = `${HEAD}  - { do: boot }
  - { do: spawn, process: a }
  - { do: spawn, process: b }
  - { do: bind, process: a }
  - { do: bind, process: b }
  - { do: workload, processes: [a, b], count: 24, sizes: [64, 0x1000], faultRatio: 0.25 }
  - { do: faults, process: a }
  - { do: unbind, process: a }
  - { do: unbind, process: b }
`;

describe('executors', () => {
  it('a workload is deterministic per seed, checks its bytes, and delivers every fault to its process', () => {
    const run = (seed: number) => runScenario(load(WORKLOAD), { seed });
    const a = run(3);
    const b = run(3);
    const c = run(4);
    expect(failed(a)).toEqual([]);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const note = (r: ScenarioReport) => r.steps[5]!.detail.join('\n');
    expect(note(a)).not.toBe(note(c));
    expect(note(a)).toMatch(/"misdelivered":0,"dataErrors":0/);
    expect(a.counters['vm0.guest.faults']).toBe(a.counters['vm0.a.faults']! + a.counters['vm0.b.faults']!);
    expect(a.counters['vm0.guest.faults']).toBeGreaterThan(0);
  });

  it('expectations can fail: a wrong PASID, a wrong status, an unmet workload count', () => {
    const r = runScenario(
      load(`${HEAD}  - { do: boot }
  - { do: spawn, process: p }
  - { do: bind, process: p, expect: { pasid: 2 } }
  - { do: map, process: p, buffer: x, size: 0x1000 }
  - { do: dma, process: p, op: fill, dst: x, size: 16, expect: { status: fault } }
  - { do: workload, processes: [p], count: 4, sizes: [64], expect: { success: 3 } }
  - { do: unbind, process: p }
`),
    );
    const titles = r.steps.filter((st) => st.expectations.some((e) => !e.ok)).map((st) => st.title);
    expect(titles).toEqual(['bind p', 'fill 16 bytes in p to x', 'workload: 4 DMAs over p']);
  });

  it('a finish without teardown still tears down, and a leaked binding shows in the invariants', () => {
    const r = runScenario(
      load(`${HEAD}  - { do: boot }\n  - { do: spawn, process: p }\n  - { do: bind, process: p }\n`),
    );
    expect(failed(r)).toEqual([]);
    expect(r.invariants).toMatchObject({ leakedPasids: 1, leakedFds: 0, leakedPinnedPages: 0 });
    expect(r.ok).toBe(false);
  });

  it('a setup the host refuses is one failed setup step', () => {
    const r = runScenario(
      load(
        `${HEAD.replace('setup:\n', 'setup:\n  host: { smmu: { stage1: false, stage2: false } }\n')}  - { do: settle }\n`,
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.steps[0]!.title).toBe('setup');
  });

  it('traces the host and guest-level instants (bind, fault delivered, unbind)', () => {
    const tracer = new Tracer();
    const r = runScenario(load(WORKLOAD), { tracer });
    expect(r.ok).toBe(true);
    const file = tracer.toFile();
    expect(validateTraceFile(file)).toEqual([]);
    const names = new Set(file.traceEvents.map((e) => e.name));
    for (const n of ['bind', 'unbind', 'fault delivered']) expect(names.has(n), n).toBe(true);
    expect(file.traceEvents.some((e) => e.cat === 'dma')).toBe(true);
  });
});

/**
 * The uAPI level (issue 7 §1): its seed scenarios pass, and each fails when the feature it shows
 * is switched off (the flips below); malformed scenarios are refused with the right line and
 * field; the executors behave like the syscalls they stand for (sleeping calls, signals, poll
 * timeouts, epoll, regions, memory); counters, invariants and tracing.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { _IOC_NR } from '../../uapi/ioctl.ts';
import * as vfio from '../../uapi/vfio.ts';
import { formatError, loadScenarioText, type ScenarioError } from '../format/load.ts';
import { runScenario } from '../format/run.ts';
import { Tracer } from '../format/trace.ts';
import type { ScenarioReport } from '../report.ts';
import { CONSTANTS, IOCTLS, STRUCTS } from './ioctls.ts';
import { uapiLevel } from './level.ts';

const DIR = join(import.meta.dirname, '..', '..', '..', 'scenarios');
const SEEDS = [
  'seed-1-attach-pasid-table.yaml',
  'seed-2-set-pasid-table.yaml',
  'seed-4-s390-resets.yaml',
  'seed-5-eventfd-autoreset.yaml',
  'seed-6-pasid-request-quota.yaml',
  'seed-7-pasid-capability.yaml',
];

/** Every scenario this level owns: the seeds and scenarios/uapi-*.yaml. */
const ALL = [...SEEDS, ...readdirSync(DIR).filter((f) => f.startsWith('uapi-') && f.endsWith('.yaml'))];

const text = (f: string): string => readFileSync(join(DIR, f), 'utf8');

function load(src: string, file = 'test.yaml') {
  return loadScenarioText(src, file, [uapiLevel]);
}

function run(src: string, opts: { tracer?: Tracer } = {}): ScenarioReport {
  const l = load(src);
  if (!l.ok) throw new Error(l.errors.map(formatError).join('\n'));
  return runScenario(l.scenario, opts);
}

function errors(src: string): ScenarioError[] {
  const l = load(src);
  if (l.ok) throw new Error('expected the scenario to be refused');
  return l.errors;
}

/** Failed expectations as "title: what". */
function failures(r: ScenarioReport): string[] {
  return r.steps.flatMap((s) => s.expectations.filter((e) => !e.ok).map((e) => `${s.title}: ${e.what}`));
}

/** A scenario with a setup block and steps (YAML text). */
function scenario(setup: string, steps: string): string {
  return `name: t\nlevel: uapi\nsetup:\n${setup}\nsteps:\n${steps}\n`;
}

describe('the seed scenarios', () => {
  it.each(ALL)('%s passes', (f) => {
    const r = run(text(f));
    expect(failures(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.passed).toBeGreaterThan(15);
    expect(Object.values(r.invariants ?? {})).toEqual([0, 0, 0, 0]);
  });

  it('seed 1 fails with full PASID support instead of the as-posted single CD', () => {
    const r = run(text(SEEDS[0]!).replace('asPostedSingleCd: true', 'asPostedSingleCd: false'));
    expect(r.ok).toBe(false);
    // pasid_bits 5 is accepted, and S1DSS is the guest's rather than SSID0.
    expect(failures(r).join('\n')).toMatch(/fails with EINVAL/);
    expect(failures(r).join('\n')).toMatch(/STE of dev0/);
  });

  it('seed 2 fails in a container that is not nesting', () => {
    const src = text(SEEDS[1]!).replace(
      'request: VFIO_SET_IOMMU\n    arg: VFIO_TYPE1_NESTING_IOMMU',
      'request: VFIO_SET_IOMMU\n    arg: VFIO_TYPE1v2_IOMMU',
    );
    const r = run(src);
    expect(r.ok).toBe(false);
    expect(failures(r).join('\n')).toMatch(/SET with the outer argsz 8.*returns 0/);
  });

  it('seed 2 fails if SET_PASID_TABLE accepted unknown flag bits', () => {
    const r = run(
      text(SEEDS[1]!).replace('[VFIO_PASID_TABLE_FLAG_UNSET, 0x4]', 'VFIO_PASID_TABLE_FLAG_UNSET'),
    );
    expect(failures(r)).toEqual([
      'an unknown bit next to UNSET (flags are matched exactly): fails with EINVAL',
    ]);
  });

  it('seed 4 fails on an arm64 host (no s390 reset capability)', () => {
    const r = run(text(SEEDS[2]!).replace('kvmArch: s390x', 'kvmArch: arm64'));
    expect(r.ok).toBe(false);
    expect(failures(r)[0]).toMatch(/KVM_CHECK_EXTENSION: returns 1/);
  });

  it('seed 5 fails on a kernel without the EFD_AUTORESET patch', () => {
    const src = text(SEEDS[3]!).replace(
      'setup:\n',
      'setup:\n  host: { kernel: { eventfdAutoreset: false } }\n',
    );
    const r = run(src);
    expect(r.ok).toBe(false);
    const f = failures(r);
    expect(f[0]).toMatch(/SEMAPHORE \| AUTORESET is EINVAL|eventfd 0 as efd/);
    expect(f.some((x) => x.startsWith('eventfd 0 as efd'))).toBe(true);
  });

  it('seed 6 fails when PASID_REQUEST swallows errors as posted', () => {
    const r = run(
      text(SEEDS[4]!).replace(
        'vfio: { pasidQuota: 1000 }',
        'vfio: { pasidQuota: 1000, pasidRequestAsPosted: true }',
      ),
    );
    expect(r.ok).toBe(false);
    expect(failures(r).join('\n')).toMatch(/exhausted.*fails with ENOSPC/);
  });

  it('seed 6 fails with a lowered initial quota', () => {
    const r = run(text(SEEDS[4]!).replace('pasidQuota: 1000', 'pasidQuota: 1'));
    expect(r.ok).toBe(false);
    expect(failures(r).join('\n')).toMatch(/bits outside VFIO_PASID_REQUEST_MASK are ignored: returns 0/);
  });

  it('uapi-nested-cache-invalidate fails with full PASID support (the PASID cache is then invalidated)', () => {
    const r = run(
      text('uapi-nested-cache-invalidate.yaml').replace('asPostedSingleCd: true', 'asPostedSingleCd: false'),
    );
    expect(r.ok).toBe(false);
    expect(failures(r).join('\n')).toMatch(/not supported as posted: fails with ENOENT/);
  });

  it('seed 7 fails without the PASID capability patch', () => {
    const src = text(SEEDS[5]!).replace('setup:\n', 'setup:\n  host: { vfioPci: { exposePasid: false } }\n');
    const r = run(
      src.replace(
        '- { name: dev0, pasidWidth: 20, pasidExec: true }',
        '- { name: dev0, pasidWidth: 20, pasidExec: true, exposePasid: false }',
      ),
    );
    expect(r.ok).toBe(false);
    expect(failures(r).join('\n')).toMatch(/extended capability chain/);
  });
});

describe('refusals (schema and semantic checks)', () => {
  const base = (steps: string) =>
    scenario(
      '  devices: [{ name: dev0 }]\n  processes: [qemu]',
      `  - { do: open, path: /dev/vfio/vfio, as: c }\n${steps}`,
    );

  it('an unknown ioctl name points at request', () => {
    const e = errors(base('  - do: ioctl\n    fd: c\n    request: VFIO_SET_IOMMUU'));
    expect(e).toHaveLength(1);
    expect([e[0]!.line, e[0]!.field]).toEqual([10, 'steps[1].request']);
    expect(e[0]!.message).toMatch(/unknown ioctl "VFIO_SET_IOMMUU"/);
  });

  it("a struct field not in the ioctl's struct is named with its full path", () => {
    const e = errors(
      base(
        '  - do: ioctl\n    fd: c\n    request: VFIO_IOMMU_SET_PASID_TABLE\n    arg:\n      flags: 1\n      config:\n        vendor_data: { smmuv3: { s1fmtx: 1 } }',
      ),
    );
    expect(e).toHaveLength(1);
    expect(e[0]!.field).toBe('steps[1].arg.config.vendor_data.smmuv3.s1fmtx');
    expect(e[0]!.line).toBe(14);
    expect(e[0]!.message).toMatch(/iommu_pasid_smmuv3 has no field "s1fmtx"/);
  });

  it('unknown errno, constant, fd, process, device and mapping names', () => {
    const e = errors(
      base(
        [
          '  - { do: ioctl, fd: c, request: VFIO_CHECK_EXTENSION, arg: VFIO_TYPE9, expect: { errno: EWHAT } }',
          '  - { do: close, fd: nope }',
          '  - { do: eventfd, process: ghost }',
          '  - { do: open, path: "/dev/vfio/{group:dev9}" }',
          '  - { do: peek, mapping: m, type: u64 }',
          '  - { do: ioctl, fd: c, request: VFIO_SET_IOMMU, as: x }',
        ].join('\n'),
      ),
    );
    expect(e.map((x) => [x.line, x.field])).toEqual([
      [8, 'steps[1].arg'],
      [8, 'steps[1].expect.errno'],
      [9, 'steps[2].fd'],
      [10, 'steps[3].process'],
      [11, 'steps[4].path'],
      [12, 'steps[5].mapping'],
      [13, 'steps[6].as'],
    ]);
  });

  it('an errno name given as ret is pointed out', () => {
    const e = errors(scenario('  processes: [a]', '  - { do: eventfd, flags: 2, expect: { ret: EINVAL } }'));
    expect(e.map((x) => [x.field, x.message])).toEqual([
      ['steps[0].expect.ret', 'write errno: EINVAL for a refusal (ret is the return value)'],
    ]);
  });

  it('schema errors: an unknown key and an unknown action', () => {
    const e = errors(
      base('  - { do: ioctl, fd: c, request: VFIO_GET_API_VERSION, argz: 3 }\n  - { do: fork }'),
    );
    expect(e.map((x) => [x.line, x.field])).toEqual([
      [8, 'steps[1].argz'],
      [9, 'steps[2].do'],
    ]);
    expect(e[0]!.message).toMatch(/unknown field "argz"/);
  });

  it('an fd used before the step that opens it', () => {
    const e = errors(scenario('  processes: [a]', '  - { do: read, fd: e }\n  - { do: eventfd, as: e }'));
    expect(e.map((x) => x.field)).toEqual(['steps[0].fd']);
  });

  it('out fields only for ioctls that write a struct back, and only its fields', () => {
    const e = errors(
      base(
        '  - { do: ioctl, fd: c, request: VFIO_SET_IOMMU, arg: 1, expect: { out: { x: 1 } } }\n  - { do: ioctl, fd: c, request: VFIO_IOMMU_PASID_REQUEST, expect: { out: { u: { alloc_pasid: { res: 1 } } } } }',
      ),
    );
    expect(e.map((x) => x.field)).toEqual(['steps[1].expect.out', 'steps[2].expect.out.u.alloc_pasid.res']);
  });
});

describe('executors', () => {
  it('a blocking read sleeps, a write wakes it, wait sees the value', () => {
    const r = run(
      scenario(
        '  processes: [p]',
        [
          '  - { do: eventfd, as: e }',
          '  - { do: read, fd: e, as: r, expect: { blocked: true } }',
          '  - { do: wait, call: r, expect: { blocked: true } }',
          '  - { do: write, fd: e, value: 0x1234 }',
          '  - { do: wait, call: r, expect: { ret: 8, value: 0x1234 } }',
        ].join('\n'),
      ),
    );
    expect(failures(r)).toEqual([]);
    expect(r.counters['blocked calls']).toBe(1);
  });

  it('a call without expect must not fail: a refusal has to be asked for', () => {
    const r = run(
      scenario(
        '  processes: [p]',
        '  - { do: eventfd, flags: 0x2 }\n  - { do: eventfd, flags: 0x2, expect: { errno: EINVAL } }\n  - { do: eventfd }',
      ),
    );
    expect(failures(r)).toHaveLength(1);
    expect(failures(r)[0]).toMatch(/: the call does not fail$/);
    expect(r.steps.map((s) => s.expectations.every((e) => e.ok))).toEqual([false, true, true]);
  });

  it('expectations fail when the outcome differs', () => {
    const r = run(
      scenario(
        '  processes: [p]',
        '  - { do: eventfd, as: e }\n  - { do: read, fd: e, expect: { ret: 8 } }\n  - { do: write, fd: e, value: 1, expect: { errno: EAGAIN } }',
      ),
    );
    expect(failures(r)).toEqual(['read e: returns 8', 'write e: fails with EAGAIN']);
  });

  it('a signal ends a sleep with EINTR; a poll timeout passes with virtual time', () => {
    const r = run(
      scenario(
        '  processes: [p]',
        [
          '  - { do: eventfd, as: e }',
          '  - { do: read, fd: e, as: r }',
          '  - { do: signal, call: r, expect: { delivered: true } }',
          '  - { do: wait, call: r, expect: { errno: EINTR } }',
          '  - { do: poll, fds: [{ fd: e, events: POLLIN }], timeout: 5, as: pl, expect: { blocked: true } }',
          '  - { do: advance, ms: 4 }',
          '  - { do: wait, call: pl, expect: { blocked: true } }',
          '  - { do: advance, ms: 1 }',
          '  - { do: wait, call: pl, expect: { ret: 0, revents: { e: 0 } } }',
          '  - { do: signal, call: pl, expect: { delivered: false } }',
        ].join('\n'),
      ),
    );
    expect(failures(r)).toEqual([]);
  });

  it('epoll_wait sleeps and is woken; close of an unknown fd number is EBADF', () => {
    const r = run(
      scenario(
        '  processes: [p]',
        [
          '  - { do: eventfd, as: e }',
          '  - { do: epoll_create, as: ep }',
          '  - { do: epoll_ctl, epfd: ep, op: ADD, fd: e, events: [EPOLLIN] }',
          '  - { do: epoll_wait, epfd: ep, timeout: -1, as: w, expect: { blocked: true } }',
          '  - { do: write, fd: e, value: 2 }',
          '  - { do: wait, call: w, expect: { ret: 1, events: { e: EPOLLIN } } }',
          '  - { do: close, fd: e, expect: { ret: 0 } }',
          '  - { do: close, fd: e, expect: { errno: EBADF } }',
        ].join('\n'),
      ),
    );
    expect(failures(r)).toEqual([]);
  });

  it('mmap, poke and peek use the process memory; ioctl pointers take {mapping}', () => {
    const r = run(
      scenario(
        '  host: { kvmArch: s390x }',
        [
          '  - { do: mmap, size: 4096, as: m }',
          '  - { do: poke, mapping: m, offset: 8, type: u64, value: "0x1122334455667788" }',
          '  - { do: peek, mapping: m, offset: 8, type: u32, expect: { value: 0x55667788 } }',
          '  - { do: poke, mapping: m, struct: kvm_one_reg, fields: { id: KVM_REG_S390_PFTOKEN, addr: { mapping: m, offset: 8 } } }',
          '  - { do: peek, mapping: m, struct: kvm_one_reg, expect: { fields: { id: KVM_REG_S390_PFTOKEN } } }',
        ].join('\n'),
      ),
    );
    expect(failures(r)).toEqual([]);
  });

  it('a setup the host refuses is the first failure', () => {
    const r = run(
      scenario(
        '  host: { smmu: { features: { stage1: false, stage2: false } } }',
        '  - { do: advance, ms: 1 }',
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.steps[0]!.title).toBe('setup');
  });

  it('counts ioctls by errno and traces syscalls by ioctl name', () => {
    const tracer = new Tracer();
    const r = run(
      scenario(
        '  processes: [qemu]',
        [
          '  - { do: open, path: /dev/vfio/vfio, as: c }',
          '  - { do: ioctl, fd: c, request: VFIO_GET_API_VERSION, expect: { ret: 0 } }',
          '  - { do: ioctl, fd: c, request: VFIO_SET_IOMMU, arg: VFIO_TYPE1v2_IOMMU, expect: { errno: EINVAL } }',
        ].join('\n'),
      ),
      { tracer },
    );
    expect(r.ok).toBe(true);
    expect(r.counters['ioctl ok']).toBe(1);
    expect(r.counters['ioctl EINVAL']).toBe(1);
    expect(r.counters['fds open at the end']).toBe(1);
    expect(JSON.stringify(tracer.toFile())).toMatch(/ioctl VFIO_SET_IOMMU/);
  });
});

describe('the ioctl table', () => {
  it('takes its numbers from src/uapi and knows the seed ioctls', () => {
    expect(IOCTLS.get('VFIO_IOMMU_SET_PASID_TABLE')!.request).toBe(0x3b76);
    expect(IOCTLS.get('VFIO_IOMMU_PASID_REQUEST')!.request).toBe(vfio.VFIO_IOMMU_PASID_REQUEST);
    expect(IOCTLS.get('KVM_S390_CLEAR_RESET')!.request).toBe(0xaec4);
    expect(_IOC_NR(IOCTLS.get('VFIO_IOMMU_SET_PASID_QUOTA')!.request)).toBe(100 + 23);
    const nums = [...IOCTLS.values()].map((s) => `${s.request}`);
    // Numbers repeat only where the dispatch differs per file (none in this table).
    expect(new Set(nums).size).toBe(nums.length);
  });

  it('the schemas export as JSON Schema (for editors)', () => {
    const steps = JSON.stringify(
      z.toJSONSchema(uapiLevel.step as z.ZodType, { io: 'input', unrepresentable: 'any' }),
    );
    expect(steps).toMatch(/VFIO_IOMMU_SET_PASID_TABLE/);
    expect(
      JSON.stringify(z.toJSONSchema(uapiLevel.setup as z.ZodType, { io: 'input', unrepresentable: 'any' })),
    ).toMatch(/eventfdAutoreset/);
  });

  it('has constants and structs by name', () => {
    expect(CONSTANTS.get('VFIO_TYPE1_NESTING_IOMMU')).toBe(6n);
    expect(CONSTANTS.get('EFD_AUTORESET')).toBe(0x40n);
    expect(CONSTANTS.get('KVM_S390_PFAULT_TOKEN_INVALID')).toBe(0xffff_ffff_ffff_ffffn);
    expect(STRUCTS.get('iommu_pasid_table_config')!.size).toBe(32);
  });
});

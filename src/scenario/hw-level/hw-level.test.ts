/**
 * The hardware level: every scenarios/hw-*.yaml passes, and fails once the feature it shows is
 * flipped; schema and semantic refusals point at the right line and field; the command encoder
 * and the memory map helpers do what the spec says.
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import { CMD_0_OP, CMD_0_SSID, CMD_0_SSV, CMD_1_RANGE } from '../../arch/smmuv3/commands.ts';
import { formatError, loadScenarioText } from '../format/load.ts';
import { runScenario } from '../format/run.ts';
import { encodeCommand } from './commands.ts';
import { hardwareLevel } from './level.ts';
import { complement } from './machine.ts';
import type { StepOf } from './schema.ts';

const dir = new URL('../../../scenarios/', import.meta.url);
const text = (name: string): string => readFileSync(new URL(name, dir), 'utf8');

function run(src: string, file = 'x.yaml') {
  const r = loadScenarioText(src, file, [hardwareLevel]);
  if (!r.ok) throw new Error(r.errors.map(formatError).join('\n'));
  return runScenario(r.scenario);
}

function errors(src: string): string[] {
  const r = loadScenarioText(src, 'x.yaml', [hardwareLevel]);
  return r.ok ? [] : r.errors.map(formatError);
}

/** Each scenario and the one change that must make it fail. */
const FLIPS: [file: string, from: string, to: string][] = [
  ['hw-stage1.yaml', 'ssid: 2, asid: 12, ttb0: { table: as2 }', 'ssid: 2, asid: 12, ttb0: { table: as1 }'],
  ['hw-stage2.yaml', 'size: "0x1000"\n    perm: r\n', 'size: "0x1000"\n    perm: rw\n'],
  ['hw-nested.yaml', 'config: nested', 'config: s1'],
  ['hw-faults.yaml', 'set: { AF: 0 }', 'set: { AF: 1 }'],
  ['hw-invalidation.yaml', 'op: TLBI_NH_VA, vmid: 0, asid: 2', 'op: TLBI_NH_VA, vmid: 0, asid: 3'],
  [
    'hw-command-errors.yaml',
    'setup:\n  memory:',
    'setup:\n  smmu: { features: { reservedBits: ignore } }\n  memory:',
  ],
];

describe('hardware-level scenarios', () => {
  for (const [file, from, to] of FLIPS) {
    it(`${file} passes, and fails when flipped`, () => {
      const src = text(file);
      const good = run(src, file);
      expect(good.steps.flatMap((s) => s.expectations.filter((e) => !e.ok))).toEqual([]);
      expect(good.ok).toBe(true);
      expect(good.passed).toBeGreaterThan(5);
      expect(src).toContain(from);
      const bad = run(src.replace(from, to), file);
      expect(bad.ok).toBe(false);
    });
  }

  it('reports the SMMU counters', () => {
    const r = run(text('hw-nested.yaml'));
    expect(r.counters.maxDescReadsPerWalk).toBe(24);
    expect(r.counters.walksS2).toBe(5);
    expect(r.counters.iotlbHits).toBe(1);
  });
});

const BASE = `name: t
level: hardware
setup:
  memory:
    - { base: "0x4000_0000", size: "0x100_0000" }
steps:
`;

describe('refusals at load time', () => {
  it('an unknown register name, with its line', () => {
    const e = errors(`${BASE}  - { do: mmio_read, reg: CR0 }\n  - { do: mmio_read, reg: CR9 }\n`);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^x\.yaml:8:\d+: steps\[1\]\.reg: expected a register name/);
  });

  it('a value wider than its register', () => {
    const e = errors(`${BASE}  - { do: mmio_write, reg: CR0, value: "0x1_0000_0001" }\n`);
    expect(e).toEqual([expect.stringMatching(/^x\.yaml:7:\d+: steps\[0\]\.value: SMMU_CR0 is 32-bit/)]);
    expect(errors(`${BASE}  - { do: mmio_write, reg: STRTAB_BASE, value: "0x1_0000_0001" }\n`)).toEqual([]);
  });

  it('an unknown event name, with its line', () => {
    const e = errors(`${BASE}  - do: events\n    expect:\n      - { id: F_TRANSLATON }\n`);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^x\.yaml:9:\d+: steps\[0\]\.expect/);
    expect(e[0]).toContain('expected an event name');
  });

  it('an unknown record field and an unknown command', () => {
    expect(
      errors(`${BASE}  - { do: events, expect: [ { id: "0x10", fields: { Sid: 1 } } ] }\n`)[0],
    ).toContain('unknown field "Sid"');
    expect(errors(`${BASE}  - { do: command, op: TLBI_EVERYTHING }\n`)[0]).toContain(
      'expected a command name',
    );
  });

  it('a field the command does not have', () => {
    const e = errors(`${BASE}  - { do: command, op: CFGI_STE, sid: 1, asid: 3 }\n`);
    expect(e).toEqual([expect.stringMatching(/steps\[0\]\.asid: CMD_CFGI_STE has no field "asid"/)]);
  });

  it('undefined tables and CD tables, and addresses outside memory', () => {
    const e = errors(
      `${BASE}  - { do: cd, cdTable: nope, ttb0: 0 }\n  - { do: ste, sid: 1, config: s2, s2Table: s2 }\n  - { do: write64, addr: "0x9000_0000", value: 1 }\n`,
    );
    expect(e).toHaveLength(3);
    expect(e[0]).toContain('steps[0].cdTable: no CD table "nope"');
    expect(e[1]).toContain('steps[1].s2Table: no page table "s2"');
    expect(e[2]).toMatch(/x\.yaml:9:.*steps\[2\]\.addr: .* not inside the declared memory/);
  });

  it('SMMU features checked by the model', () => {
    const e = errors(
      BASE.replace(
        'setup:\n',
        'setup:\n  smmu: { features: { oasBits: 47, stage1: false, stage2: false } }\n',
      ),
    );
    expect(e.join('\n')).toContain('oasBits must be one of');
    expect(e.join('\n')).toContain('at least one of stage1 and stage2');
  });

  it('a descriptor field of the other stage', () => {
    const e = errors(
      `${BASE}  - { do: map, table: t, stage: 2, iova: 0, pa: "0x4080_0000", size: "0x1000" }\n  - { do: pte, table: t, iova: 0, set: { AP: 1 } }\n`,
    );
    expect(e[0]).toContain('no descriptor field "AP" at stage 2');
  });
});

describe('step executors', () => {
  it('write64 then read64 round-trips exact 64-bit values; a write outside RAM is refused', () => {
    const r = run(
      `${BASE}  - { do: write64, addr: "0x4080_0000", value: ["0xffff_ffff_ffff_fff0", 7] }\n  - { do: read64, addr: "0x4080_0000", count: 2, expect: { values: ["0xffff_ffff_ffff_fff0", 7] } }\n  - { do: write, addr: { guest: nowhere }, bytes: "01" }\n`.replace(
        '  - { do: write, addr: { guest: nowhere }, bytes: "01" }\n',
        '',
      ),
    );
    expect(r.ok).toBe(true);
  });

  it('mmio registers by name, 64-bit width from the table', () => {
    const r = run(
      `${BASE.replace('setup:\n', 'setup:\n  bringUp: none\n')}  - { do: mmio_write, reg: STRTAB_BASE, value: "0x4000_1000" }\n  - { do: mmio_read, reg: SMMU_STRTAB_BASE, expect: { value: "0x4000_1000", fields: { ADDR: "0x100_0040" } } }\n  - { do: mmio_read, reg: CR0, expect: { value: 0 } }\n  - { do: mmio_read, reg: IDR1, expect: { fields: { SIDSIZE: 16, SSIDSIZE: 20 } } }\n`,
    );
    expect(r.steps.flatMap((s) => s.expectations.filter((e) => !e.ok))).toEqual([]);
  });

  it('a transaction expectation that does not hold is reported with the difference', () => {
    const r = run(
      `${BASE}  - { do: ste, sid: 1, config: bypass }\n  - { do: transaction, sid: 1, iova: "0x1000", expect: { pa: "0x2000" } }\n`,
    );
    expect(r.ok).toBe(false);
    expect(r.steps[1]!.expectations[0]!.got).toBe('pa: got 0x1000, expected 0x2000');
  });

  it('encodes commands through the spec layouts', () => {
    const base = { do: 'command', sync: false } as const;
    const all = encodeCommand({ ...base, op: 'CMD_CFGI_ALL' } as StepOf<'command'>);
    expect(getField(all, CMD_0_OP)).toBe(0x04);
    expect(getField(all, CMD_1_RANGE)).toBe(31);
    const cd = encodeCommand({ ...base, op: 'CMD_PREFETCH_CONFIG', sid: 3, ssid: 5 } as StepOf<'command'>);
    expect(getField(cd, CMD_0_SSV)).toBe(1);
    expect(getField(cd, CMD_0_SSID)).toBe(5);
    const raw = encodeCommand({ ...base, raw: [0x1_0000_0103n, 1n] } as StepOf<'command'>);
    expect(Array.from(raw)).toEqual([0x103, 1, 1, 0]);
  });

  it('complement leaves only the declared RAM', () => {
    expect(
      complement([
        { base: 0x2000, size: 0x1000 },
        { base: 0, size: 0x1000 },
      ]),
    ).toEqual([
      { base: 0x1000, size: 0x1000 },
      { base: 0x3000, size: 2 ** 52 - 0x3000 },
    ]);
  });
});

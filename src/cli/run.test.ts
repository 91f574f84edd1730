/**
 * `vsva run` and `vsva validate` in-process (with the toy level, so these tests stay about the
 * command and not a model): exit statuses, every problem printed as file:line:column, nothing run
 * while a file is bad, JSON output, and a trace file that is valid trace-event JSON.
 */

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scenarioJsonSchema } from '../scenario/format/json-schema.ts';
import { toyLevel } from '../scenario/format/toy-level.ts';
import { validateTraceFile } from '../scenario/format/trace.ts';
import { memoryIo } from './io.ts';
import { runCommand, validateCommand } from './run.ts';

const dir = mkdtempSync(join(tmpdir(), 'vsva-cli-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const good = (want: string) => `name: toy ${want}
level: hardware
setup: { counters: [a] }
steps:
  - do: add
    value: 0x10
    into: a
  - do: check
    counter: a
    expect: { value: ${want} }
`;
const GOOD = file('good.yaml', good('0x10'));
const FAILS = file('fails.yaml', good('0x11'));
const BROKEN = file(
  'broken.yaml',
  good('0x10').replace('value: 0x10\n', 'value: "0x1g"\n').replace('do: check', 'do: chek'),
);

describe('vsva run', () => {
  it('exits 0 when every expectation holds and prints the report', () => {
    const io = memoryIo();
    expect(runCommand([GOOD], {}, io, [toyLevel])).toBe(0);
    expect(io.stdout.join('\n')).toContain('1 expectations met, 0 failed');
  });

  it('exits 1 when an expectation fails, 2 and runs nothing when a file is malformed', () => {
    expect(runCommand([FAILS], {}, memoryIo(), [toyLevel])).toBe(1);
    const io = memoryIo();
    expect(runCommand([GOOD, BROKEN], {}, io, [toyLevel])).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr[0]).toMatch(/broken\.yaml:6:12: steps\[0\]\.value: expected a number/);
    expect(io.stderr[1]).toMatch(/broken\.yaml:8:9: steps\[1\]\.do: /);
    expect(io.stderr.at(-1)).toBe('1 of 2 scenario file(s) have problems; nothing was run');
  });

  it('prints one JSON report per file, or {ok, reports} for several', () => {
    const one = memoryIo();
    runCommand([GOOD], { json: true }, one, [toyLevel]);
    expect(JSON.parse(one.stdout[0]!)).toMatchObject({ ok: true, passed: 1 });
    const two = memoryIo();
    expect(runCommand([GOOD, FAILS], { json: true }, two, [toyLevel])).toBe(1);
    expect(JSON.parse(two.stdout[0]!)).toMatchObject({ ok: false, passed: 1, failed: 1 });
  });

  it('writes a valid trace-event file with one span per step, identical across runs', () => {
    const runs = [memoryIo(), memoryIo()];
    for (const io of runs) runCommand([GOOD], { trace: 't.json' }, io, [toyLevel]);
    const text = runs[0]!.files.get('t.json')!;
    expect(runs[1]!.files.get('t.json')).toBe(text);
    const trace = JSON.parse(text);
    expect(validateTraceFile(trace)).toEqual([]);
    expect(trace.traceEvents.filter((e: { cat: string }) => e.cat === 'step')).toHaveLength(2);
  });
});

describe('vsva validate / schema', () => {
  it('says ok per good file and lists every problem of a bad one', () => {
    const io = memoryIo();
    expect(validateCommand([GOOD, BROKEN, join(dir, 'missing.yaml')], io, [toyLevel])).toBe(1);
    expect(io.stdout[0]).toMatch(/good\.yaml: ok — hardware level, 2 steps/);
    expect(io.stdout.filter((l) => l.includes('broken.yaml:'))).toHaveLength(2);
    expect(io.stdout.some((l) => /missing\.yaml:1:1: cannot read/.test(l))).toBe(true);
  });

  it('exports a JSON Schema that describes steps by action', () => {
    const s = JSON.stringify(scenarioJsonSchema([toyLevel]));
    expect(s).toContain('"const":"add"');
    expect(s).toContain('"const":"hardware"');
  });
});

describe('vsva run on the real levels', () => {
  it('gives byte-identical traces for the same scenarios and seed, and different ones for another seed', () => {
    const files = ['hw-nested.yaml', 'system-fault-storm.yaml'].map((f) =>
      join(import.meta.dirname, '..', '..', 'scenarios', f),
    );
    const runs = [memoryIo(), memoryIo(), memoryIo()];
    runs.forEach((io, i) => {
      expect(runCommand(files, { trace: 't.json', json: true, seed: i < 2 ? 5 : 6 }, io)).toBe(0);
    });
    const [a, b, c] = runs.map((io) => io.files.get('t.json')!);
    expect(validateTraceFile(JSON.parse(a!))).toEqual([]);
    expect(a === b).toBe(true);
    expect(a === c).toBe(false);
    expect(runs[0]!.stdout[0]).toBe(runs[1]!.stdout[0]);
  });
});

describe('vsva validate on broken copies of the examples', () => {
  const scen = (f: string) => readFileSync(join(import.meta.dirname, '..', '..', 'scenarios', f), 'utf8');

  it('names file, line, column and field for each problem, at every level', () => {
    const hw = file(
      'hw-broken.yaml',
      scen('hw-nested.yaml').replace(
        'ssid: 3\n    iova: "0x2345_6000_0abc"',
        'ssid: 3\n    iova: "0x2345_6000_0abg"',
      ),
    );
    const uapi = file(
      'uapi-broken.yaml',
      scen('seed-2-set-pasid-table.yaml').replace(
        'request: VFIO_GET_API_VERSION',
        'request: VFIO_GET_API_VERSON',
      ),
    );
    const sys = file(
      'sys-broken.yaml',
      scen('system-sva.yaml').replace('{ do: bind, process: p3,', '{ do: bind, process: p9,'),
    );
    const io = memoryIo();
    expect(validateCommand([hw, uapi, sys], io)).toBe(1);
    const lines = io.stdout.join('\n');
    expect(lines).toMatch(/hw-broken\.yaml:\d+:\d+: steps\[\d+\]\.iova: expected a number/);
    expect(lines).toMatch(/uapi-broken\.yaml:\d+:\d+: steps\[\d+\]\.request: .*VFIO_GET_API_VERSON/);
    expect(lines).toMatch(/sys-broken\.yaml:\d+:\d+: steps\[\d+\]\.process: .*p9/);
    expect(io.stdout.at(-1)).toBe('3 of 3 file(s) have problems');
  });
});

/**
 * The loader's promises (issue 7 "Bad input"): one message per problem, each naming file, line,
 * column and field, saying what was expected; YAML errors and semantic errors reported the same
 * way; 64-bit values kept exact; nothing runs when anything is wrong.
 */

import { describe, expect, it } from 'vitest';
import { formatError, loadScenarioText } from './load.ts';
import { runScenario } from './run.ts';
import { toyLevel } from './toy-level.ts';

const GOOD = `name: toy
level: hardware
setup:
  counters: [a]
steps:
  - do: add
    value: "0x1_0000"
    into: a
  - do: check
    counter: a
    expect: { value: 0x10000 }
`;

function errors(text: string): string[] {
  const r = loadScenarioText(text, 'x.yaml', [toyLevel]);
  return r.ok ? [] : r.errors.map(formatError);
}

describe('loadScenarioText', () => {
  it('accepts a good scenario and records each step line', () => {
    const r = loadScenarioText(GOOD, 'x.yaml', [toyLevel]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.scenario.stepLines).toEqual([6, 9]);
    expect(r.scenario.steps[0]).toMatchObject({ do: 'add', value: 0x10000, into: 'a' });
  });

  it('names file, line, column and field for an unknown action', () => {
    const e = errors(GOOD.replace('do: check', 'do: chek'));
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^x\.yaml:9:9: steps\[1\]\.do: .*expected.*'add' \| 'check'/i);
  });

  it('points at the key of an unknown field', () => {
    const e = errors(GOOD.replace('    into: a\n', '    into: a\n    extra: 1\n'));
    expect(e).toEqual(['x.yaml:9:5: steps[0].extra: unknown field "extra"']);
  });

  it('reports a bad number with what was expected', () => {
    const e = errors(GOOD.replace('"0x1_0000"', 'zz'));
    expect(e).toEqual(['x.yaml:7:12: steps[0].value: expected a number: hex ("0x1000") or decimal']);
  });

  it('refuses an address above 2^53 instead of rounding it', () => {
    const e = errors(GOOD.replace('"0x1_0000"', '0x20000000000000'));
    expect(e[0]).toMatch(/^x\.yaml:7:12: steps\[0\]\.value: expected at most 53 bits/);
  });

  it('keeps a full 64-bit value exact', () => {
    const r = loadScenarioText(GOOD.replace('0x10000 }', '0xffffffffffffffff }'), 'x.yaml', [toyLevel]);
    expect(r.ok && (r.scenario.steps[1] as unknown as { expect: { value: bigint } }).expect.value).toBe(
      0xffff_ffff_ffff_ffffn,
    );
  });

  it('reports every problem, not only the first', () => {
    const e = errors(GOOD.replace('"0x1_0000"', 'zz').replace('counter: a', 'counter: 7'));
    expect(e).toHaveLength(2);
  });

  it('reports a missing field at the mapping that lacks it', () => {
    const e = errors(GOOD.replace('    into: a\n', ''));
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^x\.yaml:6:5: steps\[0\]\.into: /);
  });

  it('reports semantic problems with their position', () => {
    const e = errors(GOOD.replace('into: a', 'into: b'));
    expect(e).toEqual(['x.yaml:8:11: steps[0].into: no counter "b" in setup.counters']);
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    expect(errors('name: [1,\nlevel: x\n')[0]).toMatch(/^x\.yaml:\d+:\d+: YAML: /);
    expect(errors(GOOD.replace('level: hardware\n', 'level: hardware\nlevel: uapi\n'))[0]).toMatch(
      /^x\.yaml:3:1: YAML: .*unique/i,
    );
  });

  it('reports an unknown level', () => {
    expect(errors(GOOD.replace('level: hardware', 'level: quantum'))[0]).toMatch(/^x\.yaml:2:8: level: /);
  });
});

describe('runScenario', () => {
  it('runs the steps and checks expectations', () => {
    const r = loadScenarioText(GOOD, 'x.yaml', [toyLevel]);
    if (!r.ok) throw new Error('bad fixture');
    const rep = runScenario(r.scenario);
    expect(rep.ok).toBe(true);
    expect(rep.passed).toBe(1);
    expect(rep.steps[1]!.where).toBe('x.yaml:9');
    expect(rep.counters).toEqual({ a: 0x10000 });
  });

  it('fails when an expectation does not hold', () => {
    const r = loadScenarioText(GOOD.replace('0x10000 }', '0x10001 }'), 'x.yaml', [toyLevel]);
    if (!r.ok) throw new Error('bad fixture');
    const rep = runScenario(r.scenario);
    expect(rep.ok).toBe(false);
    expect(rep.steps[1]!.expectations[0]!.got).toBe('(value): got 0x10000, expected 0x10001');
  });

  it('turns an exception inside a step into a failed expectation and stops', () => {
    const r = loadScenarioText(`${GOOD}  - do: boom\n  - do: check\n    counter: a\n`, 'x.yaml', [toyLevel]);
    if (!r.ok) throw new Error('bad fixture');
    const rep = runScenario(r.scenario);
    expect(rep.ok).toBe(false);
    expect(rep.steps).toHaveLength(3);
    expect(rep.steps[2]!.expectations[0]!.what).toBe('the step ran without an internal error');
  });
});

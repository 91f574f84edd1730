/**
 * The README's scenario examples are real: every ```yaml block in README.md loads without a
 * problem and passes, so the documentation cannot drift from the format.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatError, loadScenarioText } from './format/load.ts';
import { runScenario } from './format/run.ts';
import { LEVELS } from './levels.ts';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
const BLOCKS = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README scenarios', () => {
  it('shows one scenario per level', () => {
    const levels = BLOCKS.map((b) => /^level: (\w+)/m.exec(b)?.[1]);
    expect(levels).toEqual(['hardware', 'uapi', 'system']);
  });

  it.each(BLOCKS.map((b, i) => [i, b] as const))('example %i loads and passes', (i, text) => {
    const r = loadScenarioText(text, `README.md example ${i}`, LEVELS);
    expect(r.ok ? [] : r.errors.map(formatError)).toEqual([]);
    if (!r.ok) return;
    const rep = runScenario(r.scenario);
    const failed = rep.steps.flatMap((s) =>
      s.expectations.filter((e) => !e.ok).map((e) => `${s.title}: ${e.what}: ${e.got}`),
    );
    expect(failed).toEqual([]);
    expect(rep.ok).toBe(true);
  });
});

/**
 * Every example in scenarios/ (issue 7 §3) loads without a problem and passes: each expectation
 * met, each invariant 0. The seven seed scenarios and the hardware and system-level examples the
 * issue names must exist. A scenario's own folder tests show that its expectations can fail.
 */

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatError, loadScenarioFile } from './format/load.ts';
import { runScenario } from './format/run.ts';
import { LEVELS } from './levels.ts';

const DIR = join(import.meta.dirname, '..', '..', 'scenarios');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('scenarios/', () => {
  it('has one scenario per seed patch and the hardware and system examples', () => {
    for (const n of [
      'seed-1-attach-pasid-table.yaml',
      'seed-2-set-pasid-table.yaml',
      'seed-3-pciiommuops.yaml',
      'seed-4-s390-resets.yaml',
      'seed-5-eventfd-autoreset.yaml',
      'seed-6-pasid-request-quota.yaml',
      'seed-7-pasid-capability.yaml',
      'hw-stage1.yaml',
      'hw-stage2.yaml',
      'hw-nested.yaml',
      'hw-faults.yaml',
      'hw-invalidation.yaml',
      'system-fault-storm.yaml',
    ])
      expect(FILES).toContain(n);
  });

  it.each(FILES)('%s loads and passes', (f) => {
    const r = loadScenarioFile(join(DIR, f), LEVELS);
    expect(r.ok ? [] : r.errors.map(formatError)).toEqual([]);
    if (!r.ok) return;
    const rep = runScenario(r.scenario);
    const failed = rep.steps.flatMap((s) =>
      s.expectations.filter((e) => !e.ok).map((e) => `${s.where}: ${e.what}: ${e.got}`),
    );
    expect(failed).toEqual([]);
    expect(rep.passed).toBeGreaterThan(0);
    expect(rep.ok).toBe(true);
  });
});

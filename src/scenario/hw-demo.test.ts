import { describe, expect, it } from 'vitest';
import { runHardwareDemo } from './hw-demo.ts';

describe('built-in hardware-level scenario', () => {
  it('meets every expectation it states', () => {
    const r = runHardwareDemo();
    expect(r.failed).toBe(0);
    expect(r.passed).toBeGreaterThanOrEqual(11);
    expect(r.steps.map((s) => s.expectations.length).every((n) => n > 0)).toBe(true);
    expect(r.counters['descriptor.reads.max_per_walk']).toBe(24);
  });

  it('is deterministic: two runs give byte-identical reports', () => {
    expect(JSON.stringify(runHardwareDemo())).toBe(JSON.stringify(runHardwareDemo()));
  });
});

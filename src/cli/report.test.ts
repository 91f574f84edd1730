import { describe, expect, it } from 'vitest';
import { runHardwareDemo } from '../scenario/hw-demo.ts';
import { renderReport } from './report.ts';

describe('terminal report', () => {
  it('shows every step, the counters, and ends with the summary line', () => {
    const report = runHardwareDemo();
    const text = renderReport(report);
    for (const step of report.steps) expect(text).toContain(step.title);
    expect(text).toContain('Counters');
    expect(text.trimEnd().split('\n').at(-1)).toContain('expectations met, 0 failed');
  });
});

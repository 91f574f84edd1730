/**
 * Renders a scenario report for a terminal: one block per step (what happened, then each
 * expectation as PASS or FAIL with what was observed), then the counters and a summary line.
 * Colours come from picocolors, which honours NO_COLOR and non-TTY output.
 */

import pc from 'picocolors';
import type { DemoReport } from '../scenario/hw-demo.ts';

export function renderReport(r: DemoReport): string {
  const out: string[] = [pc.bold(`vsva — ${r.scenario}`), ''];
  r.steps.forEach((step, i) => {
    out.push(pc.bold(`${i + 1}. ${step.title}`));
    for (const line of step.detail) out.push(`   ${line}`);
    for (const e of step.expectations) {
      const mark = e.ok ? pc.green('PASS') : pc.red('FAIL');
      out.push(`   ${mark} ${e.what}${e.ok ? '' : pc.red(` (got ${e.got})`)}`);
    }
    out.push('');
  });
  out.push(pc.bold('Counters'));
  const width = Math.max(...Object.keys(r.counters).map((k) => k.length));
  for (const [k, v] of Object.entries(r.counters)) out.push(`   ${k.padEnd(width)}  ${v}`);
  out.push('');
  const summary = `${r.passed} expectations met, ${r.failed} failed`;
  out.push(r.failed === 0 ? pc.green(summary) : pc.red(summary));
  return out.join('\n');
}

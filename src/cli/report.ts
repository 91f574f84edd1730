/**
 * Renders a scenario report for a terminal: one block per step (what happened, then each
 * expectation as PASS or FAIL with what was observed), then the counters, the invariants checked
 * after teardown, and a summary line. Colours come from picocolors, which honours NO_COLOR and
 * non-TTY output.
 */

import pc from 'picocolors';
import type { ScenarioReport } from '../scenario/report.ts';

function table(title: string, rows: Record<string, number>, good?: (v: number) => boolean): string[] {
  const out = [pc.bold(title)];
  const width = Math.max(...Object.keys(rows).map((k) => k.length));
  for (const [k, v] of Object.entries(rows)) {
    const val = good === undefined ? String(v) : good(v) ? pc.green(String(v)) : pc.red(String(v));
    out.push(`   ${k.padEnd(width)}  ${val}`);
  }
  out.push('');
  return out;
}

export function renderReport(r: ScenarioReport): string {
  const out: string[] = [pc.bold(`vsva — ${r.scenario}`), ''];
  r.steps.forEach((step, i) => {
    out.push(
      pc.bold(`${i + 1}. ${step.title}`) + (step.where !== undefined ? pc.dim(`  (${step.where})`) : ''),
    );
    for (const line of step.detail) out.push(`   ${line}`);
    for (const e of step.expectations) {
      const mark = e.ok ? pc.green('PASS') : pc.red('FAIL');
      out.push(`   ${mark} ${e.what}${e.ok ? '' : pc.red(` (got ${e.got})`)}`);
    }
    out.push('');
  });
  out.push(...table('Counters', r.counters));
  if (r.invariants !== undefined)
    out.push(...table('Invariants after teardown', r.invariants, (v) => v === 0));
  const summary = `${r.passed} expectations met, ${r.failed} failed${r.ok ? '' : ' — NOT OK'}`;
  out.push(r.ok ? pc.green(summary) : pc.red(summary));
  return out.join('\n');
}

/**
 * `vsva run [scenario.yaml ...]` and `vsva validate FILE...` (issue 7 §2). With no file, run
 * executes the default scenario (a VM using vSVA end to end); with files, it checks all of them
 * first — a malformed file never starts, and nothing runs while any file has a problem (exit 2) —
 * then runs each and prints its report (or JSON). `--trace FILE` writes one Chrome trace-event
 * file covering every scenario run, on the model's virtual clock. The exit status is 0 when every
 * expectation is met and every invariant is 0, 1 otherwise.
 */

import { SingleBar } from 'cli-progress';
import { runDefaultScenario } from '../scenario/default-system.ts';
import type { AnyLevel } from '../scenario/format/level.ts';
import { formatError, loadScenarioFile, type Scenario } from '../scenario/format/load.ts';
import { runScenario } from '../scenario/format/run.ts';
import { Tracer } from '../scenario/format/trace.ts';
import { runHardwareDemo } from '../scenario/hw-demo.ts';
import { LEVELS } from '../scenario/levels.ts';
import type { ScenarioReport } from '../scenario/report.ts';
import type { Io } from './io.ts';
import { renderReport } from './report.ts';

export interface RunCommandOptions {
  readonly json?: boolean;
  readonly trace?: string;
  readonly seed?: number;
  readonly hardware?: boolean;
  readonly autoreset?: boolean;
}

/** Loads every file; the scenarios, or false after printing every problem. */
function loadAll(files: readonly string[], io: Io, levels: readonly AnyLevel[]): Scenario[] | false {
  const out: Scenario[] = [];
  let bad = 0;
  for (const f of files) {
    const r = loadScenarioFile(f, levels);
    if (r.ok) out.push(r.scenario);
    else {
      bad++;
      for (const e of r.errors) io.err(formatError(e));
    }
  }
  if (bad > 0) {
    io.err(`${bad} of ${files.length} scenario file(s) have problems; nothing was run`);
    return false;
  }
  return out;
}

function builtIn(opts: RunCommandOptions, tracer: Tracer | undefined): ScenarioReport {
  if (opts.hardware === true) return runHardwareDemo();
  return runDefaultScenario({
    eventfdAutoreset: opts.autoreset === true,
    ...(tracer !== undefined ? { tracer } : {}),
  }).report;
}

/** A progress bar over all steps when stderr is a terminal and the output is not JSON. */
function progress(io: Io, opts: RunCommandOptions, total: number) {
  if (!io.tty || opts.json === true || total < 2) return undefined;
  const bar = new SingleBar({
    format: 'vsva run [{bar}] {value}/{total} steps  {scenario}',
    stream: process.stderr,
    clearOnComplete: true,
    hideCursor: true,
  });
  bar.start(total, 0, { scenario: '' });
  return bar;
}

export function runCommand(
  files: readonly string[],
  opts: RunCommandOptions,
  io: Io,
  levels: readonly AnyLevel[] = LEVELS,
): number {
  const tracer = opts.trace !== undefined ? new Tracer() : undefined;
  let reports: ScenarioReport[];
  if (files.length === 0) reports = [builtIn(opts, tracer)];
  else {
    const scenarios = loadAll(files, io, levels);
    if (scenarios === false) return 2;
    const total = scenarios.reduce((n, s) => n + s.steps.length, 0);
    const bar = progress(io, opts, total);
    let done = 0;
    reports = scenarios.map((sc) => {
      const base = done;
      const r = runScenario(sc, {
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        ...(tracer !== undefined ? { tracer } : {}),
        onStep: (n) => bar?.update(base + n, { scenario: sc.name }),
      });
      done += sc.steps.length;
      return r;
    });
    bar?.stop();
  }
  const ok = reports.every((r) => r.ok);
  if (opts.json === true) {
    const single = reports.length === 1 ? reports[0] : undefined;
    const body = single ?? {
      ok,
      passed: reports.filter((r) => r.ok).length,
      failed: reports.filter((r) => !r.ok).length,
      reports,
    };
    io.out(JSON.stringify(body, null, 2));
  } else {
    io.out(reports.map(renderReport).join('\n\n'));
    if (reports.length > 1)
      io.out(
        `\n${reports.length} scenarios: ${reports.filter((r) => r.ok).length} ok, ${reports.filter((r) => !r.ok).length} not ok`,
      );
  }
  if (tracer !== undefined && opts.trace !== undefined) {
    const file = tracer.toFile({ generator: 'vsva', scenarios: reports.map((r) => r.scenario).join('; ') });
    const problem = io.writeFile(opts.trace, JSON.stringify(file));
    if (problem !== undefined) {
      io.err(`cannot write the trace to ${opts.trace}: ${problem}`);
      return 2;
    }
    io.err(
      `trace: ${file.traceEvents.length} events written to ${opts.trace} (open it at https://ui.perfetto.dev)`,
    );
  }
  return ok ? 0 : 1;
}

/** `vsva validate`: schema and semantic checks only; 0 when every file is good. */
export function validateCommand(
  files: readonly string[],
  io: Io,
  levels: readonly AnyLevel[] = LEVELS,
): number {
  let bad = 0;
  for (const f of files) {
    const r = loadScenarioFile(f, levels);
    if (r.ok)
      io.out(
        `${f}: ok — ${r.scenario.level.name} level, ${r.scenario.steps.length} steps ("${r.scenario.name}")`,
      );
    else {
      bad++;
      for (const e of r.errors) io.out(formatError(e));
    }
  }
  if (bad > 0) io.out(`${bad} of ${files.length} file(s) have problems`);
  return bad > 0 ? 1 : 0;
}

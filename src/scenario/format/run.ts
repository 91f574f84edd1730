/**
 * Running a loaded scenario (issue 7 §2): start the level's session from the setup, run each step
 * in order with a `StepBuilder`, then finish and build the report. A step that throws is a model
 * bug; it is reported as a failed expectation ("the step ran without an internal error") and the
 * run stops there, still tearing down. When a tracer is given, every step is a span on the
 * "scenario" track enclosing what the step caused.
 */

import { finishReport, type ScenarioReport, StepBuilder, type StepReport } from '../report.ts';
import type { Scenario } from './load.ts';
import type { Tracer } from './trace.ts';

export interface RunOptions {
  /** Overrides the scenario's seed. */
  readonly seed?: number;
  readonly tracer?: Tracer;
  /** Called after each step (progress bars). */
  readonly onStep?: (done: number, total: number) => void;
}

function errorText(e: unknown): string {
  return e instanceof Error
    ? `${e.message}${e.stack ? ` @ ${e.stack.split('\n')[1]?.trim() ?? ''}` : ''}`
    : String(e);
}

export function runScenario(sc: Scenario, opts: RunOptions = {}): ScenarioReport {
  const seed = opts.seed ?? sc.seed ?? 1;
  const tracer = opts.tracer;
  const title = `${sc.name} (${sc.file})`;
  const steps: StepReport[] = [];
  const track = tracer?.track('scenario', sc.name);
  let session: ReturnType<typeof sc.level.start>;
  try {
    session = sc.level.start(sc.setup, { seed, tracer });
  } catch (e) {
    session = `internal error while building the setup: ${errorText(e)}`;
  }
  if (typeof session === 'string') {
    const b = new StepBuilder('setup');
    b.expect('the setup builds', false, session);
    steps.push(b.done());
    return finishReport(title, steps, {});
  }
  for (let i = 0; i < sc.steps.length; i++) {
    const st = sc.steps[i]!;
    const b = new StepBuilder(st.title ?? sc.level.titleOf(st));
    const span =
      track !== undefined
        ? tracer!.span(track, 'step', b.title, { line: sc.stepLines[i], do: st.do })
        : undefined;
    let threw = false;
    try {
      session.step(st, b);
    } catch (e) {
      threw = true;
      b.expect('the step ran without an internal error', false, errorText(e));
    }
    span?.end({ expectations: b.expectations.length, failed: b.expectations.filter((x) => !x.ok).length });
    steps.push({ ...b.done(), where: `${sc.file}:${sc.stepLines[i]}` });
    opts.onStep?.(i + 1, sc.steps.length);
    if (threw) break;
  }
  let result: ReturnType<typeof session.finish>;
  try {
    result = session.finish();
  } catch (e) {
    const b = new StepBuilder('teardown');
    b.expect('teardown ran without an internal error', false, errorText(e));
    steps.push(b.done());
    result = { counters: {} };
  }
  return finishReport(title, steps, result.counters, result.invariants);
}

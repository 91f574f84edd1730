/**
 * What every scenario produces: steps (what happened, and each expectation with what was
 * observed), a flat object of counters, optionally the invariants checked after teardown, and the
 * verdict. The CLI renders it for a terminal or prints it as JSON.
 */

export interface Expectation {
  readonly what: string;
  readonly ok: boolean;
  readonly got: string;
}

export interface StepReport {
  readonly title: string;
  /** `file:line` of the step, for scenarios read from a file. */
  readonly where?: string;
  readonly detail: string[];
  readonly expectations: Expectation[];
}

export interface ScenarioReport {
  readonly scenario: string;
  /** Every expectation met and every invariant at 0. */
  readonly ok: boolean;
  readonly steps: StepReport[];
  readonly counters: Record<string, number>;
  /** Checked after teardown; all expected to be 0. */
  readonly invariants?: Record<string, number>;
  readonly passed: number;
  readonly failed: number;
}

/** Builds one step's report. */
export class StepBuilder {
  readonly title: string;
  readonly detail: string[] = [];
  readonly expectations: Expectation[] = [];

  constructor(title: string) {
    this.title = title;
  }

  note(line: string): void {
    this.detail.push(line);
  }

  expect(what: string, ok: boolean, got: string): void {
    this.expectations.push({ what, ok, got });
  }

  /** Expects `got` to equal `want` (compared as JSON). */
  expectEqual(what: string, got: unknown, want: unknown): void {
    const g = JSON.stringify(got);
    this.expect(what, g === JSON.stringify(want), g);
  }

  done(): StepReport {
    return { title: this.title, detail: this.detail, expectations: this.expectations };
  }
}

/** The report of `steps`: counts expectations; ok needs all met and every invariant at 0. */
export function finishReport(
  scenario: string,
  steps: StepReport[],
  counters: Record<string, number>,
  invariants?: Record<string, number>,
): ScenarioReport {
  const all = steps.flatMap((s) => s.expectations);
  const passed = all.filter((e) => e.ok).length;
  const failed = all.length - passed;
  const clean = invariants === undefined || Object.values(invariants).every((v) => v === 0);
  return {
    scenario,
    ok: failed === 0 && clean,
    steps,
    counters,
    ...(invariants !== undefined ? { invariants } : {}),
    passed,
    failed,
  };
}

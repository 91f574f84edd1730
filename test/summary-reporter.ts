/**
 * A vitest reporter that ends the run with one plain line, `N passed, N failed`, which is what CI reads.
 * Skipped or todo tests count as failed: a skipped check is a defect in this project, never a pass.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        if (t.result().state === 'passed') passed++;
        else failed++;
      }
      // A module that failed to load (syntax error, bad import) has no tests but is a failure.
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) failed++;
    }
    console.log(`${passed} passed, ${failed} failed`);
  }
}

/**
 * `vsva bench`: runs the benchmarks of the foundation issue (bench/run.ts, the same as
 * `npm run bench`) with tsx from the source checkout, passing --quick / --no-native through. The
 * benchmarks live outside src/ (timing code never enters the model), so this needs a checkout with
 * its dev dependencies; from anywhere else it says so.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Io } from './io.ts';

/** The package root: two levels up from src/cli or dist/cli. */
export function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function benchCommand(opts: { quick?: boolean; native?: boolean }, io: Io): number {
  const root = packageRoot();
  const script = join(root, 'bench', 'run.ts');
  const tsx = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  if (!existsSync(script) || !existsSync(tsx)) {
    io.err(
      'vsva bench needs a source checkout with its dev dependencies (bench/run.ts and tsx); run `npm ci` there',
    );
    return 2;
  }
  const args = [
    tsx,
    script,
    ...(opts.quick === true ? ['--quick'] : []),
    ...(opts.native === false ? ['--no-native'] : []),
  ];
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  return r.status ?? 1;
}

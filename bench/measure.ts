/**
 * The timing harness: warm up, then time a fixed number of operations `runs` times with
 * performance.now() and keep the best (and the median, for context). Each measured function returns
 * a checksum of what it computed; checksums are folded into a sink that run.ts prints, so the
 * optimiser cannot drop the measured work. All timing code of the project lives in bench/.
 */

export interface Timing {
  /** Best (highest) operations per second over the timed runs. */
  readonly best: number;
  readonly median: number;
  readonly runs: number;
  readonly opsPerRun: number;
  /** Wall time of the fastest run, milliseconds. */
  readonly bestMs: number;
}

let sinkValue = 0;

/** Folds a checksum into the sink (printed at the end of the run). */
export function consume(checksum: number): void {
  sinkValue = (Math.imul(sinkValue, 31) + (checksum | 0)) | 0;
}

export function sink(): number {
  return sinkValue >>> 0;
}

export interface MeasureOptions {
  /** Operations one call of the measured function performs. */
  readonly ops: number;
  readonly runs: number;
  /** Untimed calls before the timed runs (JIT warm-up). */
  readonly warmup: number;
}

/** Times `fn` (which performs `ops` operations and returns a checksum). */
export function measure(opts: MeasureOptions, fn: () => number): Timing {
  for (let i = 0; i < opts.warmup; i++) consume(fn());
  const rates: number[] = [];
  let bestMs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < opts.runs; r++) {
    const t0 = performance.now();
    const c = fn();
    const dt = performance.now() - t0;
    consume(c);
    bestMs = Math.min(bestMs, dt);
    rates.push(opts.ops / (dt / 1000));
  }
  rates.sort((a, b) => a - b);
  return {
    best: rates[rates.length - 1]!,
    median: rates[Math.floor(rates.length / 2)]!,
    runs: opts.runs,
    opsPerRun: opts.ops,
    bestMs,
  };
}

/**
 * The trace `vsva run --trace FILE` writes (issue 7 §2): Chrome trace-event JSON, the format
 * ui.perfetto.dev and chrome://tracing open. Time is virtual: the tracer's clock starts at 0 and
 * advances by one tick (shown as 1 µs) for every event recorded, so a trace is a pure function of
 * the scenario and its seed — byte-identical across runs — and its order is the model's order.
 * Steps are spans that enclose the events they caused.
 *
 * Tracks are named (process, thread) pairs, e.g. ("hardware", "smmu0") or ("host", "qemu-vm0");
 * their numeric ids are given out in order of first use, with the metadata events that name them.
 */

import { hex } from '../../arch/bits.ts';

/** One trace event (the subset of the trace-event format vsva writes). */
export interface TraceEvent {
  readonly name: string;
  readonly cat: string;
  /** X complete span, i instant, C counter, M metadata. */
  readonly ph: 'X' | 'i' | 'C' | 'M';
  readonly ts: number;
  readonly dur?: number;
  readonly pid: number;
  readonly tid: number;
  readonly s?: 't' | 'p' | 'g';
  readonly args?: Record<string, unknown>;
}

export interface TraceFile {
  readonly traceEvents: TraceEvent[];
  readonly displayTimeUnit: 'ms' | 'ns';
  readonly otherData: Record<string, string>;
}

export interface Track {
  readonly pid: number;
  readonly tid: number;
}

/** An open span; `end` closes it at the current time. */
export interface OpenSpan {
  end(args?: Record<string, unknown>): void;
}

/** Makes args JSON-safe: bigints and large integers become hex strings. */
function cleanArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if (typeof v === 'bigint') out[k] = hex(v);
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0x10000) out[k] = hex(v);
    else out[k] = v;
  }
  return out;
}

export class Tracer {
  /** Virtual time in ticks (µs in the file). */
  now = 0;
  /** Events kept at most (the rest are counted in `dropped`). */
  readonly limit: number;
  dropped = 0;
  private readonly events: TraceEvent[] = [];
  private readonly meta: TraceEvent[] = [];
  private readonly pids = new Map<string, number>();
  private readonly tids = new Map<string, Track>();

  constructor(limit = 1_000_000) {
    this.limit = limit;
  }

  /** The track of thread `thread` in process `proc`, created (and named) on first use. */
  track(proc: string, thread: string): Track {
    const key = `${proc}\u0000${thread}`;
    const known = this.tids.get(key);
    if (known !== undefined) return known;
    let pid = this.pids.get(proc);
    if (pid === undefined) {
      pid = this.pids.size + 1;
      this.pids.set(proc, pid);
      this.meta.push({
        name: 'process_name',
        cat: '__metadata',
        ph: 'M',
        ts: 0,
        pid,
        tid: 0,
        args: { name: proc },
      });
    }
    const t: Track = { pid, tid: this.tids.size + 1 };
    this.tids.set(key, t);
    this.meta.push({
      name: 'thread_name',
      cat: '__metadata',
      ph: 'M',
      ts: 0,
      pid,
      tid: t.tid,
      args: { name: thread },
    });
    return t;
  }

  private push(e: TraceEvent): void {
    if (this.events.length < this.limit) this.events.push(e);
    else this.dropped++;
  }

  /** A point event at the current time; the clock then advances one tick. */
  instant(track: Track, cat: string, name: string, args: Record<string, unknown> = {}): void {
    this.push({
      name,
      cat,
      ph: 'i',
      s: 't',
      ts: this.now,
      pid: track.pid,
      tid: track.tid,
      args: cleanArgs(args),
    });
    this.now++;
  }

  /** A span of one tick (an event with a duration, e.g. a DMA transaction). */
  complete(track: Track, cat: string, name: string, args: Record<string, unknown> = {}): void {
    this.push({
      name,
      cat,
      ph: 'X',
      ts: this.now,
      dur: 1,
      pid: track.pid,
      tid: track.tid,
      args: cleanArgs(args),
    });
    this.now++;
  }

  /** Opens a span now; it encloses everything recorded until `end` (at least one tick). */
  span(track: Track, cat: string, name: string, args: Record<string, unknown> = {}): OpenSpan {
    const ts = this.now;
    this.now++;
    return {
      end: (more: Record<string, unknown> = {}) => {
        this.push({
          name,
          cat,
          ph: 'X',
          ts,
          dur: this.now - ts,
          pid: track.pid,
          tid: track.tid,
          args: cleanArgs({ ...args, ...more }),
        });
      },
    };
  }

  /** Counter values at the current time (Perfetto draws each as a track). */
  counter(track: Track, name: string, values: Record<string, number>): void {
    this.push({
      name,
      cat: 'counter',
      ph: 'C',
      ts: this.now,
      pid: track.pid,
      tid: track.tid,
      args: { ...values },
    });
  }

  /** Events recorded so far (excluding metadata). */
  get size(): number {
    return this.events.length;
  }

  /** The trace file: metadata first, then events in time order. */
  toFile(otherData: Record<string, string> = {}): TraceFile {
    const events = [...this.events].sort((a, b) => a.ts - b.ts);
    return {
      traceEvents: [...this.meta, ...events],
      displayTimeUnit: 'ns',
      otherData: {
        clock: 'virtual: one tick per recorded event',
        ...otherData,
        dropped: String(this.dropped),
      },
    };
  }
}

/** Checks `v` is trace-event JSON as vsva writes it: problems found (empty when valid). */
export function validateTraceFile(v: unknown): string[] {
  const problems: string[] = [];
  if (v === null || typeof v !== 'object') return ['not an object'];
  const evs = (v as { traceEvents?: unknown }).traceEvents;
  if (!Array.isArray(evs)) return ['traceEvents is not a list'];
  evs.forEach((e, i) => {
    const ev = e as Partial<TraceEvent>;
    if (typeof ev.name !== 'string') problems.push(`traceEvents[${i}].name is not a string`);
    if (!['X', 'i', 'C', 'M', 'B', 'E'].includes(String(ev.ph)))
      problems.push(`traceEvents[${i}].ph is ${ev.ph}`);
    if (typeof ev.ts !== 'number' || !(ev.ts >= 0)) problems.push(`traceEvents[${i}].ts is not a time`);
    if (!Number.isInteger(ev.pid) || !Number.isInteger(ev.tid))
      problems.push(`traceEvents[${i}] lacks pid/tid`);
    if (ev.ph === 'X' && !(typeof ev.dur === 'number' && ev.dur >= 0))
      problems.push(`traceEvents[${i}] is a span without dur`);
  });
  return problems;
}

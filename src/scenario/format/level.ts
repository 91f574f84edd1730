/**
 * The contract every scenario level implements (issue 7 §1): hardware (an SMMUv3 with memory, no
 * VM, like a qtest), uAPI (processes issuing syscalls and ioctls to the host kernel, like a
 * kselftest) and system (VMs, guests and DMA workloads). A level supplies the zod schemas of its
 * `setup` and of its steps, semantic checks the schema cannot express, and a session that runs the
 * steps in order, recording each expectation.
 *
 * Steps share a shape: `do: <action>` selects the action (a discriminated union, so a misspelt
 * action is one clear error), an optional `title`, the action's own fields, and an optional
 * `expect` the action defines. Schemas are strict objects: an unknown key is an error, which is how
 * typos in field names are caught.
 */

import { z } from 'zod';
import type { StepBuilder } from '../report.ts';
import type { Tracer } from './trace.ts';

export type LevelName = 'hardware' | 'uapi' | 'system';

/** A problem found in a scenario: where (a path into the document) and what. */
export interface Problem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** What a session gets from the runner. */
export interface RunContext {
  /** The run's seed (`--seed`, else the scenario's `seed`, else 1). */
  readonly seed: number;
  /** Set when the run records a trace. */
  readonly tracer: Tracer | undefined;
}

/** The end of a session: counters for the report, and invariants (expected 0) when the level has them. */
export interface SessionResult {
  readonly counters: Record<string, number>;
  readonly invariants?: Record<string, number>;
}

/** A running scenario of one level. */
export interface Session<Step> {
  /** Runs one step; records what happened on `b` (notes and expectations). Never throws on bad input. */
  step(step: Step, b: StepBuilder): void;
  /** Tears down and counts. Called once, after the last step (or after a step threw). */
  finish(): SessionResult;
}

/** The common fields of every step. */
export const stepBase = {
  /** Shown in the report instead of the generated title. */
  title: z.string().optional(),
};

export interface Level<Setup, Step extends { readonly do: string }> {
  readonly name: LevelName;
  /** One line for `vsva --help` and the JSON Schema. */
  readonly description: string;
  readonly setup: z.ZodType<Setup>;
  /** A discriminated union on `do`. */
  readonly step: z.ZodType<Step>;
  /** Semantic checks (names defined before use, ioctl names known, fields of the right struct…). */
  check(setup: Setup, steps: readonly Step[]): Problem[];
  /** The title of a step without one. */
  titleOf(step: Step): string;
  /** Builds the setup; a string when it cannot (reported as the first step's failure). */
  start(setup: Setup, ctx: RunContext): Session<Step> | string;
}

/** Any level (the scenario loader and runner hold them in a list). */
// biome-ignore lint/suspicious/noExplicitAny: the registry is heterogeneous; each level is typed where defined
export type AnyLevel = Level<any, any>;

/** Identity with inference, so a level's module reads `export const hardwareLevel = defineLevel({...})`. */
export function defineLevel<Setup, Step extends { readonly do: string }>(
  l: Level<Setup, Step>,
): Level<Setup, Step> {
  return l;
}

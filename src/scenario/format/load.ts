/**
 * Loading a scenario file (issue 7 §1, "Bad input"): YAML 1.2 → the zod schema of its level →
 * the level's semantic checks. Every problem is reported once, as `file:line:column: field:
 * message`, where the position is the YAML node the problem is about (the key, for an unknown key;
 * the enclosing mapping, for a missing one) and the field is its path (`steps[3].expect.pa`). A
 * scenario with any problem never runs.
 *
 * Integers are parsed as bigints so that 64-bit values are not rounded (see values.ts), and
 * duplicate keys are errors.
 */

import { readFileSync } from 'node:fs';
import { type Document, isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import type { AnyLevel, Problem } from './level.ts';
import { normalizeYamlInts } from './values.ts';

export interface ScenarioError {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Path of the field, e.g. `steps[2].expect.pa`; empty for the whole document. */
  readonly field: string;
  readonly message: string;
}

/** `file:line:column: field: message`, the form editors and terminals link. */
export function formatError(e: ScenarioError): string {
  return `${e.file}:${e.line}:${e.column}: ${e.field === '' ? '' : `${e.field}: `}${e.message}`;
}

/** A scenario that passed every check, ready to run. */
export interface Scenario {
  readonly file: string;
  readonly name: string;
  readonly description: string;
  readonly level: AnyLevel;
  readonly seed: number | undefined;
  readonly setup: unknown;
  readonly steps: readonly { readonly do: string; readonly title?: string }[];
  /** The line of each step in the file. */
  readonly stepLines: readonly number[];
}

export type LoadResult = { ok: true; scenario: Scenario } | { ok: false; errors: ScenarioError[] };

/** The document schema for `levels`: a discriminated union on `level`. */
export function scenarioSchema(levels: readonly AnyLevel[]) {
  const docs = levels.map((l) =>
    z
      .strictObject({
        name: z.string().min(1).describe('What the scenario shows, one line'),
        description: z.string().optional().describe('Longer explanation, shown by vsva run'),
        level: z.literal(l.name).describe(l.description),
        seed: z.int().nonnegative().optional().describe('Seed of the PRNG (overridden by --seed); default 1'),
        setup: l.setup,
        steps: z.array(l.step).describe('Run in order; each may carry an expect'),
      })
      .describe(`A ${l.name}-level scenario: ${l.description}`),
  );
  return z.discriminatedUnion('level', docs as unknown as [(typeof docs)[0], ...typeof docs]);
}

/** Renders a path as `a.b[2].c`. */
export function fieldName(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? String(p) : `.${String(p)}`;
  }
  return s;
}

/** The YAML node at `path`, or the deepest existing ancestor; and the key node when asked for a key. */
function nodeAt(doc: Document, path: readonly PropertyKey[], key?: string): Node | undefined {
  let node: unknown = doc.contents;
  // An unknown key's path ends with the key itself: walk to its mapping, then find the key node.
  const walk = key !== undefined ? path.slice(0, -1) : path;
  for (const p of walk) {
    const next = (node as { get?: (k: unknown, keep: boolean) => unknown } | undefined)?.get?.(p, true);
    if (next === undefined || next === null) break;
    node = next;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((it) => isScalar(it.key) && it.key.value === key);
    if (pair !== undefined) return pair.key as Node;
  }
  return node as Node | undefined;
}

function position(lc: LineCounter, node: Node | undefined): { line: number; column: number } {
  const offset = node?.range?.[0] ?? 0;
  const p = lc.linePos(offset);
  return { line: p.line, column: p.col };
}

/** Zod's issues as scenario problems: one per issue, pointing at the right node. */
function zodProblems(err: z.ZodError): (Problem & { key?: string })[] {
  const out: (Problem & { key?: string })[] = [];
  for (const issue of err.issues) {
    const path = issue.path as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) out.push({ path: [...path, k], key: k, message: `unknown field "${k}"` });
      continue;
    }
    if (
      issue.code === 'invalid_union' &&
      'discriminator' in issue &&
      typeof issue.discriminator === 'string'
    ) {
      out.push({ path, message: issue.message });
      continue;
    }
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // Each alternative failed: report the alternative that got furthest (the longest path).
      const best = issue.errors.sort(
        (a, b) => Math.max(0, ...b.map((i) => i.path.length)) - Math.max(0, ...a.map((i) => i.path.length)),
      )[0]!;
      const msgs = issue.errors.flat().map((i) => i.message);
      out.push({
        path: [...path, ...(best[0]?.path ?? [])] as (string | number)[],
        message: msgs.join('; or '),
      });
      continue;
    }
    out.push({ path, message: issue.message });
  }
  return out;
}

/** Parses and checks scenario text. `file` is only used in messages. */
export function loadScenarioText(text: string, file: string, levels: readonly AnyLevel[]): LoadResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lc,
    intAsBigInt: true,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const errors: ScenarioError[] = [];
  for (const e of doc.errors) {
    const p = lc.linePos(e.pos[0]);
    errors.push({
      file,
      line: p.line,
      column: p.col,
      field: '',
      message: `YAML: ${e.message.split('\n')[0]}`,
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const data = normalizeYamlInts(doc.toJS({ maxAliasCount: 1000 }));
  const at = (pr: Problem & { key?: string }): ScenarioError => ({
    file,
    ...position(lc, nodeAt(doc, pr.path, pr.key)),
    field: fieldName(pr.path),
    message: pr.message,
  });
  const parsed = scenarioSchema(levels).safeParse(data);
  if (!parsed.success) return { ok: false, errors: zodProblems(parsed.error).map(at) };
  const sc = parsed.data as {
    name: string;
    description?: string;
    level: string;
    seed?: number;
    setup: unknown;
    steps: { do: string; title?: string }[];
  };
  const level = levels.find((l) => l.name === sc.level)!;
  const semantic = level.check(sc.setup, sc.steps);
  if (semantic.length > 0) return { ok: false, errors: semantic.map(at) };
  return {
    ok: true,
    scenario: {
      file,
      name: sc.name,
      description: sc.description ?? '',
      level,
      seed: sc.seed,
      setup: sc.setup,
      steps: sc.steps,
      stepLines: sc.steps.map((_, i) => position(lc, nodeAt(doc, ['steps', i])).line),
    },
  };
}

/** Reads and checks a scenario file; a file that cannot be read is one error at 1:1. */
export function loadScenarioFile(path: string, levels: readonly AnyLevel[]): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return {
      ok: false,
      errors: [
        { file: path, line: 1, column: 1, field: '', message: `cannot read: ${(e as Error).message}` },
      ],
    };
  }
  return loadScenarioText(text, path, levels);
}

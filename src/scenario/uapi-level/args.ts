/**
 * Turning what a uAPI scenario writes into what a syscall takes: numbers and constant names into
 * integers, flag lists into masks, `{group:dev0}` templates into strings, and struct arguments
 * (objects of fields, nested by name: `config.vendor_data.smmuv3.s1fmt`) into the input of the
 * struct's layout — checking every field name against the layout from `src/uapi`.
 *
 * The same code serves the semantic check (with an environment that only knows which names are
 * defined so far) and the run (with the real fds, mappings and devices), so a scenario that
 * passes `check` resolves the same way when it runs.
 */

import type { Field, Fields, StructLayout } from '../../uapi/layout.ts';
import { isNumericString, parseNumeric } from '../format/values.ts';
import { CONSTANTS } from './ioctls.ts';

export type Path = readonly (string | number)[];
export interface ArgProblem {
  readonly path: Path;
  readonly message: string;
}

/** The names a value may refer to. */
export interface Env {
  /** The number behind an fd name, undefined when no such fd exists yet. */
  fd(name: string): number | undefined;
  /** The user address of a mapping, undefined when unknown. */
  mapping(name: string): number | undefined;
  /** A device's IOMMU group number and PCI name. */
  device(name: string): { group: number; pci: string } | undefined;
}

const U64 = (1n << 64n) - 1n;

/** A scalar: an integer, a numeric string, or a constant name. Negative values wrap (C assignment). */
export function resolveScalar(v: unknown, path: Path, problems: ArgProblem[]): bigint {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'bigint') return v;
  if (typeof v === 'string') {
    if (isNumericString(v)) return parseNumeric(v);
    const c = CONSTANTS.get(v);
    if (c !== undefined) return c;
    problems.push({ path, message: `"${v}" is neither a number nor a known uAPI constant` });
    return 0n;
  }
  problems.push({ path, message: `expected a number or a constant name, got ${JSON.stringify(v)}` });
  return 0n;
}

/** Flags: a scalar, or a list of scalars OR-ed together. */
export function resolveFlags(v: unknown, path: Path, problems: ArgProblem[]): bigint {
  if (Array.isArray(v))
    return v.reduce<bigint>((m, x, i) => m | resolveScalar(x, [...path, i], problems), 0n);
  return resolveScalar(v, path, problems);
}

/** A flags value as a JS number (it must fit 32 bits, as syscall flags do). */
export function flagsNumber(v: unknown, path: Path, problems: ArgProblem[]): number {
  return Number(BigInt.asIntN(32, resolveFlags(v, path, problems)));
}

/** `{group:dev0}` and `{device:dev0}` replaced by the device's group number and PCI name. */
export function expandTemplate(s: string, path: Path, env: Env, problems: ArgProblem[]): string {
  return s.replace(/\{(group|device):([^}]*)\}/g, (_m, kind: string, dev: string) => {
    const d = env.device(dev);
    if (d === undefined) {
      problems.push({ path, message: `no device named "${dev}" in setup.devices` });
      return '';
    }
    return kind === 'group' ? String(d.group) : d.pci;
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A pointer field written `{mapping: name, offset?}`. */
function pointerValue(v: Record<string, unknown>, path: Path, env: Env, problems: ArgProblem[]): bigint {
  for (const k of Object.keys(v))
    if (k !== 'mapping' && k !== 'offset')
      problems.push({ path: [...path, k], message: 'a pointer is {mapping: name, offset?}' });
  if (typeof v.mapping !== 'string') {
    problems.push({ path: [...path, 'mapping'], message: 'expected the name of a mapping (an mmap step)' });
    return 0n;
  }
  const at = env.mapping(v.mapping);
  if (at === undefined) {
    problems.push({
      path: [...path, 'mapping'],
      message: `no mapping named "${v.mapping}" before this step`,
    });
    return 0n;
  }
  const off = v.offset === undefined ? 0n : resolveScalar(v.offset, [...path, 'offset'], problems);
  return BigInt(at) + off;
}

function fieldValue(f: Field, v: unknown, path: Path, env: Env, problems: ArgProblem[]): unknown {
  switch (f.kind) {
    case 'scalar': {
      const b = isObject(v) ? pointerValue(v, path, env, problems) : resolveFlags(v, path, problems);
      return f.scalar === 'u64' || f.scalar === 's64'
        ? BigInt.asUintN(64, b) & U64
        : Number(BigInt.asUintN(32, b));
    }
    case 'array': {
      if (!Array.isArray(v)) {
        problems.push({ path, message: `expected a list of up to ${f.count} values` });
        return [];
      }
      if (v.length > f.count) problems.push({ path, message: `at most ${f.count} elements` });
      const wide = f.element === 'u64' || f.element === 's64';
      return v.slice(0, f.count).map((x, i) => {
        const b = resolveScalar(x, [...path, i], problems);
        return wide ? BigInt.asUintN(64, b) : Number(BigInt.asUintN(32, b));
      });
    }
    case 'bytes': {
      const out = bytesOf(v);
      if (out === undefined) {
        problems.push({ path, message: 'expected hex bytes ("de ad") or a list of byte values' });
        return new Uint8Array(0);
      }
      if (out.length > f.size) problems.push({ path, message: `at most ${f.size} bytes` });
      return out.subarray(0, f.size);
    }
    case 'struct':
      return structValue(f.layout.fields, v, path, env, problems, f.layout.name);
    case 'union': {
      const input = structValue(f.members, v, path, env, problems, 'union');
      if (Object.keys(input).length > 1)
        problems.push({ path, message: `a union holds one member (got ${Object.keys(input).join(', ')})` });
      return input;
    }
  }
}

function bytesOf(v: unknown): Uint8Array | undefined {
  if (typeof v === 'string' && /^([0-9a-fA-F]{2}[\s_]*)*$/.test(v)) {
    const t = v.replace(/[\s_]/g, '');
    return Uint8Array.from({ length: t.length / 2 }, (_, i) =>
      Number.parseInt(t.slice(2 * i, 2 * i + 2), 16),
    );
  }
  if (Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255))
    return Uint8Array.from(v);
  return undefined;
}

/** The layout input of a struct written as an object of fields; unknown field names are problems. */
export function structValue(
  fields: Fields,
  v: unknown,
  path: Path,
  env: Env,
  problems: ArgProblem[],
  structName: string,
): Record<string, unknown> {
  if (!isObject(v)) {
    problems.push({ path, message: `expected the fields of ${structName} as an object` });
    return {};
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const f = fields[k];
    if (f === undefined) {
      problems.push({
        path: [...path, k],
        message: `${structName} has no field "${k}" (fields: ${Object.keys(fields).join(', ')})`,
      });
      continue;
    }
    out[k] = fieldValue(f, x, [...path, k], env, problems);
  }
  return out;
}

/**
 * Decision: every `argsz` the scenario leaves out — of the struct and of nested structs that have
 * one (iommu_pasid_table_config inside SET_PASID_TABLE) — is filled with that struct's size, as a
 * careful C caller writes `.argsz = sizeof(...)`. Scenarios set it to test the checks.
 */
export function fillArgsz(
  layout: StructLayout<Fields>,
  input: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  if (layout.fields.argsz !== undefined && out.argsz === undefined) out.argsz = layout.size;
  for (const [k, f] of Object.entries(layout.fields)) {
    if (f.kind === 'struct' && f.layout.fields.argsz !== undefined) {
      const inner = (out[k] as Record<string, unknown> | undefined) ?? {};
      out[k] = fillArgsz(f.layout, inner);
    }
  }
  return out;
}

/**
 * An expected value with constant names resolved: strings naming a constant become bigints (so
 * `mp_state: KVM_MP_STATE_STOPPED` compares as a number), lists of names become masks only where
 * the caller asks (flag positions), everything else is kept.
 */
export function resolveExpected(v: unknown): unknown {
  if (typeof v === 'string') {
    const c = CONSTANTS.get(v);
    return c ?? v;
  }
  if (Array.isArray(v)) return v.map(resolveExpected);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveExpected(x)]));
  return v;
}

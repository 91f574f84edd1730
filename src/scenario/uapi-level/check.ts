/**
 * Semantic checks of uAPI scenarios, which the schema cannot express (issue 7, "Bad input"):
 * processes, devices, fds, mappings and sleeping calls are named before they are used; ioctl
 * names are in the ioctl table; an ioctl's argument has the form its table entry says, and a
 * struct argument names only fields of that ioctl's struct (nested by name); constant names and
 * errno names exist; `as` on an ioctl is only for ioctls that return an fd. Each problem points
 * at the field it is about.
 */

import { ERRNO_BY_NAME } from '../../uapi/errno.ts';
import type { Fields } from '../../uapi/layout.ts';
import type { Problem } from '../format/level.ts';
import {
  type ArgProblem,
  type Env,
  expandTemplate,
  type Path,
  resolveFlags,
  resolveScalar,
  structValue,
} from './args.ts';
import { IOCTLS, STRUCTS } from './ioctls.ts';
import type { UapiSetup, UapiStep } from './schema.ts';

/** Names defined so far, by kind. */
class Names {
  readonly fds = new Set<string>();
  readonly mappings = new Set<string>();
  readonly calls = new Set<string>();
}

function checkEnv(setup: UapiSetup, names: Names): Env {
  return {
    fd: (n) => (names.fds.has(n) ? 3 : undefined),
    mapping: (n) => (names.mappings.has(n) ? 0x1000 : undefined),
    device: (n) => (setup.devices.some((d) => d.name === n) ? { group: 0, pci: 'x' } : undefined),
  };
}

export function checkUapi(setup: UapiSetup, steps: readonly UapiStep[]): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  setup.devices.forEach((d, i) => {
    if (seen.has(d.name))
      problems.push({ path: ['setup', 'devices', i, 'name'], message: `duplicate device "${d.name}"` });
    seen.add(d.name);
  });
  const names = new Names();
  steps.forEach((st, i) => {
    const at = (...p: (string | number)[]): Path => ['steps', i, ...p];
    const out: ArgProblem[] = [];
    const env = checkEnv(setup, names);
    checkStep(setup, st, names, env, at, out);
    problems.push(...out);
  });
  return problems;
}

function checkStep(
  setup: UapiSetup,
  st: UapiStep,
  names: Names,
  env: Env,
  at: (...p: (string | number)[]) => Path,
  out: ArgProblem[],
): void {
  const needFd = (field: string, n: string): void => {
    if (!names.fds.has(n)) out.push({ path: at(field), message: `no fd named "${n}" before this step` });
  };
  const needProcess = (p: string | undefined, field = 'process'): void => {
    if (p !== undefined && !setup.processes.includes(p))
      out.push({
        path: at(field),
        message: `no process "${p}" in setup.processes (${setup.processes.join(', ')})`,
      });
  };
  const flags = (v: unknown, field: string): void => {
    if (v !== undefined) resolveFlags(v, at(field), out);
  };
  const result = (e: { ret?: unknown; errno?: string | undefined } | undefined): void => {
    if (typeof e?.ret === 'string' && ERRNO_BY_NAME[e.ret] !== undefined)
      out.push({
        path: at('expect', 'ret'),
        message: `write errno: ${e.ret} for a refusal (ret is the return value)`,
      });
    else if (e?.ret !== undefined) resolveScalar(e.ret, at('expect', 'ret'), out);
    if (e?.errno !== undefined && ERRNO_BY_NAME[e.errno] === undefined)
      out.push({ path: at('expect', 'errno'), message: `unknown errno name "${e.errno}"` });
    if (e?.ret !== undefined && e.errno !== undefined)
      out.push({ path: at('expect', 'errno'), message: 'give ret or errno, not both' });
  };
  const fdKeys = (m: Record<string, unknown> | undefined, field: string[]): void => {
    if (m === undefined) return;
    for (const [k, v] of Object.entries(m)) {
      if (!names.fds.has(k))
        out.push({ path: at(...field, k), message: `no fd named "${k}" before this step` });
      resolveFlags(v, at(...field, k), out);
    }
  };
  const value = (v: unknown): void => {
    if (v !== undefined) resolveFlags(v, at('expect', 'value'), out);
  };
  const defineCall = (as: string | undefined): void => {
    if (as !== undefined) names.calls.add(as);
  };

  switch (st.do) {
    case 'open':
      needProcess(st.process);
      expandTemplate(st.path, at('path'), env, out);
      flags(st.flags, 'flags');
      result(st.expect);
      if (st.as !== undefined) names.fds.add(st.as);
      return;
    case 'close':
      needFd('fd', st.fd);
      result(st.expect);
      return;
    case 'ioctl':
      needFd('fd', st.fd);
      checkIoctl(st, env, at, out);
      result(st.expect);
      if (st.as !== undefined) names.fds.add(st.as);
      return;
    case 'eventfd':
      needProcess(st.process);
      flags(st.flags, 'flags');
      result(st.expect);
      if (st.as !== undefined) names.fds.add(st.as);
      return;
    case 'read':
    case 'write':
      needFd('fd', st.fd);
      result(st.expect);
      if (st.do === 'read') value(st.expect?.value);
      if (st.do === 'write' && st.value !== undefined && st.bytes !== undefined)
        out.push({ path: at('bytes'), message: 'give value or bytes, not both' });
      defineCall(st.as);
      return;
    case 'poll':
      needProcess(st.process);
      st.fds.forEach((p, j) => {
        if (!names.fds.has(p.fd))
          out.push({ path: at('fds', j, 'fd'), message: `no fd named "${p.fd}" before this step` });
        resolveFlags(p.events, at('fds', j, 'events'), out);
      });
      result(st.expect);
      fdKeys(st.expect?.revents, ['expect', 'revents']);
      defineCall(st.as);
      return;
    case 'epoll_create':
      needProcess(st.process);
      flags(st.flags, 'flags');
      result(st.expect);
      if (st.as !== undefined) names.fds.add(st.as);
      return;
    case 'epoll_ctl':
      needFd('epfd', st.epfd);
      needFd('fd', st.fd);
      flags(st.events, 'events');
      result(st.expect);
      return;
    case 'epoll_wait':
      needFd('epfd', st.epfd);
      result(st.expect);
      fdKeys(st.expect?.events, ['expect', 'events']);
      defineCall(st.as);
      return;
    case 'wait':
    case 'signal':
      if (!names.calls.has(st.call))
        out.push({
          path: at('call'),
          message: `no call named "${st.call}" (name a read, write, poll or epoll_wait with as:)`,
        });
      if (st.do === 'wait') {
        result(st.expect);
        value(st.expect?.value);
        fdKeys(st.expect?.revents, ['expect', 'revents']);
        fdKeys(st.expect?.events, ['expect', 'events']);
      }
      return;
    case 'advance':
      return;
    case 'pread':
    case 'pwrite':
      needFd('fd', st.fd);
      result(st.expect);
      if (st.do === 'pread') value(st.expect?.value);
      if (st.do === 'pwrite' && st.value !== undefined && st.bytes !== undefined)
        out.push({ path: at('bytes'), message: 'give value or bytes, not both' });
      return;
    case 'ext_caps':
      needFd('fd', st.fd);
      st.expect?.caps?.forEach((c, j) => {
        resolveScalar(c.id, at('expect', 'caps', j, 'id'), out);
        if (c.offset !== undefined) resolveScalar(c.offset, at('expect', 'caps', j, 'offset'), out);
      });
      st.expect?.has?.forEach((c, j) => {
        resolveScalar(c, at('expect', 'has', j), out);
      });
      st.expect?.lacks?.forEach((c, j) => {
        resolveScalar(c, at('expect', 'lacks', j), out);
      });
      return;
    case 'mmap':
      needProcess(st.process);
      if (st.fd !== undefined) needFd('fd', st.fd);
      flags(st.prot, 'prot');
      flags(st.flags, 'flags');
      result(st.expect);
      if (st.as !== undefined) names.mappings.add(st.as);
      return;
    case 'peek':
    case 'poke':
      checkMemoryStep(st, names, env, at, out);
      return;
    case 'exit':
      needProcess(st.process);
      return;
    case 'host':
      if (st.ste !== undefined && env.device(st.ste) === undefined)
        out.push({ path: at('ste'), message: `no device named "${st.ste}" in setup.devices` });
      return;
  }
}

function checkIoctl(
  st: Extract<UapiStep, { do: 'ioctl' }>,
  env: Env,
  at: (...p: (string | number)[]) => Path,
  out: ArgProblem[],
): void {
  const spec = IOCTLS.get(st.request);
  if (spec === undefined) {
    out.push({
      path: at('request'),
      message: `unknown ioctl "${st.request}" (see the uAPI level's ioctl table)`,
    });
    return;
  }
  if (st.as !== undefined && !spec.returnsFd)
    out.push({ path: at('as'), message: `${st.request} does not return a file descriptor` });
  const a = spec.arg;
  const isStruct = a.kind === 'struct';
  if (!isStruct && (st.argsz !== undefined || st.size !== undefined))
    out.push({
      path: at(st.argsz !== undefined ? 'argsz' : 'size'),
      message: `${st.request} takes no struct`,
    });
  if (st.expect?.out !== undefined && !(isStruct && a.out))
    out.push({ path: at('expect', 'out'), message: `${st.request} writes no struct back` });
  if (a.kind === 'struct' && a.out && st.expect?.out !== undefined)
    checkOutFields(a.layout.fields, st.expect.out, at('expect', 'out'), out, a.layout.name);
  if (st.arg === undefined) return;
  switch (a.kind) {
    case 'none':
    case 'value':
    case 'int-pointer':
      if (typeof st.arg === 'string' && env.fd(st.arg) !== undefined) return;
      resolveFlags(st.arg, at('arg'), out);
      return;
    case 'string':
      if (typeof st.arg !== 'string') out.push({ path: at('arg'), message: `${st.request} takes a string` });
      else expandTemplate(st.arg, at('arg'), env, out);
      return;
    case 'struct':
      structValue(a.layout.fields, st.arg, at('arg'), env, out, a.layout.name);
      return;
  }
}

/** Names in `expect.out` must be fields of the struct (values are compared at run time). */
function checkOutFields(fields: Fields, v: unknown, path: Path, out: ArgProblem[], structName: string): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
  for (const [k, x] of Object.entries(v)) {
    const f = fields[k];
    if (f === undefined) {
      out.push({ path: [...path, k], message: `${structName} has no field "${k}"` });
      continue;
    }
    if (f.kind === 'struct') checkOutFields(f.layout.fields, x, [...path, k], out, f.layout.name);
    else if (f.kind === 'union') checkOutFields(f.members, x, [...path, k], out, `${structName}.${k}`);
  }
}

function checkMemoryStep(
  st: Extract<UapiStep, { do: 'peek' | 'poke' }>,
  names: Names,
  env: Env,
  at: (...p: (string | number)[]) => Path,
  out: ArgProblem[],
): void {
  if (!names.mappings.has(st.mapping))
    out.push({ path: at('mapping'), message: `no mapping named "${st.mapping}" before this step` });
  if ((st.struct === undefined) === (st.type === undefined)) {
    out.push({ path: at('struct'), message: 'give exactly one of struct or type' });
    return;
  }
  if (st.struct !== undefined) {
    const layout = STRUCTS.get(st.struct);
    if (layout === undefined) {
      out.push({ path: at('struct'), message: `unknown uAPI struct "${st.struct}"` });
      return;
    }
    if (st.do === 'poke') {
      if (st.value !== undefined) out.push({ path: at('value'), message: 'a struct poke takes fields' });
      if (st.fields !== undefined) structValue(layout.fields, st.fields, at('fields'), env, out, layout.name);
    } else if (st.expect?.fields !== undefined) {
      checkOutFields(layout.fields, st.expect.fields, at('expect', 'fields'), out, layout.name);
    }
  } else if (st.do === 'poke') {
    if (st.fields !== undefined) out.push({ path: at('fields'), message: 'a scalar poke takes value' });
    if (st.value !== undefined) resolveScalar(st.value, at('value'), out);
  } else if (st.expect?.value !== undefined) {
    resolveScalar(st.expect.value, at('expect', 'value'), out);
  }
}

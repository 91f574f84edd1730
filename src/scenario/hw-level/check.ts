/**
 * Semantic checks of hardware-level scenarios, the ones a schema cannot express: every named
 * table, CD table and guest window is defined before use, raw memory accesses at literal addresses
 * fall inside the declared RAM, guest windows and the allocator sit inside RAM without overlapping,
 * structure helpers have what they need (an STE's Config, a CD's table), commands only carry
 * fields their layout has (IHI 0070 chapter 4), and descriptor fields exist at the table's stage.
 */

import { hex } from '../../arch/bits.ts';
import { resolveFeatures } from '../../hw/smmuv3/features.ts';
import type { Problem } from '../format/level.ts';
import { unknownCommandFields } from './commands.ts';
import { defined } from './machine.ts';
import {
  type AddrRef,
  type HwSetup,
  type HwStep,
  PTE_FIELDS_S1,
  PTE_FIELDS_S2,
  registerDef,
} from './schema.ts';

interface Range {
  readonly base: number;
  readonly size: number;
}

const inside = (r: readonly Range[], a: number, len: number): boolean =>
  r.some((m) => a >= m.base && a + len <= m.base + m.size);
const overlaps = (a: Range, b: Range): boolean => a.base < b.base + b.size && b.base < a.base + a.size;

/** What the checker knows about names as it walks the steps in order. */
interface Names {
  readonly guests: Set<string>;
  readonly tables: Map<string, 1 | 2>;
  readonly cdTables: Map<string, number>;
  readonly steCd: Map<number, string>;
}

function setupProblems(s: HwSetup, names: Names): Problem[] {
  const out: Problem[] = [];
  const mem = s.memory;
  mem.forEach((r, i) => {
    if (r.base % 4096 !== 0 || r.size % 4096 !== 0)
      out.push({
        path: ['setup', 'memory', i],
        message: 'RAM regions are page-granular: base and size multiples of 0x1000',
      });
    mem.forEach((o, j) => {
      if (j > i && overlaps(r, o))
        out.push({ path: ['setup', 'memory', j], message: `overlaps memory[${i}]` });
    });
  });
  const alloc = s.allocator ?? mem[0]!;
  if (s.allocator !== undefined && !inside(mem, alloc.base, alloc.size))
    out.push({
      path: ['setup', 'allocator'],
      message: 'the allocator region must lie inside one memory region',
    });
  const f = resolveFeatures(defined(s.smmu.features));
  if (s.bringUp !== 'none' && s.bringUp.streamTable === '2level' && f.ok && !f.features.twoLevelStreamTable)
    out.push({
      path: ['setup', 'bringUp', 'streamTable'],
      message: 'a 2-level stream table needs features.twoLevelStreamTable',
    });
  s.guestRam.forEach((g, i) => {
    if (names.guests.has(g.name))
      out.push({ path: ['setup', 'guestRam', i, 'name'], message: `guestRam "${g.name}" defined twice` });
    names.guests.add(g.name);
    if (!inside(mem, g.pa, g.size))
      out.push({
        path: ['setup', 'guestRam', i, 'pa'],
        message: `[${hex(g.pa)}, +${hex(g.size)}) is not inside memory`,
      });
    if (overlaps({ base: g.pa, size: g.size }, alloc))
      out.push({
        path: ['setup', 'guestRam', i, 'pa'],
        message: 'overlaps the allocator region (helpers would allocate there)',
      });
  });
  s.tables.forEach((t, i) => {
    if (names.tables.has(t.name))
      out.push({ path: ['setup', 'tables', i, 'name'], message: `table "${t.name}" defined twice` });
    names.tables.set(t.name, t.stage);
    if (t.in !== undefined && !names.guests.has(t.in))
      out.push({ path: ['setup', 'tables', i, 'in'], message: `no guestRam "${t.in}"` });
  });
  s.cdTables.forEach((c, i) => {
    if (names.cdTables.has(c.name))
      out.push({ path: ['setup', 'cdTables', i, 'name'], message: `CD table "${c.name}" defined twice` });
    names.cdTables.set(c.name, c.cdMax);
    if (c.in !== undefined && !names.guests.has(c.in))
      out.push({ path: ['setup', 'cdTables', i, 'in'], message: `no guestRam "${c.in}"` });
  });
  return out;
}

function refProblems(ref: AddrRef | undefined, names: Names, path: (string | number)[]): Problem[] {
  if (ref === undefined || typeof ref === 'number') return [];
  const out: Problem[] = [];
  for (const k of ['table', 'pte'] as const) {
    const n = ref[k];
    if (n !== undefined && !names.tables.has(n))
      out.push({
        path: [...path, k],
        message: `no page table "${n}" (declare it in setup.tables or map into it first)`,
      });
  }
  for (const k of ['cdTable', 'cd', 'l1cd'] as const) {
    const n = ref[k];
    if (n !== undefined && !names.cdTables.has(n))
      out.push({ path: [...path, k], message: `no CD table "${n}" in setup.cdTables` });
  }
  if (ref.guest !== undefined && !names.guests.has(ref.guest))
    out.push({ path: [...path, 'guest'], message: `no guestRam "${ref.guest}"` });
  return out;
}

function memoryProblem(s: HwSetup, ref: AddrRef, len: number, path: (string | number)[]): Problem[] {
  if (typeof ref !== 'number' || inside(s.memory, ref, len)) return [];
  return [{ path, message: `[${hex(ref)}, +${hex(len)}) is not inside the declared memory` }];
}

function stepProblems(s: HwSetup, st: HwStep, i: number, names: Names): Problem[] {
  const at = (...p: (string | number)[]): (string | number)[] => ['steps', i, ...p];
  const out: Problem[] = [];
  const table = (name: string, key: string, stage?: 1 | 2): void => {
    const have = names.tables.get(name);
    if (have === undefined)
      out.push({
        path: at(key),
        message: `no page table "${name}" (declare it in setup.tables or map into it first)`,
      });
    else if (stage !== undefined && have !== stage)
      out.push({ path: at(key), message: `"${name}" is a stage-${have} table, expected stage ${stage}` });
  };
  if (st.do === 'mmio_write') {
    // A named 32-bit register cannot take a wider value (the model would silently keep the low half).
    const def = registerDef(st.reg);
    const width = def?.width ?? 32;
    if (st.value >= 2n ** BigInt(width))
      out.push({
        path: at('value'),
        message: `${def?.name ?? 'the register'} is ${width}-bit: expected at most 0x${(2n ** BigInt(width) - 1n).toString(16)}`,
      });
  }
  switch (st.do) {
    case 'write':
      out.push(
        ...refProblems(st.addr, names, at('addr')),
        ...memoryProblem(s, st.addr, st.bytes.length, at('addr')),
      );
      break;
    case 'write64': {
      const n = Array.isArray(st.value) ? st.value.length : 1;
      out.push(...refProblems(st.addr, names, at('addr')), ...memoryProblem(s, st.addr, 8 * n, at('addr')));
      break;
    }
    case 'read':
      out.push(...refProblems(st.addr, names, at('addr')), ...memoryProblem(s, st.addr, st.size, at('addr')));
      break;
    case 'read64':
      out.push(
        ...refProblems(st.addr, names, at('addr')),
        ...memoryProblem(s, st.addr, 8 * st.count, at('addr')),
      );
      break;
    case 'ste':
      if (st.config === undefined && st.raw === undefined)
        out.push({ path: at(), message: 'an STE needs `config` (or `raw`)' });
      if (s.bringUp !== 'none' && st.sid >= 2 ** s.bringUp.sidLog2)
        out.push({
          path: at('sid'),
          message: `StreamID ${st.sid} is beyond the stream table (bringUp.sidLog2 = ${s.bringUp.sidLog2})`,
        });
      if (st.cdTable !== undefined) {
        if (!names.cdTables.has(st.cdTable))
          out.push({ path: at('cdTable'), message: `no CD table "${st.cdTable}" in setup.cdTables` });
        names.steCd.set(st.sid, st.cdTable);
      }
      if (st.s2Table !== undefined) table(st.s2Table, 's2Table', 2);
      out.push(
        ...refProblems(st.s1ContextPtr, names, at('s1ContextPtr')),
        ...refProblems(st.s2Ttb, names, at('s2Ttb')),
      );
      break;
    case 'cd': {
      const cdt = st.cdTable ?? (st.sid !== undefined ? names.steCd.get(st.sid) : undefined);
      if (st.cdTable !== undefined && !names.cdTables.has(st.cdTable))
        out.push({ path: at('cdTable'), message: `no CD table "${st.cdTable}" in setup.cdTables` });
      else if (cdt === undefined)
        out.push({
          path: at(),
          message: 'a CD needs `cdTable`, or a `sid` whose earlier `ste` step named a cdTable',
        });
      else if (st.ssid >= 2 ** (names.cdTables.get(cdt) ?? 0))
        out.push({ path: at('ssid'), message: `CD table "${cdt}" holds 2^${names.cdTables.get(cdt)} CDs` });
      if (st.ttb0 === undefined && st.raw === undefined)
        out.push({ path: at(), message: 'a CD needs `ttb0` (or `raw`)' });
      if (st.ttb0 !== undefined && typeof st.ttb0 !== 'number' && st.ttb0.table !== undefined)
        table(st.ttb0.table, 'ttb0', 1);
      else out.push(...refProblems(st.ttb0, names, at('ttb0')));
      out.push(...refProblems(st.ttb1, names, at('ttb1')));
      break;
    }
    case 'map':
      if (!names.tables.has(st.table)) {
        if (st.stage === undefined)
          out.push({
            path: at('table'),
            message: `no page table "${st.table}": declare it or give \`stage\``,
          });
        else names.tables.set(st.table, st.stage);
      } else if (st.stage !== undefined) table(st.table, 'stage', st.stage);
      out.push(...refProblems(st.pa, names, at('pa')));
      break;
    case 'unmap':
      table(st.table, 'table');
      out.push(...refProblems(st.iova, names, at('iova')));
      break;
    case 'pte': {
      table(st.table, 'table');
      const stage = names.tables.get(st.table);
      const allowed: readonly string[] = stage === 2 ? PTE_FIELDS_S2 : PTE_FIELDS_S1;
      for (const k of Object.keys(st.set ?? {}))
        if (!allowed.includes(k))
          out.push({
            path: at('set', k),
            message: `no descriptor field "${k}" at stage ${stage ?? 1} (${allowed.join(', ')})`,
          });
      break;
    }
    case 'command':
      if (st.op === undefined && st.raw === undefined)
        out.push({ path: at(), message: 'a command needs `op` (or `raw`)' });
      for (const k of unknownCommandFields(st))
        out.push({
          path: at(k),
          message: `${typeof st.op === 'number' ? `opcode ${st.op}` : st.op} has no field "${k}"`,
        });
      break;
    default:
      break;
  }
  return out;
}

/** Every problem of a hardware-level scenario, each with its path into the document. */
export function checkHardware(s: HwSetup, steps: readonly HwStep[]): Problem[] {
  const names: Names = { guests: new Set(), tables: new Map(), cdTables: new Map(), steCd: new Map() };
  const out = setupProblems(s, names);
  steps.forEach((st, i) => {
    out.push(...stepProblems(s, st, i, names));
  });
  return out;
}

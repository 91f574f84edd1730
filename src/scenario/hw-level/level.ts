/**
 * The hardware level of scenarios (issue 7 §1): an SMMUv3 with host RAM, no VM and no host kernel,
 * driven like a QEMU qtest — memory writes and reads, MMIO register accesses, structures written
 * into memory exactly as a driver writes them (STEs, CDs, VMSAv8-64 page tables), device
 * transactions `{sid, ssid, iova, size, access}`, the command queue (written at PROD, PROD rung)
 * and the event queue (drained through PROD/CONS). Each step observes what happened and checks it
 * against its `expect`; the counters in the report are the SMMU's own (`smmu.stats`, the IOTLB's).
 *
 * Decisions: a `write`, `write64`, `map` or `command` step without an `expect` still expects
 * success (the write reached RAM, the map succeeded, CMDQ_CONS.ERR is CERROR_NONE), so a scenario
 * cannot silently run on after a step that did nothing; say `expect: {ok: false}` or
 * `expect: {error: CERROR_ILL}` to expect the refusal.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBigInt, hex, toBigInt } from '../../arch/bits.ts';
import { getField, setField } from '../../arch/fields.ts';
import { CERROR_NAMES } from '../../arch/smmuv3/commands.ts';
import {
  GERROR_FIELDS,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_GERROR,
  SMMU_GERRORN,
  SMMU_REGISTER_BY_NAME,
  SMMU_REGISTER_BY_OFFSET,
  SMMU_STRTAB_BASE,
} from '../../arch/smmuv3/registers.ts';
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  DESC_AF,
  DESC_CONTIG,
  DESC_SH,
  DESC_TYPE,
  DESC_VALID,
  S1_AP,
  S1_ATTRINDX,
  S1_NG,
  S1_PXN,
  S1_UXN,
  S2_MEMATTR,
  S2_S2AP,
  S2_XN,
} from '../../arch/vmsa.ts';
import { writeWords } from '../../hw/smmuv3/rig.ts';
import { cmdSync, encodeCd, encodeSte, type SteParams } from '../../hw/smmuv3/structures.ts';
import { expectMatch, show } from '../format/expect.ts';
import { defineLevel, type RunContext, type Session } from '../format/level.ts';
import { traceSmmu } from '../format/trace-hooks.ts';
import { dumpImages } from '../inspect/index.ts';
import type { StepBuilder } from '../report.ts';
import { checkHardware } from './check.ts';
import { encodeCommand } from './commands.ts';
import { defined, HwMachine, type NamedTable } from './machine.ts';
import {
  describeEvent,
  eventWant,
  observeEvent,
  observeTransaction,
  registerFields,
  smmuCounters,
} from './observe.ts';
import {
  type AddrRef,
  type HwSetup,
  type HwStep,
  hwSetup,
  hwStep,
  registerDef,
  type StepOf,
} from './schema.ts';

const ACCESS = { read: ACCESS_READ, write: ACCESS_WRITE, exec: ACCESS_EXEC } as const;

const PTE_S1 = {
  Valid: DESC_VALID,
  Type: DESC_TYPE,
  AttrIndx: S1_ATTRINDX,
  AP: S1_AP,
  SH: DESC_SH,
  AF: DESC_AF,
  nG: S1_NG,
  Contiguous: DESC_CONTIG,
  PXN: S1_PXN,
  UXN: S1_UXN,
};
const PTE_S2 = {
  Valid: DESC_VALID,
  Type: DESC_TYPE,
  MemAttr: S2_MEMATTR,
  S2AP: S2_S2AP,
  SH: DESC_SH,
  AF: DESC_AF,
  Contiguous: DESC_CONTIG,
  XN: S2_XN,
};

/** Records a failed resolution; returns the number or undefined. */
function resolved(b: StepBuilder, v: number | string, what: string): number | undefined {
  if (typeof v === 'number') return v;
  b.expect(`${what} resolves`, false, v);
  return undefined;
}

/** Runs steps against one machine. */
class HwSession implements Session<HwStep> {
  private readonly m: HwMachine;

  constructor(m: HwMachine) {
    this.m = m;
  }

  step(st: HwStep, b: StepBuilder): void {
    switch (st.do) {
      case 'write':
        return this.write(st, b);
      case 'write64':
        return this.write64(st, b);
      case 'read':
        return this.read(st, b);
      case 'read64':
        return this.read64(st, b);
      case 'mmio_write':
        return this.mmioWrite(st, b);
      case 'mmio_read':
        return this.mmioRead(st, b);
      case 'ste':
        return this.ste(st, b);
      case 'cd':
        return this.cd(st, b);
      case 'map':
        return this.map(st, b);
      case 'unmap':
        return this.unmap(st, b);
      case 'pte':
        return this.pte(st, b);
      case 'transaction':
        return this.transaction(st, b);
      case 'command':
        return this.command(st, b);
      case 'cmdq_recover':
        return this.cmdqRecover(b);
      case 'ack_gerror':
        return this.ackGerror(b);
      case 'events':
        return this.events(st, b);
      case 'dump':
        return this.dump(st, b);
      case 'stats':
        if (st.expect !== undefined) expectMatch(b, 'counters', smmuCounters(this.m.smmu), st.expect);
        return;
    }
  }

  finish() {
    return { counters: smmuCounters(this.m.smmu) };
  }

  /**
   * Writes the memory as raw images and the registers `vsva inspect` needs into `dir`, with
   * inspect-args.txt holding the arguments, so the state can be decoded offline as a dump would be.
   */
  private dump(st: StepOf<'dump'>, b: StepBuilder): void {
    const smmu = this.m.smmu;
    let images: string[];
    try {
      images = dumpImages(this.m.mem, st.dir, 'mem');
    } catch (e) {
      b.expect(`the memory is written to ${st.dir}`, false, (e as Error).message);
      return;
    }
    const reg = (name: string): number => smmu.read32(SMMU_REGISTER_BY_NAME.get(`SMMU_${name}`)!.offset);
    const strtab = smmu.read32(SMMU_STRTAB_BASE) + smmu.read32(SMMU_STRTAB_BASE + 4) * 2 ** 32;
    const args = [
      ...images.map((i) => `--image ${i}`),
      `--reg STRTAB_BASE=${hex(strtab)}`,
      ...DUMPED_REGISTERS.map((n) => `--reg ${n}=${hex(reg(n))}`),
    ];
    const file = join(st.dir, 'inspect-args.txt');
    try {
      writeFileSync(file, `${args.join(' ')}\n`);
    } catch (e) {
      b.expect(`${file} is written`, false, (e as Error).message);
      return;
    }
    b.note(`${images.length} image(s) and ${DUMPED_REGISTERS.length + 1} registers in ${st.dir}`);
    b.note(`decode offline: vsva inspect $(cat ${file}) --sid N [--ssid N] --iova ADDR`);
    b.expect('the dump is written', true, file);
  }

  private pa(b: StepBuilder, ref: AddrRef, what = 'address'): number | undefined {
    return resolved(b, this.m.resolve(ref, 'pa'), what);
  }

  // ---------------------------------------------------------------- memory

  private write(st: StepOf<'write'>, b: StepBuilder): void {
    const a = this.pa(b, st.addr);
    if (a === undefined) return;
    const ok = this.m.mem.write(a, st.bytes);
    b.note(`${st.bytes.length} bytes at ${hex(a)}: ${ok ? 'written' : 'external abort'}`);
    expectMatch(b, 'write reached RAM', { ok }, st.expect ?? { ok: true });
  }

  private write64(st: StepOf<'write64'>, b: StepBuilder): void {
    const a = this.pa(b, st.addr);
    if (a === undefined) return;
    const values = Array.isArray(st.value) ? st.value : [st.value];
    let ok = true;
    values.forEach((v, i) => {
      const [lo, hi] = fromBigInt(v);
      ok = this.m.mem.write64(a + 8 * i, lo, hi) && ok;
    });
    b.note(
      `${values.length} u64 at ${hex(a)}: ${values.map((v) => show(v)).join(' ')}${ok ? '' : ' (external abort)'}`,
    );
    expectMatch(b, 'write reached RAM', { ok }, st.expect ?? { ok: true });
  }

  private read(st: StepOf<'read'>, b: StepBuilder): void {
    const a = this.pa(b, st.addr);
    if (a === undefined) return;
    const got = this.m.mem.read(a, st.size);
    b.note(`${st.size} bytes at ${hex(a)}: ${got === undefined ? 'external abort' : show(got)}`);
    if (st.expect !== undefined)
      expectMatch(b, `bytes at ${hex(a)}`, { ok: got !== undefined, bytes: got }, st.expect);
  }

  private read64(st: StepOf<'read64'>, b: StepBuilder): void {
    const a = this.pa(b, st.addr);
    if (a === undefined) return;
    const values: bigint[] = [];
    let ok = true;
    for (let i = 0; i < st.count; i++) {
      const lo = this.m.mem.read32(a + 8 * i);
      const hi = this.m.mem.read32(a + 8 * i + 4);
      ok = ok && lo >= 0 && hi >= 0;
      values.push(toBigInt(hi, lo));
    }
    b.note(`u64 at ${hex(a)}: ${ok ? values.map((v) => show(v)).join(' ') : 'external abort'}`);
    if (st.expect !== undefined)
      expectMatch(b, `u64 at ${hex(a)}`, { ok, value: values[0], values }, st.expect);
  }

  // ---------------------------------------------------------------- registers

  private register(reg: string | number): { offset: number; name: string; width: 32 | 64 } {
    const def = registerDef(reg);
    if (def !== undefined) return { offset: def.offset, name: def.name, width: def.width };
    return { offset: reg as number, name: hex(reg as number), width: 32 };
  }

  private mmioWrite(st: StepOf<'mmio_write'>, b: StepBuilder): void {
    const r = this.register(st.reg);
    if (r.width === 64) this.m.write64(r.offset, st.value);
    else this.m.smmu.write32(r.offset, Number(st.value & 0xffff_ffffn));
    b.note(`${r.name} := ${show(st.value)}`);
  }

  private mmioRead(st: StepOf<'mmio_read'>, b: StepBuilder): void {
    const r = this.register(st.reg);
    let v: bigint;
    if (r.width === 64) {
      const [lo, hi] = this.m.smmu.read64(r.offset);
      v = toBigInt(hi, lo);
    } else v = BigInt(this.m.smmu.read32(r.offset));
    const def = SMMU_REGISTER_BY_OFFSET.get(r.offset);
    const fields = registerFields(def, v);
    b.note(
      `${r.name} = ${show(v)}${
        Object.keys(fields).length > 0
          ? ` (${Object.entries(fields)
              .map(([k, x]) => `${k}=${show(x)}`)
              .join(' ')})`
          : ''
      }`,
    );
    if (st.expect !== undefined) expectMatch(b, r.name, { value: v, fields }, st.expect);
  }

  // ---------------------------------------------------------------- structures

  private table(b: StepBuilder, name: string): NamedTable | undefined {
    const t = this.m.tables.get(name);
    if (t === undefined) b.expect(`page table ${name} exists`, false, 'not defined');
    return t;
  }

  private ste(st: StepOf<'ste'>, b: StepBuilder): void {
    const m = this.m;
    const addr = resolved(b, m.steAddr(st.sid), `STE of StreamID ${st.sid}`);
    if (addr === undefined) return;
    let w: Uint32Array;
    if (st.raw !== undefined) {
      w = new Uint32Array(16);
      for (let i = 0; i < 8; i++) w.set(fromBigInt(st.raw[i]!), 2 * i);
    } else {
      const p: { -readonly [K in keyof SteParams]: SteParams[K] } = { config: st.config! };
      if (st.cdTable !== undefined) {
        const c = m.cdTables.get(st.cdTable)!;
        p.s1ContextPtr = c.table.ptr;
        p.s1Fmt = c.table.fmt;
        p.s1CdMax = c.table.cdMax;
        m.steCdTable.set(st.sid, st.cdTable);
      }
      if (st.s2Table !== undefined) {
        const t = this.table(b, st.s2Table);
        if (t === undefined) return;
        const g = t.table.geometry;
        Object.assign(p, {
          s2Ttb: t.table.root,
          s2T0sz: 64 - g.iasBits,
          s2Sl0: g.sl0,
          s2Granule: g.granule,
          s2PsBits: g.oasBits,
        });
      }
      if (st.s1ContextPtr !== undefined) {
        const v = resolved(b, m.resolve(st.s1ContextPtr, 'native'), 's1ContextPtr');
        if (v === undefined) return;
        p.s1ContextPtr = v;
      }
      if (st.s2Ttb !== undefined) {
        const v = resolved(b, m.resolve(st.s2Ttb, 'native'), 's2Ttb');
        if (v === undefined) return;
        p.s2Ttb = v;
      }
      Object.assign(
        p,
        defined({
          valid: st.valid,
          s1Fmt: st.s1Fmt,
          s1CdMax: st.s1CdMax,
          s1Dss: st.s1Dss,
          strw: st.strw,
          privCfg: st.privCfg,
          instCfg: st.instCfg,
          s2Vmid: st.vmid,
          s2T0sz: st.s2T0sz,
          s2Sl0: st.s2Sl0,
          s2Granule: st.s2Granule,
          s2PsBits: st.s2PsBits,
          s2Affd: st.s2Affd,
          s2Record: st.s2Record,
        }),
      );
      w = encodeSte(p);
    }
    const ok = writeWords(m.mem, addr, w);
    b.note(
      `STE ${st.sid} at ${hex(addr)}: ${st.raw !== undefined ? 'raw' : String(st.config)}${ok ? '' : ' (external abort)'}`,
    );
    if (!ok) b.expect('STE written', false, 'external abort');
  }

  private cd(st: StepOf<'cd'>, b: StepBuilder): void {
    const m = this.m;
    const name = st.cdTable ?? (st.sid !== undefined ? m.steCdTable.get(st.sid) : undefined);
    const c = name === undefined ? undefined : m.cdTables.get(name);
    if (c === undefined) {
      b.expect(
        'the CD table is known',
        false,
        `no CD table for ${st.sid === undefined ? 'this step' : `StreamID ${st.sid}`}`,
      );
      return;
    }
    let w: Uint32Array | undefined;
    if (st.raw !== undefined) {
      w = new Uint32Array(16);
      for (let i = 0; i < 8; i++) w.set(fromBigInt(st.raw[i]!), 2 * i);
    } else {
      const ref = st.ttb0!;
      const tt = typeof ref !== 'number' && ref.table !== undefined ? m.tables.get(ref.table) : undefined;
      const ttb0 = resolved(b, m.resolve(ref, 'native'), 'ttb0');
      if (ttb0 === undefined) return;
      const ttb1 = st.ttb1 === undefined ? undefined : resolved(b, m.resolve(st.ttb1, 'native'), 'ttb1');
      if (st.ttb1 !== undefined && ttb1 === undefined) return;
      const g = tt?.table.geometry;
      w = encodeCd({
        t0sz: st.t0sz ?? (g !== undefined ? 64 - g.iasBits : 16),
        granule0: st.granule ?? g?.granule ?? 12,
        ttb0,
        ipsBits: st.ips ?? g?.oasBits ?? 48,
        asid: st.asid,
        ...defined({
          ttb1,
          t1sz: st.t1sz,
          epd0: st.epd0,
          valid: st.valid,
          affd: st.affd,
          wxn: st.wxn,
          pan: st.pan,
          tbi0: st.tbi0,
          record: st.record,
          abort: st.abort,
        }),
      });
    }
    const addr = c.table.write(st.ssid, w);
    b.note(
      `CD ${st.ssid} of ${name} at ${hex(addr)}${c.guest !== undefined ? ' (IPA)' : ''}, ASID ${st.asid}`,
    );
  }

  private map(st: StepOf<'map'>, b: StepBuilder): void {
    const m = this.m;
    let t = m.tables.get(st.table);
    if (t === undefined) {
      const r = m.createTable(st.table, {
        stage: st.stage ?? 1,
        granule: 12,
        ias: 48,
        oas: 48,
        nonGlobal: true,
      });
      if (typeof r === 'string') {
        b.expect(`page table ${st.table} created`, false, r);
        return;
      }
      t = r;
      b.note(
        `created stage-${st.stage ?? 1} table ${st.table} (4K granule, 48-bit IAS/OAS) at root ${hex(t.table.root)}`,
      );
    }
    const pa = resolved(b, m.resolve(st.pa, 'native'), 'pa');
    if (pa === undefined) return;
    const prot = {
      read: st.perm.includes('r'),
      write: st.perm.includes('w'),
      exec: st.perm.includes('x'),
      user: st.user,
    };
    const r = t.table.map(st.iova, pa, st.size, prot);
    b.note(
      `${st.table}: ${hex(st.iova)} -> ${hex(pa)} +${hex(st.size)} ${st.perm}${r.ok ? '' : `: ${r.errno} ${r.detail}`}`,
    );
    expectMatch(b, 'map', r.ok ? { ok: true } : { ok: false, errno: r.errno }, st.expect ?? { ok: true });
  }

  private unmap(st: StepOf<'unmap'>, b: StepBuilder): void {
    const t = this.table(b, st.table);
    if (t === undefined) return;
    const iova = resolved(b, this.m.resolve(st.iova, 'native'), 'iova');
    if (iova === undefined) return;
    const n = t.table.unmap(iova, st.size);
    b.note(`${st.table}: unmapped ${hex(n)} bytes at ${hex(iova)}`);
    if (st.expect !== undefined) expectMatch(b, 'unmap', { unmapped: n }, st.expect);
  }

  private pte(st: StepOf<'pte'>, b: StepBuilder): void {
    const t = this.table(b, st.table);
    if (t === undefined) return;
    const d = this.m.descriptor(t, st.iova, st.level);
    if (typeof d === 'string') {
      b.expect('descriptor found', false, d);
      return;
    }
    const fields = t.table.stage === 2 ? PTE_S2 : PTE_S1;
    const w = [d.lo >>> 0, d.hi >>> 0];
    if (st.raw !== undefined) [w[0], w[1]] = fromBigInt(st.raw);
    for (const [k, v] of Object.entries(st.set ?? {})) {
      const f = fields[k as keyof typeof fields];
      if (f !== undefined) setField(w, f, v);
    }
    if (st.raw !== undefined || st.set !== undefined) {
      const mem = t.guest?.view ?? this.m.mem;
      mem.write32(d.addr, w[0]!);
      mem.write32(d.addr + 4, w[1]!);
    }
    const value = toBigInt(w[1]!, w[0]!);
    const decoded: Record<string, number> = {};
    for (const [k, f] of Object.entries(fields)) decoded[k] = getField(w, f);
    b.note(`${st.table} level-${d.level} descriptor for ${hex(st.iova)} at ${hex(d.addr)}: ${show(value)}`);
    if (st.expect !== undefined)
      expectMatch(b, 'descriptor', { level: d.level, value, fields: decoded }, st.expect);
  }

  // ---------------------------------------------------------------- transactions and queues

  private transaction(st: StepOf<'transaction'>, b: StepBuilder): void {
    const smmu = this.m.smmu;
    const walks = smmu.stats.walks;
    const reads = smmu.stats.descReads;
    const r = smmu.transact({
      streamId: st.sid,
      substreamId: st.ssid ?? -1,
      iova: st.iova,
      size: st.size,
      access: ACCESS[st.access],
      privileged: st.privileged,
    });
    const o = observeTransaction(r, smmu.stats.walks - walks, smmu.stats.descReads - reads);
    const result = o.event !== null ? `${o.status}, ${describeEvent(o.event)} (${o.disposition})` : o.status;
    b.note(
      `sid ${st.sid}${st.ssid !== undefined ? ` ssid ${st.ssid}` : ''} ${st.access} ${hex(st.iova)} +${st.size}: ${o.pa !== undefined ? `PA ${hex(o.pa)}, ` : ''}${result}; ${o.walks} walk(s), ${o.descReads} descriptor read(s)`,
    );
    if (r.reason !== '') b.note(`model: ${r.reason}`);
    const e = st.expect;
    if (e === undefined) return;
    const want = defined({
      ...e,
      event: e.event === undefined ? undefined : e.event === null ? null : eventWant(e.event),
    });
    expectMatch(b, 'transaction', o, want);
  }

  private cmdqState(): Record<string, unknown> {
    const s = this.m.smmu;
    const cons = s.read32(SMMU_CMDQ_CONS);
    const active = (s.read32(SMMU_GERROR) ^ s.read32(SMMU_GERRORN)) >>> 0;
    // CMDQ_CONS.ERR is meaningful only while GERROR.CMDQ_ERR is active (§6.3.28); report NONE otherwise.
    const err = (active & 1) !== 0 ? (cons >>> 24) & 0x7f : 0;
    const gerror: Record<string, boolean> = {};
    for (const f of GERROR_FIELDS) gerror[f.name] = ((active >>> f.lsb) & 1) === 1;
    return { cons: cons & 0xf_ffff, prod: s.read32(SMMU_CMDQ_PROD), error: CERROR_NAMES[err] ?? err, gerror };
  }

  private command(st: StepOf<'command'>, b: StepBuilder): void {
    const cmds = [encodeCommand(st)];
    if (st.sync) cmds.push(cmdSync());
    const problem = this.m.submit(cmds);
    if (problem !== undefined) {
      b.expect('commands written', false, problem);
      return;
    }
    const o = this.cmdqState();
    const name = st.op ?? 'raw command';
    b.note(
      `${typeof name === 'number' ? `opcode ${hex(name)}` : name}${st.sync ? ' + CMD_SYNC' : ''}: CONS ${hex(o.cons as number)}, ERR ${String(o.error)}`,
    );
    const want = defined({ ...(st.expect ?? {}) }) as Record<string, unknown>;
    if (want.error === undefined) want.error = 'CERROR_NONE';
    expectMatch(b, 'command queue', o, want);
  }

  /** Recovery from a command error as a driver does it: replace the command at CONS by CMD_SYNC, acknowledge GERROR.CMDQ_ERR. */
  private cmdqRecover(b: StepBuilder): void {
    const s = this.m.smmu;
    const cons = s.read32(SMMU_CMDQ_CONS) & 0xf_ffff;
    const slot = this.m.cmdqSlot(cons);
    writeWords(this.m.mem, slot, cmdSync());
    this.ackGerror(b);
    b.note(
      `replaced the command at ${hex(slot)} with CMD_SYNC; now CONS ${hex((s.read32(SMMU_CMDQ_CONS) & 0xf_ffff) >>> 0)}`,
    );
  }

  private ackGerror(b: StepBuilder): void {
    const s = this.m.smmu;
    const g = s.read32(SMMU_GERROR);
    s.write32(SMMU_GERRORN, g);
    b.note(`GERRORN := GERROR (${hex(g)})`);
  }

  private events(st: StepOf<'events'>, b: StepBuilder): void {
    const evs = this.m.drainEvents().map(observeEvent);
    b.note(evs.length === 0 ? 'event queue empty' : `${evs.length} record(s)`);
    for (const e of evs) b.note(describeEvent(e));
    const e = st.expect;
    if (e === undefined) return;
    if (Array.isArray(e)) expectMatch(b, 'event records', evs, e.map(eventWant));
    else
      expectMatch(
        b,
        'event records',
        { count: evs.length, events: evs },
        defined({ count: e.count, events: e.events?.map(eventWant) }),
      );
  }
}

/** The registers `vsva inspect` uses, as `--reg NAME=VALUE` arguments. */
const DUMPED_REGISTERS = ['IDR0', 'IDR1', 'IDR3', 'IDR5', 'CR0', 'CR1', 'CR2', 'GBPA', 'STRTAB_BASE_CFG'];

function titleOf(st: HwStep): string {
  switch (st.do) {
    case 'transaction':
      return `${st.access} sid ${st.sid}${st.ssid !== undefined ? ` ssid ${st.ssid}` : ''} at ${hex(st.iova)}`;
    case 'command':
      return `command ${st.op ?? 'raw'}${st.sync ? ' + CMD_SYNC' : ''}`;
    case 'mmio_write':
    case 'mmio_read':
      return `${st.do} ${typeof st.reg === 'number' ? hex(st.reg) : st.reg}`;
    case 'ste':
      return `STE ${st.sid}: ${st.raw !== undefined ? 'raw' : String(st.config)}`;
    case 'cd':
      return `CD ${st.ssid}${st.cdTable !== undefined ? ` of ${st.cdTable}` : st.sid !== undefined ? ` of StreamID ${st.sid}` : ''}`;
    case 'map':
      return `map ${st.table} ${hex(st.iova)} +${hex(st.size)}`;
    case 'unmap':
      return `unmap ${st.table} ${typeof st.iova === 'number' ? hex(st.iova) : 'reference'} +${hex(st.size)}`;
    case 'pte':
      return `descriptor of ${st.table} for ${hex(st.iova)}`;
    default:
      return st.do;
  }
}

export const hardwareLevel = defineLevel<HwSetup, HwStep>({
  name: 'hardware',
  description:
    'an SMMUv3 with host memory and no VM, driven through MMIO, memory and transactions (like a QEMU qtest)',
  setup: hwSetup,
  step: hwStep,
  check: checkHardware,
  titleOf,
  start(setup: HwSetup, ctx: RunContext): Session<HwStep> | string {
    let m: HwMachine;
    try {
      m = new HwMachine(setup);
    } catch (e) {
      return `cannot build the hardware: ${(e as Error).message}`;
    }
    if (ctx.tracer !== undefined) traceSmmu(ctx.tracer, m.smmu, 'hardware', 'smmu0');
    return new HwSession(m);
  },
});

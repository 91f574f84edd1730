/**
 * The schema of hardware-level scenarios (issue 7 §1, "Hardware level"): an SMMUv3 with host RAM and
 * no VM, driven the way a QEMU qtest drives a device — MMIO registers, memory, and transactions from
 * a stream. The setup names the SMMU's implementation choices (a partial `SmmuFeatures`, checked
 * field by field with the model's own `resolveFeatures`), the RAM regions, where helpers allocate,
 * optional guest-physical windows (for nested streams whose tables live at IPAs), named page tables
 * and CD tables, and how the SMMU is brought up. Steps are raw memory accesses, register accesses,
 * structure helpers that write STEs/CDs/page tables exactly as a driver would, transactions, the
 * command queue and the event queue, each with an optional `expect`.
 *
 * Names follow IHI 0070: register names as in §6.3 (`CR0` or `SMMU_CR0`), event names as in §7.3
 * (`F_TRANSLATION`), command names as in §4 (`CFGI_STE` or `CMD_CFGI_STE`), record fields by their
 * spec names (`StreamID`, `CLASS`, `InputAddr`…).
 */

import { z } from 'zod';
import { CERROR_NAMES, CMD_NAMES } from '../../arch/smmuv3/commands.ts';
import { EVENT_IDS, EVENT_NAMES } from '../../arch/smmuv3/events.ts';
import {
  type RegDef,
  SMMU_REGISTER_BY_NAME,
  SMMU_REGISTER_BY_OFFSET,
  smmuRegisterName,
} from '../../arch/smmuv3/registers.ts';
import { resolveFeatures, type SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { stepBase } from '../format/level.ts';
import {
  addr,
  anyInt,
  bytes,
  isNumericString,
  parseNumeric,
  u8,
  u16,
  u32,
  u64,
  uint,
} from '../format/values.ts';

// ------------------------------------------------------------------ names

/** An event name or number → its number, or undefined when unknown. */
export function eventId(v: string | number): number | undefined {
  if (typeof v === 'string' && isNumericString(v)) return eventId(Number(parseNumeric(v)));
  if (typeof v === 'number') return EVENT_NAMES[v] !== undefined ? v : undefined;
  return EVENT_IDS[v.toUpperCase()];
}

/** `CFGI_ALL` is `CFGI_STE_RANGE` with Range = 31 (§4.3.6); the table lists it under one opcode. */
export const CFGI_ALL = 'CMD_CFGI_ALL';

/** Command name → opcode (with the CMD_ prefix), `CMD_CFGI_ALL` included. */
export const COMMAND_OPCODES: ReadonlyMap<string, number> = new Map([
  ...Object.entries(CMD_NAMES).map(([op, name]) => [name, Number(op)] as [string, number]),
  [CFGI_ALL, 0x04],
]);

/** A command name (`CFGI_STE`, `CMD_CFGI_STE`) → its canonical `CMD_*` name, or undefined. */
export function commandName(name: string): string | undefined {
  const n = name.toUpperCase();
  const full = n.startsWith('CMD_') ? n : `CMD_${n}`;
  return COMMAND_OPCODES.has(full) ? full : undefined;
}

/** CMDQ_CONS.ERR by name: `CERROR_ILL`, `C_ILL` or `ILL` (§7.1). */
export function cerrorCode(v: string | number): number | undefined {
  if (typeof v === 'number') return v >= 0 && v < 128 ? v : undefined;
  const n = v.toUpperCase().replace(/^C(ERROR)?_/, '');
  const i = CERROR_NAMES.indexOf(`CERROR_${n}`);
  return i >= 0 ? i : undefined;
}

const knownEvent = z
  .union([z.string(), z.int()])
  .refine((v) => eventId(v) !== undefined, {
    message: `expected an event name (${Object.values(EVENT_NAMES).join(', ')}) or number`,
  })
  .transform((v) => EVENT_NAMES[eventId(v)!]!)
  .describe('Event by name (F_TRANSLATION) or number (0x10)');

const registerRef = z
  .union([z.string(), z.int().nonnegative()])
  .refine((v) => typeof v === 'number' || smmuRegisterName(v) !== undefined, {
    message:
      'expected a register name of IHI 0070 §6.3 (e.g. CR0, STRTAB_BASE, GERROR, EVENTQ_PROD) or an offset',
  })
  .transform((v) => (typeof v === 'number' ? v : smmuRegisterName(v)!))
  .describe('Register name (CR0, SMMU_STRTAB_BASE, EVENTQ_PROD…) or offset in the register frame');

/** The table entry of a resolved register reference (a canonical name or an offset). */
export function registerDef(reg: string | number): RegDef | undefined {
  return typeof reg === 'string' ? SMMU_REGISTER_BY_NAME.get(reg) : SMMU_REGISTER_BY_OFFSET.get(reg);
}

// ------------------------------------------------------------------ setup

const granule = z
  .union([z.literal(12), z.literal(14), z.literal(16)])
  .describe('Granule as log2: 12, 14 or 16');

/** Every SmmuFeatures field, optional; the combination is checked by the model's resolveFeatures. */
const features = z
  .strictObject({
    stage1: z.boolean().optional().describe('IDR0.S1P'),
    stage2: z.boolean().optional().describe('IDR0.S2P'),
    sidBits: z.int().optional().describe('IDR1.SIDSIZE, 0..32'),
    ssidBits: z.int().optional().describe('IDR1.SSIDSIZE, 0..20'),
    oasBits: z.int().optional().describe('IDR5.OAS in bits: 32, 36, 40, 42, 44, 48, 52'),
    granules: z.array(granule).optional().describe('IDR5.GRAN4K/16K/64K'),
    asid16: z.boolean().optional(),
    vmid16: z.boolean().optional(),
    twoLevelStreamTable: z.boolean().optional().describe('IDR0.ST_LEVEL'),
    twoLevelCdTable: z.boolean().optional().describe('IDR0.CD2L'),
    rangeInvalidation: z.boolean().optional().describe('IDR3.RIL (v3.2)'),
    smallTables: z.boolean().optional().describe('IDR3.STT'),
    hyp: z.boolean().optional().describe('IDR0.Hyp'),
    msi: z.boolean().optional(),
    sev: z.boolean().optional(),
    termModel: z.union([z.literal(0), z.literal(1)]).optional(),
    cmdqLog2Max: z.int().optional(),
    eventqLog2Max: z.int().optional(),
    iotlbEntries: z.int().optional(),
    iotlbWays: z.int().optional(),
    steCacheEntries: z.int().optional(),
    cdCacheEntries: z.int().optional(),
    reservedBits: z.enum(['illegal', 'ignore']).optional(),
    faultOrder: z.enum(['architecture', 'qemu']).optional(),
    gbpaAbortAtReset: z.boolean().optional(),
  })
  .superRefine((f, ctx) => {
    const r = resolveFeatures(
      Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as Partial<SmmuFeatures>,
    );
    if (!r.ok) for (const m of r.errors) ctx.addIssue({ code: 'custom', message: m });
  })
  .describe('SMMU implementation choices (src/hw/smmuv3/features.ts); the rest take their defaults');

const region = z.strictObject({ base: addr, size: addr.refine((n) => n > 0, 'a region needs a size') });

const bringUp = z
  .strictObject({
    streamTable: z.enum(['linear', '2level']).default('linear'),
    sidLog2: z.int().min(0).max(32).default(8).describe('STRTAB_BASE_CFG.LOG2SIZE'),
    split: z
      .union([z.literal(6), z.literal(8), z.literal(10)])
      .default(8)
      .describe('SPLIT of a 2-level table'),
    cmdqLog2: z.int().min(0).max(19).default(6),
    eventqLog2: z.int().min(0).max(19).default(6),
    enable: z.boolean().default(true).describe('Set SMMUEN after the queues (false: leave it for a step)'),
  })
  .describe('Bring the SMMU up through MMIO the way a driver does (src/hw/smmuv3/rig.ts)');

const guestRam = z
  .strictObject({
    name: z.string().min(1),
    ipa: addr.describe('Guest-physical base'),
    pa: addr.describe('Host-physical base (inside `memory`, outside the allocator region)'),
    size: addr,
  })
  .describe('A guest-physical window: IPA [ipa, +size) backed by host RAM at pa, with its own allocator');

const tableDecl = z.strictObject({
  name: z.string().min(1),
  stage: z.union([z.literal(1), z.literal(2)]),
  granule: granule.default(12),
  ias: z.int().min(25).max(52).default(48).describe('Input size in bits (TxSZ = 64 - ias)'),
  oas: z.int().default(48).describe('Output size in bits (CD.IPS / STE.S2PS)'),
  in: z.string().optional().describe('A guestRam window: the table lives at IPAs (guest-owned stage 1)'),
  nonGlobal: z.boolean().default(true).describe('Stage 1: nG on every leaf (ASID-tagged entries)'),
});

const cdTableDecl = z.strictObject({
  name: z.string().min(1),
  format: z.enum(['linear', '2level-4k', '2level-64k']).default('linear').describe('STE.S1Fmt'),
  cdMax: z.int().min(0).max(20).default(0).describe('STE.S1CDMax: log2 of the number of CDs'),
  in: z.string().optional().describe('A guestRam window: the table lives at IPAs (nested streams)'),
});

export const hwSetup = z.strictObject({
  smmu: z.strictObject({ features: features.default({}) }).default({ features: {} }),
  memory: z.array(region).min(1).describe('Host RAM regions; every other address is an external abort'),
  allocator: region
    .optional()
    .describe('Where bring-up and helpers allocate; default the first memory region'),
  bringUp: z
    .union([z.literal('none'), bringUp])
    .default({ streamTable: 'linear', sidLog2: 8, split: 8, cmdqLog2: 6, eventqLog2: 6, enable: true })
    .describe('`none`: the steps program every register themselves'),
  guestRam: z.array(guestRam).default([]),
  tables: z.array(tableDecl).default([]).describe('Named page tables (also created by the first `map`)'),
  cdTables: z.array(cdTableDecl).default([]),
});
export type HwSetup = z.infer<typeof hwSetup>;
export type BringUp = Exclude<HwSetup['bringUp'], 'none'>;

// ------------------------------------------------------------------ addresses

const REF_KINDS = ['table', 'cdTable', 'ste', 'l1std', 'cd', 'l1cd', 'pte', 'guest'] as const;

/** A symbolic address: a table root, an STE, a CD, a descriptor… plus an offset. */
const refObject = z
  .strictObject({
    table: z.string().optional().describe('Root of a named page table (TTB0 / S2TTB)'),
    cdTable: z.string().optional().describe('Base of a named CD table (S1ContextPtr)'),
    ste: u32.optional().describe('The STE of this StreamID (allocating its L2 table)'),
    l1std: u32.optional().describe('L1 stream table descriptor number'),
    cd: z.string().optional().describe('CD `ssid` of this CD table'),
    l1cd: z.string().optional().describe('L1CD `index` of this CD table'),
    pte: z.string().optional().describe('The descriptor of this page table mapping `iova` (at `level`)'),
    guest: z.string().optional().describe('Host PA of a guestRam window'),
    ssid: u32.optional(),
    index: u32.optional(),
    iova: addr.optional(),
    level: z.int().min(0).max(3).optional(),
    offset: addr.optional(),
  })
  .superRefine((r, ctx) => {
    const kinds = REF_KINDS.filter((k) => r[k] !== undefined);
    if (kinds.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: `an address reference names exactly one of ${REF_KINDS.join(', ')}`,
      });
    if (r.cd !== undefined && r.ssid === undefined)
      ctx.addIssue({ code: 'custom', message: '`cd` needs `ssid`' });
    if (r.l1cd !== undefined && r.index === undefined)
      ctx.addIssue({ code: 'custom', message: '`l1cd` needs `index`' });
    if (r.pte !== undefined && r.iova === undefined)
      ctx.addIssue({ code: 'custom', message: '`pte` needs `iova`' });
  });
export type AddrRef = number | z.infer<typeof refObject>;

export const addrRef = z
  .union([addr, refObject])
  .describe(
    'An address (hex or integer) or a reference: {table}, {cdTable}, {ste}, {l1std}, {cd, ssid}, {l1cd, index}, {pte, iova}, {guest}, each with an optional offset',
  );

// ------------------------------------------------------------------ event expectations

const CLASS_NAMES = ['CD', 'TT', 'IN'] as const;

/** Decoded record fields by their §7.3 names; every one optional. */
const eventFields = z
  .strictObject({
    StreamID: u32.optional(),
    SubstreamID: u32.optional(),
    SSV: z.boolean().optional(),
    RnW: z.boolean().optional(),
    InD: z.boolean().optional(),
    PnU: z.boolean().optional(),
    S2: z.boolean().optional(),
    CLASS: z
      .union([z.enum(CLASS_NAMES), z.int().min(0).max(2)])
      .transform((v) => (typeof v === 'number' ? CLASS_NAMES[v]! : v))
      .optional(),
    TTRnW: z.boolean().optional(),
    InputAddr: u64.optional(),
    IPA: addr.optional(),
    FetchAddr: addr.optional(),
  })
  .describe('Record fields by spec name (IHI 0070 §7.3)');

export const eventExpect = z.strictObject({ id: knownEvent, fields: eventFields.optional() });
export type EventExpect = z.infer<typeof eventExpect>;

// ------------------------------------------------------------------ steps

const write = z.strictObject({
  ...stepBase,
  do: z.literal('write'),
  addr: addrRef,
  bytes: bytes.describe('Bytes: "de ad be ef" or a list'),
  expect: z.strictObject({ ok: z.boolean() }).optional(),
});

const write64 = z.strictObject({
  ...stepBase,
  do: z.literal('write64'),
  addr: addrRef,
  value: z
    .union([u64, z.array(u64).min(1)])
    .describe('A 64-bit word or a list written at consecutive addresses'),
  expect: z.strictObject({ ok: z.boolean() }).optional(),
});

const read = z.strictObject({
  ...stepBase,
  do: z.literal('read'),
  addr: addrRef,
  size: uint(16).default(8),
  expect: z.strictObject({ bytes: bytes.optional(), ok: z.boolean().optional() }).optional(),
});

const read64 = z.strictObject({
  ...stepBase,
  do: z.literal('read64'),
  addr: addrRef,
  count: z.int().min(1).max(4096).default(1),
  expect: z
    .strictObject({
      value: anyInt.optional(),
      values: z.array(anyInt).optional(),
      ok: z.boolean().optional(),
    })
    .optional(),
});

const regExpect = z.strictObject({
  value: anyInt.optional(),
  fields: z.record(z.string(), anyInt).optional().describe('Register fields by name (§6.3)'),
});

const mmioWrite = z.strictObject({
  ...stepBase,
  do: z.literal('mmio_write'),
  reg: registerRef,
  value: u64.describe('32- or 64-bit value (width from the register table)'),
});

const mmioRead = z.strictObject({
  ...stepBase,
  do: z.literal('mmio_read'),
  reg: registerRef,
  expect: regExpect.optional(),
});

const steConfig = z.union([z.enum(['abort', 'bypass', 's1', 's2', 'nested']), z.int().min(0).max(7)]);
const s1Dss = z
  .union([z.enum(['terminate', 'bypass', 'ssid0']), z.int().min(0).max(3)])
  .transform((v) => (typeof v === 'number' ? v : ['terminate', 'bypass', 'ssid0'].indexOf(v)));

const ste = z.strictObject({
  ...stepBase,
  do: z.literal('ste'),
  sid: u32,
  config: steConfig.optional().describe('STE.Config (required unless raw)'),
  valid: z.boolean().optional(),
  cdTable: z.string().optional().describe('Fills S1ContextPtr, S1Fmt and S1CDMax from a named CD table'),
  s1ContextPtr: addrRef.optional(),
  s1Fmt: z.int().min(0).max(3).optional(),
  s1CdMax: z.int().min(0).max(31).optional(),
  s1Dss: s1Dss.optional(),
  strw: z.int().min(0).max(3).optional(),
  privCfg: z.int().min(0).max(3).optional(),
  instCfg: z.int().min(0).max(3).optional(),
  vmid: u16.optional().describe('S2VMID'),
  s2Table: z
    .string()
    .optional()
    .describe('Fills S2TTB, S2T0SZ, S2SL0, S2TG and S2PS from a named stage-2 table'),
  s2Ttb: addrRef.optional(),
  s2T0sz: z.int().min(0).max(63).optional(),
  s2Sl0: z.int().min(0).max(3).optional(),
  s2Granule: granule.optional(),
  s2PsBits: z.int().optional(),
  s2Affd: z.boolean().optional(),
  s2Record: z.boolean().optional().describe('S2R (default true)'),
  raw: z.array(u64).length(8).optional().describe('The eight dwords, written as they are'),
});

const cd = z.strictObject({
  ...stepBase,
  do: z.literal('cd'),
  sid: u32.optional().describe('Use the CD table of the last `ste` step of this StreamID'),
  cdTable: z.string().optional(),
  ssid: u32.default(0).describe('CD number in the table (SubstreamID)'),
  asid: u16.default(0),
  ttb0: addrRef.optional().describe('TTB0: {table: name} also sets T0SZ, TG0 and IPS from that table'),
  t0sz: z.int().min(0).max(63).optional(),
  granule: granule.optional(),
  ips: z.int().optional().describe('Output size in bits (CD.IPS)'),
  epd0: z.boolean().optional(),
  ttb1: addrRef.optional(),
  t1sz: z.int().min(0).max(63).optional(),
  valid: z.boolean().optional(),
  affd: z.boolean().optional(),
  wxn: z.boolean().optional(),
  pan: z.boolean().optional(),
  tbi0: z.boolean().optional(),
  record: z.boolean().optional().describe('CD.R (default true)'),
  abort: z.boolean().optional().describe('CD.A (default true; false = RAZ/WI on fault)'),
  raw: z.array(u64).length(8).optional(),
});

const perm = z
  .string()
  .regex(/^r?w?x?$/, { message: 'expected permissions like "r", "rw", "rx", "rwx"' })
  .refine((s) => s.includes('r') || s.includes('w'), 'a mapping needs read or write');

const map = z.strictObject({
  ...stepBase,
  do: z.literal('map'),
  table: z.string(),
  stage: z
    .union([z.literal(1), z.literal(2)])
    .optional()
    .describe('Creates the table on first use'),
  iova: addr,
  pa: addrRef,
  size: addr,
  perm: perm.default('rw'),
  user: z.boolean().default(true).describe('Stage 1: AP[1], unprivileged access (Linux always sets it)'),
  expect: z.strictObject({ ok: z.boolean().optional(), errno: z.string().optional() }).optional(),
});

const unmap = z.strictObject({
  ...stepBase,
  do: z.literal('unmap'),
  table: z.string(),
  iova: addrRef.describe('Input address; a reference gives its native address (an IPA for guest structures)'),
  size: addr,
  expect: z.strictObject({ unmapped: addr.optional() }).optional(),
});

/** Descriptor fields a `pte` step may change, per stage (Arm ARM D8.3). */
export const PTE_FIELDS_S1 = [
  'Valid',
  'Type',
  'AttrIndx',
  'AP',
  'SH',
  'AF',
  'nG',
  'Contiguous',
  'PXN',
  'UXN',
] as const;
export const PTE_FIELDS_S2 = ['Valid', 'Type', 'MemAttr', 'S2AP', 'SH', 'AF', 'Contiguous', 'XN'] as const;

const pte = z.strictObject({
  ...stepBase,
  do: z.literal('pte'),
  table: z.string(),
  iova: addr,
  level: z
    .int()
    .min(0)
    .max(3)
    .optional()
    .describe('Default: the leaf (or the invalid entry the walk stops at)'),
  set: z.record(z.string(), u32).optional().describe('Descriptor fields by name, e.g. {AF: 0}'),
  raw: u64.optional().describe('Replace the whole descriptor'),
  expect: z
    .strictObject({
      level: z.int().optional(),
      value: anyInt.optional(),
      fields: z.record(z.string(), anyInt).optional(),
    })
    .optional(),
});

const access = z.enum(['read', 'write', 'exec']);

const segment = z.strictObject({ iova: addr.optional(), pa: addr.optional(), len: addr.optional() });

const transaction = z.strictObject({
  ...stepBase,
  do: z.literal('transaction'),
  sid: u32,
  ssid: u32.optional().describe('SubstreamID (PASID); absent = no SubstreamID'),
  iova: addr,
  size: addr.default(4),
  access: access.default('read'),
  privileged: z.boolean().default(false),
  expect: z
    .strictObject({
      pa: addr.optional().describe('PA of the first byte'),
      status: z.enum(['ok', 'abort', 'raz/wi']).optional(),
      fault: z.boolean().optional(),
      event: z.union([eventExpect, z.null()]).optional().describe('The event raised, or null for none'),
      disposition: z
        .enum(['none', 'written', 'suppressed', 'overflow', 'queue-disabled', 'queue-error', 'write-abort'])
        .optional(),
      segments: z.array(segment).optional(),
      walks: z.int().optional().describe('Table walks this transaction caused'),
      descReads: z
        .int()
        .optional()
        .describe('Descriptor reads this transaction caused (24 for a cold 4x4 nested walk)'),
    })
    .optional(),
});

const cmdFields = {
  sid: u32.optional().describe('StreamID'),
  ssid: uint(20).optional().describe('SubstreamID (sets SSV where the command has it)'),
  leaf: z.boolean().optional(),
  range: u8.optional(),
  vmid: u16.optional(),
  asid: u16.optional(),
  addr: addr.optional().describe('Address (VA or IPA) of a by-address TLBI'),
  num: u8.optional(),
  scale: u8.optional(),
  ttl: u8.optional(),
  tg: u8.optional().describe('TG encoding (1 4K, 2 16K, 3 64K)'),
  cs: z
    .union([z.enum(['none', 'irq', 'sev']), z.int().min(0).max(3)])
    .optional()
    .describe('CMD_SYNC completion signal'),
  msiAddr: addr.optional(),
  msiData: u32.optional(),
};
export type CommandFieldKey = keyof typeof cmdFields;
export const COMMAND_FIELD_KEYS = Object.keys(cmdFields) as CommandFieldKey[];

const opRef = z
  .union([u8, z.string()])
  .refine((v) => typeof v === 'number' || commandName(v) !== undefined, {
    message:
      'expected a command name of IHI 0070 §4 (CFGI_STE, CFGI_ALL, TLBI_NH_VA, CMD_SYNC…) or an opcode',
  })
  .transform((v) => (typeof v === 'number' ? v : commandName(v)!));

const cerror = z
  .union([z.string(), z.int()])
  .refine((v) => cerrorCode(v) !== undefined, {
    message: `expected one of ${CERROR_NAMES.join(', ')} (or C_ILL…)`,
  })
  .transform((v) => CERROR_NAMES[cerrorCode(v)!] ?? cerrorCode(v)!);

const command = z.strictObject({
  ...stepBase,
  do: z.literal('command'),
  op: opRef.optional().describe('Command by name or opcode (required unless raw)'),
  ...cmdFields,
  raw: z.array(u64).length(2).optional().describe('The two dwords, written as they are'),
  sync: z.boolean().default(false).describe('Follow with a CMD_SYNC in the same PROD update'),
  expect: z
    .strictObject({
      error: cerror.optional().describe('CMDQ_CONS.ERR'),
      cons: z.int().optional().describe('CMDQ_CONS.RD (index and wrap)'),
      prod: z.int().optional(),
      gerror: z
        .record(z.string(), z.boolean())
        .optional()
        .describe('Active GERROR bits by name, e.g. {CMDQ_ERR: true}'),
    })
    .optional(),
});

const cmdqRecover = z.strictObject({
  ...stepBase,
  do: z.literal('cmdq_recover'),
});

const ackGerror = z.strictObject({ ...stepBase, do: z.literal('ack_gerror') });

const events = z.strictObject({
  ...stepBase,
  do: z.literal('events'),
  expect: z
    .union([
      z.array(eventExpect),
      z.strictObject({ count: z.int().nonnegative().optional(), events: z.array(eventExpect).optional() }),
    ])
    .optional()
    .describe('The records drained, in order, or {count}'),
});

const dump = z.strictObject({
  ...stepBase,
  do: z.literal('dump'),
  dir: z
    .string()
    .min(1)
    .describe('Directory (relative to the working directory) for the memory images and inspect-args.txt'),
});

const stats = z.strictObject({
  ...stepBase,
  do: z.literal('stats'),
  expect: z.record(z.string(), anyInt).optional().describe('SMMU counters by name (smmu.stats, iotlbHits…)'),
});

export const hwStep = z.discriminatedUnion('do', [
  write,
  write64,
  read,
  read64,
  mmioWrite,
  mmioRead,
  ste,
  cd,
  map,
  unmap,
  pte,
  transaction,
  command,
  cmdqRecover,
  ackGerror,
  events,
  dump,
  stats,
]);
export type HwStep = z.infer<typeof hwStep>;
export type StepOf<K extends HwStep['do']> = Extract<HwStep, { do: K }>;

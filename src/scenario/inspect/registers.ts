/**
 * SMMU register values for `vsva inspect` (IHI 0070 §6.3): parsing "NAME=VALUE" specs, decoding
 * each register with the field tables of src/arch/smmuv3/registers.ts, and deriving what an
 * offline decode needs from them: the implementation's features (from IDR0/IDR1/IDR3/IDR5, or the
 * model's defaults from src/hw/smmuv3/features.ts when they are not given) and the translation
 * state (SMMUEN, GBPA.ABORT, STRTAB_BASE/CFG, CR2.E2H/RECINVSID) the reference model takes.
 *
 * Decisions:
 * - Names are accepted with or without the `SMMU_` prefix, in any case.
 * - CR0 not given: SMMUEN is assumed 1 (whoever inspects the tables believes they are live).
 * - GBPA / CR2 not given: 0 (GBPA.ABORT = 0, E2H = 0, RECINVSID = 0).
 * - Features the ID registers do not carry (`reservedBits`, `faultOrder`, cache sizes) keep the
 *   model's defaults.
 */

import { hex } from '../../arch/bits.ts';
import {
  type RegField,
  regField,
  SMMU_REGISTER_BY_NAME,
  SMMU_REGISTERS,
  smmuRegisterName,
} from '../../arch/smmuv3/registers.ts';
import { type Granule, psBits } from '../../arch/vmsa.ts';
import { DEFAULT_FEATURES, resolveFeatures, type SmmuFeatures } from '../../hw/smmuv3/features.ts';
import type { TranslationRegisters } from '../../hw/smmuv3/reference.ts';
import { type Parsed, parseUint } from './images.ts';

/** Register values by name ("STRTAB_BASE" or "SMMU_STRTAB_BASE"); 64-bit ones may be bigints. */
export type RegisterValues = Readonly<Record<string, number | bigint>>;

/** Canonical register name ("SMMU_STRTAB_BASE") for a user's spelling, or undefined. */
export function canonicalRegisterName(name: string): string | undefined {
  return smmuRegisterName(name.trim());
}

/** "STRTAB_BASE=0x..." → {name: 'SMMU_STRTAB_BASE', value}. */
export function parseRegisterSpec(spec: string): Parsed<{ name: string; value: bigint }> {
  const eq = spec.indexOf('=');
  if (eq <= 0)
    return { ok: false, error: `register "${spec}": expected NAME=VALUE, e.g. STRTAB_BASE=0x40000000` };
  const rawName = spec.slice(0, eq);
  const name = canonicalRegisterName(rawName);
  if (name === undefined) {
    const known = SMMU_REGISTERS.map((r) => r.name.slice(5)).join(', ');
    return { ok: false, error: `register "${rawName.trim()}" is not an SMMU register (known: ${known})` };
  }
  const text = spec.slice(eq + 1);
  const value = parseUint(text);
  if (value === undefined) {
    return { ok: false, error: `register ${name}: "${text}" is not a number (use hex like 0x1f)` };
  }
  const width = SMMU_REGISTER_BY_NAME.get(name)!.width;
  if (value >= 1n << BigInt(width)) {
    return { ok: false, error: `register ${name}: ${text} does not fit its ${width} bits` };
  }
  return { ok: true, value: { name, value } };
}

/** Several "NAME=VALUE" specs → register values; every bad spec is reported, one message each. */
export function registersFromSpecs(specs: readonly string[]): Parsed<Record<string, bigint>> {
  const out: Record<string, bigint> = {};
  const errors: string[] = [];
  for (const s of specs) {
    const p = parseRegisterSpec(s);
    if (p.ok) out[p.value.name] = p.value.value;
    else errors.push(p.error);
  }
  return errors.length > 0 ? { ok: false, error: errors.join('\n') } : { ok: true, value: out };
}

/** A register as the report shows it. */
export interface RegisterReport {
  readonly name: string;
  readonly value: string;
  readonly fields: Readonly<Record<string, number>>;
}

/** Register values normalised to canonical names and bigint, with problems for bad entries. */
export function normaliseRegisters(values: RegisterValues, problems: string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const [k, v] of Object.entries(values)) {
    const name = canonicalRegisterName(k);
    if (name === undefined) {
      problems.push(`register "${k}" is not an SMMU register`);
      continue;
    }
    const big = typeof v === 'bigint' ? v : Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
    const width = SMMU_REGISTER_BY_NAME.get(name)!.width;
    if (big === undefined || big < 0n || big >= 1n << BigInt(width)) {
      problems.push(`register ${name}: ${String(v)} is not a ${width}-bit unsigned value`);
      continue;
    }
    out.set(name, big);
  }
  return out;
}

/** Field value of a register (fields of 64-bit registers may sit in the high word). */
function fieldOf(value: bigint, f: RegField): number {
  if (f.lsb < 32 && f.lsb + f.width <= 32) return regField(Number(value & 0xffff_ffffn), f);
  return Number((value >> BigInt(f.lsb)) & ((1n << BigInt(f.width)) - 1n));
}

export function describeRegisters(regs: ReadonlyMap<string, bigint>): RegisterReport[] {
  return SMMU_REGISTERS.filter((d) => regs.has(d.name)).map((d) => {
    const v = regs.get(d.name)!;
    const fields: Record<string, number> = {};
    for (const f of d.fields) fields[f.name] = fieldOf(v, f);
    return { name: d.name, value: `0x${v.toString(16)}`, fields };
  });
}

const field32 = (regs: ReadonlyMap<string, bigint>, reg: string, name: string): number | undefined => {
  const v = regs.get(reg);
  if (v === undefined) return undefined;
  const f = SMMU_REGISTER_BY_NAME.get(reg)!.fields.find((x) => x.name === name)!;
  return fieldOf(v, f);
};

/** The implementation's features from whichever ID registers are given; notes what was assumed. */
export function featuresFromIdrs(
  regs: ReadonlyMap<string, bigint>,
  notes: string[],
  problems: string[],
): SmmuFeatures {
  const partial: { -readonly [K in keyof SmmuFeatures]?: SmmuFeatures[K] } = {};
  const g = (reg: string, name: string): number => field32(regs, reg, name) ?? 0;
  if (regs.has('SMMU_IDR0')) {
    partial.stage2 = g('SMMU_IDR0', 'S2P') === 1;
    partial.stage1 = g('SMMU_IDR0', 'S1P') === 1;
    partial.hyp = g('SMMU_IDR0', 'Hyp') === 1;
    partial.asid16 = g('SMMU_IDR0', 'ASID16') === 1;
    partial.vmid16 = g('SMMU_IDR0', 'VMID16') === 1;
    partial.twoLevelCdTable = g('SMMU_IDR0', 'CD2L') === 1;
    partial.twoLevelStreamTable = g('SMMU_IDR0', 'ST_LEVEL') === 1;
    partial.msi = g('SMMU_IDR0', 'MSI') === 1;
    partial.sev = g('SMMU_IDR0', 'SEV') === 1;
    partial.termModel = g('SMMU_IDR0', 'TERM_MODEL') === 1 ? 1 : 0;
  }
  if (regs.has('SMMU_IDR1')) {
    partial.sidBits = g('SMMU_IDR1', 'SIDSIZE');
    partial.ssidBits = g('SMMU_IDR1', 'SSIDSIZE');
    partial.eventqLog2Max = g('SMMU_IDR1', 'EVENTQS');
    partial.cmdqLog2Max = g('SMMU_IDR1', 'CMDQS');
  }
  if (regs.has('SMMU_IDR3')) {
    partial.smallTables = g('SMMU_IDR3', 'STT') === 1;
    partial.rangeInvalidation = g('SMMU_IDR3', 'RIL') === 1;
  }
  if (regs.has('SMMU_IDR5')) {
    const oas = psBits(g('SMMU_IDR5', 'OAS'));
    // Decision: a reserved OAS encoding reads as 52 bits (the largest), and is reported.
    if (oas < 0) problems.push(`SMMU_IDR5.OAS = ${g('SMMU_IDR5', 'OAS')} is reserved; assuming 52 bits`);
    partial.oasBits = oas < 0 ? 52 : oas;
    const granules: Granule[] = [];
    if (g('SMMU_IDR5', 'GRAN4K') === 1) granules.push(12);
    if (g('SMMU_IDR5', 'GRAN16K') === 1) granules.push(14);
    if (g('SMMU_IDR5', 'GRAN64K') === 1) granules.push(16);
    partial.granules = granules;
  }
  const missing = ['SMMU_IDR0', 'SMMU_IDR1', 'SMMU_IDR3', 'SMMU_IDR5'].filter((r) => !regs.has(r));
  if (missing.length > 0) {
    notes.push(
      `${missing.map((m) => m.slice(5)).join(', ')} not given: assuming the model's default features for their fields (src/hw/smmuv3/features.ts)`,
    );
  }
  const r = resolveFeatures(partial);
  if (!r.ok) {
    for (const e of r.errors) problems.push(`ID registers describe an inconsistent SMMU: ${e}`);
    return { ...DEFAULT_FEATURES, ...partial };
  }
  return r.features;
}

/** What the reference model needs from the registers, with the stream table base masked to OAS. */
export function translationRegisters(
  regs: ReadonlyMap<string, bigint>,
  f: SmmuFeatures,
  notes: string[],
): TranslationRegisters {
  const cr0 = regs.get('SMMU_CR0');
  if (cr0 === undefined) notes.push('CR0 not given: assuming SMMUEN = 1');
  const gbpa = regs.get('SMMU_GBPA') ?? 0n;
  const cr2 = regs.get('SMMU_CR2') ?? 0n;
  const base = regs.get('SMMU_STRTAB_BASE') ?? 0n;
  // STRTAB_BASE.ADDR is bits [51:6]; bits at or above OAS are dropped as the device does.
  let addr = Number(base & 0x000f_ffff_ffff_ffc0n);
  if (addr >= 2 ** f.oasBits) {
    notes.push(
      `STRTAB_BASE.ADDR ${hex(addr)} is beyond the ${f.oasBits}-bit OAS: its upper bits are ignored`,
    );
    addr %= 2 ** f.oasBits;
  }
  return {
    smmuen: cr0 === undefined ? true : (cr0 & 1n) === 1n,
    gbpaAbort: ((gbpa >> 20n) & 1n) === 1n,
    strtabBase: addr,
    strtabCfg: Number((regs.get('SMMU_STRTAB_BASE_CFG') ?? 0n) & 0xffff_ffffn),
    e2h: (cr2 & 1n) === 1n,
    recinvsid: (cr2 & 2n) === 2n,
  };
}

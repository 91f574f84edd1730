/**
 * Command-queue entries from scenario steps (IHI 0070 chapter 4): a command by name with its
 * fields by short name (`sid`, `ssid`, `leaf`, `vmid`, `asid`, `addr`…), encoded through the same
 * field tables the SMMU decodes with (`CMD_LAYOUTS` in src/arch/smmuv3/commands.ts), so a field
 * the command does not have is a load-time error rather than a silently ignored key.
 *
 * Decision: `CFGI_ALL` is encoded as CFGI_STE_RANGE with Range = 31 (§4.3.6), and a `ssid` sets
 * SSV where the command's layout has it.
 */

import { fromBigInt } from '../../arch/bits.ts';
import { type Field, setField } from '../../arch/fields.ts';
import { CMD_0_OP, CMD_0_SSV, CMD_1_RANGE, CMD_LAYOUTS } from '../../arch/smmuv3/commands.ts';
import {
  CFGI_ALL,
  COMMAND_FIELD_KEYS,
  COMMAND_OPCODES,
  type CommandFieldKey,
  type StepOf,
} from './schema.ts';

/** Short step key → the spec field name in CMD_LAYOUTS. */
const SPEC_NAME: Record<CommandFieldKey, string> = {
  sid: 'StreamID',
  ssid: 'SubstreamID',
  leaf: 'Leaf',
  range: 'Range',
  vmid: 'VMID',
  asid: 'ASID',
  addr: 'Address',
  num: 'NUM',
  scale: 'SCALE',
  ttl: 'TTL',
  tg: 'TG',
  cs: 'CS',
  msiAddr: 'MSIAddr',
  msiData: 'MSIData',
};

const CS_CODES = { none: 0, irq: 1, sev: 2 } as const;

/** The opcode of a command step's `op` (a canonical name or a number). */
export function opcodeOf(op: string | number): number {
  return typeof op === 'number' ? op : COMMAND_OPCODES.get(op)!;
}

/** The layout field for a short key in command `op`, or undefined when the command has none. */
export function commandField(op: string | number, key: CommandFieldKey): Field | undefined {
  const layout = CMD_LAYOUTS[opcodeOf(op)];
  return layout?.find((f) => f.name === SPEC_NAME[key]);
}

/** The keys of a command step that its command does not have (for the semantic check). */
export function unknownCommandFields(st: StepOf<'command'>): CommandFieldKey[] {
  if (st.op === undefined) return [];
  if (CMD_LAYOUTS[opcodeOf(st.op)] === undefined)
    return COMMAND_FIELD_KEYS.filter((k) => st[k] !== undefined);
  return COMMAND_FIELD_KEYS.filter((k) => st[k] !== undefined && commandField(st.op!, k) === undefined);
}

/** Encodes a command step into its 16 bytes (4 words). */
export function encodeCommand(st: StepOf<'command'>): Uint32Array {
  const w = new Uint32Array(4);
  if (st.raw !== undefined) {
    const [a, b] = fromBigInt(st.raw[0]!);
    const [c, d] = fromBigInt(st.raw[1]!);
    w.set([a, b, c, d]);
    return w;
  }
  const op = st.op!;
  setField(w, CMD_0_OP, opcodeOf(op));
  if (op === CFGI_ALL) setField(w, CMD_1_RANGE, 31);
  for (const key of COMMAND_FIELD_KEYS) {
    const v = st[key];
    if (v === undefined) continue;
    const f = commandField(op, key);
    if (f === undefined) continue;
    const n =
      typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'string' ? CS_CODES[v as keyof typeof CS_CODES] : v;
    setField(w, f, n);
    if (key === 'ssid' && CMD_LAYOUTS[opcodeOf(op)]?.some((x) => x.name === 'SSV')) setField(w, CMD_0_SSV, 1);
  }
  return w;
}

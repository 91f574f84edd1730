/**
 * Naming the table reads of a VMSAv8-64 walk (Arm ARM D8.2-D8.3; IHI 0070 §3.4 for nesting): the
 * reference walker (src/hw/vmsa/walk-ref.ts) does the walk and decides its outcome; this file only
 * *labels* the 64-bit reads it made, in order, with stage, level, table base, index, descriptor
 * address (and the IPA of a stage-1 descriptor under nesting, whose stage-2 walk comes first), the
 * descriptor value and what it is (table, block, page, invalid, reserved, absent).
 *
 * The labeller follows the walk's geometry (the regimes the STE and CD decoded to) and matches each
 * expected descriptor address against the next recorded read; when the walk stopped (a fault before
 * a read, the end of the walk) there is no matching read and labelling stops. Reads it cannot
 * place are counted as `unexplained`, which the tests keep at zero.
 */

import { hex } from '../../arch/bits.ts';
import { decodeFields, type Field } from '../../arch/fields.ts';
import {
  blockAllowed,
  levelShift,
  S1_LEAF_FIELDS,
  S1_TABLE_FIELDS,
  S2_LEAF_FIELDS,
} from '../../arch/vmsa.ts';
import type { StageRegime } from '../../hw/vmsa/regime.ts';
import type { S1Context } from '../../hw/vmsa/walker.ts';
import type { RecordedRead } from './images.ts';

export type DescKind = 'table' | 'block' | 'page' | 'invalid' | 'reserved' | 'absent';

/** One descriptor read of a walk. Addresses and descriptors are hex strings. */
export interface WalkStep {
  /** Position among all reads of this walk, from 1. */
  readonly n: number;
  /** Which walk the read belongs to: "S1", "S2 of S1 L0 table", "S2 of output", "S2 of CD". */
  readonly walk: string;
  readonly stage: 1 | 2;
  readonly level: number;
  /** The address this walk translates (VA for stage 1, IPA for stage 2). */
  readonly input: string;
  /** Base of the table read (an IPA for stage 1 under nesting). */
  readonly tableBase: string;
  readonly index: number;
  /** Stage 1 under nesting: the descriptor's IPA (translated by the stage-2 walk just before). */
  readonly descIpa?: string;
  /** Physical address read. */
  readonly descAddr: string;
  /** The 64-bit descriptor, or null when the read was an external abort. */
  readonly desc: string | null;
  readonly kind: DescKind;
  /** Table descriptor: the next-level table. */
  readonly next?: string;
  /** Block or page: the output address of `input`. */
  readonly output?: string;
  /** Decoded descriptor fields (spec names). */
  readonly attrs?: Readonly<Record<string, number>>;
}

export interface LabelledWalk {
  readonly steps: WalkStep[];
  /** Recorded reads the labeller could not place (0 unless the model and this file disagree). */
  readonly unexplained: number;
}

const OA_MASK = 0x0000_ffff_ffff_f000n;

function descValue(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

function kindOf(desc: bigint, level: number, r: StageRegime): DescKind {
  if ((desc & 1n) === 0n) return 'invalid';
  const bit1 = (desc & 2n) !== 0n;
  if (level === 3) return bit1 ? 'page' : 'reserved';
  if (bit1) return 'table';
  return blockAllowed(r.granule, level, r.oaBits) ? 'block' : 'reserved';
}

function attrsOf(desc: bigint, kind: DescKind, stage: 1 | 2): Record<string, number> | undefined {
  let table: readonly Field[];
  if (kind === 'table') table = stage === 1 ? S1_TABLE_FIELDS : [];
  else if (kind === 'block' || kind === 'page') table = stage === 1 ? S1_LEAF_FIELDS : S2_LEAF_FIELDS;
  else return undefined;
  const words = [Number(desc & 0xffff_ffffn), Number(desc >> 32n)];
  const out = decodeFields(
    words,
    table.filter((f) => f.kind !== 'addr'),
  );
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The TTBx half a stage-1 walk of `va` uses (null: no walk, a translation fault). */
export function selectS1(s1: S1Context, va: bigint): StageRegime | null {
  const upper = s1.twoRanges && ((va >> 55n) & 1n) === 1n;
  return upper ? s1.tt1 : s1.tt0;
}

class Labeller {
  private readonly reads: readonly RecordedRead[];
  private i = 0;
  readonly steps: WalkStep[] = [];

  constructor(reads: readonly RecordedRead[]) {
    this.reads = reads;
  }

  get consumed(): number {
    return this.i;
  }

  private take(pa: bigint): RecordedRead | undefined {
    const r = this.reads[this.i];
    if (r === undefined || r.size !== 8 || BigInt(r.addr) !== pa) return undefined;
    this.i++;
    return r;
  }

  /** Labels one stage's walk of `input`; returns its output on a leaf, or null when the walk stopped. */
  stage(r: StageRegime, input: bigint, walk: string, nest: StageRegime | null): bigint | null {
    const g = r.granule;
    let table = (BigInt(r.ttbHi) << 32n) | BigInt(r.ttbLo);
    let level = r.startLevel;
    let bits = r.startBits;
    for (;;) {
      const shift = levelShift(g, level);
      const index = (input >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
      const tableBase = table & ~((1n << BigInt(bits + 3)) - 1n);
      const descIpa = tableBase + 8n * index;
      let descPa = descIpa;
      if (nest !== null) {
        const out = this.stage(nest, descIpa, `S2 of S1 L${level} table`, null);
        if (out === null) return null;
        descPa = out;
      }
      const read = this.take(descPa);
      if (read === undefined) return null;
      const base = {
        n: this.steps.length + 1,
        walk,
        stage: r.stage,
        level,
        input: hex(input),
        tableBase: hex(tableBase),
        index: Number(index),
        ...(nest !== null ? { descIpa: hex(descIpa) } : {}),
        descAddr: hex(descPa),
      };
      if (read.bytes === null) {
        this.steps.push({ ...base, desc: null, kind: 'absent' });
        return null;
      }
      const desc = descValue(read.bytes);
      const kind = kindOf(desc, level, r);
      const attrs = attrsOf(desc, kind, r.stage);
      const oaHigh = r.oa52 ? ((desc >> 12n) & 0xfn) << 48n : 0n;
      const common = { ...base, desc: hex(desc, 16), kind, ...(attrs ? { attrs } : {}) };
      if (kind === 'table') {
        const next = (desc & OA_MASK & ~((1n << BigInt(g)) - 1n)) | oaHigh;
        this.steps.push({ ...common, next: hex(next) });
        table = next;
        level += 1;
        bits = g - 3;
        continue;
      }
      if (kind === 'block' || kind === 'page') {
        const blockMask = (1n << BigInt(shift)) - 1n;
        const out = (((desc & OA_MASK) | oaHigh) & ~blockMask) | (input & blockMask);
        this.steps.push({ ...common, output: hex(out) });
        return out;
      }
      this.steps.push(common);
      return null;
    }
  }
}

/**
 * Labels the reads of a full translation of `input`: stage 1 (each table IPA walked by stage 2
 * first when both are present), then stage 2 of the output IPA.
 */
export function labelTranslation(
  reads: readonly RecordedRead[],
  s1: S1Context | null,
  s2: StageRegime | null,
  input: bigint,
): LabelledWalk {
  const l = new Labeller(reads);
  let ipa: bigint | null = input;
  if (s1 !== null) {
    const r = selectS1(s1, input);
    ipa = r === null ? null : l.stage(r, input, 'S1', s2);
  }
  if (ipa !== null && s2 !== null) l.stage(s2, ipa, s1 === null ? 'S2' : 'S2 of output', null);
  return { steps: l.steps, unexplained: reads.length - l.consumed };
}

/** Labels the reads of one stage-2 walk of a structure's IPA (an L1CD or a CD of a nested stream). */
export function labelStage2(
  reads: readonly RecordedRead[],
  s2: StageRegime,
  ipa: bigint,
  walk: string,
): LabelledWalk {
  const l = new Labeller(reads);
  l.stage(s2, ipa, walk, null);
  return { steps: l.steps, unexplained: reads.length - l.consumed };
}

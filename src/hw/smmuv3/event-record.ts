/**
 * SMMUv3 event records as structured objects and as the 32-byte little-endian records the SMMU
 * writes to its event queue (IHI 0070 §7.3). `encodeEvent` fills only the fields the record kind
 * defines (everything else stays RES0); `decodeEvent` reads a record back, which is what a driver
 * (and vsva's tests) do with the event queue.
 */

import { hi32, join64, lo32, toBigInt } from '../../arch/bits.ts';
import { getField, setField } from '../../arch/fields.ts';
import {
  EVT_0_ID,
  EVT_0_SID,
  EVT_0_SSID,
  EVT_0_SSV,
  EVT_1_CLASS,
  EVT_1_IND,
  EVT_1_PNU,
  EVT_1_RNW,
  EVT_1_S2,
  EVT_1_TTRNW,
  EVT_3_FETCHADDR,
  EVT_3_IPA,
  EVT_CLASS_NAMES,
  EVT_LAYOUTS,
  eventName,
  F_PERMISSION,
} from '../../arch/smmuv3/events.ts';

/** A decoded event. Addresses are numbers (exact below 2^53); `inputHi/inputLo` keep all 64 bits. */
export interface SmmuEvent {
  readonly id: number;
  readonly name: string;
  readonly streamId: number;
  /** -1 when the record carries no SubstreamID (SSV = 0). */
  readonly substreamId: number;
  readonly rnw: boolean;
  readonly ind: boolean;
  readonly pnu: boolean;
  readonly s2: boolean;
  readonly cls: number;
  readonly ttrnw: boolean;
  readonly inputHi: number;
  readonly inputLo: number;
  /** IPA (stage-2 faults) — 0 when not applicable. */
  readonly ipa: number;
  /** Fetch address (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT) — 0 when not applicable. */
  readonly fetchAddr: number;
}

export interface EventInit {
  readonly id: number;
  readonly streamId: number;
  readonly substreamId?: number;
  readonly rnw?: boolean;
  readonly ind?: boolean;
  readonly pnu?: boolean;
  readonly s2?: boolean;
  readonly cls?: number;
  readonly ttrnw?: boolean;
  readonly inputHi?: number;
  readonly inputLo?: number;
  readonly ipa?: number;
  readonly fetchAddr?: number;
}

/** The record's fields that exist for an event kind. */
function has(id: number, name: string): boolean {
  const layout = EVT_LAYOUTS[id];
  return layout?.some((f) => f.name === name) ?? false;
}

/** Encodes an event into 8 words (the 32-byte record). */
export function encodeEvent(e: EventInit, out: Uint32Array = new Uint32Array(8)): Uint32Array {
  out.fill(0);
  const id = e.id;
  const ssid = e.substreamId ?? -1;
  setField(out, EVT_0_ID, id);
  setField(out, EVT_0_SID, e.streamId >>> 0);
  if (has(id, 'SSV')) {
    if (ssid >= 0) {
      setField(out, EVT_0_SSV, 1);
      setField(out, EVT_0_SSID, ssid);
    }
  } else if (has(id, 'SubstreamID') && ssid >= 0) setField(out, EVT_0_SSID, ssid);
  if (has(id, 'RnW')) {
    setField(out, EVT_1_RNW, e.rnw ? 1 : 0);
    setField(out, EVT_1_IND, e.rnw && e.ind ? 1 : 0);
    setField(out, EVT_1_PNU, e.pnu ? 1 : 0);
    setField(out, EVT_1_S2, e.s2 ? 1 : 0);
    setField(out, EVT_1_CLASS, e.cls ?? 0);
    out[4] = (e.inputLo ?? 0) >>> 0;
    out[5] = (e.inputHi ?? 0) >>> 0;
  }
  if (id === F_PERMISSION && e.cls === 1) setField(out, EVT_1_TTRNW, e.ttrnw === false ? 0 : 1);
  if (has(id, 'IPA') && e.s2) setField(out, EVT_3_IPA, e.ipa ?? 0);
  if (has(id, 'FetchAddr')) setField(out, EVT_3_FETCHADDR, e.fetchAddr ?? 0);
  return out;
}

/** Decodes a 32-byte record (8 words). */
export function decodeEvent(w: ArrayLike<number>): SmmuEvent {
  const id = getField(w, EVT_0_ID);
  const hasSsv = has(id, 'SSV');
  const ssvSet = getField(w, EVT_0_SSV) === 1;
  const substreamId = (hasSsv ? ssvSet : has(id, 'SubstreamID')) ? getField(w, EVT_0_SSID) : -1;
  const s2 = getField(w, EVT_1_S2) === 1;
  return {
    id,
    name: eventName(id),
    streamId: getField(w, EVT_0_SID),
    substreamId,
    rnw: getField(w, EVT_1_RNW) === 1,
    ind: getField(w, EVT_1_IND) === 1,
    pnu: getField(w, EVT_1_PNU) === 1,
    s2,
    cls: getField(w, EVT_1_CLASS),
    ttrnw: getField(w, EVT_1_TTRNW) === 1,
    inputHi: (w[5] ?? 0) >>> 0,
    inputLo: (w[4] ?? 0) >>> 0,
    ipa: has(id, 'IPA') && s2 ? getField(w, EVT_3_IPA) : 0,
    fetchAddr: has(id, 'FetchAddr') ? getField(w, EVT_3_FETCHADDR) : 0,
  };
}

/** The input address as a number (exact below 2^53). */
export function eventInputAddr(e: SmmuEvent): number {
  return join64(e.inputHi, e.inputLo);
}

/** Splits a number address into the hi/lo pair EventInit expects. */
export function inputWords(addr: number): { inputHi: number; inputLo: number } {
  return { inputHi: hi32(addr), inputLo: lo32(addr) };
}

/** A record field by its §7.3 name: a number, an exact 64-bit address, a flag, or CLASS's name. */
export type EventFieldValue = number | bigint | boolean | string;

/** Each presentable field's value (EventNumber, Reason, STAG and Stall are not presented). */
const EVENT_FIELD_VALUES: readonly (readonly [string, (e: SmmuEvent) => EventFieldValue | undefined])[] = [
  ['StreamID', (e) => e.streamId],
  ['SSV', (e) => e.substreamId >= 0],
  ['SubstreamID', (e) => (e.substreamId >= 0 ? e.substreamId : undefined)],
  ['RnW', (e) => e.rnw],
  ['InD', (e) => e.ind],
  ['PnU', (e) => e.pnu],
  ['S2', (e) => e.s2],
  ['CLASS', (e) => EVT_CLASS_NAMES[e.cls] ?? e.cls],
  ['TTRnW', (e) => e.ttrnw],
  ['InputAddr', (e) => toBigInt(e.inputHi, e.inputLo)],
  ['IPA', (e) => e.ipa],
  ['FetchAddr', (e) => e.fetchAddr],
];

/**
 * The fields a record of this kind carries, under their §7.3 names and in a fixed order: StreamID
 * always, the others only where the kind's layout has them (SubstreamID only with a SubstreamID).
 * InputAddr is exact (a bigint); CLASS is given by name (CD, TT, IN).
 */
export function eventFields(e: SmmuEvent): Record<string, EventFieldValue> {
  const layout = new Set((EVT_LAYOUTS[e.id] ?? []).map((f) => f.name));
  const out: Record<string, EventFieldValue> = {};
  for (const [name, value] of EVENT_FIELD_VALUES) {
    if (name !== 'StreamID' && !layout.has(name)) continue;
    const v = value(e);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/**
 * What hardware-level steps observe, in the shape expectations are written in: event records with
 * their fields under IHI 0070 §7.3 names (`StreamID`, `CLASS: TT`, `InputAddr`…), register values
 * with their §6.3 fields, transaction results with segments, and the SMMU's counters as a flat
 * object for the report.
 */

import type { RegDef } from '../../arch/smmuv3/registers.ts';
import { eventFields, type SmmuEvent } from '../../hw/smmuv3/event-record.ts';
import { type DmaResult, type Smmu, TXN_STATUS_NAMES } from '../../hw/smmuv3/smmu.ts';
import { show } from '../format/expect.ts';
import type { EventExpect } from './schema.ts';

export interface ObservedEvent {
  readonly id: string;
  readonly fields: Record<string, unknown>;
}

/** A decoded record as `{id, fields}`; only the fields its kind defines (§7.3) are present. */
export function observeEvent(e: SmmuEvent): ObservedEvent {
  return { id: e.name, fields: eventFields(e) };
}

/** The expectation as the comparable object (`fields` omitted when not given). */
export function eventWant(w: EventExpect): Record<string, unknown> {
  return w.fields === undefined ? { id: w.id } : { id: w.id, fields: w.fields };
}

/** One line for a report. */
export function describeEvent(e: ObservedEvent): string {
  const parts = Object.entries(e.fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : show(v)}`);
  return `${e.id} ${parts.join(' ')}`;
}

export interface ObservedTransaction {
  status: string;
  fault: boolean;
  pa?: number;
  segments: { iova: number; pa: number; len: number }[];
  event: ObservedEvent | null;
  disposition: string;
  walks: number;
  descReads: number;
}

export function observeTransaction(r: DmaResult, walks: number, descReads: number): ObservedTransaction {
  const segments = [];
  for (let i = 0; i < r.count; i++) segments.push({ iova: r.iova[i]!, pa: r.pa[i]!, len: r.len[i]! });
  return {
    status: TXN_STATUS_NAMES[r.status] ?? String(r.status),
    fault: r.event !== null || r.status !== 0,
    ...(r.count > 0 ? { pa: r.firstPa } : {}),
    segments,
    event: r.event === null ? null : observeEvent(r.event),
    disposition: r.eventDisposition,
    walks,
    descReads,
  };
}

/** A register value with its fields decoded (values shifted down). */
export function registerFields(def: RegDef | undefined, v: bigint): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const f of def?.fields ?? []) out[f.name] = (v >> BigInt(f.lsb)) & ((1n << BigInt(f.width)) - 1n);
  return out;
}

/** The SMMU's counters, flattened: stats, IOTLB, and per-event / per-command counts. */
export function smmuCounters(smmu: Smmu): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(smmu.stats)) if (typeof v === 'number') out[k] = v;
  for (const [k, v] of Object.entries(smmu.stats.byEvent)) out[`event.${k}`] = v;
  for (const [k, v] of Object.entries(smmu.stats.byCommand)) out[`command.${k}`] = v;
  const t = smmu.iotlb.stats;
  out.iotlbLookups = t.lookups;
  out.iotlbHits = t.hits;
  out.iotlbMisses = t.misses;
  out.iotlbInserts = t.inserts;
  out.iotlbEvictions = t.evictions;
  out.iotlbInvalidated = t.invalidated;
  return out;
}

/**
 * Plain-text rendering of an InspectReport for the terminal (no colours: the CLI may add them).
 * Sections follow the order an SMMU fetches in: stream table, STE, CD table, CD, walk, verdict.
 */

import type {
  EventReport,
  FieldReport,
  InspectReport,
  Stage2FetchReport,
  StructureReport,
} from './inspect.ts';
import type { WalkStep } from './walk.ts';

function eventLine(e: EventReport): string {
  const fields = Object.entries(e.fields)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return `${e.name} (0x${e.id.toString(16).padStart(2, '0')}) ${fields}`;
}

function fieldLines(fields: readonly FieldReport[]): string[] {
  const width = Math.max(0, ...fields.map((f) => f.name.length));
  return fields.map((f) => {
    const v = typeof f.value === 'number' ? String(f.value) : f.value;
    const where = `dw${f.dword}${f.bits}`;
    return `    ${f.name.padEnd(width)}  ${v.padEnd(18)} ${where.padEnd(11)}${f.meaning ? ` ${f.meaning}` : ''}`;
  });
}

const isZero = (v: number | string): boolean => v === 0 || v === '0x0';

function structureLines(title: string, s: StructureReport): string[] {
  const at = s.ipa ? `IPA ${s.ipa} -> PA ${s.addr}` : `PA ${s.addr}`;
  const out = [`${title} at ${at}`];
  if (s.absent)
    return [...out, `  ${s.reason ?? 'absent'}`, ...(s.event ? [`  -> ${eventLine(s.event)}`] : [])];
  out.push(`  raw: ${s.raw.join(' ')}`);
  out.push(`  ${s.valid ? 'valid' : `INVALID: ${s.reason ?? ''}`}${s.summary ? ` — ${s.summary}` : ''}`);
  out.push(...fieldLines(s.fields.filter((f) => !isZero(f.value) || f.name === 'V' || f.name === 'Config')));
  if (s.event) out.push(`  -> ${eventLine(s.event)}`);
  return out;
}

function stepLine(s: WalkStep): string {
  const where = s.descIpa ? `IPA ${s.descIpa} -> PA ${s.descAddr}` : `PA ${s.descAddr}`;
  const what =
    s.kind === 'table'
      ? `table -> ${s.next}`
      : s.kind === 'block' || s.kind === 'page'
        ? `${s.kind} -> ${s.output}`
        : s.kind;
  const attrs = s.attrs && s.kind !== 'table' ? ` ${attrsText(s.attrs)}` : '';
  return `  ${String(s.n).padStart(2)}. ${s.walk.padEnd(18)} L${s.level} [${String(s.index).padStart(4)}] of ${s.tableBase} @ ${where}: ${s.desc ?? 'ABSENT'}  ${what}${attrs}`;
}

function attrsText(a: Readonly<Record<string, number>>): string {
  const keep = ['AP', 'S2AP', 'AF', 'nG', 'PXN', 'UXN', 'XN'];
  return keep
    .filter((k) => k in a)
    .map((k) => `${k}=${a[k]}`)
    .join(' ');
}

function fetchLines(f: Stage2FetchReport): string[] {
  return [
    `  stage-2 walk of the ${f.what} IPA ${f.ipa}: ${f.pa !== null ? `PA ${f.pa}` : (f.fault ?? 'fault')}`,
    ...f.reads.map((s) => `  ${stepLine(s)}`),
  ];
}

/** The report as text. */
export function renderInspect(r: InspectReport): string {
  const out: string[] = [];
  for (const p of r.problems) out.push(`problem: ${p}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  if (r.images.length > 0) {
    out.push('Memory images:');
    for (const i of r.images)
      out.push(`  ${i.base} +0x${i.size.toString(16)}${i.source ? `  ${i.source}` : ''}`);
  }
  if (r.query) {
    const q = r.query;
    out.push(
      `Query: StreamID ${q.sid} (0x${q.sid.toString(16)})${q.ssid !== null ? ` SubstreamID ${q.ssid}` : ''}${q.iova ? ` IOVA ${q.iova} ${q.access}${q.privileged ? ' privileged' : ''}` : ''}`,
    );
  }
  const st = r.streamTable;
  if (st) {
    out.push('');
    const split =
      st.split !== undefined
        ? `, SPLIT ${st.split}${st.split !== st.effectiveSplit ? ` (as ${st.effectiveSplit})` : ''}`
        : '';
    out.push(
      `Stream table: ${st.format} at ${st.base}, LOG2SIZE ${st.log2Size}${st.log2Size !== st.effectiveLog2Size ? ` (as ${st.effectiveLog2Size})` : ''}${split}`,
    );
    if (st.l1) {
      const fields = Object.entries(st.l1.fields)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      out.push(`  L1STD[${st.l1.index}] @ PA ${st.l1.addr}: ${st.l1.value ?? 'ABSENT'} ${fields}`);
    }
    if (st.steAddr) out.push(`  STE ${st.sid} @ PA ${st.steAddr}`);
    if (st.reason) out.push(`  ${st.reason}`);
    if (st.event) out.push(`  -> ${eventLine(st.event)}`);
  }
  if (r.ste) {
    out.push('');
    out.push(...structureLines(`STE ${r.query?.sid ?? ''}`, r.ste));
  }
  const ct = r.cdTable;
  if (ct) {
    out.push('');
    out.push(
      `CD table: ${ct.format || '-'} at ${ct.s1ContextPtr}${ct.nested ? ' (IPA)' : ''}, S1CDMax ${ct.s1CdMax}; ${ct.why}`,
    );
    const l1Fetch = ct.stage2Fetches.find((f) => f.what === 'L1CD');
    if (l1Fetch) out.push(...fetchLines(l1Fetch));
    if (ct.l1) {
      const fields = Object.entries(ct.l1.fields)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      out.push(
        `  L1CD[${ct.l1.index}] @ ${ct.l1.ipa ? `IPA ${ct.l1.ipa} -> ` : ''}PA ${ct.l1.addr}: ${ct.l1.value ?? 'ABSENT'} ${fields}`,
      );
    }
    if (ct.cdAddr) out.push(`  CD ${ct.cdIndex} @ ${ct.nested ? 'IPA' : 'PA'} ${ct.cdAddr}`);
    const cdFetch = ct.stage2Fetches.find((f) => f.what === 'CD');
    if (cdFetch) out.push(...fetchLines(cdFetch));
    if (ct.reason && ct.reason !== ct.why) out.push(`  ${ct.reason}`);
    if (ct.event) out.push(`  -> ${eventLine(ct.event)}`);
  }
  if (r.cd) {
    out.push('');
    out.push(...structureLines(`CD ${r.cdTable?.cdIndex ?? ''}`, r.cd));
  }
  const t = r.translation;
  if (t) {
    out.push('');
    out.push(
      `Translation of ${t.iova} (${t.effectiveAccess}${t.effectivePrivileged ? ', privileged' : ', unprivileged'}): ${t.descReads} descriptor reads`,
    );
    for (const g of [t.stage1, t.stage2]) {
      if (g) {
        out.push(
          `  stage ${g.stage}: ${g.granule} granule, ${g.inputBits}-bit input, start level ${g.startLevel}${g.concatenated > 1 ? ` (${g.concatenated} concatenated tables)` : ''}, table ${g.ttb}, ${g.oaBits}-bit output`,
        );
      }
    }
    for (const s of t.reads) out.push(stepLine(s));
    const res = t.result;
    if (res.ok)
      out.push(`  => PA ${res.pa} (IPA ${res.ipa}, 2^${res.pageShift} mapping) perms ${res.perms.join(' ')}`);
    else
      out.push(
        `  => stage-${res.stage} ${res.fault} fault, CLASS ${res.class}${res.ipa ? ` IPA ${res.ipa}` : ''}${res.fetchAddr ? ` fetch ${res.fetchAddr}` : ''}: ${eventLine(res.event)}`,
      );
  }
  const v = r.verdict;
  if (v) {
    out.push('');
    const tail = v.pa
      ? ` PA ${v.pa}`
      : v.event
        ? ` ${eventLine(v.event)}${v.recorded === false ? ' (not recorded)' : ''}`
        : ' (no event)';
    out.push(`Verdict: ${v.status}${tail}`);
  }
  return `${out.join('\n')}\n`;
}

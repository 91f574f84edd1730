/**
 * The built-in hardware-level scenario `vsva run` executes when given no scenario file: an
 * SMMUv3 brought up through its registers, a stage-1 stream with two PASIDs, a nested stream whose
 * guest owns the CD table and stage-1 tables in guest-physical memory while the host owns stage 2,
 * a translation fault read back from the event queue, a stale IOTLB entry served until the right
 * TLBI, and a malformed STE refused with C_BAD_STE. Every step states what it expects and checks
 * it; the result is a report (steps, expectations, counters). Deterministic: no clock, no randomness.
 */

import { hex } from '../arch/bits.ts';
import { ACCESS_READ, ACCESS_WRITE, type Access } from '../arch/vmsa.ts';
import type { SmmuEvent } from '../hw/smmuv3/event-record.ts';
import { CdTable, SmmuRig } from '../hw/smmuv3/rig.ts';
import { TXN_ABORT, TXN_OK, TXN_STATUS_NAMES } from '../hw/smmuv3/smmu.ts';
import {
  cmdCfgiCd,
  cmdCfgiSte,
  cmdSync,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
  encodeSte,
} from '../hw/smmuv3/structures.ts';
import { finishReport, type ScenarioReport, StepBuilder, type StepReport } from './report.ts';

function describeEvent(e: SmmuEvent): string {
  const parts = [`${e.name} sid=${e.streamId}`];
  if (e.substreamId >= 0) parts.push(`ssid=${e.substreamId}`);
  parts.push(`input=${hex(e.inputHi * 2 ** 32 + e.inputLo)}`);
  if (e.s2) parts.push(`S2 CLASS=${['CD', 'TT', 'IN'][e.cls]} ipa=${hex(e.ipa)}`);
  else parts.push(`S1`);
  return parts.join(' ');
}

/** Runs the demo and returns its report. */
export function runHardwareDemo(): ScenarioReport {
  const rig = new SmmuRig({ sidLog2: 8, split: 6 });
  const smmu = rig.smmu;
  const steps: StepReport[] = [];
  const dma = (sid: number, ssid: number, iova: number, access: Access = ACCESS_READ) =>
    smmu.transact({ streamId: sid, substreamId: ssid, iova, size: 64, access, privileged: false });

  // ---- Step 1: bring-up
  {
    const s = new StepBuilder('Bring up the SMMU through MMIO (2-level stream table, queues, SMMUEN)');
    const idr = smmu.idr;
    s.note(
      `IDR0=${hex(idr.idr0)} IDR1=${hex(idr.idr1)} IDR3=${hex(idr.idr3)} IDR5=${hex(idr.idr5)} AIDR=${hex(idr.aidr)} (SMMUv3.2)`,
    );
    s.note(
      `stream table @${hex(rig.strtabBase)} (SPLIT 6), CMDQ @${hex(rig.cmdqBase)}, EVENTQ @${hex(rig.eventqBase)}`,
    );
    s.expect('SMMUEN set', smmu.translationRegisters().smmuen, String(smmu.translationRegisters().smmuen));
    steps.push(s.done());
  }

  // ---- Step 2: stage-1 stream with two PASIDs
  const s1Tables = [0, 1].map(() =>
    rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true }),
  );
  {
    const s = new StepBuilder('Stage-1 stream (SID 1) with PASIDs 1 and 2, each its own address space');
    const cds = rig.cdTable(1, 8); // 2-level CD table, 4KB leaves, 256 PASIDs
    s1Tables[0]!.map(0x7000_0000, 0x8_0000_0000, 0x20_0000, { read: true, write: true, user: true });
    s1Tables[1]!.map(0x7000_0000, 0x9_0000_0000, 0x1000, { read: true, write: false, user: true });
    cds.write(1, { t0sz: 16, granule0: 12, ttb0: s1Tables[0]!.root, ipsBits: 48, asid: 11 });
    cds.write(2, { t0sz: 16, granule0: 12, ttb0: s1Tables[1]!.root, ipsBits: 48, asid: 12 });
    rig.writeSte(1, { config: 's1', s1ContextPtr: cds.ptr, s1Fmt: cds.fmt, s1CdMax: cds.cdMax });
    rig.submit(cmdCfgiSte(1), cmdSync());
    const a = dma(1, 1, 0x7000_0234);
    const b = dma(1, 2, 0x7000_0234);
    s.note(`PASID 1: VA 0x70000234 -> PA ${hex(a.firstPa)}`);
    s.note(`PASID 2: VA 0x70000234 -> PA ${hex(b.firstPa)}`);
    s.expect('PASID 1 translates to 0x800000234', a.firstPa === 0x8_0000_0234, hex(a.firstPa));
    s.expect('PASID 2 translates to 0x900000234', b.firstPa === 0x9_0000_0234, hex(b.firstPa));
    const w = dma(1, 2, 0x7000_0234, ACCESS_WRITE);
    const ev = rig.drainEvents();
    s.note(
      `PASID 2 write to its read-only page: ${TXN_STATUS_NAMES[w.status]}, event ${ev[0] ? describeEvent(ev[0]) : 'none'}`,
    );
    s.expect(
      'the write is refused with F_PERMISSION',
      w.status === TXN_ABORT && ev[0]?.name === 'F_PERMISSION',
      ev[0]?.name ?? 'none',
    );
    steps.push(s.done());
  }

  // ---- Step 3: nested stream
  const guest = rig.guestRam(0x4000_0000, 0x100_0000);
  // Host stage 2: 48-bit IPA (4 levels from level 0), guest RAM mapped page by page.
  const s2 = rig.stage2For(guest, 12, 48, 48, true);
  const gS1 = rig.pageTable(
    { stage: 1, granule: 12, iasBits: 48, oasBits: 40, nonGlobal: true },
    guest.alloc,
  );
  const gCds = new CdTable(guest.view, guest.alloc, 0, 4); // linear, 16 PASIDs, in guest memory
  {
    const s = new StepBuilder(
      'Nested stream (SID 2): guest-owned CD table and stage-1 tables at IPAs, host stage 2',
    );
    gS1.map(0x2345_6000_0000, guest.ipaBase + 0x80_0000, 0x1000, { read: true, write: true, user: true });
    gCds.write(3, { t0sz: 16, granule0: 12, ttb0: gS1.root, ipsBits: 40, asid: 7 });
    rig.writeSte(2, {
      config: 'nested',
      s1ContextPtr: gCds.ptr,
      s1CdMax: gCds.cdMax,
      s2Vmid: 5,
      s2T0sz: 64 - 48,
      s2Sl0: s2.geometry.sl0,
      s2Granule: 12,
      s2PsBits: 48,
      s2Ttb: s2.root,
    });
    rig.submit(cmdCfgiSte(2), cmdSync());
    const va = 0x2345_6000_0abc;
    const before = { ...smmu.stats };
    const first = dma(2, 3, va);
    const reads = smmu.stats.descReads - before.descReads;
    const second = dma(2, 3, va + 8);
    s.note(
      `guest CD table @IPA ${hex(gCds.ptr)}, stage-1 root @IPA ${hex(gS1.root)}, stage-2 root @PA ${hex(s2.root)}`,
    );
    s.note(`VA ${hex(va)} -> PA ${hex(first.firstPa)} (guest IPA ${hex(guest.ipaBase + 0x80_0abc)})`);
    s.note(
      `cold translation: ${reads} descriptor reads (stage-2 start level ${s2.geometry.startLevel}); then an IOTLB hit`,
    );
    s.expect(
      'nested translation reaches the host page',
      first.firstPa === guest.paBase + 0x80_0abc,
      hex(first.firstPa),
    );
    s.expect('a cold 4x4 nested walk reads 24 descriptors', reads === 24, String(reads));
    s.expect(
      'second access hits the IOTLB',
      second.status === TXN_OK && smmu.iotlb.stats.hits > 0,
      String(smmu.iotlb.stats.hits),
    );
    steps.push(s.done());
  }

  // ---- Step 4: fault through the event queue
  {
    const s = new StepBuilder('A DMA to an unmapped guest VA: the fault record in the event queue');
    const r = dma(2, 3, 0x5000_0000);
    const ev = rig.drainEvents();
    s.note(
      `transaction ${TXN_STATUS_NAMES[r.status]}; event queue: ${ev.map(describeEvent).join('; ') || 'empty'}`,
    );
    s.expect(
      'F_TRANSLATION at stage 1 with the PASID',
      ev.length === 1 && ev[0]?.name === 'F_TRANSLATION' && ev[0].substreamId === 3,
      ev[0]?.name ?? 'none',
    );
    steps.push(s.done());
  }

  // ---- Step 5: stale IOTLB entry until TLBI
  {
    const s = new StepBuilder(
      'Guest remaps a page without invalidating: the stale IOTLB entry is served until TLBI_NH_VA',
    );
    const va = 0x2345_6000_0000;
    gS1.unmap(va, 0x1000);
    gS1.map(va, guest.ipaBase + 0x90_0000, 0x1000, { read: true, write: true, user: true });
    const stale = dma(2, 3, va + 0x10);
    rig.submit(cmdTlbiNhVa(5, 7, va), cmdSync());
    const fresh = dma(2, 3, va + 0x10);
    s.note(
      `before TLBI: ${hex(stale.firstPa)} (old page); after TLBI_NH_VA(vmid 5, asid 7): ${hex(fresh.firstPa)}`,
    );
    s.expect(
      'stale translation served before the TLBI',
      stale.firstPa === guest.paBase + 0x80_0010,
      hex(stale.firstPa),
    );
    s.expect(
      'new translation after the TLBI',
      fresh.firstPa === guest.paBase + 0x90_0010,
      hex(fresh.firstPa),
    );
    steps.push(s.done());
  }

  // ---- Step 6: malformed STE
  {
    const s = new StepBuilder('A malformed STE (S2T0SZ out of range) is refused with C_BAD_STE');
    const bad = encodeSte({
      config: 's2',
      s2T0sz: 10,
      s2Sl0: 1,
      s2Granule: 12,
      s2PsBits: 48,
      s2Ttb: s2.root,
      s2Vmid: 9,
    });
    rig.writeSte(4, bad);
    rig.submit(cmdCfgiSte(4), cmdCfgiCd(2, 3), cmdTlbiNsnhAll(), cmdSync());
    const r = dma(4, -1, 0x4000_0000);
    const ev = rig.drainEvents();
    s.note(`transaction ${TXN_STATUS_NAMES[r.status]}: ${r.reason}`);
    s.expect('C_BAD_STE recorded', ev[0]?.name === 'C_BAD_STE', ev[0]?.name ?? 'none');
    steps.push(s.done());
  }

  const st = smmu.stats;
  const counters: Record<string, number> = {
    transactions: st.transactions,
    'iotlb.lookups': smmu.iotlb.stats.lookups,
    'iotlb.hits': smmu.iotlb.stats.hits,
    'iotlb.misses': smmu.iotlb.stats.misses,
    walks: st.walks,
    'walks.s1': st.walksS1,
    'walks.s2': st.walksS2,
    'descriptor.reads': st.descReads,
    'descriptor.reads.max_per_walk': st.maxDescReadsPerWalk,
    'ste.fetches': st.steFetches,
    'cd.fetches': st.cdFetches,
    'events.raised': st.eventsRaised,
    'events.written': st.eventsWritten,
    commands: st.commands,
    'host.bytes_backed': rig.mem.bytesBacked,
  };
  return finishReport('built-in: hardware-level SMMUv3 walk-through', steps, counters);
}

/**
 * The event queue, its interrupt and the global error register (IHI 0070 §3.5, §3.18, §6.3.19-§6.3.20,
 * §7.2, §7.4, §7.5; /work/notes/events-regs.md §1.1, §4.31-§4.32, §5; /work/notes/commands.md §6, §7.3):
 * record placement, PROD/CONS wrap, overflow and its acknowledgement, EVENTQEN = 0, write aborts,
 * the empty → non-empty interrupt as a wired pulse or an MSI, GERROR activation and acknowledgement,
 * and a model-based property over random produce/consume interleavings.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CERROR_ILL } from '../../arch/smmuv3/commands.ts';
import { C_BAD_STREAMID } from '../../arch/smmuv3/events.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  GERROR_CMDQ_ERR,
  GERROR_EVENTQ_ABT_ERR,
  GERROR_MSI_EVENTQ_ABT_ERR,
  GERROR_MSI_GERROR_ABT_ERR,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  Q_OVFLG,
  SMMU_CMDQ_CONS,
  SMMU_CR0,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_IRQ_CFG0,
  SMMU_EVENTQ_IRQ_CFG1,
  SMMU_EVENTQ_PROD,
  SMMU_GERROR,
  SMMU_GERROR_IRQ_CFG0,
  SMMU_GERROR_IRQ_CFG1,
  SMMU_GERRORN,
  SMMU_IRQ_CTRL,
} from '../../arch/smmuv3/registers.ts';
import { PAGE_SIZE } from '../memory.ts';
import { decodeEvent, type SmmuEvent } from './event-record.ts';
import { type RigOptions, SmmuRig, writeWords } from './rig.ts';
import type { DmaResult, EventDisposition, SmmuHooks } from './smmu.ts';
import { cmdRaw, cmdSync } from './structures.ts';

// ------------------------------------------------------------------ helpers

/** The rig's stream table covers StreamIDs 0..255; 0x100 + n is out of range: C_BAD_STREAMID (RECINVSID = 1). */
const BAD_SID = 0x100;
const EVENTQ_LOG2 = 2;
const EVENTQ_ENTRIES = 1 << EVENTQ_LOG2;
/** PROD/CONS index and wrap bits of a 4-entry queue. */
const PTR_MASK = (EVENTQ_ENTRIES << 1) - 1;
const ALL_ENABLES = CR0_SMMUEN | CR0_CMDQEN | CR0_EVENTQEN;
const BOTH_IRQS = IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN;
const ILLEGAL_OPCODE = 0x7f;

/** A rig with a 4-entry event queue on a page of its own (the command queue fills a whole page). */
function smallRig(opts: RigOptions = {}, hooks: SmmuHooks = {}): SmmuRig {
  const rig = new SmmuRig({ eventqLog2: EVENTQ_LOG2, cmdqLog2: 8, ...opts }, hooks);
  const page = (a: number) => Math.floor(a / PAGE_SIZE);
  expect(page(rig.eventqBase)).not.toBe(page(rig.cmdqBase));
  expect(page(rig.eventqBase)).not.toBe(page(rig.strtabBase + 64 * 255));
  return rig;
}

/** A transaction from an out-of-range StreamID: one C_BAD_STREAMID event tagged by `tag`. */
function fault(rig: SmmuRig, tag: number, ssid = -1): DmaResult {
  return rig.smmu.translate(BAD_SID + tag, ssid, 0x1000 + tag * 0x1000);
}

function prod(rig: SmmuRig): number {
  return rig.smmu.read32(SMMU_EVENTQ_PROD);
}

function cons(rig: SmmuRig): number {
  return rig.smmu.read32(SMMU_EVENTQ_CONS);
}

/** The eight words of queue slot `index`, read from memory. */
function slot(rig: SmmuRig, index: number): number[] {
  const b = rig.mem.read(rig.eventqBase + 32 * index, 32)!;
  return Array.from(new Uint32Array(b.buffer, b.byteOffset, 8));
}

/** The C_BAD_STREAMID record (§7.3.3): number, SSV, SubstreamID, StreamID; everything else RES0. */
function badStreamIdRecord(sid: number, ssid = -1): number[] {
  const w0 = ssid >= 0 ? (C_BAD_STREAMID | (1 << 11) | (ssid << 12)) >>> 0 : C_BAD_STREAMID;
  return [w0, sid, 0, 0, 0, 0, 0, 0];
}

function queueBytes(rig: SmmuRig): number[] {
  return Array.from(rig.mem.read(rig.eventqBase, 32 * EVENTQ_ENTRIES)!);
}

/**
 * A driver's consumer: reads up to `k` records from CONS, writes CONS back and, when `ack`, copies
 * PROD.OVFLG into CONS.OVACKFLG (otherwise keeps the old OVACKFLG).
 */
function consume(rig: SmmuRig, k: number, ack: boolean): SmmuEvent[] {
  const p = prod(rig);
  const c = cons(rig);
  let rd = c & PTR_MASK;
  const out: SmmuEvent[] = [];
  while (out.length < k && rd !== (p & PTR_MASK)) {
    out.push(decodeEvent(slot(rig, rd & (EVENTQ_ENTRIES - 1))));
    rd = (rd + 1) & PTR_MASK;
  }
  const flag = ack ? p & Q_OVFLG : c & Q_OVFLG;
  rig.smmu.write32(SMMU_EVENTQ_CONS, (rd | flag) >>> 0);
  return out;
}

function gerrorActive(rig: SmmuRig): number {
  return (rig.smmu.read32(SMMU_GERROR) ^ rig.smmu.read32(SMMU_GERRORN)) >>> 0;
}

/** Reprograms the event-queue MSI: IRQEN off (CFG registers are guarded), CFG0/1, IRQEN back on. */
function eventqMsi(rig: SmmuRig, addr: number, data: number): void {
  const s = rig.smmu;
  s.write32(SMMU_IRQ_CTRL, IRQ_CTRL_GERROR_IRQEN);
  s.write64n(SMMU_EVENTQ_IRQ_CFG0, addr);
  s.write32(SMMU_EVENTQ_IRQ_CFG1, data);
  s.write32(SMMU_IRQ_CTRL, BOTH_IRQS);
}

function gerrorMsi(rig: SmmuRig, addr: number, data: number): void {
  const s = rig.smmu;
  s.write32(SMMU_IRQ_CTRL, IRQ_CTRL_EVENTQ_IRQEN);
  s.write64n(SMMU_GERROR_IRQ_CFG0, addr);
  s.write32(SMMU_GERROR_IRQ_CFG1, data);
  s.write32(SMMU_IRQ_CTRL, BOTH_IRQS);
}

/** A fresh page (bit 31 clear: the rig's RAM is at 0x4000_0000) for MSI targets. */
function msiPage(rig: SmmuRig): number {
  const a = rig.alloc.alloc(PAGE_SIZE)!;
  expect(a).toBeLessThan(0x8000_0000);
  return a;
}

// ================================================================== records, PROD, wrap

describe('event queue records and PROD (IHI 0070 §7.2, §7.3, §3.5)', () => {
  it('a record is 32 little-endian bytes written at the PROD index, and PROD advances by one', () => {
    const rig = smallRig();
    rig.mem.fill(rig.eventqBase, 32 * EVENTQ_ENTRIES, 0xee);
    const r = fault(rig, 0x23, 7);
    expect(r.eventDisposition).toBe('written');
    expect(r.event?.id).toBe(C_BAD_STREAMID);
    expect(slot(rig, 0)).toEqual(badStreamIdRecord(0x123, 7));
    // Only those 32 bytes were written.
    expect(queueBytes(rig).slice(32)).toEqual(new Array(96).fill(0xee));
    expect([prod(rig), cons(rig)]).toEqual([1, 0]);
    fault(rig, 0x24);
    expect(slot(rig, 1)).toEqual(badStreamIdRecord(0x124));
    expect(queueBytes(rig).slice(64)).toEqual(new Array(64).fill(0xee));
    expect([prod(rig), cons(rig)]).toEqual([2, 0]);
  });

  it('PROD wraps over several laps, toggling its wrap bit; each record lands at base + 32 × index', () => {
    const rig = smallRig();
    let expectedProd = 0;
    let tag = 0;
    // Batches of 1..4 events, the consumer catching up after each batch: 6 laps of the 4-entry queue.
    for (const batch of [3, 4, 1, 2, 4, 4, 3, 1, 2] as const) {
      for (let i = 0; i < batch; i++) {
        const r = fault(rig, tag);
        expect(r.eventDisposition).toBe('written');
        expect(slot(rig, expectedProd & (EVENTQ_ENTRIES - 1))).toEqual(badStreamIdRecord(BAD_SID + tag));
        expectedProd = (expectedProd + 1) & PTR_MASK;
        expect(prod(rig)).toBe(expectedProd);
        tag++;
      }
      const got = consume(rig, EVENTQ_ENTRIES, true);
      expect(got.map((e) => e.streamId)).toEqual(
        Array.from({ length: batch }, (_, i) => BAD_SID + tag - batch + i),
      );
      expect(cons(rig)).toBe(expectedProd);
    }
    expect(tag).toBe(24);
    expect(rig.smmu.stats.eventsWritten).toBe(24);
  });

  it('a full queue overflows: no write, PROD.WR unchanged, OVFLG toggled once until software acknowledges', () => {
    const rig = smallRig();
    for (let t = 0; t < 4; t++) expect(fault(rig, t).eventDisposition).toBe('written');
    // Full: same index, different wrap bits.
    expect([prod(rig), cons(rig)]).toEqual([0b100, 0]);
    const before = queueBytes(rig);
    const r = fault(rig, 4);
    expect(r.eventDisposition).toBe('overflow');
    expect(r.event?.streamId).toBe(BAD_SID + 4);
    expect(queueBytes(rig)).toEqual(before);
    expect(prod(rig)).toBe((Q_OVFLG | 0b100) >>> 0);
    // A second overflow while the first is unacknowledged does not toggle again.
    expect(fault(rig, 5).eventDisposition).toBe('overflow');
    expect(prod(rig)).toBe((Q_OVFLG | 0b100) >>> 0);
    expect(queueBytes(rig)).toEqual(before);

    // The consumer frees two slots without acknowledging: delivery continues, the overflow stays pending.
    expect(consume(rig, 2, false).map((e) => e.streamId)).toEqual([BAD_SID, BAD_SID + 1]);
    expect(cons(rig)).toBe(0b010);
    expect(fault(rig, 6).eventDisposition).toBe('written');
    expect(fault(rig, 7).eventDisposition).toBe('written');
    expect(prod(rig)).toBe((Q_OVFLG | 0b110) >>> 0);
    expect(fault(rig, 8).eventDisposition).toBe('overflow');
    expect(prod(rig)).toBe((Q_OVFLG | 0b110) >>> 0);

    // Acknowledge: OVACKFLG := OVFLG, with the new read index.
    expect(consume(rig, 4, true).map((e) => e.streamId)).toEqual([2, 3, 6, 7].map((t) => BAD_SID + t));
    expect(cons(rig)).toBe((Q_OVFLG | 0b110) >>> 0);
    for (let t = 9; t < 13; t++) expect(fault(rig, t).eventDisposition).toBe('written');
    expect(prod(rig)).toBe((Q_OVFLG | 0b010) >>> 0);
    // The next overflow toggles OVFLG again (back to 0).
    expect(fault(rig, 13).eventDisposition).toBe('overflow');
    expect(prod(rig)).toBe(0b010);
    expect(fault(rig, 14).eventDisposition).toBe('overflow');
    expect(prod(rig)).toBe(0b010);
    expect(rig.smmu.stats.eventsWritten).toBe(10);
    expect(rig.smmu.stats.eventsLost).toBe(5);
  });

  it('EVENTQEN = 0: events are lost, nothing is written, no overflow and no interrupt', () => {
    const rig = smallRig();
    rig.smmu.write32(SMMU_CR0, CR0_SMMUEN | CR0_CMDQEN);
    const r = fault(rig, 0);
    expect(r.eventDisposition).toBe('queue-disabled');
    expect(r.event?.streamId).toBe(BAD_SID);
    expect(prod(rig)).toBe(0);
    expect(queueBytes(rig)).toEqual(new Array(128).fill(0));
    expect(rig.irqs).toEqual([]);

    // Fill the queue, then disable it: discards of a full but disabled queue do not overflow.
    rig.smmu.write32(SMMU_CR0, ALL_ENABLES);
    for (let t = 1; t <= 4; t++) expect(fault(rig, t).eventDisposition).toBe('written');
    rig.smmu.write32(SMMU_CR0, CR0_SMMUEN | CR0_CMDQEN);
    expect(fault(rig, 5).eventDisposition).toBe('queue-disabled');
    expect(fault(rig, 6).eventDisposition).toBe('queue-disabled');
    expect(prod(rig)).toBe(0b100);
    // Enabled again, the same full queue overflows.
    rig.smmu.write32(SMMU_CR0, ALL_ENABLES);
    expect(fault(rig, 7).eventDisposition).toBe('overflow');
    expect(prod(rig)).toBe((Q_OVFLG | 0b100) >>> 0);
  });

  it('an event-queue write abort activates GERROR.EVENTQ_ABT_ERR; PROD stays; nothing is written until GERRORN acknowledges', () => {
    const rig = smallRig();
    rig.mem.markAbsent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    const r = fault(rig, 0);
    expect(r.eventDisposition).toBe('write-abort');
    expect(gerrorActive(rig)).toBe(GERROR_EVENTQ_ABT_ERR);
    expect(rig.smmu.read32(SMMU_GERROR)).toBe(GERROR_EVENTQ_ABT_ERR);
    expect(prod(rig)).toBe(0);
    // The GERROR interrupt (wired: GERROR_IRQ_CFG0.ADDR = 0); the queue stayed empty, so no eventq interrupt.
    expect(rig.irqs).toEqual(['gerror']);

    // Memory is back, but the error is still active: the queue is not writable.
    rig.mem.markPresent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    expect(fault(rig, 1).eventDisposition).toBe('queue-error');
    expect(fault(rig, 2).eventDisposition).toBe('queue-error');
    expect(prod(rig)).toBe(0);
    expect(queueBytes(rig)).toEqual(new Array(128).fill(0));
    expect(rig.irqs).toEqual(['gerror']);

    // Acknowledge: GERRORN[2] := GERROR[2].
    rig.smmu.write32(SMMU_GERRORN, rig.smmu.read32(SMMU_GERROR));
    expect(gerrorActive(rig)).toBe(0);
    expect(fault(rig, 3).eventDisposition).toBe('written');
    expect(slot(rig, 0)).toEqual(badStreamIdRecord(BAD_SID + 3));
    expect(prod(rig)).toBe(1);
    expect(rig.irqs).toEqual(['gerror', 'eventq']);
  });

  it('a write abort with records already queued keeps them: PROD is not advanced past the aborting entry', () => {
    const rig = smallRig();
    fault(rig, 0);
    fault(rig, 1);
    rig.mem.markAbsent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    expect(fault(rig, 2).eventDisposition).toBe('write-abort');
    rig.mem.markPresent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    expect(prod(rig)).toBe(2);
    expect(consume(rig, 4, true).map((e) => e.streamId)).toEqual([BAD_SID, BAD_SID + 1]);
  });

  it('every disposition is reported alike by the DmaResult and the event hook', () => {
    const seen: [number, EventDisposition][] = [];
    const rig = smallRig({}, { event: (e, d) => seen.push([e.streamId, d]) });
    const results: [number, string][] = [];
    const go = (tag: number) => {
      const r = fault(rig, tag);
      results.push([r.event!.streamId, r.eventDisposition]);
    };
    go(0); // written
    rig.smmu.write32(SMMU_CR0, CR0_SMMUEN | CR0_CMDQEN);
    go(1); // queue-disabled
    rig.smmu.write32(SMMU_CR0, ALL_ENABLES);
    for (let t = 2; t <= 4; t++) go(t); // written (full)
    go(5); // overflow
    consume(rig, 4, true);
    rig.mem.markAbsent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    go(6); // write-abort
    rig.mem.markPresent(rig.eventqBase, 32 * EVENTQ_ENTRIES);
    go(7); // queue-error
    const expected: [number, EventDisposition][] = [
      [BAD_SID, 'written'],
      [BAD_SID + 1, 'queue-disabled'],
      [BAD_SID + 2, 'written'],
      [BAD_SID + 3, 'written'],
      [BAD_SID + 4, 'written'],
      [BAD_SID + 5, 'overflow'],
      [BAD_SID + 6, 'write-abort'],
      [BAD_SID + 7, 'queue-error'],
    ];
    expect(results).toEqual(expected);
    expect(seen).toEqual(expected);
  });

  it('EVENTQ_BASE.LOG2SIZE above IDR1.EVENTQS reads back as written but the queue holds 2^EVENTQS entries', () => {
    const rig = smallRig({ features: { eventqLog2Max: 2 } });
    const s = rig.smmu;
    s.write32(SMMU_CR0, CR0_SMMUEN | CR0_CMDQEN);
    s.write64n(SMMU_EVENTQ_BASE, rig.eventqBase + 5);
    s.write32(SMMU_EVENTQ_PROD, 0);
    s.write32(SMMU_EVENTQ_CONS, 0);
    s.write32(SMMU_CR0, ALL_ENABLES);
    expect(s.read32(SMMU_EVENTQ_BASE) & 0x1f).toBe(5);
    for (let t = 0; t < 4; t++) expect(fault(rig, t).eventDisposition).toBe('written');
    expect(prod(rig)).toBe(0b100);
    expect(fault(rig, 4).eventDisposition).toBe('overflow');
    expect(slot(rig, 0)).toEqual(badStreamIdRecord(BAD_SID));
  });
});

// ================================================================== interrupts

describe('event queue interrupt (IHI 0070 §3.18, §6.3.16, §6.3.30)', () => {
  it('fires only on the empty → non-empty transition, after PROD has moved', () => {
    const prodAtIrq: number[] = [];
    let rigRef: SmmuRig | undefined;
    const rig = smallRig({}, { irq: () => prodAtIrq.push(prod(rigRef!)) });
    rigRef = rig;
    fault(rig, 0);
    fault(rig, 1);
    fault(rig, 2);
    expect(rig.irqs).toEqual(['eventq']);
    expect(prodAtIrq).toEqual([1]);
    consume(rig, 1, true);
    fault(rig, 3);
    expect(rig.irqs).toEqual(['eventq']);
    consume(rig, 4, true);
    fault(rig, 4);
    expect(rig.irqs).toEqual(['eventq', 'eventq']);
    expect(prodAtIrq).toEqual([1, 0b101]);
    // Overflows and further records on a non-empty queue raise nothing.
    for (let t = 5; t < 9; t++) fault(rig, t);
    expect(rig.irqs).toEqual(['eventq', 'eventq']);
    expect(rig.msis).toEqual([]);
  });

  it('is not raised while IRQ_CTRL.EVENTQ_IRQEN = 0, nor for records queued before it was enabled', () => {
    const rig = smallRig();
    rig.smmu.write32(SMMU_IRQ_CTRL, IRQ_CTRL_GERROR_IRQEN);
    fault(rig, 0);
    expect(rig.irqs).toEqual([]);
    rig.smmu.write32(SMMU_IRQ_CTRL, BOTH_IRQS);
    fault(rig, 1);
    expect(rig.irqs).toEqual([]);
    consume(rig, 4, true);
    fault(rig, 2);
    expect(rig.irqs).toEqual(['eventq']);
  });

  it('is an MSI writing EVENTQ_IRQ_CFG1.DATA to EVENTQ_IRQ_CFG0.ADDR when ADDR is non-zero, with no wired pulse', () => {
    const rig = smallRig();
    const target = msiPage(rig) + 0x40;
    eventqMsi(rig, target, 0xcafe_0001);
    fault(rig, 0);
    expect(rig.mem.read32(target)).toBe(0xcafe_0001);
    expect(rig.msis).toEqual([{ addr: target, data: 0xcafe_0001 }]);
    expect(rig.irqs).toEqual([]);
    fault(rig, 1);
    expect(rig.msis).toHaveLength(1);
    consume(rig, 4, true);
    rig.mem.write32(target, 0);
    fault(rig, 2);
    expect(rig.mem.read32(target)).toBe(0xcafe_0001);
    expect(rig.msis).toEqual([
      { addr: target, data: 0xcafe_0001 },
      { addr: target, data: 0xcafe_0001 },
    ]);
    expect(rig.smmu.stats.msiWrites).toBe(2);
    expect(gerrorActive(rig)).toBe(0);
  });

  it('is a wired pulse when EVENTQ_IRQ_CFG0.ADDR is 0', () => {
    const rig = smallRig();
    const target = msiPage(rig);
    eventqMsi(rig, target, 0x1234);
    eventqMsi(rig, 0, 0x1234);
    fault(rig, 0);
    expect(rig.irqs).toEqual(['eventq']);
    expect(rig.msis).toEqual([]);
    expect(rig.mem.read32(target)).toBe(0);
  });

  it('an aborted event-queue MSI activates GERROR.MSI_EVENTQ_ABT_ERR and raises the GERROR interrupt; the record is kept', () => {
    const rig = smallRig();
    const target = msiPage(rig);
    eventqMsi(rig, target + 0x10, 0x5555_aaaa);
    rig.mem.markAbsent(target, PAGE_SIZE);
    const r = fault(rig, 0);
    expect(r.eventDisposition).toBe('written');
    expect(prod(rig)).toBe(1);
    expect(gerrorActive(rig)).toBe(GERROR_MSI_EVENTQ_ABT_ERR);
    expect(rig.msis).toEqual([]);
    expect(rig.irqs).toEqual(['gerror']);
  });
});

// ================================================================== GERROR

describe('GERROR and GERRORN (IHI 0070 §6.3.19, §6.3.20, §7.5)', () => {
  it('a command error activates GERROR.CMDQ_ERR and raises the GERROR interrupt on the wired line', () => {
    const rig = smallRig();
    expect(rig.submit(cmdRaw(ILLEGAL_OPCODE))).toBe(CERROR_ILL);
    expect(gerrorActive(rig)).toBe(GERROR_CMDQ_ERR);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS) & 0xf_ffff).toBe(0);
    expect(rig.irqs).toEqual(['gerror']);
    expect(rig.msis).toEqual([]);
  });

  it('a command error raises the GERROR interrupt as an MSI through GERROR_IRQ_CFG0/1', () => {
    const rig = smallRig();
    const target = msiPage(rig) + 0x80;
    gerrorMsi(rig, target, 0x6e77_0001);
    rig.submit(cmdRaw(ILLEGAL_OPCODE));
    expect(gerrorActive(rig)).toBe(GERROR_CMDQ_ERR);
    expect(rig.mem.read32(target)).toBe(0x6e77_0001);
    expect(rig.msis).toEqual([{ addr: target, data: 0x6e77_0001 }]);
    expect(rig.irqs).toEqual([]);
  });

  it('no GERROR interrupt is raised while IRQ_CTRL.GERROR_IRQEN = 0, but the error is active', () => {
    const rig = smallRig();
    rig.smmu.write32(SMMU_IRQ_CTRL, IRQ_CTRL_EVENTQ_IRQEN);
    rig.submit(cmdRaw(ILLEGAL_OPCODE));
    expect(gerrorActive(rig)).toBe(GERROR_CMDQ_ERR);
    expect(rig.irqs).toEqual([]);
    expect(rig.msis).toEqual([]);
  });

  it('an aborted GERROR MSI activates MSI_GERROR_ABT_ERR, which raises no further interrupt', () => {
    const rig = smallRig();
    const target = msiPage(rig);
    gerrorMsi(rig, target, 0x77);
    rig.mem.markAbsent(target, PAGE_SIZE);
    rig.submit(cmdRaw(ILLEGAL_OPCODE));
    expect(gerrorActive(rig)).toBe(GERROR_CMDQ_ERR | GERROR_MSI_GERROR_ABT_ERR);
    expect(rig.msis).toEqual([]);
    expect(rig.irqs).toEqual([]);
  });

  it('GERROR bits are activated by toggling, only while inactive; toggling GERRORN acknowledges', () => {
    const rig = smallRig();
    const s = rig.smmu;
    const target = msiPage(rig);
    eventqMsi(rig, target, 0x99);
    rig.mem.markAbsent(target, PAGE_SIZE);
    // First MSI abort: GERROR[5] toggles 0 → 1.
    fault(rig, 0);
    expect([s.read32(SMMU_GERROR), s.read32(SMMU_GERRORN)]).toEqual([GERROR_MSI_EVENTQ_ABT_ERR, 0]);
    expect(rig.irqs).toEqual(['gerror']);
    // Second abort while active: no toggle, no interrupt.
    consume(rig, 4, true);
    fault(rig, 1);
    expect([s.read32(SMMU_GERROR), s.read32(SMMU_GERRORN)]).toEqual([GERROR_MSI_EVENTQ_ABT_ERR, 0]);
    expect(rig.irqs).toEqual(['gerror']);
    // Acknowledge by toggling GERRORN[5].
    s.write32(SMMU_GERRORN, GERROR_MSI_EVENTQ_ABT_ERR);
    expect(gerrorActive(rig)).toBe(0);
    // The next abort toggles GERROR[5] back to 0, which is active again (GERROR ≠ GERRORN).
    consume(rig, 4, true);
    fault(rig, 2);
    expect([s.read32(SMMU_GERROR), s.read32(SMMU_GERRORN)]).toEqual([0, GERROR_MSI_EVENTQ_ABT_ERR]);
    expect(gerrorActive(rig)).toBe(GERROR_MSI_EVENTQ_ABT_ERR);
    expect(rig.irqs).toEqual(['gerror', 'gerror']);
    s.write32(SMMU_GERRORN, 0);
    expect(gerrorActive(rig)).toBe(0);
  });

  it('acknowledging CMDQ_ERR through GERRORN restarts the command queue at CONS', () => {
    const rig = smallRig();
    const s = rig.smmu;
    rig.submit(cmdRaw(ILLEGAL_OPCODE), cmdSync());
    expect(rig.cmdqState()).toEqual({ prod: 2, cons: 0, err: CERROR_ILL });
    // A second submission while the error is active is not consumed.
    rig.submit(cmdSync());
    expect(rig.cmdqState().cons).toBe(0);
    expect(rig.irqs).toEqual(['gerror']);
    // Fix the failing command, then acknowledge: consumption resumes from CONS without a PROD write.
    writeWords(rig.mem, rig.cmdqBase, cmdSync());
    s.write32(SMMU_GERRORN, s.read32(SMMU_GERROR));
    expect(gerrorActive(rig)).toBe(0);
    expect(rig.cmdqState().cons).toBe(3);
    expect(rig.cmdqState().prod).toBe(3);
  });
});

// ================================================================== peekEvents

describe('peekEvents', () => {
  it('returns the same records as draining, across the wrap, without consuming them', () => {
    const rig = smallRig();
    for (let t = 0; t < 3; t++) fault(rig, t, t === 1 ? 0x1234 : -1);
    consume(rig, 2, true);
    for (let t = 3; t < 6; t++) fault(rig, t, t);
    const consBefore = cons(rig);
    const peeked = rig.smmu.peekEvents();
    expect(cons(rig)).toBe(consBefore);
    expect(peeked.map((e) => [e.streamId, e.substreamId])).toEqual([
      [BAD_SID + 2, -1],
      [BAD_SID + 3, 3],
      [BAD_SID + 4, 4],
      [BAD_SID + 5, 5],
    ]);
    const drained = rig.drainEvents();
    expect(drained).toEqual(peeked);
    expect(rig.smmu.peekEvents()).toEqual([]);
  });

  it('returns nothing for an empty queue', () => {
    expect(smallRig().smmu.peekEvents()).toEqual([]);
  });
});

// ================================================================== model-based property

type Step = { kind: 'fault' } | { kind: 'consume'; k: number; ack: boolean };

describe('event queue model (property)', () => {
  it('the consumer reads exactly the produced faults in order minus those dropped while full; OVFLG toggles exactly on a drop with no pending overflow', () => {
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 3, arbitrary: fc.constant<Step>({ kind: 'fault' }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('consume' as const),
          k: fc.integer({ min: 0, max: 5 }),
          ack: fc.boolean(),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const rig = smallRig();
        // The model: queued tags, OVFLG and OVACKFLG as booleans.
        const queue: number[] = [];
        const kept: number[] = [];
        const read: number[] = [];
        let ovflg = false;
        let ovack = false;
        let tag = 0;
        for (const st of steps) {
          if (st.kind === 'fault') {
            const before = prod(rig);
            const r = fault(rig, tag);
            if (queue.length < EVENTQ_ENTRIES) {
              expect(r.eventDisposition).toBe('written');
              queue.push(tag);
              kept.push(tag);
            } else {
              expect(r.eventDisposition).toBe('overflow');
              const toggles = ovflg === ovack;
              if (toggles) ovflg = !ovflg;
              expect(((prod(rig) ^ before) & Q_OVFLG) !== 0).toBe(toggles);
            }
            tag++;
          } else {
            const got = consume(rig, st.k, st.ack);
            const expected = queue.splice(0, Math.min(st.k, queue.length));
            expect(got.map((e) => e.streamId - BAD_SID)).toEqual(expected);
            read.push(...expected);
            if (st.ack) ovack = ovflg;
          }
          expect((prod(rig) & Q_OVFLG) !== 0).toBe(ovflg);
          expect((cons(rig) & Q_OVFLG) !== 0).toBe(ovack);
        }
        read.push(...consume(rig, EVENTQ_ENTRIES, true).map((e) => e.streamId - BAD_SID));
        expect(read).toEqual(kept);
        expect(rig.smmu.stats.eventsWritten).toBe(kept.length);
        expect(rig.smmu.stats.eventsLost).toBe(tag - kept.length);
      }),
      { numRuns: 200 },
    );
  });
});

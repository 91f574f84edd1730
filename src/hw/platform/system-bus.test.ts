/**
 * The system bus: physical DMA without an IOMMU, translation through the SMMU (split segments,
 * faults, RAZ/WI), MMIO regions, aborts, the all-or-nothing rule, and re-entrant handlers.
 */
import { describe, expect, it } from 'vitest';
import { S1DSS_SSID0 } from '../../arch/smmuv3/ste.ts';
import { PAGE_SIZE, PhysMem } from '../memory.ts';
import { SmmuRig } from '../smmuv3/rig.ts';
import { cmdCfgiSte, cmdSync } from '../smmuv3/structures.ts';
import { type MmioHandler, SystemBus } from './system-bus.ts';

const RW = { read: true, write: true, user: true };

/** A recording MMIO handler. */
function recorder(): MmioHandler & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    read: (pa, out, sid) => {
      log.push(`r ${pa.toString(16)} ${out.length} ${sid}`);
      out.fill(0xab);
      return true;
    },
    write: (pa, data, sid) => {
      log.push(`w ${pa.toString(16)} ${Array.from(data).join(',')} ${sid}`);
      return true;
    },
  };
}

describe('without an IOMMU', () => {
  it('device addresses are physical addresses; MMIO regions take their range', () => {
    const mem = new PhysMem({ ram: [{ base: 0x4000_0000, size: 0x10_0000 }] });
    const bus = new SystemBus({ mem });
    const dev = recorder();
    bus.addMmio({ name: 'dev', base: 0x0900_0000, size: 0x1000, handler: dev });
    expect(bus.dmaWrite(5, -1, 0x4000_0010, new Uint8Array([1, 2, 3]))).toEqual({ ok: true });
    expect(mem.read(0x4000_0010, 3)).toEqual(new Uint8Array([1, 2, 3]));
    const out = new Uint8Array(3);
    expect(bus.dmaRead(5, -1, 0x4000_0010, out)).toEqual({ ok: true });
    expect(out).toEqual(new Uint8Array([1, 2, 3]));
    expect(bus.dmaWrite(5, -1, 0x0900_0040, new Uint8Array([9, 0, 0, 0]))).toEqual({ ok: true });
    expect(bus.dmaRead(6, 3, 0x0900_0000, new Uint8Array(2))).toEqual({ ok: true });
    expect(dev.log).toEqual(['w 9000040 9,0,0,0 5', 'r 9000000 2 6']);
    expect(bus.stats).toMatchObject({
      reads: 2,
      writes: 2,
      mmioReads: 1,
      mmioWrites: 1,
      bytesRead: 5,
      bytesWritten: 7,
    });
  });

  it('onRamWrite sees every write that lands in RAM (not MMIO, not refused ones)', () => {
    const mem = new PhysMem({ ram: [{ base: 0x4000_0000, size: 0x10_0000 }] });
    const bus = new SystemBus({ mem });
    bus.addMmio({ name: 'dev', base: 0x0900_0000, size: 0x1000, handler: recorder() });
    const seen: string[] = [];
    bus.onRamWrite = (pa, len, sid) => seen.push(`${pa.toString(16)}+${len}@${sid}`);
    bus.dmaWrite(3, -1, 0x4000_0010, new Uint8Array(5));
    bus.dmaWrite(3, -1, 0x0900_0000, new Uint8Array(4));
    bus.dmaWrite(4, -1, 0x3fff_fffe, new Uint8Array(4));
    bus.dmaRead(3, -1, 0x4000_0010, new Uint8Array(5));
    expect(seen).toEqual(['40000010+5@3']);
  });

  it('absent memory and accesses straddling an MMIO region abort and change nothing', () => {
    const mem = new PhysMem({ ram: [{ base: 0x4000_0000, size: 0x10_0000 }] });
    const bus = new SystemBus({ mem });
    const dev = recorder();
    bus.addMmio({ name: 'dev', base: 0x4000_1000, size: 0x1000, handler: dev });
    expect(bus.dmaWrite(1, -1, 0x3fff_fffe, new Uint8Array(4))).toEqual({
      ok: false,
      kind: 'abort',
      addr: 0x3fff_fffe,
    });
    expect(bus.dmaWrite(1, -1, 0x4000_0ffe, new Uint8Array([7, 7, 7, 7]))).toMatchObject({
      ok: false,
      kind: 'abort',
    });
    expect(mem.read8(0x4000_0ffe)).toBe(0);
    expect(dev.log).toEqual([]);
    expect(bus.stats.aborts).toBe(2);
    expect(bus.dmaWrite(1, -1, 0x3fff_fffe, new Uint8Array(0))).toEqual({ ok: true });
  });

  it('refuses overlapping regions (a wiring mistake) and removes regions', () => {
    const bus = new SystemBus({ mem: new PhysMem() });
    bus.addMmio({ name: 'a', base: 0x1000, size: 0x1000, handler: recorder() });
    expect(() => bus.addMmio({ name: 'b', base: 0x1800, size: 0x1000, handler: recorder() })).toThrow(
      /overlaps a/,
    );
    expect(() => bus.addMmio({ name: 'c', base: 0x3000, size: 0, handler: recorder() })).toThrow();
    expect(bus.removeMmio(0x1000)).toBe(true);
    expect(bus.removeMmio(0x1000)).toBe(false);
    expect(bus.mmioRegions()).toEqual([]);
  });
});

describe('through the SMMU', () => {
  function smmuBus(cd: { abort?: boolean } = {}) {
    const rig = new SmmuRig();
    const bus = new SystemBus({ mem: rig.mem, iommu: rig.smmu });
    const t = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
    const t1 = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
    const cds = rig.cdTable(0, 2);
    cds.write(0, { t0sz: 16, granule0: 12, ttb0: t.root, ipsBits: 48, asid: 1, ...cd });
    cds.write(1, { t0sz: 16, granule0: 12, ttb0: t1.root, ipsBits: 48, asid: 2, ...cd });
    rig.writeSte(3, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 2, s1Dss: S1DSS_SSID0 });
    rig.submit(cmdCfgiSte(3), cmdSync());
    // Two IOVA-contiguous pages on physical pages in the opposite order.
    const pa = rig.alloc.alloc(2 * PAGE_SIZE)!;
    t.map(0x10_0000, pa + PAGE_SIZE, PAGE_SIZE, RW);
    t.map(0x10_1000, pa, PAGE_SIZE, RW);
    const pa1 = rig.alloc.alloc(PAGE_SIZE)!;
    t1.map(0x10_0000, pa1, PAGE_SIZE, RW);
    return { rig, bus, pa, pa1, t };
  }

  it('translates with the StreamID and SubstreamID and performs each segment', () => {
    const { rig, bus, pa, pa1 } = smmuBus();
    const data = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    expect(bus.dmaWrite(3, -1, 0x10_0ff0, data)).toEqual({ ok: true });
    expect(rig.mem.read(pa + PAGE_SIZE + 0xff0, 16)).toEqual(data.subarray(0, 16));
    expect(rig.mem.read(pa, 16)).toEqual(data.subarray(16));
    const back = new Uint8Array(32);
    expect(bus.dmaRead(3, -1, 0x10_0ff0, back)).toEqual({ ok: true });
    expect(back).toEqual(data);
    expect(bus.dmaWrite(3, 1, 0x10_0000, new Uint8Array([0x5a]))).toEqual({ ok: true });
    expect(rig.mem.read8(pa1)).toBe(0x5a);
  });

  it('a fault part-way moves nothing and reports the device address where translation stopped', () => {
    const { rig, bus, pa } = smmuBus();
    expect(bus.dmaWrite(3, -1, 0x10_1ff0, new Uint8Array(32).fill(9))).toEqual({
      ok: false,
      kind: 'fault',
      addr: 0x10_2000,
    });
    expect(rig.mem.read8(pa + 0xff0)).toBe(0);
    expect(rig.drainEvents()).toMatchObject([{ name: 'F_TRANSLATION', streamId: 3, inputLo: 0x10_2000 }]);
    expect(bus.stats.faults).toBe(1);
    // An unconfigured StreamID: the SMMU aborts it too (C_BAD_STREAMID).
    expect(bus.dmaRead(300, -1, 0x10_0000, new Uint8Array(4))).toMatchObject({ ok: false, kind: 'fault' });
  });

  it('a CD with A = 0 terminates faults as RAZ/WI: reads return zeros, writes vanish, success', () => {
    const { bus } = smmuBus({ abort: false });
    const out = new Uint8Array(4).fill(0xee);
    expect(bus.dmaRead(3, -1, 0x99_0000, out)).toEqual({ ok: true });
    expect(out).toEqual(new Uint8Array(4));
    expect(bus.dmaWrite(3, -1, 0x99_0000, out)).toEqual({ ok: true });
    expect(bus.stats.razWi).toBe(2);
  });

  it('is re-entrant: an MMIO handler may start DMA of its own in the middle of an access', () => {
    const { rig, bus, pa, t } = smmuBus();
    const mmioPa = 0x0a00_0000;
    let nested = 0;
    bus.addMmio({
      name: 'kick',
      base: mmioPa,
      size: PAGE_SIZE,
      handler: {
        read: () => false,
        write: (_pa, data) => {
          nested++;
          // A nested multi-segment write, on the same translation context.
          return bus.dmaWrite(3, -1, 0x10_0ffc, data.subarray(0, 8)).ok;
        },
      },
    });
    t.map(0x20_0000, mmioPa, PAGE_SIZE, { ...RW, cache: 'device' });
    expect(bus.dmaWrite(3, -1, 0x20_0000, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]))).toEqual({ ok: true });
    expect(nested).toBe(1);
    expect(rig.mem.read(pa + PAGE_SIZE + 0xffc, 4)).toEqual(Uint8Array.from([1, 2, 3, 4]));
    expect(rig.mem.read(pa, 4)).toEqual(Uint8Array.from([5, 6, 7, 8]));
  });
});

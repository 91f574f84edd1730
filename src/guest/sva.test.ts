/**
 * SVA on the bare-metal rig: processes bound to PASIDs, DMA by the PASID DMA engine through the
 * guest's CDs into 4 KiB pages and 2 MiB blocks (checked in guest memory), munmap with TLB
 * invalidation turning the next DMA into a fault reported to the right process, the stale-IOTLB
 * fault-injection knob and its flush, unbind, kernel-domain faults and command-queue errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CS_SUCCESS, CS_WRITE_FAULT } from '../hw/pci/pasid-dma-regs.ts';
import { decodeCd, decodeSte } from '../hw/smmuv3/config.ts';
import { cmdRaw, cmdTlbiNhAsid } from '../hw/smmuv3/structures.ts';
import { EINVAL } from '../uapi/errno.ts';
import type { GuestJob } from './os.ts';
import type { PdmaRequest } from './pdma.ts';
import type { GuestProcess } from './process.ts';
import { GuestRig } from './testing.ts';
import type { Guest } from './trap.ts';

const MiB2 = 0x20_0000;

function run<T>(rig: GuestRig, name: string, body: () => Guest<T>): T {
  const j: GuestJob<T> = rig.runJob(rig.os.submit(0, name, body));
  expect(j.error, `${name}`).toBeUndefined();
  expect(j.done).toBe(true);
  return j.result as T;
}

function booted(): GuestRig {
  const rig = new GuestRig({ ramSize: 128 << 20 });
  expect(rig.boot().error).toBeUndefined();
  return rig;
}

function bindAll(rig: GuestRig, procs: GuestProcess[]): number[] {
  const dev = rig.os.devices[0]!;
  return procs.map((p) => run(rig, `bind ${p.name}`, () => rig.os.sva.bind(dev, p)));
}

function pattern(seed: number, len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (seed * 31 + i * 7) & 0xff);
}

function dma(rig: GuestRig, reqs: PdmaRequest[]) {
  return run(rig, 'dma', () => rig.os.pdma[0]!.submit(reqs));
}

function cdWords(rig: GuestRig, ssid: number): Uint32Array {
  const m = rig.os.smmu!.masters.get(0)!;
  const b = rig.mem.read(m.cd.cdAddr(ssid)!, 64)!;
  return new Uint32Array(b.buffer, b.byteOffset, 16);
}

function steOf(rig: GuestRig) {
  const m = rig.os.smmu!.masters.get(0)!;
  const b = rig.mem.read(m.steAddr, 64)!;
  const d = decodeSte(new Uint32Array(b.buffer, b.byteOffset, 16), rig.smmu!.features, false);
  if (!d.ok) throw new Error(d.reason);
  return d.value;
}

describe('SVA: binding processes to PASIDs', () => {
  it('4 processes on 4 PASIDs: copies into 4 KiB pages and 2 MiB blocks land in the right frames', () => {
    const rig = booted();
    const procs = [0, 1, 2, 3].map((i) => rig.os.spawn(`p${i}`));
    const pasids = bindAll(rig, procs);
    expect(pasids).toEqual([1, 2, 3, 4]);
    expect(procs.map((p) => p.pasid)).toEqual([1, 2, 3, 4]);
    // Every CD decodes with the process's ASID and table.
    const ste = steOf(rig);
    for (const p of procs) {
      const cd = decodeCd(cdWords(rig, p.pasid!), ste, rig.smmu!.features);
      expect(cd.ok).toBe(true);
      if (cd.ok) expect(cd.value.asid).toBe(p.asid);
    }
    const reqs: PdmaRequest[] = [];
    const expected: { p: GuestProcess; dst: number; data: Uint8Array }[] = [];
    procs.forEach((p, i) => {
      const huge = i % 2 === 1;
      const src = p.mmap(3 * 0x1000);
      const dst = p.mmap(huge ? MiB2 : 3 * 0x1000, { huge });
      expect(src).toBeGreaterThan(0);
      expect(dst).toBeGreaterThan(0);
      if (huge) expect(p.gpaOf(dst)! % MiB2).toBe(0);
      // A copy that crosses page boundaries in both buffers.
      const len = 0x1800;
      const data = pattern(i + 1, len);
      expect(p.write(src + 0x400, data)).toBe(0);
      reqs.push({ op: 'copy', proc: p, src: src + 0x400, dst: dst + 0x200, len });
      expected.push({ p, dst: dst + 0x200, data });
    });
    const recs = dma(rig, reqs);
    expect(recs.map((r) => r.status)).toEqual([CS_SUCCESS, CS_SUCCESS, CS_SUCCESS, CS_SUCCESS]);
    expect(recs.map((r) => r.pasid)).toEqual([1, 2, 3, 4]);
    for (const e of expected) {
      // Check guest-physical memory behind each page, not counters.
      for (let off = 0; off < e.data.length; off += 0x100) {
        const gpa = e.p.gpaOf(e.dst + off)!;
        expect(rig.mem.read(gpa, 0x100)).toEqual(e.data.subarray(off, off + 0x100));
      }
    }
    expect(rig.os.stats.interrupts[rig.os.pdma[0]!.intids[0]!]).toBe(1);
  });

  it('fills a whole 2 MiB block through its PASID', () => {
    const rig = booted();
    const p = rig.os.spawn('big');
    bindAll(rig, [p]);
    const dst = p.mmap(MiB2, { huge: true });
    const recs = dma(rig, [{ op: 'fill', proc: p, dst, len: MiB2, pattern: [0x0403_0201, 0x0807_0605] }]);
    expect(recs[0]!.status).toBe(CS_SUCCESS);
    const gpa = p.gpaOf(dst)!;
    expect(Array.from(rig.mem.read(gpa + MiB2 - 8, 8)!)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(rig.mem.read(gpa, 4)!)).toEqual([1, 2, 3, 4]);
  });

  it('munmap invalidates: the next DMA faults and the fault reaches that process', () => {
    const rig = booted();
    const [a, b] = [rig.os.spawn('a'), rig.os.spawn('b')];
    bindAll(rig, [a, b]);
    const va = a.mmap(2 * 0x1000);
    const vb = b.mmap(0x1000);
    expect(dma(rig, [{ op: 'fill', proc: a, dst: va + 0x1000, len: 64, pattern: [1, 1] }])[0]!.status).toBe(
      CS_SUCCESS,
    );
    const tlbi0 = rig.smmu!.stats.byCommand.CMD_TLBI_NH_VA ?? 0;
    expect(run(rig, 'munmap', () => rig.os.sva.munmap(a, va + 0x1000, 0x1000))).toBe(0);
    expect((rig.smmu!.stats.byCommand.CMD_TLBI_NH_VA ?? 0) - tlbi0).toBe(1);
    expect(a.gpaOf(va + 0x1000)).toBeUndefined();
    const recs = dma(rig, [
      { op: 'fill', proc: a, dst: va + 0x1000 + 0x40, len: 64, pattern: [2, 2] },
      { op: 'fill', proc: b, dst: vb, len: 64, pattern: [3, 3] },
    ]);
    expect(recs[0]).toMatchObject({ status: CS_WRITE_FAULT, faultAddr: va + 0x1040, pasid: a.pasid });
    expect(recs[1]!.status).toBe(CS_SUCCESS);
    expect(a.faults).toEqual([
      { pasid: a.pasid, addr: va + 0x1040, event: 'F_TRANSLATION', write: true, device: '0000:00:00.0' },
    ]);
    expect(b.faults).toEqual([]);
    expect(rig.os.stats.events).toBe(1);
    // The page before it is still mapped and usable.
    expect(
      dma(rig, [{ op: 'fill', proc: a, dst: va, len: 8, pattern: [0x5a5a_5a5a, 0x5a5a_5a5a] }])[0]!.status,
    ).toBe(CS_SUCCESS);
    expect(a.read(va, 1)![0]).toBe(0x5a);
  });

  it('stale IOTLB: remap without TLBI keeps DMA on the old frame until flush', () => {
    const rig = booted();
    const p = rig.os.spawn('stale');
    bindAll(rig, [p]);
    const va = p.mmap(0x1000);
    expect(
      dma(rig, [{ op: 'fill', proc: p, dst: va, len: 16, pattern: [0x1111_1111, 0x1111_1111] }])[0]!.status,
    ).toBe(CS_SUCCESS);
    const r = rig.os.sva.remapNoInvalidate(p, va);
    if (typeof r === 'number') throw new Error(`remap ${r}`);
    expect(p.gpaOf(va)).toBe(r.newGpa);
    dma(rig, [{ op: 'fill', proc: p, dst: va, len: 16, pattern: [0x2222_2222, 0x2222_2222] }]);
    // The device used its cached translation: the old frame got the data, the new one did not.
    expect(rig.mem.read8(r.oldGpa)).toBe(0x22);
    expect(rig.mem.read8(r.newGpa)).toBe(0);
    expect(p.read(va, 1)![0]).toBe(0);
    expect(run(rig, 'flush', () => rig.os.sva.flush(p, va, 0x1000))).toBe(0);
    dma(rig, [{ op: 'fill', proc: p, dst: va, len: 16, pattern: [0x3333_3333, 0x3333_3333] }]);
    expect(rig.mem.read8(r.newGpa)).toBe(0x33);
    expect(p.read(va, 1)![0]).toBe(0x33);
  });

  it('unbind clears the CD, invalidates the ASID and frees the PASID for reuse', () => {
    const rig = booted();
    const [a, b] = [rig.os.spawn('a'), rig.os.spawn('b')];
    bindAll(rig, [a, b]);
    const dev = rig.os.devices[0]!;
    const va = a.mmap(0x1000);
    dma(rig, [{ op: 'fill', proc: a, dst: va, len: 8, pattern: [1, 1] }]);
    const asidInv = rig.smmu!.stats.byCommand.CMD_TLBI_NH_ASID ?? 0;
    expect(run(rig, 'unbind', () => rig.os.sva.unbind(dev, a))).toBe(0);
    expect((rig.smmu!.stats.byCommand.CMD_TLBI_NH_ASID ?? 0) - asidInv).toBe(1);
    expect(a.pasid).toBeUndefined();
    expect(rig.os.sva.pasids.has(1)).toBe(false);
    expect(decodeCd(cdWords(rig, 1), steOf(rig), rig.smmu!.features)).toMatchObject({
      ok: false,
      reason: 'CD.V is 0',
    });
    // A second unbind is -ENOENT; a new process gets PASID 1 again.
    expect(run(rig, 'unbind again', () => rig.os.sva.unbind(dev, a))).toBeLessThan(0);
    const c = rig.os.spawn('c');
    expect(bindAll(rig, [c])).toEqual([1]);
    expect(b.pasid).toBe(2);
  });

  it('works with a single MSI-X vector shared by completion and errors', () => {
    const rig = new GuestRig({ device: { msixVectors: 1 } });
    expect(rig.boot().error).toBeUndefined();
    const p = rig.os.spawn('one');
    bindAll(rig, [p]);
    const dst = p.mmap(0x1000);
    expect(dma(rig, [{ op: 'fill', proc: p, dst, len: 8, pattern: [4, 4] }])[0]!.status).toBe(CS_SUCCESS);
    expect(rig.os.pdma[0]!.intids).toHaveLength(1);
    expect(p.read(dst, 1)![0]).toBe(4);
  });

  it('a DMA without PASID to an unmapped IOVA is a kernel-domain fault', () => {
    const rig = booted();
    const recs = dma(rig, [{ op: 'fill', dst: 0x7000_0000, len: 8, pattern: [0, 0] }]);
    expect(recs[0]!.status).toBe(CS_WRITE_FAULT);
    expect(rig.os.sva.kernelFaults).toEqual([
      { device: '0000:00:00.0', pasid: -1, addr: 0x7000_0000, event: 'F_TRANSLATION', write: true },
    ]);
  });

  it('an illegal command (test knob) gets CERROR_ILL handled and the queue recovers', () => {
    const rig = booted();
    const smmu = rig.os.smmu!;
    const gerrors0 = rig.os.stats.gerrors;
    smmu.injectCommand = cmdRaw(0x7f);
    expect(run(rig, 'bad cmd', () => smmu.submit([cmdTlbiNhAsid(0, 1)]))).toBe(-EINVAL);
    expect(smmu.cmdErrors).toEqual([{ error: 'CERROR_ILL', opcode: 0x7f }]);
    expect(rig.os.stats.commandErrors).toBe(1);
    // The GERROR interrupt came after the submitter had recovered: nothing left to do.
    expect(rig.os.stats.gerrors).toBe(gerrors0 + 1);
    expect(run(rig, 'good cmd', () => smmu.submit([cmdTlbiNhAsid(0, 1)]))).toBe(0);
    expect(rig.smmu!.stats.commandErrors).toBe(1);
    // SVA still works afterwards.
    const p = rig.os.spawn('after');
    expect(bindAll(rig, [p])).toEqual([1]);
  });

  it('property: random mmap/munmap/DMA sequences agree with a model of the mappings', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ k: fc.constant('map' as const), pages: fc.integer({ min: 1, max: 3 }) }),
            fc.record({ k: fc.constant('unmap' as const), which: fc.nat() }),
            fc.record({
              k: fc.constant('dma' as const),
              which: fc.nat(),
              page: fc.nat(),
              byte: fc.integer({ min: 1, max: 255 }),
            }),
          ),
          { minLength: 1, maxLength: 12 },
        ),
        (ops) => {
          const rig = booted();
          const p = rig.os.spawn('prop');
          bindAll(rig, [p]);
          const live: { va: number; pages: number }[] = [];
          const dead: { va: number; pages: number }[] = [];
          let faults = 0;
          for (const op of ops) {
            if (op.k === 'map') {
              const va = p.mmap(op.pages * 0x1000);
              live.push({ va, pages: op.pages });
            } else if (op.k === 'unmap' && live.length > 0) {
              const [m] = live.splice(op.which % live.length, 1);
              expect(run(rig, 'munmap', () => rig.os.sva.munmap(p, m!.va, m!.pages * 0x1000))).toBe(0);
              dead.push(m!);
            } else if (op.k === 'dma') {
              const all = [...live.map((m) => ({ m, ok: true })), ...dead.map((m) => ({ m, ok: false }))];
              if (all.length === 0) continue;
              const t = all[op.which % all.length]!;
              const va = t.m.va + (op.page % t.m.pages) * 0x1000 + 8;
              const pat = op.byte * 0x0101_0101;
              const [r] = dma(rig, [{ op: 'fill', proc: p, dst: va, len: 8, pattern: [pat, pat] }]);
              if (t.ok) {
                expect(r!.status).toBe(CS_SUCCESS);
                expect(rig.mem.read8(p.gpaOf(va)!)).toBe(op.byte);
              } else {
                expect(r).toMatchObject({ status: CS_WRITE_FAULT, faultAddr: va });
                faults++;
                expect(p.faults.at(-1)).toMatchObject({ addr: va, pasid: 1, write: true });
              }
            }
          }
          expect(p.faults.length).toBe(faults);
        },
      ),
      { numRuns: 20, seed: 6 },
    );
  });
});

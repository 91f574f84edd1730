/**
 * The device's transaction interface: accesses split at translation boundaries, statistics
 * counted exactly once whichever internal path serves an access, malformed requests refused
 * without an exception, and the results of the IOTLB-hit fast path identical to the general path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACCESS_READ, ACCESS_WRITE } from '../../arch/vmsa.ts';
import { SmmuRig } from './rig.ts';
import { type DmaRequest, DmaResult, TXN_ABORT, TXN_OK } from './smmu.ts';
import { cmdCfgiSte, cmdSync } from './structures.ts';

function stage1Rig() {
  const rig = new SmmuRig();
  const t = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
  // Three virtually contiguous pages on scattered physical pages, the middle one read-only.
  t.map(0x10_0000, 0x9000_0000, 0x1000, { read: true, write: true, user: true });
  t.map(0x10_1000, 0x7000_0000, 0x1000, { read: true, write: false, user: true });
  t.map(0x10_2000, 0x8000_0000, 0x1000, { read: true, write: true, user: true });
  const cds = rig.cdTable();
  cds.write(0, { t0sz: 16, granule0: 12, ttb0: t.root, ipsBits: 48, asid: 1 });
  rig.writeSte(1, { config: 's1', s1ContextPtr: cds.ptr });
  rig.submit(cmdCfgiSte(1), cmdSync());
  return rig;
}

const read = (iova: number, size: number): DmaRequest => ({
  streamId: 1,
  substreamId: -1,
  iova,
  size,
  access: ACCESS_READ,
  privileged: false,
});

describe('transactions', () => {
  it('an access crossing pages is split into one segment per translation', () => {
    const r = stage1Rig().smmu.transact(read(0x10_0ff0, 0x1020));
    expect(r.status).toBe(TXN_OK);
    expect(r.count).toBe(3);
    expect(r.iova.slice(0, 3)).toEqual([0x10_0ff0, 0x10_1000, 0x10_2000]);
    expect(r.pa.slice(0, 3)).toEqual([0x9000_0ff0, 0x7000_0000, 0x8000_0000]);
    expect(r.len.slice(0, 3)).toEqual([0x10, 0x1000, 0x10]);
  });

  it('a fault part-way keeps the segments translated before it', () => {
    const smmu = stage1Rig().smmu;
    const r = smmu.transact({ ...read(0x10_0ff0, 0x20), access: ACCESS_WRITE });
    expect(r.status).toBe(TXN_ABORT);
    expect(r.count).toBe(1);
    expect(r.faultAddr).toBe(0x10_1000);
    expect(r.event?.name).toBe('F_PERMISSION');
  });

  it('zero-size accesses translate nothing; malformed requests abort without an event or exception', () => {
    const smmu = stage1Rig().smmu;
    expect(smmu.transact(read(0x10_0000, 0)).count).toBe(0);
    for (const bad of [
      read(-1, 4),
      read(0.5, 4),
      read(2 ** 53, 4),
      read(0x10_0000, Number.NaN),
      read(0x10_0000, -4),
    ]) {
      const r = smmu.transact(bad);
      expect(r.status).toBe(TXN_ABORT);
      expect(r.event).toBeNull();
      expect(r.reason).toMatch(/malformed/);
    }
  });

  it('IOTLB statistics count each translation exactly once', () => {
    const smmu = stage1Rig().smmu;
    const out = new DmaResult();
    smmu.transact(read(0x10_0000, 4), out); // miss + walk
    smmu.transact(read(0x10_0008, 4), out); // hit (fast path)
    smmu.transact(read(0x10_0010, 4), out); // hit (fast path)
    smmu.transact(read(0x10_1000, 4), out); // miss + walk on the read-only page (a faulting walk caches nothing)
    smmu.transact({ ...read(0x10_1000, 4), access: ACCESS_WRITE }, out); // hit, permission fault from the TLB
    const s = smmu.iotlb.stats;
    expect([s.lookups, s.misses, s.hits]).toEqual([5, 2, 3]);
    expect(smmu.stats.walks).toBe(2);
    expect(smmu.stats.transactions).toBe(5);
    expect(smmu.stats.byEvent.F_PERMISSION).toBe(1);
  });

  it('a reused result gives the same answers as fresh ones, in any order of accesses', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            off: fc.integer({ min: 0, max: 0x3000 }),
            size: fc.integer({ min: 0, max: 0x2000 }),
            write: fc.boolean(),
          }),
          {
            maxLength: 40,
          },
        ),
        (ops) => {
          const a = stage1Rig().smmu;
          const b = stage1Rig().smmu;
          const reused = new DmaResult();
          for (const op of ops) {
            const req: DmaRequest = {
              ...read(0x10_0000 + op.off, op.size),
              access: op.write ? ACCESS_WRITE : ACCESS_READ,
            };
            a.transact(req, reused);
            const fresh = b.transact(req);
            expect(reused.status).toBe(fresh.status);
            expect(reused.count).toBe(fresh.count);
            expect(reused.pa.slice(0, reused.count)).toEqual(fresh.pa.slice(0, fresh.count));
            expect(reused.len.slice(0, reused.count)).toEqual(fresh.len.slice(0, fresh.count));
            expect(reused.event?.name).toBe(fresh.event?.name);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

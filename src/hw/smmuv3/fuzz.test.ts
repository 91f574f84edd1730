/**
 * Hostile input never escapes the model as an exception: random words as STEs, CDs, L1
 * descriptors and translation tables, random MMIO writes (reserved values, out-of-range queue
 * indexes, misaligned offsets), random commands, random transactions. Every translation reads a
 * bounded number of descriptors, and a table that points at itself ends the walk at the last level.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SMMU_CMDQ_PROD, SMMU_CR0, SMMU_REGISTERS } from '../../arch/smmuv3/registers.ts';
import { ACCESS_READ, type Access } from '../../arch/vmsa.ts';
import { SmmuRig, writeWords } from './rig.ts';
import { cmdCfgiAll, cmdSync, cmdTlbiNsnhAll, encodeCd, encodeSte } from './structures.ts';

const words = (n: number) => fc.uint32Array({ minLength: n, maxLength: n });

describe('hostile input', () => {
  it('random STEs, CDs, L1CDs, tables, commands and transactions: no exception, bounded walks', () => {
    fc.assert(
      fc.property(
        words(16),
        words(16),
        words(2),
        fc.array(words(2), { minLength: 8, maxLength: 64 }),
        fc.array(words(4), { maxLength: 12 }),
        fc.array(
          fc.record({
            sid: fc.integer({ min: 0, max: 300 }),
            ssid: fc.integer({ min: -1, max: 70 }),
            iova: fc.nat({ max: 2 ** 48 }),
            access: fc.constantFrom<Access>(0, 1, 2),
            priv: fc.boolean(),
          }),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        (ste, cd, l1cd, tableWords, commands, txns) => {
          const rig = new SmmuRig();
          // Random words in the places the SMMU reads: an STE, a CD table with a random L1CD, table pages.
          const cdTable = rig.alloc.alloc(0x1000)!;
          const tables = rig.alloc.alloc(0x1000)!;
          writeWords(rig.mem, cdTable, cd);
          writeWords(rig.mem, cdTable + 0x800, l1cd);
          for (const [i, w] of tableWords.entries()) writeWords(rig.mem, tables + 8 * ((i * 37) % 512), w);
          rig.writeSte(0, ste);
          // A plausible STE/CD pair over the random tables too, so walks start on hostile descriptors.
          rig.writeSte(1, encodeSte({ config: 's1', s1ContextPtr: cdTable + 0x400 }));
          writeWords(
            rig.mem,
            cdTable + 0x400,
            encodeCd({ t0sz: 16, granule0: 12, ttb0: tables, ipsBits: 48, asid: 1 }),
          );
          rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync());
          rig.submit(...commands);
          rig.ackGerror();
          const before = rig.smmu.stats.descReads;
          for (const t of txns) {
            const r = rig.smmu.transact({
              streamId: t.sid % 4,
              substreamId: t.ssid,
              iova: t.iova,
              size: 8,
              access: t.access,
              privileged: t.priv,
            });
            expect([0, 1, 2]).toContain(r.status);
          }
          expect(rig.smmu.stats.maxDescReadsPerWalk).toBeLessThanOrEqual(24);
          expect(rig.smmu.stats.descReads - before).toBeLessThanOrEqual(24 * txns.length);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('random MMIO writes anywhere in the register frame: no exception, the SMMU keeps working', () => {
    const offsets = [
      ...SMMU_REGISTERS.map((r) => r.offset),
      ...SMMU_REGISTERS.map((r) => r.offset + 4),
      0x1,
      0xfffc,
      0x1_0000,
      0x2_0000,
    ];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...offsets), fc.nat({ max: 0xffff_ffff })), { maxLength: 40 }),
        (writes) => {
          const rig = new SmmuRig();
          for (const [off, v] of writes) {
            if (off === SMMU_CR0) continue; // keep the SMMU enabled so translations still run
            rig.smmu.write32(off, v);
            rig.smmu.read32(off);
          }
          rig.smmu.write32(SMMU_CMDQ_PROD, 0xffff_ffff); // an index far past the queue size
          const r = rig.smmu.transact({
            streamId: 0,
            substreamId: -1,
            iova: 0x1000,
            size: 4,
            access: ACCESS_READ,
            privileged: false,
          });
          expect([0, 1, 2]).toContain(r.status);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a table that points at itself ends the walk at level 3', () => {
    const rig = new SmmuRig();
    const t = rig.alloc.alloc(0x1000)!;
    // Every entry of the page is a table descriptor pointing at the page itself.
    for (let i = 0; i < 512; i++) rig.mem.write64(t + 8 * i, (t | 3) >>> 0, 0);
    const cds = rig.cdTable();
    cds.write(0, { t0sz: 16, granule0: 12, ttb0: t, ipsBits: 48, asid: 1 });
    rig.writeSte(1, { config: 's1', s1ContextPtr: cds.ptr });
    rig.submit(cmdCfgiAll(), cmdSync());
    const r = rig.smmu.translate(1, -1, 0x1234_5678_9000, ACCESS_READ, true);
    // At level 3 the same bits read as a page descriptor (AF clear): an access-flag fault, after 4 reads.
    expect(r.event?.name).toBe('F_ACCESS');
    expect(rig.smmu.stats.maxDescReadsPerWalk).toBe(4);
  });
});

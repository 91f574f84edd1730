/**
 * The fast walker against the BigInt reference walker on random translation tables — valid,
 * malformed and hostile (invalid and reserved descriptors, blocks at illegal levels, table
 * pointers to absent memory or beyond the output size, access-flag and permission variety,
 * hierarchical attributes) — for stage 1, stage 2 and nested walks in every granule. Both must
 * agree on the fault (kind, stage, CLASS, IPA, fetch address) or on the output, size and
 * permissions. Plus directed tests of walk geometry and the 24-read nested walk.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prng } from '../../arch/prng.ts';
import {
  ACCESS_READ,
  ACCESS_WRITE,
  type Granule,
  levelShift,
  PERM,
  s1PermBit,
  s2PermBit,
  WALK_OK,
  WALK_TRANSLATION,
} from '../../arch/vmsa.ts';
import { PhysMem } from '../memory.ts';
import { OffsetMemory } from '../memory-view.ts';
import { PageAllocator } from '../page-alloc.ts';
import { PageTable } from './pgtable.ts';
import { type StageRegime, s1Regime, s2Regime } from './regime.ts';
import { refTranslate } from './walk-ref.ts';
import { type S1Context, Walker } from './walker.ts';

interface RandomTables {
  readonly mem: PhysMem;
  readonly tablePages: number[];
  readonly rootTable: number;
}

/**
 * Fills `count` table pages (granule-sized, at `base`) with random descriptors. Table descriptors
 * point mostly at other pages of the set, sometimes at absent memory or far away; leaves carry
 * random attributes and output addresses, some beyond `oaBits`.
 */
function randomTables(
  mem: PhysMem,
  rnd: () => number,
  granule: Granule,
  base: number,
  count: number,
  oaBits: number,
  absentPage: number,
): RandomTables {
  const pageSize = 2 ** granule;
  const tablePages = Array.from({ length: count }, (_, i) => base + i * pageSize);
  const pick = (n: number): number => rnd() % n;
  for (const page of tablePages) {
    for (let off = 0; off < pageSize; off += 8) {
      const kind = pick(100);
      let lo = 0;
      let hi = 0;
      if (kind < 15) {
        lo = rnd() & ~1; // invalid
        hi = rnd();
      } else if (kind < 50) {
        const r = pick(20);
        const target =
          r === 0
            ? absentPage
            : r === 1
              ? 2 ** Math.min(oaBits + 1, 52) - pageSize
              : tablePages[pick(count)]!;
        lo = ((target % 2 ** 32) | 3) >>> 0;
        hi = Math.floor(target / 2 ** 32);
        if (pick(4) === 0) hi |= (pick(4) << 29) | (pick(2) << 28) | (pick(2) << 27); // APTable, UXNTable, PXNTable
        if (pick(8) === 0) hi |= rnd() & 0x0fff_0000; // garbage in RES0 / ignored bits
      } else if (kind < 90) {
        const oaHi = pick(6) === 0 ? rnd() & 0xffff : pick(4);
        lo = (rnd() & ~0xfff) | (pick(2) === 0 ? 3 : 1); // page or block
        lo = (lo & ~(3 << 6)) | (pick(4) << 6); // AP / S2AP
        if (pick(8) !== 0) lo |= 1 << 10; // AF
        if (pick(2) === 0) lo |= 1 << 11; // nG
        hi = oaHi | (pick(4) === 0 ? 1 << 22 : 0) | (pick(4) === 0 ? 1 << 21 : 0);
        lo >>>= 0;
      } else {
        lo = rnd();
        hi = rnd();
      }
      mem.write64(page + off, lo, hi);
    }
  }
  return { mem, tablePages, rootTable: tablePages[0]! };
}

interface Case {
  readonly granule: Granule;
  readonly s1Bits: number;
  readonly s2Bits: number;
  readonly oaBits: number;
  readonly nested: boolean;
}

function compare(
  walker: Walker,
  mem: PhysMem,
  s1: S1Context | null,
  s2: StageRegime | null,
  va: number,
  need1: number,
  need2: number,
): void {
  const hi = Math.floor(va / 2 ** 32) >>> 0;
  const lo = va >>> 0;
  const f = walker.translate(s1, s2, hi, lo, need1, need2);
  const ref = refTranslate(mem, s1, s2, BigInt(va), need1, need2, { qemuOrder: walker.qemuOrder });
  expect(f, `fault kind for va 0x${va.toString(16)}`).toBe(ref.fault);
  if (ref.fault === WALK_OK) {
    expect(BigInt(walker.outHi) * 2n ** 32n + BigInt(walker.outLo)).toBe(ref.pa);
    expect(walker.shift).toBe(ref.shift);
    expect(walker.perms).toBe(ref.perms);
    expect(walker.nG).toBe(ref.nG);
  } else {
    expect(walker.faultS2).toBe(ref.s2);
    expect(walker.faultClass).toBe(ref.cls);
    if (ref.s2) expect(BigInt(walker.faultIpaHi) * 2n ** 32n + BigInt(walker.faultIpaLo)).toBe(ref.ipa);
    if (ref.fetch !== 0n) expect(BigInt(walker.fetchHi) * 2n ** 32n + BigInt(walker.fetchLo)).toBe(ref.fetch);
  }
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  granule: fc.constantFrom<Granule>(12, 14, 16),
  s1Bits: fc.integer({ min: 25, max: 48 }),
  s2Bits: fc.integer({ min: 30, max: 48 }),
  oaBits: fc.constantFrom(36, 40, 44, 48),
  nested: fc.boolean(),
});

describe('fast walker agrees with the reference walker', () => {
  it('on random, partly malformed tables: stage 1, stage 2 and nested, all granules', () => {
    fc.assert(
      fc.property(caseArb, fc.integer({ min: 1, max: 0x7fff_ffff }), fc.boolean(), (c, seed, qemuOrder) => {
        const rnd = prng(seed);
        const mem = new PhysMem({ addrBits: 52 });
        const absent = 0x7f00_0000;
        mem.markAbsent(absent, 2 ** c.granule);
        const t1 = randomTables(mem, rnd, c.granule, 0x1000_0000, 6, c.oaBits, absent);
        const t2 = randomTables(mem, rnd, c.granule, 0x2000_0000, 6, c.oaBits, absent);
        const g = c.granule;
        const r1 = s1Regime({
          granule: g,
          txsz: 64 - c.s1Bits,
          ttb: t1.rootTable,
          oaBits: c.oaBits,
          affd: (seed & 1) === 1,
          had: (seed & 2) === 2,
          twoPrivilege: (seed & 4) !== 4,
          pan: (seed & 8) === 8,
          wxn: (seed & 16) === 16,
        });
        // Stage 2: pick the start level that the input size allows (concatenating when needed).
        let r2: StageRegime | null = null;
        for (let sl0 = 0; sl0 < 4 && r2 === null; sl0++) {
          const r = s2Regime({
            granule: g,
            t0sz: 64 - c.s2Bits,
            sl0,
            ttb: t2.rootTable,
            oaBits: c.oaBits,
            affd: (seed & 32) === 32,
            paMaxBits: 48,
            stt: false,
          });
          if (r.ok) r2 = r.regime;
        }
        if (!r1.ok) return;
        const walker = new Walker(mem);
        walker.qemuOrder = qemuOrder;
        const s1: S1Context = { tt0: r1.regime, tt1: null, tbi0: false, tbi1: false, twoRanges: true };
        for (let q = 0; q < 40; q++) {
          const va = (rnd() % 2 ** Math.min(c.s1Bits - 32 + 1, 21)) * 2 ** 32 + rnd();
          const access = (q % 3) as 0 | 1 | 2;
          const priv = (q & 4) === 4;
          compare(walker, mem, s1, null, va, s1PermBit(access, priv), 0);
          if (r2 !== null) {
            compare(walker, mem, null, r2, va, 0, s2PermBit(access, priv));
            if (c.nested) compare(walker, mem, s1, r2, va, s1PermBit(access, priv), s2PermBit(access, priv));
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('on tables built by the page-table builder, including TTB1 and TBI ranges', () => {
    const mem = new PhysMem();
    const alloc = new PageAllocator(mem, 0x4000_0000, 0x100_0000);
    const t0 = PageTable.create(alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 48 });
    if (!t0.ok) throw new Error(t0.detail);
    expect(
      t0.table.map(0x7000_0000, 0x9000_0000, 0x20_0000, { read: true, write: false, user: true }).ok,
    ).toBe(true);
    const r = t0.table.regime({ twoPrivilege: true });
    if (!r.ok) throw new Error(r.reason);
    const walker = new Walker(mem);
    const s1: S1Context = { tt0: r.regime, tt1: r.regime, tbi0: true, tbi1: false, twoRanges: true };
    const need = s1PermBit(ACCESS_READ, false);
    // Top byte ignored on the TTB0 half: 0xab00_0000_7000_0000 translates like 0x7000_0000.
    expect(walker.translate(s1, null, 0xab00_0000, 0x7000_0010, need, 0)).toBe(WALK_OK);
    expect(walker.outLo).toBe(0x9000_0010);
    // TTB1 half: all-ones above the input size selects TTB1; a mixed top is a translation fault.
    expect(walker.translate(s1, null, 0xffff_0000, 0x7000_0010, need, 0)).toBe(WALK_OK);
    expect(walker.translate(s1, null, 0xfffe_0000, 0x7000_0010, need, 0)).toBe(WALK_TRANSLATION);
    // Writes to a read-only page are refused; reads of the same page are fine.
    expect(walker.translate(s1, null, 0, 0x7000_0010, s1PermBit(ACCESS_WRITE, false), 0)).not.toBe(WALK_OK);
  });
});

describe('walk geometry', () => {
  it('level shifts and start levels follow the granule tables', () => {
    expect([0, 1, 2, 3].map((l) => levelShift(12, l))).toEqual([39, 30, 21, 12]);
    expect([0, 1, 2, 3].map((l) => levelShift(14, l))).toEqual([47, 36, 25, 14]);
    expect([1, 2, 3].map((l) => levelShift(16, l))).toEqual([42, 29, 16]);
    const at = (g: Granule, bits: number): number => {
      const r = s1Regime({
        granule: g,
        txsz: 64 - bits,
        ttb: 0,
        oaBits: 48,
        affd: false,
        had: false,
        twoPrivilege: true,
        pan: false,
        wxn: false,
      });
      if (!r.ok) throw new Error(r.reason);
      return r.regime.startLevel;
    };
    expect([at(12, 48), at(12, 39), at(12, 30), at(12, 25)]).toEqual([0, 1, 2, 2]);
    expect([at(14, 48), at(14, 47), at(14, 36), at(14, 25)]).toEqual([0, 1, 2, 3]);
    expect([at(16, 48), at(16, 42), at(16, 29), at(16, 25)]).toEqual([1, 2, 3, 3]);
  });

  it('stage-2 start levels and concatenation: valid and invalid S2SL0/T0SZ pairs', () => {
    const s2 = (g: Granule, ia: number, sl0: number) =>
      s2Regime({
        granule: g,
        t0sz: 64 - ia,
        sl0,
        ttb: 0,
        oaBits: 48,
        affd: false,
        paMaxBits: 48,
        stt: false,
      });
    const ok = (g: Granule, ia: number, sl0: number): [number, number] => {
      const r = s2(g, ia, sl0);
      if (!r.ok) throw new Error(r.reason);
      return [r.regime.startLevel, 2 ** Math.max(0, r.regime.startBits - (g - 3))];
    };
    expect(ok(12, 40, 1)).toEqual([1, 2]); // 4KB, 40-bit IPA from level 1: 2 concatenated tables
    expect(ok(12, 48, 2)).toEqual([0, 1]);
    expect(ok(12, 34, 0)).toEqual([2, 16]);
    expect(ok(16, 42, 1)).toEqual([2, 1]); // 64KB, 42-bit IPA: one full level-2 table
    expect(ok(16, 48, 2)).toEqual([1, 1]);
    expect(ok(14, 40, 1)).toEqual([2, 16]);
    expect(s2(12, 44, 0).ok).toBe(false); // level 2 cannot resolve 44 bits with 16 tables
    expect(s2(12, 30, 1).ok).toBe(false); // level 1 start with too few bits
    expect(s2(16, 48, 3).ok).toBe(false); // SL0 = 3 reserved for 64KB
    const small = s2Regime({
      granule: 12,
      t0sz: 64 - 44,
      sl0: 2,
      ttb: 0,
      oaBits: 40,
      affd: false,
      paMaxBits: 40,
      stt: false,
    });
    expect(small.ok).toBe(false); // level 0 start needs PAMax >= 44
  });

  it('a cold 4x4 nested walk reads 24 descriptors', () => {
    const mem = new PhysMem();
    const alloc = new PageAllocator(mem, 0x4000_0000, 0x400_0000);
    const gpa = 0x8000_0000;
    const guestPa = alloc.alloc(0x100_0000)!;
    const view = new OffsetMemory(mem, gpa, guestPa, 0x100_0000);
    const galloc = new PageAllocator(view, gpa, 0x100_0000);
    const s2t = PageTable.create(alloc, { stage: 2, granule: 12, iasBits: 48, oasBits: 48 });
    const s1t = PageTable.create(galloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 48 });
    if (!s2t.ok || !s1t.ok) throw new Error('tables');
    expect(s2t.table.geometry.startLevel).toBe(0);
    // Map guest RAM page by page so that every stage-2 walk goes down to level 3.
    for (let off = 0; off < 0x100_0000; off += 0x1000) {
      expect(s2t.table.map(gpa + off, guestPa + off, 0x1000, { read: true, write: true }).ok).toBe(true);
    }
    expect(s1t.table.map(0x1234_5600_0000, gpa + 0x80_0000, 0x1000, { read: true, write: true }).ok).toBe(
      true,
    );
    const r1 = s1t.table.regime({ twoPrivilege: true });
    const r2 = s2t.table.regime();
    if (!r1.ok || !r2.ok) throw new Error('regimes');
    const walker = new Walker(mem);
    const s1: S1Context = { tt0: r1.regime, tt1: null, tbi0: false, tbi1: false, twoRanges: true };
    const before = walker.descReads;
    const f = walker.translate(s1, r2.regime, 0x1234, 0x5600_0abc, PERM.S1_PR, PERM.S2_R);
    expect(f).toBe(WALK_OK);
    expect(walker.descReads - before).toBe(24);
    expect(walker.outHi * 2 ** 32 + walker.outLo).toBe(guestPa + 0x80_0abc);
    expect(walker.shift).toBe(12);
  });
});

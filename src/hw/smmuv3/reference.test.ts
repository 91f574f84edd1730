/**
 * The SMMU device (configuration caches, IOTLB, split-word walker) against the reference model
 * (no caches, BigInt walker, structures refetched every time) on random systems: linear and
 * 2-level stream tables; abort, bypass, stage-1, stage-2 and nested streams; linear and 2-level
 * CD tables; random SubstreamIDs; page tables built correctly and then corrupted with random bit
 * flips; STEs and CDs corrupted the same way; absent memory. Every transaction, cold and warm,
 * must give the same status and address, or the same event record with the same disposition.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prng } from '../../arch/prng.ts';
import type { Access, Granule } from '../../arch/vmsa.ts';
import type { PageTable } from '../vmsa/pgtable.ts';
import { encodeEvent } from './event-record.ts';
import type { SmmuFeatures } from './features.ts';
import { describeRef, referenceTranslate } from './reference.ts';
import { CdTable, SmmuRig } from './rig.ts';
import { TXN_OK } from './smmu.ts';
import { cmdCfgiAll, cmdSync, cmdTlbiNsnhAll, encodeCd, encodeSte, type SteParams } from './structures.ts';

/**
 * TLB tags (VMID, ASID) with pairwise Hamming distance >= 3: a 5-bit k repeated three times.
 * Two streams sharing a tag with different configurations may share TLB entries (UNPREDICTABLE in
 * the spec, and not something an uncached reference can model), so a single corrupting bit flip
 * must never make two tags equal.
 */
function tag(k: number): number {
  return k | (k << 5) | (k << 10);
}

/** Flips `n` random bits among the first `words` words. */
function corrupt(w: Uint32Array, rnd: () => number, n: number, words = w.length): Uint32Array {
  for (let i = 0; i < n; i++) {
    const b = rnd() % (words * 32);
    w[b >>> 5] = (w[b >>> 5]! ^ (1 << (b & 31))) >>> 0;
  }
  return w;
}

/** Flips random bits in random descriptors of a page table's pages. */
function corruptTables(rig: SmmuRig, pages: number[], rnd: () => number, flips: number): void {
  for (let i = 0; i < flips && pages.length > 0; i++) {
    const page = pages[rnd() % pages.length]!;
    const addr = page + (rnd() % 512) * 8;
    const bit = rnd() % 64;
    const word = addr + (bit >= 32 ? 4 : 0);
    const v = rig.mem.read32(word);
    if (v >= 0) rig.mem.write32(word, (v ^ (1 << (bit % 32))) >>> 0);
  }
}

interface Built {
  readonly rig: SmmuRig;
  /** Addresses each stream maps (or probes, for bypass and stage-2 streams). */
  readonly vas: number[][];
  readonly sids: number;
  /** Streams whose STE was corrupted: they can read garbage CDs that share an ASID. */
  readonly corruptedSte: ReadonlySet<number>;
}

const VA_BASE = 0x10_0000_0000;
const IPA_BASE = 0x8000_0000;

/** Builds a random system of `sids` streams. */
function buildSystem(seed: number): Built {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rnd() % xs.length]!;
  const features: Partial<SmmuFeatures> = {
    oasBits: pick([40, 44, 48]),
    ssidBits: pick([0, 8, 20]),
    reservedBits: pick(['illegal', 'ignore'] as const),
    faultOrder: pick(['architecture', 'qemu'] as const),
    iotlbEntries: pick([16, 256]),
    iotlbWays: pick([1, 4]),
    steCacheEntries: pick([2, 64]),
    cdCacheEntries: pick([2, 64]),
  };
  const twoLevel = rnd() % 2 === 0;
  const rig = new SmmuRig({ features, sidLog2: twoLevel ? 8 : 4, ...(twoLevel ? { split: 6 } : {}) });
  const oas = features.oasBits!;
  const granule: Granule = pick([12, 12, 14, 16]);
  const guest = rig.guestRam(IPA_BASE, 0x80_0000);
  const s2 = rig.pageTable({ stage: 2, granule, iasBits: 40, oasBits: oas });
  for (let off = 0; off < guest.size; off += 2 ** granule) {
    s2.map(guest.ipaBase + off, guest.paBase + off, 2 ** granule, {
      read: rnd() % 16 !== 0,
      write: true,
      exec: true,
    });
  }
  const vas: number[][] = [];
  const corruptedSte = new Set<number>();
  const tablePages: number[] = [];
  const sids = 8;
  for (let sid = 0; sid < sids; sid++) {
    const kind = pick(['abort', 'bypass', 's1', 's1', 's2', 'nested', 'nested', 'invalid'] as const);
    const nested = kind === 'nested';
    const cdMax = features.ssidBits === 0 ? 0 : pick([0, 0, 3, 7]);
    const fmt = cdMax === 0 ? 0 : pick([0, 1, 2]);
    let cds: CdTable | undefined;
    const mine: number[] = [];
    vas.push(mine);
    if (kind === 's1' || nested) {
      // Stage-1 tables and the CD table live in host memory, or in guest IPA space when nested.
      const alloc = nested ? guest.alloc : rig.alloc;
      const mem = nested ? guest.view : rig.mem;
      const s1 = rig.pageTable(
        { stage: 1, granule, iasBits: 48, oasBits: nested ? 40 : oas, nonGlobal: true },
        alloc,
      );
      const va = VA_BASE + sid * 0x4000_0000;
      for (let p = 0; p < 4; p++) {
        const target = nested
          ? guest.ipaBase + 0x40_0000 + p * 0x1_0000
          : 0x2_0000_0000 + sid * 0x100_0000 + p * 0x1_0000;
        const prot = { read: true, write: rnd() % 3 !== 0, exec: rnd() % 2 === 0, user: rnd() % 3 !== 0 };
        s1.map(va + p * 0x1_0000, target, 2 ** granule, prot);
        mine.push(va + p * 0x1_0000 + (rnd() % 2 ** granule));
      }
      cds = new CdTable(mem, alloc, fmt, cdMax);
      for (const [pos, index] of [0, 1, 2, 5].entries()) {
        if (index >= 2 ** cdMax) continue;
        const cd = encodeCd({
          t0sz: 16,
          granule0: granule,
          ttb0: s1.root,
          ipsBits: nested ? 40 : oas,
          asid: tag(sid * 4 + pos),
          record: rnd() % 4 !== 0,
          abort: rnd() % 4 !== 0,
          affd: rnd() % 4 === 0,
        });
        cds.write(index, rnd() % 4 === 0 ? corrupt(cd, rnd, 1, 4) : cd);
      }
      if (!nested) collectPages(s1, tablePages);
    } else {
      mine.push(IPA_BASE + 0x40_1234, IPA_BASE + 0x7f_fff0, pick([0x1000, 2 ** 40 + 8, 2 ** oas - 4]));
    }
    const p: SteParams = {
      config: kind === 'invalid' ? 's1' : kind,
      valid: kind !== 'invalid',
      s1ContextPtr: cds?.ptr ?? 0,
      s1Fmt: cds?.fmt ?? 0,
      s1CdMax: cds?.cdMax ?? 0,
      s1Dss: rnd() % 3,
      s2Vmid: tag(sid),
      s2T0sz: 24,
      s2Sl0: s2.geometry.sl0,
      s2Granule: granule,
      s2PsBits: oas,
      s2Ttb: kind === 's2' || nested ? s2.root : 0,
      s2Record: rnd() % 4 !== 0,
      privCfg: pick([0, 0, 2, 3]),
    };
    const ste = encodeSte(p);
    if (rnd() % 5 === 0) {
      corrupt(ste, rnd, 1, 8);
      corruptedSte.add(sid);
    }
    rig.writeSte(sid, ste);
  }
  collectPages(s2, tablePages);
  corruptTables(rig, tablePages, rnd, rnd() % 6);
  if (rnd() % 4 === 0) rig.mem.markAbsent(guest.paBase + 0x40_0000, 0x1_0000);
  expect(rig.submit(cmdCfgiAll(), cmdTlbiNsnhAll(), cmdSync())).toBe(0);
  return { rig, vas, sids, corruptedSte };
}

/** The root table page of a builder-made table (the one corruption target every walk touches). */
function collectPages(t: PageTable, out: number[]): void {
  out.push(t.root);
}

describe('SMMU device agrees with the uncached reference model', () => {
  it('on random systems, cold and warm caches', () => {
    const seen = new Map<string, number>();
    const tally = (k: string): void => {
      seen.set(k, (seen.get(k) ?? 0) + 1);
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fff_ffff }), (seed) => {
        const { rig, vas, sids, corruptedSte } = buildSystem(seed);
        const rnd = prng(seed ^ 0x5555_5555);
        const smmu = rig.smmu;
        let lastContext = '';
        for (let q = 0; q < 120; q++) {
          const sid = rnd() % 16 === 0 ? sids + (rnd() % 300) : rnd() % sids;
          const ssid = rnd() % 5 < 3 ? -1 : [0, 1, 2, 5, 100, rnd() % 2 ** 20][rnd() % 6]!;
          const own = vas[sid] ?? vas[0]!;
          const iova =
            rnd() % 10 === 0
              ? (rnd() % 2 ** 20) * 2 ** 32 + rnd()
              : ((rnd() % 8 === 0 ? vas[rnd() % sids]! : own)[rnd() % own.length] ?? 0);
          const access = (rnd() % 3) as Access;
          const priv = rnd() % 2 === 0;
          // A corrupted STE may point its CD lookups at garbage CDs that share one ASID: TLB entries
          // shared between differing configurations are UNPREDICTABLE (§5.4.1), so start clean.
          const context = `${sid}/${ssid}`;
          if (corruptedSte.has(sid) && context !== lastContext)
            expect(rig.submit(cmdTlbiNsnhAll(), cmdSync())).toBe(0);
          lastContext = context;
          const got = smmu.translate(sid, ssid, iova, access, priv);
          const ref = referenceTranslate(
            rig.mem,
            smmu.features,
            smmu.translationRegisters(),
            sid,
            ssid,
            iova,
            access,
            priv,
            smmu.features.faultOrder === 'qemu',
          );
          const where = `seed ${seed} q${q} sid ${sid} ssid ${ssid} iova 0x${iova.toString(16)} acc ${access} priv ${priv}: ref ${describeRef(ref)}, got status ${got.status} pa 0x${got.firstPa.toString(16)} ${got.event?.name ?? ''} (${got.reason})`;
          expect(got.status, where).toBe(ref.status);
          tally(ref.status === TXN_OK ? 'ok' : (got.event?.name ?? 'silent'));
          if (ref.status === TXN_OK) {
            expect(got.firstPa, where).toBe(Number(ref.pa));
            continue;
          }
          if (ref.record === null) {
            expect(got.event, where).toBeNull();
            continue;
          }
          expect(got.event, where).not.toBeNull();
          expect([...encodeEvent(got.event!)], where).toEqual([...ref.record]);
          expect(got.eventDisposition !== 'suppressed', where).toBe(ref.recorded);
        }
      }),
      { numRuns: 80 },
    );
    // The generator must reach successful translations and a wide spread of events, or it proves little.
    expect(seen.get('ok') ?? 0, JSON.stringify([...seen])).toBeGreaterThan(1000);
    for (const name of [
      'silent',
      'C_BAD_STREAMID',
      'C_BAD_STE',
      'C_BAD_SUBSTREAMID',
      'C_BAD_CD',
      'F_TRANSLATION',
      'F_PERMISSION',
    ]) {
      expect(seen.get(name) ?? 0, `${name} never happened: ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    }
  });
});

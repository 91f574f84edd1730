/**
 * The driver's STE/CD writers and command builders against the device's own decoders: every STE
 * the driver writes is legal for the SMMU and decodes to what was meant; the host CD decodes to
 * its page table's regime; range-invalidation plans cover exactly the requested range with legal
 * NUM/SCALE/TTL values (property-tested), and plain plans step by the granule.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CERROR_NONE } from '../../arch/smmuv3/commands.ts';
import { executeCommand } from '../../hw/smmuv3/commands.ts';
import { decodeCd, decodeSte } from '../../hw/smmuv3/config.ts';
import { DEFAULT_FEATURES } from '../../hw/smmuv3/features.ts';
import type { InvalidationScope } from '../../hw/smmuv3/iotlb.ts';
import {
  cmdCfgiAll,
  cmdCfgiCd,
  cmdCfgiCdAll,
  cmdCfgiSte,
  cmdCfgiSteRange,
  cmdSync,
  cmdTlbiEl2All,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
  cmdTlbiS2Ipa,
  cmdTlbiS12Vmall,
  planTlbiRange,
  ttlFor,
} from './commands.ts';
import { buildCd, buildSte, ctxPtrBits, steLive } from './ste.ts';

const F = DEFAULT_FEATURES;
const S2 = { vmid: 3, granule: 12 as const, iasBits: 48, oasBits: 48, sl0: 2, ttb: 0x4123_4000 };

describe('STE writer', () => {
  it('abort and bypass STEs', () => {
    const abort = decodeSte(buildSte({ kind: 'abort' }), F, false);
    expect(abort.ok && [abort.value.abort, abort.value.config]).toEqual([true, 0]);
    const bypass = decodeSte(buildSte({ kind: 'bypass', shcfgIncoming: true }), F, false);
    expect(bypass.ok && [bypass.value.abort, bypass.value.s1, bypass.value.s2]).toEqual([
      false,
      false,
      false,
    ]);
    expect(steLive(buildSte({ kind: 'abort' }))).toBe(false);
    expect(steLive(buildSte({ kind: 'bypass', shcfgIncoming: false }))).toBe(true);
  });

  it('stage 1, stage 2 and nested STEs decode to the intended configuration', () => {
    const s1 = decodeSte(
      buildSte({ kind: 'translate', s1: { ctxPtr: 0x4000_0040, cdMax: 0, fmt: 0, dss: 2 } }),
      F,
      false,
    );
    expect(s1.ok && [s1.value.config, s1.value.s1ContextPtr, s1.value.vmid]).toEqual([0b101, 0x4000_0040, 0]);
    const s2 = decodeSte(buildSte({ kind: 'translate', s2: S2 }), F, false);
    expect(s2.ok && [s2.value.config, s2.value.vmid, s2.value.s2Record]).toEqual([0b110, 3, true]);
    const nested = decodeSte(
      buildSte({ kind: 'translate', s1: { ctxPtr: 0x8000_0000, cdMax: 10, fmt: 2, dss: 1 }, s2: S2 }),
      F,
      false,
    );
    expect(nested.ok).toBe(true);
    if (nested.ok) {
      const v = nested.value;
      expect([v.config, v.s1ContextPtr, v.s1CdMax, v.s1Fmt, v.s1Dss, v.vmid]).toEqual([
        0b111, 0x8000_0000, 10, 2, 1, 3,
      ]);
    }
  });

  it('ctxPtrBits keeps bits [51:6]', () => {
    expect(ctxPtrBits(0x8000_007f)).toBe(0x8000_0040);
    expect(ctxPtrBits(2 ** 52 + 0x1000)).toBe(0x1000);
  });

  it('the host CD decodes to a 48-bit TTB0 regime with the domain ASID', () => {
    const cd = buildCd({
      asid: 0x1234,
      granule: 12,
      iasBits: 48,
      oasBits: 48,
      ttb0: 0x4444_0000,
      mair: 0x04ff,
    });
    const ste = decodeSte(
      buildSte({ kind: 'translate', s1: { ctxPtr: 0x1000, cdMax: 0, fmt: 0, dss: 0 } }),
      F,
      false,
    );
    if (!ste.ok) throw new Error(ste.reason);
    const r = decodeCd(cd, ste.value, F);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect([r.value.asid, r.value.record, r.value.abortOnFault, r.value.ipsBits]).toEqual([
        0x1234,
        true,
        true,
        48,
      ]);
      expect([r.value.s1.tt0?.ttbLo, r.value.s1.tt0?.inputBits]).toEqual([0x4444_0000, 48]);
      expect(r.value.s1.tt1).toBeNull();
    }
  });
});

/** A CommandTarget that records the invalidations a command performs. */
function exec(w: Uint32Array, features = F) {
  const scopes: InvalidationScope[] = [];
  const calls: string[] = [];
  const t = {
    features,
    e2h: false,
    invalidateSte: (sid: number, leaf: boolean) => calls.push(`ste ${sid} ${leaf}`),
    invalidateSteRange: (a: number, z: number) => calls.push(`range ${a}-${z}`),
    invalidateCd: (sid: number, ssid: number, leaf: boolean) => calls.push(`cd ${sid}/${ssid} ${leaf}`),
    invalidateCdAll: (sid: number) => calls.push(`cdall ${sid}`),
    invalidateAllConfig: () => calls.push('all'),
    invalidateTlb: (s: InvalidationScope) => scopes.push(s),
    syncComplete: () => calls.push('sync'),
  };
  const outcome = executeCommand(t, w);
  return { outcome, scopes, calls };
}

describe('command builders', () => {
  it('every command the driver builds is legal and does what it says', () => {
    const op = { addr: 0x12_3000, num: 3, scale: 1, ttl: 3, tg: 12 as const };
    const cases: [Uint32Array, string][] = [
      [cmdCfgiSte(9), 'ste 9 true'],
      [cmdCfgiSteRange(0x1234, 7), 'range 4608-4863'],
      [cmdCfgiAll(), 'all'],
      [cmdCfgiCd(9, 5, false), 'cd 9/5 false'],
      [cmdCfgiCdAll(9), 'cdall 9'],
      [cmdSync(), 'sync'],
    ];
    for (const [w, call] of cases) {
      const r = exec(w);
      expect(r.outcome.error, r.outcome.name).toBe(CERROR_NONE);
      expect(r.calls).toEqual([call]);
    }
    for (const w of [
      cmdTlbiNhAll(2),
      cmdTlbiNhAsid(2, 7),
      cmdTlbiNhVa(2, 7, true, op),
      cmdTlbiS2Ipa(2, false, op),
      cmdTlbiS12Vmall(2),
      cmdTlbiNsnhAll(),
      cmdTlbiEl2All(),
    ]) {
      const r = exec(w);
      expect(r.outcome.error, r.outcome.name).toBe(CERROR_NONE);
      expect(r.scopes).toHaveLength(1);
    }
    const va = exec(cmdTlbiNhVa(2, 7, true, op)).scopes[0]!;
    expect([va.vmid, va.asid, va.start, va.end, va.ttl, va.granule]).toEqual([
      2,
      7,
      0x12_3000,
      0x12_3000 + 4 * 2 * 0x1000,
      3,
      12,
    ]);
  });

  it('keeps Leaf, TTL and TG next to the address', () => {
    const w = cmdTlbiNhVa(0, 1, true, { addr: 0xffff_f000, num: 0, scale: 0, ttl: 2, tg: 16 });
    expect(w[2]).toBe((0xffff_f000 | (3 << 10) | (2 << 8) | 1) >>> 0);
  });
});

describe('TLBI range planning', () => {
  it('ttlFor: the level of a leaf size, 0 for sizes that are no leaf', () => {
    expect([ttlFor(12, 12), ttlFor(12, 21), ttlFor(12, 30), ttlFor(12, 39), ttlFor(12, 13)]).toEqual([
      3, 2, 1, 0, 0,
    ]);
    expect([ttlFor(14, 14), ttlFor(14, 25), ttlFor(14, 36)]).toEqual([3, 2, 0]);
    expect([ttlFor(16, 16), ttlFor(16, 29), ttlFor(16, 42)]).toEqual([3, 2, 1]);
  });

  it('range commands cover the aligned range exactly, with legal fields', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 2 ** 36 }),
        fc.constantFrom(12 as const, 14 as const, 16 as const),
        fc.integer({ min: 0, max: 3 }),
        (start, size, tg, ttl) => {
          const ops = planTlbiRange({ start, size, stepLog2: tg, tg, ttl, ril: true });
          if (ops === 'all') throw new Error('unexpected fallback');
          const page = 2 ** tg;
          let at = start - (start % page);
          for (const o of ops) {
            expect(o.addr).toBe(at);
            expect(o.num).toBeGreaterThanOrEqual(0);
            expect(o.num).toBeLessThanOrEqual(31);
            expect(o.scale).toBeLessThanOrEqual(31);
            expect(o.num === 0 && o.scale === 0 && o.ttl === 0).toBe(false);
            at += (o.num + 1) * 2 ** o.scale * page;
          }
          expect(at).toBeGreaterThanOrEqual(start + size);
          // Only the reserved single-page case grows the range, by one page.
          expect(at - (start + size)).toBeLessThan(2 * page);
          expect(ops.length).toBeLessThanOrEqual(12);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('plain commands step by the granule; too many become "all"', () => {
    const ops = planTlbiRange({ start: 0x1800, size: 0x2000, stepLog2: 12, tg: 12, ttl: 0, ril: false });
    expect(ops !== 'all' && ops.map((o) => [o.addr, o.tg])).toEqual([
      [0x1000, 0],
      [0x2000, 0],
      [0x3000, 0],
    ]);
    expect(planTlbiRange({ start: 0, size: 2 ** 30, stepLog2: 12, tg: 12, ttl: 0, ril: false })).toBe('all');
    expect(
      planTlbiRange({ start: 2 ** 53 - 0x1000, size: 0x2000, stepLog2: 12, tg: 12, ttl: 0, ril: true }),
    ).toBe('all');
    expect(planTlbiRange({ start: 0, size: 0, stepLog2: 12, tg: 12, ttl: 0, ril: true })).toEqual([]);
  });
});

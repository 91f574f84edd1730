/** The IOTLB on its own: lookup by context and size, replacement, and invalidation scopes. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PERM_S1_ALL } from '../../arch/vmsa.ts';
import { WORLD_EL2, WORLD_NSEL1 } from './config.ts';
import { Iotlb, KIND_NESTED, KIND_S1, KIND_S2 } from './iotlb.ts';

const hi = (a: number): number => Math.floor(a / 2 ** 32);
const lo = (a: number): number => a >>> 0;

describe('IOTLB', () => {
  it('finds an entry by any address inside it, in its context only', () => {
    const t = new Iotlb(64, 4);
    const a = t.context(WORLD_NSEL1, false, 1, 5);
    const b = t.context(WORLD_NSEL1, false, 1, 6);
    t.insert(
      a,
      hi(0x1234_5600_0000),
      lo(0x1234_5600_0000),
      21,
      0x8000_0000,
      0,
      PERM_S1_ALL,
      KIND_S1,
      false,
      2,
      12,
    );
    const e = t.lookup(a, hi(0x1234_561f_fff8), lo(0x1234_561f_fff8));
    expect(e).toBeGreaterThanOrEqual(0);
    expect(t.pa[e]).toBe(0x8000_0000);
    expect(t.shift[e]).toBe(21);
    expect(t.lookup(a, hi(0x1234_5620_0000), lo(0x1234_5620_0000))).toBe(-1);
    expect(t.lookup(b, hi(0x1234_5600_0000), lo(0x1234_5600_0000))).toBe(-1);
    expect(t.context(WORLD_NSEL1, false, 1, 5)).toBe(a); // contexts are stable
  });

  it('mixed sizes in one context: 4KB, 2MB and 1GB entries are all found', () => {
    const t = new Iotlb(256, 4);
    const c = t.context(WORLD_NSEL1, false, 0, 0);
    t.insert(c, 0, 0x0000_1000, 12, 0x10_0000, 0, 1, KIND_S1, false, 3, 12);
    t.insert(c, 0, 0x0020_0000, 21, 0x20_0000, 0, 1, KIND_S1, false, 2, 12);
    t.insert(c, 1, 0x4000_0000, 30, 0x4000_0000, 0, 1, KIND_S1, false, 1, 12);
    expect(t.pa[t.lookup(c, 0, 0x0000_1fff)]).toBe(0x10_0000);
    expect(t.pa[t.lookup(c, 0, 0x003f_ffff)]).toBe(0x20_0000);
    expect(t.pa[t.lookup(c, 1, 0x7fff_ffff)]).toBe(0x4000_0000);
  });

  it('replaces FIFO within a set and never exceeds its capacity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2 ** 20 }), { minLength: 1, maxLength: 200 }),
        (pages) => {
          const t = new Iotlb(16, 2);
          const c = t.context(WORLD_NSEL1, false, 0, 0);
          for (const p of pages) t.insert(c, 0, (p * 4096) >>> 0, 12, p * 4096, 0, 1, KIND_S1, false, 3, 12);
          expect(t.countValid()).toBeLessThanOrEqual(16);
          const last = pages.at(-1)!;
          expect(t.lookup(c, 0, (last * 4096) >>> 0)).toBeGreaterThanOrEqual(0); // the newest entry is present
          expect(t.stats.inserts).toBe(pages.length);
        },
      ),
    );
  });

  it('invalidation scopes: world, kind, VMID, ASID vs global, address range, TTL and granule', () => {
    const t = new Iotlb(256, 4);
    const v1a1 = t.context(WORLD_NSEL1, false, 1, 1);
    const v1a2 = t.context(WORLD_NSEL1, false, 1, 2);
    const v2a1 = t.context(WORLD_NSEL1, false, 2, 1);
    const ipa1 = t.context(WORLD_NSEL1, true, 1, 0);
    const el2 = t.context(WORLD_EL2, false, 0, 0);
    const put = (ctx: number, addr: number, kind: number, global = false, level = 3) =>
      t.insert(ctx, 0, addr, 12, addr, 0, 1, kind, global, level, 12);
    put(v1a1, 0x1000, KIND_S1);
    put(v1a1, 0x2000, KIND_NESTED);
    put(v1a2, 0x1000, KIND_S1);
    put(v1a2, 0x3000, KIND_S1, true);
    put(v2a1, 0x1000, KIND_S1);
    put(ipa1, 0x1000, KIND_S2);
    put(el2, 0x1000, KIND_S1);
    const NS = 1 << WORLD_NSEL1;
    const VA = (1 << KIND_S1) | (1 << KIND_NESTED);
    // NH_ASID(vmid 1, asid 2): only the non-global entry of ASID 2 in VMID 1.
    expect(t.invalidate({ worlds: NS, kinds: VA, vmid: 1, asid: 2, globalMatchesAnyAsid: false })).toBe(1);
    expect(t.lookup(v1a2, 0, 0x3000)).toBeGreaterThanOrEqual(0);
    // NH_VA(vmid 1, asid 1, 0x3000): the global entry at that VA goes too.
    expect(
      t.invalidate({
        worlds: NS,
        kinds: VA,
        vmid: 1,
        asid: 1,
        globalMatchesAnyAsid: true,
        start: 0x3000,
        end: 0x3001,
      }),
    ).toBe(1);
    // TTL hint that matches nothing leaves the level-3 entries.
    expect(
      t.invalidate({ worlds: NS, kinds: VA, vmid: 1, asid: -1, globalMatchesAnyAsid: true, ttl: 2 }),
    ).toBe(0);
    // NH_ALL(vmid 1): S1 and nested of VMID 1, not VMID 2, not the stage-2 entry, not EL2.
    expect(t.invalidate({ worlds: NS, kinds: VA, vmid: 1, asid: -1, globalMatchesAnyAsid: true })).toBe(2);
    expect(t.lookup(v2a1, 0, 0x1000)).toBeGreaterThanOrEqual(0);
    expect(t.lookup(ipa1, 0, 0x1000)).toBeGreaterThanOrEqual(0);
    expect(t.lookup(el2, 0, 0x1000)).toBeGreaterThanOrEqual(0);
    expect(
      t
        .dump()
        .map((e) => e.vmid)
        .sort(),
    ).toEqual([0, 1, 2]);
    expect(t.clear()).toBe(3);
  });
});

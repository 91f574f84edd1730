/**
 * Tests of the IOASID allocator (seed-spec §6.4): lowest-free allocation in [min, max] with the
 * range clamped to the space, ownership checks on find (-ENOENT / -EACCES), v5.5 free, per-set
 * counts, custom allocator registration (-EAGAIN / -EEXIST, shared groups, hand-over), the bitmap
 * search, and fast-check properties against a plain Map + linear-scan reference model.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EACCES, EAGAIN, EEXIST, ENOENT } from '../uapi/errno.ts';
import {
  IdBitmap,
  INVALID_IOASID,
  IoasidAllocator,
  type IoasidAllocatorOps,
  type IoasidFindResult,
  type IoasidSet,
  ioasidSet,
  PCI_PASID_BITS,
  PCI_PASID_MAX,
} from './ioasid.ts';

function snapshot(a: IoasidAllocator) {
  return { entries: a.entries(), allocated: a.allocated, custom: a.customActive };
}

describe('constants', () => {
  it('INVALID_IOASID is (u32)-1 and the PCIe PASID space is 20 bits', () => {
    expect(INVALID_IOASID).toBe(0xffffffff);
    expect(PCI_PASID_BITS).toBe(20);
    expect(PCI_PASID_MAX).toBe(0x100000);
  });
});

describe('IoasidAllocator construction', () => {
  it('defaults to a 20-bit space', () => {
    const a = new IoasidAllocator();
    expect(a.maxBits).toBe(20);
    expect(a.maxId).toBe(0xfffff);
    expect(a.allocated).toBe(0);
    expect(a.customActive).toBe(false);
  });

  it('rejects widths outside 1..20 (programmer error)', () => {
    expect(() => new IoasidAllocator({ maxBits: 0 })).toThrow();
    expect(() => new IoasidAllocator({ maxBits: 21 })).toThrow();
    expect(() => new IoasidAllocator({ maxBits: 4.5 })).toThrow();
    expect(new IoasidAllocator({ maxBits: 1 }).maxId).toBe(1);
  });

  it('ioasidSet gives distinct tokens even for the same name', () => {
    expect(ioasidSet('vm')).not.toBe(ioasidSet('vm'));
  });
});

describe('ioasidAlloc', () => {
  it('hands out the lowest free ID at or above min', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    expect(a.ioasidAlloc(s, 5, 10)).toBe(5);
    expect(a.ioasidAlloc(s, 5, 10)).toBe(6);
    expect(a.ioasidAlloc(s, 0, 10)).toBe(0);
    expect(a.ioasidFree(5)).toBe(true);
    expect(a.ioasidAlloc(s, 1, 10)).toBe(1);
    expect(a.ioasidAlloc(s, 3, 10)).toBe(3);
    expect(a.ioasidAlloc(s, 4, 10)).toBe(4);
    expect(a.ioasidAlloc(s, 4, 10)).toBe(5);
    expect(a.ids(s)).toEqual([0, 1, 3, 4, 5, 6]);
  });

  it('treats [min, max] as inclusive and returns INVALID_IOASID when it is exhausted', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    expect(a.ioasidAlloc(s, 7, 7)).toBe(7);
    const before = snapshot(a);
    expect(a.ioasidAlloc(s, 7, 7)).toBe(INVALID_IOASID);
    expect(snapshot(a)).toEqual(before);
  });

  it('clamps max to the space (decision) and refuses an empty range without changing state', () => {
    const a = new IoasidAllocator({ maxBits: 4 });
    const s = ioasidSet('vm0');
    expect(a.ioasidAlloc(s, 14, 1000)).toBe(14);
    expect(a.ioasidAlloc(s, 14, 0xffffffff)).toBe(15);
    const before = snapshot(a);
    expect(a.ioasidAlloc(s, 14, 1000)).toBe(INVALID_IOASID);
    expect(a.ioasidAlloc(s, 9, 8)).toBe(INVALID_IOASID); // min > max
    expect(a.ioasidAlloc(s, 16, 1000)).toBe(INVALID_IOASID); // min beyond the space
    expect(snapshot(a)).toEqual(before);
  });

  it('refuses non-u32 bounds with INVALID_IOASID and no change (decision)', () => {
    const a = new IoasidAllocator({ maxBits: 8 });
    const s = ioasidSet('vm0');
    const before = snapshot(a);
    for (const [min, max] of [
      [-1, 10],
      [0, -1],
      [1.5, 10],
      [0, Number.NaN],
      [0, 2 ** 32],
      [Number.POSITIVE_INFINITY, 1],
    ] as const) {
      expect(a.ioasidAlloc(s, min, max)).toBe(INVALID_IOASID);
    }
    expect(snapshot(a)).toEqual(before);
  });

  it('fills the whole 20-bit space and finds a hole left anywhere in it', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    for (let i = 0; i < 0x100000; i++) {
      if (a.ioasidAlloc(s, 0, 0xfffff) !== i) throw new Error(`allocation ${i} out of order`);
    }
    expect(a.allocated).toBe(0x100000);
    expect(a.count(s)).toBe(0x100000);
    expect(a.ioasidAlloc(s, 0, 0xffffffff)).toBe(INVALID_IOASID);
    expect(a.ioasidFree(0xbdef1)).toBe(true);
    expect(a.ioasidFree(0x12345)).toBe(true);
    expect(a.ioasidAlloc(s, 0x20000, 0xfffff)).toBe(0xbdef1);
    expect(a.ioasidAlloc(s, 1, 0xfffff)).toBe(0x12345);
    expect(a.ioasidAlloc(s, 1, 0xfffff)).toBe(INVALID_IOASID);
  });
});

describe('ioasidFind', () => {
  it('returns the private data for the owner and for a null set', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    const priv = { mm: 'task' };
    const id = a.ioasidAlloc(s, 1, 100, priv);
    expect(a.ioasidFind(s, id)).toEqual({ ok: true, priv });
    expect((a.ioasidFind(null, id) as { priv: unknown }).priv).toBe(priv);
    const noPriv = a.ioasidAlloc(s, 1, 100);
    expect(a.ioasidFind(s, noPriv)).toEqual({ ok: true, priv: undefined });
  });

  it('gives -ENOENT for an unknown ID and -EACCES for another set, changing nothing', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    const t = ioasidSet('vm1');
    const id = a.ioasidAlloc(s, 1, 100);
    const before = snapshot(a);
    const enoent: IoasidFindResult = { ok: false, errno: -ENOENT };
    expect(a.ioasidFind(s, id + 1)).toEqual(enoent);
    expect(a.ioasidFind(null, 0)).toEqual(enoent);
    expect(a.ioasidFind(s, INVALID_IOASID)).toEqual(enoent);
    expect(a.ioasidFind(s, -1)).toEqual(enoent);
    expect(a.ioasidFind(s, 1.5)).toEqual(enoent);
    expect(a.ioasidFind(t, id)).toEqual({ ok: false, errno: -EACCES });
    expect(snapshot(a)).toEqual(before);
  });
});

describe('ioasidFree', () => {
  it('frees any live ID regardless of set (v5.5) and ignores unknown IDs', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('vm0');
    const id = a.ioasidAlloc(s, 1, 100, 'p');
    const before = snapshot(a);
    expect(a.ioasidFree(id + 1)).toBe(false);
    expect(a.ioasidFree(-3)).toBe(false);
    expect(a.ioasidFree(INVALID_IOASID)).toBe(false);
    expect(snapshot(a)).toEqual(before);
    expect(a.ioasidFree(id)).toBe(true);
    expect(a.ioasidFind(null, id)).toEqual({ ok: false, errno: -ENOENT });
    expect(a.ioasidFree(id)).toBe(false);
    expect(a.allocated).toBe(0);
    // The freed ID's private data does not leak into its next owner.
    expect(a.ioasidAlloc(ioasidSet('vm1'), 1, 100)).toBe(id);
    expect(a.ioasidFind(null, id)).toEqual({ ok: true, priv: undefined });
  });
});

describe('per-set accounting', () => {
  it('counts and lists the IDs of each set', () => {
    const a = new IoasidAllocator({ maxBits: 10 });
    const s = ioasidSet('vm0');
    const t = ioasidSet('vm1');
    const u = ioasidSet('never');
    for (let i = 0; i < 5; i++) a.ioasidAlloc(s, 1, 1023);
    for (let i = 0; i < 3; i++) a.ioasidAlloc(t, 1, 1023);
    a.ioasidFree(2);
    expect(a.count(s)).toBe(4);
    expect(a.count(t)).toBe(3);
    expect(a.count(u)).toBe(0);
    expect(a.ids(s)).toEqual([1, 3, 4, 5]);
    expect(a.ids(t)).toEqual([6, 7, 8]);
    expect(a.ids(u)).toEqual([]);
    expect(a.allocated).toBe(7);
    for (const id of a.ids(s)) a.ioasidFree(id);
    expect(a.count(s)).toBe(0);
    expect(a.ids(s)).toEqual([]);
    // A set that emptied out can hold IDs again.
    expect(a.ioasidAlloc(s, 1, 1023)).toBe(1);
    expect(a.count(s)).toBe(1);
    expect(a.entries().map((e) => [e.id, e.set])).toEqual([
      [1, s],
      [6, t],
      [7, t],
      [8, t],
    ]);
  });
});

/** A custom allocator handing out IDs from `next`, recording what it was asked. */
function countingOps(start: number): IoasidAllocatorOps & { calls: string[] } {
  let next = start;
  const calls: string[] = [];
  return {
    calls,
    alloc(min, max) {
      calls.push(`alloc ${min} ${max}`);
      return next <= max ? next++ : INVALID_IOASID;
    },
    free(id) {
      calls.push(`free ${id}`);
    },
  };
}

describe('custom allocators', () => {
  it('cannot be registered while the default allocator holds IDs (-EAGAIN, nothing changes)', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('host');
    const id = a.ioasidAlloc(s, 1, 10);
    const ops = countingOps(100);
    const before = snapshot(a);
    expect(a.registerAllocator(ops)).toBe(-EAGAIN);
    expect(snapshot(a)).toEqual(before);
    expect(a.ioasidAlloc(s, 1, 10)).toBe(2); // still the default allocator
    a.ioasidFree(2);
    a.ioasidFree(id);
    expect(a.registerAllocator(ops)).toBe(0);
    expect(a.customActive).toBe(true);
  });

  it('takes over allocation; the framework tracks its IDs and frees through it', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('guest');
    const t = ioasidSet('other');
    const ops = countingOps(40);
    expect(a.registerAllocator(ops)).toBe(0);
    expect(a.ioasidAlloc(s, 1, 0xffffffff, 'x')).toBe(40);
    expect(a.ioasidAlloc(t, 1, 1000)).toBe(41);
    expect(ops.calls).toEqual(['alloc 1 1048575', 'alloc 1 1000']);
    expect(a.ioasidFind(s, 40)).toEqual({ ok: true, priv: 'x' });
    expect(a.ioasidFind(s, 41)).toEqual({ ok: false, errno: -EACCES });
    expect(a.ioasidFind(s, 1)).toEqual({ ok: false, errno: -ENOENT });
    expect(a.count(s)).toBe(1);
    expect(a.ids(t)).toEqual([41]);
    expect(a.ioasidFree(40)).toBe(true);
    expect(ops.calls.at(-1)).toBe('free 40');
    expect(a.ioasidFree(40)).toBe(false);
    expect(ops.calls.at(-1)).toBe('free 40');
    expect(a.allocated).toBe(1);
  });

  it('fails when the custom allocator fails, or returns an ID already held (given back)', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('guest');
    let answer = 7;
    const calls: string[] = [];
    const ops: IoasidAllocatorOps = {
      alloc: () => answer,
      free: (id) => calls.push(`free ${id}`),
    };
    a.registerAllocator(ops);
    expect(a.ioasidAlloc(s, 1, 10)).toBe(7);
    let before = snapshot(a);
    expect(a.ioasidAlloc(s, 1, 10)).toBe(INVALID_IOASID); // 7 again
    expect(calls).toEqual(['free 7']);
    expect(snapshot(a)).toEqual(before);
    for (const bad of [INVALID_IOASID, -1, 2.5, 2 ** 32]) {
      answer = bad;
      before = snapshot(a);
      expect(a.ioasidAlloc(s, 1, 10)).toBe(INVALID_IOASID);
      expect(snapshot(a)).toEqual(before);
    }
    expect(calls).toEqual(['free 7']);
    // An empty range never reaches the custom allocator.
    answer = 3;
    expect(a.ioasidAlloc(s, 5, 4)).toBe(INVALID_IOASID);
    expect(a.allocated).toBe(1);
  });

  it('rejects registering the same ops twice (-EEXIST) and shares a space between same-function ops', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('guest');
    const first = countingOps(10);
    const twin: IoasidAllocatorOps = { alloc: first.alloc, free: first.free };
    expect(a.registerAllocator(first)).toBe(0);
    expect(a.registerAllocator(first)).toBe(-EEXIST);
    expect(a.registerAllocator(twin)).toBe(0);
    expect(a.registerAllocator(twin)).toBe(-EEXIST);
    expect(a.ioasidAlloc(s, 1, 100)).toBe(10);
    // Removing one member of a shared group keeps the group's IDs.
    expect(a.unregisterAllocator(first)).toBe(0);
    expect(a.customActive).toBe(true);
    expect(a.ioasidFind(s, 10)).toEqual({ ok: true, priv: undefined });
    expect(a.ioasidAlloc(s, 1, 100)).toBe(11);
    // Removing the last member orphans the live IDs and brings back the default allocator.
    expect(a.unregisterAllocator(twin)).toBe(2);
    expect(a.customActive).toBe(false);
    expect(a.allocated).toBe(0);
    expect(a.ioasidFind(null, 10)).toEqual({ ok: false, errno: -ENOENT });
    expect(a.ioasidAlloc(s, 1, 100)).toBe(1);
  });

  it('activates the next registered group when the active one goes', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('guest');
    const one = countingOps(100);
    const two = countingOps(200);
    expect(a.registerAllocator(one)).toBe(0);
    expect(a.registerAllocator(two)).toBe(0);
    expect(a.ioasidAlloc(s, 1, 1000)).toBe(100);
    expect(two.calls).toEqual([]);
    expect(a.unregisterAllocator(one)).toBe(1);
    expect(a.customActive).toBe(true);
    expect(a.ioasidAlloc(s, 1, 1000)).toBe(200);
    expect(a.ids(s)).toEqual([200]);
    expect(a.unregisterAllocator(two)).toBe(1);
    expect(a.customActive).toBe(false);
  });

  it('ignores unregistering an allocator that was never registered', () => {
    const a = new IoasidAllocator();
    const s = ioasidSet('host');
    a.ioasidAlloc(s, 1, 10);
    const before = snapshot(a);
    expect(a.unregisterAllocator(countingOps(1))).toBe(0);
    a.registerAllocator(countingOps(1));
    expect(snapshot(a)).toEqual(before);
  });
});

describe('IdBitmap', () => {
  it('finds the lowest clear bit across word and summary boundaries', () => {
    const b = new IdBitmap(5000);
    expect(b.findClear(0, 4999)).toBe(0);
    for (let i = 0; i < 4096; i++) b.set(i);
    expect(b.findClear(0, 4999)).toBe(4096);
    expect(b.findClear(0, 4095)).toBe(-1);
    expect(b.findClear(4999, 4999)).toBe(4999);
    b.clear(1023);
    expect(b.has(1023)).toBe(false);
    expect(b.has(1024)).toBe(true);
    expect(b.findClear(0, 4999)).toBe(1023);
    expect(b.findClear(1024, 4999)).toBe(4096);
    for (let i = 4096; i < 5000; i++) b.set(i);
    expect(b.findClear(1024, 4999)).toBe(-1);
    b.clear(4999);
    expect(b.findClear(31, 4999)).toBe(1023);
    expect(b.findClear(1024, 4998)).toBe(-1);
    expect(b.findClear(1024, 4999)).toBe(4999);
  });

  it('matches a linear scan on random contents', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3000 }),
        fc.array(fc.nat(), { maxLength: 400 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        (size, bits, ranges, dense) => {
          const b = new IdBitmap(size);
          const ref = new Uint8Array(size);
          if (dense) {
            for (let i = 0; i < size; i++) {
              b.set(i);
              ref[i] = 1;
            }
            for (const x of bits) {
              b.clear(x % size);
              ref[x % size] = 0;
            }
          } else {
            for (const x of bits) {
              b.set(x % size);
              ref[x % size] = 1;
            }
          }
          for (const [p, q] of ranges) {
            const lo = Math.min(p % size, q % size);
            const hi = Math.max(p % size, q % size);
            let expected = -1;
            for (let i = lo; i <= hi; i++) {
              if (ref[i] === 0) {
                expected = i;
                break;
              }
            }
            expect(b.findClear(lo, hi)).toBe(expected);
          }
        },
      ),
    );
  });
});

// ---------------------------------------------------------------- reference model

const INVALID = 0xffffffff;

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** The semantics spelt out plainly: a Map of live IDs and a linear scan. */
class ReferenceIoasid {
  readonly live = new Map<number, { set: IoasidSet; priv: unknown }>();
  readonly maxId: number;

  constructor(maxId: number) {
    this.maxId = maxId;
  }

  alloc(set: IoasidSet, min: number, max: number, priv: unknown): number {
    if (!isU32(min) || !isU32(max)) return INVALID;
    const hi = Math.min(max, this.maxId);
    for (let id = min; id <= hi; id++) {
      if (!this.live.has(id)) {
        this.live.set(id, { set, priv });
        return id;
      }
    }
    return INVALID;
  }

  find(set: IoasidSet | null, id: number): IoasidFindResult {
    const e = this.live.get(id);
    if (e === undefined) return { ok: false, errno: -ENOENT };
    if (set !== null && set !== e.set) return { ok: false, errno: -EACCES };
    return { ok: true, priv: e.priv };
  }

  free(id: number): boolean {
    return this.live.delete(id);
  }

  ids(set: IoasidSet): number[] {
    return [...this.live.entries()]
      .filter(([, e]) => e.set === set)
      .map(([id]) => id)
      .sort((x, y) => x - y);
  }
}

type Op =
  | { readonly kind: 'alloc'; readonly set: number; readonly min: number; readonly max: number }
  | { readonly kind: 'free'; readonly id: number }
  | { readonly kind: 'find'; readonly set: number | null; readonly id: number };

function opArb(bound: number): fc.Arbitrary<Op> {
  const edge = fc.constantFrom(-1, 0, 1.5, Number.NaN, 0xffffffff, 2 ** 32);
  const value = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: bound }) },
    { weight: 1, arbitrary: edge },
  );
  const setIdx = fc.integer({ min: 0, max: 2 });
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({ kind: fc.constant('alloc' as const), set: setIdx, min: value, max: value }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('free' as const), id: value }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('find' as const),
        set: fc.option(setIdx, { nil: null }),
        id: value,
      }),
    },
  );
}

function runAgainstReference(maxBits: number, ops: readonly Op[]): void {
  const a = new IoasidAllocator({ maxBits });
  const r = new ReferenceIoasid(2 ** maxBits - 1);
  const sets = [ioasidSet('a'), ioasidSet('b'), ioasidSet('c')];
  ops.forEach((op, step) => {
    switch (op.kind) {
      case 'alloc': {
        const priv = { step };
        expect(a.ioasidAlloc(sets[op.set]!, op.min, op.max, priv)).toBe(
          r.alloc(sets[op.set]!, op.min, op.max, priv),
        );
        break;
      }
      case 'free':
        expect(a.ioasidFree(op.id)).toBe(r.free(op.id));
        break;
      case 'find': {
        const set = op.set === null ? null : sets[op.set]!;
        expect(a.ioasidFind(set, op.id)).toEqual(r.find(set, op.id));
        break;
      }
    }
  });
  expect(a.allocated).toBe(r.live.size);
  for (const s of sets) {
    const ids = r.ids(s);
    expect(a.ids(s)).toEqual(ids);
    expect(a.count(s)).toBe(ids.length);
  }
}

describe('IoasidAllocator against the reference model', () => {
  it('agrees on random alloc/free/find sequences in small spaces (4–8 bits)', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 4, max: 8 })
          .chain((bits) => fc.tuple(fc.constant(bits), fc.array(opArb(2 ** bits + 4), { maxLength: 300 }))),
        ([bits, ops]) => runAgainstReference(bits, ops),
      ),
      { numRuns: 200 },
    );
  });

  it('agrees on sequences spread over the full 20-bit space', () => {
    const near = fc.integer({ min: 0, max: 0xfffff });
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .tuple(fc.integer({ min: 0, max: 2 }), near, fc.integer({ min: 0, max: 64 }), fc.boolean())
          .map(([set, min, span, open]) => ({
            kind: 'alloc' as const,
            set,
            min,
            max: open ? 0xffffffff : min + span,
          })),
      },
      { weight: 2, arbitrary: near.map((id) => ({ kind: 'free' as const, id })) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.option(fc.integer({ min: 0, max: 2 }), { nil: null }), near)
          .map(([set, id]) => ({ kind: 'find' as const, set, id })),
      },
    );
    // Dense clusters: many allocations from the same few minima, so runs of taken IDs form.
    const clustered = fc
      .tuple(fc.constantFrom(0, 31, 1023, 0xffbff), fc.integer({ min: 1, max: 600 }))
      .map(([min, n]) =>
        Array.from({ length: n }, (_, i): Op => ({ kind: 'alloc', set: i % 3, min, max: 0xfffff })),
      );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), clustered, fc.array(op, { maxLength: 200 }), (x, y, z) =>
        runAgainstReference(20, [...x, ...y, ...z]),
      ),
      { numRuns: 30 },
    );
  });
});

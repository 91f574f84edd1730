/**
 * Properties of the vSMMU's translators (forward.ts): the SET_PASID_TABLE struct round-trips
 * through the uAPI layout; every TLBI_NH_VA / VAA becomes records whose address ranges cover the
 * command's whole range, with LEAF only where the host will derive the guest's own level hint; any
 * host fault record becomes a guest event or a reason, never an exception.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import { EVT_0_ID, EVT_CLASS_IN } from '../../arch/smmuv3/events.ts';
import { encodeEvent } from '../../hw/smmuv3/event-record.ts';
import { cmdTlbiNhVa, cmdTlbiNhVaa } from '../../hw/smmuv3/structures.ts';
import {
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_PASID_CONFIG_BYPASS,
  iommu_cache_invalidate_info,
  iommu_fault,
  iommu_pasid_table_config,
} from '../../uapi/iommu.ts';
import { faultToEvent, pasidTableConfig, tlbiAddrInvalidations, tlbiInvalidations } from './forward.ts';

const GRANULES = [12, 16] as const;

describe('pasidTableConfig', () => {
  it('encodes to the 32-byte uAPI struct and back exactly', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 - 1 }).map((a) => a - (a % 64)),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 2 }),
        (basePtr, pasidBits, s1fmt, s1dss) => {
          const input = pasidTableConfig({ kind: 'translate', basePtr, pasidBits, s1fmt, s1dss });
          const bytes = iommu_pasid_table_config.encode(input);
          expect(bytes.length).toBe(32);
          const v = input.vendor_data!.smmuv3!;
          expect(iommu_pasid_table_config.decode(bytes)).toEqual({
            ...input,
            padding: new Uint8Array(2),
            vendor_data: { smmuv3: { ...v, padding: new Uint8Array(2) } },
          });
        },
      ),
    );
    expect(pasidTableConfig({ kind: 'bypass' })).toMatchObject({
      base_ptr: 0n,
      config: IOMMU_PASID_CONFIG_BYPASS,
    });
  });
});

describe('TLBI by address', () => {
  const rangeCmd = fc.record({
    va: fc.integer({ min: 0, max: 2 ** 36 }).map((v) => v * 0x1000),
    asid: fc.integer({ min: 0, max: 0xffff }),
    leaf: fc.boolean(),
    tg: fc.constantFrom(12 as const, 16 as const),
    num: fc.integer({ min: 0, max: 31 }),
    scale: fc.integer({ min: 0, max: 10 }),
    ttl: fc.integer({ min: 0, max: 3 }),
    vaa: fc.boolean(),
  });

  it('range form: the records cover [VA, VA + (NUM+1)·2^SCALE·2^TG); LEAF only with a TTL hint, at that leaf size', () => {
    fc.assert(
      fc.property(rangeCmd, (c) => {
        // TG with NUM = SCALE = TTL = 0 is reserved (an illegal command never gets here).
        fc.pre(c.num !== 0 || c.scale !== 0 || c.ttl !== 0);
        const r = { leaf: c.leaf, granule: c.tg, num: c.num, scale: c.scale, ttl: c.ttl };
        const w = c.vaa ? cmdTlbiNhVaa(0, c.va, r) : cmdTlbiNhVa(0, c.asid, c.va, r);
        const infos = tlbiInvalidations(w, GRANULES);
        expect(infos).toHaveLength(1);
        const a = infos[0]!.granu!.addr_info!;
        const start = BigInt(c.va);
        const end = start + (BigInt(c.num + 1) << BigInt(c.scale + c.tg));
        const gs = BigInt(a.granule_size!);
        expect(BigInt(a.addr!)).toBeLessThanOrEqual(start);
        expect(BigInt(a.addr!) + gs * BigInt(a.nb_granules!)).toBeGreaterThanOrEqual(end);
        expect((a.flags! & IOMMU_INV_ADDR_FLAGS_ARCHID) !== 0).toBe(!c.vaa);
        if (!c.vaa) expect(a.archid).toBe(c.asid);
        const leaf = (a.flags! & IOMMU_INV_ADDR_FLAGS_LEAF) !== 0;
        expect(leaf).toBe(c.leaf && c.ttl !== 0);
        if (leaf) expect(gs).toBe(1n << BigInt(c.tg + (3 - c.ttl) * (c.tg - 3)));
        else expect(gs).toBe(1n << BigInt(c.tg));
        // Every record is a valid 56-byte uAPI struct.
        expect(iommu_cache_invalidate_info.encode(infos[0]!).length).toBe(56);
      }),
    );
  });

  it('plain form (TG = 0): one page per advertised granule, containing the VA, no LEAF; VAA needs one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }).map((v) => v * 0x1000),
        fc.boolean(),
        (va, leaf) => {
          const infos = tlbiAddrInvalidations(cmdTlbiNhVa(0, 3, va, { leaf }), 3, GRANULES);
          expect(infos.map((i) => i.granu!.addr_info!.granule_size)).toEqual([0x1000n, 0x1_0000n]);
          for (const i of infos) {
            const a = i.granu!.addr_info!;
            expect(
              BigInt(a.addr!) <= BigInt(va) && BigInt(va) < BigInt(a.addr!) + BigInt(a.granule_size!),
            ).toBe(true);
            expect(a.flags).toBe(IOMMU_INV_ADDR_FLAGS_ARCHID);
          }
          expect(tlbiInvalidations(cmdTlbiNhVaa(0, va, { leaf }), GRANULES)).toHaveLength(1);
        },
      ),
    );
  });

  it('a TTB1 address beyond 2^53 stays exact (bigint)', () => {
    const va = 0xffff_8000_0000_0000n;
    const w = cmdTlbiNhVa(0, 1, 0, { granule: 12, num: 1 });
    w[2] = (w[2]! & 0xfff) | Number(va & 0xffff_f000n);
    w[3] = Number(va >> 32n);
    expect(tlbiInvalidations(w, GRANULES)[0]!.granu!.addr_info!.addr).toBe(va);
  });
});

describe('faultToEvent', () => {
  it('any host fault record gives a guest event for this StreamID or a reason; never throws; the event encodes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 2 ** 20 - 1 }),
        fc.integer({ min: 0, max: 15 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (type, reason, flags, pasid, perm, addr, fetch) => {
          const f = iommu_fault.decode(
            iommu_fault.encode({
              type,
              u: { event: { reason, flags, pasid, perm, addr, fetch_addr: fetch } },
            }),
          );
          const t = faultToEvent(f, 0x120, () => ({ l1Addr: -1, cdAddr: 0x4000_0000 }));
          if (!t.ok) {
            expect(type !== IOMMU_FAULT_DMA_UNRECOV || reason === 0 || reason > 8).toBe(true);
            return;
          }
          expect(t.event.streamId).toBe(0x120);
          const w = encodeEvent(t.event);
          expect(getField(w, EVT_0_ID)).toBe(t.event.id);
          if (t.event.cls !== undefined && t.event.cls === EVT_CLASS_IN) expect(t.event.s2).toBe(false);
        },
      ),
    );
  });
});

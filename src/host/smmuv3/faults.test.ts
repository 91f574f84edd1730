/**
 * The event → iommu_fault mapping (seed-spec §1.4): every SMMU event number, reported or not,
 * with its reason and flags; SubstreamIDs as PASIDs; permissions from RnW/InD/PnU; the fetch
 * address of fetch-type faults and of stage-2 faults on structure fetches.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EVENT_NAMES, EVT_CLASS_CD, EVT_CLASS_IN, EVT_CLASS_TT } from '../../arch/smmuv3/events.ts';
import { decodeEvent, type EventInit, encodeEvent, inputWords } from '../../hw/smmuv3/event-record.ts';
import {
  IOMMU_FAULT_UNRECOV_ADDR_VALID as ADDR,
  IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID as FETCH,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_NAMES,
  IOMMU_FAULT_UNRECOV_PASID_VALID as PASID,
} from '../../uapi/iommu.ts';
import { eventToFault } from './faults.ts';

/** A record as the SMMU writes it, decoded as the driver reads it. */
const record = (init: EventInit) => decodeEvent(encodeEvent(init));

/** Expected mapping per event name: [reason name, flags] or null for "not reported". */
const EXPECTED: Record<string, [string, number] | null> = {
  F_UUT: null,
  C_BAD_STREAMID: null,
  F_STE_FETCH: null,
  C_BAD_STE: null,
  F_BAD_ATS_TREQ: null,
  F_STREAM_DISABLED: null,
  F_TRANSL_FORBIDDEN: null,
  // The record always carries the offending SubstreamID (here 0): see faults.ts.
  C_BAD_SUBSTREAMID: ['PASID_INVALID', PASID],
  F_CD_FETCH: ['PASID_FETCH', FETCH],
  C_BAD_CD: ['BAD_PASID_ENTRY', 0],
  F_WALK_EABT: ['WALK_EABT', ADDR | FETCH],
  F_TRANSLATION: ['PTE_FETCH', ADDR],
  F_ADDR_SIZE: ['OOR_ADDRESS', ADDR],
  F_ACCESS: ['ACCESS', ADDR],
  F_PERMISSION: ['PERMISSION', ADDR],
  F_TLB_CONFLICT: null,
  F_CFG_CONFLICT: null,
  E_PAGE_REQUEST: null,
  F_VMS_FETCH: null,
};

describe('event → iommu_fault', () => {
  it('covers every event number the architecture names', () => {
    expect(Object.values(EVENT_NAMES).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EVENT_NAMES))('event 0x%s (%s)', (id, name) => {
    const e = record({
      id: Number(id),
      streamId: 7,
      ...inputWords(0x1234_5000),
      rnw: true,
      fetchAddr: 0x8_8000,
    });
    const f = eventToFault(e);
    const want = EXPECTED[name];
    if (want === null || want === undefined) {
      expect(f).toBeUndefined();
      return;
    }
    expect(f?.type).toBe(1);
    if (f?.type !== 1) return;
    expect(IOMMU_FAULT_REASON_NAMES[f.event.reason]).toBe(want[0]);
    expect(f.event.flags).toBe(want[1]);
    expect(f.event.addr).toBe((want[1] & ADDR) !== 0 ? 0x1234_5000 : 0);
    expect(f.event.fetch_addr).toBe((want[1] & FETCH) !== 0 ? 0x8_8000 : 0);
    expect(f.event.pasid).toBe(0);
  });

  it('a SubstreamID in the record becomes PASID_VALID and pasid', () => {
    for (const [id, ssid] of [
      [0x10, 3],
      [0x0b, 0xf_ffff],
      [0x0a, 1],
      [0x09, 5],
      [0x08, 77],
    ] as const) {
      const f = eventToFault(record({ id, streamId: 1, substreamId: ssid }));
      expect(f?.type === 1 && [f.event.flags & PASID, f.event.pasid]).toEqual([PASID, ssid]);
    }
    const none = eventToFault(record({ id: 0x10, streamId: 1 }));
    expect(none?.type === 1 && [none.event.flags & PASID, none.event.pasid]).toEqual([0, 0]);
  });

  it('perm follows RnW, InD and PnU; configuration events report none', () => {
    const perm = (init: Partial<EventInit>) => {
      const f = eventToFault(record({ id: 0x13, streamId: 1, ...init }));
      return f?.type === 1 ? f.event.perm : -1;
    };
    expect(perm({ rnw: true })).toBe(IOMMU_FAULT_PERM_READ);
    expect(perm({ rnw: false })).toBe(IOMMU_FAULT_PERM_WRITE);
    expect(perm({ rnw: true, ind: true })).toBe(IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_EXEC);
    expect(perm({ rnw: false, pnu: true })).toBe(IOMMU_FAULT_PERM_WRITE | IOMMU_FAULT_PERM_PRIV);
    const cd = eventToFault(record({ id: 0x0a, streamId: 1, substreamId: 2 }));
    expect(cd?.type === 1 && cd.event.perm).toBe(0);
  });

  it('a stage-2 fault while fetching a CD or stage-1 descriptor reports that IPA as fetch_addr', () => {
    const at = (cls: number) => {
      const f = eventToFault(record({ id: 0x10, streamId: 1, s2: true, cls, ipa: 0x4567_8000, rnw: true }));
      return f?.type === 1 ? [f.event.flags, f.event.fetch_addr] : [];
    };
    expect(at(EVT_CLASS_CD)).toEqual([ADDR | FETCH, 0x4567_8000]);
    expect(at(EVT_CLASS_TT)).toEqual([ADDR | FETCH, 0x4567_8000]);
    expect(at(EVT_CLASS_IN)).toEqual([ADDR, 0]);
  });

  it('never throws, whatever the record holds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 8, maxLength: 8 }),
        (words) => {
          const e = decodeEvent(Uint32Array.from(words));
          const f = eventToFault(e);
          if (f !== undefined && f.type === 1) {
            expect(Number.isFinite(f.event.addr)).toBe(true);
            expect(f.event.pasid).toBeLessThan(2 ** 20);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

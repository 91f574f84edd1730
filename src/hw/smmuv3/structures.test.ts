/** Driver-side writers round-trip through the device's decoders field by field. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import {
  CMD_0_ASID,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_0_VMID,
  CMD_1_LEAF,
  CMD_1_TG,
  CMD_1_TTL,
} from '../../arch/smmuv3/commands.ts';
import { STE_1_SHCFG } from '../../arch/smmuv3/ste.ts';
import type { Granule } from '../../arch/vmsa.ts';
import { decodeCd, decodeSte } from './config.ts';
import { DEFAULT_FEATURES } from './features.ts';
import { cmdTlbiNhVa, cmdTlbiS2Ipa, encodeCd, encodeSte } from './structures.ts';

describe('STE writer and decoder agree', () => {
  it('stage-2 fields of any legal combination decode to the regime the writer described', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<[Granule, number, number]>(
          [12, 40, 1],
          [12, 48, 2],
          [12, 34, 0],
          [14, 40, 1],
          [16, 42, 1],
          [16, 48, 2],
        ),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 2 ** 28 - 1 }),
        ([granule, ias, sl0], vmid, ttbPage) => {
          const ttb = ttbPage * 2 ** 16;
          const w = encodeSte({
            config: 's2',
            s2Vmid: vmid,
            s2T0sz: 64 - ias,
            s2Sl0: sl0,
            s2Granule: granule,
            s2PsBits: 48,
            s2Ttb: ttb,
          });
          const d = decodeSte(w, DEFAULT_FEATURES, false);
          if (!d.ok) throw new Error(d.reason);
          expect(d.value.s2).toBe(true);
          expect(d.value.s1).toBe(false);
          expect(d.value.vmid).toBe(vmid);
          const r = d.value.s2Regime!;
          expect(r.granule).toBe(granule);
          expect(r.inputBits).toBe(ias);
          expect(r.ttbHi * 2 ** 32 + r.ttbLo).toBe(ttb - (ttb % 2 ** (r.startBits + 3)));
          expect(getField(w, STE_1_SHCFG)).toBe(1); // "use incoming", as Linux writes
        },
      ),
    );
  });

  it('stage-1 CD fields decode to the regime and tags the writer described', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Granule>(12, 14, 16),
        fc.integer({ min: 16, max: 39 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        fc.boolean(),
        (granule, t0sz, asid, record, abort) => {
          const ste = decodeSte(encodeSte({ config: 's1', s1ContextPtr: 0x1000 }), DEFAULT_FEATURES, false);
          if (!ste.ok) throw new Error(ste.reason);
          const cd = decodeCd(
            encodeCd({ t0sz, granule0: granule, ttb0: 0x4000_0000, ipsBits: 48, asid, record, abort }),
            ste.value,
            DEFAULT_FEATURES,
          );
          if (!cd.ok) throw new Error(cd.reason);
          expect(cd.value.asid).toBe(asid);
          expect(cd.value.record).toBe(record);
          expect(cd.value.abortOnFault).toBe(abort);
          expect(cd.value.s1.tt0?.inputBits).toBe(64 - t0sz);
          expect(cd.value.s1.tt0?.granule).toBe(granule);
          expect(cd.value.s1.tt1).toBeNull(); // EPD1 set by the writer
        },
      ),
    );
  });
});

describe('command writers', () => {
  it('TLBI_NH_VA carries VMID, ASID, the address words and the range fields', () => {
    const w = cmdTlbiNhVa(0x1234, 0xbeef, 0xffff_8000_1234_5000, {
      granule: 12,
      num: 3,
      scale: 2,
      ttl: 3,
      leaf: true,
    });
    expect(getField(w, CMD_0_OP)).toBe(0x12);
    expect(getField(w, CMD_0_VMID)).toBe(0x1234);
    expect(getField(w, CMD_0_ASID)).toBe(0xbeef);
    expect([
      getField(w, CMD_0_NUM),
      getField(w, CMD_0_SCALE),
      getField(w, CMD_1_TTL),
      getField(w, CMD_1_TG),
    ]).toEqual([3, 2, 3, 1]);
    // Leaf shares word 2 with the address: it must survive the address write.
    expect(getField(w, CMD_1_LEAF)).toBe(1);
    expect(getField(cmdTlbiNhVa(1, 1, 0x5000, { leaf: false }), CMD_1_LEAF)).toBe(0);
    expect(getField(cmdTlbiS2Ipa(1, 0x5000, { leaf: true }), CMD_1_LEAF)).toBe(1);
    expect(w[3]).toBe(0xffff_8000); // VA[63:32], exact although the VA is above 2^53
    expect(w[2]! & 0xffff_f000).toBe(0x1234_5000);
  });

  it('TLBI_S2_IPA keeps only IPA[51:12]', () => {
    const w = cmdTlbiS2Ipa(7, 0x000f_ffff_ffff_f000);
    expect(w[3]! >>> 20).toBe(0);
    expect(w[3]! & 0xf_ffff).toBe(0xf_ffff);
  });
});

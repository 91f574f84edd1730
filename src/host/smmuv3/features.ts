/**
 * The feature probe of Linux's arm-smmu-v3 driver (arm_smmu_device_hw_probe, v5.12 + the
 * nested-stage series, seed-spec §8): the ID registers IDR0/1/3/5 (and IIDR/AIDR, kept for
 * reports) decoded into the facts the driver acts on — which stages exist, 2-level stream and CD
 * tables, ASID/VMID widths, StreamID/SubstreamID sizes, the output and input address sizes, the
 * page sizes the translation granules give, the queue sizes, range invalidation — or the reason
 * the driver refuses the device.
 *
 * A pure function of register values, so every refusal is testable without a device.
 */

import { extract32 } from '../../arch/bits.ts';
import { type Granule, levelShift, PS_BITS } from '../../arch/vmsa.ts';
import { ENXIO } from '../../uapi/errno.ts';

/** The ID register values the probe reads. */
export interface IdRegisterValues {
  readonly idr0: number;
  readonly idr1: number;
  readonly idr3: number;
  readonly idr5: number;
  readonly iidr: number;
  readonly aidr: number;
}

export interface ArmSmmuV3Features {
  /** IDR0.S1P / S2P (ARM_SMMU_FEAT_TRANS_S1 / _S2). */
  readonly transS1: boolean;
  readonly transS2: boolean;
  /** IDR0.ST_LEVEL = 2-level, kept only when SIDSIZE does not fit one L2 table (see `sidBits`). */
  readonly twoLevelStrtab: boolean;
  /** IDR0.CD2L. */
  readonly twoLevelCdtab: boolean;
  readonly hyp: boolean;
  readonly msi: boolean;
  readonly sev: boolean;
  /** IDR0.COHACC: coherent table and queue accesses. */
  readonly coherent: boolean;
  /** IDR0.STALL_MODEL and TERM_MODEL, for reports (vsva's driver never enables stalls). */
  readonly stallModel: number;
  readonly termModel: number;
  /** 8 or 16. */
  readonly asidBits: number;
  /** 8 or 16 (0 without stage 2). */
  readonly vmidBits: number;
  /** IDR1.SSIDSIZE and SIDSIZE. */
  readonly ssidBits: number;
  readonly sidBits: number;
  /** IDR1.CMDQS / EVENTQS: log2 of the largest queues. */
  readonly cmdqShift: number;
  readonly evtqShift: number;
  /** IDR1.ATTR_TYPES_OVR: STE.SHCFG may be programmed. */
  readonly attrTypesOvr: boolean;
  /** IDR3.RIL (ARM_SMMU_FEAT_RANGE_INV). */
  readonly rangeInv: boolean;
  /** Output address size (IDR5.OAS) and the input (IPA) size: max(IAS, OAS), AArch64 tables. */
  readonly oasBits: number;
  readonly iasBits: number;
  /** Supported granules, smallest first. */
  readonly granules: readonly Granule[];
  /** Page and block sizes the granules give (bit n set: 2^n bytes), Linux's choice per granule. */
  readonly pgsizeBitmap: number;
  readonly iidr: number;
  /** AIDR as "3.minor". */
  readonly version: string;
}

export type FeatureProbe =
  | { readonly ok: true; readonly features: ArmSmmuV3Features }
  | { readonly ok: false; readonly errno: number; readonly reason: string };

const bit = (v: number, n: number): boolean => ((v >>> n) & 1) === 1;

/**
 * Page sizes per granule, as Linux's probe adds them: 4K gives 4K, 2M and 1G; 16K gives 16K and
 * 32M; 64K gives 64K and 512M (never the 4TB level-1 block of a 52-bit output).
 */
export const GRANULE_PAGE_SIZES: Readonly<Record<Granule, readonly number[]>> = {
  12: [12, levelShift(12, 2), levelShift(12, 1)],
  14: [14, levelShift(14, 2)],
  16: [16, levelShift(16, 2)],
};

/** A bitmap (bit n: 2^n bytes) from log2 sizes; arithmetic, since bits may exceed 31. */
export function sizesToBitmap(log2s: readonly number[]): number {
  let out = 0;
  for (const s of new Set(log2s)) out += 2 ** s;
  return out;
}

/** log2 of every size in a bitmap, smallest first. */
export function bitmapToSizes(bitmap: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < 53; n++) if (Math.floor(bitmap / 2 ** n) % 2 === 1) out.push(n);
  return out;
}

const refuse = (reason: string): FeatureProbe => ({ ok: false, errno: -ENXIO, reason });

/**
 * Decodes the ID registers. Refusals (-ENXIO, as Linux's probe): no translation stage; no AArch64
 * table format (IDR0.TTF); big-endian-only tables (TTENDIAN = 0b11, vsva hosts are little-endian);
 * an embedded implementation (IDR1.TABLES_PRESET / QUEUES_PRESET / REL); a command or event queue
 * of size 0 (Decision: a 1-entry command queue cannot hold a command and its CMD_SYNC, and Linux
 * refuses far larger ones); no supported granule (Decision: nothing could be mapped).
 */
export function decodeFeatures(r: IdRegisterValues): FeatureProbe {
  const { idr0, idr1, idr3, idr5 } = r;
  const transS2 = bit(idr0, 0);
  const transS1 = bit(idr0, 1);
  if (!transS1 && !transS2) return refuse('no translation support (IDR0.S1P = S2P = 0)');
  const ttf = extract32(idr0, 2, 2);
  if ((ttf & 0b10) === 0) return refuse('AArch64 table format not supported (IDR0.TTF)');
  if (extract32(idr0, 21, 2) === 0b11) return refuse('big-endian-only tables (IDR0.TTENDIAN = 0b11)');
  if (bit(idr1, 30) || bit(idr1, 29) || bit(idr1, 28)) {
    return refuse('embedded implementation not supported (IDR1.TABLES_PRESET/QUEUES_PRESET/REL)');
  }
  const cmdqShift = extract32(idr1, 21, 5);
  const evtqShift = extract32(idr1, 16, 5);
  if (cmdqShift === 0) return refuse('command queue size 0 (IDR1.CMDQS) not supported');
  if (evtqShift === 0) return refuse('event queue size 0 (IDR1.EVENTQS) not supported');
  const sidBits = extract32(idr1, 0, 6);
  const ssidBits = extract32(idr1, 6, 5);
  const granules: Granule[] = [];
  if (bit(idr5, 4)) granules.push(12);
  if (bit(idr5, 5)) granules.push(14);
  if (bit(idr5, 6)) granules.push(16);
  if (granules.length === 0) return refuse('no translation granule supported (IDR5.GRAN*)');
  // An unknown OAS encoding is truncated to 48 bits, as Linux does.
  const oasBits = PS_BITS[extract32(idr5, 0, 3)] ?? 48;
  // AArch64-only tables: IAS = OAS (Linux: ias = max(ias, oas); 40 only with AArch32 tables).
  const iasBits = Math.max((ttf & 1) === 1 ? 40 : 0, oasBits);
  const aidr = r.aidr >>> 0;
  return {
    ok: true,
    features: {
      transS1,
      transS2,
      // One L2 table (SPLIT = 8) covers SIDSIZE <= 8: use a linear table then, as Linux does.
      twoLevelStrtab: extract32(idr0, 27, 2) === 1 && sidBits > STRTAB_SPLIT,
      twoLevelCdtab: bit(idr0, 19),
      hyp: bit(idr0, 9),
      msi: bit(idr0, 13),
      sev: bit(idr0, 14),
      coherent: bit(idr0, 4),
      stallModel: extract32(idr0, 24, 2),
      termModel: extract32(idr0, 26, 1),
      asidBits: bit(idr0, 12) ? 16 : 8,
      vmidBits: transS2 ? (bit(idr0, 18) ? 16 : 8) : 0,
      ssidBits,
      sidBits,
      cmdqShift,
      evtqShift,
      attrTypesOvr: bit(idr1, 27),
      rangeInv: bit(idr3, 10),
      oasBits,
      iasBits,
      granules,
      pgsizeBitmap: sizesToBitmap(granules.flatMap((g) => GRANULE_PAGE_SIZES[g])),
      iidr: r.iidr >>> 0,
      version: `3.${aidr & 0xf}`,
    },
  };
}

/** Linux's STRTAB_SPLIT: StreamIDs per L2 stream table = 2^8. */
export const STRTAB_SPLIT = 8;

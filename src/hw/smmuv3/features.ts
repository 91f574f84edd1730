/**
 * SMMUv3 implementation choices, fixed at construction and reflected in the ID registers
 * (IHI 0070 §6.3.1-§6.3.8). Also the model's decisions where the architecture leaves a choice
 * (CONSTRAINED UNPREDICTABLE or IMPLEMENTATION DEFINED), each recorded next to its option.
 *
 * vsva models an SMMUv3.2 (AIDR = 0x02) with the Non-secure programming interface only, AArch64
 * tables only (TTF = 0b10), little-endian tables only (TTENDIAN = 0b10), no stalls
 * (STALL_MODEL = 0b01), no ATS/PRI, no HTTU, no MPAM. The v3.1/v3.2-mandatory features are
 * present: HAD, XNX (stage-2 execute-never per privilege), RIL, FWB (STE.S2FWB is accepted; memory
 * attributes are not modelled, so it has no visible effect) and BBML level 2 (the model never
 * raises F_TLB_CONFLICT: entries of different sizes for one address coexist and either may be
 * used). With `rangeInvalidation: false` the SMMU reports itself as v3.1 (AIDR = 0x01), since
 * RIL is mandatory from v3.2.
 */

import { type Granule, psEncoding } from '../../arch/vmsa.ts';

export interface SmmuFeatures {
  /** Stage-1 translation (IDR0.S1P). */
  readonly stage1: boolean;
  /** Stage-2 translation (IDR0.S2P). */
  readonly stage2: boolean;
  /** StreamID bits (IDR1.SIDSIZE), 0..32. */
  readonly sidBits: number;
  /** SubstreamID (PASID) bits (IDR1.SSIDSIZE), 0..20. */
  readonly ssidBits: number;
  /** Output (physical) address size (IDR5.OAS): 32, 36, 40, 42, 44, 48 or 52. */
  readonly oasBits: number;
  /** Supported translation granules (IDR5.GRAN4K/16K/64K). */
  readonly granules: readonly Granule[];
  readonly asid16: boolean;
  readonly vmid16: boolean;
  /** 2-level stream tables (IDR0.ST_LEVEL = 0b01). */
  readonly twoLevelStreamTable: boolean;
  /** 2-level CD tables (IDR0.CD2L). */
  readonly twoLevelCdTable: boolean;
  /** Range invalidation and TTL hints (IDR3.RIL). */
  readonly rangeInvalidation: boolean;
  /** Small translation tables (IDR3.STT): TxSZ up to 48, stage-2 level-3 starts. */
  readonly smallTables: boolean;
  /** EL2 StreamWorlds (IDR0.Hyp); needs both stages. */
  readonly hyp: boolean;
  /** MSI-capable interrupts and CMD_SYNC MSIs (IDR0.MSI). */
  readonly msi: boolean;
  /** Wake-up events (IDR0.SEV). */
  readonly sev: boolean;
  /** IDR0.TERM_MODEL: 1 = terminated transactions always abort (CD.A must be 1). */
  readonly termModel: 0 | 1;
  /** log2 of the largest command queue (IDR1.CMDQS), 0..19. */
  readonly cmdqLog2Max: number;
  /** log2 of the largest event queue (IDR1.EVENTQS), 0..19. */
  readonly eventqLog2Max: number;
  /** IOTLB entries (power of two) and associativity. */
  readonly iotlbEntries: number;
  readonly iotlbWays: number;
  /** Configuration cache capacities: STEs, and CDs across all streams. */
  readonly steCacheEntries: number;
  readonly cdCacheEntries: number;
  /**
   * Non-zero RES0 bits in an STE, CD, L1 descriptor or command (IHI 0070 §5, §4.1.5 leave the
   * choice to the implementation): 'illegal' makes the structure invalid (C_BAD_STE, C_BAD_CD,
   * C_BAD_SUBSTREAMID, CERROR_ILL); 'ignore' ignores them.
   */
  readonly reservedBits: 'illegal' | 'ignore';
  /** Leaf fault order: the architecture's (address size, access flag, permission) or QEMU's. */
  readonly faultOrder: 'architecture' | 'qemu';
  /** GBPA.ABORT at reset (IMPLEMENTATION DEFINED): true = default-deny while SMMUEN = 0. */
  readonly gbpaAbortAtReset: boolean;
}

export const DEFAULT_FEATURES: SmmuFeatures = {
  stage1: true,
  stage2: true,
  sidBits: 16,
  ssidBits: 20,
  oasBits: 48,
  granules: [12, 14, 16],
  asid16: true,
  vmid16: true,
  twoLevelStreamTable: true,
  twoLevelCdTable: true,
  rangeInvalidation: true,
  smallTables: false,
  hyp: true,
  msi: true,
  sev: true,
  termModel: 0,
  cmdqLog2Max: 8,
  eventqLog2Max: 7,
  iotlbEntries: 2048,
  iotlbWays: 4,
  steCacheEntries: 64,
  cdCacheEntries: 256,
  reservedBits: 'illegal',
  faultOrder: 'architecture',
  gbpaAbortAtReset: false,
};

export type FeaturesResult = { ok: true; features: SmmuFeatures } | { ok: false; errors: string[] };

const isPow2 = (n: number): boolean =>
  Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;

/** Fills defaults and checks every option; returns one message per problem. */
export function resolveFeatures(partial: Partial<SmmuFeatures> = {}): FeaturesResult {
  const f: SmmuFeatures = { ...DEFAULT_FEATURES, ...partial };
  const errors: string[] = [];
  const intIn = (name: string, v: number, lo: number, hi: number): void => {
    if (!Number.isInteger(v) || v < lo || v > hi)
      errors.push(`${name} must be an integer in ${lo}..${hi}, got ${v}`);
  };
  if (!f.stage1 && !f.stage2) errors.push('at least one of stage1 and stage2 must be implemented');
  intIn('sidBits', f.sidBits, 0, 32);
  intIn('ssidBits', f.ssidBits, 0, 20);
  if (psEncoding(f.oasBits) < 0)
    errors.push(`oasBits must be one of 32, 36, 40, 42, 44, 48, 52, got ${f.oasBits}`);
  if (f.oasBits === 52 && !f.granules.includes(16)) errors.push('a 52-bit OAS needs the 64KB granule');
  if (f.granules.length === 0 || f.granules.some((g) => g !== 12 && g !== 14 && g !== 16)) {
    errors.push('granules must be a non-empty subset of [12, 14, 16]');
  }
  if (f.hyp && !(f.stage1 && f.stage2)) errors.push('hyp needs both stages');
  if (f.sidBits >= 7 && !f.twoLevelStreamTable)
    errors.push('sidBits >= 7 requires twoLevelStreamTable (IDR0.ST_LEVEL)');
  intIn('cmdqLog2Max', f.cmdqLog2Max, 0, 19);
  intIn('eventqLog2Max', f.eventqLog2Max, 0, 19);
  if (!isPow2(f.iotlbEntries) || f.iotlbEntries > 2 ** 20) {
    errors.push(`iotlbEntries must be a power of two up to 2^20, got ${f.iotlbEntries}`);
  }
  if (!isPow2(f.iotlbWays) || f.iotlbWays > f.iotlbEntries) {
    errors.push(`iotlbWays must be a power of two no larger than iotlbEntries, got ${f.iotlbWays}`);
  }
  intIn('steCacheEntries', f.steCacheEntries, 1, 1 << 20);
  intIn('cdCacheEntries', f.cdCacheEntries, 1, 1 << 20);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, features: f };
}

/** The ID register values implied by a feature set. */
export interface IdRegisters {
  readonly idr0: number;
  readonly idr1: number;
  readonly idr2: number;
  readonly idr3: number;
  readonly idr4: number;
  readonly idr5: number;
  /** IIDR is IMPLEMENTATION DEFINED; vsva reads 0 rather than borrowing a vendor's JEP106 code. */
  readonly iidr: number;
  /** SMMUv3.2 (v3.1 without range invalidation). */
  readonly aidr: number;
}

export function idRegisters(f: SmmuFeatures): IdRegisters {
  const b = (v: boolean): number => (v ? 1 : 0);
  const idr0 =
    (b(f.stage2) << 0) |
    (b(f.stage1) << 1) |
    (0b10 << 2) | // TTF: AArch64 tables only
    (1 << 4) | // COHACC
    (b(f.hyp) << 9) |
    (b(f.asid16) << 12) |
    (b(f.msi) << 13) |
    (b(f.sev) << 14) |
    (b(f.vmid16 && f.stage2) << 18) |
    (b(f.twoLevelCdTable && f.stage1) << 19) |
    (0b10 << 21) | // TTENDIAN: little-endian only
    (0b01 << 24) | // STALL_MODEL: terminate only
    (f.termModel << 26) |
    (b(f.twoLevelStreamTable) << 27);
  const idr1 =
    f.sidBits |
    (f.ssidBits << 6) |
    (f.eventqLog2Max << 16) |
    (f.cmdqLog2Max << 21) |
    (1 << 26) | // ATTR_PERMS_OVR: STE.PRIVCFG / INSTCFG honoured
    (1 << 27); // ATTR_TYPES_OVR: STE.MTCFG / SHCFG / ALLOCCFG accepted (memory attributes not modelled)
  const idr3 =
    (b(f.stage1) << 2) | // HAD
    (b(f.stage2) << 4) | // XNX
    (b(f.stage2) << 8) | // FWB
    (b(f.smallTables) << 9) | // STT
    (b(f.rangeInvalidation) << 10) | // RIL
    (0b10 << 11); // BBML: level 2
  const idr5 =
    psEncoding(f.oasBits) |
    (b(f.granules.includes(12)) << 4) |
    (b(f.granules.includes(14)) << 5) |
    (b(f.granules.includes(16)) << 6);
  const aidr = f.rangeInvalidation ? 0x02 : 0x01;
  return { idr0: idr0 >>> 0, idr1: idr1 >>> 0, idr2: 0, idr3, idr4: 0, idr5, iidr: 0, aidr };
}

/** IAS: the IPA size (IHI 0070 §3.4): OAS for AArch64-only tables. */
export function iasBits(f: SmmuFeatures): number {
  return f.oasBits;
}

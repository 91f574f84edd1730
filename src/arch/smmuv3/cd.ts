/**
 * SMMUv3 Context Descriptor (64 bytes, 8 dwords) and Level-1 CD descriptor (8 bytes), IHI 0070
 * §5.4 and §5.3, as field tables. Constants follow Linux's naming (`CD_0_ASID` = dword 0, ASID).
 * Bits of features vsva reports absent (HTTU table AF, E0PD, PBHA, EPAN, LPA2 DS, permission
 * indirection, attribute index extension, MPAM, Secure NSCFGx) are RES0 and listed in
 * `CD_RES0_MASKS`; HAD0/HAD1 are modelled (IDR3.HAD = 1), as are WXN, UWXN, PAN, TBI, AFFD.
 */

import { addrField, bitField, type Field, field } from '../fields.ts';

export const CD_DWORDS = 8;
export const CD_BYTES = 64;

// ---- dword 0
export const CD_0_T0SZ = field('T0SZ', 0, 5, 0);
export const CD_0_TG0 = field('TG0', 0, 7, 6);
export const CD_0_IR0 = field('IR0', 0, 9, 8);
export const CD_0_OR0 = field('OR0', 0, 11, 10);
export const CD_0_SH0 = field('SH0', 0, 13, 12);
export const CD_0_EPD0 = bitField('EPD0', 0, 14);
export const CD_0_ENDI = bitField('ENDI', 0, 15);
export const CD_0_T1SZ = field('T1SZ', 0, 21, 16);
export const CD_0_TG1 = field('TG1', 0, 23, 22);
export const CD_0_IR1 = field('IR1', 0, 25, 24);
export const CD_0_OR1 = field('OR1', 0, 27, 26);
export const CD_0_SH1 = field('SH1', 0, 29, 28);
export const CD_0_EPD1 = bitField('EPD1', 0, 30);
export const CD_0_V = bitField('V', 0, 31);
export const CD_0_IPS = field('IPS', 0, 34, 32);
export const CD_0_AFFD = bitField('AFFD', 0, 35);
export const CD_0_WXN = bitField('WXN', 0, 36);
export const CD_0_UWXN = bitField('UWXN', 0, 37);
export const CD_0_TBI0 = bitField('TBI0', 0, 38);
export const CD_0_TBI1 = bitField('TBI1', 0, 39);
export const CD_0_PAN = bitField('PAN', 0, 40);
export const CD_0_AA64 = bitField('AA64', 0, 41);
export const CD_0_HD = bitField('HD', 0, 42);
export const CD_0_HA = bitField('HA', 0, 43);
export const CD_0_S = bitField('S', 0, 44);
export const CD_0_R = bitField('R', 0, 45);
export const CD_0_A = bitField('A', 0, 46);
export const CD_0_ASET = bitField('ASET', 0, 47);
export const CD_0_ASID = field('ASID', 0, 63, 48);

// ---- dword 1
export const CD_1_HAD0 = bitField('HAD0', 1, 1);
/** TTB0 bits [51:4] (in place). */
export const CD_1_TTB0 = addrField('TTB0', 1, 51, 4);

// ---- dword 2
export const CD_2_HAD1 = bitField('HAD1', 2, 1);
/** TTB1 bits [51:4] (in place). */
export const CD_2_TTB1 = addrField('TTB1', 2, 51, 4);

// ---- dwords 3-5
export const CD_3_MAIR = field('MAIR', 3, 63, 0);
export const CD_4_AMAIR = field('AMAIR', 4, 63, 0);
export const CD_5_IMPDEF = field('IMPLEMENTATION_DEFINED', 5, 31, 0);

export const CD_FIELDS: readonly Field[] = [
  CD_0_T0SZ,
  CD_0_TG0,
  CD_0_IR0,
  CD_0_OR0,
  CD_0_SH0,
  CD_0_EPD0,
  CD_0_ENDI,
  CD_0_T1SZ,
  CD_0_TG1,
  CD_0_IR1,
  CD_0_OR1,
  CD_0_SH1,
  CD_0_EPD1,
  CD_0_V,
  CD_0_IPS,
  CD_0_AFFD,
  CD_0_WXN,
  CD_0_UWXN,
  CD_0_TBI0,
  CD_0_TBI1,
  CD_0_PAN,
  CD_0_AA64,
  CD_0_HD,
  CD_0_HA,
  CD_0_S,
  CD_0_R,
  CD_0_A,
  CD_0_ASET,
  CD_0_ASID,
  CD_1_HAD0,
  CD_1_TTB0,
  CD_2_HAD1,
  CD_2_TTB1,
  CD_3_MAIR,
  CD_4_AMAIR,
  CD_5_IMPDEF,
];

/**
 * RES0 bits per 32-bit word for vsva's feature set: dw1 bit 0 (NSCFG0, Secure only), bits [3:2]
 * (E0PD0, HAFT), [63:52] (TTB0[55:52] RES0 for VMSAv8-64, PnCH, EPAN, HWU0xx); dw2 the same for the
 * TTB1 half plus AIE (bit 3), DS (58), PIE (59); dw5 [63:32] (MPAM PARTID/PMG); dwords 6-7
 * (PIIU/PIIP permission indirection).
 */
export const CD_RES0_MASKS: readonly number[] = [
  // dw0: fully defined
  0x0000_0000, 0x0000_0000,
  // dw1
  0x0000_000d, 0xfff0_0000,
  // dw2
  0x0000_000d, 0xfff0_0000,
  // dw3, dw4: MAIR, AMAIR
  0x0000_0000, 0x0000_0000, 0x0000_0000, 0x0000_0000,
  // dw5: IMPLEMENTATION DEFINED low word, MPAM high word
  0x0000_0000, 0xffff_ffff,
  // dw6, dw7
  0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff,
];

/** CD.TG0 encodings (as TCR.TG0) and CD.TG1 encodings (as TCR.TG1): they differ on purpose. */
export const TG0_4K = 0;
export const TG0_64K = 1;
export const TG0_16K = 2;
export const TG1_16K = 1;
export const TG1_4K = 2;
export const TG1_64K = 3;

/** Granule log2 for a TG0 / TG1 encoding, or -1 for a reserved one. */
export function tg0Granule(tg: number): number {
  return tg === TG0_4K ? 12 : tg === TG0_64K ? 16 : tg === TG0_16K ? 14 : -1;
}
export function tg1Granule(tg: number): number {
  return tg === TG1_4K ? 12 : tg === TG1_64K ? 16 : tg === TG1_16K ? 14 : -1;
}

// ---- Level-1 CD descriptor (§5.3)
export const L1CD_BYTES = 8;
export const L1CD_V = bitField('V', 0, 0);
/** L2Ptr bits [55:12] (in place). */
export const L1CD_L2PTR = addrField('L2Ptr', 0, 55, 12);
export const L1CD_FIELDS: readonly Field[] = [L1CD_V, L1CD_L2PTR];
/** L1CD RES0 bits: [11:1] and [63:56]. */
export const L1CD_RES0_MASKS: readonly number[] = [0x0000_0ffe, 0xff00_0000];

/** CDs per leaf table for S1Fmt 2-level formats: 64 (4KB leaves) and 1024 (64KB leaves). */
export const CD_LEAF_SPLIT_4K = 6;
export const CD_LEAF_SPLIT_64K = 10;

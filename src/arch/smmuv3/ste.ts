/**
 * SMMUv3 Stream Table Entry (64 bytes, 8 dwords) and Level-1 Stream Table Descriptor (8 bytes),
 * IHI 0070 §5.2 and §5.1, as field tables. Constants follow Linux's STRUCT_DWORD_FIELD naming
 * (`STE_0_CFG` = dword 0, Config); `name` is the spec's field name. Only the fields vsva models are
 * listed; every other bit of dwords 0-3 is RES0 for the feature set vsva implements (no Secure state,
 * no ATS/PRI, no MPAM, no HTTU, no permission indirection/overlays, no PBHA), and dwords 4-7 hold only
 * Secure, MPAM, Realm and overlay fields, so they are RES0 too. `STE_RES0_MASKS` lists those bits.
 */

import { addrField, bitField, type Field, field } from '../fields.ts';

export const STE_DWORDS = 8;
export const STE_BYTES = 64;

// ---- dword 0
export const STE_0_V = bitField('V', 0, 0);
export const STE_0_CFG = field('Config', 0, 3, 1);
export const STE_0_S1FMT = field('S1Fmt', 0, 5, 4);
/** S1ContextPtr bits [55:6] (in place). */
export const STE_0_S1CTXPTR = addrField('S1ContextPtr', 0, 55, 6);
export const STE_0_S1CDMAX = field('S1CDMax', 0, 63, 59);

// ---- dword 1
export const STE_1_S1DSS = field('S1DSS', 1, 1, 0);
export const STE_1_S1CIR = field('S1CIR', 1, 3, 2);
export const STE_1_S1COR = field('S1COR', 1, 5, 4);
export const STE_1_S1CSH = field('S1CSH', 1, 7, 6);
export const STE_1_CONT = field('CONT', 1, 16, 13);
export const STE_1_MEV = bitField('MEV', 1, 19);
export const STE_1_SW_RESERVED = field('SW_RESERVED', 1, 23, 20);
export const STE_1_S2FWB = bitField('S2FWB', 1, 25);
export const STE_1_S1STALLD = bitField('S1STALLD', 1, 27);
export const STE_1_EATS = field('EATS', 1, 29, 28);
export const STE_1_STRW = field('STRW', 1, 31, 30);
export const STE_1_MEMATTR = field('MemAttr', 1, 35, 32);
export const STE_1_MTCFG = bitField('MTCFG', 1, 36);
export const STE_1_ALLOCCFG = field('ALLOCCFG', 1, 40, 37);
export const STE_1_SHCFG = field('SHCFG', 1, 45, 44);
export const STE_1_NSCFG = field('NSCFG', 1, 47, 46);
export const STE_1_PRIVCFG = field('PRIVCFG', 1, 49, 48);
export const STE_1_INSTCFG = field('INSTCFG', 1, 51, 50);
export const STE_1_IMPDEF = field('IMPLEMENTATION_DEFINED', 1, 63, 52);

// ---- dword 2
export const STE_2_S2VMID = field('S2VMID', 2, 15, 0);
export const STE_2_IMPDEF = field('IMPLEMENTATION_DEFINED', 2, 31, 16);
export const STE_2_S2T0SZ = field('S2T0SZ', 2, 37, 32);
export const STE_2_S2SL0 = field('S2SL0', 2, 39, 38);
export const STE_2_S2IR0 = field('S2IR0', 2, 41, 40);
export const STE_2_S2OR0 = field('S2OR0', 2, 43, 42);
export const STE_2_S2SH0 = field('S2SH0', 2, 45, 44);
export const STE_2_S2TG = field('S2TG', 2, 47, 46);
export const STE_2_S2PS = field('S2PS', 2, 50, 48);
export const STE_2_S2AA64 = bitField('S2AA64', 2, 51);
export const STE_2_S2ENDI = bitField('S2ENDI', 2, 52);
export const STE_2_S2AFFD = bitField('S2AFFD', 2, 53);
export const STE_2_S2PTW = bitField('S2PTW', 2, 54);
export const STE_2_S2HD = bitField('S2HD', 2, 55);
export const STE_2_S2HA = bitField('S2HA', 2, 56);
export const STE_2_S2S = bitField('S2S', 2, 57);
export const STE_2_S2R = bitField('S2R', 2, 58);

// ---- dword 3
/** S2TTB bits [51:4] (in place). */
export const STE_3_S2TTB = addrField('S2TTB', 3, 51, 4);

/** Every STE field vsva decodes, in spec order (used by decode, pretty-printing and layout tests). */
export const STE_FIELDS: readonly Field[] = [
  STE_0_V,
  STE_0_CFG,
  STE_0_S1FMT,
  STE_0_S1CTXPTR,
  STE_0_S1CDMAX,
  STE_1_S1DSS,
  STE_1_S1CIR,
  STE_1_S1COR,
  STE_1_S1CSH,
  STE_1_CONT,
  STE_1_MEV,
  STE_1_SW_RESERVED,
  STE_1_S2FWB,
  STE_1_S1STALLD,
  STE_1_EATS,
  STE_1_STRW,
  STE_1_MEMATTR,
  STE_1_MTCFG,
  STE_1_ALLOCCFG,
  STE_1_SHCFG,
  STE_1_NSCFG,
  STE_1_PRIVCFG,
  STE_1_INSTCFG,
  STE_1_IMPDEF,
  STE_2_S2VMID,
  STE_2_IMPDEF,
  STE_2_S2T0SZ,
  STE_2_S2SL0,
  STE_2_S2IR0,
  STE_2_S2OR0,
  STE_2_S2SH0,
  STE_2_S2TG,
  STE_2_S2PS,
  STE_2_S2AA64,
  STE_2_S2ENDI,
  STE_2_S2AFFD,
  STE_2_S2PTW,
  STE_2_S2HD,
  STE_2_S2HA,
  STE_2_S2S,
  STE_2_S2R,
  STE_3_S2TTB,
];

/**
 * RES0 bits per 32-bit word (16 words) for vsva's feature set: bits not covered by a field above,
 * plus fields of features vsva reports absent (dw1 S2HWU59-62, DRE, DCP, PPAR, S1PIE, S1MPAM;
 * dw2 S2HAFT, S2PIE, S2POE, DPT_VMATCH; dw3 S2NSW, S2NSA, S2SL0_2, S2DS, S2SKL; dwords 4-7).
 * IMPLEMENTATION DEFINED and SW_RESERVED fields are never checked.
 */
export const STE_RES0_MASKS: readonly number[] = [
  // dw0: bits [58:56]
  0x0000_0000, 0x0700_0000,
  // dw1: bits [12:8] (S2HWU59-62, DRE), [18:17] (DCP, PPAR), 24 (S1PIE), 26 (S1MPAM), [43:41]
  0x0506_1f00, 0x0000_0e00,
  // dw2: bits [63:59] (S2HAFT, S2PIE, S2POE, DPT_VMATCH)
  0x0000_0000, 0xf800_0000,
  // dw3: bits [3:0] (S2NSW, S2NSA, S2SL0_2, S2DS), [63:52]
  0x0000_000f, 0xfff0_0000,
  // dwords 4-7: Secure stage 2, MPAM, VMS, Realm, overlays
  0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff,
];

/** STE.Config encodings (§5.2). 0b001-0b011 are reserved and behave as 0b000. */
export const STE_CFG_ABORT = 0b000;
export const STE_CFG_BYPASS = 0b100;
export const STE_CFG_S1_TRANS = 0b101;
export const STE_CFG_S2_TRANS = 0b110;
export const STE_CFG_NESTED = 0b111;

/** STE.S1Fmt: linear CD table, or 2-level with 4KB (64 CDs) or 64KB (1024 CDs) leaf tables. */
export const S1FMT_LINEAR = 0;
export const S1FMT_64K_L2 = 2;
export const S1FMT_4K_L2 = 1;

/** STE.S1DSS: behaviour of traffic without a SubstreamID when substreams are enabled. */
export const S1DSS_TERMINATE = 0;
export const S1DSS_BYPASS = 1;
export const S1DSS_SSID0 = 2;

/** STE.STRW (stage-1-only streams of the Non-secure stream table). */
export const STRW_NSEL1 = 0b00;
export const STRW_EL2 = 0b10;

/** STE.S2TG encodings (same as TCR.TG0). */
export const S2TG_4K = 0;
export const S2TG_64K = 1;
export const S2TG_16K = 2;

/** STE.PRIVCFG / INSTCFG override encodings (0b01 is reserved and behaves as 0b00). */
export const PRIVCFG_INCOMING = 0;
export const PRIVCFG_UNPRIV = 2;
export const PRIVCFG_PRIV = 3;
export const INSTCFG_INCOMING = 0;
export const INSTCFG_DATA = 2;
export const INSTCFG_INSTR = 3;

// ---- Level-1 Stream Table Descriptor (§5.1)
export const L1STD_BYTES = 8;
export const L1STD_SPAN = field('Span', 0, 4, 0);
export const L1STD_L2PTR = addrField('L2Ptr', 0, 55, 6);
export const L1STD_FIELDS: readonly Field[] = [L1STD_SPAN, L1STD_L2PTR];

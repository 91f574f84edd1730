/**
 * SMMUv3 command queue entries (16 bytes, 2 dwords), IHI 0070 chapter 4: opcodes (§4.1.1) and
 * field positions. Most command layout figures are lost in the text source the team read; the
 * positions here are the ones the Linux, QEMU and FreeBSD drivers agree on (see
 * ../shared/reference/seed-spec.md §8.5), and the range/TTL fields are from §4.4.1.1.
 * Also the CMDQ_CONS.ERR codes (§7.1).
 */

import { addrField, bitField, type Field, field } from '../fields.ts';

export const CMD_BYTES = 16;
export const CMD_DWORDS = 2;

export const CMD_PREFETCH_CONFIG = 0x01;
export const CMD_PREFETCH_ADDR = 0x02;
export const CMD_CFGI_STE = 0x03;
/** CFGI_STE_RANGE; with Range = 31 it is CMD_CFGI_ALL (same opcode, §4.3.6). */
export const CMD_CFGI_STE_RANGE = 0x04;
export const CMD_CFGI_ALL = 0x04;
export const CMD_CFGI_CD = 0x05;
export const CMD_CFGI_CD_ALL = 0x06;
export const CMD_CFGI_VMS_PIDM = 0x07;
export const CMD_TLBI_NH_ALL = 0x10;
export const CMD_TLBI_NH_ASID = 0x11;
export const CMD_TLBI_NH_VA = 0x12;
export const CMD_TLBI_NH_VAA = 0x13;
export const CMD_TLBI_EL3_ALL = 0x18;
export const CMD_TLBI_EL3_VA = 0x1a;
export const CMD_TLBI_EL2_ALL = 0x20;
export const CMD_TLBI_EL2_ASID = 0x21;
export const CMD_TLBI_EL2_VA = 0x22;
export const CMD_TLBI_EL2_VAA = 0x23;
export const CMD_TLBI_S12_VMALL = 0x28;
export const CMD_TLBI_S2_IPA = 0x2a;
export const CMD_TLBI_NSNH_ALL = 0x30;
export const CMD_ATC_INV = 0x40;
export const CMD_PRI_RESP = 0x41;
export const CMD_RESUME = 0x44;
export const CMD_STALL_TERM = 0x45;
export const CMD_SYNC = 0x46;

/** Opcode → spec name, for traces and error messages. */
export const CMD_NAMES: Readonly<Record<number, string>> = {
  [CMD_PREFETCH_CONFIG]: 'CMD_PREFETCH_CONFIG',
  [CMD_PREFETCH_ADDR]: 'CMD_PREFETCH_ADDR',
  [CMD_CFGI_STE]: 'CMD_CFGI_STE',
  [CMD_CFGI_STE_RANGE]: 'CMD_CFGI_STE_RANGE',
  [CMD_CFGI_CD]: 'CMD_CFGI_CD',
  [CMD_CFGI_CD_ALL]: 'CMD_CFGI_CD_ALL',
  [CMD_CFGI_VMS_PIDM]: 'CMD_CFGI_VMS_PIDM',
  [CMD_TLBI_NH_ALL]: 'CMD_TLBI_NH_ALL',
  [CMD_TLBI_NH_ASID]: 'CMD_TLBI_NH_ASID',
  [CMD_TLBI_NH_VA]: 'CMD_TLBI_NH_VA',
  [CMD_TLBI_NH_VAA]: 'CMD_TLBI_NH_VAA',
  [CMD_TLBI_EL3_ALL]: 'CMD_TLBI_EL3_ALL',
  [CMD_TLBI_EL3_VA]: 'CMD_TLBI_EL3_VA',
  [CMD_TLBI_EL2_ALL]: 'CMD_TLBI_EL2_ALL',
  [CMD_TLBI_EL2_ASID]: 'CMD_TLBI_EL2_ASID',
  [CMD_TLBI_EL2_VA]: 'CMD_TLBI_EL2_VA',
  [CMD_TLBI_EL2_VAA]: 'CMD_TLBI_EL2_VAA',
  [CMD_TLBI_S12_VMALL]: 'CMD_TLBI_S12_VMALL',
  [CMD_TLBI_S2_IPA]: 'CMD_TLBI_S2_IPA',
  [CMD_TLBI_NSNH_ALL]: 'CMD_TLBI_NSNH_ALL',
  [CMD_ATC_INV]: 'CMD_ATC_INV',
  [CMD_PRI_RESP]: 'CMD_PRI_RESP',
  [CMD_RESUME]: 'CMD_RESUME',
  [CMD_STALL_TERM]: 'CMD_STALL_TERM',
  [CMD_SYNC]: 'CMD_SYNC',
};

export function commandName(op: number): string {
  return CMD_NAMES[op] ?? `reserved opcode 0x${op.toString(16).padStart(2, '0')}`;
}

// ---- common fields
export const CMD_0_OP = field('Opcode', 0, 7, 0);
export const CMD_0_SSEC = bitField('SSec', 0, 10);
export const CMD_0_SSV = bitField('SSV', 0, 11);
export const CMD_0_SSID = field('SubstreamID', 0, 31, 12);
export const CMD_0_SID = field('StreamID', 0, 63, 32);
export const CMD_1_LEAF = bitField('Leaf', 1, 0);
export const CMD_1_RANGE = field('Range', 1, 4, 0);

// ---- TLBI fields
export const CMD_0_VMID = field('VMID', 0, 47, 32);
export const CMD_0_ASID = field('ASID', 0, 63, 48);
/** Range invalidation (IDR3.RIL): NUM, SCALE (5 bits without LPA2), TTL, TG (§4.4.1.1). */
export const CMD_0_NUM = field('NUM', 0, 16, 12);
export const CMD_0_SCALE = field('SCALE', 0, 24, 20);
export const CMD_1_TTL = field('TTL', 1, 9, 8);
export const CMD_1_TG = field('TG', 1, 11, 10);
/** TLBI_NH_VA / VAA / EL2_VA: VA bits [63:12]. Decode as words, not as a number (TTB1 VAs exceed 2^53). */
export const CMD_1_VA = addrField('Address', 1, 63, 12);
/** TLBI_S2_IPA: IPA bits [51:12] (bits [55:52] RES0 below SMMUv3.4). */
export const CMD_1_IPA = addrField('Address', 1, 51, 12);

// ---- CMD_SYNC fields (§4.7.3)
export const CMD_0_CS = field('CS', 0, 13, 12);
export const CMD_0_MSH = field('MSH', 0, 23, 22);
export const CMD_0_MSIATTR = field('MSIAttr', 0, 27, 24);
export const CMD_0_MSIDATA = field('MSIData', 0, 63, 32);
/** MSIAddr bits [51:2] (in place). */
export const CMD_1_MSIADDR = addrField('MSIAddr', 1, 51, 2);

export const CMD_SYNC_CS_NONE = 0;
export const CMD_SYNC_CS_IRQ = 1;
export const CMD_SYNC_CS_SEV = 2;

// ---- PREFETCH_ADDR / ATC_INV / PRI_RESP / RESUME fields (decoded for traces and legality only)
export const CMD_1_PREFETCH_SIZE = field('Size', 1, 4, 0);
export const CMD_1_PREFETCH_ADDR = addrField('Address', 1, 63, 12);
export const CMD_0_ATC_GLOBAL = bitField('Global', 0, 9);
export const CMD_1_ATC_SIZE = field('Size', 1, 5, 0);
export const CMD_1_PRI_RESP = field('Resp', 1, 13, 12);
export const CMD_0_RESUME_AC = bitField('Ac', 0, 12);
export const CMD_0_RESUME_AB = bitField('Ab', 0, 13);
export const CMD_1_RESUME_STAG = field('STAG', 1, 15, 0);

/** The fields each command's layout uses, for decode in traces and for the layout tests. */
export const CMD_LAYOUTS: Readonly<Record<number, readonly Field[]>> = {
  [CMD_PREFETCH_CONFIG]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SSV, CMD_0_SSID, CMD_0_SID],
  [CMD_PREFETCH_ADDR]: [
    CMD_0_OP,
    CMD_0_SSEC,
    CMD_0_SSV,
    CMD_0_SSID,
    CMD_0_SID,
    CMD_1_PREFETCH_SIZE,
    CMD_1_PREFETCH_ADDR,
  ],
  [CMD_CFGI_STE]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SID, CMD_1_LEAF],
  [CMD_CFGI_STE_RANGE]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SID, CMD_1_RANGE],
  [CMD_CFGI_CD]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SSID, CMD_0_SID, CMD_1_LEAF],
  [CMD_CFGI_CD_ALL]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SID],
  [CMD_TLBI_NH_ALL]: [CMD_0_OP, CMD_0_VMID],
  [CMD_TLBI_NH_ASID]: [CMD_0_OP, CMD_0_VMID, CMD_0_ASID],
  [CMD_TLBI_NH_VA]: [
    CMD_0_OP,
    CMD_0_NUM,
    CMD_0_SCALE,
    CMD_0_VMID,
    CMD_0_ASID,
    CMD_1_LEAF,
    CMD_1_TTL,
    CMD_1_TG,
    CMD_1_VA,
  ],
  [CMD_TLBI_NH_VAA]: [
    CMD_0_OP,
    CMD_0_NUM,
    CMD_0_SCALE,
    CMD_0_VMID,
    CMD_1_LEAF,
    CMD_1_TTL,
    CMD_1_TG,
    CMD_1_VA,
  ],
  [CMD_TLBI_EL2_ALL]: [CMD_0_OP],
  [CMD_TLBI_EL2_ASID]: [CMD_0_OP, CMD_0_ASID],
  [CMD_TLBI_EL2_VA]: [
    CMD_0_OP,
    CMD_0_NUM,
    CMD_0_SCALE,
    CMD_0_ASID,
    CMD_1_LEAF,
    CMD_1_TTL,
    CMD_1_TG,
    CMD_1_VA,
  ],
  [CMD_TLBI_EL2_VAA]: [CMD_0_OP, CMD_0_NUM, CMD_0_SCALE, CMD_1_LEAF, CMD_1_TTL, CMD_1_TG, CMD_1_VA],
  [CMD_TLBI_S12_VMALL]: [CMD_0_OP, CMD_0_VMID],
  [CMD_TLBI_S2_IPA]: [
    CMD_0_OP,
    CMD_0_NUM,
    CMD_0_SCALE,
    CMD_0_VMID,
    CMD_1_LEAF,
    CMD_1_TTL,
    CMD_1_TG,
    CMD_1_IPA,
  ],
  [CMD_TLBI_NSNH_ALL]: [CMD_0_OP],
  [CMD_ATC_INV]: [
    CMD_0_OP,
    CMD_0_ATC_GLOBAL,
    CMD_0_SSV,
    CMD_0_SSID,
    CMD_0_SID,
    CMD_1_ATC_SIZE,
    CMD_1_PREFETCH_ADDR,
  ],
  [CMD_PRI_RESP]: [CMD_0_OP, CMD_0_SSV, CMD_0_SSID, CMD_0_SID, CMD_1_PRI_RESP],
  [CMD_RESUME]: [CMD_0_OP, CMD_0_SSEC, CMD_0_RESUME_AC, CMD_0_RESUME_AB, CMD_0_SID, CMD_1_RESUME_STAG],
  [CMD_STALL_TERM]: [CMD_0_OP, CMD_0_SSEC, CMD_0_SID],
  [CMD_SYNC]: [CMD_0_OP, CMD_0_CS, CMD_0_MSH, CMD_0_MSIATTR, CMD_0_MSIDATA, CMD_1_MSIADDR],
};

/** CMDQ_CONS.ERR codes (§7.1). */
export const CERROR_NONE = 0;
export const CERROR_ILL = 1;
export const CERROR_ABT = 2;
export const CERROR_ATC_INV_SYNC = 3;
export const CERROR_NAMES: readonly string[] = [
  'CERROR_NONE',
  'CERROR_ILL',
  'CERROR_ABT',
  'CERROR_ATC_INV_SYNC',
];

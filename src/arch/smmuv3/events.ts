/**
 * SMMUv3 event records (32 bytes, 4 dwords), IHI 0070 §7.3: event numbers (§7.3.2-§7.3.20), the
 * common record layout, and CLASS / fault-field encodings. Field positions are those of the spec's
 * record figures as transcribed by the Linux driver (EVTQ_*); IPA and FetchAddr are kept as
 * address fields in place (IPA[55:12] at record bits [247:204], FetchAddr[55:3] at [247:195]).
 */

import { addrField, bitField, type Field, field } from '../fields.ts';

export const EVT_BYTES = 32;
export const EVT_DWORDS = 4;

export const F_UUT = 0x01;
export const C_BAD_STREAMID = 0x02;
export const F_STE_FETCH = 0x03;
export const C_BAD_STE = 0x04;
export const F_BAD_ATS_TREQ = 0x05;
export const F_STREAM_DISABLED = 0x06;
export const F_TRANSL_FORBIDDEN = 0x07;
export const C_BAD_SUBSTREAMID = 0x08;
export const F_CD_FETCH = 0x09;
export const C_BAD_CD = 0x0a;
export const F_WALK_EABT = 0x0b;
export const F_TRANSLATION = 0x10;
export const F_ADDR_SIZE = 0x11;
export const F_ACCESS = 0x12;
export const F_PERMISSION = 0x13;
export const F_TLB_CONFLICT = 0x20;
export const F_CFG_CONFLICT = 0x21;
export const E_PAGE_REQUEST = 0x24;
export const F_VMS_FETCH = 0x25;

/** Event number → spec name (QEMU keeps a stringify table of the same kind for its traces). */
export const EVENT_NAMES: Readonly<Record<number, string>> = {
  [F_UUT]: 'F_UUT',
  [C_BAD_STREAMID]: 'C_BAD_STREAMID',
  [F_STE_FETCH]: 'F_STE_FETCH',
  [C_BAD_STE]: 'C_BAD_STE',
  [F_BAD_ATS_TREQ]: 'F_BAD_ATS_TREQ',
  [F_STREAM_DISABLED]: 'F_STREAM_DISABLED',
  [F_TRANSL_FORBIDDEN]: 'F_TRANSL_FORBIDDEN',
  [C_BAD_SUBSTREAMID]: 'C_BAD_SUBSTREAMID',
  [F_CD_FETCH]: 'F_CD_FETCH',
  [C_BAD_CD]: 'C_BAD_CD',
  [F_WALK_EABT]: 'F_WALK_EABT',
  [F_TRANSLATION]: 'F_TRANSLATION',
  [F_ADDR_SIZE]: 'F_ADDR_SIZE',
  [F_ACCESS]: 'F_ACCESS',
  [F_PERMISSION]: 'F_PERMISSION',
  [F_TLB_CONFLICT]: 'F_TLB_CONFLICT',
  [F_CFG_CONFLICT]: 'F_CFG_CONFLICT',
  [E_PAGE_REQUEST]: 'E_PAGE_REQUEST',
  [F_VMS_FETCH]: 'F_VMS_FETCH',
};

export function eventName(id: number): string {
  return EVENT_NAMES[id] ?? `event 0x${id.toString(16).padStart(2, '0')}`;
}

/** Spec name → event number. */
export const EVENT_IDS: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(EVENT_NAMES).map(([id, name]) => [name, Number(id)]),
);

// ---- record fields
export const EVT_0_ID = field('EventNumber', 0, 7, 0);
export const EVT_0_SSV = bitField('SSV', 0, 11);
export const EVT_0_SSID = field('SubstreamID', 0, 31, 12);
export const EVT_0_SID = field('StreamID', 0, 63, 32);
export const EVT_1_STAG = field('STAG', 1, 15, 0);
/** IMPLEMENTATION DEFINED reason code of fetch and abort events (vsva writes 0). */
export const EVT_1_REASON = field('Reason', 1, 15, 0);
export const EVT_1_STALL = bitField('Stall', 1, 31);
export const EVT_1_PNU = bitField('PnU', 1, 33);
export const EVT_1_IND = bitField('InD', 1, 34);
export const EVT_1_RNW = bitField('RnW', 1, 35);
export const EVT_1_S2 = bitField('S2', 1, 39);
export const EVT_1_CLASS = field('CLASS', 1, 41, 40);
export const EVT_1_TTRNW = bitField('TTRnW', 1, 44);
export const EVT_2_INPUTADDR = addrField('InputAddr', 2, 63, 0);
/** IPA bits [55:12] (in place). */
export const EVT_3_IPA = addrField('IPA', 3, 55, 12);
/** FetchAddr bits [55:3] (in place). */
export const EVT_3_FETCHADDR = addrField('FetchAddr', 3, 55, 3);

/** CLASS encodings: stage-2 fault while fetching a CD, walking stage-1 tables, or on the input address. */
export const EVT_CLASS_CD = 0b00;
export const EVT_CLASS_TT = 0b01;
export const EVT_CLASS_IN = 0b10;
export const EVT_CLASS_NAMES: readonly string[] = ['CD', 'TT', 'IN', 'reserved'];

/** The fields present in each record kind (others are RES0), for decode, printing and layout tests. */
const TRANSLATION_FAULT_FIELDS: readonly Field[] = [
  EVT_0_ID,
  EVT_0_SSV,
  EVT_0_SSID,
  EVT_0_SID,
  EVT_1_STAG,
  EVT_1_STALL,
  EVT_1_PNU,
  EVT_1_IND,
  EVT_1_RNW,
  EVT_1_S2,
  EVT_1_CLASS,
  EVT_2_INPUTADDR,
  EVT_3_IPA,
];

export const EVT_LAYOUTS: Readonly<Record<number, readonly Field[]>> = {
  [C_BAD_STREAMID]: [EVT_0_ID, EVT_0_SSV, EVT_0_SSID, EVT_0_SID],
  [F_STE_FETCH]: [EVT_0_ID, EVT_0_SSV, EVT_0_SSID, EVT_0_SID, EVT_1_REASON, EVT_3_FETCHADDR],
  [C_BAD_STE]: [EVT_0_ID, EVT_0_SSV, EVT_0_SSID, EVT_0_SID],
  [F_STREAM_DISABLED]: [EVT_0_ID, EVT_0_SID],
  [C_BAD_SUBSTREAMID]: [EVT_0_ID, EVT_0_SSID, EVT_0_SID],
  [F_CD_FETCH]: [EVT_0_ID, EVT_0_SSV, EVT_0_SSID, EVT_0_SID, EVT_1_REASON, EVT_3_FETCHADDR],
  [C_BAD_CD]: [EVT_0_ID, EVT_0_SSV, EVT_0_SSID, EVT_0_SID],
  [F_WALK_EABT]: [
    EVT_0_ID,
    EVT_0_SSV,
    EVT_0_SSID,
    EVT_0_SID,
    EVT_1_REASON,
    EVT_1_PNU,
    EVT_1_IND,
    EVT_1_RNW,
    EVT_1_S2,
    EVT_1_CLASS,
    EVT_2_INPUTADDR,
    EVT_3_FETCHADDR,
  ],
  [F_TRANSLATION]: TRANSLATION_FAULT_FIELDS,
  [F_ADDR_SIZE]: TRANSLATION_FAULT_FIELDS,
  [F_ACCESS]: TRANSLATION_FAULT_FIELDS,
  [F_PERMISSION]: [...TRANSLATION_FAULT_FIELDS, EVT_1_TTRNW],
};

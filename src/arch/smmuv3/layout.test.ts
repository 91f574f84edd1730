/**
 * Size and field-position tests for the SMMUv3 in-memory structures: each field's absolute bit
 * range is written out again here from IHI 0070 (§5.2 STE, §5.4 CD, §5.1/§5.3 L1 descriptors,
 * §4 commands, §7.3 event records), independently of the field tables under test.
 */
import { describe, expect, it } from 'vitest';
import { checkTable, type Field, fieldWordMask } from '../fields.ts';
import { CD_BYTES, CD_DWORDS, CD_FIELDS, CD_RES0_MASKS, L1CD_FIELDS, L1CD_RES0_MASKS } from './cd.ts';
import { CMD_BYTES, CMD_DWORDS, CMD_LAYOUTS, CMD_SYNC, CMD_TLBI_NH_VA } from './commands.ts';
import {
  C_BAD_CD,
  C_BAD_STE,
  C_BAD_STREAMID,
  C_BAD_SUBSTREAMID,
  EVENT_IDS,
  EVT_BYTES,
  EVT_DWORDS,
  EVT_LAYOUTS,
  F_CD_FETCH,
  F_PERMISSION,
  F_STE_FETCH,
  F_STREAM_DISABLED,
  F_TRANSLATION,
  F_WALK_EABT,
} from './events.ts';
import { smmuRegisterName } from './registers.ts';
import { L1STD_FIELDS, STE_BYTES, STE_DWORDS, STE_FIELDS, STE_RES0_MASKS } from './ste.ts';

/** [name, absolute high bit, absolute low bit] */
type Pos = [string, number, number];

function positions(table: readonly Field[]): Pos[] {
  return table.map((f) => [f.name, f.dword * 64 + f.hi, f.dword * 64 + f.lo]);
}

function noOverlapWithRes0(table: readonly Field[], res0: readonly number[]): string[] {
  const bad: string[] = [];
  for (const f of table) {
    for (const half of [0, 1] as const) {
      const w = f.dword * 2 + half;
      if ((fieldWordMask(f, half) & (res0[w] ?? 0)) !== 0) bad.push(`${f.name} overlaps RES0 word ${w}`);
    }
  }
  return bad;
}

describe('STE layout (§5.2)', () => {
  it('is 64 bytes in 8 dwords', () => {
    expect(STE_BYTES).toBe(64);
    expect(STE_DWORDS * 8).toBe(STE_BYTES);
    expect(STE_RES0_MASKS).toHaveLength(16);
  });

  it('places every field where the spec does', () => {
    const expected: Pos[] = [
      ['V', 0, 0],
      ['Config', 3, 1],
      ['S1Fmt', 5, 4],
      ['S1ContextPtr', 55, 6],
      ['S1CDMax', 63, 59],
      ['S1DSS', 65, 64],
      ['S1CIR', 67, 66],
      ['S1COR', 69, 68],
      ['S1CSH', 71, 70],
      ['CONT', 80, 77],
      ['MEV', 83, 83],
      ['SW_RESERVED', 87, 84],
      ['S2FWB', 89, 89],
      ['S1STALLD', 91, 91],
      ['EATS', 93, 92],
      ['STRW', 95, 94],
      ['MemAttr', 99, 96],
      ['MTCFG', 100, 100],
      ['ALLOCCFG', 104, 101],
      ['SHCFG', 109, 108],
      ['NSCFG', 111, 110],
      ['PRIVCFG', 113, 112],
      ['INSTCFG', 115, 114],
      ['IMPLEMENTATION_DEFINED', 127, 116],
      ['S2VMID', 143, 128],
      ['IMPLEMENTATION_DEFINED', 159, 144],
      ['S2T0SZ', 165, 160],
      ['S2SL0', 167, 166],
      ['S2IR0', 169, 168],
      ['S2OR0', 171, 170],
      ['S2SH0', 173, 172],
      ['S2TG', 175, 174],
      ['S2PS', 178, 176],
      ['S2AA64', 179, 179],
      ['S2ENDI', 180, 180],
      ['S2AFFD', 181, 181],
      ['S2PTW', 182, 182],
      ['S2HD', 183, 183],
      ['S2HA', 184, 184],
      ['S2S', 185, 185],
      ['S2R', 186, 186],
      ['S2TTB', 243, 196],
    ];
    expect(positions(STE_FIELDS)).toEqual(expected);
    expect(checkTable(STE_FIELDS, STE_DWORDS)).toEqual([]);
    expect(noOverlapWithRes0(STE_FIELDS, STE_RES0_MASKS)).toEqual([]);
  });

  it('L1STD: Span [4:0], L2Ptr [55:6] in 8 bytes (§5.1)', () => {
    expect(positions(L1STD_FIELDS)).toEqual([
      ['Span', 4, 0],
      ['L2Ptr', 55, 6],
    ]);
  });
});

describe('CD layout (§5.4)', () => {
  it('is 64 bytes in 8 dwords', () => {
    expect(CD_BYTES).toBe(64);
    expect(CD_DWORDS * 8).toBe(CD_BYTES);
  });

  it('places every field where the spec does', () => {
    const expected: Pos[] = [
      ['T0SZ', 5, 0],
      ['TG0', 7, 6],
      ['IR0', 9, 8],
      ['OR0', 11, 10],
      ['SH0', 13, 12],
      ['EPD0', 14, 14],
      ['ENDI', 15, 15],
      ['T1SZ', 21, 16],
      ['TG1', 23, 22],
      ['IR1', 25, 24],
      ['OR1', 27, 26],
      ['SH1', 29, 28],
      ['EPD1', 30, 30],
      ['V', 31, 31],
      ['IPS', 34, 32],
      ['AFFD', 35, 35],
      ['WXN', 36, 36],
      ['UWXN', 37, 37],
      ['TBI0', 38, 38],
      ['TBI1', 39, 39],
      ['PAN', 40, 40],
      ['AA64', 41, 41],
      ['HD', 42, 42],
      ['HA', 43, 43],
      ['S', 44, 44],
      ['R', 45, 45],
      ['A', 46, 46],
      ['ASET', 47, 47],
      ['ASID', 63, 48],
      ['HAD0', 65, 65],
      ['TTB0', 115, 68],
      ['HAD1', 129, 129],
      ['TTB1', 179, 132],
      ['MAIR', 255, 192],
      ['AMAIR', 319, 256],
      ['IMPLEMENTATION_DEFINED', 351, 320],
    ];
    expect(positions(CD_FIELDS)).toEqual(expected);
    expect(checkTable(CD_FIELDS, CD_DWORDS)).toEqual([]);
    expect(noOverlapWithRes0(CD_FIELDS, CD_RES0_MASKS)).toEqual([]);
  });

  it('L1CD: V [0], L2Ptr [55:12] (§5.3)', () => {
    expect(positions(L1CD_FIELDS)).toEqual([
      ['V', 0, 0],
      ['L2Ptr', 55, 12],
    ]);
    expect(noOverlapWithRes0(L1CD_FIELDS, L1CD_RES0_MASKS)).toEqual([]);
  });
});

describe('command layout (§4)', () => {
  it('is 16 bytes in 2 dwords and every layout is consistent', () => {
    expect(CMD_BYTES).toBe(16);
    expect(CMD_DWORDS * 8).toBe(CMD_BYTES);
    for (const [op, layout] of Object.entries(CMD_LAYOUTS)) {
      expect(checkTable(layout, CMD_DWORDS), `opcode ${op}`).toEqual([]);
      expect(layout[0]!.name).toBe('Opcode');
      expect(positions([layout[0]!])).toEqual([['Opcode', 7, 0]]);
    }
  });

  it('TLBI_NH_VA and CMD_SYNC fields', () => {
    expect(positions(CMD_LAYOUTS[CMD_TLBI_NH_VA]!)).toEqual([
      ['Opcode', 7, 0],
      ['NUM', 16, 12],
      ['SCALE', 24, 20],
      ['VMID', 47, 32],
      ['ASID', 63, 48],
      ['Leaf', 64, 64],
      ['TTL', 73, 72],
      ['TG', 75, 74],
      ['Address', 127, 76],
    ]);
    expect(positions(CMD_LAYOUTS[CMD_SYNC]!)).toEqual([
      ['Opcode', 7, 0],
      ['CS', 13, 12],
      ['MSH', 23, 22],
      ['MSIAttr', 27, 24],
      ['MSIData', 63, 32],
      ['MSIAddr', 115, 66],
    ]);
  });
});

describe('event record layout (§7.3)', () => {
  it('is 32 bytes in 4 dwords; every layout is consistent', () => {
    expect(EVT_BYTES).toBe(32);
    expect(EVT_DWORDS * 8).toBe(EVT_BYTES);
    for (const [id, layout] of Object.entries(EVT_LAYOUTS))
      expect(checkTable(layout, EVT_DWORDS), `event ${id}`).toEqual([]);
  });

  it('translation faults: the common fields at their record positions', () => {
    expect(positions(EVT_LAYOUTS[F_TRANSLATION]!)).toEqual([
      ['EventNumber', 7, 0],
      ['SSV', 11, 11],
      ['SubstreamID', 31, 12],
      ['StreamID', 63, 32],
      ['STAG', 79, 64],
      ['Stall', 95, 95],
      ['PnU', 97, 97],
      ['InD', 98, 98],
      ['RnW', 99, 99],
      ['S2', 103, 103],
      ['CLASS', 105, 104],
      ['InputAddr', 191, 128],
      ['IPA', 247, 204],
    ]);
    expect(positions(EVT_LAYOUTS[F_PERMISSION]!).at(-1)).toEqual(['TTRnW', 108, 108]);
  });

  it('fetch events carry FetchAddr[55:3]; config errors carry only the IDs', () => {
    for (const id of [F_STE_FETCH, F_CD_FETCH, F_WALK_EABT]) {
      expect(positions(EVT_LAYOUTS[id]!).at(-1)).toEqual(['FetchAddr', 247, 195]);
    }
    for (const id of [C_BAD_STREAMID, C_BAD_STE, C_BAD_CD]) {
      expect(positions(EVT_LAYOUTS[id]!).map((p) => p[0])).toEqual([
        'EventNumber',
        'SSV',
        'SubstreamID',
        'StreamID',
      ]);
    }
    expect(positions(EVT_LAYOUTS[C_BAD_SUBSTREAMID]!).map((p) => p[0])).toEqual([
      'EventNumber',
      'SubstreamID',
      'StreamID',
    ]);
    expect(positions(EVT_LAYOUTS[F_STREAM_DISABLED]!).map((p) => p[0])).toEqual(['EventNumber', 'StreamID']);
  });

  it('event numbers are the spec values', () => {
    expect(EVENT_IDS).toMatchObject({
      F_UUT: 0x01,
      C_BAD_STREAMID: 0x02,
      F_STE_FETCH: 0x03,
      C_BAD_STE: 0x04,
      F_BAD_ATS_TREQ: 0x05,
      F_STREAM_DISABLED: 0x06,
      F_TRANSL_FORBIDDEN: 0x07,
      C_BAD_SUBSTREAMID: 0x08,
      F_CD_FETCH: 0x09,
      C_BAD_CD: 0x0a,
      F_WALK_EABT: 0x0b,
      F_TRANSLATION: 0x10,
      F_ADDR_SIZE: 0x11,
      F_ACCESS: 0x12,
      F_PERMISSION: 0x13,
      F_TLB_CONFLICT: 0x20,
      F_CFG_CONFLICT: 0x21,
      E_PAGE_REQUEST: 0x24,
    });
  });
});

describe('smmuRegisterName', () => {
  it('accepts a register with or without SMMU_, in any case, and nothing else', () => {
    expect(smmuRegisterName('cr0')).toBe('SMMU_CR0');
    expect(smmuRegisterName('SMMU_STRTAB_BASE_CFG')).toBe('SMMU_STRTAB_BASE_CFG');
    expect(smmuRegisterName('Eventq_Prod')).toBe('SMMU_EVENTQ_PROD');
    expect(smmuRegisterName('CR9')).toBeUndefined();
    expect(smmuRegisterName(' CR0')).toBeUndefined();
  });
});

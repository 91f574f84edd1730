/**
 * The SMMUv3 programming interface, Non-secure Page 0 and Page 1 (IHI 0070 §6.2 register map,
 * §6.3 register descriptions), as a declarative table: offset, width, access, the enable that
 * guards writes, and fields. The device model (src/hw/smmuv3/registers.ts) dispatches MMIO through
 * this table; the CLI's `inspect` and the tests print and check from it.
 *
 * Decision (CONSTRAINED UNPREDICTABLE, §6.2): the Page 0 offsets 0xA8/0xAC alias EVENTQ_PROD /
 * EVENTQ_CONS of Page 1, as QEMU's model does and as ../shared/reference/seed-spec.md §8.5 lists
 * them; the architected location is Page 1 (0x100A8 / 0x100AC).
 */

export interface RegField {
  readonly name: string;
  readonly lsb: number;
  readonly width: number;
}

export type RegAccess = 'RO' | 'RW';

/** Which CR0 / IRQ_CTRL enable (when set in both the control and ACK registers) makes writes ignored. */
export type RegGuard = 'SMMUEN' | 'CMDQEN' | 'EVENTQEN' | 'GBPA_UPDATE' | 'GERROR_IRQEN' | 'EVENTQ_IRQEN';

export interface RegDef {
  readonly name: string;
  readonly offset: number;
  readonly width: 32 | 64;
  readonly access: RegAccess;
  readonly guard?: RegGuard;
  readonly fields: readonly RegField[];
}

const f = (name: string, lsb: number, width = 1): RegField => ({ name, lsb, width });

export const SMMU_IDR0 = 0x000;
export const SMMU_IDR1 = 0x004;
export const SMMU_IDR2 = 0x008;
export const SMMU_IDR3 = 0x00c;
export const SMMU_IDR4 = 0x010;
export const SMMU_IDR5 = 0x014;
export const SMMU_IIDR = 0x018;
export const SMMU_AIDR = 0x01c;
export const SMMU_CR0 = 0x020;
export const SMMU_CR0ACK = 0x024;
export const SMMU_CR1 = 0x028;
export const SMMU_CR2 = 0x02c;
export const SMMU_STATUSR = 0x040;
export const SMMU_GBPA = 0x044;
export const SMMU_AGBPA = 0x048;
export const SMMU_IRQ_CTRL = 0x050;
export const SMMU_IRQ_CTRLACK = 0x054;
export const SMMU_GERROR = 0x060;
export const SMMU_GERRORN = 0x064;
export const SMMU_GERROR_IRQ_CFG0 = 0x068;
export const SMMU_GERROR_IRQ_CFG1 = 0x070;
export const SMMU_GERROR_IRQ_CFG2 = 0x074;
export const SMMU_STRTAB_BASE = 0x080;
export const SMMU_STRTAB_BASE_CFG = 0x088;
export const SMMU_CMDQ_BASE = 0x090;
export const SMMU_CMDQ_PROD = 0x098;
export const SMMU_CMDQ_CONS = 0x09c;
export const SMMU_EVENTQ_BASE = 0x0a0;
export const SMMU_EVENTQ_IRQ_CFG0 = 0x0b0;
export const SMMU_EVENTQ_IRQ_CFG1 = 0x0b8;
export const SMMU_EVENTQ_IRQ_CFG2 = 0x0bc;
/** Page 1. */
export const SMMU_EVENTQ_PROD = 0x100a8;
export const SMMU_EVENTQ_CONS = 0x100ac;
/** Page 0 aliases of the Page 1 event queue indexes (see the decision above). */
export const SMMU_EVENTQ_PROD_ALIAS = 0x0a8;
export const SMMU_EVENTQ_CONS_ALIAS = 0x0ac;
/** Size of the register frame: Page 0 and Page 1, 64 KiB each. */
export const SMMU_REG_FRAME_BYTES = 0x20000;

// ---- field tables
export const IDR0_FIELDS = [
  f('S2P', 0),
  f('S1P', 1),
  f('TTF', 2, 2),
  f('COHACC', 4),
  f('BTM', 5),
  f('HTTU', 6, 2),
  f('DORMHINT', 8),
  f('Hyp', 9),
  f('ATS', 10),
  f('NS1ATS', 11),
  f('ASID16', 12),
  f('MSI', 13),
  f('SEV', 14),
  f('ATOS', 15),
  f('PRI', 16),
  f('VMW', 17),
  f('VMID16', 18),
  f('CD2L', 19),
  f('VATOS', 20),
  f('TTENDIAN', 21, 2),
  f('ATSRECERR', 23),
  f('STALL_MODEL', 24, 2),
  f('TERM_MODEL', 26),
  f('ST_LEVEL', 27, 2),
] as const;

export const IDR1_FIELDS = [
  f('SIDSIZE', 0, 6),
  f('SSIDSIZE', 6, 5),
  f('PRIQS', 11, 5),
  f('EVENTQS', 16, 5),
  f('CMDQS', 21, 5),
  f('ATTR_PERMS_OVR', 26),
  f('ATTR_TYPES_OVR', 27),
  f('REL', 28),
  f('QUEUES_PRESET', 29),
  f('TABLES_PRESET', 30),
  f('ECMDQ', 31),
] as const;

export const IDR3_FIELDS = [
  f('HAD', 2),
  f('PBHA', 3),
  f('XNX', 4),
  f('PPS', 5),
  f('MPAM', 7),
  f('FWB', 8),
  f('STT', 9),
  f('RIL', 10),
  f('BBML', 11, 2),
  f('E0PD', 13),
  f('PTWNNC', 14),
] as const;

export const IDR5_FIELDS = [
  f('OAS', 0, 3),
  f('GRAN4K', 4),
  f('GRAN16K', 5),
  f('GRAN64K', 6),
  f('DS', 7),
  f('D128', 8),
  f('VAX', 10, 2),
  f('STALL_MAX', 16, 16),
] as const;

export const IIDR_FIELDS = [
  f('Implementer', 0, 12),
  f('Revision', 12, 4),
  f('Variant', 16, 4),
  f('ProductID', 20, 12),
];
export const AIDR_FIELDS = [f('ArchMinorRev', 0, 4), f('ArchMajorRev', 4, 4)];

export const CR0_SMMUEN = 1 << 0;
export const CR0_PRIQEN = 1 << 1;
export const CR0_EVENTQEN = 1 << 2;
export const CR0_CMDQEN = 1 << 3;
export const CR0_ATSCHK = 1 << 4;
export const CR0_FIELDS = [
  f('SMMUEN', 0),
  f('PRIQEN', 1),
  f('EVENTQEN', 2),
  f('CMDQEN', 3),
  f('ATSCHK', 4),
  f('VMW', 6, 3),
];
export const CR1_FIELDS = [
  f('QUEUE_IC', 0, 2),
  f('QUEUE_OC', 2, 2),
  f('QUEUE_SH', 4, 2),
  f('TABLE_IC', 6, 2),
  f('TABLE_OC', 8, 2),
  f('TABLE_SH', 10, 2),
];
export const CR2_E2H = 1 << 0;
export const CR2_RECINVSID = 1 << 1;
export const CR2_PTM = 1 << 2;
export const CR2_FIELDS = [f('E2H', 0), f('RECINVSID', 1), f('PTM', 2)];

export const GBPA_UPDATE = 0x8000_0000;
export const GBPA_ABORT = 1 << 20;
export const GBPA_FIELDS = [
  f('MemAttr', 0, 4),
  f('MTCFG', 4),
  f('ALLOCCFG', 8, 4),
  f('SHCFG', 12, 2),
  f('PRIVCFG', 16, 2),
  f('INSTCFG', 18, 2),
  f('ABORT', 20),
  f('Update', 31),
];

export const IRQ_CTRL_GERROR_IRQEN = 1 << 0;
export const IRQ_CTRL_PRIQ_IRQEN = 1 << 1;
export const IRQ_CTRL_EVENTQ_IRQEN = 1 << 2;
export const IRQ_CTRL_FIELDS = [f('GERROR_IRQEN', 0), f('PRIQ_IRQEN', 1), f('EVENTQ_IRQEN', 2)];

export const GERROR_CMDQ_ERR = 1 << 0;
export const GERROR_EVENTQ_ABT_ERR = 1 << 2;
export const GERROR_PRIQ_ABT_ERR = 1 << 3;
export const GERROR_MSI_CMDQ_ABT_ERR = 1 << 4;
export const GERROR_MSI_EVENTQ_ABT_ERR = 1 << 5;
export const GERROR_MSI_PRIQ_ABT_ERR = 1 << 6;
export const GERROR_MSI_GERROR_ABT_ERR = 1 << 7;
export const GERROR_SFM_ERR = 1 << 8;
export const GERROR_FIELDS = [
  f('CMDQ_ERR', 0),
  f('EVENTQ_ABT_ERR', 2),
  f('PRIQ_ABT_ERR', 3),
  f('MSI_CMDQ_ABT_ERR', 4),
  f('MSI_EVENTQ_ABT_ERR', 5),
  f('MSI_PRIQ_ABT_ERR', 6),
  f('MSI_GERROR_ABT_ERR', 7),
  f('SFM_ERR', 8),
];

export const IRQ_CFG0_FIELDS = [f('ADDR', 2, 50)];
export const IRQ_CFG1_FIELDS = [f('DATA', 0, 32)];
export const IRQ_CFG2_FIELDS = [f('MemAttr', 0, 4), f('SH', 4, 2)];

export const STRTAB_BASE_RA = 62;
export const STRTAB_BASE_FIELDS = [f('ADDR', 6, 46), f('RA', 62)];
export const STRTAB_BASE_CFG_FIELDS = [f('LOG2SIZE', 0, 6), f('SPLIT', 6, 5), f('FMT', 16, 2)];
export const STRTAB_FMT_LINEAR = 0;
export const STRTAB_FMT_2LVL = 1;

export const Q_BASE_FIELDS = [f('LOG2SIZE', 0, 5), f('ADDR', 5, 47), f('RA_WA', 62)];
export const CMDQ_PROD_FIELDS = [f('WR', 0, 20)];
export const CMDQ_CONS_FIELDS = [f('RD', 0, 20), f('ERR', 24, 7)];
export const EVENTQ_PROD_FIELDS = [f('WR', 0, 20), f('OVFLG', 31)];
export const EVENTQ_CONS_FIELDS = [f('RD', 0, 20), f('OVACKFLG', 31)];
export const Q_OVFLG = 0x8000_0000;

/** The Non-secure register map vsva implements, in offset order. */
export const SMMU_REGISTERS: readonly RegDef[] = [
  { name: 'SMMU_IDR0', offset: SMMU_IDR0, width: 32, access: 'RO', fields: IDR0_FIELDS },
  { name: 'SMMU_IDR1', offset: SMMU_IDR1, width: 32, access: 'RO', fields: IDR1_FIELDS },
  { name: 'SMMU_IDR2', offset: SMMU_IDR2, width: 32, access: 'RO', fields: [f('BA_VATOS', 0, 10)] },
  { name: 'SMMU_IDR3', offset: SMMU_IDR3, width: 32, access: 'RO', fields: IDR3_FIELDS },
  { name: 'SMMU_IDR4', offset: SMMU_IDR4, width: 32, access: 'RO', fields: [] },
  { name: 'SMMU_IDR5', offset: SMMU_IDR5, width: 32, access: 'RO', fields: IDR5_FIELDS },
  { name: 'SMMU_IIDR', offset: SMMU_IIDR, width: 32, access: 'RO', fields: IIDR_FIELDS },
  { name: 'SMMU_AIDR', offset: SMMU_AIDR, width: 32, access: 'RO', fields: AIDR_FIELDS },
  { name: 'SMMU_CR0', offset: SMMU_CR0, width: 32, access: 'RW', fields: CR0_FIELDS },
  { name: 'SMMU_CR0ACK', offset: SMMU_CR0ACK, width: 32, access: 'RO', fields: CR0_FIELDS },
  // CR1 is guarded per field: TABLE_* by SMMUEN, QUEUE_* by CMDQEN/EVENTQEN (§6.3.11).
  { name: 'SMMU_CR1', offset: SMMU_CR1, width: 32, access: 'RW', fields: CR1_FIELDS },
  { name: 'SMMU_CR2', offset: SMMU_CR2, width: 32, access: 'RW', guard: 'SMMUEN', fields: CR2_FIELDS },
  { name: 'SMMU_STATUSR', offset: SMMU_STATUSR, width: 32, access: 'RO', fields: [f('DORMANT', 0)] },
  {
    name: 'SMMU_GBPA',
    offset: SMMU_GBPA,
    width: 32,
    access: 'RW',
    guard: 'GBPA_UPDATE',
    fields: GBPA_FIELDS,
  },
  { name: 'SMMU_AGBPA', offset: SMMU_AGBPA, width: 32, access: 'RW', fields: [] },
  { name: 'SMMU_IRQ_CTRL', offset: SMMU_IRQ_CTRL, width: 32, access: 'RW', fields: IRQ_CTRL_FIELDS },
  { name: 'SMMU_IRQ_CTRLACK', offset: SMMU_IRQ_CTRLACK, width: 32, access: 'RO', fields: IRQ_CTRL_FIELDS },
  { name: 'SMMU_GERROR', offset: SMMU_GERROR, width: 32, access: 'RO', fields: GERROR_FIELDS },
  { name: 'SMMU_GERRORN', offset: SMMU_GERRORN, width: 32, access: 'RW', fields: GERROR_FIELDS },
  {
    name: 'SMMU_GERROR_IRQ_CFG0',
    offset: SMMU_GERROR_IRQ_CFG0,
    width: 64,
    access: 'RW',
    guard: 'GERROR_IRQEN',
    fields: IRQ_CFG0_FIELDS,
  },
  {
    name: 'SMMU_GERROR_IRQ_CFG1',
    offset: SMMU_GERROR_IRQ_CFG1,
    width: 32,
    access: 'RW',
    guard: 'GERROR_IRQEN',
    fields: IRQ_CFG1_FIELDS,
  },
  {
    name: 'SMMU_GERROR_IRQ_CFG2',
    offset: SMMU_GERROR_IRQ_CFG2,
    width: 32,
    access: 'RW',
    guard: 'GERROR_IRQEN',
    fields: IRQ_CFG2_FIELDS,
  },
  {
    name: 'SMMU_STRTAB_BASE',
    offset: SMMU_STRTAB_BASE,
    width: 64,
    access: 'RW',
    guard: 'SMMUEN',
    fields: STRTAB_BASE_FIELDS,
  },
  {
    name: 'SMMU_STRTAB_BASE_CFG',
    offset: SMMU_STRTAB_BASE_CFG,
    width: 32,
    access: 'RW',
    guard: 'SMMUEN',
    fields: STRTAB_BASE_CFG_FIELDS,
  },
  {
    name: 'SMMU_CMDQ_BASE',
    offset: SMMU_CMDQ_BASE,
    width: 64,
    access: 'RW',
    guard: 'CMDQEN',
    fields: Q_BASE_FIELDS,
  },
  { name: 'SMMU_CMDQ_PROD', offset: SMMU_CMDQ_PROD, width: 32, access: 'RW', fields: CMDQ_PROD_FIELDS },
  {
    name: 'SMMU_CMDQ_CONS',
    offset: SMMU_CMDQ_CONS,
    width: 32,
    access: 'RW',
    guard: 'CMDQEN',
    fields: CMDQ_CONS_FIELDS,
  },
  {
    name: 'SMMU_EVENTQ_BASE',
    offset: SMMU_EVENTQ_BASE,
    width: 64,
    access: 'RW',
    guard: 'EVENTQEN',
    fields: Q_BASE_FIELDS,
  },
  {
    name: 'SMMU_EVENTQ_IRQ_CFG0',
    offset: SMMU_EVENTQ_IRQ_CFG0,
    width: 64,
    access: 'RW',
    guard: 'EVENTQ_IRQEN',
    fields: IRQ_CFG0_FIELDS,
  },
  {
    name: 'SMMU_EVENTQ_IRQ_CFG1',
    offset: SMMU_EVENTQ_IRQ_CFG1,
    width: 32,
    access: 'RW',
    guard: 'EVENTQ_IRQEN',
    fields: IRQ_CFG1_FIELDS,
  },
  {
    name: 'SMMU_EVENTQ_IRQ_CFG2',
    offset: SMMU_EVENTQ_IRQ_CFG2,
    width: 32,
    access: 'RW',
    guard: 'EVENTQ_IRQEN',
    fields: IRQ_CFG2_FIELDS,
  },
  {
    name: 'SMMU_EVENTQ_PROD',
    offset: SMMU_EVENTQ_PROD,
    width: 32,
    access: 'RW',
    guard: 'EVENTQEN',
    fields: EVENTQ_PROD_FIELDS,
  },
  { name: 'SMMU_EVENTQ_CONS', offset: SMMU_EVENTQ_CONS, width: 32, access: 'RW', fields: EVENTQ_CONS_FIELDS },
];

/** Register definition by offset (64-bit registers by their base offset). */
export const SMMU_REGISTER_BY_OFFSET: ReadonlyMap<number, RegDef> = new Map(
  SMMU_REGISTERS.map((r) => [r.offset, r]),
);

/** Register definition by name. */
export const SMMU_REGISTER_BY_NAME: ReadonlyMap<string, RegDef> = new Map(
  SMMU_REGISTERS.map((r) => [r.name, r]),
);

/** The register's full name (SMMU_CR0) from its name with or without the SMMU_ prefix, in any case. */
export function smmuRegisterName(name: string): string | undefined {
  const up = name.toUpperCase();
  const full = up.startsWith('SMMU_') ? up : `SMMU_${up}`;
  return SMMU_REGISTER_BY_NAME.has(full) ? full : undefined;
}

/** Value of a register field. */
export function regField(value: number, fd: RegField): number {
  if (fd.width >= 32) return value >>> 0;
  return (value >>> fd.lsb) & ((1 << fd.width) - 1);
}

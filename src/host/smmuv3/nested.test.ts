/**
 * The nested-stage series on the driver (seed-spec §1.3, §1.4): a NESTED domain whose stage 2
 * maps a guest RAM window, a guest CD table and stage-1 tables written into that window, and
 * attach_pasid_table switching the STE between TRANSLATE (0b111), BYPASS (0b110) and ABORT
 * (0b000) break-before-make, with DMA through both stages checked against the model. Then every
 * errno path of attach_pasid_table, cache_invalidate and bind_guest_msi with the STE and the
 * driver's state unchanged, the invalidations' effect on stale entries, and the as-posted mode.
 */
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import {
  CMD_0_ASID,
  CMD_0_OP,
  CMD_0_SID,
  CMD_0_SSID,
  CMD_0_VMID,
  CMD_CFGI_STE,
} from '../../arch/smmuv3/commands.ts';
import {
  STE_0_CFG,
  STE_0_S1CDMAX,
  STE_0_S1CTXPTR,
  STE_0_S1FMT,
  STE_0_V,
  STE_1_S1CIR,
  STE_1_S1COR,
  STE_1_S1CSH,
  STE_1_S1DSS,
  STE_1_STRW,
  STE_2_S2AA64,
  STE_2_S2IR0,
  STE_2_S2OR0,
  STE_2_S2PS,
  STE_2_S2PTW,
  STE_2_S2R,
  STE_2_S2SH0,
  STE_2_S2SL0,
  STE_2_S2T0SZ,
  STE_2_S2TG,
  STE_2_S2VMID,
  STE_3_S2TTB,
  STE_CFG_ABORT,
  STE_CFG_NESTED,
  STE_CFG_S2_TRANS,
} from '../../arch/smmuv3/ste.ts';
import { ACCESS_READ, ACCESS_WRITE } from '../../arch/vmsa.ts';
import type { SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { CdTable } from '../../hw/smmuv3/rig.ts';
import { TXN_ABORT, TXN_OK } from '../../hw/smmuv3/smmu.ts';
import { encodeCd } from '../../hw/smmuv3/structures.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import { EINVAL, ENOENT, EPERM } from '../../uapi/errno.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_FAULT_REASON_BAD_PASID_ENTRY,
  IOMMU_FAULT_REASON_PASID_INVALID,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  type IommuCacheInvalidateInfo,
  type IommuCacheInvalidateInfoInput,
  type IommuPasidTableConfig,
  iommu_cache_invalidate_info,
  iommu_pasid_table_config,
} from '../../uapi/iommu.ts';
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
} from '../iommu/types.ts';
import type { ArmSmmuV3Domain } from './domain.ts';
import type { ArmSmmuV3Options } from './driver.ts';
import { type Bench, bench, device, dma, type Guest, guestWindow, paOf } from './harness.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SID = 0x20;
/** Guest RAM: IPA [IPA_BASE, +16M) backed by host PA [PA_BASE, +16M) (outside the driver's pool). */
const IPA_BASE = 0x8000_0000;
const PA_BASE = 0x6000_0000;
const GUEST_SIZE = 0x100_0000;
const VA = 0x1000_0000;

interface Nested extends Bench {
  readonly d: ArmSmmuV3Domain;
  readonly g: Guest;
}

/** A NESTED domain attached to SID 0x20, its stage 2 mapping the guest window in 2M blocks. */
function nested(o: { features?: Partial<SmmuFeatures>; opts?: ArmSmmuV3Options } = {}): Nested {
  const b = bench(o);
  expect(b.probeResult).toBe(0);
  const dev = device('vf', [SID], 20);
  expect(b.drv.probeDevice(dev)).toBe(0);
  const d = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED) as ArmSmmuV3Domain;
  expect(b.drv.enableNesting(d)).toBe(0);
  expect(b.drv.attachDev(d, dev)).toBe(0);
  for (let off = 0; off < GUEST_SIZE; off += SZ_2M) {
    expect(b.drv.map(d, IPA_BASE + off, PA_BASE + off, SZ_2M, RW)).toBe(0);
  }
  return { ...b, d, g: guestWindow(b.mem, IPA_BASE, PA_BASE, GUEST_SIZE) };
}

/** The host PA behind a guest IPA. */
const hpa = (ipa: number): number => ipa - IPA_BASE + PA_BASE;

/** A guest stage-1 table (IPA output) mapping VA → a fresh guest page; returns both. */
function guestSpace(g: Guest): { table: PageTable; page: number } {
  const r = PageTable.create(g.alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
  if (!r.ok) throw new Error(r.detail);
  const page = g.alloc.alloc(SZ_4K)!;
  expect(r.table.map(VA, page, SZ_4K, { read: true, write: true, user: true }).ok).toBe(true);
  return { table: r.table, page };
}

/** The guest's CD table with CD `index` pointing at `table` under `asid`. */
function guestCds(
  g: Guest,
  fmt: number,
  cdMax: number,
  index: number,
  table: PageTable,
  asid: number,
): CdTable {
  const cds = new CdTable(g.view, g.alloc, fmt, cdMax);
  cds.write(index, { t0sz: 16, granule0: 12, ttb0: table.root, ipsBits: 48, asid });
  return cds;
}

interface CfgInput {
  basePtr?: bigint | number;
  pasidBits?: number;
  config?: number;
  format?: number;
  version?: number;
  smmuVersion?: number;
  s1fmt?: number;
  s1dss?: number;
}

/** An iommu_pasid_table_config as the kernel copies it from user space. */
function cfg(c: CfgInput): IommuPasidTableConfig {
  return iommu_pasid_table_config.decode(
    iommu_pasid_table_config.encode({
      argsz: 32,
      version: c.version ?? 1,
      base_ptr: c.basePtr ?? 0,
      format: c.format ?? 1,
      pasid_bits: c.pasidBits ?? 0,
      config: c.config ?? IOMMU_PASID_CONFIG_TRANSLATE,
      vendor_data: { smmuv3: { version: c.smmuVersion ?? 1, s1fmt: c.s1fmt ?? 0, s1dss: c.s1dss ?? 0 } },
    }),
  );
}

function inv(i: IommuCacheInvalidateInfoInput): IommuCacheInvalidateInfo {
  return iommu_cache_invalidate_info.decode(
    iommu_cache_invalidate_info.encode({ argsz: 56, version: 1, ...i }),
  );
}

const ste = (b: Bench): Uint32Array => b.drv.steWords(SID)!;

function s2Fields(w: Uint32Array): Record<string, number> {
  return Object.fromEntries(
    [
      STE_2_S2VMID,
      STE_2_S2T0SZ,
      STE_2_S2SL0,
      STE_2_S2IR0,
      STE_2_S2OR0,
      STE_2_S2SH0,
      STE_2_S2TG,
      STE_2_S2PS,
      STE_2_S2AA64,
      STE_2_S2PTW,
      STE_2_S2R,
      STE_3_S2TTB,
    ].map((f) => [f.name, getField(w, f)]),
  );
}

/** Everything a refused call must leave as it was. */
function snapshot(n: Nested) {
  return {
    ste: [...ste(n)],
    s1: { ...n.d.s1Cfg },
    abort: n.d.abort,
    cmds: { ...n.drv.cmdqStats!.byCommand },
    hwCommands: n.hw.stats.commands,
  };
}

describe('NESTED domain and stage 2', () => {
  it('attaches with Config 0b110 and the stage-2 fields of its table; DMA goes IPA → PA', () => {
    const n = nested();
    const w = ste(n);
    expect([getField(w, STE_0_V), getField(w, STE_0_CFG)]).toEqual([1, STE_CFG_S2_TRANS]);
    expect(s2Fields(w)).toEqual({
      S2VMID: 1,
      S2T0SZ: 16,
      S2SL0: n.d.pgtable!.sl0,
      S2IR0: 1,
      S2OR0: 1,
      S2SH0: 3,
      S2TG: 0,
      S2PS: 5,
      S2AA64: 1,
      S2PTW: 1,
      S2R: 1,
      S2TTB: n.d.pgtable!.root,
    });
    expect([w[0]! & ~0xf, w[1], w[2], w[3]]).toEqual([0, 0, 0, 0]);
    expect(paOf(n.hw.transact(dma(SID, IPA_BASE + 0x1234, ACCESS_READ)))).toBe(PA_BASE + 0x1234);
  });

  it('enableNesting: 0 before attach, -EPERM once bound, -EINVAL for identity or foreign domains', () => {
    const n = nested();
    expect(n.drv.enableNesting(n.d)).toBe(-EPERM);
    expect(n.drv.enableNesting(n.drv.domainAlloc(IOMMU_DOMAIN_IDENTITY)!)).toBe(-EINVAL);
    const other = bench({ name: 'smmu1' });
    expect(n.drv.enableNesting(other.drv.domainAlloc(IOMMU_DOMAIN_DMA)!)).toBe(-EINVAL);
  });

  it('finalise of a NESTED domain fails with -EINVAL on a stage-1-only SMMU, changing nothing', () => {
    const b = bench({ features: { stage2: false, hyp: false } });
    const dev = device('vf', [SID]);
    b.drv.probeDevice(dev);
    const before = [...b.drv.steWords(SID)!];
    const d = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED) as ArmSmmuV3Domain;
    expect(b.drv.enableNesting(d)).toBe(0);
    expect(b.drv.attachDev(d, dev)).toBe(-EINVAL);
    expect(d.smmu).toBeUndefined();
    expect(b.drv.domainOf(dev)).toBeUndefined();
    expect([...b.drv.steWords(SID)!]).toEqual(before);
  });
});

describe('attach_pasid_table (full PASID support)', () => {
  it('TRANSLATE installs Config 0b111 with the guest CD table; a PASID DMA walks both stages', () => {
    const n = nested();
    const { table, page } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 4, 3, table, 5);
    const s2Before = s2Fields(ste(n));
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4, s1fmt: 0, s1dss: 1 }))).toBe(0);
    const w = ste(n);
    expect({
      V: getField(w, STE_0_V),
      Config: getField(w, STE_0_CFG),
      S1ContextPtr: getField(w, STE_0_S1CTXPTR),
      S1CDMax: getField(w, STE_0_S1CDMAX),
      S1Fmt: getField(w, STE_0_S1FMT),
      S1DSS: getField(w, STE_1_S1DSS),
      S1CIR: getField(w, STE_1_S1CIR),
      S1COR: getField(w, STE_1_S1COR),
      S1CSH: getField(w, STE_1_S1CSH),
      STRW: getField(w, STE_1_STRW),
    }).toEqual({
      V: 1,
      Config: STE_CFG_NESTED,
      S1ContextPtr: cds.ptr,
      S1CDMax: 4,
      S1Fmt: 0,
      S1DSS: 1,
      S1CIR: 1,
      S1COR: 1,
      S1CSH: 3,
      STRW: 0,
    });
    expect(s2Fields(w)).toEqual(s2Before);
    const r = n.hw.transact(dma(SID, VA + 0x18, ACCESS_WRITE, 3));
    expect(r.status).toBe(TXN_OK);
    expect(paOf(r)).toBe(hpa(page) + 0x18);
    // S1DSS = bypass: traffic without a PASID skips stage 1.
    expect(paOf(n.hw.transact(dma(SID, IPA_BASE + 0x40, ACCESS_READ)))).toBe(PA_BASE + 0x40);
    expect(n.core.faults).toEqual([]);
  });

  it('a 2-level guest CD table (S1Fmt 4K leaves, 8 PASID bits) translates PASID 100', () => {
    const n = nested();
    const { table, page } = guestSpace(n.g);
    const cds = guestCds(n.g, 1, 8, 100, table, 9);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 8, s1fmt: 1, s1dss: 0 }))).toBe(0);
    expect([getField(ste(n), STE_0_S1FMT), getField(ste(n), STE_0_S1CDMAX)]).toEqual([1, 8]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 100)))).toBe(hpa(page));
    // S1DSS = terminate: traffic without a PASID is refused.
    expect(n.hw.transact(dma(SID, VA, ACCESS_READ)).status).toBe(TXN_ABORT);
  });

  it('BYPASS gives 0b110, ABORT 0b000, detach 0b110, with DMA behaving accordingly', () => {
    const n = nested();
    const { table } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 0, 0, table, 5);
    const s2 = s2Fields(ste(n));
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr }))).toBe(0);
    expect(getField(ste(n), STE_0_CFG)).toBe(STE_CFG_NESTED);
    expect(n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_BYPASS }))).toBe(0);
    expect(getField(ste(n), STE_0_CFG)).toBe(STE_CFG_S2_TRANS);
    expect(s2Fields(ste(n))).toEqual(s2);
    expect(paOf(n.hw.transact(dma(SID, IPA_BASE + 0x2000, ACCESS_READ)))).toBe(PA_BASE + 0x2000);
    expect(n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_ABORT }))).toBe(0);
    expect([getField(ste(n), STE_0_V), getField(ste(n), STE_0_CFG)]).toEqual([1, STE_CFG_ABORT]);
    const r = n.hw.transact(dma(SID, IPA_BASE + 0x2000, ACCESS_READ));
    expect([r.status, r.event]).toEqual([TXN_ABORT, null]);
    n.drv.detachPasidTable(n.d);
    expect(getField(ste(n), STE_0_CFG)).toBe(STE_CFG_S2_TRANS);
    expect(s2Fields(ste(n))).toEqual(s2);
    expect(paOf(n.hw.transact(dma(SID, IPA_BASE + 0x2000, ACCESS_READ)))).toBe(PA_BASE + 0x2000);
  });

  it('TRANSLATE → TRANSLATE is refused with the STE unchanged; TRANSLATE → BYPASS → TRANSLATE works', () => {
    const n = nested();
    const { table, page } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 4, 1, table, 5);
    const c = cfg({ basePtr: cds.ptr, pasidBits: 4 });
    expect(n.drv.attachPasidTable(n.d, c)).toBe(0);
    const before = snapshot(n);
    expect(n.drv.attachPasidTable(n.d, c)).toBe(-EINVAL);
    expect(snapshot(n)).toEqual(before);
    expect(n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_BYPASS }))).toBe(0);
    expect(n.drv.attachPasidTable(n.d, c)).toBe(0);
    expect(getField(ste(n), STE_0_CFG)).toBe(STE_CFG_NESTED);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 1)))).toBe(hpa(page));
  });

  it('installs break-before-make: the abort word is written and invalidated before the final STE', () => {
    const n = nested();
    const { table } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 0, 0, table, 5);
    const old = ste(n);
    const atCfgi: Uint32Array[] = [];
    n.hw.hooks.command = (_o, w) => {
      if (getField(w, CMD_0_OP) === CMD_CFGI_STE && getField(w, CMD_0_SID) === SID) atCfgi.push(ste(n));
    };
    const cfgiBefore = n.drv.cmdqStats!.byCommand.CMD_CFGI_STE ?? 0;
    const syncBefore = n.drv.cmdqStats!.syncs;
    const breaks = n.drv.stats.steBreaks;
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr }))).toBe(0);
    expect(atCfgi).toHaveLength(2);
    // First CFGI: only dword 0 changed, to V | Config ABORT.
    expect([atCfgi[0]![0], atCfgi[0]![1]]).toEqual([1, 0]);
    expect([...atCfgi[0]!.subarray(2)]).toEqual([...old.subarray(2)]);
    // Second CFGI: the final nested STE.
    expect(getField(atCfgi[1]!, STE_0_CFG)).toBe(STE_CFG_NESTED);
    expect([...atCfgi[1]!]).toEqual([...ste(n)]);
    expect(n.drv.cmdqStats!.byCommand.CMD_CFGI_STE).toBe(cfgiBefore + 2);
    expect(n.drv.cmdqStats!.syncs).toBe(syncBefore + 2);
    expect(n.drv.stats.steBreaks).toBe(breaks + 1);
    // Rewriting the same configuration changes nothing and issues nothing.
    expect(n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_ABORT }))).toBe(0);
    const cmds = n.hw.stats.commands;
    expect(n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_ABORT }))).toBe(0);
    expect(n.hw.stats.commands).toBe(cmds);
  });

  it('pasid_bits = 0 ignores s1fmt/s1dss (even reserved values) and writes S1Fmt = S1DSS = 0', () => {
    const n = nested();
    const { table, page } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 0, 0, table, 5);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, s1fmt: 3, s1dss: 3 }))).toBe(0);
    expect([
      getField(ste(n), STE_0_S1FMT),
      getField(ste(n), STE_1_S1DSS),
      getField(ste(n), STE_0_S1CDMAX),
    ]).toEqual([0, 0, 0]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ)))).toBe(hpa(page));
  });

  it('keeps base_ptr bits [51:6] only (the kernel does not validate it)', () => {
    const n = nested();
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: 0xfff0_0000_8000_007fn }))).toBe(0);
    expect(getField(ste(n), STE_0_S1CTXPTR)).toBe(0x8000_0040);
  });

  const REFUSED: [string, CfgInput][] = [
    ['format != SMMUV3', { format: 2 }],
    ['version != 1', { version: 2 }],
    ['vendor_data.smmuv3.version != 1', { smmuVersion: 0 }],
    ['config 0', { config: 0 }],
    ['config 4', { config: 4 }],
    ['pasid_bits > SSIDSIZE', { pasidBits: 21 }],
    ['reserved s1fmt', { pasidBits: 4, s1fmt: 3 }],
    ['s1fmt beyond 2 bits', { pasidBits: 4, s1fmt: 4 }],
    ['reserved s1dss', { pasidBits: 4, s1dss: 3 }],
  ];
  it.each(REFUSED)('%s → -EINVAL, nothing changed', (_what, c) => {
    const n = nested();
    const before = snapshot(n);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: IPA_BASE, ...c }))).toBe(-EINVAL);
    expect(snapshot(n)).toEqual(before);
  });

  it('a 2-level s1fmt without IDR0.CD2L → -EINVAL; pasid_bits above a small SSIDSIZE → -EINVAL', () => {
    const n = nested({ features: { twoLevelCdTable: false, ssidBits: 5 } });
    const before = snapshot(n);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: IPA_BASE, pasidBits: 4, s1fmt: 1 }))).toBe(-EINVAL);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: IPA_BASE, pasidBits: 4, s1fmt: 2 }))).toBe(-EINVAL);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: IPA_BASE, pasidBits: 6 }))).toBe(-EINVAL);
    expect(snapshot(n)).toEqual(before);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: IPA_BASE, pasidBits: 5 }))).toBe(0);
  });

  it('a domain not bound to an SMMU, or not NESTED, → -EINVAL', () => {
    const b = bench();
    const unbound = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED) as ArmSmmuV3Domain;
    b.drv.enableNesting(unbound);
    expect(b.drv.attachPasidTable(unbound, cfg({ basePtr: IPA_BASE }))).toBe(-EINVAL);
    expect(unbound.s1Cfg.set).toBe(false);
    const dev = device('d', [1]);
    b.drv.probeDevice(dev);
    const s1 = b.drv.domainAlloc(IOMMU_DOMAIN_DMA) as ArmSmmuV3Domain;
    b.drv.attachDev(s1, dev);
    const before = [...b.drv.steWords(1)!];
    const s1cfg = { ...s1.s1Cfg };
    expect(b.drv.attachPasidTable(s1, cfg({ config: IOMMU_PASID_CONFIG_ABORT }))).toBe(-EINVAL);
    b.drv.detachPasidTable(s1);
    expect([...b.drv.steWords(1)!]).toEqual(before);
    expect(s1.s1Cfg).toEqual(s1cfg);
    expect(s1.abort).toBe(false);
  });
});

describe('attach_pasid_table as posted (asPostedSingleCd)', () => {
  it('one CD only: S1CDMax 0, S1Fmt 0, S1DSS = SSID0, s1fmt/s1dss ignored; pasid_bits != 0 → -EINVAL', () => {
    const n = nested({ opts: { asPostedSingleCd: true } });
    const { table, page } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 0, 0, table, 5);
    const before = snapshot(n);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4 }))).toBe(-EINVAL);
    expect(snapshot(n)).toEqual(before);
    expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, s1fmt: 1, s1dss: 1 }))).toBe(0);
    const w = ste(n);
    expect([
      getField(w, STE_0_CFG),
      getField(w, STE_0_S1CTXPTR),
      getField(w, STE_0_S1CDMAX),
      getField(w, STE_0_S1FMT),
      getField(w, STE_1_S1DSS),
    ]).toEqual([STE_CFG_NESTED, cds.ptr, 0, 0, 2]);
    expect(paOf(n.hw.transact(dma(SID, VA + 4, ACCESS_READ)))).toBe(hpa(page) + 4);
  });
});

/** A translating nested setup with a cached guest entry: VA → page under ASID 5 at PASID 3. */
function cachedGuest(o: { features?: Partial<SmmuFeatures>; opts?: ArmSmmuV3Options } = {}) {
  const n = nested(o);
  const { table, page } = guestSpace(n.g);
  const cds = guestCds(n.g, 0, 4, 3, table, 5);
  expect(n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4 }))).toBe(0);
  expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(page));
  // The guest remaps VA to another page without invalidating: the SMMU still uses the old one.
  const other = n.g.alloc.alloc(SZ_4K)!;
  expect(table.unmap(VA, SZ_4K)).toBe(SZ_4K);
  expect(table.map(VA, other, SZ_4K, { read: true, write: true, user: true }).ok).toBe(true);
  expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(page));
  return { n, table, cds, page, other };
}

function opsOf(b: Bench, run: () => number): { rc: number; ops: Uint32Array[] } {
  const ops: Uint32Array[] = [];
  b.hw.hooks.command = (_o, w) => ops.push(Uint32Array.from(w));
  const rc = run();
  delete b.hw.hooks.command;
  return { rc, ops };
}

const names = (ops: Uint32Array[]): number[] => ops.map((w) => getField(w, CMD_0_OP));

describe('cache_invalidate', () => {
  it('PASID granularity with ARCHID: TLBI_NH_ASID(archid, VMID) + SYNC drops the stale entry', () => {
    const { n, other } = cachedGuest();
    const { rc, ops } = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        n.d.masters.values().next().value!.dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_PASID,
          granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_ARCHID, archid: 5 } },
        }),
      ),
    );
    expect(rc).toBe(0);
    expect(names(ops)).toEqual([0x11, 0x46]);
    expect([getField(ops[0]!, CMD_0_ASID), getField(ops[0]!, CMD_0_VMID)]).toEqual([5, n.d.s2Cfg.vmid]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(other));
  });

  it.each([
    ['with RIL', {}],
    ['without RIL', { rangeInvalidation: false }],
  ])('ADDR granularity %s: TLBI_NH_VA over the range drops the stale entry', (_w, features) => {
    const { n, other } = cachedGuest({ features });
    const dev = [...n.d.masters][0]!.dev;
    const { rc, ops } = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_ADDR,
          granu: {
            addr_info: {
              flags: IOMMU_INV_ADDR_FLAGS_ARCHID | IOMMU_INV_ADDR_FLAGS_LEAF,
              archid: 5,
              addr: VA,
              granule_size: SZ_4K,
              nb_granules: 1,
            },
          },
        }),
      ),
    );
    expect(rc).toBe(0);
    expect(names(ops)).toEqual([0x12, 0x46]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(other));
  });

  it('ADDR without RIL: an unsupported granule is walked in the smallest page size', () => {
    const { n } = cachedGuest({ features: { rangeInvalidation: false } });
    const dev = [...n.d.masters][0]!.dev;
    const { ops } = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_ADDR,
          granu: {
            addr_info: {
              flags: IOMMU_INV_ADDR_FLAGS_ARCHID,
              archid: 5,
              addr: VA,
              granule_size: 0x2000,
              nb_granules: 2,
            },
          },
        }),
      ),
    );
    expect(names(ops)).toEqual([0x12, 0x12, 0x12, 0x12, 0x46]);
    expect(ops.slice(0, 4).map((w) => w[2]! & 0xffff_f000)).toEqual([
      VA,
      VA + 0x1000,
      VA + 0x2000,
      VA + 0x3000,
    ]);
  });

  it('DOMAIN granularity (and ADDR without ARCHID) is TLBI_NSNH_ALL; option nh-all gives TLBI_NH_ALL(VMID)', () => {
    const { n, other } = cachedGuest();
    const dev = [...n.d.masters][0]!.dev;
    const domainInv = inv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN });
    const a = opsOf(n, () => n.drv.cacheInvalidate(n.d, dev, domainInv));
    expect([a.rc, ...names(a.ops)]).toEqual([0, 0x30, 0x46]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(other));
    const noArchid = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_ADDR,
          granu: { addr_info: { flags: 0, addr: VA, granule_size: SZ_4K, nb_granules: 1 } },
        }),
      ),
    );
    expect(names(noArchid.ops)).toEqual([0x30, 0x46]);
    const m = cachedGuest({ opts: { domainInvalidation: 'nh-all' } });
    const b = opsOf(m.n, () => m.n.drv.cacheInvalidate(m.n.d, dev, domainInv));
    expect(names(b.ops)).toEqual([0x10, 0x46]);
    expect(getField(b.ops[0]!, CMD_0_VMID)).toBe(m.n.d.s2Cfg.vmid);
    expect(paOf(m.n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(m.other));
  });

  it('full-PASID mode: cache type PASID invalidates the guest CD (CFGI_CD / CFGI_CD_ALL per StreamID)', () => {
    const { n, cds } = cachedGuest();
    const dev = [...n.d.masters][0]!.dev;
    // The guest points PASID 3 at a new address space under a new ASID, without telling the SMMU.
    const second = guestSpace(n.g);
    cds.write(3, encodeCd({ t0sz: 16, granule0: 12, ttb0: second.table.root, ipsBits: 48, asid: 6 }));
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).not.toBe(hpa(second.page));
    const { rc, ops } = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_PASID,
          granularity: IOMMU_INV_GRANU_PASID,
          granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, pasid: 3 } },
        }),
      ),
    );
    expect(rc).toBe(0);
    expect(names(ops)).toEqual([0x05, 0x46]);
    expect([getField(ops[0]!, CMD_0_SID), getField(ops[0]!, CMD_0_SSID)]).toEqual([SID, 3]);
    expect(paOf(n.hw.transact(dma(SID, VA, ACCESS_READ, 3)))).toBe(hpa(second.page));
    for (const granu of [
      { granularity: IOMMU_INV_GRANU_DOMAIN },
      { granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: 0 } } },
    ]) {
      const all = opsOf(n, () =>
        n.drv.cacheInvalidate(n.d, dev, inv({ cache: IOMMU_CACHE_INV_TYPE_PASID, ...granu })),
      );
      expect(names(all.ops)).toEqual([0x06, 0x46]);
    }
    // Both caches at once: configuration first, then the TLB.
    const both = opsOf(n, () =>
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({
          cache: IOMMU_CACHE_INV_TYPE_PASID | IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_DOMAIN,
        }),
      ),
    );
    expect(names(both.ops)).toEqual([0x06, 0x30, 0x46]);
  });

  const REFUSED: [string, IommuCacheInvalidateInfoInput, number][] = [
    ['version 2', { version: 2, cache: IOMMU_CACHE_INV_TYPE_IOTLB }, -EINVAL],
    ['DEV_IOTLB', { cache: IOMMU_CACHE_INV_TYPE_IOTLB | IOMMU_CACHE_INV_TYPE_DEV_IOTLB }, -ENOENT],
    ['no cache type', { cache: 0 }, -EINVAL],
    [
      'PASID granularity with the PASID flag',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: {
          pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID | IOMMU_INV_PASID_FLAGS_ARCHID, archid: 5 },
        },
      },
      -ENOENT,
    ],
    [
      'PASID granularity without ARCHID',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: { pasid_info: { flags: 0 } },
      },
      -EINVAL,
    ],
    [
      'ADDR granularity with the PASID flag',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: {
          addr_info: { flags: IOMMU_INV_ADDR_FLAGS_PASID | IOMMU_INV_ADDR_FLAGS_ARCHID, granule_size: SZ_4K },
        },
      },
      -ENOENT,
    ],
    [
      'ADDR granule not a power of two',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: { addr_info: { flags: IOMMU_INV_ADDR_FLAGS_ARCHID, granule_size: 0x3000, nb_granules: 1 } },
      },
      -EINVAL,
    ],
    [
      'ADDR granule 0',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: { addr_info: { flags: IOMMU_INV_ADDR_FLAGS_ARCHID, granule_size: 0, nb_granules: 1 } },
      },
      -EINVAL,
    ],
    ['unknown granularity', { cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: 3 }, -EINVAL],
    [
      'ARCHID wider than the ASID',
      {
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_ARCHID, archid: 0x1_0000 } },
      },
      -EINVAL,
    ],
    [
      'PASID cache by address',
      { cache: IOMMU_CACHE_INV_TYPE_PASID, granularity: IOMMU_INV_GRANU_ADDR },
      -EINVAL,
    ],
    [
      'PASID cache, pasid beyond SSIDSIZE',
      {
        cache: IOMMU_CACHE_INV_TYPE_PASID,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, pasid: 2 ** 20 } },
      },
      -EINVAL,
    ],
  ];
  it.each(REFUSED)('%s → %i, nothing issued', (_what, info, errno) => {
    const { n } = cachedGuest();
    const dev = [...n.d.masters][0]!.dev;
    const before = snapshot(n);
    expect(n.drv.cacheInvalidate(n.d, dev, inv(info))).toBe(errno);
    expect(snapshot(n)).toEqual(before);
  });

  it('a domain that is not NESTED, or not bound, → -EINVAL', () => {
    const b = bench();
    const dev = device('d', [1]);
    b.drv.probeDevice(dev);
    const s1 = b.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    b.drv.attachDev(s1, dev);
    const unbound = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED)!;
    b.drv.enableNesting(unbound);
    const i = inv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN });
    const cmds = b.hw.stats.commands;
    expect(b.drv.cacheInvalidate(s1, dev, i)).toBe(-EINVAL);
    expect(b.drv.cacheInvalidate(unbound, dev, i)).toBe(-EINVAL);
    expect(b.hw.stats.commands).toBe(cmds);
  });

  it('as posted: cache type PASID → -ENOENT', () => {
    const n = nested({ opts: { asPostedSingleCd: true } });
    const dev = [...n.d.masters][0]!.dev;
    const before = snapshot(n);
    for (const cache of [
      IOMMU_CACHE_INV_TYPE_PASID,
      IOMMU_CACHE_INV_TYPE_PASID | IOMMU_CACHE_INV_TYPE_IOTLB,
    ]) {
      expect(n.drv.cacheInvalidate(n.d, dev, inv({ cache, granularity: IOMMU_INV_GRANU_DOMAIN }))).toBe(
        -ENOENT,
      );
    }
    expect(snapshot(n)).toEqual(before);
    expect(
      n.drv.cacheInvalidate(
        n.d,
        dev,
        inv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }),
      ),
    ).toBe(0);
  });
});

describe('host stage-2 changes under a guest, and guest faults', () => {
  it('a host unmap drops combined entries (TLBI_S2_IPA + TLBI_NH_ALL) and the fault reaches the core', () => {
    const n = nested();
    const { table } = guestSpace(n.g);
    // The guest's data in a 2M block of its own, apart from its tables.
    const block = n.g.alloc.alloc(SZ_2M)!;
    table.unmap(VA, SZ_4K);
    expect(table.map(VA, block, SZ_4K, { read: true, write: true, user: true }).ok).toBe(true);
    const cds = guestCds(n.g, 0, 4, 3, table, 5);
    n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4 }));
    expect(paOf(n.hw.transact(dma(SID, VA + 8, ACCESS_READ, 3)))).toBe(hpa(block) + 8);
    const { ops } = opsOf(n, () => n.drv.unmap(n.d, block, SZ_2M));
    expect(names(ops)).toEqual([0x2a, 0x10, 0x46]);
    const r = n.hw.transact(dma(SID, VA + 8, ACCESS_READ, 3));
    expect(r.status).toBe(TXN_ABORT);
    expect([r.event?.name, r.event?.s2, r.event?.cls]).toEqual(['F_TRANSLATION', true, 2]);
    const f = n.core.faults.at(-1)!.fault;
    expect(f.type === 1 && f.event).toEqual({
      reason: IOMMU_FAULT_REASON_PTE_FETCH,
      flags: IOMMU_FAULT_UNRECOV_ADDR_VALID | IOMMU_FAULT_UNRECOV_PASID_VALID,
      pasid: 3,
      perm: 1,
      addr: VA + 8,
      fetch_addr: 0,
    });
    expect(n.drv.map(n.d, block, hpa(block), SZ_2M, RW)).toBe(0);
    expect(paOf(n.hw.transact(dma(SID, VA + 8, ACCESS_READ, 3)))).toBe(hpa(block) + 8);
  });

  it("a host unmap under the guest's own tables faults the stage-1 walk (CLASS = TT, IPA as fetch_addr)", () => {
    const n = nested();
    const { table } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 4, 3, table, 5);
    n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4 }));
    n.hw.transact(dma(SID, VA, ACCESS_READ, 3));
    // The guest's first allocations (its S1 root, IPA_BASE) sit in the first 2M block.
    expect(table.root).toBe(IPA_BASE);
    n.drv.unmap(n.d, IPA_BASE, SZ_2M);
    const r = n.hw.transact(dma(SID, VA, ACCESS_READ, 3));
    expect([r.event?.name, r.event?.s2, r.event?.cls]).toEqual(['F_TRANSLATION', true, 1]);
    const f = n.core.faults.at(-1)!.fault;
    expect(f.type === 1 && f.event).toMatchObject({
      flags:
        IOMMU_FAULT_UNRECOV_ADDR_VALID |
        IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID |
        IOMMU_FAULT_UNRECOV_PASID_VALID,
      addr: VA,
      fetch_addr: IPA_BASE,
    });
  });

  it('guest configuration faults: bad PASID, invalid CD, CD fetch through an unmapped IPA', () => {
    const n = nested();
    const { table } = guestSpace(n.g);
    const cds = guestCds(n.g, 0, 4, 3, table, 5);
    cds.write(2, encodeCd({ t0sz: 16, granule0: 12, ttb0: table.root, ipsBits: 48, asid: 5, valid: false }));
    n.drv.attachPasidTable(n.d, cfg({ basePtr: cds.ptr, pasidBits: 4 }));
    n.hw.transact(dma(SID, VA, ACCESS_READ, 20)); // beyond S1CDMax
    n.hw.transact(dma(SID, VA, ACCESS_READ, 2)); // CD.V = 0
    const events = n.core.faults.map((x) => (x.fault.type === 1 ? x.fault.event : undefined));
    expect(events[0]).toMatchObject({
      reason: IOMMU_FAULT_REASON_PASID_INVALID,
      flags: IOMMU_FAULT_UNRECOV_PASID_VALID,
      pasid: 20,
    });
    expect(events[1]).toMatchObject({
      reason: IOMMU_FAULT_REASON_BAD_PASID_ENTRY,
      flags: IOMMU_FAULT_UNRECOV_PASID_VALID,
      pasid: 2,
    });
    // The guest's CD table pointer outside its RAM: stage 2 faults fetching the CD (CLASS = CD).
    n.drv.attachPasidTable(n.d, cfg({ config: IOMMU_PASID_CONFIG_BYPASS }));
    const outside = IPA_BASE + GUEST_SIZE + 0x4000;
    n.drv.attachPasidTable(n.d, cfg({ basePtr: outside, pasidBits: 4 }));
    n.hw.transact(dma(SID, VA, ACCESS_READ, 1));
    const last = n.core.faults.at(-1)!.fault;
    expect(last.type === 1 && last.event).toEqual({
      reason: IOMMU_FAULT_REASON_PTE_FETCH,
      flags:
        IOMMU_FAULT_UNRECOV_ADDR_VALID |
        IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID |
        IOMMU_FAULT_UNRECOV_PASID_VALID,
      pasid: 1,
      perm: 1,
      addr: VA,
      // CD 1 is at outside + 64; the record's IPA field holds bits [55:12].
      fetch_addr: outside,
    });
  });
});

describe('bind_guest_msi', () => {
  it('only NESTED domains bound to an SMMU reach dma-iommu', () => {
    const n = nested();
    const dev = device('other', [0x30]);
    n.drv.probeDevice(dev);
    const s1 = n.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    n.drv.attachDev(s1, dev);
    const unbound = n.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED)!;
    n.drv.enableNesting(unbound);
    expect(n.drv.bindGuestMsi(s1, 0x800_0000, 0x900_0000, SZ_4K)).toBe(-EINVAL);
    expect(n.drv.bindGuestMsi(unbound, 0x800_0000, 0x900_0000, SZ_4K)).toBe(-EINVAL);
    expect(n.core.msiBinds).toEqual([]);
    expect(n.drv.bindGuestMsi(n.d, 0x800_0000, 0x900_0000, SZ_4K)).toBe(0);
    expect(n.core.msiBinds).toEqual([{ domain: n.d, giova: 0x800_0000, gpa: 0x900_0000, size: SZ_4K }]);
    n.drv.unbindGuestMsi(s1, 0x800_0000);
    expect(n.core.msiUnbinds).toEqual([]);
    n.drv.unbindGuestMsi(n.d, 0x800_0000);
    expect(n.core.msiUnbinds).toEqual([{ domain: n.d, giova: 0x800_0000 }]);
  });
});

/**
 * DMA through the driver's domains, played against the SMMUv3 model: stage choice, the STE and
 * CD the driver installs, map/unmap through the page-table builder with the device's accesses
 * landing where `map` said, TLB invalidation on unmap (no stale entry survives, in every
 * invalidation form), faults delivered to the iommu core, and the attach/map errno paths.
 */
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import {
  CD_0_A,
  CD_0_AA64,
  CD_0_ASET,
  CD_0_ASID,
  CD_0_EPD1,
  CD_0_IPS,
  CD_0_R,
  CD_0_T0SZ,
  CD_0_TG0,
  CD_0_V,
  CD_1_TTB0,
  CD_3_MAIR,
} from '../../arch/smmuv3/cd.ts';
import {
  CMD_0_ASID,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_0_VMID,
  CMD_1_LEAF,
  CMD_1_TG,
  CMD_1_TTL,
  CMD_TLBI_NH_VA,
  CMD_TLBI_S2_IPA,
} from '../../arch/smmuv3/commands.ts';
import { SMMU_EVENTQ_CONS, SMMU_EVENTQ_PROD } from '../../arch/smmuv3/registers.ts';
import {
  STE_0_CFG,
  STE_0_S1CDMAX,
  STE_0_S1CTXPTR,
  STE_0_V,
  STE_2_S2VMID,
  STE_3_S2TTB,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_CFG_S1_TRANS,
  STE_CFG_S2_TRANS,
} from '../../arch/smmuv3/ste.ts';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE } from '../../arch/vmsa.ts';
import type { SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { TXN_ABORT, TXN_OK } from '../../hw/smmuv3/smmu.ts';
import { EEXIST, EINVAL, ENODEV, ENOSPC, ERANGE } from '../../uapi/errno.ts';
import {
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_PERMISSION,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
} from '../../uapi/iommu.ts';
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
} from '../iommu/types.ts';
import { cmdCfgiSte } from './commands.ts';
import type { ArmSmmuV3Domain } from './domain.ts';
import { type Bench, bench, cmdCount, device, dma, paOf, withoutIrqs } from './harness.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;

/** A probed device on SID 0x10 attached to a fresh domain of `type`. */
function attached(b: Bench, type = IOMMU_DOMAIN_DMA) {
  const dev = device('nic', [0x10]);
  expect(b.drv.probeDevice(dev)).toBe(0);
  const d = b.drv.domainAlloc(type) as ArmSmmuV3Domain;
  expect(b.drv.attachDev(d, dev)).toBe(0);
  return { dev, d };
}

/** Records every command the SMMU executes. */
function spyCommands(b: Bench): Uint32Array[] {
  const seen: Uint32Array[] = [];
  b.hw.hooks.command = (_o, w) => seen.push(Uint32Array.from(w));
  return seen;
}

const VARIANTS: [string, Partial<SmmuFeatures>, 's1' | 's2'][] = [
  ['stage 1, RIL', {}, 's1'],
  ['stage 1, no RIL', { rangeInvalidation: false }, 's1'],
  ['stage 2, RIL', { stage1: false, hyp: false }, 's2'],
  [
    'stage 2, no RIL, 8-bit VMID',
    { stage1: false, hyp: false, rangeInvalidation: false, vmid16: false },
    's2',
  ],
];

describe.each(VARIANTS)('DMA domain (%s)', (_name, features, stage) => {
  it('chooses the stage Linux does and maps 4K pages, 2M and 1G blocks', () => {
    const b = bench({ features });
    const { d } = attached(b);
    expect(d.stage).toBe(stage);
    expect(d.pgsizeBitmap).toBe(SZ_4K + SZ_2M + SZ_1G);
    expect(d.geometry).toEqual({ apertureStart: 0, apertureEnd: 2 ** 48 - 1, forceAperture: true });
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW)).toBe(0);
    expect(b.drv.map(d, 0x20_0000, 0x8020_0000, SZ_2M, IOMMU_READ)).toBe(0);
    expect(b.drv.map(d, SZ_1G, 0x1_0000_0000, SZ_1G, RW)).toBe(0);
    for (const [iova, pa] of [
      [0x1008, 0x8000_0008],
      [0x20_1234, 0x8020_1234],
      [0x3f_fffc, 0x803f_fffc],
      [SZ_1G + 0x3456_7890, 0x1_3456_7890],
    ]) {
      const r = b.hw.transact(dma(0x10, iova!, ACCESS_READ));
      expect(r.status).toBe(TXN_OK);
      expect(paOf(r)).toBe(pa);
      expect(b.drv.iovaToPhys(d, iova!)).toBe(pa);
    }
    expect(b.core.faults).toEqual([]);
  });

  it('an unmapped IOVA faults, the core gets PTE_FETCH with the address, and no stale entry survives', () => {
    const b = bench({ features });
    const { dev, d } = attached(b);
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW)).toBe(0);
    expect(paOf(b.hw.transact(dma(0x10, 0x1010, ACCESS_WRITE)))).toBe(0x8000_0010);
    expect(b.hw.iotlb.countValid()).toBeGreaterThan(0);
    expect(b.drv.unmap(d, 0x1000, SZ_4K)).toBe(SZ_4K);
    const r = b.hw.transact(dma(0x10, 0x1010, ACCESS_WRITE));
    expect(r.status).toBe(TXN_ABORT);
    expect(r.event?.name).toBe('F_TRANSLATION');
    expect(b.core.faults).toHaveLength(1);
    expect(b.core.faults[0]!.dev).toBe(dev);
    expect(b.core.faults[0]!.fault).toEqual({
      type: IOMMU_FAULT_DMA_UNRECOV,
      event: {
        reason: IOMMU_FAULT_REASON_PTE_FETCH,
        flags: IOMMU_FAULT_UNRECOV_ADDR_VALID,
        pasid: 0,
        perm: IOMMU_FAULT_PERM_WRITE,
        addr: 0x1010,
        fetch_addr: 0,
      },
    });
    expect(b.drv.stats.faultsReported).toBe(1);
    // Remapped elsewhere: the device sees the new page, not a cached old one.
    expect(b.drv.map(d, 0x1000, 0x9000_0000, SZ_4K, RW)).toBe(0);
    expect(paOf(b.hw.transact(dma(0x10, 0x1010, ACCESS_READ)))).toBe(0x9000_0010);
  });

  it('unmapping a page out of a cached 2M block splits it and invalidates the block entry', () => {
    const b = bench({ features });
    const { d } = attached(b);
    expect(b.drv.map(d, SZ_2M, 0x8020_0000, SZ_2M, RW)).toBe(0);
    expect(paOf(b.hw.transact(dma(0x10, SZ_2M + 0x1000, ACCESS_READ)))).toBe(0x8020_1000);
    expect(b.drv.unmap(d, SZ_2M + 0x1000, SZ_4K)).toBe(SZ_4K);
    expect(b.hw.transact(dma(0x10, SZ_2M + 0x1000, ACCESS_READ)).status).toBe(TXN_ABORT);
    expect(paOf(b.hw.transact(dma(0x10, SZ_2M + 0x2000, ACCESS_READ)))).toBe(0x8020_2000);
    expect(paOf(b.hw.transact(dma(0x10, SZ_2M, ACCESS_READ)))).toBe(0x8020_0000);
  });

  it('unmapping a 2M span that held a table of pages invalidates every page', () => {
    const b = bench({ features });
    const { d } = attached(b);
    for (let i = 0; i < 3; i++)
      expect(b.drv.map(d, 0x40_0000 + i * SZ_4K, 0x8100_0000 + i * SZ_4K, SZ_4K, RW)).toBe(0);
    for (let i = 0; i < 3; i++) b.hw.transact(dma(0x10, 0x40_0000 + i * SZ_4K, ACCESS_READ));
    expect(b.drv.unmap(d, 0x40_0000, SZ_2M)).toBe(SZ_2M);
    for (let i = 0; i < 3; i++) {
      expect(b.hw.transact(dma(0x10, 0x40_0000 + i * SZ_4K, ACCESS_READ)).status).toBe(TXN_ABORT);
    }
  });

  it('issues the invalidation form the SMMU supports', () => {
    const b = bench({ features });
    const { d } = attached(b);
    b.drv.map(d, 0x3000, 0x8000_3000, SZ_4K, RW);
    const seen = spyCommands(b);
    b.drv.unmap(d, 0x3000, SZ_4K);
    const tlbi = seen.filter((w) => [CMD_TLBI_NH_VA, CMD_TLBI_S2_IPA].includes(getField(w, CMD_0_OP)));
    expect(tlbi).toHaveLength(1);
    const w = tlbi[0]!;
    expect(getField(w, CMD_0_OP)).toBe(stage === 's1' ? CMD_TLBI_NH_VA : CMD_TLBI_S2_IPA);
    if (stage === 's1') expect([getField(w, CMD_0_ASID), getField(w, CMD_0_VMID)]).toEqual([d.asid, 0]);
    else expect(getField(w, CMD_0_VMID)).toBe(d.s2Cfg.vmid);
    expect(getField(w, CMD_1_LEAF)).toBe(1);
    expect(w[2]! & 0xffff_f000).toBe(0x3000);
    const ril = features.rangeInvalidation !== false;
    // RIL: TG = 4K, NUM = SCALE = 0, TTL = level 3; else no range fields.
    expect([
      getField(w, CMD_1_TG),
      getField(w, CMD_0_NUM),
      getField(w, CMD_0_SCALE),
      getField(w, CMD_1_TTL),
    ]).toEqual(ril ? [1, 0, 0, 3] : [0, 0, 0, 0]);
  });
});

describe('other granules', () => {
  it.each([
    [[16], 0x1_0000, 0x2000_0000],
    [[14], 0x4000, 0x200_0000],
  ] as const)('an SMMU with granules %j maps its page and block sizes', (granules, page, block) => {
    const b = bench({ features: { granules } });
    const { d } = attached(b);
    expect(d.granule).toBe(granules[0]);
    expect(d.pgsizeBitmap).toBe(page + block);
    expect(b.drv.map(d, page, 0x8000_0000, page, RW)).toBe(0);
    expect(b.drv.map(d, block, 0x1_0000_0000, block, RW)).toBe(0);
    expect(paOf(b.hw.transact(dma(0x10, page + 0x10, ACCESS_READ)))).toBe(0x8000_0010);
    expect(paOf(b.hw.transact(dma(0x10, block + page + 8, ACCESS_READ)))).toBe(0x1_0000_0000 + page + 8);
    expect(b.drv.unmap(d, block + page, page)).toBe(page);
    expect(b.hw.transact(dma(0x10, block + page + 8, ACCESS_READ)).status).toBe(TXN_ABORT);
    expect(paOf(b.hw.transact(dma(0x10, block + 8, ACCESS_READ)))).toBe(0x1_0000_0008);
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW)).toBe(-EINVAL);
  });
});

describe('stage-1 domain structures', () => {
  it('installs Config S1 with the host CD built from the page table', () => {
    const b = bench();
    const { d } = attached(b, IOMMU_DOMAIN_UNMANAGED);
    const ste = b.drv.steWords(0x10)!;
    expect(getField(ste, STE_0_V)).toBe(1);
    expect(getField(ste, STE_0_CFG)).toBe(STE_CFG_S1_TRANS);
    expect(getField(ste, STE_0_S1CTXPTR)).toBe(d.s1Cfg.cdtab);
    expect(getField(ste, STE_0_S1CDMAX)).toBe(0);
    expect([...ste.subarray(4, 8)]).toEqual([0, 0, 0, 0]);
    const cd = Uint32Array.from({ length: 16 }, (_, i) => b.mem.read32(d.s1Cfg.cdtab + 4 * i) >>> 0);
    expect({
      V: getField(cd, CD_0_V),
      T0SZ: getField(cd, CD_0_T0SZ),
      TG0: getField(cd, CD_0_TG0),
      EPD1: getField(cd, CD_0_EPD1),
      IPS: getField(cd, CD_0_IPS),
      AA64: getField(cd, CD_0_AA64),
      R: getField(cd, CD_0_R),
      A: getField(cd, CD_0_A),
      ASET: getField(cd, CD_0_ASET),
      ASID: getField(cd, CD_0_ASID),
      TTB0: getField(cd, CD_1_TTB0),
      MAIR: getField(cd, CD_3_MAIR),
    }).toEqual({
      V: 1,
      T0SZ: 16,
      TG0: 0,
      EPD1: 1,
      IPS: 5,
      AA64: 1,
      R: 1,
      A: 1,
      ASET: 1,
      ASID: d.asid,
      TTB0: d.pgtable!.root,
      MAIR: 0x04ff,
    });
    expect(d.asid).toBe(1);
  });

  it('stage-2 domains get VMIDs from 1 and their table in S2TTB', () => {
    const b = bench({ features: { stage1: false, hyp: false } });
    const { d } = attached(b);
    const ste = b.drv.steWords(0x10)!;
    expect(getField(ste, STE_0_CFG)).toBe(STE_CFG_S2_TRANS);
    expect(getField(ste, STE_2_S2VMID)).toBe(1);
    expect(getField(ste, STE_3_S2TTB)).toBe(d.pgtable!.root);
    const dev2 = device('d2', [0x11]);
    b.drv.probeDevice(dev2);
    const d2 = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED) as ArmSmmuV3Domain;
    expect(b.drv.attachDev(d2, dev2)).toBe(0);
    expect(d2.s2Cfg.vmid).toBe(2);
  });
});

describe('protections and faults', () => {
  it('read-only, privileged-only and no-exec mappings fault with the right permission bits', () => {
    const b = bench();
    const { d } = attached(b);
    b.drv.map(d, 0x1000, 0x8000_1000, SZ_4K, IOMMU_READ);
    b.drv.map(d, 0x2000, 0x8000_2000, SZ_4K, RW | IOMMU_PRIV);
    b.drv.map(d, 0x3000, 0x8000_3000, SZ_4K, RW | IOMMU_NOEXEC);
    b.drv.map(d, 0x4000, 0x8000_4000, SZ_4K, RW);
    expect(b.hw.transact(dma(0x10, 0x1000, ACCESS_WRITE)).status).toBe(TXN_ABORT);
    expect(b.hw.transact(dma(0x10, 0x2000, ACCESS_READ)).status).toBe(TXN_ABORT);
    expect(paOf(b.hw.transact(dma(0x10, 0x2000, ACCESS_READ, -1, 4, true)))).toBe(0x8000_2000);
    expect(b.hw.transact(dma(0x10, 0x3000, ACCESS_EXEC)).status).toBe(TXN_ABORT);
    expect(paOf(b.hw.transact(dma(0x10, 0x4000, ACCESS_EXEC)))).toBe(0x8000_4000);
    expect(b.hw.transact(dma(0x10, 0x1000, ACCESS_WRITE, -1, 4, true)).status).toBe(TXN_ABORT);
    const got = b.core.faults.map((f) =>
      f.fault.type === 1 ? [f.fault.event.reason, f.fault.event.perm] : [],
    );
    expect(got).toEqual([
      [IOMMU_FAULT_REASON_PERMISSION, IOMMU_FAULT_PERM_WRITE],
      [IOMMU_FAULT_REASON_PERMISSION, IOMMU_FAULT_PERM_READ],
      [IOMMU_FAULT_REASON_PERMISSION, IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_EXEC],
      [IOMMU_FAULT_REASON_PERMISSION, IOMMU_FAULT_PERM_WRITE | IOMMU_FAULT_PERM_PRIV],
    ]);
  });

  it('MMIO mappings translate like memory (the attribute is Device)', () => {
    const b = bench();
    const { d } = attached(b);
    expect(b.drv.map(d, 0x80_0000, 0x9_0000_0000, SZ_4K, RW | IOMMU_MMIO)).toBe(0);
    expect(paOf(b.hw.transact(dma(0x10, 0x80_0004, ACCESS_WRITE)))).toBe(0x9_0000_0004);
  });

  it('counts events from unknown StreamIDs and events that are not reported', () => {
    const b = bench();
    attached(b);
    b.hw.transact(dma(0x4444, 0x1000, ACCESS_READ)); // no L2 table: C_BAD_STREAMID
    expect(b.drv.stats.eventsUnknownSid).toBe(1);
    // An STE made invalid behind the driver's back: C_BAD_STE, which is not reported.
    b.drv.streamTable!.writeDword(0x10, 0, new Uint32Array(16));
    expect(b.drv.submitCommands([cmdCfgiSte(0x10)])).toBe(0);
    b.hw.transact(dma(0x10, 0x1000, ACCESS_READ));
    expect(b.drv.stats.eventsUnreported).toBe(1);
    expect(b.drv.stats.eventsByName).toMatchObject({ C_BAD_STREAMID: 1, C_BAD_STE: 1 });
    expect(b.drv.stats.events).toBe(2);
    expect(b.core.faults).toEqual([]);
  });

  it('counts a fault the core refuses (no handler registered)', () => {
    const b = bench();
    attached(b);
    b.core.reportResult = -ENODEV;
    b.hw.transact(dma(0x10, 0x1000, ACCESS_READ));
    expect(b.core.faults).toHaveLength(1);
    expect([b.drv.stats.faultsRejected, b.drv.stats.faultsReported]).toEqual([1, 0]);
  });

  it('drains a whole queue after missed interrupts and acknowledges an overflow', () => {
    const b = bench({ opts: { eventqLog2: 1 } });
    const { d } = attached(b);
    expect(d.stage).toBe('s1');
    withoutIrqs(b, () => {
      for (let i = 0; i < 4; i++) b.hw.transact(dma(0x10, 0x1000 * i, ACCESS_READ));
    });
    expect(b.hw.read32(SMMU_EVENTQ_PROD) >>> 31).toBe(1); // OVFLG set
    b.drv.handleIrq('eventq');
    expect(b.drv.stats.eventqOverflows).toBe(1);
    expect(b.core.faults).toHaveLength(2);
    expect(b.hw.read32(SMMU_EVENTQ_CONS)).toBe(b.hw.read32(SMMU_EVENTQ_PROD));
    // The queue works normally again: the next fault arrives through the interrupt.
    b.hw.transact(dma(0x10, 0x9000, ACCESS_READ));
    expect(b.core.faults).toHaveLength(3);
    expect(b.drv.stats.eventqOverflows).toBe(1);
    expect(b.drv.stats.irqs.eventq).toBe(2);
  });
});

describe('identity and blocked domains, detach', () => {
  it('IDENTITY installs bypass: DMA addresses are physical', () => {
    const b = bench();
    const { d } = attached(b, IOMMU_DOMAIN_IDENTITY);
    expect(d.stage).toBe('bypass');
    expect(getField(b.drv.steWords(0x10)!, STE_0_CFG)).toBe(STE_CFG_BYPASS);
    expect(paOf(b.hw.transact(dma(0x10, 0x1234_5000, ACCESS_WRITE)))).toBe(0x1234_5000);
    expect(b.drv.iovaToPhys(d, 0x77_7000)).toBe(0x77_7000);
    expect(b.drv.map(d, 0, 0, SZ_4K, RW)).toBe(-ENODEV);
  });

  it('BLOCKED installs abort; detach goes back to the unattached policy', () => {
    const b = bench({ opts: { disableBypass: false } });
    const { dev, d } = attached(b, IOMMU_DOMAIN_BLOCKED);
    expect(d.stage).toBe('abort');
    expect(getField(b.drv.steWords(0x10)!, STE_0_CFG)).toBe(STE_CFG_ABORT);
    const r = b.hw.transact(dma(0x10, 0x1000, ACCESS_READ));
    expect([r.status, r.event]).toEqual([TXN_ABORT, null]);
    b.drv.detachDev(d, dev);
    expect(b.drv.domainOf(dev)).toBeUndefined();
    expect(getField(b.drv.steWords(0x10)!, STE_0_CFG)).toBe(STE_CFG_BYPASS);
  });

  it('domainAlloc supports exactly BLOCKED, IDENTITY, UNMANAGED and DMA', () => {
    const b = bench();
    for (const t of [IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_IDENTITY, IOMMU_DOMAIN_UNMANAGED, IOMMU_DOMAIN_DMA]) {
      expect(b.drv.domainAlloc(t)?.type).toBe(t);
    }
    for (const t of [2, 4 | 1, 8]) expect(b.drv.domainAlloc(t)).toBeUndefined();
  });
});

describe('attach and map errno paths', () => {
  it('map refuses before attach, bad sizes, overlaps, out-of-range addresses; no access maps nothing', () => {
    const b = bench();
    const dev = device('nic', [0x10]);
    b.drv.probeDevice(dev);
    const d = b.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW)).toBe(-ENODEV);
    expect(b.drv.unmap(d, 0x1000, SZ_4K)).toBe(0);
    b.drv.attachDev(d, dev);
    expect(b.drv.map(d, 0x1000, 0x8000_0000, 0x2000, RW)).toBe(-EINVAL);
    expect(b.drv.map(d, 0x1800, 0x8000_0000, SZ_4K, RW)).toBe(-EINVAL);
    expect(b.drv.map(d, 0x1000, 2 ** 48, SZ_4K, RW)).toBe(-ERANGE);
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, 0)).toBe(0);
    expect(b.drv.iovaToPhys(d, 0x1000)).toBe(0);
    expect(b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW)).toBe(0);
    expect(b.drv.map(d, 0x1000, 0x8800_0000, SZ_4K, RW)).toBe(-EEXIST);
    expect(b.drv.iovaToPhys(d, 0x1000)).toBe(0x8000_0000);
  });

  it("attach refuses another instance's domains and devices, unprobed devices and freed domains", () => {
    const a = bench({ name: 'smmu0' });
    const b = bench({ name: 'smmu1' });
    const devA = device('a', [1], 0, 'smmu0');
    const devB = device('b', [1], 0, 'smmu1');
    a.drv.probeDevice(devA);
    b.drv.probeDevice(devB);
    const da = a.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    const db = b.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    expect(a.drv.attachDev(da, devA)).toBe(0);
    expect(b.drv.attachDev(da, devB)).toBe(-EINVAL);
    expect(a.drv.attachDev(db, devA)).toBe(-EINVAL);
    expect(a.drv.attachDev(da, devB)).toBe(-EINVAL);
    expect(a.drv.attachDev(da, device('unprobed', [2], 0, 'smmu0'))).toBe(-ENODEV);
    const freed = a.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    a.drv.domainFree(freed);
    expect(a.drv.attachDev(freed, devA)).toBe(-EINVAL);
    expect(a.drv.domainOf(devA)).toBe(da);
    expect(b.drv.domainOf(devB)).toBeUndefined();
  });

  it('attaching to another domain moves the device', () => {
    const b = bench();
    const { dev, d } = attached(b);
    const d2 = b.drv.domainAlloc(IOMMU_DOMAIN_DMA) as ArmSmmuV3Domain;
    expect(b.drv.attachDev(d2, dev)).toBe(0);
    expect(b.drv.domainOf(dev)).toBe(d2);
    expect(d.masters.size).toBe(0);
    expect(getField(b.drv.steWords(0x10)!, STE_0_S1CTXPTR)).toBe(d2.s1Cfg.cdtab);
  });

  it('a failed finalise (no VMID left) leaves the device where it was', () => {
    const b = bench({ features: { stage1: false, hyp: false, vmid16: false } });
    const dev = device('nic', [0x10]);
    b.drv.probeDevice(dev);
    let last: IommuDomain | undefined;
    for (let i = 1; i <= 255; i++) {
      const d = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED)!;
      expect(b.drv.attachDev(d, dev)).toBe(0);
      last = d;
    }
    const before = b.drv.steWords(0x10);
    const extra = b.drv.domainAlloc(IOMMU_DOMAIN_UNMANAGED) as ArmSmmuV3Domain;
    expect(b.drv.attachDev(extra, dev)).toBe(-ENOSPC);
    expect(extra.smmu).toBeUndefined();
    expect(b.drv.domainOf(dev)).toBe(last);
    expect(b.drv.steWords(0x10)).toEqual(before);
  });

  it('domainFree detaches, invalidates the ASID and releases it for reuse', () => {
    const b = bench();
    const { dev, d } = attached(b);
    b.drv.map(d, 0x1000, 0x8000_0000, SZ_4K, RW);
    b.hw.transact(dma(0x10, 0x1000, ACCESS_READ));
    const asidInvals = cmdCount(b, 'CMD_TLBI_NH_ASID');
    const live = b.alloc.bytesInUse;
    b.drv.domainFree(d);
    expect(cmdCount(b, 'CMD_TLBI_NH_ASID')).toBe(asidInvals + 1);
    expect(b.hw.iotlb.countValid()).toBe(0);
    expect(b.drv.domainOf(dev)).toBeUndefined();
    expect(getField(b.drv.steWords(0x10)!, STE_0_CFG)).toBe(STE_CFG_ABORT);
    expect(b.alloc.bytesInUse).toBeLessThan(live);
    const d2 = b.drv.domainAlloc(IOMMU_DOMAIN_DMA) as ArmSmmuV3Domain;
    expect(b.drv.attachDev(d2, dev)).toBe(0);
    expect(d2.asid).toBe(1);
  });

  it('reports the software MSI window and its capabilities', () => {
    const b = bench();
    expect(b.drv.getResvRegions(device('x', [1]))).toEqual([
      { start: 0x800_0000, length: 0x10_0000, prot: IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, type: 'sw-msi' },
    ]);
    expect([b.drv.capable('cache-coherency'), b.drv.capable('noexec'), b.drv.capable('intr-remap')]).toEqual([
      true,
      true,
      true,
    ]);
    expect(b.drv.pgsizeBitmap).toBe(b.drv.features!.pgsizeBitmap);
  });
});

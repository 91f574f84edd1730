/**
 * The virtual SMMUv3 driven the way a guest drives it — registers through `mmio`, tables and
 * queues in guest RAM that is a real process's memory — against a recording host context: the
 * exact SET_PASID_TABLE and CACHE_INVALIDATE structs each guest command turns into, the events
 * written into the guest's event queue (configuration errors, host faults, overflow), command
 * errors, host refusals, and the software MSI doorbell translation.
 */

import { describe, expect, it } from 'vitest';
import { setField } from '../../arch/fields.ts';
import { CERROR_ILL, CMD_SYNC_CS_IRQ } from '../../arch/smmuv3/commands.ts';
import {
  C_BAD_CD,
  C_BAD_STE,
  C_BAD_STREAMID,
  C_BAD_SUBSTREAMID,
  EVT_CLASS_IN,
  EVT_CLASS_TT,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_STE_FETCH,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  GBPA_ABORT,
  GBPA_UPDATE,
  GERROR_CMDQ_ERR,
  Q_OVFLG,
  SMMU_AIDR,
  SMMU_CMDQ_CONS,
  SMMU_CR0,
  SMMU_CR0ACK,
  SMMU_EVENTQ_CONS_ALIAS,
  SMMU_EVENTQ_PROD,
  SMMU_EVENTQ_PROD_ALIAS,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_GERRORN,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import { S1DSS_BYPASS, S1DSS_SSID0, STE_1_S1STALLD } from '../../arch/smmuv3/ste.ts';
import {
  VIRT_GIC_V2M,
  VIRT_SMMU_IRQ_CMD_SYNC,
  VIRT_SMMU_IRQ_EVENTQ,
  VIRT_SMMU_IRQ_GERROR,
} from '../../arch/virt.ts';
import { CdTable, writeWords } from '../../hw/smmuv3/rig.ts';
import {
  cmdCfgiAll,
  cmdCfgiCd,
  cmdCfgiCdAll,
  cmdCfgiSte,
  cmdCfgiSteRange,
  cmdPrefetchConfig,
  cmdRaw,
  cmdSync,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNhVaa,
  cmdTlbiNsnhAll,
  cmdTlbiS12Vmall,
  encodeSte,
} from '../../hw/smmuv3/structures.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_ACCESS,
  IOMMU_FAULT_REASON_BAD_PASID_ENTRY,
  IOMMU_FAULT_REASON_OOR_ADDRESS,
  IOMMU_FAULT_REASON_PASID_FETCH,
  IOMMU_FAULT_REASON_PASID_INVALID,
  IOMMU_FAULT_REASON_PERMISSION,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_REASON_UNKNOWN,
  IOMMU_FAULT_REASON_WALK_EABT,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  type IommuFaultRecord,
  iommu_fault,
} from '../../uapi/iommu.ts';
import { FakeBus, FakeHostContext, type HostCall, vsmmuRig } from './testing.ts';

const DEVFN = 0x20;
const SID = DEVFN; // bus 0

const set = (config: number, extra: Record<string, unknown> = {}): HostCall => ({
  op: 'set',
  config: {
    argsz: 32,
    version: 1,
    base_ptr: BigInt((extra.base as number | undefined) ?? 0),
    format: IOMMU_PASID_FORMAT_SMMUV3,
    pasid_bits: (extra.bits as number | undefined) ?? 0,
    config,
    vendor_data: {
      smmuv3: {
        version: 1,
        s1fmt: (extra.fmt as number | undefined) ?? 0,
        s1dss: (extra.dss as number | undefined) ?? 0,
      },
    },
  },
});
const ABORT = set(IOMMU_PASID_CONFIG_ABORT);
const BYPASS = set(IOMMU_PASID_CONFIG_BYPASS);

/** A vSMMU with one assigned device (bus 0, devfn 0x20) whose context is registered. */
function assigned(opts: { enable?: boolean; layout?: Parameters<typeof vsmmuRig>[1] } = {}) {
  const t = vsmmuRig({}, opts.layout);
  const bus = new FakeBus('pcie.0');
  const ctx = new FakeHostContext();
  t.drv.bringUp(opts.enable ?? true);
  expect(t.smmu.ops.set_iommu_context?.(bus, t.smmu, DEVFN, ctx)).toBe(0);
  return { ...t, bus, ctx };
}

/** A guest CD table with CD `index` mapping nothing yet. */
function cdTable(t: ReturnType<typeof assigned>, fmt = 0, cdMax = 0): CdTable {
  return new CdTable(t.rig.port, t.rig.alloc, fmt, cdMax);
}

function fault(ev: {
  reason: number;
  flags?: number;
  pasid?: number;
  perm?: number;
  addr?: bigint;
  fetch_addr?: bigint;
}): IommuFaultRecord {
  return iommu_fault.decode(
    iommu_fault.encode({
      type: IOMMU_FAULT_DMA_UNRECOV,
      u: { event: { flags: 0, pasid: 0, perm: 0, addr: 0n, fetch_addr: 0n, ...ev } },
    }),
  );
}

describe('registers', () => {
  it('ID registers advertise stage 1 only, AArch64, ASID16, CD2L, 2-level stream tables, RIL, 4K/64K, OAS 40, no MSI/ATS/PRI/stalls', () => {
    const { smmu } = vsmmuRig();
    const r = (o: number) => smmu.mmio.read(o, 4);
    const idr0 = r(SMMU_IDR0);
    const bits = (v: number, lsb: number, w = 1) => (v >>> lsb) & ((1 << w) - 1);
    expect({
      S2P: bits(idr0, 0),
      S1P: bits(idr0, 1),
      TTF: bits(idr0, 2, 2),
      COHACC: bits(idr0, 4),
      ASID16: bits(idr0, 12),
      MSI: bits(idr0, 13),
      ATS: bits(idr0, 10),
      PRI: bits(idr0, 16),
      CD2L: bits(idr0, 19),
      STALL_MODEL: bits(idr0, 24, 2),
      ST_LEVEL: bits(idr0, 27, 2),
      Hyp: bits(idr0, 9),
    }).toEqual({
      S2P: 0,
      S1P: 1,
      TTF: 0b10,
      COHACC: 1,
      ASID16: 1,
      MSI: 0,
      ATS: 0,
      PRI: 0,
      CD2L: 1,
      STALL_MODEL: 1,
      ST_LEVEL: 1,
      Hyp: 0,
    });
    expect([bits(r(SMMU_IDR1), 0, 6), bits(r(SMMU_IDR1), 6, 5)]).toEqual([16, 20]);
    expect(bits(r(SMMU_IDR3), 10)).toBe(1);
    const idr5 = r(SMMU_IDR5);
    expect([bits(idr5, 0, 3), bits(idr5, 4), bits(idr5, 5), bits(idr5, 6)]).toEqual([2, 1, 0, 1]);
    expect(r(SMMU_AIDR)).toBe(2);
  });

  it('CR0ACK follows CR0; guarded registers ignore writes while enabled; 64-bit registers by halves; Page 0 aliases', () => {
    const { smmu, drv } = vsmmuRig();
    drv.bringUp();
    expect(drv.read(SMMU_CR0ACK)).toBe(CR0_SMMUEN | CR0_CMDQEN | CR0_EVENTQEN);
    const base = drv.read(SMMU_STRTAB_BASE, 8);
    expect(base).toBe(drv.strtab);
    drv.write(SMMU_STRTAB_BASE, 0x5000_0000, 8);
    drv.write(SMMU_STRTAB_BASE_CFG, 3);
    expect([drv.read(SMMU_STRTAB_BASE, 8), drv.read(SMMU_STRTAB_BASE_CFG)]).toEqual([base, 8]);
    drv.write(SMMU_CR0, 0);
    expect(drv.read(SMMU_CR0ACK)).toBe(0);
    // Halves of a 64-bit register; byte accesses are RAZ/WI.
    drv.write(SMMU_STRTAB_BASE, 0x4010_0000);
    drv.write(SMMU_STRTAB_BASE + 4, 0x1);
    expect([drv.read(SMMU_STRTAB_BASE), drv.read(SMMU_STRTAB_BASE + 4)]).toEqual([0x4010_0000, 1]);
    expect(drv.read(SMMU_STRTAB_BASE, 8)).toBe(0x1_4010_0000);
    drv.write(SMMU_STRTAB_BASE_CFG, 0xff, 1);
    expect(drv.read(SMMU_STRTAB_BASE_CFG, 1)).toBe(0);
    // EVENTQ_PROD is writable while EVENTQEN = 0; the Page 0 aliases read the same registers.
    drv.write(SMMU_EVENTQ_PROD_ALIAS, 3);
    drv.write(SMMU_EVENTQ_CONS_ALIAS, 3);
    expect([drv.read(SMMU_EVENTQ_PROD), drv.read(0x100ac)]).toEqual([3, 3]);
    // GBPA updates complete at once (Update reads 0); a write without Update is ignored.
    drv.write(SMMU_GBPA, GBPA_ABORT);
    expect(drv.read(SMMU_GBPA)).toBe(0);
    drv.write(SMMU_GBPA, GBPA_UPDATE | GBPA_ABORT);
    expect(drv.read(SMMU_GBPA)).toBe(GBPA_ABORT);
    expect(smmu.stats.mmioIgnored).toBeGreaterThanOrEqual(4);
  });
});

describe('CFGI_STE → SET_PASID_TABLE', () => {
  it('registering a context while SMMUEN = 0 sends GBPA: bypass, then ABORT on a GBPA.ABORT update, then the STE on enable', () => {
    const t = assigned({ enable: false });
    expect(t.ctx.drain()).toEqual([BYPASS]);
    t.drv.write(SMMU_GBPA, GBPA_UPDATE | GBPA_ABORT);
    expect(t.ctx.drain()).toEqual([ABORT]);
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    expect(t.ctx.drain()).toEqual([BYPASS]);
    expect(t.smmu.log.map((e) => [e.op, e.cause, e.sid])).toEqual([
      ['SET_PASID_TABLE', 'set_iommu_context', SID],
      ['SET_PASID_TABLE', 'SMMU_GBPA', SID],
      ['SET_PASID_TABLE', 'SMMU_CR0', SID],
    ]);
  });

  it('a stage-1 STE → TRANSLATE with base_ptr = S1ContextPtr, pasid_bits = S1CDMax, s1fmt, s1dss; bypass; abort; V = 0', () => {
    const t = assigned();
    expect(t.ctx.drain()).toEqual([ABORT]); // STE all zero: V = 0
    const cds = cdTable(t, 1, 8);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 8, s1Fmt: 1, s1Dss: S1DSS_SSID0 });
    expect(t.drv.submit(cmdCfgiSte(SID), cmdSync())).toBe(2);
    expect(t.ctx.drain()).toEqual([
      set(IOMMU_PASID_CONFIG_TRANSLATE, { base: cds.ptr, bits: 8, fmt: 1, dss: S1DSS_SSID0 }),
    ]);
    expect(t.smmu.hostState(t.bus, DEVFN)).toBe('translate');
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.submit(cmdCfgiSte(SID));
    t.drv.writeSte(SID, { config: 'abort' });
    t.drv.submit(cmdCfgiSte(SID));
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.submit(cmdCfgiSte(SID));
    t.drv.writeSte(SID, { config: 'bypass', valid: false });
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.ctx.drain()).toEqual([BYPASS, ABORT, BYPASS, ABORT]);
    // No event for any of these; the stats count commands and host calls.
    expect(t.drv.events()).toEqual([]);
    expect(t.smmu.stats).toMatchObject({
      cfgiSte: 5,
      syncs: 1,
      setPasidTable: 6,
      hostErrors: 0,
      eventsInjected: 0,
    });
  });

  it('an ILLEGAL STE → C_BAD_STE in the event queue, the event IRQ, and the host set to ABORT', () => {
    const t = assigned();
    const cds = cdTable(t);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr });
    t.drv.submit(cmdCfgiSte(SID));
    t.ctx.drain();
    const bad = encodeSte({ config: 's1', s1ContextPtr: cds.ptr });
    setField(bad, STE_1_S1STALLD, 1);
    t.drv.writeSte(SID, bad);
    t.irqs.length = 0;
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.ctx.drain()).toEqual([ABORT]);
    expect(t.drv.events().map((e) => [e.name, e.streamId, e.substreamId])).toEqual([['C_BAD_STE', SID, -1]]);
    expect(t.irqs).toEqual([
      [VIRT_SMMU_IRQ_EVENTQ, true],
      [VIRT_SMMU_IRQ_EVENTQ, false],
    ]);
    // Stage 2 is not advertised: a nested STE is ILLEGAL too.
    t.drv.writeSte(SID, { config: 'nested', s1ContextPtr: cds.ptr, s2Ttb: 0x4000_0000 });
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.drv.events().map((e) => e.id)).toEqual([C_BAD_STE]);
    expect(t.ctx.drain()).toEqual([]); // already ABORT
  });

  it('TRANSLATE → another TRANSLATE goes through ABORT; an unchanged TRANSLATE only invalidates the CDs', () => {
    const t = assigned();
    const a = cdTable(t);
    const b = cdTable(t);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: a.ptr });
    t.drv.submit(cmdCfgiSte(SID));
    t.ctx.drain();
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: b.ptr });
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.ctx.drain()).toEqual([ABORT, set(IOMMU_PASID_CONFIG_TRANSLATE, { base: b.ptr })]);
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.ctx.drain()).toEqual([
      {
        op: 'inval',
        info: {
          argsz: 56,
          version: 1,
          cache: IOMMU_CACHE_INV_TYPE_PASID,
          granularity: IOMMU_INV_GRANU_DOMAIN,
        },
      },
    ]);
    expect(t.smmu.stats.hostErrors).toBe(0);
  });

  it('CFGI_STE_RANGE and CFGI_ALL reach the StreamIDs they cover; the StreamID follows the guest bus number', () => {
    const t = assigned();
    t.ctx.drain();
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.submit(cmdCfgiSteRange(0x40, 4)); // 0x40..0x5f: not the device
    expect(t.ctx.drain()).toEqual([]);
    t.drv.submit(cmdCfgiSteRange(0x21, 1)); // 0x20..0x23
    expect(t.ctx.drain()).toEqual([BYPASS]);
    // The guest renumbers the bus: the device is now StreamID 0x120.
    t.bus.number = 1;
    t.drv.writeSte(0x120, { config: 'abort' });
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.ctx.drain()).toEqual([]);
    t.drv.submit(cmdCfgiAll());
    // LOG2SIZE 8 (256 StreamIDs): 0x120 is beyond the linear table → C_BAD_STREAMID and ABORT.
    expect(t.ctx.drain()).toEqual([ABORT]);
    expect(t.drv.events().map((e) => [e.id, e.streamId])).toEqual([[C_BAD_STREAMID, 0x120]]);
  });

  it('a 2-level stream table: the STE through its L1STD; Span 0 aborts silently; an L1STD outside RAM is F_STE_FETCH', () => {
    const t = assigned({ layout: { fmt: '2lvl', log2Size: 16, split: 8 } });
    expect(t.ctx.drain()).toEqual([ABORT]); // Span 0
    const sid = 0x320 + 0; // bus 3, devfn 0x20
    t.bus.number = 3;
    const cds = cdTable(t, 2, 12);
    t.drv.writeSte(sid, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 12, s1Fmt: 2, s1Dss: S1DSS_BYPASS });
    t.drv.submit(cmdCfgiSte(sid));
    expect(t.ctx.drain()).toEqual([
      set(IOMMU_PASID_CONFIG_TRANSLATE, { base: cds.ptr, bits: 12, fmt: 2, dss: S1DSS_BYPASS }),
    ]);
    expect(t.drv.events()).toEqual([]);
    // The guest points its stream table outside RAM (SMMUEN off and on again).
    t.drv.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN);
    t.drv.write(SMMU_STRTAB_BASE, 0x1000_0000, 8);
    t.drv.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    expect(t.ctx.drain()).toEqual([BYPASS, ABORT]);
    const ev = t.drv.events();
    expect(ev.map((e) => [e.id, e.streamId, e.fetchAddr])).toEqual([[F_STE_FETCH, sid, 0x1000_0000 + 8 * 3]]);
  });
});

describe('CFGI_CD and TLBI → CACHE_INVALIDATE', () => {
  function translating() {
    const t = assigned();
    const cds = cdTable(t, 0, 4);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 4, s1Dss: S1DSS_SSID0 });
    t.drv.submit(cmdCfgiSte(SID));
    t.ctx.drain();
    return t;
  }
  const inv = (info: Record<string, unknown>): HostCall => ({
    op: 'inval',
    info: { argsz: 56, version: 1, ...info },
  });

  it('CFGI_CD(sid, ssid) → PASID cache by PASID; CFGI_CD_ALL → PASID cache, DOMAIN; other StreamIDs → nothing', () => {
    const t = translating();
    t.drv.submit(cmdCfgiCd(SID, 7), cmdCfgiCdAll(SID), cmdCfgiCd(SID + 1, 7), cmdSync());
    expect(t.ctx.drain()).toEqual([
      inv({
        cache: IOMMU_CACHE_INV_TYPE_PASID,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: 7n } },
      }),
      inv({ cache: IOMMU_CACHE_INV_TYPE_PASID, granularity: IOMMU_INV_GRANU_DOMAIN }),
    ]);
    expect(t.smmu.stats.cfgiCd).toBe(3);
    // Not forwarded while the host does not run the guest's tables.
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.submit(cmdCfgiSte(SID));
    t.ctx.drain();
    t.drv.submit(cmdCfgiCd(SID, 7));
    expect(t.ctx.drain()).toEqual([]);
  });

  it('TLBI_NH_ASID → IOTLB by PASID with ARCHID; TLBI_NH_ALL and NSNH_ALL → DOMAIN; TLBI_NH_VAA → ADDR without ARCHID', () => {
    const t = translating();
    t.drv.submit(
      cmdTlbiNhAsid(0, 0x1234),
      cmdTlbiNhAll(0),
      cmdTlbiNhVaa(0, 0x7000, { granule: 12, num: 3 }),
      cmdTlbiNsnhAll(),
    );
    expect(t.ctx.drain()).toEqual([
      inv({
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_ARCHID, archid: 0x1234, pasid: 0n } },
      }),
      inv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }),
      inv({
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: {
          addr_info: {
            flags: 0,
            archid: 0,
            pasid: 0n,
            addr: 0x7000n,
            granule_size: 0x1000n,
            nb_granules: 4n,
          },
        },
      }),
      inv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }),
    ]);
    expect(t.smmu.stats.tlbi).toBe(4);
    // Stage-2 and EL2 TLBIs are illegal on a stage-1-only SMMU without Hyp.
    expect(t.drv.submit(cmdTlbiS12Vmall(0)) >>> 24).toBe(CERROR_ILL);
  });

  it('TLBI_NH_VA: a range with a TTL hint keeps LEAF at the leaf size; without a hint LEAF is dropped; the plain form goes per granule', () => {
    const t = translating();
    const addr = (a: bigint, gs: bigint, nb: bigint, flags: number) =>
      inv({
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: { addr_info: { flags, archid: 9, pasid: 0n, addr: a, granule_size: gs, nb_granules: nb } },
      });
    t.drv.submit(
      // 4K granule, level-2 leaves (2 MiB blocks): 1024 pages = 2 blocks.
      cmdTlbiNhVa(0, 9, 0x4000_0000, { leaf: true, granule: 12, num: 0, scale: 10, ttl: 2 }),
      // 64K granule, NUM = 4 (5 pages), no TTL: LEAF dropped.
      cmdTlbiNhVa(0, 9, 0x5_0000, { leaf: true, granule: 16, num: 4, scale: 0 }),
      // Plain form: one page of whichever granule, VA aligned down per granule.
      cmdTlbiNhVa(0, 9, 0x12_3000, { leaf: true }),
    );
    const A = IOMMU_INV_ADDR_FLAGS_ARCHID;
    expect(t.ctx.drain()).toEqual([
      addr(0x4000_0000n, 0x20_0000n, 2n, A | IOMMU_INV_ADDR_FLAGS_LEAF),
      addr(0x5_0000n, 0x1_0000n, 5n, A),
      addr(0x12_3000n, 0x1000n, 1n, A),
      addr(0x12_0000n, 0x1_0000n, 1n, A),
    ]);
  });

  it('TLBIs go to every registered context once; a context shared by two functions gets one copy', () => {
    const t = assigned();
    const shared = new FakeHostContext('shared');
    expect(t.smmu.ops.set_iommu_context?.(t.bus, t.smmu, 0x28, shared)).toBe(0);
    expect(t.smmu.ops.set_iommu_context?.(t.bus, t.smmu, 0x30, shared)).toBe(0);
    expect(t.smmu.ops.set_iommu_context?.(t.bus, t.smmu, 0x30, new FakeHostContext())).toBe(-17);
    t.ctx.drain();
    shared.drain();
    t.drv.submit(cmdTlbiNhAsid(0, 5));
    expect([t.ctx.drain().length, shared.drain().length]).toEqual([1, 1]);
    // unset_iommu_context sends UNSET and forgets the function.
    t.smmu.ops.unset_iommu_context?.(t.bus, t.smmu, DEVFN);
    expect(t.ctx.drain()).toEqual([{ op: 'unset' }]);
    t.drv.submit(cmdTlbiNhAsid(0, 5));
    expect([t.ctx.drain().length, shared.drain().length]).toEqual([0, 1]);
  });
});

describe('command queue', () => {
  it('CMD_SYNC with CS = SIG_IRQ pulses the CMD_SYNC line after CONS passes it; PREFETCH is accepted and ignored', () => {
    const t = assigned();
    t.irqs.length = 0;
    expect(t.drv.submit(cmdPrefetchConfig(SID), cmdSync({ cs: CMD_SYNC_CS_IRQ }))).toBe(2);
    expect(t.irqs).toEqual([
      [VIRT_SMMU_IRQ_CMD_SYNC, true],
      [VIRT_SMMU_IRQ_CMD_SYNC, false],
    ]);
    expect(t.smmu.stats.byCommand).toMatchObject({ CMD_PREFETCH_CONFIG: 1, CMD_SYNC: 1 });
  });

  it('an illegal command: CERROR_ILL in CMDQ_CONS.ERR, GERROR.CMDQ_ERR, the GERROR IRQ; consumption stops there until GERRORN', () => {
    const t = assigned();
    t.drv.writeSte(SID, { config: 'bypass' });
    t.ctx.drain();
    t.irqs.length = 0;
    const cons = t.drv.submit(cmdSync(), cmdRaw(0x7f), cmdCfgiSte(SID));
    expect(cons).toBe((CERROR_ILL << 24) | 1);
    expect(t.drv.read(SMMU_GERROR) & GERROR_CMDQ_ERR).toBe(GERROR_CMDQ_ERR);
    expect(t.irqs).toEqual([
      [VIRT_SMMU_IRQ_GERROR, true],
      [VIRT_SMMU_IRQ_GERROR, false],
    ]);
    expect(t.ctx.drain()).toEqual([]);
    // The guest replaces the bad command with a CMD_SYNC and acknowledges: consumption resumes.
    writeWords(t.rig.port, t.drv.cmdq + 16, cmdSync());
    t.drv.write(SMMU_GERRORN, t.drv.read(SMMU_GERROR));
    expect(t.drv.read(SMMU_CMDQ_CONS) & 0xff).toBe(3);
    expect(t.ctx.drain()).toEqual([BYPASS]);
    expect(t.smmu.stats).toMatchObject({ commandErrors: 1, gerrors: 1 });
  });

  it('host refusals: SET_PASID_TABLE → C_BAD_STE and ABORT; CACHE_INVALIDATE → CERROR_ILL; nothing throws', () => {
    const t = assigned();
    const cds = cdTable(t);
    t.ctx.drain();
    t.ctx.refuseSet = 1;
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr });
    expect(() => t.drv.submit(cmdCfgiSte(SID))).not.toThrow();
    expect(t.ctx.drain()).toEqual([set(IOMMU_PASID_CONFIG_TRANSLATE, { base: cds.ptr }), ABORT]);
    expect(t.drv.events().map((e) => [e.id, e.streamId])).toEqual([[C_BAD_STE, SID]]);
    expect(t.smmu.log.at(-2)).toMatchObject({ op: 'SET_PASID_TABLE', cause: 'CMD_CFGI_STE', result: -22 });
    // Retried by the guest: accepted now.
    t.drv.submit(cmdCfgiSte(SID));
    expect(t.smmu.hostState(t.bus, DEVFN)).toBe('translate');
    t.ctx.drain();
    t.ctx.refuseInval = 'always';
    const cons = t.drv.submit(cmdTlbiNhAsid(0, 1), cmdSync());
    expect(cons).toBe((CERROR_ILL << 24) | 2);
    expect(t.smmu.stats.hostErrors).toBe(2);
    // Even the host refusing ABORT leaves the VMM running (state unknown → resent next time).
    t.ctx.refuseSet = 'always';
    t.ctx.refuseInval = 0;
    t.drv.write(SMMU_GERRORN, t.drv.read(SMMU_GERROR));
    t.drv.writeSte(SID, { config: 'bypass' });
    expect(() => t.drv.submit(cmdCfgiSte(SID))).not.toThrow();
    expect(t.smmu.hostState(t.bus, DEVFN)).toBe('unknown');
  });
});

describe('inject_faults → guest events', () => {
  const RW = IOMMU_FAULT_UNRECOV_ADDR_VALID | IOMMU_FAULT_UNRECOV_PASID_VALID;

  it('each reason becomes the guest event, with StreamID, SubstreamID, address and access type; PROD advances; the IRQ fires', () => {
    const t = assigned();
    const cds = cdTable(t, 0, 4);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 4, s1Dss: S1DSS_SSID0 });
    t.drv.submit(cmdCfgiSte(SID));
    t.drv.events();
    t.irqs.length = 0;
    const faults = [
      fault({
        reason: IOMMU_FAULT_REASON_PTE_FETCH,
        flags: RW,
        pasid: 5,
        perm: IOMMU_FAULT_PERM_WRITE,
        addr: 0x80_0000n,
      }),
      fault({
        reason: IOMMU_FAULT_REASON_OOR_ADDRESS,
        flags: IOMMU_FAULT_UNRECOV_ADDR_VALID,
        perm: IOMMU_FAULT_PERM_READ,
        addr: 0x1_0000_0000_0000n,
      }),
      fault({
        reason: IOMMU_FAULT_REASON_ACCESS,
        flags: RW,
        pasid: 1,
        perm: IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_EXEC,
        addr: 0x1000n,
      }),
      fault({
        reason: IOMMU_FAULT_REASON_PERMISSION,
        flags: RW,
        pasid: 2,
        perm: IOMMU_FAULT_PERM_WRITE | IOMMU_FAULT_PERM_PRIV,
        addr: 0x2000n,
      }),
      fault({ reason: IOMMU_FAULT_REASON_PASID_INVALID, flags: IOMMU_FAULT_UNRECOV_PASID_VALID, pasid: 99 }),
      fault({
        reason: IOMMU_FAULT_REASON_PASID_FETCH,
        flags: IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID | IOMMU_FAULT_UNRECOV_PASID_VALID,
        pasid: 3,
        fetch_addr: 0x8_1234_0000n,
      }),
      fault({ reason: IOMMU_FAULT_REASON_BAD_PASID_ENTRY, flags: IOMMU_FAULT_UNRECOV_PASID_VALID, pasid: 4 }),
      fault({
        reason: IOMMU_FAULT_REASON_WALK_EABT,
        flags: RW | IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
        pasid: 5,
        perm: IOMMU_FAULT_PERM_READ,
        addr: 0x3000n,
        fetch_addr: 0x9_0000_0000n,
      }),
    ];
    const prodBefore = t.drv.read(SMMU_EVENTQ_PROD);
    expect(t.smmu.ops.inject_faults?.(t.bus, t.smmu, DEVFN, faults)).toBe(0);
    expect(t.drv.read(SMMU_EVENTQ_PROD)).toBe(prodBefore + 8);
    expect(t.irqs).toEqual([
      [VIRT_SMMU_IRQ_EVENTQ, true],
      [VIRT_SMMU_IRQ_EVENTQ, false],
    ]);
    const ev = t.drv.events();
    const pick = (e: (typeof ev)[number]) => ({
      id: e.id,
      sid: e.streamId,
      ssid: e.substreamId,
      rnw: e.rnw,
      ind: e.ind,
      pnu: e.pnu,
      in: e.inputHi * 2 ** 32 + e.inputLo,
      fetch: e.fetchAddr,
      cls: e.cls,
    });
    const none = { rnw: false, ind: false, pnu: false, in: 0, fetch: 0, cls: 0 };
    expect(ev.map(pick)).toEqual([
      { ...none, id: F_TRANSLATION, sid: SID, ssid: 5, in: 0x80_0000, cls: EVT_CLASS_IN },
      { ...none, id: F_ADDR_SIZE, sid: SID, ssid: -1, rnw: true, in: 0x1_0000_0000_0000, cls: EVT_CLASS_IN },
      { ...none, id: F_ACCESS, sid: SID, ssid: 1, rnw: true, ind: true, in: 0x1000, cls: EVT_CLASS_IN },
      { ...none, id: F_PERMISSION, sid: SID, ssid: 2, pnu: true, in: 0x2000, cls: EVT_CLASS_IN },
      { ...none, id: C_BAD_SUBSTREAMID, sid: SID, ssid: 99 },
      // The host's physical fetch address is replaced by the guest CD's IPA.
      { ...none, id: F_CD_FETCH, sid: SID, ssid: 3, fetch: cds.cdAddr(3) },
      { ...none, id: C_BAD_CD, sid: SID, ssid: 4 },
      { ...none, id: F_WALK_EABT, sid: SID, ssid: 5, rnw: true, in: 0x3000, cls: EVT_CLASS_TT },
    ]);
    // The exact bytes of the first record in guest RAM.
    const rec = t.rig.port.read(t.drv.eventq + 32 * (prodBefore & 15), 32)!;
    const w = new Uint32Array(rec.buffer.slice(rec.byteOffset, rec.byteOffset + 32));
    expect([...w]).toEqual([F_TRANSLATION | (1 << 11) | (5 << 12), SID, 0, 2 << 8, 0x80_0000, 0, 0, 0]);
    expect(t.smmu.stats).toMatchObject({ faultsReceived: 8, eventsInjected: 8, eventsDropped: 0 });
  });

  it('a stage-2 fault on a guest structure fetch: at the CD → F_CD_FETCH, elsewhere → F_WALK_EABT with that IPA', () => {
    const t = assigned();
    const cds = cdTable(t, 1, 8);
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 8, s1Fmt: 1, s1Dss: S1DSS_SSID0 });
    t.drv.submit(cmdCfgiSte(SID));
    // L1CD of PASID 70 points outside guest RAM.
    writeWords(t.rig.port, cds.l1Addr(1), new Uint32Array([0x7000_0001, 0]));
    const cd70 = 0x7000_0000 + 64 * (70 % 64);
    const s2 =
      IOMMU_FAULT_UNRECOV_ADDR_VALID | IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID | IOMMU_FAULT_UNRECOV_PASID_VALID;
    t.smmu.ops.inject_faults?.(t.bus, t.smmu, DEVFN, [
      fault({
        reason: IOMMU_FAULT_REASON_PTE_FETCH,
        flags: s2,
        pasid: 70,
        perm: IOMMU_FAULT_PERM_WRITE,
        addr: 0x40_0000n,
        fetch_addr: BigInt(cd70),
      }),
      fault({
        reason: IOMMU_FAULT_REASON_PTE_FETCH,
        flags: s2,
        pasid: 5,
        perm: IOMMU_FAULT_PERM_READ,
        addr: 0x40_0000n,
        fetch_addr: 0x6000_0008n,
      }),
      fault({ reason: IOMMU_FAULT_REASON_UNKNOWN, flags: 0 }),
    ]);
    const ev = t.drv.events();
    expect(ev.map((e) => [e.id, e.substreamId, e.fetchAddr, e.rnw, e.cls])).toEqual([
      [F_CD_FETCH, 70, cd70, false, 0],
      [F_WALK_EABT, 5, 0x6000_0008, true, EVT_CLASS_TT],
    ]);
    expect(t.smmu.stats).toMatchObject({ eventsInjected: 2, eventsDropped: 1 });
  });

  it('a full queue sets EVENTQ_PROD.OVFLG once and drops the rest; a disabled queue drops and counts', () => {
    const t = assigned();
    t.drv.events();
    const many = Array.from({ length: 20 }, (_, i) =>
      fault({
        reason: IOMMU_FAULT_REASON_PTE_FETCH,
        flags: IOMMU_FAULT_UNRECOV_ADDR_VALID,
        addr: BigInt(0x1000 * i),
      }),
    );
    t.smmu.ops.inject_faults?.(t.bus, t.smmu, DEVFN, many);
    const prod = t.drv.read(SMMU_EVENTQ_PROD);
    expect((prod & Q_OVFLG) >>> 0).toBe(Q_OVFLG);
    expect(prod & 0x1f).toBe(16); // 16 records: the queue wrapped once
    expect(t.smmu.stats).toMatchObject({ eventsInjected: 16, eventsDropped: 4 });
    const ev = t.drv.events();
    expect(ev.map((e) => e.inputLo)).toEqual(Array.from({ length: 16 }, (_, i) => 0x1000 * i));
    t.drv.write(SMMU_CR0, CR0_CMDQEN | CR0_SMMUEN);
    t.smmu.ops.inject_faults?.(t.bus, t.smmu, DEVFN, many.slice(0, 2));
    expect(t.smmu.stats).toMatchObject({ eventsInjected: 16, eventsDropped: 6 });
  });
});

describe('get_address_space: MSI doorbell translation in software', () => {
  it('bypass and SMMUEN = 0 are identity (GBPA.ABORT fails); stage 1 walks the guest CD 0; unmapped fails', () => {
    const t = assigned({ enable: false });
    const as = t.smmu.ops.get_address_space(t.bus, t.smmu, DEVFN);
    expect(t.smmu.ops.get_address_space(t.bus, t.smmu, DEVFN)).toBe(as);
    expect(as.translate(0x0802_0040, true)).toEqual({ ok: true, addr: 0x0802_0040, pageSize: 0x1000 });
    t.drv.write(SMMU_GBPA, GBPA_UPDATE | GBPA_ABORT);
    expect(as.translate(0x0802_0040, true).ok).toBe(false);
    t.drv.writeSte(SID, { config: 'bypass' });
    t.drv.write(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    expect(as.translate(0x0802_0040, true)).toEqual({ ok: true, addr: 0x0802_0040, pageSize: 0x1000 });
    // The guest maps its doorbell IOVA 0x800_0000 → the GICv2m frame in CD 0's tables.
    const pt = PageTable.create(t.rig.alloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 40 });
    if (!pt.ok) throw new Error(pt.detail);
    expect(pt.table.map(0x800_0000, VIRT_GIC_V2M, 0x1000, { read: true, write: true, user: true }).ok).toBe(
      true,
    );
    const cds = cdTable(t, 0, 2);
    cds.write(0, { asid: 1, ttb0: pt.table.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 2, s1Dss: S1DSS_SSID0 });
    expect(as.translate(0x800_0040, true)).toEqual({ ok: true, addr: VIRT_GIC_V2M + 0x40, pageSize: 0x1000 });
    const miss = as.translate(0x900_0000, true);
    expect(miss.ok).toBe(false);
    // S1DSS = bypass: non-PASID traffic is identity; terminate: fails.
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 2, s1Dss: S1DSS_BYPASS });
    expect(as.translate(0x800_0040, true)).toMatchObject({ ok: true, addr: 0x800_0040 });
    t.drv.writeSte(SID, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 2, s1Dss: 0 });
    expect(as.translate(0x800_0040, true).ok).toBe(false);
    expect(t.smmu.stats.translations).toBe(7);
  });
});

/**
 * The host put together (issue 3, "Done when"): the SMMUv3 model driven by the arm-smmu-v3
 * driver, registered with the iommu core, devices added through the core. A device's DMA through
 * a domain the driver set up lands where `map` put it; an unmapped IOVA becomes an `iommu_fault`
 * record at the device's registered handler; the PASID-table uAPI, entered with a user buffer,
 * produces the nested STE §1.3 describes for TRANSLATE, BYPASS and ABORT, and DMA with a PASID
 * then walks the guest's stage 1 and the host's stage 2. Finally, a fault handler that signals
 * an eventfd wakes a process blocked reading it — the path VFIO's fault reporting will take.
 */

import { describe, expect, it } from 'vitest';
import { getField } from '../arch/fields.ts';
import { F_TRANSLATION } from '../arch/smmuv3/events.ts';
import { CR0_SMMUEN, SMMU_CR0, SMMU_STRTAB_BASE_CFG } from '../arch/smmuv3/registers.ts';
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
  STE_2_S2PS,
  STE_2_S2R,
  STE_2_S2SL0,
  STE_2_S2T0SZ,
  STE_2_S2TG,
  STE_2_S2VMID,
  STE_3_S2TTB,
} from '../arch/smmuv3/ste.ts';
import { ACCESS_READ, ACCESS_WRITE, type Access, PS_BITS } from '../arch/vmsa.ts';
import { OffsetMemory } from '../hw/memory-view.ts';
import { PageAllocator } from '../hw/page-alloc.ts';
import { CdTable } from '../hw/smmuv3/rig.ts';
import { type DmaResult, TXN_ABORT, TXN_OK } from '../hw/smmuv3/smmu.ts';
import { PageTable } from '../hw/vmsa/pgtable.ts';
import { EBUSY, EFAULT, EINVAL, ENODEV } from '../uapi/errno.ts';
import { EFD_SEMAPHORE } from '../uapi/eventfd.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  iommu_cache_invalidate_info,
  iommu_pasid_table_config,
} from '../uapi/iommu.ts';
import { eventfdCtxOfFile } from './eventfd.ts';
import { Host, type HostOptions } from './host.ts';
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDevice,
  type IommuFault,
} from './iommu/types.ts';
import { Pending } from './kernel/sched.ts';
import type { ArmSmmuV3Domain } from './smmuv3/domain.ts';
import { UserPtr } from './uaccess.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;

function device(name: string, sid: number, pasidBits = 0, isolationKey?: string): IommuDevice {
  return {
    name,
    bus: 'pci',
    iommuName: 'smmu0',
    ids: [sid],
    pasidBits,
    ...(isolationKey !== undefined ? { isolationKey } : {}),
  };
}

function boot(opts: HostOptions = {}): Host {
  return new Host({ ramSize: 0x1000_0000, ...opts });
}

/** The device's DMA, as it reaches the SMMU. */
function dma(h: Host, sid: number, iova: number, access: Access, ssid = -1, size = 8): DmaResult {
  return h.smmu().hw.transact({ streamId: sid, substreamId: ssid, iova, size, access, privileged: false });
}

function steOf(h: Host, sid: number): Uint32Array {
  const w = h.smmu().driver.steWords(sid);
  if (w === undefined) throw new Error(`no STE for ${sid}`);
  return w;
}

describe('boot', () => {
  it('probes and enables the SMMU, registers it with the core, and starts the kernel', () => {
    const h = boot();
    const { hw } = h.smmu();
    expect(hw.read32(SMMU_CR0) & CR0_SMMUEN).toBe(CR0_SMMUEN);
    // 16-bit StreamIDs: a 2-level stream table (FMT = 1) with SPLIT 8.
    const cfg = hw.read32(SMMU_STRTAB_BASE_CFG);
    expect([(cfg >>> 16) & 3, (cfg >>> 6) & 0x1f, cfg & 0x3f]).toEqual([1, 8, 16]);
    expect(h.iommu.iommuInstances()).toEqual(['smmu0']);
    expect(h.kernel.spawn('init').pid).toBe(1);
    expect(h.ioasid.allocated).toBe(0);
  });

  it('a configuration the driver refuses stops the boot with the reason', () => {
    expect(() => boot({ smmus: [{ name: 'smmu0', features: { cmdqLog2Max: 0 } }] })).toThrow(/probe failed/);
  });

  it('adding a device groups it and attaches a DMA default domain; unknown IOMMU is ENODEV', () => {
    const h = boot();
    const dev = device('nic', 0x100);
    expect(h.addDevice(dev)).toBe(0);
    const g = h.iommu.iommuGroupGet(dev)!;
    expect(g.defaultDomain?.type).toBe(IOMMU_DOMAIN_DMA);
    expect(g.domain).toBe(g.defaultDomain);
    // The STE now translates (stage 1, Config 0b101).
    expect(getField(steOf(h, 0x100), STE_0_CFG)).toBe(0b101);
    expect(h.addDevice({ ...device('other', 0x101), iommuName: 'smmu9' })).toBe(-ENODEV);
  });
});

describe('DMA through a domain the driver set up (Done when)', () => {
  it('DMA-API mappings: the device reaches exactly the pages map put it on', () => {
    const h = boot();
    const dev = device('nic', 0x100);
    h.addDevice(dev);
    const buf = h.memory.alloc.alloc(3 * SZ_4K, 12)!;
    const iova = h.iommu.iommuDmaMap(dev, buf + 0x10, 3 * SZ_4K - 0x10, RW);
    expect(iova).toBeGreaterThan(0);
    expect(iova % SZ_4K).toBe(0x10);
    for (const off of [0, 0xff0, 0x1ff0, 0x2fe0]) {
      const r = dma(h, 0x100, iova + off, ACCESS_WRITE);
      expect(r.status).toBe(TXN_OK);
      expect(r.firstPa).toBe(buf + 0x10 + off);
    }
  });

  it('an unmanaged domain (as VFIO uses): iommu_map places pages and blocks; DMA lands there', () => {
    const h = boot();
    const dev = device('vf', 0x200);
    h.addDevice(dev);
    const d = h.iommu.iommuDomainAlloc('smmu0', IOMMU_DOMAIN_UNMANAGED)!;
    expect(h.iommu.iommuAttachDevice(d, dev)).toBe(0);
    const pa4k = h.memory.alloc.alloc(SZ_4K, 12)!;
    const pa2m = h.memory.alloc.alloc(SZ_2M, 21)!;
    expect(h.iommu.iommuMap(d, 0x1_0000_0000, pa4k, SZ_4K, RW)).toBe(0);
    expect(h.iommu.iommuMap(d, 0x2_0000_0000, pa2m, SZ_2M, IOMMU_READ)).toBe(0);
    expect(dma(h, 0x200, 0x1_0000_0abc, ACCESS_WRITE).firstPa).toBe(pa4k + 0xabc);
    expect(dma(h, 0x200, 0x2_001f_f000, ACCESS_READ).firstPa).toBe(pa2m + 0x1f_f000);
    expect(h.iommu.iommuIovaToPhys(d, 0x2_0012_3456)).toBe(pa2m + 0x12_3456);
  });

  it('an unmapped IOVA gives an iommu_fault record to the registered handler', () => {
    const h = boot();
    const dev = device('vf', 0x200);
    h.addDevice(dev);
    const d = h.iommu.iommuDomainAlloc('smmu0', IOMMU_DOMAIN_UNMANAGED)!;
    h.iommu.iommuAttachDevice(d, dev);
    const faults: IommuFault[] = [];
    expect(
      h.iommu.iommuRegisterDeviceFaultHandler(
        dev,
        (f) => {
          faults.push(f);
          return 0;
        },
        null,
      ),
    ).toBe(0);
    expect(h.iommu.iommuRegisterDeviceFaultHandler(dev, () => 0, null)).toBe(-EBUSY);
    const pa = h.memory.alloc.alloc(SZ_4K, 12)!;
    h.iommu.iommuMap(d, 0x4000_0000, pa, SZ_4K, RW);
    // Mapped, then unmapped: the stale translation must not survive either.
    expect(dma(h, 0x200, 0x4000_0010, ACCESS_READ).status).toBe(TXN_OK);
    expect(h.iommu.iommuUnmap(d, 0x4000_0000, SZ_4K)).toBe(SZ_4K);
    const r = dma(h, 0x200, 0x4000_0010, ACCESS_READ);
    expect(r.status).toBe(TXN_ABORT);
    expect(r.event?.id).toBe(F_TRANSLATION);
    const w = dma(h, 0x200, 0x7000_0000, ACCESS_WRITE);
    expect(w.status).toBe(TXN_ABORT);
    expect(faults).toEqual([
      {
        type: IOMMU_FAULT_DMA_UNRECOV,
        event: {
          reason: IOMMU_FAULT_REASON_PTE_FETCH,
          flags: IOMMU_FAULT_UNRECOV_ADDR_VALID,
          pasid: 0,
          perm: IOMMU_FAULT_PERM_READ,
          addr: 0x4000_0010,
          fetch_addr: 0,
        },
      },
      {
        type: IOMMU_FAULT_DMA_UNRECOV,
        event: {
          reason: IOMMU_FAULT_REASON_PTE_FETCH,
          flags: IOMMU_FAULT_UNRECOV_ADDR_VALID,
          pasid: 0,
          perm: IOMMU_FAULT_PERM_WRITE,
          addr: 0x7000_0000,
          fetch_addr: 0,
        },
      },
    ]);
    expect(h.iommu.iommuDeviceFaultStats(dev)).toEqual({ delivered: 2, dropped: 0 });
  });

  it('a fault handler that signals an eventfd wakes the process blocked reading it', () => {
    const h = boot();
    const dev = device('vf', 0x200);
    h.addDevice(dev);
    const vmm = h.kernel.spawn('vmm');
    const efd = vmm.eventfd2(0, EFD_SEMAPHORE);
    const ctx = eventfdCtxOfFile(vmm.fileOf(efd)!)!;
    h.iommu.iommuRegisterDeviceFaultHandler(
      dev,
      () => {
        ctx.signal(1);
        return 0;
      },
      null,
    );
    const buf = new Uint8Array(8);
    const reader = vmm.read(efd, buf);
    expect(reader).toBeInstanceOf(Pending);
    dma(h, 0x200, 0xdead_0000, ACCESS_WRITE);
    const p = reader as Pending;
    expect([p.state, p.result, buf[0]]).toEqual(['done', 8, 1]);
  });
});

// ----------------------------------------------------------------- nested: the PASID-table uAPI

/** Guest RAM window: IPA [IPA_BASE, +8M) backed by host pages, mapped at stage 2 through the core. */
const IPA_BASE = 0x8000_0000;
const GUEST_SIZE = 0x80_0000;
const SID = 0x300;

function nestedHost(opts: HostOptions = {}) {
  const h = boot(opts);
  const dev = device('vf', SID, 20);
  h.addDevice(dev);
  const d = h.iommu.iommuDomainAlloc('smmu0', IOMMU_DOMAIN_UNMANAGED)! as ArmSmmuV3Domain;
  expect(h.iommu.iommuEnableNesting(d)).toBe(0);
  expect(h.iommu.iommuAttachDevice(d, dev)).toBe(0);
  const paBase = h.memory.alloc.alloc(GUEST_SIZE, 21)!;
  expect(h.iommu.iommuMap(d, IPA_BASE, paBase, GUEST_SIZE, RW)).toBe(0);
  const view = new OffsetMemory(h.memory.mem, IPA_BASE, paBase, GUEST_SIZE);
  const galloc = new PageAllocator(view, IPA_BASE, GUEST_SIZE);
  // The guest's CD table (2-level, 4K leaves, 256 PASIDs) and one process's stage-1 table.
  const cds = new CdTable(view, galloc, 1, 8);
  const s1 = PageTable.create(galloc, { stage: 1, granule: 12, iasBits: 48, oasBits: 40, nonGlobal: true });
  if (!s1.ok) throw new Error(s1.detail);
  const gbuf = galloc.alloc(SZ_4K, 12)!;
  expect(s1.table.map(0x40_0000, gbuf, SZ_4K, { read: true, write: true, user: true }).ok).toBe(true);
  return { h, dev, d, paBase, view, galloc, cds, s1: s1.table, gbuf };
}

/** The user's struct iommu_pasid_table_config, as bytes in its memory. */
function cfgBuf(config: number, basePtr: bigint, pasidBits = 0, s1fmt = 0, s1dss = 0): Uint8Array {
  return iommu_pasid_table_config.encode({
    argsz: 32,
    version: 1,
    base_ptr: basePtr,
    format: IOMMU_PASID_FORMAT_SMMUV3,
    pasid_bits: pasidBits,
    config,
    vendor_data: { smmuv3: { version: 1, s1fmt, s1dss } },
  });
}

/** The stage-2 fields every nested STE carries (§1.3: S2VMID, VTCR fields, S2AA64, S2R, S2TTB). */
function expectS2(ste: Uint32Array, d: ArmSmmuV3Domain): void {
  const t = d.pgtable!;
  expect(getField(ste, STE_2_S2VMID)).toBe(d.s2Cfg.vmid);
  expect(getField(ste, STE_2_S2T0SZ)).toBe(64 - t.geometry.iasBits);
  expect(getField(ste, STE_2_S2TG)).toBe(0);
  expect(getField(ste, STE_2_S2SL0)).toBe(t.sl0);
  expect(getField(ste, STE_2_S2PS)).toBe(PS_BITS.indexOf(t.geometry.oasBits));
  expect(getField(ste, STE_2_S2AA64)).toBe(1);
  expect(getField(ste, STE_2_S2R)).toBe(1);
  expect(getField(ste, STE_3_S2TTB)).toBe(t.root);
}

function attach(n: ReturnType<typeof nestedHost>, cfg: Uint8Array): number {
  return n.h.iommu.iommuUapiAttachPasidTable(n.d, UserPtr.ofBuffer(cfg));
}

describe('iommu_uapi_attach_pasid_table → the nested STE (§1.2, §1.3; Done when)', () => {
  it('before any PASID table the nested domain is stage 2 only (Config 0b110)', () => {
    const n = nestedHost();
    const ste = steOf(n.h, SID);
    expect(getField(ste, STE_0_CFG)).toBe(0b110);
    expectS2(ste, n.d);
    expect(getField(ste, STE_0_S1CTXPTR)).toBe(0);
  });

  it('TRANSLATE: Config 0b111, S1ContextPtr = base_ptr, S1CDMax/S1Fmt/S1DSS from the config, host S1 attributes, S2 fields', () => {
    const n = nestedHost();
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 2))).toBe(0);
    const ste = steOf(n.h, SID);
    expect([getField(ste, STE_0_V), getField(ste, STE_0_CFG)]).toEqual([1, 0b111]);
    expect(getField(ste, STE_0_S1CTXPTR)).toBe(n.cds.ptr);
    expect([getField(ste, STE_0_S1CDMAX), getField(ste, STE_0_S1FMT), getField(ste, STE_1_S1DSS)]).toEqual([
      8, 1, 2,
    ]);
    // Host-chosen stage-1 fetch attributes: WBRA, inner shareable; StreamWorld NS-EL1.
    expect([
      getField(ste, STE_1_S1CIR),
      getField(ste, STE_1_S1COR),
      getField(ste, STE_1_S1CSH),
      getField(ste, STE_1_STRW),
    ]).toEqual([1, 1, 3, 0]);
    expectS2(ste, n.d);
  });

  it('TRANSLATE as posted (asPostedSingleCd): pasid_bits must be 0; S1CDMax 0, S1Fmt 0, S1DSS = SSID0', () => {
    const n = nestedHost({ smmus: [{ name: 'smmu0', driver: { asPostedSingleCd: true } }] });
    const before = steOf(n.h, SID);
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 2))).toBe(-EINVAL);
    expect(steOf(n.h, SID)).toEqual(before);
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 0, 1, 1))).toBe(0);
    const ste = steOf(n.h, SID);
    expect(getField(ste, STE_0_CFG)).toBe(0b111);
    expect([getField(ste, STE_0_S1CDMAX), getField(ste, STE_0_S1FMT), getField(ste, STE_1_S1DSS)]).toEqual([
      0, 0, 2,
    ]);
  });

  it('BYPASS: Config 0b110 with the same stage-2 fields; ABORT: Config 0b000; TRANSLATE→TRANSLATE refused', () => {
    const n = nestedHost();
    const translate = cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 2);
    expect(attach(n, translate)).toBe(0);
    const live = steOf(n.h, SID);
    expect(attach(n, translate)).toBe(-EINVAL);
    expect(steOf(n.h, SID)).toEqual(live);
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_BYPASS, 0n))).toBe(0);
    const bypass = steOf(n.h, SID);
    expect(getField(bypass, STE_0_CFG)).toBe(0b110);
    expectS2(bypass, n.d);
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_ABORT, 0n))).toBe(0);
    const abort = steOf(n.h, SID);
    expect([getField(abort, STE_0_V), getField(abort, STE_0_CFG)]).toEqual([1, 0b000]);
    // Back through BYPASS, TRANSLATE is allowed again; detach returns to stage 2 only.
    expect(attach(n, translate)).toBe(0);
    n.h.iommu.iommuDetachPasidTable(n.d);
    expect(getField(steOf(n.h, SID), STE_0_CFG)).toBe(0b110);
  });

  it('DMA with a PASID walks the guest stage 1 and the host stage 2; BYPASS goes IPA→PA; ABORT aborts', () => {
    const n = nestedHost();
    const asid = 9;
    n.cds.write(5, { asid, ttb0: n.s1.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 0))).toBe(0);
    const r = dma(n.h, SID, 0x40_0123, ACCESS_WRITE, 5);
    expect(r.status).toBe(TXN_OK);
    expect(r.firstPa).toBe(n.paBase + (n.gbuf - IPA_BASE) + 0x123);
    // A PASID whose CD is invalid: C_BAD_CD reaches the handler as BAD_PASID_ENTRY with the PASID.
    const faults: IommuFault[] = [];
    n.h.iommu.iommuRegisterDeviceFaultHandler(
      n.dev,
      (f) => {
        faults.push(f);
        return 0;
      },
      null,
    );
    expect(dma(n.h, SID, 0x40_0000, ACCESS_READ, 6).status).toBe(TXN_ABORT);
    expect(faults).toHaveLength(1);
    const ev = (faults[0] as { event: { flags: number; pasid: number } }).event;
    expect(ev.flags & IOMMU_FAULT_UNRECOV_PASID_VALID).toBe(IOMMU_FAULT_UNRECOV_PASID_VALID);
    expect(ev.pasid).toBe(6);
    // BYPASS: stage 1 off, the address is an IPA.
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_BYPASS, 0n))).toBe(0);
    expect(dma(n.h, SID, IPA_BASE + 0x5000, ACCESS_READ).firstPa).toBe(n.paBase + 0x5000);
    expect(attach(n, cfgBuf(IOMMU_PASID_CONFIG_ABORT, 0n))).toBe(0);
    expect(dma(n.h, SID, IPA_BASE + 0x5000, ACCESS_READ).status).toBe(TXN_ABORT);
  });

  it('a guest unmap followed by the cache-invalidation uAPI: the stale stage-1 translation is gone', () => {
    const n = nestedHost();
    const asid = 9;
    n.cds.write(5, { asid, ttb0: n.s1.root, t0sz: 16, granule0: 12, ipsBits: 40 });
    attach(n, cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 0));
    expect(dma(n.h, SID, 0x40_0000, ACCESS_READ, 5).status).toBe(TXN_OK);
    // The guest clears its PTE; the IOTLB still holds the translation until invalidated.
    expect(n.s1.unmap(0x40_0000, SZ_4K)).toBe(SZ_4K);
    expect(dma(n.h, SID, 0x40_0000, ACCESS_READ, 5).status).toBe(TXN_OK);
    const inv = iommu_cache_invalidate_info.encode({
      argsz: 56,
      version: 1,
      cache: IOMMU_CACHE_INV_TYPE_IOTLB,
      granularity: IOMMU_INV_GRANU_ADDR,
      granu: {
        addr_info: {
          flags: IOMMU_INV_ADDR_FLAGS_ARCHID | IOMMU_INV_ADDR_FLAGS_LEAF,
          archid: asid,
          addr: 0x40_0000n,
          granule_size: 4096n,
          nb_granules: 1n,
        },
      },
    });
    expect(n.h.iommu.iommuUapiCacheInvalidate(n.d, n.dev, UserPtr.ofBuffer(inv))).toBe(0);
    expect(dma(n.h, SID, 0x40_0000, ACCESS_READ, 5).status).toBe(TXN_ABORT);
  });

  it('a short user buffer is EFAULT and changes nothing', () => {
    const n = nestedHost();
    const before = steOf(n.h, SID);
    const cfg = cfgBuf(IOMMU_PASID_CONFIG_TRANSLATE, BigInt(n.cds.ptr), 8, 1, 0);
    expect(attach(n, cfg.subarray(0, 28))).toBe(-EFAULT);
    expect(steOf(n.h, SID)).toEqual(before);
  });
});

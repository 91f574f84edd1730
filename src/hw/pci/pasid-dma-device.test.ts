/**
 * The PASID DMA engine end to end on a bare-metal SMMU rig: its configuration space (header,
 * capability chains, masks, PASID Control), BAR0 (ring, errors, MSI-X table and PBA), descriptor
 * processing through the SMMU with and without PASIDs, faults reported in completion records and
 * in the SMMU's event queue, MSIs through the SMMU to the MSI controller, and resets.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { S1DSS_SSID0 } from '../../arch/smmuv3/ste.ts';
import { PAGE_SIZE } from '../memory.ts';
import { MSI_DOORBELL_PA, MSI_FRAME_BASE, MsiController } from '../platform/msi-controller.ts';
import { SystemBus } from '../platform/system-bus.ts';
import { SmmuRig } from '../smmuv3/rig.ts';
import { cmdCfgiSte, cmdSync } from '../smmuv3/structures.ts';
import type { PageTable } from '../vmsa/pgtable.ts';
import { pciCapabilities, pciExtCapabilities } from './config-space.ts';
import { PasidDmaDevice, type PasidDmaDeviceOptions } from './pasid-dma-device.ts';
import {
  COMPL_BYTES,
  type CompletionRecord,
  CS_BAD_ADDRESS,
  CS_BAD_LENGTH,
  CS_BAD_OPCODE,
  CS_BAD_PASID,
  CS_COMPARE_MISMATCH,
  CS_PASID_DISABLED,
  CS_PRIV_DISABLED,
  CS_READ_FAULT,
  CS_SUCCESS,
  CS_WRITE_FAULT,
  DESC_BYTES,
  type DescriptorInit,
  decodeCompletion,
  encodeDescriptor,
  OP_COMPARE,
  OP_COPY,
  OP_FILL,
  OP_NOP,
  PDMA_CAP,
  PDMA_CTRL,
  PDMA_CTRL_ENABLE,
  PDMA_ERR_ADDR_HI,
  PDMA_ERR_ADDR_LO,
  PDMA_ERR_INFO,
  PDMA_ERR_IRQ,
  PDMA_ERR_IRQ_ENABLE,
  PDMA_ERR_PASID,
  PDMA_ERR_PASID_VALID,
  PDMA_ERROR,
  PDMA_ERROR_BAD_RING_CONFIG,
  PDMA_ERROR_BAD_TAIL,
  PDMA_ERROR_COMPL_FAULT,
  PDMA_ERROR_NO_BUS_MASTER,
  PDMA_ERROR_RING_FAULT,
  PDMA_ID,
  PDMA_MAX_TRANSFER,
  PDMA_MSIX_PBA_OFFSET,
  PDMA_MSIX_TABLE_OFFSET,
  PDMA_RING_BASE_HI,
  PDMA_RING_BASE_LO,
  PDMA_RING_HEAD,
  PDMA_RING_SIZE,
  PDMA_RING_TAIL,
  PDMA_STATUS,
  PDMA_STATUS_ENABLED,
  PDMA_STATUS_HALTED,
} from './pasid-dma-regs.ts';
import {
  type AccessSize,
  PCI_ATS_CTRL,
  PCI_BASE_ADDRESS_0,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_LIST_NEXT,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_DEVICE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_FLAGS,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_NEXT,
  PCI_EXT_CAP_VER,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PASID_CAP,
  PCI_PASID_CTRL,
  PCI_PM_CTRL,
  PCI_PRI_CTRL,
  PCI_PRI_STATUS,
  PCI_PRI_STATUS_PASID,
  PCI_PRI_STATUS_STOPPED,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_VENDOR_ID,
} from './regs.ts';

const RW_USER = { read: true, write: true, user: true };
/** Where the doorbell page appears in the driver's IOVA space (Linux's MSI_IOVA_BASE). */
const MSI_IOVA = 0x0800_0000;
const BAR0_PA = 0x1000_0000;

/**
 * The platform around one device: the SMMU rig, a system bus through it, the MSI controller, and
 * a stage-1 stream whose CD table has one entry (and page table) per PASID; traffic without a
 * PASID uses CD 0 (S1DSS = SSID0). The device is at 00:01.0, StreamID 8.
 */
function platform(opts: PasidDmaDeviceOptions = {}, pasids: readonly number[] = [1, 2]) {
  const rig = new SmmuRig();
  const bus = new SystemBus({ mem: rig.mem, iommu: rig.smmu });
  const msi = new MsiController();
  msi.attach(bus);
  const dev = new PasidDmaDevice({ dma: bus, ...opts });
  const sid = dev.streamId;
  const cds = rig.cdTable(0, 4);
  const spaces = new Map<number, PageTable>();
  for (const ssid of [0, ...pasids]) {
    const t = rig.pageTable({ stage: 1, granule: 12, iasBits: 48, oasBits: 48, nonGlobal: true });
    cds.write(ssid, { t0sz: 16, granule0: 12, ttb0: t.root, ipsBits: 48, asid: ssid + 1 });
    spaces.set(ssid, t);
  }
  rig.writeSte(sid, { config: 's1', s1ContextPtr: cds.ptr, s1Fmt: 0, s1CdMax: 4, s1Dss: S1DSS_SSID0 });
  rig.submit(cmdCfgiSte(sid), cmdSync());
  // The MSI doorbell page in the driver's (no-PASID) IOVA space.
  spaces
    .get(0)!
    .map(MSI_IOVA, MSI_FRAME_BASE, PAGE_SIZE, { read: true, write: true, user: true, cache: 'device' });

  /** Maps `size` bytes of fresh RAM at `iova` in PASID `ssid`'s space (-1: no PASID) and returns the PA. */
  const map = (ssid: number, iova: number, size: number, prot = RW_USER): number => {
    const pages = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    const pa = rig.alloc.alloc(pages)!;
    const r = spaces.get(Math.max(0, ssid))!.map(iova, pa, pages, prot);
    if (!r.ok) throw new Error(r.detail);
    return pa;
  };

  const w32 = (off: number, v: number): void => dev.barWrite(0, off, 4, v);
  const r32 = (off: number): number => dev.barRead(0, off, 4);

  // Host side: BAR0 placed, memory decoding and bus mastering on.
  dev.configWrite(PCI_BASE_ADDRESS_0, 4, BAR0_PA);
  dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

  // The driver's ring: 16 descriptors at IOVA 0x10_0000 without PASID.
  const RING_IOVA = 0x10_0000;
  const RING_SIZE = 16;
  const ringPa = map(-1, RING_IOVA, RING_SIZE * DESC_BYTES);
  w32(PDMA_RING_BASE_LO, RING_IOVA);
  w32(PDMA_RING_BASE_HI, 0);
  w32(PDMA_RING_SIZE, RING_SIZE);
  w32(PDMA_CTRL, PDMA_CTRL_ENABLE);
  let tail = 0;

  /** Writes descriptors at the tail and rings the doorbell once. */
  const submit = (...ds: DescriptorInit[]): void => {
    for (const d of ds) {
      rig.mem.write(ringPa + tail * DESC_BYTES, encodeDescriptor(d));
      tail = (tail + 1) % RING_SIZE;
    }
    w32(PDMA_RING_TAIL, tail);
  };

  const pasidEnable = (bits = 1): void => dev.configWrite(dev.caps.pasid + PCI_PASID_CTRL, 2, bits);

  return { rig, bus, msi, dev, sid, spaces, map, w32, r32, submit, pasidEnable, ringPa, RING_IOVA };
}

type Platform = ReturnType<typeof platform>;

/** A completion record area mapped in `ssid`'s space; returns its IOVA and a reader. */
function complArea(p: Platform, ssid: number, iova: number) {
  const pa = p.map(ssid, iova, PAGE_SIZE);
  return {
    iova,
    pa,
    read: (i = 0): CompletionRecord => decodeCompletion(p.rig.mem.read(pa + 32 * i, COMPL_BYTES)!),
  };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + (i >>> 8)) & 0xff;
  return b;
}

// ====================================================================== configuration space

describe('configuration space', () => {
  it('has a type 0 header with the documented identity, a 64-bit BAR0, no INTx and a capability list', () => {
    const dev = new PasidDmaDevice();
    expect(dev.configSize).toBe(4096);
    expect(dev.configRead(PCI_VENDOR_ID, 2)).toBe(0x1234);
    expect(dev.configRead(PCI_DEVICE_ID, 2)).toBe(0x5a5a);
    expect(dev.configRead(PCI_REVISION_ID, 1)).toBe(1);
    expect(dev.configRead(PCI_CLASS_PROG, 1)).toBe(0);
    expect(dev.configRead(PCI_CLASS_DEVICE, 2)).toBe(0x0880);
    expect(dev.configRead(PCI_HEADER_TYPE, 1)).toBe(0);
    expect(dev.configRead(PCI_INTERRUPT_PIN, 1)).toBe(0);
    expect(dev.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST).toBe(PCI_STATUS_CAP_LIST);
    expect(dev.configRead(PCI_BASE_ADDRESS_0, 4)).toBe(0x4); // memory, 64-bit, non-prefetchable
    expect(dev.rid).toBe(8);
    expect(new PasidDmaDevice({ bus: 3, dev: 2, fn: 1, multiFunction: true }).rid).toBe(0x311);
    expect(new PasidDmaDevice({ multiFunction: true }).configRead(PCI_HEADER_TYPE, 1)).toBe(0x80);
  });

  it('sizes BAR0 like hardware: all-ones reads back the size mask, flag bits stay', () => {
    const dev = new PasidDmaDevice({ bar0Size: 0x10000 });
    dev.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    dev.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0xffff_ffff);
    expect(dev.configRead(PCI_BASE_ADDRESS_0, 4)).toBe(0xffff_0004);
    expect(dev.configRead(PCI_BASE_ADDRESS_0 + 4, 4)).toBe(0xffff_ffff);
    dev.configWrite(PCI_BASE_ADDRESS_0, 4, 0x1234_5678);
    dev.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0x80);
    expect(dev.barAddress(0)).toBe(0x80_1234_0000);
    expect(dev.barSize(0)).toBe(0x10000);
    expect(dev.barSize(2)).toBe(0);
  });

  it('links PM, PCIe and MSI-X in the standard list, and AER, PASID, ATS, PRI in the extended list', () => {
    const dev = new PasidDmaDevice();
    const std = pciCapabilities(dev);
    expect(std.map((c) => c.id)).toEqual([PCI_CAP_ID_PM, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX]);
    expect(std.map((c) => c.offset)).toEqual([dev.caps.pm, dev.caps.exp, dev.caps.msix]);
    expect(dev.configRead(PCI_CAPABILITY_LIST, 1)).toBe(0x40);
    expect(dev.configRead(dev.caps.msix + PCI_CAP_LIST_NEXT, 1)).toBe(0);
    const ext = pciExtCapabilities(dev);
    expect(ext.map((c) => c.id)).toEqual([
      PCI_EXT_CAP_ID_ERR,
      PCI_EXT_CAP_ID_PASID,
      PCI_EXT_CAP_ID_ATS,
      PCI_EXT_CAP_ID_PRI,
    ]);
    expect(ext[0]!.offset).toBe(0x100);
    expect(ext.find((c) => c.id === PCI_EXT_CAP_ID_PASID)!.version).toBe(1);
    // Headers' next pointers chain in order and the last is 0.
    for (let i = 0; i < ext.length; i++) {
      expect(PCI_EXT_CAP_NEXT(dev.configRead(ext[i]!.offset, 4))).toBe(ext[i + 1]?.offset ?? 0);
    }
    expect(PCI_EXT_CAP_VER(dev.configRead(0x100, 4))).toBe(2); // AER v2
    // PCIe v2 endpoint with FLR.
    expect(dev.configRead(dev.caps.exp + PCI_EXP_FLAGS, 2)).toBe(0x0002);
    expect(dev.configRead(dev.caps.exp + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR).toBe(PCI_EXP_DEVCAP_FLR);
    // MSI-X: 4 vectors, table and PBA in BAR0.
    expect(dev.configRead(dev.caps.msix + PCI_MSIX_FLAGS, 2)).toBe(3);
    expect(dev.configRead(dev.caps.msix + PCI_MSIX_TABLE, 4)).toBe(PDMA_MSIX_TABLE_OFFSET);
    expect(dev.configRead(dev.caps.msix + PCI_MSIX_PBA, 4)).toBe(PDMA_MSIX_PBA_OFFSET);
  });

  it('follows extOrder and extraCaps, and can drop PM', () => {
    const ids = (o: PasidDmaDeviceOptions): number[] =>
      pciExtCapabilities(new PasidDmaDevice(o)).map((c) => c.id);
    expect(ids({ extOrder: ['pasid', 'dsn', 'pri', 'ats', 'aer'] })).toEqual([
      PCI_EXT_CAP_ID_PASID,
      PCI_EXT_CAP_ID_DSN,
      PCI_EXT_CAP_ID_PRI,
      PCI_EXT_CAP_ID_ATS,
      PCI_EXT_CAP_ID_ERR,
    ]);
    expect(ids({ extraCaps: 'pri' })).toEqual([PCI_EXT_CAP_ID_ERR, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI]);
    expect(ids({ extraCaps: 'ats' })).toEqual([PCI_EXT_CAP_ID_ERR, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_ATS]);
    expect(ids({ extraCaps: 'none', extOrder: ['pasid'] })).toEqual([PCI_EXT_CAP_ID_PASID]);
    const noPasid = new PasidDmaDevice({ extOrder: ['aer'] });
    expect(noPasid.caps.pasid).toBe(0);
    expect(pciCapabilities(new PasidDmaDevice({ pm: false })).map((c) => c.id)).toEqual([
      PCI_CAP_ID_EXP,
      PCI_CAP_ID_MSIX,
    ]);
    expect(() => new PasidDmaDevice({ extOrder: ['aer', 'aer'] })).toThrow(/twice/);
    expect(() => new PasidDmaDevice({ maxPasidWidth: 21 })).toThrow();
    expect(() => new PasidDmaDevice({ msixVectors: 0 })).toThrow();
    expect(() => new PasidDmaDevice({ bar0Size: 0x3000 })).toThrow();
  });

  it('PASID Capability reports width, Execute and Privileged; Control takes only the supported enables', () => {
    const plain = new PasidDmaDevice({ maxPasidWidth: 16 });
    const p = plain.caps.pasid;
    expect(plain.configRead(p + PCI_PASID_CAP, 2)).toBe(16 << 8);
    plain.configWrite(p + PCI_PASID_CTRL, 2, 0xffff);
    expect(plain.configRead(p + PCI_PASID_CTRL, 2)).toBe(0x1);
    plain.configWrite(p + PCI_PASID_CAP, 2, 0); // read-only
    expect(plain.configRead(p + PCI_PASID_CAP, 2)).toBe(16 << 8);

    const full = new PasidDmaDevice({ maxPasidWidth: 20, pasidExec: true, pasidPriv: true });
    const q = full.caps.pasid;
    expect(full.configRead(q + PCI_PASID_CAP, 2)).toBe((20 << 8) | 0x6);
    full.configWrite(q + PCI_PASID_CTRL, 2, 0xffff);
    expect(full.configRead(q + PCI_PASID_CTRL, 2)).toBe(0x7);
    full.configWrite(q + PCI_PASID_CTRL, 1, 0x4);
    expect(full.configRead(q + PCI_PASID_CTRL, 2)).toBe(0x4);
    expect(full.pasidEnabled).toBe(false);
  });

  it('property: configuration writes never change read-only bits', () => {
    const dev = new PasidDmaDevice({ extOrder: ['aer', 'dsn', 'pasid', 'ats', 'pri'], pasidPriv: true });
    const cs = dev.config;
    // PRI Status.Stopped is read-only to software but follows PRI Enable: the device owns it.
    const deviceOwned = (off: number): number =>
      off === dev.caps.pri + PCI_PRI_STATUS + 1 ? PCI_PRI_STATUS_STOPPED >>> 8 : 0;
    const roOf = (off: number): number => ~(cs.rwMask(off, 1) | cs.w1cMask(off, 1) | deviceOwned(off)) & 0xff;
    const snapshot = (): number[] => Array.from({ length: 4096 }, (_, i) => cs.get(i, 1));
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            size: fc.constantFrom<AccessSize>(1, 2, 4),
            offset: fc.oneof(fc.integer({ min: 0, max: 0x3ff }), fc.integer({ min: 0, max: 4095 })),
            value: fc.integer({ min: 0, max: 0xffff_ffff }),
          }),
          { maxLength: 40 },
        ),
        (writes) => {
          for (const w of writes) {
            const before = snapshot();
            dev.configWrite(w.offset, w.size, w.value);
            const after = snapshot();
            for (let i = 0; i < 4096; i++) {
              if (((before[i]! ^ after[i]!) & roOf(i)) !== 0) {
                throw new Error(`RO bits of 0x${i.toString(16)} changed by ${JSON.stringify(w)}`);
              }
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('Status error bits are write-1-to-clear', () => {
    const dev = new PasidDmaDevice();
    dev.config.setBits(PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
    dev.configWrite(PCI_STATUS, 2, 0); // writing 0 changes nothing
    expect(dev.configRead(PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT).toBe(PCI_STATUS_REC_MASTER_ABORT);
    dev.configWrite(PCI_STATUS, 2, 0xffff);
    expect(dev.configRead(PCI_STATUS, 2)).toBe(PCI_STATUS_CAP_LIST);
  });

  it('PRI and ATS registers follow the PCIe semantics (Stopped, PASID Required, Reset, Enable, STU)', () => {
    const dev = new PasidDmaDevice();
    const pri = dev.caps.pri;
    expect(dev.configRead(pri + PCI_PRI_STATUS, 2)).toBe(PCI_PRI_STATUS_STOPPED | PCI_PRI_STATUS_PASID);
    dev.configWrite(pri + PCI_PRI_CTRL, 2, 0x3); // Enable + Reset: Reset reads 0
    expect(dev.configRead(pri + PCI_PRI_CTRL, 2)).toBe(0x1);
    expect(dev.configRead(pri + PCI_PRI_STATUS, 2) & PCI_PRI_STATUS_STOPPED).toBe(0);
    dev.configWrite(pri + PCI_PRI_CTRL, 2, 0);
    expect(dev.configRead(pri + PCI_PRI_STATUS, 2) & PCI_PRI_STATUS_STOPPED).toBe(PCI_PRI_STATUS_STOPPED);
    const ats = dev.caps.ats;
    dev.configWrite(ats + PCI_ATS_CTRL, 2, 0xffff);
    expect(dev.configRead(ats + PCI_ATS_CTRL, 2)).toBe(0x801f);
    // Without a PASID capability the PRI does not require PASIDs in responses.
    const bare = new PasidDmaDevice({ extOrder: ['pri'] });
    expect(bare.configRead(bare.caps.pri + PCI_PRI_STATUS, 2)).toBe(PCI_PRI_STATUS_STOPPED);
  });

  it('PM: D1/D2 are refused; in D3hot BAR0 is not decoded', () => {
    const dev = new PasidDmaDevice();
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const pm = dev.caps.pm;
    dev.configWrite(pm + PCI_PM_CTRL, 2, 1);
    expect(dev.powerState).toBe(0);
    dev.configWrite(pm + PCI_PM_CTRL, 2, 3);
    expect(dev.powerState).toBe(3);
    expect(dev.barRead(0, PDMA_ID, 4)).toBe(0xffff_ffff);
    dev.configWrite(pm + PCI_PM_CTRL, 2, 2);
    expect(dev.powerState).toBe(3);
    dev.configWrite(pm + PCI_PM_CTRL, 2, 0);
    expect(dev.barRead(0, PDMA_ID, 4)).toBe(0x5a5a_0001);
  });
});

// ====================================================================== BAR0

describe('BAR0', () => {
  it('is decoded only with Memory Space enabled; accepts aligned 1/2/4-byte accesses', () => {
    const dev = new PasidDmaDevice();
    expect(dev.barRead(0, PDMA_ID, 4)).toBe(0xffff_ffff);
    dev.barWrite(0, PDMA_RING_SIZE, 4, 8);
    expect(dev.stats.refusedMmio).toBe(2);
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(dev.ringState().size).toBe(0);
    expect(dev.barRead(0, PDMA_ID, 4)).toBe(0x5a5a_0001);
    expect(dev.barRead(0, PDMA_ID + 2, 2)).toBe(0x5a5a);
    expect(dev.barRead(0, PDMA_CAP, 4)).toBe(4096 | (21 << 16) | (8 << 24));
    dev.barWrite(0, PDMA_RING_SIZE, 4, 0x0102);
    dev.barWrite(0, PDMA_RING_SIZE + 1, 1, 0x00);
    expect(dev.barRead(0, PDMA_RING_SIZE, 4)).toBe(0x02);
    expect(dev.barRead(0, PDMA_ID + 1, 2)).toBe(0xffff); // misaligned
    expect(dev.barRead(1, 0, 4)).toBe(0xffff_ffff); // the upper half of a 64-bit BAR
    dev.barWrite(0, PDMA_RING_BASE_LO, 4, 0x1234_5678);
    expect(dev.barRead(0, PDMA_RING_BASE_LO, 4)).toBe(0x1234_5640); // 64-byte aligned
    expect(dev.barRead(0, 0x800, 4)).toBe(0);
  });

  it('enabling needs a valid ring size; ring registers are frozen while enabled', () => {
    const dev = new PasidDmaDevice();
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    dev.barWrite(0, PDMA_CTRL, 4, PDMA_CTRL_ENABLE);
    expect(dev.barRead(0, PDMA_STATUS, 4)).toBe(0);
    expect(dev.barRead(0, PDMA_ERROR, 4)).toBe(PDMA_ERROR_BAD_RING_CONFIG);
    dev.barWrite(0, PDMA_ERROR, 4, PDMA_ERROR_BAD_RING_CONFIG);
    expect(dev.barRead(0, PDMA_ERROR, 4)).toBe(0);
    dev.barWrite(0, PDMA_RING_SIZE, 4, 8);
    dev.barWrite(0, PDMA_CTRL, 4, PDMA_CTRL_ENABLE);
    expect(dev.barRead(0, PDMA_STATUS, 4)).toBe(PDMA_STATUS_ENABLED);
    dev.barWrite(0, PDMA_RING_SIZE, 4, 4);
    dev.barWrite(0, PDMA_RING_BASE_LO, 4, 0x4000);
    expect(dev.ringState()).toMatchObject({ size: 8, base: 0 });
    dev.barWrite(0, PDMA_RING_TAIL, 4, 8); // beyond the ring
    expect(dev.barRead(0, PDMA_ERROR, 4)).toBe(PDMA_ERROR_BAD_TAIL);
    expect(dev.barRead(0, PDMA_RING_TAIL, 4)).toBe(0);
  });

  it('the MSI-X table resets masked, keeps Message Address [1:0] zero; the PBA is read-only', () => {
    const dev = new PasidDmaDevice();
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    for (let v = 0; v < 4; v++) expect(dev.barRead(0, PDMA_MSIX_TABLE_OFFSET + 16 * v + 12, 4)).toBe(1);
    dev.barWrite(0, PDMA_MSIX_TABLE_OFFSET, 4, 0x0809_0043);
    dev.barWrite(0, PDMA_MSIX_TABLE_OFFSET + 8, 4, 0xdead);
    dev.barWrite(0, PDMA_MSIX_TABLE_OFFSET + 12, 4, 0xffff_fffe);
    expect(dev.msixEntry(0)).toEqual({ addr: 0x0809_0040, data: 0xdead, masked: false });
    dev.barWrite(0, PDMA_MSIX_PBA_OFFSET, 4, 0xffff_ffff);
    expect(dev.barRead(0, PDMA_MSIX_PBA_OFFSET, 4)).toBe(0);
    expect(dev.barRead(0, PDMA_MSIX_TABLE_OFFSET + 16 * 4, 4)).toBe(0); // beyond the 4 entries
  });
});

// ====================================================================== descriptors

describe('descriptor processing through the SMMU', () => {
  it('copies without a PASID in the driver IOVA space and writes a completion record', () => {
    const p = platform();
    const src = p.map(-1, 0x20_0000, 2 * PAGE_SIZE);
    const dst = p.map(-1, 0x30_0000, 2 * PAGE_SIZE);
    const data = bytes(6000, 1);
    p.rig.mem.write(src + 100, data);
    const c = complArea(p, -1, 0x40_0000);
    p.submit({
      opcode: OP_COPY,
      src: 0x20_0000 + 100,
      dst: 0x30_0000 + 50,
      len: 6000,
      completionAddr: c.iova,
    });
    expect(p.rig.mem.read(dst + 50, 6000)).toEqual(data);
    expect(c.read()).toMatchObject({ status: CS_SUCCESS, bytesCompleted: 6000, pasid: -1, index: 0 });
    expect(p.r32(PDMA_RING_HEAD)).toBe(1);
    expect(p.dev.stats).toMatchObject({ descriptors: 1, bytesRead: 6000, bytesWritten: 6000, dmaFaults: 0 });
    expect(p.dev.stats.byStatus).toEqual({ success: 1 });
    expect(p.rig.drainEvents()).toEqual([]);
  });

  it('uses the descriptor PASID as SubstreamID for data and the completion record when PASID is enabled', () => {
    const p = platform();
    p.pasidEnable();
    // The same IOVAs exist in PASID 1's space and in the driver's: the data must land in PASID 1's.
    const src1 = p.map(1, 0x5000_0000, PAGE_SIZE);
    const dst1 = p.map(1, 0x5001_0000, PAGE_SIZE);
    const dst0 = p.map(-1, 0x5001_0000, PAGE_SIZE);
    p.rig.mem.write(src1, bytes(4096, 2));
    const c = complArea(p, 1, 0x5002_0000);
    p.submit({
      opcode: OP_COPY,
      pasid: 1,
      src: 0x5000_0000,
      dst: 0x5001_0000,
      len: 4096,
      completionAddr: c.iova,
    });
    expect(p.rig.mem.read(dst1, 4096)).toEqual(bytes(4096, 2));
    expect(p.rig.mem.read(dst0, 4096)).toEqual(new Uint8Array(4096));
    expect(c.read()).toMatchObject({ status: CS_SUCCESS, bytesCompleted: 4096, pasid: 1 });
  });

  it('fills with the 8-byte pattern across pages', () => {
    const p = platform();
    p.pasidEnable();
    const dst = p.map(2, 0x7000_0000, 3 * PAGE_SIZE);
    const c = complArea(p, 2, 0x7100_0000);
    p.submit({
      opcode: OP_FILL,
      pasid: 2,
      dst: 0x7000_0003,
      len: 9000,
      pattern: [0x0403_0201, 0x0807_0605],
      completionAddr: c.iova,
    });
    const got = p.rig.mem.read(dst, 9010)!;
    expect(got[0]).toBe(0);
    for (let i = 0; i < 9000; i++) expect(got[3 + i]).toBe((i % 8) + 1);
    expect(got[9003]).toBe(0);
    expect(c.read().status).toBe(CS_SUCCESS);
    expect(p.dev.stats.bytesWritten).toBe(9000);
  });

  it('compares: success when equal, COMPARE_MISMATCH with the offset of the first difference', () => {
    const p = platform();
    p.pasidEnable();
    const a = p.map(1, 0x6000_0000, 2 * PAGE_SIZE);
    const b = p.map(1, 0x6100_0000, 2 * PAGE_SIZE);
    p.rig.mem.write(a, bytes(8192, 3));
    p.rig.mem.write(b, bytes(8192, 3));
    const c = complArea(p, 1, 0x6200_0000);
    p.submit({
      opcode: OP_COMPARE,
      pasid: 1,
      src: 0x6000_0000,
      dst: 0x6100_0000,
      len: 8192,
      completionAddr: c.iova,
    });
    expect(c.read(0)).toMatchObject({ status: CS_SUCCESS, bytesCompleted: 8192 });
    p.rig.mem.write8(b + 5000, (p.rig.mem.read8(b + 5000) + 1) & 0xff);
    p.submit({
      opcode: OP_COMPARE,
      pasid: 1,
      src: 0x6000_0000,
      dst: 0x6100_0000,
      len: 8192,
      completionAddr: c.iova + 32,
    });
    expect(c.read(1)).toMatchObject({ status: CS_COMPARE_MISMATCH, bytesCompleted: 5000, index: 1 });
    expect(p.dev.stats.bytesWritten).toBe(0);
  });

  it('splits DMA into chunks that never cross 4 KiB', () => {
    const p = platform({ dmaChunk: 512 });
    const src = p.map(-1, 0x20_0000, 2 * PAGE_SIZE);
    p.map(-1, 0x30_0000, 2 * PAGE_SIZE);
    p.rig.mem.write(src, bytes(8192, 4));
    const reads = p.bus.stats.reads;
    const writes = p.bus.stats.writes;
    p.submit({ opcode: OP_COPY, src: 0x20_0f00, dst: 0x30_0e00, len: 1024 });
    // Boundaries at src+0x100 and dst+0x200 split 1024 bytes into 256 + 256 + 512.
    expect(p.bus.stats.reads - reads).toBe(1 + 3); // the descriptor fetch + three chunks
    expect(p.bus.stats.writes - writes).toBe(3);
  });

  it('a PASID descriptor while PASID is disabled: CS_PASID_DISABLED, no data DMA, record without PASID', () => {
    const p = platform();
    const src = p.map(1, 0x5000_0000, PAGE_SIZE);
    const dst = p.map(1, 0x5001_0000, PAGE_SIZE);
    p.rig.mem.write(src, bytes(64, 5));
    const c = complArea(p, -1, 0x40_0000);
    const txns = p.rig.smmu.stats.transactions;
    p.submit({
      opcode: OP_COPY,
      pasid: 1,
      src: 0x5000_0000,
      dst: 0x5001_0000,
      len: 64,
      completionAddr: c.iova,
    });
    expect(p.rig.mem.read(dst, 64)).toEqual(new Uint8Array(64));
    expect(c.read()).toMatchObject({ status: CS_PASID_DISABLED, bytesCompleted: 0, pasid: 1 });
    // Only the descriptor fetch and the completion record went through the SMMU.
    expect(p.rig.smmu.stats.transactions - txns).toBe(2);
    expect(p.dev.stats.bytesRead + p.dev.stats.bytesWritten).toBe(0);
  });

  it('a PASID at or above 2^(Max PASID Width) completes with CS_BAD_PASID', () => {
    const p = platform({ maxPasidWidth: 4 });
    p.pasidEnable();
    const c = complArea(p, -1, 0x40_0000);
    p.submit({ opcode: OP_NOP, pasid: 16, completionAddr: c.iova });
    expect(c.read().status).toBe(CS_BAD_PASID);
    // PASID bits [31:20] of the descriptor are ignored: 0xfff0_000f is PASID 15.
    p.submit({ opcode: OP_NOP, pasid: 0xfff0_000f });
    expect(p.dev.stats.byStatus).toEqual({ 'bad-pasid': 1, success: 1 });
  });

  it('privileged requests need a PASID and Privileged Mode Enable, and reach the SMMU as privileged', () => {
    const p = platform({ pasidPriv: true });
    const kernelPage = p.map(1, 0x9000_0000, PAGE_SIZE, { read: true, write: true, user: false });
    const c = complArea(p, 1, 0x9100_0000);
    p.pasidEnable(0x1); // Enable without Priv
    p.submit({
      opcode: OP_FILL,
      pasid: 1,
      privileged: true,
      dst: 0x9000_0000,
      len: 16,
      pattern: [1, 1],
      completionAddr: c.iova,
    });
    expect(c.read(0)).toMatchObject({ status: CS_PRIV_DISABLED, pasid: 1 });
    // Unprivileged access to a privileged-only page: permission fault.
    p.submit({
      opcode: OP_FILL,
      pasid: 1,
      dst: 0x9000_0000,
      len: 16,
      pattern: [1, 1],
      completionAddr: c.iova + 32,
    });
    expect(c.read(1)).toMatchObject({ status: CS_WRITE_FAULT, faultAddr: 0x9000_0000 });
    expect(p.rig.drainEvents().map((e) => e.name)).toEqual(['F_PERMISSION']);
    p.pasidEnable(0x5); // Enable + Priv
    p.submit({
      opcode: OP_FILL,
      pasid: 1,
      privileged: true,
      dst: 0x9000_0000,
      len: 16,
      pattern: [7, 0],
      completionAddr: c.iova + 64,
    });
    expect(c.read(2).status).toBe(CS_SUCCESS);
    expect(p.rig.mem.read8(kernelPage)).toBe(7);
    // Without a PASID there is no privileged request.
    p.submit({ opcode: OP_NOP, privileged: true, completionAddr: 0x40_0000 });
    expect(p.dev.stats.byStatus['priv-disabled']).toBe(2);
  });

  it('a translation fault on write stops the copy and reports the faulting address; the SMMU records the event', () => {
    const p = platform();
    p.pasidEnable();
    const src = p.map(1, 0x5000_0000, 2 * PAGE_SIZE);
    const dst = p.map(1, 0x5100_0000, PAGE_SIZE); // the second destination page is not mapped
    p.rig.mem.write(src, bytes(8192, 6));
    const c = complArea(p, 1, 0x5200_0000);
    p.submit({
      opcode: OP_COPY,
      pasid: 1,
      src: 0x5000_0000,
      dst: 0x5100_0000,
      len: 8192,
      completionAddr: c.iova,
    });
    expect(c.read()).toMatchObject({
      status: CS_WRITE_FAULT,
      faultWrite: true,
      faultAbort: false,
      faultAddr: 0x5100_1000,
      bytesCompleted: 4096,
      pasid: 1,
    });
    expect(p.rig.mem.read(dst, 4096)).toEqual(bytes(8192, 6).subarray(0, 4096));
    const events = p.rig.drainEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      name: 'F_TRANSLATION',
      streamId: 8,
      substreamId: 1,
      rnw: false,
      inputLo: 0x5100_1000,
    });
    expect(p.dev.stats.byStatus).toEqual({ 'write-fault': 1 });
  });

  it('a read fault reports CS_READ_FAULT and sets Status.Received Master Abort (W1C)', () => {
    const p = platform();
    p.map(-1, 0x30_0000, PAGE_SIZE);
    const c = complArea(p, -1, 0x40_0000);
    p.submit({ opcode: OP_COPY, src: 0x77_0000, dst: 0x30_0000, len: 32, completionAddr: c.iova });
    expect(c.read()).toMatchObject({
      status: CS_READ_FAULT,
      faultWrite: false,
      faultAddr: 0x77_0000,
      bytesCompleted: 0,
    });
    expect(p.rig.drainEvents()).toMatchObject([{ name: 'F_TRANSLATION', substreamId: -1, rnw: true }]);
    expect(p.dev.configRead(PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT).toBe(PCI_STATUS_REC_MASTER_ABORT);
    p.dev.configWrite(PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
    expect(p.dev.configRead(PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT).toBe(0);
  });

  it('bad opcode, length and address complete with their statuses and move nothing', () => {
    const p = platform();
    const c = complArea(p, -1, 0x40_0000);
    p.submit(
      { opcode: 9, completionAddr: c.iova },
      { opcode: OP_FILL, dst: 0x30_0000, len: PDMA_MAX_TRANSFER + 1, completionAddr: c.iova + 32 },
      { opcode: OP_FILL, dst: 2 ** 53 - 8, len: 16, completionAddr: c.iova + 64 },
    );
    expect([c.read(0).status, c.read(1).status, c.read(2).status]).toEqual([
      CS_BAD_OPCODE,
      CS_BAD_LENGTH,
      CS_BAD_ADDRESS,
    ]);
    expect(p.dev.stats.bytesWritten).toBe(0);
    expect(p.r32(PDMA_RING_HEAD)).toBe(3);
  });

  it('processes a batch in order and wraps around the ring', () => {
    const p = platform();
    const dst = p.map(-1, 0x30_0000, PAGE_SIZE);
    const c = complArea(p, -1, 0x40_0000);
    for (let round = 0; round < 3; round++) {
      const batch: DescriptorInit[] = [];
      for (let i = 0; i < 7; i++) {
        batch.push({
          opcode: OP_FILL,
          dst: 0x30_0000 + i,
          len: 1,
          pattern: [round * 16 + i, 0],
          completionAddr: c.iova + 32 * i,
        });
      }
      p.submit(...batch);
      for (let i = 0; i < 7; i++) expect(p.rig.mem.read8(dst + i)).toBe(round * 16 + i);
      expect(c.read(6).index).toBe((round * 7 + 6) % 16);
    }
    expect(p.r32(PDMA_RING_HEAD)).toBe(21 % 16);
    expect(p.dev.stats.descriptors).toBe(21);
  });
});

// ====================================================================== device errors

describe('device errors', () => {
  it('a completion record that cannot be written sets ERROR.COMPL_FAULT and processing goes on', () => {
    const p = platform();
    p.pasidEnable();
    const dst = p.map(-1, 0x30_0000, PAGE_SIZE);
    p.submit(
      { opcode: OP_NOP, pasid: 2, completionAddr: 0x6660_0000 },
      { opcode: OP_FILL, dst: 0x30_0000, len: 4, pattern: [0xaabbccdd, 0] },
    );
    expect(p.r32(PDMA_ERROR)).toBe(PDMA_ERROR_COMPL_FAULT);
    expect(p.r32(PDMA_ERR_ADDR_LO)).toBe(0x6660_0000);
    expect(p.r32(PDMA_ERR_ADDR_HI)).toBe(0);
    expect(p.r32(PDMA_ERR_PASID)).toBe((PDMA_ERR_PASID_VALID | 2) >>> 0);
    expect(p.r32(PDMA_ERR_INFO)).toBe(0 | (CS_SUCCESS << 16));
    expect(p.rig.mem.read32(dst)).toBe(0xaabbccdd);
    expect(p.dev.stats.completionFaults).toBe(1);
  });

  it('a descriptor fetch fault halts the ring until it is re-enabled', () => {
    const p = platform();
    p.w32(PDMA_CTRL, 0);
    p.w32(PDMA_RING_BASE_LO, 0x0ff0_0000); // unmapped
    p.w32(PDMA_CTRL, PDMA_CTRL_ENABLE);
    p.w32(PDMA_RING_TAIL, 2);
    expect(p.r32(PDMA_STATUS)).toBe(PDMA_STATUS_ENABLED | PDMA_STATUS_HALTED);
    expect(p.r32(PDMA_ERROR)).toBe(PDMA_ERROR_RING_FAULT);
    expect(p.r32(PDMA_ERR_ADDR_LO)).toBe(0x0ff0_0000);
    expect(p.r32(PDMA_RING_HEAD)).toBe(0);
    expect(p.rig.drainEvents()).toHaveLength(1);
    p.w32(PDMA_RING_TAIL, 3); // halted: nothing happens
    expect(p.dev.stats.ringFaults).toBe(1);
    p.w32(PDMA_CTRL, 0);
    p.w32(PDMA_RING_BASE_LO, p.RING_IOVA);
    p.w32(PDMA_CTRL, PDMA_CTRL_ENABLE);
    expect(p.r32(PDMA_STATUS)).toBe(PDMA_STATUS_ENABLED);
    expect(p.r32(PDMA_RING_TAIL)).toBe(0);
  });

  it('Bus Master Enable clear: a doorbell does no DMA, sets NO_BUS_MASTER, and a later doorbell resumes', () => {
    const p = platform();
    const dst = p.map(-1, 0x30_0000, PAGE_SIZE);
    p.dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const txns = p.rig.smmu.stats.transactions;
    p.submit({ opcode: OP_FILL, dst: 0x30_0000, len: 4, pattern: [0x11223344, 0] });
    expect(p.rig.smmu.stats.transactions).toBe(txns);
    expect(p.r32(PDMA_ERROR)).toBe(PDMA_ERROR_NO_BUS_MASTER);
    expect(p.r32(PDMA_RING_HEAD)).toBe(0);
    expect(p.rig.mem.read32(dst)).toBe(0);
    p.dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    p.w32(PDMA_RING_TAIL, p.r32(PDMA_RING_TAIL));
    expect(p.rig.mem.read32(dst)).toBe(0x11223344);
    expect(p.r32(PDMA_RING_HEAD)).toBe(1);
  });

  it('without a DmaPort every DMA aborts', () => {
    const dev = new PasidDmaDevice();
    dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    dev.barWrite(0, PDMA_RING_SIZE, 4, 4);
    dev.barWrite(0, PDMA_CTRL, 4, 1);
    dev.barWrite(0, PDMA_RING_TAIL, 4, 1);
    expect(dev.barRead(0, PDMA_ERROR, 4)).toBe(PDMA_ERROR_RING_FAULT);
  });
});

// ====================================================================== MSI-X

describe('MSI-X through the SMMU to the MSI controller', () => {
  function withMsi(opts: PasidDmaDeviceOptions = {}) {
    const p = platform(opts);
    const got: [number, number][] = [];
    for (let v = 0; v < 4; v++) p.msi.register(p.sid, 0x20 + v, (sid, ev) => got.push([sid, ev]));
    for (let v = 0; v < 4; v++) {
      const e = PDMA_MSIX_TABLE_OFFSET + 16 * v;
      p.w32(e, MSI_IOVA + (MSI_DOORBELL_PA - MSI_FRAME_BASE));
      p.w32(e + 4, 0);
      p.w32(e + 8, 0x20 + v);
      p.w32(e + 12, 0);
    }
    p.dev.configWrite(p.dev.caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    return { ...p, got };
  }

  it('a completion interrupt is a write of the entry data to the doorbell, translated by the SMMU', () => {
    const p = withMsi();
    p.submit({ opcode: OP_NOP, interruptVector: 2 });
    expect(p.got).toEqual([[8, 0x22]]);
    expect(p.dev.stats.msiSent).toBe(1);
    expect(p.msi.stats.delivered).toBe(1);
    expect(p.rig.drainEvents()).toEqual([]);
  });

  it('a masked vector is pended in the PBA and sent when unmasked', () => {
    const p = withMsi();
    const ctrl = PDMA_MSIX_TABLE_OFFSET + 16 * 1 + 12;
    p.w32(ctrl, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    p.submit({ opcode: OP_NOP, interruptVector: 1 }, { opcode: OP_NOP, interruptVector: 1 });
    expect(p.got).toEqual([]);
    expect(p.r32(PDMA_MSIX_PBA_OFFSET)).toBe(0b10);
    expect(p.dev.stats.msiPended).toBe(1);
    p.w32(ctrl, 0);
    expect(p.got).toEqual([[8, 0x21]]);
    expect(p.r32(PDMA_MSIX_PBA_OFFSET)).toBe(0);
  });

  it('Function Mask pends every vector; clearing it delivers them', () => {
    const p = withMsi();
    const flags = p.dev.caps.msix + PCI_MSIX_FLAGS;
    p.dev.configWrite(flags, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    p.submit({ opcode: OP_NOP, interruptVector: 0 }, { opcode: OP_NOP, interruptVector: 3 });
    expect(p.got).toEqual([]);
    expect(p.dev.msixPending(0) && p.dev.msixPending(3)).toBe(true);
    p.dev.configWrite(flags, 2, PCI_MSIX_FLAGS_ENABLE);
    expect(p.got).toEqual([
      [8, 0x20],
      [8, 0x23],
    ]);
  });

  it('with MSI-X disabled a vector is dropped; without Bus Master it is pended until mastering resumes', () => {
    const p = withMsi();
    p.dev.configWrite(p.dev.caps.msix + PCI_MSIX_FLAGS, 2, 0);
    p.submit({ opcode: OP_NOP, interruptVector: 0 });
    expect(p.got).toEqual([]);
    expect(p.dev.msixPending(0)).toBe(false);
    expect(p.dev.stats.msiDropped).toBe(1);
    p.dev.configWrite(p.dev.caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    p.dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    p.dev.raiseVector(3);
    expect(p.dev.msixPending(3)).toBe(true);
    p.dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    expect(p.got).toEqual([[8, 0x23]]);
  });

  it('an MSI to an unmapped doorbell IOVA faults in the SMMU and is lost', () => {
    const p = withMsi();
    p.w32(PDMA_MSIX_TABLE_OFFSET, 0x0900_0040);
    p.submit({ opcode: OP_NOP, interruptVector: 0 });
    expect(p.got).toEqual([]);
    expect(p.dev.stats.msiFaults).toBe(1);
    expect(p.rig.drainEvents()).toMatchObject([
      { name: 'F_TRANSLATION', inputLo: 0x0900_0040, substreamId: -1 },
    ]);
  });

  it('ERR_IRQ raises its vector when an error bit becomes set', () => {
    const p = withMsi();
    p.w32(PDMA_ERR_IRQ, PDMA_ERR_IRQ_ENABLE | 3);
    p.submit(
      { opcode: OP_NOP, completionAddr: 0x6660_0000 },
      { opcode: OP_NOP, completionAddr: 0x6660_0000 },
    );
    expect(p.got).toEqual([[8, 0x23]]); // once: the bit was already set the second time
  });

  it('an interrupt handler may submit more work: it runs in order within the same doorbell', () => {
    const p = withMsi();
    const dst = p.map(-1, 0x30_0000, PAGE_SIZE);
    let once = false;
    p.msi.unregister(p.sid, 0x20);
    p.msi.register(p.sid, 0x20, () => {
      if (once) return;
      once = true;
      p.submit({ opcode: OP_FILL, dst: 0x30_0004, len: 4, pattern: [0x2222_2222, 0] });
      expect(p.r32(PDMA_RING_HEAD)).toBe(0); // not processed inside the handler
    });
    p.submit({ opcode: OP_FILL, dst: 0x30_0000, len: 4, pattern: [0x1111_1111, 0], interruptVector: 0 });
    expect(p.rig.mem.read32(dst + 4)).toBe(0x2222_2222);
    expect(p.r32(PDMA_RING_HEAD)).toBe(2);
  });
});

// ====================================================================== resets

describe('resets', () => {
  function dirty(p: Platform): void {
    p.pasidEnable();
    p.w32(PDMA_MSIX_TABLE_OFFSET, 0x1234_5670);
    p.w32(PDMA_MSIX_TABLE_OFFSET + 12, 0);
    p.dev.configWrite(p.dev.caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    p.dev.raiseVector(0);
    p.submit({ opcode: OP_NOP });
  }

  function expectPowerOn(dev: PasidDmaDevice, fresh: PasidDmaDevice): void {
    for (let off = 0; off < 4096; off += 4) expect(dev.config.get(off, 4)).toBe(fresh.config.get(off, 4));
    expect(dev.ringState()).toEqual(fresh.ringState());
    expect(dev.msixEntry(0)).toEqual({ addr: 0, data: 0, masked: true });
    expect(dev.msixPending(0)).toBe(false);
    expect(dev.pasidEnabled).toBe(false);
  }

  it('Initiate FLR restores the power-on state (and reads back as 0)', () => {
    const p = platform();
    dirty(p);
    expect(p.dev.ringState().head).toBe(1);
    const devctl = p.dev.caps.exp + PCI_EXP_DEVCTL;
    p.dev.configWrite(devctl, 2, p.dev.configRead(devctl, 2) | PCI_EXP_DEVCTL_BCR_FLR);
    expect(p.dev.configRead(devctl, 2) & PCI_EXP_DEVCTL_BCR_FLR).toBe(0);
    expect(p.dev.stats.flrs).toBe(1);
    expectPowerOn(p.dev, new PasidDmaDevice());
    // A write to DEVCTL's low byte alone does not reset.
    p.dev.configWrite(devctl, 1, 0xff);
    expect(p.dev.stats.flrs).toBe(1);
  });

  it('reset() does the same', () => {
    const p = platform();
    dirty(p);
    p.dev.reset();
    expect(p.dev.stats.resets).toBe(1);
    expectPowerOn(p.dev, new PasidDmaDevice());
  });

  it('an FLR from an interrupt handler stops processing at once', () => {
    const p = platform();
    for (let v = 0; v < 1; v++) {
      p.w32(PDMA_MSIX_TABLE_OFFSET, MSI_IOVA + 0x40);
      p.w32(PDMA_MSIX_TABLE_OFFSET + 8, 7);
      p.w32(PDMA_MSIX_TABLE_OFFSET + 12, 0);
    }
    p.dev.configWrite(p.dev.caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    p.msi.register(p.sid, 7, () => p.dev.flr());
    p.submit({ opcode: OP_NOP, interruptVector: 0 }, { opcode: OP_NOP }, { opcode: OP_NOP });
    expect(p.dev.stats.descriptors).toBe(1);
    expect(p.dev.ringState()).toMatchObject({ enabled: false, head: 0, tail: 0 });
  });
});

/**
 * Probe and reset of the arm-smmu-v3 driver: the ID-register decode on several feature sets,
 * refusals, the registers the reset sequence programs (read back through MMIO), the stream table
 * layout (linear / 2-level, L2 tables on device probe), and probe_device's errno paths.
 */
import { describe, expect, it } from 'vitest';
import { getField } from '../../arch/fields.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_RECINVSID,
  IRQ_CTRL_EVENTQ_IRQEN,
  IRQ_CTRL_GERROR_IRQEN,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR0ACK,
  SMMU_CR1,
  SMMU_CR2,
  SMMU_EVENTQ_BASE,
  SMMU_IDR0,
  SMMU_IRQ_CTRL,
  SMMU_IRQ_CTRLACK,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
} from '../../arch/smmuv3/registers.ts';
import {
  L1STD_L2PTR,
  L1STD_SPAN,
  STE_0_CFG,
  STE_0_V,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
} from '../../arch/smmuv3/ste.ts';
import { ACCESS_READ } from '../../arch/vmsa.ts';
import {
  type IdRegisters,
  idRegisters,
  resolveFeatures,
  type SmmuFeatures,
} from '../../hw/smmuv3/features.ts';
import { Smmu, TXN_ABORT, TXN_OK } from '../../hw/smmuv3/smmu.ts';
import { EBUSY, EEXIST, ENODEV, ENOMEM, ENXIO, ERANGE, ETIMEDOUT } from '../../uapi/errno.ts';
import { ArmSmmuV3 } from './driver.ts';
import { decodeFeatures, type IdRegisterValues } from './features.ts';
import { bench, cmdCount, device, dma, paOf } from './harness.ts';

function idrs(partial: Partial<SmmuFeatures>): IdRegisterValues {
  const r = resolveFeatures(partial);
  if (!r.ok) throw new Error(r.errors.join('; '));
  const i: IdRegisters = idRegisters(r.features);
  return { idr0: i.idr0, idr1: i.idr1, idr3: i.idr3, idr5: i.idr5, iidr: i.iidr, aidr: i.aidr };
}

describe('feature decode (arm_smmu_device_hw_probe)', () => {
  it('decodes the default SMMUv3.2: both stages, 2-level tables, 16-bit IDs, RIL, all granules', () => {
    const r = decodeFeatures(idrs({}));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const f = r.features;
    expect([f.transS1, f.transS2, f.twoLevelStrtab, f.twoLevelCdtab, f.rangeInv, f.hyp]).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect([f.asidBits, f.vmidBits, f.sidBits, f.ssidBits, f.oasBits, f.iasBits]).toEqual([
      16, 16, 16, 20, 48, 48,
    ]);
    expect(f.granules).toEqual([12, 14, 16]);
    // 4K|2M|1G | 16K|32M | 64K|512M
    expect(f.pgsizeBitmap).toBe(2 ** 12 + 2 ** 21 + 2 ** 30 + 2 ** 14 + 2 ** 25 + 2 ** 16 + 2 ** 29);
    expect(f.version).toBe('3.2');
  });

  it.each([
    [[12], 2 ** 12 + 2 ** 21 + 2 ** 30],
    [[14], 2 ** 14 + 2 ** 25],
    [[16], 2 ** 16 + 2 ** 29],
  ] as const)('granules %j give page sizes 0x%s', (granules, bitmap) => {
    const r = decodeFeatures(idrs({ granules }));
    expect(r.ok && r.features.pgsizeBitmap).toBe(bitmap);
  });

  it('8-bit ASID/VMID, no RIL, stage 1 only, stage 2 only', () => {
    const narrow = decodeFeatures(idrs({ asid16: false, vmid16: false, rangeInvalidation: false }));
    expect(
      narrow.ok && [narrow.features.asidBits, narrow.features.vmidBits, narrow.features.rangeInv],
    ).toEqual([8, 8, false]);
    const s1 = decodeFeatures(idrs({ stage2: false, hyp: false }));
    expect(s1.ok && [s1.features.transS1, s1.features.transS2, s1.features.vmidBits]).toEqual([
      true,
      false,
      0,
    ]);
    const s2 = decodeFeatures(idrs({ stage1: false, hyp: false }));
    expect(s2.ok && [s2.features.transS1, s2.features.transS2, s2.features.twoLevelCdtab]).toEqual([
      false,
      true,
      false,
    ]);
  });

  it('keeps a linear stream table when SIDSIZE fits one L2 table (<= 8 bits)', () => {
    for (const sidBits of [0, 6, 8]) {
      const r = decodeFeatures(idrs({ sidBits }));
      expect(r.ok && r.features.twoLevelStrtab).toBe(false);
    }
    const r = decodeFeatures(idrs({ sidBits: 9 }));
    expect(r.ok && r.features.twoLevelStrtab).toBe(true);
  });

  it('refuses what Linux refuses, with -ENXIO and a reason', () => {
    const base = idrs({});
    const cases: [string, IdRegisterValues][] = [
      ['no translation', { ...base, idr0: base.idr0 & ~0b11 }],
      ['AArch64', { ...base, idr0: (base.idr0 & ~0b1100) | 0b0100 }],
      ['big-endian', { ...base, idr0: base.idr0 | (0b11 << 21) }],
      ['embedded', { ...base, idr1: base.idr1 | (1 << 30) }],
      ['command queue', idrs({ cmdqLog2Max: 0 })],
      ['event queue', idrs({ eventqLog2Max: 0 })],
      ['granule', { ...base, idr5: base.idr5 & ~0x70 }],
    ];
    for (const [what, regs] of cases) {
      const r = decodeFeatures(regs);
      expect(r.ok, what).toBe(false);
      if (!r.ok) {
        expect(r.errno).toBe(-ENXIO);
        expect(r.reason).toMatch(new RegExp(what, 'i'));
      }
    }
  });

  it('truncates an unknown OAS encoding to 48 bits', () => {
    const base = idrs({});
    const r = decodeFeatures({ ...base, idr5: (base.idr5 & ~7) | 7 });
    expect(r.ok && r.features.oasBits).toBe(48);
  });
});

describe('probe and reset', () => {
  it('programs and enables the SMMU; registers read back as programmed', () => {
    const b = bench();
    expect(b.probeResult).toBe(0);
    const hw = b.hw;
    const on = CR0_SMMUEN | CR0_EVENTQEN | CR0_CMDQEN;
    expect([hw.read32(SMMU_CR0), hw.read32(SMMU_CR0ACK)]).toEqual([on, on]);
    expect(hw.read32(SMMU_CR1)).toBe(0xd75);
    expect(hw.read32(SMMU_CR2)).toBe(CR2_RECINVSID);
    const irq = IRQ_CTRL_GERROR_IRQEN | IRQ_CTRL_EVENTQ_IRQEN;
    expect([hw.read32(SMMU_IRQ_CTRL), hw.read32(SMMU_IRQ_CTRLACK)]).toEqual([irq, irq]);
    const st = b.drv.streamTable!;
    expect(st.twoLevel).toBe(true);
    expect(hw.read64(SMMU_STRTAB_BASE)).toEqual([
      st.base % 2 ** 32,
      Math.floor(st.base / 2 ** 32) | (1 << 30),
    ]);
    // FMT 2-level, SPLIT 8, LOG2SIZE 16.
    expect(hw.read32(SMMU_STRTAB_BASE_CFG)).toBe((1 << 16) | (8 << 6) | 16);
    const q = b.drv.cmdqStats!;
    const [cmdqLo] = hw.read64(SMMU_CMDQ_BASE);
    expect(cmdqLo & 0x1f).toBe(8); // min(IDR1.CMDQS = 8, 2^10)
    const [evtqLo] = hw.read64(SMMU_EVENTQ_BASE);
    expect(evtqLo & 0x1f).toBe(7);
    // Reset: CFGI_ALL, TLBI_EL2_ALL (Hyp), TLBI_NSNH_ALL, each batch closed by a CMD_SYNC.
    expect(q.byCommand).toEqual({
      CMD_CFGI_STE_RANGE: 1,
      CMD_TLBI_EL2_ALL: 1,
      CMD_TLBI_NSNH_ALL: 1,
      CMD_SYNC: 2,
    });
    expect(hw.read32(SMMU_CMDQ_CONS) & 0x1ff).toBe(hw.read32(SMMU_CMDQ_PROD));
    expect(hw.stats.byCommand.CMD_CFGI_STE_RANGE).toBe(1);
    expect(b.drv.log.at(-1)).toMatch(/SMMUv3\.2: S1 S2 SID 16 bits \(2-level/);
  });

  it('uses a linear stream table for 8-bit StreamIDs, filled with the unattached policy', () => {
    const b = bench({ features: { sidBits: 8 } });
    expect(b.probeResult).toBe(0);
    expect(b.hw.read32(SMMU_STRTAB_BASE_CFG)).toBe(8);
    for (const sid of [0, 77, 255]) {
      const w = b.drv.steWords(sid)!;
      expect([getField(w, STE_0_V), getField(w, STE_0_CFG)]).toEqual([1, STE_CFG_ABORT]);
    }
  });

  it('without TLBI_EL2_ALL on an SMMU without Hyp; stage-1-only and stage-2-only SMMUs probe', () => {
    const s1 = bench({ features: { stage2: false, hyp: false } });
    expect(s1.probeResult).toBe(0);
    expect(cmdCount(s1, 'CMD_TLBI_EL2_ALL')).toBe(0);
    const s2 = bench({ features: { stage1: false, hyp: false, rangeInvalidation: false } });
    expect(s2.probeResult).toBe(0);
    expect(s2.drv.features?.rangeInv).toBe(false);
  });

  it('a second probe is -EBUSY', () => {
    expect(bench().drv.probe()).toBe(-EBUSY);
  });

  it('refuses an SMMU without translation stages before touching any register but the IDs', () => {
    class NoStages extends Smmu {
      override read32(offset: number): number {
        const v = super.read32(offset);
        return offset === SMMU_IDR0 ? v & ~0b11 : v;
      }
    }
    const b = bench({ makeHw: (mem, features) => new NoStages(mem, { features }) });
    expect(b.probeResult).toBe(-ENXIO);
    expect(b.drv.features).toBeUndefined();
    expect(b.hw.stats.mmioWrites).toBe(0);
    expect(b.drv.log.at(-1)).toMatch(/no translation support/);
    expect(b.drv.domainAlloc(1)).toBeUndefined();
    expect(b.drv.probeDevice(device('d', [1]))).toBe(-ENODEV);
  });

  it('refuses zero-sized queues', () => {
    expect(bench({ features: { cmdqLog2Max: 0 } }).probeResult).toBe(-ENXIO);
    expect(bench({ features: { eventqLog2Max: 0 } }).probeResult).toBe(-ENXIO);
  });

  it('fails with -ETIMEDOUT when CR0ACK does not follow CR0, and releases its memory', () => {
    class StuckAck extends Smmu {
      override read32(offset: number): number {
        return offset === SMMU_CR0ACK ? 0 : super.read32(offset);
      }
    }
    const b = bench({ makeHw: (mem, features) => new StuckAck(mem, { features }) });
    expect(b.probeResult).toBe(-ETIMEDOUT);
    expect(b.drv.features).toBeUndefined();
    expect(b.alloc.bytesInUse).toBe(0);
    expect(b.drv.log.some((l) => /not acknowledged/.test(l))).toBe(true);
  });

  it('fails with -ENOMEM when the structures do not fit', () => {
    const b = bench({ ramSize: 0x1000 });
    expect(b.probeResult).toBe(-ENOMEM);
    expect(b.alloc.bytesInUse).toBe(0);
  });

  it('resets an SMMU that is already enabled (re-probe by a new driver instance)', () => {
    const a = bench();
    const again = new ArmSmmuV3('smmu0', a.hw, a.mem, a.alloc, a.core);
    expect(again.probe()).toBe(0);
    expect(again.log.some((l) => /currently enabled/.test(l))).toBe(true);
    expect(a.hw.read32(SMMU_CR0)).toBe(CR0_SMMUEN | CR0_EVENTQEN | CR0_CMDQEN);
  });
});

describe('devices and the stream table', () => {
  it('allocates an L2 table on probe, initialised to the unattached policy, and invalidates its span', () => {
    const b = bench();
    const st = b.drv.streamTable!;
    expect(st.l2Count).toBe(0);
    const before = cmdCount(b, 'CMD_CFGI_STE_RANGE');
    expect(b.drv.probeDevice(device('d0', [0x1234]))).toBe(0);
    expect(st.l2Count).toBe(1);
    expect(cmdCount(b, 'CMD_CFGI_STE_RANGE')).toBe(before + 1);
    const l1 = new Uint32Array([b.mem.read32(st.base + 8 * 0x12), b.mem.read32(st.base + 8 * 0x12 + 4)]);
    expect(getField(l1, L1STD_SPAN)).toBe(9);
    const l2 = getField(l1, L1STD_L2PTR);
    expect(st.steAddr(0x1234)).toBe(l2 + 64 * 0x34);
    for (const sid of [0x1200, 0x1234, 0x12ff]) {
      const w = b.drv.steWords(sid)!;
      expect([getField(w, STE_0_V), getField(w, STE_0_CFG)]).toEqual([1, STE_CFG_ABORT]);
    }
    // A second device in the same span reuses the table.
    expect(b.drv.probeDevice(device('d1', [0x1235]))).toBe(0);
    expect(st.l2Count).toBe(1);
    expect(b.drv.steWords(0x1300)).toBeUndefined();
  });

  it('an unattached stream aborts by default and bypasses with disableBypass = false', () => {
    const abort = bench();
    abort.drv.probeDevice(device('d', [5]));
    const r = abort.hw.transact(dma(5, 0x8000_0000, ACCESS_READ));
    expect(r.status).toBe(TXN_ABORT);
    expect(r.event).toBeNull();
    const bypass = bench({ opts: { disableBypass: false } });
    bypass.drv.probeDevice(device('d', [5]));
    const w = bypass.drv.steWords(5)!;
    expect(getField(w, STE_0_CFG)).toBe(STE_CFG_BYPASS);
    const ok = bypass.hw.transact(dma(5, 0x8000_0000, ACCESS_READ));
    expect(ok.status).toBe(TXN_OK);
    expect(paOf(ok)).toBe(0x8000_0000);
  });

  it('probe_device errno paths, each leaving nothing behind', () => {
    const b = bench();
    const d = device('d', [7, 7, 8], 20);
    expect(b.drv.probeDevice(device('x', [1], 0, 'other-smmu'))).toBe(-ENODEV);
    expect(b.drv.probeDevice(device('big', [2 ** 16]))).toBe(-ERANGE);
    expect(b.drv.probeDevice(d)).toBe(0);
    expect(b.drv.masterOf(d)?.sids).toEqual([7, 8]);
    expect(b.drv.masterOf(d)?.ssidBits).toBe(20);
    expect(d.driverData).toBe(b.drv.masterOf(d));
    expect(b.drv.probeDevice(d)).toBe(-EBUSY);
    const l2 = b.drv.streamTable!.l2Count;
    expect(b.drv.probeDevice(device('clash', [9, 8]))).toBe(-EEXIST);
    expect(b.drv.streamTable!.l2Count).toBe(l2);
    b.drv.releaseDevice(d);
    expect(d.driverData).toBeUndefined();
    expect(b.drv.probeDevice(device('again', [8]))).toBe(0);
  });

  it('caps the L1 table at 2^17 descriptors (25 StreamID bits)', () => {
    const b = bench({ features: { sidBits: 32 } });
    expect(b.probeResult).toBe(0);
    expect(b.drv.streamTable!.log2Size).toBe(25);
    expect(b.drv.log.some((l) => /only covers 25\/32 bits/.test(l))).toBe(true);
    expect(b.drv.probeDevice(device('hi', [2 ** 25]))).toBe(-ERANGE);
    expect(b.drv.probeDevice(device('lo', [2 ** 25 - 1]))).toBe(0);
  });

  it('caps the SMMU pasid width of a device at SSIDSIZE', () => {
    const b = bench({ features: { ssidBits: 5 } });
    const d = device('d', [3], 20);
    b.drv.probeDevice(d);
    expect(b.drv.masterOf(d)?.ssidBits).toBe(5);
  });
});

/**
 * The driver's command queue against the SMMU model: a refused command (CERROR_ILL) is logged,
 * skipped by replacing it with a CMD_SYNC, GERROR is acknowledged, the rest of the batch runs and
 * the caller gets -EIO; a queue whose memory aborts (CERROR_ABT) is retried a bounded number of
 * times and then left halted (-ETIMEDOUT) without looping; batches larger than the queue are
 * split.
 */
import { describe, expect, it } from 'vitest';
import { SMMU_CMDQ_CONS, SMMU_CMDQ_PROD, SMMU_GERROR, SMMU_GERRORN } from '../../arch/smmuv3/registers.ts';
import { ACCESS_READ } from '../../arch/vmsa.ts';
import { TXN_ABORT } from '../../hw/smmuv3/smmu.ts';
import { EIO, ENODEV, ETIMEDOUT } from '../../uapi/errno.ts';
import { IOMMU_DOMAIN_DMA, IOMMU_READ } from '../iommu/types.ts';
import { cmdCfgiSte, cmdTlbiNsnhAll, cmdTlbiS2Ipa } from './commands.ts';
import { bench, device, dma, paOf, withoutIrqs } from './harness.ts';

/** A command with a reserved opcode. */
const illegal = (): Uint32Array => new Uint32Array([0x7f, 0, 0, 0]);

describe('command errors', () => {
  it('skips an illegal command, acknowledges GERROR, runs the rest and returns -EIO', () => {
    const b = bench();
    const before = b.hw.stats.byCommand.CMD_TLBI_NSNH_ALL ?? 0;
    expect(b.drv.submitCommands([illegal(), cmdTlbiNsnhAll()])).toBe(-EIO);
    expect(b.hw.stats.byCommand.CMD_TLBI_NSNH_ALL).toBe(before + 1);
    expect(b.hw.read32(SMMU_GERROR) ^ b.hw.read32(SMMU_GERRORN)).toBe(0);
    // CONS.ERR keeps the last error code; the read index has caught up with PROD.
    expect(b.hw.read32(SMMU_CMDQ_CONS) & 0xf_ffff).toBe(b.hw.read32(SMMU_CMDQ_PROD));
    const s = b.drv.cmdqStats!;
    expect([s.errors, s.skipped]).toEqual([1, 1]);
    expect(b.drv.stats.gerrors).toEqual({ CMDQ_ERR: 1 });
    expect(b.drv.stats.irqs.gerror).toBe(1);
    expect(b.drv.log.some((l) => /CERROR_ILL at CONS index \d+: reserved opcode 0x7f/.test(l))).toBe(true);
    // The queue works afterwards.
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(0);
  });

  it('skips every bad command of a batch', () => {
    const b = bench();
    expect(b.drv.submitCommands([illegal(), cmdCfgiSte(1), illegal(), illegal()])).toBe(-EIO);
    expect(b.drv.cmdqStats!.skipped).toBe(3);
    // CONS.ERR keeps the last error code; the read index has caught up with PROD.
    expect(b.hw.read32(SMMU_CMDQ_CONS) & 0xf_ffff).toBe(b.hw.read32(SMMU_CMDQ_PROD));
    expect(b.drv.submitCommands([])).toBe(0);
  });

  it('a command for a stage the SMMU lacks is refused the same way', () => {
    const b = bench({ features: { stage2: false, hyp: false } });
    expect(
      b.drv.submitCommands([cmdTlbiS2Ipa(1, true, { addr: 0x1000, num: 0, scale: 0, ttl: 0, tg: 0 })]),
    ).toBe(-EIO);
    expect(b.drv.log.some((l) => /CMD_TLBI_S2_IPA/.test(l))).toBe(true);
  });

  it('handles the error by polling when the GERROR interrupt is not delivered', () => {
    const b = bench();
    withoutIrqs(b, () => {
      expect(b.drv.submitCommands([illegal(), cmdTlbiNsnhAll()])).toBe(-EIO);
    });
    expect(b.drv.stats.irqs.gerror).toBe(0);
    expect(b.drv.cmdqStats!.skipped).toBe(1);
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(0);
  });

  it('leaves the queue halted after repeated fetch aborts, returning -ETIMEDOUT without looping', () => {
    const b = bench();
    const q = b.drv.cmdqStats!;
    const base = (b.drv as unknown as { cmdq: { base: number } }).cmdq.base;
    b.mem.markAbsent(base, 0x1000);
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(-ETIMEDOUT);
    expect(q.timeouts).toBe(1);
    expect(b.drv.log.filter((l) => /keeps aborting/.test(l))).toHaveLength(1);
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(-ETIMEDOUT);
    expect(b.drv.log.filter((l) => /retrying/.test(l))).toHaveLength(2);
    expect(b.hw.read32(SMMU_GERROR) ^ b.hw.read32(SMMU_GERRORN)).toBe(1);
    // Once the memory is back and the error acknowledged, the queue resumes: the entries the
    // driver could not write read as zeros (reserved opcode 0), which the driver skips.
    b.mem.markPresent(base, 0x1000);
    b.hw.write32(SMMU_GERRORN, b.hw.read32(SMMU_GERROR));
    expect(b.hw.read32(SMMU_CMDQ_CONS) & 0x1ff).toBe(b.hw.read32(SMMU_CMDQ_PROD));
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(0);
  });

  it('splits a batch larger than the queue', () => {
    const b = bench({ opts: { cmdqLog2: 2 } });
    expect(b.probeResult).toBe(0);
    const batches = b.drv.cmdqStats!.batches;
    const cmds = Array.from({ length: 9 }, (_, i) => cmdCfgiSte(i));
    expect(b.drv.submitCommands(cmds)).toBe(0);
    expect(b.drv.cmdqStats!.batches - batches).toBe(3); // 4 + 4 + (1 + SYNC)
    expect(b.hw.stats.byCommand.CMD_CFGI_STE).toBe(9);
  });

  it('a driver that is not probed has no queue', () => {
    const b = bench({ features: { cmdqLog2Max: 0 } });
    expect(b.drv.submitCommands([cmdTlbiNsnhAll()])).toBe(-ENODEV);
  });

  it('unmap still leaves no stale translation when its invalidation follows a skipped command', () => {
    const b = bench();
    const dev = device('d', [3]);
    b.drv.probeDevice(dev);
    const d = b.drv.domainAlloc(IOMMU_DOMAIN_DMA)!;
    b.drv.attachDev(d, dev);
    b.drv.map(d, 0x1000, 0x8000_0000, 0x1000, IOMMU_READ);
    expect(paOf(b.hw.transact(dma(3, 0x1000, ACCESS_READ)))).toBe(0x8000_0000);
    expect(b.drv.submitCommands([illegal()])).toBe(-EIO);
    expect(b.drv.unmap(d, 0x1000, 0x1000)).toBe(0x1000);
    expect(b.hw.transact(dma(3, 0x1000, ACCESS_READ)).status).toBe(TXN_ABORT);
  });
});

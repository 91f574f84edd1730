/**
 * The guest OS's execution model without any device: the vCPU program's boot of the GIC CPU
 * interface, jobs, WFI when idle, the IRQ vector (IAR, handler, EOIR) and the interrupted trap's
 * answer handed back, IRQ masking, failed jobs, and jobs on a second vCPU.
 */
import { describe, expect, it } from 'vitest';
import { GIC_INTID_SPURIOUS } from '../arch/guest-cpu.ts';
import { COMPL_BYTES, PDMA_ERROR_COMPL_FAULT } from '../hw/pci/pasid-dma-regs.ts';
import { guestFail } from './kernel.ts';
import { GuestRig } from './testing.ts';
import { mmioRead } from './trap.ts';

describe('guest vCPU programs', () => {
  it('gives the interrupted trap its answer after the IRQ handler ran', () => {
    const rig = new GuestRig();
    const os = rig.os;
    const seen: number[] = [];
    os.registerIrq(90, 'test', function* () {
      seen.push(yield* mmioRead(0x3000, 4));
    });
    const job = os.submit(0, 'two reads', function* () {
      const a = yield* mmioRead(0x1000, 4);
      const b = yield* mmioRead(0x2000, 4);
      return a + b;
    });
    const p = os.program(0);
    expect(p.irqUnmasked).toBe(false);
    expect(p.resume(0)).toEqual({ kind: 'sysreg-write', reg: 'ICC_PMR_EL1', value: 0xff });
    expect(p.resume(0)).toEqual({ kind: 'sysreg-write', reg: 'ICC_IGRPEN1_EL1', value: 1 });
    expect(p.resume(0)).toEqual({ kind: 'mmio-read', gpa: 0x1000, size: 4 });
    expect(p.irqUnmasked).toBe(true);
    p.takeIrq();
    expect(p.resume(5)).toEqual({ kind: 'sysreg-read', reg: 'ICC_IAR1_EL1' });
    expect(p.irqUnmasked).toBe(false);
    expect(p.resume(90)).toEqual({ kind: 'mmio-read', gpa: 0x3000, size: 4 });
    expect(p.resume(99)).toEqual({ kind: 'sysreg-write', reg: 'ICC_EOIR1_EL1', value: 90 });
    expect(p.resume(0)).toEqual({ kind: 'mmio-read', gpa: 0x2000, size: 4 });
    expect(p.irqUnmasked).toBe(true);
    expect(p.resume(7)).toEqual({ kind: 'wfi' });
    expect(job).toMatchObject({ done: true, result: 12 });
    expect(seen).toEqual([99]);
    expect(os.stats.interrupts[90]).toBe(1);
    // A spurious acknowledge returns straight to the code.
    p.takeIrq();
    expect(p.resume(0)).toEqual({ kind: 'sysreg-read', reg: 'ICC_IAR1_EL1' });
    expect(p.resume(GIC_INTID_SPURIOUS)).toEqual({ kind: 'wfi' });
    expect(os.stats.spurious).toBe(1);
  });

  it('records a failing job and keeps IRQs masked inside irqsMasked sections', () => {
    const rig = new GuestRig();
    const os = rig.os;
    const masked: boolean[] = [];
    const p = os.program(0);
    const bad = os.submit(0, 'bad', function* () {
      yield* os.irqsMasked(
        (function* () {
          yield* mmioRead(0x1000, 4);
          guestFail('broken');
        })(),
      );
    });
    const good = os.submit(0, 'good', function* () {
      return yield* mmioRead(0x2000, 4);
    });
    p.resume(0);
    p.resume(0);
    expect(p.resume(0)).toMatchObject({ gpa: 0x1000 });
    masked.push(p.irqUnmasked);
    expect(p.resume(1)).toMatchObject({ gpa: 0x2000 });
    masked.push(p.irqUnmasked);
    p.resume(3);
    expect(masked).toEqual([false, true]);
    expect(bad).toMatchObject({ done: true, error: 'broken' });
    expect(good).toMatchObject({ done: true, result: 3 });
    expect(os.stats.jobs).toEqual({ submitted: 2, done: 1, failed: 1 });
  });

  it('runs jobs on a second vCPU (SVA munmap polls the command queue there)', () => {
    const rig = new GuestRig({ cpus: 2 });
    expect(rig.boot().error).toBeUndefined();
    const p = rig.os.spawn('p');
    const dev = rig.os.devices[0]!;
    expect(rig.runJob(rig.os.submit(1, 'bind', () => rig.os.sva.bind(dev, p))).result).toBe(1);
    const va = p.mmap(0x1000);
    expect(rig.runJob(rig.os.submit(1, 'munmap', () => rig.os.sva.munmap(p, va, 0x1000))).result).toBe(0);
    expect(p.gpaOf(va)).toBeUndefined();
  });

  it('takes the device error interrupt when a completion record cannot be written', () => {
    const rig = new GuestRig();
    expect(rig.boot().error).toBeUndefined();
    const p = rig.os.spawn('p');
    const dev = rig.os.devices[0]!;
    rig.runJob(rig.os.submit(0, 'bind', () => rig.os.sva.bind(dev, p)));
    const drv = rig.os.pdma[0]!;
    const page = drv.completionPage(p);
    const dst = p.mmap(0x1000);
    expect(rig.runJob(rig.os.submit(0, 'unmap compl', () => rig.os.sva.munmap(p, page, 0x1000))).result).toBe(
      0,
    );
    const j = rig.runJob(
      rig.os.submit(0, 'dma', () => drv.submit([{ op: 'fill', proc: p, dst, len: 8, pattern: [9, 9] }])),
    );
    expect(j.error).toBeUndefined();
    expect(drv.errorIrqs).toBe(1);
    expect(drv.errors[0]!.error & PDMA_ERROR_COMPL_FAULT).toBe(PDMA_ERROR_COMPL_FAULT);
    expect(drv.errors[0]!.addr).toBe(page);
    expect(p.faults.map((f) => f.addr)).toEqual([page]);
    // The data itself moved.
    expect(p.read(dst, 1)![0]).toBe(9);
    expect(COMPL_BYTES).toBe(32);
  });
});

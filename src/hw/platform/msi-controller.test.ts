/**
 * The MSI doorbell: delivery of (requester, data) to the registered handler, undeliverable and
 * ignored writes, registration rules, and its place on the system bus.
 */
import { describe, expect, it } from 'vitest';
import { PhysMem } from '../memory.ts';
import { MSI_DOORBELL_PA, MSI_FRAME_BASE, MsiController } from './msi-controller.ts';
import { SystemBus } from './system-bus.ts';

const le32 = (v: number): Uint8Array => new Uint8Array(new Uint32Array([v]).buffer);

describe('MsiController', () => {
  it('sits at the documented frame, outside host RAM [1 GiB, 2 GiB)', () => {
    const msi = new MsiController();
    expect(msi.base).toBe(MSI_FRAME_BASE);
    expect(msi.doorbell).toBe(0x0809_0040);
    expect(MSI_DOORBELL_PA).toBe(0x0809_0040);
    expect(msi.base + msi.size <= 0x4000_0000).toBe(true);
    expect(() => new MsiController({ base: 0x0809_1000 })).toThrow();
  });

  it('a 4-byte doorbell write delivers (sid, data) to the registered handler', () => {
    const bus = new SystemBus({ mem: new PhysMem() });
    const msi = new MsiController();
    msi.attach(bus);
    const got: [number, number][] = [];
    expect(msi.register(8, 0x1234_5678, (sid, ev) => got.push([sid, ev]))).toBe(true);
    expect(bus.dmaWrite(8, -1, MSI_DOORBELL_PA, le32(0x1234_5678))).toEqual({ ok: true });
    expect(got).toEqual([[8, 0x1234_5678]]);
    // Same data from another requester: a different interrupt, with no handler.
    bus.dmaWrite(9, -1, MSI_DOORBELL_PA, le32(0x1234_5678));
    expect(got).toHaveLength(1);
    expect(msi.stats).toEqual({ delivered: 1, undeliverable: 1, ignored: 0 });
    expect(msi.lastUndeliverable).toEqual({ sid: 9, eventId: 0x1234_5678 });
  });

  it('ignores other writes in the frame and reads as zero', () => {
    const bus = new SystemBus({ mem: new PhysMem() });
    const msi = new MsiController();
    msi.attach(bus);
    msi.register(1, 5, () => {
      throw new Error('must not be delivered');
    });
    bus.dmaWrite(1, -1, MSI_DOORBELL_PA, new Uint8Array([5, 0]));
    bus.dmaWrite(1, -1, MSI_DOORBELL_PA + 4, le32(5));
    expect(msi.stats.ignored).toBe(2);
    const out = new Uint8Array(4).fill(0xff);
    expect(bus.dmaRead(1, -1, MSI_DOORBELL_PA, out)).toEqual({ ok: true });
    expect(out).toEqual(new Uint8Array(4));
  });

  it('registration: one handler per pair; unregister frees it', () => {
    const msi = new MsiController();
    const h = (): void => {};
    expect(msi.register(1, 2, h)).toBe(true);
    expect(msi.register(1, 2, h)).toBe(false);
    expect(msi.isRegistered(1, 2)).toBe(true);
    expect(msi.unregister(1, 2)).toBe(true);
    expect(msi.unregister(1, 2)).toBe(false);
    expect(msi.isRegistered(1, 2)).toBe(false);
    expect(msi.deliver(1, 2)).toBe(false);
    expect(msi.register(1, 2, h)).toBe(true);
    expect(msi.deliver(1, 2)).toBe(true);
  });
});

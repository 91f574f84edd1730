/**
 * An MSI doorbell controller in the manner of a GICv3 ITS translation frame: a 4-byte write of
 * `data` to its doorbell (GITS_TRANSLATER) from requester `sid` is the interrupt (DeviceID = sid,
 * EventID = data). Handlers are registered per (sid, eventId) pair; a write with no handler is
 * counted as undeliverable (a real ITS would drop it and could record an error). The ITS tables
 * (device table, ITT, collections, LPIs) are not modelled: registration is the mapping.
 *
 * The frame is an MMIO region of the `SystemBus`, so MSIs reach it as DMA writes — through the
 * IOMMU when the device sits behind one, as on Arm, which is why an MSI needs an IOMMU mapping
 * of the doorbell page (Linux's MSI cookie / guest MSI binding).
 *
 * Decision: the frame sits at 0x0809_0000 (64 KiB) with the doorbell at 0x0809_0040 — QEMU virt's
 * ITS (0x0808_0000) translation frame, outside host RAM [0x4000_0000, 0x8000_0000). Only aligned
 * 4-byte writes to the doorbell deliver; other writes in the frame are ignored (`stats.ignored`),
 * and reads return zeros (GITS_TRANSLATER is write-only). Handlers run synchronously inside the
 * DMA write that delivered the interrupt: a handler that wants to run later (the host kernel's
 * interrupt entry) must defer by itself.
 */

import type { MmioHandler, MmioRegion, SystemBus } from './system-bus.ts';

export const MSI_FRAME_BASE = 0x0809_0000;
export const MSI_FRAME_SIZE = 0x1_0000;
/** GITS_TRANSLATER's offset in the translation frame. */
export const MSI_DOORBELL_OFFSET = 0x40;
export const MSI_DOORBELL_PA = MSI_FRAME_BASE + MSI_DOORBELL_OFFSET;

export type MsiHandler = (sid: number, eventId: number) => void;

export interface MsiControllerStats {
  delivered: number;
  undeliverable: number;
  /** Writes in the frame that are not a 4-byte doorbell write. */
  ignored: number;
}

export class MsiController implements MmioHandler {
  readonly base: number;
  readonly size = MSI_FRAME_SIZE;
  readonly doorbell: number;
  readonly stats: MsiControllerStats = { delivered: 0, undeliverable: 0, ignored: 0 };
  /** The last undeliverable interrupt, for diagnostics. */
  lastUndeliverable: { sid: number; eventId: number } | null = null;
  private readonly handlers = new Map<number, Map<number, MsiHandler>>();

  /** `base`: the frame's physical address (64 KiB aligned); default MSI_FRAME_BASE. */
  constructor(opts: { base?: number } = {}) {
    this.base = opts.base ?? MSI_FRAME_BASE;
    if (!Number.isSafeInteger(this.base) || this.base < 0 || this.base % MSI_FRAME_SIZE !== 0) {
      throw new Error('msi controller: the frame base must be 64 KiB aligned');
    }
    this.doorbell = this.base + MSI_DOORBELL_OFFSET;
  }

  /** The MMIO region to add to a SystemBus. */
  region(): MmioRegion {
    return { name: 'msi-doorbell', base: this.base, size: this.size, handler: this };
  }

  /** Adds the frame to `bus`. */
  attach(bus: SystemBus): void {
    bus.addMmio(this.region());
  }

  /** Routes (sid, eventId) to `handler`. False (and nothing changes) when the pair already has one. */
  register(sid: number, eventId: number, handler: MsiHandler): boolean {
    let bySid = this.handlers.get(sid);
    if (bySid === undefined) {
      bySid = new Map();
      this.handlers.set(sid, bySid);
    }
    if (bySid.has(eventId)) return false;
    bySid.set(eventId, handler);
    return true;
  }

  /** Removes the pair's handler; false when there was none. */
  unregister(sid: number, eventId: number): boolean {
    const bySid = this.handlers.get(sid);
    if (bySid === undefined || !bySid.delete(eventId)) return false;
    if (bySid.size === 0) this.handlers.delete(sid);
    return true;
  }

  isRegistered(sid: number, eventId: number): boolean {
    return this.handlers.get(sid)?.has(eventId) ?? false;
  }

  /** Delivers (sid, eventId) as a doorbell write would. */
  deliver(sid: number, eventId: number): boolean {
    const h = this.handlers.get(sid)?.get(eventId);
    if (h === undefined) {
      this.stats.undeliverable++;
      this.lastUndeliverable = { sid, eventId };
      return false;
    }
    this.stats.delivered++;
    h(sid, eventId);
    return true;
  }

  // ------------------------------------------------------------------ MmioHandler

  write(pa: number, data: Uint8Array, sourceSid: number): boolean {
    if (pa !== this.doorbell || data.length !== 4) {
      this.stats.ignored++;
      return true;
    }
    const eventId = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
    this.deliver(sourceSid, eventId);
    return true;
  }

  read(_pa: number, out: Uint8Array, _sourceSid: number): boolean {
    out.fill(0);
    return true;
  }
}

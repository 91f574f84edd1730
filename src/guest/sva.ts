/**
 * Shared Virtual Addressing in the guest (Linux's iommu-sva with arm-smmu-v3-sva): binding a
 * process address space to a device under a PASID — the CD at that SubstreamID gets the
 * process's ASID and page table (TTB0, T0SZ = 16, TG0 = 4 KiB, IPS, EPD1, AA64, R, A, V), then
 * CFGI_CD + CMD_SYNC — and unbinding (CD cleared, CFGI_CD, TLBI_NH_ASID, SYNC, PASID freed).
 * munmap invalidates the device TLBs by VA (TLBI_NH_VA with the ASID, Leaf) before the pages are
 * freed. Fault events with a SubstreamID are recorded against the process bound to that PASID on
 * that device; events without one against the kernel's DMA domain.
 *
 * Decisions: one PASID per process (Linux's mm->pasid), the lowest free in [1, 2^width) where
 * width = the device's S1CDMax, kept while the process is bound to any device; binding a process
 * whose PASID is beyond another device's width is -ERANGE. munmap covers whole 2 MiB blocks
 * (a partial block is -EINVAL).
 *
 * Fault injection: `remapNoInvalidate` points a 4 KiB page at a new frame without any TLBI — the
 * bug the stale-IOTLB demonstration needs; `flush` issues the missing invalidation later and only
 * then frees the frames left behind.
 */

import { eventInputAddr, type SmmuEvent } from '../hw/smmuv3/event-record.ts';
import { EINVAL, ENODEV, ENOENT, ENOMEM, ENOSPC, ERANGE } from '../uapi/errno.ts';
import { Ida } from './ida.ts';
import type { Kernel } from './kernel.ts';
import type { PciFunction } from './pci.ts';
import { type GuestProcess, type MapUnit, USER_RW } from './process.ts';
import type { SmmuDriver, SmmuMaster } from './smmuv3.ts';
import type { Guest } from './trap.ts';

/** A fault without a SubstreamID (the kernel's DMA domain), or with a PASID nobody holds. */
export interface KernelFault {
  readonly device: string;
  readonly pasid: number;
  readonly addr: number;
  readonly event: string;
  readonly write: boolean;
}

export class Sva {
  readonly k: Kernel;
  private readonly smmu: () => SmmuDriver | undefined;
  /** The guest's PASID space (20 bits; PASID 0 is the kernel's, via S1DSS = SSID0). */
  readonly pasids = new Ida(1, 2 ** 20 - 1);
  readonly kernelFaults: KernelFault[] = [];
  /** Devices (StreamIDs) each process is bound to. */
  readonly bonds = new Map<GuestProcess, Set<number>>();
  /** Frames left mapped nowhere by remapNoInvalidate, waiting for `flush`. */
  private readonly stale = new Map<GuestProcess, MapUnit[]>();

  constructor(k: Kernel, smmu: () => SmmuDriver | undefined) {
    this.k = k;
    this.smmu = smmu;
  }

  private master(dev: PciFunction): { smmu: SmmuDriver; m: SmmuMaster } | undefined {
    const smmu = this.smmu();
    const m = smmu?.masters.get(dev.rid);
    return smmu && m ? { smmu, m } : undefined;
  }

  /** iommu_sva_bind_device: the PASID, or -errno. */
  *bind(dev: PciFunction, proc: GuestProcess): Guest<number> {
    const x = this.master(dev);
    if (x === undefined) return -ENODEV;
    const { smmu, m } = x;
    if (m.ssidBits === 0) return -EINVAL;
    if (proc.pt === undefined) return -ENOMEM;
    const bound = this.bonds.get(proc) ?? new Set<number>();
    if (bound.has(m.sid) && proc.pasid !== undefined) return proc.pasid;
    const fresh = proc.pasid === undefined;
    const pasid = fresh ? this.pasids.alloc(1, 2 ** m.ssidBits - 1) : proc.pasid;
    if (pasid === undefined) return -ENOSPC;
    if (pasid >= 2 ** m.ssidBits) return -ERANGE;
    const rc = yield* smmu.writeCd(m, pasid, smmu.cdParams(proc.asid, proc.pt.root));
    if (rc !== 0) {
      if (fresh) this.pasids.free(pasid);
      return rc;
    }
    proc.pasid = pasid;
    bound.add(m.sid);
    this.bonds.set(proc, bound);
    this.k.printk(
      `sva: ${proc.name} (pid ${proc.pid}) bound to ${dev.name} with PASID ${pasid}, asid ${proc.asid}`,
    );
    return pasid;
  }

  /** iommu_sva_unbind_device: 0 or -errno. */
  *unbind(dev: PciFunction, proc: GuestProcess): Guest<number> {
    const x = this.master(dev);
    const bound = this.bonds.get(proc);
    if (x === undefined || bound === undefined || !bound.has(x.m.sid) || proc.pasid === undefined)
      return -ENOENT;
    const { smmu, m } = x;
    const pasid = proc.pasid;
    const rc = yield* smmu.writeCd(m, pasid, null);
    const rc2 = yield* smmu.invalidateAsid(proc.asid);
    bound.delete(m.sid);
    if (bound.size === 0) {
      this.bonds.delete(proc);
      this.pasids.free(pasid);
      proc.pasid = undefined;
    }
    this.k.printk(`sva: ${proc.name} unbound from ${dev.name} (PASID ${pasid})`);
    return rc !== 0 ? rc : rc2;
  }

  /** The units of [va, va+len), or -EINVAL when the range cuts a unit. */
  private unitsIn(proc: GuestProcess, va: number, len: number): MapUnit[] | number {
    const out: MapUnit[] = [];
    for (const u of proc.units.values()) {
      const overlaps = u.va < va + len && va < u.va + u.size;
      if (!overlaps) continue;
      if (u.va < va || u.va + u.size > va + len) return -EINVAL;
      out.push(u);
    }
    return out.sort((a, b) => a.va - b.va);
  }

  private *invalidate(proc: GuestProcess, units: readonly MapUnit[]): Guest<number> {
    const smmu = this.smmu();
    if (smmu === undefined || !this.bonds.has(proc) || units.length === 0) return 0;
    return yield* smmu.invalidateVa(
      proc.asid,
      units.map((u) => ({ va: u.va, size: u.size, step: u.size })),
    );
  }

  /** munmap: unmap, TLBI_NH_VA per page/block + SYNC, then free the frames. 0 or -errno. */
  *munmap(proc: GuestProcess, va: number, len: number): Guest<number> {
    if (proc.pt === undefined) return -EINVAL;
    const units = this.unitsIn(proc, va, len);
    if (typeof units === 'number') return units;
    for (const u of units) {
      proc.pt.unmap(u.va, u.size);
      proc.units.delete(u.va);
    }
    const rc = yield* this.invalidate(proc, units);
    for (const u of units) this.k.alloc?.free(u.gpa, u.size);
    this.freeStale(proc, va, len);
    return rc;
  }

  /**
   * FAULT INJECTION KNOB (a deliberate driver bug): points the 4 KiB page at `va` at a fresh frame
   * without invalidating the SMMU's TLB, so a device that cached the old translation keeps using
   * the old frame (which stays allocated until `flush`). Returns both frames, or -errno.
   */
  remapNoInvalidate(proc: GuestProcess, va: number): { oldGpa: number; newGpa: number } | number {
    const u = proc.units.get(va);
    if (u === undefined || proc.pt === undefined) return -ENOENT;
    if (u.size !== 0x1000) return -EINVAL;
    const newGpa = this.k.alloc?.alloc(u.size);
    if (newGpa === undefined) return -ENOMEM;
    const oldGpa = u.gpa;
    proc.pt.unmap(va, u.size);
    if (!proc.pt.map(va, newGpa, u.size, USER_RW).ok) {
      proc.pt.map(va, oldGpa, u.size, USER_RW);
      this.k.alloc?.free(newGpa, u.size);
      return -ENOMEM;
    }
    u.gpa = newGpa;
    const list = this.stale.get(proc) ?? [];
    list.push({ va, gpa: oldGpa, size: u.size });
    this.stale.set(proc, list);
    this.k.printk(
      `sva: ${proc.name} va 0x${va.toString(16)} remapped WITHOUT invalidation (fault injection)`,
    );
    return { oldGpa, newGpa };
  }

  /** The missing invalidation for [va, va+len): TLBI_NH_VA + SYNC, then frees stale frames. */
  *flush(proc: GuestProcess, va: number, len: number): Guest<number> {
    const units = [...proc.units.values()].filter((u) => u.va < va + len && va < u.va + u.size);
    const rc = yield* this.invalidate(proc, units);
    this.freeStale(proc, va, len);
    return rc;
  }

  private freeStale(proc: GuestProcess, va: number, len: number): void {
    const list = this.stale.get(proc);
    if (list === undefined) return;
    const keep = list.filter((s) => {
      const inside = s.va >= va && s.va < va + len;
      if (inside) this.k.alloc?.free(s.gpa, s.size);
      return !inside;
    });
    this.stale.set(proc, keep);
  }

  /** The process bound to `pasid` on the device with StreamID `sid`. */
  processOf(sid: number, pasid: number): GuestProcess | undefined {
    for (const [p, sids] of this.bonds) if (p.pasid === pasid && sids.has(sid)) return p;
    return undefined;
  }

  /** The SMMU driver's fault sink. */
  onEvent(m: SmmuMaster | undefined, ev: SmmuEvent): void {
    const device = m?.fn.name ?? `sid ${ev.streamId}`;
    const addr = eventInputAddr(ev);
    const write = !ev.rnw;
    this.k.stats.faults++;
    const proc = ev.substreamId >= 0 && m ? this.processOf(m.sid, ev.substreamId) : undefined;
    if (proc !== undefined) {
      proc.faults.push({ pasid: ev.substreamId, addr, event: ev.name, write, device });
      this.k.printk(`sva: ${ev.name} at 0x${addr.toString(16)} for ${proc.name} (PASID ${ev.substreamId})`);
      return;
    }
    this.kernelFaults.push({ device, pasid: ev.substreamId, addr, event: ev.name, write });
  }
}

/**
 * The system bus devices master: what a PCIe root complex does with a device's memory request.
 * A request carries the requester's StreamID and optional SubstreamID (PASID); with an IOMMU in
 * front (an SMMUv3's `transact`) its device address is translated first, otherwise it is the
 * physical address. Each translated segment then goes to an MMIO region when one covers it (an
 * MSI doorbell, say) and to host memory otherwise.
 *
 * Outcomes (`DmaOutcome` of src/hw/pci/regs.ts):
 * - a translation fault or any other IOMMU abort: `{ok: false, kind: 'fault', addr}` with the
 *   device address where translation stopped (the IOMMU has recorded its event);
 * - an SMMU RAZ/WI termination (CD.A = 0): success, reads return zeros, writes are dropped;
 * - a segment that is neither accessible RAM nor wholly inside one MMIO region, or an MMIO
 *   handler refusing the access: `{ok: false, kind: 'abort', addr}` (an external abort), `addr`
 *   being the device address of that segment.
 *
 * Decision: an access is all or nothing as far as translation and routing go — every segment is
 * translated and routed before any byte moves, so a fault or a hole leaves memory untouched. (The
 * devices of the model never issue a request that crosses a 4 KiB boundary, which is what a
 * real TLP does.) An MMIO handler that refuses an access part-way is the one exception: the
 * segments before it have been performed.
 *
 * The bus is re-entrant: an MMIO handler may deliver an interrupt whose handler starts more DMA;
 * each nesting level has its own translation result, so the success path allocates only the
 * subarray views of multi-segment accesses and the copies PhysMem.read returns.
 */

import { ACCESS_READ, ACCESS_WRITE } from '../../arch/vmsa.ts';
import type { MemoryPort } from '../memory.ts';
import type { DmaOutcome, DmaPort } from '../pci/regs.ts';
import { type DmaRequest, DmaResult, TXN_ABORT, TXN_RAZ_WI } from '../smmuv3/smmu.ts';

/** What sits behind an MMIO region. Returning false aborts the access. */
export interface MmioHandler {
  read(pa: number, out: Uint8Array, sourceSid: number): boolean;
  write(pa: number, data: Uint8Array, sourceSid: number): boolean;
}

export interface MmioRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly handler: MmioHandler;
}

/** The IOMMU's device-side interface (an Smmu, or anything translating the same way). */
export interface IommuFront {
  transact(req: DmaRequest, out: DmaResult): DmaResult;
}

export interface SystemBusOptions {
  /** Host memory. */
  readonly mem: MemoryPort;
  /** The IOMMU every request goes through; absent: device addresses are physical addresses. */
  readonly iommu?: IommuFront;
}

export interface SystemBusStats {
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  faults: number;
  aborts: number;
  /** Accesses the IOMMU terminated as RAZ/WI. */
  razWi: number;
  mmioReads: number;
  mmioWrites: number;
}

const OK: DmaOutcome = { ok: true };

/** Where a segment goes: -1 RAM, -2 nowhere (abort), else the index of its MMIO region. */
const TO_RAM = -1;
const NOWHERE = -2;

export class SystemBus implements DmaPort {
  readonly mem: MemoryPort;
  readonly iommu: IommuFront | null;
  readonly stats: SystemBusStats = {
    reads: 0,
    writes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    faults: 0,
    aborts: 0,
    razWi: 0,
    mmioReads: 0,
    mmioWrites: 0,
  };
  /**
   * Observer of every device write that lands in RAM (physical address, length, requester's
   * StreamID) — how a scenario checks isolation: which host bytes a device really wrote.
   */
  onRamWrite: ((pa: number, len: number, sid: number) => void) | undefined = undefined;
  private regions: MmioRegion[] = [];
  /** Per nesting depth: the request, its translation and the routes of its segments. */
  private readonly reqs: DmaRequest[] = [];
  private readonly results: DmaResult[] = [];
  private readonly routes: number[][] = [];
  private depth = 0;

  constructor(opts: SystemBusOptions) {
    this.mem = opts.mem;
    this.iommu = opts.iommu ?? null;
  }

  // ------------------------------------------------------------------ MMIO regions

  /** Adds an MMIO region. Throws if it is empty, misplaced, or overlaps another (a wiring mistake). */
  addMmio(region: MmioRegion): void {
    const { base, size } = region;
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new Error(`system bus: bad MMIO region ${region.name}`);
    }
    const clash = this.regions.find((r) => r.base < base + size && base < r.base + r.size);
    if (clash !== undefined) throw new Error(`system bus: ${region.name} overlaps ${clash.name}`);
    this.regions = [...this.regions, region].sort((a, b) => a.base - b.base);
  }

  /** Removes the region starting at `base`; false when there is none. */
  removeMmio(base: number): boolean {
    const n = this.regions.length;
    this.regions = this.regions.filter((r) => r.base !== base);
    return this.regions.length !== n;
  }

  mmioRegions(): readonly MmioRegion[] {
    return this.regions;
  }

  // ------------------------------------------------------------------ DmaPort

  dmaRead(sid: number, ssid: number, addr: number, out: Uint8Array, privileged = false): DmaOutcome {
    this.stats.reads++;
    return this.access(sid, ssid, addr, out, false, privileged);
  }

  dmaWrite(sid: number, ssid: number, addr: number, data: Uint8Array, privileged = false): DmaOutcome {
    this.stats.writes++;
    return this.access(sid, ssid, addr, data, true, privileged);
  }

  private access(
    sid: number,
    ssid: number,
    addr: number,
    buf: Uint8Array,
    write: boolean,
    priv: boolean,
  ): DmaOutcome {
    const len = buf.length;
    if (len === 0) return OK;
    const d = this.depth++;
    try {
      const res = this.resultAt(d);
      if (this.iommu === null) {
        res.reset();
        res.push(addr, addr, len);
      } else {
        const req = this.reqs[d]!;
        req.streamId = sid;
        req.substreamId = ssid;
        req.iova = addr;
        req.size = len;
        req.access = write ? ACCESS_WRITE : ACCESS_READ;
        req.privileged = priv;
        this.iommu.transact(req, res);
        if (res.status === TXN_ABORT) {
          this.stats.faults++;
          return { ok: false, kind: 'fault', addr: res.faultAddr };
        }
        if (res.status === TXN_RAZ_WI) {
          this.stats.razWi++;
          if (!write) buf.fill(0);
          return OK;
        }
      }
      // A handler may add or remove regions (copy-on-write): route and perform on one snapshot.
      const regions = this.regions;
      const routes = this.routes[d]!;
      for (let i = 0; i < res.count; i++) {
        const r = this.route(regions, res.pa[i]!, res.len[i]!);
        if (r === NOWHERE) {
          this.stats.aborts++;
          return { ok: false, kind: 'abort', addr: res.iova[i]! };
        }
        routes[i] = r;
      }
      let off = 0;
      for (let i = 0; i < res.count; i++) {
        const n = res.len[i]!;
        const part = res.count === 1 ? buf : buf.subarray(off, off + n);
        if (!this.perform(regions, routes[i]!, res.pa[i]!, part, write, sid)) {
          this.stats.aborts++;
          return { ok: false, kind: 'abort', addr: res.iova[i]! };
        }
        off += n;
      }
      if (write) this.stats.bytesWritten += len;
      else this.stats.bytesRead += len;
      return OK;
    } finally {
      this.depth--;
    }
  }

  private resultAt(d: number): DmaResult {
    while (this.results.length <= d) {
      this.results.push(new DmaResult());
      this.reqs.push({
        streamId: 0,
        substreamId: -1,
        iova: 0,
        size: 0,
        access: ACCESS_READ,
        privileged: false,
      });
      this.routes.push([]);
    }
    return this.results[d]!;
  }

  /** The MMIO region wholly covering [pa, pa+len), RAM, or nowhere. */
  private route(regions: readonly MmioRegion[], pa: number, len: number): number {
    const end = pa + len;
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i]!;
      if (r.base < end && pa < r.base + r.size) return pa >= r.base && end <= r.base + r.size ? i : NOWHERE;
    }
    return this.mem.isAccessible(pa, len) ? TO_RAM : NOWHERE;
  }

  private perform(
    regions: readonly MmioRegion[],
    route: number,
    pa: number,
    part: Uint8Array,
    write: boolean,
    sid: number,
  ): boolean {
    if (route === TO_RAM) {
      if (write) {
        this.onRamWrite?.(pa, part.length, sid);
        return this.mem.write(pa, part);
      }
      const data = this.mem.read(pa, part.length);
      if (data === undefined) return false;
      part.set(data);
      return true;
    }
    const h = regions[route]!.handler;
    if (write) {
      this.stats.mmioWrites++;
      return h.write(pa, part, sid);
    }
    this.stats.mmioReads++;
    return h.read(pa, part, sid);
  }
}

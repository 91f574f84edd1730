/**
 * A fake IOMMU driver for the iommu core's tests (not used by the model itself): an `IommuOps`
 * whose domains keep their mappings in a Map, with a configurable page-size bitmap, aperture and
 * reserved regions, a record of every call, failure injection per operation, and optional
 * operations that can be left out to exercise the core's "callback missing" paths.
 *
 * Its semantics are deliberately simple and close to what the core expects of a real driver:
 * `map` refuses a size outside the bitmap or an overlap (-EEXIST, as io-pgtable); `unmap` removes
 * every mapping overlapping the range (splitting a larger block) and returns the size when it
 * removed anything, else 0; a device is in at most one domain; `enableNesting` is -EPERM once a
 * domain has devices; guest MSI bindings go to the core's dma-iommu part like the SMMUv3 driver's.
 */

import { EEXIST, EINVAL, ENODEV, ENXIO, EPERM } from '../../uapi/errno.ts';
import type { IommuCacheInvalidateInfo, IommuPasidTableConfig } from '../../uapi/iommu.ts';
import { IommuCore, type IommuCoreOptions } from './core.ts';
import { bitSet53, ffs53 } from './pgsize.ts';
import {
  IOMMU_DOMAIN_TYPE_NAMES,
  type IommuCap,
  type IommuCoreServices,
  type IommuDevice,
  IommuDomain,
  type IommuDomainGeometry,
  type IommuOps,
  type IommuResvRegion,
} from './types.ts';

export const SZ_4K = 0x1000;
export const SZ_2M = 0x20_0000;
export const SZ_1G = 0x4000_0000;
/** The page sizes of a 4KB-granule SMMU: 4K | 2M | 1G. */
export const PGSIZE_4K_2M_1G = SZ_4K | SZ_2M | SZ_1G;

export type FakeOp =
  | 'probeDevice'
  | 'releaseDevice'
  | 'domainAlloc'
  | 'domainFree'
  | 'attachDev'
  | 'detachDev'
  | 'map'
  | 'unmap'
  | 'iotlbSync'
  | 'flushIotlbAll'
  | 'iovaToPhys'
  | 'enableNesting'
  | 'attachPasidTable'
  | 'detachPasidTable'
  | 'cacheInvalidate'
  | 'bindGuestMsi'
  | 'unbindGuestMsi'
  | 'getResvRegions';

export interface FakeCall {
  readonly op: FakeOp;
  readonly args: readonly unknown[];
}

export interface FakeMapping {
  readonly iova: number;
  readonly paddr: number;
  readonly size: number;
  readonly prot: number;
}

/** Optional operations that a test can leave out. */
export type FakeOptionalOp =
  | 'iotlbSync'
  | 'flushIotlbAll'
  | 'getResvRegions'
  | 'enableNesting'
  | 'attachPasidTable'
  | 'detachPasidTable'
  | 'cacheInvalidate'
  | 'bindGuestMsi'
  | 'unbindGuestMsi'
  | 'capable';

export interface FakeDriverOptions {
  readonly name?: string;
  readonly pgsizeBitmap?: number;
  /** Aperture of new domains, inclusive; default [0, 2^48 − 1]. */
  readonly aperture?: readonly [number, number];
  /** Domain types domainAlloc refuses. */
  readonly refuseTypes?: readonly number[];
  /** Reserved regions of every device. */
  readonly resvRegions?: readonly IommuResvRegion[];
  readonly omit?: readonly FakeOptionalOp[];
}

let fakeDomainSerial = 0;

export class FakeDomain extends IommuDomain {
  readonly serial = ++fakeDomainSerial;
  /** Mappings by IOVA (disjoint). */
  readonly mappings = new Map<number, FakeMapping>();
  /** The keys of `mappings`, ascending. */
  private readonly starts: number[] = [];
  readonly devices = new Set<IommuDevice>();
  nesting = false;
  pasidTable: IommuPasidTableConfig | undefined = undefined;
  readonly invalidations: IommuCacheInvalidateInfo[] = [];
  freed = false;

  /** The mappings overlapping [iova, end), ascending. */
  overlapping(iova: number, end: number): FakeMapping[] {
    let a = 0;
    let b = this.starts.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      const x = this.mappings.get(this.starts[m]!)!;
      if (x.iova + x.size <= iova) a = m + 1;
      else b = m;
    }
    const out: FakeMapping[] = [];
    for (let i = a; i < this.starts.length && this.starts[i]! < end; i++)
      out.push(this.mappings.get(this.starts[i]!)!);
    return out;
  }

  addMapping(m: FakeMapping): void {
    let a = 0;
    let b = this.starts.length;
    while (a < b) {
      const k = (a + b) >>> 1;
      if (this.starts[k]! < m.iova) a = k + 1;
      else b = k;
    }
    this.starts.splice(a, 0, m.iova);
    this.mappings.set(m.iova, m);
  }

  removeMapping(iova: number): void {
    if (!this.mappings.delete(iova)) return;
    this.starts.splice(this.starts.indexOf(iova), 1);
  }
}

interface Failure {
  skip: number;
  times: number;
  readonly errno: number;
}

export class FakeDriver implements IommuOps {
  readonly name: string;
  readonly pgsizeBitmap: number;
  readonly aperture: readonly [number, number];
  readonly refuseTypes: Set<number>;
  resvRegions: IommuResvRegion[];
  readonly calls: FakeCall[] = [];
  readonly probed = new Set<IommuDevice>();
  readonly attached = new Map<IommuDevice, FakeDomain>();
  readonly domains = new Set<FakeDomain>();
  services: IommuCoreServices | undefined = undefined;
  private readonly failures = new Map<FakeOp, Failure>();

  constructor(opts: FakeDriverOptions = {}) {
    this.name = opts.name ?? 'fake';
    this.pgsizeBitmap = opts.pgsizeBitmap ?? PGSIZE_4K_2M_1G;
    this.aperture = opts.aperture ?? [0, 2 ** 48 - 1];
    this.refuseTypes = new Set(opts.refuseTypes ?? []);
    this.resvRegions = [...(opts.resvRegions ?? [])];
    for (const op of opts.omit ?? []) Object.defineProperty(this, op, { value: undefined });
  }

  /**
   * Makes the next call of `op` (after `skip` successful ones) fail with `errno` (for
   * domainAlloc: return undefined; for unmap: report 0 bytes), `times` times in a row.
   */
  failNext(op: FakeOp, errno: number, opts: { skip?: number; times?: number } = {}): void {
    this.failures.set(op, { skip: opts.skip ?? 0, times: opts.times ?? 1, errno });
  }

  /** Clears the call log. */
  clearCalls(): void {
    this.calls.length = 0;
  }

  /** The calls of one operation. */
  callsOf(op: FakeOp): FakeCall[] {
    return this.calls.filter((c) => c.op === op);
  }

  private record(op: FakeOp, args: readonly unknown[]): number {
    this.calls.push({ op, args });
    const f = this.failures.get(op);
    if (f === undefined) return 0;
    if (f.skip > 0) {
      f.skip--;
      return 0;
    }
    f.times--;
    if (f.times <= 0) this.failures.delete(op);
    return f.errno;
  }

  capable(cap: IommuCap): boolean {
    return cap === 'cache-coherency' || cap === 'noexec';
  }

  domainAlloc(type: number): IommuDomain | undefined {
    if (this.record('domainAlloc', [type]) !== 0 || this.refuseTypes.has(type)) return undefined;
    const geometry: IommuDomainGeometry = {
      apertureStart: this.aperture[0],
      apertureEnd: this.aperture[1],
      forceAperture: true,
    };
    const d = new FakeDomain(type, this, this.pgsizeBitmap, geometry);
    this.domains.add(d);
    return d;
  }

  domainFree(domain: IommuDomain): void {
    this.record('domainFree', [domain]);
    const d = domain as FakeDomain;
    d.freed = true;
    this.domains.delete(d);
  }

  probeDevice(dev: IommuDevice): number {
    const r = this.record('probeDevice', [dev]);
    if (r !== 0) return r;
    if (dev.iommuName !== this.name) return -ENODEV;
    this.probed.add(dev);
    return 0;
  }

  releaseDevice(dev: IommuDevice): void {
    this.record('releaseDevice', [dev]);
    this.probed.delete(dev);
  }

  attachDev(domain: IommuDomain, dev: IommuDevice): number {
    const r = this.record('attachDev', [domain, dev]);
    if (r !== 0) return r;
    if (domain.ops !== this) return -ENXIO;
    const d = domain as FakeDomain;
    if (d.freed || !this.probed.has(dev)) return -EINVAL;
    this.attached.get(dev)?.devices.delete(dev);
    this.attached.set(dev, d);
    d.devices.add(dev);
    return 0;
  }

  detachDev(domain: IommuDomain, dev: IommuDevice): void {
    this.record('detachDev', [domain, dev]);
    const d = domain as FakeDomain;
    if (this.attached.get(dev) === d) this.attached.delete(dev);
    d.devices.delete(dev);
  }

  map(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number {
    const r = this.record('map', [domain, iova, paddr, size, prot]);
    if (r !== 0) return r;
    const d = domain as FakeDomain;
    if (ffs53(size) < 0 || !bitSet53(domain.pgsizeBitmap, ffs53(size)) || 2 ** ffs53(size) !== size)
      return -EINVAL;
    if (d.overlapping(iova, iova + size).length > 0) return -EEXIST;
    d.addMapping({ iova, paddr, size, prot });
    return 0;
  }

  unmap(domain: IommuDomain, iova: number, size: number): number {
    if (this.record('unmap', [domain, iova, size]) !== 0) return 0;
    const d = domain as FakeDomain;
    const end = iova + size;
    let removed = false;
    for (const m of d.overlapping(iova, end)) {
      d.removeMapping(m.iova);
      removed = true;
      // A block larger than the range: what lies outside stays mapped.
      if (m.iova < iova) d.addMapping({ ...m, size: iova - m.iova });
      if (m.iova + m.size > end)
        d.addMapping({
          iova: end,
          paddr: m.paddr + (end - m.iova),
          size: m.iova + m.size - end,
          prot: m.prot,
        });
    }
    return removed ? size : 0;
  }

  iotlbSync(domain: IommuDomain): void {
    this.record('iotlbSync', [domain]);
  }

  flushIotlbAll(domain: IommuDomain): void {
    this.record('flushIotlbAll', [domain]);
  }

  iovaToPhys(domain: IommuDomain, iova: number): number {
    const m = (domain as FakeDomain).overlapping(iova, iova + 1)[0];
    return m === undefined ? 0 : m.paddr + (iova - m.iova);
  }

  getResvRegions(dev: IommuDevice): IommuResvRegion[] {
    this.record('getResvRegions', [dev]);
    return [...this.resvRegions];
  }

  enableNesting(domain: IommuDomain): number {
    const r = this.record('enableNesting', [domain]);
    if (r !== 0) return r;
    const d = domain as FakeDomain;
    if (d.devices.size > 0) return -EPERM;
    d.nesting = true;
    return 0;
  }

  attachPasidTable(domain: IommuDomain, cfg: IommuPasidTableConfig): number {
    const r = this.record('attachPasidTable', [domain, cfg]);
    if (r !== 0) return r;
    (domain as FakeDomain).pasidTable = cfg;
    return 0;
  }

  detachPasidTable(domain: IommuDomain): void {
    this.record('detachPasidTable', [domain]);
    (domain as FakeDomain).pasidTable = undefined;
  }

  cacheInvalidate(domain: IommuDomain, dev: IommuDevice, info: IommuCacheInvalidateInfo): number {
    const r = this.record('cacheInvalidate', [domain, dev, info]);
    if (r !== 0) return r;
    (domain as FakeDomain).invalidations.push(info);
    return 0;
  }

  bindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    const r = this.record('bindGuestMsi', [domain, giova, gpa, size]);
    if (r !== 0) return r;
    if (this.services === undefined) return -ENODEV;
    return this.services.dmaBindGuestMsi(domain, giova, gpa, size);
  }

  unbindGuestMsi(domain: IommuDomain, giova: number): void {
    this.record('unbindGuestMsi', [domain, giova]);
    this.services?.dmaUnbindGuestMsi(domain, giova);
  }

  /** The driver's state as plain data. */
  snapshot(): unknown {
    return {
      probed: [...this.probed].map((d) => d.name).sort(),
      attached: [...this.attached].map(([dev, d]) => [dev.name, d.serial]).sort(),
      domains: [...this.domains]
        .sort((a, b) => a.serial - b.serial)
        .map((d) => ({
          serial: d.serial,
          type: IOMMU_DOMAIN_TYPE_NAMES[d.type],
          mappings: [...d.mappings.values()].sort((a, b) => a.iova - b.iova),
          devices: [...d.devices].map((x) => x.name).sort(),
          nesting: d.nesting,
          pasidTable:
            d.pasidTable === undefined ? null : { ...d.pasidTable, base_ptr: String(d.pasidTable.base_ptr) },
          invalidations: d.invalidations.length,
        })),
    };
  }
}

/** A PCI device description for tests. */
export function fakeDevice(
  name: string,
  opts: { iommuName?: string; isolationKey?: string; bus?: 'pci' | 'platform'; ids?: number[] } = {},
): IommuDevice {
  const dev: { -readonly [K in keyof IommuDevice]: IommuDevice[K] } = {
    name,
    bus: opts.bus ?? 'pci',
    iommuName: opts.iommuName ?? 'fake',
    ids: opts.ids ?? [0],
    pasidBits: 0,
  };
  if (opts.isolationKey !== undefined) dev.isolationKey = opts.isolationKey;
  return dev;
}

/** A core with one fake driver registered as `drv.name`. */
export function fakeCore(
  driverOpts: FakeDriverOptions = {},
  coreOpts: IommuCoreOptions = {},
): { core: IommuCore; drv: FakeDriver } {
  const core = new IommuCore(coreOpts);
  const drv = new FakeDriver(driverOpts);
  const services = core.registerIommu(drv.name, drv);
  if (typeof services === 'number') throw new Error(`registerIommu: ${services}`);
  drv.services = services;
  return { core, drv };
}

/** The core's and the driver's state together, for "nothing changed" assertions. */
export function fullSnapshot(core: IommuCore, ...drivers: FakeDriver[]): unknown {
  return { core: core.snapshot(), drivers: drivers.map((d) => d.snapshot()) };
}

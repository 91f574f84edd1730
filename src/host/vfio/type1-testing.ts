/**
 * Test helpers for the type1 backend (not used by the model): argument buffers for GET_INFO,
 * MAP_DMA and UNMAP_DMA, two rigs — a real host (SMMUv3s, processes) and a fake-driver host for
 * failure injection — and a snapshot of everything a refused type1 request must leave unchanged.
 */

import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../uapi/vfio-type1.ts';
import { Host, type HostOptions } from '../host.ts';
import type { IommuCore, IommuGroup } from '../iommu/core.ts';
import { FakeDriver, type FakeDriverOptions, fakeCore } from '../iommu/fake-driver.ts';
import type { IommuDevice } from '../iommu/types.ts';
import { Kernel } from '../kernel/kernel.ts';
import { createHostMemory, type HostMemory } from '../kernel/mm.ts';
import type { Process } from '../kernel/process.ts';
import { IoctlArg } from '../uaccess.ts';
import { VfioIommuType1, type VfioIommuType1Options } from './type1.ts';

export const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

export interface MapArgs {
  readonly vaddr: number | bigint;
  readonly iova: number | bigint;
  readonly size: number | bigint;
  readonly flags?: number;
  readonly argsz?: number;
}

/** A struct vfio_iommu_type1_dma_map buffer (argsz 32, READ|WRITE unless told). */
export function mapBuf(a: MapArgs): Uint8Array {
  return vfio_iommu_type1_dma_map.encode({
    argsz: a.argsz ?? vfio_iommu_type1_dma_map.size,
    flags: a.flags ?? RW,
    vaddr: a.vaddr,
    iova: a.iova,
    size: a.size,
  });
}

export interface UnmapArgs {
  readonly iova: number | bigint;
  readonly size: number | bigint;
  readonly flags?: number;
  readonly argsz?: number;
}

/** A struct vfio_iommu_type1_dma_unmap buffer (argsz 24). */
export function unmapBuf(a: UnmapArgs): Uint8Array {
  return vfio_iommu_type1_dma_unmap.encode({
    argsz: a.argsz ?? vfio_iommu_type1_dma_unmap.size,
    flags: a.flags ?? 0,
    iova: a.iova,
    size: a.size,
  });
}

/** A GET_INFO buffer of `len` bytes whose argsz says `argsz` (default: the buffer's length). */
export function infoBuf(len: number, argsz = len): Uint8Array {
  const b = new Uint8Array(len);
  if (len >= 4) b.set(vfio_iommu_type1_info.encode({ argsz }).subarray(0, Math.min(len, 24)));
  return b;
}

/** MAP_DMA through the backend; returns the result. */
export function doMap(c: VfioIommuType1, proc: Process, a: MapArgs): number {
  return c.mapDma(proc, IoctlArg.ofBuffer(mapBuf(a)));
}

/** UNMAP_DMA; the result and the size written back (undefined when nothing was). */
export function doUnmap(c: VfioIommuType1, proc: Process, a: UnmapArgs): { ret: number; size: bigint } {
  const b = unmapBuf(a);
  const ret = c.unmapDma(proc, IoctlArg.ofBuffer(b));
  return { ret, size: vfio_iommu_type1_dma_unmap.decode(b).size };
}

/** Opens a container of `type`, throwing on failure. */
export function openType1(core: IommuCore, type: number, opts: VfioIommuType1Options = {}): VfioIommuType1 {
  const c = VfioIommuType1.open(core, type, opts);
  if (typeof c === 'number') throw new Error(`open: ${c}`);
  return c;
}

// ---------------------------------------------------------------- the SMMUv3 rig

export interface Type1Rig {
  readonly host: Host;
  readonly proc: Process;
  /** Adds a PCI device on `iommu` with StreamID `sid`; returns it and its group. */
  addDevice(name: string, sid: number, iommu?: string): { dev: IommuDevice; group: IommuGroup };
}

/** A host (256 MiB of RAM, the SMMUs given) and a process "qemu". */
export function type1Rig(opts: HostOptions = {}): Type1Rig {
  const host = new Host({ ramSize: 0x1000_0000, ...opts });
  const proc = host.kernel.spawn('qemu');
  return {
    host,
    proc,
    addDevice(name, sid, iommu = 'smmu0') {
      const dev: IommuDevice = { name, bus: 'pci', iommuName: iommu, ids: [sid], pasidBits: 0 };
      const r = host.addDevice(dev);
      if (r !== 0) throw new Error(`addDevice ${name}: ${r}`);
      const group = host.iommu.iommuGroupGet(dev);
      if (group === undefined) throw new Error(`no group for ${name}`);
      return { dev, group };
    },
  };
}

// ---------------------------------------------------------------- the fake-driver rig

export interface FakeRig {
  readonly core: IommuCore;
  readonly drv: FakeDriver;
  readonly mem: HostMemory;
  readonly kernel: Kernel;
  readonly proc: Process;
  /** A second fake IOMMU instance named "fake2" (other ops: never a compatible domain). */
  addDriver(opts?: FakeDriverOptions): FakeDriver;
  /** Adds a device behind `iommu` (default "fake"); returns it and its group. */
  addDevice(
    name: string,
    opts?: { iommu?: string; isolationKey?: string; bus?: 'pci' | 'platform' },
  ): { dev: IommuDevice; group: IommuGroup };
}

export function fakeRig(driverOpts: FakeDriverOptions = {}): FakeRig {
  const { core, drv } = fakeCore(driverOpts);
  const mem = createHostMemory();
  const kernel = new Kernel(mem);
  const proc = kernel.spawn('qemu');
  return {
    core,
    drv,
    mem,
    kernel,
    proc,
    addDriver(opts = {}) {
      const d = new FakeDriver({ name: 'fake2', ...opts });
      const s = core.registerIommu(d.name, d);
      if (typeof s === 'number') throw new Error(`registerIommu: ${s}`);
      d.services = s;
      return d;
    },
    addDevice(name, o = {}) {
      const dev: IommuDevice = {
        name,
        bus: o.bus ?? 'pci',
        iommuName: o.iommu ?? 'fake',
        ids: [0],
        pasidBits: 0,
        ...(o.isolationKey !== undefined ? { isolationKey: o.isolationKey } : {}),
      };
      const r = core.probeDevice(dev);
      if (r !== 0) throw new Error(`probeDevice ${name}: ${r}`);
      return { dev, group: core.iommuGroupGet(dev)! };
    },
  };
}

// ---------------------------------------------------------------- snapshots

/**
 * Everything a refused request must leave as it was: the container's mappings, domains, groups,
 * ranges, page sizes and counters; the process's pins and locked_vm; host memory in use; the
 * iommu core (and fake drivers, if given).
 */
export function type1Snapshot(
  c: VfioIommuType1,
  proc: Process,
  core: IommuCore,
  mem: HostMemory,
  drivers: readonly FakeDriver[] = [],
): unknown {
  return {
    mappings: c.mappings(),
    domains: c.domains.map((d) => ({
      id: core.iommuDomainId(d.domain),
      groups: d.groups.map((g) => g.id),
      prot: d.prot,
    })),
    ranges: c.iovaRanges(),
    pgsizes: c.pgsizeBitmap(),
    stats: c.stats(),
    pinned: proc.mm.stats.pinnedPages,
    lockedVm: proc.mm.lockedVm,
    bytesInUse: mem.alloc.bytesInUse,
    core: core.snapshot(),
    drivers: drivers.map((d) => d.snapshot()),
  };
}

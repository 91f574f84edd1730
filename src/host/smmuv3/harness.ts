/**
 * Test harness for the arm-smmu-v3 driver: host memory, a page allocator for the driver's
 * structures, the SMMUv3 model, a fake iommu core (records the faults reported to it and the MSI
 * bindings requested), and helpers that play devices (DMA through `Smmu.transact`) and a guest
 * (a guest-physical window carved out of host memory, with its own allocator), so the driver's
 * tests can drive it through IommuOps as the core would.
 */

import type { Access } from '../../arch/vmsa.ts';
import { PhysMem } from '../../hw/memory.ts';
import { OffsetMemory } from '../../hw/memory-view.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import type { SmmuFeatures } from '../../hw/smmuv3/features.ts';
import { type DmaRequest, type DmaResult, Smmu } from '../../hw/smmuv3/smmu.ts';
import type { IommuCoreServices, IommuDevice, IommuDomain, IommuFault } from '../iommu/types.ts';
import { ArmSmmuV3, type ArmSmmuV3Options } from './driver.ts';

/** A fake iommu core: records what the driver hands it. */
export class FakeCore implements IommuCoreServices {
  readonly faults: { dev: IommuDevice; fault: IommuFault }[] = [];
  readonly msiBinds: { domain: IommuDomain; giova: number; gpa: number; size: number }[] = [];
  readonly msiUnbinds: { domain: IommuDomain; giova: number }[] = [];
  /** What reportDeviceFault returns (0: a handler took it). */
  reportResult = 0;

  reportDeviceFault(dev: IommuDevice, fault: IommuFault): number {
    this.faults.push({ dev, fault });
    return this.reportResult;
  }

  dmaBindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    this.msiBinds.push({ domain, giova, gpa, size });
    return 0;
  }

  dmaUnbindGuestMsi(domain: IommuDomain, giova: number): void {
    this.msiUnbinds.push({ domain, giova });
  }
}

/** Where the driver's structures live in host memory. */
export const DRIVER_RAM_BASE = 0x4000_0000;
export const DRIVER_RAM_SIZE = 0x1000_0000;

export interface Bench {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly hw: Smmu;
  readonly core: FakeCore;
  readonly drv: ArmSmmuV3;
  readonly probeResult: number;
}

export interface BenchOptions {
  readonly features?: Partial<SmmuFeatures>;
  readonly opts?: ArmSmmuV3Options;
  readonly name?: string;
  /** Build a different device model (e.g. a subclass with broken registers). */
  readonly makeHw?: (mem: PhysMem, features: Partial<SmmuFeatures>) => Smmu;
  readonly ramSize?: number;
}

/** Memory, SMMU, fake core and a probed driver. */
export function bench(o: BenchOptions = {}): Bench {
  const mem = new PhysMem({ name: 'host' });
  const alloc = new PageAllocator(mem, DRIVER_RAM_BASE, o.ramSize ?? DRIVER_RAM_SIZE);
  const features = o.features ?? {};
  const hw = o.makeHw ? o.makeHw(mem, features) : new Smmu(mem, { features });
  const core = new FakeCore();
  const drv = new ArmSmmuV3(o.name ?? 'smmu0', hw, mem, alloc, core, o.opts ?? {});
  const probeResult = drv.probe();
  return { mem, alloc, hw, core, drv, probeResult };
}

/** A device translated by `iommuName`. */
export function device(
  name: string,
  ids: readonly number[],
  pasidBits = 0,
  iommuName = 'smmu0',
): IommuDevice {
  return { name, bus: 'pci', iommuName, ids, pasidBits };
}

/** A DMA as the device would issue it. */
export function dma(
  streamId: number,
  iova: number,
  access: Access,
  substreamId = -1,
  size = 4,
  privileged = false,
): DmaRequest {
  return { streamId, substreamId, iova, size, access, privileged };
}

/** The first translated address of a result, or -1. */
export function paOf(r: DmaResult): number {
  return r.count > 0 ? r.pa[0]! : -1;
}

/** A guest-physical window [ipaBase, ipaBase + size) at host PA paBase, with an allocator in IPA space. */
export interface Guest {
  readonly ipaBase: number;
  readonly paBase: number;
  readonly size: number;
  readonly view: OffsetMemory;
  readonly alloc: PageAllocator;
}

export function guestWindow(mem: PhysMem, ipaBase: number, paBase: number, size: number): Guest {
  const view = new OffsetMemory(mem, ipaBase, paBase, size);
  return { ipaBase, paBase, size, view, alloc: new PageAllocator(view, ipaBase, size) };
}

/** Runs `fn` with the SMMU's interrupt lines disconnected from the driver (missed edges). */
export function withoutIrqs<T>(b: Bench, fn: () => T): T {
  const wired = b.hw.hooks.irq;
  delete b.hw.hooks.irq;
  try {
    return fn();
  } finally {
    if (wired !== undefined) b.hw.hooks.irq = wired;
  }
}

/** Counts of commands written by the driver, by name (0 for none). */
export function cmdCount(b: Bench, name: string): number {
  return b.drv.cmdqStats?.byCommand[name] ?? 0;
}

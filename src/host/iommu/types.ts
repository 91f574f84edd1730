/**
 * The contract between the iommu core (`core.ts`) and IOMMU drivers (`../smmuv3/`), after
 * include/linux/iommu.h of the v5.10–v5.13 era plus the nested-stage series of seed-spec.md §1:
 * domain types, mapping protections, the driver's operations table, the per-device view, and
 * the in-kernel fault record.
 *
 * Conventions: every operation that can fail returns 0 or a negative errno (as the kernel does);
 * addresses are numbers below 2^53 (host physical and IOVA spaces in vsva are at most 52 bits);
 * uAPI-derived arguments (`IommuPasidTableConfig`, `IommuCacheInvalidateInfo`) keep the bigints
 * of their byte layout so that a driver sees exactly what user space wrote.
 */

import type { IommuCacheInvalidateInfo, IommuPasidTableConfig } from '../../uapi/iommu.ts';

// ---------------------------------------------------------------- domain types

/** `__IOMMU_DOMAIN_*` building blocks. */
export const __IOMMU_DOMAIN_PAGING = 1 << 0;
export const __IOMMU_DOMAIN_DMA_API = 1 << 1;
export const __IOMMU_DOMAIN_PT = 1 << 2;

/** All DMA blocked. */
export const IOMMU_DOMAIN_BLOCKED = 0;
/** DMA addresses are physical addresses (bypass). */
export const IOMMU_DOMAIN_IDENTITY = __IOMMU_DOMAIN_PT;
/** Mappings managed by a caller through iommu_map/unmap (VFIO). */
export const IOMMU_DOMAIN_UNMANAGED = __IOMMU_DOMAIN_PAGING;
/** The kernel's DMA-API domain (a default domain), with an IOVA allocator. */
export const IOMMU_DOMAIN_DMA = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API;

export const IOMMU_DOMAIN_TYPE_NAMES: Readonly<Record<number, string>> = {
  [IOMMU_DOMAIN_BLOCKED]: 'blocked',
  [IOMMU_DOMAIN_IDENTITY]: 'identity',
  [IOMMU_DOMAIN_UNMANAGED]: 'unmanaged',
  [IOMMU_DOMAIN_DMA]: 'dma',
};

// ---------------------------------------------------------------- map protections

export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;
export const IOMMU_PRIV = 1 << 5;

// ---------------------------------------------------------------- geometry and reserved regions

export interface IommuDomainGeometry {
  apertureStart: number;
  /** Last valid IOVA (inclusive). */
  apertureEnd: number;
  /** DMA outside the aperture is impossible. */
  forceAperture: boolean;
}

export type IommuResvType = 'direct' | 'reserved' | 'msi' | 'sw-msi';

/** A reserved IOVA region of a device (iommu_get_resv_regions). */
export interface IommuResvRegion {
  readonly start: number;
  readonly length: number;
  readonly prot: number;
  readonly type: IommuResvType;
}

// ---------------------------------------------------------------- faults

/**
 * The in-kernel `struct iommu_fault`, field names as in the uAPI (seed-spec §1.4): an
 * unrecoverable DMA fault (`type` = IOMMU_FAULT_DMA_UNRECOV) or a page request.
 */
export interface IommuFaultUnrecoverable {
  reason: number;
  flags: number;
  pasid: number;
  perm: number;
  addr: number;
  fetch_addr: number;
}

export interface IommuFaultPageRequest {
  flags: number;
  pasid: number;
  grpid: number;
  perm: number;
  addr: number;
}

export type IommuFault =
  | { readonly type: 1; readonly event: IommuFaultUnrecoverable }
  | { readonly type: 2; readonly prm: IommuFaultPageRequest };

/** A device's fault handler (iommu_register_device_fault_handler). Returns 0 or -errno. */
export type IommuDevFaultHandler = (fault: IommuFault, data: unknown) => number;

// ---------------------------------------------------------------- devices

/**
 * The IOMMU-relevant part of a `struct device`: its firmware description (which IOMMU instance,
 * which StreamIDs) and PCI facts that decide grouping and PASID width. The core keeps its own
 * per-device state (group, fault handler) in `IommuDeviceState`; a driver keeps its own in
 * `driverData`.
 */
export interface IommuDevice {
  readonly name: string;
  readonly bus: 'pci' | 'platform';
  /** iommu_fwspec: the name of the IOMMU instance that translates this device. */
  readonly iommuName: string;
  /** iommu_fwspec ids: StreamIDs (for PCI, the Requester ID). */
  readonly ids: readonly number[];
  /** Max PASID width of the device's PASID capability; 0 = no PASID support. */
  readonly pasidBits: number;
  /**
   * Devices with the same key cannot be isolated from each other (an alias behind a PCIe-to-PCI
   * bridge, a multifunction device without ACS) and share one iommu group. Undefined: alone.
   */
  readonly isolationKey?: string;
  /** Driver-private data, set by the driver's probeDevice. */
  driverData?: unknown;
}

// ---------------------------------------------------------------- domains

/**
 * `struct iommu_domain`. Drivers extend it (the way a driver embeds it in its own domain
 * structure); the core owns the fields here.
 */
export class IommuDomain {
  readonly type: number;
  readonly ops: IommuOps;
  /** Page sizes this domain can map (bit n set: 2^n bytes); set by the driver, possibly at first attach. */
  pgsizeBitmap: number;
  geometry: IommuDomainGeometry;
  /** dma-iommu cookie (IOVA allocator, MSI pages) — owned by the core's dma-iommu part. */
  iovaCookie: unknown = undefined;
  /** Domain-wide fault handler (iommu_set_fault_handler), legacy path. */
  handler: ((domain: IommuDomain, dev: IommuDevice, iova: number, flags: number) => number) | undefined =
    undefined;

  constructor(type: number, ops: IommuOps, pgsizeBitmap: number, geometry: IommuDomainGeometry) {
    this.type = type;
    this.ops = ops;
    this.pgsizeBitmap = pgsizeBitmap;
    this.geometry = geometry;
  }
}

// ---------------------------------------------------------------- the driver's operations

export type IommuCap = 'cache-coherency' | 'noexec' | 'intr-remap';

/** `struct iommu_ops` (the subset vsva models), camelCased. */
export interface IommuOps {
  readonly name: string;
  /** Page sizes the hardware can map, before any domain narrows them. */
  readonly pgsizeBitmap: number;

  capable?(cap: IommuCap): boolean;

  /** A new domain of `type`, or undefined when the driver does not support it (or is out of memory). */
  domainAlloc(type: number): IommuDomain | undefined;
  domainFree(domain: IommuDomain): void;

  /** Puts the device's streams into the domain. 0 or -errno; on error nothing changed. */
  attachDev(domain: IommuDomain, dev: IommuDevice): number;
  /** Takes the device's streams out of the domain (they are left blocked or bypassing, per driver policy). */
  detachDev(domain: IommuDomain, dev: IommuDevice): void;

  /** Maps exactly one page or block of `size` (a size in pgsizeBitmap). 0 or -errno. */
  map(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number;
  /** Unmaps one page-size chunk; returns the bytes unmapped (0 when nothing was mapped there). */
  unmap(domain: IommuDomain, iova: number, size: number): number;
  /** Completes earlier unmaps: the IOTLB no longer holds them when this returns. */
  iotlbSync?(domain: IommuDomain): void;
  flushIotlbAll?(domain: IommuDomain): void;
  /** The physical address `iova` maps to, or 0 when unmapped (Linux's convention). */
  iovaToPhys(domain: IommuDomain, iova: number): number;

  /** Binds the device to this IOMMU; 0, or -ENODEV when the device is not translated by it. */
  probeDevice(dev: IommuDevice): number;
  releaseDevice(dev: IommuDevice): void;
  getResvRegions?(dev: IommuDevice): IommuResvRegion[];

  /** Marks a not-yet-attached domain for nested (two-stage) use. 0, -EPERM once attached, -EINVAL unsupported. */
  enableNesting?(domain: IommuDomain): number;

  // Nested-stage series (seed-spec §1.3, §1.4).
  attachPasidTable?(domain: IommuDomain, cfg: IommuPasidTableConfig): number;
  detachPasidTable?(domain: IommuDomain): void;
  cacheInvalidate?(domain: IommuDomain, dev: IommuDevice, info: IommuCacheInvalidateInfo): number;
  bindGuestMsi?(domain: IommuDomain, giova: number, gpa: number, size: number): number;
  unbindGuestMsi?(domain: IommuDomain, giova: number): void;
}

/** What a driver needs from the core (handed to it when it registers an IOMMU instance). */
export interface IommuCoreServices {
  /** iommu_report_device_fault: hands a fault to the device's registered handler; 0 or -errno. */
  reportDeviceFault(dev: IommuDevice, fault: IommuFault): number;
  /**
   * dma-iommu's iommu_dma_bind_guest_msi / unbind (seed-spec §1.4): the generic part a driver's
   * bindGuestMsi calls after its own checks.
   */
  dmaBindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number;
  dmaUnbindGuestMsi(domain: IommuDomain, giova: number): void;
}

/**
 * dma-iommu (drivers/iommu/dma-iommu.c, v5.10, plus the nested-stage series' MSI binding of
 * seed-spec.md §1.4): the cookies a domain carries in `iovaCookie`, the kernel DMA API over a
 * DMA default domain, and MSI doorbell mapping.
 *
 * Cookies (`enum iommu_dma_cookie_type`):
 * - 'iova' (IOMMU_DMA_IOVA_COOKIE): a DMA domain's IOVA allocator (`IovaDomain`, granule = the
 *   domain's smallest page size) plus the MSI pages mapped in it.
 * - 'msi' (IOMMU_DMA_MSI_COOKIE): an UNMANAGED (VFIO) domain whose owner gave a software MSI
 *   window at `base`; each doorbell page gets the next granule of the window (a bump allocator).
 * - 'nested-msi' (IOMMU_DMA_NESTED_MSI_COOKIE): a nesting domain; user space binds the guest's
 *   stage-1 doorbell mappings (gIOVA → gDB) and the host maps gDB → the physical doorbell at
 *   stage 2, so the device is programmed with the guest's gIOVA (§1.4).
 *
 * The MSI page list keeps Linux's order (`list_add`: newest first), which decides which unused
 * guest binding a new doorbell takes.
 *
 * Decisions:
 * - Decision: the host MSI granule is the domain's smallest page size (Linux: PAGE_SIZE, the same
 *   on a 4KB host), or 4KB while the domain's bitmap is still empty.
 * - Decision: kernel allocations (cookies, MSI page records) draw on `allocBudget` (unbounded by
 *   default) so that tests and scenarios can provoke the -ENOMEM paths.
 * - Decision: IOVA allocation for the DMA API follows iommu_dma_alloc_iova: lengths below 32
 *   granules are rounded up to a power of two, every range is naturally aligned to the next power
 *   of two, the limit is the aperture's end, and PCI devices first try below 4GB (the "SAC"
 *   attempt). There are no rcaches (see iova.ts).
 * - Decision: every device that joins a DMA domain's group has its reserved regions reserved in
 *   the allocator (Linux reserves only the first device's); SW_MSI regions are not reserved (the
 *   DMA domain places its MSI pages itself) and HW MSI regions become identity MSI pages.
 * - Decision: iommuDmaMap returns the DMA address, or a negative errno instead of Linux's
 *   DMA_MAPPING_ERROR (~0): -EINVAL for a bad argument, -ENOMEM when no IOVA is free, or the error
 *   of iommu_map. A device without a DMA default domain (IDENTITY, none, or not behind an IOMMU)
 *   uses dma-direct: the DMA address is the physical address.
 */

import { EEXIST, EINVAL, ENODEV, ENOMEM } from '../../uapi/errno.ts';
import { IovaDomain } from './iova.ts';
import { alignDownTo, alignUpTo, isAddress, minPageSize, roundupPowOfTwo } from './pgsize.ts';
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_WRITE,
  type IommuDevice,
  type IommuDomain,
  type IommuResvRegion,
} from './types.ts';

/** The kernel's PAGE_SIZE on the hosts vsva models. */
export const PAGE_SIZE = 4096;
/** Protections of an MSI doorbell mapping (iommu_dma_get_msi_page). */
export const IOMMU_DMA_MSI_PROT = IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO;
/** IOVA_RANGE_CACHE_MAX_SIZE = 6: lengths below 1 << 5 granules are rounded up to a power of two. */
export const IOVA_ROUNDUP_LIMIT = 1 << 5;
/** DMA_BIT_MASK(32): the first-attempt limit for PCI devices. */
export const DMA_BIT_MASK_32 = 0xffff_ffff;

export type IommuDmaCookieType = 'iova' | 'msi' | 'nested-msi';

/** `struct iommu_dma_msi_page` (with the series' gpa and s1_granule). */
export interface IommuDmaMsiPage {
  /** IOVA the device writes to: an allocated IOVA, or the guest's gIOVA for a nested binding. */
  readonly iova: number;
  /** Doorbell page mapped (at `iova`, or at `gpa` at stage 2); undefined: binding not used yet. */
  phys: number | undefined;
  /** Nested bindings: the guest doorbell IPA, input of the stage-2 mapping. */
  readonly gpa: number;
  /** Nested bindings: the guest's stage-1 granule given at bind time. */
  readonly s1Granule: number;
}

/** `struct iommu_dma_cookie`. */
export class IommuDmaCookie {
  readonly type: IommuDmaCookieType;
  /** 'iova': the allocator, created by iommuDmaInitDomain. */
  iovad: IovaDomain | undefined = undefined;
  /** 'msi': the next IOVA of the software MSI window. */
  msiIova = 0;
  /** MSI pages, newest first. */
  readonly msiPages: IommuDmaMsiPage[] = [];

  constructor(type: IommuDmaCookieType) {
    this.type = type;
  }
}

/** What dma-iommu needs from the iommu core. */
export interface DmaIommuHost {
  iommuMap(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number;
  iommuUnmap(domain: IommuDomain, iova: number, size: number): number;
  /** The device's current domain (iommu_get_domain_for_dev). */
  iommuGetDomainForDev(dev: IommuDevice): IommuDomain | undefined;
  /** The device's default domain (iommu_get_dma_domain). */
  iommuGetDmaDomain(dev: IommuDevice): IommuDomain | undefined;
  iommuGetResvRegions(dev: IommuDevice): IommuResvRegion[];
  /** Whether iommu_enable_nesting succeeded on the domain (DOMAIN_ATTR_NESTING). */
  iommuDomainIsNesting(domain: IommuDomain): boolean;
  /** A WARN_ON: recorded, not thrown. */
  warn(message: string): void;
}

export type PrepareMsiResult = { readonly ok: true; readonly msiAddr: number } | number;

/** A JSON-friendly view of a cookie, for snapshots and reports. */
export interface CookieSummary {
  type: IommuDmaCookieType;
  msiIova: number;
  iova: { granule: number; ranges: [number, number, boolean][] } | undefined;
  msiPages: { iova: number; phys: number | null; gpa: number; s1Granule: number }[];
}

/** `giova & ~(size - 1)` on u64 values, exactly as C computes it for any size (0 included). */
function maskDown(addr: number, size: number): number {
  return Number(BigInt.asUintN(64, BigInt(addr) & ~(BigInt(size) - 1n)));
}

export class DmaIommu {
  private readonly host: DmaIommuHost;
  /** Kernel allocations still allowed (see the decisions above). */
  allocBudget = Number.POSITIVE_INFINITY;

  constructor(host: DmaIommuHost) {
    this.host = host;
  }

  private kzalloc(): boolean {
    if (this.allocBudget <= 0) return false;
    this.allocBudget -= 1;
    return true;
  }

  private kfree(): void {
    this.allocBudget += 1;
  }

  /** The domain's dma-iommu cookie, if it has one. */
  cookieOf(domain: IommuDomain): IommuDmaCookie | undefined {
    return domain.iovaCookie instanceof IommuDmaCookie ? domain.iovaCookie : undefined;
  }

  /** The granule MSI doorbells are mapped with (cookie_msi_granule). */
  msiGranule(domain: IommuDomain): number {
    const iovad = this.cookieOf(domain)?.iovad;
    if (iovad !== undefined) return iovad.granule;
    return minPageSize(domain.pgsizeBitmap) || PAGE_SIZE;
  }

  // ---------------------------------------------------------------- cookies

  private attachCookie(domain: IommuDomain, type: IommuDmaCookieType): number {
    if (!this.kzalloc()) return -ENOMEM;
    domain.iovaCookie = new IommuDmaCookie(type);
    return 0;
  }

  /** iommu_get_dma_cookie: an IOVA cookie for a DMA domain. -EEXIST if it has a cookie. */
  iommuGetDmaCookie(domain: IommuDomain): number {
    if (domain.iovaCookie !== undefined) return -EEXIST;
    return this.attachCookie(domain, 'iova');
  }

  /**
   * iommu_get_msi_cookie(domain, base): UNMANAGED domains only (-EINVAL), one cookie per domain
   * (-EEXIST). As in the series, a domain on which nesting was enabled gets a nested MSI cookie
   * and `base` is unused.
   */
  iommuGetMsiCookie(domain: IommuDomain, base: number): number {
    if (domain.type !== IOMMU_DOMAIN_UNMANAGED) return -EINVAL;
    if (domain.iovaCookie !== undefined) return -EEXIST;
    if (!isAddress(base)) return -EINVAL;
    const nested = this.host.iommuDomainIsNesting(domain);
    const r = this.attachCookie(domain, nested ? 'nested-msi' : 'msi');
    if (r === 0 && !nested) this.cookieOf(domain)!.msiIova = base;
    return r;
  }

  /**
   * The nested MSI cookie explicitly, whether or not nesting was enabled through the core
   * (same checks as iommuGetMsiCookie).
   */
  iommuGetNestedMsiCookie(domain: IommuDomain): number {
    if (domain.type !== IOMMU_DOMAIN_UNMANAGED) return -EINVAL;
    if (domain.iovaCookie !== undefined) return -EEXIST;
    return this.attachCookie(domain, 'nested-msi');
  }

  /**
   * iommu_put_dma_cookie: drops the cookie; the stage-2 mappings of used nested bindings are
   * unmapped (other MSI pages go with the domain's page tables).
   */
  iommuPutDmaCookie(domain: IommuDomain): void {
    const cookie = this.cookieOf(domain);
    if (cookie === undefined) return;
    if (cookie.type === 'nested-msi') {
      const size = this.msiGranule(domain);
      for (const p of cookie.msiPages) if (p.phys !== undefined) this.unmapExpect(domain, p.gpa, size);
    }
    this.allocBudget += cookie.msiPages.length + 1;
    cookie.msiPages.length = 0;
    domain.iovaCookie = undefined;
  }

  private unmapExpect(domain: IommuDomain, iova: number, size: number): void {
    const u = this.host.iommuUnmap(domain, iova, size);
    if (u !== size) this.host.warn(`dma-iommu: unmapped ${u} of ${size} bytes at 0x${iova.toString(16)}`);
  }

  /**
   * iommu_dma_init_domain: creates the IOVA allocator of a DMA domain's cookie (granule = the
   * smallest page size, first frame max(1, aperture start), last frame the aperture's end) and
   * reserves `regions`. On an initialised domain it only reserves `regions` (a device joining
   * the group). -EINVAL without an IOVA cookie, -ENODEV without page sizes.
   */
  iommuDmaInitDomain(domain: IommuDomain, regions: readonly IommuResvRegion[]): number {
    const cookie = this.cookieOf(domain);
    if (cookie === undefined || cookie.type !== 'iova') return -EINVAL;
    if (cookie.iovad === undefined) {
      const granule = minPageSize(domain.pgsizeBitmap);
      if (granule === 0) return -ENODEV;
      const startPfn = Math.max(1, Math.floor(domain.geometry.apertureStart / granule));
      const endPfn = Math.floor(domain.geometry.apertureEnd / granule);
      if (endPfn < startPfn) return -EINVAL;
      cookie.iovad = new IovaDomain(granule, startPfn, endPfn);
    }
    return this.reserveRegions(cookie, cookie.iovad, regions);
  }

  /** iova_reserve_iommu_regions. */
  private reserveRegions(
    cookie: IommuDmaCookie,
    iovad: IovaDomain,
    regions: readonly IommuResvRegion[],
  ): number {
    const g = iovad.granule;
    for (const r of regions) {
      if (r.type === 'sw-msi' || r.length <= 0) continue;
      iovad.reserve(Math.floor(r.start / g), Math.floor((r.start + r.length - 1) / g));
      if (r.type === 'msi') {
        // cookie_init_hw_msi_region: doorbells inside a HW MSI window are used untranslated.
        for (let a = alignDownTo(r.start, g); a < r.start + r.length; a += g) {
          if (cookie.msiPages.some((p) => p.phys === a)) continue;
          if (!this.kzalloc()) return -ENOMEM;
          cookie.msiPages.unshift({ iova: a, phys: a, gpa: 0, s1Granule: 0 });
        }
      }
    }
    return 0;
  }

  // ---------------------------------------------------------------- the DMA API

  /** The device's DMA domain and its initialised IOVA cookie, or undefined for dma-direct. */
  private dmaContext(
    dev: IommuDevice,
  ): { domain: IommuDomain; cookie: IommuDmaCookie; iovad: IovaDomain } | number | undefined {
    const domain = this.host.iommuGetDmaDomain(dev);
    if (domain === undefined || domain.type !== IOMMU_DOMAIN_DMA) return undefined;
    const cookie = this.cookieOf(domain);
    if (cookie === undefined || cookie.type !== 'iova') return -EINVAL;
    if (cookie.iovad === undefined) {
      const r = this.iommuDmaInitDomain(domain, this.host.iommuGetResvRegions(dev));
      if (r !== 0) return r;
    }
    return { domain, cookie, iovad: cookie.iovad! };
  }

  /** iommu_dma_alloc_iova: `len` bytes (a multiple of the granule); the IOVA or undefined. */
  private allocIova(
    domain: IommuDomain,
    iovad: IovaDomain,
    dev: IommuDevice,
    len: number,
  ): number | undefined {
    const g = iovad.granule;
    let pages = len / g;
    if (pages < IOVA_ROUNDUP_LIMIT) pages = roundupPowOfTwo(pages);
    const limit = domain.geometry.apertureEnd;
    let pfn: number | undefined;
    if (limit > DMA_BIT_MASK_32 && dev.bus === 'pci')
      pfn = iovad.alloc(pages, Math.floor(DMA_BIT_MASK_32 / g));
    pfn ??= iovad.alloc(pages, Math.floor(limit / g));
    return pfn === undefined ? undefined : pfn * g;
  }

  /**
   * dma_map_page through iommu_dma_map_page: allocates an IOVA range covering [paddr, paddr+size)
   * rounded out to the granule, maps it, and returns the DMA address (IOVA + paddr's offset in its
   * granule), or a negative errno (see the decisions above).
   */
  iommuDmaMap(dev: IommuDevice, paddr: number, size: number, prot: number): number {
    if (!isAddress(paddr) || !Number.isSafeInteger(size) || size < 1 || !isAddress(paddr + size))
      return -EINVAL;
    const ctx = this.dmaContext(dev);
    if (ctx === undefined) return paddr;
    if (typeof ctx === 'number') return ctx;
    const { domain, iovad } = ctx;
    const g = iovad.granule;
    const off = paddr % g;
    const len = alignUpTo(size + off, g);
    const iova = this.allocIova(domain, iovad, dev, len);
    if (iova === undefined) return -ENOMEM;
    const r = this.host.iommuMap(domain, iova, paddr - off, len, prot);
    if (r !== 0) {
      iovad.free(iova / g);
      return r;
    }
    return iova + off;
  }

  /**
   * dma_unmap_page through iommu_dma_unmap_page: unmaps the granule-aligned range and frees its
   * IOVA allocation. 0, or -EINVAL when `dmaAddr` is not inside an allocation of the device's DMA
   * domain (Decision: Linux WARNs; vsva refuses and changes nothing). Devices using dma-direct: 0.
   */
  iommuDmaUnmap(dev: IommuDevice, dmaAddr: number, size: number): number {
    if (!isAddress(dmaAddr) || !Number.isSafeInteger(size) || size < 1) return -EINVAL;
    const ctx = this.dmaContext(dev);
    if (ctx === undefined) return 0;
    if (typeof ctx === 'number') return ctx;
    const { domain, iovad } = ctx;
    const g = iovad.granule;
    const off = dmaAddr % g;
    const start = dmaAddr - off;
    const range = iovad.find(start / g);
    if (range === undefined || range.reserved) return -EINVAL;
    this.unmapExpect(domain, start, alignUpTo(size + off, g));
    iovad.free(start / g);
    return 0;
  }

  // ---------------------------------------------------------------- guest MSI bindings (§1.4)

  /**
   * iommu_dma_bind_guest_msi(domain, giova, gpa, size): records the guest's stage-1 doorbell
   * mapping. -EINVAL without a NESTED_MSI cookie or when `size` exceeds the host MSI granule;
   * giova and gpa are aligned down to `size`; a giova already bound is silently accepted and the
   * first binding kept (as Linux); -ENOMEM when the record cannot be allocated.
   */
  iommuDmaBindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    const cookie = this.cookieOf(domain);
    if (cookie === undefined || cookie.type !== 'nested-msi') return -EINVAL;
    if (!isAddress(giova) || !isAddress(gpa) || !isAddress(size)) return -EINVAL;
    if (size > this.msiGranule(domain)) return -EINVAL;
    const iova = maskDown(giova, size);
    const ipa = maskDown(gpa, size);
    if (cookie.msiPages.some((p) => p.iova === iova)) return 0;
    if (!this.kzalloc()) return -ENOMEM;
    cookie.msiPages.unshift({ iova, phys: undefined, gpa: ipa, s1Granule: size });
    return 0;
  }

  /**
   * iommu_dma_unbind_guest_msi(domain, giova): removes the binding whose gIOVA equals giova
   * aligned down to that binding's granule, unmapping its stage-2 doorbell mapping if it was used.
   * No-op without a NESTED_MSI cookie or a matching binding.
   */
  iommuDmaUnbindGuestMsi(domain: IommuDomain, giova: number): void {
    const cookie = this.cookieOf(domain);
    if (cookie === undefined || cookie.type !== 'nested-msi' || !isAddress(giova)) return;
    const i = cookie.msiPages.findIndex((p) => p.iova === maskDown(giova, p.s1Granule));
    if (i < 0) return;
    const p = cookie.msiPages[i]!;
    if (p.phys !== undefined) this.unmapExpect(domain, p.gpa, this.msiGranule(domain));
    cookie.msiPages.splice(i, 1);
    this.kfree();
  }

  // ---------------------------------------------------------------- MSI doorbells

  /**
   * iommu_dma_prepare_msi + iommu_dma_compose_msi_msg: the address a device must write to reach
   * the doorbell at `doorbellPa`, translated through its current domain.
   * - no domain, or a domain without a cookie (IDENTITY, an UNMANAGED domain without an MSI
   *   cookie): the doorbell's physical address;
   * - otherwise the doorbell page's MSI page (found, or created: a DMA domain allocates an IOVA
   *   granule, an MSI cookie takes the next granule of its window, a nested cookie maps the gpa of
   *   the newest unused guest binding to the doorbell at stage 2), and the address is that page's
   *   IOVA plus the doorbell's offset in its granule;
   * - -ENOMEM when no page can be had (no IOVA, no unused binding, or the mapping failed), as Linux;
   *   -EINVAL for an address that is not one.
   */
  iommuDmaPrepareMsi(dev: IommuDevice, doorbellPa: number): PrepareMsiResult {
    if (!isAddress(doorbellPa)) return -EINVAL;
    const domain = this.host.iommuGetDomainForDev(dev);
    const cookie = domain === undefined ? undefined : this.cookieOf(domain);
    if (domain === undefined || cookie === undefined) return { ok: true, msiAddr: doorbellPa };
    const page = this.getMsiPage(dev, domain, cookie, doorbellPa);
    if (page === undefined) return -ENOMEM;
    return { ok: true, msiAddr: page.iova + (doorbellPa % this.msiGranule(domain)) };
  }

  /** iommu_dma_get_msi_page. */
  private getMsiPage(
    dev: IommuDevice,
    domain: IommuDomain,
    cookie: IommuDmaCookie,
    doorbellPa: number,
  ): IommuDmaMsiPage | undefined {
    const size = this.msiGranule(domain);
    const msiAddr = alignDownTo(doorbellPa, size);
    const found = cookie.msiPages.find((p) => p.phys === msiAddr);
    if (found !== undefined) return found;
    if (cookie.type === 'nested-msi') return this.useNestedBinding(domain, cookie, msiAddr, size);

    if (!this.kzalloc()) return undefined;
    const iova = this.allocMsiIova(dev, domain, cookie, size);
    if (iova === undefined) {
      this.kfree();
      return undefined;
    }
    if (this.host.iommuMap(domain, iova, msiAddr, size, IOMMU_DMA_MSI_PROT) !== 0) {
      this.freeMsiIova(cookie, iova, size);
      this.kfree();
      return undefined;
    }
    const page: IommuDmaMsiPage = { iova, phys: msiAddr, gpa: 0, s1Granule: 0 };
    cookie.msiPages.unshift(page);
    return page;
  }

  /** iommu_dma_get_nested_msi_page: the first (newest) unused binding gets the doorbell. */
  private useNestedBinding(
    domain: IommuDomain,
    cookie: IommuDmaCookie,
    msiAddr: number,
    size: number,
  ): IommuDmaMsiPage | undefined {
    const unused = cookie.msiPages.find((p) => p.phys === undefined);
    if (unused === undefined) return undefined;
    if (this.host.iommuMap(domain, unused.gpa, msiAddr, size, IOMMU_DMA_MSI_PROT) !== 0) return undefined;
    unused.phys = msiAddr;
    return unused;
  }

  private allocMsiIova(
    dev: IommuDevice,
    domain: IommuDomain,
    cookie: IommuDmaCookie,
    size: number,
  ): number | undefined {
    if (cookie.type === 'msi') {
      const iova = cookie.msiIova;
      cookie.msiIova += size;
      return iova;
    }
    if (
      cookie.iovad === undefined &&
      this.iommuDmaInitDomain(domain, this.host.iommuGetResvRegions(dev)) !== 0
    )
      return undefined;
    return this.allocIova(domain, cookie.iovad!, dev, size);
  }

  private freeMsiIova(cookie: IommuDmaCookie, iova: number, size: number): void {
    if (cookie.type === 'msi') cookie.msiIova -= size;
    else cookie.iovad?.free(iova / cookie.iovad.granule);
  }

  /** A JSON-friendly description of the domain's cookie, or undefined. */
  describeCookie(domain: IommuDomain): CookieSummary | undefined {
    const c = this.cookieOf(domain);
    if (c === undefined) return undefined;
    return {
      type: c.type,
      msiIova: c.msiIova,
      iova:
        c.iovad === undefined
          ? undefined
          : { granule: c.iovad.granule, ranges: c.iovad.ranges.map((r) => [r.lo, r.hi, r.reserved]) },
      msiPages: c.msiPages.map((p) => ({
        iova: p.iova,
        phys: p.phys ?? null,
        gpa: p.gpa,
        s1Granule: p.s1Granule,
      })),
    };
  }
}

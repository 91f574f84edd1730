/**
 * The guest kernel's DMA domain of one device (Linux's default IOMMU_DOMAIN_DMA through dma-iommu):
 * a stage-1 address space with its own ASID and VMSAv8-64 page table (4 KiB granule, 48-bit
 * input), installed as CD 0 so that the device's traffic without a PASID (descriptor ring, kernel
 * completion records, MSI writes) is translated by it (STE.S1DSS = SSID0). IOVAs are handed out
 * upward from `DMA_IOVA_BASE`, page-granular and naturally aligned to the mapping's size.
 * Without an SMMU the domain is the identity (IOVA = guest-physical address).
 *
 * Decision: IOVAs grow upward from 0x1_0000_0000 and are never reused (the model's drivers map
 * their rings and doorbells once); Linux allocates top-down below the DMA mask.
 */

import type { PageAllocator } from '../hw/page-alloc.ts';
import { PageTable, type Prot } from '../hw/vmsa/pgtable.ts';
import { EINVAL, ENOMEM } from '../uapi/errno.ts';

export const DMA_IOVA_BASE = 0x1_0000_0000;
export const DMA_IAS_BITS = 48;
const PAGE = 0x1000;
/**
 * Device accesses without a PASID are unprivileged: like io-pgtable-arm for a mapping without
 * IOMMU_PRIV, DMA-domain leaves are EL0-accessible (AP[1] = 1).
 */
export const DMA_RW: Prot = { read: true, write: true, user: true };

export class DmaDomain {
  /** ASID of CD 0 (0 for the identity domain). */
  readonly asid: number;
  readonly pt: PageTable | undefined;
  private next = DMA_IOVA_BASE;

  private constructor(asid: number, pt: PageTable | undefined) {
    this.asid = asid;
    this.pt = pt;
  }

  /** A translated domain; `undefined` when the root table cannot be allocated. */
  static create(alloc: PageAllocator, asid: number, oasBits: number): DmaDomain | undefined {
    const r = PageTable.create(alloc, {
      stage: 1,
      granule: 12,
      iasBits: DMA_IAS_BITS,
      oasBits,
      nonGlobal: true,
    });
    return r.ok ? new DmaDomain(asid, r.table) : undefined;
  }

  static identity(): DmaDomain {
    return new DmaDomain(0, undefined);
  }

  get translated(): boolean {
    return this.pt !== undefined;
  }

  /** Maps [gpa, gpa+size) for the device; returns the IOVA, or -errno. */
  map(gpa: number, size: number, prot: Prot = DMA_RW): number {
    if (size <= 0 || gpa % PAGE !== 0 || size % PAGE !== 0) return -EINVAL;
    if (this.pt === undefined) return gpa;
    let align = PAGE;
    while (align < size && align < 0x20_0000) align *= 2;
    const iova = Math.ceil(this.next / align) * align;
    const r = this.pt.map(iova, gpa, size, prot);
    if (!r.ok) return -ENOMEM;
    this.next = iova + size;
    return iova;
  }

  /** The guest-physical address behind an IOVA (undefined when unmapped). */
  toGpa(iova: number): number | undefined {
    return this.pt === undefined ? iova : this.pt.iovaToPhys(iova);
  }
}

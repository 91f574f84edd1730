/**
 * How the VMM's PCI bus finds the IOMMU in front of a device, and how an assigned device's host
 * IOMMU reaches a virtual IOMMU: seed-spec §3 (QEMU "[RFC v3 01/25] hw/pci: modify
 * pci_setup_iommu() to set PCIIOMMUOps", and the `set_iommu_context`/`unset_iommu_context` ops and
 * `HostIOMMUContext` of the later revisions of that series).
 *
 * - `AddressSpace`: what `get_address_space` returns — where a device's DMA goes. The VMM only
 *   needs it to translate an MSI doorbell address (QEMU's vfio_prepare_msi does the same through
 *   the IOMMU memory region); device DMA itself is translated by the physical SMMU.
 * - `PCIIOMMUOps`: the table a vIOMMU gives `pci_setup_iommu(bus, ops, opaque)`. Names as the seed.
 *   `inject_faults` is vsva's addition: in QEMU's Arm nested series the VFIO fault handler reaches
 *   the vSMMU through the IOMMU memory region's inject_faults; vsva routes it through the same
 *   ops table so the vfio-pci frontend needs nothing else.
 * - `HostIOMMUContext`: what VFIO registers with the vIOMMU for an assigned device (one per
 *   container): the nesting operations of the host, each one ioctl on the container fd.
 */

import type {
  IommuCacheInvalidateInfoInput,
  IommuFaultRecord,
  IommuPasidTableConfigInput,
} from '../../uapi/iommu.ts';

/** The identity of a PCI bus as an IOMMU sees it. */
export interface PCIBusIdentity {
  readonly name: string;
  /** pci_bus_num(): the bus number the guest assigned (0 for the root bus). */
  busNumber(): number;
}

/** A translation of one address through an address space (QEMU's IOMMUTLBEntry, reduced). */
export type AddressSpaceTranslation =
  | {
      readonly ok: true;
      readonly addr: number /** the size of the page that translated (power of two) */;
      readonly pageSize: number;
    }
  | { readonly ok: false; readonly reason: string };

export interface AddressSpace {
  readonly name: string;
  /** Translates a device address for an access without a PASID. */
  translate(iova: number, isWrite: boolean): AddressSpaceTranslation;
}

/** address_space_memory: no IOMMU, device addresses are guest-physical. */
export const addressSpaceMemory: AddressSpace = {
  name: 'memory',
  translate: (iova) => ({ ok: true, addr: iova, pageSize: 0x1000 }),
};

/** HOST_IOMMU_* flags of a HostIOMMUContext. */
export const HOST_IOMMU_PASID_REQUEST = 1 << 0;
export const HOST_IOMMU_NESTING = 1 << 1;

/** What the host offers a vIOMMU for an assigned device (one per VFIO container). */
export interface HostIOMMUContext {
  readonly name: string;
  readonly flags: number;
  /** VFIO_IOMMU_SET_PASID_TABLE with VFIO_PASID_TABLE_FLAG_SET: 0 or -errno. */
  setPasidTable(config: IommuPasidTableConfigInput): number;
  /** VFIO_IOMMU_SET_PASID_TABLE with VFIO_PASID_TABLE_FLAG_UNSET. */
  unsetPasidTable(): number;
  /** VFIO_IOMMU_CACHE_INVALIDATE: 0 or -errno. */
  cacheInvalidate(info: IommuCacheInvalidateInfoInput): number;
  /** VFIO_IOMMU_SET_MSI_BINDING with BIND: the guest maps its doorbell `gpa` at `giova` (stage 1). */
  setMsiBinding(giova: number, gpa: number, size: number): number;
  /** VFIO_IOMMU_SET_MSI_BINDING with UNBIND. */
  unsetMsiBinding(giova: number): number;
}

/** The ops table a vIOMMU installs on a PCI bus (seed §3.1, §3.2). */
export interface PCIIOMMUOps {
  get_address_space(bus: PCIBusIdentity, opaque: unknown, devfn: number): AddressSpace;
  /** An assigned device's host context: 0 or -errno. */
  set_iommu_context?(bus: PCIBusIdentity, opaque: unknown, devfn: number, ctx: HostIOMMUContext): number;
  unset_iommu_context?(bus: PCIBusIdentity, opaque: unknown, devfn: number): void;
  /** Host-reported faults of the device, to turn into guest-visible events: 0 or -errno. */
  inject_faults?(
    bus: PCIBusIdentity,
    opaque: unknown,
    devfn: number,
    faults: readonly IommuFaultRecord[],
  ): number;
}

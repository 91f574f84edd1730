/**
 * The platform the VMM builds and the guest boots on: vsva's `virt` machine, modelled on QEMU's
 * arm64 `virt` board (hw/arm/virt.c memory map and interrupt map), and the description of it the
 * VMM hands the guest — vsva's stand-in for the flattened device tree.
 *
 * Memory map (guest-physical), as QEMU's virt:
 *
 * | Region       | Base           | Size          |
 * |--------------|----------------|---------------|
 * | GIC distributor | 0x0800_0000 | 64 KiB        |
 * | GICv2m MSI frame | 0x0802_0000 | 4 KiB        |
 * | GIC redistributors | 0x080a_0000 | 128 KiB per vCPU |
 * | SMMUv3       | 0x0905_0000    | 128 KiB (Page 0 + Page 1) |
 * | PCIe MMIO window | 0x1000_0000 | 0x2eff_0000 |
 * | RAM          | 0x4000_0000    | the VM's size |
 * | PCIe ECAM (high) | 0x40_1000_0000 | 256 MiB (buses 0–255) |
 *
 * Interrupts (INTIDs): the SMMU's four wired lines are SPIs 74–77 (INTID 106–109: event queue,
 * PRI queue, CMD_SYNC, GERROR), as virt's irqmap; the GICv2m frame turns a 32-bit write of an
 * INTID to MSI_SETSPI_NS (frame + 0x40) into that SPI, for SPIs 48–111 (INTID 80–143). As in
 * QEMU's virt, that range contains the SMMU's INTIDs 106–109: a guest must not hand those out as
 * MSI vectors (vsva's guest does not).
 *
 * Device tree. The VMM writes one blob at the start of RAM: the magic `VSVA_DT_MAGIC` (u32 LE),
 * the byte length N of what follows (u32 LE), then N bytes of UTF-8 JSON shaped as `VirtDt`.
 * Addresses in it are hex strings ("0x40000000") so that they stay exact. The first page of RAM
 * is reserved for it (`VIRT_DT_RESERVED`). Decision: JSON rather than a real FDT — the guest must
 * still discover everything from guest memory, but no FDT encoder is needed.
 */

export const VIRT_GIC_DIST = 0x0800_0000;
export const VIRT_GIC_DIST_SIZE = 0x1_0000;
export const VIRT_GIC_V2M = 0x0802_0000;
export const VIRT_GIC_V2M_SIZE = 0x1000;
/** GICv2m MSI_SETSPI_NS: a write of an SPI's INTID here raises it. */
export const V2M_MSI_SETSPI_NS = 0x40;
export const VIRT_GIC_V2M_SPI_BASE = 80;
export const VIRT_GIC_V2M_SPI_COUNT = 64;
export const VIRT_GIC_REDIST = 0x080a_0000;
export const VIRT_GIC_REDIST_SIZE_PER_CPU = 0x2_0000;
export const VIRT_SMMU = 0x0905_0000;
export const VIRT_SMMU_SIZE = 0x2_0000;
/** INTID of the SMMU's first wired interrupt (SPI 74). */
export const VIRT_SMMU_INTID = 106;
export const VIRT_SMMU_IRQ_EVENTQ = VIRT_SMMU_INTID;
export const VIRT_SMMU_IRQ_PRIQ = VIRT_SMMU_INTID + 1;
export const VIRT_SMMU_IRQ_CMD_SYNC = VIRT_SMMU_INTID + 2;
export const VIRT_SMMU_IRQ_GERROR = VIRT_SMMU_INTID + 3;
export const VIRT_PCIE_MMIO = 0x1000_0000;
export const VIRT_PCIE_MMIO_SIZE = 0x2eff_0000;
export const VIRT_MEM = 0x4000_0000;
export const VIRT_PCIE_ECAM = 0x40_1000_0000;
export const VIRT_PCIE_ECAM_SIZE = 0x1000_0000;
/** SPIs the VMM gives the vGIC (KVM_DEV_ARM_VGIC_GRP_NR_IRQS counts private ones too). */
export const VIRT_GIC_NR_IRQS = 256;

export const VSVA_DT_MAGIC = 0x6274_6476; // "vdtb" read as a little-endian u32
export const VIRT_DT_RESERVED = 0x1000;

/** One address range, exact (hex strings). */
export interface DtRange {
  readonly base: string;
  readonly size: string;
}

/** The JSON document of the device tree blob. */
export interface VirtDt {
  readonly model: 'vsva,virt';
  readonly cpus: number;
  readonly memory: readonly DtRange[];
  /** Ranges of RAM the guest must not allocate (the blob itself). */
  readonly reserved: readonly DtRange[];
  readonly gic: { readonly dist: DtRange; readonly redist: DtRange };
  readonly msi: {
    readonly compatible: 'arm,gic-v2m-frame';
    readonly reg: DtRange;
    readonly spiBase: number;
    readonly spiCount: number;
  };
  /** Present when the VM has a virtual SMMU. `irqs` are INTIDs. */
  readonly smmu?: {
    readonly compatible: 'arm,smmu-v3';
    readonly reg: DtRange;
    readonly irqs: {
      readonly eventq: number;
      readonly priq: number;
      readonly cmdqSync: number;
      readonly gerror: number;
    };
  };
  readonly pcie: {
    readonly compatible: 'pci-host-ecam-generic';
    readonly ecam: DtRange;
    readonly busRange: readonly [number, number];
    /** 32-bit non-prefetchable window BARs are placed in. */
    readonly mmio: DtRange;
    /** iommu-map: RID → StreamID is the identity for every RID behind the SMMU (when there is one). */
    readonly iommu: 'smmu' | null;
  };
}

/** The device-tree blob for `dt`: magic, JSON length, JSON (the format above). */
export function encodeVirtDtBlob(dt: VirtDt): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(dt));
  const out = new Uint8Array(8 + json.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, VSVA_DT_MAGIC, true);
  v.setUint32(4, json.length, true);
  out.set(json, 8);
  return out;
}

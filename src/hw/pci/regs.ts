/**
 * PCI and PCI Express configuration-space facts (the PCI Local Bus and PCIe Base specifications,
 * as include/uapi/linux/pci_regs.h names them): the type 0 header, capability IDs and the
 * registers of the capabilities vsva models (PCIe, PM, MSI-X; PASID, PRI, ATS, AER), plus the
 * interfaces through which a device's configuration space, its DMA and its MSIs are reached.
 * seed-spec.md §7.1 gives the PASID capability's layout.
 */

// ---------------------------------------------------------------- sizes

export const PCI_CFG_SPACE_SIZE = 256;
export const PCI_CFG_SPACE_EXP_SIZE = 4096;
export const PCI_STD_HEADER_SIZEOF = 64;

// ---------------------------------------------------------------- type 0 header

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;
export const PCI_STATUS = 0x06;
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x0800;
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_HEADER_TYPE_NORMAL = 0x00;
export const PCI_HEADER_TYPE_MFD = 0x80;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
/** BARn is at PCI_BASE_ADDRESS_0 + 4n, n = 0..5. */
export const PCI_STD_NUM_BARS = 6;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

// ---------------------------------------------------------------- standard capabilities

export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;
export const PCI_CAP_FLAGS = 2;

export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_VPD = 0x03;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_PCIX = 0x07;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CAP_ID_AF = 0x13;
export const PCI_CAP_ID_EA = 0x14;
export const PCI_CAP_ID_MAX = PCI_CAP_ID_EA;

// Power management
export const PCI_PM_PMC = 2;
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_SIZEOF = 8;

// MSI-X
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_TABLE_BIR = 0x0000_0007;
export const PCI_MSIX_TABLE_OFFSET = 0xffff_fff8;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_PBA_BIR = 0x0000_0007;
export const PCI_MSIX_PBA_OFFSET = 0xffff_fff8;
export const PCI_CAP_MSIX_SIZEOF = 12;
// MSI-X table entry (in a BAR)
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0x0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 0x4;
export const PCI_MSIX_ENTRY_DATA = 0x8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 0xc;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x0000_0001;

// PCI Express capability
export const PCI_EXP_FLAGS = 2;
export const PCI_EXP_FLAGS_VERS = 0x000f;
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
export const PCI_EXP_DEVCAP = 4;
export const PCI_EXP_DEVCAP_FLR = 0x1000_0000;
export const PCI_EXP_DEVCTL = 8;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_DEVSTA = 10;
export const PCI_EXP_DEVSTA_TRPND = 0x0020;
export const PCI_EXP_LNKCAP = 12;
export const PCI_EXP_LNKCTL = 16;
export const PCI_EXP_LNKSTA = 18;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCTL2 = 0x28;
/** The part of a v2 PCIe capability an endpoint uses (up to Link Status 2): 52 bytes. */
export const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 = 0x34;
/** The whole v2 PCIe capability structure: 60 bytes. */
export const PCI_CAP_EXP_SIZEOF = 0x3c;

// ---------------------------------------------------------------- extended capabilities

/** Extended capabilities start at 0x100; each header is one dword. */
export const PCI_EXT_CAP_START = 0x100;
export const PCI_EXT_CAP_ID = (header: number): number => header & 0xffff;
export const PCI_EXT_CAP_VER = (header: number): number => (header >>> 16) & 0xf;
export const PCI_EXT_CAP_NEXT = (header: number): number => (header >>> 20) & 0xffc;
/** Builds an extended capability header. */
export function pciExtCapHeader(id: number, version: number, next: number): number {
  return ((id & 0xffff) | ((version & 0xf) << 16) | ((next & 0xffc) << 20)) >>> 0;
}

export const PCI_EXT_CAP_ID_ERR = 0x01;
export const PCI_EXT_CAP_ID_VC = 0x02;
export const PCI_EXT_CAP_ID_DSN = 0x03;
export const PCI_EXT_CAP_ID_PWR = 0x04;
export const PCI_EXT_CAP_ID_RCLD = 0x05;
export const PCI_EXT_CAP_ID_RCILC = 0x06;
export const PCI_EXT_CAP_ID_RCEC = 0x07;
export const PCI_EXT_CAP_ID_MFVC = 0x08;
export const PCI_EXT_CAP_ID_VC9 = 0x09;
export const PCI_EXT_CAP_ID_RCRB = 0x0a;
export const PCI_EXT_CAP_ID_VNDR = 0x0b;
export const PCI_EXT_CAP_ID_CAC = 0x0c;
export const PCI_EXT_CAP_ID_ACS = 0x0d;
export const PCI_EXT_CAP_ID_ARI = 0x0e;
export const PCI_EXT_CAP_ID_ATS = 0x0f;
export const PCI_EXT_CAP_ID_SRIOV = 0x10;
export const PCI_EXT_CAP_ID_MRIOV = 0x11;
export const PCI_EXT_CAP_ID_MCAST = 0x12;
export const PCI_EXT_CAP_ID_PRI = 0x13;
export const PCI_EXT_CAP_ID_AMD_XXX = 0x14;
export const PCI_EXT_CAP_ID_REBAR = 0x15;
export const PCI_EXT_CAP_ID_DPA = 0x16;
export const PCI_EXT_CAP_ID_TPH = 0x17;
export const PCI_EXT_CAP_ID_LTR = 0x18;
export const PCI_EXT_CAP_ID_SECPCI = 0x19;
export const PCI_EXT_CAP_ID_PMUX = 0x1a;
export const PCI_EXT_CAP_ID_PASID = 0x1b;
export const PCI_EXT_CAP_ID_DPC = 0x1d;
export const PCI_EXT_CAP_ID_L1SS = 0x1e;
export const PCI_EXT_CAP_ID_PTM = 0x1f;
export const PCI_EXT_CAP_ID_DLF = 0x25;
export const PCI_EXT_CAP_ID_PL_16GT = 0x26;
/**
 * PCI_EXT_CAP_ID_MAX of Linux 5.5 (= PL_16GT). seed-spec §7.1 says 0x1B "at the time"; Linux's
 * pci_regs.h had moved past that by 5.5. IDs vfio-pci's length table does not list are hidden
 * either way, so the difference is not observable.
 */
export const PCI_EXT_CAP_ID_MAX = PCI_EXT_CAP_ID_PL_16GT;

// PASID (seed-spec §7.1)
export const PCI_PASID_CAP = 0x04;
export const PCI_PASID_CAP_EXEC = 0x0002;
export const PCI_PASID_CAP_PRIV = 0x0004;
/** Max PASID Width, bits [12:8]. */
export const PCI_PASID_CAP_WIDTH = 0x1f00;
export const PCI_PASID_CTRL = 0x06;
export const PCI_PASID_CTRL_ENABLE = 0x0001;
export const PCI_PASID_CTRL_EXEC = 0x0002;
export const PCI_PASID_CTRL_PRIV = 0x0004;
export const PCI_EXT_CAP_PASID_SIZEOF = 8;

// PRI
export const PCI_PRI_CTRL = 0x04;
export const PCI_PRI_CTRL_ENABLE = 0x0001;
export const PCI_PRI_CTRL_RESET = 0x0002;
export const PCI_PRI_STATUS = 0x06;
export const PCI_PRI_STATUS_RF = 0x0001;
export const PCI_PRI_STATUS_UPRGI = 0x0002;
export const PCI_PRI_STATUS_STOPPED = 0x0100;
export const PCI_PRI_STATUS_PASID = 0x8000;
export const PCI_PRI_MAX_REQ = 0x08;
export const PCI_PRI_ALLOC_REQ = 0x0c;
export const PCI_EXT_CAP_PRI_SIZEOF = 16;

// ATS
export const PCI_ATS_CAP = 0x04;
export const PCI_ATS_CAP_QDEP = 0x001f;
export const PCI_ATS_CAP_PAGE_ALIGNED = 0x0020;
export const PCI_ATS_CTRL = 0x06;
export const PCI_ATS_CTRL_ENABLE = 0x8000;
export const PCI_ATS_CTRL_STU = 0x001f;
export const PCI_EXT_CAP_ATS_SIZEOF = 8;

// AER (only its length matters to vfio-pci's table)
export const PCI_ERR_ROOT_COMMAND = 0x2c;

// ---------------------------------------------------------------- added by the pci-device helper
// Further pci_regs.h facts the PASID DMA device's configuration space uses.

/** Status: Master Data Parity Error (W1C). */
export const PCI_STATUS_PARITY = 0x0100;
export const PCI_PM_CAP_VER_MASK = 0x0007;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
export const PCI_PM_CTRL_PME_STATUS = 0x8000;
export const PCI_EXP_DEVCAP_PAYLOAD = 0x0000_0007;
export const PCI_EXP_DEVCAP_EXT_TAG = 0x0000_0020;
export const PCI_EXP_DEVCAP_RBER = 0x0000_8000;
export const PCI_EXP_DEVCTL_RELAX_EN = 0x0010;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_PHANTOM = 0x0200;
export const PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_LNKCAP2 = 0x2c;
export const PCI_EXP_LNKCTL2 = 0x30;
export const PCI_EXP_LNKSTA2 = 0x32;
// AER (extended capability 0x01) registers of an endpoint
export const PCI_ERR_UNCOR_STATUS = 0x04;
export const PCI_ERR_UNCOR_MASK = 0x08;
export const PCI_ERR_UNCOR_SEVER = 0x0c;
export const PCI_ERR_COR_STATUS = 0x10;
export const PCI_ERR_COR_MASK = 0x14;
export const PCI_ERR_CAP = 0x18;
export const PCI_ERR_HEADER_LOG = 0x1c;
// Device Serial Number
export const PCI_EXT_CAP_DSN_SIZEOF = 12;

// ---------------------------------------------------------------- interfaces

/** Access sizes of configuration and MMIO accesses. */
export type AccessSize = 1 | 2 | 4;

/**
 * A function's configuration space as the platform (and the host's PCI core, and vfio-pci)
 * reaches it: raw reads and writes of 1, 2 or 4 naturally aligned bytes, with the device's own
 * register semantics (read-only bits, write-1-to-clear bits, side effects).
 */
export interface PciConfigPort {
  /** 256, or 4096 with extended configuration space. */
  readonly configSize: number;
  configRead(offset: number, size: AccessSize): number;
  configWrite(offset: number, size: AccessSize, value: number): void;
}

/** The outcome of a device's DMA access, after the IOMMU (if any) and the memory system. */
export type DmaOutcome =
  | { readonly ok: true }
  /** Translation fault or abort: the access did not complete (the IOMMU has reported it). */
  | { readonly ok: false; readonly kind: 'fault' | 'abort'; readonly addr: number };

/**
 * Where a device's DMA goes: its requester identity (StreamID) and optional PASID, through the
 * platform's IOMMU to memory or to an MMIO target such as an MSI doorbell. `ssid` -1: no PASID.
 */
export interface DmaPort {
  dmaRead(sid: number, ssid: number, addr: number, out: Uint8Array, privileged?: boolean): DmaOutcome;
  dmaWrite(sid: number, ssid: number, addr: number, data: Uint8Array, privileged?: boolean): DmaOutcome;
}

/**
 * vfio-pci's configuration-space virtualisation (drivers/vfio/pci/vfio_pci_config.c as in Linux
 * 5.5–5.10; seed-spec.md §7.2–§7.3), with the `[RFC v1 1/2] vfio/pci: Expose PCIe PASID capability
 * to guest` patch as an option.
 *
 * A user (the VMM) reads and writes the device's configuration space through the config region of
 * its VFIO device fd. vfio-pci keeps, per device, `vconfig` (a byte copy of config space) and
 * `pci_config_map` (which capability owns each byte: 0 for the 64-byte header, a capability ID,
 * 0xFF unclaimed → raw pass-through, 0xFE fully virtual). Capabilities whose entry in the length
 * tables is 0 are hidden: standard ones are unlinked by rewriting the previous next byte, extended
 * ones by rewriting the previous header's next field (or, first at 0x100, replaced by a header with
 * ID and version cleared); their bytes stay unclaimed, so still raw-accessible at their offsets.
 * Every access is cut into ≤ 4-byte naturally aligned chunks that never cross a capability; the
 * owner of the chunk selects a permission set with per-bit `virt` (read/written in vconfig) and
 * `write` (writable) masks and optional read/write handlers (BAR sizing, Command, FLR, power
 * state, MSI, VPD).
 *
 * The seed patch changes one entry of the extended length table: PASID from 0 to 8
 * (`exposePasid`, default true). No PASID permission table exists, so the extended default
 * applies: header from vconfig (the virtualised next pointer), body straight from the device,
 * writes dropped — the guest cannot toggle PASID Enable (§7.2). `exposePasid: false` is the kernel
 * before the patch.
 *
 * What the host PCI core would do for vfio (pci_set_power_state, pci_try_reset_function,
 * pcie_set_readrq, INTx masking, VPD access) goes through `PciCoreOps`; defaults act on the device
 * directly (see `defaultCoreOps`). The RFC's patch 2/2 (PASID/PRI emulation for VFs, §7.4) is the
 * option `emulatePasidForVf`, with the posted patch's wrong header IDs as a sub-option.
 */

import { hex } from '../../arch/bits.ts';
import { pciFindCapability, pciFindExtCapability } from '../../hw/pci/config-space.ts';
import {
  type AccessSize,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MAX,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PCIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_ID_VPD,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_MSIX_SIZEOF,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_ERR_ROOT_COMMAND,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL2,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_EXP_LNKCTL,
  PCI_EXT_CAP_ATS_SIZEOF,
  PCI_EXT_CAP_ID,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_AMD_XXX,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_CAC,
  PCI_EXT_CAP_ID_DPA,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_LTR,
  PCI_EXT_CAP_ID_MCAST,
  PCI_EXT_CAP_ID_MFVC,
  PCI_EXT_CAP_ID_MRIOV,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PMUX,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_PWR,
  PCI_EXT_CAP_ID_RCEC,
  PCI_EXT_CAP_ID_RCILC,
  PCI_EXT_CAP_ID_RCLD,
  PCI_EXT_CAP_ID_RCRB,
  PCI_EXT_CAP_ID_REBAR,
  PCI_EXT_CAP_ID_SECPCI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_ID_TPH,
  PCI_EXT_CAP_ID_VC,
  PCI_EXT_CAP_ID_VC9,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_NEXT,
  PCI_EXT_CAP_PASID_SIZEOF,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_EXT_CAP_VER,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
  PCI_PM_CTRL,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_SIZEOF,
  PCI_PRI_CTRL,
  PCI_PRI_CTRL_ENABLE,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_STD_NUM_BARS,
  PCI_VENDOR_ID,
  type PciConfigPort,
} from '../../hw/pci/regs.ts';
import { EFAULT, EINVAL } from '../../uapi/errno.ts';

// ---------------------------------------------------------------- pci_config_map values

/** Owner of the 64-byte standard header (a fake capability ID; the real ID 0 is a null cap). */
export const PCI_CAP_ID_BASIC = 0;
/** Unclaimed byte: raw read/write pass-through to the device. */
export const PCI_CAP_ID_INVALID = 0xff;
/** Fully virtual byte: reads and writes touch only vconfig. */
export const PCI_CAP_ID_INVALID_VIRT = 0xfe;

// ---------------------------------------------------------------- facts regs.ts does not carry

// Standard capability IDs (pci_regs.h) that only the length table needs.
const PCI_CAP_ID_AGP = 0x02;
const PCI_CAP_ID_SLOTID = 0x04;
const PCI_CAP_ID_CHSWP = 0x06;
const PCI_CAP_ID_HT = 0x08;
const PCI_CAP_ID_DBG = 0x0a;
const PCI_CAP_ID_CCRC = 0x0b;
const PCI_CAP_ID_SHPC = 0x0c;
const PCI_CAP_ID_SSVID = 0x0d;
const PCI_CAP_ID_AGP3 = 0x0e;
const PCI_CAP_ID_SECDEV = 0x0f;
const PCI_CAP_ID_SATA = 0x12;

const PCI_BASE_ADDRESS_5 = 0x24;
const PCI_ROM_ADDRESS_ENABLE = 0x01;
const PCI_ROM_ADDRESS_MASK = 0xffff_f800;
const PCI_CAP_SIZEOF = 4;
const PCI_AGP_SIZEOF = 12;
// VPD
const PCI_VPD_ADDR = 2;
const PCI_VPD_ADDR_F = 0x8000;
const PCI_VPD_DATA = 4;
const PCI_CAP_VPD_SIZEOF = 8;
// PCI-X
const PCI_X_CMD = 2;
const PCI_X_ECC_CSR = 8;
const PCI_CAP_PCIX_SIZEOF_V0 = 8;
const PCI_CAP_PCIX_SIZEOF_V2 = 24;
const pciXCmdVersion = (cmd: number): number => (cmd >>> 12) & 3;
// HyperTransport, SATA
const HT_3BIT_CAP_MASK = 0xe0;
const HT_CAP_SIZEOF_LONG = 28;
const HT_CAP_SIZEOF_SHORT = 24;
const PCI_SATA_REGS = 4;
const PCI_SATA_REGS_MASK = 0xf;
const PCI_SATA_REGS_INLINE = 0xf;
const PCI_SATA_SIZEOF_SHORT = 8;
const PCI_SATA_SIZEOF_LONG = 16;
// Advanced Features
const PCI_AF_CAP = 3;
const PCI_AF_CAP_TP = 0x01;
const PCI_AF_CAP_FLR = 0x02;
const PCI_AF_CTRL = 4;
const PCI_AF_CTRL_FLR = 0x01;
const PCI_CAP_AF_SIZEOF = 6;
// MSI
const PCI_MSI_FLAGS = 2;
const PCI_MSI_FLAGS_ENABLE = 0x0001;
const PCI_MSI_FLAGS_QMASK = 0x000e;
const PCI_MSI_FLAGS_QSIZE = 0x0070;
const PCI_MSI_FLAGS_64BIT = 0x0080;
const PCI_MSI_FLAGS_MASKBIT = 0x0100;
const PCI_MSI_ADDRESS_LO = 4;
const PCI_MSI_ADDRESS_HI = 8;
const PCI_MSI_DATA_32 = 8;
const PCI_MSI_MASK_32 = 12;
const PCI_MSI_PENDING_32 = 16;
const PCI_MSI_DATA_64 = 12;
const PCI_MSI_MASK_64 = 16;
const PCI_MSI_PENDING_64 = 20;
// PCI Express
const PCI_EXP_TYPE_RC_END = 0x9;
const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
const PCI_EXP_DEVCTL_PHANTOM = 0x0200;
const PCI_EXP_DEVCTL_READRQ = 0x7000;
const PCI_EXP_DEVCTL2_ARI = 0x0020;
const PCI_EXP_LNKCTL2 = 0x30;
const PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1 = 12;
const PCI_CAP_EXP_ENDPOINT_SIZEOF_V1 = 20;
const PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V2 = 0x2c;
/**
 * End of a v2 endpoint's PCIe capability in the 5.x pci_regs.h: 52 (0x34, through Link Status
 * 2). Decision: defined here because regs.ts's PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 reads 0x3c, which
 * is not the value Linux of that era used for vfio's length.
 */
const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2_LINUX = 0x34;
// Extended capabilities
const PCI_EXT_CAP_DSN_SIZEOF = 12;
const PCI_EXT_CAP_PWR_SIZEOF = 16;
const PCI_EXT_CAP_ARI_SIZEOF = 8;
const PCI_EXT_CAP_SRIOV_SIZEOF = 64;
const PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF = 40;
const PCI_EXT_CAP_LTR_SIZEOF = 8;
const PCI_VSEC_HDR = 4;
const PCI_VSEC_HDR_LEN_SHIFT = 20;
const PCI_VC_PORT_CAP1 = 4;
const PCI_VC_CAP1_EVCC = 0x7;
const PCI_VC_PORT_CAP2 = 8;
const PCI_VC_CAP2_32_PHASE = 0x2;
const PCI_VC_CAP2_64_PHASE = 0x4;
const PCI_VC_CAP2_128_PHASE = 0x8;
const PCI_CAP_VC_BASE_SIZEOF = 0x10;
const PCI_CAP_VC_PER_VC_SIZEOF = 0x0c;
const PCI_ACS_CAP = 4;
const PCI_ACS_EC = 0x20;
const PCI_ACS_EGRESS_BITS = 5;
const PCI_REBAR_CTRL = 8;
const PCI_REBAR_CTRL_NBAR_MASK = 0xe0;
const PCI_REBAR_CTRL_NBAR_SHIFT = 5;
const PCI_DPA_CAP = 4;
const PCI_DPA_CAP_SUBSTATE_MASK = 0x1f;
const PCI_DPA_BASE_SIZEOF = 16;
const PCI_TPH_CAP = 4;
const PCI_TPH_CAP_LOC_MASK = 0x600;
const PCI_TPH_LOC_CAP = 0x200;
const PCI_TPH_CAP_ST_MASK = 0x07ff_0000;
const PCI_TPH_CAP_ST_SHIFT = 16;
const PCI_TPH_BASE_SIZEOF = 0xc;
const PCI_PWR_DATA = 8;
// AER registers and the bits vfio lets a user write
const PCI_ERR_UNCOR_STATUS = 0x04;
const PCI_ERR_UNCOR_MASK = 0x08;
const PCI_ERR_UNCOR_SEVER = 0x0c;
const PCI_ERR_COR_STATUS = 0x10;
const PCI_ERR_COR_MASK = 0x14;
const PCI_ERR_CAP = 0x18;
/** UND, DLP, SURPDN, POISON_TLP, FCP, COMP_TIME, COMP_ABORT, UNX_COMP, RX_OVER, MALF_TLP, ECRC, UNSUP, ACSV, INTN, MCBTLP, ATOMEG, TLPPRE. */
const AER_UNCOR_WRITABLE = 0x0000_0001 | 0x0000_0010 | 0x0000_0020 | 0x03ff_f000;
/** RCVR, BAD_TLP, BAD_DLLP, REP_ROLL, REP_TIMER, ADV_NFAT, INTERNAL, LOG_OVER. */
const AER_COR_WRITABLE = 0x0000_0001 | 0x0000_0040 | 0x0000_0080 | 0x0000_0100 | 0x0000_f000;
/** ECRC Generation Enable | ECRC Check Enable. */
const AER_CAP_WRITABLE = 0x0000_0040 | 0x0000_0100;

/**
 * Size of vfio's extended length table: `PCI_EXT_CAP_ID_MAX` + 1. Decision: Linux 5.5–5.10
 * defined PCI_EXT_CAP_ID_MAX as PCI_EXT_CAP_ID_PL_16GT (0x26), not 0x1B as seed-spec §7.1 (and
 * regs.ts) say; entries 0x1C–0x26 have no initialiser, so they are 0 (hidden) — which hides them
 * exactly as "above the maximum" would. The difference only shows in which permission table a
 * placeholder at 0x100 uses (both give the extended default here).
 */
export const VFIO_PCI_EXT_CAP_ID_MAX = 0x26;

const NO_VIRT = 0;
const ALL_VIRT = 0xffff_ffff;
const NO_WRITE = 0;
const ALL_WRITE = 0xffff_ffff;

// ---------------------------------------------------------------- length tables

/** Marks a variable length, computed from the device (`vfio_cap_len` / `vfio_ext_cap_len`). */
export const PCI_CAP_LEN_VARIABLE = 0xff;

/**
 * `pci_cap_length[]`: length of each standard capability vfio exposes; 0 = hidden, 0xFF =
 * variable. Index PCI_CAP_ID_BASIC is the header. PCI_CAP_ID_EA (0x14) has no entry: hidden.
 */
export const PCI_CAP_LENGTH: readonly number[] = lengthTable(PCI_CAP_ID_MAX, [
  [PCI_CAP_ID_BASIC, PCI_STD_HEADER_SIZEOF],
  [PCI_CAP_ID_PM, PCI_PM_SIZEOF],
  [PCI_CAP_ID_AGP, PCI_AGP_SIZEOF],
  [PCI_CAP_ID_VPD, PCI_CAP_VPD_SIZEOF],
  [PCI_CAP_ID_SLOTID, 0], // bridges only
  [PCI_CAP_ID_MSI, PCI_CAP_LEN_VARIABLE], // 10, 14, 20 or 24
  [PCI_CAP_ID_CHSWP, 0],
  [PCI_CAP_ID_PCIX, PCI_CAP_LEN_VARIABLE], // 8 or 24
  [PCI_CAP_ID_HT, PCI_CAP_LEN_VARIABLE],
  [PCI_CAP_ID_VNDR, PCI_CAP_LEN_VARIABLE],
  [PCI_CAP_ID_DBG, 0],
  [PCI_CAP_ID_CCRC, 0],
  [PCI_CAP_ID_SHPC, 0],
  [PCI_CAP_ID_SSVID, 0],
  [PCI_CAP_ID_AGP3, 0],
  [PCI_CAP_ID_SECDEV, 0],
  [PCI_CAP_ID_EXP, PCI_CAP_LEN_VARIABLE], // by version and type
  [PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF],
  [PCI_CAP_ID_SATA, PCI_CAP_LEN_VARIABLE],
  [PCI_CAP_ID_AF, PCI_CAP_AF_SIZEOF],
]);

/**
 * `pci_ext_cap_length[]` before the seed patch (Linux 5.5): 0 = hidden, 0xFF = variable. PASID is
 * 0 ("not yet").
 */
export const PCI_EXT_CAP_LENGTH_PRE_PATCH: readonly number[] = lengthTable(VFIO_PCI_EXT_CAP_ID_MAX, [
  [PCI_EXT_CAP_ID_ERR, PCI_ERR_ROOT_COMMAND],
  [PCI_EXT_CAP_ID_VC, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_DSN, PCI_EXT_CAP_DSN_SIZEOF],
  [PCI_EXT_CAP_ID_PWR, PCI_EXT_CAP_PWR_SIZEOF],
  [PCI_EXT_CAP_ID_RCLD, 0], // root complex only
  [PCI_EXT_CAP_ID_RCILC, 0],
  [PCI_EXT_CAP_ID_RCEC, 0],
  [PCI_EXT_CAP_ID_MFVC, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_VC9, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_RCRB, 0],
  [PCI_EXT_CAP_ID_VNDR, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_CAC, 0], // obsolete
  [PCI_EXT_CAP_ID_ACS, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_ARI, PCI_EXT_CAP_ARI_SIZEOF],
  [PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ATS_SIZEOF],
  [PCI_EXT_CAP_ID_SRIOV, PCI_EXT_CAP_SRIOV_SIZEOF],
  [PCI_EXT_CAP_ID_MRIOV, 0],
  [PCI_EXT_CAP_ID_MCAST, PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF],
  [PCI_EXT_CAP_ID_PRI, PCI_EXT_CAP_PRI_SIZEOF],
  [PCI_EXT_CAP_ID_AMD_XXX, 0],
  [PCI_EXT_CAP_ID_REBAR, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_DPA, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_TPH, PCI_CAP_LEN_VARIABLE],
  [PCI_EXT_CAP_ID_LTR, PCI_EXT_CAP_LTR_SIZEOF],
  [PCI_EXT_CAP_ID_SECPCI, 0],
  [PCI_EXT_CAP_ID_PMUX, 0],
  [PCI_EXT_CAP_ID_PASID, 0],
]);

/** The same table with the seed patch (RFC v1 1/2): PASID = PCI_EXT_CAP_PASID_SIZEOF (8). */
export const PCI_EXT_CAP_LENGTH_PATCHED: readonly number[] = withEntry(
  PCI_EXT_CAP_LENGTH_PRE_PATCH,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_PASID_SIZEOF,
);

function lengthTable(max: number, entries: readonly (readonly [number, number])[]): readonly number[] {
  const t = new Array<number>(max + 1).fill(0);
  for (const [id, len] of entries) t[id] = len;
  return Object.freeze(t);
}

function withEntry(table: readonly number[], id: number, len: number): readonly number[] {
  const t = [...table];
  t[id] = len;
  return Object.freeze(t);
}

// ---------------------------------------------------------------- little-endian helpers

const ONES = [0, 0xff, 0xffff, 0xff_ffff, 0xffff_ffff] as const;

function ones(count: number): number {
  return ONES[count] ?? 0;
}

/** `count` bytes at `off` as a little-endian u32; bytes outside the array read as 0. */
function getLe(bytes: Uint8Array | undefined, off: number, count: number): number {
  if (bytes === undefined) return 0;
  let v = 0;
  for (let i = 0; i < count; i++) v |= (bytes[off + i] ?? 0) << (8 * i);
  return v >>> 0;
}

function setLe(bytes: Uint8Array, off: number, count: number, value: number): void {
  for (let i = 0; i < count; i++) bytes[off + i] = (value >>> (8 * i)) & 0xff;
}

// ---------------------------------------------------------------- host resources (BARs)

/** A BAR as the host PCI core recorded it (`pci_resource_start/len/flags`). */
export interface PciBarResource {
  /** Bus address the host assigned; 0 = unassigned, shown to the user as unimplemented. */
  readonly start: bigint;
  /** Size in bytes, a power of two. */
  readonly len: bigint;
  readonly io?: boolean;
  readonly prefetch?: boolean;
  readonly mem64?: boolean;
}

export interface PciRomResource {
  readonly start: bigint;
  readonly len: bigint;
}

export interface PciResources {
  /** Index = BAR number 0..5; the upper half of a 64-bit BAR has no entry. */
  readonly bars: readonly (PciBarResource | undefined)[];
  readonly rom?: PciRomResource;
  /** IORESOURCE_ROM_SHADOW (a VGA shadow ROM): a 128 KiB ROM BAR is shown when `rom` is absent. */
  readonly romShadow?: boolean;
}

function lowestSetBit(v: bigint): bigint {
  return v & -v;
}

/**
 * Sizes the BARs and the ROM BAR as the host PCI core does at enumeration (`__pci_read_base`):
 * memory and I/O decode are turned off, each BAR is written with all ones and read back, and its
 * value and the Command register are restored. The resource start is the address the BAR holds.
 * Decision: the I/O mask is limited to 16 bits, and a BAR that reads back 0 or all ones is absent.
 */
export function pciReadBases(port: PciConfigPort): PciResources {
  const cmd = port.configRead(PCI_COMMAND, 2);
  const decode = PCI_COMMAND_IO | PCI_COMMAND_MEMORY;
  if (cmd & decode) port.configWrite(PCI_COMMAND, 2, cmd & ~decode);
  const bars: (PciBarResource | undefined)[] = [];
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    const l = sizeDword(port, off, 0xffff_ffff);
    if (l.sz === 0 || l.sz === 0xffff_ffff) {
      bars[i] = undefined;
      continue;
    }
    if (l.value & PCI_BASE_ADDRESS_SPACE_IO) {
      const len = lowestSetBit(BigInt(l.sz & 0xfffc));
      bars[i] = len ? { start: BigInt(l.value & 0xffff_fffc), len, io: true } : undefined;
      continue;
    }
    const prefetch = (l.value & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0;
    const mem64 = (l.value & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < PCI_STD_NUM_BARS;
    let start = BigInt((l.value & 0xffff_fff0) >>> 0);
    let sz = BigInt((l.sz & 0xffff_fff0) >>> 0);
    if (mem64) {
      const h = sizeDword(port, off + 4, 0xffff_ffff);
      start |= BigInt(h.value) << 32n;
      sz |= BigInt(h.sz) << 32n;
    }
    const len = lowestSetBit(sz);
    bars[i] = len ? { start, len, prefetch, mem64 } : undefined;
    if (mem64) {
      bars[i + 1] = undefined;
      i++;
    }
  }
  const r = sizeDword(port, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_MASK);
  const romLen = lowestSetBit(BigInt((r.sz & PCI_ROM_ADDRESS_MASK) >>> 0));
  if (cmd & decode) port.configWrite(PCI_COMMAND, 2, cmd);
  const romStart = BigInt((r.value & PCI_ROM_ADDRESS_MASK) >>> 0);
  return romLen ? { bars, rom: { start: romStart, len: romLen } } : { bars };
}

function sizeDword(port: PciConfigPort, off: number, probe: number): { value: number; sz: number } {
  const value = port.configRead(off, 4) >>> 0;
  port.configWrite(off, 4, probe);
  const sz = port.configRead(off, 4) >>> 0;
  port.configWrite(off, 4, value);
  return { value, sz };
}

// ---------------------------------------------------------------- capability lookup on the device

// pci_find_capability / pci_find_ext_capability: the walks of the hw layer's config space code.
export { pciFindCapability, pciFindExtCapability } from '../../hw/pci/config-space.ts';

// ---------------------------------------------------------------- host PCI core operations

/**
 * What vfio-pci asks of the host PCI core from its config handlers. Each is optional; a missing
 * one takes the default of `defaultCoreOps`.
 */
export interface PciCoreOps {
  /** `vfio_pci_set_power_state` → `pci_set_power_state(state)` (0 = D0 … 3 = D3hot). */
  setPowerState?(state: number): void;
  /** `pci_try_reset_function` (FLR requested through the PCIe or AF capability). */
  resetFunction?(): void;
  /** `pcie_set_readrq(bytes)`. */
  setReadrq?(bytes: number): void;
  /** `vfio_pci_intx_mask` / `vfio_pci_intx_unmask` (the virtual INTx Disable bit changed). */
  intxMask?(): void;
  intxUnmask?(): void;
  /** `vfio_pci_zap_and_down_write_memory_lock` (5.8+): a Command write clears Memory enable. */
  zapMmaps?(): void;
  /** `pci_read_vpd` of one dword; undefined = failure. */
  readVpd?(addr: number): number | undefined;
  /** `pci_write_vpd` of one dword; false = failure. */
  writeVpd?(addr: number, data: number): boolean;
}

type ResolvedCoreOps = Required<PciCoreOps>;

/**
 * The defaults, acting on the device through its config port:
 * - setPowerState: read-modify-write of the PM Control state field. Decision: no D1/D2 support
 *   check, no transition delays, no state restore after D3hot (Linux's pci_set_power_state does
 *   those).
 * - resetFunction: the PCI core's save → FLR → restore around a PCIe FLR (if DEVCAP.FLR), else an
 *   AF FLR (if TP and FLR are supported), else nothing. Decision: what is saved and restored is the
 *   64-byte header and the PCIe DEVCTL/LNKCTL/DEVCTL2/LNKCTL2 registers; other capability state
 *   (MSI-X, PASID, ATS, PRI, AER) is left as the reset made it.
 * - setReadrq: pcie_set_readrq without the performance-mode clamp (128..4096, a power of two).
 * - intxMask/intxUnmask, zapMmaps: no effect here (the INTx and mmap machinery is vfio-pci's
 *   interrupt and BAR code, not config space).
 * - readVpd/writeVpd: fail (no VPD engine is modelled).
 */
export function defaultCoreOps(port: PciConfigPort): ResolvedCoreOps {
  return {
    setPowerState(state) {
      const pm = pciFindCapability(port, PCI_CAP_ID_PM);
      if (!pm) return;
      const ctrl = port.configRead(pm + PCI_PM_CTRL, 2);
      port.configWrite(pm + PCI_PM_CTRL, 2, (ctrl & ~PCI_PM_CTRL_STATE_MASK) | (state & 3));
    },
    resetFunction() {
      pciTryResetFunction(port);
    },
    setReadrq(bytes) {
      if (bytes < 128 || bytes > 4096 || (bytes & (bytes - 1)) !== 0) return;
      const exp = pciFindCapability(port, PCI_CAP_ID_EXP);
      if (!exp) return;
      const v = (Math.log2(bytes) - 7) << 12;
      const ctl = port.configRead(exp + PCI_EXP_DEVCTL, 2);
      port.configWrite(exp + PCI_EXP_DEVCTL, 2, (ctl & ~PCI_EXP_DEVCTL_READRQ) | v);
    },
    intxMask() {},
    intxUnmask() {},
    zapMmaps() {},
    readVpd: () => undefined,
    writeVpd: () => false,
  };
}

/** See `defaultCoreOps.resetFunction`. */
function pciTryResetFunction(port: PciConfigPort): void {
  const exp = pciFindCapability(port, PCI_CAP_ID_EXP);
  const af = pciFindCapability(port, PCI_CAP_ID_AF);
  const expFlr = exp !== 0 && (port.configRead(exp + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR) !== 0;
  const afCap = af ? port.configRead(af + PCI_AF_CAP, 1) : 0;
  const afFlr = (afCap & PCI_AF_CAP_TP) !== 0 && (afCap & PCI_AF_CAP_FLR) !== 0;
  if (!expFlr && !afFlr) return;
  const header = Array.from({ length: 16 }, (_, i) => port.configRead(4 * i, 4) >>> 0);
  const expRegs = exp
    ? [PCI_EXP_DEVCTL, PCI_EXP_LNKCTL, PCI_EXP_DEVCTL2, PCI_EXP_LNKCTL2].map((r) => ({
        off: exp + r,
        value: port.configRead(exp + r, 2),
      }))
    : [];
  // pci_dev_save_and_disable: only INTx Disable stays set during the reset.
  port.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  if (expFlr) {
    const ctl = port.configRead(exp + PCI_EXP_DEVCTL, 2);
    port.configWrite(exp + PCI_EXP_DEVCTL, 2, ctl | PCI_EXP_DEVCTL_BCR_FLR);
  } else {
    port.configWrite(af + PCI_AF_CTRL, 1, PCI_AF_CTRL_FLR);
  }
  // pci_restore_state: PCIe registers first, then the header dwords from 15 down to 0.
  for (const r of expRegs) port.configWrite(r.off, 2, r.value & ~PCI_EXP_DEVCTL_BCR_FLR);
  for (let i = 15; i >= 0; i--) {
    const saved = header[i]!;
    if (port.configRead(4 * i, 4) >>> 0 !== saved) port.configWrite(4 * i, 4, saved);
  }
}

// ---------------------------------------------------------------- permission bits

/** The per-device state the handlers work on (struct vfio_pci_device's config part). */
interface Vdev {
  readonly port: PciConfigPort;
  readonly cfgSize: number;
  vconfig: Uint8Array;
  map: Uint8Array;
  /** BAR0–5 and the ROM BAR as read at init, for restore after a backdoor reset. */
  readonly rbar: Uint32Array;
  bardirty: boolean;
  extendedCaps: boolean;
  msiPerm: PermBits | undefined;
  msiQmax: number;
  isMsi: boolean;
  virqDisabled: boolean;
  readonly nointx: boolean;
  readonly intxSupported: boolean;
  readonly virtfn: VirtfnIds | undefined;
  readonly vfEmulation: VfPasidEmulation | undefined;
  readonly resources: PciResources;
  readonly core: ResolvedCoreOps;
  readonly capLength: readonly number[];
  readonly extCapLength: readonly number[];
  readonly messages: string[];
}

type ReadFn = (vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number) => number;
type WriteFn = (vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number) => void;

/** How a permission set treats writes, for inspection. */
export type PermWriteKind = 'none' | 'raw' | 'virt' | 'masked';

/** `struct perm_bits`: per-bit virt and write masks and optional handlers. */
interface PermBits {
  readonly name: string;
  readonly virt: Uint8Array | undefined;
  readonly write: Uint8Array | undefined;
  readonly readfn: ReadFn;
  readonly writefn: WriteFn | undefined;
  readonly writeKind: PermWriteKind;
}

/** One field of a permission table: offset, width, virt mask, write mask. */
type PermField = readonly [off: number, size: 1 | 2 | 4, virt: number, write: number];

/**
 * `alloc_perm_bits` + `p_setb/p_setw/p_setd`: masks rounded up to whole dwords, zero = readable,
 * not writable, not virtualised.
 */
function permBits(
  name: string,
  size: number,
  fields: readonly PermField[],
  readfn: ReadFn = defaultRead,
  writefn: WriteFn = defaultWrite,
): PermBits {
  const n = (size + 3) & ~3;
  const virt = new Uint8Array(n);
  const write = new Uint8Array(n);
  for (const [off, width, v, w] of fields) {
    setLe(virt, off, width, v);
    setLe(write, off, width, w);
  }
  return { name, virt, write, readfn, writefn, writeKind: 'masked' };
}

function directPerm(name: string, writefn?: WriteFn): PermBits {
  return {
    name,
    virt: undefined,
    write: undefined,
    readfn: directRead,
    writefn,
    writeKind: writefn ? 'raw' : 'none',
  };
}

// -------------------------------------------------- device access

/**
 * A config read of the physical device (`pci_user_read_config_*`). Decision: an offset outside the
 * device's space (only reachable through a malformed capability chain at init) reads 0.
 */
function hwRead(vdev: Vdev, pos: number, count: number): number {
  if (pos < 0 || pos + count > vdev.port.configSize) return 0;
  return (vdev.port.configRead(pos, count as AccessSize) >>> 0) & ones(count);
}

function hwWrite(vdev: Vdev, pos: number, count: number, value: number): void {
  if (pos < 0 || pos + count > vdev.port.configSize) return;
  vdev.port.configWrite(pos, count as AccessSize, (value & ones(count)) >>> 0);
}

// -------------------------------------------------- generic handlers

/** `vfio_default_config_read`: virtualised bits from vconfig, the others from the device. */
function defaultRead(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number): number {
  let val = getLe(vdev.vconfig, pos, count);
  const virt = getLe(perm.virt, offset, count);
  if (virt !== ones(count)) {
    const phys = hwRead(vdev, pos, count);
    val = ((phys & ~virt) | (val & virt)) >>> 0;
  }
  return val;
}

/**
 * `vfio_default_config_write`: writable virtualised bits go to vconfig; writable other bits are
 * read-modify-written on the device (so the device sees its own current value in every
 * non-writable bit of the chunk — which clears any set write-1-to-clear bit there).
 */
function defaultWrite(
  vdev: Vdev,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  const write = getLe(perm.write, offset, count);
  if (!write) return;
  const virt = getLe(perm.virt, offset, count);
  const wv = (write & virt) >>> 0;
  if (wv) {
    const v = getLe(vdev.vconfig, pos, count);
    setLe(vdev.vconfig, pos, count, ((v & ~wv) | (val & wv)) >>> 0);
  }
  const wp = (write & ~virt & ones(count)) >>> 0;
  if (wp) {
    const phys = hwRead(vdev, pos, count);
    hwWrite(vdev, pos, count, ((phys & ~wp) | (val & wp)) >>> 0);
  }
}

/**
 * `vfio_direct_config_read`: the device's value, except capability headers: an extended header
 * (first dword) and a standard capability's ID+next (offset 0, 2+ bytes) or next byte come from
 * vconfig, so the guest follows the virtual chain.
 */
function directRead(vdev: Vdev, pos: number, count: number, _perm: PermBits, offset: number): number {
  let val = hwRead(vdev, pos, count);
  if (pos >= PCI_CFG_SPACE_SIZE) {
    if (offset < 4) val = getLe(vdev.vconfig, pos, count);
  } else if (pos >= PCI_STD_HEADER_SIZEOF) {
    if (offset === PCI_CAP_LIST_ID && count > 1) {
      const n = Math.min(PCI_CAP_FLAGS, count);
      val = ((val & ~ones(n)) | getLe(vdev.vconfig, pos, n)) >>> 0;
    } else if (offset === PCI_CAP_LIST_NEXT) {
      val = ((val & ~0xff) | getLe(vdev.vconfig, pos, 1)) >>> 0;
    }
  }
  return val;
}

function rawRead(vdev: Vdev, pos: number, count: number): number {
  return hwRead(vdev, pos, count);
}

function rawWrite(
  vdev: Vdev,
  pos: number,
  count: number,
  _perm: PermBits,
  _offset: number,
  val: number,
): void {
  hwWrite(vdev, pos, count, val);
}

function virtRead(vdev: Vdev, pos: number, count: number): number {
  return getLe(vdev.vconfig, pos, count);
}

function virtWrite(
  vdev: Vdev,
  pos: number,
  count: number,
  _perm: PermBits,
  _offset: number,
  val: number,
): void {
  setLe(vdev.vconfig, pos, count, val);
}

// -------------------------------------------------- standard header

const isBar = (offset: number): boolean =>
  (offset >= PCI_BASE_ADDRESS_0 && offset < PCI_BASE_ADDRESS_5 + 4) ||
  (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4);

function barFlags(res: PciBarResource): number {
  if (res.io) return PCI_BASE_ADDRESS_SPACE_IO;
  return (res.prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0) | (res.mem64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0);
}

/**
 * `vfio_bar_fixup`: makes the virtual BARs behave like hardware for sizing — each keeps only the
 * address bits its size allows plus the type flags; a BAR the host left unassigned reads 0. Runs
 * on every read of a BAR (5.x calls it unconditionally; `bardirty` is only written).
 */
function barFixup(vdev: Vdev): void {
  const v = vdev.vconfig;
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    const res = vdev.resources.bars[i];
    if (!res || res.start === 0n) {
      setLe(v, off, 4, 0);
      continue;
    }
    const mask = ~(res.len - 1n);
    let bar = (getLe(v, off, 4) & Number(mask & 0xffff_ffffn)) >>> 0;
    bar = (bar | barFlags(res)) >>> 0;
    setLe(v, off, 4, bar);
    // As in Linux, bit 2 of the fixed-up value decides (an I/O BAR of 4 bytes can keep it from a
    // user write). Decision: BAR5 has no upper half to fix (Linux would mask the dword at 0x28).
    if (bar & PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < PCI_STD_NUM_BARS) {
      const hi = (getLe(v, off + 4, 4) & Number((mask >> 32n) & 0xffff_ffffn)) >>> 0;
      setLe(v, off + 4, 4, hi);
      i++;
    }
  }
  const rom = vdev.resources.rom;
  if (rom && rom.start !== 0n) {
    const mask = Number(~(rom.len - 1n) & 0xffff_ffffn) | PCI_ROM_ADDRESS_ENABLE;
    setLe(v, PCI_ROM_ADDRESS, 4, (getLe(v, PCI_ROM_ADDRESS, 4) & mask) >>> 0);
  } else if (vdev.resources.romShadow) {
    const mask = (~(0x20000 - 1) | PCI_ROM_ADDRESS_ENABLE) >>> 0;
    setLe(v, PCI_ROM_ADDRESS, 4, (getLe(v, PCI_ROM_ADDRESS, 4) & mask) >>> 0);
  } else {
    setLe(v, PCI_ROM_ADDRESS, 4, 0);
  }
  vdev.bardirty = false;
}

/** `vfio_basic_config_read`. */
function basicRead(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number): number {
  if (isBar(offset)) barFixup(vdev);
  let val = defaultRead(vdev, pos, count, perm, offset);
  // A VF has no Memory enable bit of its own: show the virtual one.
  if (offset === PCI_COMMAND && vdev.virtfn)
    val = (val | (getLe(vdev.vconfig, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)) >>> 0;
  return val;
}

/** `vfio_need_bar_restore`: a saved BAR differs from what the device holds now. */
function needBarRestore(vdev: Vdev): boolean {
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const saved = vdev.rbar[i]!;
    if (saved && hwRead(vdev, PCI_BASE_ADDRESS_0 + 4 * i, 4) !== saved) return true;
  }
  return false;
}

/** `vfio_bar_restore`: writes the BARs saved at init back after a reset vfio did not see. */
function barRestore(vdev: Vdev): void {
  if (vdev.virtfn) return;
  vdev.messages.push('reset recovery - restoring BARs');
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) hwWrite(vdev, PCI_BASE_ADDRESS_0 + 4 * i, 4, vdev.rbar[i]!);
  hwWrite(vdev, PCI_ROM_ADDRESS, 4, vdev.rbar[6]!);
  if (vdev.nointx) {
    hwWrite(vdev, PCI_COMMAND, 2, hwRead(vdev, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE);
  }
}

/**
 * `vfio_basic_config_write`: a write starting at Command first checks for a reset behind vfio's
 * back (memory/IO enable set virtually but clear on the device, or BARs changed) and restores the
 * BARs; after the write vconfig remembers the Memory/IO enables; a change of the virtual INTx
 * Disable bit masks or unmasks INTx; a BAR write marks the BARs dirty.
 */
function basicWrite(
  vdev: Vdev,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  let newCmd = 0;
  if (offset === PCI_COMMAND) {
    const physCmd = hwRead(vdev, PCI_COMMAND, 2);
    const virtCmd = getLe(vdev.vconfig, PCI_COMMAND, 2);
    newCmd = val & 0xffff;
    const physMem = (physCmd & PCI_COMMAND_MEMORY) !== 0;
    const virtMem = (virtCmd & PCI_COMMAND_MEMORY) !== 0;
    const newMem = (newCmd & PCI_COMMAND_MEMORY) !== 0;
    const physIo = (physCmd & PCI_COMMAND_IO) !== 0;
    const virtIo = (virtCmd & PCI_COMMAND_IO) !== 0;
    const newIo = (newCmd & PCI_COMMAND_IO) !== 0;
    if (!newMem) vdev.core.zapMmaps();
    if ((newMem && virtMem && !physMem) || (newIo && virtIo && !physIo) || needBarRestore(vdev))
      barRestore(vdev);
  }
  defaultWrite(vdev, pos, count, perm, offset, val);
  if (offset === PCI_COMMAND) {
    const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
    const virtCmd = getLe(vdev.vconfig, PCI_COMMAND, 2);
    setLe(vdev.vconfig, PCI_COMMAND, 2, (virtCmd & ~mask) | (newCmd & mask));
  }
  if (offset >= PCI_COMMAND && offset <= PCI_COMMAND + 1) {
    const virtIntxDisable = (getLe(vdev.vconfig, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (virtIntxDisable && !vdev.virqDisabled) {
      vdev.virqDisabled = true;
      vdev.core.intxMask();
    } else if (!virtIntxDisable && vdev.virqDisabled) {
      vdev.virqDisabled = false;
      vdev.core.intxUnmask();
    }
  }
  if (isBar(offset)) vdev.bardirty = true;
}

/** `init_pci_cap_basic_perm`. */
const BASIC_PERM = permBits(
  'basic',
  PCI_STD_HEADER_SIZEOF,
  [
    // Virtual for SR-IOV VFs, whose own IDs read 0xFFFF.
    [PCI_VENDOR_ID, 2, 0xffff, NO_WRITE],
    [PCI_DEVICE_ID, 2, 0xffff, NO_WRITE],
    // INTx Disable is virtual: vfio uses the real bit for its own INTx masking.
    [PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, 0xffff],
    // The Capabilities List bit is virtual so that hiding every capability can clear it.
    [PCI_STATUS, 2, PCI_STATUS_CAP_LIST, NO_WRITE],
    [PCI_CACHE_LINE_SIZE, 1, NO_VIRT, 0xff],
    [PCI_LATENCY_TIMER, 1, NO_VIRT, 0xff],
    [PCI_BIST, 1, NO_VIRT, 0xff],
    // Every BAR is virtual: the guest never moves the real ones.
    ...Array.from(
      { length: PCI_STD_NUM_BARS },
      (_, i): PermField => [PCI_BASE_ADDRESS_0 + 4 * i, 4, ALL_VIRT, ALL_WRITE],
    ),
    [PCI_ROM_ADDRESS, 4, ALL_VIRT, ALL_WRITE],
    [PCI_CAPABILITY_LIST, 1, 0xff, NO_WRITE],
    [PCI_INTERRUPT_LINE, 1, 0xff, 0xff],
    // Virtual so that INTx can be hidden (pin 0).
    [PCI_INTERRUPT_PIN, 1, 0xff, NO_WRITE],
  ],
  basicRead,
  basicWrite,
);

// -------------------------------------------------- standard capabilities

/** `vfio_pm_config_write`: a write of PM Control asks the PCI core for the power state written. */
function pmWrite(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number): void {
  defaultWrite(vdev, pos, count, perm, offset, val);
  if (offset === PCI_PM_CTRL) vdev.core.setPowerState(val & PCI_PM_CTRL_STATE_MASK);
}

/** `init_pci_cap_pm_perm`: the state field is read-only (vfio changes it through the PCI core). */
const PM_PERM = permBits(
  'pm',
  PCI_PM_SIZEOF,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
    [PCI_PM_CTRL, 4, NO_VIRT, ~PCI_PM_CTRL_STATE_MASK >>> 0],
  ],
  defaultRead,
  pmWrite,
);

/**
 * `vfio_vpd_config_write`: address and data are virtual; a write reaching the address register's
 * flag byte performs the VPD read or write through the PCI core and toggles the flag on success.
 */
function vpdWrite(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number): void {
  defaultWrite(vdev, pos, count, perm, offset, val);
  if (offset > PCI_VPD_ADDR + 1 || offset + count <= PCI_VPD_ADDR + 1) return;
  const start = pos - offset;
  let addr = getLe(vdev.vconfig, start + PCI_VPD_ADDR, 2);
  if (addr & PCI_VPD_ADDR_F) {
    const data = getLe(vdev.vconfig, start + PCI_VPD_DATA, 4);
    if (!vdev.core.writeVpd(addr & ~PCI_VPD_ADDR_F, data)) return;
  } else {
    const data = vdev.core.readVpd(addr);
    if (data === undefined) return;
    setLe(vdev.vconfig, start + PCI_VPD_DATA, 4, data >>> 0);
  }
  addr ^= PCI_VPD_ADDR_F;
  setLe(vdev.vconfig, start + PCI_VPD_ADDR, 2, addr);
}

const VPD_PERM = permBits(
  'vpd',
  PCI_CAP_VPD_SIZEOF,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
    [PCI_VPD_ADDR, 2, 0xffff, 0xffff],
    [PCI_VPD_DATA, 4, ALL_VIRT, ALL_WRITE],
  ],
  defaultRead,
  vpdWrite,
);

const PCIX_PERM = permBits('pcix', PCI_CAP_PCIX_SIZEOF_V2, [
  [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
  [PCI_X_CMD, 2, NO_VIRT, 0xffff],
  [PCI_X_ECC_CSR, 4, NO_VIRT, ALL_WRITE],
]);

/**
 * `vfio_exp_config_write`: the virtual FLR bit, once set, is cleared and — if the device can FLR —
 * becomes a function reset; a change of the virtual Max Read Request Size is applied to the
 * device, but never below its Max Payload Size.
 */
function expWrite(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number): void {
  const start = pos - offset;
  const ctrlOff = start + PCI_EXP_DEVCTL;
  const readrq = getLe(vdev.vconfig, ctrlOff, 2) & PCI_EXP_DEVCTL_READRQ;
  defaultWrite(vdev, pos, count, perm, offset, val);
  let ctrl = getLe(vdev.vconfig, ctrlOff, 2);
  if (ctrl & PCI_EXP_DEVCTL_BCR_FLR) {
    ctrl &= ~PCI_EXP_DEVCTL_BCR_FLR;
    setLe(vdev.vconfig, ctrlOff, 2, ctrl);
    if (hwRead(vdev, start + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR) vdev.core.resetFunction();
  }
  if (readrq !== (ctrl & PCI_EXP_DEVCTL_READRQ)) {
    const wanted = 128 << ((ctrl & PCI_EXP_DEVCTL_READRQ) >>> 12);
    const mps = 128 << ((hwRead(vdev, ctrlOff, 2) & PCI_EXP_DEVCTL_PAYLOAD) >>> 5);
    vdev.core.setReadrq(Math.max(wanted, mps));
  }
}

/**
 * `init_pci_cap_exp_perm`: device control is writable except Phantom Functions; FLR, Max Payload
 * and Max Read Request are virtual; DEVCTL2 is writable except ARI Forwarding.
 */
const EXP_PERM = permBits(
  'exp',
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V2_LINUX,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
    [
      PCI_EXP_DEVCTL,
      2,
      PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ,
      ~PCI_EXP_DEVCTL_PHANTOM & 0xffff,
    ],
    [PCI_EXP_DEVCTL2, 2, NO_VIRT, ~PCI_EXP_DEVCTL2_ARI & 0xffff],
  ],
  defaultRead,
  expWrite,
);

/** `vfio_af_config_write`: the virtual AF FLR bit becomes a function reset if TP and FLR are supported. */
function afWrite(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number): void {
  const start = pos - offset;
  defaultWrite(vdev, pos, count, perm, offset, val);
  const ctrl = vdev.vconfig[start + PCI_AF_CTRL]!;
  if (ctrl & PCI_AF_CTRL_FLR) {
    vdev.vconfig[start + PCI_AF_CTRL] = ctrl & ~PCI_AF_CTRL_FLR;
    const cap = hwRead(vdev, start + PCI_AF_CAP, 1);
    if (cap & PCI_AF_CAP_FLR && cap & PCI_AF_CAP_TP) vdev.core.resetFunction();
  }
}

const AF_PERM = permBits(
  'af',
  PCI_CAP_AF_SIZEOF,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
    [PCI_AF_CTRL, 1, PCI_AF_CTRL_FLR, PCI_AF_CTRL_FLR],
  ],
  defaultRead,
  afWrite,
);

// -------------------------------------------------- MSI (per device)

/** `vfio_find_cap_start`: first byte of the capability owning `pos` (walking the map back). */
function findCapStart(vdev: Vdev, pos: number): number {
  const cap = vdev.map[pos]!;
  if (cap === PCI_CAP_ID_BASIC) return 0;
  const base = pos >= PCI_CFG_SPACE_SIZE ? PCI_CFG_SPACE_SIZE : PCI_STD_HEADER_SIZEOF;
  // Two abutting capabilities with the same ID would merge here, as in Linux.
  while (pos - 1 >= base && vdev.map[pos - 1] === cap) pos--;
  return pos;
}

/**
 * `vfio_msi_config_read`: meant to show `msi_qmax` as Multiple Message Capable. Linux quirk kept:
 * it updates the word at the capability's *start* (the ID byte), not the flags; the ID byte is not
 * virtualised, so the guest sees neither the change nor the intended one.
 */
function msiRead(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number): number {
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const start = findCapStart(vdev, pos);
    const w = getLe(vdev.vconfig, start, 2);
    setLe(vdev.vconfig, start, 2, (w & ~PCI_MSI_FLAGS_QMASK) | ((vdev.msiQmax << 1) & 0xffff));
  }
  return defaultRead(vdev, pos, count, perm, offset);
}

/**
 * `vfio_msi_config_write`: after a write reaching the flags, MSI Enable is kept clear unless vfio
 * has MSI enabled (through VFIO_DEVICE_SET_IRQS), Multiple Message Enable is capped at `msi_qmax`,
 * and the flags are written to vconfig and to the device.
 */
function msiWrite(vdev: Vdev, pos: number, count: number, perm: PermBits, offset: number, val: number): void {
  defaultWrite(vdev, pos, count, perm, offset, val);
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const start = findCapStart(vdev, pos);
    let flags = getLe(vdev.vconfig, start + PCI_MSI_FLAGS, 2);
    if (!vdev.isMsi) flags &= ~PCI_MSI_FLAGS_ENABLE;
    if ((flags & PCI_MSI_FLAGS_QSIZE) >>> 4 > vdev.msiQmax) {
      flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | ((vdev.msiQmax << 4) & PCI_MSI_FLAGS_QSIZE);
    }
    setLe(vdev.vconfig, start + PCI_MSI_FLAGS, 2, flags);
    hwWrite(vdev, start + PCI_MSI_FLAGS, 2, flags);
  }
}

/** `init_pci_cap_msi_perm`: the layout depends on the device's 64-bit and per-vector-mask flags. */
function msiPerm(len: number, flags: number): PermBits {
  const fields: PermField[] = [
    [PCI_CAP_LIST_NEXT, 1, 0xff, NO_WRITE],
    // The upper byte of Message Control is reserved.
    [PCI_MSI_FLAGS, 1, 0xff, 0xff],
    [PCI_MSI_ADDRESS_LO, 4, ALL_VIRT, ALL_WRITE],
  ];
  if (flags & PCI_MSI_FLAGS_64BIT) {
    fields.push([PCI_MSI_ADDRESS_HI, 4, ALL_VIRT, ALL_WRITE], [PCI_MSI_DATA_64, 2, 0xffff, 0xffff]);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
      fields.push([PCI_MSI_MASK_64, 4, NO_VIRT, ALL_WRITE], [PCI_MSI_PENDING_64, 4, NO_VIRT, ALL_WRITE]);
    }
  } else {
    fields.push([PCI_MSI_DATA_32, 2, 0xffff, 0xffff]);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
      fields.push([PCI_MSI_MASK_32, 4, NO_VIRT, ALL_WRITE], [PCI_MSI_PENDING_32, 4, NO_VIRT, ALL_WRITE]);
    }
  }
  return permBits('msi', len, fields, msiRead, msiWrite);
}

// -------------------------------------------------- extended capabilities

/** `init_pci_ext_cap_err_perm`: header virtual, error status/mask/severity and ECRC enables writable. */
const ERR_PERM = permBits('ecap-err', PCI_ERR_ROOT_COMMAND, [
  // The first dword of every extended capability holds the next pointer.
  [0, 4, ALL_VIRT, NO_WRITE],
  [PCI_ERR_UNCOR_STATUS, 4, NO_VIRT, AER_UNCOR_WRITABLE],
  [PCI_ERR_UNCOR_MASK, 4, NO_VIRT, AER_UNCOR_WRITABLE],
  [PCI_ERR_UNCOR_SEVER, 4, NO_VIRT, AER_UNCOR_WRITABLE],
  [PCI_ERR_COR_STATUS, 4, NO_VIRT, AER_COR_WRITABLE],
  [PCI_ERR_COR_MASK, 4, NO_VIRT, AER_COR_WRITABLE],
  [PCI_ERR_CAP, 4, NO_VIRT, AER_CAP_WRITABLE],
]);

/** `init_pci_ext_cap_pwr_perm`: header virtual; the data select byte is writable. */
const PWR_PERM = permBits('ecap-pwr', PCI_EXT_CAP_PWR_SIZEOF, [
  [0, 4, ALL_VIRT, NO_WRITE],
  [PCI_PWR_DATA, 1, NO_VIRT, 0xff],
]);

// -------------------------------------------------- the shared tables

const CAP_DEFAULT = directPerm('cap-default');
const ECAP_DEFAULT = directPerm('ecap-default');
/** Unclaimed bytes: raw. Linux: some devices hide registers in the gaps between capabilities. */
const UNASSIGNED_PERM: PermBits = {
  name: 'unassigned',
  virt: undefined,
  write: undefined,
  readfn: rawRead,
  writefn: rawWrite,
  writeKind: 'raw',
};
const VIRT_PERM: PermBits = {
  name: 'virt',
  virt: undefined,
  write: undefined,
  readfn: virtRead,
  writefn: virtWrite,
  writeKind: 'virt',
};

/** `cap_perms[]`: default "direct read, no write"; vendor-specific capabilities take raw writes. */
const CAP_PERMS: readonly PermBits[] = (() => {
  const t = new Array<PermBits>(PCI_CAP_ID_MAX + 1).fill(CAP_DEFAULT);
  t[PCI_CAP_ID_BASIC] = BASIC_PERM;
  t[PCI_CAP_ID_PM] = PM_PERM;
  t[PCI_CAP_ID_VPD] = VPD_PERM;
  t[PCI_CAP_ID_PCIX] = PCIX_PERM;
  t[PCI_CAP_ID_VNDR] = directPerm('cap-vndr', rawWrite);
  t[PCI_CAP_ID_EXP] = EXP_PERM;
  t[PCI_CAP_ID_AF] = AF_PERM;
  return Object.freeze(t);
})();

/**
 * `ecap_perms[]`: the default reads the device with the header from vconfig and drops writes —
 * what the exposed PASID capability gets (no entry of its own, §7.2).
 */
const ECAP_PERMS: readonly PermBits[] = (() => {
  const t = new Array<PermBits>(VFIO_PCI_EXT_CAP_ID_MAX + 1).fill(ECAP_DEFAULT);
  t[PCI_EXT_CAP_ID_ERR] = ERR_PERM;
  t[PCI_EXT_CAP_ID_PWR] = PWR_PERM;
  t[PCI_EXT_CAP_ID_VNDR] = directPerm('ecap-vndr', rawWrite);
  return Object.freeze(t);
})();

// ---------------------------------------------------------------- capability scan (vfio_config_init)

/** `vfio_fill_vconfig_bytes`: copies device bytes into vconfig in the largest aligned pieces. */
function fillVconfig(vdev: Vdev, offset: number, size: number): void {
  while (size > 0) {
    const n = size >= 4 && offset % 4 === 0 ? 4 : size >= 2 && offset % 2 === 0 ? 2 : 1;
    setLe(vdev.vconfig, offset, n, hwRead(vdev, offset, n));
    offset += n;
    size -= n;
  }
}

/** Sets `extendedCaps` from the dword at 0x100 (done while sizing a PCIe or PCI-X 2.0 capability). */
function testExtendedCaps(vdev: Vdev): void {
  if (vdev.cfgSize > PCI_CFG_SPACE_SIZE) vdev.extendedCaps = hwRead(vdev, PCI_CFG_SPACE_SIZE, 4) !== 0;
}

/** `vfio_msi_cap_len`: 10 bytes, +4 for 64-bit addresses, +10 for per-vector masking. */
function msiCapLen(vdev: Vdev, pos: number): number {
  const flags = hwRead(vdev, pos + PCI_MSI_FLAGS, 2);
  let len = 10;
  if (flags & PCI_MSI_FLAGS_64BIT) len += 4;
  if (flags & PCI_MSI_FLAGS_MASKBIT) len += 10;
  vdev.msiPerm ??= msiPerm(len, flags);
  return len;
}

/** `vfio_cap_len`: lengths of the variable standard capabilities. */
function capLen(vdev: Vdev, cap: number, pos: number): number {
  switch (cap) {
    case PCI_CAP_ID_MSI:
      return msiCapLen(vdev, pos);
    case PCI_CAP_ID_PCIX:
      if (pciXCmdVersion(hwRead(vdev, pos + PCI_X_CMD, 2))) {
        testExtendedCaps(vdev);
        return PCI_CAP_PCIX_SIZEOF_V2;
      }
      return PCI_CAP_PCIX_SIZEOF_V0;
    case PCI_CAP_ID_VNDR:
      // The length byte follows the next pointer.
      return hwRead(vdev, pos + PCI_CAP_FLAGS, 1);
    case PCI_CAP_ID_EXP: {
      testExtendedCaps(vdev);
      const flags = hwRead(vdev, pos + PCI_EXP_FLAGS, 2);
      const rcEnd = (flags & PCI_EXP_FLAGS_TYPE) >>> 4 === PCI_EXP_TYPE_RC_END;
      if ((flags & PCI_EXP_FLAGS_VERS) === 1)
        return rcEnd ? PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1 : PCI_CAP_EXP_ENDPOINT_SIZEOF_V1;
      return rcEnd ? PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V2 : PCI_CAP_EXP_ENDPOINT_SIZEOF_V2_LINUX;
    }
    case PCI_CAP_ID_HT:
      return hwRead(vdev, pos + 3, 1) & HT_3BIT_CAP_MASK ? HT_CAP_SIZEOF_SHORT : HT_CAP_SIZEOF_LONG;
    case PCI_CAP_ID_SATA:
      return (hwRead(vdev, pos + PCI_SATA_REGS, 1) & PCI_SATA_REGS_MASK) === PCI_SATA_REGS_INLINE
        ? PCI_SATA_SIZEOF_LONG
        : PCI_SATA_SIZEOF_SHORT;
    default:
      vdev.messages.push(`unknown length for PCI cap ${hex(cap)}@${hex(pos)}`);
      return 0;
  }
}

/** `vfio_vc_cap_len`: VC, VC9 and MFVC — base, one block per VC, and the VC arbitration table. */
function vcCapLen(vdev: Vdev, pos: number): number {
  const evcc = hwRead(vdev, pos + PCI_VC_PORT_CAP1, 4) & PCI_VC_CAP1_EVCC;
  const cap2 = hwRead(vdev, pos + PCI_VC_PORT_CAP2, 4);
  const phases =
    cap2 & PCI_VC_CAP2_128_PHASE
      ? 128
      : cap2 & PCI_VC_CAP2_64_PHASE
        ? 64
        : cap2 & PCI_VC_CAP2_32_PHASE
          ? 32
          : 0;
  const vcArb = phases * 4;
  let len = PCI_CAP_VC_BASE_SIZEOF + (1 + evcc) * PCI_CAP_VC_PER_VC_SIZEOF;
  if (vcArb) len = ((len + 15) & ~15) + vcArb / 8;
  return len;
}

/** `vfio_ext_cap_len`: lengths of the variable extended capabilities. */
function extCapLen(vdev: Vdev, ecap: number, epos: number): number {
  switch (ecap) {
    case PCI_EXT_CAP_ID_VNDR:
      return hwRead(vdev, epos + PCI_VSEC_HDR, 4) >>> PCI_VSEC_HDR_LEN_SHIFT;
    case PCI_EXT_CAP_ID_VC:
    case PCI_EXT_CAP_ID_VC9:
    case PCI_EXT_CAP_ID_MFVC:
      return vcCapLen(vdev, epos);
    case PCI_EXT_CAP_ID_ACS: {
      if (!(hwRead(vdev, epos + PCI_ACS_CAP, 1) & PCI_ACS_EC)) return 8;
      const byte = hwRead(vdev, epos + PCI_ACS_EGRESS_BITS, 1);
      const bits = byte ? (byte + 31) & ~31 : 256;
      return 8 + bits / 8;
    }
    case PCI_EXT_CAP_ID_REBAR: {
      const nbar =
        (hwRead(vdev, epos + PCI_REBAR_CTRL, 1) & PCI_REBAR_CTRL_NBAR_MASK) >>> PCI_REBAR_CTRL_NBAR_SHIFT;
      return 4 + nbar * 8;
    }
    case PCI_EXT_CAP_ID_DPA:
      return PCI_DPA_BASE_SIZEOF + (hwRead(vdev, epos + PCI_DPA_CAP, 1) & PCI_DPA_CAP_SUBSTATE_MASK) + 1;
    case PCI_EXT_CAP_ID_TPH: {
      const dword = hwRead(vdev, epos + PCI_TPH_CAP, 4);
      if ((dword & PCI_TPH_CAP_LOC_MASK) === PCI_TPH_LOC_CAP) {
        const sts = (dword & PCI_TPH_CAP_ST_MASK) >>> PCI_TPH_CAP_ST_SHIFT;
        return PCI_TPH_BASE_SIZEOF + sts * 2 + 2;
      }
      return PCI_TPH_BASE_SIZEOF;
    }
    default:
      vdev.messages.push(`unknown length for PCI ecap ${hex(ecap)}@${hex(epos)}`);
      return 0;
  }
}

/** Marks `len` map bytes for a capability, noting overlaps as Linux warns about them. */
function claim(vdev: Vdev, pos: number, len: number, id: number, kind: 'cap' | 'ecap'): void {
  for (let i = 0; i < len; i++) {
    const was = vdev.map[pos + i]!;
    if (was !== PCI_CAP_ID_INVALID) {
      vdev.messages.push(
        `PCI config conflict @${hex(pos + i)}, was ${kind} ${hex(was)} now ${kind} ${hex(id)}`,
      );
    }
  }
  vdev.map.fill(id & 0xff, pos, pos + len);
  fillVconfig(vdev, pos, len);
}

/**
 * `vfio_cap_init`: walks the device's standard chain; a hidden capability is unlinked by writing
 * its next pointer into the previous next byte (or Capabilities Pointer) of vconfig. Decision:
 * a length running past 0xFF is cut at the end of standard space (Linux would mark bytes beyond).
 */
function capInit(vdev: Vdev): void {
  if (!(hwRead(vdev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return;
  let pos = hwRead(vdev, PCI_CAPABILITY_LIST, 1);
  let prev = PCI_CAPABILITY_LIST;
  let caps = 0;
  // Capabilities are dword aligned: at most this many fit.
  let loops = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / PCI_CAP_SIZEOF;
  while (pos && loops-- > 0) {
    const cap = hwRead(vdev, pos, 1);
    const next = hwRead(vdev, pos + PCI_CAP_LIST_NEXT, 1);
    let len = 0;
    // ID 0 is a null capability and collides with PCI_CAP_ID_BASIC: hidden.
    if (cap && cap <= PCI_CAP_ID_MAX) {
      len = vdev.capLength[cap] ?? 0;
      if (len === PCI_CAP_LEN_VARIABLE) len = capLen(vdev, cap, pos);
    }
    if (!len) {
      vdev.messages.push(`hiding cap ${hex(cap)}@${hex(pos)}`);
      vdev.vconfig[prev] = next;
      pos = next;
      continue;
    }
    claim(vdev, pos, Math.min(len, PCI_CFG_SPACE_SIZE - pos), cap, 'cap');
    prev = pos + PCI_CAP_LIST_NEXT;
    pos = next;
    caps++;
  }
  if (!caps) setLe(vdev.vconfig, PCI_STATUS, 2, getLe(vdev.vconfig, PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST);
}

/**
 * `vfio_ecap_init` (seed-spec §7.3): walks the extended chain from 0x100 if the PCIe capability
 * saw one. A hidden capability after a visible one is skipped by patching the previous header's
 * next field in vconfig; a hidden first capability keeps a 4-byte placeholder whose ID and version
 * are cleared in vconfig. Hidden bytes stay unclaimed (raw). No visible capability: the dword at
 * 0x100 of vconfig is 0. The map keeps the low byte of a 16-bit ID, as Linux's byte map does.
 * Decision: a length running past the end of config space is cut there.
 */
function ecapInit(vdev: Vdev): void {
  if (!vdev.extendedCaps) return;
  let epos = PCI_CFG_SPACE_SIZE;
  let eposMax = PCI_CFG_SPACE_SIZE;
  let prev: number | undefined;
  let ecaps = 0;
  let loops = (vdev.cfgSize - PCI_CFG_SPACE_SIZE) / PCI_CAP_SIZEOF;
  while (loops-- > 0 && epos >= PCI_CFG_SPACE_SIZE) {
    const header = hwRead(vdev, epos, 4);
    const ecap = PCI_EXT_CAP_ID(header);
    let len = 0;
    let hidden = false;
    if (ecap <= VFIO_PCI_EXT_CAP_ID_MAX) {
      len = vdev.extCapLength[ecap] ?? 0;
      if (len === PCI_CAP_LEN_VARIABLE) len = extCapLen(vdev, ecap, epos);
    }
    // RFC 2/2 (§7.4): the end of the furthest capability seen (a hidden one counts with length 0).
    eposMax = Math.max(eposMax, epos + len);
    if (!len) {
      vdev.messages.push(`hiding ecap ${hex(ecap)}@${hex(epos)}`);
      if (prev !== undefined) {
        epos = PCI_EXT_CAP_NEXT(header);
        const p = getLe(vdev.vconfig, prev, 4);
        setLe(vdev.vconfig, prev, 4, ((p & ~(0xffc << 20)) | (epos << 20)) >>> 0);
        continue;
      }
      len = PCI_CAP_SIZEOF;
      hidden = true;
    }
    claim(vdev, epos, Math.min(len, vdev.cfgSize - epos), ecap, 'ecap');
    if (hidden) {
      // Keep only the next pointer (the PCIe spec would want 0/0/0 for "no capabilities").
      setLe(vdev.vconfig, epos, 4, (getLe(vdev.vconfig, epos, 4) & (0xffc << 20)) >>> 0);
    } else {
      ecaps++;
    }
    prev = epos;
    epos = PCI_EXT_CAP_NEXT(header);
  }
  if (!ecaps) setLe(vdev.vconfig, PCI_CFG_SPACE_SIZE, 4, 0);
  if (vdev.virtfn && vdev.vfEmulation && prev !== undefined)
    addEmulatedCapsForVf(vdev, vdev.vfEmulation, eposMax, prev);
}

// ---------------------------------------------------------------- RFC 2/2: PASID/PRI for VFs

/** The ID the RFC as posted wrote into each emulated header (LTR and Secondary PCIe: a bug). */
const RFC_HARDCODED_ID: Readonly<Record<number, number>> = {
  [PCI_EXT_CAP_ID_PASID]: 0x18,
  [PCI_EXT_CAP_ID_PRI]: 0x19,
};

/**
 * `vfio_pci_add_emulated_cap_for_vf` (seed-spec §7.4): a VF must not implement PASID or PRI (the
 * PF's are shared), so the RFC appends copies of the PF's capabilities after the VF's furthest
 * capability — PASID (8 bytes) then PRI (16), each only if enabled on the PF, with next = 0 and the
 * Control register zeroed — and links them from the last header. A failure to find the PF's
 * capability stops the emulation (the RFC logs it and carries on). Decision: a capability that
 * would run past config space is not added.
 */
function addEmulatedCapsForVf(vdev: Vdev, emu: VfPasidEmulation, start: number, prev: number): void {
  let epos = start;
  for (const [ecap, ctrl, ctrlEnable] of [
    [PCI_EXT_CAP_ID_PASID, PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE],
    [PCI_EXT_CAP_ID_PRI, PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE],
  ] as const) {
    const len = vdev.extCapLength[ecap] ?? 0;
    if (!len) {
      vdev.messages.push(`VF hiding ecap ${hex(ecap)}`);
      continue;
    }
    const pfPos = pciFindExtCapability(emu.pf, ecap);
    if (!pfPos) {
      vdev.messages.push('failed to add special caps for VF');
      return;
    }
    if (!(emu.pf.configRead(pfPos + ctrl, 2) & ctrlEnable)) continue; // not enabled on the PF
    if (epos + len > vdev.cfgSize) continue;
    const id = emu.rfcHardcodedIds ? RFC_HARDCODED_ID[ecap]! : ecap;
    const content = new Uint8Array(len);
    for (let i = 0; i < len; i += 4) setLe(content, i, Math.min(4, len - i), emu.pf.configRead(pfPos + i, 4));
    setLe(content, 0, 4, ((getLe(content, 0, 4) & 0x000f_0000) | id) >>> 0); // next = 0, version kept
    setLe(content, ctrl, 2, 0);
    vdev.map.fill(id & 0xff, epos, epos + len);
    vdev.vconfig.set(content, epos);
    const p = getLe(vdev.vconfig, prev, 4);
    setLe(vdev.vconfig, prev, 4, ((p & ~(0xffc << 20)) | (epos << 20)) >>> 0);
    prev = epos;
    vdev.messages.push(`VF emulating ecap ${hex(id)}@${hex(epos)}`);
    epos += len;
  }
}

/** `vfio_config_init`: header copy, saved BARs, VF and INTx adjustments, then both scans. */
function configInit(vdev: Vdev): void {
  vdev.vconfig.fill(0);
  vdev.map.fill(PCI_CAP_ID_BASIC, 0, PCI_STD_HEADER_SIZEOF);
  vdev.map.fill(PCI_CAP_ID_INVALID, PCI_STD_HEADER_SIZEOF);
  vdev.msiPerm = undefined;
  vdev.extendedCaps = false;
  fillVconfig(vdev, 0, PCI_STD_HEADER_SIZEOF);
  vdev.bardirty = true;
  for (let i = 0; i < PCI_STD_NUM_BARS; i++)
    vdev.rbar[i] = getLe(vdev.vconfig, PCI_BASE_ADDRESS_0 + 4 * i, 4);
  vdev.rbar[6] = getLe(vdev.vconfig, PCI_ROM_ADDRESS, 4);
  const v = vdev.vconfig;
  if (vdev.virtfn) {
    setLe(v, PCI_VENDOR_ID, 2, vdev.virtfn.vendor);
    setLe(v, PCI_DEVICE_ID, 2, vdev.virtfn.device);
    // SR-IOV: a VF's Interrupt Pin must read 0.
    if (v[PCI_INTERRUPT_PIN])
      vdev.messages.push(`Hardware bug: VF reports bogus INTx pin ${v[PCI_INTERRUPT_PIN]}`);
    v[PCI_INTERRUPT_PIN] = 0;
    // VFs do not implement Memory enable; set the virtual one for consistency with PFs.
    setLe(v, PCI_COMMAND, 2, getLe(v, PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
  }
  if (!vdev.intxSupported || vdev.nointx) v[PCI_INTERRUPT_PIN] = 0;
  capInit(vdev);
  ecapInit(vdev);
}

// ---------------------------------------------------------------- the public class

/** An SR-IOV VF's IDs (`pdev->vendor/device`): the VF's own ID registers read 0xFFFF. */
export interface VirtfnIds {
  readonly vendor: number;
  readonly device: number;
}

export interface VfioPciConfigOptions {
  /**
   * The seed patch (RFC v1 1/2) applied: `pci_ext_cap_length[PASID]` = 8, the PASID capability
   * is visible. Default true; false gives Linux 5.5 (PASID hidden).
   */
  readonly exposePasid?: boolean;
  /** Overrides of entries of the extended length table (0 hides, 0xFF = variable). */
  readonly extCapLengths?: Readonly<Record<number, number>>;
  /** Overrides of entries of the standard length table. */
  readonly capLengths?: Readonly<Record<number, number>>;
  /** BAR resources as the host PCI core holds them; default: sized from the device (`pciReadBases`). */
  readonly resources?: PciResources;
  /** The host PCI core operations vfio's handlers call; missing ones take `defaultCoreOps`. */
  readonly core?: PciCoreOps;
  /** vfio-pci's `nointx` module option: Interrupt Pin reads 0. */
  readonly nointx?: boolean;
  /** CONFIG_VFIO_PCI_INTX (default true); false: Interrupt Pin reads 0. */
  readonly intxSupported?: boolean;
  /** The device is an SR-IOV VF with these IDs (`pdev->is_virtfn`). */
  readonly virtfn?: VirtfnIds;
  /**
   * RFC v1 2/2 applied (§7.4; not part of the seed patch): a VF (`virtfn` must be set) gets
   * emulated PASID and PRI capabilities copied from its PF. Default: not applied.
   */
  readonly emulatePasidForVf?: VfPasidEmulation;
}

/** RFC 2/2's VF emulation: the PF's config space, and whether to keep the posted patch's bug. */
export interface VfPasidEmulation {
  readonly pf: PciConfigPort;
  /**
   * The patch as posted wrote IDs 0x18 (LTR) and 0x19 (Secondary PCIe) into the emulated headers
   * while its permission check looks for 0x1B/0x13: the guest then sees LTR/SecPCIe headers over
   * bodies read from the VF (where nothing is) and its writes are dropped. Default false: the
   * correct IDs, fully virtual capabilities.
   */
  readonly rfcHardcodedIds?: boolean;
}

/** One capability of a chain as the user sees it. */
export interface VisibleCap {
  readonly id: number;
  readonly offset: number;
  /** Bytes vfio maps to it (a placeholder at 0x100 has 4). */
  readonly length: number;
  /** Extended capabilities only: the version field. */
  readonly version?: number;
}

/** What governs one byte of config space, for inspection and property tests. */
export interface ConfigByteAccess {
  /** The pci_config_map byte. */
  readonly owner: number;
  /** Start of the owning capability (0 for the header; the byte itself if unclaimed). */
  readonly capStart: number;
  /** Name of the permission set (e.g. 'basic', 'exp', 'ecap-default', 'unassigned'). */
  readonly perm: string;
  readonly writeKind: PermWriteKind;
  /** Virtualised bits of this byte (reads come from vconfig). */
  readonly virt: number;
  /** Bits a user write may change (0xFF for raw and fully virtual bytes). */
  readonly writable: number;
  /** Bits a user write may change on the device (0xFF raw; write & ~virt for masked sets). */
  readonly deviceWritable: number;
}

/**
 * vfio-pci's view of one device's configuration space. `rw` is the config region's read/write
 * (`vfio_pci_config_rw`); `read`/`write` are single-access conveniences. Built from the device
 * at construction (`vfio_config_init`, run when the device fd is first opened).
 */
export class VfioPciConfig {
  readonly #vdev: Vdev;

  constructor(port: PciConfigPort, options: VfioPciConfigOptions = {}) {
    const cfgSize = port.configSize;
    if (cfgSize !== PCI_CFG_SPACE_SIZE && cfgSize !== 4096) {
      throw new Error(`VfioPciConfig: config space of ${cfgSize} bytes (want 256 or 4096)`);
    }
    const base = (options.exposePasid ?? true) ? PCI_EXT_CAP_LENGTH_PATCHED : PCI_EXT_CAP_LENGTH_PRE_PATCH;
    this.#vdev = {
      port,
      cfgSize,
      vconfig: new Uint8Array(cfgSize),
      map: new Uint8Array(cfgSize),
      rbar: new Uint32Array(7),
      bardirty: true,
      extendedCaps: false,
      msiPerm: undefined,
      msiQmax: 0,
      isMsi: false,
      virqDisabled: false,
      nointx: options.nointx ?? false,
      intxSupported: options.intxSupported ?? true,
      virtfn: options.virtfn,
      vfEmulation: options.emulatePasidForVf,
      resources: options.resources ?? pciReadBases(port),
      core: { ...defaultCoreOps(port), ...options.core },
      capLength: overrideTable(PCI_CAP_LENGTH, options.capLengths),
      extCapLength: overrideTable(base, options.extCapLengths),
      messages: [],
    };
    configInit(this.#vdev);
  }

  /** Size of the config region (the device's config space: 256 or 4096). */
  get cfgSize(): number {
    return this.#vdev.cfgSize;
  }

  /**
   * `vfio_pci_config_rw`: reads into or writes from `buf[0..count)` at config offset `pos`.
   * Returns the bytes done, or -EFAULT if the range is not inside config space (nothing done) or
   * `buf` is shorter than `count`. A zero count returns 0 without a range check, as Linux does.
   * Decision: a non-integer or negative `pos`/`count` is -EINVAL.
   */
  rw(buf: Uint8Array, count: number, pos: number, isWrite: boolean): number {
    if (!Number.isSafeInteger(count) || !Number.isSafeInteger(pos) || count < 0) return -EINVAL;
    if (count === 0) return 0;
    const vdev = this.#vdev;
    if (pos < 0 || pos >= vdev.cfgSize || pos + count > vdev.cfgSize) return -EFAULT;
    // Decision: the caller's buffer is checked whole up front (copy_*_user per chunk could fail midway).
    if (buf.length < count) return -EFAULT;
    let done = 0;
    while (done < count) done += configDoRw(vdev, buf, done, count - done, pos + done, isWrite);
    return done;
  }

  /** One read of `size` bytes (split as `rw` splits it); the value, or -errno. */
  read(offset: number, size: AccessSize | 3): number {
    const buf = new Uint8Array(4);
    const r = this.rw(buf, size, offset, false);
    return r < 0 ? r : getLe(buf, 0, size);
  }

  /** One write of `size` bytes of `value` (little-endian); bytes done, or -errno. */
  write(offset: number, size: AccessSize | 3, value: number): number {
    const buf = new Uint8Array(4);
    setLe(buf, 0, size, value >>> 0);
    return this.rw(buf, size, offset, true);
  }

  /**
   * Re-synchronises with the device the way vfio-pci does across a close and re-open of the
   * device: `vfio_config_free` then `vfio_config_init` (vconfig, map, saved BARs and the MSI table
   * rebuilt; INTx and MSI state back to none). Linux does NOT do this on VFIO_DEVICE_RESET or on a
   * guest FLR: those reset the function through the PCI core (which saves and restores its own
   * copy of config space) and leave vconfig as it was; a reset vfio did not see is caught when the
   * user next writes Command (the BARs are restored from the copy saved here).
   */
  reset(): void {
    const vdev = this.#vdev;
    vdev.msiQmax = 0;
    vdev.isMsi = false;
    vdev.virqDisabled = false;
    vdev.messages.length = 0;
    configInit(vdev);
  }

  /**
   * What vfio-pci's interrupt code records when the user enables or disables MSI through
   * VFIO_DEVICE_SET_IRQS: whether MSI is the active interrupt type, and `msi_qmax` =
   * fls(2·nvec − 1) − 1.
   */
  setMsiState(isMsi: boolean, qmax: number): void {
    this.#vdev.isMsi = isMsi;
    this.#vdev.msiQmax = qmax & 7;
  }

  // ------------------------------------------------------------ inspection

  /** A copy of vconfig. */
  get vconfigBytes(): Uint8Array {
    return this.#vdev.vconfig.slice();
  }

  /** A copy of pci_config_map. */
  get configMap(): Uint8Array {
    return this.#vdev.map.slice();
  }

  /** The pci_config_map byte at `off` (PCI_CAP_ID_INVALID outside config space). */
  ownerAt(off: number): number {
    return this.#vdev.map[off] ?? PCI_CAP_ID_INVALID;
  }

  /** Whether the PCIe capability saw an extended chain (so extended capabilities were scanned). */
  get extendedCaps(): boolean {
    return this.#vdev.extendedCaps;
  }

  /** BAR0–5 and the ROM BAR as saved at init (`rbar`). */
  get savedBars(): readonly number[] {
    return Array.from(this.#vdev.rbar);
  }

  get bardirty(): boolean {
    return this.#vdev.bardirty;
  }

  /** vfio's own INTx masking state (`virq_disabled`), from the virtual INTx Disable bit. */
  get virqDisabled(): boolean {
    return this.#vdev.virqDisabled;
  }

  /** What vfio logged (pci_info/pci_warn): hidden capabilities, conflicts, BAR restores. */
  get messages(): readonly string[] {
    return [...this.#vdev.messages];
  }

  /** The standard capability chain the user sees (walked in vconfig). */
  capabilities(): VisibleCap[] {
    const vdev = this.#vdev;
    const out: VisibleCap[] = [];
    if (!(getLe(vdev.vconfig, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return out;
    let pos = vdev.vconfig[PCI_CAPABILITY_LIST]!;
    for (let loops = 48; pos && loops > 0; loops--) {
      const id = hwRead(vdev, pos, 1);
      out.push({ id, offset: pos, length: this.#claimedLength(pos) });
      pos = vdev.vconfig[pos + PCI_CAP_LIST_NEXT] ?? 0;
    }
    return out;
  }

  /** The extended capability chain the user sees (walked in vconfig; a placeholder has ID 0). */
  extendedCapabilities(): VisibleCap[] {
    const vdev = this.#vdev;
    const out: VisibleCap[] = [];
    if (vdev.cfgSize <= PCI_CFG_SPACE_SIZE) return out;
    let pos = PCI_CFG_SPACE_SIZE;
    for (
      let loops = (vdev.cfgSize - PCI_CFG_SPACE_SIZE) / 4;
      loops > 0 && pos >= PCI_CFG_SPACE_SIZE;
      loops--
    ) {
      // Unscanned extended space (no PCIe capability) is raw: the device's own chain shows.
      const header = vdev.extendedCaps ? getLe(vdev.vconfig, pos, 4) : hwRead(vdev, pos, 4);
      if (header === 0) break;
      out.push({
        id: PCI_EXT_CAP_ID(header),
        version: PCI_EXT_CAP_VER(header),
        offset: pos,
        length: vdev.extendedCaps ? this.#claimedLength(pos) : 0,
      });
      pos = PCI_EXT_CAP_NEXT(header);
    }
    return out;
  }

  /** The permission set and masks that govern the byte at `off`. */
  accessAt(off: number): ConfigByteAccess {
    const vdev = this.#vdev;
    const { perm, capStart } = permFor(vdev, off);
    const offset = off - capStart;
    const virt =
      perm.writeKind === 'virt'
        ? 0xff
        : perm.readfn === directRead
          ? directVirt(off, offset)
          : getLe(perm.virt, offset, 1);
    const write = getLe(perm.write, offset, 1);
    const writable = perm.writeKind === 'none' ? 0 : perm.writeKind === 'masked' ? write : 0xff;
    const deviceWritable =
      perm.writeKind === 'raw' ? 0xff : perm.writeKind === 'masked' ? write & ~virt & 0xff : 0;
    return {
      owner: vdev.map[off]!,
      capStart,
      perm: perm.name,
      writeKind: perm.writeKind,
      virt,
      writable,
      deviceWritable,
    };
  }

  #claimedLength(pos: number): number {
    const map = this.#vdev.map;
    const id = map[pos];
    if (id === undefined || id === PCI_CAP_ID_INVALID) return 0;
    let n = 0;
    while (map[pos + n] === id) n++;
    return n;
  }
}

/** Which bits of a byte `directRead` takes from vconfig (a capability's next byte, an ext header). */
function directVirt(pos: number, offset: number): number {
  if (pos >= PCI_CFG_SPACE_SIZE) return offset < 4 ? 0xff : 0;
  return pos >= PCI_STD_HEADER_SIZEOF && offset === PCI_CAP_LIST_NEXT ? 0xff : 0;
}

function overrideTable(
  base: readonly number[],
  overrides: Readonly<Record<number, number>> | undefined,
): readonly number[] {
  if (!overrides) return base;
  const t = [...base];
  for (const [id, len] of Object.entries(overrides)) {
    const i = Number(id);
    if (Number.isInteger(i) && i >= 0 && i < t.length) t[i] = len;
  }
  return t;
}

/** The permission set of the byte at `pos` and the start of its capability (vfio_config_do_rw). */
function permFor(vdev: Vdev, pos: number): { perm: PermBits; capStart: number } {
  const capId = vdev.map[pos]!;
  if (capId === PCI_CAP_ID_INVALID) return { perm: UNASSIGNED_PERM, capStart: pos };
  if (capId === PCI_CAP_ID_INVALID_VIRT) return { perm: VIRT_PERM, capStart: pos };
  // RFC 2/2's vfio_pci_need_virt_perm: on a VF, bytes owned by PASID or PRI are fully virtual. It
  // tests the map byte at any offset, so a VF's standard AF capability (also 0x13) is caught too.
  if (vdev.virtfn && vdev.vfEmulation && (capId === PCI_EXT_CAP_ID_PASID || capId === PCI_EXT_CAP_ID_PRI)) {
    return { perm: VIRT_PERM, capStart: pos };
  }
  if (pos >= PCI_CFG_SPACE_SIZE) {
    // Decision: a placeholder whose (truncated) ID is beyond the table uses the extended default;
    // Linux indexes past ecap_perms[] there.
    return { perm: ECAP_PERMS[capId] ?? ECAP_DEFAULT, capStart: findCapStart(vdev, pos) };
  }
  let perm = CAP_PERMS[capId] ?? CAP_DEFAULT;
  if (capId === PCI_CAP_ID_MSI) perm = vdev.msiPerm ?? perm;
  return { perm, capStart: capId > PCI_CAP_ID_BASIC ? findCapStart(vdev, pos) : 0 };
}

/**
 * Bytes of a dword from `pos` on that share its owner: an access never crosses a capability.
 */
function capRemainingDword(vdev: Vdev, pos: number): number {
  const cap = vdev.map[pos];
  let i = 1;
  while ((pos + i) % 4 && vdev.map[pos + i] === cap) i++;
  return i;
}

/**
 * `vfio_config_do_rw`: one chunk — at most the rest of the dword within one capability, then the
 * largest naturally aligned size (4, 2 or 1) that fits — through the owner's permission set.
 * A set without a write handler drops the write but still reports it done.
 */
function configDoRw(
  vdev: Vdev,
  buf: Uint8Array,
  bufOff: number,
  remaining: number,
  pos: number,
  isWrite: boolean,
): number {
  let count = Math.min(remaining, capRemainingDword(vdev, pos));
  if (count >= 4 && pos % 4 === 0) count = 4;
  else if (count >= 2 && pos % 2 === 0) count = 2;
  else count = 1;
  const { perm, capStart } = permFor(vdev, pos);
  const offset = pos - capStart;
  if (isWrite) {
    if (perm.writefn) perm.writefn(vdev, pos, count, perm, offset, getLe(buf, bufOff, count));
  } else {
    setLe(buf, bufOff, count, perm.readfn(vdev, pos, count, perm, offset));
  }
  return count;
}

/**
 * The physical PCIe endpoint VFIO assigns: a PASID-capable DMA engine (vsva's own design, after
 * Intel DSA; its BAR0 map, descriptor and completion record are in `pasid-dma-regs.ts`).
 *
 * Configuration space (4096 bytes, `ConfigSpace`): a type 0 header with one 64-bit memory BAR
 * (BAR0/1), then the standard capabilities PM (optional, D0/D3hot, No_Soft_Reset), PCI Express
 * v2 endpoint (Function Level Reset in DEVCAP) and MSI-X (table and PBA in BAR0), then the
 * extended capabilities in the order `extOrder` gives: AER, DSN, PASID (seed-spec §7.1: Max PASID
 * Width, Execute and Privileged Mode supported; Enable always writable, the Execute/Privileged
 * enables only when supported), ATS and PRI (register semantics only: nothing translates
 * through ATS and no page request is ever sent).
 *
 * Operation. The driver programs the ring (base IOVA, size), sets CTRL.ENABLE, writes
 * descriptors into the ring and writes RING_TAIL. The device then processes descriptors
 * synchronously, in order, until HEAD reaches TAIL, inside that MMIO write: no background work.
 * The ring is fetched and MSIs are written without a PASID (the driver's IOVA space); data
 * accesses carry the descriptor's PASID as SubstreamID when the descriptor says PASID-valid and
 * the PASID capability's Enable is set, and are privileged only when asked and Privileged Mode
 * Enable is set. Data moves through the `DmaPort` in chunks of `dmaChunk` bytes (default 256,
 * the Max_Payload_Size DEVCAP advertises) that never cross a 4 KiB boundary on either side; the
 * first failing chunk stops the operation. The completion record is written (when requested)
 * with the descriptor's PASID and privilege, and then the completion interrupt is raised.
 *
 * Decisions (each also stated where it is taken):
 * - Bus Master Enable clear (or the function in D3hot): nothing is fetched; a doorbell sets
 *   ERROR.NO_BUS_MASTER and leaves HEAD where it is — the driver rings again once it has set
 *   Bus Master Enable. MSIs that cannot be sent for that reason are pended in the PBA and sent when
 *   bus mastering comes back.
 * - BAR0 is decoded only while Memory Space Enable is set and the function is in D0: otherwise
 *   reads return all-ones and writes are dropped (an Unsupported Request), counted in
 *   `stats.refusedMmio`. BAR0 accepts 1-, 2- and 4-byte naturally aligned accesses; narrower
 *   ones act on their bytes of the containing register.
 * - A descriptor whose PASID cannot be used (CS_PASID_DISABLED, CS_BAD_PASID) moves no data; its
 *   completion record is written without a PASID (the only address space the device can still
 *   name). Every other completion record carries the descriptor's PASID, as DSA does.
 * - Posted writes give a real requester no completion; the model's device does learn that a
 *   write failed, so that the completion record can report CS_WRITE_FAULT. A failed read (a
 *   non-posted request completed with UR) also sets Status.Received Master Abort.
 * - MSI-X disabled: a raised vector is dropped (the function has no INTx pin), counted in
 *   `stats.msiDropped`. An MSI whose write faults in the IOMMU is lost (`stats.msiFaults`).
 * - FLR (DEVCTL Initiate FLR, which reads as 0) and `reset()` restore the power-on state of
 *   configuration space, BAR0 registers, the ring, the MSI-X table (all vectors masked) and the
 *   PBA, at once. Statistics survive resets.
 */

import { join64 } from '../../arch/bits.ts';
import { allOnes, ConfigSpace, isValidConfigAccess, writtenByte } from './config-space.ts';
import {
  COMPL_BYTES,
  COMPL_BYTES_DONE,
  COMPL_FAULT_ABORT,
  COMPL_FAULT_ADDR,
  COMPL_FAULT_INFO,
  COMPL_FAULT_WRITE,
  COMPL_INDEX,
  COMPL_PASID,
  COMPL_PASID_VALID,
  COMPL_STATUS,
  COMPLETION_STATUS_NAMES,
  CS_BAD_ADDRESS,
  CS_BAD_LENGTH,
  CS_BAD_OPCODE,
  CS_BAD_PASID,
  CS_COMPARE_MISMATCH,
  CS_NONE,
  CS_PASID_DISABLED,
  CS_PRIV_DISABLED,
  CS_READ_FAULT,
  CS_SUCCESS,
  CS_WRITE_FAULT,
  DESC_BYTES,
  DESC_COMPL,
  DESC_DST,
  DESC_F_COMPL,
  DESC_F_INTR,
  DESC_F_PASID,
  DESC_F_PRIV,
  DESC_FLAGS,
  DESC_LEN,
  DESC_OPCODE,
  DESC_PASID,
  DESC_PATTERN,
  DESC_SRC,
  DESC_VECTOR,
  OP_COMPARE,
  OP_COPY,
  OP_FILL,
  OP_NOP,
  PASID_MASK,
  PDMA_BAR0_MIN_SIZE,
  PDMA_CAP,
  PDMA_CLASS_CODE,
  PDMA_CTRL,
  PDMA_CTRL_ENABLE,
  PDMA_DEVICE_ID,
  PDMA_ERR_ADDR_HI,
  PDMA_ERR_ADDR_LO,
  PDMA_ERR_INFO,
  PDMA_ERR_IRQ,
  PDMA_ERR_IRQ_ENABLE,
  PDMA_ERR_IRQ_VECTOR,
  PDMA_ERR_PASID,
  PDMA_ERR_PASID_VALID,
  PDMA_ERROR,
  PDMA_ERROR_ALL,
  PDMA_ERROR_BAD_RING_CONFIG,
  PDMA_ERROR_BAD_TAIL,
  PDMA_ERROR_COMPL_FAULT,
  PDMA_ERROR_NO_BUS_MASTER,
  PDMA_ERROR_RING_FAULT,
  PDMA_ID,
  PDMA_INTERFACE_VERSION,
  PDMA_MAX_TRANSFER,
  PDMA_MAX_TRANSFER_LOG2,
  PDMA_MSIX_MAX_VECTORS,
  PDMA_MSIX_PBA_OFFSET,
  PDMA_MSIX_TABLE_OFFSET,
  PDMA_REGS_SIZE,
  PDMA_REVISION,
  PDMA_RING_BASE_HI,
  PDMA_RING_BASE_LO,
  PDMA_RING_HEAD,
  PDMA_RING_MAX,
  PDMA_RING_SIZE,
  PDMA_RING_TAIL,
  PDMA_STATUS,
  PDMA_STATUS_ENABLED,
  PDMA_STATUS_HALTED,
  PDMA_VENDOR_ID,
} from './pasid-dma-regs.ts';
import {
  type AccessSize,
  type DmaOutcome,
  type DmaPort,
  PCI_ATS_CAP,
  PCI_ATS_CAP_PAGE_ALIGNED,
  PCI_ATS_CTRL,
  PCI_ATS_CTRL_ENABLE,
  PCI_ATS_CTRL_STU,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAP_EXP_SIZEOF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_MSIX_SIZEOF,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_ERR_CAP,
  PCI_ERR_COR_MASK,
  PCI_ERR_COR_STATUS,
  PCI_ERR_ROOT_COMMAND,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_SEVER,
  PCI_ERR_UNCOR_STATUS,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_EXT_TAG,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP_RBER,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_NOSNOOP_EN,
  PCI_EXP_DEVCTL_PHANTOM,
  PCI_EXP_DEVCTL_RELAX_EN,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVSTA,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL2,
  PCI_EXP_LNKSTA,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXT_CAP_ATS_SIZEOF,
  PCI_EXT_CAP_DSN_SIZEOF,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_PASID_SIZEOF,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MFD,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PASID_CAP,
  PCI_PASID_CAP_EXEC,
  PCI_PASID_CAP_PRIV,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
  PCI_PASID_CTRL_EXEC,
  PCI_PASID_CTRL_PRIV,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PM_SIZEOF,
  PCI_PRI_ALLOC_REQ,
  PCI_PRI_CTRL,
  PCI_PRI_CTRL_ENABLE,
  PCI_PRI_CTRL_RESET,
  PCI_PRI_MAX_REQ,
  PCI_PRI_STATUS,
  PCI_PRI_STATUS_PASID,
  PCI_PRI_STATUS_RF,
  PCI_PRI_STATUS_STOPPED,
  PCI_PRI_STATUS_UPRGI,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_DETECTED_PARITY,
  PCI_STATUS_PARITY,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_STATUS_REC_TARGET_ABORT,
  PCI_STATUS_SIG_SYSTEM_ERROR,
  PCI_STATUS_SIG_TARGET_ABORT,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  type PciConfigPort,
} from './regs.ts';

/** Extended capabilities the device can carry. */
export type ExtCapName = 'aer' | 'dsn' | 'pasid' | 'ats' | 'pri';

export interface PasidDmaDeviceOptions {
  /** Bus, device and function number; the requester ID is bus << 8 | dev << 3 | fn. Default 0:1.0. */
  readonly bus?: number;
  readonly dev?: number;
  readonly fn?: number;
  /** StreamID of its requests; default the requester ID (an identity iommu-map). */
  readonly streamId?: number;
  readonly vendorId?: number;
  readonly deviceId?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Header Type bit 7 (a function of a multi-function device). */
  readonly multiFunction?: boolean;
  /** PASID capability: Max PASID Width 0..20 (default 20), Execute and Privileged Mode supported (default false). */
  readonly maxPasidWidth?: number;
  readonly pasidExec?: boolean;
  readonly pasidPriv?: boolean;
  /** MSI-X vectors, 1..256; default 4. */
  readonly msixVectors?: number;
  /** Which of PRI and ATS exist (default 'both'); they appear where `extOrder` places them. */
  readonly extraCaps?: 'pri' | 'ats' | 'both' | 'none';
  /**
   * Order of the extended capabilities from 0x100; only those listed exist (ATS and PRI also need
   * `extraCaps`). Default ['aer', 'pasid', 'ats', 'pri']: AER first, so that hiding PASID, ATS or
   * PRI unlinks a capability that is not the first.
   */
  readonly extOrder?: readonly ExtCapName[];
  /** The PM capability (default true). */
  readonly pm?: boolean;
  /** BAR0 size, a power of two of at least 16 KiB (default 16 KiB); 64-bit non-prefetchable. */
  readonly bar0Size?: number;
  /** Largest DMA request in bytes, a power of two in 64..4096 (default 256). */
  readonly dmaChunk?: number;
  /** Device Serial Number as [lo, hi] (default [requester ID, 0x1234_5a5a]). */
  readonly serialNumber?: readonly [number, number];
  /** Where DMA goes; can also be connected later with `connect`. Without one every DMA aborts. */
  readonly dma?: DmaPort;
}

export interface PasidDmaStats {
  doorbells: number;
  descriptors: number;
  /** Descriptors by completion status name. */
  byStatus: Record<string, number>;
  /** Data bytes read and written by descriptors (ring, completion records and MSIs excluded). */
  bytesRead: number;
  bytesWritten: number;
  /** DMA accesses that failed (data, ring, completion records, MSIs). */
  dmaFaults: number;
  ringFaults: number;
  completionFaults: number;
  msiSent: number;
  msiPended: number;
  msiDropped: number;
  msiFaults: number;
  flrs: number;
  resets: number;
  /** BAR accesses not decoded (Memory Space disabled, D3hot, bad size/alignment, no such BAR). */
  refusedMmio: number;
}

/** Offsets of the capabilities in configuration space (0: absent). */
export interface PasidDmaCapOffsets {
  readonly pm: number;
  readonly exp: number;
  readonly msix: number;
  readonly aer: number;
  readonly dsn: number;
  readonly pasid: number;
  readonly ats: number;
  readonly pri: number;
}

const DEFAULT_EXT_ORDER: readonly ExtCapName[] = ['aer', 'pasid', 'ats', 'pri'];
const PAGE = 4096;
const TWO_POW_53 = 2 ** 53;

/** PCIe device capability: 256-byte Max_Payload_Size supported, extended tags, RBER, FLR. */
const DEVCAP = PCI_EXP_DEVCAP_FLR | PCI_EXP_DEVCAP_RBER | PCI_EXP_DEVCAP_EXT_TAG | 0x1;
/** Device Control at reset (PCIe Base §7.5.3.4): relaxed ordering and no-snoop enabled, MRRS 512. */
const DEVCTL_RESET = PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | 0x2000;
/** Every Device Control bit but Initiate FLR (a hook) and phantom functions (unsupported). */
const DEVCTL_RW = 0x7fff & ~PCI_EXP_DEVCTL_PHANTOM;
/** The link: 8 GT/s x8. */
const LNK_SPEED_WIDTH = 0x0083;
/** AER uncorrectable error bits (DLP .. TLP prefix blocked) and their default severity. */
const AER_UNCOR_BITS = 0x03ff_f030;
const AER_UNCOR_SEVER_DEFAULT = 0x0006_2030;
const AER_COR_BITS = 0x0000_f1c1;
const AER_COR_MASK_DEFAULT = 0x0000_2000;
/** Status bits software clears by writing one. */
const STATUS_W1C =
  PCI_STATUS_PARITY |
  PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT |
  PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;
const COMMAND_RW =
  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
/** PRI: outstanding page requests the function could issue. */
const PRI_CAPACITY = 32;

function isPow2(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

function intIn(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new Error(`pasid-dma: ${name} must be in ${lo}..${hi}, got ${v}`);
  return v;
}

/** Outcome of a data operation. */
interface OpResult {
  status: number;
  bytes: number;
  faultAddr: number;
  faultInfo: number;
}

export class PasidDmaDevice implements PciConfigPort {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  /** Requester ID: bus << 8 | dev << 3 | fn. */
  readonly rid: number;
  readonly streamId: number;
  readonly config: ConfigSpace;
  readonly caps: PasidDmaCapOffsets;
  readonly msixVectors: number;
  readonly maxPasidWidth: number;
  readonly bar0Size: number;
  readonly dmaChunk: number;
  readonly stats: PasidDmaStats = {
    doorbells: 0,
    descriptors: 0,
    byStatus: {},
    bytesRead: 0,
    bytesWritten: 0,
    dmaFaults: 0,
    ringFaults: 0,
    completionFaults: 0,
    msiSent: 0,
    msiPended: 0,
    msiDropped: 0,
    msiFaults: 0,
    flrs: 0,
    resets: 0,
    refusedMmio: 0,
  };

  private dma: DmaPort | null;

  // BAR0 register state.
  private ctrl = 0;
  private halted = false;
  private error = 0;
  private errInfo = 0;
  private errAddrLo = 0;
  private errAddrHi = 0;
  private errPasid = 0;
  private errIrq = 0;
  private ringBaseLo = 0;
  private ringBaseHi = 0;
  private ringSize = 0;
  private head = 0;
  private tail = 0;
  private readonly msixTable: Uint32Array;
  private readonly pba: Uint32Array;

  /** Set while descriptors are processed (a doorbell from inside only moves TAIL). */
  private processing = false;
  /** Bumped by every reset, so that processing interrupted by one stops. */
  private epoch = 0;
  /** The last D-state software selected (PM Control), to refuse D1/D2. */
  private lastPowerState = 0;

  // Scratch buffers: nothing is allocated per descriptor on the success path but partial-chunk views.
  private readonly desc = new Uint8Array(DESC_BYTES);
  private readonly descView = new DataView(this.desc.buffer);
  private readonly compl = new Uint8Array(COMPL_BYTES);
  private readonly complView = new DataView(this.compl.buffer);
  private readonly bufA: Uint8Array;
  private readonly bufB: Uint8Array;
  private readonly pattern = new Uint8Array(8);
  private readonly msiData = new Uint8Array(4);
  private readonly msiDataView = new DataView(this.msiData.buffer);
  private readonly op: OpResult = { status: CS_NONE, bytes: 0, faultAddr: 0, faultInfo: 0 };

  constructor(opts: PasidDmaDeviceOptions = {}) {
    this.bus = intIn('bus', opts.bus ?? 0, 0, 255);
    this.dev = intIn('dev', opts.dev ?? 1, 0, 31);
    this.fn = intIn('fn', opts.fn ?? 0, 0, 7);
    this.rid = (this.bus << 8) | (this.dev << 3) | this.fn;
    this.streamId = intIn('streamId', opts.streamId ?? this.rid, 0, 0xffff_ffff);
    this.maxPasidWidth = intIn('maxPasidWidth', opts.maxPasidWidth ?? 20, 0, 20);
    this.msixVectors = intIn('msixVectors', opts.msixVectors ?? 4, 1, PDMA_MSIX_MAX_VECTORS);
    this.bar0Size = opts.bar0Size ?? PDMA_BAR0_MIN_SIZE;
    if (!isPow2(this.bar0Size) || this.bar0Size < PDMA_BAR0_MIN_SIZE) {
      throw new Error(`pasid-dma: bar0Size must be a power of two of at least ${PDMA_BAR0_MIN_SIZE}`);
    }
    this.dmaChunk = opts.dmaChunk ?? 256;
    if (!isPow2(this.dmaChunk) || this.dmaChunk < 64 || this.dmaChunk > PAGE) {
      throw new Error('pasid-dma: dmaChunk must be a power of two in 64..4096');
    }
    this.bufA = new Uint8Array(this.dmaChunk);
    this.bufB = new Uint8Array(this.dmaChunk);
    this.msixTable = new Uint32Array(this.msixVectors * 4);
    this.pba = new Uint32Array(Math.ceil(this.msixVectors / 32));
    this.dma = opts.dma ?? null;
    this.config = new ConfigSpace(PCI_CFG_SPACE_EXP_SIZE);
    this.caps = this.buildConfig(opts);
    this.config.seal();
    this.resetBar0();
  }

  /** Connects (or replaces) the port the device's DMA goes through. */
  connect(dma: DmaPort | null): void {
    this.dma = dma;
  }

  // =================================================================== configuration space

  get configSize(): number {
    return this.config.configSize;
  }

  configRead(offset: number, size: AccessSize): number {
    return this.config.configRead(offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    this.config.configWrite(offset, size, value);
  }

  private buildConfig(opts: PasidDmaDeviceOptions): PasidDmaCapOffsets {
    const cs = this.config;
    cs.init(PCI_VENDOR_ID, 2, opts.vendorId ?? PDMA_VENDOR_ID);
    cs.init(PCI_DEVICE_ID, 2, opts.deviceId ?? PDMA_DEVICE_ID);
    cs.init(PCI_COMMAND, 2, 0, { rw: COMMAND_RW });
    cs.init(PCI_STATUS, 2, 0, { w1c: STATUS_W1C });
    cs.init(PCI_REVISION_ID, 1, PDMA_REVISION);
    cs.init(PCI_CLASS_PROG, 1, PDMA_CLASS_CODE & 0xff);
    cs.init(PCI_CLASS_PROG + 1, 2, PDMA_CLASS_CODE >>> 8);
    cs.init(PCI_CACHE_LINE_SIZE, 1, 0, { rw: 0xff });
    // Decision: Latency Timer and BIST are hardwired to 0 (PCIe §7.5.1.1.5/7).
    cs.init(PCI_LATENCY_TIMER, 1, 0);
    cs.init(PCI_HEADER_TYPE, 1, opts.multiFunction === true ? PCI_HEADER_TYPE_MFD : PCI_HEADER_TYPE_NORMAL);
    cs.init(PCI_BIST, 1, 0);
    cs.addMemoryBar(0, this.bar0Size, { is64: true });
    cs.init(PCI_SUBSYSTEM_VENDOR_ID, 2, opts.subsystemVendorId ?? opts.vendorId ?? PDMA_VENDOR_ID);
    cs.init(PCI_SUBSYSTEM_ID, 2, opts.subsystemId ?? 0);
    cs.init(PCI_ROM_ADDRESS, 4, 0);
    cs.init(PCI_CAPABILITY_LIST, 1, 0);
    cs.init(PCI_INTERRUPT_LINE, 1, 0xff, { rw: 0xff });
    // Decision: no INTx (Interrupt Pin 0); MSI-X is the only interrupt mechanism.
    cs.init(PCI_INTERRUPT_PIN, 1, 0);
    cs.onWrite(PCI_COMMAND, 2, () => this.deliverPending());

    const pm = opts.pm === false ? 0 : this.buildPm();
    const exp = this.buildExp();
    const msix = this.buildMsix();
    const ext = { aer: 0, dsn: 0, pasid: 0, ats: 0, pri: 0 };
    const extra = opts.extraCaps ?? 'both';
    const order = opts.extOrder ?? DEFAULT_EXT_ORDER;
    if (new Set(order).size !== order.length) throw new Error('pasid-dma: extOrder lists a capability twice');
    for (const name of order) {
      if (name === 'ats' && extra !== 'ats' && extra !== 'both') continue;
      if (name === 'pri' && extra !== 'pri' && extra !== 'both') continue;
      ext[name] = this.buildExt(name, opts);
    }
    // PRG Response PASID Required: meaningful only with a PASID capability.
    if (ext.pri !== 0 && ext.pasid !== 0) cs.setBits(ext.pri + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_PASID);
    return { pm, exp, msix, ...ext };
  }

  private buildPm(): number {
    const cs = this.config;
    const off = cs.addCapability(PCI_CAP_ID_PM, PCI_PM_SIZEOF);
    // PM version 3; no D1/D2, no PME. No_Soft_Reset: D3hot → D0 keeps the function's state.
    cs.init(off + PCI_PM_PMC, 2, 0x0003);
    cs.init(off + PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET, { rw: PCI_PM_CTRL_STATE_MASK });
    cs.onWrite(off + PCI_PM_CTRL, 2, (_o, _s, _v, old) => this.pmWritten(off, old));
    return off;
  }

  /** D1 and D2 are not supported: a write selecting them leaves the state as it was. */
  private pmWritten(off: number, _old: number): void {
    const state = this.config.get(off + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK;
    if (state === 1 || state === 2) {
      this.config.clearBits(off + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK);
      this.config.setBits(off + PCI_PM_CTRL, 2, this.lastPowerState);
      return;
    }
    this.lastPowerState = state;
    if (state === 0) this.deliverPending();
  }

  private buildExp(): number {
    const cs = this.config;
    const off = cs.addCapability(PCI_CAP_ID_EXP, PCI_CAP_EXP_SIZEOF);
    cs.init(off + PCI_EXP_FLAGS, 2, 0x0002 | (PCI_EXP_TYPE_ENDPOINT << 4));
    cs.init(off + PCI_EXP_DEVCAP, 4, DEVCAP);
    cs.init(off + PCI_EXP_DEVCTL, 2, DEVCTL_RESET, { rw: DEVCTL_RW });
    cs.init(off + PCI_EXP_DEVSTA, 2, 0, { w1c: 0x000f });
    cs.init(off + PCI_EXP_LNKCAP, 4, LNK_SPEED_WIDTH);
    cs.init(off + PCI_EXP_LNKCTL, 2, 0, { rw: 0x00cb });
    cs.init(off + PCI_EXP_LNKSTA, 2, LNK_SPEED_WIDTH);
    // Completion timeout ranges A-D and Completion Timeout Disable supported.
    cs.init(off + PCI_EXP_DEVCAP2, 4, 0x0000_001f);
    cs.init(off + PCI_EXP_DEVCTL2, 2, 0, { rw: 0x001f });
    cs.init(off + PCI_EXP_LNKCAP2, 4, 0x0000_000e);
    cs.init(off + PCI_EXP_LNKCTL2, 2, 0x0003, { rw: 0x000f });
    cs.onWrite(off + PCI_EXP_DEVCTL, 2, (o, s, v) => {
      const hi = writtenByte(o, s, v, off + PCI_EXP_DEVCTL + 1);
      if (hi >= 0 && ((hi << 8) & PCI_EXP_DEVCTL_BCR_FLR) !== 0) this.flr();
    });
    return off;
  }

  private buildMsix(): number {
    const cs = this.config;
    const off = cs.addCapability(PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF);
    cs.init(off + PCI_MSIX_FLAGS, 2, this.msixVectors - 1, {
      rw: PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL,
    });
    cs.init(off + PCI_MSIX_TABLE, 4, PDMA_MSIX_TABLE_OFFSET); // BIR 0
    cs.init(off + PCI_MSIX_PBA, 4, PDMA_MSIX_PBA_OFFSET); // BIR 0
    cs.onWrite(off + PCI_MSIX_FLAGS, 2, () => this.deliverPending());
    return off;
  }

  private buildExt(name: ExtCapName, opts: PasidDmaDeviceOptions): number {
    const cs = this.config;
    switch (name) {
      case 'aer': {
        // AER v2 of an endpoint: 0x2c bytes (the root port registers start at PCI_ERR_ROOT_COMMAND).
        const off = cs.addExtCapability(PCI_EXT_CAP_ID_ERR, 2, PCI_ERR_ROOT_COMMAND);
        cs.init(off + PCI_ERR_UNCOR_STATUS, 4, 0, { w1c: AER_UNCOR_BITS });
        cs.init(off + PCI_ERR_UNCOR_MASK, 4, 0, { rw: AER_UNCOR_BITS });
        cs.init(off + PCI_ERR_UNCOR_SEVER, 4, AER_UNCOR_SEVER_DEFAULT, { rw: AER_UNCOR_BITS });
        cs.init(off + PCI_ERR_COR_STATUS, 4, 0, { w1c: AER_COR_BITS });
        cs.init(off + PCI_ERR_COR_MASK, 4, AER_COR_MASK_DEFAULT, { rw: AER_COR_BITS });
        cs.init(off + PCI_ERR_CAP, 4, 0);
        return off;
      }
      case 'dsn': {
        const off = cs.addExtCapability(PCI_EXT_CAP_ID_DSN, 1, PCI_EXT_CAP_DSN_SIZEOF);
        const [lo, hi] = opts.serialNumber ?? [this.rid, 0x1234_5a5a];
        cs.init(off + 4, 4, lo >>> 0);
        cs.init(off + 8, 4, hi >>> 0);
        return off;
      }
      case 'pasid': {
        const off = cs.addExtCapability(PCI_EXT_CAP_ID_PASID, 1, PCI_EXT_CAP_PASID_SIZEOF);
        const exec = opts.pasidExec === true;
        const priv = opts.pasidPriv === true;
        const cap =
          (this.maxPasidWidth << 8) | (exec ? PCI_PASID_CAP_EXEC : 0) | (priv ? PCI_PASID_CAP_PRIV : 0);
        cs.init(off + PCI_PASID_CAP, 2, cap);
        // The Execute and Privileged Mode enables are writable only where supported (else RsvdP 0).
        const rw =
          PCI_PASID_CTRL_ENABLE | (exec ? PCI_PASID_CTRL_EXEC : 0) | (priv ? PCI_PASID_CTRL_PRIV : 0);
        cs.init(off + PCI_PASID_CTRL, 2, 0, { rw });
        return off;
      }
      case 'ats': {
        const off = cs.addExtCapability(PCI_EXT_CAP_ID_ATS, 1, PCI_EXT_CAP_ATS_SIZEOF);
        // Invalidate Queue Depth 0 (= 32), Page Aligned Request.
        cs.init(off + PCI_ATS_CAP, 2, PCI_ATS_CAP_PAGE_ALIGNED);
        cs.init(off + PCI_ATS_CTRL, 2, 0, { rw: PCI_ATS_CTRL_ENABLE | PCI_ATS_CTRL_STU });
        return off;
      }
      case 'pri': {
        const off = cs.addExtCapability(PCI_EXT_CAP_ID_PRI, 1, PCI_EXT_CAP_PRI_SIZEOF);
        cs.init(off + PCI_PRI_CTRL, 2, 0, { rw: PCI_PRI_CTRL_ENABLE });
        cs.init(off + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_STOPPED, {
          w1c: PCI_PRI_STATUS_RF | PCI_PRI_STATUS_UPRGI,
        });
        cs.init(off + PCI_PRI_MAX_REQ, 4, PRI_CAPACITY);
        cs.init(off + PCI_PRI_ALLOC_REQ, 4, 0, { rw: 0xffff_ffff });
        cs.onWrite(off + PCI_PRI_CTRL, 2, (o, s, v) => this.priControlWritten(off, o, s, v));
        return off;
      }
    }
  }

  /**
   * PRI Control: Reset (write-only, reads 0) clears the status flags; with no request ever
   * outstanding, Stopped simply mirrors "Enable clear".
   */
  private priControlWritten(off: number, o: number, s: number, v: number): void {
    const cs = this.config;
    const lo = writtenByte(o, s, v, off + PCI_PRI_CTRL);
    if (
      lo >= 0 &&
      (lo & PCI_PRI_CTRL_RESET) !== 0 &&
      (cs.get(off + PCI_PRI_CTRL, 2) & PCI_PRI_CTRL_ENABLE) === 0
    ) {
      cs.clearBits(off + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_RF | PCI_PRI_STATUS_UPRGI);
    }
    if ((cs.get(off + PCI_PRI_CTRL, 2) & PCI_PRI_CTRL_ENABLE) !== 0) {
      cs.clearBits(off + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_STOPPED);
    } else cs.setBits(off + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_STOPPED);
  }

  // -------------------------------------------------------------- configuration state

  get command(): number {
    return this.config.get(PCI_COMMAND, 2);
  }

  get busMasterEnabled(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  get memorySpaceEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }

  /** 0 (D0) .. 3 (D3hot); always 0 without the PM capability. */
  get powerState(): number {
    return this.caps.pm === 0 ? 0 : this.config.get(this.caps.pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK;
  }

  get pasidControl(): number {
    return this.caps.pasid === 0 ? 0 : this.config.get(this.caps.pasid + PCI_PASID_CTRL, 2);
  }

  get pasidEnabled(): boolean {
    return (this.pasidControl & PCI_PASID_CTRL_ENABLE) !== 0;
  }

  get msixControl(): number {
    return this.config.get(this.caps.msix + PCI_MSIX_FLAGS, 2);
  }

  get msixEnabled(): boolean {
    return (this.msixControl & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }

  get msixFunctionMasked(): boolean {
    return (this.msixControl & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }

  /** The device may issue requests: Bus Master Enable set and in D0. */
  private canMaster(): boolean {
    return this.busMasterEnabled && this.powerState === 0;
  }

  // =================================================================== reset

  /** A conventional reset: everything back to its power-on state. */
  reset(): void {
    this.stats.resets++;
    this.powerOn();
  }

  /** Function Level Reset, as Initiate FLR starts it; completes at once. */
  flr(): void {
    this.stats.flrs++;
    this.powerOn();
  }

  private powerOn(): void {
    this.epoch++;
    this.config.reset();
    this.lastPowerState = 0;
    this.resetBar0();
  }

  private resetBar0(): void {
    this.ctrl = 0;
    this.halted = false;
    this.error = 0;
    this.errInfo = 0;
    this.errAddrLo = 0;
    this.errAddrHi = 0;
    this.errPasid = 0;
    this.errIrq = 0;
    this.ringBaseLo = 0;
    this.ringBaseHi = 0;
    this.ringSize = 0;
    this.head = 0;
    this.tail = 0;
    this.msixTable.fill(0);
    for (let v = 0; v < this.msixVectors; v++) this.msixTable[4 * v + 3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    this.pba.fill(0);
  }

  // =================================================================== BAR access

  /** Size of BAR `bar` (0 when it is not implemented). */
  barSize(bar: number): number {
    return this.config.bar(bar)?.size ?? 0;
  }

  /** Address BAR `bar` is programmed with, or -1 when it is not implemented. */
  barAddress(bar: number): number {
    return this.config.barAddress(bar);
  }

  /** A memory read that decoded to BAR `bar` at `offset`. */
  barRead(bar: number, offset: number, size: AccessSize): number {
    if (!this.decodes(bar, offset, size)) {
      this.stats.refusedMmio++;
      return allOnes(size);
    }
    const shift = 8 * (offset & 3);
    const word = this.readDword(offset - (offset & 3));
    return size === 4 ? word >>> 0 : (word >>> shift) & allOnes(size);
  }

  /** A memory write that decoded to BAR `bar` at `offset`. */
  barWrite(bar: number, offset: number, size: AccessSize, value: number): void {
    if (!this.decodes(bar, offset, size)) {
      this.stats.refusedMmio++;
      return;
    }
    const shift = 8 * (offset & 3);
    const bytes = size === 4 ? 0xffff_ffff : (allOnes(size) << shift) >>> 0;
    this.writeDword(offset - (offset & 3), (value << shift) >>> 0, bytes);
  }

  private decodes(bar: number, offset: number, size: number): boolean {
    return (
      bar === 0 &&
      this.memorySpaceEnabled &&
      this.powerState === 0 &&
      isValidConfigAccess(offset, size, this.bar0Size)
    );
  }

  private readDword(off: number): number {
    if (off >= PDMA_MSIX_TABLE_OFFSET && off < PDMA_MSIX_TABLE_OFFSET + PAGE) {
      const i = (off - PDMA_MSIX_TABLE_OFFSET) >>> 2;
      return i < this.msixTable.length ? this.msixTable[i]! : 0;
    }
    if (off >= PDMA_MSIX_PBA_OFFSET && off < PDMA_MSIX_PBA_OFFSET + PAGE) {
      const i = (off - PDMA_MSIX_PBA_OFFSET) >>> 2;
      return i < this.pba.length ? this.pba[i]! : 0;
    }
    switch (off) {
      case PDMA_ID:
        return ((this.config.get(PCI_DEVICE_ID, 2) << 16) | PDMA_INTERFACE_VERSION) >>> 0;
      case PDMA_CAP:
        return (PDMA_RING_MAX | (PDMA_MAX_TRANSFER_LOG2 << 16) | (Math.log2(this.dmaChunk) << 24)) >>> 0;
      case PDMA_CTRL:
        return this.ctrl;
      case PDMA_STATUS:
        return (
          (this.ctrl & PDMA_CTRL_ENABLE ? PDMA_STATUS_ENABLED : 0) | (this.halted ? PDMA_STATUS_HALTED : 0)
        );
      case PDMA_ERROR:
        return this.error;
      case PDMA_ERR_INFO:
        return this.errInfo;
      case PDMA_ERR_ADDR_LO:
        return this.errAddrLo;
      case PDMA_ERR_ADDR_HI:
        return this.errAddrHi;
      case PDMA_ERR_PASID:
        return this.errPasid;
      case PDMA_ERR_IRQ:
        return this.errIrq;
      case PDMA_RING_BASE_LO:
        return this.ringBaseLo;
      case PDMA_RING_BASE_HI:
        return this.ringBaseHi;
      case PDMA_RING_SIZE:
        return this.ringSize;
      case PDMA_RING_HEAD:
        return this.head;
      case PDMA_RING_TAIL:
        return this.tail;
      default:
        return 0;
    }
  }

  /** Writes the bytes of `value` selected by `bytes` into the dword register at `off`. */
  private writeDword(off: number, value: number, bytes: number): void {
    const merge = (cur: number): number => ((cur & ~bytes) | (value & bytes)) >>> 0;
    if (off >= PDMA_MSIX_TABLE_OFFSET && off < PDMA_MSIX_TABLE_OFFSET + PAGE) {
      this.msixTableWrite((off - PDMA_MSIX_TABLE_OFFSET) >>> 2, merge);
      return;
    }
    if (off >= PDMA_REGS_SIZE) return; // PBA (read-only) and unused pages.
    switch (off) {
      case PDMA_CTRL:
        this.ctrlWrite(merge(this.ctrl));
        return;
      case PDMA_ERROR:
        this.error = (this.error & ~(value & bytes)) >>> 0;
        return;
      case PDMA_ERR_IRQ:
        this.errIrq = merge(this.errIrq) & (PDMA_ERR_IRQ_ENABLE | PDMA_ERR_IRQ_VECTOR);
        return;
      case PDMA_RING_BASE_LO:
        // Decision: ring configuration is ignored while the ring is enabled.
        if (!this.enabled) this.ringBaseLo = merge(this.ringBaseLo) & ~(DESC_BYTES - 1);
        return;
      case PDMA_RING_BASE_HI:
        if (!this.enabled) this.ringBaseHi = merge(this.ringBaseHi);
        return;
      case PDMA_RING_SIZE:
        if (!this.enabled) this.ringSize = merge(this.ringSize);
        return;
      case PDMA_RING_TAIL:
        this.doorbell(merge(this.tail));
        return;
      default:
        return; // read-only or unused
    }
  }

  private get enabled(): boolean {
    return (this.ctrl & PDMA_CTRL_ENABLE) !== 0;
  }

  private ctrlWrite(v: number): void {
    const enable = (v & PDMA_CTRL_ENABLE) !== 0;
    if (enable === this.enabled) return;
    if (!enable) {
      this.ctrl = 0;
      return;
    }
    if (this.ringSize === 0 || this.ringSize > PDMA_RING_MAX) {
      this.raiseError(PDMA_ERROR_BAD_RING_CONFIG);
      return;
    }
    this.ctrl = PDMA_CTRL_ENABLE;
    this.head = 0;
    this.tail = 0;
    this.halted = false;
  }

  // =================================================================== the ring

  /**
   * RING_TAIL written. Decision: ignored while the ring is disabled; a value at or above
   * RING_SIZE is refused with ERROR.BAD_TAIL. Rewriting the current TAIL retries a ring stopped
   * by Bus Master Enable being clear.
   */
  private doorbell(tail: number): void {
    if (!this.enabled) return;
    if (tail >= this.ringSize) {
      this.raiseError(PDMA_ERROR_BAD_TAIL);
      return;
    }
    this.stats.doorbells++;
    this.tail = tail;
    this.process();
  }

  /** Processes descriptors until HEAD reaches TAIL, the ring halts, or a reset intervenes. */
  private process(): void {
    if (this.processing || this.halted) return;
    this.processing = true;
    const epoch = this.epoch;
    try {
      while (this.enabled && !this.halted && this.head !== this.tail && epoch === this.epoch) {
        if (!this.canMaster()) {
          this.raiseError(PDMA_ERROR_NO_BUS_MASTER);
          break;
        }
        const index = this.head;
        const addr = join64(this.ringBaseHi, this.ringBaseLo) + index * DESC_BYTES;
        const r = this.dmaRead(-1, addr, this.desc, false);
        if (!r.ok) {
          this.stats.ringFaults++;
          this.halted = true;
          this.recordError(PDMA_ERROR_RING_FAULT, index, r.addr, -1);
          break;
        }
        this.execute(index);
        if (epoch !== this.epoch) break;
        this.head = (index + 1) % this.ringSize;
      }
    } finally {
      this.processing = false;
    }
  }

  /** Runs the descriptor in `this.desc`, writes its completion record, raises its interrupt. */
  private execute(index: number): void {
    const d = this.descView;
    const opcode = d.getUint8(DESC_OPCODE);
    const flags = d.getUint8(DESC_FLAGS);
    const pasid = d.getUint32(DESC_PASID, true) & PASID_MASK;
    const len = d.getUint32(DESC_LEN, true);
    const op = this.op;
    op.status = CS_NONE;
    op.bytes = 0;
    op.faultAddr = 0;
    op.faultInfo = 0;
    let ssid = -1;
    let priv = false;
    // Check order: PASID (it decides whether the completion record can be addressed), privilege,
    // opcode, length, addresses.
    if ((flags & DESC_F_PASID) !== 0) {
      if (!this.pasidEnabled) op.status = CS_PASID_DISABLED;
      else if (pasid >= 2 ** this.maxPasidWidth) op.status = CS_BAD_PASID;
      else ssid = pasid;
    }
    if (op.status === CS_NONE && (flags & DESC_F_PRIV) !== 0) {
      // The privileged bit travels in the PASID TLP prefix: without a PASID there is none.
      if (ssid < 0 || (this.pasidControl & PCI_PASID_CTRL_PRIV) === 0) op.status = CS_PRIV_DISABLED;
      else priv = true;
    }
    const src = join64(d.getUint32(DESC_SRC + 4, true), d.getUint32(DESC_SRC, true));
    const dst = join64(d.getUint32(DESC_DST + 4, true), d.getUint32(DESC_DST, true));
    if (op.status === CS_NONE) {
      if (opcode > OP_COMPARE) op.status = CS_BAD_OPCODE;
      else if (len > PDMA_MAX_TRANSFER) op.status = CS_BAD_LENGTH;
      else if (!this.addressesFit(opcode, d, len)) op.status = CS_BAD_ADDRESS;
      else this.runOp(opcode, ssid, priv, src, dst, len);
    }
    this.stats.descriptors++;
    const name = COMPLETION_STATUS_NAMES[op.status] ?? `0x${op.status.toString(16)}`;
    this.stats.byStatus[name] = (this.stats.byStatus[name] ?? 0) + 1;
    if ((flags & DESC_F_COMPL) !== 0) this.writeCompletion(index, flags, pasid, ssid, priv);
    if ((flags & DESC_F_INTR) !== 0) this.raiseVector(d.getUint16(DESC_VECTOR, true));
  }

  /** The descriptor's address ranges lie below 2^53 (what the model's device addresses carry). */
  private addressesFit(opcode: number, d: DataView, len: number): boolean {
    const fits = (off: number): boolean => {
      const hi = d.getUint32(off + 4, true);
      return hi < 0x20_0000 && join64(hi, d.getUint32(off, true)) + len <= TWO_POW_53;
    };
    if (opcode === OP_NOP) return true;
    if (opcode === OP_FILL) return fits(DESC_DST);
    return fits(DESC_SRC) && fits(DESC_DST);
  }

  private runOp(opcode: number, ssid: number, priv: boolean, src: number, dst: number, len: number): void {
    const op = this.op;
    if (opcode !== OP_NOP) {
      if (opcode === OP_FILL) {
        this.pattern.set(this.desc.subarray(DESC_PATTERN, DESC_PATTERN + 8));
        this.fill(ssid, priv, dst, len);
      } else this.copyOrCompare(opcode === OP_COPY, ssid, priv, src, dst, len);
    }
    if (op.status === CS_NONE) {
      op.status = CS_SUCCESS;
      op.bytes = len;
    }
  }

  /** Bytes of the next request: at most one chunk, crossing no 4 KiB boundary at either address. */
  private chunkAt(a: number, b: number, remaining: number): number {
    return Math.min(remaining, this.dmaChunk, PAGE - (a % PAGE), PAGE - (b % PAGE));
  }

  private view(buf: Uint8Array, n: number): Uint8Array {
    return n === buf.length ? buf : buf.subarray(0, n);
  }

  private copyOrCompare(
    copy: boolean,
    ssid: number,
    priv: boolean,
    src: number,
    dst: number,
    len: number,
  ): void {
    let done = 0;
    while (done < len) {
      const n = this.chunkAt(src + done, dst + done, len - done);
      const a = this.view(this.bufA, n);
      if (!this.dataRead(ssid, src + done, a, priv, done)) return;
      if (copy) {
        if (!this.dataWrite(ssid, dst + done, a, priv, done)) return;
      } else {
        const b = this.view(this.bufB, n);
        if (!this.dataRead(ssid, dst + done, b, priv, done)) return;
        for (let i = 0; i < n; i++) {
          if (a[i] !== b[i]) {
            this.op.status = CS_COMPARE_MISMATCH;
            this.op.bytes = done + i;
            return;
          }
        }
      }
      done += n;
    }
  }

  private fill(ssid: number, priv: boolean, dst: number, len: number): void {
    let done = 0;
    while (done < len) {
      const n = this.chunkAt(dst + done, dst + done, len - done);
      const a = this.view(this.bufA, n);
      for (let i = 0; i < n; i++) a[i] = this.pattern[(done + i) & 7]!;
      if (!this.dataWrite(ssid, dst + done, a, priv, done)) return;
      done += n;
    }
  }

  private dataRead(ssid: number, addr: number, buf: Uint8Array, priv: boolean, done: number): boolean {
    const r = this.dmaRead(ssid, addr, buf, priv);
    if (r.ok) {
      this.stats.bytesRead += buf.length;
      return true;
    }
    this.failOp(CS_READ_FAULT, r, done, 0);
    return false;
  }

  private dataWrite(ssid: number, addr: number, buf: Uint8Array, priv: boolean, done: number): boolean {
    const r = this.dmaWrite(ssid, addr, buf, priv);
    if (r.ok) {
      this.stats.bytesWritten += buf.length;
      return true;
    }
    this.failOp(CS_WRITE_FAULT, r, done, COMPL_FAULT_WRITE);
    return false;
  }

  private failOp(status: number, r: DmaOutcome & { ok: false }, done: number, info: number): void {
    const op = this.op;
    op.status = status;
    op.bytes = done;
    op.faultAddr = r.addr;
    op.faultInfo = info | (r.kind === 'abort' ? COMPL_FAULT_ABORT : 0);
  }

  /**
   * Writes the completion record: with the descriptor's PASID and privilege when it could use
   * them, else without a PASID (CS_PASID_DISABLED, CS_BAD_PASID). A failure sets
   * ERROR.COMPL_FAULT; processing goes on.
   */
  private writeCompletion(index: number, flags: number, pasid: number, ssid: number, priv: boolean): void {
    const op = this.op;
    const c = this.complView;
    this.compl.fill(0);
    c.setUint8(COMPL_STATUS, op.status);
    c.setUint8(COMPL_FAULT_INFO, op.faultInfo);
    c.setUint16(COMPL_INDEX, index, true);
    c.setUint32(COMPL_BYTES_DONE, op.bytes, true);
    c.setUint32(COMPL_FAULT_ADDR, op.faultAddr >>> 0, true);
    c.setUint32(COMPL_FAULT_ADDR + 4, Math.floor(op.faultAddr / 2 ** 32) >>> 0, true);
    c.setUint32(COMPL_PASID, (flags & DESC_F_PASID) !== 0 ? (COMPL_PASID_VALID | pasid) >>> 0 : 0, true);
    const hi = this.descView.getUint32(DESC_COMPL + 4, true);
    const lo = this.descView.getUint32(DESC_COMPL, true);
    const addr = join64(hi, lo);
    const r: DmaOutcome =
      hi < 0x20_0000 && addr + COMPL_BYTES <= TWO_POW_53
        ? this.dmaWriteChunked(ssid, addr, this.compl, priv)
        : { ok: false, kind: 'abort', addr };
    if (!r.ok) {
      this.stats.completionFaults++;
      this.recordError(PDMA_ERROR_COMPL_FAULT, index | (op.status << 16), r.addr, ssid);
    }
  }

  /** A write split at 4 KiB boundaries (completion records need not be aligned). */
  private dmaWriteChunked(ssid: number, addr: number, data: Uint8Array, priv: boolean): DmaOutcome {
    let done = 0;
    while (done < data.length) {
      const n = Math.min(data.length - done, PAGE - ((addr + done) % PAGE));
      const r = this.dmaWrite(
        ssid,
        addr + done,
        n === data.length ? data : data.subarray(done, done + n),
        priv,
      );
      if (!r.ok) return r;
      done += n;
    }
    return OK;
  }

  private recordError(bit: number, info: number, addr: number, ssid: number): void {
    this.errInfo = info >>> 0;
    this.errAddrLo = addr >>> 0;
    this.errAddrHi = Math.floor(addr / 2 ** 32) >>> 0;
    this.errPasid = ssid >= 0 ? (PDMA_ERR_PASID_VALID | ssid) >>> 0 : 0;
    this.raiseError(bit);
  }

  /** Sets ERROR bits; a newly set bit raises the error vector when ERR_IRQ enables it. */
  private raiseError(bits: number): void {
    const fresh = bits & ~this.error & PDMA_ERROR_ALL;
    this.error = (this.error | bits) >>> 0;
    if (fresh !== 0 && (this.errIrq & PDMA_ERR_IRQ_ENABLE) !== 0)
      this.raiseVector(this.errIrq & PDMA_ERR_IRQ_VECTOR);
  }

  // =================================================================== DMA

  private dmaRead(ssid: number, addr: number, buf: Uint8Array, priv: boolean): DmaOutcome {
    const r = this.dma === null ? noPort(addr) : this.dma.dmaRead(this.streamId, ssid, addr, buf, priv);
    if (!r.ok) {
      this.stats.dmaFaults++;
      // The read's completion came back as an Unsupported Request: Received Master Abort.
      this.config.setBits(PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
    }
    return r;
  }

  private dmaWrite(ssid: number, addr: number, buf: Uint8Array, priv: boolean): DmaOutcome {
    const r = this.dma === null ? noPort(addr) : this.dma.dmaWrite(this.streamId, ssid, addr, buf, priv);
    if (!r.ok) this.stats.dmaFaults++;
    return r;
  }

  // =================================================================== MSI-X

  private msixTableWrite(word: number, merge: (cur: number) => number): void {
    if (word >= this.msixTable.length) return;
    const field = word & 3;
    const cur = this.msixTable[word]!;
    if (field === 0)
      this.msixTable[word] = merge(cur) & ~3; // Message Address [1:0] are zero.
    else if (field === 3) this.msixTable[word] = merge(cur) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
    else this.msixTable[word] = merge(cur);
    if (field === 3 && (this.msixTable[word]! & PCI_MSIX_ENTRY_CTRL_MASKBIT) === 0) this.deliverPending();
  }

  /** Entry `v` of the MSI-X table. */
  msixEntry(v: number): { addr: number; data: number; masked: boolean } {
    const t = this.msixTable;
    return {
      addr: join64(t[4 * v + 1] ?? 0, t[4 * v] ?? 0),
      data: t[4 * v + 2] ?? 0,
      masked: ((t[4 * v + 3] ?? 1) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0,
    };
  }

  /** Whether vector `v`'s Pending Bit is set. */
  msixPending(v: number): boolean {
    return v >= 0 && v < this.msixVectors && ((this.pba[v >>> 5]! >>> (v & 31)) & 1) === 1;
  }

  /**
   * Signals vector `v` (what the engine does on completion; public so the platform and tests can
   * raise one). Dropped while MSI-X is disabled or for a vector the table does not have; pended
   * while the function or the vector is masked or the function cannot master; else written.
   */
  raiseVector(v: number): void {
    if (v >= this.msixVectors || !this.msixEnabled) {
      this.stats.msiDropped++;
      return;
    }
    if (this.msixFunctionMasked || this.vectorMasked(v) || !this.canMaster()) {
      if (!this.msixPending(v)) this.stats.msiPended++;
      this.pba[v >>> 5] = (this.pba[v >>> 5]! | (1 << (v & 31))) >>> 0;
      return;
    }
    this.sendMsi(v);
  }

  private vectorMasked(v: number): boolean {
    return (this.msixTable[4 * v + 3]! & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  /** Sends every pending vector that is no longer masked (PCIe §6.1.4.5). */
  private deliverPending(): void {
    if (!this.msixEnabled || this.msixFunctionMasked || !this.canMaster()) return;
    for (let v = 0; v < this.msixVectors; v++) {
      if (this.msixPending(v) && !this.vectorMasked(v)) {
        this.pba[v >>> 5] = (this.pba[v >>> 5]! & ~(1 << (v & 31))) >>> 0;
        this.sendMsi(v);
      }
    }
  }

  /** The MSI: a 4-byte write of the entry's data to its address, without a PASID, through the IOMMU. */
  private sendMsi(v: number): void {
    const t = this.msixTable;
    const hi = t[4 * v + 1]!;
    const addr = join64(hi, t[4 * v]!);
    this.msiDataView.setUint32(0, t[4 * v + 2]!, true);
    const r: DmaOutcome =
      hi < 0x20_0000 ? this.dmaWrite(-1, addr, this.msiData, false) : { ok: false, kind: 'abort', addr };
    if (r.ok) this.stats.msiSent++;
    else this.stats.msiFaults++;
  }

  // =================================================================== inspection

  /** Ring registers as the driver would read them (no side effects, ignores Memory Space Enable). */
  ringState(): {
    enabled: boolean;
    halted: boolean;
    base: number;
    size: number;
    head: number;
    tail: number;
    error: number;
  } {
    return {
      enabled: this.enabled,
      halted: this.halted,
      base: join64(this.ringBaseHi, this.ringBaseLo),
      size: this.ringSize,
      head: this.head,
      tail: this.tail,
      error: this.error,
    };
  }
}

const OK: DmaOutcome = { ok: true };

function noPort(addr: number): DmaOutcome {
  return { ok: false, kind: 'abort', addr };
}

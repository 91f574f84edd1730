/**
 * The arm64 VM's interrupt controller: a small model of KVM's GICv3 (arch/arm64/kvm/vgic/, Linux
 * 5.10) — the part the host uAPI reaches. User space creates it with KVM_CREATE_DEVICE
 * (KVM_DEV_TYPE_ARM_VGIC_V3), places the distributor and redistributors (GRP_ADDR), may size it
 * (GRP_NR_IRQS) and initialises it (GRP_CTRL / CTRL_INIT). From then on KVM_IRQ_LINE and irqfds
 * (GSI n → SPI INTID 32 + n, the default routing) drive its lines.
 *
 * Each interrupt (per vCPU for SGIs 0–15 and PPIs 16–31; shared SPIs from 32) has an input line, a
 * configuration (edge or level) and a pending latch. A rising edge of an edge-triggered line sets
 * the latch — one interrupt; a rising edge while it is already pending merges with it, as the GIC
 * does. A level-triggered interrupt is pending while its line is high or its latch is set. The
 * guest's acknowledgement (`acknowledge`, what a later guest model's read of ICC_IAR1 does)
 * clears the latch.
 *
 * Decisions (not architected by KVM):
 * - SPIs are edge-triggered: a guest driver that uses them for device interrupts (irqfd, MSI-like)
 *   programs GICD_ICFGR so; vsva has no guest MMIO to the distributor. PPIs are level-triggered
 *   (timers), SGIs edge.
 * - SPIs are not routed to a particular vCPU (GICD_IROUTER is not modelled).
 * - GICv2 emulation is absent (a GICv3 host without the GICv2 CPU interface): KVM_CREATE_IRQCHIP
 *   and KVM_DEV_TYPE_ARM_VGIC_V2 are ENODEV.
 * - The register groups (DIST_REGS, REDIST_REGS, CPU_SYSREGS), LEVEL_INFO, redistributor regions
 *   and the ITS are not modelled: ENXIO, as for an attribute the device does not have.
 */

import { GIC_INTID_SPURIOUS } from '../../../arch/guest-cpu.ts';
import { E2BIG, EBUSY, EEXIST, EFAULT, EINVAL, ENXIO } from '../../../uapi/errno.ts';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_VGIC_V3_ADDR_ALIGN,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../../uapi/kvm.ts';
import type { KvmDeviceArch, KvmDeviceAttr } from '../arch.ts';

export const VGIC_NR_SGIS = 16;
export const VGIC_NR_PPIS = 16;
export const VGIC_NR_PRIVATE_IRQS = VGIC_NR_SGIS + VGIC_NR_PPIS;
/** The interrupt count when user space does not set one: 256, so 224 SPIs. */
export const VGIC_NR_IRQS_LEGACY = 256;
/** Largest GRP_NR_IRQS value accepted (the last INTIDs are reserved). */
export const VGIC_MAX_RESERVED = 1023;
/** VGIC_V3_MAX_CPUS: the vCPU limit of a VM with a GICv3. */
export const VGIC_V3_MAX_CPUS = 512;
/** KVM_VGIC_V3_DIST_SIZE and the redistributor frame pair per vCPU (RD + SGI). */
export const KVM_VGIC_V3_DIST_SIZE = 0x1_0000;
export const KVM_VGIC_V3_REDIST_SIZE = 0x2_0000;

export type VgicConfig = 'edge' | 'level';

/** The interrupts of one vCPU (private) or of the distributor (SPIs). */
class IrqBank {
  readonly line: Uint8Array;
  readonly latch: Uint8Array;
  readonly level: Uint8Array;
  /** Rising edges of the input line (interrupts raised). */
  readonly edges: Uint32Array;
  /** Rising edges that found the interrupt already pending. */
  readonly merged: Uint32Array;

  constructor(n: number, levelFrom: number, levelTo: number) {
    this.line = new Uint8Array(n);
    this.latch = new Uint8Array(n);
    this.level = new Uint8Array(n);
    this.edges = new Uint32Array(n);
    this.merged = new Uint32Array(n);
    this.level.fill(1, levelFrom, levelTo);
  }

  pending(i: number): boolean {
    return this.latch[i] === 1 || (this.level[i] === 1 && this.line[i] === 1);
  }

  set(i: number, high: boolean): boolean {
    const rising = high && this.line[i] === 0;
    if (rising) {
      this.edges[i]!++;
      if (this.pending(i)) this.merged[i]!++;
      if (this.level[i] === 0) this.latch[i] = 1;
    }
    this.line[i] = high ? 1 : 0;
    return rising;
  }
}

/** What the vGIC needs from its VM. */
export interface VgicHost {
  /** Bits of the VM's IPA space (addresses must fit). */
  readonly ipaBits: number;
  /** vCPUs created so far (online). */
  readonly onlineVcpus: number;
}

export class VgicV3 implements KvmDeviceArch {
  readonly name = 'kvm-arm-vgic-v3';
  private readonly host: VgicHost;
  /** SPIs the distributor has; 0 until set by GRP_NR_IRQS or by initialisation. */
  nrSpis = 0;
  initialized = false;
  distBase: number | undefined;
  redistBase: number | undefined;
  private spis: IrqBank = new IrqBank(0, 0, 0);
  private readonly privates: IrqBank[] = [];
  /** Called when an interrupt becomes pending (vCPU index, or -1 for an SPI; INTID). */
  onPending: ((vcpu: number, intid: number) => void) | undefined;

  constructor(host: VgicHost) {
    this.host = host;
  }

  /** kvm_vgic_vcpu_init: a vCPU's SGIs and PPIs. */
  addVcpu(): void {
    this.privates.push(new IrqBank(VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS, VGIC_NR_PRIVATE_IRQS));
  }

  /** The last vCPU was undone before it went online. */
  removeLastVcpu(): void {
    this.privates.pop();
  }

  /**
   * vgic_init: fixes the SPI count and sets up the default routing. Linux's EBUSY for a vCPU
   * still being created cannot arise here: KVM_CREATE_VCPU completes within its own call.
   */
  init(): number {
    if (this.initialized) return 0;
    if (this.nrSpis === 0) this.nrSpis = VGIC_NR_IRQS_LEGACY - VGIC_NR_PRIVATE_IRQS;
    this.spis = new IrqBank(this.nrSpis, 0, 0);
    this.initialized = true;
    return 0;
  }

  /**
   * vgic_v3_map_resources, at a vCPU's first KVM_RUN: the distributor and redistributors must be
   * placed (ENXIO), apart (EINVAL), and the vGIC initialised (EBUSY).
   */
  mapResources(): number {
    if (this.redistBase === undefined || this.distBase === undefined) return -ENXIO;
    const d = this.distBase;
    const r = this.redistBase;
    const rSize = this.host.onlineVcpus * KVM_VGIC_V3_REDIST_SIZE;
    if (d < r + rSize && r < d + KVM_VGIC_V3_DIST_SIZE) return -EINVAL;
    if (!this.initialized) return -EBUSY;
    return 0;
  }

  // ------------------------------------------------------------ lines

  /**
   * kvm_vgic_inject_irq: sets line `intid` (of vCPU `vcpu` for a private one) to `level`.
   * 0, -EBUSY (not initialised), or -EINVAL (no such vCPU or interrupt).
   */
  inject(vcpu: number, intid: number, level: boolean): number {
    if (!this.initialized) return -EBUSY;
    const at = this.locate(vcpu, intid);
    if (at === undefined) return -EINVAL;
    if (at.bank.set(at.i, level) && at.bank.pending(at.i))
      this.onPending?.(intid < VGIC_NR_PRIVATE_IRQS ? vcpu : -1, intid);
    return 0;
  }

  private locate(vcpu: number, intid: number): { bank: IrqBank; i: number } | undefined {
    if (!Number.isInteger(intid) || intid < 0) return undefined;
    if (intid < VGIC_NR_PRIVATE_IRQS) {
      const bank = this.privates[vcpu];
      return bank === undefined ? undefined : { bank, i: intid };
    }
    const i = intid - VGIC_NR_PRIVATE_IRQS;
    return i < this.nrSpis && this.initialized ? { bank: this.spis, i } : undefined;
  }

  /** Whether `intid` is pending (for vCPU `vcpu` if private). */
  isPending(vcpu: number, intid: number): boolean {
    const at = this.locate(vcpu, intid);
    return at?.bank.pending(at.i) === true;
  }

  /**
   * The interrupt a read of ICC_IAR1_EL1 on vCPU `vcpu` would acknowledge: the lowest pending
   * INTID, its private ones first; SPIs target vCPU 0 (GICD_IROUTER's reset value). 1023 when none.
   */
  highestPending(vcpu: number): number {
    const own = this.privates[vcpu];
    if (own !== undefined) for (let i = 0; i < VGIC_NR_PRIVATE_IRQS; i++) if (own.pending(i)) return i;
    if (vcpu === 0 && this.initialized)
      for (let i = 0; i < this.nrSpis; i++) if (this.spis.pending(i)) return i + VGIC_NR_PRIVATE_IRQS;
    return GIC_INTID_SPURIOUS;
  }

  /** Whether [gpa, gpa+size) falls in the distributor or the redistributors of `nvcpus` vCPUs. */
  containsMmio(gpa: number, size: number, nvcpus: number): boolean {
    const inside = (base: number | undefined, len: number) =>
      base !== undefined && gpa >= base && gpa + size <= base + len;
    return (
      inside(this.distBase, KVM_VGIC_V3_DIST_SIZE) ||
      inside(this.redistBase, nvcpus * KVM_VGIC_V3_REDIST_SIZE)
    );
  }

  /** Interrupts raised on `intid` (rising edges of its line), and how many merged with a pending one. */
  counts(vcpu: number, intid: number): { raised: number; merged: number } {
    const at = this.locate(vcpu, intid);
    return at === undefined
      ? { raised: 0, merged: 0 }
      : { raised: at.bank.edges[at.i]!, merged: at.bank.merged[at.i]! };
  }

  /** The guest acknowledges `intid`: its latch clears. True if it was pending. */
  acknowledge(vcpu: number, intid: number): boolean {
    const at = this.locate(vcpu, intid);
    if (at === undefined || !at.bank.pending(at.i)) return false;
    at.bank.latch[at.i] = 0;
    return true;
  }

  /** Configures `intid` as edge- or level-triggered (a guest write of GICD_ICFGR/GICR_ICFGR). */
  configure(vcpu: number, intid: number, config: VgicConfig): boolean {
    const at = this.locate(vcpu, intid);
    if (at === undefined || intid < VGIC_NR_SGIS) return false;
    at.bank.level[at.i] = config === 'level' ? 1 : 0;
    return true;
  }

  // ------------------------------------------------------------ device attributes

  /** vgic_v3_set_attr (vgic_set_common_attr) */
  setAttr(a: KvmDeviceAttr): number {
    switch (a.group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR: {
        const v = a.addr.getU64();
        if (v === undefined) return -EFAULT;
        return this.setAddr(a.attr, v);
      }
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS: {
        const v = a.addr.getU32();
        if (v === undefined) return -EFAULT;
        if (v < VGIC_NR_PRIVATE_IRQS + 32 || v > VGIC_MAX_RESERVED || (v & 31) !== 0) return -EINVAL;
        if (this.initialized || this.nrSpis !== 0) return -EBUSY;
        this.nrSpis = v - VGIC_NR_PRIVATE_IRQS;
        return 0;
      }
      case KVM_DEV_ARM_VGIC_GRP_CTRL:
        return a.attr === BigInt(KVM_DEV_ARM_VGIC_CTRL_INIT) ? this.init() : -ENXIO;
      default:
        return -ENXIO;
    }
  }

  /** kvm_vgic_addr for a write, through vgic_check_ioaddr: E2BIG, EINVAL (alignment), EEXIST. */
  private setAddr(type: bigint, v: bigint): number {
    const which =
      type === BigInt(KVM_VGIC_V3_ADDR_TYPE_DIST)
        ? 'dist'
        : type === BigInt(KVM_VGIC_V3_ADDR_TYPE_REDIST)
          ? 'redist'
          : undefined;
    if (which === undefined) return -ENXIO;
    if (v >> BigInt(this.host.ipaBits) !== 0n) return -E2BIG;
    if (v % BigInt(KVM_VGIC_V3_ADDR_ALIGN) !== 0n) return -EINVAL;
    if ((which === 'dist' ? this.distBase : this.redistBase) !== undefined) return -EEXIST;
    if (which === 'dist') this.distBase = Number(v);
    else this.redistBase = Number(v);
    return 0;
  }

  /** vgic_v3_get_attr */
  getAttr(a: KvmDeviceAttr): number {
    switch (a.group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR: {
        let v: number | undefined;
        if (a.attr === BigInt(KVM_VGIC_V3_ADDR_TYPE_DIST)) v = this.distBase;
        else if (a.attr === BigInt(KVM_VGIC_V3_ADDR_TYPE_REDIST)) v = this.redistBase;
        else return -ENXIO;
        // VGIC_ADDR_UNDEF reads as all ones.
        return a.addr.putU64(v === undefined ? -1n : BigInt(v)) ? 0 : -EFAULT;
      }
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
        return a.addr.putU32(this.nrSpis + VGIC_NR_PRIVATE_IRQS) ? 0 : -EFAULT;
      default:
        return -ENXIO;
    }
  }

  /** vgic_v3_has_attr */
  hasAttr(a: KvmDeviceAttr): number {
    switch (a.group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR:
        return a.attr === BigInt(KVM_VGIC_V3_ADDR_TYPE_DIST) ||
          a.attr === BigInt(KVM_VGIC_V3_ADDR_TYPE_REDIST)
          ? 0
          : -ENXIO;
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
        return 0;
      case KVM_DEV_ARM_VGIC_GRP_CTRL:
        return a.attr === BigInt(KVM_DEV_ARM_VGIC_CTRL_INIT) ? 0 : -ENXIO;
      default:
        return -ENXIO;
    }
  }
}

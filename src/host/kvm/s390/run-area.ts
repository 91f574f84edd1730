/**
 * The s390 `struct kvm_run` inside a vCPU's run area (uapi/kvm-s390.ts `kvm_run_s390`), read
 * and written field by field the way KVM touches it: the header (immediate_exit, exit_reason,
 * the PSW), the two sync masks, and `s.regs`.
 *
 * Linux keeps part of the vCPU's architected state *only* here — the general, access and vector
 * registers, the FPC, the runtime-instrumentation and guarded-storage control blocks and the
 * etoken — so for those registers this area is the canonical copy and the ioctls read and write
 * it; the rest is copied in on KVM_RUN (sync_regs) and out on exit (store_regs).
 */

import {
  KVM_RUN_S390_ETOKEN_EXTENSION_OFFSET,
  KVM_RUN_S390_ETOKEN_OFFSET,
  KVM_RUN_S390_GSCB_OFFSET,
  KVM_RUN_S390_VRS_OFFSET,
  kvm_run_s390,
  syncRegOffset,
} from '../../../uapi/kvm-s390.ts';
import type { KvmRunArea } from '../arch.ts';

/** Offsets in kvm_run of the fields the vCPU model uses. */
export const RUN = {
  immediateExit: kvm_run_s390.offsetof('immediate_exit'),
  exitReason: kvm_run_s390.offsetof('exit_reason'),
  pswMask: kvm_run_s390.offsetof('psw_mask'),
  pswAddr: kvm_run_s390.offsetof('psw_addr'),
  validRegs: kvm_run_s390.offsetof('kvm_valid_regs'),
  dirtyRegs: kvm_run_s390.offsetof('kvm_dirty_regs'),
  prefix: syncRegOffset('prefix'),
  gprs: syncRegOffset('gprs'),
  acrs: syncRegOffset('acrs'),
  crs: syncRegOffset('crs'),
  todpr: syncRegOffset('todpr'),
  cputm: syncRegOffset('cputm'),
  ckc: syncRegOffset('ckc'),
  pp: syncRegOffset('pp'),
  gbea: syncRegOffset('gbea'),
  pft: syncRegOffset('pft'),
  pfs: syncRegOffset('pfs'),
  pfc: syncRegOffset('pfc'),
  vrs: KVM_RUN_S390_VRS_OFFSET,
  fpc: syncRegOffset('fpc'),
  bpbc: syncRegOffset('bpbc'),
  riccb: syncRegOffset('riccb'),
  diag318: syncRegOffset('diag318'),
  gscb: KVM_RUN_S390_GSCB_OFFSET,
  etoken: KVM_RUN_S390_ETOKEN_OFFSET,
  etokenExtension: KVM_RUN_S390_ETOKEN_EXTENSION_OFFSET,
} as const;

/** Sizes of the register blocks that are zeroed or copied whole. */
export const RUN_SIZE = {
  gprs: 16 * 8,
  acrs: 16 * 4,
  crs: 16 * 8,
  vrs: 32 * 16,
  riccb: 64,
  gscb: 4 * 8,
} as const;

/** Little-endian field access to the s390 kvm_run of one run area. */
export class S390RunView {
  readonly area: KvmRunArea;

  constructor(area: KvmRunArea) {
    if (area.size < kvm_run_s390.size) {
      throw new Error(`s390 kvm_run needs ${kvm_run_s390.size} bytes, the run area has ${area.size}`);
    }
    this.area = area;
  }

  u8(off: number): number {
    return this.area.u8(off);
  }

  setU8(off: number, v: number): void {
    this.area.write(off, Uint8Array.of(v & 0xff));
  }

  u32(off: number): number {
    return this.area.u32(off);
  }

  setU32(off: number, v: number): void {
    this.area.setU32(off, v);
  }

  u64(off: number): bigint {
    return new DataView(this.area.read(off, 8).buffer).getBigUint64(0, true);
  }

  setU64(off: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    this.area.write(off, b);
  }

  bytes(off: number, len: number): Uint8Array {
    return this.area.read(off, len);
  }

  setBytes(off: number, b: Uint8Array): void {
    this.area.write(off, b);
  }

  zero(off: number, len: number): void {
    this.area.write(off, new Uint8Array(len));
  }

  /** `n` u64s starting at `off`. */
  u64s(off: number, n: number): bigint[] {
    const dv = new DataView(this.area.read(off, n * 8).buffer);
    return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  }

  setU64s(off: number, vs: readonly bigint[]): void {
    const b = new Uint8Array(vs.length * 8);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => {
      dv.setBigUint64(i * 8, BigInt.asUintN(64, v), true);
    });
    this.area.write(off, b);
  }

  /** The whole kvm_run (for snapshots and tests). */
  all(): Uint8Array {
    return this.area.read(0, kvm_run_s390.size);
  }
}

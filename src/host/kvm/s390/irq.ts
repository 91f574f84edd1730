/**
 * A vCPU's local interrupts (arch/s390/kvm/interrupt.c, `struct kvm_s390_local_interrupt`): a
 * bitmap of pending interrupt classes whose bit number is the class's priority (IRQ_PEND_*,
 * ascending), the parameters of the one interrupt each class can hold, and the set of CPUs
 * whose emergency signal is pending. KVM_S390_IRQ and KVM_S390_SET_IRQ_STATE add to it,
 * KVM_S390_GET_IRQ_STATE lists it, and every reset level empties it (seed-spec §4.2 step 6).
 *
 * The model keeps the interrupts pending: no instruction runs, so nothing is delivered into
 * the guest's lowcore; a reset, a stop (for SIGP STOP) or KVM_S390_SET_IRQ_STATE's refusal are
 * what a caller observes.
 *
 * Decision: the machine has no SIGP-interpretation facility (sclp.has_sigpif = 0), so KVM keeps
 * no SCA entries: an external call is the IRQ_PEND_EXT_EXTERNAL class (one at a time, EBUSY when
 * one is pending), not the SCA's sigp-control word, and it is listed in ascending bit order like
 * the other classes.
 */

import { EBUSY, EINVAL } from '../../../uapi/errno.ts';
import {
  KVM_S390_INT_CLOCK_COMP,
  KVM_S390_INT_CPU_TIMER,
  KVM_S390_INT_EMERGENCY,
  KVM_S390_INT_EXTERNAL_CALL,
  KVM_S390_INT_PFAULT_INIT,
  KVM_S390_MCHK,
  KVM_S390_PGM_FLAGS_ILC_MASK,
  KVM_S390_PGM_FLAGS_ILC_VALID,
  KVM_S390_PROGRAM_INT,
  KVM_S390_RESTART,
  KVM_S390_SIGP_SET_PREFIX,
  KVM_S390_SIGP_STOP,
  KVM_S390_STOP_FLAG_STORE_STATUS,
  type KvmS390Irq,
  kvm_s390_ext_info,
  kvm_s390_irq,
  kvm_s390_mchk_info,
  kvm_s390_pgm_info,
  MCHK_EX_MASK,
  MCHK_REP_MASK,
  PGM_PER,
} from '../../../uapi/kvm-s390.ts';
import type { StructValue } from '../../../uapi/layout.ts';

// ---------------------------------------------------------------- priority classes

/** enum irq_types (asm/kvm_host.h): interrupt classes in ascending order of priority. */
export const IRQ_PEND_SET_PREFIX = 0;
export const IRQ_PEND_RESTART = 1;
export const IRQ_PEND_SIGP_STOP = 2;
/** I/O interrupt subclasses 7..0 are bits 3..10 (floating; never local). */
export const IRQ_PEND_IO_ISC_7 = 3;
export const IRQ_PEND_IO_ISC_0 = 10;
export const IRQ_PEND_VIRTIO = 11;
export const IRQ_PEND_PFAULT_DONE = 12;
export const IRQ_PEND_PFAULT_INIT = 13;
export const IRQ_PEND_EXT_HOST = 14;
export const IRQ_PEND_EXT_SERVICE = 15;
export const IRQ_PEND_EXT_SERVICE_EV = 16;
export const IRQ_PEND_EXT_TIMING = 17;
export const IRQ_PEND_EXT_CPU_TIMER = 18;
export const IRQ_PEND_EXT_CLOCK_COMP = 19;
export const IRQ_PEND_EXT_EXTERNAL = 20;
export const IRQ_PEND_EXT_EMERGENCY = 21;
export const IRQ_PEND_EXT_MALFUNC = 22;
export const IRQ_PEND_EXT_IRQ_KEY = 23;
export const IRQ_PEND_MCHK_REP = 24;
export const IRQ_PEND_PROG = 25;
export const IRQ_PEND_SVC = 26;
export const IRQ_PEND_MCHK_EX = 27;
export const IRQ_PEND_COUNT = 28;

/** Names of the classes, by bit (for reports). */
export const IRQ_PEND_NAMES: readonly string[] = [
  'SET_PREFIX',
  'RESTART',
  'SIGP_STOP',
  'IO_ISC_7',
  'IO_ISC_6',
  'IO_ISC_5',
  'IO_ISC_4',
  'IO_ISC_3',
  'IO_ISC_2',
  'IO_ISC_1',
  'IO_ISC_0',
  'VIRTIO',
  'PFAULT_DONE',
  'PFAULT_INIT',
  'EXT_HOST',
  'EXT_SERVICE',
  'EXT_SERVICE_EV',
  'EXT_TIMING',
  'EXT_CPU_TIMER',
  'EXT_CLOCK_COMP',
  'EXT_EXTERNAL',
  'EXT_EMERGENCY',
  'EXT_MALFUNC',
  'EXT_IRQ_KEY',
  'MCHK_REP',
  'PROG',
  'SVC',
  'MCHK_EX',
];

// ---------------------------------------------------------------- payload

type ExtInfo = StructValue<typeof kvm_s390_ext_info.fields>;
type PgmInfo = StructValue<typeof kvm_s390_pgm_info.fields>;
type MchkInfo = StructValue<typeof kvm_s390_mchk_info.fields>;

/** struct kvm_s390_irq_payload: one parameter block per class that has parameters. */
export interface IrqPayload {
  ext: ExtInfo;
  pgm: PgmInfo;
  extcall: { code: number };
  prefix: { address: number };
  stop: { flags: number };
  mchk: MchkInfo;
}

function zeroPayload(): IrqPayload {
  return {
    ext: kvm_s390_ext_info.decode(new Uint8Array(0)),
    pgm: kvm_s390_pgm_info.decode(new Uint8Array(0)),
    extcall: { code: 0 },
    prefix: { address: 0 },
    stop: { flags: 0 },
    mchk: kvm_s390_mchk_info.decode(new Uint8Array(0)),
  };
}

/** What an injection may look at beyond the interrupt state itself. */
export interface InjectContext {
  /** is_vcpu_stopped */
  readonly stopped: boolean;
  /** kvm_get_vcpu_by_id(kvm, id) !== NULL */
  vcpuExists(id: number): boolean;
}

// ---------------------------------------------------------------- the local interrupt state

export class LocalInterrupts {
  /** li->pending_irqs: bit n set = class n pending. */
  pending = 0;
  /** li->sigp_emerg_pending: the CPU addresses whose emergency signal is pending. */
  emergPending = new Set<number>();
  /** li->irq */
  irq: IrqPayload = zeroPayload();

  isPending(cls: number): boolean {
    return (this.pending & (1 << cls)) !== 0;
  }

  private set(cls: number): void {
    this.pending |= 1 << cls;
  }

  /** Pending classes, highest priority first (the order delivery would take them). */
  pendingByPriority(): number[] {
    const out: number[] = [];
    for (let c = IRQ_PEND_COUNT - 1; c >= 0; c--) if (this.isPending(c)) out.push(c);
    return out;
  }

  clone(): LocalInterrupts {
    const c = new LocalInterrupts();
    c.pending = this.pending;
    c.emergPending = new Set(this.emergPending);
    c.irq = structuredClone(this.irq);
    return c;
  }

  /** Takes over another instance's state (the commit of a validated batch). */
  assign(o: LocalInterrupts): void {
    this.pending = o.pending;
    this.emergPending = new Set(o.emergPending);
    this.irq = structuredClone(o.irq);
  }

  /** kvm_s390_clear_local_irqs: every class, every emergency source, every parameter. */
  clear(): void {
    this.pending = 0;
    this.emergPending.clear();
    this.irq = zeroPayload();
  }

  /** kvm_s390_clear_stop_irq (part of stopping the vCPU). */
  clearStop(): void {
    this.irq.stop.flags = 0;
    this.pending &= ~(1 << IRQ_PEND_SIGP_STOP);
  }

  // ------------------------------------------------------------ injection (do_inject_vcpu)

  /**
   * Queues one interrupt, validating it as Linux does: 0, or -EINVAL (unknown or floating type,
   * a sending CPU that does not exist, a stop flag other than STORE_STATUS) or -EBUSY (an
   * external call or SIGP STOP already pending, SET PREFIX on an operating CPU). A refusal
   * changes nothing.
   */
  inject(irq: KvmS390Irq, ctx: InjectContext): number {
    const type = irq.type;
    if (type > 0xffff_ffffn) return -EINVAL;
    switch (Number(type)) {
      case KVM_S390_PROGRAM_INT:
        return this.injectProg(irq.u.pgm);
      case KVM_S390_SIGP_SET_PREFIX:
        return this.injectSetPrefix(irq.u.prefix.address, ctx);
      case KVM_S390_SIGP_STOP:
        return this.injectSigpStop(irq.u.stop.flags, ctx);
      case KVM_S390_RESTART:
        this.set(IRQ_PEND_RESTART);
        return 0;
      case KVM_S390_INT_CLOCK_COMP:
        this.set(IRQ_PEND_EXT_CLOCK_COMP);
        return 0;
      case KVM_S390_INT_CPU_TIMER:
        this.set(IRQ_PEND_EXT_CPU_TIMER);
        return 0;
      case KVM_S390_INT_EXTERNAL_CALL:
        return this.injectExtcall(irq.u.extcall.code, ctx);
      case KVM_S390_INT_EMERGENCY:
        return this.injectEmergency(irq.u.emerg.code, ctx);
      case KVM_S390_MCHK:
        this.injectMchk(irq.u.mchk);
        return 0;
      case KVM_S390_INT_PFAULT_INIT:
        this.irq.ext = { ...irq.u.ext };
        this.set(IRQ_PEND_PFAULT_INIT);
        return 0;
      default:
        // KVM_S390_INT_VIRTIO, KVM_S390_INT_SERVICE, I/O and PFAULT_DONE are floating
        // interrupts (VM-wide), not a vCPU's; anything else is unknown.
        return -EINVAL;
    }
  }

  /**
   * __inject_prog. Without a valid ILC the kernel supplies the length of the intercepted
   * instruction; no instruction was intercepted here, so that length is 0
   * (kvm_s390_get_ilen with no intercept code).
   */
  private injectProg(given: PgmInfo): number {
    const pgm: PgmInfo = { ...given };
    if ((pgm.flags & KVM_S390_PGM_FLAGS_ILC_VALID) === 0) {
      pgm.flags &= ~KVM_S390_PGM_FLAGS_ILC_MASK;
      pgm.flags |= KVM_S390_PGM_FLAGS_ILC_VALID;
    }
    const cur = this.irq.pgm;
    if (pgm.code === PGM_PER) {
      // A PER event joins whatever program interrupt is pending; only the PER fields change.
      cur.code = (cur.code | PGM_PER) & 0xffff;
      cur.flags = pgm.flags;
      cur.per_address = pgm.per_address;
      cur.per_code = pgm.per_code;
      cur.per_atmid = pgm.per_atmid;
      cur.per_access_id = pgm.per_access_id;
    } else if ((pgm.code & PGM_PER) === 0) {
      // A non-PER code keeps a pending PER indication and replaces the non-PER fields.
      cur.code = (cur.code & PGM_PER) | pgm.code;
      cur.flags = pgm.flags;
      cur.trans_exc_code = pgm.trans_exc_code;
      cur.mon_code = pgm.mon_code;
      cur.data_exc_code = pgm.data_exc_code;
      cur.mon_class_nr = pgm.mon_class_nr;
      cur.exc_access_id = pgm.exc_access_id;
      cur.op_access_id = pgm.op_access_id;
    } else {
      this.irq.pgm = { ...pgm, pad: pgm.pad.slice() };
    }
    this.set(IRQ_PEND_PROG);
    return 0;
  }

  private injectSetPrefix(address: number, ctx: InjectContext): number {
    if (!ctx.stopped) return -EBUSY;
    this.irq.prefix = { address };
    this.set(IRQ_PEND_SET_PREFIX);
    return 0;
  }

  /**
   * __inject_sigp_stop. On a stopped CPU it queues nothing; with STORE_STATUS Linux then stores
   * the status into guest memory. Decision: vsva's vCPU has no guest memory, so that store is
   * not modelled (the injection still returns 0).
   */
  private injectSigpStop(flags: number, ctx: InjectContext): number {
    if ((flags & ~KVM_S390_STOP_FLAG_STORE_STATUS) !== 0) return -EINVAL;
    if (ctx.stopped) return 0;
    if (this.isPending(IRQ_PEND_SIGP_STOP)) return -EBUSY;
    this.irq.stop = { flags };
    this.set(IRQ_PEND_SIGP_STOP);
    return 0;
  }

  private injectExtcall(src: number, ctx: InjectContext): number {
    if (!ctx.vcpuExists(src)) return -EINVAL;
    if (this.isPending(IRQ_PEND_EXT_EXTERNAL)) return -EBUSY;
    this.irq.extcall = { code: src };
    this.set(IRQ_PEND_EXT_EXTERNAL);
    return 0;
  }

  private injectEmergency(src: number, ctx: InjectContext): number {
    if (!ctx.vcpuExists(src)) return -EINVAL;
    this.emergPending.add(src);
    this.set(IRQ_PEND_EXT_EMERGENCY);
    return 0;
  }

  /**
   * __inject_mchk: machine checks accumulate (cr14, mcic and the damage code are or-ed; the
   * failing address and logout are the last one's). The class pending is exigent or repressible
   * by the mcic bits — and neither when the mcic has no such bit, though the parameters stay.
   */
  private injectMchk(m: MchkInfo): void {
    const cur = this.irq.mchk;
    cur.cr14 |= m.cr14;
    cur.mcic |= m.mcic;
    cur.ext_damage_code = (cur.ext_damage_code | m.ext_damage_code) >>> 0;
    cur.failing_storage_address = m.failing_storage_address;
    cur.fixed_logout = m.fixed_logout.slice();
    if ((cur.mcic & MCHK_EX_MASK) !== 0n) this.set(IRQ_PEND_MCHK_EX);
    else if ((cur.mcic & MCHK_REP_MASK) !== 0n) this.set(IRQ_PEND_MCHK_REP);
  }

  // ------------------------------------------------------------ listing (kvm_s390_get_irq_state)

  /**
   * The pending interrupts as kvm_s390_irq records, in the order KVM_S390_GET_IRQ_STATE writes
   * them: the classes in ascending bit order (emergency signals excepted), then one emergency
   * record per sending CPU in ascending address order.
   */
  records(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let c = 0; c < IRQ_PEND_COUNT; c++) {
      if (c === IRQ_PEND_EXT_EMERGENCY || !this.isPending(c)) continue;
      out.push(this.storeLocalIrq(c));
    }
    if (this.isPending(IRQ_PEND_EXT_EMERGENCY)) {
      for (const cpu of [...this.emergPending].sort((a, b) => a - b)) {
        out.push(kvm_s390_irq.encode({ type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: cpu } } }));
      }
    }
    return out;
  }

  /** store_local_irq: one class as a record. */
  private storeLocalIrq(c: number): Uint8Array {
    const p = this.irq;
    switch (c) {
      case IRQ_PEND_MCHK_EX:
      case IRQ_PEND_MCHK_REP:
        return kvm_s390_irq.encode({ type: KVM_S390_MCHK, u: { mchk: p.mchk } });
      case IRQ_PEND_PROG:
        return kvm_s390_irq.encode({ type: KVM_S390_PROGRAM_INT, u: { pgm: p.pgm } });
      case IRQ_PEND_PFAULT_INIT:
        return kvm_s390_irq.encode({ type: KVM_S390_INT_PFAULT_INIT, u: { ext: p.ext } });
      case IRQ_PEND_EXT_EXTERNAL:
        return kvm_s390_irq.encode({ type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: p.extcall } });
      case IRQ_PEND_EXT_CLOCK_COMP:
        return kvm_s390_irq.encode({ type: KVM_S390_INT_CLOCK_COMP });
      case IRQ_PEND_EXT_CPU_TIMER:
        return kvm_s390_irq.encode({ type: KVM_S390_INT_CPU_TIMER });
      case IRQ_PEND_SIGP_STOP:
        return kvm_s390_irq.encode({ type: KVM_S390_SIGP_STOP, u: { stop: p.stop } });
      case IRQ_PEND_RESTART:
        return kvm_s390_irq.encode({ type: KVM_S390_RESTART });
      case IRQ_PEND_SET_PREFIX:
        return kvm_s390_irq.encode({ type: KVM_S390_SIGP_SET_PREFIX, u: { prefix: p.prefix } });
      default:
        // Floating classes are never set in a vCPU's bitmap; Linux would store a zeroed record.
        return kvm_s390_irq.encode({});
    }
  }
}

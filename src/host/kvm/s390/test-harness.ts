/**
 * A small harness for the s390 vCPU tests: a host kernel and a process whose memory holds the
 * buffers that ONE_REG and the IRQ-state ioctls point at, an s390 VM, vCPUs with one-page run
 * areas in a physical memory of their own, and helpers that issue the ioctls as a VMM would
 * (structs passed by pointer, results decoded). It stands in for the generic KVM layer, which
 * it does not use.
 */

import { PhysMem } from '../../../hw/memory.ts';
import {
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_RUN,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  kvm_mp_state,
  kvm_one_reg,
} from '../../../uapi/kvm.ts';
import {
  KVM_GET_FPU,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_S390_GET_IRQ_STATE,
  KVM_S390_IRQ,
  KVM_S390_SET_IRQ_STATE,
  KVM_SET_FPU,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  type KvmFpu,
  type KvmRegs,
  type KvmRunS390,
  type KvmS390Irq,
  type KvmSregs,
  kvm_fpu,
  kvm_regs,
  kvm_run_s390,
  kvm_s390_irq,
  kvm_s390_irq_state,
  kvm_sregs,
} from '../../../uapi/kvm-s390.ts';
import type { StructInput } from '../../../uapi/layout.ts';
import { Kernel } from '../../kernel/kernel.ts';
import { createHostMemory } from '../../kernel/mm.ts';
import type { Process } from '../../kernel/process.ts';
import { IoctlArg } from '../../uaccess.ts';
import { KvmRunArea } from '../arch.ts';
import type { S390RunView } from './run-area.ts';
import type { S390Vcpu } from './vcpu.ts';
import { type S390Vm, s390Arch } from './vm.ts';

export type IrqInput = StructInput<typeof kvm_s390_irq.fields>;

export class S390Harness {
  readonly kernel = new Kernel(createHostMemory());
  readonly proc: Process = this.kernel.spawn('vmm');
  readonly mem = new PhysMem({ name: 'run-areas' });
  readonly vm: S390Vm;
  private nextPage = 0x10_0000;

  constructor() {
    const vm = s390Arch().createVm(0);
    if (typeof vm === 'number') throw new Error(`createVm: ${vm}`);
    this.vm = vm as S390Vm;
  }

  /** Creates vCPU `id` with a fresh one-page run area. */
  vcpu(id: number): S390Vcpu {
    const area = new KvmRunArea(this.mem, [this.nextPage]);
    this.nextPage += 0x1000;
    const v = this.vm.createVcpu(id, area);
    if (typeof v === 'number') throw new Error(`createVcpu(${id}): ${v}`);
    return v;
  }

  // ------------------------------------------------------------ raw ioctls

  /** The ioctl with a struct passed by pointer (a buffer in the caller's memory). */
  ioctl(v: S390Vcpu, req: number, buf: Uint8Array): number {
    return v.ioctl(this.proc, req, IoctlArg.ofBuffer(buf));
  }

  /** The ioctl with a plain number argument. */
  ioctlValue(v: S390Vcpu, req: number, value = 0): number {
    return v.ioctl(this.proc, req, IoctlArg.ofValue(value, this.proc.mm));
  }

  /** Maps `len` bytes of the process's memory; returns the address. */
  alloc(len: number): number {
    const a = this.proc.mm.mmap(len);
    if (a < 0) throw new Error(`mmap: ${a}`);
    return a;
  }

  readUser(addr: number, len: number): Uint8Array {
    const b = this.proc.mm.readUser(addr, len);
    if (b === undefined) throw new Error(`readUser(${addr})`);
    return b;
  }

  writeUser(addr: number, b: Uint8Array): void {
    if (!this.proc.mm.writeUser(addr, b)) throw new Error(`writeUser(${addr})`);
  }

  // ------------------------------------------------------------ register ioctls

  getRegs(v: S390Vcpu): KvmRegs {
    const b = new Uint8Array(kvm_regs.size);
    expectZero(this.ioctl(v, KVM_GET_REGS, b), 'KVM_GET_REGS');
    return kvm_regs.decode(b);
  }

  setRegs(v: S390Vcpu, gprs: readonly bigint[]): void {
    expectZero(this.ioctl(v, KVM_SET_REGS, kvm_regs.encode({ gprs })), 'KVM_SET_REGS');
  }

  getSregs(v: S390Vcpu): KvmSregs {
    const b = new Uint8Array(kvm_sregs.size);
    expectZero(this.ioctl(v, KVM_GET_SREGS, b), 'KVM_GET_SREGS');
    return kvm_sregs.decode(b);
  }

  setSregs(v: S390Vcpu, acrs: readonly number[], crs: readonly bigint[]): void {
    expectZero(this.ioctl(v, KVM_SET_SREGS, kvm_sregs.encode({ acrs, crs })), 'KVM_SET_SREGS');
  }

  getFpu(v: S390Vcpu): KvmFpu {
    const b = new Uint8Array(kvm_fpu.size);
    expectZero(this.ioctl(v, KVM_GET_FPU, b), 'KVM_GET_FPU');
    return kvm_fpu.decode(b);
  }

  setFpu(v: S390Vcpu, fpc: number, fprs: readonly bigint[]): void {
    expectZero(this.ioctl(v, KVM_SET_FPU, kvm_fpu.encode({ fpc, fprs })), 'KVM_SET_FPU');
  }

  /** KVM_GET_ONE_REG into a user buffer of the register's size: [rc, value]. */
  getOneRegRaw(v: S390Vcpu, id: bigint, size = 8): [number, bigint] {
    const addr = this.alloc(4096);
    const rc = this.ioctl(v, KVM_GET_ONE_REG, kvm_one_reg.encode({ id, addr }));
    const b = this.readUser(addr, size);
    const dv = new DataView(b.buffer);
    return [rc, size === 4 ? BigInt(dv.getUint32(0, true)) : dv.getBigUint64(0, true)];
  }

  getOneReg(v: S390Vcpu, id: bigint, size = 8): bigint {
    const [rc, x] = this.getOneRegRaw(v, id, size);
    expectZero(rc, 'KVM_GET_ONE_REG');
    return x;
  }

  setOneRegRaw(v: S390Vcpu, id: bigint, value: bigint, size = 8): number {
    const addr = this.alloc(4096);
    const b = new Uint8Array(size);
    const dv = new DataView(b.buffer);
    if (size === 4) dv.setUint32(0, Number(value), true);
    else dv.setBigUint64(0, value, true);
    this.writeUser(addr, b);
    return this.ioctl(v, KVM_SET_ONE_REG, kvm_one_reg.encode({ id, addr }));
  }

  setOneReg(v: S390Vcpu, id: bigint, value: bigint, size = 8): void {
    expectZero(this.setOneRegRaw(v, id, value, size), 'KVM_SET_ONE_REG');
  }

  // ------------------------------------------------------------ run state

  run(v: S390Vcpu): number {
    return this.ioctlValue(v, KVM_RUN, 0);
  }

  /** KVM_GET_MP_STATE: on s390 the state is the result. */
  mpState(v: S390Vcpu): number {
    return this.ioctl(v, KVM_GET_MP_STATE, new Uint8Array(kvm_mp_state.size));
  }

  setMpState(v: S390Vcpu, state: number): number {
    return this.ioctl(v, KVM_SET_MP_STATE, kvm_mp_state.encode({ mp_state: state }));
  }

  // ------------------------------------------------------------ interrupts

  inject(v: S390Vcpu, irq: IrqInput): number {
    return this.ioctl(v, KVM_S390_IRQ, kvm_s390_irq.encode(irq));
  }

  /** KVM_S390_SET_IRQ_STATE with `irqs` in a user buffer (len defaults to their size). */
  setIrqState(v: S390Vcpu, irqs: readonly IrqInput[], len = irqs.length * kvm_s390_irq.size): number {
    const addr = this.alloc(Math.max(4096, irqs.length * kvm_s390_irq.size));
    irqs.forEach((irq, i) => {
      this.writeUser(addr + i * kvm_s390_irq.size, kvm_s390_irq.encode(irq));
    });
    return this.ioctl(v, KVM_S390_SET_IRQ_STATE, kvm_s390_irq_state.encode({ buf: addr, len }));
  }

  /** KVM_S390_GET_IRQ_STATE into a `len`-byte user buffer: the result and the records stored. */
  getIrqState(
    v: S390Vcpu,
    len = 35 * kvm_s390_irq.size,
  ): { rc: number; irqs: KvmS390Irq[]; raw: Uint8Array } {
    const addr = this.alloc(Math.max(4096, len));
    const rc = this.ioctl(v, KVM_S390_GET_IRQ_STATE, kvm_s390_irq_state.encode({ buf: addr, len }));
    const raw = this.readUser(addr, Math.max(len, 0));
    const n = rc > 0 ? rc / kvm_s390_irq.size : 0;
    const irqs = Array.from({ length: n }, (_, i) => kvm_s390_irq.decode(raw, i * kvm_s390_irq.size));
    return { rc, irqs, raw };
  }

  // ------------------------------------------------------------ the run area as user space sees it

  kvmRun(v: S390Vcpu): KvmRunS390 {
    return kvm_run_s390.decode(v.run.area.read(0, kvm_run_s390.size));
  }

  view(v: S390Vcpu): S390RunView {
    return v.run;
  }
}

function expectZero(rc: number, what: string): void {
  if (rc !== 0) throw new Error(`${what} returned ${rc}`);
}

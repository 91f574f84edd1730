/**
 * A vCPU file (virt/kvm/kvm_main.c, kvm_vcpu_ioctl / kvm_vcpu_mmap): the fd KVM_CREATE_VCPU
 * returns. Its ioctls reach the architecture's vCPU after the generic checks — the caller must be
 * the VM's own process (else EIO) and the request must be a KVM one (_IOC_TYPE 0xAE, else
 * EINVAL); KVM_RUN takes no argument (non-zero → EINVAL). mmap of the file maps the vCPU's
 * `struct kvm_run` page (KVM_GET_VCPU_MMAP_SIZE bytes), shared with the kernel: what the kernel
 * writes there (exit reason, s390 sync registers) user space sees at once, and the reverse.
 *
 * Decision: mapping beyond the run area is refused with EINVAL at mmap time. Linux accepts the
 * mmap and raises SIGBUS on the first access to such a page; vsva has no signals.
 *
 * A vCPU is architected state (registers, run state, pending interrupts), not an instruction
 * interpreter: see arch.ts.
 */

import { EINVAL, EIO } from '../../uapi/errno.ts';
import { _IOC_TYPE } from '../../uapi/ioctl.ts';
import { KVM_RUN, KVMIO } from '../../uapi/kvm.ts';
import type { FileOperations } from '../kernel/file.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg } from '../uaccess.ts';
import type { KvmRunArea, KvmVcpuArch } from './arch.ts';
import type { KvmVm } from './vm.ts';

export class KvmVcpu {
  readonly vm: KvmVm;
  readonly id: number;
  /** Position in creation order (kvm->vcpus[] index; arm64's KVM_IRQ_LINE names vCPUs by it). */
  readonly index: number;
  readonly arch: KvmVcpuArch;
  readonly run: KvmRunArea;

  constructor(vm: KvmVm, id: number, index: number, arch: KvmVcpuArch, run: KvmRunArea) {
    this.vm = vm;
    this.id = id;
    this.index = index;
    this.arch = arch;
    this.run = run;
  }

  /** kvm_vcpu_ioctl */
  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (proc.mm !== this.vm.mm) return -EIO;
    if (_IOC_TYPE(request) !== KVMIO) return -EINVAL;
    if (request === KVM_RUN && arg.value !== 0) return -EINVAL;
    return this.arch.ioctl(proc, request, arg);
  }

  /** kvm_vcpu_mmap + its fault handler: the run-area pages from `pgoff`. */
  mmap(pgoff: number, npages: number): readonly number[] | number {
    if (pgoff + npages > this.run.pages.length) return -EINVAL;
    return this.run.pages.slice(pgoff, pgoff + npages);
  }
}

/** The vCPU file's operations ("kvm-vcpu:<id>" anonymous inode). */
export const kvmVcpuFops: FileOperations = {
  name: 'kvm-vcpu',
  ioctl: (f, req, arg, ctx) => (f.priv as KvmVcpu).ioctl(ctx.proc, req, arg),
  mmap: (f, pgoff, npages) => (f.priv as KvmVcpu).mmap(pgoff, npages),
  release: (f) => (f.priv as KvmVcpu).vm.put(),
};

/**
 * A KVM virtual machine (virt/kvm/kvm_main.c, kvm_vm_ioctl, Linux 5.6–5.10): the fd
 * KVM_CREATE_VM returns. It owns the guest's memory slots, its vCPUs, its irqfds and ioeventfds,
 * and the architecture's VM state (interrupt controller, floating interrupts).
 *
 * Every VM ioctl first checks that the caller is the process that created the VM (the same mm;
 * else EIO), then copies its argument in (EFAULT). KVM_CREATE_VCPU refuses, in order: an id at or
 * above KVM_CAP_MAX_VCPU_ID → EINVAL; a VM that already has KVM_CAP_MAX_VCPUS vCPUs → EINVAL; the
 * architecture's pre-create check; an id in use → EEXIST; then no fd → EMFILE (the vCPU is undone).
 * Ioctls the generic layer does not know go to the architecture.
 *
 * Lifetime: the VM file and every vCPU and device file hold the VM. Closing the VM file releases the irqfds
 * at once (kvm_vm_release); the VM itself — vCPUs, run pages, devices, ioeventfds — goes when the last of
 * these files is closed.
 *
 * Guest memory is the VMM's: `readGuest`/`writeGuest` go through the memory slots into the
 * VMM's address space (the pages its mmap gave), as KVM's kvm_read_guest / kvm_write_guest do.
 */

import { EEXIST, EFAULT, EINVAL, EIO, ENOMEM } from '../../uapi/errno.ts';
import { O_RDWR } from '../../uapi/fcntl.ts';
import {
  KVM_CHECK_EXTENSION,
  KVM_CREATE_DEVICE,
  KVM_CREATE_VCPU,
  KVM_ENABLE_CAP,
  KVM_IOEVENTFD,
  KVM_IRQFD,
  KVM_MEM_READONLY,
  KVM_SET_USER_MEMORY_REGION,
  kvm_enable_cap,
  kvm_ioeventfd,
  kvm_irqfd,
  kvm_userspace_memory_region,
} from '../../uapi/kvm.ts';
import { File, type FileOperations, FMODE_READ, FMODE_WRITE } from '../kernel/file.ts';
import { type Mm, PAGE_SIZE } from '../kernel/mm.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg } from '../uaccess.ts';
import { KvmRunArea, type KvmVmArch } from './arch.ts';
import { type KvmDevice, kvmCreateDevice } from './device.ts';
import { KvmGuestMemory } from './guest-memory.ts';
import { IoeventfdSet, type KvmBus } from './ioeventfd.ts';
import { IrqfdSet } from './irqfd.ts';
import { type Kvm, kvmCheckExtension } from './kvm.ts';
import { type KvmMemslot, KvmMemslots } from './memslots.ts';
import { KvmVcpu, kvmVcpuFops } from './vcpu.ts';

export class KvmVm {
  readonly kvm: Kvm;
  readonly arch: KvmVmArch;
  /** The creating process's address space (kvm->mm). */
  readonly mm: Mm;
  readonly pid: number;
  readonly memslots: KvmMemslots;
  readonly irqfds: IrqfdSet;
  readonly ioeventfds = new IoeventfdSet();
  /** vCPUs by id. */
  readonly vcpus = new Map<number, KvmVcpu>();
  /** vCPUs in creation order (kvm->vcpus[]). */
  readonly vcpuList: KvmVcpu[] = [];
  /** In-kernel devices (KVM_CREATE_DEVICE), in creation order. */
  readonly devices: KvmDevice[] = [];
  /** Guest-physical memory as the guest's CPUs see it (through the memory slots). */
  readonly guestMemory: KvmGuestMemory = new KvmGuestMemory(this);
  /** References: the VM file and each vCPU and device file. */
  private refs = 1;
  destroyed = false;

  constructor(kvm: Kvm, arch: KvmVmArch, proc: Process) {
    this.kvm = kvm;
    this.arch = arch;
    this.mm = proc.mm;
    this.pid = proc.pid;
    this.memslots = new KvmMemslots(kvm.arch, arch);
    this.irqfds = new IrqfdSet(arch);
  }

  /** The VM file ("kvm-vm" anonymous inode), holding the VM's first reference. */
  openFile(): File {
    return new File(kvmVmFops, O_RDWR, FMODE_READ | FMODE_WRITE, this);
  }

  /** kvm_vm_ioctl */
  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (proc.mm !== this.mm) return -EIO;
    switch (request) {
      case KVM_CREATE_VCPU:
        return this.createVcpu(proc, arg.value % 2 ** 32);
      case KVM_ENABLE_CAP: {
        const c = arg.ptr.copyStruct(kvm_enable_cap);
        if (c === undefined) return -EFAULT;
        return this.arch.enableCap?.(c.cap, c.flags, c.args) ?? -EINVAL;
      }
      case KVM_SET_USER_MEMORY_REGION: {
        const region = arg.ptr.copyStruct(kvm_userspace_memory_region);
        if (region === undefined) return -EFAULT;
        const r = this.memslots.set(region);
        if (typeof r !== 'number') this.guestMemory.flush();
        return typeof r === 'number' ? r : 0;
      }
      case KVM_IRQFD: {
        const a = arg.ptr.copyStruct(kvm_irqfd);
        return a === undefined ? -EFAULT : this.irqfds.ioctl(proc, a);
      }
      case KVM_IOEVENTFD: {
        const a = arg.ptr.copyStruct(kvm_ioeventfd);
        return a === undefined ? -EFAULT : this.ioeventfds.ioctl(proc, a);
      }
      case KVM_CREATE_DEVICE:
        return kvmCreateDevice(this, proc, arg, this.devices, () => this.refs++);
      case KVM_CHECK_EXTENSION:
        return kvmCheckExtension(this.kvm.arch, this.arch, arg.value);
      default:
        return this.arch.vmIoctl?.(proc, request, arg) ?? -EINVAL;
    }
  }

  /** kvm_vm_ioctl_create_vcpu */
  private createVcpu(proc: Process, id: number): number {
    if (id >= this.arch.maxVcpuId) return -EINVAL;
    if (this.vcpus.size >= this.arch.maxVcpus) return -EINVAL;
    const pre = this.arch.precreateVcpu?.(id) ?? 0;
    if (pre !== 0) return pre;
    if (this.vcpus.has(id)) return -EEXIST;
    const run = this.allocRunArea();
    if (run === undefined) return -ENOMEM;
    const varch = this.arch.createVcpu(id, run, this);
    if (typeof varch === 'number') {
      this.freeRunArea(run);
      return varch;
    }
    const vcpu = new KvmVcpu(this, id, this.vcpuList.length, varch, run);
    this.vcpus.set(id, vcpu);
    this.vcpuList.push(vcpu);
    this.refs++;
    const fd = proc.installFd(new File(kvmVcpuFops, O_RDWR, FMODE_READ | FMODE_WRITE, vcpu), true);
    if (fd < 0) {
      // The file's release already dropped the VM reference; undo the vCPU.
      this.vcpus.delete(id);
      this.vcpuList.pop();
      varch.release();
      this.freeRunArea(run);
    }
    return fd;
  }

  private allocRunArea(): KvmRunArea | undefined {
    const { mem, alloc } = this.kvm.kernel.host;
    const pages: number[] = [];
    for (let i = 0; i < this.arch.runPages; i++) {
      const pa = alloc.alloc(PAGE_SIZE, 12);
      if (pa === undefined) {
        for (const p of pages) alloc.free(p, PAGE_SIZE);
        return undefined;
      }
      mem.discard(pa, PAGE_SIZE);
      pages.push(pa);
    }
    return new KvmRunArea(mem, pages);
  }

  private freeRunArea(run: KvmRunArea): void {
    const { mem, alloc } = this.kvm.kernel.host;
    for (const pa of run.pages) {
      mem.discard(pa, PAGE_SIZE);
      alloc.free(pa, PAGE_SIZE);
    }
  }

  /** The vCPU with index `i` in creation order (kvm_get_vcpu). */
  vcpuAt(i: number): KvmVcpu | undefined {
    return this.vcpuList[i];
  }

  // ------------------------------------------------------------ guest memory

  /** gfn_to_hva for a byte address: the VMM address behind `gpa`, if a slot holds it. */
  gpaToHva(gpa: number): number | undefined {
    const s = this.memslots.find(gpa);
    return s === undefined ? undefined : s.hva + (gpa - s.gpa);
  }

  /** The slot-sized pieces of [gpa, gpa+len), or undefined if any byte has no slot. */
  private pieces(gpa: number, len: number): { slot: KvmMemslot; hva: number; len: number }[] | undefined {
    const out: { slot: KvmMemslot; hva: number; len: number }[] = [];
    let a = gpa;
    const end = gpa + len;
    while (a < end) {
      const s = this.memslots.find(a);
      if (s === undefined) return undefined;
      const n = Math.min(end, s.gpa + s.size) - a;
      out.push({ slot: s, hva: s.hva + (a - s.gpa), len: n });
      a += n;
    }
    return out;
  }

  /** kvm_read_guest: `len` bytes at `gpa`, or undefined (no slot, or the VMM's memory is not readable there). */
  readGuest(gpa: number, len: number): Uint8Array | undefined {
    const ps = this.pieces(gpa, len);
    if (ps === undefined) return undefined;
    const out = new Uint8Array(len);
    let done = 0;
    for (const p of ps) {
      const b = this.mm.readUser(p.hva, p.len);
      if (b === undefined) return undefined;
      out.set(b, done);
      done += p.len;
    }
    return out;
  }

  /** kvm_write_guest: all of `bytes` at `gpa`, or nothing (false: no slot, a read-only slot, or unwritable VMM memory). */
  writeGuest(gpa: number, bytes: Uint8Array): boolean {
    const ps = this.pieces(gpa, bytes.length);
    if (ps === undefined) return false;
    if (ps.some((p) => (p.slot.flags & KVM_MEM_READONLY) !== 0 || !this.mm.accessible(p.hva, p.len, 'write')))
      return false;
    let done = 0;
    for (const p of ps) {
      if (!this.mm.writeUser(p.hva, bytes.subarray(done, done + p.len))) return false;
      done += p.len;
    }
    return true;
  }

  /**
   * A guest write that left the guest as an I/O access (MMIO outside RAM, or an s390 virtio-ccw
   * notification): true when an ioeventfd took it; false when it would exit to the VMM.
   */
  ioWrite(bus: KvmBus, addr: number, data: Uint8Array): boolean {
    return this.ioeventfds.write(bus, addr, data);
  }

  /** A guest MMIO write of `data` (1, 2, 4 or 8 bytes, little-endian) at `gpa`. */
  mmioWrite(gpa: number, data: Uint8Array): boolean {
    return this.ioWrite('mmio', gpa, data);
  }

  // ------------------------------------------------------------ lifetime

  /** kvm_vm_release: the VM file is gone. */
  releaseFile(): void {
    this.irqfds.releaseAll();
    this.put();
  }

  /** kvm_put_kvm */
  put(): void {
    this.refs--;
    if (this.refs === 0) this.destroy();
  }

  /** kvm_destroy_vm */
  private destroy(): void {
    this.ioeventfds.releaseAll();
    for (const v of this.vcpuList) {
      v.arch.release();
      this.freeRunArea(v.run);
    }
    this.vcpus.clear();
    this.vcpuList.length = 0;
    for (const d of this.devices) d.arch.destroy?.();
    this.devices.length = 0;
    this.arch.release?.();
    this.destroyed = true;
    this.kvm.forget(this);
  }
}

const kvmVmFops: FileOperations = {
  name: 'kvm-vm',
  ioctl: (f, req, arg, ctx) => (f.priv as KvmVm).ioctl(ctx.proc, req, arg),
  release: (f) => (f.priv as KvmVm).releaseFile(),
};

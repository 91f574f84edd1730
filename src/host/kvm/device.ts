/**
 * KVM's in-kernel devices (virt/kvm/kvm_main.c, kvm_ioctl_create_device and kvm_device_fops):
 * KVM_CREATE_DEVICE on a VM makes a device of an architecture's type — on arm64 the GICv3 model
 * (arm64/vgic.ts) — and returns an fd whose KVM_SET/GET/HAS_DEVICE_ATTR ioctls configure it.
 *
 * KVM_CREATE_DEVICE: argument not readable → EFAULT; a type the architecture lacks → ENODEV;
 * KVM_CREATE_DEVICE_TEST → 0 with nothing made; the architecture's refusal (EEXIST, EBUSY, ...);
 * no fd → EMFILE (the device is undone). The fd (close-on-exec) is written back into `fd`; when
 * that copy fails the call is EFAULT and the device and its fd remain, as in Linux.
 *
 * Device-fd ioctls: a caller other than the VM's process → EIO; the three attribute ioctls copy
 * struct kvm_device_attr in (EFAULT) and go to the device; anything else → ENOTTY. The device fd
 * holds the VM; devices are destroyed with the VM.
 */

import { EFAULT, EIO, ENODEV, ENOTTY } from '../../uapi/errno.ts';
import { O_RDWR } from '../../uapi/fcntl.ts';
import {
  KVM_CREATE_DEVICE_TEST,
  KVM_GET_DEVICE_ATTR,
  KVM_HAS_DEVICE_ATTR,
  KVM_SET_DEVICE_ATTR,
  kvm_create_device,
  kvm_device_attr,
} from '../../uapi/kvm.ts';
import { File, type FileOperations, FMODE_READ, FMODE_WRITE } from '../kernel/file.ts';
import type { Process } from '../kernel/process.ts';
import { type IoctlArg, UserPtr } from '../uaccess.ts';
import type { KvmDeviceArch, KvmDeviceAttr } from './arch.ts';
import type { KvmVm } from './vm.ts';

export class KvmDevice {
  readonly vm: KvmVm;
  readonly type: number;
  readonly arch: KvmDeviceArch;

  constructor(vm: KvmVm, type: number, arch: KvmDeviceArch) {
    this.vm = vm;
    this.type = type;
    this.arch = arch;
  }

  /** kvm_device_ioctl */
  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (proc.mm !== this.vm.mm) return -EIO;
    if (request !== KVM_SET_DEVICE_ATTR && request !== KVM_GET_DEVICE_ATTR && request !== KVM_HAS_DEVICE_ATTR)
      return -ENOTTY;
    const a = arg.ptr.copyStruct(kvm_device_attr);
    if (a === undefined) return -EFAULT;
    const attr: KvmDeviceAttr = {
      flags: a.flags,
      group: a.group,
      attr: a.attr,
      // The value pointer is an address in the caller's memory, wherever the struct itself was.
      addr: UserPtr.fromU64(proc.mm, a.addr),
    };
    if (request === KVM_SET_DEVICE_ATTR) return this.arch.setAttr(attr);
    if (request === KVM_GET_DEVICE_ATTR) return this.arch.getAttr(attr);
    return this.arch.hasAttr(attr);
  }
}

const kvmDeviceFops: FileOperations = {
  name: 'kvm-device',
  ioctl: (f, req, arg, ctx) => (f.priv as KvmDevice).ioctl(ctx.proc, req, arg),
  release: (f) => (f.priv as KvmDevice).vm.put(),
};

/**
 * KVM_CREATE_DEVICE on `vm`: 0 (and the fd in the caller's struct), or -errno. `hold`/`forget`
 * take and drop the VM's reference for the device fd and its place in the VM's device list.
 */
export function kvmCreateDevice(
  vm: KvmVm,
  proc: Process,
  arg: IoctlArg,
  devices: KvmDevice[],
  hold: () => void,
): number {
  const cd = arg.ptr.copyStruct(kvm_create_device);
  if (cd === undefined) return -EFAULT;
  const test = (cd.flags & KVM_CREATE_DEVICE_TEST) !== 0;
  const made = vm.arch.createDevice?.(cd.type, test) ?? -ENODEV;
  if (typeof made === 'number') return made;
  const dev = new KvmDevice(vm, cd.type, made);
  devices.push(dev);
  hold();
  const fd = proc.installFd(new File(kvmDeviceFops, O_RDWR, FMODE_READ | FMODE_WRITE, dev), true);
  if (fd < 0) {
    // The file's release already dropped the VM reference; undo the device.
    devices.splice(devices.indexOf(dev), 1);
    made.destroy?.();
    return fd;
  }
  return arg.ptr.copyTo(kvm_create_device.encode({ ...cd, fd })) ? 0 : -EFAULT;
}

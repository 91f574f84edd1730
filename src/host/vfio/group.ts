/**
 * VFIO group files, /dev/vfio/<iommu group id> (vfio.c, Linux ~5.10): one open at a time; the
 * group joins a container (VFIO_GROUP_SET_CONTAINER), leaves it (UNSET_CONTAINER, or when the
 * group file and every device file of the group are closed), reports whether it is viable (every
 * member device bound to a VFIO driver, to no driver, or to pci-stub) and hands out device files
 * (GET_DEVICE_FD) once the container has an IOMMU backend and the group is viable. The checks come
 * in vfio.c's order.
 */

import { EBADF, EBUSY, EFAULT, EINVAL, ENODEV, ENOTTY } from '../../uapi/errno.ts';
import { O_RDWR } from '../../uapi/fcntl.ts';
import {
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
} from '../../uapi/vfio.ts';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  vfio_group_status,
} from '../../uapi/vfio-device.ts';
import type { IommuGroup } from '../iommu/core.ts';
import type { IommuDevice } from '../iommu/types.ts';
import { File, type FileOperations, FMODE_READ, FMODE_WRITE } from '../kernel/file.ts';
import type { Process } from '../kernel/process.ts';
import { type IoctlArg, strndupUser } from '../uaccess.ts';
import { containerOfFile, type VfioContainer } from './container.ts';
import { vfioDeviceFile } from './device.ts';
import type { Vfio, VfioDevice } from './vfio.ts';

const PAGE_SIZE = 4096;

export class VfioGroup {
  readonly vfio: Vfio;
  readonly iommuGroup: IommuGroup;
  readonly devices: VfioDevice[] = [];
  container: VfioContainer | undefined = undefined;
  /** container_users: the group file's membership plus one per open device file. */
  containerUsers = 0;
  private opened = false;

  constructor(vfio: Vfio, iommuGroup: IommuGroup) {
    this.vfio = vfio;
    this.iommuGroup = iommuGroup;
  }

  get path(): string {
    return `/dev/vfio/${this.iommuGroup.id}`;
  }

  get isOpen(): boolean {
    return this.opened;
  }

  deviceOf(dev: IommuDevice): VfioDevice | undefined {
    return this.devices.find((d) => d.dev === dev);
  }

  addDevice(d: VfioDevice): void {
    this.devices.push(d);
  }

  removeDevice(d: VfioDevice): void {
    const i = this.devices.indexOf(d);
    if (i >= 0) this.devices.splice(i, 1);
  }

  /** vfio_group_viable: every device of the IOMMU group is viable. */
  viable(): boolean {
    return this.iommuGroup.devices.every((dev) => this.vfio.deviceViable(this, dev));
  }

  /** vfio_group_fops_open: -EBUSY when already open, or while a previous open's container is still set. */
  open(): File | number {
    if (this.opened) return -EBUSY;
    if (this.container !== undefined) return -EBUSY;
    this.opened = true;
    return new File(groupFops, O_RDWR, FMODE_READ | FMODE_WRITE, this);
  }

  /** vfio_group_fops_release */
  release(): void {
    this.tryDissolveContainer();
    this.opened = false;
  }

  // ------------------------------------------------------------ container membership

  /** vfio_group_set_container */
  setContainer(proc: Process, fd: number): number {
    if (this.containerUsers > 0) return -EINVAL;
    const f = proc.fget(fd);
    if (f === undefined) return -EBADF;
    try {
      const container = containerOfFile(f);
      if (container === undefined) return -EINVAL;
      const r = container.addGroup(this);
      if (r !== 0) return r;
      this.container = container;
      this.containerUsers++;
      return 0;
    } finally {
      f.put();
    }
  }

  /** vfio_group_unset_container: only the transition 1 → 0 users is allowed. */
  unsetContainer(): number {
    if (this.containerUsers === 0) return -EINVAL;
    if (this.containerUsers !== 1) return -EBUSY;
    this.containerUsers = 0;
    this.leaveContainer();
    return 0;
  }

  /** vfio_group_try_dissolve_container: the last user gone takes the group out of its container. */
  tryDissolveContainer(): void {
    if (this.containerUsers === 0) return;
    this.containerUsers--;
    if (this.containerUsers === 0) this.leaveContainer();
  }

  private leaveContainer(): void {
    const c = this.container;
    if (c === undefined) return;
    this.container = undefined;
    c.removeGroup(this);
  }

  // ------------------------------------------------------------ devices

  /** vfio_group_get_device_fd */
  getDeviceFd(proc: Process, name: string): number {
    if (this.containerUsers === 0 || this.container?.backend === undefined || !this.viable()) return -EINVAL;
    const device = this.devices.find((d) => d.ops.name === name);
    if (device === undefined) return -ENODEV;
    const r = device.ops.open();
    if (r !== 0) return r;
    device.opens++;
    const file = vfioDeviceFile({
      ops: device.ops,
      closed: () => {
        device.opens--;
        this.tryDissolveContainer();
      },
    });
    this.containerUsers++;
    // get_unused_fd_flags(O_CLOEXEC); a full table releases the file (and with it the device).
    return proc.installFd(file, true);
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case VFIO_GROUP_GET_STATUS: {
        const minsz = vfio_group_status.offsetofend('flags');
        const head = arg.ptr.copyFrom(minsz);
        if (head === undefined) return -EFAULT;
        if (vfio_group_status.decode(head).argsz < minsz) return -EINVAL;
        let flags = 0;
        if (this.viable()) flags |= VFIO_GROUP_FLAGS_VIABLE;
        if (this.container !== undefined) flags |= VFIO_GROUP_FLAGS_CONTAINER_SET;
        // argsz is copied back as the user gave it.
        const out = vfio_group_status.encode({ argsz: vfio_group_status.decode(head).argsz, flags });
        return arg.ptr.copyTo(out) ? 0 : -EFAULT;
      }
      case VFIO_GROUP_SET_CONTAINER: {
        const fd = arg.ptr.getS32();
        if (fd === undefined) return -EFAULT;
        if (fd < 0) return -EINVAL;
        return this.setContainer(proc, fd);
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        return this.unsetContainer();
      case VFIO_GROUP_GET_DEVICE_FD: {
        const name = strndupUser(arg.ptr, PAGE_SIZE);
        if (typeof name === 'number') return name;
        return this.getDeviceFd(proc, name);
      }
      default:
        return -ENOTTY;
    }
  }
}

const groupFops: FileOperations = {
  name: 'vfio-group',
  ioctl: (f, req, arg, ctx) => (f.priv as VfioGroup).ioctl(ctx.proc, req, arg),
  release: (f) => (f.priv as VfioGroup).release(),
};

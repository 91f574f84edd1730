/**
 * VFIO device files (vfio.c's vfio_device_fops): what a VFIO bus driver (vfio-pci) provides for
 * each device it claims, and the anonymous "[vfio-device]" file VFIO_GROUP_GET_DEVICE_FD hands
 * out — opened with O_RDWR and close-on-exec, seekable and pread/pwrite-able (VFIO sets
 * FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE itself, as anon inodes have none). A file operation
 * the driver lacks is EINVAL, as in vfio.c.
 */

import { EINVAL } from '../../uapi/errno.ts';
import { O_RDWR } from '../../uapi/fcntl.ts';
import {
  File,
  type FileOperations,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_READ,
  FMODE_WRITE,
  type IoResult,
} from '../kernel/file.ts';
import type { Process } from '../kernel/process.ts';
import type { IoctlArg, UserPtr } from '../uaccess.ts';

/** struct vfio_device_ops, for one device. */
export interface VfioDeviceOps {
  /** dev_name(): what VFIO_GROUP_GET_DEVICE_FD matches (e.g. "0000:00:04.0"). */
  readonly name: string;
  /** The first open of a device fd enables the device; 0 or -errno. */
  open(): number;
  release(): void;
  ioctl?(proc: Process, request: number, arg: IoctlArg): number;
  read?(buf: UserPtr, count: number, pos: number): IoResult;
  write?(buf: UserPtr, count: number, pos: number): IoResult;
}

/** What the device file needs from the VFIO core when it goes away. */
export interface VfioDeviceFileOwner {
  readonly ops: VfioDeviceOps;
  /** vfio_device_fops_release: after the driver's release, the group may dissolve its container. */
  closed(): void;
}

/** A read or write at `pos`, or at the file position (advanced by what was transferred). */
function rw(f: File, pos: number | null, op: (p: number) => IoResult): IoResult {
  const at = pos ?? f.pos;
  const r = op(at);
  if (pos === null && typeof r === 'number' && r > 0) f.pos = at + r;
  return r;
}

const deviceFops: FileOperations = {
  name: '[vfio-device]',
  ioctl: (f, req, arg, ctx) => {
    const ops = (f.priv as VfioDeviceFileOwner).ops;
    return ops.ioctl === undefined ? -EINVAL : ops.ioctl(ctx.proc, req, arg);
  },
  read: (f, buf, count, pos) => {
    const ops = (f.priv as VfioDeviceFileOwner).ops;
    return ops.read === undefined ? -EINVAL : rw(f, pos, (p) => ops.read!(buf, count, p));
  },
  write: (f, buf, count, pos) => {
    const ops = (f.priv as VfioDeviceFileOwner).ops;
    return ops.write === undefined ? -EINVAL : rw(f, pos, (p) => ops.write!(buf, count, p));
  },
  release: (f) => {
    const owner = f.priv as VfioDeviceFileOwner;
    owner.ops.release();
    owner.closed();
  },
};

/** anon_inode_getfile("[vfio-device]", ..., O_RDWR) with the f_mode bits VFIO adds. */
export function vfioDeviceFile(owner: VfioDeviceFileOwner): File {
  return new File(
    deviceFops,
    O_RDWR,
    FMODE_READ | FMODE_WRITE | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE,
    owner,
  );
}

/** The device owner behind a file, if it is a VFIO device file. */
export function vfioDeviceOfFile(f: File): VfioDeviceFileOwner | undefined {
  return f.ops === deviceFops ? (f.priv as VfioDeviceFileOwner) : undefined;
}

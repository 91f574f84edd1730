/**
 * The record of every ioctl the VMM's VFIO code issued (container, groups, device, and KVM_IRQFD
 * on the VM fd): the request's name, the argument bytes as passed, the struct decoded from those
 * bytes after the call (what the kernel saw, plus what it wrote back), the return value and its
 * errno name. Tests and the scenario report read it to show that the VMM issued, say,
 * VFIO_IOMMU_SET_PASID_TABLE with the struct the guest state implies. A refusal is recorded like
 * any result: nothing here throws.
 */

import type { Process } from '../../host/kernel/process.ts';
import { errnoName } from '../../uapi/errno.ts';

export interface IoctlLogEntry {
  /** Position in the log (0-based). */
  readonly seq: number;
  readonly fd: number;
  /** The request's uAPI name, e.g. "VFIO_IOMMU_SET_PASID_TABLE". */
  readonly request: string;
  /** The argument: the bytes passed (a copy), or the integer for value arguments. */
  readonly arg: Uint8Array | number;
  /** The argument decoded (undefined for value arguments). */
  readonly decoded: unknown;
  /** The ioctl's return value (>= 0, or -errno). */
  readonly ret: number;
  /** The errno name of a failure ("EINVAL"), undefined on success. */
  readonly errno: string | undefined;
}

export class IoctlLog {
  readonly entries: IoctlLogEntry[] = [];
  /** Ioctls issued per request name. */
  readonly counts = new Map<string, number>();
  /** Failed ioctls. */
  failures = 0;

  /** Total ioctls issued. */
  get ioctls(): number {
    return this.entries.length;
  }

  /**
   * Issues ioctl(fd, request, arg) on `proc` and records it. `decode` turns the argument bytes
   * (after the call) into the struct logged.
   */
  issue(
    proc: Process,
    fd: number,
    name: string,
    request: number,
    arg: Uint8Array | number,
    decode?: (b: Uint8Array) => unknown,
  ): number {
    const ret = proc.ioctl(fd, request, arg);
    const bytes = typeof arg === 'number' ? arg : arg.slice();
    const decoded = typeof arg === 'number' || decode === undefined ? undefined : decode(arg);
    const errno = ret < 0 ? (errnoName(ret) ?? `E${-ret}`) : undefined;
    if (ret < 0) this.failures++;
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    this.entries.push({ seq: this.entries.length, fd, request: name, arg: bytes, decoded, ret, errno });
    return ret;
  }

  /** The entries of one request name, in order. */
  of(name: string): IoctlLogEntry[] {
    return this.entries.filter((e) => e.request === name);
  }

  /** The last entry of a request name. */
  last(name: string): IoctlLogEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--)
      if (this.entries[i]!.request === name) return this.entries[i];
    return undefined;
  }
}

/**
 * User memory as the kernel reaches it: copy_from_user, copy_to_user, get_user/put_user. A user
 * pointer is an address in some user memory — either the calling process's address space (an
 * `Mm`) or a byte buffer the caller handed to a syscall (standing for a buffer in its own
 * memory, as a C program passes `&arg`). A range that is not entirely accessible is a fault: the
 * caller returns EFAULT.
 *
 * Decision: a faulting copy transfers nothing (Linux may copy a prefix before the fault; no seed
 * behaviour depends on that prefix, and all-or-nothing keeps "state unchanged after a refusal").
 */

import { EFAULT, EINVAL } from '../uapi/errno.ts';
import type { Fields, StructLayout, StructValue } from '../uapi/layout.ts';

/** Anything that holds user bytes at addresses. */
export interface UserMemory {
  /** A copy of [addr, addr + len), or undefined if any byte is inaccessible. */
  readUser(addr: number, len: number): Uint8Array | undefined;
  /** Writes all of `bytes` at addr, or nothing (false) if any byte is inaccessible. */
  writeUser(addr: number, bytes: Uint8Array): boolean;
}

/** A caller's buffer as user memory: addresses 0..length-1. */
export class BufferUserMemory implements UserMemory {
  readonly buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  private inside(addr: number, len: number): boolean {
    return (
      Number.isInteger(addr) &&
      Number.isInteger(len) &&
      addr >= 0 &&
      len >= 0 &&
      addr + len <= this.buf.length
    );
  }

  readUser(addr: number, len: number): Uint8Array | undefined {
    return this.inside(addr, len) ? this.buf.slice(addr, addr + len) : undefined;
  }

  writeUser(addr: number, bytes: Uint8Array): boolean {
    if (!this.inside(addr, bytes.length)) return false;
    this.buf.set(bytes, addr);
    return true;
  }
}

/** A `void __user *`: user memory and an address in it. */
export class UserPtr {
  readonly mem: UserMemory;
  readonly addr: number;

  constructor(mem: UserMemory, addr: number) {
    this.mem = mem;
    this.addr = addr;
  }

  /** A pointer to the start of a caller's buffer. */
  static ofBuffer(buf: Uint8Array): UserPtr {
    return new UserPtr(new BufferUserMemory(buf), 0);
  }

  /**
   * A pointer from a u64 user address inside an argument struct (`__u64 addr`). Addresses beyond
   * 2^53 are far above any user mapping: they become one that always faults (-1).
   */
  static fromU64(mem: UserMemory, addr: bigint): UserPtr {
    return new UserPtr(mem, addr <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(addr) : -1);
  }

  /** `ptr + n` */
  add(n: number): UserPtr {
    return new UserPtr(this.mem, this.addr + n);
  }

  /** copy_from_user: `len` bytes, or undefined (EFAULT). */
  copyFrom(len: number): Uint8Array | undefined {
    return this.mem.readUser(this.addr, len);
  }

  /** copy_from_user of a whole struct, decoded; undefined (EFAULT) when it cannot be read. */
  copyStruct<F extends Fields>(layout: StructLayout<F>): StructValue<F> | undefined {
    const b = this.copyFrom(layout.size);
    return b === undefined ? undefined : layout.decode(b);
  }

  /** copy_to_user: true, or false (EFAULT) with nothing written. */
  copyTo(bytes: Uint8Array): boolean {
    return this.mem.writeUser(this.addr, bytes);
  }

  /** get_user of a u32 at `ptr + off`; undefined on a fault. */
  getU32(off = 0): number | undefined {
    const b = this.mem.readUser(this.addr + off, 4);
    return b === undefined ? undefined : new DataView(b.buffer).getUint32(0, true);
  }

  /** get_user of an s32 (an `int`) at `ptr + off`. */
  getS32(off = 0): number | undefined {
    const b = this.mem.readUser(this.addr + off, 4);
    return b === undefined ? undefined : new DataView(b.buffer).getInt32(0, true);
  }

  /** get_user of a u64 at `ptr + off`. */
  getU64(off = 0): bigint | undefined {
    const b = this.mem.readUser(this.addr + off, 8);
    return b === undefined ? undefined : new DataView(b.buffer).getBigUint64(0, true);
  }

  /** put_user of a u32 at `ptr + off`. */
  putU32(value: number, off = 0): boolean {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    return this.mem.writeUser(this.addr + off, b);
  }

  /** put_user of a u64 at `ptr + off`. */
  putU64(value: bigint, off = 0): boolean {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    return this.mem.writeUser(this.addr + off, b);
  }
}

/**
 * The `unsigned long arg` of an ioctl: one value, read either as a number (an `int` argument such
 * as a vCPU id) or as a pointer into user memory. A caller that passes a byte buffer gets both: a
 * pointer to it, and as value the address a C program's buffer would have (`BUFFER_ARG_ADDRESS`,
 * on the stack), which an `int`-taking ioctl sees as a large, meaningless number.
 */
export const BUFFER_ARG_ADDRESS = 0x7ffc_0000_0000;

export class IoctlArg {
  readonly value: number;
  readonly ptr: UserPtr;

  constructor(value: number, ptr: UserPtr) {
    this.value = value;
    this.ptr = ptr;
  }

  static ofBuffer(buf: Uint8Array): IoctlArg {
    return new IoctlArg(BUFFER_ARG_ADDRESS, UserPtr.ofBuffer(buf));
  }

  /** A plain number, which is also a user address in `mm`. */
  static ofValue(value: number, mm: UserMemory): IoctlArg {
    return new IoctlArg(value, new UserPtr(mm, value));
  }
}

/**
 * strndup_user: the NUL-terminated string at `ptr`, at most `max` bytes including the NUL.
 * -EFAULT when a byte cannot be read, -EINVAL when no NUL comes within `max` bytes.
 */
export function strndupUser(ptr: UserPtr, max: number): string | number {
  const bytes: number[] = [];
  for (let i = 0; i < max; i++) {
    const b = ptr.add(i).copyFrom(1);
    if (b === undefined) return -EFAULT;
    if (b[0] === 0) return new TextDecoder().decode(Uint8Array.from(bytes));
    bytes.push(b[0]!);
  }
  return -EINVAL;
}

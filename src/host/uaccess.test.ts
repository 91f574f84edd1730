/**
 * Tests of user memory access (uaccess.ts): buffer-backed and mm-backed user pointers,
 * copy_from_user/copy_to_user/get_user/put_user in little-endian, EFAULT for any range not
 * entirely accessible with nothing transferred (all-or-nothing), and the ioctl argument as a
 * value and as a pointer.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../uapi/fcntl.ts';
import { createHostMemory, Mm, PAGE_SIZE } from './kernel/mm.ts';
import { BUFFER_ARG_ADDRESS, BufferUserMemory, IoctlArg, UserPtr } from './uaccess.ts';

describe('BufferUserMemory', () => {
  it('reads and writes inside the buffer, addresses 0..length-1', () => {
    const buf = new Uint8Array([1, 2, 3, 4, 5]);
    const m = new BufferUserMemory(buf);
    expect([...m.readUser(1, 3)!]).toEqual([2, 3, 4]);
    expect([...m.readUser(0, 5)!]).toEqual([1, 2, 3, 4, 5]);
    expect(m.readUser(5, 0)).toEqual(new Uint8Array(0));
    expect(m.writeUser(3, new Uint8Array([9, 9]))).toBe(true);
    expect([...buf]).toEqual([1, 2, 3, 9, 9]);
  });

  it('a read returns a copy, not a view', () => {
    const buf = new Uint8Array([1, 2]);
    const got = new BufferUserMemory(buf).readUser(0, 2)!;
    got[0] = 7;
    expect(buf[0]).toBe(1);
  });

  it('refuses ranges that are not entirely inside, writing nothing', () => {
    const buf = new Uint8Array([1, 2, 3, 4]);
    const m = new BufferUserMemory(buf);
    for (const [addr, len] of [
      [2, 3],
      [-1, 2],
      [4, 1],
      [0.5, 1],
      [0, 1.5],
      [0, -1],
      [Number.NaN, 1],
    ] as const) {
      expect(m.readUser(addr, len), `read ${addr},${len}`).toBeUndefined();
    }
    expect(m.writeUser(3, new Uint8Array([9, 9]))).toBe(false);
    expect(m.writeUser(-1, new Uint8Array([9]))).toBe(false);
    expect([...buf]).toEqual([1, 2, 3, 4]);
  });

  it('property: a write lands iff it fits, and nothing outside changes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 64 }),
        fc.integer({ min: -8, max: 72 }),
        fc.uint8Array({ maxLength: 24 }),
        (size, addr, data) => {
          const buf = new Uint8Array(size).fill(0xaa);
          const m = new BufferUserMemory(buf);
          const fits = addr >= 0 && addr + data.length <= size;
          expect(m.writeUser(addr, data)).toBe(fits);
          const want = new Uint8Array(size).fill(0xaa);
          if (fits) want.set(data, addr);
          expect(buf).toEqual(want);
          if (fits) expect(m.readUser(addr, data.length)).toEqual(data);
        },
      ),
    );
  });
});

describe('UserPtr on a buffer', () => {
  it('copyFrom/copyTo at an offset (add)', () => {
    const buf = new Uint8Array(8);
    const p = UserPtr.ofBuffer(buf);
    expect(p.addr).toBe(0);
    expect(p.add(4).copyTo(new Uint8Array([1, 2, 3, 4]))).toBe(true);
    expect([...buf]).toEqual([0, 0, 0, 0, 1, 2, 3, 4]);
    expect([...p.add(3).copyFrom(2)!]).toEqual([0, 1]);
    expect(p.add(5).copyTo(new Uint8Array([1, 2, 3, 4]))).toBe(false);
    expect([...buf]).toEqual([0, 0, 0, 0, 1, 2, 3, 4]);
    expect(p.add(5).copyFrom(4)).toBeUndefined();
    expect(p.add(-1).copyFrom(1)).toBeUndefined();
  });

  it('get/put of u32, s32 and u64 are little-endian', () => {
    const buf = new Uint8Array(16);
    const p = UserPtr.ofBuffer(buf);
    expect(p.putU32(0x11223344)).toBe(true);
    expect([...buf.subarray(0, 4)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(p.getU32()).toBe(0x11223344);
    expect(p.putU32(-1, 4)).toBe(true);
    expect(p.getU32(4)).toBe(0xffffffff);
    expect(p.getS32(4)).toBe(-1);
    expect(p.putU64(0x0102030405060708n, 8)).toBe(true);
    expect([...buf.subarray(8)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(p.getU64(8)).toBe(0x0102030405060708n);
    // u64 values wrap modulo 2^64.
    expect(p.putU64(-1n, 8)).toBe(true);
    expect(p.getU64(8)).toBe(0xffff_ffff_ffff_ffffn);
    expect(p.putU64(1n << 64n, 8)).toBe(true);
    expect(p.getU64(8)).toBe(0n);
  });

  it('get/put that do not fit fault (undefined / false) and write nothing', () => {
    const buf = new Uint8Array(6).fill(0xee);
    const p = UserPtr.ofBuffer(buf);
    expect(p.getU32(3)).toBeUndefined();
    expect(p.getS32(3)).toBeUndefined();
    expect(p.getU64()).toBeUndefined();
    expect(p.putU32(0, 3)).toBe(false);
    expect(p.putU64(0n)).toBe(false);
    expect([...buf]).toEqual([0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
    expect(p.getU32(2)).toBe(0xeeeeeeee);
  });
});

describe('UserPtr on an address space', () => {
  function mmWith(pages: number, prot = PROT_READ | PROT_WRITE) {
    const host = createHostMemory();
    const mm = new Mm(host);
    const va = mm.mmap(pages * PAGE_SIZE, prot, MAP_PRIVATE);
    return { host, mm, va };
  }

  it('copies across page boundaries', () => {
    const { mm, va } = mmWith(2);
    const p = new UserPtr(mm, va + PAGE_SIZE - 3);
    const data = new Uint8Array([1, 2, 3, 4, 5, 6]);
    expect(p.copyTo(data)).toBe(true);
    expect(p.copyFrom(6)).toEqual(data);
    expect(new UserPtr(mm, va + PAGE_SIZE).getU32()).toBe(0x00060504);
    expect(p.putU64(0xdead_beef_0bad_f00dn)).toBe(true);
    expect(p.getU64()).toBe(0xdead_beef_0bad_f00dn);
  });

  it('a range running off the end of the mapping faults and writes nothing', () => {
    const { mm, va, host } = mmWith(1);
    const resident = mm.stats.residentBytes;
    const inUse = host.alloc.bytesInUse;
    const p = new UserPtr(mm, va + PAGE_SIZE - 2);
    expect(p.copyTo(new Uint8Array([1, 2, 3, 4]))).toBe(false);
    expect(p.putU32(0x01020304)).toBe(false);
    expect(p.getU32()).toBeUndefined();
    expect(p.copyFrom(4)).toBeUndefined();
    // Nothing was faulted in or written.
    expect(mm.stats.residentBytes).toBe(resident);
    expect(host.alloc.bytesInUse).toBe(inUse);
    expect(new UserPtr(mm, va + PAGE_SIZE - 2).copyFrom(2)).toEqual(new Uint8Array(2));
  });

  it('unmapped addresses fault', () => {
    const { mm, va } = mmWith(1);
    expect(new UserPtr(mm, va - 4).getU32()).toBeUndefined();
    expect(new UserPtr(mm, 0).copyFrom(1)).toBeUndefined();
    expect(new UserPtr(mm, va + PAGE_SIZE).putU32(1)).toBe(false);
  });

  it('a read-only mapping reads but refuses writes', () => {
    const { mm, va } = mmWith(1, PROT_READ);
    const p = new UserPtr(mm, va);
    expect(p.getU64()).toBe(0n);
    expect(p.putU64(1n)).toBe(false);
    expect(p.copyTo(new Uint8Array([1]))).toBe(false);
    expect(mm.stats.residentBytes).toBe(0);
  });

  it('a write straddling a writable and a read-only mapping writes nothing', () => {
    const host = createHostMemory();
    const mm = new Mm(host);
    const rw = mm.mmap(PAGE_SIZE, PROT_READ | PROT_WRITE);
    const ro = mm.mmap(PAGE_SIZE, PROT_READ);
    expect(ro).toBe(rw + PAGE_SIZE);
    const p = new UserPtr(mm, rw + PAGE_SIZE - 2);
    expect(p.copyTo(new Uint8Array([1, 2, 3, 4]))).toBe(false);
    expect(p.copyFrom(4)).toEqual(new Uint8Array(4));
    expect(mm.stats.residentBytes).toBe(0);
  });
});

describe('IoctlArg', () => {
  it('ofBuffer: the value is the stand-in stack address, the pointer reaches the buffer', () => {
    const buf = new Uint8Array(4);
    const a = IoctlArg.ofBuffer(buf);
    expect(a.value).toBe(BUFFER_ARG_ADDRESS);
    expect(a.ptr.addr).toBe(0);
    expect(a.ptr.putU32(0xabcd)).toBe(true);
    expect([...buf]).toEqual([0xcd, 0xab, 0, 0]);
  });

  it('ofValue: the number is both the value and an address in the given memory', () => {
    const host = createHostMemory();
    const mm = new Mm(host);
    const va = mm.mmap(PAGE_SIZE);
    expect(mm.writeUser(va + 8, new Uint8Array([5, 0, 0, 0]))).toBe(true);
    const a = IoctlArg.ofValue(va + 8, mm);
    expect(a.value).toBe(va + 8);
    expect(a.ptr.mem).toBe(mm);
    expect(a.ptr.addr).toBe(va + 8);
    expect(a.ptr.getU32()).toBe(5);
    // A small integer (a vCPU id) is a value; as a pointer it faults.
    const small = IoctlArg.ofValue(3, mm);
    expect(small.value).toBe(3);
    expect(small.ptr.getU32()).toBeUndefined();
  });
});

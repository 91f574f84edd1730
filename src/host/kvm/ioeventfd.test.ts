/**
 * KVM_IOEVENTFD: a guest MMIO write that matches (address; length unless 0; value with
 * DATAMATCH) signals the eventfd and goes no further; the assignment checks run in the kernel's
 * order and leave the VM's ioeventfds unchanged when they refuse; collisions are EEXIST;
 * deassign needs an exact match (ENOENT otherwise); the VM's destruction releases them.
 */

import { describe, expect, it } from 'vitest';
import { EBADF, EEXIST, EFAULT, EINVAL, ENOENT } from '../../uapi/errno.ts';
import {
  KVM_IOEVENTFD,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY,
  kvm_ioeventfd,
} from '../../uapi/kvm.ts';
import { type EventfdCtx, eventfdCtxOfFile } from '../eventfd.ts';
import type { Process } from '../kernel/process.ts';
import { createVm, kvmRig } from './kvm-testing.ts';

const DOORBELL = 0x0a00_3000;

function ioeventfd(
  proc: Process,
  vm: number,
  a: { fd: number; addr: number | bigint; len: number; flags?: number; datamatch?: bigint },
): number {
  return proc.ioctl(
    vm,
    KVM_IOEVENTFD,
    kvm_ioeventfd.encode({
      fd: a.fd,
      addr: BigInt(a.addr),
      len: a.len,
      flags: a.flags ?? 0,
      datamatch: a.datamatch ?? 0n,
    }),
  );
}

/** Little-endian bytes of `v`, `len` long. */
function le(v: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
  return b;
}

function setup() {
  const r = kvmRig();
  const vm = createVm(r);
  const kvmVm = r.kvm.vms[0]!;
  const efd = r.proc.eventfd(0);
  const ctx = eventfdCtxOfFile(r.proc.fileOf(efd)!) as EventfdCtx;
  return { r, vm, kvmVm, efd, ctx };
}

describe('guest writes that match an ioeventfd', () => {
  it('wildcard of length 4: any 4-byte write at the address signals; others go on to the VMM', () => {
    const s = setup();
    expect(ioeventfd(s.r.proc, s.vm, { fd: s.efd, addr: DOORBELL, len: 4 })).toBe(0);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(0x1234, 4))).toBe(true);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(0, 4))).toBe(true);
    expect(s.ctx.count).toBe(2n);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(1, 2))).toBe(false);
    expect(s.kvmVm.mmioWrite(DOORBELL + 4, le(1, 4))).toBe(false);
    expect(s.kvmVm.ioWrite('pio', DOORBELL, le(1, 4))).toBe(false);
    expect(s.ctx.count).toBe(2n);
  });

  it('DATAMATCH: only the value (as the guest wrote it, zero-extended) signals', () => {
    const s = setup();
    expect(
      ioeventfd(s.r.proc, s.vm, {
        fd: s.efd,
        addr: DOORBELL,
        len: 2,
        flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
        datamatch: 0xbeefn,
      }),
    ).toBe(0);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(0xbeef, 2))).toBe(true);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(0xbeee, 2))).toBe(false);
    expect(s.ctx.count).toBe(1n);
    // A second ioeventfd on the same address with another value: both coexist.
    const e2 = s.r.proc.eventfd(0);
    expect(
      ioeventfd(s.r.proc, s.vm, {
        fd: e2,
        addr: DOORBELL,
        len: 2,
        flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
        datamatch: 1n,
      }),
    ).toBe(0);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(1, 2))).toBe(true);
    expect(eventfdCtxOfFile(s.r.proc.fileOf(e2)!)!.count).toBe(1n);
    expect(s.ctx.count).toBe(1n);
  });

  it('a datamatch wider than the length never matches', () => {
    const s = setup();
    ioeventfd(s.r.proc, s.vm, {
      fd: s.efd,
      addr: DOORBELL,
      len: 1,
      flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
      datamatch: 0x101n,
    });
    expect(s.kvmVm.mmioWrite(DOORBELL, le(1, 1))).toBe(false);
  });

  it('length 0: any write at the address, of any size', () => {
    const s = setup();
    expect(ioeventfd(s.r.proc, s.vm, { fd: s.efd, addr: DOORBELL, len: 0 })).toBe(0);
    for (const n of [1, 2, 4, 8]) expect(s.kvmVm.mmioWrite(DOORBELL, le(n, n))).toBe(true);
    expect(s.ctx.count).toBe(4n);
  });

  it('the s390 virtio-ccw notify bus is its own bus', () => {
    const s = setup();
    expect(
      ioeventfd(s.r.proc, s.vm, {
        fd: s.efd,
        addr: 0x10002,
        len: 8,
        flags: KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY,
      }),
    ).toBe(0);
    expect(s.kvmVm.mmioWrite(0x10002, le(0, 8))).toBe(false);
    expect(s.kvmVm.ioWrite('virtio-ccw-notify', 0x10002, le(0, 8))).toBe(true);
  });
});

describe('KVM_IOEVENTFD refusals change nothing', () => {
  it('assign: length, wrap, flags, len 0 + DATAMATCH, EBADF, not an eventfd, collisions, EFAULT', () => {
    const s = setup();
    expect(
      ioeventfd(s.r.proc, s.vm, {
        fd: s.efd,
        addr: DOORBELL,
        len: 4,
        flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
        datamatch: 5n,
      }),
    ).toBe(0);
    expect(ioeventfd(s.r.proc, s.vm, { fd: s.efd, addr: DOORBELL + 0x100, len: 0 })).toBe(0);
    const e2 = s.r.proc.eventfd(0);
    const snapshot = () =>
      JSON.stringify(
        s.kvmVm.ioeventfds.list.map((p) => [
          p.bus,
          String(p.addr),
          p.length,
          p.wildcard,
          String(p.datamatch),
        ]),
      );
    const before = snapshot();
    const refs = s.ctx.refcount;
    const cases: [string, () => number, number][] = [
      ['len 3', () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL + 8, len: 3 }), -EINVAL],
      ['len 16', () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL + 8, len: 16 }), -EINVAL],
      [
        'range wraps',
        () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: 0xffff_ffff_ffff_fffdn, len: 4 }),
        -EINVAL,
      ],
      [
        'unknown flag',
        () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL + 8, len: 4, flags: 1 << 4 }),
        -EINVAL,
      ],
      [
        'len 0 with DATAMATCH',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: e2,
            addr: DOORBELL + 8,
            len: 0,
            flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
          }),
        -EINVAL,
      ],
      ['closed fd', () => ioeventfd(s.r.proc, s.vm, { fd: 77, addr: DOORBELL + 8, len: 4 }), -EBADF],
      ['not an eventfd', () => ioeventfd(s.r.proc, s.vm, { fd: s.vm, addr: DOORBELL + 8, len: 4 }), -EINVAL],
      [
        'same value again',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: e2,
            addr: DOORBELL,
            len: 4,
            flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
            datamatch: 5n,
          }),
        -EEXIST,
      ],
      [
        'wildcard over a datamatch',
        () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL, len: 4 }),
        -EEXIST,
      ],
      ['len 0 over a len 4', () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL, len: 0 }), -EEXIST],
      [
        'anything over a len 0',
        () => ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL + 0x100, len: 2 }),
        -EEXIST,
      ],
      ['short argument', () => s.r.proc.ioctl(s.vm, KVM_IOEVENTFD, new Uint8Array(32)), -EFAULT],
      [
        'deassign: closed fd',
        () =>
          ioeventfd(s.r.proc, s.vm, { fd: 77, addr: DOORBELL, len: 4, flags: KVM_IOEVENTFD_FLAG_DEASSIGN }),
        -EBADF,
      ],
      [
        'deassign: no such ioeventfd (wrong eventfd)',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: e2,
            addr: DOORBELL,
            len: 4,
            flags: KVM_IOEVENTFD_FLAG_DEASSIGN | KVM_IOEVENTFD_FLAG_DATAMATCH,
            datamatch: 5n,
          }),
        -ENOENT,
      ],
      [
        'deassign: wrong value',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: s.efd,
            addr: DOORBELL,
            len: 4,
            flags: KVM_IOEVENTFD_FLAG_DEASSIGN | KVM_IOEVENTFD_FLAG_DATAMATCH,
            datamatch: 6n,
          }),
        -ENOENT,
      ],
      [
        'deassign: wildcard for a datamatch',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: s.efd,
            addr: DOORBELL,
            len: 4,
            flags: KVM_IOEVENTFD_FLAG_DEASSIGN,
          }),
        -ENOENT,
      ],
      [
        'deassign: other bus',
        () =>
          ioeventfd(s.r.proc, s.vm, {
            fd: s.efd,
            addr: DOORBELL + 0x100,
            len: 0,
            flags: KVM_IOEVENTFD_FLAG_DEASSIGN | KVM_IOEVENTFD_FLAG_PIO,
          }),
        -ENOENT,
      ],
    ];
    for (const [what, call, errno] of cases) {
      expect(call(), what).toBe(errno);
      expect(snapshot(), what).toBe(before);
      expect(s.ctx.refcount, what).toBe(refs);
    }
  });

  it('the same address on another bus or with another length is no collision', () => {
    const s = setup();
    const e2 = s.r.proc.eventfd(0);
    expect(ioeventfd(s.r.proc, s.vm, { fd: s.efd, addr: DOORBELL, len: 4 })).toBe(0);
    expect(ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL, len: 2 })).toBe(0);
    expect(ioeventfd(s.r.proc, s.vm, { fd: e2, addr: DOORBELL, len: 4, flags: KVM_IOEVENTFD_FLAG_PIO })).toBe(
      0,
    );
    expect(s.kvmVm.mmioWrite(DOORBELL, le(1, 2))).toBe(true);
    expect(eventfdCtxOfFile(s.r.proc.fileOf(e2)!)!.count).toBe(1n);
  });
});

describe('the end of an ioeventfd', () => {
  it('deassign with an exact match removes it and drops its eventfd reference', () => {
    const s = setup();
    const refs = s.ctx.refcount;
    ioeventfd(s.r.proc, s.vm, {
      fd: s.efd,
      addr: DOORBELL,
      len: 8,
      flags: KVM_IOEVENTFD_FLAG_DATAMATCH,
      datamatch: 2n ** 63n,
    });
    expect(s.ctx.refcount).toBe(refs + 1);
    expect(
      ioeventfd(s.r.proc, s.vm, {
        fd: s.efd,
        addr: DOORBELL,
        len: 8,
        flags: KVM_IOEVENTFD_FLAG_DEASSIGN | KVM_IOEVENTFD_FLAG_DATAMATCH,
        datamatch: 2n ** 63n,
      }),
    ).toBe(0);
    expect(s.kvmVm.ioeventfds.list).toHaveLength(0);
    expect(s.ctx.refcount).toBe(refs);
  });

  it('closing the eventfd keeps the ioeventfd (it holds the context); the VM’s end releases it', () => {
    const s = setup();
    ioeventfd(s.r.proc, s.vm, { fd: s.efd, addr: DOORBELL, len: 4 });
    s.r.proc.close(s.efd);
    expect(s.kvmVm.mmioWrite(DOORBELL, le(1, 4))).toBe(true);
    expect(s.ctx.count).toBe(1n);
    s.r.proc.close(s.vm);
    expect(s.r.kvm.vms).toHaveLength(0);
    expect(s.ctx.refcount).toBe(0);
  });
});

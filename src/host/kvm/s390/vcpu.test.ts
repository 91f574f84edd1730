/**
 * An s390 vCPU's register ioctls, ONE_REG, KVM_RUN with the sync-regs area, the run state, and
 * the smaller ioctls — each against arch/s390/kvm/kvm-s390.c, each refusal with the vCPU
 * unchanged.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EBUSY, EFAULT, EINTR, EINVAL, ENOTTY, ENXIO } from '../../../uapi/errno.ts';
import {
  KVM_ENABLE_CAP,
  KVM_EXIT_INTR,
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_MP_STATE_CHECK_STOP,
  KVM_MP_STATE_LOAD,
  KVM_MP_STATE_OPERATING,
  KVM_MP_STATE_STOPPED,
  KVM_REG_S390,
  KVM_REG_SIZE_U64,
  KVM_RUN,
  KVM_S390_PFAULT_TOKEN_INVALID,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  kvm_enable_cap,
  kvm_one_reg,
} from '../../../uapi/kvm.ts';
import {
  KVM_CAP_S390_CSS_SUPPORT,
  KVM_CAP_S390_RI,
  KVM_GET_FPU,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_REG_S390_CLOCK_COMP,
  KVM_REG_S390_CPU_TIMER,
  KVM_REG_S390_EPOCHDIFF,
  KVM_REG_S390_GBEA,
  KVM_REG_S390_PFCOMPARE,
  KVM_REG_S390_PFSELECT,
  KVM_REG_S390_PFTOKEN,
  KVM_REG_S390_PP,
  KVM_REG_S390_TODPR,
  KVM_S390_RESTART,
  KVM_S390_SET_INITIAL_PSW,
  KVM_S390_STORE_STATUS,
  KVM_SET_FPU,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SYNC_ACRS,
  KVM_SYNC_ARCH0,
  KVM_SYNC_BPBC,
  KVM_SYNC_CRS,
  KVM_SYNC_DIAG318,
  KVM_SYNC_ETOKEN,
  KVM_SYNC_FPRS,
  KVM_SYNC_GPRS,
  KVM_SYNC_GSCB,
  KVM_SYNC_PFAULT,
  KVM_SYNC_PREFIX,
  KVM_SYNC_REGS_BPBC_BIT,
  KVM_SYNC_RICCB,
  KVM_SYNC_VRS,
  KVM_TRANSLATE,
  kvm_fpu,
  kvm_regs,
  kvm_s390_psw,
  kvm_sregs,
  kvm_translation,
} from '../../../uapi/kvm-s390.ts';
import { RUN } from './run-area.ts';
import { S390Harness } from './test-harness.ts';
import type { S390Vcpu } from './vcpu.ts';

function fresh(): { h: S390Harness; v: S390Vcpu } {
  const h = new S390Harness();
  return { h, v: h.vcpu(0) };
}

function expectRefused(v: S390Vcpu, rc: number, call: () => number): void {
  const before = v.snapshot();
  expect(call()).toBe(rc);
  expect(v.snapshot()).toEqual(before);
}

const seq = (n: number, base: bigint) => Array.from({ length: n }, (_, i) => base + BigInt(i));

describe('a new vCPU', () => {
  it('is stopped, with a zeroed kvm_run whose valid classes are set, and an invalid pfault token', () => {
    const { h, v } = fresh();
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
    const run = h.kvmRun(v);
    expect(run.kvm_valid_regs).toBe(
      BigInt(
        KVM_SYNC_PREFIX |
          KVM_SYNC_GPRS |
          KVM_SYNC_ACRS |
          KVM_SYNC_CRS |
          KVM_SYNC_ARCH0 |
          KVM_SYNC_PFAULT |
          KVM_SYNC_DIAG318 |
          KVM_SYNC_RICCB |
          KVM_SYNC_BPBC |
          KVM_SYNC_GSCB |
          KVM_SYNC_ETOKEN |
          KVM_SYNC_VRS,
      ),
    );
    expect(run.kvm_valid_regs & BigInt(KVM_SYNC_FPRS)).toBe(0n);
    expect(run.s.regs.gprs).toEqual(Array(16).fill(0n));
    expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
    // kvm_run's copy is only written at the first exit
    expect(run.s.regs.pft).toBe(0n);
    expect(h.getSregs(v).crs).toEqual(Array(16).fill(0n));
    expect(h.getOneReg(v, KVM_REG_S390_GBEA)).toBe(0n);
  });
});

describe('KVM_GET/SET_REGS, _SREGS, _FPU', () => {
  it('GPRs live in kvm_run: SET_REGS is visible in the sync area at once, and the reverse', () => {
    const { h, v } = fresh();
    h.setRegs(v, seq(16, 0x100n));
    expect(h.kvmRun(v).s.regs.gprs).toEqual(seq(16, 0x100n));
    v.run.setU64(RUN.gprs + 8 * 15, 0xdeadn);
    expect(h.getRegs(v).gprs[15]).toBe(0xdeadn);
  });

  it('ACRs live in kvm_run, CRs in the SIE block (kvm_run sees them at the next exit)', () => {
    const { h, v } = fresh();
    const acrs = Array.from({ length: 16 }, (_, i) => 0xf000_0000 + i);
    h.setSregs(v, acrs, seq(16, 0x200n));
    const run = h.kvmRun(v);
    expect(run.s.regs.acrs).toEqual(acrs);
    expect(run.s.regs.crs).toEqual(Array(16).fill(0n));
    expect(h.getSregs(v)).toEqual({ acrs, crs: seq(16, 0x200n) });
    expect(h.run(v)).toBe(-EINTR);
    expect(h.kvmRun(v).s.regs.crs).toEqual(seq(16, 0x200n));
  });

  it("FPRs are the VRs' first doublewords; SET_FPU leaves the second ones; FPC in kvm_run", () => {
    const { h, v } = fresh();
    for (let n = 0; n < 32; n++) v.run.setU64(RUN.vrs + 16 * n + 8, 0x77n + BigInt(n));
    h.setFpu(v, 0x8000_0001, seq(16, 0x300n));
    const s = h.kvmRun(v).s.regs;
    expect(s.fpc).toBe(0x8000_0001);
    for (let n = 0; n < 16; n++) {
      expect(s.vector.vrs[2 * n]).toBe(0x300n + BigInt(n));
      expect(s.vector.vrs[2 * n + 1]).toBe(0x77n + BigInt(n));
    }
    expect(h.getFpu(v)).toEqual({ fpc: 0x8000_0001, fprs: seq(16, 0x300n) });
  });

  it('short buffers are -EFAULT and change nothing', () => {
    const { h, v } = fresh();
    h.setRegs(v, seq(16, 1n));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_GET_REGS, new Uint8Array(kvm_regs.size - 1)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_SET_REGS, new Uint8Array(kvm_regs.size - 1)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_GET_SREGS, new Uint8Array(kvm_sregs.size - 8)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_SET_SREGS, new Uint8Array(100)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_GET_FPU, new Uint8Array(kvm_fpu.size - 1)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_SET_FPU, new Uint8Array(8)));
  });
});

describe('KVM_GET/SET_ONE_REG', () => {
  const u64Regs: [string, bigint][] = [
    ['EPOCHDIFF', KVM_REG_S390_EPOCHDIFF],
    ['CPU_TIMER', KVM_REG_S390_CPU_TIMER],
    ['CLOCK_COMP', KVM_REG_S390_CLOCK_COMP],
    ['PFTOKEN', KVM_REG_S390_PFTOKEN],
    ['PFCOMPARE', KVM_REG_S390_PFCOMPARE],
    ['PFSELECT', KVM_REG_S390_PFSELECT],
    ['PP', KVM_REG_S390_PP],
    ['GBEA', KVM_REG_S390_GBEA],
  ];

  it.each(u64Regs)('%s round-trips every 64-bit value', (_name, id) => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }), (x) => {
        const { h, v } = fresh();
        h.setOneReg(v, id, x);
        expect(h.getOneReg(v, id)).toBe(x);
      }),
      { numRuns: 10 },
    );
  });

  it('TODPR is 32 bits: SET reads 4 bytes, GET writes 4 bytes', () => {
    const { h, v } = fresh();
    h.setOneReg(v, KVM_REG_S390_TODPR, 0xcafe_f00dn, 4);
    expect(v.arch.todpr).toBe(0xcafe_f00d);
    const addr = h.alloc(4096);
    h.writeUser(addr, new Uint8Array(8).fill(0xee));
    expect(h.ioctl(v, KVM_GET_ONE_REG, kvm_one_reg.encode({ id: KVM_REG_S390_TODPR, addr }))).toBe(0);
    expect(h.readUser(addr, 8)).toEqual(Uint8Array.of(0x0d, 0xf0, 0xfe, 0xca, 0xee, 0xee, 0xee, 0xee));
  });

  it('an id s390 does not have is -EINVAL (size bits must match too)', () => {
    const { h, v } = fresh();
    const wrongSize = (KVM_REG_S390_TODPR & ~(0xfn << 52n)) | KVM_REG_SIZE_U64;
    for (const id of [KVM_REG_S390 | KVM_REG_SIZE_U64 | 0xan, wrongSize, 0n, 0x6030_0000_0010_0000n]) {
      expectRefused(v, -EINVAL, () => h.setOneRegRaw(v, id, 1n));
      expect(h.getOneRegRaw(v, id)[0]).toBe(-EINVAL);
    }
  });

  it('an unreadable struct or value address is -EFAULT, and the register keeps its value (Decision)', () => {
    const { h, v } = fresh();
    h.setOneReg(v, KVM_REG_S390_GBEA, 0x55n);
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_SET_ONE_REG, new Uint8Array(15)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_GET_ONE_REG, new Uint8Array(15)));
    for (const addr of [0x10, 2 ** 60]) {
      expectRefused(v, -EFAULT, () =>
        h.ioctl(v, KVM_SET_ONE_REG, kvm_one_reg.encode({ id: KVM_REG_S390_GBEA, addr: BigInt(addr) })),
      );
      expectRefused(v, -EFAULT, () =>
        h.ioctl(v, KVM_GET_ONE_REG, kvm_one_reg.encode({ id: KVM_REG_S390_GBEA, addr: BigInt(addr) })),
      );
    }
    expect(h.getOneReg(v, KVM_REG_S390_GBEA)).toBe(0x55n);
  });
});

describe('KVM_RUN', () => {
  it('starts the CPU, exits at once with KVM_EXIT_INTR and -EINTR, storing the registers', () => {
    const { h, v } = fresh();
    h.setOneReg(v, KVM_REG_S390_CPU_TIMER, 0x42n);
    expect(h.run(v)).toBe(-EINTR);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_OPERATING);
    const run = h.kvmRun(v);
    expect(run.exit_reason).toBe(KVM_EXIT_INTR);
    expect(run.s.regs.cputm).toBe(0x42n);
    expect(run.s.regs.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
  });

  /**
   * Distinct values in the sync-register classes KVM_RUN loads only when dirty: the prefix
   * (truncated to 32 bits and 8 KiB-aligned on load), CRs, TOD programmable register (32 bits),
   * the ARCH0 timers, pfault, diag318 and the bpbc byte.
   */
  function writeSyncRegs(r: ReturnType<typeof fresh>['v']['run'], bpbc: number): void {
    r.setU64(RUN.prefix, 0x1_2345_7fffn);
    r.setU64s(RUN.crs, seq(16, 0x10n));
    r.setU64(RUN.todpr, 0x1_0000_0002n);
    r.setU64(RUN.cputm, 3n);
    r.setU64(RUN.ckc, 4n);
    r.setU64(RUN.pp, 5n);
    r.setU64(RUN.gbea, 6n);
    r.setU64(RUN.pft, 7n);
    r.setU64(RUN.pfs, 8n);
    r.setU64(RUN.pfc, 9n);
    r.setU64(RUN.diag318, 10n);
    r.setU8(RUN.bpbc, bpbc);
  }

  it('loads the PSW always, the other classes only when kvm_dirty_regs names them, then clears it', () => {
    const { h, v } = fresh();
    const r = v.run;
    r.setU64(RUN.pswMask, 0x0400_0001_8000_0000n);
    r.setU64(RUN.pswAddr, 0x1234n);
    writeSyncRegs(r, KVM_SYNC_REGS_BPBC_BIT | 0x01);
    // nothing dirty: only the PSW is taken; the rest is overwritten on exit
    expect(h.run(v)).toBe(-EINTR);
    expect(v.arch.pswMask).toBe(0x0400_0001_8000_0000n);
    expect(v.arch.pswAddr).toBe(0x1234n);
    let s = h.kvmRun(v).s.regs;
    expect(s.prefix).toBe(0n);
    expect(s.crs).toEqual(Array(16).fill(0n));
    expect(s.gbea).toBe(0n);
    expect(s.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
    expect(s.bpbc).toBe(0x01); // only the bpbc bit is stored; the reserved bits stay

    writeSyncRegs(r, KVM_SYNC_REGS_BPBC_BIT);
    r.setU64(
      RUN.dirtyRegs,
      BigInt(
        KVM_SYNC_PREFIX | KVM_SYNC_CRS | KVM_SYNC_ARCH0 | KVM_SYNC_PFAULT | KVM_SYNC_DIAG318 | KVM_SYNC_BPBC,
      ),
    );
    expect(h.run(v)).toBe(-EINTR);
    const run = h.kvmRun(v);
    expect(run.kvm_dirty_regs).toBe(0n);
    s = run.s.regs;
    expect(s.prefix).toBe(0x2345_6000n);
    expect(s.crs).toEqual(seq(16, 0x10n));
    expect(s.todpr).toBe(2n);
    expect([s.cputm, s.ckc, s.pp, s.gbea, s.pft, s.pfs, s.pfc, s.diag318]).toEqual([
      3n,
      4n,
      5n,
      6n,
      7n,
      8n,
      9n,
      10n,
    ]);
    expect(s.bpbc).toBe(KVM_SYNC_REGS_BPBC_BIT);
    expect(h.getSregs(v).crs).toEqual(seq(16, 0x10n));
    expect(h.getOneReg(v, KVM_REG_S390_TODPR, 4)).toBe(2n);
    expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(7n);
  });

  it('immediate_exit: -EINTR before anything is loaded or stored', () => {
    const { h, v } = fresh();
    v.run.setU8(RUN.immediateExit, 1);
    v.run.setU64(RUN.dirtyRegs, BigInt(KVM_SYNC_CRS));
    expectRefused(v, -EINTR, () => h.run(v));
  });

  it('unknown valid or dirty bits, a non-zero argument: -EINVAL, nothing changed', () => {
    const { h, v } = fresh();
    v.run.setU64(RUN.dirtyRegs, 1n << 13n);
    expectRefused(v, -EINVAL, () => h.run(v));
    v.run.setU64(RUN.dirtyRegs, 0n);
    v.run.setU64(RUN.validRegs, 1n << 40n);
    expectRefused(v, -EINVAL, () => h.run(v));
    v.run.setU64(RUN.validRegs, 0n);
    expectRefused(v, -EINVAL, () => h.ioctlValue(v, KVM_RUN, 1));
  });

  it('under user-controlled CPU state a stopped CPU does not run (-EINVAL) and is not started', () => {
    const { h, v } = fresh();
    expect(h.setMpState(v, KVM_MP_STATE_STOPPED)).toBe(0);
    expectRefused(v, -EINVAL, () => h.run(v));
    expect(h.setMpState(v, KVM_MP_STATE_OPERATING)).toBe(0);
    expect(h.run(v)).toBe(-EINTR);
  });

  it('leaves interrupts pending (nothing is delivered)', () => {
    const { h, v } = fresh();
    expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
    expect(h.run(v)).toBe(-EINTR);
    expect(h.getIrqState(v).rc).toBe(72);
  });
});

describe('run state: KVM_GET/SET_MP_STATE', () => {
  it('GET returns the state as its result and writes nothing', () => {
    const { h, v } = fresh();
    const buf = new Uint8Array(4).fill(0xaa);
    expect(h.ioctl(v, KVM_GET_MP_STATE, buf)).toBe(KVM_MP_STATE_STOPPED);
    expect(buf).toEqual(new Uint8Array(4).fill(0xaa));
    // not even the pointer is looked at
    expect(h.ioctl(v, KVM_GET_MP_STATE, new Uint8Array(0))).toBe(KVM_MP_STATE_STOPPED);
  });

  it('SET OPERATING / STOPPED starts and stops, and switches the VM to user control', () => {
    const { h, v } = fresh();
    expect(h.vm.userCpuStateCtrl).toBe(false);
    expect(h.setMpState(v, KVM_MP_STATE_OPERATING)).toBe(0);
    expect(h.vm.userCpuStateCtrl).toBe(true);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_OPERATING);
    expect(h.setMpState(v, KVM_MP_STATE_STOPPED)).toBe(0);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
  });

  it('LOAD, CHECK_STOP and others are -ENXIO — but the switch to user control is made first', () => {
    for (const st of [KVM_MP_STATE_LOAD, KVM_MP_STATE_CHECK_STOP, 0, 99]) {
      const { h, v } = fresh();
      expect(h.setMpState(v, st)).toBe(-ENXIO);
      expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
      expect(h.vm.userCpuStateCtrl).toBe(true);
    }
  });

  it('SET with a short struct: -EFAULT, not even the switch', () => {
    const { h, v } = fresh();
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_SET_MP_STATE, new Uint8Array(3)));
  });
});

describe('the other vCPU ioctls', () => {
  it("KVM_S390_SET_INITIAL_PSW writes kvm_run's PSW on a stopped CPU, -EBUSY on an operating one", () => {
    const { h, v } = fresh();
    expect(h.ioctl(v, KVM_S390_SET_INITIAL_PSW, kvm_s390_psw.encode({ mask: 0x1n, addr: 0x2n }))).toBe(0);
    expect(h.kvmRun(v).psw_mask).toBe(1n);
    expect(h.kvmRun(v).psw_addr).toBe(2n);
    expect(h.run(v)).toBe(-EINTR);
    expect(v.arch.pswAddr).toBe(2n);
    expectRefused(v, -EBUSY, () => h.ioctl(v, KVM_S390_SET_INITIAL_PSW, kvm_s390_psw.encode({ mask: 3n })));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_S390_SET_INITIAL_PSW, new Uint8Array(8)));
  });

  it('KVM_TRANSLATE is refused (-EINVAL; -EFAULT for a short struct)', () => {
    const { h, v } = fresh();
    expectRefused(v, -EINVAL, () => h.ioctl(v, KVM_TRANSLATE, new Uint8Array(kvm_translation.size)));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_TRANSLATE, new Uint8Array(8)));
  });

  it('KVM_ENABLE_CAP on a vCPU: CSS support only, flags 0', () => {
    const { h, v } = fresh();
    const cap = (c: number, flags = 0) =>
      h.ioctl(v, KVM_ENABLE_CAP, kvm_enable_cap.encode({ cap: c, flags }));
    expectRefused(v, -EINVAL, () => cap(KVM_CAP_S390_CSS_SUPPORT, 1));
    expectRefused(v, -EINVAL, () => cap(KVM_CAP_S390_RI));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_ENABLE_CAP, new Uint8Array(100)));
    expect(cap(KVM_CAP_S390_CSS_SUPPORT)).toBe(0);
    expect(h.vm.cssSupport).toBe(true);
  });

  it('ioctls vsva does not model, and unknown ones, are -ENOTTY', () => {
    const { h, v } = fresh();
    expectRefused(v, -ENOTTY, () => h.ioctlValue(v, KVM_S390_STORE_STATUS, 0x1000));
    expectRefused(v, -ENOTTY, () => h.ioctlValue(v, 0xae00));
  });

  it('release drops the local interrupts and frees the id', () => {
    const { h, v } = fresh();
    expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
    v.release();
    expect(v.irqs.pending).toBe(0);
    expect(h.vm.hasVcpu(0)).toBe(false);
    v.release();
    expect(h.vm.vcpuIds).toEqual([]);
  });
});

/**
 * The reset matrix of seed-spec §4.2 as facts, after Linux's s390 resets selftest
 * (tools/testing/selftests/kvm/s390x/resets.c): dirty every register through the register
 * ioctls, ONE_REG and the sync-regs area (kvm_dirty_regs + KVM_RUN), inject an emergency signal
 * (and more), reset, then read every field back through the GET ioctls and from the kvm_run
 * sync-regs area. Plus what each level keeps, the RI bit, the run state, the b5de9eede579 fix
 * (kvm_run updated by the initial reset itself), and the nesting of the levels as a property.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CR0_INITIAL_MASK,
  CR14_INITIAL_MASK,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_MP_STATE_OPERATING,
  KVM_MP_STATE_STOPPED,
  KVM_S390_CLEAR_RESET,
  KVM_S390_INITIAL_RESET,
  KVM_S390_NORMAL_RESET,
  KVM_S390_PFAULT_TOKEN_INVALID,
} from '../../../uapi/kvm.ts';
import {
  KVM_REG_S390_CLOCK_COMP,
  KVM_REG_S390_CPU_TIMER,
  KVM_REG_S390_EPOCHDIFF,
  KVM_REG_S390_GBEA,
  KVM_REG_S390_PFCOMPARE,
  KVM_REG_S390_PFSELECT,
  KVM_REG_S390_PFTOKEN,
  KVM_REG_S390_PP,
  KVM_REG_S390_TODPR,
  KVM_S390_INT_CPU_TIMER,
  KVM_S390_INT_EMERGENCY,
  KVM_S390_INT_EXTERNAL_CALL,
  KVM_S390_PROGRAM_INT,
  KVM_S390_RESTART,
  KVM_S390_SIGP_STOP,
  KVM_SYNC_BPBC,
  KVM_SYNC_DIAG318,
  KVM_SYNC_ETOKEN,
  KVM_SYNC_GSCB,
  KVM_SYNC_PREFIX,
  KVM_SYNC_REGS_BPBC_BIT,
  KVM_SYNC_RICCB,
  PSW_MASK_RI,
} from '../../../uapi/kvm-s390.ts';
import { RUN } from './run-area.ts';
import { S390Harness } from './test-harness.ts';
import type { S390Vcpu } from './vcpu.ts';
import { s390Arch } from './vm.ts';

/** The selftest's vCPU id. */
const VCPU_ID = 3;

const GPRS = Array.from({ length: 16 }, (_, i) => 0x1111_0000_0000_0000n + BigInt(i));
GPRS[0] = 0xffff_0000_0000_0000n;
GPRS[1] = 0x0000_5555_0000_0000n;
GPRS[2] = 0x0000_0000_aaaa_0000n;
GPRS[3] = 0n;
const ACRS = Array.from({ length: 16 }, (_, i) => 0x100 + i);
ACRS[9] = 1;
const CRS = Array.from({ length: 16 }, (_, i) => 0x2222_0000n + BigInt(i));
CRS[2] = 0x10n; // guarded storage enabled
CRS[8] = 1n; // monitor mask
CRS[10] = 1n; // PER start
CRS[11] = 0xffff_ffff_ffff_ffffn; // PER end
const FPC = 0x11; // round toward 0
const FPRS = Array.from({ length: 16 }, (_, i) => 0x4000_0000_0000_0000n + BigInt(i));
FPRS[0] = 0x3ff0_0000_0000_0000n; // 1.0
/** The VRs' second doublewords, which only the sync-regs area reaches. */
const VR_LOW = Array.from({ length: 32 }, (_, i) => 0x5000n + BigInt(i));
const RICCB = Uint8Array.from({ length: 64 }, (_, i) => 0xa0 + (i & 0xf));
const GSCB = [0x61n, 0x62n, 0x63n, 0x64n];
const PSW_MASK = 0x0705_0000_8000_0000n | PSW_MASK_RI;
const PSW_ADDR = 0x1_0000n;
const PREFIX = 0x6000;
const REGS = {
  todpr: 0x1234_5678n,
  epoch: 0xe0e0n,
  cputm: 0x7777n,
  ckc: 0x8888n,
  pft: 0xabc0n,
  pfc: 0x3n,
  pfs: 0x7n,
  pp: 0x9999n,
  gbea: 0x4444n,
};

/**
 * Dirties every register a reset can touch, as the selftest's guest code and more: register
 * ioctls, ONE_REG, the sync-regs area with kvm_dirty_regs and one KVM_RUN; then injects an
 * emergency signal from the vCPU itself (as the selftest does, through SET_IRQ_STATE) and four
 * more local interrupts. With `dirtyPft` false the pfault token stays INVALID, as in the selftest.
 */
function dirty(h: S390Harness, v: S390Vcpu, dirtyPft = true): void {
  h.setRegs(v, GPRS);
  h.setSregs(v, ACRS, CRS);
  h.setFpu(v, FPC, FPRS);
  h.setOneReg(v, KVM_REG_S390_TODPR, REGS.todpr, 4);
  h.setOneReg(v, KVM_REG_S390_EPOCHDIFF, REGS.epoch);
  h.setOneReg(v, KVM_REG_S390_CPU_TIMER, REGS.cputm);
  h.setOneReg(v, KVM_REG_S390_CLOCK_COMP, REGS.ckc);
  if (dirtyPft) h.setOneReg(v, KVM_REG_S390_PFTOKEN, REGS.pft);
  h.setOneReg(v, KVM_REG_S390_PFCOMPARE, REGS.pfc);
  h.setOneReg(v, KVM_REG_S390_PFSELECT, REGS.pfs);
  h.setOneReg(v, KVM_REG_S390_PP, REGS.pp);
  h.setOneReg(v, KVM_REG_S390_GBEA, REGS.gbea);

  const r = v.run;
  VR_LOW.forEach((x, n) => {
    r.setU64(RUN.vrs + 16 * n + 8, x);
  });
  r.setBytes(RUN.riccb, RICCB);
  r.setU64s(RUN.gscb, GSCB);
  r.setU64(RUN.etoken, 0xe7n);
  r.setU64(RUN.etokenExtension, 0xe8n);
  r.setU64(RUN.prefix, BigInt(PREFIX));
  r.setU8(RUN.bpbc, KVM_SYNC_REGS_BPBC_BIT);
  r.setU64(RUN.diag318, 0x318n);
  r.setU64(RUN.pswMask, PSW_MASK);
  r.setU64(RUN.pswAddr, PSW_ADDR);
  r.setU64(
    RUN.dirtyRegs,
    BigInt(
      KVM_SYNC_PREFIX | KVM_SYNC_BPBC | KVM_SYNC_DIAG318 | KVM_SYNC_RICCB | KVM_SYNC_GSCB | KVM_SYNC_ETOKEN,
    ),
  );
  expect(h.run(v)).toBe(-4); // -EINTR: the vCPU left at once

  expect(h.setIrqState(v, [{ type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: v.id } } }])).toBe(0);
  expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
  expect(h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: 0x11 } } })).toBe(0);
  expect(h.inject(v, { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: v.id } } })).toBe(0);
  expect(h.inject(v, { type: KVM_S390_INT_CPU_TIMER })).toBe(0);
  expect(h.inject(v, { type: KVM_S390_SIGP_STOP })).toBe(0);
  expect(h.getIrqState(v).irqs.length).toBe(6);
}

function setup(dirtyPft = true): { h: S390Harness; v: S390Vcpu } {
  const h = new S390Harness();
  const v = h.vcpu(VCPU_ID);
  dirty(h, v, dirtyPft);
  return { h, v };
}

function reset(h: S390Harness, v: S390Vcpu, req: number): void {
  expect(h.ioctlValue(v, req)).toBe(0);
}

const INITIAL_CRS = Array.from({ length: 16 }, (_, i) =>
  i === 0 ? BigInt(CR0_INITIAL_MASK) : i === 14 ? BigInt(CR14_INITIAL_MASK) : 0n,
);

// ---------------------------------------------------------------- what every level clears

/** assert_normal of the selftest, and what the seed adds: riccb, the run state, the RI bit. */
function expectNormalCleared(h: S390Harness, v: S390Vcpu): void {
  expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
  const st = h.getIrqState(v);
  expect(st.rc).toBe(0);
  expect(st.irqs).toEqual([]);
  expect(v.irqs.pending).toBe(0);
  expect(h.kvmRun(v).s.regs.riccb).toEqual(new Uint8Array(64));
  expect(v.arch.pswMask & PSW_MASK_RI).toBe(0n);
}

/** assert_initial of the selftest: GET_SREGS, the sync regs, kvm_run's PSW, GET_FPU, ONE_REG. */
function expectInitialCleared(h: S390Harness, v: S390Vcpu): void {
  const sregs = h.getSregs(v);
  expect(sregs.crs[0]).toBe(0xe0n);
  expect(sregs.crs[14]).toBe(0xc200_0000n);
  expect(sregs.crs).toEqual(INITIAL_CRS);

  const run = h.kvmRun(v);
  const s = run.s.regs;
  expect(s.crs).toEqual(INITIAL_CRS);
  expect(s.fpc).toBe(0);
  expect(s.todpr).toBe(0n);
  expect(s.cputm).toBe(0n);
  expect(s.ckc).toBe(0n);
  expect(s.pp).toBe(0n);
  expect(s.gbea).toBe(1n);
  expect(run.psw_addr).toBe(0n);
  expect(run.psw_mask).toBe(0n);

  expect(h.getFpu(v).fpc).toBe(0);
  expect(h.getOneReg(v, KVM_REG_S390_GBEA)).toBe(1n);
  expect(h.getOneReg(v, KVM_REG_S390_PP)).toBe(0n);
  expect(h.getOneReg(v, KVM_REG_S390_TODPR, 4)).toBe(0n);
  expect(h.getOneReg(v, KVM_REG_S390_CPU_TIMER)).toBe(0n);
  expect(h.getOneReg(v, KVM_REG_S390_CLOCK_COMP)).toBe(0n);

  expect(v.arch.pswMask).toBe(0n);
  expect(v.arch.pswAddr).toBe(0n);
  expect(v.arch.prefix).toBe(0);
  expect(v.arch.bpbc).toBe(false);
}

/** assert_clear of the selftest, plus the guarded-storage block and the etoken. */
function expectClearCleared(h: S390Harness, v: S390Vcpu): void {
  expect(h.getRegs(v).gprs).toEqual(Array(16).fill(0n));
  expect(h.getSregs(v).acrs).toEqual(Array(16).fill(0));
  expect(h.getFpu(v).fprs).toEqual(Array(16).fill(0n));
  const s = h.kvmRun(v).s.regs;
  expect(s.gprs).toEqual(Array(16).fill(0n));
  expect(s.acrs).toEqual(Array(16).fill(0));
  expect(s.vector.vrs).toEqual(Array(64).fill(0n));
  expect(s.sdnx.fields.gscb).toEqual([0n, 0n, 0n, 0n]);
  expect(s.sdnx.fields.etoken).toBe(0n);
  expect(s.sdnx.fields.etoken_extension).toBe(0n);
}

// ---------------------------------------------------------------- what a level keeps

/** assert_initial_noclear of the selftest, and everything else initial reset leaves alone. */
function expectInitialKept(h: S390Harness, v: S390Vcpu): void {
  const s = h.kvmRun(v).s.regs;
  expect(s.gprs[0]).toBe(0xffff_0000_0000_0000n);
  expect(s.gprs[1]).toBe(0x0000_5555_0000_0000n);
  expect(s.gprs[2]).toBe(0x0000_0000_aaaa_0000n);
  expect(s.gprs[3]).toBe(0n);
  expect(s.vector.fprs[0]).toBe(0x3ff0_0000_0000_0000n);
  expect(s.acrs[9]).toBe(1);

  expect(h.getRegs(v).gprs).toEqual(GPRS);
  expect(s.gprs).toEqual(GPRS);
  expect(h.getSregs(v).acrs).toEqual(ACRS);
  expect(s.acrs).toEqual(ACRS);
  expect(h.getFpu(v).fprs).toEqual(FPRS);
  FPRS.forEach((f, n) => {
    expect(s.vector.vrs[2 * n]).toBe(f);
  });
  VR_LOW.forEach((x, n) => {
    expect(s.vector.vrs[2 * n + 1]).toBe(x);
  });
  expect(s.sdnx.fields.gscb).toEqual(GSCB);
  expect(s.sdnx.fields.etoken).toBe(0xe7n);
  expect(s.sdnx.fields.etoken_extension).toBe(0xe8n);
  expect(h.getOneReg(v, KVM_REG_S390_EPOCHDIFF)).toBe(REGS.epoch);
  expect(h.getOneReg(v, KVM_REG_S390_PFCOMPARE)).toBe(REGS.pfc);
  expect(h.getOneReg(v, KVM_REG_S390_PFSELECT)).toBe(REGS.pfs);
  expect(v.arch.diag318).toBe(0x318n);
}

/** assert_normal_noclear of the selftest, and everything else a normal reset leaves alone. */
function expectNormalKept(h: S390Harness, v: S390Vcpu, pswMask = PSW_MASK & ~PSW_MASK_RI): void {
  const s = h.kvmRun(v).s.regs;
  expect(s.crs[2]).toBe(0x10n);
  expect(s.crs[8]).toBe(1n);
  expect(s.crs[10]).toBe(1n);
  expect(s.crs[11]).toBe(0xffff_ffff_ffff_ffffn);
  expect(s.crs).toEqual(CRS);
  expect(h.getSregs(v).crs).toEqual(CRS);
  expect(h.getFpu(v).fpc).toBe(FPC);
  expect(s.fpc).toBe(FPC);
  expect(h.getOneReg(v, KVM_REG_S390_TODPR, 4)).toBe(REGS.todpr);
  expect(h.getOneReg(v, KVM_REG_S390_CPU_TIMER)).toBe(REGS.cputm);
  expect(h.getOneReg(v, KVM_REG_S390_CLOCK_COMP)).toBe(REGS.ckc);
  expect(h.getOneReg(v, KVM_REG_S390_PP)).toBe(REGS.pp);
  expect(h.getOneReg(v, KVM_REG_S390_GBEA)).toBe(REGS.gbea);
  expect(s.todpr).toBe(REGS.todpr);
  expect(s.cputm).toBe(REGS.cputm);
  expect(s.ckc).toBe(REGS.ckc);
  expect(s.pp).toBe(REGS.pp);
  expect(s.gbea).toBe(REGS.gbea);
  expect(v.arch.prefix).toBe(PREFIX);
  expect(s.prefix).toBe(BigInt(PREFIX));
  expect(v.arch.pswAddr).toBe(PSW_ADDR);
  expect(v.arch.pswMask).toBe(pswMask);
  expect(v.arch.bpbc).toBe(true);
  expectInitialKept(h, v);
}

// ---------------------------------------------------------------- the matrix

describe('the dirtied state before any reset', () => {
  it('every register holds what was written', () => {
    const { h, v } = setup();
    expect(v.arch.pswMask).toBe(PSW_MASK);
    expect(h.kvmRun(v).s.regs.riccb).toEqual(RICCB);
    expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(REGS.pft);
    expect(h.kvmRun(v).s.regs.pft).toBe(REGS.pft);
    expect(h.kvmRun(v).s.regs.bpbc & KVM_SYNC_REGS_BPBC_BIT).toBe(KVM_SYNC_REGS_BPBC_BIT);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_OPERATING);
    expectNormalKept(h, v, PSW_MASK);
  });
});

describe('KVM_S390_NORMAL_RESET', () => {
  it('drops every local interrupt, invalidates the pfault token, zeroes riccb, clears the RI bit', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_NORMAL_RESET);
    expectNormalCleared(h, v);
  });

  it('keeps GPRs, ACRs, CRs, FPRs, VRs, FPC, timers, PP, GBEA, prefix, the PSW without RI, gscb, etoken', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_NORMAL_RESET);
    expectNormalKept(h, v);
  });

  it('stops the CPU when user space does not control the run state', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_NORMAL_RESET);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
  });

  it('the selftest scenario: with the token never dirtied, the sync area also reads INVALID', () => {
    const { h, v } = setup(false);
    reset(h, v, KVM_S390_NORMAL_RESET);
    expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
    expect(h.kvmRun(v).s.regs.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
  });

  it('kvm_run keeps its stale copies of pft and psw_mask until the next KVM_RUN', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_NORMAL_RESET);
    const run = h.kvmRun(v);
    expect(run.s.regs.pft).toBe(REGS.pft);
    // The reset cleared RI in the SIE block only: kvm_run still shows it, and KVM_RUN loads
    // kvm_run's PSW, so a user space that does not rewrite psw_mask sets the bit again.
    expect(run.psw_mask & PSW_MASK_RI).toBe(PSW_MASK_RI);
    expect(h.run(v)).toBe(-4);
    expect(h.kvmRun(v).s.regs.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
    expect(v.arch.pswMask & PSW_MASK_RI).toBe(PSW_MASK_RI);
  });
});

describe('KVM_S390_INITIAL_RESET', () => {
  it('does all a normal reset does', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_INITIAL_RESET);
    expectNormalCleared(h, v);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
  });

  it('CR0 = 0xE0, CR14 = 0xC2000000, other CRs 0, FPC 0, GBEA 1, PP/TODPR/CPU timer/CKC 0, PSW 0', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_INITIAL_RESET);
    expectInitialCleared(h, v);
  });

  it('keeps GPRs, ACRs, FPRs and VRs, gscb, etoken, epoch difference, pfault select/compare', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_INITIAL_RESET);
    expectInitialKept(h, v);
  });

  it('writes the sync regs itself (b5de9eede579), without waiting for a KVM_RUN', () => {
    const { h, v } = setup();
    const before = h.kvmRun(v).s.regs;
    expect(before.crs).toEqual(CRS);
    expect(before.gbea).toBe(REGS.gbea);
    reset(h, v, KVM_S390_INITIAL_RESET);
    const after = h.kvmRun(v);
    expect(after.s.regs.crs).toEqual(INITIAL_CRS);
    expect(after.s.regs.gbea).toBe(1n);
    expect(after.s.regs.cputm).toBe(0n);
    expect(after.psw_mask).toBe(0n);
  });

  it('the fields the fix does not name (prefix, pft, bpbc) reach kvm_run at the next KVM_RUN', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_INITIAL_RESET);
    let s = h.kvmRun(v).s.regs;
    expect(s.prefix).toBe(BigInt(PREFIX));
    expect(s.pft).toBe(REGS.pft);
    expect(s.bpbc & KVM_SYNC_REGS_BPBC_BIT).toBe(KVM_SYNC_REGS_BPBC_BIT);
    expect(h.run(v)).toBe(-4);
    s = h.kvmRun(v).s.regs;
    expect(s.prefix).toBe(0n);
    expect(s.pft).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
    expect(s.bpbc & KVM_SYNC_REGS_BPBC_BIT).toBe(0);
    // and the initial values survive the round trip through the SIE block
    expect(s.crs).toEqual(INITIAL_CRS);
    expect(s.gbea).toBe(1n);
  });
});

describe('KVM_S390_CLEAR_RESET', () => {
  it('does all an initial reset does', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_CLEAR_RESET);
    expectNormalCleared(h, v);
    expectInitialCleared(h, v);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
  });

  it('and zeroes GPRs, ACRs, FPRs/VRs, the guarded-storage block, etoken and its extension', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_CLEAR_RESET);
    expectClearCleared(h, v);
  });

  it('keeps the epoch difference, pfault select/compare and diagnose 0x318', () => {
    const { h, v } = setup();
    reset(h, v, KVM_S390_CLEAR_RESET);
    expect(h.getOneReg(v, KVM_REG_S390_EPOCHDIFF)).toBe(REGS.epoch);
    expect(h.getOneReg(v, KVM_REG_S390_PFCOMPARE)).toBe(REGS.pfc);
    expect(h.getOneReg(v, KVM_REG_S390_PFSELECT)).toBe(REGS.pfs);
    expect(v.arch.diag318).toBe(0x318n);
  });
});

describe('every level: return value, run state, the capability', () => {
  const levels = [
    ['normal', KVM_S390_NORMAL_RESET],
    ['initial', KVM_S390_INITIAL_RESET],
    ['clear', KVM_S390_CLEAR_RESET],
  ] as const;

  it.each(levels)('%s reset returns 0, also on a fresh vCPU and twice in a row', (_n, req) => {
    const h = new S390Harness();
    const v = h.vcpu(0);
    expect(h.ioctlValue(v, req)).toBe(0);
    expect(h.ioctlValue(v, req)).toBe(0);
  });

  it.each(levels)('%s reset leaves the CPU operating under user-controlled CPU state', (_n, req) => {
    const { h, v } = setup();
    expect(h.setMpState(v, KVM_MP_STATE_OPERATING)).toBe(0);
    reset(h, v, req);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_OPERATING);
    expect(h.getIrqState(v).rc).toBe(0);
  });

  it.each(levels)('%s reset keeps a CPU that user space stopped stopped', (_n, req) => {
    const { h, v } = setup();
    expect(h.setMpState(v, KVM_MP_STATE_STOPPED)).toBe(0);
    reset(h, v, req);
    expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
  });

  it('user-controlled CPU state is per VM: SET_MP_STATE on one vCPU keeps another operating', () => {
    const h = new S390Harness();
    const a = h.vcpu(0);
    const b = h.vcpu(1);
    expect(h.run(b)).toBe(-4);
    expect(h.mpState(b)).toBe(KVM_MP_STATE_OPERATING);
    expect(h.setMpState(a, KVM_MP_STATE_STOPPED)).toBe(0);
    reset(h, b, KVM_S390_NORMAL_RESET);
    expect(h.mpState(b)).toBe(KVM_MP_STATE_OPERATING);
  });

  it('KVM_CAP_S390_VCPU_RESETS is 1 on /dev/kvm and on the VM', () => {
    const arch = s390Arch();
    expect(arch.checkExtension(KVM_CAP_S390_VCPU_RESETS)).toBe(1);
    expect(new S390Harness().vm.checkExtension(KVM_CAP_S390_VCPU_RESETS)).toBe(1);
  });
});

// ---------------------------------------------------------------- nesting, as a property

const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });

/** A vCPU in a random state: registers, sync area, run state and a few interrupts. */
function randomVcpu(seed: {
  gprs: bigint[];
  crs: bigint[];
  fprs: bigint[];
  acrs: number[];
  scalars: bigint[];
  psw: bigint;
  run: boolean;
  irqs: boolean[];
}): { h: S390Harness; v: S390Vcpu } {
  const h = new S390Harness();
  const v = h.vcpu(1);
  h.setRegs(v, seed.gprs);
  h.setSregs(v, seed.acrs, seed.crs);
  h.setFpu(v, 0, seed.fprs);
  const ids = [
    KVM_REG_S390_EPOCHDIFF,
    KVM_REG_S390_CPU_TIMER,
    KVM_REG_S390_CLOCK_COMP,
    KVM_REG_S390_PFTOKEN,
    KVM_REG_S390_PP,
    KVM_REG_S390_GBEA,
  ];
  ids.forEach((id, i) => {
    h.setOneReg(v, id, seed.scalars[i]!);
  });
  v.run.setU64(RUN.pswMask, seed.psw);
  if (seed.run) expect(h.run(v)).toBe(-4);
  const irqs = [
    { type: KVM_S390_RESTART },
    { type: KVM_S390_INT_CPU_TIMER },
    { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 1 } } },
  ];
  seed.irqs.forEach((on, i) => {
    if (on) expect(h.inject(v, irqs[i]!)).toBe(0);
  });
  return { h, v };
}

const seedArb = fc.record({
  gprs: fc.array(u64, { minLength: 16, maxLength: 16 }),
  crs: fc.array(u64, { minLength: 16, maxLength: 16 }),
  fprs: fc.array(u64, { minLength: 16, maxLength: 16 }),
  acrs: fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: 16, maxLength: 16 }),
  scalars: fc.array(u64, { minLength: 6, maxLength: 6 }),
  psw: u64,
  run: fc.boolean(),
  irqs: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
});

describe('the three levels nest', () => {
  it('initial = initial after normal; clear = clear after initial; each level is idempotent', () => {
    fc.assert(
      fc.property(seedArb, (seed) => {
        const results = (reqs: number[]) => {
          const { h, v } = randomVcpu(seed);
          for (const r of reqs) expect(h.ioctlValue(v, r)).toBe(0);
          return v.snapshot();
        };
        expect(results([KVM_S390_INITIAL_RESET])).toEqual(
          results([KVM_S390_NORMAL_RESET, KVM_S390_INITIAL_RESET]),
        );
        expect(results([KVM_S390_CLEAR_RESET])).toEqual(
          results([KVM_S390_INITIAL_RESET, KVM_S390_CLEAR_RESET]),
        );
        for (const r of [KVM_S390_NORMAL_RESET, KVM_S390_INITIAL_RESET, KVM_S390_CLEAR_RESET]) {
          expect(results([r, r])).toEqual(results([r]));
        }
      }),
      { numRuns: 25 },
    );
  });

  it('after any level of any state: no interrupt pends, the token is INVALID, RI is clear, the CPU stopped', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.constantFrom(KVM_S390_NORMAL_RESET, KVM_S390_INITIAL_RESET, KVM_S390_CLEAR_RESET),
        (seed, req) => {
          const { h, v } = randomVcpu(seed);
          expect(h.ioctlValue(v, req)).toBe(0);
          expect(h.getIrqState(v).rc).toBe(0);
          expect(h.getOneReg(v, KVM_REG_S390_PFTOKEN)).toBe(KVM_S390_PFAULT_TOKEN_INVALID);
          expect(v.arch.pswMask & PSW_MASK_RI).toBe(0n);
          expect(h.mpState(v)).toBe(KVM_MP_STATE_STOPPED);
        },
      ),
      { numRuns: 25 },
    );
  });
});

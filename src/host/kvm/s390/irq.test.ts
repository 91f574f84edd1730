/**
 * Local interrupts of an s390 vCPU: KVM_S390_IRQ and KVM_S390_INTERRUPT validation as
 * interrupt.c does it, the priority classes, KVM_S390_GET/SET_IRQ_STATE round trips and every
 * errno with the vCPU unchanged.
 */

import { describe, expect, it } from 'vitest';
import { EBUSY, EFAULT, EINVAL, ENOBUFS } from '../../../uapi/errno.ts';
import { KVM_MP_STATE_OPERATING, KVM_MP_STATE_STOPPED } from '../../../uapi/kvm.ts';
import {
  KVM_S390_GET_IRQ_STATE,
  KVM_S390_INT_CLOCK_COMP,
  KVM_S390_INT_CPU_TIMER,
  KVM_S390_INT_EMERGENCY,
  KVM_S390_INT_EXTERNAL_CALL,
  KVM_S390_INT_IO_MAX,
  KVM_S390_INT_PFAULT_DONE,
  KVM_S390_INT_PFAULT_INIT,
  KVM_S390_INT_SERVICE,
  KVM_S390_INT_VIRTIO,
  KVM_S390_INTERRUPT,
  KVM_S390_IRQ,
  KVM_S390_MCHK,
  KVM_S390_PGM_FLAGS_ILC_VALID,
  KVM_S390_PROGRAM_INT,
  KVM_S390_RESTART,
  KVM_S390_SET_IRQ_STATE,
  KVM_S390_SIGP_SET_PREFIX,
  KVM_S390_SIGP_STOP,
  KVM_S390_STOP_FLAG_STORE_STATUS,
  kvm_s390_interrupt,
  kvm_s390_irq,
  kvm_s390_irq_state,
  PGM_PER,
  VCPU_IRQS_MAX_BUF,
} from '../../../uapi/kvm-s390.ts';
import {
  IRQ_PEND_EXT_CPU_TIMER,
  IRQ_PEND_EXT_EMERGENCY,
  IRQ_PEND_EXT_EXTERNAL,
  IRQ_PEND_MCHK_EX,
  IRQ_PEND_NAMES,
  IRQ_PEND_PROG,
  IRQ_PEND_RESTART,
  IRQ_PEND_SET_PREFIX,
} from './irq.ts';
import { type IrqInput, S390Harness } from './test-harness.ts';
import type { S390Vcpu } from './vcpu.ts';

function twoVcpus(): { h: S390Harness; v: S390Vcpu; w: S390Vcpu } {
  const h = new S390Harness();
  return { h, v: h.vcpu(0), w: h.vcpu(5) };
}

/** Expects `call` to return `rc` and leave the vCPU exactly as it was. */
function expectRefused(v: S390Vcpu, rc: number, call: () => number): void {
  const before = v.snapshot();
  expect(call()).toBe(rc);
  expect(v.snapshot()).toEqual(before);
}

const MCIC_EXIGENT = 1n << 63n;
const MCIC_REPRESSIBLE = 1n << 56n;

/** One of each local interrupt a stopped CPU accepts, in ascending class order. */
const ALL_STOPPED: IrqInput[] = [
  { type: KVM_S390_SIGP_SET_PREFIX, u: { prefix: { address: 0x2000 } } },
  { type: KVM_S390_RESTART },
  { type: KVM_S390_INT_PFAULT_INIT, u: { ext: { ext_params: 7, ext_params2: 0x1234n } } },
  { type: KVM_S390_INT_CPU_TIMER },
  { type: KVM_S390_INT_CLOCK_COMP },
  { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 5 } } },
  {
    type: KVM_S390_PROGRAM_INT,
    u: { pgm: { code: 0x11, flags: KVM_S390_PGM_FLAGS_ILC_VALID | 4, trans_exc_code: 0x1000n } },
  },
  { type: KVM_S390_MCHK, u: { mchk: { mcic: MCIC_EXIGENT, cr14: 0x100n, ext_damage_code: 3 } } },
  { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 5 } } },
  { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 0 } } },
];

describe('KVM_S390_IRQ: each local interrupt and its priority class', () => {
  it('every type is accepted and listed back with its parameters, classes ascending, emergencies last', () => {
    const { h, v } = twoVcpus();
    for (const irq of ALL_STOPPED) expect(h.inject(v, irq)).toBe(0);
    const { rc, irqs } = h.getIrqState(v);
    expect(rc).toBe(10 * kvm_s390_irq.size);
    expect(irqs.map((i) => Number(i.type))).toEqual([
      KVM_S390_SIGP_SET_PREFIX,
      KVM_S390_RESTART,
      KVM_S390_INT_PFAULT_INIT,
      KVM_S390_INT_CPU_TIMER,
      KVM_S390_INT_CLOCK_COMP,
      KVM_S390_INT_EXTERNAL_CALL,
      KVM_S390_PROGRAM_INT,
      KVM_S390_MCHK,
      KVM_S390_INT_EMERGENCY,
      KVM_S390_INT_EMERGENCY,
    ]);
    expect(irqs[0]!.u.prefix.address).toBe(0x2000);
    expect(irqs[2]!.u.ext).toMatchObject({ ext_params: 7, ext_params2: 0x1234n });
    expect(irqs[5]!.u.extcall.code).toBe(5);
    expect(irqs[6]!.u.pgm).toMatchObject({ code: 0x11, flags: 5, trans_exc_code: 0x1000n });
    expect(irqs[7]!.u.mchk).toMatchObject({ mcic: MCIC_EXIGENT, cr14: 0x100n, ext_damage_code: 3 });
    expect(irqs.slice(8).map((i) => i.u.emerg.code)).toEqual([0, 5]);
  });

  it('pending classes by priority: machine check > program > emergency > external call > timers > restart > prefix', () => {
    const { h, v } = twoVcpus();
    for (const irq of ALL_STOPPED) expect(h.inject(v, irq)).toBe(0);
    expect(v.irqs.pendingByPriority().map((c) => IRQ_PEND_NAMES[c])).toEqual([
      'MCHK_EX',
      'PROG',
      'EXT_EMERGENCY',
      'EXT_EXTERNAL',
      'EXT_CLOCK_COMP',
      'EXT_CPU_TIMER',
      'PFAULT_INIT',
      'RESTART',
      'SET_PREFIX',
    ]);
    expect(IRQ_PEND_MCHK_EX).toBeGreaterThan(IRQ_PEND_PROG);
    expect(IRQ_PEND_EXT_EMERGENCY).toBeGreaterThan(IRQ_PEND_EXT_EXTERNAL);
    expect(IRQ_PEND_EXT_CPU_TIMER).toBeGreaterThan(IRQ_PEND_RESTART);
    expect(IRQ_PEND_RESTART).toBeGreaterThan(IRQ_PEND_SET_PREFIX);
  });

  it('emergency signals queue one per sending CPU; a repeat from the same CPU is one', () => {
    const { h, v } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 5 } } })).toBe(0);
    expect(h.inject(v, { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 5 } } })).toBe(0);
    expect(h.inject(v, { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 0 } } })).toBe(0);
    expect(h.getIrqState(v).irqs.map((i) => i.u.emerg.code)).toEqual([0, 5]);
  });

  it('a program interrupt without a valid ILC gets ILC_VALID with length 0 (nothing was intercepted)', () => {
    const { h, v } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: 0x4, flags: 0x6 } } })).toBe(0);
    expect(h.getIrqState(v).irqs[0]!.u.pgm.flags).toBe(KVM_S390_PGM_FLAGS_ILC_VALID);
  });

  it('a PER event joins a pending program interrupt; a later non-PER code keeps the PER bit', () => {
    const { h, v } = twoVcpus();
    expect(
      h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: 0x11, trans_exc_code: 0xaaan } } }),
    ).toBe(0);
    expect(
      h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: PGM_PER, per_address: 0x500n } } }),
    ).toBe(0);
    let pgm = h.getIrqState(v).irqs[0]!.u.pgm;
    expect(pgm.code).toBe(0x11 | PGM_PER);
    expect(pgm.trans_exc_code).toBe(0xaaan);
    expect(pgm.per_address).toBe(0x500n);
    expect(
      h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: 0x4, trans_exc_code: 0xbbbn } } }),
    ).toBe(0);
    pgm = h.getIrqState(v).irqs[0]!.u.pgm;
    expect(pgm.code).toBe(0x4 | PGM_PER);
    expect(pgm.trans_exc_code).toBe(0xbbbn);
    expect(pgm.per_address).toBe(0x500n);
    // a code with PER and more replaces the whole block
    expect(h.inject(v, { type: KVM_S390_PROGRAM_INT, u: { pgm: { code: 0x84 } } })).toBe(0);
    pgm = h.getIrqState(v).irqs[0]!.u.pgm;
    expect(pgm.code).toBe(0x84);
    expect(pgm.per_address).toBe(0n);
  });

  it('machine checks accumulate; an mcic with neither class bit queues nothing', () => {
    const { h, v } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_MCHK, u: { mchk: { mcic: 1n } } })).toBe(0);
    expect(h.getIrqState(v).rc).toBe(0);
    expect(h.inject(v, { type: KVM_S390_MCHK, u: { mchk: { mcic: MCIC_REPRESSIBLE, cr14: 1n } } })).toBe(0);
    expect(h.inject(v, { type: KVM_S390_MCHK, u: { mchk: { mcic: MCIC_EXIGENT, cr14: 2n } } })).toBe(0);
    const irqs = h.getIrqState(v).irqs;
    // both classes pending, each listed with the combined parameters
    expect(irqs.length).toBe(2);
    for (const i of irqs) {
      expect(i.u.mchk.mcic).toBe(1n | MCIC_REPRESSIBLE | MCIC_EXIGENT);
      expect(i.u.mchk.cr14).toBe(3n);
    }
  });

  it('SIGP STOP queues on an operating CPU, is a no-op on a stopped one, and stopping carries it out', () => {
    const { h, v } = twoVcpus();
    expect(
      h.inject(v, { type: KVM_S390_SIGP_STOP, u: { stop: { flags: KVM_S390_STOP_FLAG_STORE_STATUS } } }),
    ).toBe(0);
    expect(h.getIrqState(v).rc).toBe(0);
    expect(h.setMpState(v, KVM_MP_STATE_OPERATING)).toBe(0);
    expect(
      h.inject(v, { type: KVM_S390_SIGP_STOP, u: { stop: { flags: KVM_S390_STOP_FLAG_STORE_STATUS } } }),
    ).toBe(0);
    expect(h.getIrqState(v).irqs[0]!.u.stop.flags).toBe(KVM_S390_STOP_FLAG_STORE_STATUS);
    expect(h.setMpState(v, KVM_MP_STATE_STOPPED)).toBe(0);
    expect(h.getIrqState(v).rc).toBe(0);
  });

  it('an emergency signal or external call from any existing vCPU, itself included', () => {
    const { h, v, w } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: v.id } } })).toBe(0);
    expect(h.inject(w, { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: v.id } } })).toBe(0);
    expect(v.irqs.isPending(IRQ_PEND_EXT_EMERGENCY)).toBe(true);
    expect(w.irqs.isPending(IRQ_PEND_EXT_EXTERNAL)).toBe(true);
  });
});

describe('KVM_S390_IRQ refusals change nothing', () => {
  const stoppedRefusals: [string, IrqInput, number][] = [
    ['an unknown type', { type: 0xfffe_9999 }, EINVAL],
    ['a type with bits above 32', { type: 0x1_ffff_1201n }, EINVAL],
    ['an I/O interrupt (floating)', { type: 0x0001_0002 }, EINVAL],
    ['the last I/O type', { type: KVM_S390_INT_IO_MAX }, EINVAL],
    ['virtio (floating)', { type: KVM_S390_INT_VIRTIO }, EINVAL],
    ['service signal (floating)', { type: KVM_S390_INT_SERVICE }, EINVAL],
    ['pfault done (floating)', { type: KVM_S390_INT_PFAULT_DONE }, EINVAL],
    [
      'an emergency from a CPU that does not exist',
      { type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 7 } } },
      EINVAL,
    ],
    [
      'an external call from a CPU that does not exist',
      { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 254 } } },
      EINVAL,
    ],
    ['SIGP STOP with an unknown flag', { type: KVM_S390_SIGP_STOP, u: { stop: { flags: 2 } } }, EINVAL],
  ];

  it.each(stoppedRefusals)('%s: -%s', (_name, irq, errno) => {
    const { h, v } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
    expectRefused(v, -errno, () => h.inject(v, irq));
  });

  it('a second external call while one is pending: -EBUSY', () => {
    const { h, v } = twoVcpus();
    expect(h.inject(v, { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 5 } } })).toBe(0);
    expectRefused(v, -EBUSY, () =>
      h.inject(v, { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 0 } } }),
    );
    expect(h.getIrqState(v).irqs[0]!.u.extcall.code).toBe(5);
  });

  it('SET PREFIX on an operating CPU, and a second SIGP STOP: -EBUSY', () => {
    const { h, v } = twoVcpus();
    expect(h.run(v)).toBe(-4);
    expectRefused(v, -EBUSY, () =>
      h.inject(v, { type: KVM_S390_SIGP_SET_PREFIX, u: { prefix: { address: 0 } } }),
    );
    expect(h.inject(v, { type: KVM_S390_SIGP_STOP })).toBe(0);
    expectRefused(v, -EBUSY, () => h.inject(v, { type: KVM_S390_SIGP_STOP }));
  });

  it('a buffer shorter than struct kvm_s390_irq: -EFAULT', () => {
    const { h, v } = twoVcpus();
    const short = kvm_s390_irq.encode({ type: KVM_S390_RESTART }).subarray(0, 71);
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_S390_IRQ, short));
  });
});

describe('KVM_S390_INTERRUPT (the older struct) on a vCPU', () => {
  const call = (h: S390Harness, v: S390Vcpu, type: number, parm = 0, parm64 = 0n) =>
    h.ioctl(v, KVM_S390_INTERRUPT, kvm_s390_interrupt.encode({ type, parm, parm64 }));

  it('converts each type to its kvm_s390_irq', () => {
    const { h, v } = twoVcpus();
    expect(call(h, v, KVM_S390_PROGRAM_INT, 0x11)).toBe(0);
    expect(call(h, v, KVM_S390_INT_EMERGENCY, 5)).toBe(0);
    expect(call(h, v, KVM_S390_INT_EXTERNAL_CALL, 0)).toBe(0);
    expect(call(h, v, KVM_S390_SIGP_SET_PREFIX, 0x4000)).toBe(0);
    expect(call(h, v, KVM_S390_INT_PFAULT_INIT, 9, 0x99n)).toBe(0);
    expect(call(h, v, KVM_S390_MCHK, 0, MCIC_EXIGENT)).toBe(0);
    expect(call(h, v, KVM_S390_INT_CLOCK_COMP)).toBe(0);
    expect(call(h, v, KVM_S390_INT_CPU_TIMER)).toBe(0);
    expect(call(h, v, KVM_S390_RESTART)).toBe(0);
    const irqs = h.getIrqState(v).irqs;
    expect(irqs.length).toBe(9);
    expect(irqs.find((i) => Number(i.type) === KVM_S390_PROGRAM_INT)!.u.pgm.code).toBe(0x11);
    expect(irqs.find((i) => Number(i.type) === KVM_S390_SIGP_SET_PREFIX)!.u.prefix.address).toBe(0x4000);
    expect(irqs.find((i) => Number(i.type) === KVM_S390_INT_PFAULT_INIT)!.u.ext.ext_params2).toBe(0x99n);
    expect(irqs.find((i) => Number(i.type) === KVM_S390_MCHK)!.u.mchk.mcic).toBe(MCIC_EXIGENT);
  });

  it('a code parameter wider than 16 bits, or a floating type: -EINVAL; a short struct: -EFAULT', () => {
    const { h, v } = twoVcpus();
    expectRefused(v, -EINVAL, () => call(h, v, KVM_S390_PROGRAM_INT, 0x1_0011));
    expectRefused(v, -EINVAL, () => call(h, v, KVM_S390_INT_EMERGENCY, 0x1_0000));
    expectRefused(v, -EINVAL, () => call(h, v, KVM_S390_INT_EXTERNAL_CALL, 0x2_0005));
    expectRefused(v, -EINVAL, () => call(h, v, KVM_S390_INT_VIRTIO));
    expectRefused(v, -EINVAL, () => call(h, v, 0x1234));
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_S390_INTERRUPT, new Uint8Array(15)));
  });
});

describe('KVM_S390_GET/SET_IRQ_STATE', () => {
  it('round trip: what GET lists, SET on another vCPU reproduces byte for byte', () => {
    const { h, v, w } = twoVcpus();
    for (const irq of ALL_STOPPED) expect(h.inject(v, irq)).toBe(0);
    const got = h.getIrqState(v);
    const records = got.irqs.map((i) => ({ type: i.type, u: { reserved: i.u.reserved } }));
    expect(h.setIrqState(w, records)).toBe(0);
    const again = h.getIrqState(w);
    expect(again.rc).toBe(got.rc);
    expect(again.raw.subarray(0, again.rc)).toEqual(got.raw.subarray(0, got.rc));
  });

  it('GET returns bytes, 0 when nothing is pending, and leaves the interrupts pending', () => {
    const { h, v } = twoVcpus();
    expect(h.getIrqState(v).rc).toBe(0);
    expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
    expect(h.getIrqState(v).rc).toBe(72);
    expect(h.getIrqState(v).rc).toBe(72);
  });

  it('GET: len 0 is -EINVAL; a short buffer -ENOBUFS after the records that fit; a bad buffer -EFAULT', () => {
    const { h, v } = twoVcpus();
    for (const irq of ALL_STOPPED.slice(0, 3)) expect(h.inject(v, irq)).toBe(0);
    expectRefused(v, -EINVAL, () => h.getIrqState(v, 0).rc);
    let raw: Uint8Array = new Uint8Array(0);
    expectRefused(v, -ENOBUFS, () => {
      const got = h.getIrqState(v, 2 * 72 + 71);
      raw = got.raw;
      return got.rc;
    });
    expect(kvm_s390_irq.decode(raw, 0).type).toBe(BigInt(KVM_S390_SIGP_SET_PREFIX));
    expect(kvm_s390_irq.decode(raw, 72).type).toBe(BigInt(KVM_S390_RESTART));
    expectRefused(v, -EFAULT, () =>
      h.ioctl(v, KVM_S390_GET_IRQ_STATE, kvm_s390_irq_state.encode({ buf: 0x10, len: 720 })),
    );
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_S390_GET_IRQ_STATE, new Uint8Array(31)));
  });

  it('SET: len 0, not a multiple of 72 or above the maximum is -EINVAL', () => {
    const { h, v } = twoVcpus();
    const one: IrqInput[] = [{ type: KVM_S390_RESTART }];
    expectRefused(v, -EINVAL, () => h.setIrqState(v, one, 0));
    expectRefused(v, -EINVAL, () => h.setIrqState(v, one, 71));
    expectRefused(v, -EINVAL, () => h.setIrqState(v, one, VCPU_IRQS_MAX_BUF + 72));
    expect(VCPU_IRQS_MAX_BUF % 72).toBe(0);
  });

  it('SET: an unreadable buffer or struct is -EFAULT; interrupts already pending -EBUSY', () => {
    const { h, v } = twoVcpus();
    expectRefused(v, -EFAULT, () =>
      h.ioctl(v, KVM_S390_SET_IRQ_STATE, kvm_s390_irq_state.encode({ buf: 0x10, len: 72 })),
    );
    expectRefused(v, -EFAULT, () => h.ioctl(v, KVM_S390_SET_IRQ_STATE, new Uint8Array(16)));
    expect(h.inject(v, { type: KVM_S390_RESTART })).toBe(0);
    expectRefused(v, -EBUSY, () => h.setIrqState(v, [{ type: KVM_S390_INT_CPU_TIMER }]));
  });

  it('SET: a refused record refuses the whole batch, and nothing is injected (Decision)', () => {
    const { h, v } = twoVcpus();
    const batch: IrqInput[] = [
      { type: KVM_S390_RESTART },
      { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 5 } } },
      { type: KVM_S390_INT_EXTERNAL_CALL, u: { extcall: { code: 0 } } },
    ];
    expectRefused(v, -EBUSY, () => h.setIrqState(v, batch));
    expectRefused(v, -EINVAL, () =>
      h.setIrqState(v, [{ type: KVM_S390_RESTART }, { type: KVM_S390_INT_VIRTIO }]),
    );
    expect(h.getIrqState(v).rc).toBe(0);
  });

  it('SET: the selftest injection, an emergency signal from the vCPU itself', () => {
    const h = new S390Harness();
    const v = h.vcpu(3);
    expect(h.setIrqState(v, [{ type: KVM_S390_INT_EMERGENCY, u: { emerg: { code: 3 } } }])).toBe(0);
    const { rc, irqs } = h.getIrqState(v);
    expect(rc).toBe(72);
    expect(irqs[0]!.type).toBe(BigInt(KVM_S390_INT_EMERGENCY));
    expect(irqs[0]!.u.emerg.code).toBe(3);
  });
});

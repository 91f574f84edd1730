/**
 * arm64 KVM through the fds: vCPU init and its refusals, the core registers through ONE_REG and
 * KVM_GET_REG_LIST (every errno with the registers unchanged), MP state, KVM_RUN's entry checks;
 * the GICv3 device (creation, attributes, initialisation, KVM_IRQ_LINE) and its refusals.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  E2BIG,
  EBUSY,
  EEXIST,
  EFAULT,
  EINTR,
  EINVAL,
  EIO,
  ENODEV,
  ENOENT,
  ENOEXEC,
  ENOTTY,
  ENXIO,
} from '../../../uapi/errno.ts';
import { MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../uapi/fcntl.ts';
import {
  KVM_ARM_IRQ_TYPE_CPU,
  KVM_ARM_IRQ_TYPE_PPI,
  KVM_ARM_IRQ_TYPE_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI,
  KVM_ARM_IRQ_VCPU_SHIFT,
  KVM_ARM_PREFERRED_TARGET,
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_ARM_VCPU_EL1_32BIT,
  KVM_ARM_VCPU_INIT,
  KVM_ARM_VCPU_POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2,
  KVM_ARM_VCPU_SVE,
  KVM_CREATE_DEVICE_TEST,
  KVM_CREATE_IRQCHIP,
  KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_DEV_TYPE_ARM_VGIC_ITS,
  KVM_DEV_TYPE_ARM_VGIC_V2,
  KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_DEV_TYPE_VFIO,
  KVM_GET_DEVICE_ATTR,
  KVM_GET_MP_STATE,
  KVM_GET_ONE_REG,
  KVM_GET_REG_LIST,
  KVM_HAS_DEVICE_ATTR,
  KVM_IRQ_LINE,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_STOPPED,
  KVM_REG_ARM_CORE,
  KVM_REG_ARM64,
  KVM_REG_S390,
  KVM_REG_SIZE_U32,
  KVM_REG_SIZE_U64,
  KVM_RUN,
  KVM_S390_NORMAL_RESET,
  KVM_SET_DEVICE_ATTR,
  KVM_SET_MP_STATE,
  KVM_SET_ONE_REG,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
  kvm_irq_level,
  kvm_mp_state,
  kvm_one_reg,
  kvm_reg_list,
  kvm_regs_arm64,
  kvm_vcpu_init,
  PSR_MODE_EL1h,
  VCPU_RESET_PSTATE_EL1,
} from '../../../uapi/kvm.ts';
import type { Process } from '../../kernel/process.ts';
import {
  armVcpuInit,
  armVmWithGic,
  createDevice,
  createVcpu,
  createVm,
  deviceAttr,
  GIC_DIST_BASE,
  GIC_REDIST_BASE,
  kvmRig,
} from '../kvm-testing.ts';
import type { Arm64Vm } from './arch.ts';
import { CORE_REG_IDS, coreRegId } from './vcpu.ts';

const off = (f: keyof typeof kvm_regs_arm64.fields & string): number => kvm_regs_arm64.offsetof(f) / 4;
const X = (n: number): bigint => coreRegId((kvm_regs_arm64.offsetof('regs') + 8 * n) / 4);
const PC = coreRegId(off('pc'));
const PSTATE = coreRegId(off('pstate'));
const FPSR = coreRegId(off('fpsr'));
const V0 = coreRegId(off('vregs'));

/** A VMM buffer for ONE_REG values, and get/set through it. */
function regIo(proc: Process, vcpu: number) {
  const buf = proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  const get = (id: bigint, len = 8): { r: number; v: Uint8Array } => {
    const r = proc.ioctl(vcpu, KVM_GET_ONE_REG, kvm_one_reg.encode({ id, addr: BigInt(buf) }));
    return { r, v: proc.mm.readUser(buf, len)! };
  };
  const set = (id: bigint, v: Uint8Array | bigint, addr = BigInt(buf)): number => {
    const bytes = typeof v === 'bigint' ? le64(v) : v;
    proc.mm.writeUser(buf, bytes);
    return proc.ioctl(vcpu, KVM_SET_ONE_REG, kvm_one_reg.encode({ id, addr }));
  };
  const get64 = (id: bigint): bigint => new DataView(get(id).v.buffer).getBigUint64(0, true);
  return { buf, get, set, get64 };
}

function le64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function vcpuSetup() {
  const r = kvmRig();
  const vm = createVm(r);
  const vcpu = createVcpu(r.proc, vm, 0);
  const arch = (r.kvm.vms[0]!.arch as Arm64Vm).vcpus[0]!;
  return { r, vm, vcpu, arch, io: regIo(r.proc, vcpu) };
}

describe('KVM_ARM_PREFERRED_TARGET and KVM_ARM_VCPU_INIT', () => {
  it('the preferred target is GENERIC_V8 with no features', () => {
    const { r, vm } = vcpuSetup();
    const b = new Uint8Array(32).fill(0xff);
    expect(r.proc.ioctl(vm, KVM_ARM_PREFERRED_TARGET, b)).toBe(0);
    expect(kvm_vcpu_init.decode(b)).toEqual({
      target: KVM_ARM_TARGET_GENERIC_V8,
      features: [0, 0, 0, 0, 0, 0, 0],
    });
  });

  it('resets the core registers: all zero but PSTATE = EL1h, DAIF masked', () => {
    const { r, vcpu, io } = vcpuSetup();
    expect(armVcpuInit(r.proc, vcpu)).toBe(0);
    expect(io.get64(PSTATE)).toBe(BigInt(VCPU_RESET_PSTATE_EL1));
    expect(io.get64(PC)).toBe(0n);
    expect(io.set(X(3), 0xdeadn)).toBe(0);
    // A second INIT with the same target and features resets again.
    expect(armVcpuInit(r.proc, vcpu)).toBe(0);
    expect(io.get64(X(3))).toBe(0n);
  });

  it('POWER_OFF starts the vCPU stopped; MP_STATE reads and sets it', () => {
    const { r, vcpu } = vcpuSetup();
    expect(armVcpuInit(r.proc, vcpu, 1 << KVM_ARM_VCPU_POWER_OFF)).toBe(0);
    const mp = new Uint8Array(4);
    expect(r.proc.ioctl(vcpu, KVM_GET_MP_STATE, mp)).toBe(0);
    expect(kvm_mp_state.decode(mp).mp_state).toBe(KVM_MP_STATE_STOPPED);
    expect(
      r.proc.ioctl(vcpu, KVM_SET_MP_STATE, kvm_mp_state.encode({ mp_state: KVM_MP_STATE_RUNNABLE })),
    ).toBe(0);
    expect(r.proc.ioctl(vcpu, KVM_GET_MP_STATE, mp)).toBe(0);
    expect(kvm_mp_state.decode(mp).mp_state).toBe(KVM_MP_STATE_RUNNABLE);
    expect(r.proc.ioctl(vcpu, KVM_SET_MP_STATE, kvm_mp_state.encode({ mp_state: KVM_MP_STATE_HALTED }))).toBe(
      -EINVAL,
    );
    expect(r.proc.ioctl(vcpu, KVM_GET_MP_STATE, mp)).toBe(0);
    expect(kvm_mp_state.decode(mp).mp_state).toBe(KVM_MP_STATE_RUNNABLE);
  });

  it('refusals: target, unknown and unsupported features, a changed second INIT — nothing changes', () => {
    const { r, vcpu, arch } = vcpuSetup();
    const init = (target: number, f0: number, f1 = 0): number =>
      r.proc.ioctl(
        vcpu,
        KVM_ARM_VCPU_INIT,
        kvm_vcpu_init.encode({ target, features: [f0, f1, 0, 0, 0, 0, 0] }),
      );
    expect(init(0, 0)).toBe(-EINVAL);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 1 << 7)).toBe(-ENOENT);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 0, 1)).toBe(-ENOENT);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 1 << KVM_ARM_VCPU_EL1_32BIT)).toBe(-EINVAL);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 1 << KVM_ARM_VCPU_SVE)).toBe(-EINVAL);
    expect(arch.initialized).toBe(false);
    expect(r.proc.ioctl(vcpu, KVM_ARM_VCPU_INIT, new Uint8Array(8))).toBe(-EFAULT);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 1 << KVM_ARM_VCPU_PSCI_0_2)).toBe(0);
    expect(init(KVM_ARM_TARGET_GENERIC_V8, 0)).toBe(-EINVAL);
    expect(arch.features).toBe(1 << KVM_ARM_VCPU_PSCI_0_2);
  });

  it('other vCPU ioctls — including the s390 resets and x86’s GET_REGS — are EINVAL', () => {
    const { r, vcpu } = vcpuSetup();
    expect(r.proc.ioctl(vcpu, KVM_S390_NORMAL_RESET, 0)).toBe(-EINVAL);
    expect(r.proc.ioctl(vcpu, 0x8090ae81 /* KVM_GET_REGS (x86 size) */, new Uint8Array(0x90))).toBe(-EINVAL);
  });
});

describe('core registers through ONE_REG', () => {
  it('round-trips x0–x30, sp, pc, spsr, v0–v31 (128-bit), fpsr/fpcr (32-bit)', () => {
    const { r, vcpu, io } = vcpuSetup();
    armVcpuInit(r.proc, vcpu);
    for (let n = 0; n < 31; n++) expect(io.set(X(n), BigInt(n) * 0x1_0000_0001n)).toBe(0);
    for (let n = 0; n < 31; n++) expect(io.get64(X(n))).toBe(BigInt(n) * 0x1_0000_0001n);
    expect(io.set(PC, 0x4008_0000n)).toBe(0);
    expect(io.get64(PC)).toBe(0x4008_0000n);
    const v = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    expect(io.set(V0 + 4n * 5n, v)).toBe(0);
    expect([...io.get(V0 + 20n, 16).v]).toEqual([...v]);
    expect(io.set(FPSR, Uint8Array.of(0x11, 0, 0, 8))).toBe(0);
    expect([...io.get(FPSR, 4).v]).toEqual([0x11, 0, 0, 8]);
  });

  it('KVM_GET_REG_LIST lists 75 core registers, each readable and of its size', () => {
    const { r, vcpu, io } = vcpuSetup();
    const buf = r.proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    expect(r.proc.ioctl(vcpu, KVM_GET_REG_LIST, buf)).toBe(-ENOEXEC);
    armVcpuInit(r.proc, vcpu);
    r.proc.mm.writeUser(buf, kvm_reg_list.encode({ n: 10n }));
    expect(r.proc.ioctl(vcpu, KVM_GET_REG_LIST, buf)).toBe(-E2BIG);
    expect(kvm_reg_list.decode(r.proc.mm.readUser(buf, 8)!).n).toBe(75n);
    expect(r.proc.ioctl(vcpu, KVM_GET_REG_LIST, buf)).toBe(0);
    const ids = r.proc.mm.readUser(buf + 8, 75 * 8)!;
    const dv = new DataView(ids.buffer);
    const listed = Array.from({ length: 75 }, (_, i) => dv.getBigUint64(i * 8, true));
    expect(listed).toEqual(CORE_REG_IDS);
    for (const id of listed) expect(io.get(id, 16).r).toBe(0);
  });

  it('every refusal in Linux’s order, and the registers unchanged', () => {
    const { r, vcpu, io, arch } = vcpuSetup();
    expect(io.get(PC).r).toBe(-ENOEXEC);
    expect(io.set(PC, 1n)).toBe(-ENOEXEC);
    armVcpuInit(r.proc, vcpu);
    io.set(X(1), 0x1111n);
    const before = arch.regs.slice();
    const x0u32 = KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE;
    const cases: [string, () => number, number][] = [
      ['short kvm_one_reg', () => r.proc.ioctl(vcpu, KVM_SET_ONE_REG, new Uint8Array(8)), -EFAULT],
      ['an s390 id', () => io.set(KVM_REG_S390 | KVM_REG_SIZE_U64 | 5n, 1n), -EINVAL],
      ['a system register (not modelled)', () => io.set(0x6030_0000_0013_c000n, 1n), -ENOENT],
      [
        'past struct kvm_regs',
        () => io.set(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | 216n, 1n),
        -ENOENT,
      ],
      [
        'the last word, 64 bits wide (runs past the end)',
        () => io.set(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | 215n, 1n),
        -ENOENT,
      ],
      ['x0 read as a u32', () => io.set(x0u32, Uint8Array.of(1, 2, 3, 4)), -EINVAL],
      ['the middle of x1', () => io.set(X(1) + 1n, 1n), -EINVAL],
      [
        'the padding before the FP state',
        () => io.set(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | 82n, 1n),
        -EINVAL,
      ],
      ['value pointer unmapped (set)', () => io.set(X(1), 5n, 0x10n), -EFAULT],
      [
        'value pointer unmapped (get)',
        () => r.proc.ioctl(vcpu, KVM_GET_ONE_REG, kvm_one_reg.encode({ id: X(1), addr: 0x10n })),
        -EFAULT,
      ],
      ['PSTATE in AArch32 user mode', () => io.set(PSTATE, 0x10n), -EINVAL],
      ['PSTATE in EL2h', () => io.set(PSTATE, 0x9n), -EINVAL],
    ];
    for (const [what, call, errno] of cases) {
      expect(call(), what).toBe(errno);
      expect([...arch.regs], what).toEqual([...before]);
    }
    expect(io.set(PSTATE, BigInt(PSR_MODE_EL1h))).toBe(0);
  });

  it('property: any sequence of valid core-register writes reads back as a plain byte array would', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: CORE_REG_IDS.length - 1 }),
            fc.uint8Array({ minLength: 16, maxLength: 16 }),
          ),
          {
            maxLength: 30,
          },
        ),
        (writes) => {
          const { r, vcpu, io } = vcpuSetup();
          armVcpuInit(r.proc, vcpu);
          const model = new Uint8Array(kvm_regs_arm64.size);
          model.set(io.get(PSTATE).v, kvm_regs_arm64.offsetof('pstate'));
          for (const [i, bytes] of writes) {
            const id = CORE_REG_IDS[i]!;
            if (id === PSTATE) continue;
            const size = 1 << Number((id >> 52n) & 0xfn);
            const o = Number(id & 0xffffn) * 4;
            expect(io.set(id, bytes.subarray(0, size))).toBe(0);
            model.set(bytes.subarray(0, size), o);
          }
          for (const id of CORE_REG_IDS) {
            const size = 1 << Number((id >> 52n) & 0xfn);
            const o = Number(id & 0xffffn) * 4;
            expect([...io.get(id, size).v]).toEqual([...model.subarray(o, o + size)]);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('KVM_RUN entry checks', () => {
  it('ENOEXEC before INIT; with a vGIC: ENXIO until placed, EBUSY until initialised', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-ENOEXEC);
    armVcpuInit(r.proc, vcpu);
    const gic = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).fd;
    const set = (group: number, attr: number, v = 0n) =>
      deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, group, attr, v).r;
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-ENXIO);
    expect(set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, BigInt(GIC_REDIST_BASE))).toBe(0);
    expect(set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, BigInt(GIC_REDIST_BASE))).toBe(0);
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-EINVAL); // distributor inside the redistributors
    const arch = (r.kvm.vms[0]!.arch as Arm64Vm).vcpus[0]!;
    expect(arch.hasRunOnce).toBe(false);
  });

  it('a vCPU that ran forbids creating the interrupt controller (EBUSY)', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    armVcpuInit(r.proc, vcpu);
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-EINTR);
    expect(createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).r).toBe(-EBUSY);
    expect((r.kvm.vms[0]!.arch as Arm64Vm).vgic).toBeUndefined();
  });

  it('a VM set up like QEMU’s virt machine runs (-EINTR, no instruction executed)', () => {
    const r = kvmRig();
    const { vcpus } = armVmWithGic(r, 2);
    for (const v of vcpus) expect(r.proc.ioctl(v, KVM_RUN, 0)).toBe(-EINTR);
  });
});

describe('the GICv3 device', () => {
  it('KVM_CREATE_DEVICE: TEST, EEXIST, and ENODEV for the types this host lacks', () => {
    const r = kvmRig();
    const vm = createVm(r);
    expect(createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_CREATE_DEVICE_TEST).r).toBe(0);
    expect((r.kvm.vms[0]!.arch as Arm64Vm).vgic).toBeUndefined();
    for (const t of [KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_VFIO, 99])
      expect(createDevice(r.proc, vm, t).r).toBe(-ENODEV);
    const made = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3);
    expect(made.r).toBe(0);
    expect(made.fd).toBeGreaterThan(0);
    expect(createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).r).toBe(-EEXIST);
    expect(createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_CREATE_DEVICE_TEST).r).toBe(0);
    expect(r.proc.ioctl(vm, KVM_CREATE_IRQCHIP, 0)).toBe(-EEXIST);
    expect(r.kvm.vms[0]!.devices).toHaveLength(1);
  });

  it('KVM_CREATE_IRQCHIP (a GICv2) is ENODEV on this GICv3-only host', () => {
    const r = kvmRig();
    const vm = createVm(r);
    expect(r.proc.ioctl(vm, KVM_CREATE_IRQCHIP, 0)).toBe(-ENODEV);
  });

  it('addresses: E2BIG beyond the IPA space, EINVAL unaligned, EEXIST when placed; GET reads them back', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const gic = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).fd;
    const set = (attr: number, v: bigint) =>
      deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_ADDR, attr, v).r;
    const get = (attr: number) =>
      deviceAttr(r.proc, gic, KVM_GET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_ADDR, attr);
    expect(get(KVM_VGIC_V3_ADDR_TYPE_DIST)).toEqual({ r: 0, value: 0xffff_ffff_ffff_ffffn });
    expect(set(KVM_VGIC_V3_ADDR_TYPE_DIST, 1n << 40n)).toBe(-E2BIG);
    expect(set(KVM_VGIC_V3_ADDR_TYPE_DIST, BigInt(GIC_DIST_BASE + 0x1000))).toBe(-EINVAL);
    expect(set(KVM_VGIC_V3_ADDR_TYPE_DIST, BigInt(GIC_DIST_BASE))).toBe(0);
    expect(set(KVM_VGIC_V3_ADDR_TYPE_DIST, BigInt(GIC_DIST_BASE + 0x10000))).toBe(-EEXIST);
    expect(set(9, 0n)).toBe(-ENXIO);
    expect(get(KVM_VGIC_V3_ADDR_TYPE_DIST)).toEqual({ r: 0, value: BigInt(GIC_DIST_BASE) });
  });

  it('NR_IRQS: 64..1023 in multiples of 32, once, before init; CTRL_INIT; HAS_ATTR', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const gic = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).fd;
    const nr = (v: number) =>
      deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, BigInt(v)).r;
    const has = (group: number, attr: number) => deviceAttr(r.proc, gic, KVM_HAS_DEVICE_ATTR, group, attr).r;
    for (const bad of [32, 63, 96 + 1, 1024]) expect(nr(bad)).toBe(-EINVAL);
    expect(nr(128)).toBe(0);
    expect(nr(256)).toBe(-EBUSY);
    const vgic = (r.kvm.vms[0]!.arch as Arm64Vm).vgic!;
    expect(vgic.nrSpis).toBe(96);
    expect(
      deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT).r,
    ).toBe(0);
    expect(vgic.initialized).toBe(true);
    expect(deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_CTRL, 3).r).toBe(-ENXIO);
    expect(
      deviceAttr(r.proc, gic, KVM_GET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0).value & 0xffff_ffffn,
    ).toBe(128n);
    expect(has(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST)).toBe(0);
    expect(has(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0)).toBe(0);
    expect(has(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT)).toBe(0);
    expect(has(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0)).toBe(-ENXIO);
  });

  it('device-fd refusals: another process (EIO), unknown ioctl (ENOTTY), short attr (EFAULT)', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const gic = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).fd;
    expect(r.proc.ioctl(gic, KVM_RUN, 0)).toBe(-ENOTTY);
    expect(r.proc.ioctl(gic, KVM_SET_DEVICE_ATTR, new Uint8Array(8))).toBe(-EFAULT);
    const other = r.kernel.spawn('intruder');
    const ofd = other.installFd(r.proc.fget(gic)!, false);
    expect(other.ioctl(ofd, KVM_HAS_DEVICE_ATTR, new Uint8Array(24))).toBe(-EIO);
  });
});

describe('KVM_IRQ_LINE', () => {
  const line = (type: number, vcpu: number, num: number): number =>
    (type << KVM_ARM_IRQ_TYPE_SHIFT) | (vcpu << KVM_ARM_IRQ_VCPU_SHIFT) | num;

  it('SPI and PPI edges reach the vGIC; levels follow the line', () => {
    const r = kvmRig();
    const { vm } = armVmWithGic(r, 2);
    const vgic = (r.kvm.vms[0]!.arch as Arm64Vm).vgic!;
    const irq = (irqNum: number, level: number) =>
      r.proc.ioctl(vm, KVM_IRQ_LINE, kvm_irq_level.encode({ irq: irqNum, level }));
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 40), 1)).toBe(0);
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 40), 0)).toBe(0);
    expect(vgic.counts(0, 40).raised).toBe(1);
    expect(vgic.isPending(0, 40)).toBe(true);
    // PPI 27 (the virtual timer) on vCPU 1 is level-triggered.
    expect(irq(line(KVM_ARM_IRQ_TYPE_PPI, 1, 27), 1)).toBe(0);
    expect(vgic.isPending(1, 27)).toBe(true);
    expect(vgic.isPending(0, 27)).toBe(false);
    expect(irq(line(KVM_ARM_IRQ_TYPE_PPI, 1, 27), 0)).toBe(0);
    expect(vgic.isPending(1, 27)).toBe(false);
  });

  it('refusals: ENXIO by irqchip presence, EINVAL for bad vCPUs and numbers, EBUSY before init', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    armVcpuInit(r.proc, vcpu);
    const irq = (irqNum: number, level = 1) =>
      r.proc.ioctl(vm, KVM_IRQ_LINE, kvm_irq_level.encode({ irq: irqNum, level }));
    // No vGIC: SPI/PPI are ENXIO; CPU lines drive the vCPU's IRQ/FIQ inputs.
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 40))).toBe(-ENXIO);
    expect(irq(line(KVM_ARM_IRQ_TYPE_CPU, 0, 0))).toBe(0);
    expect((r.kvm.vms[0]!.arch as Arm64Vm).vcpus[0]!.cpuLines).toEqual([true, false]);
    expect(irq(line(KVM_ARM_IRQ_TYPE_CPU, 0, 2))).toBe(-EINVAL);
    expect(irq(line(KVM_ARM_IRQ_TYPE_CPU, 1, 0))).toBe(-EINVAL);
    expect(irq(line(3, 0, 0))).toBe(-EINVAL);
    expect(r.proc.ioctl(vm, KVM_IRQ_LINE, new Uint8Array(4))).toBe(-EFAULT);
    const gic = createDevice(r.proc, vm, KVM_DEV_TYPE_ARM_VGIC_V3).fd;
    expect(irq(line(KVM_ARM_IRQ_TYPE_CPU, 0, 0))).toBe(-ENXIO);
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 40))).toBe(-EBUSY);
    deviceAttr(r.proc, gic, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 31))).toBe(-EINVAL);
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 256))).toBe(-EINVAL);
    expect(irq(line(KVM_ARM_IRQ_TYPE_PPI, 0, 15))).toBe(-EINVAL);
    expect(irq(line(KVM_ARM_IRQ_TYPE_PPI, 1, 20))).toBe(-EINVAL);
    expect(irq(line(KVM_ARM_IRQ_TYPE_SPI, 0, 255))).toBe(0);
  });
});

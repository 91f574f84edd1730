/**
 * KVM's generic uAPI through syscalls, on the arm64 architecture: /dev/kvm (API version,
 * capabilities, VM types, mmap size), VM and vCPU creation with their errno paths, memory slots
 * (every refusal of __kvm_set_memory_region, with the slot table unchanged), guest memory through
 * the slots, the vCPU run page through mmap, and lifetimes (what closing each fd releases).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EBADF, EBUSY, EEXIST, EFAULT, EINVAL, EIO, EMFILE, ENODEV, ENOTTY } from '../../uapi/errno.ts';
import { MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, PROT_READ, PROT_WRITE } from '../../uapi/fcntl.ts';
import {
  KVM_API_VERSION,
  KVM_CAP_ARM_VM_IPA_SIZE,
  KVM_CAP_IRQFD,
  KVM_CAP_IRQFD_RESAMPLE,
  KVM_CAP_MAX_VCPU_ID,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_ONE_REG,
  KVM_CAP_S390_VCPU_RESETS,
  KVM_CAP_USER_MEMORY,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_EXIT_INTR,
  KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_RUN,
  KVM_SET_USER_MEMORY_REGION,
  kvm_run,
} from '../../uapi/kvm.ts';
import { PAGE_SIZE, TASK_SIZE } from '../kernel/mm.ts';
import { type Arm64Vm, arm64Arch } from './arm64/arch.ts';
import { addRam, armVcpuInit, armVmWithGic, createVcpu, createVm, kvmRig, setRegion } from './kvm-testing.ts';
import type { KvmVm } from './vm.ts';

const MiB = 1 << 20;

function vmOf(r: ReturnType<typeof kvmRig>): KvmVm {
  const vm = r.kvm.vms.at(-1);
  if (vm === undefined) throw new Error('no VM');
  return vm;
}

describe('/dev/kvm', () => {
  it('reports API version 12, and EINVAL for a non-zero argument', () => {
    const r = kvmRig();
    expect(KVM_API_VERSION).toBe(12);
    expect(r.proc.ioctl(r.sys, KVM_GET_API_VERSION, 0)).toBe(12);
    expect(r.proc.ioctl(r.sys, KVM_GET_API_VERSION, 1)).toBe(-EINVAL);
  });

  it('answers KVM_CHECK_EXTENSION on the system fd: generic and arm64 capabilities', () => {
    const r = kvmRig();
    const cap = (c: number): number => r.proc.ioctl(r.sys, KVM_CHECK_EXTENSION, c);
    expect(cap(KVM_CAP_USER_MEMORY)).toBe(1);
    expect(cap(KVM_CAP_IRQFD)).toBe(1);
    expect(cap(KVM_CAP_ONE_REG)).toBe(1);
    expect(cap(KVM_CAP_NR_MEMSLOTS)).toBe(512);
    expect(cap(KVM_CAP_MAX_VCPUS)).toBe(512);
    expect(cap(KVM_CAP_ARM_VM_IPA_SIZE)).toBe(48);
    // Not implemented, so not announced.
    expect(cap(KVM_CAP_IRQFD_RESAMPLE)).toBe(0);
    // seed-spec §4.1: the s390 reset capability is s390's alone.
    expect(cap(KVM_CAP_S390_VCPU_RESETS)).toBe(0);
    expect(cap(0x7fff_ffff)).toBe(0);
  });

  it('answers KVM_CHECK_EXTENSION on a VM fd too, with per-VM values', () => {
    const r = kvmRig(arm64Arch({ ipaLimit: 44 }));
    const vm = createVm(r);
    expect(r.proc.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_S390_VCPU_RESETS)).toBe(0);
    expect(r.proc.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPU_ID)).toBe(512);
    expect(r.proc.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE)).toBe(44);
  });

  it('gives the vCPU mmap size, and EINVAL for unknown system ioctls', () => {
    const r = kvmRig();
    expect(r.proc.ioctl(r.sys, KVM_GET_VCPU_MMAP_SIZE, 0)).toBe(PAGE_SIZE);
    expect(r.proc.ioctl(r.sys, KVM_RUN, 0)).toBe(-EINVAL);
    expect(r.proc.ioctl(r.sys, KVM_CREATE_VCPU, 0)).toBe(-EINVAL);
  });
});

describe('KVM_CREATE_VM', () => {
  it('accepts IPA sizes 0 (40 bits) and 32..limit; refuses the rest with nothing created', () => {
    const r = kvmRig();
    for (const t of [0, 32, 40, 48]) expect(r.proc.ioctl(r.sys, KVM_CREATE_VM, t)).toBeGreaterThanOrEqual(0);
    expect(r.kvm.vms.map((v) => (v.arch as Arm64Vm).ipaBits)).toEqual([40, 32, 40, 48]);
    for (const t of [31, 49, 0x100, 0x128, -1]) expect(r.proc.ioctl(r.sys, KVM_CREATE_VM, t)).toBe(-EINVAL);
    expect(r.kvm.vms).toHaveLength(4);
  });

  it('returns a close-on-exec fd', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const info = r.proc.fdinfo(vm) as string;
    const flags = Number.parseInt(/flags:\t(\d+)/.exec(info)![1]!, 8);
    expect(flags & O_CLOEXEC).toBe(O_CLOEXEC);
  });

  it('VM ioctls from another process are EIO, and change nothing', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const other = r.kernel.spawn('intruder');
    const ofd = other.installFd(r.proc.fget(vm)!, false);
    expect(other.ioctl(ofd, KVM_CREATE_VCPU, 0)).toBe(-EIO);
    expect(other.ioctl(ofd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD)).toBe(-EIO);
    expect(vmOf(r).vcpus.size).toBe(0);
  });
});

describe('KVM_CREATE_VCPU', () => {
  it('creates vCPUs with their own fds; a duplicate id is EEXIST', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const a = createVcpu(r.proc, vm, 0);
    const b = createVcpu(r.proc, vm, 7);
    expect(a).not.toBe(b);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 7)).toBe(-EEXIST);
    expect([...vmOf(r).vcpus.keys()]).toEqual([0, 7]);
    expect(vmOf(r).vcpuList.map((v) => v.index)).toEqual([0, 1]);
  });

  it('refuses ids at or beyond KVM_CAP_MAX_VCPU_ID', () => {
    const r = kvmRig();
    const vm = createVm(r);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 512)).toBe(-EINVAL);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 0xffff_ffff)).toBe(-EINVAL);
    expect(createVcpu(r.proc, vm, 511)).toBeGreaterThanOrEqual(0);
  });

  it('refuses new vCPUs once the vGIC is initialised (EBUSY)', () => {
    const r = kvmRig();
    const { vm } = armVmWithGic(r, 2);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 2)).toBe(-EBUSY);
    expect(vmOf(r).vcpus.size).toBe(2);
  });

  it('undoes the vCPU when no fd is free (EMFILE), freeing its run page', () => {
    const r = kvmRig(arm64Arch(), { nofile: 6 });
    const vm = createVm(r); // fds 0-2 stdio, 3 /dev/kvm, 4 the VM
    createVcpu(r.proc, vm, 0); // fd 5
    const used = r.kernel.host.alloc.bytesInUse;
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 1)).toBe(-EMFILE);
    expect(vmOf(r).vcpus.size).toBe(1);
    expect(r.kernel.host.alloc.bytesInUse).toBe(used);
    // The id is free again once an fd is.
    r.proc.close(r.sys);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 1)).toBe(3);
  });
});

describe('KVM_SET_USER_MEMORY_REGION', () => {
  function setup() {
    const r = kvmRig();
    const vm = createVm(r);
    const hva = r.proc.mmap(16 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    const slots = () => JSON.stringify({ s: vmOf(r).memslots.slots, g: vmOf(r).memslots.generation });
    return { r, vm, hva, slots };
  }

  it('creates, re-flags, moves and deletes a slot', () => {
    const { r, vm, hva } = setup();
    const base = { slot: 3, memory_size: BigInt(MiB), userspace_addr: BigInt(hva) };
    expect(setRegion(r.proc, vm, { ...base, guest_phys_addr: 0x4000_0000n })).toBe(0);
    expect(vmOf(r).memslots.find(0x4000_0000 + 5)?.id).toBe(3);
    // The same request again changes nothing (not even the generation).
    const g = vmOf(r).memslots.generation;
    expect(setRegion(r.proc, vm, { ...base, guest_phys_addr: 0x4000_0000n })).toBe(0);
    expect(vmOf(r).memslots.generation).toBe(g);
    expect(
      setRegion(r.proc, vm, { ...base, guest_phys_addr: 0x4000_0000n, flags: KVM_MEM_LOG_DIRTY_PAGES }),
    ).toBe(0);
    expect(vmOf(r).memslots.slots[0]!.flags).toBe(KVM_MEM_LOG_DIRTY_PAGES);
    expect(setRegion(r.proc, vm, { ...base, guest_phys_addr: 0x8000_0000n })).toBe(0);
    expect(vmOf(r).memslots.find(0x4000_0000)).toBeUndefined();
    expect(vmOf(r).memslots.find(0x8000_0000)?.hva).toBe(hva);
    expect(setRegion(r.proc, vm, { slot: 3 })).toBe(0);
    expect(vmOf(r).memslots.slots).toHaveLength(0);
  });

  it('refuses every malformed request in the kernel order, with the slot table unchanged', () => {
    const { r, vm, hva, slots } = setup();
    const ok = { slot: 0, guest_phys_addr: 0n, memory_size: BigInt(MiB), userspace_addr: BigInt(hva) };
    expect(setRegion(r.proc, vm, ok)).toBe(0);
    const other = {
      slot: 1,
      guest_phys_addr: 0x1000_0000n,
      memory_size: BigInt(MiB),
      userspace_addr: BigInt(hva + MiB),
    };
    const cases: [string, object, number][] = [
      ['slot id ≥ 512', { ...other, slot: 512 }, -EINVAL],
      ['unknown flag', { ...other, flags: 1 << 2 }, -EINVAL],
      ['size not page-aligned', { ...other, memory_size: BigInt(MiB + 1) }, -EINVAL],
      ['gpa not page-aligned', { ...other, guest_phys_addr: 0x1000_0800n }, -EINVAL],
      ['hva not page-aligned', { ...other, userspace_addr: BigInt(hva + 8) }, -EINVAL],
      ['hva range beyond TASK_SIZE', { ...other, userspace_addr: BigInt(TASK_SIZE - PAGE_SIZE) }, -EINVAL],
      ['address space 1', { ...other, slot: (1 << 16) | 1 }, -EINVAL],
      [
        'gpa range wraps',
        { ...other, guest_phys_addr: 0xffff_ffff_ffff_f000n, memory_size: 0x2000n },
        -EINVAL,
      ],
      ['deleting a slot that does not exist', { slot: 9 }, -EINVAL],
      ['changing a slot’s size', { ...ok, memory_size: BigInt(2 * MiB) }, -EINVAL],
      ['changing a slot’s user address', { ...ok, userspace_addr: BigInt(hva + MiB) }, -EINVAL],
      ['toggling READONLY on a slot', { ...ok, flags: KVM_MEM_READONLY }, -EINVAL],
      ['overlapping slot 0', { ...other, guest_phys_addr: BigInt(MiB - PAGE_SIZE) }, -EEXIST],
      ['moving onto slot 0', { ...other, guest_phys_addr: 0x80_0000n, slot: 0 }, 0],
    ];
    for (const [what, region, errno] of cases) {
      if (errno === 0) continue;
      const before = slots();
      expect(setRegion(r.proc, vm, region), what).toBe(errno);
      expect(slots(), what).toBe(before);
    }
  });

  it('refuses a slot that reaches the top of the IPA space (arm64: EFAULT)', () => {
    const { r, vm, hva, slots } = setup();
    const top = 2n ** 40n;
    const before = slots();
    expect(
      setRegion(r.proc, vm, {
        slot: 1,
        guest_phys_addr: top - BigInt(MiB),
        memory_size: BigInt(MiB),
        userspace_addr: BigInt(hva),
      }),
    ).toBe(-EFAULT);
    expect(
      setRegion(r.proc, vm, {
        slot: 1,
        guest_phys_addr: top,
        memory_size: BigInt(MiB),
        userspace_addr: BigInt(hva),
      }),
    ).toBe(-EFAULT);
    expect(slots()).toBe(before);
    expect(
      setRegion(r.proc, vm, {
        slot: 1,
        guest_phys_addr: top - BigInt(2 * MiB),
        memory_size: BigInt(MiB),
        userspace_addr: BigInt(hva),
      }),
    ).toBe(0);
  });

  it('accepts READONLY on arm64, and the guest cannot write there', () => {
    const { r, vm, hva } = setup();
    r.proc.mm.writeUser(hva, Uint8Array.of(1, 2, 3));
    expect(
      setRegion(r.proc, vm, {
        slot: 0,
        flags: KVM_MEM_READONLY,
        guest_phys_addr: 0n,
        memory_size: BigInt(MiB),
        userspace_addr: BigInt(hva),
      }),
    ).toBe(0);
    expect([...vmOf(r).readGuest(0, 3)!]).toEqual([1, 2, 3]);
    expect(vmOf(r).writeGuest(0, Uint8Array.of(9))).toBe(false);
    expect([...r.proc.mm.readUser(hva, 1)!]).toEqual([1]);
  });

  it('copies the argument in first: a short buffer is EFAULT', () => {
    const { r, vm, slots } = setup();
    const before = slots();
    expect(r.proc.ioctl(vm, KVM_SET_USER_MEMORY_REGION, new Uint8Array(16))).toBe(-EFAULT);
    expect(slots()).toBe(before);
  });

  it('guest memory is the VMM’s memory, across slots', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const a = addRam(r.proc, vm, 0, 0x4000_0000, MiB);
    const b = addRam(r.proc, vm, 1, 0x4000_0000 + MiB, MiB);
    const v = vmOf(r);
    expect(v.writeGuest(0x4000_0000 + MiB - 2, Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd))).toBe(true);
    expect([...r.proc.mm.readUser(a + MiB - 2, 2)!]).toEqual([0xaa, 0xbb]);
    expect([...r.proc.mm.readUser(b, 2)!]).toEqual([0xcc, 0xdd]);
    r.proc.mm.writeUser(b + 100, Uint8Array.of(7));
    expect(v.readGuest(0x4000_0000 + MiB + 100, 1)![0]).toBe(7);
    expect(v.gpaToHva(0x4000_0000 + MiB + 100)).toBe(b + 100);
    // A range that leaves the slots is refused whole.
    expect(v.readGuest(0x4000_0000 + 2 * MiB - 1, 2)).toBeUndefined();
    expect(v.writeGuest(0x4000_0000 - 1, Uint8Array.of(1, 2))).toBe(false);
    expect(r.proc.mm.readUser(a, 1)![0]).toBe(0);
  });

  it('the slot table agrees with a reference model under random requests (property)', () => {
    type Slot = { gpa: number; size: number; hva: number; flags: number };
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            slot: fc.integer({ min: 0, max: 3 }),
            gpaPage: fc.integer({ min: 0, max: 64 }),
            pages: fc.integer({ min: 0, max: 8 }),
            hvaPage: fc.integer({ min: 0, max: 3 }),
            flags: fc.constantFrom(0, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY),
          }),
          { maxLength: 30 },
        ),
        (reqs) => {
          const r = kvmRig();
          const vm = createVm(r);
          const hva = r.proc.mmap(64 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
          const model = new Map<number, Slot>();
          for (const q of reqs) {
            const want: Slot = {
              gpa: q.gpaPage * PAGE_SIZE,
              size: q.pages * PAGE_SIZE,
              hva: hva + q.hvaPage * PAGE_SIZE,
              flags: q.flags,
            };
            const old = model.get(q.slot);
            let expected: number;
            if (want.size === 0) expected = old === undefined ? -EINVAL : 0;
            else if (
              old !== undefined &&
              (old.hva !== want.hva ||
                old.size !== want.size ||
                ((old.flags ^ want.flags) & KVM_MEM_READONLY) !== 0)
            )
              expected = -EINVAL;
            else if (
              (old === undefined || old.gpa !== want.gpa) &&
              [...model].some(
                ([id, s]) => id !== q.slot && want.gpa < s.gpa + s.size && s.gpa < want.gpa + want.size,
              )
            )
              expected = -EEXIST;
            else expected = 0;
            const got = setRegion(r.proc, vm, {
              slot: q.slot,
              flags: q.flags,
              guest_phys_addr: BigInt(want.gpa),
              memory_size: BigInt(want.size),
              userspace_addr: BigInt(want.hva),
            });
            expect(got).toBe(expected);
            if (got === 0) {
              if (want.size === 0) model.delete(q.slot);
              else model.set(q.slot, want);
            }
          }
          const actual = vmOf(r).memslots.slots.map((s) => [s.id, s.gpa, s.size, s.hva, s.flags]);
          const expectedSlots = [...model]
            .map(([id, s]) => [id, s.gpa, s.size, s.hva, s.flags])
            .sort((x, y) => (x[1] as number) - (y[1] as number));
          expect(actual).toEqual(expectedSlots);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('the vCPU run page', () => {
  it('is mapped by mmap of the vCPU fd; KVM_RUN’s exit reason shows there', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    expect(armVcpuInit(r.proc, vcpu)).toBe(0);
    const size = r.proc.ioctl(r.sys, KVM_GET_VCPU_MMAP_SIZE, 0);
    const run = r.proc.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, 0, vcpu, 0);
    expect(run).toBeGreaterThan(0);
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-4 /* -EINTR */);
    const head = kvm_run.decode(r.proc.mm.readUser(run, 16)!);
    expect(head.exit_reason).toBe(KVM_EXIT_INTR);
    // Mapping beyond the run area is refused.
    expect(r.proc.mmap(2 * size, PROT_READ, MAP_SHARED, 0, vcpu, 0)).toBe(-EINVAL);
    expect(r.proc.mmap(size, PROT_READ, MAP_SHARED, 0, vcpu, PAGE_SIZE)).toBe(-EINVAL);
    // A VM fd has no mmap.
    expect(r.proc.mmap(size, PROT_READ, MAP_SHARED, 0, vm, 0)).toBe(-ENODEV);
  });

  it('immediate_exit makes KVM_RUN return -EINTR without touching the exit reason', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    armVcpuInit(r.proc, vcpu);
    const run = r.proc.mmap(PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0, vcpu, 0);
    r.proc.mm.writeUser(run + kvm_run.offsetof('immediate_exit'), Uint8Array.of(1));
    r.proc.mm.writeUser(run + kvm_run.offsetof('exit_reason'), Uint8Array.of(0x55));
    expect(r.proc.ioctl(vcpu, KVM_RUN, 0)).toBe(-4);
    expect(r.proc.mm.readUser(run + kvm_run.offsetof('exit_reason'), 1)![0]).toBe(0x55);
    expect(r.proc.ioctl(vcpu, KVM_RUN, 1)).toBe(-EINVAL);
  });

  it('vCPU ioctls from another process are EIO; non-KVM requests are EINVAL', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    const other = r.kernel.spawn('intruder');
    const ofd = other.installFd(r.proc.fget(vcpu)!, false);
    expect(other.ioctl(ofd, KVM_RUN, 0)).toBe(-EIO);
    expect(r.proc.ioctl(vcpu, 0x3b71 /* VFIO_GET_API_VERSION */, 0)).toBe(-EINVAL);
  });
});

describe('ioctls on the wrong kind of fd', () => {
  it('each is the errno KVM gives there, and nothing is created', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    const efd = r.proc.eventfd(0);
    const region = new Uint8Array(32);
    const cases: [string, number, number][] = [
      ['KVM_CREATE_VCPU on /dev/kvm', r.proc.ioctl(r.sys, KVM_CREATE_VCPU, 1), -EINVAL],
      [
        'KVM_SET_USER_MEMORY_REGION on /dev/kvm',
        r.proc.ioctl(r.sys, KVM_SET_USER_MEMORY_REGION, region),
        -EINVAL,
      ],
      ['KVM_CREATE_VM on a VM fd', r.proc.ioctl(vm, KVM_CREATE_VM, 0), -EINVAL],
      ['KVM_RUN on a VM fd', r.proc.ioctl(vm, KVM_RUN, 0), -EINVAL],
      ['KVM_CREATE_VCPU on a vCPU fd', r.proc.ioctl(vcpu, KVM_CREATE_VCPU, 1), -EINVAL],
      [
        'KVM_SET_USER_MEMORY_REGION on a vCPU fd',
        r.proc.ioctl(vcpu, KVM_SET_USER_MEMORY_REGION, region),
        -EINVAL,
      ],
      ['KVM_CHECK_EXTENSION on a vCPU fd', r.proc.ioctl(vcpu, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD), -EINVAL],
      ['KVM_RUN on an eventfd', r.proc.ioctl(efd, KVM_RUN, 0), -ENOTTY],
    ];
    for (const [what, got, errno] of cases) expect(got, what).toBe(errno);
    expect(r.kvm.vms).toHaveLength(1);
    expect(r.kvm.vms[0]!.vcpus.size).toBe(1);
    expect(r.kvm.vms[0]!.memslots.slots).toHaveLength(0);
  });
});

describe('lifetimes', () => {
  it('closing everything destroys the VM and returns its pages', () => {
    const r = kvmRig();
    const used = r.kernel.host.alloc.bytesInUse;
    const { vm, vcpus, gic } = armVmWithGic(r, 3);
    expect(r.kernel.host.alloc.bytesInUse).toBeGreaterThan(used);
    r.proc.close(vm);
    expect(r.kvm.vms).toHaveLength(1); // vCPU and device fds still hold it
    for (const v of vcpus) r.proc.close(v);
    expect(r.kvm.vms).toHaveLength(1);
    r.proc.close(gic);
    expect(r.kvm.vms).toHaveLength(0);
    expect(r.kernel.host.alloc.bytesInUse).toBe(used);
  });

  it('vCPU fds keep working after the VM fd is closed', () => {
    const r = kvmRig();
    const vm = createVm(r);
    const vcpu = createVcpu(r.proc, vm, 0);
    r.proc.close(vm);
    expect(armVcpuInit(r.proc, vcpu)).toBe(0);
    expect(r.proc.ioctl(vm, KVM_CREATE_VCPU, 1)).toBe(-EBADF);
  });

  it('process exit releases every VM', () => {
    const r = kvmRig();
    const used = r.kernel.host.alloc.bytesInUse;
    armVmWithGic(r, 2);
    armVmWithGic(r, 1);
    r.proc.exit();
    expect(r.kvm.vms).toHaveLength(0);
    expect(r.kernel.host.alloc.bytesInUse).toBe(used);
  });
});

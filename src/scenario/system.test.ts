/**
 * End to end through every layer (issue 6, "Done when"): the default scenario's verdict and
 * invariants; the structs the VMM passed to VFIO compared with the guest state that implies them
 * (the STE in guest RAM, the PASID and ASID of a process, the guest's MSI mapping); two VMs side by
 * side that cannot reach each other's memory; the VMM main loop's syscalls with and without
 * EFD_AUTORESET; and determinism.
 */

import { describe, expect, it } from 'vitest';
import { getField } from '../arch/fields.ts';
import { STE_0_S1CDMAX, STE_0_S1CTXPTR, STE_0_S1FMT, STE_1_S1DSS } from '../arch/smmuv3/ste.ts';
import { VIRT_GIC_V2M, VIRT_MEM } from '../arch/virt.ts';
import type { Arm64Vm } from '../host/kvm/arm64/arch.ts';
import { CS_SUCCESS, CS_WRITE_FAULT } from '../hw/pci/pasid-dma-regs.ts';
import { cmdCfgiSte, cmdRaw, cmdTlbiNhAsid } from '../hw/smmuv3/structures.ts';
import { EINVAL } from '../uapi/errno.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_PASID,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
} from '../uapi/iommu.ts';
import { runDefaultScenario } from './default-system.ts';
import { type SystemVm, VsvaSystem } from './system.ts';

const MiB = 0x10_0000;

function system(vms: { name: string; devices?: number; ramSize?: number }[]) {
  const sys = VsvaSystem.create({ vms: vms.map((v) => ({ cpus: 2, ramSize: 64 * MiB, devices: 1, ...v })) });
  if (typeof sys === 'string') throw new Error(sys);
  return sys;
}

function booted(sys: VsvaSystem, v: SystemVm) {
  const r = sys.run(v.guest.boot());
  if (!r.ok) throw new Error(r.error);
  return { dev: v.guest.devices[0]!, pdma: v.guest.pdma[0]! };
}

/** The VFIO ioctls the VMM issued with this request name, decoded. */
// biome-ignore lint/suspicious/noExplicitAny: the log's decoded structs are read field by field, as the uAPI names them
type Decoded = any;

function issued(v: SystemVm, name: string): { decoded: Decoded; ret: number }[] {
  return v.vm.ioctlLog.entries.filter((e) => e.request === name) as { decoded: Decoded; ret: number }[];
}

describe('the default scenario (vsva run)', () => {
  it('meets every expectation, and after teardown every invariant is 0', () => {
    const { report } = runDefaultScenario();
    const failed = report.steps.flatMap((s) => s.expectations).filter((e) => !e.ok);
    expect(failed).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.invariants).toEqual({
      isolationViolations: 0,
      leakedPasids: 0,
      leakedPinnedPages: 0,
      leakedDomains: 0,
      leakedFds: 0,
    });
    for (const k of [
      'dma.transactions',
      'dma.bytes',
      'smmu.iotlb.hits',
      'smmu.iotlb.misses',
      'smmu.walk.reads',
      'smmu.events',
      'vfio.ioctls',
      'guest.faults',
      'eventloop.syscalls',
    ])
      expect(report.counters[k], k).toBeGreaterThan(0);
    expect(report.counters['guest.faults']).toBe(1);
  });

  it('is deterministic: two runs give byte-identical JSON', () => {
    const a = JSON.stringify(runDefaultScenario({ ramSize: 64 * MiB }).report);
    const b = JSON.stringify(runDefaultScenario({ ramSize: 64 * MiB }).report);
    expect(a).toBe(b);
  });

  it('EFD_AUTORESET: same workload, same results, and the main loop never reads an eventfd', () => {
    const plain = runDefaultScenario({ ramSize: 64 * MiB }).sys!.vms[0]!.vm.loop.stats;
    const auto = runDefaultScenario({ ramSize: 64 * MiB, eventfdAutoreset: true });
    const a = auto.sys!.vms[0]!.vm.loop.stats;
    expect(auto.report.ok).toBe(true);
    expect(plain.reads).toBeGreaterThan(0);
    expect(a.reads).toBe(0);
    expect(a.polls).toBe(plain.polls);
    expect(a.dispatches).toBe(plain.dispatches);
    // One read(2) saved per notification handled.
    expect(plain.polls + plain.reads - (a.polls + a.reads)).toBe(plain.reads);
  });
});

describe('what the VMM passed to VFIO is what the guest state implies', () => {
  it('SET_PASID_TABLE carries the guest STE; CACHE_INVALIDATE the PASID and the ASID/VA; SET_MSI_BINDING the guest doorbell mapping', () => {
    const sys = system([{ name: 'vm0' }]);
    const v = sys.vms[0]!;
    const { dev, pdma } = booted(sys, v);
    // The guest's STE for its device, read from guest RAM.
    const master = v.guest.smmu!.masters.get(dev.rid)!;
    const ste = new Uint32Array(16);
    for (let i = 0; i < 16; i++) ste[i] = v.kvm.guestMemory.read32(master.steAddr + 4 * i) >>> 0;
    const set = issued(v, 'VFIO_IOMMU_SET_PASID_TABLE').filter((e) => e.decoded.flags === 1);
    const last = set[set.length - 1]!;
    expect(last.ret).toBe(0);
    expect(last.decoded.config).toMatchObject({
      argsz: 32,
      version: 1,
      format: IOMMU_PASID_FORMAT_SMMUV3,
      config: IOMMU_PASID_CONFIG_TRANSLATE,
      base_ptr: BigInt(getField(ste, STE_0_S1CTXPTR)),
      pasid_bits: getField(ste, STE_0_S1CDMAX),
      vendor_data: {
        smmuv3: { version: 1, s1fmt: getField(ste, STE_0_S1FMT), s1dss: getField(ste, STE_1_S1DSS) },
      },
    });
    expect(Number(last.decoded.config.base_ptr)).toBeGreaterThanOrEqual(VIRT_MEM);

    // bind: a PASID-cache invalidation for that PASID.
    const p = v.guest.spawn('p');
    const buf = p.mmap(0x1000);
    const pasid = sys.run(v.guest.submit(0, 'bind', () => v.guest.sva.bind(dev, p)));
    expect(pasid).toEqual({ ok: true, value: 1 });
    const inv = issued(v, 'VFIO_IOMMU_CACHE_INVALIDATE').map((e) => e.decoded.info);
    expect(inv).toContainEqual(
      expect.objectContaining({
        cache: IOMMU_CACHE_INV_TYPE_PASID,
        granularity: IOMMU_INV_GRANU_PASID,
        granu: expect.objectContaining({ pasid_info: expect.objectContaining({ pasid: 1n }) }),
      }),
    );
    // munmap: an IOTLB invalidation by address, tagged with the process's ASID.
    const before = issued(v, 'VFIO_IOMMU_CACHE_INVALIDATE').length;
    expect(sys.run(v.guest.submit(0, 'munmap', () => v.guest.sva.munmap(p, buf, 0x1000)))).toEqual({
      ok: true,
      value: 0,
    });
    const after = issued(v, 'VFIO_IOMMU_CACHE_INVALIDATE')
      .slice(before)
      .map((e) => e.decoded.info);
    expect(after).toContainEqual(
      expect.objectContaining({
        cache: IOMMU_CACHE_INV_TYPE_IOTLB,
        granularity: IOMMU_INV_GRANU_ADDR,
        granu: expect.objectContaining({
          addr_info: expect.objectContaining({
            flags: expect.any(Number),
            archid: p.asid,
            addr: BigInt(buf),
            granule_size: 0x1000n,
            nb_granules: 1n,
          }),
        }),
      }),
    );
    expect(
      after.every(
        (i) =>
          i.granularity !== IOMMU_INV_GRANU_ADDR ||
          (i.granu.addr_info.flags & IOMMU_INV_ADDR_FLAGS_ARCHID) !== 0,
      ),
    ).toBe(true);
    // MSI: the binding maps the page the guest's DMA domain maps its MSI-X address to — the v2m frame.
    const bind = issued(v, 'VFIO_IOMMU_SET_MSI_BINDING').map((e) => e.decoded);
    expect(bind.length).toBeGreaterThan(0);
    for (const b of bind) {
      expect(b.gpa).toBe(BigInt(VIRT_GIC_V2M));
      expect(b.size).toBe(0x1000n);
      expect(master.domain.toGpa(Number(b.iova))).toBe(VIRT_GIC_V2M);
    }
    // …and interrupts really arrive that way: a DMA completes through MSI-X.
    const q = v.guest.spawn('q');
    const qb = q.mmap(0x1000);
    sys.run(v.guest.submit(0, 'bind q', () => v.guest.sva.bind(dev, q)));
    const done = sys.run(
      v.guest.submit(0, 'fill', () =>
        pdma.submit([{ op: 'fill', proc: q, dst: qb, len: 16, pattern: [0x11111111, 0x11111111] }]),
      ),
    );
    expect(done.ok && done.value[0]!.status).toBe(CS_SUCCESS);
    // The completion vector's SPI (the first of the v2m frame) was raised in the vGIC by the irqfd.
    expect((v.kvm.arch as Arm64Vm).vgic!.counts(0, 80).raised).toBeGreaterThan(0);
    sys.teardown();
    expect(sys.invariants()).toMatchObject({ leakedFds: 0, leakedPinnedPages: 0 });
  });
});

describe('two VMs side by side', () => {
  it("a guest pointing its device at an IPA outside its RAM faults at stage 2; the other VM's memory is untouched", () => {
    const sys = system([{ name: 'a' }, { name: 'b' }]);
    const [a, b] = [sys.vm('a'), sys.vm('b')];
    const A = booted(sys, a);
    const B = booted(sys, b);
    // B fills a buffer it owns.
    const pb = b.guest.spawn('pb');
    const bufB = pb.mmap(0x1000);
    sys.run(b.guest.submit(0, 'bind', () => b.guest.sva.bind(B.dev, pb)));
    expect(
      sys.run(
        b.guest.submit(0, 'fill', () =>
          B.pdma.submit([{ op: 'fill', proc: pb, dst: bufB, len: 64, pattern: [0x0b0b0b0b, 0x0b0b0b0b] }]),
        ),
      ).ok,
    ).toBe(true);
    const gpaB = pb.gpaOf(bufB)!;
    const snapshotB = sys.hostRead(b, VIRT_MEM, 64 * MiB)!;
    // A's process maps a VA to the same guest-physical address as B's buffer (inside A's own RAM:
    // harmless) and to one beyond A's RAM (IPA with nothing behind it at A's stage 2).
    const pa = a.guest.spawn('pa');
    const va = pa.mmap(0x2000);
    sys.run(a.guest.submit(0, 'bind', () => a.guest.sva.bind(A.dev, pa)));
    const outside = VIRT_MEM + 64 * MiB + 0x10_0000;
    expect(pa.pt!.unmap(va + 0x1000, 0x1000)).toBe(0x1000);
    expect(pa.pt!.map(va + 0x1000, outside, 0x1000, { read: true, write: true, user: true }).ok).toBe(true);
    const same = sys.run(
      a.guest.submit(0, 'fill same gpa', () =>
        A.pdma.submit([{ op: 'fill', proc: pa, dst: va, len: 64, pattern: [0x0a0a0a0a, 0x0a0a0a0a] }]),
      ),
    );
    expect(same.ok && same.value[0]!.status).toBe(CS_SUCCESS);
    const out = sys.run(
      a.guest.submit(0, 'fill outside', () =>
        A.pdma.submit([
          { op: 'fill', proc: pa, dst: va + 0x1000, len: 64, pattern: [0x0a0a0a0a, 0x0a0a0a0a] },
        ]),
      ),
    );
    expect(out.ok && out.value[0]!.status).toBe(CS_WRITE_FAULT);
    sys.settle();
    // The stage-2 fault was reported to A's guest (through the host fault region and the vSMMU).
    expect(a.vm.vsmmu!.stats.faultsReceived).toBeGreaterThan(0);
    expect(pa.faults.length + a.guest.sva.kernelFaults.length).toBeGreaterThan(0);
    // B's RAM is byte-for-byte what it was; B's buffer still holds B's data; nothing went astray.
    expect(Buffer.from(sys.hostRead(b, VIRT_MEM, 64 * MiB)!).equals(Buffer.from(snapshotB))).toBe(true);
    expect([...sys.hostRead(b, gpaB, 4)!]).toEqual([11, 11, 11, 11]);
    expect(sys.isolation.violations).toBe(0);
    expect(sys.isolation.writes).toBeGreaterThan(0);
    expect(b.vm.vsmmu!.stats.faultsReceived).toBe(0);
    sys.teardown();
    expect(sys.invariants()).toEqual({
      isolationViolations: 0,
      leakedPasids: a.guest.sva.pasids.inUse + b.guest.sva.pasids.inUse,
      leakedPinnedPages: 0,
      leakedDomains: 0,
      leakedFds: 0,
    });
  });

  it('the isolation check itself works: a write outside the VM of the writing device counts as a violation', () => {
    const sys = system([{ name: 'a' }, { name: 'b' }]);
    const bus = sys.host.smmu().bus;
    const [a, b] = [sys.vm('a'), sys.vm('b')];
    const paB = b.proc.mm.translate(b.vm.machine.ram.blocks[0]!.hva, 'read', false)!;
    bus.onRamWrite?.(paB, 16, a.streamIds[0]!);
    expect(sys.isolation.violations).toBe(16);
    sys.teardown();
  });
});

describe('bad guest input, through the whole stack', () => {
  it("a malformed STE and an illegal command get the architected errors in the guest's own queues; the other VM is unaffected", () => {
    const sys = system([{ name: 'a' }, { name: 'b' }]);
    const [a, b] = [sys.vm('a'), sys.vm('b')];
    const A = booted(sys, a);
    const B = booted(sys, b);
    const smmu = a.guest.smmu!;
    const master = smmu.masters.get(A.dev.rid)!;
    // An illegal command: CERROR_ILL in A's command queue, handled by A's driver, which recovers.
    smmu.injectCommand = cmdRaw(0x7f);
    const bad = sys.run(a.guest.submit(0, 'bad cmd', () => smmu.submit([cmdTlbiNhAsid(0, 1)])));
    expect(bad).toEqual({ ok: true, value: -EINVAL });
    expect(smmu.cmdErrors).toEqual([{ error: 'CERROR_ILL', opcode: 0x7f }]);
    expect(a.vm.vsmmu!.stats.commandErrors).toBe(1);
    // A malformed STE (S1CDMax beyond the vSMMU's SSIDSIZE) then CFGI_STE: C_BAD_STE in A's event
    // queue, and the host stream of A's device set to ABORT.
    const w1 = a.kvm.guestMemory.read32(master.steAddr + 4);
    expect(a.kvm.guestMemory.write32(master.steAddr + 4, (w1 & ~(0x1f << 27)) | (31 << 27))).toBe(true);
    const cfgi = sys.run(a.guest.submit(0, 'cfgi', () => smmu.submit([cmdCfgiSte(master.sid)])));
    expect(cfgi).toEqual({ ok: true, value: 0 });
    sys.settle();
    expect(a.vm.vsmmu!.stats.byEvent.C_BAD_STE).toBe(1);
    expect(a.guest.stats.events).toBeGreaterThan(0);
    const lastSet = [...a.vm.vsmmu!.log].reverse().find((e) => e.op === 'SET_PASID_TABLE')!;
    expect(lastSet.config?.config).toBe(IOMMU_PASID_CONFIG_ABORT);
    // A's device can no longer reach memory; B's DMA works as before and B saw nothing.
    const pb = b.guest.spawn('pb');
    const bufB = pb.mmap(0x1000);
    sys.run(b.guest.submit(0, 'bind', () => b.guest.sva.bind(B.dev, pb)));
    const fill = sys.run(
      b.guest.submit(0, 'fill', () =>
        B.pdma.submit([{ op: 'fill', proc: pb, dst: bufB, len: 16, pattern: [0x77777777, 0x77777777] }]),
      ),
    );
    expect(fill.ok && fill.value[0]!.status).toBe(CS_SUCCESS);
    expect([...sys.hostRead(b, pb.gpaOf(bufB)!, 4)!]).toEqual([0x77, 0x77, 0x77, 0x77]);
    expect(b.vm.vsmmu!.stats.eventsInjected).toBe(0);
    expect(b.vm.vsmmu!.stats.commandErrors).toBe(0);
    expect([...sys.errors, ...a.vm.machine.errors, ...b.vm.machine.errors]).toEqual([]);
    expect(sys.isolation.violations).toBe(0);
    sys.teardown();
    expect(sys.invariants()).toMatchObject({ leakedFds: 0, leakedPinnedPages: 0, leakedDomains: 0 });
  });
});

/**
 * The default scenario `vsva run` executes (issue 6 §3): one host with a nesting SMMUv3, one arm64
 * VM with 2 vCPUs and 1 GiB of RAM, a virtual SMMUv3, and one assigned PASID-capable DMA device.
 * The guest boots (device tree, ECAM, its SMMU driver, the DMA driver), binds 4 processes to
 * PASIDs; each maps a source buffer of 4 KiB pages and a destination 2 MiB block; the device runs
 * a copy for every PASID; one process unmaps its source and invalidates, and its next DMA faults
 * and the fault reaches that process; another process remaps its destination without
 * invalidating, and the IOTLB keeps serving the old translation until it flushes. Then teardown:
 * unbind, VM shutdown, fds closed — and the invariants are counted.
 *
 * Every check reads the state it is about — host memory behind the guest's pages, the guest's
 * fault records, the VMM's ioctl log — rather than trusting counters. Deterministic: no clock and
 * no unseeded randomness; the patterns come from the process index.
 */

import { hex } from '../arch/bits.ts';
import type { GuestProcess } from '../guest/process.ts';
import { CS_READ_FAULT, CS_SUCCESS } from '../hw/pci/pasid-dma-regs.ts';
import type { Tracer } from './format/trace.ts';
import { finishReport, type ScenarioReport, StepBuilder, type StepReport } from './report.ts';
import { VsvaSystem } from './system.ts';

export interface DefaultScenarioOptions {
  /** Guest RAM (default 1 GiB). */
  readonly ramSize?: number;
  /** The VMM's main loop uses EFD_AUTORESET eventfds. */
  readonly eventfdAutoreset?: boolean;
  /** Processes bound to PASIDs (default 4, at least 3). */
  readonly processes?: number;
  /** Records the run (DMA, faults, commands, syscalls, eventfd signals) when given. */
  readonly tracer?: Tracer;
}

export interface DefaultScenarioResult {
  readonly report: ScenarioReport;
  /** The system after teardown (for tests that look deeper). */
  readonly sys: VsvaSystem | undefined;
  readonly processes: readonly GuestProcess[];
}

const SRC_LEN = 0x3000;
const HUGE = 0x20_0000;

/** Process i's source pattern: byte j is (i * 37 + j) mod 251 + 1 (never 0, distinct per process). */
function pattern(i: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let j = 0; j < len; j++) b[j] = ((i * 37 + j) % 251) + 1;
  return b;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

export function runDefaultScenario(opts: DefaultScenarioOptions = {}): DefaultScenarioResult {
  const steps: StepReport[] = [];
  const nproc = Math.max(3, opts.processes ?? 4);
  const ramSize = opts.ramSize ?? 0x4000_0000;

  // ---- 1. host, device, VM
  const s1 = new StepBuilder(
    'Host with a nesting SMMUv3; a VM (2 vCPUs, RAM, vSMMUv3) with the PASID DMA device assigned',
  );
  const created = VsvaSystem.create({
    vms: [{ name: 'vm0', cpus: 2, ramSize, devices: 1, eventfdAutoreset: opts.eventfdAutoreset ?? false }],
    ...(opts.tracer !== undefined ? { tracer: opts.tracer } : {}),
  });
  if (typeof created === 'string') {
    s1.expect('the VM starts', false, created);
    steps.push(s1.done());
    return {
      report: finishReport('default: vSVA end to end', steps, {}),
      sys: undefined,
      processes: [],
    };
  }
  const sys = created;
  const v = sys.vms[0]!;
  const host = sys.host;
  s1.note(
    `host device ${v.hostDevices[0]!.name} (StreamID ${v.streamIds[0]}) → /dev/vfio/${host.iommu.iommuGroupGet(v.hostDevices[0]!.iommuDev)!.id}`,
  );
  s1.expect(
    'the whole of guest RAM is mapped for DMA (IOVA = GPA)',
    v.vm.container?.mappedBytes === ramSize,
    String(v.vm.container?.mappedBytes),
  );
  steps.push(s1.done());

  const finish = (): DefaultScenarioResult => {
    sys.teardown();
    return {
      report: finishReport('default: vSVA end to end', steps, sys.totals(), { ...sys.invariants() }),
      sys,
      processes: procs,
    };
  };
  const procs: GuestProcess[] = [];

  // ---- 2. guest boot
  const s2 = new StepBuilder(
    'The guest boots: device tree, PCI over ECAM, its SMMUv3 driver, the DMA driver',
  );
  const boot = sys.run(v.guest.boot());
  s2.expect('boot finishes', boot.ok, boot.ok ? 'ok' : boot.error);
  const dev = v.guest.devices[0];
  s2.expect(
    'the assigned device is found with its PASID capability (width 20)',
    dev?.pasid?.width === 20,
    String(dev?.pasid?.width),
  );
  const lastSet = [...v.vm.vsmmu!.log].reverse().find((e) => e.op === 'SET_PASID_TABLE');
  const cfg = lastSet?.config;
  s2.note(
    `VFIO_IOMMU_SET_PASID_TABLE: config ${cfg?.config} base_ptr ${cfg ? hex(Number(cfg.base_ptr)) : '-'} pasid_bits ${cfg?.pasid_bits} s1fmt ${cfg?.vendor_data?.smmuv3?.s1fmt} s1dss ${cfg?.vendor_data?.smmuv3?.s1dss}`,
  );
  s2.expect(
    'the guest STE reached the host as TRANSLATE with 20 PASID bits',
    cfg?.config === 1 && cfg.pasid_bits === 20,
    JSON.stringify(cfg?.config),
  );
  steps.push(s2.done());
  if (!boot.ok || dev === undefined || v.guest.pdma[0] === undefined) return finish();
  const pdma = v.guest.pdma[0];

  // ---- 3. processes bound to PASIDs
  const s3 = new StepBuilder(
    `${nproc} guest processes, each with a 4 KiB-page source and a 2 MiB-block destination, bound to PASIDs`,
  );
  const src: number[] = [];
  const dst: number[] = [];
  for (let i = 0; i < nproc; i++) {
    const p = v.guest.spawn(`proc${i}`);
    procs.push(p);
    src.push(p.mmap(SRC_LEN));
    dst.push(p.mmap(HUGE, { huge: true }));
    p.write(src[i]!, pattern(i, SRC_LEN));
    const b = sys.run(v.guest.submit(0, `bind proc${i}`, () => v.guest.sva.bind(dev, p)));
    s3.note(
      `proc${i}: src ${hex(src[i]!)} (gpa ${hex(p.gpaOf(src[i]!) ?? -1)}), dst ${hex(dst[i]!)} (gpa ${hex(p.gpaOf(dst[i]!) ?? -1)}), PASID ${b.ok ? b.value : b.error}`,
    );
  }
  const pasids = procs.map((p) => p.pasid);
  s3.expectEqual(
    'PASIDs 1..n, one per process',
    pasids,
    procs.map((_, i) => i + 1),
  );
  steps.push(s3.done());

  // ---- 4. a copy per PASID, checked in host memory
  const s4 = new StepBuilder(
    'The device copies source → destination for every PASID; the bytes land in the host pages behind each guest buffer',
  );
  const copy = sys.run(
    v.guest.submit(0, 'copy all', () =>
      pdma.submit(
        procs.map((p, i) => ({
          op: 'copy' as const,
          proc: p,
          src: src[i]!,
          dst: dst[i]! + 0x1_0000 * i,
          len: SRC_LEN,
        })),
      ),
    ),
  );
  s4.expect(
    'every descriptor completes with success',
    copy.ok && copy.value.every((c) => c.status === CS_SUCCESS),
    copy.ok ? JSON.stringify(copy.value.map((c) => c.statusName)) : copy.error,
  );
  procs.forEach((p, i) => {
    const gpa = p.gpaOf(dst[i]! + 0x1_0000 * i);
    const got = gpa === undefined ? undefined : sys.hostRead(v, gpa, SRC_LEN);
    s4.expect(
      `proc${i}'s pattern is in host memory behind its destination (gpa ${hex(gpa ?? -1)})`,
      sameBytes(got, pattern(i, SRC_LEN)),
      got === undefined ? 'unreadable' : `${got.slice(0, 4).join(',')}…`,
    );
  });
  steps.push(s4.done());

  // ---- 5. munmap + invalidate → the next DMA faults, the fault reaches the process
  const s5 = new StepBuilder(
    'proc1 unmaps its source (TLBI by VA); its next DMA faults and the fault reaches proc1',
  );
  const victim = procs[1]!;
  const un = sys.run(
    v.guest.submit(0, 'munmap proc1 src', () => v.guest.sva.munmap(victim, src[1]!, SRC_LEN)),
  );
  s5.expect(
    'munmap with invalidation succeeds',
    un.ok && un.value === 0,
    un.ok ? String(un.value) : un.error,
  );
  const faulted = sys.run(
    v.guest.submit(0, 'copy after unmap', () =>
      pdma.submit([{ op: 'copy', proc: victim, src: src[1]!, dst: dst[1]!, len: 0x100 }]),
    ),
  );
  const c5 = faulted.ok ? faulted.value[0] : undefined;
  s5.expect(
    'the completion record says read fault at the unmapped VA',
    c5?.status === CS_READ_FAULT && c5.faultAddr === src[1],
    c5 ? `${c5.statusName} @${hex(c5.faultAddr)}` : 'none',
  );
  sys.settle();
  const f = victim.faults[0];
  s5.note(
    `proc1 fault: ${f ? `${f.event} pasid ${f.pasid} addr ${hex(f.addr)} ${f.write ? 'write' : 'read'}` : 'none'}`,
  );
  s5.expect(
    'exactly one fault recorded against proc1, with its PASID and the address',
    victim.faults.length === 1 &&
      f?.pasid === victim.pasid &&
      f?.addr === src[1] &&
      f?.event === 'F_TRANSLATION',
    JSON.stringify(victim.faults),
  );
  s5.expect(
    'no other process saw a fault',
    procs.every((p, i) => i === 1 || p.faults.length === 0),
    procs.map((p) => p.faults.length).join(','),
  );
  steps.push(s5.done());

  // ---- 6. stale IOTLB entry
  const s6 = new StepBuilder(
    'proc2 remaps a source page (which the device has used) without invalidating: the IOTLB keeps serving the old page until it flushes',
  );
  const stale = procs[2]!;
  const moved = v.guest.sva.remapNoInvalidate(stale, src[2]!);
  if (typeof moved === 'number') s6.expect('remap', false, String(moved));
  else {
    s6.note(`src ${hex(src[2]!)}: old gpa ${hex(moved.oldGpa)}, new gpa ${hex(moved.newGpa)}`);
    const fill = (byte: number) =>
      sys.run(
        v.guest.submit(0, `fill ${byte}`, () =>
          pdma.submit([
            {
              op: 'fill',
              proc: stale,
              dst: src[2]!,
              len: 64,
              pattern: [byte * 0x0101_0101, byte * 0x0101_0101],
            },
          ]),
        ),
      );
    const f1 = fill(0xa5);
    s6.note(
      `fill without TLBI: ${f1.ok ? f1.value.map((c) => `${c.statusName}@${hex(c.faultAddr)}`).join(',') : f1.error}`,
    );
    s6.expect(
      'without TLBI the device wrote the OLD page',
      sameBytes(sys.hostRead(v, moved.oldGpa, 4), Uint8Array.of(0xa5, 0xa5, 0xa5, 0xa5)),
      String(sys.hostRead(v, moved.oldGpa, 4)),
    );
    s6.expect(
      '…and not the new one',
      !sameBytes(sys.hostRead(v, moved.newGpa, 4), Uint8Array.of(0xa5, 0xa5, 0xa5, 0xa5)),
      String(sys.hostRead(v, moved.newGpa, 4)),
    );
    const fl = sys.run(v.guest.submit(0, 'flush', () => v.guest.sva.flush(stale, src[2]!, 0x1000)));
    s6.expect('flush (TLBI_NH_VA) succeeds', fl.ok && fl.value === 0, fl.ok ? String(fl.value) : fl.error);
    fill(0x3c);
    s6.expect(
      'after the TLBI the device writes the NEW page',
      sameBytes(sys.hostRead(v, moved.newGpa, 4), Uint8Array.of(0x3c, 0x3c, 0x3c, 0x3c)),
      String(sys.hostRead(v, moved.newGpa, 4)),
    );
  }
  steps.push(s6.done());

  // ---- 7. teardown
  const s7 = new StepBuilder('Teardown: unbind every process, shut the VM down, close every fd');
  const unbound = procs.map((p, i) =>
    sys.run(v.guest.submit(0, `unbind proc${i}`, () => v.guest.sva.unbind(dev, p))),
  );
  s7.expect(
    'every unbind succeeds',
    unbound.every((u) => u.ok && u.value === 0),
    JSON.stringify(unbound.map((u) => (u.ok ? u.value : u.error))),
  );
  s7.expect(
    'no VMM or settling errors',
    sys.errors.length === 0 && v.vm.machine.errors.length === 0,
    JSON.stringify([...sys.errors, ...v.vm.machine.errors]),
  );
  steps.push(s7.done());
  return finish();
}

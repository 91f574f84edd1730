/**
 * The virt machine built through the uAPI: memory slot, vCPUs with their run pages, the vGIC, the
 * device-tree blob, the vCPU loop's MMIO dispatch (with a guest program loaded into KVM), the
 * GICv2m frame, and a teardown that leaves nothing behind.
 */

import { describe, expect, it } from 'vitest';
import type { GuestCpuProgram, GuestTrap } from '../arch/guest-cpu.ts';
import { V2M_MSI_SETSPI_NS, VIRT_GIC_V2M, VIRT_MEM, VSVA_DT_MAGIC } from '../arch/virt.ts';
import { Host } from '../host/host.ts';
import type { Arm64Vm } from '../host/kvm/arm64/arch.ts';
import type { Arm64Vcpu } from '../host/kvm/arm64/vcpu.ts';
import { MachineError, VirtMachine } from './machine.ts';

const MiB = 0x10_0000;

/** A one-shot program: runs `body` then waits for interrupts for ever. */
function program(body: () => Generator<GuestTrap, void, number>): GuestCpuProgram {
  const g = body();
  let finished = false;
  return {
    irqUnmasked: false,
    takeIrq() {},
    resume(answer) {
      if (!finished) {
        const r = g.next(answer);
        if (!r.done) return r.value;
        finished = true;
      }
      return { kind: 'wfi' };
    },
  };
}

function boot(ramSize = 64 * MiB) {
  const host = new Host({ ramSize: 0x2000_0000 });
  const proc = host.kernel.spawn('qemu');
  const m = VirtMachine.create(proc, { cpus: 2, ramSize });
  if (m instanceof MachineError) throw new Error(m.message);
  const vm = host.kvm.vms.find((v) => v.pid === proc.pid)!;
  return { host, proc, m, vm };
}

describe('VirtMachine', () => {
  it('builds the board through the uAPI: one RAM slot at VIRT_MEM backed by huge pages, 2 vCPUs, an initialised vGIC', () => {
    const { proc, m, vm } = boot();
    expect(vm.memslots.find(VIRT_MEM)).toMatchObject({ gpa: VIRT_MEM, size: 64 * MiB });
    expect(vm.vcpuList.length).toBe(2);
    expect((vm.arch as Arm64Vm).vgic?.initialized).toBe(true);
    expect((vm.vcpuList[1]!.arch as Arm64Vcpu).powerOff).toBe(true);
    // RAM is the VMM's memory: what the VMM writes, the guest's CPUs read (through the slot).
    expect(m.ram.write(VIRT_MEM + 0x2000, Uint8Array.of(1, 2, 3, 4))).toBe(true);
    expect(vm.guestMemory.read32(VIRT_MEM + 0x2000)).toBe(0x0403_0201);
    expect(vm.guestMemory.write32(VIRT_MEM + 0x3000, 0xdead_beef)).toBe(true);
    expect(m.ram.read32(VIRT_MEM + 0x3000)).toBe(0xdead_beef);
    expect(vm.guestMemory.read32(VIRT_MEM - 4)).toBe(-1);
    expect(proc.mm.mappings.some((v) => v.pageShift === 21 && v.end - v.start === 64 * MiB)).toBe(true);
  });

  it('a refused step is returned, and everything done before it is undone', () => {
    const host = new Host({ ramSize: 0x1000_0000 });
    const proc = host.kernel.spawn('qemu');
    const before = proc.openFds.length;
    const r = VirtMachine.create(proc, { ramSize: 0x2000_0000 });
    expect(r).toBeInstanceOf(MachineError);
    expect((r as MachineError).step).toBe('mmap guest RAM');
    expect(proc.openFds.length).toBe(before);
    expect(host.kvm.vms.length).toBe(0);
    expect(VirtMachine.create(proc, { ramSize: 0x1234 })).toMatchObject({ step: 'guest RAM size' });
  });

  it('writes the device-tree blob at the start of RAM: magic, length, JSON', () => {
    const { m, vm } = boot();
    const dt = {
      ...m.baseDeviceTree(),
      pcie: {
        compatible: 'pci-host-ecam-generic' as const,
        ecam: { base: '0x4010000000', size: '0x10000000' },
        busRange: [0, 255] as const,
        mmio: { base: '0x10000000', size: '0x2eff0000' },
        iommu: null,
      },
    };
    expect(m.writeDeviceTree(dt)).toBe(true);
    expect(vm.guestMemory.read32(VIRT_MEM)).toBe(VSVA_DT_MAGIC);
    const len = vm.guestMemory.read32(VIRT_MEM + 4);
    const json = JSON.parse(new TextDecoder().decode(vm.guestMemory.read(VIRT_MEM + 8, len)));
    expect(json.cpus).toBe(2);
    expect(json.memory).toEqual([{ base: '0x40000000', size: '0x4000000' }]);
    expect(json.msi.spiBase).toBe(80);
  });

  it('the vCPU loop dispatches MMIO exits to the device at that address; unassigned reads are 0; the v2m frame raises SPIs', () => {
    const { m, vm } = boot();
    const log: string[] = [];
    m.addMmio('dev', 0x0a00_0000, 0x1000, {
      read: (off, size) => {
        log.push(`r ${off.toString(16)}/${size}`);
        return 0x1122_3344;
      },
      write: (off, size, v) => {
        log.push(`w ${off.toString(16)}/${size}=${v.toString(16)}`);
      },
    });
    const got: number[] = [];
    (vm.vcpuList[0]!.arch as Arm64Vcpu).guest.load(
      program(function* () {
        yield { kind: 'mmio-write', gpa: 0x0a00_0010, size: 4, value: 0xabcd };
        got.push(yield { kind: 'mmio-read', gpa: 0x0a00_0020, size: 4 });
        got.push(yield { kind: 'mmio-read', gpa: 0x0b00_0000, size: 4 });
        yield { kind: 'mmio-write', gpa: VIRT_GIC_V2M + V2M_MSI_SETSPI_NS, size: 4, value: 81 };
        got.push(yield { kind: 'mmio-read', gpa: VIRT_GIC_V2M + 8, size: 4 });
      }),
    );
    expect(m.runVcpu(0)).toBe('idle');
    expect(log).toEqual(['w 10/4=abcd', 'r 20/4']);
    expect(got).toEqual([0x1122_3344, 0, (80 << 16) | 64]);
    expect(m.stats).toMatchObject({ mmioExits: 5, unassignedReads: 1 });
    expect((vm.arch as Arm64Vm).vgic!.counts(0, 81).raised).toBe(1);
    expect(() => m.addMmio('clash', 0x0a00_0800, 0x1000, { read: () => 0, write: () => {} })).toThrow(
      /overlaps/,
    );
  });

  it('shutdown closes every fd and unmaps RAM; the VM goes away with its last fd', () => {
    const { host, proc, m } = boot();
    const rss = proc.mm.stats.residentBytes;
    expect(rss).toBeGreaterThan(0);
    m.shutdown();
    expect(proc.openFds).toEqual([0, 1, 2]);
    expect(host.kvm.vms.length).toBe(0);
    expect(proc.mm.stats.residentBytes).toBe(0);
    m.shutdown();
  });
});

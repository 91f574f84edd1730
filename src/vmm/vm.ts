/**
 * One virtual machine as the VMM assembles it (QEMU's `-M virt,iommu=smmuv3 -device
 * vfio-pci,host=...`): the board of `machine.ts`, the generic PCIe host bridge (ECAM + MMIO
 * window), a virtual SMMUv3 installed on the root bus with `pci_setup_iommu(bus, ops, opaque)`
 * (seed-spec §3) when the VM has assigned devices, one VFIO container (type1 nesting) that maps all
 * of guest RAM, a vfio-pci frontend per assigned host function, the main loop over eventfds, and
 * the device-tree blob that tells the guest where everything is.
 *
 * Everything here reaches the host through the VMM process's syscalls only. Teardown runs in the
 * reverse order and must leave the process with nothing open and nothing pinned.
 */

import { hex } from '../arch/bits.ts';
import {
  VIRT_PCIE_ECAM,
  VIRT_PCIE_ECAM_SIZE,
  VIRT_PCIE_MMIO,
  VIRT_PCIE_MMIO_SIZE,
  VIRT_SMMU,
  VIRT_SMMU_IRQ_CMD_SYNC,
  VIRT_SMMU_IRQ_EVENTQ,
  VIRT_SMMU_IRQ_GERROR,
  VIRT_SMMU_IRQ_PRIQ,
  VIRT_SMMU_SIZE,
  type VirtDt,
} from '../arch/virt.ts';
import type { Process } from '../host/kernel/process.ts';
import { errnoName } from '../uapi/errno.ts';
import { EventLoop } from './event-loop.ts';
import { MachineError, VirtMachine, type VirtMachineOptions } from './machine.ts';
import { pci_setup_iommu } from './pci/bus.ts';
import { PCI_DEVFN } from './pci/device.ts';
import { GpexHost } from './pci/gpex.ts';
import { VirtSmmu } from './smmuv3/virt-smmu.ts';
import { VfioContainer } from './vfio/container.ts';
import { IoctlLog } from './vfio/ioctl-log.ts';
import { VFIOPCIDevice } from './vfio/pci.ts';

/** A host function to assign (what `-device vfio-pci,host=...` names). */
export interface AssignedDeviceSpec {
  /** The host IOMMU group (/dev/vfio/<group>). */
  readonly group: number;
  /** The host function's name ("0000:00:04.0"). */
  readonly hostName: string;
}

export interface VirtVmOptions extends VirtMachineOptions {
  readonly assigned?: readonly AssignedDeviceSpec[];
  /** A virtual SMMUv3 in front of the root bus; default: when devices are assigned. */
  readonly viommu?: boolean;
  /** The virtual SMMU's SSIDSIZE (default 20). */
  readonly ssidBits?: number;
  /** The main loop's notifiers use EFD_AUTORESET (seed §5.2). */
  readonly eventfdAutoreset?: boolean;
}

export class VirtVm {
  readonly machine: VirtMachine;
  readonly gpex: GpexHost;
  readonly vsmmu: VirtSmmu | undefined;
  /** The VFIO container, when devices are assigned. */
  container: VfioContainer | undefined;
  readonly devices: VFIOPCIDevice[] = [];
  readonly loop: EventLoop;
  /** Every VFIO ioctl the VMM issued, decoded (container and devices). */
  readonly ioctlLog = new IoctlLog();
  private down = false;

  private constructor(machine: VirtMachine, loop: EventLoop, gpex: GpexHost, vsmmu: VirtSmmu | undefined) {
    this.machine = machine;
    this.loop = loop;
    this.gpex = gpex;
    this.vsmmu = vsmmu;
  }

  get proc(): Process {
    return this.machine.proc;
  }

  /** Builds the VM in `proc`; a host refusal is returned (and everything built so far undone). */
  static create(proc: Process, opts: VirtVmOptions = {}): VirtVm | MachineError {
    const machine = VirtMachine.create(proc, opts);
    if (machine instanceof MachineError) return machine;
    const loop = new EventLoop(proc, { autoreset: opts.eventfdAutoreset ?? false });
    const gpex = new GpexHost({ name: 'pcie.0' });
    machine.addMmio('pcie-ecam', VIRT_PCIE_ECAM, VIRT_PCIE_ECAM_SIZE, gpex.ecam);
    machine.addMmio('pcie-mmio', VIRT_PCIE_MMIO, VIRT_PCIE_MMIO_SIZE, gpex.mmio);
    const assigned = opts.assigned ?? [];
    let vsmmu: VirtSmmu | undefined;
    if (opts.viommu ?? assigned.length > 0) {
      vsmmu = new VirtSmmu({
        ram: machine.ram,
        setIrq: (intid, level) => {
          machine.setIrq(intid, level);
        },
        ...(opts.ssidBits !== undefined ? { ssidBits: opts.ssidBits } : {}),
      });
      machine.addMmio('smmuv3', VIRT_SMMU, VIRT_SMMU_SIZE, vsmmu.mmio);
      pci_setup_iommu(gpex.root, vsmmu.ops, vsmmu);
    }
    const v = new VirtVm(machine, loop, gpex, vsmmu);
    if (assigned.length > 0) {
      const container = new VfioContainer({
        proc,
        ram: machine.ram.blocks,
        name: `${machine.name}-container`,
        log: v.ioctlLog,
      });
      v.container = container;
      const r = container.open();
      if (r < 0) return v.fail('VFIO container', r);
      for (let i = 0; i < assigned.length; i++) {
        const a = assigned[i]!;
        const dev = new VFIOPCIDevice({
          proc,
          container,
          group: a.group,
          hostName: a.hostName,
          loop,
          vmFd: machine.vmFd,
        });
        const rr = dev.realize(gpex.root, PCI_DEVFN(1 + i, 0));
        if (rr < 0) return v.fail(`vfio-pci ${a.hostName}`, rr);
        v.devices.push(dev);
      }
    }
    v.writeDeviceTree();
    return v;
  }

  private fail(step: string, errno: number): MachineError {
    this.shutdown();
    return new MachineError(step, errno);
  }

  private writeDeviceTree(): void {
    const dt: VirtDt = {
      ...this.machine.baseDeviceTree(),
      ...(this.vsmmu !== undefined
        ? {
            smmu: {
              compatible: 'arm,smmu-v3',
              reg: { base: hex(VIRT_SMMU), size: hex(VIRT_SMMU_SIZE) },
              irqs: {
                eventq: VIRT_SMMU_IRQ_EVENTQ,
                priq: VIRT_SMMU_IRQ_PRIQ,
                cmdqSync: VIRT_SMMU_IRQ_CMD_SYNC,
                gerror: VIRT_SMMU_IRQ_GERROR,
              },
            },
          }
        : {}),
      pcie: {
        compatible: 'pci-host-ecam-generic',
        ecam: { base: hex(VIRT_PCIE_ECAM), size: hex(VIRT_PCIE_ECAM_SIZE) },
        busRange: [0, 255],
        mmio: { base: hex(VIRT_PCIE_MMIO), size: hex(VIRT_PCIE_MMIO_SIZE) },
        iommu: this.vsmmu !== undefined ? 'smmu' : null,
      },
    };
    if (!this.machine.writeDeviceTree(dt)) this.machine.errors.push('device tree not written');
  }

  /** Runs every vCPU until it waits for an interrupt; true when all did (none hit a limit or an error). */
  runVcpus(): boolean {
    let ok = true;
    for (let i = 0; i < this.machine.vcpuFds.length; i++) {
      const r = this.machine.runVcpu(i);
      if (r !== 'idle') {
        ok = false;
        this.machine.errors.push(typeof r === 'string' ? `vCPU ${i}: ${r}` : r.error);
      }
    }
    return ok;
  }

  /** The VMM's counters, flat. */
  counters(): Record<string, number> {
    const m = this.machine.stats;
    const out: Record<string, number> = {
      'kvm.runs': m.kvmRuns,
      'kvm.mmioExits': m.mmioExits,
      'kvm.irqLines': m.irqLines,
      'vfio.ioctls': this.ioctlLog.entries.length,
      'eventloop.polls': this.loop.stats.polls,
      'eventloop.reads': this.loop.stats.reads,
      'eventloop.syscalls': this.loop.syscalls,
    };
    const s = this.vsmmu?.stats;
    if (s !== undefined) {
      out['vsmmu.commands'] = s.commands;
      out['vsmmu.cfgiSte'] = s.cfgiSte;
      out['vsmmu.cfgiCd'] = s.cfgiCd;
      out['vsmmu.tlbi'] = s.tlbi;
      out['vsmmu.setPasidTable'] = s.setPasidTable;
      out['vsmmu.cacheInvalidate'] = s.cacheInvalidate;
      out['vsmmu.hostErrors'] = s.hostErrors;
      out['vsmmu.faultsReceived'] = s.faultsReceived;
    }
    return out;
  }

  /** Tears the VM down: devices, container, then the board. Idempotent. */
  shutdown(): void {
    if (this.down) return;
    this.down = true;
    for (const d of [...this.devices].reverse()) d.exit();
    this.devices.length = 0;
    const r = this.container?.close() ?? 0;
    if (r < 0) this.machine.errors.push(`VFIO container close: ${errnoName(r)}`);
    this.machine.shutdown();
  }
}

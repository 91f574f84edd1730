/**
 * The VMM's machine: vsva's `virt` board (modelled on QEMU's arm64 virt, memory map and interrupt
 * numbers in `src/arch/virt.ts`), built the way QEMU builds it and only through the host's uAPI:
 *
 * 1. /dev/kvm: KVM_GET_API_VERSION, KVM_CREATE_VM (IPA size from the options);
 * 2. guest RAM: an anonymous mapping of the VMM process (hugetlb by default, so that KVM and VFIO
 *    can map it with 2 MiB blocks), registered as memory slot 0 at VIRT_MEM;
 * 3. vCPUs: KVM_CREATE_VCPU, KVM_ARM_VCPU_INIT (PSCI 0.2; secondaries start powered off unless
 *    asked otherwise), and each vCPU's kvm_run page mapped from its fd;
 * 4. the GICv3 as a KVM device (distributor and redistributor addresses, NR_IRQS, CTRL_INIT);
 * 5. emulated MMIO devices registered by range (`addMmio`): the GICv2m MSI frame here, and the
 *    PCIe host bridge, the virtual SMMU and assigned devices' BARs from the machine's assembly;
 * 6. the device-tree blob at the start of RAM.
 *
 * The vCPU loop (`runVcpu`) is QEMU's kvm_cpu_exec: KVM_RUN, then the exit read from the mapped
 * kvm_run page — KVM_EXIT_MMIO is dispatched to the device whose range holds the address (a read's
 * value is put in kvm_run.mmio.data for the next KVM_RUN to complete), -EINTR returns to the caller
 * (the guest is idle or its time slice ended). Decision: an access no device claims reads as zero
 * and ignores writes, counted as `unassigned` (QEMU's unassigned_mem_ops; virt would also raise a
 * data abort for some ranges).
 *
 * Interrupts from emulated devices use KVM_IRQ_LINE (SPI type, level); assigned devices' MSIs reach
 * the vGIC through irqfds set up by the vfio-pci frontend.
 */

import { hex, leBytes, leValue } from '../arch/bits.ts';
import type { MmioSize } from '../arch/guest-cpu.ts';
import {
  encodeVirtDtBlob,
  V2M_MSI_SETSPI_NS,
  VIRT_DT_RESERVED,
  VIRT_GIC_DIST,
  VIRT_GIC_DIST_SIZE,
  VIRT_GIC_NR_IRQS,
  VIRT_GIC_REDIST,
  VIRT_GIC_REDIST_SIZE_PER_CPU,
  VIRT_GIC_V2M,
  VIRT_GIC_V2M_SIZE,
  VIRT_GIC_V2M_SPI_BASE,
  VIRT_GIC_V2M_SPI_COUNT,
  VIRT_MEM,
  type VirtDt,
} from '../arch/virt.ts';
import type { Process } from '../host/kernel/process.ts';
import { EINTR, EINVAL, errnoName } from '../uapi/errno.ts';
import {
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/fcntl.ts';
import {
  KVM_API_VERSION,
  KVM_ARM_IRQ_TYPE_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI,
  KVM_ARM_TARGET_GENERIC_V8,
  KVM_ARM_VCPU_INIT,
  KVM_ARM_VCPU_POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2,
  KVM_CREATE_DEVICE,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_EXIT_MMIO,
  KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_IRQ_LINE,
  KVM_RUN,
  KVM_RUN_EXIT_OFFSET,
  KVM_SET_DEVICE_ATTR,
  KVM_SET_USER_MEMORY_REGION,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
  kvm_create_device,
  kvm_device_attr,
  kvm_irq_level,
  kvm_run,
  kvm_run_mmio,
  kvm_userspace_memory_region,
  kvm_vcpu_init,
} from '../uapi/kvm.ts';
import { GuestRam, type MmioOps } from './memory.ts';

export interface VirtMachineOptions {
  readonly name?: string;
  /** vCPUs; default 2. */
  readonly cpus?: number;
  /** Guest RAM in bytes (a multiple of 2 MiB); default 1 GiB. */
  readonly ramSize?: number;
  /** Back guest RAM with hugetlb pages (default true). */
  readonly hugepages?: boolean;
  /** KVM_CREATE_VM's IPA size; default 0 (40 bits). */
  readonly ipaBits?: number;
  /** Start every vCPU powered on (default: only vCPU 0, the others wait for PSCI CPU_ON). */
  readonly allCpusOn?: boolean;
}

/** An emulated device's place in the guest-physical address space. */
export interface MachineMmioRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly ops: MmioOps;
  reads: number;
  writes: number;
}

export interface MachineStats {
  kvmRuns: number;
  mmioExits: number;
  unassignedReads: number;
  unassignedWrites: number;
  /** KVM_IRQ_LINE calls. */
  irqLines: number;
}

/** Why a vCPU loop returned. */
export type VcpuLoopResult = 'idle' | 'exit-limit' | { readonly error: string };

/** A step of building the machine that the host refused. */
export class MachineError {
  readonly step: string;
  readonly errno: number;

  constructor(step: string, errno: number) {
    this.step = step;
    this.errno = errno;
  }

  get message(): string {
    return `${this.step}: ${errnoName(this.errno)}`;
  }
}

export const VIRT_DEFAULT_RAM = 0x4000_0000;
const HUGE = 0x20_0000;

export class VirtMachine {
  readonly name: string;
  readonly proc: Process;
  readonly kvmFd: number;
  readonly vmFd: number;
  readonly vcpuFds: readonly number[];
  /** Where each vCPU's kvm_run page is mapped in the VMM. */
  readonly runVas: readonly number[];
  readonly gicFd: number;
  readonly ram: GuestRam;
  readonly ramSize: number;
  readonly regions: MachineMmioRegion[] = [];
  readonly stats: MachineStats = {
    kvmRuns: 0,
    mmioExits: 0,
    unassignedReads: 0,
    unassignedWrites: 0,
    irqLines: 0,
  };
  /** Refusals and oddities met while running (the VMM keeps going). */
  readonly errors: string[] = [];
  /** A page of VMM memory for ioctl arguments that point to more memory. */
  private readonly scratch: number;
  private closed = false;

  private constructor(
    name: string,
    proc: Process,
    fds: { kvm: number; vm: number; vcpus: number[]; runVas: number[]; gic: number },
    ram: GuestRam,
    ramSize: number,
    scratch: number,
  ) {
    this.name = name;
    this.proc = proc;
    this.kvmFd = fds.kvm;
    this.vmFd = fds.vm;
    this.vcpuFds = fds.vcpus;
    this.runVas = fds.runVas;
    this.gicFd = fds.gic;
    this.ram = ram;
    this.ramSize = ramSize;
    this.scratch = scratch;
  }

  /** Builds the board in `proc` (the VMM process). A refusal by the host is returned, not thrown. */
  static create(proc: Process, opts: VirtMachineOptions = {}): VirtMachine | MachineError {
    const name = opts.name ?? 'vm';
    const cpus = opts.cpus ?? 2;
    const ramSize = opts.ramSize ?? VIRT_DEFAULT_RAM;
    const undo: (() => void)[] = [];
    const fail = (step: string, r: number): MachineError => {
      for (const u of undo.reverse()) u();
      return new MachineError(step, r);
    };
    const kvm = proc.open('/dev/kvm', O_RDWR);
    if (kvm < 0) return fail('open /dev/kvm', kvm);
    undo.push(() => proc.close(kvm));
    const api = proc.ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api !== KVM_API_VERSION) return fail('KVM_GET_API_VERSION', api < 0 ? api : -EINVAL);
    const vm = proc.ioctl(kvm, KVM_CREATE_VM, opts.ipaBits ?? 0);
    if (vm < 0) return fail('KVM_CREATE_VM', vm);
    undo.push(() => proc.close(vm));
    const scratch = proc.mmap(0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (scratch < 0) return fail('mmap scratch', scratch);
    undo.push(() => proc.munmap(scratch, 0x1000));

    const hugepages = opts.hugepages ?? true;
    if (ramSize <= 0 || ramSize % HUGE !== 0) return fail('guest RAM size', -EINVAL);
    const hva = proc.mmap(
      ramSize,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | (hugepages ? MAP_HUGETLB : 0),
    );
    if (hva < 0) return fail('mmap guest RAM', hva);
    undo.push(() => proc.munmap(hva, ramSize));
    const slot = proc.ioctl(
      vm,
      KVM_SET_USER_MEMORY_REGION,
      kvm_userspace_memory_region.encode({
        slot: 0,
        flags: 0,
        guest_phys_addr: BigInt(VIRT_MEM),
        memory_size: BigInt(ramSize),
        userspace_addr: BigInt(hva),
      }),
    );
    if (slot < 0) return fail('KVM_SET_USER_MEMORY_REGION', slot);

    const mmapSize = proc.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmapSize < 0) return fail('KVM_GET_VCPU_MMAP_SIZE', mmapSize);
    const vcpus: number[] = [];
    const runVas: number[] = [];
    for (let i = 0; i < cpus; i++) {
      const fd = proc.ioctl(vm, KVM_CREATE_VCPU, i);
      if (fd < 0) return fail(`KVM_CREATE_VCPU ${i}`, fd);
      undo.push(() => proc.close(fd));
      const features =
        (1 << KVM_ARM_VCPU_PSCI_0_2) | (i > 0 && opts.allCpusOn !== true ? 1 << KVM_ARM_VCPU_POWER_OFF : 0);
      const init = proc.ioctl(
        fd,
        KVM_ARM_VCPU_INIT,
        kvm_vcpu_init.encode({ target: KVM_ARM_TARGET_GENERIC_V8, features: [features, 0, 0, 0, 0, 0, 0] }),
      );
      if (init < 0) return fail(`KVM_ARM_VCPU_INIT ${i}`, init);
      const run = proc.mmap(mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, 0, fd, 0);
      if (run < 0) return fail(`mmap kvm_run ${i}`, run);
      undo.push(() => proc.munmap(run, mmapSize));
      vcpus.push(fd);
      runVas.push(run);
    }

    const dev = kvm_create_device.encode({ type: KVM_DEV_TYPE_ARM_VGIC_V3, flags: 0 });
    const created = proc.ioctl(vm, KVM_CREATE_DEVICE, dev);
    if (created < 0) return fail('KVM_CREATE_DEVICE vGICv3', created);
    const gic = kvm_create_device.decode(dev).fd;
    undo.push(() => proc.close(gic));
    const attr = (group: number, a: number, value: number, what: string): MachineError | undefined => {
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, BigInt(value), true);
      proc.mm.writeUser(scratch, v);
      const r = proc.ioctl(
        gic,
        KVM_SET_DEVICE_ATTR,
        kvm_device_attr.encode({ flags: 0, group, attr: BigInt(a), addr: BigInt(scratch) }),
      );
      return r < 0 ? fail(what, r) : undefined;
    };
    const gicErr =
      attr(
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        KVM_VGIC_V3_ADDR_TYPE_DIST,
        VIRT_GIC_DIST,
        'vGIC distributor address',
      ) ??
      attr(
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        KVM_VGIC_V3_ADDR_TYPE_REDIST,
        VIRT_GIC_REDIST,
        'vGIC redistributor address',
      ) ??
      attr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, VIRT_GIC_NR_IRQS, 'vGIC NR_IRQS') ??
      attr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, 0, 'vGIC init');
    if (gicErr !== undefined) return gicErr;

    const ram = new GuestRam(proc, [{ gpa: VIRT_MEM, hva, size: ramSize }]);
    const m = new VirtMachine(name, proc, { kvm, vm, vcpus, runVas, gic }, ram, ramSize, scratch);
    m.addMmio('gicv2m', VIRT_GIC_V2M, VIRT_GIC_V2M_SIZE, m.v2mFrame());
    return m;
  }

  // ------------------------------------------------------------ devices

  /** Places an emulated device at [base, base+size). Throws on an overlap (a wiring mistake). */
  addMmio(name: string, base: number, size: number, ops: MmioOps): MachineMmioRegion {
    const clash = this.regions.find((r) => r.base < base + size && base < r.base + r.size);
    if (clash !== undefined) throw new Error(`${this.name}: ${name} overlaps ${clash.name}`);
    const region: MachineMmioRegion = { name, base, size, ops, reads: 0, writes: 0 };
    this.regions.push(region);
    this.regions.sort((a, b) => a.base - b.base);
    return region;
  }

  /** KVM_IRQ_LINE for an SPI (`intid` ≥ 32): 0 or -errno (recorded). */
  setIrq(intid: number, level: boolean): number {
    this.stats.irqLines++;
    const irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | intid;
    const r = this.proc.ioctl(this.vmFd, KVM_IRQ_LINE, kvm_irq_level.encode({ irq, level: level ? 1 : 0 }));
    if (r < 0) this.errors.push(`KVM_IRQ_LINE ${intid}: ${errnoName(r)}`);
    return r;
  }

  /** An edge on an SPI: raise then lower. */
  pulseIrq(intid: number): number {
    const r = this.setIrq(intid, true);
    return r < 0 ? r : this.setIrq(intid, false);
  }

  /**
   * The GICv2m frame (GIC v2m architecture: MSI_TYPER at 0x8 gives the SPI range, a write of an
   * INTID to MSI_SETSPI_NS raises it). Assigned devices' MSIs do not come here — the host maps
   * the doorbell to its own interrupt controller and irqfds deliver them — but a guest CPU write,
   * or a probe of MSI_TYPER, does.
   */
  private v2mFrame(): MmioOps {
    const MSI_TYPER = 0x8;
    return {
      // MSI_TYPER[25:16] is the INTID of the frame's first SPI, [9:0] how many; the rest reads 0.
      read: (off) => (off === MSI_TYPER ? (VIRT_GIC_V2M_SPI_BASE << 16) | VIRT_GIC_V2M_SPI_COUNT : 0),
      write: (off, _size, value) => {
        if (off !== V2M_MSI_SETSPI_NS) return;
        const spi = value & 0x3ff;
        if (spi < VIRT_GIC_V2M_SPI_BASE || spi >= VIRT_GIC_V2M_SPI_BASE + VIRT_GIC_V2M_SPI_COUNT) {
          this.errors.push(`gicv2m: INTID ${spi} outside the frame's SPIs`);
          return;
        }
        this.pulseIrq(spi);
      },
    };
  }

  // ------------------------------------------------------------ device tree

  /** Writes the device-tree blob (`src/arch/virt.ts`) at the start of RAM. */
  writeDeviceTree(dt: VirtDt): boolean {
    const blob = encodeVirtDtBlob(dt);
    if (blob.length > VIRT_DT_RESERVED) {
      this.errors.push('device tree larger than its reserved page');
      return false;
    }
    return this.ram.write(VIRT_MEM, blob);
  }

  /** The device-tree fields the board itself fixes (RAM, CPUs, GIC, MSI frame). */
  baseDeviceTree(): Pick<VirtDt, 'model' | 'cpus' | 'memory' | 'reserved' | 'gic' | 'msi'> {
    return {
      model: 'vsva,virt',
      cpus: this.vcpuFds.length,
      memory: [range(VIRT_MEM, this.ramSize)],
      reserved: [range(VIRT_MEM, VIRT_DT_RESERVED)],
      gic: {
        dist: range(VIRT_GIC_DIST, VIRT_GIC_DIST_SIZE),
        redist: range(VIRT_GIC_REDIST, VIRT_GIC_REDIST_SIZE_PER_CPU * this.vcpuFds.length),
      },
      msi: {
        compatible: 'arm,gic-v2m-frame',
        reg: range(VIRT_GIC_V2M, VIRT_GIC_V2M_SIZE),
        spiBase: VIRT_GIC_V2M_SPI_BASE,
        spiCount: VIRT_GIC_V2M_SPI_COUNT,
      },
    };
  }

  // ------------------------------------------------------------ vCPU loop

  /**
   * kvm_cpu_exec for vCPU `i`: KVM_RUN until it returns -EINTR (the guest waits for an interrupt,
   * or its time slice ended), handling MMIO exits; at most `maxExits` exits.
   */
  runVcpu(i: number, maxExits = 1_000_000): VcpuLoopResult {
    const fd = this.vcpuFds[i];
    const runVa = this.runVas[i];
    if (fd === undefined || runVa === undefined || this.closed) return { error: `no vCPU ${i}` };
    for (let n = 0; n < maxExits; n++) {
      this.stats.kvmRuns++;
      const r = this.proc.ioctl(fd, KVM_RUN, 0);
      if (r === -EINTR) return 'idle';
      if (r < 0) return { error: `KVM_RUN vCPU ${i}: ${errnoName(r)}` };
      const reason = this.readRunU32(runVa, kvm_run.offsetof('exit_reason'));
      if (reason !== KVM_EXIT_MMIO) return { error: `KVM_RUN vCPU ${i}: unexpected exit reason ${reason}` };
      this.handleMmio(runVa);
    }
    return 'exit-limit';
  }

  private readRunU32(runVa: number, off: number): number {
    const b = this.proc.mm.readUser(runVa + off, 4);
    return b === undefined ? 0 : new DataView(b.buffer).getUint32(0, true);
  }

  /** One KVM_EXIT_MMIO: the access goes to the device whose range holds it. */
  private handleMmio(runVa: number): void {
    this.stats.mmioExits++;
    const at = runVa + KVM_RUN_EXIT_OFFSET;
    const raw = this.proc.mm.readUser(at, kvm_run_mmio.size);
    if (raw === undefined) return;
    const m = kvm_run_mmio.decode(raw);
    const gpa = Number(m.phys_addr);
    const len = m.len as MmioSize;
    const region = this.regions.find((r) => gpa >= r.base && gpa + len <= r.base + r.size);
    if (m.is_write !== 0) {
      if (region === undefined) {
        this.stats.unassignedWrites++;
        return;
      }
      region.writes++;
      region.ops.write(gpa - region.base, len, leValue(m.data, len));
      return;
    }
    let value = 0;
    if (region === undefined) this.stats.unassignedReads++;
    else {
      region.reads++;
      value = region.ops.read(gpa - region.base, len);
    }
    this.proc.mm.writeUser(at + kvm_run_mmio.offsetof('data'), leBytes(value, 8));
  }

  // ------------------------------------------------------------ teardown

  /**
   * Closes the VM: vCPU run pages unmapped, vCPU, device and VM fds closed, guest RAM and the
   * scratch page unmapped. Devices the assembly added must be torn down before.
   */
  shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    const p = this.proc;
    for (const va of this.runVas) p.munmap(va, 0x1000);
    for (const fd of this.vcpuFds) p.close(fd);
    p.close(this.gicFd);
    p.close(this.vmFd);
    p.close(this.kvmFd);
    for (const b of this.ram.blocks) p.munmap(b.hva, b.size);
    p.munmap(this.scratch, 0x1000);
  }
}

function range(base: number, size: number) {
  return { base: hex(base), size: hex(size) };
}

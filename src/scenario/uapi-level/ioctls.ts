/**
 * The uAPI level's declarative tables (issue 7 §1, "uAPI level"): every ioctl a scenario may name
 * — its number from `src/uapi`, what its argument is (nothing, a value, a pointer to an int, a
 * string, or a struct with its layout and direction) and whether it returns a new fd —, the
 * symbolic constants scenario files may write instead of numbers (VFIO_TYPE1_NESTING_IOMMU,
 * EFD_SEMAPHORE, KVM_REG_S390_PFTOKEN, and the PCI register facts of src/hw/pci/regs.ts such as
 * PCI_EXT_CAP_ID_PASID), and the struct layouts `peek`/`poke` decode by name.
 *
 * The tables are built from the uAPI modules themselves, so a number is never written twice.
 * Struct ioctls of KVM that differ per architecture (KVM_GET_REGS…) are listed with the s390
 * layouts (seed-spec §4); arm64 registers go through ONE_REG.
 */

import { FIOCLEX, FIONBIO, FIONCLEX } from '../../host/kernel/process.ts';
import * as pciRegs from '../../hw/pci/regs.ts';
import * as errno from '../../uapi/errno.ts';
import * as eventfd from '../../uapi/eventfd.ts';
import * as fcntl from '../../uapi/fcntl.ts';
import * as iommu from '../../uapi/iommu.ts';
import * as kvm from '../../uapi/kvm.ts';
import * as kvmS390 from '../../uapi/kvm-s390.ts';
import { type Fields, StructLayout } from '../../uapi/layout.ts';
import * as poll from '../../uapi/poll.ts';
import * as vfio from '../../uapi/vfio.ts';
import * as vfioDevice from '../../uapi/vfio-device.ts';
import * as vfioType1 from '../../uapi/vfio-type1.ts';

/** How an ioctl's third argument is passed. */
export type IoctlArgKind =
  /** No argument (0 is passed). */
  | { readonly kind: 'none' }
  /** An integer passed by value (an extension ID, a vCPU id); an fd name passes that fd's number. */
  | { readonly kind: 'value' }
  /** A pointer to an s32 (VFIO_GROUP_SET_CONTAINER's container fd, FIONBIO's flag). */
  | { readonly kind: 'int-pointer' }
  /** A pointer to a NUL-terminated string (VFIO_GROUP_GET_DEVICE_FD's device name). */
  | { readonly kind: 'string' }
  /** A pointer to a struct; `out` when the kernel writes it back (the step may expect `out` fields). */
  | { readonly kind: 'struct'; readonly layout: StructLayout<Fields>; readonly out: boolean };

export interface IoctlSpec {
  readonly name: string;
  readonly request: number;
  readonly arg: IoctlArgKind;
  /** The ioctl returns a new file descriptor (`as:` names it). */
  readonly returnsFd: boolean;
}

const none = { kind: 'none' } as const;
const value = { kind: 'value' } as const;
const intPtr = { kind: 'int-pointer' } as const;
const str = { kind: 'string' } as const;
const inStruct = <F extends Fields>(layout: StructLayout<F>): IoctlArgKind => ({
  kind: 'struct',
  layout: layout as unknown as StructLayout<Fields>,
  out: false,
});
const ioStruct = <F extends Fields>(layout: StructLayout<F>): IoctlArgKind => ({
  kind: 'struct',
  layout: layout as unknown as StructLayout<Fields>,
  out: true,
});

/** [name, request, argument, returns an fd] */
type Row = readonly [string, number, IoctlArgKind, boolean?];

const ROWS: readonly Row[] = [
  // ---- every file (the VFS)
  ['FIOCLEX', FIOCLEX, none],
  ['FIONCLEX', FIONCLEX, none],
  ['FIONBIO', FIONBIO, intPtr],
  // ---- VFIO container and group
  ['VFIO_GET_API_VERSION', vfio.VFIO_GET_API_VERSION, none],
  ['VFIO_CHECK_EXTENSION', vfio.VFIO_CHECK_EXTENSION, value],
  ['VFIO_SET_IOMMU', vfio.VFIO_SET_IOMMU, value],
  ['VFIO_GROUP_GET_STATUS', vfio.VFIO_GROUP_GET_STATUS, ioStruct(vfioDevice.vfio_group_status)],
  ['VFIO_GROUP_SET_CONTAINER', vfio.VFIO_GROUP_SET_CONTAINER, intPtr],
  ['VFIO_GROUP_UNSET_CONTAINER', vfio.VFIO_GROUP_UNSET_CONTAINER, none],
  ['VFIO_GROUP_GET_DEVICE_FD', vfio.VFIO_GROUP_GET_DEVICE_FD, str, true],
  // ---- VFIO device
  ['VFIO_DEVICE_GET_INFO', vfio.VFIO_DEVICE_GET_INFO, ioStruct(vfioDevice.vfio_device_info)],
  ['VFIO_DEVICE_GET_REGION_INFO', vfio.VFIO_DEVICE_GET_REGION_INFO, ioStruct(vfioDevice.vfio_region_info)],
  ['VFIO_DEVICE_GET_IRQ_INFO', vfio.VFIO_DEVICE_GET_IRQ_INFO, ioStruct(vfioDevice.vfio_irq_info)],
  ['VFIO_DEVICE_RESET', vfio.VFIO_DEVICE_RESET, none],
  // ---- VFIO type1
  ['VFIO_IOMMU_GET_INFO', vfio.VFIO_IOMMU_GET_INFO, ioStruct(vfioType1.vfio_iommu_type1_info)],
  ['VFIO_IOMMU_MAP_DMA', vfio.VFIO_IOMMU_MAP_DMA, inStruct(vfioType1.vfio_iommu_type1_dma_map)],
  ['VFIO_IOMMU_UNMAP_DMA', vfio.VFIO_IOMMU_UNMAP_DMA, ioStruct(vfioType1.vfio_iommu_type1_dma_unmap)],
  // ---- the seeds' type1 ioctls (§2, §6)
  [
    'VFIO_IOMMU_SET_PASID_TABLE',
    vfio.VFIO_IOMMU_SET_PASID_TABLE,
    inStruct(vfio.vfio_iommu_type1_set_pasid_table),
  ],
  [
    'VFIO_IOMMU_CACHE_INVALIDATE',
    vfio.VFIO_IOMMU_CACHE_INVALIDATE,
    inStruct(vfio.vfio_iommu_type1_cache_invalidate),
  ],
  [
    'VFIO_IOMMU_SET_MSI_BINDING',
    vfio.VFIO_IOMMU_SET_MSI_BINDING,
    inStruct(vfio.vfio_iommu_type1_set_msi_binding),
  ],
  ['VFIO_IOMMU_PASID_REQUEST', vfio.VFIO_IOMMU_PASID_REQUEST, ioStruct(vfio.vfio_iommu_type1_pasid_request)],
  [
    'VFIO_IOMMU_SET_PASID_QUOTA',
    vfio.VFIO_IOMMU_SET_PASID_QUOTA,
    inStruct(vfio.vfio_iommu_type1_pasid_quota),
  ],
  ['VFIO_NESTING_GET_IOMMU_UAPI_VERSION', vfio.VFIO_NESTING_GET_IOMMU_UAPI_VERSION, none],
  // ---- KVM system and VM
  ['KVM_GET_API_VERSION', kvm.KVM_GET_API_VERSION, none],
  ['KVM_CREATE_VM', kvm.KVM_CREATE_VM, value, true],
  ['KVM_CHECK_EXTENSION', kvm.KVM_CHECK_EXTENSION, value],
  ['KVM_GET_VCPU_MMAP_SIZE', kvm.KVM_GET_VCPU_MMAP_SIZE, none],
  ['KVM_CREATE_VCPU', kvm.KVM_CREATE_VCPU, value, true],
  ['KVM_SET_USER_MEMORY_REGION', kvm.KVM_SET_USER_MEMORY_REGION, inStruct(kvm.kvm_userspace_memory_region)],
  ['KVM_ENABLE_CAP', kvm.KVM_ENABLE_CAP, inStruct(kvm.kvm_enable_cap)],
  ['KVM_IRQFD', kvm.KVM_IRQFD, inStruct(kvm.kvm_irqfd)],
  // ---- KVM vCPU (s390 layouts, seed-spec §4)
  ['KVM_RUN', kvm.KVM_RUN, none],
  ['KVM_GET_REGS', kvmS390.KVM_GET_REGS, ioStruct(kvmS390.kvm_regs)],
  ['KVM_SET_REGS', kvmS390.KVM_SET_REGS, inStruct(kvmS390.kvm_regs)],
  ['KVM_GET_SREGS', kvmS390.KVM_GET_SREGS, ioStruct(kvmS390.kvm_sregs)],
  ['KVM_SET_SREGS', kvmS390.KVM_SET_SREGS, inStruct(kvmS390.kvm_sregs)],
  ['KVM_GET_FPU', kvmS390.KVM_GET_FPU, ioStruct(kvmS390.kvm_fpu)],
  ['KVM_SET_FPU', kvmS390.KVM_SET_FPU, inStruct(kvmS390.kvm_fpu)],
  ['KVM_GET_ONE_REG', kvm.KVM_GET_ONE_REG, inStruct(kvm.kvm_one_reg)],
  ['KVM_SET_ONE_REG', kvm.KVM_SET_ONE_REG, inStruct(kvm.kvm_one_reg)],
  ['KVM_GET_MP_STATE', kvm.KVM_GET_MP_STATE, ioStruct(kvm.kvm_mp_state)],
  ['KVM_SET_MP_STATE', kvm.KVM_SET_MP_STATE, inStruct(kvm.kvm_mp_state)],
  ['KVM_S390_IRQ', kvmS390.KVM_S390_IRQ, inStruct(kvmS390.kvm_s390_irq)],
  ['KVM_S390_INTERRUPT', kvmS390.KVM_S390_INTERRUPT, inStruct(kvmS390.kvm_s390_interrupt)],
  ['KVM_S390_GET_IRQ_STATE', kvmS390.KVM_S390_GET_IRQ_STATE, inStruct(kvmS390.kvm_s390_irq_state)],
  ['KVM_S390_SET_IRQ_STATE', kvmS390.KVM_S390_SET_IRQ_STATE, inStruct(kvmS390.kvm_s390_irq_state)],
  ['KVM_S390_SET_INITIAL_PSW', kvmS390.KVM_S390_SET_INITIAL_PSW, inStruct(kvmS390.kvm_s390_psw)],
  ['KVM_S390_NORMAL_RESET', kvm.KVM_S390_NORMAL_RESET, none],
  ['KVM_S390_INITIAL_RESET', kvm.KVM_S390_INITIAL_RESET, none],
  ['KVM_S390_CLEAR_RESET', kvm.KVM_S390_CLEAR_RESET, none],
];

/** Ioctls by name. */
export const IOCTLS: ReadonlyMap<string, IoctlSpec> = new Map(
  ROWS.map(([name, request, arg, fd]) => [name, { name, request, arg, returnsFd: fd === true }]),
);

const MODULES: readonly Record<string, unknown>[] = [
  errno,
  eventfd,
  fcntl,
  iommu,
  kvm,
  kvmS390,
  poll,
  vfio,
  vfioDevice,
  vfioType1,
  pciRegs,
];

/**
 * Symbolic constants: every UPPER_CASE numeric export of the uAPI modules (flags, capability and
 * extension IDs, ONE_REG ids, config values…). Values are bigints so u64 ids stay exact.
 */
export const CONSTANTS: ReadonlyMap<string, bigint> = (() => {
  const m = new Map<string, bigint>();
  for (const mod of MODULES)
    for (const [k, v] of Object.entries(mod)) {
      if (!/^[A-Z][A-Za-z0-9_]*$/.test(k)) continue;
      if (typeof v === 'number' && Number.isInteger(v)) m.set(k, BigInt(v));
      else if (typeof v === 'bigint') m.set(k, v);
    }
  return m;
})();

/** Struct layouts by their export name (`kvm_run_s390`, `vfio_iommu_type1_pasid_request`…). */
export const STRUCTS: ReadonlyMap<string, StructLayout<Fields>> = (() => {
  const m = new Map<string, StructLayout<Fields>>();
  for (const mod of MODULES)
    for (const [k, v] of Object.entries(mod))
      if (v instanceof StructLayout) m.set(k, v as StructLayout<Fields>);
  return m;
})();

/** Scalar types `peek`/`poke` read without a struct. */
export const SCALARS = { u8: 1, u16: 2, u32: 4, u64: 8 } as const;
export type ScalarName = keyof typeof SCALARS;

/**
 * The zod schemas of uAPI-level scenarios (issue 7 §1, "uAPI level"; DESIGN §5): a host (the
 * `Host` options of src/host/host.ts that the seeds switch: SMMU features and driver quirks, the
 * kernel's EFD_AUTORESET, VFIO's PASID quota and the as-posted PASID_REQUEST, vfio-pci's PASID
 * exposure, the KVM architecture), PASID DMA devices bound to vfio-pci, named processes, and
 * steps that are syscalls on those processes — like a kselftest.
 *
 * Names: a step that creates something names it with `as` (an fd, a mapping, a sleeping call);
 * later steps refer to it by that name. Strings may hold `{group:dev0}` (the IOMMU group number of
 * device dev0, for `/dev/vfio/{group:dev0}`) and `{device:dev0}` (its PCI name, for
 * VFIO_GROUP_GET_DEVICE_FD). Numbers are ints or hex strings; wherever a number goes, a uAPI
 * constant name may go instead (`VFIO_TYPE1_NESTING_IOMMU`), and flags may be a list of names
 * OR-ed together (`[EFD_SEMAPHORE, EFD_NONBLOCK]`). What a name or struct field means is checked
 * by `check.ts`, which knows the ioctl table.
 */

import { z } from 'zod';
import { stepBase } from '../format/level.ts';
import { addr, bytes, int, u32, u64 } from '../format/values.ts';

// ---------------------------------------------------------------- values

/** A number, a numeric string, or a constant name. */
const scalarish = z.union([z.int(), z.string()]);
/** A number or constant, or a list of them OR-ed together. */
export const flagsValue = z
  .union([scalarish, z.array(scalarish)])
  .describe('a number, a uAPI constant name (EFD_SEMAPHORE), or a list of them OR-ed together');
/** An ioctl argument: a value, an fd name, a string, or a struct as an object of fields. */
const argValue = z
  .json()
  .describe(
    'a number or constant, an fd name, a string ("{device:dev0}"), or the struct as {field: value}; ' +
      'a pointer field may be {mapping: name, offset?}',
  );

const name = z.string().min(1);
const processField = name.optional().describe('the process (default: the first in setup.processes)');

// ---------------------------------------------------------------- expectations

/** What any syscall returns. `errno` names the error (`ret` is then -errno). */
const resultExpect = {
  ret: scalarish.optional().describe('the return value (a number or a constant name)'),
  errno: z.string().optional().describe('the errno name of a refusal: EINVAL, ENOSPC…'),
};
/** Calls that may sleep. */
const blockingExpect = {
  ...resultExpect,
  blocked: z.boolean().optional().describe('true: the call is asleep after this step'),
};

// ---------------------------------------------------------------- setup

const smmuFeatures = z.strictObject({
  stage1: z.boolean().optional(),
  stage2: z.boolean().optional(),
  sidBits: z.int().min(0).max(32).optional(),
  ssidBits: z.int().min(0).max(20).optional(),
  oasBits: z.int().min(32).max(52).optional(),
  twoLevelCdTable: z.boolean().optional(),
  rangeInvalidation: z.boolean().optional(),
});

const smmuDriver = z.strictObject({
  asPostedSingleCd: z
    .boolean()
    .optional()
    .describe('attach_pasid_table as posted (v15): pasid_bits must be 0, S1DSS forced to SSID0 (§1.3)'),
  disableBypass: z.boolean().optional(),
  domainInvalidation: z.enum(['nsnh-all', 'nh-all']).optional(),
});

export const hostSchema = z.strictObject({
  ramSize: addr.optional().describe('host RAM in bytes (default 1 GiB)'),
  pasidBits: z.int().min(1).max(20).optional().describe('width of the IOASID space (default 20)'),
  kvmArch: z.enum(['arm64', 's390x']).optional().describe('the architecture /dev/kvm offers (default arm64)'),
  smmu: z
    .strictObject({ features: smmuFeatures.optional(), driver: smmuDriver.optional() })
    .optional()
    .describe('the host SMMUv3 (smmu0): model features and arm-smmu-v3 driver options'),
  kernel: z
    .strictObject({
      eventfdAutoreset: z.boolean().optional().describe('the EFD_AUTORESET RFC applied (§5; default true)'),
      nofile: z.int().min(3).optional(),
    })
    .optional(),
  vfio: z
    .strictObject({
      pasidQuota: z.int().min(0).optional().describe('the initial per-mm PASID quota (§6; default 1000)'),
      pasidRequestAsPosted: z
        .boolean()
        .optional()
        .describe('PASID_REQUEST as RFC v3 posted it: allocation failures swallowed (§6.3)'),
    })
    .optional(),
  vfioPci: z
    .strictObject({
      exposePasid: z.boolean().optional().describe('the PASID capability patch (§7; default true)'),
    })
    .optional(),
  type1: z.strictObject({ dmaEntryLimit: z.int().min(1).optional() }).optional(),
});

export const deviceSchema = z.strictObject({
  name: name.describe('how steps refer to it: {group:NAME}, {device:NAME}, host.ste'),
  pasidWidth: z.int().min(0).max(20).default(20).describe('Max PASID Width of its PASID capability'),
  pasidExec: z.boolean().optional(),
  pasidPriv: z.boolean().optional(),
  exposePasid: z.boolean().optional().describe('vfio-pci option for this device (overrides host.vfioPci)'),
  isolationKey: z.string().optional().describe('devices sharing a key share an IOMMU group'),
});

export const setupSchema = z.strictObject({
  host: hostSchema.default({}),
  devices: z.array(deviceSchema).default([]).describe('PASID DMA devices, plugged in and bound to vfio-pci'),
  processes: z.array(name).min(1).default(['qemu']).describe('user processes, by name'),
});
export type UapiSetup = z.infer<typeof setupSchema>;

// ---------------------------------------------------------------- steps

const open = z.strictObject({
  ...stepBase,
  do: z.literal('open'),
  process: processField,
  path: z.string().describe('a device node: /dev/vfio/vfio, /dev/vfio/{group:dev0}, /dev/kvm'),
  flags: flagsValue.optional().describe('open flags (default O_RDWR)'),
  as: name.optional().describe('names the fd'),
  expect: z.strictObject(resultExpect).optional(),
});

const close = z.strictObject({
  ...stepBase,
  do: z.literal('close'),
  fd: name,
  expect: z.strictObject(resultExpect).optional(),
});

const ioctl = z.strictObject({
  ...stepBase,
  do: z.literal('ioctl'),
  fd: name,
  request: z.string().describe('the ioctl by name: VFIO_IOMMU_SET_PASID_TABLE, KVM_S390_CLEAR_RESET…'),
  arg: argValue.optional(),
  argsz: u32.optional().describe("overrides the struct's argsz (default: the struct's size)"),
  size: z.int().min(0).max(4096).optional().describe('the user buffer size (default: the struct size)'),
  as: name.optional().describe('names the fd the ioctl returns'),
  expect: z
    .strictObject({ ...resultExpect, out: z.json().optional().describe('struct fields after the call') })
    .optional(),
});

const eventfdStep = z.strictObject({
  ...stepBase,
  do: z.literal('eventfd'),
  process: processField,
  initval: u32.default(0),
  flags: flagsValue.optional().describe('EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC, EFD_AUTORESET'),
  as: name.optional(),
  expect: z.strictObject(resultExpect).optional(),
});

const readExpect = z.strictObject({
  ...blockingExpect,
  value: flagsValue
    .optional()
    .describe('the first 8 bytes read, little-endian (a number, constant or list OR-ed)'),
  bytes: bytes.optional(),
});

const read = z.strictObject({
  ...stepBase,
  do: z.literal('read'),
  fd: name,
  size: z.int().min(0).max(65536).default(8),
  as: name.optional().describe('names the call, when it may sleep'),
  expect: readExpect.optional(),
});

const write = z.strictObject({
  ...stepBase,
  do: z.literal('write'),
  fd: name,
  value: u64.optional().describe('8 bytes, little-endian'),
  bytes: bytes.optional(),
  size: z.int().min(0).max(65536).optional().describe('bytes passed (default: all)'),
  as: name.optional(),
  expect: z.strictObject(blockingExpect).optional(),
});

const reventsExpect = z.record(z.string(), flagsValue).describe('fd name → events reported');

const poll = z.strictObject({
  ...stepBase,
  do: z.literal('poll'),
  process: processField,
  fds: z.array(z.strictObject({ fd: name, events: flagsValue })).min(1),
  timeout: int.default(0).describe('milliseconds of virtual time; -1 waits for ever'),
  as: name.optional(),
  expect: z.strictObject({ ...blockingExpect, revents: reventsExpect.optional() }).optional(),
});

const epollCreate = z.strictObject({
  ...stepBase,
  do: z.literal('epoll_create'),
  process: processField,
  flags: flagsValue.optional(),
  as: name.optional(),
  expect: z.strictObject(resultExpect).optional(),
});

const epollCtl = z.strictObject({
  ...stepBase,
  do: z.literal('epoll_ctl'),
  epfd: name,
  op: z.enum(['ADD', 'MOD', 'DEL']),
  fd: name,
  events: flagsValue.optional(),
  expect: z.strictObject(resultExpect).optional(),
});

const epollWait = z.strictObject({
  ...stepBase,
  do: z.literal('epoll_wait'),
  epfd: name,
  maxevents: z.int().default(8),
  timeout: int.default(0),
  as: name.optional(),
  expect: z.strictObject({ ...blockingExpect, events: reventsExpect.optional() }).optional(),
});

const wait = z.strictObject({
  ...stepBase,
  do: z.literal('wait'),
  call: name.describe('a call named by `as` that went to sleep'),
  expect: z
    .strictObject({
      ...blockingExpect,
      value: flagsValue.optional(),
      revents: reventsExpect.optional(),
      events: reventsExpect.optional(),
    })
    .optional(),
});

const signal = z.strictObject({
  ...stepBase,
  do: z.literal('signal'),
  call: name.describe('the sleeping call a signal interrupts (it returns EINTR)'),
  expect: z.strictObject({ delivered: z.boolean().optional() }).optional(),
});

const advance = z.strictObject({
  ...stepBase,
  do: z.literal('advance'),
  ms: z.number().positive().describe('moves the virtual clock (poll timeouts)'),
});

const region = z
  .union([z.enum(['config', 'bar0', 'bar1', 'bar2', 'bar3', 'bar4', 'bar5']), z.int().min(0).max(15)])
  .describe('a vfio-pci region: config, bar0..bar5, or an index');

const pread = z.strictObject({
  ...stepBase,
  do: z.literal('pread'),
  fd: name.describe('a VFIO device fd'),
  region,
  offset: addr,
  size: z.int().min(1).max(4096).default(4),
  expect: z
    .strictObject({
      ...resultExpect,
      value: flagsValue
        .optional()
        .describe('the bytes read as a little-endian integer (a number, constant or list OR-ed)'),
      bytes: bytes.optional(),
    })
    .optional(),
});

const pwrite = z.strictObject({
  ...stepBase,
  do: z.literal('pwrite'),
  fd: name,
  region,
  offset: addr,
  value: u64.optional(),
  size: z.int().min(1).max(8).default(4).describe('bytes of `value` written'),
  bytes: bytes.optional(),
  expect: z.strictObject(resultExpect).optional(),
});

const extCaps = z.strictObject({
  ...stepBase,
  do: z.literal('ext_caps'),
  fd: name.describe('a VFIO PCI device fd'),
  expect: z
    .strictObject({
      caps: z
        .array(z.strictObject({ id: scalarish, version: z.int().optional(), offset: scalarish.optional() }))
        .optional()
        .describe('the extended capability chain from 0x100, in order'),
      has: z.array(scalarish).optional().describe('capability IDs that must be in the chain'),
      lacks: z.array(scalarish).optional().describe('capability IDs that must not be in the chain'),
    })
    .optional(),
});

const mmap = z.strictObject({
  ...stepBase,
  do: z.literal('mmap'),
  process: processField,
  fd: name.optional().describe('a file to map (a vCPU fd for kvm_run); anonymous memory without it'),
  size: addr,
  offset: addr.default(0),
  prot: flagsValue.optional().describe('default [PROT_READ, PROT_WRITE]'),
  flags: flagsValue.optional().describe('default MAP_SHARED with an fd, MAP_PRIVATE without'),
  as: name.optional().describe('names the mapping'),
  expect: z.strictObject(resultExpect).optional(),
});

const peek = z.strictObject({
  ...stepBase,
  do: z.literal('peek'),
  mapping: name,
  offset: addr.default(0),
  struct: z.string().optional().describe('a uAPI struct name (kvm_run_s390, kvm_s390_irq…)'),
  type: z.enum(['u8', 'u16', 'u32', 'u64']).optional(),
  expect: z.strictObject({ value: scalarish.optional(), fields: z.json().optional() }).optional(),
});

const poke = z.strictObject({
  ...stepBase,
  do: z.literal('poke'),
  mapping: name,
  offset: addr.default(0),
  struct: z.string().optional(),
  fields: z.json().optional(),
  type: z.enum(['u8', 'u16', 'u32', 'u64']).optional(),
  value: scalarish.optional(),
});

const exit = z.strictObject({
  ...stepBase,
  do: z.literal('exit'),
  process: name.describe('the process exits: every fd closed, its address space gone'),
});

const steExpect = z.strictObject({
  valid: z.boolean().optional().describe('STE.V'),
  config: z.union([z.enum(['abort', 'bypass', 's1', 's2', 'nested']), z.int()]).optional(),
  s1ContextPtr: scalarish.optional(),
  s1CdMax: z.int().optional(),
  s1Fmt: z.int().optional(),
  s1Dss: z.int().optional(),
  vmid: z.int().optional(),
  words: z.array(scalarish).optional().describe('raw STE words (u32), a prefix'),
});

const host = z.strictObject({
  ...stepBase,
  do: z.literal('host'),
  ste: name.optional().describe("a device name: observe its STE in the host SMMU's stream table"),
  expect: z
    .strictObject({
      ste: steExpect.optional(),
      pasids: z.int().optional().describe('PASIDs allocated in the host IOASID space'),
      pinnedPages: z.int().optional().describe('pages pinned for DMA, all processes'),
      pasidEnabled: z.boolean().optional().describe("the device's PASID Enable bit (host view)"),
    })
    .optional(),
});

export const stepSchema = z.discriminatedUnion('do', [
  open,
  close,
  ioctl,
  eventfdStep,
  read,
  write,
  poll,
  epollCreate,
  epollCtl,
  epollWait,
  wait,
  signal,
  advance,
  pread,
  pwrite,
  extCaps,
  mmap,
  peek,
  poke,
  exit,
  host,
]);
export type UapiStep = z.infer<typeof stepSchema>;

/**
 * The system level's scenario schema (issue 7 §1, DESIGN §5): a host with its SMMUv3 and vfio-pci
 * options, virtual machines with assigned PASID DMA devices (and, for the PCI topology of seed-spec
 * §3, emulated bridges and endpoints on the VMM's PCI bus), and steps a user of a whole system
 * takes: boot a guest, spawn processes, bind them to PASIDs, map and unmap buffers, run DMA (one
 * descriptor, or a seeded random workload), inject faults, reset vCPUs, unbind, tear down — and
 * look at what happened (PCIIOMMUOps resolution, what the vSMMU forwarded to the host, faults,
 * counters, invariants).
 *
 * Buffers are named: `map` gives a process a buffer under a name, and DMA addresses are written as
 * `name` or `name+offset` (or as a raw VA). Every number is a `values.ts` schema, so hex works.
 */

import { z } from 'zod';
import { stepBase } from '../format/level.ts';
import { addr, anyInt, bytes, u8, uint } from '../format/values.ts';

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const name = (what: string) =>
  z.string().regex(NAME, { message: `expected a ${what} name (letters, digits, _ and -)` });

/** `buf`, `buf+0x100` or `buf+256`. */
export const BUFFER_REF = /^([A-Za-z_][A-Za-z0-9_-]*)(\+(0[xX][0-9a-fA-F_]+|[0-9_]+))?$/;

/** An address in a process: a raw VA, or a buffer name with an optional offset. */
export const loc = z
  .union([
    addr,
    z.string().regex(BUFFER_REF, { message: 'expected a VA or a buffer name (e.g. "src+0x100")' }),
  ])
  .describe('A VA (hex) or a buffer name with an optional offset: "src", "dst+0x1000"');
export type Loc = z.infer<typeof loc>;

const errno = z
  .string()
  .regex(/^E[A-Z0-9]+$/, { message: 'expected an errno name such as "EINVAL"' })
  .describe('The errno name of a refusal');

const bridge = z.strictObject({
  name: name('bridge').describe('Name; endpoints name it as their bus'),
  kind: z
    .enum(['pcie-pci', 'pci-pci', 'root-port'])
    .describe('pcie-pci and pci-pci alias the devices behind them'),
  slot: uint(5).describe('Device number on the root bus'),
});

const endpoint = z.strictObject({
  name: name('endpoint'),
  bus: name('bridge').optional().describe('The bridge it sits behind; the root bus when left out'),
  slot: uint(5),
  fn: uint(3).default(0),
});

const vm = z.strictObject({
  name: name('VM'),
  cpus: z.int().min(1).max(8).default(2),
  ramSize: addr.default(0x800_0000).describe('Guest RAM in bytes, a multiple of 2 MiB (default 128 MiB)'),
  devices: z.int().min(0).max(4).default(1).describe('PASID DMA devices assigned (vfio-pci)'),
  eventfdAutoreset: z.boolean().default(false).describe('The VMM main loop uses EFD_AUTORESET (seed §5)'),
  viommu: z
    .boolean()
    .optional()
    .describe('Virtual SMMUv3 on the root bus (default: when devices are assigned)'),
  bridges: z.array(bridge).default([]).describe('Emulated PCI bridges on the root bus (seed §3)'),
  endpoints: z
    .array(endpoint)
    .default([])
    .describe('Emulated endpoints without DMA, to observe PCIIOMMUOps lookups'),
});
export type VmSetup = z.infer<typeof vm>;

const smmuFeatures = z
  .strictObject({
    stage1: z.boolean().optional(),
    stage2: z.boolean().optional(),
    ssidBits: uint(5).optional(),
    oasBits: z.union([z.literal(40), z.literal(42), z.literal(44), z.literal(48)]).optional(),
    iotlbEntries: z.int().min(1).optional(),
    iotlbWays: z.int().min(1).optional(),
    eventqLog2Max: uint(5).optional(),
    cmdqLog2Max: uint(5).optional(),
    faultOrder: z.enum(['architecture', 'qemu']).optional(),
  })
  .describe('Host SMMUv3 features (the model defaults otherwise)');

export const setup = z.strictObject({
  host: z
    .strictObject({
      smmu: smmuFeatures.optional(),
      exposePasid: z
        .boolean()
        .default(true)
        .describe('vfio-pci exposes the PASID capability (seed §7); false: the pre-patch hiding'),
    })
    .default({ exposePasid: true }),
  pasidWidth: z.int().min(0).max(20).default(20).describe('Max PASID Width of the DMA devices'),
  vms: z.array(vm).min(1).describe('The virtual machines'),
});
export type Setup = z.infer<typeof setup>;

// ------------------------------------------------------------------ steps

const vmField = {
  vm: name('VM').optional().describe('The VM; may be left out when the setup has exactly one'),
};
const procField = { process: name('process').describe('A guest process spawned earlier') };
const devField = { device: z.int().min(0).default(0).describe('Index of the assigned device in the guest') };

const refusal = { errno: errno.optional() };

const boot = z.strictObject({
  ...stepBase,
  do: z.literal('boot'),
  ...vmField,
  expect: z
    .strictObject({
      ok: z.boolean().optional(),
      devices: anyInt.optional().describe('PCI functions the guest found'),
      smmu: z.boolean().optional(),
      pdma: anyInt.optional().describe('DMA engines with a driver'),
      pasidWidth: z
        .union([anyInt, z.null()])
        .optional()
        .describe('PASID width of device 0 as the guest sees it'),
      error: z.string().optional(),
    })
    .optional(),
});

const spawn = z.strictObject({
  ...stepBase,
  do: z.literal('spawn'),
  ...vmField,
  ...procField,
  expect: z.strictObject({ pid: anyInt.optional(), asid: anyInt.optional() }).optional(),
});

const bind = z.strictObject({
  ...stepBase,
  do: z.literal('bind'),
  ...vmField,
  ...procField,
  ...devField,
  expect: z.strictObject({ pasid: anyInt.optional(), ...refusal }).optional(),
});

const unbind = z.strictObject({
  ...stepBase,
  do: z.literal('unbind'),
  ...vmField,
  ...procField,
  ...devField,
  expect: z.strictObject({ ret: anyInt.optional(), ...refusal }).optional(),
});

const map = z.strictObject({
  ...stepBase,
  do: z.literal('map'),
  ...vmField,
  ...procField,
  buffer: name('buffer').describe('Name for the new mapping'),
  size: addr.describe('Bytes (rounded up to 4 KiB pages or 2 MiB blocks)'),
  hugepage: z.boolean().default(false).describe('2 MiB blocks'),
  fill: z
    .union([z.literal('random'), bytes])
    .optional()
    .describe('Initial contents: hex bytes repeated, or "random" (seeded)'),
  expect: z.strictObject({ va: anyInt.optional(), ...refusal }).optional(),
});

const unmap = z.strictObject({
  ...stepBase,
  do: z.literal('unmap'),
  ...vmField,
  ...procField,
  buffer: name('buffer'),
  invalidate: z
    .boolean()
    .default(true)
    .describe('munmap with TLBI_NH_VA (true) or a driver bug that leaves the IOTLB stale (false)'),
  expect: z.strictObject({ ret: anyInt.optional(), ...refusal }).optional(),
});

const remap = z.strictObject({
  ...stepBase,
  do: z.literal('remap'),
  ...vmField,
  ...procField,
  buffer: name('buffer'),
  offset: addr.default(0).describe('Which 4 KiB page of the buffer'),
  expect: z.strictObject({ ok: z.boolean().optional(), ...refusal }).optional(),
});

const flush = z.strictObject({
  ...stepBase,
  do: z.literal('flush'),
  ...vmField,
  ...procField,
  buffer: name('buffer'),
  expect: z.strictObject({ ret: anyInt.optional(), ...refusal }).optional(),
});

export const COMPLETION_STATUSES = [
  'success',
  'compare-mismatch',
  'read-fault',
  'write-fault',
  'pasid-disabled',
  'bad-pasid',
  'priv-disabled',
  'bad-opcode',
  'bad-length',
  'bad-address',
  'none',
] as const;

const dma = z.strictObject({
  ...stepBase,
  do: z.literal('dma'),
  ...vmField,
  ...procField,
  ...devField,
  op: z.enum(['copy', 'fill', 'compare']),
  src: loc.optional().describe('Source (copy, compare)'),
  dst: loc.optional().describe('Destination (copy, fill) or second operand (compare)'),
  size: addr,
  pattern: u8.default(0xa5).describe('Fill byte'),
  expect: z
    .strictObject({
      status: z
        .union([z.enum(COMPLETION_STATUSES), z.literal('fault')])
        .optional()
        .describe('"fault" matches read-fault and write-fault'),
      faultAddr: loc.optional(),
      bytesCompleted: anyInt.optional(),
      pasid: anyInt.optional(),
      error: z.string().optional().describe('The guest job failed with this message'),
    })
    .optional(),
});

const read = z.strictObject({
  ...stepBase,
  do: z.literal('read'),
  ...vmField,
  ...procField,
  at: loc,
  size: addr,
  frame: z
    .enum(['current', 'old'])
    .default('current')
    .describe('The page behind the VA now, or the one before the last remap'),
  expect: z
    .strictObject({
      bytes: bytes.optional().describe('Host memory behind the guest page(s)'),
      sameAs: loc.optional().describe('Equal to the bytes at this address of the same process'),
      differsFrom: loc.optional(),
    })
    .optional(),
});

const workload = z.strictObject({
  ...stepBase,
  do: z.literal('workload'),
  ...vmField,
  ...devField,
  processes: z.array(name('process')).min(1).describe('Bound processes the DMAs are spread over'),
  count: z.int().min(1).max(4096),
  sizes: z.array(addr).min(1).describe('DMA lengths to pick from (each ≤ 64 KiB)'),
  ops: z
    .array(z.enum(['copy', 'fill']))
    .min(1)
    .default(['copy', 'fill']),
  faultRatio: z.number().min(0).max(1).default(0).describe('Share of DMAs aimed at an unmapped VA'),
  seed: z.int().nonnegative().optional().describe('PRNG seed (default: the run seed)'),
  expect: z
    .strictObject({
      submitted: anyInt.optional(),
      success: anyInt.optional(),
      faulted: anyInt.optional(),
      faultsDelivered: anyInt.optional().describe('Fault records that reached the faulting process'),
      misdelivered: anyInt.optional().describe('Fault records against a process that did not fault'),
      dataErrors: anyInt.optional().describe('Successful DMAs whose bytes are not in host memory'),
    })
    .optional(),
});

const inject = z.strictObject({
  ...stepBase,
  do: z.literal('inject'),
  ...vmField,
  ...devField,
  fault: z
    .enum(['illegal-command', 'malformed-ste', 'outside-ram-dma'])
    .describe(
      'illegal-command: CERROR_ILL in the guest queue; malformed-ste: S1CDMax out of range + CFGI_STE; outside-ram-dma: a process page pointed beyond guest RAM',
    ),
  process: name('process').optional().describe('For outside-ram-dma: the bound process'),
  expect: z
    .strictObject({
      ret: anyInt.optional(),
      ...refusal,
      cmdErrors: z.array(z.string()).optional(),
      events: z.record(z.string(), anyInt).optional().describe('Guest-visible events by name (vSMMU queue)'),
      hostConfig: z.enum(['abort', 'bypass', 'translate']).optional().describe('Last SET_PASID_TABLE config'),
      status: z.union([z.enum(COMPLETION_STATUSES), z.literal('fault')]).optional(),
    })
    .optional(),
});

const vcpuReset = z.strictObject({
  ...stepBase,
  do: z.literal('vcpu_reset'),
  ...vmField,
  cpu: z.int().min(0),
  features: z
    .enum(['same', 'changed'])
    .default('same')
    .describe('KVM_ARM_VCPU_INIT with the vCPU features it has, or different ones (refused)'),
  expect: z.strictObject({ ret: anyInt.optional(), ...refusal, powerOff: z.boolean().optional() }).optional(),
});

const pci = z.strictObject({
  ...stepBase,
  do: z.literal('pci'),
  ...vmField,
  device: z
    .union([z.int().min(0), name('endpoint')])
    .describe('An assigned device (index) or an emulated endpoint (name)'),
  expect: z
    .strictObject({
      addressSpace: z.string().optional().describe('"memory" or the vIOMMU\'s address space'),
      iommuBus: z.union([z.string(), z.null()]).optional().describe('The bus whose PCIIOMMUOps apply'),
      requester: z
        .strictObject({ bus: z.string().optional(), busNumber: anyInt.optional(), devfn: anyInt.optional() })
        .optional()
        .describe('The (bus, devfn) the ops are called with, after bridge aliasing'),
      hostContext: z.union([z.string(), z.null()]).optional().describe('The HostIOMMUContext registered'),
    })
    .optional(),
});

const forwarded = z.strictObject({
  ...stepBase,
  do: z.literal('forwarded'),
  ...vmField,
  op: z.enum(['SET_PASID_TABLE', 'UNSET_PASID_TABLE', 'CACHE_INVALIDATE']),
  expect: z
    .strictObject({
      count: anyInt.optional().describe('Operations the vSMMU forwarded to host contexts'),
      ioctls: anyInt.optional().describe("The matching VFIO ioctls in the VMM's log"),
      last: z.unknown().optional().describe('Partial match on the last one (op, cause, sid, ctx, config…)'),
    })
    .optional(),
});

const faultRecord = z.strictObject({
  event: z.string().optional().describe('e.g. F_TRANSLATION'),
  addr: loc.optional(),
  pasid: anyInt.optional(),
  write: z.boolean().optional(),
  device: z.string().optional(),
});

const faults = z.strictObject({
  ...stepBase,
  do: z.literal('faults'),
  ...vmField,
  ...procField,
  expect: z
    .strictObject({
      count: anyInt.optional(),
      records: z
        .array(faultRecord)
        .optional()
        .describe('Every fault record of the process, in order (partial match on each)'),
      last: z.array(faultRecord).optional().describe('The last records (as many as listed), in order'),
    })
    .optional(),
});

const counters = z.strictObject({
  ...stepBase,
  do: z.literal('counters'),
  expect: z
    .record(
      z.string(),
      z.union([
        anyInt,
        z
          .strictObject({
            same: z.string().optional().describe('Equal to this other counter'),
            atLeast: anyInt.optional(),
            atMost: anyInt.optional(),
          })
          .describe('A relation instead of a number, so the expectation holds for any --seed'),
      ]),
    )
    .optional()
    .describe("Counter name → value or relation (see the report's counters for names)"),
});

const settle = z.strictObject({ ...stepBase, do: z.literal('settle') });

const invariantsExpect = z.strictObject({
  isolationViolations: anyInt.optional(),
  leakedPasids: anyInt.optional(),
  leakedPinnedPages: anyInt.optional(),
  leakedDomains: anyInt.optional(),
  leakedFds: anyInt.optional(),
});

const teardown = z.strictObject({
  ...stepBase,
  do: z.literal('teardown'),
  expect: z.strictObject({ invariants: invariantsExpect.optional(), errors: anyInt.optional() }).optional(),
});

const invariants = z.strictObject({
  ...stepBase,
  do: z.literal('invariants'),
  expect: invariantsExpect.optional(),
});

export const step = z.discriminatedUnion('do', [
  boot,
  spawn,
  bind,
  unbind,
  map,
  unmap,
  remap,
  flush,
  dma,
  read,
  workload,
  inject,
  vcpuReset,
  pci,
  forwarded,
  faults,
  counters,
  settle,
  teardown,
  invariants,
]);
export type Step = z.infer<typeof step>;

/** Splits a buffer reference into name and offset (undefined for a raw VA). */
export function parseRef(l: Loc): { buffer: string; offset: number } | undefined {
  if (typeof l === 'number') return undefined;
  const m = BUFFER_REF.exec(l);
  if (m === null) return undefined;
  const off = m[3] === undefined ? 0 : Number(BigInt(m[3].replace(/_/g, '')));
  return { buffer: m[1]!, offset: off };
}

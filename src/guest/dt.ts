/**
 * The guest's device-tree reader: the blob the VMM writes at the start of RAM (format in
 * `src/arch/virt.ts`: magic, length, UTF-8 JSON shaped as `VirtDt`), parsed and validated into
 * exact numbers. A malformed blob is reported as a reason string (the guest's boot fails with
 * it); nothing throws. The writer is `encodeVirtDtBlob` in src/arch/virt.ts.
 */

import { VSVA_DT_MAGIC } from '../arch/virt.ts';
import type { MemoryPort } from '../hw/memory.ts';

export interface Range {
  readonly base: number;
  readonly size: number;
}

/** The device tree with exact numeric addresses. */
export interface GuestDt {
  readonly cpus: number;
  readonly memory: readonly Range[];
  readonly reserved: readonly Range[];
  readonly gicDist: Range;
  readonly msi: { readonly reg: Range; readonly spiBase: number; readonly spiCount: number };
  readonly smmu:
    | {
        readonly reg: Range;
        readonly irqs: {
          readonly eventq: number;
          readonly priq: number;
          readonly cmdqSync: number;
          readonly gerror: number;
        };
      }
    | undefined;
  readonly pcie: {
    readonly ecam: Range;
    readonly busRange: readonly [number, number];
    readonly mmio: Range;
    readonly iommu: 'smmu' | null;
  };
}

export type DtResult =
  | { readonly ok: true; readonly dt: GuestDt }
  | { readonly ok: false; readonly reason: string };

/** Largest JSON document accepted (the reserved first page minus the 8-byte header, with slack). */
const MAX_DT_BYTES = 1 << 20;

/** The blob for a device tree: magic, length, JSON. */
class DtError extends Error {}

function fail(reason: string): never {
  throw new DtError(reason);
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function hexNum(v: unknown, what: string): number {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{1,14}$/.test(v)) fail(`${what} is not a hex string`);
  const n = Number.parseInt(v.slice(2), 16);
  if (!Number.isSafeInteger(n)) fail(`${what} is beyond 2^53`);
  return n;
}

function int(v: unknown, what: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    fail(`${what} must be an integer in ${lo}..${hi}`);
  return v;
}

function range(v: unknown, what: string): Range {
  const o = obj(v, what);
  const base = hexNum(o.base, `${what}.base`);
  const size = hexNum(o.size, `${what}.size`);
  if (size === 0 || !Number.isSafeInteger(base + size)) fail(`${what} is empty or wraps`);
  return { base, size };
}

function ranges(v: unknown, what: string): Range[] {
  if (!Array.isArray(v)) fail(`${what} is not an array`);
  return v.map((r, i) => range(r, `${what}[${i}]`));
}

function validate(doc: unknown): GuestDt {
  const d = obj(doc, 'document');
  if (d.model !== 'vsva,virt') fail(`model ${String(d.model)} is not vsva,virt`);
  const cpus = int(d.cpus, 'cpus', 1, 512);
  const memory = ranges(d.memory, 'memory');
  if (memory.length === 0) fail('no memory');
  const reserved = ranges(d.reserved, 'reserved');
  const gic = obj(d.gic, 'gic');
  const gicDist = range(gic.dist, 'gic.dist');
  const m = obj(d.msi, 'msi');
  if (m.compatible !== 'arm,gic-v2m-frame') fail('msi is not arm,gic-v2m-frame');
  const msi = {
    reg: range(m.reg, 'msi.reg'),
    spiBase: int(m.spiBase, 'msi.spiBase', 32, 1019),
    spiCount: int(m.spiCount, 'msi.spiCount', 1, 988),
  };
  let smmu: GuestDt['smmu'];
  if (d.smmu !== undefined) {
    const s = obj(d.smmu, 'smmu');
    if (s.compatible !== 'arm,smmu-v3') fail('smmu is not arm,smmu-v3');
    const irqs = obj(s.irqs, 'smmu.irqs');
    smmu = {
      reg: range(s.reg, 'smmu.reg'),
      irqs: {
        eventq: int(irqs.eventq, 'smmu.irqs.eventq', 32, 1019),
        priq: int(irqs.priq, 'smmu.irqs.priq', 32, 1019),
        cmdqSync: int(irqs.cmdqSync, 'smmu.irqs.cmdqSync', 32, 1019),
        gerror: int(irqs.gerror, 'smmu.irqs.gerror', 32, 1019),
      },
    };
  }
  const p = obj(d.pcie, 'pcie');
  if (p.compatible !== 'pci-host-ecam-generic') fail('pcie is not pci-host-ecam-generic');
  const br = p.busRange;
  if (!Array.isArray(br) || br.length !== 2) fail('pcie.busRange is not a pair');
  const busRange: [number, number] = [
    int(br[0], 'pcie.busRange[0]', 0, 255),
    int(br[1], 'pcie.busRange[1]', 0, 255),
  ];
  if (busRange[0] > busRange[1]) fail('pcie.busRange is reversed');
  const ecam = range(p.ecam, 'pcie.ecam');
  if (ecam.size < (busRange[1] - busRange[0] + 1) * 0x10_0000)
    fail('pcie.ecam is smaller than busRange needs');
  const iommu = p.iommu;
  if (iommu !== 'smmu' && iommu !== null) fail('pcie.iommu must be "smmu" or null');
  if (iommu === 'smmu' && smmu === undefined) fail('pcie.iommu names an smmu the tree does not have');
  return {
    cpus,
    memory,
    reserved,
    gicDist,
    msi,
    smmu,
    pcie: { ecam, busRange, mmio: range(p.mmio, 'pcie.mmio'), iommu },
  };
}

/** Reads and validates the blob at `addr` of guest memory. */
export function readDt(mem: MemoryPort, addr: number): DtResult {
  const magic = mem.read32(addr);
  if (magic !== VSVA_DT_MAGIC) {
    return { ok: false, reason: `bad magic 0x${(magic >>> 0).toString(16)} at 0x${addr.toString(16)}` };
  }
  const len = mem.read32(addr + 4);
  if (len <= 0 || len > MAX_DT_BYTES) return { ok: false, reason: `bad blob length ${len}` };
  const bytes = mem.read(addr + 8, len);
  if (bytes === undefined) return { ok: false, reason: 'blob not readable' };
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { ok: false, reason: 'blob is not UTF-8 JSON' };
  }
  try {
    return { ok: true, dt: validate(doc) };
  } catch (e) {
    if (e instanceof DtError) return { ok: false, reason: e.message };
    throw e;
  }
}

/** RAM not covered by a reserved range, as disjoint ranges (page-aligned inwards). */
export function freeRam(dt: GuestDt): Range[] {
  let free: Range[] = dt.memory.map((r) => ({ ...r }));
  for (const res of dt.reserved) {
    const next: Range[] = [];
    for (const r of free) {
      const rEnd = r.base + r.size;
      const xEnd = res.base + res.size;
      if (xEnd <= r.base || res.base >= rEnd) {
        next.push(r);
        continue;
      }
      if (res.base > r.base) next.push({ base: r.base, size: res.base - r.base });
      if (xEnd < rEnd) next.push({ base: xEnd, size: rEnd - xEnd });
    }
    free = next;
  }
  const page = 0x1000;
  return free
    .map((r) => {
      const b = Math.ceil(r.base / page) * page;
      const e = Math.floor((r.base + r.size) / page) * page;
      return { base: b, size: e - b };
    })
    .filter((r) => r.size > 0);
}

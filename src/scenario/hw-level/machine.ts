/**
 * The machine of a hardware-level scenario: host RAM (only the declared regions; every other
 * address is an external abort), one SMMUv3, an allocator for the structures software builds, named
 * guest-physical windows, page tables and CD tables. It plays the part of the software in a QEMU
 * qtest: it reaches the SMMU only through its registers (MMIO) and memory, and finds the stream
 * table and the queues by reading STRTAB_BASE, CMDQ_BASE and EVENTQ_BASE back (IHI 0070 §6.3.24-
 * §6.3.31), so it works the same after a scenario reprograms them with `bringUp: none`.
 *
 * Bring-up reuses `SmmuRig` (src/hw/smmuv3/rig.ts); `bringUp: none` builds the bare SMMU. Nothing
 * here throws on scenario input: helpers return a string describing what they could not do.
 */

import { fromBigInt } from '../../arch/bits.ts';
import { getField } from '../../arch/fields.ts';
import {
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_PROD,
  SMMU_EVENTQ_BASE,
  SMMU_EVENTQ_CONS,
  SMMU_EVENTQ_PROD,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  STRTAB_FMT_2LVL,
} from '../../arch/smmuv3/registers.ts';
import { L1STD_L2PTR, L1STD_SPAN } from '../../arch/smmuv3/ste.ts';
import { levelShift, strideOf } from '../../arch/vmsa.ts';
import { type MemoryPort, PhysMem } from '../../hw/memory.ts';
import { OffsetMemory } from '../../hw/memory-view.ts';
import { PageAllocator } from '../../hw/page-alloc.ts';
import { decodeEvent, type SmmuEvent } from '../../hw/smmuv3/event-record.ts';
import { qIndex, qMask, qNext } from '../../hw/smmuv3/queue.ts';
import { CdTable, SmmuRig } from '../../hw/smmuv3/rig.ts';
import { Smmu } from '../../hw/smmuv3/smmu.ts';
import { encodeL1std } from '../../hw/smmuv3/structures.ts';
import { PageTable } from '../../hw/vmsa/pgtable.ts';
import type { AddrRef, HwSetup } from './schema.ts';

/** A guest-physical window onto host RAM. */
export interface GuestWindow {
  readonly ipa: number;
  readonly pa: number;
  readonly size: number;
  readonly view: OffsetMemory;
  readonly alloc: PageAllocator;
}

/** A named page table and the window it lives in (undefined: host PA). */
export interface NamedTable {
  readonly table: PageTable;
  readonly guest: GuestWindow | undefined;
}

export interface NamedCdTable {
  readonly table: CdTable;
  readonly guest: GuestWindow | undefined;
}

const ADDR_LIMIT = 2 ** 52;
const CD_FORMATS = { linear: 0, '2level-4k': 1, '2level-64k': 2 } as const;

/** The gaps between sorted regions, up to 2^52: what is not RAM. */
export function complement(
  regions: readonly { base: number; size: number }[],
): { base: number; size: number }[] {
  const sorted = [...regions].sort((a, b) => a.base - b.base);
  const out: { base: number; size: number }[] = [];
  let at = 0;
  for (const r of sorted) {
    if (r.base > at) out.push({ base: at, size: r.base - at });
    at = Math.max(at, r.base + r.size);
  }
  if (at < ADDR_LIMIT) out.push({ base: at, size: ADDR_LIMIT - at });
  return out;
}

/** Drops undefined keys (optional fields under exactOptionalPropertyTypes; expectations that name only some keys). */
export function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

export class HwMachine {
  readonly mem: PhysMem;
  readonly alloc: PageAllocator;
  readonly smmu: Smmu;
  readonly rig: SmmuRig | undefined;
  readonly guests = new Map<string, GuestWindow>();
  readonly tables = new Map<string, NamedTable>();
  readonly cdTables = new Map<string, NamedCdTable>();
  /** The CD table each StreamID's last `ste` step named. */
  readonly steCdTable = new Map<number, string>();

  /** Builds everything the setup describes; throws with a message the level reports. */
  constructor(s: HwSetup) {
    const region = s.allocator ?? s.memory[0]!;
    const features = defined(s.smmu.features);
    if (s.bringUp === 'none') {
      this.mem = new PhysMem({ name: 'host', ram: s.memory, lookupCacheEntries: 1 << 16 });
      this.alloc = new PageAllocator(this.mem, region.base, region.size);
      this.smmu = new Smmu(this.mem, { features });
      this.rig = undefined;
    } else {
      const b = s.bringUp;
      this.rig = new SmmuRig({
        features,
        ramBase: region.base,
        ramSize: region.size,
        sidLog2: b.sidLog2,
        ...(b.streamTable === '2level' ? { split: b.split } : {}),
        cmdqLog2: b.cmdqLog2,
        eventqLog2: b.eventqLog2,
        noEnable: !b.enable,
      });
      this.mem = this.rig.mem;
      this.alloc = this.rig.alloc;
      this.smmu = this.rig.smmu;
      // The rig's memory is RAM everywhere: make only the declared regions RAM.
      for (const gap of complement(s.memory)) this.mem.markAbsent(gap.base, gap.size);
    }
    for (const g of s.guestRam) {
      const view = new OffsetMemory(this.mem, g.ipa, g.pa, g.size);
      this.guests.set(g.name, {
        ipa: g.ipa,
        pa: g.pa,
        size: g.size,
        view,
        alloc: new PageAllocator(view, g.ipa, g.size),
      });
    }
    for (const t of s.tables) {
      const r = this.createTable(t.name, {
        stage: t.stage,
        granule: t.granule,
        ias: t.ias,
        oas: t.oas,
        in: t.in,
        nonGlobal: t.nonGlobal,
      });
      if (typeof r === 'string') throw new Error(r);
    }
    for (const c of s.cdTables) {
      const guest = c.in === undefined ? undefined : this.guests.get(c.in);
      const mem: MemoryPort = guest?.view ?? this.mem;
      const table = new CdTable(mem, guest?.alloc ?? this.alloc, CD_FORMATS[c.format], c.cdMax);
      this.cdTables.set(c.name, { table, guest });
    }
  }

  /** Creates a named page table; a string when it cannot. */
  createTable(
    name: string,
    t: {
      stage: 1 | 2;
      granule: 12 | 14 | 16;
      ias: number;
      oas: number;
      in?: string | undefined;
      nonGlobal: boolean;
    },
  ): NamedTable | string {
    const guest = t.in === undefined ? undefined : this.guests.get(t.in);
    const r = PageTable.create(guest?.alloc ?? this.alloc, {
      stage: t.stage,
      granule: t.granule,
      iasBits: t.ias,
      oasBits: t.oas,
      ...(t.stage === 1 ? { nonGlobal: t.nonGlobal } : {}),
    });
    if (!r.ok) return `page table ${name}: ${r.errno} ${r.detail}`;
    const named = { table: r.table, guest };
    this.tables.set(name, named);
    return named;
  }

  // ---------------------------------------------------------------- registers

  /** The address field of a 64-bit base register (bits [51:lowBits]) and its low bits. */
  private baseReg(offset: number, lowBits: number): { addr: number; low: number } {
    const [lo, hi] = this.smmu.read64(offset);
    const low = lo & (2 ** lowBits - 1);
    return { addr: (hi & 0xf_ffff) * 2 ** 32 + ((lo - low) >>> 0), low };
  }

  // ---------------------------------------------------------------- addresses

  /**
   * Resolves an address reference. `space: 'pa'` gives the host PA (for memory accesses);
   * `'native'` gives the address software writes in a descriptor — an IPA for guest-owned tables.
   */
  resolve(ref: AddrRef, space: 'pa' | 'native'): number | string {
    if (typeof ref === 'number') return ref;
    const off = ref.offset ?? 0;
    const at = (a: number | string, guest: GuestWindow | undefined): number | string => {
      if (typeof a === 'string') return a;
      const v = a + off;
      return space === 'pa' && guest !== undefined ? v - guest.ipa + guest.pa : v;
    };
    if (ref.table !== undefined) {
      const t = this.tables.get(ref.table);
      return t === undefined ? `no page table "${ref.table}"` : at(t.table.root, t.guest);
    }
    if (ref.cdTable !== undefined) {
      const c = this.cdTables.get(ref.cdTable);
      return c === undefined ? `no CD table "${ref.cdTable}"` : at(c.table.ptr, c.guest);
    }
    if (ref.cd !== undefined) {
      const c = this.cdTables.get(ref.cd);
      return c === undefined ? `no CD table "${ref.cd}"` : at(c.table.cdAddr(ref.ssid ?? 0), c.guest);
    }
    if (ref.l1cd !== undefined) {
      const c = this.cdTables.get(ref.l1cd);
      return c === undefined ? `no CD table "${ref.l1cd}"` : at(c.table.l1Addr(ref.index ?? 0), c.guest);
    }
    if (ref.pte !== undefined) {
      const t = this.tables.get(ref.pte);
      if (t === undefined) return `no page table "${ref.pte}"`;
      const d = this.descriptor(t, ref.iova ?? 0, ref.level);
      return typeof d === 'string' ? d : at(d.addr, t.guest);
    }
    if (ref.guest !== undefined) {
      const g = this.guests.get(ref.guest);
      return g === undefined ? `no guestRam "${ref.guest}"` : g.pa + off;
    }
    if (ref.ste !== undefined) return at(this.steAddr(ref.ste), undefined);
    if (ref.l1std !== undefined) return this.strtabBase() + 8 * ref.l1std + off;
    return 'empty address reference';
  }

  // ---------------------------------------------------------------- stream table

  private strtabBase(): number {
    return this.baseReg(SMMU_STRTAB_BASE, 6).addr;
  }

  /**
   * The PA of the STE of `sid`, read from STRTAB_BASE / STRTAB_BASE_CFG; for a 2-level table,
   * allocates and installs the L2 table (SPLIT + 1 span) the first time, as a driver does.
   */
  steAddr(sid: number): number | string {
    const cfg = this.smmu.read32(SMMU_STRTAB_BASE_CFG);
    const base = this.strtabBase();
    const log2 = cfg & 0x3f;
    if (sid >= 2 ** log2) return `StreamID ${sid} is beyond the stream table (LOG2SIZE ${log2})`;
    if (((cfg >>> 16) & 3) !== STRTAB_FMT_2LVL) return base + 64 * sid;
    const split = (cfg >>> 6) & 0x1f;
    const l1 = base + 8 * Math.floor(sid / 2 ** split);
    const d = this.mem.read(l1, 8);
    if (d === undefined) return `the L1STD at 0x${l1.toString(16)} is not in RAM`;
    const w = new Uint32Array(d.buffer, d.byteOffset, 2);
    let l2: number;
    if (getField(w, L1STD_SPAN) === 0) {
      const a = this.alloc.alloc(64 * 2 ** split);
      if (a === undefined) return 'out of memory for an L2 stream table';
      l2 = a;
      this.mem.write(l1, new Uint8Array(encodeL1std(split + 1, l2).buffer));
    } else l2 = getField(w, L1STD_L2PTR);
    return l2 + 64 * (sid % 2 ** split);
  }

  // ---------------------------------------------------------------- page-table descriptors

  /**
   * Walks a named table in software (as a driver reads its own tables) to the descriptor for
   * `iova`: at `level` when given, else the leaf or the first invalid entry.
   */
  descriptor(
    t: NamedTable,
    iova: number,
    level?: number,
  ): { addr: number; level: number; lo: number; hi: number } | string {
    const g = t.table.geometry;
    const mem = t.guest?.view ?? this.mem;
    let table = t.table.root;
    for (let lvl = g.startLevel; lvl <= 3; lvl++) {
      const bits = lvl === g.startLevel ? g.startBits : strideOf(g.granule);
      const idx = Math.floor(iova / 2 ** levelShift(g.granule, lvl)) % 2 ** bits;
      const addr = table + 8 * idx;
      const lo = mem.read32(addr);
      const hi = mem.read32(addr + 4);
      if (lo < 0 || hi < 0) return `descriptor at 0x${addr.toString(16)} cannot be read`;
      if (level === lvl) return { addr, level: lvl, lo, hi };
      const isTable = (lo & 3) === 3 && lvl < 3;
      if (!isTable) {
        if (level !== undefined) return `the walk for 0x${iova.toString(16)} stops at level ${lvl}`;
        return { addr, level: lvl, lo, hi };
      }
      table = (hi & 0xffff) * 2 ** 32 + ((lo & ~(2 ** g.granule - 1)) >>> 0);
    }
    return 'walk ran off level 3';
  }

  // ---------------------------------------------------------------- queues (through MMIO)

  /** Writes commands at CMDQ_PROD and moves PROD past them all at once; returns a problem or undefined. */
  submit(cmds: readonly Uint32Array[]): string | undefined {
    const s = this.smmu;
    const { addr: base, low } = this.baseReg(SMMU_CMDQ_BASE, 5);
    const log2 = Math.min(low, this.smmu.features.cmdqLog2Max);
    let prod = s.read32(SMMU_CMDQ_PROD);
    for (const c of cmds) {
      const at = base + 16 * qIndex(prod, log2);
      if (!this.mem.write(at, new Uint8Array(c.buffer, c.byteOffset, 16)))
        return `command queue slot 0x${at.toString(16)} is not in RAM`;
      prod = qNext(prod, log2);
    }
    s.write32(SMMU_CMDQ_PROD, prod);
    return undefined;
  }

  /** The command-queue slot address of index `p` (for recovery). */
  cmdqSlot(p: number): number {
    const { addr: base, low } = this.baseReg(SMMU_CMDQ_BASE, 5);
    const log2 = Math.min(low, this.smmu.features.cmdqLog2Max);
    return base + 16 * qIndex(p, log2);
  }

  /** Reads and consumes every event record between EVENTQ_CONS and EVENTQ_PROD. */
  drainEvents(): SmmuEvent[] {
    const s = this.smmu;
    const { addr: base, low } = this.baseReg(SMMU_EVENTQ_BASE, 5);
    const log2 = Math.min(low, this.smmu.features.eventqLog2Max);
    const prod = s.read32(SMMU_EVENTQ_PROD);
    let cons = s.read32(SMMU_EVENTQ_CONS);
    const m = qMask(log2);
    const out: SmmuEvent[] = [];
    for (let n = 0; n < 2 ** log2 && (cons & m) !== (prod & m); n++) {
      const b = this.mem.read(base + 32 * qIndex(cons, log2), 32);
      if (b === undefined) break;
      out.push(decodeEvent(new Uint32Array(b.buffer, b.byteOffset, 8)));
      cons = qNext(cons, log2);
    }
    s.write32(SMMU_EVENTQ_CONS, ((cons & m) | (prod & 0x8000_0000)) >>> 0);
    return out;
  }

  /** Writes a 64-bit register through MMIO as [lo, hi]. */
  write64(offset: number, v: bigint): void {
    const [lo, hi] = fromBigInt(v);
    this.smmu.write64(offset, lo, hi);
  }
}

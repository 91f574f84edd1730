/**
 * The IOASID allocator (seed-spec.md §6.4; drivers/iommu/ioasid.c as merged in Linux 5.5): one
 * system-wide space of I/O address space IDs — on PCIe, PASIDs — shared by every user of the
 * host. An ID is handed out as the lowest free value in the caller's inclusive range [min, max],
 * belongs to a set (an opaque token: VFIO passes the VM's mm), carries a private pointer, and is
 * looked up with an ownership check (-ENOENT for an unknown ID, -EACCES for another set's ID).
 * Per-set counts let VFIO enforce its per-VM PASID quota (§6.2), which the kernel of that era kept
 * in VFIO rather than here.
 *
 * A custom allocator — in a guest, the VT-d virtual-command interface that asks the host for
 * PASIDs — can replace the default one, but only while the default one holds no IDs (-EAGAIN
 * otherwise): the two would hand out overlapping values. Allocators sharing the same alloc/free
 * functions share one ID space; the first registered group is active, the next takes over when
 * it is unregistered, and the default returns when the last custom one goes.
 *
 * The default allocator keeps the space in typed arrays: a bitmap of u32 words plus a one-bit-per-
 * word "full" summary, so finding the lowest free ID skips 1024 IDs per summary word — a search
 * over the whole 20-bit space reads at most 1024 summary words and two bitmap words — and memory
 * stays at a few MiB however many IDs are live.
 */

import { EACCES, EAGAIN, EEXIST, ENOENT } from '../uapi/errno.ts';

// ---------------------------------------------------------------- constants

/**
 * `ioasid_t` is a u32 and `INVALID_IOASID` is `((ioasid_t)-1)` (include/linux/ioasid.h, v5.5):
 * the value `ioasidAlloc` returns when nothing could be allocated.
 */
export const INVALID_IOASID = 0xffff_ffff;

/**
 * PCIe PASIDs are 20 bits wide (PASID capability: Max PASID Width ≤ 20; seed-spec §6.4 and §7.1).
 * ioasid.c of the 5.x era names the size of that space PCI_PASID_MAX = 0x100000. SMMUv3
 * SSIDSIZE and VT-d limits may be smaller; the allocator's `maxBits` models that.
 */
export const PCI_PASID_BITS = 20;
export const PCI_PASID_MAX = 0x10_0000;

/** The default (and the largest modelled) width of the IOASID space. */
export const IOASID_DEFAULT_BITS = PCI_PASID_BITS;

// ---------------------------------------------------------------- public types

/**
 * Who owns an ID: any object, compared by identity. Linux casts the mm pointer of the VM's
 * process (§6.2); vsva callers pass their own token, e.g. `ioasidSet('vm0')`.
 */
export type IoasidSet = object;

/** A named set token, for readable traces. Two calls give two different sets. */
export function ioasidSet(name: string): IoasidSet {
  return Object.freeze({ name });
}

/** What `ioasidFind` gives: the private data, or -ENOENT / -EACCES. */
export type IoasidFindResult =
  | { readonly ok: true; readonly priv: unknown }
  | { readonly ok: false; readonly errno: number };

/**
 * A custom allocator (`struct ioasid_allocator_ops`): `alloc` returns an ID in [min, max] or
 * INVALID_IOASID; `free` gives one back. Linux passes a `pdata` pointer; here the functions close
 * over their own data. Two ops objects with the same `alloc` and `free` functions share one ID
 * space (Linux's `use_same_ops`).
 */
export interface IoasidAllocatorOps {
  alloc(min: number, max: number): number;
  free(id: number): void;
}

export interface IoasidAllocatorOptions {
  /** Width of the ID space, 1..20 (default 20: the PCIe PASID width). */
  readonly maxBits?: number;
}

/** One live ID, for reports and tests. */
export interface IoasidEntry {
  readonly id: number;
  readonly set: IoasidSet;
  readonly priv: unknown;
}

// ---------------------------------------------------------------- the bitmap

const FULL = 0xffff_ffff | 0;

/** Index of the lowest set bit of a non-zero int32. */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/**
 * A bitmap of `size` IDs with a summary bit per 32-ID word (set when the word is full), for
 * "lowest clear bit in [lo, hi]" searches that skip full stretches 1024 IDs at a time.
 */
export class IdBitmap {
  readonly size: number;
  private readonly words: Int32Array;
  private readonly full: Int32Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`IdBitmap: bad size ${size}`);
    this.size = size;
    this.words = new Int32Array(Math.ceil(size / 32));
    this.full = new Int32Array(Math.ceil(this.words.length / 32));
  }

  has(id: number): boolean {
    return (this.words[id >>> 5]! & (1 << (id & 31))) !== 0;
  }

  set(id: number): void {
    const w = id >>> 5;
    const v = this.words[w]! | (1 << (id & 31));
    this.words[w] = v;
    if (v === FULL) this.full[w >>> 5]! |= 1 << (w & 31);
  }

  clear(id: number): void {
    const w = id >>> 5;
    this.words[w]! &= ~(1 << (id & 31));
    this.full[w >>> 5]! &= ~(1 << (w & 31));
  }

  /** The lowest clear bit in [lo, hi] (0 ≤ lo ≤ hi < size), or -1. */
  findClear(lo: number, hi: number): number {
    let w = lo >>> 5;
    const lastW = hi >>> 5;
    let free = ~this.words[w]! & (FULL << (lo & 31));
    for (;;) {
      if (free !== 0) {
        const id = (w << 5) + ctz(free);
        return id <= hi ? id : -1;
      }
      w = this.nextNotFullWord(w + 1, lastW);
      if (w < 0) return -1;
      free = ~this.words[w]!;
    }
  }

  /** The first word index in [from, lastW] that has a clear bit, or -1. */
  private nextNotFullWord(from: number, lastW: number): number {
    if (from > lastW) return -1;
    let s = from >>> 5;
    let open = ~this.full[s]! & (FULL << (from & 31));
    for (;;) {
      if (open !== 0) {
        const w = (s << 5) + ctz(open);
        return w <= lastW ? w : -1;
      }
      s++;
      if (s << 5 > lastW) return -1;
      open = ~this.full[s]!;
    }
  }
}

// ---------------------------------------------------------------- ID stores (one per xarray)

/** Where an allocator records its live IDs (Linux: the allocator's xarray). */
interface IdStore {
  readonly size: number;
  owner(id: number): IoasidSet | undefined;
  priv(id: number): unknown;
  insert(id: number, set: IoasidSet, priv: unknown): void;
  remove(id: number): void;
  count(set: IoasidSet): number;
  ids(set: IoasidSet): number[];
  entries(): IoasidEntry[];
}

/**
 * The default allocator's store: the bitmap for searches, the owning set per ID as a small slot
 * number in an Int32Array, private data in a Map only for IDs that have some.
 */
class BitmapStore implements IdStore {
  readonly bitmap: IdBitmap;
  private readonly slotById: Int32Array;
  private readonly privById = new Map<number, unknown>();
  private readonly slotBySet = new Map<IoasidSet, number>();
  private readonly sets: (IoasidSet | undefined)[] = [undefined];
  private readonly counts: number[] = [0];
  private readonly freeSlots: number[] = [];
  private live = 0;

  constructor(capacity: number) {
    this.bitmap = new IdBitmap(capacity);
    this.slotById = new Int32Array(capacity);
  }

  get size(): number {
    return this.live;
  }

  private inside(id: number): boolean {
    return id >= 0 && id < this.bitmap.size;
  }

  owner(id: number): IoasidSet | undefined {
    return this.inside(id) ? this.sets[this.slotById[id]!] : undefined;
  }

  priv(id: number): unknown {
    return this.privById.get(id);
  }

  insert(id: number, set: IoasidSet, priv: unknown): void {
    const slot = this.slotFor(set);
    this.bitmap.set(id);
    this.slotById[id] = slot;
    if (priv !== undefined) this.privById.set(id, priv);
    this.counts[slot]!++;
    this.live++;
  }

  remove(id: number): void {
    const slot = this.slotById[id]!;
    this.bitmap.clear(id);
    this.slotById[id] = 0;
    this.privById.delete(id);
    this.live--;
    if (--this.counts[slot]! === 0) this.releaseSlot(slot);
  }

  count(set: IoasidSet): number {
    const slot = this.slotBySet.get(set);
    return slot === undefined ? 0 : this.counts[slot]!;
  }

  ids(set: IoasidSet): number[] {
    const slot = this.slotBySet.get(set);
    const out: number[] = [];
    if (slot === undefined) return out;
    for (let id = 0; id < this.slotById.length; id++) if (this.slotById[id] === slot) out.push(id);
    return out;
  }

  entries(): IoasidEntry[] {
    const out: IoasidEntry[] = [];
    for (let id = 0; id < this.slotById.length; id++) {
      const set = this.sets[this.slotById[id]!];
      if (set !== undefined) out.push({ id, set, priv: this.privById.get(id) });
    }
    return out;
  }

  private slotFor(set: IoasidSet): number {
    const known = this.slotBySet.get(set);
    if (known !== undefined) return known;
    const slot = this.freeSlots.pop() ?? this.sets.length;
    this.sets[slot] = set;
    this.counts[slot] = 0;
    this.slotBySet.set(set, slot);
    return slot;
  }

  private releaseSlot(slot: number): void {
    this.slotBySet.delete(this.sets[slot]!);
    this.sets[slot] = undefined;
    this.freeSlots.push(slot);
  }
}

/** A custom allocator group's store: IDs are whatever the allocator returned (any u32). */
class MapStore implements IdStore {
  private readonly byId = new Map<number, IoasidEntry>();
  private readonly counts = new Map<IoasidSet, number>();

  get size(): number {
    return this.byId.size;
  }

  owner(id: number): IoasidSet | undefined {
    return this.byId.get(id)?.set;
  }

  priv(id: number): unknown {
    return this.byId.get(id)?.priv;
  }

  insert(id: number, set: IoasidSet, priv: unknown): void {
    this.byId.set(id, { id, set, priv });
    this.counts.set(set, (this.counts.get(set) ?? 0) + 1);
  }

  remove(id: number): void {
    const e = this.byId.get(id)!;
    this.byId.delete(id);
    const n = this.counts.get(e.set)! - 1;
    if (n === 0) this.counts.delete(e.set);
    else this.counts.set(e.set, n);
  }

  count(set: IoasidSet): number {
    return this.counts.get(set) ?? 0;
  }

  ids(set: IoasidSet): number[] {
    return [...this.byId.values()]
      .filter((e) => e.set === set)
      .map((e) => e.id)
      .sort((a, b) => a - b);
  }

  entries(): IoasidEntry[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }
}

/** A group of registered custom allocators sharing alloc/free functions (Linux: `slist`). */
interface CustomGroup {
  readonly ops: IoasidAllocatorOps[];
  readonly store: MapStore;
}

function sameOps(a: IoasidAllocatorOps, b: IoasidAllocatorOps): boolean {
  return a.alloc === b.alloc && a.free === b.free;
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}

// ---------------------------------------------------------------- the allocator

export class IoasidAllocator {
  /** Width of the space in bits. */
  readonly maxBits: number;
  /** The largest ID of the space: 2^maxBits − 1. */
  readonly maxId: number;
  private readonly defaultStore: BitmapStore;
  /** Registered custom allocator groups in registration order; the first is active. */
  private readonly groups: CustomGroup[] = [];

  constructor(opts: IoasidAllocatorOptions = {}) {
    const bits = opts.maxBits ?? IOASID_DEFAULT_BITS;
    if (!Number.isInteger(bits) || bits < 1 || bits > PCI_PASID_BITS) {
      throw new Error(`IoasidAllocator: maxBits must be 1..${PCI_PASID_BITS} (got ${bits})`);
    }
    this.maxBits = bits;
    this.maxId = 2 ** bits - 1;
    this.defaultStore = new BitmapStore(2 ** bits);
  }

  private get store(): IdStore {
    return this.groups[0]?.store ?? this.defaultStore;
  }

  /** True while a custom allocator is active. */
  get customActive(): boolean {
    return this.groups.length > 0;
  }

  /** Number of live IDs (in the active allocator's space). */
  get allocated(): number {
    return this.store.size;
  }

  /**
   * ioasid_alloc(set, min, max, private): the lowest free ID in [min, max], owned by `set`, or
   * INVALID_IOASID.
   *
   * Decision (range): `min` and `max` are u32 values (anything else → INVALID_IOASID); `max` is
   * clamped to the space (2^maxBits − 1), and a range that is then empty (min > max) gives
   * INVALID_IOASID — as xa_alloc does for an empty limit. The same clamp applies before a custom
   * allocator is asked. ID 0 is allocatable when min = 0, as in Linux (callers that reserve it
   * pass min ≥ 1).
   */
  ioasidAlloc(set: IoasidSet, min: number, max: number, priv?: unknown): number {
    if (!isU32(min) || !isU32(max)) return INVALID_IOASID;
    const hi = Math.min(max, this.maxId);
    if (min > hi) return INVALID_IOASID;
    const group = this.groups[0];
    return group === undefined
      ? this.allocDefault(set, min, hi, priv)
      : this.allocCustom(group, set, min, hi, priv);
  }

  private allocDefault(set: IoasidSet, lo: number, hi: number, priv: unknown): number {
    const id = this.defaultStore.bitmap.findClear(lo, hi);
    if (id < 0) return INVALID_IOASID;
    this.defaultStore.insert(id, set, priv);
    return id;
  }

  /**
   * Decision (custom results): like Linux, the framework records whatever u32 the custom
   * allocator returns (it does not re-check [min, max]); a value that is not a u32 below
   * INVALID_IOASID counts as a failure. An ID the framework already holds is given back to the
   * allocator and the allocation fails (Linux's xa_alloc with limit [id, id]).
   */
  private allocCustom(group: CustomGroup, set: IoasidSet, lo: number, hi: number, priv: unknown): number {
    const ops = group.ops[0]!;
    const id = ops.alloc(lo, hi);
    if (!isU32(id) || id === INVALID_IOASID) return INVALID_IOASID;
    if (group.store.owner(id) !== undefined) {
      ops.free(id);
      return INVALID_IOASID;
    }
    group.store.insert(id, set, priv);
    return id;
  }

  /**
   * ioasid_find(set, id): the private data of a live ID. Unknown ID → -ENOENT; `set` given
   * (not null) and different from the owner → -EACCES; `set` null skips the ownership check.
   */
  ioasidFind(set: IoasidSet | null, id: number): IoasidFindResult {
    const owner = isU32(id) ? this.store.owner(id) : undefined;
    if (owner === undefined) return { ok: false, errno: -ENOENT };
    if (set !== null && set !== owner) return { ok: false, errno: -EACCES };
    return { ok: true, priv: this.store.priv(id) };
  }

  /**
   * ioasid_free(id), v5.5 semantics: no ownership check (callers check with ioasidFind first);
   * an unknown ID is ignored (Linux logs it) — reported here as `false`.
   */
  ioasidFree(id: number): boolean {
    const store = this.store;
    if (!isU32(id) || store.owner(id) === undefined) return false;
    const group = this.groups[0];
    if (group !== undefined) group.ops[0]!.free(id);
    store.remove(id);
    return true;
  }

  /** Number of live IDs owned by `set`. */
  count(set: IoasidSet): number {
    return this.store.count(set);
  }

  /** The live IDs owned by `set`, ascending. */
  ids(set: IoasidSet): number[] {
    return this.store.ids(set);
  }

  /** Every live ID with its owner and private data, ascending (for reports and tests). */
  entries(): IoasidEntry[] {
    return this.store.entries();
  }

  /**
   * ioasid_register_allocator(ops): 0, or
   * - -EAGAIN when no custom allocator is registered yet and the default one holds live IDs;
   * - -EEXIST when this very ops object is already registered. Decision: vsva checks every
   *   registered ops object; Linux compares only with the first of each group.
   * The first registered group becomes active; ops sharing a group's alloc/free functions join
   * that group (and its ID space); others queue behind it.
   */
  registerAllocator(ops: IoasidAllocatorOps): number {
    if (this.groups.length === 0) {
      if (this.defaultStore.size > 0) return -EAGAIN;
      this.groups.push({ ops: [ops], store: new MapStore() });
      return 0;
    }
    if (this.groups.some((g) => g.ops.includes(ops))) return -EEXIST;
    const shared = this.groups.find((g) => sameOps(g.ops[0]!, ops));
    if (shared !== undefined) shared.ops.push(ops);
    else this.groups.push({ ops: [ops], store: new MapStore() });
    return 0;
  }

  /**
   * ioasid_unregister_allocator(ops). Finds the first group with the same alloc/free functions
   * (as Linux does); if `ops` is the group's only member the group goes — the next group becomes
   * active, or the default allocator once none is left — and any IDs still live in it are
   * orphaned (Linux warns): the return value is their number. In a shared group only `ops` is
   * removed and the group's IDs stay. Unknown ops: no-op, 0.
   *
   * Decision: a shared group calls its first *remaining* ops; Linux keeps calling the first
   * registered one even after it was unregistered.
   */
  unregisterAllocator(ops: IoasidAllocatorOps): number {
    const i = this.groups.findIndex((g) => sameOps(g.ops[0]!, ops));
    if (i < 0) return 0;
    const group = this.groups[i]!;
    if (group.ops.length === 1) {
      this.groups.splice(i, 1);
      return group.store.size;
    }
    const j = group.ops.indexOf(ops);
    if (j >= 0) group.ops.splice(j, 1);
    return 0;
  }
}

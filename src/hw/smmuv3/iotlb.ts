/**
 * The SMMU's TLB: a set-associative cache of translations, in typed arrays so a hit allocates
 * nothing. Entries are tagged as the architecture tags them (IHI 0070 §3.17): StreamWorld, VMID,
 * ASID (unless global, nG = 0), the input page at the entry's size, the granule and the leaf level
 * (for TLBI range/TTL hints, §4.4.1.1), and the entry kind: stage 1 (VA→PA), nested (VA→PA through
 * both stages), or stage 2 only (IPA→PA).
 *
 * Lookups go through a small integer *context* (world + VMID + ASID, or VMID for IPA entries)
 * that the configuration cache resolves once per STE/CD, so the hit path does no Map lookup.
 * Invalidations scan the arrays and remove exactly what each command's scope requires (see
 * `InvalidationScope`), and nothing more: a stale entry is served until the right command, as on
 * hardware. Replacement within a set is FIFO, which keeps runs deterministic.
 */

/** Entry kinds. */
export const KIND_S1 = 0;
export const KIND_NESTED = 1;
export const KIND_S2 = 2;
export const KIND_NAMES: readonly string[] = ['S1', 'S1+S2', 'S2'];

/** Which entries an invalidation removes. -1 in vmid/asid means "any". */
export interface InvalidationScope {
  /** Bitmask of StreamWorlds (bit = WORLD_*). */
  readonly worlds: number;
  /** Bitmask of kinds (bit = KIND_*). */
  readonly kinds: number;
  readonly vmid: number;
  readonly asid: number;
  /** With asid >= 0: whether global (nG = 0) entries also match (by-VA commands) or not (by-ASID). */
  readonly globalMatchesAnyAsid: boolean;
  /** Input-address range [start, end) the entry must overlap; undefined = all addresses. */
  readonly start?: number;
  readonly end?: number;
  /** TTL hint: only entries whose leaf level is this (1..3); 0 = any level. */
  readonly ttl?: number;
  /** TG hint: only entries of this granule (log2); 0 = any granule. */
  readonly granule?: number;
}

export class IotlbStats {
  lookups = 0;
  misses = 0;
  inserts = 0;
  evictions = 0;
  invalidated = 0;

  /** lookups - misses (derived, so the hit path counts nothing but the lookup). */
  get hits(): number {
    return this.lookups - this.misses;
  }
}

interface ContextInfo {
  readonly world: number;
  readonly ipa: boolean;
  readonly vmid: number;
  readonly asid: number;
}

export class Iotlb {
  readonly entries: number;
  readonly ways: number;
  readonly sets: number;
  readonly stats = new IotlbStats();

  /** Output page base of each entry (PA). */
  readonly pa: Float64Array;
  /** Intermediate page base (IPA) of nested entries, for stage-2 permission faults served from the TLB. */
  readonly ipa: Float64Array;
  /** PERM bits granted. */
  readonly perms: Int32Array;
  /** log2 of the entry's size. */
  readonly shift: Uint8Array;

  private readonly setMask: number;
  private readonly tagCtx: Int32Array;
  private readonly tagPnLo: Int32Array;
  private readonly tagPnHi: Int32Array;
  private readonly world: Uint8Array;
  private readonly kind: Uint8Array;
  private readonly global: Uint8Array;
  private readonly level: Uint8Array;
  private readonly granule: Uint8Array;
  private readonly vmid: Int32Array;
  private readonly asid: Int32Array;
  private readonly victim: Uint16Array;

  private readonly ctxIds = new Map<number, number>();
  private readonly ctxInfo: ContextInfo[] = [];
  /** Per context: bit (shift - 12) set when an entry of that size may exist. */
  private sizeMask = new Int32Array(64);

  constructor(entries: number, ways: number) {
    this.entries = entries;
    this.ways = ways;
    this.sets = entries / ways;
    this.setMask = this.sets - 1;
    this.tagCtx = new Int32Array(entries).fill(-1);
    this.tagPnLo = new Int32Array(entries);
    this.tagPnHi = new Int32Array(entries);
    this.shift = new Uint8Array(entries);
    this.pa = new Float64Array(entries);
    this.ipa = new Float64Array(entries);
    this.perms = new Int32Array(entries);
    this.world = new Uint8Array(entries);
    this.kind = new Uint8Array(entries);
    this.global = new Uint8Array(entries);
    this.level = new Uint8Array(entries);
    this.granule = new Uint8Array(entries);
    this.vmid = new Int32Array(entries);
    this.asid = new Int32Array(entries);
    this.victim = new Uint16Array(this.sets);
  }

  /**
   * The context id for a translation regime: VA entries are tagged (world, VMID, ASID); IPA
   * (stage-2-only) entries by VMID alone. Ids are small integers, stable for the TLB's lifetime.
   */
  context(world: number, ipa: boolean, vmid: number, asid: number): number {
    const key = ((ipa ? 4 : world) * 0x1_0000 + vmid) * 0x1_0000 + (ipa ? 0 : asid);
    let id = this.ctxIds.get(key);
    if (id === undefined) {
      id = this.ctxInfo.length;
      this.ctxIds.set(key, id);
      this.ctxInfo.push({ world, ipa, vmid, asid: ipa ? 0 : asid });
      if (id >= this.sizeMask.length) {
        const grown = new Int32Array(this.sizeMask.length * 2);
        grown.set(this.sizeMask);
        this.sizeMask = grown;
      }
    }
    return id;
  }

  /** Entry index translating hi:lo in context `ctx`, or -1; counted in the statistics. */
  lookup(ctx: number, hi: number, lo: number): number {
    this.stats.lookups++;
    const e = this.probe(ctx, hi, lo);
    if (e < 0) this.stats.misses++;
    return e;
  }

  /** The same search without touching the statistics (callers count the outcome themselves). */
  probe(ctx: number, hi: number, lo: number): number {
    let mask = this.sizeMask[ctx]!;
    while (mask !== 0) {
      const low = mask & -mask;
      mask ^= low;
      const shift = 43 - Math.clz32(low);
      let pnLo: number;
      let pnHi: number;
      if (shift >= 32) {
        pnLo = (hi >>> (shift - 32)) | 0;
        pnHi = 0;
      } else {
        pnLo = (lo >>> shift) | (hi << (32 - shift));
        pnHi = hi >>> shift;
      }
      const base = this.setOf(ctx, shift, pnLo, pnHi) * this.ways;
      const end = base + this.ways;
      for (let e = base; e < end; e++) {
        // The page number discriminates most; the context usually matches.
        if (
          this.tagPnLo[e] === pnLo &&
          this.tagCtx[e] === ctx &&
          this.tagPnHi[e] === pnHi &&
          this.shift[e] === shift
        ) {
          return e;
        }
      }
    }
    return -1;
  }

  private setOf(ctx: number, shift: number, pnLo: number, pnHi: number): number {
    let h =
      Math.imul(pnLo ^ Math.imul(pnHi, 0x27d4eb2d), 0x9e3779b1) ^ Math.imul(ctx * 64 + shift, 0x85ebca6b);
    h ^= h >>> 15;
    return h & this.setMask;
  }

  /**
   * Inserts a translation of the 2^shift-byte page containing hi:lo. `pa` / `ipa` are the page
   * bases. An entry with the same tag is replaced; otherwise an invalid way, otherwise the set's
   * FIFO victim.
   */
  insert(
    ctx: number,
    hi: number,
    lo: number,
    shift: number,
    pa: number,
    ipa: number,
    perms: number,
    kind: number,
    global: boolean,
    level: number,
    granule: number,
  ): void {
    let pnLo: number;
    let pnHi: number;
    if (shift >= 32) {
      pnLo = hi >>> (shift - 32);
      pnHi = 0;
    } else {
      pnLo = (lo >>> shift) | (hi << (32 - shift));
      pnHi = hi >>> shift;
    }
    pnLo |= 0;
    pnHi |= 0;
    const set = this.setOf(ctx, shift, pnLo, pnHi);
    const base = set * this.ways;
    let slot = -1;
    for (let e = base; e < base + this.ways && slot < 0; e++) {
      if (
        this.tagCtx[e] === ctx &&
        this.shift[e] === shift &&
        this.tagPnLo[e] === pnLo &&
        this.tagPnHi[e] === pnHi
      )
        slot = e;
    }
    for (let e = base; e < base + this.ways && slot < 0; e++) if (this.tagCtx[e] === -1) slot = e;
    if (slot < 0) {
      slot = base + this.victim[set]!;
      this.victim[set] = (this.victim[set]! + 1) % this.ways;
      this.stats.evictions++;
    }
    const info = this.ctxInfo[ctx]!;
    this.tagCtx[slot] = ctx;
    this.tagPnLo[slot] = pnLo;
    this.tagPnHi[slot] = pnHi;
    this.shift[slot] = shift;
    this.pa[slot] = pa;
    this.ipa[slot] = ipa;
    this.perms[slot] = perms;
    this.world[slot] = info.world;
    this.kind[slot] = kind;
    this.global[slot] = global ? 1 : 0;
    this.level[slot] = level;
    this.granule[slot] = granule;
    this.vmid[slot] = info.vmid;
    this.asid[slot] = info.asid;
    this.sizeMask[ctx]! |= 1 << (shift - 12);
    this.stats.inserts++;
  }

  /** Removes every entry in `scope`; returns how many. */
  invalidate(scope: InvalidationScope): number {
    let n = 0;
    for (let e = 0; e < this.entries; e++) {
      if (this.tagCtx[e] === -1 || !this.inScope(e, scope)) continue;
      this.tagCtx[e] = -1;
      n++;
    }
    this.stats.invalidated += n;
    if (this.countValid() === 0) this.sizeMask.fill(0);
    return n;
  }

  private inScope(e: number, s: InvalidationScope): boolean {
    if (((s.worlds >>> this.world[e]!) & 1) === 0) return false;
    if (((s.kinds >>> this.kind[e]!) & 1) === 0) return false;
    if (s.vmid >= 0 && this.vmid[e] !== s.vmid) return false;
    if (s.asid >= 0) {
      const global = this.global[e] === 1;
      if (global ? !s.globalMatchesAnyAsid : this.asid[e] !== s.asid) return false;
    }
    if (s.ttl !== undefined && s.ttl !== 0 && this.level[e] !== s.ttl) return false;
    if (s.granule !== undefined && s.granule !== 0 && this.granule[e] !== s.granule) return false;
    if (s.start !== undefined && s.end !== undefined) {
      const shift = this.shift[e]!;
      const pn = (this.tagPnHi[e]! >>> 0) * 0x1_0000_0000 + (this.tagPnLo[e]! >>> 0);
      const base = pn * 2 ** shift;
      if (base >= s.end || base + 2 ** shift <= s.start) return false;
    }
    return true;
  }

  /** Removes everything. */
  clear(): number {
    const n = this.countValid();
    this.tagCtx.fill(-1);
    this.sizeMask.fill(0);
    this.stats.invalidated += n;
    return n;
  }

  countValid(): number {
    let n = 0;
    for (let e = 0; e < this.entries; e++) if (this.tagCtx[e] !== -1) n++;
    return n;
  }

  /** A readable dump of valid entries, for reports, `inspect` and tests. */
  dump(): IotlbEntryView[] {
    const out: IotlbEntryView[] = [];
    for (let e = 0; e < this.entries; e++) {
      if (this.tagCtx[e] === -1) continue;
      const shift = this.shift[e]!;
      const pn = (this.tagPnHi[e]! >>> 0) * 0x1_0000_0000 + (this.tagPnLo[e]! >>> 0);
      out.push({
        index: e,
        world: this.world[e]!,
        kind: this.kind[e]!,
        vmid: this.vmid[e]!,
        asid: this.global[e] ? -1 : this.asid[e]!,
        input: pn * 2 ** shift,
        shift,
        pa: this.pa[e]!,
        ipa: this.ipa[e]!,
        perms: this.perms[e]!,
        level: this.level[e]!,
        granule: this.granule[e]!,
      });
    }
    return out;
  }
}

export interface IotlbEntryView {
  readonly index: number;
  readonly world: number;
  readonly kind: number;
  readonly vmid: number;
  /** -1 for a global entry. */
  readonly asid: number;
  readonly input: number;
  readonly shift: number;
  readonly pa: number;
  readonly ipa: number;
  readonly perms: number;
  readonly level: number;
  readonly granule: number;
}

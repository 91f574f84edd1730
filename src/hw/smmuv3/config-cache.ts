/**
 * The SMMU's configuration caches (IHI 0070 §3.21, §4.3): STEs keyed by StreamID, L1 stream table
 * descriptors keyed by L1 index, CDs and L1 CD descriptors keyed by (StreamID, index) — a CD is
 * cached *through* the StreamID that reached it, so CFGI_STE also drops it. Each structure type is
 * cached separately, as the spec requires software to assume; each CFGI command removes exactly its
 * scope. Successfully fetched structures are cached in any state, invalid ones included (§5.2.1,
 * §5.4.1); a failed fetch is never cached. Capacities are configurable; eviction is LRU.
 */

import type { StageRegime } from '../vmsa/regime.ts';
import type { S1Context } from '../vmsa/walker.ts';
import type { CdConfig, Decoded, SteConfig } from './config.ts';

/** A least-recently-used map with a fixed capacity. */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();
  readonly capacity: number;
  evictions = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Like get, without refreshing recency (inspection). */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
      this.evictions++;
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  /** Deletes every key matching `pred`; returns how many. */
  deleteWhere(pred: (key: K, value: V) => boolean): number {
    let n = 0;
    for (const [k, v] of [...this.map]) {
      if (pred(k, v)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  clear(): number {
    const n = this.map.size;
    this.map.clear();
    return n;
  }

  get size(): number {
    return this.map.size;
  }

  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}

/** How a (StreamID, SubstreamID) pair translates, resolved once from cached STE/CD. */
export const PATH_ABORT = 0;
export const PATH_BYPASS = 1;
export const PATH_TRANSLATE = 2;

export interface XlatePath {
  readonly kind: number;
  /** Stage 1 (null = bypassed) and stage 2 (null = bypassed). */
  readonly s1: S1Context | null;
  readonly s2: StageRegime | null;
  /** IOTLB context and entry kind; -1 when the path never uses the TLB. */
  readonly tlbCtx: number;
  readonly tlbKind: number;
  readonly ste: SteConfig;
  readonly cd: CdConfig | null;
  /**
   * PERM bits (stage 1 | stage 2) an access needs, indexed by access * 2 + (privileged ? 1 : 0)
   * of the *incoming* transaction: STE.PRIVCFG / INSTCFG overrides are already applied.
   */
  readonly needs: Int32Array;
  /** Inputs at or above this are refused before any lookup (IAS when stage 1 is bypassed). */
  readonly inputLimit: number;
}

/** A cached STE: the decode result, where it came from, and the paths that need no CD. */
export interface SteEntry {
  readonly sid: number;
  readonly addr: number;
  readonly decoded: Decoded<SteConfig>;
  /** Abort, bypass or stage-2-only streams: the one path. */
  readonly direct: XlatePath | null;
  /** Stage-1 streams with S1DSS = bypass: the path of traffic without a SubstreamID. */
  readonly s1Bypass: XlatePath | null;
}

/** A cached CD: the decode result plus the path it resolves to. */
export interface CdEntry {
  readonly sid: number;
  readonly index: number;
  readonly addr: number;
  readonly decoded: Decoded<CdConfig>;
  readonly path: XlatePath | null;
}

/** A cached 64-bit L1 descriptor (L1STD or L1CD) as two words. */
export interface L1Entry {
  readonly lo: number;
  readonly hi: number;
}

/** Key of a per-stream item (CD index or L1CD index): sid * 2^20 + index, exact below 2^52. */
export function streamKey(sid: number, index: number): number {
  return sid * 0x10_0000 + index;
}

export function keySid(key: number): number {
  return Math.floor(key / 0x10_0000);
}

export class ConfigCache {
  readonly ste: LruMap<number, SteEntry>;
  readonly l1std: LruMap<number, L1Entry>;
  readonly cd: LruMap<number, CdEntry>;
  readonly l1cd: LruMap<number, L1Entry>;
  /** Bumped on every invalidation, so holders of a "last used" shortcut know to drop it. */
  generation = 0;

  constructor(steEntries: number, cdEntries: number) {
    this.ste = new LruMap(steEntries);
    this.l1std = new LruMap(Math.max(1, steEntries));
    this.cd = new LruMap(cdEntries);
    this.l1cd = new LruMap(Math.max(1, cdEntries));
  }

  /** CFGI_STE: the STE of `sid`, every CD/L1CD cached through it, and (Leaf = 0) its L1STD. */
  invalidateSte(sid: number, l1Index: number | undefined): number {
    this.generation++;
    let n = this.ste.delete(sid) ? 1 : 0;
    if (l1Index !== undefined && this.l1std.delete(l1Index)) n++;
    n += this.invalidateCdAll(sid);
    return n;
  }

  /** CFGI_STE_RANGE: STEs of [first, last], all L1STDs covering them, and their CDs/L1CDs. */
  invalidateSteRange(first: number, last: number, l1Of: (sid: number) => number | undefined): number {
    this.generation++;
    const firstL1 = l1Of(first);
    const lastL1 = l1Of(last);
    let n = this.ste.deleteWhere((sid) => sid >= first && sid <= last);
    if (firstL1 !== undefined && lastL1 !== undefined)
      n += this.l1std.deleteWhere((i) => i >= firstL1 && i <= lastL1);
    const inRange = (key: number): boolean => keySid(key) >= first && keySid(key) <= last;
    n += this.cd.deleteWhere(inRange) + this.l1cd.deleteWhere(inRange);
    return n;
  }

  /** CFGI_CD: the CD at `index` through `sid`, and (Leaf = 0) the L1CD locating it. */
  invalidateCd(sid: number, index: number, l1Index: number | 'all' | undefined): number {
    this.generation++;
    let n = this.cd.delete(streamKey(sid, index)) ? 1 : 0;
    if (l1Index === 'all') n += this.l1cd.deleteWhere((key) => keySid(key) === sid);
    else if (l1Index !== undefined && this.l1cd.delete(streamKey(sid, l1Index))) n++;
    return n;
  }

  /** CFGI_CD_ALL: every CD and L1CD cached through `sid`. */
  invalidateCdAll(sid: number): number {
    this.generation++;
    const ofSid = (key: number): boolean => keySid(key) === sid;
    return this.cd.deleteWhere(ofSid) + this.l1cd.deleteWhere(ofSid);
  }

  /** CFGI_ALL. */
  clear(): number {
    this.generation++;
    return this.ste.clear() + this.l1std.clear() + this.cd.clear() + this.l1cd.clear();
  }
}

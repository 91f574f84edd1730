/**
 * What the virtual SMMUv3 sends the host for a guest's configuration and invalidation commands,
 * and what it writes into the guest's event queue for a fault the host reports: pure translators
 * between the SMMUv3 structures the guest programs (IHI 0070 chapters 4, 5 and 7) and the nesting
 * uAPI of seed-spec §1 (`struct iommu_pasid_table_config` §1.1, `struct iommu_cache_invalidate_info`
 * and `struct iommu_fault` §1.4).
 *
 * - Guest STE → `iommu_pasid_table_config`: stage-1 translate → TRANSLATE with the guest's
 *   S1ContextPtr / S1CDMax / S1Fmt / S1DSS; bypass → BYPASS; abort → ABORT (§1.3).
 * - Guest CFGI_CD / CFGI_CD_ALL / TLBI_NH_* → `iommu_cache_invalidate_info` records, in the forms
 *   the host driver accepts (src/host/smmuv3/nested.ts: PASID cache by PASID or DOMAIN; IOTLB by
 *   ASID with ARCHID, by address with ARCHID, by address without ARCHID = global, DOMAIN).
 * - Host `iommu_fault` (unrecoverable) → the event the guest's stage-1-only SMMU would have raised
 *   (the reverse of the host's event → fault table, src/host/smmuv3/faults.ts).
 */

import { getField } from '../../arch/fields.ts';
import {
  CMD_0_ASID,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_1_LEAF,
  CMD_1_TG,
  CMD_1_TTL,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_NSNH_ALL,
} from '../../arch/smmuv3/commands.ts';
import {
  C_BAD_CD,
  C_BAD_SUBSTREAMID,
  EVT_CLASS_IN,
  EVT_CLASS_TT,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import type { Granule } from '../../arch/vmsa.ts';
import type { SteConfig } from '../../hw/smmuv3/config.ts';
import type { EventInit } from '../../hw/smmuv3/event-record.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_ACCESS,
  IOMMU_FAULT_REASON_BAD_PASID_ENTRY,
  IOMMU_FAULT_REASON_NAMES,
  IOMMU_FAULT_REASON_OOR_ADDRESS,
  IOMMU_FAULT_REASON_PASID_FETCH,
  IOMMU_FAULT_REASON_PASID_INVALID,
  IOMMU_FAULT_REASON_PERMISSION,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_REASON_WALK_EABT,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  type IommuCacheInvalidateInfoInput,
  type IommuFaultRecord,
  type IommuPasidTableConfigInput,
  iommu_cache_invalidate_info,
  iommu_pasid_table_config,
  PASID_TABLE_CFG_VERSION_1,
  PASID_TABLE_SMMUV3_CFG_VERSION_1,
} from '../../uapi/iommu.ts';

// ---------------------------------------------------------------- STE → SET_PASID_TABLE

/** What the host is (or should be) told about one stream: the `config` of SET_PASID_TABLE. */
export type HostStreamConfig =
  | { readonly kind: 'abort' }
  | { readonly kind: 'bypass' }
  | {
      readonly kind: 'translate';
      /** Guest STE.S1ContextPtr (an IPA), S1CDMax, S1Fmt, S1DSS. */
      readonly basePtr: number;
      readonly pasidBits: number;
      readonly s1fmt: number;
      readonly s1dss: number;
    };

export const HOST_ABORT: HostStreamConfig = { kind: 'abort' };
export const HOST_BYPASS: HostStreamConfig = { kind: 'bypass' };

/** The host configuration a decoded guest STE asks for (the guest SMMU has stage 1 only). */
export function steHostConfig(ste: SteConfig): HostStreamConfig {
  if (ste.abort) return HOST_ABORT;
  if (!ste.s1) return HOST_BYPASS;
  return {
    kind: 'translate',
    basePtr: ste.s1ContextPtr,
    pasidBits: ste.s1CdMax,
    s1fmt: ste.s1Fmt,
    s1dss: ste.s1Dss,
  };
}

export function sameHostConfig(a: HostStreamConfig, b: HostStreamConfig): boolean {
  if (a.kind !== 'translate' || b.kind !== 'translate') return a.kind === b.kind;
  return a.basePtr === b.basePtr && a.pasidBits === b.pasidBits && a.s1fmt === b.s1fmt && a.s1dss === b.s1dss;
}

const CONFIG_CODE = {
  abort: IOMMU_PASID_CONFIG_ABORT,
  bypass: IOMMU_PASID_CONFIG_BYPASS,
  translate: IOMMU_PASID_CONFIG_TRANSLATE,
} as const;

/**
 * The `struct iommu_pasid_table_config` for a stream configuration: version 1, format SMMUV3,
 * vendor_data.smmuv3 version 1. BYPASS and ABORT carry no table (base_ptr, pasid_bits, s1fmt and
 * s1dss are 0).
 */
export function pasidTableConfig(c: HostStreamConfig): IommuPasidTableConfigInput {
  const t = c.kind === 'translate' ? c : undefined;
  return {
    argsz: iommu_pasid_table_config.size,
    version: PASID_TABLE_CFG_VERSION_1,
    base_ptr: BigInt(t?.basePtr ?? 0),
    format: IOMMU_PASID_FORMAT_SMMUV3,
    pasid_bits: t?.pasidBits ?? 0,
    config: CONFIG_CODE[c.kind],
    vendor_data: {
      smmuv3: { version: PASID_TABLE_SMMUV3_CFG_VERSION_1, s1fmt: t?.s1fmt ?? 0, s1dss: t?.s1dss ?? 0 },
    },
  };
}

// ---------------------------------------------------------------- commands → CACHE_INVALIDATE

const INFO_HEADER = {
  argsz: iommu_cache_invalidate_info.size,
  version: IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
} as const;

/** CFGI_CD(sid, ssid): the host's PASID cache, PASID granularity, for that PASID. */
export function cfgiCdInvalidation(ssid: number): IommuCacheInvalidateInfoInput {
  return {
    ...INFO_HEADER,
    cache: IOMMU_CACHE_INV_TYPE_PASID,
    granularity: IOMMU_INV_GRANU_PASID,
    granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(ssid) } },
  };
}

/** CFGI_CD_ALL(sid) (and an unchanged STE's CFGI_STE): every CD of the stream — DOMAIN granularity. */
export function cfgiCdAllInvalidation(): IommuCacheInvalidateInfoInput {
  return { ...INFO_HEADER, cache: IOMMU_CACHE_INV_TYPE_PASID, granularity: IOMMU_INV_GRANU_DOMAIN };
}

/** TG field → granule (log2); 0 → none. */
function tgLog2(tg: number): number {
  return tg === 1 ? 12 : tg === 2 ? 14 : tg === 3 ? 16 : 0;
}

/** The leaf size (log2) a TTL hint names for a granule: level 3 = the granule, each level up × 2^(g-3). */
function ttlLeafLog2(g: number, ttl: number): number {
  return g + (3 - ttl) * (g - 3);
}

/** Bits [63:12] of a TLBI's address (as words, exact for TTB1 addresses beyond 2^53). */
function commandVa(w: ArrayLike<number>): bigint {
  return (BigInt(w[3]! >>> 0) << 32n) | BigInt((w[2]! & 0xffff_f000) >>> 0);
}

function addrInfo(
  archid: number | undefined,
  addr: bigint,
  granuleLog2: number,
  nbGranules: bigint,
  leaf: boolean,
): IommuCacheInvalidateInfoInput {
  let flags = leaf ? IOMMU_INV_ADDR_FLAGS_LEAF : 0;
  if (archid !== undefined) flags |= IOMMU_INV_ADDR_FLAGS_ARCHID;
  return {
    ...INFO_HEADER,
    cache: IOMMU_CACHE_INV_TYPE_IOTLB,
    granularity: IOMMU_INV_GRANU_ADDR,
    granu: {
      addr_info: {
        flags,
        archid: archid ?? 0,
        pasid: 0n,
        addr,
        granule_size: 1n << BigInt(granuleLog2),
        nb_granules: nbGranules,
      },
    },
  };
}

/**
 * The by-address records of a TLBI_NH_VA / TLBI_NH_VAA (`archid` undefined for VAA).
 *
 * Decisions (the host derives its TG and TTL hints from granule_size and LEAF, nested.ts):
 * - Range form (TG != 0): the range is (NUM+1)·2^SCALE pages of 2^TG. With a TTL hint and Leaf,
 *   granule_size is the leaf size the hint names and LEAF is kept, so the host issues the same
 *   level hint; without a TTL hint LEAF is dropped (granule_size = 2^TG and LEAF would make the
 *   host hint level 3, missing block entries the guest meant) — over-invalidating table entries,
 *   which is always permitted.
 * - Plain form (TG = 0): the command names no granule and covers whichever entry holds the VA.
 *   A single granule_size would let a host with range invalidation match only entries of that
 *   granule, so one record is sent per granule the vSMMU advertises (the VA aligned down, one
 *   granule, no LEAF). For VAA one record is enough: without ARCHID the host invalidates globally.
 */
export function tlbiAddrInvalidations(
  w: ArrayLike<number>,
  archid: number | undefined,
  granules: readonly Granule[],
): IommuCacheInvalidateInfoInput[] {
  const va = commandVa(w);
  const leaf = getField(w, CMD_1_LEAF) === 1;
  const g = tgLog2(getField(w, CMD_1_TG));
  if (g === 0) {
    const list = archid === undefined ? granules.slice(0, 1) : granules;
    return list.map((gr) => addrInfo(archid, va & ~((1n << BigInt(gr)) - 1n), gr, 1n, false));
  }
  // Reserved 16KB TTL = 1 behaves as no hint (as the hardware model's legality does).
  let ttl = getField(w, CMD_1_TTL);
  if (g === 14 && ttl === 1) ttl = 0;
  const bytes = BigInt(getField(w, CMD_0_NUM) + 1) << BigInt(getField(w, CMD_0_SCALE) + g);
  if (ttl !== 0 && leaf) {
    const leafLog2 = ttlLeafLog2(g, ttl);
    const size = 1n << BigInt(leafLog2);
    return [addrInfo(archid, va, leafLog2, (bytes + size - 1n) / size, true)];
  }
  return [addrInfo(archid, va, g, bytes >> BigInt(g), false)];
}

/**
 * The records a guest TLBI_NH_* command becomes (sent to every host context once):
 * TLBI_NH_ASID → IOTLB by PASID granularity with ARCHID = ASID; TLBI_NH_VA → IOTLB by address with
 * ARCHID; TLBI_NH_VAA → by address without ARCHID (the host's global fallback); TLBI_NH_ALL →
 * IOTLB DOMAIN. TLBI_NSNH_ALL (legal on any SMMU; drivers issue it at reset) → IOTLB DOMAIN too:
 * the guest has no stage 2, so "all non-secure non-hyp entries" are its stage-1 entries. Other
 * opcodes → none (TLBI_EL2_* and the stage-2 TLBIs are illegal without Hyp / stage 2).
 */
export function tlbiInvalidations(
  w: ArrayLike<number>,
  granules: readonly Granule[],
): IommuCacheInvalidateInfoInput[] {
  const asid = getField(w, CMD_0_ASID);
  switch (getField(w, CMD_0_OP)) {
    case CMD_TLBI_NH_ASID:
      return [
        {
          ...INFO_HEADER,
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_PASID,
          granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_ARCHID, archid: asid, pasid: 0n } },
        },
      ];
    case CMD_TLBI_NH_VA:
      return tlbiAddrInvalidations(w, asid, granules);
    case CMD_TLBI_NH_VAA:
      return tlbiAddrInvalidations(w, undefined, granules);
    case CMD_TLBI_NH_ALL:
    case CMD_TLBI_NSNH_ALL:
      return [{ ...INFO_HEADER, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }];
    default:
      return [];
  }
}

// ---------------------------------------------------------------- host faults → guest events

/** Where the guest's CD structures for one SubstreamID are (IPAs), to classify fetch faults. */
export interface CdLocation {
  /** The L1CD descriptor's address (2-level tables), else -1. */
  readonly l1Addr: number;
  /** The CD's address, else -1 (when the L1CD could not be read). */
  readonly cdAddr: number;
}

export type FaultTranslation =
  | { readonly ok: true; readonly event: EventInit }
  | { readonly ok: false; readonly reason: string };

const REASON_EVENT: ReadonlyMap<number, number> = new Map([
  [IOMMU_FAULT_REASON_PTE_FETCH, F_TRANSLATION],
  [IOMMU_FAULT_REASON_OOR_ADDRESS, F_ADDR_SIZE],
  [IOMMU_FAULT_REASON_ACCESS, F_ACCESS],
  [IOMMU_FAULT_REASON_PERMISSION, F_PERMISSION],
  [IOMMU_FAULT_REASON_PASID_INVALID, C_BAD_SUBSTREAMID],
  [IOMMU_FAULT_REASON_PASID_FETCH, F_CD_FETCH],
  [IOMMU_FAULT_REASON_BAD_PASID_ENTRY, C_BAD_CD],
  [IOMMU_FAULT_REASON_WALK_EABT, F_WALK_EABT],
]);

/** Whether `addr` is one of the guest's CD structures of that SubstreamID (the L1CD or the 64-byte CD). */
function isCdFetch(addr: number, loc: CdLocation | undefined): boolean {
  if (loc === undefined) return false;
  if (loc.l1Addr >= 0 && addr >= loc.l1Addr && addr < loc.l1Addr + 8) return true;
  return loc.cdAddr >= 0 && addr >= loc.cdAddr && addr < loc.cdAddr + 64;
}

/**
 * The guest event for one host fault record. `sid` is the guest StreamID ((bus << 8) | devfn);
 * `locateCd(ssid)` finds the guest's CD structures for a SubstreamID (-1 = no SubstreamID, i.e.
 * CD 0 as S1DSS/S1CDMax select it).
 *
 * Decisions:
 * - A stage-2 fault while the physical SMMU fetched a guest structure reaches the VMM as PTE_FETCH
 *   with FETCH_ADDR_VALID and fetch_addr = the structure's IPA (the host's mapping, faults.ts).
 *   To the guest — whose SMMU has no stage 2 — that is a fetch from an address with no memory
 *   behind it: F_CD_FETCH with FetchAddr = that IPA when the address is the guest's L1CD or CD of
 *   the SubstreamID, else F_WALK_EABT (a stage-1 descriptor fetch) with FetchAddr = the IPA, the
 *   input address and the access type, CLASS = TT.
 * - PASID_FETCH and WALK_EABT carry a host *physical* fetch address, meaningless to (and not to
 *   be shown to) the guest: F_CD_FETCH gets the guest CD's IPA when known (else 0), F_WALK_EABT
 *   gets FetchAddr 0.
 * - RnW is "not a write" (perm without WRITE), InD = EXEC, PnU = PRIV; stage-1 faults have S2 = 0
 *   and CLASS = IN, as the hardware model writes them.
 * - Page requests, UNKNOWN and unlisted reasons are not translated (the caller drops and counts them).
 */
export function faultToEvent(
  f: IommuFaultRecord,
  sid: number,
  locateCd: (ssid: number) => CdLocation | undefined,
): FaultTranslation {
  if (f.type !== IOMMU_FAULT_DMA_UNRECOV)
    return { ok: false, reason: `fault type ${f.type} is not an unrecoverable fault` };
  const e = f.u.event;
  let id = REASON_EVENT.get(e.reason);
  if (id === undefined) {
    return {
      ok: false,
      reason: `reason ${IOMMU_FAULT_REASON_NAMES[e.reason] ?? e.reason} has no guest event`,
    };
  }
  const ssid = (e.flags & IOMMU_FAULT_UNRECOV_PASID_VALID) !== 0 ? e.pasid : -1;
  const addr = (e.flags & IOMMU_FAULT_UNRECOV_ADDR_VALID) !== 0 ? e.addr : 0n;
  const fetchValid = (e.flags & IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID) !== 0;
  const fetchIpa = fetchValid && e.fetch_addr < 2n ** 53n ? Number(e.fetch_addr) : -1;
  const access = {
    rnw: (e.perm & IOMMU_FAULT_PERM_WRITE) === 0,
    ind: (e.perm & IOMMU_FAULT_PERM_EXEC) !== 0,
    pnu: (e.perm & IOMMU_FAULT_PERM_PRIV) !== 0,
    inputHi: Number((addr >> 32n) & 0xffff_ffffn),
    inputLo: Number(addr & 0xffff_ffffn),
  };
  const base = { streamId: sid, substreamId: ssid };
  if (id === F_TRANSLATION && fetchIpa >= 0) {
    id = isCdFetch(fetchIpa, locateCd(ssid)) ? F_CD_FETCH : F_WALK_EABT;
    if (id === F_CD_FETCH) return { ok: true, event: { ...base, id, fetchAddr: fetchIpa } };
    return { ok: true, event: { ...base, ...access, id, s2: false, cls: EVT_CLASS_TT, fetchAddr: fetchIpa } };
  }
  switch (id) {
    case F_CD_FETCH: {
      const loc = locateCd(ssid);
      return {
        ok: true,
        event: { ...base, id, fetchAddr: loc !== undefined && loc.cdAddr >= 0 ? loc.cdAddr : 0 },
      };
    }
    case C_BAD_CD:
    case C_BAD_SUBSTREAMID:
      return { ok: true, event: { ...base, id } };
    case F_WALK_EABT:
      return { ok: true, event: { ...base, ...access, id, s2: false, cls: EVT_CLASS_TT, fetchAddr: 0 } };
    default:
      return { ok: true, event: { ...base, ...access, id, s2: false, cls: EVT_CLASS_IN } };
  }
}

/**
 * The nested-stage callbacks of the SMMUv3 driver as pure planners (seed-spec §1.3, §1.4): each
 * checks its arguments in the spec's order and returns either the errno or what to change
 * (attach_pasid_table) / which commands to issue (cache_invalidate), so the driver applies a
 * decision only once it is known to succeed and a refusal changes nothing.
 *
 * Two modes (driver option `asPostedSingleCd`):
 * - as posted (v15): TRANSLATE with pasid_bits != 0 is refused, s1fmt/s1dss are ignored and the
 *   STE gets S1CDMax 0, S1Fmt 0, S1DSS = SSID0; cache type PASID is -ENOENT.
 * - full PASID support (vsva's default; the lead's decision): the guest's CD table is used as
 *   the guest configured it (S1CDMax = pasid_bits, S1Fmt, S1DSS), and cache type PASID
 *   invalidates the guest's CDs (CFGI_CD / CFGI_CD_ALL for every StreamID of the domain).
 */

import { S1DSS_SSID0, S1FMT_4K_L2, S1FMT_64K_L2, S1FMT_LINEAR } from '../../arch/smmuv3/ste.ts';
import { type Granule, mappingSizes } from '../../arch/vmsa.ts';
import { EINVAL, ENOENT } from '../../uapi/errno.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_CONFIG_ABORT,
  IOMMU_PASID_CONFIG_BYPASS,
  IOMMU_PASID_CONFIG_TRANSLATE,
  IOMMU_PASID_FORMAT_SMMUV3,
  type IommuCacheInvalidateInfo,
  type IommuPasidTableConfig,
  PASID_TABLE_CFG_VERSION_1,
  PASID_TABLE_SMMUV3_CFG_VERSION_1,
} from '../../uapi/iommu.ts';
import {
  cmdCfgiCd,
  cmdCfgiCdAll,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNsnhAll,
  planTlbiRange,
  ttlFor,
} from './commands.ts';
import type { ArmSmmuV3Domain, S1Cfg } from './domain.ts';
import { bitmapToSizes } from './features.ts';

/** What the planners need to know about the SMMU the domain is bound to. */
export interface NestedContext {
  readonly asPostedSingleCd: boolean;
  /** IDR1.SSIDSIZE, IDR0.CD2L, IDR3.RIL, the ASID width, the supported granules and OAS. */
  readonly ssidBits: number;
  readonly cd2l: boolean;
  readonly rangeInv: boolean;
  readonly asidBits: number;
  readonly granules: readonly Granule[];
  readonly oasBits: number;
  /** cache_invalidate DOMAIN granularity: TLBI_NSNH_ALL (spec) or TLBI_NH_ALL(VMID). */
  readonly domainInvalidation: 'nsnh-all' | 'nh-all';
}

export type PasidTablePlan =
  | { readonly ok: false; readonly errno: number }
  | { readonly ok: true; readonly s1: S1Cfg; readonly abort: boolean };

const fail = (errno: number): { ok: false; errno: number } => ({ ok: false, errno: -errno });

/** STE.S1ContextPtr bits [51:6] of the guest's base_ptr (the kernel does not validate it). */
export function basePtrBits(basePtr: bigint): number {
  return Number(basePtr & 0x000f_ffff_ffff_ffc0n);
}

/**
 * arm_smmu_attach_pasid_table, steps 1-4 of seed-spec §1.3 (step 5, the STE rewrite, is the
 * driver's). Full-PASID validation (Decision): pasid_bits > SSIDSIZE → -EINVAL; with
 * pasid_bits > 0, s1fmt must be 0..2 and s1dss 0..2 (0b11 is reserved in both), and a 2-level
 * s1fmt needs IDR0.CD2L; with pasid_bits = 0 the SMMU ignores both, so they are not checked and
 * the STE gets S1Fmt = S1DSS = 0.
 */
export function planAttachPasidTable(
  domain: ArmSmmuV3Domain,
  cfg: IommuPasidTableConfig,
  ctx: NestedContext,
): PasidTablePlan {
  if (cfg.format !== IOMMU_PASID_FORMAT_SMMUV3) return fail(EINVAL);
  const v = cfg.vendor_data.smmuv3;
  if (cfg.version !== PASID_TABLE_CFG_VERSION_1 || v.version !== PASID_TABLE_SMMUV3_CFG_VERSION_1) {
    return fail(EINVAL);
  }
  if (domain.smmu === undefined || domain.stage !== 'nested') return fail(EINVAL);
  const off = { set: false, cdtab: 0, cdMax: 0, fmt: 0, dss: 0 };
  switch (cfg.config) {
    case IOMMU_PASID_CONFIG_ABORT:
      return { ok: true, s1: off, abort: true };
    case IOMMU_PASID_CONFIG_BYPASS:
      return { ok: true, s1: off, abort: false };
    case IOMMU_PASID_CONFIG_TRANSLATE: {
      // No stage-1 → stage-1 transition: go through BYPASS, ABORT or detach first.
      if (domain.s1Cfg.set) return fail(EINVAL);
      const cdtab = basePtrBits(cfg.base_ptr);
      if (ctx.asPostedSingleCd) {
        if (cfg.pasid_bits !== 0) return fail(EINVAL);
        return {
          ok: true,
          s1: { set: true, cdtab, cdMax: 0, fmt: S1FMT_LINEAR, dss: S1DSS_SSID0 },
          abort: false,
        };
      }
      if (cfg.pasid_bits > ctx.ssidBits) return fail(EINVAL);
      if (cfg.pasid_bits === 0) {
        return { ok: true, s1: { set: true, cdtab, cdMax: 0, fmt: 0, dss: 0 }, abort: false };
      }
      if (v.s1fmt > S1FMT_64K_L2 || v.s1dss > S1DSS_SSID0) return fail(EINVAL);
      if ((v.s1fmt === S1FMT_4K_L2 || v.s1fmt === S1FMT_64K_L2) && !ctx.cd2l) return fail(EINVAL);
      return {
        ok: true,
        s1: { set: true, cdtab, cdMax: cfg.pasid_bits, fmt: v.s1fmt, dss: v.s1dss },
        abort: false,
      };
    }
    default:
      return fail(EINVAL);
  }
}

export type InvalidatePlan =
  | { readonly ok: false; readonly errno: number }
  | { readonly ok: true; readonly cmds: readonly Uint32Array[] };

const pow2 = (v: bigint): boolean => v > 0n && (v & (v - 1n)) === 0n;

function log2Big(v: bigint): number {
  return v.toString(2).length - 1;
}

/**
 * The translation granule of a guest's invalidation: the supported granule whose leaf sizes
 * include `granuleLog2` (4K: 4K/2M/1G; 16K: 16K/32M; 64K: 64K/512M — disjoint sets), else the
 * host's own. Decision: Linux takes the host domain's granule, which the SMMU may match against
 * differently-sized guest entries; the leaf size identifies the guest's granule exactly.
 */
function guestGranule(granuleLog2: number, ctx: NestedContext, host: Granule): Granule {
  for (const g of ctx.granules) if (mappingSizes(g, ctx.oasBits).includes(granuleLog2)) return g;
  return host;
}

/**
 * arm_smmu_cache_invalidate (seed-spec §1.4): checks in the spec's order, then the commands to
 * issue (without the final CMD_SYNC). `sids` are the StreamIDs of the domain's masters.
 *
 * Decisions beyond the spec:
 * - ARCHID wider than the SMMU's ASID (8 or 16 bits) → -EINVAL (the command would truncate it).
 * - ADDR granularity: the range is aligned to the granule; an empty range issues nothing; a range
 *   reaching beyond 2^53, or needing more than MAX_TLBI_OPS plain commands, becomes
 *   TLBI_NH_ASID of the ARCHID (permitted over-invalidation).
 * - Full-PASID mode, cache type PASID: granularity DOMAIN → CFGI_CD_ALL per StreamID; PASID →
 *   CFGI_CD(sid, pasid) with the PASID flag (Leaf = 0, so a guest's L1CD change is seen too), else
 *   CFGI_CD_ALL; ADDR → -EINVAL (no address granularity for configuration caches); a pasid
 *   beyond SSIDSIZE → -EINVAL. Config invalidations go before TLB invalidations. The IOTLB checks
 *   are the spec's in both modes (the PASID flag on an IOTLB invalidation is still -ENOENT).
 */
export function planCacheInvalidate(
  domain: ArmSmmuV3Domain,
  info: IommuCacheInvalidateInfo,
  sids: readonly number[],
  ctx: NestedContext,
): InvalidatePlan {
  if (domain.stage !== 'nested') return fail(EINVAL);
  if (domain.smmu === undefined) return fail(EINVAL);
  if (info.version !== IOMMU_CACHE_INVALIDATE_INFO_VERSION_1) return fail(EINVAL);
  const cache = info.cache;
  const pasidCache = (cache & IOMMU_CACHE_INV_TYPE_PASID) !== 0;
  const iotlb = (cache & IOMMU_CACHE_INV_TYPE_IOTLB) !== 0;
  if (ctx.asPostedSingleCd) {
    if (pasidCache || (cache & IOMMU_CACHE_INV_TYPE_DEV_IOTLB) !== 0) return fail(ENOENT);
    if (!iotlb) return fail(EINVAL);
  } else {
    if ((cache & IOMMU_CACHE_INV_TYPE_DEV_IOTLB) !== 0) return fail(ENOENT);
    if (!iotlb && !pasidCache) return fail(EINVAL);
  }
  const cmds: Uint32Array[] = [];
  if (pasidCache) {
    const r = planPasidCache(info, sids, ctx);
    if (!r.ok) return r;
    cmds.push(...r.cmds);
  }
  if (iotlb) {
    const r = planIotlb(domain, info, ctx);
    if (!r.ok) return r;
    cmds.push(...r.cmds);
  }
  return { ok: true, cmds };
}

function planPasidCache(
  info: IommuCacheInvalidateInfo,
  sids: readonly number[],
  ctx: NestedContext,
): InvalidatePlan {
  switch (info.granularity) {
    case IOMMU_INV_GRANU_DOMAIN:
      return { ok: true, cmds: sids.map((sid) => cmdCfgiCdAll(sid)) };
    case IOMMU_INV_GRANU_PASID: {
      const p = info.granu.pasid_info;
      if ((p.flags & IOMMU_INV_PASID_FLAGS_PASID) === 0) {
        return { ok: true, cmds: sids.map((sid) => cmdCfgiCdAll(sid)) };
      }
      if (p.pasid >= 2n ** BigInt(ctx.ssidBits)) return fail(EINVAL);
      const pasid = Number(p.pasid);
      return { ok: true, cmds: sids.map((sid) => cmdCfgiCd(sid, pasid, false)) };
    }
    default:
      return fail(EINVAL);
  }
}

function archidOk(archid: number, ctx: NestedContext): boolean {
  return archid < 2 ** ctx.asidBits;
}

function planIotlb(
  domain: ArmSmmuV3Domain,
  info: IommuCacheInvalidateInfo,
  ctx: NestedContext,
): InvalidatePlan {
  const vmid = domain.s2Cfg.vmid;
  const global = (): InvalidatePlan => ({
    ok: true,
    cmds: [ctx.domainInvalidation === 'nh-all' ? cmdTlbiNhAll(vmid) : cmdTlbiNsnhAll()],
  });
  switch (info.granularity) {
    case IOMMU_INV_GRANU_PASID: {
      const p = info.granu.pasid_info;
      if ((p.flags & IOMMU_INV_PASID_FLAGS_PASID) !== 0) return fail(ENOENT);
      if ((p.flags & IOMMU_INV_PASID_FLAGS_ARCHID) === 0) return fail(EINVAL);
      if (!archidOk(p.archid, ctx)) return fail(EINVAL);
      // (ATC invalidation of the domain would follow: vsva models no ATS.)
      return { ok: true, cmds: [cmdTlbiNhAsid(vmid, p.archid)] };
    }
    case IOMMU_INV_GRANU_ADDR: {
      const a = info.granu.addr_info;
      if ((a.flags & IOMMU_INV_ADDR_FLAGS_PASID) !== 0) return fail(ENOENT);
      if ((a.flags & IOMMU_INV_ADDR_FLAGS_ARCHID) === 0) return global();
      if (!pow2(a.granule_size)) return fail(EINVAL);
      if (!archidOk(a.archid, ctx)) return fail(EINVAL);
      return { ok: true, cmds: addrCommands(domain, a, ctx) };
    }
    case IOMMU_INV_GRANU_DOMAIN:
      return global();
    default:
      return fail(EINVAL);
  }
}

function addrCommands(
  domain: ArmSmmuV3Domain,
  a: IommuCacheInvalidateInfo['granu']['addr_info'],
  ctx: NestedContext,
): Uint32Array[] {
  const vmid = domain.s2Cfg.vmid;
  const leaf = (a.flags & IOMMU_INV_ADDR_FLAGS_LEAF) !== 0;
  const granuleLog2 = log2Big(a.granule_size);
  const bytes = a.nb_granules * a.granule_size;
  const whole = [cmdTlbiNhAsid(vmid, a.archid)];
  if (bytes === 0n) return [];
  if (a.addr + bytes > 2n ** 53n) return whole;
  const host = domain.granule ?? 12;
  const tg = guestGranule(granuleLog2, ctx, host);
  const pageSizes = bitmapToSizes(domain.pgsizeBitmap);
  // Without RIL a granule that is not a supported page size is replaced by the smallest one.
  const stepLog2 = pageSizes.includes(granuleLog2) ? granuleLog2 : (pageSizes[0] ?? host);
  const ops = planTlbiRange({
    start: Number(a.addr),
    size: Number(bytes),
    stepLog2,
    tg,
    ttl: leaf ? ttlFor(tg, granuleLog2) : 0,
    ril: ctx.rangeInv,
  });
  if (ops === 'all') return whole;
  return ops.map((o) => cmdTlbiNhVa(vmid, a.archid, leaf, o));
}

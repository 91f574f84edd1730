/**
 * Command decode, legality and execution for the SMMUv3 command queue (IHI 0070 chapter 4).
 * `executeCommand` checks a 16-byte command exactly as §4.1.3 / §7.1 require (reserved opcodes,
 * commands for features that are absent, invalid parameters, and — when the implementation chooses
 * to detect them — non-zero RES0 fields) and returns CERROR_ILL for an illegal one; otherwise it
 * applies the command's invalidation scope (§4.3, §4.4) through the `CommandTarget`.
 *
 * Scopes are the minimum the spec requires (notes in ../shared notes, §4.4.1 scope matrix):
 * TLBI_NH_* touch only NS-EL1 stage-1 and nested entries of one VMID; TLBI_S2_IPA touches only
 * stage-2-only entries (nested entries survive until a TLBI_NH_* or TLBI_S12_VMALL, as the spec
 * allows and as software must handle); no CFGI touches the TLB; no TLBI touches configuration.
 */

import { fieldWordMask, getField } from '../../arch/fields.ts';
import {
  CERROR_ILL,
  CERROR_NONE,
  CMD_0_ASID,
  CMD_0_CS,
  CMD_0_MSIDATA,
  CMD_0_NUM,
  CMD_0_OP,
  CMD_0_SCALE,
  CMD_0_SID,
  CMD_0_SSEC,
  CMD_0_SSID,
  CMD_0_VMID,
  CMD_1_LEAF,
  CMD_1_MSIADDR,
  CMD_1_RANGE,
  CMD_1_TG,
  CMD_1_TTL,
  CMD_ATC_INV,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_CFGI_VMS_PIDM,
  CMD_LAYOUTS,
  CMD_PREFETCH_ADDR,
  CMD_PREFETCH_CONFIG,
  CMD_PRI_RESP,
  CMD_RESUME,
  CMD_STALL_TERM,
  CMD_SYNC,
  CMD_SYNC_CS_IRQ,
  CMD_SYNC_CS_SEV,
  CMD_TLBI_EL2_ALL,
  CMD_TLBI_EL2_ASID,
  CMD_TLBI_EL2_VA,
  CMD_TLBI_EL2_VAA,
  CMD_TLBI_EL3_ALL,
  CMD_TLBI_EL3_VA,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_NSNH_ALL,
  CMD_TLBI_S2_IPA,
  CMD_TLBI_S12_VMALL,
  commandName,
} from '../../arch/smmuv3/commands.ts';
import { WORLD_EL2, WORLD_EL2_E2H, WORLD_NSEL1 } from './config.ts';
import type { SmmuFeatures } from './features.ts';
import { type InvalidationScope, KIND_NESTED, KIND_S1, KIND_S2 } from './iotlb.ts';

/** What executing a command needs from the SMMU. */
export interface CommandTarget {
  readonly features: SmmuFeatures;
  /** SMMU_CR2.E2H as last enabled. */
  readonly e2h: boolean;
  invalidateSte(sid: number, leaf: boolean): void;
  invalidateSteRange(first: number, last: number): void;
  invalidateCd(sid: number, ssid: number, leaf: boolean): void;
  invalidateCdAll(sid: number): void;
  invalidateAllConfig(): void;
  invalidateTlb(scope: InvalidationScope): void;
  /** CMD_SYNC completion signal: CS, and the MSI address/data when CS = SIG_IRQ. */
  syncComplete(cs: number, msiAddr: number, msiData: number): void;
}

export interface CommandOutcome {
  /** CERROR_* code: CERROR_NONE when the command was consumed. */
  readonly error: number;
  readonly name: string;
  /** Why a command was illegal, for traces. */
  readonly detail?: string;
}

const ok = (name: string): CommandOutcome => ({ error: CERROR_NONE, name });
const ill = (name: string, detail: string): CommandOutcome => ({ error: CERROR_ILL, name, detail });

const NS_EL1 = 1 << WORLD_NSEL1;
const VA_KINDS = (1 << KIND_S1) | (1 << KIND_NESTED);
const ALL_KINDS = VA_KINDS | (1 << KIND_S2);

/** RES0 masks per word for each command layout: bits no field of the layout covers. */
const RES0_MASKS: ReadonlyMap<number, readonly number[]> = new Map(
  Object.entries(CMD_LAYOUTS).map(([op, fields]) => {
    const used = [0, 0, 0, 0];
    for (const f of fields) {
      used[f.dword * 2] = (used[f.dword * 2]! | fieldWordMask(f, 0)) >>> 0;
      used[f.dword * 2 + 1] = (used[f.dword * 2 + 1]! | fieldWordMask(f, 1)) >>> 0;
    }
    return [Number(op), used.map((u) => ~u >>> 0)];
  }),
);

/** Commands whose layout has an SSec bit, which must be 0 on the Non-secure queue (§4.1.6). */
const HAS_SSEC = new Set([
  CMD_PREFETCH_CONFIG,
  CMD_PREFETCH_ADDR,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_RESUME,
  CMD_STALL_TERM,
]);

/** Commands that invalidate by address and carry the range / TTL fields. */
const RANGE_COMMANDS = new Set([
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_EL2_VA,
  CMD_TLBI_EL2_VAA,
  CMD_TLBI_S2_IPA,
]);

/** The reason a command is illegal because of the SMMU's feature set, or undefined. */
function featureIllegal(op: number, f: SmmuFeatures): string | undefined {
  switch (op) {
    case CMD_CFGI_CD:
    case CMD_CFGI_CD_ALL:
    case CMD_TLBI_NH_ALL:
    case CMD_TLBI_NH_ASID:
    case CMD_TLBI_NH_VA:
    case CMD_TLBI_NH_VAA:
      return f.stage1 ? undefined : 'stage 1 is not implemented';
    case CMD_TLBI_EL2_ALL:
    case CMD_TLBI_EL2_ASID:
    case CMD_TLBI_EL2_VA:
    case CMD_TLBI_EL2_VAA:
      return f.hyp ? undefined : 'IDR0.Hyp is 0';
    case CMD_TLBI_S12_VMALL:
    case CMD_TLBI_S2_IPA:
      return f.stage2 ? undefined : 'stage 2 is not implemented';
    case CMD_TLBI_EL3_ALL:
    case CMD_TLBI_EL3_VA:
      return 'EL3 invalidation is only legal on the Secure command queue';
    case CMD_ATC_INV:
    case CMD_PRI_RESP:
      return 'ATS/PRI are not implemented';
    case CMD_RESUME:
    case CMD_STALL_TERM:
      return 'STALL_MODEL is 0b01 (no stalls)';
    case CMD_CFGI_VMS_PIDM:
      return 'MPAM is not implemented';
    default:
      return undefined;
  }
}

/** Granule (log2) of a TLBI TG field: 1 → 4KB, 2 → 16KB, 3 → 64KB. */
function tgGranule(tg: number): number {
  return tg === 1 ? 12 : tg === 2 ? 14 : 16;
}

interface AddressRange {
  readonly start: number;
  readonly end: number;
  readonly ttl: number;
  readonly granule: number;
}

/**
 * The invalidation range of a by-address TLBI (§4.4.1.1), or an error text for a reserved
 * combination. Addresses are page-aligned, so they stay exact as numbers up to 2^64.
 */
function tlbiRange(w: Uint32Array, op: number, f: SmmuFeatures): AddressRange | string {
  const addr = w[3]! * 0x1_0000_0000 + ((w[2]! & 0xffff_f000) >>> 0);
  const tg = getField(w, CMD_1_TG);
  const num = getField(w, CMD_0_NUM);
  const scale = getField(w, CMD_0_SCALE);
  let ttl = getField(w, CMD_1_TTL);
  const rangeFieldsSet = tg !== 0 || num !== 0 || scale !== 0 || ttl !== 0;
  if (!f.rangeInvalidation) {
    if (rangeFieldsSet && f.reservedBits === 'illegal') return 'range fields are RES0 without IDR3.RIL';
    return { start: addr, end: addr + 1, ttl: 0, granule: 0 };
  }
  if (tg === 0) {
    if (rangeFieldsSet && f.reservedBits === 'illegal') return 'NUM/SCALE/TTL are RES0 when TG = 0';
    return { start: addr, end: addr + 1, ttl: 0, granule: 0 };
  }
  // 16KB with TTL = level 1 is reserved without LPA2 and treated as 0b00.
  if (tg === 2 && ttl === 1) ttl = 0;
  if (num === 0 && scale === 0 && ttl === 0)
    return `${commandName(op)}: TG != 0 with NUM = SCALE = TTL = 0 is reserved`;
  const granule = tgGranule(tg);
  const bytes = (num + 1) * 2 ** scale * 2 ** granule;
  return { start: addr, end: addr + bytes, ttl, granule };
}

/** Executes one command (4 words). */
export function executeCommand(t: CommandTarget, w: Uint32Array): CommandOutcome {
  const f = t.features;
  const op = getField(w, CMD_0_OP);
  const name = commandName(op);
  const layout = CMD_LAYOUTS[op];
  const knownOnNsQueue =
    layout !== undefined || op === CMD_TLBI_EL3_ALL || op === CMD_TLBI_EL3_VA || op === CMD_CFGI_VMS_PIDM;
  if (!knownOnNsQueue) return ill(name, 'reserved opcode');
  const absent = featureIllegal(op, f);
  if (absent !== undefined) return ill(name, absent);
  if (HAS_SSEC.has(op) && getField(w, CMD_0_SSEC) === 1) return ill(name, 'SSec = 1 on the Non-secure queue');
  if (op === CMD_SYNC && getField(w, CMD_0_CS) === 3) return ill(name, 'CS = 0b11 is reserved');
  let range: AddressRange | undefined;
  if (RANGE_COMMANDS.has(op)) {
    const r = tlbiRange(w, op, f);
    if (typeof r === 'string') return ill(name, r);
    range = r;
  }
  if (f.reservedBits === 'illegal') {
    const masks = RES0_MASKS.get(op);
    for (let i = 0; masks !== undefined && i < 4; i++) {
      if ((w[i]! & masks[i]!) >>> 0 !== 0) return ill(name, `RES0 bits set in word ${i}`);
    }
  }
  apply(t, op, w, range);
  return ok(name);
}

/** Whether an 8-bit implementation received a 16-bit ASID/VMID: the command then affects nothing (§4.4). */
function tooWide(v: number, is16: boolean): boolean {
  return !is16 && v > 0xff;
}

function apply(t: CommandTarget, op: number, w: Uint32Array, range: AddressRange | undefined): void {
  const f = t.features;
  const sid = getField(w, CMD_0_SID);
  const vmidField = getField(w, CMD_0_VMID);
  const asid = getField(w, CMD_0_ASID);
  // Without stage 2 the VMID parameter is not matched (§4.4.2).
  const vmid = f.stage2 ? vmidField : -1;
  if ((vmid >= 0 && tooWide(vmid, f.vmid16)) || tooWide(asid, f.asid16)) {
    if (op >= CMD_TLBI_NH_ALL && op <= CMD_TLBI_NSNH_ALL) return;
  }
  const sidInRange = sid < 2 ** f.sidBits;
  const va = (scope: Omit<InvalidationScope, 'start' | 'end' | 'ttl' | 'granule'>): InvalidationScope => ({
    ...scope,
    ...(range ? { start: range.start, end: range.end, ttl: range.ttl, granule: range.granule } : {}),
  });
  switch (op) {
    case CMD_CFGI_STE:
      if (sidInRange) t.invalidateSte(sid, getField(w, CMD_1_LEAF) === 1);
      return;
    case CMD_CFGI_STE_RANGE: {
      const r = getField(w, CMD_1_RANGE);
      if (r === 31) return t.invalidateAllConfig();
      const span = 2 ** (r + 1);
      const first = sid - (sid % span);
      t.invalidateSteRange(first, first + span - 1);
      return;
    }
    case CMD_CFGI_CD:
      if (sidInRange && getField(w, CMD_0_SSID) < 2 ** f.ssidBits) {
        t.invalidateCd(sid, getField(w, CMD_0_SSID), getField(w, CMD_1_LEAF) === 1);
      }
      return;
    case CMD_CFGI_CD_ALL:
      if (sidInRange) t.invalidateCdAll(sid);
      return;
    case CMD_TLBI_NH_ALL:
      return t.invalidateTlb({ worlds: NS_EL1, kinds: VA_KINDS, vmid, asid: -1, globalMatchesAnyAsid: true });
    case CMD_TLBI_NH_ASID:
      return t.invalidateTlb({ worlds: NS_EL1, kinds: VA_KINDS, vmid, asid, globalMatchesAnyAsid: false });
    case CMD_TLBI_NH_VA:
      return t.invalidateTlb(va({ worlds: NS_EL1, kinds: VA_KINDS, vmid, asid, globalMatchesAnyAsid: true }));
    case CMD_TLBI_NH_VAA:
      return t.invalidateTlb(
        va({ worlds: NS_EL1, kinds: VA_KINDS, vmid, asid: -1, globalMatchesAnyAsid: true }),
      );
    case CMD_TLBI_EL2_ALL:
      return t.invalidateTlb({
        worlds: (1 << WORLD_EL2) | (1 << WORLD_EL2_E2H),
        kinds: ALL_KINDS,
        vmid: -1,
        asid: -1,
        globalMatchesAnyAsid: true,
      });
    case CMD_TLBI_EL2_ASID:
      return t.invalidateTlb({
        worlds: 1 << WORLD_EL2_E2H,
        kinds: ALL_KINDS,
        vmid: -1,
        asid,
        globalMatchesAnyAsid: false,
      });
    case CMD_TLBI_EL2_VA:
      return t.invalidateTlb(
        va(
          t.e2h
            ? { worlds: 1 << WORLD_EL2_E2H, kinds: ALL_KINDS, vmid: -1, asid, globalMatchesAnyAsid: true }
            : { worlds: 1 << WORLD_EL2, kinds: ALL_KINDS, vmid: -1, asid: -1, globalMatchesAnyAsid: true },
        ),
      );
    case CMD_TLBI_EL2_VAA:
      return t.invalidateTlb(
        va({
          worlds: 1 << (t.e2h ? WORLD_EL2_E2H : WORLD_EL2),
          kinds: ALL_KINDS,
          vmid: -1,
          asid: -1,
          globalMatchesAnyAsid: true,
        }),
      );
    case CMD_TLBI_S2_IPA:
      return t.invalidateTlb(
        va({ worlds: NS_EL1, kinds: 1 << KIND_S2, vmid, asid: -1, globalMatchesAnyAsid: true }),
      );
    case CMD_TLBI_S12_VMALL:
      return t.invalidateTlb({
        worlds: NS_EL1,
        kinds: ALL_KINDS,
        vmid,
        asid: -1,
        globalMatchesAnyAsid: true,
      });
    case CMD_TLBI_NSNH_ALL:
      return t.invalidateTlb({
        worlds: NS_EL1,
        kinds: ALL_KINDS,
        vmid: -1,
        asid: -1,
        globalMatchesAnyAsid: true,
      });
    case CMD_SYNC: {
      const cs = getField(w, CMD_0_CS);
      const msiAddr = cs === CMD_SYNC_CS_IRQ ? getField(w, CMD_1_MSIADDR) : 0;
      const data = cs === CMD_SYNC_CS_IRQ ? getField(w, CMD_0_MSIDATA) : 0;
      return t.syncComplete(cs === CMD_SYNC_CS_SEV && !f.sev ? 0 : cs, f.msi ? msiAddr : 0, data);
    }
    default:
      // PREFETCH_CONFIG / PREFETCH_ADDR: hints; vsva prefetches nothing (permitted, §4.2).
      return;
  }
}

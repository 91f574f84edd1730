/**
 * SMMUv3 event records → the iommu core's unrecoverable faults (seed-spec §1.4, patch 12/12 of
 * the nested-stage series): which events are reported, with which `IOMMU_FAULT_REASON_*` and
 * which validity flags, and how the record's fields fill `struct iommu_fault_unrecoverable`.
 *
 * | event          | reason           | flags                      |
 * |----------------|------------------|----------------------------|
 * | F_TRANSLATION  | PTE_FETCH        | ADDR_VALID                 |
 * | F_ADDR_SIZE    | OOR_ADDRESS      | ADDR_VALID                 |
 * | F_ACCESS       | ACCESS           | ADDR_VALID                 |
 * | F_PERMISSION   | PERMISSION       | ADDR_VALID                 |
 * | C_BAD_SUBSTREAMID | PASID_INVALID | —                         |
 * | F_CD_FETCH     | PASID_FETCH      | FETCH_ADDR_VALID           |
 * | C_BAD_CD       | BAD_PASID_ENTRY  | —                          |
 * | F_WALK_EABT    | WALK_EABT        | ADDR_VALID, FETCH_ADDR_VALID |
 * | anything else  | not reported     |                            |
 *
 * Plus PASID_VALID and `pasid` when the record carries a SubstreamID, and `perm` from RnW, InD
 * and PnU. The flags are an "at least": see the decisions below.
 */

import {
  C_BAD_CD,
  C_BAD_SUBSTREAMID,
  EVT_1_RNW,
  EVT_CLASS_CD,
  EVT_CLASS_TT,
  EVT_LAYOUTS,
  F_ACCESS,
  F_ADDR_SIZE,
  F_CD_FETCH,
  F_PERMISSION,
  F_TRANSLATION,
  F_WALK_EABT,
} from '../../arch/smmuv3/events.ts';
import { eventInputAddr, type SmmuEvent } from '../../hw/smmuv3/event-record.ts';
import {
  IOMMU_FAULT_DMA_UNRECOV,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_FAULT_REASON_ACCESS,
  IOMMU_FAULT_REASON_BAD_PASID_ENTRY,
  IOMMU_FAULT_REASON_OOR_ADDRESS,
  IOMMU_FAULT_REASON_PASID_FETCH,
  IOMMU_FAULT_REASON_PASID_INVALID,
  IOMMU_FAULT_REASON_PERMISSION,
  IOMMU_FAULT_REASON_PTE_FETCH,
  IOMMU_FAULT_REASON_WALK_EABT,
  IOMMU_FAULT_UNRECOV_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
  IOMMU_FAULT_UNRECOV_PASID_VALID,
} from '../../uapi/iommu.ts';
import type { IommuFault } from '../iommu/types.ts';

interface FaultMapping {
  readonly reason: number;
  /** The input address is meaningful (addr). */
  readonly addr: boolean;
  /** The record's fetch address is meaningful (fetch_addr). */
  readonly fetch: boolean;
}

/** Event number → how it is reported (seed-spec §1.4). Events not listed are not reported. */
export const EVENT_FAULT_MAP: ReadonlyMap<number, FaultMapping> = new Map([
  [F_TRANSLATION, { reason: IOMMU_FAULT_REASON_PTE_FETCH, addr: true, fetch: false }],
  [F_ADDR_SIZE, { reason: IOMMU_FAULT_REASON_OOR_ADDRESS, addr: true, fetch: false }],
  [F_ACCESS, { reason: IOMMU_FAULT_REASON_ACCESS, addr: true, fetch: false }],
  [F_PERMISSION, { reason: IOMMU_FAULT_REASON_PERMISSION, addr: true, fetch: false }],
  [C_BAD_SUBSTREAMID, { reason: IOMMU_FAULT_REASON_PASID_INVALID, addr: false, fetch: false }],
  [F_CD_FETCH, { reason: IOMMU_FAULT_REASON_PASID_FETCH, addr: false, fetch: true }],
  [C_BAD_CD, { reason: IOMMU_FAULT_REASON_BAD_PASID_ENTRY, addr: false, fetch: false }],
  [F_WALK_EABT, { reason: IOMMU_FAULT_REASON_WALK_EABT, addr: true, fetch: true }],
]);

/** Access permissions of the faulting transaction: RnW → READ else WRITE; InD → EXEC; PnU → PRIV. */
export function eventPerm(e: SmmuEvent): number {
  let perm = e.rnw ? IOMMU_FAULT_PERM_READ : IOMMU_FAULT_PERM_WRITE;
  if (e.ind) perm |= IOMMU_FAULT_PERM_EXEC;
  if (e.pnu) perm |= IOMMU_FAULT_PERM_PRIV;
  return perm;
}

/** Whether the record kind carries the RnW/InD/PnU fields. */
function hasAccessFields(id: number): boolean {
  return EVT_LAYOUTS[id]?.includes(EVT_1_RNW) ?? false;
}

/**
 * The fault to report for an event, or undefined when the event is not reported.
 *
 * Decisions:
 * - PASID_VALID follows the decoded record's SubstreamID: for the records with an SSV bit that is
 *   SSV; C_BAD_SUBSTREAMID has no SSV bit and always carries the offending SubstreamID, which is
 *   reported (Linux tests the raw SSV bit and would report no PASID there).
 * - fetch_addr is the record's FetchAddr in place (bits [51:3]); Linux's FIELD_GET would shift it.
 * - A translation-class fault raised by stage 2 while fetching a CD (CLASS = CD) or a stage-1
 *   descriptor (CLASS = TT) also reports that IPA as fetch_addr with FETCH_ADDR_VALID: the IPA is
 *   the address of the structure being fetched. Stage-2 faults on the input (CLASS = IN) report
 *   only the input address.
 * - perm comes from records that carry RnW/InD/PnU (F_WALK_EABT and the translation faults);
 *   configuration events (C_BAD_SUBSTREAMID, F_CD_FETCH, C_BAD_CD) carry no access type and
 *   report perm 0 rather than a made-up "write".
 */
export function eventToFault(e: SmmuEvent): IommuFault | undefined {
  const m = EVENT_FAULT_MAP.get(e.id);
  if (m === undefined) return undefined;
  let flags = 0;
  let fetchAddr = 0;
  if (m.addr) flags |= IOMMU_FAULT_UNRECOV_ADDR_VALID;
  if (m.fetch) {
    flags |= IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID;
    fetchAddr = e.fetchAddr;
  } else if (m.addr && e.s2 && (e.cls === EVT_CLASS_CD || e.cls === EVT_CLASS_TT)) {
    flags |= IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID;
    fetchAddr = e.ipa;
  }
  let pasid = 0;
  if (e.substreamId >= 0) {
    flags |= IOMMU_FAULT_UNRECOV_PASID_VALID;
    pasid = e.substreamId;
  }
  return {
    type: IOMMU_FAULT_DMA_UNRECOV,
    event: {
      reason: m.reason,
      flags,
      pasid,
      perm: hasAccessFields(e.id) ? eventPerm(e) : 0,
      addr: m.addr ? eventInputAddr(e) : 0,
      fetch_addr: fetchAddr,
    },
  };
}

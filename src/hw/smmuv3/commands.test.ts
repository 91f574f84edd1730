/**
 * Behavioural tests of the SMMUv3 command queue (IHI 0070 chapter 4; team notes commands.md).
 *
 * Invalidation scopes are shown the way software meets them on hardware: translations are set up
 * and warmed, the tables in memory are changed *without* invalidating, the SMMU keeps serving the
 * stale translation, and only after the command (+ CMD_SYNC) do the entries in the command's scope
 * re-walk to the new address while everything outside it keeps returning the stale one (the §4.4.1
 * scope matrix). Configuration caches are shown the same way with STE/CD/L1 descriptor rewrites.
 * Then command errors and their recovery protocol (§4.1.3, §7.1), CMD_SYNC completion signals
 * (§4.7.3), queue index arithmetic (§3.5.1, §6.3.26-28), and a property over random valid commands.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CERROR_ABT,
  CERROR_ILL,
  CERROR_NONE,
  CMD_0_ASID,
  CMD_0_NUM,
  CMD_0_SID,
  CMD_0_SSEC,
  CMD_0_VMID,
  CMD_1_RANGE,
  CMD_CFGI_STE_RANGE,
  CMD_TLBI_NH_ALL,
} from '../../arch/smmuv3/commands.ts';
import { C_BAD_STREAMID } from '../../arch/smmuv3/events.ts';
import {
  CR0_CMDQEN,
  CR0_EVENTQEN,
  CR0_SMMUEN,
  CR2_E2H,
  CR2_RECINVSID,
  GERROR_CMDQ_ERR,
  GERROR_MSI_CMDQ_ABT_ERR,
  SMMU_CMDQ_BASE,
  SMMU_CMDQ_CONS,
  SMMU_CMDQ_PROD,
  SMMU_CR0,
  SMMU_CR2,
  SMMU_GERROR,
  SMMU_GERRORN,
  SMMU_IDR1,
} from '../../arch/smmuv3/registers.ts';
import type { PageTable } from '../vmsa/pgtable.ts';
import type { SmmuFeatures } from './features.ts';
import { CdTable, SmmuRig, writeWords } from './rig.ts';
import { type SmmuHooks, TXN_ABORT, TXN_OK } from './smmu.ts';
import {
  type CdParams,
  cmdCfgiAll,
  cmdCfgiCd,
  cmdCfgiCdAll,
  cmdCfgiSte,
  cmdCfgiSteRange,
  cmdPrefetchConfig,
  cmdRaw,
  cmdSync,
  cmdTlbiEl2All,
  cmdTlbiEl2Asid,
  cmdTlbiEl2Va,
  cmdTlbiEl2Vaa,
  cmdTlbiNhAll,
  cmdTlbiNhAsid,
  cmdTlbiNhVa,
  cmdTlbiNhVaa,
  cmdTlbiNsnhAll,
  cmdTlbiS2Ipa,
  cmdTlbiS12Vmall,
  encodeCd,
  encodeL1cd,
  encodeSte,
  type TlbiRange,
} from './structures.ts';

// ================================================================== helpers

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4 * KiB;
/** Offset inside a page used by every probe, to show the page offset survives translation. */
const OFF = 0x40;
const PROT = { read: true, write: true, user: true } as const;
const S2_PROT = { read: true, write: true, exec: true } as const;
const S1_TABLE = { stage: 1, granule: 12, iasBits: 39, oasBits: 48 } as const;
/** Two VAs in different 2MB regions (and different level-2 tables). */
const VA = [0x10_0000, 0x30_0000] as const;
const IPA_BASE = 0x8000_0000;

function alloc(rig: SmmuRig, bytes: number): number {
  const a = rig.alloc.alloc(bytes);
  if (a === undefined) throw new Error(`test rig: cannot allocate ${bytes} bytes`);
  return a;
}

function mapOrThrow(pt: PageTable, iova: number, pa: number, size = PAGE): void {
  const r = pt.map(iova, pa, size, pt.stage === 1 ? PROT : S2_PROT);
  if (!r.ok) throw new Error(`map 0x${iova.toString(16)}: ${r.detail}`);
}

/** Changes a mapping in memory only: no TLB invalidation. */
function remap(pt: PageTable, iova: number, pa: number, size = PAGE): void {
  expect(pt.unmap(iova, size)).toBe(size);
  mapOrThrow(pt, iova, pa, size);
}

function cdFor(ttb0: number, asid: number): CdParams {
  return { t0sz: 64 - S1_TABLE.iasBits, granule0: 12, ttb0, ipsBits: 48, asid };
}

/** Translates one byte; fails the test (with the model's reason) unless it succeeds. */
function translatePa(rig: SmmuRig, sid: number, input: number, ssid = -1): number {
  const r = rig.smmu.translate(sid, ssid, input);
  expect(r.status, `sid ${sid} ssid ${ssid} 0x${input.toString(16)}: ${r.reason}`).toBe(TXN_OK);
  return r.firstPa;
}

function cmdqErrorActive(rig: SmmuRig): boolean {
  return ((rig.smmu.read32(SMMU_GERROR) ^ rig.smmu.read32(SMMU_GERRORN)) & GERROR_CMDQ_ERR) !== 0;
}

/**
 * Submits commands followed by a CMD_SYNC and checks they were all consumed without error
 * (GERROR.CMDQ_ERR inactive and CONS == PROD; CONS.ERR itself is UNKNOWN without an error).
 */
function run(rig: SmmuRig, ...cmds: Uint32Array[]): void {
  rig.submit(...cmds, cmdSync());
  expect(cmdqErrorActive(rig)).toBe(false);
  const s = rig.cmdqState();
  expect(s.cons).toBe(s.prod & (2 ** (rig.cmdqLog2 + 1) - 1));
}

/** A stage-1-only stream with its own table and CD (STRW selects an EL2 StreamWorld). */
interface S1Stream {
  readonly sid: number;
  readonly table: PageTable;
  readonly cd: CdTable;
}

function s1Stream(
  rig: SmmuRig,
  sid: number,
  o: { vmid: number; asid: number; global?: boolean; strw?: number },
): S1Stream {
  const table = rig.pageTable({ ...S1_TABLE, nonGlobal: o.global !== true });
  const cd = rig.cdTable();
  cd.write(0, cdFor(table.root, o.asid));
  rig.writeSte(sid, {
    config: 's1',
    s1ContextPtr: cd.ptr,
    s2Vmid: o.vmid,
    ...(o.strw !== undefined ? { strw: o.strw } : {}),
  });
  return { sid, table, cd };
}

/** A stage-2-only stream over its own (empty) stage-2 table. */
function s2Stream(rig: SmmuRig, sid: number, vmid: number): { table: PageTable } {
  const table = rig.pageTable({ stage: 2, granule: 12, iasBits: 40, oasBits: 48 });
  rig.writeSte(sid, { config: 's2', s2Vmid: vmid, s2Ttb: table.root, s2Sl0: table.sl0 });
  return { table };
}

/** One translation the tests watch: input → oldPa now, → newPa once the change is seen. */
interface Probe {
  readonly name: string;
  readonly sid: number;
  readonly ssid: number;
  readonly input: number;
  readonly oldPa: number;
  readonly newPa: number;
}

interface Scene {
  readonly rig: SmmuRig;
  readonly probes: Probe[];
  /** Rewrites every probe's mapping in memory, without any invalidation. */
  change(): void;
}

function runAll(fns: readonly (() => void)[]): () => void {
  return () => {
    for (const f of fns) f();
  };
}

/** What each probe returns: 'new', 'stale', or the unexpected address. */
function observe(s: Scene): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of s.probes) {
    const pa = translatePa(s.rig, p.sid, p.input, p.ssid);
    out[p.name] = pa === p.newPa ? 'new' : pa === p.oldPa ? 'stale' : `0x${pa.toString(16)}`;
  }
  return out;
}

function expected(s: Scene, refreshed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of s.probes) out[p.name] = refreshed.includes(p.name) ? 'new' : 'stale';
  return out;
}

/**
 * Warms every probe, changes the tables, checks that the stale translations are still served,
 * runs `cmds` + CMD_SYNC, and returns what each probe translates to afterwards.
 */
function afterCommands(s: Scene, ...cmds: Uint32Array[]): Record<string, string> {
  expect(observe(s)).toEqual(expected(s, [])); // warm: the old PAs
  s.change();
  expect(observe(s)).toEqual(expected(s, [])); // stale entries are served, as on hardware
  run(s.rig, ...cmds);
  return observe(s);
}

function addS1Probes(
  rig: SmmuRig,
  probes: Probe[],
  changes: (() => void)[],
  name: string,
  stream: S1Stream,
): void {
  VA.forEach((va, i) => {
    const oldPage = alloc(rig, PAGE);
    const newPage = alloc(rig, PAGE);
    mapOrThrow(stream.table, va, oldPage);
    probes.push({
      name: `${name}${i}`,
      sid: stream.sid,
      ssid: -1,
      input: va + OFF,
      oldPa: oldPage + OFF,
      newPa: newPage + OFF,
    });
    changes.push(() => remap(stream.table, va, newPage));
  });
}

/**
 * The Non-secure "zoo" of the §4.4.1 scope matrix, each stream probed at two addresses (suffix 0/1):
 *  A  sid 1  S1  VMID 1 ASID 1 non-global      B  sid 2  S1  VMID 1 ASID 2 non-global
 *  G  sid 3  S1  VMID 1 (CD.ASID 3) global     C  sid 4  S1  VMID 2 ASID 1 non-global
 *  H  sid 5  S1  VMID 2 (CD.ASID 3) global     N  sid 6  nested S1+S2 VMID 1 ASID 4 non-global
 *  S  sid 7  S2-only VMID 1, same stage 2 as N, probed at N's IPAs
 *  T  sid 8  S2-only VMID 2 (its own stage 2), at the same IPAs
 *  E  sid 9  S1 in the NS-EL2 StreamWorld (STRW = 0b10, CR2.E2H = 0)
 * The change remaps each stage-1 page, and for VM 1 the *stage-2* page behind N and S (so N's
 * combined entry and S's IPA entry go stale together), and VM 2's stage-2 page behind T.
 */
interface NsZoo extends Scene {
  /** The IPAs behind N0/N1, which S and T are probed at. */
  readonly ipa: readonly number[];
}

function nsZoo(features: Partial<SmmuFeatures> = {}): NsZoo {
  const rig = new SmmuRig({ features });
  const probes: Probe[] = [];
  const changes: (() => void)[] = [];
  addS1Probes(rig, probes, changes, 'A', s1Stream(rig, 1, { vmid: 1, asid: 1 }));
  addS1Probes(rig, probes, changes, 'B', s1Stream(rig, 2, { vmid: 1, asid: 2 }));
  addS1Probes(rig, probes, changes, 'G', s1Stream(rig, 3, { vmid: 1, asid: 3, global: true }));
  addS1Probes(rig, probes, changes, 'C', s1Stream(rig, 4, { vmid: 2, asid: 1 }));
  addS1Probes(rig, probes, changes, 'H', s1Stream(rig, 5, { vmid: 2, asid: 3, global: true }));
  addS1Probes(rig, probes, changes, 'E', s1Stream(rig, 9, { vmid: 0, asid: 0, global: true, strw: 0b10 }));

  // VM 1: a nested stream and a stage-2-only stream over the same stage 2.
  const g1 = rig.guestRam(IPA_BASE, 8 * MiB);
  const s2a = rig.stage2For(g1);
  const guestS1 = rig.pageTable({ ...S1_TABLE, nonGlobal: true }, g1.alloc);
  const guestCd = new CdTable(g1.view, g1.alloc, 0, 0);
  guestCd.write(0, cdFor(guestS1.root, 4));
  rig.writeSte(6, {
    config: 'nested',
    s1ContextPtr: guestCd.ptr,
    s2Vmid: 1,
    s2Ttb: s2a.root,
    s2Sl0: s2a.sl0,
  });
  rig.writeSte(7, { config: 's2', s2Vmid: 1, s2Ttb: s2a.root, s2Sl0: s2a.sl0 });
  // VM 2: a stage-2-only stream with its own guest RAM at the same IPAs.
  const g2 = rig.guestRam(IPA_BASE, 8 * MiB);
  const s2b = rig.stage2For(g2);
  rig.writeSte(8, { config: 's2', s2Vmid: 2, s2Ttb: s2b.root, s2Sl0: s2b.sl0 });
  const ipas: number[] = [];
  VA.forEach((va, i) => {
    // Each IPA in its own 2MB stage-2 block, so one IPA's entry never covers the other's.
    const ipa = g1.alloc.alloc(2 * MiB);
    if (ipa === undefined) throw new Error('guest RAM exhausted');
    ipas.push(ipa);
    mapOrThrow(guestS1, va, ipa);
    const pa1 = g1.paBase + (ipa - g1.ipaBase);
    const pa2 = g2.paBase + (ipa - g2.ipaBase);
    const new1 = alloc(rig, PAGE);
    const new2 = alloc(rig, PAGE);
    probes.push({ name: `N${i}`, sid: 6, ssid: -1, input: va + OFF, oldPa: pa1 + OFF, newPa: new1 + OFF });
    probes.push({ name: `S${i}`, sid: 7, ssid: -1, input: ipa + OFF, oldPa: pa1 + OFF, newPa: new1 + OFF });
    probes.push({ name: `T${i}`, sid: 8, ssid: -1, input: ipa + OFF, oldPa: pa2 + OFF, newPa: new2 + OFF });
    changes.push(() => remap(s2a, ipa, new1));
    changes.push(() => remap(s2b, ipa, new2));
  });
  return { rig, probes, change: runAll(changes), ipa: ipas };
}

/** Both probes (addresses 0 and 1) of each named stream. */
const both = (...names: string[]): string[] => names.flatMap((n) => [`${n}0`, `${n}1`]);
const ALL_NS = both('A', 'B', 'G', 'C', 'H', 'N', 'S', 'T');

/** A rig whose CR2.E2H is set before SMMUEN (CR2 is guarded by SMMUEN). */
function e2hRig(): SmmuRig {
  const rig = new SmmuRig({ noEnable: true });
  rig.smmu.write32(SMMU_CR2, CR2_E2H | CR2_RECINVSID);
  rig.smmu.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
  expect(rig.smmu.read32(SMMU_CR2) & CR2_E2H).toBe(CR2_E2H);
  return rig;
}

/**
 * EL2-E2H zoo (CR2.E2H = 1), each stream probed at VA[0]/VA[1]:
 *  P  sid 1  EL2-E2H ASID 1 non-global     Q  sid 2  EL2-E2H ASID 2 non-global
 *  R  sid 3  EL2-E2H (CD.ASID 3) global    A  sid 4  NS-EL1 S1 VMID 1 ASID 1 non-global
 */
function e2hZoo(): Scene {
  const rig = e2hRig();
  const probes: Probe[] = [];
  const changes: (() => void)[] = [];
  addS1Probes(rig, probes, changes, 'P', s1Stream(rig, 1, { vmid: 0, asid: 1, strw: 0b10 }));
  addS1Probes(rig, probes, changes, 'Q', s1Stream(rig, 2, { vmid: 0, asid: 2, strw: 0b10 }));
  addS1Probes(rig, probes, changes, 'R', s1Stream(rig, 3, { vmid: 0, asid: 3, global: true, strw: 0b10 }));
  addS1Probes(rig, probes, changes, 'A', s1Stream(rig, 4, { vmid: 1, asid: 1 }));
  return { rig, probes, change: runAll(changes) };
}

// ================================================================== 1. invalidation scopes

describe('TLB invalidation scopes (§4.4, scope matrix §4.4.1): stale until the command, then re-walked', () => {
  it('the zoo really is what the matrix needs: S1, nested, S2-only and EL2 entries with the right tags', () => {
    const z = nsZoo();
    observe(z);
    const kinds = z.rig.smmu.iotlb
      .dump()
      .map((e) => `${e.world}/${e.kind}/${e.vmid}/${e.asid}`)
      .sort();
    // world 0 = NS-EL1, 1 = NS-EL2; kind 0 = S1, 1 = S1+S2, 2 = S2; asid -1 = global.
    expect(kinds).toEqual(
      [
        ...['0/0/1/1', '0/0/1/2', '0/0/1/-1', '0/0/2/1', '0/0/2/-1', '0/1/1/4', '0/2/1/-1', '0/2/2/-1'],
        '1/0/0/-1',
      ]
        .flatMap((k) => [k, k])
        .sort(),
    );
  });

  const cases: [string, (z: NsZoo) => Uint32Array[], string[]][] = [
    [
      'TLBI_NH_ALL(VMID 1) removes every NS-EL1 stage-1 entry of VMID 1, global and nested included; keeps VMID 2, S2-only and EL2',
      () => [cmdTlbiNhAll(1)],
      both('A', 'B', 'G', 'N'),
    ],
    [
      'TLBI_NH_ASID(1, 1) removes only ASID 1 of VMID 1; keeps ASID 2, ASID 1 of VMID 2, global entries',
      () => [cmdTlbiNhAsid(1, 1)],
      both('A'),
    ],
    [
      'TLBI_NH_ASID(1, 3) keeps global (nG = 0) entries even of a stream whose CD.ASID is 3',
      () => [cmdTlbiNhAsid(1, 3)],
      [],
    ],
    [
      'TLBI_NH_ASID(1, 4) removes the nested (S1+S2) entries of that ASID',
      () => [cmdTlbiNhAsid(1, 4)],
      both('N'),
    ],
    [
      'TLBI_NH_ASID(2, 1) removes ASID 1 of VMID 2 only (the ASID namespace is per VMID)',
      () => [cmdTlbiNhAsid(2, 1)],
      both('C'),
    ],
    [
      'TLBI_NH_VA(1, 1, VA0) removes ASID 1 and global entries of VMID 1 at VA0 only',
      () => [cmdTlbiNhVa(1, 1, VA[0])],
      ['A0', 'G0'],
    ],
    [
      'TLBI_NH_VA(1, 4, VA0) removes the nested entry at VA0 and the global entry there',
      () => [cmdTlbiNhVa(1, 4, VA[0])],
      ['N0', 'G0'],
    ],
    [
      'TLBI_NH_VA(1, 2, VA1) removes ASID 2 and global entries of VMID 1 at VA1 only',
      () => [cmdTlbiNhVa(1, 2, VA[1])],
      ['B1', 'G1'],
    ],
    [
      'TLBI_NH_VAA(1, VA0) removes every ASID of VMID 1 at VA0, global and nested included',
      () => [cmdTlbiNhVaa(1, VA[0])],
      ['A0', 'B0', 'G0', 'N0'],
    ],
    ['TLBI_NH_VAA(2, VA1) removes VMID 2 entries at VA1 only', () => [cmdTlbiNhVaa(2, VA[1])], ['C1', 'H1']],
    [
      'TLBI_S2_IPA(1, IPA0) removes the S2-only entry of VMID 1 at that IPA, not the nested entry built on it',
      (z) => [cmdTlbiS2Ipa(1, z.ipa[0]!)],
      ['S0'],
    ],
    [
      'TLBI_S2_IPA(1, VA0) matches IPA-tagged entries only: stage-1 and nested entries whose VA equals it are kept',
      () => [cmdTlbiS2Ipa(1, VA[0]), cmdTlbiS2Ipa(1, VA[1], { granule: 12, num: 3 })],
      [],
    ],
    [
      'TLBI_S12_VMALL(1) removes every entry of VMID 1 at every stage; keeps VMID 2 and EL2',
      () => [cmdTlbiS12Vmall(1)],
      both('A', 'B', 'G', 'N', 'S'),
    ],
    [
      'TLBI_S12_VMALL(2) removes every entry of VMID 2 at every stage',
      () => [cmdTlbiS12Vmall(2)],
      both('C', 'H', 'T'),
    ],
    ['TLBI_NSNH_ALL removes every non-EL2 entry of every VMID; keeps EL2', () => [cmdTlbiNsnhAll()], ALL_NS],
    ['TLBI_EL2_ALL removes the EL2 entries only', () => [cmdTlbiEl2All()], both('E')],
    [
      'TLBI_EL2_VA with CR2.E2H = 0 removes EL2 entries at that VA, ignoring the ASID parameter',
      () => [cmdTlbiEl2Va(77, VA[0])],
      ['E0'],
    ],
    ['TLBI_EL2_VAA with CR2.E2H = 0 removes EL2 entries at that VA', () => [cmdTlbiEl2Vaa(VA[1])], ['E1']],
    [
      'TLBI_EL2_ASID does not touch NS-EL2 (non-E2H) entries, which have no ASID',
      () => [cmdTlbiEl2Asid(0)],
      [],
    ],
    [
      'CFGI_ALL, CFGI_STE, CFGI_STE_RANGE, CFGI_CD and CFGI_CD_ALL touch no TLB entry',
      () => [cmdCfgiAll(), cmdCfgiSte(1), cmdCfgiSteRange(0, 3), cmdCfgiCd(6, 0), cmdCfgiCdAll(3)],
      [],
    ],
  ];

  it.each(cases)('%s', (_name, cmds, refreshed) => {
    const z = nsZoo();
    expect(afterCommands(z, ...cmds(z))).toEqual(expected(z, refreshed));
  });

  it('after TLBI_S2_IPA the stale nested entry is served until TLBI_NH_ALL (the required software sequence)', () => {
    const z = nsZoo();
    expect(afterCommands(z, cmdTlbiS2Ipa(1, z.ipa[0]!))).toEqual(expected(z, ['S0']));
    // The nested entry N0 keeps returning the PA of the old stage-2 mapping...
    expect(translatePa(z.rig, 6, VA[0] + OFF)).toBe(z.probes.find((p) => p.name === 'N0')!.oldPa);
    // ...until the stage-1 invalidation of that VMID, after a CMD_SYNC.
    run(z.rig, cmdTlbiNhAll(1));
    expect(observe(z)).toEqual(expected(z, ['S0', ...both('A', 'B', 'G', 'N')]));
  });

  it('after TLBI_S2_IPA, TLBI_NH_VAA at the VA also removes the stale nested entry', () => {
    const z = nsZoo();
    expect(afterCommands(z, cmdTlbiS2Ipa(1, z.ipa[0]!))).toEqual(expected(z, ['S0']));
    run(z.rig, cmdTlbiNhVaa(1, VA[0]));
    expect(observe(z)).toEqual(expected(z, ['S0', 'A0', 'B0', 'G0', 'N0']));
  });

  describe('with CR2.E2H = 1 (NS-EL2-E2H StreamWorld)', () => {
    const e2hCases: [string, () => Uint32Array[], string[]][] = [
      [
        'TLBI_EL2_ALL removes every EL2-E2H entry, keeps NS-EL1',
        () => [cmdTlbiEl2All()],
        both('P', 'Q', 'R'),
      ],
      [
        'TLBI_EL2_ASID(1) removes non-global EL2-E2H entries of ASID 1 only; keeps global and NS-EL1 ASID 1',
        () => [cmdTlbiEl2Asid(1)],
        both('P'),
      ],
      [
        'TLBI_EL2_VA(1, VA0) removes ASID 1 and global EL2-E2H entries at VA0',
        () => [cmdTlbiEl2Va(1, VA[0])],
        ['P0', 'R0'],
      ],
      [
        'TLBI_EL2_VAA(VA1) removes EL2-E2H entries of every ASID at VA1',
        () => [cmdTlbiEl2Vaa(VA[1])],
        ['P1', 'Q1', 'R1'],
      ],
      [
        'TLBI_NH_ALL and TLBI_NSNH_ALL do not touch EL2-E2H entries',
        () => [cmdTlbiNhAll(1), cmdTlbiNsnhAll()],
        both('A'),
      ],
      [
        'TLBI_NH_ASID and TLBI_NH_VA (VMID 0, ASID 1) do not touch EL2-E2H entries of ASID 1',
        () => [cmdTlbiNhAsid(0, 1), cmdTlbiNhVa(0, 1, VA[0])],
        [],
      ],
    ];
    it('CR2 is guarded by SMMUEN: E2H can only be changed with the SMMU disabled', () => {
      const rig = new SmmuRig();
      rig.smmu.write32(SMMU_CR2, CR2_E2H | CR2_RECINVSID);
      expect(rig.smmu.read32(SMMU_CR2) & CR2_E2H).toBe(0);
      rig.smmu.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN);
      rig.smmu.write32(SMMU_CR2, CR2_E2H | CR2_RECINVSID);
      expect(rig.smmu.read32(SMMU_CR2) & CR2_E2H).toBe(CR2_E2H);
    });

    it.each(e2hCases)('%s', (_name, cmds, refreshed) => {
      const z = e2hZoo();
      expect(afterCommands(z, ...cmds())).toEqual(expected(z, refreshed));
    });
  });

  describe('range and TTL forms (§4.4.1.1)', () => {
    /** One S1 stream (VMID 1, ASID 1) with six consecutive pages at 0x50_0000. */
    function pagesScene(): Scene {
      const rig = new SmmuRig();
      const st = s1Stream(rig, 1, { vmid: 1, asid: 1 });
      const probes: Probe[] = [];
      const changes: (() => void)[] = [];
      for (let i = 0; i < 6; i++) {
        const va = 0x50_0000 + i * PAGE;
        const oldPage = alloc(rig, PAGE);
        const newPage = alloc(rig, PAGE);
        mapOrThrow(st.table, va, oldPage);
        probes.push({
          name: `p${i}`,
          sid: 1,
          ssid: -1,
          input: va + OFF,
          oldPa: oldPage + OFF,
          newPa: newPage + OFF,
        });
        changes.push(() => remap(st.table, va, newPage));
      }
      return { rig, probes, change: runAll(changes) };
    }

    const base = 0x50_0000 + PAGE;
    const rangeCases: [string, Uint32Array, string[]][] = [
      [
        'TLBI_NH_VA TG=4KB NUM=3 covers (3+1) pages from the address',
        cmdTlbiNhVa(1, 1, base, { granule: 12, num: 3 }),
        ['p1', 'p2', 'p3', 'p4'],
      ],
      [
        'TLBI_NH_VA TG=4KB NUM=1 SCALE=1 covers (1+1)*2^1 pages',
        cmdTlbiNhVa(1, 1, base, { granule: 12, num: 1, scale: 1 }),
        ['p1', 'p2', 'p3', 'p4'],
      ],
      [
        'TLBI_NH_VAA TG=4KB NUM=2 covers 3 pages in every ASID',
        cmdTlbiNhVaa(1, base, { granule: 12, num: 2 }),
        ['p1', 'p2', 'p3'],
      ],
      [
        'TLBI_NH_VA TG=4KB NUM=0 SCALE=0 TTL=3 is one page at level 3',
        cmdTlbiNhVa(1, 1, base, { granule: 12, ttl: 3 }),
        ['p1'],
      ],
      [
        'TLBI_NH_VA TG=4KB range of another VMID removes nothing',
        cmdTlbiNhVa(2, 1, base, { granule: 12, num: 3 }),
        [],
      ],
    ];
    it.each(rangeCases)('%s', (_name, cmd, refreshed) => {
      const s = pagesScene();
      expect(afterCommands(s, cmd)).toEqual(expected(s, refreshed));
    });

    it('TLBI_S2_IPA range form removes only the S2-only entries in [IPA, IPA + range)', () => {
      const rig = new SmmuRig();
      const { table } = s2Stream(rig, 2, 5);
      const probes: Probe[] = [];
      const changes: (() => void)[] = [];
      for (let i = 0; i < 4; i++) {
        const ipa = 0x1000_0000 + i * PAGE;
        const oldPage = alloc(rig, PAGE);
        const newPage = alloc(rig, PAGE);
        mapOrThrow(table, ipa, oldPage);
        probes.push({
          name: `i${i}`,
          sid: 2,
          ssid: -1,
          input: ipa + OFF,
          oldPa: oldPage + OFF,
          newPa: newPage + OFF,
        });
        changes.push(() => remap(table, ipa, newPage));
      }
      const s: Scene = { rig, probes, change: runAll(changes) };
      expect(afterCommands(s, cmdTlbiS2Ipa(5, 0x1000_0000 + PAGE, { granule: 12, num: 1 }))).toEqual(
        expected(s, ['i1', 'i2']),
      );
    });

    /** One S1 stream with a 2MB block (level 2) at 0x4000_0000 and a 4KB page (level 3) after it. */
    function levelsScene(): Scene {
      const rig = new SmmuRig();
      const st = s1Stream(rig, 1, { vmid: 1, asid: 1 });
      const blockVa = 0x4000_0000;
      const pageVa = blockVa + 2 * MiB;
      const oldBlock = alloc(rig, 2 * MiB);
      const newBlock = alloc(rig, 2 * MiB);
      const oldPage = alloc(rig, PAGE);
      const newPage = alloc(rig, PAGE);
      mapOrThrow(st.table, blockVa, oldBlock, 2 * MiB);
      mapOrThrow(st.table, pageVa, oldPage);
      const probes: Probe[] = [
        {
          name: 'block',
          sid: 1,
          ssid: -1,
          input: blockVa + OFF,
          oldPa: oldBlock + OFF,
          newPa: newBlock + OFF,
        },
        { name: 'page', sid: 1, ssid: -1, input: pageVa + OFF, oldPa: oldPage + OFF, newPa: newPage + OFF },
      ];
      return {
        rig,
        probes,
        change: () => {
          remap(st.table, blockVa, newBlock, 2 * MiB);
          remap(st.table, pageVa, newPage);
        },
      };
    }

    it('the level scene caches a level-2 block and a level-3 page', () => {
      const s = levelsScene();
      observe(s);
      expect(
        s.rig.smmu.iotlb
          .dump()
          .map((e) => [e.level, e.shift])
          .sort(),
      ).toEqual([
        [2, 21],
        [3, 12],
      ]);
    });

    // Range 2 * 2^9 * 4KB = 4MB from the block's VA covers both entries.
    const ttlCases: [string, TlbiRange, string[]][] = [
      ['TTL=3 removes only the level-3 page', { granule: 12, num: 1, scale: 9, ttl: 3 }, ['page']],
      ['TTL=2 removes only the level-2 block', { granule: 12, num: 1, scale: 9, ttl: 2 }, ['block']],
      ['TTL=0 (any level) removes both', { granule: 12, num: 1, scale: 9, ttl: 0 }, ['block', 'page']],
      ['TTL=1 removes neither (no level-1 entry)', { granule: 12, num: 1, scale: 9, ttl: 1 }, []],
      [
        'TG=16KB only targets 16KB-granule entries: 4KB-granule entries are kept',
        { granule: 14, num: 1, scale: 9, ttl: 3 },
        [],
      ],
    ];
    it.each(ttlCases)('TLBI_NH_VA range with %s', (_name, range, refreshed) => {
      const s = levelsScene();
      expect(afterCommands(s, cmdTlbiNhVa(1, 1, 0x4000_0000, range))).toEqual(expected(s, refreshed));
    });

    it('a non-range TLBI_NH_VA inside a 2MB block removes the whole block entry', () => {
      const s = levelsScene();
      expect(afterCommands(s, cmdTlbiNhVa(1, 1, 0x4000_0000 + 0x12_3000))).toEqual(expected(s, ['block']));
    });
  });
});

// ================================================================== configuration caches

describe('configuration cache invalidation (§4.3)', () => {
  /** Two S1 streams (sid 1, 2) each mapping VA0; and for each a second table/CD ready to swap in. */
  function cfgScene() {
    const rig = new SmmuRig();
    const mk = (sid: number, asid: number) => {
      const st = s1Stream(rig, sid, { vmid: 1, asid });
      const oldPage = alloc(rig, PAGE);
      mapOrThrow(st.table, VA[0], oldPage);
      // An alternative translation: another table, under another ASID, mapping VA0 elsewhere.
      const altTable = rig.pageTable({ ...S1_TABLE, nonGlobal: true });
      const altPage = alloc(rig, PAGE);
      mapOrThrow(altTable, VA[0], altPage);
      const altCd = rig.cdTable();
      altCd.write(0, cdFor(altTable.root, asid + 100));
      return {
        ...st,
        oldPa: oldPage + OFF,
        altPa: altPage + OFF,
        /** Points the STE at the other CD (no CFGI). */
        swapSte: () => rig.writeSte(sid, { config: 's1', s1ContextPtr: altCd.ptr, s2Vmid: 1 }),
        /** Rewrites the CD in place to the other ASID/table (no CFGI). */
        swapCd: () => st.cd.write(0, cdFor(altTable.root, asid + 100)),
        pa: () => translatePa(rig, sid, VA[0] + OFF),
      };
    };
    return { rig, one: mk(1, 1), two: mk(2, 2) };
  }

  it('CFGI_STE: a changed STE is not used until CFGI_STE + CMD_SYNC; other SIDs keep their cached STE', () => {
    const { rig, one, two } = cfgScene();
    expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
    one.swapSte();
    two.swapSte();
    expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
    const fetches = rig.smmu.stats.steFetches;
    run(rig, cmdCfgiSte(1));
    expect([one.pa(), two.pa()]).toEqual([one.altPa, two.oldPa]);
    expect(rig.smmu.stats.steFetches).toBe(fetches + 1);
  });

  it('CFGI_STE also drops the CD cached through that SID (the CD is refetched)', () => {
    const { rig, one, two } = cfgScene();
    expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
    one.swapCd();
    two.swapCd();
    expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
    const cdFetches = rig.smmu.stats.cdFetches;
    run(rig, cmdCfgiSte(1));
    expect([one.pa(), two.pa()]).toEqual([one.altPa, two.oldPa]);
    expect(rig.smmu.stats.cdFetches).toBe(cdFetches + 1);
  });

  it.each([
    [
      'CFGI_STE_RANGE(0, range 0) drops the CDs cached through SIDs 0-1 only',
      cmdCfgiSteRange(0, 0),
      true,
      false,
    ],
    [
      'CFGI_STE_RANGE(2, range 0) drops the CDs cached through SIDs 2-3 only',
      cmdCfgiSteRange(2, 0),
      false,
      true,
    ],
    ['CFGI_ALL drops the CDs cached through every SID', cmdCfgiAll(), true, true],
  ] as const)('%s', (_n, cmd, oneNew, twoNew) => {
    const { rig, one, two } = cfgScene();
    expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
    one.swapCd();
    two.swapCd();
    run(rig, cmd);
    expect([one.pa(), two.pa()]).toEqual([oneNew ? one.altPa : one.oldPa, twoNew ? two.altPa : two.oldPa]);
  });

  it('CFGI_STE_RANGE(range 1) covers the 4 aligned SIDs containing SID; neighbours keep their STE', () => {
    const rig = new SmmuRig();
    const sids = [3, 4, 5, 6, 7, 8];
    for (const sid of sids) rig.writeSte(sid, { config: 'bypass' });
    for (const sid of sids) expect(translatePa(rig, sid, 0x1234_5000)).toBe(0x1234_5000);
    for (const sid of sids) rig.writeSte(sid, { config: 'abort' });
    run(rig, cmdCfgiSteRange(6, 1));
    const status = sids.map((sid) => rig.smmu.translate(sid, -1, 0x1234_5000).status);
    expect(status).toEqual([TXN_OK, TXN_ABORT, TXN_ABORT, TXN_ABORT, TXN_ABORT, TXN_OK]);
  });

  it('CFGI_STE_RANGE(range 0) covers 2 SIDs', () => {
    const rig = new SmmuRig();
    const sids = [3, 4, 5, 6];
    for (const sid of sids) rig.writeSte(sid, { config: 'bypass' });
    for (const sid of sids) translatePa(rig, sid, 0x5000);
    for (const sid of sids) rig.writeSte(sid, { config: 'abort' });
    run(rig, cmdCfgiSteRange(5, 0));
    const status = sids.map((sid) => rig.smmu.translate(sid, -1, 0x5000).status);
    expect(status).toEqual([TXN_OK, TXN_ABORT, TXN_ABORT, TXN_OK]);
  });

  it('CFGI_ALL (Range = 31) drops every STE whatever its StreamID field', () => {
    const rig = new SmmuRig();
    const sids = [0, 1, 63, 64, 200];
    for (const sid of sids) rig.writeSte(sid, { config: 'bypass' });
    for (const sid of sids) translatePa(rig, sid, 0x5000);
    for (const sid of sids) rig.writeSte(sid, { config: 'abort' });
    const all = cmdRaw(CMD_CFGI_STE_RANGE, [
      [CMD_0_SID, 0x1234],
      [CMD_1_RANGE, 31],
    ]);
    run(rig, all);
    expect(sids.map((sid) => rig.smmu.translate(sid, -1, 0x5000).status)).toEqual(sids.map(() => TXN_ABORT));
  });

  describe('2-level stream table: CFGI_STE Leaf', () => {
    /**
     * SID 5 lives in L2 table A (via L1STD[0]). Then, without CFGI: A's STE for SID 5 becomes a
     * stage-2 stream of VMID 2 (→ pa2), and L1STD[0] is repointed at a new L2 table B whose STE for
     * SID 5 is bypass. Stale STE → pa1; STE refetched through the stale L1STD → pa2; through the
     * new L1STD → bypass (the input address).
     */
    function twoLevel() {
      const rig = new SmmuRig({ sidLog2: 8, split: 6 });
      const ipa = 0x1000_0000;
      const a = s2Stream(rig, 5, 1);
      const pa1 = alloc(rig, PAGE);
      mapOrThrow(a.table, ipa, pa1);
      expect(translatePa(rig, 5, ipa + OFF)).toBe(pa1 + OFF);
      const t2 = rig.pageTable({ stage: 2, granule: 12, iasBits: 40, oasBits: 48 });
      const pa2 = alloc(rig, PAGE);
      mapOrThrow(t2, ipa, pa2);
      rig.writeSte(5, { config: 's2', s2Vmid: 2, s2Ttb: t2.root, s2Sl0: t2.sl0 });
      const l2b = alloc(rig, 64 * 64);
      writeWords(rig.mem, l2b + 64 * 5, encodeSte({ config: 'bypass' }));
      rig.writeL1std(0, 7, l2b);
      expect(translatePa(rig, 5, ipa + OFF)).toBe(pa1 + OFF);
      return { rig, ipa, pa1, pa2 };
    }

    it('Leaf = 1 refetches the STE but may keep the cached L1STD (the model keeps it)', () => {
      const { rig, ipa, pa2 } = twoLevel();
      const l1 = rig.smmu.stats.l1stdFetches;
      run(rig, cmdCfgiSte(5, true));
      expect(translatePa(rig, 5, ipa + OFF)).toBe(pa2 + OFF);
      expect(rig.smmu.stats.l1stdFetches).toBe(l1);
    });

    it('Leaf = 0 also drops the L1STD: the STE is reached through the new L1 descriptor', () => {
      const { rig, ipa } = twoLevel();
      const l1 = rig.smmu.stats.l1stdFetches;
      run(rig, cmdCfgiSte(5, false));
      expect(translatePa(rig, 5, ipa + OFF)).toBe(ipa + OFF);
      expect(rig.smmu.stats.l1stdFetches).toBe(l1 + 1);
    });

    it.each([
      ['CFGI_STE_RANGE', cmdCfgiSteRange(5, 1)],
      ['CFGI_ALL', cmdCfgiAll()],
    ])('%s drops the L1STDs of its range as well (Leaf = 0 behaviour)', (_n, cmd) => {
      const { rig, ipa } = twoLevel();
      run(rig, cmd);
      expect(translatePa(rig, 5, ipa + OFF)).toBe(ipa + OFF);
    });

    it('Leaf = 0 after shrinking the L1STD span makes the SID unreachable (C_BAD_STREAMID)', () => {
      const rig = new SmmuRig({ sidLog2: 8, split: 6 });
      rig.writeSte(5, { config: 'bypass' });
      expect(translatePa(rig, 5, 0x7000)).toBe(0x7000);
      const l2 = rig.steAddr(5) - 64 * 5;
      rig.writeL1std(0, 1, l2); // Span 1: only SID 0 of this L2 table
      run(rig, cmdCfgiSte(5, true));
      expect(translatePa(rig, 5, 0x7000)).toBe(0x7000);
      run(rig, cmdCfgiSte(5, false));
      const r = rig.smmu.translate(5, -1, 0x7000);
      expect(r.status).toBe(TXN_ABORT);
      expect(r.event?.id).toBe(C_BAD_STREAMID);
    });
  });

  describe('CFGI_CD / CFGI_CD_ALL', () => {
    /** SID 1 with a linear table of 4 CDs; SSIDs 1 and 2 translate VA0 through ASIDs 11 and 12. */
    function substreams() {
      const rig = new SmmuRig();
      const cds = rig.cdTable(0, 2);
      rig.writeSte(1, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 2, s1Fmt: 0, s2Vmid: 1 });
      const ssids = [1, 2].map((ssid) => {
        const t = rig.pageTable({ ...S1_TABLE, nonGlobal: true });
        const oldPage = alloc(rig, PAGE);
        mapOrThrow(t, VA[0], oldPage);
        cds.write(ssid, cdFor(t.root, 10 + ssid));
        const alt = rig.pageTable({ ...S1_TABLE, nonGlobal: true });
        const altPage = alloc(rig, PAGE);
        mapOrThrow(alt, VA[0], altPage);
        return {
          ssid,
          oldPa: oldPage + OFF,
          altPa: altPage + OFF,
          swap: () => cds.write(ssid, cdFor(alt.root, 20 + ssid)),
        };
      });
      const pas = () => ssids.map((s) => translatePa(rig, 1, VA[0] + OFF, s.ssid));
      expect(pas()).toEqual(ssids.map((s) => s.oldPa));
      for (const s of ssids) s.swap();
      expect(pas()).toEqual(ssids.map((s) => s.oldPa));
      return { rig, ssids, pas };
    }

    it('CFGI_CD(SID, SSID 1) refetches that CD only; SSID 2 and the STE stay cached', () => {
      const { rig, ssids, pas } = substreams();
      const steFetches = rig.smmu.stats.steFetches;
      run(rig, cmdCfgiCd(1, 1));
      expect(pas()).toEqual([ssids[0]!.altPa, ssids[1]!.oldPa]);
      expect(rig.smmu.stats.steFetches).toBe(steFetches);
    });

    it('CFGI_CD_ALL(SID) refetches every CD of the SID but keeps the STE', () => {
      const { rig, ssids, pas } = substreams();
      rig.writeSte(1, { config: 'abort' }); // not invalidated: the cached STE stays in use
      run(rig, cmdCfgiCdAll(1));
      expect(pas()).toEqual([ssids[0]!.altPa, ssids[1]!.altPa]);
    });

    it('CFGI_CD of another SID does not touch this SID’s CDs', () => {
      const { rig, ssids, pas } = substreams();
      run(rig, cmdCfgiCd(2, 1), cmdCfgiCdAll(3));
      expect(pas()).toEqual(ssids.map((s) => s.oldPa));
    });

    /**
     * A 2-level CD table (4KB leaves, 2^8 CDs): SSID 1 is reached through L1CD[0] → leaf A. Then,
     * without CFGI: A's CD 1 is rewritten (→ altA), and L1CD[0] is repointed at a new leaf B whose
     * CD 1 maps elsewhere (→ altB).
     */
    function twoLevelCd() {
      const rig = new SmmuRig();
      const cds = rig.cdTable(1, 8);
      rig.writeSte(1, { config: 's1', s1ContextPtr: cds.ptr, s1CdMax: 8, s1Fmt: 1, s2Vmid: 1 });
      const mkTable = (asid: number) => {
        const t = rig.pageTable({ ...S1_TABLE, nonGlobal: true });
        const p = alloc(rig, PAGE);
        mapOrThrow(t, VA[0], p);
        return { cd: encodeCd(cdFor(t.root, asid)), pa: p + OFF };
      };
      const orig = mkTable(11);
      const altA = mkTable(21);
      const altB = mkTable(31);
      cds.write(1, orig.cd);
      expect(translatePa(rig, 1, VA[0] + OFF, 1)).toBe(orig.pa);
      cds.write(1, altA.cd);
      const leafB = alloc(rig, 64 * 64);
      writeWords(rig.mem, leafB + 64, altB.cd);
      writeWords(rig.mem, cds.l1Addr(0), encodeL1cd(leafB));
      expect(translatePa(rig, 1, VA[0] + OFF, 1)).toBe(orig.pa);
      return { rig, altA, altB };
    }

    it('CFGI_CD Leaf = 1 refetches the CD but may keep the cached L1CD (the model keeps it)', () => {
      const { rig, altA } = twoLevelCd();
      run(rig, cmdCfgiCd(1, 1, true));
      expect(translatePa(rig, 1, VA[0] + OFF, 1)).toBe(altA.pa);
    });

    it('CFGI_CD Leaf = 0 also drops the L1CD: the CD is reached through the new leaf table', () => {
      const { rig, altB } = twoLevelCd();
      const l1 = rig.smmu.stats.l1cdFetches;
      run(rig, cmdCfgiCd(1, 1, false));
      expect(translatePa(rig, 1, VA[0] + OFF, 1)).toBe(altB.pa);
      expect(rig.smmu.stats.l1cdFetches).toBe(l1 + 1);
    });
  });

  describe('CFGI never touches the IOTLB, TLBI never touches the configuration caches', () => {
    const cfgis: [string, Uint32Array][] = [
      ['CFGI_STE', cmdCfgiSte(1)],
      ['CFGI_STE Leaf=0', cmdCfgiSte(1, false)],
      ['CFGI_STE_RANGE', cmdCfgiSteRange(1, 4)],
      ['CFGI_ALL', cmdCfgiAll()],
      ['CFGI_CD', cmdCfgiCd(1, 0)],
      ['CFGI_CD_ALL', cmdCfgiCdAll(1)],
    ];
    it.each(cfgis)(
      '%s: a TLB hit on the unchanged ASID is still served from the TLB (stale PA)',
      (_n, cmd) => {
        const { rig, one } = cfgScene();
        expect(one.pa()).toBe(one.oldPa);
        const fresh = alloc(rig, PAGE);
        remap(one.table, VA[0], fresh);
        const { hits, misses } = rig.smmu.iotlb.stats;
        const valid = rig.smmu.iotlb.countValid();
        run(rig, cmd);
        expect(rig.smmu.iotlb.countValid()).toBe(valid);
        expect(one.pa()).toBe(one.oldPa);
        expect(rig.smmu.iotlb.stats.hits).toBe(hits + 1);
        expect(rig.smmu.iotlb.stats.misses).toBe(misses);
      },
    );

    const tlbis: [string, Uint32Array][] = [
      ['TLBI_NSNH_ALL', cmdTlbiNsnhAll()],
      ['TLBI_NH_ALL', cmdTlbiNhAll(1)],
      ['TLBI_NH_ASID', cmdTlbiNhAsid(1, 1)],
      ['TLBI_NH_VA', cmdTlbiNhVa(1, 1, VA[0])],
      ['TLBI_NH_VAA', cmdTlbiNhVaa(1, VA[0])],
      ['TLBI_S12_VMALL', cmdTlbiS12Vmall(1)],
      ['TLBI_S2_IPA', cmdTlbiS2Ipa(1, VA[0])],
      ['TLBI_EL2_ALL', cmdTlbiEl2All()],
    ];
    it.each(tlbis)('%s: a changed STE/CD is still not used (no configuration refetch)', (_n, cmd) => {
      const { rig, one, two } = cfgScene();
      expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
      one.swapSte();
      two.swapCd();
      const { steFetches, cdFetches, l1stdFetches } = rig.smmu.stats;
      run(rig, cmd);
      // Any re-walk goes through the *cached* STE/CD: the old tables, which are unchanged.
      expect([one.pa(), two.pa()]).toEqual([one.oldPa, two.oldPa]);
      expect(rig.smmu.stats.steFetches).toBe(steFetches);
      expect(rig.smmu.stats.cdFetches).toBe(cdFetches);
      expect(rig.smmu.stats.l1stdFetches).toBe(l1stdFetches);
    });
  });
});

// ================================================================== 2. command errors

/** A page MSIs can be written to. */
function msiPage(rig: SmmuRig): number {
  return alloc(rig, PAGE);
}

const syncMsi = (addr: number, data: number): Uint32Array => cmdSync({ cs: 1, msiAddr: addr, msiData: data });

function withBits(cmd: Uint32Array, word: number, bits: number): Uint32Array {
  const w = Uint32Array.from(cmd);
  w[word] = (w[word]! | bits) >>> 0;
  return w;
}

const NO_S1: Partial<SmmuFeatures> = { stage1: false, hyp: false };
const NO_S2: Partial<SmmuFeatures> = { stage2: false, hyp: false };

describe('command errors (§4.1.3, §7.1): CERROR_ILL stops the queue at the bad command', () => {
  const illegal: [string, Partial<SmmuFeatures>, () => Uint32Array][] = [
    ['reserved opcode 0x00', {}, () => cmdRaw(0x00)],
    ['reserved opcode 0x08', {}, () => cmdRaw(0x08)],
    ['reserved opcode 0x0b (not listed, treated as reserved)', {}, () => cmdRaw(0x0b)],
    ['reserved opcode 0x7f', {}, () => cmdRaw(0x7f)],
    ['IMPLEMENTATION DEFINED opcode 0x80 (not implemented)', {}, () => cmdRaw(0x80)],
    ['CFGI_CD without stage 1', NO_S1, () => cmdCfgiCd(1, 0)],
    ['CFGI_CD_ALL without stage 1', NO_S1, () => cmdCfgiCdAll(1)],
    ['TLBI_NH_ALL without stage 1', NO_S1, () => cmdTlbiNhAll(0)],
    ['TLBI_NH_VA without stage 1', NO_S1, () => cmdTlbiNhVa(0, 1, 0x1000)],
    ['TLBI_S2_IPA without stage 2', NO_S2, () => cmdTlbiS2Ipa(1, 0x1000)],
    ['TLBI_S12_VMALL without stage 2', NO_S2, () => cmdTlbiS12Vmall(1)],
    ['CMD_SYNC with CS = 0b11', {}, () => cmdSync({ cs: 3 })],
    ['TLBI_NH_VA TG=4KB with NUM = SCALE = TTL = 0', {}, () => cmdTlbiNhVa(1, 1, 0x1000, { granule: 12 })],
    ['TLBI_S2_IPA TG=64KB with NUM = SCALE = TTL = 0', {}, () => cmdTlbiS2Ipa(1, 0x10000, { granule: 16 })],
    [
      'TLBI_NH_VA TG=16KB TTL=1 single granule (TTL treated as 0 without LPA2)',
      {},
      () => cmdTlbiNhVa(1, 1, 0x4000, { granule: 14, ttl: 1 }),
    ],
    ['TLBI_NH_ALL with the RES0 ASID field set', {}, () => cmdRaw(0x10, [[CMD_0_ASID, 5]])],
    ['CMD_SYNC with a RES0 bit (dw0[8]) set', {}, () => withBits(cmdSync(), 0, 1 << 8)],
    ['CFGI_STE with a RES0 bit (dw1[5]) set', {}, () => withBits(cmdCfgiSte(1), 2, 1 << 5)],
    ['TLBI_NH_VA with NUM set but TG = 0 (NUM is RES0)', {}, () => cmdRaw(0x12, [[CMD_0_NUM, 3]])],
    ['CFGI_STE with SSec = 1 on the Non-secure queue', {}, () => cmdRaw(0x03, [[CMD_0_SSEC, 1]])],
    [
      'CFGI_STE with SSec = 1 even when RES0 fields are ignored',
      { reservedBits: 'ignore' },
      () => cmdRaw(0x03, [[CMD_0_SSEC, 1]]),
    ],
    ['CFGI_STE_RANGE with SSec = 1', {}, () => withBits(cmdCfgiAll(), 0, 1 << 10)],
    ['ATC_INV without ATS', {}, () => cmdRaw(0x40)],
    ['PRI_RESP without PRI', {}, () => cmdRaw(0x41)],
    ['RESUME without stalls (STALL_MODEL = 0b01)', {}, () => cmdRaw(0x44)],
    ['STALL_TERM without stalls', {}, () => cmdRaw(0x45)],
    ['TLBI_EL2_ALL without Hyp', { hyp: false }, () => cmdTlbiEl2All()],
    ['TLBI_EL2_VA without Hyp (stage 2 absent)', NO_S2, () => cmdTlbiEl2Va(1, 0x1000)],
    ['TLBI_EL3_ALL on the Non-secure queue', {}, () => cmdRaw(0x18)],
    ['TLBI_S_EL2_ALL (Secure) on the Non-secure queue', {}, () => cmdRaw(0x50)],
    ['CFGI_VMS_PIDM without MPAM', {}, () => cmdRaw(0x07)],
  ];

  it.each(illegal)('%s → CERROR_ILL, and the recovery protocol resumes after it', (_n, features, bad) => {
    const rig = new SmmuRig({ features });
    const msi = msiPage(rig);
    const data = () => rig.msis.map((m) => m.data);
    // SYNC(1) | bad | SYNC(2)
    expect(rig.submit(syncMsi(msi, 1), bad(), syncMsi(msi, 2))).toBe(CERROR_ILL);
    const s = rig.cmdqState();
    expect(s).toEqual({ prod: 3, cons: 1, err: CERROR_ILL }); // CONS points at the bad command
    expect(cmdqErrorActive(rig)).toBe(true);
    expect(rig.irqs).toContain('gerror');
    expect(data()).toEqual([1]); // the command after it was not executed
    // More PROD writes while the error is active consume nothing.
    rig.submit(syncMsi(msi, 3));
    expect(rig.cmdqState()).toEqual({ prod: 4, cons: 1, err: CERROR_ILL });
    expect(data()).toEqual([1]);
    // Recovery: replace the bad command with a CMD_SYNC in memory, then acknowledge via GERRORN.
    writeWords(rig.mem, rig.cmdqBase + 16 * s.cons, syncMsi(msi, 9));
    rig.ackGerror();
    expect(cmdqErrorActive(rig)).toBe(false);
    expect(data()).toEqual([1, 9, 2, 3]);
    expect(rig.cmdqState().cons).toBe(4);
    expect(rig.smmu.read32(SMMU_GERROR)).toBe(rig.smmu.read32(SMMU_GERRORN));
  });

  it('the GERROR interrupt is raised once per activation, not for later PROD writes', () => {
    const rig = new SmmuRig();
    rig.submit(cmdRaw(0x08));
    rig.submit(cmdSync(), cmdSync());
    expect(rig.irqs.filter((i) => i === 'gerror')).toHaveLength(1);
  });

  it('commands before the bad one in the same batch take effect', () => {
    const z = nsZoo();
    expect(observe(z)).toEqual(expected(z, []));
    z.change();
    expect(z.rig.submit(cmdTlbiNhAsid(1, 1), cmdRaw(0x7f), cmdTlbiNhAsid(1, 2))).toBe(CERROR_ILL);
    expect(observe(z)).toEqual(expected(z, both('A')));
  });

  it('software may withdraw commands by moving PROD back to CONS while the error is active', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    expect(rig.submit(cmdRaw(0x08), syncMsi(msi, 5))).toBe(CERROR_ILL);
    rig.smmu.write32(SMMU_CMDQ_PROD, 0); // withdraw both
    rig.ackGerror();
    expect(rig.cmdqState()).toMatchObject({ prod: 0, cons: 0 });
    expect(rig.msis).toEqual([]);
    // (CONS.ERR is UNKNOWN once no error is active, so only CONS and the effects are checked.)
    rig.submit(syncMsi(msi, 6));
    expect(cmdqErrorActive(rig)).toBe(false);
    expect(rig.cmdqState()).toMatchObject({ prod: 1, cons: 1 });
    expect(rig.msis.map((m) => m.data)).toEqual([6]);
  });

  it('software may skip the bad command by disabling CMDQEN and rewriting CONS', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    expect(rig.submit(cmdRaw(0x08), syncMsi(msi, 5))).toBe(CERROR_ILL);
    rig.smmu.write32(SMMU_CMDQ_CONS, 1); // ignored: CONS is read-only while CMDQEN = 1
    expect(rig.cmdqState().cons).toBe(0);
    rig.smmu.write32(SMMU_CR0, CR0_EVENTQEN | CR0_SMMUEN);
    rig.smmu.write32(SMMU_CMDQ_CONS, 1);
    rig.ackGerror();
    rig.smmu.write32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    expect(rig.msis.map((m) => m.data)).toEqual([5]);
    expect(rig.cmdqState().cons).toBe(2);
  });

  describe("with reservedBits: 'ignore' the same commands are accepted", () => {
    it('TLBI_NH_ALL with RES0 ASID bits acts as TLBI_NH_ALL', () => {
      const cmd = cmdRaw(CMD_TLBI_NH_ALL, [
        [CMD_0_VMID, 1],
        [CMD_0_ASID, 5],
      ]);
      expect(new SmmuRig().submit(cmd)).toBe(CERROR_ILL);
      const z = nsZoo({ reservedBits: 'ignore' });
      expect(afterCommands(z, cmd)).toEqual(expected(z, both('A', 'B', 'G', 'N')));
    });

    it('CMD_SYNC with a RES0 bit is consumed and signals', () => {
      const rig = new SmmuRig({ features: { reservedBits: 'ignore' } });
      const msi = msiPage(rig);
      expect(rig.submit(withBits(syncMsi(msi, 0xabc), 0, 1 << 8))).toBe(CERROR_NONE);
      expect(rig.smmu.mem.read32(msi)).toBe(0xabc);
    });

    it('TLBI_NH_VA with NUM set but TG = 0 acts as a single-address invalidation', () => {
      const zi = nsZoo({ reservedBits: 'ignore' });
      const cmd = withBits(cmdTlbiNhVa(1, 1, VA[0]), 0, 3 << 12);
      expect(afterCommands(zi, cmd)).toEqual(expected(zi, ['A0', 'G0']));
    });
  });

  it('a command fetch abort → CERROR_ABT; CONS stays on it; recovery re-fetches it', () => {
    const rig = new SmmuRig({ cmdqLog2: 8 }); // a whole 4KB page of queue
    const msi = msiPage(rig);
    writeWords(rig.mem, rig.cmdqBase, syncMsi(msi, 1));
    writeWords(rig.mem, rig.cmdqBase + 16, syncMsi(msi, 2));
    rig.mem.markAbsent(rig.cmdqBase, PAGE);
    rig.smmu.write32(SMMU_CMDQ_PROD, 2);
    expect(rig.cmdqState()).toEqual({ prod: 2, cons: 0, err: CERROR_ABT });
    expect(cmdqErrorActive(rig)).toBe(true);
    expect(rig.irqs).toContain('gerror');
    expect(rig.msis).toEqual([]);
    rig.mem.markPresent(rig.cmdqBase, PAGE);
    rig.ackGerror();
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2]);
    expect(rig.cmdqState().cons).toBe(2);
  });
});

// ================================================================== 3. CMD_SYNC

describe('CMD_SYNC completion signals (§4.7.3)', () => {
  it('CS = SIG_NONE completes with no interrupt, MSI or event', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    expect(rig.submit(cmdSync({ cs: 0, msiAddr: msi, msiData: 7 }))).toBe(CERROR_NONE);
    expect(rig.cmdqState()).toEqual({ prod: 1, cons: 1, err: 0 });
    expect(rig.msis).toEqual([]);
    expect(rig.irqs).toEqual([]);
    expect(rig.smmu.mem.read32(msi)).toBe(0);
    expect(rig.smmu.stats.syncs).toBe(1);
  });

  it('CS = SIG_IRQ with MSIAddr ≠ 0 writes MSIData to MSIAddr', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    expect(rig.submit(syncMsi(msi + 0x10, 0xdead_beef))).toBe(CERROR_NONE);
    expect(rig.smmu.mem.read32(msi + 0x10)).toBe(0xdead_beef);
    expect(rig.msis).toEqual([{ addr: msi + 0x10, data: 0xdead_beef }]);
  });

  it('CS = SIG_IRQ also pulses the wired CMD_SYNC line whatever MSIAddr is', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    rig.submit(syncMsi(msi, 1));
    expect(rig.irqs).toEqual(['cmd_sync']);
  });

  it('CS = SIG_IRQ with MSIAddr = 0 pulses the wired CMD_SYNC line and writes nothing', () => {
    const rig = new SmmuRig();
    expect(rig.submit(cmdSync({ cs: 1, msiAddr: 0, msiData: 5 }))).toBe(CERROR_NONE);
    expect(rig.irqs).toEqual(['cmd_sync']);
    expect(rig.msis).toEqual([]);
  });

  it('without MSI support (IDR0.MSI = 0) MSIAddr is ignored: wired line only, no memory write', () => {
    const rig = new SmmuRig({ features: { msi: false } });
    const msi = msiPage(rig);
    expect(rig.submit(syncMsi(msi, 5))).toBe(CERROR_NONE);
    expect(rig.irqs).toEqual(['cmd_sync']);
    expect(rig.msis).toEqual([]);
    expect(rig.smmu.mem.read32(msi)).toBe(0);
  });

  it('CS = SIG_SEV sends a wake-up event', () => {
    const rig = new SmmuRig();
    expect(rig.submit(cmdSync({ cs: 2 }))).toBe(CERROR_NONE);
    expect(rig.irqs).toEqual(['sev']);
    expect(rig.msis).toEqual([]);
  });

  it('CS = SIG_SEV without IDR0.SEV behaves as SIG_NONE', () => {
    const rig = new SmmuRig({ features: { sev: false } });
    expect(rig.submit(cmdSync({ cs: 2 }))).toBe(CERROR_NONE);
    expect(rig.irqs).toEqual([]);
  });

  it('the completion signal is observable only after CONS has moved past the CMD_SYNC', () => {
    const seen: [signal: string, cons: number][] = [];
    const hooks: SmmuHooks = {
      msi: () => seen.push(['msi', rig.smmu.read32(SMMU_CMDQ_CONS)]),
      irq: (line) => seen.push([line, rig.smmu.read32(SMMU_CMDQ_CONS)]),
    };
    const rig: SmmuRig = new SmmuRig({}, hooks);
    const msi = msiPage(rig);
    // Slots: 0 TLBI, 1 SYNC(IRQ, MSI), 2 SYNC(IRQ, no MSI), 3 SYNC(SEV).
    rig.submit(cmdTlbiNsnhAll(), syncMsi(msi, 1), cmdSync({ cs: 1 }), cmdSync({ cs: 2 }));
    expect(seen).toEqual([
      ['msi', 2],
      ['cmd_sync', 2],
      ['cmd_sync', 3],
      ['sev', 4],
    ]);
  });

  it('a CMD_SYNC MSI to an absent address activates GERROR.MSI_CMDQ_ABT_ERR; the SYNC is still consumed', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    rig.mem.markAbsent(msi, PAGE);
    expect(rig.submit(syncMsi(msi, 1))).toBe(CERROR_NONE);
    const active = rig.smmu.read32(SMMU_GERROR) ^ rig.smmu.read32(SMMU_GERRORN);
    expect(active & GERROR_MSI_CMDQ_ABT_ERR).toBe(GERROR_MSI_CMDQ_ABT_ERR);
    expect(active & GERROR_CMDQ_ERR).toBe(0);
    expect(rig.cmdqState()).toEqual({ prod: 1, cons: 1, err: 0 });
    expect(rig.msis).toEqual([]);
    expect(rig.irqs).toContain('gerror');
    // The queue keeps working.
    rig.mem.markPresent(msi, PAGE);
    expect(rig.submit(syncMsi(msi, 2))).toBe(CERROR_NONE);
    expect(rig.smmu.mem.read32(msi)).toBe(2);
  });

  it('CMD_SYNCs complete in order', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    rig.submit(...[1, 2, 3, 4, 5].map((d) => syncMsi(msi + 4 * d, d)));
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3, 4, 5]);
  });
});

// ================================================================== 4. queue mechanics

/** Writes a command in slot `index` of the queue (no PROD update). */
function put(rig: SmmuRig, index: number, cmd: Uint32Array): void {
  writeWords(rig.mem, rig.cmdqBase + 16 * index, cmd);
}

const CR0_ON = CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN;
const CR0_CMDQ_OFF = CR0_EVENTQEN | CR0_SMMUEN;

describe('command queue mechanics (§3.5.1, §6.3.26-28)', () => {
  it('PROD/CONS wrap: a 4-entry queue over three laps keeps index in [1:0] and the wrap flag in bit 2', () => {
    const rig = new SmmuRig({ cmdqLog2: 2 });
    const msi = msiPage(rig);
    const seen: [number, number][] = [];
    for (let i = 1; i <= 12; i++) {
      expect(rig.submit(syncMsi(msi, i))).toBe(CERROR_NONE);
      seen.push([rig.smmu.read32(SMMU_CMDQ_PROD), rig.smmu.read32(SMMU_CMDQ_CONS)]);
    }
    const want = [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4].map((v): [number, number] => [v, v]);
    expect(seen).toEqual(want);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('a batch that crosses the end of the queue is consumed in order', () => {
    const rig = new SmmuRig({ cmdqLog2: 2 });
    const msi = msiPage(rig);
    rig.submit(cmdSync(), cmdSync(), cmdSync()); // CONS = PROD = 3
    rig.smmu.write32(SMMU_CR0, CR0_CMDQ_OFF);
    put(rig, 3, syncMsi(msi, 1));
    put(rig, 0, syncMsi(msi, 2));
    put(rig, 1, syncMsi(msi, 3));
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b110); // wrap 1, index 2
    expect(rig.msis).toEqual([]);
    rig.smmu.write32(SMMU_CR0, CR0_ON);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(0b110);
  });

  it('a full queue (equal indexes, different wraps) holds 2^QS commands, all consumed', () => {
    const rig = new SmmuRig({ cmdqLog2: 2 });
    const msi = msiPage(rig);
    rig.smmu.write32(SMMU_CR0, CR0_CMDQ_OFF);
    for (let i = 0; i < 4; i++) put(rig, i, syncMsi(msi, i + 1));
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b100);
    // Full: RD == WR, RD_WRAP != WR_WRAP.
    expect([rig.smmu.read32(SMMU_CMDQ_PROD), rig.smmu.read32(SMMU_CMDQ_CONS)]).toEqual([0b100, 0b000]);
    rig.smmu.write32(SMMU_CR0, CR0_ON);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3, 4]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(0b100);
    // And full again from the other wrap, consumed at once with the queue enabled.
    for (let i = 0; i < 4; i++) put(rig, i, syncMsi(msi, i + 5));
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b000);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(0b000);
  });

  it('an inconsistent PROD (behind CONS) stops consumption; disabling and re-enabling with a consistent PROD resumes', () => {
    const rig = new SmmuRig({ cmdqLog2: 2 });
    const msi = msiPage(rig);
    rig.submit(syncMsi(msi, 1), syncMsi(msi, 2)); // CONS = 2
    put(rig, 2, syncMsi(msi, 3));
    put(rig, 3, syncMsi(msi, 4));
    put(rig, 0, syncMsi(msi, 5));
    put(rig, 1, syncMsi(msi, 6));
    // WR < RD with equal wraps.
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b001);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(2);
    // WR > RD with different wraps.
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b111);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(2);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2]);
    expect(cmdqErrorActive(rig)).toBe(false);
    rig.smmu.write32(SMMU_CR0, CR0_CMDQ_OFF);
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b011);
    rig.smmu.write32(SMMU_CR0, CR0_ON);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(3);
  });

  it('CMDQEN = 0 stops consumption; re-enabling resumes from CONS in order', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    rig.smmu.write32(SMMU_CR0, CR0_CMDQ_OFF);
    expect(rig.submit(syncMsi(msi, 1), syncMsi(msi, 2))).toBe(CERROR_NONE);
    expect(rig.cmdqState()).toEqual({ prod: 2, cons: 0, err: 0 });
    expect(rig.msis).toEqual([]);
    rig.smmu.write32(SMMU_CR0, CR0_ON);
    expect(rig.cmdqState()).toEqual({ prod: 2, cons: 2, err: 0 });
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2]);
  });

  it('CMDQEN = 0 does not acknowledge an active command error; it is still active after re-enabling', () => {
    const rig = new SmmuRig();
    const msi = msiPage(rig);
    expect(rig.submit(cmdRaw(0x08), syncMsi(msi, 1))).toBe(CERROR_ILL);
    rig.smmu.write32(SMMU_CR0, CR0_CMDQ_OFF);
    rig.smmu.write32(SMMU_CR0, CR0_ON);
    expect(cmdqErrorActive(rig)).toBe(true);
    expect(rig.msis).toEqual([]);
  });

  it('CMDQ_BASE.LOG2SIZE above IDR1.CMDQS is capped for use but reads back as written', () => {
    // The rig programs LOG2SIZE = 4 on an SMMU whose CMDQS is 2: the queue has 4 entries.
    const rig = new SmmuRig({ cmdqLog2: 4, features: { cmdqLog2Max: 2 } });
    const msi = msiPage(rig);
    expect((rig.smmu.read32(SMMU_IDR1) >>> 21) & 0x1f).toBe(2);
    expect(rig.smmu.read32(SMMU_CMDQ_BASE) & 0x1f).toBe(4);
    for (let i = 0; i < 3; i++) put(rig, i, syncMsi(msi, i + 1));
    rig.smmu.write32(SMMU_CMDQ_PROD, 3);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(3);
    // Slot 3, then slot 0 again: with 4 entries PROD = wrap 1 | index 1 = 0b101.
    put(rig, 3, syncMsi(msi, 4));
    put(rig, 0, syncMsi(msi, 5));
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b101);
    expect(rig.msis.map((m) => m.data)).toEqual([1, 2, 3, 4, 5]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(0b101); // bits above the wrap bit read as zero
  });

  it('PROD bits above the wrap bit have no effect', () => {
    const rig = new SmmuRig({ cmdqLog2: 2 });
    const msi = msiPage(rig);
    put(rig, 0, syncMsi(msi, 1));
    rig.smmu.write32(SMMU_CMDQ_PROD, 0b1_0000_0001);
    expect(rig.msis.map((m) => m.data)).toEqual([1]);
    expect(rig.smmu.read32(SMMU_CMDQ_CONS)).toBe(1);
  });
});

// ================================================================== 5. property

describe('property: random valid command sequences', () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const sidArb = fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffff_ffff }));
  const ssidArb = fc.integer({ min: 0, max: 0xf_ffff });
  const addrArb = fc.integer({ min: 0, max: 2 ** 36 - 1 }).map((p) => p * PAGE);
  const rangeArb: fc.Arbitrary<TlbiRange> = fc.oneof(
    fc.record({ leaf: fc.boolean() }),
    fc
      .record({
        leaf: fc.boolean(),
        granule: fc.constantFrom(12 as const, 14 as const, 16 as const),
        num: fc.integer({ min: 0, max: 31 }),
        scale: fc.integer({ min: 0, max: 31 }),
        ttl: fc.integer({ min: 0, max: 3 }),
      })
      // TG != 0 with NUM = SCALE = 0 and an effective TTL of 0 is the reserved (illegal) encoding.
      .filter((r) => r.num !== 0 || r.scale !== 0 || (r.ttl !== 0 && !(r.granule === 14 && r.ttl === 1))),
  );
  const cmdArb = (msi: number): fc.Arbitrary<Uint32Array> =>
    fc.oneof(
      fc.tuple(sidArb, fc.boolean()).map(([s, l]) => cmdCfgiSte(s, l)),
      fc.tuple(sidArb, fc.integer({ min: 0, max: 31 })).map(([s, r]) => cmdCfgiSteRange(s, r)),
      fc.constant(cmdCfgiAll()),
      fc.tuple(sidArb, ssidArb, fc.boolean()).map(([s, ss, l]) => cmdCfgiCd(s, ss, l)),
      sidArb.map((s) => cmdCfgiCdAll(s)),
      fc.tuple(sidArb, fc.integer({ min: -1, max: 0xf_ffff })).map(([s, ss]) => cmdPrefetchConfig(s, ss)),
      u16.map((v) => cmdTlbiNhAll(v)),
      fc.tuple(u16, u16).map(([v, a]) => cmdTlbiNhAsid(v, a)),
      fc.tuple(u16, u16, addrArb, rangeArb).map(([v, a, va, r]) => cmdTlbiNhVa(v, a, va, r)),
      fc.tuple(u16, addrArb, rangeArb).map(([v, va, r]) => cmdTlbiNhVaa(v, va, r)),
      fc.tuple(u16, addrArb, rangeArb).map(([v, ipa, r]) => cmdTlbiS2Ipa(v, ipa, r)),
      u16.map((v) => cmdTlbiS12Vmall(v)),
      fc.constant(cmdTlbiNsnhAll()),
      fc.constant(cmdTlbiEl2All()),
      u16.map((a) => cmdTlbiEl2Asid(a)),
      fc.tuple(u16, addrArb, rangeArb).map(([a, va, r]) => cmdTlbiEl2Va(a, va, r)),
      fc.tuple(addrArb, rangeArb).map(([va, r]) => cmdTlbiEl2Vaa(va, r)),
      fc
        .tuple(fc.integer({ min: 0, max: 2 }), fc.boolean(), fc.integer({ min: 0, max: 0xffff_ffff }))
        .map(([cs, useMsi, data]) => cmdSync({ cs, msiAddr: useMsi ? msi : 0, msiData: data })),
    );

  it('never throw, never move CONS beyond PROD, and leave CONS == PROD after each batch + CMD_SYNC', () => {
    const MSI = 0x4ff0_0000;
    fc.assert(
      fc.property(
        fc.array(fc.array(cmdArb(MSI), { maxLength: 12 }), { minLength: 1, maxLength: 5 }),
        (batches) => {
          const rig = new SmmuRig({ cmdqLog2: 2 });
          const st = s1Stream(rig, 1, { vmid: 1, asid: 1 });
          const p1 = alloc(rig, PAGE);
          mapOrThrow(st.table, VA[0], p1);
          const s2 = s2Stream(rig, 2, 2);
          const p2 = alloc(rig, PAGE);
          mapOrThrow(s2.table, 0x1000_0000, p2);
          const mask = 0b111;
          for (const batch of batches) {
            expect(translatePa(rig, 1, VA[0] + OFF)).toBe(p1 + OFF);
            expect(translatePa(rig, 2, 0x1000_0000 + OFF)).toBe(p2 + OFF);
            for (const c of batch) {
              expect(rig.submit(c)).toBe(CERROR_NONE);
              const prod = rig.smmu.read32(SMMU_CMDQ_PROD) & mask;
              const cons = rig.smmu.read32(SMMU_CMDQ_CONS) & mask;
              // Entries outstanding = (PROD - CONS) mod 2^(QS+1), never more than the queue holds.
              expect((prod - cons + 8) % 8).toBeLessThanOrEqual(4);
            }
            expect(rig.submit(cmdSync())).toBe(CERROR_NONE);
            const s = rig.cmdqState();
            expect(s.cons).toBe(s.prod & mask);
            expect(cmdqErrorActive(rig)).toBe(false);
          }
          // Invalidations never corrupt a translation: refills walk the unchanged tables.
          expect(translatePa(rig, 1, VA[0] + OFF)).toBe(p1 + OFF);
          expect(translatePa(rig, 2, 0x1000_0000 + OFF)).toBe(p2 + OFF);
        },
      ),
      { numRuns: 150 },
    );
  });
});

/**
 * Memory images: byte-exact coverage (absent outside), later images winning on overlap, read
 * recording, and dumps that leave out pages marked absent. Plus a stage-2-only stream with
 * a 40-bit IPA (two concatenated level-1 tables), to hold the walk labeller to another geometry.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hex } from '../../arch/bits.ts';
import { ACCESS_WRITE } from '../../arch/vmsa.ts';
import { PAGE_SIZE, PhysMem } from '../../hw/memory.ts';
import { SmmuRig } from '../../hw/smmuv3/rig.ts';
import { DmaResult, TXN_OK } from '../../hw/smmuv3/smmu.ts';
import { dumpImages, ImageMemory, inspect, readImages } from './index.ts';

describe('ImageMemory', () => {
  it('serves image bytes and reports everything else absent, byte-exactly', () => {
    const m = new ImageMemory([{ base: 0x1000, bytes: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) }]);
    expect(m.read(0x1000, 9)).toEqual(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(m.read(0x1008, 2)).toBeUndefined(); // past the end, same page
    expect(m.read(0xfff, 1)).toBeUndefined();
    const out = new Uint32Array(2);
    expect(m.read64(0x1000, out)).toBe(true);
    expect([...out]).toEqual([0x0403_0201, 0x0807_0605]);
    expect(m.read64(0x1008, out)).toBe(false);
    expect(m.covered()).toEqual([{ base: 0x1000, size: 9 }]);
  });

  it('the later image wins where images overlap, zeros included', () => {
    const m = new ImageMemory([
      { base: 0x2000, bytes: new Uint8Array(16).fill(0xaa) },
      { base: 0x2008, bytes: new Uint8Array(16) },
    ]);
    expect([...m.read(0x2000, 24)!]).toEqual([...new Array(8).fill(0xaa), ...new Array(16).fill(0)]);
    expect(m.covered()).toEqual([{ base: 0x2000, size: 24 }]);
  });

  it('records reads in order, absent ones as null', () => {
    const m = new ImageMemory([{ base: 0, bytes: new Uint8Array(16).fill(1) }]);
    const out = new Uint32Array(2);
    const { result, reads } = m.record(() => [m.read64(8, out), m.read64(16, out), m.read(0, 4)]);
    expect(result[0]).toBe(true);
    expect(result[1]).toBe(false);
    expect(reads.map((r) => [r.addr, r.size, r.bytes === null])).toEqual([
      [8, 8, false],
      [16, 8, true],
      [0, 4, false],
    ]);
    m.read(0, 1);
    expect(reads).toHaveLength(3); // recording ended with record()
  });
});

describe('dumpImages', () => {
  it('writes one file per contiguous run and leaves absent pages out', () => {
    const mem = new PhysMem({ name: 'ram' });
    mem.write32(0x1_0000, 0x1234_5678);
    mem.write32(0x1_1000, 0x9abc_def0);
    mem.write32(0x1_2000, 0x1111_2222);
    mem.write32(0x5_0000, 0x3333_4444);
    mem.markAbsent(0x1_1000, PAGE_SIZE);
    const dir = mkdtempSync(join(tmpdir(), 'vsva-dump-'));
    try {
      const specs = dumpImages(mem, dir);
      expect(specs.map((s) => s.slice(s.lastIndexOf('@') + 1))).toEqual(['0x10000', '0x12000', '0x50000']);
      const imgs = readImages(specs);
      expect(imgs.ok).toBe(true);
      if (!imgs.ok) return;
      const m = new ImageMemory(imgs.value);
      expect(m.read32(0x1_0000)).toBe(0x1234_5678);
      expect(m.read32(0x1_1000)).toBe(-1);
      expect(m.read32(0x1_2000)).toBe(0x1111_2222);
      expect(m.read32(0x5_0000)).toBe(0x3333_4444);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a stage-2-only stream with concatenated start tables', () => {
  it('labels a walk with concatenated start tables and agrees with the live SMMU', () => {
    const rig = new SmmuRig({ sidLog2: 6 }); // linear stream table
    const s2 = rig.pageTable({ stage: 2, granule: 12, iasBits: 40, oasBits: 48 });
    expect(s2.map(0xa2_3456_0000, 0x5000_0000, 0x1000, { read: true, write: true }).ok).toBe(true);
    rig.writeSte(3, {
      config: 's2',
      s2Vmid: 9,
      s2T0sz: 24,
      s2Sl0: s2.sl0,
      s2Granule: 12,
      s2PsBits: 48,
      s2Ttb: s2.root,
    });
    const iova = 0xa2_3456_0321;
    const out = new DmaResult();
    const before = rig.smmu.stats.descReads;
    rig.smmu.transact(
      { streamId: 3, substreamId: -1, iova, size: 4, access: ACCESS_WRITE, privileged: false },
      out,
    );
    expect(out.status).toBe(TXN_OK);
    const mem = rig.mem;
    const images = mem.backedPages().map((p) => ({ base: p, bytes: mem.read(p, PAGE_SIZE)! }));
    const r = inspect({
      images,
      registers: { STRTAB_BASE: rig.strtabBase, STRTAB_BASE_CFG: 6 },
      query: { sid: 3, iova, access: 'write' },
    });
    expect(r.problems).toEqual([]);
    expect(r.streamTable!.format).toBe('linear');
    expect(r.cdTable).toBeNull();
    const t = r.translation!;
    expect(t.descReads).toBe(rig.smmu.stats.descReads - before);
    expect(t.stage1).toBeNull();
    expect(t.stage2).toMatchObject({ granule: '4KB', inputBits: 40, startLevel: 1 });
    expect(t.stage2!.concatenated).toBe(2); // 2^(40 - 30) entries = two 512-entry tables
    expect(t.reads.map((s) => [s.walk, s.level, s.kind])).toEqual([
      ['S2', 1, 'table'],
      ['S2', 2, 'table'],
      ['S2', 3, 'page'],
    ]);
    expect(t.reads[0]!.index).toBe(Number(BigInt(iova) >> 30n)); // above 511: the second table
    expect(t.result.ok && t.result.pa).toBe(hex(out.firstPa));
  });
});

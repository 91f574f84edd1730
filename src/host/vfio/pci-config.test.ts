/**
 * Tests of vfio-pci's configuration-space virtualisation (seed-spec §7.2–§7.3) against the fake
 * device: the standard and extended chains a user walks, the PASID capability with the seed patch
 * (visible, virtual header, device body, writes dropped) and without it (unlinked, still raw at its
 * offset), hidden capabilities first at 0x100 and everywhere, BAR sizing, Command/INTx, FLR, power
 * state, MRRS, AER, MSI, the length computations, access splitting, errors that change nothing,
 * reset, and fast-check properties: guest writes never change read-only bits and never write
 * virtualised bits to the device.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SECPCI,
  pciExtCapHeader,
} from '../../hw/pci/regs.ts';
import { EFAULT, EINVAL } from '../../uapi/errno.ts';
import {
  FAKE_BAR0_ADDR,
  FAKE_BAR2_ADDR,
  FAKE_DEVICE_ID,
  FAKE_PASID_CAP,
  FAKE_ROM_ADDR,
  FAKE_VENDOR_ID,
  type FakeCapSpec,
  FakePciDevice,
  type FakePciDeviceOptions,
} from './fake-pci-device.ts';
import {
  PCI_CAP_ID_BASIC,
  PCI_CAP_ID_INVALID,
  PCI_CAP_LENGTH,
  PCI_EXT_CAP_LENGTH_PATCHED,
  PCI_EXT_CAP_LENGTH_PRE_PATCH,
  type PciCoreOps,
  pciFindCapability,
  pciFindExtCapability,
  pciReadBases,
  VFIO_PCI_EXT_CAP_ID_MAX,
  VfioPciConfig,
  type VfioPciConfigOptions,
} from './pci-config.ts';

// ---------------------------------------------------------------- helpers

/** The standard chain as a guest walks it, through reads only. */
function walkStd(c: VfioPciConfig): { id: number; offset: number }[] {
  const out: { id: number; offset: number }[] = [];
  if (!(c.read(0x06, 2) & 0x10)) return out;
  let pos = c.read(0x34, 1);
  for (let loops = 48; pos && loops > 0; loops--) {
    out.push({ id: c.read(pos, 1), offset: pos });
    pos = c.read(pos + 1, 1);
  }
  return out;
}

/** The extended chain as a guest walks it (stops at a zero header or a null next). */
function walkExt(c: VfioPciConfig): { id: number; version: number; offset: number; next: number }[] {
  const out: { id: number; version: number; offset: number; next: number }[] = [];
  let pos = 0x100;
  for (let loops = 960; pos >= 0x100 && loops > 0; loops--) {
    const h = c.read(pos, 4);
    if (h === 0) break;
    out.push({ id: h & 0xffff, version: (h >>> 16) & 0xf, offset: pos, next: (h >>> 20) & 0xffc });
    pos = (h >>> 20) & 0xffc;
  }
  return out;
}

function spyCore(): { calls: string[]; core: PciCoreOps } {
  const calls: string[] = [];
  return {
    calls,
    core: {
      setPowerState: (s) => calls.push(`power ${s}`),
      resetFunction: () => calls.push('reset'),
      setReadrq: (b) => calls.push(`readrq ${b}`),
      intxMask: () => calls.push('intx mask'),
      intxUnmask: () => calls.push('intx unmask'),
      zapMmaps: () => calls.push('zap'),
    },
  };
}

function setup(dev: FakePciDeviceOptions = {}, opts: VfioPciConfigOptions = {}) {
  const d = new FakePciDevice(dev);
  const c = new VfioPciConfig(d, opts);
  d.writes.length = 0; // BAR sizing at construction
  return { d, c };
}

function readAll(c: VfioPciConfig): Uint8Array {
  const out = new Uint8Array(c.cfgSize);
  expect(c.rw(out, c.cfgSize, 0, false)).toBe(c.cfgSize);
  return out;
}

/** Custom capability specs for the length tests. */
const stdCap = (name: string, id: number, size: number, regs: FakeCapSpec['regs'] = []): FakeCapSpec => ({
  name,
  id,
  size,
  regs: [{ off: 0, size: 1, init: id }, ...regs],
});
const extCap = (name: string, id: number, size: number, regs: FakeCapSpec['regs'] = []): FakeCapSpec => ({
  name,
  id,
  version: 1,
  size,
  regs,
});

// ---------------------------------------------------------------- tables

describe('length tables', () => {
  it('pci_ext_cap_length: PASID is 0 before the patch and 8 with it; the rest as §7.3', () => {
    expect(PCI_EXT_CAP_LENGTH_PRE_PATCH[PCI_EXT_CAP_ID_PASID]).toBe(0);
    expect(PCI_EXT_CAP_LENGTH_PATCHED[PCI_EXT_CAP_ID_PASID]).toBe(8);
    const fixed: [number, number][] = [
      [0x01, 0x2c], // ERR → PCI_ERR_ROOT_COMMAND
      [0x03, 12], // DSN
      [0x04, 16], // PWR
      [0x0e, 8], // ARI
      [0x0f, 8], // ATS
      [0x10, 64], // SRIOV
      [0x12, 40], // MCAST
      [0x13, 16], // PRI
      [0x18, 8], // LTR
    ];
    for (const [id, len] of fixed) {
      expect(PCI_EXT_CAP_LENGTH_PRE_PATCH[id], `ecap ${id}`).toBe(len);
      expect(PCI_EXT_CAP_LENGTH_PATCHED[id], `ecap ${id}`).toBe(len);
    }
    for (const id of [0x02, 0x08, 0x09, 0x0b, 0x0d, 0x15, 0x16, 0x17])
      expect(PCI_EXT_CAP_LENGTH_PATCHED[id]).toBe(0xff);
    for (const id of [0x05, 0x06, 0x07, 0x0a, 0x0c, 0x11, 0x14, 0x19, 0x1a])
      expect(PCI_EXT_CAP_LENGTH_PATCHED[id]).toBe(0);
    // Only PASID differs; 0x1C..0x26 have no entry.
    const diff = PCI_EXT_CAP_LENGTH_PATCHED.flatMap((l, i) =>
      l !== PCI_EXT_CAP_LENGTH_PRE_PATCH[i] ? [i] : [],
    );
    expect(diff).toEqual([PCI_EXT_CAP_ID_PASID]);
    expect(PCI_EXT_CAP_LENGTH_PATCHED).toHaveLength(VFIO_PCI_EXT_CAP_ID_MAX + 1);
    expect(PCI_EXT_CAP_LENGTH_PATCHED.slice(0x1c)).toEqual(new Array(0x26 - 0x1c + 1).fill(0));
  });

  it('pci_cap_length: header 64, PM 8, MSI-X 12, AF 6, variable MSI/PCI-X/HT/VNDR/EXP/SATA, EA hidden', () => {
    expect(PCI_CAP_LENGTH[PCI_CAP_ID_BASIC]).toBe(64);
    expect(PCI_CAP_LENGTH[PCI_CAP_ID_PM]).toBe(8);
    expect(PCI_CAP_LENGTH[PCI_CAP_ID_MSIX]).toBe(12);
    expect(PCI_CAP_LENGTH[0x13]).toBe(6);
    expect(PCI_CAP_LENGTH[0x03]).toBe(8);
    for (const id of [0x05, 0x07, 0x08, 0x09, 0x10, 0x12]) expect(PCI_CAP_LENGTH[id]).toBe(0xff);
    expect(PCI_CAP_LENGTH[0x14]).toBe(0);
  });
});

// ---------------------------------------------------------------- chains

describe('capability chains the user sees', () => {
  it('standard chain PM → MSI-X → PCIe, with the header owned by BASIC and gaps unclaimed', () => {
    const { d, c } = setup();
    expect(walkStd(c)).toEqual([
      { id: PCI_CAP_ID_PM, offset: d.offsetOf('pm') },
      { id: PCI_CAP_ID_MSIX, offset: d.offsetOf('msix') },
      { id: PCI_CAP_ID_EXP, offset: d.offsetOf('exp') },
    ]);
    expect(c.capabilities().map((x) => [x.id, x.length])).toEqual([
      [PCI_CAP_ID_PM, 8],
      [PCI_CAP_ID_MSIX, 12],
      [PCI_CAP_ID_EXP, 0x34], // v2 endpoint: through Link Status 2
    ]);
    for (let i = 0; i < 64; i++) expect(c.ownerAt(i)).toBe(PCI_CAP_ID_BASIC);
    expect(c.ownerAt(d.offsetOf('pm') + 7)).toBe(PCI_CAP_ID_PM);
    expect(c.ownerAt(d.offsetOf('pm') + 8)).toBe(PCI_CAP_ID_INVALID);
    expect(c.ownerAt(d.offsetOf('exp') + 0x34)).toBe(PCI_CAP_ID_INVALID); // slot 2 registers: raw
    expect(c.read(0, 2)).toBe(FAKE_VENDOR_ID);
    expect(c.read(2, 2)).toBe(FAKE_DEVICE_ID);
  });

  it('with the patch: AER → DSN → PASID → ATS → PRI, PASID with ID 0x1B, version 1 and a valid next', () => {
    const { d, c } = setup();
    const chain = walkExt(c);
    expect(chain.map((x) => x.id)).toEqual([
      PCI_EXT_CAP_ID_ERR,
      PCI_EXT_CAP_ID_DSN,
      PCI_EXT_CAP_ID_PASID,
      PCI_EXT_CAP_ID_ATS,
      PCI_EXT_CAP_ID_PRI,
    ]);
    const pasid = chain[2]!;
    expect(pasid).toEqual({ id: 0x1b, version: 1, offset: d.offsetOf('pasid'), next: d.offsetOf('ats') });
    expect(chain[1]!.next).toBe(pasid.offset);
    expect(chain.at(-1)!.next).toBe(0);
    expect(c.extendedCapabilities().map((x) => [x.id, x.offset, x.length])).toEqual([
      [0x01, d.offsetOf('aer'), 0x2c],
      [0x03, d.offsetOf('dsn'), 12],
      [0x1b, d.offsetOf('pasid'), 8],
      [0x0f, d.offsetOf('ats'), 8],
      [0x13, d.offsetOf('pri'), 16],
    ]);
    for (let i = 0; i < 8; i++) expect(c.ownerAt(d.offsetOf('pasid') + i)).toBe(PCI_EXT_CAP_ID_PASID);
    expect(c.accessAt(d.offsetOf('pasid') + 6)).toMatchObject({
      perm: 'ecap-default',
      writeKind: 'none',
      writable: 0,
    });
    expect(c.messages).toEqual([]);
  });

  it('before the patch: PASID is unlinked (DSN points to ATS) but its bytes stay raw-readable', () => {
    const { d, c } = setup({}, { exposePasid: false });
    const chain = walkExt(c);
    expect(chain.map((x) => x.id)).toEqual([
      PCI_EXT_CAP_ID_ERR,
      PCI_EXT_CAP_ID_DSN,
      PCI_EXT_CAP_ID_ATS,
      PCI_EXT_CAP_ID_PRI,
    ]);
    expect(chain[1]!.next).toBe(d.offsetOf('ats'));
    const p = d.offsetOf('pasid');
    for (let i = 0; i < 8; i++) expect(c.ownerAt(p + i)).toBe(PCI_CAP_ID_INVALID);
    // The device's own header (next = ATS) and body show at the absolute offset.
    expect(c.read(p, 4)).toBe(pciExtCapHeader(0x1b, 1, d.offsetOf('ats')));
    expect(c.read(p + 4, 2)).toBe(FAKE_PASID_CAP);
    expect(c.messages).toEqual([`hiding ecap 0x1b@0x${p.toString(16)}`]);
    // The device was not changed by the scan.
    expect(d.peek(d.offsetOf('dsn'), 4)).toBe(pciExtCapHeader(0x03, 1, p));
  });

  it('before the patch, the raw bytes are writable too: PASID Enable can be set at its absolute offset', () => {
    // Linux's unassigned_perms are raw read/write (some devices keep registers between caps).
    const { d, c } = setup({}, { exposePasid: false });
    const p = d.offsetOf('pasid');
    expect(c.write(p + 6, 2, 1)).toBe(2);
    expect(d.peek(p + 6, 2)).toBe(1);
    expect(d.writes).toEqual([{ offset: p + 6, size: 2, value: 1 }]);
  });

  it('a hidden capability first at 0x100 stays as a placeholder: ID and version 0, next kept', () => {
    const { d, c } = setup({ ext: ['pasid', 'aer', 'ats'] }, { exposePasid: false });
    expect(c.read(0x100, 4)).toBe(pciExtCapHeader(0, 0, d.offsetOf('aer')));
    expect(walkExt(c).map((x) => [x.id, x.offset])).toEqual([
      [0, 0x100],
      [PCI_EXT_CAP_ID_ERR, d.offsetOf('aer')],
      [PCI_EXT_CAP_ID_ATS, d.offsetOf('ats')],
    ]);
    for (let i = 0; i < 4; i++) expect(c.ownerAt(0x100 + i)).toBe(PCI_EXT_CAP_ID_PASID);
    for (let i = 4; i < 8; i++) expect(c.ownerAt(0x100 + i)).toBe(PCI_CAP_ID_INVALID);
    expect(c.read(0x104, 2)).toBe(FAKE_PASID_CAP); // the body is raw
    expect(c.extendedCapabilities()[0]).toEqual({ id: 0, version: 0, offset: 0x100, length: 4 });
    // The placeholder's header takes no writes.
    expect(c.write(0x100, 4, 0xffff_ffff)).toBe(4);
    expect(d.writes).toEqual([]);
    // With the patch the same device shows PASID first.
    const patched = setup({ ext: ['pasid', 'aer', 'ats'] });
    expect(walkExt(patched.c).map((x) => x.id)).toEqual([0x1b, 0x01, 0x0f]);
  });

  it('hidden capabilities after a hidden first one are skipped from the placeholder', () => {
    const { d, c } = setup({ ext: ['secpci', 'dpc', 'aer', 'unknown'] });
    expect(c.read(0x100, 4)).toBe(pciExtCapHeader(0, 0, d.offsetOf('aer')));
    expect(walkExt(c).map((x) => x.id)).toEqual([0, PCI_EXT_CAP_ID_ERR]);
    expect(walkExt(c)[1]!.next).toBe(0);
    expect(c.messages).toEqual([
      'hiding ecap 0x19@0x100',
      `hiding ecap 0x1d@0x${d.offsetOf('dpc').toString(16)}`,
      `hiding ecap 0x30@0x${d.offsetOf('unknown').toString(16)}`,
    ]);
  });

  it('no visible extended capability: the dword at 0x100 reads 0', () => {
    for (const ext of [['secpci', 'dpc', 'unknown'] as const, ['pasid'] as const]) {
      const { d, c } = setup({ ext }, { exposePasid: false });
      expect(c.read(0x100, 4)).toBe(0);
      expect(c.vconfigBytes.slice(0x100, 0x104)).toEqual(new Uint8Array(4));
      expect(walkExt(c)).toEqual([]);
      expect(d.peek(0x100, 4)).not.toBe(0);
    }
  });

  it('PRI, ATS and other hidden capabilities are unlinked wherever they are', () => {
    // In Linux's table ATS and PRI are visible; hiding them needs a table override.
    const ext = ['aer', 'secpci', 'ats', 'dpc', 'pri', 'unknown', 'dsn'] as const;
    const plain = setup({ ext });
    expect(walkExt(plain.c).map((x) => x.id)).toEqual([0x01, 0x0f, 0x13, 0x03]);
    const hidden = setup({ ext }, { extCapLengths: { [PCI_EXT_CAP_ID_ATS]: 0, [PCI_EXT_CAP_ID_PRI]: 0 } });
    const chain = walkExt(hidden.c);
    expect(chain.map((x) => x.id)).toEqual([0x01, 0x03]);
    expect(chain[0]!.next).toBe(hidden.d.offsetOf('dsn'));
    for (const name of ['secpci', 'ats', 'dpc', 'pri', 'unknown']) {
      expect(hidden.c.ownerAt(hidden.d.offsetOf(name))).toBe(PCI_CAP_ID_INVALID);
    }
    expect(hidden.c.read(hidden.d.offsetOf('ats') + 4, 2)).toBe(0x0020);
  });

  it('hidden standard capabilities are unlinked; none left clears Capabilities List', () => {
    const dbg = stdCap('dbg', 0x0a, 8);
    const ea = stdCap('ea', 0x14, 8);
    const { d, c } = setup({ std: [dbg, 'pm', ea, 'msix', 'exp'] });
    expect(walkStd(c).map((x) => x.id)).toEqual([PCI_CAP_ID_PM, PCI_CAP_ID_MSIX, PCI_CAP_ID_EXP]);
    expect(c.read(0x34, 1)).toBe(d.offsetOf('pm'));
    expect(c.read(d.offsetOf('pm') + 1, 1)).toBe(d.offsetOf('msix'));
    expect(c.ownerAt(d.offsetOf('dbg'))).toBe(PCI_CAP_ID_INVALID);

    const none = setup({ std: [dbg, ea], extended: false });
    expect(none.c.read(0x06, 2) & 0x10).toBe(0);
    expect(none.d.peek(0x06, 2) & 0x10).toBe(0x10);
    expect(none.c.read(0x34, 1)).toBe(0);
    expect(walkStd(none.c)).toEqual([]);
  });

  it('without a PCIe capability vfio never scans extended space: it is all raw (PASID shows even pre-patch)', () => {
    const { d, c } = setup({ std: ['pm', 'msix'] }, { exposePasid: false });
    expect(c.extendedCaps).toBe(false);
    expect(walkExt(c).map((x) => x.id)).toEqual([0x01, 0x03, 0x1b, 0x0f, 0x13]);
    expect(c.ownerAt(0x100)).toBe(PCI_CAP_ID_INVALID);
    c.write(d.offsetOf('pasid') + 6, 2, 1);
    expect(d.peek(d.offsetOf('pasid') + 6, 2)).toBe(1);
  });
});

// ---------------------------------------------------------------- PASID with the patch

describe('the exposed PASID capability (§7.2)', () => {
  it('reads its Capability and Control registers from the device, live', () => {
    const { d, c } = setup();
    const p = d.offsetOf('pasid');
    expect(c.read(p + 4, 2)).toBe(FAKE_PASID_CAP);
    expect(c.read(p + 4, 4)).toBe(FAKE_PASID_CAP);
    d.poke(p + 6, 2, 0x0001); // the host IOMMU driver enabled PASID
    expect(c.read(p + 6, 2)).toBe(1);
    d.poke(p + 4, 2, 0x0a06); // a device with Max PASID Width 10
    expect(c.read(p + 4, 2)).toBe(0x0a06);
    expect((c.read(p + 4, 2) >>> 8) & 0x1f).toBe(10);
  });

  it('the header comes from vconfig: a device-side change of its next pointer is not seen', () => {
    const { d, c } = setup();
    const p = d.offsetOf('pasid');
    d.poke(p, 4, pciExtCapHeader(0x1b, 1, 0));
    expect(c.read(p, 4)).toBe(pciExtCapHeader(0x1b, 1, d.offsetOf('ats')));
    expect(c.read(p + 2, 2)).toBe(pciExtCapHeader(0x1b, 1, d.offsetOf('ats')) >>> 16);
  });

  it('drops every write: the guest cannot toggle PASID Enable, and the write reports success', () => {
    const { d, c } = setup();
    const p = d.offsetOf('pasid');
    expect(c.write(p + 6, 2, 0x0007)).toBe(2);
    expect(c.write(p + 4, 4, 0xffff_ffff)).toBe(4);
    expect(c.write(p, 4, 0)).toBe(4);
    expect(d.writes).toEqual([]);
    expect(d.peek(p + 6, 2)).toBe(0);
    expect(c.read(p + 6, 2)).toBe(0);
    d.poke(p + 6, 2, 1);
    c.write(p + 6, 2, 0);
    expect(c.read(p + 6, 2)).toBe(1); // nor clear it
  });

  it('ATS and PRI, visible in Linux’s table, are read-only to the guest as well', () => {
    const { d, c } = setup();
    c.write(d.offsetOf('ats') + 6, 2, 0x8000);
    c.write(d.offsetOf('pri') + 4, 2, 0x0001);
    expect(d.writes).toEqual([]);
    expect(c.read(d.offsetOf('pri') + 6, 2)).toBe(0x0100);
  });
});

// ---------------------------------------------------------------- header

describe('the standard header', () => {
  it('BAR sizing through the virtual BARs, without touching the device', () => {
    const { d, c } = setup({ ioBar: true, rom: true });
    expect(c.read(0x10, 4)).toBe(Number(FAKE_BAR0_ADDR & 0xffff_ffffn) | 0x0c);
    expect(c.read(0x14, 4)).toBe(Number(FAKE_BAR0_ADDR >> 32n));
    for (let off = 0x10; off <= 0x24; off += 4) expect(c.write(off, 4, 0xffff_ffff)).toBe(4);
    c.write(0x30, 4, 0xffff_fffe);
    expect(c.read(0x10, 4)).toBe(0xff00_000c); // 16 MiB, 64-bit, prefetchable
    expect(c.read(0x14, 4)).toBe(0xffff_ffff);
    expect(c.read(0x18, 4)).toBe(0xffff_0000); // 64 KiB, 32-bit
    expect(c.read(0x1c, 4)).toBe(0); // unimplemented
    expect(c.read(0x20, 4)).toBe(0xffff_ff01); // 256-byte I/O
    expect(c.read(0x24, 4)).toBe(0);
    expect(c.read(0x30, 4)).toBe(0xffff_0000); // 64 KiB ROM, enable clear
    expect(d.writes).toEqual([]);
    expect(d.peek(0x18, 4)).toBe(FAKE_BAR2_ADDR);
    // Programming an address keeps the size-aligned part.
    c.write(0x18, 4, 0x4000_1234);
    expect(c.read(0x18, 4)).toBe(0x4000_0000);
    c.write(0x30, 4, FAKE_ROM_ADDR | 1);
    expect(c.read(0x30, 4)).toBe(FAKE_ROM_ADDR | 1);
    expect(c.bardirty).toBe(false);
    c.write(0x18, 1, 0);
    expect(c.bardirty).toBe(true);
  });

  it('no ROM: the ROM BAR reads 0 whatever is written', () => {
    const { c } = setup();
    c.write(0x30, 4, 0xffff_ffff);
    expect(c.read(0x30, 4)).toBe(0);
  });

  it('Command: INTx Disable is virtual and drives vfio’s INTx masking; other bits reach the device', () => {
    const spy = spyCore();
    const { d, c } = setup({}, { core: spy.core });
    expect(c.write(0x04, 2, 0x0406)).toBe(2);
    expect(d.peek(0x04, 2)).toBe(0x0006);
    expect(c.read(0x04, 2)).toBe(0x0406);
    expect(c.virqDisabled).toBe(true);
    expect(c.write(0x05, 1, 0x00)).toBe(1); // the high byte alone also counts
    expect(c.virqDisabled).toBe(false);
    expect(spy.calls).toEqual(['intx mask', 'intx unmask']);
    c.write(0x04, 2, 0x0004); // memory decode off
    expect(spy.calls.at(-1)).toBe('zap');
    expect(d.peek(0x04, 2)).toBe(0x0004);
  });

  it('a Command write after a reset vfio did not see restores the BARs saved at open', () => {
    const { d, c } = setup({ rom: true });
    d.flr(); // a backdoor reset: BARs 0, Command 0
    expect(d.peek(0x10, 4)).toBe(0x0c);
    c.write(0x04, 2, 0x0006);
    expect(d.peek(0x10, 4)).toBe(Number(FAKE_BAR0_ADDR & 0xffff_ffffn) | 0x0c);
    expect(d.peek(0x14, 4)).toBe(Number(FAKE_BAR0_ADDR >> 32n));
    expect(d.peek(0x18, 4)).toBe(FAKE_BAR2_ADDR);
    expect(d.peek(0x04, 2)).toBe(0x0006);
    expect(c.messages).toContain('reset recovery - restoring BARs');
    expect(c.savedBars.slice(0, 3)).toEqual([
      Number(FAKE_BAR0_ADDR & 0xffff_ffffn) | 0x0c,
      0x80,
      FAKE_BAR2_ADDR,
    ]);
  });

  it('Status: Capabilities List is virtual, the rest read-only; Vendor/Device come from vconfig', () => {
    const { d, c } = setup({ statusErrors: 0x0800 });
    expect(c.read(0x06, 2)).toBe(0x0810);
    c.write(0x06, 2, 0xffff);
    expect(d.writes).toEqual([]);
    expect(c.read(0x06, 2)).toBe(0x0810);
    d.poke(0, 2, 0xffff);
    expect(c.read(0, 2)).toBe(FAKE_VENDOR_ID);
  });

  it('Linux quirk: a dword write at Command writes Status back and clears its set RW1C bits', () => {
    const { d, c } = setup({ statusErrors: 0x0800 });
    c.write(0x04, 4, 0xffff_0006);
    expect(d.writes).toEqual([{ offset: 4, size: 4, value: 0x0810_0006 }]);
    expect(d.peek(0x06, 2)).toBe(0x0010);
  });

  it('nointx and a VF: Interrupt Pin reads 0; a VF shows its IDs and a virtual Memory enable', () => {
    expect(setup().c.read(0x3d, 1)).toBe(1);
    expect(setup({}, { nointx: true }).c.read(0x3d, 1)).toBe(0);
    expect(setup({}, { intxSupported: false }).c.read(0x3d, 1)).toBe(0);
    const vf = setup({}, { virtfn: { vendor: 0x8086, device: 0x1234 } });
    expect(vf.c.read(0, 4)).toBe(0x1234_8086);
    expect(vf.c.read(0x3d, 1)).toBe(0);
    expect(vf.c.messages).toContain('Hardware bug: VF reports bogus INTx pin 1');
    vf.d.poke(0x04, 2, 0);
    expect(vf.c.read(0x04, 2) & 0x2).toBe(0x2);
  });
});

// ---------------------------------------------------------------- capabilities with handlers

describe('capability handlers', () => {
  it('PM: a Control write asks for the power state; the state bits themselves are read-only', () => {
    const spy = spyCore();
    const { d, c } = setup({}, { core: spy.core });
    const pm = d.offsetOf('pm');
    c.write(pm + 4, 2, 0x0103);
    expect(spy.calls).toEqual(['power 3']);
    expect(d.peek(pm + 4, 2) & 3).toBe(0);
    expect(d.peek(pm + 4, 2) & 0x100).toBe(0x100); // PME_En is writable
    // The default operation changes the device's state field.
    const real = setup();
    real.c.write(pm + 4, 2, 0x0003);
    expect(real.d.peek(pm + 4, 2) & 3).toBe(3);
    expect(real.c.read(pm + 4, 2) & 3).toBe(3);
  });

  it('PCIe: FLR is virtual and becomes a function reset; with the default op the BARs survive', () => {
    const spy = spyCore();
    const { d, c } = setup({}, { core: spy.core });
    const ctl = d.offsetOf('exp') + 8;
    c.write(ctl, 2, 0x8000 | d.peek(ctl, 2));
    expect(spy.calls).toEqual(['reset']);
    expect(c.read(ctl, 2) & 0x8000).toBe(0);
    expect(d.resets).toBe(0);

    const real = setup();
    real.c.write(ctl, 2, 0x8000 | real.d.peek(ctl, 2));
    expect(real.d.resets).toBe(1);
    expect(real.d.peek(0x18, 4)).toBe(FAKE_BAR2_ADDR); // the PCI core restored its saved header
    expect(real.d.peek(0x04, 2)).toBe(0x0006);
  });

  it('PCIe: Max Payload is virtual; Max Read Request is applied, never below the device MPS', () => {
    const spy = spyCore();
    const { d, c } = setup({}, { core: spy.core });
    const ctl = d.offsetOf('exp') + 8;
    const before = d.peek(ctl, 2);
    c.write(ctl, 2, (before & ~0x70e0) | 0x5020); // MRRS 4096, MPS 256
    expect(spy.calls).toEqual(['readrq 4096']);
    expect(d.peek(ctl, 2) & 0x70e0).toBe(before & 0x70e0);
    expect(c.read(ctl, 2) & 0x70e0).toBe(0x5020);
    d.poke(ctl, 2, (d.peek(ctl, 2) & ~0xe0) | 0x40); // device MPS 512
    c.write(ctl, 2, c.read(ctl, 2) & ~0x7000); // ask for 128
    expect(spy.calls.at(-1)).toBe('readrq 512');
    // Phantom Functions is not writable; DEVCTL2 ARI neither.
    c.write(ctl, 2, c.read(ctl, 2) | 0x0200);
    expect(d.peek(ctl, 2) & 0x0200).toBe(0);
    const ctl2 = d.offsetOf('exp') + 0x28;
    c.write(ctl2, 2, 0x0021);
    expect(d.peek(ctl2, 2)).toBe(0x0001);
    // Default op: pcie_set_readrq programs the device.
    const real = setup();
    real.c.write(ctl, 2, (real.d.peek(ctl, 2) & ~0x7000) | 0x5000);
    expect(real.d.peek(ctl, 2) & 0x7000).toBe(0x5000);
  });

  it('AF: its FLR bit is virtual and resets the function', () => {
    const spy = spyCore();
    const { d, c } = setup({ std: ['pm', 'af', 'exp'] }, { core: spy.core });
    expect(c.capabilities().find((x) => x.id === 0x13)?.length).toBe(6);
    c.write(d.offsetOf('af') + 4, 1, 1);
    expect(spy.calls).toEqual(['reset']);
    expect(c.read(d.offsetOf('af') + 4, 1)).toBe(0);
    expect(d.writes).toEqual([]);
  });

  it('AER: masks and severities reach the device, status bits clear, the header is read-only', () => {
    const { d, c } = setup();
    const aer = d.offsetOf('aer');
    c.write(aer + 8, 4, 0xffff_ffff);
    expect(d.peek(aer + 8, 4)).toBe(0x03ff_f031);
    d.poke(aer + 0x10, 4, 0x41);
    c.write(aer + 0x10, 4, 0x01);
    expect(d.peek(aer + 0x10, 4)).toBe(0x40);
    const writes = d.writes.length;
    c.write(aer, 4, 0);
    expect(d.writes.length).toBe(writes);
    expect(c.read(aer, 4)).toBe(pciExtCapHeader(0x01, 2, d.offsetOf('dsn')));
    c.write(aer + 0x18, 4, 0xffff_ffff);
    expect(d.peek(aer + 0x18, 4)).toBe(0x1e0);
  });

  it('MSI-X: Message Control is read-only to the guest (vfio enables MSI-X through ioctls)', () => {
    const { d, c } = setup();
    c.write(d.offsetOf('msix') + 2, 2, 0xc000);
    expect(d.writes).toEqual([]);
    expect(c.read(d.offsetOf('msix') + 2, 2)).toBe(0x000f);
  });

  it('MSI: virtual address/data, Enable only with MSI active, queue size capped at msi_qmax', () => {
    const { d, c } = setup({ std: ['pm', 'msi', 'exp'] });
    const msi = d.offsetOf('msi');
    expect(c.capabilities().find((x) => x.id === 5)?.length).toBe(24);
    c.write(msi + 4, 4, 0xfee0_0000);
    c.write(msi + 12, 2, 0x4041);
    expect(d.writes).toEqual([]);
    expect(c.read(msi + 4, 4)).toBe(0xfee0_0000);
    c.write(msi + 2, 2, 0x0021); // Enable, 4 vectors
    // Not active, qmax 0: Enable and the queue size are cleared. The whole low byte is virtual
    // and writable, so the guest's 0 in the read-only 64-bit and capable bits sticks in vconfig
    // and goes to the device (where those bits are read-only).
    expect(c.read(msi + 2, 2)).toBe(0x0100);
    expect(d.writes.at(-1)).toEqual({ offset: msi + 2, size: 2, value: 0x0100 });
    expect(d.peek(msi + 2, 2)).toBe(0x0184);
    c.setMsiState(true, 2);
    c.write(msi + 2, 2, 0x0031); // asks for 8 vectors
    expect(c.read(msi + 2, 2) & 0x71).toBe(0x21);
    expect(d.peek(msi + 2, 2) & 0x71).toBe(0x21);
    c.write(msi + 16, 4, 0xf); // mask bits: not virtual
    expect(d.peek(msi + 16, 4)).toBe(0xf);
    // Linux quirk: the read handler rewrites vconfig at the capability start, not the flags.
    c.read(msi + 2, 2);
    expect(c.vconfigBytes[msi]).toBe((0x05 & ~0x0e) | (2 << 1));
    expect(c.read(msi, 1)).toBe(0x05); // the ID byte is read from the device
  });

  it('vendor-specific capabilities take raw writes', () => {
    const { d, c } = setup({ std: ['pm', 'vndr', 'exp'], ext: ['aer', 'vsec'] });
    expect(c.capabilities().find((x) => x.id === 9)?.length).toBe(16);
    c.write(d.offsetOf('vndr') + 4, 4, 0xdead_beef);
    expect(d.peek(d.offsetOf('vndr') + 4, 4)).toBe(0xdead_beef);
    expect(c.extendedCapabilities().find((x) => x.id === 0x0b)?.length).toBe(0x18);
    c.write(d.offsetOf('vsec') + 8, 4, 0x1234);
    expect(d.peek(d.offsetOf('vsec') + 8, 4)).toBe(0x1234);
  });
});

// ---------------------------------------------------------------- lengths

describe('variable capability lengths (vfio_cap_len / vfio_ext_cap_len)', () => {
  const stdLen = (spec: FakeCapSpec) => setup({ std: [spec, 'exp'] }).c.capabilities()[0]!.length;
  const extLen = (spec: FakeCapSpec) => setup({ ext: ['aer', spec] }).c.extendedCapabilities()[1]!.length;

  it('standard: MSI 10/14/20/24, PCIe by version and type, PCI-X, HT, SATA, vendor-specific', () => {
    const msi = (flags: number) => stdCap('msi', 0x05, 24, [{ off: 2, size: 2, init: flags }]);
    expect([0x0000, 0x0080, 0x0100, 0x0180].map((f) => stdLen(msi(f)))).toEqual([10, 14, 20, 24]);
    const exp = (flags: number) =>
      setup({ std: [stdCap('exp', 0x10, 0x3c, [{ off: 2, size: 2, init: flags }])] }).c.capabilities()[0]!
        .length;
    expect([0x0001, 0x0091, 0x0002, 0x0092].map(exp)).toEqual([20, 12, 0x34, 0x2c]);
    const pcix = (cmd: number) => stdLen(stdCap('pcix', 0x07, 24, [{ off: 2, size: 2, init: cmd }]));
    expect([pcix(0x0000), pcix(0x1000)]).toEqual([8, 24]);
    const ht = (b: number) => stdLen(stdCap('ht', 0x08, 28, [{ off: 3, size: 1, init: b }]));
    expect([ht(0x00), ht(0x20)]).toEqual([28, 24]);
    const sata = (b: number) => stdLen(stdCap('sata', 0x12, 16, [{ off: 4, size: 1, init: b }]));
    expect([sata(0x0f), sata(0x01)]).toEqual([16, 8]);
    expect(stdLen(stdCap('vndr', 0x09, 12, [{ off: 2, size: 1, init: 12 }]))).toBe(12);
    // A vendor capability of length 0 is hidden.
    expect(
      setup({ std: [stdCap('vndr', 0x09, 12), 'exp'] })
        .c.capabilities()
        .map((x) => x.id),
    ).toEqual([0x10]);
  });

  it('extended: VC, ACS, REBAR, DPA, TPH, vendor-specific', () => {
    const vc = extCap('vc', 0x02, 0x40, [
      { off: 4, size: 4, init: 1 }, // one extended VC
      { off: 8, size: 4, init: 0x2 }, // 32-phase arbitration
    ]);
    expect(extLen(vc)).toBe(0x30 + 16);
    expect(extLen(extCap('vc', 0x02, 0x40))).toBe(0x1c);
    expect(extLen(extCap('acs', 0x0d, 8))).toBe(8);
    expect(extLen(extCap('acs', 0x0d, 40, [{ off: 4, size: 2, init: 0x0020 }]))).toBe(40);
    expect(extLen(extCap('acs', 0x0d, 40, [{ off: 4, size: 2, init: 0x4020 }]))).toBe(8 + 64 / 8);
    expect(extLen(extCap('rebar', 0x15, 20, [{ off: 8, size: 4, init: 2 << 5 }]))).toBe(20);
    expect(extLen(extCap('dpa', 0x16, 24, [{ off: 4, size: 4, init: 2 }]))).toBe(19);
    expect(extLen(extCap('tph', 0x17, 20, [{ off: 4, size: 4, init: 0x0003_0200 }]))).toBe(20);
    expect(extLen(extCap('tph', 0x17, 12, [{ off: 4, size: 4, init: 0x0003_0400 }]))).toBe(12);
    expect(extLen(extCap('vsec', 0x0b, 16, [{ off: 4, size: 4, init: 16 << 20 }]))).toBe(16);
  });

  it('table overrides: capLengths and extCapLengths', () => {
    const { c } = setup(
      {},
      { capLengths: { [PCI_CAP_ID_MSIX]: 0 }, extCapLengths: { [PCI_EXT_CAP_ID_SECPCI]: 16 } },
    );
    expect(c.capabilities().map((x) => x.id)).toEqual([PCI_CAP_ID_PM, PCI_CAP_ID_EXP]);
    expect(
      setup({ ext: ['aer', 'secpci'] }, { extCapLengths: { 25: 16 } })
        .c.extendedCapabilities()
        .map((x) => x.id),
    ).toEqual([0x01, 0x19]);
  });
});

// ---------------------------------------------------------------- access path

describe('vfio_pci_config_rw', () => {
  it('splits accesses into aligned chunks that never cross a capability', () => {
    const { d, c } = setup({ std: ['pm', 'af', 'exp'] });
    const af = d.offsetOf('af'); // 6 bytes, then 2 raw bytes
    d.recordReads = true;
    const buf = new Uint8Array(4);
    expect(c.rw(buf, 4, af + 4, false)).toBe(4);
    // AF control/status from the device (the control byte's FLR bit is virtual), then raw bytes.
    expect(d.reads).toEqual([
      { offset: af + 4, size: 2 },
      { offset: af + 6, size: 2 },
    ]);
    d.reads.length = 0;
    const exp = d.offsetOf('exp');
    expect(c.rw(new Uint8Array(8), 8, exp + 0x32, false)).toBe(8);
    expect(d.reads).toEqual([
      { offset: exp + 0x32, size: 2 },
      { offset: exp + 0x34, size: 4 },
      { offset: exp + 0x38, size: 2 },
    ]);
    d.reads.length = 0;
    expect(c.rw(new Uint8Array(3), 3, 0x3d, false)).toBe(3); // pin, min_gnt/max_lat
    expect(d.reads).toEqual([{ offset: 0x3e, size: 2 }]); // the pin byte is virtual
    d.recordReads = false;
    expect(c.rw(new Uint8Array(7), 7, 0x101, true)).toBe(7);
    expect(d.writes.map((w) => [w.offset, w.size])).toEqual([[0x104, 4]]);
  });

  it('a multi-dword read returns the same bytes as single reads', () => {
    const { c } = setup();
    const all = readAll(c);
    for (const off of [0, 0x10, 0x40, 0x54, 0x100, 0x158]) {
      expect(c.read(off, 4)).toBe(new DataView(all.buffer).getUint32(off, true));
    }
  });

  it('out of range is -EFAULT and nothing changes; a zero count is 0', () => {
    const { d, c } = setup();
    const before = { v: c.vconfigBytes, dev: d.snapshot() };
    const buf = new Uint8Array(8).fill(0xff);
    expect(c.rw(buf, 2, 4095, true)).toBe(-EFAULT);
    expect(c.rw(buf, 1, 4096, true)).toBe(-EFAULT);
    expect(c.rw(buf, 1, -1, false)).toBe(-EFAULT);
    expect(c.rw(buf, 8, 4090, false)).toBe(-EFAULT);
    expect(c.rw(buf, 8, 0x10, true)).toBe(8);
    expect(c.rw(new Uint8Array(2), 4, 0x10, true)).toBe(-EFAULT);
    expect(c.rw(buf, 1.5, 0, false)).toBe(-EINVAL);
    expect(c.rw(buf, 0, 5000, false)).toBe(0);
    expect(c.read(4096, 1)).toBe(-EFAULT);
    expect(c.write(4094, 4, 0)).toBe(-EFAULT);
    expect(d.writes).toEqual([]);
    expect(d.snapshot()).toEqual(before.dev);
    const after = c.vconfigBytes;
    after.set(before.v.subarray(0x10, 0x18), 0x10); // the one successful write (virtual BARs)
    expect(after).toEqual(before.v);
    const small = setup({ extended: false });
    expect(small.c.cfgSize).toBe(256);
    expect(small.c.read(0x100, 4)).toBe(-EFAULT);
    expect(small.c.extendedCapabilities()).toEqual([]);
  });

  it('accessAt describes the permission set of a byte', () => {
    const { d, c } = setup();
    expect(c.accessAt(0x04)).toMatchObject({
      owner: 0,
      perm: 'basic',
      writable: 0xff,
      deviceWritable: 0xff,
      virt: 0,
    });
    expect(c.accessAt(0x05)).toMatchObject({ writable: 0xff, deviceWritable: 0xfb, virt: 0x04 });
    expect(c.accessAt(0x10)).toMatchObject({ virt: 0xff, writable: 0xff, deviceWritable: 0 });
    const p = d.offsetOf('pasid');
    expect(c.accessAt(p)).toMatchObject({ owner: 0x1b, capStart: p, virt: 0xff, writable: 0 });
    expect(c.accessAt(p + 7)).toMatchObject({ capStart: p, virt: 0, writable: 0, deviceWritable: 0 });
    expect(c.accessAt(0x9c)).toMatchObject({
      owner: 0xff,
      perm: 'unassigned',
      writable: 0xff,
      deviceWritable: 0xff,
    });
  });
});

// ---------------------------------------------------------------- reset and helpers

describe('reset (close and re-open) and host PCI helpers', () => {
  it('a device reset leaves vconfig alone; reset() rebuilds it from the device', () => {
    const { d, c } = setup();
    c.write(0x18, 4, 0xffff_ffff);
    c.write(0x04, 2, 0x0406);
    d.flr();
    expect(c.read(0x18, 4)).toBe(0xffff_0000); // still the virtual BAR
    expect(c.read(0x04, 2) & 0x400).toBe(0x400);
    c.reset();
    expect(c.virqDisabled).toBe(false);
    expect(c.read(0x18, 4)).toBe(0); // the device's BAR is unassigned after the FLR
    expect(c.read(0x04, 2)).toBe(0);
    expect(c.savedBars).toEqual([0x0c, 0, 0, 0, 0, 0, 0]);
    expect(walkExt(c).map((x) => x.id)).toEqual([0x01, 0x03, 0x1b, 0x0f, 0x13]);
    expect(c.configMap).toEqual(setup().c.configMap);
  });

  it('pciReadBases sizes the BARs and restores them and Command', () => {
    const d = new FakePciDevice({ ioBar: true, rom: true });
    const snap = d.snapshot();
    const res = pciReadBases(d);
    expect(res.bars[0]).toEqual({ start: FAKE_BAR0_ADDR, len: 0x100_0000n, prefetch: true, mem64: true });
    expect(res.bars[1]).toBeUndefined();
    expect(res.bars[2]).toEqual({
      start: BigInt(FAKE_BAR2_ADDR),
      len: 0x1_0000n,
      prefetch: false,
      mem64: false,
    });
    expect(res.bars[3]).toBeUndefined();
    expect(res.bars[4]).toEqual({ start: 0x2000n, len: 0x100n, io: true });
    expect(res.rom).toEqual({ start: BigInt(FAKE_ROM_ADDR), len: 0x1_0000n });
    expect(d.snapshot()).toEqual(snap);
    expect(d.writes[0]).toEqual({ offset: 4, size: 2, value: 0x0004 }); // decode off while sizing
  });

  it('pciFindCapability / pciFindExtCapability walk the device’s own chains', () => {
    const d = new FakePciDevice();
    expect(pciFindCapability(d, PCI_CAP_ID_EXP)).toBe(d.offsetOf('exp'));
    expect(pciFindCapability(d, 0x05)).toBe(0);
    expect(pciFindExtCapability(d, PCI_EXT_CAP_ID_PASID)).toBe(d.offsetOf('pasid'));
    expect(pciFindExtCapability(d, 0x10)).toBe(0);
    expect(pciFindExtCapability(new FakePciDevice({ extended: false }), 1)).toBe(0);
  });

  it('rejects a config space that is neither 256 nor 4096 bytes (programmer error)', () => {
    const port = { configSize: 512, configRead: () => 0, configWrite: () => {} };
    expect(() => new VfioPciConfig(port)).toThrow();
  });
});

// ---------------------------------------------------------------- RFC 2/2 (optional)

describe('RFC v1 2/2: emulated PASID/PRI for a VF (§7.4)', () => {
  const vfIds = { vendor: FAKE_VENDOR_ID, device: 0x5a5b };
  function vfSetup(
    pfCtrl: { pasid: number; pri: number },
    opts: Partial<VfioPciConfigOptions> = {},
    rfcHardcodedIds = false,
  ) {
    const pf = new FakePciDevice();
    pf.poke(pf.offsetOf('pasid') + 6, 2, pfCtrl.pasid);
    pf.poke(pf.offsetOf('pri') + 4, 2, pfCtrl.pri);
    const d = new FakePciDevice({ ext: ['aer', 'ats', 'secpci'] }); // a VF: no PASID, no PRI
    const c = new VfioPciConfig(d, { virtfn: vfIds, emulatePasidForVf: { pf, rfcHardcodedIds }, ...opts });
    d.writes.length = 0;
    pf.writes.length = 0;
    return { pf, d, c };
  }

  it('appends PASID and PRI after the furthest capability, Control zeroed, fully virtual', () => {
    const { pf, d, c } = vfSetup({ pasid: 0x0001, pri: 0x0001 });
    const end = d.offsetOf('secpci'); // hidden SecPCIe: counts with length 0
    const chain = walkExt(c);
    expect(chain.map((x) => [x.id, x.offset])).toEqual([
      [0x01, 0x100],
      [0x0f, d.offsetOf('ats')],
      [0x1b, end],
      [0x13, end + 8],
    ]);
    expect(chain[2]!.version).toBe(1);
    expect(c.read(end + 4, 2)).toBe(FAKE_PASID_CAP);
    expect(c.read(end + 6, 2)).toBe(0);
    expect(c.read(end + 8 + 6, 2)).toBe(0x0100); // PRI status copied from the PF
    expect(c.read(end + 8 + 4, 2)).toBe(0);
    // Guest writes land in vconfig only: neither the VF nor the PF sees them.
    c.write(end + 6, 2, 0x0001);
    c.write(end + 8 + 4, 2, 0x0001);
    expect(c.read(end + 6, 2)).toBe(1);
    expect(c.read(end + 8 + 4, 2)).toBe(1);
    expect(d.writes).toEqual([]);
    expect(pf.writes).toEqual([]);
    expect(c.accessAt(end + 6)).toMatchObject({ perm: 'virt', writeKind: 'virt' });
  });

  it('adds nothing for a capability the PF has not enabled, or that the length table hides', () => {
    expect(walkExt(vfSetup({ pasid: 0, pri: 1 }).c).map((x) => x.id)).toEqual([0x01, 0x0f, 0x13]);
    expect(walkExt(vfSetup({ pasid: 1, pri: 0 }).c).map((x) => x.id)).toEqual([0x01, 0x0f, 0x1b]);
    const prePatch = vfSetup({ pasid: 1, pri: 1 }, { exposePasid: false });
    expect(walkExt(prePatch.c).map((x) => x.id)).toEqual([0x01, 0x0f, 0x13]);
    expect(prePatch.c.messages).toContain('VF hiding ecap 0x1b');
    // Not a VF: no emulation.
    const pf = new FakePciDevice();
    const notVf = new VfioPciConfig(new FakePciDevice({ ext: ['aer'] }), { emulatePasidForVf: { pf } });
    expect(walkExt(notVf).map((x) => x.id)).toEqual([0x01]);
  });

  it('the RFC as posted: headers say LTR (0x18) and SecPCIe (0x19), bodies come from the VF, writes are dropped', () => {
    const { d, c } = vfSetup({ pasid: 1, pri: 1 }, {}, true);
    const end = d.offsetOf('secpci');
    expect(walkExt(c).map((x) => x.id)).toEqual([0x01, 0x0f, 0x18, 0x19]);
    expect(c.ownerAt(end)).toBe(0x18);
    // The VF's own bytes at that offset (its hidden SecPCIe capability's registers) show through.
    expect(c.read(end + 4, 4)).toBe(d.peek(end + 4, 4));
    expect(c.read(end + 4, 2)).not.toBe(FAKE_PASID_CAP);
    c.write(end + 6, 2, 1);
    expect(c.read(end + 6, 2)).toBe(d.peek(end + 6, 2));
    expect(d.writes).toEqual([]);
  });
});

// ---------------------------------------------------------------- properties

/**
 * The guest-write property. For each random write (any offset, 1–8 bytes, any data):
 * (a) every write reaching the device changes, relative to the device's value just before, only
 *     bits the owning permission set lets reach the device (`deviceWritable`: write & ~virt, or all
 *     for raw bytes) — so virtualised and read-only bits are never written to the device;
 * (b) read back through vfio, bytes outside the written range are unchanged, and inside it only
 *     bits the guest may write (`writable`) or the device's own write-1-to-clear bits changed.
 * The host PCI core operations are spies (power state, reset and MRRS would otherwise act on the
 * device by design), and the device has no MSI capability (vfio writes the virtual MSI flags to the
 * device by design; tested above).
 */
const LAYOUTS: readonly { name: string; dev: FakePciDeviceOptions; opts: VfioPciConfigOptions }[] = [
  { name: 'patched, default order', dev: { statusErrors: 0x0800 }, opts: {} },
  { name: 'pre-patch, default order', dev: {}, opts: { exposePasid: false } },
  {
    name: 'pre-patch, PASID first',
    dev: { ext: ['pasid', 'secpci', 'aer', 'pri', 'ats', 'dsn'] },
    opts: { exposePasid: false },
  },
  {
    name: 'patched, AF/VNDR/ROM/IO, hidden caps',
    dev: {
      std: ['af', 'pm', 'vndr', 'exp', 'msix'],
      ext: ['ats', 'dpc', 'pasid', 'vsec', 'unknown', 'aer'],
      rom: true,
      ioBar: true,
    },
    opts: {},
  },
  { name: 'conventional 256-byte space', dev: { extended: false }, opts: {} },
];

const guestWrite = (cfgSize: number) =>
  fc.integer({ min: 1, max: 8 }).chain((count) =>
    fc.record({
      pos: fc.oneof(
        fc.integer({ min: 0, max: Math.min(0x200, cfgSize) - count }),
        fc.integer({ min: 0, max: cfgSize - count }),
      ),
      data: fc.uint8Array({ minLength: count, maxLength: count }),
    }),
  );

describe('property: guest writes never change read-only or virtualised bits', () => {
  for (const layout of LAYOUTS) {
    it(layout.name, () => {
      const cfgSize = layout.dev.extended === false ? 256 : 4096;
      fc.assert(
        fc.property(fc.array(guestWrite(cfgSize), { minLength: 1, maxLength: 6 }), (writes) => {
          const spy = spyCore();
          const { d, c } = setup(layout.dev, { ...layout.opts, core: spy.core });
          const access = Array.from({ length: cfgSize }, (_, i) => c.accessAt(i));
          for (const { pos, data } of writes) {
            const devBefore = d.snapshot();
            const readBefore = readAll(c);
            d.writes.length = 0;
            expect(c.rw(data, data.length, pos, true)).toBe(data.length);
            for (const w of d.writes) {
              for (let i = 0; i < w.size; i++) {
                const o = w.offset + i;
                const changed = (((w.value >>> (8 * i)) & 0xff) ^ devBefore[o]!) & 0xff;
                expect(changed & ~access[o]!.deviceWritable, `device byte ${o}`).toBe(0);
                expect(changed & access[o]!.virt & ~access[o]!.deviceWritable, `virtual bits at ${o}`).toBe(
                  0,
                );
              }
            }
            const readAfter = readAll(c);
            for (let o = 0; o < cfgSize; o++) {
              const changed = readBefore[o]! ^ readAfter[o]!;
              const inside = o >= pos && o < pos + data.length;
              const allowed = inside ? access[o]!.writable | d.w1cMask(o) : 0;
              expect(changed & ~allowed, `byte ${o} after write of ${data.length}@${pos}`).toBe(0);
            }
          }
        }),
        { numRuns: 20 },
      );
    });
  }

  it('with the patch, no guest write changes the device’s PASID Control', () => {
    fc.assert(
      fc.property(
        fc.array(guestWrite(4096), { minLength: 1, maxLength: 20 }),
        fc.constantFrom(0, 1, 7),
        (writes, ctrl) => {
          const spy = spyCore();
          const { d, c } = setup({}, { core: spy.core });
          const p = d.offsetOf('pasid');
          d.poke(p + 6, 2, ctrl);
          // Aim half the writes at the PASID capability itself.
          for (const [k, { pos, data }] of writes.entries()) {
            const at = k % 2 ? pos : p + (pos % (8 - Math.min(data.length, 8) + 1));
            c.rw(data, data.length, at, true);
          }
          expect(d.peek(p + 6, 2)).toBe(ctrl);
          expect(c.read(p + 6, 2)).toBe(ctrl);
          expect(d.writes.every((w) => w.offset + w.size <= p || w.offset >= p + 8)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});

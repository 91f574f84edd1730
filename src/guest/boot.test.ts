/**
 * Boot of the guest OS on the bare-metal rig: device tree, PCI enumeration over ECAM, SMMUv3
 * probe and bring-up, the STE and CD 0 the guest wrote (decoded by the hardware's own decoders),
 * the PASID DMA driver's probe and MSI-X programming, and bad device trees as boot errors.
 */
import { describe, expect, it } from 'vitest';
import { CD_BYTES } from '../arch/smmuv3/cd.ts';
import { S1DSS_SSID0, S1FMT_4K_L2, STE_BYTES } from '../arch/smmuv3/ste.ts';
import { VIRT_GIC_V2M, VIRT_PCIE_MMIO, VSVA_DT_MAGIC } from '../arch/virt.ts';
import { PDMA_DEVICE_ID, PDMA_VENDOR_ID } from '../hw/pci/pasid-dma-regs.ts';
import { PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_EXT_CAP_ID_PASID } from '../hw/pci/regs.ts';
import { decodeCd, decodeSte } from '../hw/smmuv3/config.ts';
import { GuestRig } from './testing.ts';
import { mmioRead } from './trap.ts';

function words(rig: GuestRig, addr: number): Uint32Array {
  const b = rig.mem.read(addr, 64)!;
  return new Uint32Array(b.buffer, b.byteOffset, 16);
}

describe('guest boot', () => {
  it('finds the device, its BAR, MSI-X and PASID capability', () => {
    const rig = new GuestRig({ device: { maxPasidWidth: 16, pasidPriv: true } });
    const job = rig.boot();
    expect(job.error).toBeUndefined();
    expect(job.result).toEqual({ devices: 1, smmu: true, pdma: 1 });
    const [f] = rig.os.devices;
    expect(f).toMatchObject({
      bus: 0,
      dev: 0,
      fn: 0,
      rid: 0,
      vendorId: PDMA_VENDOR_ID,
      deviceId: PDMA_DEVICE_ID,
    });
    expect(f!.pasid).toMatchObject({ width: 16, priv: true, exec: false });
    expect(f!.extCaps.map((c) => c.id)).toContain(PCI_EXT_CAP_ID_PASID);
    expect(f!.msix?.vectors).toBe(4);
    expect(f!.bars[0]).toMatchObject({ index: 0, is64: true, size: 0x4000, addr: VIRT_PCIE_MMIO });
    expect(rig.dev.barAddress(0)).toBe(VIRT_PCIE_MMIO);
    expect(rig.dev.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)).toBe(
      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
    );
    expect(rig.dev.pasidEnabled).toBe(true);
    expect(rig.dev.msixEnabled).toBe(true);
    expect(rig.unhandled).toEqual([]);
  });

  it('writes an STE and CD 0 the SMMU decodes as valid stage-1 with S1DSS = SSID0', () => {
    const rig = new GuestRig();
    expect(rig.boot().error).toBeUndefined();
    const drv = rig.os.smmu!;
    const m = drv.masters.get(0)!;
    expect(drv.strtabSplit).toBe(8); // SIDSIZE 16: 2-level
    const ste = decodeSte(words(rig, m.steAddr), rig.smmu!.features, false);
    expect(ste.ok).toBe(true);
    if (!ste.ok) return;
    expect(ste.value).toMatchObject({
      s1: true,
      s2: false,
      s1Dss: S1DSS_SSID0,
      s1Fmt: S1FMT_4K_L2,
      s1CdMax: 20,
    });
    const cd0 = decodeCd(words(rig, m.cd.cdAddr(0)!), ste.value, rig.smmu!.features);
    expect(cd0.ok).toBe(true);
    if (cd0.ok) expect(cd0.value.asid).toBe(m.domain.asid);
    expect(CD_BYTES).toBe(64);
    expect(STE_BYTES).toBe(64);
    // The doorbell is mapped in the DMA domain and MSI-X points at it.
    const pd = rig.os.pdma[0]!;
    expect(m.domain.toGpa(pd.doorbellIova)).toBe(VIRT_GIC_V2M);
    expect(rig.dev.msixEntry(0)).toMatchObject({
      addr: pd.doorbellIova + 0x40,
      data: pd.intids[0],
      masked: false,
    });
    expect(rig.smmu!.stats.commandErrors).toBe(0);
  });

  it('uses a linear stream table when SIDSIZE is small', () => {
    const rig = new GuestRig({ smmu: { sidBits: 6, twoLevelStreamTable: false, twoLevelCdTable: false } });
    expect(rig.boot().error).toBeUndefined();
    const drv = rig.os.smmu!;
    expect(drv.strtabSplit).toBe(0);
    const m = drv.masters.get(0)!;
    expect(m.steAddr).toBe(drv.strtab);
    const ste = decodeSte(words(rig, m.steAddr), rig.smmu!.features, false);
    expect(ste.ok && ste.value.s1Fmt).toBe(0);
    expect(m.ssidBits).toBe(10);
  });

  it('boots without an SMMU (identity DMA)', () => {
    const rig = new GuestRig({ smmu: false });
    const job = rig.boot();
    expect(job.error).toBeUndefined();
    expect(job.result).toEqual({ devices: 1, smmu: false, pdma: 1 });
    expect(rig.dev.msixEntry(0).addr).toBe(VIRT_GIC_V2M + 0x40);
  });

  it.each([
    ['bad magic', new Uint8Array(16)],
    [
      'not JSON',
      (() => {
        const b = new Uint8Array(12);
        const v = new DataView(b.buffer);
        v.setUint32(0, VSVA_DT_MAGIC, true);
        v.setUint32(4, 4, true);
        b.set([0x7b, 0x7b, 0x7b, 0xff], 8);
        return b;
      })(),
    ],
  ])('a bad blob (%s) fails the boot job, not the CPU', (_name, blob) => {
    const rig = new GuestRig({ blob });
    const job = rig.boot();
    expect(job.done).toBe(true);
    expect(job.error).toMatch(/bad device tree/);
    expect(rig.os.stats.jobs.failed).toBe(1);
    // The vCPU keeps running jobs afterwards.
    const j2 = rig.runJob(
      rig.os.submit(0, 'read', function* () {
        return (yield* mmioRead(0x5000, 4)) + 7;
      }),
    );
    expect(j2.result).toBe(7);
  });

  it('rejects a structurally wrong device tree with the field named', () => {
    const rig = new GuestRig({ dt: (d) => ({ ...d, pcie: { ...d.pcie, busRange: [3, 1] } }) });
    expect(rig.boot().error).toMatch(/busRange is reversed/);
  });
});

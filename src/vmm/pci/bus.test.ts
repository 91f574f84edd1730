/**
 * The IOMMU lookup of the VMM's PCI bus (seed-spec §3.1): pci_setup_iommu, the climb towards the
 * root, requester aliasing at conventional-PCI bridges, address_space_memory when no bus has ops,
 * and the context/fault ops with their -ENOENT / no-op cases.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EBUSY, EINVAL, ENOENT } from '../../uapi/errno.ts';
import type { IommuFaultRecord } from '../../uapi/iommu.ts';
import { PCI_PRIMARY_BUS, PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS, PCIBridge } from './bridge.ts';
import {
  PCIBus,
  pci_device_iommu_address_space,
  pci_device_iommu_inject_faults,
  pci_device_iommu_lookup,
  pci_device_set_iommu_context,
  pci_device_unset_iommu_context,
  pci_setup_iommu,
} from './bus.ts';
import { PCI_DEVFN, PCIDevice } from './device.ts';
import {
  type AddressSpace,
  addressSpaceMemory,
  HOST_IOMMU_NESTING,
  type HostIOMMUContext,
  type PCIBusIdentity,
  type PCIIOMMUOps,
} from './iommu.ts';

interface Call {
  readonly op: string;
  readonly bus: number;
  readonly busName: string;
  readonly opaque: unknown;
  readonly devfn: number;
  readonly extra?: unknown;
}

/** A vIOMMU stand-in: an address space per (bus number, devfn), every call recorded. */
function fakeOps(opts: { context?: boolean; faults?: boolean } = {}): { ops: PCIIOMMUOps; calls: Call[] } {
  const calls: Call[] = [];
  const rec = (op: string, bus: PCIBusIdentity, opaque: unknown, devfn: number, extra?: unknown): void => {
    calls.push({ op, bus: bus.busNumber(), busName: bus.name, opaque, devfn, extra });
  };
  const ops: PCIIOMMUOps = {
    get_address_space(bus, opaque, devfn): AddressSpace {
      rec('get_address_space', bus, opaque, devfn);
      return {
        name: `as:${bus.busNumber()}:${devfn}`,
        translate: (iova) => ({ ok: true, addr: iova + 1, pageSize: 4096 }),
      };
    },
  };
  if (opts.context !== false) {
    ops.set_iommu_context = (bus, opaque, devfn, ctx) => {
      rec('set', bus, opaque, devfn, ctx.name);
      return 0;
    };
    ops.unset_iommu_context = (bus, opaque, devfn) => rec('unset', bus, opaque, devfn);
  }
  if (opts.faults !== false) {
    ops.inject_faults = (bus, opaque, devfn, faults) => {
      rec('inject', bus, opaque, devfn, faults.length);
      return 0;
    };
  }
  return { ops, calls };
}

const ctx: HostIOMMUContext = {
  name: 'ctx',
  flags: HOST_IOMMU_NESTING,
  setPasidTable: () => 0,
  unsetPasidTable: () => 0,
  cacheInvalidate: () => 0,
  setMsiBinding: () => 0,
  unsetMsiBinding: () => 0,
};

/** Plugs `bridge` into `bus` at devfn and numbers it (primary, secondary, subordinate). */
function plugBridge(bus: PCIBus, bridge: PCIBridge, devfn: number, sec: number, sub = sec): void {
  expect(bridge.realizeOn(bus, devfn)).toBe(0);
  bridge.configWrite(PCI_PRIMARY_BUS, 1, bus.busNumber());
  bridge.configWrite(PCI_SECONDARY_BUS, 1, sec);
  bridge.configWrite(PCI_SUBORDINATE_BUS, 1, sub);
}

describe('pci_device_iommu_address_space', () => {
  it('root bus with ops: the ops get (bus 0, the device devfn) and the opaque', () => {
    const root = new PCIBus('pcie.0');
    const { ops, calls } = fakeOps();
    const opaque = { smmu: 1 };
    pci_setup_iommu(root, ops, opaque);
    expect(root.iommuOps).toBe(ops);
    const dev = new PCIDevice('d');
    expect(dev.realizeOn(root, PCI_DEVFN(3, 1))).toBe(0);
    const as = pci_device_iommu_address_space(dev);
    expect(as.name).toBe(`as:0:${PCI_DEVFN(3, 1)}`);
    expect(as).not.toBe(addressSpaceMemory);
    expect(calls).toEqual([
      { op: 'get_address_space', bus: 0, busName: 'pcie.0', opaque, devfn: 0x19, extra: undefined },
    ]);
  });

  it('no ops anywhere: address_space_memory (also for an unplugged device)', () => {
    const root = new PCIBus('pcie.0');
    const rp = new PCIBridge('rp', 'root-port');
    plugBridge(root, rp, PCI_DEVFN(1, 0), 1);
    const dev = new PCIDevice('d');
    dev.realizeOn(rp.secondary, 0);
    expect(pci_device_iommu_address_space(dev)).toBe(addressSpaceMemory);
    expect(pci_device_iommu_address_space(new PCIDevice('loose'))).toBe(addressSpaceMemory);
    expect(addressSpaceMemory.translate(0x1234, true)).toEqual({ ok: true, addr: 0x1234, pageSize: 0x1000 });
  });

  it('behind a root port: the device keeps its own identity (secondary bus number the guest programmed)', () => {
    const root = new PCIBus('pcie.0');
    const { ops, calls } = fakeOps();
    pci_setup_iommu(root, ops, 'o');
    const rp = new PCIBridge('rp', 'root-port');
    plugBridge(root, rp, PCI_DEVFN(1, 0), 5);
    const dev = new PCIDevice('d');
    dev.realizeOn(rp.secondary, PCI_DEVFN(0, 2));
    expect(rp.secondary.busNumber()).toBe(5);
    expect(pci_device_iommu_address_space(dev).name).toBe('as:5:2');
    expect(calls[0]!.busName).toBe('rp.0');
    // The bus number is what the guest programs now, not at plug time.
    rp.configWrite(PCI_SECONDARY_BUS, 1, 9);
    expect(pci_device_iommu_address_space(dev).name).toBe('as:9:2');
  });

  it('behind a PCIe-to-PCI bridge: aliased to (the bridge secondary bus, devfn 0)', () => {
    const root = new PCIBus('pcie.0');
    const { ops, calls } = fakeOps();
    pci_setup_iommu(root, ops, 'o');
    const rp = new PCIBridge('rp', 'root-port');
    plugBridge(root, rp, PCI_DEVFN(1, 0), 1, 2);
    const p2p = new PCIBridge('p2p', 'pcie-pci');
    plugBridge(rp.secondary, p2p, PCI_DEVFN(0, 0), 2);
    const a = new PCIDevice('a');
    const b = new PCIDevice('b');
    a.realizeOn(p2p.secondary, PCI_DEVFN(1, 0));
    b.realizeOn(p2p.secondary, PCI_DEVFN(7, 3));
    expect(pci_device_iommu_address_space(a).name).toBe('as:2:0');
    expect(pci_device_iommu_address_space(b).name).toBe('as:2:0');
    expect(calls.map((c) => c.busName)).toEqual(['p2p.0', 'p2p.0']);
    expect(pci_device_iommu_lookup(a)?.iommuBus).toBe(root);
  });

  it('behind a conventional PCI-PCI bridge: aliased to the bridge itself (its bus, its devfn)', () => {
    const root = new PCIBus('pcie.0');
    const { ops } = fakeOps();
    pci_setup_iommu(root, ops, 'o');
    const rp = new PCIBridge('rp', 'root-port');
    plugBridge(root, rp, PCI_DEVFN(1, 0), 1, 3);
    const p2p = new PCIBridge('p2p', 'pcie-pci');
    plugBridge(rp.secondary, p2p, PCI_DEVFN(0, 0), 2, 3);
    const pb = new PCIBridge('pb', 'pci-pci');
    plugBridge(p2p.secondary, pb, PCI_DEVFN(4, 0), 3);
    const d = new PCIDevice('d');
    d.realizeOn(pb.secondary, PCI_DEVFN(2, 0));
    // pci-pci: (bus 2, devfn of pb) — then the PCIe-to-PCI bridge above aliases again to (2, 0).
    expect(pci_device_iommu_address_space(d).name).toBe('as:2:0');
    // With ops on the PCIe-to-PCI bridge's bus, the climb stops there: aliased to pb.
    const { ops: ops2, calls: calls2 } = fakeOps();
    pci_setup_iommu(p2p.secondary, ops2, 'inner');
    expect(pci_device_iommu_address_space(d).name).toBe(`as:2:${PCI_DEVFN(4, 0)}`);
    expect(calls2[0]!.opaque).toBe('inner');
  });

  it('ops on an intermediate bus win over the root', () => {
    const root = new PCIBus('pcie.0');
    pci_setup_iommu(root, fakeOps().ops, 'root');
    const rp = new PCIBridge('rp', 'root-port');
    plugBridge(root, rp, PCI_DEVFN(2, 0), 4);
    const { ops, calls } = fakeOps();
    pci_setup_iommu(rp.secondary, ops, 'rp');
    const d = new PCIDevice('d');
    d.realizeOn(rp.secondary, 0);
    pci_device_iommu_address_space(d);
    expect(calls[0]!.opaque).toBe('rp');
  });

  it('property: any chain of root ports ends at the root ops with the device identity unchanged', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 255 }), (depth, devfn) => {
        const root = new PCIBus('pcie.0');
        const { ops, calls } = fakeOps();
        pci_setup_iommu(root, ops, 'o');
        let bus = root;
        for (let i = 0; i < depth; i++) {
          const rp = new PCIBridge(`rp${i}`, 'root-port');
          plugBridge(bus, rp, PCI_DEVFN(1, 0), i + 1, depth);
          bus = rp.secondary;
        }
        const d = new PCIDevice('d');
        expect(d.realizeOn(bus, devfn)).toBe(0);
        pci_device_iommu_address_space(d);
        expect(calls).toHaveLength(1);
        expect([calls[0]!.bus, calls[0]!.devfn]).toEqual([depth, devfn]);
      }),
    );
  });
});

describe('set/unset_iommu_context and inject_faults', () => {
  it('reach the ops with the aliased identity', () => {
    const root = new PCIBus('pcie.0');
    const { ops, calls } = fakeOps();
    pci_setup_iommu(root, ops, 'o');
    const d = new PCIDevice('d');
    d.realizeOn(root, 8);
    expect(pci_device_set_iommu_context(d, ctx)).toBe(0);
    pci_device_unset_iommu_context(d);
    const f: IommuFaultRecord = {
      type: 1,
      padding: 0,
      u: {
        event: { reason: 5, flags: 0, pasid: 0, perm: 0, addr: 0n, fetch_addr: 0n },
        prm: { flags: 0, pasid: 0, grpid: 0, perm: 0, addr: 0n, private_data: [0n, 0n] },
      },
    };
    expect(pci_device_iommu_inject_faults(d, [f, f])).toBe(0);
    expect(calls.map((c) => [c.op, c.devfn, c.extra])).toEqual([
      ['set', 8, 'ctx'],
      ['unset', 8, undefined],
      ['inject', 8, 2],
    ]);
  });

  it('-ENOENT without the op (or without any ops); unset is then a no-op', () => {
    const root = new PCIBus('pcie.0');
    const d = new PCIDevice('d');
    d.realizeOn(root, 0);
    expect(pci_device_set_iommu_context(d, ctx)).toBe(-ENOENT);
    expect(pci_device_iommu_inject_faults(d, [])).toBe(-ENOENT);
    expect(() => pci_device_unset_iommu_context(d)).not.toThrow();
    const { ops, calls } = fakeOps({ context: false, faults: false });
    pci_setup_iommu(root, ops, 'o');
    expect(pci_device_set_iommu_context(d, ctx)).toBe(-ENOENT);
    expect(pci_device_iommu_inject_faults(d, [])).toBe(-ENOENT);
    pci_device_unset_iommu_context(d);
    expect(calls).toEqual([]);
    expect(pci_device_set_iommu_context(new PCIDevice('loose'), ctx)).toBe(-ENOENT);
  });
});

describe('plugging', () => {
  it('a taken slot is EBUSY, a bad devfn EINVAL, a plugged device cannot be plugged twice; unplug frees the slot', () => {
    const root = new PCIBus('pcie.0');
    const a = new PCIDevice('a');
    const b = new PCIDevice('b');
    expect(a.realizeOn(root, 3)).toBe(0);
    expect(b.realizeOn(root, 3)).toBe(-EBUSY);
    expect(b.realizeOn(root, 256)).toBe(-EINVAL);
    expect(a.realizeOn(root, 4)).toBe(-EINVAL);
    a.unplug();
    expect(a.devfn).toBe(-1);
    expect(b.realizeOn(root, 3)).toBe(0);
    expect(root.devices()).toEqual([b]);
  });
});

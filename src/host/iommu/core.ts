/**
 * The Linux iommu core (drivers/iommu/iommu.c of ~v5.10–v5.13, plus the nested-stage series of
 * seed-spec.md §1.2–§1.4): IOMMU instances registered by drivers, device probing, iommu groups,
 * domains (blocked, identity, DMA, unmanaged, nesting), attach/detach, map/unmap split by the
 * domain's page sizes, iova_to_phys, the PASID-table and cache-invalidation uAPI, guest MSI
 * bindings, reserved regions, and fault reporting to per-device handlers. The DMA API and MSI
 * cookies live in `dma-iommu.ts`, reached through `core.dma` and the wrappers at the end.
 *
 * `IommuCore` methods carry the Linux names in camelCase (iommu_attach_group →
 * iommuAttachGroup). Every refused operation returns its errno and leaves the core, the driver
 * and the domains as they were.
 *
 * Decisions (where Linux is silent, undefined, or where vsva keeps state consistent instead of
 * WARNing):
 * - Decision: registering an instance name twice is -EEXIST; unregistering one that still has
 *   probed devices or live domains is -EBUSY.
 * - Decision: probing a device twice is -EEXIST.
 * - Decision: groups are found by (IOMMU instance, isolationKey): devices with the same key behind
 *   the same instance share a group; no key, a new group. Ids are the lowest free from 0.
 * - Decision: the default domain is IDENTITY with `passthrough`, else DMA; if the driver refuses
 *   that type the other is tried (Linux v5.10 falls back only IDENTITY → DMA). If both are refused
 *   the device is probed without a default domain, as Linux ("not all drivers support default
 *   domains").
 * - Decision: a device joining an existing group is attached to the group's *current* domain only
 *   (Linux v5.10 then also attaches it to the default domain, even when VFIO owns the group).
 * - Decision: iommu_attach_group rolls back the devices already attached when one fails (Linux
 *   v5.10 leaves them attached to the new domain).
 * - Decision: detaching a domain that is not the group's current domain is a no-op (Linux would
 *   re-attach the default domain whatever domain is named).
 * - Decision: freeing a domain that is some group's current or default domain is -EBUSY (Linux
 *   frees it under the group's feet); freeing an unknown or freed domain is -EINVAL.
 * - Decision: iommu_map checks the pgsize bitmap (-ENODEV) before the domain type (-EINVAL), as
 *   Linux v5.10 does; addresses and sizes must be integers below 2^53, else -EINVAL (unmap: 0).
 *   No completion call follows a successful map (the contract has no iotlb_sync_map).
 * - Decision: unregistering a device fault handler that is not registered returns 0 (as Linux
 *   v5.10; the brief suggested -EINVAL); a device never probed gives -EINVAL. Page requests are
 *   delivered like any fault but not tracked for iommu_page_response (no PRQ model yet).
 */

import { EBUSY, EEXIST, EINVAL, ENODEV, ENOSYS } from '../../uapi/errno.ts';
import type { IommuCacheInvalidateInfo, IommuPasidTableConfig } from '../../uapi/iommu.ts';
import type { UserPtr } from '../uaccess.ts';
import {
  type CacheInvalidateCheck,
  iommuCacheInvalidate,
  iommuUapiCacheInvalidate,
  iommuUapiCacheInvalidateChecked,
} from './cache-invalidate.ts';
import { type CookieSummary, DmaIommu, type PrepareMsiResult } from './dma-iommu.ts';
import {
  type CheckedResult,
  iommuAttachPasidTable,
  iommuDetachPasidTable,
  iommuUapiAttachPasidTable,
  iommuUapiAttachPasidTableChecked,
  type PasidTableCheck,
} from './pasid-table.ts';
import { alignDownTo, alignUpTo, iommuPgsize, isAddress, minPageSize } from './pgsize.ts';
import {
  __IOMMU_DOMAIN_PAGING,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_TYPE_NAMES,
  IOMMU_DOMAIN_UNMANAGED,
  type IommuCap,
  type IommuCoreServices,
  type IommuDevFaultHandler,
  type IommuDevice,
  type IommuDomain,
  type IommuFault,
  type IommuOps,
  type IommuResvRegion,
  type IommuResvType,
} from './types.ts';

export interface IommuCoreOptions {
  /** `iommu.passthrough=1`: default domains are IDENTITY instead of DMA. */
  readonly passthrough?: boolean;
}

/** `struct iommu_group` as users see it. The core alone changes it. */
export interface IommuGroup {
  /** The number of /sys/kernel/iommu_groups/<id> and, later, /dev/vfio/<id>. */
  readonly id: number;
  readonly iommuName: string;
  readonly isolationKey: string | undefined;
  /** Members, in the order they were added. */
  readonly devices: readonly IommuDevice[];
  readonly defaultDomain: IommuDomain | undefined;
  /** The domain the group is attached to now. */
  readonly domain: IommuDomain | undefined;
}

export interface IommuFaultStats {
  /** Faults handed to the device's handler. */
  readonly delivered: number;
  /** Faults reported while no handler was registered. */
  readonly dropped: number;
}

/** A JSON-friendly picture of the core, for "state unchanged" checks and reports. */
export interface IommuCoreSnapshot {
  instances: string[];
  groups: {
    id: number;
    iommu: string;
    devices: string[];
    defaultDomain: number | null;
    domain: number | null;
  }[];
  domains: {
    id: number;
    type: string;
    iommu: string | null;
    mappedBytes: number;
    nesting: boolean;
    groups: number[];
    cookie: CookieSummary | null;
  }[];
  devices: { name: string; group: number; handler: boolean; delivered: number; dropped: number }[];
}

interface Instance {
  readonly name: string;
  readonly ops: IommuOps;
  readonly services: IommuCoreServices;
}

class Group implements IommuGroup {
  readonly id: number;
  readonly iommuName: string;
  readonly isolationKey: string | undefined;
  readonly devices: IommuDevice[] = [];
  defaultDomain: IommuDomain | undefined = undefined;
  domain: IommuDomain | undefined = undefined;
  alive = true;

  constructor(id: number, iommuName: string, isolationKey: string | undefined) {
    this.id = id;
    this.iommuName = iommuName;
    this.isolationKey = isolationKey;
  }
}

interface DeviceState {
  readonly instance: Instance;
  readonly group: Group;
  fault: { handler: IommuDevFaultHandler; data: unknown } | undefined;
  delivered: number;
  dropped: number;
}

interface DomainState {
  readonly id: number;
  readonly instance: Instance | undefined;
  mappedBytes: number;
  nesting: boolean;
  /** Groups whose current domain this is. */
  readonly groups: Set<Group>;
  defaultOf: Group | undefined;
  freed: boolean;
}

const KNOWN_DOMAIN_TYPES: readonly number[] = [
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_DOMAIN_DMA,
];

/** enum iommu_resv_type order, which sorts regions that start at the same address. */
const RESV_TYPE_ORDER: readonly IommuResvType[] = ['direct', 'reserved', 'msi', 'sw-msi'];

export class IommuCore {
  readonly options: IommuCoreOptions;
  /** dma-iommu: cookies, the DMA API, MSI pages. */
  readonly dma: DmaIommu;
  /** WARN_ON()s: conditions Linux warns about and carries on. */
  readonly warnings: string[] = [];

  private readonly instances = new Map<string, Instance>();
  private readonly devices = new Map<IommuDevice, DeviceState>();
  private readonly groupsById = new Map<number, Group>();
  private readonly groupsByKey = new Map<string, Group>();
  private readonly domainStates = new WeakMap<IommuDomain, DomainState>();
  private readonly liveDomains = new Set<IommuDomain>();
  private nextDomainId = 1;

  constructor(options: IommuCoreOptions = {}) {
    this.options = options;
    this.dma = new DmaIommu({
      iommuMap: (d, iova, paddr, size, prot) => this.iommuMap(d, iova, paddr, size, prot),
      iommuUnmap: (d, iova, size) => this.iommuUnmap(d, iova, size),
      iommuGetDomainForDev: (dev) => this.iommuGetDomainForDev(dev),
      iommuGetDmaDomain: (dev) => this.iommuGetDmaDomain(dev),
      iommuGetResvRegions: (dev) => this.iommuGetResvRegions(dev),
      iommuDomainIsNesting: (d) => this.iommuDomainIsNesting(d),
      warn: (m) => this.warn(m),
    });
  }

  private warn(message: string): void {
    this.warnings.push(message);
  }

  // ---------------------------------------------------------------- IOMMU instances

  /**
   * iommu_device_register (+ bus_set_iommu): makes the instance `name` available to devices whose
   * `iommuName` is `name`. Returns the services the driver calls back into, or -EINVAL (empty
   * name) / -EEXIST (name taken).
   */
  registerIommu(name: string, ops: IommuOps): IommuCoreServices | number {
    if (name === '') return -EINVAL;
    if (this.instances.has(name)) return -EEXIST;
    const services: IommuCoreServices = {
      reportDeviceFault: (dev, fault) => this.iommuReportDeviceFault(dev, fault),
      dmaBindGuestMsi: (d, giova, gpa, size) => this.dma.iommuDmaBindGuestMsi(d, giova, gpa, size),
      dmaUnbindGuestMsi: (d, giova) => this.dma.iommuDmaUnbindGuestMsi(d, giova),
    };
    this.instances.set(name, { name, ops, services });
    return services;
  }

  /** iommu_device_unregister: -ENODEV unknown, -EBUSY while devices or domains use it. */
  unregisterIommu(name: string): number {
    const inst = this.instances.get(name);
    if (inst === undefined) return -ENODEV;
    for (const st of this.devices.values()) if (st.instance === inst) return -EBUSY;
    for (const d of this.liveDomains) if (this.domainStates.get(d)?.instance === inst) return -EBUSY;
    this.instances.delete(name);
    return 0;
  }

  /** The names of the registered instances. */
  iommuInstances(): string[] {
    return [...this.instances.keys()];
  }

  // ---------------------------------------------------------------- devices

  /**
   * iommu_probe_device: finds the device's IOMMU instance (-ENODEV), lets the driver probe it
   * (its error is returned), puts it in its group (iommu_group_get_for_dev), allocates the group's
   * default domain on the first device, and attaches the device to the group's domain. Any
   * failure undoes everything. 0 on success.
   */
  probeDevice(dev: IommuDevice): number {
    if (this.devices.has(dev)) return -EEXIST;
    const inst = this.instances.get(dev.iommuName);
    if (inst === undefined) return -ENODEV;
    const r = inst.ops.probeDevice(dev);
    if (r !== 0) return r;

    const key = dev.isolationKey === undefined ? undefined : `${inst.name}\u0000${dev.isolationKey}`;
    const existing = key === undefined ? undefined : this.groupsByKey.get(key);
    const group = existing ?? this.allocGroup(inst.name, dev.isolationKey, key);
    group.devices.push(dev);
    this.devices.set(dev, { instance: inst, group, fault: undefined, delivered: 0, dropped: 0 });

    if (existing === undefined) this.allocDefaultDomain(group, inst);
    const ret = group.domain === undefined ? 0 : group.domain.ops.attachDev(group.domain, dev);
    if (ret !== 0) {
      this.removeFromGroup(dev, group);
      inst.ops.releaseDevice(dev);
      return ret;
    }

    const dd = group.defaultDomain;
    if (dd !== undefined && dd.type === IOMMU_DOMAIN_DMA) {
      const regions = this.iommuGetResvRegions(dev);
      const ri = this.dma.iommuDmaInitDomain(dd, regions);
      if (ri !== 0) this.warn(`iommu_dma_init_domain for ${dev.name}: ${ri}`);
      this.createDirectMappings(dd, regions);
    }
    return 0;
  }

  /** iommu_create_device_direct_mappings: identity-maps 'direct' regions in a DMA default domain. */
  private createDirectMappings(domain: IommuDomain, regions: readonly IommuResvRegion[]): void {
    const pg = minPageSize(domain.pgsizeBitmap);
    if (pg === 0) return;
    for (const r of regions) {
      if (r.type !== 'direct') continue;
      for (let a = alignDownTo(r.start, pg); a < alignUpTo(r.start + r.length, pg); a += pg) {
        if (this.iommuIovaToPhys(domain, a) !== 0) continue;
        const m = this.iommuMap(domain, a, a, pg, r.prot);
        if (m !== 0) {
          this.warn(`direct mapping 0x${a.toString(16)}: ${m}`);
          return;
        }
      }
    }
    domain.ops.flushIotlbAll?.(domain);
  }

  /**
   * iommu_release_device (device removal): detaches the device from its group's domain, lets the
   * driver release it, drops it (and its fault handler) from the group, and frees the group and
   * its default domain when it was the last member. No-op for a device that is not probed.
   */
  releaseDevice(dev: IommuDevice): void {
    const st = this.devices.get(dev);
    if (st === undefined) return;
    const group = st.group;
    if (group.domain !== undefined) group.domain.ops.detachDev(group.domain, dev);
    st.instance.ops.releaseDevice(dev);
    this.removeFromGroup(dev, group);
  }

  private removeFromGroup(dev: IommuDevice, group: Group): void {
    const i = group.devices.indexOf(dev);
    if (i >= 0) group.devices.splice(i, 1);
    this.devices.delete(dev);
    if (group.devices.length === 0) this.destroyGroup(group);
  }

  private allocGroup(iommuName: string, isolationKey: string | undefined, key: string | undefined): Group {
    let id = 0;
    while (this.groupsById.has(id)) id++;
    const g = new Group(id, iommuName, isolationKey);
    this.groupsById.set(id, g);
    if (key !== undefined) this.groupsByKey.set(key, g);
    return g;
  }

  private destroyGroup(group: Group): void {
    this.setGroupDomain(group, undefined);
    const dd = group.defaultDomain;
    group.defaultDomain = undefined;
    if (dd !== undefined) {
      this.stateOf(dd).defaultOf = undefined;
      this.freeDomain(dd);
    }
    group.alive = false;
    this.groupsById.delete(group.id);
    for (const [k, g] of this.groupsByKey) if (g === group) this.groupsByKey.delete(k);
  }

  /** iommu_group_alloc_default_domain with the fallback of the decisions above. */
  private allocDefaultDomain(group: Group, inst: Instance): void {
    const first = this.options.passthrough === true ? IOMMU_DOMAIN_IDENTITY : IOMMU_DOMAIN_DMA;
    const second = first === IOMMU_DOMAIN_DMA ? IOMMU_DOMAIN_IDENTITY : IOMMU_DOMAIN_DMA;
    for (const type of [first, second]) {
      const dom = this.allocDomain(inst, type);
      if (dom === undefined) continue;
      group.defaultDomain = dom;
      this.stateOf(dom).defaultOf = group;
      if (group.domain === undefined) this.setGroupDomain(group, dom);
      return;
    }
  }

  // ---------------------------------------------------------------- groups

  /** iommu_group_get: the device's group, or undefined when it is not probed. */
  iommuGroupGet(dev: IommuDevice): IommuGroup | undefined {
    return this.devices.get(dev)?.group;
  }

  /** iommu_group_get_by_id. */
  iommuGroupGetById(id: number): IommuGroup | undefined {
    return this.groupsById.get(id);
  }

  /** Every live group, by id. */
  iommuGroups(): IommuGroup[] {
    return [...this.groupsById.values()].sort((a, b) => a.id - b.id);
  }

  /** iommu_group_for_each_dev: calls `fn` per member until one returns non-zero, which is returned. */
  iommuGroupForEachDev(group: IommuGroup, fn: (dev: IommuDevice) => number): number {
    for (const dev of [...group.devices]) {
      const r = fn(dev);
      if (r !== 0) return r;
    }
    return 0;
  }

  /** iommu_group_default_domain. */
  iommuGroupDefaultDomain(group: IommuGroup): IommuDomain | undefined {
    return group.defaultDomain;
  }

  /** iommu_get_domain_for_dev: the domain the device's group is attached to now. */
  iommuGetDomainForDev(dev: IommuDevice): IommuDomain | undefined {
    return this.devices.get(dev)?.group.domain;
  }

  /** iommu_get_dma_domain: the device's default domain (what the kernel DMA API uses). */
  iommuGetDmaDomain(dev: IommuDevice): IommuDomain | undefined {
    return this.devices.get(dev)?.group.defaultDomain;
  }

  // ---------------------------------------------------------------- domains

  private stateOf(domain: IommuDomain): DomainState {
    let st = this.domainStates.get(domain);
    if (st === undefined) {
      // A domain the core did not allocate (a driver's own): tracked from first sight.
      st = {
        id: this.nextDomainId++,
        instance: undefined,
        mappedBytes: 0,
        nesting: false,
        groups: new Set(),
        defaultOf: undefined,
        freed: false,
      };
      this.domainStates.set(domain, st);
    }
    return st;
  }

  private allocDomain(inst: Instance, type: number): IommuDomain | undefined {
    const dom = inst.ops.domainAlloc(type);
    if (dom === undefined) return undefined;
    if (dom.type === IOMMU_DOMAIN_DMA && this.dma.iommuGetDmaCookie(dom) !== 0) {
      inst.ops.domainFree(dom);
      return undefined;
    }
    this.domainStates.set(dom, {
      id: this.nextDomainId++,
      instance: inst,
      mappedBytes: 0,
      nesting: false,
      groups: new Set(),
      defaultOf: undefined,
      freed: false,
    });
    this.liveDomains.add(dom);
    return dom;
  }

  private freeDomain(domain: IommuDomain): void {
    this.dma.iommuPutDmaCookie(domain);
    domain.ops.domainFree(domain);
    this.stateOf(domain).freed = true;
    this.liveDomains.delete(domain);
  }

  /**
   * iommu_domain_alloc(bus) / __iommu_domain_alloc(bus, type): a new domain of `type` (default
   * UNMANAGED) from the instance named, or the one translating `dev`. Undefined when there is no
   * such instance, the type is unknown, or the driver (or the DMA cookie) cannot provide one.
   */
  iommuDomainAlloc(
    target: string | IommuDevice,
    type: number = IOMMU_DOMAIN_UNMANAGED,
  ): IommuDomain | undefined {
    const inst =
      typeof target === 'string'
        ? this.instances.get(target)
        : (this.devices.get(target)?.instance ?? this.instances.get(target.iommuName));
    if (inst === undefined || !KNOWN_DOMAIN_TYPES.includes(type)) return undefined;
    return this.allocDomain(inst, type);
  }

  /**
   * iommu_domain_free: drops the dma-iommu cookie and lets the driver free the domain. -EBUSY while
   * it is a group's current or default domain, -EINVAL if unknown or already freed.
   */
  iommuDomainFree(domain: IommuDomain): number {
    const st = this.domainStates.get(domain);
    if (st === undefined || st.freed) return -EINVAL;
    if (st.defaultOf !== undefined || st.groups.size > 0) return -EBUSY;
    this.freeDomain(domain);
    return 0;
  }

  /** The core's serial number of a domain (for reports), or undefined if never seen. */
  iommuDomainId(domain: IommuDomain): number | undefined {
    return this.domainStates.get(domain)?.id;
  }

  /** Bytes mapped by iommu_map and not yet unmapped by iommu_unmap. */
  iommuDomainMappedBytes(domain: IommuDomain): number {
    return this.domainStates.get(domain)?.mappedBytes ?? 0;
  }

  /** Domains allocated through the core and not freed. */
  iommuDomains(): IommuDomain[] {
    return [...this.liveDomains];
  }

  /**
   * iommu_enable_nesting (v5.13): UNMANAGED domains only (-EINVAL), the driver must have the
   * operation (-EINVAL), then the driver's result (-EPERM once attached, in the SMMUv3 driver).
   */
  iommuEnableNesting(domain: IommuDomain): number {
    if (domain.type !== IOMMU_DOMAIN_UNMANAGED) return -EINVAL;
    const op = domain.ops.enableNesting;
    if (op === undefined) return -EINVAL;
    const r = op.call(domain.ops, domain);
    if (r === 0) this.stateOf(domain).nesting = true;
    return r;
  }

  /** DOMAIN_ATTR_NESTING: whether iommuEnableNesting succeeded on the domain. */
  iommuDomainIsNesting(domain: IommuDomain): boolean {
    return this.domainStates.get(domain)?.nesting ?? false;
  }

  /** iommu_capable(bus, cap) for the instance named or the device's instance. */
  iommuCapable(target: string | IommuDevice, cap: IommuCap): boolean {
    const inst =
      typeof target === 'string'
        ? this.instances.get(target)
        : (this.devices.get(target)?.instance ?? this.instances.get(target.iommuName));
    return inst?.ops.capable?.(cap) ?? false;
  }

  // ---------------------------------------------------------------- attach / detach

  private setGroupDomain(group: Group, domain: IommuDomain | undefined): void {
    if (group.domain !== undefined) this.stateOf(group.domain).groups.delete(group);
    group.domain = domain;
    if (domain !== undefined) this.stateOf(domain).groups.add(group);
  }

  /**
   * __iommu_attach_group: -EBUSY unless the group is in its default domain (or has none); then
   * every member is attached; if one fails, those already attached go back to the group's domain
   * (or are detached when it has none) and the error is returned.
   */
  private attachGroup(domain: IommuDomain, group: Group): number {
    if (!group.alive) return -ENODEV;
    if (this.domainStates.get(domain)?.freed === true) return -EINVAL;
    if (group.defaultDomain !== undefined && group.domain !== group.defaultDomain) return -EBUSY;
    const done: IommuDevice[] = [];
    for (const dev of group.devices) {
      const r = domain.ops.attachDev(domain, dev);
      if (r !== 0) {
        this.rollbackAttach(domain, group, done);
        return r;
      }
      done.push(dev);
    }
    this.setGroupDomain(group, domain);
    return 0;
  }

  private rollbackAttach(domain: IommuDomain, group: Group, done: readonly IommuDevice[]): void {
    const prev = group.domain;
    for (const dev of done) {
      if (prev === undefined) {
        domain.ops.detachDev(domain, dev);
        continue;
      }
      const r = prev.ops.attachDev(prev, dev);
      if (r !== 0) this.warn(`rollback of ${dev.name} to its previous domain failed: ${r}`);
    }
  }

  /**
   * __iommu_detach_group: back to the default domain (each member re-attached; on a failure Linux
   * WARNs and the group stays where it was), or, without a default domain, every member detached.
   * No-op when `domain` is not the group's current domain.
   */
  private detachGroup(domain: IommuDomain, group: Group): void {
    if (!group.alive || group.domain !== domain) return;
    const dd = group.defaultDomain;
    if (dd === undefined) {
      for (const dev of group.devices) domain.ops.detachDev(domain, dev);
      this.setGroupDomain(group, undefined);
      return;
    }
    if (domain === dd) return;
    for (const dev of group.devices) {
      const r = dd.ops.attachDev(dd, dev);
      if (r !== 0) {
        this.warn(`re-attaching ${dev.name} to its default domain failed: ${r}`);
        return;
      }
    }
    this.setGroupDomain(group, dd);
  }

  /**
   * iommu_attach_device: -ENODEV if the device is not probed, -EINVAL unless it is alone in its
   * group, then as iommu_attach_group.
   */
  iommuAttachDevice(domain: IommuDomain, dev: IommuDevice): number {
    const group = this.devices.get(dev)?.group;
    if (group === undefined) return -ENODEV;
    if (group.devices.length !== 1) return -EINVAL;
    return this.attachGroup(domain, group);
  }

  /** iommu_detach_device: no-op unless the device is probed and alone in its group (else a WARN). */
  iommuDetachDevice(domain: IommuDomain, dev: IommuDevice): void {
    const group = this.devices.get(dev)?.group;
    if (group === undefined) return;
    if (group.devices.length !== 1) {
      this.warn(`iommu_detach_device(${dev.name}): group ${group.id} has ${group.devices.length} devices`);
      return;
    }
    this.detachGroup(domain, group);
  }

  /** iommu_attach_group: see attachGroup above. -ENODEV for a group that no longer exists. */
  iommuAttachGroup(domain: IommuDomain, group: IommuGroup): number {
    const g = this.groupsById.get(group.id);
    if (g !== group) return -ENODEV;
    return this.attachGroup(domain, g);
  }

  /** iommu_detach_group: see detachGroup above. */
  iommuDetachGroup(domain: IommuDomain, group: IommuGroup): void {
    const g = this.groupsById.get(group.id);
    if (g !== group) return;
    this.detachGroup(domain, g);
  }

  // ---------------------------------------------------------------- map / unmap

  /**
   * iommu_map: -ENODEV without page sizes, -EINVAL for a non-paging domain or when iova, paddr or
   * size is not aligned to the smallest page size; then one driver `map` per chunk, each chunk the
   * largest page size that fits the remaining size and the alignment of both addresses
   * (iommu_pgsize). On a failure everything this call mapped is unmapped and the error returned.
   */
  iommuMap(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number {
    const st = this.stateOf(domain);
    if (st.freed) return -EINVAL;
    const bitmap = domain.pgsizeBitmap;
    if (bitmap === 0) return -ENODEV;
    if ((domain.type & __IOMMU_DOMAIN_PAGING) === 0) return -EINVAL;
    if (!isAddress(iova) || !isAddress(paddr) || !isAddress(size)) return -EINVAL;
    if (!isAddress(iova + size) || !isAddress(paddr + size)) return -EINVAL;
    const min = minPageSize(bitmap);
    if (iova % min !== 0 || paddr % min !== 0 || size % min !== 0) return -EINVAL;

    let done = 0;
    let ret = 0;
    while (done < size) {
      const pg = iommuPgsize(bitmap, iova + done, paddr + done, size - done);
      ret = domain.ops.map(domain, iova + done, paddr + done, pg, prot);
      if (ret !== 0) break;
      done += pg;
    }
    if (ret !== 0) {
      this.unmapChunks(domain, iova, done);
      domain.ops.iotlbSync?.(domain);
      return ret;
    }
    st.mappedBytes += size;
    return 0;
  }

  /** __iommu_unmap's loop: chunks until `size` bytes are unmapped or a chunk unmaps nothing. */
  private unmapChunks(domain: IommuDomain, iova: number, size: number): number {
    const bitmap = domain.pgsizeBitmap;
    let unmapped = 0;
    while (unmapped < size) {
      const pg = iommuPgsize(bitmap, iova + unmapped, 0, size - unmapped);
      const u = domain.ops.unmap(domain, iova + unmapped, pg);
      if (!(u > 0)) break;
      unmapped += u;
    }
    return unmapped;
  }

  /**
   * iommu_unmap: the bytes unmapped. 0 without page sizes, for a non-paging domain, or when iova
   * or size is not aligned to the smallest page size; otherwise chunk by chunk (iommu_pgsize on
   * the IOVA alone), stopping at the first chunk the driver reports as not mapped. The driver's
   * iotlbSync completes the unmap before this returns.
   */
  iommuUnmap(domain: IommuDomain, iova: number, size: number): number {
    const st = this.stateOf(domain);
    let unmapped = 0;
    const bitmap = domain.pgsizeBitmap;
    const min = minPageSize(bitmap);
    if (
      !st.freed &&
      bitmap !== 0 &&
      (domain.type & __IOMMU_DOMAIN_PAGING) !== 0 &&
      isAddress(iova) &&
      isAddress(size) &&
      isAddress(iova + size) &&
      iova % min === 0 &&
      size % min === 0
    )
      unmapped = this.unmapChunks(domain, iova, size);
    if (!st.freed) domain.ops.iotlbSync?.(domain);
    st.mappedBytes = Math.max(0, st.mappedBytes - unmapped);
    return unmapped;
  }

  /**
   * iommu_iova_to_phys: an IDENTITY domain returns the IOVA, a BLOCKED domain 0, any other asks the
   * driver (0 when unmapped).
   */
  iommuIovaToPhys(domain: IommuDomain, iova: number): number {
    if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
    if (domain.type === IOMMU_DOMAIN_BLOCKED) return 0;
    return domain.ops.iovaToPhys(domain, iova);
  }

  // ---------------------------------------------------------------- nested stage (§1.2–§1.4)

  /** iommu_attach_pasid_table (§1.2). */
  iommuAttachPasidTable(domain: IommuDomain, cfg: IommuPasidTableConfig): number {
    return iommuAttachPasidTable(domain, cfg);
  }

  /** iommu_detach_pasid_table (§1.2). */
  iommuDetachPasidTable(domain: IommuDomain): void {
    iommuDetachPasidTable(domain);
  }

  /** iommu_uapi_attach_pasid_table (§1.2, exact order of checks in pasid-table.ts). */
  iommuUapiAttachPasidTable(domain: IommuDomain, uinfo: UserPtr): number {
    return iommuUapiAttachPasidTable(domain, uinfo);
  }

  /** The same, naming the check that decided. */
  iommuUapiAttachPasidTableChecked(domain: IommuDomain, uinfo: UserPtr): CheckedResult<PasidTableCheck> {
    return iommuUapiAttachPasidTableChecked(domain, uinfo);
  }

  /** iommu_uapi_cache_invalidate (§1.4, order of checks in cache-invalidate.ts). */
  iommuUapiCacheInvalidate(domain: IommuDomain, dev: IommuDevice, uinfo: UserPtr): number {
    return iommuUapiCacheInvalidate(domain, dev, uinfo);
  }

  /** The same, naming the check that decided. */
  iommuUapiCacheInvalidateChecked(
    domain: IommuDomain,
    dev: IommuDevice,
    uinfo: UserPtr,
  ): CheckedResult<CacheInvalidateCheck> {
    return iommuUapiCacheInvalidateChecked(domain, dev, uinfo);
  }

  /** iommu_cache_invalidate: the kernel-pointer variant. */
  iommuCacheInvalidate(domain: IommuDomain, dev: IommuDevice, info: IommuCacheInvalidateInfo): number {
    return iommuCacheInvalidate(domain, dev, info);
  }

  /** iommu_bind_guest_msi (§1.4): -ENODEV without the callback, else the driver's result. */
  iommuBindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    const op = domain.ops.bindGuestMsi;
    if (op === undefined) return -ENODEV;
    return op.call(domain.ops, domain, giova, gpa, size);
  }

  /** iommu_unbind_guest_msi (§1.4): no-op without the callback. */
  iommuUnbindGuestMsi(domain: IommuDomain, giova: number): void {
    domain.ops.unbindGuestMsi?.call(domain.ops, domain, giova);
  }

  // ---------------------------------------------------------------- faults

  /**
   * iommu_register_device_fault_handler: -EINVAL if the device is not probed, -EBUSY if it already
   * has a handler.
   */
  iommuRegisterDeviceFaultHandler(dev: IommuDevice, handler: IommuDevFaultHandler, data: unknown): number {
    const st = this.devices.get(dev);
    if (st === undefined) return -EINVAL;
    if (st.fault !== undefined) return -EBUSY;
    st.fault = { handler, data };
    return 0;
  }

  /** iommu_unregister_device_fault_handler: -EINVAL if the device is not probed; else 0. */
  iommuUnregisterDeviceFaultHandler(dev: IommuDevice): number {
    const st = this.devices.get(dev);
    if (st === undefined) return -EINVAL;
    st.fault = undefined;
    return 0;
  }

  /**
   * iommu_report_device_fault: -EINVAL if the device is not probed or has no handler (counted as
   * dropped); else the handler's return value (counted as delivered).
   */
  iommuReportDeviceFault(dev: IommuDevice, fault: IommuFault): number {
    const st = this.devices.get(dev);
    if (st === undefined) return -EINVAL;
    if (st.fault === undefined) {
      st.dropped++;
      return -EINVAL;
    }
    st.delivered++;
    return st.fault.handler(fault, st.fault.data);
  }

  /** The device's fault counters, or undefined when it is not probed. */
  iommuDeviceFaultStats(dev: IommuDevice): IommuFaultStats | undefined {
    const st = this.devices.get(dev);
    return st === undefined ? undefined : { delivered: st.delivered, dropped: st.dropped };
  }

  /** iommu_set_fault_handler: the legacy domain-wide handler. */
  iommuSetFaultHandler(domain: IommuDomain, handler: IommuDomain['handler']): void {
    domain.handler = handler;
  }

  /** report_iommu_fault: the domain handler's result, or -ENOSYS without one. */
  reportIommuFault(domain: IommuDomain, dev: IommuDevice, iova: number, flags: number): number {
    return domain.handler === undefined ? -ENOSYS : domain.handler(domain, dev, iova, flags);
  }

  // ---------------------------------------------------------------- reserved regions

  /** iommu_get_resv_regions: the driver's reserved regions of the device ([] if not probed). */
  iommuGetResvRegions(dev: IommuDevice): IommuResvRegion[] {
    const st = this.devices.get(dev);
    if (st === undefined) return [];
    return [...(st.instance.ops.getResvRegions?.(dev) ?? [])];
  }

  /**
   * iommu_get_group_resv_regions: the members' regions, overlapping or adjacent regions of the same
   * type merged, sorted by start address (then type).
   */
  iommuGetGroupResvRegions(group: IommuGroup): IommuResvRegion[] {
    const all = group.devices.flatMap((d) => this.iommuGetResvRegions(d));
    const merged: IommuResvRegion[] = [];
    for (const type of RESV_TYPE_ORDER) {
      const same = all.filter((r) => r.type === type && r.length > 0).sort((a, b) => a.start - b.start);
      let cur: { start: number; end: number; prot: number } | undefined;
      for (const r of same) {
        const end = r.start + r.length - 1;
        if (cur !== undefined && r.start <= cur.end + 1) cur.end = Math.max(cur.end, end);
        else {
          if (cur !== undefined)
            merged.push({ start: cur.start, length: cur.end - cur.start + 1, prot: cur.prot, type });
          cur = { start: r.start, end, prot: r.prot };
        }
      }
      if (cur !== undefined)
        merged.push({ start: cur.start, length: cur.end - cur.start + 1, prot: cur.prot, type });
    }
    return merged.sort(
      (a, b) => a.start - b.start || RESV_TYPE_ORDER.indexOf(a.type) - RESV_TYPE_ORDER.indexOf(b.type),
    );
  }

  // ---------------------------------------------------------------- dma-iommu wrappers

  /** iommu_get_msi_cookie (VFIO's software MSI window; a nested cookie on a nesting domain). */
  iommuGetMsiCookie(domain: IommuDomain, base: number): number {
    return this.dma.iommuGetMsiCookie(domain, base);
  }

  /** The series' nested MSI cookie, explicitly. */
  iommuGetNestedMsiCookie(domain: IommuDomain): number {
    return this.dma.iommuGetNestedMsiCookie(domain);
  }

  /** iommu_put_dma_cookie. */
  iommuPutDmaCookie(domain: IommuDomain): void {
    this.dma.iommuPutDmaCookie(domain);
  }

  /** The DMA API's map (iommu_dma_map_page): a DMA address or -errno. */
  iommuDmaMap(dev: IommuDevice, paddr: number, size: number, prot: number): number {
    return this.dma.iommuDmaMap(dev, paddr, size, prot);
  }

  /** The DMA API's unmap (iommu_dma_unmap_page): 0 or -errno. */
  iommuDmaUnmap(dev: IommuDevice, dmaAddr: number, size: number): number {
    return this.dma.iommuDmaUnmap(dev, dmaAddr, size);
  }

  /** iommu_dma_prepare_msi + compose: the address the device must write for the doorbell. */
  iommuDmaPrepareMsi(dev: IommuDevice, doorbellPa: number): PrepareMsiResult {
    return this.dma.iommuDmaPrepareMsi(dev, doorbellPa);
  }

  /** iommu_dma_bind_guest_msi (the generic part drivers call). */
  dmaBindGuestMsi(domain: IommuDomain, giova: number, gpa: number, size: number): number {
    return this.dma.iommuDmaBindGuestMsi(domain, giova, gpa, size);
  }

  /** iommu_dma_unbind_guest_msi. */
  dmaUnbindGuestMsi(domain: IommuDomain, giova: number): void {
    this.dma.iommuDmaUnbindGuestMsi(domain, giova);
  }

  // ---------------------------------------------------------------- snapshot

  /** The core's state as plain data (domain and group ids, never object identities). */
  snapshot(): IommuCoreSnapshot {
    const domId = (d: IommuDomain | undefined): number | null =>
      d === undefined ? null : this.stateOf(d).id;
    return {
      instances: [...this.instances.keys()],
      groups: this.iommuGroups().map((g) => ({
        id: g.id,
        iommu: g.iommuName,
        devices: g.devices.map((d) => d.name),
        defaultDomain: domId(g.defaultDomain),
        domain: domId(g.domain),
      })),
      domains: [...this.liveDomains]
        .map((d) => {
          const st = this.stateOf(d);
          return {
            id: st.id,
            type: IOMMU_DOMAIN_TYPE_NAMES[d.type] ?? String(d.type),
            iommu: st.instance?.name ?? null,
            mappedBytes: st.mappedBytes,
            nesting: st.nesting,
            groups: [...st.groups].map((g) => g.id).sort((a, b) => a - b),
            cookie: this.dma.describeCookie(d) ?? null,
          };
        })
        .sort((a, b) => a.id - b.id),
      devices: [...this.devices.entries()].map(([dev, st]) => ({
        name: dev.name,
        group: st.group.id,
        handler: st.fault !== undefined,
        delivered: st.delivered,
        dropped: st.dropped,
      })),
    };
  }
}

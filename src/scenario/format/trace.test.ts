/**
 * The trace: valid trace-event JSON on a virtual clock, deterministic, and fed by the hooks with
 * DMA transactions (walks, descriptor reads), faults, commands, ioctls by name and eventfd signals.
 */

import { describe, expect, it } from 'vitest';
import { ACCESS_READ } from '../../arch/vmsa.ts';
import { Host } from '../../host/host.ts';
import { SmmuRig } from '../../hw/smmuv3/rig.ts';
import { cmdCfgiAll, cmdSync } from '../../hw/smmuv3/structures.ts';
import { VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_TYPE1v2_IOMMU } from '../../uapi/vfio.ts';
import { Tracer, validateTraceFile } from './trace.ts';
import { ioctlName, traceHost, traceSmmu } from './trace-hooks.ts';

describe('Tracer', () => {
  it('writes metadata, spans enclosing their events, instants and counters on a virtual clock', () => {
    const t = new Tracer();
    const a = t.track('p', 'one');
    const b = t.track('p', 'two');
    expect(t.track('p', 'one')).toBe(a);
    const s = t.span(a, 'step', 'outer', { n: 1 });
    t.instant(b, 'x', 'inner', { big: 0x1_0000_0000n, addr: 0x8000_0000 });
    t.complete(b, 'dma', 'txn');
    s.end({ done: true });
    t.counter(a, 'c', { v: 3 });
    const f = t.toFile();
    expect(validateTraceFile(JSON.parse(JSON.stringify(f)))).toEqual([]);
    const outer = f.traceEvents.find((e) => e.name === 'outer')!;
    expect(outer).toMatchObject({ ph: 'X', ts: 0, dur: 3, args: { n: 1, done: true } });
    expect(f.traceEvents.find((e) => e.name === 'inner')).toMatchObject({
      ts: 1,
      args: { big: '0x100000000', addr: '0x80000000' },
    });
    expect(f.traceEvents.filter((e) => e.ph === 'M').map((e) => e.args?.name)).toEqual(['p', 'one', 'two']);
  });

  it('keeps at most `limit` events and says how many it dropped', () => {
    const t = new Tracer(2);
    const a = t.track('p', 'q');
    for (let i = 0; i < 5; i++) t.instant(a, 'x', `e${i}`);
    expect(t.size).toBe(2);
    expect(t.toFile().otherData.dropped).toBe('3');
  });

  it('finds what is wrong with a file that is not trace-event JSON', () => {
    expect(validateTraceFile({})).toEqual(['traceEvents is not a list']);
    expect(validateTraceFile({ traceEvents: [{ name: 'a', ph: 'X', ts: 0, pid: 1, tid: 1 }] })).toEqual([
      'traceEvents[0] is a span without dur',
    ]);
  });
});

describe('traceSmmu / traceHost', () => {
  it('records transactions with their walk cost, faults and commands', () => {
    const rig = new SmmuRig();
    const t = new Tracer();
    traceSmmu(t, rig.smmu, 'hardware', 'smmu0');
    rig.writeSte(1, { config: 'bypass' });
    rig.submit(cmdCfgiAll(), cmdSync());
    rig.smmu.transact({
      streamId: 1,
      substreamId: -1,
      iova: 0x4000,
      size: 8,
      access: ACCESS_READ,
      privileged: false,
    });
    rig.smmu.transact({
      streamId: 2,
      substreamId: -1,
      iova: 0x4000,
      size: 8,
      access: ACCESS_READ,
      privileged: false,
    });
    const evs = t.toFile().traceEvents;
    const dma = evs.filter((e) => e.cat === 'dma');
    expect(dma.map((e) => e.args?.status)).toEqual(['ok', 'abort']);
    expect(dma[0]!.args).toMatchObject({ sid: 1, pa: 0x4000, walks: 0 });
    expect(evs.filter((e) => e.cat === 'fault').map((e) => e.name)).toEqual(['C_BAD_STE']);
    expect(evs.filter((e) => e.cat === 'command').map((e) => e.name)).toEqual([
      'CMD_CFGI_STE_RANGE',
      'CMD_SYNC',
    ]); // CFGI_ALL is CFGI_STE_RANGE with Range 31;
  });

  it('names ioctls and records eventfd signals', () => {
    expect(ioctlName(VFIO_GET_API_VERSION)).toBe('VFIO_GET_API_VERSION');
    expect(ioctlName(0x3b76)).toBe('VFIO_IOMMU_SET_PASID_TABLE');
    const host = new Host();
    const t = new Tracer();
    traceHost(t, host);
    const p = host.kernel.spawn('tester');
    const c = p.open('/dev/vfio/vfio');
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
    const efd = p.eventfd2(0, 0);
    expect(p.write(efd, new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0]))).toBe(8);
    const evs = t.toFile().traceEvents;
    const sys = evs.filter((e) => e.cat === 'syscall').map((e) => e.name);
    expect(sys).toEqual(['open', 'ioctl VFIO_CHECK_EXTENSION', 'eventfd2', 'write']);
    expect(evs.find((e) => e.name === 'ioctl VFIO_CHECK_EXTENSION')?.args).toMatchObject({ result: 1 });
    expect(evs.find((e) => e.ph === 'M' && e.args?.name === `tester (pid ${p.pid})`)).toBeDefined();
  });
});

/**
 * eventfd against seed-spec.md §5: creation flags, the 64-bit counter and its two limits, read
 * and write rules, semaphore mode, non-blocking and blocking callers, poll readiness, fdinfo,
 * the kernel-side signal; then EFD_AUTORESET (§5.2) and the hazards the reviewers raised (§5.3).
 * A fast-check property drives random operation sequences against a small independent model of
 * the counter, including blocked readers and writers.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EAGAIN, EFAULT, EINTR, EINVAL, EMFILE, ENOMEM } from '../uapi/errno.ts';
import { EFD_AUTORESET, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE } from '../uapi/eventfd.ts';
import { F_GETFD, F_GETFL, FD_CLOEXEC, MAP_PRIVATE, O_NONBLOCK, O_RDWR, PROT_READ } from '../uapi/fcntl.ts';
import { EPOLL_CTL_ADD, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT } from '../uapi/poll.ts';
import { EventfdCtx, eventfdCreate, eventfdCtxOfFile } from './eventfd.ts';
import type { EpollEvent } from './kernel/epoll.ts';
import { Kernel, type KernelOptions } from './kernel/kernel.ts';
import { createHostMemory } from './kernel/mm.ts';
import type { PollFd, Process } from './kernel/process.ts';
import { Pending, type SyscallOutcome } from './kernel/sched.ts';
import { WaitEntry } from './kernel/waitqueue.ts';

const MAX = 0xffff_ffff_ffff_ffffn;
const USER_MAX = 0xffff_ffff_ffff_fffen;

function setup(opts: KernelOptions = {}): { k: Kernel; p: Process } {
  const k = new Kernel(createHostMemory(0x4000_0000, 0x100_0000), opts);
  return { k, p: k.spawn('test') };
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}

function readU64(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
}

function ctx(p: Process, fd: number): EventfdCtx {
  const f = p.fileOf(fd);
  const c = f === undefined ? undefined : eventfdCtxOfFile(f);
  if (c === undefined) throw new Error(`fd ${fd} is not an eventfd`);
  return c;
}

function num(r: SyscallOutcome): number {
  if (r instanceof Pending) throw new Error(`unexpectedly blocked: ${r.label}`);
  return r;
}

function pending(r: SyscallOutcome): Pending {
  if (!(r instanceof Pending)) throw new Error(`expected to block, got ${r}`);
  return r;
}

/** The counter as /proc/<pid>/fdinfo shows it. */
function fdinfoCount(p: Process, fd: number): bigint {
  const text = p.fdinfo(fd);
  if (typeof text !== 'string') throw new Error('no fdinfo');
  const m = /eventfd-count: ([ 0-9a-f]{16})\n/.exec(text);
  if (m === null) throw new Error(`no eventfd-count line in ${JSON.stringify(text)}`);
  return BigInt(`0x${m[1]!.trim()}`);
}

describe('eventfd2: creation (§5.1)', () => {
  it('starts the counter at initval and gives an O_RDWR file', () => {
    const { p } = setup();
    const fd = p.eventfd2(7, 0);
    expect(fd).toBe(3);
    expect(ctx(p, fd).count).toBe(7n);
    expect(p.fcntl(fd, F_GETFL)).toBe(O_RDWR);
    expect(p.fcntl(fd, F_GETFD)).toBe(0);
    expect(fdinfoCount(p, fd)).toBe(7n);
  });

  it('eventfd(initval) is eventfd2 with no flags', () => {
    const { p } = setup();
    const fd = p.eventfd(2);
    expect(ctx(p, fd).flags).toBe(0);
    expect(ctx(p, fd).count).toBe(2n);
  });

  it('truncates initval to an unsigned int, as the C prototype does', () => {
    const { p } = setup();
    expect(ctx(p, p.eventfd2(2 ** 32 + 5, 0)).count).toBe(5n);
    expect(ctx(p, p.eventfd2(-1, 0)).count).toBe(0xffff_ffffn);
  });

  it('EFD_CLOEXEC sets the fd flag and EFD_NONBLOCK the file flag', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    expect(p.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
    expect(p.fcntl(fd, F_GETFL)).toBe(O_RDWR | O_NONBLOCK);
    expect(ctx(p, fd).semaphore).toBe(true);
  });

  const invalid = [0x2, 0x4, 0x8, 0x10, 0x20, 0x80, 0x100, 0x400, 0x1000, 0x40000, 0x100000, 0x8000_0000, -1];
  it.each(invalid)('flags 0x%s outside the accepted set: EINVAL, no fd created', (flags) => {
    const { p } = setup();
    const before = p.openFds;
    expect(p.eventfd2(0, flags)).toBe(-EINVAL);
    expect(p.openFds).toEqual(before);
  });

  it('EFD_AUTORESET is accepted only with the RFC applied', () => {
    expect(setup().p.eventfd2(0, EFD_AUTORESET)).toBe(3);
    const v55 = setup({ eventfdAutoreset: false }).p;
    expect(v55.eventfd2(0, EFD_AUTORESET)).toBe(-EINVAL);
    expect(v55.openFds).toEqual([0, 1, 2]);
  });

  it('EFD_SEMAPHORE | EFD_AUTORESET: EINVAL, no fd created (§5.2)', () => {
    const { p } = setup();
    expect(p.eventfd2(0, EFD_SEMAPHORE | EFD_AUTORESET)).toBe(-EINVAL);
    expect(p.eventfd2(0, EFD_SEMAPHORE | EFD_AUTORESET | EFD_NONBLOCK)).toBe(-EINVAL);
    expect(p.openFds).toEqual([0, 1, 2]);
  });

  it('allocation failure is ENOMEM', () => {
    const { k } = setup();
    expect(eventfdCreate(0, 0, k.sched, { autoreset: true, failAlloc: true })).toBe(-ENOMEM);
  });

  it('a full fd table is EMFILE, and nothing is left behind', () => {
    const { p } = setup({ nofile: 4 });
    expect(p.eventfd2(0, 0)).toBe(3);
    expect(p.eventfd2(0, 0)).toBe(-EMFILE);
    expect(p.openFds).toEqual([0, 1, 2, 3]);
  });
});

describe('read (§5.1)', () => {
  it('returns the whole count and zeroes it; exactly 8 bytes are written', () => {
    const { p } = setup();
    const fd = p.eventfd2(0x1234, EFD_NONBLOCK);
    const buf = new Uint8Array(16).fill(0xee);
    expect(p.read(fd, buf)).toBe(8);
    expect(readU64(buf)).toBe(0x1234n);
    expect([...buf.subarray(8)]).toEqual(Array(8).fill(0xee));
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('fewer than 8 bytes (0 included): EINVAL and the counter is kept', () => {
    const { p } = setup();
    const fd = p.eventfd2(5, EFD_NONBLOCK);
    for (const n of [0, 1, 4, 7]) {
      expect(p.read(fd, new Uint8Array(8), n)).toBe(-EINVAL);
      expect(ctx(p, fd).count).toBe(5n);
    }
  });

  it('an empty counter with O_NONBLOCK: EAGAIN', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    expect(p.read(fd, new Uint8Array(8))).toBe(-EAGAIN);
  });

  it('semaphore mode returns 1 and decrements', () => {
    const { p } = setup();
    const fd = p.eventfd2(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    const buf = new Uint8Array(8);
    for (const left of [2n, 1n, 0n]) {
      expect(p.read(fd, buf)).toBe(8);
      expect(readU64(buf)).toBe(1n);
      expect(ctx(p, fd).count).toBe(left);
    }
    expect(p.read(fd, buf)).toBe(-EAGAIN);
  });

  it('a bad user buffer is EFAULT after the counter was consumed (5.5 behaviour)', () => {
    const { p } = setup();
    const fd = p.eventfd2(9, EFD_NONBLOCK);
    const ro = p.mmap(4096, PROT_READ, MAP_PRIVATE);
    expect(p.read(fd, ro, 8)).toBe(-EFAULT);
    expect(ctx(p, fd).count).toBe(0n);
    // A buffer shorter than the count passed is the same bad pointer.
    const fd2 = p.eventfd2(9, EFD_NONBLOCK);
    expect(p.read(fd2, new Uint8Array(4), 8)).toBe(-EFAULT);
    expect(ctx(p, fd2).count).toBe(0n);
  });

  it('reads through a pointer into the process memory', () => {
    const { p } = setup();
    const fd = p.eventfd2(77, EFD_NONBLOCK);
    const va = p.mmap(4096);
    expect(p.read(fd, va + 8, 8)).toBe(8);
    expect(readU64(p.mm.readUser(va + 8, 8)!)).toBe(77n);
  });
});

describe('write (§5.1)', () => {
  it('adds the value and returns 8', () => {
    const { p } = setup();
    const fd = p.eventfd2(1, EFD_NONBLOCK);
    expect(p.write(fd, u64(41n))).toBe(8);
    expect(ctx(p, fd).count).toBe(42n);
  });

  it('accepts buffers longer than 8 bytes and uses the first 8 (5.5; kernels since ~6.4 want exactly 8)', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    const buf = new Uint8Array(16);
    buf.set(u64(3n));
    buf.set(u64(100n), 8);
    expect(p.write(fd, buf)).toBe(8);
    expect(ctx(p, fd).count).toBe(3n);
  });

  it('fewer than 8 bytes: EINVAL; an unreadable buffer: EFAULT; both leave the counter', () => {
    const { p } = setup();
    const fd = p.eventfd2(5, EFD_NONBLOCK);
    expect(p.write(fd, u64(1n), 7)).toBe(-EINVAL);
    expect(p.write(fd, new Uint8Array(4), 8)).toBe(-EFAULT);
    expect(p.write(fd, 0x1000, 8)).toBe(-EFAULT);
    expect(ctx(p, fd).count).toBe(5n);
  });

  it('writing 2^64-1 is EINVAL, even to an empty counter', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    expect(p.write(fd, u64(MAX))).toBe(-EINVAL);
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('user writes can fill the counter up to 0xFFFFFFFFFFFFFFFE, not further', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    expect(p.write(fd, u64(USER_MAX))).toBe(8);
    expect(ctx(p, fd).count).toBe(USER_MAX);
    expect(p.write(fd, u64(1n))).toBe(-EAGAIN);
    expect(p.write(fd, u64(0n))).toBe(8);
    expect(ctx(p, fd).count).toBe(USER_MAX);
    const fd2 = p.eventfd2(1, EFD_NONBLOCK);
    expect(p.write(fd2, u64(USER_MAX))).toBe(-EAGAIN);
    expect(p.write(fd2, u64(USER_MAX - 1n))).toBe(8);
    expect(ctx(p, fd2).count).toBe(USER_MAX);
  });

  it('writing 0 succeeds and still wakes sleepers (who find nothing and sleep on)', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    const r = pending(p.read(fd, new Uint8Array(8)));
    expect(p.write(fd, u64(0n))).toBe(8);
    expect(r.retries).toBe(1);
    expect(r.state).toBe('blocked');
  });
});

describe('poll readiness (§5.1)', () => {
  const cases: [bigint, number][] = [
    [0n, EPOLLOUT],
    [1n, EPOLLIN | EPOLLOUT],
    [USER_MAX - 1n, EPOLLIN | EPOLLOUT],
    [USER_MAX, EPOLLIN],
    [MAX, EPOLLIN | EPOLLERR],
  ];
  it.each(cases)('counter %s: mask %s', (count, mask) => {
    expect(EventfdCtx.maskOf(count)).toBe(mask);
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    ctx(p, fd).count = count;
    const fds: PollFd[] = [{ fd, events: EPOLLIN | EPOLLOUT, revents: 0 }];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0]!.revents).toBe(mask);
    // poll has no side effects without EFD_AUTORESET.
    expect(ctx(p, fd).count).toBe(count);
  });

  it('EPOLLERR is reachable only through the kernel-side signal', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    p.write(fd, u64(USER_MAX));
    expect(EventfdCtx.maskOf(ctx(p, fd).count) & EPOLLERR).toBe(0);
    expect(ctx(p, fd).signal(5n)).toBe(1n);
    expect(ctx(p, fd).count).toBe(MAX);
    const fds: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    p.poll(fds, 0);
    expect(fds[0]!.revents).toBe(EPOLLIN | EPOLLERR);
  });
});

describe('eventfd_signal (§5.1)', () => {
  it('adds n and returns it; saturates at 2^64-1 returning what was added', () => {
    const { p } = setup();
    const c = ctx(p, p.eventfd2(10, 0));
    expect(c.signal(5)).toBe(5n);
    expect(c.count).toBe(15n);
    expect(c.signal(MAX)).toBe(MAX - 15n);
    expect(c.count).toBe(MAX);
    expect(c.signal(1)).toBe(0n);
    expect(c.stats.saturations).toBe(2);
  });

  it('a saturated counter is read whole, and then writable again', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    ctx(p, fd).signal(MAX);
    expect(p.write(fd, u64(1n))).toBe(-EAGAIN);
    const buf = new Uint8Array(8);
    expect(p.read(fd, buf)).toBe(8);
    expect(readU64(buf)).toBe(MAX);
    expect(p.write(fd, u64(1n))).toBe(8);
  });

  it('wakes a blocked reader', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    const buf = new Uint8Array(8);
    const r = pending(p.read(fd, buf));
    ctx(p, fd).signal(3);
    expect(r.state).toBe('done');
    expect(r.result).toBe(8);
    expect(readU64(buf)).toBe(3n);
  });

  it('refuses to signal from inside one of its own wake-ups (the per-CPU recursion guard)', () => {
    const { p } = setup();
    const c = ctx(p, p.eventfd2(0, 0));
    let inner: bigint | undefined;
    c.wqh.add(
      new WaitEntry(() => {
        inner ??= c.signal(1);
      }, 'recursive'),
    );
    expect(c.signal(1)).toBe(1n);
    expect(inner).toBe(0n);
    expect(c.count).toBe(1n);
    expect(c.stats.nestedSignals).toBe(1);
  });

  it('doRead and removeWaitQueue are the in-kernel reader (irqfd) interface', () => {
    const { p } = setup();
    const sem = ctx(p, p.eventfd2(4, EFD_SEMAPHORE));
    expect(sem.doRead()).toBe(1n);
    expect(sem.count).toBe(3n);
    const c = ctx(p, p.eventfd2(6, 0));
    const seen: number[] = [];
    const e = new WaitEntry((key) => seen.push(key), 'kernel waiter');
    c.wqh.add(e);
    c.signal(1);
    expect(seen).toEqual([EPOLLIN]);
    expect(c.removeWaitQueue(e)).toBe(7n);
    expect(c.count).toBe(0n);
    expect(c.wqh.active).toBe(false);
  });
});

describe('blocking readers and writers (§5.1)', () => {
  it('readers sleep until the counter is non-zero and are woken in arrival order', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    const b1 = new Uint8Array(8);
    const b2 = new Uint8Array(8);
    const r1 = pending(p.read(fd, b1));
    const r2 = pending(p.read(fd, b2));
    expect(p.write(fd, u64(4n))).toBe(8);
    expect([r1.state, r1.result, readU64(b1)]).toEqual(['done', 8, 4n]);
    expect(r2.state).toBe('blocked');
    expect(p.write(fd, u64(6n))).toBe(8);
    expect([r2.state, readU64(b2)]).toEqual(['done', 6n]);
  });

  it('semaphore readers each take 1', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_SEMAPHORE);
    const rs = [0, 1, 2].map(() => pending(p.read(fd, new Uint8Array(8))));
    p.write(fd, u64(2n));
    expect(rs.map((r) => r.state)).toEqual(['done', 'done', 'blocked']);
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('a writer sleeps until a read makes room, then completes', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    expect(p.write(fd, u64(USER_MAX - 1n))).toBe(8);
    const w = pending(p.write(fd, u64(2n)));
    expect(ctx(p, fd).count).toBe(USER_MAX - 1n);
    const buf = new Uint8Array(8);
    expect(p.read(fd, buf)).toBe(8);
    expect(readU64(buf)).toBe(USER_MAX - 1n);
    expect(w.state).toBe('done');
    expect(w.result).toBe(8);
    expect(ctx(p, fd).count).toBe(2n);
  });

  it('a blocked writer uses the value it copied before sleeping', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    p.write(fd, u64(USER_MAX));
    const buf = u64(5n);
    const w = pending(p.write(fd, buf));
    buf.set(u64(99n));
    p.read(fd, new Uint8Array(8));
    expect(w.state).toBe('done');
    expect(ctx(p, fd).count).toBe(5n);
  });

  it('a signal ends the sleep with EINTR and changes nothing', () => {
    const { k, p } = setup();
    const fd = p.eventfd2(0, 0);
    const r = pending(p.read(fd, new Uint8Array(8)));
    expect(k.interrupt(r)).toBe(true);
    expect([r.state, r.result]).toEqual(['done', -EINTR]);
    expect(ctx(p, fd).wqh.active).toBe(false);
    expect(p.write(fd, u64(1n))).toBe(8);
    expect(ctx(p, fd).count).toBe(1n);
  });

  it('clearing O_NONBLOCK with fcntl makes reads block', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_NONBLOCK);
    expect(p.read(fd, new Uint8Array(8))).toBe(-EAGAIN);
    p.fcntl(fd, 4 /* F_SETFL */, 0);
    expect(p.read(fd, new Uint8Array(8))).toBeInstanceOf(Pending);
  });
});

describe('fdinfo and release (§5.1)', () => {
  it('prints "eventfd-count: %16llx"', () => {
    const { p } = setup();
    const fd = p.eventfd2(0x1f, 0);
    expect(p.fdinfo(fd)).toContain('eventfd-count:               1f\n');
    ctx(p, fd).signal(MAX);
    expect(p.fdinfo(fd)).toContain('eventfd-count: ffffffffffffffff\n');
  });

  it('the last close wakes in-kernel waiters with EPOLLHUP', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    const c = ctx(p, fd).get();
    const keys: number[] = [];
    c.wqh.add(new WaitEntry((key) => keys.push(key), 'irqfd-like'));
    const dup = p.dup(fd);
    p.close(fd);
    expect(keys).toEqual([]);
    p.close(dup);
    expect(keys).toEqual([EPOLLHUP]);
    expect(c.refcount).toBe(1);
  });
});

// ----------------------------------------------------------------- model-based property

/** A small independent model of one eventfd: counter, flags, and the FIFO of sleeping callers. */
class CounterModel {
  count: bigint;
  readonly sem: boolean;
  /** Sleeping callers: kind and (for writers) the value they carry. */
  readonly asleep: { id: number; kind: 'r' | 'w'; v: bigint }[] = [];
  /** Results of callers that finished, by id. */
  readonly finished = new Map<number, { result: number; value?: bigint }>();

  constructor(count: bigint, sem: boolean) {
    this.count = count;
    this.sem = sem;
  }

  tryRead(): bigint | undefined {
    if (this.count === 0n) return undefined;
    const v = this.sem ? 1n : this.count;
    this.count -= v;
    return v;
  }

  tryWrite(v: bigint): boolean {
    if (MAX - this.count > v) {
      this.count += v;
      return true;
    }
    return false;
  }

  /** Every change wakes all sleepers; they retry in queue order; a success wakes the rest again. */
  wake(): void {
    const queue = [...this.asleep];
    while (queue.length > 0) {
      const s = queue.shift()!;
      if (!this.asleep.includes(s)) continue;
      let ok = false;
      if (s.kind === 'r') {
        const v = this.tryRead();
        if (v !== undefined) {
          this.finished.set(s.id, { result: 8, value: v });
          ok = true;
        }
      } else if (this.tryWrite(s.v)) {
        this.finished.set(s.id, { result: 8 });
        ok = true;
      }
      if (ok) {
        this.asleep.splice(this.asleep.indexOf(s), 1);
        for (const other of this.asleep) if (!queue.includes(other)) queue.push(other);
      }
    }
  }
}

type Op =
  | { op: 'write'; v: bigint; block: boolean }
  | { op: 'read'; block: boolean; short: boolean }
  | { op: 'signal'; n: bigint }
  | { op: 'poll' };

const edgeValue = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, USER_MAX, USER_MAX - 1n, MAX, MAX - 1n, 1n << 63n),
  fc.bigInt({ min: 0n, max: 1000n }),
  fc.bigInt({ min: 0n, max: MAX }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), v: edgeValue, block: fc.boolean() }),
  fc.record({ op: fc.constant('read' as const), block: fc.boolean(), short: fc.boolean() }),
  fc.record({ op: fc.constant('signal' as const), n: edgeValue }),
  fc.record({ op: fc.constant('poll' as const) }),
);

describe('property: random operation sequences match the counter model', () => {
  it('results, counter, poll masks and the order in which sleepers finish', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.boolean(),
        fc.array(opArb, { maxLength: 40 }),
        (init, sem, ops) => {
          const { p } = setup();
          const blockingFd = p.eventfd2(init, sem ? EFD_SEMAPHORE : 0);
          // A second fd on the same object, non-blocking (dup shares the file, so toggle per call).
          const c = ctx(p, blockingFd);
          const model = new CounterModel(BigInt(init), sem);
          const real = new Map<number, { p: Pending; buf: Uint8Array }>();
          let nextId = 0;
          for (const o of ops) {
            const id = nextId++;
            switch (o.op) {
              case 'write': {
                p.fcntl(blockingFd, 4, o.block ? 0 : O_NONBLOCK);
                const r = p.write(blockingFd, u64(o.v));
                if (o.v === MAX) {
                  expect(r).toBe(-EINVAL);
                  break;
                }
                if (model.tryWrite(o.v)) {
                  expect(r).toBe(8);
                  model.wake();
                } else if (o.block) {
                  real.set(id, { p: pending(r), buf: new Uint8Array(0) });
                  model.asleep.push({ id, kind: 'w', v: o.v });
                } else {
                  expect(r).toBe(-EAGAIN);
                }
                break;
              }
              case 'read': {
                p.fcntl(blockingFd, 4, o.block ? 0 : O_NONBLOCK);
                const buf = new Uint8Array(8);
                const r = p.read(blockingFd, buf, o.short ? 4 : 8);
                if (o.short) {
                  expect(r).toBe(-EINVAL);
                  break;
                }
                const v = model.tryRead();
                if (v !== undefined) {
                  expect(r).toBe(8);
                  expect(readU64(buf)).toBe(v);
                  model.wake();
                } else if (o.block) {
                  real.set(id, { p: pending(r), buf });
                  model.asleep.push({ id, kind: 'r', v: 0n });
                } else {
                  expect(r).toBe(-EAGAIN);
                }
                break;
              }
              case 'signal': {
                const added = c.signal(o.n);
                const room = MAX - model.count;
                expect(added).toBe(o.n < room ? o.n : room);
                model.count += added;
                model.wake();
                break;
              }
              case 'poll': {
                const fds: PollFd[] = [{ fd: blockingFd, events: EPOLLIN | EPOLLOUT, revents: 0 }];
                num(p.poll(fds, 0));
                expect(fds[0]!.revents).toBe(EventfdCtx.maskOf(model.count));
                break;
              }
            }
            expect(c.count).toBe(model.count);
            for (const [rid, { p: pend, buf }] of real) {
              const fin = model.finished.get(rid);
              expect(pend.state).toBe(fin === undefined ? 'blocked' : 'done');
              if (fin !== undefined) {
                expect(pend.result).toBe(fin.result);
                if (fin.value !== undefined) expect(readU64(buf)).toBe(fin.value);
              }
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ----------------------------------------------------------------- EFD_AUTORESET

describe('EFD_AUTORESET (§5.2)', () => {
  it('a poll asking for EPOLLIN reports readable once and resets the counter', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET | EFD_NONBLOCK);
    p.write(fd, u64(3n));
    const fds: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0]!.revents).toBe(EPOLLIN);
    expect(fdinfoCount(p, fd)).toBe(0n);
    expect(p.poll(fds, 0)).toBe(0);
    // No read(2) is needed to clear it: that is the point of the patch.
    expect(p.read(fd, new Uint8Array(8))).toBe(-EAGAIN);
    expect(ctx(p, fd).stats.autoresets).toBe(1);
  });

  it('the mask comes from the value before the reset, plus EPOLLOUT', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    ctx(p, fd).signal(MAX);
    const fds: PollFd[] = [{ fd, events: EPOLLIN | EPOLLOUT, revents: 0 }];
    p.poll(fds, 0);
    expect(fds[0]!.revents).toBe(EPOLLIN | EPOLLERR | EPOLLOUT);
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('a poll that does not ask for EPOLLIN leaves the counter alone', () => {
    const { p } = setup();
    const fd = p.eventfd2(5, EFD_AUTORESET);
    const fds: PollFd[] = [{ fd, events: EPOLLOUT, revents: 0 }];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0]!.revents).toBe(EPOLLOUT);
    expect(ctx(p, fd).count).toBe(5n);
  });

  it('a poll with no poll table (in-kernel vfs_poll(file, NULL)) asks for everything and resets', () => {
    const { p } = setup();
    const fd = p.eventfd2(5, EFD_AUTORESET);
    expect(ctx(p, fd).poll(null)).toBe(EPOLLIN | EPOLLOUT);
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('an empty counter is not touched and reads keep working as usual', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET | EFD_NONBLOCK);
    const fds: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    expect(p.poll(fds, 0)).toBe(0);
    expect(ctx(p, fd).stats.autoresets).toBe(0);
    p.write(fd, u64(2n));
    const buf = new Uint8Array(8);
    expect(p.read(fd, buf)).toBe(8);
    expect(readU64(buf)).toBe(2n);
  });

  it("the patch's TODO: a writer blocked on a full counter is not woken by the reset", () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    p.write(fd, u64(USER_MAX));
    const w = pending(p.write(fd, u64(1n)));
    const fds: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    p.poll(fds, 0);
    expect(ctx(p, fd).count).toBe(0n);
    expect(w.state).toBe('blocked');
    // Only the next wake-up lets it see the room.
    ctx(p, fd).signal(0);
    expect(w.state).toBe('done');
    expect(ctx(p, fd).count).toBe(1n);
  });
});

describe('EFD_AUTORESET hazards (§5.3: poll is not idempotent any more)', () => {
  it('two waiters (two threads in poll) on one autoreset eventfd: the second misses the event', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    const a: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    const b: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    const pa = pending(p.poll(a, -1));
    const pb = pending(p.poll(b, -1));
    p.write(fd, u64(1n));
    expect([pa.state, pa.result, a[0]!.revents]).toEqual(['done', 1, EPOLLIN]);
    // The first waiter's poll zeroed the counter; the second re-polls, finds nothing, sleeps on.
    expect([pb.state, b[0]!.revents]).toEqual(['blocked', 0]);
    expect(ctx(p, fd).count).toBe(0n);
  });

  it('without EFD_AUTORESET both waiters see the event', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, 0);
    const a: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    const b: PollFd[] = [{ fd, events: EPOLLIN, revents: 0 }];
    const pa = pending(p.poll(a, -1));
    const pb = pending(p.poll(b, -1));
    p.write(fd, u64(1n));
    expect([pa.result, pb.result, a[0]!.revents, b[0]!.revents]).toEqual([1, 1, EPOLLIN, EPOLLIN]);
    expect(ctx(p, fd).count).toBe(1n);
  });

  it('two epoll instances watching one autoreset eventfd: only the first reports it', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    const ep1 = p.epollCreate1(0);
    const ep2 = p.epollCreate1(0);
    expect(p.epollCtl(ep1, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: 1 })).toBe(0);
    expect(p.epollCtl(ep2, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: 2 })).toBe(0);
    p.write(fd, u64(1n));
    const out1: EpollEvent[] = [];
    const out2: EpollEvent[] = [];
    expect(p.epollWait(ep1, out1, 4, 0)).toBe(1);
    expect(out1).toEqual([{ events: EPOLLIN, data: 1 }]);
    expect(p.epollWait(ep2, out2, 4, 0)).toBe(0);
  });

  it('EPOLL_CTL_ADD on a pending autoreset eventfd swallows the event: epoll_wait reports nothing', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    p.write(fd, u64(1n));
    const ep = p.epollCreate1(0);
    // ep_insert polls the file with the item's events to learn whether it is already ready.
    expect(p.epollCtl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: 7 })).toBe(0);
    expect(ctx(p, fd).count).toBe(0n);
    const out: EpollEvent[] = [];
    // epoll_wait re-polls the ready item before reporting it, finds the counter at zero, drops it.
    expect(p.epollWait(ep, out, 4, 0)).toBe(0);
  });

  it('level-triggered epoll reports once; its re-check finds the counter reset', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    const ep = p.epollCreate1(0);
    p.epollCtl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: 1 });
    p.write(fd, u64(1n));
    const out: EpollEvent[] = [];
    expect(p.epollWait(ep, out, 4, 0)).toBe(1);
    expect(p.epollWait(ep, out, 4, 0)).toBe(0);
    // With a plain eventfd the same level-triggered item keeps being reported until read.
    const plain = p.eventfd2(0, 0);
    const ep2 = p.epollCreate1(0);
    p.epollCtl(ep2, EPOLL_CTL_ADD, plain, { events: EPOLLIN | EPOLLET, data: 2 });
    p.write(plain, u64(1n));
    expect(p.epollWait(ep2, out, 4, 0)).toBe(1);
    const ep3 = p.epollCreate1(0);
    p.epollCtl(ep3, EPOLL_CTL_ADD, plain, { events: EPOLLIN, data: 3 });
    expect(p.epollWait(ep3, out, 4, 0)).toBe(1);
    expect(p.epollWait(ep3, out, 4, 0)).toBe(1);
  });

  it('polling the epoll fd itself (a nested event loop) consumes the event before epoll_wait', () => {
    const { p } = setup();
    const fd = p.eventfd2(0, EFD_AUTORESET);
    const ep = p.epollCreate1(0);
    p.epollCtl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: 1 });
    p.write(fd, u64(1n));
    const outer: PollFd[] = [{ fd: ep, events: EPOLLIN, revents: 0 }];
    expect(p.poll(outer, 0)).toBe(1);
    const out: EpollEvent[] = [];
    expect(p.epollWait(ep, out, 4, 0)).toBe(0);
  });
});

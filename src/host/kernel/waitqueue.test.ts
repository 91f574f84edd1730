/**
 * Tests of wait queues (waitqueue.ts): entries are woken in arrival order with the waker's key,
 * an entry lives on one queue at a time, and entries added or removed by a wake function take
 * effect only for the next wake-up.
 */

import { describe, expect, it } from 'vitest';
import { EPOLLIN, EPOLLOUT } from '../../uapi/poll.ts';
import { WaitEntry, WaitQueue } from './waitqueue.ts';

function recorder(log: string[], name: string): WaitEntry {
  return new WaitEntry((key) => log.push(`${name}:${key}`), name);
}

describe('WaitQueue', () => {
  it('starts empty and inactive; waking an empty queue counts nothing', () => {
    const q = new WaitQueue();
    expect(q.active).toBe(false);
    expect(q.length).toBe(0);
    q.wakeUp(EPOLLIN);
    expect(q.wakeups).toBe(0);
  });

  it('wakes every entry in the order they were added, with the key', () => {
    const q = new WaitQueue();
    const log: string[] = [];
    for (const n of ['a', 'b', 'c']) q.add(recorder(log, n));
    expect(q.labels()).toEqual(['a', 'b', 'c']);
    expect(q.active).toBe(true);
    q.wakeUp(EPOLLIN);
    q.wakeUp(EPOLLOUT);
    expect(log).toEqual(['a:1', 'b:1', 'c:1', 'a:4', 'b:4', 'c:4']);
    expect(q.wakeups).toBe(2);
    // Waking does not remove anyone: removal is the waiter's business.
    expect(q.length).toBe(3);
  });

  it('remove takes one entry out; removing an entry of another queue does nothing', () => {
    const q = new WaitQueue();
    const other = new WaitQueue();
    const log: string[] = [];
    const a = recorder(log, 'a');
    const b = recorder(log, 'b');
    q.add(a);
    other.add(b);
    q.remove(b);
    expect(other.labels()).toEqual(['b']);
    expect(b.queue).toBe(other);
    q.remove(a);
    expect(a.queue).toBeNull();
    expect(q.active).toBe(false);
    q.remove(a);
    q.wakeUp(1);
    expect(log).toEqual([]);
  });

  it('adding an entry already on a queue moves it (an entry is on one queue at a time)', () => {
    const q1 = new WaitQueue();
    const q2 = new WaitQueue();
    const log: string[] = [];
    const a = recorder(log, 'a');
    q1.add(a);
    q2.add(a);
    expect(q1.length).toBe(0);
    expect(q2.labels()).toEqual(['a']);
    expect(a.queue).toBe(q2);
    q1.wakeUp(1);
    expect(log).toEqual([]);
    q2.wakeUp(2);
    expect(log).toEqual(['a:2']);
  });

  it('re-adding an entry to its own queue moves it to the tail', () => {
    const q = new WaitQueue();
    const log: string[] = [];
    const a = recorder(log, 'a');
    q.add(a);
    q.add(recorder(log, 'b'));
    q.add(a);
    expect(q.labels()).toEqual(['b', 'a']);
  });

  it('an entry added by a wake function is woken only by the next wake-up', () => {
    const q = new WaitQueue();
    const log: string[] = [];
    const late = recorder(log, 'late');
    q.add(
      new WaitEntry((key) => {
        log.push(`first:${key}`);
        q.add(late);
      }, 'first'),
    );
    q.wakeUp(1);
    expect(log).toEqual(['first:1']);
    q.wakeUp(2);
    expect(log).toEqual(['first:1', 'first:2', 'late:2']);
  });

  it('an entry removed by an earlier wake function in the same wake-up is not called', () => {
    const q = new WaitQueue();
    const log: string[] = [];
    const victim = recorder(log, 'victim');
    q.add(
      new WaitEntry(() => {
        log.push('remover');
        q.remove(victim);
      }, 'remover'),
    );
    q.add(victim);
    q.wakeUp(1);
    expect(log).toEqual(['remover']);
    expect(q.labels()).toEqual(['remover']);
  });

  it('an entry that removes itself while being woken leaves the others untouched', () => {
    const q = new WaitQueue();
    const log: string[] = [];
    const self: WaitEntry = new WaitEntry(() => {
      log.push('self');
      q.remove(self);
    }, 'self');
    q.add(self);
    q.add(recorder(log, 'b'));
    q.wakeUp(8);
    expect(log).toEqual(['self', 'b:8']);
    expect(q.labels()).toEqual(['b']);
  });
});

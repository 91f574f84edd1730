/**
 * errno numbers as asm-generic/errno-base.h and errno.h define them (shared by x86-64 and arm64),
 * and the name table the reports use.
 */

import { describe, expect, it } from 'vitest';
import * as E from './errno.ts';

describe('errno values', () => {
  it('match asm-generic', () => {
    const expected: Record<string, number> = {
      EPERM: 1,
      ENOENT: 2,
      ESRCH: 3,
      EINTR: 4,
      EIO: 5,
      ENXIO: 6,
      E2BIG: 7,
      ENOEXEC: 8,
      EBADF: 9,
      EAGAIN: 11,
      ENOMEM: 12,
      EACCES: 13,
      EFAULT: 14,
      EBUSY: 16,
      EEXIST: 17,
      ENODEV: 19,
      ENOTDIR: 20,
      EISDIR: 21,
      EINVAL: 22,
      ENFILE: 23,
      EMFILE: 24,
      ENOTTY: 25,
      ENOSPC: 28,
      ESPIPE: 29,
      ERANGE: 34,
      EDEADLK: 35,
      ENOSYS: 38,
      ELOOP: 40,
      EOVERFLOW: 75,
      EOPNOTSUPP: 95,
      ENOBUFS: 105,
      ETIMEDOUT: 110,
      ERESTARTSYS: 512,
    };
    for (const [name, n] of Object.entries(expected))
      expect((E as Record<string, unknown>)[name], name).toBe(n);
  });

  it('every value has its name, and names map back', () => {
    for (const [n, name] of Object.entries(E.ERRNO_NAMES)) {
      expect((E as Record<string, unknown>)[name]).toBe(Number(n));
      expect(E.ERRNO_BY_NAME[name]).toBe(Number(n));
    }
    expect(E.errnoName(-E.ENOEXEC)).toBe('ENOEXEC');
    expect(E.errnoName(-E.ENOBUFS)).toBe('ENOBUFS');
    expect(E.errnoName(3)).toBeUndefined();
  });
});

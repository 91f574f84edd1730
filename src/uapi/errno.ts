/**
 * Linux errno values (asm-generic/errno-base.h and errno.h, the numbers x86-64 and arm64 share),
 * by name and by number. Syscalls in vsva return a non-negative result or `-errno`, as the
 * kernel's own entry points do; `errnoName` turns a result back into its name for reports.
 */

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const ENOEXEC = 8;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENOSYS = 38;
export const ELOOP = 40;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const ENOBUFS = 105;
export const ETIMEDOUT = 110;
/** Kernel-internal "restart the syscall"; user space sees EINTR when a signal ends a wait. */
export const ERESTARTSYS = 512;

export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG',
  [ENOEXEC]: 'ENOEXEC',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EISDIR]: 'EISDIR',
  [EINVAL]: 'EINVAL',
  [ENFILE]: 'ENFILE',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [ENOSPC]: 'ENOSPC',
  [ESPIPE]: 'ESPIPE',
  [ERANGE]: 'ERANGE',
  [EDEADLK]: 'EDEADLK',
  [ENOSYS]: 'ENOSYS',
  [ELOOP]: 'ELOOP',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [ENOBUFS]: 'ENOBUFS',
  [ETIMEDOUT]: 'ETIMEDOUT',
  [ERESTARTSYS]: 'ERESTARTSYS',
};

export const ERRNO_BY_NAME: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(ERRNO_NAMES).map(([n, name]) => [name, Number(n)]),
);

/** The name of a negative syscall result (-errno), or undefined for a success value. */
export function errnoName(result: number): string | undefined {
  return result < 0 ? (ERRNO_NAMES[-result] ?? `errno ${-result}`) : undefined;
}

/**
 * File flags, fcntl commands and mmap constants of the generic Linux ABI that x86-64 and arm64
 * share (asm-generic/fcntl.h, asm-generic/mman-common.h). Numbers are octal in the C headers;
 * here they are hex.
 */

// open(2) access modes and flags
export const O_ACCMODE = 0x3;
export const O_RDONLY = 0x0;
export const O_WRONLY = 0x1;
export const O_RDWR = 0x2;
export const O_CREAT = 0x40;
export const O_EXCL = 0x80;
export const O_NOCTTY = 0x100;
export const O_TRUNC = 0x200;
export const O_APPEND = 0x400;
export const O_NONBLOCK = 0x800;
export const O_CLOEXEC = 0x80000;

// fcntl(2)
export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const FD_CLOEXEC = 1;
/** The f_flags F_SETFL may change (of those vsva models). */
export const SETFL_MASK = O_APPEND | O_NONBLOCK;

// mmap(2)
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;

/**
 * ioctl request numbers as asm-generic/ioctl.h builds them (x86-64 and arm64 share this
 * encoding): bits [7:0] the command number, [15:8] the type ("magic"), [29:16] the argument size,
 * [31:30] the direction (none 0, write 1, read 2, both 3; "write" means user → kernel).
 *
 * seed-spec.md, Conventions: `_IO(t, n)` = `(t << 8) | n` — no size and no direction bits. Several
 * of the seeds' VFIO ioctls are `_IO` even though they carry a struct; that is why their numbers
 * are small (0x3B76) and why the kernel learns the size from the struct's own `argsz`.
 */

export const IOC_NRBITS = 8;
export const IOC_TYPEBITS = 8;
export const IOC_SIZEBITS = 14;
export const IOC_DIRBITS = 2;

export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
export const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
export const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

function fits(v: number, bits: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < 2 ** bits;
}

/**
 * _IOC(dir, type, nr, size), as an unsigned 32-bit number. A component that does not fit its
 * field is a programmer error in a constant's definition and throws (the C macros would silently
 * spill into the neighbouring field).
 */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (!fits(size, IOC_SIZEBITS)) throw new Error(`ioctl size ${size} does not fit in ${IOC_SIZEBITS} bits`);
  if (!fits(dir, IOC_DIRBITS)) throw new Error(`ioctl direction ${dir} does not fit in ${IOC_DIRBITS} bits`);
  if (!fits(type, IOC_TYPEBITS)) throw new Error(`ioctl type ${type} does not fit in ${IOC_TYPEBITS} bits`);
  if (!fits(nr, IOC_NRBITS)) throw new Error(`ioctl number ${nr} does not fit in ${IOC_NRBITS} bits`);
  return (
    ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0
  );
}

export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
/** The kernel writes `size` bytes to the user. */
export const _IOR = (type: number, nr: number, size: number): number => _IOC(IOC_READ, type, nr, size);
/** The kernel reads `size` bytes from the user. */
export const _IOW = (type: number, nr: number, size: number): number => _IOC(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number =>
  _IOC(IOC_READ | IOC_WRITE, type, nr, size);

export const _IOC_DIR = (req: number): number => (req >>> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1);
export const _IOC_TYPE = (req: number): number => (req >>> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1);
export const _IOC_NR = (req: number): number => (req >>> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1);
export const _IOC_SIZE = (req: number): number => (req >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1);

/** A request as `_IOWR('type', nr, size)` text, for traces and error messages. */
export function describeIoctl(req: number): string {
  const dir = ['_IO', '_IOW', '_IOR', '_IOWR'][_IOC_DIR(req)]!;
  const t = _IOC_TYPE(req);
  const type = t >= 0x20 && t < 0x7f ? `'${String.fromCharCode(t)}'` : `0x${t.toString(16)}`;
  const nr = `0x${_IOC_NR(req).toString(16)}`;
  return _IOC_DIR(req) === IOC_NONE ? `${dir}(${type}, ${nr})` : `${dir}(${type}, ${nr}, ${_IOC_SIZE(req)})`;
}

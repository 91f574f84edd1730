/**
 * The guest's side of the trap contract of `src/arch/guest-cpu.ts`: tiny coroutine helpers for
 * device-memory loads and stores (MMIO, including ECAM configuration space) and the GIC CPU
 * interface. Every guest driver reaches its devices only through these; RAM is accessed directly
 * on the guest-physical `MemoryPort`.
 *
 * 64-bit device registers are accessed with one 8-byte access (the value must stay below 2^53,
 * as the contract requires), the way Linux uses writeq/readq on arm64.
 */

import type { GicSysReg, GuestTrap, MmioSize } from '../arch/guest-cpu.ts';

/** Guest code: a coroutine that yields traps and is resumed with their answers. */
export type Guest<T> = Generator<GuestTrap, T, number>;

export function* mmioRead(gpa: number, size: MmioSize = 4): Guest<number> {
  const v: number = yield { kind: 'mmio-read', gpa, size };
  return v;
}

export function* mmioWrite(gpa: number, value: number, size: MmioSize = 4): Guest<void> {
  yield { kind: 'mmio-write', gpa, size, value };
}

export function* sysregRead(reg: GicSysReg): Guest<number> {
  const v: number = yield { kind: 'sysreg-read', reg };
  return v;
}

export function* sysregWrite(reg: GicSysReg, value: number): Guest<void> {
  yield { kind: 'sysreg-write', reg, value };
}

export function* wfi(): Guest<void> {
  yield { kind: 'wfi' };
}

/** A register block at a guest-physical base. */
export class MmioRegion {
  readonly base: number;
  constructor(base: number) {
    this.base = base;
  }
  read32(off: number): Guest<number> {
    return mmioRead(this.base + off, 4);
  }
  write32(off: number, v: number): Guest<void> {
    return mmioWrite(this.base + off, v >>> 0, 4);
  }
  read64(off: number): Guest<number> {
    return mmioRead(this.base + off, 8);
  }
  write64(off: number, v: number): Guest<void> {
    return mmioWrite(this.base + off, v, 8);
  }
}

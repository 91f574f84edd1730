/**
 * What the guest kernel's subsystems share: guest-physical RAM and its page allocator, the
 * interrupt table, IRQ masking, ID spaces, counters and the kernel log. `GuestOs` implements it;
 * drivers (`pci.ts`, `smmuv3.ts`, `sva.ts`, `pdma.ts`) receive it instead of the whole OS so that
 * each can be tested and read on its own.
 */

export { hex } from '../arch/bits.ts';

import type { MemoryPort } from '../hw/memory.ts';
import type { PageAllocator } from '../hw/page-alloc.ts';
import type { Ida } from './ida.ts';
import type { Guest } from './trap.ts';

/** An interrupt handler: guest code run from the IRQ vector between IAR and EOIR. */
export type IrqHandler = () => Guest<void>;

export interface GuestStats {
  /** Interrupts taken, by INTID. */
  readonly interrupts: Record<number, number>;
  spurious: number;
  unhandledIrqs: number;
  /** SMMU commands issued (CMD_SYNC included) and command-queue errors handled. */
  commands: number;
  commandErrors: number;
  /** SMMU event records consumed, and those that were translation/permission faults. */
  events: number;
  faults: number;
  gerrors: number;
  jobs: { submitted: number; done: number; failed: number };
}

export interface Kernel {
  readonly mem: MemoryPort;
  /** Allocator over RAM minus the reserved ranges (undefined when the device tree was bad). */
  readonly alloc: PageAllocator | undefined;
  readonly stats: GuestStats;
  /** ASIDs, shared by DMA domains and process address spaces (1..2^16-1). */
  readonly asids: Ida;
  /** The GICv2m frame (guest-physical) and the SPIs it can raise, for MSI(-X) vectors. */
  readonly msi: { readonly doorbellGpa: number; readonly spis: Ida } | undefined;
  printk(msg: string): void;
  registerIrq(intid: number, name: string, handler: IrqHandler): void;
  /** Runs `body` with IRQs masked on the current CPU (local_irq_save/restore). */
  irqsMasked<T>(body: Guest<T>): Guest<T>;
}

/** A failure of a guest job: caught at the job boundary and recorded as the job's error. */
export class GuestError extends Error {}

export function guestFail(msg: string): never {
  throw new GuestError(msg);
}

/**
 * What guest code running on an Armv8-A vCPU does that the CPU cannot complete by itself: the
 * contract between the code a vCPU executes (the guest OS of `src/guest`) and the hypervisor that
 * runs it (KVM's KVM_RUN, `src/host/kvm/arm64/vcpu.ts`).
 *
 * vsva does not interpret instructions. Guest code is TypeScript written as coroutines: loads and
 * stores to RAM happen directly on guest-physical memory; everything else — a load or store to an
 * address with no RAM behind it (a stage-2 data abort that KVM turns into an MMIO access), a GIC
 * CPU-interface system register access, WFI — is a *trap* the coroutine yields. KVM_RUN resumes
 * the program with the answer to its previous trap (the value an MMIO or system-register load
 * returned) and runs it until the next trap; it handles in-kernel traps itself (GIC system
 * registers, ioeventfd writes, WFI with an interrupt pending) and returns to the VMM for the rest
 * (KVM_EXIT_MMIO). Interrupts are taken between traps, when the program has them unmasked.
 *
 * Values are numbers: MMIO values up to 8 bytes must stay below 2^53 (addresses, in practice), as
 * everywhere in vsva; 64-bit registers holding larger values are accessed as two 32-bit halves.
 */

/** GICv3 CPU-interface registers a guest uses (ARM IHI 0069, §12.2), in-kernel on KVM. */
export type GicSysReg = 'ICC_IAR1_EL1' | 'ICC_EOIR1_EL1' | 'ICC_PMR_EL1' | 'ICC_IGRPEN1_EL1';

/** INTID returned by ICC_IAR1_EL1 when no interrupt is pending (a spurious interrupt). */
export const GIC_INTID_SPURIOUS = 1023;

export type MmioSize = 1 | 2 | 4 | 8;

export type GuestTrap =
  /** A load from device memory; the answer is the value read (little-endian, zero-extended). */
  | { readonly kind: 'mmio-read'; readonly gpa: number; readonly size: MmioSize }
  /** A store to device memory. */
  | { readonly kind: 'mmio-write'; readonly gpa: number; readonly size: MmioSize; readonly value: number }
  /** MRS of a GIC system register; the answer is its value. */
  | { readonly kind: 'sysreg-read'; readonly reg: GicSysReg }
  /** MSR of a GIC system register. */
  | { readonly kind: 'sysreg-write'; readonly reg: GicSysReg; readonly value: number }
  /** WFI: nothing to do until an interrupt arrives. */
  | { readonly kind: 'wfi' };

/** The code one vCPU runs. */
export interface GuestCpuProgram {
  /**
   * Runs guest code until its next trap and returns it. `answer` is the result of the previous
   * trap (the value a read returned; 0 after a write or WFI, and on the first call).
   */
  resume(answer: number): GuestTrap;
  /** PSTATE.I is clear: an IRQ may be taken now. */
  readonly irqUnmasked: boolean;
  /**
   * Takes an IRQ exception: the next `resume` starts at the IRQ vector (masking IRQs). KVM calls
   * it only just before a `resume`; that resume's `answer` still completes the interrupted
   * instruction, so the program keeps it for the interrupted code until the handler returns.
   */
  takeIrq(): void;
}

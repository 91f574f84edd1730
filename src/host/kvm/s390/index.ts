/**
 * vsva's s390 KVM architecture (seed-spec §4): `s390Arch()` for the generic KVM layer, and the
 * pieces a test or report may want to look at — the vCPU and VM classes, the local-interrupt
 * state and the reset matrix.
 */

export { IRQ_PEND_NAMES, LocalInterrupts } from './irq.ts';
export { clearReset, initialReset, normalReset } from './resets.ts';
export { S390Vcpu, type S390VcpuSnapshot } from './vcpu.ts';
export { S390_CAPABILITIES, S390Vm, s390Arch, s390CheckExtension } from './vm.ts';

/**
 * eventfd(2) flags (uapi/linux/eventfd.h) and the EFD_AUTORESET proposal of seed-spec.md §5.2,
 * which was never merged. EFD_CLOEXEC and EFD_NONBLOCK are the O_CLOEXEC and O_NONBLOCK bits of
 * x86-64 and arm64.
 */

import { O_CLOEXEC, O_NONBLOCK } from './fcntl.ts';

export const EFD_SEMAPHORE = 1 << 0;
export const EFD_CLOEXEC = O_CLOEXEC;
export const EFD_NONBLOCK = O_NONBLOCK;
/**
 * [RFC] eventfd: add EFD_AUTORESET flag (seed-spec §5.2): bit 6, deliberately the value of
 * O_CREAT, which no eventfd user passes. Never merged upstream.
 */
export const EFD_AUTORESET = 1 << 6;

export const EFD_SHARED_FCNTL_FLAGS = O_CLOEXEC | O_NONBLOCK;
/** The flags eventfd2 accepts in v5.5 (without the proposal). */
export const EFD_FLAGS_SET = EFD_SHARED_FCNTL_FLAGS | EFD_SEMAPHORE;
/** ... and with the EFD_AUTORESET patch applied. */
export const EFD_FLAGS_SET_AUTORESET = EFD_FLAGS_SET | EFD_AUTORESET;

/** ULLONG_MAX: the counter only reaches it through the kernel-side signal (the overflow state). */
export const EVENTFD_ULLONG_MAX = 0xffff_ffff_ffff_ffffn;
/** The largest value a user write can leave in the counter. */
export const EVENTFD_USER_MAX = 0xffff_ffff_ffff_fffen;

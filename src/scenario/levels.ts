/**
 * The scenario levels vsva knows (issue 7 §1): hardware (an SMMUv3 and memory, like a qtest),
 * uAPI (processes issuing syscalls and ioctls to the host kernel, like a kselftest) and system
 * (VMs with guests and DMA workloads). The loader, the runner, `vsva schema` and the tests take
 * this list.
 */

import type { AnyLevel } from './format/level.ts';
import { hardwareLevel } from './hw-level/level.ts';
import { systemLevel } from './system-level/level.ts';
import { uapiLevel } from './uapi-level/level.ts';

export const LEVELS: readonly AnyLevel[] = [hardwareLevel, uapiLevel, systemLevel];

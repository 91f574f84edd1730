/**
 * The uAPI level of YAML scenarios (issue 7 §1; DESIGN §5), like Linux kselftests: named
 * processes on the host kernel issue syscalls and ioctls — VFIO containers, groups and devices
 * with the seeds' nesting ioctls (§1, §2, §6, §7), KVM with s390's vCPU resets (§4), eventfds with
 * EFD_AUTORESET (§5) — and expect return values, errnos and output struct fields. The host is only
 * observed (`do: host`), never driven directly.
 */

import { defineLevel } from '../format/level.ts';
import { checkUapi } from './check.ts';
import { setupSchema, stepSchema, type UapiSetup, type UapiStep } from './schema.ts';
import { UapiSession } from './session.ts';

/** The title of a step without one: the syscall as a C programmer would write it. */
export function uapiTitle(st: UapiStep): string {
  switch (st.do) {
    case 'open':
      return `open ${st.path}${st.as !== undefined ? ` as ${st.as}` : ''}`;
    case 'close':
      return `close ${st.fd}`;
    case 'ioctl':
      return `ioctl ${st.fd} ${st.request}`;
    case 'eventfd':
      return `eventfd ${st.initval}${st.as !== undefined ? ` as ${st.as}` : ''}`;
    case 'read':
    case 'write':
      return `${st.do} ${st.fd}`;
    case 'poll':
      return `poll ${st.fds.map((f) => f.fd).join(', ')}`;
    case 'epoll_create':
      return `epoll_create${st.as !== undefined ? ` as ${st.as}` : ''}`;
    case 'epoll_ctl':
      return `epoll_ctl ${st.op} ${st.fd}`;
    case 'epoll_wait':
      return `epoll_wait ${st.epfd}`;
    case 'wait':
      return `wait for ${st.call}`;
    case 'signal':
      return `signal ${st.call}`;
    case 'advance':
      return `advance ${st.ms} ms`;
    case 'pread':
    case 'pwrite':
      return `${st.do} ${st.fd} ${st.region}+0x${st.offset.toString(16)}`;
    case 'ext_caps':
      return `extended capabilities of ${st.fd}`;
    case 'mmap':
      return `mmap ${st.fd ?? 'anonymous'}${st.as !== undefined ? ` as ${st.as}` : ''}`;
    case 'peek':
    case 'poke':
      return `${st.do} ${st.mapping}+0x${st.offset.toString(16)}`;
    case 'exit':
      return `${st.process} exits`;
    case 'host':
      return `observe the host${st.ste !== undefined ? ` (STE of ${st.ste})` : ''}`;
  }
}

export const uapiLevel = defineLevel<UapiSetup, UapiStep>({
  name: 'uapi',
  description:
    'processes issuing syscalls and ioctls to the host kernel (VFIO, KVM, eventfd), like kselftests',
  setup: setupSchema as never,
  step: stepSchema as never,
  check: checkUapi,
  titleOf: uapiTitle,
  start: (setup, ctx) => UapiSession.create(setup, ctx),
});

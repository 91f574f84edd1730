/**
 * poll(2) and epoll(7) event bits and epoll_ctl operations (uapi/asm-generic/poll.h,
 * uapi/linux/eventpoll.h). The POLL* and EPOLL* values are the same numbers.
 */

export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLNVAL = 0x020;
export const EPOLLRDNORM = 0x040;
export const EPOLLRDBAND = 0x080;
export const EPOLLWRNORM = 0x100;
export const EPOLLWRBAND = 0x200;
export const EPOLLMSG = 0x400;
export const EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 1 << 28;
export const EPOLLWAKEUP = 1 << 29;
export const EPOLLONESHOT = 1 << 30;
export const EPOLLET = 1 << 31;

export const POLLIN = EPOLLIN;
export const POLLPRI = EPOLLPRI;
export const POLLOUT = EPOLLOUT;
export const POLLERR = EPOLLERR;
export const POLLHUP = EPOLLHUP;
export const POLLNVAL = EPOLLNVAL;
export const POLLRDNORM = EPOLLRDNORM;
export const POLLRDBAND = EPOLLRDBAND;
export const POLLWRNORM = EPOLLWRNORM;
export const POLLWRBAND = EPOLLWRBAND;

export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
/** epoll_create1 flag: the same bit as O_CLOEXEC. */
export const EPOLL_CLOEXEC = 0x80000;

const NAMES: readonly [number, string][] = [
  [EPOLLIN, 'IN'],
  [EPOLLPRI, 'PRI'],
  [EPOLLOUT, 'OUT'],
  [EPOLLERR, 'ERR'],
  [EPOLLHUP, 'HUP'],
  [EPOLLNVAL, 'NVAL'],
  [EPOLLRDNORM, 'RDNORM'],
  [EPOLLRDBAND, 'RDBAND'],
  [EPOLLWRNORM, 'WRNORM'],
  [EPOLLWRBAND, 'WRBAND'],
  [EPOLLMSG, 'MSG'],
  [EPOLLRDHUP, 'RDHUP'],
];

/** "IN|OUT" style text of an event mask. */
export function pollMaskName(mask: number): string {
  const parts = NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, n]) => n);
  return parts.length > 0 ? parts.join('|') : '0';
}

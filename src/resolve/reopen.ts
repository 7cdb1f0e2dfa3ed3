/**
 * Reopening what an O_PATH fd holds, with real access flags. resolveInRoot hands out O_PATH fds,
 * whose type and identity are checked before anything is opened for reading; the reopen goes
 * through the fd's magic link in /proc/thread-self/fd, which names that very inode: it cannot
 * be swapped for another file between the check and the open.
 */
import { AT, O, cpath, openat } from '../sys/libc.js';

/** Reopen the inode `pathFd` holds with `flags` (O_CLOEXEC and O_NOCTTY added). */
export function reopenFd(pathFd: number, flags: number): number {
  return openat(AT.FDCWD, cpath(`/proc/thread-self/fd/${pathFd}`), flags | O.CLOEXEC | O.NOCTTY);
}

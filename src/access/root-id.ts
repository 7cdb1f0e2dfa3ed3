/**
 * The identity of a namespace root we hold, and of a task's root now. A pivot_root in the
 * namespace moves every task's root; an fd on the old root would go on showing the old (soon
 * detached) tree, so the guard compares the two. Used by workers and by the main thread's fast
 * path: a DONT_SYNC statx of /proc/PID/root never waits on a server.
 */
import { AT, cpath, statx } from '../sys/libc.js';
import { StatxView, STATX_MASK, STATX_RECORD } from '../sys/stat.js';

const ROOT = cpath('root');
const rec = Buffer.alloc(STATX_RECORD);

/** "mntid:dev:ino" of a statx record. */
export function rootIdOf(st: StatxView): string {
  return `${st.mntId}:${st.dev}:${st.ino}`;
}

/** Identity of the root of the task whose /proc directory `guardFd` is ('' if it is gone). */
export function currentRootId(guardFd: number): string {
  try {
    statx(guardFd, ROOT, AT.STATX_DONT_SYNC, STATX_MASK, rec);
  } catch {
    return '';
  }
  return rootIdOf(new StatxView(rec));
}

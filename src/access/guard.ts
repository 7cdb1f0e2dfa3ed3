/**
 * The guard check: before a root is used, the task it was opened from must still be in the
 * namespace and still have that root, else ESRCH (the caller then picks another way in).
 *
 * The root fd itself can never be redirected (it was opened from the checked task); the guard
 * only notices that the task, and so maybe the namespace, is gone, or that a pivot_root moved
 * the namespace's root. So a recent successful check may stand in. Everything here reads procfs
 * (a readlink, a DONT_SYNC statx of /proc/PID/root) and never blocks: io workers and the main
 * thread's fast path share it. Module state is per thread (each worker has its own cache).
 */
import { cpath, readlinkat } from '../sys/libc.js';
import { NsviewError, E } from '../sys/errors.js';
import type { RootRef } from './root-ref.js';
import { currentRootId } from './root-id.js';

/** How long a successful check stands (a readlink of an ns link costs ~20 us in procfs). */
const GUARD_VALID_MS = 100;
const MAX_REMEMBERED = 4096;
const NS_MNT = cpath('ns/mnt');
const linkBuf = Buffer.alloc(64);
const checkedAt = new Map<number, number>();

/** Why `root` may not be used now, or undefined when it may. */
function problemWith(root: RootRef): string | undefined {
  if (root.guardFd < 0) return undefined;
  const now = performance.now();
  const last = checkedAt.get(root.guardFd);
  if (last !== undefined && now - last < GUARD_VALID_MS) return undefined;
  let problem: string | undefined;
  try {
    const n = readlinkat(root.guardFd, NS_MNT, linkBuf);
    if (linkBuf.toString('latin1', 0, n) !== root.nsLink) problem = 'access task left the namespace';
    else if (currentRootId(root.guardFd) !== root.rootId) problem = 'the namespace root moved (pivot_root)';
  } catch {
    problem = 'access task is gone';
  }
  if (problem !== undefined) {
    checkedAt.delete(root.guardFd);
    return problem;
  }
  if (checkedAt.size > MAX_REMEMBERED) checkedAt.clear();
  checkedAt.set(root.guardFd, now);
  return undefined;
}

/** Throws NsviewError(ESRCH) when `root` may not be used. */
export function checkGuard(root: RootRef): void {
  const problem = problemWith(root);
  if (problem !== undefined) throw new NsviewError(E.ESRCH, problem);
}

/** Whether `root` may be used (for callers that fall back to another path rather than fail). */
export function guardHolds(root: RootRef): boolean {
  return problemWith(root) === undefined;
}

/**
 * How an io worker reaches a namespace's root. `guardFd` (an O_PATH fd on /proc/PID or
 * /proc/PID/task/TID) is checked before every operation (guard.ts): if that task left the
 * namespace (or died, or its PID now belongs to another process) the operation fails with ESRCH
 * instead of acting on a root that might be stale, and the caller picks another way in.
 */
export interface RootRef {
  rootFd: number;
  /** -1: no guard (a root used within one operation that checked it already). */
  guardFd: number;
  /** Expected `ns/mnt` link text of the guard task, e.g. "mnt:[4026532177]". */
  nsLink: string;
  /**
   * Identity of the root we hold (root-id.ts): the guard task's root must still be it. A
   * pivot_root in the namespace moves every task's root, and an fd taken before would go on
   * showing the old, soon detached, tree.
   */
  rootId: string;
}

/** A root just opened from a task (task-root.ts), with the statx of it taken while checking it. */
export interface OpenedRoot extends RootRef {
  rootStat: Uint8Array;
}

/** The RootRef part of an OpenedRoot (what callers keep). */
export function refOf(r: RootRef): RootRef {
  return { rootFd: r.rootFd, guardFd: r.guardFd, nsLink: r.nsLink, rootId: r.rootId };
}

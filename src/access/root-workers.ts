/**
 * What access needs from the io workers: opening a task's root and stating many roots, off the
 * main thread (both may block on a namespace's filesystem). Declared here, implemented by the io
 * layer (io/root-workers.ts), so that access depends on no layer above it: io runs access's
 * worker-side code (task-root.ts, guard.ts), and access only sees this interface.
 */
import type { OpenedRoot, RootRef } from './root-ref.js';

/** Open the root of a task's namespace (task-root.ts). */
export interface OpenTaskRootRequest {
  pid: number;
  tid: number;
  nsInode: number;
  /** The namespace's kernel id, checked while the namespace is held (absent: no ids). */
  nsId?: bigint;
  /** The task is one of ours (a sandbox): its root is reached through /proc/self. */
  self: boolean;
}

/** One namespace of a statRoots batch: a held root, or a task whose root to open. */
export type StatRootItem =
  { nsInode: number; rootFd: number } | { nsInode: number; nsId?: bigint; pid: number; tid: number };

export interface StatRootResult {
  nsInode: number;
  stat?: Uint8Array;
  /** The root's xattr names (NUL-terminated), where they could be had without waiting. */
  xattrNames?: Uint8Array;
  /** A root opened for this batch, for the caller to keep. */
  opened?: RootRef;
  errno?: number;
}

export interface RootWorkers {
  /** `key`: the namespace the work is for (the pool's fairness key). */
  openTaskRoot(req: OpenTaskRootRequest, key: number): Promise<OpenedRoot>;
  /** Root attributes of many namespaces in one worker trip, for a listing of the top directory. */
  statRoots(items: StatRootItem[]): Promise<StatRootResult[]>;
}

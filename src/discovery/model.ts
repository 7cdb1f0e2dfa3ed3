/**
 * What discovery finds: every mount namespace on the host and every way found to reach it.
 * Plain data, no open file descriptors: holding an nsfs fd would keep a namespace alive.
 */

/** How a namespace was found, in order of preference for reaching it. */
export type NamespaceSource = 'process' | 'thread' | 'fd' | 'bindmount';

/**
 * A path sequence in the style of lxkns' NamespaceRef: the first path is opened in the daemon's
 * own mount namespace; each further path is opened *inside* the mount namespace reached by the
 * previous element. `["/proc/42/ns/mnt", "/run/netns/x"]` = "enter 42's mount namespace, then
 * open /run/netns/x there". Paths are bytes as latin1 strings (one char per byte, as in
 * mountinfo): a pin's path need not be UTF-8. Open them with Buffer.from(p, 'latin1'); show
 * them with bytesToText (src/sys/mountinfo.ts).
 */
export type NamespaceRef = string[];
// Refs are names, not handles: `/proc/PID/fd/N` can be closed and reused for any file (a FIFO,
// a device) between discovery and use, and a pin path can be replaced. Whoever opens a ref
// checks it: O_PATH first, fstat (nsfs, st_ino == inode), then reopen through that fd.

/** A process whose `/proc/PID/root` may give the namespace root (a chrooted one will not). */
export interface TaskRef {
  pid: number;
  /** Set when only this thread (not the thread-group leader) is in the namespace. */
  tid?: number;
}

export interface MountNamespace {
  /** Inode number of the namespace (the N in `mnt:[N]`). */
  inode: number;
  /** The best way it was found (process > thread > fd > bindmount). */
  source: NamespaceSource;
  /** Processes (thread-group leaders) attached to it, ascending. */
  pids: number[];
  /** Threads attached to it whose thread-group leader is elsewhere. */
  threads: TaskRef[];
  /** Every reference that reaches it (process ns links, thread links, fds, bind mounts). */
  refs: NamespaceRef[];
  /** The user namespace owning it, when readable (`NS_GET_USERNS`), else undefined. */
  ownerUserNs?: number;
}

/** Result of one discovery pass. */
export interface DiscoverySnapshot {
  /** Namespaces by inode. */
  namespaces: Map<number, MountNamespace>;
  /** pid -> mount namespace inode, for every process seen (by-pid/ entries). */
  pidToNamespace: Map<number, number>;
  /** Monotonic ms timestamp when the pass finished. */
  takenAt: number;
  /** The daemon's own mount namespace (1-element bind mount refs are opened there). */
  ownNamespace?: number;
  /** What the pass did, for logs and `nsview list --stats`. */
  stats?: DiscoveryStats;
}

export interface DiscoveryStats {
  /** Whole pass, procfs scan, and mountinfo walk, in ms. */
  durationMs: number;
  scanMs: number;
  mountinfoMs: number;
  /** Processes, non-leader threads and fds examined. */
  processes: number;
  threads: number;
  fds: number;
  /** Mountinfo texts requested (procfs reads and readMountinfo calls). */
  mountinfoReads: number;
  /** Levels of the bind mount walk (1 = no namespace found through a pin). */
  depth: number;
  /** Namespaces whose mountinfo could not be read: pins inside them may be missing. */
  unexplored: number[];
  /** /proc reads issued; failed as vanished (ENOENT, ESRCH, EACCES...); failed otherwise. */
  reads: number;
  vanished: number;
  errors: number;
  errorSamples: string[];
}

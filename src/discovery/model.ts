/**
 * What discovery finds: every mount namespace on the host and every way found to reach it.
 * Plain data, no open file descriptors: holding an nsfs fd would keep a namespace alive.
 */

/** How a namespace was found, in order of preference for reaching it. */
export type NamespaceSource = 'process' | 'thread' | 'fd' | 'bindmount' | 'direct';
// 'direct': asked for by number or id before a pass found it, and found in the kernel's own list
// of mount namespaces (no task, fd or pin known yet: reached by its id alone).

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

/**
 * Where a namespace's key comes from: the kernel's never-reused namespace id (NS_GET_MNTNS_ID),
 * or, on kernels without one, its inode number (then a reused number is not told apart, and
 * the access layer's checks of the guard task's root are all that tells two namespaces apart).
 */
export type NamespaceIdSource = 'kernel' | 'number';

/** The key of a namespace on kernels without ids: the high bit set, so it never is a kernel id. */
export function numberKey(inode: number): bigint {
  return (1n << 63n) | BigInt(inode);
}

export interface MountNamespace {
  /**
   * The namespace's identity: the kernel's unique id, never given to another namespace, or the
   * numberKey of its inode (see NamespaceIdSource). Compare for equality only: kernel ids come
   * from per-CPU batches and say nothing about age.
   */
  id: bigint;
  idSource: NamespaceIdSource;
  /** Inode number of the namespace (the N in `mnt:[N]`); another namespace may get it after. */
  inode: number;
  /** The best way it was found (process > thread > fd > bindmount > direct). */
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
  /** Namespaces by id (MountNamespace.id). */
  namespaces: Map<bigint, MountNamespace>;
  /** Inode number -> id of the namespace that had that number during the pass. */
  byInode: Map<number, bigint>;
  /** pid -> mount namespace inode, for every process seen (the by-pid/ listing). */
  pidToNamespace: Map<number, number>;
  /** Monotonic ms timestamp when the pass finished. */
  takenAt: number;
  /**
   * Devices (kernelDev form, as statx's st_dev in nsview) of every nsview mount (fstype
   * `fuse.nsview`) in any namespace whose mountinfo was read: the view shows them as empty
   * directories, so two views never walk into each other. Absent in snapshots made elsewhere.
   */
  viewDevs?: number[];
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

/** The namespace that had inode number `inode` during the pass of `snap`, if any. */
export function namespaceByInode(snap: DiscoverySnapshot, inode: number): MountNamespace | undefined {
  const id = snap.byInode.get(inode);
  return id === undefined ? undefined : snap.namespaces.get(id);
}

/**
 * Messages between the main thread and the io workers. Everything that may block in a namespace's
 * filesystem is one of these requests; the main thread only ever waits on a Promise of the answer.
 *
 * IoOps is the protocol: per op, the request's fields and the result's type. The pool's `run`
 * and the worker's handler table (worker.ts) are both typed from it, so a request and what it
 * answers cannot drift apart.
 */
import type { RootRef, OpenedRoot } from '../access/root-ref.js';
import type { OpenTaskRootRequest, StatRootItem, StatRootResult } from '../access/root-workers.js';
import type { InRootPath } from '../resolve/names.js';
import type { StatResult } from '../resolve/lookup.js';
import type { LinkView } from '../resolve/symlink-view.js';
import type { FileAttrRequest } from '../sys/file-flags.js';

export interface IoOps {
  /** Open the root of a task's namespace (access/task-root.ts). */
  openTaskRoot: { req: OpenTaskRootRequest; res: OpenedRoot };
  /** Root attributes of many namespaces, for a listing of the top directory (roots.ts). */
  statRoots: { req: { items: StatRootItem[] }; res: StatRootResult[] };
  stat: { req: { root: RootRef; path: InRootPath; links?: LinkView }; res: StatResult };
  /** A symlink's target as stored. */
  readlink: { req: { root: RootRef; path: InRootPath }; res: Uint8Array };
  /** A symlink's target as the view shows it (resolve/symlink-view.ts). */
  viewLink: { req: { root: RootRef; path: InRootPath; links: LinkView }; res: Uint8Array };
  /** Open a regular file for reading, if it is still the file (dev, ino). */
  openFile: { req: { root: RootRef; path: InRootPath; dev: number; ino: bigint; nonblock: boolean }; res: OpenResult };
  /** Read into a reply the worker writes to the FUSE device; the errno of that write, or 0. */
  readReply: { req: { fd: number; offset: bigint; size: number; reply: ReplyFrame }; res: number };
  fstat: { req: { fd: number }; res: Uint8Array };
  /** SEEK_DATA / SEEK_HOLE on an open file: the offset found (ENXIO: none after `offset`). */
  seek: { req: { fd: number; offset: bigint; whence: number }; res: bigint };
  /** A read-only file attribute ioctl (sys/file-flags.ts) on an open regular file. */
  fileAttr: { req: { fd: number; which: FileAttrRequest }; res: Uint8Array };
  /** The same for a directory, opened and closed for it (if still dev, ino). */
  dirAttr: {
    req: { root: RootRef; path: InRootPath; dev: number; ino: bigint; which: FileAttrRequest };
    res: Uint8Array;
  };
  openDirAndRead: {
    req: { root: RootRef; path: InRootPath; dev: number; ino: bigint; links?: LinkView };
    res: OpenDirResult;
  };
  readDir: { req: { root: RootRef; path: InRootPath; fd: number; offset: bigint; links?: LinkView }; res: DirChunk };
  closeAll: { req: { fds: number[] }; res: void };
  /** Reopen for reading the file an O_PATH fd holds, closing that fd; the new fd. */
  reopenHeld: { req: { pathFd: number; nonblock: boolean }; res: number };
  /** Raw struct statfs (sys/statfs.ts decodes it). */
  statfs: { req: { root: RootRef; path: InRootPath }; res: Uint8Array };
  getxattr: { req: { root: RootRef; path: InRootPath; name: Uint8Array }; res: XattrResult };
  /** NUL-terminated names. */
  listxattr: { req: { root: RootRef; path: InRootPath }; res: Uint8Array };

  // Read-write mode (writes.ts): each names its directory or file as a NodeRef, checked there.
  /** Open an existing regular file with these open(2) flags (write access, O_TRUNC, O_APPEND). */
  openForWriting: { req: { node: NodeRef; flags: number }; res: OpenResult };
  mkdir: { req: { dir: NodeRef; name: Uint8Array; mode: number; owner?: Owner }; res: Uint8Array };
  mknod: { req: { dir: NodeRef; name: Uint8Array; mode: number; rdev: number; owner?: Owner }; res: Uint8Array };
  symlink: { req: { dir: NodeRef; name: Uint8Array; target: Uint8Array; owner?: Owner }; res: Uint8Array };
  link: { req: { node: NodeRef; dir: NodeRef; name: Uint8Array }; res: Uint8Array };
  unlink: { req: { dir: NodeRef; name: Uint8Array; rmdir: boolean }; res: void };
  rename: { req: { from: NodeRef; oldName: Uint8Array; to: NodeRef; newName: Uint8Array; flags: number }; res: void };
  create: { req: { dir: NodeRef; name: Uint8Array; flags: number; mode: number; owner?: Owner }; res: OpenResult };
  /** New attributes (statx record); `fd`: the open file the kernel named, if any. */
  setattr: { req: { node: NodeRef; attrs: SetattrFields; fd?: number }; res: Uint8Array };
  /** Bytes written. */
  write: { req: { fd: number; data: Uint8Array; offset: bigint }; res: number };
  fsync: { req: { fd: number; dataOnly: boolean }; res: void };
  fallocate: { req: { fd: number; mode: number; offset: bigint; length: bigint }; res: void };
  setxattr: { req: { node: NodeRef; name: Uint8Array; value: Uint8Array; flags: number }; res: void };
  removexattr: { req: { node: NodeRef; name: Uint8Array }; res: void };
}

/** A file the kernel named by node: where (in-root node path), the identity it must still have. */
export interface NodeRef {
  root: RootRef;
  path: InRootPath;
  dev: number;
  ino: bigint;
  /** st_dev of nsview's own mount (statx form): never written through. */
  ownDev: number;
}

/** Who a new file is given to (undefined: as made, by root). */
export interface Owner {
  uid: number;
  gid: number;
}

/** SETATTR's fields: FATTR_* bits in `valid`, times as (sec, nsec). */
export interface SetattrFields {
  valid: number;
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  atime: { sec: bigint; nsec: number };
  mtime: { sec: bigint; nsec: number };
}

export type IoOp = keyof IoOps;
/** The request of op K (of any op: IoRequestOf<IoOp>). */
export type IoRequestOf<K extends IoOp> = { op: K } & IoOps[K]['req'];
/** What op K answers. */
export type IoResult<K extends IoOp> = IoOps[K]['res'];

/**
 * A reply the worker writes itself, straight to the FUSE device, instead of sending data back
 * to the main thread (one thread wake-up and one copy less): `header` with its first 4 bytes set
 * to the frame's total length (u32 LE) and the next 4 to the negated errno (i32 LE, 0 for data),
 * then the data, in one write(2) to `fd`. The io layer knows nothing else of the protocol.
 */
export interface ReplyFrame {
  fd: number;
  header: Uint8Array;
}

export interface OpenResult {
  fd: number;
  stat: Uint8Array;
}

/** A chunk of a directory: names back to back, and per entry its end, d_type, d_off and statx. */
export interface DirChunk {
  names: Uint8Array;
  nameEnds: Uint32Array;
  types: Uint8Array;
  /** d_ino as getdents gave it (for a mountpoint: the covered directory, as natively). */
  inos: BigUint64Array;
  offs: BigInt64Array;
  /** statx records (256 bytes each); `statOk[i]` says whether record i is valid. */
  stats: Uint8Array;
  statOk: Uint8Array;
  /** True when getdents returned 0: no more entries after this chunk. */
  end: boolean;
}

export interface OpenDirResult {
  fd: number;
  first: DirChunk;
}

export interface XattrResult {
  /** All xattr names of the file, NUL-terminated. */
  names: Uint8Array;
  /** The value asked for; undefined when the file has no xattr of that name. */
  value?: Uint8Array;
}

/**
 * Worker -> pool: the answer to request `id`. `fds`: the fds the value hands over to the caller,
 * for the pool to close when nobody waits for the answer any more (timed out, aborted).
 */
export type IoResponse =
  { id: number; ok: true; value: unknown; fds: number[] } | { id: number; ok: false; errno: number; message: string };

/** Pool -> worker. */
export interface IoMessage {
  id: number;
  req: IoRequestOf<IoOp>;
}

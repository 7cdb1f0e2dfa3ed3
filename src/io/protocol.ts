import type { OpenedRoot, RootRef } from '../access/root-ref.js';
import type { InRootPath } from '../resolve/names.js';
import type { LinkView } from '../resolve/symlink-view.js';

/**
 * Messages between the main thread and the io workers. Everything that may block in a namespace's
 * filesystem is one of these requests; the main thread only ever waits on a Promise of the answer.
 */

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

export type IoRequest =
  | { op: 'openTaskRoot'; pid: number; tid: number; nsInode: number; self: boolean }
  | { op: 'statRoots'; items: StatRootItem[] }
  | { op: 'stat'; root: RootRef; path: InRootPath; links?: LinkView }
  | { op: 'readlink'; root: RootRef; path: InRootPath }
  | { op: 'viewLink'; root: RootRef; path: InRootPath; ownDev: number; pseudo: boolean }
  | { op: 'openFile'; root: RootRef; path: InRootPath; dev: number; ino: bigint }
  | { op: 'readReply'; fd: number; offset: bigint; size: number; reply: ReplyFrame }
  | { op: 'fstat'; fd: number }
  | { op: 'openDirAndRead'; root: RootRef; path: InRootPath; dev: number; ino: bigint; links?: LinkView }
  | { op: 'readDir'; root: RootRef; path: InRootPath; fd: number; offset: bigint; links?: LinkView }
  | { op: 'closeAll'; fds: number[] }
  | { op: 'reopenHeld'; pathFd: number }
  | { op: 'statfs'; root: RootRef; path: InRootPath }
  | { op: 'getxattr'; root: RootRef; path: InRootPath; name: Uint8Array }
  | { op: 'listxattr'; root: RootRef; path: InRootPath };

/** What openTaskRoot answers. */
export type OpenTaskRootResult = OpenedRoot;

/** One namespace of a statRoots batch: a held root, or a task whose root to open. */
export type StatRootItem = { nsInode: number; rootFd: number } | { nsInode: number; pid: number; tid: number };

export interface StatRootResult {
  nsInode: number;
  stat?: Uint8Array;
  /** The root's xattr names (NUL-terminated), where they could be had without waiting. */
  xattrNames?: Uint8Array;
  /** A root opened for this batch, for the caller to keep. */
  opened?: RootRef;
  errno?: number;
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

/** readReply: 0 when the frame was written, else the errno of writing it (ENOENT: interrupted). */
export type ReadReplyResult = number;

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

export type IoResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; errno: number; message: string };

/**
 * What is at an in-root node path: its statx and filesystem, or the text of the symlink there.
 * Each call resolves the path anew (resolveInRoot, NODE_PATH) and acts on the fd it got.
 * Runs in io workers; the caller has checked the root's guard.
 */
import { close, cpath, readlinkat } from '../sys/libc.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { resolveInRoot } from './in-root.js';
import { fsTypeOf } from './mount-fs-type.js';

/** One stat: the raw statx record, plus the magic number of the filesystem it is on. */
export interface StatResult {
  stat: Uint8Array;
  fsType: number;
}

const EMPTY = cpath('');
/** PATH_MAX: the longest symlink target the kernel stores. */
const LINK_MAX = 4096;
const linkBuf = Buffer.alloc(LINK_MAX);

/** statx of the file at `path` itself (a symlink is not followed), and its filesystem. */
export function statInRoot(rootFd: number, path: Buffer): StatResult {
  const fd = resolveInRoot(rootFd, path, { nodePath: true });
  try {
    const stat = statxOfFd(fd);
    return { stat, fsType: fsTypeOf(fd, new StatxView(Buffer.from(stat.buffer, stat.byteOffset, stat.byteLength))) };
  } finally {
    close(fd);
  }
}

/** The target of the symlink at `path`, as stored (bytes). */
export function readLinkInRoot(rootFd: number, path: Buffer): Uint8Array {
  const fd = resolveInRoot(rootFd, path, { nodePath: true });
  try {
    const n = readlinkat(fd, EMPTY, linkBuf);
    return Uint8Array.prototype.slice.call(linkBuf, 0, n);
  } finally {
    close(fd);
  }
}

/**
 * Regular files and what every io op on a path shares: open for reading (checked), read straight
 * into a FUSE reply, stat, readlink, close. Runs only inside an io worker thread: any of these
 * may block for as long as a filesystem inside a namespace wants (a frozen FUSE server, a dead
 * NFS peer), and the pool answers ETIMEDOUT for it meanwhile.
 *
 * Rules kept here: every path is resolved by resolveInRoot (kernel, RESOLVE_IN_ROOT); files are
 * first opened O_PATH, their type checked on the fd, and only regular files and directories are
 * ever opened for reading (never a device, FIFO or socket); identity (dev, ino) is re-checked on
 * the fd so a swap between lookup and open is noticed.
 */
import { writeSync } from 'node:fs';
import { O, SEEK_DATA, SEEK_HOLE, close, pread, seekDataOrHole } from '../sys/libc.js';
import { NsviewError, E, errnoOf } from '../sys/errors.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { checkGuard } from '../access/guard.js';
import type { RootRef } from '../access/root-ref.js';
import { resolveInRoot } from '../resolve/in-root.js';
import { reopenFd } from '../resolve/reopen.js';
import { readLinkInRoot, statInRoot, type StatResult } from '../resolve/lookup.js';
import { sizeLinkAsShown, viewLink, type LinkView } from '../resolve/symlink-view.js';
import type { OpenResult, ReplyFrame } from './protocol.js';

/** The statx of the file at `path` and its filesystem; a symlink sized as shown when `links`. */
export function statPath(root: RootRef, path: Buffer, links?: LinkView): StatResult {
  checkGuard(root);
  const result = statInRoot(root.rootFd, path);
  if (links)
    sizeLinkAsShown(
      root.rootFd,
      path,
      Buffer.from(result.stat.buffer, result.stat.byteOffset, result.stat.byteLength),
      links,
    );
  return result;
}

/** The symlink at `path` as stored. */
export function readLink(root: RootRef, path: Buffer): Uint8Array {
  checkGuard(root);
  return readLinkInRoot(root.rootFd, path);
}

/** The symlink at `path` as the view shows it (resolve/symlink-view.ts). */
export function readViewLink(root: RootRef, path: Buffer, links: LinkView): Uint8Array {
  checkGuard(root);
  return viewLink(root.rootFd, path, links);
}

/**
 * Resolve `path`, check it is still the file (dev, ino) of the type wanted, and reopen it with
 * `reopen` (given the O_PATH fd, which is closed here).
 */
export function reopenChecked(
  root: RootRef,
  path: Buffer,
  dev: number,
  ino: bigint,
  wantDir: boolean,
  reopen: (pathFd: number) => number,
): OpenResult {
  checkGuard(root);
  const pathFd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    const stat = statxOfFd(pathFd);
    const st = new StatxView(Buffer.from(stat.buffer, stat.byteOffset, stat.byteLength));
    if (st.dev !== dev || st.ino !== ino) throw new NsviewError(E.ESTALE, 'file was replaced');
    if (wantDir ? !st.isDir : !st.isReg) throw new NsviewError(wantDir ? E.ENOTDIR : E.EACCES, 'not a regular file');
    return { fd: reopen(pathFd), stat };
  } finally {
    close(pathFd);
  }
}

/**
 * A regular file for reading, without touching its atime where the filesystem allows that.
 * `nonblock`: for pseudo filesystems' files, some of which wait for data that may never come
 * (/proc/kmsg, trace_pipe): with O_NONBLOCK they answer EAGAIN instead of holding a worker.
 */
function reopenForReading(pathFd: number, nonblock = false): number {
  const extra = nonblock ? O.NONBLOCK : 0;
  try {
    return reopenFd(pathFd, O.RDONLY | O.NOATIME | extra);
  } catch (err) {
    // O_NOATIME is refused on some filesystems (EPERM); reading without it is still correct.
    if (!(err instanceof NsviewError && err.errno === E.EPERM)) throw err;
    return reopenFd(pathFd, O.RDONLY | extra);
  }
}

export function openFile(root: RootRef, path: Buffer, dev: number, ino: bigint, nonblock = false): OpenResult {
  return reopenChecked(root, path, dev, ino, false, (pathFd) => reopenForReading(pathFd, nonblock));
}

/**
 * Open for reading the regular file an O_PATH fd of ours holds (taken at OPEN, checked then),
 * and close that fd. The O_PATH fd pins the inode, so this is the file that was opened, wherever
 * the container has renamed it since.
 */
export function reopenHeld(pathFd: number, nonblock = false): number {
  try {
    return reopenForReading(pathFd, nonblock);
  } finally {
    close(pathFd);
  }
}

/**
 * Close fds in a worker: the last close of a file the container deleted meanwhile frees it,
 * which can mean disk I/O (or a FUSE release) the main thread must not wait for.
 */
export function closeAll(fds: number[]): void {
  for (const fd of fds) close(fd);
}

/** Attributes of an open file (the file itself, wherever its path went). */
export function fstatFd(fd: number): Uint8Array {
  return statxOfFd(fd);
}

/** Reused by every framed read of this worker: header + up to the largest READ. */
let frameBuf = Buffer.alloc(0);

/**
 * Read `size` bytes at `offset` (short only at EOF) straight into a reply frame and write it to
 * the FUSE device: data, or the read's errno. Returns 0, or the errno of the device write.
 */
export function readReply(fd: number, offset: bigint, size: number, reply: ReplyFrame): number {
  const head = reply.header.byteLength;
  if (frameBuf.length < head + size) frameBuf = Buffer.allocUnsafe(head + Math.max(size, 128 * 1024));
  frameBuf.set(reply.header, 0);
  let got = 0;
  let errno = 0;
  try {
    while (got < size) {
      const n = pread(fd, frameBuf.subarray(head + got), size - got, offset + BigInt(got));
      if (n === 0) break;
      got += n;
    }
  } catch (err) {
    errno = errnoOf(err);
    got = 0;
  }
  const total = head + got;
  frameBuf.writeUInt32LE(total, 0);
  frameBuf.writeInt32LE(-errno, 4);
  try {
    writeSync(reply.fd, frameBuf, 0, total);
    return 0;
  } catch (err) {
    return errnoOf(err);
  }
}

/** SEEK_DATA / SEEK_HOLE on an open file of ours: where its next data or hole starts. */
export function seekFile(fd: number, offset: bigint, whence: number): bigint {
  if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new NsviewError(E.EINVAL, `lseek whence ${whence}`);
  return seekDataOrHole(fd, offset, whence);
}

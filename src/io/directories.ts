/**
 * Directories: open one (checked, as files.ts opens files) and read it in chunks, each entry with
 * its statx. Runs only inside an io worker thread.
 */
import { AT, O, close, getdents64, seekTo, statx } from '../sys/libc.js';
import { StatxView, STATX_MASK, STATX_RECORD } from '../sys/stat.js';
import { DIRENT64 } from '../sys/dirent.js';
import type { RootRef } from '../access/root-ref.js';
import { reopenFd } from '../resolve/reopen.js';
import { sizeLinkAsShown, type LinkBudget, type LinkView } from '../resolve/symlink-view.js';
import { reopenChecked } from './files.js';
import type { DirChunk, OpenDirResult } from './protocol.js';

/** Bytes of getdents64 records one chunk gathers (most directories fit, end included). */
const DIR_CHUNK_BYTES = 128 * 1024;
/**
 * Components the rewrites of one directory chunk may resolve in all: bounds how long one chunk holds
 * a worker (each step is a syscall; a directory of long link chains would otherwise take seconds).
 */
const CHUNK_LINK_STEPS = 2048;
const dentsBuf = Buffer.alloc(64 * 1024);

function openDir(root: RootRef, path: Buffer, dev: number, ino: bigint): number {
  return reopenChecked(root, path, dev, ino, true, (pathFd) => reopenFd(pathFd, O.RDONLY | O.DIRECTORY)).fd;
}

/**
 * The next chunk of a directory from cookie `offset`, with a statx of every entry taken with
 * AT_STATX_DONT_SYNC: local filesystems answer exactly, and a frozen FUSE or NFS mount on one of
 * the entries cannot stall the whole listing (its own lookup goes through a normal, timed request).
 * `at`: where the directory is, for sizing its symlinks as shown.
 */
export function readDir(fd: number, offset: bigint, at?: { root: RootRef; path: Buffer; links: LinkView }): DirChunk {
  seekTo(fd, offset);
  // Fill up to a few getdents buffers, so that most directories are read, end included, in one
  // request from the main thread.
  const chunks: Buffer[] = [];
  let end = false;
  let total = 0;
  while (total < DIR_CHUNK_BYTES) {
    const n = getdents64(fd, dentsBuf);
    if (n === 0) {
      end = true;
      break;
    }
    chunks.push(Buffer.from(dentsBuf.subarray(0, n)));
    total += n;
  }
  const dents = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const chunk = decodeDents(fd, dents, end);
  if (at) sizeLinksAsShown(chunk, at.root, at.path, at.links);
  return chunk;
}

/** Open a directory and read its first chunk: one worker trip for most `opendir + readdir`. */
export function openDirAndRead(root: RootRef, path: Buffer, dev: number, ino: bigint, links?: LinkView): OpenDirResult {
  const fd = openDir(root, path, dev, ino);
  try {
    return { fd, first: readDir(fd, 0n, links ? { root, path, links } : undefined) };
  } catch (err) {
    close(fd);
    throw err;
  }
}

function sizeLinksAsShown(c: DirChunk, root: RootRef, dir: Buffer, links: LinkView): void {
  // One budget for the whole chunk: past it, links keep their stored size (their lookup, if
  // anyone looks, sizes them exactly).
  const budget: LinkBudget = { steps: CHUNK_LINK_STEPS };
  const names = Buffer.from(c.names.buffer, c.names.byteOffset, c.names.byteLength);
  const stats = Buffer.from(c.stats.buffer, c.stats.byteOffset, c.stats.byteLength);
  for (let i = 0; i < c.statOk.length; i++) {
    if (!c.statOk[i]) continue;
    const rec = stats.subarray(i * STATX_RECORD, (i + 1) * STATX_RECORD);
    if (!new StatxView(rec).isSymlink) continue;
    const name = names.subarray(i === 0 ? 0 : c.nameEnds[i - 1]!, c.nameEnds[i]!);
    const path = dir.length === 0 ? Buffer.from(name) : Buffer.concat([dir, Buffer.from('/'), name]);
    sizeLinkAsShown(root.rootFd, path, rec, links, budget);
  }
}

/** struct linux_dirent64 records -> a DirChunk, each entry stat'ed (see readDir). */
function decodeDents(fd: number, dents: Buffer, end: boolean): DirChunk {
  const n = dents.length;
  let count = 0;
  for (let p = 0; p < n; p += dents.readUInt16LE(p + DIRENT64.reclen)) count++;
  const nameEnds = new Uint32Array(count);
  const types = new Uint8Array(count);
  const inos = new BigUint64Array(count);
  const offs = new BigInt64Array(count);
  const stats = new Uint8Array(count * STATX_RECORD);
  const statOk = new Uint8Array(count);
  const nameChunks: Buffer[] = [];
  let nameLen = 0;
  let i = 0;
  for (let p = 0; p < n; i++) {
    const reclen = dents.readUInt16LE(p + DIRENT64.reclen);
    inos[i] = dents.readBigUInt64LE(p + DIRENT64.ino);
    offs[i] = dents.readBigInt64LE(p + DIRENT64.off);
    types[i] = dents[p + DIRENT64.type]!;
    const nameStart = p + DIRENT64.name;
    const nameEnd = dents.indexOf(0, nameStart);
    const name = dents.subarray(nameStart, nameEnd);
    nameChunks.push(name);
    nameLen += name.length;
    nameEnds[i] = nameLen;
    const isDots =
      (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
    if (!isDots) {
      try {
        // The name is followed by its NUL in the getdents record: pass it in place.
        statx(
          fd,
          dents.subarray(nameStart, nameEnd + 1),
          AT.SYMLINK_NOFOLLOW | AT.STATX_DONT_SYNC | AT.NO_AUTOMOUNT,
          STATX_MASK,
          Buffer.from(stats.buffer, i * STATX_RECORD, STATX_RECORD),
        );
        statOk[i] = 1;
      } catch {
        // Vanished between getdents and statx, or unreadable: listed without attributes.
      }
    }
    p += reclen;
  }
  const names = new Uint8Array(nameLen);
  let at = 0;
  for (const c of nameChunks) {
    names.set(c, at);
    at += c.length;
  }
  return { names, nameEnds, types, inos, offs, stats, statOk, end };
}

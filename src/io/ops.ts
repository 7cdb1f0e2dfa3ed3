/**
 * The synchronous work of one io request. Runs only inside an io worker thread: any of these may
 * block for as long as a filesystem inside a namespace wants (a frozen FUSE server, a dead NFS
 * peer), and the pool answers ETIMEDOUT for it meanwhile.
 *
 * Rules kept here: every path is resolved by resolveInRoot (kernel, RESOLVE_IN_ROOT); files are
 * first opened O_PATH, their type checked on the fd, and only regular files and directories are
 * ever opened for reading (never a device, FIFO or socket); identity (dev, ino) is re-checked on
 * the fd so a swap between lookup and open is noticed.
 */
import {
  AT,
  O,
  STATX,
  close,
  cpath,
  getdents64,
  getxattrat,
  listxattrat,
  fgetxattr,
  flistxattr,
  openat,
  openTree,
  OPEN_TREE,
  pread,
  readlinkat,
  seekTo,
  statx,
} from '../sys/libc.js';
import { writeSync } from 'node:fs';
import { NsviewError, E, errnoOf } from '../sys/errors.js';
import { StatxView, STATX_MASK, STATX_RECORD, setStatxSize, statxOfFd } from '../sys/stat.js';
import { NSFS_MAGIC, fsMagicOf, statfsOf } from '../sys/statfs.js';
import { parseMountinfoLine } from '../sys/mountinfo.js';
import { DIRENT64 } from '../sys/dirent.js';
import { resolveInRoot } from '../resolve/in-root.js';
import { components, isDot, isDotDot } from '../resolve/names.js';
import { isPseudoFs } from '../resolve/pseudo.js';
import type { DirChunk, LinkView, OpenResult, ReplyFrame, OpenTaskRootResult, RootRef, StatResult, StatRootItem, StatRootResult, XattrResult } from './protocol.js';
import { isLocalFs } from './fs-kinds.js';
import { hasXattrName } from './xattr-names.js';
import { currentRootId, rootIdOf } from './root-id.js';

const EMPTY = cpath('');
const DOTDOT = cpath('..');
const NS_MNT = cpath('ns/mnt');
const ROOT = cpath('root');
const XATTR_MAX = 65536;
const LINK_MAX = 4096;
/** Components one rewrite may resolve (each one openat2 + statx). */
const LINK_STEPS = 512;
/** Components the rewrites of one directory chunk may resolve in all. */
const CHUNK_LINK_STEPS = 16384;
/** As the kernel's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;

const linkBuf = Buffer.alloc(LINK_MAX);
const dentsBuf = Buffer.alloc(64 * 1024);

function readLinkText(dirfd: number, path: Buffer): string {
  const n = readlinkat(dirfd, path, linkBuf);
  return linkBuf.toString('latin1', 0, n);
}

/** How long a successful guard check stands (readlink of an ns link costs ~20 us in procfs). */
const GUARD_VALID_MS = 100;
const guardChecked = new Map<number, number>();

/**
 * The namespace link of the guard task must still read as expected, else ESRCH. The root fd
 * itself can never be redirected (it was opened from the checked task); the guard only notices
 * that the task, and so maybe the namespace, is gone, so a recent check may stand in.
 */
function checkGuard(root: RootRef): void {
  if (root.guardFd < 0) return;
  const now = performance.now();
  const last = guardChecked.get(root.guardFd);
  if (last !== undefined && now - last < GUARD_VALID_MS) return;
  let link: string;
  try {
    link = readLinkText(root.guardFd, NS_MNT);
  } catch {
    guardChecked.delete(root.guardFd);
    throw new NsviewError(E.ESRCH, 'access task is gone');
  }
  if (link !== root.nsLink) {
    guardChecked.delete(root.guardFd);
    throw new NsviewError(E.ESRCH, 'access task left the namespace');
  }
  if (currentRootId(root.guardFd) !== root.rootId) {
    guardChecked.delete(root.guardFd);
    throw new NsviewError(E.ESRCH, 'the namespace root moved (pivot_root)');
  }
  if (guardChecked.size > 4096) guardChecked.clear();
  guardChecked.set(root.guardFd, now);
}

/** Filesystem magic per mount, so each mount costs one fstatfs (which may reach a FUSE server). */
const fsTypeByMount = new Map<bigint, number>();

function fsTypeOf(fd: number, st: StatxView): number {
  const key = st.hasUniqueMntId ? st.mntId : -1n;
  const known = key >= 0n ? fsTypeByMount.get(key) : undefined;
  if (known !== undefined) return known;
  const magic = fsMagicOf(fd);
  if (key >= 0n) {
    if (fsTypeByMount.size > 65536) fsTypeByMount.clear();
    fsTypeByMount.set(key, magic);
  }
  return magic;
}

/**
 * Open the root of a task's mount namespace through /proc, refusing a task that is not in the
 * expected namespace or whose root is not the namespace root (a chroot): from a namespace's root,
 * `..` stays put (the root mount is its own parent); from a chroot it climbs.
 */
export function openTaskRoot(pid: number, tid: number, nsInode: number, self: boolean, noSync = false): OpenTaskRootResult {
  const base = self ? `/proc/self/task/${tid}` : tid === pid ? `/proc/${pid}` : `/proc/${pid}/task/${tid}`;
  const guardFd = openat(AT.FDCWD, cpath(base), O.PATH | O.DIRECTORY | O.CLOEXEC);
  let rootFd = -1;
  try {
    const nsLink = `mnt:[${nsInode}]`;
    if (readLinkText(guardFd, NS_MNT) !== nsLink) throw new NsviewError(E.ESRCH, `${base} left the namespace`);
    rootFd = openat(guardFd, ROOT, O.PATH | O.DIRECTORY | O.CLOEXEC);
    const rootStat = statxOfFd(rootFd, noSync);
    const a = new StatxView(Buffer.from(rootStat.buffer));
    const upFd = openat(rootFd, DOTDOT, O.PATH | O.DIRECTORY | O.CLOEXEC);
    let b: StatxView;
    try {
      b = new StatxView(Buffer.from(statxOfFd(upFd, noSync)));
    } finally {
      close(upFd);
    }
    if (a.dev !== b.dev || a.ino !== b.ino || a.mntId !== b.mntId) {
      throw new NsviewError(E.EPERM, `${base} is chrooted below its namespace root`);
    }
    // `..` stays put on any mount root without a parent: a detached copy (open_tree clone) or a
    // mount of another namespace (the host's root, reached through a leaked fd) pass that test.
    // The namespace's root is a mount *of that namespace* mounted on `/`, which the task's own
    // mountinfo lists; the others are not in its mount list at all.
    if (!isNamespaceRootMount(guardFd, rootFd)) {
      throw new NsviewError(EPERM_ROOT, `${base} has a root that is not its namespace's root mount`);
    }
    // Checked again after opening the root: had the task changed namespace in between, the root
    // we hold could belong to the other one.
    if (readLinkText(guardFd, NS_MNT) !== nsLink) throw new NsviewError(E.ESRCH, `${base} left the namespace`);
    return { rootFd, guardFd, nsLink, rootId: rootIdOf(a), rootStat };
  } catch (err) {
    if (rootFd >= 0) close(rootFd);
    close(guardFd);
    throw err;
  }
}

/**
 * Open a namespace file (an nsfs bind mount, /proc/PID/fd/N, /proc/PID/ns/mnt) for setns.
 * `rootFd` -1 means the path is a host path; otherwise it is resolved inside that root. It is
 * opened O_PATH first and must be an nsfs inode with the expected number before it is reopened
 * for reading: an fd number or pin path may have been reused for a FIFO or a device meanwhile,
 * and opening those could block or have side effects.
 *
 * A pin is reached through a detached clone of its mount (open_tree OPEN_TREE_CLONE, which the
 * kernel allows across mount namespaces for nsfs files): our fds then hold the clone, never the
 * pin itself, so an administrator's `umount PIN` is not refused as busy however long the thread
 * holding them is preempted. Kernels without open_tree fall back to opening the path.
 */
export function openNsFile(rootFd: number, path: string, nsInode: number): number {
  const pathFd = openNsPath(rootFd, path);
  try {
    const st = new StatxView(Buffer.from(statxOfFd(pathFd)));
    if (fsMagicOf(pathFd) !== NSFS_MAGIC || st.ino !== BigInt(nsInode)) {
      throw new NsviewError(E.ESTALE, `${path} is not mount namespace ${nsInode}`);
    }
    return reopenFd(pathFd, O.RDONLY);
  } finally {
    close(pathFd);
  }
}

/** `path`: bytes as a latin1 string (a NamespaceRef element). */
function openNsPath(rootFd: number, path: string): number {
  if (rootFd < 0) {
    const p = cpath(Buffer.from(path, 'latin1'));
    try {
      return openTree(AT.FDCWD, p, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC);
    } catch (err) {
      if (!openTreeUnsupported(err)) throw err;
      return openat(AT.FDCWD, p, O.PATH | O.CLOEXEC);
    }
  }
  const rel = path.replace(/^\/+/, '');
  const cut = rel.lastIndexOf('/');
  const base = rel.slice(cut + 1);
  if (base === '' || base === '.' || base === '..') throw new NsviewError(E.ENOENT, `${path} names no file`);
  // The directory is resolved in-root (contained); the last component is looked up by the kernel
  // in it without following a symlink, crossing into the pin mounted there.
  const dirFd = resolveInRoot(rootFd, Buffer.from(cut < 0 ? '' : rel.slice(0, cut), 'latin1'), { followLast: true });
  try {
    return openTree(dirFd, cpath(Buffer.from(base, 'latin1')), OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | AT.SYMLINK_NOFOLLOW);
  } catch (err) {
    if (!openTreeUnsupported(err)) throw err;
    return resolveInRoot(rootFd, Buffer.from(rel, 'latin1'), { followLast: true });
  } finally {
    close(dirFd);
  }
}

/** ENOSYS: no open_tree; EINVAL/EPERM: a kernel that refuses clones from another namespace. */
function openTreeUnsupported(err: unknown): boolean {
  const e = errnoOf(err);
  return e === E.ENOSYS || e === E.EINVAL || e === E.EPERM;
}

const EPERM_ROOT = E.EPERM;
const MOUNTINFO = cpath('mountinfo');
const mountinfoBuf = Buffer.alloc(1 << 20);

/** Is the mount of `rootFd` listed in the task's mountinfo, mounted on "/"? */
function isNamespaceRootMount(taskFd: number, rootFd: number): boolean {
  // The mountinfo id is the old (reusable) mount id: ask statx for that one only.
  const rec = Buffer.alloc(STATX_RECORD);
  statx(rootFd, EMPTY, AT.EMPTY_PATH | AT.STATX_DONT_SYNC, STATX.MNT_ID, rec);
  const id = Number(new StatxView(rec).mntId);
  const fd = openat(taskFd, MOUNTINFO, O.RDONLY | O.CLOEXEC);
  let text = '';
  try {
    for (let n; (n = pread(fd, mountinfoBuf, mountinfoBuf.length, text.length)) > 0; ) {
      text += mountinfoBuf.toString('latin1', 0, n);
    }
  } finally {
    close(fd);
  }
  const prefix = `${id} `;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const e = parseMountinfoLine(line);
    if (e?.id === id) return e.mountPoint === '/';
  }
  return false;
}

/**
 * For a listing of the top directory: the root stat of many namespaces in one trip, opening the
 * roots of those not held yet. Stats are AT_STATX_DONT_SYNC, so a namespace whose root is on a
 * frozen FUSE or NFS server cannot stall the listing (its cached attributes are shown).
 */
export function statRoots(items: StatRootItem[]): StatRootResult[] {
  return items.map((it): StatRootResult => {
    try {
      let r: StatRootResult;
      if (it.rootFd !== undefined) r = { nsInode: it.nsInode, stat: statxOfFd(it.rootFd, true) };
      else {
        const o = openTaskRoot(it.pid!, it.tid!, it.nsInode, false, true);
        r = { nsInode: it.nsInode, stat: o.rootStat!, opened: { rootFd: o.rootFd, guardFd: o.guardFd, nsLink: o.nsLink, rootId: o.rootId } };
      }
      // xattr names too, where that cannot wait on a server (a mount seen before, known local).
      const st = new StatxView(Buffer.from(r.stat!.buffer));
      const magic = st.hasUniqueMntId ? fsTypeByMount.get(st.mntId) : undefined;
      if (magic !== undefined && isLocalFs(magic)) {
        try {
          r.xattrNames = sliceOf(xattrBuf, listxattrat(r.opened?.rootFd ?? it.rootFd!, DOT, AT.SYMLINK_NOFOLLOW, xattrBuf));
        } catch {
          // names unknown: asked for later
        }
      }
      return r;
    } catch (err) {
      return { nsInode: it.nsInode, errno: err instanceof NsviewError ? err.errno : E.EIO };
    }
  });
}

export function statPath(root: RootRef, path: Buffer, links?: LinkView): StatResult {
  checkGuard(root);
  const fd = resolveInRoot(root.rootFd, path, { nodePath: true });
  let result: StatResult;
  try {
    const stat = statxOfFd(fd);
    result = { stat, fsType: fsTypeOf(fd, new StatxView(Buffer.from(stat.buffer, stat.byteOffset, STATX_RECORD))) };
  } finally {
    close(fd);
  }
  if (links) sizeLinkAsShown(root, path, Buffer.from(result.stat.buffer, result.stat.byteOffset, STATX_RECORD), links);
  return result;
}

/** st_size of a symlink := length of its rewritten target (left as stored if that fails). */
function sizeLinkAsShown(root: RootRef, path: Buffer, rec: Buffer, links: LinkView, budget?: { steps: number }): void {
  if (!new StatxView(rec).isSymlink) return;
  if (budget && budget.steps <= 0) return;
  const mine = { steps: Math.min(LINK_STEPS, budget?.steps ?? LINK_STEPS) };
  const given = mine.steps;
  try {
    setStatxSize(rec, BigInt(viewLink(root, path, links.ownDev, links.pseudo, mine).length));
  } catch {
    // unreadable link: keep the stored size
  } finally {
    if (budget) budget.steps -= given - Math.max(0, mine.steps);
  }
}

export function readLink(root: RootRef, path: Buffer): Uint8Array {
  checkGuard(root);
  const fd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    const n = readlinkat(fd, EMPTY, linkBuf);
    return Uint8Array.prototype.slice.call(linkBuf, 0, n);
  } finally {
    close(fd);
  }
}

function joinComponents(parts: Buffer[]): Buffer {
  return Buffer.from(parts.map((p) => p.toString('latin1')).join('/'), 'latin1');
}

/**
 * The symlink at `path`, rewritten so that a host program following it from its place in the
 * view stays inside this namespace's directory and reaches what the container would reach.
 *
 * The target is resolved here, component by component, the way the container's kernel would
 * (absolute = from the namespace root, `..` clamped at the root, links followed up to 40), giving
 * a canonical path with no symlinks or dots in it. The link's own directory is canonical too (a
 * node path), so the shortest relative path from one to the other is emitted: its leading `..`
 * never outnumber the link's depth and no other `..` appears. Past a component that cannot be
 * resolved (missing, not a directory, an opaque pseudo filesystem) the rest is appended with each
 * `..` turned into `.`: the host's walk fails where the container's would, and even if the
 * container races to create it, nothing can climb out. A link that loops inside the container
 * points at itself, so it still loops (ELOOP) on the host.
 */
export function viewLink(root: RootRef, path: Buffer, ownDev: number, pseudo: boolean, budget = { steps: LINK_STEPS }): Uint8Array {
  checkGuard(root);
  const linkParts = components(path);
  const linkDir = linkParts.slice(0, -1);
  const first = Buffer.from(readLink(root, path));
  let stack = first[0] === 0x2f ? [] : [...linkDir];
  let pending = components(first);
  // A target ending in '/' must resolve to a directory (else ENOTDIR): keep that demand.
  let mustBeDir = endsWithSlash(first);
  let followed = 0;
  let unresolved = false;
  const dot = Buffer.from('.');
  const noGuard = { ...root, guardFd: -1 };
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (unresolved) {
      stack.push(isDotDot(c) ? dot : c);
      continue;
    }
    if (isDot(c)) continue;
    if (isDotDot(c)) {
      stack.pop();
      continue;
    }
    // Bounded work per link: a container can plant chains of 4 KB targets full of `x/..`; past
    // the budget the link is shown as pointing at itself (ELOOP when followed).
    if (--budget.steps < 0) {
      stack = linkParts;
      mustBeDir = false;
      break;
    }
    const candidate = joinComponents([...stack, c]);
    let st: StatxView;
    let fsType = 0;
    let target: Buffer | undefined;
    try {
      const r = statPath(noGuard, candidate);
      st = new StatxView(Buffer.from(r.stat.buffer, r.stat.byteOffset, STATX_RECORD));
      fsType = r.fsType;
      // A link we may not read (a magic link of a process we cannot inspect) is unresolvable.
      if (st.isSymlink) target = Buffer.from(readLink(noGuard, candidate));
    } catch {
      stack.push(c);
      unresolved = true;
      continue;
    }
    if (target) {
      if (++followed > MAX_SYMLINKS) {
        stack = linkParts;
        mustBeDir = false;
        break;
      }
      if (target[0] === 0x2f) stack = [];
      if (pending.length === 0 && endsWithSlash(target)) mustBeDir = true;
      pending = [...components(target), ...pending];
      continue;
    }
    stack.push(c);
    const opaque = st.isDir && ((st.isMountRoot && !pseudo && isPseudoFs(fsType)) || st.dev === ownDev);
    if (opaque || (!st.isDir && pending.length > 0)) unresolved = true;
    if (!st.isDir && pending.length === 0 && mustBeDir) unresolved = true;
  }
  // 'x/.' fails with ENOTDIR where x is not a directory, and is x itself where it is one.
  if (mustBeDir) stack.push(dot);
  return Uint8Array.prototype.slice.call(relativePath(linkDir, stack));
}

function endsWithSlash(b: Buffer): boolean {
  return b.length > 0 && b[b.length - 1] === 0x2f;
}

/** The shortest relative path from canonical directory `from` to canonical path `to`. */
function relativePath(from: Buffer[], to: Buffer[]): Buffer {
  let common = 0;
  while (common < from.length && common < to.length && from[common]!.equals(to[common]!)) common++;
  const parts = [...Array<Buffer>(from.length - common).fill(Buffer.from('..')), ...to.slice(common)];
  return parts.length === 0 ? Buffer.from('.') : joinComponents(parts);
}

function reopenChecked(root: RootRef, path: Buffer, dev: number, ino: bigint, wantDir: boolean, reopen: (pathFd: number) => number): OpenResult {
  checkGuard(root);
  const pathFd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    const stat = statxOfFd(pathFd);
    const st = new StatxView(Buffer.from(stat.buffer, stat.byteOffset, STATX_RECORD));
    if (st.dev !== dev || st.ino !== ino) throw new NsviewError(E.ESTALE, 'file was replaced');
    if (wantDir ? !st.isDir : !st.isReg) throw new NsviewError(wantDir ? E.ENOTDIR : E.EACCES, 'not a regular file');
    return { fd: reopen(pathFd), stat };
  } finally {
    close(pathFd);
  }
}

/** Reopen the very inode an O_PATH fd holds (it cannot change identity), with `flags`. */
function reopenFd(pathFd: number, flags: number): number {
  return openat(AT.FDCWD, cpath(`/proc/thread-self/fd/${pathFd}`), flags | O.CLOEXEC | O.NOCTTY);
}

/** A regular file for reading, without touching its atime where the filesystem allows that. */
function reopenForReading(pathFd: number): number {
  try {
    return reopenFd(pathFd, O.RDONLY | O.NOATIME);
  } catch (err) {
    // O_NOATIME is refused on some filesystems (EPERM); reading without it is still correct.
    if (!(err instanceof NsviewError && err.errno === E.EPERM)) throw err;
    return reopenFd(pathFd, O.RDONLY);
  }
}

export function openFile(root: RootRef, path: Buffer, dev: number, ino: bigint): OpenResult {
  return reopenChecked(root, path, dev, ino, false, reopenForReading);
}

/**
 * Open for reading the regular file an O_PATH fd of ours holds (taken at OPEN, checked then),
 * and close that fd. The O_PATH fd pins the inode, so this is the file that was opened, wherever
 * the container has renamed it since.
 */
export function reopenHeld(pathFd: number): number {
  try {
    return reopenForReading(pathFd);
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

export function openDir(root: RootRef, path: Buffer, dev: number, ino: bigint): OpenResult {
  return reopenChecked(root, path, dev, ino, true, (pathFd) => reopenFd(pathFd, O.RDONLY | O.DIRECTORY));
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

/** Attributes of an open file (the file itself, wherever its path went). */
export function fstatFd(fd: number): Uint8Array {
  return statxOfFd(fd);
}

/**
 * The next chunk of a directory from cookie `offset`, with a statx of every entry taken with
 * AT_STATX_DONT_SYNC: local filesystems answer exactly, and a frozen FUSE or NFS mount on one of
 * the entries cannot stall the whole listing (its own lookup goes through a normal, timed request).
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

function sizeLinksAsShown(c: DirChunk, root: RootRef, dir: Buffer, links: LinkView): void {
  // One budget for the whole chunk: past it, links keep their stored size (their lookup, if
  // anyone looks, sizes them exactly).
  const budget = { steps: CHUNK_LINK_STEPS };
  const names = Buffer.from(c.names.buffer, c.names.byteOffset, c.names.byteLength);
  const stats = Buffer.from(c.stats.buffer, c.stats.byteOffset, c.stats.byteLength);
  for (let i = 0; i < c.statOk.length; i++) {
    if (!c.statOk[i]) continue;
    const rec = stats.subarray(i * STATX_RECORD, (i + 1) * STATX_RECORD);
    if (!new StatxView(rec).isSymlink) continue;
    const name = names.subarray(i === 0 ? 0 : c.nameEnds[i - 1]!, c.nameEnds[i]!);
    const path = dir.length === 0 ? Buffer.from(name) : Buffer.concat([dir, Buffer.from('/'), name]);
    sizeLinkAsShown(root, path, rec, links, budget);
  }
}

/** Open a directory and read its first chunk: one worker trip for most `opendir + readdir`. */
export function openDirAndRead(root: RootRef, path: Buffer, dev: number, ino: bigint, links?: LinkView): { fd: number; first: DirChunk } {
  const { fd } = openDir(root, path, dev, ino);
  try {
    return { fd, first: readDir(fd, 0n, links ? { root, path, links } : undefined) };
  } catch (err) {
    close(fd);
    throw err;
  }
}

const DIR_CHUNK_BYTES = 128 * 1024;

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
    const isDots = (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
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

export function statfsPath(root: RootRef, path: Buffer): Uint8Array {
  checkGuard(root);
  const fd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    return statfsOf(fd);
  } finally {
    close(fd);
  }
}

let xattratMissing = false;

/**
 * Run an xattr call on the file at `path` itself (symlinks included). getxattrat(2) refuses
 * O_PATH fds, so the parent is resolved in-root and the last component is addressed relative to
 * it without following: one validated name cannot leave the parent.
 */
function onFile<T>(
  root: RootRef,
  path: Buffer,
  viaAt: (dirfd: number, name: Buffer) => T,
  viaFd: (fd: number) => T,
): T {
  checkGuard(root);
  if (!xattratMissing) {
    const slash = path.lastIndexOf(0x2f);
    const parent = slash < 0 ? Buffer.alloc(0) : path.subarray(0, slash);
    const last = path.length === 0 ? DOT : cpath(path.subarray(slash + 1));
    const dirfd = resolveInRoot(root.rootFd, parent, { nodePath: true, flags: O.PATH | O.DIRECTORY });
    try {
      return viaAt(dirfd, last);
    } catch (err) {
      if (!(err instanceof NsviewError && err.errno === E.ENOSYS)) throw err;
      xattratMissing = true;
    } finally {
      close(dirfd);
    }
  }
  // Kernels before 6.13: only regular files and directories can be reopened safely for f*xattr.
  const fd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    const st = new StatxView(Buffer.from(statxOfFd(fd)));
    if (!st.isReg && !st.isDir) throw new NsviewError(E.ENODATA);
    const rfd = reopenFd(fd, O.RDONLY | O.NONBLOCK | (st.isDir ? O.DIRECTORY : 0));
    try {
      return viaFd(rfd);
    } finally {
      close(rfd);
    }
  } finally {
    close(fd);
  }
}

const xattrBuf = Buffer.alloc(XATTR_MAX);
const DOT = cpath('.');

/**
 * The value of xattr `name` (undefined: the file has none of that name) and the file's whole
 * name list, from one path resolution: callers cache the list, so the probes `ls -l` makes
 * (ACLs, security labels) cost one trip per file, not one per name.
 */
export function getXattr(root: RootRef, path: Buffer, name: Buffer): XattrResult {
  const cname = cpath(name);
  return onFile(
    root,
    path,
    (dirfd, last) => {
      const names = sliceOf(xattrBuf, listxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, xattrBuf));
      if (!hasXattrName(names, name)) return { names };
      return { names, value: sliceOf(xattrBuf, getxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, cname, xattrBuf)) };
    },
    (fd) => {
      const names = sliceOf(xattrBuf, flistxattr(fd, xattrBuf));
      if (!hasXattrName(names, name)) return { names };
      return { names, value: sliceOf(xattrBuf, fgetxattr(fd, cname, xattrBuf)) };
    },
  );
}

export function listXattr(root: RootRef, path: Buffer): Uint8Array {
  return onFile(
    root,
    path,
    (dirfd, last) => sliceOf(xattrBuf, listxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, xattrBuf)),
    (fd) => sliceOf(xattrBuf, flistxattr(fd, xattrBuf)),
  );
}

function sliceOf(buf: Buffer, n: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, 0, n);
}


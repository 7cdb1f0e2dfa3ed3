/**
 * Read-write mode's operations inside a namespace. Runs only inside an io worker thread.
 *
 * Containment: every operation acts on a PARENT directory fd plus ONE checked name, or on an fd
 * of the file itself, never on a path string the kernel would walk with the host's root:
 *  - the parent is resolved with resolveInRoot as a node path (RESOLVE_IN_ROOT |
 *    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a directory the container swapped for a symlink
 *    anywhere on the way fails (ENOENT) instead of being followed, and its identity (dev, ino)
 *    must still be the directory the kernel named, else ESTALE;
 *  - the name is one component (the view checked it: no '/', not '.' or '..');
 *  - the *at() call then acts on (dirfd, name) without following a symlink in the name
 *    (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a name the
 *    container turns into a symlink to `/` at any moment is acted on as that symlink, inside.
 *  - attributes are changed on an O_PATH fd of the file itself (fchownat/fchmodat2/utimensat with
 *    AT_EMPTY_PATH), which no later rename can redirect.
 * Pseudo filesystems (proc, sysfs, cgroup...) and nsview's own mount are never written: EROFS.
 *
 * Ownership: the io worker runs as root. A file made for a caller other than root is given to
 * the caller afterwards (chown on the new file's own fd, or its name in the checked parent with
 * AT_SYMLINK_NOFOLLOW), group from a set-group-ID parent as the kernel would. Doing the call
 * under setfsuid would drop the worker's capabilities, and the caller's supplementary groups are
 * unknown here: the kernel (default_permissions) has already checked the caller's permission.
 */
import { AT, O, RESOLVE, close, cpath, openat2 } from '../sys/libc.js';
import {
  AT_REMOVEDIR,
  KEEP_ID,
  UTIME,
  fallocate,
  fchmod,
  fchmodat2,
  fchownat,
  fsync,
  ftruncate,
  linkat,
  mkdirat,
  mknodat,
  pwrite,
  removexattrat,
  renameat2,
  setxattrat,
  symlinkat,
  unlinkat,
  utimensat,
  type Timespec,
} from '../sys/write-calls.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, S_IFMT, S_IFREG, S_IFIFO, S_IFSOCK, statxOfFd } from '../sys/stat.js';
import { fsMagicOf } from '../sys/statfs.js';
import { checkGuard } from '../access/guard.js';
import type { RootRef } from '../access/root-ref.js';
import { resolveInRoot } from '../resolve/in-root.js';
import { reopenFd } from '../resolve/reopen.js';
import { isPseudoFs } from '../resolve/pseudo.js';
import type { OpenResult, Owner, SetattrFields } from './protocol.js';

/** A directory the kernel named: its in-root node path and the identity it had. */
export interface DirRef {
  root: RootRef;
  path: Buffer;
  dev: number;
  ino: bigint;
  /** st_dev of nsview's own mount (statx form), never written through itself. */
  ownDev: number;
}

const EMPTY = cpath('');
/** Opening a name in a checked directory: that entry itself, never a symlink, never elsewhere. */
const BENEATH = RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS | RESOLVE.NO_XDEV;

function viewOf(rec: Uint8Array): StatxView {
  return new StatxView(Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength));
}

/** Refuse writes into filesystems that stay read-only whatever the mount says. */
function assertWritableFs(fd: number, st: StatxView, ownDev: number): void {
  if (ownDev !== 0 && st.dev === ownDev) throw new NsviewError(E.EROFS, "nsview's own mount");
  if (isPseudoFs(fsMagicOf(fd))) throw new NsviewError(E.EROFS, 'a kernel pseudo filesystem');
}

/** The file a node path names (O_PATH, not followed), checked to still be (dev, ino). */
function openNode(ref: DirRef): { fd: number; st: StatxView } {
  checkGuard(ref.root);
  const fd = resolveInRoot(ref.root.rootFd, ref.path, { nodePath: true });
  try {
    const st = viewOf(statxOfFd(fd));
    if (st.dev !== ref.dev || st.ino !== ref.ino) throw new NsviewError(E.ESTALE, 'file was replaced');
    assertWritableFs(fd, st, ref.ownDev);
    return { fd, st };
  } catch (err) {
    close(fd);
    throw err;
  }
}

/** Open the checked regular file `ref` names with `reopen` (given its O_PATH fd). */
export function openNodeFd(ref: DirRef, reopen: (pathFd: number) => number): OpenResult {
  const { fd, st } = openNode(ref);
  try {
    if (!st.isReg) throw new NsviewError(st.isDir ? E.EISDIR : E.EACCES, 'not a regular file');
    const out = reopen(fd);
    try {
      return { fd: out, stat: statxOfFd(out) };
    } catch (err) {
      close(out);
      throw err;
    }
  } finally {
    close(fd);
  }
}

/** Run `fn` on the checked parent directory's O_PATH fd and its attributes. */
function inDir<T>(ref: DirRef, fn: (dirfd: number, dir: StatxView) => T): T {
  const { fd, st } = openNode(ref);
  try {
    if (!st.isDir) throw new NsviewError(E.ENOTDIR);
    return fn(fd, st);
  } finally {
    close(fd);
  }
}

/** The entry `name` in `dirfd` itself (O_PATH, a symlink not followed, never beyond dirfd). */
function openEntry(dirfd: number, name: Buffer): number {
  return openat2(dirfd, name, O.PATH | O.NOFOLLOW | O.CLOEXEC, BENEATH);
}

function statEntry(dirfd: number, name: Buffer): Uint8Array {
  const fd = openEntry(dirfd, name);
  try {
    return statxOfFd(fd);
  } finally {
    close(fd);
  }
}

const S_ISGID = 0o2000;

/** Give the new entry `name` (not followed) to `owner`; a set-group-ID parent keeps its group. */
function giveTo(dirfd: number, dir: StatxView, name: Buffer, owner: Owner | undefined): void {
  if (owner === undefined) return;
  const gid = dir.mode & S_ISGID ? dir.gid : owner.gid;
  fchownat(dirfd, name, owner.uid, gid, AT.SYMLINK_NOFOLLOW);
}

export function mkdirIn(ref: DirRef, name: Buffer, mode: number, owner: Owner | undefined): Uint8Array {
  return inDir(ref, (dirfd, dir) => {
    const c = cpath(name);
    mkdirat(dirfd, c, mode & 0o7777);
    giveTo(dirfd, dir, c, owner);
    return statEntry(dirfd, c);
  });
}

/**
 * Regular files, FIFOs and sockets. Device nodes are refused (EPERM): a device node made inside
 * a container would open the host's device for whoever inside may open it, and whether the
 * caller "could make it inside" depends on the container's device cgroup, which nsview does not
 * evaluate; a container makes its own device nodes.
 */
export function mknodIn(ref: DirRef, name: Buffer, mode: number, rdev: number, owner: Owner | undefined): Uint8Array {
  const type = mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK && type !== 0) {
    throw new NsviewError(E.EPERM, 'device nodes are not made through the view');
  }
  return inDir(ref, (dirfd, dir) => {
    const c = cpath(name);
    mknodat(dirfd, c, (type || S_IFREG) | (mode & 0o7777), BigInt(rdev));
    giveTo(dirfd, dir, c, owner);
    return statEntry(dirfd, c);
  });
}

export function symlinkIn(ref: DirRef, name: Buffer, target: Buffer, owner: Owner | undefined): Uint8Array {
  return inDir(ref, (dirfd, dir) => {
    const c = cpath(name);
    symlinkat(cpath(target), dirfd, c);
    giveTo(dirfd, dir, c, owner);
    return statEntry(dirfd, c);
  });
}

/** A hard link to the node `src` (same namespace: the caller checked) as `name` in `ref`. */
export function linkIn(src: DirRef, ref: DirRef, name: Buffer): Uint8Array {
  const { fd: srcFd } = openNode(src);
  try {
    return inDir(ref, (dirfd) => {
      const c = cpath(name);
      // The very inode src names (AT_EMPTY_PATH on its O_PATH fd): no path is walked again.
      linkat(srcFd, EMPTY, dirfd, c, AT.EMPTY_PATH);
      return statEntry(dirfd, c);
    });
  } finally {
    close(srcFd);
  }
}

export function unlinkIn(ref: DirRef, name: Buffer, dir: boolean): void {
  inDir(ref, (dirfd) => unlinkat(dirfd, cpath(name), dir ? AT_REMOVEDIR : 0));
}

export function renameIn(from: DirRef, oldName: Buffer, to: DirRef, newName: Buffer, flags: number): void {
  inDir(from, (fromFd) => inDir(to, (toFd) => renameat2(fromFd, cpath(oldName), toFd, cpath(newName), flags)));
}

/** open(2) flags a created or opened-for-writing file keeps (the rest are the kernel's or ours). */
const KEPT_FLAGS =
  0o3 /* O_ACCMODE */ |
  0o2000 /* O_APPEND */ |
  0o1000 /* O_TRUNC */ |
  0o40000 /* O_DIRECT */ |
  0o4010000 /* O_SYNC */ |
  0o10000 /* O_DSYNC */ |
  O.NOATIME;
const O_CREAT = 0o100;
const O_EXCL = 0o200;

/**
 * CREATE: a new regular file `name`, opened with the caller's flags. O_CREAT|O_EXCL|O_NOFOLLOW
 * in the checked directory: it is a new file, never a symlink's target or something the container
 * put there. An existing name (the kernel sends CREATE when its cached lookup said there was
 * none) is opened only without O_EXCL and only if it is a regular file.
 */
export function createIn(ref: DirRef, name: Buffer, flags: number, mode: number, owner: Owner | undefined): OpenResult {
  return inDir(ref, (dirfd, dir) => {
    const c = cpath(name);
    let fd: number;
    try {
      fd = openat2(dirfd, c, (flags & KEPT_FLAGS) | O_CREAT | O_EXCL | O.NOFOLLOW | O.CLOEXEC, BENEATH, mode & 0o7777);
    } catch (err) {
      if (!(err instanceof NsviewError && err.errno === E.EEXIST) || flags & O_EXCL) throw err;
      const pathFd = openEntry(dirfd, c);
      try {
        if (!viewOf(statxOfFd(pathFd)).isReg) throw new NsviewError(E.EEXIST, 'not a regular file');
        return { fd: reopenFd(pathFd, flags & KEPT_FLAGS), stat: statxOfFd(pathFd) };
      } finally {
        close(pathFd);
      }
    }
    try {
      if (owner !== undefined) fchownat(fd, EMPTY, owner.uid, dir.mode & S_ISGID ? dir.gid : owner.gid, AT.EMPTY_PATH);
      return { fd, stat: statxOfFd(fd) };
    } catch (err) {
      close(fd);
      throw err;
    }
  });
}

/** Open an existing regular file with the caller's access mode (O_TRUNC, O_APPEND kept). */
export function reopenForWriting(pathFd: number, flags: number): number {
  return reopenFd(pathFd, flags & KEPT_FLAGS);
}

export const FATTR = {
  MODE: 1,
  UID: 2,
  GID: 4,
  SIZE: 8,
  ATIME: 16,
  MTIME: 32,
  FH: 64,
  ATIME_NOW: 128,
  MTIME_NOW: 256,
  CTIME: 1024,
  KILL_SUIDGID: 2048,
} as const;

/**
 * Change the node's attributes on an O_PATH fd of the file itself: owner (fchownat), mode
 * (fchmodat2, AT_EMPTY_PATH: never a symlink's target), times (utimensat, ns, NOW/OMIT), size
 * (ftruncate on `openFd` when the kernel names an open file, else on a reopen of the checked
 * regular file for writing). Returns the new attributes.
 */
export function setattrNode(ref: DirRef, a: SetattrFields, openFd: number | undefined): Uint8Array {
  const { fd, st } = openNode(ref);
  try {
    if (a.valid & (FATTR.UID | FATTR.GID)) {
      fchownat(fd, EMPTY, a.valid & FATTR.UID ? a.uid : KEEP_ID, a.valid & FATTR.GID ? a.gid : KEEP_ID, AT.EMPTY_PATH);
    }
    if (a.valid & FATTR.MODE) {
      if (st.isSymlink) throw new NsviewError(E.EOPNOTSUPP, 'a symlink has no mode of its own');
      if (openFd !== undefined) fchmod(openFd, a.mode & 0o7777);
      else fchmodat2(fd, EMPTY, a.mode & 0o7777, AT.EMPTY_PATH);
    }
    if (a.valid & FATTR.SIZE) {
      if (!st.isReg) throw new NsviewError(st.isDir ? E.EISDIR : E.EINVAL);
      if (openFd !== undefined) ftruncate(openFd, a.size);
      else {
        const wfd = reopenFd(fd, 0o1 /* O_WRONLY */ | O.NONBLOCK);
        try {
          ftruncate(wfd, a.size);
        } finally {
          close(wfd);
        }
      }
    }
    if (a.valid & (FATTR.ATIME | FATTR.MTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW)) {
      const t = (set: number, now: number, v: Timespec): Timespec =>
        a.valid & now ? { sec: 0n, nsec: UTIME.NOW } : a.valid & set ? v : { sec: 0n, nsec: UTIME.OMIT };
      utimensat(
        fd,
        EMPTY,
        t(FATTR.ATIME, FATTR.ATIME_NOW, a.atime),
        t(FATTR.MTIME, FATTR.MTIME_NOW, a.mtime),
        AT.EMPTY_PATH,
      );
    }
    return statxOfFd(fd);
  } finally {
    close(fd);
  }
}

/** Write all of `data` at `offset` (short only on an error after some bytes: that count). */
export function writeAt(fd: number, data: Buffer, offset: bigint): number {
  let done = 0;
  while (done < data.length) {
    let n: number;
    try {
      n = pwrite(fd, data.subarray(done), data.length - done, offset + BigInt(done));
    } catch (err) {
      if (done > 0) break;
      throw err;
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function syncFd(fd: number, dataOnly: boolean): void {
  fsync(fd, dataOnly);
}

export function allocate(fd: number, mode: number, offset: bigint, length: bigint): void {
  fallocate(fd, mode, offset, length);
}

/** The xattr of the node itself (its parent fd + its name, AT_SYMLINK_NOFOLLOW; a root: '.'). */
function onNodeName<T>(ref: DirRef, fn: (dirfd: number, name: Buffer) => T): T {
  if (ref.path.length === 0) {
    const { fd } = openNode(ref);
    try {
      return fn(fd, cpath('.'));
    } finally {
      close(fd);
    }
  }
  const { fd } = openNode(ref); // identity and filesystem of the file itself
  try {
    const slash = ref.path.lastIndexOf(0x2f);
    const parent = slash < 0 ? Buffer.alloc(0) : ref.path.subarray(0, slash);
    const dirfd = resolveInRoot(ref.root.rootFd, parent, { nodePath: true, flags: O.PATH | O.DIRECTORY });
    try {
      const name = cpath(ref.path.subarray(slash + 1));
      const again = viewOf(statEntry(dirfd, name));
      if (again.dev !== ref.dev || again.ino !== ref.ino) throw new NsviewError(E.ESTALE, 'file was replaced');
      return fn(dirfd, name);
    } finally {
      close(dirfd);
    }
  } finally {
    close(fd);
  }
}

export function setXattr(ref: DirRef, attr: Buffer, value: Buffer, flags: number): void {
  onNodeName(ref, (dirfd, name) => setxattrat(dirfd, name, AT.SYMLINK_NOFOLLOW, cpath(attr), value, flags));
}

export function removeXattr(ref: DirRef, attr: Buffer): void {
  onNodeName(ref, (dirfd, name) => removexattrat(dirfd, name, AT.SYMLINK_NOFOLLOW, cpath(attr)));
}

/**
 * Extended attributes of a file in a namespace (the file itself: symlinks included, never
 * followed). Runs only inside an io worker thread.
 */
import { AT, O, close, cpath, fgetxattr, flistxattr, getxattrat, listxattrat } from '../sys/libc.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { checkGuard } from '../access/guard.js';
import type { RootRef } from '../access/root-ref.js';
import { resolveInRoot } from '../resolve/in-root.js';
import { reopenFd } from '../resolve/reopen.js';
import { hasXattrName } from './xattr-names.js';
import type { XattrResult } from './protocol.js';

/** XATTR_SIZE_MAX and XATTR_LIST_MAX: no value or name list is longer. */
const XATTR_MAX = 65536;
const xattrBuf = Buffer.alloc(XATTR_MAX);
const DOT = cpath('.');
/** getxattrat/listxattrat came with Linux 6.13; once ENOSYS, the fd fallback is used. */
let xattratMissing = false;

function copyOf(buf: Buffer, n: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, 0, n);
}

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
    const st = new StatxView(Buffer.from(statxOfFd(fd).buffer));
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
      const names = copyOf(xattrBuf, listxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, xattrBuf));
      if (!hasXattrName(names, name)) return { names };
      return { names, value: copyOf(xattrBuf, getxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, cname, xattrBuf)) };
    },
    (fd) => {
      const names = copyOf(xattrBuf, flistxattr(fd, xattrBuf));
      if (!hasXattrName(names, name)) return { names };
      return { names, value: copyOf(xattrBuf, fgetxattr(fd, cname, xattrBuf)) };
    },
  );
}

/** The file's xattr names, NUL-terminated. */
export function listXattr(root: RootRef, path: Buffer): Uint8Array {
  return onFile(
    root,
    path,
    (dirfd, last) => copyOf(xattrBuf, listxattrat(dirfd, last, AT.SYMLINK_NOFOLLOW, xattrBuf)),
    (fd) => copyOf(xattrBuf, flistxattr(fd, xattrBuf)),
  );
}

/** The xattr names of a namespace root we hold (no guard: the caller just opened or stat'ed it). */
export function rootXattrNames(rootFd: number): Uint8Array {
  return copyOf(xattrBuf, listxattrat(rootFd, DOT, AT.SYMLINK_NOFOLLOW, xattrBuf));
}

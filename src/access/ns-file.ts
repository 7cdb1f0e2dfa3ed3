/**
 * Opening a namespace file (an nsfs bind mount, /proc/PID/fd/N, /proc/PID/ns/mnt) for setns, in
 * a sandbox thread about to join that namespace.
 */
import { AT, O, OPEN_TREE, close, cpath, openat, openTree } from '../sys/libc.js';
import { NsviewError, E, errnoOf } from '../sys/errors.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { FS_MAGIC, fsMagicOf } from '../sys/statfs.js';
import { resolveInRoot } from '../resolve/in-root.js';
import { reopenFd } from '../resolve/reopen.js';

/**
 * Open the namespace file at `path` for setns. `rootFd` -1 means the path is a host path;
 * otherwise it is resolved inside that root. It is opened O_PATH first and must be an nsfs inode
 * with the expected number before it is reopened for reading: an fd number or pin path may have
 * been reused for a FIFO or a device meanwhile, and opening those could block or have side
 * effects.
 *
 * A pin is reached through a detached clone of its mount (open_tree OPEN_TREE_CLONE, which the
 * kernel allows across mount namespaces for nsfs files): our fds then hold the clone, never the
 * pin itself, so an administrator's `umount PIN` is not refused as busy however long the thread
 * holding them is preempted. Kernels without open_tree fall back to opening the path.
 */
export function openNsFile(rootFd: number, path: string, nsInode: number): number {
  const pathFd = openNsPath(rootFd, path);
  try {
    const st = new StatxView(Buffer.from(statxOfFd(pathFd).buffer));
    if (fsMagicOf(pathFd) !== FS_MAGIC.NSFS || st.ino !== BigInt(nsInode)) {
      throw new NsviewError(E.ESTALE, `${path} is not mount namespace ${nsInode}`);
    }
    return reopenFd(pathFd, O.RDONLY);
  } finally {
    close(pathFd);
  }
}

/** An O_PATH fd on the namespace file; `path`: bytes as a latin1 string (a NamespaceRef element). */
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
    return openTree(
      dirFd,
      cpath(Buffer.from(base, 'latin1')),
      OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | AT.SYMLINK_NOFOLLOW,
    );
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

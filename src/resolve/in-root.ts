/**
 * resolveInRoot: the only way nsview turns a path inside a namespace into a file descriptor.
 *
 * The kernel does the walk (openat2 with RESOLVE_IN_ROOT), so absolute symlinks and `..` are
 * interpreted against the namespace's root exactly as they would be for a process inside it,
 * and can never land on a host file. Magic links (/proc/self/root and friends) are refused
 * outright: they are the one kind of link RESOLVE_IN_ROOT cannot scope. Runs in io workers only.
 */
import { openat2, close, cpath, O, RESOLVE } from '../sys/libc.js';
import { NsviewError, E } from '../sys/errors.js';

/** How often a walk may be retried after EAGAIN (a concurrent rename/mount); as libpathrs. */
const EAGAIN_RETRIES = 128;

export const IN_ROOT = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;

/**
 * For the view's own node paths: every component was a directory when the kernel looked the
 * next name up in it, so a symlink anywhere before the last component means the container
 * swapped something since. Following it would be contained, but would show whatever it points
 * to (a pseudo filesystem, say) under a name that was looked up as something else: refuse.
 */
export const NODE_PATH = IN_ROOT | RESOLVE.NO_SYMLINKS;

export interface ResolveOptions {
  /** Follow a symlink in the last component (O_PATH opens of links themselves need false). */
  followLast?: boolean;
  /** Open flags besides O_CLOEXEC and O_NOFOLLOW; default O_PATH. */
  flags?: number;
  /** Fail (ENOENT) instead of following a symlink in any component (see NODE_PATH). */
  nodePath?: boolean;
}

/**
 * Open `path` (relative, '' or '.' = the root itself) inside the tree whose root is `rootfd`.
 * Returns a new O_CLOEXEC fd the caller must close.
 */
export function resolveInRoot(rootfd: number, path: Buffer, opts: ResolveOptions = {}): number {
  if (path.length > SEGMENT_MAX && opts.nodePath) return resolveLongNodePath(rootfd, path, opts);
  return resolveOnce(rootfd, path, opts);
}

/** Below PATH_MAX (4096 with its NUL), with room to spare. */
const SEGMENT_MAX = 3072;

/**
 * A node path longer than the kernel takes in one call (a container may nest directories deeper
 * than PATH_MAX; its own processes walk them with relative paths). Walked in segments cut at '/',
 * each resolved from the directory fd the previous one gave. Node paths have neither '..' nor
 * symlinks (NODE_PATH refuses them), so scoping each segment to its starting directory is the
 * same walk as one call from the root would be.
 */
function resolveLongNodePath(rootfd: number, path: Buffer, opts: ResolveOptions): number {
  let dirfd = rootfd;
  let start = 0;
  try {
    for (;;) {
      const rest = path.length - start;
      if (rest <= SEGMENT_MAX) {
        const fd = resolveOnce(dirfd, path.subarray(start), opts);
        return fd;
      }
      const cut = path.lastIndexOf(0x2f, start + SEGMENT_MAX);
      if (cut <= start) throw new NsviewError(E.ENAMETOOLONG, 'path component too long');
      const next = resolveOnce(dirfd, path.subarray(start, cut), {
        nodePath: true,
        followLast: false,
        flags: O.PATH | O.DIRECTORY,
      });
      if (dirfd !== rootfd) close(dirfd);
      dirfd = next;
      start = cut + 1;
    }
  } finally {
    if (dirfd !== rootfd) close(dirfd);
  }
}

function resolveOnce(rootfd: number, path: Buffer, opts: ResolveOptions): number {
  let flags = (opts.flags ?? O.PATH) | O.CLOEXEC;
  if (!opts.followLast) flags |= O.NOFOLLOW;
  const p = cpath(path.length === 0 ? Buffer.from('.') : path);
  const resolve = opts.nodePath ? NODE_PATH : IN_ROOT;
  for (let attempt = 0; ; attempt++) {
    try {
      return openat2(rootfd, p, flags, resolve);
    } catch (err) {
      if (err instanceof NsviewError && err.errno === E.EAGAIN && attempt < EAGAIN_RETRIES) continue;
      if (opts.nodePath && err instanceof NsviewError && err.errno === E.ELOOP) {
        throw new NsviewError(E.ENOENT, 'a directory on the path was replaced by a symlink');
      }
      throw err;
    }
  }
}

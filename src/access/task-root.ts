/**
 * Opening the root of a task's mount namespace through /proc. Runs in io workers (an `openat`
 * of /proc/PID/root and a statx of it may wait on the root's filesystem).
 */
import { AT, O, STATX, close, cpath, openat, pread, readlinkat, statx } from '../sys/libc.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, STATX_RECORD, statxOfFd } from '../sys/stat.js';
import { parseMountinfoLine } from '../sys/mountinfo.js';
import type { OpenedRoot } from './root-ref.js';
import { rootIdOf } from './root-id.js';
import { mountNamespaceId } from '../sys/namespace-id.js';

const EMPTY = cpath('');
const DOTDOT = cpath('..');
const NS_MNT = cpath('ns/mnt');
const ROOT = cpath('root');
const MOUNTINFO = cpath('mountinfo');
const linkBuf = Buffer.alloc(64);
const mountinfoBuf = Buffer.alloc(1 << 20);

function nsLinkOf(taskFd: number): string {
  const n = readlinkat(taskFd, NS_MNT, linkBuf);
  return linkBuf.toString('latin1', 0, n);
}

/**
 * Open the root of a task's mount namespace through /proc, refusing a task that is not in the
 * expected namespace or whose root is not the namespace root (a chroot): from a namespace's root,
 * `..` stays put (the root mount is its own parent); from a chroot it climbs.
 * `self`: the task is a thread of ours (a sandbox), reached through /proc/self/task/TID.
 * `noSync`: stat with AT_STATX_DONT_SYNC (a listing must not wait on a frozen root filesystem).
 * `nsId`: the kernel's id of the namespace. The task's namespace is then opened and its id
 * checked, and held until the root is checked: a held namespace cannot die, so its number cannot
 * go to another namespace while the `mnt:[N]` link texts are compared.
 */
export function openTaskRoot(
  pid: number,
  tid: number,
  nsInode: number,
  self: boolean,
  noSync = false,
  nsId?: bigint,
): OpenedRoot {
  const base = self ? `/proc/self/task/${tid}` : tid === pid ? `/proc/${pid}` : `/proc/${pid}/task/${tid}`;
  const guardFd = openat(AT.FDCWD, cpath(base), O.PATH | O.DIRECTORY | O.CLOEXEC);
  let rootFd = -1;
  let nsFd = -1;
  try {
    const nsLink = `mnt:[${nsInode}]`;
    if (nsLinkOf(guardFd) !== nsLink) throw new NsviewError(E.ESRCH, `${base} left the namespace`);
    if (nsId !== undefined) {
      // A procfs ns link is always an nsfs file: opening it for reading never blocks.
      nsFd = openat(guardFd, NS_MNT, O.RDONLY | O.CLOEXEC | O.NOCTTY | O.NONBLOCK);
      if (mountNamespaceId(nsFd) !== nsId)
        throw new NsviewError(E.ESRCH, `${base} is in another namespace with that number`);
    }
    rootFd = openat(guardFd, ROOT, O.PATH | O.DIRECTORY | O.CLOEXEC);
    const rootStat = statxOfFd(rootFd, noSync);
    const a = new StatxView(Buffer.from(rootStat.buffer));
    const upFd = openat(rootFd, DOTDOT, O.PATH | O.DIRECTORY | O.CLOEXEC);
    let b: StatxView;
    try {
      b = new StatxView(Buffer.from(statxOfFd(upFd, noSync).buffer));
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
      throw new NsviewError(E.EPERM, `${base} has a root that is not its namespace's root mount`);
    }
    // Checked again after opening the root: had the task changed namespace in between, the root
    // we hold could belong to the other one.
    if (nsLinkOf(guardFd) !== nsLink) throw new NsviewError(E.ESRCH, `${base} left the namespace`);
    return { rootFd, guardFd, nsLink, rootId: rootIdOf(a), rootStat };
  } catch (err) {
    if (rootFd >= 0) close(rootFd);
    close(guardFd);
    throw err;
  } finally {
    if (nsFd >= 0) close(nsFd);
  }
}

/** Is the mount of `rootFd` listed in the mountinfo of the task `taskFd`, mounted on "/"? */
function isNamespaceRootMount(taskFd: number, rootFd: number): boolean {
  // The mountinfo id is the old (reusable) mount id: ask statx for that one only.
  const rec = Buffer.alloc(STATX_RECORD);
  statx(rootFd, EMPTY, AT.EMPTY_PATH | AT.STATX_DONT_SYNC, STATX.MNT_ID, rec);
  const id = Number(new StatxView(rec).mntId);
  const fd = openat(taskFd, MOUNTINFO, O.RDONLY | O.CLOEXEC);
  let text = '';
  try {
    for (let n; (n = pread(fd, mountinfoBuf, mountinfoBuf.length, text.length)) > 0;) {
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

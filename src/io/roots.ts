/**
 * Root attributes of many namespaces in one worker trip, for a listing of the top directory.
 * Runs only inside an io worker thread.
 */
import { errnoOf } from '../sys/errors.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { refOf } from '../access/root-ref.js';
import { openTaskRoot } from '../access/task-root.js';
import { knownFsType } from '../resolve/mount-fs-type.js';
import { isLocalFs } from './fs-kinds.js';
import { rootXattrNames } from './xattrs.js';
import type { StatRootItem, StatRootResult } from '../access/root-workers.js';

/**
 * The root stat of each namespace, opening the roots of those not held yet. Stats are
 * AT_STATX_DONT_SYNC, so a namespace whose root is on a frozen FUSE or NFS server cannot stall
 * the listing (its cached attributes are shown).
 */
export function statRoots(items: StatRootItem[]): StatRootResult[] {
  return items.map((it): StatRootResult => {
    try {
      let r: StatRootResult & { stat: Uint8Array };
      let rootFd: number;
      if ('rootFd' in it) {
        rootFd = it.rootFd;
        r = { nsInode: it.nsInode, stat: statxOfFd(rootFd, true) };
      } else {
        const o = openTaskRoot(it.pid, it.tid, it.nsInode, false, true, it.nsId);
        rootFd = o.rootFd;
        r = { nsInode: it.nsInode, stat: o.rootStat, opened: refOf(o) };
      }
      // xattr names too, where that cannot wait on a server (a mount seen before, known local).
      const magic = knownFsType(new StatxView(Buffer.from(r.stat.buffer)));
      if (magic !== undefined && isLocalFs(magic)) {
        try {
          r.xattrNames = rootXattrNames(rootFd);
        } catch {
          // names unknown: asked for later
        }
      }
      return r;
    } catch (err) {
      return { nsInode: it.nsInode, errno: errnoOf(err) };
    }
  });
}

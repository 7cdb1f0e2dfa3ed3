/**
 * FastStat: answer a stat on the main thread, without a worker trip, when that provably cannot
 * block.
 *
 * - openat2(..., RESOLVE_CACHED) walks the dentry cache only, in RCU mode: it never sleeps, never
 *   does I/O and never calls a filesystem's lookup or revalidation; anything else is EAGAIN.
 * - statx(AT_STATX_DONT_SYNC) never asks a FUSE or network server; on local filesystems it is
 *   exact. The answer is used only when its mount is known (from a worker that already ran
 *   fstatfs there) to be a local filesystem; the mount id is the never-reused 64-bit one.
 * - The guard (has the access task left the namespace?) reads a procfs link, which never blocks.
 *
 * Anything else returns undefined and the caller takes the worker path, which has deadlines.
 * This serves the kernel's revalidations and attribute refreshes of hot trees, the bulk of the
 * requests in a metadata walk once a directory was listed.
 */
import { AT, O, RESOLVE, close, cpath, openat2, readlinkat, statx } from '../sys/libc.js';
import { StatxView, STATX_MASK, STATX_RECORD } from '../sys/stat.js';
import type { RootRef, StatResult } from './protocol.js';
import { pathBytes } from '../resolve/names.js';
import { NODE_PATH } from '../resolve/in-root.js';
import { isLocalFs } from './fs-kinds.js';
import { currentRootId } from './root-id.js';
import type { InRootPath } from '../resolve/names.js';

const FLAGS = O.PATH | O.NOFOLLOW | O.CLOEXEC;
const RESOLVE_FAST = NODE_PATH | RESOLVE.CACHED;
const STAT_FLAGS = AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW | AT.STATX_DONT_SYNC;
const GUARD_VALID_MS = 100;
const EMPTY = cpath('');
const NS_MNT = cpath('ns/mnt');
const DOT = Buffer.from('.');

export class FastStat {
  /** Unique mount id -> filesystem magic, for mounts known to be local. */
  private readonly localMounts = new Map<bigint, number>();
  private readonly guardChecked = new Map<number, number>();
  private readonly linkBuf = Buffer.alloc(64);
  hits = 0;
  misses = 0;

  /** A worker stat'ed something on mount `mntId` and found filesystem `fsType`. */
  learn(st: StatxView, fsType: number): void {
    if (st.hasUniqueMntId && isLocalFs(fsType)) this.localMounts.set(st.mntId, fsType);
  }

  private guardOk(root: RootRef): boolean {
    if (root.guardFd < 0) return true;
    const now = performance.now();
    const last = this.guardChecked.get(root.guardFd);
    if (last !== undefined && now - last < GUARD_VALID_MS) return true;
    try {
      const n = readlinkat(root.guardFd, NS_MNT, this.linkBuf);
      if (this.linkBuf.toString('latin1', 0, n) !== root.nsLink) return false;
    } catch {
      return false;
    }
    if (currentRootId(root.guardFd) !== root.rootId) return false;
    if (this.guardChecked.size > 4096) this.guardChecked.clear();
    this.guardChecked.set(root.guardFd, now);
    return true;
  }

  /**
   * An O_PATH fd on `path` in `root` with its stat, if both can be had without blocking (an
   * O_PATH open calls no filesystem code beyond the cached walk), else undefined. The caller
   * owns the fd.
   */
  tryOpenPath(root: RootRef, path: InRootPath): { fd: number; st: StatxView } | undefined {
    const r = this.openCached(root, path, false);
    return r && { fd: r.fd, st: new StatxView(Buffer.from(r.stat.buffer)) };
  }

  /** statx of an fd tryOpenPath gave (its mount is known local): never blocks. */
  statHeld(fd: number): StatxView | undefined {
    const buf = Buffer.alloc(STATX_RECORD);
    try {
      statx(fd, EMPTY, STAT_FLAGS, STATX_MASK, buf);
    } catch {
      return undefined;
    }
    return new StatxView(buf);
  }

  /**
   * The stat of `path` in `root` if it can be had without blocking, else undefined. Symlinks are
   * left to the workers when `linksRewritten` (their st_size must be the rewritten length).
   */
  tryStat(root: RootRef, path: InRootPath, linksRewritten: boolean): StatResult | undefined {
    const r = this.openCached(root, path, linksRewritten);
    if (!r) return undefined;
    close(r.fd); // O_PATH: its close calls no filesystem release
    return { stat: r.stat, fsType: r.fsType };
  }

  /** The non-blocking walk and stat; the fd is the caller's on success, closed otherwise. */
  private openCached(root: RootRef, path: InRootPath, linksRewritten: boolean): (StatResult & { fd: number }) | undefined {
    if (!this.guardOk(root) || path.length > 3072) return undefined;
    let fd: number;
    try {
      fd = openat2(root.rootFd, cpath(path.length === 0 ? DOT : pathBytes(path)), FLAGS, RESOLVE_FAST);
    } catch {
      this.misses++;
      return undefined;
    }
    const out = new Uint8Array(STATX_RECORD);
    const buf = Buffer.from(out.buffer);
    try {
      statx(fd, EMPTY, STAT_FLAGS, STATX_MASK, buf);
    } catch {
      close(fd);
      this.misses++;
      return undefined;
    }
    const st = new StatxView(buf);
    const fsType = st.hasUniqueMntId ? this.localMounts.get(st.mntId) : undefined;
    if (fsType === undefined || (linksRewritten && st.isSymlink)) {
      close(fd);
      this.misses++;
      return undefined;
    }
    this.hits++;
    return { stat: out, fsType, fd };
  }
}


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
import { O, RESOLVE, close, cpath, openat2 } from '../sys/libc.js';
import { StatxView, statxOfFd } from '../sys/stat.js';
import { guardHolds } from '../access/guard.js';
import type { RootRef } from '../access/root-ref.js';
import { pathBytes, type InRootPath } from '../resolve/names.js';
import { NODE_PATH } from '../resolve/in-root.js';
import type { StatResult } from '../resolve/lookup.js';
import { isLocalFs } from './fs-kinds.js';

const FLAGS = O.PATH | O.NOFOLLOW | O.CLOEXEC;
const RESOLVE_FAST = NODE_PATH | RESOLVE.CACHED;
const DOT = Buffer.from('.');

export class FastStat {
  /** Unique mount id -> filesystem magic, for mounts known to be local. */
  private readonly localMounts = new Map<bigint, number>();
  hits = 0;
  misses = 0;

  /** A worker stat'ed something on mount `mntId` and found filesystem `fsType`. */
  learn(st: StatxView, fsType: number): void {
    if (st.hasUniqueMntId && isLocalFs(fsType)) this.localMounts.set(st.mntId, fsType);
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
    try {
      return new StatxView(Buffer.from(statxOfFd(fd, true).buffer));
    } catch {
      return undefined;
    }
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
  private openCached(
    root: RootRef,
    path: InRootPath,
    linksRewritten: boolean,
  ): (StatResult & { fd: number }) | undefined {
    if (!guardHolds(root) || path.length > 3072) return undefined;
    let fd: number;
    try {
      fd = openat2(root.rootFd, cpath(path.length === 0 ? DOT : pathBytes(path)), FLAGS, RESOLVE_FAST);
    } catch {
      this.misses++;
      return undefined;
    }
    let out: Uint8Array;
    try {
      out = statxOfFd(fd, true);
    } catch {
      close(fd);
      this.misses++;
      return undefined;
    }
    const st = new StatxView(Buffer.from(out.buffer));
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

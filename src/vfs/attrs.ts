import type { Attr } from '../fuse/types.js';
import { StatxView, S_IFDIR, S_IFLNK } from '../sys/stat.js';
import { encodeDev } from '../sys/dev.js';
import type { InodeNumbers } from './inode-numbers.js';

/** A real file's attributes exactly as the namespace sees them, with the view's inode number. */
export function attrFromStatx(st: StatxView, numbers: InodeNumbers): Attr {
  return {
    ino: numbers.of(st.dev, st.ino),
    size: st.size,
    blocks: st.blocks,
    atimeSec: st.timeSec('atime'),
    atimeNsec: st.timeNsec('atime'),
    mtimeSec: st.timeSec('mtime'),
    mtimeNsec: st.timeNsec('mtime'),
    ctimeSec: st.timeSec('ctime'),
    ctimeNsec: st.timeNsec('ctime'),
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    rdev: encodeDev(st.rdevMajor, st.rdevMinor),
    blksize: st.blksize || 4096,
  };
}

const started = BigInt(Math.floor(Date.now() / 1000));

/** A time for a virtual directory whose content changed: it must differ from every earlier one. */
export interface VirtualTime {
  sec: bigint;
  nsec: number;
}

export function nextVirtualTime(prev: VirtualTime | undefined): VirtualTime {
  const now = Date.now();
  const t = { sec: BigInt(Math.floor(now / 1000)), nsec: (now % 1000) * 1e6 };
  if (prev && (t.sec < prev.sec || (t.sec === prev.sec && t.nsec <= prev.nsec))) {
    return prev.nsec < 999_999_999 ? { sec: prev.sec, nsec: prev.nsec + 1 } : { sec: prev.sec + 1n, nsec: 0 };
  }
  return t;
}

/**
 * Attributes of the view's own directories and links (root-owned, read-only). `mtime` moves
 * when a directory's content changes: the kernel caches directory listings (no-opendir implies
 * FOPEN_CACHE_DIR) and rereads one only when it sees a new mtime.
 */
export function virtualAttr(ino: bigint, kind: 'dir' | 'link', size = 0, mtime?: VirtualTime): Attr {
  return {
    ino,
    size: BigInt(size),
    blocks: 0n,
    atimeSec: started,
    atimeNsec: 0,
    mtimeSec: mtime?.sec ?? started,
    mtimeNsec: mtime?.nsec ?? 0,
    ctimeSec: mtime?.sec ?? started,
    ctimeNsec: mtime?.nsec ?? 0,
    mode: kind === 'dir' ? S_IFDIR | 0o555 : S_IFLNK | 0o777,
    nlink: kind === 'dir' ? 2 : 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
  };
}

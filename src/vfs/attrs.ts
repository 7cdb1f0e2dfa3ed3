import type { Attr } from '../fuse/types.js';
import { StatxView, S_IFDIR, S_IFLNK, encodeDev } from '../sys/stat.js';
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

/** Attributes of the view's own directories and links (root-owned, read-only, fixed times). */
export function virtualAttr(ino: bigint, kind: 'dir' | 'link', size = 0): Attr {
  return {
    ino,
    size: BigInt(size),
    blocks: 0n,
    atimeSec: started,
    atimeNsec: 0,
    mtimeSec: started,
    mtimeNsec: 0,
    ctimeSec: started,
    ctimeNsec: 0,
    mode: kind === 'dir' ? S_IFDIR | 0o555 : S_IFLNK | 0o777,
    nlink: kind === 'dir' ? 2 : 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
  };
}

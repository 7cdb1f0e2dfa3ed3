/**
 * struct statx as raw bytes, decoded lazily. Workers send the 256-byte records as they came from
 * the kernel (one transferable buffer per batch) and the main thread reads only the fields it needs.
 */
import { AT, STATX, cpath, statx } from './libc.js';
import { kernelDev } from './dev.js';

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** sizeof(struct statx). */
export const STATX_RECORD = 256;

/** What nsview asks statx for: the basic fields and the mount id (the never-reused one where the kernel has it). */
export const STATX_MASK = STATX.BASIC_STATS | STATX.MNT_ID | STATX.MNT_ID_UNIQUE;

const EMPTY = cpath('');
const ATTR_MOUNT_ROOT = BigInt(STATX.ATTR_MOUNT_ROOT);

/**
 * statx of the file `fd` holds itself (an O_PATH fd on a symlink: the link), into a new record.
 * `noSync`: AT_STATX_DONT_SYNC, cached attributes, so a FUSE or network server is never asked.
 */
export function statxOfFd(fd: number, noSync = false): Uint8Array {
  const out = new Uint8Array(STATX_RECORD);
  const flags = AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW | (noSync ? AT.STATX_DONT_SYNC : 0);
  statx(fd, EMPTY, flags, STATX_MASK, Buffer.from(out.buffer));
  return out;
}

// Offsets in struct statx (include/uapi/linux/stat.h).
const OFF = {
  blksize: 4,
  attributes: 8,
  nlink: 16,
  uid: 20,
  gid: 24,
  mode: 28,
  ino: 32,
  size: 40,
  blocks: 48,
  atime: 64,
  ctime: 96,
  mtime: 112,
  rdevMajor: 128,
  rdevMinor: 132,
  devMajor: 136,
  devMinor: 140,
  mntId: 144,
} as const;

/** A view on one statx record inside a buffer. */
export class StatxView {
  constructor(
    readonly buf: Buffer,
    readonly off = 0,
  ) {}
  /** Which fields the kernel filled (STATX_* bits). */
  get mask(): number {
    return this.buf.readUInt32LE(this.off);
  }
  /** stx_mnt_id is the never-reused 64-bit mount id (STATX_MNT_ID_UNIQUE). */
  get hasUniqueMntId(): boolean {
    return (this.mask & STATX.MNT_ID_UNIQUE) !== 0;
  }
  get mode(): number {
    return this.buf.readUInt16LE(this.off + OFF.mode);
  }
  get type(): number {
    return this.mode & S_IFMT;
  }
  get isDir(): boolean {
    return this.type === S_IFDIR;
  }
  get isReg(): boolean {
    return this.type === S_IFREG;
  }
  get isSymlink(): boolean {
    return this.type === S_IFLNK;
  }
  get nlink(): number {
    return this.buf.readUInt32LE(this.off + OFF.nlink);
  }
  get uid(): number {
    return this.buf.readUInt32LE(this.off + OFF.uid);
  }
  get gid(): number {
    return this.buf.readUInt32LE(this.off + OFF.gid);
  }
  get ino(): bigint {
    return this.buf.readBigUInt64LE(this.off + OFF.ino);
  }
  get size(): bigint {
    return this.buf.readBigUInt64LE(this.off + OFF.size);
  }
  get blocks(): bigint {
    return this.buf.readBigUInt64LE(this.off + OFF.blocks);
  }
  get blksize(): number {
    return this.buf.readUInt32LE(this.off + OFF.blksize);
  }
  get devMajor(): number {
    return this.buf.readUInt32LE(this.off + OFF.devMajor);
  }
  get devMinor(): number {
    return this.buf.readUInt32LE(this.off + OFF.devMinor);
  }
  /** Device as one number (see kernelDev). */
  get dev(): number {
    return kernelDev(this.devMajor, this.devMinor);
  }
  get rdevMajor(): number {
    return this.buf.readUInt32LE(this.off + OFF.rdevMajor);
  }
  get rdevMinor(): number {
    return this.buf.readUInt32LE(this.off + OFF.rdevMinor);
  }
  get mntId(): bigint {
    return this.buf.readBigUInt64LE(this.off + OFF.mntId);
  }
  get isMountRoot(): boolean {
    return (this.buf.readBigUInt64LE(this.off + OFF.attributes) & ATTR_MOUNT_ROOT) !== 0n;
  }
  timeSec(which: 'atime' | 'mtime' | 'ctime'): bigint {
    return this.buf.readBigInt64LE(this.off + OFF[which]);
  }
  timeNsec(which: 'atime' | 'mtime' | 'ctime'): number {
    return this.buf.readUInt32LE(this.off + OFF[which] + 8);
  }
}

/** Overwrite stx_size of the record at `rec` (a symlink shown with a rewritten target). */
export function setStatxSize(rec: Buffer, size: bigint): void {
  rec.writeBigUInt64LE(size, OFF.size);
}

/** d_type for an S_IFMT type. */
export function dtypeOf(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

/**
 * struct statfs (64-bit layout, include/uapi/asm-generic/statfs.h) as fstatfs(2) fills it, and
 * the filesystem magic numbers nsview tests for by name.
 */
import { fstatfs } from './libc.js';

/** sizeof(struct statfs) on 64-bit Linux. */
const STATFS_SIZE = 120;

/** The f_type values nsview tells apart (include/uapi/linux/magic.h, and zfs's own). */
export const FS_MAGIC = {
  EXT4: 0xef53, // ext2/3/4
  XFS: 0x58465342,
  BTRFS: 0x9123683e,
  TMPFS: 0x01021994, // and devtmpfs
  RAMFS: 0x858458f6,
  OVERLAYFS: 0x794c7630,
  SQUASHFS: 0x73717368,
  EROFS: 0xe0f5e1e2,
  F2FS: 0xf2f52010,
  ZFS: 0x2fc12fc1,
  VFAT: 0x4d44,
  ISO9660: 0x9660,
  PROC: 0x9fa0,
  SYSFS: 0x62656572,
  CGROUP: 0x27e0eb,
  CGROUP2: 0x63677270,
  DEVPTS: 0x1cd1,
  DEBUGFS: 0x64626720,
  TRACEFS: 0x74726163,
  SECURITYFS: 0x73636673,
  BPF: 0xcafe4a11,
  CONFIGFS: 0x62656570,
  PSTORE: 0x6165676c,
  EFIVARFS: 0xde5e81e4,
  FUSECTL: 0x65735543,
  BINFMT_MISC: 0x42494e4d,
  SELINUXFS: 0xf97cff8c,
  SMACKFS: 0x43415d53,
  RPC_PIPEFS: 0x67596969,
  MQUEUE: 0x19800202,
  /** The filesystem of namespace files (/proc/PID/ns/*, their bind mounts). */
  NSFS: 0x6e736673,
} as const;

/** The fields of struct statfs a FUSE STATFS reply carries. */
export interface Statfs {
  /** f_type: the filesystem's magic number. */
  type: number;
  bsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  namelen: number;
  frsize: number;
}

// Offsets: type, bsize, blocks, bfree, bavail, files, ffree, fsid (2 x s32), namelen, frsize.
const OFF = {
  type: 0,
  bsize: 8,
  blocks: 16,
  bfree: 24,
  bavail: 32,
  files: 40,
  ffree: 48,
  namelen: 64,
  frsize: 72,
} as const;

export function decodeStatfs(raw: Uint8Array): Statfs {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return {
    type: Number(b.readBigInt64LE(OFF.type)),
    bsize: Number(b.readBigInt64LE(OFF.bsize)),
    blocks: b.readBigUInt64LE(OFF.blocks),
    bfree: b.readBigUInt64LE(OFF.bfree),
    bavail: b.readBigUInt64LE(OFF.bavail),
    files: b.readBigUInt64LE(OFF.files),
    ffree: b.readBigUInt64LE(OFF.ffree),
    namelen: Number(b.readBigInt64LE(OFF.namelen)),
    frsize: Number(b.readBigInt64LE(OFF.frsize)),
  };
}

/** fstatfs(2) of `fd`, raw. */
export function statfsOf(fd: number): Uint8Array {
  const out = new Uint8Array(STATFS_SIZE);
  fstatfs(fd, Buffer.from(out.buffer));
  return out;
}

/** f_type of the filesystem `fd` is on (one fstatfs: on a FUSE mount, a request to its server). */
export function fsMagicOf(fd: number): number {
  return Number(Buffer.from(statfsOf(fd).buffer).readBigInt64LE(OFF.type));
}

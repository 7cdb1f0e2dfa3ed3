/**
 * struct statfs (64-bit layout, include/uapi/asm-generic/statfs.h) as fstatfs(2) fills it, and
 * the filesystem magic numbers nsview tests for by name.
 */
import { fstatfs } from './libc.js';

/** sizeof(struct statfs) on 64-bit Linux. */
export const STATFS_SIZE = 120;

/** f_type of nsfs, the filesystem of namespace files (/proc/PID/ns/*, their bind mounts). */
export const NSFS_MAGIC = 0x6e736673;

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
const OFF = { type: 0, bsize: 8, blocks: 16, bfree: 24, bavail: 32, files: 40, ffree: 48, namelen: 64, frsize: 72 } as const;

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

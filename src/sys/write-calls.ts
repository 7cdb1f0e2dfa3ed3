/**
 * The modifying syscalls of read-write mode, through koffi. Every one acts on a directory fd plus
 * one name the caller checked, or on an fd itself (AT_EMPTY_PATH): none is ever given a path that
 * the kernel could walk through a container's symlink. Each throws NsviewError(errno).
 *
 * Like every filesystem call here they may block forever on a hung mount inside a namespace, so
 * only io workers call them.
 */
import koffi from 'koffi';
import { NsviewError } from './errors.js';

const lib = koffi.load('libc.so.6');

// Syscalls newer than the glibc here (asm-generic numbers, the same on x86_64 and aarch64).
const SYS_fchmodat2 = 452;
const SYS_setxattrat = 463;
const SYS_removexattrat = 466;

const c_mkdirat = lib.func('int mkdirat(int, void *, uint)');
const c_mknodat = lib.func('int mknodat(int, void *, uint, uint64_t)');
const c_symlinkat = lib.func('int symlinkat(void *, int, void *)');
const c_linkat = lib.func('int linkat(int, void *, int, void *, int)');
const c_unlinkat = lib.func('int unlinkat(int, void *, int)');
const c_renameat2 = lib.func('int renameat2(int, void *, int, void *, uint)');
const c_fchownat = lib.func('int fchownat(int, void *, uint, uint, int)');
const c_fchmod = lib.func('int fchmod(int, uint)');
const c_utimensat = lib.func('int utimensat(int, void *, void *, int)');
const c_ftruncate = lib.func('int ftruncate(int, int64_t)');
const c_fallocate = lib.func('int fallocate(int, int, int64_t, int64_t)');
const c_pwrite = lib.func('long pwrite(int, void *, size_t, int64_t)');
const c_fsync = lib.func('int fsync(int)');
const c_fdatasync = lib.func('int fdatasync(int)');
const c_umask = lib.func('uint umask(uint)');
const sys_fchmodat2 = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint', 'uint']);
const sys_setxattrat = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint', 'void *', 'void *', 'size_t']);
const sys_removexattrat = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint', 'void *']);

function check(ret: number | bigint, what: string): number {
  const n = Number(ret);
  if (n < 0) throw new NsviewError(koffi.errno(), what);
  return n;
}

/** renameat2 flags. */
export const RENAME = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;
/** unlinkat flag. */
export const AT_REMOVEDIR = 0x200;
/** utimensat's special tv_nsec values. */
export const UTIME = { NOW: 0x3fffffff, OMIT: 0x3ffffffe } as const;
/** chown's "leave unchanged". */
export const KEEP_ID = 0xffffffff;

export function mkdirat(dirfd: number, name: Buffer, mode: number): void {
  check(c_mkdirat(dirfd, name, mode), 'mkdirat');
}

export function mknodat(dirfd: number, name: Buffer, mode: number, dev: bigint): void {
  check(c_mknodat(dirfd, name, mode, dev), 'mknodat');
}

export function symlinkat(target: Buffer, dirfd: number, name: Buffer): void {
  check(c_symlinkat(target, dirfd, name), 'symlinkat');
}

/** linkat(2); with AT_EMPTY_PATH and an empty old name, links the file `olddirfd` holds. */
export function linkat(olddirfd: number, oldname: Buffer, newdirfd: number, newname: Buffer, flags: number): void {
  check(c_linkat(olddirfd, oldname, newdirfd, newname, flags), 'linkat');
}

export function unlinkat(dirfd: number, name: Buffer, flags: number): void {
  check(c_unlinkat(dirfd, name, flags), 'unlinkat');
}

export function renameat2(olddirfd: number, oldname: Buffer, newdirfd: number, newname: Buffer, flags: number): void {
  check(c_renameat2(olddirfd, oldname, newdirfd, newname, flags), 'renameat2');
}

/** fchownat(2); KEEP_ID leaves an id as it is. Always pass AT_SYMLINK_NOFOLLOW or AT_EMPTY_PATH. */
export function fchownat(dirfd: number, name: Buffer, uid: number, gid: number, flags: number): void {
  check(c_fchownat(dirfd, name, uid >>> 0, gid >>> 0, flags), 'fchownat');
}

/** fchmodat2(2) (Linux 6.6+): with AT_EMPTY_PATH, the file an O_PATH fd holds, never followed. */
export function fchmodat2(dirfd: number, name: Buffer, mode: number, flags: number): void {
  check(sys_fchmodat2(SYS_fchmodat2, dirfd, name, mode, flags), 'fchmodat2');
}

export function fchmod(fd: number, mode: number): void {
  check(c_fchmod(fd, mode), 'fchmod');
}

/** A time for utimensat: seconds and nanoseconds, or UTIME.NOW / UTIME.OMIT in `nsec`. */
export interface Timespec {
  sec: bigint;
  nsec: number;
}

const timesBuf = Buffer.alloc(32);
export function utimensat(dirfd: number, name: Buffer, atime: Timespec, mtime: Timespec, flags: number): void {
  timesBuf.writeBigInt64LE(atime.sec, 0);
  timesBuf.writeBigInt64LE(BigInt(atime.nsec), 8);
  timesBuf.writeBigInt64LE(mtime.sec, 16);
  timesBuf.writeBigInt64LE(BigInt(mtime.nsec), 24);
  check(c_utimensat(dirfd, name, timesBuf, flags), 'utimensat');
}

export function ftruncate(fd: number, size: bigint): void {
  check(c_ftruncate(fd, size), 'ftruncate');
}

export function fallocate(fd: number, mode: number, offset: bigint, length: bigint): void {
  check(c_fallocate(fd, mode, offset, length), 'fallocate');
}

export function pwrite(fd: number, buf: Buffer, length: number, offset: bigint): number {
  return check(c_pwrite(fd, buf, length, offset), 'pwrite');
}

export function fsync(fd: number, dataOnly: boolean): void {
  check(dataOnly ? c_fdatasync(fd) : c_fsync(fd), 'fsync');
}

/** umask(2): of the calling thread's fs_struct (per thread after unshare(CLONE_FS)). */
export function umask(mask: number): number {
  return c_umask(mask);
}

const XATTR_ARGS_SIZE = 16;
/** setxattrat(2) (Linux 6.13+): the xattr of `name` in `dirfd`, not followed with AT_SYMLINK_NOFOLLOW. */
export function setxattrat(
  dirfd: number,
  name: Buffer,
  atFlags: number,
  attr: Buffer,
  value: Buffer,
  flags: number,
): void {
  // struct xattr_args { __aligned_u64 value; __u32 size; __u32 flags; }
  const args = Buffer.alloc(XATTR_ARGS_SIZE);
  args.writeBigUInt64LE(value.length === 0 ? 0n : BigInt(koffi.address(value) as bigint | number), 0);
  args.writeUInt32LE(value.length, 8);
  args.writeUInt32LE(flags, 12);
  check(sys_setxattrat(SYS_setxattrat, dirfd, name, atFlags, attr, args, XATTR_ARGS_SIZE), 'setxattrat');
}

export function removexattrat(dirfd: number, name: Buffer, atFlags: number, attr: Buffer): void {
  check(sys_removexattrat(SYS_removexattrat, dirfd, name, atFlags, attr), 'removexattrat');
}

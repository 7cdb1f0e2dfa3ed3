/**
 * The syscalls Node does not offer, through koffi. Every wrapper throws NsviewError(errno) on
 * failure, takes paths as Buffers (byte-exact: container names need not be UTF-8) and never
 * follows anything the caller did not ask for.
 *
 * These calls block the calling thread. Inside a namespace's filesystem they may block forever
 * (a hung FUSE or NFS mount), so only the io workers (src/io/) call the filesystem ones; the main
 * thread uses only the non-filesystem ones (mount, umount2 of our own mountpoint, unshare, setns).
 */
import koffi from 'koffi';
import { E, NsviewError } from './errors.js';

const lib = koffi.load('libc.so.6');

// New syscalls share one number on every architecture since 5.x (asm-generic unification).
const SYS_open_tree = 428;
const SYS_openat2 = 437;
const SYS_getxattrat = 464;
const SYS_listxattrat = 465;

// glibc's syscall() is variadic; for integer/pointer arguments the x86_64 and aarch64 calling
// conventions pass them exactly as for a fixed prototype, and fixed prototypes are much faster in
// koffi than per-call variadic type lists.
const sys_openat2 = lib.func('syscall', 'long', ['long', 'int', 'void *', 'void *', 'size_t']);
const sys_getxattrat = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint', 'void *', 'void *', 'size_t']);
const sys_listxattrat = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint', 'void *', 'size_t']);
const sys_open_tree = lib.func('syscall', 'long', ['long', 'int', 'void *', 'uint']);

const c_close = lib.func('int close(int)');
const c_fcntl_int = lib.func('int fcntl(int, int, int)');
const c_statx = lib.func('int statx(int, void *, int, unsigned int, void *)');
const c_getdents64 = lib.func('long getdents64(int, void *, size_t)');
const c_readlinkat = lib.func('long readlinkat(int, void *, void *, size_t)');
const c_pread = lib.func('long pread(int, void *, size_t, int64_t)');
const c_fstatfs = lib.func('int fstatfs(int, void *)');
const c_openat = lib.func('int openat(int, void *, int, uint)');
const c_fgetxattr = lib.func('long fgetxattr(int, void *, void *, size_t)');
const c_flistxattr = lib.func('long flistxattr(int, void *, size_t)');
const c_mount = lib.func('int mount(const char *, const char *, const char *, unsigned long, const char *)');
const c_umount2 = lib.func('int umount2(const char *, int)');
const c_unshare = lib.func('int unshare(int)');
const c_setns = lib.func('int setns(int, int)');
const c_gettid = lib.func('int gettid()');
const c_ioctl_int = lib.func('int ioctl(int, unsigned long, int)');
const c_ioctl_ptr = lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']);
const c_lseek = lib.func('int64_t lseek(int, int64_t, int)');
const c_prctl_str = lib.func('int prctl(int, const char *, unsigned long, unsigned long, unsigned long)');
const c_sched_yield = lib.func('int sched_yield()');

function check(ret: number | bigint, what: string): number {
  const n = Number(ret);
  if (n < 0) throw new NsviewError(koffi.errno(), what);
  return n;
}

/** A NUL-terminated copy of a path for the kernel. */
export function cpath(path: Buffer | string): Buffer {
  const b = typeof path === 'string' ? Buffer.from(path) : path;
  const out = Buffer.allocUnsafe(b.length + 1);
  b.copy(out);
  out[b.length] = 0;
  return out;
}

export const O = {
  RDONLY: 0o0,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
  NOCTTY: 0o400,
} as const;

export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

export const AT = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  NO_AUTOMOUNT: 0x800,
  EMPTY_PATH: 0x1000,
  STATX_DONT_SYNC: 0x4000,
} as const;

const howBuf = Buffer.alloc(24);

/** openat2(2). Returns the new fd (always add O_CLOEXEC to flags yourself). */
export function openat2(dirfd: number, path: Buffer, flags: number, resolve: number, mode = 0): number {
  howBuf.writeBigUInt64LE(BigInt(flags), 0);
  howBuf.writeBigUInt64LE(BigInt(mode), 8);
  howBuf.writeBigUInt64LE(BigInt(resolve), 16);
  return check(sys_openat2(SYS_openat2, dirfd, path, howBuf, 24), 'openat2');
}

/** Plain openat(2) for host paths the daemon controls (procfs); never for container paths. */
export function openat(dirfd: number, path: Buffer, flags: number): number {
  return check(c_openat(dirfd, path, flags, 0), 'openat');
}

/** fcntl(F_DUPFD_CLOEXEC): the same open file under a new fd number (Node has no dup). */
export function dupCloexec(fd: number): number {
  return check(c_fcntl_int(fd, 1030, 0), 'fcntl(F_DUPFD_CLOEXEC)');
}

export function close(fd: number): void {
  c_close(fd);
}

export const STATX = {
  BASIC_STATS: 0x7ff,
  MNT_ID: 0x1000,
  /** 64-bit mount id never reused (6.8+); asked together with MNT_ID, the kernel gives this one. */
  MNT_ID_UNIQUE: 0x4000,
  ATTR_MOUNT_ROOT: 0x2000,
} as const;

/** statx(2) into `out` (a 256-byte struct statx); decode with src/sys/stat.ts. */
export function statx(dirfd: number, path: Buffer, flags: number, mask: number, out: Buffer): void {
  check(c_statx(dirfd, path, flags, mask, out), 'statx');
}

/** getdents64(2) into `buf`; returns bytes filled, 0 at the end. */
export function getdents64(fd: number, buf: Buffer): number {
  return check(c_getdents64(fd, buf, buf.length), 'getdents64');
}

/** readlinkat(2); `path` empty (cpath('')) reads the link an O_PATH fd points at. */
export function readlinkat(dirfd: number, path: Buffer, buf: Buffer): number {
  return check(c_readlinkat(dirfd, path, buf, buf.length), 'readlinkat');
}

export function pread(fd: number, buf: Buffer, length: number, offset: bigint | number): number {
  return check(c_pread(fd, buf, length, offset), 'pread');
}

/** fstatfs(2) into `out` (a struct statfs); decode with src/sys/statfs.ts. */
export function fstatfs(fd: number, out: Buffer): void {
  check(c_fstatfs(fd, out), 'fstatfs');
}

/** getxattrat(2) (Linux 6.13+): works on O_PATH fds and symlinks with AT_EMPTY_PATH. */
export function getxattrat(dirfd: number, path: Buffer, flags: number, name: Buffer, value: Buffer): number {
  const args = xattrArgs(value);
  return check(sys_getxattrat(SYS_getxattrat, dirfd, path, flags, name, args, XATTR_ARGS_SIZE), 'getxattrat');
}

/** listxattrat(2) (Linux 6.13+). */
export function listxattrat(dirfd: number, path: Buffer, flags: number, list: Buffer): number {
  return check(
    sys_listxattrat(SYS_listxattrat, dirfd, path, flags, list.length === 0 ? null : list, list.length),
    'listxattrat',
  );
}

const XATTR_ARGS_SIZE = 16;
// struct xattr_args { __aligned_u64 value; __u32 size; __u32 flags; } needs the value's address.
const xattrArgsBuf = Buffer.alloc(16);
function xattrArgs(value: Buffer): Buffer {
  const addr = value.length === 0 ? 0n : BigInt(koffi.address(value) as bigint | number);
  xattrArgsBuf.writeBigUInt64LE(addr, 0);
  xattrArgsBuf.writeUInt32LE(value.length, 8);
  xattrArgsBuf.writeUInt32LE(0, 12);
  return xattrArgsBuf;
}

export function fgetxattr(fd: number, name: Buffer, value: Buffer): number {
  return check(c_fgetxattr(fd, name, value.length === 0 ? null : value, value.length), 'fgetxattr');
}

export function flistxattr(fd: number, list: Buffer): number {
  return check(c_flistxattr(fd, list.length === 0 ? null : list, list.length), 'flistxattr');
}

export const MS = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8 } as const;
export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4 } as const;

export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  check(c_mount(source, target, fstype, flags, data), `mount ${target}`);
}

export function umount2(target: string, flags: number): void {
  check(c_umount2(target, flags), `umount ${target}`);
}

export const CLONE = { NEWNS: 0x20000, FS: 0x200 } as const;

export function unshare(flags: number): void {
  check(c_unshare(flags), 'unshare');
}

export function setns(fd: number, nstype: number): void {
  check(c_setns(fd, nstype), 'setns');
}

export function gettid(): number {
  return c_gettid();
}

export const OPEN_TREE = { CLONE: 1, CLOEXEC: 0o2000000 } as const;

/**
 * open_tree(2): with OPEN_TREE_CLONE, an O_PATH fd on a detached copy of the mount at `path`.
 * An fd on the copy does not keep the original mount busy (nsview uses it for namespace pins).
 */
export function openTree(dirfd: number, path: Buffer, flags: number): number {
  return check(sys_open_tree(SYS_open_tree, dirfd, path, flags), 'open_tree');
}

/** NS_GET_USERNS = _IO(0xb7, 0x1): an fd on the user namespace owning an nsfs fd's namespace. */
export const NS_GET_USERNS = 0xb701;

/** ioctl with an int argument (NS_GET_* on nsfs fds return fds or types). */
export function ioctlInt(fd: number, request: number, arg = 0): number {
  return check(c_ioctl_int(fd, request, arg), 'ioctl');
}

/**
 * ioctl with a pointer argument the kernel writes into (the _IOR file attribute requests of
 * sys/file-flags.ts); `out` must be at least the request's _IOC_SIZE.
 */
export function ioctlRead(fd: number, request: number, out: Buffer): void {
  check(c_ioctl_ptr(fd, request, out), 'ioctl');
}

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/** lseek(fd, offset, SEEK_DATA or SEEK_HOLE): where the next data or hole starts; ENXIO past it. */
export function seekDataOrHole(fd: number, offset: bigint, whence: typeof SEEK_DATA | typeof SEEK_HOLE): bigint {
  const r: unknown = c_lseek(fd, offset, whence);
  if (typeof r !== 'number' && typeof r !== 'bigint') throw new NsviewError(E.EINVAL, 'lseek: unexpected result');
  if (r < 0) throw new NsviewError(koffi.errno(), 'lseek');
  return BigInt(r);
}

/** lseek(fd, offset, SEEK_SET): directories take the d_off cookies getdents64 gave. */
export function seekTo(fd: number, offset: bigint): void {
  check(c_lseek(fd, offset, 0), 'lseek');
}

const PR_SET_NAME = 15;
/** Name the calling thread (/proc/PID/task/TID/comm, at most 15 bytes). */
export function setThreadName(name: string): void {
  check(c_prctl_str(PR_SET_NAME, name.slice(0, 15), 0, 0, 0), 'prctl');
}

/** Let another runnable thread on this CPU go first (never fails on Linux). */
export function schedYield(): void {
  c_sched_yield();
}

const c_exit_now = lib.func('void _exit(int)');
/**
 * _exit(2): end the process at once, every thread with it. Node's own exit joins its worker
 * threads first, and a worker blocked in a hung filesystem never joins: the process would stay.
 */
export function exitNow(code: number): never {
  c_exit_now(code);
  throw new Error('_exit returned');
}

/**
 * The FUSE wire protocol as nsview speaks it: opcodes, flags and struct layouts from the kernel's
 * include/uapi/linux/fuse.h. Everything is little-endian host order (x86_64 and aarch64 only).
 *
 * Offsets are given per struct so codec.ts reads like the C header; sizes are the ones of protocol
 * 7.45, which have been stable for every struct used here since 7.9 except fuse_init_out.
 */

/** Highest protocol minor this engine implements; the session uses min(kernel, this). */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 45;
/** Oldest minor we accept: 7.23 fixed the size of fuse_init_out and is older than any kernel we run on. */
export const FUSE_MIN_MINOR_VERSION = 23;

export const enum Op {
  LOOKUP = 1,
  FORGET = 2,
  GETATTR = 3,
  SETATTR = 4,
  READLINK = 5,
  SYMLINK = 6,
  MKNOD = 8,
  MKDIR = 9,
  UNLINK = 10,
  RMDIR = 11,
  RENAME = 12,
  LINK = 13,
  OPEN = 14,
  READ = 15,
  WRITE = 16,
  STATFS = 17,
  RELEASE = 18,
  FSYNC = 20,
  SETXATTR = 21,
  GETXATTR = 22,
  LISTXATTR = 23,
  REMOVEXATTR = 24,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  FSYNCDIR = 30,
  GETLK = 31,
  SETLK = 32,
  SETLKW = 33,
  ACCESS = 34,
  CREATE = 35,
  INTERRUPT = 36,
  BMAP = 37,
  DESTROY = 38,
  IOCTL = 39,
  POLL = 40,
  NOTIFY_REPLY = 41,
  BATCH_FORGET = 42,
  FALLOCATE = 43,
  READDIRPLUS = 44,
  RENAME2 = 45,
  LSEEK = 46,
  COPY_FILE_RANGE = 47,
  SETUPMAPPING = 48,
  REMOVEMAPPING = 49,
  SYNCFS = 50,
  TMPFILE = 51,
  STATX = 52,
  COPY_FILE_RANGE_64 = 53,
}

const opNames: Record<number, string> = {
  1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK', 6: 'SYMLINK', 8: 'MKNOD',
  9: 'MKDIR', 10: 'UNLINK', 11: 'RMDIR', 12: 'RENAME', 13: 'LINK', 14: 'OPEN', 15: 'READ',
  16: 'WRITE', 17: 'STATFS', 18: 'RELEASE', 20: 'FSYNC', 21: 'SETXATTR', 22: 'GETXATTR',
  23: 'LISTXATTR', 24: 'REMOVEXATTR', 25: 'FLUSH', 26: 'INIT', 27: 'OPENDIR', 28: 'READDIR',
  29: 'RELEASEDIR', 30: 'FSYNCDIR', 31: 'GETLK', 32: 'SETLK', 33: 'SETLKW', 34: 'ACCESS',
  35: 'CREATE', 36: 'INTERRUPT', 37: 'BMAP', 38: 'DESTROY', 39: 'IOCTL', 40: 'POLL',
  41: 'NOTIFY_REPLY', 42: 'BATCH_FORGET', 43: 'FALLOCATE', 44: 'READDIRPLUS', 45: 'RENAME2',
  46: 'LSEEK', 47: 'COPY_FILE_RANGE', 48: 'SETUPMAPPING', 49: 'REMOVEMAPPING', 50: 'SYNCFS',
  51: 'TMPFILE', 52: 'STATX', 53: 'COPY_FILE_RANGE_64',
};

export function opName(opcode: number): string {
  return opNames[opcode] ?? `OPCODE_${opcode}`;
}

/**
 * Opcodes that change the filesystem. A read-only session answers them EROFS itself. (The kernel
 * already refuses most of them on an MS_RDONLY mount; this is the second line.)
 */
export const MODIFYING_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK, Op.WRITE,
  Op.SETXATTR, Op.REMOVEXATTR, Op.SETLK, Op.SETLKW, Op.CREATE, Op.FALLOCATE, Op.RENAME2,
  Op.COPY_FILE_RANGE, Op.COPY_FILE_RANGE_64, Op.TMPFILE, Op.SETUPMAPPING, Op.REMOVEMAPPING,
]);

/** FUSE_INIT flags (64 bits: the high half travels in flags2 when FUSE_INIT_EXT is agreed). */
export const Init = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  PARALLEL_DIROPS: 1n << 18n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  INIT_EXT: 1n << 30n,
  PASSTHROUGH: 1n << 37n,
} as const;

/** Names for logging what was agreed. */
export const INIT_FLAG_NAMES: ReadonlyArray<readonly [bigint, string]> = Object.entries(Init).map(
  ([name, bit]) => [bit, name] as const,
);

/** fuse_open_out.open_flags */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  CACHE_DIR: 1 << 3,
} as const;

/** fuse_getattr_in.getattr_flags: `fh` is valid. */
export const FUSE_GETATTR_FH = 1;

/** Unsolicited notifications: the code travels in fuse_out_header.error with unique 0. */
export const Notify = {
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
} as const;

/** The low bit of `unique` marks an INTERRUPT request's own id (FUSE_INT_REQ_BIT). */
export const FUSE_INT_REQ_BIT = 1n;

/** We ask the kernel for requests of up to this many pages (FUSE_MAX_PAGES). */
export const MAX_PAGES = 256;
/** Largest READ/WRITE payload: max_pages of 4 KiB pages. */
export const MAX_IO = MAX_PAGES * 4096;
/**
 * The device read buffer. The kernel refuses a read() shorter than
 * header + fuse_write_in + max_write, and otherwise fails any request that does not fit.
 */
export const READ_BUFFER_SIZE = MAX_IO + 4096;

/** Struct sizes and field offsets. */
export const IN_HEADER_SIZE = 40; // fuse_in_header
export const InHeader = { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, totalExtlen: 36 } as const;

export const OUT_HEADER_SIZE = 16; // fuse_out_header { len, error, unique }

export const ATTR_SIZE = 88; // fuse_attr
export const Attr = {
  ino: 0, size: 8, blocks: 16, atime: 24, mtime: 32, ctime: 40, atimensec: 48, mtimensec: 52,
  ctimensec: 56, mode: 60, nlink: 64, uid: 68, gid: 72, rdev: 76, blksize: 80, flags: 84,
} as const;

export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE; // fuse_entry_out = 128
export const EntryOut = { nodeid: 0, generation: 8, entryValid: 16, attrValid: 24, entryValidNsec: 32, attrValidNsec: 36, attr: 40 } as const;

export const ATTR_OUT_SIZE = 16 + ATTR_SIZE; // fuse_attr_out = 104
export const AttrOut = { attrValid: 0, attrValidNsec: 8, attr: 16 } as const;

export const OPEN_OUT_SIZE = 16; // fuse_open_out { fh, open_flags, backing_id }
export const KSTATFS_SIZE = 80; // fuse_statfs_out = fuse_kstatfs
export const GETXATTR_OUT_SIZE = 8; // fuse_getxattr_out { size, padding }

export const INIT_OUT_SIZE = 64; // fuse_init_out since 7.23
export const InitOut = {
  major: 0, minor: 4, maxReadahead: 8, flags: 12, maxBackground: 16, congestionThreshold: 18,
  maxWrite: 20, timeGran: 24, maxPages: 28, mapAlignment: 30, flags2: 32, maxStackDepth: 36,
  requestTimeout: 40,
} as const;

export const DIRENT_SIZE = 24; // fuse_dirent without name: { ino, off, namelen, type }
export const DIRENTPLUS_SIZE = ENTRY_OUT_SIZE + DIRENT_SIZE; // 152

export const NOTIFY_INVAL_INODE_SIZE = 24; // { ino, off, len }
export const NOTIFY_INVAL_ENTRY_SIZE = 16; // { parent, namelen, flags }

/** Dirents are padded to 8 bytes (FUSE_DIRENT_ALIGN). */
export function direntAlign(n: number): number {
  return (n + 7) & ~7;
}

/**
 * The FUSE wire protocol as nsview speaks it: opcodes, flags and struct layouts from the kernel's
 * include/uapi/linux/fuse.h. Everything is little-endian host order (x86_64 and aarch64 only).
 *
 * Offsets are given per struct so codec.ts reads like the C header; sizes are the ones of protocol
 * 7.45, which have been stable for every struct used here since 7.9 except fuse_init_out.
 * The opcodes themselves, and what the engine does with each, are in opcodes.ts.
 */

/** Highest protocol minor this engine implements; the session uses min(kernel, this). */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 45;
/** Oldest minor we accept: 7.23 fixed the size of fuse_init_out and is older than any kernel we run on. */
export const FUSE_MIN_MINOR_VERSION = 23;

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
  POSIX_ACL: 1n << 20n,
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
  /** Reads (and mmap) go to the backing file named by fuse_open_out.backing_id. */
  PASSTHROUGH: 1 << 7,
} as const;

/**
 * max_stack_depth we offer with FUSE_PASSTHROUGH (the kernel's FILESYSTEM_MAX_STACK_DEPTH): backing
 * files may then live on overlayfs (container root filesystems, stack depth 1); our mount counts
 * as depth 2, so nothing stacks on it.
 */
export const PASSTHROUGH_MAX_STACK_DEPTH = 2;

/** fuse_getattr_in.getattr_flags: `fh` is valid. */
export const FUSE_GETATTR_FH = 1;

/** fuse_open_in.flags & O_ACCMODE: anything but O_RDONLY asks for write access. */
export const O_ACCMODE = 3;

/** Unsolicited notifications: the code travels in fuse_out_header.error with unique 0. */
export const Notify = {
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
} as const;

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
export const InHeader = {
  len: 0,
  opcode: 4,
  unique: 8,
  nodeid: 16,
  uid: 24,
  gid: 28,
  pid: 32,
  totalExtlen: 36,
} as const;

export const OUT_HEADER_SIZE = 16; // fuse_out_header { len, error, unique }

// Request bodies (the part after fuse_in_header) nsview decodes.
export const INIT_IN_MIN_SIZE = 8; // fuse_init_in { major, minor, ... }: the part every kernel sends
export const FORGET_IN_SIZE = 8; // fuse_forget_in { nlookup }
export const BATCH_FORGET_IN_SIZE = 8; // fuse_batch_forget_in { count, dummy }, then count fuse_forget_one
export const FORGET_ONE_SIZE = 16; // fuse_forget_one { nodeid, nlookup }
export const INTERRUPT_IN_SIZE = 8; // fuse_interrupt_in { unique }
export const GETATTR_IN_SIZE = 16; // fuse_getattr_in { getattr_flags, dummy, fh }
export const OPEN_IN_SIZE = 8; // fuse_open_in { flags, open_flags }
export const READ_IN_SIZE = 40; // fuse_read_in { fh, offset, size, read_flags, lock_owner, flags, padding }
export const RELEASE_IN_SIZE = 24; // fuse_release_in { fh, flags, release_flags, lock_owner }
export const ACCESS_IN_SIZE = 8; // fuse_access_in { mask, padding }
export const LSEEK_IN_SIZE = 24; // fuse_lseek_in { fh, offset, whence, padding }
export const LSEEK_OUT_SIZE = 8; // fuse_lseek_out { offset }
export const IOCTL_IN_SIZE = 32; // fuse_ioctl_in { fh, flags, cmd, arg, in_size, out_size }
export const IOCTL_OUT_SIZE = 16; // fuse_ioctl_out { result, flags, in_iovs, out_iovs }
/** fuse_ioctl_in.flags: CUSE only, where the server may ask for arbitrary user memory. */
export const FUSE_IOCTL_UNRESTRICTED = 1 << 1;
/** fuse_ioctl_in.flags: the ioctl is on a directory. */
export const FUSE_IOCTL_DIR = 1 << 4;
export const GETXATTR_IN_SIZE = 8; // fuse_getxattr_in { size, padding }, then the name for GETXATTR

export const ATTR_SIZE = 88; // fuse_attr
export const Attr = {
  ino: 0,
  size: 8,
  blocks: 16,
  atime: 24,
  mtime: 32,
  ctime: 40,
  atimensec: 48,
  mtimensec: 52,
  ctimensec: 56,
  mode: 60,
  nlink: 64,
  uid: 68,
  gid: 72,
  rdev: 76,
  blksize: 80,
  flags: 84,
} as const;

export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE; // fuse_entry_out = 128
export const EntryOut = {
  nodeid: 0,
  generation: 8,
  entryValid: 16,
  attrValid: 24,
  entryValidNsec: 32,
  attrValidNsec: 36,
  attr: 40,
} as const;

export const ATTR_OUT_SIZE = 16 + ATTR_SIZE; // fuse_attr_out = 104
export const AttrOut = { attrValid: 0, attrValidNsec: 8, attr: 16 } as const;

export const OPEN_OUT_SIZE = 16; // fuse_open_out { fh, open_flags, backing_id }
export const KSTATFS_SIZE = 80; // fuse_statfs_out = fuse_kstatfs
export const GETXATTR_OUT_SIZE = 8; // fuse_getxattr_out { size, padding }

export const INIT_OUT_SIZE = 64; // fuse_init_out since 7.23
export const InitOut = {
  major: 0,
  minor: 4,
  maxReadahead: 8,
  flags: 12,
  maxBackground: 16,
  congestionThreshold: 18,
  maxWrite: 20,
  timeGran: 24,
  maxPages: 28,
  mapAlignment: 30,
  flags2: 32,
  maxStackDepth: 36,
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

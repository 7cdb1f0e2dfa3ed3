/**
 * The contract between nsview's filesystem logic and whatever speaks FUSE to the kernel.
 *
 * It is deliberately the *low-level* (inode-based) FUSE model: the kernel names files by node
 * ids we hand out in `lookup`, never by path strings, which is what lets the virtual tree keep
 * its own identity and containment rules. Nothing outside src/fuse/ may import the engine's
 * internals; the rest of nsview sees only these types and `mountFuse()`.
 */

/** File attributes as the kernel wants them (struct fuse_attr), with full 64-bit inode and ns times. */
export interface Attr {
  ino: bigint;
  size: bigint;
  blocks: bigint;
  atimeSec: bigint;
  atimeNsec: number;
  mtimeSec: bigint;
  mtimeNsec: number;
  ctimeSec: bigint;
  ctimeNsec: number;
  /** File type and permission bits (S_IFMT | 07777). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Device number in the kernel's new_encode_dev() form, as the kernel expects it in fuse_attr. */
  rdev: number;
  blksize: number;
}

/** Answer to LOOKUP (and an entry of READDIRPLUS). */
export interface Entry {
  nodeid: bigint;
  generation: bigint;
  attr: Attr;
  /** How long the kernel may cache the name -> node binding. */
  entryTimeoutMs: number;
  /** How long the kernel may cache the attributes. */
  attrTimeoutMs: number;
}

export interface AttrReply {
  attr: Attr;
  attrTimeoutMs: number;
}

/** One directory entry. `off` is the cookie the kernel hands back to continue *after* this entry. */
export interface DirEntry {
  name: Buffer;
  /** st_ino shown by readdir (d_ino). */
  ino: bigint;
  /** d_type: DT_DIR, DT_REG, ... (see `DT` below). */
  type: number;
  off: bigint;
  /** For READDIRPLUS: the entry to instantiate; omit to let the kernel look the name up itself. */
  entry?: Entry;
}

export interface OpenReply {
  fh: bigint;
  /** Keep the page cache from earlier opens (FOPEN_KEEP_CACHE). */
  keepCache?: boolean;
  /** Bypass the page cache (FOPEN_DIRECT_IO): for files whose size lies (procfs-like). */
  directIo?: boolean;
  /** For directories: cache readdir results (FOPEN_CACHE_DIR). */
  cacheDir?: boolean;
  /**
   * Serve this open's reads from backing file `backingId` in the kernel (FOPEN_PASSTHROUGH; an id
   * from FuseSession.backing). Every open of one node at a time must name the same id.
   */
  backingId?: number;
}

export interface StatFs {
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** Who asked: from the FUSE request header. */
export interface RequestContext {
  unique: bigint;
  uid: number;
  gid: number;
  pid: number;
  /**
   * Aborted when the kernel interrupts the request (FUSE_INTERRUPT) or the session ends; its
   * reason is an NsviewError(EINTR). A handler that rejects with that reason answers EINTR.
   */
  signal: AbortSignal;
  /**
   * Let another thread write this request's reply (READ only, for now): the handler hands the
   * frame to the thread that has the data, which writes it straight to the device, and resolves
   * with REPLIED once that is done. A reply from the main thread would cost one more thread
   * wake-up and a copy of the data between threads.
   */
  delegateReply(): DelegatedReply;
}

/**
 * A reply written by another thread: `header` (the protocol's 16-byte out header, unique filled
 * in; its u32 total length at offset 0 and its i32 negated errno at 4 are the writer's to set)
 * followed by the data, in one write(2) to `fd`. A reply that comes late (the request was
 * interrupted or timed out meanwhile) is refused by the kernel with ENOENT, never delivered to
 * another request: request ids are not reused while the connection lives.
 */
export interface DelegatedReply {
  fd: number;
  header: Uint8Array;
}

/** What a handler returns when its reply was delegated and has been written (see delegateReply). */
export const REPLIED: unique symbol = Symbol('replied elsewhere');
export type Replied = typeof REPLIED;

/**
 * Handlers for the operations nsview serves. A handler rejects with an error carrying a positive
 * `errno` (NsviewError); anything else is answered EIO and logged. Operations not listed here, and
 * every modifying operation when the session is read-only, are answered by the engine itself
 * (ENOSYS / EROFS) without reaching these handlers: opcodes.ts says, per opcode, which.
 */
export interface FuseOperations {
  lookup(ctx: RequestContext, parent: bigint, name: Buffer): Promise<Entry>;
  /** The kernel dropped `nlookup` references to `nodeid`. No reply is sent. */
  forget(nodeid: bigint, nlookup: bigint): void;
  getattr(ctx: RequestContext, nodeid: bigint, fh: bigint | undefined): Promise<AttrReply>;
  readlink(ctx: RequestContext, nodeid: bigint): Promise<Buffer>;
  open(ctx: RequestContext, nodeid: bigint, flags: number): Promise<OpenReply>;
  /** The data, or REPLIED when the reply was delegated (RequestContext.delegateReply). */
  read(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, size: number): Promise<Buffer | Replied>;
  release(ctx: RequestContext, nodeid: bigint, fh: bigint): Promise<void>;
  opendir(ctx: RequestContext, nodeid: bigint, flags: number): Promise<OpenReply>;
  /**
   * Entries after cookie `offset` (0 = from the start). Return as many as is convenient: the
   * engine packs what fits in the kernel's buffer and the kernel asks again from the last `off`.
   * Return an empty array at the end of the directory. Cookies must be non-zero (0 = start).
   *
   * Lookup accounting when `plus` is true: every returned DirEntry whose `entry` has a non-zero
   * nodeid counts as ONE lookup reference the handler has already taken (as if LOOKUP had
   * answered it). The engine hands the kernel only what fits; for every such entry that was not
   * delivered (did not fit, the reply failed, or `plus` was false) it calls `forget(nodeid, 1n)`
   * itself, so the handler may always attach entries. Entries named `.` and `..` are always sent
   * with nodeid 0 (the kernel neither instantiates nor ever forgets them); if the handler attached
   * an entry to them, the engine drops it and forgets it the same way.
   */
  readdir(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, plus: boolean): Promise<DirEntry[]>;
  releasedir(ctx: RequestContext, nodeid: bigint, fh: bigint): Promise<void>;
  statfs(ctx: RequestContext, nodeid: bigint): Promise<StatFs>;
  access(ctx: RequestContext, nodeid: bigint, mask: number): Promise<void>;
  /** Value of one extended attribute (the engine answers size probes and ERANGE itself). */
  getxattr(ctx: RequestContext, nodeid: bigint, name: Buffer): Promise<Buffer>;
  /** NUL-terminated names, concatenated (the engine answers size probes and ERANGE itself). */
  listxattr(ctx: RequestContext, nodeid: bigint): Promise<Buffer>;
  /**
   * SEEK_DATA (3) or SEEK_HOLE (4) from `offset` in open file `fh`: the offset found, or ENXIO.
   * Without it: ENOSYS, and the kernel treats every file as data without holes.
   */
  lseek?(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, whence: number): Promise<bigint>;
  /**
   * A restricted ioctl `cmd` on `nodeid` (through open file `fh`; for a directory `dir` is set and
   * `fh` may be 0: the kernel does not open directories whose OPENDIR answered ENOSYS). Returns
   * the output, sent as exactly `outSize` bytes (cut or zero-padded). Answer ENOTTY for an ioctl
   * not served. Without it: ENOSYS, which the kernel reports to the caller as ENOTTY.
   */
  ioctl?(
    ctx: RequestContext,
    nodeid: bigint,
    fh: bigint,
    cmd: number,
    dir: boolean,
    inSize: number,
    outSize: number,
  ): Promise<Buffer>;
  /** The kernel said goodbye (FUSE_DESTROY) or the device closed. */
  destroy?(): void;
  /**
   * Which group a request on `nodeid` belongs to for fair admission (see admission.ts): requests
   * of one group that pile up (a hung directory) never hold back another group's. Must be cheap
   * and never block; 0 for requests the filesystem answers by itself. Without it: all in group 0.
   */
  fairnessKey?(nodeid: bigint): number;

  // Modifying operations: reached only in a read-write session. Each answering with an Entry
  // counts one lookup reference, as LOOKUP does (the engine gives back what was not delivered).
  /** `mode` as the kernel sends it: the caller's umask already applied. */
  mkdir?(ctx: RequestContext, parent: bigint, name: Buffer, mode: number): Promise<Entry>;
  mknod?(ctx: RequestContext, parent: bigint, name: Buffer, mode: number, rdev: number): Promise<Entry>;
  symlink?(ctx: RequestContext, parent: bigint, name: Buffer, target: Buffer): Promise<Entry>;
  link?(ctx: RequestContext, nodeid: bigint, newParent: bigint, name: Buffer): Promise<Entry>;
  unlink?(ctx: RequestContext, parent: bigint, name: Buffer): Promise<void>;
  rmdir?(ctx: RequestContext, parent: bigint, name: Buffer): Promise<void>;
  /** `flags`: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2). */
  rename?(
    ctx: RequestContext,
    parent: bigint,
    name: Buffer,
    newParent: bigint,
    newName: Buffer,
    flags: number,
  ): Promise<void>;
  create?(
    ctx: RequestContext,
    parent: bigint,
    name: Buffer,
    mode: number,
    flags: number,
  ): Promise<{ entry: Entry; open: OpenReply }>;
  setattr?(ctx: RequestContext, nodeid: bigint, attrs: SetattrRequest): Promise<AttrReply>;
  /** Bytes written. */
  write?(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, data: Buffer): Promise<number>;
  fsync?(ctx: RequestContext, nodeid: bigint, fh: bigint, dataOnly: boolean): Promise<void>;
  flush?(ctx: RequestContext, nodeid: bigint, fh: bigint): Promise<void>;
  fallocate?(
    ctx: RequestContext,
    nodeid: bigint,
    fh: bigint,
    offset: bigint,
    length: bigint,
    mode: number,
  ): Promise<void>;
  setxattr?(ctx: RequestContext, nodeid: bigint, name: Buffer, value: Buffer, flags: number): Promise<void>;
  removexattr?(ctx: RequestContext, nodeid: bigint, name: Buffer): Promise<void>;
}

/** SETATTR: FATTR_* bits in `valid` say which fields count (see include/uapi/linux/fuse.h). */
export interface SetattrRequest {
  valid: number;
  fh: bigint;
  size: bigint;
  atime: { sec: bigint; nsec: number };
  mtime: { sec: bigint; nsec: number };
  mode: number;
  uid: number;
  gid: number;
}

export interface MountOptions {
  mountpoint: string;
  /** Shown as the mount source (first field of /proc/mounts). */
  fsname: string;
  /** Filesystem type becomes `fuse.<subtype>`. */
  subtype: string;
  readOnly: boolean;
  /** Let users other than the mounter in; always paired with default_permissions by callers. */
  allowOther: boolean;
  /** Kernel checks modes/owners against the caller (default_permissions). */
  defaultPermissions: boolean;
  /**
   * FUSE_POSIX_ACL: the kernel also checks POSIX ACLs (it asks for system.posix_acl_* through
   * GETXATTR, caches them with the attributes and answers those names itself). Implies
   * default_permissions in the kernel. Default false.
   */
  posixAcl?: boolean;
  /** Mount with MS_NOEXEC: nothing on it can be executed. Default false. */
  noexec?: boolean;
  /** Largest READ request in bytes (rounded to pages; capped by the kernel's max_pages). */
  maxRead?: number;
  /**
   * How many handler calls may run at once (default 64). Further requests are still read from
   * /dev/fuse (so interrupts and forgets keep flowing) and wait in a FIFO.
   */
  maxInFlight?: number;
  /** Called after every request handled by `FuseOperations` (for --verbose tracing); keep it cheap. */
  onTrace?: (t: { op: string; nodeid: bigint; name?: Buffer; errno: number; ms: number }) => void;
  /** Called for requests the engine could not handle or answer (never throws to the kernel). */
  onError?: (err: unknown, opcode: string) => void;
  /**
   * Read /dev/fuse from the main thread's event loop (epoll; default true): one thread wake-up
   * per request. false, or a Node without the pipe binding this needs, reads on the threadpool.
   */
  pollDevice?: boolean;
  /**
   * With epoll reads: how many µs the serving loop keeps polling after each request or reply
   * before it sleeps (default 0). Saves a thread wake-up per request when clients send their next
   * request quickly, which on VMs with halting idle vCPUs is most of a request's cost.
   */
  busyPollUs?: number;
  /**
   * With threadpool reads: how many fs.read() calls stay outstanding on /dev/fuse (default 2).
   * Each occupies one libuv threadpool thread for the session's whole life.
   */
  readers?: number;
  /**
   * Let the kernel cache symlink targets (FUSE_CACHE_SYMLINKS; default true). The kernel cuts a
   * cached target at the link's st_size, so a filesystem whose readlink answers differ in length
   * from st_size (rewritten links) must turn it off.
   */
  cacheSymlinks?: boolean;
  /**
   * Ask for FUSE_PASSTHROUGH (open files whose reads the kernel serves from a backing file;
   * default false). Whether the kernel agreed shows as FuseSession.backing.
   */
  passthrough?: boolean;
}

/** Backing files of a session that agreed FUSE_PASSTHROUGH (see OpenReply.backingId). */
export interface BackingFiles {
  /** Register a regular file's fd; returns its backing id. Throws NsviewError (EINVAL, ELOOP, EPERM...). */
  open(fd: number): number;
  /** Drop a backing id once no open reply will name it again. */
  close(id: number): void;
}

/** A mounted, serving FUSE filesystem. */
export interface FuseSession {
  readonly mountpoint: string;
  /** st_dev of the mount as seen by stat(2), to recognise our own mount from inside namespaces. */
  readonly dev: bigint;
  /** Resolves when the session ends (unmounted, device closed, or destroy). */
  readonly closed: Promise<void>;
  /** Drop the kernel's cached dentry `name` in directory `parent` (FUSE_NOTIFY_INVAL_ENTRY). */
  invalidateEntry(parent: bigint, name: Buffer): void;
  /** Drop cached attributes and data of `nodeid` (FUSE_NOTIFY_INVAL_INODE). */
  invalidateInode(nodeid: bigint): void;
  /** Requests received so far, by operation name (LOOKUP, GETATTR, READDIRPLUS...). */
  requestCounts(): Record<string, number>;
  /** Passthrough backing files; undefined unless passthrough was asked for and the kernel agreed. */
  readonly backing: BackingFiles | undefined;
  /** Detach the mount and stop serving. Idempotent. */
  unmount(): Promise<void>;
}

/** d_type values. */
export const DT = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
} as const;

export const FUSE_ROOT_ID = 1n;

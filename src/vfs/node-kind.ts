/**
 * What a node of the view is. Every node the kernel holds is a Node; its `kind` is the object
 * that answers every operation on it (the top directory, by-pid/, a pid link, a file inside a
 * namespace, ...). NamespaceView finds a request's node and hands the request to its kind; an
 * operation a kind does not offer gets the answer documented with it here. A new kind of node is
 * a new file implementing NodeKind, registered where NamespaceView builds its kinds.
 */
import type { AttrReply, DirEntry, Entry, OpenReply, RequestContext, SetattrRequest, StatFs } from '../fuse/types.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { NamespaceBinding } from './view-context.js';
import type { FileAttrRequest } from '../sys/file-flags.js';

export interface Node {
  readonly id: bigint;
  /** Kernel references (a plain number: bigint arithmetic allocates on every lookup). */
  nlookup: number;
  /** What the node is: the behaviour of every operation on it. */
  readonly kind: NodeKind<this>;
}

/**
 * The operations of one kind of node. Requests from nsview's own threads are refused (ENOENT)
 * before lookup, readdir, readlink and open reach a kind; the other operations decide for
 * themselves (only what needs an io worker must refuse them, or a worker would wait on itself).
 */
export interface NodeKind<N extends Node> {
  /** Nodes of this kind live as long as the view (the fixed directories): FORGET never drops them. */
  readonly permanent: boolean;
  /** Whether `node` is a directory: OPENDIR of anything else is ENOTDIR. */
  isDirectory(node: N): boolean;
  /** `fh` is set when the kernel asks about an open file. */
  getattr(ctx: RequestContext, node: N, fh: bigint | undefined): Promise<AttrReply>;
  /** `name` in directory `dir`, counted as one kernel reference. Without it: ENOTDIR. */
  lookup?(ctx: RequestContext, dir: N, name: Buffer): Promise<Entry>;
  /** As FuseOperations.readdir, lookup counting of attached entries included. Without it: ENOTDIR. */
  readdir?(ctx: RequestContext, dir: N, offset: bigint, plus: boolean): Promise<DirEntry[]>;
  /** The link's target. Without it: EINVAL (not a symlink). */
  readlink?(ctx: RequestContext, node: N): Promise<Buffer>;
  /**
   * Open with `flags` (write flags only in read-write mode; refused before otherwise). Without
   * it: EISDIR (the view's own nodes are directories, and symlinks, which the kernel never opens).
   */
  open?(ctx: RequestContext, node: N, flags: number): Promise<OpenReply>;
  /** Without it: an empty filesystem. */
  statfs?(ctx: RequestContext, node: N): Promise<StatFs>;
  /** One extended attribute's value. Without it: ENODATA. */
  getxattr?(ctx: RequestContext, node: N, name: Buffer): Promise<Buffer>;
  /** NUL-terminated names. Without it: none. */
  listxattr?(ctx: RequestContext, node: N): Promise<Buffer>;
  /**
   * A read-only file attribute ioctl (sys/file-flags.ts) of `node`, through open file `fh` for a
   * regular file (fh 0 for a directory). Without it: ENOTTY, as for a file without such flags.
   */
  fileAttr?(ctx: RequestContext, node: N, fh: bigint, which: FileAttrRequest): Promise<Buffer>;
  /** The kernel forgot the node: drop whatever is kept for it. */
  dropped?(node: N): void;

  // Read-write mode. A kind without these is part of the view itself (the top directory,
  // by-pid/): making or removing entries there is EPERM, changing attributes EROFS.
  mkdir?(ctx: RequestContext, dir: N, name: Buffer, mode: number): Promise<Entry>;
  mknod?(ctx: RequestContext, dir: N, name: Buffer, mode: number, rdev: number): Promise<Entry>;
  symlink?(ctx: RequestContext, dir: N, name: Buffer, target: Buffer): Promise<Entry>;
  create?(
    ctx: RequestContext,
    dir: N,
    name: Buffer,
    mode: number,
    flags: number,
  ): Promise<{ entry: Entry; open: OpenReply }>;
  /** A hard link to `node` as `name` in `dir`; `dir` may be of another kind (then EXDEV). */
  link?(ctx: RequestContext, node: N, dir: Node, name: Buffer): Promise<Entry>;
  unlink?(ctx: RequestContext, dir: N, name: Buffer, isDir: boolean): Promise<void>;
  /** `to` may be of another kind, or in another namespace (then EXDEV). */
  rename?(ctx: RequestContext, dir: N, name: Buffer, to: Node, newName: Buffer, flags: number): Promise<void>;
  /** False for a kind that has the modifying operations but refuses them all (EROFS): access(W_OK) says so too. */
  readonly acceptsWrites?: boolean;
  setattr?(ctx: RequestContext, node: N, attrs: SetattrRequest): Promise<AttrReply>;
  setxattr?(ctx: RequestContext, node: N, name: Buffer, value: Buffer, flags: number): Promise<void>;
  removexattr?(ctx: RequestContext, node: N, name: Buffer): Promise<void>;
}

/**
 * A part of the view that changes when discovery finds namespaces or processes come and go.
 * `appeared` / `vanished`: ids new in / gone from this snapshot (a vanished one may still live,
 * held by nothing discovery sees); `dead`: bindings of namespaces that died (already marked dead
 * and taken out of the view's bindings).
 */
export interface CatalogListener {
  catalogChanged(snap: DiscoverySnapshot, appeared: bigint[], vanished: bigint[], dead: NamespaceBinding[]): void;
}

/** A directory of the view's own at a fixed name in the top directory (by-pid/, ...). */
export interface FixedDir {
  readonly name: Buffer;
  readonly node: Node;
  /** Its entry for a LOOKUP in the top directory (counts one kernel reference). */
  entry(): Entry;
}

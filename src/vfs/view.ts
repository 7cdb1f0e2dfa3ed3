/**
 * NamespaceView: the filesystem nsview shows, as FUSE operations.
 *
 *   /                     one directory per mount namespace (named by inode) + by-pid/ (top-dir.ts)
 *   /by-pid/PID           symlink to ../<inode of PID's mount namespace> (by-pid-dir.ts, pid-link.ts)
 *   /by-id/<id>/...       a namespace by its never-reused kernel id, lookup only (by-id-dir.ts)
 *   /<inode>/...          the root filesystem of the namespace with that number now, read-only
 *                         (real-tree.ts); what was looked up stays bound to that one namespace
 *   /raw/<inode>/...      the same, symlinks as stored whatever --symlinks says (raw-dir.ts)
 *
 * This file only dispatches: it finds a request's node and hands the request to the node's kind
 * (node-kind.ts), or to the open file behind a file handle (open-files.ts). What holds for the
 * whole view (read-only, no recursion from our own threads, no OPENDIR) is decided here.
 */
import type {
  AttrReply,
  DirEntry,
  Entry,
  FuseOperations,
  FuseSession,
  OpenReply,
  Replied,
  RequestContext,
  SetattrRequest,
  StatFs,
} from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import { fileAttrRequest } from '../sys/file-flags.js';
import type { IoPool } from '../io/pool.js';
import type { NamespaceAccess } from '../access/namespace-access.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { CatalogListener, Node } from './node-kind.js';
import { ViewContext, type NamespaceCatalog, type ViewOptions } from './view-context.js';
import { FdCloser } from './fd-closer.js';
import { Listings } from './listing.js';
import { OpenFiles } from './open-files.js';
import { RealTree, EMPTY_STATFS } from './real-tree.js';
import { PidLinks } from './pid-link.js';
import { ByPidDir } from './by-pid-dir.js';
import { TopDir } from './top-dir.js';
import { RawDir } from './raw-dir.js';
import { ByIdDir } from './by-id-dir.js';
import { NameTree } from './name-dirs.js';
import { NO_CONTAINER_NAMES, type ContainerNameSource } from './container-names.js';

export type { NamespaceCatalog, SymlinkMode, ViewOptions } from './view-context.js';
export type { ContainerNameSource } from './container-names.js';

/**
 * Entry and attribute timeout of container names: short, because a name follows whatever
 * container holds it now (changes are also pushed to the kernel as they are seen).
 */
const NAME_TIMEOUT_MS = 500;

const W_OK = 2;
/** How often the namespaces the kernel holds nodes of are checked for death. */
const LIVENESS_SWEEP_MS = 100;
const O_ACCMODE = 3;
const O_WRITE_FLAGS = 0o1000 /* O_TRUNC */ | 0o2000 /* O_APPEND */ | 0o100; /* O_CREAT */

export class NamespaceView implements FuseOperations {
  private readonly vc: ViewContext;
  private readonly files: OpenFiles;
  private readonly tree: RealTree;
  private readonly rawTree: RealTree;
  private readonly names: NameTree;
  /** Kinds that change with discovery, told in this order. */
  private readonly listeners: CatalogListener[];
  private readonly livenessTimer: NodeJS.Timeout;

  constructor(
    catalog: NamespaceCatalog,
    roots: NamespaceAccess,
    io: IoPool,
    opts: ViewOptions,
    names: ContainerNameSource = NO_CONTAINER_NAMES,
  ) {
    const vc = (this.vc = new ViewContext(catalog, roots, io, opts));
    const closer = new FdCloser(io, opts.trace);
    const listings = new Listings();
    this.files = new OpenFiles(vc, closer);
    this.tree = new RealTree(vc, this.files, listings, closer, opts.symlinks);
    // The same namespaces with links as stored, under raw/ (see raw-dir.ts).
    this.rawTree = new RealTree(vc, this.files, listings, closer, 'raw');
    // The kinds of the view's own nodes; a new fixed directory is one more entry in `fixed`.
    const byPid = new ByPidDir(vc, new PidLinks(vc), listings);
    const byId = new ByIdDir(vc, this.tree, listings);
    this.names = new NameTree(vc, names, listings, Math.min(opts.topTimeoutMs, NAME_TIMEOUT_MS));
    const raw = new RawDir(vc, this.rawTree, listings);
    const top = new TopDir(vc, this.tree, [byPid, byId, raw, ...this.names.fixed], listings);
    this.listeners = [top, byId, raw, this.tree, this.rawTree, byPid, this.names];
    // A namespace found dead by a request: let go of it at once, as if discovery had said so.
    vc.onDeath = (b) => {
      const snap = vc.catalog.current();
      for (const l of this.listeners) l.catalogChanged(snap, [], [], [b]);
    };
    // The kernel walks cached dentries of a namespace's root without asking us: a death must be
    // told to it (entry invalidation) before a new namespace can be looked for under that number.
    // Discovery notices deaths once a pass, the kernel's namespace list at once: asked here for
    // every namespace the kernel holds nodes of (a listmount each, about 1.5 us).
    this.livenessTimer = setInterval(() => {
      const dead = this.vc.collectDead(this.vc.catalog.current(), this.vc.bindings.keys(), true);
      if (dead.length > 0) for (const l of this.listeners) l.catalogChanged(this.vc.catalog.current(), [], [], dead);
    }, LIVENESS_SWEEP_MS);
    this.livenessTimer.unref();
  }

  /** Connect to the mounted session (for invalidations) and learn our own device number. */
  attach(session: FuseSession, ownDev: number): void {
    this.vc.session = session;
    this.vc.ownDev = ownDev;
  }

  /**
   * A discovery pass finished. Vanished namespaces lose their cached entries at once; when the set
   * of namespaces or of pids changed, the top directory or by-pid gets a new mtime and its cached
   * listing is dropped, so `ls` shows the change at once.
   */
  catalogChanged(snap: DiscoverySnapshot, appeared: bigint[], vanished: bigint[]): void {
    const dead = this.vc.collectDead(snap, vanished);
    for (const l of this.listeners) l.catalogChanged(snap, appeared, vanished, dead);
  }

  /** The access layer found namespace `id` dead (its liveness sweep): the same as a vanish. */
  namespaceDied(id: bigint): void {
    const snap = this.vc.catalog.current();
    const dead = this.vc.collectDead(snap, [id]);
    if (dead.length > 0) for (const l of this.listeners) l.catalogChanged(snap, [], [], dead);
  }

  /**
   * The container names changed (see ContainerNameSource). A namespace inode reused by another
   * container's namespace needs nothing here: namespace directories are bound to the kernel's
   * namespace id and a dead one is let go when its death is seen.
   */
  namesChanged(): void {
    this.names.namesChanged();
  }

  private node(id: bigint): Node {
    const n = this.vc.nodes.get(id);
    if (!n) throw new NsviewError(E.ESTALE, `unknown node ${id}`);
    return n;
  }

  /**
   * Requests are admitted fairly per namespace: a node inside a namespace belongs to that
   * namespace's group, the view's own nodes (top directory, by-pid/) to group 0, so a pile-up
   * in one namespace never delays them.
   */
  fairnessKey(nodeid: bigint): number {
    const n = this.vc.nodes.get(nodeid);
    return n !== undefined && 'nsInode' in n && typeof n.nsInode === 'number' ? n.nsInode : 0;
  }

  // ---- operations on nodes -------------------------------------------------------------------

  async lookup(ctx: RequestContext, parent: bigint, name: Buffer): Promise<Entry> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const p = this.node(parent);
    if (!p.kind.lookup) throw new NsviewError(E.ENOTDIR);
    return p.kind.lookup(ctx, p, name);
  }

  forget(nodeid: bigint, nlookup: bigint): void {
    this.vc.nodes.forget(nodeid, nlookup);
  }

  async getattr(ctx: RequestContext, nodeid: bigint, fh: bigint | undefined): Promise<AttrReply> {
    const n = this.node(nodeid);
    return n.kind.getattr(ctx, n, fh);
  }

  async readlink(ctx: RequestContext, nodeid: bigint): Promise<Buffer> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (!n.kind.readlink) throw new NsviewError(E.EINVAL);
    return n.kind.readlink(ctx, n);
  }

  async open(ctx: RequestContext, nodeid: bigint, flags: number): Promise<OpenReply> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    if (((flags & O_ACCMODE) !== 0 || (flags & O_WRITE_FLAGS) !== 0) && !this.vc.opts.readWrite)
      throw new NsviewError(E.EROFS);
    const n = this.node(nodeid);
    if (!n.kind.open) throw new NsviewError(E.EISDIR);
    return n.kind.open(ctx, n, flags);
  }

  /**
   * ENOSYS for every directory: the kernel then never sends OPENDIR or RELEASEDIR again (it
   * offers FUSE_NO_OPENDIR_SUPPORT since 5.1) and a listing costs only its READDIRPLUS requests;
   * the listing state is kept per node (see open-dirs.ts).
   */
  async opendir(ctx: RequestContext, nodeid: bigint): Promise<OpenReply> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (!n.kind.isDirectory(n)) throw new NsviewError(E.ENOTDIR);
    throw new NsviewError(E.ENOSYS, 'zero-message opendir');
  }

  async readdir(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (!n.kind.readdir) throw new NsviewError(E.ENOTDIR);
    return n.kind.readdir(ctx, n, offset, plus);
  }

  /** Not sent by the kernel once OPENDIR answered ENOSYS; kept for the contract. */
  async releasedir(): Promise<void> {}

  async statfs(ctx: RequestContext, nodeid: bigint): Promise<StatFs> {
    const n = this.node(nodeid);
    return n.kind.statfs ? n.kind.statfs(ctx, n) : EMPTY_STATFS;
  }

  async access(ctx: RequestContext, nodeid: bigint, mask: number): Promise<void> {
    const n = this.node(nodeid);
    if (mask & W_OK && !(this.vc.opts.readWrite && n.kind.setattr && n.kind.acceptsWrites !== false))
      throw new NsviewError(E.EROFS);
  }

  async getxattr(ctx: RequestContext, nodeid: bigint, name: Buffer): Promise<Buffer> {
    const n = this.node(nodeid);
    if (!n.kind.getxattr) throw new NsviewError(E.ENODATA);
    return n.kind.getxattr(ctx, n, name);
  }

  async listxattr(ctx: RequestContext, nodeid: bigint): Promise<Buffer> {
    const n = this.node(nodeid);
    return n.kind.listxattr ? n.kind.listxattr(ctx, n) : Buffer.alloc(0);
  }

  /**
   * Only the read-only file attribute requests (lsattr, mtree flags); every other ioctl, and
   * above all every one that writes, is ENOTTY.
   */
  async ioctl(
    ctx: RequestContext,
    nodeid: bigint,
    fh: bigint,
    cmd: number,
    dir: boolean,
    inSize: number,
    outSize: number,
  ): Promise<Buffer> {
    const which = fileAttrRequest(cmd);
    if (which === undefined || inSize !== 0) throw new NsviewError(E.ENOTTY);
    const n = this.node(nodeid);
    if (!n.kind.fileAttr) throw new NsviewError(E.ENOTTY);
    const out = await n.kind.fileAttr(ctx, n, dir ? 0n : fh, which);
    if (outSize < out.length) throw new NsviewError(E.EINVAL, 'ioctl output buffer too small');
    return out;
  }

  // ---- read-write mode -----------------------------------------------------------------------
  // The session answers all of these EROFS itself when read-only; the view's own directories
  // (kinds without the operation) answer EPERM for entries and EROFS for attributes.

  /** The directory node `id` of a request that makes or removes an entry, not from our threads. */
  private entryDir(ctx: RequestContext, id: bigint): Node {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    if (!this.vc.opts.readWrite) throw new NsviewError(E.EROFS);
    return this.node(id);
  }

  private attrNode(ctx: RequestContext, id: bigint): Node {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    if (!this.vc.opts.readWrite) throw new NsviewError(E.EROFS);
    return this.node(id);
  }

  async mkdir(ctx: RequestContext, parent: bigint, name: Buffer, mode: number): Promise<Entry> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.mkdir) throw new NsviewError(E.EPERM);
    return d.kind.mkdir(ctx, d, name, mode);
  }

  async mknod(ctx: RequestContext, parent: bigint, name: Buffer, mode: number, rdev: number): Promise<Entry> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.mknod) throw new NsviewError(E.EPERM);
    return d.kind.mknod(ctx, d, name, mode, rdev);
  }

  async symlink(ctx: RequestContext, parent: bigint, name: Buffer, target: Buffer): Promise<Entry> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.symlink) throw new NsviewError(E.EPERM);
    return d.kind.symlink(ctx, d, name, target);
  }

  async create(
    ctx: RequestContext,
    parent: bigint,
    name: Buffer,
    mode: number,
    flags: number,
  ): Promise<{ entry: Entry; open: OpenReply }> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.create) throw new NsviewError(E.EPERM);
    return d.kind.create(ctx, d, name, mode, flags);
  }

  async link(ctx: RequestContext, nodeid: bigint, newParent: bigint, name: Buffer): Promise<Entry> {
    const d = this.entryDir(ctx, newParent);
    const n = this.node(nodeid);
    if (!n.kind.link) throw new NsviewError(E.EPERM);
    return n.kind.link(ctx, n, d, name);
  }

  async unlink(ctx: RequestContext, parent: bigint, name: Buffer): Promise<void> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.unlink) throw new NsviewError(E.EPERM);
    return d.kind.unlink(ctx, d, name, false);
  }

  async rmdir(ctx: RequestContext, parent: bigint, name: Buffer): Promise<void> {
    const d = this.entryDir(ctx, parent);
    if (!d.kind.unlink) throw new NsviewError(E.EPERM);
    return d.kind.unlink(ctx, d, name, true);
  }

  async rename(
    ctx: RequestContext,
    parent: bigint,
    name: Buffer,
    newParent: bigint,
    newName: Buffer,
    flags: number,
  ): Promise<void> {
    const d = this.entryDir(ctx, parent);
    const to = this.node(newParent);
    if (!d.kind.rename) throw new NsviewError(to.kind.rename ? E.EXDEV : E.EPERM);
    return d.kind.rename(ctx, d, name, to, newName, flags);
  }

  async setattr(ctx: RequestContext, nodeid: bigint, attrs: SetattrRequest): Promise<AttrReply> {
    const n = this.attrNode(ctx, nodeid);
    if (!n.kind.setattr) throw new NsviewError(E.EROFS);
    return n.kind.setattr(ctx, n, attrs);
  }

  async setxattr(ctx: RequestContext, nodeid: bigint, name: Buffer, value: Buffer, flags: number): Promise<void> {
    const n = this.attrNode(ctx, nodeid);
    if (!n.kind.setxattr) throw new NsviewError(E.EROFS);
    return n.kind.setxattr(ctx, n, name, value, flags);
  }

  async removexattr(ctx: RequestContext, nodeid: bigint, name: Buffer): Promise<void> {
    const n = this.attrNode(ctx, nodeid);
    if (!n.kind.removexattr) throw new NsviewError(E.EROFS);
    return n.kind.removexattr(ctx, n, name);
  }

  async write(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, data: Buffer): Promise<number> {
    return this.files.write(fh, offset, data);
  }

  async fsync(ctx: RequestContext, nodeid: bigint, fh: bigint, dataOnly: boolean): Promise<void> {
    return this.files.fsync(fh, dataOnly);
  }

  async fallocate(
    ctx: RequestContext,
    nodeid: bigint,
    fh: bigint,
    offset: bigint,
    length: bigint,
    mode: number,
  ): Promise<void> {
    return this.files.fallocate(fh, offset, length, mode);
  }

  // ---- operations on open files ----------------------------------------------------------------

  async read(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, size: number): Promise<Replied> {
    return this.files.read(ctx, fh, offset, size);
  }

  async lseek(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, whence: number): Promise<bigint> {
    return this.files.seek(fh, offset, whence);
  }

  async release(ctx: RequestContext, nodeid: bigint, fh: bigint): Promise<void> {
    this.files.release(fh);
  }

  /** Stop the view's timers (the daemon is shutting down). */
  close(): void {
    clearInterval(this.livenessTimer);
  }

  /** Numbers for logs and the soak test. */
  stats(): Record<string, number> {
    return {
      nodes: this.vc.nodes.size,
      bindings: this.vc.bindings.size,
      bigInodes: this.vc.numbers.tableSize,
      xattrLists: this.tree.xattrNames.size + this.rawTree.xattrNames.size,
      openFiles: this.files.size,
      passedThrough: this.files.passedThrough,
      openDirs: this.tree.dirs.size + this.rawTree.dirs.size,
      fastHits: this.vc.fast.hits,
      fastMisses: this.vc.fast.misses,
    };
  }
}

/**
 * The files inside a namespace (/<inode>/...): the node kind of every real node, namespace roots
 * included. Lookups, attributes, links, listings, statfs and xattrs are asked of io workers acting
 * on fds from resolveInRoot; this file decides what to ask and how to present the answer, and
 * never blocks. What the view hides (pseudo filesystems, its own mount) is decided here.
 */
import type { AttrReply, DirEntry, Entry, OpenReply, RequestContext, SetattrRequest, StatFs } from '../fuse/types.js';
import type { RootRef } from '../access/root-ref.js';
import type { NodeRef, Owner } from '../io/protocol.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, STATX_RECORD, S_IFMT, S_IFDIR, S_IFLNK, S_IFREG } from '../sys/stat.js';
import { decodeStatfs } from '../sys/statfs.js';
import type { FileAttrRequest } from '../sys/file-flags.js';
import { assertComponent, childOf } from '../resolve/names.js';
import type { InRootPath } from '../resolve/names.js';
import { isPseudoFs } from '../resolve/pseudo.js';
import { hasXattrName, isTrustedXattr, withoutTrustedXattrs } from '../io/xattr-names.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import { ExpiringMap } from './expiring-map.js';
import type { CatalogListener, Node, NodeKind } from './node-kind.js';
import type { NamespaceBinding, SymlinkMode, ViewContext } from './view-context.js';
import { RealNodes, type RealNode, type RootVia } from './real-nodes.js';
import { attrFromStatx } from './attrs.js';
import { opensForWriting, type OpenFiles } from './open-files.js';
import { OpenDirs } from './open-dirs.js';
import type { FdCloser } from './fd-closer.js';
import { listEntries, type Listings } from './listing.js';

/** Inode invalidations sent for a vanished namespace (the rest expire with --attr-timeout). */
const VANISH_INVALIDATIONS = 4096;

const FATTR_FH = 64;
const RENAME_EXCHANGE = 2;

/**
 * Who a file made through the view belongs to: the caller, as on any filesystem. Root's files
 * need no chown (the worker making them is root). A user-namespaced container sees host uid 0
 * as its overflow uid (nobody): nsview does not map it (see README, read-write mode).
 */
function ownerOf(ctx: RequestContext): Owner | undefined {
  return ctx.uid === 0 && ctx.gid === 0 ? undefined : { uid: ctx.uid, gid: ctx.gid };
}

/** What statfs answers where there is no filesystem to ask. */
export const EMPTY_STATFS: StatFs = {
  blocks: 0n,
  bfree: 0n,
  bavail: 0n,
  files: 0n,
  ffree: 0n,
  bsize: 4096,
  namelen: 255,
  frsize: 4096,
};

/**
 * trusted.* attributes are for CAP_SYS_ADMIN only: the kernel lists them to nobody else and answers
 * ENODATA for their values. A FUSE request names only the caller's uid, not its capabilities, so
 * uid 0 stands for privileged (a root whose capabilities were dropped still sees them; root of a
 * user namespace arrives with its mapped, non-zero uid and does not). security.* and system.*
 * stay visible to everyone, as natively.
 */
function mayReadTrusted(ctx: RequestContext): boolean {
  return ctx.uid === 0;
}

export class RealTree implements NodeKind<RealNode>, CatalogListener {
  readonly permanent = false;
  readonly nodes: RealNodes;
  readonly dirs: OpenDirs;
  readonly xattrNames: ExpiringMap<bigint, Uint8Array>;

  constructor(
    private readonly vc: ViewContext,
    private readonly files: OpenFiles,
    private readonly listings: Listings,
    closer: FdCloser,
    /**
     * How this tree shows symlinks. The view has one tree per mode it shows (the namespace
     * directories, and raw/): each has its own nodes, so the kernel, which caches a link's target
     * per node, never serves one tree's target for the other's link.
     */
    private readonly links: SymlinkMode,
  ) {
    this.nodes = new RealNodes(vc.nodes, this, vc.numbers);
    this.dirs = new OpenDirs(vc, closer, (dir, name, st) => this.entry(dir.binding, dir, name, st, 0, false), links);
    this.xattrNames = new ExpiringMap(vc.opts.attrTimeoutMs, 8192);
  }

  // ---- what the view shows -----------------------------------------------------------------

  /**
   * Whether a looked-up file may be shown at all. Below the root of a pseudo filesystem (without
   * --pseudo) or of an nsview mount (ours or another daemon's) nothing is: the view shows those roots empty, so a name inside
   * can only have been reached by the container swapping a directory on the way.
   */
  private hidden(st: StatxView, fsType: number): boolean {
    if (st.isDir && st.isMountRoot) return false;
    if (this.vc.isViewDev(st.dev)) return true;
    return !this.vc.opts.pseudo && isPseudoFs(fsType);
  }

  private isOpaque(st: StatxView, fsType: number): boolean {
    if (!st.isDir) return false;
    if (this.vc.isViewDev(st.dev)) return true;
    return st.isMountRoot && !this.vc.opts.pseudo && isPseudoFs(fsType);
  }

  /** Stat a node path (fast path first); ENOENT for what the view does not show (see hidden). */
  private async statReal(
    b: NamespaceBinding,
    path: InRootPath,
    signal?: AbortSignal,
    deadErrno: number = E.ENOENT,
  ): Promise<{ st: StatxView; fsType: number }> {
    const vc = this.vc;
    vc.live(b, deadErrno);
    const held = vc.roots.peek(b.id);
    const fast = held && vc.fast.tryStat(held, path, this.links === 'rewrite');
    let st: StatxView;
    let fsType: number;
    if (fast) {
      st = new StatxView(Buffer.from(fast.stat.buffer));
      fsType = fast.fsType;
    } else {
      const r = await vc.inRoot(
        b,
        (root) => vc.io.run({ op: 'stat', root, path, links: vc.linkView(this.links) }, b.inode, { signal }),
        deadErrno,
        signal,
      );
      st = new StatxView(Buffer.from(r.stat.buffer, r.stat.byteOffset, STATX_RECORD));
      fsType = r.fsType;
      vc.fast.learn(st, fsType);
    }
    if (this.hidden(st, fsType)) throw new NsviewError(E.ENOENT, 'inside a hidden filesystem');
    // The namespace may have died while the answer was on its way: nothing of it after that.
    vc.live(b);
    return { st, fsType };
  }

  /** The entry for `name` in directory `parent` (a namespace root: parent undefined, name ''). */
  private entry(
    b: NamespaceBinding,
    parent: RealNode | undefined,
    name: string,
    st: StatxView,
    fsType: number,
    top: boolean,
    via: RootVia = 'ino',
  ): Entry {
    const opts = this.vc.opts;
    // fsType is 0 for entries of a listing, which never include mount roots: those are on their
    // directory's filesystem.
    const onPseudo =
      fsType !== 0 ? isPseudoFs(fsType) : parent !== undefined && parent.onPseudo && parent.dev === st.dev;
    const node = this.nodes.lookup(b, parent, name, st.dev, st.ino, st.type, this.isOpaque(st, fsType), onPseudo, via);
    return {
      nodeid: node.id,
      generation: 0n,
      attr: attrFromStatx(st, this.vc.numbers),
      entryTimeoutMs: top ? opts.topTimeoutMs : opts.entryTimeoutMs,
      attrTimeoutMs: top ? opts.topTimeoutMs : opts.attrTimeoutMs,
    };
  }

  // ---- namespace roots (entries of the top directory) ---------------------------------------

  /** The entry of the root of the namespace of binding `b`, stat'ed now, as reached `via`. */
  async rootEntry(b: NamespaceBinding, via: RootVia = 'ino', signal?: AbortSignal): Promise<Entry> {
    const { st, fsType } = await this.statReal(b, '', signal);
    return this.entry(b, undefined, '', st, fsType, true, via);
  }

  /** The entry of a namespace root from attributes a listing of the top directory fetched. */
  listedRootEntry(b: NamespaceBinding, st: StatxView, xattrNames: Uint8Array | undefined): Entry {
    const e = this.entry(b, undefined, '', st, 0, true);
    if (xattrNames) this.xattrNames.set(e.nodeid, xattrNames);
    return e;
  }

  // ---- operations --------------------------------------------------------------------------

  isDirectory(n: RealNode): boolean {
    return (n.type & S_IFMT) === S_IFDIR;
  }

  async lookup(ctx: RequestContext, p: RealNode, name: Buffer): Promise<Entry> {
    assertComponent(name);
    if (p.opaque) throw new NsviewError(E.ENOENT);
    const component = name.toString('latin1');
    // A name under a directory of a dead namespace is ESTALE, not ENOENT: the kernel then walks
    // the whole path again with revalidation, so a path through a cached /<N> that the kernel
    // has not dropped yet reaches whatever namespace has N now instead of failing once.
    const { st, fsType } = await this.statReal(p.binding, childOf(p.path, component), ctx.signal, E.ESTALE);
    return this.entry(p.binding, p, component, st, fsType, false);
  }

  async getattr(ctx: RequestContext, n: RealNode, fh: bigint | undefined): Promise<AttrReply> {
    const vc = this.vc;
    // From an open file (the kernel refreshes attributes before reads): that file, not whatever
    // its path holds now, which may be nothing after a rename.
    const open = fh === undefined ? undefined : await this.files.statOpen(fh, ctx.signal);
    if (open) return { attr: attrFromStatx(open, vc.numbers), attrTimeoutMs: vc.opts.attrTimeoutMs };
    if (vc.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    // A node of a dead namespace is never refreshed from whatever has its number now.
    const { st, fsType } = await this.statReal(n.binding, n.path, ctx.signal);
    // Same path, other file of another type: the kernel re-looks it up after ENOENT.
    if (st.type !== n.type) throw new NsviewError(E.ENOENT);
    if (st.dev !== n.dev || st.ino !== n.ino) {
      // Another file now (a rename over it, or a mount on it): what it shows is decided
      // anew, a pseudo filesystem mounted on a known directory stays hidden.
      this.nodes.setIdentity(n, st.dev, st.ino);
      n.opaque = this.isOpaque(st, fsType);
      if (fsType !== 0) n.onPseudo = isPseudoFs(fsType);
      this.dirs.drop(n.id);
      this.xattrNames.delete(n.id);
    }
    const timeout = n.path.length === 0 ? vc.opts.topTimeoutMs : vc.opts.attrTimeoutMs;
    return { attr: attrFromStatx(st, vc.numbers), attrTimeoutMs: timeout };
  }

  async readlink(ctx: RequestContext, n: RealNode): Promise<Buffer> {
    const vc = this.vc;
    if ((n.type & S_IFMT) !== S_IFLNK) throw new NsviewError(E.EINVAL);
    const signal = ctx.signal;
    const out = await vc.inRoot(
      n.binding,
      (root) =>
        this.links === 'raw'
          ? vc.io.run({ op: 'readlink', root, path: n.path }, n.nsInode, { signal })
          : vc.io.run({ op: 'viewLink', root, path: n.path, links: vc.rewriteView() }, n.nsInode, { signal }),
      undefined,
      signal,
    );
    vc.live(n.binding);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  async open(ctx: RequestContext, n: RealNode, flags: number): Promise<OpenReply> {
    if ((n.type & S_IFMT) !== S_IFREG) throw new NsviewError(E.EACCES);
    if (opensForWriting(flags)) this.refuseRawWrites();
    return this.files.open(n, flags, ctx.signal);
  }

  /** A directory the view shows empty is listed as just '.' and '..'. */
  async readdir(ctx: RequestContext, n: RealNode, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    if (!n.opaque) return this.dirs.read(n, offset, plus, ctx.signal);
    return this.listings.serve(n.id, offset, plus, () => listEntries([], n.id));
  }

  async statfs(ctx: RequestContext, n: RealNode): Promise<StatFs> {
    if (this.vc.fromSelf(ctx)) return EMPTY_STATFS;
    const raw = await this.vc.inRoot(
      n.binding,
      (root) => this.vc.io.run({ op: 'statfs', root, path: n.path }, n.nsInode, { signal: ctx.signal }),
      undefined,
      ctx.signal,
    );
    return decodeStatfs(raw);
  }

  /**
   * Values go to a worker, but a name the file does not have is answered here from its cached
   * name list (no older than the attribute timeout): `ls -l` probes every file for ACLs and
   * security labels, which would otherwise cost a worker trip per probe.
   */
  async getxattr(ctx: RequestContext, n: RealNode, name: Buffer): Promise<Buffer> {
    if (this.vc.fromSelf(ctx)) throw new NsviewError(E.ENODATA);
    if (!mayReadTrusted(ctx) && isTrustedXattr(name)) throw new NsviewError(E.ENODATA);
    const known = this.xattrNames.get(n.id);
    if (known && !hasXattrName(known, name)) throw new NsviewError(E.ENODATA);
    const r = await this.vc.inRoot(
      n.binding,
      (root) => this.vc.io.run({ op: 'getxattr', root, path: n.path, name }, n.nsInode, { signal: ctx.signal }),
      undefined,
      ctx.signal,
    );
    this.vc.live(n.binding);
    this.xattrNames.set(n.id, r.names);
    if (!r.value) throw new NsviewError(E.ENODATA);
    return Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
  }

  async listxattr(ctx: RequestContext, n: RealNode): Promise<Buffer> {
    if (this.vc.fromSelf(ctx)) return Buffer.alloc(0);
    const v = await this.vc.inRoot(
      n.binding,
      (root) => this.vc.io.run({ op: 'listxattr', root, path: n.path }, n.nsInode, { signal: ctx.signal }),
      undefined,
      ctx.signal,
    );
    this.vc.live(n.binding);
    this.xattrNames.set(n.id, v);
    return mayReadTrusted(ctx) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : withoutTrustedXattrs(v);
  }

  /**
   * lsattr's flags: a regular file through the fd of the open the kernel made for the ioctl, a
   * directory opened for it by a worker. Only what the view shows as a file or directory gets
   * here; a directory shown empty (pseudo filesystem, our own mount) has no flags to show.
   */
  async fileAttr(ctx: RequestContext, n: RealNode, fh: bigint, which: FileAttrRequest): Promise<Buffer> {
    if (this.vc.fromSelf(ctx) || n.opaque) throw new NsviewError(E.ENOTTY);
    const type = n.type & S_IFMT;
    if (type === S_IFREG) return this.files.fileAttr(fh, which);
    if (type !== S_IFDIR) throw new NsviewError(E.ENOTTY);
    const { path, dev, ino } = n;
    const r = await this.vc.inRoot(n.binding, (root) =>
      this.vc.io.run({ op: 'dirAttr', root, path, dev, ino, which }, n.nsInode),
    );
    this.vc.live(n.binding);
    return Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  }

  // ---- read-write mode (every call: a checked parent fd + one name, see io/writes.ts) --------

  /** What a worker needs to find `n` again and check it is still the same file. */
  private ref(n: RealNode, root: RootRef): NodeRef {
    return { root, path: n.path, dev: n.dev, ino: n.ino, ownDev: this.vc.ownDev };
  }

  /**
   * Writes go only through a tree that rewrites links. In raw/ a container's absolute link,
   * followed by the host's kernel, names a host path, so a write there could land on the host:
   * raw/ stays read-only whatever --rw says, and every modifying operation in it is EROFS.
   */
  get acceptsWrites(): boolean {
    return this.links !== 'raw';
  }

  private refuseRawWrites(): void {
    if (this.links === 'raw')
      throw new NsviewError(E.EROFS, 'raw/ is read-only: its absolute links lead to host paths');
  }

  /** A directory new entries may go into: no pseudo filesystem or own mount (shown opaque). */
  private writableDir(dir: RealNode, name: Buffer): void {
    this.refuseRawWrites();
    assertComponent(name);
    if (!this.isDirectory(dir)) throw new NsviewError(E.ENOTDIR);
    if (dir.opaque) throw new NsviewError(E.EROFS, "a kernel pseudo filesystem or nsview's own mount");
  }

  /** The entry of a file just made as `name` in `dir` (one kernel reference, as LOOKUP). */
  private made(dir: RealNode, name: Buffer, rec: Uint8Array): Entry {
    this.dirs.drop(dir.id);
    const st = new StatxView(Buffer.from(rec.buffer, rec.byteOffset, STATX_RECORD));
    return this.entry(dir.binding, dir, name.toString('latin1'), st, 0, false);
  }

  async mkdir(ctx: RequestContext, dir: RealNode, name: Buffer, mode: number): Promise<Entry> {
    this.writableDir(dir, name);
    const rec = await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run({ op: 'mkdir', dir: this.ref(dir, root), name, mode, owner: ownerOf(ctx) }, dir.nsInode),
    );
    return this.made(dir, name, rec);
  }

  async mknod(ctx: RequestContext, dir: RealNode, name: Buffer, mode: number, rdev: number): Promise<Entry> {
    this.writableDir(dir, name);
    const rec = await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run({ op: 'mknod', dir: this.ref(dir, root), name, mode, rdev, owner: ownerOf(ctx) }, dir.nsInode),
    );
    return this.made(dir, name, rec);
  }

  async symlink(ctx: RequestContext, dir: RealNode, name: Buffer, target: Buffer): Promise<Entry> {
    this.writableDir(dir, name);
    if (target.length === 0 || target.length > 4095) throw new NsviewError(target.length ? E.ENAMETOOLONG : E.ENOENT);
    const rec = await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run({ op: 'symlink', dir: this.ref(dir, root), name, target, owner: ownerOf(ctx) }, dir.nsInode),
    );
    return this.made(dir, name, rec);
  }

  async create(
    ctx: RequestContext,
    dir: RealNode,
    name: Buffer,
    mode: number,
    flags: number,
  ): Promise<{ entry: Entry; open: OpenReply }> {
    this.writableDir(dir, name);
    const vc = this.vc;
    const unpin = await vc.roots.pin(vc.namespace(dir.binding));
    let r;
    try {
      r = await vc.inRoot(dir.binding, (root) =>
        vc.io.run({ op: 'create', dir: this.ref(dir, root), name, flags, mode, owner: ownerOf(ctx) }, dir.nsInode),
      );
    } catch (err) {
      unpin();
      throw err;
    }
    const entry = this.made(dir, name, r.stat);
    return { entry, open: this.files.adopt(dir.binding, dir.nsInode, entry.nodeid, r.fd, unpin) };
  }

  /** Hard links stay within one namespace: another namespace's directory is EXDEV. */
  async link(ctx: RequestContext, n: RealNode, to: Node, name: Buffer): Promise<Entry> {
    this.refuseRawWrites();
    const dir = this.sameNamespace(n, to);
    this.writableDir(dir, name);
    if (this.isDirectory(n)) throw new NsviewError(E.EPERM);
    const rec = await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run({ op: 'link', node: this.ref(n, root), dir: this.ref(dir, root), name }, dir.nsInode),
    );
    return this.made(dir, name, rec);
  }

  async unlink(ctx: RequestContext, dir: RealNode, name: Buffer, isDir: boolean): Promise<void> {
    this.writableDir(dir, name);
    await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run({ op: 'unlink', dir: this.ref(dir, root), name, rmdir: isDir }, dir.nsInode),
    );
    this.dirs.drop(dir.id);
    this.nodes.removed(dir, name.toString('latin1'));
  }

  async rename(
    ctx: RequestContext,
    dir: RealNode,
    name: Buffer,
    to: Node,
    newName: Buffer,
    flags: number,
  ): Promise<void> {
    this.refuseRawWrites();
    const target = this.sameNamespace(dir, to);
    this.writableDir(dir, name);
    this.writableDir(target, newName);
    await this.vc.inRoot(dir.binding, (root) =>
      this.vc.io.run(
        { op: 'rename', from: this.ref(dir, root), oldName: name, to: this.ref(target, root), newName, flags },
        dir.nsInode,
      ),
    );
    this.dirs.drop(dir.id);
    this.dirs.drop(target.id);
    this.nodes.renamed(
      dir,
      name.toString('latin1'),
      target,
      newName.toString('latin1'),
      (flags & RENAME_EXCHANGE) !== 0,
    );
  }

  async setattr(ctx: RequestContext, n: RealNode, a: SetattrRequest): Promise<AttrReply> {
    this.refuseRawWrites();
    if (n.opaque) throw new NsviewError(E.EROFS);
    const fd = a.valid & FATTR_FH ? await this.files.writeFd(a.fh) : undefined;
    const rec = await this.vc.inRoot(n.binding, (root) =>
      this.vc.io.run({ op: 'setattr', node: this.ref(n, root), attrs: a, fd }, n.nsInode),
    );
    const st = new StatxView(Buffer.from(rec.buffer, rec.byteOffset, STATX_RECORD));
    return { attr: attrFromStatx(st, this.vc.numbers), attrTimeoutMs: this.vc.opts.attrTimeoutMs };
  }

  async setxattr(ctx: RequestContext, n: RealNode, name: Buffer, value: Buffer, flags: number): Promise<void> {
    this.refuseRawWrites();
    if (n.opaque) throw new NsviewError(E.EROFS);
    await this.vc.inRoot(n.binding, (root) =>
      this.vc.io.run({ op: 'setxattr', node: this.ref(n, root), name, value, flags }, n.nsInode),
    );
    this.xattrNames.delete(n.id);
  }

  async removexattr(ctx: RequestContext, n: RealNode, name: Buffer): Promise<void> {
    this.refuseRawWrites();
    if (n.opaque) throw new NsviewError(E.EROFS);
    await this.vc.inRoot(n.binding, (root) =>
      this.vc.io.run({ op: 'removexattr', node: this.ref(n, root), name }, n.nsInode),
    );
    this.xattrNames.delete(n.id);
  }

  /** `to` as a directory of the same namespace as `n`; anything else (another namespace, the view's own) is EXDEV. */
  private sameNamespace(n: RealNode, to: Node): RealNode {
    if (to.kind !== this) throw new NsviewError(E.EXDEV, 'not inside a namespace');
    const dir = to as RealNode;
    if (dir.binding !== n.binding) throw new NsviewError(E.EXDEV, 'another namespace');
    return dir;
  }

  dropped(n: RealNode): void {
    this.nodes.unlink(n);
    this.nodes.forgotten(n);
    this.dirs.drop(n.id);
    this.xattrNames.delete(n.id);
  }

  /**
   * A namespace died: its open files and directories let go of their fds (nothing keeps the dead
   * mount tree), its roots are forgotten (its number, looked up again, gets a new binding and new
   * nodes), and what the kernel caches of its inodes (attributes, pages, listings) is dropped, so
   * a shell whose cwd is inside gets errors rather than cached entries.
   */
  catalogChanged(snap: DiscoverySnapshot, appeared: bigint[], vanished: bigint[], dead: NamespaceBinding[]): void {
    for (const b of dead) {
      this.files.dropBinding(b);
      this.dirs.dropBinding(b);
      this.nodes.dropRoots(b);
      let budget = VANISH_INVALIDATIONS;
      for (const id of this.nodes.idsOf(b)) {
        if (budget-- <= 0) break;
        this.vc.session?.invalidateInode(id);
      }
    }
  }
}

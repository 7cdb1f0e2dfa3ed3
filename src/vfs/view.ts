/**
 * NamespaceView: the filesystem nsview shows, as FUSE operations.
 *
 *   /                     one directory per mount namespace (named by inode) + by-pid/
 *   /by-pid/PID           symlink to ../<inode of PID's mount namespace>
 *   /<inode>/...          that namespace's root filesystem, read-only
 *
 * Everything under /<inode>/ is served by io workers acting on fds from resolveInRoot; this file
 * decides what to ask and how to present the answer, and never blocks.
 */
import { FUSE_ROOT_ID, DT, REPLIED, type Replied } from '../fuse/types.js';
import type {
  AttrReply,
  DirEntry,
  Entry,
  FuseOperations,
  FuseSession,
  OpenReply,
  RequestContext,
  StatFs,
} from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, STATX_RECORD, S_IFMT, S_IFDIR, S_IFREG, dtypeOf } from '../sys/stat.js';
import { assertComponent, childOf } from '../resolve/names.js';
import type { InRootPath } from '../resolve/names.js';
import { isPseudoFs } from '../resolve/pseudo.js';
import type { IoPool } from '../io/pool.js';
import { FastStat } from '../io/fast-stat.js';
import type { DirChunk, IoRequest, LinkView, OpenDirResult, OpenResult, ReadReplyResult, RootRef, StatResult, XattrResult } from '../io/protocol.js';
import { hasXattrName } from '../io/xattr-names.js';
import { ExpiringMap } from './expiring-map.js';
import type { NamespaceAccess } from '../access/namespace-access.js';
import type { DiscoverySnapshot, MountNamespace } from '../discovery/model.js';
import { NodeTable, BYPID_ID } from './nodes.js';
import type { Node, RealNode } from './nodes.js';
import { InodeNumbers } from './inode-numbers.js';
import { attrFromStatx, nextVirtualTime, virtualAttr } from './attrs.js';
import type { VirtualTime } from './attrs.js';
import { NodeFds, positionIn } from './node-fds.js';
import type { DirCursor } from './node-fds.js';

export type SymlinkMode = 'rewrite' | 'raw';

/** Where the view learns which namespaces exist (the daemon's discovery loop). */
export interface NamespaceCatalog {
  current(): DiscoverySnapshot;
  /** A snapshot no older than `maxAgeMs` (runs discovery if needed). */
  fresh(maxAgeMs: number): Promise<DiscoverySnapshot>;
}

export interface ViewOptions {
  symlinks: SymlinkMode;
  pseudo: boolean;
  /** How long the kernel may cache attributes inside namespaces (the staleness bound). */
  attrTimeoutMs: number;
  /**
   * How long the kernel may cache a name -> node binding. Longer than attributes is safe: every
   * open and attribute refresh re-resolves the node's path and re-checks the file's identity.
   */
  entryTimeoutMs: number;
  /** For the top directory, whose entries come and go with namespaces. */
  topTimeoutMs: number;
  /** Called for operations that failed in an unexpected way (verbose logging). */
  trace?: (op: string, detail: string) => void;
}

const W_OK = 2;
const O_ACCMODE = 3;
const O_WRITE_FLAGS = 0o1000 /* O_TRUNC */ | 0o2000 /* O_APPEND */ | 0o100 /* O_CREAT */;
const PLUS_BATCH = 128;
/** Inode invalidations sent for a vanished namespace (the rest expire with --attr-timeout). */
const VANISH_INVALIDATIONS = 4096;
const PLAIN_BATCH = 1024;
const BYPID = Buffer.from('by-pid');

/**
 * An open regular file. At OPEN it gets either an O_PATH fd on the main thread (the RESOLVE_CACHED
 * fast path: pins the very file, opened for reading by a worker at the first READ, so files whose
 * data the page cache holds cost no worker trip) or, where the fast path cannot be taken, its
 * read fd at once from a worker.
 */
interface OpenFile {
  nsInode: number;
  unpin: () => void;
  /** The O_PATH fd taken at OPEN, until a read turns it into `opened`. */
  pathFd?: number;
  /** Resolves to the read fd (rejects with the open's error). */
  opened?: Promise<number>;
}

/** O_PATH fds of released files are closed in a worker, this many at a time (or after a tick). */
const CLOSE_BATCH = 64;

export class NamespaceView implements FuseOperations {
  private readonly nodes = new NodeTable();
  private readonly numbers = new InodeNumbers();
  private readonly cursors = new NodeFds<DirCursor>((c) => this.closeLater(c.fd, c.nsInode, c.unpin));
  private readonly files = new Map<bigint, OpenFile>();
  private nextFh = 1n;
  /** Listings of the view's own directories, computed at offset 0 and served from here after. */
  private readonly listings = new Map<bigint, ListItem[]>();
  private readonly fast = new FastStat();
  private session: FuseSession | undefined;
  private readonly xattrNames: ExpiringMap<bigint, Uint8Array>;
  private topTime: VirtualTime | undefined;
  private pidsTime: VirtualTime | undefined;
  private lastPids: ReadonlyMap<number, number> = new Map();
  /** st_dev of our own mount in statx form (major << 20 | minor); 0 until mounted. */
  private ownDev = 0;

  constructor(
    private readonly catalog: NamespaceCatalog,
    private readonly roots: NamespaceAccess,
    private readonly io: IoPool,
    private readonly opts: ViewOptions,
  ) {
    this.xattrNames = new ExpiringMap(opts.attrTimeoutMs, 8192);
  }

  /** Connect to the mounted session (for invalidations) and learn our own device number. */
  attach(session: FuseSession, ownDev: number): void {
    this.session = session;
    this.ownDev = ownDev;
  }

  /**
   * A discovery pass finished. Vanished namespaces lose their cached entries at once; when the set
   * of namespaces or of pids changed, the top directory or by-pid gets a new mtime and its cached
   * listing is dropped, so `ls` shows the change at once.
   */
  catalogChanged(snap: DiscoverySnapshot, appeared: number[], vanished: number[]): void {
    for (const ino of vanished) {
      this.session?.invalidateEntry(FUSE_ROOT_ID, Buffer.from(String(ino)));
      // A shell whose cwd is inside must not keep listing cached entries: drop what the kernel
      // caches (attributes, pages, directory listings) of every inode of that namespace.
      let budget = VANISH_INVALIDATIONS;
      for (const id of this.nodes.idsOf(ino)) {
        if (budget-- <= 0) break;
        this.session?.invalidateInode(id);
      }
    }
    if (appeared.length > 0 || vanished.length > 0) {
      this.topTime = nextVirtualTime(this.topTime);
      this.session?.invalidateInode(FUSE_ROOT_ID);
    }
    if (!samePids(this.lastPids, snap.pidToNamespace)) {
      this.lastPids = snap.pidToNamespace;
      this.pidsTime = nextVirtualTime(this.pidsTime);
      this.session?.invalidateInode(BYPID_ID);
    }
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** Requests made by our own threads (an io worker stat'ing into our mount) never recurse. */
  private fromSelf(ctx: RequestContext): boolean {
    return ctx.pid === process.pid || this.io.ownTids.has(ctx.pid);
  }

  private node(id: bigint): Node {
    const n = this.nodes.get(id);
    if (!n) throw new NsviewError(E.ESTALE, `unknown node ${id}`);
    return n;
  }

  private realNode(id: bigint): RealNode {
    const n = this.node(id);
    if (n.kind !== 'real') throw new NsviewError(E.EISDIR);
    return n;
  }

  private namespace(nsInode: number): MountNamespace {
    const ns = this.catalog.current().namespaces.get(nsInode);
    if (!ns) throw new NsviewError(E.ENOENT, `namespace ${nsInode} is gone`);
    return ns;
  }

  private inRoot<T>(nsInode: number, fn: (root: RootRef) => Promise<T>): Promise<T> {
    return this.roots.withRoot(this.namespace(nsInode), fn);
  }

  /**
   * Whether a looked-up file may be shown at all. Below the root of a pseudo filesystem (without
   * --pseudo) or of our own mount nothing is: the view shows those roots empty, so a name inside
   * can only have been reached by the container swapping a directory on the way.
   */
  private hidden(st: StatxView, fsType: number): boolean {
    if (st.isDir && st.isMountRoot) return false;
    if (this.ownDev !== 0 && st.dev === this.ownDev) return true;
    return !this.opts.pseudo && isPseudoFs(fsType);
  }

  private isOpaque(st: StatxView, fsType: number): boolean {
    if (!st.isDir) return false;
    if (this.ownDev !== 0 && st.dev === this.ownDev) return true;
    return st.isMountRoot && !this.opts.pseudo && isPseudoFs(fsType);
  }

  /**
   * A worker request that opens something of `n` and so keeps its namespace's way in pinned (a
   * sandbox stays while the fd is open): the caller owns `unpin`, called here only on failure.
   */
  private async openPinned<T>(n: RealNode, req: (root: RootRef) => IoRequest): Promise<{ value: T; unpin: () => void }> {
    const ns = this.namespace(n.nsInode);
    const unpin = await this.roots.pin(ns);
    try {
      const value = await this.roots.withRoot(ns, (root) => this.io.run<T>(req(root), n.nsInode));
      return { value, unpin };
    } catch (err) {
      unpin();
      throw err;
    }
  }

  /** What workers need to size symlinks as rewritten (undefined in raw mode). */
  private linkView(): LinkView | undefined {
    return this.opts.symlinks === 'rewrite' ? { ownDev: this.ownDev, pseudo: this.opts.pseudo } : undefined;
  }

  /** Stat a node path (fast path first); ENOENT for what the view does not show (see hidden). */
  private async statReal(nsInode: number, path: InRootPath): Promise<{ st: StatxView; fsType: number }> {
    const held = this.roots.peek(nsInode);
    const fast = held && this.fast.tryStat(held, path, this.opts.symlinks === 'rewrite');
    let st: StatxView;
    let fsType: number;
    if (fast) {
      st = new StatxView(Buffer.from(fast.stat.buffer));
      fsType = fast.fsType;
    } else {
      const r = await this.inRoot(nsInode, (root) =>
        this.io.run<StatResult>({ op: 'stat', root, path, links: this.linkView() }, nsInode),
      );
      st = new StatxView(Buffer.from(r.stat.buffer, r.stat.byteOffset, STATX_RECORD));
      fsType = r.fsType;
      this.fast.learn(st, fsType);
    }
    if (this.hidden(st, fsType)) throw new NsviewError(E.ENOENT, 'inside a hidden filesystem');
    return { st, fsType };
  }

  /** The entry for `name` in directory `parent` (a namespace root: parent undefined, name ''). */
  private realEntry(nsInode: number, parent: RealNode | undefined, name: string, st: StatxView, fsType: number, top: boolean): Entry {
    const node = this.nodes.lookupReal(nsInode, parent, name, st.dev, st.ino, st.type, this.isOpaque(st, fsType));
    return {
      nodeid: node.id,
      generation: 0n,
      attr: attrFromStatx(st, this.numbers),
      entryTimeoutMs: top ? this.opts.topTimeoutMs : this.opts.entryTimeoutMs,
      attrTimeoutMs: top ? this.opts.topTimeoutMs : this.opts.attrTimeoutMs,
    };
  }

  private virtualEntry(node: Node, kind: 'dir' | 'link', size = 0, mtime?: VirtualTime): Entry {
    this.nodes.count(node);
    return {
      nodeid: node.id,
      generation: 0n,
      attr: virtualAttr(node.id, kind, size, mtime),
      entryTimeoutMs: this.opts.topTimeoutMs,
      attrTimeoutMs: this.opts.topTimeoutMs,
    };
  }

  private static parseNumber(name: Buffer): number | undefined {
    const s = name.toString('latin1');
    return /^[1-9][0-9]{0,15}$/.test(s) ? Number(s) : undefined;
  }

  // ---- operations ------------------------------------------------------------------------

  async lookup(ctx: RequestContext, parent: bigint, name: Buffer): Promise<Entry> {
    if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const p = this.node(parent);
    switch (p.kind) {
      case 'top': {
        if (name.equals(BYPID)) return this.virtualEntry(this.node(BYPID_ID), 'dir', 0, this.pidsTime);
        const ino = NamespaceView.parseNumber(name);
        if (ino === undefined) throw new NsviewError(E.ENOENT);
        let snap = this.catalog.current();
        if (!snap.namespaces.has(ino)) snap = await this.catalog.fresh(100);
        if (!snap.namespaces.has(ino)) throw new NsviewError(E.ENOENT);
        const { st, fsType } = await this.statReal(ino, '');
        return this.realEntry(ino, undefined, '', st, fsType, true);
      }
      case 'bypid': {
        const pid = NamespaceView.parseNumber(name);
        let snap = this.catalog.current();
        if (pid !== undefined && !snap.pidToNamespace.has(pid)) snap = await this.catalog.fresh(100);
        const nsInode = pid === undefined ? undefined : snap.pidToNamespace.get(pid);
        if (pid === undefined || nsInode === undefined) throw new NsviewError(E.ENOENT);
        const link = this.nodes.lookupPidLink(pid, nsInode);
        return {
          nodeid: link.id,
          generation: 0n,
          attr: virtualAttr(link.id, 'link', `../${nsInode}`.length),
          entryTimeoutMs: this.opts.topTimeoutMs,
          attrTimeoutMs: this.opts.topTimeoutMs,
        };
      }
      case 'pidlink':
        throw new NsviewError(E.ENOTDIR);
      case 'real': {
        assertComponent(name);
        if (p.opaque) throw new NsviewError(E.ENOENT);
        const component = name.toString('latin1');
        const { st, fsType } = await this.statReal(p.nsInode, childOf(p.path, component));
        return this.realEntry(p.nsInode, p, component, st, fsType, false);
      }
    }
  }

  forget(nodeid: bigint, nlookup: bigint): void {
    this.nodes.forget(nodeid, nlookup);
    if (!this.nodes.get(nodeid)) {
      this.cursors.drop(nodeid);
      this.xattrNames.delete(nodeid);
    }
  }

  async getattr(ctx: RequestContext, nodeid: bigint, fh: bigint | undefined): Promise<AttrReply> {
    const n = this.node(nodeid);
    // From an open file (the kernel refreshes attributes before reads): that file, not whatever
    // its path holds now, which may be nothing after a rename.
    const f = fh === undefined ? undefined : this.files.get(fh);
    const held = f?.pathFd === undefined ? undefined : this.fast.statHeld(f.pathFd);
    if (held && n.kind === 'real') return { attr: attrFromStatx(held, this.numbers), attrTimeoutMs: this.opts.attrTimeoutMs };
    const fd = f?.opened === undefined ? undefined : await f.opened.catch(() => undefined);
    if (f && fd !== undefined && n.kind === 'real') {
      const rec = await this.io.run<Uint8Array>({ op: 'fstat', fd }, f.nsInode);
      const st = new StatxView(Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength));
      return { attr: attrFromStatx(st, this.numbers), attrTimeoutMs: this.opts.attrTimeoutMs };
    }
    switch (n.kind) {
      case 'top':
        return { attr: virtualAttr(n.id, 'dir', 0, this.topTime), attrTimeoutMs: this.opts.topTimeoutMs };
      case 'bypid':
        return { attr: virtualAttr(n.id, 'dir', 0, this.pidsTime), attrTimeoutMs: this.opts.topTimeoutMs };
      case 'pidlink':
        return { attr: virtualAttr(n.id, 'link', `../${n.nsInode}`.length), attrTimeoutMs: this.opts.topTimeoutMs };
      case 'real': {
        if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
        const { st, fsType } = await this.statReal(n.nsInode, n.path);
        // Same path, other file of another type: the kernel re-looks it up after ENOENT.
        if (st.type !== n.type) throw new NsviewError(E.ENOENT);
        if (st.dev !== n.dev || st.ino !== n.ino) {
          // Another file now (a rename over it, or a mount on it): what it shows is decided
          // anew, a pseudo filesystem mounted on a known directory stays hidden.
          n.dev = st.dev;
          n.ino = st.ino;
          n.opaque = this.isOpaque(st, fsType);
          this.cursors.drop(n.id);
          this.xattrNames.delete(n.id);
        }
        const timeout = n.path.length === 0 ? this.opts.topTimeoutMs : this.opts.attrTimeoutMs;
        return { attr: attrFromStatx(st, this.numbers), attrTimeoutMs: timeout };
      }
    }
  }

  async readlink(ctx: RequestContext, nodeid: bigint): Promise<Buffer> {
    if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (n.kind === 'pidlink') return Buffer.from(`../${n.nsInode}`);
    if (n.kind !== 'real' || (n.type & S_IFMT) !== 0o120000) throw new NsviewError(E.EINVAL);
    const out = await this.inRoot(n.nsInode, (root) =>
      this.opts.symlinks === 'raw'
        ? this.io.run<Uint8Array>({ op: 'readlink', root, path: n.path }, n.nsInode)
        : this.io.run<Uint8Array>(
            { op: 'viewLink', root, path: n.path, ownDev: this.ownDev, pseudo: this.opts.pseudo },
            n.nsInode,
          ),
    );
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  /**
   * Each open gets its own fd: the file as it was at open, whatever the container renames
   * after, as for a process inside. Usually an O_PATH fd taken on this thread without blocking
   * (see OpenFile); else a worker opens the file for reading before OPEN is answered. The page
   * cache is kept across opens (AUTO_INVAL_DATA drops it when a refreshed mtime or size differs,
   * so contents are never staler than --attr-timeout).
   */
  async open(ctx: RequestContext, nodeid: bigint, flags: number): Promise<OpenReply> {
    if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    if ((flags & O_ACCMODE) !== 0 || (flags & O_WRITE_FLAGS) !== 0) throw new NsviewError(E.EROFS);
    const n = this.realNode(nodeid);
    if ((n.type & S_IFMT) !== S_IFREG) throw new NsviewError(E.EACCES);
    const unpin = await this.roots.pin(this.namespace(n.nsInode));
    const f: OpenFile = { nsInode: n.nsInode, unpin };
    const held = this.roots.peek(n.nsInode);
    const fast = held && this.fast.tryOpenPath(held, n.path);
    if (fast && fast.st.isReg && fast.st.dev === n.dev && fast.st.ino === n.ino) {
      f.pathFd = fast.fd;
    } else {
      if (fast) this.closeSoon(fast.fd); // another file there now: the worker decides
      const { path, dev, ino } = n;
      try {
        const r = await this.inRoot(n.nsInode, (root) =>
          this.io.run<OpenResult>({ op: 'openFile', root, path, dev, ino }, n.nsInode),
        );
        f.opened = Promise.resolve(r.fd);
      } catch (err) {
        unpin();
        throw err;
      }
    }
    const fh = this.nextFh++;
    this.files.set(fh, f);
    return { fh, keepCache: true };
  }

  private fileFd(f: OpenFile): Promise<number> {
    if (f.opened === undefined) {
      const pathFd = f.pathFd!;
      f.pathFd = undefined; // the worker closes it
      f.opened = this.io.run<number>({ op: 'reopenHeld', pathFd }, f.nsInode);
      f.opened.catch(() => undefined); // observed by reads and release; never unhandled
    }
    return f.opened;
  }

  /** The worker reads into the reply and writes it to the device itself (see ReplyFrame). */
  async read(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, size: number): Promise<Replied> {
    const f = this.files.get(fh);
    if (!f) throw new NsviewError(E.EBADF);
    const fd = await this.fileFd(f);
    await this.io.run<ReadReplyResult>({ op: 'readReply', fd, offset, size, reply: ctx.delegateReply() }, f.nsInode);
    return REPLIED;
  }

  async release(ctx: RequestContext, nodeid: bigint, fh: bigint): Promise<void> {
    const f = this.files.get(fh);
    if (!f) return;
    this.files.delete(fh);
    // close() may call into the file's filesystem (flush on FUSE, freeing a deleted file), so it
    // runs in a worker, and nobody waits for it (the kernel has already let go of the file).
    if (f.pathFd !== undefined) {
      this.closeSoon(f.pathFd);
      f.unpin();
    } else {
      f.opened!.then((fd) => this.closeLater(fd, f.nsInode, f.unpin), () => f.unpin());
    }
  }

  private readonly toClose: number[] = [];
  private closeTimer: NodeJS.Timeout | undefined;

  /** Close an fd in a worker, batched (one message per CLOSE_BATCH fds or per 10 ms). */
  private closeSoon(fd: number): void {
    this.toClose.push(fd);
    if (this.toClose.length >= CLOSE_BATCH) this.flushCloses();
    else this.closeTimer ??= setTimeout(() => this.flushCloses(), 10);
  }

  private flushCloses(): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    const fds = this.toClose.splice(0);
    if (fds.length === 0) return;
    this.io.run({ op: 'closeAll', fds }, 0).catch((err) => this.opts.trace?.('close', `${fds.length} fds: ${(err as Error).message}`));
  }

  /**
   * ENOSYS for every directory: the kernel then never sends OPENDIR or RELEASEDIR again (it
   * offers FUSE_NO_OPENDIR_SUPPORT since 5.1) and a listing costs only its READDIRPLUS requests;
   * the listing state is kept per node (DirCursors).
   */
  async opendir(ctx: RequestContext, nodeid: bigint): Promise<OpenReply> {
    if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (n.kind === 'pidlink' || (n.kind === 'real' && (n.type & S_IFMT) !== S_IFDIR)) throw new NsviewError(E.ENOTDIR);
    throw new NsviewError(E.ENOSYS, 'zero-message opendir');
  }

  /**
   * The top directory, with each namespace root's attributes where they could be had in one
   * worker trip (see statRootsForListing): then `ls -l` of the top directory costs no lookups.
   */
  private async topEntries(snap: DiscoverySnapshot): Promise<ListItem[]> {
    const roots = await this.roots.statRootsForListing(snap.namespaces.values());
    const items: Array<Omit<ListItem, 'off'>> = [{ name: Buffer.from('by-pid'), ino: BYPID_ID, type: DT.DIR }];
    for (const ino of [...snap.namespaces.keys()].sort((a, b) => a - b)) {
      const root = roots.get(ino);
      const st = root && new StatxView(Buffer.from(root.stat.buffer, root.stat.byteOffset, STATX_RECORD));
      items.push({
        name: Buffer.from(String(ino)),
        ino: st ? this.numbers.of(st.dev, st.ino) : InodeNumbers.virtual(BigInt(ino)),
        type: DT.DIR,
        nsRoot: st && { nsInode: ino, stat: st, xattrNames: root.xattrNames },
      });
    }
    return listEntries(items, FUSE_ROOT_ID);
  }

  private byPidEntries(snap: DiscoverySnapshot): ListItem[] {
    const pids = [...snap.pidToNamespace.keys()].sort((a, b) => a - b);
    return listEntries(
      pids.map((pid) => ({ name: Buffer.from(String(pid)), ino: InodeNumbers.virtual(0x1_0000_0000n + BigInt(pid)), type: DT.LNK })),
      BYPID_ID,
    );
  }

  async readdir(ctx: RequestContext, nodeid: bigint, fh: bigint, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    if (this.fromSelf(ctx)) throw new NsviewError(E.ENOENT);
    const n = this.node(nodeid);
    if (n.kind === 'real' && !n.opaque) return this.readRealDir(n, offset, plus);
    let list = offset === 0n ? undefined : this.listings.get(nodeid);
    if (!list) {
      if (n.kind === 'top') list = await this.topEntries(await this.catalog.fresh(250));
      else if (n.kind === 'bypid') list = this.byPidEntries(await this.catalog.fresh(250));
      else if (n.kind === 'real') list = listEntries([], n.id);
      else throw new NsviewError(E.ENOTDIR);
      this.listings.set(nodeid, list);
    }
    const slice = list.slice(Number(offset), Number(offset) + (plus ? PLUS_BATCH : PLAIN_BATCH));
    if (slice.length === 0) this.listings.delete(nodeid);
    // Entries (and their lookup counts) are made as they are served, never cached.
    return slice.map(({ nsRoot, ...de }) =>
      plus && nsRoot ? { ...de, entry: this.rootEntry(nsRoot) } : de,
    );
  }

  private rootEntry(r: NonNullable<ListItem['nsRoot']>): Entry {
    const e = this.realEntry(r.nsInode, undefined, '', r.stat, 0, true);
    if (r.xattrNames) this.xattrNames.set(e.nodeid, r.xattrNames);
    return e;
  }

  /** The chunk holding the entries after `offset`, reading or reopening as needed. */
  private async dirChunk(n: RealNode, offset: bigint): Promise<{ c: DirCursor; start: number }> {
    let c = offset === 0n ? undefined : this.cursors.get(n.id);
    if (!c) {
      const { value: r, unpin } = await this.openPinned<OpenDirResult>(n, (root) => ({
        op: 'openDirAndRead',
        root,
        path: n.path,
        dev: n.dev,
        ino: n.ino,
        links: this.linkView(),
      }));
      c = { nodeid: n.id, nsInode: n.nsInode, fd: r.fd, chunk: { from: 0n, data: r.first }, lastUsed: performance.now(), unpin };
      this.cursors.put(c);
    }
    let start = positionIn(c.chunk, offset);
    if (start < 0 || (start >= c.chunk.data.offs.length && !c.chunk.data.end)) {
      const from = start < 0 ? offset : c.chunk.data.offs[c.chunk.data.offs.length - 1]!;
      const cur = c;
      const data = await this.inRoot(n.nsInode, (root) =>
        this.io.run<DirChunk>({ op: 'readDir', root, path: n.path, fd: cur.fd, offset: from, links: this.linkView() }, n.nsInode),
      );
      c.chunk = { from, data };
      start = 0;
    }
    return { c, start };
  }

  private async readRealDir(n: RealNode, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    const { c, start } = await this.dirChunk(n, offset);
    const data = c.chunk.data;
    if (start >= data.offs.length) {
      // End served: nothing more to read through this fd.
      this.cursors.drop(n.id);
      return [];
    }
    const out: DirEntry[] = [];
    const limit = Math.min(data.offs.length, start + (plus ? PLUS_BATCH : PLAIN_BATCH));
    const names = Buffer.from(data.names.buffer, data.names.byteOffset, data.names.byteLength);
    const stats = Buffer.from(data.stats.buffer, data.stats.byteOffset, data.stats.byteLength);
    for (let i = start; i < limit; i++) {
      const name = Buffer.from(names.subarray(i === 0 ? 0 : data.nameEnds[i - 1]!, data.nameEnds[i]!));
      const de: DirEntry = {
        name,
        ino: this.numbers.of(n.dev, data.inos[i]!),
        type: data.types[i]!,
        off: data.offs[i]!,
      };
      if (data.statOk[i]) {
        const st = new StatxView(stats, i * STATX_RECORD);
        // Mount roots are left to a normal lookup: it checks for pseudo filesystems and our own
        // mount, and a frozen filesystem there then costs only its own timed request.
        if (!st.isMountRoot) {
          de.ino = this.numbers.of(st.dev, st.ino);
          de.type = dtypeOf(st.mode);
          if (plus) {
            const rec = new StatxView(Buffer.from(stats.subarray(i * STATX_RECORD, (i + 1) * STATX_RECORD)));
            de.entry = this.realEntry(n.nsInode, n, name.toString('latin1'), rec, 0, false);
          }
        }
      }
      out.push(de);
    }
    return out;
  }

  /** Not sent by the kernel once OPENDIR answered ENOSYS; kept for the contract. */
  async releasedir(): Promise<void> {}

  private closeLater(fd: number, nsInode: number, unpin: () => void): void {
    this.io
      .run({ op: 'closeAll', fds: [fd] }, nsInode)
      .catch((err) => this.opts.trace?.('close', `fd ${fd}: ${(err as Error).message}`))
      .finally(unpin);
  }

  async statfs(ctx: RequestContext, nodeid: bigint): Promise<StatFs> {
    const n = this.node(nodeid);
    if (n.kind !== 'real' || this.fromSelf(ctx)) {
      return { blocks: 0n, bfree: 0n, bavail: 0n, files: 0n, ffree: 0n, bsize: 4096, namelen: 255, frsize: 4096 };
    }
    const raw = await this.inRoot(n.nsInode, (root) =>
      this.io.run<Uint8Array>({ op: 'statfs', root, path: n.path }, n.nsInode),
    );
    const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    // struct statfs (64-bit): type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize
    return {
      bsize: Number(b.readBigInt64LE(8)),
      blocks: b.readBigUInt64LE(16),
      bfree: b.readBigUInt64LE(24),
      bavail: b.readBigUInt64LE(32),
      files: b.readBigUInt64LE(40),
      ffree: b.readBigUInt64LE(48),
      namelen: Number(b.readBigInt64LE(64)),
      frsize: Number(b.readBigInt64LE(72)),
    };
  }

  async access(ctx: RequestContext, nodeid: bigint, mask: number): Promise<void> {
    this.node(nodeid);
    if (mask & W_OK) throw new NsviewError(E.EROFS);
  }

  /**
   * Values go to a worker, but a name the file does not have is answered here from its cached
   * name list (no older than the attribute timeout): `ls -l` probes every file for ACLs and
   * security labels, which would otherwise cost a worker trip per probe.
   */
  async getxattr(ctx: RequestContext, nodeid: bigint, name: Buffer): Promise<Buffer> {
    const n = this.node(nodeid);
    if (n.kind !== 'real' || this.fromSelf(ctx)) throw new NsviewError(E.ENODATA);
    const known = this.xattrNames.get(nodeid);
    if (known && !hasXattrName(known, name)) throw new NsviewError(E.ENODATA);
    const r = await this.inRoot(n.nsInode, (root) =>
      this.io.run<XattrResult>({ op: 'getxattr', root, path: n.path, name }, n.nsInode),
    );
    this.xattrNames.set(nodeid, r.names);
    if (!r.value) throw new NsviewError(E.ENODATA);
    return Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
  }

  async listxattr(ctx: RequestContext, nodeid: bigint): Promise<Buffer> {
    const n = this.node(nodeid);
    if (n.kind !== 'real' || this.fromSelf(ctx)) return Buffer.alloc(0);
    const v = await this.inRoot(n.nsInode, (root) =>
      this.io.run<Uint8Array>({ op: 'listxattr', root, path: n.path }, n.nsInode),
    );
    this.xattrNames.set(nodeid, v);
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }

  /** Numbers for logs and the soak test. */
  stats(): Record<string, number> {
    return {
      nodes: this.nodes.size,
      xattrLists: this.xattrNames.size,
      openFiles: this.files.size,
      openDirs: this.cursors.size,
      fastHits: this.fast.hits,
      fastMisses: this.fast.misses,
    };
  }
}

function samePids(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const pid of b.keys()) if (!a.has(pid)) return false;
  return true;
}

/** An entry of one of the view's own directories; a namespace root carries its attributes. */
interface ListItem {
  name: Buffer;
  ino: bigint;
  type: number;
  off: bigint;
  nsRoot?: { nsInode: number; stat: StatxView; xattrNames?: Uint8Array };
}

/** '.', '..' and the given entries, with offsets 1..n (the list is the whole directory). */
function listEntries(entries: Array<Omit<ListItem, 'off'>>, self: bigint): ListItem[] {
  const all = [
    { name: Buffer.from('.'), ino: self, type: DT.DIR },
    { name: Buffer.from('..'), ino: FUSE_ROOT_ID, type: DT.DIR },
    ...entries,
  ];
  return all.map((e, i) => ({ ...e, off: BigInt(i + 1) }));
}

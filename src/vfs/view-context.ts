/**
 * What every kind of node of the view shares: the view's options, where namespaces are listed
 * and reached, the io workers, the node table and inode numbers, and the mounted session (for
 * invalidations). One ViewContext per view, handed to each kind when the view builds it.
 */
import type { Entry, FuseSession, RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import type { IoPool } from '../io/pool.js';
import { FastStat } from '../io/fast-stat.js';
import type { RootRef } from '../access/root-ref.js';
import type { LinkView } from '../resolve/symlink-view.js';
import type { NamespaceAccess } from '../access/namespace-access.js';
import type { DiscoverySnapshot, MountNamespace } from '../discovery/model.js';
import { NodeTable } from './nodes.js';
import type { Node } from './node-kind.js';
import { InodeNumbers } from './inode-numbers.js';
import { virtualAttr } from './attrs.js';
import type { VirtualTime } from './attrs.js';

export type SymlinkMode = 'rewrite' | 'raw';

/** Where the view learns which namespaces exist (the daemon's discovery loop). */
export interface NamespaceCatalog {
  current(): DiscoverySnapshot;
  /** A snapshot no older than `maxAgeMs` (runs discovery if needed). */
  fresh(maxAgeMs: number): Promise<DiscoverySnapshot>;
  /** The namespace with this id as last seen (a pass or a direct lookup), alive or not. */
  namespace(id: bigint): MountNamespace | undefined;
  /** The namespace with this inode number now, looked up directly if no pass saw it yet. */
  byInode(inode: number): MountNamespace | undefined;
  /** The namespace with this kernel id, if it lives. */
  byId(id: bigint): MountNamespace | undefined;
  /** False once namespace `id` is known dead (never blocks). */
  lives(id: bigint): boolean;
}

/**
 * One namespace as the view shows it: every node, open file and open directory of a namespace
 * directory is bound to one, for its whole life. Once the namespace died the binding is dead for
 * good: whatever namespace gets the number after has another binding (and other node ids), so
 * nothing held from the dead one ever reaches the new one.
 */
export interface NamespaceBinding {
  readonly id: bigint;
  readonly inode: number;
  alive: boolean;
  /** performance.now() of the last liveness check with the kernel. */
  checkedAt: number;
}

/**
 * How long a binding is taken as alive without asking the kernel again (a listmount by id, about
 * 1.5 us). 0: every operation asks. A held root of a dead namespace still shows its detached
 * tree, and the kernel may keep walking a cached dentry of its root: with any delay here a `stat`
 * of `/<inode>` could answer from the dead namespace after the number went to a new one, and the
 * next name below it then fail. The kernel frees a namespace, and so says it is dead, before it
 * can hand its number to another.
 */
const LIVENESS_VALID_MS = 0;

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
  /**
   * Read-write mode: modifying operations reach the files inside namespaces (never pseudo
   * filesystems, never the view's own directories). Off: every one answers EROFS.
   */
  readWrite?: boolean;
  /** Called for operations that failed in an unexpected way (verbose logging). */
  trace?: (op: string, detail: string) => void;
}

export class ViewContext {
  readonly nodes = new NodeTable();
  readonly numbers = new InodeNumbers();
  readonly fast = new FastStat();
  session: FuseSession | undefined;
  /** st_dev of our own mount in statx form (major << 20 | minor); 0 until mounted. */
  ownDev = 0;

  constructor(
    readonly catalog: NamespaceCatalog,
    readonly roots: NamespaceAccess,
    readonly io: IoPool,
    readonly opts: ViewOptions,
  ) {}

  /** Requests made by our own threads (an io worker stat'ing into our mount) never recurse. */
  fromSelf(ctx: RequestContext): boolean {
    return ctx.pid === process.pid || this.io.ownTids.has(ctx.pid);
  }

  /** Live bindings by namespace id (a dead one is taken out as it dies). */
  readonly bindings = new Map<bigint, NamespaceBinding>();

  /** The binding of namespace `ns`, made on first use. */
  binding(ns: MountNamespace): NamespaceBinding {
    let b = this.bindings.get(ns.id);
    if (!b) this.bindings.set(ns.id, (b = { id: ns.id, inode: ns.inode, alive: true, checkedAt: performance.now() }));
    return b;
  }

  /**
   * The namespace of binding `b`, by its id, never by its number. `errno` when it died: ENOENT
   * for names and attributes (the kernel drops the dentry), ESTALE for open files and directories.
   */
  namespace(b: NamespaceBinding, errno: number = E.ENOENT): MountNamespace {
    this.live(b, errno);
    const ns = this.catalog.namespace(b.id) ?? this.catalog.byId(b.id);
    if (!ns) throw new NsviewError(errno, `namespace ${b.inode} (id ${b.id}) is gone`);
    return ns;
  }

  /**
   * The bindings of namespaces that died, among those the last pass did not see (and `also`):
   * each is marked dead and taken out, so its number, looked up again, binds anew.
   */
  collectDead(snap: DiscoverySnapshot, also: Iterable<bigint> = [], onlyAlso = false): NamespaceBinding[] {
    const dead: NamespaceBinding[] = [];
    const suspects = new Set<bigint>(also);
    if (!onlyAlso) for (const id of this.bindings.keys()) if (!snap.namespaces.has(id)) suspects.add(id);
    for (const id of suspects) {
      const b = this.bindings.get(id);
      if (!b || this.catalog.lives(id)) continue;
      b.alive = false;
      this.bindings.delete(id);
      dead.push(b);
    }
    return dead;
  }

  /** Told when live() finds a namespace dead (the view then lets go of everything of it). */
  onDeath: (b: NamespaceBinding) => void = () => {};

  /** Throws `errno` when binding `b` is dead, asking the kernel if the last answer is old. */
  live(b: NamespaceBinding, errno: number = E.ENOENT): void {
    if (b.alive) {
      const now = performance.now();
      if (LIVENESS_VALID_MS > 0 && now - b.checkedAt < LIVENESS_VALID_MS) return;
      b.checkedAt = now;
      if (this.catalog.lives(b.id)) return;
      b.alive = false;
      if (this.bindings.get(b.id) === b) this.bindings.delete(b.id);
      this.onDeath(b);
    }
    throw new NsviewError(errno, `namespace ${b.inode} (id ${b.id}) is gone`);
  }

  /** `signal`: the request's, so an interrupted client stops waiting for a way in as well. */
  inRoot<T>(
    b: NamespaceBinding,
    fn: (root: RootRef) => Promise<T>,
    errno: number = E.ENOENT,
    signal?: AbortSignal,
  ): Promise<T> {
    return this.roots.withRoot(
      this.namespace(b, errno),
      async (root) => {
        // Checked again with the root in hand: the binding may have died while we waited for it.
        this.live(b, errno);
        return fn(root);
      },
      signal,
    );
  }

  /**
   * Is `dev` an nsview mount: ours, or another daemon's that discovery saw in some namespace's
   * mountinfo? Two views must never walk into each other: each would answer the other's
   * requests with requests of its own (a `find` that never ends, sandboxes started for the
   * other's namespaces, timeouts), so both are shown as empty directories.
   */
  isViewDev(dev: number): boolean {
    if (this.ownDev !== 0 && dev === this.ownDev) return true;
    return this.catalog.current().viewDevs?.includes(dev) ?? false;
  }

  /** What a symlink rewrite needs to know of the view (for the io workers). */
  rewriteView(): LinkView {
    const others = this.catalog.current().viewDevs?.filter((d) => d !== this.ownDev);
    return {
      ownDev: this.ownDev,
      pseudo: this.opts.pseudo,
      ...(others && others.length > 0 ? { viewDevs: others } : {}),
    };
  }

  /** What workers need to size symlinks as a tree of `mode` shows them (undefined for raw links). */
  linkView(mode: SymlinkMode): LinkView | undefined {
    return mode === 'rewrite' ? this.rewriteView() : undefined;
  }

  /** The entry of one of the view's own nodes, counted as one more kernel reference. */
  virtualEntry(
    node: Node,
    kind: 'dir' | 'link',
    size = 0,
    mtime?: VirtualTime,
    timeoutMs = this.opts.topTimeoutMs,
  ): Entry {
    node.nlookup++;
    return {
      nodeid: node.id,
      generation: 0n,
      attr: virtualAttr(node.id, kind, size, mtime),
      entryTimeoutMs: timeoutMs,
      attrTimeoutMs: timeoutMs,
    };
  }
}

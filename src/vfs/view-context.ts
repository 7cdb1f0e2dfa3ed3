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

  namespace(nsInode: number): MountNamespace {
    const ns = this.catalog.current().namespaces.get(nsInode);
    if (!ns) throw new NsviewError(E.ENOENT, `namespace ${nsInode} is gone`);
    return ns;
  }

  inRoot<T>(nsInode: number, fn: (root: RootRef) => Promise<T>): Promise<T> {
    return this.roots.withRoot(this.namespace(nsInode), fn);
  }

  /** What workers need to size symlinks as rewritten (undefined in raw mode). */
  linkView(): LinkView | undefined {
    return this.opts.symlinks === 'rewrite' ? { ownDev: this.ownDev, pseudo: this.opts.pseudo } : undefined;
  }

  /** The entry of one of the view's own nodes, counted as one more kernel reference. */
  virtualEntry(node: Node, kind: 'dir' | 'link', size = 0, mtime?: VirtualTime): Entry {
    node.nlookup++;
    return {
      nodeid: node.id,
      generation: 0n,
      attr: virtualAttr(node.id, kind, size, mtime),
      entryTimeoutMs: this.opts.topTimeoutMs,
      attrTimeoutMs: this.opts.topTimeoutMs,
    };
  }
}

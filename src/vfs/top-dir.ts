/**
 * The top directory: one directory per mount namespace, named by its inode, next to the view's
 * fixed directories (by-pid/, ...). A namespace's directory is the root of its tree (real-tree.ts).
 * Its mtime moves whenever namespaces appear or vanish, so the kernel rereads a cached listing.
 */
import { FUSE_ROOT_ID, DT, type AttrReply, type DirEntry, type Entry, type RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import { StatxView, STATX_RECORD } from '../sys/stat.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { CatalogListener, FixedDir, Node, NodeKind } from './node-kind.js';
import type { NamespaceBinding, ViewContext } from './view-context.js';
import type { RealTree } from './real-tree.js';
import { InodeNumbers } from './inode-numbers.js';
import { nextVirtualTime, virtualAttr, type VirtualTime } from './attrs.js';
import { listEntries, parseNumberName, type ListItem, type Listings } from './listing.js';

export class TopDir implements NodeKind<Node>, CatalogListener {
  readonly permanent = true;
  readonly node: Node;
  protected mtime: VirtualTime | undefined;

  /** `id`: FUSE_ROOT_ID for the top directory; another fixed id for a list of namespaces elsewhere (raw/). */
  constructor(
    protected readonly vc: ViewContext,
    private readonly tree: RealTree,
    private readonly fixed: readonly FixedDir[],
    private readonly listings: Listings,
    id = FUSE_ROOT_ID,
  ) {
    this.node = { id, kind: this, nlookup: 1 };
    vc.nodes.addFixed(this.node);
  }

  isDirectory(): boolean {
    return true;
  }

  async getattr(ctx: RequestContext, n: Node): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'dir', 0, this.mtime), attrTimeoutMs: this.vc.opts.topTimeoutMs };
  }

  async lookup(ctx: RequestContext, dir: Node, name: Buffer): Promise<Entry> {
    for (const f of this.fixed) if (name.equals(f.name)) return f.entry();
    const ino = parseNumberName(name);
    if (ino === undefined) throw new NsviewError(E.ENOENT);
    // Whatever namespace has the number now (as lsns shows it), asked of the kernel directly when
    // the last pass did not see it: a namespace that exists is never ENOENT for want of a pass.
    const ns = this.vc.catalog.byInode(ino);
    if (!ns) throw new NsviewError(E.ENOENT);
    return this.tree.rootEntry(this.vc.binding(ns), 'ino', ctx.signal);
  }

  async readdir(ctx: RequestContext, dir: Node, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    return this.listings.serve(dir.id, offset, plus, async () => this.entries(await this.vc.catalog.fresh(250)));
  }

  /**
   * The top directory, with each namespace root's attributes where they could be had in one
   * worker trip (see statRootsForListing): then `ls -l` of the top directory costs no lookups.
   */
  private async entries(snap: DiscoverySnapshot): Promise<ListItem[]> {
    const roots = await this.vc.roots.statRootsForListing(snap.namespaces.values());
    const items: Array<Omit<ListItem, 'off'>> = this.fixed.map((f) => ({ name: f.name, ino: f.node.id, type: DT.DIR }));
    for (const ns of [...snap.namespaces.values()].sort((a, b) => a.inode - b.inode)) {
      const root = roots.get(ns.id);
      const st = root && new StatxView(Buffer.from(root.stat.buffer, root.stat.byteOffset, STATX_RECORD));
      const xattrNames = root?.xattrNames;
      items.push({
        name: Buffer.from(String(ns.inode)),
        ino: st ? this.vc.numbers.of(st.dev, st.ino) : InodeNumbers.virtual(BigInt(ns.inode)),
        type: DT.DIR,
        // A namespace that died since the listing was computed gets no entry (the kernel then
        // looks the name up, and finds whichever namespace has the number by then).
        entry:
          st &&
          (() =>
            this.vc.bindings.get(ns.id)?.alive === false
              ? undefined
              : this.tree.listedRootEntry(this.vc.binding(ns), st, xattrNames)),
      });
    }
    return listEntries(items, this.node.id);
  }

  /**
   * Vanished namespaces lose their cached entries at once; when the set of namespaces changed,
   * the top directory gets a new mtime so `ls` shows the change at once.
   */
  catalogChanged(snap: DiscoverySnapshot, appeared: bigint[], vanished: bigint[], dead: NamespaceBinding[]): void {
    for (const b of dead) this.vc.session?.invalidateEntry(this.node.id, Buffer.from(String(b.inode)));
    if (appeared.length > 0 || vanished.length > 0) {
      this.mtime = nextVirtualTime(this.mtime);
      this.vc.session?.invalidateInode(this.node.id);
    }
  }
}

/**
 * by-id/: a namespace by the kernel's never-reused id, `by-id/<id>/...`, for scripts and backups
 * that must not be redirected: `/<inode>` names whatever namespace has that number now, and the
 * kernel hands a dead namespace's number to the next new one at once; an id names one namespace
 * for the life of the system, and once that namespace died `by-id/<id>` is ENOENT for good.
 *
 * Lookup only: the directory lists nothing (`find` or `grep -r` over the mount would otherwise
 * walk every namespace twice); `nsview list --json` gives the ids. Each namespace root reached
 * here is its own node, apart from `/<inode>`'s (see RealNodes), bound to the same namespace.
 */
import { type AttrReply, type DirEntry, type Entry, type RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { CatalogListener, FixedDir, Node, NodeKind } from './node-kind.js';
import type { NamespaceBinding, ViewContext } from './view-context.js';
import type { RealTree } from './real-tree.js';
import { virtualAttr } from './attrs.js';
import { listEntries, type Listings } from './listing.js';

export const BYID_ID = 3n;

const MAX_U64 = (1n << 64n) - 1n;

/** A namespace id as the view writes it (decimal, no sign, no leading zero), else undefined. */
function parseIdName(name: Buffer): bigint | undefined {
  const s = name.toString('latin1');
  if (!/^[1-9][0-9]{0,19}$/.test(s)) return undefined;
  const id = BigInt(s);
  return id <= MAX_U64 ? id : undefined;
}

export class ByIdDir implements NodeKind<Node>, FixedDir, CatalogListener {
  readonly permanent = true;
  readonly name = Buffer.from('by-id');
  readonly node: Node = { id: BYID_ID, kind: this, nlookup: 1 };

  constructor(
    private readonly vc: ViewContext,
    private readonly tree: RealTree,
    private readonly listings: Listings,
  ) {
    vc.nodes.addFixed(this.node);
  }

  entry(): Entry {
    return this.vc.virtualEntry(this.node, 'dir');
  }

  isDirectory(): boolean {
    return true;
  }

  async getattr(ctx: RequestContext, n: Node): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'dir'), attrTimeoutMs: this.vc.opts.topTimeoutMs };
  }

  async lookup(ctx: RequestContext, dir: Node, name: Buffer): Promise<Entry> {
    const id = parseIdName(name);
    const ns = id === undefined ? undefined : this.vc.catalog.byId(id);
    // Only kernel ids: a key the daemon made from a number (kernels without ids) names nothing.
    if (!ns || ns.idSource !== 'kernel') throw new NsviewError(E.ENOENT);
    return this.tree.rootEntry(this.vc.binding(ns), 'id', ctx.signal);
  }

  async readdir(ctx: RequestContext, dir: Node, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    return this.listings.serve(dir.id, offset, plus, () => listEntries([], BYID_ID));
  }

  /** A dead namespace's name here goes from the kernel's cache at once. */
  catalogChanged(snap: DiscoverySnapshot, appeared: bigint[], vanished: bigint[], dead: NamespaceBinding[]): void {
    for (const b of dead) this.vc.session?.invalidateEntry(BYID_ID, Buffer.from(String(b.id)));
  }
}

/**
 * by-pid/: one link per process discovery saw (see pid-link.ts), listed in pid order. Its mtime
 * moves whenever the set of pids changes, so the kernel rereads a cached listing.
 */
import { DT, type AttrReply, type DirEntry, type Entry, type RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { CatalogListener, FixedDir, Node, NodeKind } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import type { PidLinks } from './pid-link.js';
import { InodeNumbers } from './inode-numbers.js';
import { nextVirtualTime, virtualAttr, type VirtualTime } from './attrs.js';
import { listEntries, parseNumberName, type Listings } from './listing.js';
import { processNamespaceNow } from './process-namespace.js';

export const BYPID_ID = 2n;

export class ByPidDir implements NodeKind<Node>, FixedDir, CatalogListener {
  readonly permanent = true;
  readonly name = Buffer.from('by-pid');
  readonly node: Node = { id: BYPID_ID, kind: this, nlookup: 1 };
  private mtime: VirtualTime | undefined;
  private lastPids: ReadonlyMap<number, number> = new Map();

  constructor(
    private readonly vc: ViewContext,
    private readonly links: PidLinks,
    private readonly listings: Listings,
  ) {
    vc.nodes.addFixed(this.node);
  }

  entry(): Entry {
    return this.vc.virtualEntry(this.node, 'dir', 0, this.mtime);
  }

  isDirectory(): boolean {
    return true;
  }

  async getattr(ctx: RequestContext, n: Node): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'dir', 0, this.mtime), attrTimeoutMs: this.vc.opts.topTimeoutMs };
  }

  /**
   * The process is asked now, not the last pass: an exited process is ENOENT at once, and a pid
   * reused by a process in another namespace leads to that one (what by-pid/PID means).
   */
  async lookup(ctx: RequestContext, dir: Node, name: Buffer): Promise<Entry> {
    const pid = parseNumberName(name);
    const nsInode = pid === undefined ? undefined : processNamespaceNow(pid);
    if (pid === undefined || nsInode === undefined) throw new NsviewError(E.ENOENT);
    return this.links.entry(pid, nsInode);
  }

  async readdir(ctx: RequestContext, dir: Node, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    return this.listings.serve(dir.id, offset, plus, async () => {
      const snap = await this.vc.catalog.fresh(250);
      const pids = [...snap.pidToNamespace.keys()].sort((a, b) => a - b);
      return listEntries(
        pids.map((pid) => ({
          name: Buffer.from(String(pid)),
          ino: InodeNumbers.virtual(0x1_0000_0000n + BigInt(pid)),
          type: DT.LNK,
        })),
        BYPID_ID,
      );
    });
  }

  /**
   * Links follow their pids (see PidLinks.retarget); when the set of pids changed, by-pid gets a
   * new mtime so `ls` shows the change at once.
   */
  catalogChanged(snap: DiscoverySnapshot): void {
    this.links.retarget(snap.pidToNamespace, BYPID_ID);
    if (samePids(this.lastPids, snap.pidToNamespace)) return;
    this.lastPids = snap.pidToNamespace;
    this.mtime = nextVirtualTime(this.mtime);
    this.vc.session?.invalidateInode(BYPID_ID);
  }
}

function samePids(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const pid of b.keys()) if (!a.has(pid)) return false;
  return true;
}

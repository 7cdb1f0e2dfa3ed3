/**
 * The links in by-pid/: by-pid/PID -> ../<inode of PID's mount namespace>. One node per pid the
 * kernel holds; its target follows the pid into whatever namespace discovery last saw it in.
 */
import type { AttrReply, Entry, RequestContext } from '../fuse/types.js';
import type { Node, NodeKind } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import { virtualAttr } from './attrs.js';

export interface PidLinkNode extends Node {
  readonly pid: number;
  nsInode: number;
}

function target(nsInode: number): string {
  return `../${nsInode}`;
}

export class PidLinks implements NodeKind<PidLinkNode> {
  readonly permanent = false;
  private readonly byPid = new Map<number, PidLinkNode>();

  constructor(private readonly vc: ViewContext) {}

  /** The entry of the link for `pid`, now pointing at namespace `nsInode` (one more reference). */
  entry(pid: number, nsInode: number): Entry {
    let node = this.byPid.get(pid);
    if (!node) {
      const num = this.vc.nodes.newId();
      node = { id: BigInt(num), kind: this, pid, nsInode, nlookup: 0 };
      this.byPid.set(pid, node);
      this.vc.nodes.add(node);
    }
    node.nsInode = nsInode;
    return this.vc.virtualEntry(node, 'link', target(nsInode).length);
  }

  isDirectory(): boolean {
    return false;
  }

  async getattr(ctx: RequestContext, n: PidLinkNode): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'link', target(n.nsInode).length), attrTimeoutMs: this.vc.opts.topTimeoutMs };
  }

  async readlink(ctx: RequestContext, n: PidLinkNode): Promise<Buffer> {
    return Buffer.from(target(n.nsInode));
  }

  dropped(n: PidLinkNode): void {
    if (this.byPid.get(n.pid) === n) this.byPid.delete(n.pid);
  }
}

/**
 * The links under by-container/ and by-pod/: a container's name -> `../`×depth + its namespace's
 * directory (see namespaceLinkTarget). A node's target never changes: a name that comes to mean
 * another namespace (a container recreated under the same name) gets a new node, so nothing the
 * kernel cached for the old binding, its target included, can lead to the new one or back.
 * readlink re-checks that the container still lives in that namespace: a name never leads into
 * a namespace that died, even while the kernel still holds the old entry.
 */
import type { AttrReply, Entry, RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import type { Node, NodeKind } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import type { ContainerNameSource } from './container-names.js';
import { namespaceLinkTarget } from './container-names.js';
import { virtualAttr } from './attrs.js';

export interface NameLinkNode extends Node {
  readonly key: string;
  readonly nsInode: number;
  readonly target: string;
}

export class NameLinks implements NodeKind<NameLinkNode> {
  readonly permanent = false;
  private readonly byKey = new Map<string, NameLinkNode>();

  constructor(
    private readonly vc: ViewContext,
    private readonly names: ContainerNameSource,
    /** Entry and attribute timeout of names: they follow containers, which come and go. */
    private readonly timeoutMs: number,
  ) {}

  /** The entry for `name` in directory `dirKey` (`depth` below the top) leading to `nsInode`. */
  entry(dirKey: string, depth: number, name: string, nsInode: number): Entry {
    const key = `${dirKey}\0${name}\0${nsInode}`;
    let node = this.byKey.get(key);
    if (!node) {
      node = {
        id: BigInt(this.vc.nodes.newId()),
        kind: this,
        key,
        nsInode,
        target: namespaceLinkTarget(depth, nsInode),
        nlookup: 0,
      };
      this.byKey.set(key, node);
      this.vc.nodes.add(node);
    }
    node.nlookup++;
    return {
      nodeid: node.id,
      generation: 0n,
      attr: virtualAttr(node.id, 'link', node.target.length),
      entryTimeoutMs: this.timeoutMs,
      attrTimeoutMs: this.timeoutMs,
    };
  }

  isDirectory(): boolean {
    return false;
  }

  async getattr(ctx: RequestContext, n: NameLinkNode): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'link', n.target.length), attrTimeoutMs: this.timeoutMs };
  }

  async readlink(ctx: RequestContext, n: NameLinkNode): Promise<Buffer> {
    if (!this.vc.catalog.current().byInode.has(n.nsInode) || !(await this.names.stillNamed(n.nsInode))) {
      throw new NsviewError(E.ENOENT, `namespace ${n.nsInode} is no longer a named container's`);
    }
    return Buffer.from(n.target);
  }

  dropped(n: NameLinkNode): void {
    if (this.byKey.get(n.key) === n) this.byKey.delete(n.key);
  }

  /** Nodes the kernel holds for `nsInode` (to drop cached link targets when it dies). */
  *nodesOf(nsInode: number): Iterable<NameLinkNode> {
    for (const n of this.byKey.values()) if (n.nsInode === nsInode) yield n;
  }
}

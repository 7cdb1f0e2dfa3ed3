/**
 * The links in by-pid/: by-pid/PID -> ../<inode of PID's mount namespace>. One node per pid the
 * kernel holds; its target is read from the process at every readlink (an exited process gives
 * ENOENT at once), and the kernel may cache neither the entry nor its attributes (nor, in raw
 * mode, where it caches symlink targets, the target: see readlink and retarget), so a link never
 * leads where a pid was a moment ago.
 */
import type { AttrReply, Entry, RequestContext } from '../fuse/types.js';
import type { Node, NodeKind } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import { virtualAttr } from './attrs.js';
import { NsviewError, E } from '../sys/errors.js';
import { processNamespaceNow } from './process-namespace.js';

export interface PidLinkNode extends Node {
  readonly pid: number;
  nsInode: number;
}

/** The namespace of a link whose pid is gone: no directory of the view has this name. */
const GONE = 0;

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
    return this.vc.virtualEntry(node, 'link', target(nsInode).length, undefined, 0);
  }

  isDirectory(): boolean {
    return false;
  }

  async getattr(ctx: RequestContext, n: PidLinkNode): Promise<AttrReply> {
    this.refresh(n);
    return { attr: virtualAttr(n.id, 'link', target(n.nsInode).length), attrTimeoutMs: 0 };
  }

  async readlink(ctx: RequestContext, n: PidLinkNode): Promise<Buffer> {
    this.refresh(n);
    // In raw mode the kernel caches link targets (FUSE_CACHE_SYMLINKS) and would not ask again:
    // drop the cached target right after this answer, so the next readlink asks the process
    // again. After, not before: the page being filled is locked until the answer arrives.
    if (this.vc.opts.symlinks === 'raw') setImmediate(() => this.vc.session?.invalidateInode(n.id));
    return Buffer.from(target(n.nsInode));
  }

  /** The process's namespace now; ENOENT once it exited. */
  private refresh(n: PidLinkNode): void {
    const now = processNamespaceNow(n.pid);
    if (now === undefined) throw new NsviewError(E.ENOENT, `process ${n.pid} is gone`);
    n.nsInode = now;
  }

  /**
   * A discovery pass saw pids move: a process that setns()'d or unshare()'d, or a pid reused by
   * another process. readlink asks the process itself, but with FUSE_CACHE_SYMLINKS (raw mode)
   * the kernel keeps a target in the page cache and never asks again until the inode is
   * invalidated ("../<inode>" keeps its length, so no attribute change drops it either): each
   * link the kernel holds whose pid moved is invalidated here. A pid that is gone also loses its
   * name, so the next lookup answers ENOENT.
   */
  retarget(pidToNamespace: ReadonlyMap<number, number>, byPidDir: bigint): void {
    for (const node of this.byPid.values()) {
      const now = pidToNamespace.get(node.pid) ?? GONE;
      if (now === node.nsInode) continue;
      if (now === GONE) this.vc.session?.invalidateEntry(byPidDir, Buffer.from(String(node.pid)));
      node.nsInode = now;
      this.vc.session?.invalidateInode(node.id);
    }
  }

  dropped(n: PidLinkNode): void {
    if (this.byPid.get(n.pid) === n) this.byPid.delete(n.pid);
  }
}

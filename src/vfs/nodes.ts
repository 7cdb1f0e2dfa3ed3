/**
 * The node table: FUSE node ids the kernel holds, and what each stands for.
 *
 * A real node is (namespace, path inside its root) plus the identity (dev, ino, type) of the file
 * last found there. Paths are built only from names the kernel looked up in directories we
 * listed, so every prefix of a node's path was a directory when it was looked up; operations
 * re-resolve the path with RESOLVE_IN_ROOT and compare the identity, never trusting a path alone.
 * Node ids are never reused while the kernel may still hold them (lookup counting, FORGET).
 */
import { FUSE_ROOT_ID } from '../fuse/types.js';

interface NodeBase {
  readonly id: bigint;
  nlookup: bigint;
}

export interface TopNode extends NodeBase {
  readonly kind: 'top';
}

export interface ByPidNode extends NodeBase {
  readonly kind: 'bypid';
}

export interface PidLinkNode extends NodeBase {
  readonly kind: 'pidlink';
  readonly pid: number;
  nsInode: number;
}

export interface RealNode extends NodeBase {
  readonly kind: 'real';
  readonly nsInode: number;
  /** Path inside the namespace root, components joined by '/'; empty for the root itself. */
  readonly path: Buffer;
  dev: number;
  ino: bigint;
  /** S_IFMT bits of the file last seen at `path`. */
  type: number;
  /** A directory the view shows empty (a pseudo filesystem, or nsview's own mount). */
  opaque: boolean;
}

export type Node = TopNode | ByPidNode | PidLinkNode | RealNode;

export const BYPID_ID = 2n;

export class NodeTable {
  private readonly byId = new Map<bigint, Node>();
  private readonly realByKey = new Map<string, RealNode>();
  private readonly linkByPid = new Map<number, PidLinkNode>();
  private nextId = 16n;

  constructor() {
    this.byId.set(FUSE_ROOT_ID, { id: FUSE_ROOT_ID, kind: 'top', nlookup: 1n });
    this.byId.set(BYPID_ID, { id: BYPID_ID, kind: 'bypid', nlookup: 1n });
  }

  get(id: bigint): Node | undefined {
    return this.byId.get(id);
  }

  private static key(nsInode: number, path: Buffer): string {
    return `${nsInode}/${path.toString('latin1')}`;
  }

  /**
   * The node for (namespace, path) with this identity, counted as one more kernel lookup. A file
   * of another type now at the same path gets a new node id: the kernel must not see an inode
   * change type under it.
   */
  lookupReal(nsInode: number, path: Buffer, dev: number, ino: bigint, type: number, opaque: boolean): RealNode {
    const key = NodeTable.key(nsInode, path);
    let node = this.realByKey.get(key);
    if (node && node.type !== type) {
      this.realByKey.delete(key);
      node = undefined;
    }
    if (!node) {
      node = { id: this.nextId++, kind: 'real', nsInode, path, dev, ino, type, opaque, nlookup: 0n };
      this.realByKey.set(key, node);
      this.byId.set(node.id, node);
    }
    node.dev = dev;
    node.ino = ino;
    node.opaque = opaque;
    node.nlookup++;
    return node;
  }

  lookupPidLink(pid: number, nsInode: number): PidLinkNode {
    let node = this.linkByPid.get(pid);
    if (!node) {
      node = { id: this.nextId++, kind: 'pidlink', pid, nsInode, nlookup: 0n };
      this.linkByPid.set(pid, node);
      this.byId.set(node.id, node);
    }
    node.nsInode = nsInode;
    node.nlookup++;
    return node;
  }

  /** Count a lookup of a node the kernel already knows (top directory children). */
  count(node: Node): void {
    node.nlookup++;
  }

  forget(id: bigint, n: bigint): void {
    const node = this.byId.get(id);
    if (!node || node.kind === 'top' || node.kind === 'bypid') return;
    node.nlookup -= n;
    if (node.nlookup > 0n) return;
    this.byId.delete(id);
    if (node.kind === 'real') {
      const key = NodeTable.key(node.nsInode, node.path);
      if (this.realByKey.get(key) === node) this.realByKey.delete(key);
    } else if (this.linkByPid.get(node.pid) === node) {
      this.linkByPid.delete(node.pid);
    }
  }

  get size(): number {
    return this.byId.size;
  }
}

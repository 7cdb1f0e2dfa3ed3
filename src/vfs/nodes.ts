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
import type { InRootPath } from '../resolve/names.js';

interface NodeBase {
  readonly id: bigint;
  /** Kernel references (a plain number: bigint arithmetic allocates on every lookup). */
  nlookup: number;
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
  /** Path inside the namespace root ('' for the root itself); see InRootPath. */
  readonly path: InRootPath;
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
  /** namespace inode -> in-root path -> node (the path string is the node's own). */
  private readonly realByPath = new Map<number, Map<InRootPath, RealNode>>();
  private readonly linkByPid = new Map<number, PidLinkNode>();
  private nextId = 16n;

  constructor() {
    this.byId.set(FUSE_ROOT_ID, { id: FUSE_ROOT_ID, kind: 'top', nlookup: 1 });
    this.byId.set(BYPID_ID, { id: BYPID_ID, kind: 'bypid', nlookup: 1 });
  }

  get(id: bigint): Node | undefined {
    return this.byId.get(id);
  }

  /**
   * The node for (namespace, path) with this identity, counted as one more kernel lookup. A file
   * of another type now at the same path gets a new node id: the kernel must not see an inode
   * change type under it.
   */
  lookupReal(nsInode: number, path: InRootPath, dev: number, ino: bigint, type: number, opaque: boolean): RealNode {
    let paths = this.realByPath.get(nsInode);
    if (!paths) {
      paths = new Map();
      this.realByPath.set(nsInode, paths);
    }
    let node = paths.get(path);
    if (node && node.type !== type) {
      paths.delete(path);
      node = undefined;
    }
    if (!node) {
      node = { id: this.nextId++, kind: 'real', nsInode, path, dev, ino, type, opaque, nlookup: 0 };
      paths.set(path, node);
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
      node = { id: this.nextId++, kind: 'pidlink', pid, nsInode, nlookup: 0 };
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
    node.nlookup -= Number(n);
    if (node.nlookup > 0) return;
    this.byId.delete(id);
    if (node.kind === 'real') {
      const paths = this.realByPath.get(node.nsInode);
      if (paths?.get(node.path) === node) {
        paths.delete(node.path);
        if (paths.size === 0) this.realByPath.delete(node.nsInode);
      }
    } else if (this.linkByPid.get(node.pid) === node) {
      this.linkByPid.delete(node.pid);
    }
  }

  /** The node ids the kernel holds in one namespace. */
  *idsOf(nsInode: number): Iterable<bigint> {
    for (const n of this.realByPath.get(nsInode)?.values() ?? []) yield n.id;
  }

  get size(): number {
    return this.byId.size;
  }
}

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
import { childOf, type InRootPath } from '../resolve/names.js';

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
  /** The directory node this was looked up in; undefined for a namespace root. */
  readonly parent: RealNode | undefined;
  /** Its name in `parent` (latin1: one char per byte), '' for a namespace root. */
  readonly name: string;
  /** Path inside the namespace root ('' for the root itself); see InRootPath. Built on demand. */
  readonly path: InRootPath;
  dev: number;
  ino: bigint;
  /** S_IFMT bits of the file last seen at `path`. */
  type: number;
  /** A directory the view shows empty (a pseudo filesystem, or nsview's own mount). */
  opaque: boolean;
}

/**
 * A node keeps its parent and its own name, not its full path: full paths were most of the
 * table's memory (a 100,000-entry tree: ~100 bytes a node). The path is joined when an operation
 * needs it, a few concatenations next to a syscall. A node keeps its parent object alive even
 * after the kernel forgot the parent, so a path can always be built.
 */
class RealNodeRecord implements RealNode {
  readonly kind = 'real';
  nlookup = 0;
  /** Children by name, for lookups; only directories that had one get the map. */
  children: Map<string, RealNodeRecord> | undefined = undefined;
  /** Id and inode number as plain numbers where exact: a bigint is a 24-byte heap object. */
  private inoValue: number | bigint;

  constructor(
    readonly num: number,
    readonly nsInode: number,
    readonly parent: RealNodeRecord | undefined,
    readonly name: string,
    public dev: number,
    ino: bigint,
    public type: number,
    public opaque: boolean,
  ) {
    this.inoValue = compact(ino);
  }

  get id(): bigint {
    return BigInt(this.num);
  }

  get ino(): bigint {
    const v = this.inoValue;
    return typeof v === 'bigint' ? v : BigInt(v);
  }

  set ino(v: bigint) {
    this.inoValue = compact(v);
  }

  get path(): InRootPath {
    return this.parent === undefined ? '' : childOf(this.parent.path, this.name);
  }
}

function compact(v: bigint): number | bigint {
  return v <= MAX_EXACT ? Number(v) : v;
}
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

export type Node = TopNode | ByPidNode | PidLinkNode | RealNode;

export const BYPID_ID = 2n;

export class NodeTable {
  /** By id as a number (ids stay far below 2^53): number keys cost no heap object. */
  private readonly byId = new Map<number, Node>();
  /** namespace inode -> its root's node; the rest hang below through `children`. */
  private readonly roots = new Map<number, RealNodeRecord>();
  private readonly linkByPid = new Map<number, PidLinkNode>();
  private nextId = 16;

  constructor() {
    this.byId.set(Number(FUSE_ROOT_ID), { id: FUSE_ROOT_ID, kind: 'top', nlookup: 1 });
    this.byId.set(Number(BYPID_ID), { id: BYPID_ID, kind: 'bypid', nlookup: 1 });
  }

  get(id: bigint): Node | undefined {
    return this.byId.get(Number(id));
  }

  /**
   * The node for (namespace, path) with this identity, counted as one more kernel lookup. A file
   * of another type now at the same path gets a new node id: the kernel must not see an inode
   * change type under it.
   */
  lookupReal(nsInode: number, parent: RealNode | undefined, name: string, dev: number, ino: bigint, type: number, opaque: boolean): RealNode {
    const dir = parent as RealNodeRecord | undefined;
    if (dir !== undefined && dir.nsInode !== nsInode) throw new Error('a node below a root of another namespace');
    let node = dir === undefined ? this.roots.get(nsInode) : dir.children?.get(name);
    if (node && node.type !== type) {
      this.unlink(node);
      node = undefined;
    }
    if (!node) {
      node = new RealNodeRecord(this.nextId++, nsInode, dir, dir === undefined ? '' : name, dev, ino, type, opaque);
      if (dir === undefined) this.roots.set(nsInode, node);
      else (dir.children ??= new Map()).set(node.name, node);
      this.byId.set(node.num, node);
    }
    node.dev = dev;
    node.ino = ino;
    node.opaque = opaque;
    node.nlookup++;
    return node;
  }

  /** Take a node out of its parent's (or the roots') index; it stays in byId until forgotten. */
  private unlink(node: RealNodeRecord): void {
    const dir = node.parent;
    if (dir === undefined) {
      if (this.roots.get(node.nsInode) === node) this.roots.delete(node.nsInode);
    } else if (dir.children?.get(node.name) === node) {
      dir.children.delete(node.name);
      if (dir.children.size === 0) dir.children = undefined;
    }
  }

  lookupPidLink(pid: number, nsInode: number): PidLinkNode {
    let node = this.linkByPid.get(pid);
    if (!node) {
      const num = this.nextId++;
      node = { id: BigInt(num), kind: 'pidlink', pid, nsInode, nlookup: 0 };
      this.linkByPid.set(pid, node);
      this.byId.set(num, node);
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
    const node = this.byId.get(Number(id));
    if (!node || node.kind === 'top' || node.kind === 'bypid') return;
    node.nlookup -= Number(n);
    if (node.nlookup > 0) return;
    this.byId.delete(Number(id));
    if (node.kind === 'real') {
      this.unlink(node as RealNodeRecord);
    } else if (this.linkByPid.get(node.pid) === node) {
      this.linkByPid.delete(node.pid);
    }
  }

  /** The node ids the kernel holds in one namespace (a scan: only when a namespace vanished). */
  *idsOf(nsInode: number): Iterable<bigint> {
    for (const n of this.byId.values()) if (n.kind === 'real' && n.nsInode === nsInode) yield n.id;
  }

  get size(): number {
    return this.byId.size;
  }
}

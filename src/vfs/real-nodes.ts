/**
 * The nodes of the files inside namespaces, and their index by (namespace, parent, name).
 *
 * A real node is (namespace, path inside its root) plus the identity (dev, ino, type) of the file
 * last found there. Paths are built only from names the kernel looked up in directories we
 * listed, so every prefix of a node's path was a directory when it was looked up; operations
 * re-resolve the path with RESOLVE_IN_ROOT and compare the identity, never trusting a path alone.
 */
import { childOf, type InRootPath } from '../resolve/names.js';
import type { Node, NodeKind } from './node-kind.js';
import type { NodeTable } from './nodes.js';

export interface RealNode extends Node {
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
  nlookup = 0;
  /** Children by name, for lookups; only directories that had one get the map. */
  children: Map<string, RealNodeRecord> | undefined = undefined;
  /** Id and inode number as plain numbers where exact: a bigint is a 24-byte heap object. */
  private inoValue: number | bigint;

  constructor(
    readonly kind: NodeKind<RealNode>,
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

function record(n: RealNode): RealNodeRecord {
  if (!(n instanceof RealNodeRecord)) throw new Error('a real node not made by RealNodes');
  return n;
}

export class RealNodes {
  /** namespace inode -> its root's node; the rest hang below through `children`. */
  private readonly roots = new Map<number, RealNodeRecord>();

  constructor(
    private readonly table: NodeTable,
    private readonly kind: NodeKind<RealNode>,
  ) {}

  /**
   * The node for (namespace, path) with this identity, counted as one more kernel lookup. A file
   * of another type now at the same path gets a new node id: the kernel must not see an inode
   * change type under it.
   */
  lookup(nsInode: number, parent: RealNode | undefined, name: string, dev: number, ino: bigint, type: number, opaque: boolean): RealNode {
    const dir = parent === undefined ? undefined : record(parent);
    if (dir !== undefined && dir.nsInode !== nsInode) throw new Error('a node below a root of another namespace');
    let node = dir === undefined ? this.roots.get(nsInode) : dir.children?.get(name);
    if (node && node.type !== type) {
      this.unlink(node);
      node = undefined;
    }
    if (!node) {
      node = new RealNodeRecord(this.kind, this.table.newId(), nsInode, dir, dir === undefined ? '' : name, dev, ino, type, opaque);
      if (dir === undefined) this.roots.set(nsInode, node);
      else (dir.children ??= new Map()).set(node.name, node);
      this.table.add(node);
    }
    node.dev = dev;
    node.ino = ino;
    node.opaque = opaque;
    node.nlookup++;
    return node;
  }

  /** Take a node out of its parent's (or the roots') index; the table drops it when forgotten. */
  unlink(n: RealNode): void {
    const node = record(n);
    const dir = node.parent;
    if (dir === undefined) {
      if (this.roots.get(node.nsInode) === node) this.roots.delete(node.nsInode);
    } else if (dir.children?.get(node.name) === node) {
      dir.children.delete(node.name);
      if (dir.children.size === 0) dir.children = undefined;
    }
  }

  /** The node ids the kernel holds in one namespace (a scan: only when a namespace vanished). */
  *idsOf(nsInode: number): Iterable<bigint> {
    for (const n of this.table.values()) if (n instanceof RealNodeRecord && n.nsInode === nsInode) yield n.id;
  }
}

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
import type { NamespaceBinding } from './view-context.js';

/** How a namespace root was reached: `/<inode>` or `by-id/<id>` (one node each, see RealNodes). */
export type RootVia = 'ino' | 'id';
import type { InodeNumbers } from './inode-numbers.js';

export interface RealNode extends Node {
  /** The one namespace this node belongs to, for its whole life. */
  readonly binding: NamespaceBinding;
  /** Its inode number, for logs and io accounting. */
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
  /**
   * On a pseudo filesystem (proc, sysfs, ...; shown only with --pseudo): its files' sizes are 0 or
   * made up and their contents change at every read, so they are read with direct I/O.
   */
  onPseudo: boolean;
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
    readonly binding: NamespaceBinding,
    /** For a root: how it was reached (its key among the roots). */
    readonly via: RootVia | undefined,
    public parent: RealNodeRecord | undefined,
    public name: string,
    public dev: number,
    ino: bigint,
    public type: number,
    public opaque: boolean,
    public onPseudo: boolean,
  ) {
    this.inoValue = compact(ino);
  }

  get id(): bigint {
    return BigInt(this.num);
  }

  get nsInode(): number {
    return this.binding.inode;
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

function rootKey(b: NamespaceBinding, via: RootVia): string {
  return `${b.id}/${via}`;
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
  /**
   * Namespace roots by rootKey (binding id and how reached); the rest hang below through
   * `children`. Linux keeps one dentry per directory inode, so `/<inode>` and `by-id/<id>` of one
   * namespace are two nodes: one node under two names would make the kernel move one of them.
   */
  private readonly roots = new Map<string, RealNodeRecord>();

  constructor(
    private readonly table: NodeTable,
    private readonly kind: NodeKind<RealNode>,
    private readonly numbers: InodeNumbers,
  ) {}

  /** The file at a node's path is now (dev, ino): its inode number moves with it. */
  setIdentity(n: RealNode, dev: number, ino: bigint): void {
    const node = record(n);
    if (node.dev === dev && node.ino === ino) return;
    this.numbers.release(node.dev, node.ino);
    node.dev = dev;
    node.ino = ino;
    this.numbers.hold(dev, ino);
  }

  /** The kernel forgot the node: its inode number need not stay. */
  forgotten(n: RealNode): void {
    this.numbers.release(n.dev, n.ino);
  }

  /**
   * The node for (namespace, path) with this identity, counted as one more kernel lookup. A file
   * of another type now at the same path gets a new node id: the kernel must not see an inode
   * change type under it.
   */
  lookup(
    binding: NamespaceBinding,
    parent: RealNode | undefined,
    name: string,
    dev: number,
    ino: bigint,
    type: number,
    opaque: boolean,
    onPseudo: boolean,
    via: RootVia = 'ino',
  ): RealNode {
    const dir = parent === undefined ? undefined : record(parent);
    if (dir !== undefined && dir.binding !== binding) throw new Error('a node below a root of another namespace');
    const key = rootKey(binding, via);
    let node = dir === undefined ? this.roots.get(key) : dir.children?.get(name);
    if (node && node.type !== type) {
      this.unlink(node);
      node = undefined;
    }
    if (!node) {
      node = new RealNodeRecord(
        this.kind,
        this.table.newId(),
        binding,
        dir === undefined ? via : undefined,
        dir,
        dir === undefined ? '' : name,
        dev,
        ino,
        type,
        opaque,
        onPseudo,
      );
      if (dir === undefined) this.roots.set(key, node);
      else (dir.children ??= new Map()).set(node.name, node);
      this.table.add(node);
      this.numbers.hold(dev, ino);
    } else {
      this.setIdentity(node, dev, ino);
    }
    node.opaque = opaque;
    node.onPseudo = onPseudo;
    node.nlookup++;
    return node;
  }

  /** Take a node out of its parent's (or the roots') index; the table drops it when forgotten. */
  unlink(n: RealNode): void {
    const node = record(n);
    const dir = node.parent;
    if (dir === undefined) {
      const key = rootKey(node.binding, node.via ?? 'ino');
      if (this.roots.get(key) === node) this.roots.delete(key);
    } else if (dir.children?.get(node.name) === node) {
      dir.children.delete(node.name);
      if (dir.children.size === 0) dir.children = undefined;
    }
  }

  /** The node known as `name` in `dir`, if any. */
  child(dir: RealNode, name: string): RealNode | undefined {
    return record(dir).children?.get(name);
  }

  /** A name removed through the view: its node (if any) leaves the index; open files keep it. */
  removed(dir: RealNode, name: string): void {
    const n = this.child(dir, name);
    if (n) this.unlink(n);
  }

  /**
   * A rename through the view: the kernel goes on naming the moved file by the same node id, so
   * that node now stands for (to, newName); one it replaced there leaves the index. With
   * `exchange`, the two swap places. Nodes below a moved directory follow (paths are built from
   * parents on demand).
   */
  renamed(from: RealNode, oldName: string, to: RealNode, newName: string, exchange: boolean): void {
    const moving = this.child(from, oldName);
    const other = this.child(to, newName);
    if (moving) this.unlink(moving);
    if (other) this.unlink(other);
    if (moving) this.place(record(moving), record(to), newName);
    if (other && exchange) this.place(record(other), record(from), oldName);
  }

  private place(node: RealNodeRecord, dir: RealNodeRecord, name: string): void {
    node.parent = dir;
    node.name = name;
    (dir.children ??= new Map()).set(name, node);
  }

  /**
   * The node ids the kernel holds in one namespace, of this tree only (the view has one per
   * symlink mode); a scan: only when a namespace died.
   */
  *idsOf(binding: NamespaceBinding): Iterable<bigint> {
    for (const n of this.table.values())
      if (n instanceof RealNodeRecord && n.kind === this.kind && n.binding === binding) yield n.id;
  }

  /** Forget the roots of a dead namespace: a later lookup of its number finds another binding. */
  dropRoots(binding: NamespaceBinding): void {
    for (const via of ['ino', 'id'] as const) this.roots.delete(rootKey(binding, via));
  }
}

/**
 * The node table: FUSE node ids the kernel holds, and the node each stands for. Node ids are
 * never reused while the kernel may still hold them (lookup counting, FORGET). What a node is,
 * and how it is found by name, belongs to its kind (node-kind.ts); this table only numbers nodes
 * and counts the kernel's references.
 */
import type { Node } from './node-kind.js';

/** Ids below this are fixed ones of the view's own directories (FUSE_ROOT_ID, by-pid/, ...). */
const FIRST_DYNAMIC_ID = 16;

export class NodeTable {
  /** By id as a number (ids stay far below 2^53): number keys cost no heap object. */
  private readonly byId = new Map<number, Node>();
  private nextId = FIRST_DYNAMIC_ID;

  get(id: bigint): Node | undefined {
    return this.byId.get(Number(id));
  }

  /** A node under a fixed id (the top directory, by-pid/, ...). */
  addFixed(node: Node): void {
    const num = Number(node.id);
    if (num >= FIRST_DYNAMIC_ID || this.byId.has(num)) throw new Error(`fixed node id ${node.id} is not free`);
    this.byId.set(num, node);
  }

  /** A fresh id; the caller builds its node with it and adds it. */
  newId(): number {
    return this.nextId++;
  }

  add(node: Node): void {
    this.byId.set(Number(node.id), node);
  }

  forget(id: bigint, n: bigint): void {
    const node = this.byId.get(Number(id));
    if (!node || node.kind.permanent) return;
    node.nlookup -= Number(n);
    if (node.nlookup > 0) return;
    this.byId.delete(Number(id));
    node.kind.dropped?.(node);
  }

  /** Every node the kernel holds (a scan: for rare events only). */
  values(): Iterable<Node> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }
}

/**
 * by-container/ and by-pod/: containers by the names their engines gave them (container-names.ts
 * says where the names come from), as directories of links (name-link.ts):
 *
 *   by-container/<name>                    -> ../<ns>        names and full ids no two namespaces share
 *   by-container/<engine>/<name or id>     -> ../../<ns>     always, one folder per engine kind
 *   by-pod/<namespace>/<pod>/<container>   -> ../../../<ns>  Kubernetes containers (no sandboxes)
 *
 * Every name is one component already (encodePathComponent); a name is shown only while its
 * namespace is in the current discovery snapshot, and looked up only after the container's init
 * process was re-checked (same PID and start time, still in that namespace). Listings and
 * lookups read memory and procfs only, never an engine. A directory's mtime moves when what it
 * shows changes, and names that went away or moved are dropped from the kernel's cache at once.
 */
import { DT, type AttrReply, type DirEntry, type Entry, type RequestContext } from '../fuse/types.js';
import { NsviewError, E } from '../sys/errors.js';
import { ENGINE_KINDS } from '../engines/model.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import type { CatalogListener, FixedDir, Node, NodeKind } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import type { ContainerNameSource, NameIndex } from './container-names.js';
import { NameLinks } from './name-link.js';
import { InodeNumbers } from './inode-numbers.js';
import { nextVirtualTime, virtualAttr, type VirtualTime } from './attrs.js';
import { listEntries, type ListItem, type Listings } from './listing.js';

export const BYCONTAINER_ID = 10n;
export const BYPOD_ID = 11n;
/** by-container/<engine>: one fixed id per engine kind, after by-pod/. */
const FIRST_ENGINE_DIR_ID = 12n;

const BY_CONTAINER = 'by-container';
const BY_POD = 'by-pod';

interface NameDirNode extends Node {
  /** Components below the top: ['by-container'], ['by-container', 'docker'], ['by-pod', ns, pod]. */
  readonly path: readonly string[];
  readonly key: string;
}

/** What one directory holds: subdirectories and links (name -> namespace inode). */
interface Content {
  dirs: readonly string[];
  links: ReadonlyMap<string, number>;
}

const NO_LINKS: ReadonlyMap<string, number> = new Map();

function keyOf(path: readonly string[]): string {
  // Components never hold NUL (encodePathComponent escapes control characters).
  return path.join('\0');
}

/** The content of the directory at `path` in `index`, or undefined when there is none. */
function contentOf(index: NameIndex, path: readonly string[]): Content | undefined {
  const [top, a, b, more] = path;
  if (more !== undefined) return undefined;
  if (top === BY_CONTAINER) {
    if (a === undefined) return { dirs: ENGINE_KINDS, links: index.byContainer };
    if (b !== undefined || !(ENGINE_KINDS as readonly string[]).includes(a)) return undefined;
    return { dirs: [], links: index.byEngine.get(a as (typeof ENGINE_KINDS)[number]) ?? NO_LINKS };
  }
  if (top === BY_POD) {
    if (a === undefined) return { dirs: [...index.byPod.keys()], links: NO_LINKS };
    const ns = index.byPod.get(a);
    if (!ns) return undefined;
    if (b === undefined) return { dirs: [...ns.keys()], links: NO_LINKS };
    const pod = ns.get(b);
    return pod ? { dirs: [], links: pod } : undefined;
  }
  return undefined;
}

/** Every directory path `index` has. */
function* dirPaths(index: NameIndex): Iterable<string[]> {
  yield [BY_CONTAINER];
  for (const e of ENGINE_KINDS) yield [BY_CONTAINER, e];
  yield [BY_POD];
  for (const [ns, pods] of index.byPod) {
    yield [BY_POD, ns];
    for (const pod of pods.keys()) yield [BY_POD, ns, pod];
  }
}

/** A name as the kernel sent it, if it is exactly a UTF-8 string (index keys are strings). */
function nameString(name: Buffer): string | undefined {
  const s = name.toString('utf8');
  return Buffer.from(s, 'utf8').equals(name) ? s : undefined;
}

/** d_ino of an entry not instantiated by the listing: stable per path, in a range of its own. */
function listedIno(key: string): bigint {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return InodeNumbers.virtual(0x3_0000_0000n + BigInt(h));
}

/** The directories' kind; two instances share one NameTree: the fixed ones and the pod ones. */
class NameDirKind implements NodeKind<NameDirNode> {
  constructor(
    readonly permanent: boolean,
    private readonly tree: NameTree,
  ) {}

  isDirectory(): boolean {
    return true;
  }

  getattr(ctx: RequestContext, n: NameDirNode): Promise<AttrReply> {
    return this.tree.getattr(n);
  }

  lookup(ctx: RequestContext, dir: NameDirNode, name: Buffer): Promise<Entry> {
    return this.tree.lookup(dir, name);
  }

  readdir(ctx: RequestContext, dir: NameDirNode, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    return this.tree.readdir(dir, offset, plus);
  }

  dropped(n: NameDirNode): void {
    this.tree.dropped(n);
  }
}

export class NameTree implements CatalogListener {
  /** by-container/ and by-pod/ for the top directory. */
  readonly fixed: FixedDir[];
  private readonly fixedKind: NameDirKind;
  private readonly podKind: NameDirKind;
  private readonly links: NameLinks;
  /** Directory nodes by path key: the fixed ones always, pod directories while the kernel holds them. */
  private readonly dirs = new Map<string, NameDirNode>();
  private readonly mtimes = new Map<string, VirtualTime>();
  /** What each directory showed last (name -> namespace inode, 0 for a subdirectory). */
  private shown = new Map<string, Map<string, number>>();

  constructor(
    private readonly vc: ViewContext,
    private readonly names: ContainerNameSource,
    private readonly listings: Listings,
    /** Entry and attribute timeout of names and pod directories. */
    private readonly timeoutMs: number,
  ) {
    this.fixedKind = new NameDirKind(true, this);
    this.podKind = new NameDirKind(false, this);
    this.links = new NameLinks(vc, names, timeoutMs);
    const fixedDir = (id: bigint, path: string[]): NameDirNode => {
      const node: NameDirNode = { id, kind: this.fixedKind, nlookup: 1, path, key: keyOf(path) };
      vc.nodes.addFixed(node);
      this.dirs.set(node.key, node);
      return node;
    };
    const top = (id: bigint, name: string): FixedDir => {
      const node = fixedDir(id, [name]);
      return { name: Buffer.from(name), node, entry: () => vc.virtualEntry(node, 'dir', 0, this.mtimes.get(node.key)) };
    };
    this.fixed = [top(BYCONTAINER_ID, BY_CONTAINER), top(BYPOD_ID, BY_POD)];
    ENGINE_KINDS.forEach((e, i) => fixedDir(FIRST_ENGINE_DIR_ID + BigInt(i), [BY_CONTAINER, e]));
  }

  async getattr(n: NameDirNode): Promise<AttrReply> {
    return { attr: virtualAttr(n.id, 'dir', 0, this.mtimes.get(n.key)), attrTimeoutMs: this.timeoutMs };
  }

  async lookup(dir: NameDirNode, raw: Buffer): Promise<Entry> {
    const name = nameString(raw);
    const content = contentOf(this.names.current(), dir.path);
    if (name === undefined || !content) throw new NsviewError(E.ENOENT);
    if (content.dirs.includes(name)) return this.dirEntry([...dir.path, name]);
    const ns = content.links.get(name);
    if (ns === undefined) throw new NsviewError(E.ENOENT);
    let snap = this.vc.catalog.current();
    // A container started just now may be named before discovery's next pass saw its namespace.
    if (!snap.byInode.has(ns)) snap = await this.vc.catalog.fresh(100);
    if (!snap.byInode.has(ns) || !(await this.names.stillNamed(ns))) throw new NsviewError(E.ENOENT);
    return this.links.entry(dir.key, dir.path.length, name, ns);
  }

  async readdir(dir: NameDirNode, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    return this.listings.serve(dir.id, offset, plus, async () => {
      // As the top directory does: a namespace started just now is listed once discovery saw it.
      const alive = (await this.vc.catalog.fresh(250)).byInode;
      const content = contentOf(this.names.current(), dir.path);
      const items: Array<Omit<ListItem, 'off'>> = [];
      for (const d of content?.dirs ?? []) {
        const path = [...dir.path, d];
        items.push({
          name: Buffer.from(d),
          ino: this.dirs.get(keyOf(path))?.id ?? listedIno(keyOf(path)),
          type: DT.DIR,
          entry: () => this.dirEntry(path),
        });
      }
      for (const [name, ns] of [...(content?.links ?? NO_LINKS)].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (!alive.has(ns)) continue;
        items.push({
          name: Buffer.from(name),
          ino: listedIno(`${dir.key}\0${name}`),
          type: DT.LNK,
          entry: () => this.links.entry(dir.key, dir.path.length, name, ns),
        });
      }
      return listEntries(items, dir.id);
    });
  }

  dropped(n: NameDirNode): void {
    if (this.dirs.get(n.key) === n) this.dirs.delete(n.key);
  }

  /** The entry of the directory at `path` (one more kernel reference). */
  private dirEntry(path: string[]): Entry {
    const key = keyOf(path);
    let node = this.dirs.get(key);
    if (!node) {
      node = { id: BigInt(this.vc.nodes.newId()), kind: this.podKind, nlookup: 0, path, key };
      this.dirs.set(key, node);
      this.vc.nodes.add(node);
    }
    node.nlookup++;
    return {
      nodeid: node.id,
      generation: 0n,
      attr: virtualAttr(node.id, 'dir', 0, this.mtimes.get(key)),
      entryTimeoutMs: this.timeoutMs,
      attrTimeoutMs: this.timeoutMs,
    };
  }

  /** The engines' names changed (the daemon recomputed them). */
  namesChanged(): void {
    this.update();
  }

  /** Namespaces came or went: names of vanished ones disappear, names of new ones appear. */
  catalogChanged(snap: DiscoverySnapshot): void {
    this.update(snap);
  }

  /**
   * Compares what every directory shows now with what it showed last: a directory whose content
   * changed gets a new mtime (the kernel rereads its listing), and every name that went away or
   * now leads elsewhere is dropped from the kernel's cache, so the next use looks it up again.
   */
  private update(snap: DiscoverySnapshot = this.vc.catalog.current()): void {
    const index = this.names.current();
    const next = new Map<string, Map<string, number>>();
    for (const path of dirPaths(index)) {
      const content = contentOf(index, path)!;
      const m = new Map<string, number>();
      for (const d of content.dirs) m.set(d, 0);
      for (const [name, ns] of content.links) if (snap.byInode.has(ns)) m.set(name, ns);
      next.set(keyOf(path), m);
    }
    const session = this.vc.session;
    for (const key of new Set([...this.shown.keys(), ...next.keys()])) {
      const before = this.shown.get(key) ?? new Map<string, number>();
      const after = next.get(key) ?? new Map<string, number>();
      let changed = before.size !== after.size;
      const node = this.dirs.get(key);
      for (const [name, ns] of before) {
        if (after.get(name) === ns) continue;
        changed = true;
        if (node) session?.invalidateEntry(node.id, Buffer.from(name));
      }
      if (!changed) continue;
      if (after.size === 0 && !next.has(key)) this.mtimes.delete(key);
      else this.mtimes.set(key, nextVirtualTime(this.mtimes.get(key)));
      if (node) session?.invalidateInode(node.id);
    }
    // A namespace that died: links to it lose whatever target the kernel cached.
    for (const ns of new Set([...this.shown.values()].flatMap((m) => [...m.values()]))) {
      if (ns !== 0 && !snap.byInode.has(ns)) for (const l of this.links.nodesOf(ns)) session?.invalidateInode(l.id);
    }
    this.shown = next;
  }
}

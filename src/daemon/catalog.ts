/**
 * The live list of mount namespaces: discovery rerun every `intervalMs`, and on demand when the
 * view needs something fresher (a name not seen yet, a listing of the top directory). Passes
 * never overlap; concurrent callers share one. Appearances and disappearances are logged and
 * passed on (the view drops vanished directories from the kernel's cache at once).
 */
import { DiscoveryWorker } from '../discovery/index.js';
import { namespaceByInode, type DiscoverySnapshot, type MountNamespace } from '../discovery/model.js';
import {
  forEachMountNamespace,
  isMountNamespaceAlive,
  namespaceIdSupport,
  type MountNamespaceIdentity,
} from '../sys/namespace-id.js';
import type { NamespaceCatalog } from '../vfs/view.js';
import type { Logger } from './log.js';

export interface CatalogHooks {
  /** Thread ids of our own sandbox tasks (never a source of a namespace). */
  ownTids(): Set<number>;
  /**
   * [namespace, tid] of the sandbox threads we hold: the mountinfo of a namespace without a
   * readable process is read through them (no new sandbox just for that).
   */
  sandboxes(): Iterable<[number, number]>;
  /** Ids (MountNamespace.id) that appeared and vanished with this pass. */
  changed(snapshot: DiscoverySnapshot, appeared: bigint[], vanished: bigint[]): void;
}

/** numberKey's bit: keys made from inode numbers on kernels without ids. */
const NUMBER_KEY_BIT = 1n << 63n;

/**
 * The first mount namespace of the kernel's list that `match` accepts, by the nsfs walk (about
 * 10 us a namespace, nothing but nsfs: safe on the main thread). Undefined where the kernel has
 * no walk.
 */
function findMountNamespace(match: (ns: MountNamespaceIdentity) => boolean): MountNamespaceIdentity | undefined {
  if (!namespaceIdSupport().walk) return undefined;
  let found: MountNamespaceIdentity | undefined;
  try {
    forEachMountNamespace((ns) => {
      if (!match(ns)) return false;
      found = { id: ns.id, inode: ns.inode };
      return true;
    });
  } catch {
    return undefined;
  }
  return found;
}

function idText(ns: MountNamespace): string {
  return ns.idSource === 'kernel' ? `, id ${ns.id}` : '';
}

export class DiscoveryCatalog implements NamespaceCatalog {
  private snapshot: DiscoverySnapshot;
  /** Namespaces found by a direct lookup that no pass has seen yet, by id, with when found. */
  private readonly direct = new Map<bigint, MountNamespace>();
  private readonly directSince = new Map<bigint, number>();
  private running: Promise<DiscoverySnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    first: DiscoverySnapshot,
    private readonly worker: DiscoveryWorker,
    private readonly hooks: CatalogHooks,
    private readonly log: Logger,
  ) {
    this.snapshot = first;
  }

  /** Discovery runs in its own thread (see discovery/worker.ts); the first pass is awaited. */
  static async start(hooks: CatalogHooks, log: Logger, intervalMs: number): Promise<DiscoveryCatalog> {
    const worker = new DiscoveryWorker();
    let first: DiscoverySnapshot;
    try {
      first = await worker.pass(hooks.ownTids(), []);
    } catch (err) {
      await worker.stop();
      throw err;
    }
    const c = new DiscoveryCatalog(first, worker, hooks, log);
    log.info(`found ${first.namespaces.size} mount namespaces`);
    c.timer = setInterval(() => void c.fresh(0).catch(() => {}), intervalMs);
    c.timer.unref();
    return c;
  }

  current(): DiscoverySnapshot {
    return this.snapshot;
  }

  /** The namespace with this id, as the last pass or a direct lookup found it. */
  namespace(id: bigint): MountNamespace | undefined {
    return this.snapshot.namespaces.get(id) ?? this.direct.get(id);
  }

  /**
   * The namespace that has inode number `inode` now, asked of the kernel directly when the last
   * pass did not see it (it may be newer than the pass, or have been missed by it): a namespace
   * that exists is never answered as missing because discovery has not caught up.
   */
  byInode(inode: number): MountNamespace | undefined {
    // The pass's record only while that namespace lives: its number may have gone to a new one.
    const known = namespaceByInode(this.snapshot, inode);
    if (known && this.alive(known.id)) return known;
    for (const ns of this.direct.values()) if (ns.inode === inode && this.alive(ns.id)) return ns;
    return this.remember(findMountNamespace((ns) => ns.inode === inode));
  }

  /** The namespace with kernel id `id`, if it lives (by-id/ lookups). */
  byId(id: bigint): MountNamespace | undefined {
    const known = this.namespace(id);
    if (known) return this.alive(id) ? known : undefined;
    if (!this.alive(id)) return undefined;
    return this.remember(findMountNamespace((ns) => ns.id === id));
  }

  /** Whether namespace `id` still exists (listmount; where the kernel cannot tell: a fresh pass). */
  async isAlive(id: bigint): Promise<boolean> {
    const support = namespaceIdSupport();
    if (support.listmountById && (id & NUMBER_KEY_BIT) === 0n) return isMountNamespaceAlive(id);
    return (await this.fresh(0)).namespaces.has(id);
  }

  /**
   * False once namespace `id` is known dead: the kernel says so (listmount by id), or, for a key
   * made from a number, the last pass did not see it. Never blocks (no filesystem involved).
   */
  lives(id: bigint): boolean {
    if ((id & NUMBER_KEY_BIT) !== 0n || !namespaceIdSupport().listmountById) return this.snapshot.namespaces.has(id);
    return this.alive(id);
  }

  private alive(id: bigint): boolean {
    if ((id & NUMBER_KEY_BIT) !== 0n || !namespaceIdSupport().listmountById) return true;
    try {
      return isMountNamespaceAlive(id);
    } catch {
      return true;
    }
  }

  private remember(found: { id: bigint; inode: number } | undefined): MountNamespace | undefined {
    if (!found) return undefined;
    const ns: MountNamespace = {
      id: found.id,
      idSource: 'kernel',
      inode: found.inode,
      source: 'direct',
      pids: [],
      threads: [],
      refs: [],
    };
    this.direct.set(ns.id, ns);
    this.directSince.set(ns.id, performance.now());
    this.log.info(`namespace ${ns.inode} found directly, id ${ns.id}`);
    // A pass soon gives it its tasks and refs (and `nsview list` its holders).
    void this.fresh(0).catch(() => {});
    return ns;
  }

  fresh(maxAgeMs: number): Promise<DiscoverySnapshot> {
    if (performance.now() - this.snapshot.takenAt <= maxAgeMs) return Promise.resolve(this.snapshot);
    if (!this.running) {
      this.running = this.pass().finally(() => (this.running = undefined));
    }
    return this.running;
  }

  private async pass(): Promise<DiscoverySnapshot> {
    const started = performance.now();
    let next: DiscoverySnapshot;
    try {
      next = await this.worker.pass(this.hooks.ownTids(), this.hooks.sandboxes());
    } catch (err) {
      this.log.error(`discovery failed: ${(err as Error).message}`);
      return this.snapshot;
    }
    // By id: a number that died and was taken by a new namespace within one pass is one namespace
    // vanished and another appeared, which a diff of numbers would never see.
    const before = this.snapshot.namespaces;
    const appeared = [...next.namespaces.keys()].filter((k) => !before.has(k));
    const vanished = [...before.keys()].filter((k) => !next.namespaces.has(k));
    this.snapshot = next;
    // A namespace found directly is the pass's from now on; one the pass did not find although it
    // existed before the pass began has no holder discovery can see: if only a sandbox of ours
    // holds it, keeping it would keep it alive forever.
    for (const id of [...this.direct.keys()]) {
      if (next.namespaces.has(id) || !this.alive(id) || this.directSince.get(id)! < started) {
        this.direct.delete(id);
        this.directSince.delete(id);
      }
    }
    for (const id of appeared) {
      const ns = next.namespaces.get(id)!;
      this.log.info(
        `namespace ${ns.inode} appeared (${ns.source}${ns.pids.length ? `, pid ${ns.pids[0]}` : ''})${idText(ns)}`,
      );
    }
    for (const id of vanished) {
      const ns = before.get(id)!;
      this.log.info(`namespace ${ns.inode} vanished${idText(ns)}`);
    }
    this.hooks.changed(next, appeared, vanished);
    return next;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    void this.worker.stop();
  }
}

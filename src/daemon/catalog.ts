/**
 * The live list of mount namespaces: discovery rerun every `intervalMs`, and on demand when the
 * view needs something fresher (a name not seen yet, a listing of the top directory). Passes
 * never overlap; concurrent callers share one. Appearances and disappearances are logged and
 * passed on (the view drops vanished directories from the kernel's cache at once).
 */
import { DiscoveryWorker } from '../discovery/index.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
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
  changed(snapshot: DiscoverySnapshot, appeared: number[], vanished: number[]): void;
}

export class DiscoveryCatalog implements NamespaceCatalog {
  private snapshot: DiscoverySnapshot;
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

  fresh(maxAgeMs: number): Promise<DiscoverySnapshot> {
    if (performance.now() - this.snapshot.takenAt <= maxAgeMs) return Promise.resolve(this.snapshot);
    if (!this.running) {
      this.running = this.pass().finally(() => (this.running = undefined));
    }
    return this.running;
  }

  private async pass(): Promise<DiscoverySnapshot> {
    let next: DiscoverySnapshot;
    try {
      next = await this.worker.pass(this.hooks.ownTids(), this.hooks.sandboxes());
    } catch (err) {
      this.log.error(`discovery failed: ${(err as Error).message}`);
      return this.snapshot;
    }
    const before = this.snapshot.namespaces;
    const appeared = [...next.namespaces.keys()].filter((k) => !before.has(k));
    const vanished = [...before.keys()].filter((k) => !next.namespaces.has(k));
    this.snapshot = next;
    for (const ino of appeared) {
      const ns = next.namespaces.get(ino)!;
      this.log.info(`namespace ${ino} appeared (${ns.source}${ns.pids.length ? `, pid ${ns.pids[0]}` : ''})`);
    }
    for (const ino of vanished) this.log.info(`namespace ${ino} vanished`);
    this.hooks.changed(next, appeared, vanished);
    return next;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    void this.worker.stop();
  }
}

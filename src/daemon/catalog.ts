/**
 * The live list of mount namespaces: discovery rerun every `intervalMs`, and on demand when the
 * view needs something fresher (a name not seen yet, a listing of the top directory). Passes
 * never overlap; concurrent callers share one. Appearances and disappearances are logged and
 * passed on (the view drops vanished directories from the kernel's cache at once).
 */
import fs from 'node:fs/promises';
import { discover } from '../discovery/index.js';
import type { DiscoverySnapshot, MountNamespace } from '../discovery/model.js';
import type { NamespaceCatalog } from '../vfs/view.js';
import type { Logger } from './log.js';

export interface CatalogHooks {
  /** Thread ids of our own sandbox tasks (never a source of a namespace). */
  ownTids(): Set<number>;
  /** Mountinfo of a namespace without a readable process, if we hold a way into it. */
  readMountinfo?(ns: MountNamespace): Promise<string | undefined>;
  changed(snapshot: DiscoverySnapshot, appeared: number[], vanished: number[]): void;
}

export class DiscoveryCatalog implements NamespaceCatalog {
  private snapshot: DiscoverySnapshot;
  private running: Promise<DiscoverySnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    first: DiscoverySnapshot,
    private readonly hooks: CatalogHooks,
    private readonly log: Logger,
  ) {
    this.snapshot = first;
  }

  static async start(hooks: CatalogHooks, log: Logger, intervalMs: number): Promise<DiscoveryCatalog> {
    const first = await discover({ ignoreTids: hooks.ownTids() });
    const c = new DiscoveryCatalog(first, hooks, log);
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
      next = await discover({ ignoreTids: this.hooks.ownTids(), readMountinfo: this.hooks.readMountinfo });
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
  }
}

/** Mountinfo through a task we already hold in the namespace (no new sandbox just for this). */
export async function readTaskMountinfo(tid: number): Promise<string | undefined> {
  try {
    return await fs.readFile(`/proc/self/task/${tid}/mountinfo`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Container names for the view: the engine registry (src/engines) keeps every engine's
 * containers in its own asynchronous loops, each call bounded by a deadline; here they are tied
 * to mount namespaces (init PID checked against its start time) and indexed by name, after every
 * change the engines report and after every discovery pass that shows a named process gone.
 * The view reads the last index from memory; nothing it does waits for an engine, so a slow,
 * hung or dead engine costs its containers their names and nothing else.
 */
import {
  buildNameIndex,
  containerMntns,
  discoverEngineSources,
  EngineRegistry,
  mapContainersToMntns,
  type ContainerInfo,
  type EngineOverrides,
  type MappedContainer,
  type NameIndex,
} from '../engines/index.js';
import type { DiscoverySnapshot } from '../discovery/model.js';
import { EMPTY_NAME_INDEX, type ContainerNameSource } from '../vfs/container-names.js';
import type { Logger } from './log.js';

export class EngineNames implements ContainerNameSource {
  private index: NameIndex = EMPTY_NAME_INDEX;
  /** Namespace inode -> the containers mapped to it (their init PID and start time). */
  private byNs = new Map<number, ContainerInfo[]>();
  private mapped: MappedContainer[] = [];
  /**
   * The init processes (`pid:start`) last mapped to each namespace that discovery still shows:
   * a namespace whose containers are all different ones now was replaced by a new namespace
   * under a reused inode number between two discovery passes.
   */
  private owners = new Map<number, Set<string>>();
  /** Containers the registry reports that could not be tied to a namespace at the last mapping. */
  private unmapped = 0;
  private mappedGeneration = -1;
  private mapping: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly registry: EngineRegistry,
    /**
     * Called after the index changed, with the namespaces found replaced (their inode reused by
     * a new container's namespace before discovery saw the old one vanish).
     */
    private readonly changed: (replaced: number[]) => void,
    private readonly log: Logger,
  ) {
    this.unsubscribe = registry.onChange(() => this.remap());
  }

  /** The registry for the engines discovery finds (or `overrides` names). */
  static create(overrides: EngineOverrides, changed: (replaced: number[]) => void, log: Logger): EngineNames {
    const registry = new EngineRegistry([], {
      discover: () => discoverEngineSources(overrides),
      log: (m) => log.info(m),
    });
    return new EngineNames(registry, changed, log);
  }

  /** Starts the engines' loops; returns at once (names arrive as engines answer). */
  start(): void {
    this.registry.start().catch((e: unknown) => this.log.error(`engines: ${String(e)}`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    await this.registry.stop();
    await this.mapping;
  }

  current(): NameIndex {
    return this.index;
  }

  async stillNamed(nsInode: number): Promise<boolean> {
    for (const c of this.byNs.get(nsInode) ?? []) if ((await containerMntns(c)) === nsInode) return true;
    return false;
  }

  /**
   * After a discovery pass: map again when the engines' list changed since the last mapping, a
   * container could not be mapped then, or a mapped init process is no longer where it was (it
   * exited: its name must go now, not at the engine's next report).
   */
  discoveryPassed(snap: DiscoverySnapshot): void {
    for (const ns of this.owners.keys()) if (!snap.byInode.has(ns)) this.owners.delete(ns);
    const stale =
      this.registry.snapshot().generation !== this.mappedGeneration ||
      this.unmapped > 0 ||
      this.mapped.some((m) => snap.pidToNamespace.get(m.container.pid) !== m.mntns);
    if (stale) this.remap();
  }

  /** Maps the registry's containers to namespaces again; calls made meanwhile coalesce into one more. */
  private remap(): void {
    if (this.stopped) return;
    if (this.mapping) {
      this.again = true;
      return;
    }
    this.mapping = (async () => {
      do {
        this.again = false;
        const snap = this.registry.snapshot();
        const mapped = await mapContainersToMntns(snap.containers);
        if (this.stopped) return;
        this.apply(mapped, snap.generation, snap.containers.length - mapped.length);
      } while (this.again && !this.stopped);
    })()
      .catch((e: unknown) => this.log.error(`engines: mapping containers to namespaces failed: ${String(e)}`))
      .finally(() => (this.mapping = undefined));
  }

  private apply(mapped: MappedContainer[], generation: number, unmapped: number): void {
    const byNs = new Map<number, ContainerInfo[]>();
    for (const m of mapped) {
      const list = byNs.get(m.mntns);
      if (list) list.push(m.container);
      else byNs.set(m.mntns, [m.container]);
    }
    const replaced: number[] = [];
    for (const [ns, cs] of byNs) {
      const now = new Set(cs.map((c) => `${c.pid}:${c.pidStart}`));
      const before = this.owners.get(ns);
      if (before && ![...now].some((k) => before.has(k))) replaced.push(ns);
      this.owners.set(ns, now);
    }
    const before = this.index;
    const index = buildNameIndex(mapped);
    this.mapped = mapped;
    this.byNs = byNs;
    this.mappedGeneration = generation;
    this.unmapped = unmapped;
    for (const ns of replaced)
      this.log.info(`namespace ${ns} was replaced by another container's namespace of the same inode number`);
    if (sameIndex(before, index) && replaced.length === 0) return;
    this.index = index;
    if (before.byContainer.size + index.byContainer.size > 0 || mapped.length > 0) {
      this.log.info(
        `engines: ${mapped.length} containers named (${[...index.byEngine].map(([e, m]) => `${e} ${m.size}`).join(', ') || 'none'} names)`,
      );
    }
    this.changed(replaced);
  }

  /** The containers mapped to each namespace, for `nsview list`. */
  containersByNamespace(): ReadonlyMap<number, readonly ContainerInfo[]> {
    return this.byNs;
  }
}

function sameMap<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V>, same: (x: V, y: V) => boolean): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !same(v, w)) return false;
  }
  return true;
}

function sameIndex(a: NameIndex, b: NameIndex): boolean {
  const eq = (x: number, y: number) => x === y;
  return (
    sameMap(a.byContainer, b.byContainer, eq) &&
    sameMap(a.byEngine, b.byEngine, (x, y) => sameMap(x, y, eq)) &&
    sameMap(a.byPod, b.byPod, (x, y) => sameMap(x, y, (p, q) => sameMap(p, q, eq)))
  );
}

/**
 * The engines' containers once, mapped to namespaces (for `nsview list`, which runs without the
 * daemon): every engine found is listed once, each within `deadlineMs`; an engine that does not
 * answer in time contributes nothing.
 */
export async function containersOnce(
  overrides: EngineOverrides,
  deadlineMs: number,
): Promise<Map<number, ContainerInfo[]>> {
  const registry = new EngineRegistry([], {
    discover: () => discoverEngineSources(overrides, { requestTimeoutMs: deadlineMs }),
    timeoutMs: deadlineMs,
  });
  try {
    await registry.start();
  } finally {
    await registry.stop();
  }
  const out = new Map<number, ContainerInfo[]>();
  for (const m of await mapContainersToMntns(registry.snapshot().containers)) {
    const list = out.get(m.mntns);
    if (list) list.push(m.container);
    else out.set(m.mntns, [m.container]);
  }
  return out;
}

/**
 * The names the view shows for containers mapped to mount namespaces, as plain data the view
 * turns into symlinks:
 *
 *   by-container/<name>                   -> <mntns>   a name or full id no other namespace shares
 *   by-container/<engine>/<name>          -> <mntns>   always, for names unique within the engine
 *   by-container/<engine>/<id>            -> <mntns>
 *   by-pod/<namespace>/<pod>/<container>  -> <mntns>   Kubernetes containers (not sandboxes)
 *
 * Every component goes through encodePathComponent (names it refuses are left out; the id
 * remains). A short name equal to an engine's directory (`docker`, `podman`, `containerd`,
 * `cri-o`) is only reachable under its engine. A name claimed by two namespaces is ambiguous and
 * left out at that level (two engines' `web`: both stay under `<engine>/web`).
 */
import { ENGINE_KINDS, type EngineKind } from './model.js';
import { encodePathComponent } from './path-name.js';
import type { MappedContainer } from './proc-identity.js';

export interface NameIndex {
  byContainer: Map<string, number>;
  byEngine: Map<EngineKind, Map<string, number>>;
  /** podNamespace -> pod -> container name -> mntns. */
  byPod: Map<string, Map<string, Map<string, number>>>;
}

/** Collects name -> mntns, remembering names that two namespaces claim. */
class Names {
  readonly map = new Map<string, number>();
  private readonly ambiguous = new Set<string>();

  add(name: string | undefined, mntns: number): void {
    if (name === undefined || this.ambiguous.has(name)) return;
    const prev = this.map.get(name);
    if (prev === undefined) this.map.set(name, mntns);
    else if (prev !== mntns) {
      this.map.delete(name);
      this.ambiguous.add(name);
    }
  }
}

export function buildNameIndex(mapped: readonly MappedContainer[]): NameIndex {
  const reserved = new Set<string>(ENGINE_KINDS);
  const short = new Names();
  const perEngine = new Map<EngineKind, Names>();
  const pods = new Map<string, Names>(); // "ns\0pod" -> container names
  for (const { container: c, mntns } of mapped) {
    const name = encodePathComponent(c.name);
    const id = encodePathComponent(c.id);
    let e = perEngine.get(c.engine);
    if (!e) perEngine.set(c.engine, (e = new Names()));
    e.add(name, mntns);
    e.add(id, mntns);
    for (const n of [name, id]) if (n !== undefined && !reserved.has(n)) short.add(n, mntns);
    if (!c.sandbox && c.pod !== undefined && c.podNamespace !== undefined && c.containerName !== undefined) {
      const ns = encodePathComponent(c.podNamespace);
      const pod = encodePathComponent(c.pod);
      const cn = encodePathComponent(c.containerName);
      if (ns === undefined || pod === undefined || cn === undefined) continue;
      const key = `${ns}\0${pod}`;
      let p = pods.get(key);
      if (!p) pods.set(key, (p = new Names()));
      p.add(cn, mntns);
    }
  }
  const byPod = new Map<string, Map<string, Map<string, number>>>();
  for (const [key, names] of pods) {
    if (names.map.size === 0) continue;
    const [ns, pod] = key.split('\0') as [string, string];
    let m = byPod.get(ns);
    if (!m) byPod.set(ns, (m = new Map()));
    m.set(pod, names.map);
  }
  return {
    byContainer: short.map,
    byEngine: new Map([...perEngine].map(([k, v]) => [k, v.map])),
    byPod,
  };
}

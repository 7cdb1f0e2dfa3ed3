/**
 * Podman and CRI-O: both keep containers in containers/storage (`<graphroot>/<driver>-containers/
 * containers.json`: id, names, image metadata; `podman rename` rewrites it) and run them with an
 * OCI runtime whose state (`<runtime root>/<id>/state.json`) gives the init PID and its start time.
 *
 * Why files and not `podman ps`: Podman has no daemon; its API exists only while someone runs
 * `podman system service`, and `podman ps --format json` forks a Go program (about 100-200 ms of
 * CPU) that takes the storage lock, so it can wait behind any other podman command. That is no
 * way to refresh names every second. The files are Podman's own records, readable without a lock
 * (they are replaced by rename, so a reader sees an old or a new file, never half of one).
 *
 * The runtime's state directory (`/run/runc`) is shared by every engine using runc with its
 * default root: a state entry counts only if its bundle is this storage's container directory.
 * Which engine: Podman marks its bundles `io.container.manager=libpod`; CRI-O's carry
 * `io.kubernetes.cri-o.*` annotations without it. Pod names of Podman pods live in Podman's
 * BoltDB only and are not read; a Podman pod's infra container is marked `sandbox` (the other
 * containers of the pod name it in `io.kubernetes.cri-o.SandboxID`).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { asArray, asObject, parseJson, str } from './json.js';
import { definedPodFields, podIdentity } from './kubernetes.js';
import type { ContainerInfo, EngineKind, EngineSource, ListOptions } from './model.js';
import { DirWatcher } from './dir-watch.js';
import { listDir, readBundleAnnotations, readJsonFile, readRuntimeState, type RuntimeState } from './oci-state.js';
import { readPidStart } from './proc-identity.js';

export interface StorageLocation {
  /** containers/storage graphroot (`--root`), e.g. /var/lib/containers/storage. */
  graphroot: string;
  /** containers/storage runroot (`--runroot`), e.g. /run/containers/storage (CRI-O's bundles live here). */
  runroot?: string;
  /** OCI runtime state roots to search (runc's `--root`): default /run/runc and /run/crun. */
  runtimeRoots?: string[];
}

export const DEFAULT_RUNTIME_ROOTS = ['/run/runc', '/run/crun'];

interface Running {
  rs: RuntimeState;
  annotations: Record<string, string>;
}

export class ContainersStorageSource implements EngineSource {
  readonly kind: EngineKind = 'podman';
  readonly key: string;
  private readonly runtimeRoots: string[];
  private running = new Map<string, Running>();
  private readonly parsed = new Map<string, { stamp: string; entries: unknown[] }>();

  constructor(private readonly loc: StorageLocation) {
    this.key = `containers-storage:${loc.graphroot}`;
    this.runtimeRoots = loc.runtimeRoots ?? DEFAULT_RUNTIME_ROOTS;
  }

  /** `<root>/<driver>-containers` directories (overlay-containers, vfs-containers, ...). */
  private async containerDirs(root: string): Promise<string[]> {
    return (await listDir(root)).filter((n) => /^[a-z0-9]+-containers$/.test(n)).map((n) => path.join(root, n));
  }

  /**
   * Runtime state and annotations of a running container. Kept while its init process lives
   * (same PID and start time: one small procfs read per poll); looked up afresh otherwise.
   */
  private async runningState(id: string, driverDir: string): Promise<Running | undefined> {
    const known = this.running.get(id);
    if (known && (await readPidStart(known.rs.pid)) === known.rs.pidStart) return known;
    const bundles = [path.join(this.loc.graphroot, driverDir, id, 'userdata')];
    if (this.loc.runroot) bundles.push(path.join(this.loc.runroot, driverDir, id, 'userdata'));
    for (const root of this.runtimeRoots) {
      const rs = await readRuntimeState(root, id);
      if (!rs || !rs.bundle || !bundles.includes(rs.bundle)) continue;
      if ((await readPidStart(rs.pid)) !== rs.pidStart) return undefined; // stopped, not yet cleaned up
      return { rs, annotations: (await readBundleAnnotations(rs.bundle)) ?? {} };
    }
    return undefined;
  }

  /** containers.json, parsed again only when the file was replaced or changed. */
  private async readContainersJson(file: string): Promise<unknown[]> {
    let st;
    try {
      st = await stat(file);
    } catch {
      this.parsed.delete(file);
      return [];
    }
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    const cached = this.parsed.get(file);
    if (cached?.stamp === stamp) return cached.entries;
    const entries = asArray(await readJsonFile(file)) ?? [];
    this.parsed.set(file, { stamp, entries });
    return entries;
  }

  async list({ signal }: ListOptions): Promise<ContainerInfo[]> {
    const records: { id: string; name: string; image: string; dir: string }[] = [];
    for (const dir of await this.containerDirs(this.loc.graphroot)) {
      for (const e of await this.readContainersJson(path.join(dir, 'containers.json'))) {
        const c = asObject(e);
        const id = str(c, 'id');
        if (!c || !id || !/^[0-9a-f]{12,128}$/.test(id)) continue;
        const names = asArray(c['names'])?.filter((n): n is string => typeof n === 'string');
        const meta = asObject(parseJson(str(c, 'metadata') ?? ''));
        records.push({ id, name: names?.[0] ?? id, image: str(meta, 'image-name') ?? '', dir: path.basename(dir) });
      }
    }
    signal.throwIfAborted();

    const running: { rec: (typeof records)[number]; rs: RuntimeState; annotations: Record<string, string> }[] = [];
    const live = new Map<string, Running>();
    for (const rec of records) {
      const r = await this.runningState(rec.id, rec.dir);
      if (!r) continue;
      live.set(rec.id, r);
      running.push({ rec, ...r });
    }
    this.running = live;
    signal.throwIfAborted();

    const sandboxIds = new Set(
      running.map((r) => r.annotations['io.kubernetes.cri-o.SandboxID']).filter((s): s is string => !!s),
    );
    const out: ContainerInfo[] = [];
    for (const { rec, rs, annotations } of running) {
      const engine: EngineKind | undefined =
        annotations['io.container.manager'] === 'libpod'
          ? 'podman'
          : Object.keys(annotations).some((k) => k.startsWith('io.kubernetes.cri-o.'))
            ? 'cri-o'
            : undefined;
      if (!engine) continue; // a runtime user of this storage nsview cannot name (buildah, ...)
      const k8s = engine === 'cri-o' ? podIdentity({}, annotations) : undefined;
      out.push({
        engine,
        id: rec.id,
        name: rec.name,
        image: rec.image || k8s?.image || '',
        pid: rs.pid,
        pidStart: rs.pidStart,
        annotations,
        ...(k8s ? definedPodFields(k8s) : {}),
        sandbox: k8s?.sandbox ?? (sandboxIds.has(rec.id) || /\/podman-pause:/.test(rec.image)),
      });
    }
    return out;
  }

  watch(onChange: () => void): () => void {
    const w = new DirWatcher(onChange);
    const refresh = async (): Promise<void> => {
      const dirs = [...(await this.containerDirs(this.loc.graphroot)), ...this.runtimeRoots];
      w.set(dirs);
    };
    void refresh();
    // Directories appear with the first container: look again now and then.
    const timer = setInterval(() => void refresh(), 5000);
    timer.unref();
    return () => {
      clearInterval(timer);
      w.close();
    };
  }
}

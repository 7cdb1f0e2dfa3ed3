/**
 * containerd: its task state directory `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/`
 * holds each running container's bundle (`config.json` with its OCI annotations); the runc shim
 * keeps runc's state under `<runtime root>/<namespace>/<id>/state.json` (init PID and start time;
 * default root /run/containerd/runc, shared by every containerd on the host, so an entry counts
 * only if its bundle is this containerd's).
 *
 * Why not the API: containerd speaks gRPC (a sizeable dependency), and its labels live in its
 * BoltDB. The bundle's annotations carry what names a container: nerdctl copies its `nerdctl/*`
 * labels (`nerdctl/name`) into annotations, and the CRI plugin writes `io.kubernetes.cri.*`
 * (container type, sandbox name/namespace/uid, container name, image). Labels set only in the
 * database (`ctr run --label`) are not visible here. A containerd that no longer accepts
 * connections on its socket (killed) is treated as gone: its containers lose their names.
 */
import path from 'node:path';
import { NsviewError } from '../sys/errors.js';
import { asObject, str } from './json.js';
import { definedPodFields, podIdentity } from './kubernetes.js';
import type { ContainerInfo, EngineSource, ListOptions } from './model.js';
import { DirWatcher } from './dir-watch.js';
import { listDir, readBundleAnnotations, readJsonFile, readRuntimeState } from './oci-state.js';
import { readPidStart } from './proc-identity.js';
import { probeUnixSocket } from './unix-http.js';

export interface ContainerdLocation {
  /** The gRPC socket (only probed for liveness). */
  socket: string;
  /** containerd's state directory (`state` in config.toml, --state), e.g. /run/containerd. */
  state: string;
  /** runc roots the shims use (default /run/containerd/runc). */
  runtimeRoots?: string[];
}

export interface ContainerdSourceOptions extends ContainerdLocation {
  /** Deadline of the liveness probe (default 1000 ms). */
  probeTimeoutMs?: number;
}

export const CONTAINERD_RUNC_ROOT = '/run/containerd/runc';
const TASK_DIR = 'io.containerd.runtime.v2.task';
const NAME_ANNOTATION = 'nerdctl/name';

export class ContainerdSource implements EngineSource {
  readonly kind = 'containerd' as const;
  readonly key: string;
  /** bundle directory -> its container, while the init process lives. */
  private readonly known = new Map<string, ContainerInfo>();

  constructor(private readonly opts: ContainerdSourceOptions) {
    this.key = `containerd:${opts.socket}`;
  }

  private get taskDir(): string {
    return path.join(this.opts.state, TASK_DIR);
  }

  async list({ signal }: ListOptions): Promise<ContainerInfo[]> {
    const probe = await probeUnixSocket(this.opts.socket, this.opts.probeTimeoutMs ?? 1000);
    if (!probe.ok) throw new NsviewError(probe.errno, probe.message);
    const out: ContainerInfo[] = [];
    const seen = new Set<string>();
    for (const ns of await listDir(this.taskDir)) {
      for (const id of await listDir(path.join(this.taskDir, ns))) {
        signal.throwIfAborted();
        seen.add(path.join(this.taskDir, ns, id));
        const c = await this.container(ns, id);
        if (c) out.push(c);
      }
    }
    for (const b of this.known.keys()) if (!seen.has(b)) this.known.delete(b);
    return out;
  }

  /**
   * One task directory's container. Kept while its init process lives (same PID and start time:
   * one small procfs read per poll); read afresh otherwise.
   */
  private async container(ns: string, id: string): Promise<ContainerInfo | undefined> {
    const bundle = path.join(this.taskDir, ns, id);
    const known = this.known.get(bundle);
    if (known && (await readPidStart(known.pid)) === known.pidStart) return known;
    this.known.delete(bundle);
    const c = await this.readContainer(ns, id, bundle);
    if (c) this.known.set(bundle, c);
    return c;
  }

  private async readContainer(ns: string, id: string, bundle: string): Promise<ContainerInfo | undefined> {
    const annotations = await readBundleAnnotations(bundle);
    if (!annotations) return undefined;
    // The shim's runtime options may name another runc root.
    const optRoot = str(asObject(await readJsonFile(path.join(bundle, 'options.json'))), 'Root');
    const roots = [...(optRoot ? [optRoot] : []), ...(this.opts.runtimeRoots ?? [CONTAINERD_RUNC_ROOT])];
    for (const root of roots) {
      const rs = await readRuntimeState(path.join(root, ns), id);
      if (!rs || rs.bundle !== bundle) continue;
      if ((await readPidStart(rs.pid)) !== rs.pidStart) return undefined; // exited
      const k8s = podIdentity({}, annotations);
      const nerdctlName = annotations[NAME_ANNOTATION];
      const name = nerdctlName || (k8s.sandbox ? k8s.pod : k8s.containerName) || id;
      return {
        engine: 'containerd',
        id,
        name,
        image: k8s.image ?? '',
        pid: rs.pid,
        pidStart: rs.pidStart,
        annotations,
        engineNamespace: ns,
        ...definedPodFields(k8s),
        sandbox: k8s.sandbox,
      };
    }
    return undefined;
  }

  watch(onChange: () => void): () => void {
    const w = new DirWatcher(onChange);
    const refresh = async (): Promise<void> => {
      const nss = (await listDir(this.taskDir)).map((ns) => path.join(this.taskDir, ns));
      w.set([this.taskDir, ...nss]);
    };
    void refresh();
    const timer = setInterval(() => void refresh(), 5000);
    timer.unref();
    return () => {
      clearInterval(timer);
      w.close();
    };
  }
}

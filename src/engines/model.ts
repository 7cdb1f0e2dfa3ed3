/**
 * What nsview knows about a container, as its engine records it. Every field comes from the
 * engine (its API over its socket, or its own state files on the host), never from a file inside
 * the container, which the container controls.
 */

export const ENGINE_KINDS = ['docker', 'podman', 'containerd', 'cri-o'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

export interface ContainerInfo {
  engine: EngineKind;
  /** The engine's full container id (containerd: unique only within `engineNamespace`). */
  id: string;
  /** The engine's name for it (Docker without the leading '/'); the id when the engine has none. */
  name: string;
  /** Image reference as the engine reports it; '' when the engine's records reachable here lack it. */
  image: string;
  /** PID of the container's init process, in the host's PID namespace. */
  pid: number;
  /**
   * Start time of `pid` (field 22 of /proc/PID/stat, clock ticks after boot) as recorded when the
   * engine reported the container: a PID whose start time differs is another process.
   */
  pidStart: number;
  /** The engine's labels (Docker, Podman via its API); absent when not readable without the engine's database. */
  labels?: Record<string, string>;
  /** OCI annotations of the container's bundle (containerd, Podman, CRI-O). */
  annotations?: Record<string, string>;
  /** containerd namespace (`default`, `k8s.io`, `moby`, ...). */
  engineNamespace?: string;
  /** Kubernetes pod name, namespace and uid (CRI labels/annotations), or a Podman pod's name. */
  pod?: string;
  podNamespace?: string;
  podUid?: string;
  /** Kubernetes container name within its pod. */
  containerName?: string;
  /** A pod's infrastructure ("pause", sandbox, infra) container. */
  sandbox: boolean;
}

export interface ListOptions {
  /** Aborted when the registry gives up on this call (timeout or stop); sources must honour it. */
  signal: AbortSignal;
}

/** One engine instance on the host (one dockerd, one containerd, one Podman storage root...). */
export interface EngineSource {
  /** Engine kind (a storage source may report Podman and CRI-O containers alike). */
  readonly kind: EngineKind;
  /** Unique among the registry's sources, e.g. `docker:/run/docker.sock`; shown in status and logs. */
  readonly key: string;
  /**
   * The engine's running containers. Rejects when the engine is gone or refuses (its containers
   * then lose their names); must settle promptly once `signal` aborts.
   */
  list(opts: ListOptions): Promise<ContainerInfo[]>;
  /**
   * Optional change notification (events API, inotify on state directories): calls `onChange`
   * whenever the engine's containers may have changed. Returns a function that stops watching.
   * Best effort: the registry polls anyway.
   */
  watch?(onChange: () => void): () => void;
}

export type EngineHealth = 'ok' | 'down' | 'timeout';

export interface EngineStatus {
  key: string;
  kind: EngineKind;
  health: EngineHealth;
  /** One-line reason of the last failure. */
  error?: string;
  /** Containers of the last successful list. */
  containers: number;
  /** Milliseconds the last list took. */
  lastListMs?: number;
  /** Date.now() of the last successful list. */
  lastOkAt?: number;
}

/**
 * Keeps the containers of every engine on the host, off the FUSE thread's path: each engine is
 * listed in its own asynchronous loop, every call bounded by a deadline and aborted after it, so
 * a slow, hung or dead engine delays nothing but its own entries. Readers get the last merged
 * snapshot at once (`snapshot()`), and `onChange` when it changed.
 *
 * Failure semantics per engine:
 *   - refused / gone (socket without a listener, missing state): its containers are dropped at once;
 *   - timeout: its last list is kept for `staleMs` (each entry is still checked against PID reuse
 *     when mapped to a namespace), then dropped.
 * One container reported by two engines (Docker's containers in the containerd it drives) is kept
 * once, as the higher-level engine reports it; two views of one engine (Podman's API and its
 * storage files) are merged field by field.
 */
import { E, errnoOf } from '../sys/errors.js';
import type { ContainerInfo, EngineKind, EngineSource, EngineStatus } from './model.js';

export interface RegistryOptions {
  /** Poll period per engine (default 1000 ms). Engines that notify are re-listed sooner. */
  intervalMs?: number;
  /** Deadline of one list() (default 3000 ms). */
  timeoutMs?: number;
  /** How long a timed-out engine's last list is kept (default 5000 ms). */
  staleMs?: number;
  /** Coalesces change notifications (default 50 ms). */
  debounceMs?: number;
  /**
   * Finds the engine sources; called at start and every `rediscoverMs` (default 10 s), so a
   * daemon started later is picked up. Sources are matched by key.
   */
  discover?: () => Promise<EngineSource[]>;
  rediscoverMs?: number;
  /** Called with one-line messages (source failures and recoveries). */
  log?: (msg: string) => void;
}

export interface EngineSnapshot {
  /** Increases with every change of `containers`. */
  generation: number;
  containers: ContainerInfo[];
  engines: EngineStatus[];
}

interface SourceState {
  source: EngineSource;
  status: EngineStatus;
  containers: ContainerInfo[];
  staleSince?: number;
  wake?: () => void;
  stopWatch?: () => void;
  abort?: AbortController;
  dirty: boolean;
  loop?: Promise<void>;
  /** The list call in flight: calls of one source never overlap. */
  inflight?: Promise<void>;
}

/** Precedence when two sources report the same process: the engine users address by name wins. */
const PRECEDENCE: Record<EngineKind, number> = { docker: 3, podman: 3, 'cri-o': 3, containerd: 1 };

export class EngineRegistry {
  private readonly states = new Map<string, SourceState>();
  private readonly listeners = new Set<(s: EngineSnapshot) => void>();
  private running = false;
  private loopsStarted = false;
  private snap: EngineSnapshot = { generation: 0, containers: [], engines: [] };
  private lastKey = '';
  private rediscoverTimer?: NodeJS.Timeout;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly staleMs: number;
  private readonly debounceMs: number;

  constructor(
    sources: EngineSource[],
    private readonly opts: RegistryOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.staleMs = opts.staleMs ?? 5000;
    this.debounceMs = opts.debounceMs ?? 50;
    for (const s of sources) this.add(s);
  }

  /** Starts every loop; resolves after each engine's first list finished (or timed out). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.opts.discover) await this.rediscover();
    this.loopsStarted = true;
    const firsts = [...this.states.values()].map((st) => this.startLoop(st));
    if (this.opts.discover) {
      this.rediscoverTimer = setInterval(() => void this.rediscover(), this.opts.rediscoverMs ?? 10_000);
      this.rediscoverTimer.unref();
    }
    await Promise.all(firsts);
  }

  /** Stops every loop, aborts calls in flight and closes watches; resolves when all loops ended. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.rediscoverTimer);
    const loops: Promise<void>[] = [];
    for (const st of this.states.values()) {
      st.abort?.abort();
      st.stopWatch?.();
      st.stopWatch = undefined;
      st.wake?.();
      if (st.loop) loops.push(st.loop);
    }
    await Promise.all(loops);
    this.loopsStarted = false;
    for (const st of this.states.values()) st.loop = undefined;
  }

  /** The last merged state; cheap, never waits. */
  snapshot(): EngineSnapshot {
    return this.snap;
  }

  /** Calls `fn` after every change of the container set; returns a function that unsubscribes. */
  onChange(fn: (s: EngineSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Re-lists every engine now (e.g. before answering `nsview list`); resolves when done. */
  async refresh(): Promise<EngineSnapshot> {
    await Promise.all([...this.states.values()].map((st) => this.listSerialized(st)));
    return this.snap;
  }

  private add(source: EngineSource): SourceState {
    const st: SourceState = {
      source,
      status: { key: source.key, kind: source.kind, health: 'down', containers: 0, error: 'not listed yet' },
      containers: [],
      dirty: false,
    };
    this.states.set(source.key, st);
    return st;
  }

  private async rediscover(): Promise<void> {
    let found: EngineSource[];
    try {
      found = await this.opts.discover!();
    } catch (e) {
      this.opts.log?.(`engines: discovery failed: ${String(e)}`);
      return;
    }
    for (const s of found) {
      if (this.states.has(s.key)) continue;
      const st = this.add(s);
      this.opts.log?.(`engines: found ${s.key}`);
      if (this.running && this.loopsStarted) void this.startLoop(st);
    }
  }

  /** Starts the loop of one source; resolves after its first list. */
  private startLoop(st: SourceState): Promise<void> {
    if (st.loop) return Promise.resolve();
    let first!: () => void;
    const firstDone = new Promise<void>((r) => (first = r));
    if (st.source.watch) {
      let debounce: NodeJS.Timeout | undefined;
      try {
        st.stopWatch = st.source.watch(() => {
          st.dirty = true;
          clearTimeout(debounce);
          debounce = setTimeout(() => st.wake?.(), this.debounceMs);
        });
      } catch (e) {
        this.opts.log?.(`engines: ${st.source.key}: watch failed: ${String(e)}`);
      }
    }
    st.loop = (async () => {
      let isFirst = true;
      while (this.running) {
        await this.listSerialized(st);
        if (isFirst) {
          isFirst = false;
          first();
        }
        if (!this.running) break;
        if (!st.dirty) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, this.intervalMs);
            st.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          st.wake = undefined;
        }
        st.dirty = false;
      }
      first();
    })();
    return firstDone;
  }

  /** One list of `st` after the one in flight (if any) settled. */
  private listSerialized(st: SourceState): Promise<void> {
    const next = (st.inflight ?? Promise.resolve()).then(() => this.listOnce(st));
    st.inflight = next;
    void next.finally(() => {
      if (st.inflight === next) st.inflight = undefined;
    });
    return next;
  }

  private async listOnce(st: SourceState): Promise<void> {
    const abort = new AbortController();
    st.abort = abort;
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { errno: E.ETIMEDOUT }));
      }, this.timeoutMs);
    });
    try {
      const list = await Promise.race([st.source.list({ signal: abort.signal }), deadline]);
      const recovered = st.status.health !== 'ok' && st.status.error !== 'not listed yet';
      st.containers = list;
      st.staleSince = undefined;
      st.status = {
        key: st.source.key,
        kind: st.source.kind,
        health: 'ok',
        containers: list.length,
        lastListMs: Date.now() - started,
        lastOkAt: Date.now(),
      };
      if (recovered) this.opts.log?.(`engines: ${st.source.key}: up, ${list.length} containers`);
    } catch (e) {
      const errno = errnoOf(e);
      const timedOut = errno === E.ETIMEDOUT;
      const message = e instanceof Error ? e.message : String(e);
      if (st.status.health === 'ok')
        this.opts.log?.(`engines: ${st.source.key}: ${timedOut ? 'timeout' : 'down'}: ${message}`);
      const now = Date.now();
      if (timedOut) {
        st.staleSince ??= now;
        if (now - st.staleSince >= this.staleMs) st.containers = [];
      } else {
        st.containers = [];
      }
      st.status = {
        ...st.status,
        health: timedOut ? 'timeout' : 'down',
        error: message,
        containers: st.containers.length,
        lastListMs: now - started,
      };
    } finally {
      clearTimeout(timer);
      if (st.abort === abort) st.abort = undefined;
    }
    this.publish();
  }

  private publish(): void {
    const byProcess = new Map<string, ContainerInfo>();
    for (const st of this.states.values()) {
      for (const c of st.containers) {
        const k = `${c.pid}:${c.pidStart}`;
        const prev = byProcess.get(k);
        if (!prev || PRECEDENCE[c.engine] > PRECEDENCE[prev.engine]) byProcess.set(k, c);
        else if (prev.engine === c.engine) byProcess.set(k, mergeViews(prev, c));
      }
    }
    const containers = [...byProcess.values()].sort((a, b) => (a.engine + a.id < b.engine + b.id ? -1 : 1));
    const engines = [...this.states.values()].map((s) => s.status);
    const key = JSON.stringify(containers);
    const changed = key !== this.lastKey;
    this.lastKey = key;
    this.snap = { generation: this.snap.generation + (changed ? 1 : 0), containers, engines };
    if (!changed) return;
    for (const fn of this.listeners) {
      try {
        fn(this.snap);
      } catch (e) {
        this.opts.log?.(`engines: change listener failed: ${String(e)}`);
      }
    }
  }
}

/** One container as two sources of the same engine see it: fields one of them lacks are filled in. */
function mergeViews(a: ContainerInfo, b: ContainerInfo): ContainerInfo {
  const out: ContainerInfo = { ...b, ...a, sandbox: a.sandbox || b.sandbox };
  for (const k of [
    'labels',
    'annotations',
    'pod',
    'podNamespace',
    'podUid',
    'containerName',
    'engineNamespace',
  ] as const) {
    if (a[k] === undefined && b[k] !== undefined) Object.assign(out, { [k]: b[k] });
  }
  if (!a.image && b.image) out.image = b.image;
  return out;
}

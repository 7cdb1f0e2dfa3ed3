/**
 * IoPool: where the main thread sends every filesystem syscall that touches a namespace.
 *
 * The main thread serves all FUSE requests, so it must never block; the workers may. Each
 * request carries a deadline (the op timeout): past it the caller gets ETIMEDOUT, the worker
 * stuck in the kernel is written off and replaced, and the namespace it was working in is put on
 * a short leash (one request at a time) until one of its requests succeeds again. A frozen mount
 * in one container therefore costs at most one worker, never the whole view.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { NsviewError, E } from '../sys/errors.js';
import type { IoMessage, IoOp, IoRequestOf, IoResponse, IoResult } from './protocol.js';

export interface IoPoolOptions {
  size: number;
  opTimeoutMs: number;
  onEvent?: (message: string) => void;
}

export interface RunOptions {
  /**
   * Aborting gives up on the request: EINTR at once, and the work is dropped if still queued, or
   * the worker written off (as at a timeout) if already running.
   */
  signal?: AbortSignal;
}

interface Pending {
  id: number;
  /** The caller has its answer (an interrupt): the worker, if any, is still running it. */
  answered?: boolean;
  req: IoRequestOf<IoOp>;
  key: number;
  queuedAt: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  slot?: Slot;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  tid: number;
  busy?: Pending;
  ready: Promise<void>;
  /** A temporary worker (see grow), retired when idle. */
  extra?: boolean;
  idleSince?: number;
}

/** Workers a namespace may leave stuck in the kernel before its requests stop being started. */
const MAX_STUCK_PER_NAMESPACE = 2;
/**
 * Stuck workers all namespaces together may leave (each is a thread with its own isolate, about
 * 8-9 MiB): namespaces cost nothing to create, so a per-namespace limit alone bounds nothing.
 * Past it, namespaces that already stranded a worker are refused at once, and a worker that gets
 * stuck is not replaced until a stuck one comes back: the pool runs smaller, and the io threads,
 * live and stuck, never exceed size + MAX_EXTRA_WORKERS + MAX_STUCK_TOTAL.
 */
export const MAX_STUCK_TOTAL = 16;
/** How long an interrupted request's worker may take to finish before it is written off. */
const ABORT_GRACE_MS = 200;
/** After a thread could not be created (pids.max, RLIMIT_NPROC), wait this long to try again. */
const RESPAWN_RETRY_MS = 1000;
/** Temporary workers beyond --workers, for requests of other namespaces stuck behind a hang. */
const MAX_EXTRA_WORKERS = 4;
/** How long a request of an idle namespace may wait behind busy workers before one is added. */
const GROW_AFTER_MS = 200;
const RETIRE_AFTER_MS = 5000;

/** "op /path in namespace N", for log lines. */
function describe(p: Pending): string {
  const where = 'path' in p.req ? ` /${Buffer.from(p.req.path, 'latin1').toString()}` : '';
  return `${p.req.op}${where} in namespace ${p.key}`;
}

export class IoPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, number>();
  private readonly suspect = new Set<number>();
  /** Workers written off while stuck, by the namespace they are stuck in. */
  private readonly abandoned = new Map<Worker, number>();
  private readonly stuckPerKey = new Map<number, number>();
  private growTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private closed = false;
  /** Thread ids of the workers, to recognise requests our own threads make to our own mount. */
  readonly ownTids = new Set<number>();

  private respawnTimer: NodeJS.Timeout | undefined;
  /** Regular workers that could not be (re)started, to be started when threads are available. */
  private missing = 0;

  constructor(private readonly opts: IoPoolOptions) {
    for (let i = 0; i < opts.size; i++) {
      const slot = this.spawn();
      if (!slot) throw new NsviewError(E.EAGAIN, 'cannot create io worker threads');
      this.slots.push(slot);
    }
  }

  /** Resolves when every worker is up (their thread ids known). */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  /**
   * A new worker, or undefined when no thread can be created now (EAGAIN under pids.max or
   * RLIMIT_NPROC): the pool then runs with fewer workers rather than fail.
   */
  private spawn(): Slot | undefined {
    let worker: Worker;
    try {
      // Workers hold no state beyond a request: small heaps keep each isolate near its floor.
      worker = new Worker(new URL('./worker.js', import.meta.url), {
        resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
      });
    } catch (err) {
      this.opts.onEvent?.(`cannot start an io worker: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    worker.unref();
    let markReady!: () => void;
    const slot: Slot = { worker, tid: 0, ready: new Promise((r) => (markReady = r)) };
    worker.on('message', (msg: IoResponse | { ready: true; tid: number }) => {
      if ('ready' in msg) {
        slot.tid = msg.tid;
        this.ownTids.add(msg.tid);
        markReady();
        return;
      }
      this.finish(slot, msg);
    });
    worker.on('error', (err) => {
      // Also how a thread that could not be created reports (ERR_WORKER_INIT_FAILED).
      this.opts.onEvent?.(`io worker failed: ${err.message}`);
      markReady();
      const busy = slot.busy;
      slot.busy = undefined;
      this.replace(slot);
      if (busy) this.settle(busy, { id: busy.id, ok: false, errno: E.EIO, message: err.message });
      this.pump();
    });
    return slot;
  }

  /**
   * Run one request; resolves with what its op answers. `key` groups requests for fairness and
   * hang containment (the namespace inode; 0 for work outside namespaces).
   */
  run<K extends IoOp>(req: IoRequestOf<K>, key = 0, options: RunOptions = {}): Promise<IoResult<K>> {
    if (this.closed) return Promise.reject(new NsviewError(E.ENOTCONN, 'io pool closed'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new NsviewError(E.EINTR, `${req.op} interrupted`));
    if (this.overBudget(key)) {
      return Promise.reject(
        new NsviewError(
          E.ETIMEDOUT,
          `${req.op}: namespace ${key} has workers stuck and the pool's budget of stuck workers is spent`,
        ),
      );
    }
    if (this.slots.length === 0 && this.missing > 0) {
      return Promise.reject(new NsviewError(E.EAGAIN, `${req.op}: no io worker (threads cannot be created)`));
    }
    return new Promise<IoResult<K>>((resolve, reject) => {
      const p: Pending = {
        id: this.nextId++,
        req,
        key,
        queuedAt: performance.now(),
        // The worker answers request `id` with the result its handler table gives for op K
        // (worker.ts, typed from IoOps): the one place that value's type is taken on trust,
        // as it crosses the thread boundary untyped.
        resolve: (v) => resolve(v as IoResult<K>),
        reject,
        // Deadlines never keep the process alive by themselves (a closed pool's stuck requests).
        timer: setTimeout(() => this.timeout(p), this.opts.opTimeoutMs).unref(),
      };
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.abort(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
      if (this.queue.length > 0) this.scheduleGrow();
    });
  }

  private get stuckTotal(): number {
    return this.abandoned.size;
  }

  /** The global budget of stuck workers is spent and `key` already stranded some of them. */
  private overBudget(key: number): boolean {
    return key !== 0 && this.stuckTotal >= MAX_STUCK_TOTAL && (this.stuckPerKey.get(key) ?? 0) > 0;
  }

  private allowed(key: number): boolean {
    if (key === 0 || !this.suspect.has(key)) return true;
    if (this.overBudget(key)) return false;
    // A namespace that already stranded workers in the kernel gets no more: its requests time
    // out in the queue instead of taking another thread each.
    if ((this.stuckPerKey.get(key) ?? 0) >= MAX_STUCK_PER_NAMESPACE) return false;
    return (this.running.get(key) ?? 0) === 0;
  }

  /**
   * A request of a namespace with nothing running that waited GROW_AFTER_MS while every worker
   * was busy: the busy ones may be stuck on a mount that has just hung (nothing timed out yet),
   * so add a temporary worker rather than let every other namespace wait for the op timeout.
   */
  private scheduleGrow(): void {
    if (this.growTimer || this.closed) return;
    this.growTimer = setTimeout(() => {
      this.growTimer = undefined;
      const now = performance.now();
      const starved = this.queue.some(
        (p) => this.allowed(p.key) && (this.running.get(p.key) ?? 0) === 0 && now - p.queuedAt >= GROW_AFTER_MS,
      );
      const free = this.slots.some((sl) => !sl.busy && sl.tid !== 0);
      const extras = this.slots.filter((sl) => sl.extra).length;
      const slot =
        starved && !free && extras < MAX_EXTRA_WORKERS && this.stuckTotal < MAX_STUCK_TOTAL ? this.spawn() : undefined;
      if (slot) {
        slot.extra = true;
        this.slots.push(slot);
        this.opts.onEvent?.(`all io workers busy while other namespaces wait: extra worker ${extras + 1} started`);
        void slot.ready.then(() => this.pump());
      }
      this.retireIdleExtras(now);
      if (this.queue.length > 0 || this.slots.some((sl) => sl.extra)) this.scheduleGrow();
    }, GROW_AFTER_MS);
    this.growTimer.unref();
  }

  private retireIdleExtras(now: number): void {
    for (const slot of [...this.slots]) {
      if (!slot.extra || slot.busy) continue;
      slot.idleSince ??= now;
      if (now - slot.idleSince >= RETIRE_AFTER_MS) {
        this.slots.splice(this.slots.indexOf(slot), 1);
        this.ownTids.delete(slot.tid);
        void slot.worker.terminate();
      }
    }
  }

  /**
   * The next request to run: of those allowed, the one whose namespace has the fewest requests
   * running (the oldest among equals), so that one busy or hostile namespace never holds every
   * worker while others wait.
   */
  private next(idleOnly: boolean): number {
    let best = -1;
    let bestRunning = Infinity;
    for (let i = 0; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      if (!this.allowed(p.key)) continue;
      const running = this.running.get(p.key) ?? 0;
      if (idleOnly && running > 0) continue;
      if (running < bestRunning) {
        best = i;
        bestRunning = running;
        if (running === 0) break;
      }
    }
    return best;
  }

  /**
   * Hand queued requests to free workers. Two reservations keep one namespace from holding every
   * worker: the last free regular worker goes only to a namespace with nothing running (so a
   * request of another namespace finds a worker at once), and the extra workers, started because
   * other namespaces starved, serve only namespaces with nothing running.
   */
  private pump(): void {
    let freeRegular = 0;
    for (const slot of this.slots) if (!slot.busy && slot.tid !== 0 && !slot.extra) freeRegular++;
    for (const slot of this.slots) {
      if (slot.busy || slot.tid === 0) continue;
      const idleOnly = slot.extra === true || (freeRegular === 1 && this.slots.length > 1);
      const idx = this.next(idleOnly);
      if (idx < 0) {
        if (idleOnly) continue;
        return;
      }
      if (!slot.extra) freeRegular--;
      const p = this.queue.splice(idx, 1)[0]!;
      slot.busy = p;
      slot.idleSince = undefined;
      p.slot = slot;
      this.running.set(p.key, (this.running.get(p.key) ?? 0) + 1);
      slot.worker.postMessage({ id: p.id, req: p.req } satisfies IoMessage);
    }
  }

  private finish(slot: Slot, msg: IoResponse): void {
    const p = slot.busy;
    if (!p || p.id !== msg.id) {
      // An answer from a worker we gave up on: it is free of the kernel now, let it go. What it
      // opened for a caller who is no longer waiting is closed (in a worker: see closeAll).
      if (msg.ok && msg.fds.length > 0) this.closeOrphans(msg.fds);
      const key = this.abandoned.get(slot.worker);
      if (key !== undefined) {
        this.abandoned.delete(slot.worker);
        const n = (this.stuckPerKey.get(key) ?? 1) - 1;
        if (n <= 0) this.stuckPerKey.delete(key);
        else this.stuckPerKey.set(key, n);
        void slot.worker.terminate();
        this.respawn();
        this.pump();
      }
      return;
    }
    slot.busy = undefined;
    if (p.answered) {
      // Interrupted, but the worker finished within the grace period: it is free, and what it
      // opened for the caller who left is closed.
      clearTimeout(p.timer);
      this.release(p);
      if (msg.ok && msg.fds.length > 0) this.closeOrphans(msg.fds);
    } else this.settle(p, msg);
    if (msg.ok) this.suspect.delete(p.key);
    this.pump();
  }

  /** The request no longer occupies a worker of its namespace. */
  private release(p: Pending): void {
    if (!p.slot) return;
    p.slot = undefined;
    const n = (this.running.get(p.key) ?? 1) - 1;
    if (n <= 0) this.running.delete(p.key);
    else this.running.set(p.key, n);
  }

  private settle(p: Pending, msg: IoResponse): void {
    clearTimeout(p.timer);
    this.release(p);
    this.answer(p, msg);
  }

  /** Give the caller its answer (once). */
  private answer(p: Pending, msg: IoResponse): void {
    if (p.answered) return;
    p.answered = true;
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(new NsviewError(msg.errno, msg.message));
  }

  private timeout(p: Pending): void {
    const qi = this.queue.indexOf(p);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.settle(p, { id: p.id, ok: false, errno: E.ETIMEDOUT, message: `${p.req.op} waited too long` });
      return;
    }
    const slot = p.slot;
    if (!slot || slot.busy !== p) return;
    if (p.answered) {
      this.opts.onEvent?.(
        `EINTR: ${describe(p)} (interrupted, still running after ${ABORT_GRACE_MS} ms); worker ${slot.tid} written off`,
      );
    } else {
      this.opts.onEvent?.(
        `ETIMEDOUT: ${describe(p)} (no answer in ${this.opts.opTimeoutMs} ms); worker ${slot.tid} written off`,
      );
    }
    this.writeOff(slot, p, E.ETIMEDOUT, `${p.req.op} timed out`);
  }

  /**
   * The caller gave up (its signal aborted): a queued request is dropped; a running one is
   * answered EINTR at once and its worker, unless it finishes within ABORT_GRACE_MS, written off
   * as at a timeout, since what it is doing may be stuck in the kernel and cannot be stopped.
   */
  private abort(p: Pending): void {
    const qi = this.queue.indexOf(p);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.settle(p, { id: p.id, ok: false, errno: E.EINTR, message: `${p.req.op} interrupted while queued` });
      return;
    }
    const slot = p.slot;
    if (!slot || slot.busy !== p) return;
    // The caller is answered now; the worker gets a short grace to finish (most requests are
    // quick, and replacing a worker costs a thread start), then is written off as at a timeout.
    this.answer(p, { id: p.id, ok: false, errno: E.EINTR, message: `${p.req.op} interrupted` });
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.timeout(p), ABORT_GRACE_MS).unref();
  }

  /**
   * Answer the request `slot` is running with `errno` and replace the worker. It is counted as
   * stuck in the request's namespace until it answers (see finish), and its answer is discarded.
   */
  private writeOff(slot: Slot, p: Pending, errno: number, message: string): void {
    this.suspect.add(p.key);
    slot.busy = undefined;
    this.settle(p, { id: p.id, ok: false, errno, message });
    this.abandoned.set(slot.worker, p.key);
    this.stuckPerKey.set(p.key, (this.stuckPerKey.get(p.key) ?? 0) + 1);
    this.replace(slot);
    // Past the budget, queued requests of namespaces that stranded workers are refused now.
    if (this.stuckTotal >= MAX_STUCK_TOTAL) {
      for (const q of this.queue.filter((x) => this.overBudget(x.key))) {
        this.queue.splice(this.queue.indexOf(q), 1);
        this.settle(q, {
          id: q.id,
          ok: false,
          errno: E.ETIMEDOUT,
          message: `${q.req.op}: namespace ${q.key} has workers stuck`,
        });
      }
    }
    this.pump();
  }

  /** Close fds no caller will take (an answer that came after its request was given up on). */
  private closeOrphans(fds: number[]): void {
    if (this.closed) {
      for (const fd of fds) fs.close(fd, () => {});
      return;
    }
    this.run({ op: 'closeAll', fds }).catch((err: unknown) =>
      this.opts.onEvent?.(
        `closing ${fds.length} fds of an abandoned request: ${err instanceof Error ? err.message : String(err)}`,
      ),
    );
  }

  /**
   * Take `slot` out of the pool and start a regular worker in its place, unless the budget of
   * stuck workers is spent or no thread can be created: then the pool runs smaller until a
   * stuck worker comes back or threads can be created again (see respawn).
   */
  private replace(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.ownTids.delete(slot.tid);
    this.slots.splice(i, 1);
    if (slot.extra) return;
    this.missing++;
    this.respawn();
  }

  /** Start the regular workers that are missing, as far as budget and threads allow. */
  private respawn(): void {
    if (this.closed) return;
    while (this.missing > 0 && this.abandoned.size < MAX_STUCK_TOTAL) {
      const fresh = this.spawn();
      if (!fresh) {
        this.respawnTimer ??= setTimeout(() => {
          this.respawnTimer = undefined;
          this.respawn();
        }, RESPAWN_RETRY_MS);
        this.respawnTimer.unref();
        break;
      }
      this.missing--;
      this.slots.push(fresh);
      void fresh.ready.then(() => this.pump());
    }
    // Nothing can run: requests waiting for a worker are refused rather than left to time out.
    if (this.slots.length === 0) {
      for (const p of this.queue.splice(0))
        this.settle(p, { id: p.id, ok: false, errno: E.EAGAIN, message: `${p.req.op}: no io worker` });
    }
  }

  /** Workers written off because they are stuck in the kernel. */
  get stuckWorkers(): number {
    return this.abandoned.size;
  }

  /** Live workers (regular and extra, not the stuck ones). */
  get workers(): number {
    return this.slots.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.growTimer) clearTimeout(this.growTimer);
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    for (const p of this.queue.splice(0))
      this.settle(p, { id: p.id, ok: false, errno: E.ENOTCONN, message: 'io pool closed' });
    for (const s of this.slots) if (s.busy) clearTimeout(s.busy.timer);
    // A worker blocked in the kernel cannot be joined; terminate() would wait for it, so only
    // the idle ones are awaited. Stuck ones end with the process.
    const idle = this.slots.filter((s) => !s.busy).map((s) => s.worker.terminate());
    await Promise.allSettled(idle);
  }
}

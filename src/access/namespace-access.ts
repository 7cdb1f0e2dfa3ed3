/**
 * NamespaceAccess: hands out a RootRef (an fd on a mount namespace's root) for each operation.
 *
 * A namespace with a process in it is reached through /proc/PID/root of a process whose root is
 * the namespace root (checked, a chroot is refused); no helper is kept for it. A namespace with
 * no usable process gets a SandboxTask (a thread of ours that joined it), held while the
 * namespace is in use and released after `idleReleaseMs` so nsview never keeps a namespace
 * alive by itself. Every root is tied to a guard task; when that task leaves or dies the next
 * operation gets ESRCH and is retried once through a freshly chosen way in.
 */
import fs from 'node:fs';
import { NsviewError, E, errnoOf } from '../sys/errors.js';
import type { RootWorkers, StatRootItem, StatRootResult } from './root-workers.js';
import { refOf, type RootRef } from './root-ref.js';
import type { DiscoverySnapshot, MountNamespace, NamespaceRef } from '../discovery/model.js';
import { formatRef } from '../discovery/format.js';
import { SandboxTask } from './sandbox.js';
import { guardHolds } from './guard.js';
import { isMountNamespaceAlive, namespaceIdSupport } from '../sys/namespace-id.js';
import { abortable } from './abortable.js';

export interface AccessEvents {
  onEvent(message: string): void;
  /**
   * Does the namespace still exist (a fresh discovery pass)? Asked only when every way in
   * failed, so that a namespace that died answers ENOENT rather than the way in's error.
   */
  confirmAlive(id: bigint): Promise<boolean>;
  /**
   * A namespace we held a way into died (found by the liveness sweep): its handle is closed
   * already; the view makes every node and open file of it answer ENOENT/ESTALE.
   */
  onDead?(id: bigint): void;
}

/** An acquired way into one namespace. */
export interface RootHandle {
  /** The namespace's id (MountNamespace.id): a handle serves that namespace and no other. */
  readonly id: bigint;
  readonly nsInode: number;
  readonly ref: RootRef;
  readonly via: string;
  sandbox?: SandboxTask;
  inflight: number;
  pins: number;
  lastUsed: number;
}

/** How a root opened through task `c` was reached, for logs. */
function viaTask(c: { pid: number; tid: number }): string {
  return c.tid === c.pid ? `/proc/${c.pid}/root` : `/proc/${c.pid}/task/${c.tid}/root`;
}

/** numberKey's bit (discovery/model.ts): a key made from a number, not a kernel id. */
const NUMBER_KEY_BIT = 1n << 63n;

/** The kernel id of `ns` to check when opening it, or undefined when it has none. */
function kernelId(ns: MountNamespace): bigint | undefined {
  return ns.idSource === 'kernel' ? ns.id : undefined;
}

function aliveOrUnknown(id: bigint): boolean {
  try {
    return isMountNamespaceAlive(id);
  } catch {
    return true;
  }
}

/** Default budget of held ways in (2 fds each): far below the usual 1,024-fd soft limit's half. */
export const DEFAULT_MAX_ROOTS = 256;
/**
 * Ways in beyond the budget that only the daemon's own (the host's) namespace may take, so that
 * it is always served while others fill the budget with work in flight.
 */
const HOST_RESERVE = 2;

/** How many processes to try before falling back to a sandbox. */
const MAX_CANDIDATES = 8;
/**
 * Sandboxes held or starting at once, all namespaces together (each is a thread with its own
 * isolate, several MiB). At the limit an idle one is released to make room; if none is idle,
 * the namespace is refused with EAGAIN until one is.
 */
export const MAX_SANDBOXES = 64;

export class NamespaceAccess {
  private readonly handles = new Map<bigint, RootHandle>();
  private readonly acquiring = new Map<bigint, Promise<RootHandle>>();
  private snapshot: DiscoverySnapshot | undefined;
  /** Namespaces known to the catalog beyond the last pass (found by a direct lookup). */
  private known: (id: bigint) => boolean = () => false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly workers: RootWorkers,
    private readonly idleReleaseMs: number,
    private readonly events: AccessEvents,
    /**
     * Ways in held at once (each a root and a guard fd, a sandbox also a thread): least recently
     * used idle ones are closed to make room, and beyond it, with nothing idle to close, a new
     * namespace gets EMFILE. Whoever creates namespaces, the daemon's fds stay bounded.
     */
    private readonly maxRoots = DEFAULT_MAX_ROOTS,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(200, Math.min(1000, idleReleaseMs / 2)));
    this.sweeper.unref();
  }

  /** Thread ids of our sandbox tasks (discovery must not report them as thread-held namespaces). */
  sandboxTids(): Set<number> {
    const s = new Set<number>();
    for (const h of this.handles.values()) if (h.sandbox) s.add(h.sandbox.tid);
    return s;
  }

  /**
   * New discovery result: forget the ways into namespaces that are gone. Discovery does not count
   * our own sandbox threads, so a namespace only a sandbox of ours still holds is gone too: its
   * sandbox is released at once rather than keeping it alive.
   */
  update(snapshot: DiscoverySnapshot, known?: (id: bigint) => boolean): void {
    this.snapshot = snapshot;
    if (known) this.known = known;
    for (const [id, h] of this.handles) {
      if (!snapshot.namespaces.has(id) && !this.known(id)) this.drop(h, 'namespace vanished');
    }
  }

  /** Run `fn` with a root of namespace `ns`, retrying once if the way in went away meanwhile. */
  async withRoot<T>(ns: MountNamespace, fn: (root: RootRef) => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // Acquisition is shared by every request of the namespace: an interrupt stops this
      // request's wait, not the acquisition.
      const h = await abortable(this.held(ns), signal);
      h.inflight++;
      try {
        return await fn(h.ref);
      } catch (err) {
        if (errnoOf(err) === E.ESRCH && attempt === 0) {
          this.drop(h, 'access task gone');
          continue;
        }
        if (errnoOf(err) === E.ESRCH) throw new NsviewError(E.ENOENT, `namespace ${ns.inode} is gone`);
        throw err;
      } finally {
        h.inflight--;
        h.lastUsed = Date.now();
      }
    }
  }

  /**
   * The root of namespace `id` if a way in is already held (no acquisition, never waits), counted as
   * a use for the idle timer. For the main thread's non-blocking fast path.
   */
  peek(id: bigint): RootRef | undefined {
    const h = this.handles.get(id);
    if (!h) return undefined;
    h.lastUsed = Date.now();
    this.touch(h);
    return h.ref;
  }

  /** Most recently used last: the handle map is in LRU order. */
  private touch(h: RootHandle): void {
    if (this.handles.get(h.id) !== h) return;
    this.handles.delete(h.id);
    this.handles.set(h.id, h);
  }

  private isHost(id: bigint): boolean {
    const own = this.snapshot?.ownNamespace;
    return own !== undefined && this.snapshot?.byInode.get(own) === id;
  }

  /**
   * Room for one more way in: least recently used idle handles (nothing in flight, no open file
   * or directory) are closed while the budget is full. With none idle, EMFILE, except for the
   * host's namespace, which may use a small reserve beyond the budget.
   */
  private makeRoom(ns: MountNamespace): void {
    const used = () => this.handles.size + this.acquiring.size;
    if (used() < this.maxRoots) return;
    for (const h of [...this.handles.values()]) {
      if (used() < this.maxRoots) return;
      if (h.inflight === 0 && h.pins === 0 && !this.isHost(h.id)) this.drop(h, 'over the budget of held roots');
    }
    if (used() < this.maxRoots) return;
    if (this.isHost(ns.id) && used() < this.maxRoots + HOST_RESERVE) return;
    throw new NsviewError(E.EMFILE, `${used()} namespace roots held and in use (budget ${this.maxRoots})`);
  }

  /**
   * Root attributes of many namespaces in one worker trip, for a listing of the top directory:
   * held roots are stat'ed, namespaces with a process get their root opened on the way (and kept).
   * Namespaces without a process are left out: a listing must not start sandboxes.
   */
  async statRootsForListing(
    nss: Iterable<MountNamespace>,
  ): Promise<Map<bigint, { stat: Uint8Array; xattrNames?: Uint8Array }>> {
    const items: StatRootItem[] = [];
    const tried = new Map<number, { pid: number; tid: number }>();
    /** Results come back by inode number; within one snapshot a number has one namespace. */
    const byInode = new Map<number, MountNamespace>();
    // Roots are opened and kept for the listing only within the budget: a listing never evicts,
    // and never holds more than the budget (the rest are listed without attributes).
    let room = this.maxRoots - this.handles.size - this.acquiring.size;
    const inUse: RootHandle[] = [];
    for (const ns of nss) {
      byInode.set(ns.inode, ns);
      const h = this.handles.get(ns.id);
      if (h) {
        // Counted in flight, so that no eviction closes its fd while the worker stats it.
        h.inflight++;
        inUse.push(h);
        items.push({ nsInode: ns.inode, rootFd: h.ref.rootFd });
      } else if (!this.acquiring.has(ns.id) && room > 0) {
        const c = this.candidates(ns)[0];
        if (c) {
          room--;
          items.push({ nsInode: ns.inode, nsId: kernelId(ns), pid: c.pid, tid: c.tid });
          tried.set(ns.inode, c);
        }
      }
    }
    const out = new Map<bigint, { stat: Uint8Array; xattrNames?: Uint8Array }>();
    if (items.length === 0) return out;
    let results: StatRootResult[];
    try {
      results = await this.workers.statRoots(items);
    } catch {
      return out;
    } finally {
      for (const h of inUse) h.inflight--;
    }
    for (const r of results) {
      const ns = byInode.get(r.nsInode);
      if (r.opened) {
        if (
          !ns ||
          this.handles.has(ns.id) ||
          this.acquiring.has(ns.id) ||
          this.handles.size + this.acquiring.size >= this.maxRoots
        ) {
          fs.close(r.opened.rootFd, () => {});
          fs.close(r.opened.guardFd, () => {});
        } else {
          const c = tried.get(r.nsInode);
          this.remember(ns, r.opened, c ? viaTask(c) : 'a task');
        }
      }
      if (r.stat && ns) out.set(ns.id, { stat: r.stat, xattrNames: r.xattrNames });
    }
    return out;
  }

  /** Tasks whose root may be the namespace's, best first (our own process, then by pid). */
  private candidates(ns: MountNamespace): Array<{ pid: number; tid: number }> {
    const out: Array<{ pid: number; tid: number }> = [];
    if (ns.pids.includes(process.pid)) out.push({ pid: process.pid, tid: process.pid });
    for (const pid of ns.pids) if (pid !== process.pid) out.push({ pid, tid: pid });
    for (const t of ns.threads) out.push({ pid: t.pid, tid: t.tid ?? t.pid });
    return out;
  }

  /** Keep the way into `ns` (and so a sandbox) while a file or directory of it is open. */
  async pin(ns: MountNamespace, signal?: AbortSignal): Promise<() => void> {
    const h = await abortable(this.held(ns), signal);
    h.pins++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      h.pins--;
      h.lastUsed = Date.now();
    };
  }

  /**
   * A handle of `ns` that is still held when the caller resumes: between the acquisition and the
   * caller's next step another one may have evicted it (its fds closed, their numbers free for
   * reuse), so the caller counts itself on a handle checked to be current.
   */
  private async held(ns: MountNamespace): Promise<RootHandle> {
    for (let i = 0; ; i++) {
      const h = await this.acquire(ns);
      if (this.handles.get(h.id) === h || i >= 3) {
        if (this.handles.get(h.id) !== h)
          throw new NsviewError(E.EMFILE, `namespace ${ns.inode}: its root was evicted while acquired`);
        return h;
      }
    }
  }

  private acquire(ns: MountNamespace): Promise<RootHandle> {
    const h = this.handles.get(ns.id);
    if (h) {
      this.touch(h);
      return Promise.resolve(h);
    }
    let p = this.acquiring.get(ns.id);
    if (!p) {
      try {
        this.makeRoom(ns);
      } catch (err) {
        return Promise.reject(err);
      }
      p = this.open(ns)
        .catch(async (err: unknown) => {
          if (errnoOf(err) === E.ETIMEDOUT) throw err;
          if (!(await this.events.confirmAlive(ns.id))) {
            throw new NsviewError(E.ENOENT, `namespace ${ns.inode} is gone`);
          }
          // Alive, and a fresh pass may know other tasks and refs of this same namespace (same
          // id): one more try with the fresh record.
          const fresh = this.snapshot?.namespaces.get(ns.id);
          if (fresh && fresh !== ns) return this.open(fresh);
          throw err;
        })
        .finally(() => this.acquiring.delete(ns.id));
      this.acquiring.set(ns.id, p);
    }
    return p;
  }

  private async open(ns: MountNamespace): Promise<RootHandle> {
    let lastErr: unknown;
    for (const c of this.candidates(ns).slice(0, MAX_CANDIDATES)) {
      try {
        const r = await this.workers.openTaskRoot(
          { pid: c.pid, tid: c.tid, nsInode: ns.inode, nsId: kernelId(ns), self: false },
          ns.inode,
        );
        return this.remember(ns, r, viaTask(c));
      } catch (err) {
        lastErr = err;
        if (errnoOf(err) === E.ETIMEDOUT) throw err;
      }
    }
    try {
      return await this.openSandbox(ns);
    } catch (err) {
      throw lastErr ?? err;
    }
  }

  private remember(ns: MountNamespace, r: RootRef, via: string, sandbox?: SandboxTask): RootHandle {
    const h: RootHandle = {
      id: ns.id,
      nsInode: ns.inode,
      ref: refOf(r),
      via,
      sandbox,
      inflight: 0,
      pins: 0,
      lastUsed: Date.now(),
    };
    this.handles.set(ns.id, h);
    return h;
  }

  /** Start a sandbox in `ns` through `ref` (host path, or a path inside another namespace). */
  private async startSandbox(ns: MountNamespace, ref: NamespaceRef): Promise<SandboxTask> {
    const last = ref[ref.length - 1]!;
    const nsId = kernelId(ns);
    if (ref.length === 1) return SandboxTask.start({ rootFd: -1, path: last, nsInode: ns.inode, nsId });
    const outer = this.namespaceOfRef(ref.slice(0, -1));
    if (!outer) throw new NsviewError(E.ENOENT, `no namespace for ${formatRef(ref.slice(0, -1))}`);
    return this.withRoot(outer, (root) =>
      SandboxTask.start({ rootFd: root.rootFd, path: last, nsInode: ns.inode, nsId }),
    );
  }

  private namespaceOfRef(ref: NamespaceRef): MountNamespace | undefined {
    const key = ref.join('\0');
    for (const ns of this.snapshot?.namespaces.values() ?? []) {
      if (ns.refs.some((r) => r.join('\0') === key)) return ns;
    }
    return undefined;
  }

  private startingSandboxes = 0;

  /** Room for one more sandbox: releases the least recently used idle one at the limit. */
  private makeRoomForSandbox(nsInode: number): void {
    if (this.sandboxCount + this.startingSandboxes < MAX_SANDBOXES) return;
    let lru: RootHandle | undefined;
    for (const h of this.handles.values()) {
      if (h.sandbox && h.inflight === 0 && h.pins === 0 && (!lru || h.lastUsed < lru.lastUsed)) lru = h;
    }
    if (!lru) throw new NsviewError(E.EAGAIN, `namespace ${nsInode}: ${MAX_SANDBOXES} sandboxes in use, none idle`);
    this.drop(lru, 'making room for another namespace');
  }

  private async openSandbox(ns: MountNamespace): Promise<RootHandle> {
    let lastErr: unknown = new NsviewError(E.ENOENT, `no way into namespace ${ns.inode}`);
    // Where the kernel reopens a namespace by its id, that is the last way in: no file of it is
    // needed (a namespace found directly has none yet).
    const nsId = kernelId(ns);
    const byId = nsId !== undefined && namespaceIdSupport().handles ? [[] as NamespaceRef] : [];
    for (const ref of [...ns.refs, ...byId]) {
      try {
        this.makeRoomForSandbox(ns.inode);
        this.startingSandboxes++;
        const task = await (
          ref.length === 0
            ? SandboxTask.start({ rootFd: -1, path: '', nsInode: ns.inode, nsId })
            : this.startSandbox(ns, ref)
        ).finally(() => this.startingSandboxes--);
        try {
          const r = await this.workers.openTaskRoot(
            { pid: process.pid, tid: task.tid, nsInode: ns.inode, nsId, self: true },
            ns.inode,
          );
          this.events.onEvent(
            `sandbox started for namespace ${ns.inode} (thread ${task.tid}, via ${ref.length === 0 ? `its id ${nsId}` : formatRef(ref)})`,
          );
          return this.remember(ns, r, `sandbox thread ${task.tid}`, task);
        } catch (err) {
          task.release();
          throw err;
        }
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  private drop(h: RootHandle, why: string): void {
    if (this.handles.get(h.id) !== h) return;
    this.handles.delete(h.id);
    // Closing an fd on a root or /proc entry never waits on a filesystem.
    fs.close(h.ref.rootFd, () => {});
    fs.close(h.ref.guardFd, () => {});
    if (h.sandbox) {
      h.sandbox.release();
      this.events.onEvent(`sandbox released for namespace ${h.nsInode} (${why})`);
    }
  }

  /**
   * Idle sandboxes go, and so does every way into a namespace that died or whose guard task is
   * gone: a root fd held past its namespace's death pins the dead mount tree (and a guard fd a
   * deleted /proc entry) until the namespace is next used, which may be never. Liveness is a
   * listmount by id (no fd, ~1.4 us); the guard check reads procfs only.
   */
  private sweep(): void {
    const now = Date.now();
    const byId = namespaceIdSupport().listmountById;
    for (const h of [...this.handles.values()]) {
      if (h.sandbox && h.inflight === 0 && h.pins === 0 && now - h.lastUsed >= this.idleReleaseMs) {
        this.drop(h, 'idle');
        continue;
      }
      if (byId && (h.id & NUMBER_KEY_BIT) === 0n && !aliveOrUnknown(h.id)) {
        this.drop(h, 'namespace died');
        this.events.onDead?.(h.id);
        continue;
      }
      if (!h.sandbox && h.inflight === 0 && !guardHolds(h.ref)) this.drop(h, 'access task gone');
    }
  }

  /** Release everything (sandboxes end, fds close). */
  close(): void {
    clearInterval(this.sweeper);
    for (const h of [...this.handles.values()]) this.drop(h, 'shutdown');
  }

  /** The thread id of the sandbox we hold in `nsInode`, if any (for reading its mountinfo). */
  /** [namespace inode, sandbox tid] of every sandbox held. */
  *heldSandboxes(): Iterable<[number, number]> {
    for (const h of this.handles.values()) if (h.sandbox) yield [h.nsInode, h.sandbox.tid];
  }

  /** For logs and tests: how many ways in (root + guard fd each) are held. */
  get handleCount(): number {
    return this.handles.size;
  }

  /** For logs and tests: how many sandbox tasks are held. */
  get sandboxCount(): number {
    let n = 0;
    for (const h of this.handles.values()) if (h.sandbox) n++;
    return n;
  }
}

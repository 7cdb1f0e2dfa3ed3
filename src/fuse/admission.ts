/**
 * Which requests run now, which wait, and what an interrupt does to each.
 *
 * Why a limit at all: requests keep being read from the device whatever their handlers do (so
 * FORGETs and INTERRUPTs always get through), but at most `maxInFlight` handlers run at once; the
 * rest wait. Fairness: each request has a key (the session asks the filesystem: for nsview, the
 * namespace it reaches into; 0 for the view's own nodes). Waiting requests queue per key and are
 * started round-robin across keys; a key with nothing running is started even when the limit is
 * reached, and no key may hold more than `maxPerKey` handlers. So requests piling up in one hung
 * directory slow only their own key: every other key always has a request running.
 * An INTERRUPT then finds its target in one of three places:
 *  - running: its signal is aborted; the handler answers (EINTR or its result) in its own time;
 *  - waiting: it is answered EINTR at once and its handler never runs;
 *  - not here yet: the interrupt overtook its request (they are read separately, and with several
 *    threadpool readers out of order), or the request was already answered. It is remembered for
 *    a short while: a request that shows up then starts aborted; otherwise the interrupt is
 *    answered EAGAIN, so the kernel requeues it if its request still waits (and drops it if not).
 * No knowledge of opcodes or the device: the session supplies how to run and answer a request.
 */
import { E } from '../sys/errors.js';

/** An INTERRUPT that overtook its request waits this long before we let the kernel requeue it. */
export const EARLY_INTERRUPT_MS = 10;

/** What admission needs of a request. */
export interface Admissible {
  readonly unique: bigint;
  /** Abort the request's signal (idempotent). */
  abort(): void;
}

export interface AdmissionHooks<R extends Admissible> {
  /** The request's fairness key (see above); without it every request has key 0. */
  keyOf?(req: R): number;
  /** Run the request's handler and answer it; the promise settles once answered and never rejects. */
  run(req: R): Promise<void>;
  /** Answer a request that never ran (interrupted while it waited) with `errno`. */
  refuse(req: R, errno: number): void;
  /** Answer a request known only by its unique (an interrupt whose target never showed up). */
  answer(unique: bigint, errno: number): void;
}

export class Admission<R extends Admissible> {
  private readonly active = new Map<bigint, { req: R; key: number }>();
  /** Running handlers per key. */
  private readonly activePerKey = new Map<number, number>();
  /** Waiting requests per key, FIFO within a key; the map's order is the round-robin order. */
  private readonly waiting = new Map<number, R[]>();
  private waitingCount = 0;
  /** Interrupts whose request we have not seen yet: target unique -> the interrupt's own unique. */
  private readonly early = new Map<bigint, bigint>();
  private stopped = false;

  private readonly maxPerKey: number;

  constructor(
    private readonly maxInFlight: number,
    private readonly hooks: AdmissionHooks<R>,
    private readonly earlyInterruptMs = EARLY_INTERRUPT_MS,
    maxPerKey?: number,
  ) {
    // A quarter of the limit: one key's pile-up leaves most of the room to the others. Without
    // keys there is one group, with all the room.
    this.maxPerKey = maxPerKey ?? (hooks.keyOf ? Math.max(1, Math.floor(maxInFlight / 4)) : maxInFlight);
  }

  /** Requests whose handler is running. */
  get running(): number {
    return this.active.size;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waitingCount;
  }

  submit(req: R): void {
    if (this.stopped) return;
    if (this.early.delete(req.unique)) req.abort();
    const key = this.hooks.keyOf?.(req) ?? 0;
    const q = this.waiting.get(key);
    // Behind its own key's waiting requests (FIFO per key), else now if there is room.
    if (q === undefined && this.mayStart(key)) {
      this.execute(req, key);
      return;
    }
    if (q === undefined) this.waiting.set(key, [req]);
    else q.push(req);
    this.waitingCount++;
  }

  private mayStart(key: number): boolean {
    const running = this.activePerKey.get(key) ?? 0;
    if (running === 0) return true;
    return running < this.maxPerKey && this.active.size < this.maxInFlight;
  }

  /** The kernel sent FUSE_INTERRUPT (its own unique `own`) for request `target`. */
  interrupt(target: bigint, own: bigint): void {
    if (this.stopped) return;
    const running = this.active.get(target);
    if (running !== undefined) {
      running.req.abort();
      return;
    }
    for (const [key, q] of this.waiting) {
      const i = q.findIndex((r) => r.unique === target);
      if (i < 0) continue;
      const [waiting] = q.splice(i, 1);
      this.waitingCount--;
      if (q.length === 0) this.waiting.delete(key);
      this.hooks.refuse(waiting!, E.EINTR);
      return;
    }
    this.early.set(target, own);
    setTimeout(() => {
      if (this.early.get(target) !== own) return;
      this.early.delete(target);
      if (!this.stopped) this.hooks.answer(own, E.EAGAIN);
    }, this.earlyInterruptMs).unref();
  }

  /** The session ends: abort every running handler's signal, drop the waiting ones unanswered. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const a of this.active.values()) a.req.abort();
    this.active.clear();
    this.activePerKey.clear();
    this.waiting.clear();
    this.waitingCount = 0;
    this.early.clear();
  }

  private execute(req: R, key: number): void {
    const entry = { req, key };
    this.active.set(req.unique, entry);
    this.activePerKey.set(key, (this.activePerKey.get(key) ?? 0) + 1);
    void this.hooks.run(req).then(() => this.done(entry));
  }

  private done(entry: { req: R; key: number }): void {
    if (this.active.get(entry.req.unique) === entry) {
      this.active.delete(entry.req.unique);
      const n = (this.activePerKey.get(entry.key) ?? 1) - 1;
      if (n <= 0) this.activePerKey.delete(entry.key);
      else this.activePerKey.set(entry.key, n);
    }
    this.startWaiting();
  }

  /** Start waiting requests round-robin across keys, as far as the limits allow. */
  private startWaiting(): void {
    let progress = true;
    while (progress && this.waitingCount > 0) {
      progress = false;
      for (const [key, q] of [...this.waiting]) {
        if (!this.mayStart(key)) continue;
        const req = q.shift()!;
        this.waitingCount--;
        // Moved to the end of the round-robin order (or gone when empty).
        this.waiting.delete(key);
        if (q.length > 0) this.waiting.set(key, q);
        this.execute(req, key);
        progress = true;
      }
    }
  }
}

/**
 * Which requests run now, which wait, and what an interrupt does to each.
 *
 * Why a limit at all: requests keep being read from the device whatever their handlers do (so
 * FORGETs and INTERRUPTs always get through), but at most `maxInFlight` handlers run at once; the
 * rest wait in a FIFO. An INTERRUPT then finds its target in one of three places:
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
  /** Run the request's handler and answer it; the promise settles once answered and never rejects. */
  run(req: R): Promise<void>;
  /** Answer a request that never ran (interrupted while it waited) with `errno`. */
  refuse(req: R, errno: number): void;
  /** Answer a request known only by its unique (an interrupt whose target never showed up). */
  answer(unique: bigint, errno: number): void;
}

export class Admission<R extends Admissible> {
  private readonly active = new Map<bigint, R>();
  private readonly waiting: R[] = [];
  /** Interrupts whose request we have not seen yet: target unique -> the interrupt's own unique. */
  private readonly early = new Map<bigint, bigint>();
  private stopped = false;

  constructor(
    private readonly maxInFlight: number,
    private readonly hooks: AdmissionHooks<R>,
    private readonly earlyInterruptMs = EARLY_INTERRUPT_MS,
  ) {}

  /** Requests whose handler is running. */
  get running(): number {
    return this.active.size;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  submit(req: R): void {
    if (this.stopped) return;
    if (this.early.delete(req.unique)) req.abort();
    if (this.active.size < this.maxInFlight) this.execute(req);
    else this.waiting.push(req);
  }

  /** The kernel sent FUSE_INTERRUPT (its own unique `own`) for request `target`. */
  interrupt(target: bigint, own: bigint): void {
    if (this.stopped) return;
    const running = this.active.get(target);
    if (running !== undefined) {
      running.abort();
      return;
    }
    const waiting = this.waiting.find((r) => r.unique === target);
    if (waiting !== undefined) {
      this.waiting.splice(this.waiting.indexOf(waiting), 1);
      this.hooks.refuse(waiting, E.EINTR);
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
    for (const req of this.active.values()) req.abort();
    this.active.clear();
    this.waiting.length = 0;
    this.early.clear();
  }

  private execute(req: R): void {
    this.active.set(req.unique, req);
    void this.hooks.run(req).then(() => this.done(req));
  }

  private done(req: R): void {
    if (this.active.get(req.unique) === req) this.active.delete(req.unique);
    while (this.waiting.length > 0 && this.active.size < this.maxInFlight) {
      this.execute(this.waiting.shift()!);
    }
  }
}

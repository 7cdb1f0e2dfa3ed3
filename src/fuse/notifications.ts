/**
 * Unsolicited notifications to the kernel (drop a cached name or inode), written one at a time.
 *
 * Why a queue of its own: unlike a reply, a notification write CAN block, because the kernel
 * takes inode locks that a request we have yet to answer may hold. So it cannot be written from
 * the main thread (which is the one that answers); it goes through libuv's pool instead, but ONE
 * AT A TIME: a blocked notification waits for a reply that only the main thread sends, after a
 * reader delivered its request, so notifications must never occupy more than one pool thread
 * (several could take every pool thread, threadpool readers' refills included: a deadlock).
 * Queued duplicates are coalesced, so a burst of namespace churn costs one write per name.
 */
import fs from 'node:fs';
import { constants } from 'node:os';
import { encodeInvalEntry, encodeInvalInode } from './codec.js';
import { errnoOf } from '../sys/errors.js';

const E = constants.errno;

export interface NotificationHooks {
  report(err: unknown, what: string): void;
  /** After stop(): the write in flight returned, the device fd may be closed now. */
  onIdle(): void;
}

export class NotificationQueue {
  /** Keyed by the message's bytes, so a duplicate of a queued notification is dropped. */
  private readonly queue = new Map<string, { msg: Buffer; what: string }>();
  private writing = false;
  private accepting = false;
  private stopped = false;

  constructor(
    private readonly fd: number,
    private readonly hooks: NotificationHooks,
  ) {}

  /** Accept notifications from now on: before INIT the kernel has nothing cached and refuses them. */
  start(): void {
    if (!this.stopped) this.accepting = true;
  }

  /** Drop what is queued and accept nothing more. A write in flight still returns (onIdle). */
  stop(): void {
    this.stopped = true;
    this.accepting = false;
    this.queue.clear();
  }

  /** A write is in flight on the device fd. */
  get busy(): boolean {
    return this.writing;
  }

  invalidateEntry(parent: bigint, name: Buffer): void {
    this.push(encodeInvalEntry(parent, name), 'NOTIFY_INVAL_ENTRY');
  }

  invalidateInode(nodeid: bigint): void {
    this.push(encodeInvalInode(nodeid), 'NOTIFY_INVAL_INODE');
  }

  private push(msg: Buffer, what: string): void {
    if (!this.accepting) return;
    const key = msg.toString('latin1');
    if (!this.queue.has(key)) this.queue.set(key, { msg, what });
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.stopped) return;
    const next = this.queue.entries().next();
    if (next.done) return;
    const [key, { msg, what }] = next.value;
    this.queue.delete(key);
    this.writing = true;
    fs.write(this.fd, msg, 0, msg.length, null, (err) => {
      this.writing = false;
      // ENOENT: the kernel has nothing cached for it, which is what we wanted.
      if (err && errnoOf(err) !== E.ENOENT && !this.stopped) this.hooks.report(err, what);
      if (this.stopped) this.hooks.onIdle();
      else this.pump();
    });
  }
}

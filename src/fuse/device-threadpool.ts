/**
 * Reading /dev/fuse on libuv's threadpool: the fallback reader (see device-reader.ts), for a Node
 * whose pipe binding cannot poll the device, or when polling is turned off.
 *
 * `readers` fs.read() calls stay outstanding, each on its own request-sized buffer, so a second
 * request can be read while the main thread handles the first. Each blocks one pool thread for
 * the session's whole life. After stop() they return only once the connection is aborted; the
 * session must keep the fd open until then (onIdle), or a read would hit a closed (or reused) fd.
 */
import fs from 'node:fs';
import { constants } from 'node:os';
import { errnoOf } from '../sys/errors.js';
import type { DeviceReader, DeviceReaderEvents } from './device-reader.js';
import { READ_BUFFER_SIZE } from './protocol.js';

const E = constants.errno;

export class ThreadpoolReader implements DeviceReader {
  readonly kind = 'threadpool';
  private outstanding = 0;
  private stopped = false;

  constructor(
    private readonly fd: number,
    readers: number,
    private readonly events: DeviceReaderEvents,
  ) {
    for (let i = 0; i < readers; i++) this.arm(Buffer.allocUnsafe(READ_BUFFER_SIZE));
  }

  get idle(): boolean {
    return this.outstanding === 0;
  }

  touch(): void {
    // Nothing to keep awake: pool threads block in read(2) anyway.
  }

  stop(): void {
    this.stopped = true;
  }

  private arm(buf: Buffer): void {
    if (this.stopped) return;
    this.outstanding++;
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.outstanding--;
      this.onRead(buf, err, n);
    });
  }

  private onRead(buf: Buffer, err: NodeJS.ErrnoException | null, n: number): void {
    if (this.stopped) {
      // Whatever was read after stop() stays unanswered: the connection is being aborted.
      if (this.idle) this.events.onIdle();
      return;
    }
    if (err) {
      const errno = errnoOf(err);
      // ENOENT: the request was interrupted while we read it; nothing to answer.
      if (errno === E.EINTR || errno === E.EAGAIN || errno === E.ENOENT) return this.arm(buf);
      this.stopped = true;
      this.events.onEnd(errno);
      if (this.idle) this.events.onIdle();
      return;
    }
    this.events.onRequest(buf, n);
    this.arm(buf);
  }
}

/**
 * Where requests come from: one interface over the two ways of reading /dev/fuse, so the session
 * neither knows nor cares which one serves it.
 *
 *  - epoll (device-poll.ts, the default): the main thread's event loop is woken by the kernel and
 *    reads the request itself without blocking. One thread wake-up per request.
 *  - threadpool (device-threadpool.ts, the fallback when this Node cannot poll the fd, or when
 *    asked): `readers` blocking fs.read() calls stay outstanding on libuv's pool, each on its own
 *    buffer. Two wake-ups per request, and that many pool threads taken for the session's life.
 *
 * Both deliver exactly one request per read (the device never merges or splits them), hand over a
 * buffer that is reused as soon as onRequest returns, retry the reads the kernel fails
 * transiently (EINTR, EAGAIN, ENOENT: a request interrupted while being read), and report the end
 * once with its errno (ENODEV: unmounted or aborted, the normal end).
 */
import { PollReader } from './device-poll.js';
import { ThreadpoolReader } from './device-threadpool.js';
import { READ_BUFFER_SIZE } from './protocol.js';

export interface DeviceReaderEvents {
  /** A request is in `buf[0, n)`; the buffer is reused as soon as this returns. */
  onRequest(buf: Buffer, n: number): void;
  /** Reading stopped for good: ENODEV (unmounted or aborted) or another error. Called once. */
  onEnd(errno: number): void;
  /** After stop(): the last outstanding read returned, the device fd may be closed now. */
  onIdle(): void;
}

export interface DeviceReader {
  readonly kind: 'epoll' | 'threadpool';
  /** No read is outstanding on the device fd (closing it now cannot pull it from under one). */
  readonly idle: boolean;
  /** A request came or a reply went: with busy polling, keep the loop awake for the window. */
  touch(): void;
  /** Stop reading. Idempotent. Outstanding threadpool reads return once the connection aborts. */
  stop(): void;
}

export interface DeviceReaderOptions {
  /** Try epoll first (default); false: threadpool reads only. */
  poll: boolean;
  /** With epoll: µs the loop stays awake after each request or reply (0: never). */
  busyPollUs: number;
  /** With threadpool reads: how many reads stay outstanding. */
  readers: number;
}

/** Start reading `fd` (after mount(2): before it the device refuses reads with EPERM). */
export function startDeviceReader(fd: number, opts: DeviceReaderOptions, events: DeviceReaderEvents): DeviceReader {
  if (opts.poll) {
    const poller = PollReader.open(fd, Buffer.allocUnsafe(READ_BUFFER_SIZE), events, opts.busyPollUs);
    if (poller !== undefined) return poller;
  }
  return new ThreadpoolReader(fd, opts.readers, events);
}

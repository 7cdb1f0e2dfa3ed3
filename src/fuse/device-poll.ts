/**
 * Reading /dev/fuse from the main thread's own event loop (epoll), not from libuv's threadpool:
 * the default DeviceReader (see device-reader.ts).
 *
 * Why: a blocking read on a pool thread costs every request two thread wake-ups before its
 * handler runs (the kernel wakes the pool thread, which wakes the main thread); on a small VM a
 * wake-up costs ~100 µs, more than handling most requests. /dev/fuse is pollable, so libuv can
 * watch it like a pipe: the kernel then wakes the main thread itself, which reads the request
 * without blocking (O_NONBLOCK) and answers it - one wake-up, as in libfuse's own loop.
 *
 * Node exposes no poll handle for arbitrary fds; its pipe handle (uv_pipe_open) is one, reached
 * through process.binding('pipe_wrap'), with reads going into one buffer of ours
 * (useUserBuffer), so every read(2) gets the full request-sized buffer the kernel insists on.
 * If that binding is missing or refuses the fd, open() returns undefined and the session falls
 * back to pool reads. libuv reports each read(2) separately, and /dev/fuse returns exactly one
 * request per read, so message boundaries are kept.
 *
 * Busy polling (`busyPollUs`): after a request or a reply the loop stays awake that long
 * (setImmediate keeps libuv's epoll_wait at timeout 0) instead of sleeping in epoll. A sleeping
 * thread on a VM whose idle vCPUs halt costs 100-150 µs to wake (measured here: a getxattr round
 * trip through bindfs takes ~280 µs across CPUs, 26 µs with both ends pinned to one CPU); a
 * client that sends its next request within the window finds us awake. Each turn yields the CPU
 * (sched_yield) so a client or worker that shares our CPU is not kept waiting. The cost is CPU
 * time: at most the window after each burst.
 *
 * The handle owns a dup of the device fd (closing the handle closes only the dup). libuv stops
 * a handle after any read error, so an ENOENT (a request interrupted while being read) is
 * followed by a fresh handle on a fresh dup.
 */
import fs from 'node:fs';
import { constants } from 'node:os';
import { createRequire } from 'node:module';
import { dupCloexec, schedYield } from '../sys/libc.js';
import type { DeviceReader, DeviceReaderEvents } from './device-reader.js';

const E = constants.errno;
/** libuv's UV_EOF, negated (libuv reports a 0-byte read as -4095). */
const UV_EOF = 4095;

interface PipeHandle {
  open(fd: number): number;
  useUserBuffer(buf: Uint8Array): void;
  readStart(): number;
  readStop(): number;
  close(cb?: () => void): void;
  onread: ((arrayBuffer?: ArrayBuffer) => void) | null;
}
interface PipeBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}
interface StreamBinding {
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
}

let bindings: { pipe: PipeBinding; stream: StreamBinding } | null | undefined;

function loadBindings(): { pipe: PipeBinding; stream: StreamBinding } | null {
  if (bindings !== undefined) return bindings;
  try {
    // process.binding is deprecated (DEP0111) but kept for these modules; the require keeps
    // TypeScript from typing it and lets a Node without it fail here, not at load.
    const proc = createRequire(import.meta.url)('node:process') as {
      binding(name: string): unknown;
    };
    const pipe = proc.binding('pipe_wrap') as PipeBinding;
    const stream = proc.binding('stream_wrap') as StreamBinding;
    const ok =
      typeof pipe.Pipe === 'function' &&
      typeof pipe.Pipe.prototype.useUserBuffer === 'function' &&
      stream.streamBaseState instanceof Int32Array &&
      typeof stream.kReadBytesOrError === 'number';
    bindings = ok ? { pipe, stream } : null;
  } catch {
    bindings = null;
  }
  return bindings;
}

export class PollReader implements DeviceReader {
  readonly kind = 'epoll';
  private handle: PipeHandle | undefined;
  private stopped = false;
  private spinning = false;
  private spinUntil = 0;
  private readonly spinMs: number;

  private constructor(
    private readonly deviceFd: number,
    private readonly buf: Buffer,
    private readonly b: { pipe: PipeBinding; stream: StreamBinding },
    private readonly cb: DeviceReaderEvents,
    busyPollUs: number,
  ) {
    this.spinMs = busyPollUs / 1000;
  }

  /**
   * A reader on `deviceFd`, started; undefined when this Node offers no way to poll it.
   * `busyPollUs`: how long the loop stays awake after each request or reply (0: never).
   */
  static open(deviceFd: number, buf: Buffer, cb: DeviceReaderEvents, busyPollUs = 0): PollReader | undefined {
    const b = loadBindings();
    if (!b) return undefined;
    const r = new PollReader(deviceFd, buf, b, cb, busyPollUs);
    return r.startHandle() ? r : undefined;
  }

  /** Reads happen on the main thread only: nothing is ever left outstanding on the device fd. */
  get idle(): boolean {
    return true;
  }

  /** Something happened (a request came, a reply went): keep the loop awake for the window. */
  touch(): void {
    if (this.spinMs <= 0) return;
    this.spinUntil = performance.now() + this.spinMs;
    if (!this.spinning) {
      this.spinning = true;
      setImmediate(this.spin);
    }
  }

  private readonly spin = (): void => {
    if (this.stopped || performance.now() >= this.spinUntil) {
      this.spinning = false;
      return;
    }
    schedYield();
    setImmediate(this.spin);
  };

  private startHandle(): boolean {
    let fd: number;
    let h: PipeHandle;
    try {
      fd = dupCloexec(this.deviceFd); // a dup, never a reopen: that would be a new connection
    } catch {
      return false;
    }
    try {
      h = new this.b.pipe.Pipe(this.b.pipe.constants.SOCKET);
      if (h.open(fd) !== 0) throw new Error('uv_pipe_open refused the device');
    } catch {
      fs.closeSync(fd);
      return false;
    }
    // From here the handle owns the dup: closing the handle closes it.
    try {
      h.useUserBuffer(this.buf);
      h.onread = () => this.onRead(h);
      if (h.readStart() !== 0) throw new Error('uv_read_start failed');
    } catch {
      h.close();
      return false;
    }
    this.handle = h;
    return true;
  }

  private onRead(h: PipeHandle): void {
    if (h !== this.handle || this.stopped) return;
    const n = this.b.stream.streamBaseState[this.b.stream.kReadBytesOrError]!;
    if (n > 0) {
      this.touch();
      this.cb.onRequest(this.buf, n);
      return;
    }
    // libuv has stopped this handle. n is a negative errno (UV_EOF for 0-byte reads).
    const errno = -n;
    this.handle = undefined;
    h.close();
    if (!this.stopped && (errno === E.ENOENT || errno === E.EINTR) && this.startHandle()) return;
    this.stopped = true;
    this.cb.onEnd(errno === UV_EOF ? E.ENODEV : errno); // a 0-byte read: the device's end
  }

  /** Stop reading and close the dup. Idempotent. */
  stop(): void {
    this.stopped = true;
    const h = this.handle;
    this.handle = undefined;
    if (h) {
      h.readStop();
      h.close();
    }
  }
}

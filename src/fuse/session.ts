/**
 * The serving loop, tying the engine's parts together: requests from the device reader
 * (device-reader.ts) are looked up in the opcode table (opcodes.ts), decoded, and either answered
 * by the engine at once or handed to admission (admission.ts), which runs their FuseOperations
 * handler; replies go out through the reply writer (reply.ts), notifications through their queue
 * (notifications.ts). It also owns what spans them: the session's end, and closing the device fd
 * only once no read or notification is outstanding on it. Knows nothing about mounting; index.ts
 * wires it to a mount.
 *
 * Threading model. All of nsview's JS runs on the main thread, and that thread is the only one
 * that answers the kernel (a READ reply a handler delegates to an io worker aside). Replies are
 * written synchronously; only notifications and threadpool reads use libuv's pool.
 *
 * Nothing a handler does may take the daemon down: sync throws, rejections, non-promises and
 * malformed results all end as an error reply.
 */
import fs from 'node:fs';
import { Admission } from './admission.js';
import { deviceBackingFiles } from './backing-files.js';
import { type InitIn, decodeInHeader } from './codec.js';
import { type DeviceReader, startDeviceReader } from './device-reader.js';
import { type InitInfo, negotiateInit } from './init-negotiation.js';
import { NotificationQueue } from './notifications.js';
import { type Engine, opcodeRow } from './opcodes.js';
import { IN_HEADER_SIZE, Init } from './protocol.js';
import { ReplyWriter } from './reply.js';
import { Request } from './request.js';
import type { BackingFiles, FuseOperations } from './types.js';
import { E, NsviewError, errnoOf } from '../sys/errors.js';

export interface ServerOptions {
  readOnly: boolean;
  /** Concurrent handler invocations; further requests wait in a FIFO. */
  maxInFlight: number;
  /** fs.read() calls kept outstanding on the device, when it cannot be polled (see pollDevice). */
  readers: number;
  /** Read the device from the main thread's event loop (default); false: pool reads only. */
  pollDevice?: boolean;
  /** With epoll reads: µs the loop stays awake after each request or reply (see device-poll.ts). */
  busyPollUs?: number;
  cacheSymlinks: boolean;
  /** Ask for FUSE_POSIX_ACL (see MountOptions.posixAcl). */
  posixAcl: boolean;
  /** Ask for FUSE_PASSTHROUGH at INIT (see MountOptions.passthrough). */
  passthrough?: boolean;
  onTrace?: (t: RequestTrace) => void;
  onError: (err: unknown, opcode: string) => void;
}

/** One served request, for --verbose tracing. */
export interface RequestTrace {
  op: string;
  nodeid: bigint;
  /** The name looked up (LOOKUP) or asked for (GETXATTR). */
  name?: Buffer;
  /** 0 on success, else the errno answered. */
  errno: number;
  ms: number;
}

/**
 * Largest errno a reply may carry: the kernel refuses a reply whose error is <= -512 (the
 * kernel-internal restart codes), and its caller would then wait forever.
 */
const MAX_REPLY_ERRNO = 511;

export class FuseServer implements Engine {
  readonly initialized: Promise<InitInfo>;
  /** Requests received per opcode: what a workload costs, for `SIGUSR1` stats and benchmarks. */
  readonly opcodeCounts = new Float64Array(64);
  /** Resolves when serving stopped: the device reported the end, or stop() was called. */
  readonly ended: Promise<void>;
  /** Resolves once no I/O is outstanding on the device and the fd is closed. */
  readonly drained: Promise<void>;

  private resolveInit!: (info: InitInfo) => void;
  private rejectInit!: (err: Error) => void;
  private resolveEnded!: () => void;
  private resolveDrained!: () => void;

  private stopping = false;
  private fdClosed = false;
  private destroyed = false;

  private reader: DeviceReader | undefined;
  private readonly replies: ReplyWriter;
  /** Set at INIT when the kernel agreed FUSE_PASSTHROUGH. */
  backing: BackingFiles | undefined;
  private readonly notifications: NotificationQueue;
  private readonly admission: Admission<Request>;

  constructor(
    private readonly fd: number,
    private readonly ops: FuseOperations,
    private readonly opts: ServerOptions,
  ) {
    this.initialized = new Promise((resolve, reject) => {
      this.resolveInit = resolve;
      this.rejectInit = reject;
    });
    this.initialized.catch(() => undefined); // observed by the mounter; never an unhandled rejection
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    this.drained = new Promise((resolve) => (this.resolveDrained = resolve));

    this.replies = new ReplyWriter(fd, {
      afterWrite: () => this.reader?.touch(),
      // The session's end forgets everything at once (destroy): no give-backs after it.
      giveBack: (nodeid) => {
        if (!this.stopping) this.forget(nodeid, 1n);
      },
      report: (err, what) => this.report(err, what),
      stopping: () => this.stopping,
    });
    this.notifications = new NotificationQueue(fd, {
      report: (err, what) => this.report(err, what),
      onIdle: () => this.closeIfDrained(),
    });
    this.admission = new Admission<Request>(opts.maxInFlight, {
      keyOf: (req) => this.fairnessKey(req.nodeid),
      run: (req) => this.execute(req),
      refuse: (req, errno) => this.replies.error(req, errno),
      answer: (unique, errno) => this.replies.errnoTo(unique, errno),
    });
  }

  get readOnly(): boolean {
    return this.opts.readOnly;
  }

  /** Start reading. Call after mount(2): before it, the device refuses reads (EPERM). */
  start(): void {
    this.reader = startDeviceReader(
      this.fd,
      {
        poll: this.opts.pollDevice !== false,
        busyPollUs: this.opts.busyPollUs ?? 0,
        readers: this.opts.readers,
      },
      {
        onRequest: (buf, n) => this.onRequest(buf, n),
        onEnd: (errno) => {
          if (errno !== E.ENODEV) this.report(new NsviewError(errno, 'reading /dev/fuse'), 'read');
          this.stop();
        },
        onIdle: () => this.closeIfDrained(),
      },
    );
  }

  /**
   * Stop serving: abort every handler's signal, call ops.destroy, resolve `ended`. The fd is
   * closed once outstanding reads return, which needs the connection aborted (index.ts does that).
   */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.rejectInit(new NsviewError(E.ENODEV, 'FUSE session ended before INIT'));
    this.admission.stop();
    this.notifications.stop();
    this.reader?.stop();
    this.destroy();
    this.resolveEnded();
    this.closeIfDrained();
  }

  /** How requests are read: through epoll on the main thread, or threadpool reads. */
  get reading(): 'epoll' | 'threadpool' {
    return this.reader?.kind ?? 'epoll';
  }

  invalidateEntry(parent: bigint, name: Buffer): void {
    this.notifications.invalidateEntry(parent, name);
  }

  invalidateInode(nodeid: bigint): void {
    this.notifications.invalidateInode(nodeid);
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  private onRequest(buf: Buffer, n: number): void {
    if (this.stopping) return;
    const h = decodeInHeader(buf, n);
    if (h === undefined) return;
    this.opcodeCounts[h.opcode & 63] = (this.opcodeCounts[h.opcode & 63] ?? 0) + 1;
    const row = opcodeRow(h.opcode);
    try {
      if (this.opts.readOnly && row.modifies) return this.reply(h.unique, E.EROFS);
      if (row.kind === 'engine') return row.answer(this, h, buf, IN_HEADER_SIZE, h.len);
      const call = row.decode(buf, IN_HEADER_SIZE, h.len);
      if (this.opts.readOnly && call.modifies) return this.reply(h.unique, E.EROFS);
      this.admission.submit(new Request(h, row.name, call, this.fd));
    } catch (e) {
      // A body the codec refused (EPROTO), or a bug in the engine: handlers run in execute().
      this.report(e, row.name);
      if (!row.noReply) this.reply(h.unique, replyErrno(errnoOf(e)));
    }
  }

  private fairnessKey(nodeid: bigint): number {
    try {
      return this.ops.fairnessKey?.(nodeid) ?? 0;
    } catch (e) {
      this.report(e, 'fairnessKey');
      return 0;
    }
  }

  /** Runs a request's handler and answers it; never rejects (admission relies on that). */
  private execute(req: Request): Promise<void> {
    const t0 = this.opts.onTrace ? performance.now() : 0;
    let p: Promise<void>;
    try {
      p = req.call.run(this.ops, req, this.replies);
    } catch (e) {
      this.trace(req, this.replyFailure(req, e), t0);
      return Promise.resolve();
    }
    return p.then(
      () => this.trace(req, 0, t0),
      (e: unknown) => this.trace(req, this.replyFailure(req, e), t0),
    );
  }

  /**
   * Answer a handler's failure with the errno it carries; returns the errno sent (0 if a reply
   * had already gone out). A failure without an errno of its own (errnoOf says EIO for it, and it
   * is no NsviewError) is a bug: answered EIO and reported.
   */
  private replyFailure(req: Request, err: unknown): number {
    if (req.replied) {
      // The reply went out and something after it threw: an engine bug, not the handler's.
      this.report(err, req.op);
      return 0;
    }
    const carried = errnoOf(err);
    const errno = replyErrno(carried);
    if (errno !== carried || (errno === E.EIO && !(err instanceof NsviewError))) this.report(err, req.op);
    this.replies.error(req, errno);
    return errno;
  }

  private trace(req: Request, errno: number, t0: number): void {
    const trace = this.opts.onTrace;
    if (trace === undefined) return;
    try {
      trace({ op: req.op, nodeid: req.nodeid, name: req.call.traceName, errno, ms: performance.now() - t0 });
    } catch (e) {
      this.report(e, 'trace');
    }
  }

  // -------------------------------------------------------------------------------------------
  // The Engine: what the opcode table's engine rows call

  reply(unique: bigint, errno: number): void {
    this.replies.errnoTo(unique, errno);
  }

  init(unique: bigint, init: InitIn): void {
    const outcome = negotiateInit(init, {
      cacheSymlinks: this.opts.cacheSymlinks,
      posixAcl: this.opts.posixAcl,
      passthrough: this.opts.passthrough,
    });
    switch (outcome.kind) {
      case 'offer-version':
        this.replies.initVersion(unique);
        return;
      case 'refuse':
        this.replies.errnoTo(unique, E.EPROTO, 'INIT');
        this.report(outcome.error, 'INIT');
        this.rejectInit(outcome.error);
        return;
      case 'agree':
        if (outcome.info.flags & Init.PASSTHROUGH) this.backing = deviceBackingFiles(this.fd);
        this.replies.init(unique, outcome.reply);
        this.notifications.start();
        this.resolveInit(outcome.info);
        return;
    }
  }

  forget(nodeid: bigint, nlookup: bigint): void {
    try {
      this.ops.forget(nodeid, nlookup);
    } catch (e) {
      this.report(e, 'FORGET');
    }
  }

  interrupt(target: bigint, own: bigint): void {
    this.admission.interrupt(target, own);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      this.ops.destroy?.();
    } catch (e) {
      this.report(e, 'DESTROY');
    }
  }

  // -------------------------------------------------------------------------------------------
  // The end

  private closeIfDrained(): void {
    if (!this.stopping || this.fdClosed) return;
    if (this.reader !== undefined && !this.reader.idle) return;
    if (this.notifications.busy) return;
    this.fdClosed = true;
    this.replies.markClosed();
    try {
      fs.closeSync(this.fd);
    } catch (e) {
      this.report(e, 'close');
    }
    this.resolveDrained();
  }

  private report(err: unknown, what: string): void {
    try {
      this.opts.onError(err, what);
    } catch {
      // A throwing logger must not take the daemon down either.
    }
  }
}

/** The errno a reply can carry for `errno`: itself if the kernel accepts it, else EIO. */
function replyErrno(errno: number): number {
  return Number.isInteger(errno) && errno > 0 && errno <= MAX_REPLY_ERRNO ? errno : E.EIO;
}

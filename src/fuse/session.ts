/**
 * The serving loop: reads requests from /dev/fuse, dispatches them to FuseOperations, writes
 * replies. Knows nothing about mounting; index.ts wires it to a mount.
 *
 * Threading model. All of nsview's JS runs on the main thread, and that thread is the only one
 * that answers the kernel. It reads requests itself, woken by epoll when the device is readable
 * (device-poll.ts: one thread wake-up per request). Where that is unavailable, reads block on
 * libuv's threadpool instead: `readers` fs.read() calls stay outstanding, each on its own buffer
 * (they permanently occupy that many pool threads).
 * Replies are written synchronously (write(2) on /dev/fuse never blocks on userspace). The one
 * kind of write that CAN block is a notification (the kernel takes inode locks that a request we
 * have yet to answer may hold), so notifications go through the pool as well, ONE AT A TIME:
 * a blocked notification waits for a reply that only the main thread sends after a reader has
 * delivered the request, so notifications must never occupy more than one pool thread (with
 * several in flight they could take every pool thread, readers' refills included: a deadlock).
 * Queued duplicates are coalesced, so a burst of namespace churn costs one write per name.
 *
 * Nothing a handler does may take the daemon down: sync throws, rejections, non-promises and
 * malformed results all end as an error reply.
 */
import fs from 'node:fs';
import { constants } from 'node:os';
import { REPLIED, type DelegatedReply, type DirEntry, type FuseOperations, type RequestContext } from './types.js';
import { NsviewError } from '../sys/errors.js';
import { PollReader } from './device-poll.js';
import {
  decodeInitIn, decodeName, encodeInvalEntry, encodeInvalInode, lookupsNotDelivered, packDirents,
  writeAttrOut, writeEntryOut, writeGetxattrOut, writeInitOut, writeOpenOut, writeOutHeader,
  writeStatfs,
} from './codec.js';
import {
  FUSE_GETATTR_FH, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION,
  FUSE_MIN_MINOR_VERSION, IN_HEADER_SIZE, INIT_FLAG_NAMES, Init, MAX_IO, MAX_PAGES,
  MODIFYING_OPS, OUT_HEADER_SIZE, Op, READ_BUFFER_SIZE, opName,
} from './protocol.js';

const E = constants.errno;

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
  onTrace?: (t: RequestTrace) => void;
  onError: (err: unknown, opcode: string) => void;
}

/** One served request, for --verbose tracing. */
export interface RequestTrace {
  op: string;
  nodeid: bigint;
  /** The name looked up, for LOOKUP. */
  name?: Buffer;
  /** 0 on success, else the errno answered. */
  errno: number;
  ms: number;
}

/** What INIT agreed on, for logs and tests. */
export interface InitInfo {
  major: number;
  minor: number;
  kernelMinor: number;
  flags: bigint;
  flagNames: string[];
  maxReadahead: number;
}

/** Flags we ask for, each only if the kernel offers it. */
const WANTED_INIT_FLAGS =
  Init.ASYNC_READ | Init.PARALLEL_DIROPS | Init.DO_READDIRPLUS | Init.MAX_PAGES |
  Init.CACHE_SYMLINKS | Init.AUTO_INVAL_DATA | Init.BIG_WRITES | Init.INIT_EXT;
// FUSE_PASSTHROUGH seam: asking for Init.PASSTHROUGH also needs max_stack_depth in INIT, an ioctl
// (FUSE_DEV_IOC_BACKING_OPEN) per backing file and OpenReply.backingId -> fuse_open_out.backing_id.

/** Kernel limits for background requests (readahead, release): libfuse's defaults, scaled up a bit. */
const MAX_BACKGROUND = 16;
const CONGESTION_THRESHOLD = 12;
/** A readlink reply must fit the kernel's page (PAGE_SIZE - 1). */
const READLINK_MAX = 4095;
/** An INTERRUPT that overtook its request waits this long before we let the kernel requeue it. */
const EARLY_INTERRUPT_MS = 10;

/** One request, also the RequestContext its handler sees. The signal is created only on demand. */
class Request implements RequestContext {
  // Decoded arguments, used according to opcode.
  name: Buffer = EMPTY;
  fh = 0n;
  offset = 0n;
  size = 0;
  flags = 0;
  getattrFh: bigint | undefined = undefined;
  replied = false;
  private controller: AbortController | undefined = undefined;
  private aborted = false;

  constructor(
    readonly opcode: number,
    readonly unique: bigint,
    readonly nodeid: bigint,
    readonly uid: number,
    readonly gid: number,
    readonly pid: number,
    private readonly deviceFd: number,
  ) {}

  delegateReply(): DelegatedReply {
    const header = new Uint8Array(OUT_HEADER_SIZE);
    writeOutHeader(Buffer.from(header.buffer), 0, OUT_HEADER_SIZE, 0, this.unique);
    return { fd: this.deviceFd, header };
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(interruptedError());
    }
    return this.controller.signal;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort(interruptedError());
  }
}

const EMPTY = Buffer.alloc(0);

function interruptedError(): NsviewError {
  return new NsviewError(E.EINTR, 'request interrupted');
}

interface Reader {
  buf: Buffer;
  onRead: (err: NodeJS.ErrnoException | null, n: number) => void;
}

/** Outcome of writing a reply. */
const enum Sent {
  Ok,
  /** The kernel no longer waits for it (interrupted: ENOENT) or refused it: it did not take it. */
  Refused,
  /** The session is over; the kernel has dropped all state. */
  Closed,
}

export class FuseServer {
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

  private initInfo: InitInfo | undefined;
  private stopping = false;
  private fdClosed = false;
  private destroyed = false;
  /** Outstanding async operations on the fd: reads and notifications. The fd closes at 0. */
  private pendingIo = 0;

  /** Notifications waiting for the one in flight; keyed by content to coalesce duplicates. */
  private readonly notifyQueue = new Map<string, { msg: Buffer; what: string }>();
  private notifying = false;
  /** The epoll-driven reader, when this Node offers one (see device-poll.ts); else pool reads. */
  private poller: PollReader | undefined;

  private readonly active = new Map<bigint, Request>();
  private readonly waiting: Request[] = [];
  /** Interrupts whose request we have not seen yet: target unique -> the interrupt's own unique. */
  private readonly earlyInterrupts = new Map<bigint, bigint>();

  // Reply scratch space. Replies are built and written synchronously, so one of each suffices.
  private readonly out = Buffer.alloc(OUT_HEADER_SIZE + 256);
  private readonly header = Buffer.alloc(OUT_HEADER_SIZE);
  private dirBuf: Buffer | undefined;

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
  }

  /** Start reading. Call after mount(2): before it, the device refuses reads (EPERM). */
  start(): void {
    if (this.opts.pollDevice !== false) {
      this.poller = PollReader.open(this.fd, Buffer.allocUnsafe(READ_BUFFER_SIZE), {
        onRequest: (buf, n) => this.onRequest(buf, n),
        onEnd: (errno) => {
          if (errno !== E.ENODEV) this.report(new NsviewError(errno, 'reading /dev/fuse'), 'read');
          this.stop();
        },
      }, this.opts.busyPollUs);
      if (this.poller) return;
    }
    for (let i = 0; i < this.opts.readers; i++) {
      const reader: Reader = {
        buf: Buffer.allocUnsafe(READ_BUFFER_SIZE),
        onRead: (err, n) => {
          this.pendingIo--;
          this.onRead(reader, err, n);
        },
      };
      this.arm(reader);
    }
  }

  /**
   * Stop serving: abort every handler's signal, call ops.destroy, resolve `ended`. The fd is
   * closed once outstanding reads return, which needs the connection aborted (index.ts does that).
   */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.rejectInit(new NsviewError(E.ENODEV, 'FUSE session ended before INIT'));
    for (const req of this.active.values()) req.abort();
    this.active.clear();
    this.waiting.length = 0;
    this.earlyInterrupts.clear();
    this.notifyQueue.clear();
    this.poller?.stop();
    this.callDestroy();
    this.resolveEnded();
    this.closeIfDrained();
  }

  /** Requests come through epoll on the main thread (else through threadpool reads). */
  get polling(): boolean {
    return this.poller !== undefined;
  }

  invalidateEntry(parent: bigint, name: Buffer): void {
    this.notify(encodeInvalEntry(parent, name), 'NOTIFY_INVAL_ENTRY');
  }

  invalidateInode(nodeid: bigint): void {
    this.notify(encodeInvalInode(nodeid), 'NOTIFY_INVAL_INODE');
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  private arm(reader: Reader): void {
    if (this.stopping) return;
    this.pendingIo++;
    fs.read(this.fd, reader.buf, 0, reader.buf.length, null, reader.onRead);
  }

  private onRead(reader: Reader, err: NodeJS.ErrnoException | null, n: number): void {
    if (this.stopping) {
      // Whatever was read after stop() stays unanswered: the connection is being aborted.
      this.closeIfDrained();
      return;
    }
    if (err) {
      const code = err.code;
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') {
        // ENOENT: the request was interrupted while we read it; nothing to answer.
        this.arm(reader);
      } else {
        // ENODEV: unmounted or aborted, the normal end. Anything else cannot be retried.
        if (code !== 'ENODEV') this.report(err, 'read');
        this.stop();
      }
      return;
    }
    this.onRequest(reader.buf, n);
    this.arm(reader);
  }

  private onRequest(buf: Buffer, n: number): void {
    if (this.stopping) return;
    try {
      this.dispatch(buf, n);
    } catch (e) {
      // Only a bug in the engine gets here: handlers are isolated in execute().
      this.report(e, 'dispatch');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  private dispatch(buf: Buffer, n: number): void {
    if (n < IN_HEADER_SIZE) return;
    const len = Math.min(buf.readUInt32LE(0), n);
    const opcode = buf.readUInt32LE(4);
    this.opcodeCounts[opcode & 63]++;
    const unique = buf.readBigUInt64LE(8);
    const nodeid = buf.readBigUInt64LE(16);
    const body = IN_HEADER_SIZE;

    switch (opcode) {
      case Op.INIT:
        return this.doInit(unique, buf, body, len);
      case Op.FORGET:
        this.forget(nodeid, buf.readBigUInt64LE(body));
        return; // no reply
      case Op.BATCH_FORGET: {
        const count = buf.readUInt32LE(body);
        for (let i = 0, p = body + 8; i < count && p + 16 <= len; i++, p += 16) {
          this.forget(buf.readBigUInt64LE(p), buf.readBigUInt64LE(p + 8));
        }
        return; // no reply
      }
      case Op.INTERRUPT:
        return this.interrupt(buf.readBigUInt64LE(body), unique);
      case Op.DESTROY:
        // Only fuseblk and virtiofs send it; the device reports ENODEV after.
        this.replyError(unique, 0);
        this.callDestroy();
        return;
      case Op.FLUSH:
        // Nothing to flush in a read-only view; ENOSYS makes the kernel stop sending FLUSH on
        // every close (fc->no_flush), one round trip less per file read.
        return this.replyError(unique, this.opts.readOnly ? E.ENOSYS : 0);
      case Op.FSYNC:
      case Op.FSYNCDIR:
      case Op.SYNCFS:
        // Nothing of ours is ever dirty when read-only; ENOSYS makes the kernel stop asking.
        return this.replyError(unique, this.opts.readOnly ? 0 : E.ENOSYS);
    }
    if (this.opts.readOnly && MODIFYING_OPS.has(opcode)) return this.replyError(unique, E.EROFS);

    const req = new Request(
      opcode, unique, nodeid, buf.readUInt32LE(24), buf.readUInt32LE(28), buf.readUInt32LE(32), this.fd,
    );
    switch (opcode) {
      case Op.LOOKUP:
        req.name = decodeName(buf, body, len);
        break;
      case Op.GETATTR:
        if (buf.readUInt32LE(body) & FUSE_GETATTR_FH) req.getattrFh = buf.readBigUInt64LE(body + 8);
        break;
      case Op.OPEN:
      case Op.OPENDIR:
        req.flags = buf.readUInt32LE(body);
        if (this.opts.readOnly && opcode === Op.OPEN && (req.flags & 3) !== 0) {
          return this.replyError(unique, E.EROFS); // O_WRONLY or O_RDWR
        }
        break;
      case Op.READ:
      case Op.READDIR:
      case Op.READDIRPLUS:
        req.fh = buf.readBigUInt64LE(body);
        req.offset = buf.readBigUInt64LE(body + 8);
        req.size = buf.readUInt32LE(body + 16);
        break;
      case Op.RELEASE:
      case Op.RELEASEDIR:
        req.fh = buf.readBigUInt64LE(body);
        break;
      case Op.ACCESS:
        req.flags = buf.readUInt32LE(body);
        break;
      case Op.GETXATTR:
        req.size = buf.readUInt32LE(body);
        req.name = decodeName(buf, body + 8, len);
        break;
      case Op.LISTXATTR:
        req.size = buf.readUInt32LE(body);
        break;
      case Op.READLINK:
      case Op.STATFS:
        break;
      default:
        return this.replyError(unique, E.ENOSYS);
    }
    this.submit(req);
  }

  private submit(req: Request): void {
    const early = this.earlyInterrupts.get(req.unique);
    if (early !== undefined) {
      this.earlyInterrupts.delete(req.unique);
      req.abort();
    }
    if (this.active.size < this.opts.maxInFlight) this.execute(req);
    else this.waiting.push(req);
  }

  private execute(req: Request): void {
    this.active.set(req.unique, req);
    let p: Promise<void>;
    try {
      p = this.invoke(req);
    } catch (e) {
      p = Promise.reject(e);
    }
    const trace = this.opts.onTrace;
    const t0 = trace ? performance.now() : 0;
    p.then(
      () => {
        trace?.({ op: opName(req.opcode), nodeid: req.nodeid, name: req.name, errno: 0, ms: performance.now() - t0 });
        this.done(req);
      },
      (e: unknown) => {
        const errno = this.replyFailure(req, e);
        trace?.({ op: opName(req.opcode), nodeid: req.nodeid, name: req.name, errno, ms: performance.now() - t0 });
        this.done(req);
      },
    );
  }

  private done(req: Request): void {
    if (this.active.get(req.unique) === req) this.active.delete(req.unique);
    while (this.waiting.length > 0 && this.active.size < this.opts.maxInFlight) {
      this.execute(this.waiting.shift()!);
    }
  }

  /** Calls the handler; the returned promise settles after the reply is written. */
  private invoke(req: Request): Promise<void> {
    const ops = this.ops;
    switch (req.opcode) {
      case Op.LOOKUP:
        return ops.lookup(req, req.nodeid, req.name).then((e) => {
          const end = writeEntryOut(this.out, OUT_HEADER_SIZE, e);
          if (this.replyOut(req, end) !== Sent.Ok && e.nodeid !== 0n) this.forget(e.nodeid, 1n, true);
        });
      case Op.GETATTR:
        return ops.getattr(req, req.nodeid, req.getattrFh).then((r) => {
          this.replyOut(req, writeAttrOut(this.out, OUT_HEADER_SIZE, r));
        });
      case Op.READLINK:
        return ops.readlink(req, req.nodeid).then((target) => {
          if (!Buffer.isBuffer(target)) throw new TypeError('readlink must return a Buffer');
          if (target.length > READLINK_MAX) return this.replyErrorTo(req, E.ENAMETOOLONG);
          this.replyData(req, target);
        });
      case Op.OPEN:
        return ops.open(req, req.nodeid, req.flags).then((r) => {
          this.replyOut(req, writeOpenOut(this.out, OUT_HEADER_SIZE, r));
        });
      case Op.OPENDIR:
        return ops.opendir(req, req.nodeid, req.flags).then((r) => {
          this.replyOut(req, writeOpenOut(this.out, OUT_HEADER_SIZE, r));
        });
      case Op.READ:
        return ops.read(req, req.nodeid, req.fh, req.offset, req.size).then((data) => {
          if (data === REPLIED) {
            req.replied = true;
            return;
          }
          if (!Buffer.isBuffer(data)) throw new TypeError('read must return a Buffer');
          this.replyData(req, data.length > req.size ? data.subarray(0, req.size) : data);
        });
      case Op.RELEASE:
        return ops.release(req, req.nodeid, req.fh).then(() => this.replyErrorTo(req, 0));
      case Op.RELEASEDIR:
        return ops.releasedir(req, req.nodeid, req.fh).then(() => this.replyErrorTo(req, 0));
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const plus = req.opcode === Op.READDIRPLUS;
        return ops.readdir(req, req.nodeid, req.fh, req.offset, plus).then((list) => this.replyDir(req, list, plus));
      }
      case Op.STATFS:
        return ops.statfs(req, req.nodeid).then((s) => {
          this.replyOut(req, writeStatfs(this.out, OUT_HEADER_SIZE, s));
        });
      case Op.ACCESS:
        return ops.access(req, req.nodeid, req.flags).then(() => this.replyErrorTo(req, 0));
      case Op.GETXATTR:
        return ops.getxattr(req, req.nodeid, req.name).then((v) => this.replyXattr(req, v));
      case Op.LISTXATTR:
        return ops.listxattr(req, req.nodeid).then((v) => this.replyXattr(req, v));
      default:
        return Promise.reject(new NsviewError(E.ENOSYS));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Special requests

  private doInit(unique: bigint, buf: Buffer, body: number, len: number): void {
    const init = decodeInitIn(buf, body, len);
    if (init.major > FUSE_KERNEL_VERSION) {
      // Protocol: answer with our major only; the kernel then sends a new INIT we can speak.
      writeOutHeader(this.out, 0, OUT_HEADER_SIZE + 8, 0, unique);
      this.out.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER_SIZE);
      this.out.writeUInt32LE(FUSE_KERNEL_MINOR_VERSION, OUT_HEADER_SIZE + 4);
      this.write(this.out, OUT_HEADER_SIZE + 8, 'INIT');
      return;
    }
    if (init.major < FUSE_KERNEL_VERSION || init.minor < FUSE_MIN_MINOR_VERSION) {
      const err = new NsviewError(E.EPROTO, `kernel FUSE protocol ${init.major}.${init.minor} is too old`);
      this.replyError(unique, E.EPROTO);
      this.report(err, 'INIT');
      this.rejectInit(err);
      return;
    }
    const minor = Math.min(init.minor, FUSE_KERNEL_MINOR_VERSION);
    let flags = init.flags & WANTED_INIT_FLAGS;
    if (!this.opts.cacheSymlinks) flags &= ~Init.CACHE_SYMLINKS;
    if (!(flags & Init.INIT_EXT)) flags &= 0xffff_ffffn;
    const end = writeInitOut(this.out, OUT_HEADER_SIZE, {
      minor,
      maxReadahead: init.maxReadahead,
      flags,
      maxBackground: MAX_BACKGROUND,
      congestionThreshold: CONGESTION_THRESHOLD,
      maxWrite: MAX_IO,
      timeGran: 1,
      maxPages: MAX_PAGES,
    });
    writeOutHeader(this.out, 0, end, 0, unique);
    this.write(this.out, end, 'INIT');
    this.initInfo = {
      major: FUSE_KERNEL_VERSION,
      minor,
      kernelMinor: init.minor,
      flags,
      flagNames: INIT_FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0n).map(([, name]) => name),
      maxReadahead: init.maxReadahead,
    };
    this.resolveInit(this.initInfo);
  }

  private interrupt(target: bigint, own: bigint): void {
    const running = this.active.get(target);
    if (running !== undefined) {
      running.abort(); // the handler answers (EINTR or its result) in its own time
      return;
    }
    const i = this.waiting.findIndex((r) => r.unique === target);
    if (i >= 0) {
      const [req] = this.waiting.splice(i, 1);
      this.replyErrorTo(req!, E.EINTR);
      return;
    }
    // Either already answered (then the kernel ignores us), or its read has not reached the main
    // thread yet. Remember it; if the request does not show up, answer EAGAIN so the kernel
    // requeues the interrupt (and drops it, ENOENT, if the request is done).
    this.earlyInterrupts.set(target, own);
    setTimeout(() => {
      if (this.earlyInterrupts.get(target) !== own) return;
      this.earlyInterrupts.delete(target);
      this.replyError(own, E.EAGAIN);
    }, EARLY_INTERRUPT_MS).unref();
  }

  private forget(nodeid: bigint, nlookup: bigint, engine = false): void {
    if (this.stopping && engine) return; // the session's end forgets everything at once (destroy)
    try {
      this.ops.forget(nodeid, nlookup);
    } catch (e) {
      this.report(e, 'FORGET');
    }
  }

  private callDestroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      this.ops.destroy?.();
    } catch (e) {
      this.report(e, 'DESTROY');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Replies

  private replyDir(req: Request, list: DirEntry[], plus: boolean): void {
    if (!Array.isArray(list)) throw new TypeError('readdir must return an array');
    const size = Math.min(req.size, MAX_IO);
    const buf = (this.dirBuf ??= Buffer.alloc(OUT_HEADER_SIZE + MAX_IO));
    let packed;
    try {
      packed = packDirents(buf, OUT_HEADER_SIZE, OUT_HEADER_SIZE + size, list, plus);
    } catch (e) {
      // A malformed entry: nothing was delivered, so every lookup the handler took goes back.
      this.forgetAll(lookupsNotDelivered(list, 0, plus));
      throw e;
    }
    writeOutHeader(buf, 0, packed.end, 0, req.unique);
    req.replied = true;
    const sent = this.write(buf, packed.end, opName(req.opcode));
    if (sent === Sent.Closed) return;
    this.forgetAll(lookupsNotDelivered(list, sent === Sent.Ok ? packed.count : 0, plus));
  }

  private forgetAll(nodeids: bigint[]): void {
    for (const id of nodeids) this.forget(id, 1n, true);
  }

  private replyXattr(req: Request, value: Buffer): void {
    if (!Buffer.isBuffer(value)) throw new TypeError('getxattr/listxattr must return a Buffer');
    if (req.size === 0) {
      this.replyOut(req, writeGetxattrOut(this.out, OUT_HEADER_SIZE, value.length));
    } else if (value.length > req.size) {
      this.replyErrorTo(req, E.ERANGE);
    } else {
      this.replyData(req, value);
    }
  }

  /** Answer a handler's failure; returns the errno sent (0 if a reply had already gone out). */
  private replyFailure(req: Request, err: unknown): number {
    if (req.replied) {
      // The reply went out and something after it threw: an engine bug, not the handler's.
      this.report(err, opName(req.opcode));
      return 0;
    }
    let errno = E.EIO;
    const n = typeof err === 'object' && err !== null ? (err as { errno?: unknown }).errno : undefined;
    if (typeof n === 'number' && Number.isInteger(n) && n !== 0 && Math.abs(n) < 4096) {
      errno = Math.abs(n); // NsviewError (positive) or Node's SystemError (negative)
    } else {
      this.report(err, opName(req.opcode));
    }
    this.replyErrorTo(req, errno);
    return errno;
  }

  /** Header + the struct already encoded in `out` at OUT_HEADER_SIZE, ending at `end`. */
  private replyOut(req: Request, end: number): Sent {
    writeOutHeader(this.out, 0, end, 0, req.unique);
    req.replied = true;
    return this.write(this.out, end, opName(req.opcode));
  }

  private replyData(req: Request, data: Buffer): void {
    req.replied = true;
    if (this.fdClosed) return;
    writeOutHeader(this.header, 0, OUT_HEADER_SIZE + data.length, 0, req.unique);
    try {
      fs.writevSync(this.fd, [this.header, data]);
    } catch (e) {
      this.writeFailed(e, opName(req.opcode));
    }
  }

  private replyErrorTo(req: Request, errno: number): void {
    req.replied = true;
    this.replyError(req.unique, errno);
  }

  private replyError(unique: bigint, errno: number): void {
    writeOutHeader(this.out, 0, OUT_HEADER_SIZE, -errno, unique);
    this.write(this.out, OUT_HEADER_SIZE, 'reply');
  }

  private write(buf: Buffer, len: number, what: string): Sent {
    if (this.fdClosed) return Sent.Closed;
    try {
      fs.writeSync(this.fd, buf, 0, len);
      this.poller?.touch();
      return Sent.Ok;
    } catch (e) {
      return this.writeFailed(e, what);
    }
  }

  private writeFailed(e: unknown, what: string): Sent {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return Sent.Refused; // interrupted and already answered by the kernel
    if (code === 'ENODEV' || code === 'EBADF' || this.stopping) return Sent.Closed;
    this.report(e, what); // EINVAL & co.: we sent something the kernel did not accept
    return Sent.Refused;
  }

  // -------------------------------------------------------------------------------------------
  // Notifications and shutdown

  private notify(msg: Buffer, what: string): void {
    if (this.stopping || this.initInfo === undefined) return;
    const key = msg.toString('latin1');
    if (!this.notifyQueue.has(key)) this.notifyQueue.set(key, { msg, what });
    this.pumpNotifications();
  }

  private pumpNotifications(): void {
    if (this.notifying || this.stopping) return;
    const next = this.notifyQueue.entries().next();
    if (next.done) return;
    const [key, { msg, what }] = next.value;
    this.notifyQueue.delete(key);
    this.notifying = true;
    this.pendingIo++;
    fs.write(this.fd, msg, 0, msg.length, null, (err) => {
      this.pendingIo--;
      this.notifying = false;
      // ENOENT: the kernel has nothing cached for it, which is what we wanted.
      if (err && err.code !== 'ENOENT' && !this.stopping) this.report(err, what);
      this.closeIfDrained();
      this.pumpNotifications();
    });
  }

  private closeIfDrained(): void {
    if (!this.stopping || this.pendingIo > 0 || this.fdClosed) return;
    this.fdClosed = true;
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

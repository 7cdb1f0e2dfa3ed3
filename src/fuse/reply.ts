/**
 * Writing replies to /dev/fuse, one method per kind of answer (an errno, an entry, attributes,
 * data, a directory listing...). Each encodes into reusable scratch space (codec.ts) and goes out
 * in ONE synchronous write(2): a reply never blocks on userspace (only notifications can, see
 * notifications.ts), and replies are built and written without an await in between, so one
 * scratch buffer of each kind suffices.
 *
 * Two kinds of answer hand the kernel a lookup reference the handler already took: an entry
 * (LOOKUP; MKDIR, CREATE and the like answer with one too) and a READDIRPLUS listing. Whatever
 * the kernel did not take (the reply failed, an entry did not fit) is given back right here, so
 * every opcode answering with an entry gets that accounting for free.
 */
import fs from 'node:fs';
import {
  type InitReply,
  lookupsNotDelivered,
  packDirents,
  writeAttrOut,
  writeEntryOut,
  writeGetxattrOut,
  writeInitOut,
  writeIoctlOut,
  writeLseekOut,
  writeOpenOut,
  writeOutHeader,
  writeStatfs,
  writeWriteOut,
} from './codec.js';
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, MAX_IO, OUT_HEADER_SIZE } from './protocol.js';
import type { AttrReply, DirEntry, Entry, OpenReply, StatFs } from './types.js';
import { E, errnoOf } from '../sys/errors.js';

/** Outcome of writing a reply. */
export const enum Sent {
  Ok,
  /** The kernel no longer waits for it (interrupted: ENOENT) or refused it: it did not take it. */
  Refused,
  /** The session is over; the kernel has dropped all state. */
  Closed,
}

/** The request being answered, as far as replies care. */
export interface Answerable {
  readonly unique: bigint;
  /** The opcode's name, for reports. */
  readonly op: string;
  replied: boolean;
}

export interface ReplyHooks {
  /** A reply went out (the epoll reader keeps the loop awake a while after it). */
  afterWrite(): void;
  /** The kernel will not own this lookup reference the handler took: forget it. */
  giveBack(nodeid: bigint): void;
  report(err: unknown, what: string): void;
  /** The session is stopping: failed writes are expected then, not reported. */
  stopping(): boolean;
}

/** The largest ioctl output answered (what fits the reply scratch buffer after fuse_ioctl_out). */
const MAX_IOCTL_OUT = 128;

export class ReplyWriter {
  private readonly out = Buffer.alloc(OUT_HEADER_SIZE + 256);
  private readonly header = Buffer.alloc(OUT_HEADER_SIZE);
  private dirBuf: Buffer | undefined;
  private closed = false;

  constructor(
    private readonly fd: number,
    private readonly hooks: ReplyHooks,
  ) {}

  /** The device fd is closed: every later reply is dropped. */
  markClosed(): void {
    this.closed = true;
  }

  /** An errno (0: success without data) to a request known by its unique only. */
  errnoTo(unique: bigint, errno: number, what = 'reply'): Sent {
    writeOutHeader(this.out, 0, OUT_HEADER_SIZE, -errno, unique);
    return this.write(this.out, OUT_HEADER_SIZE, what);
  }

  error(req: Answerable, errno: number): Sent {
    req.replied = true;
    return this.errnoTo(req.unique, errno, req.op);
  }

  /** Success without data (RELEASE, ACCESS, ...). */
  empty(req: Answerable): Sent {
    return this.error(req, 0);
  }

  /** fuse_entry_out; the entry's lookup reference goes back if the kernel did not take it. */
  entry(req: Answerable, e: Entry): Sent {
    const sent = this.struct(req, writeEntryOut(this.out, OUT_HEADER_SIZE, e));
    if (sent !== Sent.Ok && e.nodeid !== 0n) this.hooks.giveBack(e.nodeid);
    return sent;
  }

  /** CREATE: fuse_entry_out + fuse_open_out; the entry's lookup reference as for entry(). */
  created(req: Answerable, e: Entry, o: OpenReply): Sent {
    const sent = this.struct(req, writeOpenOut(this.out, writeEntryOut(this.out, OUT_HEADER_SIZE, e), o));
    if (sent !== Sent.Ok && e.nodeid !== 0n) this.hooks.giveBack(e.nodeid);
    return sent;
  }

  /** WRITE: how many bytes were written (fuse_write_out). */
  written(req: Answerable, size: number): Sent {
    return this.struct(req, writeWriteOut(this.out, OUT_HEADER_SIZE, size));
  }

  attr(req: Answerable, r: AttrReply): Sent {
    return this.struct(req, writeAttrOut(this.out, OUT_HEADER_SIZE, r));
  }

  open(req: Answerable, r: OpenReply): Sent {
    return this.struct(req, writeOpenOut(this.out, OUT_HEADER_SIZE, r));
  }

  statfs(req: Answerable, s: StatFs): Sent {
    return this.struct(req, writeStatfs(this.out, OUT_HEADER_SIZE, s));
  }

  /** LSEEK: the offset found. */
  lseek(req: Answerable, offset: bigint): Sent {
    return this.struct(req, writeLseekOut(this.out, OUT_HEADER_SIZE, offset));
  }

  /** IOCTL: done, with exactly `outSize` bytes of output (an ioctl's output is a few dozen bytes). */
  ioctl(req: Answerable, data: unknown, outSize: number): Sent {
    if (!Buffer.isBuffer(data)) throw new TypeError(`the ${req.op} handler must return a Buffer`);
    if (outSize > MAX_IOCTL_OUT) return this.error(req, E.EINVAL);
    return this.struct(req, writeIoctlOut(this.out, OUT_HEADER_SIZE, data, outSize));
  }

  /** Raw bytes after the header (READ, READLINK, GETXATTR values), without copying them. */
  data(req: Answerable, data: unknown): Sent {
    if (!Buffer.isBuffer(data)) throw new TypeError(`the ${req.op} handler must return a Buffer`);
    req.replied = true;
    if (this.closed) return Sent.Closed;
    writeOutHeader(this.header, 0, OUT_HEADER_SIZE + data.length, 0, req.unique);
    try {
      fs.writevSync(this.fd, [this.header, data]);
      this.hooks.afterWrite();
      return Sent.Ok;
    } catch (e) {
      return this.writeFailed(e, req.op);
    }
  }

  /**
   * GETXATTR / LISTXATTR: `size` 0 is a size probe (fuse_getxattr_out), a value larger than
   * `size` is ERANGE, anything else the value itself.
   */
  xattr(req: Answerable, value: unknown, size: number): Sent {
    if (!Buffer.isBuffer(value)) throw new TypeError(`the ${req.op} handler must return a Buffer`);
    if (size === 0) return this.struct(req, writeGetxattrOut(this.out, OUT_HEADER_SIZE, value.length));
    if (value.length > size) return this.error(req, E.ERANGE);
    return this.data(req, value);
  }

  /**
   * READDIR / READDIRPLUS: as many entries as fit in `size` bytes. Lookup references of entries
   * the kernel does not get (see FuseOperations.readdir) are given back.
   */
  dirents(req: Answerable, entries: readonly DirEntry[], plus: boolean, size: number): Sent {
    // Typed, but a handler in plain JS (or with a cast) may still return anything.
    if (!Array.isArray(entries)) throw new TypeError(`the ${req.op} handler must return an array`);
    const buf = (this.dirBuf ??= Buffer.alloc(OUT_HEADER_SIZE + MAX_IO));
    let packed;
    try {
      packed = packDirents(buf, OUT_HEADER_SIZE, OUT_HEADER_SIZE + Math.min(size, MAX_IO), entries, plus);
    } catch (e) {
      // A malformed entry: nothing was delivered, so every lookup the handler took goes back.
      this.giveBackAll(lookupsNotDelivered(entries, 0, plus));
      throw e;
    }
    writeOutHeader(buf, 0, packed.end, 0, req.unique);
    req.replied = true;
    const sent = this.write(buf, packed.end, req.op);
    if (sent !== Sent.Closed) this.giveBackAll(lookupsNotDelivered(entries, sent === Sent.Ok ? packed.count : 0, plus));
    return sent;
  }

  /** The handler had another thread write the reply (RequestContext.delegateReply). */
  delegated(req: Answerable): void {
    req.replied = true;
  }

  /** fuse_init_out for what was agreed. */
  init(unique: bigint, r: InitReply): Sent {
    const end = writeInitOut(this.out, OUT_HEADER_SIZE, r);
    writeOutHeader(this.out, 0, end, 0, unique);
    return this.write(this.out, end, 'INIT');
  }

  /** An INIT reply of just our version, for a kernel with a newer major (it asks again). */
  initVersion(unique: bigint): Sent {
    writeOutHeader(this.out, 0, OUT_HEADER_SIZE + 8, 0, unique);
    this.out.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER_SIZE);
    this.out.writeUInt32LE(FUSE_KERNEL_MINOR_VERSION, OUT_HEADER_SIZE + 4);
    return this.write(this.out, OUT_HEADER_SIZE + 8, 'INIT');
  }

  /** Header + the struct already encoded in `out` at OUT_HEADER_SIZE, ending at `end`. */
  private struct(req: Answerable, end: number): Sent {
    writeOutHeader(this.out, 0, end, 0, req.unique);
    req.replied = true;
    return this.write(this.out, end, req.op);
  }

  private giveBackAll(nodeids: bigint[]): void {
    for (const id of nodeids) this.hooks.giveBack(id);
  }

  private write(buf: Buffer, len: number, what: string): Sent {
    if (this.closed) return Sent.Closed;
    try {
      fs.writeSync(this.fd, buf, 0, len);
      this.hooks.afterWrite();
      return Sent.Ok;
    } catch (e) {
      return this.writeFailed(e, what);
    }
  }

  private writeFailed(e: unknown, what: string): Sent {
    const errno = errnoOf(e);
    if (errno === E.ENOENT) return Sent.Refused; // interrupted and already answered by the kernel
    if (errno === E.ENODEV || errno === E.EBADF || this.hooks.stopping()) return Sent.Closed;
    this.hooks.report(e, what); // EINVAL & co.: we sent something the kernel did not accept
    return Sent.Refused;
  }
}

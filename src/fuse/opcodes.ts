/**
 * THE opcode table: one row per FUSE opcode, saying everything the engine does with it. Its name;
 * whether it modifies the filesystem (a read-only session answers those EROFS before anything
 * else); and either
 *  - a handler row: how its body is decoded (codec.ts), which FuseOperations method it calls with
 *    what, and how the result is encoded (reply.ts). These run under admission (in-flight limit,
 *    interrupts) and are traced; or
 *  - an engine row: what the engine itself answers, at once (INIT, FORGET, INTERRUPT, ...), or
 *    which errno stands in for a handler nobody wrote yet.
 * Adding or changing an opcode is changing its row; the session holds no per-opcode cases.
 * Write support, for instance, means turning `unimplemented(...)` rows into handler rows.
 */
import {
  type InHeader,
  type InitIn,
  decodeAccessIn,
  decodeBatchForgetIn,
  decodeForgetIn,
  decodeGetattrIn,
  decodeGetxattrIn,
  decodeInitIn,
  decodeInterruptIn,
  decodeIoctlIn,
  decodeListxattrIn,
  decodeLseekIn,
  decodeNameIn,
  decodeOpenIn,
  decodeReadIn,
  decodeReleaseIn,
  decodeCreateIn,
  decodeFallocateIn,
  decodeFsyncIn,
  decodeLinkIn,
  decodeMkdirIn,
  decodeMknodIn,
  decodeRename2In,
  decodeRenameIn,
  decodeSetattrIn,
  decodeSetxattrIn,
  decodeSymlinkIn,
  decodeWriteIn,
} from './codec.js';
import { FUSE_IOCTL_DIR, FUSE_IOCTL_UNRESTRICTED, O_ACCMODE } from './protocol.js';
import type { ReplyWriter } from './reply.js';
import type { Request } from './request.js';
import { REPLIED, type FuseOperations, type RequestContext } from './types.js';
import { E, NsviewError } from '../sys/errors.js';

/** A readlink reply must fit the kernel's page (PAGE_SIZE - 1). */
const READLINK_MAX = 4095;

/** What engine rows may do: the session's own services. */
export interface Engine {
  readonly readOnly: boolean;
  /** Answer `unique` with an errno (0: success without data). */
  reply(unique: bigint, errno: number): void;
  init(unique: bigint, init: InitIn): void;
  /** The kernel dropped `nlookup` references to `nodeid` (FuseOperations.forget). */
  forget(nodeid: bigint, nlookup: bigint): void;
  /** Interrupt request `target`; `own` is the interrupt's own unique. */
  interrupt(target: bigint, own: bigint): void;
  /** The kernel ends the session (FuseOperations.destroy). */
  destroy(): void;
}

/** A decoded request of a handler row, ready to run. */
export interface Call {
  /** This very request changes the filesystem (e.g. OPEN for writing): read-only answers EROFS. */
  readonly modifies: boolean;
  /** A name worth showing in traces (the name looked up, the attribute asked for). */
  readonly traceName: Buffer | undefined;
  /** Call the handler and write its reply; settles once the reply is written. */
  run(ops: FuseOperations, req: Request, w: ReplyWriter): Promise<void>;
}

interface RowBase {
  readonly opcode: number;
  readonly name: string;
  /** Changes the filesystem whatever its arguments: a read-only session answers EROFS. */
  readonly modifies: boolean;
  /** The kernel expects no reply (FORGET, BATCH_FORGET, INTERRUPT): not even to a malformed one. */
  readonly noReply: boolean;
}

export interface HandlerRow extends RowBase {
  readonly kind: 'handler';
  /** Decode the body at buf[start, end); throws NsviewError(EPROTO) on a short one. */
  decode(buf: Buffer, start: number, end: number): Call;
}

export interface EngineRow extends RowBase {
  readonly kind: 'engine';
  answer(engine: Engine, h: InHeader, buf: Buffer, start: number, end: number): void;
}

export type OpcodeRow = HandlerRow | EngineRow;

/** The declaration of a handler row, typed by its decoded arguments A and the handler's result R. */
interface HandlerSpec<A, R> {
  /** Static true/false, or a test on the arguments (OPEN modifies only when opened for writing). */
  modifies: boolean | ((args: A) => boolean);
  decode(buf: Buffer, start: number, end: number): A;
  call(ops: FuseOperations, ctx: RequestContext, nodeid: bigint, args: A): Promise<R>;
  reply(w: ReplyWriter, req: Request, result: R, args: A): void;
  traceName?: (args: A) => Buffer;
}

class BoundCall<A, R> implements Call {
  constructor(
    private readonly spec: HandlerSpec<A, R>,
    private readonly args: A,
  ) {}

  get modifies(): boolean {
    const m = this.spec.modifies;
    return typeof m === 'function' ? m(this.args) : m;
  }

  get traceName(): Buffer | undefined {
    return this.spec.traceName?.(this.args);
  }

  run(ops: FuseOperations, req: Request, w: ReplyWriter): Promise<void> {
    // A handler that throws or returns a non-promise throws here, synchronously: the session
    // answers that like a rejection.
    return this.spec.call(ops, req, req.nodeid, this.args).then((r) => this.spec.reply(w, req, r, this.args));
  }
}

function handler<A, R>(opcode: number, name: string, spec: HandlerSpec<A, R>): HandlerRow {
  return {
    kind: 'handler',
    opcode,
    name,
    modifies: spec.modifies === true,
    noReply: false,
    decode: (buf, start, end) => new BoundCall(spec, spec.decode(buf, start, end)),
  };
}

function engine(
  opcode: number,
  name: string,
  how: { noReply?: boolean },
  answer: (engine: Engine, h: InHeader, buf: Buffer, start: number, end: number) => void,
): EngineRow {
  return { kind: 'engine', opcode, name, modifies: false, noReply: how.noReply ?? false, answer };
}

/** No handler yet: ENOSYS (the kernel then stops sending most of these), EROFS if it modifies. */
function unimplemented(opcode: number, name: string, modifies: 'modifies' | 'reads'): EngineRow {
  return {
    kind: 'engine',
    opcode,
    name,
    modifies: modifies === 'modifies',
    noReply: false,
    answer: (s, h) => s.reply(h.unique, E.ENOSYS),
  };
}

const noBody = (): null => null;

/** A modifying handler the filesystem may not offer: ENOSYS without it. */
function offered<F>(f: F | undefined): F {
  if (f === undefined) throw new NsviewError(E.ENOSYS);
  return f;
}

/**
 * FSYNCDIR, SYNCFS: nothing of ours is ever dirty when read-only, so success. Read-write: ENOSYS,
 * which the kernel takes as success and stops asking: nsview keeps no directory handles (OPENDIR
 * answers ENOSYS) and every write went to the namespace's filesystem before it was answered.
 * FSYNC of an open file is a handler (the file's own fd is synced).
 */
const nothingToSync = (s: Engine, h: InHeader): void => s.reply(h.unique, s.readOnly ? 0 : E.ENOSYS);

/** Every opcode of include/uapi/linux/fuse.h up to protocol 7.45, in opcode order. */
const ROWS: readonly OpcodeRow[] = [
  handler(1, 'LOOKUP', {
    modifies: false,
    decode: decodeNameIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => ops.lookup(ctx, nodeid, a.name),
    reply: (w, req, entry) => w.entry(req, entry),
  }),
  engine(2, 'FORGET', { noReply: true }, (s, h, buf, start, end) =>
    s.forget(h.nodeid, decodeForgetIn(buf, start, end).nlookup),
  ),
  handler(3, 'GETATTR', {
    modifies: false,
    decode: decodeGetattrIn,
    call: (ops, ctx, nodeid, a) => ops.getattr(ctx, nodeid, a.fh),
    reply: (w, req, r) => w.attr(req, r),
  }),
  handler(4, 'SETATTR', {
    modifies: true,
    decode: decodeSetattrIn,
    call: (ops, ctx, nodeid, a) => offered(ops.setattr).call(ops, ctx, nodeid, a),
    reply: (w, req, r) => w.attr(req, r),
  }),
  handler(5, 'READLINK', {
    modifies: false,
    decode: noBody,
    call: (ops, ctx, nodeid) => ops.readlink(ctx, nodeid),
    reply: (w, req, target) => {
      if (Buffer.isBuffer(target) && target.length > READLINK_MAX) w.error(req, E.ENAMETOOLONG);
      else w.data(req, target);
    },
  }),
  handler(6, 'SYMLINK', {
    modifies: true,
    decode: decodeSymlinkIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.symlink).call(ops, ctx, nodeid, a.name, a.target),
    reply: (w, req, entry) => w.entry(req, entry),
  }),
  handler(8, 'MKNOD', {
    modifies: true,
    decode: decodeMknodIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.mknod).call(ops, ctx, nodeid, a.name, a.mode, a.rdev),
    reply: (w, req, entry) => w.entry(req, entry),
  }),
  handler(9, 'MKDIR', {
    modifies: true,
    decode: decodeMkdirIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.mkdir).call(ops, ctx, nodeid, a.name, a.mode),
    reply: (w, req, entry) => w.entry(req, entry),
  }),
  handler(10, 'UNLINK', {
    modifies: true,
    decode: decodeNameIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.unlink).call(ops, ctx, nodeid, a.name),
    reply: (w, req) => w.empty(req),
  }),
  handler(11, 'RMDIR', {
    modifies: true,
    decode: decodeNameIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.rmdir).call(ops, ctx, nodeid, a.name),
    reply: (w, req) => w.empty(req),
  }),
  handler(12, 'RENAME', {
    modifies: true,
    decode: decodeRenameIn,
    traceName: (a) => a.oldName,
    call: (ops, ctx, nodeid, a) => offered(ops.rename).call(ops, ctx, nodeid, a.oldName, a.newdir, a.newName, 0),
    reply: (w, req) => w.empty(req),
  }),
  handler(13, 'LINK', {
    modifies: true,
    decode: decodeLinkIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.link).call(ops, ctx, a.oldnodeid, nodeid, a.name),
    reply: (w, req, entry) => w.entry(req, entry),
  }),
  handler(14, 'OPEN', {
    modifies: (a) => (a.flags & O_ACCMODE) !== 0, // O_WRONLY or O_RDWR
    decode: decodeOpenIn,
    call: (ops, ctx, nodeid, a) => ops.open(ctx, nodeid, a.flags),
    reply: (w, req, r) => w.open(req, r),
  }),
  handler(15, 'READ', {
    modifies: false,
    decode: decodeReadIn,
    call: (ops, ctx, nodeid, a) => ops.read(ctx, nodeid, a.fh, a.offset, a.size),
    reply: (w, req, data, a) => {
      if (data === REPLIED) w.delegated(req);
      else w.data(req, Buffer.isBuffer(data) && data.length > a.size ? data.subarray(0, a.size) : data);
    },
  }),
  handler(16, 'WRITE', {
    modifies: true,
    decode: decodeWriteIn,
    call: (ops, ctx, nodeid, a) => offered(ops.write).call(ops, ctx, nodeid, a.fh, a.offset, a.data),
    reply: (w, req, n) => w.written(req, n),
  }),
  handler(17, 'STATFS', {
    modifies: false,
    decode: noBody,
    call: (ops, ctx, nodeid) => ops.statfs(ctx, nodeid),
    reply: (w, req, s) => w.statfs(req, s),
  }),
  handler(18, 'RELEASE', {
    modifies: false,
    decode: decodeReleaseIn,
    call: (ops, ctx, nodeid, a) => ops.release(ctx, nodeid, a.fh),
    reply: (w, req) => w.empty(req),
  }),
  handler(20, 'FSYNC', {
    modifies: false,
    decode: decodeFsyncIn,
    call: (ops, ctx, nodeid, a) => (ops.fsync ? ops.fsync(ctx, nodeid, a.fh, a.dataOnly) : Promise.resolve()),
    reply: (w, req) => w.empty(req),
  }),
  handler(21, 'SETXATTR', {
    modifies: true,
    decode: decodeSetxattrIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.setxattr).call(ops, ctx, nodeid, a.name, a.value, a.flags),
    reply: (w, req) => w.empty(req),
  }),
  handler(22, 'GETXATTR', {
    modifies: false,
    decode: decodeGetxattrIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => ops.getxattr(ctx, nodeid, a.name),
    reply: (w, req, value, a) => w.xattr(req, value, a.size),
  }),
  handler(23, 'LISTXATTR', {
    modifies: false,
    decode: decodeListxattrIn,
    call: (ops, ctx, nodeid) => ops.listxattr(ctx, nodeid),
    reply: (w, req, names, a) => w.xattr(req, names, a.size),
  }),
  handler(24, 'REMOVEXATTR', {
    modifies: true,
    decode: decodeNameIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.removexattr).call(ops, ctx, nodeid, a.name),
    reply: (w, req) => w.empty(req),
  }),
  // Nothing to flush in a read-only view: ENOSYS makes the kernel stop sending FLUSH on every
  // close (fc->no_flush), one round trip less per file read. Read-write: success, until a
  // handler for it exists.
  engine(25, 'FLUSH', {}, (s, h) => s.reply(h.unique, s.readOnly ? E.ENOSYS : 0)),
  engine(26, 'INIT', {}, (s, h, buf, start, end) => s.init(h.unique, decodeInitIn(buf, start, end))),
  handler(27, 'OPENDIR', {
    modifies: false,
    decode: decodeOpenIn,
    call: (ops, ctx, nodeid, a) => ops.opendir(ctx, nodeid, a.flags),
    reply: (w, req, r) => w.open(req, r),
  }),
  handler(28, 'READDIR', {
    modifies: false,
    decode: decodeReadIn,
    call: (ops, ctx, nodeid, a) => ops.readdir(ctx, nodeid, a.fh, a.offset, false),
    reply: (w, req, list, a) => w.dirents(req, list, false, a.size),
  }),
  handler(29, 'RELEASEDIR', {
    modifies: false,
    decode: decodeReleaseIn,
    call: (ops, ctx, nodeid, a) => ops.releasedir(ctx, nodeid, a.fh),
    reply: (w, req) => w.empty(req),
  }),
  engine(30, 'FSYNCDIR', {}, nothingToSync),
  unimplemented(31, 'GETLK', 'reads'),
  unimplemented(32, 'SETLK', 'modifies'),
  unimplemented(33, 'SETLKW', 'modifies'),
  handler(34, 'ACCESS', {
    modifies: false,
    decode: decodeAccessIn,
    call: (ops, ctx, nodeid, a) => ops.access(ctx, nodeid, a.mask),
    reply: (w, req) => w.empty(req),
  }),
  handler(35, 'CREATE', {
    modifies: true,
    decode: decodeCreateIn,
    traceName: (a) => a.name,
    call: (ops, ctx, nodeid, a) => offered(ops.create).call(ops, ctx, nodeid, a.name, a.mode, a.flags),
    reply: (w, req, r) => w.created(req, r.entry, r.open),
  }),
  // Answered only when its target is unknown (EAGAIN, see admission.ts); no reply otherwise.
  engine(36, 'INTERRUPT', { noReply: true }, (s, h, buf, start, end) =>
    s.interrupt(decodeInterruptIn(buf, start, end).unique, h.unique),
  ),
  unimplemented(37, 'BMAP', 'reads'),
  // Only fuseblk and virtiofs send it; the device reports ENODEV after.
  engine(38, 'DESTROY', {}, (s, h) => {
    s.reply(h.unique, 0);
    s.destroy();
  }),
  // Answered by the handler for what it serves (read-only requests); anything else ENOTTY. A
  // filesystem without the handler answers ENOSYS, which the kernel turns into ENOTTY itself.
  handler(39, 'IOCTL', {
    modifies: false,
    decode: decodeIoctlIn,
    call: (ops, ctx, nodeid, a) => {
      if (!ops.ioctl) return Promise.reject(new NsviewError(E.ENOSYS));
      // Only CUSE sets it: the server could then ask for arbitrary memory of the caller.
      if (a.flags & FUSE_IOCTL_UNRESTRICTED) return Promise.reject(new NsviewError(E.ENOTTY));
      return ops.ioctl(ctx, nodeid, a.fh, a.cmd, (a.flags & FUSE_IOCTL_DIR) !== 0, a.inSize, a.outSize);
    },
    reply: (w, req, data, a) => w.ioctl(req, data, a.outSize),
  }),
  unimplemented(40, 'POLL', 'reads'),
  unimplemented(41, 'NOTIFY_REPLY', 'reads'), // the answer to a NOTIFY_RETRIEVE, which we never send
  engine(42, 'BATCH_FORGET', { noReply: true }, (s, _h, buf, start, end) => {
    for (const f of decodeBatchForgetIn(buf, start, end)) s.forget(f.nodeid, f.nlookup);
  }),
  handler(43, 'FALLOCATE', {
    modifies: true,
    decode: decodeFallocateIn,
    call: (ops, ctx, nodeid, a) => offered(ops.fallocate).call(ops, ctx, nodeid, a.fh, a.offset, a.length, a.mode),
    reply: (w, req) => w.empty(req),
  }),
  handler(44, 'READDIRPLUS', {
    modifies: false,
    decode: decodeReadIn,
    call: (ops, ctx, nodeid, a) => ops.readdir(ctx, nodeid, a.fh, a.offset, true),
    reply: (w, req, list, a) => w.dirents(req, list, true, a.size),
  }),
  handler(45, 'RENAME2', {
    modifies: true,
    decode: decodeRename2In,
    traceName: (a) => a.oldName,
    call: (ops, ctx, nodeid, a) => offered(ops.rename).call(ops, ctx, nodeid, a.oldName, a.newdir, a.newName, a.flags),
    reply: (w, req) => w.empty(req),
  }),
  // SEEK_DATA / SEEK_HOLE (the kernel answers the other whences itself). ENOSYS makes the
  // kernel stop asking and treat every file as all data (fc->no_lseek).
  handler(46, 'LSEEK', {
    modifies: false,
    decode: decodeLseekIn,
    call: (ops, ctx, nodeid, a) =>
      ops.lseek ? ops.lseek(ctx, nodeid, a.fh, a.offset, a.whence) : Promise.reject(new NsviewError(E.ENOSYS)),
    reply: (w, req, offset) => w.lseek(req, offset),
  }),
  unimplemented(47, 'COPY_FILE_RANGE', 'modifies'),
  unimplemented(48, 'SETUPMAPPING', 'modifies'),
  unimplemented(49, 'REMOVEMAPPING', 'modifies'),
  engine(50, 'SYNCFS', {}, nothingToSync),
  unimplemented(51, 'TMPFILE', 'modifies'),
  unimplemented(52, 'STATX', 'reads'),
  unimplemented(53, 'COPY_FILE_RANGE_64', 'modifies'),
];

const BY_OPCODE: ReadonlyArray<OpcodeRow | undefined> = (() => {
  const table: Array<OpcodeRow | undefined> = [];
  for (const row of ROWS) {
    if (table[row.opcode] !== undefined) throw new Error(`opcode ${row.opcode} has two rows`);
    table[row.opcode] = row;
  }
  return table;
})();

/** The row of `opcode`; an opcode newer than this table is answered ENOSYS. */
export function opcodeRow(opcode: number): OpcodeRow {
  return BY_OPCODE[opcode] ?? unimplemented(opcode, `OPCODE_${opcode}`, 'reads');
}

export function opName(opcode: number): string {
  return BY_OPCODE[opcode]?.name ?? `OPCODE_${opcode}`;
}

/** All rows, in opcode order (for tests and documentation). */
export function opcodeRows(): readonly OpcodeRow[] {
  return ROWS;
}

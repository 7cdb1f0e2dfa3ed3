/**
 * Open regular files: the file handles OPEN hands out, the fds behind them, READ answered by a
 * worker writing the reply itself (or by the kernel from a passthrough backing file), and RELEASE.
 */
import { REPLIED, type OpenReply, type RequestContext, type Replied } from '../fuse/types.js';
import { NsviewError, E, errnoName } from '../sys/errors.js';
import { O_ACCMODE } from '../fuse/protocol.js';
import { StatxView } from '../sys/stat.js';
import type { FileAttrRequest } from '../sys/file-flags.js';
import type { NamespaceBinding, ViewContext } from './view-context.js';
import type { RealNode } from './real-nodes.js';
import type { FdCloser } from './fd-closer.js';
import { abortable } from '../access/abortable.js';

/**
 * An open regular file. At OPEN it gets either an O_PATH fd on the main thread (the RESOLVE_CACHED
 * fast path: pins the very file, opened for reading by a worker at the first READ, so files whose
 * data the page cache holds cost no worker trip) or, where the fast path cannot be taken, its
 * read fd at once from a worker.
 */
interface OpenFile {
  /** Its namespace: once that died, the file answers ESTALE (its fds are closed at the death). */
  binding: NamespaceBinding;
  nsInode: number;
  /** On a pseudo filesystem: opened O_NONBLOCK, read with direct I/O. */
  pseudo: boolean;
  nodeId: bigint;
  unpin: () => void;
  /** The O_PATH fd taken at OPEN, until a read turns it into `opened`. */
  pathFd?: number;
  /** Resolves to the read fd (rejects with the open's error). */
  opened?: Promise<number>;
  /** Its fds are closed (released, or its namespace died). */
  closed?: boolean;
  /** Counted in its node's NodeIo.opens. */
  counted?: boolean;
  /** Opened for writing (read-write mode): writes, truncation and fallocate go to this fd. */
  writable?: boolean;
}

/** open(2)'s O_TRUNC: an open that truncates writes even when its access mode is read-only. */
const O_TRUNC = 0o1000;

/** Whether an open with `flags` writes (access mode, or O_TRUNC). */
export function opensForWriting(flags: number): boolean {
  return (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
}

/**
 * How the open files of one node are served while any is open. The kernel refuses to open one
 * inode in caching and in passthrough mode at once, or with two different backing files, so the
 * first open decides for all that overlap it.
 */
interface NodeIo {
  /** The node's backing id (FOPEN_PASSTHROUGH), or undefined: reads come to us. */
  backingId: number | undefined;
  opens: number;
}

/**
 * Files at least this big are passed through (when the kernel agreed to it at INIT): their reads
 * then cost no request, worker trip or copy. Smaller ones stay in the FUSE page cache kept across
 * opens (FOPEN_KEEP_CACHE), where a warm open costs no ioctl either.
 */
export const PASSTHROUGH_MIN_SIZE = 0;

export class OpenFiles {
  private readonly files = new Map<bigint, OpenFile>();
  private readonly nodeIo = new Map<bigint, NodeIo>();
  private nextFh = 1n;

  constructor(
    private readonly vc: ViewContext,
    private readonly closer: FdCloser,
  ) {}

  /**
   * Each open gets its own fd: the file as it was at open, whatever the container renames
   * after, as for a process inside. Usually an O_PATH fd taken on this thread without blocking
   * (see OpenFile); else a worker opens the file for reading before OPEN is answered. The page
   * cache is kept across opens (AUTO_INVAL_DATA drops it when a refreshed mtime or size differs,
   * so contents are never staler than --attr-timeout).
   */
  async open(n: RealNode, flags = 0, signal?: AbortSignal): Promise<OpenReply> {
    if (opensForWriting(flags)) return this.openForWriting(n, flags);
    const vc = this.vc;
    const b = n.binding;
    const unpin = await vc.roots.pin(vc.namespace(b), signal);
    const f: OpenFile = { binding: b, nsInode: n.nsInode, pseudo: n.onPseudo, nodeId: n.id, unpin };
    const held = vc.roots.peek(b.id);
    const fast = held && vc.fast.tryOpenPath(held, n.path);
    let size = -1n;
    if (fast && fast.st.isReg && fast.st.dev === n.dev && fast.st.ino === n.ino) {
      f.pathFd = fast.fd;
      size = fast.st.size;
    } else {
      if (fast) this.closer.closeSoon(fast.fd); // another file there now: the worker decides
      const { path, dev, ino } = n;
      try {
        const r = await vc.inRoot(
          b,
          (root) => vc.io.run({ op: 'openFile', root, path, dev, ino, nonblock: f.pseudo }, n.nsInode, { signal }),
          undefined,
          signal,
        );
        f.opened = Promise.resolve(r.fd);
      } catch (err) {
        unpin();
        throw err;
      }
    }
    if (!b.alive) {
      // Died while we opened: never hand out a handle of a dead namespace.
      this.closeFds(f);
      throw new NsviewError(E.ENOENT, `namespace ${b.inode} is gone`);
    }
    const io = this.nodeIo.get(n.id) ?? this.decideIo(n.id, f.pseudo ? undefined : f.pathFd, size, flags);
    io.opens++;
    f.counted = true;
    const fh = this.nextFh++;
    this.files.set(fh, f);
    // Pseudo filesystems' files (proc, sysfs) say size 0 or 4096 whatever they hold and change at
    // every read: the page cache would show them empty or stale, so each read comes here.
    if (f.pseudo) return { fh, directIo: true };
    return io.backingId === undefined ? { fh, keepCache: true } : { fh, backingId: io.backingId };
  }

  /**
   * The first open of a node (none other open now) decides how its opens are served. Passthrough
   * only for read-only opens of a regular file on a filesystem known local (the fast path gave
   * `pathFd`, an O_PATH fd checked to be the node's file: the kernel opens exactly that file
   * again, with the client's open flags). Procfs-like files (never on the fast path), files on
   * filesystems the kernel will not stack on (ELOOP) or a kernel that refuses: reads come to us.
   */
  private decideIo(nodeId: bigint, pathFd: number | undefined, size: bigint, flags: number): NodeIo {
    const io: NodeIo = { backingId: undefined, opens: 0 };
    const backing = this.vc.session?.backing;
    if (backing && pathFd !== undefined && (flags & O_ACCMODE) === 0 && size >= PASSTHROUGH_MIN_SIZE) {
      try {
        io.backingId = backing.open(pathFd);
      } catch (err) {
        this.vc.opts.trace?.('open', `no passthrough: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.nodeIo.set(nodeId, io);
    return io;
  }

  /**
   * Read-write mode: a worker opens the checked regular file with the caller's flags (O_TRUNC and
   * O_APPEND kept). No page cache is kept from earlier opens: this open may change the file.
   */
  private async openForWriting(n: RealNode, flags: number): Promise<OpenReply> {
    const vc = this.vc;
    const b = n.binding;
    const unpin = await vc.roots.pin(vc.namespace(b));
    try {
      const r = await vc.inRoot(b, (root) =>
        vc.io.run(
          { op: 'openForWriting', node: { root, path: n.path, dev: n.dev, ino: n.ino, ownDev: vc.ownDev }, flags },
          n.nsInode,
        ),
      );
      return this.adopt(b, n.nsInode, n.id, r.fd, unpin);
    } catch (err) {
      unpin();
      throw err;
    }
  }

  /**
   * A file a worker opened for writing (OPEN, CREATE) becomes a file handle; `unpin` on release.
   * Writes never pass through (the backing file would take them past our checks). The kernel
   * refuses a caching open of an inode while a passthrough one is open, so beside one the write
   * open is direct I/O; otherwise it counts as a caching open, and read opens overlapping it stay
   * caching too.
   */
  adopt(b: NamespaceBinding, nsInode: number, nodeId: bigint, fd: number, unpin: () => void): OpenReply {
    const f: OpenFile = {
      binding: b,
      nsInode,
      pseudo: false,
      nodeId,
      unpin,
      opened: Promise.resolve(fd),
      writable: true,
    };
    if (!b.alive) {
      this.closeFds(f);
      throw new NsviewError(E.ENOENT, `namespace ${b.inode} is gone`);
    }
    let io = this.nodeIo.get(nodeId);
    if (!io) {
      io = { backingId: undefined, opens: 0 };
      this.nodeIo.set(nodeId, io);
    }
    io.opens++;
    f.counted = true;
    const fh = this.nextFh++;
    this.files.set(fh, f);
    return io.backingId === undefined ? { fh } : { fh, directIo: true };
  }

  /** The fd of `fh` when it was opened for writing (SETATTR of an open file), else undefined. */
  async writeFd(fh: bigint): Promise<number | undefined> {
    const f = this.files.get(fh);
    if (!f?.writable || f.closed) return undefined;
    return this.fileFd(f);
  }

  /** A file opened for writing whose namespace still lives. */
  private writable(fh: bigint): OpenFile {
    const f = this.files.get(fh);
    if (!f?.writable) throw new NsviewError(E.EBADF, 'not opened for writing');
    this.vc.live(f.binding, E.ESTALE);
    return f;
  }

  async write(fh: bigint, offset: bigint, data: Buffer): Promise<number> {
    const f = this.writable(fh);
    const fd = await this.fileFd(f);
    return this.vc.io.run({ op: 'write', fd, data, offset }, f.nsInode);
  }

  /** fsync(2) of the file's own fd; nothing to do for a file only read. */
  async fsync(fh: bigint, dataOnly: boolean): Promise<void> {
    if (!this.files.get(fh)?.writable) return;
    const f = this.writable(fh);
    const fd = await this.fileFd(f);
    await this.vc.io.run({ op: 'fsync', fd, dataOnly }, f.nsInode);
  }

  async fallocate(fh: bigint, offset: bigint, length: bigint, mode: number): Promise<void> {
    const f = this.writable(fh);
    const fd = await this.fileFd(f);
    await this.vc.io.run({ op: 'fallocate', fd, mode, offset, length }, f.nsInode);
  }

  /**
   * The attributes of open file `fh` (the kernel refreshes attributes before reads): that file,
   * not whatever its path holds now, which may be nothing after a rename. Undefined when `fh` is
   * not an open file or its open failed.
   */
  async statOpen(fh: bigint, signal?: AbortSignal): Promise<StatxView | undefined> {
    const f = this.files.get(fh);
    if (!f) return undefined;
    this.vc.live(f.binding, E.ESTALE);
    const held = f.pathFd === undefined ? undefined : this.vc.fast.statHeld(f.pathFd);
    if (held) return held;
    const fd = f.opened === undefined ? undefined : await f.opened.catch(() => undefined);
    if (fd === undefined) return undefined;
    const rec = await this.vc.io.run({ op: 'fstat', fd }, f.nsInode, { signal });
    return new StatxView(Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength));
  }

  private fileFd(f: OpenFile): Promise<number> {
    if (f.opened === undefined) {
      const pathFd = f.pathFd!;
      f.pathFd = undefined; // the worker closes it
      f.opened = this.vc.io.run({ op: 'reopenHeld', pathFd, nonblock: f.pseudo }, f.nsInode);
      f.opened.catch(() => undefined); // observed by reads and release; never unhandled
    }
    return f.opened;
  }

  /**
   * The worker reads into the reply and writes it to the device itself (see ReplyFrame). ENOENT
   * from that write means the kernel no longer waits for the request (it was interrupted):
   * nothing more to send. Any other refusal is answered EIO through the engine. The kernel
   * refuses a frame either before it looks the request up (a malformed header, an fd that is no
   * connection): the request still waits and the engine's answer is the only one it gets; or
   * after (a body it cannot take): then it has ended the request with EIO itself and refuses the
   * engine's answer (ENOENT), which costs nothing.
   */
  async read(ctx: RequestContext, fh: bigint, offset: bigint, size: number): Promise<Replied> {
    const f = this.files.get(fh);
    if (!f) throw new NsviewError(E.EBADF);
    this.vc.live(f.binding, E.ESTALE);
    // The reopen is shared by every read of the handle: an interrupt only stops waiting for it.
    const fd = await abortable(this.fileFd(f), ctx.signal);
    const written = await this.vc.io.run({ op: 'readReply', fd, offset, size, reply: ctx.delegateReply() }, f.nsInode, {
      signal: ctx.signal,
    });
    if (written !== 0 && written !== E.ENOENT) {
      const why = `the device refused the reply: ${errnoName(written)}`;
      this.vc.opts.trace?.('read', why);
      throw new NsviewError(E.EIO, why);
    }
    return REPLIED;
  }

  /** SEEK_DATA / SEEK_HOLE on open file `fh`, asked of the file itself (its holes as inside). */
  async seek(fh: bigint, offset: bigint, whence: number): Promise<bigint> {
    const f = this.files.get(fh);
    if (!f) throw new NsviewError(E.EBADF);
    this.vc.live(f.binding, E.ESTALE);
    const fd = await this.fileFd(f);
    return this.vc.io.run({ op: 'seek', fd, offset, whence }, f.nsInode);
  }

  /** A read-only file attribute ioctl on open file `fh` (see sys/file-flags.ts). */
  async fileAttr(fh: bigint, which: FileAttrRequest): Promise<Buffer> {
    const f = this.files.get(fh);
    if (!f) throw new NsviewError(E.EBADF);
    this.vc.live(f.binding, E.ESTALE);
    const fd = await this.fileFd(f);
    const r = await this.vc.io.run({ op: 'fileAttr', fd, which }, f.nsInode);
    return Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  }

  release(fh: bigint): void {
    const f = this.files.get(fh);
    if (!f) return;
    this.files.delete(fh);
    this.closeFds(f);
  }

  /** Close the fds of an open file and release its pin (once; the file then answers ESTALE). */
  private closeFds(f: OpenFile): void {
    if (f.closed) return;
    f.closed = true;
    if (f.counted) this.endIo(f.nodeId);
    // Closing may block (see FdCloser): the O_PATH fd goes with the next batch, a read fd at once.
    if (f.pathFd !== undefined) {
      this.closer.closeSoon(f.pathFd);
      f.pathFd = undefined;
      f.unpin();
    } else if (f.opened !== undefined) {
      f.opened.then(
        (fd) => this.closer.closeLater(fd, f.nsInode, f.unpin),
        () => f.unpin(),
      );
    } else {
      f.unpin();
    }
  }

  /**
   * The namespace of `b` died: the fds of its open files are closed now (a read fd would keep its
   * dead mount tree), and the handles stay until released, answering ESTALE. Passthrough opens
   * cannot be revoked: the kernel keeps reading the file they opened until the client closes it.
   */
  dropBinding(b: NamespaceBinding): void {
    for (const f of this.files.values()) if (f.binding === b) this.closeFds(f);
  }

  private endIo(nodeId: bigint): void {
    const io = this.nodeIo.get(nodeId);
    if (!io || --io.opens > 0) return;
    this.nodeIo.delete(nodeId);
    if (io.backingId === undefined) return;
    try {
      this.vc.session?.backing?.close(io.backingId);
    } catch (err) {
      // Only a connection already gone refuses: its ids went with it.
      this.vc.opts.trace?.(
        'release',
        `backing id ${io.backingId}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** Nodes whose opens the kernel now serves from a backing file. */
  get passedThrough(): number {
    let n = 0;
    for (const io of this.nodeIo.values()) if (io.backingId !== undefined) n++;
    return n;
  }

  get size(): number {
    return this.files.size;
  }
}

/**
 * An io worker thread: executes IoRequests synchronously, one at a time. A request that blocks
 * (a hung filesystem inside a namespace) blocks only this thread; the pool gives up on it after
 * the op timeout and starts a fresh worker in its place.
 */
import { parentPort } from 'node:worker_threads';
import { gettid } from '../sys/libc.js';
import { NsviewError, errnoOf } from '../sys/errors.js';
import { openTaskRoot } from '../access/task-root.js';
import { pathBytes } from '../resolve/names.js';
import {
  closeAll,
  fstatFd,
  openFile,
  readLink,
  readReply,
  readViewLink,
  reopenHeld,
  seekFile,
  statPath,
} from './files.js';
import { dirAttrAt, fileAttrOfFd } from './file-attrs.js';
import { openDirAndRead, readDir } from './directories.js';
import { getXattr, listXattr } from './xattrs.js';
import { statfsPath } from './statfs.js';
import { statRoots } from './roots.js';
import {
  allocate,
  createIn,
  linkIn,
  mkdirIn,
  mknodIn,
  removeXattr,
  renameIn,
  reopenForWriting,
  setattrNode,
  setXattr,
  symlinkIn,
  syncFd,
  unlinkIn,
  writeAt,
  type DirRef,
  openNodeFd,
} from './writes.js';
import { unshare, CLONE } from '../sys/libc.js';
import { umask } from '../sys/write-calls.js';
import type { DirChunk, IoMessage, IoOp, IoRequestOf, IoResponse, IoResult, NodeRef } from './protocol.js';

if (!parentPort) throw new Error('io worker must run as a worker thread');
const port = parentPort;

/** A result, the buffers to transfer (not copy) with it, and the fds it hands to the caller. */
interface Answer<T> {
  value: T;
  transfer?: ArrayBuffer[];
  fds?: number[];
}

type Handlers = { [K in IoOp]: (req: IoRequestOf<K>) => Answer<IoResult<K>> };

/** The distinct ArrayBuffers behind `views` (a buffer may be listed for transfer only once). */
function buffersOf(...views: Array<ArrayBufferView | undefined>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of views) if (v && v.buffer instanceof ArrayBuffer) out.add(v.buffer);
  return [...out];
}

function chunkBuffers(c: DirChunk): ArrayBuffer[] {
  return buffersOf(c.names, c.nameEnds, c.types, c.inos, c.offs, c.stats, c.statOk);
}

const b = pathBytes;

/** postMessage delivers a Buffer as a plain Uint8Array: view the same bytes as a Buffer. */
function buf(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function ref(n: NodeRef): DirRef {
  return { root: n.root, path: b(n.path), dev: n.dev, ino: n.ino, ownDev: n.ownDev };
}

/** A statx record answer, its buffer moved, not copied. */
function statAnswer(r: Uint8Array): Answer<Uint8Array> {
  return { value: r, transfer: buffersOf(r) };
}

const handlers: Handlers = {
  openTaskRoot: (req) => {
    const r = openTaskRoot(req.pid, req.tid, req.nsInode, req.self, false, req.nsId);
    return { value: r, transfer: buffersOf(r.rootStat), fds: [r.rootFd, r.guardFd] };
  },
  statRoots: (req) => {
    const r = statRoots(req.items);
    return {
      value: r,
      transfer: buffersOf(...r.flatMap((x) => [x.stat, x.xattrNames])),
      fds: r.flatMap((x) => (x.opened ? [x.opened.rootFd, x.opened.guardFd] : [])),
    };
  },
  stat: (req) => {
    const r = statPath(req.root, b(req.path), req.links);
    return { value: r, transfer: buffersOf(r.stat) };
  },
  readlink: (req) => {
    const r = readLink(req.root, b(req.path));
    return { value: r, transfer: buffersOf(r) };
  },
  viewLink: (req) => {
    const r = readViewLink(req.root, b(req.path), req.links);
    return { value: r, transfer: buffersOf(r) };
  },
  openFile: (req) => {
    const r = openFile(req.root, b(req.path), req.dev, req.ino, req.nonblock);
    return { value: r, transfer: buffersOf(r.stat), fds: [r.fd] };
  },
  readReply: (req) => ({ value: readReply(req.fd, req.offset, req.size, req.reply) }),
  fstat: (req) => {
    const r = fstatFd(req.fd);
    return { value: r, transfer: buffersOf(r) };
  },
  seek: (req) => ({ value: seekFile(req.fd, req.offset, req.whence) }),
  fileAttr: (req) => {
    const r = fileAttrOfFd(req.fd, req.which);
    return { value: r, transfer: buffersOf(r) };
  },
  dirAttr: (req) => {
    const r = dirAttrAt(req.root, b(req.path), req.dev, req.ino, req.which);
    return { value: r, transfer: buffersOf(r) };
  },
  openDirAndRead: (req) => {
    const r = openDirAndRead(req.root, b(req.path), req.dev, req.ino, req.links);
    return { value: r, transfer: chunkBuffers(r.first), fds: [r.fd] };
  },
  readDir: (req) => {
    const r = readDir(
      req.fd,
      req.offset,
      req.links ? { root: req.root, path: b(req.path), links: req.links } : undefined,
    );
    return { value: r, transfer: chunkBuffers(r) };
  },
  closeAll: (req) => ({ value: closeAll(req.fds) }),
  reopenHeld: (req) => {
    const fd = reopenHeld(req.pathFd, req.nonblock);
    return { value: fd, fds: [fd] };
  },
  statfs: (req) => {
    const r = statfsPath(req.root, b(req.path));
    return { value: r, transfer: buffersOf(r) };
  },
  getxattr: (req) => {
    // postMessage delivers a Buffer as a plain Uint8Array: view the same bytes as a Buffer.
    const name = Buffer.from(req.name.buffer, req.name.byteOffset, req.name.byteLength);
    const r = getXattr(req.root, b(req.path), name);
    return { value: r, transfer: buffersOf(r.names, r.value) };
  },
  listxattr: (req) => {
    const r = listXattr(req.root, b(req.path));
    return { value: r, transfer: buffersOf(r) };
  },
  openForWriting: (req) => {
    const r = openNodeFd(ref(req.node), (pathFd) => reopenForWriting(pathFd, req.flags));
    return { value: r, transfer: buffersOf(r.stat), fds: [r.fd] };
  },
  mkdir: (req) => statAnswer(mkdirIn(ref(req.dir), buf(req.name), req.mode, req.owner)),
  mknod: (req) => statAnswer(mknodIn(ref(req.dir), buf(req.name), req.mode, req.rdev, req.owner)),
  symlink: (req) => statAnswer(symlinkIn(ref(req.dir), buf(req.name), buf(req.target), req.owner)),
  link: (req) => statAnswer(linkIn(ref(req.node), ref(req.dir), buf(req.name))),
  unlink: (req) => ({ value: unlinkIn(ref(req.dir), buf(req.name), req.rmdir) }),
  rename: (req) => ({ value: renameIn(ref(req.from), buf(req.oldName), ref(req.to), buf(req.newName), req.flags) }),
  create: (req) => {
    const r = createIn(ref(req.dir), buf(req.name), req.flags, req.mode, req.owner);
    return { value: r, transfer: buffersOf(r.stat), fds: [r.fd] };
  },
  setattr: (req) => statAnswer(setattrNode(ref(req.node), req.attrs, req.fd)),
  write: (req) => ({ value: writeAt(req.fd, buf(req.data), req.offset) }),
  fsync: (req) => ({ value: syncFd(req.fd, req.dataOnly) }),
  fallocate: (req) => ({ value: allocate(req.fd, req.mode, req.offset, req.length) }),
  setxattr: (req) => ({ value: setXattr(ref(req.node), buf(req.name), buf(req.value), req.flags) }),
  removexattr: (req) => ({ value: removeXattr(ref(req.node), buf(req.name)) }),
};

function execute<K extends IoOp>(req: IoRequestOf<K>): Answer<IoResult<K>> {
  const handler: (req: IoRequestOf<K>) => Answer<IoResult<K>> = handlers[req.op];
  return handler(req);
}

// A umask of this thread's own, 0: the modes read-write mode creates with are the caller's, which
// the kernel already masked with the caller's umask. Sharing the daemon's would mask them twice.
unshare(CLONE.FS);
umask(0);

port.postMessage({ ready: true, tid: gettid() });

port.on('message', (msg: IoMessage) => {
  let res: IoResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const out = execute(msg.req);
    res = { id: msg.id, ok: true, value: out.value, fds: out.fds ?? [] };
    transfer = out.transfer ?? [];
  } catch (err) {
    const errno = errnoOf(err);
    res = { id: msg.id, ok: false, errno, message: err instanceof NsviewError ? err.message : String(err) };
  }
  port.postMessage(res, transfer);
});

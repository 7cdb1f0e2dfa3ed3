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
import { closeAll, fstatFd, openFile, readLink, readReply, readViewLink, reopenHeld, statPath } from './files.js';
import { openDirAndRead, readDir } from './directories.js';
import { getXattr, listXattr } from './xattrs.js';
import { statfsPath } from './statfs.js';
import { statRoots } from './roots.js';
import type { DirChunk, IoRequest, IoResponse } from './protocol.js';

if (!parentPort) throw new Error('io worker must run as a worker thread');
const port = parentPort;

const b = pathBytes;

function chunkBuffers(c: DirChunk): ArrayBuffer[] {
  return [c.names, c.nameEnds, c.types, c.inos, c.offs, c.stats, c.statOk].map((a) => a.buffer as ArrayBuffer);
}

function execute(req: IoRequest): { value: unknown; transfer: ArrayBuffer[] } {
  switch (req.op) {
    case 'openTaskRoot':
      return { value: openTaskRoot(req.pid, req.tid, req.nsInode, req.self), transfer: [] };
    case 'statRoots': {
      const r = statRoots(req.items);
      return {
        value: r,
        transfer: r.flatMap((x) => [x.stat, x.xattrNames].filter((a) => a !== undefined).map((a) => a.buffer as ArrayBuffer)),
      };
    }
    case 'stat': {
      const r = statPath(req.root, b(req.path), req.links);
      return { value: r, transfer: [r.stat.buffer as ArrayBuffer] };
    }
    case 'readlink': {
      const r = readLink(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'viewLink': {
      const r = readViewLink(req.root, b(req.path), { ownDev: req.ownDev, pseudo: req.pseudo });
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'openFile': {
      const r = openFile(req.root, b(req.path), req.dev, req.ino);
      return { value: r, transfer: [r.stat.buffer as ArrayBuffer] };
    }
    case 'fstat': {
      const r = fstatFd(req.fd);
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'readReply':
      return { value: readReply(req.fd, req.offset, req.size, req.reply), transfer: [] };
    case 'readDir': {
      const r = readDir(req.fd, req.offset, req.links ? { root: req.root, path: b(req.path), links: req.links } : undefined);
      return { value: r, transfer: chunkBuffers(r) };
    }
    case 'openDirAndRead': {
      const r = openDirAndRead(req.root, b(req.path), req.dev, req.ino, req.links);
      return { value: r, transfer: chunkBuffers(r.first) };
    }
    case 'closeAll':
      closeAll(req.fds);
      return { value: undefined, transfer: [] };
    case 'reopenHeld':
      return { value: reopenHeld(req.pathFd), transfer: [] };
    case 'statfs': {
      const r = statfsPath(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'getxattr': {
      // postMessage delivers a Buffer as a plain Uint8Array: view the same bytes as a Buffer.
      const name = Buffer.from(req.name.buffer, req.name.byteOffset, req.name.byteLength);
      const r = getXattr(req.root, b(req.path), name);
      return { value: r, transfer: [r.names.buffer as ArrayBuffer, ...(r.value ? [r.value.buffer as ArrayBuffer] : [])] };
    }
    case 'listxattr': {
      const r = listXattr(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
  }
}

port.postMessage({ ready: true, tid: gettid() });

port.on('message', (msg: { id: number; req: IoRequest }) => {
  let res: IoResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const out = execute(msg.req);
    res = { id: msg.id, ok: true, value: out.value };
    transfer = out.transfer;
  } catch (err) {
    const errno = errnoOf(err);
    res = { id: msg.id, ok: false, errno, message: err instanceof NsviewError ? err.message : String(err) };
  }
  port.postMessage(res, transfer);
});

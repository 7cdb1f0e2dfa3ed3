/**
 * An io worker thread: executes IoRequests synchronously, one at a time. A request that blocks
 * (a hung filesystem inside a namespace) blocks only this thread; the pool gives up on it after
 * the op timeout and starts a fresh worker in its place.
 */
import { parentPort } from 'node:worker_threads';
import { gettid } from '../sys/libc.js';
import { NsviewError, errnoOf } from '../sys/errors.js';
import * as ops from './ops.js';
import { pathBytes } from '../resolve/names.js';
import type { DirChunk, IoRequest, IoResponse } from './protocol.js';

if (!parentPort) throw new Error('io worker must run as a worker thread');
const port = parentPort;

/** postMessage delivers Buffers as plain Uint8Arrays; give them their Buffer methods back. */
function revive(req: IoRequest): IoRequest {
  const r = req as { name?: unknown };
  if (r.name instanceof Uint8Array && !Buffer.isBuffer(r.name)) r.name = Buffer.from(r.name.buffer, r.name.byteOffset, r.name.byteLength);
  return req;
}

const b = pathBytes;

function chunkBuffers(c: DirChunk): ArrayBuffer[] {
  return [c.names, c.nameEnds, c.types, c.inos, c.offs, c.stats, c.statOk].map((a) => a.buffer as ArrayBuffer);
}

function execute(req: IoRequest): { value: unknown; transfer: ArrayBuffer[] } {
  switch (req.op) {
    case 'openTaskRoot':
      return { value: ops.openTaskRoot(req.pid, req.tid, req.nsInode, req.self), transfer: [] };
    case 'statRoots': {
      const r = ops.statRoots(req.items);
      return {
        value: r,
        transfer: r.flatMap((x) => [x.stat, x.xattrNames].filter((a) => a !== undefined).map((a) => a.buffer as ArrayBuffer)),
      };
    }
    case 'stat': {
      const r = ops.statPath(req.root, b(req.path), req.links);
      return { value: r, transfer: [r.stat.buffer as ArrayBuffer] };
    }
    case 'readlink': {
      const r = ops.readLink(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'viewLink': {
      const r = ops.viewLink(req.root, b(req.path), req.ownDev, req.pseudo);
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'openFile': {
      const r = ops.openFile(req.root, b(req.path), req.dev, req.ino);
      return { value: r, transfer: [r.stat.buffer as ArrayBuffer] };
    }
    case 'fstat': {
      const r = ops.fstatFd(req.fd);
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'readReply':
      return { value: ops.readReply(req.fd, req.offset, req.size, req.reply), transfer: [] };
    case 'readDir': {
      const r = ops.readDir(req.fd, req.offset, req.links ? { root: req.root, path: b(req.path), links: req.links } : undefined);
      return { value: r, transfer: chunkBuffers(r) };
    }
    case 'openDirAndRead': {
      const r = ops.openDirAndRead(req.root, b(req.path), req.dev, req.ino, req.links);
      return { value: r, transfer: chunkBuffers(r.first) };
    }
    case 'closeAll':
      ops.closeAll(req.fds);
      return { value: undefined, transfer: [] };
    case 'reopenHeld':
      return { value: ops.reopenHeld(req.pathFd), transfer: [] };
    case 'statfs': {
      const r = ops.statfsPath(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
    case 'getxattr': {
      const r = ops.getXattr(req.root, b(req.path), req.name);
      return { value: r, transfer: [r.names.buffer as ArrayBuffer, ...(r.value ? [r.value.buffer as ArrayBuffer] : [])] };
    }
    case 'listxattr': {
      const r = ops.listXattr(req.root, b(req.path));
      return { value: r, transfer: [r.buffer as ArrayBuffer] };
    }
  }
}

port.postMessage({ ready: true, tid: gettid() });

port.on('message', (msg: { id: number; req: IoRequest }) => {
  let res: IoResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const out = execute(revive(msg.req));
    res = { id: msg.id, ok: true, value: out.value };
    transfer = out.transfer;
  } catch (err) {
    const errno = errnoOf(err);
    res = { id: msg.id, ok: false, errno, message: err instanceof NsviewError ? err.message : String(err) };
  }
  port.postMessage(res, transfer);
});

/**
 * NodeFds: open directories, keyed by node rather than by FUSE file handle.
 *
 * nsview answers OPENDIR with ENOSYS, which makes the kernel stop sending OPENDIR and RELEASEDIR
 * altogether (FUSE_NO_OPENDIR_SUPPORT): listing a directory costs its READDIRPLUS requests only,
 * half the round trips of a tree walk. Those requests then carry no handle, so the directory fds
 * live here, per node.
 *
 * An fd is closed after `idleMs` without use, and at most `max` are open at once (least recently
 * used go first); a later request reopens by path with the node's identity checked again.
 */
import type { DirChunk } from '../io/protocol.js';
import type { NamespaceBinding } from './view-context.js';

export interface NodeFd {
  readonly nodeid: bigint;
  readonly binding: NamespaceBinding;
  readonly nsInode: number;
  fd: number;
  lastUsed: number;
  /** Releases the namespace pin taken while the fd is open. */
  unpin: () => void;
}

/**
 * A directory being listed. A listing from offset 0 always reopens and rereads the directory
 * (each `ls` sees the present); later offsets continue from the chunk, or seek the fd to the
 * filesystem's d_off cookie, which is what the kernel hands back.
 */
export interface DirCursor extends NodeFd {
  chunk: { from: bigint; data: DirChunk };
  /**
   * The cookies of the first '.' and '..' this cursor met: a directory has one of each, and only
   * those are served (again, when the kernel rereads from an earlier cookie).
   */
  dotsAt?: { dot?: bigint; dotdot?: bigint };
}

export class NodeFds<T extends NodeFd> {
  private readonly cursors = new Map<bigint, T>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly close: (c: T) => void,
    private readonly max = 256,
    private readonly idleMs = 2000,
  ) {
    this.sweeper = setInterval(() => this.sweep(), idleMs);
    this.sweeper.unref();
  }

  get(nodeid: bigint): T | undefined {
    const c = this.cursors.get(nodeid);
    if (c) {
      c.lastUsed = performance.now();
      // Map order is insertion order: move to the back as most recently used.
      this.cursors.delete(nodeid);
      this.cursors.set(nodeid, c);
    }
    return c;
  }

  /** Install a freshly opened fd, closing any previous one of the node. */
  put(c: T): void {
    this.drop(c.nodeid);
    this.cursors.set(c.nodeid, c);
    while (this.cursors.size > this.max) this.drop(this.cursors.keys().next().value!);
  }

  drop(nodeid: bigint): void {
    const c = this.cursors.get(nodeid);
    if (!c) return;
    this.cursors.delete(nodeid);
    this.close(c);
  }

  /** Close every fd of namespace binding `b` (it died). */
  dropBinding(b: NamespaceBinding): void {
    for (const c of [...this.cursors.values()]) if (c.binding === b) this.drop(c.nodeid);
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of [...this.cursors.values()]) if (now - c.lastUsed > this.idleMs) this.drop(c.nodeid);
  }

  get size(): number {
    return this.cursors.size;
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const id of [...this.cursors.keys()]) this.drop(id);
  }
}

/** Index of the first entry after cookie `offset` in `chunk`, or -1 if the chunk cannot tell. */
export function positionIn(chunk: { from: bigint; data: DirChunk }, offset: bigint): number {
  if (chunk.from === offset) return 0;
  const i = chunk.data.offs.indexOf(offset);
  return i < 0 ? -1 : i + 1;
}

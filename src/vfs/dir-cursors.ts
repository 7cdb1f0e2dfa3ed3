/**
 * DirCursors: open directories, keyed by node rather than by FUSE file handle.
 *
 * nsview answers OPENDIR with ENOSYS, which makes the kernel stop sending OPENDIR and RELEASEDIR
 * altogether (zero-message opendir): a directory listing costs the READDIRPLUS requests only,
 * half the round trips of a tree walk. READDIRPLUS then carries no handle, so the state of a
 * listing lives here: a directory fd and the chunk last read, per node.
 *
 * A listing from offset 0 always reopens and rereads the directory (each `ls` sees the present);
 * later offsets continue from the chunk, or seek the fd to the filesystem's d_off cookie, which is
 * what the kernel hands back. A cursor is closed when its end was served, or after `idleMs`
 * without use, and at most `max` are open at once (least recently used go first).
 */
import type { DirChunk } from '../io/protocol.js';

export interface DirCursor {
  readonly nodeid: bigint;
  readonly nsInode: number;
  fd: number;
  chunk: { from: bigint; data: DirChunk };
  lastUsed: number;
  /** Releases the namespace pin taken while the fd is open. */
  unpin: () => void;
}

export class DirCursors {
  private readonly cursors = new Map<bigint, DirCursor>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly close: (c: DirCursor) => void,
    private readonly max = 256,
    private readonly idleMs = 2000,
  ) {
    this.sweeper = setInterval(() => this.sweep(), idleMs);
    this.sweeper.unref();
  }

  get(nodeid: bigint): DirCursor | undefined {
    const c = this.cursors.get(nodeid);
    if (c) {
      c.lastUsed = performance.now();
      // Map order is insertion order: move to the back as most recently used.
      this.cursors.delete(nodeid);
      this.cursors.set(nodeid, c);
    }
    return c;
  }

  /** Install a freshly opened cursor, closing any previous one of the node. */
  put(c: DirCursor): void {
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

/**
 * Listing the directories inside namespaces: an fd per directory node being listed (NodeFds), the
 * chunk of entries a worker read last, and the DirEntries served from it.
 */
import type { DirEntry, Entry } from '../fuse/types.js';
import { StatxView, STATX_RECORD, dtypeOf } from '../sys/stat.js';
import type { IoOp, IoRequestOf, IoResult } from '../io/protocol.js';
import type { RootRef } from '../access/root-ref.js';
import type { NamespaceBinding, SymlinkMode, ViewContext } from './view-context.js';
import { NsviewError, E } from '../sys/errors.js';
import type { RealNode } from './real-nodes.js';
import type { FdCloser } from './fd-closer.js';
import { NodeFds, positionIn } from './node-fds.js';
import type { DirCursor } from './node-fds.js';
import { PLAIN_BATCH, PLUS_BATCH } from './listing.js';
import { isComponent, isDot, isDotDot } from '../resolve/names.js';

/** The READDIRPLUS entry of `name` in `dir` with attributes `st` (counts one kernel reference). */
export type ChildEntry = (dir: RealNode, name: string, st: StatxView) => Entry;

export class OpenDirs {
  private readonly cursors: NodeFds<DirCursor>;

  constructor(
    private readonly vc: ViewContext,
    closer: FdCloser,
    private readonly childEntry: ChildEntry,
    /** How the tree these directories belong to shows symlinks (their sizes in listings). */
    private readonly links: SymlinkMode,
  ) {
    this.cursors = new NodeFds<DirCursor>((c) => closer.closeLater(c.fd, c.nsInode, c.unpin));
  }

  /**
   * A worker request that opens something of `n` and so keeps its namespace's way in pinned (a
   * sandbox stays while the fd is open): the caller owns `unpin`, called here only on failure.
   */
  private async openPinned<K extends IoOp>(
    n: RealNode,
    req: (root: RootRef) => IoRequestOf<K>,
    signal: AbortSignal | undefined,
  ): Promise<{ value: IoResult<K>; unpin: () => void }> {
    const vc = this.vc;
    const ns = vc.namespace(n.binding, E.ESTALE);
    const unpin = await vc.roots.pin(ns, signal);
    try {
      const value = await vc.inRoot(n.binding, (root) => vc.io.run(req(root), n.nsInode, { signal }), E.ESTALE, signal);
      return { value, unpin };
    } catch (err) {
      unpin();
      throw err;
    }
  }

  /** The chunk holding the entries after `offset`, reading or reopening as needed. */
  private async dirChunk(
    n: RealNode,
    offset: bigint,
    signal: AbortSignal | undefined,
  ): Promise<{ c: DirCursor; start: number }> {
    const vc = this.vc;
    vc.live(n.binding, E.ESTALE);
    let c = offset === 0n ? undefined : this.cursors.get(n.id);
    if (!c) {
      const { value: r, unpin } = await this.openPinned(
        n,
        (root) => ({
          op: 'openDirAndRead',
          root,
          path: n.path,
          dev: n.dev,
          ino: n.ino,
          links: vc.linkView(this.links),
        }),
        signal,
      );
      c = {
        nodeid: n.id,
        binding: n.binding,
        nsInode: n.nsInode,
        fd: r.fd,
        chunk: { from: 0n, data: r.first },
        lastUsed: performance.now(),
        unpin,
      };
      this.cursors.put(c);
      if (!n.binding.alive) {
        // Died while the directory was opened: its fd goes now, nothing of it is served.
        this.cursors.drop(n.id);
        throw new NsviewError(E.ESTALE, `namespace ${n.nsInode} is gone`);
      }
    }
    let start = positionIn(c.chunk, offset);
    if (start < 0 || (start >= c.chunk.data.offs.length && !c.chunk.data.end)) {
      const from = start < 0 ? offset : c.chunk.data.offs[c.chunk.data.offs.length - 1]!;
      const cur = c;
      const data = await vc.inRoot(
        n.binding,
        (root) =>
          vc.io.run(
            { op: 'readDir', root, path: n.path, fd: cur.fd, offset: from, links: vc.linkView(this.links) },
            n.nsInode,
            { signal },
          ),
        E.ESTALE,
        signal,
      );
      c.chunk = { from, data };
      start = 0;
    }
    return { c, start };
  }

  /**
   * The entries of directory `n` after cookie `offset`. Names are shown only if a lookup would
   * take them (isComponent), and '.' and '..' once each per listing: what a hostile filesystem
   * lists beyond that never reaches a listing. A batch of nothing but such names is skipped, not
   * answered empty (that would end the listing).
   */
  async read(n: RealNode, offset: bigint, plus: boolean, signal?: AbortSignal): Promise<DirEntry[]> {
    for (;;) {
      const { c, start } = await this.dirChunk(n, offset, signal);
      this.vc.live(n.binding, E.ESTALE);
      const data = c.chunk.data;
      if (start >= data.offs.length) {
        // End served: nothing more to read through this fd.
        this.cursors.drop(n.id);
        return [];
      }
      const limit = Math.min(data.offs.length, start + (plus ? PLUS_BATCH : PLAIN_BATCH));
      const out = this.entries(n, c, start, limit, plus);
      if (out.length > 0) return out;
      offset = data.offs[limit - 1]!;
    }
  }

  private entries(n: RealNode, c: DirCursor, start: number, limit: number, plus: boolean): DirEntry[] {
    const numbers = this.vc.numbers;
    const data = c.chunk.data;
    const out: DirEntry[] = [];
    const names = Buffer.from(data.names.buffer, data.names.byteOffset, data.names.byteLength);
    const stats = Buffer.from(data.stats.buffer, data.stats.byteOffset, data.stats.byteLength);
    const dots = (c.dotsAt ??= {});
    for (let i = start; i < limit; i++) {
      const name = Buffer.from(names.subarray(i === 0 ? 0 : data.nameEnds[i - 1]!, data.nameEnds[i]!));
      const off = data.offs[i]!;
      if (isDot(name)) {
        if ((dots.dot ??= off) !== off) continue;
      } else if (isDotDot(name)) {
        if ((dots.dotdot ??= off) !== off) continue;
      } else if (!isComponent(name)) {
        continue;
      }
      const de: DirEntry = {
        name,
        ino: numbers.of(n.dev, data.inos[i]!),
        type: data.types[i]!,
        off,
      };
      if (data.statOk[i]) {
        const st = new StatxView(stats, i * STATX_RECORD);
        // Mount roots are left to a normal lookup: it checks for pseudo filesystems and our own
        // mount, and a frozen filesystem there then costs only its own timed request.
        if (!st.isMountRoot) {
          de.ino = numbers.of(st.dev, st.ino);
          de.type = dtypeOf(st.mode);
          if (plus) {
            const rec = new StatxView(Buffer.from(stats.subarray(i * STATX_RECORD, (i + 1) * STATX_RECORD)));
            de.entry = this.childEntry(n, name.toString('latin1'), rec);
          }
        }
      }
      out.push(de);
    }
    return out;
  }

  /** Close the directory fds of a namespace that died. */
  dropBinding(b: NamespaceBinding): void {
    this.cursors.dropBinding(b);
  }

  /** Close the directory fd of node `nodeid`, if one is open (its next listing reopens). */
  drop(nodeid: bigint): void {
    this.cursors.drop(nodeid);
  }

  get size(): number {
    return this.cursors.size;
  }
}

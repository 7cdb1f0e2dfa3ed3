/**
 * Closing the fds of open files and directories. close() may call into the file's filesystem
 * (flush on FUSE, freeing a file the container deleted meanwhile), so it runs in an io worker,
 * and nobody waits for it (the kernel has already let go of the file).
 */
import type { IoPool } from '../io/pool.js';

/** O_PATH fds of released files are closed in a worker, this many at a time (or after a tick). */
const CLOSE_BATCH = 64;

export class FdCloser {
  private readonly toClose: number[] = [];
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly io: IoPool,
    private readonly trace: ((op: string, detail: string) => void) | undefined,
  ) {}

  /** Close an fd in a worker, batched (one message per CLOSE_BATCH fds or per 10 ms). */
  closeSoon(fd: number): void {
    this.toClose.push(fd);
    if (this.toClose.length >= CLOSE_BATCH) this.flushCloses();
    else this.closeTimer ??= setTimeout(() => this.flushCloses(), 10);
  }

  private flushCloses(): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    const fds = this.toClose.splice(0);
    if (fds.length === 0) return;
    this.io
      .run({ op: 'closeAll', fds }, 0)
      .catch((err) => this.trace?.('close', `${fds.length} fds: ${(err as Error).message}`));
  }

  /** Close a read or directory fd of namespace `nsInode` at once, then release its pin. */
  closeLater(fd: number, nsInode: number, unpin: () => void): void {
    this.io
      .run({ op: 'closeAll', fds: [fd] }, nsInode)
      .catch((err) => this.trace?.('close', `fd ${fd}: ${(err as Error).message}`))
      .finally(unpin);
  }
}

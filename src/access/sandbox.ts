import { Worker } from 'node:worker_threads';
import { NsviewError, E } from '../sys/errors.js';

/** A thread of ours parked inside a mount namespace (see sandbox-thread.ts). */
export class SandboxTask {
  private constructor(
    readonly tid: number,
    private readonly worker: Worker,
    private readonly flag: Int32Array,
  ) {}

  /**
   * Start a thread that joins the mount namespace whose file is `path` (a host path when rootFd
   * is -1, else resolved inside that root) and must have inode `nsInode` (and id `nsId`, when
   * given; `path` '' then opens the namespace by that id).
   */
  static start(
    ref: { rootFd: number; path: string; nsInode: number; nsId?: bigint },
    timeoutMs = 10_000,
  ): Promise<SandboxTask> {
    const release = new SharedArrayBuffer(4);
    let worker: Worker;
    try {
      worker = new Worker(new URL('./sandbox-thread.js', import.meta.url), {
        workerData: { ...ref, release },
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      });
    } catch (err) {
      // No thread to be had now (pids.max, RLIMIT_NPROC): this namespace waits, the daemon lives.
      return Promise.reject(
        new NsviewError(E.EAGAIN, `cannot start a sandbox thread: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
    worker.unref();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new NsviewError(E.ETIMEDOUT, 'sandbox thread did not start'));
      }, timeoutMs);
      worker.once('message', (msg: { tid?: number; errno?: number; message?: string }) => {
        clearTimeout(timer);
        if (msg.tid) resolve(new SandboxTask(msg.tid, worker, new Int32Array(release)));
        else {
          void worker.terminate();
          reject(new NsviewError(msg.errno ?? E.EIO, `sandbox setns failed: ${msg.message ?? ''}`));
        }
      });
      worker.once('error', (err) => {
        clearTimeout(timer);
        // ERR_WORKER_INIT_FAILED: the thread could not be created (pids.max): a lack, not a fault.
        const noThread = 'code' in err && err.code === 'ERR_WORKER_INIT_FAILED';
        reject(new NsviewError(noThread ? E.EAGAIN : E.EIO, `sandbox thread failed: ${err.message}`));
      });
    });
  }

  /** Let the thread leave the namespace and end. */
  release(): void {
    Atomics.store(this.flag, 0, 1);
    Atomics.notify(this.flag, 0);
    void this.worker.terminate();
  }
}

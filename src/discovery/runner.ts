/**
 * DiscoveryWorker: discovery passes run in a worker thread (worker.ts), one at a time, each
 * answered with a snapshot. A worker that dies fails the passes in flight and is replaced at the
 * next pass. `takenAt` is set on arrival: performance.now() has another origin in each thread.
 */
import { Worker } from 'node:worker_threads';
import type { DiscoverySnapshot } from './model.js';
import type { PassRequest, PassResponse } from './worker-protocol.js';

interface Pending {
  resolve: (s: DiscoverySnapshot) => void;
  reject: (e: Error) => void;
}

export class DiscoveryWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopped = false;

  private spawn(): Worker {
    // Discovery holds big structures only during a pass; a small young generation keeps the
    // isolate near its floor between passes.
    const w = new Worker(new URL('./worker.js', import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 128 },
    });
    w.unref();
    w.on('message', (m: PassResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new Error(m.error));
      else p.resolve({ ...m.snapshot, takenAt: performance.now() });
    });
    const fail = (err: Error): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`discovery worker exited (${code})`)));
    return w;
  }

  pass(ignoreTids: Iterable<number>, mountinfoTids: Iterable<[number, number]>): Promise<DiscoverySnapshot> {
    if (this.stopped) return Promise.reject(new Error('discovery stopped'));
    this.worker ??= this.spawn();
    const id = this.nextId++;
    const req: PassRequest = { id, ignoreTids: [...ignoreTids], mountinfoTids: [...mountinfoTids] };
    const w = this.worker;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage(req);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}

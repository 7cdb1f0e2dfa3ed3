/**
 * Discovery in its own thread. A pass reads procfs for every process, thread and fd on the host
 * (thousands of small reads with 200 containers); run on the main thread, their completions
 * took a fifth of it and delayed FUSE replies behind them. Here they cost the main thread one
 * message per pass, and, this thread being free to block, the reads are synchronous (a tenth of
 * the CPU). The thread keeps no state between passes.
 */
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { discover } from './discover.js';
import type { PassRequest, PassResponse } from './worker-protocol.js';

if (!parentPort) throw new Error('the discovery worker must run as a worker thread');
const port = parentPort;

port.on('message', (req: PassRequest) => {
  const tids = new Map(req.mountinfoTids);
  discover({
    sync: true,
    ignoreTids: new Set(req.ignoreTids),
    // Mountinfo of a namespace without a readable task, through a sandbox thread of ours in it.
    readMountinfo: async (ns) => {
      const tid = tids.get(ns.inode);
      if (tid === undefined) return undefined;
      try {
        return readFileSync(`/proc/self/task/${tid}/mountinfo`, 'latin1'); // bytes: see sys/mountinfo.ts
      } catch {
        return undefined;
      }
    },
  }).then(
    (snapshot) => port.postMessage({ id: req.id, snapshot } satisfies PassResponse),
    (err: unknown) =>
      port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies PassResponse),
  );
});

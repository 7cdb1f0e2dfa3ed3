/**
 * Body of a sandbox task: a thread of the daemon that joins one mount namespace and then does
 * nothing but wait, so that /proc/self/task/TID/root is that namespace's root.
 *
 * Everything it will ever run is loaded before setns(); after it, the thread touches no path
 * (a path would now resolve inside the container, and code loaded from there would be the
 * container's). It unshares CLONE_FS first because a thread sharing its fs_struct with others
 * may not change mount namespace. Being a thread, it cannot outlive the daemon.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { unshare, setns, gettid, setThreadName, CLONE } from '../sys/libc.js';
import { SANDBOX_THREAD_NAME } from './sandbox-name.js';
import { errnoOf } from '../sys/errors.js';

interface SandboxInit {
  nsFd: number;
  release: SharedArrayBuffer;
}

const init = workerData as SandboxInit;
const flag = new Int32Array(init.release);

try {
  setThreadName(SANDBOX_THREAD_NAME);
  unshare(CLONE.FS);
  setns(init.nsFd, CLONE.NEWNS);
  parentPort!.postMessage({ tid: gettid() });
  // Block without any syscall on a path until the daemon sets the flag.
  while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0);
} catch (err) {
  parentPort!.postMessage({ errno: errnoOf(err), message: String(err) });
}

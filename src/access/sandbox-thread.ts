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
import { unshare, setns, gettid, setThreadName, close, CLONE } from '../sys/libc.js';
import { openNsFile } from './ns-file.js';
import { SANDBOX_THREAD_NAME } from './sandbox-name.js';
import { errnoOf, E, NsviewError } from '../sys/errors.js';
import { mountNamespaceId, openMountNamespaceById } from '../sys/namespace-id.js';

interface SandboxInit {
  /** Where the namespace file is: a host path (rootFd -1) or a path inside another root. */
  rootFd: number;
  path: string;
  nsInode: number;
  /**
   * The kernel's id of the namespace: checked on the opened file before setns. With `path` ''
   * the namespace is opened by this id alone (nsfs file handle), no file of it needed.
   */
  nsId?: bigint;
  release: SharedArrayBuffer;
}

function isSandboxInit(d: unknown): d is SandboxInit {
  return (
    typeof d === 'object' &&
    d !== null &&
    'rootFd' in d &&
    typeof d.rootFd === 'number' &&
    'path' in d &&
    typeof d.path === 'string' &&
    'nsInode' in d &&
    typeof d.nsInode === 'number' &&
    (!('nsId' in d) || d.nsId === undefined || typeof d.nsId === 'bigint') &&
    'release' in d &&
    d.release instanceof SharedArrayBuffer
  );
}

if (!isSandboxInit(workerData)) throw new Error('sandbox thread started without its SandboxInit');
const init: SandboxInit = workerData;
const flag = new Int32Array(init.release);

try {
  setThreadName(SANDBOX_THREAD_NAME);
  unshare(CLONE.FS);
  // Opened here, checked (nsfs, expected inode) and closed right after setns. A pin is opened
  // through a detached clone of its mount, so removing it (umount) is never refused as busy.
  const nsFd =
    init.path === '' && init.nsId !== undefined
      ? openMountNamespaceById({ id: init.nsId, inode: init.nsInode })
      : openNsFile(init.rootFd, init.path, init.nsInode);
  try {
    if (init.nsId !== undefined && mountNamespaceId(nsFd) !== init.nsId) {
      throw new NsviewError(E.ESTALE, `mount namespace ${init.nsInode} is another one than asked for`);
    }
    setns(nsFd, CLONE.NEWNS);
  } finally {
    close(nsFd);
  }
  parentPort!.postMessage({ tid: gettid() });
  // Block without any syscall on a path until the daemon sets the flag.
  while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0);
} catch (err) {
  parentPort!.postMessage({ errno: errnoOf(err), message: String(err) });
}

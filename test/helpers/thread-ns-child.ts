/**
 * Child process for makeThreadNamespace(): a worker thread leaves the process's mount namespace
 * (unshare(CLONE_FS) then unshare(CLONE_NEWNS)) and stays alive; the main thread prints
 * `{"pid","tid","nsInode"[,"markerFile"]}` as one JSON line and waits until a signal ends it
 * (the parent runs it under `setpriv --pdeathsig KILL`, so it also dies with the parent).
 *
 * Usage: node thread-ns-child.js [TMPFS_DIR]
 */
import { readlinkSync, writeFileSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import koffi from 'koffi';

const CLONE_FS = 0x200;
const CLONE_NEWNS = 0x20000;
const MS_REC = 0x4000;
const MS_PRIVATE = 1 << 18;

interface Report {
  pid: number;
  tid: number;
  nsInode: number;
  markerFile?: string;
}

if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { tmpfsAt: process.argv[2] } });
  worker.on('message', (m: Report | { error: string }) => {
    if ('error' in m) {
      process.stderr.write(`thread-ns-child: ${m.error}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify(m)}\n`);
  });
  worker.on('error', (e) => {
    process.stderr.write(`thread-ns-child: ${String(e)}\n`);
    process.exit(1);
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => process.exit(0));
} else {
  try {
    const libc = koffi.load('libc.so.6');
    const unshare = libc.func('int unshare(int)');
    const gettid = libc.func('int gettid()');
    const mount = libc.func('int mount(const char *, const char *, const char *, unsigned long, const char *)');
    const fail = (what: string) => {
      throw new Error(`${what} failed, errno ${koffi.errno()}`);
    };
    if (unshare(CLONE_FS) !== 0) fail('unshare(CLONE_FS)');
    if (unshare(CLONE_NEWNS) !== 0) fail('unshare(CLONE_NEWNS)');
    const tid = gettid() as number;
    const report: Report = { pid: process.pid, tid, nsInode: 0 };
    const tmpfsAt = (workerData as { tmpfsAt?: string }).tmpfsAt;
    if (tmpfsAt) {
      if (mount(null, '/', null, MS_REC | MS_PRIVATE, null) !== 0) fail('mount --make-rprivate /');
      if (mount('nsview-thread', tmpfsAt, 'tmpfs', 0, 'size=1m') !== 0) fail(`mount tmpfs on ${tmpfsAt}`);
      // Synchronous fs calls run on this thread, so they see this thread's namespace.
      report.markerFile = `${tmpfsAt}/nsview-thread-marker`;
      writeFileSync(report.markerFile, `thread ${tid}\n`);
    }
    const link = readlinkSync(`/proc/thread-self/ns/mnt`);
    report.nsInode = Number(/\[(\d+)\]/.exec(link)![1]);
    parentPort!.postMessage(report);
    setInterval(() => {}, 1 << 30); // keep the thread (and its namespace) alive
  } catch (e) {
    parentPort!.postMessage({ error: String(e) });
  }
}

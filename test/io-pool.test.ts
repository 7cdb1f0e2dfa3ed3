/**
 * IoPool: giving up on a request through its AbortSignal, against a real hung filesystem.
 *
 * The hung filesystem is test/fixtures/fuse-tiny-server.js, started with `unshare -m` (no
 * pivot_root: the namespace shares the host's files) and mounted only inside that namespace; the
 * pool reaches it through the server's own /proc/PID/root, as the daemon would. SIGSTOP makes
 * every request that reaches the mount block in the kernel (LOOKUP is never cached there: entry
 * timeout 0). The pool runs ONE worker with a 60 s op timeout, so anything that answers before
 * that was answered by the abort, not the timeout.
 *
 * The stopped server is ALWAYS continued and killed in teardown (first in line), and it runs under
 * `setpriv --pdeathsig KILL`, so it dies with the test worker in any case.
 */
import test from 'ava';
import fs from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoPool } from '../src/io/pool.js';
import type { RootRef } from '../src/access/root-ref.js';
import { StatxView } from '../src/sys/stat.js';
import { errnoOf } from '../src/sys/errors.js';
import { CleanupScope, makeTempDir, nsInodeOf, spawnLongLived, waitFor, waitForLine } from './helpers/index.js';

const TINY_SERVER = fileURLToPath(new URL('./fixtures/fuse-tiny-server.js', import.meta.url));
/** openat2 on x86_64 and aarch64 (one number everywhere since the asm-generic unification). */
const SYS_OPENAT2 = 437;
const E = constants.errno;

const scope = new CleanupScope();
const events: string[] = [];
let pool: IoPool;
let root: RootRef;
let server: { pid: number; ns: number };
/** The tiny server's file, as an in-root path (latin1) of the server's namespace. */
let hello: string;
let helloId: { dev: number; ino: bigint };
let hostFile: string;

function cont(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    /* gone */
  }
}

async function stopServer(): Promise<void> {
  process.kill(server.pid, 'SIGSTOP');
  await waitFor(
    'the server to be stopped',
    async () => / T /.test(await readFile(`/proc/${server.pid}/stat`, 'utf8')),
    { timeoutMs: 5_000 },
  );
}

/** The pool's one live worker, once it is blocked in openat2 (a lookup on the hung mount). */
async function workerBlockedInLookup(): Promise<number> {
  return waitFor(
    'the io worker to block in openat2 on the hung mount',
    async () => {
      for (const tid of pool.ownTids) {
        const sc = await readFile(`/proc/self/task/${tid}/syscall`, 'utf8').catch(() => '');
        if (sc.startsWith(`${SYS_OPENAT2} `)) return tid;
      }
      return undefined;
    },
    { timeoutMs: 10_000 },
  );
}

/** Our fds that point at a file under the hung mount. */
function fdsOnMount(mountDir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      // readlink of a magic link: never reaches the filesystem it names.
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(mountDir + '/')) out.push(fd);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

let mountDir: string;

test.before(async () => {
  const dir = makeTempDir(scope, 'io-pool');
  mountDir = path.join(dir, 'mnt');
  await mkdir(mountDir);
  hostFile = path.join(dir, 'host-file');
  await writeFile(hostFile, 'host\n');
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', process.execPath, TINY_SERVER, mountDir]);
  // Registered last, so it runs first: continue the server (it may be stopped), then kill it.
  scope.teardown(async () => {
    cont(s.child.pid!);
    await s.kill();
  });
  await waitForLine(s.child, s.stdout, /^READY /, 15_000, () => s.stderr.all());
  server = { pid: s.child.pid!, ns: await nsInodeOf(s.child.pid!) };

  pool = new IoPool({ size: 1, opTimeoutMs: 60_000, onEvent: (m) => events.push(m) });
  scope.teardown(() => pool.close());
  await pool.ready();
  const opened = await pool.run(
    { op: 'openTaskRoot', pid: server.pid, tid: server.pid, nsInode: server.ns, self: false },
    server.ns,
  );
  root = { rootFd: opened.rootFd, guardFd: opened.guardFd, nsLink: opened.nsLink, rootId: opened.rootId };
  scope.teardown(() => {
    fs.closeSync(root.rootFd);
    fs.closeSync(root.guardFd);
  });
  hello = Buffer.from(path.join(mountDir, 'hello').slice(1)).toString('latin1');
  const r = await pool.run({ op: 'stat', root, path: hello }, server.ns);
  const st = new StatxView(Buffer.from(r.stat.buffer, r.stat.byteOffset, r.stat.byteLength));
  helloId = { dev: st.dev, ino: st.ino };
});

test.after.always(() => scope.cleanup());

test('an already aborted signal: EINTR, nothing queued', async (t) => {
  const ac = new AbortController();
  ac.abort();
  const err = await t.throwsAsync(pool.run({ op: 'stat', root, path: hello }, server.ns, { signal: ac.signal }));
  t.is(errnoOf(err), E.EINTR);
});

test('aborted while queued: EINTR, and the work never runs; aborted while running: EINTR at once, worker written off after its grace', async (t) => {
  await stopServer();
  const running = new AbortController();
  const a = pool.run({ op: 'stat', root, path: hello }, server.ns, { signal: running.signal });
  a.catch(() => undefined);
  await workerBlockedInLookup();

  // Queued behind the hung stat (same namespace, one worker): a close of an fd of ours. Had it
  // run, the fd would be closed.
  const fd = fs.openSync(hostFile, 'r');
  t.teardown(() => fs.closeSync(fd));
  const queued = new AbortController();
  const b = pool.run({ op: 'closeAll', fds: [fd] }, server.ns, { signal: queued.signal });
  queued.abort();
  t.is(errnoOf(await t.throwsAsync(b)), E.EINTR, 'the queued request answers EINTR');
  t.is(pool.stuckWorkers, 0, 'a queued abort writes no worker off');

  running.abort();
  t.is(errnoOf(await t.throwsAsync(a)), E.EINTR, 'the running request answers EINTR, not ETIMEDOUT');
  // Answered at once; the worker, still stuck after its short grace, is written off.
  await waitFor('its worker to be written off', () => pool.stuckWorkers === 1, { timeoutMs: 5_000 });
  t.is(pool.stuckWorkers, 1, 'its worker is written off');
  t.true(
    events.some((e) =>
      e.startsWith(`EINTR: stat /${hello} in namespace ${server.ns} (interrupted, still running after`),
    ),
    `one log line names the interrupted op: ${events.join('; ')}`,
  );

  // A fresh worker serves the namespace (a stat of its root, not on the hung mount).
  const r = await pool.run({ op: 'stat', root, path: '' }, server.ns);
  t.is(r.stat.byteLength, 256);
  t.notThrows(() => fs.fstatSync(fd), 'the aborted close never ran: the fd is still open');
});

test('a late answer of an aborted request is discarded and the fds it brings are closed', async (t) => {
  // The server is still stopped (previous test); continue it at the end.
  t.teardown(() => cont(server.pid));
  const ac = new AbortController();
  const c = pool.run(
    { op: 'openFile', root, path: hello, dev: helloId.dev, ino: helloId.ino, nonblock: false },
    server.ns,
    { signal: ac.signal },
  );
  await workerBlockedInLookup();
  ac.abort();
  t.is(errnoOf(await t.throwsAsync(c)), E.EINTR);
  await waitFor('the second aborted worker to be written off', () => pool.stuckWorkers === 2, { timeoutMs: 5_000 });
  t.is(pool.stuckWorkers, 2, 'both aborted workers are still stuck in the kernel');

  cont(server.pid);
  // The stuck workers answer (the openFile with an fd on the tiny server's file); the pool lets
  // them go and closes that fd, which nobody would ever close otherwise.
  await waitFor('the written-off workers to answer and be let go', () => pool.stuckWorkers === 0, {
    timeoutMs: 20_000,
  });
  await waitFor('the late fd to be closed', () => fdsOnMount(mountDir).length === 0, { timeoutMs: 10_000 });
  t.deepEqual(fdsOnMount(mountDir), []);
  t.false(
    events.some((e) => e.includes('abandoned request')),
    `no failure closing the late fds: ${events.join('; ')}`,
  );
});

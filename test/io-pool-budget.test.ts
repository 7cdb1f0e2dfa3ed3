/**
 * IoPool under hostile load, against a real hung filesystem (the tiny FUSE server of
 * test/fixtures, SIGSTOPped, mounted only in its own namespace and reached through its
 * /proc/PID/root as the daemon would):
 * - one namespace never gets the last free worker while it already has one running, so another
 *   namespace's request starts at once even while the first one's requests pile up;
 * - the stuck workers of all namespaces together stay within MAX_STUCK_TOTAL, however many
 *   namespaces strand one (namespaces are free: the test uses many keys on the one hung mount,
 *   which is what the pool sees of many frozen namespaces); past it, namespaces that stranded
 *   workers are refused at once, and the thread count stays bounded;
 * - after SIGCONT the stuck workers come back and the pool is whole again.
 * The op timeout is 60 s: what answers sooner was decided by the mechanism under test.
 *
 * Run apart from the default suite (`npm run test:budget`): once in a full run its ava worker
 * stayed alive after the file's last hook (idle, every test passed) and held the suite; not yet
 * explained. The pool's deadlines no longer keep a process alive, which may have been it.
 */
import test from 'ava';
import fs from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoPool, MAX_STUCK_TOTAL } from '../src/io/pool.js';
import type { RootRef } from '../src/access/root-ref.js';
import { errnoOf } from '../src/sys/errors.js';
import { CleanupScope, makeTempDir, nsInodeOf, spawnLongLived, waitFor, waitForLine } from './helpers/index.js';

const TINY_SERVER = fileURLToPath(new URL('./fixtures/fuse-tiny-server.js', import.meta.url));
const SYS_OPENAT2 = 437;
const E = constants.errno;

const scope = new CleanupScope();
const events: string[] = [];
let root: RootRef;
let server: { pid: number; ns: number };
let hello: string;

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

/** Threads of `pool` blocked in openat2 (a lookup on the hung mount). */
async function blockedIn(pool: IoPool): Promise<number> {
  let n = 0;
  for (const tid of pool.ownTids) {
    const sc = await readFile(`/proc/self/task/${tid}/syscall`, 'utf8').catch(() => '');
    if (sc.startsWith(`${SYS_OPENAT2} `)) n++;
  }
  return n;
}

async function threads(): Promise<number> {
  return (await readdir('/proc/self/task')).length;
}

test.before(async () => {
  const dir = makeTempDir(scope, 'io-pool-budget');
  const mountDir = path.join(dir, 'mnt');
  await mkdir(mountDir);
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', process.execPath, TINY_SERVER, mountDir]);
  scope.teardown(async () => {
    cont(s.child.pid!);
    await s.kill();
  });
  await waitForLine(s.child, s.stdout, /^READY /, 15_000, () => s.stderr.all());
  server = { pid: s.child.pid!, ns: await nsInodeOf(s.child.pid!) };
  const pool = new IoPool({ size: 1, opTimeoutMs: 60_000 });
  await pool.ready();
  const opened = await pool.run(
    { op: 'openTaskRoot', pid: server.pid, tid: server.pid, nsInode: server.ns, self: false },
    server.ns,
  );
  await pool.close();
  root = { rootFd: opened.rootFd, guardFd: opened.guardFd, nsLink: opened.nsLink, rootId: opened.rootId };
  scope.teardown(() => {
    fs.closeSync(root.rootFd);
    fs.closeSync(root.guardFd);
  });
  hello = Buffer.from(path.join(mountDir, 'hello').slice(1)).toString('latin1');
});

test.after.always(() => scope.cleanup());

test('a namespace with requests piling up never gets the last free worker', async (t) => {
  const pool = new IoPool({ size: 2, opTimeoutMs: 60_000, onEvent: (m) => events.push(m) });
  t.teardown(() => pool.close());
  await pool.ready();
  await stopServer();
  t.teardown(() => cont(server.pid));
  const heavy = 1_000_001;
  const acs = [0, 1, 2].map(() => new AbortController());
  const piled = acs.map((ac, i) =>
    pool.run({ op: 'stat', root, path: `${hello}-${i}` }, heavy, { signal: ac.signal }).catch(errnoOf),
  );
  await waitFor('one worker blocked on the hung mount', async () => (await blockedIn(pool)) === 1, {
    timeoutMs: 10_000,
  });
  // Another namespace's request (the root itself, not on the hung mount) runs now, on the
  // worker kept free for it, while the heavy namespace's other requests still wait.
  const other = await pool.run({ op: 'stat', root, path: '' }, 1_000_002);
  t.is(other.stat.byteLength, 256);
  t.is(await blockedIn(pool), 1, 'the heavy namespace still holds only one worker');
  for (const ac of acs) ac.abort();
  t.deepEqual(await Promise.all(piled), [E.EINTR, E.EINTR, E.EINTR]);
  cont(server.pid);
  await waitFor('the stuck worker to come back', () => pool.stuckWorkers === 0, { timeoutMs: 20_000 });
});

test(`stuck workers of all namespaces together stay within ${MAX_STUCK_TOTAL}; over it, stranding namespaces are refused at once`, async (t) => {
  const pool = new IoPool({ size: 2, opTimeoutMs: 60_000, onEvent: (m) => events.push(m) });
  t.teardown(() => pool.close());
  await pool.ready();
  const threadsBefore = await threads();
  await stopServer();
  t.teardown(() => cont(server.pid));
  const namespaces = MAX_STUCK_TOTAL + 6;
  const answers: Array<Promise<number>> = [];
  for (let k = 1; k <= namespaces; k++) {
    const ac = new AbortController();
    answers.push(
      pool
        .run({ op: 'stat', root, path: `${hello}-${k}` }, 2_000_000 + k, { signal: ac.signal })
        .then(() => 0, errnoOf),
    );
    // Running (blocked in the kernel) or refused: then interrupt it, which strands its worker.
    await waitFor(
      `request ${k} to block or be refused`,
      async () => (await blockedIn(pool)) > 0 || pool.workers === 0 || undefined,
      { timeoutMs: 10_000 },
    ).catch(() => undefined);
    ac.abort();
    await waitFor(`request ${k} to be written off`, async () => (await blockedIn(pool)) === 0, {
      timeoutMs: 10_000,
    }).catch(() => undefined);
  }
  const errnos = await Promise.all(answers);
  const threadsDuring = await threads();
  t.log(
    `after ${namespaces} namespaces hung: stuck ${pool.stuckWorkers}, live workers ${pool.workers}, threads ${threadsBefore} -> ${threadsDuring}`,
  );
  t.true(
    errnos.every((e) => e === E.EINTR || e === E.EAGAIN),
    `answers: ${errnos.join(',')}`,
  );
  // Past the budget no worker is replaced: the live ones (2 here) may still strand, no more.
  t.true(
    pool.stuckWorkers >= MAX_STUCK_TOTAL && pool.stuckWorkers <= MAX_STUCK_TOTAL + 2,
    `stuck workers ${pool.stuckWorkers}`,
  );
  t.true(threadsDuring - threadsBefore <= MAX_STUCK_TOTAL, `threads grew by ${threadsDuring - threadsBefore}`);
  // A namespace that stranded a worker is refused at once now (not after the 60 s op timeout).
  const t0 = performance.now();
  t.is(await pool.run({ op: 'stat', root, path: '' }, 2_000_001).then(() => 0, errnoOf), E.ETIMEDOUT);
  t.true(performance.now() - t0 < 30_000, 'refused without waiting for the op timeout');
  t.true(events.some((e) => e.includes('written off')));
  // The hung filesystem answers again: the stuck workers come back and the pool is whole.
  cont(server.pid);
  await waitFor('the stuck workers to come back', () => pool.stuckWorkers === 0, { timeoutMs: 30_000 });
  await waitFor('the pool to be whole again', () => pool.workers === 2 || undefined, { timeoutMs: 10_000 });
  const r = await pool.run({ op: 'stat', root, path: '' }, 2_000_001);
  t.is(r.stat.byteLength, 256);
});

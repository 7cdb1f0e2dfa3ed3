/**
 * Issue 4, hung filesystems: a FUSE server inside one namespace stops answering (SIGSTOP).
 *
 * The hung filesystem is test/fixtures/fuse-tiny-server.js, started with `unshare -m` (no
 * pivot_root: the namespace shares the host's files, so node and the repository are there) and
 * mounted only inside that namespace. nsview runs with --op-timeout 2. While the server is
 * stopped:
 * - `ls <mp>` and lookups, listings and reads in OTHER namespaces (a container and a
 *   bind-mounted namespace, reached through a sandbox started during the hang) answer in < 2 s;
 * - every operation that reaches the hung mount fails with ETIMEDOUT, and keeps failing in
 *   bounded time after many of them (no stall of the workers): within 2 x --op-timeout + 1.5 s
 *   per system call, since the kernel follows a failed revalidation of a cached name with a
 *   fresh lookup, two requests that each reach the hung mount;
 * - the daemon logs one ETIMEDOUT line naming the path.
 * After SIGCONT everything recovers (reads succeed, written-off workers are gone).
 *
 * The stopped server is ALWAYS continued and killed in teardown (first in line), and it runs under
 * `setpriv --pdeathsig KILL`, so it dies with the test worker in any case.
 */
import test from 'ava';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CleanupScope,
  makeBindMountedNamespace,
  makeTempDir,
  nsInodeOf,
  ROOTFS_APPLETS,
  spawnLongLived,
  startContainer,
  startNsview,
  waitFor,
  waitForLine,
  type Container,
  type BindMountedNamespace,
  type Nsview,
} from './helpers/index.js';
import {
  daemonStats,
  linesMatching,
  loadAverage,
  SERVICE_ENV,
  timed,
  type TimedResult,
} from './fixtures/lifecycle/lib.js';

const OP_TIMEOUT_MS = 2000;
const PROMPT_MS = 2000;
const HUNG_BOUND_MS = 2 * OP_TIMEOUT_MS + 1500;
const TINY_SERVER = fileURLToPath(new URL('./fixtures/fuse-tiny-server.js', import.meta.url));

const scope = new CleanupScope();
let view: Nsview;
let mp: string;
let ctr: Container;
let pin: BindMountedNamespace;
let server: { pid: number; ns: number; dir: string };
/** stuck-workers after the sequential probes of the hung mount (for the bounded-workers test). */
let stuckAfterProbes: { probes: number; stuck: number; rssMiB: number; rssBeforeMiB: number } | undefined;

function cont(pid: number): boolean {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    /* gone */
  }
  return true;
}

test.before(async () => {
  view = await startNsview(scope, {
    extraArgs: ['--op-timeout', String(OP_TIMEOUT_MS / 1000), '--idle-release', '1'],
    env: SERVICE_ENV,
  });
  mp = view.mountpoint;
  ctr = await startContainer(scope);
  pin = await makeBindMountedNamespace(scope);

  const dir = path.join(makeTempDir(scope, 'hang'), 'mnt');
  await mkdir(dir);
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', process.execPath, TINY_SERVER, dir]);
  // Registered last, so it runs first: continue the server (it may be stopped), then kill it.
  scope.teardown(async () => {
    cont(s.child.pid!);
    await s.kill();
  });
  await waitForLine(s.child, s.stdout, /^READY /, 15_000, () => s.stderr.all());
  server = { pid: s.child.pid!, ns: await nsInodeOf(s.child.pid!), dir };
  await waitFor('the hung namespace in the view', async () => (await timed('stat', [hung('hello')])).code === 0, {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
});

test.after.always(() => scope.cleanup());

/** A path under the tiny server's mount, through the view. */
function hung(rel = ''): string {
  return path.join(mp, String(server.ns), server.dir, rel);
}

let fresh = 0;
/** One round of operations on OTHER namespaces and on the top directory of `m`, each timed. */
async function otherRound(m = mp): Promise<Record<string, TimedResult>> {
  const i = fresh++;
  const applet = ROOTFS_APPLETS[i % ROOTFS_APPLETS.length]!;
  const c = path.join(m, String(ctr.nsInode));
  const b = path.join(m, String(pin.nsInode));
  const ops: Array<[string, string, string[]]> = [
    ['ls <mp>', 'ls', [m]],
    ['container: stat of a new name', 'stat', [path.join(c, 'etc', `nope-${i}`)]],
    ['container: readlink of a new name', 'readlink', [path.join(c, 'bin', applet)]],
    ['container: cat /etc/hostname', 'cat', [path.join(c, 'etc/hostname')]],
    ['container: ls /etc', 'ls', [path.join(c, 'etc')]],
    ['bindmount: stat of a new name', 'stat', [path.join(b, 'etc', `nope-${i}`)]],
    ['bindmount: cat /etc/hostname', 'cat', [path.join(b, 'etc/hostname')]],
  ];
  const out: Record<string, TimedResult> = {};
  await Promise.all(ops.map(async ([k, f, a]) => (out[k] = await timed(f, a, 20_000))));
  return out;
}

/**
 * Asserts a round answered promptly and correctly. With `retry`, a round slower than the bound
 * at load > 4 is redone once (not for rounds that must overlap a given moment of the hang).
 */
async function checkOthers(
  t: import('ava').ExecutionContext,
  label: string,
  round: Promise<Record<string, TimedResult>>,
  retry: boolean,
): Promise<number> {
  let r = await round;
  let worst = Math.max(...Object.values(r).map((x) => x.ms));
  if (retry && worst > PROMPT_MS && loadAverage() > 4) {
    t.log(`${label}: slowest ${Math.round(worst)} ms at load ${loadAverage().toFixed(1)}; again`);
    r = await otherRound();
    worst = Math.max(...Object.values(r).map((x) => x.ms));
  }
  for (const [k, x] of Object.entries(r)) {
    const expectedErrno = k.includes('stat of a new name') ? 'ENOENT' : undefined;
    t.is(x.errno, expectedErrno, `${label}: ${k}: ${x.stderr}`);
    t.true(x.ms < PROMPT_MS, `${label}: ${k} took ${Math.round(x.ms)} ms`);
  }
  t.is(r['container: cat /etc/hostname']!.stdout, `${ctr.hostname}\n`);
  return worst;
}

async function waitStopped(pid: number): Promise<void> {
  await waitFor('the server to be stopped', async () => / T /.test(await readFile(`/proc/${pid}/stat`, 'utf8')), {
    timeoutMs: 5_000,
  });
}

test('a hung FUSE server in one namespace: ETIMEDOUT there, prompt answers everywhere else, recovery after SIGCONT', async (t) => {
  t.is((await timed('cat', [hung('hello')])).stdout, 'tiny\n', 'served before the hang');
  const worstBefore = await checkOthers(t, 'before', otherRound(), true);
  const logStart = view.stderr().length;
  const statsBefore = await daemonStats(view);

  process.kill(server.pid, 'SIGSTOP');
  try {
    await waitStopped(server.pid);
    // 1. One operation reaches the hung mount; the others meanwhile.
    const firstOp = timed('stat', [hung('new-0')]);
    const worstDuring = [await checkOthers(t, 'during the first timeout', otherRound(), false)];
    const first = [await firstOp];
    // 2. The namespace is known to hang now: a burst on the hung mount, the others meanwhile.
    const burst = Promise.all([
      timed('stat', [hung('new-1')]),
      timed('ls', [hung()]),
      timed('cat', [hung('new-2')]),
      timed('stat', [hung('new-3')]),
    ]);
    worstDuring.push(await checkOthers(t, 'during a burst of 4 on the hung mount', otherRound(), false));
    first.push(...(await burst));
    // 3. One at a time: each still fails in bounded time; the rest of the view stays prompt.
    const sequential: TimedResult[] = [];
    for (let i = 0; i < 3; i++) {
      sequential.push(await timed('stat', [hung(`seq-${i}`)]));
      worstDuring.push(await checkOthers(t, `after sequential timeout ${i + 1}`, otherRound(), true));
    }
    const all = [...first, ...sequential];
    const stats = await daemonStats(view);
    stuckAfterProbes = {
      probes: all.length,
      stuck: stats.stuckWorkers,
      rssMiB: stats.rssMiB,
      rssBeforeMiB: statsBefore.rssMiB,
    };
    t.log(
      `hung mount: ${all.map((r) => `${r.errno ?? 'ok'} ${Math.round(r.ms)} ms`).join(', ')}; ` +
        `other namespaces: slowest ${Math.round(worstBefore)} ms before, ${worstDuring.map((x) => Math.round(x)).join('/')} ms during; ` +
        `stuck-workers ${stats.stuckWorkers}, rss ${statsBefore.rssMiB} -> ${stats.rssMiB} MiB`,
    );
    for (const r of all) {
      t.is(r.errno, 'ETIMEDOUT', `an operation on the hung mount fails with ETIMEDOUT: ${r.stderr}`);
      t.true(r.ms >= OP_TIMEOUT_MS - 200, `not before --op-timeout (${Math.round(r.ms)} ms)`);
      t.true(r.ms <= HUNG_BOUND_MS, `within ${HUNG_BOUND_MS} ms (${Math.round(r.ms)} ms)`);
    }
    t.true(stats.stuckWorkers >= 1, 'the stuck workers are counted');
    const timeouts = linesMatching(view.stderr().slice(logStart), /ETIMEDOUT/);
    t.true(timeouts.length >= 1, 'ETIMEDOUT is logged');
    // Path operations name the path; closing a cached fd of the hung filesystem (FLUSH waits
    // for the server too) names only the operation.
    const named = new RegExp(
      `warning: ETIMEDOUT: \\w+ ${server.dir}(/\\S*)? in namespace ${server.ns} \\(no answer in ${OP_TIMEOUT_MS} ms\\); worker \\d+ written off$`,
    );
    const closeLine = new RegExp(
      `warning: ETIMEDOUT: close in namespace ${server.ns} \\(no answer in ${OP_TIMEOUT_MS} ms\\)`,
    );
    t.true(
      timeouts.some((l) => named.test(l)),
      'an ETIMEDOUT line names the path',
    );
    t.deepEqual(
      timeouts.filter((l) => !named.test(l) && !closeLine.test(l)),
      [],
      'every ETIMEDOUT line names the namespace and the path (or is a close)',
    );
    t.log(`ETIMEDOUT lines: ${timeouts.length}, e.g. ${timeouts.find((l) => named.test(l))}`);
  } finally {
    process.kill(server.pid, 'SIGCONT');
  }

  // Recovery: the queued requests are answered, reads work again, the stuck workers end.
  const t0 = performance.now();
  await waitFor(
    'the hung mount to answer again',
    async () => (await timed('cat', [hung('hello')], 10_000)).stdout === 'tiny\n',
    {
      timeoutMs: 15_000,
      intervalMs: 100,
    },
  );
  const recovered = performance.now() - t0;
  const ls = await timed('ls', [hung()]);
  t.is(ls.stdout, 'hello\n', ls.stderr);
  await waitFor('no stuck workers', async () => (await daemonStats(view)).stuckWorkers === 0, {
    timeoutMs: 15_000,
    intervalMs: 250,
  });
  await checkOthers(t, 'after SIGCONT', otherRound(), true);
  t.log(`recovered ${Math.round(recovered)} ms after SIGCONT`);
  t.true(view.proc.exitCode === null, 'daemon alive');
});

// Until 2f8a4b9 every operation on a hung mount wrote off one more io worker (a thread with its
// own isolate, ~10 MiB): 8 timeouts, 8 stuck workers, RSS 93 -> 170 MiB. Measured by the test
// above, checked here.
test('operations on a hung mount do not pile up stuck workers (at most 2 after 8 timeouts)', (t) => {
  if (!stuckAfterProbes) {
    t.fail('the hung-mount test did not get to measure');
    return;
  }
  t.log(
    `after ${stuckAfterProbes.probes} timeouts: stuck-workers ${stuckAfterProbes.stuck}, rss ${stuckAfterProbes.rssBeforeMiB} -> ${stuckAfterProbes.rssMiB} MiB`,
  );
  t.true(stuckAfterProbes.stuck <= 2, `stuck-workers ${stuckAfterProbes.stuck}`);
});

// Until 2f8a4b9 a burst of concurrent operations on a freshly hung mount took every io worker and
// every other namespace waited for --op-timeout (measured ~4.9 s with --op-timeout 5): nsview
// does not know a namespace hangs before its first request times out.
test('other namespaces stay prompt when a freshly hung mount gets more concurrent requests than there are workers', async (t) => {
  const v = await startNsview(t, { extraArgs: ['--op-timeout', '5'], env: SERVICE_ENV });
  const hungHere = (rel: string) => path.join(v.mountpoint, String(server.ns), server.dir, rel);
  await waitFor(
    'the hung mount through the second daemon',
    async () => (await timed('cat', [hungHere('hello')])).stdout === 'tiny\n',
    {
      timeoutMs: 10_000,
      intervalMs: 100,
    },
  );
  await otherRound(v.mountpoint); // namespaces known, sandbox started
  const probes: number[] = [];
  process.kill(server.pid, 'SIGSTOP');
  try {
    await waitStopped(server.pid);
    let done = false;
    const burst = Promise.all([0, 1, 2, 3].map((i) => timed('stat', [hungHere(`burst-${i}`)]))).finally(
      () => (done = true),
    );
    const c = path.join(v.mountpoint, String(ctr.nsInode), 'etc');
    for (let i = 0; !done && i < 100; i++) {
      const ms = (await timed('stat', [path.join(c, `probe-${i}`)], 20_000)).ms;
      if (!done) probes.push(ms);
    }
    const r = await burst;
    t.log(
      `burst: ${r.map((x) => `${x.errno} ${Math.round(x.ms)} ms`).join(', ')}; container lookups meanwhile: ${probes.map(Math.round).join(', ')} ms`,
    );
  } finally {
    process.kill(server.pid, 'SIGCONT');
  }
  await waitFor('recovered', async () => (await timed('cat', [hungHere('hello')], 10_000)).stdout === 'tiny\n', {
    timeoutMs: 15_000,
    intervalMs: 100,
  });
  // Ordering: the other namespace answered, more than once, while the burst into the hung mount
  // was still pending; and none of its lookups waited for the op timeout (5 s) as they did
  // when the burst held every worker.
  t.true(probes.length >= 2, `${probes.length} lookups in another namespace answered while the burst was pending`);
  t.true(
    Math.max(...probes) < 5_000,
    `slowest lookup in another namespace ${Math.round(Math.max(...probes))} ms (the op timeout is 5000)`,
  );
});

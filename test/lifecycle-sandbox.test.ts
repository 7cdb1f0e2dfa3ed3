/**
 * Issue 4, sandboxes: a process-less namespace is reached through a sandbox task, a *thread* of
 * the daemon that setns()ed into it. Counted here as the daemon's tasks whose ns/mnt differs from
 * the daemon's own (cross-checked with the SIGUSR1 stats line and the log).
 *
 * - started on first use (one line `sandbox started for namespace N`), one thread in N;
 * - held while the namespace is in use, released `--idle-release` (1 s here) after the last use,
 *   within idle + 1 s (`sandbox released for namespace N (idle)`);
 * - nsview never keeps a namespace alive: after its pin is removed, no task of the daemon (and no
 *   task on the host) is in it within idle + 1 s;
 * - none is left after `nsview unmount`;
 * - a pin can always be removed with umount, also while nsview is starting a sandbox through it.
 */
import test from 'ava';
import { readdirSync, readlinkSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { mountNamespaceIdentityAt } from '../src/sys/namespace-id.js';
import {
  CleanupScope,
  makeBindMountedNamespace,
  runNsview,
  sleep,
  startNsview,
  waitExit,
  waitFor,
  type Nsview,
} from './helpers/index.js';
import {
  daemonStats,
  fdRefersTo,
  linesMatching,
  loadAverage,
  msUntil,
  sandboxThreads,
  taskNamespaces,
  processesInNamespace,
  timed,
  SERVICE_ENV,
  Umounter,
} from './fixtures/lifecycle/lib.js';

const IDLE_MS = 1000;
/** The daemon's environment as the systemd unit gives it (see SERVICE_ENV). */
const POOL = SERVICE_ENV;
const BOUND_MS = IDLE_MS + 1000;

const scope = new CleanupScope();
let view: Nsview;
let mp: string;
let hostHostname: string;

test.before(async () => {
  hostHostname = await readFile('/etc/hostname', 'utf8');
  view = await startNsview(scope, {
    extraArgs: ['--idle-release', String(IDLE_MS / 1000), '--op-timeout', '2'],
    env: POOL,
  });
  mp = view.mountpoint;
});

test.after.always(() => scope.cleanup());

/** Threads of the daemon inside `ns`. */
async function threadsIn(ns: number): Promise<number> {
  return (await sandboxThreads(view.pid)).filter((n) => n === ns).length;
}

/**
 * A bind-mounted namespace, once the view knows it (a lookup of an unknown name reruns discovery
 * at most every 100 ms, so one made just after a pass is not there yet).
 */
async function newPin(t: import('ava').ExecutionContext, d: Nsview = view) {
  const pin = await makeBindMountedNamespace(t);
  let last = '';
  await waitFor(
    `namespace ${pin.nsInode} in the view`,
    async () => {
      try {
        await stat(path.join(d.mountpoint, String(pin.nsInode)));
        return true;
      } catch (err) {
        last = (err as NodeJS.ErrnoException).code ?? String(err);
        return false;
      }
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  ).catch((err: unknown) => {
    const log = d
      .stderr()
      .split('\n')
      .filter((l) => l.includes(String(pin.nsInode)) || / error: /.test(l));
    throw new Error(`${(err as Error).message} (last stat: ${last}; daemon log: ${log.slice(-8).join(' | ')})`);
  });
  return pin;
}

/** The file of `files` an fd of `pid` is open on, if any (synchronous; procfs only). */
function fdOpenOn(pid: number, files: Set<string>): string | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (files.has(link)) return link;
    } catch {
      /* closed meanwhile */
    }
  }
  return undefined;
}

let probe = 0;
/** An operation that surely reaches the daemon and uses namespace `ns`: a lookup of a new name. */
async function use(ns: number): Promise<void> {
  const r = await timed('stat', [path.join(mp, String(ns), 'etc', `nsview-probe-${process.pid}-${++probe}`)]);
  if (r.errno !== 'ENOENT') throw new Error(`probe of namespace ${ns}: ${r.stderr}`);
}

/**
 * Time from the end of the last use (`lastUse()` runs it) until the daemon has no thread in `ns`;
 * redone once if over BOUND_MS at load > 4.
 */
async function releaseTime(
  t: import('ava').ExecutionContext,
  label: string,
  ns: number,
  lastUse: () => Promise<void>,
): Promise<number> {
  const once = async () => {
    await lastUse();
    const t0 = performance.now();
    if ((await threadsIn(ns)) !== 1) throw new Error(`no sandbox in ${ns} after ${label}`);
    return msUntil(`sandbox of ${ns} released`, t0, async () => (await threadsIn(ns)) === 0, { timeoutMs: 15_000 });
  };
  let ms = await once();
  if (ms > BOUND_MS && loadAverage() > 4) {
    t.log(
      `${label}: released ${Math.round(ms)} ms after the last use at load ${loadAverage().toFixed(1)}; measuring again`,
    );
    ms = await once();
  }
  t.log(
    `${label}: sandbox released ${Math.round(ms)} ms after the last use (idle ${IDLE_MS} ms, bound ${BOUND_MS} ms, load ${loadAverage().toFixed(1)})`,
  );
  return ms;
}

test('a sandbox starts on first use: one thread of the daemon, in the namespace, counted in the stats and logged once', async (t) => {
  const pin = await newPin(t);
  const ns = pin.nsInode;
  // Whatever that lookup started is released after the idle time.
  await waitFor('no sandbox yet', async () => (await threadsIn(ns)) === 0, { timeoutMs: 10_000, intervalMs: 50 });
  const logStart = view.stderr().length;

  t.is(await readFile(path.join(mp, String(ns), 'etc/hostname'), 'utf8'), hostHostname);
  const threads = [...(await taskNamespaces(view.pid))].filter(([, n]) => n === ns).map(([tid]) => tid);
  t.is(threads.length, 1, 'exactly one thread of the daemon is in the namespace');
  const startedRe = new RegExp(`sandbox started for namespace ${ns} \\(thread (\\d+), via ${pin.file}\\)`);
  const started = await waitFor('the "sandbox started" line', () => {
    const l = linesMatching(view.stderr().slice(logStart), startedRe);
    return l.length > 0 && l;
  });
  t.is(started.length, 1, 'one "sandbox started" line');
  t.true(
    started[0]?.includes(`thread ${threads[0]},`),
    `the logged thread is the one in the namespace (${started[0]})`,
  );
  const s = await daemonStats(view);
  t.is(
    s.sandboxes,
    (await sandboxThreads(view.pid)).length,
    'stats "sandboxes" = threads of the daemon in other namespaces',
  );
  t.true(s.sandboxes >= 1);
});

test('a sandbox is held while its namespace is in use (3 s of use every 250 ms: one sandbox, never released)', async (t) => {
  const pin = await newPin(t);
  const ns = pin.nsInode;
  await use(ns);
  t.is(await threadsIn(ns), 1, 'in use: a sandbox');
  const logStart = view.stderr().length;
  const until = performance.now() + 3 * IDLE_MS;
  let min = Infinity;
  while (performance.now() < until) {
    await sleep(250);
    await use(ns);
    min = Math.min(min, await threadsIn(ns));
  }
  const log = view.stderr().slice(logStart);
  t.is(min, 1, 'the sandbox thread was there at every check');
  t.deepEqual(
    linesMatching(log, new RegExp(`sandbox started for namespace ${ns} `)),
    [],
    'the same sandbox throughout (none started again)',
  );
  t.deepEqual(
    linesMatching(log, new RegExp(`sandbox released for namespace ${ns} `)),
    [],
    'never released while in use',
  );
});

test('a sandbox is released after --idle-release once unused (lookups, listings): within idle + 1 s, not long before idle', async (t) => {
  const pin = await newPin(t);
  const ns = pin.nsInode;
  const logStart = view.stderr().length;
  const afterLookup = await releaseTime(t, 'after a lookup', ns, () => use(ns));
  const afterListing = await releaseTime(t, 'after a listing', ns, async () => {
    const r = await timed('ls', [path.join(mp, String(ns), 'usr')]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  for (const ms of [afterLookup, afterListing]) {
    t.true(ms <= BOUND_MS, `released within idle + 1 s (${Math.round(ms)} ms)`);
    // Measured from when this process saw the operation end, which may be a while after the
    // daemon's last use under load; half the idle time is a safe floor.
    t.true(ms >= IDLE_MS / 2, `not released before --idle-release (${Math.round(ms)} ms)`);
  }
  await waitFor(
    'a "sandbox released ... (idle)" line each time',
    () =>
      linesMatching(view.stderr().slice(logStart), new RegExp(`sandbox released for namespace ${ns} \\(idle\\)$`))
        .length >= 2,
  );
  t.pass();
});

// (Before ddcf3f7 a file read kept the sandbox 2-4 s longer: the view kept the file's fd, pinning
// the way in, until an idle sweep closed it; measured 3.7-4.7 s with --idle-release 1.)
test('a sandbox is released within idle + 1 s of the last read of a file', async (t) => {
  const pin = await newPin(t);
  const ns = pin.nsInode;
  // A file never read before each time (a cached one would be served from the page cache).
  const files = ['etc/os-release', 'etc/passwd', 'etc/group'];
  const ms = await releaseTime(t, 'after cat of a file', ns, async () => {
    const r = await timed('cat', [path.join(mp, String(ns), files.shift()!)]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  t.true(ms <= BOUND_MS, `released within idle + 1 s of the last read (${Math.round(ms)} ms)`);
});

test('nsview never keeps a namespace alive: pinned, read, pin removed -> no task or fd of the daemon in it within idle + 1 s', async (t) => {
  const pin = await newPin(t);
  const ns = pin.nsInode;
  t.is(await readFile(path.join(mp, String(ns), 'etc/hostname'), 'utf8'), hostHostname);
  await use(ns);
  t.is(await threadsIn(ns), 1, 'a sandbox holds it while the pin is there');
  const id = mountNamespaceIdentityAt(pin.file).id;
  await pin.release(); // umount of the pin
  const t0 = performance.now();
  let ms = await msUntil(
    `daemon out of ${ns}`,
    t0,
    async () => (await threadsIn(ns)) === 0 && !(await fdRefersTo(view.pid, ns, pin.file)),
    {
      timeoutMs: 15_000,
    },
  );
  t.log(
    `no task or fd of the daemon in ${ns} ${Math.round(ms)} ms after the pin was removed (bound ${BOUND_MS} ms, load ${loadAverage().toFixed(1)})`,
  );
  t.true(ms <= BOUND_MS, `within idle + 1 s (${Math.round(ms)} ms)`);
  // On a shared machine another nsview (someone else's) may hold it for a while: only a note.
  const others = await processesInNamespace(ns);
  if (others.length > 0)
    t.log(`still in ${ns}, not ours: ${others.map((o) => `${o.pid} ${o.cmdline.join(' ').slice(0, 120)}`).join('; ')}`);
  await waitFor('the release line', () =>
    new RegExp(`sandbox released for namespace ${ns} \\(namespace vanished\\)`).test(view.stderr()),
  );
  // by-id/<id>, not /<inode>: the kernel may already have given the number to a new namespace.
  const r = await timed('stat', [path.join(mp, 'by-id', String(id))]);
  t.is(r.errno, 'ENOENT');
});

test('no sandbox is left after nsview unmount: nothing of that daemon stays in the namespaces it used', async (t) => {
  const own = await startNsview(t, { extraArgs: ['--idle-release', '30'], env: POOL });
  const pins = [await newPin(t, own), await newPin(t, own)];
  for (const p of pins) {
    const r = await timed('cat', [path.join(own.mountpoint, String(p.nsInode), 'etc/hostname')]);
    t.is(r.code, 0, r.stderr);
  }
  const held = await sandboxThreads(own.pid);
  for (const p of pins) t.true(held.includes(p.nsInode), `a sandbox in ${p.nsInode} before unmount`);
  t.is((await daemonStats(own)).sandboxes, held.length);

  const u = await runNsview(['unmount', own.mountpoint], { timeoutMs: 30_000 });
  t.is(u.code, 0, u.stderr);
  t.true(await waitExit(own.proc, 10_000), 'the daemon exited');
  t.is(own.proc.exitCode, 0);
  t.false(await own.isMounted());
  for (const p of pins) {
    t.regex(own.stderr(), new RegExp(`sandbox released for namespace ${p.nsInode} \\(shutdown\\)`));
    // Nothing of that daemon is left in it (another nsview on a shared machine may be: not ours).
    const left = await processesInNamespace(p.nsInode);
    t.deepEqual(
      left.filter((l) => l.pid === own.pid || l.cmdline.includes(own.mountpoint)),
      [],
      `no process of the unmounted daemon is left in ${p.nsInode}`,
    );
    t.false((await sandboxThreads(view.pid)).includes(p.nsInode), 'nor a thread of the other daemon');
  }
});

// An administrator's `umount PIN` must never fail with EBUSY ("target is busy") because nsview
// is starting a sandbox in that namespace. Opening the pin itself, even for microseconds in the
// sandbox thread, failed this on a loaded machine about one round in four (the thread preempted
// while it held the fd); nsview now reaches a pin through a detached clone of its mount
// (open_tree), so its fds never show the pin's path. Each round makes 6 pins, reads through all
// of them at once while watching the daemon's fds, and umounts the first pin an fd is seen open on
// at once (a perl child calls umount2; never blocking this process), the others after the reads;
// 12 rounds, stopping at the first EBUSY.
test('removing a pin never fails with EBUSY, also while nsview is starting a sandbox in it', async (t) => {
  const umounter = new Umounter(t);
  const outcomes: string[] = [];
  let busy = false;
  for (let round = 1; round <= 12 && !busy; round++) {
    const t0 = performance.now();
    const pins = await Promise.all([0, 1, 2, 3, 4, 5].map(() => makeBindMountedNamespace(t)));
    let done = false;
    // Reach each (the first lookups may come before the view knows it: ENOENT, tried again).
    const last = new Map<number, string>();
    const reach = Promise.all(
      pins.map((p) =>
        waitFor(
          `a read through the view of ${p.nsInode}`,
          async () => {
            const r = await timed('cat', [path.join(mp, String(p.nsInode), 'etc/hostname')]);
            last.set(p.nsInode, r.code === 0 ? 'ok' : `${r.errno ?? r.stderr.trim()} after ${Math.round(r.ms)} ms`);
            return r.code === 0;
          },
          { timeoutMs: 10_000, intervalMs: 20 },
        ),
      ),
    ).finally(() => (done = true));
    reach.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
    const files = new Set(pins.map((p) => p.file));
    let seen: string | undefined;
    while (!done && !seen) {
      seen = fdOpenOn(view.pid, files); // procfs only, never the view
      if (!seen) await sleep(1);
    }
    const results: string[] = [];
    if (seen) {
      const r = await umounter.umount(seen);
      results.push(`${r} (while seen)`);
      if (/busy/i.test(r)) busy = true;
    }
    const unread = await reach.then(
      () => '',
      () =>
        [...last]
          .filter(([, v]) => v !== 'ok')
          .map(
            ([ns, v]) =>
              `${ns}: ${v}; log: ${view
                .stderr()
                .split('\n')
                .filter((l) => l.includes(String(ns)))
                .slice(-4)
                .join(' | ')}`,
          )
          .join('; '),
    );
    t.is(unread, '', 'every pinned namespace could be read through the view within 10 s');
    for (const file of [...files].filter((f) => f !== seen)) {
      const r = await umounter.umount(file);
      results.push(r);
      if (/busy/i.test(r)) busy = true;
    }
    outcomes.push(
      `round ${round} (${Math.round(performance.now() - t0)} ms): ${seen ? 'a daemon fd on a pin seen' : 'no daemon fd seen'}; umount: ${results.join(', ')}`,
    );
  }
  t.log(outcomes.join('\n'));
  t.false(busy, 'umount of the pins never answered EBUSY');
});

/**
 * Issue 4, churn: namespaces come and go, and the processes nsview uses to reach one come and go.
 *
 * - `ls <mp>` (and by-pid/) lists a new namespace, process-based or bind-mounted, within 1 s,
 *   also after an earlier `ls` (the kernel caches listings), and drops a dead one within 1 s.
 * - Once a namespace dies (process killed; pin removed with umount), `stat <mp>/<ns>` answers
 *   ENOENT within 1 s and so does everything under it, cached names and new ones, also relative
 *   to a shell whose working directory is inside it and whose caches were warm (`ls .` too; a new
 *   name relative to such a cwd may answer ESTALE):
 *   never a stale or half-detached tree. One log line each for appeared and vanished.
 * - Process churn: with three processes in a namespace, the one nsview reaches it through is
 *   killed, then the next: lookups, listings and a file kept open through the view go on
 *   without an error, and no sandbox is needed.
 * - An inode number taken over at once by a new namespace shows only the new one's files.
 *
 * "Within 1 s" is measured by polling every 50 ms; on a machine whose load average is above 4 a
 * measurement over the bound is redone once (boundedTimes). Measured values are logged.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mountNamespaceIdentityAt } from '../src/sys/namespace-id.js';
import {
  CleanupScope,
  makeBindMountedNamespace,
  makeRootfs,
  makeTempDir,
  spawnLongLived,
  startContainer,
  startNsview,
  waitFor,
  type Nsview,
  type Rootfs,
} from './helpers/index.js';
import {
  fdRefersTo,
  heldProcDirs,
  daemonStats,
  linesMatching,
  listEntry,
  loadAverage,
  msUntil,
  OpenFileReader,
  sandboxThreads,
  SERVICE_ENV,
  ShellIn,
  tasksInNamespace,
  timed,
} from './fixtures/lifecycle/lib.js';

const BOUND_MS = 1000;
const BIG_BLOCK = 64 * 1024;
const BIG_STRIDE = 4 * 1024 * 1024;
const BIG_BLOCKS = 8;

const scope = new CleanupScope();
let view: Nsview;
let mp: string;
let rootfs: Rootfs;

/** The 64 KiB block written at k * 4 MiB of /data/big.bin (the rest of the file is a hole). */
function bigBlock(k: number): Buffer {
  return Buffer.alloc(BIG_BLOCK, `nsview big.bin block ${k}\n`);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test.before(async () => {
  rootfs = await makeRootfs(path.join(makeTempDir(scope, 'churn-rootfs'), 'root'));
  await mkdir(path.join(rootfs.dir, 'data'));
  for (let k = 0; k < 6; k++) {
    await mkdir(path.join(rootfs.dir, 'data', `d${k}`));
    await writeFile(path.join(rootfs.dir, 'data', `d${k}`, 'file'), `file in d${k}\n`);
  }
  const big = await open(path.join(rootfs.dir, 'data', 'big.bin'), 'w');
  for (let k = 0; k < BIG_BLOCKS; k++) await big.write(bigBlock(k), 0, BIG_BLOCK, k * BIG_STRIDE);
  await big.truncate(BIG_BLOCKS * BIG_STRIDE);
  await big.close();
  // --scan-interval 0.5: a dead namespace is noticed by the next discovery pass, so the time to
  // ENOENT is up to one interval plus one pass (the kernel's cached entry for it lasts up to
  // --attr-timeout, 1 s). With the default interval of 1 s that worst case is just over 1 s.
  view = await startNsview(scope, {
    extraArgs: ['--idle-release', '1', '--op-timeout', '2', '--scan-interval', '0.5'],
    env: SERVICE_ENV,
  });
  mp = view.mountpoint;
});

test.after.always(() => scope.cleanup());

async function listed(ns: number): Promise<boolean> {
  return (await readdir(mp)).includes(String(ns));
}

/**
 * Where mount namespace `ns` is still alive on the host, if anywhere: a task in it, an nsfs mount
 * of it in any namespace's mount table (a namespace created while a pin existed holds a copy of
 * it: on a shared machine other tests create host copies all the time), or an fd on it. Inode
 * numbers are reused at once too. A check that finds a "dead" namespace alive must rule these out
 * before calling it a bug.
 */
async function aliveWhere(ns: number): Promise<string[]> {
  const where: string[] = (await tasksInNamespace(ns)).slice(0, 3).map((pt) => `task ${pt}`);
  const seenNs = new Set<string>();
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const nsLink = await readlink(`/proc/${pid}/ns/mnt`).catch(() => '');
    if (!nsLink || seenNs.has(nsLink)) continue;
    seenNs.add(nsLink);
    const mi = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    const pin = mi.split('\n').find((l) => l.includes(` mnt:[${ns}] `));
    if (pin) where.push(`pinned in ${nsLink} (pid ${pid}) at ${pin.split(' ')[4]}`);
  }
  for (const pid of await readdir('/proc')) {
    if (/^\d+$/.test(pid) && (await fdRefersTo(Number(pid), ns))) where.push(`fd of pid ${pid}`);
  }
  // A pin inside a namespace with no process (someone else's pinned copy of the host's mount
  // table) is not in any /proc/PID/mountinfo: nsview's own discovery finds it.
  const entry = await listEntry(ns);
  if (entry && where.length === 0)
    where.push(`nsview list: ${entry.source}, refs ${entry.refs.map((r) => r.join(' -> ')).join(', ')}`);
  return where;
}

async function namespaceAlive(ns: number): Promise<boolean> {
  return (await aliveWhere(ns)).length > 0;
}

/** aliveWhere without the daemon under test (whose sandbox may hold it until its next pass). */
async function heldElsewhere(ns: number): Promise<string[]> {
  return (await aliveWhere(ns)).filter((w) => !w.startsWith(`task ${view.pid}/`) && !w.endsWith(`pid ${view.pid}`));
}

class Reused extends Error {}

interface Made {
  ns: number;
  kind: 'process' | 'bindmount';
  /** Its process, if it has one. */
  pid?: number;
  /** What the namespace's /etc/hostname says (to recognise a stale read). */
  hostname: string;
  destroy(): Promise<void>;
}

async function makeProcessNs(t: import('ava').ExecutionContext): Promise<Made> {
  const c = await startContainer(t, { rootfs });
  return { ns: c.nsInode, kind: 'process', pid: c.pid, hostname: rootfs.hostname, destroy: () => c.stop() };
}

async function makeBindNs(t: import('ava').ExecutionContext): Promise<Made> {
  const pin = await makeBindMountedNamespace(t);
  // A copy of the host's namespace: its /etc/hostname is the host's.
  const hostname = (await readFile('/etc/hostname', 'utf8')).trimEnd();
  return { ns: pin.nsInode, kind: 'bindmount', hostname, destroy: () => pin.release() };
}

/** Resolves true once `stat <mp>/<ns>` succeeds (a lookup by name). */
async function reachable(ns: number): Promise<boolean> {
  try {
    await stat(path.join(mp, String(ns)));
    return true;
  } catch {
    return false;
  }
}

/** Resolves true once `stat <mp>/<ns>` answers ENOENT (`ns`: a namespace's inode, or by-id/<id>). */
async function enoent(ns: number | string): Promise<boolean> {
  try {
    await stat(path.join(mp, String(ns)));
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Runs `attempt`, again once if one of its times is over the bound at load > 4; logs every value. */
async function boundedTimes(
  t: import('ava').ExecutionContext,
  label: string,
  attempt: () => Promise<Record<string, number>>,
): Promise<Record<string, number>> {
  let r = await attempt();
  const show = (x: Record<string, number>) =>
    Object.entries(x)
      .map(([k, v]) => `${k} ${Number.isFinite(v) ? Math.round(v) : 'never'} ms`)
      .join(', ');
  if (Object.values(r).some((v) => v > BOUND_MS) && loadAverage() > 4) {
    t.log(`${label}: ${show(r)} at load ${loadAverage().toFixed(1)}; measuring again`);
    r = await attempt();
  }
  t.log(`${label}: ${show(r)} (bound ${BOUND_MS} ms, load ${loadAverage().toFixed(1)})`);
  return r;
}

/** msUntil, but a timeout is a measured "never" (Infinity) so the test goes on and reports it. */
async function msOrNever(what: string, t0: number, check: () => Promise<boolean>, timeoutMs = 3_000): Promise<number> {
  try {
    return await msUntil(what, t0, check, { timeoutMs });
  } catch {
    return Infinity;
  }
}

// Without OPENDIR the kernel caches the listing of the top directory and of by-pid/ until their
// mtime changes: each trial lists them first, as any earlier `ls` would have.
test('ls <mp> and by-pid/ follow churn: a new namespace listed within 1 s, a dead one (never looked up) unlisted within 1 s', async (t) => {
  const results: Record<string, number> = {};
  for (const make of [makeProcessNs, makeBindNs]) {
    const attempt = async () => {
      await readdir(mp);
      await readdir(mp);
      await readdir(path.join(mp, 'by-pid'));
      const a = await make(t);
      const r: Record<string, number> = {};
      r[`${a.kind} listed after`] = await msOrNever(`${a.ns} listed`, performance.now(), () => listed(a.ns));
      if (a.pid !== undefined) {
        const pid = String(a.pid);
        r['by-pid/PID listed after'] = await msOrNever('by-pid entry', performance.now(), async () =>
          (await readdir(path.join(mp, 'by-pid'))).includes(pid),
        );
      }
      // Never looked up: only the listing knows it.
      await a.destroy();
      const elsewhere = heldElsewhere(a.ns); // sampled at once, while the wait goes on
      r[`${a.kind} unlisted after`] = await msOrNever(
        `${a.ns} unlisted`,
        performance.now(),
        async () => !(await listed(a.ns)),
      );
      if (r[`${a.kind} unlisted after`]! > BOUND_MS) {
        // Held elsewhere at its end, or its number already taken by a new namespace.
        const where = [...(await elsewhere), ...(await heldElsewhere(a.ns))];
        if (where.length > 0)
          throw new Reused(
            `${a.kind} namespace ${a.ns} outlived its end, or its number was taken: ${where.join('; ')}`,
          );
      }
      return r;
    };
    let times: Record<string, number> | undefined;
    for (let tries = 1; !times; tries++) {
      try {
        times = await boundedTimes(t, 'listing', attempt);
      } catch (err) {
        if (!(err instanceof Reused) || tries >= 3) throw err;
        t.log(`${err.message}: measuring again`);
      }
    }
    Object.assign(results, times);
  }
  for (const [k, v] of Object.entries(results)) t.true(v <= BOUND_MS, `${k} ${v} ms`);
});

/**
 * One namespace's death, measured: it is reachable by name (and a shell sits in <ns>/etc with
 * warm caches); destroyed, `stat <mp>/<ns>` answers ENOENT within 1 s and it is not listed;
 * then every way of reaching it answers ENOENT. Throws Reused if the inode was taken by another
 * namespace before the checks ran, or if the namespace outlived its end somewhere else (a copy
 * of its pin in a namespace another test created meanwhile): the caller then measures again.
 */
async function death(t: import('ava').ExecutionContext, a: Made): Promise<Record<string, number>> {
  const logStart = view.stderr().length;
  const reach = await msUntil(`namespace ${a.ns} reachable`, performance.now(), () => reachable(a.ns), {
    timeoutMs: 10_000,
  });
  const dir = path.join(mp, String(a.ns));

  // A user's shell inside, with the kernel's caches warm (names, attributes, page cache).
  const shell = new ShellIn(t, path.join(dir, 'etc'));
  const warm = await shell.run('cat hostname && stat hostname >/dev/null && ls ../bin >/dev/null');
  t.is(warm.rc, 0, warm.stderr);
  t.is(warm.stdout, `${a.hostname}\n`);
  t.is(await readFile(path.join(dir, 'etc/hostname'), 'utf8'), `${a.hostname}\n`);

  await a.destroy();
  const t1 = performance.now();
  const elsewhere = heldElsewhere(a.ns); // sampled at once, while the wait goes on
  const gone = await msUntil(`stat ${dir} to answer ENOENT`, t1, () => enoent(a.ns), { timeoutMs: 5_000 }).catch(
    () => Infinity,
  );
  if (gone > BOUND_MS) {
    // Held elsewhere at its end, or its number already taken by a new namespace.
    const where = [...(await elsewhere), ...(await heldElsewhere(a.ns))];
    if (where.length > 0)
      throw new Reused(`namespace ${a.ns} outlived its end, or its number was taken: ${where.join('; ')}`);
  } else void elsewhere.catch(() => {});
  if (!Number.isFinite(gone)) throw new Error(`stat ${dir} did not answer ENOENT within 5 s of the namespace's end`);
  const unlisted = await msUntil(`${a.ns} unlisted`, t1, async () => !(await listed(a.ns)), { timeoutMs: 10_000 });
  const log = view.stderr().slice(logStart);

  // Everything under it answers ENOENT: new paths, cached ones, and names relative to a cwd inside.
  const checks = {
    'stat <ns>': await timed('stat', [dir]),
    'cat <ns>/etc/hostname (cached)': await timed('cat', [path.join(dir, 'etc/hostname')]),
    'ls <ns>/bin (cached)': await timed('ls', [path.join(dir, 'bin')]),
    'cat <ns>/etc/passwd (new name)': await timed('cat', [path.join(dir, 'etc/passwd')]),
  };
  const inside = {
    'cat hostname (cached)': await shell.run('cat hostname'),
    'stat hostname (cached)': await shell.run('stat hostname'),
    'cat os-release (new name)': await shell.run('cat os-release'),
    'ls ../bin (cached)': await shell.run('ls ../bin'),
  };
  const bad = [
    ...Object.entries(checks)
      .filter(([, r]) => r.errno !== 'ENOENT')
      .map(([k, r]) => `${k}: code ${r.code} ${r.stdout.slice(0, 200)}${r.stderr}`),
    // A new name under a dead directory may answer ESTALE: the directory itself is stale, and
    // for a walk from the mountpoint that makes the kernel revalidate the path.
    ...Object.entries(inside)
      .filter(([, r]) => r.errno !== 'ENOENT' && r.errno !== 'ESTALE')
      .map(([k, r]) => `shell: ${k}: rc ${r.rc} ${r.stdout.slice(0, 200)}${r.stderr}`),
  ];
  if (bad.length > 0 && (await namespaceAlive(a.ns))) {
    throw new Reused(`inode ${a.ns} was reused before the checks ran (${bad.join('; ')})`);
  }
  t.deepEqual(bad, [], `every way into the dead ${a.kind} namespace answers ENOENT`);
  for (const r of [...Object.values(checks), ...Object.values(inside)])
    t.false(r.stdout.includes(a.hostname), 'no stale content');
  t.is(linesMatching(log, new RegExp(`namespace ${a.ns} vanished(, id \\d+)?$`)).length, 1, 'one "vanished" line');
  return { reachable: reach, 'ENOENT after': gone, 'unlisted after': unlisted };
}

async function measureDeath(
  t: import('ava').ExecutionContext,
  make: (t: import('ava').ExecutionContext) => Promise<Made>,
): Promise<number> {
  let last = 0;
  let reused = 0;
  const times = await boundedTimes(t, make === makeProcessNs ? 'process' : 'bindmount', async () => {
    for (;;) {
      const a = await make(t);
      last = a.ns;
      try {
        return await death(t, a);
      } catch (err) {
        if (!(err instanceof Reused) || ++reused > 2) throw err;
        t.log(`${err.message}; again`);
      }
    }
  });
  for (const [k, v] of Object.entries(times)) t.true(v <= BOUND_MS, `${k}: ${Math.round(v)} ms`);
  return last;
}

test('process-based namespace: reachable at once; ENOENT within 1 s of its process dying, everywhere under it, also from a cwd inside', async (t) => {
  const ns = await measureDeath(t, makeProcessNs);
  t.regex(view.stderr(), new RegExp(`namespace ${ns} appeared \\(process, pid \\d+\\)`), 'appeared line');
});

test('bind-mounted namespace: ENOENT within 1 s of the umount of its pin, everywhere under it; its sandbox released', async (t) => {
  const ns = await measureDeath(t, makeBindNs);
  const log = view.stderr();
  t.regex(log, new RegExp(`namespace ${ns} appeared \\(bindmount\\)`), 'appeared line');
  t.regex(log, new RegExp(`sandbox started for namespace ${ns} \\(thread \\d+`), 'reached through a sandbox');
  t.regex(log, new RegExp(`sandbox released for namespace ${ns} \\(namespace vanished\\)`));
  t.false((await sandboxThreads(view.pid)).includes(ns), 'no thread of the daemon is left in it');
});

// Until 2f8a4b9 the listing stayed in the kernel's readdir cache: `ls .` listed the old names.
test('a shell whose cwd is inside a dead namespace: ls . answers ENOENT, not the cached listing', async (t) => {
  const a = await makeProcessNs(t);
  await waitFor('reachable', () => reachable(a.ns), { timeoutMs: 10_000, intervalMs: 50 });
  const shell = new ShellIn(t, path.join(mp, String(a.ns), 'etc'));
  const warm = await shell.run('ls .');
  t.is(warm.rc, 0);
  t.true(warm.stdout.includes('hostname'));
  // /<inode> names whatever namespace has that number now, and the kernel may hand the number to
  // a new namespace at once: wait on by-id/<id>, which names this namespace only.
  const id = mountNamespaceIdentityAt(`/proc/${a.pid ?? 0}/ns/mnt`).id;
  await a.destroy();
  await waitFor('ENOENT', () => enoent(`by-id/${id}`), { timeoutMs: 10_000, intervalMs: 50 });
  const r = await shell.run('ls .');
  t.log(
    `ls . after death: rc ${r.rc}, ${r.stdout.split('\n').filter(Boolean).length} names listed, stderr ${JSON.stringify(r.stderr.slice(0, 200))}`,
  );
  t.is(r.errno, 'ENOENT', `ls . answers ENOENT (rc ${r.rc})`);
  t.false(r.stdout.includes('hostname'), 'no stale listing');
});

test('process churn: the process nsview uses is killed, twice; open files keep reading, new lookups work, no sandbox', async (t) => {
  const c = await startContainer(t, { rootfs });
  const ns = c.nsInode;
  // Two more processes in the namespace, with the same root (nsenter -r: no chroot).
  // Killed only through their owners, once: a helper that signals a process group after its
  // leader is gone may hit whatever process took the number meanwhile.
  const others = [0, 1].map(() => {
    const s = spawnLongLived(['nsenter', '-t', String(c.pid), '-m', '-r', '-w', '--', '/bin/sleep', '999999']);
    let killed: Promise<void> | undefined;
    return { pid: s.child.pid!, kill: () => (killed ??= s.kill()) };
  });
  for (const o of others) t.teardown(() => o.kill());
  const killers = new Map<number, () => Promise<void>>([
    [c.pid, () => c.stop()],
    ...others.map((o) => [o.pid, o.kill] as [number, () => Promise<void>]),
  ]);
  const pids = [...killers.keys()];
  await waitFor(
    'the extra processes to be in the namespace',
    async () => {
      const inNs = await tasksInNamespace(ns);
      return pids.every((p) => inNs.includes(`${p}/${p}`));
    },
    { timeoutMs: 10_000 },
  );
  const dir = path.join(mp, String(ns));
  await waitFor(`namespace ${ns} listed`, () => listed(ns), { timeoutMs: 10_000, intervalMs: 50 });
  const logStart = view.stderr().length;

  const reader = await OpenFileReader.open(t, path.join(dir, 'data/big.bin'));
  const readBlock = async (k: number) => {
    const r = await reader.read(k * BIG_STRIDE, BIG_BLOCK);
    t.true(r.ok, `pread of block ${k}: ${r.code}`);
    t.is(r.sha256, sha(bigBlock(k)), `block ${k} content`);
  };
  const fresh = async (k: number) => {
    const cat = await timed('cat', [path.join(dir, `data/d${k}/file`)]);
    t.is(cat.code, 0, `cat d${k}/file: ${cat.stderr}`);
    t.is(cat.stdout, `file in d${k}\n`);
    const ls = await timed('ls', [path.join(dir, `data/d${k}`)]);
    t.is(ls.code, 0, `ls d${k}: ${ls.stderr}`);
    t.is(ls.stdout, 'file\n');
  };
  await readBlock(0);
  await fresh(0);

  const alive = new Set(pids);
  for (let round = 1; alive.size > 1; round++) {
    const held = (await heldProcDirs(view.pid)).filter((p) => alive.has(p));
    // The one nsview uses, when we can tell (its guard fd on /proc/PID); else any but the last.
    const victim = held[0] ?? [...alive][0]!;
    const before = await daemonStats(view);
    await killers.get(victim)!(); // SIGKILL, and waits for the exit
    alive.delete(victim);
    t.log(
      `round ${round}: killed ${victim} (${held.includes(victim) ? 'the one nsview held' : 'nsview held none of ours'}), ${alive.size} left`,
    );
    await readBlock(round);
    await fresh(round);
    const ls = await timed('ls', [path.join(dir, 'etc')]);
    t.is(ls.code, 0, ls.stderr);
    const after = await daemonStats(view);
    t.true(
      (after.requests.READ ?? 0) > (before.requests.READ ?? 0),
      'the reads reached the daemon (not only the page cache)',
    );
  }
  await readBlock(BIG_BLOCKS - 1);
  t.true(await listed(ns), 'still listed with one process left');
  const log = view.stderr().slice(logStart);
  t.deepEqual(linesMatching(log, new RegExp(`namespace ${ns} `)), [], 'no sandbox, no vanish for it');
  t.deepEqual(linesMatching(log, /error/), [], 'no error logged');
  t.false((await sandboxThreads(view.pid)).includes(ns));
});

test('an inode number taken over at once by a new namespace shows the new namespace’s files, never the old one’s', async (t) => {
  const hostHostname = await readFile('/etc/hostname', 'utf8');
  const outcomes: string[] = [];
  let reused = 0;
  for (let trial = 1; trial <= 6 && reused < 3; trial++) {
    // The old namespace: a copy of the host's, pinned, used through the view (a sandbox holds it).
    const old = await makeBindMountedNamespace(t);
    const n = old.nsInode;
    await waitFor(
      'old namespace readable',
      async () => (await timed('cat', [path.join(mp, String(n), 'etc/hostname')])).stdout === hostHostname,
      {
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
    // Readers hammer <n>/etc/hostname while the old namespace dies and a container is born.
    let reading = true;
    const seen = new Map<string, number>();
    const events: string[] = [];
    const readers = [0, 1].map(async () => {
      while (reading) {
        const r = await timed('cat', [path.join(mp, String(n), 'etc/hostname')]);
        const what = r.code === 0 ? r.stdout : (r.errno ?? r.stderr.trim());
        seen.set(what, (seen.get(what) ?? 0) + 1);
        events.push(what);
      }
    });
    await old.release();
    const c = await startContainer(t, { rootfs }); // namespace ids are handed out lowest first
    const took = c.nsInode === n;
    if (took) {
      reused++;
      await waitFor('the new namespace readable', async () => seen.has(`${rootfs.hostname}\n`), {
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    }
    reading = false;
    await Promise.all(readers);
    const ls = took ? await timed('ls', [path.join(mp, String(n))]) : undefined;
    outcomes.push(
      `trial ${trial}: ${took ? `inode ${n} reused` : `new inode ${c.nsInode}`}: ${[...seen].map(([k, v]) => `${JSON.stringify(k)} x${v}`).join(', ')}`,
    );
    if (took) {
      // Reads during the swap: the host's file while the old namespace lived, then ENOENT, then
      // the container's; after it, only the container's, and its own root listing.
      const afterNew = events.slice(events.indexOf(`${rootfs.hostname}\n`));
      t.false(
        afterNew.includes(hostHostname),
        `never the old namespace's file once the new one's was read (${outcomes.at(-1)})`,
      );
      for (let i = 0; i < 5; i++)
        t.is((await timed('cat', [path.join(mp, String(n), 'etc/hostname')])).stdout, `${rootfs.hostname}\n`);
      t.false(
        ls!.stdout.split('\n').includes('work'),
        `the listing of <${n}> is the container's root: ${ls!.stdout.replace(/\n/g, ' ')}`,
      );
    }
    await c.stop();
  }
  t.log(outcomes.join('\n'));
  if (reused === 0) t.log('no inode was reused at once (other namespaces were created meanwhile): nothing to check');
  t.pass();
});

/**
 * Namespace identity through the mounted view: a namespace directory, and every fd taken in it,
 * stays bound to the one namespace it was opened in. The kernel hands a dead namespace's inode
 * number to the next new namespace at once; handles held across that (a directory fd, a file fd,
 * an openat walk) must fail with ENOENT/ESTALE and never show the new namespace's files, also
 * with CPU hogs on both cores. Also: nothing is pinned after namespaces die unused (daemon fds),
 * by-pid/PID stops resolving as the process exits, by-id/<id> names one namespace for good, and
 * a namespace newer than the last discovery pass is found by number at once.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { closeSync, constants, openSync, readdirSync, readFileSync, readSync, readlinkSync } from 'node:fs';
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { namespaceIdSupport, mountNamespaceIdentityAt } from '../src/sys/namespace-id.js';
import { errnoOf, E } from '../src/sys/errors.js';
import {
  makeBindMountedNamespace,
  makeRootfs,
  makeTempDir,
  run,
  runNsview,
  sleep,
  spawnLongLived,
  startContainer,
  startNsview,
  waitFor,
  type Container,
} from './helpers/index.js';

const support = namespaceIdSupport();
const withIds = support.ids && support.handles && support.listmountById && support.walk ? test : test.skip;

/** Two busy loops, one per core, for the duration of a test (killed in teardown). */
function cpuHogs(t: ExecutionContext): void {
  for (let i = 0; i < 2; i++) {
    const s = spawnLongLived(['timeout', '300', 'sh', '-c', 'while :; do :; done']);
    t.teardown(() => s.kill());
  }
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What a read through an old handle gave: its text, or the errno's name. */
function attemptRead(fn: () => string): string {
  try {
    return `ok:${fn()}`;
  } catch (err) {
    return `errno:${errnoOf(err)}`;
  }
}

/** A rootfs whose files say which container they belong to. */
async function markedRootfs(t: ExecutionContext, who: string) {
  const r = await makeRootfs(path.join(makeTempDir(t, `rootfs-${who}`), 'root'), {
    hostname: `host-${who}-${process.pid}`,
  });
  await writeFile(path.join(r.dir, 'who'), `${who}\n`);
  await mkdir(path.join(r.dir, 'deep/er'), { recursive: true });
  await writeFile(path.join(r.dir, 'deep/er/who'), `${who}\n`);
  if (who === 'B') await writeFile(path.join(r.dir, 'only-in-B'), 'B\n');
  return r;
}

withIds(
  'handles held across a namespace’s death and the reuse of its number never see the new namespace (CPU hogs on both cores)',
  async (t) => {
    t.timeout(180_000);
    const view = await startNsview(t);
    const mp = view.mountpoint;
    cpuHogs(t);
    const [rootA, rootB] = [await markedRootfs(t, 'A'), await markedRootfs(t, 'B')];
    const a = await startContainer(t, { rootfs: rootA });
    const n = a.nsInode;
    const idA = mountNamespaceIdentityAt(`/proc/${a.pid}/ns/mnt`).id;
    await waitFor(
      'A in the view',
      () => attemptRead(() => readFileSync(path.join(mp, String(n), 'who'), 'utf8')) === 'ok:A\n',
    );

    // Held in A: its directory, a directory below, a file (read once, so its pages are cached).
    const dirFd = openSync(path.join(mp, String(n)), constants.O_RDONLY | constants.O_DIRECTORY);
    const etcFd = openSync(path.join(mp, String(n), 'etc'), constants.O_RDONLY | constants.O_DIRECTORY);
    const fileFd = openSync(path.join(mp, String(n), 'who'), 'r');
    t.teardown(() => [dirFd, etcFd, fileFd].forEach((fd) => closeSync(fd)));
    const buf = Buffer.alloc(64);
    t.is(buf.toString('utf8', 0, readSync(fileFd, buf, 0, 64, 0)), 'A\n');
    t.true(readdirSync(`/proc/self/fd/${dirFd}`).includes('who'));

    // An openat walk from A's directory fd, running from before A's death until the end.
    const seen = new Map<string, number>();
    let walking = true;
    const walker = (async () => {
      while (walking) {
        for (const r of [
          attemptRead(() => readFileSync(`/proc/self/fd/${dirFd}/deep/er/who`, 'utf8')),
          attemptRead(() => readFileSync(`/proc/self/fd/${etcFd}/hostname`, 'utf8')),
          attemptRead(() => readdirSync(`/proc/self/fd/${dirFd}`).join(',')),
        ]) {
          seen.set(r, (seen.get(r) ?? 0) + 1);
        }
        await sleep(5);
      }
    })();

    await a.stop();
    // Force the reuse: new containers until one gets A's number.
    let b: Container | undefined;
    let tries = 0;
    for (; tries < 100 && !b; tries++) {
      const c = await startContainer(t, { rootfs: rootB });
      if (c.nsInode === n) b = c;
      else await c.stop();
    }
    if (!b) {
      walking = false;
      await walker;
      t.fail(`no container got number ${n} back in ${tries} tries (other namespaces took it)`);
      return;
    }
    t.log(
      `number ${n} reused after ${tries} tries; A id ${idA}, B id ${mountNamespaceIdentityAt(`/proc/${b.pid}/ns/mnt`).id}`,
    );
    // The name now shows B (as lsns would), through a fresh path walk.
    await waitFor(
      'B under the number',
      () => attemptRead(() => readFileSync(path.join(mp, String(n), 'who'), 'utf8')) === 'ok:B\n',
      { timeoutMs: 5_000 },
    );
    await sleep(1500); // the walk goes on with B alive under A's number, and the kernel's caches expire
    walking = false;
    await walker;

    // Never anything of B through A's handles.
    const results = [...seen.keys()];
    t.log(`walk results: ${JSON.stringify(Object.fromEntries(seen))}`);
    for (const r of results) {
      t.false(r.includes('B') || r.includes(rootB.hostname), `through A's handles: ${r}`);
    }
    // And by now every old handle fails.
    t.regex(
      attemptRead(() => readFileSync(`/proc/self/fd/${dirFd}/who`, 'utf8')),
      /^errno:(2|116)$/,
    );
    t.regex(
      attemptRead(() => readFileSync(`/proc/self/fd/${etcFd}/hostname`, 'utf8')),
      /^errno:(2|116)$/,
    );
    t.regex(
      attemptRead(() => readdirSync(`/proc/self/fd/${dirFd}`).join(',')),
      /^errno:(2|116)$/,
    );
    t.regex(
      attemptRead(() => buf.toString('utf8', 0, readSync(fileFd, buf, 0, 64, 0))),
      /^errno:116$/,
      'the open file answers ESTALE',
    );
    // by-id: A's id is gone for good, B's id shows B.
    t.regex(
      attemptRead(() => readFileSync(path.join(mp, 'by-id', String(idA), 'who'), 'utf8')),
      /^errno:2$/,
    );
    const idB = mountNamespaceIdentityAt(`/proc/${b.pid}/ns/mnt`).id;
    t.is(readFileSync(path.join(mp, 'by-id', String(idB), 'who'), 'utf8'), 'B\n');
  },
);

withIds(
  'root and guard fds of namespaces that die unused are closed promptly, also when new namespaces take their numbers',
  async (t) => {
    t.timeout(120_000);
    const view = await startNsview(t);
    const mp = view.mountpoint;
    await readdir(mp);
    await sleep(300);
    const base = fdCount(view.pid);
    const containers: Container[] = [];
    for (let i = 0; i < 6; i++) containers.push(await startContainer(t));
    const pins = [await makeBindMountedNamespace(t), await makeBindMountedNamespace(t)];
    // A listing opens a root and a guard per process-held namespace; a read through a pin starts
    // a sandbox; a file of a container is read.
    await waitFor('all listed', async () => {
      const names = await readdir(mp);
      return (
        containers.every((c) => names.includes(String(c.nsInode))) &&
        pins.every((p) => names.includes(String(p.nsInode)))
      );
    });
    await run('ls', ['-l', mp]);
    for (const p of pins) readdirSync(path.join(mp, String(p.nsInode)));
    for (const c of containers) readFileSync(path.join(mp, String(c.nsInode), 'etc/hostname'));
    const peak = fdCount(view.pid);
    t.true(peak >= base + 2 * containers.length, `fds ${base} -> ${peak} with ${containers.length} roots held`);

    // They die without being used again, and new namespaces (never looked at) take their numbers:
    // a number seen again by discovery must not keep the dead one's root and guard open.
    const t0 = performance.now();
    for (const c of containers) await c.stop();
    for (const p of pins) await p.release();
    const numbers = new Set([...containers.map((c) => c.nsInode), ...pins.map((p) => p.nsInode)]);
    let reused = 0;
    for (let i = 0; i < containers.length + pins.length; i++)
      if (numbers.has((await startContainer(t)).nsInode)) reused++;
    t.log(`${reused} of ${numbers.size} numbers taken by new namespaces`);
    const after = await waitFor(
      'fds back to the baseline',
      () => (fdCount(view.pid) <= base + 2 ? fdCount(view.pid) : false),
      { timeoutMs: 5_000 },
    ).catch(() => fdCount(view.pid));
    const ms = Math.round(performance.now() - t0);
    t.log(`daemon fds: baseline ${base}, peak ${peak}, after the deaths ${after} (${ms} ms)`);
    t.true(after <= base + 2, `fds after the deaths: ${after} (baseline ${base})`);
    t.false(/sandbox started/.test(view.stderr()) && !/sandbox released/.test(view.stderr()), 'every sandbox released');
  },
);

test('by-pid/PID stops resolving as soon as the process exits', async (t) => {
  const view = await startNsview(t);
  const mp = view.mountpoint;
  const c = await startContainer(t);
  const link = path.join(mp, 'by-pid', String(c.pid));
  await waitFor('by-pid link', () => attemptRead(() => readlinkSync(link)) === `ok:../${c.nsInode}`);
  t.is(readFileSync(path.join(link, 'etc/hostname'), 'utf8'), `${c.hostname}\n`);
  await c.stop();
  await waitFor(
    'the process gone',
    () => attemptRead(() => readFileSync(`/proc/${c.pid}/status`, 'utf8')).startsWith('errno:'),
    { timeoutMs: 5_000 },
  );
  // At once: no discovery pass is waited for.
  t.is(
    attemptRead(() => readlinkSync(link)),
    `errno:${E.ENOENT}`,
  );
  t.regex(
    attemptRead(() => readFileSync(path.join(link, 'etc/hostname'), 'utf8')),
    /^errno:2$/,
  );
  // A thread id is not a process: by-pid names processes only.
  const tids = readdirSync(`/proc/${view.pid}/task`).filter((tid) => tid !== String(view.pid));
  t.true(tids.length > 0);
  t.is(
    attemptRead(() => readlinkSync(path.join(mp, 'by-pid', tids[0]!))),
    `errno:${E.ENOENT}`,
  );
});

withIds(
  'by-id/<id> reaches a namespace by its kernel id, is not listed, and nsview list --json gives the id',
  async (t) => {
    const view = await startNsview(t);
    const mp = view.mountpoint;
    const c = await startContainer(t);
    const pin = await makeBindMountedNamespace(t);
    const list = await runNsview(['list', '--json']);
    t.is(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as Array<{ id?: string; inode: number }>;
    const id = mountNamespaceIdentityAt(`/proc/${c.pid}/ns/mnt`).id;
    t.is(rows.find((r) => r.inode === c.nsInode)?.id, String(id));
    t.is(rows.find((r) => r.inode === pin.nsInode)?.id, String(mountNamespaceIdentityAt(pin.file).id));
    t.is(readFileSync(path.join(mp, 'by-id', String(id), 'etc/hostname'), 'utf8'), `${c.hostname}\n`);
    const pinId = mountNamespaceIdentityAt(pin.file).id;
    t.true(readdirSync(path.join(mp, 'by-id', String(pinId))).length > 0, 'a process-less namespace by id');
    t.deepEqual(readdirSync(path.join(mp, 'by-id')), [], 'by-id lists nothing');
    t.true(readdirSync(mp).includes('by-id'));
    for (const bad of ['0', '01', '-1', 'x', '18446744073709551616', String((1n << 63n) | BigInt(c.nsInode))]) {
      t.is(
        attemptRead(() => readdirSync(path.join(mp, 'by-id', bad)).join()),
        `errno:${E.ENOENT}`,
        `by-id/${bad}`,
      );
    }
    await c.stop();
    await waitFor(
      'by-id of the dead namespace ENOENT',
      () =>
        attemptRead(() => readFileSync(path.join(mp, 'by-id', String(id), 'etc/hostname'), 'utf8')) ===
        `errno:${E.ENOENT}`,
      { timeoutMs: 3_000 },
    );
  },
);

withIds('a namespace newer than the last discovery pass is found by number at once', async (t) => {
  // One pass at start, the next in a minute: only a direct lookup can find these.
  const view = await startNsview(t, { extraArgs: ['--scan-interval', '60'] });
  const mp = view.mountpoint;
  await readdir(mp);
  const c = await startContainer(t);
  const t0 = performance.now();
  t.is(readFileSync(path.join(mp, String(c.nsInode), 'etc/hostname'), 'utf8'), `${c.hostname}\n`);
  const pin = await makeBindMountedNamespace(t);
  t.true(
    readdirSync(path.join(mp, String(pin.nsInode))).includes('etc'),
    'a pinned namespace, reached by its id alone',
  );
  t.log(`both read ${Math.round(performance.now() - t0)} ms after the container started`);
  t.regex(view.stderr(), new RegExp(`namespace ${c.nsInode} found directly`));
  // A number no namespace has is still ENOENT.
  t.is(
    attemptRead(() => readdirSync(path.join(mp, '4026531')).join()),
    `errno:${E.ENOENT}`,
  );
});

/**
 * Self-test of the test helpers (no daemon): each kind of namespace is created, is what it
 * claims to be, and is gone, with nothing left behind, after cleanup.
 */
import test from 'ava';
import { mkdir, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  HARDLINK_NAMES,
  makeBindMountedNamespace,
  makeFdHeldNamespace,
  makeFidelityTree,
  makeNestedBindMountedNamespace,
  makeTempDir,
  makeThreadNamespace,
  nsInodeOf,
  pidAlive,
  readMountinfo,
  run,
  sh,
  snapshotTree,
  startContainer,
  waitFor,
  XATTRS,
  CommandError,
} from './helpers/index.js';

/** nsfs mounts of this namespace pinning `nsInode`. */
async function nsfsPins(nsInode: number): Promise<string[]> {
  return (await readMountinfo())
    .filter((m) => m.fsType === 'nsfs' && m.root === `mnt:[${nsInode}]`)
    .map((m) => m.mountPoint);
}

/** Every mount namespace inode reachable from a process or thread on the host right now. */
async function liveNamespaces(): Promise<Set<number>> {
  const r = await sh(`for l in /proc/[0-9]*/task/[0-9]*/ns/mnt; do readlink "$l"; done 2>/dev/null | sort -u`, {
    check: false,
  });
  return new Set([...r.stdout.matchAll(/mnt:\[(\d+)\]/g)].map((m) => Number(m[1])));
}

test('sh: output, exit codes and timeouts', async (t) => {
  const ok = await sh('echo out; echo err >&2');
  t.is(ok.stdout, 'out\n');
  t.is(ok.stderr, 'err\n');
  t.is((await sh('exit 3', { check: false })).code, 3);
  await t.throwsAsync(sh('exit 3'), { instanceOf: CommandError });
  const started = Date.now();
  const slow = await sh('sleep 30 & sleep 30; echo never', { timeoutMs: 300, check: false });
  t.true(slow.timedOut);
  t.true(Date.now() - started < 5_000);
});

test('container: pivot_root into the rootfs, exec sees its own /etc/hostname', async (t) => {
  const scope = new CleanupScope();
  t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
  const host = await nsInodeOf('self');
  const c = await startContainer(scope, { mountProc: true });
  t.not(c.nsInode, host);
  t.regex(c.hostname!, /^nsview-ctr-/);
  t.is((await c.exec('cat /etc/hostname')).stdout, `${c.hostname}\n`);
  // Everything resolves in the container: busybox, its own root listing, its own mounts.
  t.regex((await c.exec('readlink /bin/sh')).stdout, /^busybox/);
  const ls = (await c.exec('ls /')).stdout.split('\n');
  t.true(ls.includes('bin') && ls.includes('etc') && !ls.includes('work'));
  const mounts = (await c.exec('cat /proc/self/mountinfo')).stdout;
  t.notRegex(mounts, /\/work\b/);
  t.is((await readFile(`/proc/${c.pid}/root/etc/hostname`, 'utf8')).trim(), c.hostname!);
  t.is((await c.exec('exit 7', { check: false })).code, 7);

  await scope.cleanup();
  t.false(pidAlive(c.pid));
  await waitFor('container namespace to die', async () => !(await liveNamespaces()).has(c.nsInode));
  await t.throwsAsync(stat(c.rootfs)); // the rootfs it built is removed
});

test('container: setup commands and a given rootfs', async (t) => {
  const scope = new CleanupScope();
  t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
  const first = await startContainer(scope);
  const c = await startContainer(scope, {
    rootfs: first.rootfs,
    setup: 'mkdir -p /tmp/x && mount -t tmpfs none /tmp/x && echo hi > /tmp/x/f',
  });
  t.is(c.hostname, undefined);
  t.is((await c.exec('cat /tmp/x/f')).stdout, 'hi\n');
  t.is((await first.exec('cat /tmp/x/f 2>&1', { check: false })).code, 1); // mount is private to c
  t.is((await c.exec('cat /etc/hostname')).stdout, `${first.hostname}\n`);
  await scope.cleanup();
  t.false(pidAlive(c.pid));
  t.false(pidAlive(first.pid));
});

test('bind-mounted namespace: no process, pinned by a file, enterable; gone after release', async (t) => {
  const scope = new CleanupScope();
  t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
  const ns = await makeBindMountedNamespace(scope, { setup: 'mount -t tmpfs nsview-pin /mnt' });
  t.deepEqual(await nsfsPins(ns.nsInode), [ns.file]);
  t.false((await liveNamespaces()).has(ns.nsInode));
  const r = await run('nsenter', [
    `--mount=${ns.file}`,
    '--',
    'sh',
    '-c',
    'readlink /proc/self/ns/mnt; findmnt -n -o SOURCE /mnt',
  ]);
  t.is(r.stdout, `mnt:[${ns.nsInode}]\nnsview-pin\n`);
  await scope.cleanup();
  t.deepEqual(await nsfsPins(ns.nsInode), []);
  await t.throwsAsync(stat(path.dirname(ns.file)));
});

test('fd-held namespace: only an fd of a host process refers to it', async (t) => {
  const scope = new CleanupScope();
  t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
  const ns = await makeFdHeldNamespace(scope);
  t.is(await readlink(`/proc/${ns.holderPid}/fd/${ns.fd}`), `mnt:[${ns.nsInode}]`);
  t.is(await nsInodeOf(ns.holderPid), await nsInodeOf('self')); // the holder lives on the host
  t.false((await liveNamespaces()).has(ns.nsInode));
  t.deepEqual(await nsfsPins(ns.nsInode), []);
  const r = await run('nsenter', [`--mount=/proc/${ns.holderPid}/fd/${ns.fd}`, '--', 'readlink', '/proc/self/ns/mnt']);
  t.is(r.stdout.trim(), `mnt:[${ns.nsInode}]`);
  await scope.cleanup();
  t.false(pidAlive(ns.holderPid));
});

for (const outer of ['process', 'bindmount'] as const) {
  test(`nested bind-mounted namespace (outer: ${outer}): pinned only inside the outer namespace`, async (t) => {
    const scope = new CleanupScope();
    t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
    const ns = await makeNestedBindMountedNamespace(scope, { outer });
    t.not(ns.nsInode, ns.outer.nsInode);
    t.false((await liveNamespaces()).has(ns.nsInode));
    t.deepEqual(await nsfsPins(ns.nsInode), []); // invisible on the host...
    t.is((await stat(ns.innerPath)).size, 0); // ...where the pin is a plain empty file
    const enterOuter = outer === 'process' ? `--mount=/proc/${ns.outer.pid}/ns/mnt` : `--mount=${ns.outer.file}`;
    const r = await run('nsenter', [
      enterOuter,
      '--',
      'nsenter',
      `--mount=${ns.innerPath}`,
      '--',
      'readlink',
      '/proc/self/ns/mnt',
    ]);
    t.is(r.stdout.trim(), `mnt:[${ns.nsInode}]`);
    if (outer === 'bindmount') t.deepEqual(await nsfsPins(ns.outer.nsInode), [ns.outer.file!]);
    await scope.cleanup();
    if (ns.outer.pid) t.false(pidAlive(ns.outer.pid));
    t.deepEqual(await nsfsPins(ns.outer.nsInode), []);
  });
}

test('thread namespace: one worker thread is elsewhere, the process is on the host', async (t) => {
  const scope = new CleanupScope();
  t.teardown(() => scope.cleanup()); // when an assertion fails before the explicit cleanup
  const dir = path.join(makeTempDir(scope, 'thread'), 'marker');
  await mkdir(dir);
  const ns = await makeThreadNamespace(scope, { tmpfsAt: dir });
  const host = await nsInodeOf('self');
  t.is(await nsInodeOf(ns.pid), host);
  t.not(ns.tid, ns.pid);
  t.is(await nsInodeOf(ns.pid, ns.tid), ns.nsInode);
  t.not(ns.nsInode, host);
  // The marker tmpfs exists only in the thread's namespace.
  t.deepEqual(await readdir(dir), []);
  const r = await run('nsenter', [`--mount=/proc/${ns.pid}/task/${ns.tid}/ns/mnt`, '--', 'cat', ns.markerFile!]);
  t.is(r.stdout, `thread ${ns.tid}\n`);
  await scope.cleanup();
  t.false(pidAlive(ns.pid));
});

test('fidelity tree: deterministic, with every kind of entry', async (t) => {
  const a = await makeFidelityTree(path.join(makeTempDir(t, 'fid'), 'tree'));
  const b = await makeFidelityTree(path.join(makeTempDir(t, 'fid'), 'tree'), { nonUtf8Name: true });
  const snapA = await snapshotTree(a.dir);
  const snapB = await snapshotTree(b.dir);
  t.deepEqual(
    snapB.filter((l) => !l.startsWith('files/latin1-') && !l.startsWith('files ')),
    snapA.filter((l) => !l.startsWith('files ')),
  );
  t.true(snapB.some((l) => l.startsWith('files/latin1-\\xe9.txt type=f')));
  const byPath = new Map(snapA.map((l) => [l.slice(0, l.indexOf(' type=')), l]));
  const get = (p: string) => byPath.get(p) ?? t.fail(`missing ${p}`);
  t.regex(get('files/setuid') as string, /mode=4755 uid=0/);
  t.regex(get('files/setgid') as string, /mode=2755 uid=0 gid=1000/);
  t.regex(get('dirs/sticky') as string, /mode=1777/);
  t.regex(get('files/mode-0600.txt') as string, /mode=0600 uid=1000 gid=1000/);
  t.regex(get('files/mode-0444.txt') as string, /mode=0444 uid=65534 gid=65534/);
  t.regex(get('files/ns-mtime.txt') as string, /mtime=1000000000\.123456789/);
  t.regex(get('files/old-mtime.txt') as string, /mtime=86400\.000000000/);
  t.regex(get('links/abs') as string, /type=l .*mtime=1500000000\.000000001 .*target=\/etc\/hostname/);
  t.regex(get('links/owned') as string, /uid=1000 gid=1000/);
  t.regex(get('special/fifo') as string, /type=p mode=0644/);
  t.regex(get('special/null') as string, /type=c mode=0666 .*rdev=1:3/);
  t.regex(get('files/größe-ñ-日本.txt') as string, /type=f/);
  t.regex(get('files/with\\nnewline.txt') as string, /type=f/);
  t.regex(get('files/with space.txt') as string, /type=f/);
  t.regex(get('dirs/empty') as string, /type=d/);
  t.regex(get(HARDLINK_NAMES[0]) as string, /nlink=3 .*xattrs=user\.test:/);
  t.regex(get(HARDLINK_NAMES[1]) as string, new RegExp(`hardlink=${HARDLINK_NAMES[0]}`));
  const xattrHex = Buffer.from(XATTRS['files/xattr.txt']!['user.test']!).toString('hex');
  t.regex(get('files/xattr.txt') as string, new RegExp(`user\\.test:${xattrHex}`));
  t.regex(get('.') as string, /mtime=1600000000\.000000000/);
  t.is(snapA.filter((l) => l.startsWith('many/')).length, 200);
  // GNU tar round-trips it (the fidelity tests compare such archives).
  const list = await sh(`tar -C ${a.dir} --xattrs -cf - . | tar -tvf - | wc -l`);
  t.is(Number(list.stdout.trim()), a.entries.length + 1);
});

test('cleanup leaves no namespace pins under the test temp dirs', async (t) => {
  const base = process.env.NSVIEW_TEST_TMPDIR;
  const mine = (await readMountinfo()).filter(
    (m) => m.mountPoint.includes('/nsview-test-') && (!base || m.mountPoint.startsWith(base)),
  );
  t.deepEqual(
    mine.map((m) => m.mountPoint),
    [],
  );
});

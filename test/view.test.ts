/**
 * End to end: the read-only view in `rewrite` mode, the default.
 *
 * One nsview daemon (a child process) serves a view of namespaces of every kind, all created
 * before it starts: two pivot_root'ed containers on two different tmpfs filesystems, and four
 * namespaces that have no process of their own (kept by a bind mount on the host, by an open fd,
 * by a bind mount that exists only inside another namespace, by one thread of a host process).
 * Each process-less namespace mounted a tmpfs with a marker file on the same host directory
 * (`spot`), so only the right namespace shows the right marker. Every check reads the mount
 * from child processes (`cat`, `stat`, `readlink`, `ls`, `find`).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { daemonStats } from './fixtures/lifecycle/lib.js';
import path from 'node:path';
import { mountNamespaceIdentityAt } from '../src/sys/namespace-id.js';
import {
  CleanupScope,
  makeBindMountedNamespace,
  makeFdHeldNamespace,
  makeNestedBindMountedNamespace,
  makeRootfs,
  makeTempDir,
  makeThreadNamespace,
  nsInodeOf,
  removeTree,
  run,
  runNsview,
  sh,
  shq,
  spawnLongLived,
  startContainer,
  startNsview,
  waitFor,
  waitForLine,
  type BindMountedNamespace,
  type Container,
  type FdHeldNamespace,
  type NestedBindMountedNamespace,
  type Nsview,
  type Rootfs,
  type RunResult,
  type Teardown,
  type ThreadNamespace,
} from './helpers/index.js';

// ---------------------------------------------------------------------------------------------
// Local helpers

/** Runs a command that must succeed (30 s bound) and returns its stdout. */
async function out(file: string, args: string[]): Promise<string> {
  return (await run(file, args)).stdout;
}

/** Runs a command that may fail. */
function attempt(file: string, args: string[]): Promise<RunResult> {
  return run(file, args, { check: false });
}

/** `ls -1A DIR` as a list of names. */
async function ls(dir: string): Promise<string[]> {
  return (await out('ls', ['-1A', dir])).split('\n').filter((l) => l !== '');
}

/** `stat -c %i` of each path (lstat), through child processes. */
async function inodes(paths: string[]): Promise<string[]> {
  return (await out('stat', ['-c', '%i', ...paths])).trim().split('\n');
}

/** A fresh tmpfs of its own (so its inode numbers start from the same small values every time). */
async function makeTmpfs(t: Teardown, label: string): Promise<string> {
  const dir = path.join(makeTempDir(t, label), 'fs');
  await mkdir(dir);
  await sh(`mount -t tmpfs -o size=32m,mode=0755 nsview-test-${label} ${shq(dir)}`);
  return dir;
}

/**
 * Extra entries for a container rootfs, created in the same order in every rootfs (so two
 * identical tmpfs rootfs get identical inode numbers for identical paths):
 *   /evil -> /etc/hostname (absolute), /a/b/c/rel -> ../../../../../../etc/hostname (deeper
 *   than the tree), two chains of both kinds, a link to a directory, hardlinks.
 */
const CONTAINER_LINKS: Readonly<Record<string, string>> = {
  evil: '/etc/hostname',
  'a/b/c/rel': '../../../../../../etc/hostname',
  'a/b/c/chain-rel-abs': '../../../../../../../evil', // relative (escaping) -> absolute -> file
  'a/b/c/chain-abs-rel': '/a/b/c/rel', // absolute -> relative (escaping) -> file
  'a/etcdir': '/etc', // absolute link to a directory
  'a/b/dangling-abs': '/nonexistent/nsview-dangling', // absolute, leads nowhere
  'a/b/dangling-rel': '../../../../../nonexistent', // relative, escaping, leads nowhere
  'a/loop': 'loop', // a loop
  'a/b/c/near': '/a/b/near-target', // absolute, to a file close by
};

/** `ls -A /` of such a container. */
const ROOT_LISTING = ['a', 'bin', 'dev', 'etc', 'evil', 'hl', 'proc', 'root', 'sys', 'tmp', 'usr', 'var'];

async function addContainerFiles(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'a/b/c'), { recursive: true });
  for (const [p, target] of Object.entries(CONTAINER_LINKS)) await symlink(target, path.join(dir, p));
  await writeFile(path.join(dir, 'a/b/near-target'), 'near\n');
  await mkdir(path.join(dir, 'hl'));
  await writeFile(path.join(dir, 'hl/one'), 'same content\n');
  await link(path.join(dir, 'hl/one'), path.join(dir, 'hl/two'));
  await writeFile(path.join(dir, 'hl/three'), 'same content\n'); // same bytes, another inode
}

/**
 * A container like startContainer's, but its root is a *recursive* bind of the rootfs, so a
 * mount below the rootfs (here: the nsview mount itself, bound to ROOTFS/mnt/nsview) comes along
 * into the container. The host's extra bind is removed once the container has its copy.
 */
async function startContainerSeeingView(
  t: Teardown,
  rootfs: string,
  mountpoint: string,
): Promise<{ pid: number; nsInode: number }> {
  const inView = path.join(rootfs, 'mnt/nsview');
  await sh(`mount --bind ${shq(mountpoint)} ${shq(inView)}`);
  const outer = 'mount --rbind "$0" "$0" && cd "$0" && pivot_root . . && exec /bin/busybox sh -c "$1"';
  const inner = 'umount -l . && cd / && echo nsview-container-ready && exec sleep 999999';
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', 'sh', '-c', outer, rootfs, inner]);
  t.teardown(() => s.kill());
  try {
    await waitForLine(s.child, s.stdout, /^nsview-container-ready$/, 15_000, () => s.stderr.all());
  } finally {
    await sh(`umount -l ${shq(inView)}`);
  }
  const pid = s.child.pid!;
  return { pid, nsInode: await nsInodeOf(pid) };
}

// ---------------------------------------------------------------------------------------------
// The shared world

interface Marked {
  nsInode: number;
  /** What `SPOT/marker` holds inside that namespace. */
  marker: string;
}

interface World {
  view: Nsview;
  mp: string;
  hostNs: number;
  hostHostname: string;
  a: Container & { fs: Rootfs };
  b: Container & { fs: Rootfs };
  /** The host directory on which each process-less namespace mounted its own tmpfs. */
  spot: string;
  pin: BindMountedNamespace & Marked;
  fd: FdHeldNamespace & Marked;
  nested: NestedBindMountedNamespace & Marked;
  thread: ThreadNamespace & Marked;
}

const scope = new CleanupScope();
let w: World;

test.before(async () => {
  const hostNs = await nsInodeOf('self');
  const hostHostname = await readFile('/etc/hostname', 'utf8');

  const fsA = await makeRootfs(path.join(await makeTmpfs(scope, 'rootfs-a'), 'root'));
  const fsB = await makeRootfs(path.join(await makeTmpfs(scope, 'rootfs-b'), 'root'));
  await addContainerFiles(fsA.dir);
  await addContainerFiles(fsB.dir);
  const a = { ...(await startContainer(scope, { rootfs: fsA, mountProc: true })), fs: fsA };
  const b = { ...(await startContainer(scope, { rootfs: fsB })), fs: fsB };

  const spot = path.join(makeTempDir(scope, 'spot'), 'at');
  await mkdir(spot);
  const marker = (kind: string) => `${kind} ${randomBytes(4).toString('hex')}`;
  const setupFor = (m: string) =>
    `mount -t tmpfs -o size=1m nsview-spot ${shq(spot)} && printf '%s\\n' ${shq(m)} > ${shq(`${spot}/marker`)}`;

  const pinMarker = marker('bindmount');
  const pin = { ...(await makeBindMountedNamespace(scope, { setup: setupFor(pinMarker) })), marker: `${pinMarker}\n` };
  const fdMarker = marker('fd');
  // makeFdHeldNamespace's own `setup` races with it (the helper kills the process as soon as
  // its namespace link changes, before the setup ran): set the namespace up through the fd.
  const fdNs = await makeFdHeldNamespace(scope);
  await run('nsenter', [`--mount=/proc/${fdNs.holderPid}/fd/${fdNs.fd}`, '--', 'sh', '-c', setupFor(fdMarker)]);
  const fd = { ...fdNs, marker: `${fdMarker}\n` };
  const nestedMarker = marker('nested');
  const nested = {
    ...(await makeNestedBindMountedNamespace(scope, { outer: 'process', setup: setupFor(nestedMarker) })),
    marker: `${nestedMarker}\n`,
  };
  const th = await makeThreadNamespace(scope, { tmpfsAt: spot });
  const thread = { ...th, marker: `thread ${th.tid}\n` };

  // Sandboxes are kept for a minute, so a test can rely on one being held after a read.
  const view = await startNsview(scope, { extraArgs: ['--idle-release', '60'] });
  w = { view, mp: view.mountpoint, hostNs, hostHostname, a, b, spot, pin, fd, nested, thread };
});

test.after.always(() => scope.cleanup());

/** Path of `rel` (relative to the namespace root) in namespace `ns`'s directory of the view. */
function v(ns: number | string, rel = ''): string {
  return rel === '' ? path.join(w.mp, String(ns)) : path.join(w.mp, String(ns), rel);
}

// ---------------------------------------------------------------------------------------------
// Tests

test('the top directory lists by-pid, by-id, raw, by-container, by-pod and every namespace, only namespace inodes besides them', async (t) => {
  const names = await ls(w.mp);
  const fixed = ['by-container', 'by-id', 'by-pid', 'by-pod', 'raw'];
  for (const f of fixed) t.true(names.includes(f), f);
  const nss = [w.hostNs, w.a.nsInode, w.b.nsInode, w.pin.nsInode, w.fd.nsInode, w.nested.nsInode, w.thread.nsInode];
  t.is(new Set(nss).size, nss.length, 'seven distinct namespaces');
  for (const ns of nss) t.true(names.includes(String(ns)), `${ns} listed`);
  t.deepEqual(
    names.filter((n) => !fixed.includes(n) && !/^[1-9]\d*$/.test(n)),
    [],
  );
  // Each is a directory (stat through the kernel, not just a name).
  t.deepEqual(await out('stat', ['-c', '%F', ...nss.map((ns) => v(ns))]), 'directory\n'.repeat(nss.length));
});

test('by-pid/PID is a symlink ../<namespace inode> that leads into it', async (t) => {
  const byPid = await ls(v('by-pid'));
  for (const pid of [w.a.pid, w.b.pid, process.pid, w.thread.pid, w.fd.holderPid])
    t.true(byPid.includes(String(pid)), `by-pid/${pid}`);
  t.is(await out('readlink', [v('by-pid', String(w.a.pid))]), `../${w.a.nsInode}\n`);
  t.is(await out('readlink', [v('by-pid', String(w.b.pid))]), `../${w.b.nsInode}\n`);
  t.is(await out('readlink', [v('by-pid', String(process.pid))]), `../${w.hostNs}\n`);
  // The thread's process and the fd holder live in the host namespace themselves.
  t.is(await out('readlink', [v('by-pid', String(w.thread.pid))]), `../${w.hostNs}\n`);
  t.is(await out('readlink', [v('by-pid', String(w.fd.holderPid))]), `../${w.hostNs}\n`);
  t.is(await out('cat', [v('by-pid', `${w.a.pid}/etc/hostname`)]), `${w.a.fs.hostname}\n`);
});

test('a pivot_root container shows its own files, not the host’s', async (t) => {
  t.not(`${w.a.fs.hostname}\n`, w.hostHostname);
  t.is(await out('cat', [v(w.a.nsInode, 'etc/hostname')]), `${w.a.fs.hostname}\n`);
  t.is(await out('cat', [v(w.b.nsInode, 'etc/hostname')]), `${w.b.fs.hostname}\n`);
  t.regex(await out('cat', [v(w.a.nsInode, 'etc/os-release')]), /^ID=nsview-test$/m);
  t.deepEqual(await ls(v(w.a.nsInode)), ROOT_LISTING);
  // The host namespace's directory shows the host's file.
  t.is(await out('cat', [v(w.hostNs, 'etc/hostname')]), w.hostHostname);
  // Big binary read whole and byte-exact.
  const [viewSum, hostSum] = await Promise.all([
    out('sha256sum', ['-b', v(w.a.nsInode, 'bin/busybox')]),
    out('sha256sum', ['-b', path.join(w.a.fs.dir, 'bin/busybox')]),
  ]);
  t.is(viewSum.split(' ')[0], hostSum.split(' ')[0]);
});

// The thread's namespace has a task (not a process); the others have none: nsview reads them
// through a sandbox task.
for (const kind of ['pin', 'fd', 'nested', 'thread'] as const) {
  test(`namespace without a process of its own (${kind}) appears and shows its own tmpfs marker`, async (t) => {
    const ns = w[kind];
    const file = kind === 'thread' ? 'nsview-thread-marker' : 'marker';
    t.is(await out('cat', [v(ns.nsInode, path.join(w.spot, file))]), ns.marker);
    t.deepEqual(await ls(v(ns.nsInode, w.spot)), [file]);
    // Its root is the host's root filesystem otherwise: same /etc/hostname.
    t.is(await out('cat', [v(ns.nsInode, 'etc/hostname')]), w.hostHostname);
    // The host namespace has no tmpfs there.
    t.deepEqual(await ls(v(w.hostNs, w.spot)), []);
  });
}

test('an absolute symlink inside the container reads the container’s file, not the host’s', async (t) => {
  t.not(`${w.a.fs.hostname}\n`, w.hostHostname);
  t.is(await out('cat', [v(w.a.nsInode, 'evil')]), `${w.a.fs.hostname}\n`);
  t.is(await out('cat', [v(w.a.nsInode, 'a/etcdir/hostname')]), `${w.a.fs.hostname}\n`);
  // Through by-pid too.
  t.is(await out('cat', [v('by-pid', `${w.a.pid}/evil`)]), `${w.a.fs.hostname}\n`);
});

test('rewrite: absolute, escaping-relative and chained links read the container’s file; targets stay inside', async (t) => {
  const expected: Record<string, string> = {
    evil: 'etc/hostname',
    'a/b/c/rel': '../../../etc/hostname',
    'a/b/c/chain-rel-abs': '../../../etc/hostname',
    'a/b/c/chain-abs-rel': '../../../etc/hostname',
    'a/etcdir': '../etc',
    'a/b/c/near': '../near-target',
  };
  for (const [p, target] of Object.entries(expected)) {
    t.is(await out('readlink', [v(w.a.nsInode, p)]), `${target}\n`, `readlink ${p}`);
    // The target is relative and, resolved by the host's kernel, stays in the namespace dir.
    const real = (await out('realpath', ['-e', v(w.a.nsInode, p)])).trim();
    t.is(real, path.resolve(path.dirname(v(w.a.nsInode, p)), target), `realpath ${p}`);
    t.true(real.startsWith(`${v(w.a.nsInode)}/`), `realpath ${p}`);
    if (p !== 'a/etcdir' && p !== 'a/b/c/near')
      t.is(await out('cat', [v(w.a.nsInode, p)]), `${w.a.fs.hostname}\n`, `cat ${p}`);
  }
  t.is(await out('cat', [v(w.a.nsInode, 'a/b/c/near')]), 'near\n');

  // Links that lead nowhere still never point out of the namespace's directory.
  const dangling: Record<string, string> = {
    'a/b/dangling-abs': '../../nonexistent/nsview-dangling',
    'a/b/dangling-rel': '../../nonexistent',
    'a/loop': 'loop',
  };
  for (const [p, expectedTarget] of Object.entries(dangling)) {
    const target = (await out('readlink', [v(w.a.nsInode, p)])).replace(/\n$/, '');
    t.is(target, expectedTarget, p);
    const resolved = path.resolve(path.dirname(v(w.a.nsInode, p)), target);
    t.true(resolved.startsWith(`${v(w.a.nsInode)}/`), `${p} -> ${target}`);
    t.not((await attempt('cat', [v(w.a.nsInode, p)])).code, 0);
  }
  // The stored targets are untouched (this is the view's doing, not the rootfs').
  for (const [p, target] of Object.entries(CONTAINER_LINKS))
    t.is(await out('readlink', [path.join(w.a.fs.dir, p)]), `${target}\n`);
});

test('rewrite: st_size of a link is the length of the target readlink shows', async (t) => {
  const links = Object.keys(CONTAINER_LINKS).map((p) => v(w.a.nsInode, p));
  const sizes = (await out('stat', ['-c', '%s', ...links])).trim().split('\n').map(Number);
  const shown = await Promise.all(links.map(async (l) => (await run('readlink', [l])).stdoutBuffer.length - 1));
  t.deepEqual(sizes, shown);
});

test('hardlinks share st_ino; distinct files never do, also across filesystems of two namespaces', async (t) => {
  const files = [
    'hl/one',
    'hl/two',
    'hl/three',
    'etc/hostname',
    'etc/os-release',
    'etc/passwd',
    'bin/busybox',
    'a/b/c',
    'evil',
  ];
  const [viewA, viewB, srcA, srcB] = await Promise.all([
    inodes(files.map((f) => v(w.a.nsInode, f))),
    inodes(files.map((f) => v(w.b.nsInode, f))),
    out('stat', ['-c', '%d:%i', ...files.map((f) => path.join(w.a.fs.dir, f))]),
    out('stat', ['-c', '%d:%i', ...files.map((f) => path.join(w.b.fs.dir, f))]),
  ]);
  // Hardlinks: one inode in the view, with its link count.
  t.is(viewA[0], viewA[1]);
  t.is(await out('stat', ['-c', '%h', v(w.a.nsInode, 'hl/two')]), '2\n');
  // The two rootfs are two tmpfs filled in the same order: same source inode numbers, different
  // devices. This is what gives the cross-namespace check its teeth.
  const sa = srcA.trim().split('\n');
  const sb = srcB.trim().split('\n');
  t.deepEqual(
    sa.map((s) => s.split(':')[1]),
    sb.map((s) => s.split(':')[1]),
    'same source inode numbers',
  );
  t.not(sa[0]!.split(':')[0], sb[0]!.split(':')[0], 'different source devices');
  // In the view: equal st_ino exactly when the source (dev, ino) is equal.
  const all = [
    ...viewA.map((ino, i) => ({ ino, src: sa[i]!, name: `A:${files[i]}` })),
    ...viewB.map((ino, i) => ({ ino, src: sb[i]!, name: `B:${files[i]}` })),
  ];
  for (const x of all) {
    for (const y of all) {
      if (x.name < y.name) t.is(x.ino === y.ino, x.src === y.src, `${x.name} (${x.ino}) vs ${y.name} (${y.ino})`);
    }
  }
  // And a file of the host namespace (another filesystem again) is not any of them.
  const [hostIno] = await inodes([v(w.hostNs, 'etc/hostname')]);
  t.false(all.some((x) => x.ino === hostIno));
});

// Issue 5: caches never show data staler than --attr-timeout (1 s here). A file is read through
// the view (its pages then stay cached across opens), changed inside the container (same size,
// then longer), and each change must show within the timeout plus scheduling slack; likewise a
// new name in a directory listed before. With the kernel's caches kept for longer (the 60 s
// entry/attr timeouts of a careless daemon), every wait here would time out.
test('a change inside the container shows through the view within --attr-timeout: contents, size, listing', async (t) => {
  const ATTR_TIMEOUT_MS = 1000;
  const BOUND_MS = ATTR_TIMEOUT_MS + 1000;
  const name = `changing-${randomBytes(3).toString('hex')}`;
  const inside = path.join(w.a.fs.dir, 'tmp', name); // the container's own file, written from outside
  const through = v(w.a.nsInode, `tmp/${name}`);
  t.teardown(() => rm(inside, { force: true }));
  await writeFile(inside, 'version 1\n');
  t.is(await out('cat', [through]), 'version 1\n');
  t.is(await out('cat', [through]), 'version 1\n');
  const took: string[] = [];
  for (const next of ['version 2\n', 'version 3, longer\n']) {
    await writeFile(inside, next);
    const t0 = performance.now();
    await waitFor(`the view to show ${JSON.stringify(next)}`, async () => (await out('cat', [through])) === next, {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    const ms = performance.now() - t0;
    took.push(`${JSON.stringify(next)} after ${Math.round(ms)} ms`);
    t.true(ms <= BOUND_MS, `${JSON.stringify(next)} showed after ${Math.round(ms)} ms (bound ${BOUND_MS})`);
  }
  const dir = v(w.a.nsInode, 'tmp');
  const added = `${name}-new`;
  t.false((await ls(dir)).includes(added));
  t.teardown(() => rm(path.join(w.a.fs.dir, 'tmp', added), { force: true }));
  await writeFile(path.join(w.a.fs.dir, 'tmp', added), 'new\n');
  const t0 = performance.now();
  await waitFor('the new name to be listed', async () => (await ls(dir)).includes(added), {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  const ms = performance.now() - t0;
  took.push(`new name listed after ${Math.round(ms)} ms`);
  t.true(ms <= BOUND_MS, `listed after ${Math.round(ms)} ms (bound ${BOUND_MS})`);
  t.log(took.join('; '));
});

test('--passthrough: an opened regular file is read by the kernel from the container’s file: right bytes, overlapping opens, no READ', async (t) => {
  const pt = await startNsview(t, { extraArgs: ['--passthrough'] });
  const name = `big-${randomBytes(3).toString('hex')}`;
  const inside = path.join(w.a.fs.dir, 'tmp', name);
  const data = randomBytes(3 << 20);
  t.teardown(() => rm(inside, { force: true }));
  await writeFile(inside, data);
  const through = path.join(pt.mountpoint, String(w.a.nsInode), 'tmp', name);
  const before = await daemonStats(pt);
  const held = await open(through, 'r');
  try {
    const first = Buffer.alloc(1 << 20);
    t.is((await held.read(first, 0, first.length, 1 << 20)).bytesRead, first.length);
    t.true(first.equals(data.subarray(1 << 20, 2 << 20)), 'a block read through the held open');
    // A second open of the same file while the first is open: the kernel requires the same mode.
    t.true((await readFile(through)).equals(data), 'the whole file through a second open');
    const during = await daemonStats(pt);
    t.true((during.view.passedThrough ?? 0) >= 1, `the file is passed through (${JSON.stringify(during.view)})`);
    t.is(during.requests.READ ?? 0, before.requests.READ ?? 0, 'no READ request reached the daemon');
  } finally {
    await held.close();
  }
  // A file that changes keeps showing the container's bytes.
  const changed = Buffer.from(data);
  changed.fill(7, 0, 4096);
  await writeFile(inside, changed);
  await waitFor('the change to show', async () => (await readFile(through)).equals(changed), {
    timeoutMs: 5_000,
    intervalMs: 50,
  });
  await waitFor(
    'backing ids dropped after the last close',
    async () => (await daemonStats(pt)).view.passedThrough === 0,
    { timeoutMs: 5_000, intervalMs: 50 },
  );
});

test('writes fail with EROFS and change nothing', async (t) => {
  const ctr = v(w.a.nsInode);
  const attempts: Array<[string, string[]]> = [
    ['touch', [`${ctr}/newfile`]],
    ['touch', [`${ctr}/etc/hostname`]],
    ['sh', ['-c', `echo x > ${shq(`${ctr}/etc/hostname`)}`]],
    ['sh', ['-c', `echo x >> ${shq(`${ctr}/etc/hostname`)}`]],
    ['mkdir', [`${ctr}/newdir`]],
    ['rm', ['-f', `${ctr}/etc/hostname`]],
    ['rmdir', [`${ctr}/tmp`]],
    ['mv', [`${ctr}/etc/hostname`, `${ctr}/etc/moved`]],
    ['ln', ['-s', 'x', `${ctr}/newlink`]],
    ['chmod', ['000', `${ctr}/etc/hostname`]],
    ['touch', [v(w.pin.nsInode, `${w.spot}/new`)]],
  ];
  for (const [file, args] of attempts) {
    const r = await attempt(file, args);
    t.not(r.code, 0, `${file} ${args.join(' ')}`);
    t.regex(r.stderr, /Read-only file system/, `${file} ${args.join(' ')}`);
  }
  t.is(await readFile(path.join(w.a.fs.dir, 'etc/hostname'), 'utf8'), `${w.a.fs.hostname}\n`);
  t.deepEqual(await ls(v(w.a.nsInode)), ROOT_LISTING);
  t.is(await out('cat', [v(w.pin.nsInode, `${w.spot}/marker`)]), w.pin.marker);
});

test('a pseudo filesystem (/proc of the container) is an empty directory without --pseudo', async (t) => {
  t.is(await out('stat', ['-c', '%F', v(w.a.nsInode, 'proc')]), 'directory\n');
  t.deepEqual(await ls(v(w.a.nsInode, 'proc')), []);
  t.is((await attempt('cat', [v(w.a.nsInode, 'proc/meminfo')])).code, 1);
  // The host's own kernel filesystems too.
  t.deepEqual(await ls(v(w.hostNs, 'proc')), []);
  t.deepEqual(await ls(v(w.hostNs, 'sys')), []);
  // The container really has /proc mounted.
  t.regex((await w.a.exec('cat /proc/meminfo')).stdout, /^MemTotal:/m);
});

test('with --pseudo, /proc of the container shows its entries', async (t) => {
  const pseudo = await startNsview(t, { pseudo: true });
  const proc = path.join(pseudo.mountpoint, String(w.a.nsInode), 'proc');
  const names = await ls(proc);
  for (const n of ['meminfo', 'cpuinfo', 'self', 'version', '1']) t.true(names.includes(n), `proc/${n}`);
  t.true(names.includes(String(w.a.pid)), 'the container’s own pid');
  // Still a read-only view.
  t.regex((await attempt('touch', [path.join(proc, 'x')])).stderr, /Read-only file system/);
  // Other files of the same namespace are unchanged by --pseudo.
  t.is(await out('cat', [path.join(pseudo.mountpoint, String(w.a.nsInode), 'etc/hostname')]), `${w.a.fs.hostname}\n`);
});

test('a pid or namespace that appears after the first listing is listed within seconds', async (t) => {
  for (let round = 1; round <= 3; round++) {
    t.true((await ls(v('by-pid'))).includes(String(process.pid))); // listed (and cached) first
    t.true((await ls(w.mp)).includes('by-pid'));
    const c = await startContainer(t);
    const known = async () => (await attempt('readlink', [v('by-pid', String(c.pid))])).stdout === `../${c.nsInode}\n`;
    await waitFor('the new pid to be found by name', known, { timeoutMs: 10_000 });
    const listedWithin = (dir: string, name: string) =>
      waitFor(`${name} in ls ${dir}`, async () => (await ls(dir)).includes(name), { timeoutMs: 3_000 }).catch(
        () => false,
      );
    const pidListed = await listedWithin(v('by-pid'), String(c.pid));
    t.true(pidListed, `round ${round}: ls by-pid lists ${c.pid}`);
    const nsListed = pidListed && (await listedWithin(w.mp, String(c.nsInode)));
    if (pidListed) t.true(nsListed, `round ${round}: ls ${w.mp} lists ${c.nsInode}`);
    await c.stop();
    if (!pidListed || !nsListed) return;
  }
});

test('a namespace that dies vanishes from the view, and its pid from by-pid', async (t) => {
  const c = await startContainer(t);
  await waitFor(
    'the new namespace to be found by name',
    async () => (await attempt('stat', [v(c.nsInode)])).code === 0,
    { timeoutMs: 10_000 },
  );
  t.is(await out('cat', [v(c.nsInode, 'etc/hostname')]), `${c.hostname}\n`);
  t.is(await out('readlink', [v('by-pid', String(c.pid))]), `../${c.nsInode}\n`);
  const inode = c.nsInode;
  await c.stop();
  // Namespace inode numbers are reused at once (by any new namespace on the host), so the name
  // may come back as another namespace: what must go is this container's content.
  await waitFor(
    'the dead namespace to vanish',
    async () => {
      const r = await attempt('cat', [v(inode, 'etc/hostname')]);
      return r.stdout !== `${c.hostname}\n`;
    },
    { timeoutMs: 10_000 },
  );
  // by-pid follows at the next discovery pass.
  await waitFor(
    'the dead pid to leave by-pid',
    async () => (await attempt('readlink', ['-v', v('by-pid', String(c.pid))])).code !== 0,
    { timeoutMs: 5_000 },
  );
  const gone = await attempt('readlink', ['-v', v('by-pid', String(c.pid))]);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /No such file or directory/);
});

test('the view’s own mount inside a container is an empty directory and find terminates', async (t) => {
  const rootfs = await makeRootfs(path.join(makeTempDir(t, 'rootfs-self'), 'root'));
  await mkdir(path.join(rootfs.dir, 'mnt/nsview'), { recursive: true });
  const c = await startContainerSeeingView(t, rootfs.dir, w.mp);
  // The container really has the view mounted (the same FUSE connection as the daemon's).
  const own = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === w.mp)!;
  const inCtr = (await readFile(`/proc/${c.pid}/mountinfo`, 'utf8'))
    .split('\n')
    .find((l) => l.split(' ')[4] === '/mnt/nsview');
  t.truthy(inCtr, 'the container sees a mount on /mnt/nsview');
  t.is(inCtr!.split(' ')[2], own.split(' ')[2], 'same device as the daemon’s mount');

  // It is found within a few discovery passes (looked up by name: see the listing test below).
  await waitFor('the new container in the view', async () => (await attempt('stat', [v(c.nsInode)])).code === 0, {
    timeoutMs: 10_000,
  });
  t.is(await out('cat', [v(c.nsInode, 'etc/hostname')]), `${rootfs.hostname}\n`);
  t.is(await out('stat', ['-c', '%F', v(c.nsInode, 'mnt/nsview')]), 'directory\n');
  t.deepEqual(await ls(v(c.nsInode, 'mnt/nsview')), []);
  const r = await run('find', [v(c.nsInode)], { timeoutMs: 60_000, check: false });
  t.false(r.timedOut);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  t.true(lines.includes(v(c.nsInode, 'mnt/nsview')));
  t.deepEqual(
    lines.filter((l) => l.startsWith(`${v(c.nsInode, 'mnt/nsview')}/`)),
    [],
  );
  t.true(lines.includes(v(c.nsInode, 'bin/busybox')));
  t.true(lines.length < 200, `${lines.length} entries`);
});

interface ListRow {
  id?: string;
  inode: number;
  source: string;
  pids: number[];
  threads: Array<{ pid: number; tid?: number }>;
  ref: string[];
}

async function listJson(): Promise<ListRow[]> {
  const r = await runNsview(['list', '--json']);
  if (r.code !== 0 || r.stderr !== '') throw new Error(`nsview list --json: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as ListRow[];
}

test('nsview list --json: every kind of namespace with its source and pids', async (t) => {
  // Fresh namespaces that nothing has read through a view (so no sandbox task is in them).
  const c = await startContainer(t);
  const pin = await makeBindMountedNamespace(t);
  const fd = await makeFdHeldNamespace(t);
  const nested = await makeNestedBindMountedNamespace(t, { outer: 'process' });
  const th = await makeThreadNamespace(t);
  const rows = await listJson();
  const row = (ns: number) => rows.find((x) => x.inode === ns);
  const check = (label: string, ns: number, expected: Omit<ListRow, 'inode' | 'id'>) => {
    const x = row(ns);
    if (!x) return t.fail(`${label}: ${ns} missing from nsview list --json`);
    t.deepEqual({ source: x.source, pids: x.pids, threads: x.threads, ref: x.ref }, expected, label);
  };
  // "id": the kernel's never-reused id as a decimal string, the one its ns link gives.
  for (const [label, ns, link] of [
    ['container', c.nsInode, `/proc/${c.pid}/ns/mnt`],
    ['bind mount', pin.nsInode, pin.file],
    ['thread', th.nsInode, `/proc/${th.pid}/task/${th.tid}/ns/mnt`],
  ] as const) {
    t.is(row(ns)?.id, String(mountNamespaceIdentityAt(link).id), `${label} id`);
  }
  const host = row(w.hostNs);
  t.is(host?.source, 'process');
  t.true(host?.pids.includes(process.pid));
  check('container', c.nsInode, { source: 'process', pids: [c.pid], threads: [], ref: [`/proc/${c.pid}/ns/mnt`] });
  check('thread', th.nsInode, {
    source: 'thread',
    pids: [],
    threads: [{ pid: th.pid, tid: th.tid }],
    ref: [`/proc/${th.pid}/task/${th.tid}/ns/mnt`],
  });
  check('fd', fd.nsInode, { source: 'fd', pids: [], threads: [], ref: [`/proc/${fd.holderPid}/fd/${fd.fd}`] });
  check('bind mount', pin.nsInode, { source: 'bindmount', pids: [], threads: [], ref: [pin.file] });
  check('nested bind mount', nested.nsInode, {
    source: 'bindmount',
    pids: [],
    threads: [],
    ref: [`/proc/${nested.outer.pid}/ns/mnt`, nested.innerPath],
  });
  // The namespaces of the shared view too (each was created by a helper above).
  for (const [label, ns] of [
    ['a', w.a.nsInode],
    ['b', w.b.nsInode],
    ['pin', w.pin.nsInode],
    ['fd', w.fd.nsInode],
    ['nested', w.nested.nsInode],
    ['thread', w.thread.nsInode],
  ] as const) {
    t.truthy(row(ns), `${label} listed`);
  }
  // The plain listing agrees.
  const plain = await runNsview(['list']);
  t.is(plain.code, 0, plain.stderr);
  // (After the source: the container column, `-` for namespaces no engine claims.)
  t.regex(plain.stdout, new RegExp(`^mnt:\\[${pin.nsInode}\\] id=\\d+ bindmount - .*ref=${pin.file}$`, 'm'));
  t.regex(plain.stdout, new RegExp(`^mnt:\\[${c.nsInode}\\] id=\\d+ process +- pids=${c.pid} `, 'm'));
  t.regex(plain.stdout, new RegExp(`^mnt:\\[${fd.nsInode}\\] id=\\d+ fd +- ref=/proc/${fd.holderPid}/fd/3$`, 'm'));
});

test('a namespace pinned at a path that is not UTF-8 (and has a space) is found, listed and readable', async (t) => {
  // The pin's file name: "pin x" then the bytes e9 ff (Latin-1 "éÿ", not UTF-8). mountinfo shows
  // the space as \040 and the bytes raw; discovery must keep them as bytes to open the pin.
  const dir = makeTempDir(t, 'pin-bytes');
  await sh(`mount --bind ${shq(dir)} ${shq(dir)} && mount --make-private ${shq(dir)}`);
  t.teardown(() => removeTree(dir));
  const marker = `bytes-${randomBytes(4).toString('hex')}`;
  const setup = `mount -t tmpfs -o size=1m nsview-spot ${shq(w.spot)} && printf '%s\\n' ${shq(marker)} > ${shq(`${w.spot}/marker`)}`;
  await sh(
    `f=${shq(dir)}/"$(printf 'pin x\\351\\377')" && touch "$f" && unshare --mount="$f" --propagation private sh -c ${shq(setup)}`,
  );
  const name = (await readdir(dir, { encoding: 'buffer' })).find((n) => n.toString('latin1').startsWith('pin'));
  t.deepEqual(name, Buffer.from([...Buffer.from('pin x'), 0xe9, 0xff]));
  const nsInode = Number((await stat(Buffer.concat([Buffer.from(`${dir}/`), name!]))).ino);
  // Discovery passes run every second; the sandbox reaches it through the pin's exact bytes.
  await waitFor(`namespace ${nsInode} in the view`, async () => (await ls(w.mp)).includes(String(nsInode)), {
    timeoutMs: 10_000,
  });
  t.is(await out('cat', [v(nsInode, `${w.spot}/marker`)]), `${marker}\n`);
  // nsview list shows the path as text: the bytes that are not UTF-8 as U+FFFD.
  const row = (await listJson()).find((x) => x.inode === nsInode);
  t.deepEqual(row?.ref, [`${dir}/pin x\ufffd\ufffd`]);
  t.is(row?.source, 'bindmount');
});

test('nsview list --json while the daemon holds sandboxes: sources are still fd and bindmount', async (t) => {
  // Reading through the view makes the daemon start (and keep, for --idle-release) a sandbox.
  t.is(await out('cat', [v(w.fd.nsInode, `${w.spot}/marker`)]), w.fd.marker);
  t.is(await out('cat', [v(w.pin.nsInode, `${w.spot}/marker`)]), w.pin.marker);
  const rows = await listJson();
  const fd = rows.find((x) => x.inode === w.fd.nsInode);
  const pin = rows.find((x) => x.inode === w.pin.nsInode);
  t.deepEqual({ source: fd?.source, pids: fd?.pids, threads: fd?.threads }, { source: 'fd', pids: [], threads: [] });
  t.deepEqual(
    { source: pin?.source, pids: pin?.pids, threads: pin?.threads },
    { source: 'bindmount', pids: [], threads: [] },
  );
});

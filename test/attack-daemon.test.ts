/**
 * Containment attacks, part 5: the daemon's own descriptors, processes and ways into namespaces.
 *
 * - Every fd the daemon holds (besides the inherited stdio) is O_CLOEXEC, while files,
 *   directories and sandboxes are in use: nothing can leak into a process it would start.
 * - nsview never creates a process: watched during the whole run, no process has the daemon as
 *   parent; sandboxes are threads of the daemon, in the namespace they serve, and go away after
 *   --idle-release.
 * - A recycled PID never redirects a namespace's directory: the process a namespace was reached
 *   through is killed (the namespace lives on, pinned), a process of another namespace is
 *   started, with the same PID when ns_last_pid allows it; the old directory then shows the old
 *   namespace's files or ENOENT, never the new namespace's.
 */
import test from 'ava';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  makeBindMountedNamespace,
  makeRootfs,
  makeTempDir,
  nsInodeOf,
  pidAlive,
  removeTree,
  run,
  sh,
  shq,
  sleep,
  spawnLongLived,
  startContainer,
  startNsview,
  waitFor,
  waitForLine,
  type Container,
} from './helpers/index.js';
import { probe, probe1, show, type ProbeResult } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
test.after.always(() => scope.cleanup());

/** Processes whose parent is `pid`, seen by polling /proc until stop() (cheap: ~100 entries). */
function watchChildren(pid: number): { stop: () => Promise<string[]> } {
  const seen = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const e of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(e)) continue;
        const st = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
        const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
        if (Number(rest[1]) === pid) seen.add(`${e} ${st.slice(st.indexOf('('), st.lastIndexOf(')') + 1)}`);
      }
      await sleep(30);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return [...seen];
    },
  };
}

const FDINFO_PY = String.raw`
import os, sys, json
pid = sys.argv[1]; out = []
for fd in sorted(os.listdir('/proc/%s/fd' % pid), key=int):
    try:
        target = os.readlink('/proc/%s/fd/%s' % (pid, fd))
        flags = [l for l in open('/proc/%s/fdinfo/%s' % (pid, fd)).read().split('\n') if l.startswith('flags:')][0].split()[1]
        out.append([int(fd), target, int(flags, 8)])
    except OSError:
        pass
print(json.dumps(out))
`;

test('every daemon fd is O_CLOEXEC; no child process; sandboxes are threads that go away', async (t) => {
  const c = await startContainer(scope, { mountProc: true });
  const pinned = await makeBindMountedNamespace(scope, {
    setup: `mount -t tmpfs nsview-atk ${shq(makeTempDir(scope, 'atk-pinmark'))}`,
  });
  const d = await startNsview(scope, { extraArgs: ['--idle-release', '1'] });
  const watch = watchChildren(d.pid);
  scope.teardown(() => watch.stop());
  const hostNs = await nsInodeOf('self');

  // Use the view: a container (through /proc/PID/root), a process-less namespace (a sandbox),
  // files and directories held open by a reader, symlinks, listings.
  const holder = spawnLongLived([
    'python3',
    '-c',
    `import os, sys, time
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
print('open', flush=True)
time.sleep(60)`,
    `${d.mountpoint}/${c.nsInode}/etc/hostname`,
    `${d.mountpoint}/${c.nsInode}/etc`,
    `${d.mountpoint}/${pinned.nsInode}/etc/hostname`,
    `${d.mountpoint}/${pinned.nsInode}/etc`,
  ]);
  scope.teardown(() => holder.kill());
  await waitForLine(holder.child, holder.stdout, /^open$/, 20_000, () => holder.stderr.all());
  await probe([
    { op: 'listdir', path: `${d.mountpoint}/${c.nsInode}/bin` },
    { op: 'readlink', path: `${d.mountpoint}/${c.nsInode}/bin/sh` },
    { op: 'listdir', path: `${d.mountpoint}/by-pid` },
    { op: 'read', path: `${d.mountpoint}/${pinned.nsInode}/etc/os-release` },
  ]);

  const fds = JSON.parse((await run('python3', ['-c', FDINFO_PY, String(d.pid)])).stdout) as Array<
    [number, string, number]
  >;
  const O_CLOEXEC = 0o2000000;
  // fds this test process itself has without O_CLOEXEC were inherited through it (e.g. from
  // whatever started the test run), not opened by nsview.
  const ours = JSON.parse((await run('python3', ['-c', FDINFO_PY, String(process.pid)])).stdout) as Array<
    [number, string, number]
  >;
  const inherited = new Set(ours.filter(([, , fl]) => (fl & O_CLOEXEC) === 0).map(([fd, tgt]) => `${fd} ${tgt}`));
  const leaky = fds.filter(([fd, tgt, flags]) => fd > 2 && (flags & O_CLOEXEC) === 0 && !inherited.has(`${fd} ${tgt}`));
  if (inherited.size > 0) t.log(`inherited by the test run itself (ignored): ${[...inherited].join(', ')}`);
  t.log(
    `${fds.length} fds; kinds: ${[...new Set(fds.map(([, tgt]) => tgt.replace(/\d+/g, 'N').replace(/^\/proc\/N\/.*/, '/proc/N/...')))].join(' ')}`,
  );
  t.deepEqual(leaky, [], 'fds without O_CLOEXEC');
  t.true(
    fds.some(([, tgt]) => tgt === '/dev/fuse'),
    'no /dev/fuse fd seen',
  );

  // Threads: all in the host namespace except the sandbox(es), which are in the process-less
  // namespace only (the container is reached through its own process).
  const threadNs = async () => {
    const out: number[] = [];
    for (const tid of await readdir(`/proc/${d.pid}/task`).catch(() => [] as string[])) {
      const l = await readlink(`/proc/${d.pid}/task/${tid}/ns/mnt`).catch(() => '');
      const m = /\[(\d+)\]/.exec(l);
      if (m) out.push(Number(m[1]));
    }
    return out;
  };
  const during = await threadNs();
  const foreign = during.filter((n) => n !== hostNs);
  t.log(`threads: ${during.length}, outside the host namespace: ${JSON.stringify(foreign)}`);
  t.true(foreign.length >= 1 && foreign.every((n) => n === pinned.nsInode), `threads in ${JSON.stringify(foreign)}`);
  t.false(foreign.includes(c.nsInode), 'a sandbox was made for a namespace that has a process');

  // Released when idle (files closed first).
  await holder.kill();
  const t0 = Date.now();
  const seenNs: string[] = [];
  const gone = await waitFor(
    'sandbox threads to go',
    async () => {
      const now = await threadNs();
      seenNs.push(`${Date.now() - t0}ms:${JSON.stringify(now.filter((n) => n !== hostNs))}/${now.length}`);
      return now.every((n) => n === hostNs);
    },
    { timeoutMs: 15_000, intervalMs: 500 },
  ).catch(() => false);
  t.true(gone, `sandbox threads still there: ${seenNs.join(' ')}`);
  const children = await watch.stop();
  t.deepEqual(children, [], 'nsview started processes');
});

test('a recycled PID never redirects a namespace directory to another namespace', async (t) => {
  const dir = makeTempDir(scope, 'atk-pid');
  const rootA = await makeRootfs(path.join(dir, 'a'), { hostname: 'namespace-A' });
  const rootB = await makeRootfs(path.join(dir, 'b'), { hostname: 'namespace-B' });
  await writeFile(path.join(rootA.dir, 'marker'), 'MARKER-A\n');
  await writeFile(path.join(rootB.dir, 'marker'), 'MARKER-B\n');
  const a = await startContainer(scope, { rootfs: rootA });
  // Keep A alive after its only process is gone: an nsfs bind mount on a private mount.
  const pins = path.join(dir, 'pins');
  await mkdir(pins);
  await sh(
    `mount --bind ${shq(pins)} ${shq(pins)} && mount --make-private ${shq(pins)} && touch ${shq(`${pins}/a`)} && mount --bind /proc/${a.pid}/ns/mnt ${shq(`${pins}/a`)}`,
  );
  scope.teardown(() => removeTree(pins));
  const d = await startNsview(scope);
  const A = `${d.mountpoint}/${a.nsInode}`;

  // Reached through A's process; the kernel caches the entries; a file and a directory stay open.
  t.is((await probe1('read', `${A}/marker`)).data?.toString(), 'MARKER-A\n');
  const held = spawnLongLived([
    'python3',
    '-c',
    `import os, sys
f = os.open(sys.argv[1], os.O_RDONLY); dfd = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
print('open', flush=True)
import time; time.sleep(1)
while True:
    line = os.pread(f, 100, 0); names = sorted(os.listdir(dfd))
    print(line.decode().strip(), 'marker' in names, flush=True)
    time.sleep(0.2)`,
    `${A}/marker`,
    A,
  ]);
  scope.teardown(() => held.kill());
  await waitForLine(held.child, held.stdout, /^open$/, 20_000, () => held.stderr.all());

  const P = a.pid;
  await a.stop();
  await waitFor('the old process to be reaped', () => !pidAlive(P), { timeoutMs: 10_000 });
  // Start B, with A's old PID if ns_last_pid lets us have it (others may fork meanwhile).
  let b: Container | undefined;
  for (let attempt = 0; attempt < 25 && b === undefined; attempt++) {
    await writeFile('/proc/sys/kernel/ns_last_pid', String(P - 1)).catch(() => {});
    const c = await startContainer(scope, { rootfs: rootB });
    if (c.pid === P || attempt === 24) b = c;
    else await c.stop();
  }
  t.log(
    `old pid ${P}, new process ${b!.pid} in namespace ${b!.nsInode}${b!.pid === P ? ' (same pid)' : ' (pid not recycled)'}`,
  );
  t.not(b!.nsInode, a.nsInode);

  // For a few seconds (spanning discovery passes and cache timeouts), A's directory shows A or
  // nothing, and B's shows B.
  const outcomes: Record<string, number> = {};
  const deadline = Date.now() + 4_000;
  while (Date.now() < deadline) {
    const r = await probe([
      { op: 'read', path: `${A}/marker` },
      { op: 'read', path: `${A}/etc/hostname` },
      { op: 'listdir', path: A },
      { op: 'read', path: `${d.mountpoint}/${b!.nsInode}/marker` },
      { op: 'readlink', path: `${d.mountpoint}/by-pid/${P}` },
    ]);
    const k = `A:${show(r[0]!)} host:${show(r[1]!)} B:${show(r[3]!)} by-pid/${P}:${show(r[4]!)}`;
    outcomes[k] = (outcomes[k] ?? 0) + 1;
    t.true(!r[0]!.ok || r[0]!.data!.toString() === 'MARKER-A\n', `A's directory showed ${show(r[0]!)}`);
    t.true(!r[1]!.ok || r[1]!.data!.toString() === 'namespace-A\n', `A's directory showed ${show(r[1]!)}`);
    t.true(!r[2]!.ok || !r[2]!.names!.some((n) => n.toString() === 'nothing-here'), 'listing');
    t.is(r[3]!.data?.toString(), 'MARKER-B\n');
  }
  t.log(
    Object.entries(outcomes)
      .map(([k, v]) => `${v}x ${k}`)
      .join('\n'),
  );
  // The open file and directory kept answering with A's data.
  const lines = held.stdout
    .all()
    .split('\n')
    .filter((l) => l.startsWith('MARKER'));
  t.true(lines.length > 0);
  t.true(
    lines.every((l) => l === 'MARKER-A True'),
    lines.join(' | '),
  );
  // by-pid/P now leads to B's directory (after a discovery pass).
  await waitFor(
    'by-pid to follow the new process',
    async () => (await probe1('readlink', `${d.mountpoint}/by-pid/${b!.pid}`)).data?.toString() === `../${b!.nsInode}`,
    { timeoutMs: 10_000, intervalMs: 200 },
  );
  t.is((await probe1('read', `${d.mountpoint}/by-pid/${b!.pid}/marker`)).data?.toString(), 'MARKER-B\n');
  await held.kill();
});

/** Joins the container's mount namespace, then chroots into a detached copy of argv[2]. */
const DETACHED_PY = String.raw`
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
pid, fake = sys.argv[1], sys.argv[2].encode()
nsfd = os.open('/proc/%s/ns/mnt' % pid, os.O_RDONLY)
if libc.setns(nsfd, 0x20000) != 0: raise OSError(ctypes.get_errno(), 'setns')
# open_tree(AT_FDCWD, fake, OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the directory.
fd = libc.syscall(428, -100, ctypes.c_char_p(fake), 1 | 0x8000)
if fd < 0: raise OSError(ctypes.get_errno(), 'open_tree')
os.fchdir(fd)
if libc.chroot(b'.') != 0: raise OSError(ctypes.get_errno(), 'chroot')
print('chrooted', flush=True)
time.sleep(120)
`;

/** Opens the host's "/", joins the container's mount namespace, then chroots into the host fd. */
const HOSTROOT_PY = String.raw`
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
host = os.open('/', os.O_RDONLY | os.O_DIRECTORY)  # opened before joining: a host directory
nsfd = os.open('/proc/%s/ns/mnt' % sys.argv[1], os.O_RDONLY)
if libc.setns(nsfd, 0x20000) != 0: raise OSError(ctypes.get_errno(), 'setns')
os.fchdir(host)
if libc.chroot(b'.') != 0: raise OSError(ctypes.get_errno(), 'chroot')
print('chrooted', flush=True)
time.sleep(120)
`;

/**
 * A container whose only process has `root` as its root directory (set up by `attack`), seen
 * through a fresh daemon: what its namespace directory shows.
 */
async function rootSeenThrough(
  t: { log: (...a: unknown[]) => void },
  attack: 'busybox-chroot' | 'detached' | 'host-root',
  canaryDir: string,
): Promise<{ marker: ProbeResult; canary: ProbeResult }> {
  const dir = makeTempDir(scope, 'atk-chroot');
  const rootfs = await makeRootfs(path.join(dir, 'root'));
  await writeFile(path.join(rootfs.dir, 'marker'), 'REAL-ROOT\n');
  await mkdir(path.join(rootfs.dir, 'fake', 'bin'), { recursive: true });
  await writeFile(path.join(rootfs.dir, 'fake', 'marker'), 'FAKE-ROOT\n');
  const c = await startContainer(scope, {
    rootfs,
    setup: 'cp /bin/busybox /fake/bin/ && ln -s busybox /fake/bin/sleep',
  });
  const att =
    attack === 'busybox-chroot'
      ? spawnLongLived([
          'nsenter',
          '-t',
          String(c.pid),
          '-m',
          '-r',
          '-w',
          '--',
          '/bin/busybox',
          'sh',
          '-c',
          'echo chrooted; exec /bin/busybox chroot /fake /bin/sleep 120',
        ])
      : spawnLongLived(['python3', '-c', attack === 'detached' ? DETACHED_PY : HOSTROOT_PY, String(c.pid), '/fake']);
  scope.teardown(() => att.kill());
  await waitForLine(att.child, att.stdout, /^chrooted$/, 20_000, () => att.stderr.all());
  t.log(
    `${attack}: attacker ${att.child.pid} in ${await readlink(`/proc/${att.child.pid}/ns/mnt`)}, container ${c.nsInode}`,
  );
  // The attacker is now the only process of the namespace.
  await c.stop();
  const d = await startNsview(scope);
  try {
    const [marker, canary] = await probe([
      { op: 'read', path: `${d.mountpoint}/${c.nsInode}/marker` },
      { op: 'read', path: `${d.mountpoint}/${c.nsInode}${canaryDir}/secret` },
    ]);
    t.log(`${attack}: /marker ${show(marker!)}, host canary ${show(canary!)}`);
    return { marker: marker!, canary: canary! };
  } finally {
    await d.stop();
    await att.kill();
  }
}

test("a chrooted process is not taken as the namespace's root", async (t) => {
  const { marker, canary } = await rootSeenThrough(t, 'busybox-chroot', makeTempDir(scope, 'canary'));
  t.true(!marker.ok || marker.data!.toString() === 'REAL-ROOT\n', show(marker));
  t.false(canary.ok);
});

// Found by this suite, fixed in ddcf3f7: openTaskRoot accepted any root whose `..` is itself,
// so a process (CAP_SYS_ADMIN over its mount namespace: privileged or user-namespaced containers)
// chrooted into a detached copy of one of its directories (open_tree(OPEN_TREE_CLONE) + fchdir +
// chroot) became the namespace's root in the view once it was the only or first process: the
// real root's files vanished from scans and backups.
test('a process whose root is a detached copy of a directory does not replace the namespace root', async (t) => {
  const { marker, canary } = await rootSeenThrough(t, 'detached', makeTempDir(scope, 'canary'));
  t.true(!marker.ok || marker.data!.toString() === 'REAL-ROOT\n', show(marker));
  t.false(canary.ok);
});

// Found by this suite, fixed in ddcf3f7: same check, worse outcome: a process in the container's
// mount namespace whose root was the HOST's root directory (a held host fd, as with a leaked fd
// like runc CVE-2024-21626, + CAP_SYS_CHROOT) passed it, and the container's directory in the
// view showed the host's files.
test("a process of the namespace whose root is the host's root does not expose host files", async (t) => {
  const canaryDir = makeTempDir(scope, 'canary');
  await writeFile(path.join(canaryDir, 'secret'), 'HOST-CANARY\n');
  const { marker, canary } = await rootSeenThrough(t, 'host-root', canaryDir);
  t.false(canary.ok, `host file read through the container's directory: ${show(canary)}`);
  t.true(!marker.ok || marker.data!.toString() === 'REAL-ROOT\n', show(marker));
});

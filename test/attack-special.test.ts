/**
 * Containment attacks, part 4: special files and who may enter.
 *
 * - Device nodes in a container (including /dev/mem's numbers) are listed with their type and
 *   numbers but can never be opened through the view (the mount is nodev; nsview itself only
 *   ever reopens regular files and directories). A FIFO in a container never blocks the daemon:
 *   opened through the view it is a host-local FIFO, unconnected to the container's, and other
 *   reads keep answering. A socket likewise is not connected to the container's listener.
 * - Without --allow-other, another user gets EACCES on the whole mount. With --allow-other
 *   (always with default_permissions), the container's modes and owners decide: a 0600 root
 *   file is refused to nobody, a 0644 one is readable; set-uid bits do nothing (nosuid), and
 *   nothing runs from the view at all (noexec). POSIX ACLs deny as they do natively (a named-user
 *   `---` entry on a 0644 file), and trusted.* attributes are neither listed nor read for users
 *   other than root.
 */
import test from 'ava';
import { chmod, chown, copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BUSYBOX,
  CleanupScope,
  killGroup,
  nsInodeOf,
  REPO_ROOT,
  makeRootfs,
  makeTempDir,
  run,
  sh,
  shq,
  spawnLongLived,
  startContainer,
  startNsview,
  testTmpBase,
  waitForLine,
  type Container,
  type Nsview,
} from './helpers/index.js';
import { mountOptions, probe, probe1, resolvePython, show, tool } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
let ctr: Container;
let plain: Nsview;
let other: Nsview;
let S: string; // host path of the container's /spec
const NOBODY = 65534;

/** Devices planted in /spec: name -> [type letter, major, minor, stat %F]. */
const DEVICES: Record<string, [string, number, number, string]> = {
  null: ['c', 1, 3, 'character special file'],
  zero: ['c', 1, 5, 'character special file'],
  mem: ['c', 1, 1, 'character special file'],
  kmsg: ['c', 1, 11, 'character special file'],
  sda: ['b', 8, 0, 'block special file'],
  loop0: ['b', 7, 0, 'block special file'],
};

/**
 * Makes every ancestor of `dir` searchable by others for the test (the per-run temp root is
 * 0700), restoring the modes at teardown.
 */
async function searchableForOthers(dir: string): Promise<void> {
  const base = testTmpBase();
  for (let d = dir; d.startsWith(base) && d !== '/'; d = path.dirname(d)) {
    const mode = (await stat(d)).mode & 0o7777;
    if ((mode & 0o005) !== 0o005) {
      await chmod(d, mode | 0o005);
      scope.teardown(() => chmod(d, mode).catch(() => {}));
    }
    if (d === base) break;
  }
}

test.before(async () => {
  await resolvePython();
  const dir = makeTempDir(scope, 'atk-special');
  const rootfs = await makeRootfs(path.join(dir, 'root'));
  S = path.join(rootfs.dir, 'spec');
  await mkdir(S);
  await sh(
    [
      ...Object.entries(DEVICES).map(([n, [ty, ma, mi]]) => `mknod -m 666 ${shq(path.join(S, n))} ${ty} ${ma} ${mi}`),
      `mknod -m 666 ${shq(path.join(rootfs.dir, 'dev/null'))} c 1 3`,
      `mkfifo -m 666 ${shq(path.join(S, 'fifo'))}`,
      `ln -s /spec/mem ${shq(path.join(S, 'link-mem'))}`,
      `ln -s /spec/fifo ${shq(path.join(S, 'link-fifo'))}`,
    ].join(' && '),
  );
  await writeFile(path.join(S, 'plain'), 'plain file\n');
  // Owners and modes for --allow-other.
  const f = async (name: string, content: string, mode: number, uid = 0, gid = 0) => {
    await writeFile(path.join(S, name), content);
    await chown(path.join(S, name), uid, gid);
    await chmod(path.join(S, name), mode);
  };
  await f('root-0600', 'root only\n', 0o600);
  await f('root-0644', 'world readable\n', 0o644);
  await f('nobody-0600', 'nobody own\n', 0o600, NOBODY, NOBODY);
  await f('u1000-0640', 'group 1000\n', 0o640, 1000, 1000);
  await mkdir(path.join(S, 'private'), { mode: 0o700 });
  await chmod(path.join(S, 'private'), 0o700);
  await f('private/inner-0644', 'inside a 0700 dir\n', 0o644);
  await sh(`ln -s root-0600 ${shq(path.join(S, 'link-root-0600'))}`);
  // A 0644 file whose ACL denies nobody everything; and attributes of every namespace on another.
  await f('acl-deny-nobody', 'not for nobody\n', 0o644);
  await sh(`setfattr -n system.posix_acl_access -v ${denyUserAcl(NOBODY)} ${shq(path.join(S, 'acl-deny-nobody'))}`);
  await f('xattrs', 'with attributes\n', 0o644);
  for (const [name, value] of Object.entries(XATTRS_SET))
    await sh(`setfattr -n ${name} -v ${value} ${shq(path.join(S, 'xattrs'))}`);
  await mkdir(path.join(S, 'suid'));
  await copyFile(BUSYBOX, path.join(S, 'suid', 'busybox'));
  await chmod(path.join(S, 'suid', 'busybox'), 0o4755);
  ctr = await startContainer(scope, { rootfs });
  const mpDir = makeTempDir(scope, 'atk-mnt');
  await chmod(mpDir, 0o755);
  await searchableForOthers(mpDir);
  await mkdir(path.join(mpDir, 'plain'));
  await mkdir(path.join(mpDir, 'other'));
  plain = await startNsview(scope, { mountpoint: path.join(mpDir, 'plain') });
  other = await startNsview(scope, { mountpoint: path.join(mpDir, 'other'), allowOther: true });
});

test.after.always(() => scope.cleanup());

/** Attributes planted on spec/xattrs: one per namespace a listing can show. */
const XATTRS_SET: Record<string, string> = {
  'user.visible': 'u',
  'security.nsview-test': 's',
  'trusted.nsview-secret': 't',
};

/**
 * system.posix_acl_access as the kernel stores it (version 2, then tag/perm/id entries sorted by
 * tag): owner rw-, user `uid` ---, group r--, mask r--, other r--. setfattr takes it in hex.
 */
function denyUserAcl(uid: number): string {
  const ANY = 0xffffffff;
  const entries: Array<[number, number, number]> = [
    [0x01, 6, ANY], // ACL_USER_OBJ
    [0x02, 0, uid], // ACL_USER
    [0x04, 4, ANY], // ACL_GROUP_OBJ
    [0x10, 4, ANY], // ACL_MASK
    [0x20, 4, ANY], // ACL_OTHER
  ];
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return `0x${b.toString('hex')}`;
}

const spec = (d: Nsview, p = '') => `${d.mountpoint}/${ctr.nsInode}/spec${p ? `/${p}` : ''}`;

test('device nodes are listed with their type and numbers but never opened', async (t) => {
  for (const d of [plain, other]) {
    const st = await tool(
      `stat -c '%n|%F|%t|%T' ${Object.keys(DEVICES)
        .map((n) => shq(spec(d, n)))
        .join(' ')}`,
    );
    const lines = st.stdout.trim().split('\n');
    Object.entries(DEVICES).forEach(([n, [, ma, mi, kind]], i) => {
      t.is(lines[i], `${spec(d, n)}|${kind}|${ma.toString(16)}|${mi.toString(16)}`);
    });
    const names = [...Object.keys(DEVICES), 'link-mem'];
    const reads = await probe(names.map((n) => ({ op: 'read' as const, path: spec(d, n), max: 64 })));
    names.forEach((n, i) => {
      const r = reads[i]!;
      t.true(!r.ok && ['EACCES', 'EPERM', 'ENXIO'].includes(r.errno!), `${n}: ${show(r)}`);
    });
    for (const n of ['mem', 'zero', 'sda']) {
      const c = await tool(`head -c 16 ${shq(spec(d, n))} | od -An -tx1`, 10_000);
      t.is(c.stdout.trim(), '', `${n} gave data`);
      t.regex(c.stderr, /Permission denied|Operation not permitted|No such device/);
    }
    // Writes: read-only, never reaching the device.
    const w = await probe1('openwrite', spec(d, 'null'));
    t.true(!w.ok && ['EACCES', 'EROFS', 'EPERM'].includes(w.errno!), show(w));
  }
});

test('a FIFO never blocks the daemon; it is not connected to the container', async (t) => {
  const d = plain;
  // Non-blocking open through the view answers at once (a host-local FIFO: empty).
  const nb = await probe1('read', spec(d, 'fifo'));
  t.true(nb.ms < 5_000, `${nb.ms} ms`);
  t.true(nb.ok ? nb.data!.length === 0 : ['ENXIO', 'EAGAIN', 'EACCES'].includes(nb.errno!), show(nb));
  // A writer inside the container, blocked until a reader opens the container's FIFO.
  const writer = spawnLongLived([
    'nsenter',
    '-t',
    String(ctr.pid),
    '-m',
    '-r',
    '-w',
    '--',
    '/bin/sh',
    '-c',
    'echo CONTAINER-FIFO-DATA > /spec/fifo; echo wrote',
  ]);
  scope.teardown(() => writer.kill());
  // Blocking readers on the host, through the view (one by the link): they block in the host
  // kernel's pipe code, never in nsview.
  let blocked = true;
  const readersDone = Promise.all(
    [spec(d, 'fifo'), spec(d, 'link-fifo')].map((p) => tool(`timeout 4 cat ${shq(p)}; echo "exit $?"`, 20_000)),
  ).finally(() => (blocked = false));
  // Meanwhile the view keeps answering: rounds complete while the readers are still blocked
  // (ordering, not a wall-clock bound, so a loaded machine does not matter).
  const started = Date.now();
  let worst = 0;
  let whileBlocked = 0;
  for (let i = 0; i < 6 && blocked; i++) {
    const r = await probe([
      { op: 'read', path: spec(d, 'plain') },
      { op: 'listdir', path: spec(d) },
      { op: 'lstat', path: spec(d, 'fifo') },
    ]);
    t.is(r[0]!.data?.toString(), 'plain file\n');
    t.true(r[1]!.ok && r[2]!.ok);
    worst = Math.max(worst, ...r.map((x) => x.ms));
    if (blocked) whileBlocked++;
  }
  t.log(`${whileBlocked} rounds while FIFO readers block: ${Date.now() - started} ms, worst op ${worst.toFixed(0)} ms`);
  t.true(whileBlocked >= 1, 'the view answered while the FIFO readers were blocked');
  for (const r of await readersDone) {
    t.false(r.stdout.includes('CONTAINER-FIFO-DATA'), 'the view FIFO was connected to the container');
    t.regex(r.stdout, /exit 124/);
  }
  t.false(writer.stdout.all().includes('wrote'));
  await writer.kill();
});

const LISTEN_PY = String.raw`
import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4); s.settimeout(float(sys.argv[2]))
print('listening', flush=True)
try:
    c, _ = s.accept(); print('ACCEPTED', flush=True)
except socket.timeout:
    print('no connection', flush=True)
`;

test('a socket in the container is not connected through the view', async (t) => {
  const sock = path.join(S, 'sock');
  const listener = spawnLongLived(['python3', '-c', LISTEN_PY, sock, '30']);
  scope.teardown(() => listener.kill());
  await waitForLine(listener.child, listener.stdout, /^listening$/, 15_000, () => listener.stderr.all());
  for (const d of [plain, other]) {
    const st = await probe1('lstat', spec(d, 'sock'));
    t.is((st.mode ?? 0) & 0o170000, 0o140000, 'listed as a socket');
    const r = await probe1('connect', spec(d, 'sock'));
    t.false(r.ok, 'connected through the view');
    t.log(`connect: ${show(r)}`);
  }
  // An accepted connection is printed at once; give it a bounded moment, then stop listening.
  await waitForLine(listener.child, listener.stdout, /^ACCEPTED$/, 1_000, () => '').catch(() => undefined);
  t.false(listener.stdout.all().includes('ACCEPTED'));
  t.true(listener.child.exitCode === null, 'the listener stopped listening before the connects');
  await listener.kill();
  await sh(`rm -f ${shq(sock)}`);
});

test('mount options: ro, nosuid, nodev, noexec always; allow_other and default_permissions only when asked', async (t) => {
  const a = await mountOptions(plain.mountpoint);
  const b = await mountOptions(other.mountpoint);
  for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) {
    t.true(a.perMount.includes(o), `plain: ${a.perMount.join(',')}`);
    t.true(b.perMount.includes(o), `allow-other: ${b.perMount.join(',')}`);
  }
  const mi = (
    await tool(
      `grep -F ' ${plain.mountpoint} ' /proc/self/mountinfo; grep -F ' ${other.mountpoint} ' /proc/self/mountinfo`,
    )
  ).stdout
    .trim()
    .split('\n');
  t.notRegex(mi[0]!, /allow_other|default_permissions/);
  t.regex(mi[1]!, /allow_other/);
  t.regex(mi[1]!, /default_permissions/);
});

test('without --allow-other another user gets EACCES on the whole mount', async (t) => {
  const targets = [
    plain.mountpoint,
    `${plain.mountpoint}/${ctr.nsInode}`,
    spec(plain, 'root-0644'),
    `${plain.mountpoint}/by-pid`,
  ];
  const res = await probe(
    targets.flatMap((p) => [
      { op: 'lstat' as const, path: p },
      { op: 'listdir' as const, path: p },
      { op: 'read' as const, path: p },
    ]),
    { asUser: NOBODY },
  );
  res.forEach((r, i) => t.is(r.errno, 'EACCES', `${targets[Math.floor(i / 3)]} op ${i % 3}: ${show(r)}`));
  // The same reads work for root.
  t.is((await probe1('read', spec(plain, 'root-0644'))).data?.toString(), 'world readable\n');
  // And the same user can reach the mountpoint's parent (the refusal is the mount's).
  t.true((await probe1('listdir', path.dirname(plain.mountpoint), { asUser: NOBODY })).ok);
});

test("with --allow-other the container's modes and owners decide, set-uid does nothing", async (t) => {
  const cases: Array<[string, string | null]> = [
    ['root-0644', 'world readable\n'],
    ['root-0600', null],
    ['nobody-0600', 'nobody own\n'],
    ['u1000-0640', null],
    ['private/inner-0644', null],
    ['link-root-0600', null],
    ['plain', 'plain file\n'],
  ];
  const res = await probe(
    cases.map(([p]) => ({ op: 'read' as const, path: spec(other, p) })),
    { asUser: NOBODY },
  );
  cases.forEach(([p, want], i) => {
    const r = res[i]!;
    if (want === null) t.is(r.errno, 'EACCES', `${p}: ${show(r)}`);
    else t.is(r.data?.toString(), want, `${p}: ${show(r)}`);
  });
  t.is((await probe1('listdir', spec(other, 'private'), { asUser: NOBODY })).errno, 'EACCES');
  // Root is still subject only to root's rights.
  t.is((await probe1('read', spec(other, 'root-0600'))).data?.toString(), 'root only\n');
  // A set-uid root binary of the container, run by nobody through the view: no privilege.
  const st = await probe1('stat', spec(other, 'suid/busybox'));
  t.is((st.mode ?? 0) & 0o4000, 0o4000, 'the set-uid bit is shown');
  const r = await run(
    'setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', spec(other, 'suid/busybox'), 'id', '-u'],
    {
      check: false,
      timeoutMs: 20_000,
      cwd: '/',
    },
  );
  t.log(`set-uid busybox through the view as nobody: exit ${r.code}, euid ${r.stdout.trim()} ${r.stderr.trim()}`);
  t.true(r.code !== 0 || r.stdout.trim() === String(NOBODY), `ran with euid ${r.stdout.trim()}`);
  // Writes are refused whatever the modes say.
  const w = await probe([{ op: 'openwrite', path: spec(other, 'nobody-0600') }], { asUser: NOBODY });
  t.true(['EROFS', 'EACCES'].includes(w[0]!.errno!), show(w[0]!));
});

test('with --allow-other a POSIX ACL entry denies as it does natively', async (t) => {
  const native = await probe1('read', path.join(S, 'acl-deny-nobody'), { asUser: NOBODY });
  t.is(native.errno, 'EACCES', `natively: ${show(native)}`);
  const res = await probe(
    [
      { op: 'read', path: spec(other, 'acl-deny-nobody') },
      { op: 'access', path: spec(other, 'acl-deny-nobody') },
      { op: 'read', path: spec(other, 'root-0644') },
    ],
    { asUser: NOBODY },
  );
  t.is(res[0]!.errno, 'EACCES', `read through the view: ${show(res[0]!)}`);
  t.false(res[1]!.allowed, 'access(R_OK) through the view');
  t.is(res[2]!.data?.toString(), 'world readable\n', 'the mode bits still grant the rest');
  // Root, and the ACL itself, are as natively.
  t.is((await probe1('read', spec(other, 'acl-deny-nobody'))).data?.toString(), 'not for nobody\n');
  const acl = await tool(
    `getfattr --absolute-names -e hex -n system.posix_acl_access ${shq(spec(other, 'acl-deny-nobody'))}`,
  );
  t.true(acl.stdout.includes(denyUserAcl(NOBODY)), acl.stdout + acl.stderr);
});

test('trusted.* attributes are listed and read for root only, as natively', async (t) => {
  const names = (r: { names?: Buffer[] }) => (r.names ?? []).map(String);
  const asNobody = await probe1('listxattr', spec(other, 'xattrs'), { asUser: NOBODY });
  const asRoot = await probe1('listxattr', spec(other, 'xattrs'));
  t.log(`nobody: ${names(asNobody).join(' ')}; root: ${names(asRoot).join(' ')}`);
  // (nobody cannot reach the file natively here: the test's directories are 0700.)
  t.true(names(asRoot).includes('trusted.nsview-secret'));
  t.deepEqual(
    names(asNobody),
    names(asRoot).filter((n) => !n.startsWith('trusted.')),
    "root's list less trusted.*",
  );
  t.true(names(asNobody).includes('security.nsview-test'));
  const get = (user: number | undefined) =>
    run(
      'setpriv',
      [
        ...(user === undefined ? [] : [`--reuid=${user}`, `--regid=${user}`, '--clear-groups']),
        '--',
        'getfattr',
        '--absolute-names',
        '-n',
        'trusted.nsview-secret',
        spec(other, 'xattrs'),
      ],
      { check: false, timeoutMs: 20_000, cwd: '/' },
    );
  const [nobodyGet, rootGet] = [await get(NOBODY), await get(undefined)];
  t.regex(nobodyGet.stderr, /No such attribute/, 'nobody reads trusted.* through the view');
  t.regex(rootGet.stdout, /trusted.nsview-secret="t"/);
});

test('a frozen FUSE server inside a namespace costs ETIMEDOUT there, nothing elsewhere', async (t) => {
  // A FUSE filesystem mounted only inside a new namespace, by a server we then SIGSTOP.
  const mp = makeTempDir(scope, 'atk-hung');
  const server = spawnLongLived([
    'unshare',
    '-m',
    '--propagation',
    'private',
    process.execPath,
    path.join(REPO_ROOT, 'dist/test/fixtures/fuse-tiny-server.js'),
    mp,
  ]);
  scope.teardown(async () => {
    killGroup(server.child.pid, 'SIGCONT');
    await server.kill();
  });
  await waitForLine(server.child, server.stdout, /^READY /, 20_000, () => server.stderr.all());
  const ns = await nsInodeOf(server.child.pid!);
  const d = await startNsview(scope, { extraArgs: ['--op-timeout', '2'] });
  const inNs = `${d.mountpoint}/${ns}${mp}`;
  t.is((await probe1('read', `${inNs}/hello`)).data?.toString(), 'tiny\n');
  killGroup(server.child.pid, 'SIGSTOP');
  // New names under the frozen mount: each answers ETIMEDOUT (or EINTR/EIO) within the bound.
  const started = Date.now();
  const frozen = await probe(
    [1, 2].map((i) => ({ op: 'lstat' as const, path: `${inNs}/nothing-${i}` })),
    { timeoutMs: 30_000 },
  );
  t.log(`frozen: ${frozen.map((r) => `${show(r)} ${r.ms.toFixed(0)} ms`).join(', ')}`);
  for (const r of frozen) {
    t.false(r.ok);
    t.true(r.ms < 8_000, `${r.ms} ms`);
  }
  // Everything else keeps answering, also while requests into the frozen mount are pending.
  let pendingSettled = false;
  const pending = probe([{ op: 'lstat', path: `${inNs}/pending` }], { timeoutMs: 30_000 }).finally(
    () => (pendingSettled = true),
  );
  const others = await probe([
    { op: 'read', path: spec(d, 'plain') },
    { op: 'listdir', path: d.mountpoint },
    { op: 'listdir', path: `${d.mountpoint}/${ctr.nsInode}/etc` },
  ]);
  for (const r of others) t.true(r.ok, show(r));
  // Ordering, not wall time: the healthy namespace answered while the frozen one's request was
  // still waiting for its op timeout.
  t.false(
    pendingSettled,
    `others answered only after the frozen request settled (${others.map((r) => r.ms.toFixed(0)).join('/')} ms)`,
  );
  // The frozen namespace itself is on a short leash (one request at a time) but still answers,
  // at worst after one op timeout.
  const same = await probe1('listdir', `${d.mountpoint}/${ns}/etc`, { timeoutMs: 30_000 });
  t.log(
    `same namespace, elsewhere: ${show(same).slice(0, 40)} ${same.ms.toFixed(0)} ms; others ${others.map((r) => r.ms.toFixed(0)).join('/')} ms`,
  );
  t.true(same.ms < 5_000);
  await pending;
  t.log(`${Date.now() - started} ms in all`);
  killGroup(server.child.pid, 'SIGCONT');
});

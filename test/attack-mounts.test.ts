/**
 * Containment attacks, part 3: mounts.
 *
 * - nsview's own mount, copied into namespaces made after it (unshare -m copies the mount tree)
 *   or propagated into one made before it (a shared parent), or bind-mounted somewhere inside a
 *   namespace: walking into it through the view neither deadlocks nor recurses; it is an empty
 *   directory, and `find` over its parent finishes at once.
 * - Pseudo filesystems (proc, sysfs, cgroup2, debugfs, tracefs, securityfs, bpf, pstore,
 *   fusectl, mqueue, binfmt_misc; configfs and efivarfs where the kernel has them) mounted in a
 *   container: empty directories without --pseudo, so `grep -r` over a namespace finishes and
 *   never opens /proc/kmsg or /sys; with --pseudo they list their entries and stay read-only.
 */
import test from 'ava';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  findMount,
  makeBindMountedNamespace,
  makeTempDir,
  nsInodeOf,
  parseMountinfo,
  runNsview,
  sh,
  shq,
  spawnLongLived,
  startContainer,
  startNsview,
  waitForLine,
  type Container,
} from './helpers/index.js';
import { probe, probe1, show, tool } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
const PSEUDO = [
  'proc',
  'sysfs',
  'cgroup2',
  'debugfs',
  'tracefs',
  'securityfs',
  'bpf',
  'configfs',
  'pstore',
  'efivarfs',
  'fusectl',
  'mqueue',
  'binfmt_misc',
];
let hostNs: number;

test.before(async () => {
  hostNs = await nsInodeOf('self');
});
test.after.always(() => scope.cleanup());

/** A process in a new mount namespace (a copy of ours), optionally after running `setup`. */
async function unshared(label: string, setup = '', propagation = 'private'): Promise<{ pid: number; nsInode: number }> {
  const s = spawnLongLived([
    'unshare',
    '-m',
    '--propagation',
    propagation,
    'sh',
    '-c',
    `${setup}\necho ready; exec sleep 999999`,
  ]);
  scope.teardown(() => s.kill());
  await waitForLine(s.child, s.stdout, /^ready$/, 15_000, () => `${label}: ${s.stderr.all()}`);
  return { pid: s.child.pid!, nsInode: await nsInodeOf(s.child.pid!) };
}

test("nsview's own mount inside other namespaces is an empty directory; walks over it finish", async (t) => {
  // A shared parent before anything exists, so a namespace made now receives the mount later.
  const shared = makeTempDir(scope, 'atk-shared');
  await sh(`mount --bind ${shq(shared)} ${shq(shared)} && mount --make-shared ${shq(shared)}`);
  const mp = path.join(shared, 'mnt');
  await mkdir(mp);
  const before = await unshared('before', '', 'unchanged');
  const d = await startNsview(scope, { mountpoint: mp });
  // Namespaces made after the mount: a process-held one and a process-less (bind-mounted) one,
  // and one that bind-mounts a directory of the view somewhere else inside it.
  const after = await unshared('after');
  const pinned = await makeBindMountedNamespace(scope);
  const bindAt = makeTempDir(scope, 'atk-bindview');
  const binder = await unshared('binder', `mount --bind ${shq(`${mp}/${hostNs}`)} ${shq(bindAt)}`);

  // The mount really is there in each of them.
  for (const [what, pid] of [
    ['before', before.pid],
    ['after', after.pid],
    ['binder', binder.pid],
  ] as const) {
    const mi = parseMountinfo(await readFile(`/proc/${pid}/mountinfo`, 'latin1'));
    t.true(
      mi.some((m) => m.mountPoint === mp && m.fsType === 'fuse.nsview'),
      `${what} lacks the nsview mount`,
    );
  }

  const cases: Array<[string, number, string]> = [
    ['host', hostNs, mp],
    ['before (propagated)', before.nsInode, mp],
    ['after (copied)', after.nsInode, mp],
    ['pinned, no process (sandbox)', pinned.nsInode, mp],
    ['bind of the view', binder.nsInode, bindAt],
  ];
  for (const [what, ns, at] of cases) {
    const base = `${mp}/${ns}${at}`;
    const started = Date.now();
    const res = await probe(
      [
        { op: 'listdir', path: base },
        { op: 'lstat', path: base },
        { op: 'stat', path: `${base}/${hostNs}` },
        { op: 'stat', path: `${base}/by-pid` },
        { op: 'stat', path: `${base}/${ns}${at}` },
        { op: 'read', path: `${base}/${hostNs}/etc/hostname` },
      ],
      { timeoutMs: 20_000 },
    );
    if (what === 'bind of the view') {
      // The root of a bind of a view directory is one of our own nodes: its attributes are asked
      // by our own io worker, which the view answers ENOENT. Listed by its parent, not enterable;
      // either that or an empty directory is fine, as long as nothing recurses.
      t.true(res[0]!.errno === 'ENOENT' || (res[0]!.ok && res[0]!.names!.length === 0), `${what}: ${show(res[0]!)}`);
      t.log(
        `${what}: listdir ${show(res[0]!)}, lstat ${show(res[1]!)}; ms ${res.map((r) => r.ms.toFixed(0)).join(' ')}`,
      );
    } else {
      t.true(res[0]!.ok, `${what}: ${show(res[0]!)}`);
      t.deepEqual(res[0]!.names, [], `${what}: the own mount lists ${res[0]!.names?.map(String).join(' ')}`);
      t.is((res[1]!.mode ?? 0) & 0o170000, 0o040000, `${what}: not a directory`);
    }
    for (const r of res.slice(2)) t.is(r.errno, 'ENOENT', `${what}: ${show(r)}`);
    // find over it and its parent: finishes at once, nothing below the mount.
    const f = await tool(
      `{ find ${shq(path.dirname(base))} -maxdepth 1; find ${shq(base)} -maxdepth 6; } 2>/dev/null | grep -c -F ${shq(`${base}/`)}`,
      20_000,
    );
    t.false(f.timedOut, `${what}: find timed out`);
    t.is(f.stdout.trim(), '0', `${what}: find descended into the own mount`);
    t.log(`${what}: ${Date.now() - started} ms`);
  }
  // The daemon still answers, and has not recursed into itself (no growth of threads).
  const ls = await probe1('listdir', mp);
  t.true(ls.ok && ls.names!.map(String).includes(String(after.nsInode)));
  const threads = (await tool(`ls /proc/${d.pid}/task | wc -l`)).stdout.trim();
  t.log(`daemon threads: ${threads}`);
});

let pseudoCtr: Container;
let mounted: string[] = [];

async function pseudoContainer(): Promise<Container> {
  if (pseudoCtr) return pseudoCtr;
  const setup = PSEUDO.filter((f) => f !== 'proc')
    .map((f) => `mkdir -p /pfs/${f} && { mount -t ${f} ${f} /pfs/${f} 2>/dev/null || true; }`)
    .join('\n');
  pseudoCtr = await startContainer(scope, {
    mountProc: true,
    setup: `mkdir -p /pfs/proc && mount -t proc proc /pfs/proc\nmount -t sysfs sysfs /sys\n${setup}`,
  });
  const mi = parseMountinfo(await readFile(`/proc/${pseudoCtr.pid}/mountinfo`, 'latin1'));
  mounted = PSEUDO.filter((f) => mi.some((m) => m.mountPoint === `/pfs/${f}`));
  return pseudoCtr;
}

test('without --pseudo: pseudo filesystems are empty directories; grep -r over the namespace finishes', async (t) => {
  const c = await pseudoContainer();
  t.log(`mounted in the container: ${mounted.join(' ')}`);
  for (const f of ['proc', 'sysfs', 'cgroup2', 'debugfs', 'tracefs']) t.true(mounted.includes(f), `${f} did not mount`);
  const d = await startNsview(scope);
  const ns = `${d.mountpoint}/${c.nsInode}`;
  const dirs = [...mounted.map((f) => `pfs/${f}`), 'proc', 'sys'];
  const res = await probe(dirs.map((p) => ({ op: 'listdir' as const, path: `${ns}/${p}` })));
  dirs.forEach((p, i) => {
    t.true(res[i]!.ok, `${p}: ${show(res[i]!)}`);
    t.deepEqual(res[i]!.names?.map(String), [], `${p} is not empty`);
  });
  // Names that exist there are not found through the view.
  const names = [
    'proc/self',
    'proc/1/environ',
    'proc/kmsg',
    'proc/sys/kernel/hostname',
    'sys/kernel',
    'pfs/sysfs/kernel/address_bits',
    'pfs/cgroup2/cgroup.controllers',
    'pfs/debugfs/tracing',
    'pfs/proc/kmsg',
  ];
  const look = await probe(names.map((p) => ({ op: 'lstat' as const, path: `${ns}/${p}` })));
  names.forEach((p, i) => t.is(look[i]!.errno, 'ENOENT', `${p}: ${show(look[i]!)}`));
  // grep -r over the whole namespace directory finishes, and find sees nothing below them.
  const started = Date.now();
  const g = await tool(`grep -r -a -c nsview-no-such-string ${shq(ns)} | wc -l`, 60_000);
  t.false(g.timedOut, 'grep -r over the namespace did not finish');
  const f = await tool(`find ${shq(ns)} | grep -c -E ${shq(`^${ns}/(proc|sys|pfs/[^/]+)/`)}`, 60_000);
  t.is(f.stdout.trim(), '0');
  t.log(`grep -r: ${Date.now() - started} ms over ${g.stdout.trim()} files`);
  // Every namespace in the view (the host's included): /proc and /sys are empty.
  const top = (await probe1('listdir', d.mountpoint)).names!.map(String).filter((n) => /^\d+$/.test(n));
  const all = await probe(
    top.flatMap((n) => ['proc', 'sys'].map((p) => ({ op: 'listdir' as const, path: `${d.mountpoint}/${n}/${p}` }))),
  );
  all.forEach((r, i) =>
    t.true(
      !r.ok || r.names!.length === 0,
      `${top[Math.floor(i / 2)]}/${i % 2 ? 'sys' : 'proc'}: ${r.names?.length} entries`,
    ),
  );
});

test('with --pseudo: pseudo filesystems list their entries and stay read-only', async (t) => {
  const c = await pseudoContainer();
  const d = await startNsview(scope, { pseudo: true });
  const ns = `${d.mountpoint}/${c.nsInode}`;
  const res = await probe(mounted.map((f) => ({ op: 'listdir' as const, path: `${ns}/pfs/${f}` })));
  const summary: string[] = [];
  mounted.forEach((f, i) => {
    summary.push(`${f}: ${res[i]!.ok ? `${res[i]!.names!.length} entries` : show(res[i]!)}`);
    if (['proc', 'sysfs', 'cgroup2', 'debugfs', 'tracefs'].includes(f))
      t.true((res[i]!.names?.length ?? 0) > 0, `${f} is empty with --pseudo`);
  });
  t.log(summary.join(', '));
  // Read-only, whatever the file's mode says.
  const writes = await probe([
    { op: 'openwrite', path: `${ns}/pfs/proc/sys/vm/drop_caches` },
    { op: 'openwrite', path: `${ns}/pfs/sysfs/kernel/profiling` },
    { op: 'openwrite', path: `${ns}/pfs/cgroup2/cgroup.procs` },
    { op: 'openwrite', path: `${ns}/pfs/proc/sys/kernel/hostname` },
  ]);
  for (const w of writes) t.is(w.errno, 'EROFS', show(w));
  for (const cmd of [
    `mkdir ${shq(`${ns}/pfs/cgroup2/nsview-x`)}`,
    `touch ${shq(`${ns}/pfs/proc/nsview-x`)}`,
    `sh -c 'echo 1 > ${ns}/pfs/sysfs/kernel/profiling'`,
  ]) {
    const r = await tool(cmd);
    t.regex(r.stderr, /Read-only file system/, cmd);
  }
  // Observation for the report: procfs answers relative to the reader, which is the daemon.
  const self = await probe([
    { op: 'readlink', path: `${ns}/pfs/proc/self` },
    { op: 'read', path: `${ns}/pfs/proc/sys/kernel/hostname` },
    { op: 'lstat', path: `${ns}/pfs/proc/sys/kernel/hostname` },
  ]);
  t.log(
    `--pseudo: proc/self -> ${show(self[0]!)} (daemon pid ${d.pid}); proc/sys/kernel/hostname ${show(self[1]!)} size ${self[2]!.size}`,
  );
});

test('with --pseudo, proc and sys files read what they hold, not their size of 0 (direct I/O)', async (t) => {
  const c = await pseudoContainer();
  const d = await startNsview(scope, { pseudo: true });
  const ns = `${d.mountpoint}/${c.nsInode}`;
  const files = [
    'pfs/proc/sys/kernel/hostname',
    'pfs/proc/version',
    'pfs/sysfs/kernel/address_bits',
    'sys/kernel/address_bits',
  ];
  const viewed = await probe(
    files.flatMap((f) => [
      { op: 'read' as const, path: `${ns}/${f}` },
      { op: 'lstat' as const, path: `${ns}/${f}` },
    ]),
  );
  const native = await probe(files.map((f) => ({ op: 'read' as const, path: `/proc/${c.pid}/root/${f}` })));
  files.forEach((f, i) => {
    const [read, st] = [viewed[2 * i]!, viewed[2 * i + 1]!];
    t.log(`${f}: size ${st.size}, read ${show(read)}`);
    t.true(native[i]!.ok && native[i]!.data!.length > 0, `natively ${f}: ${show(native[i]!)}`);
    t.deepEqual(read.data, native[i]!.data, `${f} through the view`);
  });
  // Two reads of a changing file: each is read anew, never served from a cached page.
  const [u1] = await probe([{ op: 'read', path: `${ns}/pfs/proc/uptime` }]);
  await new Promise((r) => setTimeout(r, 1100));
  const [u2] = await probe([{ op: 'read', path: `${ns}/pfs/proc/uptime` }]);
  t.true(u1!.data!.length > 0 && !u1!.data!.equals(u2!.data!), `uptime ${show(u1!)} then ${show(u2!)}`);
});

test('--pseudo with --allow-other is refused with one line, before anything is mounted', async (t) => {
  const mp = makeTempDir(t, 'pseudo-other');
  const r = await runNsview(['mount', '-f', mp, '--pseudo', '--allow-other'], { timeoutMs: 20_000 });
  t.is(r.code, 2, r.stderr);
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.regex(r.stderr, /--pseudo cannot be combined with --allow-other/);
  t.is(await findMount(mp), undefined);
});

test('with --pseudo, opening /proc/kmsg or trace_pipe through the view neither blocks nor reads them', async (t) => {
  const c = await pseudoContainer();
  const d = await startNsview(scope, { pseudo: true, extraArgs: ['--op-timeout', '4'] });
  const ns = `${d.mountpoint}/${c.nsInode}`;
  const res = await probe(
    [
      { op: 'read', path: `${ns}/pfs/proc/kmsg` },
      { op: 'read', path: `${ns}/pfs/tracefs/trace_pipe` },
      { op: 'read', path: `${ns}/pfs/sysfs/kernel/address_bits` },
    ],
    { timeoutMs: 60_000 },
  );
  t.log(res.map((r) => `${show(r)} ${r.ms.toFixed(0)} ms`).join(', '));
  // Blocking would end in ETIMEDOUT after --op-timeout (4 s): an answer before that, and not
  // ETIMEDOUT, is one that did not block (a loaded machine only moves it closer).
  for (const r of res) {
    t.not(r.errno, 'ETIMEDOUT', show(r));
    t.true(r.ms < 4_000, `took ${r.ms.toFixed(0)} ms (the op timeout): ${show(r)}`);
  }
});

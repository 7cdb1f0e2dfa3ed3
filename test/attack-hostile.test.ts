/**
 * Hostile neighbours of the view: things that are not containers' files but try to make the view
 * lie, loop or forge.
 *
 * - Two nsview mounts side by side never walk into each other: each shows the other (as its own)
 *   as an empty directory, so `find` over one finishes and listing the other's top directory
 *   through it neither asks the other daemon anything nor starts sandboxes.
 * - by-pid/PID follows its process at once when it moves to another namespace (unshare in the
 *   same pid), even in raw mode where the kernel caches link targets, and vanishes with it.
 * - A hostile FUSE server inside a namespace lists a second '.' and '..' and a 600-byte name: the
 *   view lists one of each dot and no name a lookup would refuse. Its inode numbers beyond 48 bits
 *   take table entries, which go when the kernel forgets the nodes.
 * - A pin whose mount point holds a newline cannot forge a line in the daemon's log.
 */
import test from 'ava';
import { readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  REPO_ROOT,
  makeBindMountedNamespace,
  makeTempDir,
  nsInodeOf,
  shq,
  sleep,
  spawnLongLived,
  startNsview,
  waitFor,
  waitForLine,
  type Nsview,
} from './helpers/index.js';
import { probe, probe1, show, tool } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
test.after.always(() => scope.cleanup());

/** The daemon's `stats:` line after a SIGUSR1, parsed for its view counters. */
async function viewStats(d: Nsview): Promise<Record<string, number>> {
  const before = d
    .stderr()
    .split('\n')
    .filter((l) => l.includes('stats: ')).length;
  process.kill(d.pid, 'SIGUSR1');
  const line = await waitFor('a stats line', () => {
    const lines = d
      .stderr()
      .split('\n')
      .filter((l) => l.includes('stats: '));
    return lines.length > before ? lines[lines.length - 1] : undefined;
  });
  const m = / view (\{[^}]*\})/.exec(line);
  if (!m) throw new Error(`no view stats in ${line}`);
  return JSON.parse(m[1]!) as Record<string, number>;
}

test('two nsview mounts side by side: each shows the other empty, find over one finishes', async (t) => {
  const dir = makeTempDir(t, 'two-views');
  const a = await startNsview(t, { mountpoint: await mkdirp(path.join(dir, 'a')) });
  const b = await startNsview(t, { mountpoint: await mkdirp(path.join(dir, 'b')) });
  const host = await nsInodeOf('self');
  // Each daemon learns of the other's mount from its next discovery pass (--scan-interval 1).
  await sleep(2_500);
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    const started = Date.now();
    const through = `${from.mountpoint}/${host}${to.mountpoint}`;
    const ls = await probe1('listdir', through, { timeoutMs: 20_000 });
    t.true(ls.ok, `${through}: ${show(ls)}`);
    t.deepEqual(ls.names?.map(String), [], `the other view through ${from.mountpoint}`);
    const f = await tool(`find ${shq(`${from.mountpoint}/${host}${dir}`)} 2>/dev/null | wc -l`, 30_000);
    t.false(f.timedOut, `find over ${from.mountpoint} did not finish`);
    t.log(
      `${path.basename(from.mountpoint)} -> ${path.basename(to.mountpoint)}: find ${f.stdout.trim()} entries, ${Date.now() - started} ms`,
    );
  }
  for (const d of [a, b])
    t.false(/sandbox started/.test(d.stderr()), `${d.mountpoint} started sandboxes:\n${d.stderr()}`);
});

async function mkdirp(p: string): Promise<string> {
  await tool(`mkdir -p ${shq(p)}`);
  return p;
}

test('raw mode: by-pid/PID follows a process into its new namespace at once, and goes with it', async (t) => {
  const d = await startNsview(t, { symlinks: 'raw' });
  const trigger = path.join(makeTempDir(t, 'mover'), 'go');
  const mover = spawnLongLived([
    'sh',
    '-c',
    `while [ ! -e ${shq(trigger)} ]; do sleep 0.05; done; exec unshare -m --propagation private sleep 600`,
  ]);
  t.teardown(() => mover.kill());
  const pid = mover.child.pid!;
  const before = await nsInodeOf(pid);
  const link = `${d.mountpoint}/by-pid/${pid}`;
  // Read it (the kernel caches the target in raw mode) and follow it once.
  await waitFor(
    'by-pid link of the mover',
    async () => (await probe1('readlink', link)).data?.toString() === `../${before}`,
  );
  t.true((await probe1('listdir', `${link}/`)).ok);
  await writeFile(trigger, '');
  const after = await waitFor('the move', async () => {
    const ns = await nsInodeOf(pid).catch(() => undefined);
    return ns !== undefined && ns !== before ? ns : undefined;
  });
  const moved = Date.now();
  await waitFor(`by-pid/${pid} -> ../${after}`, async () => (await readlink(link).catch(() => '')) === `../${after}`, {
    timeoutMs: 8_000,
  });
  t.log(`by-pid/${pid}: ../${before} -> ../${after} within ${Date.now() - moved} ms`);
  // The pid goes away: so does its link.
  await mover.kill();
  await waitFor(`by-pid/${pid} gone`, async () => (await probe1('lstat', link)).errno === 'ENOENT', {
    timeoutMs: 8_000,
  });
  t.pass();
});

test('a hostile FUSE listing: one . and .., no name a lookup refuses; big inode numbers are let go', async (t) => {
  const mp = makeTempDir(t, 'hostile-fuse');
  const server = spawnLongLived([
    'unshare',
    '-m',
    '--propagation',
    'private',
    process.execPath,
    path.join(REPO_ROOT, 'dist/test/fixtures/fuse-tiny-server.js'),
    mp,
    'hostile',
  ]);
  t.teardown(() => server.kill());
  await waitForLine(server.child, server.stdout, /^READY /, 20_000, () => server.stderr.all());
  const ns = await nsInodeOf(server.child.pid!);
  const d = await startNsview(t);
  const inNs = `${d.mountpoint}/${ns}${mp}`;
  const lsa = async (p: string) =>
    (await tool(`ls -a1 --quoting-style=escape ${shq(p)}`)).stdout.split('\n').filter((l) => l !== '');
  // Natively the server's listing is hostile (or this test proves nothing).
  const native = await lsa(`/proc/${server.child.pid}/root${mp}`);
  t.is(native.filter((n) => n === '..').length, 2, native.slice(0, 8).join(' '));
  t.true(native.some((n) => n.length >= 600));
  const viewed = await lsa(inNs);
  t.is(viewed.filter((n) => n === '.').length, 1, viewed.slice(0, 8).join(' '));
  t.is(viewed.filter((n) => n === '..').length, 1);
  t.false(
    viewed.some((n) => n.length > 255),
    'a name longer than 255 bytes was listed',
  );
  t.deepEqual(
    viewed.filter((n) => !n.startsWith('.')).sort(),
    native.filter((n) => !n.startsWith('.') && n.length <= 255).sort(),
  );
  // Every listed name can be looked up.
  const st = await probe(
    viewed.filter((n) => !n.startsWith('.')).map((n) => ({ op: 'lstat' as const, path: `${inNs}/${n}` })),
  );
  st.forEach((r) => t.true(r.ok, show(r)));

  // Inode numbers beyond 48 bits: held while the kernel knows the files, dropped after.
  const held = (await viewStats(d)).bigInodes ?? 0;
  t.true(held >= 64, `big inode numbers held after ls: ${held}`);
  let last = held;
  await waitFor(
    'the table to shrink after drop_caches',
    async () => {
      await tool('sync; echo 2 > /proc/sys/vm/drop_caches');
      last = (await viewStats(d)).bigInodes ?? 0;
      return last < held;
    },
    { timeoutMs: 15_000, intervalMs: 500 },
  );
  t.log(`big inode numbers: ${held} after ls -la, ${last} after drop_caches`);
});

test('a pin whose mount point holds a newline cannot forge a log line', async (t) => {
  const forged = 'nsview[1]: error: forged by a mount point';
  const pin = await makeBindMountedNamespace(t, { fileName: `pin\n${forged}` });
  const d = await startNsview(t, { extraArgs: ['--scan-interval', '0.2'] });
  // Reaching the process-less namespace starts a sandbox, whose log line names the pin.
  await waitFor(
    'the pinned namespace listed',
    async () => (await probe1('listdir', `${d.mountpoint}/${pin.nsInode}`)).ok,
  );
  const logged = await waitFor('the sandbox line', () =>
    d
      .stderr()
      .split('\n')
      .find((l) => l.includes(`sandbox started for namespace ${pin.nsInode}`)),
  );
  t.log(logged);
  t.true(logged.includes('\\x0a'), 'the newline is escaped');
  for (const line of d
    .stderr()
    .split('\n')
    .filter((l) => l !== ''))
    t.false(line.startsWith(forged), `forged line: ${line}`);
});

/**
 * Issue 4, crash and restart, signals, logs:
 * - after `kill -9` of a busy daemon (a shell's cwd and an open file inside the view), `nsview
 *   mount` on the same mountpoint cleans the dead mount and serves again;
 * - SIGTERM and SIGINT unmount cleanly (mount gone, exit status 0), also while busy, and the
 *   processes inside get an error instead of hanging;
 * - `nsview unmount` works when the daemon is already gone;
 * - no `.fuse_hidden*` or any other file is ever created inside a container: its rootfs listing
 *   (type, mode, owner, size, mtime in ns, links) is the same before and after heavy use, write
 *   attempts, a crash and a restart;
 * - one log line per lifecycle event (mounted, unmounting); --verbose prints per-operation
 *   `trace:` lines, and nothing else does.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pidFileFor, readPidFile } from '../src/cli/pidfile.js';
import {
  findMount,
  killGroup,
  makeRootfs,
  makeTempDir,
  pidAlive,
  readMountinfo,
  run,
  runNsview,
  startContainer,
  startNsview,
  waitExit,
  waitFor,
  type Container,
  type Teardown,
} from './helpers/index.js';
import { linesMatching, OpenFileReader, SERVICE_ENV, ShellIn, timed } from './fixtures/lifecycle/lib.js';

/** A fresh mountpoint whose pid file is removed at teardown if its daemon was killed. */
async function mountpoint(t: Teardown, label: string): Promise<string> {
  const mp = path.join(makeTempDir(t, label), 'mnt');
  await mkdir(mp);
  t.teardown(async () => {
    const pid = readPidFile(mp);
    if (pid !== undefined && !pidAlive(pid)) await run('rm', ['-f', pidFileFor(mp)]);
  });
  return mp;
}

/** Is `pid` a live process whose command line names mountpoint `mp` (our daemon, not a reuse)? */
async function isDaemonOn(pid: number, mp: string): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').includes(mp);
}

async function mountsOn(mp: string): Promise<number> {
  return (await readMountinfo()).filter((m) => m.mountPoint === mp).length;
}

/** A container whose rootfs has a few more files to read. */
async function container(t: import('ava').ExecutionContext): Promise<Container> {
  const rootfs = await makeRootfs(path.join(makeTempDir(t, 'crash-rootfs'), 'root'));
  await mkdir(path.join(rootfs.dir, 'data/sub'), { recursive: true });
  for (let i = 0; i < 20; i++)
    await writeFile(path.join(rootfs.dir, 'data', `f${i}`), `data file ${i}\n`.repeat(100 * (i + 1)));
  await writeFile(path.join(rootfs.dir, 'data/sub/big'), Buffer.alloc(3 << 20, 'big\n'));
  return startContainer(t, { rootfs });
}

/** One line per entry of `dir` (on the host): what must not change. */
async function listing(dir: string): Promise<string[]> {
  const r = await run('find', [dir, '-printf', '%y %m %U:%G %s %T@ %n %P\\n'], { timeoutMs: 30_000 });
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('kill -9 of a busy daemon: nsview mount on the same mountpoint cleans the dead mount and serves again', async (t) => {
  const c = await container(t);
  const mp = await mountpoint(t, 'crash');
  const first = await startNsview(t, { mountpoint: mp, env: SERVICE_ENV });
  const dir = path.join(mp, String(c.nsInode));
  await waitFor(
    'container in the view',
    async () => (await timed('cat', [path.join(dir, 'etc/hostname')])).code === 0,
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  const shell = new ShellIn(t, path.join(dir, 'etc'));
  t.is((await shell.run('cat hostname')).stdout, `${c.hostname}\n`);
  const reader = await OpenFileReader.open(t, path.join(dir, 'data/sub/big'));
  t.true((await reader.read(0, 4096)).ok);

  first.proc.kill('SIGKILL');
  t.true(await waitExit(first.proc, 10_000), 'the daemon died');
  t.is(await mountsOn(mp), 1, 'its mount is left behind, dead');
  const dead = await timed('stat', [mp]);
  t.is(dead.errno, 'ENOTCONN', dead.stderr);
  // (A file read before may still come from the page cache; a new name must ask the daemon.)
  const inside = await shell.run('cat os-release');
  t.is(inside.errno, 'ENOTCONN', `a process inside gets an error, no hang: ${inside.stderr}`);
  t.false((await reader.read(1 << 20, 4096)).ok, 'an open file gets an error, no hang');

  // The same command a user would run (background mode): it cleans and serves again.
  const log = path.join(path.dirname(mp), 'nsview.log');
  let pid: number | undefined;
  t.teardown(async () => {
    // Only if that pid is still our daemon (numbers are reused quickly on a busy machine).
    if (pid !== undefined && (await isDaemonOn(pid, mp))) killGroup(pid, 'SIGKILL');
    const m = await findMount(mp);
    if (m) await run('umount', ['-l', mp], { check: false });
  });
  const started = performance.now();
  const r = await runNsview(['mount', mp, '--log-file', log], { timeoutMs: 40_000, env: SERVICE_ENV });
  t.is(r.code, 0, r.stderr);
  pid = Number(/daemon pid (\d+)/.exec(r.stdout)?.[1]);
  t.log(`nsview mount over the dead mount returned after ${Math.round(performance.now() - started)} ms`);
  t.regex(await readFile(log, 'utf8'), new RegExp(`cleaned a dead mount left on ${mp}`));
  t.is(await mountsOn(mp), 1, 'exactly one mount: the dead one is gone');
  const again = await timed('cat', [path.join(dir, 'etc/hostname')]);
  t.is(again.stdout, `${c.hostname}\n`, again.stderr);

  const u = await runNsview(['unmount', mp], { timeoutMs: 30_000 });
  t.is(u.code, 0, u.stderr);
  t.is(await mountsOn(mp), 0);
  await waitFor('the daemon to exit', async () => !(await isDaemonOn(pid!, mp)), { timeoutMs: 10_000 });
});

test('nsview unmount works when the daemon is already gone (kill -9)', async (t) => {
  const mp = await mountpoint(t, 'crash-unmount');
  const d = await startNsview(t, { mountpoint: mp, env: SERVICE_ENV });
  await waitFor('the pid file', () => readPidFile(mp) === d.pid, { timeoutMs: 5_000 });
  d.proc.kill('SIGKILL');
  t.true(await waitExit(d.proc, 10_000));
  t.is(await mountsOn(mp), 1);
  const u = await runNsview(['unmount', mp], { timeoutMs: 30_000 });
  t.is(u.code, 0, u.stderr);
  t.is(u.stdout, `nsview: unmounted ${mp}\n`);
  t.is(await mountsOn(mp), 0);
  t.false(existsSync(pidFileFor(mp)), 'the dead daemon’s pid file is removed');
  t.is((await timed('stat', ['-c', '%F', mp])).stdout, 'directory\n');
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} unmounts cleanly while busy: exit 0, mount gone, processes inside get an error; one line per event${signal === 'SIGINT' ? '; --verbose traces' : ''}`, async (t) => {
    const verbose = signal === 'SIGINT';
    const d = await startNsview(t, { verbose, env: SERVICE_ENV });
    const c = await container(t); // after the daemon: it logs the namespace appearing
    const dir = path.join(d.mountpoint, String(c.nsInode));
    await waitFor(
      'container in the view',
      async () => (await timed('cat', [path.join(dir, 'etc/hostname')])).code === 0,
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const shell = new ShellIn(t, path.join(dir, 'data'));
    t.is((await shell.run('cat f1')).rc, 0);
    const reader = await OpenFileReader.open(t, path.join(dir, 'data/sub/big'));
    t.true((await reader.read(0, 4096)).ok);

    d.proc.kill(signal);
    t.true(await waitExit(d.proc, 10_000), `exited after ${signal}`);
    t.is(d.proc.exitCode, 0, 'exit status 0');
    t.is(d.proc.signalCode, null);
    t.false(await d.isMounted(), 'mount gone');
    const after = await shell.run('cat f2', 10_000);
    t.not(after.rc, 0, `the shell inside gets an error, no hang (${after.stderr.trim()})`);
    t.false((await reader.read(1 << 20, 4096, 10_000)).ok, 'the open file gets an error, no hang');

    const log = d.stderr();
    t.is(
      linesMatching(log, new RegExp(`: mounted ${d.mountpoint} \\(symlinks rewrite\\)$`)).length,
      1,
      'one "mounted" line',
    );
    t.is(
      linesMatching(log, new RegExp(`: unmounting ${d.mountpoint} \\(${signal}\\)$`)).length,
      1,
      'one "unmounting" line',
    );
    // At most one: none if the container took over the number of a namespace that died between
    // two discovery passes (numbers are reused at once; on a busy machine that happens).
    const appeared = linesMatching(log, new RegExp(`namespace ${c.nsInode} appeared`));
    t.true(appeared.length <= 1, `at most one "appeared" line for the container: ${appeared.join(' | ')}`);
    const traces = linesMatching(log, /: trace: /);
    if (verbose) {
      t.true(
        traces.some((l) => /trace: LOOKUP node 1 "\d+" -> ok [\d.]+ms$/.test(l)),
        'a LOOKUP trace line',
      );
      t.true(
        traces.some((l) => /trace: READ node \d+ -> ok [\d.]+ms$/.test(l)),
        'a READ trace line',
      );
      t.true(
        traces.some((l) => /trace: LOOKUP node \d+ "f1" -> ok/.test(l)),
        'names appear in trace lines',
      );
    } else {
      t.deepEqual(traces, [], 'no trace lines without --verbose');
    }
    t.deepEqual(linesMatching(log, /error/), [], 'no error logged');
  });
}

test('no .fuse_hidden* or any other file is created inside a container: its rootfs is unchanged by heavy use, a crash and a restart', async (t) => {
  const c = await container(t);
  const before = await listing(c.rootfs);
  const mp = await mountpoint(t, 'crash-files');
  let d = await startNsview(t, { mountpoint: mp, env: SERVICE_ENV });
  const dir = path.join(mp, String(c.nsInode));
  await waitFor(
    'container in the view',
    async () => (await timed('cat', [path.join(dir, 'etc/hostname')])).code === 0,
    { timeoutMs: 10_000, intervalMs: 50 },
  );

  const heavy = async () => {
    for (const [f, a] of [
      ['find', [dir, '-printf', '%y %m %s %p\n']],
      ['ls', ['-laR', dir]],
      ['tar', ['-cf', '/dev/null', '-C', dir, '.']],
      ['find', [dir, '-type', 'f', '-exec', 'cat', '{}', '+']],
      ['du', ['-s', dir]],
    ] as Array<[string, string[]]>) {
      const r = await timed(f, a, 60_000);
      t.is(r.code, 0, `${f}: ${r.stderr.slice(0, 500)}`);
    }
    // Every kind of write is refused.
    for (const [f, a] of [
      ['touch', [path.join(dir, 'data/new')]],
      ['mkdir', [path.join(dir, 'data/newdir')]],
      ['rm', ['-f', path.join(dir, 'data/f1')]],
      ['mv', [path.join(dir, 'data/f2'), path.join(dir, 'data/f2-moved')]],
      ['ln', [path.join(dir, 'data/f3'), path.join(dir, 'data/f3-link')]],
      ['chmod', ['600', path.join(dir, 'data/f4')]],
      ['sh', ['-c', `echo x >> ${path.join(dir, 'data/f5')}`]],
    ] as Array<[string, string[]]>) {
      const r = await timed(f, a);
      t.is(r.errno, 'EROFS', `${f} ${a.join(' ')}: ${r.stderr}`);
    }
  };
  await heavy();
  // A crash with files open and a cwd inside, then a restart and the same again.
  const shell = new ShellIn(t, path.join(dir, 'data'));
  t.is((await shell.run('cat f6 >/dev/null')).rc, 0);
  const reader = await OpenFileReader.open(t, path.join(dir, 'data/sub/big'));
  t.true((await reader.read(0, 65536)).ok);
  d.proc.kill('SIGKILL');
  t.true(await waitExit(d.proc, 10_000));
  d = await startNsview(t, { mountpoint: mp, env: SERVICE_ENV });
  await waitFor(
    'container in the view again',
    async () => (await timed('cat', [path.join(dir, 'etc/hostname')])).code === 0,
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  await heavy();
  const stopped = await d.stop();
  t.deepEqual(stopped, { code: 0, signal: null, killed: false, leftMounted: false });

  const after = await listing(c.rootfs);
  t.deepEqual(after, before, 'the container rootfs is unchanged (names, types, modes, owners, sizes, mtimes, links)');
  t.deepEqual(
    after.filter((l) => l.includes('.fuse_hidden')),
    [],
  );
  const inContainer = await c.exec('find / -xdev -name ".fuse_hidden*"');
  t.is(inContainer.stdout, '', 'none seen from inside the container either');
  t.log(`${before.length} entries compared`);
});

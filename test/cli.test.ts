/**
 * End to end: the command line. Help and version, every refusal as one line on stderr with a
 * non-zero exit (not root, missing mountpoint, busy mountpoint, no /dev/fuse), recovery from a
 * daemon killed with SIGKILL (its dead mount is cleaned and mounted over; `nsview unmount` works
 * without it), and the background mode (`nsview mount` returns once serving, `nsview unmount`
 * leaves neither mount nor process).
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pidFileFor, readPidFile } from '../src/cli/pidfile.js';
import {
  findMount,
  killGroup,
  makeTempDir,
  NSVIEW_BIN,
  pidAlive,
  readMountinfo,
  REPO_ROOT,
  run,
  runNsview,
  sh,
  shq,
  startNsview,
  waitExit,
  waitFor,
  type RunResult,
  type Teardown,
} from './helpers/index.js';

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** A fresh, existing, unmounted directory to mount on. */
async function freshMountpoint(t: Teardown, label = 'cli-mnt'): Promise<string> {
  const mp = path.join(makeTempDir(t, label), 'mnt');
  await mkdir(mp);
  // A daemon killed with SIGKILL leaves its pid file behind; never leave one for our paths.
  t.teardown(async () => {
    if (readPidFile(mp) !== undefined && !pidAlive(readPidFile(mp)!)) await run('rm', ['-f', pidFileFor(mp)]);
  });
  return mp;
}

/** How many mounts are stacked exactly on `mp` in our namespace. */
async function mountsOn(mp: string): Promise<number> {
  return (await readMountinfo()).filter((m) => m.mountPoint === mp).length;
}

/** The result must be a refusal: exit status `code`, no stdout, exactly one stderr line matching `re`. */
function assertOneLineError(t: import('ava').ExecutionContext, r: RunResult, re: RegExp, code = 1): void {
  t.false(r.timedOut, 'finished in time');
  t.is(r.code, code, r.stderr);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^nsview: error: [^\n]+\n$/, 'one line');
  t.regex(r.stderr, re);
}

/** Processes whose command line mentions `needle` (e.g. a unique mountpoint). */
async function processesMentioning(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${name}/cmdline`, 'latin1')).split('\0').includes(needle)) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}

/** SIGKILLs a daemon started by startNsview and waits for it (its mount stays, dead). */
async function killDaemon(proc: import('node:child_process').ChildProcess): Promise<void> {
  proc.kill('SIGKILL');
  if (!(await waitExit(proc, 10_000))) throw new Error('daemon did not die after SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// Help and version

test('--version prints the package version', async (t) => {
  const r = await runNsview(['--version']);
  t.is(r.code, 0);
  t.is(r.stdout, `${VERSION}\n`);
  t.is(r.stderr, '');
});

test('--help of nsview and of every command', async (t) => {
  const [top, mount, unmount, list, listH, none, bad] = (await Promise.all(
    [
      ['--help'],
      ['mount', '--help'],
      ['unmount', '--help'],
      ['list', '--help'],
      ['list', '-h'],
      [],
      ['mount', '--symlinks', 'follow'],
    ].map((a) => runNsview(a)),
  )) as [RunResult, RunResult, RunResult, RunResult, RunResult, RunResult, RunResult];
  t.is(top.code, 0, top.stderr);
  t.is(top.stderr, '');
  for (const cmd of ['mount [mountpoint]', 'unmount [mountpoint]', 'list'])
    t.true(top.stdout.includes(`nsview ${cmd}`), cmd);

  t.is(mount.code, 0, mount.stderr);
  t.regex(mount.stdout, /^nsview mount \[mountpoint\]$/m);
  for (const opt of [
    '--foreground',
    '--symlinks',
    '--allow-other',
    '--pseudo',
    '--idle-release',
    '--op-timeout',
    '--attr-timeout',
    '--entry-timeout',
    '--scan-interval',
    '--workers',
    '--busy-poll',
    '--log-file',
    '--verbose',
  ]) {
    t.true(mount.stdout.includes(opt), `mount --help mentions ${opt}`);
  }
  t.regex(mount.stdout, /one of: rewrite, raw/);
  t.regex(mount.stdout, /default: "\/mnt\/nsview"/);

  t.is(unmount.code, 0, unmount.stderr);
  t.regex(unmount.stdout, /^nsview unmount \[mountpoint\]$/m);

  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^nsview list$/m);
  t.true(list.stdout.includes('--json'));

  // -h is the same as --help; no command at all is a usage error.
  t.is(listH.stdout, list.stdout);
  t.is(none.code, 2);
  t.is(none.stderr, 'nsview: error: name a command: mount, unmount, list, completion (see nsview --help)\n');
  t.is(bad.code, 2);
  t.is(bad.stderr, 'nsview: error: --symlinks must be one of rewrite, raw (got "follow")\n');
});

// ---------------------------------------------------------------------------------------------
// Refusals

test('numeric options are checked as text: no rounding, no clamping, exit 2 before anything is mounted', async (t) => {
  const mp = await freshMountpoint(t);
  const cases: Array<[string[], RegExp]> = [
    [['--workers', 'abc'], /--workers must be a whole number from 1 to 64 \(got "abc"\)$/m],
    [['--workers', '0'], /--workers must be a whole number from 1 to 64 \(got "0"\)$/m],
    [['--workers', '1.5'], /--workers must be a whole number from 1 to 64 \(got "1.5"\)$/m],
    [['--workers', '100000'], /--workers must be a whole number from 1 to 64 \(got "100000"\)$/m],
    [['--workers', '0x10'], /--workers must be a whole number/m],
    [['--workers='], /--workers must be a whole number/m],
    [['--busy-poll', '-5'], /--busy-poll must be a whole number from 0 to 100000 \(got "-5"\)$/m],
    [['--busy-poll', '1e9'], /--busy-poll must be a whole number from 0 to 100000/m],
    [['--attr-timeout', '-1'], /--attr-timeout must be a non-negative number of seconds, at most 86400 \(got "-1"\)$/m],
    [['--attr-timeout', 'NaN'], /--attr-timeout must be a non-negative number of seconds/m],
    [['--scan-interval', '0'], /--scan-interval must be a positive number of seconds, at most 86400 \(got "0"\)$/m],
    [['--op-timeout', '1e400'], /--op-timeout must be a positive number of seconds/m],
  ];
  for (const [args, re] of cases) {
    const r = await runNsview(['mount', '-f', mp, ...args]);
    assertOneLineError(t, r, re, 2);
  }
  // In the background form too (the same parser runs before anything starts).
  assertOneLineError(t, await runNsview(['mount', mp, '--workers', '1.5']), /--workers must be a whole number/, 2);
  t.is(await mountsOn(mp), 0);
});

test('nsview list | head -1 ends quietly (no EPIPE stack trace)', async (t) => {
  const r = await run(
    'bash',
    ['-c', `${shq(process.execPath)} ${shq(NSVIEW_BIN)} list | head -1; echo "status \${PIPESTATUS[0]}" >&2`],
    {
      check: false,
      timeoutMs: 30_000,
    },
  );
  t.regex(r.stdout, /^mnt:\[\d+\] [^\n]+\n$/);
  t.is(r.stderr, 'status 0\n');
});

test('./bin/nsview without a build says to run ./scripts/setup', async (t) => {
  // A copy of bin/ alone is a clone without dist/.
  const dir = makeTempDir(t, 'cli-nodist');
  await run('cp', ['-a', path.join(REPO_ROOT, 'bin'), dir]);
  const r = await run(process.execPath, [path.join(dir, 'bin', 'nsview'), 'list'], { check: false });
  assertOneLineError(
    t,
    r,
    /^nsview: error: nsview is not built yet: run \.\/scripts\/setup in the nsview checkout/m,
    4,
  );
});

test('not root: mount, unmount and list refuse with one line', async (t) => {
  const mp = await freshMountpoint(t);
  const asNobody = (args: string[]) =>
    run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, NSVIEW_BIN, ...args], {
      check: false,
      timeoutMs: 30_000,
    });
  assertOneLineError(
    t,
    await asNobody(['mount', '-f', mp]),
    /^nsview: error: nsview must run as root \(it reads every mount namespace on the host\)$/m,
    1,
  );
  assertOneLineError(t, await asNobody(['unmount', mp]), /^nsview: error: nsview unmount must run as root$/m);
  assertOneLineError(t, await asNobody(['list']), /^nsview: error: nsview list must run as root/m);
  t.is(await mountsOn(mp), 0);
});

test('a non-empty mountpoint is refused (its files would be hidden) unless --nonempty', async (t) => {
  const mp = await freshMountpoint(t, 'cli-nonempty');
  await run('touch', [path.join(mp, 'precious')]);
  const re = new RegExp(
    `^nsview: error: mountpoint ${mp} is not empty \\(1 entries would be hidden\\); empty it or pass --nonempty$`,
    'm',
  );
  assertOneLineError(t, await runNsview(['mount', '-f', mp]), re, 32);
  assertOneLineError(t, await runNsview(['mount', mp, '--log-file', path.join(path.dirname(mp), 'log')]), re, 32);
  t.is(await mountsOn(mp), 0);
  const d = await startNsview(t, { mountpoint: mp, extraArgs: ['--nonempty'] });
  t.true((await run('ls', [mp])).stdout.split('\n').includes('by-pid'));
  t.deepEqual(await d.stop(), { code: 0, signal: null, killed: false, leftMounted: false });
  t.true(existsSync(path.join(mp, 'precious')), 'the hidden file is back');
});

test('pid files: one per mountpoint (/x-y and /x/y differ), root-only, and never trusted without proof', async (t) => {
  const dir = makeTempDir(t, 'cli-pidfile');
  const a = path.join(dir, 'x-y');
  const b = path.join(dir, 'x', 'y');
  await mkdir(a);
  await mkdir(b, { recursive: true });
  t.not(pidFileFor(a), pidFileFor(b));
  t.regex(path.basename(pidFileFor(a)), /x\\x2dy\.pid$/);
  t.regex(path.basename(pidFileFor(b)), /-x-y\.pid$/);
  const da = await startNsview(t, { mountpoint: a });
  const db = await startNsview(t, { mountpoint: b });
  t.is(readPidFile(a), da.pid);
  t.is(readPidFile(b), db.pid);
  const st = await run('stat', ['-c', '%a %U %F', '/run/nsview', pidFileFor(a)]);
  t.is(st.stdout, '700 root directory\n600 root regular file\n');

  // Unmounting one leaves the other running.
  const u = await runNsview(['unmount', a], { timeoutMs: 30_000 });
  t.is(u.code, 0, u.stderr);
  t.true(await waitExit(da.proc, 10_000));
  t.is(db.proc.exitCode, null, 'the daemon of x/y still runs');
  t.is(await mountsOn(b), 1);

  // A pid file naming a process that is not this mountpoint's daemon (here: the other daemon,
  // then a sleep) is not believed: nothing is signalled, and the stale file is removed.
  const sleeper = await sh('sleep 60 >/dev/null 2>&1 & echo $!');
  const sleepPid = Number(sleeper.stdout.trim());
  t.teardown(() => killGroup(sleepPid, 'SIGKILL'));
  for (const fake of [db.pid, sleepPid]) {
    await run('sh', ['-c', `echo ${fake} > ${shq(pidFileFor(a))}`]);
    assertOneLineError(t, await runNsview(['unmount', a]), /: not mounted$/m, 32);
    t.true(pidAlive(fake), `pid ${fake} was not signalled`);
    t.false(existsSync(pidFileFor(a)));
  }
  t.is(db.proc.exitCode, null);
  // O_NOFOLLOW: a symlink planted as the pid file is neither followed nor written through.
  const target = path.join(dir, 'target');
  await run('sh', ['-c', `echo keep > ${shq(target)} && ln -s ${shq(target)} ${shq(pidFileFor(a))}`]);
  const refused = await runNsview(['mount', '-f', a], { timeoutMs: 30_000 });
  t.not(refused.code, 0);
  t.is(await readFile(target, 'utf8'), 'keep\n');
  await run('rm', ['-f', pidFileFor(a)]);
  t.is(await mountsOn(a), 0, 'a daemon that cannot record itself does not stay mounted');
});

test('the log file: refused in a directory other users may write to, and never followed through a symlink', async (t) => {
  const mp = await freshMountpoint(t, 'cli-log');
  const dir = path.dirname(mp);
  const open = path.join(dir, 'open');
  await mkdir(open);
  await run('chmod', ['1777', open]);
  assertOneLineError(
    t,
    await runNsview(['mount', mp, '--log-file', path.join(open, 'nsview.log')]),
    new RegExp(`^nsview: error: log file directory ${open} must be owned by root and not writable by other users`, 'm'),
    32,
  );
  const target = path.join(dir, 'target');
  await run('sh', ['-c', `echo keep > ${shq(target)} && ln -s ${shq(target)} ${shq(path.join(dir, 'link.log'))}`]);
  assertOneLineError(
    t,
    await runNsview(['mount', mp, '--log-file', path.join(dir, 'link.log')]),
    /cannot open log file .*link\.log: it is a symlink$/m,
    32,
  );
  t.is(await readFile(target, 'utf8'), 'keep\n');
  t.is(await mountsOn(mp), 0);
});

test('not root, background mount: refused as not root', async (t) => {
  const mp = await freshMountpoint(t);
  const r = await run(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, NSVIEW_BIN, 'mount', mp],
    {
      check: false,
      timeoutMs: 30_000,
    },
  );
  assertOneLineError(
    t,
    r,
    /^nsview: error: nsview must run as root \(it reads every mount namespace on the host\)$/m,
    1,
  );
  t.is(await mountsOn(mp), 0);
});

test('a missing mountpoint (not the default) is refused, not created', async (t) => {
  const dir = makeTempDir(t, 'cli-missing');
  const mp = path.join(dir, 'missing');
  assertOneLineError(
    t,
    await runNsview(['mount', '-f', mp]),
    new RegExp(`^nsview: error: mountpoint ${mp} does not exist \\(create it with mkdir -p\\)$`, 'm'),
    32,
  );
  assertOneLineError(
    t,
    await runNsview(['mount', mp, '--log-file', path.join(dir, 'log')]),
    new RegExp(`^nsview: error: mountpoint ${mp} does not exist`, 'm'),
    32,
  );
  t.false(existsSync(mp));
});

test('a missing mountpoint whose parent is missing too is refused with the same message', async (t) => {
  const mp = path.join(makeTempDir(t, 'cli-missing'), 'does', 'not', 'exist');
  assertOneLineError(
    t,
    await runNsview(['mount', '-f', mp]),
    new RegExp(`^nsview: error: mountpoint ${mp} does not exist \\(create it with mkdir -p\\)$`, 'm'),
    32,
  );
  t.false(existsSync(path.dirname(mp)));
});

test('a busy mountpoint (a live nsview on it) is refused naming its pid; the running view is untouched', async (t) => {
  const first = await startNsview(t);
  const mp = first.mountpoint;
  const fg = await runNsview(['mount', '-f', mp], { timeoutMs: 30_000 });
  const busy = new RegExp(
    `^nsview: error: ${mp} is already mounted by nsview \\(server pid ${first.pid}\\); run \`nsview unmount ${mp}\` first$`,
    'm',
  );
  assertOneLineError(t, fg, busy, 32);
  const log = path.join(path.dirname(mp), 'bg.log');
  const bg = await runNsview(['mount', mp, '--log-file', log], { timeoutMs: 40_000 });
  assertOneLineError(t, bg, busy, 32);
  t.is(await mountsOn(mp), 1);
  t.true((await run('ls', [mp])).stdout.split('\n').includes('by-pid'));
  t.is(first.proc.exitCode, null, 'the first daemon still runs');
  // The refused background daemon did not stay behind.
  await waitFor(
    'the refused daemon to exit',
    async () => (await processesMentioning(mp)).every((p) => p === first.pid),
    { timeoutMs: 10_000 },
  );
});

test('no /dev/fuse (hidden in a private mount namespace) is refused with one line', async (t) => {
  const dir = makeTempDir(t, 'cli-nofuse');
  const mp = path.join(dir, 'mnt');
  await mkdir(mp);
  // Only this private namespace loses /dev/fuse: a tmpfs over /dev with just /dev/null.
  const noFuse = (args: string[]) =>
    run(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs nsview-nodev /dev && mknod -m 666 /dev/null c 1 3 && exec "$0" "$@"',
        process.execPath,
        NSVIEW_BIN,
        ...args,
      ],
      { check: false, timeoutMs: 40_000 },
    );
  const re =
    /^nsview: error: \/dev\/fuse is missing or not accessible: load the fuse module \(modprobe fuse\) or, in a container, pass --device \/dev\/fuse$/m;
  assertOneLineError(t, await noFuse(['mount', '-f', mp]), re, 32);
  assertOneLineError(t, await noFuse(['mount', mp, '--log-file', path.join(dir, 'log')]), re, 32);
  t.true(existsSync('/dev/fuse'), 'the host keeps its /dev/fuse');
  t.is(await mountsOn(mp), 0);
});

// ---------------------------------------------------------------------------------------------
// Recovery from a killed daemon

test('a dead mount left by kill -9 is cleaned and mounted over, not reported busy', async (t) => {
  const first = await startNsview(t);
  const mp = first.mountpoint;
  await killDaemon(first.proc);
  t.is(await mountsOn(mp), 1, 'the dead mount is still there');
  const dead = await run('stat', [mp], { check: false });
  t.regex(dead.stderr, /Transport endpoint is not connected/);

  const second = await startNsview(t, { mountpoint: mp });
  t.regex(second.stderr(), new RegExp(`cleaned a dead mount left on ${mp}`));
  t.is(await mountsOn(mp), 1, 'exactly one mount: the dead one is gone');
  t.true((await run('ls', [mp])).stdout.split('\n').includes('by-pid'));
  const stopped = await second.stop();
  t.deepEqual(stopped, { code: 0, signal: null, killed: false, leftMounted: false });
  t.is(await mountsOn(mp), 0);
});

test('nsview unmount works when the daemon is already dead (and when nothing is mounted)', async (t) => {
  const daemon = await startNsview(t);
  const mp = daemon.mountpoint;
  t.is(readPidFile(mp), daemon.pid, 'the daemon recorded itself');
  await killDaemon(daemon.proc);
  t.is(await mountsOn(mp), 1);

  const r = await runNsview(['unmount', mp], { timeoutMs: 30_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `nsview: unmounted ${mp}\n`);
  t.is(r.stderr, '');
  t.is(await mountsOn(mp), 0);
  t.false(existsSync(pidFileFor(mp)), 'the dead daemon’s pid file is removed');
  t.is((await run('stat', ['-c', '%F', mp])).stdout, 'directory\n');

  // Nothing mounted: umount(8)'s status 32 and one line.
  assertOneLineError(t, await runNsview(['unmount', mp]), new RegExp(`^nsview: error: ${mp}: not mounted$`, 'm'), 32);
});

test('nsview unmount stops a live foreground daemon, which exits cleanly', async (t) => {
  const daemon = await startNsview(t);
  const mp = daemon.mountpoint;
  const r = await runNsview(['unmount', mp], { timeoutMs: 30_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `nsview: unmounted ${mp}\n`);
  t.true(await waitExit(daemon.proc, 10_000));
  t.is(daemon.proc.exitCode, 0);
  t.is(await mountsOn(mp), 0);
  t.false(existsSync(pidFileFor(mp)));
});

// ---------------------------------------------------------------------------------------------
// Background mode

test('background: nsview mount returns once serving; nsview unmount leaves no mount and no process', async (t) => {
  const mp = await freshMountpoint(t, 'cli-bg');
  const log = path.join(path.dirname(mp), 'nsview.log');
  let daemonPid: number | undefined;
  t.teardown(async () => {
    // Whatever happened: no daemon, no mount.
    const pid = daemonPid ?? readPidFile(mp);
    if (pid !== undefined && (await processesMentioning(mp)).includes(pid)) killGroup(pid, 'SIGKILL');
    const m = await findMount(mp);
    if (m) await sh(`umount -l ${shq(mp)}`, { check: false });
  });

  const started = Date.now();
  const r = await runNsview(['mount', mp, '--log-file', log], { timeoutMs: 40_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const m = new RegExp(`^nsview: mounted ${mp} \\(daemon pid (\\d+), log ${log}\\)\n$`).exec(r.stdout);
  t.truthy(m, r.stdout);
  daemonPid = Number(m?.[1]);
  t.log(`nsview mount returned after ${Date.now() - started} ms`);

  // Serving as soon as the command returned: no wait here.
  t.is(await mountsOn(mp), 1);
  t.true((await run('ls', [mp], { timeoutMs: 10_000 })).stdout.split('\n').includes('by-pid'));
  t.true(pidAlive(daemonPid));
  t.is(readPidFile(mp), daemonPid);
  // The log file: ISO 8601 timestamps on every line.
  const logText = await readFile(log, 'utf8');
  t.regex(
    logText,
    new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z nsview\\[${daemonPid}\\]: mounted ${mp}`, 'm'),
  );
  for (const line of logText.trimEnd().split('\n')) t.regex(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z nsview\[\d+\]: /);
  t.deepEqual(await processesMentioning(mp), [daemonPid], 'one daemon, the CLI itself has exited');

  const u = await runNsview(['unmount', mp], { timeoutMs: 30_000 });
  t.is(u.code, 0, u.stderr);
  t.is(u.stdout, `nsview: unmounted ${mp}\n`);
  t.is(await mountsOn(mp), 0);
  await waitFor('the daemon to be gone', () => !pidAlive(daemonPid), { timeoutMs: 5_000 });
  t.deepEqual(await processesMentioning(mp), []);
  t.false(existsSync(pidFileFor(mp)));
  t.regex(await readFile(log, 'utf8'), new RegExp(`unmounting ${mp}`));
});

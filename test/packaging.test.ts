/**
 * End to end: nsview installed and run the ways people deploy it. The npm package (packed,
 * installed into a fresh prefix, mounted, read, unmounted; only compiled code inside), the
 * manual and bash completion generated from the option table, the mount.fuse.nsview helper run
 * by mount(8) from the command line and from an fstab (umount(8) stops the daemon), logrotate's
 * copytruncate against the daemon's log, and the escaping of log lines.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MOUNT_OPTIONS, COMMANDS } from '../src/cli/options.js';
import { escapeLogText } from '../src/daemon/log.js';
import { makeTempDir, pidAlive, REPO_ROOT, run, runNsview, shq, waitFor, findMount } from './helpers/index.js';

const HOST_NS = async () => (await stat('/proc/self/ns/mnt')).ino;
const VISIBLE = MOUNT_OPTIONS.filter((o) => !o.hidden);

/** The daemon pid a background mount printed. */
function daemonPid(stdout: string): number {
  const m = /\(daemon pid (\d+),/.exec(stdout);
  if (!m) throw new Error(`no daemon pid in: ${stdout}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// npm

test('npm pack ships compiled JavaScript only; install -g into a fresh prefix mounts, reads and unmounts', async (t) => {
  const dir = makeTempDir(t, 'pkg');
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: REPO_ROOT,
    timeoutMs: 180_000,
  });
  const info = (
    JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>
  )[0];
  if (info === undefined) return t.fail('npm pack --json printed no package');
  const files = info.files.map((f) => f.path);
  t.true(
    files.includes('bin/nsview') && files.includes('bin/mount.fuse.nsview') && files.includes('dist/man/nsview.1'),
  );
  t.true(files.includes('dist/src/cli/main.js'));
  t.deepEqual(
    files.filter((f) => /\.ts$|\.map$|^test\/|^dist\/test\/|^bench\/|^dist\/bench\/|^src\//.test(f)),
    [],
    'no sources, tests or maps',
  );

  const prefix = path.join(dir, 'prefix');
  const inst = await run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, info.filename)],
    {
      timeoutMs: 180_000,
      check: false,
    },
  );
  t.is(inst.code, 0, inst.stderr);
  const lib = path.join(prefix, 'lib/node_modules/nsview');
  t.false(existsSync(path.join(lib, 'node_modules/typescript')), 'no TypeScript compiler installed');
  t.true(existsSync(path.join(prefix, 'share/man/man1/nsview.1')), 'man page linked into the prefix');
  const nsview = path.join(prefix, 'bin/nsview');
  t.is(
    (await run(nsview, ['--version'])).stdout,
    `${JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')).version}\n`,
  );

  const mp = path.join(dir, 'mnt');
  await mkdir(mp);
  const m = await run(nsview, ['mount', mp, '--log-file', path.join(dir, 'nsview.log')], {
    timeoutMs: 40_000,
    check: false,
  });
  t.is(m.code, 0, m.stderr);
  const pid = daemonPid(m.stdout);
  t.teardown(async () => {
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    if (await findMount(mp)) await run('umount', ['-l', mp], { check: false });
  });
  t.is(
    await readFile(path.join(mp, String(await HOST_NS()), 'etc/hostname'), 'utf8'),
    await readFile('/etc/hostname', 'utf8'),
  );
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  t.true(
    cmdline.some((a) => a.startsWith(lib)),
    'the daemon runs from the installed package',
  );
  const u = await run(nsview, ['unmount', mp], { timeoutMs: 30_000, check: false });
  t.is(u.code, 0, u.stderr);
  t.is(await findMount(mp), undefined);
  await waitFor('the daemon to exit', () => !pidAlive(pid), { timeoutMs: 10_000 });

  const pub = await run('npm', ['publish', '--dry-run'], { cwd: REPO_ROOT, timeoutMs: 180_000, check: false });
  t.is(pub.code, 0, pub.stderr);
  // Only the registry's login reminder may warn (a dry run is never logged in).
  t.deepEqual(
    pub.stderr.split('\n').filter((l) => /warn/i.test(l) && !/requires you to be logged in/.test(l)),
    [],
  );
});

test('engines, os and cpu say what nsview runs on', async (t) => {
  const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    engines: { node: string };
    os: string[];
    cpu: string[];
  };
  t.deepEqual(pkg.os, ['linux']);
  t.true(pkg.cpu.includes(process.arch), `cpu lists ${process.arch}`);
  const [maj, min] = /^>=(\d+)\.(\d+)/.exec(pkg.engines.node)!.slice(1).map(Number) as [number, number];
  const [nmaj, nmin] = process.versions.node.split('.').map(Number) as [number, number];
  t.true(
    nmaj > maj || (nmaj === maj && nmin >= min),
    `this node ${process.versions.node} satisfies ${pkg.engines.node}`,
  );
});

// ---------------------------------------------------------------------------------------------
// One option table: --help, man, completion

test('--help, the man page and bash completion list the same options (one table)', async (t) => {
  const help = (await runNsview(['mount', '--help'])).stdout;
  const man = await run('man', ['-l', '-P', 'cat', path.join(REPO_ROOT, 'dist/man/nsview.1')], {
    env: { MANWIDTH: '100', LANG: 'C.UTF-8' },
  });
  const lint = await run('groff', ['-man', '-ww', '-z', path.join(REPO_ROOT, 'dist/man/nsview.1')], { check: false });
  t.is(lint.stderr, '', 'groff has no warning about the page');
  const completion = (await runNsview(['completion'])).stdout;
  t.is((await run('bash', ['-n'], { input: completion })).code, 0);
  for (const o of VISIBLE) {
    t.true(help.includes(`--${o.name}`), `--help has --${o.name}`);
    t.true(man.stdout.includes(`--${o.name}`), `man has --${o.name}`);
    t.true(completion.includes(`--${o.name}`), `completion has --${o.name}`);
  }
  for (const c of COMMANDS) t.true(man.stdout.includes(`nsview ${c.name}`), `man names nsview ${c.name}`);
  for (const code of [0, 1, 2, 4, 32])
    t.regex(man.stdout, new RegExp(`^\\s+${code}\\s`, 'm'), `exit status ${code} documented`);
  t.regex(man.stdout, /EXIT STATUS/);
  t.regex(man.stdout, /symlinks=raw,allow_other/);

  // Completion works: words, option names, values.
  const complete = async (words: string[]) => {
    const script = `${completion}\nCOMP_WORDS=(${words.map(shq).join(' ')}); COMP_CWORD=${words.length - 1}; _nsview; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return (await run('bash', ['-c', script])).stdout.trim().split('\n');
  };
  t.deepEqual(await complete(['nsview', 'mo']), ['mount']);
  t.deepEqual(await complete(['nsview', 'mount', '--sym']), ['--symlinks']);
  t.deepEqual(await complete(['nsview', 'mount', '--symlinks', '']), ['rewrite', 'raw']);
  t.deepEqual(await complete(['nsview', 'list', '--j']), ['--json']);
});

// ---------------------------------------------------------------------------------------------
// mount(8), fstab, umount(8)

/**
 * Runs `script` (bash, with $D a fresh temporary directory) in a private mount namespace where
 * mount(8) finds this checkout's mount.fuse.nsview: a read-only overlay adds it to /usr/sbin
 * there only, so the host's /usr/sbin is untouched. Returns the output as `key value` lines.
 */
async function withHelper(
  t: import('ava').ExecutionContext,
  script: string,
): Promise<{ out: Map<string, string>; raw: string; dir: string }> {
  const dir = makeTempDir(t, 'helper');
  const extra = path.join(dir, 'sbin-extra');
  await mkdir(extra);
  await mkdir(path.join(dir, 'mnt'));
  await symlink(path.join(REPO_ROOT, 'bin/mount.fuse.nsview'), path.join(extra, 'mount.fuse.nsview'));
  // Whatever the script leaves: no daemon, no mount (the namespace is private, the pid is not).
  t.teardown(async () => {
    const pids = (await readFile(path.join(dir, 'pids'), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map(Number);
    for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  const full =
    `set -u\nmount -t overlay nsview-test-sbin -o lowerdir=${shq(extra)}:/usr/sbin /usr/sbin || exit 99\n` +
    `mp=$D/mnt\nrecord() { sed -n 's/.*daemon pid \\([0-9]*\\).*/\\1/p' "$1" | tee -a $D/pids; }\n` +
    `gone() { for i in $(seq 100); do kill -0 $1 2>/dev/null || { echo exited; return; }; sleep 0.1; done; echo alive; }\n${script}`;
  const r = await run('unshare', ['-m', '--propagation', 'private', 'bash', '-c', full], {
    check: false,
    timeoutMs: 90_000,
    env: { D: dir },
  });
  if (r.code !== 0) throw new Error(`helper script failed (${r.code}): ${r.stdout}${r.stderr}`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) out.set(line.slice(0, sp), line.slice(sp + 1));
  }
  return { out, raw: r.stdout + r.stderr, dir };
}

test('mount -t fuse.nsview maps -o through the option table, ignores options meant for others; umount stops the daemon', async (t) => {
  const hostNs = await HOST_NS();
  const { out, raw } = await withHelper(
    t,
    `mount -t fuse.nsview nsview $mp -o symlinks=raw,allow_other,attr_timeout=2,nofail,_netdev,noauto,defaults,rw,x-systemd.automount,x-systemd.idle-timeout=60,log_file=$D/log >$D/m1 2>&1
     echo "status $?"
     pid=$(record $D/m1)
     echo "fstype $(findmnt -n -o FSTYPE --mountpoint $mp)"
     echo "options $(findmnt -n -o OPTIONS --mountpoint $mp)"
     echo "hostname $(cat $mp/${hostNs}/etc/hostname)"
     echo "args $(tr '\\0' ' ' </proc/$pid/cmdline)"
     umount $mp; echo "umount $?"
     echo "daemon $(gone $pid)"
     echo "after $(findmnt -n -o FSTYPE --mountpoint $mp || echo none)"
     mount -t fuse.nsview nsview $mp -o symlinks=raw,bogus=1 2>$D/e1; echo "bogus $? $(cat $D/e1)"
     mount -t fuse.nsview nsview $mp -o workers=1.5 2>$D/e2; echo "badvalue $? $(cat $D/e2)"
     echo "refused $(findmnt -n -o FSTYPE --mountpoint $mp || echo none)"`,
  );
  t.is(out.get('status'), '0', raw);
  t.is(out.get('fstype'), 'fuse.nsview');
  t.regex(out.get('options') ?? '', /^ro,nosuid,nodev,.*allow_other/);
  t.is(`${out.get('hostname')}\n`, await readFile('/etc/hostname', 'utf8'));
  t.regex(out.get('args') ?? '', / --symlinks raw --allow-other --attr-timeout 2 --log-file \S+\/log --foreground /);
  t.is(out.get('umount'), '0');
  t.is(out.get('daemon'), 'exited', 'umount(8) stops the daemon');
  t.is(out.get('after'), 'none');
  t.is(
    out.get('bogus'),
    '2 mount.fuse.nsview: error: unknown mount option "bogus=1" (see man nsview, FSTAB AND MOUNT(8))',
  );
  t.regex(out.get('badvalue') ?? '', /^2 nsview: error: --workers must be a whole number from 1 to 64 \(got "1\.5"\)$/);
  t.is(out.get('refused'), 'none');
});

test('an fstab line mounts with mount -a (mount -T FSTAB), and umount stops the daemon', async (t) => {
  const { out, raw } = await withHelper(
    t,
    `printf '# nsview\\nnsview %s fuse.nsview symlinks=raw,nofail,_netdev,x-systemd.requires=local-fs.target,log_file=%s 0 0\\n' $mp $D/log >$D/fstab
     mount -T $D/fstab -a >$D/m1 2>&1; echo "status $?"
     pid=$(record $D/m1)
     echo "fstype $(findmnt -n -o FSTYPE --mountpoint $mp)"
     echo "byPid $(ls $mp | grep -x by-pid)"
     mount -T $D/fstab -a >$D/m2 2>&1; echo "again $? $(findmnt -n -o FSTYPE --mountpoint $mp | wc -l)"
     umount $mp; echo "umount $?"
     echo "daemon $(gone $pid)"
     echo "log $(grep -c 'nsview\\[' $D/log)"
     echo "stamped $(grep -Evc '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z nsview\\[' $D/log)"`,
  );
  t.is(out.get('status'), '0', raw);
  t.is(out.get('fstype'), 'fuse.nsview');
  t.is(out.get('byPid'), 'by-pid');
  t.is(out.get('again'), '0 1', 'mount -a skips what is mounted');
  t.is(out.get('umount'), '0');
  t.is(out.get('daemon'), 'exited');
  t.true(Number(out.get('log')) >= 2, raw);
  t.is(out.get('stamped'), '0', 'every log line has an ISO timestamp');
});

// ---------------------------------------------------------------------------------------------
// The log file

test('log lines escape every control byte: a name with a newline cannot forge a line', (t) => {
  t.is(escapeLogText('a\nb'), 'a\\x0ab');
  t.is(escapeLogText('x\r\x1b[31m\x7f\x9b\u2028\\'), 'x\\x0d\\x1b[31m\\x7f\\x9b\\u2028\\\\');
  t.is(escapeLogText('plain /mnt/nsview é'), 'plain /mnt/nsview é');
});

test('logrotate copytruncate: the daemon goes on writing at the start of the emptied log (O_APPEND)', async (t) => {
  const dir = makeTempDir(t, 'logrotate');
  const mp = path.join(dir, 'mnt');
  await mkdir(mp);
  const log = path.join(dir, 'nsview.log');
  const m = await runNsview(['mount', mp, '--log-file', log], { timeoutMs: 40_000 });
  t.is(m.code, 0, m.stderr);
  const pid = daemonPid(m.stdout);
  t.teardown(async () => {
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    if (await findMount(mp)) await run('umount', ['-l', mp], { check: false });
  });
  // The shipped configuration, pointed at this log.
  const shipped = await readFile(path.join(REPO_ROOT, 'deploy/logrotate/nsview'), 'utf8');
  t.regex(shipped, /^\s*copytruncate$/m);
  const conf = path.join(dir, 'logrotate.conf');
  await writeFile(conf, shipped.replace('/var/log/nsview.log', log).replace(/^\s*(compress|delaycompress)$/gm, ''));
  const before = (await stat(log)).size;
  t.true(before > 0);
  const r = await run('logrotate', ['-f', '-s', path.join(dir, 'state'), conf], { check: false });
  t.is(r.code, 0, r.stderr);
  t.is((await readFile(`${log}.1`, 'utf8')).length, before, 'the old lines went to nsview.log.1');
  process.kill(pid, 'SIGUSR1'); // one "stats" line
  await waitFor('the stats line', async () => (await readFile(log, 'utf8')).includes('stats:'), { timeoutMs: 5_000 });
  const after = await readFile(log);
  t.false(after.includes(0), 'no hole of NUL bytes before the new line');
  t.regex(after.toString(), /^\d{4}-\d\d-\d\dT[\d:.]+Z nsview\[\d+\]: stats: /);
  t.is((await runNsview(['unmount', mp], { timeoutMs: 30_000 })).code, 0);
  void readdir;
});

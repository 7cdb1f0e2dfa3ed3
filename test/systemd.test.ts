/**
 * Issue 4, the systemd unit: `systemd-analyze verify` accepts it, and it does what it promises:
 * ExecStart runs `nsview mount --foreground /mnt/nsview`, Restart=on-failure, and
 * CapabilityBoundingSet lists exactly the capabilities src/daemon/preflight.ts requires (with the
 * right capability numbers). Then the daemon is run with exactly that bounding set and must
 * mount and read a container and a process-less namespace (through a sandbox), so the set is
 * also sufficient. And the libuv pool the unit sets (Environment=UV_THREADPOOL_SIZE=16) is what
 * bin/nsview gives the daemon outside systemd too (bin/ is CommonJS so its first line runs first).
 *
 * `systemd-analyze` comes with the `systemd` package; when it is missing, this file installs it
 * (apt-get) and skips the verify test with a clear message only if that fails.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  detachMount,
  findMount,
  makeBindMountedNamespace,
  makeTempDir,
  NSVIEW_BIN,
  REPO_ROOT,
  run,
  spawnLongLived,
  startContainer,
  startNsview,
  waitExit,
  waitFor,
  waitForLine,
} from './helpers/index.js';
import { threadCount, timed } from './fixtures/lifecycle/lib.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';

const UNIT = path.join(REPO_ROOT, 'systemd/nsview.service');
const PREFLIGHT = path.join(REPO_ROOT, 'src/daemon/preflight.ts');

/** Capability numbers from linux/capability.h. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_NET_ADMIN: 12,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_RESOURCE: 24,
  CAP_MKNOD: 27,
};

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** systemd-analyze, installed with the systemd package if missing; else why it is not there. */
function ensureSystemdAnalyze(): string | undefined {
  if (which('systemd-analyze')) return undefined;
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'systemd'], {
      stdio: 'ignore',
      timeout: 150_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    return `systemd-analyze is missing and "apt-get install systemd" failed: ${(err as Error).message.split('\n')[0]}`;
  }
  return which('systemd-analyze') ? undefined : 'systemd-analyze is missing even after installing the systemd package';
}

const missing = ensureSystemdAnalyze();

/** `Key=value` lines of the unit's [Service] section (values of repeated keys in order). */
async function serviceSection(): Promise<Map<string, string[]>> {
  const text = await readFile(UNIT, 'utf8');
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (section === 'Service' && kv) out.set(kv[1]!, [...(out.get(kv[1]!) ?? []), kv[2]!]);
  }
  return out;
}

/** The capabilities preflight.ts checks: [bit, 'CAP_X'] pairs from its NEEDED_CAPS table. */
async function preflightCaps(): Promise<Array<[number, string]>> {
  const src = await readFile(PREFLIGHT, 'utf8');
  const table = /NEEDED_CAPS[^=]*=\s*\[([\s\S]*?)\n\];/.exec(src)?.[1] ?? '';
  return [...table.matchAll(/\[\s*(\d+)\s*,\s*'(CAP_[A-Z_]+)/g)].map((m) => [Number(m[1]), m[2]!]);
}

if (missing) {
  test.skip(`systemd-analyze verify systemd/nsview.service (SKIPPED: ${missing})`, () => {});
} else {
  test('systemd-analyze verify systemd/nsview.service passes without a warning about the unit', async (t) => {
    const r = await run('systemd-analyze', ['verify', UNIT], { check: false, timeoutMs: 60_000 });
    t.is(r.code, 0, `${r.stdout}${r.stderr}`);
    t.deepEqual(
      `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('nsview.service')),
      [],
      'no warning names the unit',
    );
  });
}

test('the unit runs `nsview mount --foreground /mnt/nsview`, restarts on failure, cleans up after stop', async (t) => {
  const s = await serviceSection();
  const exec = s.get('ExecStart') ?? [];
  t.is(exec.length, 1, 'one ExecStart');
  t.regex(exec[0] ?? '', /^\/usr\/bin\/env node (--\S+ )*\S*\/bin\/nsview mount --foreground \/mnt\/nsview$/);
  // The daemon's V8 flags are the same wherever it is started (unit, bin/nsview's shebang).
  const flags = DAEMON_NODE_FLAGS.join(' ');
  t.true((exec[0] ?? '').startsWith(`/usr/bin/env node ${flags} `), `ExecStart passes ${flags}`);
  const shebang = (await readFile(path.join(REPO_ROOT, 'bin', 'nsview'), 'utf8')).split('\n')[0];
  const env = Object.entries(DAEMON_ENV).map(([k, v]) => `${k}=${v}`);
  t.is(shebang, `#!/usr/bin/env -S ${env.join(' ')} node ${flags}`);
  const unitEnv = s.get('Environment') ?? [];
  for (const kv of env) t.true(unitEnv.includes(kv), `the unit sets ${kv}`);
  t.deepEqual(s.get('Restart'), ['on-failure']);
  t.deepEqual(s.get('Type'), ['simple'], 'foreground daemon supervised directly');
  t.regex((s.get('ExecStopPost') ?? [])[0] ?? '', /^-\S*\/usr\/bin\/env node \S*\/bin\/nsview unmount \/mnt\/nsview$/);
  t.deepEqual(s.get('KillSignal'), ['SIGTERM'], 'stopped by the signal that unmounts cleanly');
});

test('CapabilityBoundingSet is exactly the capabilities preflight.ts requires, with the right numbers', async (t) => {
  const s = await serviceSection();
  const bounding = (s.get('CapabilityBoundingSet') ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const needed = await preflightCaps();
  t.true(needed.length >= 1, 'found the NEEDED_CAPS table');
  t.deepEqual([...bounding].sort(), needed.map(([, n]) => n).sort(), 'same set');
  t.is(new Set(bounding).size, bounding.length, 'no duplicates');
  for (const [bit, name] of needed) t.is(CAP_NUMBERS[name], bit, `${name} is bit ${CAP_NUMBERS[name]}`);
  t.deepEqual(s.get('AmbientCapabilities'), [''], 'no ambient capabilities');
});

test('with exactly that bounding set the daemon mounts and reads a container and a pinned namespace', async (t) => {
  const s = await serviceSection();
  const caps = (s.get('CapabilityBoundingSet') ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const setprivCaps = ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
  const mp = path.join(makeTempDir(t, 'systemd-mnt'), 'mnt');
  await mkdir(mp);
  const d = spawnLongLived(
    ['setpriv', '--bounding-set', setprivCaps, '--', process.execPath, NSVIEW_BIN, 'mount', '-f', mp],
    { pdeathsig: 'TERM' },
  );
  t.teardown(async () => {
    d.child.kill('SIGTERM');
    if (!(await waitExit(d.child, 5_000))) await d.kill();
    const m = await findMount(mp);
    if (m) await detachMount(m);
  });
  await waitForLine(d.child, d.stderr, /: mounted /, 15_000, () => d.stderr.all());
  const status = await readFile(`/proc/${d.child.pid}/status`, 'utf8');
  const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
  const expected = caps.reduce((acc, c) => acc | (1n << BigInt(CAP_NUMBERS[c]!)), 0n);
  t.is(capEff.toString(16), expected.toString(16), 'the daemon runs with exactly those capabilities');

  const c = await startContainer(t);
  const pin = await makeBindMountedNamespace(t);
  for (const [ns, want] of [
    [c.nsInode, `${c.hostname}\n`],
    [pin.nsInode, await readFile('/etc/hostname', 'utf8')],
  ] as Array<[number, string]>) {
    await waitFor(
      `namespace ${ns} readable`,
      async () => (await timed('cat', [path.join(mp, String(ns), 'etc/hostname')])).stdout === want,
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
  }
  t.regex(d.stderr.all(), new RegExp(`sandbox started for namespace ${pin.nsInode}`), 'setns worked in the sandbox');
  t.notRegex(d.stderr.all(), /error/);
  d.child.kill('SIGTERM');
  t.true(await waitExit(d.child, 10_000));
  t.is(d.child.exitCode, 0);
  t.is(await findMount(mp), undefined);
});

test('bin/nsview runs the daemon with the libuv pool of 16 it sets (as many threads as with UV_THREADPOOL_SIZE=16 given)', async (t) => {
  const plain = await startNsview(t, { env: { UV_THREADPOOL_SIZE: undefined } });
  const given = await startNsview(t, { env: { UV_THREADPOOL_SIZE: '16' } });
  const a = await threadCount(plain.pid);
  const b = await threadCount(given.pid);
  t.log(`threads: ${a} as started by bin/nsview, ${b} with UV_THREADPOOL_SIZE=16 in the environment`);
  t.true(Math.abs(a - b) <= 2, `${a} vs ${b} threads`);
});

/**
 * What the benchmark runs against: the namespace holding the fixture as its /data, the three
 * ways to reach it (native, bindfs, nsview), the 200-namespace farm, and process statistics.
 *
 * Every long-lived child runs under `setpriv --pdeathsig` in its own process group and is
 * registered in a CleanupScope, so a normal end, an error and SIGINT all take it down; if the
 * benchmark is SIGKILLed, pdeathsig still kills the children (bindfs and nsview get SIGTERM and
 * unmount themselves) and the namespace holder also exits when its stdin pipe closes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  childEnv,
  detachMount,
  findMount,
  killGroup,
  LineWatcher,
  makeTempDir,
  nsInodeOf,
  run,
  sleep,
  spawnLongLived,
  NSVIEW_BIN,
  waitExit,
  waitFor,
  waitForLine,
  type Teardown,
} from '../../test/helpers/index.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';

// ---------------------------------------------------------------------------------------------
// The namespace

export interface Holder {
  /** The holder process (a shell whose root is the namespace's root). */
  pid: number;
  nsInode: number;
  /** Native access to the namespace's /data from the host. */
  nativeData: string;
  stop(): Promise<void>;
}

/**
 * `unshare -m --propagation private`, then inside: a 1 MiB tmpfs as the new root holding `/data`
 * (a bind of `fixtureDir`), `pivot_root` into it, the old root detached (with the static busybox
 * when there is one, else left empty at /.old), then the shell waits on its stdin, a pipe from
 * us: when we go away, it exits.
 */
export async function startHolder(t: Teardown, fixtureDir: string): Promise<Holder> {
  return holder(t, ['mount --bind "$2" "$1/data"'], fixtureDir);
}

/**
 * The memory workload's namespace: /data is a directory of the root tmpfs holding `binds` bind
 * mounts of `base` (m000, m001, ...): a million entries from ten thousand real ones.
 */
export async function startMemHolder(t: Teardown, base: string, binds: number): Promise<Holder> {
  return holder(
    t,
    [
      `i=0; while [ $i -lt ${binds} ]; do m="$1/data/m$(printf %03d $i)"; mkdir "$m"; mount --bind "$2" "$m"; i=$((i+1)); done`,
    ],
    base,
  );
}

async function holder(t: Teardown, dataSetup: string[], arg: string): Promise<Holder> {
  const stage = path.join(makeTempDir(t, 'bench-stage'), 'root');
  await mkdir(stage);
  const script = [
    'set -e',
    'mount -t tmpfs -o size=1m,mode=755 nsview-bench-root "$1"',
    'mkdir "$1/data" "$1/.old"',
    ...dataSetup,
    'cd "$1"',
    'pivot_root . .old',
    'cd /',
    'if [ -x /.old/bin/busybox ]; then /.old/bin/busybox umount -l /.old; fi',
    'echo nsview-bench-holder-ready',
    'read x || true',
  ].join('\n');
  const child = spawn(
    'setpriv',
    [
      '--pdeathsig',
      'KILL',
      '--',
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      'holder',
      stage,
      arg,
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: childEnv(),
    },
  );
  child.on('error', () => {});
  const out = new LineWatcher(child.stdout!);
  const err = new LineWatcher(child.stderr!);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    child.stdin!.destroy();
    killGroup(child.pid, 'SIGKILL');
    await waitExit(child, 5_000);
  };
  t.teardown(stop);
  try {
    await waitForLine(
      child,
      out,
      /^nsview-bench-holder-ready$/,
      15_000,
      () => `namespace holder\nstderr: ${err.all()}`,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const pid = child.pid!;
  return { pid, nsInode: await nsInodeOf(pid), nativeData: `/proc/${pid}/root/data`, stop };
}

/** `count` more mount namespaces, each held by a `sleep` (found by lsns and by nsview). */
export interface Farm {
  count: number;
  /** The namespaces' inode numbers (their names in nsview's top directory). */
  nsInodes: number[];
  stop(): Promise<void>;
}

export async function startFarm(t: Teardown, count: number): Promise<Farm> {
  // Each sleeper has pdeathsig KILL towards the shell; the shell has it towards us.
  const script = `
    self=$(readlink /proc/self/ns/mnt)
    pids=
    i=0
    while [ $i -lt ${count} ]; do
      setpriv --pdeathsig KILL unshare -m --propagation private sleep 999999 &
      pids="$pids $!"
      i=$((i+1))
    done
    for p in $pids; do
      while [ "$(readlink /proc/$p/ns/mnt 2>/dev/null)" = "$self" ]; do sleep 0.01; done
      echo "ns $(readlink /proc/$p/ns/mnt)"
    done
    echo farm-ready
    wait`;
  const s = spawnLongLived(['sh', '-c', script]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await s.kill();
  };
  t.teardown(stop);
  try {
    await waitForLine(s.child, s.stdout, /^farm-ready$/, 60_000, () => `namespace farm\nstderr: ${s.stderr.all()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  const nsInodes = [...s.stdout.all().matchAll(/^ns mnt:\[(\d+)\]$/gm)].map((m) => Number(m[1]));
  return { count, nsInodes, stop };
}

// ---------------------------------------------------------------------------------------------
// FUSE mounts

export interface FuseMount {
  kind: 'bindfs' | 'nsview';
  mountpoint: string;
  /** The serving process. */
  pid: number;
  /** The FUSE connection number (minor of the mount's device). */
  connection: number;
  /** The fixture's /data as seen through this mount. */
  data: string;
  stop(): Promise<void>;
}

async function connectionOf(mountpoint: string): Promise<number> {
  const m = await findMount(mountpoint);
  if (!m) throw new Error(`${mountpoint} is not mounted`);
  return Number(m.dev.split(':')[1]);
}

/** `bindfs -f -o ro [extraArgs] SRC MP` (a fresh mountpoint under a test temp dir). */
export async function startBindfs(t: Teardown, src: string, extraArgs: string[] = []): Promise<FuseMount> {
  const mountpoint = path.join(makeTempDir(t, 'bench-bindfs'), 'mnt');
  await mkdir(mountpoint);
  const s = spawnLongLived(['bindfs', '-f', '-o', 'ro', ...extraArgs, src, mountpoint], { pdeathsig: 'TERM' });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      killGroup(s.child.pid, 'SIGTERM');
      if (!(await waitExit(s.child, 5_000))) await s.kill();
      for (let m = await findMount(mountpoint); m; m = await findMount(mountpoint)) await detachMount(m);
    })());
  t.teardown(stop);
  try {
    await waitFor('bindfs mount', async () => {
      if (s.child.exitCode !== null) throw new Error(`bindfs exited (${s.child.exitCode}): ${s.stderr.all()}`);
      return (await findMount(mountpoint)) !== undefined;
    });
    await waitFor('bindfs serving', () =>
      stat(mountpoint).then(
        (st) => st.dev !== 0,
        () => false,
      ),
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    kind: 'bindfs',
    mountpoint,
    pid: s.child.pid!,
    connection: await connectionOf(mountpoint),
    data: mountpoint,
    stop,
  };
}

export interface NsviewMount extends FuseMount {
  /** The daemon's stderr so far. */
  stderr(): string;
}

/**
 * `node [nodeArgs] bin/nsview mount -f MP [extraArgs]` under `setpriv --pdeathsig TERM` (like the
 * test helper startNsview, plus node flags such as --cpu-prof), waiting until it said `mounted`
 * and the namespace's /data is reachable. `mountpoint` is reused across restarts when given.
 * stop() sends SIGTERM and waits up to 20 s (a CPU profile is written on exit), then SIGKILL,
 * then detaches a mount left behind.
 */
export async function startNsviewMount(
  t: Teardown,
  nsInodes: number[],
  opts: { mountpoint?: string; extraArgs?: string[]; nodeArgs?: string[] },
): Promise<NsviewMount> {
  const nsInode = nsInodes[0]!;
  let mountpoint = opts.mountpoint;
  if (mountpoint === undefined) {
    mountpoint = path.join(makeTempDir(t, 'bench-nsview'), 'mnt');
    await mkdir(mountpoint);
  }
  const mp = mountpoint;
  // The daemon's own V8 flags first (as bin/nsview and systemd start it), then the bench's.
  const argv = [
    process.execPath,
    ...DAEMON_NODE_FLAGS,
    ...(opts.nodeArgs ?? []),
    NSVIEW_BIN,
    'mount',
    '-f',
    mp,
    ...(opts.extraArgs ?? []),
  ];
  const s = spawnLongLived(argv, { pdeathsig: 'TERM', env: { ...DAEMON_ENV } });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        killGroup(s.child.pid, 'SIGTERM');
        if (!(await waitExit(s.child, 20_000))) await s.kill();
      }
      for (let m = await findMount(mp); m; m = await findMount(mp)) await detachMount(m);
    })());
  t.teardown(stop);
  const data = path.join(mp, String(nsInode), 'data');
  try {
    await waitForLine(
      s.child,
      s.stderr,
      /mounted/,
      30_000,
      () => `nsview ${argv.slice(1).join(' ')}\n${s.stderr.all().slice(-4000)}`,
    );
    await waitFor('nsview mount in mountinfo', async () => (await findMount(mp)) !== undefined, { timeoutMs: 15_000 });
    for (const ns of nsInodes) {
      await waitFor(
        `namespace ${ns} in nsview`,
        () =>
          stat(path.join(mp, String(ns), 'data')).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 15_000 },
      );
    }
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${s.stderr.all().slice(-4000)}`);
  }
  return {
    kind: 'nsview',
    mountpoint: mp,
    pid: s.child.pid!,
    connection: await connectionOf(mp),
    data,
    stderr: () => s.stderr.all(),
    stop,
  };
}

const STATS_LINE = /stats: requests (\{[^}]*\})/;

/**
 * nsview's own request counters: `kill -USR1` makes the daemon log one `stats: requests {...}`
 * line (per opcode since it started); this waits for the new line and parses it. Undefined if
 * none comes within the timeout or it cannot be read.
 */
export async function nsviewRequestCounts(
  m: NsviewMount,
  timeoutMs = 3_000,
): Promise<Record<string, number> | undefined> {
  const lines = () =>
    m
      .stderr()
      .split('\n')
      .filter((l) => STATS_LINE.test(l));
  const before = lines().length;
  try {
    process.kill(m.pid, 'SIGUSR1');
  } catch {
    return undefined;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = lines();
    if (now.length > before) {
      try {
        const parsed: unknown = JSON.parse(STATS_LINE.exec(now[now.length - 1]!)![1]!);
        if (typeof parsed !== 'object' || parsed === null) return undefined;
        const out: Record<string, number> = {};
        for (const [k, v] of Object.entries(parsed)) if (typeof v === 'number') out[k] = v;
        return out;
      } catch {
        return undefined;
      }
    }
    await sleep(20);
  }
  return undefined;
}

/** Entries in a directory (0 when it cannot be read). */
export async function countEntries(dir: string): Promise<number> {
  return readdir(dir).then(
    (e) => e.length,
    () => 0,
  );
}

/** How many of `names` a directory lists. */
export async function countListed(dir: string, names: string[]): Promise<number> {
  const have = new Set(await readdir(dir).catch(() => [] as string[]));
  return names.filter((n) => have.has(n)).length;
}

// ---------------------------------------------------------------------------------------------
// Caches and process statistics

/** Writes dirty pages back (sync), then drops the page cache, dentries and inodes. */
export async function dropCaches(): Promise<void> {
  await run('sync', [], { timeoutMs: 120_000 });
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

const CLK_TCK = 100;

export interface CpuSample {
  /** user+system seconds of the whole process (all threads). */
  total: number;
  /** user+system seconds of its main thread (tid = pid). */
  main: number;
}

function statCpu(file: string): number {
  const s = fs.readFileSync(file, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

/**
 * CPU of the serving processes, summed (bindfs with parallel clients: one process per namespace).
 * `/proc/PID/stat` counts every thread of the process, exited ones included; `main` is the
 * first process's main thread (nsview's JavaScript thread).
 */
export function cpuOf(pids: number[]): CpuSample | undefined {
  if (pids.length === 0) return undefined;
  try {
    let total = 0;
    for (const pid of pids) total += statCpu(`/proc/${pid}/stat`);
    return { total, main: statCpu(`/proc/${pids[0]}/task/${pids[0]}/stat`) };
  } catch {
    return undefined;
  }
}

export interface MemSample {
  /** Peak resident set (VmHWM), bytes. */
  hwm: number;
  rss: number;
  fds: number;
  threads: number;
}

export function memOf(pid: number): MemSample | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return {
      hwm: kb('VmHWM'),
      rss: kb('VmRSS'),
      fds: fs.readdirSync(`/proc/${pid}/fd`).length,
      threads: Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? NaN),
    };
  } catch {
    return undefined;
  }
}

export { sleep };

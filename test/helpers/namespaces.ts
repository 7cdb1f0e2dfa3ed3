/**
 * Mount namespaces of every kind nsview must find, each cleaned up through `t.teardown`:
 *
 * - startContainer: a process that pivot_root'ed into a busybox rootfs (source 'process');
 * - makeBindMountedNamespace: no process, pinned by an nsfs bind mount on the host ('bindmount');
 * - makeFdHeldNamespace: no process, held only by an open fd of a host process ('fd');
 * - makeNestedBindMountedNamespace: no process, pinned by a bind mount that exists only inside
 *   another namespace;
 * - makeThreadNamespace: one worker thread of a node process unshared its mount namespace
 *   ('thread').
 *
 * Every long-lived child runs under `setpriv --pdeathsig KILL` in its own process group, so it
 * dies with the test worker even when teardown never runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  childEnv,
  killGroup,
  LineWatcher,
  nsInodeOf,
  run,
  sh,
  shq,
  waitExit,
  waitForLine,
  type RunOptions,
  type RunResult,
  type Teardown,
} from './proc.js';
import { makeRootfs, type Rootfs } from './rootfs.js';
import { makeTempDir, removeTree } from './tmp.js';

/** How long a helper waits for its namespace to be ready. */
const READY_TIMEOUT_MS = 15_000;
/** busybox/coreutils sleep for "forever" (about 11 days). */
const FOREVER = '999999';

export interface Spawned {
  child: ChildProcess;
  stdout: LineWatcher;
  stderr: LineWatcher;
  /** SIGKILLs the process group and waits (bounded) for the exit. Idempotent. */
  kill(): Promise<void>;
}

/**
 * Starts `argv` under `setpriv --pdeathsig <sig>` in a new process group, collecting output.
 * The returned pid is the one of the final program (setpriv, unshare and sh exec into it).
 */
export function spawnLongLived(
  argv: string[],
  opts: { pdeathsig?: 'KILL' | 'TERM'; env?: NodeJS.ProcessEnv } = {},
): Spawned {
  const child = spawn('setpriv', ['--pdeathsig', opts.pdeathsig ?? 'KILL', '--', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: childEnv(opts.env),
  });
  child.on('error', () => {}); // surfaced through the exit / readiness wait
  const stdout = new LineWatcher(child.stdout!);
  const stderr = new LineWatcher(child.stderr!);
  // Never keep the test worker alive: a child whose cleanup never ran dies with the worker
  // (pdeathsig), and the worker is not left hanging until ava's timeout.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return {
    child,
    stdout,
    stderr,
    async kill() {
      killGroup(child.pid, 'SIGKILL');
      await waitExit(child, 5_000);
    },
  };
}

async function waitReady(s: Spawned, re: RegExp, what: string): Promise<string> {
  try {
    return await waitForLine(
      s.child,
      s.stdout,
      re,
      READY_TIMEOUT_MS,
      () => `${what}\nstdout: ${s.stdout.all()}\nstderr: ${s.stderr.all()}`,
    );
  } catch (err) {
    await s.kill();
    throw err;
  }
}

function parseIno(line: string, key: string): number {
  const m = new RegExp(`${key}=(\\d+)`).exec(line);
  if (!m) throw new Error(`no ${key}= in ${JSON.stringify(line)}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Containers

export interface ContainerOptions {
  /** An existing rootfs (a directory, or makeRootfs()'s result); default: a fresh makeRootfs(). */
  rootfs?: string | Rootfs;
  /** Mount a proc filesystem on /proc inside (default false). */
  mountProc?: boolean;
  /** Shell commands run by the container's busybox sh after pivot_root, before it sleeps. */
  setup?: string;
}

export interface Container {
  /** The container's init (a `sleep`), in the new namespace with its root at the rootfs. */
  pid: number;
  nsInode: number;
  /** Host path of the rootfs directory. */
  rootfs: string;
  /** /etc/hostname of the rootfs when known (built here, or given as a Rootfs object). */
  hostname: string | undefined;
  /**
   * Runs `/bin/sh -c cmd` inside the container (`nsenter -t PID -m -r -w`), so paths and the
   * program resolve in the container with PATH=/bin:/sbin:/usr/bin. Throws on failure unless
   * `{ check: false }`.
   */
  exec(cmd: string, opts?: RunOptions): Promise<RunResult>;
  /** Kills the container now (its namespace then dies). Teardown does it anyway. */
  stop(): Promise<void>;
}

/** The in-container PATH used by exec(). */
export const CONTAINER_PATH = '/bin:/sbin:/usr/bin:/usr/sbin';

/**
 * Starts a container: `unshare -m --propagation private`, bind the rootfs on itself,
 * `pivot_root . .`, detach the old root, then (busybox) optional /proc mount and `setup`, then
 * sleep. Resolves once the container is inside its rootfs.
 */
export async function startContainer(t: Teardown, opts: ContainerOptions = {}): Promise<Container> {
  let rootfs = typeof opts.rootfs === 'object' ? opts.rootfs.dir : opts.rootfs;
  let built: Rootfs | undefined = typeof opts.rootfs === 'object' ? opts.rootfs : undefined;
  if (rootfs === undefined) {
    const dir = makeTempDir(t, 'rootfs');
    built = await makeRootfs(path.join(dir, 'root'));
    rootfs = built.dir;
  }
  const inner = [
    'umount -l .',
    'cd /',
    ...(opts.mountProc ? ['mount -t proc proc /proc'] : []),
    ...(opts.setup ? [`{ ${opts.setup}\n}`] : []),
    'echo nsview-container-ready',
    `exec sleep ${FOREVER}`,
  ].join(' && ');
  const outer = 'mount --bind "$0" "$0" && cd "$0" && pivot_root . . && exec /bin/busybox sh -c "$1"';
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', 'sh', '-c', outer, rootfs, inner], {
    env: { PATH: `${CONTAINER_PATH}:${process.env.PATH ?? ''}` },
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await s.kill();
  };
  t.teardown(stop);
  await waitReady(s, /^nsview-container-ready$/, `container on ${rootfs}`);
  const pid = s.child.pid!;
  const nsInode = await nsInodeOf(pid);
  return {
    pid,
    nsInode,
    rootfs,
    hostname: built?.hostname,
    exec: (cmd, execOpts = {}) =>
      run('nsenter', ['-t', String(pid), '-m', '-r', '-w', '--', '/bin/sh', '-c', cmd], {
        ...execOpts,
        env: { PATH: CONTAINER_PATH, HOME: '/', ...execOpts.env },
      }),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Process-less namespaces

export interface BindMountedNamespace {
  /** The nsfs bind mount (a file) that pins the namespace; `nsenter --mount=FILE` enters it. */
  file: string;
  nsInode: number;
  /** Unmounts the pin now (the namespace then dies). Teardown does it anyway. */
  release(): Promise<void>;
}

export interface PinOptions {
  /** Shell commands (host binaries) run inside the new namespace before it is left. */
  setup?: string;
  /** Name of the pin file (default `mnt`); any bytes but '/' and NUL. */
  fileName?: string;
}

/**
 * A private bind of `dir` on itself: `unshare --mount=FILE` refuses files on shared mounts, and
 * the host root may be shared (systemd). Returns the undo.
 */
async function privateMount(dir: string): Promise<() => Promise<void>> {
  await sh(`mount --bind ${shq(dir)} ${shq(dir)} && mount --make-private ${shq(dir)}`);
  return () => removeTree(dir);
}

/** A namespace with no process, pinned by `unshare --mount=FILE` (an nsfs bind mount). */
export async function makeBindMountedNamespace(t: Teardown, opts: PinOptions = {}): Promise<BindMountedNamespace> {
  const dir = makeTempDir(t, 'pin');
  const undo = await privateMount(dir);
  const file = path.join(dir, opts.fileName ?? 'mnt');
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await undo();
  };
  t.teardown(release);
  const body = opts.setup ? ['sh', '-c', opts.setup] : ['true'];
  await sh(`touch ${shq(file)}`);
  await run('unshare', [`--mount=${file}`, '--propagation', 'private', ...body]);
  const nsInode = (await stat(file)).ino;
  return { file, nsInode, release };
}

export interface FdHeldNamespace {
  /** The host-namespace process whose fd is the only reference. */
  holderPid: number;
  /** The fd number in the holder (`/proc/PID/fd/FD` -> `mnt:[N]`). */
  fd: number;
  nsInode: number;
  /** Kills the holder now (the namespace then dies). Teardown does it anyway. */
  release(): Promise<void>;
}

/**
 * A namespace with no process, held only by fd 3 of a host process (a `sleep`): a shell starts
 * `unshare -m sleep`, opens its /proc/PID/ns/mnt as fd 3, kills it, then execs sleep.
 */
export async function makeFdHeldNamespace(t: Teardown, opts: PinOptions = {}): Promise<FdHeldNamespace> {
  const body = opts.setup ? `sh -c ${shq(`${opts.setup}\nexec sleep ${FOREVER}`)}` : `sleep ${FOREVER}`;
  const script = `
    unshare -m --propagation private ${body} &
    p=$!
    self=$(readlink /proc/self/ns/mnt)
    while [ "$(readlink /proc/$p/ns/mnt 2>/dev/null)" = "$self" ]; do sleep 0.01; done
    exec 3</proc/$p/ns/mnt
    kill -KILL $p; wait $p 2>/dev/null
    echo "ns=$(stat -L -c %i /proc/self/fd/3)"
    exec sleep ${FOREVER}`;
  const s = spawnLongLived(['sh', '-c', script]);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await s.kill();
  };
  t.teardown(release);
  const line = await waitReady(s, /^ns=\d+$/, 'fd-held namespace');
  return { holderPid: s.child.pid!, fd: 3, nsInode: parseIno(line, 'ns'), release };
}

export interface NestedBindMountedNamespace {
  /** The namespace whose mount table holds the pin. */
  outer: { nsInode: number; pid?: number; file?: string };
  /** Path of the pin inside `outer` (on the host it is a plain empty file). */
  innerPath: string;
  /** The pinned namespace. */
  nsInode: number;
  /** Ends the outer namespace (and so the inner one). Teardown does it anyway. */
  release(): Promise<void>;
}

/**
 * A namespace with no process whose only pin is a bind mount inside another namespace `outer`.
 * `outer: 'process'` (default): outer has a process (a sleep); `'bindmount'`: outer is itself a
 * process-less namespace pinned on the host (a two-step chain).
 */
export async function makeNestedBindMountedNamespace(
  t: Teardown,
  opts: { outer?: 'process' | 'bindmount' } & PinOptions = {},
): Promise<NestedBindMountedNamespace> {
  const dir = makeTempDir(t, 'nested');
  const innerPath = path.join(dir, 'inner');
  await sh(`touch ${shq(innerPath)}`);
  const body = opts.setup ? ['sh', '-c', opts.setup] : ['true'];
  const pinInner = `unshare --mount=${shq(innerPath)} --propagation private ${body.map(shq).join(' ')} && echo "inner=$(stat -c %i ${shq(innerPath)})"`;

  // Binding a mount namespace file is refused (EINVAL, "mount namespace loop") unless the
  // bound namespace is newer than the caller's, judged by namespace id. On kernel 6.18 those ids
  // come from per-CPU batches, so a namespace created on another CPU can look older: about one
  // try in seven failed. Creating both namespaces on one CPU (taskset) keeps the ids in order.
  const cpu = String(firstAllowedCpu());
  const s = spawnLongLived([
    'taskset',
    '-c',
    cpu,
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    `${pinInner} && exec sleep ${FOREVER}`,
  ]);
  let killed = false;
  const killOuter = async () => {
    if (killed) return;
    killed = true;
    await s.kill();
  };
  t.teardown(killOuter);
  const line = await waitReady(s, /^inner=\d+$/, 'nested namespace (outer process)');
  const pid = s.child.pid!;
  const outerNs = await nsInodeOf(pid);
  const nsInode = parseIno(line, 'inner');

  if ((opts.outer ?? 'process') === 'process') {
    return { outer: { nsInode: outerNs, pid }, innerPath, nsInode, release: killOuter };
  }
  // 'bindmount': pin the outer namespace on the host, then let its process go.
  const pins = makeTempDir(t, 'pin');
  const undo = await privateMount(pins);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await killOuter();
    await undo();
  };
  t.teardown(release);
  const file = path.join(pins, 'outer');
  await sh(`touch ${shq(file)} && mount --bind /proc/${pid}/ns/mnt ${shq(file)}`);
  await killOuter();
  return { outer: { nsInode: outerNs, file }, innerPath, nsInode, release };
}

/** The first CPU this process may run on (from /proc/self/status). */
function firstAllowedCpu(): number {
  const m = /^Cpus_allowed_list:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

// ---------------------------------------------------------------------------------------------
// Thread namespaces

export interface ThreadNamespace {
  /** The node process (its main thread stays in the host namespace). */
  pid: number;
  /** The worker thread that unshared its mount namespace. */
  tid: number;
  nsInode: number;
  /** If `tmpfsAt` was given: the file written on that tmpfs (visible only in the thread's ns). */
  markerFile?: string;
  /** Kills the process now. Teardown does it anyway. */
  release(): Promise<void>;
}

const THREAD_CHILD = fileURLToPath(new URL('./thread-ns-child.js', import.meta.url));

/**
 * A node child process whose worker thread did unshare(CLONE_FS) + unshare(CLONE_NEWNS) (koffi).
 * With `tmpfsAt` (an existing directory), the thread also makes its mounts private and mounts a
 * tmpfs there holding `nsview-thread-marker` ("thread <tid>\n"), so the thread's namespace differs
 * visibly from the host's.
 */
export async function makeThreadNamespace(t: Teardown, opts: { tmpfsAt?: string } = {}): Promise<ThreadNamespace> {
  const args = [process.execPath, THREAD_CHILD, ...(opts.tmpfsAt ? [opts.tmpfsAt] : [])];
  const s = spawnLongLived(args);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await s.kill();
  };
  t.teardown(release);
  const line = await waitReady(s, /^\{.*"tid"/, 'thread namespace child');
  const info = JSON.parse(line) as { pid: number; tid: number; nsInode: number; markerFile?: string };
  return { ...info, release };
}

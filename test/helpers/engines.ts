/**
 * Real container engines for tests, each with private roots, state directories and sockets (the
 * host's /run/docker, /run/containerd and /var/lib/containers are never touched), started once
 * per test file and removed completely afterwards: containers, their shims, mounts and files.
 *
 * - startDocker: dockerd (and the containerd it starts) with --iptables=false --ip-forward=false
 *   --ip-masq=false --bridge=none; containers need `--network none`.
 * - startPodman: no daemon; every command gets --root/--runroot/--tmpdir and a containers.conf
 *   with runc, cgroupfs and lowered rlimits (crun and the default rlimits fail on these hosts).
 * - startContainerd: containerd with a private config, root, state and socket; `ctr run --rootfs`
 *   runs a container straight from a directory, so it needs no image.
 *
 * The image is the busybox rootfs of ./rootfs.ts as a tar (imported with `docker import` and
 * `podman import`); scripts/setup-engines installs the packages.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { mkdir, readFile, readdir, readlink, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnLongLived, type Spawned } from './namespaces.js';
import {
  ownerToken,
  pidAlive,
  run,
  sh,
  shq,
  waitExit,
  waitFor,
  type RunOptions,
  type RunResult,
  type Teardown,
} from './proc.js';
import { makeRootfs } from './rootfs.js';
import { OWNER_FILE, removeTree, TMP_PREFIX } from './tmp.js';
import { unixGetJson } from '../../src/engines/unix-http.js';

const START_TIMEOUT_MS = 30_000;

/** A rootfs directory and its tar, for `docker import` / `podman import` / `ctr run --rootfs`. */
export interface EngineImage {
  rootfs: string;
  tar: string;
  hostname: string;
}

export async function makeEngineImage(dir: string): Promise<EngineImage> {
  const rootfs = path.join(dir, 'rootfs');
  const r = await makeRootfs(rootfs);
  const tar = path.join(dir, 'rootfs.tar');
  await run('tar', ['-C', rootfs, '-cf', tar, '.']);
  return { rootfs, tar, hostname: r.hostname };
}

/** PIDs of processes whose command line contains `needle` (never this process or its ancestors). */
async function pidsMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${p}/cmdline`, 'utf8')).includes(needle)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Direct children of `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * SIGKILLs shims (processes mentioning `needle`) and the container init processes they parent.
 * A container's init is the shim's child; killing it ends the container's PID namespace.
 */
export async function killShimsAndContainers(needle: string): Promise<number> {
  const shims = await pidsMentioning(needle);
  const victims = new Set<number>();
  for (const s of shims) {
    victims.add(s);
    for (const c of await childrenOf(s)) victims.add(c);
  }
  for (const v of victims) {
    try {
      process.kill(v, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitFor('killed shims to exit', () => [...victims].every((v) => !pidAlive(v) || isZombie(v)), {
    timeoutMs: 10_000,
  }).catch(() => {});
  return victims.size;
}

/** A killed child of a dead parent may linger as a zombie until init reaps it: that is gone. */
function isZombie(pid: number): boolean {
  try {
    // procfs stat of another process never blocks.
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return true;
  }
}

async function stopDaemon(d: Spawned, timeoutMs = 15_000): Promise<void> {
  if (d.child.exitCode === null && d.child.signalCode === null) {
    d.child.kill('SIGTERM');
    if (!(await waitExit(d.child, timeoutMs))) await d.kill();
  }
}

function describe(d: Spawned): string {
  return `--- stderr ---\n${d.stderr.all().slice(-3000)}`;
}

// --- Docker ---------------------------------------------------------------------------------

export interface DockerEngine {
  socket: string;
  execRoot: string;
  dataRoot: string;
  pid: number;
  /** Runs the docker CLI against this daemon. */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Init PID of a running container. */
  pidOf(name: string): Promise<number>;
  /** Milliseconds from spawn to a served API. */
  startMs: number;
  /** SIGKILLs dockerd (its shims and containers live on until teardown). */
  killDaemon(): Promise<void>;
}

const DOCKER_CLI = '/usr/bin/docker';

export async function startDocker(scope: Teardown, dir: string): Promise<DockerEngine> {
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'exec');
  const socket = path.join(dir, 'docker.sock');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'daemon.json'), '{}\n');
  const started = Date.now();
  const d = spawnLongLived(
    [
      'dockerd',
      '--data-root',
      dataRoot,
      '--exec-root',
      execRoot,
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      '--iptables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
      '--config-file',
      path.join(dir, 'daemon.json'),
      '--storage-driver',
      'overlay2',
    ],
    { pdeathsig: 'TERM' },
  );
  const docker = (args: string[], opts?: RunOptions) => run(DOCKER_CLI, ['-H', `unix://${socket}`, ...args], opts);
  scope.teardown(async () => {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      await sh(
        `${DOCKER_CLI} -H unix://${shq(socket)} ps -aq | xargs -r ${DOCKER_CLI} -H unix://${shq(socket)} rm -f`,
        { check: false, timeoutMs: 60_000 },
      );
    }
    await stopDaemon(d);
    await killShimsAndContainers(execRoot);
    await removeTree(dir);
  });
  await waitFor(
    'dockerd to serve its API',
    async () => d.child.exitCode === null && (await docker(['version'], { check: false, timeoutMs: 5_000 })).code === 0,
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 100 },
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${describe(d)}`);
  });
  const startMs = Date.now() - started;
  return {
    socket,
    execRoot,
    dataRoot,
    pid: d.child.pid!,
    docker,
    startMs,
    pidOf: async (name) => Number((await docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim()),
    killDaemon: async () => {
      d.child.kill('SIGKILL');
      await waitExit(d.child, 10_000);
    },
  };
}

// --- Podman ---------------------------------------------------------------------------------

export interface PodmanEngine {
  root: string;
  runroot: string;
  podman(args: string[], opts?: RunOptions): Promise<RunResult>;
  pidOf(name: string): Promise<number>;
  /** Starts `podman system service` on a private socket (stopped at teardown); returns the socket. */
  startService(): Promise<string>;
}

export async function startPodman(scope: Teardown, dir: string): Promise<PodmanEngine> {
  const root = path.join(dir, 'root');
  // Podman refuses a runroot longer than 50 characters: it gets a short directory of its own.
  const runroot = mkdtempSync(path.join(tmpdir(), `${TMP_PREFIX}pm-`));
  writeFileSync(path.join(runroot, OWNER_FILE), `${ownerToken()}\n`);
  const tmp = path.join(dir, 'tmp');
  const conf = path.join(dir, 'containers.conf');
  await mkdir(tmp, { recursive: true });
  await writeFile(
    conf,
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]\n' +
      '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
  );
  const podman = (args: string[], opts?: RunOptions) =>
    run('podman', ['--root', root, '--runroot', runroot, '--tmpdir', tmp, ...args], {
      ...opts,
      env: { CONTAINERS_CONF: conf, ...opts?.env },
    });
  scope.teardown(async () => {
    await podman(['rm', '-af', '-t', '0'], { check: false, timeoutMs: 60_000 });
    await podman(['pod', 'rm', '-af', '-t', '0'], { check: false, timeoutMs: 60_000 });
    await killShimsAndContainers(root);
    await podman(['system', 'reset', '-f'], { check: false, timeoutMs: 60_000 });
    await removeTree(runroot);
    await removeTree(dir);
  });
  let service: Spawned | undefined;
  const socket = path.join(dir, 'podman.sock');
  scope.teardown(async () => {
    if (service) await stopDaemon(service);
  });
  return {
    root,
    runroot,
    podman,
    pidOf: async (name) => Number((await podman(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim()),
    startService: async () => {
      service = spawnLongLived(
        [
          'podman',
          '--root',
          root,
          '--runroot',
          runroot,
          '--tmpdir',
          tmp,
          'system',
          'service',
          '--time=0',
          `unix://${socket}`,
        ],
        {
          pdeathsig: 'TERM',
          env: { CONTAINERS_CONF: conf },
        },
      );
      const s = service;
      await waitFor(
        'podman API to serve',
        async () =>
          s.child.exitCode === null &&
          (await unixGetJson(socket, '/v4.0.0/libpod/version', { timeoutMs: 2_000 }).then(
            () => true,
            () => false,
          )),
        { timeoutMs: START_TIMEOUT_MS, intervalMs: 100 },
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${describe(s)}`);
      });
      return socket;
    },
  };
}

// --- containerd -----------------------------------------------------------------------------

export interface ContainerdEngine {
  socket: string;
  state: string;
  pid: number;
  ctr(namespace: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** `ctr run -d --rootfs ROOTFS ID sleep` with labels and annotations; returns the init PID. */
  run(
    namespace: string,
    id: string,
    opts?: { annotations?: Record<string, string>; labels?: Record<string, string> },
  ): Promise<number>;
  /** Kills and deletes a task and its container. */
  remove(namespace: string, id: string): Promise<void>;
  /** SIGKILLs the daemon (its shims and containers live on until teardown). */
  killDaemon(): Promise<void>;
  startMs: number;
}

export async function startContainerd(scope: Teardown, dir: string, rootfs: string): Promise<ContainerdEngine> {
  const socket = path.join(dir, 'containerd.sock');
  const state = path.join(dir, 'state');
  const config = path.join(dir, 'config.toml');
  await mkdir(dir, { recursive: true });
  await writeFile(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(path.join(dir, 'root'))}`,
      `state = ${JSON.stringify(state)}`,
      '[grpc]',
      `  address = ${JSON.stringify(socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  disable_tcp_service = true',
      '',
    ].join('\n'),
  );
  const started = Date.now();
  const d = spawnLongLived(['containerd', '--config', config], { pdeathsig: 'TERM' });
  const ctr = (ns: string, args: string[], opts?: RunOptions) => run('ctr', ['-a', socket, '-n', ns, ...args], opts);
  const made = new Set<string>(); // "ns/id"
  const namespaces = new Set<string>();
  const remove = async (ns: string, id: string): Promise<void> => {
    await ctr(ns, ['task', 'kill', '-s', 'KILL', id], { check: false });
    await waitFor(
      `task ${id} to stop`,
      async () =>
        !/RUNNING/.test(
          (await ctr(ns, ['task', 'ls'], { check: false })).stdout
            .split('\n')
            .filter((l) => l.startsWith(`${id} `))
            .join(''),
        ),
      { timeoutMs: 10_000, intervalMs: 100 },
    ).catch(() => {});
    await ctr(ns, ['task', 'rm', '-f', id], { check: false });
    await ctr(ns, ['container', 'rm', id], { check: false });
    made.delete(`${ns}/${id}`);
  };
  scope.teardown(async () => {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      for (const k of [...made]) {
        const [ns, id] = k.split('/') as [string, string];
        await remove(ns, id);
      }
    }
    await stopDaemon(d);
    await killShimsAndContainers(socket);
    // The shims keep runc's state under the host-wide default root: remove what is ours.
    for (const k of made) await run('rm', ['-rf', '--', path.join('/run/containerd/runc', k)], { check: false });
    // ...and the namespace directories the shims made there, when nothing else is in them.
    for (const ns of namespaces) await rmdir(path.join('/run/containerd/runc', ns)).catch(() => {});
    await removeTree(dir);
  });
  await waitFor(
    'containerd to serve',
    async () =>
      d.child.exitCode === null &&
      (await run('ctr', ['-a', socket, 'version'], { check: false, timeoutMs: 5_000 })).code === 0,
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 50 },
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${describe(d)}`);
  });
  const startMs = Date.now() - started;
  return {
    socket,
    state,
    pid: d.child.pid!,
    ctr,
    remove,
    startMs,
    run: async (ns, id, opts = {}) => {
      // --rootfs is a switch: the positional image argument is then the rootfs directory.
      const args = ['run', '-d', '--rootfs'];
      for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--label', `${k}=${v}`);
      for (const [k, v] of Object.entries(opts.annotations ?? {})) args.push('--annotation', `${k}=${v}`);
      made.add(`${ns}/${id}`);
      namespaces.add(ns);
      await ctr(ns, [...args, rootfs, id, '/bin/sleep', '999999']);
      const pid = Number(
        (await readFile(path.join(state, 'io.containerd.runtime.v2.task', ns, id, 'init.pid'), 'utf8')).trim(),
      );
      return pid;
    },
    killDaemon: async () => {
      d.child.kill('SIGKILL');
      await waitExit(d.child, 10_000);
    },
  };
}

/** Mount namespace inode of a process (read while it is known to be alive). */
export async function mntnsOf(pid: number): Promise<number> {
  const m = /^mnt:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/ns/mnt`));
  if (!m) throw new Error(`no mount namespace for pid ${pid}`);
  return Number(m[1]);
}

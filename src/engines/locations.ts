/**
 * Where the engines on this host keep their sockets and state, found the way the engines are
 * configured: their config files, then the command lines of the daemons that run right now
 * (each running daemon is one instance, whatever its private roots), then the built-in defaults;
 * `overrides` (filled from the CLI) replace what was found.
 *
 * Only the command lines of processes whose `comm` names an engine daemon are read (reading
 * another process's cmdline touches its memory; `comm` does not). Every read is asynchronous.
 */
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { asArray, asObject, parseJson, str } from './json.js';
import type { ContainerdLocation } from './containerd.js';
import type { DockerLocation } from './docker.js';
import type { StorageLocation } from './containers-storage.js';
import type { EngineKind } from './model.js';

export interface PodmanApiLocation {
  socket: string;
}

export interface EngineOverrides {
  /** Engines not to look at. */
  disable?: EngineKind[];
  /** Only these locations, instead of what discovery finds (per engine, when given). */
  docker?: DockerLocation[];
  storage?: StorageLocation[];
  podmanApi?: PodmanApiLocation[];
  containerd?: ContainerdLocation[];
  /** Where the config files are read from (tests; default /etc). */
  etc?: string;
  /** Also read running daemons' command lines (default true). */
  scanProcesses?: boolean;
}

export interface EngineLocations {
  docker: DockerLocation[];
  /** Podman API sockets that serve (`podman system service`). */
  podmanApi: PodmanApiLocation[];
  storage: StorageLocation[];
  containerd: ContainerdLocation[];
}

export const DOCKER_DEFAULTS = { socket: '/run/docker.sock', execRoot: '/run/docker', dataRoot: '/var/lib/docker' };
export const STORAGE_DEFAULTS = { graphroot: '/var/lib/containers/storage', runroot: '/run/containers/storage' };
export const PODMAN_API_DEFAULT = '/run/podman/podman.sock';
export const CONTAINERD_DEFAULTS = {
  socket: '/run/containerd/containerd.sock',
  state: '/run/containerd',
  root: '/var/lib/containerd',
};

/** Value of `--name V` / `--name=V` (any of `names`) in argv; the last one wins, as with flag parsers. */
export function flagValue(argv: readonly string[], names: readonly string[]): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    for (const n of names) {
      if (a === n && i + 1 < argv.length) v = argv[i + 1];
      else if (a.startsWith(`${n}=`)) v = a.slice(n.length + 1);
    }
  }
  return v;
}

/** A path argument of process `p`, made absolute against its working directory. */
function procPath(p: { cwd: string }, v: string | undefined): string | undefined {
  return v === undefined ? undefined : path.resolve(p.cwd, v);
}

/** All values of a repeated flag. */
export function flagValues(argv: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    for (const n of names) {
      if (a === n && i + 1 < argv.length) out.push(argv[i + 1]!);
      else if (a.startsWith(`${n}=`)) out.push(a.slice(n.length + 1));
    }
  }
  return out;
}

/** `unix:///path` or a bare path -> the path; other schemes (tcp://) -> undefined. */
export function unixPath(addr: string): string | undefined {
  if (addr.startsWith('unix://')) return addr.slice('unix://'.length) || undefined;
  if (addr.startsWith('/')) return addr;
  return undefined;
}

/**
 * The few TOML settings nsview needs (`key = "value"` per [section]) from containerd's
 * config.toml and containers/storage's storage.conf. Not a TOML parser: other lines are ignored.
 */
export function tomlStrings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') continue;
    const sec = /^\[+\s*([^\]]+?)\s*\]+$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const kv = /^([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(#.*)?$/.exec(line);
    if (kv)
      out.set(section ? `${section}.${kv[1]}` : kv[1]!, kv[2] !== undefined ? kv[2].replace(/\\(.)/g, '$1') : kv[3]!);
  }
  return out;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

interface Proc {
  pid: number;
  comm: string;
  argv: string[];
  /** The process's working directory (relative paths in argv are relative to it). */
  cwd: string;
}

const DAEMON_COMMS = new Set(['dockerd', 'containerd', 'conmon', 'crio', 'podman']);

/** Running engine daemons (by comm), with their argv. */
export async function engineProcesses(): Promise<Proc[]> {
  const out: Proc[] = [];
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const p of pids) {
    const comm = (await readText(`/proc/${p}/comm`))?.trim();
    if (!comm || !DAEMON_COMMS.has(comm)) continue;
    const cmdline = await readText(`/proc/${p}/cmdline`);
    if (cmdline === undefined) continue;
    let cwd = '/';
    try {
      cwd = await readlink(`/proc/${p}/cwd`);
    } catch {
      /* gone, or not ours to see: relative paths stay relative to / */
    }
    out.push({
      pid: Number(p),
      comm,
      cwd,
      argv: cmdline.split('\0').filter((a, i, all) => i < all.length - 1 || a !== ''),
    });
  }
  return out;
}

async function dockerFromConfig(file: string): Promise<Partial<DockerLocation> & { dataRoot?: string }> {
  const cfg = asObject(parseJson((await readText(file)) ?? ''));
  const host = (asArray(cfg?.['hosts']) ?? [])
    .map((h) => (typeof h === 'string' ? unixPath(h) : undefined))
    .find((h) => h !== undefined);
  return { socket: host, execRoot: str(cfg, 'exec-root'), dataRoot: str(cfg, 'data-root') ?? str(cfg, 'graph') };
}

async function containerdFromConfig(file: string): Promise<Partial<ContainerdLocation>> {
  const text = await readText(file);
  if (text === undefined) return {};
  const t = tomlStrings(text);
  return { state: t.get('state'), socket: t.get('grpc.address') };
}

/** Finds every engine instance (see the module comment). */
export async function discoverEngineLocations(overrides: EngineOverrides = {}): Promise<EngineLocations> {
  const etc = overrides.etc ?? '/etc';
  const disabled = new Set(overrides.disable ?? []);
  const procs = overrides.scanProcesses === false ? [] : await engineProcesses();

  // Docker: each running dockerd, else the configured (or default) one if its socket exists.
  const docker = new Map<string, DockerLocation>();
  for (const p of procs.filter((q) => q.comm === 'dockerd')) {
    const cfg = await dockerFromConfig(
      procPath(p, flagValue(p.argv, ['--config-file'])) ?? path.join(etc, 'docker/daemon.json'),
    );
    const socket =
      procPath(
        p,
        flagValues(p.argv, ['-H', '--host'])
          .map(unixPath)
          .find((s) => s !== undefined),
      ) ??
      cfg.socket ??
      DOCKER_DEFAULTS.socket;
    docker.set(socket, {
      socket,
      execRoot: procPath(p, flagValue(p.argv, ['--exec-root'])) ?? cfg.execRoot ?? DOCKER_DEFAULTS.execRoot,
    });
  }
  if (docker.size === 0) {
    const cfg = await dockerFromConfig(path.join(etc, 'docker/daemon.json'));
    const socket = cfg.socket ?? DOCKER_DEFAULTS.socket;
    if (await exists(socket)) docker.set(socket, { socket, execRoot: cfg.execRoot ?? DOCKER_DEFAULTS.execRoot });
  }

  // containerd: each running containerd (Docker's own included: the registry keeps Docker's
  // view of a container both report), else the configured one.
  const containerd = new Map<string, ContainerdLocation>();
  for (const p of procs.filter((q) => q.comm === 'containerd')) {
    const cfg = await containerdFromConfig(
      procPath(p, flagValue(p.argv, ['--config', '-c'])) ?? path.join(etc, 'containerd/config.toml'),
    );
    const addr = unixPath(flagValue(p.argv, ['--address', '-a']) ?? cfg.socket ?? CONTAINERD_DEFAULTS.socket);
    const socket = procPath(p, addr);
    const state = procPath(p, flagValue(p.argv, ['--state'])) ?? cfg.state ?? CONTAINERD_DEFAULTS.state;
    if (socket) containerd.set(socket, { socket, state });
  }
  if (containerd.size === 0) {
    const cfg = await containerdFromConfig(path.join(etc, 'containerd/config.toml'));
    const socket = cfg.socket ?? CONTAINERD_DEFAULTS.socket;
    if (await exists(socket)) containerd.set(socket, { socket, state: cfg.state ?? CONTAINERD_DEFAULTS.state });
  }

  // containers/storage (Podman, CRI-O): the configured root, plus every root a running conmon
  // names (Podman passes its --root/--runroot to conmon's exit command; rootless Podman also
  // its runc root as a runtime argument).
  const storage = new Map<string, StorageLocation>();
  const conf = tomlStrings((await readText(path.join(etc, 'containers/storage.conf'))) ?? '');
  const defaultLoc: StorageLocation = {
    graphroot: conf.get('storage.graphroot') ?? STORAGE_DEFAULTS.graphroot,
    runroot: conf.get('storage.runroot') ?? STORAGE_DEFAULTS.runroot,
  };
  if (await exists(defaultLoc.graphroot)) storage.set(defaultLoc.graphroot, defaultLoc);
  for (const p of procs.filter((q) => q.comm === 'conmon')) {
    const exitArgs = flagValues(p.argv, ['--exit-command-arg']);
    const graphroot = flagValue(exitArgs, ['--root']) ?? graphrootOfBundle(flagValue(p.argv, ['-b', '--bundle']));
    if (!graphroot || storage.has(graphroot)) continue;
    const runtimeRoot = flagValue(flagValues(p.argv, ['--runtime-arg']), ['--root']);
    storage.set(graphroot, {
      graphroot,
      runroot: flagValue(exitArgs, ['--runroot']),
      ...(runtimeRoot ? { runtimeRoots: [runtimeRoot] } : {}),
    });
  }

  // Podman's API: every `podman system service` (its last argument is the URI, default the
  // rootful socket), and the rootful socket when something serves it (socket activation).
  const podmanApi = new Map<string, PodmanApiLocation>();
  for (const p of procs.filter((q) => q.comm === 'podman')) {
    const i = p.argv.indexOf('system');
    if (i < 0 || p.argv[i + 1] !== 'service') continue;
    const uri = p.argv.slice(i + 2).find((a) => !a.startsWith('-') && a.includes('://'));
    const socket = uri === undefined ? PODMAN_API_DEFAULT : procPath(p, unixPath(uri));
    if (socket) podmanApi.set(socket, { socket });
  }
  if (await exists(PODMAN_API_DEFAULT)) podmanApi.set(PODMAN_API_DEFAULT, { socket: PODMAN_API_DEFAULT });

  return {
    podmanApi: disabled.has('podman') ? [] : (overrides.podmanApi ?? [...podmanApi.values()]),
    docker: disabled.has('docker') ? [] : (overrides.docker ?? [...docker.values()]),
    containerd: disabled.has('containerd') ? [] : (overrides.containerd ?? [...containerd.values()]),
    storage: disabled.has('podman') && disabled.has('cri-o') ? [] : (overrides.storage ?? [...storage.values()]),
  };
}

/** `<graphroot>/<driver>-containers/<id>/userdata` -> graphroot. */
function graphrootOfBundle(bundle: string | undefined): string | undefined {
  const m = bundle ? /^(\/.+)\/[a-z0-9]+-containers\/[0-9a-f]{12,128}\/userdata\/?$/.exec(bundle) : null;
  return m ? m[1] : undefined;
}

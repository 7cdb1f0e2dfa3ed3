/**
 * Running nsview itself: `startNsview` runs the daemon in the foreground as a child process on
 * a private temporary mountpoint; `runNsview` runs any CLI command to completion.
 *
 * The daemon is always another process than the test, so a test may read the mount; still
 * prefer async fs calls (or child processes) on it: a hung daemon then fails one test by timeout
 * instead of freezing the worker.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir } from 'node:fs/promises';
import { spawnLongLived } from './namespaces.js';
import {
  killGroup,
  run,
  waitExit,
  waitForLine,
  sleep,
  type RunOptions,
  type RunResult,
  type Teardown,
} from './proc.js';
import { detachMount, findMount, makeTempDir } from './tmp.js';
import { removePidFile } from '../../src/cli/pidfile.js';

/** The repository root (helpers run from dist/test/helpers/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NSVIEW_BIN = path.join(REPO_ROOT, 'bin', 'nsview');

/** Bound for the daemon to mount and say `mounted`. */
export const MOUNT_TIMEOUT_MS = 15_000;
/** Bound for the daemon to exit after SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS = 5_000;

export interface NsviewOptions {
  /** --symlinks (default: the daemon's default). */
  symlinks?: 'rewrite' | 'raw';
  allowOther?: boolean;
  pseudo?: boolean;
  /** --verbose (default: on when NSVIEW_TEST_VERBOSE is set). */
  verbose?: boolean;
  /** More CLI arguments, appended after the others (e.g. ['--idle-release', '2']). */
  extraArgs?: string[];
  /** Mountpoint to use instead of a fresh `<tmp>/nsview-test-mnt-XXXX/mnt`. */
  mountpoint?: string;
  /** Extra environment for the daemon. */
  env?: NodeJS.ProcessEnv;
}

export interface StopResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The daemon did not exit within STOP_TIMEOUT_MS after SIGTERM and was SIGKILLed. */
  killed: boolean;
  /** The mount was still there after the daemon exited and had to be detached by the helper. */
  leftMounted: boolean;
}

export interface Nsview {
  mountpoint: string;
  proc: ChildProcess;
  pid: number;
  /** Everything the daemon wrote to stderr so far (last MiB). */
  stderr(): string;
  stdout(): string;
  /** True while the mountpoint is in this namespace's mountinfo. */
  isMounted(): Promise<boolean>;
  /** SIGTERM, wait, SIGKILL if needed, detach a left mount. Idempotent; teardown calls it. */
  stop(): Promise<StopResult>;
}

/**
 * Spawns `node bin/nsview mount -f MOUNTPOINT ...` (under `setpriv --pdeathsig TERM`, so it
 * unmounts itself if the test worker dies) and waits, at most MOUNT_TIMEOUT_MS, until the mount
 * is in /proc/self/mountinfo and the daemon printed a line containing `mounted`.
 * Set NSVIEW_TEST_VERBOSE=1 to copy the daemon's stderr to the test's stderr.
 */
export async function startNsview(t: Teardown, opts: NsviewOptions = {}): Promise<Nsview> {
  let mountpoint = opts.mountpoint;
  if (mountpoint === undefined) {
    mountpoint = path.join(makeTempDir(t, 'mnt'), 'mnt');
    await mkdir(mountpoint);
  }
  const verbose = opts.verbose ?? Boolean(process.env.NSVIEW_TEST_VERBOSE);
  const args = [
    NSVIEW_BIN,
    'mount',
    '-f',
    mountpoint,
    ...(opts.symlinks ? ['--symlinks', opts.symlinks] : []),
    ...(opts.allowOther ? ['--allow-other'] : []),
    ...(opts.pseudo ? ['--pseudo'] : []),
    ...(verbose ? ['--verbose'] : []),
    ...(opts.extraArgs ?? []),
  ];
  const s = spawnLongLived([process.execPath, ...args], { pdeathsig: 'TERM', env: opts.env });
  if (process.env.NSVIEW_TEST_VERBOSE) s.child.stderr!.on('data', (b: Buffer) => process.stderr.write(b));
  const proc = s.child;
  const mp = mountpoint;

  let stopping: Promise<StopResult> | undefined;
  // A daemon that had to be killed leaves its pid file in /run/nsview: never leave one behind.
  const stop = () => (stopping ??= stopDaemon(proc, mp).finally(() => removePidFile(mp, proc.pid ?? -1)));
  t.teardown(stop);

  const describe = () => `nsview ${args.slice(1).join(' ')}\n--- stderr ---\n${s.stderr.all().slice(-8000)}`;
  const deadline = Date.now() + MOUNT_TIMEOUT_MS;
  await waitForLine(proc, s.stderr, /mounted/, MOUNT_TIMEOUT_MS, describe);
  while (!(await findMount(mp))) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`nsview exited before its mount appeared\n${describe()}`);
    if (Date.now() > deadline) throw new Error(`nsview said mounted but ${mp} is not in mountinfo\n${describe()}`);
    await sleep(25);
  }
  return {
    mountpoint: mp,
    proc,
    pid: proc.pid!,
    stderr: () => s.stderr.all(),
    stdout: () => s.stdout.all(),
    isMounted: async () => (await findMount(mp)) !== undefined,
    stop,
  };
}

async function stopDaemon(proc: ChildProcess, mountpoint: string): Promise<StopResult> {
  let killed = false;
  if (proc.exitCode === null && proc.signalCode === null) {
    try {
      proc.kill('SIGTERM');
    } catch {
      /* gone */
    }
    if (!(await waitExit(proc, STOP_TIMEOUT_MS))) {
      killed = true;
      killGroup(proc.pid, 'SIGKILL');
      await waitExit(proc, STOP_TIMEOUT_MS);
    }
  }
  killGroup(proc.pid, 'SIGKILL'); // anything the daemon started in its group
  let leftMounted = false;
  for (let m = await findMount(mountpoint); m; m = await findMount(mountpoint)) {
    leftMounted = true;
    await detachMount(m);
  }
  return { code: proc.exitCode, signal: proc.signalCode as NodeJS.Signals | null, killed, leftMounted };
}

/**
 * Runs `node bin/nsview ARGS` to completion (default timeout 30 s) and returns its code and
 * output; never throws for a non-zero exit (pass `{ check: true }` for that).
 */
export function runNsview(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [NSVIEW_BIN, ...args], { check: false, ...opts });
}

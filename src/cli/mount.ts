/**
 * `nsview mount`: in the foreground, run the daemon until a signal; otherwise start the same
 * command in the foreground as a detached child and return once it reports that it is serving
 * (or print why it could not, with the child's exit status).
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startDaemon } from '../daemon/daemon.js';
import type { DaemonOptions } from '../daemon/daemon.js';
import type { Logger } from '../daemon/log.js';
import { PreflightError, checkEmptyMountpoint, checkOptionCombination, checkPrivileges } from '../daemon/preflight.js';
import { findMount } from '../fuse/index.js';
import { daemonOf, pidFileFor, removePidFile, writePidFile } from './pidfile.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from '../daemon/node-flags.js';
import { CliError, EXIT } from './exit-codes.js';
import { exitNow } from '../sys/libc.js';

export interface MountMode {
  foreground: boolean;
  /** Mount even over a directory with files in it. */
  nonempty: boolean;
  readyFd?: number | undefined;
  logFile: string;
  argv: string[];
}

const BACKGROUND_START_TIMEOUT_MS = 30_000;
/** Groups below this gid are system groups (Debian policy, login.defs SYS_GID_MAX < 1000). */
const SYSTEM_GID_LIMIT = 1000;

/**
 * Refusals that need no daemon: another nsview already serves here (named by its pid), or the
 * directory has files a mount would hide. A dead mount is left for the daemon to clean.
 */
function checkMountpointFree(mountpoint: string, nonempty: boolean): void {
  let m;
  try {
    m = findMount(mountpoint);
  } catch {
    return; // a missing parent: the daemon's checks say so
  }
  if (m === undefined) {
    if (!nonempty) checkEmptyMountpoint(mountpoint);
    return;
  }
  const pid = daemonOf(mountpoint);
  if (pid !== undefined) {
    throw new CliError(
      `${mountpoint} is already mounted by nsview (server pid ${pid}); run \`nsview unmount ${mountpoint}\` first`,
      EXIT.MOUNT_FAILURE,
    );
  }
}
/** How long a shutdown may take before the daemon exits anyway. */
const STOP_DEADLINE_MS = 10_000;

export async function runMount(opts: DaemonOptions, mode: MountMode, log: Logger): Promise<void> {
  checkOptionCombination(opts);
  if (!mode.foreground) {
    // Before touching the log file: a non-root user must hear why, not that /var/log is closed.
    checkPrivileges();
    checkMountpointFree(opts.mountpoint, mode.nonempty);
    return startInBackground(opts, mode);
  }
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    checkMountpointFree(opts.mountpoint, mode.nonempty);
    daemon = await startDaemon(opts, log);
  } catch (err) {
    if (mode.readyFd !== undefined) {
      const code = err instanceof CliError || err instanceof PreflightError ? err.exitCode : EXIT.MOUNT_FAILURE;
      report(mode.readyFd, `error ${code} ${(err as Error).message}`);
    }
    throw err;
  }
  // The pid file first, then the word: whoever waits for "mounted" may rely on it. A daemon
  // that cannot record itself could not be stopped by `nsview unmount`: it does not stay.
  try {
    writePidFile(opts.mountpoint);
  } catch (err) {
    await daemon.stop('cannot write the pid file');
    const why = `cannot write the pid file ${pidFileFor(opts.mountpoint)}: ${(err as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symlink' : (err as Error).message}`;
    if (mode.readyFd !== undefined) report(mode.readyFd, `error ${EXIT.MOUNT_FAILURE} ${why}`);
    throw new CliError(why, EXIT.MOUNT_FAILURE);
  }
  log.info(daemon.description);
  const exit = (code: number) => {
    removePidFile(opts.mountpoint);
    // Not process.exit(): it joins every worker thread, and one blocked in a hung filesystem
    // inside a namespace never returns, so the daemon would stay, unmounted, ignoring signals.
    // The mount is gone by now; _exit ends every thread, stuck ones included.
    exitNow(code);
  };
  // Shutdown must end even if unmounting or closing waits on something stuck: past this, exit.
  const deadline = () => setTimeout(() => exit(1), STOP_DEADLINE_MS);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      deadline();
      void daemon.stop(sig).then(() => exit(0));
    });
  }
  // Last line of defence: whatever goes wrong, take the mount down rather than leave it dead.
  const crash = (err: unknown) => {
    log.error(`fatal: ${(err as Error)?.stack ?? String(err)}`);
    deadline();
    void daemon.stop('fatal error').finally(() => exit(1));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  if (mode.readyFd !== undefined) report(mode.readyFd, 'ok');
  await daemon.done;
  exit(0);
}

function report(fd: number, message: string): void {
  try {
    fs.writeSync(fd, `${message.replace(/\n/g, ' ')}\n`);
    fs.closeSync(fd);
  } catch {
    // The parent went away; nothing to tell.
  }
}

/**
 * The log file, opened for appending (so logrotate's copytruncate never leaves a hole) without
 * following a symlink, in a directory owned by root that no ordinary user can write to:
 * otherwise another user could plant a file or link under the name for root to append to.
 * Group write is accepted for system groups only (Ubuntu's /var/log is root:syslog 0775).
 */
export function openLogFile(file: string): number {
  const dir = path.dirname(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new PreflightError(`log file directory ${dir} does not exist`);
  }
  const groupWritable = (st.mode & 0o020) !== 0 && st.gid >= SYSTEM_GID_LIMIT;
  if (st.uid !== 0 || (st.mode & 0o002) !== 0 || groupWritable) {
    throw new PreflightError(
      `log file directory ${dir} must be owned by root and not writable by other users (pass --log-file elsewhere)`,
    );
  }
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = fs.constants;
  try {
    return fs.openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o640);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PreflightError(
      `cannot open log file ${file}: ${code === 'ELOOP' ? 'it is a symlink' : (code ?? (err as Error).message)}`,
    );
  }
}

async function startInBackground(opts: DaemonOptions, mode: MountMode): Promise<void> {
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/nsview');
  const logFd = openLogFile(mode.logFile);
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, bin, ...mode.argv, '--foreground', '--ready-fd', '3'], {
    detached: true,
    env: { ...process.env, ...DAEMON_ENV },
    stdio: ['ignore', logFd, logFd, 'pipe'],
  });
  fs.closeSync(logFd);
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const timer = setTimeout(
      () => resolve('error 32 the daemon did not report within 30 s'),
      BACKGROUND_START_TIMEOUT_MS,
    );
    pipe.on('data', (d: Buffer) => (text += d.toString()));
    pipe.on('end', () => {
      clearTimeout(timer);
      resolve(text.trim() || `error 32 the daemon exited before mounting (see ${mode.logFile})`);
    });
    child.on('exit', (code) => {
      if (!text) {
        clearTimeout(timer);
        resolve(`error 32 the daemon exited with status ${code} before mounting (see ${mode.logFile})`);
      }
    });
  });
  if (answer !== 'ok') {
    if (child.exitCode === null) child.kill('SIGTERM');
    const m = /^error (\d+) ([\s\S]*)$/.exec(answer);
    throw new CliError(m?.[2] ?? answer, m ? Number(m[1]) : EXIT.MOUNT_FAILURE);
  }
  child.unref();
  (pipe as unknown as { destroy(): void }).destroy();
  process.stdout.write(`nsview: mounted ${opts.mountpoint} (daemon pid ${child.pid}, log ${mode.logFile})\n`);
}

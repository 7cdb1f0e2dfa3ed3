/**
 * `nsview mount`: in the foreground, run the daemon until a signal; otherwise start the same
 * command in the foreground as a detached child and return once it reports that it is serving
 * (or print why it could not).
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startDaemon } from '../daemon/daemon.js';
import type { DaemonOptions } from '../daemon/daemon.js';
import type { Logger } from '../daemon/log.js';
import { PreflightError, checkPrivileges } from '../daemon/preflight.js';
import { removePidFile, writePidFile } from './pidfile.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from '../daemon/node-flags.js';

export interface MountMode {
  foreground: boolean;
  readyFd?: number;
  logFile: string;
  argv: string[];
}

const BACKGROUND_START_TIMEOUT_MS = 30_000;

export async function runMount(opts: DaemonOptions, mode: MountMode, log: Logger): Promise<void> {
  if (!mode.foreground) {
    // Before touching the log file: a non-root user must hear why, not that /var/log is closed.
    checkPrivileges();
    return startInBackground(opts, mode);
  }
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(opts, log);
  } catch (err) {
    if (mode.readyFd !== undefined) report(mode.readyFd, `error: ${(err as Error).message}`);
    throw err;
  }
  // The pid file first, then the word: whoever waits for "mounted" may rely on it.
  writePidFile(opts.mountpoint);
  log.info(daemon.description);
  const exit = (code: number) => {
    removePidFile(opts.mountpoint);
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => void daemon.stop(sig).then(() => exit(0)));
  }
  // Last line of defence: whatever goes wrong, take the mount down rather than leave it dead.
  const crash = (err: unknown) => {
    log.error(`fatal: ${(err as Error)?.stack ?? String(err)}`);
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
    fs.writeSync(fd, `${message}\n`);
    fs.closeSync(fd);
  } catch {
    // The parent went away; nothing to tell.
  }
}

async function startInBackground(opts: DaemonOptions, mode: MountMode): Promise<void> {
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/nsview');
  const logFd = fs.openSync(mode.logFile, 'a', 0o640);
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, bin, ...mode.argv, '--foreground', '--ready-fd', '3'], {
    detached: true,
    env: { ...process.env, ...DAEMON_ENV },
    stdio: ['ignore', logFd, logFd, 'pipe'],
  });
  fs.closeSync(logFd);
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve('error: the daemon did not report within 30 s'), BACKGROUND_START_TIMEOUT_MS);
    pipe.on('data', (d: Buffer) => (text += d.toString()));
    pipe.on('end', () => {
      clearTimeout(timer);
      resolve(text.trim() || `error: the daemon exited before mounting (see ${mode.logFile})`);
    });
    child.on('exit', (code) => {
      if (!text) {
        clearTimeout(timer);
        resolve(`error: the daemon exited with status ${code} before mounting (see ${mode.logFile})`);
      }
    });
  });
  if (answer !== 'ok') {
    if (child.exitCode === null) child.kill('SIGTERM');
    throw new PreflightError(answer.replace(/^error: /, ''));
  }
  child.unref();
  (pipe as unknown as { destroy(): void }).destroy();
  process.stdout.write(`nsview: mounted ${opts.mountpoint} (daemon pid ${child.pid}, log ${mode.logFile})\n`);
}

/** Where a running daemon records itself, so `nsview unmount` can find and stop it. */
import fs from 'node:fs';
import path from 'node:path';

export const RUN_DIR = '/run/nsview';

export function pidFileFor(mountpoint: string): string {
  const name = mountpoint.replace(/^\/+/, '').replace(/\//g, '-') || 'root';
  return path.join(RUN_DIR, `${name}.pid`);
}

export function writePidFile(mountpoint: string): void {
  fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  fs.writeFileSync(pidFileFor(mountpoint), `${process.pid}\n`);
}

export function readPidFile(mountpoint: string): number | undefined {
  try {
    const pid = parseInt(fs.readFileSync(pidFileFor(mountpoint), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function removePidFile(mountpoint: string, onlyIfPid = process.pid): void {
  if (readPidFile(mountpoint) === onlyIfPid) fs.rmSync(pidFileFor(mountpoint), { force: true });
}

/** Is `pid` alive and an nsview daemon (not a recycled PID)? */
export function isNsviewProcess(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.endsWith('nsview'));
  } catch {
    return false;
  }
}

/**
 * `nsview unmount`: ask the daemon to stop (it unmounts itself), and if there is no daemon or it
 * does not finish in time, detach the mount and abort its FUSE connection directly.
 */
import { findMount, unmountMountpoint } from '../fuse/index.js';
import { PreflightError } from '../daemon/preflight.js';
import { isNsviewProcess, readPidFile, removePidFile } from './pidfile.js';

const STOP_WAIT_MS = 5000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

export async function runUnmount(mountpoint: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new PreflightError('nsview unmount must run as root');
  const pid = readPidFile(mountpoint);
  let stopped = false;
  if (pid !== undefined && isNsviewProcess(pid)) {
    process.kill(pid, 'SIGTERM');
    stopped = await waitFor(() => !alive(pid), STOP_WAIT_MS);
    if (!stopped) process.kill(pid, 'SIGKILL');
  }
  const m = findMount(mountpoint);
  if (m) await unmountMountpoint(mountpoint);
  if (pid !== undefined) removePidFile(mountpoint, pid);
  if (!m && !stopped && pid === undefined) {
    process.stdout.write(`nsview: nothing mounted on ${mountpoint}\n`);
    return;
  }
  process.stdout.write(`nsview: unmounted ${mountpoint}\n`);
}

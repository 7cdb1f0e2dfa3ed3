/**
 * `nsview unmount`: ask the daemon to stop (it unmounts itself), and if there is no daemon or it
 * does not finish in time, detach the mount and abort its FUSE connection directly. Only a pid
 * proven to be this mountpoint's daemon (pidfile.ts) is ever signalled. Nothing mounted is a
 * failure (exit 32), as with umount(8).
 */
import { findMount, unmountMountpoint } from '../fuse/index.js';
import { PreflightError } from '../daemon/preflight.js';
import { daemonOf, removePidFile, readPidFile } from './pidfile.js';
import { CliError, EXIT } from './exit-codes.js';

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
  if (process.getuid?.() !== 0) throw new PreflightError('nsview unmount must run as root', EXIT.NOT_PERMITTED);
  const pid = daemonOf(mountpoint);
  let stopped = false;
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM');
    stopped = await waitFor(() => !alive(pid), STOP_WAIT_MS);
    if (!stopped) process.kill(pid, 'SIGKILL');
  }
  const m = findMount(mountpoint);
  if (m) await unmountMountpoint(mountpoint);
  // A pid file whose daemon is gone (killed with SIGKILL) is stale: remove it.
  const stale = readPidFile(mountpoint);
  if (stale !== undefined && daemonOf(mountpoint) === undefined) removePidFile(mountpoint, stale);
  if (!m && pid === undefined) throw new CliError(`${mountpoint}: not mounted`, EXIT.MOUNT_FAILURE);
  process.stdout.write(`nsview: unmounted ${mountpoint}\n`);
}

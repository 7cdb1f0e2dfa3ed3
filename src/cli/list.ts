/** `nsview list`: one row (or JSON object) per mount namespace on the host. */
import { discover, describeNamespace, snapshotToListJson } from '../discovery/index.js';
import fs from 'node:fs/promises';
import { PreflightError } from '../daemon/preflight.js';
import { SANDBOX_THREAD_NAME } from '../access/sandbox-name.js';
import { runningDaemons } from './pidfile.js';

/**
 * Sandbox threads of running nsview daemons: they hold namespaces only because a daemon is
 * reading them, so they are not reported as holders (the daemon's own discovery does the same).
 */
async function runningSandboxTids(): Promise<Set<number>> {
  const tids = new Set<number>();
  for (const pid of runningDaemons()) {
    for (const tid of await fs.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const comm = await fs.readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === SANDBOX_THREAD_NAME) tids.add(Number(tid));
    }
  }
  return tids;
}

export async function runList(json: boolean): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new PreflightError(
      "nsview list must run as root (other processes' namespaces are not readable otherwise)",
      1,
    );
  const snap = await discover({ ignoreTids: await runningSandboxTids() });
  if (json) {
    process.stdout.write(`${JSON.stringify(snapshotToListJson(snap), null, 2)}\n`);
    return;
  }
  const rows = [...snap.namespaces.values()].sort((a, b) => a.inode - b.inode);
  for (const ns of rows) process.stdout.write(`${describeNamespace(ns)}\n`);
}

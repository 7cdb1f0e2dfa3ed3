/** `nsview list`: one row (or JSON object) per mount namespace on the host. */
import { discover, describeNamespace, snapshotToListJson } from '../discovery/index.js';
import { PreflightError } from '../daemon/preflight.js';

export async function runList(json: boolean): Promise<void> {
  if (process.getuid?.() !== 0) throw new PreflightError('nsview list must run as root (other processes\' namespaces are not readable otherwise)');
  const snap = await discover();
  if (json) {
    process.stdout.write(`${JSON.stringify(snapshotToListJson(snap), null, 2)}\n`);
    return;
  }
  const rows = [...snap.namespaces.values()].sort((a, b) => a.inode - b.inode);
  for (const ns of rows) process.stdout.write(`${describeNamespace(ns)}\n`);
}

/**
 * Which mount namespace a process is in right now, read from procfs (a readlink of its ns link and
 * a read of its status: procfs answers from memory, never waiting on a filesystem, so the main
 * thread may ask). by-pid/ asks at every lookup and readlink rather than trusting the last
 * discovery pass: a pid can exit, and be reused by a process in another namespace, in between.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { parseMntNsLink } from '../discovery/mountinfo.js';

/**
 * The mount namespace inode of process `pid` (a thread-group leader, as by-pid/ lists them), or
 * undefined when there is no such process or its namespace is not readable.
 */
export function processNamespaceNow(pid: number): number | undefined {
  try {
    const inode = parseMntNsLink(readlinkSync(`/proc/${pid}/ns/mnt`));
    // /proc/TID exists for every thread too (unlisted): by-pid/ names processes only.
    if (inode === undefined) return undefined;
    const tgid = /^Tgid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];
    if (tgid !== String(pid)) return undefined;
    // The link again: the status read may have raced with the process's exit and a reuse of the
    // pid by a process in another namespace.
    return parseMntNsLink(readlinkSync(`/proc/${pid}/ns/mnt`)) === inode ? inode : undefined;
  } catch {
    return undefined;
  }
}

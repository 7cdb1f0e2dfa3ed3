/**
 * Ties an engine's word about a container to a mount namespace without trusting a bare PID: the
 * PID an engine reports may have exited and been reused by an unrelated process by the time
 * nsview looks. A process is identified by PID plus its start time (field 22 of /proc/PID/stat),
 * and the namespace link is read between two start-time checks, so a PID reused in between is
 * caught by the second check.
 *
 * procfs reads of another process's stat and ns link never wait on that process (no mmap lock,
 * no I/O), and are asynchronous here anyway.
 */
import { readFile, readlink } from 'node:fs/promises';
import type { ContainerInfo } from './model.js';

/** Field 22 (starttime) of /proc/PID/stat, or undefined when the process is gone. */
export async function readPidStart(pid: number): Promise<number | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  return parseStatStart(text);
}

/** starttime out of a /proc/PID/stat line; comm (field 2) may hold spaces and parentheses. */
export function parseStatStart(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After "pid (comm) " come fields 3..; starttime is field 22, so index 19 of the rest.
  const v = Number(stat.slice(close + 2).split(' ')[19]);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Inode of /proc/PID/ns/mnt, or undefined when the process is gone. */
async function readMntnsInode(pid: number): Promise<number | undefined> {
  try {
    const m = /^mnt:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/ns/mnt`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `read(pid)` (e.g. the namespace link, or the kernel's namespace id) of the container's init
 * process, accepted only if the process before and after the read is the one the engine reported
 * (same PID and start time); undefined otherwise.
 */
export async function readForContainer<T>(
  c: Pick<ContainerInfo, 'pid' | 'pidStart'>,
  read: (pid: number) => Promise<T | undefined>,
): Promise<T | undefined> {
  if ((await readPidStart(c.pid)) !== c.pidStart) return undefined;
  const value = await read(c.pid);
  if (value === undefined) return undefined;
  // Same process still? Then the value read above was its own.
  return (await readPidStart(c.pid)) === c.pidStart ? value : undefined;
}

/**
 * The mount namespace inode of the container's init process, or undefined when that process is
 * no longer the one the engine reported (exited, or its PID now belongs to another process).
 * The inode is valid while the process lives; a caller keying on the kernel's namespace id
 * passes its own reader to readForContainer instead.
 */
export function containerMntns(c: Pick<ContainerInfo, 'pid' | 'pidStart'>): Promise<number | undefined> {
  return readForContainer(c, readMntnsInode);
}

export interface MappedContainer {
  container: ContainerInfo;
  mntns: number;
}

/** containerMntns for many containers (bounded concurrency); dead or reused PIDs are left out. */
export async function mapContainersToMntns(
  containers: readonly ContainerInfo[],
  concurrency = 16,
): Promise<MappedContainer[]> {
  const out: (MappedContainer | undefined)[] = new Array(containers.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < containers.length) {
      const i = next++;
      const c = containers[i]!;
      const mntns = await containerMntns(c);
      out[i] = mntns === undefined ? undefined : { container: c, mntns };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, containers.length) }, worker));
  return out.filter((m): m is MappedContainer => m !== undefined);
}

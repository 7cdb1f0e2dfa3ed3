/** `nsview list`: one row (or JSON object) per mount namespace on the host. */
import { discover, describeNamespace, snapshotToListJson } from '../discovery/index.js';
import fs from 'node:fs/promises';
import { PreflightError } from '../daemon/preflight.js';
import { SANDBOX_THREAD_NAME } from '../access/sandbox-name.js';
import { runningDaemons } from './pidfile.js';
import { containersOnce } from '../daemon/container-names.js';
import type { ContainerInfo, EngineOverrides } from '../engines/index.js';

/** How long `nsview list` waits for each engine (a hung one then names nothing). */
const ENGINE_DEADLINE_MS = 2_000;

/** A container as `nsview list --json` shows it: what its engine records, nothing from inside it. */
export interface ListedContainer {
  engine: ContainerInfo['engine'];
  id: string;
  name: string;
  image: string;
  /** containerd namespace (`default`, `k8s.io`, `moby`, ...). */
  engineNamespace?: string;
  pod?: string;
  podNamespace?: string;
  podUid?: string;
  containerName?: string;
  /** A pod's infrastructure ("pause", sandbox, infra) container. */
  sandbox: boolean;
}

function listed(c: ContainerInfo): ListedContainer {
  const out: ListedContainer = { engine: c.engine, id: c.id, name: c.name, image: c.image, sandbox: c.sandbox };
  for (const k of ['engineNamespace', 'pod', 'podNamespace', 'podUid', 'containerName'] as const)
    if (c[k] !== undefined) out[k] = c[k];
  return out;
}

/** A name for one whitespace-free column: spaces, control characters and backslashes as \xHH. */
function columnText(name: string): string {
  return name.replace(/[\s\\\x00-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * The container column, one word: `engine/name` per container (comma-separated), with
 * `[pod=NS/POD]` for Kubernetes containers and `[sandbox,pod=NS/POD]` for pod sandboxes; `-`
 * for a namespace no engine claims.
 */
function containerColumn(cs: readonly ContainerInfo[] | undefined): string {
  if (!cs || cs.length === 0) return '-';
  return cs
    .map((c) => {
      const tags = [
        ...(c.sandbox ? ['sandbox'] : []),
        ...(c.pod !== undefined
          ? [`pod=${c.podNamespace !== undefined ? `${columnText(c.podNamespace)}/` : ''}${columnText(c.pod)}`]
          : []),
      ];
      return `${c.engine}/${columnText(c.name)}${tags.length ? `[${tags.join(',')}]` : ''}`;
    })
    .join(',');
}

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

export async function runList(json: boolean, engines: EngineOverrides | false): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new PreflightError(
      "nsview list must run as root (other processes' namespaces are not readable otherwise)",
      1,
    );
  // The engines are asked while discovery runs; each has its own deadline.
  const [snap, containers] = await Promise.all([
    runningSandboxTids().then((ignoreTids) => discover({ ignoreTids })),
    engines === false ? new Map<number, ContainerInfo[]>() : containersOnce(engines, ENGINE_DEADLINE_MS),
  ]);
  if (json) {
    const rows = snapshotToListJson(snap).map((r) => ({
      ...r,
      containers: (containers.get(r.inode) ?? []).map(listed),
    }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const rows = [...snap.namespaces.values()].sort((a, b) => a.inode - b.inode);
  for (const ns of rows) {
    // The container column goes after `mnt:[N] <source>`, before the variable-length pids and ref.
    const line = describeNamespace(ns);
    const head = `mnt:[${ns.inode}]${ns.idSource === 'kernel' ? ` id=${ns.id}` : ''} ${ns.source.padEnd(9)}`;
    const column = containerColumn(containers.get(ns.inode));
    process.stdout.write(
      line.startsWith(head) ? `${head} ${column}${line.slice(head.length)}\n` : `${line} ${column}\n`,
    );
  }
}

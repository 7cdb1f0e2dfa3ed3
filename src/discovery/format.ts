/** Presentation helpers for `nsview list` and logs. */
import type { DiscoverySnapshot, MountNamespace, NamespaceRef, NamespaceSource, TaskRef } from './model.js';
import { bytesToText } from '../sys/mountinfo.js';

/** The best ref (first by preference: process > thread > fd > bindmount), or [] if none. */
export function bestRef(ns: MountNamespace): NamespaceRef {
  return ns.refs[0] ?? [];
}

/** A ref for humans: elements joined by " » " (open the next element inside the previous). */
export function formatRef(ref: NamespaceRef): string {
  return refAsText(ref).join(' » ');
}

/** A ref's paths as text (they are bytes; bytes that are not UTF-8 show as U+FFFD). */
export function refAsText(ref: NamespaceRef): string[] {
  return ref.map(bytesToText);
}

export interface NamespaceListJson {
  /**
   * The kernel's never-reused id, as a decimal string (a u64 does not fit a JSON number exactly);
   * absent on kernels without ids. `/mnt/nsview/by-id/<id>` names this namespace and no other.
   */
  id?: string;
  inode: number;
  source: NamespaceSource;
  pids: number[];
  threads: TaskRef[];
  /** As text (see refAsText), like lxkns' JSON. */
  ref: string[];
  refs: string[][];
  ownerUserNs?: number;
}

export function toListJson(ns: MountNamespace): NamespaceListJson {
  const out: NamespaceListJson = {
    ...(ns.idSource === 'kernel' ? { id: ns.id.toString() } : {}),
    inode: ns.inode,
    source: ns.source,
    pids: ns.pids,
    threads: ns.threads,
    ref: refAsText(bestRef(ns)),
    refs: ns.refs.map(refAsText),
  };
  if (ns.ownerUserNs !== undefined) out.ownerUserNs = ns.ownerUserNs;
  return out;
}

/** One line: `mnt:[N] <source> pids=1,2 (+k) ref=...`. */
export function describeNamespace(ns: MountNamespace, maxPids = 8): string {
  const parts = [`mnt:[${ns.inode}]`];
  if (ns.idSource === 'kernel') parts.push(`id=${ns.id}`);
  parts.push(ns.source.padEnd(9));
  if (ns.pids.length > 0) {
    const shown = ns.pids.slice(0, maxPids).join(',');
    parts.push(`pids=${shown}${ns.pids.length > maxPids ? ` (+${ns.pids.length - maxPids})` : ''}`);
  }
  if (ns.threads.length > 0) parts.push(`threads=${ns.threads.map((t) => `${t.pid}/${t.tid}`).join(',')}`);
  parts.push(`ref=${formatRef(bestRef(ns))}`);
  if (ns.refs.length > 1) parts.push(`(+${ns.refs.length - 1} refs)`);
  return parts.join(' ');
}

/** Every namespace, ascending by inode, as list JSON. */
export function snapshotToListJson(snap: DiscoverySnapshot): NamespaceListJson[] {
  return [...snap.namespaces.values()].sort((a, b) => a.inode - b.inode).map(toListJson);
}

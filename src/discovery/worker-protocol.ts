import type { DiscoverySnapshot } from './model.js';

/** Messages to and from the discovery worker (worker.ts). */
export interface PassRequest {
  id: number;
  /** Our own sandbox threads: never a source of a namespace. */
  ignoreTids: number[];
  /** [namespace inode, sandbox tid] for namespaces a sandbox of ours is in. */
  mountinfoTids: Array<[number, number]>;
}

export type PassResponse = { id: number; snapshot: DiscoverySnapshot } | { id: number; error: string };

/**
 * What the view needs to show containers by name (by-container/, by-pod/): the names the daemon
 * last computed from the engines' records, and a check that a named namespace is still the one
 * the engine's container lives in. Both answer from memory or procfs at once: the engines
 * themselves are never asked while a request waits.
 */
import type { NameIndex } from '../engines/name-index.js';

export type { NameIndex };

export interface ContainerNameSource {
  /** The names as last computed (every component already a safe single path component). */
  current(): NameIndex;
  /**
   * Whether namespace `nsInode` still holds the init process of a container an engine named
   * (same PID and start time, re-read now): false once that container stopped, even if the
   * namespace's inode was reused by another namespace since.
   */
  stillNamed(nsInode: number): Promise<boolean>;
}

export const EMPTY_NAME_INDEX: NameIndex = { byContainer: new Map(), byEngine: new Map(), byPod: new Map() };

/** Without engines (--no-engines): no names, nothing named. */
export const NO_CONTAINER_NAMES: ContainerNameSource = {
  current: () => EMPTY_NAME_INDEX,
  stillNamed: () => Promise.resolve(false),
};

/**
 * The target of a name link `depth` directories below the top: `../`×depth + the namespace's
 * directory. The one place that says which directory a name leads to (the namespace's inode
 * today; a namespace id directory would be this one change).
 */
export function namespaceLinkTarget(depth: number, nsInode: number): string {
  return `${'../'.repeat(depth)}${nsInode}`;
}

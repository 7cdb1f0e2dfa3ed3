/**
 * Mount namespace discovery: processes, threads, open fds, and nsfs bind mounts found
 * recursively in every mount namespace's mountinfo. See discover.ts.
 */
export { discover } from './discover.js';
export type { DiscoverOptions } from './discover.js';
export { parseMntNsLink, visibleMountIds, mountNamespacePins } from './mountinfo.js';
export type { NsfsMountNsPin } from './mountinfo.js';
export { bestRef, formatRef, toListJson, describeNamespace, snapshotToListJson } from './format.js';
export type { NamespaceListJson } from './format.js';
export { namespaceByInode, numberKey } from './model.js';
export type {
  DiscoverySnapshot,
  NamespaceIdSource,
  DiscoveryStats,
  MountNamespace,
  NamespaceRef,
  NamespaceSource,
  TaskRef,
} from './model.js';
export { DiscoveryWorker } from './runner.js';

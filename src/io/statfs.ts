/** statfs of the filesystem a file in a namespace is on. Runs only inside an io worker thread. */
import { close } from '../sys/libc.js';
import { statfsOf } from '../sys/statfs.js';
import { checkGuard } from '../access/guard.js';
import type { RootRef } from '../access/root-ref.js';
import { resolveInRoot } from '../resolve/in-root.js';

/** The raw struct statfs (decode with sys/statfs.ts). */
export function statfsPath(root: RootRef, path: Buffer): Uint8Array {
  checkGuard(root);
  const fd = resolveInRoot(root.rootFd, path, { nodePath: true });
  try {
    return statfsOf(fd);
  } finally {
    close(fd);
  }
}

/**
 * raw/: the namespace directories once more, with every symlink as stored inside (the target
 * bytes, as readlink inside answers), beside the default tree whose links are rewritten to stay
 * in the view. A backup job takes raw/<inode>/ while users browse /<inode>/ on the same mount.
 *
 * Its namespace roots belong to a tree of their own (a RealTree in raw mode): other node ids than
 * the same files in the default tree, so the kernel's per-node caches (link targets with
 * FUSE_CACHE_SYMLINKS, link sizes, listings) never mix raw and rewritten answers.
 */
import type { Entry } from '../fuse/types.js';
import type { FixedDir } from './node-kind.js';
import type { ViewContext } from './view-context.js';
import type { RealTree } from './real-tree.js';
import type { Listings } from './listing.js';
import { TopDir } from './top-dir.js';

export const RAW_ID = 4n;

export class RawDir extends TopDir implements FixedDir {
  readonly name = Buffer.from('raw');

  constructor(vc: ViewContext, rawTree: RealTree, listings: Listings) {
    super(vc, rawTree, [], listings, RAW_ID);
  }

  entry(): Entry {
    return this.vc.virtualEntry(this.node, 'dir', 0, this.mtime);
  }
}

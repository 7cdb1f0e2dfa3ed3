/**
 * The filesystem (statfs magic) each mount is on, remembered by mount, so each mount costs one
 * fstatfs: on a FUSE mount that is a request to its server. Per thread (module state).
 */
import { fsMagicOf } from '../sys/statfs.js';
import type { StatxView } from '../sys/stat.js';

const MAX_REMEMBERED = 65536;
/** Unique (never reused) mount id -> filesystem magic. */
const byMount = new Map<bigint, number>();

/** The filesystem magic of the file `fd` holds, whose statx is `st`. */
export function fsTypeOf(fd: number, st: StatxView): number {
  const known = knownFsType(st);
  if (known !== undefined) return known;
  const magic = fsMagicOf(fd);
  if (st.hasUniqueMntId) {
    if (byMount.size > MAX_REMEMBERED) byMount.clear();
    byMount.set(st.mntId, magic);
  }
  return magic;
}

/** The filesystem magic of the mount `st` is on, if already known (never asks the filesystem). */
export function knownFsType(st: StatxView): number | undefined {
  return st.hasUniqueMntId ? byMount.get(st.mntId) : undefined;
}

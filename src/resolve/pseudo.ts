/**
 * Filesystems the view does not descend into by default: kernel interfaces whose "files" are
 * endless (/proc/kmsg), have side effects when read, or describe the host rather than the
 * container. `grep -r /mnt/nsview` must finish; with --pseudo they are shown (still read-only).
 */
import { FS_MAGIC } from '../sys/statfs.js';

const PSEUDO_FS = new Set<number>([
  FS_MAGIC.PROC,
  FS_MAGIC.SYSFS,
  FS_MAGIC.CGROUP,
  FS_MAGIC.CGROUP2,
  FS_MAGIC.DEBUGFS,
  FS_MAGIC.TRACEFS,
  FS_MAGIC.SECURITYFS,
  FS_MAGIC.BPF,
  FS_MAGIC.CONFIGFS,
  FS_MAGIC.PSTORE,
  FS_MAGIC.EFIVARFS,
  FS_MAGIC.FUSECTL,
  FS_MAGIC.BINFMT_MISC,
  FS_MAGIC.SELINUXFS,
  FS_MAGIC.SMACKFS,
  FS_MAGIC.RPC_PIPEFS,
  FS_MAGIC.MQUEUE,
  FS_MAGIC.NSFS,
]);

export function isPseudoFs(magic: number): boolean {
  return PSEUDO_FS.has(magic);
}

/**
 * Filesystems whose metadata lives in the kernel or on a local block device: asking them never
 * waits on a server. Only on these does nsview take its non-blocking shortcuts (FastStat, xattr
 * names prefetched with a listing); on anything else (FUSE, NFS, CIFS, ceph...) every call goes
 * through an io worker with a deadline.
 */
import { FS_MAGIC } from '../sys/statfs.js';

const LOCAL_FS = new Set<number>([
  FS_MAGIC.EXT4,
  FS_MAGIC.XFS,
  FS_MAGIC.BTRFS,
  FS_MAGIC.TMPFS,
  FS_MAGIC.RAMFS,
  FS_MAGIC.OVERLAYFS,
  FS_MAGIC.SQUASHFS,
  FS_MAGIC.EROFS,
  FS_MAGIC.F2FS,
  FS_MAGIC.ZFS,
  FS_MAGIC.VFAT,
  FS_MAGIC.ISO9660,
  FS_MAGIC.PROC,
  FS_MAGIC.SYSFS,
  FS_MAGIC.CGROUP,
  FS_MAGIC.CGROUP2,
  FS_MAGIC.DEVPTS,
]);

export function isLocalFs(magic: number): boolean {
  return LOCAL_FS.has(magic);
}

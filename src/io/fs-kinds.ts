/**
 * Filesystems whose metadata lives in the kernel or on a local block device: asking them never
 * waits on a server. Only on these does nsview take its non-blocking shortcuts (FastStat, xattr
 * names prefetched with a listing); on anything else (FUSE, NFS, CIFS, ceph...) every call goes
 * through an io worker with a deadline.
 */
const LOCAL_FS = new Set<number>([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs (and devtmpfs)
  0x858458f6, // ramfs
  0x794c7630, // overlayfs
  0x73717368, // squashfs
  0xe0f5e1e2, // erofs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0x4d44, // vfat
  0x9660, // iso9660
  0x9fa0, // proc
  0x62656572, // sysfs
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
  0x1cd1, // devpts
]);

export function isLocalFs(magic: number): boolean {
  return LOCAL_FS.has(magic);
}

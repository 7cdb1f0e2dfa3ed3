/**
 * Filesystems the view does not descend into by default: kernel interfaces whose "files" are
 * endless (/proc/kmsg), have side effects when read, or describe the host rather than the
 * container. `grep -r /mnt/nsview` must finish; with --pseudo they are shown (still read-only).
 */
export const PSEUDO_FS_MAGIC: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
  [0x42494e4d, 'binfmt_misc'],
  [0xf97cff8c, 'selinuxfs'],
  [0x43415d53, 'smackfs'],
  [0x67596969, 'rpc_pipefs'],
  [0x19800202, 'mqueue'],
  [0x6e736673, 'nsfs'],
]);

export function isPseudoFs(magic: number): boolean {
  return PSEUDO_FS_MAGIC.has(magic);
}

/**
 * The file attribute ioctls (chattr/lsattr flags, the XFS-style fsxattr), read-only. The view
 * answers the kernel's FUSE_IOCTL for exactly these two requests by asking the same of the file
 * inside; nothing here can set a flag (FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR are not even named).
 *
 * Numbers from include/uapi/linux/fs.h on a 64-bit kernel: FS_IOC_GETFLAGS = _IOR('f', 1, long),
 * though the kernel reads and writes an int through it (fs/ioctl.c ioctl_getflags), and the FUSE
 * kernel module asks its server with sizeof(unsigned int) (fs/fuse/ioctl.c fuse_fileattr_get);
 * FS_IOC32_GETFLAGS = _IOR('f', 1, int) is what 32-bit callers send (the VFS maps it to the
 * former before FUSE sees it, so it is recognised only for completeness).
 */
import { ioctlRead } from './libc.js';

export const FS_IOC_GETFLAGS = 0x80086601;
export const FS_IOC32_GETFLAGS = 0x80046601;
/** _IOR('X', 31, struct fsxattr) */
export const FS_IOC_FSGETXATTR = 0x801c581f;

/** int flags (FS_*_FL) */
export const FILE_FLAGS_SIZE = 4;
/** struct fsxattr { u32 xflags, extsize, nextents, projid, cowextsize; u8 pad[8] } */
export const FSXATTR_SIZE = 28;

export type FileAttrRequest = 'flags' | 'fsxattr';

/** Which attribute request an ioctl number is, or undefined for any other ioctl. */
export function fileAttrRequest(cmd: number): FileAttrRequest | undefined {
  if (cmd === FS_IOC_GETFLAGS || cmd === FS_IOC32_GETFLAGS) return 'flags';
  if (cmd === FS_IOC_FSGETXATTR) return 'fsxattr';
  return undefined;
}

/**
 * The file's FS_IOC_GETFLAGS int or its struct fsxattr, as bytes, from a real (not O_PATH) fd
 * of a regular file or directory. ENOTTY / EOPNOTSUPP where the filesystem has no such flags.
 */
export function readFileAttr(fd: number, which: FileAttrRequest): Buffer {
  if (which === 'flags') {
    // The kernel writes an int; 8 bytes in case an old one wrote a long.
    const out = Buffer.alloc(8);
    ioctlRead(fd, FS_IOC_GETFLAGS, out);
    return out.subarray(0, FILE_FLAGS_SIZE);
  }
  const out = Buffer.alloc(FSXATTR_SIZE);
  ioctlRead(fd, FS_IOC_FSGETXATTR, out);
  return out;
}

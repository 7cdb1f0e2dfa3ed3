/**
 * FUSE passthrough backing files (include/uapi/linux/fuse.h, kernel 6.9+): registering an open
 * file with a FUSE connection so that the kernel serves reads of a FUSE file from it directly,
 * and dropping the registration again. Both are ioctls on the connection's /dev/fuse fd.
 */
import koffi from 'koffi';
import { NsviewError } from './errors.js';

const lib = koffi.load('libc.so.6');
const c_ioctl_ptr = lib.func('int ioctl(int, unsigned long, void *)');

/** _IOW(229, 1, struct fuse_backing_map) and _IOW(229, 2, uint32_t): same encoding on x86_64 and aarch64. */
const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;
/** struct fuse_backing_map { int32_t fd; uint32_t flags; uint64_t padding; } */
const BACKING_MAP_SIZE = 16;

/**
 * Register `fd` (a regular file; an O_PATH fd will do: the kernel opens the file it names again,
 * with the FUSE file's open flags, when a passthrough open uses the id) as a backing file of the
 * connection `deviceFd`. Returns the backing id (> 0). Needs CAP_SYS_ADMIN; fails with EINVAL
 * for non-regular files, ELOOP when the file's filesystem is stacked as deep as the connection
 * allows, EPERM without passthrough agreed at INIT.
 */
export function fuseBackingOpen(deviceFd: number, fd: number): number {
  const map = Buffer.alloc(BACKING_MAP_SIZE);
  map.writeInt32LE(fd, 0);
  const id = c_ioctl_ptr(deviceFd, FUSE_DEV_IOC_BACKING_OPEN, map) as number;
  if (id < 0) throw new NsviewError(koffi.errno(), 'FUSE_DEV_IOC_BACKING_OPEN');
  return id;
}

/** Drop backing id `id`; open FUSE files that use it keep their own reference. */
export function fuseBackingClose(deviceFd: number, id: number): void {
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(id, 0);
  if ((c_ioctl_ptr(deviceFd, FUSE_DEV_IOC_BACKING_CLOSE, arg) as number) < 0) {
    throw new NsviewError(koffi.errno(), 'FUSE_DEV_IOC_BACKING_CLOSE');
  }
}

/**
 * File attribute flags (lsattr's `i`, `a`, `d`, ...) of files inside a namespace, read with the
 * read-only ioctls of sys/file-flags.ts. A regular file is asked through the fd its open holds;
 * a directory, which the view never keeps open, is opened here (checked as every open is: in
 * root, still the same directory) and closed again. Nothing else is ever given an ioctl: device
 * nodes and FIFOs are never opened at all.
 */
import { O, close } from '../sys/libc.js';
import { readFileAttr, type FileAttrRequest } from '../sys/file-flags.js';
import type { RootRef } from '../access/root-ref.js';
import { reopenFd } from '../resolve/reopen.js';
import { reopenChecked } from './files.js';

/** The attribute `which` of the regular file open as `fd`. */
export function fileAttrOfFd(fd: number, which: FileAttrRequest): Uint8Array {
  return readFileAttr(fd, which);
}

/** The attribute `which` of the directory at `path`, if it is still (dev, ino). */
export function dirAttrAt(root: RootRef, path: Buffer, dev: number, ino: bigint, which: FileAttrRequest): Uint8Array {
  const { fd } = reopenChecked(root, path, dev, ino, true, (pathFd) => reopenFd(pathFd, O.RDONLY | O.DIRECTORY));
  try {
    return readFileAttr(fd, which);
  } finally {
    close(fd);
  }
}

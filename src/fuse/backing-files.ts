/**
 * The passthrough backing files of one connection: the ioctls on its /dev/fuse fd behind
 * FuseSession.backing. The kernel drops every id still registered when the connection ends, so
 * a session that dies with ids open leaks nothing.
 */
import { fuseBackingClose, fuseBackingOpen } from '../sys/fuse-backing.js';
import type { BackingFiles } from './types.js';

export function deviceBackingFiles(deviceFd: number): BackingFiles {
  return {
    open: (fd) => fuseBackingOpen(deviceFd, fd),
    close: (id) => fuseBackingClose(deviceFd, id),
  };
}

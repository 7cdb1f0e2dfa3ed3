/**
 * FUSE_INIT: agreeing with the kernel on a protocol version, feature flags and limits. A pure
 * function of what the kernel offers and what this session wants, so the rules (which flags we
 * ask for, how an older or newer kernel is answered) sit in one place and need no device.
 */
import type { InitIn, InitReply } from './codec.js';
import {
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_MIN_MINOR_VERSION,
  INIT_FLAG_NAMES,
  Init,
  MAX_IO,
  MAX_PAGES,
  PASSTHROUGH_MAX_STACK_DEPTH,
} from './protocol.js';
import { E, NsviewError } from '../sys/errors.js';

/** What INIT agreed on, for logs and tests. */
export interface InitInfo {
  major: number;
  minor: number;
  kernelMinor: number;
  flags: bigint;
  flagNames: string[];
  maxReadahead: number;
}

/** Flags we ask for, each only if the kernel offers it. */
const WANTED_INIT_FLAGS =
  Init.ASYNC_READ |
  Init.PARALLEL_DIROPS |
  Init.DO_READDIRPLUS |
  Init.MAX_PAGES |
  Init.CACHE_SYMLINKS |
  Init.AUTO_INVAL_DATA |
  Init.BIG_WRITES |
  Init.INIT_EXT |
  Init.POSIX_ACL;

/** Kernel limits for background requests (readahead, release): libfuse's defaults, scaled up a bit. */
const MAX_BACKGROUND = 16;
const CONGESTION_THRESHOLD = 12;

export interface InitWishes {
  /** Let the kernel cache symlink targets (see MountOptions.cacheSymlinks). */
  cacheSymlinks: boolean;
  /** Let the kernel check POSIX ACLs (see MountOptions.posixAcl); absent: false. */
  posixAcl?: boolean;
  /** Ask for FUSE_PASSTHROUGH (see MountOptions.passthrough); absent: false. */
  passthrough?: boolean;
}

export type InitOutcome =
  /** The kernel speaks a newer major: answer with our version only, it then sends an INIT we can speak. */
  | { kind: 'offer-version'; major: number; minor: number }
  /** Too old to serve: answer EPROTO and give up on the session. */
  | { kind: 'refuse'; error: NsviewError }
  | { kind: 'agree'; reply: InitReply; info: InitInfo };

export function negotiateInit(init: InitIn, wishes: InitWishes): InitOutcome {
  if (init.major > FUSE_KERNEL_VERSION) {
    return { kind: 'offer-version', major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION };
  }
  if (init.major < FUSE_KERNEL_VERSION || init.minor < FUSE_MIN_MINOR_VERSION) {
    return {
      kind: 'refuse',
      error: new NsviewError(E.EPROTO, `kernel FUSE protocol ${init.major}.${init.minor} is too old`),
    };
  }
  const minor = Math.min(init.minor, FUSE_KERNEL_MINOR_VERSION);
  let flags = init.flags & WANTED_INIT_FLAGS;
  if (!wishes.cacheSymlinks) flags &= ~Init.CACHE_SYMLINKS;
  if (!wishes.posixAcl) flags &= ~Init.POSIX_ACL;
  if (wishes.passthrough) flags |= init.flags & Init.PASSTHROUGH;
  if (!(flags & Init.INIT_EXT)) flags &= 0xffff_ffffn;
  const maxStackDepth = flags & Init.PASSTHROUGH ? PASSTHROUGH_MAX_STACK_DEPTH : 0;
  return {
    kind: 'agree',
    reply: {
      minor,
      maxReadahead: init.maxReadahead,
      flags,
      maxBackground: MAX_BACKGROUND,
      congestionThreshold: CONGESTION_THRESHOLD,
      maxWrite: MAX_IO,
      timeGran: 1,
      maxPages: MAX_PAGES,
      maxStackDepth,
    },
    info: {
      major: FUSE_KERNEL_VERSION,
      minor,
      kernelMinor: init.minor,
      flags,
      flagNames: INIT_FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0n).map(([, name]) => name),
      maxReadahead: init.maxReadahead,
    },
  };
}

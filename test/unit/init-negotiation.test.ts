/**
 * FUSE_INIT flags: what the session asks of the kernel. The bit values are written out here
 * from include/uapi/linux/fuse.h, not imported, so a wrong constant in protocol.ts shows.
 */
import test from 'ava';
// The only nsview module this file uses.
import { negotiateInit } from '../../src/fuse/init-negotiation.js';

const FUSE_POSIX_ACL = 1n << 20n;
const FUSE_CACHE_SYMLINKS = 1n << 23n;
/** A 6.x kernel offers every flag (all 64 bits set stands for "everything"). */
const offer = { major: 7, minor: 41, maxReadahead: 131072, flags: (1n << 64n) - 1n };

function agreed(wishes: Parameters<typeof negotiateInit>[1]): bigint {
  const out = negotiateInit(offer, wishes);
  if (out.kind !== 'agree') throw new Error(`no agreement: ${out.kind}`);
  return out.reply.flags;
}

test('POSIX ACL checks are asked for only when wished (with --allow-other)', (t) => {
  t.is(agreed({ cacheSymlinks: false }) & FUSE_POSIX_ACL, 0n);
  t.is(agreed({ cacheSymlinks: false, posixAcl: false }) & FUSE_POSIX_ACL, 0n);
  t.is(agreed({ cacheSymlinks: false, posixAcl: true }) & FUSE_POSIX_ACL, FUSE_POSIX_ACL);
  // ... and never when the kernel does not offer it.
  const out = negotiateInit(
    { ...offer, flags: offer.flags & ~FUSE_POSIX_ACL },
    { cacheSymlinks: false, posixAcl: true },
  );
  t.true(out.kind === 'agree' && (out.reply.flags & FUSE_POSIX_ACL) === 0n);
});

test('symlink caching only when wished (raw mode)', (t) => {
  t.is(agreed({ cacheSymlinks: true }) & FUSE_CACHE_SYMLINKS, FUSE_CACHE_SYMLINKS);
  t.is(agreed({ cacheSymlinks: false }) & FUSE_CACHE_SYMLINKS, 0n);
});

/**
 * nsview's FUSE engine: the kernel protocol spoken directly on /dev/fuse (no libfuse).
 *
 *   const session = await mountFuse(ops, { mountpoint, fsname: 'nsview', subtype: 'nsview', ... });
 *   ...
 *   await session.unmount();   // or: await session.closed when someone else ends it
 *
 * Before mounting, callers run `cleanStaleMount(mountpoint)` to clear a crashed predecessor.
 *
 * Threadpool note: requests are read from the main thread's event loop (epoll). Only where that
 * is unavailable does a session keep `readers` (default 2) libuv threadpool threads blocked in
 * read(2) on the device for its whole life. Notifications are written on the pool, one at a time.
 * Node's default pool has 4 threads, shared with every async fs call of the process; a daemon
 * should raise UV_THREADPOOL_SIZE before its first fs call.
 *
 * Deadlock note: the main thread answers every request, so the serving process must never wait
 * synchronously on its own mount. That includes child_process.spawn/exec with a `cwd` inside the
 * mount or an executable inside it: libuv waits for the child's chdir/execve, which waits for us.
 *
 * Where things are: opcodes.ts says what the engine does with each opcode; session.ts ties the
 * device reader, admission, INIT negotiation, replies and notifications together; codec.ts and
 * protocol.ts are the bytes; mount.ts is mount(2) and friends.
 */
import fs from 'node:fs';
import { constants } from 'node:os';
import type { BackingFiles, FuseOperations, FuseSession, MountOptions } from './types.js';
import { NsviewError } from '../sys/errors.js';
import { FuseServer } from './session.js';
import type { InitInfo } from './init-negotiation.js';
import { opName } from './opcodes.js';
import { abortConnection, canonicalMountpoint, detach, findMount, mountDevice, type MountInfo } from './mount.js';
import { MAX_IO } from './protocol.js';

export type * from './types.js';
export { DT, FUSE_ROOT_ID, REPLIED } from './types.js';
export { cleanStaleMount, unmountMountpoint, findMount, type MountInfo, type StaleOptions } from './mount.js';
export type { InitInfo } from './init-negotiation.js';

const E = constants.errno;

const DEFAULT_MAX_IN_FLIGHT = 64;
const DEFAULT_READERS = 2;
/** The kernel sends INIT as soon as mount(2) returns; this only guards against a broken kernel. */
const INIT_TIMEOUT_MS = 10_000;
/** After abort, readers return at once; this bounds the wait if fusectl was unavailable. */
const DRAIN_TIMEOUT_MS = 2_000;

/** A FuseSession with what INIT agreed on (for logs and tests). */
export interface MountedSession extends FuseSession {
  readonly init: InitInfo;
  /** How requests are read: 'epoll' (the main thread's event loop) or 'threadpool'. */
  readonly reading: 'epoll' | 'threadpool';
}

class Session implements MountedSession {
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private unmounting: Promise<void> | undefined;

  constructor(
    readonly mountpoint: string,
    private readonly mount: MountInfo,
    private readonly server: FuseServer,
    readonly init: InitInfo,
    private readonly onError: (err: unknown, what: string) => void,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // The device ended without unmount(): aborted through fusectl, or umount by someone else.
    void server.ended.then(() => {
      if (this.unmounting === undefined) this.unmounting = this.finish(true);
    });
  }

  get dev(): bigint {
    return this.mount.dev;
  }

  get reading(): 'epoll' | 'threadpool' {
    return this.server.reading;
  }

  invalidateEntry(parent: bigint, name: Buffer): void {
    this.server.invalidateEntry(parent, name);
  }

  requestCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.server.opcodeCounts.forEach((n, op) => {
      if (n > 0) out[opName(op)] = n;
    });
    return out;
  }

  invalidateInode(nodeid: bigint): void {
    this.server.invalidateInode(nodeid);
  }

  get backing(): BackingFiles | undefined {
    return this.server.backing;
  }

  unmount(): Promise<void> {
    this.unmounting ??= this.finish(false);
    return this.unmounting;
  }

  private async finish(ended: boolean): Promise<void> {
    try {
      // Detach only if the mount on top of our path is still ours: after an external umount a new
      // daemon may already be mounted there.
      const top = findMount(this.mountpoint);
      if (top !== undefined && top.mountId === this.mount.mountId) detach(this.mountpoint);
      // Abort even a detached mount: a busy one would otherwise keep its requests (and our
      // blocked readers) alive for as long as anyone holds a file open in it.
      if (!ended && !abortConnection(this.mount)) {
        this.onError(new NsviewError(E.ENOTSUP, 'fusectl unavailable: cannot abort the FUSE connection'), 'unmount');
      }
    } catch (e) {
      this.onError(e, 'unmount');
    }
    this.server.stop();
    await Promise.race([this.server.drained, delay(DRAIN_TIMEOUT_MS)]);
    this.resolveClosed();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function nonNegative(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new NsviewError(E.EINVAL, `${what} must be a number >= 0`);
  return v;
}

function positiveInt(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new NsviewError(E.EINVAL, `${what} must be a positive integer`);
  return v;
}

/**
 * Mount a FUSE filesystem served by `ops` and resolve once the kernel's INIT is answered (the
 * mount is then usable). Throws NsviewError; on failure nothing stays mounted.
 */
export async function mountFuse(ops: FuseOperations, options: MountOptions): Promise<MountedSession> {
  if (!/^[A-Za-z0-9_+-]+$/.test(options.subtype)) throw new NsviewError(E.EINVAL, `bad subtype "${options.subtype}"`);
  if (options.fsname === '' || /[\s,]/.test(options.fsname))
    throw new NsviewError(E.EINVAL, `bad fsname "${options.fsname}"`);
  const maxInFlight = positiveInt(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight');
  const readers = positiveInt(options.readers, DEFAULT_READERS, 'readers');
  const maxRead = Math.min(positiveInt(options.maxRead, MAX_IO, 'maxRead'), MAX_IO);
  const busyPollUs = nonNegative(options.busyPollUs, 0, 'busyPollUs');
  const onError = options.onError ?? ((err: unknown, op: string) => console.error(`nsview fuse ${op}:`, err));

  const mountpoint = canonicalMountpoint(options.mountpoint);
  const fd = fs.openSync('/dev/fuse', fs.constants.O_RDWR); // Node adds O_CLOEXEC
  let mount: MountInfo;
  try {
    mount = mountDevice({
      fd,
      mountpoint,
      maxRead,
      fsname: options.fsname,
      subtype: options.subtype,
      readOnly: options.readOnly,
      allowOther: options.allowOther,
      defaultPermissions: options.defaultPermissions,
      noexec: options.noexec ?? false,
    });
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }

  const server = new FuseServer(fd, ops, {
    readOnly: options.readOnly,
    maxInFlight,
    readers,
    pollDevice: options.pollDevice,
    busyPollUs,
    cacheSymlinks: options.cacheSymlinks ?? true,
    posixAcl: options.posixAcl ?? false,
    passthrough: options.passthrough ?? false,
    onTrace: options.onTrace,
    onError,
  });
  server.start();
  let init: InitInfo;
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NsviewError(E.ETIMEDOUT, 'no FUSE INIT from the kernel')), INIT_TIMEOUT_MS);
    });
    try {
      init = await Promise.race([server.initialized, timeout]);
    } finally {
      clearTimeout(timer);
    }
  } catch (e) {
    // Nothing may stay mounted: detach, abort, close.
    try {
      detach(mountpoint);
      abortConnection(mount);
    } catch (e2) {
      onError(e2, 'mount cleanup');
    }
    server.stop();
    throw e;
  }
  raiseReadahead(mount, maxRead, onError);
  return new Session(mountpoint, mount, server, init, onError);
}

/**
 * The kernel sizes READ requests by the mount's readahead window, 128 KiB by default whatever
 * max_pages allows: sequential reads then cost 8 requests per MiB. Widen it to the largest READ
 * we accept (measured here: 237 -> 410 MB/s for a 1 GiB file). Best effort: a sysfs that refuses
 * only leaves the default.
 */
function raiseReadahead(mount: MountInfo, maxRead: number, onError: (err: unknown, what: string) => void): void {
  const file = `/sys/class/bdi/${mount.major}:${mount.minor}/read_ahead_kb`;
  try {
    const now = Number(fs.readFileSync(file, 'latin1'));
    const want = Math.floor(maxRead / 1024);
    if (!(now >= want)) fs.writeFileSync(file, String(want));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onError(e, 'readahead');
  }
}

export { canonicalMountpoint };

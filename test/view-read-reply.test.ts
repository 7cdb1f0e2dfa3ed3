/**
 * READ replies written by an io worker straight to the FUSE device. When the kernel refuses the
 * frame, the view must answer through the engine (EIO) rather than report the read as replied,
 * which would leave a request the kernel never looked up waiting for ever; when the kernel refuses
 * it because the request is gone (ENOENT: interrupted), there is nothing more to send.
 *
 * The view runs in this process as the daemon builds it: real io workers, real discovery, and a
 * real file of this process's own mount namespace. The devices that refuse are real /dev/fuse
 * fds: one never mounted (the kernel answers EPERM), one mounted but asked about a request it
 * never sent (ENOENT). Nothing here accesses a mount.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { IoPool } from '../src/io/pool.js';
import { rootWorkersOf } from '../src/io/root-workers.js';
import { NamespaceAccess } from '../src/access/namespace-access.js';
import { DiscoveryCatalog } from '../src/daemon/catalog.js';
import { createLogger } from '../src/daemon/log.js';
import { NamespaceView } from '../src/vfs/view.js';
import { FUSE_ROOT_ID, REPLIED, type RequestContext } from '../src/fuse/types.js';
import { detach, mountDevice } from '../src/fuse/mount.js';
import { E, errnoOf } from '../src/sys/errors.js';
import { CleanupScope, makeTempDir } from './helpers/index.js';

const scope = new CleanupScope();
let view: NamespaceView;
const logged: string[] = [];

test.before(async () => {
  const log = createLogger(true, (line) => logged.push(line));
  const io = new IoPool({ size: 1, opTimeoutMs: 10_000 });
  await io.ready();
  scope.teardown(() => io.close());
  let catalog: DiscoveryCatalog | undefined;
  const access = new NamespaceAccess(rootWorkersOf(io), 5_000, {
    onEvent: () => undefined,
    confirmAlive: async (ino) => (await catalog?.fresh(0))?.namespaces.has(ino) ?? true,
  });
  scope.teardown(() => access.close());
  catalog = await DiscoveryCatalog.start(
    {
      ownTids: () => access.sandboxTids(),
      sandboxes: () => access.heldSandboxes(),
      changed: (snap) => access.update(snap),
    },
    log,
    60_000,
  );
  const c = catalog;
  scope.teardown(() => c.stop());
  access.update(catalog.current());
  view = new NamespaceView(catalog, access, io, {
    symlinks: 'rewrite',
    pseudo: false,
    attrTimeoutMs: 1000,
    entryTimeoutMs: 1000,
    topTimeoutMs: 1000,
    trace: (op, detail) => log.trace(`${op} ${detail}`),
  });
});

test.after.always(() => scope.cleanup());

/** A request from another process (pid 1), whose delegated reply goes to `deviceFd`. */
function request(deviceFd: number, unique: bigint): RequestContext {
  return {
    unique,
    uid: 0,
    gid: 0,
    pid: 1,
    signal: new AbortController().signal,
    delegateReply: () => {
      const header = new Uint8Array(16);
      Buffer.from(header.buffer).writeBigUInt64LE(unique, 8);
      return { fd: deviceFd, header };
    },
  };
}

/** Look `file` up through the view in this process's mount namespace and open it. */
async function openThroughView(file: string): Promise<{ nodeid: bigint; fh: bigint }> {
  const ctx = request(-1, 1n);
  const ns = /^mnt:\[(\d+)\]$/.exec(fs.readlinkSync('/proc/self/ns/mnt'))![1]!;
  let e = await view.lookup(ctx, FUSE_ROOT_ID, Buffer.from(ns));
  for (const part of file.split('/').filter((p) => p.length > 0))
    e = await view.lookup(ctx, e.nodeid, Buffer.from(part));
  const { fh } = await view.open(ctx, e.nodeid, fs.constants.O_RDONLY);
  return { nodeid: e.nodeid, fh };
}

function sampleFile(t: Parameters<typeof makeTempDir>[0]): string {
  const file = path.join(fs.realpathSync(makeTempDir(t, 'read-reply')), 'data');
  fs.writeFileSync(file, 'contents the kernel will not take\n');
  return file;
}

test('a reply the FUSE device refuses is answered EIO by the engine, not left unanswered', async (t) => {
  const { nodeid, fh } = await openThroughView(sampleFile(t));
  // A /dev/fuse fd with no mount behind it: the kernel refuses every frame (EPERM) without
  // looking at it, as it does a frame whose header it cannot take.
  const device = fs.openSync('/dev/fuse', 'r+');
  t.teardown(() => fs.closeSync(device));
  const err = await t.throwsAsync(view.read(request(device, 7n), nodeid, fh, 0n, 4096));
  t.is(errnoOf(err), E.EIO, String(err));
  t.regex(String(err), /EPERM/);
  t.true(
    logged.some((l) => l.includes('the device refused the reply: EPERM')),
    logged.join(''),
  );
  await view.release(request(-1, 8n), nodeid, fh);
});

test('a reply to a request the kernel no longer waits for (ENOENT) needs nothing more', async (t) => {
  const { nodeid, fh } = await openThroughView(sampleFile(t));
  // A mounted connection asked about a request it never sent: ENOENT, as for an interrupted one.
  const mountpoint = fs.realpathSync(makeTempDir(t, 'read-reply-mnt'));
  const device = fs.openSync('/dev/fuse', 'r+');
  t.teardown(() => fs.closeSync(device));
  mountDevice({
    fd: device,
    mountpoint,
    fsname: 'nsview-test',
    subtype: 'nsview-test',
    readOnly: true,
    allowOther: false,
    defaultPermissions: false,
    noexec: true,
    maxRead: 131072,
  });
  t.teardown(() => void detach(mountpoint));
  t.is(await view.read(request(device, 0x7777_7777n), nodeid, fh, 0n, 4096), REPLIED);
  await view.release(request(-1, 9n), nodeid, fh);
});

/**
 * The kernel's unique mount namespace id (src/sys/namespace-id.ts) against real namespaces: the
 * inode number of a dead namespace is reused, its id never is; the id is the same through every
 * way of reaching one namespace; a dead namespace's id stays dead. Runs with CPU hogs on both
 * cores for the reuse loop, since reuse must hold under load too.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { closeSync, openSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  forEachMountNamespace,
  isMountNamespaceAlive,
  mountNamespaceId,
  mountNamespaceIdentityAt,
  mountNamespaceIdentityOf,
  namespaceIdSupport,
  openMountNamespaceById,
  type MountNamespaceIdentity,
} from '../src/sys/namespace-id.js';
import { errnoOf, E } from '../src/sys/errors.js';
import {
  makeBindMountedNamespace,
  makeFdHeldNamespace,
  makeTempDir,
  makeThreadNamespace,
  nsInodeOf,
  sh,
  shq,
  spawnLongLived,
  waitForLine,
  type Spawned,
} from './helpers/index.js';

const support = namespaceIdSupport();
/** Kernels without ids (before ~6.9) or without nsfs handles (before 6.18) skip, and say so. */
const withIds = support.ids ? test : test.skip;
const withAll = support.ids && support.handles && support.listmountById && support.walk ? test : test.skip;

/** A namespace held by one `sleep` (no pin): it dies when that process is killed. */
async function processNamespace(t: ExecutionContext): Promise<{ s: Spawned; pid: number }> {
  const s = spawnLongLived(['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'echo ready; exec sleep 999999']);
  t.teardown(() => s.kill());
  await waitForLine(s.child, s.stdout, /^ready$/, 15_000, () => s.stderr.all());
  return { s, pid: s.child.pid! };
}

function isDead(ns: MountNamespaceIdentity): boolean {
  if (isMountNamespaceAlive(ns.id)) return false;
  try {
    closeSync(openMountNamespaceById(ns));
    return false;
  } catch (err) {
    return errnoOf(err) === E.ESTALE;
  }
}

/** Two busy loops, one per core, for the duration of a test. */
function cpuHogs(t: ExecutionContext): void {
  for (let i = 0; i < 2; i++) {
    const s = spawnLongLived(['sh', '-c', 'while :; do :; done']);
    t.teardown(() => s.kill());
  }
}

test('support on this kernel is reported and complete on 6.18+', (t) => {
  const [major, minor] = (/^(\d+)\.(\d+)/.exec(os.release()) ?? []).slice(1).map(Number);
  t.log(JSON.stringify(support));
  if (major === undefined || minor === undefined || major < 6 || (major === 6 && minor < 18)) {
    t.pass('older kernel: whatever it offers is reported');
    return;
  }
  t.deepEqual(support, { ids: true, handles: true, listmountById: true, walk: true });
});

withIds('the id needs an fd opened for reading, and a mount namespace', (t) => {
  const opath = openSync('/proc/self/ns/mnt', 0o10000000 /* O_PATH */);
  t.teardown(() => closeSync(opath));
  t.is(errnoOf(t.throws(() => mountNamespaceId(opath))), E.EBADF);
  const user = openSync('/proc/self/ns/user', 'r');
  t.teardown(() => closeSync(user));
  t.is(errnoOf(t.throws(() => mountNamespaceId(user))), E.EINVAL);
  const own = openSync('/proc/self/ns/mnt', 'r');
  t.teardown(() => closeSync(own));
  t.true(mountNamespaceId(own) > 0n);
});

withIds('a path that is not a namespace file is refused without opening it for reading', async (t) => {
  const dir = makeTempDir(t, 'nsid-fifo');
  const fifo = path.join(dir, 'fifo');
  await sh(`mkfifo ${shq(fifo)}`);
  // Opening a FIFO for reading would block until a writer comes: this must answer at once.
  t.is(errnoOf(t.throws(() => mountNamespaceIdentityAt(fifo))), E.ESTALE);
  t.is(errnoOf(t.throws(() => mountNamespaceIdentityAt('/etc/hostname'))), E.ESTALE);
});

withAll('a reused inode number never comes with the same id, under load', async (t) => {
  cpuHogs(t);
  const idsByInode = new Map<number, MountNamespaceIdentity>();
  let reused: { old: MountNamespaceIdentity; now: MountNamespaceIdentity } | undefined;
  const allIds = new Set<bigint>();
  for (let i = 0; i < 300 && reused === undefined; i++) {
    const { s, pid } = await processNamespace(t);
    const now = mountNamespaceIdentityAt(`/proc/${pid}/ns/mnt`);
    t.is(now.inode, await nsInodeOf(pid), 'identity read while the namespace is alive');
    t.false(allIds.has(now.id), `id ${now.id} seen twice`);
    allIds.add(now.id);
    const old = idsByInode.get(now.inode);
    if (old) {
      reused = { old, now };
      // The new namespace is alive and reachable by its id; the old id stays dead.
      t.true(isMountNamespaceAlive(now.id));
      const fd = openMountNamespaceById(now);
      t.deepEqual(mountNamespaceIdentityOf(fd), now);
      closeSync(fd);
      t.true(isDead(old), 'the old id of a reused number answers as dead');
      t.is(errnoOf(t.throws(() => openMountNamespaceById(old))), E.ESTALE);
    }
    idsByInode.set(now.inode, now);
    await s.kill();
    // Liveness through the id, not the number: the number may already be someone else's.
    const dead = await waitDead(now);
    t.true(dead, `namespace ${now.id} still alive after its only process was killed`);
  }
  t.truthy(reused, `no inode number was reused in ${allIds.size} namespaces`);
  if (reused) t.not(reused.old.id, reused.now.id);
  t.log(
    `inode ${reused?.now.inode} reused after ${allIds.size} namespaces; ids ${reused?.old.id} then ${reused?.now.id}`,
  );
});

/** The kernel frees a namespace shortly after its last process is reaped (RCU, task work). */
async function waitDead(ns: MountNamespaceIdentity): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (isDead(ns)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

withAll('one namespace has one id through its process, a pin, an fd, a handle and the walk', async (t) => {
  const { s, pid } = await processNamespace(t);
  const dir = makeTempDir(t, 'nsid-pin');
  await sh(`mount --bind ${shq(dir)} ${shq(dir)} && mount --make-private ${shq(dir)}`);
  t.teardown(() => sh(`umount -l ${shq(dir)}`, { check: false }));
  const pin = path.join(dir, 'mnt');
  await sh(`touch ${shq(pin)} && mount --bind /proc/${pid}/ns/mnt ${shq(pin)}`);
  t.teardown(() => sh(`umount -l ${shq(pin)}`, { check: false }));

  const viaProc = mountNamespaceIdentityAt(`/proc/${pid}/ns/mnt`);
  t.deepEqual(mountNamespaceIdentityAt(pin), viaProc);
  const fd = openMountNamespaceById(viaProc);
  t.deepEqual(mountNamespaceIdentityOf(fd), viaProc);
  closeSync(fd);
  let walked: MountNamespaceIdentity | undefined;
  forEachMountNamespace((ns) => {
    if (ns.id === viaProc.id) walked = { id: ns.id, inode: ns.inode };
    return walked !== undefined;
  });
  t.deepEqual(walked, viaProc, 'the walk over every namespace meets it');

  // Its process gone, the pin alone keeps it: same id, still alive.
  await s.kill();
  t.deepEqual(mountNamespaceIdentityAt(pin), viaProc);
  t.true(isMountNamespaceAlive(viaProc.id));

  // Unpinned, it dies, and the walk no longer meets it.
  await sh(`umount ${shq(pin)}`);
  t.true(await waitDead(viaProc));
  let seen = false;
  forEachMountNamespace((ns) => {
    seen ||= ns.id === viaProc.id;
  });
  t.false(seen);
});

withAll('fd-held, thread and bind-mounted namespaces have ids that die with them', async (t) => {
  const held = await makeFdHeldNamespace(t);
  const fdId = mountNamespaceIdentityAt(`/proc/${held.holderPid}/fd/${held.fd}`);
  t.is(fdId.inode, held.nsInode);

  const thread = await makeThreadNamespace(t);
  const threadId = mountNamespaceIdentityAt(`/proc/${thread.pid}/task/${thread.tid}/ns/mnt`);
  t.is(threadId.inode, thread.nsInode);

  const pinned = await makeBindMountedNamespace(t);
  const pinId = mountNamespaceIdentityAt(pinned.file);
  t.is(pinId.inode, pinned.nsInode);

  t.is(new Set([fdId.id, threadId.id, pinId.id]).size, 3);
  for (const ns of [fdId, threadId, pinId]) t.true(isMountNamespaceAlive(ns.id));

  await held.release();
  await thread.release();
  await pinned.release();
  for (const ns of [fdId, threadId, pinId])
    t.true(await waitDead(ns), `namespace ${ns.id} (inode ${ns.inode}) still alive`);
});

withIds('the fallback signal: an unsupported kernel answers with a typed errno', (t) => {
  // Not an nsfs fd at all: what a caller sees on a kernel that does not know the ioctl is ENOTTY,
  // the same errno a regular file gives here, so callers can take one branch for both.
  const fd = openSync('/etc/hostname', 'r');
  t.teardown(() => closeSync(fd));
  t.is(errnoOf(t.throws(() => mountNamespaceId(fd))), E.ENOTTY);
});

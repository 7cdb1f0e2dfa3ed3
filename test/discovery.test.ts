/**
 * Discovery against real mount namespaces: held by a process, a thread, an fd, a bind mount in
 * the host, a bind mount visible only inside another namespace, and a chain of process-less
 * namespaces reached through readMountinfo. Everything started here is killed in teardown;
 * long-lived children carry `setpriv --pdeathsig KILL` so they die with the test process.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import {
  describeNamespace,
  discover,
  mountNamespacePins,
  toListJson,
  visibleMountIds,
} from '../src/discovery/index.js';
import { namespaceByInode } from '../src/discovery/index.js';
import { mountNamespaceIdentityAt } from '../src/sys/namespace-id.js';
import type { DiscoverySnapshot, MountNamespace } from '../src/discovery/index.js';
import { bytesToText, parseMountinfo, unescapeMountinfo } from '../src/sys/mountinfo.js';
import { waitFor } from './helpers/index.js';

const execFileP = promisify(execFile);
const spawned: ChildProcess[] = [];
const tmpDirs: string[] = [];

function nsOf(pid: number | string): number | undefined {
  try {
    const m = /^mnt:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/mnt`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
const ownNs = nsOf('self')!;

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function kill(child: ChildProcess): Promise<void> {
  const done = exited(child);
  child.kill('SIGKILL');
  await done;
}

/** A long-lived child, SIGKILLed at teardown (and by the kernel if we die first). */
function start(
  t: ExecutionContext,
  cmd: string,
  args: string[],
  stdio: unknown[] = ['ignore', 'pipe', 'inherit'],
): ChildProcess {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', cmd, ...args], { stdio: stdio as never });
  spawned.push(child);
  t.teardown(() => kill(child));
  return child;
}

function lineFrom(child: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} from child; got ${JSON.stringify(buf)}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before ${re}; got ${JSON.stringify(buf)}`));
    });
  });
}

/** A temp dir whose name has a space, so mountinfo escapes (\040) get exercised. */
function tmpDir(t: ExecutionContext): string {
  const dir = mkdtempSync('/tmp/nsview disc ');
  tmpDirs.push(dir);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** umount PATH, in our namespace or (with `inside`) inside the namespace pinned at `inside`. */
function umountQuiet(path: string, inside?: string): void {
  const [cmd, args] = inside ? ['nsenter', [`--mount=${inside}`, 'umount', path]] : ['umount', [path]];
  // Until nothing is left (in case a pin got stacked twice).
  for (let i = 0; i < 5; i++) {
    try {
      execFileSync(cmd as string, args as string[], { stdio: 'ignore' });
    } catch {
      return;
    }
  }
}

/**
 * Pinning a mount namespace inside another needs the pinned one to be newer (the kernel's
 * mnt_ns_loop compares namespace sequence numbers). On this 6.18 kernel those numbers are not
 * monotonic across CPUs: `unshare --mount=FILE` inside a fresh namespace failed with EINVAL in
 * 4 of 30 runs, 0 of 40 under `taskset -c 0`. So every pin is made on CPU 0.
 */
const PIN = ['taskset', '-c', '0'];

function get(t: ExecutionContext, snap: DiscoverySnapshot, inode: number): MountNamespace {
  const ns = namespaceByInode(snap, inode);
  if (!ns) t.fail(`mnt:[${inode}] not discovered`);
  return ns!;
}

function checkSnapshotShape(t: ExecutionContext, snap: DiscoverySnapshot): void {
  for (const ns of snap.namespaces.values()) {
    t.deepEqual(
      ns.pids,
      [...ns.pids].sort((a, b) => a - b),
      `pids ascending in mnt:[${ns.inode}]`,
    );
    t.true(ns.refs.length > 0, `mnt:[${ns.inode}] has a ref`);
    for (const pid of ns.pids) t.is(snap.pidToNamespace.get(pid), ns.inode);
    // Keyed by id; the number maps back to it.
    t.is(snap.byInode.get(ns.inode), ns.id);
  }
}

test('parseMountinfo decodes escapes and optional fields, skips torn lines', (t) => {
  const text = [
    '27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
    '63 27 0:4 mnt:[4026532177] /tmp/a\\040b\\011c\\134d rw - nsfs nsfs rw',
    '64 27 0:4 net:[4026532000] /run/netns/x rw shared:5 master:2 - nsfs nsfs rw',
    '65 27 0:50 / /mnt/caf\\303\\251 rw - tmpfs my\\040src rw,size=1k',
    '66 27 0:4 mnt:[40265',
    '67 27 0:4 mnt:[4026532178] /mnt/\\351\\377 rw - nsfs nsfs rw',
    '',
  ].join('\n');
  const e = parseMountinfo(text);
  t.is(e.length, 5);
  t.like(e[0], { id: 27, parentId: 1, dev: '8:1', major: 8, minor: 1, root: '/', mountPoint: '/', fstype: 'ext4' });
  t.deepEqual(e[0]!.optionalFields, ['shared:1']);
  t.is(e[0]!.superOptions, 'rw,errors=remount-ro');
  t.is(e[1]!.mountPoint, '/tmp/a b\tc\\d');
  t.deepEqual(e[2]!.optionalFields, ['shared:5', 'master:2']);
  // Paths are bytes (latin1 strings): UTF-8 text and bytes that are not UTF-8 both survive.
  t.deepEqual(Buffer.from(e[3]!.mountPoint, 'latin1'), Buffer.from('/mnt/café'));
  t.is(bytesToText(e[3]!.mountPoint), '/mnt/café');
  t.is(e[3]!.source, 'my src');
  t.deepEqual(Buffer.from(e[4]!.mountPoint, 'latin1'), Buffer.from([...Buffer.from('/mnt/'), 0xe9, 0xff]));
  t.is(bytesToText(e[4]!.mountPoint), '/mnt/\ufffd\ufffd');
  t.is(unescapeMountinfo('plain'), 'plain');
  t.deepEqual(mountNamespacePins(e), [
    { inode: 4026532177, mountPoint: '/tmp/a b\tc\\d', visible: true },
    { inode: 4026532178, mountPoint: '/mnt/\xe9\xff', visible: true },
  ]);
});

test('overmounted pins are not visible', (t) => {
  const e = parseMountinfo(
    [
      '1 0 8:1 / / rw - ext4 /dev/sda1 rw',
      '2 1 0:20 / /run rw - tmpfs tmpfs rw',
      '3 2 0:4 mnt:[11] /run/a rw - nsfs nsfs rw', // hidden by 5 (a new /run on top of 2)
      '4 1 0:4 mnt:[12] /pin rw - nsfs nsfs rw', // hidden in place by 6
      '5 2 0:21 / /run rw - tmpfs tmpfs rw',
      '6 4 0:22 / /pin rw - tmpfs tmpfs rw',
      '7 5 0:4 mnt:[13] /run/b rw - nsfs nsfs rw', // visible
    ].join('\n'),
  );
  t.deepEqual([...visibleMountIds(e)].sort(), [1, 5, 6, 7]);
  t.deepEqual(
    mountNamespacePins(e).map((p) => [p.inode, p.visible]),
    [
      [11, false],
      [12, false],
      [13, true],
    ],
  );
});

for (const sync of [false, true]) {
  test(`fake procfs (${sync ? 'synchronous' : 'async'} reads): refs, preference, vanished entries, recursion terminates on cycles`, async (t) => {
    const root = mkdtempSync('/tmp/nsview-disc-fake-');
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    const link = (path: string, target: string): void => {
      mkdirSync(dirname(`${root}/${path}`), { recursive: true });
      symlinkSync(target, `${root}/${path}`);
    };
    const mi = (...lines: string[]): string => ['1 0 8:1 / / rw - ext4 /dev/sda1 rw', ...lines, ''].join('\n');
    // 10 = the daemon (ns 1000), with a sandbox thread 13 in ns 1009 (ignored) and an fd of its own.
    link('10/ns/mnt', 'mnt:[1000]');
    link('10/task/10/ns/mnt', 'mnt:[1000]');
    link('10/task/13/ns/mnt', 'mnt:[1009]');
    link('10/fd/7', 'mnt:[1003]');
    writeFileSync(`${root}/10/mountinfo`, mi('2 1 0:4 mnt:[1004] /run/a\\040b rw - nsfs nsfs rw'));
    // 20: process in 1001 with a thread in 1002 and fds: 1003 and a socket.
    link('20/ns/mnt', 'mnt:[1001]');
    link('20/task/20/ns/mnt', 'mnt:[1001]');
    link('20/task/21/ns/mnt', 'mnt:[1002]');
    link('20/fd/3', 'mnt:[1003]');
    link('20/fd/4', 'socket:[77]');
    link('20/fd/5', 'mnt:[1001]');
    writeFileSync(
      `${root}/20/mountinfo`,
      mi('2 1 0:4 mnt:[1006] /pin rw - nsfs nsfs rw', '3 1 0:4 net:[5] /netns rw - nsfs nsfs rw'),
    );
    writeFileSync(`${root}/20/task/21/mountinfo`, mi());
    // 30: vanished mid-scan (no ns link, no task dir); 31: a non-namespace link.
    mkdirSync(`${root}/30`);
    link('31/ns/mnt', 'garbage');
    mkdirSync(`${root}/self`);

    const fakeMountinfo: Record<number, string> = {
      // 1004 pins 1005 at /x; 1005 pins 1004 back (cycle) and 1007 behind an overmount.
      1004: mi('2 1 0:4 mnt:[1005] /x rw - nsfs nsfs rw'),
      1005: mi(
        '2 1 0:4 mnt:[1004] /back rw - nsfs nsfs rw',
        '3 1 0:4 mnt:[1007] /hid rw - nsfs nsfs rw',
        '4 3 0:9 / /hid rw - tmpfs t rw',
      ),
    };
    const asked: number[] = [];
    const snap = await discover({
      sync,
      procRoot: root,
      selfPid: 10,
      ignoreTids: new Set([13]),
      readMountinfo: async (ns) => {
        asked.push(ns.inode);
        return fakeMountinfo[ns.inode];
      },
    });
    const p = (s: string): string => `${root}/${s}`;
    t.deepEqual(
      [...snap.namespaces.values()].map((n) => n.inode),
      [1000, 1001, 1002, 1003, 1004, 1005, 1006],
    );
    // Fake ns links have no kernel id behind them: each is keyed by its number.
    t.deepEqual(
      [...snap.namespaces.values()].map((n) => n.idSource),
      Array(7).fill('number'),
    );
    t.deepEqual(
      [...snap.pidToNamespace],
      [
        [10, 1000],
        [20, 1001],
      ],
    );
    t.is(snap.ownNamespace, 1000);
    const ns = (n: number): MountNamespace => namespaceByInode(snap, n)!;
    t.like(ns(1000), { source: 'process', pids: [10], threads: [], refs: [[p('10/ns/mnt')]] });
    t.like(ns(1001), { source: 'process', pids: [20], refs: [[p('20/ns/mnt')], [p('20/fd/5')]] });
    t.like(ns(1002), { source: 'thread', pids: [], threads: [{ pid: 20, tid: 21 }], refs: [[p('20/task/21/ns/mnt')]] });
    t.like(ns(1003), { source: 'fd', refs: [[p('20/fd/3')]] }, 'the daemon’s own fd 7 is not a ref');
    t.is(ns(1004).source, 'bindmount');
    t.deepEqual(ns(1004).refs, [['/run/a b'], ['/run/a b', '/x', '/back']]);
    t.deepEqual(ns(1005).refs, [['/run/a b', '/x']]);
    t.deepEqual(ns(1006).refs, [[p('20/ns/mnt'), '/pin']]);
    t.false(snap.byInode.has(1007), 'overmounted pin');
    t.false(snap.byInode.has(1009), 'ignored sandbox thread');
    // Asked only for namespaces without a readable process or thread; each once.
    t.deepEqual(asked.sort(), [1003, 1004, 1005, 1006]);
    t.deepEqual(snap.stats!.unexplored, [1003, 1006]);
    t.is(snap.stats!.depth, 3);
    t.is(snap.stats!.errors, 0, snap.stats!.errorSamples.join('; '));
  });
}

test('process-held namespace: source process, its pid, pidToNamespace', async (t) => {
  const child = start(t, 'unshare', ['-m', '--propagation', 'private', 'sleep', '300']);
  const pid = child.pid!;
  const inode = await waitFor('unshare', () => {
    const n = nsOf(pid);
    return n !== undefined && n !== ownNs && n;
  });
  const snap = await discover();
  const ns = get(t, snap, inode);
  t.is(ns.source, 'process');
  t.deepEqual(ns.pids, [pid]);
  t.deepEqual(ns.refs[0], [`/proc/${pid}/ns/mnt`]);
  t.is(snap.pidToNamespace.get(pid), inode);
  t.is(snap.pidToNamespace.get(process.pid), ownNs);
  t.is(snap.ownNamespace, ownNs);
  t.deepEqual(toListJson(ns).ref, [`/proc/${pid}/ns/mnt`]);
  // The kernel's id, read through the same link by another way (sys/namespace-id.ts).
  const id = mountNamespaceIdentityAt(`/proc/${pid}/ns/mnt`).id;
  t.is(ns.id, id);
  t.is(ns.idSource, 'kernel');
  t.is(toListJson(ns).id, String(id));
  t.regex(
    describeNamespace(ns),
    new RegExp(`^mnt:\\[${inode}\\] id=${id} process +pids=${pid} ref=/proc/${pid}/ns/mnt`),
  );
  checkSnapshotShape(t, snap);
  t.log(`pass: ${snap.stats!.durationMs.toFixed(1)} ms, ${snap.namespaces.size} namespaces`);
});

test('process-less namespace pinned by a bind mount in our namespace: source bindmount', async (t) => {
  const dir = tmpDir(t);
  const pin = `${dir}/x`;
  writeFileSync(pin, '');
  t.teardown(() => umountQuiet(pin));
  execFileSync(PIN[0]!, [...PIN.slice(1), 'unshare', `--mount=${pin}`, '-m', '--propagation', 'private', 'true']);
  const inode = statSync(pin).ino;
  t.not(inode, ownNs);
  const snap = await discover();
  const ns = get(t, snap, inode);
  t.is(ns.source, 'bindmount');
  t.deepEqual(ns.pids, []);
  t.deepEqual(ns.refs, [[pin]]);
  // Owner user ns is only read through /proc refs (never opens a pin by path).
  // Its id comes from the kernel's walk of every mount namespace (a pin is never opened by path).
  const id = String(mountNamespaceIdentityAt(pin).id);
  t.deepEqual(toListJson(ns), { id, inode, source: 'bindmount', pids: [], threads: [], ref: [pin], refs: [[pin]] });
});

test('fd-held namespace: source fd; the daemon’s own fds are not sources', async (t) => {
  const holder = start(t, 'unshare', ['-m', '--propagation', 'private', 'sleep', '300']);
  const inode = await waitFor('unshare', () => {
    const n = nsOf(holder.pid!);
    return n !== undefined && n !== ownNs && n;
  });
  const fd = openSync(`/proc/${holder.pid}/ns/mnt`, 'r');
  let fdOpen = true;
  t.teardown(() => {
    if (fdOpen) closeSync(fd);
  });
  const keeper = start(t, 'sleep', ['300'], ['ignore', 'ignore', 'ignore', fd]);
  await waitFor('keeper exec', () => {
    try {
      return readlinkSync(`/proc/${keeper.pid}/fd/3`) === `mnt:[${inode}]`;
    } catch {
      return false;
    }
  });
  await kill(holder);

  // Our own fd (still open) is ignored by default, reported on request.
  let snap = await discover();
  let ns = get(t, snap, inode);
  t.is(ns.source, 'fd');
  t.deepEqual(ns.pids, []);
  t.deepEqual(ns.refs, [[`/proc/${keeper.pid}/fd/3`]]);
  snap = await discover({ includeOwnFds: true });
  const byPid = [
    [keeper.pid!, 3],
    [process.pid, fd],
  ].sort((x, y) => x[0]! - y[0]!);
  t.deepEqual(
    get(t, snap, inode).refs,
    byPid.map(([p, n]) => [`/proc/${p}/fd/${n}`]),
  );

  closeSync(fd);
  fdOpen = false;
  snap = await discover();
  ns = get(t, snap, inode);
  t.is(ns.source, 'fd');
  t.deepEqual(ns.refs, [[`/proc/${keeper.pid}/fd/3`]]);
});

test('bind mount visible only inside another namespace: 2-element ref', async (t) => {
  const dir = tmpDir(t);
  const pin = `${dir}/inner`;
  const outer = start(t, PIN[0]!, [
    ...PIN.slice(1),
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'touch "$1" && unshare --mount="$1" -m true && echo ready && exec sleep 300',
    'sh',
    pin,
  ]);
  await lineFrom(outer, /ready/);
  const outerNs = nsOf(outer.pid!)!;
  t.not(outerNs, ownNs);
  const inside = mountNamespacePins(parseMountinfo(readFileSync(`/proc/${outer.pid}/mountinfo`, 'latin1')));
  const innerPin = inside.find((p) => p.mountPoint === pin);
  if (!innerPin) return t.fail(`no pin at ${pin} inside the outer namespace`);
  const host = mountNamespacePins(parseMountinfo(readFileSync('/proc/self/mountinfo', 'latin1')));
  t.false(
    host.some((p) => p.mountPoint === pin),
    'the pin must not propagate to the host',
  );

  const snap = await discover();
  const ns = get(t, snap, innerPin.inode);
  t.is(ns.source, 'bindmount');
  t.deepEqual(ns.refs, [[`/proc/${outer.pid}/ns/mnt`, pin]]);
  // The daemon's discovery thread reads synchronously: same answer.
  t.deepEqual(get(t, await discover({ sync: true }), innerPin.inode).refs, ns.refs);
  t.is(get(t, snap, outerNs).source, 'process');
  t.true(snap.stats!.depth >= 2);
});

test('chain of process-less namespaces is followed through readMountinfo', async (t) => {
  const dir = tmpDir(t);
  const a = `${dir}/a`;
  const b = `${dir}/b`;
  writeFileSync(a, '');
  writeFileSync(b, '');
  t.teardown(() => {
    umountQuiet(b, a);
    umountQuiet(a);
  });
  // A pinned at a (host); inside A, B pinned at b (visible in A only).
  execFileSync(PIN[0]!, [
    ...PIN.slice(1),
    ...['unshare', `--mount=${a}`, '-m', '--propagation', 'private'],
    ...['sh', '-c', 'unshare --mount="$1" -m true', 'sh', b],
  ]);
  const aNs = statSync(a).ino;
  const host = mountNamespacePins(parseMountinfo(readFileSync('/proc/self/mountinfo', 'latin1')));
  t.false(host.some((p) => p.mountPoint === b));

  const asked: MountNamespace[] = [];
  const readMountinfo = async (ns: MountNamespace): Promise<string | undefined> => {
    asked.push(ns);
    const ref = ns.refs[0];
    if (!ref || ref.length !== 1) return undefined;
    const { stdout } = await execFileP('nsenter', [`--mount=${ref[0]}`, 'cat', '/proc/self/mountinfo']);
    return stdout;
  };

  // Without a reader, A is found but unexplored, and B stays hidden.
  let snap = await discover();
  t.is(get(t, snap, aNs).source, 'bindmount');
  t.true(snap.stats!.unexplored.includes(aNs));

  snap = await discover({ readMountinfo });
  const bIno = [...snap.namespaces.values()].find((ns) =>
    ns.refs.some((r) => r.length === 2 && r[0] === a && r[1] === b),
  );
  if (!bIno) return t.fail('B not found through A');
  t.is(bIno.source, 'bindmount');
  t.deepEqual(bIno.refs[0], [a, b]);
  t.false(snap.stats!.unexplored.includes(aNs));
  t.true(asked.some((ns) => ns.inode === aNs));
  t.true(
    asked.every((ns) => ns.pids.length === 0 && ns.threads.length === 0),
    'reader only asked for process-less namespaces',
  );
});

/** Source of a child whose worker thread moves alone into a new mount namespace. */
const THREAD_CHILD = `
import { Worker } from 'node:worker_threads';
const w = new Worker(\`
  const { parentPort, workerData } = require('node:worker_threads');
  import(workerData).then(({ unshare, CLONE, gettid }) => {
    unshare(CLONE.FS);
    unshare(CLONE.NEWNS);
    parentPort.postMessage(gettid());
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
\`, { eval: true, workerData: process.argv[2] });
w.on('message', (tid) => console.log('tid=' + tid));
w.on('error', (e) => { console.error(e); process.exit(1); });
setInterval(() => {}, 1 << 30);
`;

test('thread-held namespace: source thread with pid and tid', async (t) => {
  const dir = tmpDir(t);
  const script = `${dir}/thread-child.mjs`;
  writeFileSync(script, THREAD_CHILD);
  const libc = new URL('../src/sys/libc.js', import.meta.url).href;
  const child = start(t, process.execPath, [script, libc]);
  const tid = Number((await lineFrom(child, /tid=(\d+)/))[1]);
  const pid = child.pid!;
  const inode = nsOf(`${pid}/task/${tid}`)!;
  t.not(inode, ownNs);
  t.is(nsOf(pid), ownNs);

  const snap = await discover();
  const ns = get(t, snap, inode);
  t.is(ns.source, 'thread');
  t.deepEqual(ns.pids, []);
  t.deepEqual(ns.threads, [{ pid, tid }]);
  t.deepEqual(ns.refs[0], [`/proc/${pid}/task/${tid}/ns/mnt`]);
  t.is(snap.pidToNamespace.get(pid), ownNs);
  t.false(snap.stats!.unexplored.includes(inode), 'mountinfo read through the task');
});

test('ignoreTids: the daemon’s own sandbox thread is not a source', async (t) => {
  const libc = new URL('../src/sys/libc.js', import.meta.url).href;
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.libc).then(({ unshare, CLONE, gettid }) => {
      unshare(CLONE.FS);
      unshare(CLONE.NEWNS);
      parentPort.postMessage(gettid());
      Atomics.wait(workerData.gate, 0, 0);
    });
  `,
    { eval: true, workerData: { libc, gate } },
  );
  const gone = new Promise((resolve) => worker.once('exit', resolve));
  t.teardown(async () => {
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    await gone;
  });
  const tid = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const inode = nsOf(`${process.pid}/task/${tid}`)!;
  t.not(inode, ownNs);

  let snap = await discover({ ignoreTids: new Set([tid]) });
  t.false(snap.byInode.has(inode), 'sandbox thread ignored');
  snap = await discover();
  t.deepEqual(get(t, snap, inode).threads, [{ pid: process.pid, tid }]);
});

test('superset of lsns -t mnt', async (t) => {
  const lsns = (): Set<number> =>
    new Set(
      execFileSync('lsns', ['-t', 'mnt', '-n', '-o', 'NS'], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '')
        .map(Number),
    );
  const before = lsns();
  const snap = await discover();
  const after = lsns();
  t.true(before.size > 0);
  for (const ns of before) {
    if (!after.has(ns)) continue; // vanished meanwhile
    t.true(snap.byInode.has(ns), `mnt:[${ns}] from lsns`);
  }
  checkSnapshotShape(t, snap);
  for (const ns of snap.namespaces.values()) t.log(describeNamespace(ns));
  const s = snap.stats!;
  t.log(
    `pass ${s.durationMs.toFixed(1)} ms: ${s.processes} processes, ${s.threads} threads, ${s.fds} fds, ${s.reads} reads`,
  );
});

test('a pass finishes within the default --scan-interval', async (t) => {
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const snap = await discover();
    times.push(snap.stats!.durationMs);
  }
  times.sort((a, b) => a - b);
  t.log(`10 passes, median ${times[5]!.toFixed(1)} ms, max ${times[9]!.toFixed(1)} ms`);
  // Speed itself is a benchmark's business; what must hold is that passes (one per second by
  // default) never back up behind each other.
  t.true(times[5]! < 1_000, `median pass ${times[5]!.toFixed(0)} ms`);
});

test('no leftovers', async (t) => {
  for (const child of spawned) {
    t.true(child.exitCode !== null || child.signalCode !== null, `child ${child.pid} ended`);
    t.is(nsOf(child.pid!), undefined);
  }
  const pins = mountNamespacePins(parseMountinfo(readFileSync('/proc/self/mountinfo', 'latin1')));
  for (const dir of tmpDirs)
    t.false(
      pins.some((p) => p.mountPoint.startsWith(dir)),
      `no pin under ${dir}`,
    );
});

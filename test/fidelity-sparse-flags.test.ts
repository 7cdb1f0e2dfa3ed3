/**
 * End to end: what backup tools learn from a file besides its bytes and stat. Holes (SEEK_DATA /
 * SEEK_HOLE, forwarded as FUSE_LSEEK) and file attribute flags (lsattr's FS_IOC_GETFLAGS and
 * FS_IOC_FSGETXATTR, forwarded as FUSE_IOCTL) must be what they are inside the namespace.
 *
 * The files live on a tmpfs only the container has mounted (tmpfs keeps holes and, since 6.0,
 * the i/a/d/A flags); the host reaches the originals through /proc/<pid>/root for reference.
 */
import test from 'ava';
import path from 'node:path';
import { daemonStats } from './fixtures/lifecycle/lib.js';
import {
  CleanupScope,
  hostTarArgv,
  makeTempDir,
  run,
  sh,
  shq,
  startContainer,
  startNsview,
  type Container,
  type Nsview,
} from './helpers/index.js';

const GIB = 1024 * 1024 * 1024;

interface World {
  view: Nsview;
  c: Container;
  /** The container's /data in the view, and through /proc/<pid>/root. */
  data: string;
  procData: string;
  work: string;
}

const scope = new CleanupScope();
let w: World;

test.before(async () => {
  const c = await startContainer(scope, {
    mountProc: true, // the host's tar runs inside through /proc/<test pid>/root
    setup: 'mkdir /data && mount -t tmpfs -o size=16m,mode=0755 nsview-data /data',
  });
  const procData = `/proc/${c.pid}/root/data`;
  // sparse/big: 1 GiB, one 4 KiB data block in the middle; cp/for-cp the same, read by no other
  // test (so none of its pages is cached). sparse/multi: data, hole, data, hole.
  await sh(
    [
      `mkdir ${shq(`${procData}/sparse`)} ${shq(`${procData}/flags`)} ${shq(`${procData}/flags/nodump-dir`)}`,
      `cd ${shq(`${procData}/sparse`)}`,
      `truncate -s ${GIB} big`,
      'printf "one data block" | dd of=big bs=4096 seek=131072 conv=notrunc status=none',
      'truncate -s 1048576 multi',
      'head -c 8192 /dev/urandom | dd of=multi bs=4096 conv=notrunc status=none',
      'head -c 4096 /dev/urandom | dd of=multi bs=4096 seek=128 conv=notrunc status=none',
      'mkdir ../cp && cp --sparse=always big ../cp/for-cp',
      'touch -d @1600000000 big multi .',
      `cd ${shq(`${procData}/flags`)}`,
      'echo data > immutable && echo log > append-only && echo plain > plain',
      'chattr +i immutable && chattr +a append-only && chattr +d nodump-dir',
    ].join(' && '),
  );
  // Immutable and append-only files cannot be removed when the tmpfs goes with the namespace
  // anyway; clearing the flags keeps a later look at the tree from being surprised.
  scope.teardown(() =>
    sh(`chattr -i -a ${shq(`${procData}/flags/immutable`)} ${shq(`${procData}/flags/append-only`)}`, {
      check: false,
    }).then(() => undefined),
  );
  const view = await startNsview(scope, {});
  w = {
    view,
    c,
    data: path.join(view.mountpoint, String(c.nsInode), 'data'),
    procData,
    work: makeTempDir(scope, 'sparse-flags'),
  };
});

test.after.always(() => scope.cleanup());

/** SEEK_DATA / SEEK_HOLE offsets from 0 of a file, by python (errno names for ENXIO). */
async function holeMap(file: string): Promise<string> {
  const py = [
    'import os, sys',
    'fd = os.open(sys.argv[1], os.O_RDONLY)',
    'out, off = [], 0',
    'while True:',
    '    try: d = os.lseek(fd, off, os.SEEK_DATA)',
    '    except OSError as e: out.append("end"); break',
    '    h = os.lseek(fd, d, os.SEEK_HOLE); out.append(f"{d}-{h}"); off = h',
    'print(" ".join(out))',
  ].join('\n');
  return (await run('python3', ['-c', py, file])).stdout.trim();
}

test('SEEK_DATA / SEEK_HOLE through the view find the holes the file has inside', async (t) => {
  for (const name of ['big', 'multi']) {
    const [viaView, inside] = await Promise.all([
      holeMap(`${w.data}/sparse/${name}`),
      holeMap(`${w.procData}/sparse/${name}`),
    ]);
    t.is(viaView, inside, name);
  }
  // Not vacuous: the reference has holes (a file without would map as one extent to its size).
  t.is(await holeMap(`${w.procData}/sparse/big`), `${131072 * 4096}-${131073 * 4096} end`);
});

test('tar --sparse through the view is byte-identical to tar --sparse inside', async (t) => {
  const args = ['--format=gnu', '--sparse', '--numeric-owner', '--sort=name'];
  const viewTar = path.join(w.work, 'view.tar');
  const insideTar = path.join(w.work, 'inside.tar');
  const v = await run('tar', [...args, '-C', w.data, '-cf', viewTar, 'sparse'], { timeoutMs: 60_000, check: false });
  t.is(v.code, 0, v.stderr);
  const tarArgv = await hostTarArgv();
  const i = await sh(
    `nsenter -t ${w.c.pid} -m -r -w -- ${tarArgv.map(shq).join(' ')} ${args.map(shq).join(' ')} -C /data -cf - sparse > ${shq(insideTar)}`,
    {
      timeoutMs: 60_000,
      check: false,
    },
  );
  t.is(i.code, 0, i.stderr);
  const cmp = await run('cmp', [viewTar, insideTar], { check: false });
  t.is(cmp.code, 0, cmp.stdout + cmp.stderr);
  // Holes are archived as holes: far less than the 1 GiB of zeros a hole-blind tar would store.
  const size = Number((await run('stat', ['-c', '%s', viewTar])).stdout.trim());
  t.true(size < 1024 * 1024, `archive is ${size} bytes`);
});

test('cp --sparse=auto of a 1 GiB file with one data block reads only its data and keeps its holes', async (t) => {
  const copy = path.join(w.work, 'big.copy');
  const before = (await daemonStats(w.view)).requests.READ ?? 0;
  const r = await run('cp', ['--sparse=auto', `${w.data}/cp/for-cp`, copy], { timeoutMs: 120_000, check: false });
  t.is(r.code, 0, r.stderr);
  // Reads of at most 1 MiB each: a cp that skips the holes asks for the data block and the
  // readahead around it; one blind to holes reads all 1024 MiB.
  const reads = ((await daemonStats(w.view)).requests.READ ?? 0) - before;
  t.true(reads < 64, `${reads} READ requests`);
  const [size, kib] = (await run('stat', ['-c', '%s %b', copy])).stdout.trim().split(' ').map(Number);
  t.is(size, GIB);
  // st_blocks (512-byte units): a few blocks, not the 2 Mi a copy that read every hole writes.
  t.true(kib! <= 64, `copy has ${kib} blocks`);
  // And the same bytes, compared against the original on the host side (no FUSE involved).
  const cmp = await run('cmp', [copy, `${w.procData}/cp/for-cp`], { timeoutMs: 120_000, check: false });
  t.is(cmp.code, 0, cmp.stdout + cmp.stderr);
});

/** lsattr's flag column for each path. */
async function lsattr(paths: string[]): Promise<string[]> {
  const out = (await run('lsattr', ['-d', ...paths])).stdout.trim().split('\n');
  return out.map((l) => l.split(' ')[0]!);
}

test('lsattr through the view shows the flags set inside (i, a, d), read through FUSE_IOCTL', async (t) => {
  const names = ['flags/immutable', 'flags/append-only', 'flags/plain', 'flags/nodump-dir', 'flags'];
  const [viaView, inside] = await Promise.all([
    lsattr(names.map((n) => `${w.data}/${n}`)),
    lsattr(names.map((n) => `${w.procData}/${n}`)),
  ]);
  t.deepEqual(viaView, inside);
  t.regex(viaView[0]!, /^----i-/);
  t.regex(viaView[1]!, /^-----a-/);
  t.regex(viaView[3]!, /^------d-/);
  t.notRegex(viaView[2]!, /[iad]/);
});

test('bsdtar --format=mtree through the view keeps flags= (schg, sappnd, nodump) as inside', async (t) => {
  const mtree = async (dir: string) => (await run('bsdtar', ['--format=mtree', '-cf', '-', '-C', dir, 'flags'])).stdout;
  const [viaView, inside] = await Promise.all([mtree(w.data), mtree(w.procData)]);
  t.is(viaView, inside);
  t.regex(viaView, /\.\/flags\/immutable .*flags=schg/);
  t.regex(viaView, /\.\/flags\/nodump-dir .*flags=nodump/);
  t.regex(viaView, /\.\/flags\/append-only .*flags=sappnd/);
});

/** An ioctl on a file by python: `ok <hex>` with the output bytes, or `errno <n>`. */
async function ioctl(file: string, cmd: number, size: number): Promise<string> {
  const py = [
    'import fcntl, os, sys',
    'fd = os.open(sys.argv[1], os.O_RDONLY)',
    'try: print("ok", fcntl.ioctl(fd, int(sys.argv[2]), bytes(int(sys.argv[3]))).hex())',
    'except OSError as e: print("errno", e.errno)',
  ].join('\n');
  return (await run('python3', ['-c', py, file, String(cmd), String(size)])).stdout.trim();
}

const FS_IOC_FSGETXATTR = 0x801c581f;
const FS_IOC_GETVERSION = 0x80087601;
const FS_IOC_SETFLAGS = 0x40086602;

test('FS_IOC_FSGETXATTR answers the same struct fsxattr as inside; other ioctls are ENOTTY', async (t) => {
  for (const name of ['flags/immutable', 'flags/nodump-dir', 'flags/plain']) {
    const [viaView, inside] = await Promise.all([
      ioctl(`${w.data}/${name}`, FS_IOC_FSGETXATTR, 28),
      ioctl(`${w.procData}/${name}`, FS_IOC_FSGETXATTR, 28),
    ]);
    t.is(viaView, inside, name);
  }
  // FS_XFLAG_IMMUTABLE (0x8) in fsx_xflags: the comparison is not of two empty answers.
  t.regex(await ioctl(`${w.data}/flags/immutable`, FS_IOC_FSGETXATTR, 28), /^ok 08000000/);
  // An ioctl the view does not serve reaches it (FUSE_IOCTL) and is refused, not forwarded.
  t.is(await ioctl(`${w.data}/flags/plain`, FS_IOC_GETVERSION, 8), 'errno 25');
});

test('flags cannot be changed through the view', async (t) => {
  const r = await run('chattr', ['-i', `${w.data}/flags/immutable`], { check: false });
  t.not(r.code, 0);
  // Nor by a raw FS_IOC_SETFLAGS on a file opened for reading.
  t.regex(await ioctl(`${w.data}/flags/plain`, FS_IOC_SETFLAGS, 8), /^errno (30|25|1)$/);
  t.deepEqual(
    await lsattr([`${w.procData}/flags/immutable`, `${w.procData}/flags/plain`]).then((l) =>
      l.map((f) => f.includes('i')),
    ),
    [true, false],
  );
});

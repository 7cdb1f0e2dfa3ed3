/**
 * End to end: `--symlinks raw`, the mode for backups. A tar of a namespace's tree made through
 * the view must equal a tar made inside the namespace.
 *
 * The fidelity tree lives on a tmpfs that only the container has mounted (on /data), so the host
 * cannot read it by any path of its own: the reference archive is made *inside* the container's
 * mount namespace (`nsenter -t PID -m -r`) by the host's GNU tar, started through the host's
 * dynamic loader reached by `/proc/<test pid>/root` (the container's busybox tar has no xattrs).
 */
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import {
  CleanupScope,
  HARDLINK_NAMES,
  hostTarArgv,
  makeFidelityTree,
  makeTempDir,
  NON_UTF8_NAME,
  run,
  sh,
  shq,
  snapshotTree,
  startContainer,
  startNsview,
  SYMLINKS,
  XATTRS,
  type Container,
  type Nsview,
} from './helpers/index.js';

/** Raw links beside the fidelity tree (in /data/rawlinks): name -> target bytes. */
const RAW_LINKS: ReadonlyArray<[string, Buffer]> = [
  ['non-utf8', Buffer.from([0xff, 0xfe])],
  ['latin1-dir', Buffer.concat([Buffer.from('/etc/caf'), Buffer.from([0xe9]), Buffer.from('/x')])],
  ['abs', Buffer.from('/etc/shadow')],
  ['escape', Buffer.from('../../../../../../../../etc/passwd')],
  ['dots', Buffer.from('./a/../b/./c//d/')],
  ['newline', Buffer.from('line1\nline2')],
  ['long', Buffer.from(`/${'d123456789/'.repeat(370)}end`)], // 4075 bytes, close to PATH_MAX
];

const TAR_CREATE = ['--format=posix', '--xattrs', '--xattrs-include=user.*', '--numeric-owner', '--sort=name'];

interface World {
  view: Nsview;
  /** A second mount in the default mode (links rewritten), whose raw/ tree backups use. */
  rewriteView: Nsview;
  /** The container's /data under that mount's raw/ directory. */
  rawData: string;
  c: Container;
  /** The container's /data in the view. */
  data: string;
  /** Same, from the host through the container's root (the kernel's own view of it). */
  procData: string;
  work: string;
  /** Entries of the fidelity tree, without the tree's root and the non-UTF-8 name. */
  entries: number;
}

const scope = new CleanupScope();
let w: World;

test.before(async () => {
  const c = await startContainer(scope, {
    mountProc: true,
    setup: 'mkdir /data && mount -t tmpfs -o size=16m,mode=0755 nsview-data /data',
  });
  const procData = `/proc/${c.pid}/root/data`;
  const tree = await makeFidelityTree(`${procData}/fidelity`, { nonUtf8Name: true });
  const links = `${procData}/rawlinks`;
  await sh(`mkdir ${shq(links)}`);
  for (const [name, target] of RAW_LINKS) {
    await run('python3', [
      '-c',
      'import os,sys; os.symlink(bytes.fromhex(sys.argv[1]), sys.argv[2])',
      target.toString('hex'),
      `${links}/${name}`,
    ]);
  }
  const [view, rewriteView] = await Promise.all([startNsview(scope, { symlinks: 'raw' }), startNsview(scope, {})]);
  w = {
    view,
    rewriteView,
    rawData: path.join(rewriteView.mountpoint, 'raw', String(c.nsInode), 'data'),
    c,
    data: path.join(view.mountpoint, String(c.nsInode), 'data'),
    procData,
    work: makeTempDir(scope, 'fidelity-work'),
    entries: tree.entries.length,
  };
});

test.after.always(() => scope.cleanup());

test('the tree is only in the container (its rootfs directory on the host has an empty /data)', async (t) => {
  t.is((await run('ls', ['-A', path.join(w.c.rootfs, 'data')])).stdout, '');
  t.is((await w.c.exec('cat /data/fidelity/files/hello.txt')).stdout, 'hello, nsview\n');
  t.is((await run('cat', [`${w.data}/fidelity/files/hello.txt`])).stdout, 'hello, nsview\n');
});

test('raw: readlink returns every stored target byte for byte (non-UTF-8, newline, 4 KiB)', async (t) => {
  for (const [name, target] of Object.entries(SYMLINKS)) {
    const r = await run('readlink', [`${w.data}/fidelity/${name}`]);
    t.is(r.stdout, `${target}\n`, name);
  }
  for (const [name, target] of RAW_LINKS) {
    const r = await run('readlink', [`${w.data}/rawlinks/${name}`], { check: false });
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    t.is(r.stdoutBuffer.toString('hex'), Buffer.concat([target, Buffer.from('\n')]).toString('hex'), name);
  }
  // And the size the kernel reports (lstat st_size) is the target's length.
  const sizes = (await run('stat', ['-c', '%s', ...RAW_LINKS.map(([n]) => `${w.data}/rawlinks/${n}`)])).stdout
    .trim()
    .split('\n');
  t.deepEqual(
    sizes.map(Number),
    RAW_LINKS.map(([, target]) => target.length),
  );
});

test('the view of the tree equals the tree itself (snapshot of every entry)', async (t) => {
  const [viewSnap, procSnap] = await Promise.all([
    snapshotTree(`${w.data}/fidelity`),
    snapshotTree(`${w.procData}/fidelity`),
  ]);
  t.deepEqual(viewSnap, procSnap);
  // Spot checks that the comparison is not vacuous.
  const line = (p: string) => viewSnap.find((l) => l.startsWith(`${p} type=`)) ?? '';
  t.regex(line('files/ns-mtime.txt'), /mtime=1000000000\.123456789/);
  t.regex(line('files/setuid'), /mode=4755/);
  t.regex(line('dirs/sticky'), /mode=1777/);
  t.regex(line('special/null'), /type=c .*rdev=1:3/);
  t.regex(line('special/fifo'), /type=p/);
  t.regex(line(HARDLINK_NAMES[2]), new RegExp(`hardlink=${HARDLINK_NAMES[0]}`));
  t.regex(
    line('files/xattr.txt'),
    new RegExp(`user\\.test:${Buffer.from(XATTRS['files/xattr.txt']!['user.test']!).toString('hex')}`),
  );
  t.regex(line(`files/${NON_UTF8_NAME.toString('latin1').replace('\xe9', '\\xe9')}`), /type=f/);
});

test('tar through the view (raw) equals tar made inside the namespace: listing and extracted trees', async (t) => {
  await tarThroughViewEqualsInside(t, w.data, 'raw-mount');
});

test('tar of raw/<ns> on a mount in the default mode equals tar made inside the namespace', async (t) => {
  await tarThroughViewEqualsInside(t, w.rawData, 'raw-dir');
});

test('raw/<ns> and <ns> on one mount: each link its own target and size, asked in any order', async (t) => {
  const top = path.join(w.rewriteView.mountpoint, String(w.c.nsInode), 'data');
  const names = ['links/abs', 'links/rel', 'links/escape'];
  const ask = async (dir: string) => {
    const targets = (
      await run(
        'readlink',
        names.map((n) => `${dir}/fidelity/${n}`),
      )
    ).stdout
      .trim()
      .split('\n');
    const sizes = (await run('stat', ['-c', '%s', ...names.map((n) => `${dir}/fidelity/${n}`)])).stdout
      .trim()
      .split('\n')
      .map(Number);
    return { targets, sizes };
  };
  // Alternate, so a target or size cached for one tree's node would show in the other's answer.
  for (let round = 0; round < 2; round++) {
    const raw = await ask(w.rawData);
    const rewritten = await ask(top);
    t.deepEqual(
      raw.targets,
      names.map((n) => SYMLINKS[n]!),
    );
    t.deepEqual(
      raw.sizes,
      raw.targets.map((x) => Buffer.byteLength(x)),
    );
    // The default tree still rewrites (an absolute target becomes relative to the namespace root).
    t.is(rewritten.targets[0], '../../../etc/hostname');
    t.is(rewritten.targets[1], SYMLINKS['links/rel']);
    t.deepEqual(
      rewritten.sizes,
      rewritten.targets.map((x) => Buffer.byteLength(x)),
    );
  }
  // raw/ lists the same namespaces as the top directory.
  const list = async (dir: string) => (await run('ls', [dir])).stdout.split('\n').filter((l) => /^\d+$/.test(l));
  t.deepEqual(await list(path.join(w.rewriteView.mountpoint, 'raw')), await list(w.rewriteView.mountpoint));
});

async function tarThroughViewEqualsInside(t: ExecutionContext, data: string, label: string): Promise<void> {
  const viewTar = path.join(w.work, `${label}-view.tar`);
  const insideTar = path.join(w.work, `${label}-inside.tar`);
  // Through the view, from the host.
  const v = await run('tar', [...TAR_CREATE, '-C', data, '-cf', viewTar, 'fidelity'], {
    timeoutMs: 60_000,
    check: false,
  });
  t.is(v.code, 0, v.stderr);
  t.is(v.stderr, '');
  // Inside the container's mount namespace, rooted at its root, by the same GNU tar.
  const tarArgv = await hostTarArgv();
  const inside = await sh(
    `nsenter -t ${w.c.pid} -m -r -w -- ${tarArgv.map(shq).join(' ')} ${TAR_CREATE.map(shq).join(' ')} -C /data -cf - fidelity > ${shq(insideTar)}`,
    { timeoutMs: 60_000, check: false },
  );
  t.is(inside.code, 0, inside.stderr);
  t.is(inside.stderr, '');

  // Listings: types, modes (set-id, sticky), owners, sizes, mtimes with ns, link targets, xattrs
  // (each xattr on a line after its entry). --sort=name makes the member order the same.
  const listing = async (file: string) =>
    (await run('tar', ['--xattrs', '--full-time', '--numeric-owner', '-tvvf', file])).stdoutBuffer
      .toString('latin1')
      .split('\n')
      .filter((l) => l !== '');
  const [lv, li] = await Promise.all([listing(viewTar), listing(insideTar)]);
  t.deepEqual(lv, li);
  t.is(
    lv.filter((l) => !l.startsWith('  x: ')).length,
    1 + w.entries + 1,
    'every entry (and the non-UTF-8 name) archived',
  );
  const at = (name: string) => {
    const i = lv.findIndex(
      (l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `) || l.includes(` ${name} link to `),
    );
    return i < 0 ? '' : lv[i]!.replace(/ +/g, ' ');
  };
  t.is(at('fidelity/files/setuid'), '-rwsr-xr-x 0/0 7 2020-09-13 12:26:40 fidelity/files/setuid');
  t.is(at('fidelity/files/setgid'), '-rwxr-sr-x 0/1000 7 2020-09-13 12:26:40 fidelity/files/setgid');
  t.is(at('fidelity/dirs/sticky/'), 'drwxrwxrwt 0/0 0 2020-09-13 12:26:40 fidelity/dirs/sticky/');
  t.is(
    at('fidelity/files/ns-mtime.txt'),
    '-rw-r--r-- 0/0 12 2001-09-09 01:46:40.123456789 fidelity/files/ns-mtime.txt',
  );
  t.is(at('fidelity/special/fifo'), 'prw-r--r-- 0/0 0 2020-09-13 12:26:40 fidelity/special/fifo');
  t.is(at('fidelity/special/null'), 'crw-rw-rw- 0/0 1,3 2020-09-13 12:26:40 fidelity/special/null');
  t.is(at('fidelity/links/abs'), 'lrwxrwxrwx 0/0 0 2017-07-14 02:40:00.000000001 fidelity/links/abs -> /etc/hostname');
  t.is(
    at('fidelity/links/owned'),
    'lrwxrwxrwx 1000/1000 0 2020-09-13 12:26:40 fidelity/links/owned -> ../files/hello.txt',
  );
  t.is(
    at('fidelity/hardlinks/two'),
    'hrw-r--r-- 1000/1000 0 2020-09-13 12:26:40 fidelity/hardlinks/two link to fidelity/hardlinks/one',
  );
  t.is(at('fidelity/files/latin1-\\351.txt'), '-rw-r--r-- 0/0 10 2020-09-13 12:26:40 fidelity/files/latin1-\\351.txt');
  const xattrsOf = (name: string) => {
    const i = lv.findIndex((l) => l.endsWith(` ${name}`));
    const xs: string[] = [];
    for (let j = i + 1; j < lv.length && lv[j]!.startsWith('  x: '); j++) xs.push(lv[j]!.replace(/ +/g, ' ').trim());
    return xs;
  };
  t.deepEqual(xattrsOf('fidelity/files/xattr.txt').sort(), ['x: 13 user.second', 'x: 5 user.test']);
  t.deepEqual(xattrsOf('fidelity/dirs/nested/'), ['x: 9 user.test']);

  // Extract both and compare everything: contents, modes, owners, ns mtimes, xattrs, hardlinks.
  const extract = async (file: string, which: string) => {
    const dest = path.join(w.work, `${label}-${which}`);
    await run('mkdir', [dest]);
    const r = await run(
      'tar',
      ['--xattrs', '--xattrs-include=user.*', '--numeric-owner', '--same-owner', '-xpf', file, '-C', dest],
      { check: false },
    );
    t.is(r.code, 0, `${which}: ${r.stderr}`);
    return snapshotTree(path.join(dest, 'fidelity'));
  };
  const [sv, si, orig] = await Promise.all([
    extract(viewTar, 'from-view'),
    extract(insideTar, 'from-inside'),
    snapshotTree(`${w.procData}/fidelity`),
  ]);
  t.deepEqual(sv, si);
  // Both restore the original tree exactly.
  t.deepEqual(sv, orig);
}

test('FIFOs and devices are special files in the view, never opened: nodev, nosuid, read-only mount', async (t) => {
  const st = await run('stat', [
    '-c',
    '%F %t:%T',
    `${w.data}/fidelity/special/fifo`,
    `${w.data}/fidelity/special/null`,
  ]);
  t.is(st.stdout, 'fifo 0:0\ncharacter special file 1:3\n');
  const opts = (await run('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', w.view.mountpoint])).stdout
    .trim()
    .split(',');
  for (const o of ['ro', 'nosuid', 'nodev']) t.true(opts.includes(o), `${o} in ${opts.join(',')}`);
  // A device node in the view cannot be opened (nodev), so it can never reach the host's device.
  const dev = await run('head', ['-c', '1', `${w.data}/fidelity/special/null`], { check: false });
  t.not(dev.code, 0);
  t.regex(dev.stderr, /Permission denied/);
});

/**
 * Containment attacks, part 1: symlinks a container plants, read through the view.
 *
 * Setup: a host canary directory C (content with a unique token; the host has C/secret,
 * C/sub/file, C/etc/hostname and C/HOSTONLY-x) and a pivot_root'ed container (proc mounted)
 * whose rootfs holds decoys at C/secret and C/sub/file (the same absolute path, other content)
 * and nothing at the other host-only paths. /atk in the container holds the links.
 *
 * What each mode guarantees, and what is checked here:
 *
 * - rewrite (default): every link the view shows is relative and, joined to its directory,
 *   stays inside the namespace's directory; a host program following any chain of them reaches
 *   exactly what the container would reach (its decoy, its /etc/hostname) or fails cleanly
 *   (ENOENT, ELOOP, ENOTDIR, EXDEV, EACCES); never the host canary, whatever the tool (cat, ls,
 *   stat -L, find -L, tar -h, grep -R). Links into /proc: ENOENT without --pseudo (proc is an
 *   empty directory); with --pseudo magic links (/proc/self/root, /proc/PID/root, /proc/PID/cwd,
 *   /proc/PID/fd/N) still never lead to host files.
 * - raw: readlink returns the stored bytes exactly, lstat shows the link with its true size,
 *   and everything nsview itself serves (lookups of single names, reads, listings, tar without
 *   -h, find -P, grep -r) comes from the container. A host program that FOLLOWS a raw absolute
 *   link is sent to the host path by the host kernel: documented, and logged here, not a leak
 *   by nsview; raw mode is for tools that store links (tar, rsync -l, restic).
 */
import test from 'ava';
import { chmod, mkdir, readlink as readlinkHost, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  makeRootfs,
  makeTempDir,
  sh,
  shq,
  spawnLongLived,
  startContainer,
  startNsview,
  waitForLine,
  type Container,
  type Nsview,
} from './helpers/index.js';
import {
  checkRewrittenLinks,
  makeCanary,
  mountOptions,
  probe,
  probe1,
  show,
  tool,
  type Canary,
} from './fixtures/attack/lib.js';

const scope = new CleanupScope();
let canary: Canary;
let ctr: Container;
let rewrite: Nsview;
let raw: Nsview;
let pseudo: Nsview;
const DECOY = 'CONTAINER-DECOY secret\n';
const DECOY_SUB = 'CONTAINER-DECOY sub/file\n';
/** link name (in /atk) -> target bytes as stored. */
const links = new Map<string, string>();
let holderPid = 0;

function plant(name: string, target: string): void {
  links.set(name, target);
}

test.before(async () => {
  canary = await makeCanary(scope);
  const dir = makeTempDir(scope, 'atk-symlinks');
  const rootfs = await makeRootfs(path.join(dir, 'root'));
  const C = canary.dir;
  // Decoys at the host canary's absolute path inside the container.
  await mkdir(path.join(rootfs.dir, C, 'sub'), { recursive: true });
  await writeFile(path.join(rootfs.dir, C, 'secret'), DECOY);
  await writeFile(path.join(rootfs.dir, C, 'sub', 'file'), DECOY_SUB);
  await mkdir(path.join(rootfs.dir, 'atk', 'realdir'), { recursive: true });
  await writeFile(path.join(rootfs.dir, 'atk', 'realdir', 'file'), 'real file\n');
  await chmod(path.join(rootfs.dir, 'atk'), 0o755);
  // A real /dev/null, so `2>/dev/null` in the container does not create a regular file.
  await sh(`mknod -m 666 ${shq(path.join(rootfs.dir, 'dev/null'))} c 1 3`);

  const up = '../'.repeat(24);
  plant('abs-decoy', `${C}/secret`);
  plant('abs-hostonly', `${C}/${canary.hostOnlyName}`);
  plant('abs-hostonly-deep', `${C}/etc/hostname`);
  plant('abs-etc-hostname', '/etc/hostname');
  plant('abs-dir', C);
  plant('abs-dir-slash', `${C}/`);
  plant('abs-root', '/');
  plant('rel-deep', `${up}${C.slice(1)}/secret`);
  plant('rel-deep-dir', `${up}${C.slice(1)}`);
  plant('garbage', `/../../../../../../..${C}/secret`);
  plant('dotdot-garbage', `${C}/../../../../../../../../..${C}/secret`);
  plant('dotdot-hostonly', `${up}${C.slice(1)}/${canary.hostOnlyName}`);
  plant('chain3', 'abs-decoy');
  plant('chain2', 'chain3');
  plant('chain1', './chain2');
  plant('chain-dir', 'abs-dir');
  plant('chain-abs', '/atk/chain1');
  plant('loop-a', 'loop-b');
  plant('loop-b', 'loop-a');
  plant('self-loop', 'self-loop');
  plant('loop-dir', 'loop-dir/x');
  plant('dangling', '/nonexistent/nsview-dangling');
  plant('dangling-chain', 'dangling');
  plant('dangling-up', '../../nonexistent/../../etc/hostname');
  plant('trail-slash', '/etc/hostname/');
  plant('trail-dot', '/etc/hostname/.');
  plant('trail-dotdot', '/etc/hostname/..');
  plant('realdir-up', 'realdir/../../../../etc/hostname');
  plant('empty-component', `/${C}//secret`);
  // Magic links (need /proc inside the container).
  plant('proc-self-root', `/proc/self/root${C}/secret`);
  plant('proc-thread-self-root', `/proc/thread-self/root${C}/secret`);
  plant('proc-1-root', `/proc/1/root${C}/secret`);
  plant('proc-self-root-dir', '/proc/self/root');
  plant('proc-self-exe', '/proc/self/exe');
  for (const [name, target] of links) await symlink(target, path.join(rootfs.dir, 'atk', name));

  ctr = await startContainer(scope, { rootfs, mountProc: true });
  // A host process holding the canary open: /proc/PID/fd/3 is a magic link to it.
  const holder = spawnLongLived(['sh', '-c', 'exec 3<"$0" && echo ready && exec sleep 999999', canary.file]);
  scope.teardown(() => holder.kill());
  await waitForLine(holder.child, holder.stdout, /^ready$/, 15_000, () => holder.stderr.all());
  holderPid = holder.child.pid!;

  rewrite = await startNsview(scope, { symlinks: 'rewrite' });
  raw = await startNsview(scope, { symlinks: 'raw' });
  pseudo = await startNsview(scope, { symlinks: 'rewrite', pseudo: true });

  // Links that name the daemons' and the holder's pids, planted now that they are known.
  const late = new Map<string, string>();
  late.set('proc-holder-fd', `/proc/${holderPid}/fd/3`);
  late.set('proc-holder-cwd', `/proc/${holderPid}/cwd`);
  for (const [label, d] of [
    ['rw', rewrite],
    ['raw', raw],
    ['ps', pseudo],
  ] as const) {
    late.set(`proc-daemon-root-${label}`, `/proc/${d.pid}/root${C}/secret`);
    const cwd = await readlinkHost(`/proc/${d.pid}/cwd`);
    late.set(`proc-daemon-cwd-${label}`, `/proc/${d.pid}/cwd/${path.relative(cwd, canary.file)}`);
    late.set(`proc-daemon-fd-${label}`, `/proc/${d.pid}/fd/0`);
  }
  late.set(
    'proc-self-cwd-canary',
    `/proc/self/cwd/${path.relative(await readlinkHost(`/proc/${rewrite.pid}/cwd`), canary.file)}`,
  );
  for (const [name, target] of late) {
    links.set(name, target);
    await symlink(target, path.join(rootfs.dir, 'atk', name));
  }
});

test.after.always(() => scope.cleanup());

const nsDir = (d: Nsview) => `${d.mountpoint}/${ctr.nsInode}`;
const atk = (d: Nsview, name = '') => `${nsDir(d)}/atk${name ? `/${name}` : ''}`;

/** Fails the test if any text contains the host canary token. */
function noCanary(t: { false: (v: boolean, m?: string) => void }, what: string, text: string | Buffer): void {
  const s = Buffer.isBuffer(text) ? text.toString('latin1') : text;
  t.false(
    s.includes(canary.token),
    `${what} returned host canary content: ${s.slice(Math.max(0, s.indexOf(canary.token) - 200), s.indexOf(canary.token) + 100)}`,
  );
}

test('mounts are read-only, nosuid, nodev', async (t) => {
  for (const d of [rewrite, raw, pseudo]) {
    const m = await mountOptions(d.mountpoint);
    t.is(m.fsType, 'fuse.nsview');
    for (const o of ['ro', 'nosuid', 'nodev'])
      t.true(m.perMount.includes(o), `${d.mountpoint}: ${m.perMount.join(',')} lacks ${o}`);
  }
});

/** Expected outcome of `cat /atk/<name>` through a rewrite-mode view: content or errno set. */
function expectedRewrite(
  name: string,
  pseudoOn: boolean,
): { content?: string; contents?: string[]; errnos?: string[] } {
  const dir = ['abs-dir', 'abs-dir-slash', 'abs-root', 'rel-deep-dir', 'chain-dir'];
  if (name.startsWith('proc-')) {
    if (!pseudoOn) return { errnos: ['ENOENT'] };
    // Magic links: nsview never follows them; at most their text (a path) is resolved inside
    // the container, which leads to the container's decoy, never to the host file.
    return {
      contents: [DECOY],
      errnos: ['ENOENT', 'ELOOP', 'EXDEV', 'EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'ESTALE'],
    };
  }
  if (dir.includes(name)) return { errnos: ['EISDIR'] };
  switch (name) {
    case 'abs-decoy':
    case 'rel-deep':
    case 'garbage':
    case 'dotdot-garbage':
    case 'chain1':
    case 'chain2':
    case 'chain3':
    case 'chain-abs':
    case 'empty-component':
      return { content: DECOY };
    case 'abs-etc-hostname':
    case 'realdir-up':
      return { content: `${ctr.hostname}\n` };
    case 'abs-hostonly':
    case 'abs-hostonly-deep':
    case 'dotdot-hostonly':
    case 'dangling':
    case 'dangling-chain':
    case 'dangling-up': // `nonexistent/..` fails in the container too
      return { errnos: ['ENOENT'] };
    case 'loop-a':
    case 'loop-b':
    case 'self-loop':
    case 'loop-dir':
      return { errnos: ['ELOOP'] };
    case 'trail-slash': // see its own test below
    case 'trail-dot':
    case 'trail-dotdot':
      return { errnos: ['ENOTDIR'] };
  }
  throw new Error(`no expectation for ${name}`);
}

for (const mode of ['rewrite', 'rewrite+pseudo'] as const) {
  test(`${mode}: following every planted link reaches the container's file or fails cleanly`, async (t) => {
    const d = mode === 'rewrite' ? rewrite : pseudo;
    const names = [...links.keys()].filter((n) => n !== 'trail-slash');
    const reads = await probe(names.map((n) => ({ op: 'read' as const, path: atk(d, n) })));
    const seen: string[] = [];
    names.forEach((n, i) => {
      const r = reads[i]!;
      seen.push(`${n} -> ${show(r)}`);
      if (r.data) noCanary(t, `read ${n}`, r.data);
      const want = expectedRewrite(n, mode !== 'rewrite');
      if (want.content !== undefined) t.is(r.data?.toString(), want.content, `${n}: ${show(r)}`);
      else if (r.ok)
        t.true(
          want.contents?.includes(r.data!.toString()) ?? false,
          `${n} -> ${links.get(n)}: got ${show(r)}, want one of ${want.errnos!.join(',')}`,
        );
      else t.true(want.errnos!.includes(r.errno!), `${n}: got ${show(r)}, want one of ${want.errnos!.join(',')}`);
      t.true(r.ms < 5_000, `${n} took ${r.ms} ms`);
    });
    t.log(seen.join('\n'));
  });

  test(`${mode}: paths through link directories stay in the container`, async (t) => {
    const d = mode === 'rewrite' ? rewrite : pseudo;
    const cases: Array<[string, string | string[]]> = [
      ['abs-dir/secret', DECOY],
      ['abs-dir/sub/file', DECOY_SUB],
      ['abs-dir-slash/secret', DECOY],
      [`abs-dir/${canary.hostOnlyName}`, ['ENOENT']],
      ['abs-dir/etc/hostname', ['ENOENT']],
      ['rel-deep-dir/secret', DECOY],
      ['chain-dir/sub/file', DECOY_SUB],
      [`abs-root${canary.dir}/secret`, DECOY],
      ['abs-root/etc/hostname', `${ctr.hostname}\n`],
      ['abs-root/atk/abs-root/atk/chain1', DECOY],
      ['abs-decoy/', ['ENOTDIR']],
      ['abs-decoy/.', ['ENOTDIR']],
      ['realdir/file/', ['ENOTDIR']],
      ['realdir/file/.', ['ENOTDIR']],
      ['realdir/file/..', ['ENOTDIR']],
      ['loop-a/x', ['ELOOP']],
      ['proc-self-root-dir/etc/hostname', mode === 'rewrite' ? ['ENOENT'] : `${ctr.hostname}\n`],
      ['proc-self-root-dir/atk/abs-decoy', mode === 'rewrite' ? ['ENOENT'] : DECOY],
    ];
    const res = await probe(cases.map(([p]) => ({ op: 'read' as const, path: atk(d, p) })));
    cases.forEach(([p, want], i) => {
      const r = res[i]!;
      if (r.data) noCanary(t, p, r.data);
      if (typeof want === 'string') t.is(r.data?.toString(), want, `${p}: ${show(r)}`);
      else t.true(!r.ok && want.includes(r.errno!), `${p}: got ${show(r)}, want ${want.join(',')}`);
    });
    // Listing a linked directory shows the container's directory, never the host's.
    const ls = await probe1('listdir', atk(d, 'abs-dir'));
    t.true(ls.ok, show(ls));
    t.deepEqual(ls.names?.map((n) => n.toString()).sort(), ['secret', 'sub']);
  });

  test(`${mode}: every link the view shows is relative and stays inside the namespace directory`, async (t) => {
    const d = mode === 'rewrite' ? rewrite : pseudo;
    const r = await checkRewrittenLinks(nsDir(d), 'atk');
    t.true(r.links >= links.size, `only ${r.links} links seen`);
    t.deepEqual(r.bad, []);
    t.log(`readlink errors: ${JSON.stringify(r.errors)}`);
    // The whole container, bin/ applets and all.
    const all = await checkRewrittenLinks(nsDir(d), '', ['proc', 'sys']);
    t.deepEqual(all.bad, []);
    t.true(all.links > 50);
    // realpath of every link, resolved by the host kernel through the view, stays inside.
    const names = [...links.keys()];
    const rp = await probe(names.map((n) => ({ op: 'realpath' as const, path: atk(d, n) })));
    names.forEach((n, i) => {
      if (!rp[i]!.ok) return; // a clean failure (EACCES reading a magic link with --pseudo)
      const p = rp[i]!.data!.toString();
      t.true(p === nsDir(d) || p.startsWith(`${nsDir(d)}/`), `realpath ${n} = ${p}`);
    });
  });

  test(`${mode}: cat, ls -L, stat -L, find -L, tar -h, grep -R finish and never show the canary`, async (t) => {
    const d = mode === 'rewrite' ? rewrite : pseudo;
    const dir = atk(d);
    // abs-root and proc-self-root-dir lead back to the container root: walks skip proc and sys
    // there (the pseudo walk is attack-mounts' business) and tar -h, which has no loop check,
    // skips both links. Output is reduced to counts of the canary token and the decoy marker.
    const cmds = [
      `cd ${shq(dir)} && for f in *; do cat -- "$f"; done`,
      `ls -lL ${shq(dir)}; ls -lLR ${shq(dir)}/abs-dir/ ${shq(dir)}/rel-deep-dir/ ${shq(dir)}/chain-dir/`,
      `stat -L -c '%n %F %s' ${shq(dir)}/*`,
      `find -L ${shq(dir)} -maxdepth 8 \\( -name proc -o -name sys \\) -prune -o -type f -exec cat {} +`,
      `tar -C ${shq(dir)} --exclude=./abs-root --exclude=./proc-self-root-dir -chf - . | tar -xOf -`,
      `grep -R -a --exclude-dir=proc --exclude-dir=sys -e ${shq(canary.token)} -e DECOY ${shq(dir)}`,
      `cat ${shq(dir)}/abs-dir/* ${shq(dir)}/rel-deep-dir/* ${shq(dir)}/chain-dir/*`,
    ];
    for (const c of cmds) {
      const started = Date.now();
      const r = await tool(
        `{ ${c}; } 2>&1 | grep -a -o -F -e ${shq(canary.token)} -e CONTAINER-DECOY -e 'Too many levels' | sort | uniq -c`,
        90_000,
      );
      t.false(r.timedOut, `${c} timed out`);
      noCanary(t, c, r.stdout + r.stderr);
      t.log(`${c}: ${Date.now() - started} ms; ${r.stdout.replace(/\s+/g, ' ').trim()}`);
    }
    // grep -R found the decoys (it did follow the links), never the canary.
    const g = await tool(`grep -R -l -a --exclude-dir=proc --exclude-dir=sys DECOY ${shq(dir)}`, 60_000);
    t.regex(g.stdout, /abs-decoy/);
  });

  test(`${mode}: what the view reaches equals what the container reaches`, async (t) => {
    const d = mode === 'rewrite' ? rewrite : pseudo;
    const names = [...links.keys()].filter((n) => !n.startsWith('proc-') && n !== 'trail-slash');
    const script = names
      .map((n) => `if c=$(cat /atk/${n} 2>/dev/null); then echo "${n} ok $c"; else echo "${n} fail"; fi`)
      .join('\n');
    const inside = (await ctr.exec(script)).stdout.trim().split('\n');
    const res = await probe(names.map((n) => ({ op: 'read' as const, path: atk(d, n) })));
    const viewLines = names.map((n, i) => {
      const r = res[i]!;
      return r.ok ? `${n} ok ${r.data!.toString().replace(/\n$/, '')}` : `${n} fail`;
    });
    t.deepEqual(viewLines, inside);
  });
}

test('rewrite: a link to "file/" fails with ENOTDIR as in the container', async (t) => {
  const inside = await ctr.exec('cat /atk/trail-slash', { check: false });
  t.not(inside.code, 0);
  for (const d of [rewrite, pseudo]) {
    const r = await probe1('read', atk(d, 'trail-slash'));
    t.is(
      r.errno,
      'ENOTDIR',
      `${d.mountpoint}: ${show(r)}; readlink ${show(await probe1('readlink', atk(d, 'trail-slash')))}`,
    );
  }
});

test('rewrite+pseudo: readlink of every link answers', async (t) => {
  const r = await checkRewrittenLinks(nsDir(pseudo), 'atk');
  t.deepEqual(r.errors, []);
});

test('raw: readlink gives the stored bytes, lstat the true size', async (t) => {
  const names = [...links.keys()];
  const res = await probe(
    names.flatMap((n) => [
      { op: 'readlink' as const, path: atk(raw, n) },
      { op: 'lstat' as const, path: atk(raw, n) },
    ]),
  );
  names.forEach((n, i) => {
    const rl = res[2 * i]!;
    const st = res[2 * i + 1]!;
    t.true(rl.ok, `${n}: ${show(rl)}`);
    t.is(rl.data?.toString(), links.get(n), n);
    t.is((st.mode ?? 0) & 0o170000, 0o120000, `${n} is not shown as a symlink`);
    t.is(st.size, Buffer.byteLength(links.get(n)!), `${n} size`);
  });
});

test('raw: everything nsview serves itself comes from the container (tar without -h, find -P, grep -r)', async (t) => {
  const dir = atk(raw);
  const tarList = await tool(`tar -C ${shq(dir)} -cf - . | tar -tvf -`, 60_000);
  t.is(tarList.code, 0, tarList.stderr);
  noCanary(t, 'tar -c | tar -tv', tarList.stdout + tarList.stderr);
  for (const [name, target] of links)
    t.true(tarList.stdout.includes(`./${name} -> ${target}`), `tar lost ${name} -> ${target}`);
  const tarData = await tool(
    `tar -C ${shq(nsDir(raw))} -cf - atk | sha256sum; tar -C ${shq(nsDir(raw))} -cf - atk | grep -a -c ${shq(canary.token)}`,
    60_000,
  );
  t.regex(tarData.stdout, /\n0\n$/);
  const find = await tool(`find -P ${shq(dir)} -type f -exec cat {} +`);
  noCanary(t, 'find -P', find.stdout);
  t.is(find.stdout, 'real file\n');
  const grep = await tool(`grep -r -a ${shq(canary.token)} ${shq(dir)}`);
  t.is(grep.code, 1, `grep -r found: ${grep.stdout}`);
  // Reads that do not follow links nsview serves: the real directory and file.
  const r = await probe1('read', atk(raw, 'realdir/file'));
  t.is(r.data?.toString(), 'real file\n');
});

test('raw: the documented edge, a host program following a raw absolute link', async (t) => {
  // Documented in the README: the host kernel resolves a raw absolute target against the host
  // root. This records what it does here; it is the reason raw mode is for link-storing tools.
  const r = await probe(
    ['abs-decoy', 'rel-deep', 'abs-etc-hostname', 'proc-self-root'].map((n) => ({
      op: 'read' as const,
      path: atk(raw, n),
    })),
  );
  t.log(
    ['abs-decoy', 'rel-deep', 'abs-etc-hostname', 'proc-self-root']
      .map(
        (n, i) =>
          `${n} -> ${show(r[i]!)} (${r[i]!.data?.toString().includes(canary.token) ? 'host, by the host kernel' : 'not host'})`,
      )
      .join('\n'),
  );
  t.pass();
});

test('loops and long chains never hang the daemon', async (t) => {
  for (const d of [rewrite, raw, pseudo]) {
    const started = Date.now();
    const r = await tool(
      `for i in 1 2; do cat ${shq(atk(d, 'loop-a'))} ${shq(atk(d, 'self-loop'))} ${shq(atk(d, 'loop-dir'))}; done; ls -lR ${shq(atk(d))} >/dev/null`,
      30_000,
    );
    t.false(r.timedOut);
    t.regex(r.stderr, /Too many levels of symbolic links/);
    t.true(Date.now() - started < 20_000);
    // The daemon still answers.
    const ok = await probe1('read', atk(d, 'realdir/file'));
    t.is(ok.data?.toString(), 'real file\n');
  }
});

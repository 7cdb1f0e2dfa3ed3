/**
 * resolveInRoot, table-driven, as a threat model (in the style of filepath-securejoin's and
 * libpathrs' resolver tests): one declared tree, then rows of (path, options) -> the file it must
 * reach or the errno it must fail with. Each group of rows names the attack it covers.
 *
 * The tree is what a container could plant in its own root: directories, files, relative and
 * absolute symlinks, `..` chains, loops, links to `/` and far above it, and look-alikes of
 * /proc's magic links. Beside the root, outside it, lies a host canary: no row may reach it.
 * Everything is built as an unprivileged user can (no mounts, no mknod, no chown), so this runs
 * without root; real magic links come from this process's own /proc/self.
 */
import test from 'ava';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
// The only nsview module this file uses.
import { resolveInRoot } from '../../src/resolve/in-root.js';

type Options = NonNullable<Parameters<typeof resolveInRoot>[2]>;

// ---------------------------------------------------------------------------------------------
// The tree

const base = mkdtempSync(path.join(process.env['NSVIEW_TEST_TMPDIR'] ?? tmpdir(), 'nsview-unit-resolve-'));
const root = path.join(base, 'root');
const host = path.join(base, 'host');
const LONG = 'L'.repeat(250);
/** 14 directories of 250 bytes: longer than one openat2 segment nsview sends (3072), below PATH_MAX. */
const deepRel = Array<string>(14).fill(LONG).join('/');

/** `name/` is a directory, `name -> target` a symlink, `name = content` a file. */
const TREE = [
  'etc/',
  'etc/hostname = in-root hostname',
  'etc/passwd = in-root passwd (the decoy a host path must land on)',
  'dir/',
  'dir/file = dir/file',
  'dir/sub/',
  'dir/sub/deep = dir/sub/deep',
  'empty/',
  // Absolute links: on the host they would name host files.
  'abs-etc -> /etc',
  'abs-passwd -> /etc/passwd',
  'abs-root -> /',
  'abs-dotdot -> /../../../etc/hostname',
  `abs-host -> ${host}/secret`,
  // Relative links that climb further than the root is deep.
  'up3 -> ../../..',
  'dir/up5 -> ../../../../..',
  'dir/rel-file -> ../etc/hostname',
  'dir/to-parent -> ..',
  'escape-host -> ../host/secret',
  'dir/sub/escape-deep -> ../../../../../../../../host/secret',
  // Loops and long chains (the kernel allows 40 nested links).
  'loop-a -> loop-b',
  'loop-b -> loop-a',
  'self -> self',
  'dir-loop -> dir-loop/x',
  ...Array.from({ length: 40 }, (_, i) => `c${i} -> ${i < 39 ? `c${i + 1}` : 'etc/hostname'}`),
  ...Array.from({ length: 41 }, (_, i) => `d${i} -> ${i < 40 ? `d${i + 1}` : 'etc/hostname'}`),
  // Dangling and trailing-slash links.
  'dangling -> nowhere',
  'file-slash -> etc/hostname/',
  // Look-alikes of /proc's magic links: plain symlinks in a plain directory named proc.
  'proc/',
  'proc/self/',
  'proc/self/root -> /',
  'proc/self/cwd -> ../../..',
  `proc/self/exe -> ${host}/secret`,
  'proc/1/',
  'proc/1/root -> ../self/root',
];

function build(): void {
  mkdirSync(host);
  writeFileSync(path.join(host, 'secret'), 'HOST CANARY: reaching this is an escape');
  mkdirSync(path.join(host, 'etc'));
  writeFileSync(path.join(host, 'etc', 'hostname'), 'HOST CANARY hostname');
  mkdirSync(root);
  for (const line of TREE) {
    const link = line.match(/^(.*?) -> (.*)$/);
    const file = line.match(/^(.*?) = (.*)$/);
    if (link) symlinkSync(link[2]!, path.join(root, link[1]!));
    else if (file) writeFileSync(path.join(root, file[1]!), file[2]!);
    else mkdirSync(path.join(root, line.replace(/\/$/, '')));
  }
  mkdirSync(path.join(root, deepRel), { recursive: true });
  writeFileSync(path.join(root, deepRel, 'bottom'), 'bottom');
}

// ---------------------------------------------------------------------------------------------
// The rows

interface Row {
  path: string;
  /** Default FOLLOW: reach what the path names, as open(2) without O_NOFOLLOW. */
  opts?: Options;
  /** In-root path (relative to the tree's root, '' = the root) of what must be reached, or an errno code. */
  want: string | { errno: string };
  /** Resolve from another root than the tree: this process's /proc/self (real magic links). */
  from?: 'proc-self';
}

const FOLLOW: Options = { followLast: true };
const NOFOLLOW: Options = { followLast: false };
const NODE: Options = { nodePath: true };
const err = (errno: string) => ({ errno });

const GROUPS: { attack: string; rows: Row[] }[] = [
  {
    attack: 'Baseline: plain names reach the file inside, the root is reachable as "" and ".".',
    rows: [
      { path: '', want: '' },
      { path: '.', want: '' },
      { path: 'etc/hostname', want: 'etc/hostname' },
      { path: 'dir/sub/deep', want: 'dir/sub/deep' },
      { path: 'dir/', want: 'dir' },
      { path: 'dir//sub/./deep', want: 'dir/sub/deep' },
      { path: 'missing', want: err('ENOENT') },
      { path: 'dir/missing/x', want: err('ENOENT') },
    ],
  },
  {
    attack: 'A path the view was asked for is absolute: it names the namespace root, not the host root.',
    rows: [
      { path: '/', want: '' },
      { path: '/etc/passwd', want: 'etc/passwd' },
      { path: '//etc//hostname', want: 'etc/hostname' },
    ],
  },
  {
    attack: '".." chains in the path climb above the root: they stop at it, as chroot does.',
    rows: [
      { path: '..', want: '' },
      { path: '../../../../../..', want: '' },
      { path: '../etc/hostname', want: 'etc/hostname' },
      { path: 'dir/sub/../../../../etc/hostname', want: 'etc/hostname' },
      { path: `../host/secret`, want: err('ENOENT') },
      { path: `dir/../../host/secret`, want: err('ENOENT') },
    ],
  },
  {
    attack: 'Absolute symlinks point at host paths: they are read against the namespace root.',
    rows: [
      { path: 'abs-etc', want: 'etc' },
      { path: 'abs-etc/hostname', want: 'etc/hostname' },
      { path: 'abs-passwd', want: 'etc/passwd' },
      { path: 'abs-root', want: '' },
      { path: 'abs-root/etc/passwd', want: 'etc/passwd' },
      { path: 'abs-dotdot', want: 'etc/hostname' },
      { path: 'abs-host', want: err('ENOENT') }, // the host canary's absolute path, absent inside
    ],
  },
  {
    attack: 'Relative symlinks with more ".." than depth: clamped at the root, never above it.',
    rows: [
      { path: 'up3', want: '' },
      { path: 'up3/etc/hostname', want: 'etc/hostname' },
      { path: 'dir/up5/dir/file', want: 'dir/file' },
      { path: 'dir/rel-file', want: 'etc/hostname' },
      { path: 'dir/to-parent/etc/hostname', want: 'etc/hostname' },
      { path: 'dir/to-parent/dir/to-parent/dir/to-parent', want: '' },
      { path: 'escape-host', want: err('ENOENT') },
      { path: 'dir/sub/escape-deep', want: err('ENOENT') },
    ],
  },
  {
    attack: 'Symlink loops and chains cost the walker: the kernel stops them with ELOOP (40 nested links).',
    rows: [
      { path: 'loop-a', want: err('ELOOP') },
      { path: 'self', want: err('ELOOP') },
      { path: 'self/x', want: err('ELOOP') },
      { path: 'dir-loop', want: err('ELOOP') },
      { path: 'c0', want: 'etc/hostname' }, // exactly 40 links
      { path: 'd0', want: err('ELOOP') }, // 41
    ],
  },
  {
    attack: 'The last component is a link the caller wants as such (lstat, readlink): not followed.',
    rows: [
      { path: 'abs-passwd', opts: NOFOLLOW, want: 'abs-passwd' },
      { path: 'abs-passwd', opts: {}, want: 'abs-passwd' }, // resolveInRoot's own default
      { path: 'abs-host', opts: NOFOLLOW, want: 'abs-host' },
      { path: 'dangling', opts: NOFOLLOW, want: 'dangling' },
      { path: 'self', opts: NOFOLLOW, want: 'self' },
      { path: 'dangling', want: err('ENOENT') },
      // Links before the last component are followed all the same (and stay inside).
      { path: 'abs-etc/passwd', opts: NOFOLLOW, want: 'etc/passwd' },
    ],
  },
  {
    attack: 'A file used as a directory (trailing slash, or a name below it) is not a directory.',
    rows: [
      { path: 'etc/hostname/', want: err('ENOTDIR') },
      { path: 'etc/hostname/x', want: err('ENOTDIR') },
      { path: 'file-slash', want: err('ENOTDIR') },
    ],
  },
  {
    attack: 'Look-alikes of /proc magic links inside a container are plain links: resolved in-root.',
    rows: [
      { path: 'proc/self/root', want: '' },
      { path: 'proc/self/root/etc/passwd', want: 'etc/passwd' },
      { path: 'proc/self/cwd/etc/hostname', want: 'etc/hostname' },
      { path: 'proc/1/root/etc/hostname', want: 'etc/hostname' },
      { path: 'proc/self/exe', want: err('ENOENT') },
    ],
  },
  {
    attack:
      'Real magic links (a pseudo filesystem mounted inside a namespace) are refused outright: RESOLVE_IN_ROOT cannot scope them.',
    rows: [
      { from: 'proc-self', path: 'root', want: err('ELOOP') },
      { from: 'proc-self', path: 'root/etc/hostname', want: err('ELOOP') },
      { from: 'proc-self', path: 'cwd', want: err('ELOOP') },
      { from: 'proc-self', path: 'exe', want: err('ELOOP') },
      { from: 'proc-self', path: 'fd/0', want: err('ELOOP') },
      // Opening the link itself (O_PATH|O_NOFOLLOW, for readlink) walks nowhere: allowed.
      { from: 'proc-self', path: 'root', opts: NOFOLLOW, want: '/proc/self/root (the link itself)' },
    ],
  },
  {
    attack:
      'Node paths (names the view looked up one by one) meet a symlink where a directory was: the container swapped it, refuse (ENOENT) instead of following.',
    rows: [
      { path: 'etc/hostname', opts: NODE, want: 'etc/hostname' },
      { path: 'abs-etc/passwd', opts: NODE, want: err('ENOENT') },
      { path: 'up3/etc/hostname', opts: NODE, want: err('ENOENT') },
      { path: 'proc/self/root/etc', opts: NODE, want: err('ENOENT') },
      { path: 'abs-passwd', opts: { ...NODE, followLast: false }, want: 'abs-passwd' },
      { path: 'abs-passwd', opts: { ...NODE, followLast: true }, want: err('ENOENT') },
    ],
  },
  {
    attack:
      'Paths longer than one kernel call takes (deep trees a container may build): walked in segments, same result.',
    rows: [
      { path: `${deepRel}/bottom`, opts: NODE, want: `${deepRel}/bottom` },
      { path: `${deepRel}/bottom`, want: `${deepRel}/bottom` },
      { path: `${deepRel}/${deepRel}/missing`, opts: NODE, want: err('ENOENT') },
      { path: `${deepRel}/${deepRel}/missing`, want: err('ENAMETOOLONG') },
      { path: `${deepRel}/${'x'.repeat(3100)}`, opts: NODE, want: err('ENAMETOOLONG') }, // one component past any segment
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Running them

function identity(st: { dev: number | bigint; ino: number | bigint }): string {
  return `${st.dev}:${st.ino}`;
}

/** What a resolution reached, as an in-root path of the tree, a foreign file, or an errno code. */
function outcome(rootfd: number, row: Row, index: Map<string, string>): string {
  let fd: number;
  try {
    fd = resolveInRoot(rootfd, Buffer.from(row.path, 'latin1'), row.opts ?? FOLLOW);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `errno ${code}` : `threw ${String(e)}`;
  }
  try {
    const id = identity(fstatSync(fd));
    return index.get(id) ?? `a file outside the tree (${id})`;
  } finally {
    closeSync(fd);
  }
}

/** (dev, ino) -> in-root path, for every entry the rows may name (and the host canary, to name it). */
function indexTree(): Map<string, string> {
  const index = new Map<string, string>();
  index.set(identity(lstatSync(path.join(host, 'secret'))), 'HOST CANARY (escaped the root)');
  index.set(identity(lstatSync(path.join(host, 'etc', 'hostname'))), 'HOST CANARY (escaped the root)');
  index.set(identity(lstatSync(host)), 'HOST directory (escaped the root)');
  index.set(identity(lstatSync(base)), 'the directory above the root (escaped it)');
  index.set(identity(lstatSync('/proc/self/root')), '/proc/self/root (the link itself)');
  index.set(identity(lstatSync('/')), 'the host root (escaped the root)');
  const wanted = new Set(
    GROUPS.flatMap((g) => g.rows.map((r) => r.want)).filter((w): w is string => typeof w === 'string'),
  );
  for (const rel of wanted) if (!rel.startsWith('/')) index.set(identity(lstatSync(path.join(root, rel))), rel);
  return index;
}

test.before(() => build());
test.after.always(() => rmSync(base, { recursive: true, force: true }));

for (const group of GROUPS) {
  test(group.attack, (t) => {
    const index = indexTree();
    const treeFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
    const procFd = openSync('/proc/self', constants.O_RDONLY | constants.O_DIRECTORY);
    // One comparison per group, so a failure lists every row that went wrong.
    const got: string[] = [];
    const want: string[] = [];
    try {
      for (const row of group.rows) {
        const shown = row.path.length > 80 ? `${row.path.slice(0, 40)}...${row.path.slice(-30)}` : row.path;
        const label = `${row.from ?? 'tree'} ${JSON.stringify(shown)} ${JSON.stringify(row.opts ?? FOLLOW)} -> `;
        got.push(label + outcome(row.from === 'proc-self' ? procFd : treeFd, row, index));
        want.push(label + (typeof row.want === 'string' ? row.want : `errno ${row.want.errno}`));
      }
      t.deepEqual(got, want);
    } finally {
      closeSync(treeFd);
      closeSync(procFd);
    }
  });
}

test('the host canary exists and the tree really is below a directory that holds it', (t) => {
  // Guards the table against passing vacuously: the escapes it expects to fail would succeed
  // from the tree's parent.
  const parentFd = openSync(base, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const fd = resolveInRoot(parentFd, Buffer.from('host/secret'));
    closeSync(fd);
    t.pass();
  } finally {
    closeSync(parentFd);
  }
});

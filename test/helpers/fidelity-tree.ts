/**
 * The deterministic file tree the tar-fidelity tests archive twice (directly and through
 * nsview) and compare: every file type, odd modes, several owners, fixed times (one with
 * nanoseconds), user xattrs, hardlinks, symlinks of every flavour, awkward names.
 *
 * `snapshotTree(dir)` describes any tree as sorted text lines (one per entry) in a child process
 * (python3, bounded by a timeout), so a test can compare the original with its view.
 */
import { chmod, lchown, link, lutimes, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, sh, shq } from './proc.js';

/** Default mtime/atime of every entry: 2020-09-13T12:26:40Z. */
export const DEFAULT_MTIME = 1_600_000_000;

/** Entries with special times: relative path -> `seconds[.nanoseconds]` (as `touch -d @...`). */
export const SPECIAL_MTIMES: Readonly<Record<string, string>> = {
  'files/old-mtime.txt': '86400', // 1970-01-02
  'files/ns-mtime.txt': '1000000000.123456789', // 2001-09-09, nanoseconds
  'files/future-mtime.txt': '4102444800', // 2100-01-01
  'dirs/ns-mtime-dir': '1234567890.987654321',
  'links/abs': '1500000000.000000001', // a symlink's own time
};

export const UTF8_NAME = 'größe-ñ-日本.txt';
export const SPACE_NAME = 'with space.txt';
export const NEWLINE_NAME = 'with\nnewline.txt';
/** 255 bytes: the longest name most filesystems allow. */
export const LONG_NAME = `${'L'.repeat(251)}.txt`;
/** Created only with `{ nonUtf8Name: true }`: a Latin-1 byte (0xE9) that is not valid UTF-8. */
export const NON_UTF8_NAME = Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x2d, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

/** Three names of one inode. */
export const HARDLINK_NAMES = ['hardlinks/one', 'hardlinks/two', 'hardlinks/three'] as const;

export const SYMLINKS: Readonly<Record<string, string>> = {
  'links/abs': '/etc/hostname',
  'links/abs-dangling': '/nonexistent/nsview-dangling',
  'links/rel': '../files/hello.txt',
  'links/dangling': 'does-not-exist',
  'links/dir-rel': '../dirs/nested',
  'links/self-loop': 'self-loop',
  'links/owned': '../files/hello.txt',
  'links/escape': '../../../../../../../../etc/hostname',
};

/** Size of files/big.bin: crosses 4 KiB pages and 128 KiB FUSE reads, ends mid-page. */
export const BIG_FILE_SIZE = 300_007;
export const MANY_COUNT = 200;

export interface FidelityTree {
  dir: string;
  /** Every entry created, relative to dir, parents before children (dir itself excluded). */
  entries: string[];
}

export interface FidelityOptions {
  /** Also create NON_UTF8_NAME in files/ (default false: it cannot be a JS string). */
  nonUtf8Name?: boolean;
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function deterministicBytes(size: number, seed = 0x9e3779b9): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

type Spec =
  | { kind: 'dir'; mode: number; uid?: number; gid?: number }
  | { kind: 'file'; content: string | Buffer; mode: number; uid?: number; gid?: number }
  | { kind: 'symlink'; target: string; uid?: number; gid?: number }
  | { kind: 'hardlink'; to: string }
  | { kind: 'fifo'; mode: number }
  | { kind: 'chardev'; major: number; minor: number; mode: number };

function specs(): Array<[string, Spec]> {
  const s: Array<[string, Spec]> = [];
  const file = (p: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0) =>
    s.push([p, { kind: 'file', content, mode, uid, gid }]);
  const dir = (p: string, mode = 0o755, uid = 0, gid = 0) => s.push([p, { kind: 'dir', mode, uid, gid }]);

  dir('files');
  file('files/hello.txt', 'hello, nsview\n');
  file('files/empty', '');
  file('files/mode-0600.txt', 'private\n', 0o600, 1000, 1000);
  file('files/mode-0755.sh', '#!/bin/sh\necho hi\n', 0o755);
  file('files/mode-0444.txt', 'read only\n', 0o444, 65534, 65534);
  file('files/setuid', 'setuid\n', 0o4755);
  file('files/setgid', 'setgid\n', 0o2755, 0, 1000);
  file('files/mixed-owner.txt', 'uid 1000, gid 65534\n', 0o640, 1000, 65534);
  file('files/big.bin', deterministicBytes(BIG_FILE_SIZE));
  file('files/old-mtime.txt', 'old\n');
  file('files/ns-mtime.txt', 'nanoseconds\n');
  file('files/future-mtime.txt', 'future\n');
  file('files/xattr.txt', 'has xattrs\n');
  file(`files/${UTF8_NAME}`, 'utf-8 name\n');
  file(`files/${SPACE_NAME}`, 'space\n');
  file(`files/${NEWLINE_NAME}`, 'newline\n');
  file(`files/${LONG_NAME}`, 'long name\n');

  dir('dirs');
  dir('dirs/empty');
  dir('dirs/empty-0700', 0o700, 1000, 1000);
  dir('dirs/sticky', 0o1777);
  file('dirs/sticky/owned-by-nobody', 'x\n', 0o644, 65534, 65534);
  dir('dirs/setgid-dir', 0o2775, 0, 1000);
  file('dirs/setgid-dir/inherits', 'y\n', 0o644, 0, 1000);
  dir('dirs/ns-mtime-dir');
  dir('dirs/nested');
  dir('dirs/nested/a');
  dir('dirs/nested/a/b');
  dir('dirs/nested/a/b/c');
  dir('dirs/nested/a/b/c/d');
  dir('dirs/nested/a/b/c/d/e');
  file('dirs/nested/a/b/c/d/e/deep.txt', 'deep\n');

  dir('links');
  for (const [p, target] of Object.entries(SYMLINKS)) {
    s.push([p, { kind: 'symlink', target, ...(p === 'links/owned' ? { uid: 1000, gid: 1000 } : {}) }]);
  }

  dir('hardlinks');
  file(HARDLINK_NAMES[0], 'one inode, three names\n', 0o644, 1000, 1000);
  s.push([HARDLINK_NAMES[1], { kind: 'hardlink', to: HARDLINK_NAMES[0] }]);
  s.push([HARDLINK_NAMES[2], { kind: 'hardlink', to: HARDLINK_NAMES[0] }]);

  dir('special');
  s.push(['special/fifo', { kind: 'fifo', mode: 0o644 }]);
  s.push(['special/null', { kind: 'chardev', major: 1, minor: 3, mode: 0o666 }]);

  dir('many');
  for (let i = 0; i < MANY_COUNT; i++) {
    const n = String(i).padStart(3, '0');
    file(`many/f${n}`, `n${n}\n`);
  }
  return s;
}

/** User xattrs set: path -> name -> value. */
export const XATTRS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'files/xattr.txt': { 'user.test': 'value', 'user.second': 'another value' },
  'dirs/nested': { 'user.test': 'dir value' },
  [HARDLINK_NAMES[0]]: { 'user.test': 'hardlinked' },
};

/**
 * Creates the tree in `dir` (must not exist, or be empty). Needs root (owners, mknod), `touch`,
 * `mkfifo`, `mknod` and `setfattr` (package attr); `dir` must be on a filesystem with user xattrs.
 */
export async function makeFidelityTree(dir: string, opts: FidelityOptions = {}): Promise<FidelityTree> {
  await mkdir(dir, { recursive: true });
  const list = specs();
  const entries: string[] = [];
  const abs = (p: string) => path.join(dir, p);

  // 1. Create everything.
  const mkfifo: string[] = [];
  const mknod: string[] = [];
  for (const [p, spec] of list) {
    entries.push(p);
    switch (spec.kind) {
      case 'dir':
        await mkdir(abs(p));
        break;
      case 'file':
        await writeFile(abs(p), spec.content);
        break;
      case 'symlink':
        await symlink(spec.target, abs(p));
        break;
      case 'hardlink':
        await link(abs(spec.to), abs(p));
        break;
      case 'fifo':
        mkfifo.push(`mkfifo -m ${spec.mode.toString(8)} ${shq(abs(p))}`);
        break;
      case 'chardev':
        mknod.push(`mknod -m ${spec.mode.toString(8)} ${shq(abs(p))} c ${spec.major} ${spec.minor}`);
        break;
    }
  }
  if (opts.nonUtf8Name) {
    await writeFile(Buffer.concat([Buffer.from(abs('files') + '/'), NON_UTF8_NAME]), 'not utf-8\n');
  }
  await sh([...mkfifo, ...mknod].join(' && '));

  // 2. Owners, then modes (chown clears set-id bits), then xattrs.
  for (const [p, spec] of list) {
    if (spec.kind === 'hardlink' || spec.kind === 'fifo' || spec.kind === 'chardev') continue;
    await lchown(abs(p), spec.uid ?? 0, spec.gid ?? 0);
    if (spec.kind !== 'symlink') await chmod(abs(p), spec.mode);
  }
  const setf: string[] = [];
  for (const [p, attrs] of Object.entries(XATTRS)) {
    for (const [name, value] of Object.entries(attrs)) {
      setf.push(`setfattr -n ${shq(name)} -v ${shq(value)} ${shq(abs(p))}`);
    }
  }
  await sh(setf.join(' && '));

  // 3. Times last (creating children changes a directory's mtime). Integer seconds are exact
  // through lutimes; nanosecond ones go through touch.
  const children = [...entries].reverse();
  for (const p of children) await lutimes(abs(p), DEFAULT_MTIME, DEFAULT_MTIME);
  if (opts.nonUtf8Name) {
    await lutimes(Buffer.concat([Buffer.from(abs('files') + '/'), NON_UTF8_NAME]), DEFAULT_MTIME, DEFAULT_MTIME);
  }
  await sh(
    Object.entries(SPECIAL_MTIMES)
      .map(([p, when]) => `touch -h -d @${when} ${shq(abs(p))}`)
      .join(' && '),
  );
  for (const d of ['files', 'dirs', 'links', '']) await lutimes(abs(d), DEFAULT_MTIME, DEFAULT_MTIME);
  return { dir, entries };
}

/** Fields snapshotTree can leave out (e.g. `dirsize`, which differs between filesystems). */
export type SnapshotField =
  | 'type'
  | 'mode'
  | 'uid'
  | 'gid'
  | 'size'
  | 'dirsize'
  | 'mtime'
  | 'mtimens'
  | 'nlink'
  | 'dirnlink'
  | 'target'
  | 'rdev'
  | 'sha256'
  | 'xattrs'
  | 'hardlink';

export interface SnapshotOptions {
  /** Fields to leave out. Default: ['dirsize']. */
  omit?: SnapshotField[];
  /** Also describe `dir` itself as `.` (default true). */
  includeRoot?: boolean;
  timeoutMs?: number;
}

const SNAPSHOT_PY = String.raw`
import os, sys, stat, hashlib, json, errno
root = os.fsencode(sys.argv[1]); omit = set(json.loads(sys.argv[2])); include_root = sys.argv[3] == '1'
def esc(b):
    return b.decode('utf-8', 'backslashreplace').replace('\n', '\\n')
def err(e):
    return '<' + (errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)) + '>'
out = []; first = {}
def walk(rel):
    full = os.path.join(root, rel) if rel else root
    try: st = os.lstat(full)
    except OSError as e:
        out.append((rel, esc(rel) + ' error=' + err(e))); return
    m = st.st_mode
    t = 'd' if stat.S_ISDIR(m) else 'f' if stat.S_ISREG(m) else 'l' if stat.S_ISLNK(m) else \
        'p' if stat.S_ISFIFO(m) else 'c' if stat.S_ISCHR(m) else 'b' if stat.S_ISBLK(m) else 's'
    f = []
    def add(name, val):
        if name not in omit: f.append(name + '=' + str(val))
    add('type', t); add('mode', '%04o' % stat.S_IMODE(m)); add('uid', st.st_uid); add('gid', st.st_gid)
    if t != 'd': add('size', st.st_size)
    elif 'dirsize' not in omit: add('size', st.st_size)
    if 'mtimens' in omit: add('mtime', st.st_mtime_ns // 10**9)
    else: add('mtime', '%d.%09d' % divmod(st.st_mtime_ns, 10**9))
    if t != 'd': add('nlink', st.st_nlink)
    elif 'dirnlink' not in omit: add('nlink', st.st_nlink)
    if t == 'l':
        try: add('target', esc(os.readlink(full)))
        except OSError as e: add('target', err(e))
    if t in 'cb': add('rdev', '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    if t == 'f' and 'sha256' not in omit:
        try:
            h = hashlib.sha256()
            with open(full, 'rb') as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b''): h.update(chunk)
            add('sha256', h.hexdigest())
        except OSError as e: add('sha256', err(e))
    if 'xattrs' not in omit and t in 'fd':
        try: names = sorted(os.listxattr(full, follow_symlinks=False))
        except OSError as e: names = [err(e)]
        xs = []
        for n in names:
            if n.startswith('<'): xs.append(n); continue
            if n.startswith('security.') or n.startswith('system.'): continue
            try: xs.append(n + ':' + os.getxattr(full, n, follow_symlinks=False).hex())
            except OSError as e: xs.append(n + ':' + err(e))
        if xs: add('xattrs', ','.join(xs))
    if t != 'd' and st.st_nlink > 1 and 'hardlink' not in omit:
        key = (st.st_dev, st.st_ino)
        if key in first: add('hardlink', esc(first[key]))
        else: first[key] = rel or b'.'
    if rel or include_root: out.append((rel or b'.', esc(rel or b'.') + ' ' + ' '.join(f)))
    if t == 'd':
        try: names = sorted(os.listdir(full))
        except OSError as e:
            out.append((rel + b'/', esc(rel) + '/ error=' + err(e))); return
        for name in names:
            walk(os.path.join(rel, name) if rel else name)
walk(b'')
out.sort()
sys.stdout.write(''.join(line + '\n' for _, line in out))
`;

/**
 * One line per entry below `dir`, sorted by path bytes:
 * `path type=f mode=0644 uid=0 gid=0 size=N mtime=S.NNNNNNNNN nlink=1 sha256=... xattrs=user.x:hex`
 * (symlinks: target=; devices: rdev=maj:min; 2nd+ names of an inode: hardlink=<first name>).
 * Newlines in names are shown as `\n`, invalid UTF-8 as `\xNN`. A failing call shows its errno
 * instead of the value (`target=<ELOOP>`, `sha256=<EIO>`, `path error=<EACCES>`), so one bad
 * entry does not hide the others. Runs in a child with a timeout, so it is safe on a FUSE mount.
 */
export async function snapshotTree(dir: string, opts: SnapshotOptions = {}): Promise<string[]> {
  const omit = opts.omit ?? ['dirsize'];
  const r = await run(
    'python3',
    ['-c', SNAPSHOT_PY, dir, JSON.stringify(omit), opts.includeRoot === false ? '0' : '1'],
    {
      timeoutMs: opts.timeoutMs ?? 60_000,
    },
  );
  return r.stdout.split('\n').filter((l) => l !== '');
}

/**
 * Containment attacks, part 6: names. The kernel never hands out a name with '/' or NUL, but a
 * container can use every other byte: `..` lookalikes (`...`, `.. `, fullwidth and one-dot-leader
 * dots, a zero-width space), overlong UTF-8 encodings of '.' and '/' (which a sloppy decoder turns
 * into `..` or a separator), newlines, terminal escapes, shell metacharacters, 255-byte names,
 * bytes that are not UTF-8 at all. Through the view they list byte for byte, read their own
 * content, and a directory so named holds its own files (nothing climbs). Symlinks with such
 * targets read back byte for byte in raw mode and resolve in the container in rewrite mode.
 * Also: a tree deeper than PATH_MAX is still walkable through the view.
 */
import test from 'ava';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  makeRootfs,
  makeTempDir,
  run,
  startContainer,
  startNsview,
  type Container,
  type Nsview,
} from './helpers/index.js';
import { probe, probe1, show } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
let ctr: Container;
let rewrite: Nsview;
let raw: Nsview;
let N: string; // host path of the container's /names

const b = (...parts: Array<string | number[]>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

const NAMES: Buffer[] = [
  b('...'),
  b('.. '),
  b(' ..'),
  b('. .'),
  b('..\u200b'), // zero-width space
  b('\u2024\u2024'), // one dot leader x2
  b('\uff0e\uff0e'), // fullwidth full stop x2
  b('.', [0xc0, 0xae]), // overlong '.' -> ".." for a sloppy decoder
  b([0xc0, 0xae, 0xc0, 0xae]), // overlong ".."
  b('a', [0xc0, 0xaf], 'b'), // overlong '/'
  b([0xe0, 0x80, 0xaf]), // 3-byte overlong '/'
  b('..\\..'),
  b('%2e%2e'),
  b('..%2f..'),
  b('\u2215etc'), // division slash
  b('\uff0fetc'), // fullwidth solidus
  b('with\nnewline'),
  b('\n'),
  b('\t'),
  b(' '),
  b('-rf'),
  b('--help'),
  b('$(id)'),
  b('`id`'),
  b('*'),
  b('?[a]'),
  b('\'"'),
  b('\x1b[31mred\x1b[0m'),
  b([0x01, 0x02, 0x7f]),
  b([0xff]),
  b([0xfe, 0xff]),
  b('latin1-', [0xe9]),
  b([0x80]),
  b('x'.repeat(255)),
  b('é'.repeat(127), 'x'), // 255 bytes of UTF-8
  b([0xe9], 'y'.repeat(254)), // 255 bytes, not UTF-8
];

const WRITE_PY = String.raw`
import os, sys, json
top = os.fsencode(sys.argv[1]); names = [bytes.fromhex(h) for h in json.loads(sys.argv[2])]
os.mkdir(os.path.join(top, b'files')); os.mkdir(os.path.join(top, b'dirs')); os.mkdir(os.path.join(top, b'links'))
for n in names:
    with open(os.path.join(top, b'files', n), 'wb') as f: f.write(b'content of ' + n.hex().encode() + b'\n')
    os.mkdir(os.path.join(top, b'dirs', n))
    with open(os.path.join(top, b'dirs', n, b'inner'), 'wb') as f: f.write(b'inner of ' + n.hex().encode() + b'\n')
    # A link named n whose target is the file named n (relative, through ../files).
    os.symlink(b'../files/' + n, os.path.join(top, b'links', n))
# A tree deeper than PATH_MAX, built relative to directory fds.
fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
seg = b'd' * 250
for i in range(int(sys.argv[3])):
    os.mkdir(seg, dir_fd=fd); nfd = os.open(seg, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd); os.close(fd); fd = nfd
with open(os.open(b'bottom', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), 'wb') as f: f.write(b'deep bottom\n')
os.close(fd)
`;

const DEPTH = 20; // 20 x 251 bytes > PATH_MAX (4096)

test.before(async () => {
  const dir = makeTempDir(scope, 'atk-names');
  const rootfs = await makeRootfs(path.join(dir, 'root'));
  N = path.join(rootfs.dir, 'names');
  await mkdir(N);
  await run('python3', ['-c', WRITE_PY, N, JSON.stringify(NAMES.map((n) => n.toString('hex'))), String(DEPTH)]);
  ctr = await startContainer(scope, { rootfs });
  rewrite = await startNsview(scope, { symlinks: 'rewrite' });
  raw = await startNsview(scope, { symlinks: 'raw' });
});

test.after.always(() => scope.cleanup());

const view = (d: Nsview, ...parts: Array<string | Buffer>) =>
  Buffer.concat([
    Buffer.from(`${d.mountpoint}/${ctr.nsInode}/names`),
    ...parts.flatMap((p) => [Buffer.from('/'), Buffer.from(p)]),
  ]);
const modes = () =>
  [
    ['rewrite', rewrite],
    ['raw', raw],
  ] as const;

test('odd names list byte for byte, as in the container', async (t) => {
  const want = [...NAMES].sort(Buffer.compare).map((n) => n.toString('hex'));
  for (const [m, d] of modes()) {
    for (const sub of ['files', 'dirs', 'links']) {
      const r = await probe1('listdir', view(d, sub));
      t.true(r.ok, `${m} ${sub}: ${show(r)}`);
      t.deepEqual(r.names!.map((n) => n.toString('hex')).sort(), [...want].sort(), `${m} ${sub}`);
    }
  }
});

test('each odd name reads its own content; directories so named hold their own files', async (t) => {
  for (const [m, d] of modes()) {
    const ops = NAMES.flatMap((n) => [
      { op: 'read' as const, path: view(d, 'files', n) },
      { op: 'read' as const, path: view(d, 'dirs', n, 'inner') },
      { op: 'listdir' as const, path: view(d, 'dirs', n) },
      { op: 'read' as const, path: view(d, 'links', n) },
    ]);
    const res = await probe(ops);
    NAMES.forEach((n, i) => {
      const [file, inner, list, link] = res.slice(4 * i, 4 * i + 4) as [
        (typeof res)[0],
        (typeof res)[0],
        (typeof res)[0],
        (typeof res)[0],
      ];
      const hex = n.toString('hex');
      t.is(file.data?.toString(), `content of ${hex}\n`, `${m} files/${hex}: ${show(file)}`);
      t.is(inner.data?.toString(), `inner of ${hex}\n`, `${m} dirs/${hex}/inner: ${show(inner)}`);
      t.deepEqual(list.names?.map(String), ['inner'], `${m} dirs/${hex}: ${show(list)}`);
      t.is(link.data?.toString(), `content of ${hex}\n`, `${m} links/${hex}: ${show(link)}`);
    });
  }
});

test('link targets with odd bytes: exact in raw mode, contained in rewrite mode', async (t) => {
  const rl = await probe(NAMES.map((n) => ({ op: 'readlink' as const, path: view(raw, 'links', n) })));
  NAMES.forEach((n, i) =>
    t.deepEqual(rl[i]!.data, b('../files/', [...n]), `raw readlink ${n.toString('hex')}: ${show(rl[i]!)}`),
  );
  const rw = await probe(NAMES.map((n) => ({ op: 'readlink' as const, path: view(rewrite, 'links', n) })));
  NAMES.forEach((n, i) => {
    const target = rw[i]!.data!;
    t.false(target[0] === 0x2f, 'absolute');
    // Relative to names/links/: the view resolves it to names/files/<n>.
    t.deepEqual(
      path.posix.normalize(Buffer.concat([b('names/links/'), target]).toString('latin1')),
      b('names/files/', [...n]).toString('latin1'),
    );
  });
});

test('names are not interpreted by the view: `..` lookalikes do not climb', async (t) => {
  for (const [m, d] of modes()) {
    // Inside dirs/<lookalike>/ the only entry is `inner`: none of them is the parent.
    const res = await probe(NAMES.map((n) => ({ op: 'lstat' as const, path: view(d, 'dirs', n, 'dirs') })));
    res.forEach((r, i) => t.is(r.errno, 'ENOENT', `${m} dirs/${NAMES[i]!.toString('hex')}/dirs: ${show(r)}`));
  }
});

const DEEP_PY = String.raw`
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); depth = 0
try:
    while True:
        names = os.listdir(fd)
        if 'bottom' in names:
            bfd = os.open('bottom', os.O_RDONLY, dir_fd=fd); print('found', depth, os.read(bfd, 100).decode().strip()); break
        sub = [n for n in names if n.startswith('ddd')]
        if not sub: print('stuck', depth, names); break
        nfd = os.open(sub[0], os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd); os.close(fd); fd = nfd; depth += 1
except OSError as e:
    print('error', depth, e.strerror)
`;

test('a tree deeper than PATH_MAX is walkable through the view', async (t) => {
  for (const [m, d] of modes()) {
    const r = await run('python3', ['-c', DEEP_PY, view(d).toString()], { timeoutMs: 60_000, check: false });
    t.log(`${m}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    t.is(r.stdout.trim(), `found ${DEPTH} deep bottom`, `${m}: ${r.stdout} ${r.stderr}`);
  }
});

/**
 * The benchmark's fixture: a deterministic, rootfs-like tree (mostly small files in nested
 * directories, symlinks, a few hardlinks, varied modes and owners) plus one big file of real,
 * deterministic data (never sparse: the sequential read must hit the disk).
 *
 * Generated once into `<base>/<key>/` (key = FIXTURE_VERSION + the spec) and reused: the
 * manifest is written last, so a directory without one is an interrupted generation and is
 * rebuilt. Bump FIXTURE_VERSION whenever the generator changes.
 *
 * Layout:  <base>/<key>/tree/...       the tree (walked, grepped, tarred)
 *          <base>/<key>/big.bin        the big file (read sequentially)
 *          <base>/<key>/manifest.json  what was generated (counts, needle)
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const FIXTURE_VERSION = 'v1';
export const DEFAULT_FIXTURE_BASE = '/var/tmp/nsview-bench';

export interface FixtureSpec {
  /** Total entries `find tree` prints (the tree's root included). */
  entries: number;
  /** Size of big.bin in bytes. */
  bigBytes: number;
  /** Extra names for existing files (hardlinks). */
  hardlinks: number;
  /** Files holding the grep needle (one line each). */
  needleFiles: number;
}

export const FULL_SPEC: FixtureSpec = { entries: 100_000, bigBytes: 1 << 30, hardlinks: 100, needleFiles: 12 };
export const QUICK_SPEC: FixtureSpec = { entries: 5_000, bigBytes: 32 << 20, hardlinks: 10, needleFiles: 5 };

/** A string that appears nowhere in the generated text but on the needle lines. */
export const NEEDLE = 'NSVIEW_BENCH_NEEDLE_7F3A';

export interface Manifest {
  version: string;
  spec: FixtureSpec;
  /** Lines `find tree` prints. */
  entries: number;
  dirs: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  /** Bytes of regular file data in the tree (each inode once). */
  treeBytes: number;
  bigBytes: number;
  needle: string;
  needleFiles: number;
  generatedSeconds: number;
}

export interface Fixture {
  dir: string;
  /** `tree` and `big.bin`, relative to dir. */
  tree: 'tree';
  big: 'big.bin';
  manifest: Manifest;
  /** True when this call generated it (false: reused from the cache). */
  generated: boolean;
}

export function fixtureKey(spec: FixtureSpec): string {
  return `${FIXTURE_VERSION}-e${spec.entries}-b${spec.bigBytes}-h${spec.hardlinks}-n${spec.needleFiles}`;
}

/** Returns the cached fixture for `spec`, generating it first when missing or incomplete. */
export function ensureFixture(spec: FixtureSpec, base: string, log: (msg: string) => void): Fixture {
  const dir = path.join(base, fixtureKey(spec));
  const manifestFile = path.join(dir, 'manifest.json');
  try {
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as Manifest;
    const bigSize = fs.statSync(path.join(dir, 'big.bin')).size;
    if (manifest.version === FIXTURE_VERSION && bigSize === spec.bigBytes) {
      return { dir, tree: 'tree', big: 'big.bin', manifest, generated: false };
    }
  } catch {
    /* missing or broken: regenerate */
  }
  fs.mkdirSync(base, { recursive: true });
  // Leftovers of an interrupted generation (ours or an earlier run's) and the stale key.
  for (const name of fs.readdirSync(base)) {
    if (name === path.basename(dir) || name.startsWith(`${path.basename(dir)}.tmp-`)) {
      fs.rmSync(path.join(base, name), { recursive: true, force: true });
    }
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  log(
    `generating fixture ${dir} (${spec.entries} entries, ${(spec.bigBytes / 2 ** 20).toFixed(0)} MiB file); cached for later runs`,
  );
  const t0 = process.hrtime.bigint();
  fs.mkdirSync(tmp, { mode: 0o755 });
  const counts = generateTree(path.join(tmp, 'tree'), spec);
  writeBigFile(path.join(tmp, 'big.bin'), spec.bigBytes);
  const manifest: Manifest = {
    version: FIXTURE_VERSION,
    spec,
    ...counts,
    bigBytes: spec.bigBytes,
    needle: NEEDLE,
    needleFiles: spec.needleFiles,
    generatedSeconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
  fs.writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  fs.renameSync(tmp, dir);
  log(
    `fixture generated in ${manifest.generatedSeconds.toFixed(1)} s: ${counts.entries} entries, ${(counts.treeBytes / 1e6).toFixed(0)} MB in the tree`,
  );
  return { dir, tree: 'tree', big: 'big.bin', manifest, generated: true };
}

// ---------------------------------------------------------------------------------------------
// Deterministic generation

/** sfc32: small, fast, good enough, and the same on every machine. */
function makeRng(seed: string): () => number {
  let h = 1779033703 ^ seed.length;
  for (let i = 0; i < seed.length; i++) {
    h = Math.imul(h ^ seed.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const next = () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
  let a = next(),
    b = next(),
    c = next(),
    d = next();
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** Deterministic pseudo-random bytes (AES-128-CTR keystream under a fixed key). */
function keystream(label: string): (n: number) => Buffer {
  const key = Buffer.alloc(16);
  key.write(label.padEnd(16, '.').slice(0, 16));
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

const SYLLABLES = [
  'ba',
  'co',
  'de',
  'fi',
  'gu',
  'ha',
  'ki',
  'lo',
  'mu',
  'ne',
  'po',
  'ra',
  'si',
  'tu',
  've',
  'xo',
  'ly',
  'zen',
  'qua',
  'str',
  'lib',
  'sys',
  'conf',
  'util',
  'net',
  'core',
  'data',
  'log',
];
const EXTENSIONS = [
  '',
  '',
  '',
  '.so',
  '.so.1',
  '.so.6',
  '.h',
  '.c',
  '.py',
  '.pyc',
  '.conf',
  '.txt',
  '.gz',
  '.json',
  '.pl',
  '.mo',
  '.png',
  '.html',
  '.list',
  '.md5sums',
  '.d',
];
/** Words of the generated text: lowercase only, so NEEDLE (uppercase) can never appear by chance. */
const WORDS = (() => {
  const rng = makeRng('words');
  const out: string[] = [];
  for (let i = 0; i < 2000; i++) {
    let w = '';
    const n = 1 + Math.floor(rng() * 3);
    for (let j = 0; j < n; j++) w += SYLLABLES[Math.floor(rng() * SYLLABLES.length)];
    out.push(w);
  }
  return out;
})();

/** A block of text lines (words, punctuation, newlines), deterministic. */
function makeTextPool(bytes: number): Buffer {
  const rng = makeRng('text');
  const parts: string[] = [];
  let len = 0;
  let line = 0;
  while (len < bytes) {
    const w = WORDS[Math.floor(rng() * WORDS.length)]!;
    const r = rng();
    const sep = line > 60 && r < 0.3 ? '\n' : r < 0.05 ? ' = ' : r < 0.1 ? ', ' : ' ';
    line = sep === '\n' ? 0 : line + w.length + sep.length;
    parts.push(w, sep);
    len += w.length + sep.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, bytes);
}

/** File sizes: mostly small, a long tail (rootfs-like). */
function pickSize(rng: () => number): number {
  const r = rng();
  if (r < 0.03) return 0;
  if (r < 0.55) return 1 + Math.floor(rng() * 1024);
  if (r < 0.93) return 1024 + Math.floor(rng() * 7 * 1024);
  if (r < 0.995) return 8192 + Math.floor(rng() * 24 * 1024);
  return 32768 + Math.floor(rng() * 224 * 1024);
}

const OWNERS: Array<[number, number, number]> = [
  // [weight, uid, gid]
  [80, 0, 0],
  [6, 33, 33], // www-data
  [5, 1000, 1000],
  [4, 65534, 65534], // nobody
  [3, 101, 102],
  [2, 4242, 4242], // no passwd entry: find prints the number
];
const FILE_MODES: Array<[number, number]> = [
  [75, 0o644],
  [18, 0o755],
  [4, 0o600],
  [2, 0o444],
  [1, 0o4755],
];
const DIR_MODES: Array<[number, number]> = [
  [92, 0o755],
  [5, 0o700],
  [3, 0o775],
];

/** A row of `table`, chosen with probability proportional to its first element. */
function weighted<R extends readonly [number, ...number[]]>(rng: () => number, table: readonly R[]): R {
  const total = table.reduce((s, r) => s + r[0], 0);
  let x = rng() * total;
  for (const row of table) {
    x -= row[0];
    if (x < 0) return row;
  }
  return table[table.length - 1]!;
}

interface DirNode {
  rel: string;
  depth: number;
  names: Set<string>;
}

/** Fixed timestamps (2024-01-01 + a deterministic offset) so tar output is reproducible. */
const EPOCH = 1_704_067_200;

function generateTree(
  root: string,
  spec: FixtureSpec,
): Omit<Manifest, 'version' | 'spec' | 'bigBytes' | 'needle' | 'needleFiles' | 'generatedSeconds'> {
  const rng = makeRng(`tree-${spec.entries}`);
  const text = makeTextPool(4 << 20);
  const binary = keystream('binary-pool')(4 << 20);

  const nDirs = Math.max(8, Math.round(spec.entries * 0.07));
  const nLinks = Math.round(spec.entries * 0.06);
  const nHard = spec.hardlinks;
  const nFiles = spec.entries - nDirs - nLinks - nHard; // the root counts as one of nDirs

  const uniqueName = (dir: DirNode, base: string): string => {
    let name = base;
    for (let i = 2; dir.names.has(name); i++) name = `${base}-${i}`;
    dir.names.add(name);
    return name;
  };
  const makeName = (ext: boolean): string => {
    let s = '';
    const n = 1 + Math.floor(rng() * 3);
    for (let i = 0; i < n; i++)
      s += (i > 0 && rng() < 0.4 ? (rng() < 0.5 ? '-' : '_') : '') + SYLLABLES[Math.floor(rng() * SYLLABLES.length)];
    if (rng() < 0.3) s += String(Math.floor(rng() * 100));
    return ext ? s + EXTENSIONS[Math.floor(rng() * EXTENSIONS.length)] : s;
  };

  // Directories: parents are picked mostly among the recent ones, so the tree nests (up to 10 deep).
  const dirs: DirNode[] = [{ rel: '', depth: 0, names: new Set() }];
  const top = ['bin', 'etc', 'lib', 'usr', 'var', 'opt', 'srv', 'home', 'sbin', 'share'];
  fs.mkdirSync(root, { mode: 0o755 });
  for (let i = 1; i < nDirs; i++) {
    let parent: DirNode;
    if (i <= top.length) parent = dirs[0]!;
    else {
      parent = dirs[Math.floor(dirs.length * Math.sqrt(rng()))]!;
      if (parent.depth >= 10) parent = dirs[1 + Math.floor(rng() * top.length)]!;
    }
    const name = uniqueName(parent, i <= top.length ? top[i - 1]! : makeName(false));
    const rel = parent.rel ? `${parent.rel}/${name}` : name;
    fs.mkdirSync(path.join(root, rel));
    dirs.push({ rel, depth: parent.depth + 1, names: new Set() });
  }

  // Files go to directories by weight: most small, some medium, a few big (like /usr/bin).
  const cumulative: number[] = [];
  let acc = 0;
  for (let i = 0; i < dirs.length; i++) {
    const r = rng();
    acc += i === 0 ? 0.2 : r < 0.03 ? 60 : r < 0.15 ? 8 : 1;
    cumulative.push(acc);
  }
  const pickDir = (): DirNode => {
    const x = rng() * acc;
    let lo = 0,
      hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return dirs[lo]!;
  };

  const files: string[] = [];
  let treeBytes = 0;
  const needleEvery = Math.max(1, Math.floor(nFiles / spec.needleFiles));
  let needles = 0;
  for (let i = 0; i < nFiles; i++) {
    const dir = pickDir();
    const name = uniqueName(dir, makeName(true));
    const rel = dir.rel ? `${dir.rel}/${name}` : name;
    const size = pickSize(rng);
    const pool = rng() < 0.75 ? text : binary;
    const off = Math.floor(rng() * (pool.length - size));
    let data = pool.subarray(off, off + size);
    if (i % needleEvery === needleEvery - 1 && needles < spec.needleFiles) {
      // Text with one needle line, so `grep -r NEEDLE | wc -l` is known in advance.
      const t = text.subarray(off, off + size);
      data = Buffer.concat([
        t.subarray(0, t.length >> 1),
        Buffer.from(`\nconfig ${NEEDLE} = ${needles}\n`),
        t.subarray(t.length >> 1),
      ]);
      needles++;
    }
    fs.writeFileSync(path.join(root, rel), data);
    treeBytes += data.length;
    files.push(rel);
  }
  if (needles !== spec.needleFiles) throw new Error(`fixture: placed ${needles} needles, wanted ${spec.needleFiles}`);

  // Symlinks: siblings, relative paths up the tree, absolute paths inside the namespace's /data,
  // and a few dangling ones.
  const links: string[] = [];
  for (let i = 0; i < nLinks; i++) {
    const dir = pickDir();
    const name = uniqueName(dir, makeName(true));
    const rel = dir.rel ? `${dir.rel}/${name}` : name;
    const r = rng();
    const target = files[Math.floor(rng() * files.length)]!;
    let to: string;
    if (r < 0.45) {
      const sib = [...dir.names][Math.floor(rng() * dir.names.size)]!;
      to = sib === name ? 'missing-sibling' : sib;
    } else if (r < 0.75) to = `${'../'.repeat(dir.depth)}${target}`;
    else if (r < 0.95) to = `/data/tree/${target}`;
    else to = `/nonexistent/${makeName(true)}`;
    fs.symlinkSync(to, path.join(root, rel));
    links.push(rel);
  }

  // Hardlinks: a second name for some files, in another directory.
  const hard: string[] = [];
  for (let i = 0; i < nHard; i++) {
    const dir = pickDir();
    const name = uniqueName(dir, makeName(true));
    const rel = dir.rel ? `${dir.rel}/${name}` : name;
    fs.linkSync(path.join(root, files[Math.floor(rng() * files.length)]!), path.join(root, rel));
    hard.push(rel);
  }

  // Owners, modes and times (directories last: creating entries changes their mtime).
  const own = (p: string, link: boolean) => {
    const [, uid, gid] = weighted(rng, OWNERS);
    const t = EPOCH + Math.floor(rng() * 86400 * 365);
    if (link) {
      fs.lchownSync(p, uid, gid);
      fs.lutimesSync(p, t, t);
    } else {
      fs.chownSync(p, uid, gid);
      fs.utimesSync(p, t, t);
    }
  };
  for (const rel of files) {
    const p = path.join(root, rel);
    own(p, false);
    fs.chmodSync(p, weighted(rng, FILE_MODES)[1]);
  }
  for (const rel of links) own(path.join(root, rel), true);
  for (let i = dirs.length - 1; i >= 0; i--) {
    const p = path.join(root, dirs[i]!.rel);
    if (i > 0) own(p, false);
    else fs.utimesSync(p, EPOCH, EPOCH);
    fs.chmodSync(p, i === 0 ? 0o755 : weighted(rng, DIR_MODES)[1]);
  }
  return {
    entries: dirs.length + files.length + links.length + hard.length,
    dirs: dirs.length,
    files: files.length,
    symlinks: links.length,
    hardlinks: hard.length,
    treeBytes,
  };
}

/** `bytes` of deterministic, incompressible data, written in 8 MiB chunks and fsynced. */
function writeBigFile(file: string, bytes: number): void {
  const next = keystream('big-file');
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    const chunk = 8 << 20;
    for (let done = 0; done < bytes;) {
      const n = Math.min(chunk, bytes - done);
      const buf = next(n);
      for (let off = 0; off < n;) off += fs.writeSync(fd, buf, off, n - off);
      done += n;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.utimesSync(file, EPOCH, EPOCH);
}

// ---------------------------------------------------------------------------------------------
// More namespaces' worth of trees

/**
 * `count` copies of the fixture's tree (`<dir>.copies/cN/tree`, made once with `cp -a` and
 * reused), for parallel clients over different namespaces: each namespace gets its own files,
 * as different containers have, so one client's walk does not warm the kernel's caches for
 * another's. Returns the directories to bind as /data (each holds `tree`).
 */
export function ensureCopies(fixture: Fixture, count: number, log: (msg: string) => void): string[] {
  const out: string[] = [];
  for (let i = 1; i <= count; i++) {
    const dir = path.join(`${fixture.dir}.copies`, `c${i}`);
    const done = path.join(dir, 'done');
    if (!fs.existsSync(done)) {
      const t0 = Date.now();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      execFileSync('cp', ['-a', path.join(fixture.dir, 'tree'), path.join(dir, 'tree')], { stdio: 'inherit' });
      fs.writeFileSync(done, '');
      log(`fixture copy ${i} of ${count} made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    out.push(dir);
  }
  return out;
}

/**
 * The million-entry tree, made cheaply: one directory of MEM_DIRS subdirectories holding
 * MEM_FILES_PER_DIR empty files each (10,001 entries with itself), which the memory workload's
 * namespace bind-mounts MEM_BINDS times side by side (lib/env.ts startMemHolder). Bind mounts of
 * one tree are still different paths, so a FUSE server keeps one node per entry walked.
 */
export const MEM_BINDS = 100;
const MEM_DIRS = 100;
const MEM_FILES_PER_DIR = 99;
/** Lines `find /data` prints in the memory namespace: /data, then per bind its root and contents. */
export const MEM_ENTRIES = 1 + MEM_BINDS * (1 + MEM_DIRS * (1 + MEM_FILES_PER_DIR));

export function ensureMemBase(base: string, log: (msg: string) => void): string {
  const dir = path.join(base, `mem-v1-d${MEM_DIRS}-f${MEM_FILES_PER_DIR}`);
  const done = path.join(dir, 'done');
  if (fs.existsSync(done)) return path.join(dir, 'base');
  const t0 = Date.now();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'base'), { recursive: true });
  for (let d = 0; d < MEM_DIRS; d++) {
    const sub = path.join(dir, 'base', `d${String(d).padStart(3, '0')}`);
    fs.mkdirSync(sub);
    for (let f = 0; f < MEM_FILES_PER_DIR; f++)
      fs.closeSync(fs.openSync(path.join(sub, `f${String(f).padStart(3, '0')}`), 'w'));
  }
  fs.writeFileSync(done, '');
  log(
    `memory fixture made in ${((Date.now() - t0) / 1000).toFixed(1)} s (${MEM_BINDS} binds of it: ${MEM_ENTRIES.toLocaleString('en-US')} entries)`,
  );
  return path.join(dir, 'base');
}

/**
 * The FUSE engine against the real kernel: an in-memory filesystem mounted on a temp dir, read by
 * ordinary tools in child processes.
 *
 * This test process SERVES the mount from its main thread, so it must never touch the mount
 * synchronously (nor spawn a child with its cwd inside it): every access goes through a child
 * process started with an async API, and the check itself awaits it.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants } from 'node:os';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { NsviewError, errnoOf } from '../src/sys/errors.js';
import {
  DT,
  REPLIED,
  cleanStaleMount,
  findMount,
  mountFuse,
  unmountMountpoint,
  type Attr,
  type DirEntry,
  type Entry,
  type FuseOperations,
  type MountOptions,
  type MountedSession,
  type RequestContext,
} from '../src/fuse/index.js';
import { decodeBatchForgetIn, decodeReadIn, lookupsNotDelivered, packDirents } from '../src/fuse/codec.js';
import { opcodeRows, opcodeRow, type Engine } from '../src/fuse/opcodes.js';
import { Admission, type Admissible } from '../src/fuse/admission.js';

const E = constants.errno;
const here = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Child processes

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

const childEnv = { ...process.env, LC_ALL: 'C', TZ: 'UTC' };

/** Run a command to completion (never throws on a non-zero exit). */
function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { encoding: 'buffer', env: childEnv, timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr: stderr.toString() });
      },
    );
  });
}

async function text(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.toString();
}

/** Start a long-running child; teardown kills it. */
function start(
  t: ExecutionContext,
  cmd: string,
  args: string[],
): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(cmd, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, exited };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Is anything mounted on `mp` right now? (Reads procfs only.) */
function mountedAt(mp: string): boolean {
  return findMount(mp) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// An in-memory filesystem

const BIG_INO = 2n ** 40n + 7n; // a 64-bit inode number that a 32-bit path would truncate
const MTIME_NSEC = 123_456_789;
const FILE_DATA = Buffer.from('hello nsview\n');
const LINK_TARGET = Buffer.from([0x2f, 0x74, 0x6d, 0x70, 0x2f, 0xff, 0xfe, 0x80]); // "/tmp/\xff\xfe\x80"
const LATIN1_NAME = Buffer.from([0x66, 0xe9]); // "f\xe9": not UTF-8
const LATIN1_DATA = Buffer.from('latin\n');
const XATTR_VALUE = Buffer.from('x'.repeat(200)); // longer than Python's first 128-byte try
const BIG_DIR_SIZE = 3000;

interface MemNode {
  nodeid: bigint;
  attr: Attr;
  children?: Array<[Buffer, bigint]>;
  data?: Buffer;
  target?: Buffer;
  xattrs?: Map<string, Buffer>;
}

function mkAttr(ino: bigint, mode: number, size: number, nlink = 1): Attr {
  return {
    ino,
    size: BigInt(size),
    blocks: BigInt(Math.ceil(size / 512)),
    mode,
    nlink,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
    atimeSec: 1_700_000_000n,
    atimeNsec: 0,
    mtimeSec: 1_700_000_000n,
    mtimeNsec: MTIME_NSEC,
    ctimeSec: 1_700_000_000n,
    ctimeNsec: 0,
  };
}

/** Handlers with special behaviour, reached by looking up these names in the root. */
type Trap = 'throws' | 'rejects' | 'eacces' | 'hang' | 'hang-forever';
const TRAPS: readonly Trap[] = ['throws', 'rejects', 'eacces', 'hang', 'hang-forever'];

class MemFs implements FuseOperations {
  readonly nodes = new Map<bigint, MemNode>();
  /** Lookup references the kernel holds according to us: +1 per lookup / direntplus, -n per forget. */
  readonly lookups = new Map<bigint, bigint>();
  readonly violations: string[] = [];
  readonly trapsEntered = new Set<Trap>();
  readonly abortedTraps = new Set<Trap>();
  readdirCalls = 0;
  destroyed = 0;
  hangStatfs = false;

  constructor() {
    const root: MemNode = { nodeid: 1n, attr: mkAttr(1n, 0o040755, 0, 3), children: [] };
    this.add(root);
    const file: MemNode = {
      nodeid: BIG_INO,
      attr: mkAttr(BIG_INO, 0o100644, FILE_DATA.length),
      data: FILE_DATA,
      xattrs: new Map([
        ['user.test', XATTR_VALUE],
        ['user.small', Buffer.from('v')],
      ]),
    };
    const link: MemNode = { nodeid: 3n, attr: mkAttr(3n, 0o120777, LINK_TARGET.length), target: LINK_TARGET };
    const latin: MemNode = { nodeid: 4n, attr: mkAttr(4n, 0o100444, LATIN1_DATA.length), data: LATIN1_DATA };
    const big: MemNode = { nodeid: 5n, attr: mkAttr(5n, 0o040755, 0, 2), children: [] };
    for (const n of [file, link, latin, big]) this.add(n);
    root.children!.push(
      [Buffer.from('file'), file.nodeid],
      [Buffer.from('link'), link.nodeid],
      [LATIN1_NAME, latin.nodeid],
      [Buffer.from('big'), big.nodeid],
    );
    for (let i = 0; i < BIG_DIR_SIZE; i++) {
      const id = 1000n + BigInt(i);
      this.add({ nodeid: id, attr: mkAttr(id, 0o100644, 0), data: Buffer.alloc(0) });
      big.children!.push([Buffer.from(`entry-${String(i).padStart(4, '0')}`), id]);
    }
  }

  private add(n: MemNode): void {
    this.nodes.set(n.nodeid, n);
  }

  private node(nodeid: bigint): MemNode {
    const n = this.nodes.get(nodeid);
    if (n === undefined) throw new NsviewError(E.ESTALE, `no node ${nodeid}`);
    return n;
  }

  private entry(nodeid: bigint): Entry {
    this.lookups.set(nodeid, (this.lookups.get(nodeid) ?? 0n) + 1n);
    return { nodeid, generation: 0n, attr: this.node(nodeid).attr, entryTimeoutMs: 60_000, attrTimeoutMs: 60_000 };
  }

  /** Outstanding lookups on every node but the root (which the kernel never looks up). */
  outstanding(): bigint {
    let sum = 0n;
    for (const [id, n] of this.lookups) if (id !== 1n) sum += n;
    return sum;
  }

  lookup(ctx: RequestContext, parent: bigint, name: Buffer): Promise<Entry> {
    const s = name.toString('latin1');
    if (parent === 1n && (TRAPS as readonly string[]).includes(s)) return this.trap(ctx, s as Trap);
    const dir = this.node(parent);
    const hit = dir.children?.find(([n]) => n.equals(name));
    if (hit === undefined) return Promise.reject(new NsviewError(E.ENOENT));
    return Promise.resolve(this.entry(hit[1]));
  }

  private trap(ctx: RequestContext, which: Trap): Promise<Entry> {
    this.trapsEntered.add(which);
    switch (which) {
      case 'throws':
        throw new Error('a handler bug (synchronous throw)');
      case 'rejects':
        return Promise.reject(new Error('a handler bug (plain rejection)'));
      case 'eacces':
        return Promise.reject(new NsviewError(E.EACCES));
      case 'hang':
        // Never answers on its own; honours the kernel's interrupt.
        return new Promise((_, reject) => {
          ctx.signal.addEventListener('abort', () => {
            this.abortedTraps.add(which);
            reject(ctx.signal.reason);
          });
        });
      case 'hang-forever':
        return new Promise(() => undefined);
    }
  }

  forget(nodeid: bigint, nlookup: bigint): void {
    const left = (this.lookups.get(nodeid) ?? 0n) - nlookup;
    if (left < 0n) this.violations.push(`forget(${nodeid}, ${nlookup}) below zero`);
    this.lookups.set(nodeid, left);
  }

  async getattr(_ctx: RequestContext, nodeid: bigint) {
    return { attr: this.node(nodeid).attr, attrTimeoutMs: 60_000 };
  }

  async readlink(_ctx: RequestContext, nodeid: bigint) {
    const t = this.node(nodeid).target;
    if (t === undefined) throw new NsviewError(E.EINVAL);
    return t;
  }

  /** A passthrough backing id to answer OPEN with (FOPEN_PASSTHROUGH), when set. */
  backingId: number | undefined;

  async open(_ctx: RequestContext, nodeid: bigint) {
    if (this.node(nodeid).data === undefined) throw new NsviewError(E.EISDIR);
    if (this.backingId !== undefined) return { fh: nodeid, backingId: this.backingId };
    return { fh: nodeid, keepCache: true };
  }

  /** Reads answered by another thread through ctx.delegateReply(): its data, or this errno. */
  delegateReads: 'off' | 'data' | number = 'off';

  async read(ctx: RequestContext, nodeid: bigint, _fh: bigint, offset: bigint, size: number) {
    const d = this.node(nodeid).data!.subarray(Number(offset), Number(offset) + size);
    if (this.delegateReads === 'off') return d;
    const frame = ctx.delegateReply();
    const errno = this.delegateReads === 'data' ? 0 : this.delegateReads;
    const w = new Worker(
      `const fs = require('node:fs'); const { fd, header, data, errno } = require('node:worker_threads').workerData;
       const out = Buffer.concat([header, errno ? Buffer.alloc(0) : data]);
       out.writeUInt32LE(out.length, 0); out.writeInt32LE(-errno, 4); fs.writeSync(fd, out);`,
      { eval: true, workerData: { fd: frame.fd, header: frame.header, data: d, errno } },
    );
    await new Promise((resolve, reject) => w.once('exit', resolve).once('error', reject));
    return REPLIED;
  }

  async release() {}

  async opendir(_ctx: RequestContext, nodeid: bigint) {
    if (this.node(nodeid).children === undefined) throw new NsviewError(E.ENOTDIR);
    return { fh: 0n };
  }

  /** Returns up to 500 entries (far more than a reply holds) and attaches an entry to all, dots included. */
  async readdir(_ctx: RequestContext, nodeid: bigint, _fh: bigint, offset: bigint, plus: boolean): Promise<DirEntry[]> {
    this.readdirCalls++;
    const dir = this.node(nodeid);
    const all: Array<[Buffer, bigint]> = [[Buffer.from('.'), nodeid], [Buffer.from('..'), 1n], ...dir.children!];
    const out: DirEntry[] = [];
    for (let i = Number(offset); i < all.length && out.length < 500; i++) {
      const [name, id] = all[i]!;
      const attr = this.node(id).attr;
      const type = (attr.mode & 0o170000) === 0o040000 ? DT.DIR : (attr.mode & 0o170000) === 0o120000 ? DT.LNK : DT.REG;
      out.push({ name, ino: attr.ino, type, off: BigInt(i + 1), ...(plus ? { entry: this.entry(id) } : {}) });
    }
    return out;
  }

  async releasedir() {}

  statfs() {
    if (this.hangStatfs) return new Promise<never>(() => undefined);
    return Promise.resolve({
      blocks: 100n,
      bfree: 0n,
      bavail: 0n,
      files: 3010n,
      ffree: 0n,
      bsize: 4096,
      namelen: 255,
      frsize: 4096,
    });
  }

  async access() {}

  async getxattr(_ctx: RequestContext, nodeid: bigint, name: Buffer) {
    const v = this.node(nodeid).xattrs?.get(name.toString());
    if (v === undefined) throw new NsviewError(E.ENODATA);
    return v;
  }

  async listxattr(_ctx: RequestContext, nodeid: bigint) {
    const names = [...(this.node(nodeid).xattrs?.keys() ?? [])];
    return Buffer.concat(names.map((n) => Buffer.from(`${n}\0`)));
  }

  destroy() {
    this.destroyed++;
  }
}

// ---------------------------------------------------------------------------------------------
// Mounting with cleanup

interface Mounted {
  mp: string;
  fs: MemFs;
  session: MountedSession;
  errors: Array<{ op: string; err: unknown }>;
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nsview-fuse-test-'));
  t.teardown(async () => {
    // A test that failed half-way may leave a mount (ours or a child's): detach and abort it.
    if (mountedAt(dir)) await unmountMountpoint(dir);
    await fs.rmdir(dir);
  });
  return dir;
}

async function mountMem(t: ExecutionContext, opts: Partial<MountOptions> = {}): Promise<Mounted> {
  const mp = await tempDir(t);
  const memfs = new MemFs();
  const errors: Array<{ op: string; err: unknown }> = [];
  const session = await mountFuse(memfs, {
    mountpoint: mp,
    fsname: 'nsview-test',
    subtype: 'nsviewtest',
    readOnly: true,
    allowOther: false,
    defaultPermissions: false,
    onError: (err, op) => errors.push({ op, err }),
    ...opts,
  });
  t.teardown(() => session.unmount()); // registered last, so it runs before the rmdir above
  return { mp, fs: memfs, session, errors };
}

// ---------------------------------------------------------------------------------------------
// Codec (no kernel)

test('packDirents: 8-byte aligned records, exact name bytes, stops at the first misfit', (t) => {
  const e = (name: Buffer, off: bigint): DirEntry => ({ name, ino: 40n + off, type: DT.REG, off });
  const list = [e(Buffer.from('a'), 1n), e(LATIN1_NAME, 2n), e(Buffer.from('abcdefghi'), 3n)];
  const buf = Buffer.alloc(200, 0xaa);
  // a: 24+1 -> 32; f\xe9: 24+2 -> 32; abcdefghi: 24+9 -> 40. Limit 100 fits two.
  const r = packDirents(buf, 0, 100, list, false);
  t.deepEqual(r, { end: 64, count: 2 });
  t.is(buf.readBigUInt64LE(32), 42n); // ino
  t.is(buf.readBigUInt64LE(40), 2n); // off
  t.is(buf.readUInt32LE(48), 2); // namelen
  t.is(buf.readUInt32LE(52), DT.REG);
  t.deepEqual(buf.subarray(56, 58), LATIN1_NAME);
  t.deepEqual(buf.subarray(58, 64), Buffer.alloc(6)); // padding zeroed, not stale 0xaa
  t.is(buf[64], 0xaa); // nothing written past `end`
});

test('readdirplus accounting: dots go out with nodeid 0, unsent entries are forgotten', (t) => {
  const entry = (nodeid: bigint): Entry => ({
    nodeid,
    generation: 0n,
    attr: mkAttr(nodeid, 0o100644, 0),
    entryTimeoutMs: 1,
    attrTimeoutMs: 1,
  });
  const list: DirEntry[] = [
    { name: Buffer.from('.'), ino: 5n, type: DT.DIR, off: 1n, entry: entry(5n) },
    { name: Buffer.from('..'), ino: 1n, type: DT.DIR, off: 2n, entry: entry(1n) },
    { name: Buffer.from('x'), ino: 7n, type: DT.REG, off: 3n, entry: entry(7n) },
    { name: Buffer.from('y'), ino: 8n, type: DT.REG, off: 4n }, // no entry: no lookup taken
    { name: Buffer.from('z'), ino: 9n, type: DT.REG, off: 5n, entry: entry(9n) },
  ];
  const buf = Buffer.alloc(4096);
  const r = packDirents(buf, 0, 4 * 160, list, true); // each record 152+1(+2) -> 160
  t.is(r.count, 4);
  t.is(buf.readBigUInt64LE(0), 0n, '"." carries nodeid 0');
  t.is(buf.readBigUInt64LE(160), 0n, '".." carries nodeid 0');
  t.is(buf.readBigUInt64LE(320), 7n, 'x carries its nodeid');
  t.is(buf.readBigUInt64LE(320 + 40), 7n, 'x attr.ino');
  t.is(buf.readBigUInt64LE(480), 0n, 'y has no entry');
  t.deepEqual(lookupsNotDelivered(list, r.count, true), [5n, 1n, 9n]);
  t.deepEqual(lookupsNotDelivered(list, 0, true), [5n, 1n, 7n, 9n], 'reply not delivered');
  t.deepEqual(lookupsNotDelivered(list, r.count, false), [5n, 1n, 7n, 9n], 'plain readdir delivers none');
});

test('codec: a short body is EPROTO, not stale buffer bytes; BATCH_FORGET stops at the body end', (t) => {
  const buf = Buffer.alloc(256, 0xaa);
  t.is(errnoOf(t.throws(() => decodeReadIn(buf, 40, 40 + 39))), E.EPROTO);
  buf.writeUInt32LE(5, 40); // count says 5, the body holds 2 records
  for (let i = 0; i < 2; i++) {
    buf.writeBigUInt64LE(BigInt(10 + i), 48 + i * 16);
    buf.writeBigUInt64LE(BigInt(i + 1), 56 + i * 16);
  }
  t.deepEqual(decodeBatchForgetIn(buf, 40, 48 + 2 * 16), [
    { nodeid: 10n, nlookup: 1n },
    { nodeid: 11n, nlookup: 2n },
  ]);
});

/** An Engine that records what the opcode table's engine rows ask of it. */
function recordingEngine(readOnly: boolean): Engine & { replies: Array<[bigint, number]> } {
  const replies: Array<[bigint, number]> = [];
  return {
    readOnly,
    replies,
    reply: (unique, errno) => void replies.push([unique, errno]),
    init: () => undefined,
    forget: () => undefined,
    interrupt: () => undefined,
    destroy: () => undefined,
  };
}

test('opcode table: one row per opcode of fuse.h, each answered explicitly', (t) => {
  const rows = opcodeRows();
  const opcodes = rows.map((r) => r.opcode);
  // fuse.h numbers 1-53, without 7 and 19 (never assigned).
  const expected = Array.from({ length: 53 }, (_, i) => i + 1).filter((n) => n !== 7 && n !== 19);
  t.deepEqual(opcodes, expected);
  t.is(new Set(rows.map((r) => r.name)).size, rows.length, 'names are unique');
  const handled = rows.filter((r) => r.kind === 'handler').map((r) => r.name);
  t.deepEqual(handled, [
    'LOOKUP',
    'GETATTR',
    'SETATTR',
    'READLINK',
    'SYMLINK',
    'MKNOD',
    'MKDIR',
    'UNLINK',
    'RMDIR',
    'RENAME',
    'LINK',
    'OPEN',
    'READ',
    'WRITE',
    'STATFS',
    'RELEASE',
    'FSYNC',
    'SETXATTR',
    'GETXATTR',
    'LISTXATTR',
    'REMOVEXATTR',
    'OPENDIR',
    'READDIR',
    'RELEASEDIR',
    'ACCESS',
    'CREATE',
    'IOCTL',
    'FALLOCATE',
    'READDIRPLUS',
    'RENAME2',
    'LSEEK',
  ]);
  t.deepEqual(
    rows.filter((r) => r.modifies).map((r) => r.name),
    [
      'SETATTR',
      'SYMLINK',
      'MKNOD',
      'MKDIR',
      'UNLINK',
      'RMDIR',
      'RENAME',
      'LINK',
      'WRITE',
      'SETXATTR',
      'REMOVEXATTR',
      'SETLK',
      'SETLKW',
      'CREATE',
      'FALLOCATE',
      'RENAME2',
      'COPY_FILE_RANGE',
      'SETUPMAPPING',
      'REMOVEMAPPING',
      'TMPFILE',
      'COPY_FILE_RANGE_64',
    ],
  );
  t.deepEqual(
    rows.filter((r) => r.noReply).map((r) => r.name),
    ['FORGET', 'INTERRUPT', 'BATCH_FORGET'],
  );
  t.is(opcodeRow(99).name, 'OPCODE_99', 'an opcode newer than the table still gets a row (ENOSYS)');

  // The answers given without a handler, read-only and read-write.
  const answered = (name: string, readOnly: boolean): number | undefined => {
    const row = rows.find((r) => r.name === name)!;
    if (row.kind !== 'engine') return undefined;
    const engine = recordingEngine(readOnly);
    const h = { len: 40, opcode: row.opcode, unique: 7n, nodeid: 1n, uid: 0, gid: 0, pid: 1 };
    row.answer(engine, h, Buffer.alloc(64), 40, 40);
    return engine.replies[0]?.[1];
  };
  t.is(answered('FLUSH', true), E.ENOSYS, 'read-only FLUSH: ENOSYS, so the kernel stops sending it');
  t.is(answered('FLUSH', false), 0);
  for (const name of ['FSYNCDIR', 'SYNCFS']) {
    t.is(answered(name, true), 0, name);
    t.is(answered(name, false), E.ENOSYS, name);
  }
  for (const name of ['GETLK', 'BMAP', 'STATX']) t.is(answered(name, false), E.ENOSYS, name);

  // OPEN modifies only when asked for write access.
  const open = opcodeRow(14);
  if (open.kind !== 'handler') return t.fail('OPEN has a handler');
  const body = Buffer.alloc(48);
  for (const [flags, modifies] of [
    [0, false],
    [1, true],
    [2, true],
    [0o100000, false],
  ] as const) {
    body.writeUInt32LE(flags, 40);
    t.is(open.decode(body, 40, 48).modifies, modifies, `open flags ${flags.toString(8)}`);
  }
});

/** A request for admission tests: records its aborts and runs until released. */
class FakeRequest implements Admissible {
  aborted = false;
  ran = false;
  release!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.release = resolve));
  constructor(readonly unique: bigint) {}
  abort(): void {
    this.aborted = true;
  }
}

function admission(maxInFlight: number) {
  const refused: Array<[bigint, number]> = [];
  const answered: Array<[bigint, number]> = [];
  const a = new Admission<FakeRequest>(
    maxInFlight,
    {
      run: (req) => {
        req.ran = true;
        return req.finished;
      },
      refuse: (req, errno) => void refused.push([req.unique, errno]),
      answer: (unique, errno) => void answered.push([unique, errno]),
    },
    20,
  );
  return { a, refused, answered };
}

test('admission: a running request is aborted, a waiting one answered EINTR without running', async (t) => {
  const { a, refused } = admission(1);
  const first = new FakeRequest(2n);
  const second = new FakeRequest(4n);
  a.submit(first);
  a.submit(second);
  t.true(first.ran);
  t.false(second.ran);
  t.is(a.queued, 1);
  a.interrupt(4n, 5n);
  t.deepEqual(refused, [[4n, E.EINTR]]);
  t.is(a.queued, 0);
  a.interrupt(2n, 3n);
  t.true(first.aborted);
  first.release();
  await first.finished;
  await sleep(0);
  t.is(a.running, 0);
  t.false(second.ran, 'the interrupted waiting request never ran');
});

test('admission: an interrupt that overtakes its request aborts it on arrival, else EAGAIN', async (t) => {
  const { a, answered } = admission(4);
  a.interrupt(10n, 11n); // its request is read after the interrupt
  const late = new FakeRequest(10n);
  a.submit(late);
  t.true(late.aborted, 'the request starts aborted');
  t.true(late.ran);
  a.interrupt(20n, 21n); // a request that never comes (already answered)
  await sleep(100);
  t.deepEqual(answered, [[21n, E.EAGAIN]], 'only the unmatched interrupt is answered, EAGAIN');
  const unrelated = new FakeRequest(30n);
  a.submit(unrelated);
  t.false(unrelated.aborted);
  a.stop();
  t.true(unrelated.aborted, 'stop() aborts running requests');
  late.release();
  unrelated.release();
});

// ---------------------------------------------------------------------------------------------
// Against the kernel

test('INIT negotiates what we ask for and dev matches stat(2)', async (t) => {
  const m = await mountMem(t);
  t.is(m.session.init.major, 7);
  t.true(m.session.init.minor >= 36);
  for (const f of ['ASYNC_READ', 'DO_READDIRPLUS', 'PARALLEL_DIROPS', 'MAX_PAGES', 'INIT_EXT']) {
    t.true(m.session.init.flagNames.includes(f), f);
  }
  t.false(m.session.init.flagNames.includes('READDIRPLUS_AUTO'));
  t.is(m.session.reading, 'epoll', 'requests are read through the event loop (one wake-up each)');
  const info = findMount(m.mp);
  t.is(info?.fstype, 'fuse.nsviewtest');
  t.is(info?.source, 'nsview-test');
  t.is((await text('stat', ['-c', '%d', m.mp])).trim(), String(m.session.dev));
  t.is((await text('stat', ['-f', '-c', '%b %c', m.mp])).trim(), '100 3010');
});

test('ls, stat, cat, readlink, non-UTF-8 names and xattrs come through byte-exact', async (t) => {
  const m = await mountMem(t);
  const file = path.join(m.mp, 'file');

  const ls = await text('ls', ['-la', '--time-style=full-iso', m.mp]);
  t.regex(ls, /^-rw-r--r-- +1 root root +13 2023-11-14 22:13:20\.123456789 \+0000 file$/m);
  t.regex(ls, /^lrwxrwxrwx .* link -> \/tmp\//m);
  t.regex(ls, /^drwxr-xr-x .* big$/m);

  t.is(
    await text('stat', ['-c', '%i %Y %y %s', file]),
    `${BIG_INO} 1700000000 2023-11-14 22:13:20.123456789 +0000 13\n`,
  );
  t.is(await text('cat', [file]), FILE_DATA.toString());

  const rl = await run('readlink', [path.join(m.mp, 'link')]);
  t.deepEqual(rl.stdout, Buffer.concat([LINK_TARGET, Buffer.from('\n')]));

  const names = (await run('find', [m.mp, '-mindepth', '1', '-maxdepth', '1', '-print0'])).stdout;
  const entries = names
    .toString('latin1')
    .split('\0')
    .filter(Boolean)
    .map((s) => Buffer.from(s, 'latin1'));
  t.true(
    entries.some((b) => b.equals(Buffer.concat([Buffer.from(`${m.mp}/`), LATIN1_NAME]))),
    'f\\xe9 listed as raw bytes',
  );
  t.is(entries.length, 4);
  // Open the non-UTF-8 name through a glob so no UTF-8 conversion touches it.
  t.is(await text('sh', ['-c', 'cat "$1"/f?', 'sh', m.mp]), LATIN1_DATA.toString());

  const py = [
    'import ctypes, os, sys',
    'p = sys.argv[1]',
    'libc = ctypes.CDLL(None, use_errno=True)',
    // getxattr(p, name, NULL, 0): the size probe
    'print(libc.getxattr(p.encode(), b"user.test", None, 0))',
    // a too-small buffer: ERANGE
    'buf = ctypes.create_string_buffer(10)',
    'print(libc.getxattr(p.encode(), b"user.test", buf, 10), ctypes.get_errno())',
    'print(os.getxattr(p, "user.test").decode())',
    'print(sorted(os.listxattr(p)))',
    'try:\n  os.getxattr(p, "user.missing")\nexcept OSError as e:\n  print(e.errno)',
  ].join('\n');
  const out = (await text('python3', ['-c', py, file])).split('\n');
  t.is(out[0], '200');
  t.is(out[1], `-1 ${E.ERANGE}`);
  t.is(out[2], XATTR_VALUE.toString());
  t.is(out[3], "['user.small', 'user.test']");
  t.is(out[4], String(E.ENODATA));
  t.deepEqual(m.errors, []);
  t.deepEqual(m.fs.violations, []);
});

test('READDIRPLUS: 3000 entries listed exactly once, lookup counts balance after eviction', async (t) => {
  const m = await mountMem(t);
  const big = path.join(m.mp, 'big');
  const names = (await text('find', [big, '-mindepth', '1', '-maxdepth', '1', '-printf', '%f\n'])).trim().split('\n');
  t.is(names.length, BIG_DIR_SIZE);
  t.is(new Set(names).size, BIG_DIR_SIZE);
  t.is(names.sort()[BIG_DIR_SIZE - 1], 'entry-2999');
  const ls = (await text('ls', ['-la', big])).trim().split('\n');
  t.is(ls.length, BIG_DIR_SIZE + 3); // "total", ".", ".."
  t.true(m.fs.readdirCalls >= 2, `several READDIRPLUS requests (${m.fs.readdirCalls})`);
  t.deepEqual(m.fs.violations, []);
  t.true(m.fs.outstanding() > 0n, 'the kernel holds the entries it was given');

  // Evict: the kernel forgets every inode it dropped. If the engine forgot too little (unsent
  // entries, dots) the count stays above zero; too much and it goes negative.
  await text('sh', ['-c', 'sync; echo 2 > /proc/sys/vm/drop_caches']);
  await waitFor('all lookups forgotten', () => m.fs.outstanding() === 0n, 10_000).catch(() => undefined);
  t.is(m.fs.outstanding(), 0n);
  t.deepEqual(m.fs.violations, []);
  t.deepEqual(m.errors, []);
});

test('a READ reply delegated to another thread (data or errno) reaches the reader', async (t) => {
  const m = await mountMem(t);
  m.fs.delegateReads = 'data';
  t.deepEqual(await fs.readFile(path.join(m.mp, 'file')), FILE_DATA);
  m.fs.delegateReads = E.ENOLINK;
  m.session.invalidateInode(BIG_INO); // the page cache holds it now
  await sleep(100);
  const r = await run('cat', [path.join(m.mp, 'file')]);
  t.not(r.code, 0);
  t.regex(r.stderr, /Link has been severed/);
  t.deepEqual(m.errors, []);
});

test('read-only: modifications fail with EROFS', async (t) => {
  const m = await mountMem(t);
  const touch = await run('touch', [path.join(m.mp, 'new')]);
  t.not(touch.code, 0);
  t.regex(touch.stderr, /Read-only file system/);
  const mkdir = await run('mkdir', [path.join(m.mp, 'd')]);
  t.regex(mkdir.stderr, /Read-only file system/);
  const py = 'import os, sys\ntry:\n  os.setxattr(sys.argv[1], "user.x", b"1")\nexcept OSError as e:\n  print(e.errno)';
  t.is((await text('python3', ['-c', py, path.join(m.mp, 'file')])).trim(), String(E.EROFS));
  t.is(await text('cat', [path.join(m.mp, 'file')]), FILE_DATA.toString(), 'reads still work');
});

test('handler failures become errno replies and never crash the daemon', async (t) => {
  const m = await mountMem(t);
  for (const name of ['throws', 'rejects']) {
    const r = await run('stat', [path.join(m.mp, name)]);
    t.not(r.code, 0);
    t.regex(r.stderr, /Input\/output error/, name);
  }
  t.regex((await run('stat', [path.join(m.mp, 'eacces')])).stderr, /Permission denied/);
  t.regex((await run('stat', [path.join(m.mp, 'nothing')])).stderr, /No such file or directory/);
  t.deepEqual(
    m.errors.map((e) => e.op),
    ['LOOKUP', 'LOOKUP'],
    'only the two bugs are reported',
  );
  t.is(await text('cat', [path.join(m.mp, 'file')]), FILE_DATA.toString(), 'still serving');
});

test('a hung handler blocks only its own request; an interrupt aborts its signal', async (t) => {
  const m = await mountMem(t);
  const hung = start(t, 'stat', [path.join(m.mp, 'hang')]);
  await waitFor('the hang handler', () => m.fs.trapsEntered.has('hang'));
  const ls = await within(text('ls', ['-la', m.mp]), 10_000, 'ls next to a hung request');
  t.regex(ls, / file$/m);
  t.is(await text('cat', [path.join(m.mp, 'file')]), FILE_DATA.toString());
  // A fatal signal makes the kernel send FUSE_INTERRUPT; the handler rejects with EINTR.
  hung.child.kill('SIGKILL');
  await within(hung.exited, 10_000, 'the interrupted stat exits');
  t.true(m.fs.abortedTraps.has('hang'));
  t.deepEqual(m.errors, []);
});

test('unmount() of a busy mount: blocked callers are released, mount gone, closed resolves', async (t) => {
  const m = await mountMem(t);
  const holder = start(t, 'sh', ['-c', 'cd "$1" && exec sleep 60', 'sh', m.mp]); // keeps the mount busy
  const hung = start(t, 'stat', [path.join(m.mp, 'hang-forever')]);
  await waitFor('the hang-forever handler', () => m.fs.trapsEntered.has('hang-forever'));
  t.true(mountedAt(m.mp));

  await within(m.session.unmount(), 10_000, 'unmount');
  await within(m.session.closed, 1_000, 'closed');
  t.false(mountedAt(m.mp));
  const code = await within(hung.exited, 10_000, 'the stat blocked in the dead mount exits');
  t.not(code, 0);
  t.is(m.fs.destroyed, 1);
  await m.session.unmount(); // idempotent
  t.is(m.fs.destroyed, 1);
  holder.child.kill('SIGKILL');
});

test('cleanStaleMount detaches the mount of a SIGKILLed server', async (t) => {
  const mp = await tempDir(t);
  const server = start(t, process.execPath, [path.join(here, 'fixtures', 'fuse-tiny-server.js'), mp]);
  let out = '';
  server.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the server to mount', () => out.includes('READY'));
  t.is(await text('cat', [path.join(mp, 'hello')]), 'tiny\n');
  t.is(findMount(mp)?.fstype, 'fuse.nsviewtest');

  server.child.kill('SIGKILL');
  await within(server.exited, 5_000, 'the server dies');
  t.true(mountedAt(mp), 'the dead server left its mount');
  t.regex((await run('ls', [mp])).stderr, /Transport endpoint is not connected/);

  t.true(await within(cleanStaleMount(mp), 10_000, 'cleanStaleMount'));
  t.false(mountedAt(mp));
  t.false(await cleanStaleMount(mp), 'nothing left to clean');
});

test('FUSE_INTERRUPT aborts the handler signal and the caller gets the EINTR the handler rejects with', async (t) => {
  const mp = await tempDir(t);
  const server = start(t, process.execPath, [path.join(here, 'fixtures', 'fuse-tiny-server.js'), mp]);
  let out = '';
  server.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGTERM');
      await within(server.exited, 5_000, 'the tiny server stops').catch(() => server.child.kill('SIGKILL'));
    }
  });
  await waitFor('the server to mount', () => out.includes('READY'));
  // A caller that survives the signal (it has a handler), so the errno of the reply reaches it:
  // the kernel sends FUSE_INTERRUPT for any signal and then waits for our answer.
  const py = [
    'import ctypes, signal, sys',
    'signal.signal(signal.SIGUSR1, lambda *a: None)',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'r = libc.open(sys.argv[1].encode(), 0)',
    'print(r, ctypes.get_errno(), flush=True)',
  ].join('\n');
  const client = start(t, 'python3', ['-c', py, path.join(mp, 'wait')]);
  let clientOut = '';
  client.child.stdout!.on('data', (d: Buffer) => (clientOut += d.toString()));
  await waitFor('the handler to wait on its signal', () => out.includes('WAITING'));
  client.child.kill('SIGUSR1');
  t.is(await within(client.exited, 10_000, 'the interrupted open returns'), 0);
  t.is(clientOut.trim(), `-1 ${E.EINTR}`);
  t.regex(out, /^ABORTED EINTR$/m, 'the handler saw the abort, with an EINTR reason');
  t.is(await text('cat', [path.join(mp, 'hello')]), 'tiny\n', 'still serving');
});

test('cleanStaleMount refuses a live server and a hung one, without hanging', async (t) => {
  const m = await mountMem(t);
  const live = await t.throwsAsync(cleanStaleMount(m.mp, { timeoutMs: 5_000 }));
  t.is((live as NsviewError).errno, E.EBUSY);
  t.regex(live!.message, /already mounted.*answers/);

  m.fs.hangStatfs = true;
  const t0 = Date.now();
  const hung = await t.throwsAsync(cleanStaleMount(m.mp, { timeoutMs: 500 }));
  t.is((hung as NsviewError).errno, E.EBUSY);
  t.regex(hung!.message, /did not answer/);
  t.true(Date.now() - t0 < 3_000);
  t.true(mountedAt(m.mp), 'a live mount is never detached');
});

test('passthrough: the kernel reads an opened file from its backing file, no READ reaches the server', async (t) => {
  const plain = await mountMem(t);
  t.is(plain.session.backing, undefined, 'no backing files unless asked for');
  const m = await mountMem(t, { passthrough: true });
  const backing = m.session.backing;
  if (!backing) return t.fail('the kernel (6.9+, CONFIG_FUSE_PASSTHROUGH) did not agree to passthrough');
  // Same length as the served file, other contents: what cat prints tells who answered.
  const dir = await tempDir(t);
  const real = path.join(dir, 'real');
  await fs.writeFile(real, FILE_DATA.toString().toUpperCase());
  t.teardown(() => fs.rm(real, { force: true }));
  const fd = openSync(real, fsConstants.O_RDONLY);
  t.teardown(() => closeSync(fd));
  const id = backing.open(fd);
  t.true(id > 0);
  m.fs.backingId = id;
  const reads = m.session.requestCounts().READ ?? 0;
  t.is(await text('cat', [path.join(m.mp, 'file')]), 'HELLO NSVIEW\n', 'data of the backing file');
  t.is(m.session.requestCounts().READ ?? 0, reads, 'no READ request');
  backing.close(id);
  t.is(errnoOf(t.throws(() => backing.close(id))), E.ENOENT, 'a closed id is gone');
  const dirFd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  t.teardown(() => closeSync(dirFd));
  t.is(errnoOf(t.throws(() => backing.open(dirFd))), E.EISDIR, 'only regular files back a FUSE file');
  m.fs.backingId = undefined;
  t.is(
    await text('cat', [path.join(m.mp, 'file')]),
    FILE_DATA.toString(),
    'served by us again once nothing names the id',
  );
});

test('invalidateInode drops cached data, invalidateEntry a cached name; unknown ones are no error', async (t) => {
  const m = await mountMem(t);
  const file = path.join(m.mp, 'file');
  t.is(await text('cat', [file]), FILE_DATA.toString());
  m.fs.nodes.get(BIG_INO)!.data = Buffer.from(FILE_DATA.toString().toUpperCase()); // same size
  t.is(await text('cat', [file]), FILE_DATA.toString(), 'served from the page cache (keepCache, 60 s attrs)');
  m.session.invalidateInode(BIG_INO);
  let content = '';
  for (let i = 0; i < 50 && content !== 'HELLO NSVIEW\n'; i++) content = await text('cat', [file]);
  t.is(content, 'HELLO NSVIEW\n');

  t.is((await text('stat', ['-c', '%i', file])).trim(), String(BIG_INO));
  m.fs.nodes.get(1n)!.children![0]![1] = 4n; // "file" now names node 4 (ino 4)
  t.is((await text('stat', ['-c', '%i', file])).trim(), String(BIG_INO), 'the dentry is cached');
  m.session.invalidateEntry(1n, Buffer.from('file'));
  let ino = '';
  for (let i = 0; i < 50 && ino !== '4'; i++) {
    ino = (await text('stat', ['-c', '%i', file])).trim();
    if (ino !== '4') await sleep(20);
  }
  t.is(ino, '4');

  m.session.invalidateEntry(1n, Buffer.from('never-looked-up'));
  m.session.invalidateInode(987_654_321n);
  await sleep(200);
  t.deepEqual(m.errors, []);
});

test('a notification stuck in the kernel does not stop serving', async (t) => {
  const m = await mountMem(t);
  // Cache the dentry we will invalidate, and "big": the lookup below must not need the root's lock.
  await text('stat', [path.join(m.mp, 'link'), path.join(m.mp, 'big')]);
  const hung = start(t, 'stat', [path.join(m.mp, 'hang')]); // a lookup in the root, pending
  await waitFor('the hang handler', () => m.fs.trapsEntered.has('hang'));
  // The kernel may wait for the root directory's lock, held by the pending lookup, which only our
  // main thread can release: the write must not happen on that thread.
  m.session.invalidateEntry(1n, Buffer.from('link'));
  const ino = await within(
    text('stat', ['-c', '%i', path.join(m.mp, 'big', 'entry-0042')]),
    10_000,
    'a lookup elsewhere',
  );
  t.is(ino.trim(), '1042');
  hung.child.kill('SIGKILL');
  await within(hung.exited, 10_000, 'the interrupted stat exits');
  await sleep(100);
  t.deepEqual(m.errors, []);
});

for (const pollDevice of [true, false]) {
  const reading = pollDevice ? 'epoll' : 'threadpool';
  test(`notifications stuck in the kernel never stop request reading (${reading} reads)`, async (t) => {
    const m = await mountMem(t, { pollDevice });
    t.is(m.session.reading, reading);
    await text('stat', [path.join(m.mp, 'big')]);
    const hung = start(t, 'stat', [path.join(m.mp, 'hang')]); // holds the root's lock, pending
    await waitFor('the hang handler', () => m.fs.trapsEntered.has('hang'));
    // Each of these blocks in the kernel until the lookup above is answered. Written side by side
    // on libuv's pool they would fill it (any size up to 64), and the /dev/fuse readers, which
    // refill through the same pool, would never deliver another request: a dead mount. (Read
    // through epoll, requests do not need the pool, but other pool users would still starve.)
    for (let i = 0; i < 64; i++) m.session.invalidateEntry(1n, Buffer.from(`gone-${i}`));
    const ino = await within(
      text('stat', ['-c', '%i', path.join(m.mp, 'big', 'entry-0007')]),
      10_000,
      'a lookup elsewhere',
    );
    t.is(ino.trim(), '1007');
    const ls = await within(text('ls', [path.join(m.mp, 'big')]), 10_000, 'a listing elsewhere');
    t.is(ls.split('\n').filter(Boolean).length, BIG_DIR_SIZE);
    hung.child.kill('SIGKILL');
    await within(hung.exited, 10_000, 'the interrupted stat exits');
    await sleep(300); // the queued notifications drain (ENOENT: nothing cached under those names)
    t.deepEqual(m.errors, []);
  });
}

test('busy polling keeps the loop awake for its window after a request, then lets it sleep', async (t) => {
  const windowUs = 100_000; // long enough to measure; the daemon's default is 200 µs
  const m = await mountMem(t, { busyPollUs: windowUs });
  t.is(m.session.reading, 'epoll');
  const cpuOver = async (ms: number): Promise<number> => {
    const start = process.cpuUsage();
    const t0 = performance.now();
    await sleep(ms);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000 / (performance.now() - t0);
  };
  t.is(await text('cat', [path.join(m.mp, 'file')]), FILE_DATA.toString());
  // Inside the window the loop spins. It yields the CPU each turn, so on a loaded machine it gets
  // only its fair share of a CPU: compare with the share once idle, not with a fixed number.
  const busy = await cpuOver(60);
  await sleep(windowUs / 1000);
  // After the window, nothing: a loop that never stopped spinning would show what it did inside.
  // A late request (the kernel's RELEASE of the cat, say) rightly opens another window: take the
  // quietest of a few measurements.
  let idle = await cpuOver(300);
  for (let i = 0; i < 10 && idle >= 0.15; i++) idle = Math.min(idle, await cpuOver(300));
  const shares = `CPU share right after a request ${busy.toFixed(2)}, once idle ${idle.toFixed(2)}`;
  t.true(busy > 0.05 && busy > 3 * idle, shares);
  t.true(idle < 0.15, shares);
  t.deepEqual(m.errors, []);
});

test('busyPollUs must be a non-negative number', async (t) => {
  const mp = await tempDir(t);
  const err = await t.throwsAsync(
    mountFuse(new MemFs(), {
      mountpoint: mp,
      fsname: 'x',
      subtype: 'x',
      readOnly: true,
      allowOther: false,
      defaultPermissions: false,
      busyPollUs: -1,
    }),
  );
  t.is(errnoOf(err), E.EINVAL);
  t.false(mountedAt(mp));
});

test('the session ends by itself when the connection is aborted from outside', async (t) => {
  const m = await mountMem(t);
  t.true(await unmountMountpoint(m.mp)); // what `nsview unmount` does
  await within(m.session.closed, 5_000, 'closed after an external abort');
  t.is(m.fs.destroyed, 1);
  t.false(mountedAt(m.mp));
  await within(m.session.unmount(), 5_000, 'unmount after the end');
});

test('maxInFlight queues requests; an interrupted queued request is answered without its handler', async (t) => {
  const m = await mountMem(t, { maxInFlight: 1 });
  const hung = start(t, 'stat', [path.join(m.mp, 'hang')]); // takes the only slot
  await waitFor('the hang handler', () => m.fs.trapsEntered.has('hang'));
  const queued = start(t, 'stat', [path.join(m.mp, 'eacces')]); // waits behind it in the engine
  await sleep(300);
  t.false(m.fs.trapsEntered.has('eacces'), 'not started while the slot is taken');
  queued.child.kill('SIGKILL');
  await within(queued.exited, 10_000, 'the queued stat exits');
  hung.child.kill('SIGKILL');
  await within(hung.exited, 10_000, 'the running stat exits');
  t.is(
    await within(text('cat', [path.join(m.mp, 'file')]), 10_000, 'cat after the queue drained'),
    FILE_DATA.toString(),
  );
  t.false(m.fs.trapsEntered.has('eacces'), 'the interrupted queued request never reached its handler');
  t.deepEqual(m.errors, []);
});

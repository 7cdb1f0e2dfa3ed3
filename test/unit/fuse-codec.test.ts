/**
 * The FUSE codec against the kernel's ABI (include/uapi/linux/fuse.h), without a kernel.
 *
 * Every offset below is written out from the C header on purpose instead of being imported from
 * src/fuse/protocol.ts: the test decodes what the codec encoded with its own reading of the
 * structs, so a wrong offset in protocol.ts fails here instead of being agreed with.
 */
import test from 'ava';
// The only nsview module this file uses; its types are derived from the functions' signatures.
import {
  decodeInitIn,
  decodeIoctlIn,
  decodeLseekIn,
  decodeName,
  encodeInvalEntry,
  encodeInvalInode,
  lookupsNotDelivered,
  packDirents,
  writeAttr,
  writeAttrOut,
  writeEntryOut,
  writeGetxattrOut,
  writeInitOut,
  writeIoctlOut,
  writeLseekOut,
  writeOpenOut,
  writeOutHeader,
  writeStatfs,
} from '../../src/fuse/codec.js';

type Attr = Parameters<typeof writeAttr>[2];
type Entry = Parameters<typeof writeEntryOut>[2];
type DirEntry = Parameters<typeof packDirents>[3][number];

// ---------------------------------------------------------------------------------------------
// The kernel's side, from fuse.h

/** struct fuse_out_header { u32 len; i32 error; u64 unique; } */
function readOutHeader(b: Buffer, off = 0): { len: number; error: number; unique: bigint } {
  return { len: b.readUInt32LE(off), error: b.readInt32LE(off + 4), unique: b.readBigUInt64LE(off + 8) };
}

/** struct fuse_attr: 88 bytes. */
function readAttr(b: Buffer, off: number): Attr {
  return {
    ino: b.readBigUInt64LE(off),
    size: b.readBigUInt64LE(off + 8),
    blocks: b.readBigUInt64LE(off + 16),
    atimeSec: b.readBigInt64LE(off + 24),
    mtimeSec: b.readBigInt64LE(off + 32),
    ctimeSec: b.readBigInt64LE(off + 40),
    atimeNsec: b.readUInt32LE(off + 48),
    mtimeNsec: b.readUInt32LE(off + 52),
    ctimeNsec: b.readUInt32LE(off + 56),
    mode: b.readUInt32LE(off + 60),
    nlink: b.readUInt32LE(off + 64),
    uid: b.readUInt32LE(off + 68),
    gid: b.readUInt32LE(off + 72),
    rdev: b.readUInt32LE(off + 76),
    blksize: b.readUInt32LE(off + 80),
  };
}

/** struct fuse_entry_out { u64 nodeid, generation, entry_valid, attr_valid; u32 entry_valid_nsec, attr_valid_nsec; fuse_attr attr; } */
function readEntryOut(b: Buffer, off: number) {
  return {
    nodeid: b.readBigUInt64LE(off),
    generation: b.readBigUInt64LE(off + 8),
    entryValid: [b.readBigUInt64LE(off + 16), b.readUInt32LE(off + 32)] as const,
    attrValid: [b.readBigUInt64LE(off + 24), b.readUInt32LE(off + 36)] as const,
    attr: readAttr(b, off + 40),
  };
}

/** struct fuse_dirent { u64 ino; u64 off; u32 namelen; u32 type; char name[]; } padded to 8. */
function readDirents(b: Buffer, start: number, end: number, plus: boolean) {
  const out: {
    entry?: ReturnType<typeof readEntryOut>;
    ino: bigint;
    off: bigint;
    type: number;
    name: Buffer;
    reclen: number;
  }[] = [];
  let off = start;
  while (off < end) {
    const d = plus ? off + 128 : off;
    const namelen = d + 16 <= end ? b.readUInt32LE(d + 16) : 0;
    const reclen = ((plus ? 128 : 0) + 24 + namelen + 7) & ~7;
    out.push({
      ...(plus ? { entry: readEntryOut(b, off) } : {}),
      ino: b.readBigUInt64LE(d),
      off: b.readBigUInt64LE(d + 8),
      type: b.readUInt32LE(d + 20),
      name: Buffer.from(b.subarray(d + 24, d + 24 + namelen)),
      reclen,
    });
    off += reclen;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

function attr(ino: bigint, over: Partial<Attr> = {}): Attr {
  return {
    ino,
    size: 0x1_0000_0001n, // above 4 GiB: catches a 32-bit write
    blocks: 9n,
    atimeSec: -1n, // before 1970: times are signed in the kernel
    atimeNsec: 999_999_999,
    mtimeSec: 1_700_000_000n,
    mtimeNsec: 1,
    ctimeSec: 0x7fff_ffff_ffffn,
    ctimeNsec: 0,
    mode: 0o104755,
    nlink: 3,
    uid: 0xffff_fffe,
    gid: 65534,
    rdev: 0x0801,
    blksize: 4096,
    ...over,
  };
}

function entry(nodeid: bigint, over: Partial<Entry> = {}): Entry {
  return { nodeid, generation: 7n, attr: attr(nodeid + 1000n), entryTimeoutMs: 1500, attrTimeoutMs: 1000, ...over };
}

/** A buffer full of a non-zero byte, so anything the codec forgets to write shows. */
function dirty(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

// ---------------------------------------------------------------------------------------------
// Headers

test('out header: len, negative errno and unique land where the kernel reads them', (t) => {
  const b = dirty(32);
  writeOutHeader(b, 8, 16, -2, 0xdead_beef_0000_0001n);
  t.deepEqual(readOutHeader(b, 8), { len: 16, error: -2, unique: 0xdead_beef_0000_0001n });
  t.is(b[7], 0xa5, 'nothing written before the offset');
  t.is(b[24], 0xa5, 'nothing written past the 16 header bytes');
});

test('request names are copied out, stop at the first NUL and never read past the body', (t) => {
  const req = Buffer.from('xxname\0junk', 'latin1');
  const name = decodeName(req, 2, req.length);
  t.is(name.toString('latin1'), 'name');
  req.fill(0x41); // the read buffer is reused for the next request
  t.is(name.toString('latin1'), 'name', 'a copy, not a view of the reused buffer');
  // No NUL inside the body: the body's end bounds the name.
  const unterminated = Buffer.from('abcdefgh', 'latin1');
  t.is(decodeName(unterminated, 0, 4).toString('latin1'), 'abcd');
  // Odd bytes are kept byte for byte.
  const odd = Buffer.from([0xff, 0x0a, 0x5c, 0x80, 0x00]);
  t.deepEqual([...decodeName(odd, 0, odd.length)], [0xff, 0x0a, 0x5c, 0x80]);
});

test('INIT request: 7.6+ fields, and flags2 only counted when FUSE_INIT_EXT is set', (t) => {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0);
  b.writeUInt32LE(45, 4);
  b.writeUInt32LE(131072, 8);
  b.writeUInt32LE(1 << 30, 12); // FUSE_INIT_EXT
  b.writeUInt32LE(0b101, 16); // flags2
  t.deepEqual(decodeInitIn(b, 0, 64), {
    major: 7,
    minor: 45,
    maxReadahead: 131072,
    flags: (1n << 30n) | (0b101n << 32n),
  });
  b.writeUInt32LE(1, 12); // no FUSE_INIT_EXT: flags2 is garbage to be ignored
  t.is(decodeInitIn(b, 0, 64).flags, 1n);
  // A pre-7.6 body has only major and minor.
  t.deepEqual(decodeInitIn(b, 0, 8), { major: 7, minor: 45, maxReadahead: 0, flags: 0n });
});

test('INIT reply: the size follows the agreed minor, flags split into flags and flags2', (t) => {
  const r = {
    minor: 45,
    maxReadahead: 131072,
    flags: (1n << 33n) | 0x8000_0001n,
    maxBackground: 16,
    congestionThreshold: 12,
    maxWrite: 1 << 20,
    timeGran: 1,
    maxPages: 256,
    maxStackDepth: 0,
  };
  const b = dirty(80);
  t.is(writeInitOut(b, 0, r), 64, 'fuse_init_out is 64 bytes since 7.23');
  t.is(b.readUInt32LE(0), 7);
  t.is(b.readUInt32LE(4), 45);
  t.is(b.readUInt32LE(8), 131072);
  t.is(b.readUInt32LE(12), 0x8000_0001);
  t.is(b.readUInt16LE(16), 16);
  t.is(b.readUInt16LE(18), 12);
  t.is(b.readUInt32LE(20), 1 << 20);
  t.is(b.readUInt32LE(24), 1);
  t.is(b.readUInt16LE(28), 256);
  t.is(b.readUInt32LE(32), 0b10, 'flags2 is the high half');
  t.true(
    b.subarray(36, 64).every((x) => x === 0),
    'max_stack_depth, request_timeout and unused are zero',
  );
  t.is(b[64], 0xa5);
  const old = dirty(32);
  t.is(writeInitOut(old, 0, { ...r, minor: 22 }), 24, 'before 7.23 the kernel expects 24 bytes');
  t.is(old[24], 0xa5);
});

// ---------------------------------------------------------------------------------------------
// Attributes and entries

test('fuse_attr round trip, including >4 GiB sizes, signed times and high uids', (t) => {
  const a = attr(0xffff_ffff_ffff_fff0n);
  const b = dirty(96);
  t.is(writeAttr(b, 4, a), 4 + 88);
  t.deepEqual(readAttr(b, 4), a);
  t.is(b.readUInt32LE(4 + 84), 0, 'fuse_attr.flags is zero (no FUSE_ATTR_SUBMOUNT)');
  t.is(b[3], 0xa5);
  t.is(b[92], 0xa5);
});

test('entry_out round trip and cache timeouts as (sec, nsec)', (t) => {
  const cases: [number, readonly [bigint, number]][] = [
    [0, [0n, 0]],
    [-5, [0n, 0]], // no negative validity
    [1, [0n, 1_000_000]],
    [1500, [1n, 500_000_000]],
    [0.5, [0n, 500_000]],
    [Infinity, [0xffff_ffff_ffff_ffffn, 0]],
  ];
  for (const [ms, want] of cases) {
    const e = entry(42n, { entryTimeoutMs: ms, attrTimeoutMs: ms });
    const b = dirty(128);
    t.is(writeEntryOut(b, 0, e), 128);
    const got = readEntryOut(b, 0);
    t.deepEqual(got.entryValid, want, `entry timeout ${ms} ms`);
    t.deepEqual(got.attrValid, want, `attr timeout ${ms} ms`);
    t.is(got.nodeid, 42n);
    t.is(got.generation, 7n);
    t.deepEqual(got.attr, e.attr);
  }
});

test('attr_out: validity, zeroed dummy, then fuse_attr', (t) => {
  const b = dirty(104);
  t.is(writeAttrOut(b, 0, { attr: attr(5n), attrTimeoutMs: 2250 }), 104);
  t.is(b.readBigUInt64LE(0), 2n);
  t.is(b.readUInt32LE(8), 250_000_000);
  t.is(b.readUInt32LE(12), 0, 'dummy');
  t.deepEqual(readAttr(b, 16), attr(5n));
});

test('open_out, statfs_out and getxattr_out carry every field and zero their padding', (t) => {
  const o = dirty(16);
  t.is(writeOpenOut(o, 0, { fh: 0x1_0000_0002n, keepCache: true, directIo: true, cacheDir: true }), 16);
  t.is(o.readBigUInt64LE(0), 0x1_0000_0002n);
  t.is(o.readUInt32LE(8), 0b1011, 'FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR');
  t.is(o.readInt32LE(12), 0, 'backing_id');
  writeOpenOut(o, 0, { fh: 1n });
  t.is(o.readUInt32LE(8), 0);

  const s = dirty(80);
  const fs = { blocks: 1n << 40n, bfree: 2n, bavail: 3n, files: 4n, ffree: 5n, bsize: 4096, namelen: 255, frsize: 512 };
  t.is(writeStatfs(s, 0, fs), 80);
  t.deepEqual(
    {
      blocks: s.readBigUInt64LE(0),
      bfree: s.readBigUInt64LE(8),
      bavail: s.readBigUInt64LE(16),
      files: s.readBigUInt64LE(24),
      ffree: s.readBigUInt64LE(32),
      bsize: s.readUInt32LE(40),
      namelen: s.readUInt32LE(44),
      frsize: s.readUInt32LE(48),
    },
    fs,
  );
  t.true(
    s.subarray(52, 80).every((x) => x === 0),
    'padding and spare[6]',
  );

  const g = dirty(8);
  t.is(writeGetxattrOut(g, 0, 123), 8);
  t.deepEqual([g.readUInt32LE(0), g.readUInt32LE(4)], [123, 0]);
});

test('LSEEK: fuse_lseek_in { fh, offset, whence, padding } in, fuse_lseek_out { offset } out', (t) => {
  const b = dirty(24);
  b.writeBigUInt64LE(0x1_0000_0007n, 0);
  b.writeBigInt64LE(3n << 30n, 8);
  b.writeUInt32LE(4, 16); // SEEK_HOLE
  t.deepEqual(decodeLseekIn(b, 0, 24), { fh: 0x1_0000_0007n, offset: 3n << 30n, whence: 4 });
  t.throws(() => decodeLseekIn(b, 0, 23), { message: /EPROTO/ });
  const o = dirty(8);
  t.is(writeLseekOut(o, 0, 5n << 32n), 8);
  t.is(o.readBigInt64LE(0), 5n << 32n);
});

test('IOCTL: fuse_ioctl_in fields; fuse_ioctl_out done (result 0, no retry, no iovecs), then exactly out_size bytes', (t) => {
  // struct fuse_ioctl_in { u64 fh; u32 flags; u32 cmd; u64 arg; u32 in_size; u32 out_size; }
  const b = dirty(32);
  b.writeBigUInt64LE(9n, 0);
  b.writeUInt32LE(1 << 4, 8); // FUSE_IOCTL_DIR
  b.writeUInt32LE(0x801c581f, 12); // FS_IOC_FSGETXATTR
  b.writeBigUInt64LE(0n, 16);
  b.writeUInt32LE(0, 24);
  b.writeUInt32LE(28, 28);
  t.deepEqual(decodeIoctlIn(b, 0, 32), { fh: 9n, flags: 16, cmd: 0x801c581f, inSize: 0, outSize: 28 });
  t.throws(() => decodeIoctlIn(b, 0, 31), { message: /EPROTO/ });
  // struct fuse_ioctl_out { i32 result; u32 flags; u32 in_iovs; u32 out_iovs; } + data
  const o = dirty(64);
  t.is(writeIoctlOut(o, 0, Buffer.from([1, 2, 3, 4, 5, 6]), 4), 20, 'cut to out_size');
  t.deepEqual([o.readInt32LE(0), o.readUInt32LE(4), o.readUInt32LE(8), o.readUInt32LE(12)], [0, 0, 0, 0]);
  t.deepEqual([...o.subarray(16, 20)], [1, 2, 3, 4]);
  t.is(writeIoctlOut(o, 0, Buffer.from([7]), 28), 44, 'padded to out_size');
  t.deepEqual([...o.subarray(16, 44)], [7, ...new Array<number>(27).fill(0)]);
});

// ---------------------------------------------------------------------------------------------
// Directories

const names = ['.', '..', 'a', 'eight888', 'sevenn7', 'x'.repeat(255), '\xff\n\\odd'];
function dirents(withEntries: boolean): DirEntry[] {
  return names.map((n, i) => ({
    name: Buffer.from(n, 'latin1'),
    ino: BigInt(100 + i),
    type: i < 2 ? 4 : 8,
    off: BigInt(i + 1),
    ...(withEntries ? { entry: entry(BigInt(10 + i)) } : {}),
  }));
}

test('READDIR: dirents round trip, 8-byte aligned, padding zeroed', (t) => {
  const list = dirents(false);
  const b = dirty(8192);
  const r = packDirents(b, 16, b.length, list, false);
  t.is(r.count, list.length);
  const got = readDirents(b, 16, r.end, false);
  t.deepEqual(
    got.map((d) => d.name.toString('latin1')),
    names,
  );
  t.deepEqual(
    got.map((d) => [d.ino, d.off, d.type]),
    list.map((e) => [e.ino, e.off, e.type]),
  );
  let off = 16;
  for (const d of got) {
    t.is(d.reclen % 8, 0);
    t.true(
      b.subarray(off + 24 + d.name.length, off + d.reclen).every((x) => x === 0),
      `padding after ${JSON.stringify(d.name.toString('latin1'))}`,
    );
    off += d.reclen;
  }
  t.is(off, r.end);
  t.is(b[r.end], 0xa5, 'nothing written past the last record');
});

test('READDIR: stops at the first entry that does not fit whole', (t) => {
  const list = dirents(false);
  // '.', '..', 'a' are 32 bytes each; 'eight888' too; 'sevenn7' 32; the 255-byte name 280.
  for (const [limit, want] of [
    [0, 0],
    [31, 0],
    [32, 1],
    [127, 3],
    [128, 4],
    [160, 5],
    [439, 5],
    [440, 6],
  ] as const) {
    const b = dirty(1024);
    const r = packDirents(b, 0, limit, list, false);
    t.is(r.count, want, `limit ${limit}`);
    t.true(r.end <= limit);
    t.is(b[r.end], 0xa5, `limit ${limit}: nothing past the packed records`);
  }
});

test('READDIRPLUS: entries round trip; . and .. go out with nodeid 0; a missing entry is zeroed', (t) => {
  const list = dirents(true);
  delete list[2]!.entry; // the kernel will look 'a' up itself
  const b = dirty(16384);
  const r = packDirents(b, 0, b.length, list, true);
  t.is(r.count, list.length);
  const got = readDirents(b, 0, r.end, true);
  t.deepEqual(
    got.map((d) => d.name.toString('latin1')),
    names,
  );
  t.is(got[0]!.entry!.nodeid, 0n);
  t.is(got[1]!.entry!.nodeid, 0n);
  t.true(
    b.subarray(0, 128).every((x) => x === 0),
    '. has an all-zero entry_out',
  );
  t.is(got[2]!.entry!.nodeid, 0n);
  for (let i = 3; i < list.length; i++) {
    t.is(got[i]!.entry!.nodeid, list[i]!.entry!.nodeid);
    t.deepEqual(got[i]!.entry!.attr, list[i]!.entry!.attr);
    t.is(got[i]!.reclen % 8, 0);
  }
});

test('lookup accounting: which references the kernel will not own after a (partial) reply', (t) => {
  const list = dirents(true);
  const ids = (xs: bigint[]) => xs.map(Number).sort((a, b) => a - b);
  // Plus, all delivered: only . and .. (sent as nodeid 0) are ours to forget.
  t.deepEqual(ids(lookupsNotDelivered(list, list.length, true)), [10, 11]);
  // Plus, 4 of 7 delivered: . and .., and everything past the 4th.
  t.deepEqual(ids(lookupsNotDelivered(list, 4, true)), [10, 11, 14, 15, 16]);
  // Never delivered: every reference.
  t.deepEqual(ids(lookupsNotDelivered(list, 0, true)), [10, 11, 12, 13, 14, 15, 16]);
  // Non-plus replies deliver no entries at all.
  t.deepEqual(ids(lookupsNotDelivered(list, list.length, false)), [10, 11, 12, 13, 14, 15, 16]);
  // Entries without a reference, or with nodeid 0, hold nothing.
  const none = dirents(false).concat([{ ...dirents(true)[3]!, entry: entry(0n) }]);
  t.deepEqual(lookupsNotDelivered(none, 0, true), []);
});

// ---------------------------------------------------------------------------------------------
// Notifications

test('notify INVAL_ENTRY: unique 0, code in error, name NUL-terminated', (t) => {
  const name = Buffer.from([0x61, 0xff, 0x62]);
  const b = encodeInvalEntry(99n, name);
  t.deepEqual(readOutHeader(b), { len: 16 + 16 + 3 + 1, error: 3, unique: 0n }); // FUSE_NOTIFY_INVAL_ENTRY = 3
  t.is(b.length, 36);
  t.is(b.readBigUInt64LE(16), 99n);
  t.is(b.readUInt32LE(24), 3, 'namelen without the NUL');
  t.is(b.readUInt32LE(28), 0, 'flags: not FUSE_EXPIRE_ONLY');
  t.deepEqual([...b.subarray(32)], [0x61, 0xff, 0x62, 0]);
});

test('notify INVAL_INODE: whole file (off 0, len 0)', (t) => {
  const b = encodeInvalInode(0x1234n);
  t.deepEqual(readOutHeader(b), { len: 40, error: 2, unique: 0n }); // FUSE_NOTIFY_INVAL_INODE = 2
  t.is(b.readBigUInt64LE(16), 0x1234n);
  t.is(b.readBigInt64LE(24), 0n);
  t.is(b.readBigInt64LE(32), 0n);
});

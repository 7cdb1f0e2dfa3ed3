/**
 * Byte layout of FUSE requests and replies. Pure functions over Buffers: no I/O, no session state,
 * so the packing rules (alignment, lookup accounting of READDIRPLUS) can be tested on their own.
 * Decoding lives here, apart from dispatch (opcodes.ts says which decoder each opcode uses).
 *
 * Encoders write into a caller-provided buffer at an offset and return the end offset, so the
 * session can build a whole reply in one reusable buffer and hand it to a single write(2).
 */
import type { Attr, AttrReply, DirEntry, Entry, OpenReply, StatFs } from './types.js';
import { E, NsviewError } from '../sys/errors.js';
import {
  ACCESS_IN_SIZE,
  ATTR_OUT_SIZE,
  Attr as A,
  AttrOut,
  BATCH_FORGET_IN_SIZE,
  DIRENT_SIZE,
  DIRENTPLUS_SIZE,
  ENTRY_OUT_SIZE,
  EntryOut,
  FOPEN,
  FORGET_IN_SIZE,
  FORGET_ONE_SIZE,
  FUSE_GETATTR_FH,
  GETATTR_IN_SIZE,
  GETXATTR_IN_SIZE,
  GETXATTR_OUT_SIZE,
  IN_HEADER_SIZE,
  INIT_IN_MIN_SIZE,
  INIT_OUT_SIZE,
  INTERRUPT_IN_SIZE,
  IOCTL_IN_SIZE,
  IOCTL_OUT_SIZE,
  LSEEK_IN_SIZE,
  LSEEK_OUT_SIZE,
  InHeader,
  InitOut,
  KSTATFS_SIZE,
  NOTIFY_INVAL_ENTRY_SIZE,
  NOTIFY_INVAL_INODE_SIZE,
  Notify,
  OPEN_IN_SIZE,
  OPEN_OUT_SIZE,
  OUT_HEADER_SIZE,
  READ_IN_SIZE,
  RELEASE_IN_SIZE,
  direntAlign,
} from './protocol.js';

// ---------------------------------------------------------------------------------------------
// Requests
//
// One decoder per request body. Each checks that the body holds the whole struct: the kernel
// always sends it, but a short body must fail as EPROTO, not be read from a stale buffer.

/** The fixed part of every request (fuse_in_header); `len` is capped at the bytes read. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

/** The header of the request in buf[0, n), or undefined if n cannot hold one. */
export function decodeInHeader(buf: Buffer, n: number): InHeader | undefined {
  if (n < IN_HEADER_SIZE) return undefined;
  return {
    len: Math.min(buf.readUInt32LE(InHeader.len), n),
    opcode: buf.readUInt32LE(InHeader.opcode),
    unique: buf.readBigUInt64LE(InHeader.unique),
    nodeid: buf.readBigUInt64LE(InHeader.nodeid),
    uid: buf.readUInt32LE(InHeader.uid),
    gid: buf.readUInt32LE(InHeader.gid),
    pid: buf.readUInt32LE(InHeader.pid),
  };
}

function need(start: number, end: number, size: number, struct: string): void {
  if (end - start < size) throw new NsviewError(E.EPROTO, `${struct}: ${end - start} bytes, need ${size}`);
}

/**
 * A NUL-terminated name in the request body, copied out (the read buffer is reused as soon as the
 * request is decoded, while the handler may keep the name).
 */
export function decodeName(buf: Buffer, start: number, end: number): Buffer {
  let nul = buf.indexOf(0, start);
  if (nul < 0 || nul > end) nul = end;
  return Buffer.from(buf.subarray(start, nul));
}

/** A body that is only a name (LOOKUP). */
export interface NameIn {
  name: Buffer;
}

export function decodeNameIn(buf: Buffer, start: number, end: number): NameIn {
  return { name: decodeName(buf, start, end) };
}

/** fuse_init_in; flags2 only counts when the kernel sets FUSE_INIT_EXT (7.36+). */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  /** flags | flags2 << 32 */
  flags: bigint;
}

export function decodeInitIn(buf: Buffer, start: number, end: number): InitIn {
  need(start, end, INIT_IN_MIN_SIZE, 'fuse_init_in');
  const major = buf.readUInt32LE(start);
  const minor = buf.readUInt32LE(start + 4);
  // 7.6+ has max_readahead and flags (16 bytes); 7.36+ flags2 (and 64 bytes in all).
  const maxReadahead = end - start >= 16 ? buf.readUInt32LE(start + 8) : 0;
  let flags = end - start >= 16 ? BigInt(buf.readUInt32LE(start + 12)) : 0n;
  if (end - start >= 20 && flags & (1n << 30n)) flags |= BigInt(buf.readUInt32LE(start + 16)) << 32n;
  return { major, minor, maxReadahead, flags };
}

/** fuse_forget_in: the kernel dropped `nlookup` references to the header's node. */
export interface ForgetIn {
  nlookup: bigint;
}

export function decodeForgetIn(buf: Buffer, start: number, end: number): ForgetIn {
  need(start, end, FORGET_IN_SIZE, 'fuse_forget_in');
  return { nlookup: buf.readBigUInt64LE(start) };
}

/** fuse_batch_forget_in and its fuse_forget_one records (as many as the body holds whole). */
export interface ForgetOne {
  nodeid: bigint;
  nlookup: bigint;
}

export function decodeBatchForgetIn(buf: Buffer, start: number, end: number): ForgetOne[] {
  need(start, end, BATCH_FORGET_IN_SIZE, 'fuse_batch_forget_in');
  const count = buf.readUInt32LE(start);
  const out: ForgetOne[] = [];
  for (
    let i = 0, p = start + BATCH_FORGET_IN_SIZE;
    i < count && p + FORGET_ONE_SIZE <= end;
    i++, p += FORGET_ONE_SIZE
  ) {
    out.push({ nodeid: buf.readBigUInt64LE(p), nlookup: buf.readBigUInt64LE(p + 8) });
  }
  return out;
}

/** fuse_interrupt_in: the request (by its unique) the kernel wants interrupted. */
export interface InterruptIn {
  unique: bigint;
}

export function decodeInterruptIn(buf: Buffer, start: number, end: number): InterruptIn {
  need(start, end, INTERRUPT_IN_SIZE, 'fuse_interrupt_in');
  return { unique: buf.readBigUInt64LE(start) };
}

/** fuse_getattr_in: `fh` only when the caller asked through an open file (fstat). */
export interface GetattrIn {
  fh: bigint | undefined;
}

export function decodeGetattrIn(buf: Buffer, start: number, end: number): GetattrIn {
  need(start, end, GETATTR_IN_SIZE, 'fuse_getattr_in');
  return { fh: buf.readUInt32LE(start) & FUSE_GETATTR_FH ? buf.readBigUInt64LE(start + 8) : undefined };
}

/** fuse_open_in (OPEN, OPENDIR): the open(2) flags. */
export interface OpenIn {
  flags: number;
}

export function decodeOpenIn(buf: Buffer, start: number, end: number): OpenIn {
  need(start, end, OPEN_IN_SIZE, 'fuse_open_in');
  return { flags: buf.readUInt32LE(start) };
}

/** fuse_read_in (READ, READDIR, READDIRPLUS). */
export interface ReadIn {
  fh: bigint;
  offset: bigint;
  size: number;
}

export function decodeReadIn(buf: Buffer, start: number, end: number): ReadIn {
  need(start, end, READ_IN_SIZE, 'fuse_read_in');
  return { fh: buf.readBigUInt64LE(start), offset: buf.readBigUInt64LE(start + 8), size: buf.readUInt32LE(start + 16) };
}

/** fuse_release_in (RELEASE, RELEASEDIR). */
export interface ReleaseIn {
  fh: bigint;
}

export function decodeReleaseIn(buf: Buffer, start: number, end: number): ReleaseIn {
  need(start, end, RELEASE_IN_SIZE, 'fuse_release_in');
  return { fh: buf.readBigUInt64LE(start) };
}

/** fuse_access_in: the access(2) mask. */
export interface AccessIn {
  mask: number;
}

export function decodeAccessIn(buf: Buffer, start: number, end: number): AccessIn {
  need(start, end, ACCESS_IN_SIZE, 'fuse_access_in');
  return { mask: buf.readUInt32LE(start) };
}

/** fuse_getxattr_in (GETXATTR with the name after it, LISTXATTR without). size 0 = a size probe. */
export interface XattrIn {
  size: number;
  name: Buffer;
}

export function decodeGetxattrIn(buf: Buffer, start: number, end: number): XattrIn {
  need(start, end, GETXATTR_IN_SIZE, 'fuse_getxattr_in');
  return { size: buf.readUInt32LE(start), name: decodeName(buf, start + GETXATTR_IN_SIZE, end) };
}

export function decodeListxattrIn(buf: Buffer, start: number, end: number): XattrIn {
  need(start, end, GETXATTR_IN_SIZE, 'fuse_getxattr_in');
  return { size: buf.readUInt32LE(start), name: EMPTY };
}

const EMPTY = Buffer.alloc(0);

/** fuse_lseek_in: SEEK_DATA / SEEK_HOLE (the kernel answers the other whences itself). */
export interface LseekIn {
  fh: bigint;
  offset: bigint;
  whence: number;
}

export function decodeLseekIn(buf: Buffer, start: number, end: number): LseekIn {
  need(start, end, LSEEK_IN_SIZE, 'fuse_lseek_in');
  return {
    fh: buf.readBigUInt64LE(start),
    offset: buf.readBigInt64LE(start + 8),
    whence: buf.readUInt32LE(start + 16),
  };
}

/**
 * fuse_ioctl_in. `cmd` is the ioctl number; `outSize` how many bytes the kernel takes back (for
 * a file attribute request from the VFS, exactly that many: the reply must carry all of them).
 * The input data after the struct (in_size bytes) is not kept: no ioctl served takes any.
 */
export interface IoctlIn {
  fh: bigint;
  flags: number;
  cmd: number;
  inSize: number;
  outSize: number;
}

export function decodeIoctlIn(buf: Buffer, start: number, end: number): IoctlIn {
  need(start, end, IOCTL_IN_SIZE, 'fuse_ioctl_in');
  return {
    fh: buf.readBigUInt64LE(start),
    flags: buf.readUInt32LE(start + 8),
    cmd: buf.readUInt32LE(start + 12),
    inSize: buf.readUInt32LE(start + 24),
    outSize: buf.readUInt32LE(start + 28),
  };
}

// ---------------------------------------------------------------------------------------------
// Replies

export function writeOutHeader(buf: Buffer, off: number, len: number, error: number, unique: bigint): void {
  buf.writeUInt32LE(len, off);
  buf.writeInt32LE(error, off + 4);
  buf.writeBigUInt64LE(unique, off + 8);
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** A cache timeout in ms as the kernel's (seconds u64, nanoseconds u32) pair. */
function writeValid(buf: Buffer, secOff: number, nsecOff: number, ms: number): void {
  let sec = 0n;
  let nsec = 0;
  if (ms === Infinity) {
    sec = U64_MAX;
  } else if (ms > 0) {
    const s = Math.floor(ms / 1000);
    sec = BigInt(s);
    nsec = Math.min(999_999_999, Math.floor((ms - s * 1000) * 1e6));
  }
  buf.writeBigUInt64LE(sec, secOff);
  buf.writeUInt32LE(nsec, nsecOff);
}

export function writeAttr(buf: Buffer, off: number, a: Attr): number {
  buf.writeBigUInt64LE(a.ino, off + A.ino);
  buf.writeBigUInt64LE(a.size, off + A.size);
  buf.writeBigUInt64LE(a.blocks, off + A.blocks);
  // Times are signed in the kernel (time64_t), though the header says uint64_t.
  buf.writeBigInt64LE(a.atimeSec, off + A.atime);
  buf.writeBigInt64LE(a.mtimeSec, off + A.mtime);
  buf.writeBigInt64LE(a.ctimeSec, off + A.ctime);
  buf.writeUInt32LE(a.atimeNsec, off + A.atimensec);
  buf.writeUInt32LE(a.mtimeNsec, off + A.mtimensec);
  buf.writeUInt32LE(a.ctimeNsec, off + A.ctimensec);
  buf.writeUInt32LE(a.mode, off + A.mode);
  buf.writeUInt32LE(a.nlink, off + A.nlink);
  buf.writeUInt32LE(a.uid, off + A.uid);
  buf.writeUInt32LE(a.gid, off + A.gid);
  buf.writeUInt32LE(a.rdev, off + A.rdev);
  buf.writeUInt32LE(a.blksize, off + A.blksize);
  buf.writeUInt32LE(0, off + A.flags);
  return off + 88;
}

export function writeEntryOut(buf: Buffer, off: number, e: Entry): number {
  buf.writeBigUInt64LE(e.nodeid, off + EntryOut.nodeid);
  buf.writeBigUInt64LE(e.generation, off + EntryOut.generation);
  writeValid(buf, off + EntryOut.entryValid, off + EntryOut.entryValidNsec, e.entryTimeoutMs);
  writeValid(buf, off + EntryOut.attrValid, off + EntryOut.attrValidNsec, e.attrTimeoutMs);
  writeAttr(buf, off + EntryOut.attr, e.attr);
  return off + ENTRY_OUT_SIZE;
}

/** fuse_entry_out of "no such entry, cache that for `ms`" (nodeid 0) or an uninstantiated dirent. */
function writeZeroEntryOut(buf: Buffer, off: number): void {
  buf.fill(0, off, off + ENTRY_OUT_SIZE);
}

export function writeAttrOut(buf: Buffer, off: number, r: AttrReply): number {
  writeValid(buf, off + AttrOut.attrValid, off + AttrOut.attrValidNsec, r.attrTimeoutMs);
  buf.writeUInt32LE(0, off + AttrOut.attrValidNsec + 4); // dummy
  writeAttr(buf, off + AttrOut.attr, r.attr);
  return off + ATTR_OUT_SIZE;
}

export function writeOpenOut(buf: Buffer, off: number, r: OpenReply): number {
  let flags = 0;
  if (r.directIo) flags |= FOPEN.DIRECT_IO;
  if (r.keepCache) flags |= FOPEN.KEEP_CACHE;
  if (r.cacheDir) flags |= FOPEN.CACHE_DIR;
  if (r.backingId !== undefined) flags |= FOPEN.PASSTHROUGH;
  buf.writeBigUInt64LE(r.fh, off);
  buf.writeUInt32LE(flags, off + 8);
  buf.writeInt32LE(r.backingId ?? 0, off + 12);
  return off + OPEN_OUT_SIZE;
}

export function writeStatfs(buf: Buffer, off: number, s: StatFs): number {
  buf.writeBigUInt64LE(s.blocks, off);
  buf.writeBigUInt64LE(s.bfree, off + 8);
  buf.writeBigUInt64LE(s.bavail, off + 16);
  buf.writeBigUInt64LE(s.files, off + 24);
  buf.writeBigUInt64LE(s.ffree, off + 32);
  buf.writeUInt32LE(s.bsize, off + 40);
  buf.writeUInt32LE(s.namelen, off + 44);
  buf.writeUInt32LE(s.frsize, off + 48);
  buf.fill(0, off + 52, off + KSTATFS_SIZE); // padding, spare[6]
  return off + KSTATFS_SIZE;
}

export function writeGetxattrOut(buf: Buffer, off: number, size: number): number {
  buf.writeUInt32LE(size, off);
  buf.writeUInt32LE(0, off + 4);
  return off + GETXATTR_OUT_SIZE;
}

export function writeLseekOut(buf: Buffer, off: number, offset: bigint): number {
  buf.writeBigInt64LE(offset, off);
  return off + LSEEK_OUT_SIZE;
}

/**
 * fuse_ioctl_out of a finished ioctl (result 0, no retry, no iovecs) followed by its output:
 * `data` cut or zero-padded to exactly `outSize` bytes.
 */
export function writeIoctlOut(buf: Buffer, off: number, data: Buffer, outSize: number): number {
  buf.fill(0, off, off + IOCTL_OUT_SIZE + outSize);
  data.copy(buf, off + IOCTL_OUT_SIZE, 0, Math.min(data.length, outSize));
  return off + IOCTL_OUT_SIZE + outSize;
}

export interface InitReply {
  minor: number;
  maxReadahead: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  /** With FUSE_PASSTHROUGH: how deeply backing files may be stacked (0 otherwise). */
  maxStackDepth: number;
}

/** fuse_init_out, in the size the agreed minor expects. Returns the end offset. */
export function writeInitOut(buf: Buffer, off: number, r: InitReply): number {
  const size = r.minor >= 23 ? INIT_OUT_SIZE : 24;
  buf.fill(0, off, off + size);
  buf.writeUInt32LE(7, off + InitOut.major);
  buf.writeUInt32LE(r.minor, off + InitOut.minor);
  buf.writeUInt32LE(r.maxReadahead, off + InitOut.maxReadahead);
  buf.writeUInt32LE(Number(r.flags & 0xffff_ffffn), off + InitOut.flags);
  buf.writeUInt16LE(r.maxBackground, off + InitOut.maxBackground);
  buf.writeUInt16LE(r.congestionThreshold, off + InitOut.congestionThreshold);
  buf.writeUInt32LE(r.maxWrite, off + InitOut.maxWrite);
  if (size === INIT_OUT_SIZE) {
    buf.writeUInt32LE(r.timeGran, off + InitOut.timeGran);
    buf.writeUInt16LE(r.maxPages, off + InitOut.maxPages);
    buf.writeUInt32LE(Number(r.flags >> 32n), off + InitOut.flags2);
    buf.writeUInt32LE(r.maxStackDepth, off + InitOut.maxStackDepth); // request_timeout stays 0 = none
  }
  return off + size;
}

// ---------------------------------------------------------------------------------------------
// Directories

function isDotOrDotDot(name: Buffer): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

/** Whether this entry carries a lookup reference taken by the handler (see FuseOperations.readdir). */
function holdsLookup(e: DirEntry): boolean {
  return e.entry !== undefined && e.entry.nodeid !== 0n;
}

export interface PackResult {
  /** End offset in the output buffer. */
  end: number;
  /** How many entries (a prefix of the list) were packed. */
  count: number;
}

/**
 * Packs fuse_dirent (READDIR) or fuse_direntplus (READDIRPLUS) records into buf[start, limit).
 * Stops at the first entry that does not fit whole. In plus mode, `.` and `..` are always sent
 * with nodeid 0: the kernel does not instantiate them and so would never forget them.
 */
export function packDirents(
  buf: Buffer,
  start: number,
  limit: number,
  entries: readonly DirEntry[],
  plus: boolean,
): PackResult {
  let off = start;
  let count = 0;
  const fixed = plus ? DIRENTPLUS_SIZE : DIRENT_SIZE;
  for (const e of entries) {
    const namelen = e.name.length;
    const reclen = direntAlign(fixed + namelen);
    if (off + reclen > limit) break;
    let d = off;
    if (plus) {
      if (e.entry !== undefined && !isDotOrDotDot(e.name)) writeEntryOut(buf, off, e.entry);
      else writeZeroEntryOut(buf, off);
      d += ENTRY_OUT_SIZE;
    }
    buf.writeBigUInt64LE(e.ino, d);
    buf.writeBigUInt64LE(e.off, d + 8);
    buf.writeUInt32LE(namelen, d + 16);
    buf.writeUInt32LE(e.type, d + 20);
    e.name.copy(buf, d + DIRENT_SIZE);
    // Zero the alignment padding: stale bytes from an earlier reply must not leak to the kernel.
    buf.fill(0, d + DIRENT_SIZE + namelen, off + reclen);
    off += reclen;
    count++;
  }
  return { end: off, count };
}

/**
 * Lookup references the handler took for entries the kernel will NOT own after a reply that
 * delivered the first `sent` entries (sent = 0 when the reply was never delivered): entries past
 * `sent`, `.`/`..` (sent as nodeid 0), and every entry of a non-plus reply. The engine forgets each.
 */
export function lookupsNotDelivered(entries: readonly DirEntry[], sent: number, plus: boolean): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (!holdsLookup(e)) continue;
    if (!plus || i >= sent || isDotOrDotDot(e.name)) out.push(e.entry!.nodeid);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Notifications (unique 0, the notify code in `error`)

export function encodeInvalEntry(parent: bigint, name: Buffer): Buffer {
  const len = OUT_HEADER_SIZE + NOTIFY_INVAL_ENTRY_SIZE + name.length + 1;
  const buf = Buffer.alloc(len);
  writeOutHeader(buf, 0, len, Notify.INVAL_ENTRY, 0n);
  buf.writeBigUInt64LE(parent, OUT_HEADER_SIZE);
  buf.writeUInt32LE(name.length, OUT_HEADER_SIZE + 8);
  buf.writeUInt32LE(0, OUT_HEADER_SIZE + 12); // flags: not FUSE_EXPIRE_ONLY
  name.copy(buf, OUT_HEADER_SIZE + NOTIFY_INVAL_ENTRY_SIZE); // the kernel wants the NUL too (alloc zeroed it)
  return buf;
}

/** Invalidate attributes and all cached data of `nodeid` (off 0, len 0 = whole file). */
export function encodeInvalInode(nodeid: bigint): Buffer {
  const len = OUT_HEADER_SIZE + NOTIFY_INVAL_INODE_SIZE;
  const buf = Buffer.alloc(len);
  writeOutHeader(buf, 0, len, Notify.INVAL_INODE, 0n);
  buf.writeBigUInt64LE(nodeid, OUT_HEADER_SIZE);
  buf.writeBigInt64LE(0n, OUT_HEADER_SIZE + 8);
  buf.writeBigInt64LE(0n, OUT_HEADER_SIZE + 16);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Requests that modify (read-write sessions)

/** The second NUL-terminated string after a first one (RENAME's new name, SYMLINK's target). */
function twoNames(buf: Buffer, start: number, end: number): [Buffer, Buffer] {
  const first = decodeName(buf, start, end);
  return [first, decodeName(buf, Math.min(start + first.length + 1, end), end)];
}

/** fuse_mkdir_in { mode, umask } + name. The kernel applied the caller's umask to `mode` already. */
export interface MkdirIn {
  mode: number;
  name: Buffer;
}

export function decodeMkdirIn(buf: Buffer, start: number, end: number): MkdirIn {
  need(start, end, 8, 'fuse_mkdir_in');
  return { mode: buf.readUInt32LE(start), name: decodeName(buf, start + 8, end) };
}

/** fuse_mknod_in { mode, rdev, umask, padding } + name. */
export interface MknodIn {
  mode: number;
  rdev: number;
  name: Buffer;
}

export function decodeMknodIn(buf: Buffer, start: number, end: number): MknodIn {
  need(start, end, 16, 'fuse_mknod_in');
  return { mode: buf.readUInt32LE(start), rdev: buf.readUInt32LE(start + 4), name: decodeName(buf, start + 16, end) };
}

/** fuse_create_in { flags, mode, umask, open_flags } + name. */
export interface CreateIn {
  flags: number;
  mode: number;
  name: Buffer;
}

export function decodeCreateIn(buf: Buffer, start: number, end: number): CreateIn {
  need(start, end, 16, 'fuse_create_in');
  return { flags: buf.readUInt32LE(start), mode: buf.readUInt32LE(start + 4), name: decodeName(buf, start + 16, end) };
}

/** SYMLINK: the new entry's name, then the link's target, both NUL-terminated. */
export interface SymlinkIn {
  name: Buffer;
  target: Buffer;
}

export function decodeSymlinkIn(buf: Buffer, start: number, end: number): SymlinkIn {
  const [name, target] = twoNames(buf, start, end);
  return { name, target };
}

/** fuse_rename_in { newdir } or fuse_rename2_in { newdir, flags, padding }, then old and new names. */
export interface RenameIn {
  newdir: bigint;
  flags: number;
  oldName: Buffer;
  newName: Buffer;
}

export function decodeRenameIn(buf: Buffer, start: number, end: number): RenameIn {
  need(start, end, 8, 'fuse_rename_in');
  const [oldName, newName] = twoNames(buf, start + 8, end);
  return { newdir: buf.readBigUInt64LE(start), flags: 0, oldName, newName };
}

export function decodeRename2In(buf: Buffer, start: number, end: number): RenameIn {
  need(start, end, 16, 'fuse_rename2_in');
  const [oldName, newName] = twoNames(buf, start + 16, end);
  return { newdir: buf.readBigUInt64LE(start), flags: buf.readUInt32LE(start + 8), oldName, newName };
}

/** fuse_link_in { oldnodeid } + the new name. */
export interface LinkIn {
  oldnodeid: bigint;
  name: Buffer;
}

export function decodeLinkIn(buf: Buffer, start: number, end: number): LinkIn {
  need(start, end, 8, 'fuse_link_in');
  return { oldnodeid: buf.readBigUInt64LE(start), name: decodeName(buf, start + 8, end) };
}

/** fuse_setattr_in: FATTR_* bits in `valid` say which fields count. */
export interface SetattrIn {
  valid: number;
  fh: bigint;
  size: bigint;
  atime: { sec: bigint; nsec: number };
  mtime: { sec: bigint; nsec: number };
  mode: number;
  uid: number;
  gid: number;
}

export const SETATTR_IN_SIZE = 88;

export function decodeSetattrIn(buf: Buffer, start: number, end: number): SetattrIn {
  need(start, end, SETATTR_IN_SIZE, 'fuse_setattr_in');
  return {
    valid: buf.readUInt32LE(start),
    fh: buf.readBigUInt64LE(start + 8),
    size: buf.readBigUInt64LE(start + 16),
    atime: { sec: buf.readBigInt64LE(start + 32), nsec: buf.readUInt32LE(start + 56) },
    mtime: { sec: buf.readBigInt64LE(start + 40), nsec: buf.readUInt32LE(start + 60) },
    mode: buf.readUInt32LE(start + 68),
    uid: buf.readUInt32LE(start + 76),
    gid: buf.readUInt32LE(start + 80),
  };
}

/** fuse_write_in { fh, offset, size, write_flags, lock_owner, flags, padding } + the data (copied). */
export interface WriteIn {
  fh: bigint;
  offset: bigint;
  data: Buffer;
}

export const WRITE_IN_SIZE = 40;

export function decodeWriteIn(buf: Buffer, start: number, end: number): WriteIn {
  need(start, end, WRITE_IN_SIZE, 'fuse_write_in');
  const size = buf.readUInt32LE(start + 16);
  need(start + WRITE_IN_SIZE, end, size, 'write data');
  const at = start + WRITE_IN_SIZE;
  return {
    fh: buf.readBigUInt64LE(start),
    offset: buf.readBigUInt64LE(start + 8),
    data: Buffer.from(buf.subarray(at, at + size)),
  };
}

/** fuse_fsync_in { fh, fsync_flags, padding }: flag 1 = fdatasync. */
export interface FsyncIn {
  fh: bigint;
  dataOnly: boolean;
}

export function decodeFsyncIn(buf: Buffer, start: number, end: number): FsyncIn {
  need(start, end, 16, 'fuse_fsync_in');
  return { fh: buf.readBigUInt64LE(start), dataOnly: (buf.readUInt32LE(start + 8) & 1) !== 0 };
}

/** fuse_flush_in { fh, unused, padding, lock_owner }. */
export function decodeFlushIn(buf: Buffer, start: number, end: number): { fh: bigint } {
  need(start, end, 24, 'fuse_flush_in');
  return { fh: buf.readBigUInt64LE(start) };
}

/** fuse_fallocate_in { fh, offset, length, mode, padding }. */
export interface FallocateIn {
  fh: bigint;
  offset: bigint;
  length: bigint;
  mode: number;
}

export function decodeFallocateIn(buf: Buffer, start: number, end: number): FallocateIn {
  need(start, end, 32, 'fuse_fallocate_in');
  return {
    fh: buf.readBigUInt64LE(start),
    offset: buf.readBigUInt64LE(start + 8),
    length: buf.readBigUInt64LE(start + 16),
    mode: buf.readUInt32LE(start + 24),
  };
}

/**
 * SETXATTR: fuse_setxattr_in in its compat form { size, flags } (8 bytes: FUSE_SETXATTR_EXT is
 * not agreed), then the name (NUL-terminated) and `size` bytes of value.
 */
export interface SetxattrIn {
  flags: number;
  name: Buffer;
  value: Buffer;
}

export function decodeSetxattrIn(buf: Buffer, start: number, end: number): SetxattrIn {
  need(start, end, 8, 'fuse_setxattr_in');
  const size = buf.readUInt32LE(start);
  const name = decodeName(buf, start + 8, end);
  const at = start + 8 + name.length + 1;
  need(at, end, size, 'xattr value');
  return { flags: buf.readUInt32LE(start + 4), name, value: Buffer.from(buf.subarray(at, at + size)) };
}

/** fuse_write_out { size, padding }. */
export function writeWriteOut(buf: Buffer, off: number, size: number): number {
  buf.writeUInt32LE(size, off);
  buf.writeUInt32LE(0, off + 4);
  return off + 8;
}

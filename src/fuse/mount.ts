/**
 * Mounting, finding, detaching and aborting FUSE mounts.
 *
 * The daemon serves its own mount from its main thread, so nothing here may touch a FUSE mount
 * with a synchronous filesystem call: it would wait for an answer only this thread can give. We
 * learn about mounts from /proc/self/mountinfo (procfs: no FUSE request involved), act on them with
 * mount(2)/umount2(2) (no request for plain `fuse` mounts; only fuseblk sends DESTROY), and probe a
 * foreign server's liveness from a child process that we can abandon if it hangs.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os, { constants } from 'node:os';
import path from 'node:path';
import { MNT, MS, mount, umount2 } from '../sys/libc.js';
import { NsviewError, errnoOf } from '../sys/errors.js';
import { bytesToText, parseMountinfo as parseMountinfoEntries } from '../sys/mountinfo.js';
import { makedev } from '../sys/dev.js';

const E = constants.errno;

/** One line of /proc/self/mountinfo, the parts nsview needs. */
export interface MountInfo {
  mountId: number;
  parentId: number;
  /** st_dev as stat(2) reports it (glibc's dev_t encoding of major:minor). */
  dev: bigint;
  major: number;
  minor: number;
  /** Mount point, octal escapes decoded, bytes (latin1: see sys/mountinfo.ts). */
  mountpoint: string;
  fstype: string;
  source: string;
}

/** The parts of each mountinfo line nsview needs (paths stay bytes: see sys/mountinfo.ts). */
export function parseMountinfo(text: string): MountInfo[] {
  return parseMountinfoEntries(text).map((e) => ({
    mountId: e.id,
    parentId: e.parentId,
    dev: makedev(e.major, e.minor),
    major: e.major,
    minor: e.minor,
    mountpoint: e.mountPoint,
    fstype: bytesToText(e.fstype),
    source: bytesToText(e.source),
  }));
}

/** Read as latin1 so every byte of a non-UTF-8 path survives as one character. */
export function readMountinfo(): MountInfo[] {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'latin1'));
}

/**
 * The absolute, symlink-free path the kernel shows in mountinfo. Only the parent is resolved: the
 * mountpoint itself may be a dead FUSE mount (stat gives ENOTCONN) or, worse, a hung one.
 */
export function canonicalMountpoint(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  if (abs === '/') return abs;
  return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
}

/** All mounts stacked on `mountpoint`, bottom first. */
function mountsAt(canonical: string, all = readMountinfo()): MountInfo[] {
  const key = Buffer.from(canonical).toString('latin1');
  const here = all.filter((m) => m.mountpoint === key);
  // A mount stacked on another has it as parent; order bottom -> top by following that chain.
  const ids = new Set(here.map((m) => m.mountId));
  const out: MountInfo[] = [];
  let cur = here.find((m) => !ids.has(m.parentId));
  while (cur !== undefined) {
    out.push(cur);
    const id: number = cur.mountId;
    cur = here.find((m) => m.parentId === id);
  }
  return out;
}

/** The topmost mount on `mountpoint` (the one path lookups reach), or undefined. */
export function findMount(mountpoint: string): MountInfo | undefined {
  const stack = mountsAt(canonicalMountpoint(mountpoint));
  return stack[stack.length - 1];
}

export function isFuse(m: MountInfo): boolean {
  return (
    m.fstype === 'fuse' || m.fstype.startsWith('fuse.') || m.fstype === 'fuseblk' || m.fstype.startsWith('fuseblk.')
  );
}

/** fusectl names a connection by the kernel's internal dev_t (MKDEV: major << 20 | minor). */
function connectionId(m: Pick<MountInfo, 'major' | 'minor'>): number {
  return m.major * 2 ** 20 + m.minor;
}

export interface FuseMountRequest {
  fd: number;
  mountpoint: string;
  fsname: string;
  subtype: string;
  readOnly: boolean;
  allowOther: boolean;
  defaultPermissions: boolean;
  noexec: boolean;
  maxRead: number;
}

/**
 * mount(2) the FUSE device `fd` on `mountpoint` (canonical) and return the new mount's entry.
 * The kernel queues INIT and returns: the caller must start serving right away.
 */
export function mountDevice(req: FuseMountRequest): MountInfo {
  const before = new Set(mountsAt(req.mountpoint).map((m) => m.mountId));
  const data = [
    `fd=${req.fd}`,
    'rootmode=40000',
    `user_id=${process.getuid?.() ?? 0}`,
    `group_id=${process.getgid?.() ?? 0}`,
    ...(req.allowOther ? ['allow_other'] : []),
    ...(req.defaultPermissions ? ['default_permissions'] : []),
    `max_read=${req.maxRead}`,
  ].join(',');
  const flags = MS.NOSUID | MS.NODEV | (req.readOnly ? MS.RDONLY : 0) | (req.noexec ? MS.NOEXEC : 0);
  mount(req.fsname, req.mountpoint, `fuse.${req.subtype}`, flags, data);
  const fstype = `fuse.${req.subtype}`;
  const mine = mountsAt(req.mountpoint).filter((m) => !before.has(m.mountId) && m.fstype === fstype);
  const top = mine[mine.length - 1];
  if (top === undefined) {
    // Cannot happen unless someone raced us; without st_dev we cannot serve safely.
    detach(req.mountpoint);
    throw new NsviewError(E.EIO, `mounted ${req.mountpoint} but cannot find it in /proc/self/mountinfo`);
  }
  return top;
}

/** umount2(MNT_DETACH). True if something was detached, false if nothing was mounted there. */
export function detach(mountpoint: string): boolean {
  try {
    umount2(mountpoint, MNT.DETACH);
    return true;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === E.EINVAL || errno === E.ENOENT) return false; // not a mount point (any more)
    throw e;
  }
}

/**
 * Run `fn` with the path of a fusectl mount. An existing one is used as is; otherwise fusectl (a
 * single-instance filesystem) is mounted on a private temporary directory and detached after, so
 * we leave the host as we found it and never race another process over the shared location.
 * Returns undefined if fusectl is unavailable (module not loaded, no privilege...).
 */
function withFusectl<T>(fn: (dir: string) => T): T | undefined {
  const existing = readMountinfo().find((m) => m.fstype === 'fusectl');
  if (existing !== undefined) return fn(Buffer.from(existing.mountpoint, 'latin1').toString());
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsview-fusectl-'));
  } catch {
    return undefined;
  }
  try {
    try {
      mount('fusectl', dir, 'fusectl', MS.NOSUID | MS.NODEV | MS.NOEXEC, '');
    } catch {
      return undefined;
    }
    try {
      return fn(dir);
    } finally {
      detach(dir);
    }
  } finally {
    fs.rmdirSync(dir);
  }
}

/**
 * Abort a FUSE connection through fusectl: every request fails, blocked readers return ENODEV,
 * and the superblock can go once its last user leaves. False if fusectl is unavailable.
 * A connection that is already gone counts as aborted.
 */
export function abortConnection(m: Pick<MountInfo, 'major' | 'minor'>): boolean {
  const done = withFusectl((dir) => {
    try {
      fs.writeFileSync(path.join(dir, String(connectionId(m)), 'abort'), '1');
    } catch (e) {
      if (errnoOf(e) !== E.ENOENT) throw e;
    }
    return true;
  });
  return done === true;
}

/** What a statfs(2) on a FUSE mount from another process says about its server. */
export type Liveness = 'alive' | 'dead' | 'unresponsive';

const PROBE_SCRIPT = "require('fs').statfs(process.argv[1], (e) => process.stdout.write(e ? String(e.code) : 'OK'))";

/**
 * statfs(2) always reaches the server (no cache answers it). It runs in a child process: if the
 * server hangs, the child hangs, not one of our threadpool threads; we stop waiting and let it go
 * (it may stay in the kernel until that server answers or dies).
 */
export function probeServer(mountpoint: string, timeoutMs: number): Promise<Liveness> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', PROBE_SCRIPT, mountpoint], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    let settled = false;
    const finish = (v: Liveness): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.unref();
      finish('unresponsive');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', () => finish('unresponsive'));
    child.on('close', () => {
      // ENOTCONN: connection aborted (server gone); ECONNABORTED: same, with FUSE_ABORT_ERROR.
      finish(out === 'ENOTCONN' || out === 'ECONNABORTED' ? 'dead' : 'alive');
    });
  });
}

export interface StaleOptions {
  /** How long a live-looking server may take to answer statfs. */
  timeoutMs?: number;
}

/**
 * Clean the mount point before mounting: detach FUSE mounts on it whose server is gone (the
 * "Transport endpoint is not connected" leftovers of a crash) and return true if any was.
 * A FUSE mount with a live (or hung) server is somebody's: throws EBUSY. Non-FUSE mounts are left
 * alone (false).
 */
export async function cleanStaleMount(mountpoint: string, opts: StaleOptions = {}): Promise<boolean> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const canonical = canonicalMountpoint(mountpoint);
  let cleaned = false;
  // Crashes can stack several dead mounts on one path; each round removes the top one.
  for (let round = 0; round < 16; round++) {
    const stack = mountsAt(canonical);
    const top = stack[stack.length - 1];
    if (top === undefined || !isFuse(top)) return cleaned;
    const state = await probeServer(canonical, timeoutMs);
    if (state !== 'dead') {
      const how = state === 'alive' ? 'its server answers' : `its server did not answer within ${timeoutMs} ms`;
      throw new NsviewError(
        E.EBUSY,
        `${canonical} is already mounted (${top.fstype} "${top.source}", server pid unknown; ${how}); ` +
          `stop that server or run \`nsview unmount ${canonical}\``,
      );
    }
    // Make sure the connection is aborted too (it is, if the server exited), then detach.
    abortConnection(top);
    if (!detach(canonical)) return cleaned;
    cleaned = true;
  }
  return cleaned;
}

/**
 * `nsview unmount` when the daemon is gone or stuck: detach the FUSE mount on `mountpoint` and
 * abort its connection so anything blocked on it (processes, a hung daemon's readers) is released.
 * Returns false if no mount is there; throws EINVAL if the mount there is not FUSE.
 */
export async function unmountMountpoint(mountpoint: string): Promise<boolean> {
  const canonical = canonicalMountpoint(mountpoint);
  const stack = mountsAt(canonical);
  const top = stack[stack.length - 1];
  if (top === undefined) return false;
  if (!isFuse(top)) throw new NsviewError(E.EINVAL, `${canonical} is a ${top.fstype} mount, not FUSE`);
  const detached = detach(canonical);
  abortConnection(top);
  return detached;
}

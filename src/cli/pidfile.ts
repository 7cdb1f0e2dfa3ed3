/**
 * Where a running daemon records itself, so `nsview unmount` can find and stop it.
 *
 * One pid file per mountpoint, named by escaping the mountpoint the way `systemd-escape --path`
 * does: the escaping is one-to-one, so `/tmp/x-y` (`tmp-x\x2dy.pid`) and `/tmp/x/y`
 * (`tmp-x-y.pid`) never share a file. A pid file alone proves nothing (the daemon may have died
 * and its pid been reused), so before anyone signals the pid it names, `daemonOf` checks that
 * this very process holds this very pid file open: the daemon keeps the file's fd for its whole
 * life, and /proc/PID/fd shows it, which no recycled pid can fake.
 *
 * The directory is root's alone (0700) and the files are opened with O_NOFOLLOW, so nobody else
 * can plant a symlink that makes the daemon truncate another file or makes the CLI read one.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const RUN_DIR = '/run/nsview';

/** Names longer than this are hashed: a file name has at most 255 bytes. */
const MAX_ESCAPED = 240;

/** `systemd-escape --path`: '/' between components becomes '-', anything unusual \xNN. */
export function escapePath(p: string): string {
  const trimmed = path.resolve(p).replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '-';
  let out = '';
  const bytes = Buffer.from(trimmed);
  for (const [i, b] of bytes.entries()) {
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The mountpoint as the kernel names it (parent resolved), so /a/link/mnt and /a/real/mnt agree. */
function canonical(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  try {
    return abs === '/' ? abs : path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

export function pidFileFor(mountpoint: string): string {
  let name = escapePath(canonical(mountpoint));
  if (name.length > MAX_ESCAPED) {
    // Collision-free in practice, and still one file per mountpoint.
    name = `${name.slice(0, 100)}-${createHash('sha256').update(canonical(mountpoint)).digest('hex')}`;
  }
  return path.join(RUN_DIR, `${name}.pid`);
}

/** Create RUN_DIR as root's private directory, or refuse one that is not (a symlink, someone else's). */
function ensureRunDir(): void {
  try {
    fs.mkdirSync(RUN_DIR, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(RUN_DIR);
  if (!st.isDirectory() || st.uid !== 0) throw new Error(`${RUN_DIR} is not a directory owned by root; remove it`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(RUN_DIR, 0o700);
}

const { O_WRONLY, O_RDONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_CLOEXEC } = fs.constants as typeof fs.constants & {
  O_CLOEXEC?: number;
};

/** This process's open pid files, kept open for life: their fds are the proof `daemonOf` checks. */
const held = new Map<string, number>();

export function writePidFile(mountpoint: string): void {
  ensureRunDir();
  const file = pidFileFor(mountpoint);
  const fd = fs.openSync(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | (O_CLOEXEC ?? 0), 0o600);
  fs.writeSync(fd, `${process.pid}\n`);
  const old = held.get(file);
  if (old !== undefined) fs.closeSync(old);
  held.set(file, fd);
}

export function readPidFile(mountpoint: string): number | undefined {
  return readPid(pidFileFor(mountpoint));
}

function readPid(file: string): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(32);
    const text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
    return /^[1-9]\d{0,9}\n?$/.test(text) ? Number(text.trim()) : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Does process `pid` hold `file` (the same inode) open? */
function holds(pid: number, file: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return false;
  }
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const s = fs.statSync(`/proc/${pid}/fd/${fd}`);
      if (s.ino === st.ino && s.dev === st.dev) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

/**
 * The pid of the live daemon of `mountpoint`, proven by its holding the pid file open; undefined
 * when there is none (no file, a dead or recycled pid).
 */
export function daemonOf(mountpoint: string): number | undefined {
  return verifiedPid(pidFileFor(mountpoint));
}

function verifiedPid(file: string): number | undefined {
  const pid = readPid(file);
  return pid !== undefined && holds(pid, file) ? pid : undefined;
}

/**
 * Every live daemon on this host, for display only (nothing is signalled): pid files proven by
 * their holder, and those whose pid runs an nsview command line (a daemon of an older version,
 * which did not hold its pid file open, still has sandbox threads to leave out of `nsview list`).
 */
export function runningDaemons(): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(RUN_DIR);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    if (!n.endsWith('.pid')) continue;
    const file = path.join(RUN_DIR, n);
    const pid = readPid(file);
    if (pid !== undefined && (holds(pid, file) || runsNsview(pid))) out.push(pid);
  }
  return out;
}

function runsNsview(pid: number): boolean {
  try {
    return fs
      .readFileSync(`/proc/${pid}/cmdline`, 'latin1')
      .split('\0')
      .some((a) => a.endsWith('/bin/nsview'));
  } catch {
    return false;
  }
}

export function removePidFile(mountpoint: string, onlyIfPid = process.pid): void {
  const file = pidFileFor(mountpoint);
  if (readPid(file) !== onlyIfPid) return;
  // Another process's file is removed only once that process no longer holds it.
  if (onlyIfPid !== process.pid && holds(onlyIfPid, file)) return;
  fs.rmSync(file, { force: true });
  const fd = held.get(file);
  if (fd !== undefined) {
    held.delete(file);
    fs.closeSync(fd);
  }
}

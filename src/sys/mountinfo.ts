/**
 * `/proc/PID/mountinfo` (proc(5)), parsed byte for byte. The one parser of it in nsview: the FUSE
 * adapter finds its own mount with it, discovery finds nsfs pins with it, the tests clean up
 * with it.
 *
 * Paths in mountinfo are bytes, not text: a mount point need not be valid UTF-8. Read the file
 * as latin1 (one char per byte) and every path field here stays such a byte string, so it can
 * be handed back to the kernel exactly (`Buffer.from(s, 'latin1')`); `bytesToText` turns one
 * into text for people. Pure functions: no I/O here.
 */

export interface MountinfoEntry {
  /** Mount ID (field 1). */
  id: number;
  /** Parent mount ID (field 2); the namespace root's parent is not listed. */
  parentId: number;
  /** `major:minor` of the filesystem (field 3; for FUSE the minor is the connection number). */
  dev: string;
  major: number;
  minor: number;
  /** Root of the mount within its filesystem (field 4), bytes; `mnt:[N]` for an nsfs pin. */
  root: string;
  /** Mount point relative to the reading process's root (field 5), bytes. */
  mountPoint: string;
  /** Per-mount options (field 6). */
  options: string;
  /** Optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`). */
  optionalFields: string[];
  /** Filesystem type, bytes (`fuse.nsview`, `ext4`, ...). */
  fstype: string;
  /** Mount source, bytes; `none` style placeholders kept as is. */
  source: string;
  /** Per-superblock options. */
  superOptions: string;
}

/** Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash). */
export function unescapeMountinfo(s: string): string {
  return s.includes('\\')
    ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8) & 0xff))
    : s;
}

/** A byte string (latin1) as text: UTF-8 decoded, U+FFFD where the bytes are not UTF-8. */
export function bytesToText(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'latin1').toString('utf8');
}

/** Parses one line (of latin1 text); undefined for a malformed one. */
export function parseMountinfoLine(line: string): MountinfoEntry | undefined {
  const f = line.split(' ');
  const sep = f.indexOf('-', 6);
  if (f.length < 10 || sep < 0 || f.length < sep + 4) return undefined;
  const id = Number(f[0]);
  const parentId = Number(f[1]);
  const dev = f[2]!;
  const colon = dev.indexOf(':');
  if (!Number.isInteger(id) || !Number.isInteger(parentId) || colon < 0) return undefined;
  return {
    id,
    parentId,
    dev,
    major: Number(dev.slice(0, colon)),
    minor: Number(dev.slice(colon + 1)),
    root: unescapeMountinfo(f[3]!),
    mountPoint: unescapeMountinfo(f[4]!),
    options: f[5]!,
    optionalFields: f.slice(6, sep),
    fstype: unescapeMountinfo(f[sep + 1]!),
    source: unescapeMountinfo(f[sep + 2]!),
    superOptions: f.slice(sep + 3).join(' '),
  };
}

/** Parses mountinfo read as latin1; malformed lines (a torn read) are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const e = parseMountinfoLine(line);
    if (e) out.push(e);
  }
  return out;
}

/**
 * `/proc/PID/mountinfo` parsing (proc(5)), mount visibility, and nsfs bind mounts of mount
 * namespaces. Pure functions on text: no I/O here.
 */

export interface MountinfoEntry {
  /** Mount ID (field 1). */
  id: number;
  /** Parent mount ID (field 2); the namespace root's parent is not listed. */
  parentId: number;
  /** `major:minor` of the filesystem (field 3). */
  dev: string;
  major: number;
  minor: number;
  /** Root of the mount within its filesystem (field 4), unescaped; `mnt:[N]` for an nsfs pin. */
  root: string;
  /** Mount point relative to the reading process's root (field 5), unescaped. */
  mountPoint: string;
  /** Per-mount options (field 6). */
  options: string;
  /** Optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`). */
  optionalFields: string[];
  fstype: string;
  /** Mount source, unescaped; `none` style placeholders kept as is. */
  source: string;
  /** Per-superblock options. */
  superOptions: string;
}

/**
 * Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
 * backslash, any `\ooo`). Escaped bytes are reassembled with the unescaped text and decoded as
 * UTF-8 (a path that is not valid UTF-8 gets U+FFFD where its bad bytes were).
 */
export function unescapeMountinfo(s: string): string {
  if (!s.includes('\\')) return s;
  const parts: Buffer[] = [];
  let last = 0;
  const re = /\\([0-7]{3})/g;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (m.index > last) parts.push(Buffer.from(s.slice(last, m.index), 'utf8'));
    parts.push(Buffer.of(parseInt(m[1]!, 8) & 0xff));
    last = m.index + m[0].length;
  }
  if (last < s.length) parts.push(Buffer.from(s.slice(last), 'utf8'));
  return Buffer.concat(parts).toString('utf8');
}

/** Parses one line; undefined for a malformed one. */
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

/** Parses mountinfo text; malformed lines (a torn read) are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const e = parseMountinfoLine(line);
    if (e) out.push(e);
  }
  return out;
}

/** `mnt:[N]` -> N, else undefined. */
export function parseMntNsLink(s: string): number | undefined {
  if (!s.startsWith('mnt:[') || !s.endsWith(']')) return undefined;
  const n = Number(s.slice(5, -1));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Ids of the mounts reachable by path: not overmounted in place (a mount stacked on its root at
 * the same mount point) and not hidden by an overmount higher up the path. Each mount's point
 * is resolved from the namespace root, mount by mount, the way a path walk crosses mounts.
 * When the table has no root (`/`) mount (read by a chrooted process), nothing can be told
 * apart and every mount is returned.
 */
export function visibleMountIds(entries: MountinfoEntry[]): Set<number> {
  const all = new Set(entries.map((e) => e.id));
  const children = new Map<number, MountinfoEntry[]>();
  for (const e of entries) {
    if (e.parentId === e.id) continue;
    let list = children.get(e.parentId);
    if (!list) children.set(e.parentId, (list = []));
    list.push(e);
  }
  const root = entries.find((e) => e.mountPoint === '/' && (!all.has(e.parentId) || e.parentId === e.id));
  if (!root) return all;

  // The mount last stacked at `path` on top of `m` (mount order: later lines are newer).
  const childAt = (m: MountinfoEntry, path: string): MountinfoEntry | undefined => {
    const list = children.get(m.id);
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.mountPoint === path) return list[i];
    return undefined;
  };
  const top = (m: MountinfoEntry): MountinfoEntry => {
    const seen = new Set<number>();
    for (let c = childAt(m, m.mountPoint); c && !seen.has(c.id); c = childAt(m, m.mountPoint)) {
      seen.add(m.id);
      m = c;
    }
    return m;
  };
  const resolve = (path: string): MountinfoEntry => {
    let cur = top(root);
    if (path === '/') return cur;
    let prefix = '';
    for (const comp of path.split('/')) {
      if (comp === '') continue;
      prefix += '/' + comp;
      const c = childAt(cur, prefix);
      if (c) cur = top(c);
    }
    return cur;
  };
  const visible = new Set<number>();
  const memo = new Map<string, number>();
  for (const e of entries) {
    let id = memo.get(e.mountPoint);
    if (id === undefined) memo.set(e.mountPoint, (id = resolve(e.mountPoint).id));
    if (id === e.id) visible.add(e.id);
  }
  return visible;
}

export interface NsfsMountNsPin {
  /** Inode of the pinned mount namespace. */
  inode: number;
  /** Where it is mounted, relative to the namespace root (as the reader saw it). */
  mountPoint: string;
  /** False when overmounted: a path walk to mountPoint reaches another mount. */
  visible: boolean;
}

/** nsfs bind mounts of mount namespaces (root field `mnt:[N]`) in a parsed mountinfo. */
export function mountNamespacePins(entries: MountinfoEntry[]): NsfsMountNsPin[] {
  const pins = entries.filter((e) => e.fstype === 'nsfs' && e.root.startsWith('mnt:['));
  if (pins.length === 0) return [];
  const visible = visibleMountIds(entries);
  const out: NsfsMountNsPin[] = [];
  for (const e of pins) {
    const inode = parseMntNsLink(e.root);
    if (inode !== undefined) out.push({ inode, mountPoint: e.mountPoint, visible: visible.has(e.id) });
  }
  return out;
}

/**
 * Mount visibility and nsfs bind mounts of mount namespaces, from a parsed mountinfo
 * (src/sys/mountinfo.ts: byte strings, so a pin at a path that is not UTF-8 can be opened).
 * Pure functions: no I/O here.
 */
import type { MountinfoEntry } from '../sys/mountinfo.js';

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
  /** Where it is mounted, relative to the namespace root (as the reader saw it), bytes (latin1). */
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

/** The filesystem type nsview mounts show in mountinfo (fuse.<subtype>). */
export const NSVIEW_FSTYPE = 'fuse.nsview';

/** Devices (major, minor) of the nsview mounts in a parsed mountinfo. */
export function nsviewMountDevices(entries: MountinfoEntry[]): Array<[number, number]> {
  return entries.filter((e) => e.fstype === NSVIEW_FSTYPE).map((e) => [e.major, e.minor]);
}

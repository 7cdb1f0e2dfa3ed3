/**
 * The symlink view: a symlink inside a namespace, rewritten so that a host program following it
 * from its place in the view stays inside that namespace's directory and reaches what the
 * container would reach. Runs in io workers; the caller has checked the root's guard.
 */
import { StatxView, STATX_RECORD, setStatxSize, statxOfFd } from '../sys/stat.js';
import { components, isDot, isDotDot } from './names.js';
import { isPseudoFs } from './pseudo.js';
import { readLinkInRoot } from './lookup.js';
import { resolveInRoot } from './in-root.js';
import { fsTypeOf } from './mount-fs-type.js';
import { O, close, readlinkat } from '../sys/libc.js';

/**
 * What rewriting needs to know of the view. In rewrite mode a symlink's st_size must be the
 * length of the target readlink will show (the kernel and programs size their buffers by it):
 * with this given, io workers rewrite as they stat.
 */
export interface LinkView {
  /** Device of the view's own mount (kernelDev): a directory on it is never entered. */
  ownDev: number;
  /** Devices of other nsview mounts (kernelDev): never entered either. */
  viewDevs?: readonly number[];
  /** Whether pseudo filesystems are shown (else their mount roots are opaque). */
  pseudo: boolean;
}

/** Components left to resolve; shared by the links of one batch, decremented as they go. */
export interface LinkBudget {
  steps: number;
}

/** Components one rewrite may resolve (each one openat2 + statx). */
const LINK_STEPS = 512;
/** As the kernel's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;
const SLASH = 0x2f;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

function joinComponents(parts: Buffer[]): Buffer {
  return Buffer.from(parts.map((p) => p.toString('latin1')).join('/'), 'latin1');
}

function endsWithSlash(b: Buffer): boolean {
  return b.length > 0 && b[b.length - 1] === SLASH;
}

/**
 * The symlink at `path`, rewritten.
 *
 * The target is resolved here, component by component, the way the container's kernel would
 * (absolute = from the namespace root, `..` clamped at the root, links followed up to 40), giving
 * a canonical path with no symlinks or dots in it. The link's own directory is canonical too (a
 * node path), so the shortest relative path from one to the other is emitted: its leading `..`
 * never outnumber the link's depth and no other `..` appears. Past a component that cannot be
 * resolved (missing, not a directory, an opaque pseudo filesystem) the rest is appended with each
 * `..` turned into `.`: the host's walk fails where the container's would, and even if the
 * container races to create it, nothing can climb out. A link that loops inside the container
 * points at itself, so it still loops (ELOOP) on the host.
 */
export function viewLink(
  rootFd: number,
  path: Buffer,
  links: LinkView,
  budget: LinkBudget = { steps: LINK_STEPS },
): Uint8Array {
  const linkParts = components(path);
  const linkDir = linkParts.slice(0, -1);
  const first = Buffer.from(readLinkInRoot(rootFd, path));
  let stack = first[0] === SLASH ? [] : [...linkDir];
  // The directory `stack` names, opened: each component is then one lookup in its parent
  // instead of a walk from the root.
  const dir = new DirCursor(rootFd);
  let pending = components(first);
  // A target ending in '/' must resolve to a directory (else ENOTDIR): keep that demand.
  let mustBeDir = endsWithSlash(first);
  let followed = 0;
  let unresolved = false;
  try {
    while (pending.length > 0) {
      const c = pending.shift()!;
      if (unresolved) {
        stack.push(isDotDot(c) ? DOT : c);
        continue;
      }
      if (isDot(c)) continue;
      if (isDotDot(c)) {
        stack.pop();
        dir.moved();
        continue;
      }
      // Bounded work per link: a container can plant chains of 4 KB targets full of `x/..`; past
      // the budget the link is shown as pointing at itself (ELOOP when followed).
      if (--budget.steps < 0) {
        stack = linkParts;
        mustBeDir = false;
        break;
      }
      let st: StatxView;
      let fsType = 0;
      let target: Buffer | undefined;
      let fd: number;
      try {
        // One component, no symlink followed (NODE_PATH, O_NOFOLLOW), in the directory the
        // canonical `stack` names: the same file a walk of `stack/c` from the root finds.
        fd = resolveInRoot(dir.open(stack), c, { nodePath: true });
      } catch {
        stack.push(c);
        unresolved = true;
        continue;
      }
      try {
        const raw = statxOfFd(fd);
        st = new StatxView(Buffer.from(raw.buffer, raw.byteOffset, STATX_RECORD));
        fsType = fsTypeOf(fd, st);
        // A link we may not read (a magic link of a process we cannot inspect) is unresolvable.
        if (st.isSymlink) target = readLinkAt(fd, EMPTY_NAME);
      } catch {
        close(fd);
        stack.push(c);
        unresolved = true;
        continue;
      }
      if (target) {
        close(fd);
        if (++followed > MAX_SYMLINKS) {
          stack = linkParts;
          mustBeDir = false;
          break;
        }
        if (target[0] === SLASH) {
          stack = [];
          dir.moved();
        }
        if (pending.length === 0 && endsWithSlash(target)) mustBeDir = true;
        pending = [...components(target), ...pending];
        continue;
      }
      stack.push(c);
      if (st.isDir) dir.enter(fd);
      else {
        close(fd);
        dir.moved();
      }
      const opaque =
        st.isDir &&
        ((st.isMountRoot && !links.pseudo && isPseudoFs(fsType)) ||
          st.dev === links.ownDev ||
          (links.viewDevs?.includes(st.dev) ?? false));
      if (opaque || (!st.isDir && pending.length > 0)) unresolved = true;
      if (!st.isDir && pending.length === 0 && mustBeDir) unresolved = true;
    }
  } finally {
    dir.release();
  }
  // 'x/.' fails with ENOTDIR where x is not a directory, and is x itself where it is one.
  if (mustBeDir) stack.push(DOT);
  return Uint8Array.prototype.slice.call(relativePath(linkDir, stack));
}

const EMPTY_NAME = Buffer.from([0]);
const linkBuf = Buffer.alloc(4096);

/** The target of the symlink `name` (NUL-terminated; empty: the one `fd` holds) in `fd`. */
function readLinkAt(fd: number, name: Buffer): Buffer {
  const n = readlinkat(fd, name, linkBuf);
  return Buffer.from(linkBuf.subarray(0, n));
}

/**
 * The open directory a rewrite is in: the fd of the directory its canonical stack names, kept as
 * the walk goes down (the fd of the component just stat'ed), dropped when it goes up or jumps
 * (reopened from the root, as one in-root walk of the stack, only if another lookup follows).
 */
class DirCursor {
  private fd: number | undefined;

  constructor(private readonly rootFd: number) {}

  open(stack: Buffer[]): number {
    if (stack.length === 0) return this.rootFd;
    this.fd ??= resolveInRoot(this.rootFd, joinComponents(stack), { nodePath: true, flags: O.PATH | O.DIRECTORY });
    return this.fd;
  }

  /** The stack went one directory down, to the directory `fd` (ours now) holds. */
  enter(fd: number): void {
    this.release();
    this.fd = fd;
  }

  /** The stack changed otherwise: the fd no longer matches. */
  moved(): void {
    this.release();
  }

  release(): void {
    if (this.fd !== undefined) close(this.fd);
    this.fd = undefined;
  }
}

/** The shortest relative path from canonical directory `from` to canonical path `to`. */
function relativePath(from: Buffer[], to: Buffer[]): Buffer {
  let common = 0;
  while (common < from.length && common < to.length && from[common]!.equals(to[common]!)) common++;
  const parts = [...Array<Buffer>(from.length - common).fill(DOTDOT), ...to.slice(common)];
  return parts.length === 0 ? Buffer.from(DOT) : joinComponents(parts);
}

/**
 * If the statx record `rec` (of the file at `path`) is a symlink's: set its st_size to the length
 * of the rewritten target (left as stored if rewriting fails or the budget is spent).
 */
export function sizeLinkAsShown(rootFd: number, path: Buffer, rec: Buffer, links: LinkView, budget?: LinkBudget): void {
  if (!new StatxView(rec).isSymlink) return;
  if (budget && budget.steps <= 0) return;
  const mine = { steps: Math.min(LINK_STEPS, budget?.steps ?? LINK_STEPS) };
  const given = mine.steps;
  try {
    setStatxSize(rec, BigInt(viewLink(rootFd, path, links, mine).length));
  } catch {
    // unreadable link: keep the stored size
  } finally {
    if (budget) budget.steps -= given - Math.max(0, mine.steps);
  }
}

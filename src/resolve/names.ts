import { NsviewError, E } from '../sys/errors.js';

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * A name handed to us by the kernel (or read from getdents) must be one path component: never
 * empty, never containing '/' or NUL, never '.' or '..'. Anything else could make a joined path
 * mean something other than "this entry of this directory".
 */
/**
 * Would assertComponent accept `name`? For names a directory listing hands us: a listing shows
 * only names a lookup would accept (a hostile FUSE server can list '/', NUL, 600-byte names).
 */
export function isComponent(name: Buffer): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT))) return false;
  return !name.includes(SLASH) && !name.includes(0);
}

export function assertComponent(name: Buffer): void {
  if (name.length === 0 || name.length > 255) throw new NsviewError(E.ENOENT, 'bad name length');
  if (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT))) {
    throw new NsviewError(E.ENOENT, 'dot name');
  }
  if (name.includes(SLASH) || name.includes(0)) throw new NsviewError(E.ENOENT, 'name with / or NUL');
}

/**
 * An in-root path as the view keeps it: relative to the namespace root ('' = the root), components
 * joined by '/', each byte one latin1 character. Byte-exact like a Buffer, but one compact string
 * that doubles as a map key and clones cheaply to the io workers.
 */
export type InRootPath = string;

/** Join an in-root path and one validated component (latin1, see InRootPath). */
export function childOf(parent: InRootPath, name: string): InRootPath {
  return parent.length === 0 ? name : `${parent}/${name}`;
}

/** The bytes of an in-root path, for the kernel. */
export function pathBytes(path: InRootPath): Buffer {
  return Buffer.from(path, 'latin1');
}

/** Split a path into its non-empty components (bytes kept exactly). */
export function components(path: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === SLASH) {
      if (i > start) out.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

export function isDot(c: Buffer): boolean {
  return c.length === 1 && c[0] === DOT;
}

export function isDotDot(c: Buffer): boolean {
  return c.length === 2 && c[0] === DOT && c[1] === DOT;
}

import { constants } from 'node:os';

const errnoNames: Record<number, string> = Object.fromEntries(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

/** Name of a positive errno number, e.g. 2 -> "ENOENT". */
export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `errno ${errno}`;
}

/**
 * Every failure that crosses a module edge is an NsviewError carrying a positive errno, so the
 * FUSE engine can answer the kernel with exactly that errno and logs can name it.
 */
export class NsviewError extends Error {
  readonly errno: number;
  readonly code: string;

  constructor(errno: number, message?: string) {
    const code = errnoName(errno);
    super(message ? `${code}: ${message}` : code);
    this.name = 'NsviewError';
    this.errno = errno;
    this.code = code;
  }
}

export const E = constants.errno;

/** errno of anything thrown: NsviewError, Node's SystemError (negative errno), else EIO. */
export function errnoOf(err: unknown): number {
  if (err instanceof NsviewError) return err.errno;
  if (typeof err === 'object' && err !== null) {
    const n = (err as { errno?: unknown }).errno;
    if (typeof n === 'number' && n !== 0) return Math.abs(n);
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code in constants.errno) {
      return constants.errno[code as keyof typeof constants.errno];
    }
  }
  return constants.errno.EIO;
}

/**
 * Checks made before mounting, each failing with one clear line that says what to do.
 */
import fs from 'node:fs';
import os from 'node:os';
import { NsviewError, E } from '../sys/errors.js';

/**
 * A refusal before mounting. `exitCode` follows mount(8): 1 when the caller lacks privileges,
 * 32 (mount failure) for everything about the mountpoint and the machine.
 */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
  constructor(
    message: string,
    readonly exitCode: number = 32,
  ) {
    super(message);
  }
}

/** Capabilities the daemon uses, and why (also listed in systemd/nsview.service). */
const NEEDED_CAPS: Array<[number, string]> = [
  [21, 'CAP_SYS_ADMIN (mount the FUSE filesystem, setns into namespaces)'],
  [19, 'CAP_SYS_PTRACE (follow /proc/PID/root of other processes)'],
  [18, 'CAP_SYS_CHROOT (setns into a mount namespace)'],
  [2, 'CAP_DAC_READ_SEARCH (read every file inside containers)'],
  [1, 'CAP_DAC_OVERRIDE (open directories whatever their modes)'],
  [3, 'CAP_FOWNER (O_NOATIME so reading does not change atimes)'],
];

function effectiveCaps(): bigint {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function checkPrivileges(): void {
  if (process.getuid?.() !== 0)
    throw new PreflightError('nsview must run as root (it reads every mount namespace on the host)', 1);
  const caps = effectiveCaps();
  const missing = NEEDED_CAPS.filter(([bit]) => (caps & (1n << BigInt(bit))) === 0n).map(([, name]) => name);
  if (missing.length > 0) throw new PreflightError(`missing capabilities: ${missing.join(', ')}`, 1);
}

export function checkKernel(): void {
  const [major = 0, minor = 0] = os
    .release()
    .split('.')
    .map((x) => parseInt(x, 10));
  if (major < 5 || (major === 5 && minor < 6)) {
    throw new PreflightError(`kernel ${os.release()} has no openat2(2); nsview needs Linux >= 5.6`);
  }
}

export function checkFuseDevice(): void {
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    throw new PreflightError(
      '/dev/fuse is missing or not accessible: load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse',
    );
  }
}

/** The mountpoint must be an existing directory (the default /mnt/nsview is created). */
export function checkMountpoint(mountpoint: string, isDefault: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && isDefault) {
      fs.mkdirSync(mountpoint, { recursive: true, mode: 0o755 });
      return;
    }
    if (code === 'ENOTCONN') return; // a dead FUSE mount: cleaned by the mount step
    if (code === 'ENOENT')
      throw new PreflightError(`mountpoint ${mountpoint} does not exist (create it with mkdir -p)`);
    throw new PreflightError(`mountpoint ${mountpoint}: ${code ?? (err as Error).message}`);
  }
  if (!st.isDirectory()) throw new PreflightError(`mountpoint ${mountpoint} is not a directory`);
}

/** openat2 answers ENOSYS on kernels without it (or under seccomp filters that hide it). */
export async function checkOpenat2(probe: () => Promise<void>): Promise<void> {
  try {
    await probe();
  } catch (err) {
    if (err instanceof NsviewError && err.errno === E.ENOSYS) {
      throw new PreflightError(
        'openat2(2) is not available (kernel < 5.6 or blocked by seccomp); nsview cannot resolve paths safely without it',
      );
    }
  }
}

/**
 * Like FUSE's "nonempty" rule: mounting over files hides them, which is almost always a mistake
 * (a wrong path, or a view that was not unmounted and whose directory got files meanwhile).
 * Only called when nothing is mounted on `mountpoint`, so the read cannot reach a FUSE server.
 */
export function checkEmptyMountpoint(mountpoint: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(mountpoint);
  } catch {
    return; // missing or unreadable: the daemon's own checks say why
  }
  if (entries.length > 0) {
    throw new PreflightError(
      `mountpoint ${mountpoint} is not empty (${entries.length} entries would be hidden); empty it or pass --nonempty`,
    );
  }
}

/**
 * --pseudo with --allow-other would let any user read what procfs shows only to privileged
 * readers: procfs checks the cwd, root, exe and ns/ links of a process (ptrace access) against
 * the task reading them, and through the view that is the daemon, root. So the two are refused
 * together rather than serving root's view of /proc to everyone.
 */
export const PSEUDO_ALLOW_OTHER =
  '--pseudo cannot be combined with --allow-other (procfs would check the daemon, not the caller, for cwd, root, exe and ns links)';

/**
 * Raw links and writes do not mix: a container's absolute link shown raw is followed by the
 * host's kernel to a host path, so a write through it would land on the host. (The raw/ tree
 * beside a rewritten default tree stays read-only under --rw for the same reason.)
 */
export const RW_RAW_SYMLINKS = '--rw needs --symlinks rewrite: a raw absolute link would send writes to the host';

/** The one-line refusal of an unsafe option combination, or undefined: the CLI and the daemon both ask here. */
export function optionCombinationError(opts: {
  pseudo: boolean;
  allowOther: boolean;
  readWrite: boolean;
  symlinks: string;
}): string | undefined {
  if (opts.pseudo && opts.allowOther) return PSEUDO_ALLOW_OTHER;
  if (opts.readWrite && opts.symlinks === 'raw') return RW_RAW_SYMLINKS;
  return undefined;
}

export function checkOptionCombination(opts: {
  pseudo: boolean;
  allowOther: boolean;
  readWrite: boolean;
  symlinks: string;
}): void {
  const refusal = optionCombinationError(opts);
  if (refusal !== undefined) throw new PreflightError(refusal);
}

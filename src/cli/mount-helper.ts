/**
 * mount.fuse.nsview: what mount(8) runs for `mount -t fuse.nsview SOURCE MOUNTPOINT -o OPTS`, an
 * /etc/fstab line or a systemd mount unit. It turns the `-o` list into `nsview mount` options
 * through the same table as the command line (options.ts) and mounts in the background, so
 * mount(8) returns once the view serves. umount(8) needs no helper: when the mount goes, the
 * kernel ends the FUSE session and the daemon exits.
 */
import { UsageError } from './exit-codes.js';
import { mountOptionSpec } from './options.js';

/**
 * Options meant for mount(8), systemd or the kernel's generic mount flags. nsview is read-only,
 * nosuid and nodev whatever is asked, so rw/suid/dev change nothing either; it is noexec unless
 * `exec` is given, which is nsview's own option (--exec), not ignored.
 */
export const FSTAB_IGNORED: readonly string[] = [
  'defaults',
  'auto',
  'noauto',
  'nofail',
  '_netdev',
  'user',
  'nouser',
  'users',
  'owner',
  'group',
  'rw',
  'ro',
  'nosuid',
  'suid',
  'nodev',
  'dev',
  'noexec',
  'async',
  'sync',
  'atime',
  'noatime',
  'relatime',
  'strictatime',
  'nodiratime',
  'diratime',
  'lazytime',
  'nolazytime',
];

function ignored(opt: string): boolean {
  return FSTAB_IGNORED.includes(opt) || opt.startsWith('x-') || opt.startsWith('comment=');
}

/** `-o a,b=c` as `nsview mount` arguments. Unknown options are a usage error, not silently dropped. */
export function mountOptionsToArgs(list: string): string[] {
  const args: string[] = [];
  for (const opt of list.split(',').filter((o) => o !== '')) {
    if (ignored(opt)) continue;
    const eq = opt.indexOf('=');
    const name = eq < 0 ? opt : opt.slice(0, eq);
    const spec = mountOptionSpec(name);
    if (spec === undefined) throw new UsageError(`unknown mount option "${opt}" (see man nsview, FSTAB AND MOUNT(8))`);
    if (spec.kind === 'flag') {
      if (eq >= 0) throw new UsageError(`mount option "${name}" takes no value`);
      args.push(`--${spec.name}`);
    } else {
      if (eq < 0) throw new UsageError(`mount option "${name}" needs a value (${name}=...)`);
      args.push(`--${spec.name}`, opt.slice(eq + 1));
    }
  }
  return args;
}

export interface HelperInvocation {
  /** `nsview` arguments to run; undefined for a fake mount (-f): nothing to do. */
  args: string[] | undefined;
}

/**
 * mount(8)'s calling convention for helpers: `SOURCE MOUNTPOINT [-sfnv] [-o OPTS] [-t TYPE]`
 * (util-linux passes -t for subtypes). The source is free text (conventionally "nsview").
 */
export function parseHelperArgs(argv: readonly string[]): HelperInvocation {
  const positional: string[] = [];
  const options: string[] = [];
  let fake = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '-o' || a === '-t' || a === '-N') {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      if (a === '-o') options.push(v);
      else if (a === '-t' && v !== 'fuse.nsview' && v !== 'nsview')
        throw new UsageError(`mount.fuse.nsview cannot mount type ${v}`);
      else if (a === '-N') throw new UsageError('mount.fuse.nsview does not support -N (mount namespaces of its own)');
    } else if (a.startsWith('-o') && a.length > 2) {
      options.push(a.slice(2));
    } else if (/^-[sfnvrw]+$/.test(a)) {
      if (a.includes('f')) fake = true;
    } else if (a.startsWith('-')) {
      throw new UsageError(`mount.fuse.nsview: unknown flag ${a}`);
    } else {
      positional.push(a);
    }
  }
  const mountpoint = positional[1];
  if (positional.length !== 2 || mountpoint === undefined)
    throw new UsageError('usage: mount.fuse.nsview SOURCE MOUNTPOINT [-o OPTIONS]');
  const args = ['mount', mountpoint, ...options.flatMap((o) => mountOptionsToArgs(o))];
  return { args: fake ? undefined : args };
}

export async function helperMain(argv: string[]): Promise<void> {
  let inv: HelperInvocation;
  try {
    inv = parseHelperArgs(argv);
  } catch (err) {
    process.stderr.write(`mount.fuse.nsview: error: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError ? err.exitCode : 4);
  }
  if (inv.args === undefined) return;
  const { main } = await import('./main.js');
  await main(inv.args);
}

/**
 * The workloads of the benchmark (issue 5). Each is one shell command line per variant, over the
 * same fixture reached three ways:
 *
 *   native  /proc/PID/root/data          (the holder's namespace, straight through the kernel)
 *   bindfs  <bindfs mp>                  (`bindfs -o ro /proc/PID/root/data MP`)
 *   nsview  <nsview mp>/<ns inode>/data
 *
 * `prep` says what happens before each measured run:
 *   remount  fresh FUSE mount (a new bindfs / nsview process) + drop_caches (native: drop_caches)
 *   drop     drop_caches only
 *   warm     nothing; one unmeasured run per variant first, unless an earlier workload already
 *            warmed what this one needs on the same mount (`warms`: metadata, or file data too)
 *            and no drop_caches came since. Underlying caches are warm; the FUSE kernel caches
 *            (1 s attributes) have usually expired by the next run of a variant, since the other
 *            variants run in between.
 *   idle     wait 1.1 s (nsview's top directory and the kernel's attribute cache expire)
 *
 * The top directory is measured after drop_caches: the kernel keeps nsview's directory listings
 * (FOPEN_CACHE_DIR) while a directory's mtime is unchanged, so without it `ls` would time the
 * kernel's cached, possibly stale, copy instead of nsview producing the listing.
 */
import type { Manifest } from './fixture.js';

export type VariantName = 'native' | 'bindfs' | 'nsview';
export const VARIANTS: readonly VariantName[] = ['native', 'bindfs', 'nsview'];

export interface Target {
  /** The fixture's /data as this variant reaches it. */
  data: string;
  /** nsview's mountpoint (for the top-directory workload). */
  mountpoint?: string;
}

export interface Workload {
  name: string;
  title: string;
  /** `s`: seconds, lower is better; `MB/s`: 10^6 bytes per second, higher is better. */
  unit: 's' | 'MB/s';
  variants: readonly VariantName[];
  prep: 'remount' | 'drop' | 'warm' | 'idle';
  command(v: VariantName, t: Target): string;
  /** Output every variant must print (trimmed), when known in advance. */
  expect?: string;
  /** Bound for one run, when shorter than --timeout. */
  timeoutMs?: number;
  /** Outputs are informational only (e.g. they depend on other processes on the machine). */
  noOutputCheck?: boolean;
  /** Variants whose output may legitimately differ from native's (and why). */
  mayDiffer?: Partial<Record<VariantName, string>>;
  /** What "native" means for this workload, when it is not the fixture read natively. */
  nativeLabel?: string;
  /** For `warm`: what one run leaves warm, and so what a warm-up must provide. */
  warms?: 'meta' | 'data';
  /** An exit status that is not a failure (e.g. a namespace vanishing between readdir and stat). */
  tolerate?(rc: number, stderr: string): boolean;
  /** Seconds -> the reported value (default: seconds). */
  value?(seconds: number): number;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export function makeWorkloads(m: Manifest): Workload[] {
  const walk = (t: Target) => `find ${q(`${t.data}/tree`)} -printf '%s %m %u\\n' | wc -l`;
  return [
    {
      name: 'cold-walk',
      title: "cold metadata walk: find -printf '%s %m %u'",
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      command: (_v, t) => walk(t),
      expect: String(m.entries),
    },
    {
      name: 'warm-walk',
      title: 'repeated metadata walk (warm)',
      unit: 's',
      variants: VARIANTS,
      prep: 'warm',
      warms: 'meta',
      command: (_v, t) => walk(t),
      expect: String(m.entries),
    },
    {
      name: 'ls-lR',
      title: 'ls -lR (warm)',
      unit: 's',
      variants: VARIANTS,
      prep: 'warm',
      warms: 'meta',
      command: (_v, t) => `ls -lR ${q(`${t.data}/tree`)} | wc -l`,
    },
    {
      name: 'grep',
      title: `grep -r (a string in ${m.needleFiles} files, warm)`,
      unit: 's',
      variants: VARIANTS,
      prep: 'warm',
      warms: 'data',
      command: (_v, t) => `grep -r ${m.needle} ${q(`${t.data}/tree`)} | wc -l`,
      expect: String(m.needleFiles),
    },
    {
      name: 'tar',
      title: 'tar cf - | wc -c (warm)',
      unit: 's',
      variants: VARIANTS,
      prep: 'warm',
      warms: 'data',
      command: (_v, t) => `tar cf - -C ${q(t.data)} tree | wc -c`,
      mayDiffer: { nsview: 'rewritten symlink targets can be longer than 100 bytes (GNU long-link headers)' },
    },
    {
      name: 'seq-read',
      title: `sequential read of ${(m.bigBytes / 2 ** 20).toFixed(0)} MiB (dd bs=1M, after drop_caches)`,
      unit: 'MB/s',
      variants: VARIANTS,
      prep: 'drop',
      command: (_v, t) => `dd if=${q(`${t.data}/big.bin`)} of=/dev/null bs=1M 2>&1 | awk '/bytes/ {print $1}'`,
      expect: String(m.bigBytes),
      value: (s) => m.bigBytes / 1e6 / s,
    },
    {
      name: 'topdir',
      title: 'top directory with N extra namespaces: ls -l MP vs lsns -t mnt',
      unit: 's',
      variants: ['native', 'nsview'],
      prep: 'drop',
      nativeLabel: 'lsns -t mnt',
      command: (v, t) => (v === 'native' ? 'lsns -t mnt | wc -l' : `ls -l ${q(t.mountpoint!)} | wc -l`),
      noOutputCheck: true,
      timeoutMs: 60_000,
      // Other namespaces on the machine may die between ls's readdir and its lstat.
      tolerate: (rc, stderr) => rc === 1 && stderr.split('\n').every((l) => l === '' || /No such file or directory/.test(l)),
    },
    {
      // The listing alone (names, as `ls` without a terminal prints them): what nsview itself
      // does for the top directory, without ls -l's 4 requests per entry (lstat and 3 xattrs).
      name: 'topdir-ls',
      title: 'top directory with N extra namespaces: ls MP vs lsns -t mnt',
      unit: 's',
      variants: ['native', 'nsview'],
      prep: 'drop',
      nativeLabel: 'lsns -t mnt',
      command: (v, t) => (v === 'native' ? 'lsns -t mnt | wc -l' : `ls ${q(t.mountpoint!)} | wc -l`),
      noOutputCheck: true,
      timeoutMs: 60_000,
    },
  ];
}

export const WORKLOAD_NAMES = ['cold-walk', 'warm-walk', 'ls-lR', 'grep', 'tar', 'seq-read', 'topdir', 'topdir-ls'] as const;

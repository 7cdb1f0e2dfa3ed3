/**
 * The workloads of the benchmark. Each is one shell command line per variant, over the
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

/**
 * `nsview` runs with its defaults (busy polling on), `nsview-bp0` with `--busy-poll=0`: on a
 * machine whose wake-ups are cheap, or that is busy, busy polling buys nothing, so the second one
 * is what nsview costs without it.
 */
export type VariantName = 'native' | 'bindfs' | 'nsview' | 'nsview-bp0';
export const VARIANTS: readonly VariantName[] = ['native', 'bindfs', 'nsview', 'nsview-bp0'];
export const NSVIEW_VARIANTS: readonly VariantName[] = ['nsview', 'nsview-bp0'];

/** Which program serves a variant. */
export type ServerKind = 'native' | 'bindfs' | 'nsview';
export function kindOf(v: VariantName): ServerKind {
  return v === 'nsview-bp0' ? 'nsview' : v;
}

export interface Target {
  /** The fixture's /data as this variant reaches it (the first namespace's). */
  data: string;
  /** /data of every namespace the workload uses (parallel clients: one each). */
  datas: string[];
  /** nsview's mountpoint (for the top-directory workload). */
  mountpoint?: string;
  /** The serving processes (bindfs: one per namespace; nsview: one); none for native. */
  pids: number[];
  /** Their FUSE connections (minor device numbers), for counting requests in the kernel. */
  connections: number[];
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
  /**
   * Parallel clients: each run times the command over the first namespace alone and over this
   * many namespaces at once (one client each, all started together), on the same kind of mount.
   */
  parallel?: number;
  /** The tree is the million-entry one (its own namespace; see lib/env.ts startMemHolder). */
  mem?: boolean;
  /** At most this many runs, whatever --runs says (long workloads). */
  maxRuns?: number;
  /** Extra arguments for the fresh mounts of a `remount` workload. */
  mountArgs?: { bindfs?: string[]; nsview?: string[] };
  /** Report each FUSE server's peak RSS (VmHWM) after the run (fresh mounts only). */
  peakRss?: boolean;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * `one(dir)` (a shell fragment over the shell variable holding one namespace's /data) started in
 * the background once per namespace, then waited for: the same shape for one client and for four,
 * so the only difference between them is the number of clients.
 */
function parallelOver(datas: string[], one: (dir: string) => string): string {
  return `pids=; for d in ${datas.map(q).join(' ')}; do ( ${one('"$d"')} ) & pids="$pids $!"; done; r=0; for p in $pids; do wait $p || r=$?; done; test $r = 0`;
}

/** Clients of the parallel workloads. */
export const PARALLEL_CLIENTS = 4;

/** Loop iterations of the single-operation workloads (op-*). */
const OP_LOOPS = 20_000;

export function makeWorkloads(m: Manifest, mem?: { entries: number }): Workload[] {
  const walk = (t: Target) => `find ${q(`${t.data}/tree`)} -printf '%s %m %u\\n' | wc -l`;
  // The single-operation loops: a client that makes one syscall N times on big.bin from inside
  // /data (a relative name: only the last component is looked up again, never the ancestors), so
  // the server's CPU per request is that request's.
  const perlLoop = (t: Target, body: string) =>
    `perl -MPOSIX -e 'chdir $ARGV[0] or die "chdir: $!"; for (1..${OP_LOOPS}) { ${body} } print "${OP_LOOPS}\\n"' ${q(t.data)}`;
  const walkOne = (dir: string) => `find ${dir}/tree -printf '%s %m %u\\n' | wc -l`;
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
      name: 'par-walk',
      title: `parallel clients: ${PARALLEL_CLIENTS} cold walks over ${PARALLEL_CLIENTS} namespaces at once vs 1`,
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      parallel: PARALLEL_CLIENTS,
      command: (_v, t) => parallelOver(t.datas, walkOne),
      expect: String(m.entries),
    },
    {
      name: 'par-grep',
      title: `parallel clients: ${PARALLEL_CLIENTS} grep -r over ${PARALLEL_CLIENTS} namespaces at once vs 1 (warm)`,
      unit: 's',
      variants: VARIANTS,
      prep: 'warm',
      parallel: PARALLEL_CLIENTS,
      command: (_v, t) => parallelOver(t.datas, (d) => `grep -r ${m.needle} ${d}/tree | wc -l`),
      expect: String(m.needleFiles),
    },
    {
      // Attributes expire at once (attr timeout 0), names do not: every stat is one GETATTR.
      name: 'op-getattr',
      title: `one operation: ${OP_LOOPS.toLocaleString('en-US')} stat() of one file, attribute timeout 0 (GETATTR)`,
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      mountArgs: {
        bindfs: ['-o', 'attr_timeout=0,entry_timeout=60'],
        nsview: ['--attr-timeout=0', '--entry-timeout=60'],
      },
      command: (_v, t) => perlLoop(t, 'my @s = stat("big.bin") or die "stat: $!";'),
      expect: String(OP_LOOPS),
    },
    {
      // Names expire at once (entry timeout 0), attributes do not: every stat is one LOOKUP.
      name: 'op-lookup',
      title: `one operation: ${OP_LOOPS.toLocaleString('en-US')} stat() of one file, entry timeout 0 (LOOKUP)`,
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      mountArgs: {
        bindfs: ['-o', 'attr_timeout=60,entry_timeout=0'],
        nsview: ['--attr-timeout=60', '--entry-timeout=0'],
      },
      command: (_v, t) => perlLoop(t, 'my @s = stat("big.bin") or die "stat: $!";'),
      expect: String(OP_LOOPS),
    },
    {
      name: 'op-open',
      title: `one operation: ${OP_LOOPS.toLocaleString('en-US')} open()+close() of one file (OPEN, RELEASE)`,
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      command: (_v, t) =>
        perlLoop(t, 'my $fd = POSIX::open("big.bin", O_RDONLY) // die "open: $!"; POSIX::close($fd);'),
      expect: String(OP_LOOPS),
    },
    {
      name: 'mem-1m',
      title: `memory: cold walk of ${(mem?.entries ?? 1_000_101).toLocaleString('en-US')} entries, server peak RSS`,
      unit: 's',
      variants: VARIANTS,
      prep: 'remount',
      mem: true,
      maxRuns: 1,
      peakRss: true,
      command: (_v, t) => `find ${q(t.data)} -printf '%s %m %u\\n' | wc -l`,
      expect: mem ? String(mem.entries) : undefined,
    },
    {
      name: 'topdir',
      title: 'top directory with N extra namespaces: ls -l MP vs lsns -t mnt',
      unit: 's',
      variants: ['native', 'nsview', 'nsview-bp0'],
      prep: 'drop',
      nativeLabel: 'lsns -t mnt',
      command: (v, t) => (v === 'native' ? 'lsns -t mnt | wc -l' : `ls -l ${q(t.mountpoint!)} | wc -l`),
      noOutputCheck: true,
      timeoutMs: 60_000,
      // Other namespaces on the machine may die between ls's readdir and its lstat.
      tolerate: (rc, stderr) =>
        rc === 1 && stderr.split('\n').every((l) => l === '' || /No such file or directory/.test(l)),
    },
    {
      // The listing alone (names, as `ls` without a terminal prints them): what nsview itself
      // does for the top directory, without ls -l's 4 requests per entry (lstat and 3 xattrs).
      name: 'topdir-ls',
      title: 'top directory with N extra namespaces: ls MP vs lsns -t mnt',
      unit: 's',
      variants: ['native', 'nsview', 'nsview-bp0'],
      prep: 'drop',
      nativeLabel: 'lsns -t mnt',
      command: (v, t) => (v === 'native' ? 'lsns -t mnt | wc -l' : `ls ${q(t.mountpoint!)} | wc -l`),
      noOutputCheck: true,
      timeoutMs: 60_000,
    },
  ];
}

/** Run by default, in this order. */
export const DEFAULT_WORKLOADS = [
  'cold-walk',
  'warm-walk',
  'ls-lR',
  'grep',
  'tar',
  'seq-read',
  'par-walk',
  'par-grep',
  'topdir',
  'topdir-ls',
] as const;
/** --quick's default (CI form, about two minutes): no ls -lR, no names-only top directory. */
export const QUICK_WORKLOADS = [
  'cold-walk',
  'warm-walk',
  'grep',
  'tar',
  'seq-read',
  'par-walk',
  'par-grep',
  'topdir',
] as const;
/** Only when asked for with --workload (they profile one operation, or take long). */
export const EXTRA_WORKLOADS = ['op-getattr', 'op-lookup', 'op-open', 'mem-1m'] as const;
export const WORKLOAD_NAMES = [...DEFAULT_WORKLOADS, ...EXTRA_WORKLOADS] as const;

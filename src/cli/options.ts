/**
 * The one description of nsview's command line. `--help` (through yargs), the manual page
 * (manpage.ts, written at build time), bash completion (completion.ts) and the `-o` options of
 * `mount -t fuse.nsview` (mount-helper.ts) are all generated from these tables, so they cannot
 * disagree with each other or with what the parser accepts.
 */
import { UsageError } from './exit-codes.js';

export const DEFAULT_MOUNTPOINT = '/mnt/nsview';
/** See --busy-poll and src/fuse/device-poll.ts; chosen from the measurements in bench/RESULTS.md. */
export const DEFAULT_BUSY_POLL_US = 200;
export const DEFAULT_LOG_FILE = '/var/log/nsview.log';

export type OptionKind = 'flag' | 'choice' | 'seconds' | 'integer' | 'path';

export interface OptionSpec {
  /** Long name: `--name` on the command line, `name` with '_' for '-' in `-o`. */
  readonly name: string;
  readonly alias?: string;
  readonly kind: OptionKind;
  readonly default: boolean | string | number;
  readonly choices?: readonly string[];
  /** Inclusive bounds of a number (seconds may be fractional, integers not). */
  readonly min?: number;
  readonly max?: number;
  /** The value's name in the synopsis (`--workers N`). */
  readonly arg?: string;
  /** One line for --help and completion. */
  readonly describe: string;
  /** More for the manual, after `describe`. */
  readonly manual?: string;
  /** Not settable as `-o name` through mount(8) (it makes no sense there). */
  readonly noMountOption?: boolean;
  readonly hidden?: boolean;
}

/** Where container names come from (by-container/, by-pod/, the list's container column); mount and list. */
function engineOptions(): OptionSpec[] {
  return [
    {
      name: 'engine-root',
      kind: 'path',
      default: '',
      arg: 'KIND=PATHS',
      describe:
        'an engine to take container names from instead of the ones found (repeatable): docker=SOCKET[,EXEC_ROOT], podman-api=SOCKET, storage=GRAPHROOT[,RUNROOT], containerd=SOCKET,STATE',
      manual:
        "Given for a kind, it replaces what nsview finds for that kind (config files, running daemons' command lines, defaults: docs/engines.md). storage is containers/storage of Podman or CRI-O (--root, --runroot).",
      noMountOption: true,
    },
    {
      name: 'engines',
      kind: 'flag',
      default: true,
      describe:
        'name containers from their engines (--no-engines: no by-container/, by-pod/ names; no engine is contacted)',
      noMountOption: true,
    },
  ];
}

export const MOUNT_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'foreground',
    alias: 'f',
    kind: 'flag',
    default: false,
    describe: 'stay in the foreground, log to stderr, unmount on SIGINT/SIGTERM',
    manual:
      'Without it, nsview mount returns once the view serves and the daemon goes on in the background, logging to --log-file.',
    noMountOption: true,
  },
  {
    name: 'symlinks',
    kind: 'choice',
    default: 'rewrite',
    choices: ['rewrite', 'raw'],
    describe:
      'rewrite: links followed on the host stay inside their namespace; raw: targets byte for byte (for backups)',
    manual:
      "In raw mode an absolute link followed on the host points at a host path (/mnt/nsview/X/evil -> /etc/shadow is the host's file if you cat it); tar, rsync and restic store links without following them, which is what raw mode is for.",
  },
  {
    name: 'allow-other',
    kind: 'flag',
    default: false,
    describe: "let non-root users in (the kernel then checks the files' own modes and owners)",
    manual:
      "Always turns on default_permissions with POSIX ACLs (FUSE_POSIX_ACL): the kernel checks modes, owners and ACL entries as it would natively. Cannot be combined with --pseudo: procfs decides who may read a process's cwd, root, exe and ns links by who reads them, which through the view is the daemon.",
  },
  {
    name: 'pseudo',
    kind: 'flag',
    default: false,
    describe: 'show proc, sysfs, cgroup and other kernel filesystems inside namespaces (read-only)',
    manual:
      'Off, they appear as empty directories so that grep -r over the view finishes. Their files are read with direct I/O (their sizes are 0 or made up). Root only: refused together with --allow-other.',
  },
  {
    name: 'exec',
    kind: 'flag',
    default: false,
    describe: 'allow running programs from the view (mounted noexec otherwise)',
    manual:
      "Containers' binaries are data to look at, not programs for the host: without this the view is mounted noexec, so no container can plant something a host user runs by accident.",
  },
  {
    name: 'passthrough',
    kind: 'flag',
    default: false,
    describe: 'let the kernel read opened regular files itself (FUSE passthrough, kernel 6.9+)',
    manual:
      'Reads then cost the daemon nothing and run at native speed. Files on unknown or remote filesystems, kernel files and a kernel that refuses fall back to reads through the daemon. A file opened this way keeps reading what it opened after its namespace dies, until closed (without it, such a file answers ESTALE).',
  },
  {
    name: 'rw',
    kind: 'flag',
    default: false,
    describe:
      'read-write: forward writes into namespaces (needs --symlinks rewrite; pseudo filesystems stay read-only)',
    manual:
      'Refused together with --symlinks raw: a raw absolute link followed on the host would send writes to the host.',
  },
  {
    name: 'nonempty',
    kind: 'flag',
    default: false,
    describe: 'mount even over a directory that is not empty (its files are hidden while mounted)',
  },
  {
    name: 'attr-timeout',
    kind: 'seconds',
    default: 1,
    min: 0,
    max: 86400,
    arg: 'S',
    describe: 'seconds the kernel may cache file attributes (the staleness bound)',
  },
  {
    name: 'entry-timeout',
    kind: 'seconds',
    default: 5,
    min: 0,
    max: 86400,
    arg: 'S',
    describe: 'seconds the kernel may cache names (identity is re-checked on use)',
  },
  {
    name: 'op-timeout',
    kind: 'seconds',
    default: 10,
    min: 0.001,
    max: 86400,
    arg: 'S',
    describe: 'seconds before an operation on a hung filesystem fails with ETIMEDOUT',
    manual: 'The rest of the view keeps working meanwhile.',
  },
  {
    name: 'idle-release',
    kind: 'seconds',
    default: 5,
    min: 0.001,
    max: 86400,
    arg: 'S',
    describe: 'seconds an unused sandbox task is kept',
  },
  {
    name: 'scan-interval',
    kind: 'seconds',
    default: 1,
    min: 0.001,
    max: 86400,
    arg: 'S',
    describe: 'seconds between namespace discovery passes',
  },
  {
    name: 'workers',
    kind: 'integer',
    default: 2,
    min: 1,
    max: 64,
    arg: 'N',
    describe: 'io worker threads (each ~10 MB)',
  },
  {
    name: 'max-roots',
    kind: 'integer',
    default: 256,
    min: 1,
    max: 100000,
    arg: 'N',
    describe: 'namespace roots held open at once (2 fds each; least recently used go first)',
    manual:
      'Beyond it, with every held root in use, a new namespace answers EMFILE; the host namespace keeps a small reserve.',
  },
  {
    name: 'busy-poll',
    kind: 'integer',
    default: DEFAULT_BUSY_POLL_US,
    min: 0,
    max: 100000,
    arg: 'US',
    describe: 'µs the daemon keeps polling for the next request before it sleeps (0: off)',
    manual:
      'Saves a thread wake-up per request on VMs whose idle CPUs halt; costs CPU only in the window after activity.',
  },
  {
    name: 'log-file',
    kind: 'path',
    default: DEFAULT_LOG_FILE,
    arg: 'FILE',
    describe: 'where a background daemon logs (lines with ISO 8601 timestamps)',
    manual:
      'Opened with O_APPEND and O_NOFOLLOW in a directory owned by root that no ordinary user may write to; rotate it with logrotate copytruncate (deploy/logrotate/nsview).',
  },
  ...engineOptions(),
  { name: 'verbose', alias: 'v', kind: 'flag', default: false, describe: 'trace every operation' },
  {
    name: 'ready-fd',
    kind: 'integer',
    default: -1,
    min: 0,
    max: 65535,
    describe: 'internal: fd to report readiness on',
    hidden: true,
    noMountOption: true,
  },
];

export const LIST_OPTIONS: readonly OptionSpec[] = [
  { name: 'json', kind: 'flag', default: false, describe: 'one JSON array', noMountOption: true },
  ...engineOptions(),
];

export interface CommandSpec {
  readonly name: string;
  /** Positional arguments as shown in the synopsis. */
  readonly args: string;
  readonly describe: string;
  readonly options: readonly OptionSpec[];
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'mount',
    args: '[mountpoint]',
    describe: `Mount the view (default ${DEFAULT_MOUNTPOINT}) and serve it in the background`,
    options: MOUNT_OPTIONS,
  },
  {
    name: 'unmount',
    args: '[mountpoint]',
    describe: 'Stop the daemon and remove the mount (also after the daemon died)',
    options: [],
  },
  {
    name: 'list',
    args: '',
    describe: 'List every mount namespace on this host and how it was found',
    options: LIST_OPTIONS,
  },
  {
    name: 'completion',
    args: '',
    describe: 'Print a bash completion script (eval "$(nsview completion)")',
    options: [],
  },
];

/** Exit statuses, as mount(8) and umount(8) use them (documented in the manual). */
export const EXIT_CODES: ReadonlyArray<[number, string]> = [
  [0, 'success'],
  [1, 'not permitted: not root, or capabilities missing'],
  [2, 'usage error: unknown command or option, or a value out of range'],
  [4, 'internal error (a bug: please report it)'],
  [
    32,
    'mount or unmount failure: the mountpoint is missing, not empty, busy (the running server is named) or nothing is mounted there; /dev/fuse or openat2(2) missing; the daemon did not start',
  ],
];

/** "N seconds", "from 1 to 64": the allowed values of a numeric option, for messages and the manual. */
function range(spec: OptionSpec): string {
  if (spec.kind === 'integer') return `a whole number from ${spec.min} to ${spec.max}`;
  const lower = spec.min === 0 ? 'a non-negative' : 'a positive';
  return `${lower} number of seconds, at most ${spec.max}`;
}

export function allowedValues(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'choice':
      return `one of ${(spec.choices ?? []).join(', ')}`;
    case 'seconds':
    case 'integer':
      return range(spec);
    default:
      return '';
  }
}

/**
 * The value of a numeric or choice option from its text, strictly: "abc", "1.5" for an
 * integer, "0x10", "1e3", "" and anything out of range are usage errors, never rounded or clamped.
 */
export function parseOptionValue(spec: OptionSpec, raw: string): number | string {
  const bad = () => new UsageError(`--${spec.name} must be ${allowedValues(spec)} (got "${raw}")`);
  switch (spec.kind) {
    case 'integer': {
      if (!/^\d{1,9}$/.test(raw)) throw bad();
      const n = Number(raw);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Infinity)) throw bad();
      return n;
    }
    case 'seconds': {
      if (!/^(\d{1,9}(\.\d{0,9})?|\.\d{1,9})$/.test(raw)) throw bad();
      const n = Number(raw);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Infinity)) throw bad();
      return n;
    }
    case 'choice':
      if (!(spec.choices ?? []).includes(raw)) throw bad();
      return raw;
    case 'path':
      if (raw === '') throw new UsageError(`--${spec.name} needs a path`);
      return raw;
    case 'flag':
      throw new UsageError(`--${spec.name} takes no value`);
  }
}

/** The spec of a mount option by its `-o` spelling (allow_other) or long name (allow-other). */
export function mountOptionSpec(name: string): OptionSpec | undefined {
  const n = name.replace(/_/g, '-');
  return MOUNT_OPTIONS.find((s) => s.name === n && !s.noMountOption && !s.hidden);
}

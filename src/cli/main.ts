/**
 * nsview's command line: mount, unmount, list. Thin: parses, calls into the daemon or discovery,
 * turns every failure into one line on stderr and a non-zero exit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { NsviewError } from '../sys/errors.js';
import { createLogger } from '../daemon/log.js';
import { PreflightError } from '../daemon/preflight.js';
import { runMount } from './mount.js';
import { runUnmount } from './unmount.js';
import { runList } from './list.js';

export const DEFAULT_MOUNTPOINT = '/mnt/nsview';
/** See --busy-poll and src/fuse/device-poll.ts; chosen from the measurements in bench/RESULTS.md. */
export const DEFAULT_BUSY_POLL_US = 200;

function packageVersion(): string {
  const pkg = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');
  try {
    return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** One line for the user: what failed, and the errno name when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof PreflightError) return err.message;
  if (err instanceof NsviewError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

function fail(err: unknown): never {
  process.stderr.write(`nsview: error: ${describeError(err)}\n`);
  process.exit(1);
}

export async function main(argv: string[]): Promise<void> {
  const cli: Argv = yargs(argv)
    .scriptName('nsview')
    .usage('$0 <command> [options]\n\nEvery mount namespace on this host as a read-only directory.')
    .command(
      'mount [mountpoint]',
      'Mount the view (default /mnt/nsview) and serve it in the background',
      (y) =>
        y
          .positional('mountpoint', { type: 'string', default: DEFAULT_MOUNTPOINT, describe: 'where to mount' })
          .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay in the foreground; unmount on SIGINT/SIGTERM' })
          .option('symlinks', {
            choices: ['rewrite', 'raw'] as const,
            default: 'rewrite' as const,
            describe: 'rewrite: links followed on the host stay inside their namespace; raw: targets byte for byte (for backups)',
          })
          .option('allow-other', { type: 'boolean', default: false, describe: 'let non-root users in (the kernel then checks the files\' own modes and owners)' })
          .option('pseudo', { type: 'boolean', default: false, describe: 'show proc, sysfs, cgroup and other kernel filesystems inside namespaces (read-only)' })
          .option('idle-release', { type: 'number', default: 5, describe: 'seconds an unused sandbox task is kept' })
          .option('op-timeout', { type: 'number', default: 10, describe: 'seconds before an operation on a hung filesystem fails with ETIMEDOUT' })
          .option('attr-timeout', { type: 'number', default: 1, describe: 'seconds the kernel may cache file attributes (the staleness bound)' })
          .option('entry-timeout', { type: 'number', default: 5, describe: 'seconds the kernel may cache names (identity is re-checked on use)' })
          .option('scan-interval', { type: 'number', default: 1, describe: 'seconds between namespace discovery passes' })
          .option('workers', { type: 'number', default: 2, describe: 'io worker threads (each ~10 MB)' })
          .option('busy-poll', { type: 'number', default: DEFAULT_BUSY_POLL_US, describe: 'µs the daemon keeps polling for the next request before it sleeps; saves a wake-up per request on VMs, costs CPU in bursts (0: off)' })
          .option('log-file', { type: 'string', default: '/var/log/nsview.log', describe: 'where a background daemon logs' })
          .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'trace every operation' })
          .option('ready-fd', { type: 'number', hidden: true }),
      async (a) => {
        const log = createLogger(a.verbose);
        await runMount(
          {
            mountpoint: path.resolve(a.mountpoint),
            isDefaultMountpoint: path.resolve(a.mountpoint) === DEFAULT_MOUNTPOINT,
            symlinks: a.symlinks,
            allowOther: a['allow-other'],
            pseudo: a.pseudo,
            idleReleaseMs: seconds(a['idle-release'], 'idle-release'),
            opTimeoutMs: seconds(a['op-timeout'], 'op-timeout'),
            attrTimeoutMs: seconds(a['attr-timeout'], 'attr-timeout', true),
            entryTimeoutMs: seconds(a['entry-timeout'], 'entry-timeout', true),
            scanIntervalMs: seconds(a['scan-interval'], 'scan-interval'),
            workers: Math.max(1, Math.min(64, Math.floor(a.workers))),
            busyPollUs: microseconds(a['busy-poll'], 'busy-poll'),
          },
          { foreground: a.foreground, readyFd: a['ready-fd'], logFile: a['log-file'], argv },
          log,
        ).catch(fail);
      },
    )
    .command(
      'unmount [mountpoint]',
      'Stop the daemon and remove the mount (also after the daemon died)',
      (y) => y.positional('mountpoint', { type: 'string', default: DEFAULT_MOUNTPOINT }),
      async (a) => {
        await runUnmount(path.resolve(a.mountpoint)).catch(fail);
      },
    )
    .command(
      'list',
      'List every mount namespace on this host and how it was found',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'one JSON array' }),
      async (a) => {
        await runList(a.json).catch(fail);
      },
    )
    .demandCommand(1, 'name a command: mount, unmount or list')
    .strict()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) fail(err);
      process.stderr.write(`${y.help() ? '' : ''}nsview: error: ${msg}\n(see nsview --help)\n`);
      process.exit(2);
    });
  await cli.parseAsync();
}

function microseconds(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0 || value > 100_000) {
    throw new PreflightError(`--${name} must be a number of microseconds from 0 to 100000`);
  }
  return value;
}

function seconds(value: number, name: string, zeroOk = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroOk && value === 0)) {
    throw new PreflightError(`--${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number of seconds`);
  }
  return Math.round(value * 1000);
}

/**
 * nsview's command line: mount, unmount, list, completion. Thin: parses (from the tables in
 * options.ts), calls into the daemon or discovery, and turns every failure into one line on
 * stderr and an exit status that follows mount(8)/umount(8) (exit-codes.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import type { Argv, Options } from 'yargs';
import { NsviewError } from '../sys/errors.js';
import { createLogger } from '../daemon/log.js';
import { PreflightError, optionCombinationError } from '../daemon/preflight.js';
import { runMount } from './mount.js';
import { runUnmount } from './unmount.js';
import { runList } from './list.js';
import { bashCompletion } from './completion.js';
import { CliError, EXIT, UsageError } from './exit-codes.js';
import { COMMANDS, DEFAULT_MOUNTPOINT, MOUNT_OPTIONS, parseOptionValue } from './options.js';
import type { CommandSpec, OptionSpec } from './options.js';
import { allValues, engineOverrides } from './engine-options.js';

export { DEFAULT_MOUNTPOINT, DEFAULT_BUSY_POLL_US } from './options.js';

export function packageVersion(): string {
  const pkg = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');
  try {
    return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** One line for the user: what failed, and the errno name when there is one. */
export function describeError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** mount(8)'s convention: 32 for a failed mount or unmount, 4 for what can only be a bug. */
export function exitCodeOf(err: unknown, command: string): number {
  if (err instanceof UsageError || err instanceof CliError || err instanceof PreflightError) return err.exitCode;
  const isSystemError =
    err instanceof NsviewError || (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string');
  if (isSystemError) return command === 'mount' || command === 'unmount' ? EXIT.MOUNT_FAILURE : 1;
  return EXIT.INTERNAL;
}

function failer(command: string): (err: unknown) => never {
  return (err: unknown) => {
    process.stderr.write(`nsview: error: ${describeError(err)}\n`);
    process.exit(exitCodeOf(err, command));
  };
}

/** The yargs declaration of one table row. Values stay text: parseOptionValue checks them. */
function yargsOption(spec: OptionSpec): Options {
  const base: Options = { describe: spec.describe, hidden: spec.hidden ?? false };
  if (spec.alias !== undefined) base.alias = spec.alias;
  if (spec.kind === 'flag') return { ...base, type: 'boolean', default: spec.default };
  const extra = spec.kind === 'choice' ? `, one of: ${(spec.choices ?? []).join(', ')}` : '';
  // No yargs type: with parse-numbers off the text reaches parseOptionValue as typed.
  return { ...base, requiresArg: true, defaultDescription: `${String(spec.default)}${extra}` };
}

function declare(y: Argv, cmd: CommandSpec): Argv {
  let out = y;
  if (cmd.args.includes('mountpoint')) {
    out = out.positional('mountpoint', { type: 'string', default: DEFAULT_MOUNTPOINT, describe: 'where to mount' });
  }
  for (const spec of cmd.options) out = out.option(spec.name, yargsOption(spec));
  return out;
}

type Parsed = Record<string, unknown>;

/** The option's checked value: the last one given (as with mount -o), or the default. */
function value(a: Parsed, spec: OptionSpec): number | string {
  let raw = a[spec.name];
  if (Array.isArray(raw)) raw = raw[raw.length - 1];
  if (raw === undefined) return spec.default as number | string;
  return parseOptionValue(spec, String(raw));
}

function spec(name: string): OptionSpec {
  const s = MOUNT_OPTIONS.find((o) => o.name === name);
  if (s === undefined) throw new Error(`no option ${name}`);
  return s;
}

async function mountCommand(a: Parsed, argv: string[]): Promise<void> {
  const num = (name: string) => value(a, spec(name)) as number;
  const ms = (name: string) => Math.round(num(name) * 1000);
  const mountpoint = path.resolve(String(a.mountpoint ?? DEFAULT_MOUNTPOINT));
  const verbose = a.verbose === true;
  const readyFd = num('ready-fd');
  const log = createLogger(verbose);
  const refusal = optionCombinationError({
    pseudo: a.pseudo === true,
    allowOther: a['allow-other'] === true,
    readWrite: a.rw === true,
    symlinks: String(value(a, spec('symlinks'))),
  });
  if (refusal !== undefined) throw new UsageError(refusal);
  await runMount(
    {
      mountpoint,
      isDefaultMountpoint: mountpoint === DEFAULT_MOUNTPOINT,
      symlinks: value(a, spec('symlinks')) === 'raw' ? 'raw' : 'rewrite',
      allowOther: a['allow-other'] === true,
      pseudo: a.pseudo === true,
      exec: a.exec === true,
      readWrite: a.rw === true,
      idleReleaseMs: ms('idle-release'),
      opTimeoutMs: ms('op-timeout'),
      attrTimeoutMs: ms('attr-timeout'),
      entryTimeoutMs: ms('entry-timeout'),
      scanIntervalMs: ms('scan-interval'),
      workers: num('workers'),
      maxRoots: num('max-roots'),
      busyPollUs: num('busy-poll'),
      passthrough: a.passthrough === true,
      engines: engineOverrides(a.engines !== false, allValues(a['engine-root'])),
    },
    {
      foreground: a.foreground === true,
      nonempty: a.nonempty === true,
      readyFd: readyFd >= 0 ? readyFd : undefined,
      logFile: path.resolve(String(value(a, spec('log-file')))),
      argv,
    },
    log,
  );
}

export async function main(argv: string[]): Promise<void> {
  // `nsview list | head -1`: the reader left; that is the end of the output, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    failer('output')(err);
  });
  let cli: Argv = yargs(argv)
    .scriptName('nsview')
    .usage('$0 <command> [options]\n\nEvery mount namespace on this host as a read-only directory.')
    .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false });
  const handlers: Record<string, (a: Parsed) => Promise<void>> = {
    mount: (a) => mountCommand(a, argv),
    unmount: (a) => runUnmount(path.resolve(String(a.mountpoint ?? DEFAULT_MOUNTPOINT))),
    list: (a) => runList(a.json === true, engineOverrides(a.engines !== false, allValues(a['engine-root']))),
    completion: async () => {
      process.stdout.write(bashCompletion());
    },
  };
  for (const cmd of COMMANDS) {
    const handler = handlers[cmd.name];
    if (handler === undefined) throw new Error(`no handler for ${cmd.name}`);
    cli = cli.command(
      `${cmd.name}${cmd.args ? ` ${cmd.args}` : ''}`,
      cmd.describe,
      (y) => declare(y, cmd),
      async (a) => {
        await handler(a as Parsed).catch(failer(cmd.name));
      },
    );
  }
  cli = cli
    .demandCommand(1, `name a command: ${COMMANDS.map((c) => c.name).join(', ')}`)
    .strict()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err)
        failer('usage')(err instanceof Error && !(err instanceof NsviewError) ? new UsageError(err.message) : err);
      process.stderr.write(`nsview: error: ${describeError(msg)} (see nsview --help)\n`);
      process.exit(EXIT.USAGE);
    });
  await cli.parseAsync();
}

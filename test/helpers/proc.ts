/**
 * Running commands from tests without ever hanging: every child gets a timeout and runs in its
 * own process group, so a timeout kills the whole group (a `sh -c` and everything it started).
 *
 * Everything here is asynchronous on purpose: a test may read a FUSE mount served by a child
 * daemon, and a blocking call on a hung mount would freeze the whole ava worker (timeouts
 * included).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';

/** Anything with ava's `t.teardown` (an ExecutionContext, or a `CleanupScope` for hooks). */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * A teardown list for resources shared by several tests (ava forbids `t.teardown` in hooks):
 *
 *   const scope = new CleanupScope();
 *   test.before(async () => { nsview = await startNsview(scope); });
 *   test.after.always(() => scope.cleanup());
 */
export class CleanupScope implements Teardown {
  private fns: Array<() => unknown> = [];

  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }

  /** Runs the registered functions, last registered first; throws the first error at the end. */
  async cleanup(): Promise<void> {
    let first: unknown;
    while (this.fns.length > 0) {
      const fn = this.fns.pop()!;
      try {
        await fn();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

export interface RunOptions {
  /** Kill the process group after this long (default 30 s). */
  timeoutMs?: number;
  /** Throw a CommandError when the command fails or times out (default true). */
  check?: boolean;
  input?: string | Buffer;
  cwd?: string;
  /** Extra environment, merged over process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Raw stdout, for byte-exact names that are not UTF-8. */
  stdoutBuffer: Buffer;
  timedOut: boolean;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const why = result.timedOut
      ? 'timed out'
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with ${result.code}`;
    super(`command ${why}: ${command}\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`);
    this.name = 'CommandError';
  }
}

function tail(s: string, max = 4000): string {
  return s.length > max ? `...${s.slice(-max)}` : s;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Marker put in the environment of every process the helpers start: `pid:starttime` of the test
 * process. `scripts/lib/test-leftovers.mjs` kills processes whose marked owner is gone.
 */
export const OWNER_ENV = 'NSVIEW_TEST_OWNER';

let ownerId: string | undefined;
/** `pid:starttime` of this process (starttime makes it immune to pid reuse). */
export function ownerToken(): string {
  if (ownerId === undefined) {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ownerId = `${process.pid}:${fields[19]}`; // field 22 overall = starttime
  }
  return ownerId;
}

/** process.env plus the owner marker plus `extra`. */
export function childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...process.env, [OWNER_ENV]: ownerToken(), ...extra };
}

/** Runs `file args` to completion (bounded by timeoutMs). */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const check = opts.check ?? true;
  const command = [file, ...args].map((a) => (a.length > 200 ? `${a.slice(0, 200)}...` : a)).join(' ');
  return new Promise<RunResult>((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: childEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group: a timeout kills everything it started
    };
    let child: ChildProcess;
    try {
      child = spawn(file, [...args], spawnOpts);
    } catch (err) {
      reject(err);
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');

    let timedOut = false;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);

    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const stdoutBuffer = Buffer.concat(out);
      const result: RunResult = {
        code,
        signal,
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBuffer,
        timedOut,
      };
      if (check && (code !== 0 || timedOut)) reject(new CommandError(command, result));
      else resolve(result);
    };
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => finish(code, signal));
    // A daemonized grandchild may keep our pipes open forever: once the child itself has
    // exited, give the pipes a moment to drain, then stop waiting for them.
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish(code, signal);
      }, 300);
    });
  });
}

/** Runs a shell command line (`/bin/sh -c cmd`) with a default timeout; see RunOptions. */
export function sh(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('/bin/sh', ['-c', cmd], opts).catch((e: unknown) => {
    if (e instanceof CommandError) throw new CommandError(cmd, e.result);
    throw e;
  });
}

/** Quotes one argument for /bin/sh. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Sends `signal` to process group `pid` (falls back to the process); ignores ESRCH. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws after timeoutMs. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 10_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Resolves once `child` has exited (immediately if it already has); false on timeout. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** True while a process with this pid exists (zombies included). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Mount namespace inode of a process, or of one of its threads. */
export async function nsInodeOf(pid: number | 'self', tid?: number): Promise<number> {
  const link = await readlink(tid === undefined ? `/proc/${pid}/ns/mnt` : `/proc/${pid}/task/${tid}/ns/mnt`);
  const m = /^mnt:\[(\d+)\]$/.exec(link);
  if (!m) throw new Error(`unexpected ns link ${link}`);
  return Number(m[1]);
}

/** Collects a child's output lines and lets a caller wait for one matching a pattern. */
export class LineWatcher {
  private buf = '';
  private text = '';
  private waiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];

  constructor(
    stream: NodeJS.ReadableStream,
    private readonly maxChars = 1 << 20,
    onLine?: (line: string) => void,
  ) {
    stream.on('data', (chunk: Buffer | string) => {
      const s = chunk.toString();
      this.text += s;
      if (this.text.length > this.maxChars) this.text = this.text.slice(-this.maxChars);
      this.buf += s;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        onLine?.(line);
        this.waiters = this.waiters.filter((w) => {
          if (!w.re.test(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
  }

  /** Everything seen so far (the last maxChars characters). */
  all(): string {
    return this.text;
  }

  /** The first line (seen before or after this call) matching `re`. */
  waitLine(re: RegExp): Promise<string> {
    const seen = this.text
      .split('\n')
      .slice(0, -1)
      .find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }
}

/**
 * Waits for a line matching `re` from `watcher`, failing early if `child` exits first or after
 * timeoutMs. The error message carries `describe()` (e.g. the child's stderr).
 */
export async function waitForLine(
  child: ChildProcess,
  watcher: LineWatcher,
  re: RegExp,
  timeoutMs: number,
  describe: () => string,
): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  let onExit: (() => void) | undefined;
  const failure = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}\n${describe()}`)),
      timeoutMs,
    );
    onExit = () =>
      // Let the last output arrive before deciding the line never came.
      setTimeout(
        () =>
          reject(
            new Error(
              `process exited (code ${child.exitCode}, signal ${child.signalCode}) before ${re}\n${describe()}`,
            ),
          ),
        100,
      );
    if (child.exitCode !== null || child.signalCode !== null) onExit();
    else child.once('exit', onExit);
  });
  failure.catch(() => {}); // may reject after the race is over
  try {
    return await Promise.race([watcher.waitLine(re), failure]);
  } finally {
    clearTimeout(timer);
    if (onExit) child.off('exit', onExit);
  }
}

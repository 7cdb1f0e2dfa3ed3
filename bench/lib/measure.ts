/**
 * Timing one shell command line: bash reads $EPOCHREALTIME right before and after running it,
 * so node's spawn cost is not in the number, and its children's CPU time (cutime + cstime of
 * /proc/$$/stat: every process of the command line, reaped) around it: the client's CPU. The
 * command runs with `pipefail` in its own process group; `killActive()` ends every command
 * still running (SIGINT, errors).
 *
 * FUSE requests are counted in the kernel when `connections` are given: the command runs under
 * `perf stat -a` with the `fuse:fuse_request_send` tracepoint as a counter filtered on those
 * connections (one counter for all, one per opcode of interest). Counting happens in the
 * kernel (no trace text to parse, no reader woken), so it costs both servers the same and
 * little; FORGETs are not requests of this tracepoint.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childEnv, killGroup } from '../../test/helpers/index.js';

export interface Timed {
  seconds: number;
  /** Exit status of the command line (pipefail), or null when killed. */
  rc: number | null;
  stdout: string;
  /** stderr without the timing line (first 4 KiB). */
  stderr: string;
  timedOut: boolean;
  /** CPU seconds (user+system) of the command line's processes. */
  clientCpu?: number;
  /** FUSE requests the kernel sent on the given connections during the command. */
  requests?: RequestCount;
}

export interface RequestCount {
  total: number;
  /** Per opcode name, for the opcodes in COUNTED_OPS (the rest is total minus their sum). */
  byOp: Record<string, number>;
}

const MARK = '@@nsview-bench-time';
const CLK_TCK = 100;
// /proc/$$/stat split on spaces (bash's comm has none): [15] cutime, [16] cstime, in clock ticks.
const WRAPPER = `set -o pipefail; read -r -a c0 < /proc/$$/stat; s=$EPOCHREALTIME; eval "$1"; rc=$?; e=$EPOCHREALTIME; read -r -a c1 < /proc/$$/stat; echo "${MARK} $s $e $rc $((c1[15] + c1[16] - c0[15] - c0[16]))" >&2`;

/** Opcodes counted one by one (the others only in the total). */
export const COUNTED_OPS: ReadonlyArray<[number, string]> = [
  [1, 'LOOKUP'],
  [3, 'GETATTR'],
  [5, 'READLINK'],
  [14, 'OPEN'],
  [15, 'READ'],
  [18, 'RELEASE'],
  [22, 'GETXATTR'],
  [25, 'FLUSH'],
  [27, 'OPENDIR'],
  [28, 'READDIR'],
  [29, 'RELEASEDIR'],
  [44, 'READDIRPLUS'],
];

let perfOk: boolean | undefined;
/** Whether `perf stat` can count the fuse tracepoint here (perf installed, tracefs reachable). */
export function requestCountingAvailable(): boolean {
  if (perfOk === undefined) {
    try {
      execFileSync('perf', ['stat', '-x,', '-a', '-e', 'fuse:fuse_request_send', '--', 'true'], {
        stdio: 'ignore',
        timeout: 20_000,
      });
      perfOk = true;
    } catch {
      perfOk = false;
    }
  }
  return perfOk;
}

function perfArgs(connections: number[], out: string): string[] {
  const conn = connections.map((c) => `connection == ${c}`).join(' || ');
  const args = ['stat', '-x,', '-o', out, '-a', '-e', 'fuse:fuse_request_send', '--filter', conn];
  for (const [op] of COUNTED_OPS) args.push('-e', 'fuse:fuse_request_send', '--filter', `(${conn}) && opcode == ${op}`);
  return [...args, '--'];
}

function parsePerf(file: string): RequestCount | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // One CSV line per event, in the order given: count,unit,event,...
  const counts = text
    .split('\n')
    .filter((l) => l.includes('fuse:fuse_request_send'))
    .map((l) => Number(l.split(',')[0]));
  if (counts.length !== COUNTED_OPS.length + 1 || counts.some((n) => !Number.isFinite(n))) return undefined;
  const byOp: Record<string, number> = {};
  COUNTED_OPS.forEach(([, name], i) => {
    if (counts[i + 1]! > 0) byOp[name] = counts[i + 1]!;
  });
  return { total: counts[0]!, byOp };
}

/** What the kernel's tracepoint does not count: requests that get no reply from the server's side. */
const NOT_TRACED = new Set(['FORGET', 'BATCH_FORGET', 'INTERRUPT']);

/**
 * Requests between two of nsview's own per-opcode counters (its SIGUSR1 stats line), in the
 * shape of the kernel's counts: the fallback where perf cannot count.
 */
export function requestsBetween(before: Record<string, number>, after: Record<string, number>): RequestCount {
  const byOp: Record<string, number> = {};
  const counted = new Set(COUNTED_OPS.map(([, name]) => name));
  let total = 0;
  for (const [op, n] of Object.entries(after)) {
    const d = n - (before[op] ?? 0);
    if (d <= 0 || NOT_TRACED.has(op)) continue;
    total += d;
    if (counted.has(op)) byOp[op] = d;
  }
  return { total, byOp };
}

let perfSerial = 0;

const active = new Set<number>();

/** Kills the process group of every command still running. */
export function killActive(): void {
  for (const pgid of active) killGroup(pgid, 'SIGKILL');
  active.clear();
}

export function timeCommand(cmd: string, timeoutMs: number, count?: { connections: number[] }): Promise<Timed> {
  const perfOut =
    count && count.connections.length > 0 && requestCountingAvailable()
      ? path.join(os.tmpdir(), `nsview-bench-perf-${process.pid}-${perfSerial++}.csv`)
      : undefined;
  const argv = ['bash', '-c', WRAPPER, 'nsview-bench', cmd];
  if (perfOut) argv.unshift('perf', ...perfArgs(count!.connections, perfOut));
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: childEnv({ LC_ALL: 'C' }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (child.pid !== undefined) active.add(child.pid);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      if (child.pid !== undefined) active.delete(child.pid);
      reject(e);
    });
    child.on('close', () => {
      clearTimeout(timer);
      if (child.pid !== undefined) active.delete(child.pid);
      const stderrAll = Buffer.concat(err).toString('utf8');
      const lines = stderrAll.split('\n');
      const markLine = lines.reverse().find((l) => l.startsWith(MARK));
      const rest = stderrAll
        .split('\n')
        .filter((l) => !l.startsWith(MARK))
        .join('\n')
        .trim()
        .slice(0, 4096);
      const requests = perfOut ? parsePerf(perfOut) : undefined;
      if (perfOut) fs.rmSync(perfOut, { force: true });
      if (!markLine) {
        resolve({ seconds: NaN, rc: null, stdout: Buffer.concat(out).toString('utf8'), stderr: rest, timedOut });
        return;
      }
      const [, s, e, rc, ticks] = markLine.split(' ');
      const t: Timed = {
        seconds: Number(e) - Number(s),
        rc: Number(rc),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: rest,
        timedOut,
        clientCpu: Number(ticks) / CLK_TCK,
      };
      if (requests) t.requests = requests;
      resolve(t);
    });
  });
}

/**
 * Timing one shell command line: bash reads $EPOCHREALTIME right before and after running it,
 * so node's spawn cost is not in the number. The command runs with `pipefail` in its own
 * process group; `killActive()` ends every command still running (SIGINT, errors).
 */
import { spawn } from 'node:child_process';
import { childEnv, killGroup } from '../../test/helpers/index.js';

export interface Timed {
  seconds: number;
  /** Exit status of the command line (pipefail), or null when killed. */
  rc: number | null;
  stdout: string;
  /** stderr without the timing line (first 4 KiB). */
  stderr: string;
  timedOut: boolean;
}

const MARK = '@@nsview-bench-time';
const WRAPPER = `set -o pipefail; s=$EPOCHREALTIME; eval "$1"; rc=$?; e=$EPOCHREALTIME; echo "${MARK} $s $e $rc" >&2`;

const active = new Set<number>();

/** Kills the process group of every command still running. */
export function killActive(): void {
  for (const pgid of active) killGroup(pgid, 'SIGKILL');
  active.clear();
}

export function timeCommand(cmd: string, timeoutMs: number): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', WRAPPER, 'nsview-bench', cmd], {
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
      if (!markLine) {
        resolve({ seconds: NaN, rc: null, stdout: Buffer.concat(out).toString('utf8'), stderr: rest, timedOut });
        return;
      }
      const [, s, e, rc] = markLine.split(' ');
      resolve({
        seconds: Number(e) - Number(s),
        rc: Number(rc),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: rest,
        timedOut,
      });
    });
  });
}

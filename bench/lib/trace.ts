/**
 * Counting FUSE requests of one connection, from the kernel side: the `fuse:fuse_request_send`
 * and `fuse:fuse_request_end` tracepoints in a private tracefs instance, filtered on the
 * connection, streamed through trace_pipe and paired by request id. Gives, per opcode, how many
 * requests the kernel sent and how long each took from queueing to reply (queueing in
 * /dev/fuse included) without touching the daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killGroup, sleep, waitExit } from '../../test/helpers/index.js';

const TRACEFS = '/sys/kernel/tracing';
const EVENTS = ['fuse_request_send', 'fuse_request_end'] as const;

export interface OpStats {
  count: number;
  /** Sum over matched requests of (reply time - send time), µs. */
  totalUs: number;
  maxUs: number;
  errors: number;
}

export interface TraceResult {
  requests: number;
  byOp: Record<string, OpStats>;
  /** Events the kernel dropped (buffer overrun): counts are then lower bounds. */
  lost: number;
  /** Sends without a reply seen (or the reverse). */
  unmatched: number;
  /** First send to last reply, seconds. */
  spanSeconds: number;
}

/** Whether the fuse tracepoints exist here (tracefs mounted, kernel with them). */
export function tracingAvailable(): boolean {
  return (
    EVENTS.every((e) => fs.existsSync(path.join(TRACEFS, 'events/fuse', e, 'enable'))) &&
    fs.existsSync(path.join(TRACEFS, 'instances'))
  );
}

let serial = 0;
const live = new Set<FuseTrace>();

/** Removes every instance this process created (for SIGINT paths). */
export async function stopAllTraces(): Promise<void> {
  for (const t of [...live]) await t.stop().catch(() => {});
}

export class FuseTrace {
  private readonly byOp = new Map<string, OpStats>();
  private readonly pending = new Map<string, { op: string; t: number }>();
  private requests = 0;
  private unmatchedEnds = 0;
  private first = Infinity;
  private last = 0;
  private buf = '';
  private reader: ChildProcess | undefined;
  private result: Promise<TraceResult> | undefined;

  private constructor(readonly dir: string) {}

  static async start(connection: number): Promise<FuseTrace> {
    const dir = path.join(TRACEFS, 'instances', `nsview-bench-${process.pid}-${serial++}`);
    fs.mkdirSync(dir);
    const t = new FuseTrace(dir);
    live.add(t);
    try {
      fs.writeFileSync(path.join(dir, 'buffer_size_kb'), '32768');
      for (const e of EVENTS)
        fs.writeFileSync(path.join(dir, 'events/fuse', e, 'filter'), `connection == ${connection}`);
      t.reader = spawn('cat', [path.join(dir, 'trace_pipe')], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      t.reader.stdout!.setEncoding('latin1');
      t.reader.stdout!.on('data', (s: string) => t.feed(s));
      for (const e of EVENTS) fs.writeFileSync(path.join(dir, 'events/fuse', e, 'enable'), '1');
    } catch (err) {
      await t.stop().catch(() => {});
      throw err;
    }
    return t;
  }

  private feed(s: string): void {
    const text = this.buf + s;
    const lines = text.split('\n');
    this.buf = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    const m = /\s(\d+)\.(\d{6}): fuse_request_(send|end): connection \d+ req (\d+) (.*)$/.exec(line);
    if (!m) return;
    const t = Number(m[1]) * 1e6 + Number(m[2]);
    const req = m[4]!;
    if (m[3] === 'send') {
      const op = /opcode \d+ \((?:FUSE_)?(\w+)\)/.exec(m[5]!)?.[1] ?? 'UNKNOWN';
      this.requests++;
      this.stats(op).count++;
      this.pending.set(req, { op, t });
      if (t < this.first) this.first = t;
    } else {
      const p = this.pending.get(req);
      if (!p) {
        this.unmatchedEnds++;
        return;
      }
      this.pending.delete(req);
      const st = this.stats(p.op);
      const us = t - p.t;
      st.totalUs += us;
      if (us > st.maxUs) st.maxUs = us;
      if (Number(/error (-?\d+)/.exec(m[5]!)?.[1] ?? 0) !== 0) st.errors++;
      if (t > this.last) this.last = t;
    }
  }

  private stats(op: string): OpStats {
    let s = this.byOp.get(op);
    if (!s) this.byOp.set(op, (s = { count: 0, totalUs: 0, maxUs: 0, errors: 0 }));
    return s;
  }

  /** Disables the events, drains what is buffered, removes the instance. Idempotent. */
  stop(): Promise<TraceResult> {
    return (this.result ??= (async () => {
      let lost = 0;
      try {
        for (const e of EVENTS) fs.writeFileSync(path.join(this.dir, 'events/fuse', e, 'enable'), '0');
        // Let the reader drain the ring buffers.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const st = this.cpuStats();
          lost = st.overrun;
          if (st.entries === 0 || Date.now() > deadline) break;
          await sleep(50);
        }
        await sleep(100);
      } finally {
        if (this.reader) {
          killGroup(this.reader.pid, 'SIGKILL');
          await waitExit(this.reader, 5_000);
        }
        for (let i = 0; i < 50; i++) {
          try {
            fs.rmdirSync(this.dir);
            break;
          } catch {
            await sleep(100);
          }
        }
        live.delete(this);
      }
      if (this.buf) this.line(this.buf);
      return {
        requests: this.requests,
        byOp: Object.fromEntries([...this.byOp.entries()].sort((a, b) => b[1].count - a[1].count)),
        lost,
        unmatched: this.pending.size + this.unmatchedEnds,
        spanSeconds: this.last > this.first ? (this.last - this.first) / 1e6 : 0,
      };
    })());
  }

  private cpuStats(): { entries: number; overrun: number } {
    let entries = 0;
    let overrun = 0;
    const perCpu = path.join(this.dir, 'per_cpu');
    for (const cpu of fs.readdirSync(perCpu)) {
      const s = fs.readFileSync(path.join(perCpu, cpu, 'stats'), 'utf8');
      entries += Number(/^entries: (\d+)/m.exec(s)?.[1] ?? 0);
      overrun += Number(/^overrun: (\d+)/m.exec(s)?.[1] ?? 0);
    }
    return { entries, overrun };
  }
}

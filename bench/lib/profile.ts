/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`, one .cpuprofile per thread) written by an
 * nsview daemon: self time per function, heaviest first.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  /** The thread: "main" for the first file of a process, else "worker N". */
  thread: string;
  /** Profile length, seconds. */
  wallSeconds: number;
  /** Time not idle (program, GC and JS), seconds. */
  busySeconds: number;
  top: Array<{ fn: string; where: string; selfSeconds: number; percentOfBusy: number }>;
  /** nsview's own functions (dist/src) by inclusive time: what each step of a request costs. */
  inclusive: Array<{ fn: string; where: string; seconds: number; percentOfBusy: number }>;
}

/** A time window on the monotonic clock (µs, as V8's profile timestamps). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

function summarize(file: string, thread: string, topN: number, window?: ProfileWindow): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time from the samples and their time deltas (more exact than hitCount × interval),
  // only inside the window when one is given (the timed command, not the daemon's start-up).
  const self = new Map<number, number>();
  let wallUs = 0;
  if (p.samples && p.timeDeltas) {
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i] ?? 0;
      if (window && (t < window.fromUs || t > window.toUs)) continue;
      const dt = p.timeDeltas[i + 1] ?? 0;
      wallUs += dt;
      self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    }
  }
  if (!window) wallUs = p.endTime - p.startTime;
  const where = (n: ProfileNode) => {
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    return url ? `${path.relative(process.cwd(), url) || url}:${n.callFrame.lineNumber + 1}` : '';
  };
  // Inclusive time of nsview's own functions: each sample counts once for every distinct one
  // of them on its stack.
  const incl = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const n0 = byId.get(id);
    if (!n0 || n0.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (!n.callFrame.url.includes('/dist/src/')) continue;
      const fn = n.callFrame.functionName || '(anonymous)';
      const key = `${fn}@${where(n)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const a = incl.get(key) ?? { fn, where: where(n), us: 0 };
      a.us += us;
      incl.set(key, a);
    }
  }
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') continue;
    busy += us;
    const key = `${fn}@${where(n)}`;
    const a = agg.get(key) ?? { fn, where: where(n), us: 0 };
    a.us += us;
    agg.set(key, a);
  }
  const top = [...agg.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((a) => ({
      fn: a.fn,
      where: a.where,
      selfSeconds: a.us / 1e6,
      percentOfBusy: busy > 0 ? (100 * a.us) / busy : 0,
    }));
  const inclusive = [...incl.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((a) => ({ fn: a.fn, where: a.where, seconds: a.us / 1e6, percentOfBusy: busy > 0 ? (100 * a.us) / busy : 0 }));
  return { file, thread, wallSeconds: wallUs / 1e6, busySeconds: busy / 1e6, top, inclusive };
}

/**
 * Summaries of every .cpuprofile in `dir`, the main thread first (node names them
 * CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile; thread 0 is the main thread).
 */
export function summarizeProfiles(dir: string, topN = 15, window?: ProfileWindow): ProfileSummary[] {
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  const threadOf = (f: string) => Number(f.split('.')[4] ?? NaN);
  files.sort((a, b) => threadOf(a) - threadOf(b));
  const out: ProfileSummary[] = [];
  for (const f of files) {
    try {
      const tid = threadOf(f);
      out.push(summarize(path.join(dir, f), tid === 0 ? 'main' : `worker ${tid}`, topN, window));
    } catch {
      /* a truncated profile (killed daemon): skip it */
    }
  }
  return out;
}

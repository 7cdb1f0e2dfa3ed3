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
}

function summarize(file: string, thread: string, topN: number): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Self time from the samples and their time deltas (more exact than hitCount × interval).
  const self = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i + 1] ?? 0;
      self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
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
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    const where = url ? `${path.relative(process.cwd(), url) || url}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${fn}@${where}`;
    const a = agg.get(key) ?? { fn, where, us: 0 };
    a.us += us;
    agg.set(key, a);
  }
  const top = [...agg.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((a) => ({ fn: a.fn, where: a.where, selfSeconds: a.us / 1e6, percentOfBusy: busy > 0 ? (100 * a.us) / busy : 0 }));
  return { file, thread, wallSeconds: (p.endTime - p.startTime) / 1e6, busySeconds: busy / 1e6, top };
}

/**
 * Summaries of every .cpuprofile in `dir`, the main thread first (node names them
 * CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile; thread 0 is the main thread).
 */
export function summarizeProfiles(dir: string, topN = 15): ProfileSummary[] {
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
      out.push(summarize(path.join(dir, f), tid === 0 ? 'main' : `worker ${tid}`, topN));
    } catch {
      /* a truncated profile (killed daemon): skip it */
    }
  }
  return out;
}

/** Results of a benchmark run: statistics, the issue's targets, Markdown and JSON. */
import type { Manifest } from './fixture.js';
import type { ProfileSummary } from './profile.js';
import type { TraceResult } from './trace.js';
import type { VariantName } from './workloads.js';

export interface Sample {
  run: number;
  /** Position of this variant within its run (0 = first). */
  position: number;
  seconds: number;
  /** In the workload's unit. */
  value: number;
  /** 0 when the run counts (see toleratedRc), else the exit status (null: timed out/killed). */
  rc: number | null;
  /** The real exit status when the workload tolerated a non-zero one. */
  toleratedRc?: number;
  output: string;
  stderr?: string;
  /** CPU seconds the serving process used during the run (FUSE variants). */
  cpu?: { total: number; main: number };
}

export interface TracePass {
  variant: VariantName;
  seconds: number;
  cpu?: { total: number; main: number };
  trace: TraceResult;
  profiles?: ProfileSummary[];
}

export interface WorkloadResult {
  name: string;
  title: string;
  unit: 's' | 'MB/s';
  prep: string;
  nativeLabel?: string;
  samples: Partial<Record<VariantName, Sample[]>>;
  warmupOutputs?: Partial<Record<VariantName, string>>;
  traces: TracePass[];
  notes: string[];
  error?: string;
  /** The main nsview daemon right after this workload. */
  nsviewAfter?: { hwmBytes: number; rssBytes: number; fds: number };
}

export interface DaemonStats {
  /** The nsview daemon that served every warm workload, read after the run. */
  main?: { pid: number; hwmBytes: number; hwmAtStartBytes: number; rssBytes: number; fds: number; fdsAtStart: number; threads: number };
  /** Highest VmHWM of any nsview daemon of the timed runs (fresh ones for cold runs included). */
  maxHwmBytes?: number;
}

export interface Check {
  name: string;
  value: number;
  limit: number;
  pass: boolean;
}

export interface BenchResult {
  mode: 'full' | 'quick';
  nsviewRevision: string;
  runs: number;
  namespaces: number;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  machine: {
    cores: number;
    cpuModel: string;
    memGiB: number;
    kernel: string;
    node: string;
    bindfs: string;
    loadStart: number[];
    loadEnd: number[];
  };
  fixture: Manifest & { dir: string };
  nsviewArgs: string[];
  nsInode: number;
  workloads: WorkloadResult[];
  daemon: DaemonStats;
  checks: Check[];
  errors: string[];
}

// ---------------------------------------------------------------------------------------------
// Statistics

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
  failed: number;
}

export function statOf(samples: Sample[] | undefined): Stat | undefined {
  if (!samples || samples.length === 0) return undefined;
  const ok = samples.filter((s) => s.rc === 0 && Number.isFinite(s.value));
  const v = ok.map((s) => s.value).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0, failed: samples.length };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length, failed: samples.length - ok.length };
}

function medianOf(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function ratio(w: WorkloadResult, a: VariantName, b: VariantName): number {
  const sa = statOf(w.samples[a]);
  const sb = statOf(w.samples[b]);
  return sa && sb ? sa.median / sb.median : NaN;
}

// ---------------------------------------------------------------------------------------------
// Targets of the issue

export function evaluateChecks(r: Omit<BenchResult, 'checks'>): Check[] {
  const checks: Check[] = [];
  const w = (name: string) => r.workloads.find((x) => x.name === name && !x.error);
  const add = (name: string, value: number, limit: number, pass: (v: number) => boolean) =>
    checks.push({ name, value, limit, pass: Number.isFinite(value) && pass(value) });
  const cold = w('cold-walk');
  if (cold) add('cold walk: nsview/bindfs time', ratio(cold, 'nsview', 'bindfs'), 1.0, (v) => v <= 1.0);
  const tar = w('tar');
  if (tar) add('tar: nsview/bindfs time', ratio(tar, 'nsview', 'bindfs'), 1.0, (v) => v <= 1.0);
  const seq = w('seq-read');
  if (seq) add('seq read: nsview/bindfs MB/s', ratio(seq, 'nsview', 'bindfs'), 1.0, (v) => v >= 1.0);
  const top = w('topdir');
  if (top) add(`top dir with ${r.namespaces} namespaces: ls -l / lsns -t mnt time`, ratio(top, 'nsview', 'native'), 2.0, (v) => v <= 2.0);
  const topNames = w('topdir-ls');
  if (topNames) add(`top dir with ${r.namespaces} namespaces: ls / lsns -t mnt time`, ratio(topNames, 'nsview', 'native'), 2.0, (v) => v <= 2.0);
  const hwm = r.daemon.maxHwmBytes ?? r.daemon.main?.hwmBytes;
  if (hwm !== undefined) add('nsview peak RSS (VmHWM), MB', hwm / 1e6, 150, (v) => v <= 150);
  return checks;
}

export function checkLines(checks: Check[]): string[] {
  return checks.map((c) => {
    const op = c.name.includes('MB/s') ? '>=' : '<=';
    return `${c.pass ? 'PASS' : 'FAIL'} ${c.name} = ${fmtNum(c.value)} (target ${op} ${c.limit})`;
  });
}

// ---------------------------------------------------------------------------------------------
// Markdown

function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function fmtStat(s: Stat | undefined): string {
  if (!s) return '–';
  if (s.n === 0) return `failed (${s.failed})`;
  const range = s.n > 1 ? ` (${fmtNum(s.min)}–${fmtNum(s.max)})` : '';
  return `${fmtNum(s.median)}${range}${s.failed ? ` ⚠${s.failed} failed` : ''}`;
}

/** A table cell: pipes escaped. */
const cell = (s: string) => s.replaceAll('|', '\\|');

function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–';
}

/** Just what each variant printed (for workloads whose output depends on the machine). */
function outputsOf(w: WorkloadResult): string {
  const parts = (Object.entries(w.samples) as Array<[VariantName, Sample[]]>).map(([v, ss]) => `${v} ${[...new Set(ss.map((s) => s.output))].join('/')}`);
  return `not compared (${parts.join('; ')} lines)`;
}

/** Whether every variant printed what it should; a short text for the table. */
function outputCheck(w: WorkloadResult, expect: Map<string, string | undefined>, mayDiffer: Map<string, Partial<Record<VariantName, string>>>): string {
  const exp = expect.get(w.name);
  const may = mayDiffer.get(w.name) ?? {};
  const outs = new Map<VariantName, Set<string>>();
  for (const [v, ss] of Object.entries(w.samples) as Array<[VariantName, Sample[]]>) {
    outs.set(v, new Set(ss.filter((s) => s.rc === 0).map((s) => s.output)));
  }
  const problems: string[] = [];
  const native = outs.get('native');
  for (const [v, set] of outs) {
    if (set.size > 1) problems.push(`${v} varies: ${[...set].join('/')}`);
    const one = [...set][0];
    if (one === undefined) continue;
    if (exp !== undefined && one !== exp) problems.push(`${v}=${one}, expected ${exp}`);
    else if (exp === undefined && native && v !== 'native' && !may[v] && ![...native].includes(one)) problems.push(`${v}=${one} ≠ native ${[...native].join('/')}`);
  }
  if (problems.length > 0) return `⚠ ${problems.join('; ')}`;
  const differs = [...outs.entries()].filter(([v, set]) => may[v] && native && ![...native].includes([...set][0] ?? ''));
  if (differs.length > 0) return `ok (${differs.map(([v, set]) => `${v} ${[...set][0]} vs ${[...native!][0]}: ${may[v]}`).join('; ')})`;
  return exp !== undefined ? `ok (${exp})` : 'ok (same)';
}

export function renderMarkdown(
  r: BenchResult,
  expect: Map<string, string | undefined>,
  mayDiffer: Map<string, Partial<Record<VariantName, string>>>,
  unchecked: Set<string>,
): string {
  const L: string[] = [];
  const m = r.machine;
  const f = r.fixture;
  L.push(`# nsview benchmark (${r.mode}, ${r.runs} interleaved runs)`, '');
  L.push(`- when: ${r.startedAt} (${(r.seconds / 60).toFixed(1)} min)`);
  L.push(`- machine: ${m.cores} cores (${m.cpuModel}), ${m.memGiB.toFixed(0)} GiB, kernel ${m.kernel}, node ${m.node}, ${m.bindfs}`);
  L.push(`- load average at start ${m.loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${m.loadEnd.map((x) => x.toFixed(2)).join(' ')} (a shared machine: ratios matter more than absolute times)`);
  L.push(
    `- fixture: ${f.entries.toLocaleString('en-US')} entries (${f.dirs.toLocaleString('en-US')} dirs, ${f.files.toLocaleString('en-US')} files, ${f.symlinks.toLocaleString('en-US')} symlinks, ${f.hardlinks} hardlinks), ${(f.treeBytes / 1e6).toFixed(0)} MB of file data; big file ${(f.bigBytes / 2 ** 20).toFixed(0)} MiB; in mount namespace ${r.nsInode} as /data (pivot_root'ed holder)`,
  );
  L.push(`- nsview: ${r.nsviewRevision}, \`nsview mount -f MP${r.nsviewArgs.length ? ' ' + r.nsviewArgs.join(' ') : ''}\` (defaults otherwise); bindfs: \`bindfs -o ro /proc/PID/root/data MP\`; native: \`/proc/PID/root/data\``);
  L.push('');
  L.push('Median (min–max) over the runs; variants alternate within each run (order rotated). Times in s (lower is better), throughput in MB/s = 10⁶ B/s (higher is better); ratios are of the medians, in the row\'s unit.', '');
  L.push('| workload | unit | native | bindfs | nsview | nsview/bindfs | nsview/native | output check |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const w of r.workloads) {
    if (w.error) {
      L.push(`| ${cell(w.title)} | ${w.unit} | error: ${cell(w.error.split('\n')[0]!.slice(0, 120))} | | | | | |`);
      continue;
    }
    const native = fmtStat(statOf(w.samples.native));
    L.push(
      `| ${cell(w.title)} | ${w.unit} | ${w.nativeLabel ? `${native} (${w.nativeLabel})` : native} | ${fmtStat(statOf(w.samples.bindfs))} | ${fmtStat(statOf(w.samples.nsview))} | ${fmtRatio(ratio(w, 'nsview', 'bindfs'))} | ${fmtRatio(ratio(w, 'nsview', 'native'))} | ${cell(unchecked.has(w.name) ? outputsOf(w) : outputCheck(w, expect, mayDiffer))} |`,
    );
  }
  L.push('');
  const d = r.daemon;
  if (d.main) {
    L.push(
      `nsview daemon after the run (pid ${d.main.pid}, served every warm workload): peak RSS (VmHWM) ${(d.main.hwmBytes / 1e6).toFixed(0)} MB (${(d.main.hwmAtStartBytes / 1e6).toFixed(0)} MB right after mounting), RSS now ${(d.main.rssBytes / 1e6).toFixed(0)} MB, ${d.main.fds} open fds (${d.main.fdsAtStart} right after mounting), ${d.main.threads} threads.`,
    );
  }
  const after = r.workloads.filter((w) => w.nsviewAfter);
  if (after.length > 0) {
    L.push('', `Main nsview daemon after each workload (VmHWM / RSS / fds): ${after.map((w) => `${w.name} ${(w.nsviewAfter!.hwmBytes / 1e6).toFixed(0)}/${(w.nsviewAfter!.rssBytes / 1e6).toFixed(0)} MB/${w.nsviewAfter!.fds}`).join(', ')}.`);
  }
  if (d.maxHwmBytes !== undefined) L.push(`Highest VmHWM of any nsview daemon in the timed runs (fresh ones for cold runs included): ${(d.maxHwmBytes / 1e6).toFixed(0)} MB.`);
  L.push('');

  // Daemon CPU per run.
  const cpuRows = r.workloads.filter((w) => !w.error && (w.samples.nsview?.some((s) => s.cpu) || w.samples.bindfs?.some((s) => s.cpu)));
  if (cpuRows.length > 0) {
    L.push('## Serving process CPU per run (median)', '');
    L.push('CPU seconds (user+sys) the FUSE server used during one run, next to the run\'s wall time. nsview\'s main thread is the JavaScript thread that answers every FUSE request; its io workers do the filesystem syscalls.', '');
    L.push('| workload | bindfs wall s | bindfs CPU s | nsview wall s | nsview CPU s | nsview main-thread CPU s |');
    L.push('|---|---|---|---|---|---|');
    for (const w of cpuRows) {
      const cpu = (v: VariantName, k: 'total' | 'main') => medianOf((w.samples[v] ?? []).filter((s) => s.cpu).map((s) => s.cpu![k]));
      const wall = (v: VariantName) => medianOf((w.samples[v] ?? []).filter((s) => s.rc === 0).map((s) => s.seconds));
      L.push(`| ${w.name} | ${fmtNum(wall('bindfs'))} | ${fmtNum(cpu('bindfs', 'total'))} | ${fmtNum(wall('nsview'))} | ${fmtNum(cpu('nsview', 'total'))} | ${fmtNum(cpu('nsview', 'main'))} |`);
    }
    L.push('');
  }

  // FUSE requests per workload.
  const traced = r.workloads.filter((w) => w.traces.length > 0);
  if (traced.length > 0) {
    L.push('## FUSE requests per workload (one extra traced run each)', '');
    L.push('Counted in the kernel (tracepoints fuse:fuse_request_send/end on the mount\'s connection), with the mean time from queueing a request to its reply. A fresh mount per traced run; warm workloads get one untraced run on it first.', '');
    L.push('| workload | variant | wall s | CPU s (main) | requests | per opcode: count × mean µs |');
    L.push('|---|---|---|---|---|---|');
    for (const w of traced) {
      for (const t of w.traces) {
        const ops = Object.entries(t.trace.byOp)
          .filter(([, s]) => s.count > 0)
          .slice(0, 8)
          .map(([op, s]) => `${op} ${s.count.toLocaleString('en-US')} × ${s.count ? (s.totalUs / s.count).toFixed(0) : '?'}${s.errors ? ` (${s.errors} err)` : ''}`)
          .join(', ');
        const cpu = t.cpu ? (t.variant === 'nsview' ? `${fmtNum(t.cpu.total)} (${fmtNum(t.cpu.main)})` : fmtNum(t.cpu.total)) : '–';
        const lost = t.trace.lost ? ` ⚠ ${t.trace.lost} events lost` : '';
        L.push(`| ${w.name} | ${t.variant} | ${fmtNum(t.seconds)} | ${cpu} | ${t.trace.requests.toLocaleString('en-US')}${lost} | ${ops} |`);
      }
    }
    L.push('');
  }

  const profiled = r.workloads.flatMap((w) => w.traces.filter((t) => t.profiles && t.profiles.length > 0).map((t) => ({ w, t })));
  if (profiled.length > 0) {
    L.push('## nsview CPU profile (traced run, `node --cpu-prof`)', '');
    for (const { w, t } of profiled) {
      for (const p of t.profiles!) {
        if (p.busySeconds < 0.05) continue;
        L.push(`**${w.name}**, ${p.thread}: busy ${fmtNum(p.busySeconds)} s of ${fmtNum(p.wallSeconds)} s`, '');
        L.push('| self s | % of busy | function | where |');
        L.push('|---|---|---|---|');
        for (const x of p.top.slice(0, 10)) L.push(`| ${fmtNum(x.selfSeconds)} | ${x.percentOfBusy.toFixed(1)} | ${x.fn} | ${x.where} |`);
        L.push('');
      }
    }
  }

  const notes = r.workloads.flatMap((w) => w.notes.map((n) => `- ${w.name}: ${n}`));
  if (notes.length > 0 || r.errors.length > 0) {
    L.push('## Notes', '');
    L.push(...notes, ...r.errors.map((e) => `- error: ${e}`), '');
  }
  L.push('## Targets (issue 5)', '');
  L.push('```', ...checkLines(r.checks), '```', '');
  return L.join('\n');
}

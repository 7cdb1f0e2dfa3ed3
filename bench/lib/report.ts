/** Results of a benchmark run: statistics, the issue's targets, Markdown and JSON. */
import type { Manifest } from './fixture.js';
import type { RequestCount } from './measure.js';
import type { ProfileSummary } from './profile.js';
import type { TraceResult } from './trace.js';
import { kindOf, VARIANTS, type VariantName } from './workloads.js';

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
  /** CPU seconds of the client's processes (the command line). */
  clientCpu?: number;
  /** FUSE requests the kernel sent the server(s) during the run. */
  requests?: RequestCount;
  /** Peak RSS (VmHWM) of the fresh server process(es) after the run. */
  peakRssBytes?: number;
}

export interface TracePass {
  variant: VariantName;
  seconds: number;
  cpu?: { total: number; main: number };
  trace?: TraceResult;
  requests?: RequestCount;
  profiles?: ProfileSummary[];
}

export interface WorkloadResult {
  name: string;
  title: string;
  unit: 's' | 'MB/s';
  prep: string;
  nativeLabel?: string;
  /** Parallel workloads: the samples with all clients at once (`single`: one client). */
  samples: Partial<Record<VariantName, Sample[]>>;
  parallel?: number;
  single?: Partial<Record<VariantName, Sample[]>>;
  warmupOutputs?: Partial<Record<VariantName, string>>;
  traces: TracePass[];
  notes: string[];
  error?: string;
  /** The main nsview daemon right after this workload. */
  nsviewAfter?: { hwmBytes: number; rssBytes: number; fds: number };
}

export interface DaemonStats {
  /** The nsview daemon that served every warm workload, read after the run. */
  main?: {
    pid: number;
    hwmBytes: number;
    hwmAtStartBytes: number;
    rssBytes: number;
    fds: number;
    fdsAtStart: number;
    threads: number;
  };
  /** Highest VmHWM of any nsview daemon of the timed runs (fresh ones for cold runs included). */
  maxHwmBytes?: number;
}

export interface Check {
  name: string;
  value: number;
  op: '<=' | '>=';
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
  variants: VariantName[];
  /** Whether FUSE requests were counted in the kernel (perf), for every FUSE variant. */
  counted: boolean;
  /** How: perf, nsview (its own counters: nsview variants only) or none. */
  countedBy: 'perf' | 'nsview' | 'none';
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
// Per-run derived numbers

/** Server CPU µs per FUSE request of one run (native: undefined). */
export function cpuPerRequest(s: Sample, which: 'total' | 'main' = 'total'): number | undefined {
  if (!s.cpu || !s.requests || s.requests.total <= 0) return undefined;
  return (s.cpu[which] * 1e6) / s.requests.total;
}

function good(ss: Sample[] | undefined): Sample[] {
  return (ss ?? []).filter((s) => s.rc === 0);
}

/** Median over the good runs of f (undefined values skipped). */
export function medianBy(ss: Sample[] | undefined, f: (s: Sample) => number | undefined): number {
  return medianOf(
    good(ss)
      .map(f)
      .filter((x): x is number => x !== undefined && Number.isFinite(x)),
  );
}

/** "N at once / 1" wall-time ratio of a parallel workload, for one variant. */
export function parallelRatio(w: WorkloadResult, v: VariantName): number {
  const one = statOf(w.single?.[v]);
  const all = statOf(w.samples[v]);
  return one && all ? all.median / one.median : NaN;
}

// ---------------------------------------------------------------------------------------------
// Targets of the issue

export function evaluateChecks(r: Omit<BenchResult, 'checks'>): Check[] {
  const checks: Check[] = [];
  const w = (name: string) => r.workloads.find((x) => x.name === name && !x.error);
  const add = (name: string, value: number, op: '<=' | '>=', limit: number) =>
    checks.push({
      name,
      value,
      op,
      limit,
      pass: Number.isFinite(value) && (op === '<=' ? value <= limit : value >= limit),
    });
  const has = (v: VariantName) => r.variants.includes(v);
  for (const name of ['cold-walk', 'grep', 'tar']) {
    const x = w(name);
    if (!x) continue;
    const perReq = (v: VariantName) => medianBy(x.samples[v], (s) => cpuPerRequest(s));
    if (has('nsview-bp0') && has('bindfs') && r.counted)
      add(
        `${name}: server CPU per request, nsview --busy-poll=0 / bindfs`,
        perReq('nsview-bp0') / perReq('bindfs'),
        '<=',
        1.0,
      );
    if (has('nsview-bp0') && has('bindfs'))
      add(`${name}: wall time, nsview --busy-poll=0 / bindfs`, ratio(x, 'nsview-bp0', 'bindfs'), '<=', 0.7);
    if (has('nsview') && has('bindfs'))
      add(`${name}: wall time, nsview (default) / bindfs`, ratio(x, 'nsview', 'bindfs'), '<=', 0.7);
  }
  const seq = w('seq-read');
  if (seq && has('native')) {
    for (const v of ['nsview', 'nsview-bp0'] as const)
      if (has(v)) add(`seq read: ${v} / native MB/s`, ratio(seq, v, 'native'), '>=', 0.9);
  }
  for (const name of ['par-walk', 'par-grep']) {
    const x = w(name);
    if (!x) continue;
    for (const v of ['nsview', 'nsview-bp0'] as const) {
      if (!has(v)) continue;
      const mine = parallelRatio(x, v);
      if (has('bindfs'))
        add(
          `${name}: ${v} (${x.parallel} at once / 1) vs bindfs' ratio (${fmtNum(parallelRatio(x, 'bindfs'))})`,
          mine / parallelRatio(x, 'bindfs'),
          '<=',
          1.0,
        );
      if (has('native'))
        add(
          `${name}: ${v} (${x.parallel} at once / 1) vs native's ratio (${fmtNum(parallelRatio(x, 'native'))})`,
          mine / parallelRatio(x, 'native'),
          '<=',
          1.2,
        );
    }
  }
  const top = w('topdir');
  if (top && has('nsview'))
    add(`top dir with ${r.namespaces} namespaces: ls -l / lsns -t mnt time`, ratio(top, 'nsview', 'native'), '<=', 2.0);
  const topNames = w('topdir-ls');
  if (topNames && has('nsview'))
    add(
      `top dir with ${r.namespaces} namespaces: ls / lsns -t mnt time`,
      ratio(topNames, 'nsview', 'native'),
      '<=',
      2.0,
    );
  const mem = w('mem-1m');
  if (mem) {
    for (const v of ['nsview', 'nsview-bp0'] as const) {
      const hwm = medianBy(mem.samples[v], (s) => s.peakRssBytes);
      if (has(v) && Number.isFinite(hwm)) add(`mem-1m: ${v} peak RSS (VmHWM) after the walk, MB`, hwm / 1e6, '<=', 150);
    }
  }
  const hwm = r.daemon.maxHwmBytes ?? r.daemon.main?.hwmBytes;
  if (hwm !== undefined) add('nsview peak RSS (VmHWM) in the other workloads, MB', hwm / 1e6, '<=', 150);
  return checks;
}

export function checkLines(checks: Check[]): string[] {
  return checks.map((c) => `${c.pass ? 'PASS' : 'FAIL'} ${c.name} = ${fmtNum(c.value)} (target ${c.op} ${c.limit})`);
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

function fmtInt(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a';
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
  const parts = (Object.entries(w.samples) as Array<[VariantName, Sample[]]>).map(
    ([v, ss]) => `${v} ${[...new Set(ss.map((s) => s.output))].join('/')}`,
  );
  return `not compared (${parts.join('; ')} lines)`;
}

/** Whether every variant printed what it should; a short text for the table. */
function outputCheck(
  w: WorkloadResult,
  expect: Map<string, string | undefined>,
  mayDiffer: Map<string, Partial<Record<VariantName, string>>>,
): string {
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
    else if (exp === undefined && native && v !== 'native' && !may[v] && ![...native].includes(one))
      problems.push(`${v}=${one} ≠ native ${[...native].join('/')}`);
  }
  if (problems.length > 0) return `⚠ ${problems.join('; ')}`;
  const differs = [...outs.entries()].filter(
    ([v, set]) => may[v] && native && ![...native].includes([...set][0] ?? ''),
  );
  if (differs.length > 0)
    return `ok (${differs.map(([v, set]) => `${v} ${[...set][0]} vs ${[...native!][0]}: ${may[v]}`).join('; ')})`;
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
  L.push(
    `- machine: ${m.cores} cores (${m.cpuModel}), ${m.memGiB.toFixed(0)} GiB, kernel ${m.kernel}, node ${m.node}, ${m.bindfs}`,
  );
  L.push(
    `- load average at start ${m.loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${m.loadEnd.map((x) => x.toFixed(2)).join(' ')} (a shared machine: ratios matter more than absolute times)`,
  );
  L.push(
    `- fixture: ${f.entries.toLocaleString('en-US')} entries (${f.dirs.toLocaleString('en-US')} dirs, ${f.files.toLocaleString('en-US')} files, ${f.symlinks.toLocaleString('en-US')} symlinks, ${f.hardlinks} hardlinks), ${(f.treeBytes / 1e6).toFixed(0)} MB of file data; big file ${(f.bigBytes / 2 ** 20).toFixed(0)} MiB; in mount namespace ${r.nsInode} as /data (pivot_root'ed holder)`,
  );
  L.push(
    `- nsview: ${r.nsviewRevision}, \`nsview mount -f MP${r.nsviewArgs.length ? ' ' + r.nsviewArgs.join(' ') : ''}\` (defaults otherwise); bindfs: \`bindfs -o ro /proc/PID/root/data MP\`; native: \`/proc/PID/root/data\``,
  );
  L.push('');
  L.push(
    `- variants: ${r.variants.join(', ')} (nsview-bp0 = nsview with \`--busy-poll=0\`); FUSE requests ${r.countedBy === 'perf' ? 'counted in the kernel (perf stat: fuse:fuse_request_send, filtered on the connection)' : r.countedBy === 'nsview' ? "from nsview's own counters (SIGUSR1 stats line; FORGET and INTERRUPT left out), none for bindfs" : 'not counted'}`,
  );
  L.push('');
  L.push(
    "Median (min–max) over the runs; variants alternate within each run (order rotated). Times in s (lower is better), throughput in MB/s = 10⁶ B/s (higher is better); ratios are of the medians, in the row's unit. Parallel workloads: the time with all clients at once.",
    '',
  );
  const vs = VARIANTS.filter((v) => r.variants.includes(v));
  const nsv = vs.filter((v) => kindOf(v) === 'nsview');
  const ratioCols: Array<[VariantName, VariantName]> = [];
  for (const v of nsv) {
    if (vs.includes('bindfs')) ratioCols.push([v, 'bindfs']);
    if (vs.includes('native')) ratioCols.push([v, 'native']);
  }
  L.push(
    `| workload | unit | ${vs.join(' | ')} | ${ratioCols.map(([a, b]) => `${a}/${b}`).join(' | ')} | output check |`,
  );
  L.push(`|---|---|${vs.map(() => '---|').join('')}${ratioCols.map(() => '---|').join('')}---|`);
  for (const w of r.workloads) {
    if (w.error) {
      L.push(
        `| ${cell(w.title)} | ${w.unit} | error: ${cell(w.error.split('\n')[0]!.slice(0, 120))} |${vs
          .slice(1)
          .map(() => ' |')
          .join('')}${ratioCols.map(() => ' |').join('')} |`,
      );
      continue;
    }
    const cells = vs.map((v) => {
      const c = fmtStat(statOf(w.samples[v]));
      return v === 'native' && w.nativeLabel ? `${c} (${w.nativeLabel})` : c;
    });
    L.push(
      `| ${cell(w.title)} | ${w.unit} | ${cells.join(' | ')} | ${ratioCols.map(([a, b]) => fmtRatio(ratio(w, a, b))).join(' | ')} | ${cell(unchecked.has(w.name) ? outputsOf(w) : outputCheck(w, expect, mayDiffer))} |`,
    );
  }
  L.push('');

  // Wall, CPU, requests, CPU per request: per workload, every variant side by side.
  const detailed = r.workloads.filter((w) => (!w.error && w.unit === 's') || (!w.error && w.name === 'seq-read'));
  if (detailed.length > 0) {
    L.push('## Per workload: wall time, CPU, FUSE requests, CPU per request (medians)', '');
    L.push(
      "Server CPU: user+system seconds of the serving process(es) during the run, all threads (`/proc/PID/stat`); for native, there is no server, and the column shows the client's CPU instead. " +
        "JS thread: nsview's main thread, the one that answers every request. Client CPU: the command line's processes (kernel time of their system calls included). " +
        "Requests: FUSE requests the kernel sent (FORGET not included). µs/request: server CPU / requests, per run, median; `×bindfs`: that over bindfs'. " +
        "Requests carry different amounts of work (one READDIRPLUS answers a whole directory with attributes, where bindfs needs a LOOKUP per entry), so `CPU ×bindfs`, the whole run's server CPU over bindfs', is the fairer comparison of work done.",
      '',
    );
    L.push(
      '| workload | variant | wall s | server CPU s | CPU ×bindfs | JS thread CPU s | client CPU s | FUSE requests | server CPU µs/request | JS thread µs/request | µs/request ×bindfs |',
    );
    L.push('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const w of detailed) {
      const bindfsPer = medianBy(w.samples.bindfs, (s) => cpuPerRequest(s));
      const bindfsCpu = medianBy(w.samples.bindfs, (s) => s.cpu?.total);
      for (const v of vs) {
        const ss = w.samples[v];
        if (!ss || ss.length === 0) continue;
        const wall = medianBy(ss, (s) => s.seconds);
        const isNs = kindOf(v) === 'nsview';
        const server = v === 'native' ? medianBy(ss, (s) => s.clientCpu) : medianBy(ss, (s) => s.cpu?.total);
        const main = isNs ? medianBy(ss, (s) => s.cpu?.main) : NaN;
        const client = medianBy(ss, (s) => s.clientCpu);
        const reqs = medianBy(ss, (s) => s.requests?.total);
        const per = medianBy(ss, (s) => cpuPerRequest(s));
        const perMain = isNs ? medianBy(ss, (s) => cpuPerRequest(s, 'main')) : NaN;
        const rel = v !== 'native' && v !== 'bindfs' ? fmtRatio(per / bindfsPer) : '';
        const label = w.parallel ? `${w.name} (${w.parallel} clients)` : w.name;
        L.push(
          `| ${label} | ${v} | ${fmtNum(wall)} | ${v === 'native' ? `(${fmtNum(server)} client)` : fmtNum(server)} | ${isNs ? fmtRatio(server / bindfsCpu) : ''} | ${isNs ? fmtNum(main) : ''} | ${fmtNum(client)} | ${v === 'native' ? '–' : fmtInt(reqs)} | ${v === 'native' ? '–' : fmtNum(per)} | ${isNs ? fmtNum(perMain) : ''} | ${rel} |`,
        );
      }
    }
    L.push('');
  }

  // Parallel clients: one against all at once, per variant.
  const par = r.workloads.filter((w) => !w.error && w.parallel);
  if (par.length > 0) {
    L.push('## Parallel clients (medians)', '');
    L.push(
      "Each run times one client on the first namespace and then (or first) all clients at once, one per namespace, on the same kind of mount; each namespace holds its own copy of the tree. bindfs serves one tree per process, so it runs one process per namespace; nsview serves every namespace from one process. The ratio is all-at-once / one; `×native` is that ratio over native's.",
      '',
    );
    L.push(
      '| workload | variant | 1 client s | all at once s | ratio | ×native | server CPU s, 1 | server CPU s, all |',
    );
    L.push('|---|---|---|---|---|---|---|---|');
    for (const w of par) {
      const nat = parallelRatio(w, 'native');
      for (const v of vs) {
        if (!w.samples[v]) continue;
        const pr = parallelRatio(w, v);
        const cpu1 = medianBy(w.single?.[v], (s) => (v === 'native' ? s.clientCpu : s.cpu?.total));
        const cpuN = medianBy(w.samples[v], (s) => (v === 'native' ? s.clientCpu : s.cpu?.total));
        L.push(
          `| ${w.name} (${w.parallel}) | ${v} | ${fmtStat(statOf(w.single?.[v]))} | ${fmtStat(statOf(w.samples[v]))} | ${fmtRatio(pr)} | ${v === 'native' ? '' : fmtRatio(pr / nat)} | ${fmtNum(cpu1)}${v === 'native' ? ' (client)' : ''} | ${fmtNum(cpuN)}${v === 'native' ? ' (client)' : ''} |`,
        );
      }
    }
    L.push('');
  }

  const mem = r.workloads.find((w) => !w.error && w.name === 'mem-1m');
  if (mem) {
    L.push('## Memory after a million-entry walk', '');
    L.push('| variant | wall s | entries | server peak RSS (VmHWM) MB | server CPU s | FUSE requests |');
    L.push('|---|---|---|---|---|---|');
    for (const v of vs) {
      const ss = mem.samples[v];
      if (!ss) continue;
      L.push(
        `| ${v} | ${fmtNum(medianBy(ss, (s) => s.seconds))} | ${ss[0]?.output ?? '?'} | ${v === 'native' ? '–' : fmtNum(medianBy(ss, (s) => s.peakRssBytes) / 1e6)} | ${v === 'native' ? '–' : fmtNum(medianBy(ss, (s) => s.cpu?.total))} | ${v === 'native' ? '–' : fmtInt(medianBy(ss, (s) => s.requests?.total))} |`,
      );
    }
    L.push('');
  }

  // Requests per opcode, from the first good run of each variant.
  const counted = r.workloads.filter((w) => !w.error && vs.some((v) => good(w.samples[v]).some((s) => s.requests)));
  if (counted.length > 0) {
    L.push('## FUSE requests per opcode (first good run)', '');
    L.push('| workload | variant | requests | by opcode |');
    L.push('|---|---|---|---|');
    for (const w of counted) {
      for (const v of vs) {
        const s = good(w.samples[v]).find((x) => x.requests);
        if (!s?.requests) continue;
        const known = Object.values(s.requests.byOp).reduce((a, b) => a + b, 0);
        const ops = Object.entries(s.requests.byOp)
          .sort((a, b) => b[1] - a[1])
          .map(([op, n]) => `${op} ${fmtInt(n)}`);
        if (s.requests.total > known) ops.push(`other ${fmtInt(s.requests.total - known)}`);
        L.push(`| ${w.name} | ${v} | ${fmtInt(s.requests.total)} | ${ops.join(', ')} |`);
      }
    }
    L.push('');
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
    L.push(
      '',
      `Main nsview daemon after each workload (VmHWM / RSS / fds): ${after.map((w) => `${w.name} ${(w.nsviewAfter!.hwmBytes / 1e6).toFixed(0)}/${(w.nsviewAfter!.rssBytes / 1e6).toFixed(0)} MB/${w.nsviewAfter!.fds}`).join(', ')}.`,
    );
  }
  if (d.maxHwmBytes !== undefined)
    L.push(
      `Highest VmHWM of any nsview daemon in the timed runs (fresh ones for cold runs included): ${(d.maxHwmBytes / 1e6).toFixed(0)} MB.`,
    );
  L.push('');

  // FUSE requests per workload.
  const traced = r.workloads.filter((w) => w.traces.some((t) => t.trace));
  if (traced.length > 0) {
    L.push('## FUSE requests per workload (one extra traced run each)', '');
    L.push(
      "Counted in the kernel (tracepoints fuse:fuse_request_send/end on the mount's connection), with the mean time from queueing a request to its reply. A fresh mount per traced run; warm workloads get one untraced run on it first.",
      '',
    );
    L.push('| workload | variant | wall s | CPU s (main) | requests | per opcode: count × mean µs |');
    L.push('|---|---|---|---|---|---|');
    for (const w of traced) {
      for (const t of w.traces) {
        if (!t.trace) continue;
        const ops = Object.entries(t.trace.byOp)
          .filter(([, s]) => s.count > 0)
          .slice(0, 8)
          .map(
            ([op, s]) =>
              `${op} ${s.count.toLocaleString('en-US')} × ${s.count ? (s.totalUs / s.count).toFixed(0) : '?'}${s.errors ? ` (${s.errors} err)` : ''}`,
          )
          .join(', ');
        const cpu = t.cpu
          ? t.variant === 'nsview'
            ? `${fmtNum(t.cpu.total)} (${fmtNum(t.cpu.main)})`
            : fmtNum(t.cpu.total)
          : '–';
        const lost = t.trace.lost ? ` ⚠ ${t.trace.lost} events lost` : '';
        L.push(
          `| ${w.name} | ${t.variant} | ${fmtNum(t.seconds)} | ${cpu} | ${t.trace.requests.toLocaleString('en-US')}${lost} | ${ops} |`,
        );
      }
    }
    L.push('');
  }

  const profiled = r.workloads.flatMap((w) =>
    w.traces.filter((t) => t.profiles && t.profiles.length > 0).map((t) => ({ w, t })),
  );
  if (profiled.length > 0) {
    L.push('## nsview CPU profile (one more run under `node --cpu-prof`, samples while the command ran)', '');
    for (const { w, t } of profiled) {
      for (const p of t.profiles!) {
        if (p.busySeconds < 0.05) continue;
        const reqs = t.requests
          ? `, ${t.requests.total.toLocaleString('en-US')} FUSE requests: ${fmtNum((p.busySeconds * 1e6) / t.requests.total)} µs busy per request`
          : '';
        L.push(
          `**${w.name}** (${t.variant}), ${p.thread}: busy ${fmtNum(p.busySeconds)} s of ${fmtNum(p.wallSeconds)} s during the command${reqs}`,
          '',
        );
        L.push('| self s | % of busy | function | where |');
        L.push('|---|---|---|---|');
        for (const x of p.top.slice(0, 10))
          L.push(`| ${fmtNum(x.selfSeconds)} | ${x.percentOfBusy.toFixed(1)} | ${x.fn} | ${x.where} |`);
        L.push('');
        if (p.inclusive.length > 0) {
          L.push('| inclusive s | % of busy | nsview function | where |');
          L.push('|---|---|---|---|');
          for (const x of p.inclusive.slice(0, 12))
            L.push(`| ${fmtNum(x.seconds)} | ${x.percentOfBusy.toFixed(1)} | ${x.fn} | ${x.where} |`);
          L.push('');
        }
      }
    }
  }

  const notes = r.workloads.flatMap((w) => w.notes.map((n) => `- ${w.name}: ${n}`));
  if (notes.length > 0 || r.errors.length > 0) {
    L.push('## Notes', '');
    L.push(...notes, ...r.errors.map((e) => `- error: ${e}`), '');
  }
  L.push('## Targets (speed on any machine)', '');
  L.push('```', ...checkLines(r.checks), '```', '');
  return L.join('\n');
}

/**
 * nsview benchmark: the same fixture, inside a real mount namespace, read natively,
 * through `bindfs -o ro` and through nsview, alternating, several runs; a Markdown table on
 * stdout and in bench/results/latest.{md,json}; the issue's targets as PASS/FAIL lines.
 *
 *   npm run bench                       full: 100,000 entries, 1 GiB file, 5 runs, 200 namespaces
 *   npm run build && node dist/bench/run.js --quick          CI form (< 2 minutes)
 *   node dist/bench/run.js --workload cold-walk --runs 3
 *
 * See bench/README.md for every option. Needs root, bindfs, util-linux, /dev/fuse.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CleanupScope, makeTempDir, REPO_ROOT, sleep, waitFor } from '../test/helpers/index.js';
import {
  countEntries,
  countListed,
  nsviewRequestCounts,
  cpuOf,
  dropCaches,
  memOf,
  startBindfs,
  startFarm,
  startHolder,
  startMemHolder,
  startNsviewMount,
  type FuseMount,
  type Holder,
  type NsviewMount,
} from './lib/env.js';
import {
  DEFAULT_FIXTURE_BASE,
  ensureCopies,
  ensureFixture,
  ensureMemBase,
  FULL_SPEC,
  MEM_BINDS,
  MEM_ENTRIES,
  QUICK_SPEC,
  type Fixture,
} from './lib/fixture.js';
import { killActive, requestCountingAvailable, requestsBetween, timeCommand, type Timed } from './lib/measure.js';
import { summarizeProfiles, type ProfileWindow } from './lib/profile.js';
import {
  checkLines,
  evaluateChecks,
  renderMarkdown,
  type BenchResult,
  type DaemonStats,
  type Sample,
  type WorkloadResult,
} from './lib/report.js';
import { FuseTrace, stopAllTraces, tracingAvailable } from './lib/trace.js';
import {
  DEFAULT_WORKLOADS,
  kindOf,
  QUICK_WORKLOADS,
  makeWorkloads,
  VARIANTS,
  WORKLOAD_NAMES,
  type Target,
  type VariantName,
  type Workload,
} from './lib/workloads.js';

const HELP = `usage: node dist/bench/run.js [options]        (npm run bench = build + this)

  --quick              CI form: 5,000 entries, 32 MiB file, 2 runs, 20 namespaces, fewer workloads
                       (${QUICK_WORKLOADS.join(', ')}); about 2 min on an idle 2-core machine
  --runs N             measured runs per variant (default 5; --quick: 2)
  --workload NAME      run only this workload (repeatable, or comma-separated); default:
                       ${DEFAULT_WORKLOADS.join(', ')};
                       on request only: ${WORKLOAD_NAMES.filter((w) => !(DEFAULT_WORKLOADS as readonly string[]).includes(w)).join(', ')}
  --variants LIST      which of ${VARIANTS.join(',')} to run (default: all; nsview-bp0 is
                       nsview with --busy-poll=0)
  --namespaces N       extra mount namespaces for the topdir workload (default 200; --quick: 20)
  --check              exit 1 when a target of the issue fails (default: exit 0 regardless)
  --trace, --no-trace  one extra traced run per workload and FUSE variant, counting FUSE requests
                       per opcode (default: on; --quick: off)
  --cpu-prof           one more run per workload on an nsview daemon under node --cpu-prof (traced
                       too with --trace); print its hottest functions
  --keep-profiles      keep the .cpuprofile files (their directory is logged)
  --nsview-arg=ARG     pass ARG to \`nsview mount\` (repeatable), e.g. --nsview-arg=--symlinks=raw
                       (a --busy-poll=N here applies to the nsview variant only)
  --no-count           do not count FUSE requests
  --count-with WHAT    perf (default: the kernel's fuse_request_send tracepoint, every FUSE
                       variant) or nsview (its own counters, SIGUSR1; nsview variants only, the
                       fallback when perf cannot count)
  --fixture-dir DIR    fixture cache (default ${DEFAULT_FIXTURE_BASE})
  --timeout S          bound for one command (default 1800)
  -h, --help

Exit status: 0; 1 with --check when a target fails; 2 when a workload could not be measured.`;

interface Options {
  mode: 'full' | 'quick';
  runs: number;
  workloads: string[];
  variants: VariantName[];
  namespaces: number;
  count: boolean;
  /** How requests are counted: the kernel (perf) or nsview's own counters. */
  countWith: 'perf' | 'nsview';
  check: boolean;
  trace: boolean;
  cpuProf: boolean;
  keepProfiles: boolean;
  nsviewArgs: string[];
  fixtureBase: string;
  timeoutMs: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      workload: { type: 'string', multiple: true },
      variants: { type: 'string' },
      'no-count': { type: 'boolean', default: false },
      'count-with': { type: 'string' },
      namespaces: { type: 'string' },
      check: { type: 'boolean', default: false },
      trace: { type: 'boolean' },
      'no-trace': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'keep-profiles': { type: 'boolean', default: false },
      'nsview-arg': { type: 'string', multiple: true },
      'fixture-dir': { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const int = (s: string | undefined, def: number, what: string, min = 1) => {
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${what} wants an integer >= ${min}, got ${s}`);
    return n;
  };
  const workloads = (values.workload ?? [])
    .flatMap((w) => w.split(','))
    .map((w) => w.trim())
    .filter(Boolean);
  for (const w of workloads) {
    if (!(WORKLOAD_NAMES as readonly string[]).includes(w))
      throw new UsageError(`unknown workload ${w} (known: ${WORKLOAD_NAMES.join(', ')})`);
  }
  const variants = (values.variants ?? VARIANTS.join(','))
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  for (const v of variants) {
    if (!(VARIANTS as readonly string[]).includes(v))
      throw new UsageError(`unknown variant ${v} (known: ${VARIANTS.join(', ')})`);
  }
  const quick = values.quick!;
  return {
    mode: quick ? 'quick' : 'full',
    runs: int(values.runs, quick ? 2 : 5, 'runs'),
    workloads: workloads.length > 0 ? workloads : quick ? [...QUICK_WORKLOADS] : [...DEFAULT_WORKLOADS],
    variants: variants as VariantName[],
    namespaces: int(values.namespaces, quick ? 20 : 200, 'namespaces', 0),
    count: !values['no-count'],
    countWith: countWithOf(values['count-with']),
    check: values.check!,
    trace: values['no-trace'] ? false : (values.trace ?? !quick),
    cpuProf: values['cpu-prof']!,
    keepProfiles: values['keep-profiles']!,
    nsviewArgs: values['nsview-arg'] ?? [],
    fixtureBase: values['fixture-dir'] ?? DEFAULT_FIXTURE_BASE,
    timeoutMs: int(values.timeout, quick ? 300 : 1800, 'timeout') * 1000,
  };
}

class UsageError extends Error {}

function countWithOf(s: string | undefined): 'perf' | 'nsview' {
  if (s === undefined || s === 'perf' || s === 'nsview') return s ?? 'perf';
  throw new UsageError(`--count-with wants perf or nsview, got ${s}`);
}

/** Set by SIGINT/SIGTERM/SIGHUP: no new run or mount starts after it. */
let aborted = false;
function checkAbort(): void {
  if (aborted) throw new Error('interrupted');
}

const t0 = Date.now();
const log = (msg: string) => {
  const s = Math.floor((Date.now() - t0) / 1000);
  process.stderr.write(
    `bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')} ${msg}\n`,
  );
};

function preflight(): void {
  if (process.getuid?.() !== 0) throw new UsageError('must run as root (mounts, namespaces, drop_caches)');
  for (const cmd of ['bindfs', 'lsns', 'unshare', 'setpriv', 'find', 'tar', 'grep', 'dd', 'bash', 'sync']) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      throw new UsageError(`command ${cmd} not found (scripts/setup --bench installs bindfs)`);
    }
  }
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist/src/cli/main.js')))
    throw new UsageError('dist/ is missing: run npm run build (npm run bench does)');
}

// ---------------------------------------------------------------------------------------------
// Mounts: long-lived bindfs and nsview mounts for warm workloads, fresh ones for cold runs and
// traces. Namespaces: the main one; for parallel clients, more holding copies of the tree; for
// the memory workload, one holding the million-entry tree.

/** What a run measures against, and how to let it go (fresh mounts only). */
interface Served {
  target: Target;
  /** Stops a fresh mount (no-op for long-lived ones). */
  stop(): Promise<void>;
  fresh: boolean;
  nsview?: NsviewMount;
}

class Mounts {
  private readonly holders: Holder[];
  private memHolder: Holder | undefined;
  /** Long-lived bindfs per namespace (bindfs serves one tree), nsview per variant (all namespaces). */
  private readonly mainBindfs = new Map<number, FuseMount>();
  private readonly mainNsview = new Map<VariantName, NsviewMount>();
  private readonly freshMp = new Map<VariantName, string>();
  fdsAtStart = 0;
  hwmAtStart = 0;
  maxHwm = 0;

  constructor(
    private readonly scope: CleanupScope,
    holder: Holder,
    private readonly fixture: Fixture,
    private readonly opts: Options,
  ) {
    this.holders = [holder];
  }

  /** nsview's arguments for a variant: the user's, and busy polling off for nsview-bp0. */
  nsviewArgs(v: VariantName): string[] {
    if (v !== 'nsview-bp0') return this.opts.nsviewArgs;
    return [...this.opts.nsviewArgs.filter((a) => !a.startsWith('--busy-poll')), '--busy-poll=0'];
  }

  /** The namespaces a workload reads: the main one, `parallel` of them, or the memory one. */
  async holdersFor(w: Workload): Promise<Holder[]> {
    if (w.mem) {
      if (!this.memHolder) {
        const base = ensureMemBase(this.opts.fixtureBase, log);
        this.memHolder = await startMemHolder(this.scope, base, MEM_BINDS);
        log(
          `memory namespace ${this.memHolder.nsInode} (holder pid ${this.memHolder.pid}): ${MEM_BINDS} binds of a ${(MEM_ENTRIES - 1) / MEM_BINDS}-entry tree`,
        );
      }
      return [this.memHolder];
    }
    const n = w.parallel ?? 1;
    if (this.holders.length < n) {
      const copies = ensureCopies(this.fixture, n - 1, log);
      for (const dir of copies.slice(this.holders.length - 1)) {
        const h = await startHolder(this.scope, dir);
        log(`namespace ${h.nsInode} (holder pid ${h.pid}) has a copy of the tree as /data`);
        this.holders.push(h);
      }
    }
    return this.holders.slice(0, n);
  }

  private async nsviewMain(v: VariantName, hs: Holder[]): Promise<NsviewMount> {
    let m = this.mainNsview.get(v);
    if (!m) {
      m = await startNsviewMount(
        this.scope,
        hs.map((h) => h.nsInode),
        { extraArgs: this.nsviewArgs(v) },
      );
      this.mainNsview.set(v, m);
      if (v === 'nsview') {
        const m0 = memOf(m.pid);
        this.fdsAtStart = m0?.fds ?? 0;
        this.hwmAtStart = m0?.hwm ?? 0;
      }
    }
    // Namespaces started after the daemon appear with its next discovery pass.
    for (const h of hs) {
      const dir = path.join(m.mountpoint, String(h.nsInode), 'data');
      await waitFor(
        `namespace ${h.nsInode} in nsview`,
        () =>
          fs.promises.stat(dir).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 15_000 },
      );
    }
    return m;
  }

  /** The long-lived mount(s) of `v` over these namespaces. */
  async main(v: VariantName, hs: Holder[]): Promise<Served> {
    const none = async () => {};
    const kind = kindOf(v);
    if (kind === 'native') {
      const datas = hs.map((h) => h.nativeData);
      return { target: { data: datas[0]!, datas, pids: [], connections: [] }, stop: none, fresh: false };
    }
    if (kind === 'bindfs') {
      const ms: FuseMount[] = [];
      for (const h of hs) {
        let m = this.mainBindfs.get(h.nsInode);
        if (!m) this.mainBindfs.set(h.nsInode, (m = await startBindfs(this.scope, h.nativeData)));
        ms.push(m);
      }
      return {
        target: targetOfAll(
          ms,
          ms.map((m) => m.data),
        ),
        stop: none,
        fresh: false,
      };
    }
    const m = await this.nsviewMain(v, hs);
    return { target: targetOfAll([m], nsviewDatas(m, hs)), stop: none, fresh: false, nsview: m };
  }

  /** New server process(es) of `v` for one run; the caller stops them. */
  async fresh(
    v: VariantName,
    hs: Holder[],
    extra: { nodeArgs?: string[]; mountArgs?: Workload['mountArgs'] } = {},
  ): Promise<Served> {
    const kind = kindOf(v);
    if (kind === 'native') return this.main(v, hs);
    if (kind === 'bindfs') {
      const ms: FuseMount[] = [];
      const stop = async () => {
        for (const m of ms) await m.stop();
      };
      try {
        for (const h of hs) ms.push(await startBindfs(this.scope, h.nativeData, extra.mountArgs?.bindfs));
      } catch (e) {
        await stop();
        throw e;
      }
      return {
        target: targetOfAll(
          ms,
          ms.map((m) => m.data),
        ),
        stop,
        fresh: true,
      };
    }
    let mp = this.freshMp.get(v);
    if (mp === undefined) {
      mp = path.join(makeTempDir(this.scope, 'bench-nsview-fresh'), 'mnt');
      await mkdir(mp);
      this.freshMp.set(v, mp);
    }
    const m = await startNsviewMount(
      this.scope,
      hs.map((h) => h.nsInode),
      {
        mountpoint: mp,
        extraArgs: [...this.nsviewArgs(v), ...(extra.mountArgs?.nsview ?? [])],
        nodeArgs: extra.nodeArgs,
      },
    );
    return { target: targetOfAll([m], nsviewDatas(m, hs)), stop: () => m.stop(), fresh: true, nsview: m };
  }

  /** The main nsview daemon (default variant), e.g. for the top directory. */
  async mainNsviewOf(v: VariantName): Promise<NsviewMount> {
    return this.nsviewMain(v, this.holders.slice(0, 1));
  }

  /** The last lines of an nsview daemon's log. */
  nsviewLog(m: NsviewMount | undefined): string {
    return m ? m.stderr().trim().split('\n').slice(-6).join(' | ') : '';
  }

  /** What is warm per variant on the long-lived mounts (reset by drop_caches). */
  private warmth = new Map<VariantName, 'meta' | 'data'>();

  isWarm(v: VariantName, need: 'meta' | 'data'): boolean {
    const have = this.warmth.get(v);
    return have === 'data' || have === need;
  }

  warmed(v: VariantName, what: 'meta' | 'data'): void {
    if (!this.isWarm(v, what)) this.warmth.set(v, what);
  }

  async dropCaches(): Promise<void> {
    await dropCaches();
    this.warmth.clear();
  }

  noteHwm(pid: number): void {
    const m = memOf(pid);
    if (m && m.hwm > this.maxHwm) this.maxHwm = m.hwm;
  }

  mainNsviewMem(): ReturnType<typeof memOf> {
    const m = this.mainNsview.get('nsview');
    return m ? memOf(m.pid) : undefined;
  }

  daemonStats(): DaemonStats {
    const out: DaemonStats = {};
    for (const m of this.mainNsview.values()) this.noteHwm(m.pid);
    const main = this.mainNsview.get('nsview');
    if (main) {
      const m = memOf(main.pid);
      if (m)
        out.main = {
          pid: main.pid,
          hwmBytes: m.hwm,
          rssBytes: m.rss,
          fds: m.fds,
          fdsAtStart: this.fdsAtStart,
          hwmAtStartBytes: this.hwmAtStart,
          threads: m.threads,
        };
    }
    if (this.maxHwm > 0) out.maxHwmBytes = this.maxHwm;
    return out;
  }
}

function targetOfAll(ms: FuseMount[], datas: string[]): Target {
  return {
    data: datas[0]!,
    datas,
    mountpoint: ms[0]!.mountpoint,
    pids: ms.map((m) => m.pid),
    connections: ms.map((m) => m.connection),
  };
}

function nsviewDatas(m: NsviewMount, hs: Holder[]): string[] {
  return hs.map((h) => path.join(m.mountpoint, String(h.nsInode), 'data'));
}

function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length;
  return xs.map((_, i) => xs[(i + k) % n]!);
}

function timeoutOf(w: Workload, opts: Options): number {
  return Math.min(w.timeoutMs ?? Infinity, opts.timeoutMs);
}

function describeFailure(t: Timed): string {
  return `${t.timedOut ? 'timed out' : `exit ${t.rc}`}${t.stderr ? `: ${t.stderr.split('\n').slice(0, 3).join(' | ')}` : ''}`;
}

/** The output a run is checked by: parallel clients print one line each, all the same. */
function outputOf(w: Workload, t: Timed, clients: number): string {
  const out = t.stdout.trim();
  if (!w.parallel) return out;
  const lines = out.split('\n');
  const distinct = [...new Set(lines)].join('/');
  return lines.length === clients ? distinct : `${distinct} (${lines.length} lines for ${clients} clients)`;
}

async function runWorkload(w: Workload, opts: Options, mounts: Mounts): Promise<WorkloadResult> {
  const res: WorkloadResult = {
    name: w.name,
    title: w.title,
    unit: w.unit,
    prep: w.prep,
    samples: {},
    traces: [],
    notes: [],
  };
  if (w.nativeLabel) res.nativeLabel = w.nativeLabel;
  if (w.parallel) {
    res.parallel = w.parallel;
    res.single = {};
  }
  const value = (s: number) => (w.value ? w.value(s) : s);
  const fmt = (t: Timed) =>
    w.unit === 's' ? `${t.seconds.toFixed(3)} s` : `${value(t.seconds).toFixed(0)} MB/s (${t.seconds.toFixed(2)} s)`;
  const variants = w.variants.filter((v) => opts.variants.includes(v));
  const runs = Math.min(opts.runs, w.maxRuns ?? Infinity);
  if (runs < opts.runs) res.notes.push(`${runs} run(s) only (a long workload)`);
  const hs = await mounts.holdersFor(w);

  const ok = (t: Timed) => !t.timedOut && t.rc !== null && (t.rc === 0 || (w.tolerate?.(t.rc, t.stderr) ?? false));
  if (w.prep === 'warm') {
    res.warmupOutputs = {};
    const need = w.warms ?? 'data';
    for (const v of variants) {
      checkAbort();
      // The parallel workloads read namespaces no other workload warms.
      if (!w.parallel && mounts.isWarm(v, need)) {
        log(
          `[${w.name}] warm-up ${v}: skipped (an earlier workload left its ${need === 'meta' ? 'metadata' : 'data'} warm)`,
        );
        continue;
      }
      const t = await timeCommand(w.command(v, (await mounts.main(v, hs)).target), timeoutOf(w, opts));
      res.warmupOutputs[v] = outputOf(w, t, hs.length);
      log(`[${w.name}] warm-up ${v}: ${fmt(t)}${ok(t) ? '' : ` (${describeFailure(t)})`}`);
    }
  }

  for (let r = 0; r < runs; r++) {
    const order = rotate(variants, r);
    for (const [position, v] of order.entries()) {
      // Parallel workloads: one client and all clients, in alternating order, in the same turn.
      const cases = w.parallel ? (r % 2 === 0 ? [1, w.parallel] : [w.parallel, 1]) : [hs.length];
      for (const clients of cases) {
        checkAbort();
        const these = hs.slice(0, clients);
        const served =
          w.prep === 'remount' ? await mounts.fresh(v, these, { mountArgs: w.mountArgs }) : await mounts.main(v, these);
        const target = served.target;
        try {
          if (w.prep === 'remount' || w.prep === 'drop') await mounts.dropCaches();
          if (w.prep === 'idle') await sleep(1100);
          const own = opts.count && opts.countWith === 'nsview' ? served.nsview : undefined;
          const counts0 = own ? await nsviewRequestCounts(own) : undefined;
          const cpu0 = cpuOf(target.pids);
          const t = await timeCommand(
            w.command(v, target),
            timeoutOf(w, opts),
            opts.count && opts.countWith === 'perf' ? { connections: target.connections } : undefined,
          );
          const cpu1 = cpuOf(target.pids);
          const counts1 = own && counts0 ? await nsviewRequestCounts(own) : undefined;
          if (counts0 && counts1) t.requests = requestsBetween(counts0, counts1);
          // The million-entry walk has a target of its own (its peak RSS per sample).
          if (kindOf(v) === 'nsview' && !w.mem) mounts.noteHwm(target.pids[0]!);
          if (w.warms && !served.fresh && !w.parallel) mounts.warmed(v, w.warms);
          const good = ok(t);
          const sample: Sample = {
            run: r + 1,
            position,
            seconds: t.seconds,
            value: value(t.seconds),
            rc: good ? 0 : t.timedOut ? null : t.rc,
            output: outputOf(w, t, clients),
          };
          if (good && t.rc !== 0) sample.toleratedRc = t.rc!;
          if (t.stderr) sample.stderr = t.stderr;
          if (cpu0 && cpu1) sample.cpu = { total: cpu1.total - cpu0.total, main: cpu1.main - cpu0.main };
          if (t.clientCpu !== undefined && Number.isFinite(t.clientCpu)) sample.clientCpu = t.clientCpu;
          if (t.requests) sample.requests = t.requests;
          if (w.peakRss && served.fresh) {
            const hwm = target.pids.map((p) => memOf(p)?.hwm ?? NaN).reduce((a, b) => a + b, 0);
            if (Number.isFinite(hwm)) sample.peakRssBytes = hwm;
          }
          const bucket = w.parallel && clients === 1 ? (res.single![v] ??= []) : (res.samples[v] ??= []);
          bucket.push(sample);
          const cpu = sample.cpu
            ? `, server CPU ${sample.cpu.total.toFixed(2)} s${kindOf(v) === 'nsview' ? ` (main thread ${sample.cpu.main.toFixed(2)} s)` : ''}`
            : '';
          const client = sample.clientCpu !== undefined ? `, client CPU ${sample.clientCpu.toFixed(2)} s` : '';
          const reqs = sample.requests ? `, ${sample.requests.total} requests` : '';
          const rss =
            sample.peakRssBytes !== undefined ? `, peak RSS ${(sample.peakRssBytes / 1e6).toFixed(0)} MB` : '';
          const who = w.parallel ? ` ${clients} client${clients > 1 ? 's' : ''}` : '';
          log(
            `[${w.name}] run ${r + 1}/${runs} ${v}${who}: ${fmt(t)}${cpu}${client}${reqs}${rss}${good ? (t.rc === 0 ? '' : ` (tolerated: ${describeFailure(t)})`) : ` FAILED (${describeFailure(t)})`}`,
          );
          if (!good && !res.notes.some((n) => n.startsWith(`${v} failed`))) {
            const daemonLog = mounts.nsviewLog(served.nsview);
            res.notes.push(
              `${v} failed in run ${r + 1}: ${describeFailure(t)}${daemonLog ? `; daemon log: ${daemonLog}` : ''}`,
            );
            if (daemonLog) log(`[${w.name}] nsview daemon log: ${daemonLog}`);
          } else if (t.stderr && !res.notes.some((n) => n.startsWith(`${v} stderr`)))
            res.notes.push(`${v} stderr in run ${r + 1}: ${t.stderr.split('\n').slice(0, 2).join(' | ')}`);
        } finally {
          await served.stop();
        }
      }
    }
  }

  if ((opts.trace || opts.cpuProf) && !w.parallel && !w.mem) {
    for (const v of variants) {
      if (v === 'native' || (!opts.trace && kindOf(v) !== 'nsview')) continue;
      res.traces.push(await tracedRun(w, v, opts, mounts, hs));
    }
  }
  return res;
}

/**
 * One more run of `w` on a fresh `v` mount, with its FUSE requests traced (--trace) and nsview
 * profiled (--cpu-prof).
 */
async function tracedRun(
  w: Workload,
  v: VariantName,
  opts: Options,
  mounts: Mounts,
  hs: Holder[],
): Promise<WorkloadResult['traces'][number]> {
  checkAbort();
  const profDir =
    opts.cpuProf && kindOf(v) === 'nsview' ? await mkdtemp(path.join(os.tmpdir(), 'nsview-bench-prof-')) : undefined;
  const m = await mounts.fresh(v, hs, {
    nodeArgs: profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : undefined,
    mountArgs: w.mountArgs,
  });
  const target = m.target;
  let out: WorkloadResult['traces'][number];
  let window: ProfileWindow | undefined;
  try {
    if (w.prep === 'warm') await timeCommand(w.command(v, target), timeoutOf(w, opts));
    if (w.prep === 'remount' || w.prep === 'drop') await mounts.dropCaches();
    if (w.prep === 'idle') await sleep(1100);
    const trace = opts.trace ? await FuseTrace.start(target.connections[0]!) : undefined;
    let t: Timed;
    let cpu0, cpu1;
    try {
      cpu0 = cpuOf(target.pids);
      // V8's profile timestamps are CLOCK_MONOTONIC µs, as process.hrtime.
      window = { fromUs: Number(process.hrtime.bigint() / 1000n), toUs: 0 };
      t = await timeCommand(
        w.command(v, target),
        timeoutOf(w, opts),
        opts.count && opts.countWith === 'perf' ? { connections: target.connections } : undefined,
      );
      window.toUs = Number(process.hrtime.bigint() / 1000n);
      cpu1 = cpuOf(target.pids);
    } catch (e) {
      await trace?.stop();
      throw e;
    }
    const result = await trace?.stop();
    out = { variant: v, seconds: t.seconds };
    if (result) out.trace = result;
    if (t.requests) out.requests = t.requests;
    if (cpu0 && cpu1) out.cpu = { total: cpu1.total - cpu0.total, main: cpu1.main - cpu0.main };
    const top = result
      ? Object.entries(result.byOp)
          .slice(0, 5)
          .map(([op, s]) => `${op} ${s.count}×${(s.totalUs / Math.max(1, s.count)).toFixed(0)}µs`)
          .join(' ')
      : '';
    log(
      `[${w.name}] ${result ? 'traced' : 'profiled'} ${v}: ${t.seconds.toFixed(3)} s${result ? `, ${result.requests} FUSE requests: ${top}${result.lost ? ` (${result.lost} events lost)` : ''}` : ''}${t.requests ? `, ${t.requests.total} requests counted` : ''}`,
    );
  } finally {
    await m.stop();
  }
  if (profDir) {
    out.profiles = summarizeProfiles(profDir, 15, window);
    if (opts.keepProfiles) log(`[${w.name}] ${v} CPU profiles kept in ${profDir}`);
    else fs.rmSync(profDir, { recursive: true, force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function bench(opts: Options, scope: CleanupScope): Promise<BenchResult> {
  const started = new Date();
  const loadStart = os.loadavg();
  const spec = opts.mode === 'quick' ? QUICK_SPEC : FULL_SPEC;
  const fixture: Fixture = ensureFixture(spec, opts.fixtureBase, log);
  if (fixture.generated) await dropCaches();
  const holder = await startHolder(scope, fixture.dir);
  log(
    `namespace ${holder.nsInode} (holder pid ${holder.pid}) has the fixture as /data: ${fixture.manifest.entries} entries`,
  );
  const mounts = new Mounts(scope, holder, fixture, opts);
  if (opts.trace && !tracingAvailable()) {
    log('fuse tracepoints not available (tracefs / kernel): no traced runs');
    opts.trace = false;
  }
  if (opts.count && opts.countWith === 'perf' && !requestCountingAvailable()) {
    log(
      "perf cannot count the fuse:fuse_request_send tracepoint here (install linux-perf): nsview's own counters (SIGUSR1) instead, none for bindfs",
    );
    opts.countWith = 'nsview';
  }

  const all = makeWorkloads(fixture.manifest, { entries: MEM_ENTRIES });
  const selected = all.filter((w) => opts.workloads.includes(w.name));
  const results: WorkloadResult[] = [];
  const errors: string[] = [];
  for (const w of selected) {
    if (aborted) break;
    log(`[${w.name}] ${w.title}`);
    try {
      const topdir = w.name.startsWith('topdir');
      const r = topdir ? await runTopdir(w, opts, mounts, scope) : await runWorkload(w, opts, mounts);
      if (topdir) {
        const f = await fdsAfterFarm(mounts);
        if (f) {
          r.notes.push(
            `main nsview daemon's open fds when the ${opts.namespaces} namespaces died: ${f.atStop}; 5 s later: ${f.after5s}`,
          );
          log(`[topdir] main daemon fds when the farm stopped: ${f.atStop}, 5 s later: ${f.after5s}`);
        }
      }
      const m = mounts.mainNsviewMem();
      if (m) r.nsviewAfter = { hwmBytes: m.hwm, rssBytes: m.rss, fds: m.fds };
      results.push(r);
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      log(`[${w.name}] ERROR: ${msg}`);
      errors.push(`${w.name}: ${msg.split('\n')[0]}`);
      results.push({
        name: w.name,
        title: w.title,
        unit: w.unit,
        prep: w.prep,
        samples: {},
        traces: [],
        notes: [],
        error: msg,
      });
    }
  }

  const finished = new Date();
  const cpus = os.cpus();
  let bindfsVersion = 'bindfs';
  try {
    bindfsVersion = execFileSync('bindfs', ['--version'], { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    /* keep the name */
  }
  const partial: Omit<BenchResult, 'checks'> = {
    mode: opts.mode,
    nsviewRevision: nsviewRevision(),
    runs: opts.runs,
    namespaces: opts.namespaces,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    machine: {
      cores: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? 'unknown',
      memGiB: os.totalmem() / 2 ** 30,
      kernel: os.release(),
      node: process.version,
      bindfs: bindfsVersion,
      loadStart,
      loadEnd: os.loadavg(),
    },
    fixture: { ...fixture.manifest, dir: fixture.dir },
    nsviewArgs: opts.nsviewArgs,
    variants: opts.variants,
    counted: opts.count && opts.countWith === 'perf',
    countedBy: !opts.count ? 'none' : opts.countWith,
    nsInode: holder.nsInode,
    workloads: results,
    daemon: mounts.daemonStats(),
    errors,
  };
  return { ...partial, checks: evaluateChecks(partial) };
}

/** Which nsview this is: $NSVIEW_BENCH_REV, else git's HEAD (+ whether src/ has changes). */
function nsviewRevision(): string {
  if (process.env.NSVIEW_BENCH_REV) return process.env.NSVIEW_BENCH_REV;
  try {
    const git = (...a: string[]) =>
      execFileSync('git', ['-C', REPO_ROOT, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--', 'src') ? `${head} + uncommitted changes in src/` : head;
  } catch {
    return 'unknown';
  }
}

/** The top directory with N more namespaces: `ls -l MP` on nsview against `lsns -t mnt`. */
async function runTopdir(w: Workload, opts: Options, mounts: Mounts, scope: CleanupScope): Promise<WorkloadResult> {
  const nsviews: NsviewMount[] = [];
  for (const v of opts.variants.filter((x) => kindOf(x) === 'nsview' && w.variants.includes(x)))
    nsviews.push(await mounts.mainNsviewOf(v));
  const nsview = nsviews[0];
  if (!nsview) throw new Error('no nsview variant selected');
  const before = await countEntries(nsview.mountpoint);
  const farm = await startFarm(scope, opts.namespaces);
  try {
    // Discovery runs every second: wait until every nsview daemon lists (nearly) all of them.
    const names = farm.nsInodes.map(String);
    const want = Math.floor(names.length * 0.95);
    const listed = async () => {
      let n = Infinity;
      for (const m of nsviews) n = Math.min(n, await countListed(m.mountpoint, names));
      return n >= want ? n : undefined;
    };
    const notes: string[] = [];
    const staleAfterMs = 4_000; // discovery runs every second
    let seen = await waitFor(`nsview listing the new namespaces`, listed, {
      timeoutMs: staleAfterMs,
      intervalMs: 250,
    }).catch(() => undefined);
    if (seen === undefined) {
      // The kernel keeps a directory listing while the directory's mtime is unchanged
      // (FOPEN_CACHE_DIR); dropping caches shows whether nsview itself knows them.
      const stale = (await Promise.all(nsviews.map((m) => countListed(m.mountpoint, names)))).join('/');
      await mounts.dropCaches();
      seen = await waitFor(`nsview listing ${want} of the ${names.length} new namespaces`, listed, {
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      notes.push(
        `STALE top directory: ${staleAfterMs / 1000} s after ${names.length} namespaces appeared, \`ls\` of nsview's top directory listed ${stale} of them; after drop_caches, ${seen}. The kernel keeps the listing (opendir answers ENOSYS, so every directory gets FOPEN_CACHE_DIR) and the top directory's mtime never changes.`,
      );
      log(`[topdir] ${notes[0]}`);
    }
    const total = await countEntries(nsview.mountpoint);
    log(
      `[topdir] ${names.length} namespaces started; nsview lists ${seen} of them, ${total} entries in all (${before} before)`,
    );
    const res = await runWorkload(
      { ...w, title: w.title.replace('N extra', `${opts.namespaces} extra`) },
      opts,
      mounts,
    );
    res.notes.push(...notes);
    res.notes.push(
      `${opts.namespaces} extra namespaces (sleepers in unshare -m); nsview's top directory had ${total} entries (${before} before them), lsns lines: ${res.samples.native?.[0]?.output ?? '?'}`,
    );
    return res;
  } finally {
    await farm.stop();
  }
}

/**
 * After the farm's namespaces died: the main daemon's open fds right away and once discovery
 * had time to notice (a few scan intervals), to tell per-namespace state that is released
 * from a leak.
 */
async function fdsAfterFarm(mounts: Mounts): Promise<{ atStop: number; after5s: number } | undefined> {
  const a = mounts.mainNsviewMem();
  if (!a) return undefined;
  await sleep(5_000);
  const b = mounts.mainNsviewMem();
  return b ? { atStop: a.fds, after5s: b.fds } : undefined;
}

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
    preflight();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(e instanceof UsageError ? 64 : 1);
  }
  const scope = new CleanupScope();
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      killActive();
      await stopAllTraces();
      await scope.cleanup().catch((e: unknown) => log(`cleanup: ${(e as Error).message}`));
    })());
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (signalled) process.exit(130);
      signalled = true;
      aborted = true;
      log(`${sig}: stopping, unmounting and killing what the benchmark started (again to force)`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  let result: BenchResult;
  try {
    result = await bench(opts, scope);
  } catch (e) {
    log(`ERROR: ${(e as Error).stack ?? String(e)}`);
    await cleanup();
    process.exit(2);
  }
  await cleanup();

  const workloads = makeWorkloads(result.fixture, { entries: MEM_ENTRIES });
  const expect = new Map(workloads.map((w) => [w.name, w.expect]));
  const mayDiffer = new Map(workloads.map((w) => [w.name, w.mayDiffer ?? {}]));
  const unchecked = new Set(workloads.filter((w) => w.noOutputCheck).map((w) => w.name));
  const md = renderMarkdown(result, expect, mayDiffer, unchecked);
  const outDir = path.join(REPO_ROOT, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'latest.md'), md);
  fs.writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${md}\n`);
  for (const line of checkLines(result.checks)) process.stdout.write(`${line}\n`);
  log(`results in ${path.relative(process.cwd(), outDir) || outDir}/latest.{md,json}`);
  if (result.errors.length > 0) process.exit(2);
  if (opts.check && result.checks.some((c) => !c.pass)) process.exit(1);
  process.exit(0);
}

void main();

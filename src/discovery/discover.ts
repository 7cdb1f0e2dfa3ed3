/**
 * One discovery pass: procfs scan (processes, threads, fds), then a breadth-first walk through
 * the mountinfo of every mount namespace found, picking up nsfs bind mounts of further mount
 * namespaces until no new one turns up (the lxkns approach).
 */
import { promises as fsp, closeSync, fstatSync, openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { NS_GET_USERNS, O, close, ioctlInt } from '../sys/libc.js';
import { parseMountinfo } from '../sys/mountinfo.js';
import {
  numberKey,
  type DiscoverySnapshot,
  type MountNamespace,
  type NamespaceRef,
  type NamespaceSource,
  type TaskRef,
} from './model.js';
import { forEachMountNamespace, mountNamespaceId, namespaceIdSupport } from '../sys/namespace-id.js';
import { mountNamespacePins, nsviewMountDevices } from './mountinfo.js';
import { kernelDev } from '../sys/dev.js';
import { Gate, newCounters, ProcReader, scanProcfs } from './procfs.js';

export interface DiscoverOptions {
  /**
   * Mountinfo text, read as latin1 (src/sys/mountinfo.ts), of a namespace that has no process or
   * thread whose mountinfo could be read (fd-held, pinned, or all its tasks gone/unreadable),
   * e.g. through a sandbox that enters `ns.refs[0]`. undefined (or a throw, counted in
   * stats.errors) = skip it: pins inside stay undiscovered and it is listed in stats.unexplored.
   * Called at most once per namespace.
   */
  readMountinfo?: (ns: MountNamespace) => Promise<string | undefined>;
  /**
   * Task ids to disregard entirely: the daemon's own sandbox threads (or sandbox child
   * processes, by pid). Their namespace links, fds and mountinfo do not count as sources.
   */
  ignoreTids?: Set<number>;
  /** Default '/proc'. Refs are built under it too. */
  procRoot?: string;
  /** The daemon's pid (default process.pid): its mount ns gives 1-element bind mount refs. */
  selfPid?: number;
  /**
   * Report fds held by the daemon itself (default false): a namespace kept alive only by the
   * daemon's own fd must not look alive to it.
   */
  includeOwnFds?: boolean;
  /**
   * Max /proc reads in flight (default 32). libuv's threadpool runs 4 at a time by default;
   * more in flight keeps it busy, fewer keeps FUSE's own fs calls from queueing behind ours.
   */
  concurrency?: number;
  /**
   * Read procfs with synchronous calls (default false). Only for a thread of its own: far less
   * CPU per pass, but the calling thread waits for every read.
   */
  sync?: boolean;
  /** Scan threads (default true) and fds (default true). */
  scanThreads?: boolean;
  scanFds?: boolean;
  /**
   * Read each namespace's owning user ns (NS_GET_USERNS) through a process or thread ns link
   * (default true). Namespaces held only by fds or pins keep ownerUserNs undefined.
   */
  ownerUserNs?: boolean;
}

/** Per-namespace accumulation before it becomes a MountNamespace. */
interface Acc {
  inode: number;
  pids: number[];
  threads: TaskRef[];
  fds: { pid: number; fd: number }[];
  /** Bind mount refs in discovery order (BFS level by level: shorter chains first). */
  pins: NamespaceRef[];
  pinKeys: Set<string>;
  ownerUserNs?: number;
}

function newAcc(inode: number): Acc {
  return { inode, pids: [], threads: [], fds: [], pins: [], pinKeys: new Set() };
}

function sourceOf(a: Acc): NamespaceSource {
  if (a.pids.length > 0) return 'process';
  if (a.threads.length > 0) return 'thread';
  if (a.fds.length > 0) return 'fd';
  return 'bindmount';
}

function refsOf(a: Acc, procRoot: string): NamespaceRef[] {
  const refs: NamespaceRef[] = [];
  for (const pid of a.pids) refs.push([`${procRoot}/${pid}/ns/mnt`]);
  for (const t of a.threads) refs.push([`${procRoot}/${t.pid}/task/${t.tid}/ns/mnt`]);
  for (const f of a.fds) refs.push([`${procRoot}/${f.pid}/fd/${f.fd}`]);
  // Stable by length: a pin seen in the daemon's namespace beats one seen inside another.
  refs.push(...[...a.pins].sort((x, y) => x.length - y.length));
  return refs;
}

function toNamespace(a: Acc, procRoot: string, id?: bigint): MountNamespace {
  const ns: MountNamespace = {
    id: id ?? numberKey(a.inode),
    idSource: id === undefined ? 'number' : 'kernel',
    inode: a.inode,
    source: sourceOf(a),
    pids: a.pids,
    threads: a.threads,
    refs: refsOf(a, procRoot),
  };
  if (a.ownerUserNs !== undefined) ns.ownerUserNs = a.ownerUserNs;
  return ns;
}

/** What one open of a namespace's ns link tells: its kernel id and its owning user namespace. */
interface LinkIdentity {
  id?: bigint;
  ownerUserNs?: number;
}

/**
 * Kernel id (and, if asked, owning user namespace) of mount namespace `inode`, read through a
 * procfs ns link. Holds the nsfs fd for microseconds; checks it is still that namespace.
 */
async function readIdentity(nsLink: string, inode: number, owner: boolean): Promise<LinkIdentity> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(nsLink, NS_OPEN_FLAGS);
    return identityOfNsFd(fh.fd, inode, owner);
  } catch {
    return {};
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Id and owner through an open nsfs fd (fstat and ioctls of it never block). */
function identityOfNsFd(fd: number, inode: number, owner: boolean): LinkIdentity {
  if (fstatSync(fd).ino !== inode) return {};
  const out: LinkIdentity = {};
  try {
    out.id = mountNamespaceId(fd);
  } catch {
    // no namespace ids on this kernel: the number is the key
  }
  if (owner) {
    try {
      const userFd = ioctlInt(fd, NS_GET_USERNS);
      try {
        out.ownerUserNs = fstatSync(userFd).ino;
      } finally {
        close(userFd);
      }
    } catch {
      // not readable: left undefined
    }
  }
  return out;
}

/** readIdentity with synchronous calls (see DiscoverOptions.sync). */
function readIdentitySync(nsLink: string, inode: number, owner: boolean): LinkIdentity {
  let fd = -1;
  try {
    fd = openSync(nsLink, NS_OPEN_FLAGS);
    return identityOfNsFd(fd, inode, owner);
  } catch {
    return {};
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * inode -> kernel id of every mount namespace of the system, by the nsfs walk (no procfs, about
 * 10 us a namespace); empty where the kernel has no walk or we may not do it.
 */
function walkIds(): Map<number, bigint> {
  const out = new Map<number, bigint>();
  if (!namespaceIdSupport().walk) return out;
  try {
    forEachMountNamespace((ns) => {
      out.set(ns.inode, ns.id);
    });
  } catch {
    // EPERM (not CAP_SYS_ADMIN) or a walk cut short: the ids found so far stand
  }
  return out;
}

const NS_OPEN_FLAGS = O.RDONLY | O.NONBLOCK | O.NOCTTY | O.CLOEXEC;
/** Tasks tried per namespace for its mountinfo before giving up (or asking readMountinfo). */
const MAX_MOUNTINFO_TRIES = 16;
const DEFAULT_CONCURRENCY = 32;

export async function discover(opts: DiscoverOptions = {}): Promise<DiscoverySnapshot> {
  const t0 = performance.now();
  const procRoot = opts.procRoot ?? '/proc';
  const selfPid = opts.selfPid ?? process.pid;
  const ignoreTids = opts.ignoreTids ?? new Set<number>();
  const counters = newCounters();
  const r = new ProcReader(
    procRoot,
    new Gate(Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY)),
    counters,
    opts.sync ?? false,
  );

  const [scan, ownNs] = await Promise.all([
    scanProcfs(r, {
      ignoreTids,
      selfPid,
      includeOwnFds: opts.includeOwnFds ?? false,
      scanThreads: opts.scanThreads ?? true,
      scanFds: opts.scanFds ?? true,
    }),
    r.mntNs(`${procRoot}/${selfPid}/ns/mnt`),
  ]);
  const tScan = performance.now();

  const accs = new Map<number, Acc>();
  const acc = (inode: number): Acc => {
    let a = accs.get(inode);
    if (!a) accs.set(inode, (a = newAcc(inode)));
    return a;
  };
  // scanProcfs hands these over sorted (pids ascending, then tid / fd).
  for (const [pid, inode] of [...scan.processes].sort((x, y) => x[0] - y[0])) acc(inode).pids.push(pid);
  for (const t of scan.threads) acc(t.inode).threads.push({ pid: t.pid, tid: t.tid });
  for (const f of scan.fds) acc(f.inode).fds.push({ pid: f.pid, fd: f.fd });
  if (ownNs !== undefined) acc(ownNs);

  // Breadth-first over mount namespaces, level by level, so that a namespace's first (best)
  // bind mount ref is final before it is used as the prefix of refs found inside it.
  let mountinfoReads = 0;
  const viewDevs = new Set<number>();
  let unexplored: number[] = [];
  const visited = new Set<number>();
  const ordered = (inodes: Iterable<number>): number[] =>
    [...inodes].sort((a, b) => (a === ownNs ? -1 : b === ownNs ? 1 : a - b));
  let level = ordered(accs.keys());
  let depth = 0;
  const mountinfoGate = new Gate(8);

  const readNsMountinfo = async (a: Acc): Promise<string | undefined> => {
    // [mountinfo, ns link of the same task]: the link is checked after the read, so a task
    // that switched namespaces meanwhile cannot lend us another namespace's mount table.
    const candidates: [string, string][] = [];
    const task = (base: string): [string, string] => [`${base}/mountinfo`, `${base}/ns/mnt`];
    if (a.inode === ownNs) candidates.push(task(`${procRoot}/${selfPid}`));
    for (const pid of a.pids.slice(0, MAX_MOUNTINFO_TRIES)) {
      if (pid !== selfPid || a.inode !== ownNs) candidates.push(task(`${procRoot}/${pid}`));
    }
    for (const t of a.threads.slice(0, MAX_MOUNTINFO_TRIES))
      candidates.push(task(`${procRoot}/${t.pid}/task/${t.tid}`));
    for (const [mountinfo, nsLink] of candidates) {
      mountinfoReads++;
      const text = await r.readBytes(mountinfo);
      // An empty text: the task exited between open and read (its nsproxy is gone).
      if (text && (await r.mntNs(nsLink)) === a.inode) return text;
    }
    if (opts.readMountinfo) {
      mountinfoReads++;
      try {
        return await opts.readMountinfo(toNamespace(a, procRoot));
      } catch (err) {
        counters.errors++;
        if (counters.errorSamples.length < 8)
          counters.errorSamples.push(`readMountinfo mnt:[${a.inode}]: ${String(err)}`);
        return undefined;
      }
    }
    return undefined;
  };

  while (level.length > 0) {
    for (const inode of level) visited.add(inode);
    const prefixes = new Map<number, NamespaceRef>();
    for (const inode of level) {
      prefixes.set(inode, inode === ownNs ? [] : (refsOf(accs.get(inode)!, procRoot)[0] ?? []));
    }
    const texts = await Promise.all(level.map((inode) => mountinfoGate.limit(() => readNsMountinfo(accs.get(inode)!))));
    const next = new Set<number>();
    level.forEach((inode, i) => {
      const text = texts[i];
      if (text === undefined) {
        unexplored.push(inode);
        return;
      }
      const prefix = prefixes.get(inode)!;
      const entries = parseMountinfo(text);
      for (const [major, minor] of nsviewMountDevices(entries)) viewDevs.add(kernelDev(major, minor));
      for (const pin of mountNamespacePins(entries)) {
        // Overmounted pins cannot be reached by their path; a pin of the very namespace it
        // is seen in says nothing new.
        if (!pin.visible || pin.inode === inode) continue;
        const ref = [...prefix, pin.mountPoint];
        const target = acc(pin.inode);
        const key = ref.join('\0');
        if (!target.pinKeys.has(key)) {
          target.pinKeys.add(key);
          target.pins.push(ref);
        }
        if (!visited.has(pin.inode)) next.add(pin.inode);
      }
    });
    level = ordered(next);
    depth++;
  }
  const tWalk = performance.now();

  // Ids: through a process or thread ns link of each namespace (the same open gives its owner).
  // Only ns links: they always name a mount namespace. An fd number may have been closed and
  // reused for a FIFO or a device since the scan, and opening that could block or have side
  // effects; pins are paths, and paths are never opened here.
  const owner = opts.ownerUserNs ?? true;
  const ids = new Map<number, bigint>();
  await Promise.all(
    [...accs.values()].map(async (a) => {
      const link =
        a.pids.length > 0
          ? `${procRoot}/${a.pids[0]}/ns/mnt`
          : a.threads.length > 0
            ? `${procRoot}/${a.threads[0]!.pid}/task/${a.threads[0]!.tid}/ns/mnt`
            : undefined;
      if (link === undefined) return;
      const got = r.sync
        ? r.now(link, () => readIdentitySync(link, a.inode, owner))
        : await r.limited(link, () => readIdentity(link, a.inode, owner));
      if (got?.ownerUserNs !== undefined) a.ownerUserNs = got.ownerUserNs;
      if (got?.id !== undefined) ids.set(a.inode, got.id);
    }),
  );
  // Namespaces held only by fds or pins: their ids from one walk of the kernel's list. The walk
  // comes after the scan, so a namespace that died and whose number a new one took meanwhile
  // gets the new one's id: harmless, every use of a namespace checks its id again, and the next
  // pass corrects the record.
  if (procRoot === '/proc' && [...accs.keys()].some((inode) => !ids.has(inode))) {
    const walked = walkIds();
    for (const [inode, id] of walked) if (accs.has(inode) && !ids.has(inode)) ids.set(inode, id);
    // Where the kernel has ids and its walk answered, a namespace with none died during the pass
    // (its last task exited between the scan and the id read): reported under its number it would
    // look like another namespace than the one of the same number next pass.
    if (walked.size > 0) for (const inode of [...accs.keys()]) if (!ids.has(inode)) accs.delete(inode);
  }

  const namespaces = new Map<bigint, MountNamespace>();
  const byInode = new Map<number, bigint>();
  for (const inode of [...accs.keys()].sort((a, b) => a - b)) {
    const ns = toNamespace(accs.get(inode)!, procRoot, ids.get(inode));
    namespaces.set(ns.id, ns);
    byInode.set(inode, ns.id);
  }
  const pidToNamespace = new Map([...scan.processes].sort((x, y) => x[0] - y[0]));
  unexplored = unexplored.sort((a, b) => a - b);
  const takenAt = performance.now();
  const snapshot: DiscoverySnapshot = {
    namespaces,
    byInode,
    pidToNamespace,
    viewDevs: [...viewDevs].sort((a, b) => a - b),
    takenAt,
    stats: {
      durationMs: takenAt - t0,
      scanMs: tScan - t0,
      mountinfoMs: tWalk - tScan,
      processes: scan.pidsListed,
      threads: scan.threadsListed,
      fds: scan.fdsListed,
      mountinfoReads,
      depth,
      unexplored,
      reads: counters.reads,
      vanished: counters.vanished,
      errors: counters.errors,
      errorSamples: counters.errorSamples,
    },
  };
  if (ownNs !== undefined) snapshot.ownNamespace = ownNs;
  return snapshot;
}

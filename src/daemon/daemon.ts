/**
 * The daemon: discovery + root access + io workers + the view, mounted through the FUSE engine.
 * Owns the lifecycle: preflight, cleaning a dead mount left by a crashed run, serving, and an
 * unmount on every way out (signal, fatal error) so no dead mount is left behind.
 */
import fs from 'node:fs';
import { mountFuse, cleanStaleMount, findMount } from '../fuse/index.js';
import type { FuseSession } from '../fuse/types.js';
import { IoPool } from '../io/pool.js';
import { rootWorkersOf } from '../io/root-workers.js';
import { NamespaceAccess } from '../access/namespace-access.js';
import { NamespaceView } from '../vfs/view.js';
import type { SymlinkMode } from '../vfs/view.js';
import { openat2, cpath, close, O, RESOLVE, AT } from '../sys/libc.js';
import { E, errnoName, errnoOf } from '../sys/errors.js';
import { kernelDev } from '../sys/dev.js';
import { DiscoveryCatalog } from './catalog.js';
import { EngineNames } from './container-names.js';
import type { EngineOverrides } from '../engines/index.js';
import {
  PreflightError,
  checkFuseDevice,
  checkOptionCombination,
  checkKernel,
  checkMountpoint,
  checkOpenat2,
  checkPrivileges,
} from './preflight.js';
import type { Logger } from './log.js';

/** How long shutdown waits for the engine loops to end after the unmount. */
const ENGINE_STOP_WAIT_MS = 1000;

export interface DaemonOptions {
  mountpoint: string;
  isDefaultMountpoint: boolean;
  symlinks: SymlinkMode;
  allowOther: boolean;
  pseudo: boolean;
  /** Mount without noexec (the default mounts noexec). */
  exec: boolean;
  /** Forward modifying operations into namespaces (read-write mode); never with raw symlinks. */
  readWrite: boolean;
  idleReleaseMs: number;
  opTimeoutMs: number;
  attrTimeoutMs: number;
  entryTimeoutMs: number;
  scanIntervalMs: number;
  workers: number;
  /** Namespace roots held at once (NamespaceAccess's budget). */
  maxRoots?: number;
  /** µs the FUSE loop keeps polling after each request or reply (0: off). */
  busyPollUs: number;
  /** Ask for FUSE passthrough of opened regular files (--passthrough; default off). */
  passthrough?: boolean;
  /** Where container engines are looked for (by-container/, by-pod/); false: no engines at all. */
  engines: EngineOverrides | false;
}

export interface RunningDaemon {
  readonly session: FuseSession;
  /** One line saying what is served where; the caller logs it once it is ready for users. */
  readonly description: string;
  /** Resolves when the filesystem is no longer served. */
  readonly done: Promise<void>;
  stop(reason: string): Promise<void>;
}

export async function startDaemon(opts: DaemonOptions, log: Logger): Promise<RunningDaemon> {
  checkOptionCombination(opts);
  checkPrivileges();
  checkKernel();
  checkFuseDevice();
  await checkOpenat2(async () => {
    close(openat2(AT.FDCWD, cpath('/'), O.PATH | O.CLOEXEC, RESOLVE.IN_ROOT));
  });
  // findMount reads mountinfo and resolves only the mountpoint's parent: it never touches a
  // (possibly hung) filesystem mounted on the mountpoint itself.
  let existing;
  try {
    existing = findMount(opts.mountpoint);
  } catch (err) {
    if (errnoOf(err) !== E.ENOENT) throw err;
    if (!opts.isDefaultMountpoint)
      throw new PreflightError(`mountpoint ${opts.mountpoint} does not exist (create it with mkdir -p)`);
    // The default mountpoint is nsview's own: create it, parents included.
    fs.mkdirSync(opts.mountpoint, { recursive: true, mode: 0o755 });
  }
  if (existing) {
    if (await cleanStaleMount(opts.mountpoint)) log.info(`cleaned a dead mount left on ${opts.mountpoint}`);
  }
  checkMountpoint(opts.mountpoint, opts.isDefaultMountpoint);

  const io = new IoPool({ size: opts.workers, opTimeoutMs: opts.opTimeoutMs, onEvent: (m) => log.warn(m) });
  await io.ready();
  let catalogRef: DiscoveryCatalog | undefined;
  const access = new NamespaceAccess(
    rootWorkersOf(io),
    opts.idleReleaseMs,
    {
      onEvent: (m) => log.info(m),
      confirmAlive: async (id) => (await catalogRef?.isAlive(id)) ?? true,
      onDead: (id) => view?.namespaceDied(id),
    },
    opts.maxRoots,
  );
  let view: NamespaceView | undefined;
  // Names arrive as the engines answer: the mount never waits for an engine.
  const names = opts.engines === false ? undefined : EngineNames.create(opts.engines, () => view?.namesChanged(), log);
  const catalog = await DiscoveryCatalog.start(
    {
      ownTids: () => access.sandboxTids(),
      sandboxes: () => access.heldSandboxes(),
      changed: (snap, appeared, vanished) => {
        access.update(snap, (id) => catalogRef?.namespace(id) !== undefined);
        view?.catalogChanged(snap, appeared, vanished);
        names?.discoveryPassed(snap);
      },
    },
    log,
    opts.scanIntervalMs,
  );
  catalogRef = catalog;
  access.update(catalog.current());
  view = new NamespaceView(
    catalog,
    access,
    io,
    {
      symlinks: opts.symlinks,
      pseudo: opts.pseudo,
      readWrite: opts.readWrite,
      attrTimeoutMs: opts.attrTimeoutMs,
      entryTimeoutMs: opts.entryTimeoutMs,
      topTimeoutMs: Math.min(opts.attrTimeoutMs, 1000),
      trace: (op, detail) => log.trace(`${op} ${detail}`),
    },
    names,
  );
  names?.start();

  let session: FuseSession;
  try {
    session = await mountFuse(view, {
      mountpoint: opts.mountpoint,
      fsname: 'nsview',
      subtype: 'nsview',
      readOnly: !opts.readWrite,
      allowOther: opts.allowOther,
      defaultPermissions: opts.allowOther,
      // Other users: the kernel checks ACL entries too, not only mode bits (a named user's
      // `---` entry must deny as it does natively). Root alone needs no checks at all.
      posixAcl: opts.allowOther,
      noexec: !opts.exec,
      // Rewritten link targets differ in length from the stored ones (st_size).
      cacheSymlinks: opts.symlinks === 'raw',
      // Reads of opened regular files served by the kernel from the file itself (kernel 6.9+).
      passthrough: opts.passthrough ?? false,
      busyPollUs: opts.busyPollUs,
      onError: (err, opcode) => log.error(`${opcode}: ${(err as Error)?.message ?? String(err)}`),
      onTrace: log.verbose
        ? (t) =>
            log.trace(
              `${t.op} node ${t.nodeid}${t.name && t.name.length ? ` "${t.name.toString('latin1')}"` : ''} -> ` +
                `${t.errno ? errnoName(t.errno) : 'ok'} ${t.ms.toFixed(2)}ms`,
            )
        : undefined,
    });
  } catch (err) {
    catalog.stop();
    void names?.stop();
    access.close();
    await io.close();
    throw err;
  }
  const m = findMount(opts.mountpoint);
  view.attach(session, m ? kernelDev(m.major, m.minor) : 0);

  // `kill -USR1 <pid>`: one line of counters, to see what a workload costs without --verbose.
  const dumpStats = () => {
    (globalThis as { gc?: () => void }).gc?.();
    const mem = process.memoryUsage();
    log.info(
      `stats: requests ${JSON.stringify(session.requestCounts())} view ${JSON.stringify(view?.stats())} ` +
        `sandboxes ${access.sandboxCount} stuck-workers ${io.stuckWorkers} rss ${Math.round(mem.rss / 1048576)}MiB ` +
        `heap ${Math.round(mem.heapUsed / 1048576)}MiB heap-total ${Math.round(mem.heapTotal / 1048576)}MiB ` +
        `buffers ${Math.round(mem.arrayBuffers / 1048576)}MiB`,
    );
  };
  process.on('SIGUSR1', dumpStats);

  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> => {
    if (!stopping) {
      stopping = (async () => {
        log.info(`unmounting ${opts.mountpoint} (${reason})`);
        process.off('SIGUSR1', dumpStats);
        catalog.stop();
        view?.close();
        // Engines are let go alongside the unmount, never ahead of it: an engine call in flight
        // is aborted, but nothing here may wait on an engine.
        const namesStopped = names?.stop().catch((err: unknown) => log.error(`engines: stop: ${String(err)}`));
        try {
          await session.unmount();
        } catch (err) {
          log.error(`unmount ${opts.mountpoint}: ${errnoName(errnoOf(err))}`);
        }
        await Promise.race([namesStopped, new Promise((r) => setTimeout(r, ENGINE_STOP_WAIT_MS).unref())]);
        access.close();
        await io.close();
      })();
    }
    return stopping;
  };
  const done = session.closed.then(() => stop('session ended'));
  const description = `mounted ${opts.mountpoint} (symlinks ${opts.symlinks}${opts.allowOther ? ', allow_other' : ''}${opts.pseudo ? ', pseudo' : ''}${opts.exec ? ', exec' : ''}${opts.readWrite ? ', read-write' : ''})`;
  return { session, description, done, stop };
}

/**
 * Docker (moby): names from the daemon's API over its unix socket, the authoritative record
 * (`docker rename` shows at once; a dead daemon refuses the connection and its containers lose
 * their names). The init PID comes from `GET /containers/<id>/json`; its start time from runc's
 * state in the daemon's exec-root (`<exec-root>/runtime-runc/moby/<id>/state.json`) when present,
 * else from /proc after the engine confirms the same PID a second time.
 *
 * Inspect results are cached per container while its init process lives (same PID and start
 * time), so a steady host costs one list request per poll.
 */
import path from 'node:path';
import { E, NsviewError } from '../sys/errors.js';
import { asArray, asObject, num, obj, str, stringMap } from './json.js';
import type { ContainerInfo, EngineSource, ListOptions } from './model.js';
import { readRuntimeState } from './oci-state.js';
import { readPidStart } from './proc-identity.js';
import { followEvents, unixGetJson } from './unix-http.js';

export interface DockerLocation {
  /** The API socket (unix path). */
  socket: string;
  /** dockerd's --exec-root (runc state lives below it); optional. */
  execRoot?: string;
}

export interface DockerSourceOptions extends DockerLocation {
  /** Deadline of each API request (default 2000 ms). */
  requestTimeoutMs?: number;
}

interface Inspected {
  pid: number;
  pidStart: number;
}

export class DockerSource implements EngineSource {
  readonly kind = 'docker' as const;
  readonly key: string;
  private readonly cache = new Map<string, Inspected>();
  private readonly timeoutMs: number;

  constructor(private readonly opts: DockerSourceOptions) {
    this.key = `docker:${opts.socket}`;
    this.timeoutMs = opts.requestTimeoutMs ?? 2000;
  }

  private get(p: string, signal: AbortSignal): Promise<unknown> {
    return unixGetJson(this.opts.socket, p, { timeoutMs: this.timeoutMs, signal });
  }

  async list({ signal }: ListOptions): Promise<ContainerInfo[]> {
    const listed = asArray(await this.get('/containers/json', signal));
    if (!listed) throw new NsviewError(E.EBADMSG, `${this.opts.socket}: container list is not an array`);
    const out: ContainerInfo[] = [];
    const seen = new Set<string>();
    for (const entry of listed) {
      const c = asObject(entry);
      const id = str(c, 'Id');
      if (!c || !id || !/^[0-9a-f]{12,128}$/.test(id)) continue;
      seen.add(id);
      const ident = await this.identify(id, signal);
      if (!ident) continue; // exited between list and inspect
      out.push({
        engine: 'docker',
        id,
        name: dockerName(asArray(c['Names'])) ?? id,
        image: str(c, 'Image') ?? '',
        pid: ident.pid,
        pidStart: ident.pidStart,
        labels: stringMap(c['Labels']),
        sandbox: false,
      });
    }
    for (const id of this.cache.keys()) if (!seen.has(id)) this.cache.delete(id);
    return out;
  }

  /** PID and start time of the container's init process; undefined when it is not running. */
  private async identify(id: string, signal: AbortSignal): Promise<Inspected | undefined> {
    const cached = this.cache.get(id);
    if (cached && (await readPidStart(cached.pid)) === cached.pidStart) return cached;
    this.cache.delete(id);
    const pid = await this.inspectPid(id, signal);
    if (pid === undefined) return undefined;
    let pidStart: number | undefined;
    if (this.opts.execRoot) {
      const rs = await readRuntimeState(path.join(this.opts.execRoot, 'runtime-runc', 'moby'), id);
      if (rs && rs.pid === pid) pidStart = rs.pidStart;
    }
    if (pidStart === undefined) {
      // Read the start time, then ask again: if the engine still names the same PID, the process
      // read above was its init (a PID is not reused while the container's init holds it).
      pidStart = await readPidStart(pid);
      if (pidStart === undefined || (await this.inspectPid(id, signal)) !== pid) return undefined;
    }
    const ident = { pid, pidStart };
    this.cache.set(id, ident);
    return ident;
  }

  private async inspectPid(id: string, signal: AbortSignal): Promise<number | undefined> {
    let info: unknown;
    try {
      info = await this.get(`/containers/${id}/json`, signal);
    } catch (e) {
      if (e instanceof NsviewError && e.errno === E.ENOENT) return undefined; // removed meanwhile
      throw e;
    }
    const state = obj(asObject(info), 'State');
    const pid = num(state, 'Pid');
    return state?.['Running'] === true && pid !== undefined && pid > 0 ? pid : undefined;
  }

  watch(onChange: () => void): () => void {
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'] }));
    return followEvents(this.opts.socket, `/events?filters=${filters}`, onChange);
  }
}

/** The container's own name out of Docker's `Names` (links add `/other/alias` entries). */
function dockerName(names: unknown[] | undefined): string | undefined {
  for (const n of names ?? []) {
    if (typeof n === 'string' && n.startsWith('/') && n.indexOf('/', 1) < 0 && n.length > 1) return n.slice(1);
  }
  return undefined;
}

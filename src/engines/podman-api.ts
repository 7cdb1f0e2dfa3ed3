/**
 * Podman through its libpod API, when one serves (`podman system service`, or the socket unit
 * at /run/podman/podman.sock): the same containers the containers/storage files show, plus what
 * only Podman's database holds, namely labels and pod names. The registry merges both views of
 * one process. Podman's API does not give the init process's start time: it is read from /proc
 * and accepted once the API names the same PID again afterwards (a PID cannot be reused while
 * the container's init holds it).
 */
import { E, NsviewError } from '../sys/errors.js';
import { asArray, asObject, num, str, stringMap } from './json.js';
import type { ContainerInfo, EngineSource, ListOptions } from './model.js';
import { readPidStart } from './proc-identity.js';
import { followEvents, unixGetJson } from './unix-http.js';

export interface PodmanApiOptions {
  socket: string;
  /** Deadline of each API request (default 2000 ms). */
  requestTimeoutMs?: number;
}

/** Libpod's list, versioned as Podman 4 and 5 both accept. */
const LIST = '/v4.0.0/libpod/containers/json';

interface Entry {
  id: string;
  pid: number;
  info: Omit<ContainerInfo, 'pid' | 'pidStart'>;
}

export class PodmanApiSource implements EngineSource {
  readonly kind = 'podman' as const;
  readonly key: string;
  /** id -> "pid:start" confirmed by a second listing. */
  private readonly confirmed = new Map<string, { pid: number; pidStart: number }>();

  constructor(private readonly opts: PodmanApiOptions) {
    this.key = `podman-api:${opts.socket}`;
  }

  private async fetch(signal: AbortSignal): Promise<Entry[]> {
    const listed = asArray(
      await unixGetJson(this.opts.socket, LIST, { timeoutMs: this.opts.requestTimeoutMs ?? 2000, signal }),
    );
    if (!listed) throw new NsviewError(E.EBADMSG, `${this.opts.socket}: container list is not an array`);
    const out: Entry[] = [];
    for (const e of listed) {
      const c = asObject(e);
      const id = str(c, 'Id');
      const pid = num(c, 'Pid');
      if (!c || !id || !/^[0-9a-f]{12,128}$/.test(id) || pid === undefined || pid <= 0 || str(c, 'State') !== 'running')
        continue;
      const names = asArray(c['Names'])?.filter((n): n is string => typeof n === 'string');
      const podName = str(c, 'PodName');
      out.push({
        id,
        pid,
        info: {
          engine: 'podman',
          id,
          name: names?.[0] ?? id,
          image: str(c, 'Image') ?? '',
          labels: stringMap(c['Labels']),
          ...(podName ? { pod: podName } : {}),
          sandbox: c['IsInfra'] === true,
        },
      });
    }
    return out;
  }

  async list({ signal }: ListOptions): Promise<ContainerInfo[]> {
    let entries = await this.fetch(signal);
    const starts = new Map<string, number>();
    let unconfirmed = false;
    for (const e of entries) {
      const known = this.confirmed.get(e.id);
      const start = await readPidStart(e.pid);
      if (start === undefined) continue;
      starts.set(e.id, start);
      if (!known || known.pid !== e.pid || known.pidStart !== start) unconfirmed = true;
    }
    if (unconfirmed) {
      // Ask again after reading /proc: a PID still named now was the container's throughout.
      const again = new Map((await this.fetch(signal)).map((e) => [e.id, e.pid]));
      entries = entries.filter((e) => again.get(e.id) === e.pid);
    }
    this.confirmed.clear();
    const out: ContainerInfo[] = [];
    for (const e of entries) {
      const pidStart = starts.get(e.id);
      if (pidStart === undefined) continue;
      this.confirmed.set(e.id, { pid: e.pid, pidStart });
      out.push({ ...e.info, pid: e.pid, pidStart });
    }
    return out;
  }

  watch(onChange: () => void): () => void {
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'] }));
    return followEvents(this.opts.socket, `/v4.0.0/libpod/events?stream=true&filters=${filters}`, onChange);
  }
}

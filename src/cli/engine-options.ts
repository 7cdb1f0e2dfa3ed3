/**
 * The command line's say on container engines: `--engine-root KIND=SPEC` (repeatable) names an
 * engine instance exactly, replacing what discovery would find for that kind; `--no-engines`
 * turns names off. Without either, engines are found the way they are configured (config files,
 * running daemons' command lines, defaults: docs/engines.md).
 *
 *   docker=SOCKET[,EXEC_ROOT]          dockerd's API socket (and --exec-root, for runc's state)
 *   podman-api=SOCKET                  a `podman system service` socket
 *   storage=GRAPHROOT[,RUNROOT]        containers/storage of Podman or CRI-O (--root, --runroot)
 *   containerd=SOCKET,STATE            containerd's socket and state directory
 */
import path from 'node:path';
import type { EngineOverrides } from '../engines/index.js';
import { UsageError } from './exit-codes.js';

const ENGINE_ROOT_FORMS =
  'docker=SOCKET[,EXEC_ROOT], podman-api=SOCKET, storage=GRAPHROOT[,RUNROOT], containerd=SOCKET,STATE';

function usage(spec: string, why: string): never {
  throw new UsageError(`--engine-root ${spec}: ${why} (one of ${ENGINE_ROOT_FORMS})`);
}

/** Every value of a repeatable option as parsed (one, several, or none). */
export function allValues(raw: unknown): string[] {
  if (raw === undefined || raw === '') return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String).filter((v) => v !== '');
}

/** What the options say: overrides for engine discovery, or false for no engines at all. */
export function engineOverrides(engines: boolean, roots: readonly string[]): EngineOverrides | false {
  if (!engines) return false;
  const o: EngineOverrides = {};
  for (const spec of roots) {
    const eq = spec.indexOf('=');
    if (eq <= 0) usage(spec, 'expected KIND=PATH');
    const kind = spec.slice(0, eq);
    const paths = spec
      .slice(eq + 1)
      .split(',')
      .map((p) => p.trim());
    if (paths.some((p) => p === '')) usage(spec, 'empty path');
    const abs = paths.map((p) => path.resolve(p));
    /** The first path and the optional second, once their number is right for `kind`. */
    const take = (min: number, max: number): [string, string | undefined] => {
      const [first, second] = abs;
      if (first === undefined || abs.length < min || abs.length > max) {
        usage(spec, `${kind} takes ${min === max ? min : `${min} or ${max}`} path${max > 1 ? 's' : ''}`);
      }
      return [first, second];
    };
    switch (kind) {
      case 'docker': {
        const [socket, execRoot] = take(1, 2);
        (o.docker ??= []).push({ socket, ...(execRoot !== undefined ? { execRoot } : {}) });
        break;
      }
      case 'podman-api': {
        const [socket] = take(1, 1);
        (o.podmanApi ??= []).push({ socket });
        break;
      }
      case 'storage': {
        const [graphroot, runroot] = take(1, 2);
        (o.storage ??= []).push({ graphroot, ...(runroot !== undefined ? { runroot } : {}) });
        break;
      }
      case 'containerd': {
        const [socket, state] = take(2, 2);
        if (state === undefined) usage(spec, 'containerd takes 2 paths');
        (o.containerd ??= []).push({ socket, state });
        break;
      }
      default:
        usage(spec, `unknown engine ${JSON.stringify(kind)}`);
    }
  }
  return o;
}

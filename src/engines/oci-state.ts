/**
 * Reading what an OCI runtime and its bundle record on the host: runc's `<root>/<id>/state.json`
 * (init PID and its start time, written by runc when it created the process) and the bundle's
 * `config.json` (annotations). These are the engine's and runtime's own files, outside every
 * container.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { asObject, asArray, num, obj, parseJson, str, stringMap } from './json.js';

/** Engine state files are small; anything larger is not what nsview expects and is skipped. */
const MAX_STATE_FILE = 4 << 20;

/** Reads a small engine-written JSON file; undefined when missing, too large or malformed. */
export async function readJsonFile(file: string): Promise<unknown> {
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_STATE_FILE) return undefined;
    return parseJson(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Directory entries, or [] when the directory is missing or unreadable. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

export interface RuntimeState {
  id: string;
  pid: number;
  /** Start time of `pid` as runc recorded it (same clock as field 22 of /proc/PID/stat). */
  pidStart: number;
  /** The bundle directory runc was given (from its `bundle=` label), if recorded. */
  bundle?: string;
}

/** runc's state.json of container `id` under runtime root `root`. */
export async function readRuntimeState(root: string, id: string): Promise<RuntimeState | undefined> {
  const s = asObject(await readJsonFile(path.join(root, id, 'state.json')));
  const pid = num(s, 'init_process_pid');
  const pidStart = num(s, 'init_process_start');
  if (!s || pid === undefined || pidStart === undefined || pid <= 0) return undefined;
  let bundle: string | undefined;
  for (const l of asArray(obj(s, 'config')?.['labels']) ?? []) {
    if (typeof l === 'string' && l.startsWith('bundle=')) bundle = l.slice('bundle='.length);
  }
  return { id: str(s, 'id') ?? id, pid, pidStart, bundle };
}

/** The `annotations` of a bundle's config.json ({} when absent). */
export async function readBundleAnnotations(bundle: string): Promise<Record<string, string> | undefined> {
  const spec = asObject(await readJsonFile(path.join(bundle, 'config.json')));
  return spec ? stringMap(spec['annotations']) : undefined;
}

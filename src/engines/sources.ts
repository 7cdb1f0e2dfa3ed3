/** Engine sources for the locations discovery found (or the CLI's overrides named). */
import { ContainerdSource } from './containerd.js';
import { ContainersStorageSource } from './containers-storage.js';
import { DockerSource } from './docker.js';
import { PodmanApiSource } from './podman-api.js';
import { discoverEngineLocations, type EngineLocations, type EngineOverrides } from './locations.js';
import type { EngineSource } from './model.js';

export interface SourceOptions {
  /** Deadline of each engine API request (default 2000 ms). */
  requestTimeoutMs?: number;
}

export function sourcesFor(locs: EngineLocations, opts: SourceOptions = {}): EngineSource[] {
  return [
    ...locs.docker.map((l) => new DockerSource({ ...l, requestTimeoutMs: opts.requestTimeoutMs })),
    ...locs.podmanApi.map((l) => new PodmanApiSource({ ...l, requestTimeoutMs: opts.requestTimeoutMs })),
    ...locs.storage.map((l) => new ContainersStorageSource(l)),
    ...locs.containerd.map((l) => new ContainerdSource({ ...l, probeTimeoutMs: opts.requestTimeoutMs })),
  ];
}

/** discoverEngineLocations + sourcesFor: what `EngineRegistry`'s `discover` option wants. */
export async function discoverEngineSources(
  overrides: EngineOverrides = {},
  opts: SourceOptions = {},
): Promise<EngineSource[]> {
  return sourcesFor(await discoverEngineLocations(overrides), opts);
}

/**
 * Containers by name: what Docker, Podman, containerd and CRI-O record about the containers on
 * this host, kept fresh off the FUSE thread's path, and tied to mount namespaces without trusting
 * a bare PID. See docs/engines.md.
 */
export { ENGINE_KINDS } from './model.js';
export type { ContainerInfo, EngineKind, EngineSource, EngineStatus, EngineHealth, ListOptions } from './model.js';
export { encodePathComponent, decodePathComponent } from './path-name.js';
export {
  containerMntns,
  readForContainer,
  mapContainersToMntns,
  readPidStart,
  parseStatStart,
} from './proc-identity.js';
export type { MappedContainer } from './proc-identity.js';
export { EngineRegistry } from './registry.js';
export type { RegistryOptions, EngineSnapshot } from './registry.js';
export { buildNameIndex } from './name-index.js';
export type { NameIndex } from './name-index.js';
export {
  discoverEngineLocations,
  DOCKER_DEFAULTS,
  STORAGE_DEFAULTS,
  CONTAINERD_DEFAULTS,
  PODMAN_API_DEFAULT,
} from './locations.js';
export type { EngineLocations, EngineOverrides, PodmanApiLocation } from './locations.js';
export { PodmanApiSource } from './podman-api.js';
export type { PodmanApiOptions } from './podman-api.js';
export { sourcesFor, discoverEngineSources } from './sources.js';
export type { SourceOptions } from './sources.js';
export { DockerSource } from './docker.js';
export type { DockerLocation, DockerSourceOptions } from './docker.js';
export { ContainersStorageSource, DEFAULT_RUNTIME_ROOTS } from './containers-storage.js';
export type { StorageLocation } from './containers-storage.js';
export { ContainerdSource, CONTAINERD_RUNC_ROOT } from './containerd.js';
export type { ContainerdLocation, ContainerdSourceOptions } from './containerd.js';
export { podIdentity } from './kubernetes.js';
export type { PodIdentity } from './kubernetes.js';

/**
 * Container names from real engines: Docker, Podman and containerd run here with private roots
 * and sockets, each started once for this file, and the engine layer (src/engines) names their
 * containers through a running EngineRegistry, mapped to mount namespaces as the view will.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  buildNameIndex,
  ContainerdSource,
  ContainersStorageSource,
  discoverEngineLocations,
  DockerSource,
  EngineRegistry,
  mapContainersToMntns,
  PodmanApiSource,
  type EngineKind,
  type NameIndex,
} from '../src/engines/index.js';
import { CleanupScope, makeTempDirUnmanaged, pidAlive, removeTree, sh, sleep, waitFor } from './helpers/index.js';
import {
  makeEngineImage,
  mntnsOf,
  startContainerd,
  startDocker,
  startPodman,
  type ContainerdEngine,
  type DockerEngine,
  type PodmanEngine,
} from './helpers/engines.js';

const scope = new CleanupScope();
let docker: DockerEngine;
let podman: PodmanEngine;
let ctrd: ContainerdEngine;
let registry: EngineRegistry;
/** A containerd namespace of this run (runc's state root under /run/containerd is host-wide). */
const NS = `nsview-${process.pid}`;
/** How long a change may take to show: the registry polls every second, notified sooner. */
const FRESH_MS = 2_000;
/** Extra allowance for a loaded 2-core machine before a test fails. */
const SLACK_MS = 3_000;
const timings: Record<string, number> = {};

async function index(): Promise<NameIndex> {
  return buildNameIndex(await mapContainersToMntns(registry.snapshot().containers));
}

async function lookup(engine: EngineKind, name: string): Promise<number | undefined> {
  return (await index()).byEngine.get(engine)?.get(name);
}

/** Waits until `engine/name` maps to `mntns` (or to nothing, for undefined); returns the ms it took. */
async function expectName(engine: EngineKind, name: string, mntns: number | undefined): Promise<number> {
  const started = Date.now();
  await waitFor(`${engine}/${name} -> ${mntns}`, async () => (await lookup(engine, name)) === mntns, {
    timeoutMs: FRESH_MS + SLACK_MS,
    intervalMs: 20,
  });
  return Date.now() - started;
}

test.before(async () => {
  const dir = makeTempDirUnmanaged('engines');
  scope.teardown(() => removeTree(dir));
  const image = await makeEngineImage(dir);
  let t0 = Date.now();
  [docker, podman, ctrd] = await Promise.all([
    startDocker(scope, path.join(dir, 'docker')),
    startPodman(scope, path.join(dir, 'podman')),
    startContainerd(scope, path.join(dir, 'containerd'), image.rootfs),
  ]);
  timings['engines started (parallel)'] = Date.now() - t0;
  timings['dockerd ready'] = docker.startMs;
  timings['containerd ready'] = ctrd.startMs;
  t0 = Date.now();
  await Promise.all([
    docker.docker(['import', image.tar, 'nsview-bb']),
    podman.podman(['import', image.tar, 'localhost/nsview-bb']),
  ]);
  timings['image imported (docker+podman)'] = Date.now() - t0;
  registry = new EngineRegistry([
    new DockerSource({ socket: docker.socket, execRoot: docker.execRoot }),
    new ContainersStorageSource({ graphroot: podman.root, runroot: podman.runroot }),
    new ContainerdSource({ socket: ctrd.socket, state: ctrd.state }),
  ]);
  await registry.start();
  scope.teardown(() => registry.stop());
});

test.after.always(async (t) => {
  t.log(`timings (ms): ${JSON.stringify(timings)}`);
  if (registry)
    t.log(
      `last list (ms): ${registry
        .snapshot()
        .engines.map((e) => `${e.key.split(':')[0]}=${e.lastListMs}`)
        .join(' ')}`,
    );
  await scope.cleanup();
  // Nothing of ours is left running or mounted.
  const ps = await sh(`ps -eo pid,args | grep -E 'nsview-test-engines|${NS}' | grep -v grep || true`, { check: false });
  t.is(ps.stdout.trim(), '', 'processes left behind');
  const mounts = await sh(`findmnt -rn -o TARGET | grep nsview-test-engines || true`, { check: false });
  t.is(mounts.stdout.trim(), '', 'mounts left behind');
});

const dockerRun = (name: string, extra: string[] = []) =>
  docker.docker(['run', '-d', '--name', name, '--network', 'none', ...extra, 'nsview-bb', '/bin/sleep', '999999']);
const podmanRun = (name: string, extra: string[] = []) =>
  podman.podman([
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'none',
    ...extra,
    'localhost/nsview-bb',
    '/bin/sleep',
    '999999',
  ]);

test('docker: name, id, image and labels; rename shows within 2 s', async (t) => {
  let t0 = Date.now();
  await dockerRun('web', ['--label', 'tier=front']);
  timings['docker run'] = Date.now() - t0;
  const pid = await docker.pidOf('web');
  const ns = await mntnsOf(pid);
  timings['docker name visible'] = await expectName('docker', 'web', ns);
  const c = registry.snapshot().containers.find((x) => x.engine === 'docker' && x.name === 'web')!;
  t.is(c.image, 'nsview-bb');
  t.is(c.labels?.['tier'], 'front');
  t.is(c.pid, pid);
  t.regex(c.id, /^[0-9a-f]{64}$/);
  t.false(c.sandbox);
  // The start time comes from runc's own record in the exec-root, not from a second inspect.
  const state = JSON.parse(
    await readFile(path.join(docker.execRoot, 'runtime-runc', 'moby', c.id, 'state.json'), 'utf8'),
  ) as { init_process_start: number };
  t.is(c.pidStart, state.init_process_start);
  const idx = await index();
  t.is(idx.byEngine.get('docker')?.get(c.id), ns);
  t.is(idx.byContainer.get('web'), ns);
  t.is(idx.byContainer.get(c.id), ns);

  t0 = Date.now();
  await docker.docker(['rename', 'web', 'web-renamed']);
  const renamedMs = await expectName('docker', 'web-renamed', ns);
  timings['docker rename visible'] = Date.now() - t0;
  t.is(await lookup('docker', 'web'), undefined);
  t.true(renamedMs <= FRESH_MS + SLACK_MS);
  await docker.docker(['rm', '-f', 'web-renamed']);
  await expectName('docker', 'web-renamed', undefined);
});

/** Init PIDs that `engine/name` maps to a live namespace for right now. */
async function mappedPids(engine: EngineKind, name: string): Promise<number[]> {
  const mapped = await mapContainersToMntns(registry.snapshot().containers);
  return mapped.filter((m) => m.container.engine === engine && m.container.name === name).map((m) => m.container.pid);
}

/**
 * Stop, remove and recreate under one name: the name moves to the new container's namespace and,
 * once the engine removed the old container, never resolves to the old one. (Namespace inodes
 * are reused quickly, so identity is checked by init PID, which the mapping verified.)
 */
async function recreate(
  t: import('ava').ExecutionContext,
  engine: EngineKind,
  start: () => Promise<number>,
  removeIt: () => Promise<void>,
): Promise<void> {
  const oldPid = await start();
  await expectName(engine, 'again', await mntnsOf(oldPid));
  await removeIt();
  let sawOld = false;
  let stop = false;
  const watching = (async () => {
    while (!stop) {
      if ((await mappedPids(engine, 'again')).includes(oldPid)) sawOld = true;
      await sleep(10);
    }
  })();
  const newPid = await start();
  t.not(newPid, oldPid);
  await expectName(engine, 'again', await mntnsOf(newPid));
  t.deepEqual(await mappedPids(engine, 'again'), [newPid]);
  await sleep(500);
  stop = true;
  await watching;
  t.false(sawOld, 'a removed container was named');
  await removeIt();
  await expectName(engine, 'again', undefined);
}

test('docker: stop, remove and recreate under the same name', async (t) => {
  await recreate(
    t,
    'docker',
    async () => {
      await dockerRun('again');
      return docker.pidOf('again');
    },
    async () => {
      await docker.docker(['stop', '-t', '0', 'again']);
      await docker.docker(['rm', '-f', 'again']);
    },
  );
});

test('podman: names, rename, pod infra marked as sandbox', async (t) => {
  let t0 = Date.now();
  await podmanRun('pweb');
  timings['podman run'] = Date.now() - t0;
  const ns = await mntnsOf(await podman.pidOf('pweb'));
  timings['podman name visible'] = await expectName('podman', 'pweb', ns);
  const c = registry.snapshot().containers.find((x) => x.engine === 'podman' && x.name === 'pweb')!;
  t.is(c.image, 'localhost/nsview-bb:latest');
  t.false(c.sandbox);
  t0 = Date.now();
  await podman.podman(['rename', 'pweb', 'pweb2']);
  await expectName('podman', 'pweb2', ns);
  timings['podman rename visible'] = Date.now() - t0;
  t.is(await lookup('podman', 'pweb'), undefined);

  await podman.podman(['pod', 'create', '--name', 'ppod', '--network', 'none']);
  await podmanRun('inpod', ['--pod', 'ppod']);
  const inpodNs = await mntnsOf(await podman.pidOf('inpod'));
  await expectName('podman', 'inpod', inpodNs);
  const infra = (await podman.podman(['pod', 'inspect', '-f', '{{.InfraContainerID}}', 'ppod'])).stdout.trim();
  const all = registry.snapshot().containers.filter((x) => x.engine === 'podman');
  t.true(all.find((x) => x.id === infra)?.sandbox, 'infra container is a sandbox');
  t.false(all.find((x) => x.name === 'inpod')!.sandbox);
  await podman.podman(['pod', 'rm', '-f', '-t', '0', 'ppod']);
  await podman.podman(['rm', '-f', '-t', '0', 'pweb2']);
  await expectName('podman', 'pweb2', undefined);
  await expectName('podman', 'inpod', undefined);
});

test('podman API (when it serves): pod names and labels, merged with the storage view', async (t) => {
  const t0 = Date.now();
  const socket = await podman.startService();
  timings['podman service ready'] = Date.now() - t0;
  await podman.podman(['pod', 'create', '--name', 'apipod', '--network', 'none']);
  await podmanRun('apictr', ['--pod', 'apipod', '--label', 'team=blue']);
  const pid = await podman.pidOf('apictr');
  const api = new PodmanApiSource({ socket });
  const listed = await api.list({ signal: new AbortController().signal });
  const c = listed.find((x) => x.name === 'apictr');
  t.like(c, { engine: 'podman', pid, pod: 'apipod', sandbox: false });
  t.is(c?.labels?.['team'], 'blue');
  t.true(
    listed.some((x) => x.pod === 'apipod' && x.sandbox),
    'infra container reported as sandbox',
  );
  // Both views of the same process in one registry: one entry, with fields of both.
  const both = new EngineRegistry([
    new ContainersStorageSource({ graphroot: podman.root, runroot: podman.runroot }),
    api,
  ]);
  await both.start();
  try {
    const merged = both.snapshot().containers.filter((x) => x.pid === pid);
    t.is(merged.length, 1);
    t.is(merged[0]!.pod, 'apipod');
    t.is(merged[0]!.labels?.['team'], 'blue');
    t.is(merged[0]!.annotations?.['io.container.manager'], 'libpod');
  } finally {
    await both.stop();
  }
  // Discovery finds the service from its command line.
  t.true((await discoverEngineLocations()).podmanApi.some((l) => l.socket === socket));
  await podman.podman(['pod', 'rm', '-f', '-t', '0', 'apipod']);
});

test('docker hung (SIGSTOP): calls time out, snapshots stay instant, names return after SIGCONT', async (t) => {
  await dockerRun('frozen');
  const ns = await mntnsOf(await docker.pidOf('frozen'));
  const quick = new EngineRegistry(
    [new DockerSource({ socket: docker.socket, execRoot: docker.execRoot, requestTimeoutMs: 400 })],
    { intervalMs: 200, timeoutMs: 500, staleMs: 1000 },
  );
  await quick.start();
  const inQuick = async () =>
    buildNameIndex(await mapContainersToMntns(quick.snapshot().containers))
      .byEngine.get('docker')
      ?.get('frozen');
  try {
    t.is(await inQuick(), ns);
    process.kill(docker.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      await waitFor('docker marked timed out', () => quick.snapshot().engines[0]!.health === 'timeout', {
        timeoutMs: 3000,
      });
      await waitFor('stale names dropped', async () => (await inQuick()) === undefined, { timeoutMs: 4000 });
      timings['hung docker: names dropped'] = Date.now() - t0;
      const s0 = Date.now();
      registry.snapshot();
      quick.snapshot();
      t.true(Date.now() - s0 < 50);
    } finally {
      process.kill(docker.pid, 'SIGCONT');
    }
    await waitFor('docker back', async () => (await inQuick()) === ns, { timeoutMs: 5000 });
  } finally {
    await quick.stop();
  }
  await docker.docker(['rm', '-f', 'frozen']);
  t.pass();
});

test('podman: stop, remove and recreate under the same name', async (t) => {
  await recreate(
    t,
    'podman',
    async () => {
      await podmanRun('again');
      return podman.pidOf('again');
    },
    async () => {
      await podman.podman(['stop', '-t', '0', 'again']);
      await podman.podman(['rm', '-f', 'again']);
    },
  );
});

test('containerd: nerdctl name annotation, recreate under the same id', async (t) => {
  const t0 = Date.now();
  const pid = await ctrd.run(NS, 'c-web', { annotations: { 'nerdctl/name': 'cweb' } });
  timings['ctr run'] = Date.now() - t0;
  const ns = await mntnsOf(pid);
  timings['containerd name visible'] = await expectName('containerd', 'cweb', ns);
  const c = registry.snapshot().containers.find((x) => x.engine === 'containerd' && x.id === 'c-web')!;
  t.is(c.engineNamespace, NS);
  t.is((await index()).byEngine.get('containerd')?.get('c-web'), ns);
  await recreate(
    t,
    'containerd',
    () => ctrd.run(NS, 'again'),
    () => ctrd.remove(NS, 'again'),
  );
  await ctrd.remove(NS, 'c-web');
  await expectName('containerd', 'cweb', undefined);
});

test('the same name in two engines: both under their engine, no short form', async (t) => {
  await dockerRun('twin');
  await podmanRun('twin');
  const dns = await mntnsOf(await docker.pidOf('twin'));
  const pns = await mntnsOf(await podman.pidOf('twin'));
  t.not(dns, pns);
  await expectName('docker', 'twin', dns);
  await expectName('podman', 'twin', pns);
  t.is((await index()).byContainer.get('twin'), undefined);
  await docker.docker(['rm', '-f', 'twin']);
  await expectName('docker', 'twin', undefined);
  // Unambiguous again: the short form returns.
  await waitFor('short name twin', async () => (await index()).byContainer.get('twin') === pns, {
    timeoutMs: FRESH_MS + SLACK_MS,
  });
  await podman.podman(['rm', '-f', '-t', '0', 'twin']);
  t.pass();
});

test('hostile names (containerd annotations) stay single components inside by-container', async (t) => {
  const hostile = ['../../etc', '..', '.', 'a/b', 'x\ny', '%2F', 'docker'];
  const pids: number[] = [];
  for (const [i, name] of hostile.entries())
    pids.push(await ctrd.run(NS, `hostile-${i}`, { annotations: { 'nerdctl/name': name } }));
  const nss = await Promise.all(pids.map(mntnsOf));
  await waitFor(
    'hostile containers listed',
    () => registry.snapshot().containers.filter((c) => c.id.startsWith('hostile-')).length === hostile.length,
    { timeoutMs: FRESH_MS + SLACK_MS },
  );
  const idx = await index();
  const engineNames = idx.byEngine.get('containerd')!;
  const expected: Record<string, string> = {
    '../../etc': '..%2F..%2Fetc',
    '..': '%2E%2E',
    '.': '%2E',
    'a/b': 'a%2Fb',
    'x\ny': 'x%0Ay',
    '%2F': '%252F',
    docker: 'docker',
  };
  for (const [i, name] of hostile.entries()) t.is(engineNames.get(expected[name]!), nss[i], name);
  // 'docker' is an engine directory: only under containerd/.
  t.is(idx.byContainer.get('docker'), undefined);
  for (const key of [...idx.byContainer.keys(), ...engineNames.keys()]) {
    t.false(
      key.includes('/') || key.includes('\0') || key === '.' || key === '..' || key === '',
      `unsafe component ${JSON.stringify(key)}`,
    );
    t.is(path.join('/by-container', key).startsWith('/by-container/'), true);
  }
  for (const i of hostile.keys()) await ctrd.remove(NS, `hostile-${i}`);
});

test('Kubernetes-shaped containers in containerd k8s.io: pod, namespace, uid, container, sandbox', async (t) => {
  const uid = `uid-${process.pid}`;
  const sandboxId = `sb${process.pid}`;
  const appId = `app${process.pid}`;
  const pod = { 'io.kubernetes.pod.name': 'shop', 'io.kubernetes.pod.namespace': 'prod', 'io.kubernetes.pod.uid': uid };
  const sbPid = await ctrd.run('k8s.io', sandboxId, {
    labels: { ...pod, 'io.cri-containerd.kind': 'sandbox' },
    annotations: {
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': sandboxId,
      'io.kubernetes.cri.sandbox-name': 'shop',
      'io.kubernetes.cri.sandbox-namespace': 'prod',
      'io.kubernetes.cri.sandbox-uid': uid,
    },
  });
  const appPid = await ctrd.run('k8s.io', appId, {
    labels: { ...pod, 'io.kubernetes.container.name': 'cart', 'io.cri-containerd.kind': 'container' },
    annotations: {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': 'cart',
      'io.kubernetes.cri.sandbox-id': sandboxId,
      'io.kubernetes.cri.sandbox-name': 'shop',
      'io.kubernetes.cri.sandbox-namespace': 'prod',
      'io.kubernetes.cri.sandbox-uid': uid,
      'io.kubernetes.cri.image-name': 'registry.example/cart:1',
    },
  });
  const appNs = await mntnsOf(appPid);
  await waitFor('pod listed', async () => (await index()).byPod.get('prod')?.get('shop')?.get('cart') === appNs, {
    timeoutMs: FRESH_MS + SLACK_MS,
  });
  const all = registry.snapshot().containers;
  const sb = all.find((c) => c.id === sandboxId)!;
  const app = all.find((c) => c.id === appId)!;
  t.is(sb.pid, sbPid);
  t.true(sb.sandbox);
  t.like(sb, { pod: 'shop', podNamespace: 'prod', podUid: uid, engineNamespace: 'k8s.io' });
  t.false(app.sandbox);
  t.like(app, {
    pod: 'shop',
    podNamespace: 'prod',
    podUid: uid,
    containerName: 'cart',
    image: 'registry.example/cart:1',
    name: 'cart',
  });
  // The sandbox has no by-pod entry of its own.
  t.deepEqual([...(await index()).byPod.get('prod')!.get('shop')!.keys()], ['cart']);
  await ctrd.remove('k8s.io', appId);
  await ctrd.remove('k8s.io', sandboxId);
});

test('engine locations from the running daemons: private sockets and roots', async (t) => {
  const locs = await discoverEngineLocations();
  t.true(
    locs.docker.some((l) => l.socket === docker.socket && l.execRoot === docker.execRoot),
    JSON.stringify(locs.docker),
  );
  t.true(
    locs.containerd.some((l) => l.socket === ctrd.socket && l.state === ctrd.state),
    JSON.stringify(locs.containerd),
  );
  // Podman has no daemon: its roots are found through a running container's conmon.
  await podmanRun('located');
  const again = await discoverEngineLocations();
  t.true(
    again.storage.some((l) => l.graphroot === podman.root && l.runroot === podman.runroot),
    JSON.stringify(again.storage),
  );
  await podman.podman(['rm', '-f', '-t', '0', 'located']);
});

// Last: the daemon does not come back.
test('containerd, then dockerd killed with SIGKILL: their containers lose their names within the poll time, others keep theirs', async (t) => {
  const pid = await ctrd.run(NS, 'doomed', { annotations: { 'nerdctl/name': 'doomed' } });
  await dockerRun('survivor');
  const dns = await mntnsOf(await docker.pidOf('survivor'));
  await expectName('containerd', 'doomed', await mntnsOf(pid));
  await expectName('docker', 'survivor', dns);
  const t0 = Date.now();
  await ctrd.killDaemon();
  await expectName('containerd', 'doomed', undefined);
  timings['names dropped after SIGKILL'] = Date.now() - t0;
  t.true(pidAlive(pid), 'the container itself runs on');
  const status = registry.snapshot().engines.find((e) => e.kind === 'containerd')!;
  t.is(status.health, 'down');
  // The snapshot is served at once, and the other engines go on.
  const s0 = Date.now();
  registry.snapshot();
  t.true(Date.now() - s0 < 50);
  t.is(await lookup('docker', 'survivor'), dns);

  // dockerd next: its events stream ends and its socket refuses; Podman's names stay.
  await podmanRun('bystander');
  const pns = await mntnsOf(await podman.pidOf('bystander'));
  await expectName('podman', 'bystander', pns);
  const survivorPid = await docker.pidOf('survivor');
  const t1 = Date.now();
  await docker.killDaemon();
  await expectName('docker', 'survivor', undefined);
  timings['docker names dropped after SIGKILL'] = Date.now() - t1;
  t.true(pidAlive(survivorPid), 'the Docker container itself runs on');
  t.is(registry.snapshot().engines.find((e) => e.kind === 'docker')!.health, 'down');
  t.is(await lookup('podman', 'bystander'), pns);
  await podman.podman(['rm', '-f', '-t', '0', 'bystander']);
});

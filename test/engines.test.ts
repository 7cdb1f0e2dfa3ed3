/**
 * The engine layer without engines: the path-component rule, parsers of engines' records and
 * command lines, the name index, PID-reuse checks on real processes, and the registry's
 * behaviour with sources that hang, die or disagree (hung and dead sockets are real sockets).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import {
  buildNameIndex,
  containerMntns,
  decodePathComponent,
  DockerSource,
  encodePathComponent,
  EngineRegistry,
  mapContainersToMntns,
  parseStatStart,
  podIdentity,
  readPidStart,
  type ContainerInfo,
  type EngineSource,
} from '../src/engines/index.js';
import { flagValue, flagValues, tomlStrings, unixPath } from '../src/engines/locations.js';
import { makeTempDir, nsInodeOf, pidAlive, sleep, waitFor } from './helpers/index.js';

test('path component rule: hostile names become one safe component, reversibly', (t) => {
  const cases: [string, string | undefined][] = [
    ['web', 'web'],
    ['../../etc', '..%2F..%2Fetc'],
    ['..', '%2E%2E'],
    ['.', '%2E'],
    ['...', '...'],
    ['a/b', 'a%2Fb'],
    ['/', '%2F'],
    ['nul\0x', 'nul%00x'],
    ['line\nbreak', 'line%0Abreak'],
    ['del\x7f', 'del%7F'],
    ['100%', '100%25'],
    ['%2F', '%252F'],
    ['ünïcode-名前', 'ünïcode-名前'],
    ['', undefined],
    ['\ud800lone', undefined],
    ['x'.repeat(255), 'x'.repeat(255)],
    ['x'.repeat(256), undefined],
    ['/'.repeat(85), '%2F'.repeat(85)], // 255 bytes escaped
    ['/'.repeat(86), undefined], // 258 bytes escaped
  ];
  for (const [name, want] of cases) {
    const got = encodePathComponent(name);
    t.is(got, want, JSON.stringify(name));
    if (got === undefined) continue;
    t.false(got.includes('/') || got.includes('\0') || got === '.' || got === '..', JSON.stringify(got));
    t.true(Buffer.byteLength(got) <= 255);
    t.is(path.basename(path.join('/by-container', got)), got);
    t.is(decodePathComponent(got), name);
  }
  // Distinct names never share a component.
  const names = ['a/b', 'a%2Fb', 'a%252Fb', '..', '%2E%2E', '.', '%2E'];
  t.is(new Set(names.map(encodePathComponent)).size, names.length);
  t.is(decodePathComponent('bad%zz'), undefined);
});

test('stat start time: comm with spaces and parentheses', async (t) => {
  const line =
    '4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615';
  t.is(parseStatStart(line), 987654);
  t.is(parseStatStart('garbage'), undefined);
  t.is(typeof (await readPidStart(process.pid)), 'number');
  t.is(await readPidStart(0), undefined);
});

test('containerMntns: the live init process maps; a dead or reused PID never does', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const pid = child.pid!;
  const start = (await readPidStart(pid))!;
  t.is(await containerMntns({ pid, pidStart: start }), await nsInodeOf(pid));
  // Same PID, other start time: another process holds the PID now.
  t.is(await containerMntns({ pid, pidStart: start + 1 }), undefined);
  child.kill('SIGKILL');
  await waitFor('sleep to exit', () => child.exitCode !== null || child.signalCode !== null);
  t.is(await containerMntns({ pid, pidStart: start }), undefined);
  const info = (p: number, s: number): ContainerInfo => ({
    engine: 'docker',
    id: `${p}`,
    name: `n${p}`,
    image: '',
    pid: p,
    pidStart: s,
    sandbox: false,
  });
  const mine = (await readPidStart(process.pid))!;
  const mapped = await mapContainersToMntns([info(pid, start), info(process.pid, mine)]);
  t.deepEqual(
    mapped.map((m) => m.container.pid),
    [process.pid],
  );
});

test('config and command-line parsing', (t) => {
  const toml = tomlStrings(
    [
      'version = 2',
      'root = "/srv/ctd"',
      "state = '/run/ctd'",
      '# state = "/nope"',
      '[grpc]',
      '  address = "/run/ctd/ctd.sock" # comment',
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  sandbox_image = "x"',
    ].join('\n'),
  );
  t.is(toml.get('root'), '/srv/ctd');
  t.is(toml.get('state'), '/run/ctd');
  t.is(toml.get('grpc.address'), '/run/ctd/ctd.sock');
  const storage = tomlStrings('[storage]\ndriver = "overlay"\ngraphroot = "/data/containers"\nrunroot = "/run/c"\n');
  t.is(storage.get('storage.graphroot'), '/data/containers');
  const argv = ['dockerd', '--data-root', '/d', '--exec-root=/x', '-H', 'fd://', '-H', 'unix:///s/docker.sock'];
  t.is(flagValue(argv, ['--data-root']), '/d');
  t.is(flagValue(argv, ['--exec-root']), '/x');
  t.deepEqual(flagValues(argv, ['-H', '--host']).map(unixPath), [undefined, '/s/docker.sock']);
  t.is(unixPath('tcp://127.0.0.1:2375'), undefined);
});

test('Kubernetes identity from containerd CRI and CRI-O annotations', (t) => {
  const cri = podIdentity(
    { 'io.kubernetes.pod.name': 'p' },
    {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': 'c',
      'io.kubernetes.cri.sandbox-namespace': 'ns',
      'io.kubernetes.cri.sandbox-uid': 'u',
      'io.kubernetes.cri.image-name': 'img',
    },
  );
  t.deepEqual(cri, { pod: 'p', podNamespace: 'ns', podUid: 'u', containerName: 'c', sandbox: false, image: 'img' });
  const crio = podIdentity(
    {},
    {
      'io.kubernetes.cri-o.ContainerType': 'sandbox',
      'io.kubernetes.cri-o.Labels': JSON.stringify({
        'io.kubernetes.pod.name': 'web-0',
        'io.kubernetes.pod.namespace': 'shop',
        'io.kubernetes.pod.uid': 'u2',
      }),
    },
  );
  t.like(crio, { pod: 'web-0', podNamespace: 'shop', podUid: 'u2', sandbox: true, containerName: undefined });
  // A CRI-O sandbox's annotations as CRI-O writes them (kubelet labels the sandbox container "POD").
  const crioSandbox = podIdentity(
    {},
    {
      'io.kubernetes.cri-o.ContainerType': 'sandbox',
      'io.kubernetes.cri-o.KubeName': 'segfaulter',
      'io.kubernetes.cri-o.Namespace': 'default',
      'io.kubernetes.cri-o.Labels': JSON.stringify({
        'io.kubernetes.container.name': 'POD',
        'io.kubernetes.pod.namespace': 'default',
        'io.kubernetes.pod.name': 'segfaulter',
        'io.kubernetes.pod.uid': 'aaaa',
      }),
      'io.kubernetes.cri-o.Name': 'k8s_segfaulter_default_aaaa_0',
    },
  );
  t.deepEqual(crioSandbox, {
    pod: 'segfaulter',
    podNamespace: 'default',
    podUid: 'aaaa',
    containerName: undefined,
    sandbox: true,
    image: undefined,
  });
  // A CRI-O container without kubelet's labels: KubeName is not taken for the pod.
  t.like(
    podIdentity(
      {},
      {
        'io.kubernetes.cri-o.ContainerType': 'container',
        'io.kubernetes.cri-o.KubeName': 'app',
        'io.kubernetes.cri-o.ContainerName': 'app',
      },
    ),
    { pod: undefined, containerName: 'app', sandbox: false },
  );
  t.like(podIdentity({}, { 'io.kubernetes.cri-o.Labels': '{not json' }), { pod: undefined, sandbox: false });
});

const ci = (over: Partial<ContainerInfo>): ContainerInfo => ({
  engine: 'docker',
  id: 'id',
  name: 'n',
  image: '',
  pid: 1,
  pidStart: 1,
  sandbox: false,
  ...over,
});

test('name index: ambiguity, reserved engine names, pods', (t) => {
  const idx = buildNameIndex([
    { container: ci({ engine: 'docker', id: 'aaa', name: 'web' }), mntns: 1 },
    { container: ci({ engine: 'podman', id: 'bbb', name: 'web' }), mntns: 2 },
    { container: ci({ engine: 'podman', id: 'ccc', name: 'podman' }), mntns: 3 },
    { container: ci({ engine: 'containerd', id: 'x', name: '../x' }), mntns: 4 },
    {
      container: ci({ engine: 'containerd', id: 'sb', name: 'pod', pod: 'pod', podNamespace: 'ns', sandbox: true }),
      mntns: 5,
    },
    {
      container: ci({
        engine: 'containerd',
        id: 'c1',
        name: 'app',
        pod: 'pod',
        podNamespace: 'ns',
        containerName: 'app',
      }),
      mntns: 6,
    },
    {
      container: ci({
        engine: 'containerd',
        id: 'c2',
        name: 'app',
        pod: 'other',
        podNamespace: 'ns',
        containerName: 'app',
      }),
      mntns: 7,
    },
  ]);
  t.is(idx.byContainer.get('web'), undefined); // two namespaces claim it
  t.is(idx.byEngine.get('docker')?.get('web'), 1);
  t.is(idx.byEngine.get('podman')?.get('web'), 2);
  t.is(idx.byContainer.get('aaa'), 1);
  t.is(idx.byContainer.get('podman'), undefined); // an engine directory
  t.is(idx.byEngine.get('podman')?.get('podman'), 3);
  t.is(idx.byContainer.get('..%2Fx'), 4);
  t.is(idx.byContainer.get('app'), undefined);
  t.is(idx.byPod.get('ns')?.get('pod')?.get('app'), 6);
  t.is(idx.byPod.get('ns')?.get('other')?.get('app'), 7);
  t.is(idx.byPod.get('ns')?.get('pod')?.size, 1); // no sandbox entry
});

/** A fake engine whose answers the test scripts; used for registry timing, not for kernel facts. */
class ScriptedSource implements EngineSource {
  answer: () => Promise<ContainerInfo[]> = async () => [];
  calls = 0;
  constructor(
    readonly key: string,
    readonly kind: ContainerInfo['engine'] = 'docker',
  ) {}
  list(): Promise<ContainerInfo[]> {
    this.calls++;
    return this.answer();
  }
}

test('registry: a hung engine times out without delaying others; a dead one drops at once', async (t) => {
  const hung = new ScriptedSource('hung');
  const dead = new ScriptedSource('dead', 'containerd');
  const fine = new ScriptedSource('fine', 'podman');
  hung.answer = async () => [ci({ id: 'h', name: 'h', pid: 10, pidStart: 10 })];
  dead.answer = async () => [ci({ engine: 'containerd', id: 'd', name: 'd', pid: 11, pidStart: 11 })];
  fine.answer = async () => [ci({ engine: 'podman', id: 'f', name: 'f', pid: 12, pidStart: 12 })];
  const reg = new EngineRegistry([hung, dead, fine], { intervalMs: 100, timeoutMs: 300, staleMs: 800 });
  await reg.start();
  t.teardown(() => reg.stop());
  t.deepEqual(
    reg
      .snapshot()
      .containers.map((c) => c.id)
      .sort(),
    ['d', 'f', 'h'],
  );

  hung.answer = () => new Promise(() => {}); // never settles
  dead.answer = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  const t0 = Date.now();
  await waitFor('dead engine dropped', () => !reg.snapshot().containers.some((c) => c.id === 'd'), { timeoutMs: 2000 });
  t.true(Date.now() - t0 < 1000);
  await waitFor(
    'hung engine marked',
    () => reg.snapshot().engines.find((e) => e.key === 'hung')?.health === 'timeout',
    { timeoutMs: 2000 },
  );
  t.true(
    reg.snapshot().containers.some((c) => c.id === 'h'),
    'kept while stale',
  );
  await waitFor('hung engine dropped after staleMs', () => !reg.snapshot().containers.some((c) => c.id === 'h'), {
    timeoutMs: 3000,
  });
  t.true(reg.snapshot().containers.some((c) => c.id === 'f'));
  t.true(fine.calls >= 5, `fine engine kept being polled (${fine.calls})`);
  const s0 = Date.now();
  await reg.stop();
  t.true(Date.now() - s0 < 1000, 'stop does not wait for a hung call');
});

test('registry: one process reported by containerd and Docker is kept once, as Docker', async (t) => {
  const d = new ScriptedSource('d', 'docker');
  const c = new ScriptedSource('c', 'containerd');
  d.answer = async () => [ci({ engine: 'docker', id: 'abc', name: 'web', pid: 5, pidStart: 7 })];
  c.answer = async () => [
    ci({ engine: 'containerd', id: 'abc', name: 'abc', pid: 5, pidStart: 7, engineNamespace: 'moby' }),
  ];
  const reg = new EngineRegistry([c, d], { intervalMs: 100 });
  let changes = 0;
  reg.onChange(() => changes++);
  await reg.start();
  t.teardown(() => reg.stop());
  t.deepEqual(
    reg.snapshot().containers.map((x) => x.engine),
    ['docker'],
  );
  await sleep(300);
  t.true(changes <= 2, 'no change events while nothing changes');
  // refresh() answers with what the engines say now, without waiting for the next poll.
  d.answer = async () => [ci({ engine: 'docker', id: 'abc', name: 'renamed', pid: 5, pidStart: 7 })];
  const reg2 = new EngineRegistry([d], { intervalMs: 60_000 });
  await reg2.start();
  t.teardown(() => reg2.stop());
  d.answer = async () => [];
  t.deepEqual((await reg2.refresh()).containers, []);
});

/** A unix socket that accepts connections and never answers: a hung engine. */
async function hungSocket(file: string): Promise<{ server: Server; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(file, r));
  return { server, sockets };
}

test('Docker source against a hung and a dead socket: bounded failures, no hang', async (t) => {
  const dir = makeTempDir(t, 'engines-sock');
  const file = path.join(dir, 'hung.sock');
  const { server, sockets } = await hungSocket(file);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const src = new DockerSource({ socket: file, requestTimeoutMs: 300 });
  let t0 = Date.now();
  const err = await t.throwsAsync(src.list({ signal: new AbortController().signal }));
  t.regex(err!.message, /ETIMEDOUT/);
  t.true(Date.now() - t0 < 2000);
  // Abort settles a call at once, whatever the socket does.
  const ac = new AbortController();
  t0 = Date.now();
  const pending = src.list({ signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await t.throwsAsync(pending, { message: /ECANCELED/ });
  t.true(Date.now() - t0 < 250);
  // A socket file nobody listens on any more: refused at once.
  const gone = new DockerSource({ socket: path.join(dir, 'missing.sock'), requestTimeoutMs: 300 });
  await t.throwsAsync(gone.list({ signal: new AbortController().signal }), { message: /ENOENT|ECONNREFUSED/ });
  t.false(pidAlive(0x7fffffff));
});

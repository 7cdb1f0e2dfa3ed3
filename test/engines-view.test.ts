/**
 * Containers by name through the mounted view: by-container/ and by-pod/ with real Docker, Podman
 * and containerd (private roots and sockets, each started once for this file), named to the
 * daemon with --engine-root. Every check reads the mount from child processes (cat, readlink,
 * ls, tar), as a user would.
 *
 * The daemon runs with --symlinks raw so that a tar through the view can be compared byte for
 * byte with one made inside the container; the view's own links (by-container/...) are the same
 * in both modes.
 */
import test, { type ExecutionContext } from 'ava';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import {
  CleanupScope,
  makeTempDirUnmanaged,
  pidAlive,
  removeTree,
  run,
  runNsview,
  sh,
  sleep,
  startNsview,
  waitFor,
  type Nsview,
  type RunResult,
} from './helpers/index.js';
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
let view: Nsview;
let engineArgs: string[];
/** The host's GNU tar and the directory of its libraries (bind-mounted into containers). */
let hostTar: { tar: string; libDir: string; loader: string };
const NS = `nsview-view-${process.pid}`;
/** A change must show within this (the promise), plus slack for a loaded 2-core machine. */
const FRESH_MS = 2_000;
const SLACK_MS = 3_000;
const timings: Record<string, number> = {};

const mnt = (...p: string[]) => path.join(view.mountpoint, ...p);

async function attempt(file: string, args: string[]): Promise<RunResult> {
  return run(file, args, { check: false, timeoutMs: 10_000 });
}

/** `cat` through the view; undefined when the path does not resolve. */
async function catView(p: string): Promise<string | undefined> {
  const r = await attempt('cat', [mnt(p)]);
  return r.code === 0 ? r.stdout : undefined;
}

/** Waits until `cat` of `p` through the view gives `want` (undefined: fails); returns the ms. */
async function expectCat(p: string, want: string | undefined): Promise<number> {
  const t0 = Date.now();
  await waitFor(`${p} -> ${JSON.stringify(want)}`, async () => (await catView(p)) === want, {
    timeoutMs: FRESH_MS + SLACK_MS,
    intervalMs: 20,
  });
  return Date.now() - t0;
}

async function ls(p: string): Promise<string[]> {
  return (await run('ls', ['-1A', mnt(p)])).stdout.split('\n').filter((l) => l !== '');
}

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

test.before(async () => {
  const dir = makeTempDirUnmanaged('engview');
  scope.teardown(() => removeTree(dir));
  const image = await makeEngineImage(dir);
  let t0 = Date.now();
  [docker, podman, ctrd] = await Promise.all([
    startDocker(scope, path.join(dir, 'docker')),
    startPodman(scope, path.join(dir, 'podman')),
    startContainerd(scope, path.join(dir, 'containerd'), image.rootfs),
  ]);
  timings['engines started'] = Date.now() - t0;
  t0 = Date.now();
  await Promise.all([
    docker.docker(['import', image.tar, 'nsview-bb']),
    podman.podman(['import', image.tar, 'localhost/nsview-bb']),
  ]);
  timings['images imported'] = Date.now() - t0;
  const tar = await realpath((await sh('command -v tar')).stdout.trim());
  const ldd = (await run('ldd', [tar])).stdout;
  const interp = /^\s*(\/\S+)\s+\(0x/m.exec(ldd)?.[1];
  if (interp === undefined) throw new Error(`no dynamic loader in ldd ${tar}:\n${ldd}`);
  const loader = await realpath(interp);
  hostTar = { tar, libDir: path.dirname(loader), loader };
  engineArgs = [
    '--engine-root',
    `docker=${docker.socket},${docker.execRoot}`,
    '--engine-root',
    `storage=${podman.root},${podman.runroot}`,
    '--engine-root',
    `containerd=${ctrd.socket},${ctrd.state}`,
  ];
  view = await startNsview(scope, { symlinks: 'raw', extraArgs: engineArgs });
});

test.after.always(async (t) => {
  t.log(`timings (ms): ${JSON.stringify(timings)}`);
  await scope.cleanup();
  const ps = await sh(`ps -eo pid,args | grep -E 'nsview-test-engview|${NS}' | grep -v grep || true`, { check: false });
  t.is(ps.stdout.trim(), '', 'processes left behind');
  const mounts = await sh(`findmnt -rn -o TARGET | grep nsview-test-engview || true`, { check: false });
  t.is(mounts.stdout.trim(), '', 'mounts left behind');
});

test.serial(
  'docker: by-container/<name>, <engine>/<name> and <full id> read the container; rename and remove within 2 s',
  async (t) => {
    let t0 = Date.now();
    await dockerRun('web');
    const hostname = (await docker.docker(['exec', 'web', 'cat', '/etc/hostname'])).stdout;
    const ns = await mntnsOf(await docker.pidOf('web'));
    const id = (await docker.docker(['inspect', '-f', '{{.Id}}', 'web'])).stdout.trim();
    await expectCat('by-container/web/etc/hostname', hostname);
    timings['docker: run to name'] = Date.now() - t0;
    t.is(await catView('by-container/docker/web/etc/hostname'), hostname);
    t.is(await catView(`by-container/${id}/etc/hostname`), hostname);
    t.is(await catView(`by-container/docker/${id}/etc/hostname`), hostname);
    t.is((await run('readlink', [mnt('by-container/web')])).stdout, `../${ns}\n`);
    t.is((await run('readlink', [mnt('by-container/docker/web')])).stdout, `../../${ns}\n`);
    t.true((await ls('by-container')).includes('web'));
    // The engine folders are always there.
    t.deepEqual(
      (await ls('by-container')).filter((n) => ['docker', 'podman', 'containerd', 'cri-o'].includes(n)).sort(),
      ['containerd', 'cri-o', 'docker', 'podman'],
    );
    // What the view shows is the container's own file, byte for byte.
    t.is(await catView(`${ns}/etc/hostname`), hostname);

    t0 = Date.now();
    await docker.docker(['rename', 'web', 'web2']);
    await expectCat('by-container/web2/etc/hostname', hostname);
    await expectCat('by-container/web/etc/hostname', undefined);
    timings['docker: rename to new name, old gone'] = Date.now() - t0;
    await waitFor('web unlisted', async () => !(await ls('by-container')).includes('web'), {
      timeoutMs: FRESH_MS + SLACK_MS,
    });

    t0 = Date.now();
    await docker.docker(['rm', '-f', 'web2']);
    await expectCat('by-container/web2/etc/hostname', undefined);
    timings['docker: rm to name gone'] = Date.now() - t0;
    await waitFor(
      'web2 unlisted',
      async () => !(await ls('by-container')).includes('web2') && !(await ls('by-container/docker')).includes(id),
      { timeoutMs: FRESH_MS + SLACK_MS },
    );
  },
);

/**
 * Stop, remove and recreate under one name: the name leads to the new container (its own
 * hostname, the container id), and never to the old one once the engine removed it.
 */
async function recreate(
  t: ExecutionContext,
  engine: 'docker' | 'podman',
  start: () => Promise<string>,
  stop: () => Promise<void>,
): Promise<void> {
  const p = `by-container/${engine}/again/etc/hostname`;
  const first = await start();
  await expectCat(p, first);
  await stop();
  timings[`${engine}: stop+rm to name gone`] = await expectCat(p, undefined);
  let sawOld = false;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      if ((await catView(p)) === first) sawOld = true;
      await sleep(10);
    }
  })();
  const t0 = Date.now();
  const second = await start();
  t.not(second, first);
  await expectCat(p, second);
  timings[`${engine}: recreate to new name`] = Date.now() - t0;
  await sleep(300);
  watching = false;
  await watcher;
  t.false(sawOld, 'the removed container was reached by its name');
  await stop();
  await expectCat(p, undefined);
}

test.serial('docker and podman: stop, remove and recreate under the same name lead to the new container', async (t) => {
  await recreate(
    t,
    'docker',
    async () => {
      await dockerRun('again');
      return (await docker.docker(['exec', 'again', 'cat', '/etc/hostname'])).stdout;
    },
    async () => {
      await docker.docker(['stop', '-t', '0', 'again']);
      await docker.docker(['rm', '-f', 'again']);
    },
  );
  await recreate(
    t,
    'podman',
    async () => {
      await podmanRun('again');
      return (await podman.podman(['exec', 'again', 'cat', '/etc/hostname'])).stdout;
    },
    async () => {
      await podman.podman(['stop', '-t', '0', 'again']);
      await podman.podman(['rm', '-f', 'again']);
    },
  );
});

test.serial('the same name in Docker and Podman: both under their engine folders, no short form', async (t) => {
  await dockerRun('twin');
  await podmanRun('twin');
  const dh = (await docker.docker(['exec', 'twin', 'cat', '/etc/hostname'])).stdout;
  const ph = (await podman.podman(['exec', 'twin', 'cat', '/etc/hostname'])).stdout;
  t.not(dh, ph);
  await expectCat('by-container/docker/twin/etc/hostname', dh);
  await expectCat('by-container/podman/twin/etc/hostname', ph);
  t.is(await catView('by-container/twin/etc/hostname'), undefined);
  t.false((await ls('by-container')).includes('twin'));
  // Unambiguous again once Docker's is gone: the short form returns, to Podman's.
  await docker.docker(['rm', '-f', 'twin']);
  await expectCat('by-container/twin/etc/hostname', ph);
  await podman.podman(['rm', '-f', '-t', '0', 'twin']);
  await expectCat('by-container/podman/twin/etc/hostname', undefined);
});

test.serial('podman: tar of by-container/<name> is byte-identical to tar made inside with podman exec', async (t) => {
  // The host's GNU tar, run inside the container from read-only bind mounts of its files.
  await podmanRun('tarred', ['-v', `${hostTar.tar}:/nsview-tar/tar:ro`, '-v', `${hostTar.libDir}:/nsview-tar/lib:ro`]);
  await podman.podman([
    'exec',
    'tarred',
    'sh',
    '-c',
    'mkdir -p /data/sub && echo hello > /data/a && ln /data/a /data/hard && ln -s ../etc/hostname /data/rel && ' +
      'ln -s /etc/passwd /data/abs && echo x > /data/sub/owned && chown 1000:1000 /data/sub/owned && ' +
      'chmod 4755 /data/a && mkfifo /data/fifo && chmod 1777 /data/sub && touch -d "2001-09-09 01:46:40" /data/sub/owned',
  ]);
  const opts = ['--format=gnu', '--numeric-owner', '--sort=name', '-cf', '-'];
  const members = ['bin', 'data', 'etc'];
  const loader = path.join('/nsview-tar/lib', path.basename(hostTar.loader));
  const inside = await podman.podman([
    'exec',
    'tarred',
    loader,
    '--library-path',
    '/nsview-tar/lib',
    '/nsview-tar/tar',
    ...opts,
    '-C',
    '/',
    ...members,
  ]);
  await expectCat('by-container/tarred/data/a', 'hello\n');
  const through = await run('tar', [...opts, '-C', mnt('by-container/tarred'), ...members]);
  t.is(through.stderr, '');
  t.true(inside.stdoutBuffer.length > 100_000, `inside tar is ${inside.stdoutBuffer.length} bytes`);
  t.true(
    through.stdoutBuffer.equals(inside.stdoutBuffer),
    `tar through the view (${through.stdoutBuffer.length} bytes) differs from tar inside (${inside.stdoutBuffer.length} bytes)`,
  );
  // Not vacuous: the archive holds the hardlink, the raw links, the FIFO and the set-uid mode.
  const listing = (await run('tar', ['-tvf', '-'], { input: through.stdoutBuffer })).stdout;
  t.regex(listing, /data\/hard link to data\/a/);
  t.regex(listing, /data\/abs -> \/etc\/passwd/);
  t.regex(listing, /^p.* data\/fifo$/m);
  t.regex(listing, /^-rwsr-xr-x 0\/0 .* data\/a$/m);
  await podman.podman(['rm', '-f', '-t', '0', 'tarred']);
});

test.serial('docker: tar of by-container/<name> is byte-identical to tar made inside with docker exec', async (t) => {
  await dockerRun('dtar', ['-v', `${hostTar.tar}:/nsview-tar/tar:ro`, '-v', `${hostTar.libDir}:/nsview-tar/lib:ro`]);
  await docker.docker(['exec', 'dtar', 'sh', '-c', 'mkdir /data && echo docker > /data/f && ln -s f /data/l']);
  const opts = ['--format=gnu', '--numeric-owner', '--sort=name', '-cf', '-'];
  const loader = path.join('/nsview-tar/lib', path.basename(hostTar.loader));
  const inside = await docker.docker([
    'exec',
    'dtar',
    loader,
    '--library-path',
    '/nsview-tar/lib',
    '/nsview-tar/tar',
    ...opts,
    '-C',
    '/',
    'bin',
    'data',
    'etc',
  ]);
  await expectCat('by-container/dtar/data/f', 'docker\n');
  const through = await run('tar', [...opts, '-C', mnt('by-container/dtar'), 'bin', 'data', 'etc']);
  t.true(
    through.stdoutBuffer.equals(inside.stdoutBuffer),
    `tar through the view (${through.stdoutBuffer.length} bytes) differs from tar inside (${inside.stdoutBuffer.length} bytes)`,
  );
  await docker.docker(['rm', '-f', 'dtar']);
});

test.serial('hostile names stay single components inside by-container/ and by-pod/', async (t) => {
  const hostile = ['../../etc', '..', 'a/b', 'x\ny', '%2F', 'docker'];
  const pids: number[] = [];
  for (const [i, name] of hostile.entries())
    pids.push(await ctrd.run(NS, `hostile-${i}`, { annotations: { 'nerdctl/name': name } }));
  // A Kubernetes-shaped one whose pod, namespace and container names try to climb.
  const k8sPid = await ctrd.run('k8s.io', `hostile-pod-${process.pid}`, {
    annotations: {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': '../../../../etc',
      'io.kubernetes.cri.sandbox-name': '..',
      'io.kubernetes.cri.sandbox-namespace': '../..',
      'io.kubernetes.cri.sandbox-uid': 'u',
    },
  });
  const nss = await Promise.all(pids.map(mntnsOf));
  const expected = ['..%2F..%2Fetc', '%2E%2E', 'a%2Fb', 'x%0Ay', '%252F', 'docker'];
  await waitFor(
    'hostile names listed',
    async () => (await ls('by-container/containerd')).filter((n) => expected.includes(n)).length === expected.length,
    { timeoutMs: FRESH_MS + SLACK_MS },
  );
  for (const [i, enc] of expected.entries()) {
    t.is((await run('readlink', [mnt('by-container/containerd', enc)])).stdout, `../../${nss[i]}\n`, enc);
    t.is(await realpath(mnt('by-container/containerd', enc)), mnt(String(nss[i])), enc);
  }
  // `docker` is the Docker folder, not the containerd container of that name.
  t.is(await realpath(mnt('by-container/docker')), mnt('by-container/docker'));
  await waitFor('hostile pod listed', async () => (await attempt('ls', [mnt('by-pod/..%2F..')])).code === 0, {
    timeoutMs: FRESH_MS + SLACK_MS,
  });
  await waitFor(
    'hostile pod container listed',
    async () => (await ls('by-pod/..%2F../%2E%2E')).join() === '..%2F..%2F..%2F..%2Fetc',
    { timeoutMs: FRESH_MS + SLACK_MS },
  );
  t.is(await realpath(mnt('by-pod/..%2F../%2E%2E/..%2F..%2F..%2F..%2Fetc')), mnt(String(await mntnsOf(k8sPid))));
  // Every entry under by-container/ and by-pod/ is a directory of the view or a link to a
  // namespace directory: nothing leads outside the mount, or to another place inside it.
  const found = (
    await run('find', [mnt('by-container'), mnt('by-pod'), '-mindepth', '1', '-printf', '%y %P\\0%l\\0'])
  ).stdout.split('\0');
  let links = 0;
  for (let i = 0; i + 1 < found.length; i += 2) {
    const entry = found[i] ?? '';
    const [type, rel] = [entry.slice(0, 1), entry.slice(2)];
    if (type === 'd') continue;
    t.is(type, 'l', rel);
    t.regex(found[i + 1] ?? '', /^(\.\.\/)+[0-9]+$/, rel);
    links++;
  }
  t.true(links >= hostile.length + 1);
  // Nothing appeared beside the mount, or as an `etc` in it.
  t.false((await ls('')).includes('etc'));
  for (const i of hostile.keys()) await ctrd.remove(NS, `hostile-${i}`);
  await ctrd.remove('k8s.io', `hostile-pod-${process.pid}`);
});

test.serial(
  'Kubernetes-shaped containerd containers: by-pod/<namespace>/<pod>/<container>, the sandbox marked; nsview list',
  async (t) => {
    const uid = `uid-${process.pid}`;
    const sandboxId = `sb-${process.pid}`;
    const appId = `app-${process.pid}`;
    const pod = {
      'io.kubernetes.pod.name': 'shop',
      'io.kubernetes.pod.namespace': 'prod',
      'io.kubernetes.pod.uid': uid,
    };
    const cri = {
      'io.kubernetes.cri.sandbox-id': sandboxId,
      'io.kubernetes.cri.sandbox-name': 'shop',
      'io.kubernetes.cri.sandbox-namespace': 'prod',
      'io.kubernetes.cri.sandbox-uid': uid,
    };
    const sbPid = await ctrd.run('k8s.io', sandboxId, {
      labels: pod,
      annotations: { ...cri, 'io.kubernetes.cri.container-type': 'sandbox' },
    });
    const appPid = await ctrd.run('k8s.io', appId, {
      labels: { ...pod, 'io.kubernetes.container.name': 'cart' },
      annotations: {
        ...cri,
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.container-name': 'cart',
        'io.kubernetes.cri.image-name': 'registry.example/cart:1',
      },
    });
    const [sbNs, appNs] = await Promise.all([mntnsOf(sbPid), mntnsOf(appPid)]);
    await waitFor(
      'by-pod/prod/shop/cart',
      async () => (await attempt('readlink', [mnt('by-pod/prod/shop/cart')])).stdout === `../../../${appNs}\n`,
      { timeoutMs: FRESH_MS + SLACK_MS },
    );
    t.is(await catView('by-pod/prod/shop/cart/etc/hostname'), await catView(`${appNs}/etc/hostname`));
    // The sandbox has no container entry in its pod.
    t.deepEqual(await ls('by-pod/prod/shop'), ['cart']);
    t.true((await ls('by-pod')).includes('prod'));

    // `nsview list` runs the engines itself (no daemon needed) and names both.
    const list = await runNsview(['list', '--json', ...engineArgs]);
    t.is(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as Array<{ inode: number; containers: Array<Record<string, unknown>> }>;
    t.like(rows.find((r) => r.inode === appNs)?.containers[0], {
      engine: 'containerd',
      id: appId,
      name: 'cart',
      image: 'registry.example/cart:1',
      pod: 'shop',
      podNamespace: 'prod',
      podUid: uid,
      containerName: 'cart',
      sandbox: false,
    });
    t.like(rows.find((r) => r.inode === sbNs)?.containers[0], {
      engine: 'containerd',
      id: sandboxId,
      pod: 'shop',
      podNamespace: 'prod',
      sandbox: true,
    });
    // Namespaces no engine claims have an empty array.
    t.deepEqual(
      rows.find((r) => r.inode === (rows.find((x) => x.containers.length === 0)?.inode ?? -1))?.containers,
      [],
    );
    t.true(rows.every((r) => Array.isArray(r.containers)));
    const text = await runNsview(['list', ...engineArgs]);
    t.regex(
      text.stdout,
      new RegExp(`^mnt:\\[${appNs}\\] (id=\\d+ )?process +containerd/cart\\[pod=prod/shop\\] `, 'm'),
    );
    t.regex(
      text.stdout,
      new RegExp(`^mnt:\\[${sbNs}\\] (id=\\d+ )?process +containerd/shop\\[sandbox,pod=prod/shop\\] `, 'm'),
    );
    const none = await runNsview(['list', '--json', '--no-engines']);
    t.true((JSON.parse(none.stdout) as Array<{ containers: unknown[] }>).every((r) => r.containers.length === 0));

    await ctrd.remove('k8s.io', appId);
    await waitFor('pod gone', async () => (await attempt('ls', [mnt('by-pod/prod/shop/cart')])).code !== 0, {
      timeoutMs: FRESH_MS + SLACK_MS,
    });
    await ctrd.remove('k8s.io', sandboxId);
  },
);

test.serial(
  'without --engine-root the engines are found from the running daemons; --no-engines shows none',
  async (t) => {
    // Names unique to this run: other test files may run their own engines meanwhile.
    const dn = `found-d-${process.pid}`;
    const pn = `found-p-${process.pid}`;
    await dockerRun(dn);
    await podmanRun(pn);
    const dh = (await docker.docker(['exec', dn, 'cat', '/etc/hostname'])).stdout;
    const ph = (await podman.podman(['exec', pn, 'cat', '/etc/hostname'])).stdout;
    const found = await startNsview(scope);
    const other = await startNsview(scope, { extraArgs: ['--no-engines'] });
    try {
      const cat = async (mp: string, p: string) => {
        const r = await attempt('cat', [path.join(mp, p)]);
        return r.code === 0 ? r.stdout : undefined;
      };
      // dockerd from its command line (-H, --exec-root); Podman's storage from its conmon's.
      await waitFor(
        'docker container found',
        async () => (await cat(found.mountpoint, `by-container/docker/${dn}/etc/hostname`)) === dh,
        { timeoutMs: FRESH_MS + SLACK_MS },
      );
      await waitFor(
        'podman container found',
        async () => (await cat(found.mountpoint, `by-container/podman/${pn}/etc/hostname`)) === ph,
        { timeoutMs: FRESH_MS + SLACK_MS },
      );
      t.is(await cat(other.mountpoint, `by-container/docker/${dn}/etc/hostname`), undefined);
      t.deepEqual(
        (await run('ls', ['-1A', path.join(other.mountpoint, 'by-container')])).stdout
          .split('\n')
          .filter(Boolean)
          .sort(),
        ['containerd', 'cri-o', 'docker', 'podman'],
      );
      t.deepEqual((await run('ls', ['-1A', path.join(other.mountpoint, 'by-pod')])).stdout, '');
    } finally {
      await Promise.all([found.stop(), other.stop()]);
    }
    await docker.docker(['rm', '-f', dn]);
    await podman.podman(['rm', '-f', '-t', '0', pn]);
  },
);

test.serial('a hung engine (SIGSTOP) does not slow the view', async (t) => {
  await dockerRun('patient');
  const hostname = (await docker.docker(['exec', 'patient', 'cat', '/etc/hostname'])).stdout;
  await expectCat('by-container/patient/etc/hostname', hostname);
  process.kill(docker.pid, 'SIGSTOP');
  let slowest = 0;
  try {
    const until = Date.now() + 4_000;
    while (Date.now() < until) {
      const t0 = Date.now();
      const r = await attempt('ls', [mnt('by-container'), mnt('by-container/docker')]);
      t.is(r.code, 0, r.stderr);
      slowest = Math.max(slowest, Date.now() - t0);
      await sleep(100);
    }
  } finally {
    process.kill(docker.pid, 'SIGCONT');
  }
  timings['slowest ls while dockerd stopped'] = slowest;
  t.true(slowest < 1_000, `ls took ${slowest} ms while dockerd was stopped`);
  await docker.docker(['rm', '-f', 'patient']);
  await expectCat('by-container/patient/etc/hostname', undefined);
});

// Last: containerd does not come back.
test.serial(
  'containerd killed with SIGKILL while the view is read: its names vanish, its containers keep their directories',
  async (t) => {
    const pid = await ctrd.run(NS, 'doomed', { annotations: { 'nerdctl/name': 'doomed' } });
    const ns = await mntnsOf(pid);
    await podmanRun('bystander');
    const ph = (await podman.podman(['exec', 'bystander', 'cat', '/etc/hostname'])).stdout;
    const hostname = await waitFor('doomed named', () => catView('by-container/doomed/etc/hostname'), {
      timeoutMs: FRESH_MS + SLACK_MS,
    });
    await expectCat('by-container/bystander/etc/hostname', ph);
    // Readers keep going through the kill.
    let reading = true;
    let failures = 0;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        const r = await attempt('cat', [mnt(String(ns), 'etc/hostname'), mnt('by-container/bystander/etc/hostname')]);
        reads++;
        if (r.code !== 0 || r.stdout !== hostname + ph) failures++;
      }
    })();
    const t0 = Date.now();
    await ctrd.killDaemon();
    await expectCat('by-container/doomed/etc/hostname', undefined);
    timings['containerd SIGKILL to name gone'] = Date.now() - t0;
    t.false((await ls('by-container/containerd')).includes('doomed'));
    await sleep(500);
    reading = false;
    await reader;
    t.true(pidAlive(pid), 'the container runs on');
    t.is(failures, 0, `${failures} of ${reads} reads failed`);
    t.true(reads > 3);
    t.is(await catView(`${ns}/etc/hostname`), hostname);
    await podman.podman(['rm', '-f', '-t', '0', 'bystander']);
  },
);

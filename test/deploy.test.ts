/**
 * The deployment files: the Kubernetes DaemonSet (accepted by `kubectl create --dry-run=client`,
 * and saying what the README promises), the script that greps every node through it, the
 * systemd mount unit, and the container image (scripts/test-image builds it with Podman and
 * runs it; about 20 s once its base image is cached, about 2 minutes the first time).
 */
import test from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { makeTempDir, REPO_ROOT, run, startNsview, waitExit } from './helpers/index.js';

const DAEMONSET = path.join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml');

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** kubectl from Debian's kubernetes-client when none is installed. */
function ensureKubectl(): string | undefined {
  if (have('kubectl')) return undefined;
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'kubernetes-client'], {
      stdio: 'ignore',
      timeout: 150_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    return `kubectl missing and "apt-get install kubernetes-client" failed: ${(err as Error).message.split('\n')[0]}`;
  }
  return have('kubectl') ? undefined : 'kubectl missing after installing kubernetes-client';
}

/**
 * `kubectl create --dry-run=client` maps kinds to resources through the API server's discovery
 * even though it sends nothing: this answers discovery for apps/v1 and core v1 only, like a
 * server would. (Schema validation needs the server's OpenAPI document, i.e. a real cluster:
 * `kubectl apply --dry-run=server -f deploy/kubernetes/daemonset.yaml` there.)
 */
async function discoveryServer(): Promise<{ url: string; close(): Promise<void> }> {
  const docs: Record<string, unknown> = {
    '/api': {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }],
    },
    '/apis': {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [
        {
          name: 'apps',
          versions: [{ groupVersion: 'apps/v1', version: 'v1' }],
          preferredVersion: { groupVersion: 'apps/v1', version: 'v1' },
        },
      ],
    },
    '/api/v1': {
      kind: 'APIResourceList',
      groupVersion: 'v1',
      resources: [
        {
          name: 'namespaces',
          singularName: 'namespace',
          namespaced: false,
          kind: 'Namespace',
          verbs: ['create', 'get', 'list'],
        },
      ],
    },
    '/apis/apps/v1': {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'apps/v1',
      resources: [
        {
          name: 'daemonsets',
          singularName: 'daemonset',
          namespaced: true,
          kind: 'DaemonSet',
          verbs: ['create', 'get', 'list'],
        },
      ],
    },
  };
  const server = http.createServer((req, res) => {
    const doc = docs[(req.url ?? '').split('?')[0] ?? ''];
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc ?? { kind: 'Status', status: 'Failure', code: 404 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

interface Container {
  args: string[];
  securityContext: {
    privileged?: boolean;
    capabilities: { add: string[]; drop: string[] };
    seccompProfile?: { type: string };
  };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  volumeMounts: Array<{ name: string; mountPath: string; mountPropagation?: string }>;
  livenessProbe: { exec: { command: string[] }; timeoutSeconds: number };
  lifecycle: { preStop: { exec: { command: string[] } } };
}
interface DaemonSet {
  kind: string;
  spec: {
    template: {
      spec: {
        hostPID: boolean;
        tolerations: Array<{ operator: string }>;
        containers: Container[];
        volumes: Array<{ name: string; hostPath: { path: string; type: string } }>;
      };
    };
  };
}

const kubectlMissing = ensureKubectl();
if (kubectlMissing) {
  test.skip(`kubectl create --dry-run=client (SKIPPED: ${kubectlMissing})`, () => {});
} else {
  test('kubectl create --dry-run=client accepts the DaemonSet; it has what running nsview on every node needs', async (t) => {
    const api = await discoveryServer();
    t.teardown(() => api.close());
    const dir = makeTempDir(t, 'kubectl');
    const r = await run(
      'kubectl',
      ['create', '--dry-run=client', '--validate=false', '-o', 'json', '--server', api.url, '-f', DAEMONSET],
      {
        check: false,
        timeoutMs: 60_000,
        env: { KUBECONFIG: path.join(dir, 'none'), HOME: dir },
      },
    );
    t.is(r.code, 0, r.stderr);
    const ds = JSON.parse(r.stdout) as DaemonSet;
    t.is(ds.kind, 'DaemonSet');
    const pod = ds.spec.template.spec;
    t.true(pod.hostPID);
    t.true(
      pod.tolerations.some((x) => x.operator === 'Exists'),
      'tolerates every taint',
    );
    const c = pod.containers[0];
    if (c === undefined) return t.fail('the DaemonSet has no container');
    t.deepEqual(c.args, ['/mnt/nsview']);
    const caps = await readFile(path.join(REPO_ROOT, 'src/daemon/preflight.ts'), 'utf8');
    for (const cap of c.securityContext.capabilities.add)
      t.true(caps.includes(`CAP_${cap} `), `${cap} is one preflight checks`);
    t.is(c.securityContext.capabilities.add.length, 6);
    t.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    t.truthy(c.resources.requests.memory && c.resources.limits.memory && c.resources.requests.cpu);
    const mnt = c.volumeMounts.find((m) => m.mountPath === '/mnt');
    t.is(mnt?.mountPropagation, 'Bidirectional');
    t.deepEqual(pod.volumes.find((v) => v.name === mnt?.name)?.hostPath.path, '/mnt');
    t.truthy(c.volumeMounts.find((m) => m.mountPath === '/dev/fuse'));
    t.deepEqual(c.lifecycle.preStop.exec.command, ['nsview', 'unmount', '/mnt/nsview']);
    t.true(c.livenessProbe.timeoutSeconds > 0);
    // The liveness command itself, run against real mounts: passes on a serving view, fails on
    // a plain directory (the grep on mountinfo) and on a dead mount (stat -f: ENOTCONN).
    const probe = c.livenessProbe.exec.command;
    t.deepEqual(probe.slice(0, 2), ['sh', '-c']);
    const d = await startNsview(t);
    const on = (mp: string) =>
      run('sh', ['-c', (probe[2] ?? '').replaceAll('/mnt/nsview', mp)], { check: false, timeoutMs: 15_000 });
    t.is((await on(d.mountpoint)).code, 0, 'a serving view passes');
    t.not((await on(dir)).code, 0, 'a plain directory fails');
    d.proc.kill('SIGKILL');
    t.true(await waitExit(d.proc, 10_000));
    const dead = await on(d.mountpoint);
    t.not(dead.code, 0, 'a dead mount fails');
    t.regex(dead.stderr, /not connected/);
  });
}

test('grep-all-nodes.sh runs grep -r in every DaemonSet pod and prefixes each line with its node', async (t) => {
  const dir = makeTempDir(t, 'grep-nodes');
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  // A kubectl that knows two pods; `exec` runs the remote command on a per-node fake view.
  for (const node of ['node-a', 'node-b']) {
    await mkdir(path.join(dir, node, '4026532001/etc'), { recursive: true });
    await writeFile(
      path.join(dir, node, '4026532001/etc/passwd'),
      node === 'node-a' ? 'root:x:0\nneedle here\n' : 'root:x:0\n',
    );
  }
  await writeFile(
    path.join(bin, 'kubectl'),
    `#!/bin/bash
case "$1" in
  get) printf 'nsview-aaaa node-a\\nnsview-bbbb node-b\\n' ;;
  exec) pod=$4; node=node-\${pod#nsview-}; node=\${node:0:6}; cmd=\${@: -1}
        exec sh -c "\${cmd//\\/mnt\\/nsview/${dir}/$node}" ;;
esac
`,
  );
  await chmod(path.join(bin, 'kubectl'), 0o755);
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const script = path.join(REPO_ROOT, 'deploy/kubernetes/grep-all-nodes.sh');
  const hit = await run(script, ['-p', '*/etc/', '--', '-s', 'needle'], { env, check: false });
  t.is(hit.code, 0, hit.stderr);
  t.is(hit.stdout, 'node-a: 4026532001/etc/passwd:needle here\n');
  const none = await run(script, ['-p', '*/etc/', '--', '-s', 'nothing'], { env, check: false });
  t.is(none.code, 1);
  t.is(none.stdout, '');
  const both = await run(script, ['-p', '*/etc/passwd', '--', '-s', 'root'], { env, check: false });
  t.deepEqual(both.stdout.split('\n').filter(Boolean).sort(), [
    'node-a: 4026532001/etc/passwd:root:x:0',
    'node-b: 4026532001/etc/passwd:root:x:0',
  ]);
});

test('systemd/mnt-nsview.mount: systemd-analyze verify accepts it; it mounts fuse.nsview on /mnt/nsview', async (t) => {
  const unit = await readFile(path.join(REPO_ROOT, 'systemd/mnt-nsview.mount'), 'utf8');
  t.regex(unit, /^Where=\/mnt\/nsview$/m);
  t.regex(unit, /^Type=fuse\.nsview$/m);
  t.regex(unit, /^What=nsview$/m);
  if (!have('systemd-analyze')) {
    t.log('systemd-analyze missing: verify not run');
    return;
  }
  const r = await run('systemd-analyze', ['verify', path.join(REPO_ROOT, 'systemd/mnt-nsview.mount')], {
    check: false,
    timeoutMs: 60_000,
  });
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  t.deepEqual(
    `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('mnt-nsview.mount')),
    [],
  );
});

test('Containerfile: multi-stage, base image as a build argument defaulting to the public Node 20 slim image', async (t) => {
  const cf = await readFile(path.join(REPO_ROOT, 'Containerfile'), 'utf8');
  t.regex(cf, /^ARG BASE=docker\.io\/library\/node:20-bookworm-slim$/m);
  const froms = [...cf.matchAll(/^FROM (.+)$/gm)].map((m) => m[1]);
  t.deepEqual(froms, ['${BASE} AS build', '${BASE}']);
  const final = cf.slice(cf.lastIndexOf('\nFROM '));
  t.notRegex(final, /npm (ci|install|run)|apt-get/, 'nothing is built or installed in the final stage');
  t.regex(final, /^ENTRYPOINT \["nsview", "mount", "--foreground"\]$/m);
  t.regex(final, /^CMD \["\/mnt\/nsview"\]$/m);
});

test('the image builds with Podman and serves, stops and recovers from kill -9 (scripts/test-image)', async (t) => {
  t.timeout(300_000);
  const r = await run(path.join(REPO_ROOT, 'scripts/test-image'), [], { check: false, timeoutMs: 290_000 });
  t.log(r.stdout.trim());
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  t.regex(r.stdout, /test-image: ok$/m);
});

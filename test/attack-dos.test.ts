/**
 * Containment attacks, part 7: one container must not be able to take the view away from the
 * others. Symlink rewriting resolves a link's target component by component, with one syscall
 * round per component, up to 40 links: a container can plant links whose targets are as long
 * as the kernel allows (4095 bytes of `x/../x/../...`) chained 40 deep, so that each one costs
 * tens of thousands of in-root lookups, and then fill a directory with them. Reading that
 * directory (ls -l, find, a backup) must not starve reads of other namespaces.
 */
import test from 'ava';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CleanupScope, makeRootfs, makeTempDir, run, startContainer, startNsview, type Container, type Nsview } from './helpers/index.js';
import { probe, probe1, show, tool } from './fixtures/attack/lib.js';

const scope = new CleanupScope();
let heavy: Container;
let victim: Container;
let d: Nsview;
const LINKS = 300;

const PLANT_PY = String.raw`
import os, sys
top = sys.argv[1].encode(); n = int(sys.argv[2])
os.mkdir(os.path.join(top, b'x'))
chain = os.path.join(top, b'chain'); os.mkdir(chain)
# chain/c0 -> x/../x/../ ... /c1 -> ... -> c39 -> x (a directory): 40 links, each ~4000 bytes.
pad = b'x/../' * 790
for i in range(40):
    target = (pad + b'c%d' % (i + 1)) if i < 39 else b'x'
    os.symlink(target, os.path.join(chain, b'c%d' % i))
os.mkdir(os.path.join(chain, b'x'))
many = os.path.join(top, b'many'); os.mkdir(many)
for i in range(n):
    os.symlink(b'../chain/c0', os.path.join(many, b'l%04d' % i))
`;

test.before(async () => {
  const dir = makeTempDir(scope, 'atk-dos');
  const r1 = await makeRootfs(path.join(dir, 'heavy'));
  await mkdir(path.join(r1.dir, 'dos'));
  await run('python3', ['-c', PLANT_PY, path.join(r1.dir, 'dos'), String(LINKS)]);
  const r2 = await makeRootfs(path.join(dir, 'victim'));
  heavy = await startContainer(scope, { rootfs: r1 });
  victim = await startContainer(scope, { rootfs: r2 });
  d = await startNsview(scope, { extraArgs: ['--op-timeout', '4'] });
});
test.after.always(() => scope.cleanup());

test('other namespaces keep answering while readers work through a directory of expensive links', async (t) => {
  const dos = `${d.mountpoint}/${heavy.nsInode}/dos`;
  const one = await probe([
    { op: 'readlink', path: `${dos}/chain/c0` },
    { op: 'lstat', path: `${dos}/many/l0000` },
  ]);
  t.log(`one chain: readlink ${show(one[0]!).slice(0, 60)} in ${one[0]!.ms.toFixed(0)} ms, lstat ${one[1]!.ms.toFixed(0)} ms`);
  // Eight readers at once (a parallel backup, several admins), stopped after 12 s.
  const started = Date.now();
  const bg = tool(
    `for k in 0 1 2 3 4 5 6 7; do (ls -l ${dos}/many | tail -n +$((k * 30)) >/dev/null; for i in $(seq $((k * 30)) $((k * 30 + 29))); do readlink ${dos}/many/l$(printf %04d $i) >/dev/null; done) & done; wait; echo done`,
    12_000,
  );
  // Meanwhile: reads in another namespace, fresh names each time so nothing is cached.
  const lat: string[] = [];
  let worst = 0;
  for (let i = 0; i < 8 && Date.now() - started < 8_000; i++) {
    const t0 = Date.now();
    const r = await probe(
      [
        { op: 'lstat', path: `${d.mountpoint}/${victim.nsInode}/etc/nsview-nothing-${i}` },
        { op: 'read', path: `${d.mountpoint}/${victim.nsInode}/etc/os-release` },
      ],
      { timeoutMs: 60_000 },
    ).catch((e: Error) => {
      lat.push(`probe failed after ${Date.now() - t0} ms: ${e.message.split('\n')[0]}`);
      return undefined;
    });
    if (!r) {
      worst = Math.max(worst, Date.now() - t0);
      continue;
    }
    worst = Math.max(worst, ...r.map((x) => x.ms));
    lat.push(r.map((x) => `${x.ok ? 'ok' : x.errno} ${x.ms.toFixed(0)}ms`).join('+'));
    t.true(r[0]!.errno === 'ENOENT', `another namespace's lookup: ${show(r[0]!)} after ${r[0]!.ms.toFixed(0)} ms`);
  }
  await bg;
  t.log(`other namespace during the load: ${lat.join(', ')}`);
  t.true(worst < 2_000, `another namespace waited ${worst.toFixed(0)} ms`);
  // Let the workers drain before teardown (bounded).
  await probe1('read', `${d.mountpoint}/${victim.nsInode}/etc/hostname`, { timeoutMs: 60_000 });
});

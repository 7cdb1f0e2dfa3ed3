/**
 * The budget of held namespace roots (--max-roots): a listing and reads of many namespaces keep
 * the daemon's fds bounded (least recently used idle roots are closed), every namespace is still
 * served, and the host's namespace is served when the budget is full.
 */
import test from 'ava';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { run, startContainer, startNsview, waitFor, type Container } from './helpers/index.js';

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test('with --max-roots 3, twelve namespaces listed and read keep the daemon within the budget, all served', async (t) => {
  t.timeout(120_000);
  const budget = 3;
  const view = await startNsview(t, { extraArgs: ['--max-roots', String(budget)] });
  const mp = view.mountpoint;
  const hostNs = Number(/\d+/.exec(readlinkSync('/proc/self/ns/mnt'))![0]);
  readdirSync(mp);
  const base = fdCount(view.pid);
  const containers: Container[] = [];
  for (let i = 0; i < 12; i++) containers.push(await startContainer(t));
  await waitFor('all listed', () => containers.every((c) => readdirSync(mp).includes(String(c.nsInode))));
  let peak = 0;
  const sample = () => (peak = Math.max(peak, fdCount(view.pid)));
  await run('ls', ['-l', mp]);
  sample();
  for (let round = 0; round < 2; round++) {
    for (const c of containers) {
      t.is(readFileSync(path.join(mp, String(c.nsInode), 'etc/hostname'), 'utf8'), `${c.hostname}\n`);
      sample();
    }
  }
  t.is(readFileSync(path.join(mp, String(hostNs), 'etc/hostname'), 'utf8'), readFileSync('/etc/hostname', 'utf8'));
  sample();
  // Roots (2 fds each) within the budget plus the host's reserve; a few fds of files being closed.
  const bound = base + 2 * (budget + 2) + 4;
  t.log(`daemon fds: baseline ${base}, peak ${peak} (bound ${bound}) over ${containers.length} namespaces`);
  t.true(peak <= bound, `peak ${peak} > ${bound}`);
  t.false(/fatal/.test(view.stderr()), 'no fatal error');
});

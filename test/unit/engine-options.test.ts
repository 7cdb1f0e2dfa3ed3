/**
 * `--engine-root KIND=PATHS` and `--no-engines` as the command line turns them into engine
 * overrides: each form, relative paths made absolute, and the refusals (exit status 2).
 */
import test from 'ava';
import path from 'node:path';
// The only nsview module this file uses.
import { allValues, engineOverrides } from '../../src/cli/engine-options.js';

test('every form of --engine-root; several of one kind add up', (t) => {
  t.deepEqual(
    engineOverrides(true, [
      'docker=/run/d.sock',
      'docker=/x/d.sock,/x/exec',
      'podman-api=/run/p.sock',
      'storage=/g',
      'storage=/g2,/r2',
      'containerd=/c.sock,/c/state',
    ]),
    {
      docker: [{ socket: '/run/d.sock' }, { socket: '/x/d.sock', execRoot: '/x/exec' }],
      podmanApi: [{ socket: '/run/p.sock' }],
      storage: [{ graphroot: '/g' }, { graphroot: '/g2', runroot: '/r2' }],
      containerd: [{ socket: '/c.sock', state: '/c/state' }],
    },
  );
  t.deepEqual(engineOverrides(true, []), {}, 'nothing given: discovery decides');
  t.deepEqual(engineOverrides(true, ['storage=rel/g']), { storage: [{ graphroot: path.resolve('rel/g') }] });
});

test('--no-engines: no engines at all, whatever --engine-root says', (t) => {
  t.is(engineOverrides(false, ['docker=/run/d.sock']), false);
});

test('malformed values are usage errors (exit 2)', (t) => {
  for (const bad of [
    'docker',
    '=/x',
    'docker=',
    'docker=/a,,/b',
    'containerd=/only-socket',
    'podman-api=/a,/b',
    'docker=/a,/b,/c',
    'lxc=/x',
  ]) {
    const e = t.throws(() => engineOverrides(true, [bad]), undefined, bad);
    t.is((e as Error & { exitCode?: number }).exitCode, 2, bad);
    t.true(e?.message.startsWith(`--engine-root ${bad}: `), e?.message);
  }
});

test('allValues: one value, several, or none as the parser hands them over', (t) => {
  t.deepEqual(allValues(undefined), []);
  t.deepEqual(allValues(''), []);
  t.deepEqual(allValues('docker=/a'), ['docker=/a']);
  t.deepEqual(allValues(['docker=/a', 'storage=/b']), ['docker=/a', 'storage=/b']);
});

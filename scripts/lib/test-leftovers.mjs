#!/usr/bin/env node
// Safety net around a test run (tests must clean up themselves; this only reports and repairs).
//
//   node scripts/lib/test-leftovers.mjs before --root DIR --owner PID
//   node scripts/lib/test-leftovers.mjs after  --root DIR
//
// A test directory is a top-level `<tmp>/nsview-test-*` directory holding `.nsview-test-owner`
// ("pid:starttime" of the process that made it: scripts/test for its run root, else the ava
// worker). It is *stale* when that process is gone. Both phases clean stale directories of
// earlier runs: kill the processes they left (environment NSVIEW_TEST_OWNER naming a dead owner,
// or NSVIEW_TEST_TMPDIR naming the stale root), abort and lazily unmount the mounts below them,
// then remove them without crossing mounts. `before` also writes the owner file of --root.
// `after` treats everything left under --root as a leak: reports it (LEAK lines), cleans it and
// removes --root. The exit code is 0 unless --strict is given and leaks were found (then 3).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const PREFIX = 'nsview-test-';
const OWNER_FILE = '.nsview-test-owner';
const args = process.argv.slice(2);
const phase = args[0];
const opt = (name) => {
  const i = args.indexOf(name);
  return i > 0 ? args[i + 1] : undefined;
};
const root = opt('--root') ? path.resolve(opt('--root')) : undefined;
const strict = args.includes('--strict');
if (phase !== 'before' && phase !== 'after') {
  console.error('usage: test-leftovers.mjs before|after --root DIR [--owner PID] [--strict]');
  process.exit(2);
}

const log = (msg) => console.log(`leftovers(${phase}): ${msg}`);
let leaks = 0;

function starttime(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
/** Is the process named by a "pid:starttime" token still the same live process? */
function ownerAlive(token) {
  const [pid, start] = String(token).trim().split(':');
  return start !== undefined && starttime(pid) === start;
}

if (phase === 'before' && root) {
  const owner = opt('--owner') ?? String(process.ppid);
  writeFileSync(path.join(root, OWNER_FILE), `${owner}:${starttime(owner)}\n`);
}

// Our own ancestry is never killed.
const protect = new Set();
for (let p = process.pid; p > 1;) {
  protect.add(p);
  try {
    const s = readFileSync(`/proc/${p}/stat`, 'utf8');
    p = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    break;
  }
}

// --- which directories to clean ------------------------------------------------------------
const bases = new Set([tmpdir(), ...(root ? [path.dirname(root)] : [])]);
const stale = [];
for (const base of bases) {
  let names = [];
  try {
    names = readdirSync(base);
  } catch {
    continue;
  }
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(base, name);
    if (dir === root) continue;
    let st;
    try {
      st = statSync(dir);
    } catch {
      continue;
    }
    if (!st.isDirectory()) continue;
    let token;
    try {
      token = readFileSync(path.join(dir, OWNER_FILE), 'utf8');
    } catch {
      // No owner file: a directory being created right now, or one from an older layout.
      if (Date.now() - st.mtimeMs < 120_000) continue;
    }
    if (token !== undefined && ownerAlive(token)) continue;
    stale.push(dir);
  }
}
const targets = [...stale, ...(phase === 'after' && root ? [root] : [])];
const isOurs = (dir) => phase === 'after' && dir === root;
const note = (dir, msg) => {
  if (isOurs(dir)) {
    leaks++;
    log(`LEAK: ${msg}`);
  } else log(msg);
};

// --- processes ------------------------------------------------------------------------------
for (const ent of readdirSync('/proc')) {
  if (!/^\d+$/.test(ent)) continue;
  const pid = Number(ent);
  if (protect.has(pid)) continue;
  let env;
  try {
    env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    continue;
  }
  const owner = env.find((e) => e.startsWith('NSVIEW_TEST_OWNER='))?.slice('NSVIEW_TEST_OWNER='.length);
  const runRoot = env.find((e) => e.startsWith('NSVIEW_TEST_TMPDIR='))?.slice('NSVIEW_TEST_TMPDIR='.length);
  let why;
  let dir;
  if (runRoot && targets.includes(path.resolve(runRoot))) {
    dir = path.resolve(runRoot);
    why = `belongs to test run ${dir}`;
  } else if (owner && !ownerAlive(owner)) {
    dir = runRoot && path.resolve(runRoot) === root ? root : undefined;
    why = `its test process ${owner.split(':')[0]} is gone`;
  } else continue;
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    /* exited */
  }
  try {
    process.kill(pid, 'SIGKILL');
    note(dir, `killed process ${pid} (${cmd.slice(0, 120)}): ${why}`);
  } catch {
    /* already gone */
  }
}

// --- mounts ----------------------------------------------------------------------------------
function mounts() {
  const out = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    const unesc = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    out.push({ dev: f[2], mountPoint: unesc(f[4]), fsType: post.split(' ')[0] });
  }
  return out.reverse(); // latest (deepest) first
}
for (const dir of targets) {
  for (let round = 0; round < 5; round++) {
    const under = mounts().filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + '/'));
    if (under.length === 0) break;
    for (const m of under) {
      if (m.fsType === 'fuse' || m.fsType.startsWith('fuse.')) {
        try {
          writeFileSync(`/sys/fs/fuse/connections/${m.dev.split(':')[1]}/abort`, '1');
        } catch {
          /* no fusectl, or already gone */
        }
      }
      const r = spawnSync('umount', ['-l', m.mountPoint], { timeout: 10_000, stdio: 'ignore' });
      if (round === 0)
        note(dir, `detached ${m.fsType} mount ${m.mountPoint}${r.status === 0 ? '' : ' (umount failed)'}`);
    }
  }
}

// --- directories -----------------------------------------------------------------------------
for (const dir of targets) {
  if (!existsSync(dir)) continue;
  if (isOurs(dir)) {
    const rest = readdirSync(dir).filter((n) => n !== OWNER_FILE);
    for (const n of rest) note(dir, `left directory ${path.join(dir, n)}`);
  } else log(`removing stale test directory ${dir}`);
  const r = spawnSync('rm', ['-rf', '--one-file-system', '--', dir], { timeout: 120_000, stdio: 'inherit' });
  if (r.status !== 0) log(`could not remove ${dir}`);
}

if (phase === 'after') log(leaks === 0 ? 'nothing left behind' : `${leaks} leftover(s) cleaned`);
process.exit(strict && leaks > 0 ? 3 : 0);

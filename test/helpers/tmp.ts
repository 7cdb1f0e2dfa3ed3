/**
 * Temporary directories for tests, and their safe removal.
 *
 * All of them live under one base: `$NSVIEW_TEST_TMPDIR` (a per-run directory that scripts/test
 * creates and cleans) or else `os.tmpdir()`. Each is named `nsview-test-*` and, when it is a
 * top-level one, holds an owner file so `scripts/lib/test-leftovers.mjs` can tell a live test's
 * directory from a dead one's.
 *
 * Removal never descends into a mount: it first detaches every mount below the directory (found
 * in /proc/self/mountinfo, deepest first), then runs `rm -rf --one-file-system` in a child with a
 * timeout, so a hung FUSE mount cannot freeze the test process.
 */
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ownerToken, run, type Teardown } from './proc.js';
import { parseMountinfo as parseMountinfoEntries } from '../../src/sys/mountinfo.js';

export const TMP_PREFIX = 'nsview-test-';
export const OWNER_FILE = '.nsview-test-owner';

/** Where test directories go (resolved, so mountinfo paths compare equal). */
export function testTmpBase(): string {
  return realpathSync(process.env.NSVIEW_TEST_TMPDIR || tmpdir());
}

/** Creates `<base>/nsview-test-<label>-XXXXXX`; removed (mounts detached first) at teardown. */
export function makeTempDir(t: Teardown, label = 'tmp'): string {
  const dir = makeTempDirUnmanaged(label);
  t.teardown(() => removeTree(dir));
  return dir;
}

/** Same as makeTempDir without registering removal (call removeTree yourself). */
export function makeTempDirUnmanaged(label = 'tmp'): string {
  const base = testTmpBase();
  const dir = mkdtempSync(path.join(base, `${TMP_PREFIX}${label.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  if (!process.env.NSVIEW_TEST_TMPDIR) writeFileSync(path.join(dir, OWNER_FILE), `${ownerToken()}\n`);
  return dir;
}

export interface MountInfo {
  id: number;
  parentId: number;
  /** `major:minor` of the filesystem (for FUSE: minor = connection number). */
  dev: string;
  /** Paths are bytes as latin1 strings (src/sys/mountinfo.ts); ASCII paths compare as usual. */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Parses mountinfo read as latin1, with nsview's own parser. */
export function parseMountinfo(text: string): MountInfo[] {
  return parseMountinfoEntries(text).map((e) => ({
    id: e.id,
    parentId: e.parentId,
    dev: e.dev,
    root: e.root,
    mountPoint: e.mountPoint,
    fsType: e.fstype,
    source: e.source,
  }));
}

export async function readMountinfo(pid: number | 'self' = 'self'): Promise<MountInfo[]> {
  return parseMountinfo(await readFile(`/proc/${pid}/mountinfo`, 'latin1'));
}

export function readMountinfoSync(pid: number | 'self' = 'self'): MountInfo[] {
  return parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'latin1'));
}

/** Mounts at or below `dir` in this namespace, deepest (latest) first. */
export async function mountsUnder(dir: string): Promise<MountInfo[]> {
  const all = await readMountinfo();
  return all.filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + '/')).reverse();
}

/** The mount whose mount point is exactly `mountPoint` (topmost), if any. */
export async function findMount(mountPoint: string): Promise<MountInfo | undefined> {
  const all = await readMountinfo();
  return all.reverse().find((m) => m.mountPoint === mountPoint);
}

/**
 * Detaches one mount: aborts its FUSE connection first when it is a FUSE mount (so nothing
 * waits on a dead or hung daemon), then `umount -l`. Ignores "not mounted".
 */
export async function detachMount(m: MountInfo): Promise<void> {
  if (m.fsType === 'fuse' || m.fsType.startsWith('fuse.') || m.fsType === 'fuseblk') {
    const minor = m.dev.split(':')[1];
    await writeFile(`/sys/fs/fuse/connections/${minor}/abort`, '1').catch(() => {});
  }
  if (/^[\x20-\x7e]*$/.test(m.mountPoint)) {
    await run('umount', ['-l', m.mountPoint], { check: false, timeoutMs: 10_000 });
    return;
  }
  // Arguments reach a child as UTF-8: a path of other bytes goes through printf's octal escapes.
  const octal = [...Buffer.from(m.mountPoint, 'latin1')].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
  await run('sh', ['-c', `umount -l -- "$(printf '${octal}')"`], { check: false, timeoutMs: 10_000 });
}

/** Detaches every mount below `dir` (deepest first), then removes it without crossing mounts. */
export async function removeTree(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = await mountsUnder(dir);
    if (mounts.length === 0) break;
    for (const m of mounts) await detachMount(m);
  }
  await run('rm', ['-rf', '--one-file-system', '--', dir], { timeoutMs: 60_000, check: false });
}

/**
 * The host's GNU tar as a command line that runs inside another mount namespace: started through
 * the host's dynamic loader reached by `/proc/<test pid>/root`, so a reference archive can be
 * made inside a container whose own tar (busybox) lacks xattrs and sparse files.
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { run, sh } from './proc.js';

export async function hostTarArgv(): Promise<string[]> {
  const tar = await realpath((await sh('command -v tar')).stdout.trim());
  const ldd = (await run('ldd', [tar])).stdout;
  const interp = /^\s*(\/\S+)\s+\(0x/m.exec(ldd)?.[1];
  if (!interp) throw new Error(`no interpreter in ldd ${tar}:\n${ldd}`);
  const libDirs = new Set<string>();
  for (const m of ldd.matchAll(/=>\s+(\/\S+)/g)) libDirs.add(path.dirname(await realpath(m[1]!)));
  const host = `/proc/${process.pid}/root`;
  return [
    `${host}${await realpath(interp)}`,
    '--library-path',
    [...libDirs].map((d) => host + d).join(':'),
    host + tar,
  ];
}

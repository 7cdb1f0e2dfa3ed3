/**
 * A small container root filesystem: a static busybox as /bin/busybox plus applet symlinks, and
 * a few files with distinctive contents so a test can tell the container's view from the host's.
 */
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where setup installs busybox-static. */
export const BUSYBOX = '/bin/busybox';

/** Applets linked into /bin (busybox runs the one named by argv[0]). */
export const ROOTFS_APPLETS = [
  '[',
  'ash',
  'basename',
  'cat',
  'chmod',
  'chown',
  'cmp',
  'cp',
  'cut',
  'date',
  'dd',
  'df',
  'diff',
  'dirname',
  'du',
  'echo',
  'env',
  'false',
  'find',
  'grep',
  'head',
  'hostname',
  'id',
  'kill',
  'ln',
  'ls',
  'md5sum',
  'mkdir',
  'mkfifo',
  'mknod',
  'mount',
  'mv',
  'printf',
  'ps',
  'pwd',
  'readlink',
  'realpath',
  'rm',
  'rmdir',
  'sed',
  'sh',
  'sha256sum',
  'sleep',
  'sort',
  'stat',
  'sync',
  'tail',
  'tar',
  'test',
  'touch',
  'tr',
  'true',
  'umount',
  'uniq',
  'wc',
  'xargs',
] as const;

export interface Rootfs {
  dir: string;
  /** Contents of /etc/hostname, without the newline. */
  hostname: string;
  /** The ID= line of /etc/os-release. */
  osId: string;
}

export interface RootfsOptions {
  /** Contents of /etc/hostname (default: `nsview-ctr-<random hex>`, unique per rootfs). */
  hostname?: string;
}

/**
 * Builds the rootfs in `dir` (created if missing):
 * /bin/busybox + /bin/<applet> symlinks, /etc/{hostname,os-release,passwd,group},
 * empty /proc /sys /dev /root /usr/bin /var, and /tmp (1777).
 */
export async function makeRootfs(dir: string, opts: RootfsOptions = {}): Promise<Rootfs> {
  await assertStaticBusybox();
  const hostname = opts.hostname ?? `nsview-ctr-${randomBytes(3).toString('hex')}`;
  const osId = 'nsview-test';
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'usr/bin', 'var', 'tmp']) {
    await mkdir(path.join(dir, d), { recursive: true });
  }
  await chmod(path.join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, path.join(dir, 'bin/busybox'));
  await chmod(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of ROOTFS_APPLETS) await symlink('busybox', path.join(dir, 'bin', a));
  await writeFile(path.join(dir, 'etc/hostname'), `${hostname}\n`);
  await writeFile(
    path.join(dir, 'etc/os-release'),
    `NAME="nsview test rootfs"\nID=${osId}\nPRETTY_NAME="nsview test rootfs (${hostname})"\n`,
  );
  await writeFile(
    path.join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  await writeFile(path.join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  return { dir, hostname, osId };
}

let busyboxChecked = false;

/** Throws unless /bin/busybox exists and is statically linked (no PT_INTERP): busybox-static. */
export async function assertStaticBusybox(): Promise<void> {
  if (busyboxChecked) return;
  let fh;
  try {
    fh = await open(BUSYBOX, 'r');
  } catch {
    throw new Error(`${BUSYBOX} is missing: run scripts/setup --test (installs busybox-static)`);
  }
  try {
    const hdr = Buffer.alloc(64);
    await fh.read(hdr, 0, 64, 0);
    if (hdr.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${BUSYBOX} is not an ELF binary`);
    if (hdr[4] === 2 && hdr[5] === 1) {
      // ELF64 little-endian: walk the program headers looking for PT_INTERP (3).
      const phoff = Number(hdr.readBigUInt64LE(0x20));
      const phentsize = hdr.readUInt16LE(0x36);
      const phnum = hdr.readUInt16LE(0x38);
      const ph = Buffer.alloc(phentsize * phnum);
      await fh.read(ph, 0, ph.length, phoff);
      for (let i = 0; i < phnum; i++) {
        if (ph.readUInt32LE(i * phentsize) === 3) {
          throw new Error(`${BUSYBOX} is dynamically linked: install busybox-static (scripts/setup --test)`);
        }
      }
    }
  } finally {
    await fh.close();
  }
  busyboxChecked = true;
}

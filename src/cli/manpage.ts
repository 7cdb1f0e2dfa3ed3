/**
 * The manual page nsview(1), in roff, generated from the same tables as --help (options.ts). Run
 * as a script at build time (`npm run build` -> postbuild) it writes dist/man/nsview.1, which
 * package.json's "man" field installs so that `man nsview` works after `npm install -g`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COMMANDS,
  DEFAULT_LOG_FILE,
  DEFAULT_MOUNTPOINT,
  EXIT_CODES,
  MOUNT_OPTIONS,
  allowedValues,
  mountOptionSpec,
} from './options.js';
import type { OptionSpec } from './options.js';
import { FSTAB_IGNORED } from './mount-helper.js';

/** Text as roff: backslashes and hyphens escaped, no line may start with a control character. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function optionEntry(o: OptionSpec): string {
  const names = [`\\fB\\-\\-${roff(o.name)}\\fR`, ...(o.alias ? [`\\fB\\-${o.alias}\\fR`] : [])].join(', ');
  const arg =
    o.kind === 'flag' ? '' : ` \\fI${roff(o.kind === 'choice' ? (o.choices ?? []).join('|') : (o.arg ?? 'VALUE'))}\\fR`;
  const allowed = allowedValues(o);
  const dflt = o.kind === 'flag' ? '' : ` Default: ${roff(String(o.default))}.`;
  const asOpt = o.noMountOption
    ? ''
    : ` In fstab: \\fB${roff(o.name.replace(/-/g, '_'))}${o.kind === 'flag' ? '' : '=\\fR\\fI' + roff(o.arg ?? 'VALUE')}\\fR.`;
  return `.TP\n${names}${arg}\n${roff(o.describe)}.${o.manual ? ` ${roff(o.manual)}` : ''}${allowed ? ` ${roff(allowed.charAt(0).toUpperCase() + allowed.slice(1))}.` : ''}${dflt}${asOpt}`;
}

export function manPage(version: string): string {
  const out: string[] = [];
  out.push(`.TH NSVIEW 1 "" "nsview ${roff(version)}" "User Commands"`);
  out.push('.SH NAME', 'nsview \\- every Linux mount namespace on the host as a read\\-only directory');
  out.push('.SH SYNOPSIS');
  for (const c of COMMANDS)
    out.push(
      `.B nsview ${c.name}\n${c.options.some((o) => !o.hidden) ? '[\\fIoptions\\fR] ' : ''}${roff(c.args)}\n.br`,
    );
  out.push('.B mount \\-t fuse.nsview nsview\n\\fImountpoint\\fR [\\fB\\-o\\fR \\fIoptions\\fR]');
  out.push(
    '.SH DESCRIPTION',
    roff(
      `nsview shows every mount namespace of the host as a directory named by the namespace's inode number under the mountpoint (default ${DEFAULT_MOUNTPOINT}): ` +
        `${DEFAULT_MOUNTPOINT}/4026531840/etc/hostname is the /etc/hostname that processes in that namespace see, and by-pid/PID links to the namespace of process PID. ` +
        "The view is read-only. Paths are resolved by the kernel inside each namespace's root (openat2 RESOLVE_IN_ROOT); device nodes and FIFOs are never opened.",
    ),
  );
  out.push('.SH COMMANDS');
  for (const c of COMMANDS)
    out.push(`.TP\n\\fB${c.name}\\fR${c.args ? ` \\fI${roff(c.args)}\\fR` : ''}\n${roff(c.describe)}.`);
  out.push('.SH MOUNT OPTIONS');
  for (const o of MOUNT_OPTIONS.filter((x) => !x.hidden)) out.push(optionEntry(o));
  out.push('.SH LIST OPTIONS');
  for (const o of COMMANDS.find((c) => c.name === 'list')?.options ?? []) out.push(optionEntry(o));
  const fstabNames = MOUNT_OPTIONS.filter((o) => mountOptionSpec(o.name) !== undefined).map((o) =>
    o.name.replace(/-/g, '_'),
  );
  out.push(
    '.SH FSTAB AND MOUNT(8)',
    roff('The helper mount.fuse.nsview lets mount(8), /etc/fstab and systemd mount units start nsview:'),
    '.RS\n.nf',
    roff(`nsview  ${DEFAULT_MOUNTPOINT}  fuse.nsview  symlinks=raw,allow_other,nofail  0  0`),
    '.fi\n.RE',
    roff(
      `Each -o option is a mount option above, written with _ for - (${fstabNames.join(', ')}). ` +
        `Accepted and ignored, since they are meant for mount(8), systemd or the kernel's generic flags (the view is always read-only, nosuid, nodev): ` +
        `${FSTAB_IGNORED.join(', ')}, x-* (x-systemd.* included) and comment=*. Anything else is refused. ` +
        'umount(8) of the mountpoint stops the daemon.',
    ),
  );
  out.push('.SH EXIT STATUS', roff('As mount(8) and umount(8):'));
  for (const [code, what] of EXIT_CODES) out.push(`.TP\n.B ${code}\n${roff(what)}.`);
  out.push(
    '.SH FILES',
    `.TP\n.I ${roff(DEFAULT_LOG_FILE)}\n${roff('log of a background daemon: one line per event, with an ISO 8601 timestamp, non-printable bytes escaped. A foreground daemon logs to stderr without timestamps (journald adds its own).')}`,
    `.TP\n.I /run/nsview/*.pid\n${roff('one pid file per mountpoint (the path escaped as systemd-escape --path does), held open by the daemon for its life; root only.')}`,
    '.SH SIGNALS',
    roff('SIGTERM, SIGINT and SIGHUP unmount and exit. SIGUSR1 logs request counters and memory use.'),
    '.SH SEE ALSO',
    '.BR mount (8),\n.BR umount (8),\n.BR fstab (5),\n.BR systemd.mount (5),\n.BR nsenter (1)',
  );
  return `${out.join('\n')}\n`;
}

/** Build step: write dist/man/nsview.1 next to dist/src. */
function writeManPage(): void {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = path.resolve(here, '../../..');
  const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const dir = path.join(root, 'dist', 'man');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'nsview.1'), manPage(version));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) writeManPage();

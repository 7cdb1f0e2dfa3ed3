/**
 * The mountinfo parser (proc(5)), byte for byte. Lines are the kernel's format as show_mountinfo()
 * in fs/proc_namespace.c writes it: fields separated by one space, ' ', '\t', '\n' and '\\' in
 * paths escaped as three-digit octal, any number of optional fields ended by ' - '.
 *
 * A container chooses its mount points' names, so every odd byte here is something an attacker
 * can put into the mountinfo nsview reads.
 */
import test from 'ava';
// The only nsview module this file uses.
import { bytesToText, parseMountinfo, parseMountinfoLine, unescapeMountinfo } from '../../src/sys/mountinfo.js';

/** Bytes as the parser sees them: mountinfo is read as latin1, one char per byte. */
const latin1 = (b: Buffer | number[]) => Buffer.from(b).toString('latin1');

test('a plain line: every field', (t) => {
  const e = parseMountinfoLine('36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue');
  t.deepEqual(e, {
    id: 36,
    parentId: 35,
    dev: '98:0',
    major: 98,
    minor: 0,
    root: '/mnt1',
    mountPoint: '/mnt2',
    options: 'rw,noatime',
    optionalFields: ['master:1'],
    fstype: 'ext3',
    source: '/dev/root',
    superOptions: 'rw,errors=continue',
  });
});

test('optional fields: none, several, and the separator is the first lone "-" after field 6', (t) => {
  t.deepEqual(parseMountinfoLine('1 0 0:1 / / rw - rootfs rootfs rw')?.optionalFields, []);
  const e = parseMountinfoLine('2 1 0:2 / /a rw shared:5 master:3 propagate_from:2 unbindable - tmpfs none rw,size=1k');
  t.deepEqual(e?.optionalFields, ['shared:5', 'master:3', 'propagate_from:2', 'unbindable']);
  t.is(e?.fstype, 'tmpfs');
  // A mount point named "-" is field 5, not the separator.
  const dash = parseMountinfoLine('3 1 0:3 / - rw - tmpfs - rw');
  t.is(dash?.mountPoint, '-');
  t.is(dash?.source, '-');
  t.is(dash?.fstype, 'tmpfs');
});

test('octal escapes undone for space, tab, newline and backslash; a backslash not escaping stays', (t) => {
  t.is(unescapeMountinfo('a\\040b\\011c\\012d\\134e'), 'a b\tc\nd\\e');
  t.is(unescapeMountinfo('no escapes'), 'no escapes');
  t.is(unescapeMountinfo('\\04'), '\\04', 'two digits are not an escape');
  t.is(unescapeMountinfo('\\0401'), ' 1', 'exactly three digits');
  t.is(unescapeMountinfo('\\777'), '\xff', 'wider than a byte is cut to a byte, never a wide char');
  const e = parseMountinfoLine('40 1 0:40 /with\\040space /mnt/a\\012b\\134c rw - fuse.my\\040fs src\\040x rw');
  t.is(e?.root, '/with space');
  t.is(e?.mountPoint, '/mnt/a\nb\\c');
  t.is(e?.fstype, 'fuse.my fs');
  t.is(e?.source, 'src x');
});

test('non-UTF-8 bytes survive: each byte is one char and maps back to the same bytes', (t) => {
  const raw = [0x2f, 0xff, 0xfe, 0x80, 0xc3, 0x28]; // '/', then bytes that are not UTF-8
  const line = `7 1 0:7 / ${latin1(raw)} rw - tmpfs tmpfs rw`;
  const e = parseMountinfoLine(line)!;
  t.deepEqual([...Buffer.from(e.mountPoint, 'latin1')], raw);
  t.is(bytesToText(e.mountPoint), Buffer.from(raw).toString('utf8'), 'as text: U+FFFD where not UTF-8');
  // Valid UTF-8 bytes read as latin1 come back as the real characters.
  t.is(bytesToText(latin1(Buffer.from('/données/日本'))), '/données/日本');
  t.is(bytesToText('/plain'), '/plain');
});

test('nsfs pins: root is mnt:[N]', (t) => {
  const e = parseMountinfoLine('812 29 0:4 mnt:[4026532177] /run/pin rw - nsfs nsfs rw');
  t.is(e?.root, 'mnt:[4026532177]');
  t.is(e?.fstype, 'nsfs');
});

test('FUSE: the minor of dev is the connection number; subtype in fstype', (t) => {
  const e = parseMountinfoLine(
    '900 27 0:123 / /mnt/nsview ro,nosuid,nodev,relatime - fuse.nsview nsview ro,user_id=0,group_id=0,default_permissions',
  );
  t.is(e?.major, 0);
  t.is(e?.minor, 123);
  t.is(e?.fstype, 'fuse.nsview');
  t.is(e?.superOptions, 'ro,user_id=0,group_id=0,default_permissions');
});

test('malformed lines are refused, not half-parsed', (t) => {
  for (const bad of [
    '',
    '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3 /dev/root rw', // no separator
    '36 35 98:0 /mnt1 /mnt2 rw - ext3', // separator, too few fields after it
    'x 35 98:0 / / rw - ext3 /dev/root rw', // id not a number
    '36 35 980 / / rw - ext3 /dev/root rw', // dev without ':'
    '36 35 98:0 / / - ext3 /dev/root', // torn read
  ]) {
    t.is(parseMountinfoLine(bad), undefined, JSON.stringify(bad));
  }
});

test('a whole file: torn or empty lines skipped, order kept', (t) => {
  const text = [
    '22 27 0:21 / /proc rw,relatime - proc proc rw',
    '',
    '23 27 0:22 / /sys rw,relatime - sysfs sysfs rw',
    '24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334076k,nr_inodes=3083519,mode=755',
    '25 24 0:23 / /dev/sh', // cut off mid-line
    '',
  ].join('\n');
  t.deepEqual(
    parseMountinfo(text).map((e) => e.mountPoint),
    ['/proc', '/sys', '/dev'],
  );
  t.deepEqual(parseMountinfo(''), []);
});

test("this process's own mountinfo parses completely", async (t) => {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile('/proc/self/mountinfo', 'latin1');
  const lines = text.split('\n').filter((l) => l !== '');
  const parsed = parseMountinfo(text);
  t.is(parsed.length, lines.length);
  t.true(
    parsed.some((e) => e.mountPoint === '/'),
    'the root mount is listed',
  );
  for (const e of parsed) t.true(Number.isInteger(e.id) && e.id > 0);
});

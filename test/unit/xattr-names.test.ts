/**
 * Extended attribute name lists as listxattr returns them (NUL-terminated names), and the
 * trusted.* filter applied for callers who would not see those names natively.
 */
import test from 'ava';
// The only nsview module this file uses.
import { hasXattrName, isTrustedXattr, withoutTrustedXattrs } from '../../src/io/xattr-names.js';

const list = (...names: string[]) => Buffer.from(names.map((n) => `${n}\0`).join(''), 'latin1');

test('trusted.* names are dropped, every other name kept byte for byte and in order', (t) => {
  const all = list(
    'user.a',
    'trusted.overlay.opaque',
    'security.selinux',
    'trusted.x',
    'system.posix_acl_access',
    'user.trusted.not',
  );
  t.deepEqual(
    withoutTrustedXattrs(all),
    list('user.a', 'security.selinux', 'system.posix_acl_access', 'user.trusted.not'),
  );
  t.deepEqual(withoutTrustedXattrs(list('trusted.only')), Buffer.alloc(0));
  t.deepEqual(withoutTrustedXattrs(Buffer.alloc(0)), Buffer.alloc(0));
  t.true(isTrustedXattr(Buffer.from('trusted.a')));
  t.false(isTrustedXattr(Buffer.from('trusted')), 'the bare prefix without its dot');
  t.false(isTrustedXattr(Buffer.from('user.trusted.a')));
  t.true(hasXattrName(all, Buffer.from('trusted.x')));
  t.false(hasXattrName(withoutTrustedXattrs(all), Buffer.from('trusted.x')));
});

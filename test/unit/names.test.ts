/**
 * Names as the kernel hands them to nsview (LOOKUP bodies, getdents): one component each, bytes
 * kept exactly. A container chooses these bytes, so each refused name below is one that, joined
 * into a path, would mean something other than "this entry of this directory".
 */
import test from 'ava';
// The only nsview module this file uses.
import {
  assertComponent,
  childOf,
  components,
  isComponent,
  isDot,
  isDotDot,
  pathBytes,
} from '../../src/resolve/names.js';

const b = (s: string) => Buffer.from(s, 'latin1');

/** The errno code a call threw (NsviewError carries `code`), or 'ok'. */
function outcome(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

test('single components: what is refused and why', (t) => {
  const rows: [string, Buffer, string][] = [
    // Would climb out of the directory, or name the directory itself.
    ['dot', b('.'), 'ENOENT'],
    ['dot-dot', b('..'), 'ENOENT'],
    // Would become two components (a walk) once joined.
    ['slash', b('a/b'), 'ENOENT'],
    ['leading slash', b('/etc'), 'ENOENT'],
    ['only slash', b('/'), 'ENOENT'],
    // Would cut the path short at the C boundary.
    ['NUL', Buffer.from([0x61, 0x00, 0x62]), 'ENOENT'],
    ['only NUL', Buffer.from([0x00]), 'ENOENT'],
    // Not a name at all, or longer than NAME_MAX.
    ['empty', Buffer.alloc(0), 'ENOENT'],
    ['256 bytes', Buffer.alloc(256, 0x61), 'ENOENT'],
    // Legal, however odd: dots that are not . or .., control bytes, non-UTF-8, backslash.
    ['three dots', b('...'), 'ok'],
    ['dot-prefixed', b('.hidden'), 'ok'],
    ['dot-dot-prefixed', b('..x'), 'ok'],
    ['255 bytes', Buffer.alloc(255, 0x61), 'ok'],
    ['newline and tab', b('a\nb\tc'), 'ok'],
    ['not UTF-8', Buffer.from([0xff, 0xfe, 0x80]), 'ok'],
    ['backslash and octal-looking', b('a\\040b'), 'ok'],
    ['every other byte', Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1).filter((x) => x !== 0x2f)), 'ok'],
  ];
  for (const [label, name, want] of rows) {
    t.is(
      outcome(() => assertComponent(name)),
      want,
      label,
    );
    // Listings filter with isComponent: a listed name is always one a lookup takes.
    t.is(isComponent(name), want === 'ok', `isComponent: ${label}`);
  }
  t.false(isComponent(Buffer.alloc(600, 0x4c)), "a hostile FUSE server's 600-byte name");
});

test('in-root paths are byte-exact latin1 strings: join and back', (t) => {
  const odd = Buffer.from([0xff, 0x0a, 0x80]).toString('latin1');
  const p = childOf(childOf(childOf('', 'etc'), odd), 'x');
  t.is(p, `etc/${odd}/x`);
  t.deepEqual([...pathBytes(p)], [...b('etc/'), 0xff, 0x0a, 0x80, ...b('/x')]);
  t.is(childOf('', 'a'), 'a', 'the root is the empty path, with no leading slash');
  t.is(pathBytes('').length, 0);
});

test('components: empty ones dropped, bytes kept, dots left for the caller to judge', (t) => {
  const parts = (s: string) => components(b(s)).map((c) => c.toString('latin1'));
  t.deepEqual(parts(''), []);
  t.deepEqual(parts('/'), []);
  t.deepEqual(parts('//a///b/'), ['a', 'b']);
  t.deepEqual(parts('./../a/.'), ['.', '..', 'a', '.']);
  t.deepEqual(parts('\xff/\n'), ['\xff', '\n']);
  t.true(isDot(b('.')));
  t.false(isDot(b('..')));
  t.false(isDot(b('.a')));
  t.true(isDotDot(b('..')));
  t.false(isDotDot(b('...')));
  t.false(isDotDot(b('.')));
});

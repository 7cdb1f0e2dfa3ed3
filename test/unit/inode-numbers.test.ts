/**
 * st_ino of the view: arithmetic for inode numbers that fit in 48 bits, a table for the others
 * that keeps a number only while a node holds it, so walking a tree of such files does not grow
 * the daemon for ever.
 */
import test from 'ava';
// The only nsview module this file uses.
import { InodeNumbers } from '../../src/vfs/inode-numbers.js';

const DEV = 0x800001;
const BIG = 1n << 60n;

test('numbers that fit are arithmetic and take no table entry', (t) => {
  const nums = new InodeNumbers();
  nums.hold(DEV, 42n);
  t.is(nums.of(DEV, 42n), (1n << 48n) | 42n);
  t.is(nums.tableSize, 0);
  nums.release(DEV, 42n);
  t.is(nums.of(DEV, 42n), (1n << 48n) | 42n, 'and stay the same');
});

test('big numbers: one stable number per file while held, gone when the last holder lets go', (t) => {
  const nums = new InodeNumbers();
  nums.hold(DEV, BIG + 1n);
  nums.hold(DEV, BIG + 1n); // a hardlink's second node
  nums.hold(DEV, BIG + 2n);
  const one = nums.of(DEV, BIG + 1n);
  t.not(one, nums.of(DEV, BIG + 2n), 'two files never share a number');
  t.is(nums.of(DEV, BIG + 1n), one, 'the same file keeps its number');
  t.is(one >> 48n, 0xffffn, 'marked as table-assigned');
  t.is(nums.tableSize, 2);
  nums.release(DEV, BIG + 1n);
  t.is(nums.of(DEV, BIG + 1n), one, 'still held by the other node');
  nums.release(DEV, BIG + 1n);
  nums.release(DEV, BIG + 2n);
  t.is(nums.tableSize, 0, 'nothing held, nothing kept');
  nums.release(DEV, BIG + 2n); // a second release of a forgotten number changes nothing
  t.is(nums.tableSize, 0);
});

test('numbers handed out with no holder (a plain listing) are swept once there are many', (t) => {
  const nums = new InodeNumbers();
  nums.hold(DEV, BIG);
  const held = nums.of(DEV, BIG);
  for (let i = 1n; i <= 10_000n; i++) nums.of(DEV, BIG + i);
  t.true(nums.tableSize <= 4097 + 1, `table of ${nums.tableSize} after 10,000 unheld numbers`);
  t.is(nums.of(DEV, BIG), held, 'a held number survives the sweeps');
});

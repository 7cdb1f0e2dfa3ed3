/**
 * st_ino for everything the view shows. All of /mnt/nsview is one FUSE device, so the numbers
 * must be unique across every filesystem of every namespace, and stable while the daemon runs:
 * tar and rsync -H recognise hardlinks by (st_dev, st_ino), so two names of one file must share
 * a number and two files never may.
 *
 * Most filesystems' inode numbers fit in 48 bits, so the usual number is simply
 * (small index of the source device << 48) | source ino: no per-file memory at all. Larger
 * numbers (overlayfs xino, some btrfs/xfs) get a counter from a table instead.
 */
const SHIFT = 48n;
const LOW_MASK = (1n << SHIFT) - 1n;
/** Device index 0 is the view's own virtual entries; 0xffff marks table-assigned numbers. */
const TABLE_INDEX = 0xffffn;
const MAX_DEV_INDEX = 0xfffe;

export class InodeNumbers {
  private readonly devIndex = new Map<number, bigint>();
  private readonly big = new Map<string, bigint>();
  private nextBig = 1n;

  /** The view's inode number for (dev, ino) of a real file. */
  of(dev: number, ino: bigint): bigint {
    let idx = this.devIndex.get(dev);
    if (idx === undefined) {
      if (this.devIndex.size >= MAX_DEV_INDEX) return this.tabled(dev, ino);
      idx = BigInt(this.devIndex.size + 1);
      this.devIndex.set(dev, idx);
    }
    if (ino > LOW_MASK) return this.tabled(dev, ino);
    return (idx << SHIFT) | ino;
  }

  private tabled(dev: number, ino: bigint): bigint {
    const key = `${dev}:${ino}`;
    let n = this.big.get(key);
    if (n === undefined) {
      n = (TABLE_INDEX << SHIFT) | this.nextBig++;
      this.big.set(key, n);
    }
    return n;
  }

  /** Numbers for the view's own entries (top directory, by-pid, links): device index 0. */
  static virtual(n: bigint): bigint {
    return n & LOW_MASK;
  }
}

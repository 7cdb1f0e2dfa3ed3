/**
 * st_ino for everything the view shows. All of /mnt/nsview is one FUSE device, so the numbers
 * must be unique across every filesystem of every namespace, and stable while the daemon runs:
 * tar and rsync -H recognise hardlinks by (st_dev, st_ino), so two names of one file must share
 * a number and two files never may.
 *
 * Most filesystems' inode numbers fit in 48 bits, so the usual number is simply
 * (small index of the source device << 48) | source ino: no per-file memory at all. Larger
 * numbers (overlayfs xino, some btrfs/xfs) get a counter from a table instead. That table holds
 * a number while a node the kernel knows has it (hold/release), so it shrinks when the kernel
 * forgets nodes: a tree of such files walked once does not stay in memory. A file met again
 * after all its nodes were forgotten may get another number; the kernel held no inode with the
 * old one by then. Numbers handed out without a node (a plain READDIR's d_ino) are swept once
 * there are many of them.
 */
const SHIFT = 48n;
const LOW_MASK = (1n << SHIFT) - 1n;
/** Device index 0 is the view's own virtual entries; 0xffff marks table-assigned numbers. */
const TABLE_INDEX = 0xffffn;
const MAX_DEV_INDEX = 0xfffe;
/** Table entries held by no node, kept until there are this many. */
const MAX_FLOATING = 4096;

interface Tabled {
  readonly n: bigint;
  /** Nodes holding this number. */
  holds: number;
}

export class InodeNumbers {
  private readonly devIndex = new Map<number, bigint>();
  private readonly big = new Map<string, Tabled>();
  /** Entries of `big` with no holds. */
  private floating = 0;
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
    return this.entry(dev, ino).n;
  }

  private entry(dev: number, ino: bigint): Tabled {
    const key = `${dev}:${ino}`;
    let e = this.big.get(key);
    if (e === undefined) {
      if (this.floating >= MAX_FLOATING) this.sweep();
      e = { n: (TABLE_INDEX << SHIFT) | this.nextBig++, holds: 0 };
      this.big.set(key, e);
      this.floating++;
    }
    return e;
  }

  /** Does (dev, ino) need a table entry (rather than the arithmetic number)? */
  private needsTable(dev: number, ino: bigint): boolean {
    return ino > LOW_MASK || (!this.devIndex.has(dev) && this.devIndex.size >= MAX_DEV_INDEX);
  }

  /** A node now has (dev, ino): its number stays the same until release. */
  hold(dev: number, ino: bigint): void {
    this.of(dev, ino);
    if (!this.needsTable(dev, ino)) return;
    const e = this.entry(dev, ino);
    if (e.holds++ === 0) this.floating--;
  }

  /** A node with (dev, ino) was forgotten, or now has another identity. */
  release(dev: number, ino: bigint): void {
    const key = `${dev}:${ino}`;
    const e = this.big.get(key);
    if (e === undefined || e.holds === 0) return;
    if (--e.holds === 0) this.big.delete(key);
  }

  private sweep(): void {
    for (const [key, e] of this.big) if (e.holds === 0) this.big.delete(key);
    this.floating = 0;
  }

  /** Numbers in the table (for stats and tests). */
  get tableSize(): number {
    return this.big.size;
  }

  /** Numbers for the view's own entries (top directory, by-pid, links): device index 0. */
  static virtual(n: bigint): bigint {
    return n & LOW_MASK;
  }
}

/**
 * Listings of the view's own directories (the top directory, by-pid/, a directory shown empty):
 * a whole listing is computed at offset 0 and served in slices from here after, and the numeric
 * names those directories use.
 */
import { FUSE_ROOT_ID, DT } from '../fuse/types.js';
import type { DirEntry, Entry } from '../fuse/types.js';

/** Entries per READDIRPLUS and per READDIR answer (the engine sends what fits of them). */
export const PLUS_BATCH = 128;
export const PLAIN_BATCH = 1024;

/** An entry of one of the view's own directories; `entry` makes its READDIRPLUS entry, if it has one. */
export interface ListItem {
  name: Buffer;
  ino: bigint;
  type: number;
  off: bigint;
  entry?: () => Entry | undefined;
}

/** '.', '..' and the given entries, with offsets 1..n (the list is the whole directory). */
export function listEntries(entries: Array<Omit<ListItem, 'off'>>, self: bigint): ListItem[] {
  const all = [
    { name: Buffer.from('.'), ino: self, type: DT.DIR },
    { name: Buffer.from('..'), ino: FUSE_ROOT_ID, type: DT.DIR },
    ...entries,
  ];
  return all.map((e, i) => ({ ...e, off: BigInt(i + 1) }));
}

/** A name that is a number as the view writes them (no sign, no leading zero), else undefined. */
export function parseNumberName(name: Buffer): number | undefined {
  const s = name.toString('latin1');
  return /^[1-9][0-9]{0,15}$/.test(s) ? Number(s) : undefined;
}

export class Listings {
  /** Listings computed at offset 0, by directory node, until their end was served. */
  private readonly lists = new Map<bigint, ListItem[]>();

  /** The entries after `offset` of directory `nodeid`; `compute` gives the whole listing. */
  async serve(
    nodeid: bigint,
    offset: bigint,
    plus: boolean,
    compute: () => ListItem[] | Promise<ListItem[]>,
  ): Promise<DirEntry[]> {
    let list = offset === 0n ? undefined : this.lists.get(nodeid);
    if (!list) {
      list = await compute();
      this.lists.set(nodeid, list);
    }
    const slice = list.slice(Number(offset), Number(offset) + (plus ? PLUS_BATCH : PLAIN_BATCH));
    if (slice.length === 0) this.lists.delete(nodeid);
    // Entries (and their lookup counts) are made as they are served, never cached.
    return slice.map(({ entry, ...de }) => {
      const e = plus && entry ? entry() : undefined;
      return e ? { ...de, entry: e } : de;
    });
  }
}

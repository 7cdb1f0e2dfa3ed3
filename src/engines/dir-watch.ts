/**
 * Change hints from inotify (fs.watch) on an engine's state directories. Only a hint: the
 * registry re-lists on it, and polls anyway, so a missed event costs freshness, never truth.
 */
import { watch, type FSWatcher } from 'node:fs';

export class DirWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private closed = false;

  constructor(private readonly onChange: () => void) {}

  /** Watches exactly these directories from now on (missing ones are skipped). */
  set(dirs: Iterable<string>): void {
    if (this.closed) return;
    const want = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!want.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of want) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, { persistent: false }, () => this.onChange());
        w.on('error', () => {
          w.close();
          this.watchers.delete(d);
        });
        this.watchers.set(d, w);
      } catch {
        /* not there (yet): the next set() retries */
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

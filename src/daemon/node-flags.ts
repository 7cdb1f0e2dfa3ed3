/**
 * V8 flags the daemon runs with, wherever it is started: the shebang of bin/nsview, the
 * background start (cli/mount.ts), systemd/nsview.service and the benchmark all use these (a
 * test checks they agree). Measured on a 100,000-entry walk: peak RSS 157-161 MB without them,
 * 135-137 MB with them, at the same speed. A small young generation and V8's memory-saving mode
 * keep the per-request garbage from growing the heap; the node table is the one big structure.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size'];

/**
 * Environment the daemon starts with, in the same places. One glibc malloc arena: buffers that
 * an io worker allocates and the main thread frees otherwise pile up in per-thread arenas that
 * are never given back (a 53,000-entry find, ls -lR and tar: peak RSS 140 -> 130 MB). V8's own
 * heaps do not use malloc, so the threads hardly contend for it.
 */
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' };

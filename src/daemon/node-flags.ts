/**
 * V8 flags the daemon runs with, wherever it is started: the shebang of bin/nsview, the
 * background start (cli/mount.ts), systemd/nsview.service and the benchmark all use these (a
 * test checks they agree). Measured on a 100,000-entry walk: peak RSS 157-161 MB without them,
 * 135-137 MB with them, at the same speed. A small young generation and V8's memory-saving mode
 * keep the per-request garbage from growing the heap; the node table is the one big structure.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size'];

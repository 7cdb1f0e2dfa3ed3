/**
 * One line per event. Errors name the errno; per-operation tracing only with --verbose.
 *
 * Where the lines go decides their form: into a log file (a background daemon's stderr, or any
 * stderr redirected to a regular file) each line starts with an ISO 8601 timestamp; to journald
 * or a terminal it does not, since journald stamps every line itself and a second stamp is noise.
 *
 * Every message is escaped so that one event is always exactly one line: names come from
 * containers (a mount point or file name may hold a newline or terminal escape sequences), and
 * a name must never be able to forge a log line or rewrite the reader's terminal.
 */
import fs from 'node:fs';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  trace(message: string): void;
  readonly verbose: boolean;
}

export interface LoggerOptions {
  /** Prefix each line with an ISO 8601 timestamp (default: when stderr is a regular file). */
  timestamps?: boolean;
}

/**
 * Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and the backslash
 * itself (so the escaping can be undone unambiguously) become `\xNN` / `\uNNNN` / `\\`.
 */
export function escapeLogText(text: string): string {
  return text.replace(/[\\\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code > 0xff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}

/** True when fd 2 is a regular file: then nobody else timestamps what we write. */
export function stderrIsFile(): boolean {
  try {
    return fs.fstatSync(2).isFile();
  } catch {
    return false;
  }
}

export function createLogger(
  verbose: boolean,
  sink: (line: string) => void = (l) => process.stderr.write(l),
  options: LoggerOptions = {},
): Logger {
  const stamp = options.timestamps ?? stderrIsFile();
  const line = (level: string, message: string) =>
    sink(`${stamp ? `${new Date().toISOString()} ` : ''}nsview[${process.pid}]: ${level}${escapeLogText(message)}\n`);
  return {
    verbose,
    info: (m) => line('', m),
    warn: (m) => line('warning: ', m),
    error: (m) => line('error: ', m),
    trace: (m) => {
      if (verbose) line('trace: ', m);
    },
  };
}

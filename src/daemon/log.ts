/**
 * One line per event on stderr (journald timestamps and keeps them). Errors name the errno.
 * Per-operation tracing only with --verbose.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  trace(message: string): void;
  readonly verbose: boolean;
}

export function createLogger(verbose: boolean, sink: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const line = (level: string, message: string) => sink(`nsview[${process.pid}]: ${level}${message}\n`);
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

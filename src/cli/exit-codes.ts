/**
 * Exit statuses of the command line, following mount(8) and umount(8) where they overlap (see
 * EXIT_CODES in options.ts for the documented list), and the errors that carry them.
 */
export const EXIT = {
  OK: 0,
  NOT_PERMITTED: 1,
  USAGE: 2,
  INTERNAL: 4,
  MOUNT_FAILURE: 32,
} as const;

/** A command line the parser or a value check refuses: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT.USAGE;
}

/** A failure with a chosen exit status (e.g. 32 for "not mounted", as umount(8) exits). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

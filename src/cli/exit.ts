/**
 * The CLI's exit codes: a script tells apart "the run failed" from "I typed it wrong" from "the
 * server is down". Listed in `jetty --help` and docs/cli.md.
 */
export const EXIT = {
  ok: 0,
  /** The run ended `failed` (the agent, the sandbox or its deadline). */
  runFailed: 1,
  /** Bad command line or an unreadable local file: nothing was sent. */
  usage: 2,
  /** The run ended `cancelled` (Ctrl-C, `jetty cancel`, or someone else). */
  cancelled: 3,
  /** The server answered with an error (bad key, invalid runbook, unknown run...). */
  apiError: 4,
  /** The server could not be reached, or its stream was lost for good. */
  unreachable: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI prints as one message and exits with its code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** The HTTP status, when the server answered with an error. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.usage);

export const EXIT_CODES_HELP = `exit codes:
  0  the run completed (or the command did what it says)
  1  the run failed
  2  usage error: bad arguments or an unreadable file (nothing was sent)
  3  the run was cancelled
  4  the server refused the request (bad key, invalid runbook, unknown run, ...)
  5  the server could not be reached, or the event stream was lost for good`;

import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type CliConfig, loadCliConfig } from '../config/cli.js';
import { JettyClient } from './client.js';
import { type ExitCode, usageError } from './exit.js';
import type { Terminal } from './progress.js';

/** What a command may touch: passed in, so tests can run a command without a child process. */
export interface CliContext {
  env: Record<string, string | undefined>;
  stdout: Terminal;
  stderr: Terminal;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  cwd: string;
  /** Where SIGINT is heard (process, in the real CLI). */
  signals: Pick<NodeJS.Process, 'on' | 'off'>;
}

/**
 * One `jetty <name>` command. A new one (`jetty ab ...`, say) is one more entry in the table in
 * src/cli/main.ts: its own flags, help and exit code.
 */
export interface Command {
  name: string;
  /** One line for `jetty --help`. */
  summary: string;
  /** The whole of `jetty <name> --help`. */
  help: string;
  run(argv: string[], ctx: CliContext): Promise<ExitCode>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command that talks to the server takes. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string', short: 's' },
  key: { type: 'string', short: 'k' },
} as const satisfies Options;

export const CONNECTION_HELP = `  -s, --server URL     the server (default: $JETTY_URL, else http://127.0.0.1:8080)
  -k, --key KEY        the collection's API key (default: $JETTY_API_KEY; the variable keeps it out
                       of shell history and the process list)`;

/** node:util parseArgs, strict, with -h/--help; a mistake is a usage error naming the flag. */
export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw usageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, '.'));
  }
}

/** The client for the server the flags or the environment name; no key is a usage error. */
export function connect(
  values: { server?: string | undefined; key?: string | undefined },
  ctx: CliContext,
): { client: JettyClient; config: CliConfig } {
  if (values.server !== undefined && !URL.canParse(values.server)) {
    throw usageError(
      `--server must be the server's http(s) URL, such as http://127.0.0.1:8080; got "${values.server}"`,
    );
  }
  if (values.server !== undefined && !/^https?:$/.test(new URL(values.server).protocol)) {
    throw usageError(`--server must be an http or https URL; got "${values.server}"`);
  }
  const config = loadCliConfig({ ...ctx.env, ...(values.server ? { JETTY_URL: values.server } : {}) });
  const key = values.key ?? config.apiKey;
  if (!key) {
    throw usageError(
      'no API key: set JETTY_API_KEY (or pass --key). `npm run jetty -- keys create <collection>` on the server makes one.',
    );
  }
  return { client: new JettyClient(config.url, key), config };
}

export function println(t: Terminal, line: string): void {
  t.write(`${line}\n`);
}

/** Whole number of a flag, or a usage error naming it. */
export function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw usageError(`--${name} must be a whole number from ${min} to ${max}; got "${v}"`);
  }
  return n;
}

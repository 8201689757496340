import { z } from 'zod';
import { ConfigError, parseBytes } from './index.js';

/**
 * The `jetty` CLI's settings, from its user's environment (a laptop or CI, not the server's):
 * where the server is, the key, and the bounds on what the CLI takes from the server. A flag
 * (--server, --key) wins over its variable. A bad value stops the CLI naming the variable.
 */
export interface CliConfig {
  url: string;
  apiKey: string | undefined;
  /** Largest runbook file `jetty run` reads and sends. */
  maxRunbookBytes: number;
  /** Largest single event (SSE message) the CLI accepts before it stops following. */
  maxEventBytes: number;
  /** Artifacts downloaded per run, in total; files past it are listed, not fetched. */
  maxDownloadBytes: number;
  /** Reconnections of an event stream, in a row without an event between them, before giving up. */
  reconnects: number;
}

export const CLI_DEFAULT_URL = 'http://127.0.0.1:8080';

const bytes = (def: string) =>
  z
    .string()
    .default(def)
    .transform((v, ctx) => {
      const n = parseBytes(v);
      if (n === null || n < 1) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 512k, 8m, 1g or 1048576; got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const cliEnvSchema = z.object({
  JETTY_URL: z
    .url({ protocol: /^https?$/, error: 'must be the server’s http(s) URL, such as http://127.0.0.1:8080' })
    .default(CLI_DEFAULT_URL),
  JETTY_API_KEY: z
    .string()
    .optional()
    .transform((v) => (v === '' ? undefined : v)),
  JETTY_CLI_MAX_RUNBOOK_BYTES: bytes('4m'),
  JETTY_CLI_MAX_EVENT_BYTES: bytes('8m'),
  JETTY_CLI_MAX_DOWNLOAD_BYTES: bytes('1g'),
  JETTY_CLI_RECONNECTS: z
    .string()
    .default('10')
    .transform((v, ctx) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 1000) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from 0 to 1000; got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
});

/** Every environment variable the CLI reads: docs/configuration.md has a row for each (a test checks). */
export const CLI_VARIABLES: readonly string[] = Object.keys(cliEnvSchema.shape);

export function loadCliConfig(env: Record<string, string | undefined>): CliConfig {
  const parsed = cliEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    url: e.JETTY_URL.replace(/\/+$/, ''),
    apiKey: e.JETTY_API_KEY,
    maxRunbookBytes: e.JETTY_CLI_MAX_RUNBOOK_BYTES,
    maxEventBytes: e.JETTY_CLI_MAX_EVENT_BYTES,
    maxDownloadBytes: e.JETTY_CLI_MAX_DOWNLOAD_BYTES,
    reconnects: e.JETTY_CLI_RECONNECTS,
  };
}

/**
 * Small helpers shared by the runtime parsers: every agent CLI prints one JSON object per stdout
 * line, and every parser must read them without ever throwing on what it does not expect.
 *
 * Parsers never cut text: the worker's event sink redacts each event whole and then cuts it to the
 * run's limits. Cutting here, before redaction, could keep the start of a secret.
 */
import type { AgentEvent, RunError } from '../events/types.js';
import { isPlainObject } from '../json.js';

export type JsonObject = Record<string, unknown>;

/** The line as a JSON object, or undefined for anything else (non-JSON, arrays, scalars). */
export function parseJsonObject(line: string): JsonObject | undefined {
  // Most noise is not even JSON-shaped: skip the throw and catch (a flood of lines is costly enough).
  if (!startsLikeObject(line)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  return asObject(value);
}

/** Whether the first character after any blanks is `{`. */
function startsLikeObject(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x7b) return true;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  }
  return false;
}

export function asObject(value: unknown): JsonObject | undefined {
  return isPlainObject(value) ? (value as JsonObject) : undefined;
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A finite number, or undefined (NaN, Infinity, strings, null all count as missing). */
export function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** A token count or a price: finite and not negative. */
export function asCount(value: unknown): number | undefined {
  const n = asNumber(value);
  return n !== undefined && n >= 0 ? n : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function logEvent(stream: 'stderr' | 'system', line: string): AgentEvent {
  return { type: 'log', data: { stream, line } };
}

/** How a CLI process ended, for a crash message: "was killed" or "exited with code N". */
export function howItEnded(exitCode: number | null): string {
  return exitCode === null ? 'was killed' : `exited with code ${exitCode}`;
}

/**
 * What every parser's `push` does around its own line handling: blank lines are nothing, and a
 * line its handler chokes on still reaches the user as a `log` event while the run goes on.
 */
export function pushGuarded(
  runtime: string,
  line: string,
  handle: (line: string) => AgentEvent[],
): AgentEvent[] {
  if (line.trim() === '') return [];
  try {
    return handle(line);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return [logEvent('system', `${runtime}: unreadable output line (${reason}): ${line}`)];
  }
}

/**
 * The HTTP status of a failed model request → [error code, what failed], the same for every
 * runtime: 401/403 provider_auth_error, 404 provider_model_not_found, 429 provider_rate_limited,
 * 5xx provider_error; any other status (400, 413, …) means the request the agent built was refused.
 */
export type ProviderFailureCode =
  | 'provider_auth_error'
  | 'provider_model_not_found'
  | 'provider_rate_limited'
  | 'provider_error'
  | 'agent_error';

export function providerFailure(status: number): [code: ProviderFailureCode, what: string] {
  const who = 'The model provider';
  if (status === 401 || status === 403) return ['provider_auth_error', `${who} rejected the request`];
  if (status === 404) return ['provider_model_not_found', `${who} does not know the model`];
  if (status === 429) return ['provider_rate_limited', `${who} rate-limited the request`];
  if (status >= 500 && status <= 599) return ['provider_error', `${who} failed`];
  return ['agent_error', `${who} refused the request`];
}

/** A failed model request as a run error whose message names the status and the CLI's words. */
export function providerError(status: number, detail: string): RunError {
  const [code, what] = providerFailure(status);
  return { code, message: `${what} (HTTP ${status}): ${detail}` };
}

/** HOME of the non-root `agent` user every runtime image has (docker/runtimes/common/sandbox-user.sh). */
export const AGENT_HOME = '/home/agent';
/** Where each runtime's prompt goes: a file fed to the CLI's stdin, since runbooks do not fit argv. */
export const PROMPT_PATH = `${AGENT_HOME}/.jetty/prompt.md`;

/**
 * Gemini CLI 0.61.0 run headless (`gemini --output-format stream-json --yolo`, the prompt on
 * stdin), and the parser that turns its stream-json lines into the shared event vocabulary.
 *
 * Shapes are the ones the CLI really prints; test/fixtures/gemini-cli holds recordings.
 */
import type { AgentEvent, RunError, UsageData } from '../events/types.js';
import {
  AGENT_HOME,
  asCount,
  asObject,
  asString,
  howItEnded,
  type JsonObject,
  logEvent,
  PROMPT_PATH,
  parseJsonObject,
  providerError,
  pushGuarded,
} from './json-lines.js';
import type { McpServer } from './mcp.js';
import type {
  Invocation,
  InvocationSpec,
  OutputParser,
  ProviderName,
  RuntimeAdapter,
  RuntimeCapabilities,
  RuntimeOutcome,
} from './types.js';

export const GEMINI_CLI_VERSION = '0.61.0';
/** A pinned model also keeps the CLI from asking a router model first (one call less per turn). */
const DEFAULT_MODEL = 'gemini-2.5-pro';

/**
 * The prompt goes in a file fed to stdin. With no `-p`, a CLI whose stdin is not a terminal reads
 * all of stdin (up to 8 MiB) as the prompt and runs headless; `-p` would only append to it.
 */
export const GEMINI_PROMPT_PATH = PROMPT_PATH;
/** The user settings file. (The system settings file would need root to own it and its directories.) */
export const GEMINI_SETTINGS_PATH = `${AGENT_HOME}/.gemini/settings.json`;

/**
 * Two attempts, not the default ten: with ten, a persistent 500 takes over four minutes to surface
 * (the backoff starts at 5 s ± 30%); with two a 500 or 429 fails in about 7 s (measured in the
 * image). A 401, 403 or 404 is never retried: it fails in about 2 s.
 */
const MAX_ATTEMPTS = 2;

/** The providers this runtime reaches through the gateway, and how the CLI is pointed at each. */
const PROVIDERS = ['google', 'vertex', 'simulated'] as const satisfies readonly ProviderName[];

function buildInvocation(spec: InvocationSpec): Invocation {
  const model = modelSlug(spec.model || DEFAULT_MODEL);
  return {
    argv: [
      'gemini',
      '--output-format',
      'stream-json',
      // Every tool call approved; the folder is trusted by the settings (an untrusted folder
      // would quietly turn YOLO off and then exit 55).
      '--yolo',
      // One argument, `=` form: a model value that starts with `-` can never be read as a flag.
      `--model=${model}`,
    ],
    env: {
      ...providerEnv(spec),
      // The CLI otherwise starts itself again as a child Node process (about 1.1 s).
      GEMINI_CLI_NO_RELAUNCH: 'true',
      HOME: AGENT_HOME,
    },
    files: [
      // 0600: MCP servers' env and headers may hold the run's secrets.
      { path: GEMINI_SETTINGS_PATH, content: `${JSON.stringify(settings(spec), null, 2)}\n`, mode: 0o600 },
      { path: GEMINI_PROMPT_PATH, content: spec.prompt, mode: 0o644 },
    ],
    stdinFile: GEMINI_PROMPT_PATH,
  };
}

/** Jetty accepts `google/gemini-2.5-pro` for `gemini-2.5-pro`; the Gemini API wants the bare slug. */
function modelSlug(model: string): string {
  return model.replace(/^google\//, '');
}

/**
 * Where the CLI sends model calls: always the gateway, with the per-run token as the API key (the
 * gateway swaps it for the real key). google and simulated take the Gemini API
 * (`/v1beta/models/{model}:streamGenerateContent`, key in `x-goog-api-key`); vertex takes Vertex AI
 * in express mode (`/v1beta1/publishers/google/models/{model}:streamGenerateContent`, same header).
 * Express mode is the only Vertex mode with a key: GOOGLE_CLOUD_PROJECT/LOCATION must stay unset,
 * or the SDK would sign requests with Google credentials the sandbox has not.
 */
function providerEnv(spec: InvocationSpec): Record<string, string> {
  if (spec.provider === 'vertex') {
    return {
      GOOGLE_GENAI_USE_VERTEXAI: 'true',
      GOOGLE_VERTEX_BASE_URL: spec.gatewayUrl,
      GOOGLE_API_KEY: spec.token,
    };
  }
  return { GOOGLE_GEMINI_BASE_URL: spec.gatewayUrl, GEMINI_API_KEY: spec.token };
}

/**
 * `jetty.mcp_servers` in the CLI's own `mcpServers` form: a stdio server by `command`, a remote one
 * by `httpUrl` (streamable HTTP) or `url` (SSE). `trust` skips the CLI's confirmation, as --yolo
 * does for its own tools. The CLI names their tools `mcp_<server>_<tool>`.
 */
function mcpSettings(servers: readonly McpServer[]): JsonObject {
  const out: JsonObject = {};
  for (const s of servers) {
    out[s.name] =
      s.transport === 'stdio'
        ? { command: s.command, args: s.args, env: s.env, trust: true }
        : s.transport === 'http'
          ? { httpUrl: s.url, headers: s.headers, trust: true }
          : { url: s.url, headers: s.headers, trust: true };
  }
  return out;
}

/** ~/.gemini/settings.json for one run. */
function settings(spec: InvocationSpec): JsonObject {
  const mcp = spec.mcpServers ?? [];
  return {
    security: {
      // With GOOGLE_GEMINI_BASE_URL set the CLI would pick the "gateway" auth type, which headless
      // mode rejects ("Invalid auth method selected.", exit 41): name the key-based type instead.
      auth: { selectedType: spec.provider === 'vertex' ? 'vertex-ai' : 'gemini-api-key' },
      folderTrust: { enabled: false },
    },
    // No usage statistics (Clearcut), telemetry or update checks: nothing but model calls leaves.
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    general: {
      enableAutoUpdate: false,
      enableAutoUpdateNotification: false,
      maxAttempts: MAX_ATTEMPTS,
    },
    ide: { enabled: false },
    tools: {
      // No ripgrep in the image: skip the probe (and its warning); the built-in grep tool is used.
      useRipgrep: false,
      shell: {
        // Plain child processes: no pseudo-terminal needed headless, and no native module.
        enableInteractiveShell: false,
        // A command is otherwise killed after 5 silent minutes; the run's own deadline is the limit.
        inactivityTimeout: Math.max(300, spec.deadlineSec),
      },
    },
    ...(mcp.length > 0 ? { mcpServers: mcpSettings(mcp) } : {}),
  };
}

const capabilities: RuntimeCapabilities = {
  // `result.stats`: input, output and cached tokens, per model.
  token_usage: true,
  // No cost anywhere in the stream.
  cost: false,
  // Assistant text arrives as the model streams it (`message` lines with `delta: true`).
  streaming: 'delta',
  // settings.json `mcpServers`: stdio `command`, streamable `httpUrl` or SSE `url`.
  mcp_servers: true,
  // The CLI can resume a session (--resume), but the sandbox is thrown away and keeps nothing.
  resume: false,
};

export const geminiCliAdapter: RuntimeAdapter = {
  name: 'gemini-cli',
  cliPackage: '@google/gemini-cli',
  cliVersion: GEMINI_CLI_VERSION,
  image: `jetty/agent-gemini-cli:${GEMINI_CLI_VERSION}`,
  providers: PROVIDERS,
  capabilities,
  defaultModel: DEFAULT_MODEL,
  buildInvocation,
  createParser: () => new GeminiCliParser(),
};

/** What the `result` line said; kept until the CLI exits (stderr may still name the HTTP status). */
interface ResultVerdict {
  ok: boolean;
  errorType?: string;
  errorMessage?: string;
}

/**
 * Stateful over one run's stdout (and stderr). Outcome rules (see finish):
 * - a `result` line decides: `status: "success"` completed (even with a non-zero exit code, which
 *   is reported as a log line), anything else failed; a failed model request is classified by its
 *   HTTP status, read from the error message, else from the error the CLI dumps on stderr, else
 *   from the exit code (the CLI exits with the status & 0xFF);
 * - no `result` line: the CLI died before finishing (`agent_crashed`).
 * The final text is the assistant's words after its last tool call (there is none in `result`), or
 * the words before it when the model said nothing after.
 */
export class GeminiCliParser implements OutputParser {
  private sessionId: string | undefined;
  private initModel: string | undefined;
  /** Assistant deltas since the last tool call: the answer, once the run ends. */
  private text = '';
  /** The words before the last tool call, for a model that ends without any. */
  private textBefore = '';
  /** The last `error` line's message (a blocked or empty model answer, a loop). */
  private lastError: string | undefined;
  /** The HTTP status of a failed model request, from the error the CLI printed on stderr. */
  private stderrStatus: number | undefined;
  /** The last stderr or non-JSON stdout line: the best clue when the CLI dies without a result. */
  private lastHint: string | undefined;
  private verdict: ResultVerdict | undefined;

  /** The session id from `init`. */
  get session(): string | undefined {
    return this.sessionId;
  }

  push(line: string): AgentEvent[] {
    return pushGuarded('gemini-cli', line, (l) => this.handleLine(l));
  }

  pushStderr(line: string): AgentEvent[] {
    const trimmed = line.trim();
    if (trimmed === '' || STDERR_NOISE.some((re) => re.test(trimmed))) return [];
    // Stack frames of the CLI's bundle say nothing to a runbook's user; the error line above does.
    if (/^\s+at /.test(line)) return [];
    const status = stderrStatus(trimmed);
    if (status !== undefined) this.stderrStatus = status;
    // An error's own line is the clue for a crash message; its indented fields and closing brace
    // are not.
    if (!/^\s/.test(line) && !/^[}\])]/.test(trimmed)) this.lastHint = trimmed;
    return [logEvent('stderr', line)];
  }

  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    const finalText = this.text.trim() || this.textBefore.trim();
    const verdict = this.verdict;
    if (verdict === undefined) {
      const how = howItEnded(exitCode);
      const hint = this.lastHint ?? this.lastError;
      const message = `Gemini CLI ${how} before reporting a result${hint ? `: ${hint}` : ''}`;
      return {
        events: [],
        outcome: { status: 'failed', finalText, error: { code: 'agent_crashed', message } },
      };
    }
    if (!verdict.ok) {
      const error = classifyError(verdict, this.lastError, this.stderrStatus, exitCode);
      return { events: [], outcome: { status: 'failed', finalText, error } };
    }
    const events: AgentEvent[] = [];
    if (exitCode !== 0) {
      const how = howItEnded(exitCode);
      events.push(logEvent('system', `gemini-cli ${how} after reporting success; keeping the result`));
    }
    return { events, outcome: { status: 'completed', finalText } };
  }

  private handleLine(line: string): AgentEvent[] {
    const msg = parseJsonObject(line);
    if (msg === undefined) {
      this.lastHint = line.trim();
      return [logEvent('system', line)];
    }
    switch (asString(msg.type)) {
      case 'init':
        this.sessionId = asString(msg.session_id) ?? this.sessionId;
        this.initModel = asString(msg.model) ?? this.initModel;
        return [];
      case 'message':
        return this.handleMessage(msg, line);
      case 'tool_use':
        return this.handleToolUse(msg, line);
      case 'tool_result':
        return this.handleToolResult(msg, line);
      case 'error':
        return this.handleError(msg, line);
      case 'result':
        return this.handleResult(msg);
      default:
        return [logEvent('system', line)];
    }
  }

  private handleMessage(msg: JsonObject, line: string): AgentEvent[] {
    const role = asString(msg.role);
    // The prompt, echoed back: the user already has it.
    if (role === 'user') return [];
    const text = asString(msg.content);
    if (role !== 'assistant' || text === undefined) return [logEvent('system', line)];
    if (text === '') return [];
    this.text += text;
    return [{ type: 'agent.message', data: msg.delta === true ? { text, delta: true } : { text } }];
  }

  private handleToolUse(msg: JsonObject, line: string): AgentEvent[] {
    const id = asString(msg.tool_id);
    const name = asString(msg.tool_name);
    if (!id || !name) return [logEvent('system', line)];
    // Words before a tool call narrate it; the answer is what the model says after its last one.
    if (this.text.trim() !== '') this.textBefore = this.text;
    this.text = '';
    return [{ type: 'tool.call', data: { call_id: id, name, input: msg.parameters ?? {} } }];
  }

  private handleToolResult(msg: JsonObject, line: string): AgentEvent[] {
    const id = asString(msg.tool_id);
    if (!id) return [logEvent('system', line)];
    const isError = asString(msg.status) !== 'success';
    const error = asObject(msg.error);
    const output = asString(msg.output) ?? (isError ? (asString(error?.message) ?? '') : '');
    return [
      {
        type: 'tool.result',
        data: {
          call_id: id,
          output,
          is_error: isError,
        },
      },
    ];
  }

  private handleError(msg: JsonObject, line: string): AgentEvent[] {
    const message = asString(msg.message);
    if (message === undefined) return [logEvent('system', line)];
    this.lastError = message;
    const severity = asString(msg.severity) ?? 'error';
    return [logEvent('system', `gemini-cli ${severity}: ${message}`)];
  }

  private handleResult(msg: JsonObject): AgentEvent[] {
    const ok = asString(msg.status) === 'success';
    const error = asObject(msg.error);
    const errorType = asString(error?.type);
    const errorMessage = asString(error?.message);
    this.verdict = {
      ok,
      ...(errorType === undefined ? {} : { errorType }),
      ...(errorMessage === undefined ? {} : { errorMessage }),
    };
    return this.usageFrom(asObject(msg.stats));
  }

  /**
   * One `usage` event per model in `stats.models` (with a pinned model there is one; with `auto`
   * the router's call is its own model), so that their sum is the run's total. Gemini counts
   * cached tokens inside the prompt count: here `input_tokens` is the uncached part and
   * `cache_read_tokens` the cached one, as for the other runtimes; `output_tokens` includes
   * thinking tokens.
   */
  private usageFrom(stats: JsonObject | undefined): AgentEvent[] {
    if (stats === undefined) return [];
    const models = asObject(stats.models);
    const entries = Object.entries(models ?? {})
      .map(([model, raw]) => [model, asObject(raw)] as const)
      .filter((e): e is readonly [string, JsonObject] => e[1] !== undefined);
    const counted = entries.length > 0 ? entries : [[this.initModel, stats] as const];
    const events: AgentEvent[] = [];
    for (const [model, counts] of counted) {
      const usage = usageOf(counts, model);
      if (usage !== undefined) events.push({ type: 'usage', data: usage });
    }
    return events;
  }
}

function usageOf(counts: JsonObject, model: string | undefined): UsageData | undefined {
  const prompt = asCount(counts.input_tokens);
  const output = asCount(counts.output_tokens);
  // A run that failed before any answer reports zeros: nothing was used, nothing to say.
  if (!prompt && !output) return undefined;
  const cached = Math.min(asCount(counts.cached) ?? 0, prompt ?? 0);
  // `output_tokens` counts the answer only; thinking tokens show only in the total. Gemini bills
  // them as output, so output here is whatever the total holds beyond the prompt.
  const total = asCount(counts.total_tokens) ?? 0;
  const data: UsageData = {
    input_tokens: asCount(counts.input) ?? (prompt ?? 0) - cached,
    output_tokens: Math.max(output ?? 0, total - (prompt ?? 0)),
    cache_read_tokens: cached,
    cache_write_tokens: 0,
    source: 'agent',
  };
  if (model !== undefined && model !== 'auto') data.model = model;
  return data;
}

/** stderr lines every run prints, which say nothing about this one. */
const STDERR_NOISE: readonly RegExp[] = [
  /^Warning: 256-color support not detected/,
  /^YOLO mode is enabled\./,
  /^\[STARTUP\] /,
];

/** Status names of the Google APIs, for an error that carries the name but not the number. */
const STATUS_CODES: Record<string, number> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  RESOURCE_EXHAUSTED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};
const STATUS_NAME = new RegExp(`\\b(${Object.keys(STATUS_CODES).join('|')})\\b`);

/** The HTTP status in an API error message: `"code":401` in the JSON body, or its status name. */
export function httpStatusOf(message: string): number | undefined {
  const code = /"code"\s*:\s*([1-5]\d\d)\b/.exec(message);
  if (code !== null) return Number(code[1]);
  const named = STATUS_NAME.exec(message);
  return named === null ? undefined : STATUS_CODES[named[1]!];
}

/**
 * The status in the error the CLI dumps on stderr when a model request fails: Node prints the
 * error's fields (`  status: 429`, `  code: 404`), and a retry says `Attempt 1 failed with status
 * 500.` Some errors (404, 429) carry their status only there.
 */
function stderrStatus(line: string): number | undefined {
  const field = /^(?:status|code): ([1-5]\d\d),?$/.exec(line);
  if (field !== null) return Number(field[1]);
  const attempt = /^Attempt \d+ failed with status ([1-5]\d\d)\b/.exec(line);
  return attempt === null ? undefined : Number(attempt[1]);
}

/** The CLI exits with the failed request's HTTP status & 0xFF: the statuses that can be told back. */
const EXIT_STATUS: ReadonlyMap<number, number> = new Map(
  [400, 401, 403, 404, 429, 500, 502, 503, 504].map((status) => [status & 0xff, status]),
);

/** Turns an error `result` into a stable code and a message that says what failed. */
function classifyError(
  verdict: ResultVerdict,
  lastError: string | undefined,
  fromStderr: number | undefined,
  exitCode: number | null,
): RunError {
  const detail = verdict.errorMessage ?? lastError ?? 'no details given';
  const type = verdict.errorType;
  // "[API Error: …]" is how the CLI words every failed model request.
  if (/API Error/.test(detail)) {
    const status =
      httpStatusOf(detail) ?? fromStderr ?? (exitCode === null ? undefined : EXIT_STATUS.get(exitCode));
    if (status !== undefined) {
      return providerError(status, detail);
    }
    // No HTTP status at all: the CLI never got an answer (gateway or forwarder down, timeout).
    if (/fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up/i.test(detail)) {
      return { code: 'provider_unreachable', message: `The model provider could not be reached: ${detail}` };
    }
  }
  if (type === 'FatalTurnLimitedError') {
    return { code: 'agent_max_turns', message: `The agent stopped at its turn limit: ${detail}` };
  }
  const label = type !== undefined && type !== 'unknown' && type !== 'Error' ? ` (${type})` : '';
  return { code: 'agent_error', message: `Gemini CLI reported an error${label}: ${detail}` };
}

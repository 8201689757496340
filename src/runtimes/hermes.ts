/**
 * Hermes Agent 0.19.0 (Nous Research, PyPI `hermes-agent`) run headless, and the parser that turns
 * its events into the shared vocabulary.
 *
 * Hermes has no event-stream flag: its one-shot mode (`hermes -z`) prints only the final answer.
 * What it does have is a plugin API with observer hooks (schema `hermes.observer.v1`: each model
 * request and its response with usage, each request error with its HTTP status, each tool call
 * and result, the end of the turn). The invocation installs a small plugin, `jetty_events`, that
 * writes every one of those hook calls as a JSON line on the process's stdout, so the run streams
 * like the other runtimes, at message granularity. The parser below reads those lines; the final
 * answer that `-z` itself prints afterwards arrives as plain text lines and is kept as a fallback.
 *
 * The prompt is read from stdin by a two-line shim that hands it to Hermes' own entry point as
 * `--oneshot=<prompt>`: argv strings are capped at 128 KiB by the kernel, runbooks are not.
 *
 * Shapes are the ones the CLI really prints; test/fixtures/hermes holds recordings.
 */
import type { AgentEvent, RunError, UsageData } from '../events/types.js';
import {
  AGENT_HOME,
  asArray,
  asCount,
  asNumber,
  asObject,
  asString,
  howItEnded,
  type JsonObject,
  logEvent,
  PROMPT_PATH,
  parseJsonObject,
  providerFailure,
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

export const HERMES_VERSION = '0.19.0';
const DEFAULT_MODEL = 'claude-sonnet-4-6';

export const HERMES_HOME = `${AGENT_HOME}/.hermes`;
export const HERMES_CONFIG_PATH = `${HERMES_HOME}/config.yaml`;
export const HERMES_PROMPT_PATH = PROMPT_PATH;
export const HERMES_PLUGIN_DIR = `${HERMES_HOME}/plugins/jetty_events`;
/** The agent layer's venv, on its relocated Python (docker/agents/hermes/Dockerfile). */
const HERMES_PYTHON = '/opt/jetty/hermes/venv/bin/python';

/** The env variable the provider entries name as `key_env`: Hermes reads the run token from it. */
const TOKEN_ENV = 'JETTY_RUN_TOKEN';

/**
 * Hermes' own retry loop (`agent.api_max_retries`) counts attempts: 2 is one retry, as for
 * claude-code. Measured against the simulated provider: 401 fails at once (Hermes does not retry
 * auth errors), 500 and 429 after one retry, about 4 s later.
 */
const API_MAX_ATTEMPTS = 2;

/**
 * The CLI's entry point with the prompt from stdin. `python -c` leaves the rest of argv in
 * sys.argv[1:], so the flags after it reach Hermes' own argument parser unchanged.
 */
const STDIN_SHIM = [
  'import sys; from hermes_cli.main import main',
  "sys.argv = ['hermes', '--oneshot=' + sys.stdin.buffer.read().decode('utf-8', 'replace'), *sys.argv[1:]]; main()",
].join('\n');

/**
 * Where each provider's requests go and in which wire format. Every entry points at the gateway,
 * which adds the real key and forwards the path to the provider's configured upstream.
 */
interface ProviderRoute {
  /** Appended to the gateway URL; the SDK then adds its own path (`/v1/messages`, `/chat/completions`). */
  basePath: string;
  transport: 'anthropic_messages' | 'chat_completions' | 'codex_responses';
}

const ROUTES: Record<Exclude<ProviderName, 'bedrock' | 'vertex'>, ProviderRoute> = {
  // The simulated provider speaks Anthropic Messages to Hermes, like to claude-code.
  simulated: { basePath: '', transport: 'anthropic_messages' },
  anthropic: { basePath: '', transport: 'anthropic_messages' },
  // Hermes itself uses the Responses API for api.openai.com (GPT-5 tool calls need it).
  openai: { basePath: '/v1', transport: 'codex_responses' },
  // Upstream https://openrouter.ai/api + /v1/chat/completions.
  openrouter: { basePath: '/v1', transport: 'chat_completions' },
  // Google's OpenAI-compatible endpoint: Hermes speaks Gemini's native API only to Google's own host.
  google: { basePath: '/v1beta/openai', transport: 'chat_completions' },
};

const PROVIDERS: readonly ProviderName[] = [
  'anthropic',
  'bedrock',
  'google',
  'openai',
  'openrouter',
  'simulated',
];

/** `jetty.mcp_servers` in Hermes' own form: config.yaml's `mcp_servers`, keyed by server name. */
function mcpServers(servers: readonly McpServer[]): JsonObject {
  const out: JsonObject = {};
  for (const s of servers) {
    out[s.name] =
      s.transport === 'stdio'
        ? { command: s.command, args: s.args, env: s.env }
        : { url: s.url, headers: s.headers, ...(s.transport === 'sse' ? { transport: 'sse' } : {}) };
  }
  return out;
}

function hermesConfig(spec: InvocationSpec, model: string): JsonObject {
  const mcp = spec.mcpServers ?? [];
  const common: JsonObject = {
    plugins: { enabled: ['jetty_events'] },
    agent: { api_max_retries: API_MAX_ATTEMPTS },
    ...(mcp.length > 0 ? { mcp_servers: mcpServers(mcp) } : {}),
  };
  if (spec.provider === 'bedrock') {
    // Hermes' built-in Bedrock provider (boto3, Converse API). With a bearer token it sends
    // `Authorization: Bearer <token>`, which the gateway swaps for the real Bedrock API key; the
    // endpoint comes from AWS_ENDPOINT_URL_BEDROCK_RUNTIME (see buildInvocation).
    return {
      ...common,
      model: { default: model, provider: 'bedrock', context_length: bedrockContextLength(model) },
      bedrock: { region: 'us-east-1' },
    };
  }
  if (spec.provider === 'vertex') {
    // The pre-flight check rejects it first (not in `providers`); this is the backstop.
    throw new Error('The hermes runtime cannot use the vertex provider');
  }
  const route = ROUTES[spec.provider];
  const name = `jetty_${spec.provider}`;
  return {
    ...common,
    model: { default: model, provider: name },
    providers: {
      [name]: {
        name,
        base_url: `${spec.gatewayUrl}${route.basePath}`,
        key_env: TOKEN_ENV,
        transport: route.transport,
      },
    },
  };
}

/**
 * Without a configured window Hermes measures a Bedrock model's context by sending requests of
 * 7 and 12 MB that Bedrock rejects for their length: through the gateway that is 19 MB and two
 * extra calls per run. A stated window skips the probe. Claude models on Bedrock have at least
 * 200k tokens; 128k is the floor of the other catalog models. Too low only makes Hermes compress
 * its context earlier than it must.
 */
function bedrockContextLength(model: string): number {
  return /(^|\.)anthropic\./.test(model) ? 200_000 : 128_000;
}

function buildInvocation(spec: InvocationSpec): Invocation {
  const model = spec.model || DEFAULT_MODEL;
  const env: Record<string, string> = {
    HOME: AGENT_HOME,
    HERMES_HOME,
    // The sandbox has no network: Hermes must not try to pip-install optional tool dependencies.
    HERMES_DISABLE_LAZY_INSTALLS: '1',
  };
  if (spec.provider === 'bedrock') {
    Object.assign(env, {
      AWS_BEARER_TOKEN_BEDROCK: spec.token,
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: spec.gatewayUrl,
      AWS_REGION: 'us-east-1',
      // No instance-metadata lookups for credentials or region.
      AWS_EC2_METADATA_DISABLED: 'true',
    });
  } else {
    env[TOKEN_ENV] = spec.token;
  }
  return {
    argv: [HERMES_PYTHON, '-c', STDIN_SHIM],
    env,
    files: [
      // YAML 1.1 reads JSON: no hand-rolled quoting of model names or URLs.
      {
        path: HERMES_CONFIG_PATH,
        content: `${JSON.stringify(hermesConfig(spec, model), null, 2)}\n`,
        mode: 0o600,
      },
      { path: `${HERMES_PLUGIN_DIR}/plugin.yaml`, content: PLUGIN_MANIFEST, mode: 0o644 },
      { path: `${HERMES_PLUGIN_DIR}/__init__.py`, content: PLUGIN_SOURCE, mode: 0o644 },
      { path: HERMES_PROMPT_PATH, content: spec.prompt, mode: 0o644 },
    ],
    stdinFile: HERMES_PROMPT_PATH,
  };
}

/** The hooks the plugin forwards (Hermes' VALID_HOOKS that observe an agent run). */
const PLUGIN_HOOKS = [
  'on_session_start',
  'pre_api_request',
  'post_api_request',
  'api_request_error',
  'pre_tool_call',
  'post_tool_call',
  'post_llm_call',
  'on_session_end',
  'subagent_start',
  'subagent_stop',
] as const;

export const PLUGIN_MANIFEST = [
  'name: jetty_events',
  'version: "1.0.0"',
  'description: "Writes Hermes observer hook events as JSON lines on stdout (Jetty runtime adapter)"',
  'hooks:',
  ...PLUGIN_HOOKS.map((h) => `  - ${h}`),
  '',
].join('\n');

export const PLUGIN_SOURCE = `"""jetty_events: Hermes observer hook events as JSON lines on stdout.

Placed in each sandbox by the Jetty runbook server's hermes runtime adapter. \`hermes -z\` prints
only its final answer, so this plugin makes a run observable: each observer hook call
(hermes.observer.v1) becomes one JSON object on one line of file descriptor 1, the real stdout
(-z points sys.stdout at /dev/null while the agent runs). Fields that repeat the whole
conversation or request body are left out; everything else is passed through as Hermes gave it.
"""
import json
import os
import threading
import time

HOOKS = (${PLUGIN_HOOKS.map((h) => `"${h}"`).join(', ')})
SKIP = frozenset(("conversation_history", "request_messages", "request", "response",
                  "user_message", "middleware_trace", "telemetry_schema_version"))
_LOCK = threading.Lock()


def _message(msg):
    """The assistant message object (SDK-specific class) as plain JSON."""
    if msg is None:
        return None
    calls = []
    for call in getattr(msg, "tool_calls", None) or []:
        fn = getattr(call, "function", None)
        calls.append({"id": getattr(call, "id", None),
                      "name": getattr(fn, "name", None),
                      "arguments": getattr(fn, "arguments", None)})
    return {"content": getattr(msg, "content", None),
            "reasoning": getattr(msg, "reasoning", None),
            "tool_calls": calls}


def _emit(hook, fields):
    record = {"hermes_event": hook, "ts": round(time.time(), 3)}
    for key, value in fields.items():
        if key not in SKIP:
            record[key] = _message(value) if key == "assistant_message" else value
    data = (json.dumps(record, ensure_ascii=False, default=str) + "\\n").encode("utf-8", "replace")
    with _LOCK:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


def _callback(hook):
    def callback(**fields):
        _emit(hook, fields)
    callback.__name__ = "jetty_" + hook
    return callback


def register(ctx):
    for hook in HOOKS:
        ctx.register_hook(hook, _callback(hook))
`;

const capabilities: RuntimeCapabilities = {
  // Per model request, from post_api_request: input, output, cache read and cache write tokens.
  token_usage: true,
  // Hermes estimates a cost only in its end-of-run summary, which no hook carries.
  cost: false,
  // One event per model response (no hook sees token deltas in one-shot mode).
  streaming: 'message',
  // config.yaml `mcp_servers` (stdio, HTTP or SSE); the image has Hermes' `mcp` extra.
  mcp_servers: true,
  // Sessions live in the sandbox's ~/.hermes/state.db, which is thrown away with the sandbox.
  resume: false,
};

export const hermesAdapter: RuntimeAdapter = {
  name: 'hermes',
  cliPackage: 'hermes-agent',
  cliVersion: HERMES_VERSION,
  image: `jetty/agent-hermes:${HERMES_VERSION}`,
  providers: PROVIDERS,
  capabilities,
  defaultModel: DEFAULT_MODEL,
  buildInvocation,
  createParser: () => new HermesParser(),
};

/** The last failed model request, until a later one succeeds. */
interface ApiFailure {
  status: number | undefined;
  reason: string | undefined;
  message: string;
}

/** Plain stdout (the answer `-z` prints at the end) kept for the outcome; more is not needed. */
const MAX_PLAIN_BYTES = 16 * 1024;

/**
 * Stateful over one run's stdout. Outcome rules (see finish):
 * - `on_session_end` with `completed: true` means the agent answered: completed, whatever the exit
 *   code (a non-zero code is reported as a log line);
 * - a model request error that no later request made good is a provider failure, named by its
 *   HTTP status (Hermes then prints its error text as the "answer" and exits 0);
 * - `on_session_end` with `completed: false` is an agent failure (interrupted, out of turns);
 * - nothing of the kind: the CLI died before finishing (`agent_crashed`), or, when it exited 0
 *   without a single event, the event plugin did not load (`agent_error`).
 */
export class HermesParser implements OutputParser {
  private sessionId: string | undefined;
  private model: string | undefined;
  private sawEvent = false;
  private lastText = '';
  private finalText: string | undefined;
  private sessionEnd: { completed: boolean; interrupted: boolean } | undefined;
  private apiFailure: ApiFailure | undefined;
  private readonly announcedCalls = new Set<string>();
  private plain = '';
  /** The last stderr line: the best clue when the CLI dies without a result. */
  private lastStderr: string | undefined;
  private anonymousCalls = 0;

  /** Hermes' session id from `on_session_start`. */
  get session(): string | undefined {
    return this.sessionId;
  }

  push(line: string): AgentEvent[] {
    return pushGuarded('hermes', line, (l) => this.handleLine(l));
  }

  pushStderr(line: string): AgentEvent[] {
    if (line.trim() === '') return [];
    this.lastStderr = line.trim();
    return [logEvent('stderr', line)];
  }

  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    const how = howItEnded(exitCode);
    const printed = this.plain.trim();
    const text = this.finalText ?? (this.lastText || printed);
    const failed = (error: RunError) => ({
      events: [],
      outcome: { status: 'failed' as const, finalText: text, error },
    });

    if (this.sessionEnd?.completed === true && !this.sessionEnd.interrupted) {
      const events: AgentEvent[] = [];
      if (exitCode !== 0)
        events.push(logEvent('system', `hermes ${how} after finishing its turn; keeping the answer`));
      return { events, outcome: { status: 'completed', finalText: text } };
    }
    if (this.apiFailure !== undefined) return failed(providerError(this.apiFailure, printed));
    if (this.sessionEnd !== undefined) {
      const what = this.sessionEnd.interrupted ? 'was interrupted' : 'ended its turn without an answer';
      return failed({ code: 'agent_error', message: `Hermes ${what}${printed ? `: ${printed}` : ''}` });
    }
    const hint = this.lastStderr ?? printed;
    if (exitCode === 0 && !this.sawEvent) {
      return failed({
        code: 'agent_error',
        message: `Hermes exited without reporting any event (the jetty_events plugin did not load)${hint ? `: ${hint}` : ''}`,
      });
    }
    return failed({
      code: 'agent_crashed',
      message: `Hermes ${how} before finishing its turn${hint ? `: ${hint}` : ''}`,
    });
  }

  private handleLine(line: string): AgentEvent[] {
    const msg = parseJsonObject(line);
    if (msg === undefined) {
      // The answer `hermes -z` prints when the run is over (or a traceback): not an event.
      if (this.plain.length < MAX_PLAIN_BYTES) this.plain += `${line}\n`;
      return [];
    }
    const hook = asString(msg.hermes_event);
    if (hook === undefined) return [logEvent('system', line)];
    this.sawEvent = true;
    switch (hook) {
      case 'on_session_start':
        this.sessionId = asString(msg.session_id) ?? this.sessionId;
        this.model = asString(msg.model) ?? this.model;
        return [];
      case 'post_api_request':
        return this.handleResponse(msg);
      case 'api_request_error':
        return this.handleApiError(msg);
      case 'pre_tool_call':
        return this.announceCall(msg);
      case 'post_tool_call':
        return this.handleToolResult(msg);
      case 'post_llm_call': {
        const text = asString(msg.assistant_response);
        if (text !== undefined) this.finalText = text;
        return [];
      }
      case 'on_session_end':
        this.sessionEnd = { completed: msg.completed === true, interrupted: msg.interrupted === true };
        return [];
      case 'subagent_stop': {
        const summary = asString(msg.child_summary);
        const status = asString(msg.child_status) ?? 'done';
        return summary ? [{ type: 'agent.reasoning', data: { text: `Subagent ${status}: ${summary}` } }] : [];
      }
      default:
        // pre_api_request, subagent_start and hooks a later Hermes adds: bookkeeping only.
        return [];
    }
  }

  private handleResponse(msg: JsonObject): AgentEvent[] {
    this.apiFailure = undefined;
    const events: AgentEvent[] = [];
    const message = asObject(msg.assistant_message);
    const reasoning = asString(message?.reasoning);
    if (reasoning) events.push({ type: 'agent.reasoning', data: { text: reasoning } });
    const content = asString(message?.content);
    if (content) {
      this.lastText = content;
      events.push({ type: 'agent.message', data: { text: content } });
    }
    for (const raw of asArray(message?.tool_calls)) {
      const call = asObject(raw);
      const id = asString(call?.id);
      const name = asString(call?.name);
      if (call === undefined || !id || !name || this.announcedCalls.has(id)) continue;
      this.announcedCalls.add(id);
      events.push({ type: 'tool.call', data: { call_id: id, name, input: toolInput(call.arguments) } });
    }
    const usage = this.usageFrom(msg);
    if (usage !== undefined) events.push({ type: 'usage', data: usage });
    return events;
  }

  private usageFrom(msg: JsonObject): UsageData | undefined {
    const usage = asObject(msg.usage);
    if (usage === undefined) return undefined;
    const data: UsageData = {
      input_tokens: asCount(usage.input_tokens) ?? 0,
      output_tokens: asCount(usage.output_tokens) ?? 0,
      cache_read_tokens: asCount(usage.cache_read_tokens) ?? 0,
      cache_write_tokens: asCount(usage.cache_write_tokens) ?? 0,
      source: 'agent',
    };
    const model = asString(msg.response_model) ?? asString(msg.model) ?? this.model;
    if (model) data.model = model;
    return data;
  }

  private handleApiError(msg: JsonObject): AgentEvent[] {
    const error = asObject(msg.error);
    const status = asNumber(msg.status_code);
    const reason = asString(msg.reason);
    const message = asString(error?.message) ?? asString(error?.type) ?? 'no details given';
    this.apiFailure = { status, reason, message };
    const attempt = (asNumber(msg.retry_count) ?? 0) + 1;
    const max = asNumber(msg.max_retries);
    const cause = status === undefined ? 'no HTTP status' : `HTTP ${status}`;
    const retry = msg.retryable === true && max !== undefined && attempt < max ? '; retrying' : '';
    return [
      logEvent(
        'system',
        `hermes: model request failed (${cause}${reason ? `, ${reason}` : ''}), attempt ${attempt}${max === undefined ? '' : `/${max}`}${retry}: ${message}`,
      ),
    ];
  }

  /** A call the response did not show (e.g. a tool Hermes runs on its own): announce it now. */
  private announceCall(msg: JsonObject): AgentEvent[] {
    const name = asString(msg.tool_name);
    if (!name) return [];
    const id = this.callId(msg, name);
    if (this.announcedCalls.has(id)) return [];
    this.announcedCalls.add(id);
    return [{ type: 'tool.call', data: { call_id: id, name, input: msg.args ?? {} } }];
  }

  private handleToolResult(msg: JsonObject): AgentEvent[] {
    const name = asString(msg.tool_name);
    if (!name) return [];
    const id = this.callId(msg, name);
    const events = this.announcedCalls.has(id) ? [] : this.announceCall(msg);
    const text = resultText(msg.result);
    events.push({
      type: 'tool.result',
      data: {
        call_id: id,
        output: text,
        is_error: isToolError(asString(msg.status), text),
      },
    });
    return events;
  }

  /** The provider's call id; calls without one (none seen so far) get a stable stand-in. */
  private callId(msg: JsonObject, name: string): string {
    const id = asString(msg.tool_call_id);
    if (id) return id;
    const started = asString(msg.hermes_event) === 'pre_tool_call';
    if (started) this.anonymousCalls++;
    return `hermes_${name}_${Math.max(this.anonymousCalls, 1)}`;
  }
}

/** Tool arguments arrive as the model's JSON string; an unparsable one is kept as text. */
function toolInput(args: unknown): unknown {
  if (typeof args !== 'string') return args ?? {};
  const parsed = parseJsonObject(args);
  return parsed ?? args;
}

/**
 * Hermes' `status` is "ok" whenever the tool itself ran, so a shell command that exited 1 is "ok";
 * as with the other runtimes, a non-zero exit code or an error field counts as a failed call.
 */
function isToolError(status: string | undefined, result: string): boolean {
  if (status !== undefined && status !== 'ok') return true;
  if (!result.startsWith('{')) return false;
  const parsed = parseJsonObject(result);
  const exitCode = asNumber(parsed?.exit_code);
  const error = parsed?.error;
  return (exitCode !== undefined && exitCode !== 0) || (typeof error === 'string' && error !== '');
}

/** Hermes tool results are strings (often JSON); anything else is shown as JSON. */
function resultText(result: unknown): string {
  if (typeof result === 'string') return result;
  if (result === undefined || result === null) return '';
  return JSON.stringify(result) ?? '';
}

/**
 * Bedrock errors reach the hook without a status code (boto3 raises them as ClientError); AWS
 * documents one status per exception name, so the name in the message gives it back.
 */
const AWS_ERROR_STATUS: ReadonlyArray<[RegExp, number]> = [
  [/\((AccessDeniedException|UnrecognizedClientException|ExpiredTokenException)\)/, 403],
  [/\((ResourceNotFoundException)\)/, 404],
  [/\((ThrottlingException|ServiceQuotaExceededException)\)/, 429],
  [/\((InternalServerException|ServiceUnavailableException|ModelNotReadyException)\)/, 500],
];

function providerError(failure: ApiFailure, printed: string): RunError {
  const detail = failure.message || printed || 'no details given';
  const status = failure.status ?? AWS_ERROR_STATUS.find(([pattern]) => pattern.test(detail))?.[1];
  if (status !== undefined) {
    const [code, what] = providerFailure(status);
    const how = failure.status === undefined ? `HTTP ${status}, from the AWS error name` : `HTTP ${status}`;
    return { code, message: `${what} (${how}): ${detail}` };
  }
  return {
    code: 'provider_unreachable',
    message: `The model provider could not be reached${failure.reason ? ` (${failure.reason})` : ''}: ${detail}`,
  };
}

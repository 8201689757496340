/**
 * Codex CLI 0.169.0 run headless (`codex exec --json`), and the parser that turns its JSONL events
 * (`thread.*`, `turn.*`, `item.*`, `error`) into the shared event vocabulary.
 *
 * Codex ignores OPENAI_BASE_URL: the gateway is a custom `[model_providers.<id>]` entry in a
 * config.toml written into CODEX_HOME for the run. Shapes are the ones the CLI really prints;
 * test/fixtures/codex holds recordings.
 */
import type { AgentEvent, RunError, UsageData } from '../events/types.js';
import {
  AGENT_HOME,
  asArray,
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

export const CODEX_VERSION = '0.169.0';
/**
 * A slug whose model metadata codex knows and that gets classic function tools (`exec_command`,
 * `apply_patch`). Codex's own default slug uses "code mode" (a JavaScript `exec` tool) instead.
 */
const DEFAULT_MODEL = 'gpt-5.5';

/** Codex's config and state directory; the sandbox is thrown away, so nothing in it outlives the run. */
export const CODEX_HOME = `${AGENT_HOME}/.codex`;
export const CODEX_CONFIG_PATH = `${CODEX_HOME}/config.toml`;
/** The prompt goes in a file fed to stdin (`codex exec … -` reads the prompt from stdin). */
export const CODEX_PROMPT_PATH = PROMPT_PATH;
/**
 * The variable the provider entry's `env_key` names: codex sends its value as the bearer token.
 * The config's shell environment policy keeps it out of the commands the agent runs (0.169.0
 * passes them its whole environment otherwise), so `env` in a tool call does not print it.
 */
export const CODEX_TOKEN_ENV = 'JETTY_GATEWAY_TOKEN';

/**
 * Two retries of a failed request and two of a broken stream, not the default four and five: with
 * the defaults a persistent 500 takes about 30 s (30 requests) to surface; with two and two it fails
 * in about 3 s and a 401 in about 1 s (measured on 0.169.0), while a one-off 5xx is still retried.
 */
const REQUEST_MAX_RETRIES = 2;
const STREAM_MAX_RETRIES = 2;

/** One model provider entry per provider this runtime runs with; all of them point at the gateway. */
const PROVIDER_ENTRIES: Record<CodexProvider, { id: string; name: string }> = {
  openai: { id: 'jetty-openai', name: 'OpenAI via the Jetty gateway' },
  openrouter: { id: 'jetty-openrouter', name: 'OpenRouter via the Jetty gateway' },
  simulated: { id: 'jetty-simulated', name: 'Simulated provider via the Jetty gateway' },
};
type CodexProvider = 'openai' | 'openrouter' | 'simulated';
const PROVIDERS: readonly CodexProvider[] = ['openai', 'openrouter', 'simulated'];

function isCodexProvider(p: ProviderName): p is CodexProvider {
  return (PROVIDERS as readonly string[]).includes(p);
}

/** A TOML basic string. JSON escapes all but DEL, which TOML also wants escaped. */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\u007f/g, '\\u007F');
}

/** A TOML key: bare when it can be, else quoted. */
function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

function tomlInlineTable(entries: Record<string, string>): string {
  const pairs = Object.entries(entries).map(([k, v]) => `${tomlString(k)} = ${tomlString(v)}`);
  return pairs.length === 0 ? '{}' : `{ ${pairs.join(', ')} }`;
}

/**
 * `jetty.mcp_servers` as codex's `[mcp_servers.<name>]` tables: a stdio server by `command`, `args`
 * and `env`; a remote one by `url` and `http_headers`. Codex's client speaks streamable HTTP, not
 * the older SSE transport, so an SSE-only server will not answer it. A remote server that does not
 * answer is logged on stderr and the run goes on without it; a stdio one that cannot start is not
 * reported at all. With approvals bypassed, codex calls MCP tools without asking; it offers them
 * to the model through its `tool_search` tool, as the `mcp__<server>` namespace.
 */
function mcpTables(servers: readonly McpServer[]): string[] {
  return servers.flatMap((s) => [
    '',
    `[mcp_servers.${tomlKey(s.name)}]`,
    ...(s.transport === 'stdio'
      ? [
          `command = ${tomlString(s.command)}`,
          `args = [${s.args.map(tomlString).join(', ')}]`,
          `env = ${tomlInlineTable(s.env)}`,
        ]
      : [`url = ${tomlString(s.url)}`, `http_headers = ${tomlInlineTable(s.headers)}`]),
  ]);
}

/** The run's config.toml: the model, one provider entry pointing at the gateway, and no side traffic. */
export function codexConfig(spec: InvocationSpec): string {
  if (!isCodexProvider(spec.provider)) {
    // Pre-flight rejects this before a run is queued; reaching it is a server bug.
    throw new Error(`the codex runtime does not run with the provider ${spec.provider}`);
  }
  const entry = PROVIDER_ENTRIES[spec.provider];
  // The Responses API lives under /v1 on OpenAI and OpenRouter alike; the gateway maps the path to
  // the run's real upstream.
  const baseUrl = `${spec.gatewayUrl.replace(/\/+$/, '')}/v1`;
  return [
    '# Written for one run by the Jetty codex runtime adapter (src/runtimes/codex.ts).',
    `model = ${tomlString(spec.model || DEFAULT_MODEL)}`,
    `model_provider = ${tomlString(entry.id)}`,
    'check_for_update_on_startup = false',
    '',
    `[model_providers.${entry.id}]`,
    `name = ${tomlString(entry.name)}`,
    `base_url = ${tomlString(baseUrl)}`,
    `env_key = ${tomlString(CODEX_TOKEN_ENV)}`,
    'wire_api = "responses"',
    `request_max_retries = ${REQUEST_MAX_RETRIES}`,
    `stream_max_retries = ${STREAM_MAX_RETRIES}`,
    '',
    // Off: OTLP metrics to OpenAI.
    '[analytics]',
    'enabled = false',
    '',
    '[features]',
    // Off: the curated-plugin sync (git and HTTPS fetches at start-up).
    'plugins = false',
    // Off: with it, an unreachable gateway makes codex wait "for network" forever instead of failing.
    'unbounded_connection_retries = false',
    '',
    '[shell_environment_policy]',
    `exclude = [${tomlString(CODEX_TOKEN_ENV)}]`,
    ...mcpTables(spec.mcpServers ?? []),
    '',
  ].join('\n');
}

function buildInvocation(spec: InvocationSpec): Invocation {
  return {
    argv: [
      'codex',
      'exec',
      '--json',
      '--skip-git-repo-check',
      // The container is the sandbox: codex's own (bubblewrap) sandbox and approvals would only stall.
      '--dangerously-bypass-approvals-and-sandbox',
      // No session files: the sandbox is thrown away after the run.
      '--ephemeral',
      // A config key this version does not know is an error, not silently ignored.
      '--strict-config',
      `--cd=${spec.workdir}`,
      // The prompt from stdin.
      '-',
    ],
    env: {
      HOME: AGENT_HOME,
      CODEX_HOME,
      // The per-run gateway token, never a provider key: the gateway swaps it for the real one.
      [CODEX_TOKEN_ENV]: spec.token,
    },
    files: [
      // 0600: MCP servers' env and headers may hold the run's secrets.
      { path: CODEX_CONFIG_PATH, content: codexConfig(spec), mode: 0o600 },
      { path: CODEX_PROMPT_PATH, content: spec.prompt, mode: 0o644 },
    ],
    stdinFile: CODEX_PROMPT_PATH,
  };
}

const capabilities: RuntimeCapabilities = {
  // `turn.completed.usage`: input, cached input, cache writes, output (with reasoning).
  token_usage: true,
  // Codex reports no cost.
  cost: false,
  // Whole items: `item.completed` carries a message once it is complete.
  streaming: 'message',
  // `[mcp_servers.<name>]` in config.toml: stdio commands or streamable-HTTP URLs.
  mcp_servers: true,
  // `codex exec resume` needs the session files that --ephemeral and a thrown-away sandbox drop.
  resume: false,
};

export const codexAdapter: RuntimeAdapter = {
  name: 'codex',
  cliPackage: '@openai/codex',
  cliVersion: CODEX_VERSION,
  image: `jetty/agent-codex:${CODEX_VERSION}`,
  providers: PROVIDERS,
  capabilities,
  // codex takes stdio and streamable-HTTP MCP servers; it has no SSE transport.
  mcpTransports: ['stdio', 'http'],
  defaultModel: DEFAULT_MODEL,
  buildInvocation,
  createParser: () => new CodexParser(),
};

/** Tool-like item types: a tool.call when they start, a tool.result when they complete. */
const TOOL_ITEMS = new Set([
  'command_execution',
  'file_change',
  'mcp_tool_call',
  'web_search',
  'collab_tool_call',
]);

/** Retry notices come as `error` events too; only the others are fatal. */
const RETRY_NOTICE = /^Reconnecting\.\.\./;

/**
 * Stateful over one run's stdout. Outcome rules (see finish):
 * - the last `turn.failed` decides a failure, whatever the exit code;
 * - a `turn.completed` with no fatal `error` after it is a completed run (final text = the last
 *   agent_message), even if the exit code is non-zero (the code is reported as a log line);
 * - no turn outcome: a fatal `error` names the failure; with none, the CLI died (`agent_crashed`).
 */
export class CodexParser implements OutputParser {
  private threadId: string | undefined;
  private lastText = '';
  private turn: { status: 'completed' } | { status: 'failed'; message: string } | undefined;
  /** The last fatal `error` event's message, cleared by a later turn.completed. */
  private fatal: string | undefined;
  /** The last stderr or non-JSON stdout line: the best clue when the CLI dies without an outcome. */
  private lastHint: string | undefined;
  /** Ids of tool items whose tool.call was emitted. */
  private readonly called = new Set<string>();
  /** Last rendered text of each to-do list, so an unchanged list is not repeated. */
  private readonly todos = new Map<string, string>();

  /** The thread id from `thread.started` (codex's session id). */
  get session(): string | undefined {
    return this.threadId;
  }

  push(line: string): AgentEvent[] {
    return pushGuarded('codex', line, (l) => this.handleLine(l));
  }

  /** A line of the CLI's stderr: shown as a log line, and remembered as the clue for a crash. */
  pushStderr(line: string): AgentEvent[] {
    if (line.trim() === '') return [];
    this.lastHint = line.trim();
    return [logEvent('stderr', line)];
  }

  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    const how = howItEnded(exitCode);
    const turn = this.turn;
    if (turn?.status === 'failed') {
      return this.failed(classifyError(turn.message));
    }
    if (this.fatal !== undefined) {
      return this.failed(classifyError(this.fatal));
    }
    if (turn?.status === 'completed') {
      const events =
        exitCode === 0
          ? []
          : [logEvent('system', `codex ${how} after its turn completed; keeping the result`)];
      return { events, outcome: { status: 'completed', finalText: this.lastText } };
    }
    const hint = this.lastHint ? `: ${this.lastHint}` : '';
    return this.failed({ code: 'agent_crashed', message: `Codex ${how} before its turn ended${hint}` });
  }

  private failed(error: RunError): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    return { events: [], outcome: { status: 'failed', finalText: this.lastText, error } };
  }

  private handleLine(line: string): AgentEvent[] {
    const msg = parseJsonObject(line);
    if (msg === undefined) {
      this.lastHint = line.trim();
      return [logEvent('system', line)];
    }
    switch (msg.type) {
      case 'thread.started':
        this.threadId = asString(msg.thread_id) ?? this.threadId;
        return [];
      case 'turn.started':
        return [];
      case 'turn.completed':
        this.turn = { status: 'completed' };
        this.fatal = undefined;
        return this.usageEvents(asObject(msg.usage));
      case 'turn.failed': {
        const message = asString(asObject(msg.error)?.message) ?? 'the turn failed without a message';
        this.turn = { status: 'failed', message };
        return [];
      }
      case 'error': {
        const message = asString(msg.message);
        if (message === undefined) return [logEvent('system', line)];
        if (!RETRY_NOTICE.test(message)) this.fatal = message;
        return [logEvent('system', `codex: ${message}`)];
      }
      case 'item.started':
      case 'item.updated':
      case 'item.completed': {
        const item = asObject(msg.item);
        if (item === undefined) return [logEvent('system', line)];
        return this.handleItem(item, msg.type === 'item.completed');
      }
      case 'item.plan.delta':
        // The whole plan comes with its item.completed.
        return [];
      case 'request_user_input': {
        const questions = asArray(msg.questions)
          .map((q) => asString(asObject(q)?.question))
          .filter((q): q is string => q !== undefined);
        return [
          logEvent(
            'system',
            `codex asked for user input, which a headless run cannot give${questions.length ? `: ${questions.join(' / ')}` : ''}`,
          ),
        ];
      }
      default:
        return [logEvent('system', line)];
    }
  }

  private handleItem(item: JsonObject, completed: boolean): AgentEvent[] {
    const type = asString(item.type);
    const id = asString(item.id);
    if (type !== undefined && TOOL_ITEMS.has(type)) {
      if (id === undefined || id === '') return [];
      const events: AgentEvent[] = [];
      if (!this.called.has(id)) {
        this.called.add(id);
        events.push({ type: 'tool.call', data: { call_id: id, ...toolCall(type, item) } });
      }
      if (completed) events.push({ type: 'tool.result', data: { call_id: id, ...toolResult(type, item) } });
      return events;
    }
    switch (type) {
      case 'agent_message': {
        const text = asString(item.text);
        if (!completed || !text) return [];
        this.lastText = text;
        return [{ type: 'agent.message', data: { text } }];
      }
      case 'reasoning':
      case 'plan': {
        const text = asString(item.text);
        return completed && text ? [{ type: 'agent.reasoning', data: { text } }] : [];
      }
      case 'todo_list': {
        const text = todoText(item);
        if (text === '' || (id !== undefined && this.todos.get(id) === text)) return [];
        if (id !== undefined) this.todos.set(id, text);
        return [{ type: 'agent.reasoning', data: { text } }];
      }
      case 'error': {
        // Non-fatal: e.g. "Model metadata for `x` not found. Defaulting to fallback metadata…".
        const message = asString(item.message);
        return completed && message ? [logEvent('system', `codex warning: ${message}`)] : [];
      }
      default:
        return completed ? [logEvent('system', `codex ${type ?? 'item'}: ${JSON.stringify(item)}`)] : [];
    }
  }

  private usageEvents(usage: JsonObject | undefined): AgentEvent[] {
    if (usage === undefined) return [];
    const input = asCount(usage.input_tokens) ?? 0;
    const cached = asCount(usage.cached_input_tokens) ?? 0;
    const cacheWrite = asCount(usage.cache_write_input_tokens) ?? 0;
    // Codex counts input the OpenAI way, cached and cache-written tokens included; the vocabulary
    // counts them apart (as the Anthropic-shaped totals do).
    const data: UsageData = {
      input_tokens: Math.max(0, input - cached - cacheWrite),
      output_tokens: asCount(usage.output_tokens) ?? 0,
      cache_read_tokens: cached,
      cache_write_tokens: cacheWrite,
      source: 'agent',
    };
    return [{ type: 'usage', data }];
  }
}

/** The tool.call of a tool-like item: a name a user recognises, and its input. */
function toolCall(type: string, item: JsonObject): { name: string; input: unknown } {
  switch (type) {
    case 'command_execution':
      return { name: 'shell', input: { command: asString(item.command) ?? '' } };
    case 'file_change':
      return { name: 'apply_patch', input: { changes: fileChanges(item) } };
    case 'mcp_tool_call': {
      const server = asString(item.server) ?? 'mcp';
      const tool = asString(item.tool) ?? 'tool';
      return { name: `mcp__${server}__${tool}`, input: item.arguments ?? {} };
    }
    case 'web_search':
      return { name: 'web_search', input: { query: asString(item.query) ?? '' } };
    default: {
      // collab_tool_call: spawn_agent, send_input, wait, close_agent.
      const tool = asString(item.tool) ?? 'collab';
      const input: JsonObject = { receiver_thread_ids: asArray(item.receiver_thread_ids) };
      const prompt = asString(item.prompt);
      if (prompt !== undefined) input.prompt = prompt;
      return { name: tool, input };
    }
  }
}

/** The tool.result of a completed tool-like item: its whole output and whether it failed. */
function toolResult(type: string, item: JsonObject): { output: string; is_error: boolean } {
  const status = asString(item.status);
  let output: string;
  let isError = status === 'failed' || status === 'declined';
  switch (type) {
    case 'command_execution': {
      output = asString(item.aggregated_output) ?? '';
      const code = item.exit_code;
      if (typeof code === 'number' && code !== 0) isError = true;
      if (status === 'declined' && output === '') output = 'The command was declined.';
      break;
    }
    case 'file_change':
      output = fileChanges(item)
        .map((c) => `${c.kind} ${c.path}`)
        .join('\n');
      break;
    case 'mcp_tool_call': {
      const error = asString(asObject(item.error)?.message);
      if (error !== undefined) isError = true;
      output = error ?? mcpResultText(asObject(item.result));
      break;
    }
    case 'web_search':
      output = JSON.stringify(item.action ?? { query: item.query ?? '' }) ?? '';
      break;
    default:
      output = JSON.stringify(item.agents_states ?? {}) ?? '';
      break;
  }
  return { output, is_error: isError };
}

function fileChanges(item: JsonObject): Array<{ path: string; kind: string }> {
  return asArray(item.changes).flatMap((raw) => {
    const change = asObject(raw);
    const path = asString(change?.path);
    return path === undefined ? [] : [{ path, kind: asString(change?.kind) ?? 'update' }];
  });
}

/** MCP content blocks: text joined, other blocks named; structured content when there is no text. */
function mcpResultText(result: JsonObject | undefined): string {
  if (result === undefined) return '';
  const text = asArray(result.content)
    .map((raw) => {
      const block = asObject(raw);
      if (block === undefined) return '';
      return block.type === 'text' ? (asString(block.text) ?? '') : `[${asString(block.type) ?? 'content'}]`;
    })
    .filter((part) => part !== '')
    .join('\n');
  if (text !== '' || result.structured_content == null) return text;
  return JSON.stringify(result.structured_content) ?? '';
}

function todoText(item: JsonObject): string {
  const lines = asArray(item.items).flatMap((raw) => {
    const todo = asObject(raw);
    const text = asString(todo?.text);
    return text === undefined ? [] : [`[${todo?.completed === true ? 'x' : ' '}] ${text}`];
  });
  return lines.length === 0 ? '' : `Plan:\n${lines.join('\n')}`;
}

/**
 * Turns codex's fatal error text into a stable code and a message naming the HTTP status where it
 * can be known. Codex words some statuses itself (a 500 becomes "We're currently experiencing high
 * demand…", a 404 model_not_found and quota errors lose their status), so those are recognised by
 * their text.
 */
export function classifyError(message: string): RunError {
  const status = /\b(?:unexpected status|last status:)\s*(\d{3})\b/.exec(message)?.[1];
  if (status !== undefined) return providerError(Number(status), message);
  if (/experiencing high demand/i.test(message)) return providerError(500, message);
  if (/Quota exceeded|usage limit|out of credits|spend cap/i.test(message))
    return providerError(429, message);
  if (/does not exist or you do not have access|model_not_found/i.test(message)) {
    return providerError(404, message);
  }
  if (/Connection failed|error sending request|waiting for network/i.test(message)) {
    return { code: 'provider_unreachable', message: `The model provider could not be reached: ${message}` };
  }
  if (/^stream disconnected before completion/i.test(message)) {
    return { code: 'provider_error', message: `The model provider's answer broke off: ${message}` };
  }
  // A 400-class refusal comes through as the provider's raw JSON error body.
  const body = asObject(asObject(parseJsonObject(message))?.error);
  if (body !== undefined) {
    const detail = asString(body.message) ?? message;
    return { code: 'agent_error', message: `The model provider refused the request: ${detail}` };
  }
  return { code: 'agent_error', message: `Codex reported an error: ${message}` };
}

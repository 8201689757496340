/**
 * Claude Code 2.1.197 run headless (`claude -p --output-format stream-json --verbose`), and the
 * parser that turns its stream-json lines into the shared event vocabulary.
 *
 * Shapes are the ones the CLI really prints; test/fixtures/claude-code holds recordings.
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
  providerError,
  pushGuarded,
} from './json-lines.js';
import type { McpServer } from './mcp.js';
import type {
  Invocation,
  InvocationSpec,
  OutputParser,
  RuntimeAdapter,
  RuntimeCapabilities,
  RuntimeOutcome,
} from './types.js';

export const CLAUDE_CODE_VERSION = '2.1.197';
const DEFAULT_MODEL = 'claude-sonnet-4-6';

/** The prompt goes in a file fed to stdin: runbooks are far too long for argv. */
export const CLAUDE_PROMPT_PATH = PROMPT_PATH;

/**
 * One retry, not the default ten: with ten, a 401 or 500 takes about three minutes to surface;
 * with one it fails in seconds (measured: about 1 to 4 s).
 */
const MAX_RETRIES = '1';

/** Where MCP servers go, in Claude Code's own `--mcp-config` form. */
export const CLAUDE_MCP_PATH = `${AGENT_HOME}/.jetty/mcp.json`;

function mcpConfig(servers: readonly McpServer[]): string {
  const mcpServers: Record<string, unknown> = {};
  for (const s of servers) {
    mcpServers[s.name] =
      s.transport === 'stdio'
        ? { type: 'stdio', command: s.command, args: s.args, env: s.env }
        : { type: s.transport, url: s.url, headers: s.headers };
  }
  return JSON.stringify({ mcpServers }, null, 2);
}

function buildInvocation(spec: InvocationSpec): Invocation {
  const model = spec.model || DEFAULT_MODEL;
  const mcp = spec.mcpServers ?? [];
  return {
    argv: [
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--dangerously-skip-permissions',
      // The sandbox is thrown away after the run: saving a transcript only costs disk writes.
      '--no-session-persistence',
      // One argument, `=` form: a model value that starts with `-` can never be read as a flag.
      `--model=${model}`,
      // Only the servers the run asked for: nothing from a project or user config.
      ...(mcp.length > 0 ? [`--mcp-config=${CLAUDE_MCP_PATH}`, '--strict-mcp-config'] : []),
    ],
    env: {
      ...providerEnv(spec),
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_MAX_RETRIES: MAX_RETRIES,
      HOME: AGENT_HOME,
    },
    files: [
      { path: CLAUDE_PROMPT_PATH, content: spec.prompt, mode: 0o644 },
      ...(mcp.length > 0 ? [{ path: CLAUDE_MCP_PATH, content: mcpConfig(mcp), mode: 0o600 }] : []),
    ],
    stdinFile: CLAUDE_PROMPT_PATH,
  };
}

/**
 * Where the CLI sends model calls: always the gateway, which knows the run's provider and holds its
 * key. Anthropic, OpenRouter (its Anthropic-compatible /api/v1/messages) and the simulated provider
 * take the Messages API with the token as the key. Bedrock takes the CLI's Bedrock mode with
 * request signing off (the gateway adds the bearer key); that mode sends no key at all, so the
 * token rides in the base URL's path instead.
 */
function providerEnv(spec: InvocationSpec): Record<string, string> {
  if (spec.provider === 'bedrock') {
    return {
      CLAUDE_CODE_USE_BEDROCK: '1',
      CLAUDE_CODE_SKIP_BEDROCK_AUTH: '1',
      ANTHROPIC_BEDROCK_BASE_URL: `${spec.gatewayUrl}/_t/${spec.token}`,
      AWS_REGION: 'us-east-1',
    };
  }
  // The per-run gateway token, never a provider key: the gateway swaps it for the real one.
  return { ANTHROPIC_BASE_URL: spec.gatewayUrl, ANTHROPIC_API_KEY: spec.token };
}

const capabilities: RuntimeCapabilities = {
  // `result.usage` and `modelUsage`: input, output and both cache counters.
  token_usage: true,
  // `result.total_cost_usd`, from the CLI's own price table.
  cost: true,
  // Whole messages: the invocation does not ask for --include-partial-messages.
  streaming: 'message',
  mcp_servers: true,
  // The CLI could resume a session (--resume), but the sandbox is thrown away and keeps no transcript.
  resume: false,
};

export const claudeCodeAdapter: RuntimeAdapter = {
  name: 'claude-code',
  cliPackage: '@anthropic-ai/claude-code',
  cliVersion: CLAUDE_CODE_VERSION,
  image: `jetty/agent-claude-code:${CLAUDE_CODE_VERSION}`,
  providers: ['anthropic', 'bedrock', 'openrouter', 'simulated'],
  capabilities,
  defaultModel: DEFAULT_MODEL,
  buildInvocation,
  createParser: () => new ClaudeCodeParser(),
};

/** Top-level stream-json types that carry nothing a user needs (or only appear with flags we do not pass). */
const IGNORED_TYPES = new Set([
  'stream_event',
  'keep_alive',
  'tool_progress',
  'tool_use_summary',
  'rate_limit_event',
  'prompt_suggestion',
  'control_request',
  'control_response',
  'control_cancel_request',
  'streamlined_text',
  'streamlined_tool_use_summary',
]);

/** `system` subtypes that are bookkeeping, not something a user watching the run needs. */
const IGNORED_SYSTEM_SUBTYPES = new Set([
  'status',
  'thinking_tokens',
  'turn_starting',
  'turn_duration',
  'session_state_changed',
  'hook_started',
  'hook_progress',
  'hook_response',
  'task_progress',
  'task_updated',
  'file_snapshot',
  'commands_changed',
  'bridge_status',
  'bridge_state',
  'post_turn_summary',
  'stop_hook_summary',
]);

/** What the `result` line decided; kept until the CLI exits. */
interface ResultVerdict {
  isError: boolean;
  text: string;
  error?: RunError;
}

/**
 * Stateful over one run's stdout. Outcome rules (see finish):
 * - a `result` line decides: `is_error: true` (even with `subtype: "success"`) or any subtype other
 *   than `success` is a failure, whatever the exit code; otherwise the run completed, even if the
 *   exit code is non-zero (the answer was delivered; the code is reported as a log line);
 * - no `result` line: the CLI died before finishing (`agent_crashed`).
 */
export class ClaudeCodeParser implements OutputParser {
  private sessionId: string | undefined;
  private initModel: string | undefined;
  private lastText = '';
  /** The CLI's own words for an API failure (its synthetic assistant message). */
  private apiErrorText: string | undefined;
  /** The last stderr or non-JSON stdout line: the best clue when the CLI dies without a result. */
  private lastHint: string | undefined;
  private verdict: ResultVerdict | undefined;

  /** The session id from `system/init`, for resume and for the run record. */
  get session(): string | undefined {
    return this.sessionId;
  }

  push(line: string): AgentEvent[] {
    return pushGuarded('claude-code', line, (l) => this.handleLine(l));
  }

  /**
   * A line of the CLI's stderr. Not part of OutputParser yet: a caller that has stderr may feed it
   * here so that a crash names its cause (e.g. "--dangerously-skip-permissions cannot be used with
   * root/sudo privileges"). Returns the `log` event for it.
   */
  pushStderr(line: string): AgentEvent[] {
    if (line.trim() === '') return [];
    this.lastHint = line.trim();
    return [logEvent('stderr', line)];
  }

  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    const verdict = this.verdict;
    if (verdict === undefined) {
      const how = howItEnded(exitCode);
      const hint = this.lastHint ?? this.apiErrorText;
      const message = `Claude Code ${how} before reporting a result${hint ? `: ${hint}` : ''}`;
      return {
        events: [],
        outcome: { status: 'failed', finalText: this.lastText, error: { code: 'agent_crashed', message } },
      };
    }
    if (verdict.isError) {
      const error = verdict.error ?? { code: 'agent_error', message: 'Claude Code reported an error' };
      return { events: [], outcome: { status: 'failed', finalText: this.lastText, error } };
    }
    const events: AgentEvent[] = [];
    if (exitCode !== 0) {
      const how = howItEnded(exitCode);
      events.push(logEvent('system', `claude-code ${how} after reporting success; keeping the result`));
    }
    return { events, outcome: { status: 'completed', finalText: verdict.text || this.lastText } };
  }

  private handleLine(line: string): AgentEvent[] {
    const msg = parseJsonObject(line);
    if (msg === undefined) {
      this.lastHint = line.trim();
      return [logEvent('system', line)];
    }
    const type = asString(msg.type);
    switch (type) {
      case 'system':
        return this.handleSystem(msg, line);
      case 'assistant':
        return this.handleAssistant(msg, line);
      case 'user':
        return this.handleUser(msg);
      case 'result':
        return this.handleResult(msg);
      default:
        if (type !== undefined && IGNORED_TYPES.has(type)) return [];
        return [logEvent('system', line)];
    }
  }

  private handleSystem(msg: JsonObject, line: string): AgentEvent[] {
    const subtype = asString(msg.subtype) ?? '';
    if (subtype === 'init') {
      this.sessionId = asString(msg.session_id) ?? this.sessionId;
      this.initModel = asString(msg.model) ?? this.initModel;
      // Whether each MCP server the run asked for came up is worth a line: a failed one is silent otherwise.
      const mcp = asArray(msg.mcp_servers)
        .map((m) => asObject(m))
        .filter((m): m is JsonObject => m !== undefined)
        .map((m) => `${asString(m.name) ?? '?'} (${asString(m.status) ?? 'unknown'})`);
      return mcp.length > 0 ? [logEvent('system', `claude-code: MCP servers: ${mcp.join(', ')}`)] : [];
    }
    if (subtype === 'api_retry') {
      const attempt = asNumber(msg.attempt) ?? '?';
      const max = asNumber(msg.max_retries) ?? '?';
      const status = asNumber(msg.error_status);
      const kind = asString(msg.error);
      const cause = status === undefined ? 'no HTTP status' : `HTTP ${status}`;
      return [
        logEvent(
          'system',
          `claude-code: model request failed (${cause}${kind ? `, ${kind}` : ''}); retry ${attempt}/${max}`,
        ),
      ];
    }
    if (IGNORED_SYSTEM_SUBTYPES.has(subtype)) return [];
    const text = asString(msg.message) ?? asString(msg.content);
    return [logEvent('system', text === undefined ? line : `claude-code ${subtype}: ${text}`)];
  }

  private handleAssistant(msg: JsonObject, line: string): AgentEvent[] {
    const message = asObject(msg.message);
    if (message === undefined) return [logEvent('system', line)];
    const blocks = asArray(message.content);

    // On an API error the CLI prints a made-up assistant message carrying its error text. It is not
    // the agent speaking: keep it for the failure message and show it as a log line.
    if (message.model === '<synthetic>' || asString(msg.error) !== undefined) {
      const text = blocks
        .map((b) => asString(asObject(b)?.text))
        .filter((t): t is string => t !== undefined && t !== '')
        .join('\n');
      if (text === '') return [];
      this.apiErrorText = text;
      const kind = asString(msg.error);
      return [logEvent('system', `claude-code: ${kind ? `${kind}: ` : ''}${text}`)];
    }

    // A sub-agent's words (Task tool) are not the answer: show them as reasoning.
    const fromSubagent = typeof msg.parent_tool_use_id === 'string';
    const events: AgentEvent[] = [];
    for (const raw of blocks) {
      const block = asObject(raw);
      if (block === undefined) continue;
      switch (block.type) {
        case 'text': {
          const text = asString(block.text);
          if (!text) break;
          if (fromSubagent) {
            events.push({ type: 'agent.reasoning', data: { text } });
          } else {
            this.lastText = text;
            events.push({ type: 'agent.message', data: { text } });
          }
          break;
        }
        case 'thinking': {
          const text = asString(block.thinking);
          if (text) events.push({ type: 'agent.reasoning', data: { text } });
          break;
        }
        case 'tool_use':
        case 'server_tool_use':
        case 'mcp_tool_use': {
          const id = asString(block.id);
          const name = asString(block.name);
          if (id === undefined || name === undefined) break;
          events.push({ type: 'tool.call', data: { call_id: id, name, input: block.input ?? {} } });
          break;
        }
        default:
          // redacted_thinking and future block types: nothing a user can read.
          break;
      }
    }
    return events;
  }

  private handleUser(msg: JsonObject): AgentEvent[] {
    const events: AgentEvent[] = [];
    // String content is a user prompt echo; only tool results matter here.
    for (const raw of asArray(asObject(msg.message)?.content)) {
      const block = asObject(raw);
      if (block === undefined || block.type !== 'tool_result') continue;
      const callId = asString(block.tool_use_id);
      if (callId === undefined) continue;
      events.push({
        type: 'tool.result',
        data: {
          call_id: callId,
          output: toolResultText(block.content),
          is_error: block.is_error === true,
        },
      });
    }
    return events;
  }

  private handleResult(msg: JsonObject): AgentEvent[] {
    const subtype = asString(msg.subtype);
    const isError = msg.is_error === true || (subtype !== undefined && subtype !== 'success');
    const text = asString(msg.result) ?? '';
    this.verdict = {
      isError,
      text,
      ...(isError ? { error: classifyError(msg, text, this.apiErrorText) } : {}),
    };
    const usage = this.usageFrom(msg);
    return usage === undefined ? [] : [{ type: 'usage', data: usage }];
  }

  private usageFrom(msg: JsonObject): UsageData | undefined {
    const usage = asObject(msg.usage);
    if (usage === undefined) return undefined;
    const data: UsageData = {
      input_tokens: asCount(usage.input_tokens) ?? 0,
      output_tokens: asCount(usage.output_tokens) ?? 0,
      cache_read_tokens: asCount(usage.cache_read_input_tokens) ?? 0,
      cache_write_tokens: asCount(usage.cache_creation_input_tokens) ?? 0,
      source: 'agent',
    };
    const cost = asCount(msg.total_cost_usd);
    if (cost !== undefined) {
      data.cost_usd = cost;
      data.cost_estimated = false;
    }
    const model = mainModel(asObject(msg.modelUsage), this.initModel);
    if (model !== undefined) data.model = model;
    return data;
  }
}

/** Tool result content is a string or a list of blocks; text blocks are joined, others named. */
function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (content === undefined || content === null) return '';
  if (!Array.isArray(content)) return JSON.stringify(content) ?? '';
  return content
    .map((raw) => {
      const block = asObject(raw);
      if (block === undefined) return typeof raw === 'string' ? raw : '';
      if (block.type === 'text') return asString(block.text) ?? '';
      return `[${asString(block.type) ?? 'content'}]`;
    })
    .filter((part) => part !== '')
    .join('\n');
}

/**
 * The model that did the work. `modelUsage` is keyed by model (a sub-agent or a fallback adds
 * keys): prefer the session's model, else the one with the most tokens. The CLI's context-size
 * suffix ("[1m]") is not part of the API slug, so it is dropped.
 */
function mainModel(modelUsage: JsonObject | undefined, initModel: string | undefined): string | undefined {
  const keys = Object.keys(modelUsage ?? {});
  if (keys.length === 0) return undefined;
  let best = keys[0];
  if (initModel !== undefined && keys.includes(initModel)) {
    best = initModel;
  } else {
    let most = -1;
    for (const key of keys) {
      const entry = asObject(modelUsage?.[key]);
      const tokens = (asNumber(entry?.inputTokens) ?? 0) + (asNumber(entry?.outputTokens) ?? 0);
      if (tokens > most) {
        most = tokens;
        best = key;
      }
    }
  }
  return best?.replace(/\[[^\]]*\]$/, '');
}

/** Turns an error `result` into a stable code and a message that says what failed. */
function classifyError(msg: JsonObject, resultText: string, apiErrorText: string | undefined): RunError {
  const status = asNumber(msg.api_error_status);
  const errors = asArray(msg.errors).filter((e): e is string => typeof e === 'string');
  const detail = resultText || apiErrorText || errors.join('; ') || 'no details given';
  if (status !== undefined) {
    return providerError(status, detail);
  }
  const subtype = asString(msg.subtype);
  if (subtype === 'error_max_turns') {
    return { code: 'agent_max_turns', message: `The agent stopped at its turn limit: ${detail}` };
  }
  if (subtype === 'error_max_budget_usd') {
    return { code: 'agent_budget_exceeded', message: `The agent stopped at its budget: ${detail}` };
  }
  // No HTTP status at all: the CLI never got an answer (gateway or forwarder down, timeout).
  if (/Unable to connect to API|Request timed out/.test(detail)) {
    return { code: 'provider_unreachable', message: `The model provider could not be reached: ${detail}` };
  }
  const label = subtype !== undefined && subtype !== 'success' ? ` (${subtype})` : '';
  return { code: 'agent_error', message: `Claude Code reported an error${label}: ${detail}` };
}

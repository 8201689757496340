/**
 * opencode 1.18.33 run headless (`opencode run --format json`), and the parser that turns its JSON
 * lines into the shared event vocabulary.
 *
 * The CLI prints whole parts, not deltas: `step_start`, `text`, `reasoning` (with --thinking),
 * `tool_use` (the call and its result together, once the tool has finished), `step_finish` (tokens
 * and cost of that model call) and `error`. There is no final result line: a run completed when the
 * CLI exits 0 without an `error` line. Shapes are the ones the CLI really prints;
 * test/fixtures/opencode holds recordings.
 */
import type { AgentEvent, RunError, UsageData } from '../events/types.js';
import {
  AGENT_HOME,
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
  ProviderName,
  RuntimeAdapter,
  RuntimeCapabilities,
  RuntimeOutcome,
} from './types.js';

export const OPENCODE_VERSION = '1.18.33';
/** Bare: the pre-flight turns it into `anthropic/claude-sonnet-4.6` for OpenRouter, Jetty's default. */
const DEFAULT_MODEL = 'claude-sonnet-4-6';

/** The prompt goes in a file fed to stdin: `opencode run` appends piped stdin to the message. */
export const OPENCODE_PROMPT_PATH = PROMPT_PATH;

/** The providers this runtime runs with, and how opencode reaches each through the gateway. */
interface ProviderRoute {
  /** The provider id in opencode's config (opencode's own id for the real providers). */
  id: string;
  /** Path the SDK expects after the host: it appends `/chat/completions`, `/messages`, … to it. */
  basePath: string;
  /** Set only for providers opencode does not know: the bundled AI SDK package to speak through. */
  npm?: string;
}

/**
 * anthropic, openai, google and openrouter use opencode's built-in provider of the same id, so the
 * CLI speaks each API through the SDK it always uses (all bundled in the binary, nothing is fetched)
 * and prices known models from its bundled catalog. Only the base URL and the key are replaced.
 * `simulated` speaks Chat Completions through the bundled openai-compatible SDK.
 */
const ROUTES: Readonly<Record<OpencodeProvider, ProviderRoute>> = {
  // @ai-sdk/anthropic: POST /v1/messages, key in x-api-key.
  anthropic: { id: 'anthropic', basePath: '/v1' },
  // @ai-sdk/openai: POST /v1/responses (the Responses API), key as a bearer token.
  openai: { id: 'openai', basePath: '/v1' },
  // @ai-sdk/google: POST /v1beta/models/{model}:streamGenerateContent?alt=sse, key in x-goog-api-key.
  google: { id: 'google', basePath: '/v1beta' },
  // @openrouter/ai-sdk-provider: POST /v1/chat/completions (upstream: https://openrouter.ai/api).
  openrouter: { id: 'openrouter', basePath: '/v1' },
  // @ai-sdk/openai-compatible: POST /v1/chat/completions.
  simulated: { id: 'simulated', basePath: '/v1', npm: '@ai-sdk/openai-compatible' },
};
type OpencodeProvider = 'anthropic' | 'openai' | 'google' | 'openrouter' | 'simulated';
const PROVIDERS: readonly OpencodeProvider[] = ['anthropic', 'google', 'openai', 'openrouter', 'simulated'];

/** Unknown models get these limits (opencode needs them to size answers and to compact). */
const UNKNOWN_MODEL_LIMIT = { context: 200_000, output: 32_000 };

/**
 * Env that keeps the CLI to itself: no models catalog fetch (it has a bundled one), no update
 * check, no LSP downloads, no sharing. The sandbox has no network anyway; these save the attempts.
 */
const QUIET_ENV: Readonly<Record<string, string>> = {
  OPENCODE_DISABLE_MODELS_FETCH: '1',
  OPENCODE_DISABLE_AUTOUPDATE: '1',
  OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
  OPENCODE_DISABLE_SHARE: '1',
};

function routeOf(provider: ProviderName): ProviderRoute {
  const route = (ROUTES as Partial<Record<ProviderName, ProviderRoute>>)[provider];
  if (route === undefined) {
    // The pre-flight only lets through the providers this adapter lists.
    throw new Error(`opencode cannot run with the provider "${provider}"`);
  }
  return route;
}

/** opencode's `mcp` config: local servers run in the sandbox, remote ones need its network. */
function mcpConfig(servers: readonly McpServer[]): Record<string, unknown> {
  const mcp: Record<string, unknown> = {};
  for (const s of servers) {
    mcp[s.name] =
      s.transport === 'stdio'
        ? { type: 'local', command: [s.command, ...s.args], environment: s.env, enabled: true }
        : { type: 'remote', url: s.url, headers: s.headers, enabled: true };
  }
  return mcp;
}

/** The whole config, passed in OPENCODE_CONFIG_CONTENT (merged last, over anything on disk). */
export function opencodeConfig(spec: InvocationSpec): Record<string, unknown> {
  const route = routeOf(spec.provider);
  const model = spec.model || DEFAULT_MODEL;
  const mcp = spec.mcpServers ?? [];
  const modelEntry =
    route.npm === undefined ? {} : { name: model, tool_call: true, limit: UNKNOWN_MODEL_LIMIT };
  return {
    $schema: 'https://opencode.ai/config.json',
    // Only this run's provider: nothing else is loaded from env or auth files.
    enabled_providers: [route.id],
    provider: {
      [route.id]: {
        ...(route.npm === undefined ? {} : { npm: route.npm, name: 'Jetty simulated provider' }),
        // The per-run gateway token, never a provider key: the gateway swaps it for the real one.
        options: { baseURL: `${spec.gatewayUrl}${route.basePath}`, apiKey: spec.token },
        // Declared so a model missing from opencode's bundled catalog is still accepted; a known
        // model keeps the catalog's limits and prices.
        models: { [model]: modelEntry },
      },
    },
    model: `${route.id}/${model}`,
    small_model: `${route.id}/${model}`,
    permission: { edit: 'allow', bash: 'allow', webfetch: 'allow', external_directory: 'allow' },
    ...(mcp.length > 0 ? { mcp: mcpConfig(mcp) } : {}),
    autoupdate: false,
    share: 'disabled',
  };
}

function buildInvocation(spec: InvocationSpec): Invocation {
  return {
    argv: [
      'opencode',
      'run',
      '--format',
      'json',
      // Approves whatever the config does not deny; without it a permission prompt is rejected.
      '--auto',
      // Prints reasoning parts too.
      '--thinking',
      // A title given up front saves the title-generation model call (a side call on small_model).
      // opencode has no deadline flag: the deadline reaches it in the prompt (composePrompt).
      `--title=Jetty run ${spec.runId}`,
      // opencode's own log (errors such as an unknown model) on stderr instead of a file.
      '--print-logs',
      '--log-level=WARN',
    ],
    env: {
      OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(spec)),
      ...QUIET_ENV,
      HOME: AGENT_HOME,
    },
    files: [{ path: OPENCODE_PROMPT_PATH, content: spec.prompt, mode: 0o644 }],
    stdinFile: OPENCODE_PROMPT_PATH,
  };
}

const capabilities: RuntimeCapabilities = {
  // `step_finish.part.tokens` per model call: input, output, reasoning, cache read and write.
  token_usage: true,
  // `step_finish.part.cost`, from opencode's bundled price catalog: known models of the real
  // providers only (0 for the simulated provider and unknown models, and then not reported).
  cost: true,
  // Whole parts: a text part is printed once it is complete.
  streaming: 'message',
  // Config `mcp`: local (stdio) servers and remote (http/sse) ones.
  mcp_servers: true,
  // opencode can continue a session (--session), but the sandbox is thrown away with its database.
  resume: false,
};

export const opencodeAdapter: RuntimeAdapter = {
  name: 'opencode',
  cliPackage: 'opencode-ai',
  cliVersion: OPENCODE_VERSION,
  image: `jetty/agent-opencode:${OPENCODE_VERSION}`,
  providers: PROVIDERS,
  capabilities,
  defaultModel: DEFAULT_MODEL,
  // opencode 1.18.33 retries a failed call 5 times with backoff from 2 s (about 70 s in all) and has
  // no setting for it, but it honours retry-after-ms: 200 ms waits make the 5 retries take ~1 s.
  gatewayRetryAfterMs: 200,
  buildInvocation,
  createParser: () => new OpencodeParser(),
};

/** The `error` line the CLI printed, kept until it exits. */
interface ErrorSeen {
  name: string;
  message: string;
  statusCode: number | undefined;
}

/**
 * Stateful over one run's stdout. Outcome rules (see finish):
 * - an `error` line means the run failed, whatever the exit code;
 * - otherwise exit 0 after at least one model call means it completed, with the last text part as
 *   the final text;
 * - anything else (killed, a non-zero exit without an `error` line, nothing done) is a crash.
 */
export class OpencodeParser implements OutputParser {
  private sessionId: string | undefined;
  private lastText = '';
  private steps = 0;
  private error: ErrorSeen | undefined;
  /** The last stderr or non-JSON stdout line: the best clue when the CLI dies without an error line. */
  private lastHint: string | undefined;
  /** The last ERROR line of opencode's own log: it names causes the `error` line hides. */
  private lastLogError: string | undefined;

  /** The session id every line carries. */
  get session(): string | undefined {
    return this.sessionId;
  }

  push(line: string): AgentEvent[] {
    return pushGuarded('opencode', line, (l) => this.handleLine(l));
  }

  pushStderr(line: string): AgentEvent[] {
    if (line.trim() === '') return [];
    const trimmed = line.trim();
    // opencode installs its plugin package into the config dir in the background on every start;
    // in a sandbox without network that always fails, harmlessly. Not worth a user's attention.
    if (/message="background dependency install failed"/.test(trimmed)) return [];
    this.lastHint = trimmed;
    if (/\blevel=ERROR\b/.test(trimmed)) this.lastLogError = logMessage(trimmed);
    return [logEvent('stderr', line)];
  }

  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome } {
    if (this.error !== undefined) {
      return {
        events: [],
        outcome: {
          status: 'failed',
          finalText: this.lastText,
          error: classifyError(this.error, this.lastLogError),
        },
      };
    }
    if (exitCode === 0 && this.steps > 0) {
      return { events: [], outcome: { status: 'completed', finalText: this.lastText } };
    }
    const how = exitCode === 0 ? 'exited with code 0 without calling the model' : howItEnded(exitCode);
    const hint = this.lastLogError ?? this.lastHint;
    const message = `opencode ${how} before finishing${hint ? `: ${hint}` : ''}`;
    return {
      events: [],
      outcome: { status: 'failed', finalText: this.lastText, error: { code: 'agent_crashed', message } },
    };
  }

  private handleLine(line: string): AgentEvent[] {
    const msg = parseJsonObject(line);
    if (msg === undefined) {
      this.lastHint = line.trim();
      return [logEvent('system', line)];
    }
    this.sessionId = asString(msg.sessionID) ?? this.sessionId;
    const part = asObject(msg.part);
    switch (msg.type) {
      case 'step_start':
        return part === undefined ? [logEvent('system', line)] : [];
      case 'text':
        return this.handleText(part, 'agent.message', line);
      case 'reasoning':
        return this.handleText(part, 'agent.reasoning', line);
      case 'tool_use':
        return this.handleTool(part, line);
      case 'step_finish':
        return this.handleStepFinish(part, line);
      case 'error':
        return this.handleError(msg, line);
      default:
        return [logEvent('system', line)];
    }
  }

  private handleText(
    part: JsonObject | undefined,
    type: 'agent.message' | 'agent.reasoning',
    line: string,
  ): AgentEvent[] {
    const text = asString(part?.text);
    if (text === undefined) return [logEvent('system', line)];
    if (text.trim() === '') return [];
    if (type === 'agent.message') {
      this.lastText = text;
      return [{ type, data: { text } }];
    }
    return [{ type, data: { text } }];
  }

  /** One `tool_use` line is a finished call: the call, then its result. */
  private handleTool(part: JsonObject | undefined, line: string): AgentEvent[] {
    const callId = asString(part?.callID) ?? asString(part?.id);
    const name = asString(part?.tool);
    const state = asObject(part?.state);
    if (callId === undefined || callId === '' || name === undefined || name === '' || state === undefined) {
      return [logEvent('system', line)];
    }
    const events: AgentEvent[] = [
      { type: 'tool.call', data: { call_id: callId, name, input: state.input ?? {} } },
    ];
    const status = asString(state.status);
    if (status !== 'completed' && status !== 'error') return events;
    // A failed tool (status "error"), or a shell command that exited non-zero: the bash tool
    // reports that as completed, with the exit code in its metadata.
    const exit = asNumber(asObject(state.metadata)?.exit);
    const isError = status === 'error' || (exit !== undefined && exit !== 0);
    const raw =
      status === 'error' ? (asString(state.error) ?? asString(state.output)) : asString(state.output);
    events.push({
      type: 'tool.result',
      data: {
        call_id: callId,
        output: raw ?? '',
        is_error: isError,
      },
    });
    return events;
  }

  private handleStepFinish(part: JsonObject | undefined, line: string): AgentEvent[] {
    const tokens = asObject(part?.tokens);
    if (part === undefined) return [logEvent('system', line)];
    this.steps++;
    if (tokens === undefined) return [];
    const cache = asObject(tokens.cache);
    // opencode keeps reasoning apart from output; providers bill it as output.
    const data: UsageData = {
      input_tokens: asCount(tokens.input) ?? 0,
      output_tokens: (asCount(tokens.output) ?? 0) + (asCount(tokens.reasoning) ?? 0),
      cache_read_tokens: asCount(cache?.read) ?? 0,
      cache_write_tokens: asCount(cache?.write) ?? 0,
      source: 'agent',
    };
    // 0 means "no price known" (simulated, models outside its catalog): leave it to the gateway's estimate.
    const cost = asCount(part.cost);
    if (cost !== undefined && cost > 0) {
      data.cost_usd = cost;
      data.cost_estimated = false;
    }
    return [{ type: 'usage', data }];
  }

  private handleError(msg: JsonObject, line: string): AgentEvent[] {
    const error = asObject(msg.error);
    const data = asObject(error?.data);
    const name = asString(error?.name) ?? 'Error';
    const message = asString(data?.message) ?? asString(error?.message) ?? '';
    this.error = { name, message, statusCode: asNumber(data?.statusCode) };
    return [logEvent('system', `opencode ${name}: ${message || line}`)];
  }
}

/** The message of an opencode log line (logfmt: `… message="…" … error="…"`). */
function logMessage(line: string): string {
  const error = /\berror(?:\.error)?="((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
  const message = /\bmessage=(?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(line);
  const text = message?.[1] ?? message?.[2];
  if (error !== undefined) return text !== undefined ? `${text}: ${error}` : error;
  return text ?? line;
}

/** Turns the `error` line into a stable code and a message that says what failed. */
function classifyError(error: ErrorSeen, logError: string | undefined): RunError {
  const detail = error.message || logError || 'no details given';
  if (error.statusCode !== undefined) {
    return providerError(error.statusCode, detail);
  }
  if (error.name === 'ProviderAuthError') {
    return { code: 'provider_auth_error', message: `The model provider rejected the credentials: ${detail}` };
  }
  // An APIError without a status: no HTTP answer at all (gateway or forwarder down, timeout).
  if (error.name === 'APIError') {
    return { code: 'provider_unreachable', message: `The model provider could not be reached: ${detail}` };
  }
  if (error.name === 'ContextOverflowError') {
    return {
      code: 'agent_context_overflow',
      message: `The conversation outgrew the model's context: ${detail}`,
    };
  }
  // UnknownError hides its cause ("Unexpected server error"); opencode's log names it.
  const cause = logError !== undefined && logError !== detail ? ` (${logError})` : '';
  return { code: 'agent_error', message: `opencode reported ${error.name}: ${detail}${cause}` };
}

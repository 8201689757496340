import type { AgentEvent, AgentName, RunError, UsageData } from '../events/types.js';
import type { McpServer } from './mcp.js';

/** Providers a runtime may be pointed at. `simulated` is the built-in scripted provider. */
export type ProviderName =
  | 'anthropic'
  | 'openai'
  | 'google'
  | 'openrouter'
  | 'bedrock'
  | 'vertex'
  | 'simulated';
export const PROVIDER_NAMES: readonly ProviderName[] = [
  'anthropic',
  'openai',
  'google',
  'openrouter',
  'bedrock',
  'vertex',
  'simulated',
];

/** Everything a runtime needs to know to start its CLI for one run. */
export interface InvocationSpec {
  runId: string;
  /** The whole prompt: the templated runbook, the user's messages and the deadline note. */
  prompt: string;
  model: string;
  provider: ProviderName;
  /** Base URL of the provider gateway as the CLI sees it inside the sandbox, e.g. http://127.0.0.1:4100 */
  gatewayUrl: string;
  /** The per-run token the CLI presents to the gateway. Never a real provider key. */
  token: string;
  deadlineSec: number;
  /** MCP servers the run asked for, to be written in the CLI's own config form (empty: none). */
  mcpServers?: McpServer[];
  workdir: string;
  resultsDir: string;
}

export interface SandboxFile {
  /** Absolute path inside the sandbox. */
  path: string;
  content: string | Buffer;
  mode?: number;
}

/** How to run the CLI inside the sandbox (after the image's entrypoint has started the forwarder). */
export interface Invocation {
  argv: string[];
  env: Record<string, string>;
  /** Files placed in the sandbox before it starts (prompt, config files). */
  files: SandboxFile[];
  /** Path of one of `files` to feed to the CLI's stdin (long prompts do not fit argv). */
  stdinFile?: string;
}

export type RuntimeOutcome =
  | { status: 'completed'; finalText: string }
  | { status: 'failed'; finalText: string; error: RunError };

/** Turns one run's stdout lines into events. Stateful: one parser per run. */
export interface OutputParser {
  /** One complete stdout line (without the newline). Never throws: bad lines become `log` events. */
  push(line: string): AgentEvent[];
  /** One stderr line; remembered for a crash message. Without it, stderr becomes plain `log` events. */
  pushStderr?(line: string): AgentEvent[];
  /** The CLI exited (null: killed or unknown). Decides the outcome from what was seen and the code. */
  finish(exitCode: number | null): { events: AgentEvent[]; outcome: RuntimeOutcome };
}

export interface RuntimeCapabilities {
  token_usage: boolean;
  cost: boolean;
  /** 'message': whole messages; 'delta': token deltas. */
  streaming: 'message' | 'delta';
  mcp_servers: boolean;
  resume: boolean;
}

export interface RuntimeAdapter {
  readonly name: AgentName;
  readonly cliPackage: string;
  readonly cliVersion: string;
  /** The agent layer image (repository:tag) docker/build-images.sh builds from docker/agents/<name>/. */
  readonly image: string;
  readonly providers: readonly ProviderName[];
  readonly capabilities: RuntimeCapabilities;
  /**
   * For a CLI whose retries cannot be configured: the gateway adds `retry-after-ms` with this value
   * to failed (429 and 5xx) answers, so the CLI's fixed number of retries takes seconds, not minutes.
   */
  readonly gatewayRetryAfterMs?: number;
  /** MCP transports the CLI speaks, when it does not speak all of stdio, http and sse. */
  readonly mcpTransports?: readonly McpServer['transport'][];
  readonly defaultModel: string;
  buildInvocation(spec: InvocationSpec): Invocation;
  createParser(): OutputParser;
}

export type { UsageData };

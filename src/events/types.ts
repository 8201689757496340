/**
 * The event vocabulary: one for every runtime. Runtime adapters produce the agent-side events;
 * the worker adds the lifecycle ones. Nothing downstream knows which CLI ran.
 */
import type { Evaluation } from '../evaluation/record.js';

export type AgentName = 'claude-code' | 'codex' | 'gemini-cli' | 'opencode' | 'hermes';
export const AGENT_NAMES: readonly AgentName[] = ['claude-code', 'codex', 'gemini-cli', 'opencode', 'hermes'];

export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

export interface UsageData {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  /** USD, when the CLI or a price table knows it. */
  cost_usd?: number;
  /** true when cost_usd comes from our price table rather than the CLI. */
  cost_estimated?: boolean;
  model?: string;
  /**
   * Who measured it: the agent CLI's own report, or the provider gateway reading the response.
   * `script`: the gateway, for a call the runbook's own scripts made with a provider key declared
   * as a secret (counted in the run's totals on top of the agent's). `judge`: the gateway, for the
   * judge model that scored a rubric runbook's outputs (also on top of the agent's).
   */
  source: 'agent' | 'gateway' | 'script' | 'judge';
}

export interface RunError {
  code: string;
  message: string;
}

/** Something the user should know that did not stop the run (a rewrite, a default, a leftover). */
export interface RunWarning {
  code: string;
  message: string;
}

export type RetryReason = 'worker_shutdown' | 'worker_lost' | 'infrastructure_error';

export interface ArtifactInfo {
  /** Relative to results_dir, with forward slashes. */
  path: string;
  size: number;
  sha256: string;
  content_type: string;
}

/** Why a file of results_dir was not kept (see src/sandbox/collect-plan.ts for the rule). */
export type ArtifactDropReason =
  | 'file_too_large'
  | 'total_too_large'
  | 'too_many_files'
  | 'unreadable'
  | 'bad_name'
  | 'listing_too_long';

export interface DroppedArtifact {
  /** Relative to results_dir; for `listing_too_long`, a summary. */
  path: string;
  size: number;
  reason: ArtifactDropReason;
}

/** What a run's collection left out: every file counted, the largest few named. */
export interface ArtifactsDropped {
  count: number;
  bytes: number;
  /** Largest first, at most MAX_DROPPED_LISTED of them. */
  files: DroppedArtifact[];
}

export const MAX_DROPPED_LISTED = 100;

/**
 * One connection through the egress proxy (src/egress), recorded when it ends; a refused one at
 * once. `connect` is a tunnel (HTTPS, or any TCP the client tunnels); `http` one plain-HTTP request.
 * `code` says why a connection was refused, failed or cut (e.g. `not_allowed`, `private_address`,
 * `port_not_allowed`, `connection_limit`, `idle_timeout`, `byte_limit`, `run_ended`), `reason` the
 * same for a person, naming the setting. Bytes are what went through after the connection was made.
 */
export interface NetConnectData {
  host: string;
  port: number;
  kind: 'connect' | 'http';
  outcome: 'allowed' | 'refused' | 'failed';
  code?: string;
  reason?: string;
  /** The checked address the proxy connected to. */
  address?: string;
  /** Plain HTTP only: the request's method and the upstream's status. */
  method?: string;
  status?: number;
  bytes_up: number;
  bytes_down: number;
  ms: number;
}

/** Per host in a run's network summary. */
export interface NetworkHost {
  host: string;
  connections: number;
  refused: number;
  bytes_up: number;
  bytes_down: number;
}

/** What a run did through the egress proxy: on its record, its terminal event and jetty_metadata. */
export interface NetworkSummary {
  policy: 'none' | 'allowlist' | 'open';
  /** The host patterns of an allowlist policy. */
  allow?: string[];
  connections: number;
  allowed: number;
  refused: number;
  failed: number;
  bytes_up: number;
  bytes_down: number;
  /** Most connections first, at most MAX_NETWORK_HOSTS; the rest counted in hosts_omitted. */
  hosts: NetworkHost[];
  hosts_omitted?: number;
}

export const MAX_NETWORK_HOSTS = 50;

/**
 * `truncated: true` on an event's data: one of its texts was cut to the run's limits
 * (src/events/limits.ts), after redaction.
 */
export interface EventDataMap {
  'run.queued': { agent: AgentName; model: string; provider: string };
  /**
   * The run starts again in a fresh sandbox: its previous attempt's worker stopped (`worker_shutdown`),
   * died or hung and lost the run's lock (`worker_lost`), or hit an infrastructure error
   * (`infrastructure_error`). Commands of the earlier attempt may have run already.
   */
  'run.retry': { attempt: number; reason: RetryReason; message: string };
  /** `worker`: the worker process that runs this attempt (its name in the worker's log and labels). */
  'run.started': { sandbox_id: string; image: string; runtime_version: string; worker?: string };
  'agent.message': { text: string; delta?: boolean; truncated?: boolean };
  'agent.reasoning': { text: string; truncated?: boolean };
  /** `input` is the cut JSON text of the input (a string) when it was over the run's text limit. */
  'tool.call': { call_id: string; name: string; input: unknown; truncated?: boolean };
  'tool.result': { call_id: string; output: string; is_error: boolean; truncated?: boolean };
  usage: UsageData;
  log: { stream: 'stderr' | 'system'; line: string; truncated?: boolean };
  artifact: ArtifactInfo;
  'run.warning': RunWarning;
  'net.connect': NetConnectData;
  /** `evaluation`: how the run scored against its runbook (absent when it declares none). */
  'run.completed': {
    final_text: string;
    exit_code: number | null;
    usage: UsageTotals;
    duration_ms: number;
    evaluation?: Evaluation;
    truncated?: boolean;
    network?: NetworkSummary;
  };
  'run.failed': {
    error: RunError;
    exit_code: number | null;
    final_text?: string;
    usage: UsageTotals;
    duration_ms: number;
    evaluation?: Evaluation;
    truncated?: boolean;
    network?: NetworkSummary;
  };
  'run.cancelled': { reason: string; usage: UsageTotals; duration_ms: number; network?: NetworkSummary };
}

export type EventType = keyof EventDataMap;
export const TERMINAL_EVENT_TYPES: readonly EventType[] = ['run.completed', 'run.failed', 'run.cancelled'];

/** An event before it is stored. */
export type NewEvent = { [K in EventType]: { type: K; data: EventDataMap[K] } }[EventType];

/**
 * An event as stored: `id` is the Redis Stream entry id, which is also the SSE `id:`. `attempt`
 * is the attempt (1, 2, ...) of the run that wrote it; absent on events written before any attempt
 * (run.queued, a cancel before the start).
 */
export type StoredEvent = NewEvent & { id: string; ts: number; attempt?: number };

/** The events a runtime adapter may produce from its CLI's output. */
export type AgentEvent = Extract<
  NewEvent,
  { type: 'agent.message' | 'agent.reasoning' | 'tool.call' | 'tool.result' | 'usage' | 'log' }
>;

export interface UsageTotals {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number | null;
  cost_estimated: boolean;
}

export function emptyUsage(): UsageTotals {
  return {
    input_tokens: 0,
    output_tokens: 0,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    cost_usd: null,
    cost_estimated: false,
  };
}

export function isTerminalEvent(type: EventType): boolean {
  return TERMINAL_EVENT_TYPES.includes(type);
}

/**
 * The event vocabulary: one for every runtime. Runtime adapters produce the agent-side events;
 * the worker adds the lifecycle ones. Nothing downstream knows which CLI ran.
 */
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
  /** Who measured it: the agent CLI's own report, or the provider gateway reading the response. */
  source: 'agent' | 'gateway';
}

export interface RunError {
  code: string;
  message: string;
}

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

export interface EventDataMap {
  'run.queued': { agent: AgentName; model: string; provider: string };
  'run.started': { sandbox_id: string; image: string; runtime_version: string };
  'agent.message': { text: string; delta?: boolean };
  'agent.reasoning': { text: string };
  'tool.call': { call_id: string; name: string; input: unknown };
  'tool.result': { call_id: string; output: string; is_error: boolean; truncated?: boolean };
  usage: UsageData;
  log: { stream: 'stderr' | 'system'; line: string };
  artifact: ArtifactInfo;
  warning: { code: string; message: string };
  'run.completed': { final_text: string; exit_code: number | null; usage: UsageTotals; duration_ms: number };
  'run.failed': {
    error: RunError;
    exit_code: number | null;
    final_text?: string;
    usage: UsageTotals;
    duration_ms: number;
  };
  'run.cancelled': { reason: string; usage: UsageTotals; duration_ms: number };
}

export type EventType = keyof EventDataMap;
export const TERMINAL_EVENT_TYPES: readonly EventType[] = ['run.completed', 'run.failed', 'run.cancelled'];

/** An event before it is stored. */
export type NewEvent = { [K in EventType]: { type: K; data: EventDataMap[K] } }[EventType];

/** An event as stored: `id` is the Redis Stream entry id, which is also the SSE `id:`. */
export type StoredEvent = NewEvent & { id: string; ts: number };

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

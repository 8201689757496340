import type { Evaluation } from '../evaluation/record.js';
import { netConnectLine } from './display.js';
import type {
  ArtifactInfo,
  NetworkSummary,
  RunError,
  RunStatus,
  RunWarning,
  StoredEvent,
  UsageTotals,
} from './types.js';

/**
 * Maps run events to OpenAI `chat.completion.chunk` objects. The agent's own words become
 * `delta.content`; tool activity becomes one short line of `delta.reasoning_content` (never
 * `delta.tool_calls`: a client would try to execute them); every chunk that comes from an event
 * also carries it under `jetty_event` for clients that want structure.
 */
export interface ChunkContext {
  runId: string;
  model: string;
  /** Unix seconds, the same on every chunk of a stream. */
  created: number;
  /** The runbook's headline deliverables (relative to results_dir), first one first. */
  primaryOutputs?: string[];
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  cost_usd: number | null;
}

export interface JettyMetadata {
  trajectory_id: string;
  status: RunStatus;
  artifacts?: Array<ArtifactInfo & { url: string }>;
  missing_outputs?: string[];
  /** The runbook's headline deliverables, relative to results_dir, in the runbook's order. */
  primary_outputs?: string[];
  /** Every `run.warning` of the run, in order. */
  warnings?: RunWarning[];
  /** What the run did through the egress proxy: policy, connections, bytes, hosts. */
  network?: NetworkSummary;
  error?: RunError;
  /** How the run scored against its runbook: `passed`, `score`, and how it was decided. */
  evaluation?: Evaluation;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: 0;
    delta: { role?: 'assistant'; content?: string; reasoning_content?: string };
    finish_reason: 'stop' | null;
  }>;
  usage?: ChatUsage;
  jetty_metadata?: JettyMetadata;
  jetty_event?: { id: string; type: string; data: unknown; attempt?: number };
}

/** What the mapper emits for one event: chunks, then possibly an error that ends the stream. */
export interface MappedEvent {
  chunks: ChatCompletionChunk[];
  /** Set on a failed or cancelled run: written as `data: {"error": …}` so the OpenAI SDKs raise. */
  error?: { message: string; type: string; code: string; param: null };
  final: boolean;
}

export const TOOL_LINE_MAX = 160;

export function completionId(runId: string): string {
  return `chatcmpl-${runId}`;
}

export function artifactUrl(runId: string, path: string): string {
  return `/v1/runs/${encodeURIComponent(runId)}/artifacts/${path.split('/').map(encodeURIComponent).join('/')}`;
}

export function toChatUsage(u: UsageTotals): ChatUsage {
  const prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output_tokens,
    total_tokens: prompt + u.output_tokens,
    prompt_tokens_details: { cached_tokens: u.cache_read_tokens },
    cost_usd: u.cost_usd,
  };
}

/** A one-line, bounded description of a tool call, e.g. `Bash: mkdir -p /app/results`. */
export function describeToolCall(name: string, input: unknown): string {
  let detail = '';
  if (input && typeof input === 'object') {
    const o = input as Record<string, unknown>;
    const pick = o.command ?? o.cmd ?? o.file_path ?? o.filePath ?? o.path ?? o.pattern ?? o.url ?? o.query;
    detail = typeof pick === 'string' ? pick : JSON.stringify(input);
  } else if (typeof input === 'string') {
    detail = input;
  }
  const line = `${name}${detail ? `: ${detail}` : ''}`.replace(/\s+/g, ' ').trim();
  return line.length > TOOL_LINE_MAX ? `${line.slice(0, TOOL_LINE_MAX - 1)}…` : line;
}

export class ChunkMapper {
  private lastMessageWasWhole = false;
  private sentContent = false;
  private readonly artifacts: Array<ArtifactInfo & { url: string }> = [];
  private readonly warnings: RunWarning[] = [];

  constructor(private readonly ctx: ChunkContext) {}

  first(status: RunStatus): ChatCompletionChunk {
    return this.chunk(
      { role: 'assistant', content: '' },
      { jetty_metadata: { trajectory_id: this.ctx.runId, status } },
    );
  }

  map(ev: StoredEvent): MappedEvent {
    const jetty_event: ChatCompletionChunk['jetty_event'] = { id: ev.id, type: ev.type, data: ev.data };
    if (ev.attempt !== undefined) jetty_event.attempt = ev.attempt;
    switch (ev.type) {
      case 'agent.message': {
        // Whole messages (not deltas) are separated so consecutive ones do not run together.
        const sep = this.sentContent && (this.lastMessageWasWhole || !ev.data.delta) ? '\n\n' : '';
        this.lastMessageWasWhole = !ev.data.delta;
        this.sentContent = true;
        return { chunks: [this.chunk({ content: sep + ev.data.text }, { jetty_event })], final: false };
      }
      case 'agent.reasoning':
        return { chunks: [this.chunk({ reasoning_content: ev.data.text }, { jetty_event })], final: false };
      case 'tool.call':
        return {
          chunks: [
            this.chunk(
              { reasoning_content: `${describeToolCall(ev.data.name, ev.data.input)}\n` },
              { jetty_event },
            ),
          ],
          final: false,
        };
      case 'artifact':
        this.artifacts.push({ ...ev.data, url: artifactUrl(this.ctx.runId, ev.data.path) });
        return { chunks: [this.chunk({}, { jetty_event })], final: false };
      case 'run.retry':
        return {
          chunks: [
            this.chunk(
              { reasoning_content: `Retrying, attempt ${ev.data.attempt}: ${ev.data.message}\n` },
              { jetty_event },
            ),
          ],
          final: false,
        };
      case 'run.warning':
        this.warnings.push({ code: ev.data.code, message: ev.data.message });
        return {
          chunks: [this.chunk({ reasoning_content: `Warning: ${ev.data.message}\n` }, { jetty_event })],
          final: false,
        };
      case 'net.connect':
        return {
          chunks: [this.chunk({ reasoning_content: `${netConnectLine(ev.data)}\n` }, { jetty_event })],
          final: false,
        };
      case 'run.completed':
        return {
          chunks: [
            ...this.scored(ev.data.evaluation),
            this.last(
              'completed',
              ev.data.usage,
              jetty_event,
              undefined,
              ev.data.network,
              ev.data.evaluation,
            ),
          ],
          final: true,
        };
      case 'run.failed':
        return {
          chunks: [
            ...this.scored(ev.data.evaluation),
            this.last(
              'failed',
              ev.data.usage,
              jetty_event,
              ev.data.error,
              ev.data.network,
              ev.data.evaluation,
            ),
          ],
          error: {
            message: ev.data.error.message,
            type: 'run_failed',
            code: ev.data.error.code,
            param: null,
          },
          final: true,
        };
      case 'run.cancelled':
        return {
          chunks: [this.last('cancelled', ev.data.usage, jetty_event, undefined, ev.data.network)],
          error: {
            message: `The run was cancelled: ${ev.data.reason}`,
            type: 'run_cancelled',
            code: 'run_cancelled',
            param: null,
          },
          final: true,
        };
      default:
        return { chunks: [this.chunk({}, { jetty_event })], final: false };
    }
  }

  /** One line of thinking with the run's score, before the last chunk. */
  private scored(evaluation: Evaluation | undefined): ChatCompletionChunk[] {
    if (!evaluation) return [];
    const verdict =
      evaluation.passed === null ? evaluation.status : evaluation.passed ? 'passed' : 'not passed';
    return [
      this.chunk(
        { reasoning_content: `Evaluation (${evaluation.kind}): ${verdict}. ${evaluation.summary}\n` },
        {},
      ),
    ];
  }

  private last(
    status: RunStatus,
    usage: UsageTotals,
    jetty_event: ChatCompletionChunk['jetty_event'],
    error?: RunError,
    network?: NetworkSummary,
    evaluation?: Evaluation,
  ): ChatCompletionChunk {
    const meta: JettyMetadata = { trajectory_id: this.ctx.runId, status, artifacts: this.artifacts };
    if (this.ctx.primaryOutputs?.length) meta.primary_outputs = this.ctx.primaryOutputs;
    if (this.warnings.length) meta.warnings = this.warnings;
    if (network) meta.network = network;
    if (error) meta.error = error;
    if (evaluation) meta.evaluation = evaluation;
    const c = this.chunk({}, { jetty_metadata: meta, jetty_event, usage: toChatUsage(usage) });
    c.choices[0]!.finish_reason = 'stop';
    return c;
  }

  private chunk(
    delta: ChatCompletionChunk['choices'][number]['delta'],
    extra: Partial<Pick<ChatCompletionChunk, 'usage' | 'jetty_metadata' | 'jetty_event'>>,
  ): ChatCompletionChunk {
    return {
      id: completionId(this.ctx.runId),
      object: 'chat.completion.chunk',
      created: this.ctx.created,
      model: this.ctx.model,
      choices: [{ index: 0, delta, finish_reason: null }],
      ...extra,
    };
  }
}

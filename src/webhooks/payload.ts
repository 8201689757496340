import { posix } from 'node:path';
import { artifactUrl } from '../events/chunk-mapper.js';
import type { ArtifactInfo, RunError, RunStatus, UsageTotals } from '../events/types.js';
import type { RunRecord } from '../queue/run-store.js';

/**
 * The body POSTed to a run's webhook, shaped after Jetty's trajectory callback
 * (`{name, trajectory_id, status, storage_path, steps, completed_steps, total_steps, init_params}`)
 * with what this server knows of a run: one step, `run`, whose outputs list the collected files.
 */
export interface WebhookFile {
  /** Relative to the run's results_dir, with forward slashes. */
  path: string;
  name: string;
  /** The file name's suffix with its dot (`.md`), or '' (as Python's Path.suffix, which Jetty uses). */
  extension: string;
  content_type: string;
  size: number;
  sha256: string;
  /** GET this path on the server for the file's bytes. */
  download_path: string;
}

export interface WebhookUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number | null;
  cost_estimated: boolean;
  duration_seconds: number | null;
}

export interface WebhookPayload {
  /** `<collection>/<task>`, or `<collection>/run` for a run with no task. */
  name: string;
  trajectory_id: string;
  status: RunStatus;
  /** Where the run's files are served: each file's download_path is under it. */
  storage_path: string;
  created: string;
  ended: string | null;
  error: RunError | null;
  steps: {
    run: {
      activity: 'runbook';
      status: RunStatus;
      created: string;
      ended: string | null;
      duration_seconds: number | null;
      error: RunError | null;
      outputs: {
        success: boolean;
        final_text: string | null;
        files: WebhookFile[];
        results_files: WebhookFile[];
        /** The runbook's required outputs that exist, in the runbook's order; every file when it names none. */
        primary_files: WebhookFile[];
        missing_outputs: string[];
        usage: WebhookUsage;
      };
    };
  };
  completed_steps: string[];
  total_steps: string[];
  init_params: { agent: string; model: string; model_provider: string; timeout_sec: number };
}

/** What the payload needs of the run's input (the trajectory's `input` of a runbook run). */
export interface PayloadInput {
  resultsDir: string;
  requiredOutputs: string[];
}

export function webhookName(run: Pick<RunRecord, 'collection' | 'task'>): string {
  return `${run.collection}/${run.task ?? 'run'}`;
}

export function buildWebhookPayload(run: RunRecord, input: PayloadInput | null): WebhookPayload {
  const files = run.artifacts.map((a) => fileOf(run.id, a));
  const started = run.started_at ?? run.created_at;
  const durationSec = run.duration_ms === null ? null : run.duration_ms / 1000;
  return {
    name: webhookName(run),
    trajectory_id: run.id,
    status: run.status,
    storage_path: `/v1/runs/${encodeURIComponent(run.id)}/artifacts`,
    created: run.created_at,
    ended: run.ended_at,
    error: run.error,
    steps: {
      run: {
        activity: 'runbook',
        status: run.status,
        created: started,
        ended: run.ended_at,
        duration_seconds: durationSec,
        error: run.error,
        outputs: {
          success: run.status === 'completed',
          final_text: run.final_text,
          files,
          results_files: files,
          primary_files: primaryFiles(files, input),
          missing_outputs: run.missing_outputs,
          usage: usageOf(run.usage, durationSec),
        },
      },
    },
    completed_steps: run.status === 'completed' ? ['run'] : [],
    total_steps: ['run'],
    init_params: {
      agent: run.agent,
      model: run.model,
      model_provider: run.provider,
      timeout_sec: run.timeout_sec,
    },
  };
}

function fileOf(runId: string, a: ArtifactInfo): WebhookFile {
  const name = posix.basename(a.path);
  return {
    path: a.path,
    name,
    extension: posix.extname(name),
    content_type: a.content_type,
    size: a.size,
    sha256: a.sha256,
    download_path: artifactUrl(runId, a.path),
  };
}

function primaryFiles(files: WebhookFile[], input: PayloadInput | null): WebhookFile[] {
  if (!input || input.requiredOutputs.length === 0) return files;
  const byPath = new Map(files.map((f) => [f.path, f]));
  const out: WebhookFile[] = [];
  for (const p of input.requiredOutputs) {
    const f = byPath.get(posix.relative(input.resultsDir, p));
    if (f) out.push(f);
  }
  return out;
}

function usageOf(u: UsageTotals, durationSec: number | null): WebhookUsage {
  const prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output_tokens,
    total_tokens: prompt + u.output_tokens,
    input_tokens: u.input_tokens,
    output_tokens: u.output_tokens,
    cache_read_tokens: u.cache_read_tokens,
    cache_write_tokens: u.cache_write_tokens,
    cost_usd: u.cost_usd,
    cost_estimated: u.cost_estimated,
    duration_seconds: durationSec,
  };
}

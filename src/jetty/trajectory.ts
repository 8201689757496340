/**
 * A run as Jetty's SDK reads it: the `Trajectory` of `@jetty/sdk` (name, status, steps keyed by
 * name, labels, init_params, ...), with the one step `run` whose outputs list the files by storage
 * key. A storage key is `<collection>/<task>/<run id>/<path under results_dir>`; the first segment
 * is the owner (GET /api/v1/file/<key> checks it), and every segment is percent-encoded where
 * needed, so a key always splits back the same way.
 */
import { posix } from 'node:path';
import { artifactUrl, toChatUsage } from '../events/chunk-mapper.js';
import type { ArtifactInfo, UsageTotals } from '../events/types.js';
import type { RunLabel, RunView, Trajectory } from '../queue/run-service.js';

export type RunInput = Trajectory['input'];

const seg = (s: string) => encodeURIComponent(s);

/** The task segment of a run's keys: its task, or `run` for a chat run without one. */
export function taskOf(run: Pick<RunView, 'task'>): string {
  return run.task ?? 'run';
}

/** Where the run's files live, as Jetty's `storage_path`. */
export function storagePath(run: Pick<RunView, 'collection' | 'task' | 'id'>): string {
  return `${seg(run.collection)}/${seg(taskOf(run))}/${seg(run.id)}`;
}

export function fileKey(run: Pick<RunView, 'collection' | 'task' | 'id'>, relPath: string): string {
  return `${storagePath(run)}/${relPath.split('/').map(seg).join('/')}`;
}

export interface FileKeyParts {
  collection: string;
  task: string;
  /** A run id, or `_uploads/<id>` keys' upload id. */
  id: string;
  /** The path below the run's (or upload's) directory; never empty, never with `.` or `..`. */
  relPath: string;
  kind: 'artifact' | 'upload';
}

/**
 * Splits a storage key (already percent-decoded once per segment, as the route gives it) into its
 * parts, or null when it cannot be one: too short, an empty, `.` or `..` segment, a backslash or NUL.
 */
export function parseFileKey(segments: readonly string[]): FileKeyParts | null {
  if (segments.length < 4) return null;
  if (segments.some((s) => s === '' || s === '.' || s === '..' || /[\\\0]/.test(s))) return null;
  const [collection, task, id, ...rest] = segments as [string, string, string, ...string[]];
  // Only a task (a chat run's free-form `jetty.task`) may hold an encoded "/": a path segment or
  // an id holding one was made up by the client, not by fileKey.
  if ([collection, id, ...rest].some((s) => s.includes('/'))) return null;
  return {
    collection,
    task,
    id,
    relPath: rest.join('/'),
    kind: task === UPLOADS_TASK ? 'upload' : 'artifact',
  };
}

/** The task segment of uploaded files' keys: `<collection>/_uploads/<upload id>/<name>`. */
export const UPLOADS_TASK = '_uploads';

export interface JettyFile {
  /** The storage key: GET /api/v1/file/<path> downloads it. */
  path: string;
  name: string;
  /** Without the dot, as Jetty's outputs have it (`md`). */
  extension: string;
  content_type: string;
  size: number;
  sha256: string;
  /** The same file under /v1/runs. */
  url: string;
}

function fileOf(run: RunView, a: ArtifactInfo): JettyFile {
  const name = posix.basename(a.path);
  return {
    path: fileKey(run, a.path),
    name,
    extension: posix.extname(name).replace(/^\./, ''),
    content_type: a.content_type,
    size: a.size,
    sha256: a.sha256,
    url: artifactUrl(run.id, a.path),
  };
}

function usageOf(u: UsageTotals, durationSec: number | null) {
  // The OpenAI-style counts exactly as a chat completion's `usage` has them.
  const { prompt_tokens, completion_tokens, total_tokens } = toChatUsage(u);
  return {
    prompt_tokens,
    completion_tokens,
    total_tokens,
    input_tokens: u.input_tokens,
    output_tokens: u.output_tokens,
    cache_read_tokens: u.cache_read_tokens,
    cache_write_tokens: u.cache_write_tokens,
    cost_usd: u.cost_usd,
    cost_estimated: u.cost_estimated,
    duration_seconds: durationSec,
  };
}

function runbookInput(input: RunInput) {
  return input && 'resultsDir' in input ? input : null;
}

/** The files named by `primary_outputs` (else the required outputs, else all), in that order. */
function primaryFiles(files: JettyFile[], run: RunView, input: RunInput): JettyFile[] {
  const rb = runbookInput(input);
  const wanted = rb ? (rb.primaryOutputs?.length ? rb.primaryOutputs : rb.requiredOutputs) : [];
  if (!rb || wanted.length === 0) return files;
  const byPath = new Map(run.artifacts.map((a, i) => [a.path, files[i]!]));
  return wanted.flatMap((p) => byPath.get(posix.relative(rb.resultsDir, p)) ?? []);
}

/** Who the labels this server derives (evaluation, experiment) name as their author. */
export const DERIVED_LABEL_AUTHOR = 'jetty-evaluator';

/**
 * Labels as Jetty carries eval results (`eval.pass`, `eval.grade`, `score.<criterion>`), and the
 * run's own labels (an experiment's id and variant), ahead of the ones users added: a reader that
 * takes the latest value of a key sees the user's.
 */
export function derivedLabels(run: RunView): RunLabel[] {
  const out: RunLabel[] = [];
  const add = (key: string, value: string, created: string) =>
    out.push({ key, value, created, author: DERIVED_LABEL_AUTHOR });
  for (const [k, v] of Object.entries(run.labels ?? {})) add(k, v, run.created_at);
  const e = run.evaluation;
  if (!e) return out;
  add('eval.kind', e.kind, e.evaluated_at);
  add('eval.status', e.status, e.evaluated_at);
  if (e.passed !== null) add('eval.pass', String(e.passed), e.evaluated_at);
  if (e.score !== null) add('eval.grade', String(e.score), e.evaluated_at);
  if (e.judge_model) add('eval.judge', e.judge_model, e.evaluated_at);
  for (const [key, r] of Object.entries(e.rubric_scores ?? {}))
    add(`score.${key}`, String(r.score), e.evaluated_at);
  return out;
}

export function jettyTrajectory(run: RunView, input: RunInput, labels: RunLabel[]) {
  const files = run.artifacts.map((a) => fileOf(run, a));
  const durationSec = run.duration_ms === null ? null : run.duration_ms / 1000;
  const rb = runbookInput(input);
  const initParams = rb?.initParams ?? {
    agent: run.agent,
    model: run.model,
    model_provider: run.provider,
  };
  const terminal = run.status === 'completed' || run.status === 'failed' || run.status === 'cancelled';
  const error = run.error ? run.error.message : run.status === 'cancelled' ? 'The run was cancelled.' : null;
  const stepConfig = {
    activity: 'runbook',
    agent: run.agent,
    model: run.model,
    model_provider: run.provider,
    timeout_sec: run.timeout_sec,
  };
  return {
    name: `${run.collection}/${taskOf(run)}`,
    trajectory_id: run.id,
    storage_path: storagePath(run),
    status: run.status,
    attributes: { asset_type: '', asset_filename: '', created: run.created_at, params: {} },
    created: run.created_at,
    updated: run.ended_at ?? run.started_at ?? run.created_at,
    author: run.collection,
    metadata_uri: '',
    steps: {
      run: {
        inputs: initParams,
        outputs: {
          success: run.status === 'completed',
          final_text: run.final_text,
          files,
          results_files: files,
          primary_files: primaryFiles(files, run, input),
          missing_outputs: run.missing_outputs,
          usage: usageOf(run.usage, durationSec),
          // How the run scored (docs/evaluation.md); the agent's own report is its `agent_report`.
          evaluation: run.evaluation ?? null,
        },
        activity: 'runbook',
        key: 'run',
        depends_on: [] as string[],
        created: run.started_at ?? run.created_at,
        ended: run.ended_at ?? '',
        duration_seconds: durationSec,
        author: run.collection,
        origin: {},
        config: stepConfig,
        status: run.status,
        error: run.error,
      },
    },
    labels: [...derivedLabels(run), ...labels],
    total_steps: ['run'],
    completed_steps: run.status === 'completed' ? ['run'] : ([] as string[]),
    init_params: initParams,
    step_configs: { run: stepConfig },
    org_id: null,
    error: terminal ? error : null,
    triggered_by_routine_id: null,
    webhook_url: run.webhook?.url ?? null,
    evaluation: run.evaluation ?? null,
    // Beyond Jetty's fields: this server's own view of the same run.
    run: {
      agent: run.agent,
      model: run.model,
      provider: run.provider,
      events_url: `/v1/runs/${run.id}/events`,
      record_url: `/v1/runs/${run.id}`,
    },
  };
}

export type JettyTrajectory = ReturnType<typeof jettyTrajectory>;

/** Jetty's `workflow_id`: `<collection>/<task>--<id>` with each `/` made `-`. */
export function workflowId(run: Pick<RunView, 'collection' | 'task' | 'id'>): string {
  return `${run.collection}/${taskOf(run)}--${run.id}`.replaceAll('/', '-');
}

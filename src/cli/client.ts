import { openAsBlob } from 'node:fs';
import { basename } from 'node:path';
import { SseParser } from '../events/sse-parser.js';
import type { VariantFigures } from '../experiments/figures.js';
import { CliError, EXIT } from './exit.js';

/** The fields of a run record the CLI reads (the server sends more). */
export interface RunRecord {
  id: string;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  agent: string;
  model: string;
  provider: string;
  task: string | null;
  created_at: string;
  duration_ms: number | null;
  usage: { input_tokens: number; output_tokens: number; cost_usd: number | null };
  error: { code: string; message: string } | null;
  artifacts: { path: string; size: number; sha256: string; content_type: string }[];
  missing_outputs?: string[];
  /** Added by a later server version; shown when present. */
  evaluation?: unknown;
}

/** The fields of an experiment the CLI reads. */
export interface ExperimentView {
  id: string;
  status: 'running' | 'completed' | 'cancelled';
  grader: { kind: string | null; judge_model: string | null; judge_provider: string | null };
  /** As the server computes them (src/experiments/figures.ts); the CLI reads these fields. */
  variants: Pick<
    VariantFigures,
    | 'name'
    | 'runs'
    | 'completed'
    | 'ended'
    | 'passed'
    | 'pass_rate'
    | 'pass_rate_ci'
    | 'mean_score'
    | 'median_duration_ms'
    | 'mean_cost_usd'
    | 'tokens'
  >[];
}

/** One event as the server stores and streams it. */
export interface RunEvent {
  id: string;
  type: string;
  ts: number;
  data: Record<string, unknown>;
}

export interface RunsPage {
  data: RunRecord[];
  next_cursor: string | null;
}

/**
 * The CLI's only way to the server: its public HTTP API with the collection's key. An error
 * envelope becomes a CliError with the server's own message (it names the field and the fix); a
 * connection that cannot be made becomes "unreachable", naming the URL and how to change it.
 */
export class JettyClient {
  constructor(
    readonly baseUrl: string,
    private readonly key: string | undefined,
  ) {}

  async submitRun(body: unknown, idempotencyKey: string): Promise<{ id: string; status: string }> {
    const res = await this.fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify(body),
    });
    // 424 is a run that already failed while we waited (timeout_hint 0 makes that rare): still a run.
    if (res.status === 424 || res.ok) {
      const j = (await res.json()) as { jetty_metadata?: { trajectory_id?: string; status?: string } };
      const id = j.jetty_metadata?.trajectory_id;
      if (id) return { id, status: j.jetty_metadata?.status ?? 'pending' };
    }
    throw await apiError(res, 'POST /v1/chat/completions');
  }

  /** Uploads local files (zips are unpacked by the server) and returns their storage keys. */
  async upload(paths: string[]): Promise<string[]> {
    const form = new FormData();
    for (const p of paths) form.append('files', await openAsBlob(p), basename(p));
    const res = await this.fetch('/api/v1/sandbox/upload', { method: 'POST', body: form });
    if (!res.ok) throw await apiError(res, 'POST /api/v1/sandbox/upload');
    return ((await res.json()) as { file_paths: string[] }).file_paths;
  }

  getRun(id: string): Promise<RunRecord> {
    return this.json(`/v1/runs/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Promise<RunRecord> {
    return this.json(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  listRuns(q: { limit?: number; cursor?: string; status?: string; task?: string }): Promise<RunsPage> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.json(`/v1/runs${qs ? `?${qs}` : ''}`);
  }

  async trajectoryEvents(id: string): Promise<RunEvent[]> {
    const t = await this.json<{ events: RunEvent[] }>(`/v1/runs/${encodeURIComponent(id)}/trajectory`);
    return t.events;
  }

  /** One connection to the run's event stream, from after `after`; ends when the server ends it. */
  async *events(
    id: string,
    after: string | undefined,
    opts: { signal: AbortSignal; maxEventBytes: number },
  ): AsyncGenerator<RunEvent> {
    const res = await this.fetch(`/v1/runs/${encodeURIComponent(id)}/events`, {
      headers: { accept: 'text/event-stream', ...(after ? { 'last-event-id': after } : {}) },
      signal: opts.signal,
    });
    if (!res.ok || !res.body) throw await apiError(res, `GET /v1/runs/${id}/events`);
    const parser = new SseParser(opts.maxEventBytes);
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      for (const m of parser.push(decoder.decode(chunk, { stream: true }))) {
        yield { ...(JSON.parse(m.data) as RunEvent), id: m.id ?? '' };
      }
    }
  }

  /** POST /v1/experiments (jetty ab). */
  createExperiment(body: unknown): Promise<ExperimentView> {
    return this.json('/v1/experiments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  getExperiment(id: string): Promise<ExperimentView> {
    return this.json(`/v1/experiments/${encodeURIComponent(id)}`);
  }

  cancelExperiment(id: string): Promise<ExperimentView> {
    return this.json(`/v1/experiments/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  /** The experiment's progress stream: the whole experiment each time a figure changes. */
  async *experimentEvents(
    id: string,
    opts: { signal: AbortSignal; maxEventBytes: number },
  ): AsyncGenerator<ExperimentView> {
    const res = await this.fetch(`/v1/experiments/${encodeURIComponent(id)}/events`, {
      headers: { accept: 'text/event-stream' },
      signal: opts.signal,
    });
    if (!res.ok || !res.body) throw await apiError(res, `GET /v1/experiments/${id}/events`);
    const parser = new SseParser(opts.maxEventBytes);
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      for (const m of parser.push(decoder.decode(chunk, { stream: true })))
        yield JSON.parse(m.data) as ExperimentView;
    }
  }

  /** GET of a path the server gave (an artifact url), as a streaming response. */
  async download(path: string): Promise<Response> {
    const res = await this.fetch(path);
    if (!res.ok) throw await apiError(res, `GET ${path}`);
    return res;
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.fetch(path, init);
    if (!res.ok) throw await apiError(res, `${init.method ?? 'GET'} ${path.split('?')[0]}`);
    return (await res.json()) as T;
  }

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.key) headers.set('authorization', `Bearer ${this.key}`);
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...init, headers });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw unreachable(this.baseUrl, err);
    }
  }
}

/** "connect ECONNREFUSED 127.0.0.1:8080" rather than undici's "fetch failed". */
function causeOf(err: unknown): string {
  const c = (err as { cause?: { code?: string; message?: string } }).cause;
  return c?.message ?? c?.code ?? (err as Error).message;
}

export function unreachable(url: string, err: unknown): CliError {
  return new CliError(
    `cannot reach the server at ${url} (${causeOf(err)}). Is it running? Point the CLI at it with --server URL or JETTY_URL.`,
    EXIT.unreachable,
  );
}

async function apiError(res: Response, what: string): Promise<CliError> {
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 500) || res.statusText;
  try {
    const e = (JSON.parse(text) as { error?: { message?: string } }).error;
    if (e?.message) message = e.message;
  } catch {
    // Not the JSON envelope (a proxy's page, say): its first characters say enough.
  }
  return new CliError(`${what}: HTTP ${res.status}: ${message}`, EXIT.apiError, res.status);
}

import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { notFound } from '../errors.js';
import type { EventStreamStore } from '../events/stream-store.js';
import { isTerminalEvent, type NewEvent, type StoredEvent } from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';
import type { BlobStore } from '../storage/blob-store.js';
import { JOBS, type RunJob } from './catalog.js';
import { type RedisKeys, RUN_QUEUE } from './keys.js';
import { type RunRecord, RunStore } from './run-store.js';

/** The whole recorded run, as GET /v1/runs/{id}/trajectory returns it and the blob store keeps it. */
export interface Trajectory {
  object: 'trajectory';
  run: RunRecord;
  /** A runbook run's input, or a passthrough call's request. */
  input:
    | Pick<RunJob, 'runbook' | 'instruction' | 'resultsDir' | 'requiredOutputs'>
    | { request: Record<string, unknown> }
    | null;
  events: StoredEvent[];
}

export interface RunServiceDeps {
  redis: Redis;
  keys: RedisKeys;
  events: EventStreamStore;
  blobs: BlobStore;
  retentionSec: number;
}

export function newRunId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * Everything the API does with runs: create and enqueue, read, list, cancel, follow. It talks only
 * to Redis and the blob store, so any number of API processes can serve the same runs.
 */
export class RunService {
  readonly store: RunStore;
  readonly queue: Queue;

  constructor(private readonly deps: RunServiceDeps) {
    this.store = new RunStore(deps.redis, deps.keys);
    this.queue = new Queue(RUN_QUEUE, {
      connection: deps.redis,
      prefix: deps.keys.bullPrefix(),
      defaultJobOptions: {
        attempts: JOBS.run.attempts,
        backoff: JOBS.run.backoff,
        removeOnComplete: { age: 3600, count: 1000 },
        removeOnFail: { age: 24 * 3600, count: 1000 },
      },
    });
  }

  get events(): EventStreamStore {
    return this.deps.events;
  }

  /**
   * Creates the run record, its first event and its job (job id = run id). With an idempotency key,
   * a repeated request returns the run the first one created and enqueues nothing.
   */
  async create(
    job: Omit<RunJob, 'runId'>,
    meta: { collection: string | null; task: string | null; idempotencyKey?: string },
  ): Promise<{ record: RunRecord; created: boolean }> {
    const runId = newRunId();
    if (meta.idempotencyKey) {
      const key = this.deps.keys.idempotency(meta.idempotencyKey);
      const ok = await this.deps.redis.set(key, runId, 'EX', 24 * 3600, 'NX');
      if (ok !== 'OK') {
        const existing = await this.deps.redis.get(key);
        const rec = existing ? await this.get(existing) : null;
        if (rec) return { record: rec, created: false };
        await this.deps.redis.set(key, runId, 'EX', 24 * 3600);
      }
    }
    const payload = JOBS.run.schema.parse({ ...job, runId });
    const record = RunStore.newRecord({
      id: runId,
      agent: job.agent,
      model: job.model,
      provider: job.provider,
      collection: meta.collection,
      task: meta.task,
      timeout_sec: job.timeoutSec,
    });
    await this.store.create(record);
    await this.deps.redis.set(this.inputKey(runId), JSON.stringify(inputOf(payload)));
    await this.deps.events.append(runId, {
      type: 'run.queued',
      data: { agent: job.agent, model: job.model, provider: job.provider },
    });
    await this.queue.add(JOBS.run.name, payload, { jobId: runId });
    return { record, created: true };
  }

  /**
   * A plain LLM call (no `jetty` block), recorded as a one-step run that is already running: the
   * API process makes the call itself, so there is no job. End it with `store.transition` and
   * `finish`, as a worker ends a runbook run.
   */
  async recordPassthrough(init: {
    model: string;
    provider: ProviderName;
    task: string;
    request: Record<string, unknown>;
  }): Promise<RunRecord> {
    const record: RunRecord = {
      ...RunStore.newRecord({
        id: newRunId(),
        agent: 'passthrough',
        model: init.model,
        provider: init.provider,
        collection: null,
        task: init.task,
        timeout_sec: 0,
      }),
      status: 'running',
      started_at: new Date().toISOString(),
    };
    await this.store.create(record);
    await this.deps.redis.set(this.inputKey(record.id), JSON.stringify({ request: init.request }));
    return record;
  }

  /** The run from Redis, or from the blob store once Redis has let it go. */
  async get(id: string): Promise<RunRecord | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    return (await this.store.get(id)) ?? (await this.deps.blobs.readTrajectory<Trajectory>(id))?.run ?? null;
  }

  async require(id: string): Promise<RunRecord> {
    const rec = await this.get(id);
    if (!rec)
      throw notFound(
        `No run with id "${id}". Check the id returned as jetty_metadata.trajectory_id.`,
        'run_not_found',
      );
    return rec;
  }

  async list(opts: { limit: number; cursor?: number; status?: string; task?: string }): Promise<{
    data: RunRecord[];
    next_cursor: string | null;
  }> {
    const out: RunRecord[] = [];
    let cursor = opts.cursor;
    // Filters are applied while paging through the index, so a page is full unless the index ends.
    for (let rounds = 0; out.length < opts.limit && rounds < 50; rounds++) {
      const { ids, scores } = await this.store.listIds(opts.limit * 2, cursor);
      if (ids.length === 0) {
        cursor = undefined;
        break;
      }
      for (let i = 0; i < ids.length && out.length < opts.limit; i++) {
        cursor = scores[i];
        const rec = await this.get(ids[i]!);
        if (!rec) continue;
        if (opts.status && rec.status !== opts.status) continue;
        if (opts.task && rec.task !== opts.task) continue;
        out.push(rec);
      }
      if (ids.length < opts.limit * 2) {
        if (out.length < opts.limit) cursor = undefined;
        break;
      }
    }
    return {
      data: out,
      next_cursor: out.length === opts.limit && cursor !== undefined ? String(cursor) : null,
    };
  }

  async trajectory(id: string): Promise<Trajectory> {
    const stored = await this.deps.blobs.readTrajectory<Trajectory>(id);
    if (stored) return stored;
    const run = await this.require(id);
    const raw = await this.deps.redis.get(this.inputKey(id));
    return {
      object: 'trajectory',
      run,
      input: raw ? JSON.parse(raw) : null,
      events: await this.deps.events.readAll(id),
    };
  }

  /**
   * Cancels a run. A pending one is cancelled here and now; a running one is flagged and announced
   * to the workers, which stop its sandbox and record the end. A finished run is left as it is.
   */
  async cancel(id: string): Promise<RunRecord> {
    const rec = await this.require(id);
    if (rec.status === 'pending') {
      const now = new Date();
      const { moved } = await this.store.transition(id, ['pending'], 'cancelled', {
        ended_at: now.toISOString(),
        duration_ms: now.getTime() - Date.parse(rec.created_at),
        cancel_requested: true,
      });
      if (moved) {
        await this.queue.remove(id).catch(() => undefined);
        await this.finish(id, {
          type: 'run.cancelled',
          data: { reason: 'cancelled by request before it started', usage: rec.usage, duration_ms: 0 },
        });
        return this.require(id);
      }
    }
    const now = await this.require(id);
    if (now.status === 'running') {
      await this.store.update(id, { cancel_requested: true });
      await this.deps.redis.publish(this.deps.keys.cancelChannel(), id);
    }
    return now;
  }

  /**
   * Appends the terminal event (the record already holds the final status), writes the trajectory
   * to the blob store, and lets Redis forget the run after the retention period.
   */
  async finish(id: string, terminal: NewEvent): Promise<void> {
    if (!isTerminalEvent(terminal.type)) throw new Error(`not a terminal event: ${terminal.type}`);
    await this.deps.events.append(id, terminal);
    const traj = await this.trajectory(id);
    await this.deps.blobs.writeTrajectory(id, traj);
    const ttl = this.deps.retentionSec;
    await Promise.all([
      this.store.expire(id, ttl),
      this.deps.events.expire(id, ttl),
      this.deps.redis.expire(this.inputKey(id), ttl),
    ]);
  }

  /**
   * Events after `afterId`, then live ones until the terminal event. A run Redis no longer holds
   * is replayed from its stored trajectory.
   */
  async *follow(id: string, afterId: string, signal: AbortSignal): AsyncGenerator<StoredEvent> {
    if (!(await this.store.get(id))) {
      const traj = await this.deps.blobs.readTrajectory<Trajectory>(id);
      if (!traj) throw notFound(`No run with id "${id}".`, 'run_not_found');
      for (const ev of traj.events) if (afterId === '0' || compareIds(ev.id, afterId) > 0) yield ev;
      return;
    }
    yield* this.deps.events.follow(id, afterId, signal);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  private inputKey(id: string): string {
    return `${this.deps.keys.run(id)}:input`;
  }
}

function inputOf(job: RunJob): Trajectory['input'] {
  return {
    runbook: job.runbook,
    instruction: job.instruction,
    resultsDir: job.resultsDir,
    requiredOutputs: job.requiredOutputs,
  };
}

/** Orders Redis Stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am === bm ? as - bs : am - bm;
}

import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { type AppError, badRequest, notFound } from '../errors.js';
import { withEvaluation } from '../evaluation/history.js';
import type { Evaluation } from '../evaluation/record.js';
import { compareIds, type EventStreamStore } from '../events/stream-store.js';
import { isTerminalEvent, type NewEvent, type RunWarning, type StoredEvent } from '../events/types.js';
import type { Metrics } from '../metrics/registry.js';
import type { ProviderName } from '../runtimes/types.js';
import { singleFlight } from '../single-flight.js';
import type { BlobStore } from '../storage/blob-store.js';
import { type EvaluateJob, JOBS, type RunJob, webhookJobId } from './catalog.js';
import { ConversationStore } from './conversation-store.js';
import { ExperimentStore } from './experiment-store.js';
import { EVALUATE_QUEUE, type RedisKeys, RUN_QUEUE, WEBHOOK_QUEUE } from './keys.js';
import { type RunRecord, RunStore } from './run-store.js';

/** Where a run's end is POSTed. The secret goes into the delivery job and nowhere else. */
export interface WebhookTarget {
  url: string;
  secret?: string | undefined;
}

/** What a request asks for: the run's job, and the webhook to call when the run ends. */
export type NewRun = Omit<RunJob, 'runId' | 'evaluation' | 'labels'> &
  Partial<Pick<RunJob, 'evaluation' | 'labels'>> & { webhook?: WebhookTarget | undefined };

/** One try at delivering a run's webhook, as the run record shows it. */
export interface WebhookDelivery {
  attempt: number;
  /** When the try started (ISO 8601). */
  at: string;
  /** The receiver's HTTP status, or null when it did not answer. */
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

/** A run's webhook on its record: the URL and how delivery went, never the secret. */
export interface WebhookInfo {
  url: string;
  /** pending: not tried yet (the run may still be going); retrying: a try failed, another is due. */
  state: 'pending' | 'retrying' | 'delivered' | 'failed';
  deliveries: WebhookDelivery[];
}

/** A label on a run, as Jetty's trajectories carry them. */
export interface RunLabel {
  key: string;
  value: string;
  author: string;
  created: string;
}

/** A run record, with its webhook when it has one. */
export type RunView = RunRecord & { webhook?: WebhookInfo };

// Writes one field of the run hash only while the hash exists: a delivery that ends after Redis
// let the run go must not bring back a husk of it. KEYS[1] = run hash; ARGV = field, value.
const SET_IF_EXISTS = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
`;

/** A delivery waits this long past the run's deadline for a release it may never get (see finish()). */
const WEBHOOK_FALLBACK_MS = 60_000;

/** The whole recorded run, as GET /v1/runs/{id}/trajectory returns it and the blob store keeps it. */
export interface Trajectory {
  object: 'trajectory';
  run: RunView;
  /** A runbook run's input, or a passthrough call's request. */
  input:
    | (Pick<RunJob, 'runbook' | 'instruction' | 'resultsDir' | 'requiredOutputs' | 'primaryOutputs'> & {
        /** How the run is scored (absent for runs queued before evaluation existed). */
        evaluation?: RunJob['evaluation'];
        /** For runs started through /api/v1: the submitted init_params (secret_params never). */
        initParams?: Record<string, unknown>;
        /** A follow-up turn that could not resume its CLI session: the earlier turns it was told. */
        history?: string;
      })
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
  /** Tries per webhook delivery and the first backoff (it doubles); the job catalog's by default. */
  webhooks?: { attempts: number; backoffMs: number };
  /** Counts the runs cancelled before a worker took them (workers count the others' ends). */
  metrics?: Metrics;
}

/** A path inside results_dir as the artifacts list names it (relative); one outside it stays absolute. */
export function relativeToResults(p: string, resultsDir: string): string {
  const rel = posix.relative(resultsDir, p);
  return rel.startsWith('..') || posix.isAbsolute(rel) ? p : rel;
}

/**
 * 16 hex digits. Never all decimal digits: the run id is the BullMQ job id, and BullMQ refuses a
 * custom job id that reads as an integer (about 1 id in 1,850 would otherwise fail to enqueue).
 */
export function newRunId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (!/^\d+$/.test(id)) return id;
  }
}

/**
 * Everything the API does with runs: create and enqueue, read, list, cancel, follow. It talks only
 * to Redis and the blob store, so any number of API processes can serve the same runs.
 */
export class RunService {
  readonly store: RunStore;
  readonly conversations: ConversationStore;
  readonly queue: Queue;
  readonly webhookQueue: Queue;
  readonly evaluateQueue: Queue;
  /** A/B experiments (their runs are ordinary runs, labelled with the experiment and variant). */
  readonly experiments: ExperimentStore;
  private readonly ownerOf: (id: string) => Promise<string | null>;
  private readonly lastEventOf: (id: string) => Promise<StoredEvent | null>;

  constructor(private readonly deps: RunServiceDeps) {
    this.store = new RunStore(deps.redis, deps.keys);
    // The reads every follower of a run makes when it joins, shared by those that join together.
    this.ownerOf = singleFlight((id) => this.store.collectionOf(id));
    this.lastEventOf = singleFlight((id) => deps.events.last(id));
    // A conversation outlives its last turn's start by the runs' retention, and a day for the run itself.
    this.conversations = new ConversationStore(deps.redis, deps.keys, deps.retentionSec + 24 * 3600);
    this.experiments = new ExperimentStore(deps.redis, deps.keys, deps.retentionSec);
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
    this.webhookQueue = new Queue(WEBHOOK_QUEUE, {
      connection: deps.redis,
      prefix: deps.keys.bullPrefix(),
      defaultJobOptions: {
        attempts: deps.webhooks?.attempts ?? JOBS.webhook.attempts,
        backoff: { type: 'exponential', delay: deps.webhooks?.backoffMs ?? JOBS.webhook.backoff.delay },
        // The job holds the secret, so it goes once done; the run record keeps the outcome.
        removeOnComplete: true,
        removeOnFail: true,
      },
    });
    this.evaluateQueue = new Queue(EVALUATE_QUEUE, {
      connection: deps.redis,
      prefix: deps.keys.bullPrefix(),
      defaultJobOptions: {
        attempts: JOBS.evaluate.attempts,
        backoff: JOBS.evaluate.backoff,
        removeOnComplete: { age: 3600, count: 1000 },
        removeOnFail: { age: 24 * 3600, count: 1000 },
      },
    });
    // Connection trouble is logged once by the connection's owner; unheard, BullMQ prints it.
    this.queue.on('error', () => undefined);
    this.webhookQueue.on('error', () => undefined);
    this.evaluateQueue.on('error', () => undefined);
  }

  get events(): EventStreamStore {
    return this.deps.events;
  }

  /**
   * Creates the run record, its first event and its job (job id = run id). With an idempotency key,
   * a repeated request returns the run the first one created and enqueues nothing. A webhook's
   * delivery job is enqueued with it, delayed: the run's end releases it (see finish()).
   */
  async create(
    job: NewRun,
    meta: {
      collection: string;
      task: string | null;
      idempotencyKey?: string;
      /** Seals this run's own secret values for its job, once the run id is known. */
      sealSecrets?: (runId: string) => string;
      /** What the run started with, kept for the Jetty trajectory view (no secrets in them). */
      initParams?: Record<string, unknown>;
      /** The pre-flight's warnings: on the record, and `run.warning` events right after `run.queued`. */
      warnings?: RunWarning[];
      /** The id to give the run, when the caller needed it before (a conversation's turn). */
      runId?: string;
    },
  ): Promise<{ record: RunView; created: boolean }> {
    const runId = meta.runId ?? newRunId();
    if (meta.idempotencyKey) {
      // Per collection: one team's key can neither find nor block another team's run.
      const key = this.deps.keys.idempotency(`${meta.collection}:${meta.idempotencyKey}`);
      const ok = await this.deps.redis.set(key, runId, 'EX', 24 * 3600, 'NX');
      if (ok !== 'OK') {
        const existing = await this.deps.redis.get(key);
        const rec = existing ? await this.get(existing, meta.collection) : null;
        if (rec) return { record: rec, created: false };
        await this.deps.redis.set(key, runId, 'EX', 24 * 3600);
      }
    }
    const { webhook, ...runJob } = job;
    const sealed = meta.sealSecrets?.(runId);
    const payload = JOBS.run.schema.parse({
      ...runJob,
      runId,
      ...(sealed !== undefined ? { secretParams: sealed } : {}),
    });
    const delivery = webhook ? JOBS.webhook.schema.parse({ ...webhook, runId }) : null;
    const record: RunView = {
      ...RunStore.newRecord({
        id: runId,
        agent: job.agent,
        model: job.model,
        provider: job.provider,
        collection: meta.collection,
        task: meta.task,
        timeout_sec: job.timeoutSec,
      }),
      primary_outputs: job.primaryOutputs.map((p) => relativeToResults(p, job.resultsDir)),
      warnings: meta.warnings ?? [],
      labels: payload.labels,
      ...(delivery ? { webhook: { url: delivery.url, state: 'pending' as const, deliveries: [] } } : {}),
      budget: {
        max_cost_usd: payload.budget.maxCostUsd,
        max_tokens: payload.budget.maxTokens,
        spent_tokens: null,
        spent_cost_usd: null,
        exceeded: false,
      },
      ...(payload.conversation
        ? {
            conversation_id: payload.conversation.id,
            parent_run_id: payload.conversation.parentRunId,
            turn: payload.conversation.turn,
            session_id: null,
            ...(payload.conversation.parentRunId !== null
              ? { resumed: payload.conversation.resumeSession !== null }
              : {}),
          }
        : {}),
    };
    await this.store.create(record);
    await this.deps.redis.set(this.inputKey(runId), JSON.stringify(inputOf(payload, meta.initParams)));
    await this.deps.events.append(runId, {
      type: 'run.queued',
      data: { agent: job.agent, model: job.model, provider: job.provider },
    });
    for (const w of meta.warnings ?? [])
      await this.deps.events.append(runId, { type: 'run.warning', data: w });
    if (delivery) {
      // Enqueued before the run's job, so that no run can end before its delivery exists.
      await this.webhookQueue.add(JOBS.webhook.name, delivery, {
        jobId: webhookJobId(runId),
        delay: job.timeoutSec * 1000 + WEBHOOK_FALLBACK_MS,
      });
    }
    await this.queue.add(JOBS.run.name, payload, { jobId: runId });
    return { record, created: true };
  }

  /**
   * A plain LLM call (no `jetty` block), recorded as a one-step run that is already running: the
   * API process makes the call itself, so there is no job. End it with `store.transition` and
   * `finish`, as a worker ends a runbook run.
   */
  async recordPassthrough(init: {
    collection: string;
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
        collection: init.collection,
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

  /**
   * The run from Redis, or from the blob store once Redis has let it go. With `collection`, a run
   * of another collection is null, exactly like one that does not exist.
   */
  async get(id: string, collection?: string): Promise<RunView | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    const rec =
      (await this.store.get(id)) ?? (await this.deps.blobs.readTrajectory<Trajectory>(id))?.run ?? null;
    if (rec && collection !== undefined && rec.collection !== collection) return null;
    // A trajectory stored before these fields existed reads as having none.
    return rec
      ? {
          ...rec,
          primary_outputs: rec.primary_outputs ?? [],
          warnings: rec.warnings ?? [],
          evaluation: rec.evaluation ?? null,
        }
      : null;
  }

  async require(id: string, collection?: string): Promise<RunView> {
    const rec = await this.get(id, collection);
    if (!rec) throw runNotFound(id);
    return rec;
  }

  /**
   * Throws require()'s 404 unless the run exists and is the collection's, reading only its
   * collection while Redis holds it (what every one of a run's thousand followers asks first).
   */
  async requireVisible(id: string, collection: string): Promise<void> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw runNotFound(id);
    const owner = await this.ownerOf(id);
    if (owner === null) await this.require(id, collection);
    else if (owner !== collection) throw runNotFound(id);
  }

  async list(opts: {
    collection: string;
    limit: number;
    cursor?: number;
    status?: string;
    task?: string;
    /** Only runs whose evaluation passed (true) or did not (false: failed, or scored nothing). */
    passed?: boolean;
    /** Only the runs of this experiment. */
    experiment?: string;
  }): Promise<{
    data: RunRecord[];
    next_cursor: string | null;
  }> {
    const out: RunRecord[] = [];
    let cursor = opts.cursor;
    // Filters are applied while paging through the index, so a page is full unless the index ends.
    for (let rounds = 0; out.length < opts.limit && rounds < 50; rounds++) {
      const scope = opts.task === undefined ? { collection: opts.collection } : opts;
      const { ids, scores } = await this.store.listIds(scope, opts.limit * 2, cursor);
      if (ids.length === 0) {
        cursor = undefined;
        break;
      }
      for (let i = 0; i < ids.length && out.length < opts.limit; i++) {
        cursor = scores[i];
        const rec = await this.get(ids[i]!, opts.collection);
        if (!rec) continue;
        if (opts.status && rec.status !== opts.status) continue;
        if (opts.task && rec.task !== opts.task) continue;
        if (opts.passed !== undefined && !passedMatches(rec, opts.passed)) continue;
        if (opts.experiment !== undefined && rec.labels?.experiment !== opts.experiment) continue;
        // A page lists the current evaluation; the history is on the run's own record.
        const { evaluations: _history, ...listed } = rec;
        out.push(listed);
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

  async trajectory(id: string, collection?: string): Promise<Trajectory> {
    // Redis while it holds the run (the same content the store gets at the end, and readable
    // while the store is away), else the stored copy.
    if (!(await this.store.get(id))) {
      const stored = await this.deps.blobs.readTrajectory<Trajectory>(id);
      if (stored) {
        if (collection !== undefined && stored.run.collection !== collection)
          await this.require(id, collection);
        return stored;
      }
    }
    const run = await this.require(id, collection);
    const raw = await this.deps.redis.get(this.inputKey(id));
    return {
      object: 'trajectory',
      run,
      input: raw ? JSON.parse(raw) : null,
      events: await this.deps.events.readAll(id),
    };
  }

  /**
   * Waits for the run's terminal event, at most `timeoutMs`, or until `signal` aborts (the caller
   * left); then answers the run as it stands, ended or not.
   */
  async waitForEnd(
    id: string,
    collection: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RunView> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const stop = () => ctl.abort();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const ev of this.follow(id, '0', ctl.signal)) if (isTerminalEvent(ev.type)) break;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      ctl.abort();
    }
    return this.require(id, collection);
  }

  /** The run's input (runbook, outputs wanted, submitted init_params), from Redis or the blob store. */
  async input(id: string): Promise<Trajectory['input']> {
    const raw = await this.deps.redis.get(this.inputKey(id));
    if (raw) return JSON.parse(raw) as Trajectory['input'];
    return (await this.deps.blobs.readTrajectory<Trajectory>(id))?.input ?? null;
  }

  /**
   * Cancels a run. A pending one is cancelled here and now; a running one is flagged and announced
   * to the workers, which stop its sandbox and record the end. A finished run is left as it is.
   */
  async cancel(id: string, collection?: string): Promise<RunRecord> {
    const rec = await this.require(id, collection);
    if (rec.status === 'pending') {
      const now = new Date();
      const { moved } = await this.store.transition(id, ['pending'], 'cancelled', {
        ended_at: now.toISOString(),
        duration_ms: now.getTime() - Date.parse(rec.created_at),
        cancel_requested: true,
      });
      if (moved) {
        if (rec.agent !== 'passthrough') {
          this.deps.metrics?.runsEnded.inc({
            runtime: rec.agent,
            provider: rec.provider,
            status: 'cancelled',
          });
        }
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
      return { ...now, cancel_requested: true };
    }
    return now;
  }

  /**
   * Appends the terminal event (the record already holds the final status), writes the trajectory
   * to the blob store, lets Redis forget the run after the retention period, and then releases
   * the run's webhook delivery, if it has one.
   */
  async finish(id: string, terminal: NewEvent, attempt?: number): Promise<void> {
    if (!isTerminalEvent(terminal.type)) throw new Error(`not a terminal event: ${terminal.type}`);
    await this.deps.events.append(id, terminal, { attempt });
    const traj = await this.trajectory(id);
    if (await this.save(id, traj)) await this.forgetLater(id);
    // Not awaited: the run is fully recorded, and its delivery is already in Redis. A release
    // that fails only means the delivery starts at its fallback time instead of now.
    if (traj.run.webhook) void this.releaseWebhook(id);
  }

  /**
   * Writes the trajectory to the blob store. When the store does not take it, Redis keeps the run
   * (with no expiry) and remembers it, and saveUnsavedTrajectories() tries again later: a run is
   * never forgotten by Redis before the store has it.
   */
  private async save(id: string, traj: Trajectory): Promise<boolean> {
    try {
      await this.deps.blobs.writeTrajectory(id, traj);
      return true;
    } catch {
      await this.deps.redis.zadd(this.deps.keys.unsavedTrajectories(), Date.now(), id);
      return false;
    }
  }

  private async forgetLater(id: string): Promise<void> {
    const ttl = this.deps.retentionSec;
    await Promise.all([
      this.store.expire(id, ttl),
      this.deps.events.expire(id, ttl),
      this.deps.redis.expire(this.inputKey(id), ttl),
    ]);
  }

  /**
   * Writes the trajectories the blob store did not take when their runs ended (it was away), up to
   * `max` of them, oldest first; each saved one gets its retention in Redis. Answers how many were
   * saved; a store still away throws its error.
   */
  async saveUnsavedTrajectories(max = 100): Promise<number> {
    const key = this.deps.keys.unsavedTrajectories();
    let saved = 0;
    for (const id of await this.deps.redis.zrange(key, 0, max - 1)) {
      const traj = await this.trajectory(id).catch(() => null);
      if (traj) {
        await this.deps.blobs.writeTrajectory(id, traj);
        await this.forgetLater(id);
        saved++;
      }
      await this.deps.redis.zrem(key, id);
    }
    return saved;
  }

  /**
   * Adds a delivery try to the run's record. A final outcome is also written into the stored
   * trajectory, which outlives the record in Redis.
   */
  async recordWebhookDelivery(
    id: string,
    state: WebhookInfo['state'],
    delivery: WebhookDelivery | null,
  ): Promise<void> {
    const rec = await this.get(id);
    if (!rec?.webhook) return;
    const webhook: WebhookInfo = {
      ...rec.webhook,
      state,
      deliveries: delivery ? [...rec.webhook.deliveries, delivery] : rec.webhook.deliveries,
    };
    await this.deps.redis.eval(SET_IF_EXISTS, 1, this.deps.keys.run(id), 'webhook', JSON.stringify(webhook));
    if (state === 'delivered' || state === 'failed') {
      const traj = await this.deps.blobs.readTrajectory<Trajectory>(id);
      if (traj) await this.deps.blobs.writeTrajectory(id, { ...traj, run: { ...traj.run, webhook } });
    }
  }

  /**
   * Adds a label to a run (Jetty's labels: a list; the same key twice keeps both, newest last).
   * Labels live apart from the record, so the worker's final write can never drop one added
   * while the run ended; a copy beside the trajectory outlives Redis's retention.
   */
  async addLabel(id: string, label: RunLabel): Promise<RunLabel[]> {
    const key = this.labelsKey(id);
    await this.deps.redis
      .multi()
      .rpush(key, JSON.stringify(label))
      .expire(key, this.deps.retentionSec)
      .exec();
    const labels = await this.labels(id);
    await this.deps.blobs.writeRunJson(id, 'labels.json', labels);
    return labels;
  }

  async labels(id: string): Promise<RunLabel[]> {
    const raw = await this.deps.redis.lrange(this.labelsKey(id), 0, -1);
    if (raw.length > 0) return raw.map((r) => JSON.parse(r) as RunLabel);
    // A run Redis still holds has its labels there: none means none (and no trip to the store).
    if ((await this.deps.redis.exists(this.deps.keys.run(id))) === 1) return [];
    return (await this.deps.blobs.readRunJson<RunLabel[]>(id, 'labels.json')) ?? [];
  }

  private labelsKey(id: string): string {
    return `${this.deps.keys.run(id)}:labels`;
  }

  private async releaseWebhook(id: string): Promise<void> {
    try {
      const job = await Job.fromId(this.webhookQueue, webhookJobId(id));
      // Not delayed any more means its fallback time came first: it is on its way already.
      if (job && (await job.isDelayed())) await job.promote();
    } catch {
      // The fallback delay covers a release lost to a Redis hiccup or a promote race.
    }
  }

  /**
   * Refuses a resume point past the run's last event: this stream never sent such an id (it is
   * another run's, or mangled), and following it would wait for events that never come.
   */
  async checkResumePoint(id: string, afterId: string): Promise<void> {
    if (afterId === '0' || afterId === '0-0') return;
    const last = (await this.store.get(id))
      ? ((await this.deps.events.last(id))?.id ?? null)
      : ((await this.deps.blobs.readTrajectory<Trajectory>(id))?.events.at(-1)?.id ?? null);
    if (last !== null && compareIds(afterId, last) <= 0) return;
    throw badRequest(
      `Last-Event-ID "${afterId}" is after the last event of this run (${last ?? 'it has none yet'}). Send the id: of the last event you received, or none to read from the start.`,
      'Last-Event-ID',
      'last_event_id_out_of_range',
    );
  }

  /**
   * Events after `afterId`, then live ones until the terminal event. A run Redis no longer holds
   * is replayed from its stored trajectory. `onWait`: called when the follower has had every event
   * so far and waits for the next.
   */
  async *follow(
    id: string,
    afterId: string,
    signal: AbortSignal,
    onWait?: () => void,
  ): AsyncGenerator<StoredEvent> {
    // A run's stream holds its first event from the moment it is queued until Redis forgets the
    // run: one read tells a live run from one to replay (the record is read only when it is empty).
    const last = await this.lastEventOf(id);
    if (!last && !(await this.store.get(id))) {
      const traj = await this.deps.blobs.readTrajectory<Trajectory>(id);
      if (!traj) throw notFound(`No run with id "${id}".`, 'run_not_found');
      for (const ev of traj.events) if (afterId === '0' || compareIds(ev.id, afterId) > 0) yield ev;
      return;
    }
    // Resumed after the terminal event (a client that reconnects once more): nothing will follow.
    if (last && isTerminalEvent(last.type) && compareIds(afterId, last.id) >= 0) return;
    yield* this.deps.events.follow(id, afterId, signal, onWait);
  }

  /** Throws the 503 a new event follower would get when this process holds its maximum. */
  assertFollowerRoom(): void {
    this.deps.events.assertFollowerRoom();
  }

  /**
   * Queues a re-grade of an ended run (a worker does it: the judge is behind its gateway). The job
   * id names the evaluation it makes, so asking twice before it is done queues it once.
   */
  async requestEvaluation(job: EvaluateJob): Promise<void> {
    const payload = JOBS.evaluate.schema.parse(job);
    await this.evaluateQueue.add(JOBS.evaluate.name, payload, {
      jobId: `evaluate-${job.runId}-${job.number}`,
    });
  }

  /**
   * Records a re-grade: it becomes the run's evaluation, joins its history, and its judge's usage
   * joins the run's. Written to Redis while the run is there, and into the stored trajectory.
   */
  async recordEvaluation(id: string, evaluation: Evaluation, maxHistory: number): Promise<void> {
    const rec = await this.get(id);
    if (!rec) return;
    const fields = withEvaluation(rec, evaluation, maxHistory);
    const key = this.deps.keys.run(id);
    for (const [k, v] of Object.entries(fields)) {
      await this.deps.redis.eval(SET_IF_EXISTS, 1, key, k, JSON.stringify(v));
    }
    const traj = await this.deps.blobs.readTrajectory<Trajectory>(id);
    if (traj) await this.deps.blobs.writeTrajectory(id, { ...traj, run: { ...traj.run, ...fields } });
  }

  async close(): Promise<void> {
    await Promise.all([
      this.queue.close(),
      this.webhookQueue.close(),
      this.evaluateQueue.close(),
      this.deps.events.close(),
    ]);
  }

  private inputKey(id: string): string {
    return `${this.deps.keys.run(id)}:input`;
  }
}

function inputOf(job: RunJob, initParams: Record<string, unknown> | undefined): Trajectory['input'] {
  return {
    runbook: job.runbook,
    instruction: job.instruction,
    resultsDir: job.resultsDir,
    requiredOutputs: job.requiredOutputs,
    primaryOutputs: job.primaryOutputs,
    evaluation: job.evaluation,
    ...(initParams ? { initParams } : {}),
    ...(job.conversation?.history ? { history: job.conversation.history } : {}),
  };
}

/**
 * `passed=true`: the evaluation passed. `passed=false`: it was made and did not pass (failed,
 * missing, or in error). Runs without an evaluation match neither.
 */
function passedMatches(rec: RunRecord, passed: boolean): boolean {
  const e = rec.evaluation;
  if (!e) return false;
  return passed ? e.passed === true : e.passed !== true;
}

function runNotFound(id: string): AppError {
  return notFound(
    `No run with id "${id}". Check the id returned as jetty_metadata.trajectory_id.`,
    'run_not_found',
  );
}

import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { isTerminalEvent, TERMINAL_STATUSES } from '../events/types.js';
import { jettyTrajectory } from '../jetty/trajectory.js';
import type { AddressPolicy } from '../net/address-policy.js';
import { JOBS } from '../queue/catalog.js';
import { type RedisKeys, WEBHOOK_QUEUE } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import { isRedisConnectionError } from '../queue/redis-outage.js';
import type { RunService, Trajectory } from '../queue/run-service.js';
import { DeliveryInterrupted, type DeliveryResult, postWebhook } from './deliver.js';
import { webhookHeaders } from './signing.js';

export interface WebhookWorkerDeps {
  redis: Redis;
  keys: RedisKeys;
  runs: RunService;
  concurrency: number;
  /** Each POST's time limit. */
  timeoutMs: number;
  /** Which addresses a webhook may reach (NETWORK_ALLOW_PRIVATE lists the private ones allowed). */
  policy: AddressPolicy;
  /** Redirects a POST follows at most, each hop checked by the policy. */
  maxRedirects: number;
  /** How long a delivery waits for a run that has not ended before giving up. */
  maxWaitMs: number;
  /** How soon a delivery that found its run still going looks again. */
  recheckMs?: number;
  logger: Logger;
}

/**
 * Takes webhook deliveries from their own queue and POSTs each run's end to its URL, signed.
 * Retries (attempts, exponential backoff) are BullMQ's, set on the job when the run was created;
 * a 4xx other than 408 and 429 ends them at once. Every try is added to the run's record.
 */
export class WebhookWorker {
  private worker: Worker | undefined;
  private connection: Redis | undefined;
  /** Aborts POSTs under way when the worker stops; their jobs go back to the queue. */
  private readonly stopping = new AbortController();
  /** Processor calls under way, so that stop() can wait for them to hand their jobs back. */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly deps: WebhookWorkerDeps) {}

  async start(): Promise<void> {
    const { deps } = this;
    this.connection = deps.redis.duplicate({ maxRetriesPerRequest: null });
    // Connection trouble is logged once by the main connection; this one reconnects on its own.
    this.connection.on('error', () => undefined);
    this.worker = new Worker(WEBHOOK_QUEUE, (job, token) => this.track(this.process(job, token)), {
      connection: this.connection,
      prefix: deps.keys.bullPrefix(),
      concurrency: deps.concurrency,
    });
    // A lost connection is the outage's, logged once by the connection's owner.
    this.worker.on('error', (err) => {
      if (!isRedisConnectionError(err)) deps.logger.error({ err }, 'webhook queue worker error');
    });
  }

  async stop(): Promise<void> {
    this.worker?.pause(true)?.catch(() => undefined);
    this.stopping.abort();
    // Until every job under way is handed back (a fetch already in flight may bring one more),
    // but bounded: with Redis gone a job cannot be handed back, and shutdown must not hang on it.
    const deadline = Date.now() + 5_000;
    while (this.inflight.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.inflight]), sleep(deadline - Date.now())]);
    }
    await this.worker?.close(true);
    if (this.connection) await closeRedis(this.connection);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    p.finally(() => this.inflight.delete(p)).catch(() => undefined);
    return p;
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    const { deps } = this;
    if (this.stopping.signal.aborted) return this.handBack(job, token);
    const parsed = JOBS.webhook.schema.safeParse(job.data);
    if (!parsed.success) {
      // Field names only: an issue could quote the job's data, and that holds the secret.
      const fields = parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
      throw new UnrecoverableError(`invalid webhook job: ${fields}`);
    }
    const { runId, url, secret } = parsed.data;
    // The origin only: a webhook URL's path or query may carry a token of its own.
    const log = deps.logger.child({ runId, webhook: new URL(url).origin });

    const ended = await this.endedRun(runId);
    if (ended === 'gone') {
      log.warn('the run is gone; its webhook is dropped');
      return;
    }
    if (ended === 'going') {
      if (Date.now() - job.timestamp > deps.maxWaitMs) {
        await deps.runs.recordWebhookDelivery(runId, 'failed', null);
        log.warn('the run never ended; its webhook is dropped');
        return;
      }
      // The fallback time came before the run's end released the delivery: look again later.
      await job.moveToDelayed(Date.now() + (deps.recheckMs ?? 60_000), token);
      throw new DelayedError();
    }

    const labels = await deps.runs.labels(runId);
    // The run's trajectory, as Jetty's callbacks send it: what GET /api/v1/db/trajectory answers.
    const body = JSON.stringify(jettyTrajectory(ended.run, ended.input, labels));
    const attempt = job.attemptsMade + 1;
    const at = new Date();
    let result: DeliveryResult;
    try {
      result = await postWebhook({
        url,
        body,
        headers: webhookHeaders({ runId, body, secret, timestamp: Math.floor(at.getTime() / 1000) }),
        timeoutMs: deps.timeoutMs,
        policy: deps.policy,
        maxRedirects: deps.maxRedirects,
        signal: this.stopping.signal,
      });
    } catch (err) {
      if (!(err instanceof DeliveryInterrupted)) throw err;
      return this.handBack(job, token);
    }
    const last = result.ok || result.final || attempt >= (job.opts.attempts ?? 1);
    await deps.runs.recordWebhookDelivery(runId, result.ok ? 'delivered' : last ? 'failed' : 'retrying', {
      attempt,
      at: at.toISOString(),
      status_code: result.status_code,
      error: result.error,
      duration_ms: result.duration_ms,
    });
    const fields = { attempt, status_code: result.status_code, duration_ms: result.duration_ms };
    if (result.ok) {
      log.info(fields, 'webhook delivered');
      return;
    }
    log.warn(
      { ...fields, error: result.error },
      last ? 'webhook not delivered; giving up' : 'webhook try failed',
    );
    if (result.final) throw new UnrecoverableError(result.error ?? 'refused');
    throw new Error(result.error ?? 'not delivered');
  }

  /**
   * This worker is stopping: the job goes back, no try spent, for another worker to make. Back as
   * delayed by a second, not waiting: a fetch of this worker's still in flight would take a
   * waiting job straight back, and then hold it until its lock lapsed.
   */
  private async handBack(job: Job, token: string | undefined): Promise<never> {
    await job.moveToDelayed(Date.now() + 1000, token);
    throw new DelayedError();
  }

  /**
   * The run once it has fully ended: its record says so and its terminal event is written (the
   * record moves first, so the record alone could announce an end the trajectory does not have yet).
   */
  private async endedRun(runId: string): Promise<Trajectory | 'going' | 'gone'> {
    const rec = await this.deps.runs.get(runId);
    if (!rec) return 'gone';
    if (!TERMINAL_STATUSES.includes(rec.status)) return 'going';
    const traj = await this.deps.runs.trajectory(runId);
    const lastEvent = traj.events[traj.events.length - 1];
    return lastEvent && isTerminalEvent(lastEvent.type) ? traj : 'going';
  }
}

/** A wait that never keeps the process alive on its own. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)).unref());

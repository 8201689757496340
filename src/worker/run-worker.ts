import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { NO_EGRESS } from '../egress/policy.js';
import type { EgressProxy } from '../egress/proxy.js';
import { noNetworkSummary } from '../egress/run-traffic.js';
import { sandboxProxyEnv } from '../egress/sandbox-env.js';
import { environmentWarnings } from '../environments/check.js';
import { AppError, isAppError } from '../errors.js';
import type { Evaluation } from '../evaluation/types.js';
import { DEFAULT_RUN_LIMITS, type RunLimits } from '../events/limits.js';
import type {
  AgentName,
  NetConnectData,
  NetworkSummary,
  NewEvent,
  RetryReason,
  RunError,
  RunStatus,
  UsageTotals,
} from '../events/types.js';
import { type BudgetExceeded, RunBudget } from '../gateway/budget.js';
import type { GatewayRoute, ProviderGateway } from '../gateway/gateway.js';
import type { UploadStore } from '../jetty/uploads.js';
import { Metrics } from '../metrics/registry.js';
import { estimateCost, formatUsd, priceOf } from '../providers/prices.js';
import { createSimulatedProvider } from '../providers/simulated/index.js';
import {
  isRealProvider,
  keyEnvOf,
  providerOfKeyVariable,
  type RealProvider,
  UPSTREAMS,
} from '../providers/upstreams.js';
import { JOBS, type RunJob } from '../queue/catalog.js';
import { type RedisKeys, RUN_QUEUE } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import { isRedisConnectionError } from '../queue/redis-outage.js';
import type { RunService } from '../queue/run-service.js';
import type { ConversationStateRecord, RunRecord, RunTimings } from '../queue/run-store.js';
import { DEFAULT_RESULTS_DIR } from '../runbook/template.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName, RuntimeAdapter, SandboxFile } from '../runtimes/types.js';
import {
  type CollectLimits,
  GATEWAY_MOUNT,
  GATEWAY_SOCKET_NAME,
  type RunningSandbox,
  type SandboxDriver,
  type SandboxLimits,
  type SandboxSpec,
} from '../sandbox/driver.js';
import { WarmPool, type WarmSandbox } from '../sandbox/warm-pool.js';
import type { BlobStore } from '../storage/blob-store.js';
import { ObjectStoreError } from '../storage/object-store.js';
import { providerKeyFor } from '../tenancy/provider-keys.js';
import type { Redactor } from '../tenancy/redact.js';
import type { TenancyStore } from '../tenancy/store.js';
import { type CollectedResults, collectResults } from './collect.js';
import {
  restoreTurnFiles,
  saveTurnFiles,
  type TurnStateLimits,
  turnPrompt,
  turnSession,
} from './conversation-turn.js';
import type { WorkerEnvironments } from './environment.js';
import { DEFAULT_EVALUATION_SETTINGS, type EvaluationSettings, runEvaluation } from './evaluate-step.js';
import { applyRequirePass, evaluationWarnings, failedEvaluation } from './evaluation-outcome.js';
import { watchGatewayFailures } from './gateway-failure.js';
import { readOutput } from './read-output.js';
import { RunEventSink } from './run-events.js';
import { RunMetrics } from './run-metrics.js';
import { buildSandboxSpec, shapeOf, WarmStarts } from './warm-start.js';

/** CONVERSATION_STATE_MAX_* defaults, for a worker built without them. */
const DEFAULT_TURN_STATE: TurnStateLimits = { maxBytes: 64 * 1024 ** 2, maxFiles: 5000 };

/** Port the in-sandbox forwarder listens on (127.0.0.1 inside the sandbox only). */
export const SANDBOX_GATEWAY_PORT = 4100;
/**
 * After the gateway refuses a call over the run's budget, the CLI has this long to end on its own
 * (they all treat the refusal as final) before its sandbox is stopped.
 */
export const BUDGET_GRACE_MS = 10_000;

export interface WorkerDeps {
  /** The process's instruments (src/metrics); absent: counted in a registry nobody serves. */
  metrics?: Metrics;
  redis: Redis;
  keys: RedisKeys;
  runs: RunService;
  blobs: BlobStore;
  driver: SandboxDriver;
  gateway: ProviderGateway;
  /** The egress proxy behind the gateway's socket; without one, every run has no network. */
  egress?: EgressProxy;
  gatewaySocketDir: string;
  /** This worker process's name (its gateway directory's), shown in run.started. */
  workerName?: string;
  concurrency: number;
  lockMs: number;
  /** Provider keys and declared secrets come from the run's collection. */
  tenancy: TenancyStore;
  /** Uploaded input files (the run's assets). */
  uploads: UploadStore;
  /** Uploads older than this are removed (with the orphan sweep); the run retention by default. */
  uploadRetentionMs?: number;
  /** Run files (artifacts, trajectory) of runs over for longer than this are removed, with the sweep. */
  runRetentionMs?: number;
  /** What is copied out of results_dir; the rest is reported as dropped. */
  artifactLimits: CollectLimits;
  /** What a conversation turn keeps for the next one (CONVERSATION_STATE_MAX_*); defaults when absent. */
  conversationState?: TurnStateLimits;
  /** The server's own provider keys, for collections without theirs. */
  serverProviderKeys: Partial<Record<RealProvider, string>>;
  simulatedProvider: boolean;
  upstreams: Partial<Record<ProviderName, string>>;
  logger: Logger;
  /** What bounds each run's output; DEFAULT_RUN_LIMITS when not given. */
  runLimits?: RunLimits;
  /**
   * How often sandboxes of this deployment that no live worker holds (its worker died) are looked
   * for and removed (ms).
   */
  sweepIntervalMs?: number;
  /** How often expired uploads are removed (ms). */
  uploadSweepIntervalMs?: number;
  /** Environment images: found, probed, checked before each agent starts (none: no check). */
  environments?: WorkerEnvironments;
  /** The evaluation step's bounds (EVALUATION_*, JUDGE_*); DEFAULT_EVALUATION_SETTINGS when not given. */
  evaluation?: EvaluationSettings;
  /** Warm sandboxes (src/sandbox/warm-pool.ts); absent or size 0: every run starts cold. */
  warmPool?: WarmPoolSettings;
}

export interface WarmPoolSettings {
  /** Per runtime and environment (WARM_POOL_SIZE). */
  size: number;
  /** WARM_POOL_MEMORY, counted at each sandbox's memory limit. */
  memoryBytes: number;
  /** WARM_POOL_IDLE_SEC in ms; 0: never expire. */
  idleMs: number;
  /** WARM_POOL_RUNTIMES */
  runtimes: readonly AgentName[];
  /**
   * The start of the first warm sandboxes: the server's defaults, in the default snapshot's
   * environment image.
   */
  defaults: { timeoutSec: number; limits: SandboxLimits; provider: ProviderName; environment: string };
}

/**
 * How often BullMQ looks for jobs whose lock lapsed. A dead worker's job moves back to the queue at
 * the first check after its lock expires, so recovery takes at most lockMs plus this (checks are
 * shared by all workers of the queue, so a short interval costs one script per interval).
 */
export function stalledIntervalFor(lockMs: number): number {
  return Math.min(2_000, Math.max(250, Math.floor(lockMs / 4)));
}

type StopReason = 'cancelled' | 'timeout' | 'shutdown' | 'budget';

interface ActiveRun {
  stop: (reason: StopReason) => void;
}

/**
 * Takes run jobs from the queue and carries each through its sandbox: start, stream events,
 * enforce the deadline, honour cancel, collect results, record the end.
 */
export class RunWorker {
  private worker: Worker | undefined;
  private subscriber: Redis | undefined;
  private queueConnection: Redis | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private stopping = false;
  /** Processor calls under way, so that stop() can wait for them. */
  private readonly inflight = new Set<Promise<unknown>>();

  private readonly metrics: Metrics;
  /** Warm sandboxes, when the settings and the driver allow them. */
  private readonly pool: WarmPool | undefined;
  private readonly warm: WarmStarts | undefined;
  /** What every agent is told of the gateway: the forwarder's port and the socket it forwards to. */
  private readonly gatewayEnv = {
    JETTY_GATEWAY_PORT: String(SANDBOX_GATEWAY_PORT),
    JETTY_GATEWAY_SOCKET: `${GATEWAY_MOUNT}/${GATEWAY_SOCKET_NAME}`,
  };

  constructor(private readonly deps: WorkerDeps) {
    this.metrics = deps.metrics ?? new Metrics();
    ({ pool: this.pool, warm: this.warm } = this.warmPoolOf(deps.warmPool));
  }

  private warmPoolOf(settings: WarmPoolSettings | undefined): { pool?: WarmPool; warm?: WarmStarts } {
    const { deps } = this;
    // The worker's name labels its warm sandboxes: without one, the sweep could not tell whose they are.
    if (!settings || settings.size === 0 || settings.memoryBytes === 0) return {};
    if (!deps.driver.prepare || !deps.workerName) return {};
    let warm: WarmStarts | undefined;
    const pool = new WarmPool({
      driver: deps.driver,
      worker: deps.workerName,
      size: settings.size,
      memoryBytes: settings.memoryBytes,
      idleMs: settings.idleMs,
      template: (key) => warm?.template(key) ?? null,
      logger: deps.logger.child({ component: 'warm-pool' }),
    });
    warm = new WarmStarts({
      pool,
      runtimes: settings.runtimes,
      initialShape: (runtime) => ({
        model: runtime.defaultModel,
        provider: runtime.providers.includes(settings.defaults.provider)
          ? settings.defaults.provider
          : (runtime.providers[0] ?? settings.defaults.provider),
        timeoutSec: settings.defaults.timeoutSec,
        resultsDir: DEFAULT_RESULTS_DIR,
        limits: settings.defaults.limits,
        // Runs of /v1/chat/completions, the likeliest, are conversation turns.
        persistSession: true,
      }),
      defaultEnvironment: settings.defaults.environment,
      gatewayEnv: this.gatewayEnv,
      gatewayUrl: `http://127.0.0.1:${SANDBOX_GATEWAY_PORT}`,
      gatewaySocketDir: deps.gatewaySocketDir,
    });
    return { pool, warm };
  }

  /** Warm sandboxes ready and starting, per runtime and environment. */
  warmStats(): Record<string, { ready: number; starting: number }> {
    return this.pool?.stats() ?? {};
  }

  private get limits(): RunLimits {
    return this.deps.runLimits ?? DEFAULT_RUN_LIMITS;
  }

  async start(): Promise<void> {
    const { deps } = this;
    await this.markAlive();
    await this.sweepSandboxes();
    this.subscriber = deps.redis.duplicate();
    // Connection trouble is logged once by the main connection; these reconnect on their own.
    this.subscriber.on('error', () => undefined);
    await this.subscriber.subscribe(deps.keys.cancelChannel());
    this.subscriber.on('message', (_channel, runId: string) => this.active.get(runId)?.stop('cancelled'));
    // BullMQ does not close a connection it was given: stop() does.
    this.queueConnection = quiet(deps.redis.duplicate({ maxRetriesPerRequest: null }));
    this.worker = new Worker(RUN_QUEUE, (job, token) => this.track(this.process(job, token)), {
      connection: this.queueConnection,
      prefix: deps.keys.bullPrefix(),
      concurrency: deps.concurrency,
      // The lock is renewed while a run goes on; a dead worker's job is picked up again after it lapses.
      lockDuration: deps.lockMs,
      stalledInterval: stalledIntervalFor(deps.lockMs),
      maxStalledCount: 2,
    });
    // A lost connection is the outage's, logged once by the connection's owner.
    this.worker.on('error', (err) => {
      if (!isRedisConnectionError(err)) deps.logger.error({ err }, 'queue worker error');
    });
    // A job BullMQ gave up on without our processor finishing it (e.g. its workers kept dying):
    // the run must still end, or its record would say "running" forever.
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      // Only a job that will not be tried again: an attempt with retries left is not the end.
      void job
        .getState()
        .then(async (state) =>
          state === 'failed'
            ? this.end(job.id ?? '', ['pending', 'running'], 'failed', {
                type: 'run.failed',
                data: {
                  error: {
                    code: 'worker_lost',
                    message: `The run could not be carried to its end: ${err.message}`,
                  },
                  exit_code: null,
                  usage: await this.usageSoFar(job.id ?? ''),
                  duration_ms: 0,
                },
              })
            : undefined,
        )
        .catch((e) => deps.logger.error({ err: e, runId: job.id }, 'recording a lost run failed'));
    });
    this.every(deps.sweepIntervalMs ?? 5_000, () =>
      this.markAlive()
        .then(() => this.sweepSandboxes())
        .catch((err) => deps.logger.warn({ err }, 'sandbox sweep failed')),
    );
    this.warm?.prewarm();
    this.every(deps.uploadSweepIntervalMs ?? 60_000, async () => {
      await this.sweepRunFiles(deps.uploadSweepIntervalMs ?? 60_000).catch((err) =>
        deps.logger.warn({ err }, 'removing old run files failed'),
      );
    });
  }

  /** Runs `fn` every `ms`, never two at once; the timers end with stop(). */
  private every(ms: number, fn: () => Promise<unknown>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      void fn().finally(() => {
        busy = false;
      });
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /**
   * Stops taking jobs. Runs under way here are stopped (their sandboxes killed and removed) and go
   * back to the queue, so another worker starts them again at once rather than after a lock lapses.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.worker?.pause(true)?.catch(() => undefined);
    const running = [...this.active.values()];
    for (const run of running) run.stop('shutdown');
    // Each stopped run puts its own job back before its processor returns (see process()).
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(15_000)]);
    await this.pool?.close();
    await this.worker?.close(true);
    if (this.subscriber) await closeRedis(this.subscriber);
    if (this.queueConnection) await closeRedis(this.queueConnection);
  }

  /**
   * Removes the sandboxes of this deployment (any worker's, on this engine) that nobody needs: their
   * run is over or unknown, or no live worker holds its job (the job's lock is gone: its worker died
   * or hung). Run by every worker every few seconds, so a dead worker's agent stops as soon as its
   * lock lapses, not when its run starts again elsewhere.
   */
  async sweepSandboxes(): Promise<number> {
    const owned = await this.deps.driver.listOwned();
    let removed = 0;
    for (const sb of owned) {
      if (this.active.has(sb.runId)) continue;
      const orphan =
        sb.runId === '' && sb.poolWorker !== undefined
          ? await this.isOrphanWarm(sb.id, sb.poolWorker)
          : await this.isOrphan(sb.runId);
      if (!orphan) continue;
      this.deps.logger.info({ runId: sb.runId, sandbox: sb.id.slice(0, 12) }, 'removing an orphaned sandbox');
      await this.deps.driver.removeById(sb.id);
      removed++;
    }
    return removed;
  }

  /**
   * A warm sandbox no run has claimed is an orphan when the worker keeping it is gone (its mark in
   * Redis lapsed), or when it is this worker's and its pool does not hold it (left by an earlier
   * life of the same name).
   */
  private async isOrphanWarm(id: string, poolWorker: string): Promise<boolean> {
    if (poolWorker === this.deps.workerName) return !this.pool?.holds(id);
    return (await this.deps.redis.exists(this.deps.keys.workerAlive(poolWorker))) === 0;
  }

  /** Marks this worker alive for a while (see isOrphanWarm); renewed with every sweep. */
  private async markAlive(): Promise<void> {
    if (!this.deps.workerName) return;
    const ttlMs = Math.max(15_000, 3 * (this.deps.sweepIntervalMs ?? 5_000));
    await this.deps.redis.set(this.deps.keys.workerAlive(this.deps.workerName), '1', 'PX', ttlMs);
  }

  private async isOrphan(runId: string): Promise<boolean> {
    if (!(await this.deps.runs.get(runId))) return true;
    // The worker that carries a run holds its job's lock from start to end (renewed by BullMQ),
    // and past the run's end while it saves the turn's files and removes the sandbox.
    return (await this.deps.redis.exists(this.deps.keys.runJobLock(runId))) === 0;
  }

  /**
   * Removes the run files in the blob store of runs over for longer than the retention (Redis has
   * let their records go by then), and what a collection cut short by a dead worker left behind.
   * `store: false` cleans only this process's local scratch.
   */
  async removeOldRunFiles(opts: { store?: boolean } = {}): Promise<{ runs: number; partial: number }> {
    const { deps } = this;
    const isLive = async (runId: string) => {
      if (this.active.has(runId)) return true;
      const status = (await deps.runs.get(runId))?.status;
      return status === 'pending' || status === 'running';
    };
    // Trajectories the store did not take when their runs ended (it was away) go first.
    await deps.runs.saveUnsavedTrajectories();
    const store = opts.store !== false;
    if (store && deps.uploadRetentionMs !== undefined)
      await deps.uploads.removeOlderThan(deps.uploadRetentionMs);
    const retentionMs = deps.runRetentionMs ?? Number.POSITIVE_INFINITY;
    return deps.blobs.removeOlderThan(retentionMs, isLive, Date.now(), { store });
  }

  /**
   * The periodic sweep: every worker cleans its own local scratch, and one worker per interval
   * (whoever takes the lock in Redis) sweeps the shared store, which costs a listing of it.
   */
  private async sweepRunFiles(intervalMs: number): Promise<void> {
    const lock = this.deps.keys.blobSweepLock();
    const mine = await this.deps.redis.set(lock, String(process.pid), 'PX', intervalMs, 'NX');
    await this.removeOldRunFiles({ store: mine === 'OK' });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    p.finally(() => this.inflight.delete(p)).catch(() => undefined);
    return p;
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    // A job fetched while stopping (BullMQ fetches the next one as it finishes the last) goes back.
    if (this.stopping) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const parsed = JOBS.run.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid run job: ${parsed.error.message}`);
    const spec = parsed.data;
    const log = this.deps.logger.child({ runId: spec.runId, runtime: spec.agent });
    try {
      await this.execute(spec, job, log);
    } catch (err) {
      if (err instanceof WorkerShutdown) {
        // Straight back to the waiting list, no attempt spent: another worker takes it at once.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const retryable = isAppError(err) && err.retryable;
      const attemptsLeft = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      log.error({ err, retryable, attemptsLeft }, 'run attempt failed');
      if (retryable && attemptsLeft) {
        const rec = await this.deps.runs.get(spec.runId);
        await this.deps.runs.store.update(spec.runId, { retry_reason: 'infrastructure_error' });
        await this.deps.runs.events.append(
          spec.runId,
          {
            type: 'log',
            data: {
              stream: 'system',
              line: `The worker hit an infrastructure error and will retry: ${(err as Error).message}`,
            },
          },
          { attempt: rec?.attempt },
        );
        throw err;
      }
      const error: RunError = isAppError(err)
        ? { code: err.code, message: err.message }
        : { code: 'internal_error', message: 'The worker failed unexpectedly; see the worker log.' };
      await this.end(spec.runId, ['pending', 'running'], 'failed', {
        type: 'run.failed',
        data: {
          error,
          exit_code: null,
          usage: await this.usageSoFar(spec.runId),
          duration_ms: 0,
        },
      });
      throw new UnrecoverableError(error.message);
    }
  }

  private async execute(spec: RunJob, job: Job, log: Logger): Promise<void> {
    const { deps } = this;
    const runId = spec.runId;
    const rec = await deps.runs.get(runId);
    if (!rec || rec.status === 'completed' || rec.status === 'failed' || rec.status === 'cancelled') return;
    const runtime = getRuntime(spec.agent);
    if (!runtime) throw new UnrecoverableError(`runtime ${spec.agent} is not installed on this worker`);
    const measure = new RunMetrics(this.metrics, spec.agent, spec.provider);

    const startedAt = new Date();
    // Where the time went, for the run record and the benchmark: the server's overhead is all
    // of it but agent_ms.
    const timings: RunTimings = {
      queue_ms: startedAt.getTime() - Date.parse(rec.created_at),
      sandbox_start_ms: null,
      agent_ms: null,
      collect_ms: null,
    };
    const begun = await deps.runs.store.beginAttempt(runId, { started_at: startedAt.toISOString() });
    if (!begun.moved) return;
    const attempt = begun.attempt;
    const sink = await this.attemptSink(runId, attempt, begun.retryReason);

    // Cancel may have been asked for while the job waited.
    let stopReason: StopReason | undefined;
    let sandbox: RunningSandbox | undefined;
    // Cancel (or the worker's stop) also ends an evaluation under way.
    const evaluating = new AbortController();
    const stop = (reason: StopReason) => {
      if (stopReason) return;
      stopReason = reason;
      evaluating.abort();
      log.info({ reason }, 'stopping run');
      void sandbox?.kill().catch(() => undefined);
    };
    this.active.set(runId, { stop });
    if ((await deps.runs.get(runId))?.cancel_requested) stop('cancelled');

    // The run's secrets are read now, not at request time: a value changed meanwhile is the one used.
    const secrets = await this.secretsOf(spec);
    sink.addRedactions(secrets.redact);
    // One budget for the run: the agent's calls and its scripts' count against it alike.
    let budgetTimer: NodeJS.Timeout | undefined;
    const budget = this.budgetOf(spec, sink, log, () => {
      budgetTimer ??= setTimeout(() => stop('budget'), BUDGET_GRACE_MS);
    });
    const route = await this.route(spec, spec.provider, sink, log, 'gateway', budget);
    const scripts = await this.scriptRoutes(spec, sink, log, budget);
    const egress = this.openEgress(spec, sink);
    let network: NetworkSummary | undefined;
    const redactor = sink.redactor;
    const deadline = setTimeout(() => stop('timeout'), spec.timeoutSec * 1000);
    let collected: CollectedResults = { artifacts: [], dropped: null, events: [] };
    // Set when the blob store failed the collection: the attempt then fails (and may be retried).
    let storeFailure: ObjectStoreError | undefined;
    let exitCode: number | null = null;
    let sessionId: string | undefined;
    let outcome: ReturnType<ReturnType<typeof runtime.createParser>['finish']>['outcome'] | undefined;
    let token: string | undefined;
    let warm: WarmSandbox | undefined;
    // The pool key of the warm sandbox planned for the run: it is replaced once the run has ended.
    let warmKey: string | undefined;
    let evaluation: Evaluation | null = null;
    // The conversation's files for the next turn, when they are saved after the run's end.
    let saveLater = false;
    try {
      if (stopReason) throw new StopBeforeStart();
      const assets = await this.assetFiles(spec);
      // A follow-up turn starts from the previous turn's files; the run's own files go on top.
      const restored = await restoreTurnFiles(spec, deps.blobs);
      for (const ev of restored.events) sink.emit(ev);
      // The sandbox's start includes finding its environment (probed once per image).
      const tStart = Date.now();
      await this.checkEnvironment(spec, runtime.image, sink);
      // A warm sandbox when one fits the run (src/worker/warm-start.ts); its token becomes the run's.
      // The run's own variables (secrets, script keys, its egress proxy's) keep it from a warm one.
      const runEnv = { ...secrets.env, ...scripts.env, ...egress.env };
      const plan = this.planSandbox(spec, runtime, runEnv, assets, restored.files);
      ({ token, warm } = plan);
      warmKey = warm?.key;
      deps.gateway.register(token, { ...route, retryAfterMs: runtime.gatewayRetryAfterMs });
      const started = this.warm
        ? await this.warm.start(deps.driver, runId, plan.sandbox, warm)
        : { sandbox: await deps.driver.start(plan.sandbox), kind: 'cold' as const };
      warm = undefined;
      sandbox = started.sandbox;
      const tRunning = Date.now();
      timings.sandbox_start_ms = tRunning - tStart;
      measure.sandboxStarted(timings.sandbox_start_ms);
      if (stopReason) void sandbox.kill();
      await deps.runs.store.update(runId, {
        sandbox_id: sandbox.id,
        image: spec.environment.image,
        runtime_version: runtime.cliVersion,
      });
      sink.emit({
        type: 'run.started',
        data: {
          sandbox_id: sandbox.id,
          image: spec.environment.image,
          runtime_version: runtime.cliVersion,
          ...(deps.workerName ? { worker: deps.workerName } : {}),
          warm: started.kind === 'warm',
        },
      });
      await job.updateProgress({ sandbox_id: sandbox.id });

      const cliParser = runtime.createParser();
      const parser = measure.watchFirstOutput(watchGatewayFailures(cliParser), Date.parse(rec.created_at));
      const reading = readOutput(sandbox, parser, sink, this.limits.maxLineBytes);
      ({ exitCode } = await sandbox.wait());
      timings.agent_ms = Date.now() - tRunning;
      await reading;
      sessionId = cliParser.session;
      const fin = parser.finish(stopReason ? null : exitCode);
      for (const ev of fin.events) sink.emit(ev);
      outcome = fin.outcome;
    } catch (e) {
      if (!(e instanceof StopBeforeStart)) throw e;
    } finally {
      if (warm) this.warm?.abandon(warm);
      clearTimeout(deadline);
      clearTimeout(budgetTimer);
      if (token) deps.gateway.unregister(token);
      for (const t of scripts.tokens) deps.gateway.unregister(t);
      // The agent is done: its connections still open are cut and recorded now.
      network = egress.close();
      if (sandbox) {
        // Results are collected whatever the ending: success, failure, timeout or cancel.
        const tCollect = Date.now();
        try {
          collected = await collectResults({
            sandbox,
            runId,
            resultsDir: spec.resultsDir,
            blobs: deps.blobs,
            limits: deps.artifactLimits,
          });
          measure.artifactsCollected(Date.now() - tCollect);
        } catch (e) {
          if (e instanceof ObjectStoreError) storeFailure = e;
          log.warn({ err: e }, 'collecting results failed');
          sink.emit({
            type: 'log',
            data: { stream: 'system', line: `Collecting ${spec.resultsDir} failed: ${(e as Error).message}` },
          });
        }
        if (spec.conversation && stopReason !== 'shutdown' && !storeFailure) {
          // A verification script may change /app: the next turn gets /app as the agent left it.
          // Without one, the files are saved after the run's end is announced.
          if (spec.evaluation?.verificationScript) await this.saveTurn(spec, sandbox, sink.redactor, log);
          else saveLater = true;
        }
        // Scored after collecting (the artifacts are the agent's work, not the script's), before removal;
        // not when the store lost them: this attempt ends in its error and is retried.
        if (
          outcome &&
          !storeFailure &&
          stopReason !== 'cancelled' &&
          stopReason !== 'shutdown' &&
          spec.evaluation
        ) {
          const tEvaluate = Date.now();
          evaluation = await this.evaluateStep(spec, sandbox, collected, sink, log, evaluating.signal);
          timings.evaluate_ms = Date.now() - tEvaluate;
        }
        timings.collect_ms = Date.now() - tCollect - (timings.evaluate_ms ?? 0);
      }
      // Still this worker's until its sandbox is gone (the sweep leaves it be), but nothing is left to stop.
      // Still this worker's until its sandbox is gone (the sweep leaves it be), but nothing is left to stop.
      this.active.set(runId, { stop: () => undefined });
    }
    try {
      if (stopReason === 'shutdown') {
        // This worker is going away: the run is not over. Hand it back to the queue, where another
        // worker (or this one, restarted) starts it again.
        sink.emit({
          type: 'log',
          data: { stream: 'system', line: 'The worker shut down mid-run; the run goes back to the queue.' },
        });
        await sink.flush();
        await deps.runs.store.update(runId, { retry_reason: 'worker_shutdown' });
        throw new WorkerShutdown();
      }

      if (storeFailure && stopReason !== 'cancelled') {
        // Its files could not be kept: this attempt ends here, retried while attempts are left.
        await sink.flush();
        throw storeFailure;
      }

      const { artifacts } = collected;
      for (const info of artifacts) sink.emit({ type: 'artifact', data: info });
      for (const ev of collected.events) sink.emit(ev);
      const have = new Set(artifacts.map((a) => path.posix.join(spec.resultsDir, a.path)));
      const missing = spec.requiredOutputs.filter((p) => !have.has(p));
      const endedAt = new Date();
      const duration_ms = endedAt.getTime() - startedAt.getTime();

      let status: RunStatus;
      let terminal: NewEvent;
      if (stopReason === 'cancelled') evaluation = null;
      if (stopReason === 'cancelled') {
        status = 'cancelled';
        terminal = {
          type: 'run.cancelled',
          data: { reason: 'cancelled by request', usage: sink.totals(), duration_ms },
        };
      } else if (stopReason === 'timeout') {
        status = 'failed';
        const error = {
          code: 'timeout',
          message: `The run exceeded its timeout of ${spec.timeoutSec} s and was stopped. Raise jetty.timeout_sec (up to the server maximum) or shorten the runbook.`,
        };
        terminal = {
          type: 'run.failed',
          data: { error, exit_code: exitCode, usage: sink.totals(), duration_ms },
        };
      } else if (route.budget?.exceeded) {
        // The gateway refused a model call: that, not how the CLI took it, is why the run ended.
        status = 'failed';
        terminal = {
          type: 'run.failed',
          data: {
            error: { code: 'budget_exceeded', message: route.budget.exceeded.message },
            exit_code: exitCode,
            final_text: outcome?.finalText,
            usage: sink.totals(),
            duration_ms,
          },
        };
      } else if (outcome?.status === 'completed') {
        status = 'completed';
        if (missing.length > 0) {
          sink.emit({
            type: 'run.warning',
            data: {
              code: 'missing_required_outputs',
              message: `The agent finished but did not write ${missing.length} of the runbook's required output files: ${missing.join(', ')}. The runbook may read as a description rather than instructions; tell the agent to write each file.`,
            },
          });
        }
        terminal = {
          type: 'run.completed',
          data: { final_text: outcome.finalText, exit_code: exitCode, usage: sink.totals(), duration_ms },
        };
      } else {
        status = 'failed';
        const error =
          outcome?.status === 'failed'
            ? outcome.error
            : { code: 'agent_crashed', message: 'The agent ended without a result.' };
        terminal = {
          type: 'run.failed',
          data: {
            error,
            exit_code: exitCode,
            final_text: outcome?.finalText,
            usage: sink.totals(),
            duration_ms,
          },
        };
      }
      if (evaluation) {
        for (const w of evaluationWarnings(evaluation)) sink.emit({ type: 'run.warning', data: w });
        if (terminal.type === 'run.completed' || terminal.type === 'run.failed') {
          terminal = { ...terminal, data: { ...terminal.data, evaluation } } as NewEvent;
        }
        ({ status, terminal } = applyRequirePass(spec.evaluation, evaluation, status, terminal));
      }
      await sink.flush();
      // What the record keeps is what the stream keeps: redacted, and cut to the same limits.
      const ended = sink.shape(withNetwork(terminal, network));
      await this.end(
        runId,
        ['running'],
        status,
        ended,
        redactor.deep({
          ended_at: endedAt.toISOString(),
          duration_ms,
          usage: sink.totals(),
          artifacts,
          ...(collected.dropped ? { artifacts_dropped: collected.dropped } : {}),
          missing_outputs: missing,
          // The pre-flight's (on the record since the run was queued), then this attempt's.
          warnings: [...(rec.warnings ?? []), ...sink.warnings()],
          limits_hit: sink.limitsHit,
          timings,
          ...(route.budget ? { budget: budgetRecord(route.budget) } : {}),
          ...(network ? { network } : {}),
          exit_code: exitCode,
          final_text: outcome ? sink.shapeMessage(outcome.finalText) : null,
          ...(spec.conversation ? { session_id: sessionId ?? null } : {}),
          ...(saveLater ? { conversation_saving: true } : {}),
          error: ended.type === 'run.failed' ? ended.data.error : null,
          ...(evaluation ? { evaluation, evaluations: [evaluation] } : {}),
        }),
        attempt,
      );
      log.info({ status, duration_ms, exitCode, artifacts: artifacts.length }, 'run ended');
    } finally {
      // After the end is announced (or the attempt given up): what only a later turn, or nobody,
      // waits for. The job is not done until the sandbox is gone. The warm sandbox the run took is
      // replaced now (or REFILL_WAIT_MS after it was taken, if sooner), not while the run needs the CPU.
      if (warmKey) this.warm?.refill(warmKey);
      if (sandbox) {
        if (saveLater) await this.saveTurn(spec, sandbox, redactor, log);
        await sandbox.remove().catch((e) => log.warn({ err: e }, 'removing the sandbox failed'));
      }
      this.active.delete(runId);
    }
  }

  /**
   * Keeps what the next turn of the run's conversation needs: the sandbox's /app and the CLI's
   * session files (redacted), and clears `conversation_saving` on the record. A failure costs the
   * next turn its files (it says so), not this run its result; it may come after the run's end,
   * so it is logged, not emitted.
   */
  private async saveTurn(
    spec: RunJob,
    sandbox: RunningSandbox,
    redactor: Redactor,
    log: Logger,
  ): Promise<void> {
    const runtime = getRuntime(spec.agent);
    let state: ConversationStateRecord | null = null;
    try {
      if (runtime)
        state = await saveTurnFiles({
          sandbox,
          runId: spec.runId,
          runtime,
          blobs: this.deps.blobs,
          limits: this.deps.conversationState ?? DEFAULT_TURN_STATE,
          redactor,
        });
    } catch (e) {
      log.warn({ err: e }, "saving the conversation turn's files failed; the next turn starts without them");
    }
    await this.deps.runs.store
      .update(spec.runId, { conversation_saving: false, ...(state ? { conversation_state: state } : {}) })
      .catch((e) => log.warn({ err: e }, 'recording the saved conversation turn failed'));
  }

  /**
   * The run's hold on the egress proxy: the sandbox's proxy variables (none when its policy is
   * none: nothing in the sandbox then even knows of a proxy), and, at the end, what it did.
   */
  private openEgress(
    spec: RunJob,
    sink: RunEventSink,
  ): { env: Record<string, string>; close: () => NetworkSummary } {
    const proxy = this.deps.egress;
    if (!proxy || spec.egress.mode === 'none') {
      const summary = noNetworkSummary(proxy ? spec.egress : NO_EGRESS);
      return { env: {}, close: () => summary };
    }
    const session = proxy.open(spec.runId, spec.egress, (ev) => {
      // jetty_egress_connections_total: 'failed' is a connection the policy allowed that did not open.
      if (ev.type === 'net.connect') {
        const outcome = (ev.data as NetConnectData).outcome;
        this.metrics.egressConnections.inc({ outcome: outcome === 'refused' ? 'refused' : 'allowed' });
      }
      sink.emit(ev);
    });
    // A live credential while the run goes on: kept out of its events like a secret.
    sink.addRedactions({ JETTY_EGRESS_TOKEN: session.token });
    return { env: sandboxProxyEnv(session.token, SANDBOX_GATEWAY_PORT), close: () => session.close() };
  }

  /**
   * Scores the run in its sandbox (the verification script) and from its collected files (the
   * agent's report, the judge's input). A step that fails records an evaluation in error; it never
   * fails the run itself. null: cancelled meanwhile.
   */
  private async evaluateStep(
    spec: RunJob,
    sandbox: RunningSandbox,
    collected: CollectedResults,
    sink: RunEventSink,
    log: Logger,
    signal: AbortSignal,
  ): Promise<Evaluation | null> {
    const evalSpec = spec.evaluation!;
    const how =
      evalSpec.kind === 'rubric'
        ? `the judge ${evalSpec.judge?.model}`
        : evalSpec.verificationScript
          ? 'its verification script'
          : 'its required output files';
    sink.emit({
      type: 'log',
      data: { stream: 'system', line: `Evaluating the run (${evalSpec.kind}): ${how}.` },
    });
    const { deps } = this;
    try {
      return await runEvaluation(
        { ...deps, settings: deps.evaluation ?? DEFAULT_EVALUATION_SETTINGS },
        {
          runId: spec.runId,
          collection: spec.collection,
          spec: evalSpec,
          runbook: spec.runbook,
          artifacts: collected.artifacts,
          sandbox,
          previous: null,
          number: 1,
          trigger: 'run',
          redactor: sink.redactor,
          onUsage: (u) => sink.emit({ type: 'usage', data: u }),
          signal,
        },
      );
    } catch (err) {
      if (signal.aborted) return null;
      log.warn({ err }, 'evaluating the run failed');
      return failedEvaluation(evalSpec, `${(err as Error).message}.`, 1);
    }
  }

  /**
   * The event sink of one attempt. A later attempt announces itself (run.retry) and counts the
   * usage of the attempts before it: the provider billed them too.
   */
  private async attemptSink(
    runId: string,
    attempt: number,
    reason: RetryReason | null,
  ): Promise<RunEventSink> {
    const sink = new RunEventSink(this.deps.runs.events, runId, {
      attempt,
      limits: this.limits,
      // The record shows a limit as soon as it is reached, not only once the run is over.
      onLimit: (hits) => this.deps.runs.store.update(runId, { limits_hit: [...hits] }),
    });
    if (attempt <= 1) return sink;
    sink.countEarlier(await this.deps.runs.events.readAll(runId));
    const why = reason ?? 'worker_lost';
    sink.emit({
      type: 'run.retry',
      data: { attempt, reason: why, message: RETRY_MESSAGES[why](attempt - 1) },
    });
    return sink;
  }

  /** The usage of every attempt of a run, from its stream: for endings that have no sink. */
  private async usageSoFar(runId: string): Promise<UsageTotals> {
    const tally = new RunEventSink(this.deps.runs.events, runId, { attempt: 0 });
    tally.countEarlier(await this.deps.runs.events.readAll(runId));
    return tally.totals();
  }

  private async end(
    runId: string,
    from: RunStatus[],
    status: RunStatus,
    terminal: NewEvent,
    fields: Parameters<RunService['store']['update']>[1] = {},
    attempt?: number,
  ): Promise<void> {
    const extra =
      terminal.type === 'run.failed'
        ? { error: terminal.data.error, ended_at: new Date().toISOString() }
        : { ended_at: new Date().toISOString() };
    const { moved } = await this.deps.runs.store.transition(runId, from, status, { ...extra, ...fields });
    if (moved) {
      const rec = await this.deps.runs.get(runId);
      // Counted before the end is announced: whoever sees the run end sees it counted.
      if (rec && rec.agent !== 'passthrough') {
        const since = Date.parse(rec.started_at ?? rec.created_at);
        new RunMetrics(this.metrics, rec.agent, rec.provider).ended(
          status,
          rec.duration_ms ?? Date.now() - since,
        );
      }
      await this.deps.runs.finish(runId, terminal, attempt ?? rec?.attempt);
    }
  }

  /** The run's sandbox start (and the warm sandbox it takes over, if one fits), with its gateway token. */
  private planSandbox(
    spec: RunJob,
    runtime: RuntimeAdapter,
    runEnv: Record<string, string>,
    assets: SandboxFile[],
    /** A conversation follow-up's files from the previous turn; the run's own files win. */
    restored: SandboxFile[],
  ): { sandbox: SandboxSpec; token: string; warm: WarmSandbox | undefined } {
    const build = (token: string) => {
      const invocation = runtime.buildInvocation({
        runId: spec.runId,
        // A conversation's follow-up tells a resumed CLI only the new message.
        prompt: turnPrompt(spec),
        model: spec.model,
        provider: spec.provider,
        gatewayUrl: `http://127.0.0.1:${SANDBOX_GATEWAY_PORT}`,
        token,
        deadlineSec: spec.timeoutSec,
        mcpServers: spec.mcpServers,
        workdir: '/app',
        resultsDir: spec.resultsDir,
        session: turnSession(spec),
      });
      const own = new Set([...assets, ...invocation.files].map((f) => f.path));
      return buildSandboxSpec({
        runtime,
        invocation,
        shape: shapeOf(spec),
        runId: spec.runId,
        environment: spec.environment.image,
        gatewayEnv: this.gatewayEnv,
        gatewaySocketDir: this.deps.gatewaySocketDir,
        runEnv,
        assets: [...restored.filter((f) => !own.has(f.path)), ...assets],
      });
    };
    if (this.warm) return this.warm.plan(spec, runEnv, build);
    const token = `jrt_${randomBytes(24).toString('hex')}`;
    return { sandbox: build(token), token, warm: undefined };
  }

  /** The run's input files, read from the blob store (uploads, or earlier runs' artifacts). */
  /**
   * The environment check: the image is on this engine and can host the agent (else the run fails,
   * saying why), and what the runbook calls that it lacks is one warning, before the agent starts.
   */
  private async checkEnvironment(spec: RunJob, agentImage: string, sink: RunEventSink): Promise<void> {
    const report = await this.deps.environments?.prepare(spec.environment.image, agentImage);
    if (!report) return;
    for (const w of environmentWarnings(report, spec)) sink.emit({ type: 'run.warning', data: w });
  }

  private async assetFiles(spec: RunJob): Promise<SandboxFile[]> {
    const out: SandboxFile[] = [];
    for (const a of spec.assets) {
      const bytes =
        a.kind === 'upload'
          ? await this.deps.uploads.read(spec.collection, a.id, a.relPath)
          : await this.deps.blobs.readArtifact(a.id, a.relPath, this.deps.artifactLimits.maxFileBytes);
      if (!bytes) {
        throw new AppError(`The input file ${a.path} is gone from the server's storage; upload it again.`, {
          status: 400,
          type: 'invalid_request_error',
          code: 'file_not_found',
        });
      }
      out.push({ path: a.path, content: bytes });
    }
    return out;
  }

  /**
   * The run's declared secrets, from its own secret parameters first, then its collection: the
   * sandbox's variables, and every value to redact (provider keys included). A required secret
   * deleted since the request fails the run, naming it.
   */
  private async secretsOf(
    spec: RunJob,
  ): Promise<{ env: Record<string, string>; redact: Record<string, string> }> {
    const { tenancy } = this.deps;
    const own = spec.secretParams
      ? tenancy.openRunSecrets(spec.collection, spec.runId, spec.secretParams)
      : {};
    // Provider keys declared as secrets are never read here: the scripts get a gateway token.
    const plain = spec.secrets.filter((s) => s.provider === undefined);
    const wanted = plain.map((s) => s.env).filter((e) => own[e] === undefined);
    const fromCollection = await tenancy.resolveEnvironment(spec.collection, wanted);
    const env: Record<string, string> = {};
    for (const s of plain) {
      const value = own[s.env] ?? fromCollection[s.env];
      if (value !== undefined) env[s.env] = value;
      else if (s.required) {
        throw new AppError(
          `The runbook needs the secret ${s.name} (${s.env}), and collection ${spec.collection} no longer has it. Set it again and rerun.`,
          { status: 400, type: 'invalid_request_error', code: 'secret_missing' },
        );
      }
    }
    return { env, redact: { ...own, ...env } };
  }

  /**
   * Provider keys the runbook declared as secrets, for its own scripts: each gets a per-run token
   * of its own in that variable and the provider's SDK base-URL variable pointing at the in-sandbox
   * forwarder; the gateway routes the token to the provider with the collection's key and counts
   * the usage as the script's. The CLI's own variables (set by its invocation) win where the two
   * meet: there the scripts share the agent's token and route.
   */
  private async scriptRoutes(
    spec: RunJob,
    sink: RunEventSink,
    log: Logger,
    budget: RunBudget,
  ): Promise<{ env: Record<string, string>; tokens: string[] }> {
    const env: Record<string, string> = {};
    const tokens: string[] = [];
    for (const s of spec.secrets) {
      const upstream = s.provider === undefined ? undefined : providerOfKeyVariable(s.env);
      if (s.provider === undefined || upstream === undefined) continue;
      const route = await this.route(spec, s.provider, sink, log, 'script', budget).catch((err: unknown) => {
        // A key removed since the pre-flight: an optional secret is then simply absent.
        if (!s.required && isAppError(err) && err.code === 'provider_key_missing') return undefined;
        throw err;
      });
      if (route === undefined) continue;
      const token = `jrt_${randomBytes(24).toString('hex')}`;
      this.deps.gateway.register(token, route);
      tokens.push(token);
      const base = UPSTREAMS[upstream].sdkBaseUrl;
      env[s.env] = token;
      env[base.env] = `http://127.0.0.1:${SANDBOX_GATEWAY_PORT}${base.path}`;
    }
    return { env, tokens };
  }

  private async route(
    spec: RunJob,
    provider: ProviderName,
    sink: RunEventSink,
    log: Logger,
    source: 'gateway' | 'script',
    budget: RunBudget,
  ): Promise<GatewayRoute> {
    // The gateway's figures carry a price-table estimate, marked as one (the CLI may report its own).
    const onUsage = (measured: Parameters<GatewayRoute['onUsage']>[0]) => {
      const u = { ...measured, source };
      const cost = estimateCost(u);
      RunMetrics.gatewayUsage(this.metrics, provider, u, cost);
      sink.emit({
        type: 'usage',
        data: cost === undefined ? u : { ...u, cost_usd: cost, cost_estimated: true },
      });
      // The collection's daily spend, which the pre-flight checks before accepting its next run.
      if (cost !== undefined) {
        this.deps.tenancy
          .addSpend(spec.collection, cost)
          .catch((err) => log.warn({ err }, 'recording the collection’s spend failed'));
      }
    };
    const onRequest: GatewayRoute['onRequest'] = (info) => log.debug({ ...info, source }, 'gateway request');
    if (provider === 'simulated') {
      const sim = createSimulatedProvider({
        runbook: spec.runbook,
        // A dry run writes the headline deliverables too, though only the listed files are required.
        requiredOutputs: [...new Set([...spec.requiredOutputs, ...spec.primaryOutputs])],
        resultsDir: spec.resultsDir,
        workdir: '/app',
      });
      return {
        runId: spec.runId,
        provider: 'simulated',
        baseUrl: 'http://simulated.invalid',
        upstream: (r) => sim.fetch(r),
        auth: null,
        onUsage,
        onRequest,
        budget,
      };
    }
    const key = await providerKeyFor(this.deps.tenancy, spec.collection, provider, {
      serverKeys: this.deps.serverProviderKeys,
      simulated: this.deps.simulatedProvider,
    });
    const baseUrl = this.deps.upstreams[provider];
    if (!isRealProvider(provider) || !key || !baseUrl) {
      throw new AppError(
        `No key for the provider "${provider}": collection ${spec.collection} has no ${keyEnvOf(provider)} (it was removed after the run was accepted).`,
        { status: 400, type: 'invalid_request_error', code: 'provider_key_missing' },
      );
    }
    // The provider's key is redacted too, should an upstream ever echo it.
    sink.addRedactions({ [keyEnvOf(provider) ?? provider]: key });
    return {
      runId: spec.runId,
      provider,
      baseUrl,
      upstream: (r) => fetch(r),
      auth: UPSTREAMS[provider].auth(key),
      onUsage,
      onRequest,
      budget,
    };
  }

  /**
   * The run's budget, kept by the gateway. Told of the first refused call, the run says so and
   * gives the CLI BUDGET_GRACE_MS to end. A model without a price is said at the start: the cost
   * cap cannot see its calls, the token cap still applies.
   */
  private budgetOf(spec: RunJob, sink: RunEventSink, log: Logger, onExceeded: () => void): RunBudget {
    const { maxCostUsd, maxTokens } = spec.budget;
    if (maxCostUsd !== null && !priceOf(spec.model)) {
      sink.emit({
        type: 'run.warning',
        data: {
          code: 'budget_cost_unpriced',
          message: `The model ${spec.model} has no price in this server's table, so the run's cost budget (${formatUsd(maxCostUsd)}) cannot be enforced on its calls; its token budget${maxTokens === null ? ' (none set)' : ` (${maxTokens} tokens)`} still applies.`,
        },
      });
    }
    return new RunBudget(spec.budget, (e: BudgetExceeded) => {
      log.info({ limit: e.limit, budget: e.budget, spent: e.spent }, 'run budget spent');
      sink.emit({
        type: 'log',
        data: { stream: 'system', line: `${e.message} Model calls are refused from now on.` },
      });
      onExceeded();
    });
  }
}

const RETRY_MESSAGES: Record<RetryReason, (previous: number) => string> = {
  worker_shutdown: (n) =>
    `The worker of attempt ${n} shut down mid-run and handed the run back; it starts again in a fresh sandbox.`,
  worker_lost: (n) =>
    `The worker of attempt ${n} stopped holding the run (it died or hung: its lock lapsed); its sandbox was removed and the run starts again in a fresh one.`,
  infrastructure_error: (n) =>
    `Attempt ${n} hit an infrastructure error (see the log event before this); the run starts again in a fresh sandbox.`,
};

/** The budget as the run record keeps it: the limits, and what the gateway measured against them. */
function budgetRecord(b: RunBudget): NonNullable<RunRecord['budget']> {
  const spent = b.spent();
  return {
    max_cost_usd: b.limits.maxCostUsd,
    max_tokens: b.limits.maxTokens,
    spent_tokens: spent.tokens,
    spent_cost_usd: Math.round(spent.costUsd * 1e6) / 1e6,
    exceeded: b.exceeded !== null,
  };
}

/** The run's network summary on its terminal event (and so in the final jetty_metadata). */
function withNetwork(terminal: NewEvent, network: NetworkSummary | undefined): NewEvent {
  if (!network) return terminal;
  if (terminal.type === 'run.completed') return { ...terminal, data: { ...terminal.data, network } };
  if (terminal.type === 'run.failed') return { ...terminal, data: { ...terminal.data, network } };
  if (terminal.type === 'run.cancelled') return { ...terminal, data: { ...terminal.data, network } };
  return terminal;
}

class StopBeforeStart extends Error {}

/** Thrown so that BullMQ puts the job back: the run is not over, its worker is. */
class WorkerShutdown extends Error {
  constructor() {
    super('the worker shut down mid-run; the run will start again');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quiet(r: Redis): Redis {
  r.on('error', () => undefined);
  return r;
}

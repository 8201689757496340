import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AppError, isAppError } from '../errors.js';
import {
  type AgentEvent,
  emptyUsage,
  type NewEvent,
  type RunError,
  type RunStatus,
} from '../events/types.js';
import type { GatewayRoute, ProviderGateway } from '../gateway/gateway.js';
import type { UploadStore } from '../jetty/uploads.js';
import { estimateCost } from '../providers/prices.js';
import { createSimulatedProvider } from '../providers/simulated/index.js';
import { isRealProvider, keyEnvOf, type RealProvider, UPSTREAMS } from '../providers/upstreams.js';
import { JOBS, type RunJob } from '../queue/catalog.js';
import { type RedisKeys, RUN_QUEUE } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import type { RunService } from '../queue/run-service.js';
import type { RunTimings } from '../queue/run-store.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName, SandboxFile } from '../runtimes/types.js';
import {
  type CollectLimits,
  GATEWAY_MOUNT,
  GATEWAY_SOCKET_NAME,
  type RunningSandbox,
  type SandboxDriver,
} from '../sandbox/driver.js';
import type { BlobStore } from '../storage/blob-store.js';
import { providerKeyFor } from '../tenancy/provider-keys.js';
import type { TenancyStore } from '../tenancy/store.js';
import { type CollectedResults, collectResults } from './collect.js';
import { linesOf } from './lines.js';
import { composePrompt } from './prompt.js';
import { RunEventSink } from './run-events.js';

/** Port the in-sandbox forwarder listens on (127.0.0.1 inside the sandbox only). */
export const SANDBOX_GATEWAY_PORT = 4100;
/** stderr lines kept as `log` events per run; the rest are counted, not stored. */
export const MAX_STDERR_EVENTS = 500;

export interface WorkerDeps {
  redis: Redis;
  keys: RedisKeys;
  runs: RunService;
  blobs: BlobStore;
  driver: SandboxDriver;
  gateway: ProviderGateway;
  gatewaySocketDir: string;
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
  /** The server's own provider keys, for collections without theirs. */
  serverProviderKeys: Partial<Record<RealProvider, string>>;
  simulatedProvider: boolean;
  upstreams: Partial<Record<ProviderName, string>>;
  logger: Logger;
  /** How often orphaned sandboxes are looked for (ms). */
  reapIntervalMs?: number;
}

type StopReason = 'cancelled' | 'timeout' | 'shutdown';

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
  private reaper: NodeJS.Timeout | undefined;
  private readonly active = new Map<string, ActiveRun>();
  private stopping = false;
  /** Processor calls under way, so that stop() can wait for them. */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly deps: WorkerDeps) {}

  async start(): Promise<void> {
    const { deps } = this;
    await this.reapOrphans();
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
      stalledInterval: Math.max(500, Math.floor(deps.lockMs / 2)),
      maxStalledCount: 2,
    });
    this.worker.on('error', (err) => deps.logger.error({ err }, 'queue worker error'));
    // A job BullMQ gave up on without our processor finishing it (e.g. its workers kept dying):
    // the run must still end, or its record would say "running" forever.
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      // Only a job that will not be tried again: an attempt with retries left is not the end.
      void job
        .getState()
        .then((state) =>
          state === 'failed'
            ? this.end(job.id ?? '', ['pending', 'running'], 'failed', {
                type: 'run.failed',
                data: {
                  error: {
                    code: 'worker_lost',
                    message: `The run could not be carried to its end: ${err.message}`,
                  },
                  exit_code: null,
                  usage: emptyUsage(),
                  duration_ms: 0,
                },
              })
            : undefined,
        )
        .catch((e) => deps.logger.error({ err: e, runId: job.id }, 'recording a lost run failed'));
    });
    const every = deps.reapIntervalMs ?? 60_000;
    this.reaper = setInterval(() => {
      void this.reapOrphans().catch(() => undefined);
      if (deps.uploadRetentionMs !== undefined) {
        void deps.uploads.removeOlderThan(deps.uploadRetentionMs).catch(() => undefined);
      }
      void this.removeOldRunFiles().catch((err) =>
        deps.logger.warn({ err }, 'removing old run files failed'),
      );
    }, every);
    this.reaper.unref();
  }

  /**
   * Stops taking jobs. Runs under way here are stopped (their sandboxes killed and removed) and go
   * back to the queue, so another worker starts them again at once rather than after a lock lapses.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reaper) clearInterval(this.reaper);
    this.worker?.pause(true)?.catch(() => undefined);
    const running = [...this.active.values()];
    for (const run of running) run.stop('shutdown');
    // Each stopped run puts its own job back before its processor returns (see process()).
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(15_000)]);
    await this.worker?.close(true);
    if (this.subscriber) await closeRedis(this.subscriber);
    if (this.queueConnection) await closeRedis(this.queueConnection);
  }

  /** Removes sandboxes this instance owns whose runs are over, unknown, or not running here. */
  async reapOrphans(): Promise<number> {
    const owned = await this.deps.driver.listOwned();
    let removed = 0;
    for (const sb of owned) {
      if (this.active.has(sb.runId)) continue;
      const rec = await this.deps.runs.get(sb.runId);
      if (rec?.status !== 'running' || !sb.running || (await this.isOrphanRunning(sb.runId))) {
        await this.deps.driver.removeById(sb.id);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Removes the run files in DATA_DIR of runs over for longer than the retention (Redis has let
   * their records go by then), and what a collection cut short by a dead worker left behind.
   */
  async removeOldRunFiles(): Promise<{ runs: number; partial: number }> {
    const { deps } = this;
    const isLive = async (runId: string) => {
      if (this.active.has(runId)) return true;
      const status = (await deps.runs.get(runId))?.status;
      return status === 'pending' || status === 'running';
    };
    return deps.blobs.removeOlderThan(deps.runRetentionMs ?? Number.POSITIVE_INFINITY, isLive);
  }

  /** A running sandbox whose job no worker holds (its worker died) is an orphan. */
  private async isOrphanRunning(runId: string): Promise<boolean> {
    const job = await this.deps.runs.queue.getJob(runId);
    if (!job) return true;
    const state = await job.getState();
    return state !== 'active';
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
        await this.deps.runs.events.append(spec.runId, {
          type: 'log',
          data: {
            stream: 'system',
            line: `The worker hit an infrastructure error and will retry: ${(err as Error).message}`,
          },
        });
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
          usage: (await this.deps.runs.get(spec.runId))?.usage ?? emptyUsage(),
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

    const startedAt = new Date();
    // Where the time went, for the run record and the benchmark: the server's overhead is all
    // of it but agent_ms.
    const timings: RunTimings = {
      queue_ms: startedAt.getTime() - Date.parse(rec.created_at),
      sandbox_start_ms: null,
      agent_ms: null,
      collect_ms: null,
    };
    const moved = await deps.runs.store.transition(runId, ['pending', 'running'], 'running', {
      started_at: startedAt.toISOString(),
    });
    if (!moved.moved) return;
    const sink = new RunEventSink(deps.runs.events, runId);
    if (moved.previous === 'running') {
      sink.emit({
        type: 'log',
        data: {
          stream: 'system',
          line: 'The run is starting again on another attempt (a worker stopped or failed).',
        },
      });
    }

    // Cancel may have been asked for while the job waited.
    let stopReason: StopReason | undefined;
    let sandbox: RunningSandbox | undefined;
    const stop = (reason: StopReason) => {
      if (stopReason) return;
      stopReason = reason;
      log.info({ reason }, 'stopping run');
      void sandbox?.kill().catch(() => undefined);
    };
    this.active.set(runId, { stop });
    if ((await deps.runs.get(runId))?.cancel_requested) stop('cancelled');

    // The run's secrets are read now, not at request time: a value changed meanwhile is the one used.
    const secrets = await this.secretsOf(spec);
    sink.addRedactions(secrets.redact);
    const route = await this.route(spec, sink, log);
    const redactor = sink.redactor;
    const token = `jrt_${randomBytes(24).toString('hex')}`;
    deps.gateway.register(token, { ...route, retryAfterMs: runtime.gatewayRetryAfterMs });
    const deadline = setTimeout(() => stop('timeout'), spec.timeoutSec * 1000);
    let collected: CollectedResults = { artifacts: [], dropped: null, events: [] };
    let exitCode: number | null = null;
    let outcome: ReturnType<ReturnType<typeof runtime.createParser>['finish']>['outcome'] | undefined;
    try {
      if (stopReason) throw new StopBeforeStart();
      const invocation = runtime.buildInvocation({
        runId,
        prompt: composePrompt({
          runbook: spec.runbook,
          instruction: spec.instruction,
          timeoutSec: spec.timeoutSec,
          resultsDir: spec.resultsDir,
        }),
        model: spec.model,
        provider: spec.provider,
        gatewayUrl: `http://127.0.0.1:${SANDBOX_GATEWAY_PORT}`,
        token,
        deadlineSec: spec.timeoutSec,
        mcpServers: spec.mcpServers,
        workdir: '/app',
        resultsDir: spec.resultsDir,
      });
      const assets = await this.assetFiles(spec);
      // The prompt is piped to the CLI rather than written into the sandbox.
      const stdin = invocation.files.find((f) => f.path === invocation.stdinFile);
      const tStart = Date.now();
      sandbox = await deps.driver.start({
        runId,
        image: runtime.image,
        argv: invocation.argv,
        env: {
          ...secrets.env,
          ...invocation.env,
          JETTY_GATEWAY_PORT: String(SANDBOX_GATEWAY_PORT),
          JETTY_GATEWAY_SOCKET: `${GATEWAY_MOUNT}/${GATEWAY_SOCKET_NAME}`,
        },
        files: [...assets, ...invocation.files.filter((f) => f !== stdin)],
        ...(stdin ? { stdin: stdin.content } : {}),
        limits: spec.limits,
        network: spec.network,
        gatewaySocketDir: deps.gatewaySocketDir,
      });
      const tRunning = Date.now();
      timings.sandbox_start_ms = tRunning - tStart;
      if (stopReason) void sandbox.kill();
      await deps.runs.store.update(runId, {
        sandbox_id: sandbox.id,
        image: runtime.image,
        runtime_version: runtime.cliVersion,
      });
      sink.emit({
        type: 'run.started',
        data: { sandbox_id: sandbox.id, image: runtime.image, runtime_version: runtime.cliVersion },
      });
      await job.updateProgress({ sandbox_id: sandbox.id });

      const parser = runtime.createParser();
      const out = (async () => {
        for await (const line of linesOf(sandbox.stdout)) {
          if (!line) continue;
          for (const ev of parser.push(line)) sink.emit(ev);
        }
      })();
      const err = (async () => {
        let n = 0;
        for await (const line of linesOf(sandbox.stderr)) {
          if (!line.trim()) continue;
          const evs: AgentEvent[] = parser.pushStderr?.(line) ?? [
            { type: 'log', data: { stream: 'stderr', line: line.slice(0, 4000) } },
          ];
          if (++n <= MAX_STDERR_EVENTS) for (const ev of evs) sink.emit(ev);
        }
        if (n > MAX_STDERR_EVENTS)
          sink.emit({
            type: 'log',
            data: { stream: 'system', line: `${n - MAX_STDERR_EVENTS} more stderr lines were not kept.` },
          });
      })();
      ({ exitCode } = await sandbox.wait());
      timings.agent_ms = Date.now() - tRunning;
      await Promise.all([out, err]);
      const fin = parser.finish(stopReason ? null : exitCode);
      for (const ev of fin.events) sink.emit(ev);
      outcome = fin.outcome;
    } catch (e) {
      if (!(e instanceof StopBeforeStart)) throw e;
    } finally {
      clearTimeout(deadline);
      deps.gateway.unregister(token);
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
        } catch (e) {
          log.warn({ err: e }, 'collecting results failed');
          sink.emit({
            type: 'log',
            data: { stream: 'system', line: `Collecting ${spec.resultsDir} failed: ${(e as Error).message}` },
          });
        }
        await sandbox.remove().catch((e) => log.warn({ err: e }, 'removing the sandbox failed'));
        timings.collect_ms = Date.now() - tCollect;
      }
      this.active.delete(runId);
    }
    if (stopReason === 'shutdown') {
      // This worker is going away: the run is not over. Hand it back to the queue, where another
      // worker (or this one, restarted) starts it again.
      sink.emit({
        type: 'log',
        data: { stream: 'system', line: 'The worker shut down mid-run; the run goes back to the queue.' },
      });
      await sink.flush();
      throw new WorkerShutdown();
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
    } else if (outcome?.status === 'completed') {
      status = 'completed';
      if (missing.length > 0) {
        sink.emit({
          type: 'warning',
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
    await sink.flush();
    // What the record keeps goes through the same redaction as the events.
    await this.end(
      runId,
      ['running'],
      status,
      redactor.deep(terminal),
      redactor.deep({
        ended_at: endedAt.toISOString(),
        duration_ms,
        usage: sink.totals(),
        artifacts,
        ...(collected.dropped ? { artifacts_dropped: collected.dropped } : {}),
        missing_outputs: missing,
        timings,
        exit_code: exitCode,
        final_text: outcome?.finalText ?? null,
        error: terminal.type === 'run.failed' ? terminal.data.error : null,
      }),
    );
    log.info({ status, duration_ms, exitCode, artifacts: artifacts.length }, 'run ended');
  }

  private async end(
    runId: string,
    from: RunStatus[],
    status: RunStatus,
    terminal: NewEvent,
    fields: Parameters<RunService['store']['update']>[1] = {},
  ): Promise<void> {
    const extra =
      terminal.type === 'run.failed'
        ? { error: terminal.data.error, ended_at: new Date().toISOString() }
        : { ended_at: new Date().toISOString() };
    const { moved } = await this.deps.runs.store.transition(runId, from, status, { ...extra, ...fields });
    if (moved) await this.deps.runs.finish(runId, terminal);
  }

  /** The run's input files, read from the blob store (uploads, or earlier runs' artifacts). */
  private async assetFiles(spec: RunJob): Promise<SandboxFile[]> {
    const out: SandboxFile[] = [];
    for (const a of spec.assets) {
      const bytes =
        a.kind === 'upload'
          ? await this.deps.uploads.read(spec.collection, a.id, a.relPath)
          : await readArtifact(this.deps.blobs, a.id, a.relPath);
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
    const wanted = spec.secrets.map((s) => s.env).filter((e) => own[e] === undefined);
    const fromCollection = await tenancy.resolveEnvironment(spec.collection, wanted);
    const env: Record<string, string> = {};
    for (const s of spec.secrets) {
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

  private async route(spec: RunJob, sink: RunEventSink, log: Logger): Promise<GatewayRoute> {
    // The gateway's figures carry a price-table estimate, marked as one (the CLI may report its own).
    const onUsage = (u: Parameters<GatewayRoute['onUsage']>[0]) => {
      const cost = estimateCost(u);
      sink.emit({
        type: 'usage',
        data: cost === undefined ? u : { ...u, cost_usd: cost, cost_estimated: true },
      });
    };
    const onRequest: GatewayRoute['onRequest'] = (info) => log.debug(info, 'gateway request');
    if (spec.provider === 'simulated') {
      const sim = createSimulatedProvider({
        runbook: spec.runbook,
        requiredOutputs: spec.requiredOutputs,
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
      };
    }
    const provider = spec.provider;
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
    };
  }
}

async function readArtifact(blobs: BlobStore, runId: string, relPath: string): Promise<Buffer | null> {
  const full = blobs.artifactPath(runId, relPath);
  return full ? readFile(full).catch(() => null) : null;
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

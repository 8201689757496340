import { writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { EgressProxy, type EgressProxyOptions } from '../egress/proxy.js';
import { DEFAULT_SNAPSHOT, snapshotByName } from '../environments/snapshots.js';
import { EnvironmentStore } from '../environments/store.js';
import { EventStreamStore } from '../events/stream-store.js';
import { ProviderGateway } from '../gateway/gateway.js';
import {
  claimSocketDir,
  probeHttpSocket,
  releaseSocketDir,
  sweepStaleSocketDirs,
} from '../gateway/socket-dir.js';
import { buildApp } from '../http/app.js';
import { TaskStore } from '../jetty/tasks.js';
import { UploadStore } from '../jetty/uploads.js';
import { Metrics, type QueueCounts } from '../metrics/registry.js';
import { AddressPolicy, systemResolver } from '../net/address-policy.js';
import { deploymentId } from '../queue/deployment.js';
import { RedisKeys } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import { RedisOutageLog } from '../queue/redis-outage.js';
import { connectWaiting, redactRedisUrl } from '../queue/redis-wait.js';
import { RunService } from '../queue/run-service.js';
import { listRuntimes } from '../runtimes/registry.js';
import { GATEWAY_SOCKET_NAME, type SandboxDriver } from '../sandbox/driver.js';
import { BlobStore } from '../storage/blob-store.js';
import { openObjectStore } from '../storage/open-store.js';
import { ensureBootstrap } from '../tenancy/bootstrap.js';
import { loadMasterKey, masterKeyCheckKey } from '../tenancy/master-key-file.js';
import { TenancyStore } from '../tenancy/store.js';
import { WebhookWorker } from '../webhooks/delivery-worker.js';
import { WorkerEnvironments } from '../worker/environment.js';
import { RegradeWorker } from '../worker/regrade-worker.js';
import { RunWorker } from '../worker/run-worker.js';
import { checkReadiness, type Readiness, startWorkerHttp } from './worker-http.js';

export type Role = 'api' | 'worker' | 'all';

export interface Server {
  app: FastifyInstance | undefined;
  worker: RunWorker | undefined;
  runs: RunService;
  redis: Redis;
  /** Collections, keys and environments (on the API's connection). */
  tenancy: TenancyStore;
  /** Listening address of the API, when it listens. */
  url: string | undefined;
  /** Listening address of a worker-only process's /healthz and /readyz (WORKER_HTTP_PORT). */
  workerUrl: string | undefined;
  /** The directory this process's sandboxes get mounted (its gateway socket is in it). */
  socketDir: string | undefined;
  close(): Promise<void>;
}

/**
 * Wires one process: the API, a worker, or both, from a parsed config. src/main/server.ts calls it
 * for real; tests call it with their own Redis, key prefix, and (for Redis-level tests) driver.
 */
export async function startServer(
  config: Config,
  opts: {
    role: Role;
    logger: Logger;
    driver?: SandboxDriver;
    listen?: boolean;
    metrics?: Metrics;
    /** Tests only: how the egress proxy opens its connections (see WorkerSideContext). */
    egressConnect?: EgressProxyOptions['connect'];
  },
): Promise<Server> {
  const { role, logger } = opts;
  // Two ways to wait for Redis: the API fails fast (while it is down, a request gets its 503 at
  // once, and nothing half-accepted), the worker waits it out (a Redis restart must not lose a
  // running agent's events). Either way the outage is logged once, and its end.
  const outage = new RedisOutageLog(logger);
  const connect = async (patient: boolean) => {
    const r = new Redis(config.redisUrl, {
      maxRetriesPerRequest: patient ? null : 2,
      enableOfflineQueue: patient,
      lazyConnect: true,
      // No auto-pipelining: the burst it served (a thousand followers joining a run at once, each
      // a key lookup, a record read and its stream's last event) now makes one read of each
      // (singleFlight), and for commands that come one at a time its pipeline per tick cost more
      // CPU than the write it saved (bench/README.md, followers).
    });
    outage.watch(r);
    // Started beside its Redis (docker compose), a process waits for it rather than exit at once.
    await connectWaiting(r, {
      url: config.redisUrl,
      waitMs: config.redisStartupWaitSec * 1000,
      onWait: (reason) =>
        logger.warn(
          { redis: redactRedisUrl(config.redisUrl), reason, wait_sec: config.redisStartupWaitSec },
          'waiting for Redis (REDIS_URL) to answer',
        ),
    });
    return r;
  };
  // One registry per process: served on the API port, or a worker-only process's health port.
  const metrics = opts.metrics ?? new Metrics({ processMetrics: true });
  const redis = await connect(role === 'worker');
  // Before anything else uses Redis: a process with the wrong key must change nothing.
  const masterKey = await loadMasterKey(
    config.masterKey,
    config.dataDir,
    { redis, key: masterKeyCheckKey(config.keyPrefix) },
    { multiHost: config.blobs.store.kind === 's3' },
  ).catch(async (err) => {
    await closeRedis(redis);
    throw err;
  });
  if (masterKey.source === 'new-file') {
    logger.warn(
      { file: masterKey.file },
      'no JETTY_MASTER_KEY: generated one into this file. Keep it safe (it decrypts every collection secret), and set JETTY_MASTER_KEY to its content on every host when API and workers run on several.',
    );
  }
  const keys = new RedisKeys(config.keyPrefix);
  // Run files go to the object store; only scratch space (collections, uploads being read) is local.
  const objects = openObjectStore(config.blobs, config.dataDir);
  await objects.check().catch(async (err) => {
    await closeRedis(redis);
    throw err;
  });
  const scratch = path.join(config.dataDir, 'scratch');
  const blobs = new BlobStore(objects, scratch, {
    maxJsonBytes: config.blobs.maxJsonBytes,
    uploadConcurrency: config.blobs.store.kind === 's3' ? config.blobs.store.uploadConcurrency : 4,
  });
  const storeProbe = () => objects.check().then(() => null);
  const services = (r: Redis) =>
    new RunService({
      redis: r,
      keys,
      // The stream's own cap backs the worker's event limit (notices and the end pass it).
      events: new EventStreamStore(r, (id) => keys.events(id), config.runLimits.maxEvents, {
        maxFollowers: config.maxFollowers,
      }),
      blobs,
      retentionSec: config.retentionSec,
      webhooks: { attempts: config.webhooks.attempts, backoffMs: config.webhooks.backoffMs },
      metrics,
    });
  const runs = services(redis);
  const unwatchQueue = metrics.watchQueue('runs', () => queueCounts(runs.queue));
  const tenancy = (r: Redis) => new TenancyStore(r, config.keyPrefix, masterKey.key);
  const store = tenancy(redis);
  const uploads = new UploadStore(objects, scratch, config.uploads);

  const closers: Array<() => Promise<unknown>> = [];
  let worker: RunWorker | undefined;
  let driver = opts.driver;
  try {
    let readiness: (() => Promise<Readiness>) | undefined;
    let socketDir: string | undefined;
    let workerUrl: string | undefined;
    if (role !== 'api') {
      const side = await startWorkerSide(config, {
        role,
        logger,
        redis,
        runs,
        services,
        connect,
        driver,
        closers,
        blobs,
        uploads,
        tenancy,
        storeProbe,
        metrics,
        ...(opts.egressConnect ? { egressConnect: opts.egressConnect } : {}),
      });
      ({ worker, driver, readiness, socketDir } = side);
      if (role === 'worker' && config.workerHttp.port !== 0) {
        const http = await startWorkerHttp({
          ...config.workerHttp,
          readiness: side.readiness,
          metrics: { registry: metrics, token: config.metricsToken },
        });
        workerUrl = http.url;
        closers.unshift(() => http.close());
        logger.info({ url: workerUrl }, 'worker health listening');
      }
    }
    let app: FastifyInstance | undefined;
    let url: string | undefined;
    if (role !== 'worker') {
      if (config.bootstrap) await bootstrap(store, config.bootstrap, config.dataDir, logger);
      app = await buildApp({
        runs,
        blobs,
        tenancy: store,
        adminToken: config.adminToken,
        uploads,
        tasks: new TaskStore(redis, config.keyPrefix),
        environments: new EnvironmentStore(
          redis,
          new RedisKeys(config.keyPrefix),
          config.environmentProbeTtlSec,
        ),
        logger,
        heartbeatMs: config.heartbeatMs,
        maxBodyBytes: config.maxBodyBytes,
        ui: config.ui,
        maxJsonDepth: config.maxJsonDepth,
        maxHeaderBytes: config.maxHeaderBytes,
        defaults: {
          agent: config.defaultAgent,
          timeoutSec: config.runTimeoutSec,
          maxTimeoutSec: config.runMaxTimeoutSec,
          timeoutHintSec: config.timeoutHintSec,
          sandbox: config.sandbox,
          egress: config.egress.policy,
          budget: config.budget,
          evaluation: { judge: config.evaluation.judge, regradeWaitSec: config.evaluation.regradeWaitSec },
          experiments: config.experiments,
        },
        serverProviderKeys: config.providerKeys,
        simulatedProvider: config.simulatedProvider,
        conversations: {
          historyMaxBytes: config.conversations.historyMaxBytes,
          maxTurns: config.conversations.maxTurns,
        },
        upstreamUrl: (p) => config.upstreams[p],
        readiness: async () =>
          (readiness
            ? await readiness()
            : await checkReadiness({ redis: () => pingRedis(redis), blob_store: storeProbe })
          ).checks,
        operations: {
          metrics,
          metricsToken: config.metricsToken,
          corsOrigins: config.corsOrigins,
          rateLimit: { ...config.rateLimit, redis, keyPrefix: config.keyPrefix },
          dashboard: { queues: [runs.queue, runs.webhookQueue], sessionTtlSec: config.adminSessionTtlSec },
        },
      });
      if (opts.listen !== false)
        url = await app.listen({ host: config.host, port: config.port, backlog: config.listenBacklog });
      closers.unshift(() => app!.close());
    }
    closers.push(
      async () => unwatchQueue(),
      () => runs.close(),
      () => closeRedis(redis),
    );
    return {
      app,
      worker,
      runs,
      redis,
      tenancy: store,
      url,
      workerUrl,
      socketDir,
      async close() {
        for (const close of closers) await close().catch((err) => logger.warn({ err }, 'close failed'));
      },
    };
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    await runs.close().catch(() => undefined);
    redis.disconnect();
    throw err;
  }
}

/**
 * This process's gateway, in a directory of its own under GATEWAY_SOCKET_DIR (see
 * src/gateway/socket-dir.ts); directories of workers that died are swept at start and every minute.
 */
async function startGateway(
  config: Config,
  logger: Logger,
  closers: Array<() => Promise<unknown>>,
  egress: EgressProxy,
) {
  const socketRoot = path.resolve(config.gatewaySocketDir);
  const socketDir = await claimSocketDir(socketRoot, config.instance, process.pid, GATEWAY_SOCKET_NAME);
  const gateway = new ProviderGateway(
    path.join(socketDir, GATEWAY_SOCKET_NAME),
    logger.child({ component: 'gateway' }),
    egress,
  );
  closers.push(
    () => gateway.stop(),
    () => releaseSocketDir(socketDir),
  );
  await gateway.start();
  const sweepDirs = () =>
    sweepStaleSocketDirs(socketRoot, socketDir).then(
      (removed) =>
        removed.length && logger.info({ removed }, 'removed gateway directories of stopped workers'),
      (err) => logger.warn({ err }, 'sweeping gateway directories failed'),
    );
  await sweepDirs();
  const dirSweeper = setInterval(() => void sweepDirs(), 60_000).unref();
  closers.push(async () => clearInterval(dirSweeper));

  return { gateway, socketDir };
}

interface WorkerSideContext {
  role: Role;
  logger: Logger;
  redis: Redis;
  runs: RunService;
  services: (r: Redis) => RunService;
  connect: (patient: boolean) => Promise<Redis>;
  driver: SandboxDriver | undefined;
  blobs: BlobStore;
  uploads: UploadStore;
  tenancy: (r: Redis) => TenancyStore;
  /** Null when the object store answers, else why not. */
  storeProbe: () => Promise<string | null>;
  metrics: Metrics;
  /** Added to in the order they must run at close (see startServer). */
  closers: Array<() => Promise<unknown>>;
  /** Tests only: how the egress proxy opens its connections (a guard on where they go). */
  egressConnect?: EgressProxyOptions['connect'];
}

/**
 * The worker half of a process: its own gateway socket directory, the gateway, the sandbox driver,
 * webhook deliveries and the run worker. Returns what the rest of the process needs of it.
 */
async function startWorkerSide(config: Config, ctx: WorkerSideContext) {
  const { role, logger, closers } = ctx;
  const keys = new RedisKeys(config.keyPrefix);
  const workerRedis = role === 'worker' ? ctx.redis : await ctx.connect(true);
  const workerRuns = role === 'worker' ? ctx.runs : ctx.services(workerRedis);
  if (role === 'all')
    closers.push(
      () => workerRuns.close(),
      () => closeRedis(workerRedis),
    );
  // Sandboxes reach other hosts only through this proxy, behind the gateway's socket. Beside
  // NETWORK_ALLOW_PRIVATE's ranges it refuses this host's own addresses (its public one included).
  const egress = new EgressProxy({
    addresses: new AddressPolicy(config.network.allowPrivate, systemResolver, ownAddresses),
    limits: config.egress.limits,
    logger: logger.child({ component: 'egress' }),
    ...(ctx.egressConnect ? { connect: ctx.egressConnect } : {}),
  });
  const { gateway, socketDir } = await startGateway(config, logger, closers, egress);

  let driver = ctx.driver;
  // Loaded only where sandboxes run: an API-only process needs no Docker client.
  if (!driver) {
    const [{ default: Dockerode }, { DockerSandboxDriver }] = await Promise.all([
      import('dockerode'),
      import('../sandbox/docker-driver.js'),
    ]);
    driver = new DockerSandboxDriver({
      docker: new Dockerode(),
      instance: config.instance,
      deployment: { id: await deploymentId(workerRedis, keys), keyPrefix: config.keyPrefix },
      worker: path.basename(socketDir),
    });
  }
  await driver.ping();
  // Webhook deliveries go wherever runs go, on their own queue and concurrency: a slow
  // receiver holds up only other deliveries, never a run.
  const webhooks = new WebhookWorker({
    redis: workerRedis,
    keys,
    runs: workerRuns,
    concurrency: config.webhooks.concurrency,
    timeoutMs: config.webhooks.timeoutMs,
    policy: new AddressPolicy(config.network.allowPrivate),
    maxRedirects: config.webhooks.maxRedirects,
    maxWaitMs: config.retentionSec * 1000,
    logger: logger.child({ component: 'webhooks' }),
  });
  await webhooks.start();
  closers.unshift(() => webhooks.stop());
  const environments = new WorkerEnvironments(
    driver,
    new EnvironmentStore(workerRedis, keys, config.environmentProbeTtlSec),
    config.environmentProbeMaxBytes,
  );
  const worker = new RunWorker({
    redis: workerRedis,
    keys,
    runs: workerRuns,
    blobs: ctx.blobs,
    driver,
    gateway,
    egress,
    gatewaySocketDir: socketDir,
    workerName: path.basename(socketDir),
    concurrency: config.workerConcurrency,
    lockMs: config.workerLockMs,
    tenancy: ctx.tenancy(workerRedis),
    uploads: ctx.uploads,
    uploadRetentionMs: config.retentionSec * 1000,
    runRetentionMs: config.retentionSec * 1000,
    uploadSweepIntervalMs: config.blobs.sweepMs,
    artifactLimits: config.artifacts,
    conversationState: {
      maxBytes: config.conversations.stateMaxBytes,
      maxFiles: config.conversations.stateMaxFiles,
    },
    serverProviderKeys: config.providerKeys,
    simulatedProvider: config.simulatedProvider,
    upstreams: config.upstreams,
    sweepIntervalMs: config.sandboxSweepMs,
    runLimits: config.runLimits,
    warmPool: {
      size: config.warmPool.size,
      memoryBytes: config.warmPool.memoryBytes,
      idleMs: config.warmPool.idleSec * 1000,
      runtimes: config.warmPool.runtimes,
      defaults: {
        timeoutSec: config.runTimeoutSec,
        limits: {
          cpus: config.sandbox.cpus,
          memoryBytes: config.sandbox.memoryBytes,
          pids: config.sandbox.pids,
          diskBytes: config.sandbox.diskBytes,
        },
        // The first warm sandboxes fit the provider runs are likeliest to use here.
        provider: config.simulatedProvider ? 'simulated' : 'anthropic',
        // Runs that name no snapshot run in the default one's image.
        environment: snapshotByName(DEFAULT_SNAPSHOT)!.image,
      },
    },
    metrics: ctx.metrics,
    environments,
    evaluation: config.evaluation,
    logger: logger.child({ component: 'worker' }),
  });
  await worker.start();
  closers.unshift(() => worker.stop());
  // In the background: what this engine has of each snapshot, for GET /v1/snapshots (and, with
  // ENVIRONMENT_SURVEY, each runtime probed on each snapshot once).
  void environments
    .reportSnapshots(config.sandbox.snapshots, listRuntimes(), config.environmentSurvey)
    .catch((err) => logger.warn({ err }, 'reporting the snapshots failed'));
  // Re-grades need this worker's gateway (the judge is behind it), so they are done here too.
  const regrades = new RegradeWorker({
    redis: workerRedis,
    keys,
    runs: workerRuns,
    gateway,
    blobs: ctx.blobs,
    tenancy: ctx.tenancy(workerRedis),
    serverProviderKeys: config.providerKeys,
    simulatedProvider: config.simulatedProvider,
    upstreams: config.upstreams,
    settings: config.evaluation,
    logger: logger.child({ component: 'regrade' }),
  });
  await regrades.start();
  closers.unshift(() => regrades.stop());
  logger.info({ concurrency: config.workerConcurrency, socket: gateway.socketPath }, 'worker started');
  const sandboxDriver = driver;
  const readiness = () =>
    checkReadiness({
      redis: () => pingRedis(ctx.redis),
      docker: () => sandboxDriver.ping().then(() => null),
      // A real request on the socket the sandboxes use: a deleted or dead socket fails it.
      gateway: () => probeHttpSocket(gateway.socketPath),
      blob_store: ctx.storeProbe,
    });
  return { worker, driver, readiness, socketDir };
}

/** Waiting (prioritized ones too), active and delayed jobs of a queue, for jetty_queue_jobs. */
async function queueCounts(queue: Queue): Promise<QueueCounts> {
  const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
  return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0 };
}

/** This host's addresses, read at each check (interfaces come and go). */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

function pingRedis(redis: Redis): Promise<string | null> {
  return redis.ping().then(
    () => null,
    (err: Error) => `Redis does not answer: ${err.message}`,
  );
}

/** The first collection and key (JETTY_BOOTSTRAP_*): made sure of at every start, idempotently. */
async function bootstrap(
  store: TenancyStore,
  opts: NonNullable<Config['bootstrap']>,
  dataDir: string,
  logger: Logger,
): Promise<void> {
  const result = await ensureBootstrap(store, { collection: opts.collection, apiKey: opts.apiKey });
  const at = { collection: result.collection.name, outcome: result.apiKeyOutcome };
  if (result.generatedKey) {
    // A key never goes to a log: it is written where only this machine's operator can read it.
    const file = path.resolve(dataDir, 'bootstrap-api-key');
    await writeFile(file, `${result.generatedKey}\n`, { mode: 0o600 });
    logger.warn({ ...at, file }, 'bootstrap: generated the first API key of the collection into this file');
  } else if (result.apiKeyOutcome === 'revoked') {
    logger.warn(at, 'bootstrap: JETTY_BOOTSTRAP_API_KEY was revoked and stays revoked; unset or replace it');
  } else {
    logger.info(at, 'bootstrap: collection ready');
  }
}

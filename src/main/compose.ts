import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { EventStreamStore } from '../events/stream-store.js';
import { ProviderGateway } from '../gateway/gateway.js';
import { buildApp } from '../http/app.js';
import { TaskStore } from '../jetty/tasks.js';
import { UploadStore } from '../jetty/uploads.js';
import { RedisKeys } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import { RunService } from '../queue/run-service.js';
import { GATEWAY_SOCKET_NAME, type SandboxDriver } from '../sandbox/driver.js';
import { BlobStore } from '../storage/blob-store.js';
import { ensureBootstrap } from '../tenancy/bootstrap.js';
import { loadMasterKey } from '../tenancy/master-key-file.js';
import { TenancyStore } from '../tenancy/store.js';
import { WebhookWorker } from '../webhooks/delivery-worker.js';
import { RunWorker } from '../worker/run-worker.js';

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
  close(): Promise<void>;
}

/**
 * Wires one process: the API, a worker, or both, from a parsed config. src/main/server.ts calls it
 * for real; tests call it with their own Redis, key prefix, and (for Redis-level tests) driver.
 */
export async function startServer(
  config: Config,
  opts: { role: Role; logger: Logger; driver?: SandboxDriver; listen?: boolean },
): Promise<Server> {
  const { role, logger } = opts;
  // Two ways to wait for Redis: the API fails fast (a request gets a 503 in seconds, and nothing
  // half-accepted), the worker waits it out (a Redis restart must not lose a running agent's events).
  const connect = async (patient: boolean) => {
    const r = new Redis(config.redisUrl, { maxRetriesPerRequest: patient ? null : 2, lazyConnect: true });
    r.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    await r.connect();
    return r;
  };
  const redis = await connect(role === 'worker');
  const keys = new RedisKeys(config.keyPrefix);
  const blobs = new BlobStore(path.join(config.dataDir, 'blobs'));
  const services = (r: Redis) =>
    new RunService({
      redis: r,
      keys,
      events: new EventStreamStore(r, (id) => keys.events(id)),
      blobs,
      retentionSec: config.retentionSec,
      webhooks: { attempts: config.webhooks.attempts, backoffMs: config.webhooks.backoffMs },
    });
  const runs = services(redis);
  const masterKey = await loadMasterKey(config.masterKey, config.dataDir);
  if (masterKey.source === 'new-file') {
    logger.warn(
      { file: masterKey.file },
      'no JETTY_MASTER_KEY: generated one into this file. Keep it safe (it decrypts every collection secret), and set JETTY_MASTER_KEY to its content on every host when API and workers run on several.',
    );
  }
  const tenancy = (r: Redis) => new TenancyStore(r, config.keyPrefix, masterKey.key);
  const store = tenancy(redis);
  const uploads = new UploadStore(blobs.root, config.uploads);

  const closers: Array<() => Promise<unknown>> = [];
  let worker: RunWorker | undefined;
  let driver = opts.driver;
  try {
    if (role !== 'api') {
      const workerRedis = role === 'worker' ? redis : await connect(true);
      const workerRuns = role === 'worker' ? runs : services(workerRedis);
      if (role === 'all')
        closers.push(
          () => workerRuns.close(),
          () => closeRedis(workerRedis),
        );
      const socketDir = path.resolve(config.gatewaySocketDir);
      const gateway = new ProviderGateway(
        path.join(socketDir, GATEWAY_SOCKET_NAME),
        logger.child({ component: 'gateway' }),
      );
      await gateway.start();
      closers.push(() => gateway.stop());
      // Loaded only where sandboxes run: an API-only process needs no Docker client.
      if (!driver) {
        const [{ default: Dockerode }, { DockerSandboxDriver }] = await Promise.all([
          import('dockerode'),
          import('../sandbox/docker-driver.js'),
        ]);
        driver = new DockerSandboxDriver({ docker: new Dockerode(), instance: config.instance });
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
        maxWaitMs: config.retentionSec * 1000,
        logger: logger.child({ component: 'webhooks' }),
      });
      await webhooks.start();
      closers.unshift(() => webhooks.stop());
      worker = new RunWorker({
        redis: workerRedis,
        keys,
        runs: workerRuns,
        blobs,
        driver,
        gateway,
        gatewaySocketDir: socketDir,
        concurrency: config.workerConcurrency,
        lockMs: config.workerLockMs,
        tenancy: tenancy(workerRedis),
        uploads,
        uploadRetentionMs: config.retentionSec * 1000,
        runRetentionMs: config.retentionSec * 1000,
        artifactLimits: config.artifacts,
        serverProviderKeys: config.providerKeys,
        simulatedProvider: config.simulatedProvider,
        upstreams: config.upstreams,
        logger: logger.child({ component: 'worker' }),
      });
      await worker.start();
      closers.unshift(() => worker!.stop());
      logger.info({ concurrency: config.workerConcurrency, socket: gateway.socketPath }, 'worker started');
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
        logger,
        heartbeatMs: config.heartbeatMs,
        maxBodyBytes: config.maxBodyBytes,
        defaults: {
          agent: config.defaultAgent,
          timeoutSec: config.runTimeoutSec,
          maxTimeoutSec: config.runMaxTimeoutSec,
          timeoutHintSec: config.timeoutHintSec,
          sandbox: config.sandbox,
        },
        serverProviderKeys: config.providerKeys,
        simulatedProvider: config.simulatedProvider,
        upstreamUrl: (p) => config.upstreams[p],
        readiness: async () => {
          const checks: Record<string, boolean> = {};
          checks.redis = await redis.ping().then(
            () => true,
            () => false,
          );
          if (driver) {
            checks.docker = await driver.ping().then(
              () => true,
              () => false,
            );
          }
          return checks;
        },
      });
      if (opts.listen !== false) url = await app.listen({ host: config.host, port: config.port });
      closers.unshift(() => app!.close());
    }
    closers.push(
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

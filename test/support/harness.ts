import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/index.js';
import type { EgressProxyOptions } from '../../src/egress/proxy.js';
import { type Server, startServer } from '../../src/main/compose.js';
import type { SandboxDriver } from '../../src/sandbox/driver.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { startRedis, type TestRedis } from './redis.js';

/** A whole server (API + worker) in this process, on its own Redis and data directory. */
export interface Harness {
  server: Server;
  url: string;
  /** The test collection and its API key (every request below sends it). */
  collection: string;
  key: string;
  /** `{authorization: 'Bearer <key>'}` */
  auth: Record<string, string>;
  /** fetch with the collection's key (a header of `init` with the same name wins). */
  fetch(url: string, init?: RequestInit): Promise<Response>;
  postJson(url: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Another collection with its own key, for tenancy tests. */
  addCollection(name: string): Promise<{ collection: string; key: string; auth: Record<string, string> }>;
  /** Run jobs ever enqueued (in any state): what "nothing was queued" compares. */
  jobsEnqueued(): Promise<number>;
  /** Sets variables of the test collection's environment (null deletes). */
  setEnv(vars: Record<string, string | null>): Promise<void>;
  redis: TestRedis;
  dataDir: string;
  instance: string;
  stop(): Promise<void>;
}

export async function startHarness(
  opts: {
    driver?: SandboxDriver;
    env?: Record<string, string>;
    logFile?: string;
    /** How the egress proxy opens connections: a test's guard on where they may go. */
    egressConnect?: EgressProxyOptions['connect'];
  } = {},
): Promise<Harness> {
  const redis = await startRedis();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-test-'));
  const instance = `test-${randomBytes(4).toString('hex')}`;
  const collection = 'test-collection';
  const key = generateApiKey();
  const config = loadConfig({
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: instance,
    DATA_DIR: dataDir,
    INSTANCE_NAME: instance,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    HEARTBEAT_MS: '1000',
    JETTY_BOOTSTRAP_COLLECTION: collection,
    JETTY_BOOTSTRAP_API_KEY: key,
    // Probing every runtime on every snapshot at start costs each test file seconds of CPU.
    ENVIRONMENT_SURVEY: 'false',
    ...opts.env,
  });
  const logger = opts.logFile
    ? pino({ level: 'debug' }, pino.destination({ dest: opts.logFile, sync: true }))
    : pino({ level: config.logLevel });
  let server: Server;
  try {
    server = await startServer(config, {
      role: 'all',
      logger,
      ...(opts.driver ? { driver: opts.driver } : {}),
      ...(opts.egressConnect ? { egressConnect: opts.egressConnect } : {}),
    });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  const auth = bearer(key);
  const authed =
    (headers: Record<string, string>) =>
    (url: string, init: RequestInit = {}) =>
      fetch(url, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
  return {
    server,
    url: server.url!,
    collection,
    key,
    auth,
    fetch: authed(auth),
    postJson: (url, body, headers = {}) => postJson(url, body, { ...auth, ...headers }),
    async addCollection(name) {
      await server.tenancy.createCollection({ name });
      const made = await server.tenancy.createApiKey(name);
      return { collection: name, key: made.key, auth: bearer(made.key) };
    },
    async jobsEnqueued() {
      const counts = await server.runs.queue.getJobCounts();
      return Object.values(counts).reduce((a, b) => a + b, 0);
    },
    async setEnv(vars) {
      await server.tenancy.patchEnvironment(collection, vars);
    },
    redis,
    dataDir,
    instance,
    async stop() {
      await server.close();
      await redis.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

export function runbookRequest(
  runbook: string,
  extra: { stream?: boolean; jetty?: Record<string, unknown>; model?: string } = {},
) {
  return {
    model: extra.model ?? 'claude-sonnet-4-6',
    stream: extra.stream ?? true,
    messages: [
      { role: 'system', content: runbook },
      { role: 'user', content: 'Execute the runbook.' },
    ],
    jetty: { runbook: true, model_provider: 'simulated', ...extra.jetty },
  };
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { observations, type Scrape, scrape, value } from '../support/prometheus.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { removeDeploymentContainers } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// /metrics of both roles, read by a Prometheus text-format parser, before and after real runs: an
// API process (in this one) and a worker-only process (dist/, its metrics on WORKER_HTTP_PORT), on
// real Redis, the real engine and the real claude CLI, with the simulated model.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const KEY = generateApiKey();
const RUNBOOK = [
  '---',
  'agent: claude-code',
  '---',
  '# Metrics',
  '```simulate',
  '- run: mkdir -p /app/results && echo counted > /app/results/out.txt',
  '- sleep_ms: 1500',
  '- say: wrote out.txt',
  '```',
  '',
].join('\n');
const CLAUDE = { runtime: 'claude-code', provider: 'simulated' };

let redis: TestRedis;
let api: Server;
let url = '';
let dataDir = '';
let env: Record<string, string> = {};
let worker: { child: ChildProcess; http: string; log: string } | undefined;

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-metrics-'));
  env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: `metrics-${randomBytes(4).toString('hex')}`,
    DATA_DIR: dataDir,
    JETTY_BOOTSTRAP_COLLECTION: 'metrics-tests',
    JETTY_BOOTSTRAP_API_KEY: KEY,
    LOG_LEVEL: 'info',
  };
  api = await startServer(loadConfig({ ...env, PORT: '0' }), {
    role: 'api',
    logger: pino({ level: 'silent' }),
  });
  url = api.url!;
});

afterAll(async () => {
  if (worker) {
    worker.child.kill('SIGTERM');
    await new Promise((r) => worker?.child.once('exit', r));
  }
  const left = await removeDeploymentContainers(docker, env.JETTY_KEY_PREFIX!);
  await api?.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

async function startWorker(): Promise<{ child: ChildProcess; http: string; log: string }> {
  const log = path.join(dataDir, 'worker.log');
  const fd = openSync(log, 'a');
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
    env: { PATH: process.env.PATH ?? '', ...env, WORKER_HTTP_PORT: String(port) },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const http = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => (await fetch(`${http}/readyz`).catch(() => null))?.status === 200,
    30_000,
    'the worker to be ready',
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${readFileSync(log, 'utf8').slice(-3000)}`);
  });
  return { child, http, log };
}

describe('/metrics of an API process and a worker process', () => {
  it('the API shows a queued run waiting, and counts it ended when it is cancelled before a worker took it', async () => {
    const before = await scrape(url);
    expect(value(before, 'jetty_queue_jobs', { queue: 'runs', state: 'waiting' })).toBe(0);
    const res = await postJson(
      `${url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
      bearer(KEY),
    );
    expect(res.status).toBe(202);
    const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    expect(value(await scrape(url), 'jetty_queue_jobs', { queue: 'runs', state: 'waiting' })).toBe(1);

    const cancel = await fetch(`${url}/v1/runs/${id}/cancel`, { method: 'POST', headers: bearer(KEY) });
    expect(cancel.status).toBe(200);
    const after = await scrape(url);
    expect(value(after, 'jetty_queue_jobs', { queue: 'runs', state: 'waiting' })).toBe(0);
    expect(value(after, 'jetty_runs_ended_total', { ...CLAUDE, status: 'cancelled' })).toBe(1);
  });

  it('after a real run, the worker counts it started and completed, with its timings and gateway tokens', async () => {
    worker = await startWorker();
    const idle = await scrape(worker.http);
    expect(value(idle, 'jetty_runs_started_total')).toBe(0);

    const res = await postJson(`${url}/v1/chat/completions`, runbookRequest(RUNBOOK), bearer(KEY));
    expect(res.status).toBe(200);
    let openWhileStreaming: number | undefined;
    let finish: string | undefined;
    for await (const ev of readSse(res.body!)) {
      if (!ev.data || ev.data === '[DONE]') continue;
      const chunk = JSON.parse(ev.data) as { choices: Array<{ finish_reason: string | null }> };
      // Looked at once, mid-stream: the chat stream is the one open SSE response of the API.
      openWhileStreaming ??= value(await scrape(url), 'jetty_sse_streams_open');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('stop');
    expect(openWhileStreaming).toBe(1);

    const w: Scrape = await scrape(worker.http);
    expect(value(w, 'jetty_runs_started_total', CLAUDE)).toBe(1);
    expect(value(w, 'jetty_runs_ended_total', { ...CLAUDE, status: 'completed' })).toBe(1);
    expect(
      observations(w, 'jetty_run_duration_seconds', { runtime: 'claude-code', status: 'completed' }),
    ).toBe(1);
    expect(observations(w, 'jetty_run_first_output_seconds', { runtime: 'claude-code' })).toBe(1);
    expect(observations(w, 'jetty_sandbox_start_seconds', { runtime: 'claude-code' })).toBe(1);
    expect(observations(w, 'jetty_artifact_collection_seconds')).toBe(1);
    expect(value(w, 'jetty_gateway_tokens_total', { provider: 'simulated', kind: 'output' })).toBeGreaterThan(
      0,
    );
    expect(w.types.get('jetty_egress_connections')).toBe('counter');
    expect(w.types.get('process_resident_memory_bytes')).toBe('gauge');

    // Each role shows its own: the API ran nothing, and after the stream ended holds none open.
    const a = await scrape(url);
    expect(value(a, 'jetty_runs_started_total')).toBe(0);
    expect(value(a, 'jetty_sse_streams_open')).toBe(0);
    // The job is done once the worker has removed the run's sandbox, just after the run's end.
    await waitFor(
      async () => value(await scrape(url), 'jetty_queue_jobs', { queue: 'runs', state: 'active' }) === 0,
      5_000,
      'no active job',
    );
  }, 180_000);
});

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { containersOfRun, removeDeploymentContainers } from '../support/sandboxes.js';

// Worker processes that stop mid-run: nothing is lost. One stopped with SIGTERM hands its run back
// at once; one killed outright leaves it to be taken up when its lock lapses. Either way another
// worker starts the run again in a fresh sandbox and carries it to its end.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const RUNBOOK = [
  '# Survives a worker stopping',
  '```simulate',
  '- run: mkdir -p /app/results && printf started > /app/results/progress.txt',
  '- sleep_ms: 2500',
  '- run: printf finished > /app/results/progress.txt',
  '- say: finished',
  '```',
  '',
].join('\n');

let redis: TestRedis;
let api: Server;
let url = '';
let dataDir = '';
let env: Record<string, string> = {};
const KEY = generateApiKey();
const get = (u: string) => fetch(u, { headers: bearer(KEY) });
const children: ChildProcess[] = [];
const logs: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-crash-'));
  const instance = `crash-${randomBytes(4).toString('hex')}`;
  env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: instance,
    DATA_DIR: dataDir,
    INSTANCE_NAME: instance,
    WORKER_LOCK_MS: '3000',
    // No health listener: the default port would be shared by every worker spawned on this host.
    WORKER_HTTP_PORT: '0',
    JETTY_BOOTSTRAP_COLLECTION: 'crash-tests',
    JETTY_BOOTSTRAP_API_KEY: KEY,
    LOG_LEVEL: 'info',
  };
  api = await startServer(loadConfig({ ...env, PORT: '0' }), {
    role: 'api',
    logger: pino({ level: 'silent' }),
  });
  url = api.url!;
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    for (const f of logs) console.error(`--- ${f}\n${readFileSync(f, 'utf8').slice(-6000)}`);
  }
  // Each test ends its own workers: one at a time on this instance.
  await Promise.all(children.filter((c) => c.exitCode === null).map((c) => stopWorker(c, 'SIGTERM')));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  // A SIGKILLed worker's warm sandboxes wait for another worker's sweep once its alive mark lapses
  // (test/e2e/warm-pool.e2e.test.ts proves that); this file's workers are gone before then, so it
  // removes what this instance left, by id.
  await removeDeploymentContainers(docker, env.JETTY_KEY_PREFIX!);
  await api?.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** A worker process; its log goes to a file, printed when a test fails. */
function worker(): ChildProcess {
  const file = path.join(dataDir, `worker-${children.length + 1}.log`);
  logs.push(file);
  const fd = openSync(file, 'a');
  const child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  children.push(child);
  return child;
}

async function stopWorker(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function startRunAndWaitForItsFirstTool(): Promise<{ runId: string; events: () => Promise<Ev[]> }> {
  const res = await postJson(
    `${url}/v1/chat/completions`,
    runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
    bearer(KEY),
  );
  const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
    .trajectory_id;
  const events = async () =>
    ((await (await get(`${url}/v1/runs/${runId}/trajectory`)).json()) as { events: Ev[] }).events;
  await waitFor(
    async () => (await events()).some((e) => e.type === 'tool.result'),
    30_000,
    'the first tool result',
  );
  return { runId, events };
}

async function runEnds(runId: string): Promise<{ status: string }> {
  return waitFor(
    async () => {
      const r = (await (await get(`${url}/v1/runs/${runId}`)).json()) as { status: string };
      return r.status === 'completed' || r.status === 'failed' ? r : undefined;
    },
    45_000,
    'the run to end on the second worker',
  );
}

const sandboxesOf = (runId: string) => containersOfRun(docker, runId);

interface Ev {
  type: string;
  data: { line?: string; reason?: string };
}

describe('a worker that stops mid-run', () => {
  it('on SIGTERM hands the run back at once: its sandbox goes, another worker completes the run', async () => {
    const first = worker();
    const { runId, events } = await startRunAndWaitForItsFirstTool();
    await stopWorker(first, 'SIGTERM');
    expect(first.exitCode).toBe(0);
    // Gone with its worker, not left running until a reaper finds it.
    expect(await sandboxesOf(runId)).toEqual([]);
    worker();
    expect((await runEnds(runId)).status).toBe('completed');
    expect(
      (await events()).some((e) => e.type === 'log' && /shut down mid-run/.test(e.data.line ?? '')),
    ).toBe(true);
    expect(await (await get(`${url}/v1/runs/${runId}/artifacts/progress.txt`)).text()).toBe('finished');
  });

  it('killed (SIGKILL): another worker takes the run up once the lock lapses, and completes it', async () => {
    const first = worker();
    const { runId, events } = await startRunAndWaitForItsFirstTool();
    await stopWorker(first, 'SIGKILL');
    worker();
    expect((await runEnds(runId)).status).toBe('completed');
    const evs = await events();
    expect(evs.filter((e) => e.type === 'run.retry').map((e) => e.data.reason)).toEqual(['worker_lost']);
    expect(evs.filter((e) => e.type === 'run.started')).toHaveLength(2);
    expect(await (await get(`${url}/v1/runs/${runId}/artifacts/progress.txt`)).text()).toBe('finished');
    await waitFor(async () => (await sandboxesOf(runId)).length === 0, 10_000, 'no sandbox of the run left');
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { postJson, runbookRequest, waitFor } from '../support/harness.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// A worker process killed mid-run: another worker takes the run up again once the dead one's lock
// lapses, replaces its sandbox, and carries the run to its end. Nothing is lost.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const RUNBOOK = [
  '# Survives a worker crash',
  '```simulate',
  '- run: mkdir -p /app/results && printf started > /app/results/progress.txt',
  '- sleep_ms: 2500',
  '- run: printf finished > /app/results/progress.txt',
  '- say: finished',
  '```',
  '',
].join('\n');

let redis: TestRedis | undefined;
let api: Server | undefined;
let dataDir = '';
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await api?.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function worker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

async function setup() {
  redis ??= await startRedis();
  dataDir ||= await mkdtemp(path.join(tmpdir(), 'jetty-crash-'));
  const instance = `crash-${randomBytes(4).toString('hex')}`;
  const env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: instance,
    DATA_DIR: dataDir,
    INSTANCE_NAME: instance,
    WORKER_LOCK_MS: '3000',
    LOG_LEVEL: 'warn',
  };
  await api?.close();
  api = await startServer(loadConfig({ ...env, PORT: '0' }), {
    role: 'api',
    logger: pino({ level: 'silent' }),
  });
  return { env, url: api.url! };
}

describe('a worker that stops mid-run', () => {
  it('on SIGTERM hands the run back at once: its sandbox goes, another worker completes the run', async () => {
    const { env, url } = await setup();
    const first = worker(env);
    const res = await postJson(
      `${url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const events = async () =>
      (
        (await (await fetch(`${url}/v1/runs/${runId}/trajectory`)).json()) as {
          events: Array<{ type: string; data: { line?: string } }>;
        }
      ).events;
    await waitFor(
      async () => (await events()).some((e) => e.type === 'tool.result'),
      30_000,
      'the first tool result',
    );
    first.kill('SIGTERM');
    await new Promise((r) => first.once('exit', r));
    expect(first.exitCode).toBe(0);
    // Gone with its worker, not left running until a reaper finds it.
    expect(await docker.listContainers({ all: true, filters: { label: [`jetty.run-id=${runId}`] } })).toEqual(
      [],
    );
    worker(env);
    const rec = await waitFor(
      async () => {
        const r = (await (await fetch(`${url}/v1/runs/${runId}`)).json()) as { status: string };
        return r.status === 'completed' || r.status === 'failed' ? r : undefined;
      },
      60_000,
      'the run to end on the second worker',
    );
    expect(rec.status).toBe('completed');
    expect(
      (await events()).some((e) => e.type === 'log' && /shut down mid-run/.test(e.data.line ?? '')),
    ).toBe(true);
    expect(await (await fetch(`${url}/v1/runs/${runId}/artifacts/progress.txt`)).text()).toBe('finished');
  });

  it('killed (SIGKILL): another worker takes the run up once the lock lapses, and completes it', async () => {
    const { env, url } = await setup();
    const first = worker(env);

    const res = await postJson(
      `${url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const events = async () =>
      (
        (await (await fetch(`${url}/v1/runs/${runId}/trajectory`)).json()) as {
          events: Array<{ type: string; data: { line?: string } }>;
        }
      ).events;
    await waitFor(
      async () => (await events()).some((e) => e.type === 'tool.result'),
      30_000,
      'the first tool result',
    );

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    worker(env);

    const rec = await waitFor(
      async () => {
        const r = (await (await fetch(`${url}/v1/runs/${runId}`)).json()) as {
          status: string;
          artifacts: Array<{ path: string }>;
        };
        return r.status === 'completed' || r.status === 'failed' ? r : undefined;
      },
      60_000,
      'the run to end on the second worker',
    );
    expect(rec.status).toBe('completed');
    const evs = await events();
    expect(evs.some((e) => e.type === 'log' && /starting again/.test(e.data.line ?? ''))).toBe(true);
    expect(evs.filter((e) => e.type === 'run.started')).toHaveLength(2);
    const progress = await (await fetch(`${url}/v1/runs/${runId}/artifacts/progress.txt`)).text();
    expect(progress).toBe('finished');
    await waitFor(
      async () =>
        (await docker.listContainers({ all: true, filters: { label: [`jetty.run-id=${runId}`] } })).length ===
        0,
      10_000,
      'no sandbox of the run left',
    );
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { isUnclaimedWarm, removeDeploymentContainers } from '../support/sandboxes.js';

// Three worker processes on one host, sharing one DATA_DIR (so one GATEWAY_SOCKET_DIR) and one
// instance name (the host's), one API; real Redis, the real engine, the real claude CLI, the
// simulated model. All runs complete; a worker stopped mid-run (SIGTERM) or killed (SIGKILL)
// disturbs only its own runs, which start again on another worker and complete.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const LOCK_MS = 3_000;
const runbook = (sleepMs: number) =>
  [
    '# One of many',
    '```simulate',
    '- run: mkdir -p /app/results && printf started > /app/results/progress.txt',
    `- sleep_ms: ${sleepMs}`,
    '- run: printf finished > /app/results/progress.txt',
    '- say: finished',
    '```',
    '',
  ].join('\n');

interface Ev {
  type: string;
  ts: number;
  attempt?: number;
  data: {
    reason?: string;
    attempt?: number;
    worker?: string;
    sandbox_id?: string;
    source?: string;
    input_tokens?: number;
    output_tokens?: number;
  };
}
interface Rec {
  status: string;
  usage: { input_tokens: number; output_tokens: number };
  timings: { queue_ms: number; sandbox_start_ms: number; agent_ms: number } | null;
}
interface Worker {
  child: ChildProcess;
  /** The worker's name as run.started and the sandbox labels show it: `<instance>-<pid>-<hex>`. */
  owns: (name: string | undefined) => boolean;
  http: string;
}

let redis: TestRedis;
let api: Server;
let url = '';
let dataDir = '';
let env: Record<string, string> = {};
const KEY = generateApiKey();
const get = (u: string) => fetch(u, { headers: bearer(KEY) });
const workers: Worker[] = [];
const logs: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-multi-'));
  env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: `multi-${randomBytes(4).toString('hex')}`,
    DATA_DIR: dataDir,
    WORKER_LOCK_MS: String(LOCK_MS),
    WORKER_CONCURRENCY: '2',
    JETTY_BOOTSTRAP_COLLECTION: 'multi-tests',
    JETTY_BOOTSTRAP_API_KEY: KEY,
    LOG_LEVEL: 'info',
    // The test polls 30 runs' records and trajectories in a loop, far past the per-key default.
    RATE_LIMIT_MAX: '0',
  };
  api = await startServer(loadConfig({ ...env, PORT: '0' }), {
    role: 'api',
    logger: pino({ level: 'silent' }),
  });
  url = api.url!;
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    for (const f of logs) console.error(`--- ${f}\n${readFileSync(f, 'utf8').slice(-4000)}`);
  }
});

afterAll(async () => {
  await Promise.all([...workers].map((w) => stop(w, 'SIGTERM')));
  const left = await removeDeploymentContainers(docker, env.JETTY_KEY_PREFIX!);
  await api?.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  // A test that leaves a sandbox behind fails. The killed worker's unclaimed warm sandboxes are
  // the sweep's once its mark lapses (test/e2e/warm-pool.e2e.test.ts), which may be after this.
  expect(left.filter((c) => !isUnclaimedWarm(c)).map((c) => c.Names)).toEqual([]);
});

/** A worker process (no INSTANCE_NAME: all three take the host's name), ready when /readyz says so. */
async function startWorker(): Promise<Worker> {
  const file = path.join(dataDir, `worker-${logs.length + 1}.log`);
  logs.push(file);
  const fd = openSync(file, 'a');
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
    env: { PATH: process.env.PATH ?? '', ...env, WORKER_HTTP_PORT: String(port) },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const w: Worker = {
    child,
    owns: (name) => name?.includes(`-${child.pid}-`) ?? false,
    http: `http://127.0.0.1:${port}`,
  };
  workers.push(w);
  await waitFor(
    async () => (await fetch(`${w.http}/readyz`).catch(() => null))?.status === 200,
    20_000,
    'the worker to be ready',
  );
  return w;
}

async function stop(w: Worker, signal: NodeJS.Signals): Promise<void> {
  workers.splice(workers.indexOf(w), 1);
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  const exited = new Promise((r) => w.child.once('exit', r));
  w.child.kill(signal);
  await exited;
}

async function submit(n: number, sleepMs: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const res = await postJson(
        `${url}/v1/chat/completions`,
        runbookRequest(runbook(sleepMs), { stream: false, jetty: { timeout_hint: 0 } }),
        bearer(KEY),
      );
      expect(res.status).toBe(202);
      return ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
        .trajectory_id;
    }),
  );
}

/** A run's events so far; none while its trajectory is not there yet (a 404 before the run is picked up). */
const events = async (id: string) =>
  ((await (await get(`${url}/v1/runs/${id}/trajectory`)).json()) as { events?: Ev[] }).events ?? [];
const record = async (id: string) => (await (await get(`${url}/v1/runs/${id}`)).json()) as Rec;

async function allEnd(ids: string[], timeoutMs: number): Promise<Map<string, Rec>> {
  const recs = new Map<string, Rec>();
  await waitFor(
    async () => {
      for (const id of ids) {
        if (recs.has(id)) continue;
        const r = await record(id);
        if (r.status !== 'pending' && r.status !== 'running') recs.set(id, r);
      }
      return recs.size === ids.length;
    },
    timeoutMs,
    'every run to end',
  );
  return recs;
}

/** A run of `ids` that worker `w` is carrying, past its first tool call: stopping `w` now is mid-run. */
async function midRunOn(ids: string[], candidates: Worker[]): Promise<{ runId: string; worker: Worker }> {
  return waitFor(
    async () => {
      for (const id of ids) {
        const evs = await events(id);
        const started = evs.filter((e) => e.type === 'run.started').at(-1);
        const worker = candidates.find((w) => w.owns(started?.data.worker));
        if (
          worker &&
          evs.some((e) => e.type === 'tool.result') &&
          !evs.some((e) => e.type === 'run.completed')
        )
          return { runId: id, worker };
      }
      return undefined;
    },
    // Six cold sandboxes at once on a loaded 2-core host reach their first tool result in 30-45 s.
    150_000,
    'a run mid-way on a worker',
  );
}

/** Which worker ran each attempt, from the runs' run.started events. */
const startedBy = (evs: Ev[]) => evs.filter((e) => e.type === 'run.started').map((e) => e.data.worker);

/** The runs that `victim` was carrying when it stopped: exactly one retry each, then completed elsewhere. */
function expectRetriedOnce(evs: Ev[], victim: Worker, reason: string): void {
  const retries = evs.filter((e) => e.type === 'run.retry');
  expect(retries.map((e) => [e.data.reason, e.data.attempt, e.attempt])).toEqual([[reason, 2, 2]]);
  const by = startedBy(evs);
  expect(by).toHaveLength(2);
  expect(victim.owns(by[0])).toBe(true);
  expect(victim.owns(by[1])).toBe(false);
  // Every event before the retry belongs to attempt 1, every one after to attempt 2.
  const at = evs.indexOf(retries[0]!);
  expect(new Set(evs.slice(1, at).map((e) => e.attempt))).toEqual(new Set([1]));
  expect(new Set(evs.slice(at).map((e) => e.attempt))).toEqual(new Set([2]));
}

/** A run no stopped worker touched: one attempt, no retry. */
function expectUndisturbed(evs: Ev[]): void {
  expect(evs.filter((e) => e.type === 'run.retry')).toEqual([]);
  expect(startedBy(evs)).toHaveLength(1);
  expect(new Set(evs.filter((e) => e.type !== 'run.queued').map((e) => e.attempt))).toEqual(new Set([1]));
}

describe('three workers on one host', () => {
  it('complete 30 runs; one stopped mid-run (SIGTERM) hands back only its own, which complete elsewhere', async () => {
    const three = [await startWorker(), await startWorker(), await startWorker()];
    // One gateway directory per process, though they share DATA_DIR and the instance name.
    const gatewayRoot = path.join(dataDir, 'gateway');
    expect(await readdir(gatewayRoot)).toHaveLength(3);

    const t0 = Date.now();
    const ids = await submit(30, 500);
    const { worker: victim } = await midRunOn(ids, three);
    const victimDir = (await readdir(gatewayRoot)).find((d) => victim.owns(d))!;
    await stop(victim, 'SIGTERM');
    expect(victim.child.exitCode).toBe(0);
    // Its directory went with it; the others' gateways still serve.
    expect(await readdir(gatewayRoot)).not.toContain(victimDir);
    for (const w of workers) expect((await fetch(`${w.http}/readyz`)).status).toBe(200);

    const recs = await allEnd(ids, 260_000);
    const mean = (k: 'sandbox_start_ms' | 'agent_ms') =>
      Math.round([...recs.values()].reduce((a, r) => a + (r.timings?.[k] ?? 0), 0) / recs.size);
    console.log(
      `30 runs ended ${Date.now() - t0} ms after they were submitted; mean sandbox start ${mean('sandbox_start_ms')} ms, agent ${mean('agent_ms')} ms`,
    );
    expect([...recs.values()].map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    let retried = 0;
    for (const id of ids) {
      const evs = await events(id);
      if (victim.owns(startedBy(evs)[0]) && evs.some((e) => e.type === 'run.retry')) {
        expectRetriedOnce(evs, victim, 'worker_shutdown');
        retried++;
      } else {
        expectUndisturbed(evs);
      }
      expect(await (await get(`${url}/v1/runs/${id}/artifacts/progress.txt`)).text()).toBe('finished');
    }
    expect(retried).toBeGreaterThanOrEqual(1);
  }, 420_000);

  it('one killed mid-run (SIGKILL): its run starts again within the lock time + 5 s, billed for both attempts', async () => {
    const candidates = [...workers, await startWorker()];
    expect(candidates).toHaveLength(3);
    const ids = await submit(4, 4_000);
    const { runId, worker: victim } = await midRunOn(ids, candidates);
    const first = (await events(runId)).find((e) => e.type === 'run.started')!;
    const gatewayRoot = path.join(dataDir, 'gateway');
    const victimDir = path.join(gatewayRoot, (await readdir(gatewayRoot)).find((d) => victim.owns(d))!);
    const killedAt = Date.now();
    await stop(victim, 'SIGKILL');
    // A killed worker leaves its gateway directory behind.
    expect((await stat(victimDir)).isDirectory()).toBe(true);

    const retry = await waitFor(
      async () => (await events(runId)).find((e) => e.type === 'run.retry'),
      LOCK_MS + 15_000,
      'the run to start again',
    );
    console.log(`run.retry ${retry.ts - killedAt} ms after SIGKILL (lock ${LOCK_MS} ms)`);
    expect(retry.ts - killedAt).toBeLessThanOrEqual(LOCK_MS + 5_000);
    // Attempt 1's sandbox is gone (stopped once the lock lapsed, or replaced by attempt 2's).
    await waitFor(
      async () =>
        (await docker.listContainers({ all: true, filters: { id: [first.data.sandbox_id!] } })).length === 0,
      5_000,
      "attempt 1's sandbox to be gone",
    );

    const recs = await allEnd(ids, 60_000);
    expect([...recs.values()].map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    const evs = await events(runId);
    expectRetriedOnce(evs, victim, 'worker_lost');
    expect(evs.find((e) => e.type === 'run.started' && e.attempt === 2)!.ts - killedAt).toBeLessThanOrEqual(
      LOCK_MS + 5_000,
    );
    // The totals count what both attempts spent at the gateway (attempt 1's calls were billed too).
    const gatewayUsage = evs.filter((e) => e.type === 'usage' && e.data.source === 'gateway');
    expect(gatewayUsage.some((e) => e.attempt === 1)).toBe(true);
    const sum = (k: 'input_tokens' | 'output_tokens') =>
      gatewayUsage.reduce((a, e) => a + (e.data[k] ?? 0), 0);
    expect(recs.get(runId)!.usage.input_tokens).toBe(sum('input_tokens'));
    expect(recs.get(runId)!.usage.output_tokens).toBe(sum('output_tokens'));
    expect(evs.at(-1)!.type).toBe('run.completed');
    // The victim may have carried a second run: it is retried the same way; the others are untouched.
    for (const id of ids.filter((i) => i !== runId)) {
      const other = await events(id);
      if (victim.owns(startedBy(other)[0])) expectRetriedOnce(other, victim, 'worker_lost');
      else expectUndisturbed(other);
    }

    // A worker sharing the root removes it once it is past its grace period: at its start (as
    // here), or on its minute's sweep (which may have come first).
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 11_000 - Date.now())));
    await startWorker();
    await expect(stat(victimDir)).rejects.toThrow(/ENOENT/);
  }, 240_000);
});

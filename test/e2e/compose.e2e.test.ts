import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { freePort } from '../support/redis.js';
import { readSse } from '../support/sse.js';

// docker-compose.yml as written, run by a real Compose v2 (built from its Go module by
// scripts/compose.sh) on the real engine: images made locally (no registry is reachable here), `up`,
// the header's admin command, a run through the API, `--scale worker=2`, `down`. The test talks to
// the API only through the port published on 127.0.0.1; sandboxes run with no network and reach
// their worker's gateway through a socket in the data directory shared by path.
const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const docker = new Dockerode();
const id = randomBytes(4).toString('hex');
const project = `jetty-e2e-${id}`;
const prefix = `compose-${id}`;
const ADMIN = randomBytes(24).toString('hex');
const RUNBOOK = [
  '---',
  'agent: claude-code',
  '---',
  '# Through compose',
  '```simulate',
  '- run: mkdir -p /app/results && echo "from compose" > /app/results/hello.txt',
  '- sleep_ms: 3000',
  '- say: wrote hello.txt',
  '```',
  '',
].join('\n');

let compose = '';
let dataDir = '';
let url = '';
let key = '';
let env: NodeJS.ProcessEnv = {};
const timings: Record<string, number> = {};

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    timings[what] = (Date.now() - t) / 1000;
  }
}

async function run(args: string[], timeoutMs = 300_000): Promise<string> {
  const { stdout } = await exec(
    compose,
    ['-p', project, '-f', path.join(ROOT, 'docker-compose.yml'), ...args],
    {
      cwd: ROOT,
      env,
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    },
  ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`docker compose ${args.join(' ')} failed: ${err.message}\n${err.stderr ?? ''}`);
  });
  return stdout;
}

async function services(): Promise<Array<{ Service: string; State: string; Health: string }>> {
  const out = await run(['ps', '--format', 'json']);
  // One JSON object per line (compose v2.21+).
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { Service: string; State: string; Health: string });
}

beforeAll(async () => {
  compose = await timed('compose binary (scripts/compose.sh)', async () =>
    (
      await exec('bash', [path.join(ROOT, 'scripts/compose.sh'), '--print-path'], { timeout: 3_600_000 })
    ).stdout.trim(),
  );
  await timed('redis image (docker/redis/build-local.sh)', () =>
    exec('bash', [path.join(ROOT, 'docker/redis/build-local.sh')], { timeout: 600_000 }),
  );
  await timed('server image (docker/server/build-local.sh)', () =>
    exec('bash', [path.join(ROOT, 'docker/server/build-local.sh')], { timeout: 600_000 }),
  );
  dataDir = await mkdtemp(`/tmp/jetty-compose-${id}-`);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    JETTY_BIND: '127.0.0.1',
    JETTY_PORT: String(port),
    JETTY_DATA_DIR: dataDir,
    JETTY_KEY_PREFIX: prefix,
    JETTY_REDIS_IMAGE: 'jetty-local/redis:7-bookworm',
    JETTY_ADMIN_TOKEN: ADMIN,
    // One run at a time per worker: two runs at once need two workers.
    WORKER_CONCURRENCY: '1',
  };
}, 3_700_000);

afterAll(async () => {
  if (compose) await run(['down', '-v', '--remove-orphans', '--timeout', '20']).catch(() => undefined);
  const left = await docker.listContainers({ all: true, filters: { label: [`jetty.key-prefix=${prefix}`] } });
  for (const c of left)
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  console.info(`compose e2e timings (s): ${JSON.stringify(timings)}`);
  expect(left.map((c) => c.Names)).toEqual([]);
}, 120_000);

async function runThrough(apiKey: string): Promise<{ id: string; worker: string; status: string }> {
  const res = await postJson(`${url}/v1/chat/completions`, runbookRequest(RUNBOOK), bearer(apiKey));
  expect(res.status).toBe(200);
  let runId = '';
  let status = '';
  for await (const ev of readSse(res.body!)) {
    if (!ev.data || ev.data === '[DONE]') continue;
    const meta = (JSON.parse(ev.data) as { jetty_metadata?: { trajectory_id?: string; status?: string } })
      .jetty_metadata;
    runId ||= meta?.trajectory_id ?? '';
    if (meta?.status) status = meta.status;
  }
  // Which worker ran it: its run.started event says.
  const trajectory = (await (
    await fetch(`${url}/v1/runs/${runId}/trajectory`, { headers: bearer(apiKey) })
  ).json()) as {
    events: Array<{ type: string; data: { worker?: string } }>;
  };
  const worker = trajectory.events.find((e) => e.type === 'run.started')?.data.worker ?? '';
  return { id: runId, worker, status };
}

describe('docker compose, as written', () => {
  it('comes up healthy, with the API on the published loopback port', async () => {
    await timed('up --wait', () => run(['up', '-d', '--wait'], 300_000));
    const up = await services();
    expect(up.map((s) => `${s.Service}:${s.Health}`).sort()).toEqual([
      'api:healthy',
      'redis:healthy',
      'worker:healthy',
    ]);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const home = await fetch(`${url}/`);
    expect(await home.text()).toContain('href="/ui"');
  }, 360_000);

  it("makes a collection with the header's admin command, and runs a runbook through the API", async () => {
    const out = await run(['exec', '-T', 'api', 'jetty', 'admin', 'collections', 'create', 'acme']);
    key = /jrk_[A-Za-z0-9_-]+/.exec(out)?.[0] ?? '';
    expect(key, out).not.toBe('');
    const result = await timed('one run', () => runThrough(key));
    expect(result.status).toBe('completed');
    const file = await fetch(`${url}/v1/runs/${result.id}/artifacts/hello.txt`, { headers: bearer(key) });
    expect(file.status).toBe(200);
    expect((await file.text()).trim()).toBe('from compose');
  }, 300_000);

  it('scales to two workers, and two runs at once run on both', async () => {
    await timed('up --scale worker=2', () => run(['up', '-d', '--wait', '--scale', 'worker=2'], 300_000));
    const workers = (await services()).filter((s) => s.Service === 'worker');
    expect(workers.map((w) => w.Health)).toEqual(['healthy', 'healthy']);
    const runs = await timed('two runs at once', () => Promise.all([runThrough(key), runThrough(key)]));
    expect(runs.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(new Set(runs.map((r) => r.worker)).size).toBe(2);
  }, 400_000);

  it('goes down, leaving no container of its own behind', async () => {
    await timed('down', () => run(['down', '-v', '--timeout', '20'], 120_000));
    expect(await services()).toEqual([]);
    await waitFor(
      async () => (await fetch(`${url}/healthz`).catch(() => null)) === null,
      10_000,
      'the published port to close',
    );
  }, 180_000);
});

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';

// Several worker processes on one host, sharing DATA_DIR (so GATEWAY_SOCKET_DIR) and even their
// instance name: each serves its gateway from a directory of its own, stopping one leaves the
// others' alone, and a worker whose gateway is not serving says so on /readyz. Real Redis, the
// real Docker engine (pinged), real unix sockets.

let redis: TestRedis;
let dataDir = '';
const workers: Server[] = [];

async function worker(prefix: string): Promise<Server> {
  const s = await startServer(
    loadConfig({
      REDIS_URL: redis.url,
      JETTY_KEY_PREFIX: prefix,
      DATA_DIR: dataDir,
      INSTANCE_NAME: 'same-host',
      WORKER_HTTP_PORT: String(await freePort()),
      LOG_LEVEL: 'silent',
    }),
    { role: 'worker', logger: pino({ level: 'silent' }) },
  );
  workers.push(s);
  return s;
}

const readyz = async (s: Server) => {
  const res = await fetch(`${s.workerUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-ready-'));
});

afterAll(async () => {
  for (const w of workers) await w.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('worker processes sharing a DATA_DIR', () => {
  const prefix = `ready-${randomBytes(4).toString('hex')}`;

  it('each serves its own gateway socket, and stopping one leaves the other serving', async () => {
    const a = await worker(prefix);
    const b = await worker(prefix);
    expect(a.socketDir).toBeDefined();
    expect(a.socketDir).not.toBe(b.socketDir);
    for (const s of [a, b]) {
      expect((await stat(path.join(s.socketDir!, 'gateway.sock'))).isSocket()).toBe(true);
      expect(await readyz(s)).toEqual({
        status: 200,
        body: { status: 'ready', checks: { redis: true, docker: true, gateway: true, blob_store: true } },
      });
      expect((await fetch(`${s.workerUrl}/healthz`)).status).toBe(200);
    }
    await a.close();
    workers.splice(workers.indexOf(a), 1);
    // Its directory goes with it; the other worker's gateway is untouched.
    await expect(stat(a.socketDir!)).rejects.toThrow(/ENOENT/);
    expect((await readyz(b)).status).toBe(200);
    expect(await readdir(path.join(dataDir, 'gateway'))).toEqual([path.basename(b.socketDir!)]);
  });

  it('/readyz answers 503 naming the gateway when the socket its sandboxes use is gone', async () => {
    const w = await worker(prefix);
    await rm(path.join(w.socketDir!, 'gateway.sock'));
    const { status, body } = await readyz(w);
    expect(status).toBe(503);
    expect(body.status).toBe('not_ready');
    expect(body.checks).toEqual({ redis: true, docker: true, gateway: false, blob_store: true });
    expect(body.problems.gateway).toMatch(/cannot connect to the gateway at .*gateway\.sock: ENOENT/);
  });

  it('a second worker on the same WORKER_HTTP_PORT refuses to start, naming the setting', async () => {
    const port = await freePort();
    const env = {
      REDIS_URL: redis.url,
      JETTY_KEY_PREFIX: prefix,
      DATA_DIR: dataDir,
      WORKER_HTTP_PORT: String(port),
      LOG_LEVEL: 'silent',
    };
    const first = await startServer(loadConfig(env), { role: 'worker', logger: pino({ level: 'silent' }) });
    workers.push(first);
    const before = await readdir(path.join(dataDir, 'gateway'));
    await expect(
      startServer(loadConfig(env), { role: 'worker', logger: pino({ level: 'silent' }) }),
    ).rejects.toThrow(/WORKER_HTTP_PORT/);
    // The refused process left nothing behind.
    expect(await readdir(path.join(dataDir, 'gateway'))).toEqual(before);
  });
});

describe('a run whose sandbox cannot reach the gateway', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('fails as gateway_unreachable, not as the model provider being down', async () => {
    await rm(path.join(h.server.socketDir!, 'gateway.sock'));
    const ready = await h.fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks.gateway).toBe(false);

    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# Say hello\n', { stream: false, jetty: { timeout_hint: 0, agent: 'claude-code' } }),
    );
    const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as {
          status: string;
          error: { code: string; message: string } | null;
        };
        return r.status === 'failed' || r.status === 'completed' ? r : undefined;
      },
      60_000,
      'the run to end',
    );
    expect(rec.status).toBe('failed');
    expect(rec.error?.code).toBe('gateway_unreachable');
    // The forwarder says so when a connection is refused; the entrypoint says so first when the
    // forwarder cannot start at all (which of the two comes first depends on the host's load).
    expect(rec.error?.message).toMatch(/cannot reach the gateway|gateway forwarder did not start/);
    expect(rec.error?.message).toMatch(/not of the model provider/);
  });
});

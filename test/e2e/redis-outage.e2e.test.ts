import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, waitFor } from '../support/harness.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';

// The built server (one process, API and worker, on the real Docker engine) while its Redis goes
// away and comes back: the API answers 503 at once, and the process says so in one JSON line when
// the outage starts and one when it ends, with no raw stack traces between.
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const KEY = generateApiKey();

let redis: TestRedis;
let server: ChildProcess;
let url = '';
let dataDir = '';
let output = '';

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-outage-'));
  const instance = `outage-${randomBytes(4).toString('hex')}`;
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, [SERVER, '--role', 'all'], {
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: redis.url,
      JETTY_KEY_PREFIX: instance,
      INSTANCE_NAME: instance,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      JETTY_BOOTSTRAP_COLLECTION: 'outage-tests',
      JETTY_BOOTSTRAP_API_KEY: KEY,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (c) => (output += c));
  server.stderr!.on('data', (c) => (output += c));
  await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => null))?.ok, 60_000, 'the server');
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('while Redis is down', () => {
  it('the API answers 503 at once, and the process logs the outage once and its end once, in JSON', async () => {
    const before = output.length;
    await redis.stop();
    // Let every connection find out and retry a few times.
    await new Promise((r) => setTimeout(r, 3000));

    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const res = await fetch(`${url}/v1/runs`, { headers: bearer(KEY) });
      const took = Date.now() - t0;
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('redis_unavailable');
      // "At once": no waiting on retries while Redis is known to be down.
      expect(took).toBeLessThan(500);
    }
    expect((await fetch(`${url}/readyz`)).status).toBe(503);

    redis = await startRedis({ port: redis.port });
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 20_000, 'readiness after Redis is back');
    await waitFor(
      async () => output.includes('redis reachable again'),
      10_000,
      'the line saying Redis is back',
    );
    await new Promise((r) => setTimeout(r, 500));

    const lines = output.slice(before).split('\n').filter(Boolean);
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as { msg?: string; level?: number };
      } catch {
        return { raw: l };
      }
    });
    // Every line is JSON: no stack trace printed by a library with no listener.
    expect(parsed.filter((p) => 'raw' in p)).toEqual([]);
    const msgs = parsed.map((p) => (p as { msg?: string }).msg ?? '');
    expect(msgs.filter((m) => m.startsWith('redis unreachable'))).toHaveLength(1);
    expect(msgs.filter((m) => m === 'redis reachable again')).toHaveLength(1);
    // Nothing else at error level: the outage is told once, not per connection or per request.
    expect(parsed.filter((p) => ((p as { level?: number }).level ?? 0) >= 50)).toHaveLength(1);
  });
});

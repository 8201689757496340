import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startServer } from '../../src/main/compose.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, type Harness, postJson, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { dumpRedis, freePort, startRedis } from '../support/redis.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';

// Webhooks end to end: the whole server on a real Redis and BullMQ (only the sandbox is played
// back), calling a real HTTP receiver on 127.0.0.1 that checks every signature with the secret.
const SECRET = 'whsec_canary-7f3a91c2e5d84b60';
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';

/** A webhook receiver. The path says how it answers; every request is kept with its verdict. */
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  signatureValid: boolean;
  at: number;
}

class Receiver {
  readonly received: Received[] = [];
  private readonly held: ServerResponse[] = [];
  private readonly server: Server;
  url = '';

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const p = req.url ?? '/';
        const nth = this.received.filter((r) => r.path === p).length;
        this.received.push({
          path: p,
          headers: req.headers,
          body,
          signatureValid: verify(req.headers, body),
          at: Date.now(),
        });
        const mode = p.split('/')[1];
        if (mode === 'hold' || (mode === 'hold-once' && nth === 0)) {
          this.held.push(res);
          return;
        }
        // flaky: 503, then 429, then 200.
        const status = mode === 'gone' ? 410 : mode === 'flaky' ? ([503, 429][nth] ?? 200) : 200;
        res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }

  /** Requests the receiver holds without answering, their client still waiting. */
  heldOpen(): number {
    return this.held.filter((r) => !r.writableEnded && !r.destroyed).length;
  }

  releaseHeld(): void {
    for (const r of this.held.splice(0)) if (!r.writableEnded && !r.destroyed) r.writeHead(200).end('ok');
  }

  to(p: string): Received[] {
    return this.received.filter((r) => r.path === p);
  }

  async stop(): Promise<void> {
    for (const r of this.held.splice(0)) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What a receiver does, computed here with node:crypto on its own (not the server's code). */
function verify(headers: IncomingHttpHeaders, body: string): boolean {
  const ts = headers['x-mise-timestamp'];
  const sig = headers['x-mise-signature'];
  if (typeof ts !== 'string' || typeof sig !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex');
  return sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
}

// SLOW plays a long run so a test can act mid-run; FAIL ends with claude's error result.
const driver = new ScriptedDriver((spec) => {
  const text = promptOf(spec);
  if (text.includes('SLOW')) return claudeLines({ steps: 30, delayMs: 200 });
  const lines = claudeLines({ steps: 2, delayMs: 10 });
  if (text.includes('FAIL')) {
    const last = lines[lines.length - 1]!;
    last.line = { ...(last.line as object), is_error: true, subtype: 'error_during_execution' };
  }
  return lines;
});

let h: Harness;
let receiver: Receiver;
let logDir: string;
let logFile: string;

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.start();
  logDir = await mkdtemp(path.join(tmpdir(), 'jetty-webhook-logs-'));
  logFile = path.join(logDir, 'server.log');
  // One run at a time, so that a second run waits, pending, behind a slow one. Short backoff
  // (100, 200, 400 ms) and four tries keep retries quick.
  h = await startHarness({
    driver,
    logFile,
    env: {
      WORKER_CONCURRENCY: '1',
      WEBHOOK_ATTEMPTS: '4',
      WEBHOOK_BACKOFF_MS: '100',
      WEBHOOK_TIMEOUT_MS: '5000',
      // The receivers listen on loopback, which webhooks may reach only when the operator says so.
      NETWORK_ALLOW_PRIVATE: '127.0.0.1',
    },
  });
});

afterAll(async () => {
  await h?.stop();
  await receiver?.stop();
  await rm(logDir, { recursive: true, force: true });
  expect(driver.liveCount()).toBe(0);
});

interface WebhookInfo {
  url: string;
  state: string;
  deliveries: { attempt: number; at: string; status_code: number | null; error: string | null }[];
}

async function runJson(id: string) {
  return (await h.fetch(`${h.url}/v1/runs/${id}`)).json() as Promise<
    Record<string, unknown> & { status: string; ended_at: string | null; webhook?: WebhookInfo }
  >;
}

/** Runs a runbook with a webhook and waits for the run's end (not the webhook's). */
async function run(webhookUrl: string, runbook = RUNBOOK, jetty: Record<string, unknown> = {}) {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, {
      stream: false,
      jetty: { webhook_url: webhookUrl, webhook_secret: SECRET, timeout_hint: 60, ...jetty },
    }),
  );
  const body = (await res.json()) as { jetty_metadata: { trajectory_id: string; status: string } };
  return {
    status: res.status,
    runId: body.jetty_metadata.trajectory_id,
    runStatus: body.jetty_metadata.status,
  };
}

async function settled(runId: string, timeoutMs = 15_000) {
  return waitFor(
    async () => {
      const r = await runJson(runId);
      return r.webhook && ['delivered', 'failed'].includes(r.webhook.state) ? r : undefined;
    },
    timeoutMs,
    `the webhook of ${runId} to settle`,
  );
}

describe('webhook_url and webhook_secret on a run', () => {
  const bad: Array<{ name: string; jetty: Record<string, unknown>; param: string; says: RegExp }> = [
    {
      name: 'a URL that is not one',
      jetty: { webhook_url: 'not a url' },
      param: 'jetty.webhook_url',
      says: /http or https/,
    },
    {
      name: 'another scheme',
      jetty: { webhook_url: 'ftp://127.0.0.1/x' },
      param: 'jetty.webhook_url',
      says: /http or https/,
    },
    {
      name: 'a non-string URL',
      jetty: { webhook_url: 42 },
      param: 'jetty.webhook_url',
      says: /http or https/,
    },
    {
      name: 'a URL with a password',
      jetty: { webhook_url: 'http://user:pw@127.0.0.1/x' },
      param: 'jetty.webhook_url',
      says: /password/,
    },
    {
      name: 'a non-string secret',
      jetty: { webhook_url: 'http://127.0.0.1/x', webhook_secret: 12345 },
      param: 'jetty.webhook_secret',
      says: /must be a string/,
    },
    {
      name: 'an empty secret',
      jetty: { webhook_url: 'http://127.0.0.1/x', webhook_secret: '' },
      param: 'jetty.webhook_secret',
      says: /empty/,
    },
    {
      name: 'a secret without a URL',
      jetty: { webhook_secret: SECRET },
      param: 'jetty.webhook_secret',
      says: /webhook_url/,
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}: 400 naming ${c.param}`, async () => {
      const res = await h.server.app!.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', ...h.auth },
        payload: JSON.stringify(runbookRequest(RUNBOOK, { stream: false, jetty: c.jetty })),
      });
      expect(res.statusCode).toBe(400);
      const err = (res.json() as { error: { param: string; message: string } }).error;
      expect(err.param).toBe(c.param);
      expect(err.message).toMatch(c.says);
      expect(err.message).not.toContain(SECRET);
    });
  }
});

describe('a run with a webhook', () => {
  it('POSTs its end, signed, and retries a receiver that fails at first (503, 429, then 200)', async () => {
    const r = await run(`${receiver.url}/flaky/a`);
    expect(r.status).toBe(200);
    const rec = await settled(r.runId);
    expect(rec.webhook).toMatchObject({ url: `${receiver.url}/flaky/a`, state: 'delivered' });
    expect(rec.webhook!.deliveries.map((d) => [d.attempt, d.status_code])).toEqual([
      [1, 503],
      [2, 429],
      [3, 200],
    ]);
    const got = receiver.to('/flaky/a');
    expect(got).toHaveLength(3);
    for (const g of got) {
      expect(g.signatureValid).toBe(true);
      expect(g.headers['x-mise-trajectory-id']).toBe(r.runId);
      expect(g.headers['content-type']).toBe('application/json');
    }
    // The run was over, record and terminal event, before the first POST left.
    expect(got[0]!.at).toBeGreaterThanOrEqual(Date.parse(rec.ended_at!));
    const payload = JSON.parse(got[2]!.body);
    expect(payload).toMatchObject({
      name: 'test-collection/run',
      trajectory_id: r.runId,
      status: 'completed',
      completed_steps: ['run'],
      total_steps: ['run'],
      init_params: { agent: 'claude-code', model: 'claude-sonnet-4-6', model_provider: 'simulated' },
    });
    const file = payload.steps.run.outputs.files[0];
    expect(file).toMatchObject({ name: 'hello.txt', extension: 'txt', content_type: 'text/plain' });
    expect(file.path).toBe(`${h.collection}/run/${r.runId}/hello.txt`);
    expect(payload.steps.run.outputs.primary_files).toEqual(payload.steps.run.outputs.files);
    expect(payload.steps.run.outputs.usage.completion_tokens).toBe(5);
    // The download path serves the file.
    const dl = await h.fetch(`${h.url}/api/v1/file/${file.path}`);
    expect(await dl.text()).toBe('hi\n');
  });

  it('names the run after its collection and task', async () => {
    const r = await run(`${receiver.url}/ok/named`, RUNBOOK, { collection: h.collection, task: 'hello' });
    await settled(r.runId);
    expect(JSON.parse(receiver.to('/ok/named')[0]!.body).name).toBe(`${h.collection}/hello`);
  });

  it('delivers a run that failed, with its error', async () => {
    const r = await run(`${receiver.url}/ok/failed`, `${RUNBOOK}\nFAIL\n`);
    expect(r.status).toBe(424);
    const rec = await settled(r.runId);
    expect(rec.status).toBe('failed');
    expect(rec.webhook!.state).toBe('delivered');
    const [got] = receiver.to('/ok/failed');
    expect(got!.signatureValid).toBe(true);
    const payload = JSON.parse(got!.body);
    expect(payload.status).toBe('failed');
    expect(payload.completed_steps).toEqual([]);
    expect(payload.steps.run.outputs.success).toBe(false);
    expect(payload.error).toBeTruthy();
    expect(payload.steps.run.error.code).toBeTruthy();
  });

  it('delivers cancelled runs: one cancelled while running, one cancelled while it waited in the queue', async () => {
    const slow = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(`${RUNBOOK}\nSLOW\n`, {
        stream: false,
        jetty: { webhook_url: `${receiver.url}/ok/cancel-running`, webhook_secret: SECRET, timeout_hint: 0 },
      }),
    );
    const slowId = ((await slow.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    await waitFor(async () => (await runJson(slowId)).sandbox_id, 10_000, 'the slow run to start');
    // The only worker slot is taken: this one waits, pending.
    const queued = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, {
        stream: false,
        jetty: { webhook_url: `${receiver.url}/ok/cancel-pending`, webhook_secret: SECRET, timeout_hint: 0 },
      }),
    );
    const queuedId = ((await queued.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    expect((await runJson(queuedId)).status).toBe('pending');
    const c1 = (await (await h.fetch(`${h.url}/v1/runs/${queuedId}/cancel`, { method: 'POST' })).json()) as {
      status: string;
    };
    expect(c1.status).toBe('cancelled');
    await h.fetch(`${h.url}/v1/runs/${slowId}/cancel`, { method: 'POST' });

    for (const [id, p] of [
      [queuedId, '/ok/cancel-pending'],
      [slowId, '/ok/cancel-running'],
    ] as const) {
      const rec = await settled(id);
      expect(rec.status).toBe('cancelled');
      expect(rec.webhook!.state).toBe('delivered');
      const [got] = receiver.to(p);
      expect(got!.signatureValid).toBe(true);
      expect(JSON.parse(got!.body)).toMatchObject({ trajectory_id: id, status: 'cancelled' });
    }
  });

  it('stops at once on a 4xx such as 410: one try, failed', async () => {
    const r = await run(`${receiver.url}/gone/a`);
    const rec = await settled(r.runId);
    expect(rec.webhook!.state).toBe('failed');
    expect(rec.webhook!.deliveries).toHaveLength(1);
    expect(rec.webhook!.deliveries[0]).toMatchObject({
      status_code: 410,
      error: 'the receiver answered HTTP 4xx',
    });
  });

  it('a receiver that is down does not hold up the run: it completes, and delivery gives up after its tries', async () => {
    const down = `http://127.0.0.1:${await freePort()}/down`;
    const r = await run(down);
    expect(r.status).toBe(200);
    expect(r.runStatus).toBe('completed');
    const rec = await settled(r.runId);
    expect(rec.status).toBe('completed');
    expect(rec.webhook!.state).toBe('failed');
    expect(rec.webhook!.deliveries.map((d) => d.attempt)).toEqual([1, 2, 3, 4]);
    for (const d of rec.webhook!.deliveries) {
      expect(d.status_code).toBeNull();
      // The same words whatever happened to the connection: a record is no port scanner.
      expect(d.error).toBe(
        'the receiver gave no HTTP answer (no connection, the connection closed, or no answer within 5000 ms)',
      );
      expect(Date.parse(d.at)).toBeGreaterThanOrEqual(Date.parse(rec.ended_at!));
    }
  });

  it('a receiver that never answers does not hold up runs: two complete while it keeps their POSTs waiting', async () => {
    const a = await run(`${receiver.url}/hold/a`);
    await waitFor(async () => receiver.to('/hold/a').length > 0, 10_000, 'the first POST to arrive');
    const b = await run(`${receiver.url}/hold/b`);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await runJson(a.runId)).status).toBe('completed');
    expect((await runJson(b.runId)).status).toBe('completed');
    expect(receiver.heldOpen()).toBeGreaterThan(0);
    receiver.releaseHeld();
    // The next try (after the 5 s limit, if one ran out) is answered too.
    const poll = setInterval(() => receiver.releaseHeld(), 100);
    try {
      for (const id of [a.runId, b.runId])
        expect((await settled(id, 30_000)).webhook!.state).toBe('delivered');
    } finally {
      clearInterval(poll);
    }
  });

  it('never shows the secret: not in the record, the list, the trajectory, events, stored files, logs, the payload or Redis once delivered', async () => {
    const r = await run(`${receiver.url}/ok/canary`);
    await settled(r.runId);
    const places = {
      record: await (await h.fetch(`${h.url}/v1/runs/${r.runId}`)).text(),
      list: await (await h.fetch(`${h.url}/v1/runs?limit=100`)).text(),
      trajectory: await (await h.fetch(`${h.url}/v1/runs/${r.runId}/trajectory`)).text(),
      events: await (await h.fetch(`${h.url}/v1/runs/${r.runId}/events`)).text(),
      artifacts: await (await h.fetch(`${h.url}/v1/runs/${r.runId}/artifacts`)).text(),
      payloads: receiver.received.map((x) => x.body).join('\n'),
      logs: await readFile(logFile, 'utf8'),
      files: await allFiles(h.dataDir),
      redis: await dumpRedis(h.redis.url),
    };
    expect(places.record).toContain(`${receiver.url}/ok/canary`);
    expect(places.logs).toContain('webhook delivered');
    for (const [where, text] of Object.entries(places)) expect(text.includes(SECRET), where).toBe(false);
    // Every delivery job has gone, and its secret with it.
    const jobKeys = places.redis.split('\n').filter((l) => /:webhooks:webhook-/.test(l.split(' ')[0]!));
    expect(jobKeys).toEqual([]);
  });
});

const RESTART_KEY = generateApiKey();

describe('a delivery under way when its worker stops', () => {
  it('is made by the next worker: the job waits in Redis, not in the process', async () => {
    const redis = await startRedis();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-test-'));
    const own = new Receiver();
    await own.start();
    const config = loadConfig({
      REDIS_URL: redis.url,
      JETTY_KEY_PREFIX: 'restart',
      DATA_DIR: dataDir,
      INSTANCE_NAME: 'restart',
      JETTY_BOOTSTRAP_COLLECTION: 'restart',
      JETTY_BOOTSTRAP_API_KEY: RESTART_KEY,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      WEBHOOK_BACKOFF_MS: '100',
      NETWORK_ALLOW_PRIVATE: '127.0.0.1',
    });
    const drv = new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 }));
    const start = () => startServer(config, { role: 'all', logger: pino({ level: 'silent' }), driver: drv });
    let second: Awaited<ReturnType<typeof start>> | undefined;
    try {
      const first = await start();
      const res = await postJson(
        `${first.url}/v1/chat/completions`,
        runbookRequest(RUNBOOK, {
          stream: false,
          jetty: { webhook_url: `${own.url}/hold-once/r`, webhook_secret: SECRET, timeout_hint: 60 },
        }),
        bearer(RESTART_KEY),
      );
      const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
        .trajectory_id;
      // The first POST hangs in the receiver; the server goes away meanwhile.
      await waitFor(async () => own.to('/hold-once/r').length > 0, 10_000, 'the first POST');
      await first.close();
      // Between the two, the delivery is in Redis, handed back without a try spent.
      const conn = new Redis(redis.url);
      const q = new Queue('webhooks', { connection: conn, prefix: 'restart:bull' });
      try {
        const job = await q.getJob(`webhook-${runId}`);
        expect(['delayed', 'waiting']).toContain(await job?.getState());
        expect(job?.attemptsMade).toBe(0);
      } finally {
        await q.close();
        conn.disconnect();
      }
      second = await start();
      const rec = await waitFor(
        async () => {
          const r = (await (
            await fetch(`${second!.url}/v1/runs/${runId}`, { headers: bearer(RESTART_KEY) })
          ).json()) as {
            webhook?: WebhookInfo;
          };
          return r.webhook?.state === 'delivered' ? r : undefined;
        },
        15_000,
        'the next worker to deliver',
      );
      // The interrupted try was not counted against the receiver.
      expect(rec.webhook!.deliveries.map((d) => [d.attempt, d.status_code])).toEqual([[1, 200]]);
      const got = own.to('/hold-once/r');
      expect(got).toHaveLength(2);
      expect(got.every((g) => g.signatureValid)).toBe(true);
    } finally {
      await second?.close();
      await own.stop();
      await redis.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

async function allFiles(dir: string): Promise<string> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(path.join(e.parentPath, e.name), 'utf8'));
  }
  return out.join('\n');
}

/** Every key and value in the Redis, as text. */

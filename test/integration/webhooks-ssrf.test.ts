import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// A webhook URL is the user's: the worker must not POST it to the host itself, the operator's
// network or a metadata service, however the URL is written or wherever it redirects. The operator
// allows 127.0.0.2 here (NETWORK_ALLOW_PRIVATE), so that a first hop can be served on loopback
// while every other loopback address stays refused. The metadata address (169.254.169.254) is
// refused by the same check, tested in test/unit/address-policy.test.ts without a socket: a test
// here would send a packet off loopback the day the check broke.
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';

interface Delivery {
  attempt: number;
  status_code: number | null;
  error: string | null;
}

/** A TCP port that counts who connects, then closes on them (as Redis does with HTTP). */
class Listener {
  connections = 0;
  port = 0;
  private readonly server: TcpServer = createTcpServer((sock) => {
    this.connections++;
    sock.on('data', () => sock.destroy());
    sock.on('error', () => undefined);
  });
  async start(host: string): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, host, r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }
  stop = () => new Promise<void>((r) => this.server.close(() => r()));
}

let h: Harness;
let targetRedis: TestRedis;
let onLoopback: Listener;
let onAllowed: Listener;
let redirector: Server;
let redirectorPort = 0;
const redirected: string[] = [];

beforeAll(async () => {
  h = await startHarness({
    driver: new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 })),
    env: {
      NETWORK_ALLOW_PRIVATE: '127.0.0.2',
      WEBHOOK_ATTEMPTS: '2',
      WEBHOOK_BACKOFF_MS: '50',
      WEBHOOK_TIMEOUT_MS: '3000',
    },
  });
  targetRedis = await startRedis();
  onLoopback = await new Listener().start('127.0.0.1');
  onAllowed = await new Listener().start('127.0.0.2');
  // Sends every POST on to the URL in its query: the first hop is allowed, the next may not be.
  redirector = createHttpServer((req, res) => {
    redirected.push(req.url ?? '');
    const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to') ?? '/';
    req.resume();
    res.writeHead(307, { location: to }).end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.2', r));
  redirectorPort = (redirector.address() as { port: number }).port;
});

afterAll(async () => {
  await h?.stop();
  await targetRedis?.stop();
  await onLoopback?.stop();
  await onAllowed?.stop();
  await new Promise((r) => redirector?.close(r));
});

/** Runs a runbook whose end goes to `url`, and waits for the delivery to settle. */
async function deliver(url: string): Promise<{ state: string; deliveries: Delivery[] }> {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(RUNBOOK, { stream: false, jetty: { webhook_url: url, webhook_secret: 'whsec_x' } }),
  );
  expect(res.status).toBe(200);
  const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
    .trajectory_id;
  return waitFor(
    async () => {
      const rec = (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as {
        webhook?: { state: string; deliveries: Delivery[] };
      };
      return rec.webhook && ['delivered', 'failed'].includes(rec.webhook.state) ? rec.webhook : undefined;
    },
    20_000,
    `the webhook of ${id}`,
  );
}

const refusedLoopback = (shown: string) =>
  `refused to connect to ${shown}: a loopback address; an operator can allow it in NETWORK_ALLOW_PRIVATE`;

async function connectionsTo(redis: TestRedis): Promise<number> {
  const conn = new Redis(redis.url);
  try {
    const info = await conn.info('stats');
    return Number(/total_connections_received:(\d+)/.exec(info)![1]);
  } finally {
    conn.disconnect();
  }
}

describe('webhooks never reach what the operator has not allowed', () => {
  it("a webhook to the server's Redis port is refused at once, and Redis sees no connection", async () => {
    const before = await connectionsTo(targetRedis);
    const hook = await deliver(`http://127.0.0.1:${targetRedis.port}/`);
    // The counting connection of connectionsTo itself is the only new one.
    expect(await connectionsTo(targetRedis)).toBe(before + 1);
    expect(hook.state).toBe('failed');
    expect(hook.deliveries).toEqual([
      expect.objectContaining({ attempt: 1, status_code: null, error: refusedLoopback('127.0.0.1') }),
    ]);
  });

  it('a name that resolves to loopback is refused after resolution, and nothing connects', async () => {
    const hook = await deliver(`http://localhost:${onLoopback.port}/hook`);
    expect(hook.state).toBe('failed');
    expect(hook.deliveries[0]!.error).toMatch(
      /^refused to connect to localhost \((127\.0\.0\.1|::1)\): a loopback address; /,
    );
    expect(onLoopback.connections).toBe(0);
  });

  it('an allowed first hop that redirects to loopback is refused at the second hop', async () => {
    const before = redirected.length;
    for (const to of [
      `http://127.0.0.1:${onLoopback.port}/`,
      `http://[::ffff:127.0.0.1]:${onLoopback.port}/`,
    ]) {
      const hook = await deliver(`http://127.0.0.2:${redirectorPort}/hop?to=${encodeURIComponent(to)}`);
      expect(hook.state).toBe('failed');
      expect(hook.deliveries[0]!.error).toMatch(
        /^refused to connect to (127\.0\.0\.1|::ffff:7f00:1): a loopback/,
      );
    }
    // The first hop was made (once per webhook: the refusal is final), the second never.
    expect(redirected.length - before).toBe(2);
    expect(onLoopback.connections).toBe(0);
  });

  it('a refused port reads the same open or closed; an allowed one too, without the cause', async () => {
    const closed = await freePort();
    const [open, shut] = await Promise.all([
      deliver(`http://127.0.0.1:${onLoopback.port}/`),
      deliver(`http://127.0.0.1:${closed}/`),
    ]);
    expect(open.deliveries.map((d) => d.error)).toEqual(shut.deliveries.map((d) => d.error));
    expect(onLoopback.connections).toBe(0);

    // On the allowed address the POSTs are made: a port that closes on them and a closed port
    // give the same error on every try, naming neither ECONNREFUSED nor a reset.
    const [openAllowed, shutAllowed] = await Promise.all([
      deliver(`http://127.0.0.2:${onAllowed.port}/`),
      deliver(`http://127.0.0.2:${closed}/`),
    ]);
    expect(onAllowed.connections).toBe(2);
    expect(openAllowed.deliveries).toHaveLength(2);
    expect(openAllowed.deliveries.map((d) => d.error)).toEqual(shutAllowed.deliveries.map((d) => d.error));
    expect(openAllowed.deliveries[0]!.error).toBe(
      'the receiver gave no HTTP answer (no connection, the connection closed, or no answer within 3000 ms)',
    );
  });
});

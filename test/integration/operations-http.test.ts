import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { scrape, value } from '../support/prometheus.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';

// What an operator and a browser meet at the API's edges: the landing page, CORS, the per-key
// rate limit, /metrics and the queue dashboard, on a real Redis and real BullMQ (the sandbox is
// played back: these are HTTP behaviours; the metrics of real runs are tested in test/e2e).
const ADMIN = 'a'.repeat(40);
const METRICS_TOKEN = 'metrics-token-0123456789';
const APP = 'https://app.example';
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';
// A runbook that says SLOW plays a run of several seconds, so a test can look while it streams.
const driver = new ScriptedDriver((spec) =>
  promptOf(spec).includes('SLOW')
    ? claudeLines({ steps: 40, delayMs: 200 })
    : claudeLines({ steps: 2, delayMs: 10 }),
);

let on: Harness;
let off: Harness;

beforeAll(async () => {
  on = await startHarness({
    driver,
    env: {
      CORS_ORIGINS: `${APP}, http://localhost:3000`,
      RATE_LIMIT_MAX: '20',
      RATE_LIMIT_WINDOW_SEC: '60',
      JETTY_ADMIN_TOKEN: ADMIN,
      METRICS_TOKEN,
    },
  });
  off = await startHarness({ driver });
});
afterAll(async () => {
  await on?.stop();
  await off?.stop();
});

const preflight = (url: string, origin: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });

describe('the landing page', () => {
  it('answers GET / with a page that links the API reference and the runs page, not a JSON 401', async () => {
    const res = await fetch(`${off.url}/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('href="/docs"');
    expect(html).toContain('href="/ui"');
  });
});

describe('CORS', () => {
  it('answers a preflight from a listed origin before any key is asked for', async () => {
    const res = await preflight(on.url, APP);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('lets a listed origin read the answer and its request id', async () => {
    const res = await fetch(`${on.url}/v1/runs`, { headers: { origin: APP, ...on.auth } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-expose-headers')).toContain('x-request-id');
  });

  it('refuses a preflight from an origin not listed, saying which setting lists origins', async () => {
    const res = await preflight(on.url, 'https://evil.example');
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('cors_origin_not_allowed');
    expect(body.error.message).toContain('CORS_ORIGINS');
    const get = await fetch(`${on.url}/v1/runs`, { headers: { origin: 'https://evil.example', ...on.auth } });
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('is off by default: no origin gets CORS headers, and a preflight is told so', async () => {
    const res = await preflight(off.url, APP);
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('CORS_ORIGINS');
    const get = await fetch(`${off.url}/v1/runs`, { headers: { origin: APP, ...off.auth } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('the per-key rate limit', () => {
  it('answers 429 in the OpenAI envelope with retry-after past RATE_LIMIT_MAX, for that key only', async () => {
    const limited = await on.addCollection('rate-limited');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      statuses.push((await fetch(`${on.url}/v1/runs`, { headers: limited.auth })).status);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    const over = await fetch(`${on.url}/v1/runs`, { headers: limited.auth });
    expect(over.status).toBe(429);
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await over.json()) as { error: { type: string; code: string; message: string } };
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(body.error.message).toContain('RATE_LIMIT_MAX');

    // The official SDK raises its RateLimitError on it (and would wait retry-after and retry).
    const client = new OpenAI({ apiKey: limited.key, baseURL: `${on.url}/v1`, maxRetries: 0 });
    await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.RateLimitError);

    // Another key is not held back, nor are health probes.
    expect((await fetch(`${on.url}/v1/runs`, { headers: on.auth })).status).toBe(200);
    expect((await fetch(`${on.url}/healthz`)).status).toBe(200);
  });

  it('counts the refusals in jetty_http_rate_limited_total', async () => {
    const m = await scrape(on.url, METRICS_TOKEN);
    expect(value(m, 'jetty_http_rate_limited_total')).toBeGreaterThanOrEqual(2);
  });
});

describe('/metrics on the API', () => {
  it('serves the Prometheus text format, with queue and stream gauges', async () => {
    const res = await off.postJson(
      `${off.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false }),
    );
    expect([200, 202]).toContain(res.status);
    const m = await scrape(off.url);
    expect(m.types.get('jetty_queue_jobs')).toBe('gauge');
    expect(m.types.get('jetty_sse_streams_open')).toBe('gauge');
    expect(m.types.get('jetty_runs_started')).toBe('counter');
    expect(m.types.get('process_cpu_user_seconds')).toBe('counter');
  });

  it('counts an open SSE stream while it is open, and not after', async () => {
    const slow = runbookRequest(`${RUNBOOK}SLOW\n`, { stream: false, jetty: { timeout_hint: 0 } });
    const created = (await (await off.postJson(`${off.url}/v1/chat/completions`, slow)).json()) as {
      jetty_metadata: { trajectory_id: string };
    };
    const firstBefore = value(await scrape(off.url), 'jetty_event_stream_first_event_seconds_count');
    const ctl = new AbortController();
    const stream = await fetch(`${off.url}/v1/runs/${created.jetty_metadata.trajectory_id}/events`, {
      headers: off.auth,
      signal: ctl.signal,
    });
    expect(stream.status).toBe(200);
    // The first event (run.queued) came with the headers or is on its way: once it is read, the
    // server has timed it.
    const reader = stream.body!.getReader();
    await reader.read();
    const during = await scrape(off.url);
    expect(value(during, 'jetty_sse_streams_open')).toBe(1);
    expect(value(during, 'jetty_event_followers')).toBe(1);
    expect(value(during, 'jetty_event_streams_followed')).toBe(1);
    expect(value(during, 'jetty_event_stream_first_event_seconds_count')).toBe(firstBefore + 1);
    ctl.abort();
    await waitFor(
      async () => {
        const m = await scrape(off.url);
        return (
          value(m, 'jetty_sse_streams_open') === 0 &&
          value(m, 'jetty_event_followers') === 0 &&
          value(m, 'jetty_event_streams_followed') === 0
        );
      },
      5_000,
      'the stream and its follower to be let go',
    );
  });

  it('asks for METRICS_TOKEN when one is set', async () => {
    const none = await fetch(`${on.url}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { message: string } }).error.message).toContain('METRICS_TOKEN');
    expect((await fetch(`${on.url}/metrics`, { headers: on.auth })).status).toBe(401);
    expect((await fetch(`${on.url}/metrics`, { headers: bearer(METRICS_TOKEN) })).status).toBe(200);
  });
});

describe('the queue dashboard', () => {
  it('sends a browser without a session to the sign-in form, and a script gets a 401', async () => {
    const page = await fetch(`${on.url}/admin/queues`, {
      headers: { accept: 'text/html' },
      redirect: 'manual',
    });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/admin/login');
    const api = await fetch(`${on.url}/admin/queues/api/queues`);
    expect(api.status).toBe(401);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('admin_token_required');
    // A collection's key is not the admin token.
    expect((await fetch(`${on.url}/admin/queues/api/queues`, { headers: on.auth })).status).toBe(401);
  });

  it('refuses a wrong token at sign-in, and signs in with the right one into an HttpOnly cookie', async () => {
    const wrong = await signIn('b'.repeat(40));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();

    const right = await signIn(ADMIN);
    expect(right.status).toBe(303);
    expect(right.headers.get('location')).toBe('/admin/queues');
    const cookie = right.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toContain(ADMIN);

    const session = cookie.split(';')[0]!;
    const dash = await fetch(`${on.url}/admin/queues`, { headers: { cookie: session, accept: 'text/html' } });
    expect(dash.status).toBe(200);
    expect(await dash.text()).toMatch(/<div id="root"/);
  });

  it('lists the runs queue and its jobs, read-only, to the admin token', async () => {
    const res = await on.postJson(
      `${on.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false }),
    );
    expect([200, 202]).toContain(res.status);
    const q = await fetch(`${on.url}/admin/queues/api/queues?activeQueue=runs&status=latest`, {
      headers: bearer(ADMIN),
    });
    expect(q.status).toBe(200);
    const body = (await q.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
    const names = body.queues.map((x) => x.name);
    expect(names).toContain('runs');
    expect(body.queues.every((x) => x.readOnlyMode)).toBe(true);

    const put = await fetch(`${on.url}/admin/queues/api/queues/runs/pause`, {
      method: 'PUT',
      headers: bearer(ADMIN),
    });
    expect(put.status).toBe(405);
    expect(((await put.json()) as { error: { code: string } }).error.code).toBe('dashboard_read_only');
  });

  it('is off, and says how to turn it on, without JETTY_ADMIN_TOKEN', async () => {
    const res = await fetch(`${off.url}/admin/queues`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      'JETTY_ADMIN_TOKEN',
    );
  });
});

function signIn(token: string): Promise<Response> {
  return fetch(`${on.url}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
    redirect: 'manual',
  });
}

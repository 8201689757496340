import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// Budgets at the API: the collection's settings, the operator's maximum, the run's budget on its
// record, and the daily spend limit (429 with retry-after, nothing queued). Real Redis and BullMQ;
// the sandbox is a scripted stand-in (the gateway's enforcement has its own tests).
let h: Harness;
const driver = new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 }));
const RUNBOOK = '---\nagent: claude-code\n---\n# Task\nSay hi.\n';

beforeAll(async () => {
  h = await startHarness({ driver, env: { RUN_MAX_COST_USD: '5', RUN_MAX_TOKENS: '100000' } });
});
afterAll(async () => {
  await h?.stop();
});

async function inject(method: 'GET' | 'PATCH' | 'POST', url: string, payload?: unknown) {
  const res = await h.server.app!.inject({
    method,
    url,
    headers: { 'content-type': 'application/json', ...h.auth },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });
  return { status: res.statusCode, body: res.json() as any, headers: res.headers };
}

const settings = (patch?: Record<string, unknown>) =>
  patch ? inject('PATCH', '/v1/collection/settings', patch) : inject('GET', '/v1/collection/settings');
const submit = (jetty: Record<string, unknown> = {}) =>
  inject(
    'POST',
    '/v1/chat/completions',
    runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0, ...jetty } }),
  );

function nextUtcMidnight(): Date {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1));
}

describe('collection settings', () => {
  it('start empty, show the server maximum and today’s spend', async () => {
    const res = await settings();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      collection: h.collection,
      default_max_cost_usd: null,
      default_max_tokens: null,
      daily_spend_limit_usd: null,
      server_max_cost_usd: 5,
      server_max_tokens: 100000,
      spent_today_usd: 0,
      resets_at: nextUtcMidnight().toISOString(),
      egress_policy: null,
      egress_allow: [],
      server_egress: { mode: 'none', allow: [] },
      effective_egress: { mode: 'none', allow: [] },
    });
  });

  it('a number sets, null clears, a field left out is kept', async () => {
    expect((await settings({ default_max_tokens: 5000, daily_spend_limit_usd: 3 })).body).toMatchObject({
      default_max_tokens: 5000,
      daily_spend_limit_usd: 3,
    });
    expect((await settings({ daily_spend_limit_usd: null })).body).toMatchObject({
      default_max_tokens: 5000,
      daily_spend_limit_usd: null,
    });
  });

  it('a default above the operator’s maximum is a 400 naming it; so is an unknown field', async () => {
    const over = await settings({ default_max_cost_usd: 6 });
    expect(over.status).toBe(400);
    expect(over.body.error).toMatchObject({ param: 'default_max_cost_usd', code: 'budget_over_maximum' });
    expect(over.body.error.message).toContain('RUN_MAX_COST_USD');
    const unknown = await settings({ max_cost: 1 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('max_cost');
  });

  it('the CLI’s operations on the store apply the same rules', async () => {
    await expect(
      h.server.tenancy.patchBudgetSettings(
        h.collection,
        { default_max_tokens: 100001 },
        { maxCostUsd: 5, maxTokens: 100000 },
      ),
    ).rejects.toThrow(/RUN_MAX_TOKENS/);
  });
});

describe('a run’s budget', () => {
  it('over the operator’s maximum: a 400 naming the variable, and nothing is queued', async () => {
    const before = await h.jobsEnqueued();
    const cost = await submit({ max_cost_usd: 5.01 });
    expect(cost.status).toBe(400);
    expect(cost.body.error).toMatchObject({ param: 'jetty.max_cost_usd', code: 'budget_over_maximum' });
    expect(cost.body.error.message).toContain('RUN_MAX_COST_USD');
    const tokens = await submit({ max_tokens: 100001 });
    expect(tokens.status).toBe(400);
    expect(tokens.body.error).toMatchObject({ param: 'jetty.max_tokens', code: 'budget_over_maximum' });
    expect(tokens.body.error.message).toContain('RUN_MAX_TOKENS');
    expect((await submit({ max_tokens: 0 })).status).toBe(400);
    expect(await h.jobsEnqueued()).toBe(before);
  });

  it('the request’s figure, else the collection’s default, else the maximum, is on the run record', async () => {
    await settings({ default_max_tokens: 5000, default_max_cost_usd: null });
    const byDefault = await submit();
    const own = await submit({ max_tokens: 42, max_cost_usd: 0.25 });
    for (const r of [byDefault, own]) expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    const record = async (res: typeof own) =>
      (await inject('GET', `/v1/runs/${res.body.jetty_metadata.trajectory_id}`)).body;
    expect((await record(byDefault)).budget).toMatchObject({
      max_tokens: 5000,
      max_cost_usd: 5,
      exceeded: false,
    });
    expect((await record(own)).budget).toMatchObject({ max_tokens: 42, max_cost_usd: 0.25 });
    // The record keeps what was measured against it once the run ends.
    const ended = await waitFor(
      async () => {
        const r = await record(own);
        return r.status === 'completed' ? r : undefined;
      },
      20_000,
      'the run to end',
    );
    expect(ended.budget).toEqual({
      max_tokens: 42,
      max_cost_usd: 0.25,
      spent_tokens: 0,
      spent_cost_usd: 0,
      exceeded: false,
    });
  });
});

describe('a model without a price', () => {
  it('is said at the start: the cost budget cannot see its calls, the token budget still applies', async () => {
    const res = await inject(
      'POST',
      '/v1/chat/completions',
      runbookRequest(RUNBOOK, {
        stream: false,
        model: 'unlisted-model-x',
        jetty: { timeout_hint: 0, max_tokens: 900 },
      }),
    );
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    const id = res.body.jetty_metadata.trajectory_id;
    const warning = await waitFor(
      async () => {
        const t = (await inject('GET', `/v1/runs/${id}/trajectory`)).body;
        return t.events?.find((e: { type: string }) => e.type === 'run.warning');
      },
      20_000,
      'the warning',
    );
    expect(warning.data.code).toBe('budget_cost_unpriced');
    expect(warning.data.message).toContain('unlisted-model-x has no price');
    expect(warning.data.message).toContain('token budget (900 tokens) still applies');
  });
});

describe('the daily spend limit', () => {
  it('a run submitted past it is a 429 naming the limit and when it resets, with retry-after; nothing is queued', async () => {
    await settings({ daily_spend_limit_usd: 0.05 });
    await h.server.tenancy.addSpend(h.collection, 0.06);
    expect((await settings()).body.spent_today_usd).toBeCloseTo(0.06, 6);
    const before = await h.jobsEnqueued();

    const res = await submit();
    expect(res.status).toBe(429);
    expect(res.body.error).toMatchObject({
      type: 'rate_limit_error',
      code: 'daily_spend_limit_reached',
      param: null,
    });
    const resets = nextUtcMidnight();
    expect(res.body.error.message).toContain('$0.05');
    expect(res.body.error.message).toContain(resets.toISOString());
    const wait = Number(res.headers['retry-after']);
    expect(Math.abs(wait - (resets.getTime() - Date.now()) / 1000)).toBeLessThan(5);

    // The Jetty surface answers the same.
    await inject('POST', `/api/v1/tasks/${h.collection}`, {
      name: 'daily',
      workflow: {
        steps: ['run'],
        step_configs: { run: { activity: 'runbook' } },
        init_params: { instruction: RUNBOOK, model_provider: 'simulated' },
      },
    });
    const fd = new FormData();
    fd.append('init_params', '{}');
    const jetty = await fetch(`${h.url}/api/v1/run/${h.collection}/daily`, {
      method: 'POST',
      headers: h.auth,
      body: fd,
    });
    expect(jetty.status).toBe(429);
    expect(Number(jetty.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await h.jobsEnqueued()).toBe(before);

    // A plain LLM call (no jetty block) spends too: refused the same way.
    const plain = await inject('POST', '/v1/chat/completions', {
      model: 'simulated',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(plain.status).toBe(429);
    expect(plain.body.error.code).toBe('daily_spend_limit_reached');

    // Raised above today's spend, runs are accepted again.
    await settings({ daily_spend_limit_usd: 1 });
    expect((await submit()).status).toBeLessThan(300);
  });
});

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BudgetExceeded, type BudgetLimits, RunBudget } from '../../src/gateway/budget.js';
import { type GatewayRoute, ProviderGateway, type Upstream } from '../../src/gateway/gateway.js';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';
import { bedrockEvent } from '../support/aws-event-stream.js';

// The gateway enforces a run's budget on every wire protocol: the call after the budget is spent
// gets that protocol's client error (400, the provider's error body, x-should-retry: false), never
// reaches the upstream, and the worker is told once.
let dir = '';
let gw: ProviderGateway;
const socket = () => path.join(dir, 'gateway.sock');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'gwb-'));
  gw = new ProviderGateway(socket());
  await gw.start();
});
afterAll(async () => {
  await gw.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(token: string, urlPath: string, body: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        socketPath: socket(),
        path: urlPath,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('latin1'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const simulated = createSimulatedProvider({
  runbook: '# t\n```simulate\n- say: one\n- say: two\n```\n',
  requiredOutputs: [],
  resultsDir: '/app/results',
  workdir: '/app',
});

const fixture = (name: string) =>
  readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'usage', name));

/** Bedrock is not simulated: its documented answers stand in for it. */
const bedrock: Upstream = async (req) => {
  const op = new URL(req.url).pathname.split('/').at(-1);
  if (op === 'converse')
    return new Response(fixture('bedrock-converse.json'), {
      headers: { 'content-type': 'application/json' },
    });
  if (op === 'invoke')
    return new Response(fixture('bedrock-invoke.json'), { headers: { 'content-type': 'application/json' } });
  const stream = 'application/vnd.amazon.eventstream';
  if (op === 'converse-stream') {
    const events = JSON.parse(fixture('bedrock-converse-stream.events.json').toString()) as {
      eventType: string;
      payload: unknown;
    }[];
    return new Response(Buffer.concat(events.map((e) => bedrockEvent(e.eventType, e.payload))), {
      headers: { 'content-type': stream },
    });
  }
  const inner = JSON.parse(fixture('bedrock-invoke-stream.events.json').toString()) as unknown[];
  return new Response(
    Buffer.concat(
      inner.map((e) => bedrockEvent('chunk', { bytes: Buffer.from(JSON.stringify(e)).toString('base64') })),
    ),
    { headers: { 'content-type': stream } },
  );
};

let n = 0;
/** A route with its own token and budget; counts what reaches the upstream. */
function route(limits: BudgetLimits, upstream: Upstream = (r) => simulated.fetch(r)) {
  const token = `tok_budget_${++n}_abcdef`;
  const told: BudgetExceeded[] = [];
  const budget = new RunBudget(limits, (e) => told.push(e));
  const forwarded: string[] = [];
  const r: GatewayRoute = {
    runId: `r${n}`,
    provider: 'simulated',
    baseUrl: 'http://upstream.invalid',
    upstream: (req) => {
      forwarded.push(new URL(req.url).pathname);
      return upstream(req);
    },
    auth: null,
    onUsage: () => undefined,
    budget,
  };
  gw.register(token, r);
  return { token, budget, told, forwarded };
}

const claudeOnBedrock = `/model/${encodeURIComponent('us.anthropic.claude-sonnet-4-5-20250929-v1:0')}`;

const PROTOCOLS: {
  name: string;
  path: string;
  body: unknown;
  upstream?: Upstream;
  /** What the refusal looks like in this protocol's own error shape. */
  expectError: (a: Answer) => void;
}[] = [
  {
    name: 'Anthropic Messages (streamed)',
    path: '/v1/messages?beta=true',
    body: {
      model: 'claude-sonnet-4-6',
      stream: true,
      max_tokens: 64,
      messages: [{ role: 'user', content: 'hi' }],
    },
    expectError: (a) =>
      expect(JSON.parse(a.body)).toEqual({
        type: 'error',
        error: {
          type: 'invalid_request_error',
          message: expect.stringContaining('against its budget of 1.'),
        },
      }),
  },
  {
    name: 'OpenAI Responses (streamed)',
    path: '/v1/responses',
    body: { model: 'gpt-5', stream: true, input: 'hi' },
    expectError: (a) =>
      expect(JSON.parse(a.body)).toEqual({
        error: {
          message: expect.stringContaining('against its budget of 1.'),
          type: 'invalid_request_error',
          param: null,
          code: 'budget_exceeded',
        },
      }),
  },
  {
    name: 'OpenAI Chat Completions (JSON)',
    path: '/api/v1/chat/completions',
    body: { model: 'anthropic/claude-sonnet-4.6', messages: [{ role: 'user', content: 'hi' }] },
    expectError: (a) => expect(JSON.parse(a.body).error.code).toBe('budget_exceeded'),
  },
  {
    name: 'Gemini streamGenerateContent',
    path: '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
    body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] },
    expectError: (a) =>
      expect(JSON.parse(a.body)).toEqual({
        error: {
          code: 400,
          message: expect.stringContaining('against its budget of 1.'),
          status: 'FAILED_PRECONDITION',
        },
      }),
  },
  ...(['invoke', 'invoke-with-response-stream', 'converse', 'converse-stream'] as const).map((op) => ({
    name: `Bedrock ${op}`,
    path: `${claudeOnBedrock}/${op}`,
    body: { messages: [{ role: 'user', content: [{ text: 'hi' }] }] },
    upstream: bedrock,
    expectError: (a: Answer) => {
      expect(a.headers['x-amzn-errortype']).toBe('ValidationException');
      expect(JSON.parse(a.body)).toEqual({ message: expect.stringContaining('against its budget of 1.') });
    },
  })),
];

describe('a spent budget refuses the next model call, in each protocol’s own error shape', () => {
  for (const p of PROTOCOLS) {
    it(p.name, async () => {
      const r = route({ maxTokens: 1, maxCostUsd: null }, p.upstream);
      const first = await call(r.token, p.path, p.body);
      expect(first.status).toBe(200);
      expect(r.budget.spent().tokens).toBeGreaterThan(1);
      expect(r.told).toEqual([]);

      const second = await call(r.token, p.path, p.body);
      expect(second.status).toBe(400);
      expect(second.headers['x-should-retry']).toBe('false');
      p.expectError(second);
      expect(r.forwarded).toHaveLength(1);

      // Told once, however many calls are refused after.
      await call(r.token, p.path, p.body);
      expect(r.forwarded).toHaveLength(1);
      expect(r.budget.refusals).toBe(2);
      expect(r.told).toHaveLength(1);
      expect(r.told[0]).toMatchObject({ limit: 'max_tokens', budget: 1 });
      expect(r.told[0]!.message).toContain(`${r.budget.spent().tokens.toLocaleString('en-US')} tokens`);
      expect(r.told[0]!.message).toContain('max_tokens of 1');
    });
  }
});

describe('the refusal reads as final to every CLI', () => {
  it('its words match none of the patterns CLIs retry on (context overflow, rate limit, quota)', async () => {
    const r = route({ maxTokens: 1, maxCostUsd: 0.000001 });
    await call(r.token, '/v1/messages', PROTOCOLS[0]!.body);
    const refused = JSON.parse((await call(r.token, '/v1/messages', PROTOCOLS[0]!.body)).body).error
      .message as string;
    // Hermes' classifier (agent/error_classifier.py of hermes 0.19.0) lowercases the error and
    // looks for these; any of them makes it compress the context or back off and retry.
    for (const p of [
      'max_tokens',
      'token limit',
      'too many tokens',
      'context',
      'exceeds the limit',
      'rate limit',
      'rate_limit',
      'quota',
      'try again',
      'throttl',
      'servicequotaexceeded',
    ]) {
      expect(refused.toLowerCase()).not.toContain(p);
    }
  });
});

describe('what counts', () => {
  it('a cost cap priced with the price table names its figure', async () => {
    const r = route({ maxTokens: null, maxCostUsd: 0.000001 });
    const body = PROTOCOLS[0]!.body;
    expect((await call(r.token, '/v1/messages', body)).status).toBe(200);
    const refused = await call(r.token, '/v1/messages', body);
    expect(refused.status).toBe(400);
    expect(r.told[0]).toMatchObject({ limit: 'max_cost_usd', budget: 0.000001 });
    expect(r.told[0]!.message).toMatch(/cost \$0\.\d+ .* of its max_cost_usd of \$0\.000001/);
  });

  it('a model without a price: the cost cap cannot see it, the token cap still applies', async () => {
    const body = { model: 'some-unlisted-model', stream: true, messages: [{ role: 'user', content: 'hi' }] };
    const costOnly = route({ maxTokens: null, maxCostUsd: 0.000001 });
    expect((await call(costOnly.token, '/v1/messages', body)).status).toBe(200);
    expect((await call(costOnly.token, '/v1/messages', body)).status).toBe(200);
    expect(costOnly.budget.spent()).toMatchObject({ costUsd: 0, unpricedCalls: 2 });

    const both = route({ maxTokens: 1, maxCostUsd: 0.000001 });
    expect((await call(both.token, '/v1/messages', body)).status).toBe(200);
    expect((await call(both.token, '/v1/messages', body)).status).toBe(400);
    expect(both.told[0]?.limit).toBe('max_tokens');
  });

  it('calls that are not model calls (token counts) still pass once the budget is spent', async () => {
    const r = route({ maxTokens: 1, maxCostUsd: null });
    const body = PROTOCOLS[0]!.body;
    await call(r.token, '/v1/messages', body);
    expect((await call(r.token, '/v1/messages', body)).status).toBe(400);
    expect((await call(r.token, '/v1/messages/count_tokens', body)).status).toBe(200);
  });

  it('under the budget nothing is refused', async () => {
    const r = route({ maxTokens: 1_000_000, maxCostUsd: 100 });
    for (let i = 0; i < 3; i++)
      expect((await call(r.token, '/v1/messages', PROTOCOLS[0]!.body)).status).toBe(200);
    expect(r.told).toEqual([]);
    expect(r.budget.exceeded).toBeNull();
  });
});

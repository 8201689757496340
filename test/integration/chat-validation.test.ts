import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// Bad input never reaches the queue: each case is a 4xx in the OpenAI envelope whose `param`
// names the field and whose message says the fix; after all of them, no run exists.
let h: Harness;
const driver = new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 }));
beforeAll(async () => {
  // Keys for OpenRouter and Bedrock (never used: nothing here reaches a provider) so that the
  // model-slug rules are what answers.
  h = await startHarness({
    driver,
    env: {
      MAX_BODY_BYTES: '64k',
      OPENROUTER_API_KEY: 'sk-or-unused',
      AWS_BEARER_TOKEN_BEDROCK: 'unused',
      SANDBOX_MAX_CPUS: '2',
      SANDBOX_MAX_MEMORY: '4g',
    },
  });
});
afterAll(async () => {
  await h?.stop();
});

const RUNBOOK = '---\nagent: claude-code\n---\n# Task\nWrite {{results_dir}}/out.txt\n';

async function post(body: unknown, raw?: string) {
  const res = await h.server.app!.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', ...h.auth },
    payload: raw ?? JSON.stringify(body),
  });
  return {
    status: res.statusCode,
    body: res.json() as { error: { message: string; type: string; param: string | null; code: string } },
    headers: res.headers,
  };
}

const cases: Array<{
  name: string;
  body?: unknown;
  raw?: string;
  status: number;
  param: string | null;
  says: RegExp;
}> = [
  { name: 'invalid JSON', raw: '{"messages": [', status: 400, param: null, says: /not valid JSON/ },
  {
    name: 'missing messages',
    body: { model: 'x', jetty: { runbook: true } },
    status: 400,
    param: 'messages',
    says: /array/,
  },
  {
    name: 'empty messages',
    body: { model: 'x', messages: [], jetty: { runbook: true } },
    status: 400,
    param: 'messages',
    says: /at least one/,
  },
  {
    name: 'no system message',
    body: {
      model: 'x',
      messages: [{ role: 'user', content: 'hi' }],
      jetty: { runbook: true, model_provider: 'simulated' },
    },
    status: 400,
    param: 'messages',
    says: /role "system"/,
  },
  {
    name: 'jetty without runbook: true',
    body: { ...runbookRequest(RUNBOOK), jetty: { model_provider: 'simulated' } },
    status: 400,
    param: 'jetty.runbook',
    says: /true/,
  },
  {
    name: 'unknown agent',
    body: runbookRequest(RUNBOOK, { jetty: { agent: 'claud' } }),
    status: 400,
    param: 'jetty.agent',
    says: /claude-code, codex/,
  },
  {
    name: 'unknown model_provider',
    body: runbookRequest(RUNBOOK, { jetty: { model_provider: 'antropic' } }),
    status: 400,
    param: 'jetty.model_provider',
    says: /anthropic/,
  },
  {
    name: 'frontmatter value of the wrong type',
    body: runbookRequest('---\nagent: claude-code\ntimeout_sec: soon\n---\n# T\n'),
    status: 400,
    param: 'messages[0].content.frontmatter.timeout_sec',
    says: /timeout_sec/,
  },
  {
    name: 'non-string template variable',
    body: runbookRequest(RUNBOOK, { jetty: { template_variables: { sample_size: 10 } } }),
    status: 400,
    param: 'jetty.template_variables.sample_size',
    says: /string/,
  },
  {
    name: 'a variable the Parameters table marks (required), not given',
    body: runbookRequest(
      `${RUNBOOK}\n## Parameters\n\n| Parameter | Template Variable | Default | Description |\n|---|---|---|---|\n| Rows | \`{{sample_size}}\` | *(required)* | How many rows to sample |\n`,
    ),
    status: 422,
    param: 'jetty.template_variables',
    says: /`sample_size` \(How many rows to sample\)/,
  },
  {
    name: 'a provider with no key in the collection or on the server',
    body: runbookRequest(RUNBOOK, { jetty: { model_provider: 'anthropic' } }),
    status: 400,
    param: 'jetty.model_provider',
    says: /ANTHROPIC_API_KEY/,
  },
  {
    name: 'a provider the runtime cannot use',
    body: runbookRequest(RUNBOOK, { jetty: { model_provider: 'google' } }),
    status: 400,
    param: 'jetty.model_provider',
    says: /cannot use/,
  },
  {
    name: 'codex asked to use the Anthropic API',
    body: runbookRequest(RUNBOOK, {
      model: 'default',
      jetty: { agent: 'codex', model_provider: 'anthropic' },
    }),
    status: 400,
    param: 'jetty.model_provider',
    says: /codex cannot use the provider "anthropic".*openai/,
  },
  {
    name: 'an SSE MCP server for codex, which has no SSE transport',
    body: runbookRequest(RUNBOOK, {
      model: 'default',
      jetty: {
        agent: 'codex',
        network_enabled: false,
        mcp_servers: { docs: { type: 'sse', url: 'https://mcp.example.com/sse' } },
      },
    }),
    status: 400,
    param: 'jetty.mcp_servers',
    says: /codex does not speak the sse MCP transport/,
  },
  {
    name: 'a provider named by the frontmatter that the runtime cannot use',
    body: runbookRequest('---\nagent: gemini-cli\nmodel_provider: openrouter\n---\n# T\n', {
      model: 'default',
      jetty: { model_provider: undefined },
    }),
    status: 400,
    param: 'messages[0].content.frontmatter.model_provider',
    says: /gemini-cli cannot use the provider "openrouter"/,
  },
  {
    name: 'a bare Anthropic slug sent to OpenRouter',
    body: runbookRequest(RUNBOOK, { model: 'claude-sonnet-4-6', jetty: { model_provider: 'openrouter' } }),
    status: 400,
    param: 'model',
    says: /anthropic\/claude-sonnet-4\.6/,
  },
  {
    name: 'an OpenRouter slug with a dashed version, from the frontmatter',
    body: runbookRequest('---\nmodel: anthropic/claude-sonnet-4-6\nmodel_provider: openrouter\n---\n# T\n', {
      model: 'default',
      jetty: { model_provider: undefined },
    }),
    status: 400,
    param: 'messages[0].content.frontmatter.model',
    says: /anthropic\/claude-sonnet-4\.6/,
  },
  {
    name: 'a bare anthropic. id sent to Bedrock',
    body: runbookRequest(RUNBOOK, {
      model: 'anthropic.claude-sonnet-4-5-20250929-v1:0',
      jetty: { model_provider: 'bedrock' },
    }),
    status: 400,
    param: 'model',
    says: /us\.anthropic\.claude-sonnet-4-5/,
  },
  {
    name: 'a model the runtime’s providers cannot serve (gemini-cli with gpt-5.5)',
    body: runbookRequest('---\nagent: gemini-cli\nmodel: gpt-5.5\n---\n# T\n', {
      model: 'default',
      jetty: { model_provider: undefined },
    }),
    status: 400,
    param: 'messages[0].content.frontmatter.model',
    says: /gemini-cli cannot run the model "gpt-5\.5"/,
  },
  {
    name: 'a provider slug for the Anthropic API',
    body: {
      ...runbookRequest(RUNBOOK, { model: 'anthropic/claude-sonnet-4.6' }),
      jetty: { runbook: true, model_provider: 'anthropic' },
    },
    status: 400,
    param: 'jetty.model_provider',
    says: /ANTHROPIC_API_KEY/,
  },
  {
    name: 'a malformed simulate script',
    body: runbookRequest('# T\n```simulate\n- explode: now\n```\n'),
    status: 400,
    param: 'messages[0].content',
    says: /simulate/,
  },
  {
    name: 'a results_dir outside /app',
    body: runbookRequest(RUNBOOK, { jetty: { template_variables: { results_dir: '/usr' } } }),
    status: 400,
    param: 'jetty.template_variables.results_dir',
    says: /must be a directory under \/app/,
  },
  {
    name: 'more disk than the server allows',
    body: runbookRequest(RUNBOOK, { jetty: { disk: '64g' } }),
    status: 400,
    param: 'jetty.disk',
    says: /at most \d+ \(SANDBOX_MAX_DISK\)/,
  },
  {
    name: 'a disk size that is not one',
    body: runbookRequest(RUNBOOK, { jetty: { disk: 'lots' } }),
    status: 400,
    param: 'jetty.disk',
    says: /at least 64m/,
  },
  {
    name: 'an unknown snapshot in jetty',
    body: runbookRequest(RUNBOOK, { jetty: { snapshot: 'python39' } }),
    status: 400,
    param: 'jetty.snapshot',
    says: /Unknown snapshot "python39"\. This server serves lean, python312-uv, python312-uv-office, prism-playwright/,
  },
  {
    name: 'an unknown snapshot in the frontmatter',
    body: runbookRequest('---\nsnapshot: gpu-box\n---\n# Task\n'),
    status: 400,
    param: 'messages[0].content.frontmatter.snapshot',
    says: /Unknown snapshot "gpu-box".*GET \/v1\/snapshots/,
  },
  {
    name: 'an image that is not an image reference',
    body: runbookRequest(RUNBOOK, { jetty: { image: 'Not An Image!' } }),
    status: 400,
    param: 'jetty.image',
    says: /must be an image reference/,
  },
  {
    name: 'more CPUs than the server allows',
    body: runbookRequest(RUNBOOK, { jetty: { cpus: 4 } }),
    status: 400,
    param: 'jetty.cpus',
    says: /asks for 4 CPUs; this server allows at most 2 \(SANDBOX_MAX_CPUS\)/,
  },
  {
    name: 'more memory than the server allows, in the frontmatter',
    body: runbookRequest('---\nmemory: 8g\n---\n# Task\n'),
    status: 400,
    param: 'messages[0].content.frontmatter.memory',
    says: /at most \d+ \(SANDBOX_MAX_MEMORY\)/,
  },
  {
    name: 'more disk than the run has memory',
    body: runbookRequest(RUNBOOK, { jetty: { memory: '512m', disk: '1g' } }),
    status: 400,
    param: 'jetty.disk',
    says: /exceeds its memory/,
  },
  {
    name: 'a body over the size limit',
    body: runbookRequest(`${RUNBOOK}${'x'.repeat(70 * 1024)}`),
    status: 413,
    param: null,
    says: /larger than/,
  },
];

describe('bad input to /v1/chat/completions', () => {
  for (const c of cases) {
    it(`${c.name} → ${c.status} naming ${c.param ?? 'the body'}`, async () => {
      const res = await post(c.body, c.raw);
      expect(res.status).toBe(c.status);
      expect(res.headers['x-request-id']).toBeTruthy();
      expect(res.body.error.param).toBe(c.param);
      expect(res.body.error.message).toMatch(c.says);
      expect(typeof res.body.error.code).toBe('string');
      expect(typeof res.body.error.type).toBe('string');
    });
  }

  it('queued nothing for any of them', async () => {
    const list = (await h.server.app!.inject({ url: '/v1/runs', headers: h.auth })).json() as {
      data: unknown[];
    };
    expect(list.data).toHaveLength(0);
    const counts = await h.server.runs.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    expect(driver.started).toHaveLength(0);
  });

  it('an unknown run is a 404 in the same envelope', async () => {
    const res = await h.server.app!.inject({ url: '/v1/runs/0123456789abcdef', headers: h.auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('run_not_found');
    const route = await h.server.app!.inject({ url: '/v1/nothing', headers: h.auth });
    expect(route.statusCode).toBe(404);
    expect(route.json().error.type).toBe('not_found_error');
  });

  it('serves /healthz, /readyz, /v1/runtimes, /v1/models, /openapi.json and /docs', async () => {
    const app = h.server.app!;
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ url: '/readyz' })).json()).toMatchObject({
      status: 'ready',
      checks: { redis: true, blob_store: true },
    });
    const rt = (await app.inject({ url: '/v1/runtimes', headers: h.auth })).json() as {
      data: Array<{
        id: string;
        cli: { version: string };
        providers: Array<{ id: string; available: boolean }>;
      }>;
    };
    const claude = rt.data.find((r) => r.id === 'claude-code')!;
    expect(claude.cli.version).toBe('2.1.197');
    expect(claude.providers.find((p) => p.id === 'simulated')?.available).toBe(true);
    expect(claude.providers.find((p) => p.id === 'anthropic')?.available).toBe(false);
    const models = (await app.inject({ url: '/v1/models', headers: h.auth })).json() as {
      object: string;
      data: Array<{ id: string; owned_by: string; runtimes: string[]; available: boolean }>;
    };
    expect(models.object).toBe('list');
    expect(models.data.find((m) => m.id === 'anthropic/claude-sonnet-4.6')).toMatchObject({
      owned_by: 'openrouter',
      available: true,
    });
    expect(
      models.data.find((m) => m.id === 'claude-sonnet-4-6' && m.owned_by === 'anthropic')?.runtimes,
    ).toContain('claude-code');
    expect((await app.inject({ url: '/openapi.json' })).json().paths['/v1/chat/completions']).toBeDefined();
    const docs = await app.inject({ url: '/docs' });
    expect([200, 302]).toContain(docs.statusCode);
  });
});

describe('when Redis goes away', () => {
  it('a new request gets a 503 in the envelope within seconds, and /readyz says not ready', async () => {
    const { startHarness: start } = await import('../support/harness.js');
    const own = await start({ driver: new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 })) });
    try {
      await own.redis.stop();
      const t0 = Date.now();
      const res = await own.server.app!.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', ...own.auth },
        payload: JSON.stringify(runbookRequest(RUNBOOK)),
      });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('redis_unavailable');
      expect(Date.now() - t0).toBeLessThan(10_000);
      const ready = await own.server.app!.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().checks.redis).toBe(false);
    } finally {
      await own.stop().catch(() => undefined);
    }
  });
});

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { dumpRedis } from '../support/redis.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';

// Keys and collections over HTTP, on real Redis: who may call what, what another collection
// sees (nothing: a 404 like a run that does not exist), and where provider keys and a runbook's
// secrets come from.
const RUNBOOK = '# Tenancy\n\nWrite /app/results/out.txt.\n';
const CANARY = `canary-${randomBytes(12).toString('hex')}`;
const SECRET_RUNBOOK = [
  '---',
  'secrets:',
  '  REPORT_TOKEN: { env: REPORT_TOKEN, description: "token for the report API", required: true }',
  '---',
  '# Uses a secret',
  '',
  'Call the report API with {{secrets.REPORT_TOKEN}}.',
  '',
].join('\n');

let h: Harness;
let other: { collection: string; key: string; auth: Record<string, string> };
let runId = '';
const driver = new ScriptedDriver((spec) =>
  // The "agent" repeats whatever REPORT_TOKEN holds, as an agent that echoes its environment would.
  claudeLines({ steps: 1, delayMs: 0, text: `token is ${spec.env.REPORT_TOKEN ?? 'unset'}` }),
);
const logFile = `/tmp/jetty-tenancy-${randomBytes(4).toString('hex')}.log`;

beforeAll(async () => {
  h = await startHarness({ driver, logFile });
  other = await h.addCollection('other-team');
  const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
  expect(res.status).toBe(200);
  runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;
});

afterAll(async () => {
  await h?.stop();
});

const routes = () => [
  { method: 'GET', path: '/v1/runs' },
  { method: 'GET', path: `/v1/runs/${runId}` },
  { method: 'GET', path: `/v1/runs/${runId}/trajectory` },
  { method: 'GET', path: `/v1/runs/${runId}/events` },
  { method: 'GET', path: `/v1/runs/${runId}/artifacts` },
  { method: 'GET', path: `/v1/runs/${runId}/artifacts/out.txt` },
  { method: 'POST', path: `/v1/runs/${runId}/cancel` },
  { method: 'POST', path: '/v1/chat/completions', body: runbookRequest(RUNBOOK) },
  { method: 'GET', path: '/v1/runtimes' },
  { method: 'GET', path: '/v1/models' },
];

async function call(
  r: { method: string; path: string; body?: unknown },
  headers: Record<string, string>,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}${r.path}`, {
    method: r.method,
    headers: { ...(r.body ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(r.body ? { body: JSON.stringify(r.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

/** POST /v1/chat/completions with a runbook request. */
const chat = (body: unknown, auth: Record<string, string>) =>
  call({ method: 'POST', path: '/v1/chat/completions', body }, auth);

describe('API keys', () => {
  it('every route but health, readiness and the OpenAPI document answers 401 without a key', async () => {
    for (const r of routes()) {
      const res = await call(r, {});
      expect(res.status, `${r.method} ${r.path}`).toBe(401);
      expect(res.body.error.code).toBe('invalid_api_key');
      expect(res.body.error.message).toMatch(/Authorization: Bearer/);
    }
    for (const path of ['/healthz', '/readyz', '/openapi.json']) {
      expect((await fetch(`${h.url}${path}`)).status, path).toBe(200);
    }
  });

  it('every route the OpenAPI document lists needs a key, but the public ones', async () => {
    const doc = (await (await fetch(`${h.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    // /metrics is open while METRICS_TOKEN is unset (docs/operations.md#metrics).
    const open = new Set(['GET /healthz', 'GET /readyz', 'GET /api/v1/health', 'GET /metrics']);
    let checked = 0;
    for (const [template, methods] of Object.entries(doc.paths)) {
      const path = template.replace(/\{[^}]+\}/g, 'x-1').replace(/\/\*$/, '/x-1/y/z/w');
      for (const method of Object.keys(methods).map((m) => m.toUpperCase())) {
        const res = await fetch(`${h.url}${path}`, { method });
        const want = open.has(`${method} ${template}`) ? 200 : 401;
        expect(res.status, `${method} ${template}`).toBe(want);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('a wrong, malformed or revoked key is a 401 too, and nothing was queued by them', async () => {
    const before = await h.jobsEnqueued();
    const revoked = await h.server.tenancy.createApiKey(h.collection);
    await h.server.tenancy.revokeApiKey(h.collection, revoked.id);
    const wrong = [
      bearer(`jrk_${'A'.repeat(43)}`),
      bearer('not-a-key'),
      { authorization: `Basic ${Buffer.from(`u:${h.key}`).toString('base64')}` },
      bearer(revoked.key),
    ];
    for (const headers of wrong) {
      for (const r of routes()) {
        const res = await call(r, headers);
        expect(res.status, `${r.method} ${r.path} with ${headers.authorization}`).toBe(401);
      }
    }
    expect(await h.jobsEnqueued()).toBe(before);
  });

  it('keys are stored hashed: Redis holds no key in the clear', async () => {
    const dump = await dumpRedis(h.redis.url);
    expect(dump).not.toContain(h.key);
    expect(dump).not.toContain(other.key);
  });
});

describe('managing keys over HTTP', () => {
  it('a key makes another, the new one works, the old one can be revoked, and the last one cannot', async () => {
    const team = await h.addCollection('rotating-team');
    const made = await call({ method: 'POST', path: '/v1/keys', body: { name: 'ci' } }, team.auth);
    expect(made.status).toBe(201);
    expect(made.body.key).toMatch(/^jrk_/);
    const fresh = bearer(made.body.key);
    const list = await call({ method: 'GET', path: '/v1/keys' }, fresh);
    expect(list.body.data).toHaveLength(2);
    expect(JSON.stringify(list.body)).not.toContain(made.body.key);
    expect(JSON.stringify(list.body)).not.toContain(team.key);
    const oldId = list.body.data.find((k: { id: string }) => k.id !== made.body.id).id;
    const revoked = await call({ method: 'DELETE', path: `/v1/keys/${oldId}` }, fresh);
    expect(revoked.status).toBe(200);
    expect((await call({ method: 'GET', path: '/v1/keys' }, team.auth)).status).toBe(401);
    const last = await call({ method: 'DELETE', path: `/v1/keys/${made.body.id}` }, fresh);
    expect(last.status).toBe(400);
    expect(last.body.error.code).toBe('last_key');
    // Another collection's key id is unknown here.
    const theirs = await call({ method: 'DELETE', path: `/v1/keys/${made.body.id}` }, h.auth);
    expect(theirs.status).toBe(404);
  });
});

describe('another collection', () => {
  it('gets, for every route naming our run, exactly what a run that does not exist gets', async () => {
    const ghost = '0123456789abcdeg';
    for (const r of routes().filter((x) => x.path.includes(runId))) {
      const theirs = await call(r, other.auth);
      const none = await call({ ...r, path: r.path.replace(runId, ghost) }, other.auth);
      expect(theirs.status, `${r.method} ${r.path}`).toBe(404);
      expect(JSON.stringify(theirs.body).replaceAll(runId, 'ID')).toBe(
        JSON.stringify(none.body).replaceAll(ghost, 'ID'),
      );
    }
    const list = await call({ method: 'GET', path: '/v1/runs?limit=100' }, other.auth);
    expect(list.body.data).toEqual([]);
    const ours = await call({ method: 'GET', path: '/v1/runs?limit=100' }, h.auth);
    expect(ours.body.data.map((x: { id: string }) => x.id)).toContain(runId);
  });

  it('cannot name our collection in jetty.collection: 404, as for one that does not exist', async () => {
    const ours = await chat(runbookRequest(RUNBOOK, { jetty: { collection: h.collection } }), other.auth);
    const none = await chat(runbookRequest(RUNBOOK, { jetty: { collection: 'no-such-team' } }), other.auth);
    expect(ours.status).toBe(404);
    expect(ours.body.error.code).toBe('collection_not_found');
    expect(ours.body.error.message.replace(h.collection, 'X')).toBe(
      none.body.error.message.replace('no-such-team', 'X'),
    );
  });
});

describe('provider keys', () => {
  it('come from the collection: a key set in one collection makes the provider available there only', async () => {
    const anthropic = async (auth: Record<string, string>) => {
      const rt = await call({ method: 'GET', path: '/v1/runtimes' }, auth);
      const claude = rt.body.data.find((x: { id: string }) => x.id === 'claude-code');
      return claude.providers.find((p: { id: string }) => p.id === 'anthropic').available as boolean;
    };
    expect(await anthropic(h.auth)).toBe(false);
    await h.server.tenancy.patchEnvironment(other.collection, { ANTHROPIC_API_KEY: `sk-${CANARY}` });
    expect(await anthropic(other.auth)).toBe(true);
    expect(await anthropic(h.auth)).toBe(false);
    const refused = await chat(runbookRequest(RUNBOOK, { jetty: { model_provider: 'anthropic' } }), h.auth);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('provider_key_missing');
    expect(refused.body.error.message).toContain(
      `ANTHROPIC_API_KEY in the environment of collection ${h.collection}`,
    );
  });
});

describe("a runbook's secrets", () => {
  it('a required secret the collection lacks is a 400 naming it and how to set it; nothing is queued', async () => {
    const before = await h.jobsEnqueued();
    const res = await chat(runbookRequest(SECRET_RUNBOOK), h.auth);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('secret_missing');
    expect(res.body.error.param).toBe('messages[0].content.frontmatter.secrets.REPORT_TOKEN');
    expect(res.body.error.message).toMatch(/PATCH \/api\/v1\/collections\/test-collection\/environment/);
    expect(await h.jobsEnqueued()).toBe(before);
  });

  it('a secret may not take the name of a variable the sandbox sets itself', async () => {
    for (const env of ['PATH', 'JETTY_GATEWAY_SOCKET']) {
      const res = await chat(
        runbookRequest(SECRET_RUNBOOK.replace('env: REPORT_TOKEN', `env: ${env}`)),
        h.auth,
      );
      expect(res.status, env).toBe(400);
      expect(res.body.error.code).toBe('reserved_variable');
    }
  });

  it('a provider key declared as a secret reaches the sandbox as a per-run gateway token and base URL, never the key', async () => {
    const runbook = SECRET_RUNBOOK.replace('REPORT_TOKEN: { env: REPORT_TOKEN', 'LLM: { env: OPENAI_API_KEY');
    // A run on Anthropic, and no OpenAI key in the collection: a required one is refused, naming
    // the variable to set; an optional one is simply absent.
    await h.setEnv({ OPENAI_API_KEY: null, ANTHROPIC_API_KEY: 'sk-ant-unused' });
    const onAnthropic = { model: 'claude-sonnet-4-6', jetty: { model_provider: 'anthropic' } };
    const refused = await chat(runbookRequest(runbook, onAnthropic), h.auth);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('provider_key_missing');
    expect(refused.body.error.param).toBe('messages[0].content.frontmatter.secrets.LLM');
    expect(refused.body.error.message).toContain('Set OPENAI_API_KEY');
    const optional = await chat(
      runbookRequest(runbook.replace('required: true', 'required: false'), { ...onAnthropic, stream: false }),
      h.auth,
    );
    expect(optional.status).toBe(200);
    const absent = driver.started.find((s) => s.runId === optional.body.jetty_metadata.trajectory_id)!;
    expect(absent.env.OPENAI_API_KEY).toBeUndefined();
    expect(absent.env.OPENAI_BASE_URL).toBeUndefined();
    // A dry run on the simulated provider: the scripts' calls go to the simulated provider too.
    const dry = await chat(runbookRequest(runbook, { stream: false }), h.auth);
    expect(dry.status).toBe(200);
    const drySpec = driver.started.find((s) => s.runId === dry.body.jetty_metadata.trajectory_id)!;
    expect(drySpec.env.OPENAI_API_KEY).toMatch(/^jrt_/);
    await h.setEnv({ ANTHROPIC_API_KEY: null });

    const realKey = `sk-${CANARY}`;
    await h.setEnv({ OPENAI_API_KEY: realKey });
    const res = await chat(runbookRequest(runbook, { stream: false }), h.auth);
    expect(res.status).toBe(200);
    const spec = driver.started.find((s) => s.runId === res.body.jetty_metadata.trajectory_id)!;
    expect(spec.env.OPENAI_API_KEY).toMatch(/^jrt_[0-9a-f]{48}$/);
    expect(spec.env.OPENAI_BASE_URL).toBe('http://127.0.0.1:4100/v1');
    // Its own token, not the agent's: the gateway tells the script's calls apart.
    expect(JSON.stringify(spec)).not.toContain(realKey);
    expect(Object.values(spec.env).filter((v) => v === spec.env.OPENAI_API_KEY)).toHaveLength(1);
    await h.setEnv({ OPENAI_API_KEY: null });
  });

  it('reaches the sandbox as its variable, is never in the prompt, and is redacted from all the run records', async () => {
    await h.setEnv({ REPORT_TOKEN: CANARY, UNDECLARED_THING: `other-${CANARY}` });
    const res = await chat(runbookRequest(SECRET_RUNBOOK, { stream: false }), h.auth);
    expect(res.status).toBe(200);
    const id = res.body.jetty_metadata.trajectory_id as string;
    const spec = driver.started.find((s) => s.runId === id)!;
    // Declared: present with its value. Undeclared variables and provider keys: absent.
    expect(spec.env.REPORT_TOKEN).toBe(CANARY);
    expect(spec.env.UNDECLARED_THING).toBeUndefined();
    expect(Object.values(spec.env).join('\n')).not.toContain(`other-${CANARY}`);
    // The agent's prompt names the variable, not the value.
    expect(promptOf(spec)).toContain('$REPORT_TOKEN');
    // The agent printed the value; every place the run is recorded has it redacted.
    expect(res.body.choices[0].message.content).toBe('token is [redacted:REPORT_TOKEN]');
    const places = {
      record: (await call({ method: 'GET', path: `/v1/runs/${id}` }, h.auth)).body,
      trajectory: (await call({ method: 'GET', path: `/v1/runs/${id}/trajectory` }, h.auth)).body,
      events: (await call({ method: 'GET', path: `/v1/runs/${id}/events` }, h.auth)).body,
      artifacts: (await call({ method: 'GET', path: `/v1/runs/${id}/artifacts` }, h.auth)).body,
      env: (await call({ method: 'GET', path: '/api/v1/collections/test-collection/environment' }, h.auth))
        .body,
      redis: await dumpRedis(h.redis.url),
      logs: await readFile(logFile, 'utf8'),
    };
    expect(JSON.stringify(places.trajectory)).toContain('[redacted:REPORT_TOKEN]');
    for (const [where, v] of Object.entries(places)) {
      expect(JSON.stringify(v).includes(CANARY), where).toBe(false);
    }
  });
});

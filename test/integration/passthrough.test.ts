import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// Plain LLM passthrough: no `jetty` block, so the request goes to the provider its model names and
// the answer comes back as the provider sent it; each call is recorded as a run under `_chat`.
const canary = `sk-canary-${randomBytes(8).toString('hex')}`;
const ANSWER = JSON.stringify({
  id: 'chatcmpl-up',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-5.5',
  choices: [
    { index: 0, message: { role: 'assistant', content: 'hello from upstream' }, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 },
});
const seen: Array<{ path: string; auth: string; body: string }> = [];
let upstream: Server;
let h: Harness;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', auth: String(req.headers.authorization ?? ''), body });
      if (body.includes('"echo-key-please"')) {
        // An upstream (or a proxy before it) that repeats the key, placed so a cut at 2,000
        // characters would fall inside it.
        res.writeHead(401, { 'content-type': 'text/plain' });
        res.end(`${'x'.repeat(1985)}${req.headers.authorization}`);
        return;
      }
      if (body.includes('"unauthorized-please"')) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          '{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}',
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req_up_1' });
      res.end(ANSWER);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  h = await startHarness({
    driver: new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 })),
    env: { OPENAI_API_KEY: canary, OPENAI_UPSTREAM_URL: `http://127.0.0.1:${port}` },
  });
});
afterAll(async () => {
  await h?.stop();
  await new Promise((r) => upstream?.close(r));
});

async function lastChatRun() {
  const list = (await (await h.fetch(`${h.url}/v1/runs?task=_chat&limit=1`)).json()) as {
    data: Array<Record<string, any>>;
  };
  return list.data[0]!;
}

describe('passthrough (no jetty block)', () => {
  it('forwards to the provider the model names with the server key, and answers untouched', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'gpt-5.5',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0.2,
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(ANSWER);
    expect(res.headers.get('x-upstream-request-id')).toBe('req_up_1');
    const call = seen.at(-1)!;
    expect(call.path).toBe('/v1/chat/completions');
    expect(call.auth).toBe(`Bearer ${canary}`);
    expect(JSON.parse(call.body)).toMatchObject({ model: 'gpt-5.5', temperature: 0.2 });

    const runId = res.headers.get('x-jetty-trajectory-id')!;
    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as Record<string, any>;
        return r.status === 'completed' ? r : undefined;
      },
      5_000,
      'the call to be recorded',
    );
    expect(rec).toMatchObject({
      agent: 'passthrough',
      task: '_chat',
      provider: 'openai',
      final_text: 'hello from upstream',
    });
    expect(rec.usage).toMatchObject({ input_tokens: 12, output_tokens: 4, cost_estimated: true });
    const traj = await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).text();
    expect(traj).toContain('"temperature":0.2');
    expect(traj).not.toContain(canary);
  });

  it('streams the simulated provider to the official OpenAI client', async () => {
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key });
    const stream = await client.chat.completions.create({
      model: 'simulated',
      stream: true,
      messages: [{ role: 'user', content: 'hello?' }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    const rec = await waitFor(
      async () => {
        const r = await lastChatRun();
        return r.provider === 'simulated' && r.status === 'completed' ? r : undefined;
      },
      5_000,
      'the simulated call to be recorded',
    );
    expect(rec.final_text).toBe(text);
  });

  it('passes a provider error through with its status, and records the run as failed', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'gpt-5.5',
      messages: [{ role: 'user', content: 'unauthorized-please' }],
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    const runId = res.headers.get('x-jetty-trajectory-id')!;
    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as Record<string, any>;
        return r.status === 'failed' ? r : undefined;
      },
      5_000,
      'the failed call to be recorded',
    );
    expect(rec.error.message).toMatch(/HTTP 401/);
    expect(JSON.stringify(rec)).not.toContain(canary);
  });

  it('keeps no part of the key from an error answer that repeats it, in the record', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'gpt-5.5',
      messages: [{ role: 'user', content: 'echo-key-please' }],
    });
    expect(res.status).toBe(401);
    await res.text();
    const runId = res.headers.get('x-jetty-trajectory-id')!;
    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as Record<string, any>;
        return r.status === 'failed' ? r : undefined;
      },
      5_000,
      'the failed call to be recorded',
    );
    const message = String(rec.error.message);
    expect(message).toMatch(/HTTP 401: x+/);
    // Not the key, nor the start of it a cut could leave at the end.
    expect(message).not.toContain(canary.slice(0, 6));
  });

  it("uses the collection's own key over the server's, and another collection sees none of its calls", async () => {
    const own = `sk-own-${randomBytes(8).toString('hex')}`;
    const team = await h.addCollection('team-with-key');
    await h.server.tenancy.patchEnvironment(team.collection, { OPENAI_API_KEY: own });
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      { model: 'gpt-5.5', messages: [{ role: 'user', content: 'whose key?' }] },
      team.auth,
    );
    expect(res.status).toBe(200);
    expect(seen.at(-1)!.auth).toBe(`Bearer ${own}`);
    const runId = res.headers.get('x-jetty-trajectory-id')!;
    const rec = await waitFor(
      async () => {
        const r = (await (
          await h.fetch(`${h.url}/v1/runs/${runId}`, { headers: team.auth })
        ).json()) as Record<string, any>;
        return r.status === 'completed' ? r : undefined;
      },
      5_000,
      'the call to be recorded',
    );
    expect(rec).toMatchObject({ collection: team.collection, task: '_chat' });
    expect(JSON.stringify(rec)).not.toContain(own);
    expect((await h.fetch(`${h.url}/v1/runs/${runId}`)).status).toBe(404);
  });

  it('refuses a model no provider serves, or one whose key the server lacks, naming model', async () => {
    const unknown = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'mystery-1',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { param: string; code: string } }).error).toMatchObject({
      param: 'model',
      code: 'model_unroutable',
    });
    const nokey = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'claude-sonnet-4-6',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(nokey.status).toBe(400);
    expect(((await nokey.json()) as { error: { message: string } }).error.message).toMatch(
      /ANTHROPIC_API_KEY/,
    );
  });
});

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { containersOfRun, sandboxesLeft } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// End to end: the real server, a real Redis, the real Docker engine, the real claude CLI in its
// image, and the simulated provider behind the gateway's unix socket.
const docker = new Dockerode();
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
}, 120_000);

afterEach(async () => {
  // No test may leave a sandbox behind.
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await h?.stop();
});

const HELLO = [
  '---',
  'agent: claude-code',
  '---',
  '# Hello',
  '',
  '## REQUIRED OUTPUT FILES',
  '| File | Description |',
  '|---|---|',
  '| `{{results_dir}}/hello.txt` | says hi |',
  '',
  '```simulate',
  '- say: I will write hello.txt.',
  '- run: mkdir -p {{results_dir}} && printf hi > {{results_dir}}/hello.txt',
  '- say: wrote hello.txt',
  '```',
  '',
].join('\n');

type Chunk = Record<string, any>;

async function streamRun(body: unknown): Promise<{ chunks: Chunk[]; done: boolean; errors: Chunk[] }> {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, body);
  expect(res.status).toBe(200);
  const chunks: Chunk[] = [];
  const errors: Chunk[] = [];
  let done = false;
  for await (const ev of readSse(res.body!)) {
    if (ev.comment !== undefined) continue;
    if (ev.data === '[DONE]') {
      done = true;
      break;
    }
    const obj = JSON.parse(ev.data);
    if (obj.error) errors.push(obj.error);
    else chunks.push(obj);
  }
  return { chunks, done, errors };
}

async function getRun(id: string): Promise<Record<string, any>> {
  return (await h.fetch(`${h.url}/v1/runs/${id}`)).json() as Promise<Record<string, any>>;
}

async function containersOf(runId: string) {
  return containersOfRun(docker, runId);
}

describe('claude-code end to end', () => {
  it('runs the hello runbook: content, a tool call, [DONE], and the artifact downloads as "hi"', async () => {
    const { chunks, done, errors } = await streamRun(runbookRequest(HELLO));
    expect(errors).toEqual([]);
    expect(done).toBe(true);
    const runId = chunks[0]!.jetty_metadata.trajectory_id as string;
    const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    expect(content).toContain('wrote hello.txt');
    const toolLines = chunks.map((c) => c.choices[0].delta.reasoning_content ?? '').join('');
    expect(toolLines).toMatch(/Bash: mkdir -p \/app\/results/);
    const types = chunks.map((c) => c.jetty_event?.type).filter(Boolean);
    expect(types).toContain('run.started');
    expect(types).toContain('tool.call');
    expect(types).toContain('tool.result');
    expect(types).toContain('usage');
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0].finish_reason).toBe('stop');
    expect(last.jetty_metadata.status).toBe('completed');
    expect(last.usage.completion_tokens).toBeGreaterThan(0);

    const list = (await (await h.fetch(`${h.url}/v1/runs/${runId}/artifacts`)).json()) as {
      data: Array<{ path: string; url: string; size: number }>;
    };
    expect(list.data.map((a) => a.path)).toEqual(['hello.txt']);
    const file = await h.fetch(`${h.url}${list.data[0]!.url}`);
    expect(file.status).toBe(200);
    expect(Buffer.from(await file.arrayBuffer()).toString('utf8')).toBe('hi');
    const rec = await getRun(runId);
    expect(rec.status).toBe('completed');
    expect(rec.missing_outputs).toEqual([]);
    expect(rec.runtime_version).toBe('2.1.197');
    expect(rec.timings.agent_ms).toBeGreaterThan(0);
    expect(rec.timings.sandbox_start_ms).toBeGreaterThan(0);
    // Removed just after the run's end.
    await waitFor(async () => (await containersOf(runId)).length === 0, 5_000, 'the sandbox to be removed');
  });

  it('serves the official openai npm client, streaming and not', async () => {
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key });
    const jetty = { runbook: true, model_provider: 'simulated' };
    const messages = [
      { role: 'system' as const, content: HELLO },
      { role: 'user' as const, content: 'Execute the runbook.' },
    ];
    const stream = await client.chat.completions.create({
      model: 'claude-sonnet-4-6',
      messages,
      stream: true,
      jetty,
    } as never);
    let content = '';
    let finish: string | null = null;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      content += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(content).toContain('wrote hello.txt');
    expect(finish).toBe('stop');

    const completion = (await client.chat.completions.create({
      model: 'claude-sonnet-4-6',
      messages,
      jetty,
    } as never)) as OpenAI.ChatCompletion & {
      jetty_metadata: { status: string; artifacts: Array<{ path: string }> };
    };
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message.content).toContain('wrote hello.txt');
    expect(completion.jetty_metadata.status).toBe('completed');
    expect(completion.jetty_metadata.artifacts.map((a) => a.path)).toEqual(['hello.txt']);
    expect(completion.usage!.total_tokens).toBeGreaterThan(0);

    const failing = await client.chat.completions.create({
      model: 'claude-sonnet-4-6',
      messages: [{ role: 'system', content: '# Fails\n```simulate\n- fail: 401\n```\n' }],
      stream: true,
      jetty,
    } as never);
    await expect(
      (async () => {
        for await (const _ of failing as unknown as AsyncIterable<unknown>) {
          // drain
        }
      })(),
    ).rejects.toThrow(/401/);
  });

  it('serves the official openai Python client, streaming and not', async () => {
    const file = path.join(h.dataDir, 'hello-runbook.md');
    await writeFile(file, HELLO);
    const { stdout } = await promisify(execFile)(
      'python3',
      [path.join(import.meta.dirname, 'python_client.py'), `${h.url}/v1`, file],
      { timeout: 90_000, env: { ...process.env, OPENAI_API_KEY: h.key } },
    );
    const seen = JSON.parse(stdout);
    expect(seen.stream.content).toContain('wrote hello.txt');
    expect(seen.stream.finish).toBe('stop');
    expect(seen.stream.ids).toEqual([`chatcmpl-${seen.stream.trajectory_id}`]);
    expect(seen.stream.reasoning).toContain('Bash:');
    expect(seen.completion.content).toContain('wrote hello.txt');
    expect(seen.completion.jetty_metadata.status).toBe('completed');
    expect(seen.completion.usage.total_tokens).toBeGreaterThan(0);
    expect(seen.failed).toMatch(/APIError.*401/);
  });

  it('flags a run that "succeeds" without writing its required output files', async () => {
    const runbook = [
      '# Report',
      '## REQUIRED OUTPUT FILES (MANDATORY)',
      '| File | Description |',
      '|---|---|',
      '| `{{results_dir}}/report.md` | the report |',
      '```simulate',
      '- say: Here is what the report would say, in prose.',
      '```',
      '',
    ].join('\n');
    const { chunks, errors } = await streamRun(runbookRequest(runbook));
    expect(errors).toEqual([]);
    const last = chunks[chunks.length - 1]!;
    expect(last.jetty_metadata.status).toBe('completed');
    expect(last.jetty_metadata.warnings[0].code).toBe('missing_required_outputs');
    expect(last.jetty_metadata.warnings[0].message).toMatch(
      /did not write 1 of the runbook's required output files: \/app\/results\/report\.md/,
    );
    const reasoning = chunks.map((c) => c.choices[0].delta.reasoning_content ?? '').join('');
    expect(reasoning).toMatch(/Warning: .*report\.md/);
    const rec = await getRun(chunks[0]!.jetty_metadata.trajectory_id);
    expect(rec.missing_outputs).toEqual(['/app/results/report.md']);
    expect(rec.warnings).toEqual(last.jetty_metadata.warnings);
  });

  it('cancel mid-run: status cancelled, and no container of the run within 5 s', async () => {
    const runbook =
      '# Slow\n```simulate\n- run: mkdir -p /app/results && printf partial > /app/results/part.txt\n- sleep_ms: 60000\n- say: never\n```\n';
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    await waitFor(
      async () => {
        const t = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
          events: Array<{ type: string }>;
        };
        return t.events.some((e) => e.type === 'tool.result');
      },
      30_000,
      'the agent to run its first tool',
    );
    const t0 = Date.now();
    expect((await h.fetch(`${h.url}/v1/runs/${runId}/cancel`, { method: 'POST' })).status).toBe(200);
    await waitFor(async () => (await containersOf(runId)).length === 0, 5_000, 'the container to be gone');
    expect(Date.now() - t0).toBeLessThan(5_000);
    const rec = await waitFor(
      async () => {
        const r = await getRun(runId);
        return r.status === 'cancelled' ? r : undefined;
      },
      5_000,
      'status cancelled',
    );
    expect(rec.artifacts.map((a: { path: string }) => a.path)).toEqual(['part.txt']);
  });

  it('timeout_sec exceeded: failed with a timeout code, container gone, partial results kept', async () => {
    const runbook =
      '# Slow\n```simulate\n- run: mkdir -p /app/results && printf partial > /app/results/part.txt\n- sleep_ms: 60000\n- say: never\n```\n';
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(runbook, { stream: false, jetty: { timeout_sec: 8 } }),
    );
    expect(res.status).toBe(424);
    const body = (await res.json()) as {
      error: { code: string; message: string };
      jetty_metadata: { trajectory_id: string };
    };
    expect(body.error.code).toBe('timeout');
    expect(body.error.message).toMatch(/timeout of 8 s/);
    const runId = body.jetty_metadata.trajectory_id;
    const rec = await getRun(runId);
    expect(rec.status).toBe('failed');
    expect(rec.error.code).toBe('timeout');
    await waitFor(async () => (await containersOf(runId)).length === 0, 5_000, 'the sandbox to be removed');
    const part = await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/part.txt`);
    expect(await part.text()).toBe('partial');
  });

  it('a provider error (fail: 401) fails the run within 15 s naming the cause', async () => {
    const t0 = Date.now();
    const { chunks, errors, done } = await streamRun(
      runbookRequest('# Fails\n```simulate\n- fail: 401\n```\n'),
    );
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(15_000);
    expect(done).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('provider_auth_error');
    expect(errors[0]!.message).toMatch(/401/);
    const runId = chunks[0]!.jetty_metadata.trajectory_id as string;
    const rec = await getRun(runId);
    expect(rec.status).toBe('failed');
    expect(rec.error.message).toMatch(/401/);
  });

  it('a reconnect with Last-Event-ID mid-run yields every event exactly once', async () => {
    const runbook = [
      '# Steps',
      '```simulate',
      '- run: echo one',
      '- sleep_ms: 700',
      '- run: echo two',
      '- sleep_ms: 700',
      '- run: echo three',
      '- say: finished',
      '```',
      '',
    ].join('\n');
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const seen: string[] = [];
    const ctl = new AbortController();
    const first = await h.fetch(`${h.url}/v1/runs/${runId}/events`, { signal: ctl.signal });
    for await (const ev of readSse(first.body!)) {
      if (!ev.id) continue;
      seen.push(ev.id);
      if (ev.event === 'tool.call') break;
    }
    ctl.abort();
    const rec = await getRun(runId);
    expect(rec.status).toBe('running');
    const second = await h.fetch(`${h.url}/v1/runs/${runId}/events`, {
      headers: { 'last-event-id': seen[seen.length - 1]! },
    });
    let lastType = '';
    for await (const ev of readSse(second.body!)) {
      if (!ev.id) continue;
      seen.push(ev.id);
      lastType = ev.event!;
    }
    expect(lastType).toBe('run.completed');
    const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
      events: Array<{ id: string }>;
    };
    expect(seen).toEqual(traj.events.map((e) => e.id));
  });
});

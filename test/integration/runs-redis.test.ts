import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxSpec } from '../../src/sandbox/driver.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';
import { readSse } from '../support/sse.js';

// The whole server on a real Redis and real BullMQ; only the sandbox is played back (see
// ScriptedDriver). The Docker path is covered end to end in test/e2e.
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';

let h: Harness;
// A runbook that says SLOW plays a long run (30 steps, 200 ms apart), so a test can act mid-run.
const isSlow = (spec: SandboxSpec) => promptOf(spec).includes('SLOW');
const driver = new ScriptedDriver((spec) =>
  isSlow(spec) ? claudeLines({ steps: 30, delayMs: 200 }) : claudeLines({ steps: 3, delayMs: 20 }),
);

beforeAll(async () => {
  h = await startHarness({ driver });
});
afterAll(async () => {
  await h?.stop();
  expect(driver.liveCount()).toBe(0);
});

async function runJson(id: string) {
  return (await h.fetch(`${h.url}/v1/runs/${id}`)).json() as Promise<Record<string, unknown>>;
}

describe('a run through Redis and the queue', () => {
  it('streams chunks: first at once with the run id, content, tool lines, a final chunk, [DONE]', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const chunks: Record<string, any>[] = [];
    let done = false;
    for await (const ev of readSse(res.body!)) {
      if (ev.comment !== undefined) continue;
      if (ev.data === '[DONE]') {
        done = true;
        break;
      }
      chunks.push(JSON.parse(ev.data));
    }
    expect(done).toBe(true);
    const first = chunks[0]!;
    const runId = first.jetty_metadata.trajectory_id as string;
    expect(first.choices[0].delta.role).toBe('assistant');
    expect(chunks.every((c) => c.id === `chatcmpl-${runId}` && c.object === 'chat.completion.chunk')).toBe(
      true,
    );
    const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    expect(content).toContain('step 0');
    const reasoning = chunks.map((c) => c.choices[0].delta.reasoning_content ?? '').join('');
    expect(reasoning).toContain('Bash: echo 0');
    expect(chunks.some((c) => c.choices[0].delta.tool_calls)).toBe(false);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0].finish_reason).toBe('stop');
    expect(last.jetty_metadata.status).toBe('completed');
    expect(last.jetty_metadata.artifacts[0].path).toBe('hello.txt');
    expect(last.usage.completion_tokens).toBe(5);
    const rec = await runJson(runId);
    expect(rec.status).toBe('completed');
    expect(rec.final_text).toBe('all done');
  });

  it('resumes the event stream after Last-Event-ID without missing or repeating an event', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    expect(res.status).toBe(202);
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;

    const seen: { id: string; type: string }[] = [];
    const ctl = new AbortController();
    const first = await h.fetch(`${h.url}/v1/runs/${runId}/events`, { signal: ctl.signal });
    for await (const ev of readSse(first.body!)) {
      if (!ev.id) continue;
      seen.push({ id: ev.id, type: ev.event! });
      if (seen.length === 4) break;
    }
    ctl.abort();
    const second = await h.fetch(`${h.url}/v1/runs/${runId}/events`, {
      headers: { 'last-event-id': seen[3]!.id },
    });
    for await (const ev of readSse(second.body!)) {
      if (ev.id) seen.push({ id: ev.id, type: ev.event! });
    }
    const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
      events: { id: string; type: string }[];
    };
    expect(seen.map((e) => e.id)).toEqual(traj.events.map((e) => e.id));
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
    expect(seen[seen.length - 1]!.type).toBe('run.completed');
  });

  it('a client that disconnects does not cancel the run', async () => {
    const ctl = new AbortController();
    const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK));
    let runId = '';
    for await (const ev of readSse(res.body!)) {
      runId = JSON.parse(ev.data).jetty_metadata.trajectory_id;
      break;
    }
    ctl.abort();
    await res.body?.cancel().catch(() => undefined);
    const rec = await waitFor(
      async () => {
        const r = await runJson(runId);
        return r.status === 'completed' ? r : undefined;
      },
      15_000,
      'the run to complete after the client left',
    );
    expect(rec.cancel_requested).toBe(false);
  });

  it('cancel stops a running run: status cancelled, run.cancelled last, no sandbox left', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(`${RUNBOOK}\nSLOW\n`, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    await waitFor(async () => (await runJson(runId)).sandbox_id, 10_000, 'the sandbox to start');
    const cancel = await h.fetch(`${h.url}/v1/runs/${runId}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    const rec = await waitFor(
      async () => {
        const r = await runJson(runId);
        return r.status !== 'running' ? r : undefined;
      },
      5_000,
      'the run to end',
    );
    expect(rec.status).toBe('cancelled');
    const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
      events: { type: string }[];
    };
    expect(traj.events[traj.events.length - 1]!.type).toBe('run.cancelled');
    // Partial results are still collected on cancel.
    expect((rec.artifacts as unknown[]).length).toBe(1);
    expect(driver.liveCount()).toBe(0);
  });

  it('the worker sweep removes the run files of runs over for longer than RETENTION_SEC', async () => {
    const post = async (runbook: string, jetty: Record<string, unknown>) => {
      const res = await h.postJson(
        `${h.url}/v1/chat/completions`,
        runbookRequest(runbook, { stream: false, jetty }),
      );
      return ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
        .trajectory_id;
    };
    const done = await post(RUNBOOK, { timeout_hint: 30 });
    // Its worker lets it go once its sandbox is removed, just after the answer.
    await waitFor(async () => driver.liveCount() === 0, 5_000, "the finished run's sandbox to be removed");
    const running = await post(`${RUNBOOK}\nSLOW\n`, { timeout_hint: 0 });
    await waitFor(async () => (await runJson(running)).sandbox_id, 10_000, 'the sandbox to start');
    const blobs = path.join(h.dataDir, 'blobs');
    const staging = path.join(h.dataDir, 'scratch', 'collect', `${done}.dead0worker`);
    // The running run has files of an earlier attempt; a dead worker left a staging dir behind.
    await mkdir(path.join(blobs, 'runs', running, 'artifacts'), { recursive: true });
    await writeFile(path.join(blobs, 'runs', running, 'artifacts', 'old.txt'), 'attempt 1');
    await mkdir(staging, { recursive: true });
    const longAgo = new Date(Date.now() - 8 * 24 * 3600_000);
    for (const id of [done, running]) {
      const files = await readdir(path.join(blobs, 'runs', id), { recursive: true, withFileTypes: true });
      for (const f of files.filter((e) => e.isFile()))
        await utimes(path.join(f.parentPath, f.name), longAgo, longAgo);
    }

    expect(await h.server.worker!.removeOldRunFiles()).toEqual({ runs: 1, partial: 1 });
    expect(existsSync(path.join(blobs, 'runs', done))).toBe(false);
    expect(existsSync(path.join(blobs, 'runs', running))).toBe(true);
    expect(existsSync(staging)).toBe(false);
    expect((await h.fetch(`${h.url}/v1/runs/${done}/artifacts/hello.txt`)).status).toBe(404);
    await h.fetch(`${h.url}/v1/runs/${running}/cancel`, { method: 'POST' });
    await waitFor(async () => (await runJson(running)).status === 'cancelled', 5_000, 'the cancel');
  });

  it('cancel of a finished run changes nothing', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      jetty_metadata: { trajectory_id: string };
      choices: { message: { content: string } }[];
    };
    expect(body.choices[0]!.message.content).toBe('all done');
    const id = body.jetty_metadata.trajectory_id;
    const cancel = (await (await h.fetch(`${h.url}/v1/runs/${id}/cancel`, { method: 'POST' })).json()) as {
      status: string;
    };
    expect(cancel.status).toBe('completed');
  });

  it('an idempotency key makes a repeated request join the first run instead of starting another', async () => {
    const headers = { 'idempotency-key': `k-${Date.now()}` };
    const body = runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } });
    const a = (await (await h.postJson(`${h.url}/v1/chat/completions`, body, headers)).json()) as {
      jetty_metadata: { trajectory_id: string };
    };
    const b = (await (await h.postJson(`${h.url}/v1/chat/completions`, body, headers)).json()) as {
      jetty_metadata: { trajectory_id: string };
    };
    expect(b.jetty_metadata.trajectory_id).toBe(a.jetty_metadata.trajectory_id);
  });

  it('lists runs newest first with a cursor', async () => {
    const page1 = (await (await h.fetch(`${h.url}/v1/runs?limit=2`)).json()) as {
      data: { id: string; created_at: string }[];
      next_cursor: string;
    };
    expect(page1.data).toHaveLength(2);
    expect(page1.next_cursor).toBeTruthy();
    const page2 = (await (await h.fetch(`${h.url}/v1/runs?limit=2&cursor=${page1.next_cursor}`)).json()) as {
      data: { id: string }[];
    };
    expect(page2.data.length).toBeGreaterThan(0);
    expect(page2.data.map((r) => r.id)).not.toContain(page1.data[0]!.id);
    const completed = (await (await h.fetch(`${h.url}/v1/runs?status=completed&limit=100`)).json()) as {
      data: { status: string }[];
    };
    expect(completed.data.every((r) => r.status === 'completed')).toBe(true);
  });
});

describe('an API process that shuts down', () => {
  it('ends its open event streams instead of waiting for them', async () => {
    const own = await startHarness({
      driver: new ScriptedDriver(() => claudeLines({ steps: 20, delayMs: 200 })),
    });
    try {
      const res = await own.postJson(
        `${own.url}/v1/chat/completions`,
        runbookRequest(RUNBOOK, { stream: true }),
      );
      const reader = (async () => {
        let n = 0;
        for await (const _ of readSse(res.body!)) n++;
        return n;
      })();
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      await own.server.app!.close();
      expect(Date.now() - t0).toBeLessThan(3_000);
      expect(await reader).toBeGreaterThan(0);
    } finally {
      await own.stop();
    }
  });
});
